// What the module knows of the library: where it is, and the facts it hands
// out through batch_info (limits, clouds), read once per process.
using System;
using System.Collections.Generic;
using System.IO;
using System.Management.Automation;

namespace AzBatch
{
    public sealed class Limits
    {
        public int ArmMaxBatchSize, GraphMaxBatchSize, MinConcurrency, MaxConcurrency, MinAttempts, MaxAttempts, MaxTimeoutSeconds;
    }

    public sealed class Cloud
    {
        public string Name, Arm, Graph, Login, ArmResource, GraphResource;
    }

    /// <summary>batch_info, read.</summary>
    public sealed class LibraryInfo
    {
        public string Version;
        public Limits Limits = new Limits();
        public List<Cloud> Clouds = new List<Cloud>();

        public Cloud Cloud(string name)
        {
            foreach (Cloud c in Clouds) if (string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase)) return c;
            return null;
        }

        public string[] CloudNames()
        {
            List<string> names = new List<string>();
            foreach (Cloud c in Clouds) names.Add(c.Name);
            return names.ToArray();
        }

        /// <summary>Which field a request key fills (in any case), or null.</summary>
        public string FieldOf(string key)
        {
            string field;
            return requestKeys.TryGetValue(key, out field) ? field : null;
        }

        /// <summary>Whether a key belongs to Invoke-AzRestMethod's or
        /// Invoke-MgGraphRequest's shape (the library resolves those).</summary>
        public bool IsPeerKey(string key) { return peerKeys.Contains(key); }

        /// <summary>The keys a request takes, for messages.</summary>
        public string RequestKeyList() { return string.Join(", ", keyNames.ToArray()); }

        /// <summary>The Graph versions a URL can name (v1.0, beta).</summary>
        public string[] GraphVersions = new string[0];

        private readonly Dictionary<string, string> requestKeys = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        private readonly HashSet<string> peerKeys = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        private readonly List<string> keyNames = new List<string>();

        public static LibraryInfo Parse(string json)
        {
            PSObject o = (PSObject)JsonReader.Read(json);
            LibraryInfo info = new LibraryInfo();
            info.Version = (string)o.Properties["version"].Value;
            PSObject l = (PSObject)o.Properties["limits"].Value;
            info.Limits.ArmMaxBatchSize = Int(l, "armMaxBatchSize");
            info.Limits.GraphMaxBatchSize = Int(l, "graphMaxBatchSize");
            info.Limits.MinConcurrency = Int(l, "minConcurrency");
            info.Limits.MaxConcurrency = Int(l, "maxConcurrency");
            info.Limits.MinAttempts = Int(l, "minAttempts");
            info.Limits.MaxAttempts = Int(l, "maxAttempts");
            info.Limits.MaxTimeoutSeconds = Int(l, "maxTimeoutSeconds");
            foreach (object c in (object[])o.Properties["clouds"].Value)
            {
                PSObject p = (PSObject)c;
                info.Clouds.Add(new Cloud {
                    Name = (string)p.Properties["name"].Value,
                    Arm = (string)p.Properties["arm"].Value,
                    Graph = (string)p.Properties["graph"].Value,
                    Login = (string)p.Properties["login"].Value,
                    ArmResource = (string)p.Properties["armResource"].Value,
                    GraphResource = (string)p.Properties["graphResource"].Value,
                });
            }
            foreach (object k in (object[])o.Properties["requestKeys"].Value)
            {
                PSObject p = (PSObject)k;
                string key = (string)p.Properties["key"].Value;
                info.requestKeys[key] = (string)p.Properties["field"].Value;
                if ((bool)p.Properties["peer"].Value) info.peerKeys.Add(key);
                info.keyNames.Add(char.ToUpperInvariant(key[0]) + key.Substring(1));
            }
            List<string> versions = new List<string>();
            foreach (object v in (object[])o.Properties["graphVersions"].Value) versions.Add((string)v);
            info.GraphVersions = versions.ToArray();
            return info;
        }

        private static int Int(PSObject o, string name) { return Convert.ToInt32(o.Properties[name].Value); }
    }

    /// <summary>The module's state in this process.</summary>
    public static class Module
    {
        private static readonly object gate = new object();
        private static LibraryInfo info;

        /// <summary>The folder AzBatch.dll was loaded from (runtimes/ is under it).</summary>
        public static string Root
        {
            get { return Path.GetDirectoryName(typeof(Module).Assembly.Location); }
        }

        /// <summary>Loads the native library (once) and reads what it knows.</summary>
        public static void Load()
        {
            lock (gate)
            {
                NativeLoader.EnsureLoaded(Root, System.Environment.GetEnvironmentVariable("AZBATCH_NATIVE_PATH"));
                if (info == null) info = LibraryInfo.Parse(Batch.Info());
            }
        }

        public static LibraryInfo Info
        {
            get { Load(); return info; }
        }
    }
}
