// Requests as PowerShell users give them (strings, hashtables, objects), read
// once in compiled code into the JSON the C ABI takes.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;
using System.Text;

namespace AzBatch
{
    /// <summary>One request read from the pipeline.</summary>
    public sealed class RequestDraft
    {
        public string Id;
        public string Method;
        public string Url;
        public List<string> DependsOn = new List<string>();
        /// <summary>The request as the C ABI takes it.</summary>
        public string Json;

        public bool IsRead { get { return Method == "GET" || Method == "HEAD"; } }
    }

    /// <summary>Reads requests and bodies. Errors name the request (its position
    /// in the input, and its id when it has one) and the field.</summary>
    public static class Requests
    {
        /// <summary>A string is a GET of that URL; a hashtable or object gives
        /// Url, Method, Id (or Name), Body, Headers, DependsOn and BodyEncoding.</summary>
        public static RequestDraft Read(object input, int index)
        {
            PSObject pso = input as PSObject;
            object baseObject = pso != null ? pso.BaseObject : input;
            RequestDraft d = new RequestDraft();
            string at = string.Format(CultureInfo.InvariantCulture, "request {0}", index);
            string s = baseObject as string;
            if (s != null && s.TrimStart().StartsWith("{", StringComparison.Ordinal))
            {
                // A request as JSON text: read for its method, url and ids, sent as it is.
                object parsed;
                try { parsed = JsonReader.Read(s); }
                catch (FormatException e) { throw new JsonInputException(at + ": the JSON text is " + e.Message); }
                baseObject = parsed;
                input = parsed;
            }
            else if (s != null)
            {
                d.Method = "GET";
                d.Url = s;
                d.Json = "{\"url\":" + Quote(s) + "}";
                return d;
            }
            List<KeyValuePair<string, object>> given = Given(input, baseObject);
            LibraryInfo info = Module.Info;
            foreach (KeyValuePair<string, object> e in given)
            {
                if (info.IsPeerKey(e.Key)) return ReadPeerShape(given, index, at);
            }
            Dictionary<string, object> values = Values(given, at);
            object v;
            if (values.TryGetValue("id", out v) && v != null) { d.Id = Scalar(v); at += " (id '" + d.Id + "')"; }
            d.Method = values.TryGetValue("method", out v) && v != null ? Scalar(v).Trim().ToUpperInvariant() : "GET";
            if (!values.TryGetValue("url", out v) || v == null) throw new JsonInputException(at + ": Url is required");
            d.Url = Scalar(v);
            StringBuilder sb = new StringBuilder(256);
            sb.Append("{\"url\":");
            JsonWriter.String(sb, d.Url);
            sb.Append(",\"method\":");
            JsonWriter.String(sb, d.Method);
            if (d.Id != null) { sb.Append(",\"id\":"); JsonWriter.String(sb, d.Id); }
            if (values.TryGetValue("body", out v) && v != null) { sb.Append(",\"body\":"); Body(sb, v, at + ": Body"); }
            if (values.TryGetValue("headers", out v) && v != null) { sb.Append(",\"headers\":"); JsonWriter.Value(sb, v, 0, at + ": Headers"); }
            if (values.TryGetValue("bodyEncoding", out v) && v != null) { sb.Append(",\"bodyEncoding\":"); JsonWriter.String(sb, Scalar(v)); }
            foreach (KeyValuePair<string, object> e in values)
            {
                if (e.Value == null || Array.IndexOf(ReadHere, e.Key) >= 0) continue;
                // The library's other fields (requestHeaderDetails,
                // forEachSubscription): passed on for it to check.
                sb.Append(',');
                JsonWriter.String(sb, e.Key);
                sb.Append(':');
                JsonWriter.Value(sb, e.Value, 0, at + ": " + e.Key);
            }
            if (values.TryGetValue("dependsOn", out v) && v != null)
            {
                sb.Append(",\"dependsOn\":[");
                bool first = true;
                foreach (object dep in Items(v))
                {
                    string id = Scalar(dep);
                    d.DependsOn.Add(id);
                    if (!first) sb.Append(',');
                    first = false;
                    JsonWriter.String(sb, id);
                }
                sb.Append(']');
            }
            sb.Append('}');
            d.Json = sb.ToString();
            return d;
        }

        /// <summary>A request in Invoke-AzRestMethod's or Invoke-MgGraphRequest's
        /// shape: its fields go to the library as given, which resolves them
        /// (the path from its parts, Payload's JSON text) into its own; the
        /// method, URL and ids are read back for ShouldProcess and dependsOn.</summary>
        private static RequestDraft ReadPeerShape(List<KeyValuePair<string, object>> given, int index, string at)
        {
            StringBuilder sb = new StringBuilder(256);
            sb.Append('{');
            bool first = true;
            LibraryInfo info = Module.Info;
            foreach (KeyValuePair<string, object> e in given)
            {
                if (e.Value == null) continue;
                if (!first) sb.Append(',');
                first = false;
                JsonWriter.String(sb, e.Key);
                sb.Append(':');
                if (info.FieldOf(e.Key) == "body") Body(sb, e.Value, at + ": " + e.Key);
                else JsonWriter.Value(sb, e.Value, 0, at + ": " + e.Key);
            }
            sb.Append('}');
            string json;
            try { json = Batch.RequestJson(sb.ToString(), index); }
            catch (AzBatchException ex) { throw new JsonInputException(ex.Message); }
            Dictionary<string, object> read = new Dictionary<string, object>(StringComparer.Ordinal);
            foreach (KeyValuePair<string, object> e in JsonReader.ReadObject(json)) read[e.Key] = e.Value;
            RequestDraft d = new RequestDraft();
            d.Json = json;
            object x;
            d.Url = read.TryGetValue("url", out x) ? Scalar(x) : "";
            d.Method = read.TryGetValue("method", out x) ? Scalar(x).Trim().ToUpperInvariant() : "GET";
            if (read.TryGetValue("id", out x) || read.TryGetValue("name", out x)) d.Id = Scalar(x);
            if (read.TryGetValue("dependsOn", out x))
            {
                foreach (object dep in Items(x)) d.DependsOn.Add(Scalar(dep));
            }
            return d;
        }

        /// <summary>The keys given and their values, as spelled.</summary>
        private static List<KeyValuePair<string, object>> Given(object input, object baseObject)
        {
            List<KeyValuePair<string, object>> given = new List<KeyValuePair<string, object>>();
            IDictionary dict = baseObject as IDictionary;
            if (dict != null)
            {
                foreach (DictionaryEntry e in dict) given.Add(new KeyValuePair<string, object>(Convert.ToString(e.Key, CultureInfo.InvariantCulture), e.Value));
            }
            else
            {
                foreach (PSPropertyInfo p in PSObject.AsPSObject(input).Properties) given.Add(new KeyValuePair<string, object>(p.Name, p.Value));
            }
            return given;
        }

        /// <summary>The fields read here; the library's other fields are passed on.</summary>
        private static readonly string[] ReadHere = { "id", "method", "url", "body", "headers", "bodyEncoding", "dependsOn" };

        /// <summary>The request's fields by the library's name for them (its
        /// batch_info says which key fills which field); an unknown key is an
        /// error rather than silently dropped.</summary>
        private static Dictionary<string, object> Values(List<KeyValuePair<string, object>> given, string at)
        {
            Dictionary<string, object> values = new Dictionary<string, object>(StringComparer.Ordinal);
            Dictionary<string, string> givenAs = new Dictionary<string, string>(StringComparer.Ordinal);
            LibraryInfo info = Module.Info;
            foreach (KeyValuePair<string, object> e in given)
            {
                string field = info.FieldOf(e.Key);
                if (field == null) throw new JsonInputException(string.Format("{0}: unknown key '{1}' (a request takes {2})", at, e.Key, info.RequestKeyList()));
                string first;
                if (givenAs.TryGetValue(field, out first))
                {
                    // Both keys named, in the order given (a hashtable has none of its own).
                    throw new JsonInputException(string.Format("{0}: {1} is given twice (as {2} and as {3})", at, char.ToUpperInvariant(field[0]) + field.Substring(1), first, e.Key));
                }
                givenAs[field] = e.Key;
                values[field] = e.Value;
            }
            return values;
        }

        /// <summary>A body: hashtables and objects as JSON objects, arrays as
        /// arrays (empty and one-element ones too), text that starts with { or [
        /// as the JSON it holds (refused when it is not JSON), other text as a
        /// JSON string.</summary>
        public static void Body(StringBuilder sb, object body, string where)
        {
            PSObject pso = body as PSObject;
            string text = (pso != null ? pso.BaseObject : body) as string;
            if (text != null)
            {
                string t = text.TrimStart();
                if (t.StartsWith("{", StringComparison.Ordinal) || t.StartsWith("[", StringComparison.Ordinal))
                {
                    string why;
                    if (!JsonReader.IsJson(text, out why)) throw new JsonInputException(where + " looks like JSON text but is " + why);
                    sb.Append(text.Trim());
                    return;
                }
            }
            JsonWriter.Value(sb, body, 0, where);
        }

        private static IEnumerable Items(object v)
        {
            PSObject pso = v as PSObject;
            object b = pso != null ? pso.BaseObject : v;
            if (b is string) return new object[] { b };
            IEnumerable e = b as IEnumerable;
            return e ?? new object[] { b };
        }

        private static string Scalar(object v)
        {
            PSObject pso = v as PSObject;
            object b = pso != null ? pso.BaseObject : v;
            return Convert.ToString(b, CultureInfo.InvariantCulture);
        }

        private static string Quote(string s)
        {
            StringBuilder sb = new StringBuilder(s.Length + 2);
            JsonWriter.String(sb, s);
            return sb.ToString();
        }
    }
}
