// AzBatch interop: P/Invoke declarations for include/azbatch.h, a small safe
// wrapper, and the loader that resolves the native library explicitly. Part of
// the precompiled AzBatch.dll (netstandard2.0, so Windows PowerShell 5.1 and
// PowerShell 7 load the same file); kept to C# 5, as the rest of the module.
using System;
using System.Text.RegularExpressions;
using System.Collections.Generic;
using System.IO;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace AzBatch
{
    /// <summary>Counters of a run (AzBatchProgress in azbatch.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Progress
    {
        public ulong Total;
        public ulong Completed;
        public ulong Succeeded;
        public ulong Failed;
        public ulong Retries;
        public ulong InFlight;
        public ulong Throttled;
        public ulong Batches;
        public ulong Replayed;
    }

    /// <summary>AzBatchStatus of azbatch.h: AZBATCH_OK is Ok, AZBATCH_ERR_NULL_ARGUMENT
    /// is NullArgument, and so on (checked against the header by module_check.py).</summary>
    public enum Status : int
    {
        Ok = 0,
        Done = 1,
        Timeout = 2,
        Full = 3,
        NullArgument = -1,
        InvalidUtf8 = -2,
        InvalidJson = -3,
        InvalidValue = -4,
        WrongState = -5,
        Cancelled = -6,
        Panic = -7,
        Internal = -8,
    }

    /// <summary>The AzBatch* handle; releasing it calls batch_free.</summary>
    public sealed class BatchHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public BatchHandle() : base(true) { }

        protected override bool ReleaseHandle()
        {
            NativeMethods.batch_free(handle);
            return true;
        }
    }

    /// <summary>The C ABI, one declaration per function of include/azbatch.h.
    /// Strings go in as NUL-terminated UTF-8 byte arrays; strings come out as
    /// pointers that must be freed with batch_string_free.</summary>
    public static class NativeMethods
    {
        public const string Library = "azbatch";

        [DllImport(Library, EntryPoint = "batch_new", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_new(byte[] optionsJson, out BatchHandle batchOut, out IntPtr errorOut);

        [DllImport(Library, EntryPoint = "batch_add", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_add(BatchHandle batch, byte[] requestJson, out IntPtr errorOut);

        [DllImport(Library, EntryPoint = "batch_execute", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_execute(BatchHandle batch, out IntPtr resultOut, out IntPtr errorOut);

        [DllImport(Library, EntryPoint = "batch_start", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_start(BatchHandle batch, out IntPtr errorOut);

        [DllImport(Library, EntryPoint = "batch_next", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_next(BatchHandle batch, uint timeoutMs, out IntPtr itemOut);

        [DllImport(Library, EntryPoint = "batch_progress", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_progress(BatchHandle batch, out Progress progressOut);

        [DllImport(Library, EntryPoint = "batch_cancel", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_cancel(BatchHandle batch);

        [DllImport(Library, EntryPoint = "batch_open", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_open(BatchHandle batch, out IntPtr errorOut);

        [DllImport(Library, EntryPoint = "batch_close_input", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_close_input(BatchHandle batch, out IntPtr errorOut);

        [DllImport(Library, EntryPoint = "batch_set_token", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_set_token(BatchHandle batch, byte[] token, out IntPtr errorOut);

        [DllImport(Library, EntryPoint = "batch_info", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_info(out IntPtr infoOut);

        [DllImport(Library, EntryPoint = "batch_url_api", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_url_api(byte[] url, out IntPtr apiOut);

        [DllImport(Library, EntryPoint = "batch_request_json", CallingConvention = CallingConvention.Cdecl)]
        public static extern Status batch_request_json(byte[] requestJson, ulong index, out IntPtr jsonOut, out IntPtr errorOut);

        [DllImport(Library, EntryPoint = "batch_free", CallingConvention = CallingConvention.Cdecl)]
        public static extern void batch_free(IntPtr batch);

        [DllImport(Library, EntryPoint = "batch_string_free", CallingConvention = CallingConvention.Cdecl)]
        public static extern void batch_string_free(IntPtr s);

        [DllImport(Library, EntryPoint = "batch_version", CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr batch_version();

        /// <summary>A string as NUL-terminated UTF-8.</summary>
        public static byte[] Utf8(string s)
        {
            if (s == null) return null;
            byte[] body = Encoding.UTF8.GetBytes(s);
            byte[] z = new byte[body.Length + 1];
            Buffer.BlockCopy(body, 0, z, 0, body.Length);
            return z;
        }

        /// <summary>Reads a NUL-terminated UTF-8 string without freeing it.</summary>
        public static string ReadUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            int len = 0;
            while (Marshal.ReadByte(p, len) != 0) len++;
            byte[] bytes = new byte[len];
            Marshal.Copy(p, bytes, 0, len);
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>Reads a string AzBatch handed out, then frees it.</summary>
        public static string TakeUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            try { return ReadUtf8(p); }
            finally { batch_string_free(p); }
        }
    }

    /// <summary>An AzBatch call failed with Status; each status has its own
    /// exception type (AzBatchException.For picks it), all derived from this one.</summary>
    public class AzBatchException : Exception
    {
        public Status Status { get; private set; }

        public AzBatchException(Status status, string message) : base(message) { Status = status; }

        /// <summary>The library's message in PowerShell's words: where it names
        /// an option in each of AzBatch's faces, "api graph (--api graph, -Api
        /// Graph)", only the parameter is kept ("-Api Graph"): the words before
        /// the parentheses are as many as the parameter's.</summary>
        public static string InPowerShellWords(string message)
        {
            if (message == null || message.IndexOf("(--", StringComparison.Ordinal) < 0) return message;
            StringBuilder sb = new StringBuilder(message.Length);
            int at = 0;
            foreach (Match m in Hint.Matches(message))
            {
                string before = message.Substring(at, m.Index - at);
                string parameter = m.Groups[1].Value;
                // Drop the option's own words (its JSON name and value) before the hint.
                string[] words = before.TrimEnd().Split(' ');
                int keep = Math.Max(0, words.Length - parameter.Split(' ').Length);
                sb.Append(string.Join(" ", words, 0, keep));
                if (keep > 0) sb.Append(' ');
                sb.Append(parameter);
                at = m.Index + m.Length;
            }
            sb.Append(message.Substring(at));
            return sb.ToString();
        }

        private static readonly Regex Hint = new Regex(@" ?\(--[^,()]+, (-[A-Z][^()]*)\)", RegexOptions.CultureInvariant);

        /// <summary>The exception of a failed call's status.</summary>
        public static AzBatchException For(Status status, string message)
        {
            message = InPowerShellWords(message);
            switch (status)
            {
                case Status.NullArgument: return new AzBatchNullArgumentException(message);
                case Status.InvalidUtf8: return new AzBatchInvalidUtf8Exception(message);
                case Status.InvalidJson: return new AzBatchInvalidJsonException(message);
                case Status.InvalidValue: return new AzBatchInvalidValueException(message);
                case Status.WrongState: return new AzBatchWrongStateException(message);
                case Status.Cancelled: return new AzBatchCancelledException(message);
                case Status.Panic: return new AzBatchPanicException(message);
                default: return new AzBatchInternalException(status, message);
            }
        }
    }

    /// <summary>AZBATCH_ERR_NULL_ARGUMENT: a required pointer was NULL (a bug in the caller).</summary>
    public sealed class AzBatchNullArgumentException : AzBatchException { public AzBatchNullArgumentException(string m) : base(Status.NullArgument, m) { } }
    /// <summary>AZBATCH_ERR_INVALID_UTF8: a string was not UTF-8.</summary>
    public sealed class AzBatchInvalidUtf8Exception : AzBatchException { public AzBatchInvalidUtf8Exception(string m) : base(Status.InvalidUtf8, m) { } }
    /// <summary>AZBATCH_ERR_INVALID_JSON: options or a request were not JSON.</summary>
    public sealed class AzBatchInvalidJsonException : AzBatchException { public AzBatchInvalidJsonException(string m) : base(Status.InvalidJson, m) { } }
    /// <summary>AZBATCH_ERR_INVALID_VALUE: JSON with a bad value; the message says which and where.</summary>
    public sealed class AzBatchInvalidValueException : AzBatchException { public AzBatchInvalidValueException(string m) : base(Status.InvalidValue, m) { } }
    /// <summary>AZBATCH_ERR_WRONG_STATE: the call does not fit the batch's state.</summary>
    public sealed class AzBatchWrongStateException : AzBatchException { public AzBatchWrongStateException(string m) : base(Status.WrongState, m) { } }
    /// <summary>AZBATCH_ERR_CANCELLED: the batch was cancelled before the call.</summary>
    public sealed class AzBatchCancelledException : AzBatchException { public AzBatchCancelledException(string m) : base(Status.Cancelled, m) { } }
    /// <summary>AZBATCH_ERR_PANIC: AzBatch panicked (caught at the boundary); free the batch.</summary>
    public sealed class AzBatchPanicException : AzBatchException { public AzBatchPanicException(string m) : base(Status.Panic, m) { } }
    /// <summary>AZBATCH_ERR_INTERNAL, or a status this module does not know.</summary>
    public sealed class AzBatchInternalException : AzBatchException { public AzBatchInternalException(Status s, string m) : base(s, m) { } }

    /// <summary>One batch: add requests, then Execute or Start and Next.
    /// Cancel and GetProgress may be called from another thread.</summary>
    public sealed class Batch : IDisposable
    {
        private readonly BatchHandle handle;

        public Batch(string optionsJson)
        {
            IntPtr error;
            Status status = NativeMethods.batch_new(NativeMethods.Utf8(optionsJson), out handle, out error);
            if (status != Status.Ok || handle == null || handle.IsInvalid)
            {
                string message = NativeMethods.TakeUtf8(error);
                if (handle != null) handle.Dispose();
                throw AzBatchException.For(status, message ?? string.Format("batch_new failed with status {0}", status));
            }
        }

        private static void Check(Status status, IntPtr error, string what)
        {
            string message = NativeMethods.TakeUtf8(error);
            if (status < 0)
            {
                throw AzBatchException.For(status, message ?? string.Format("{0} failed with status {1}", what, status));
            }
        }

        /// <summary>Adds one request given as JSON.</summary>
        public void Add(string requestJson)
        {
            IntPtr error;
            Status status = NativeMethods.batch_add(handle, NativeMethods.Utf8(requestJson), out error);
            Check(status, error, "batch_add");
        }

        /// <summary>Adds one request to a batch opened with Open; false when its
        /// input is full (nothing added: take results with Next, then add again).</summary>
        public bool TryAdd(string requestJson)
        {
            IntPtr error;
            Status status = NativeMethods.batch_add(handle, NativeMethods.Utf8(requestJson), out error);
            if (status == Status.Full)
            {
                NativeMethods.TakeUtf8(error);
                return false;
            }
            Check(status, error, "batch_add");
            return true;
        }

        /// <summary>Starts sending with the input open: TryAdd goes on while Next
        /// hands out results, until CloseInput.</summary>
        public void Open()
        {
            IntPtr error;
            Status status = NativeMethods.batch_open(handle, out error);
            Check(status, error, "batch_open");
        }

        /// <summary>Hands the running batch a fresh static token.</summary>
        public void SetToken(string token)
        {
            IntPtr error;
            byte[] bytes = NativeMethods.Utf8(token);
            try
            {
                Status status = NativeMethods.batch_set_token(handle, bytes, out error);
                Check(status, error, "batch_set_token");
            }
            finally
            {
                if (bytes != null) Array.Clear(bytes, 0, bytes.Length);
            }
        }

        /// <summary>No more requests: the run ends when the rest is done.</summary>
        public void CloseInput()
        {
            IntPtr error;
            Status status = NativeMethods.batch_close_input(handle, out error);
            Check(status, error, "batch_close_input");
        }

        /// <summary>Starts sending in the background.</summary>
        public void Start()
        {
            IntPtr error;
            Status status = NativeMethods.batch_start(handle, out error);
            Check(status, error, "batch_start");
        }

        /// <summary>Starts and waits for every result: {"responses":[...],"summary":{...}}.</summary>
        public string Execute()
        {
            IntPtr result, error;
            Status status = NativeMethods.batch_execute(handle, out result, out error);
            Check(status, error, "batch_execute");
            return NativeMethods.TakeUtf8(result);
        }

        /// <summary>Waits up to timeoutMs for the next result. Returns Status.Ok with
        /// the result's JSON in item, Status.Timeout, or Status.Done.</summary>
        public Status Next(uint timeoutMs, out string item)
        {
            IntPtr p;
            Status status = NativeMethods.batch_next(handle, timeoutMs, out p);
            item = status == Status.Ok ? NativeMethods.TakeUtf8(p) : null;
            if (status < 0)
            {
                throw AzBatchException.For(status, string.Format("batch_next failed with status {0}", status));
            }
            return status;
        }

        /// <summary>The run's counters now.</summary>
        public Progress GetProgress()
        {
            Progress p;
            Status status = NativeMethods.batch_progress(handle, out p);
            if (status < 0) throw AzBatchException.For(status, "batch_progress failed");
            return p;
        }

        /// <summary>Stops sending; unfinished requests end as Cancelled.</summary>
        public void Cancel()
        {
            if (!handle.IsClosed) NativeMethods.batch_cancel(handle);
        }

        public bool IsDisposed { get { return handle.IsClosed; } }

        public void Dispose()
        {
            handle.Dispose();
        }

        /// <summary>The native library's version.</summary>
        public static string Version()
        {
            return NativeMethods.ReadUtf8(NativeMethods.batch_version());
        }

        /// <summary>What the library knows that the module must not repeat:
        /// {"version","limits":{...},"clouds":[...]} (see batch_info in azbatch.h).</summary>
        public static string Info()
        {
            IntPtr p;
            Status status = NativeMethods.batch_info(out p);
            if (status != Status.Ok) throw AzBatchException.For(status, "batch_info failed");
            return NativeMethods.TakeUtf8(p);
        }

        /// <summary>"Arm" or "Graph" for a request URL, or null when it could be
        /// either: the library's reading of it (batch_url_api).</summary>
        public static string ApiOfUrl(string url)
        {
            return ApiOfUrlCore(url);
        }

        /// <summary>A request in the library's own fields (batch_request_json):
        /// Invoke-AzRestMethod's and Invoke-MgGraphRequest's shapes resolved.</summary>
        public static string RequestJson(string requestJson, int index)
        {
            IntPtr json, error;
            Status status = NativeMethods.batch_request_json(NativeMethods.Utf8(requestJson), (ulong)index, out json, out error);
            string message = NativeMethods.TakeUtf8(error);
            string text = NativeMethods.TakeUtf8(json);
            if (status < 0) throw AzBatchException.For(status, message ?? "batch_request_json failed");
            return text;
        }

        private static string ApiOfUrlCore(string url)
        {
            IntPtr p;
            Status status = NativeMethods.batch_url_api(NativeMethods.Utf8(url), out p);
            if (status != Status.Ok) throw AzBatchException.For(status, "batch_url_api failed");
            string api = NativeMethods.TakeUtf8(p);
            if (api == "arm") return "Arm";
            if (api == "graph") return "Graph";
            return null;
        }
    }

    /// <summary>Finds and loads the native library explicitly, never by luck:
    /// AZBATCH_NATIVE_PATH (the library or its folder), else
    /// runtimes/&lt;os&gt;-&lt;arch&gt;/native/ under the module folder. On .NET Core
    /// (PowerShell 7) a DllImport resolver for this assembly hands DllImport("azbatch")
    /// the library loaded by path (NativeLibrary, found by reflection: netstandard2.0
    /// does not name it); on .NET Framework (Windows PowerShell 5.1) the library is
    /// loaded by absolute path first, which DllImport then binds to by name. When
    /// nothing loads, the error lists every path tried.</summary>
    /// <summary>How the library is to be loaded: <see cref="NativeLoader.Plan"/>.</summary>
    public sealed class LoadPlan
    {
        /// <summary>Why this process cannot load AzBatch at all, or null.</summary>
        public string Refusal;
        /// <summary>"NativeLibrary" or "LoadLibraryW".</summary>
        public string Method;
        /// <summary>The runtime identifier, e.g. win-x64.</summary>
        public string Rid;
        /// <summary>Where to look, in order.</summary>
        public List<string> Paths = new List<string>();
    }

    public static class NativeLoader
    {
        private static readonly object gate = new object();
        private static string loadedPath;
        private static IntPtr loadedHandle;
        private static bool resolverSet;

        [DllImport("kernel32", EntryPoint = "LoadLibraryW", CharSet = CharSet.Unicode, SetLastError = true)]
        private static extern IntPtr LoadLibraryW(string path);

        /// <summary>"win", "linux" or "osx".</summary>
        public static string OperatingSystem()
        {
            if (Environment.OSVersion.Platform == PlatformID.Win32NT) return "win";
            if (Directory.Exists("/System/Library/CoreServices")) return "osx";
            return "linux";
        }

        /// <summary>"x64", "x86", "arm64" or "arm" for this process.</summary>
        public static string Architecture()
        {
            // RuntimeInformation is missing from older .NET Framework: ask by reflection.
            string[] names = {
                "System.Runtime.InteropServices.RuntimeInformation, System.Runtime.InteropServices.RuntimeInformation",
                "System.Runtime.InteropServices.RuntimeInformation, System.Runtime.InteropServices",
                "System.Runtime.InteropServices.RuntimeInformation, mscorlib",
            };
            foreach (string name in names)
            {
                Type t = Type.GetType(name, false);
                if (t == null) continue;
                PropertyInfo p = t.GetProperty("ProcessArchitecture");
                if (p == null) continue;
                object v = p.GetValue(null, null);
                if (v != null) return v.ToString().ToLowerInvariant();
            }
            return IntPtr.Size == 8 ? "x64" : "x86";
        }

        /// <summary>"core" on .NET Core and later (PowerShell 7), where
        /// NativeLibrary exists; "framework" on .NET Framework (Windows PowerShell 5.1).</summary>
        public static string Framework()
        {
            return NativeLibraryMethod("Load", new Type[] { typeof(string) }) != null ? "core" : "framework";
        }

        /// <summary>The library's file name on an OS.</summary>
        public static string FileName(string os)
        {
            if (os == "win") return "azbatch.dll";
            if (os == "osx") return "libazbatch.dylib";
            return "libazbatch.so";
        }

        /// <summary>The library's file name on this OS.</summary>
        public static string FileName()
        {
            return FileName(OperatingSystem());
        }

        /// <summary>How to load the library on one platform, chosen from nothing but
        /// its arguments (so every combination is tested): the paths to try in order
        /// (the override, the library or its folder, first; then
        /// runtimes/&lt;os&gt;-&lt;arch&gt;/native/ under the module folder), the way to
        /// load ("NativeLibrary" on .NET Core, "LoadLibraryW" on .NET Framework, which
        /// runs only on Windows), or the reason this process cannot load it at all.</summary>
        public static LoadPlan Plan(string os, string arch, string framework, string moduleRoot, string overridePath, bool overrideIsFolder)
        {
            LoadPlan plan = new LoadPlan();
            if (arch == "x86" || arch == "arm")
            {
                plan.Refusal = os == "win"
                    ? "AzBatch needs a 64-bit PowerShell: this process is 32-bit (" + arch + "). Start the 64-bit Windows PowerShell (System32, not SysWOW64) or PowerShell 7 (x64 or arm64)."
                    : "AzBatch needs a 64-bit process (x64 or arm64): this one is " + arch + ".";
                return plan;
            }
            if (arch != "x64" && arch != "arm64")
            {
                plan.Refusal = "AzBatch has no native library for the processor architecture " + arch + " (it ships for x64 and arm64).";
                return plan;
            }
            if (framework == "framework" && os != "win")
            {
                plan.Refusal = ".NET Framework runs only on Windows; on " + os + " AzBatch needs PowerShell 7.";
                return plan;
            }
            plan.Method = framework == "framework" ? "LoadLibraryW" : "NativeLibrary";
            plan.Rid = os + "-" + arch;
            string file = FileName(os);
            if (!string.IsNullOrEmpty(overridePath))
            {
                plan.Paths.Add(overrideIsFolder ? Path.Combine(overridePath, file) : overridePath);
            }
            plan.Paths.Add(Path.Combine(Path.Combine(Path.Combine(Path.Combine(moduleRoot, "runtimes"), plan.Rid), "native"), file));
            return plan;
        }

        /// <summary>Where to look, in order, in this process.</summary>
        public static List<string> Candidates(string moduleRoot, string overridePath)
        {
            return ThisProcess(moduleRoot, overridePath).Paths;
        }

        private static LoadPlan ThisProcess(string moduleRoot, string overridePath)
        {
            bool folder = !string.IsNullOrEmpty(overridePath) && Directory.Exists(overridePath);
            return Plan(OperatingSystem(), Architecture(), Framework(), moduleRoot, overridePath, folder);
        }

        /// <summary>Loads the library once; throws naming every path tried.</summary>
        public static string EnsureLoaded(string moduleRoot, string overridePath)
        {
            lock (gate)
            {
                if (loadedPath != null) return loadedPath;
                LoadPlan plan = ThisProcess(moduleRoot, overridePath);
                if (plan.Refusal != null) throw new PlatformNotSupportedException(plan.Refusal);
                List<string> tried = new List<string>();
                foreach (string path in plan.Paths)
                {
                    string why;
                    IntPtr h = TryLoad(path, plan.Method, out why);
                    if (h != IntPtr.Zero)
                    {
                        loadedHandle = h;
                        loadedPath = path;
                        return path;
                    }
                    tried.Add(string.Format("  {0}: {1}", path, why));
                }
                throw new DllNotFoundException(string.Format(
                    "The AzBatch native library could not be loaded. Tried:{0}{1}{0}{2}",
                    Environment.NewLine, string.Join(Environment.NewLine, tried.ToArray()), Advice(moduleRoot, plan.Rid)));
            }
        }

        /// <summary>What to do when nothing loaded: a package that lacks this
        /// platform says so and names what it has; a source tree says how to build.</summary>
        private static string Advice(string moduleRoot, string rid)
        {
            string runtimes = Path.Combine(moduleRoot, "runtimes");
            List<string> has = new List<string>();
            if (Directory.Exists(runtimes))
            {
                foreach (string d in Directory.GetDirectories(runtimes)) has.Add(Path.GetFileName(d));
            }
            has.Sort(StringComparer.Ordinal);
            if (has.Count > 0 && !has.Contains(rid))
            {
                return string.Format("This AzBatch package has no native library for {0} (it has {1}). Install a release built for {0}, or set AZBATCH_NATIVE_PATH to a library built for it.",
                    rid, string.Join(", ", has.ToArray()));
            }
            return "Set AZBATCH_NATIVE_PATH to the library (or its folder); a module built from source comes from scripts/build-module.sh.";
        }

        /// <summary>The path loaded, or null.</summary>
        public static string LoadedPath { get { return loadedPath; } }

        private static IntPtr TryLoad(string path, string method, out string why)
        {
            why = null;
            if (!File.Exists(path))
            {
                why = "no such file";
                return IntPtr.Zero;
            }
            if (method == "NativeLibrary")
            {
                // .NET Core: load by path, and answer DllImport("azbatch") with it.
                MethodInfo load = NativeLibraryMethod("Load", new Type[] { typeof(string) });
                try
                {
                    IntPtr h = (IntPtr)load.Invoke(null, new object[] { path });
                    SetResolver();
                    return h;
                }
                catch (TargetInvocationException e)
                {
                    why = e.InnerException != null ? e.InnerException.Message : e.Message;
                    return IntPtr.Zero;
                }
            }
            if (method == "LoadLibraryW")
            {
                // .NET Framework: a module loaded by absolute path is what DllImport binds to.
                IntPtr h = LoadLibraryW(path);
                if (h == IntPtr.Zero) why = string.Format("LoadLibrary failed (error {0})", Marshal.GetLastWin32Error());
                return h;
            }
            why = "this runtime has neither NativeLibrary nor LoadLibrary";
            return IntPtr.Zero;
        }

        private static MethodInfo NativeLibraryMethod(string name, Type[] parameters)
        {
            Type t = typeof(Marshal).Assembly.GetType("System.Runtime.InteropServices.NativeLibrary", false);
            return t == null ? null : t.GetMethod(name, parameters);
        }

        private static void SetResolver()
        {
            if (resolverSet) return;
            Type resolverType = typeof(Marshal).Assembly.GetType("System.Runtime.InteropServices.DllImportResolver", false);
            if (resolverType == null) return;
            MethodInfo set = NativeLibraryMethod("SetDllImportResolver", new Type[] { typeof(Assembly), resolverType });
            if (set == null) return;
            Delegate resolver = Delegate.CreateDelegate(resolverType, typeof(NativeLoader).GetMethod("Resolve", BindingFlags.NonPublic | BindingFlags.Static));
            try
            {
                set.Invoke(null, new object[] { typeof(NativeMethods).Assembly, resolver });
            }
            catch (TargetInvocationException)
            {
                // Already set for this assembly (the module was imported before in this process).
            }
            resolverSet = true;
        }

        private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
        {
            return libraryName == NativeMethods.Library ? loadedHandle : IntPtr.Zero;
        }
    }
}
