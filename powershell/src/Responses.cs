// Results as PowerShell objects (AzBatch.Response) and failures as
// non-terminating errors whose message says what failed.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;

namespace AzBatch
{
    /// <summary>One request's final result, as Invoke-AzBatchRequest writes it.
    /// A compiled type rather than a PSCustomObject: it costs a fraction to
    /// make, and its name is its type name for formatting.</summary>
    public sealed class Response
    {
        /// <summary>The request's id (given, or its position in the input).</summary>
        public string Name { get; internal set; }
        /// <summary>The request's method and URL (path and query, as sent), so
        /// that a response reads on its own.</summary>
        public string Method { get; internal set; }
        public string Url { get; internal set; }
        /// <summary>HTTP status of the final answer; 0 when there was none.</summary>
        public int Status { get; internal set; }
        /// <summary>A 2xx answer and no error.</summary>
        public bool Succeeded { get; internal set; }
        // Body and headers are read from JSON when first asked for: a run
        // that only looks at Status or Succeeded never pays for them.
        internal RawJson body, headers;

        /// <summary>The answer's body: JSON as PowerShell objects (with
        /// -OutputType Hashtable, as hashtables, as Invoke-MgGraphRequest gives
        /// it; with -OutputType Json, the JSON text), or base64 text (see BodyEncoding).</summary>
        public object Body
        {
            get
            {
                if (body == null) return null;
                if (string.Equals(BodyAs, "Json", StringComparison.OrdinalIgnoreCase)) return body.Text;
                if (string.Equals(BodyAs, "Hashtable", StringComparison.OrdinalIgnoreCase)) return JsonValues.ToHashtables(body.Value);
                return body.Value;
            }
        }
        /// <summary>The form Body takes: PSObject (null), Hashtable or Json.</summary>
        internal string BodyAs;
        /// <summary>Status, as Invoke-AzRestMethod's PSHttpResponse names it.</summary>
        public int StatusCode { get { return Status; } }
        /// <summary>The answer's body as JSON text, as Invoke-AzRestMethod's
        /// PSHttpResponse has it; null when there was none.</summary>
        public string Content { get { return body == null ? null : body.Text; } }
        /// <summary>The answer's headers.</summary>
        public object Headers { get { return headers == null ? null : headers.Value; } }
        /// <summary>Sends of the request, all pages together.</summary>
        public int Attempts { get; internal set; }
        /// <summary>Pages merged into Body.</summary>
        public int Pages { get; internal set; }
        /// <summary>code and message of the failure, or null.</summary>
        public object Error { get; internal set; }
        /// <summary>"base64" when Body is base64 of non-JSON content, else null.</summary>
        public string BodyEncoding { get; internal set; }
        /// <summary>What AzBatch made of the answer when it is not the plain
        /// answer (a resent DELETE that found the resource gone), else null.</summary>
        public string Note { get; internal set; }
        /// <summary>For -ForEachSubscription: the subscription's id, name and tenant, else null.</summary>
        public string SubscriptionId { get; internal set; }
        public string SubscriptionName { get; internal set; }
        public string TenantId { get; internal set; }

        public override string ToString()
        {
            return string.Format(CultureInfo.InvariantCulture, "{0} {1}", Name, Status);
        }
    }

    /// <summary>A request that failed; the response travels with it.</summary>
    public sealed class AzBatchRequestException : Exception
    {
        public Response Response { get; private set; }

        public AzBatchRequestException(string message, Response response) : base(message) { Response = response; }
    }

    public static class Responses
    {
        /// <summary>One result of batch_next as a Response.</summary>
        public static Response Read(string json)
        {
            Response r = new Response();
            int status = 0;
            foreach (KeyValuePair<string, object> p in JsonReader.ReadObject(json, "body", "headers"))
            {
                switch (p.Key)
                {
                    case "id": r.Name = Convert.ToString(p.Value, CultureInfo.InvariantCulture); break;
                    case "method": r.Method = p.Value as string; break;
                    case "url": r.Url = p.Value as string; break;
                    case "status": status = Convert.ToInt32(p.Value, CultureInfo.InvariantCulture); break;
                    case "body": r.body = (RawJson)p.Value; break;
                    case "headers": r.headers = (RawJson)p.Value; break;
                    case "attempts": r.Attempts = Convert.ToInt32(p.Value, CultureInfo.InvariantCulture); break;
                    case "pages": r.Pages = Convert.ToInt32(p.Value, CultureInfo.InvariantCulture); break;
                    case "error": r.Error = p.Value; break;
                    case "bodyEncoding": r.BodyEncoding = p.Value as string; break;
                    case "note": r.Note = p.Value as string; break;
                    case "subscriptionId": r.SubscriptionId = p.Value as string; break;
                    case "subscriptionName": r.SubscriptionName = p.Value as string; break;
                    case "tenantId": r.TenantId = p.Value as string; break;
                }
            }
            r.Status = status;
            r.Succeeded = status >= 200 && status < 300 && r.Error == null;
            return r;
        }

        /// <summary>Whether the service refused the run's token (an envelope
        /// 401, or a request not sent after one), or the token expired.</summary>
        public static bool TokenRefused(Response r)
        {
            if (r.Succeeded) return false;
            if (r.Status == 401) return true;
            PSObject e = r.Error as PSObject;
            string code = e == null ? null : Convert.ToString(Get(e, "code"), CultureInfo.InvariantCulture);
            return r.Status == 0 && (code == "AuthenticationFailed" || code == "TokenExpired");
        }

        /// <summary>The refusal in PowerShell's words, with what to do.</summary>
        public static string TokenRefusedMessage(Response r, string api)
        {
            PSObject e = r.Error as PSObject;
            string code = e == null ? "" : Convert.ToString(Get(e, "code"), CultureInfo.InvariantCulture) ?? "";
            string message = e == null ? "" : Convert.ToString(Get(e, "message"), CultureInfo.InvariantCulture) ?? "";
            string signIn = api == "Graph" ? "Connect-MgGraph (or Connect-AzAccount)" : "Connect-AzAccount";
            return string.Format(CultureInfo.InvariantCulture,
                "The service refused the token ({0}{1}{2}), so AzBatch stopped sending. Pass a valid -AccessToken, sign in again with {3}, or use -Identity (a managed identity) or -UseAzureCli.",
                r.Status == 0 ? code : "HTTP " + r.Status.ToString(CultureInfo.InvariantCulture) + (code.Length > 0 ? " " + code : ""),
                message.Length > 0 ? ": " : "", message, signIn);
        }

        private static object Get(PSObject o, string name)
        {
            PSPropertyInfo p = o.Properties[name];
            return p == null ? null : p.Value;
        }

        /// <summary>The error for a failed response: the message names the
        /// request, the status, and the service's code and message; the whole
        /// response is the TargetObject.</summary>
        public static ErrorRecord Error(Response response)
        {
            string name = response.Name;
            int status = response.Status;
            string code = "", message = "";
            PSObject e = response.Error as PSObject;
            if (e != null)
            {
                code = Convert.ToString(Get(e, "code"), CultureInfo.InvariantCulture) ?? "";
                message = AzBatchException.InPowerShellWords(Convert.ToString(Get(e, "message"), CultureInfo.InvariantCulture) ?? "");
            }
            // What was asked, so the message reads on its own:
            // "Request '0' (GET /subscriptions/...) failed with status 404: ResourceGroupNotFound: ...".
            string what = string.IsNullOrEmpty(response.Method) ? "" : string.Format(CultureInfo.InvariantCulture, " ({0} {1})", response.Method, response.Url);
            string text = status == 0
                ? string.Format(CultureInfo.InvariantCulture, "Request '{0}'{1} failed: {2}: {3}", name, what, code, message)
                : string.Format(CultureInfo.InvariantCulture, "Request '{0}'{1} failed with status {2}: {3}: {4}", name, what, status, code, message);
            ErrorCategory category;
            switch (status)
            {
                case 0: category = ErrorCategory.OperationStopped; break;
                case 401: category = ErrorCategory.AuthenticationError; break;
                case 403: category = ErrorCategory.PermissionDenied; break;
                case 404: category = ErrorCategory.ObjectNotFound; break;
                case 409: category = ErrorCategory.ResourceExists; break;
                case 429: category = ErrorCategory.LimitsExceeded; break;
                default: category = ErrorCategory.InvalidOperation; break;
            }
            string id = "AzBatch.RequestFailed" + (code.Length > 0 ? "." + code : "");
            return new ErrorRecord(new AzBatchRequestException(text, response), id, category, response);
        }
    }
}
