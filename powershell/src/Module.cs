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
