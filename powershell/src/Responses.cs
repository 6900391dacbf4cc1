// Results as PowerShell objects (AzBatch.Response) and failures as
// non-terminating errors whose message says what failed.
using System;
using System.Globalization;
using System.Management.Automation;

namespace AzBatch
{
    /// <summary>A request that failed; the response travels with it.</summary>
    public sealed class AzBatchRequestException : Exception
    {
        public PSObject Response { get; private set; }

        public AzBatchRequestException(string message, PSObject response) : base(message) { Response = response; }
    }

    public static class Responses
    {
        /// <summary>One result of batch_next as an AzBatch.Response.</summary>
        public static PSObject Read(string json)
        {
            PSObject item = (PSObject)JsonReader.Read(json);
            int status = Convert.ToInt32(Get(item, "status"), CultureInfo.InvariantCulture);
            object error = Get(item, "error");
            PSObject r = new PSObject();
            r.TypeNames.Insert(0, "AzBatch.Response");
            r.Properties.Add(new PSNoteProperty("Name", Get(item, "id")));
            r.Properties.Add(new PSNoteProperty("Status", status));
            r.Properties.Add(new PSNoteProperty("Succeeded", status >= 200 && status < 300 && error == null));
            r.Properties.Add(new PSNoteProperty("Body", Get(item, "body")));
            r.Properties.Add(new PSNoteProperty("Headers", Get(item, "headers")));
            r.Properties.Add(new PSNoteProperty("Attempts", Convert.ToInt32(Get(item, "attempts"), CultureInfo.InvariantCulture)));
            r.Properties.Add(new PSNoteProperty("Pages", Convert.ToInt32(Get(item, "pages"), CultureInfo.InvariantCulture)));
            r.Properties.Add(new PSNoteProperty("Error", error));
            r.Properties.Add(new PSNoteProperty("BodyEncoding", Get(item, "bodyEncoding")));
            return r;
        }

        private static object Get(PSObject o, string name)
        {
            PSPropertyInfo p = o.Properties[name];
            return p == null ? null : p.Value;
        }

        /// <summary>The error for a failed response: the message names the
        /// request, the status, and the service's code and message; the whole
        /// response is the TargetObject.</summary>
        public static ErrorRecord Error(PSObject response)
        {
            string name = Convert.ToString(response.Properties["Name"].Value, CultureInfo.InvariantCulture);
            int status = (int)response.Properties["Status"].Value;
            string code = "", message = "";
            PSObject e = response.Properties["Error"].Value as PSObject;
            if (e != null)
            {
                code = Convert.ToString(Get(e, "code"), CultureInfo.InvariantCulture) ?? "";
                message = Convert.ToString(Get(e, "message"), CultureInfo.InvariantCulture) ?? "";
            }
            string text = status == 0
                ? string.Format(CultureInfo.InvariantCulture, "Request '{0}' failed: {1}: {2}", name, code, message)
                : string.Format(CultureInfo.InvariantCulture, "Request '{0}' failed with status {1}: {2}: {3}", name, status, code, message);
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
