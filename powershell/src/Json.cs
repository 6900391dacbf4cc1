// JSON in and out of PowerShell objects, in compiled code: per-item work in
// script (ConvertTo-Json, ConvertFrom-Json, [pscustomobject]) costs hundreds of
// microseconds a request; this costs a few. C# 5, netstandard2.0.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;
using System.Text;

namespace AzBatch
{
    /// <summary>Input that cannot be written as JSON; the message says what and where.</summary>
    public class JsonInputException : Exception
    {
        public JsonInputException(string message) : base(message) { }
    }

    /// <summary>Writes PowerShell values as JSON. Hashtables and objects become
    /// JSON objects, every array (empty and one-element ones too) a JSON array,
    /// dates ISO 8601 (never Windows PowerShell's \/Date(...)\/).</summary>
    public static class JsonWriter
    {
        private const int MaxDepth = 100;

        public static string Write(object value, string where)
        {
            StringBuilder sb = new StringBuilder();
            Value(sb, value, 0, where);
            return sb.ToString();
        }

        public static void Value(StringBuilder sb, object value, int depth, string where)
        {
            if (depth > MaxDepth) throw new JsonInputException(where + " is nested more than " + MaxDepth + " levels deep (a cycle?)");
            PSObject pso = value as PSObject;
            if (pso != null)
            {
                if (pso.BaseObject is PSCustomObject) { Properties(sb, pso, depth, where); return; }
                value = pso.BaseObject;
            }
            if (value == null || value is DBNull) { sb.Append("null"); return; }
            string s = value as string;
            if (s != null) { String(sb, s); return; }
            if (value is bool) { sb.Append((bool)value ? "true" : "false"); return; }
            if (value is char) { String(sb, value.ToString()); return; }
            if (value is int || value is long || value is short || value is byte || value is sbyte || value is uint || value is ulong || value is ushort)
            {
                sb.Append(Convert.ToString(value, CultureInfo.InvariantCulture)); return;
            }
            if (value is decimal) { sb.Append(((decimal)value).ToString(CultureInfo.InvariantCulture)); return; }
            if (value is double || value is float)
            {
                double d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d)) throw new JsonInputException(where + " holds " + d + ", which JSON cannot carry");
                sb.Append(d.ToString("R", CultureInfo.InvariantCulture)); return;
            }
            if (value is DateTime) { String(sb, ((DateTime)value).ToString("o", CultureInfo.InvariantCulture)); return; }
            if (value is DateTimeOffset) { String(sb, ((DateTimeOffset)value).ToString("o", CultureInfo.InvariantCulture)); return; }
            if (value is Guid || value is Uri || value is Enum || value is TimeSpan) { String(sb, Convert.ToString(value, CultureInfo.InvariantCulture)); return; }
            if (value is System.Security.SecureString) throw new JsonInputException(where + " holds a SecureString; AzBatch does not send secrets it cannot see as plain text");
            IDictionary dict = value as IDictionary;
            if (dict != null) { Dictionary(sb, dict, depth, where); return; }
            IEnumerable list = value as IEnumerable;
            if (list != null) { Array(sb, list, depth, where); return; }
            Properties(sb, PSObject.AsPSObject(value), depth, where);
        }

        private static void Dictionary(StringBuilder sb, IDictionary dict, int depth, string where)
        {
            sb.Append('{');
            bool first = true;
            foreach (DictionaryEntry e in dict)
            {
                if (!first) sb.Append(',');
                first = false;
                string key = Convert.ToString(e.Key, CultureInfo.InvariantCulture);
                String(sb, key);
                sb.Append(':');
                Value(sb, e.Value, depth + 1, where + "." + key);
            }
            sb.Append('}');
        }

        private static void Properties(StringBuilder sb, PSObject pso, int depth, string where)
        {
            sb.Append('{');
            bool first = true;
            foreach (PSPropertyInfo p in pso.Properties)
            {
                if (!p.IsGettable) continue;
                if (!first) sb.Append(',');
                first = false;
                String(sb, p.Name);
                sb.Append(':');
                object v;
                try { v = p.Value; } catch (GetValueException) { v = null; }
                Value(sb, v, depth + 1, where + "." + p.Name);
            }
            sb.Append('}');
        }

        private static void Array(StringBuilder sb, IEnumerable list, int depth, string where)
        {
            sb.Append('[');
            bool first = true;
            int i = 0;
            foreach (object item in list)
            {
                if (!first) sb.Append(',');
                first = false;
                Value(sb, item, depth + 1, where + "[" + i + "]");
                i++;
            }
            sb.Append(']');
        }

        public static void String(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }
    }

    /// <summary>A JSON value kept as text, read when it is wanted.</summary>
    public sealed class RawJson
    {
        private readonly string text;
        private object value;
        private bool read;

        public RawJson(string text) { this.text = text; }

        /// <summary>The value, read the first time it is asked for.</summary>
        public object Value
        {
            get
            {
                if (!read)
                {
                    value = JsonReader.Read(text);
                    read = true;
                }
                return value;
            }
        }

        /// <summary>The JSON text as it came.</summary>
        public string Text { get { return text; } }
    }

    /// <summary>JSON values in the forms other commands give them.</summary>
    public static class JsonValues
    {
        /// <summary>Objects as case-insensitive hashtables (nested too), arrays
        /// as object[]: what Invoke-MgGraphRequest gives by default. An object
        /// whose keys differ only in case stays a case-sensitive dictionary.</summary>
        public static object ToHashtables(object value)
        {
            PSObject pso = value as PSObject;
            if (pso != null && pso.BaseObject is PSCustomObject)
            {
                Hashtable h = new Hashtable(StringComparer.OrdinalIgnoreCase);
                foreach (PSPropertyInfo p in pso.Properties) h[p.Name] = ToHashtables(p.Value);
                return h;
            }
            object[] array = value as object[];
            if (array != null)
            {
                object[] copy = new object[array.Length];
                for (int i = 0; i < array.Length; i++) copy[i] = ToHashtables(array[i]);
                return copy;
            }
            return value;
        }
    }

    /// <summary>Reads JSON into PowerShell values: objects become PSCustomObjects
    /// (keys in order), arrays object[], numbers int, long or double. An object
    /// whose keys differ only in case ({"Id":1,"id":2}, which ConvertFrom-Json
    /// refuses) becomes a case-sensitive Dictionary&lt;string, object&gt; instead, so
    /// no answer is ever lost to its shape.</summary>
    public sealed class JsonReader
    {
        private readonly string text;
        private int pos;
        /// <summary>Members of the outermost object left as text.</summary>
        private string[] raw;

        private JsonReader(string text) { this.text = text; }

        public static object Read(string text)
        {
            JsonReader r = new JsonReader(text);
            r.Space();
            object v = r.Value(0);
            r.Space();
            if (r.pos != text.Length) throw r.Fail("text after the JSON value");
            return v;
        }

        /// <summary>The members of a JSON object, in order, as read (the object
        /// itself is not built: the caller picks what it needs).
        /// The values of the members named in `raw` stay JSON text (RawJson),
        /// to be read if and when they are wanted.</summary>
        public static List<KeyValuePair<string, object>> ReadObject(string text, params string[] raw)
        {
            JsonReader r = new JsonReader(text);
            r.raw = raw;
            r.Space();
            if (r.pos >= text.Length || text[r.pos] != '{') throw r.Fail("expected an object");
            List<KeyValuePair<string, object>> pairs = r.Members(0);
            r.Space();
            if (r.pos != text.Length) throw r.Fail("text after the JSON value");
            return pairs;
        }

        /// <summary>Whether text is one JSON value (for JSON text given as a body).</summary>
        public static bool IsJson(string text, out string why)
        {
            try { Read(text); why = null; return true; }
            catch (FormatException e) { why = e.Message; return false; }
        }

        private FormatException Fail(string what)
        {
            return new FormatException(string.Format(CultureInfo.InvariantCulture, "not valid JSON at character {0}: {1}", pos + 1, what));
        }

        private void Space()
        {
            while (pos < text.Length && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r')) pos++;
        }

        private object Value(int depth)
        {
            if (depth > 512) throw Fail("nested too deeply");
            if (pos >= text.Length) throw Fail("unexpected end");
            char c = text[pos];
            switch (c)
            {
                case '{': return Object(depth);
                case '[': return Array(depth);
                case '"': return String();
                case 't': Word("true"); return true;
                case 'f': Word("false"); return false;
                case 'n': Word("null"); return null;
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return Number();
                    throw Fail("unexpected '" + c + "'");
            }
        }

        private void Word(string w)
        {
            if (string.CompareOrdinal(text, pos, w, 0, w.Length) != 0) throw Fail("expected " + w);
            pos += w.Length;
        }

        private object Object(int depth)
        {
            return Build(Members(depth));
        }

        private List<KeyValuePair<string, object>> Members(int depth)
        {
            pos++;
            List<KeyValuePair<string, object>> pairs = new List<KeyValuePair<string, object>>();
            Space();
            if (pos < text.Length && text[pos] == '}') { pos++; return pairs; }
            while (true)
            {
                Space();
                if (pos >= text.Length || text[pos] != '"') throw Fail("expected a key");
                string key = String();
                Space();
                if (pos >= text.Length || text[pos] != ':') throw Fail("expected ':'");
                pos++;
                Space();
                object v = depth == 0 && raw != null && System.Array.IndexOf(raw, key) >= 0 ? Skip() : Value(depth + 1);
                pairs.Add(new KeyValuePair<string, object>(key, v));
                Space();
                if (pos < text.Length && text[pos] == ',') { pos++; continue; }
                if (pos < text.Length && text[pos] == '}') { pos++; return pairs; }
                throw Fail("expected ',' or '}'");
            }
        }

        private static object Build(List<KeyValuePair<string, object>> pairs)
        {
            if (Clash(pairs))
            {
                Dictionary<string, object> d = new Dictionary<string, object>(StringComparer.Ordinal);
                foreach (KeyValuePair<string, object> p in pairs) d[p.Key] = p.Value;
                return d;
            }
            PSObject o = new PSObject();
            // The names are known to differ: PowerShell need not check them again.
            PSMemberInfoCollection<PSPropertyInfo> props = o.Properties;
            foreach (KeyValuePair<string, object> p in pairs) props.Add(new PSNoteProperty(p.Key, p.Value), true);
            return o;
        }

        /// <summary>Whether two keys differ only in case (or repeat).</summary>
        private static bool Clash(List<KeyValuePair<string, object>> pairs)
        {
            int n = pairs.Count;
            if (n <= 8)
            {
                for (int i = 1; i < n; i++)
                {
                    for (int j = 0; j < i; j++)
                    {
                        if (string.Equals(pairs[i].Key, pairs[j].Key, StringComparison.OrdinalIgnoreCase)) return true;
                    }
                }
                return false;
            }
            HashSet<string> seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (KeyValuePair<string, object> p in pairs)
            {
                if (!seen.Add(p.Key)) return true;
            }
            return false;
        }

        /// <summary>Moves past one value, checking only its nesting, and returns its text.</summary>
        private RawJson Skip()
        {
            int start = pos, nesting = 0;
            while (pos < text.Length)
            {
                char c = text[pos];
                if (c == '"')
                {
                    pos++;
                    while (pos < text.Length && text[pos] != '"') pos += text[pos] == '\\' ? 2 : 1;
                    if (pos >= text.Length) throw Fail("unterminated string");
                }
                else if (c == '{' || c == '[') nesting++;
                else if (c == '}' || c == ']')
                {
                    if (nesting == 0) break;
                    nesting--;
                }
                else if (nesting == 0 && c == ',') break;
                pos++;
                if (nesting == 0 && (c == '"' || c == '}' || c == ']')) break;
            }
            string t = text.Substring(start, pos - start).TrimEnd();
            if (t.Length == 0) throw Fail("expected a value");
            return new RawJson(t);
        }

        private object Array(int depth)
        {
            pos++;
            List<object> items = new List<object>();
            Space();
            if (pos < text.Length && text[pos] == ']') { pos++; return items.ToArray(); }
            while (true)
            {
                Space();
                items.Add(Value(depth + 1));
                Space();
                if (pos < text.Length && text[pos] == ',') { pos++; continue; }
                if (pos < text.Length && text[pos] == ']') { pos++; return items.ToArray(); }
                throw Fail("expected ',' or ']'");
            }
        }

        private string String()
        {
            pos++;
            StringBuilder sb = null;
            int start = pos;
            while (true)
            {
                if (pos >= text.Length) throw Fail("unterminated string");
                char c = text[pos];
                if (c == '"')
                {
                    string s = sb == null ? text.Substring(start, pos - start) : sb.Append(text, start, pos - start).ToString();
                    pos++;
                    return s;
                }
                if (c == '\\')
                {
                    if (sb == null) sb = new StringBuilder();
                    sb.Append(text, start, pos - start);
                    pos++;
                    if (pos >= text.Length) throw Fail("unterminated escape");
                    char e = text[pos];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (pos + 4 >= text.Length) throw Fail("short \\u escape");
                            sb.Append((char)int.Parse(text.Substring(pos + 1, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                            pos += 4;
                            break;
                        default: throw Fail("bad escape \\" + e);
                    }
                    pos++;
                    start = pos;
                    continue;
                }
                pos++;
            }
        }

        private object Number()
        {
            int start = pos;
            if (text[pos] == '-') pos++;
            bool fraction = false;
            while (pos < text.Length)
            {
                char c = text[pos];
                if (c >= '0' && c <= '9') { pos++; continue; }
                if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') { fraction = true; pos++; continue; }
                break;
            }
            string n = text.Substring(start, pos - start);
            if (!fraction)
            {
                int i;
                if (int.TryParse(n, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out i)) return i;
                long l;
                if (long.TryParse(n, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l)) return l;
            }
            double d;
            if (double.TryParse(n, NumberStyles.Float, CultureInfo.InvariantCulture, out d)) return d;
            throw Fail("bad number " + n);
        }
    }
}
