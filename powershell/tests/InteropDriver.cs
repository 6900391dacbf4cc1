// Drives the module's interop (powershell/src/Native.cs) on .NET against the
// real library and the emulator: discovery, ARM and Graph runs, streaming,
// progress, cancel, error paths, non-ASCII text both ways, and the handle's
// release. Compiled as C# 5 together with the interop class, as the module
// itself is compiled (netstandard2.0, so Windows PowerShell 5.1 loads it).
//
// usage: dotnet driver.dll ENDPOINT TOKEN MODULE_ROOT EXPECTED_VERSION
using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using AzBatch;

public static class InteropDriver
{
    static int passed, failed;
    static string endpoint, token;

    static void Check(bool ok, string what)
    {
        if (ok) { passed++; return; }
        failed++;
        Console.Error.WriteLine("FAIL: " + what);
    }

    static int Count(string haystack, string needle)
    {
        int n = 0, i = 0;
        while (haystack != null && (i = haystack.IndexOf(needle, i, StringComparison.Ordinal)) >= 0) { n++; i += needle.Length; }
        return n;
    }

    static string Options(string api, string extra)
    {
        return string.Format("{{\"api\":\"{0}\",\"endpoint\":\"{1}\",\"token\":\"{2}\"{3}}}", api, endpoint, token, extra);
    }

    static string Pim(int i)
    {
        return string.Format("{{\"id\":\"sub-{0}\",\"url\":\"/subscriptions/00000000-0000-4000-8000-{1:D12}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2020-10-01\"}}", i, i % 20);
    }

    static AzBatchException Throws(Action a)
    {
        try { a(); } catch (AzBatchException e) { return e; }
        return null;
    }

    static void Discovery(string moduleRoot)
    {
        string empty = Path.Combine(Path.GetTempPath(), "azbatch-empty-" + Guid.NewGuid().ToString("N"));
        try
        {
            NativeLoader.EnsureLoaded(empty, "/nonexistent/libazbatch.so");
            Check(false, "loading from nowhere must fail");
        }
        catch (DllNotFoundException e)
        {
            Check(e.Message.Contains("/nonexistent/libazbatch.so") && e.Message.Contains(Path.Combine(empty, "runtimes")), "the error lists every path tried: " + e.Message);
        }
        List<string> c = NativeLoader.Candidates(moduleRoot, null);
        string rid = NativeLoader.OperatingSystem() + "-" + NativeLoader.Architecture();
        Check(c.Count == 1 && c[0].Contains(Path.Combine("runtimes", rid, "native")), "runtimes/<os>-<arch>/native: " + c[0]);
        string loaded = NativeLoader.EnsureLoaded(moduleRoot, null);
        Check(loaded == c[0], "loaded from the module's runtimes folder: " + loaded);
    }

    static void Arm()
    {
        using (Batch b = new Batch(Options("arm", "")))
        {
            for (int i = 0; i < 25; i++) b.Add(Pim(i));
            string result = b.Execute();
            Check(Count(result, "\"status\":200") == 25, "25 ARM results");
            Check(result.Contains("\"summary\":{\"total\":25,\"succeeded\":25"), "summary: " + result.Substring(Math.Max(0, result.Length - 120)));
        }
    }

    static void GraphAndUnicode()
    {
        string name = "Zo\u00eb \u00c5ngstr\u00f6m \u6771\u4eac \U0001F680";
        string upn = "zoe-" + Guid.NewGuid().ToString("N").Substring(0, 8) + "@contoso.example";
        using (Batch b = new Batch(Options("graph", "")))
        {
            b.Add("{\"id\":\"read\",\"url\":\"/users/{{u.body.id}}?$select=displayName\",\"dependsOn\":[\"u\"]}");
            b.Add("{\"id\":\"u\",\"method\":\"POST\",\"url\":\"/users\",\"body\":{\"displayName\":\"" + name + "\",\"userPrincipalName\":\"" + upn + "\"}}");
            string result = b.Execute();
            Check(Count(result, "\"displayName\":\"" + name + "\"") == 2, "non-ASCII text survives both ways: " + result);
            Check(result.Contains("\"id\":\"read\",\"status\":200"), "the dependent read ran");
        }
        using (Batch b = new Batch(Options("graph", "")))
        {
            AzBatchException e = Throws(delegate { b.Add("{\"id\":\"\u00fcn\u00efc\u00f6d\u00e9\",\"url\":\"https://evil.example/x\"}"); });
            Check(e != null && e.Status == Status.InvalidValue && e.Message.Contains("\u00fcn\u00efc\u00f6d\u00e9") && e.Message.Contains("\"url\""), "non-ASCII in error text: " + (e == null ? "no error" : e.Message));
        }
    }

    static void Streaming()
    {
        using (Batch b = new Batch(Options("arm", ",\"batchSize\":5")))
        {
            for (int i = 0; i < 30; i++) b.Add(Pim(i));
            AzBatchException early = Throws(delegate { string x; b.Next(0, out x); });
            Check(early != null && early.Status == Status.WrongState, "next before start");
            b.Start();
            AzBatchException late = Throws(delegate { b.Add(Pim(99)); });
            Check(late != null && late.Status == Status.WrongState && late is AzBatchWrongStateException, "add after start: " + (late == null ? "" : late.Message));
            int items = 0;
            Status status;
            string item;
            HashSet<string> ids = new HashSet<string>();
            while ((status = b.Next(2000, out item)) != Status.Done)
            {
                if (status == Status.Timeout) continue;
                items++;
                int at = item.IndexOf("\"id\":\"", StringComparison.Ordinal) + 6;
                ids.Add(item.Substring(at, item.IndexOf('"', at) - at));
            }
            Check(items == 30 && ids.Count == 30, "30 distinct results streamed, got " + items);
            Progress p = b.GetProgress();
            Check(p.Total == 30 && p.Completed == 30 && p.Succeeded == 30 && p.InFlight == 0 && p.Batches >= 6, "progress " + p.Completed + "/" + p.Total + " in " + p.Batches + " batches");
        }
    }

    static void Cancel()
    {
        using (Batch b = new Batch(Options("arm", ",\"batchSize\":2,\"concurrency\":1")))
        {
            for (int i = 0; i < 40; i++) b.Add(Pim(i));
            b.Start();
            string item;
            while (b.Next(5000, out item) != Status.Ok) { }
            // Cancel from another thread, as Ctrl+C in PowerShell does.
            Thread t = new Thread(delegate () { b.Cancel(); });
            t.Start();
            t.Join();
            int results = 1, cancelled = 0;
            Status status;
            DateTime start = DateTime.UtcNow;
            while ((status = b.Next(5000, out item)) != Status.Done)
            {
                if (status == Status.Timeout) continue;
                results++;
                if (item.Contains("\"code\":\"Cancelled\"")) cancelled++;
            }
            Check(results == 40, "every request once after cancel: " + results);
            Check(cancelled >= 30, "most were cancelled: " + cancelled);
            Check((DateTime.UtcNow - start).TotalSeconds < 3, "cancel returned promptly");
        }
    }

    static void Errors()
    {
        AzBatchException e = Throws(delegate { new Batch("{\"api\":\"arm\",\"batchsize\":3}"); });
        Check(e != null && e.Status == Status.InvalidValue && e.Message.Contains("unknown field `batchsize`"), "unknown option: " + (e == null ? "" : e.Message));
        e = Throws(delegate { new Batch("{\"api\":"); });
        Check(e != null && e.Status == Status.InvalidJson && e is AzBatchInvalidJsonException && e.Message.Contains("not valid JSON"), "truncated options keep their own status and exception");
        using (Batch b = new Batch(Options("arm", "")))
        {
            e = Throws(delegate { b.Add("{\"url\":"); });
            Check(e != null && e.Status == Status.InvalidJson, "bad request JSON");
            e = Throws(delegate { b.Add("{\"id\":\"a\",\"url\":\"/x\",\"dependsOn\":[\"a\"]}"); });
            Check(e != null && e.Status == Status.InvalidValue && e.Message.Contains("cannot depend on itself"), "self dependency");
        }
    }

    static void Release()
    {
        Batch b = new Batch(Options("arm", ""));
        b.Add(Pim(0));
        b.Dispose();
        Check(b.IsDisposed, "Dispose releases the handle");
        bool threw = false;
        try { b.Add(Pim(1)); } catch (ObjectDisposedException) { threw = true; }
        Check(threw, "a released handle is never passed to the library");
        b.Dispose();
        Check(true, "disposing twice is harmless");
        // Batches left to the finalizer are released too (SafeHandle).
        for (int i = 0; i < 20; i++) new Batch(Options("arm", "")).Add(Pim(i));
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Check(true, "finalizers ran without crashing");
    }

    public static int Main(string[] args)
    {
        if (args.Length != 4)
        {
            Console.Error.WriteLine("usage: driver.exe ENDPOINT TOKEN MODULE_ROOT EXPECTED_VERSION");
            return 2;
        }
        endpoint = args[0];
        token = args[1];
        Discovery(args[2]);
        Check(Batch.Version() == args[3], "batch_version() = " + Batch.Version());
        string info = Batch.Info();
        Check(info.Contains("\"version\":\"" + args[3] + "\"") && info.Contains("\"maxConcurrency\":256") && info.Contains("\"graph\":\"https://graph.microsoft.us\""), "batch_info: " + info);
        Check(Batch.ApiOfUrl("/users/1") == "Graph" && Batch.ApiOfUrl("/subscriptions/s?api-version=1") == "Arm" && Batch.ApiOfUrl("/whatever") == null, "batch_url_api");
        Arm();
        GraphAndUnicode();
        Streaming();
        Cancel();
        Errors();
        Release();
        Console.WriteLine("{0} passed, {1} failed", passed, failed);
        return failed == 0 ? 0 : 1;
    }
}
