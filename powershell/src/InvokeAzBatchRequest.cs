// Invoke-AzBatchRequest: the module's one cmdlet, a thin skin over the C ABI.
// Parameter binding, token acquisition, JSON in and out, progress and output
// live here; batching, retries, paging, dependencies, the subscription fan-out
// and HTTP live in the core. A compiled cmdlet because per-item work in script
// costs hundreds of microseconds a request (see README, "PowerShell").
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Management.Automation;
using System.Runtime.InteropServices;
using System.Security;
using System.Text;
using System.Threading;

namespace AzBatch
{
    [Cmdlet(VerbsLifecycle.Invoke, "AzBatchRequest", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = "Request")]
    [OutputType(typeof(Response))]
    public sealed class InvokeAzBatchRequestCommand : PSCmdlet, IDisposable
    {
        /// <summary>The Write-Progress id of AzBatch's bar.</summary>
        public const int ProgressId = 0x4A5A;

        [Parameter(ParameterSetName = "Request", Mandatory = true, ValueFromPipeline = true, Position = 0)]
        [AllowNull, AllowEmptyCollection]
        public object[] Request { get; set; }

        [Parameter(ParameterSetName = "Subscription", Mandatory = true)]
        public string Url { get; set; }

        [Parameter(ParameterSetName = "Subscription", Mandatory = true)]
        public SwitchParameter ForEachSubscription { get; set; }

        [Parameter(ParameterSetName = "Subscription")]
        [ValidateSet("GET", "PUT", "PATCH", "POST", "DELETE", "HEAD", IgnoreCase = true)]
        public string Method { get { return method; } set { method = value; } }
        private string method = "GET";

        [Parameter(ParameterSetName = "Subscription")]
        public object Body { get; set; }

        [Parameter]
        [ValidateSet("Arm", "Graph", IgnoreCase = true)]
        public string Api { get; set; }

        [Parameter]
        [ArgumentCompleter(typeof(GraphVersionCompleter))]
        public string GraphVersion { get; set; }

        [Parameter]
        [ArgumentCompleter(typeof(CloudCompleter))]
        public string Environment { get { return environment; } set { environment = value; } }
        private string environment = "AzureCloud";

        [Parameter]
        public Uri Endpoint { get; set; }

        [Parameter]
        public object AccessToken { get; set; }

        [Parameter]
        public SwitchParameter Identity { get; set; }

        [Parameter]
        public string AccountId { get; set; }

        [Parameter]
        public SwitchParameter UseAzureCli { get; set; }

        [Parameter]
        public SwitchParameter UseClientSecret { get; set; }

        [Parameter]
        public int BatchSize { get; set; }

        [Parameter]
        public int ThrottleLimit { get; set; }

        [Parameter]
        public int MaxAttempts { get; set; }

        [Parameter]
        public SwitchParameter FollowNextLink { get; set; }

        [Parameter]
        public int TimeoutSec { get; set; }

        [Parameter]
        public int AttemptTimeoutSec { get; set; }

        [Parameter]
        public SwitchParameter RetryNonIdempotent { get; set; }

        [Parameter]
        public string JournalPath { get; set; }

        [Parameter]
        public SwitchParameter Raw { get; set; }

        [Parameter]
        [ValidateSet("PSObject", "Hashtable", "Json", IgnoreCase = true)]
        public string OutputType { get; set; }

        private Batch batch;
        /// <summary>The batch takes requests while it runs (not for -ForEachSubscription).</summary>
        private bool open;
        private string api;
        private readonly Stopwatch sinceProgress = new Stopwatch();
        private bool progressShown;
        private string lastStatus = "starting";
        private int lastPercent;
        /// <summary>Where this run's progress comes from, for the host: named,
        /// so that a stopped run can still complete its bar (see ShowProgress).</summary>
        private readonly long progressSource = Interlocked.Increment(ref lastProgressSource);
        private static long lastProgressSource = 0x4A5A00000000L;
        private ulong batchesSeen;
        /// <summary>Set when the token came from the Az context: renewed here before it expires.</summary>
        private AzContextToken azToken;
        private string resource;
        private int index;
        private readonly HashSet<string> skipped = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        /// <summary>Whether a request was skipped (-WhatIf, -Confirm): the
        /// library then counts fewer requests than the input has, so a request
        /// without an Id gets its input position from here.</summary>
        private bool positionsShifted;
        /// <summary>The ids given, kept when -WhatIf or -Confirm may skip
        /// requests (null otherwise): a position already given as an id is
        /// left to the library.</summary>
        private HashSet<string> givenIds;

        protected override void BeginProcessing()
        {
            try { Module.Load(); }
            catch (DllNotFoundException e)
            {
                ThrowTerminatingError(new ErrorRecord(e, "AzBatch.NativeLibraryNotFound", ErrorCategory.ResourceUnavailable, null));
            }
            CheckParameters();
            if (Bound("WhatIf") || Bound("Confirm")) givenIds = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        }

        protected override void ProcessRecord()
        {
            if (ParameterSetName != "Request" || Request == null) return;
            foreach (object item in Request)
            {
                if (item == null) continue;
                RequestDraft d;
                try { d = Requests.Read(item, index); }
                catch (JsonInputException e) { throw Refused(e.Message, item); }
                index++;
                Send(d, item);
            }
        }

        protected override void EndProcessing()
        {
            if (ParameterSetName == "Subscription") SendTemplate();
            if (batch == null) return;
            try
            {
                if (open) batch.CloseInput();
                else batch.Start();
                TakeResults(250, true, false);
            }
            finally
            {
                // Ctrl+C or a terminating error: cancel the work in flight first.
                batch.Cancel();
                if (progressShown) ShowProgress(ProgressRecordType.Completed);
                batch.Dispose();
                batch = null;
            }
        }

        protected override void StopProcessing()
        {
            // Another thread: the core allows a cancel while Next waits.
            Batch b = batch;
            if (b == null) return;
            try { b.Cancel(); }
            catch (ObjectDisposedException) { } // the pipeline thread freed it meanwhile: nothing left to stop
        }

        public void Dispose()
        {
            if (batch != null) { batch.Dispose(); batch = null; }
        }

        private void CheckParameters()
        {
            Limits l = Module.Info.Limits;
            if (Bound("ThrottleLimit")) Range("ThrottleLimit", ThrottleLimit, l.MinConcurrency, l.MaxConcurrency);
            if (Bound("MaxAttempts")) Range("MaxAttempts", MaxAttempts, l.MinAttempts, l.MaxAttempts);
            if (Bound("TimeoutSec")) Range("TimeoutSec", TimeoutSec, 1, l.MaxTimeoutSeconds);
            if (Bound("AttemptTimeoutSec")) Range("AttemptTimeoutSec", AttemptTimeoutSec, 1, l.MaxTimeoutSeconds);
            if (Module.Info.Cloud(Environment) == null)
            {
                throw Usage(string.Format("-Environment must be one of {0} (got '{1}').", string.Join(", ", Module.Info.CloudNames()), Environment));
            }
            int sources = (Bound("AccessToken") ? 1 : 0) + (Identity.IsPresent ? 1 : 0) + (UseAzureCli.IsPresent ? 1 : 0) + (UseClientSecret.IsPresent ? 1 : 0);
            if (sources > 1) throw Usage("Give one of -AccessToken, -Identity, -UseAzureCli and -UseClientSecret, not more than one.");
            if (Bound("AccountId") && !Identity.IsPresent) throw Usage("-AccountId names a user-assigned managed identity: use it with -Identity.");
            if (Bound("GraphVersion") && Array.IndexOf(Module.Info.GraphVersions, GraphVersion) < 0)
                throw Usage(string.Format("-GraphVersion must be one of {0} (got '{1}').", string.Join(", ", Module.Info.GraphVersions), GraphVersion));
            if (Bound("GraphVersion") && Api != null && !Api.Equals("Graph", StringComparison.OrdinalIgnoreCase)) throw Usage("-GraphVersion applies to -Api Graph only.");
        }

        private bool Bound(string name) { return MyInvocation.BoundParameters.ContainsKey(name); }

        /// <summary>Whether the run being opened is Graph's.</summary>
        internal bool IsGraphRun { get { return api == "Graph"; } }

        /// <summary>The Graph version a URL names first (v1.0/users/x,
        /// /beta/me, https://graph.microsoft.com/beta/me), or null.</summary>
        internal static string GraphVersionOf(string url)
        {
            if (url == null) return null;
            string path = url.Trim();
            int scheme = path.IndexOf("://", StringComparison.Ordinal);
            if (scheme >= 0)
            {
                int slash = path.IndexOf('/', scheme + 3);
                path = slash < 0 ? "" : path.Substring(slash);
            }
            string first = path.TrimStart('/').Split('/', '?')[0];
            foreach (string v in Module.Info.GraphVersions)
            {
                if (string.Equals(first, v, StringComparison.OrdinalIgnoreCase)) return v;
            }
            return null;
        }

        private void Range(string name, int value, int min, int max)
        {
            if (value < min || value > max) throw Usage(string.Format(CultureInfo.InvariantCulture, "-{0} must be between {1} and {2} (got {3}).", name, min, max, value));
        }

        private PSArgumentException Usage(string message) { return new PSArgumentException(message); }

        private RuntimeException Refused(string message, object target)
        {
            ErrorRecord r = new ErrorRecord(new ArgumentException(message), "AzBatch.RequestRefused", ErrorCategory.InvalidArgument, target);
            ThrowTerminatingError(r);
            return null;
        }

        /// <summary>A request passes ShouldProcess (writes only; a skipped write
        /// skips what depends on it), then goes to the core.</summary>
        private void Send(RequestDraft d, object target)
        {
            if (givenIds != null && d.Id != null) givenIds.Add(d.Id);
            foreach (string dep in d.DependsOn)
            {
                if (skipped.Contains(dep))
                {
                    if (d.Id != null) skipped.Add(d.Id);
                    positionsShifted = true;
                    // Said where -WhatIf users look, not only in -Verbose.
                    WriteWarning(string.Format("Skipping {0} {1}: it depends on '{2}', which was not sent", d.Method, d.Url, dep));
                    return;
                }
            }
            if (!d.IsRead && !ShouldProcess(d.Method + " " + d.Url, "Send"))
            {
                if (d.Id != null) skipped.Add(d.Id);
                positionsShifted = true;
                return;
            }
            string position = (index - 1).ToString(CultureInfo.InvariantCulture);
            if (positionsShifted && d.Id == null && (givenIds == null || !givenIds.Contains(position)))
            {
                // The id a request without one gets is its position in the input,
                // whatever was skipped before it.
                d.Id = position;
                d.Json = "{\"id\":\"" + position + "\"," + d.Json.TrimStart().Substring(1);
            }
            if (batch == null) Open(d.Url, target);
            try
            {
                if (!open) { batch.Add(d.Json); return; }
                // The run takes requests as fast as it can use them; while it
                // cannot, its results are taken, so input and output both flow.
                while (!batch.TryAdd(d.Json)) TakeResults(50, false, true);
                TakeResults(0, false, false);
            }
            catch (AzBatchException e) { throw Refused(string.Format("Request {0} was refused: {1}", index - 1, e.Message), target); }
        }

        private void SendTemplate()
        {
            StringBuilder sb = new StringBuilder();
            string m = Method.ToUpperInvariant();
            sb.Append("{\"forEachSubscription\":true,\"url\":");
            JsonWriter.String(sb, Url);
            sb.Append(",\"method\":");
            JsonWriter.String(sb, m);
            if (Bound("Body"))
            {
                sb.Append(",\"body\":");
                try { Requests.Body(sb, Body, "-Body"); }
                catch (JsonInputException e) { throw Refused(e.Message, Body); }
            }
            sb.Append('}');
            RequestDraft d = new RequestDraft { Method = m, Url = Url + " (in every subscription)", Json = sb.ToString() };
            if (Api != null && !Api.Equals("Arm", StringComparison.OrdinalIgnoreCase)) throw Usage("-ForEachSubscription works with -Api Arm only.");
            api = "Arm";
            Send(d, Url);
        }

        /// <summary>The job, made when the first request is to be sent: an empty
        /// pipeline, or one whose writes -WhatIf skipped, asks for no token.</summary>
        private void Open(string firstUrl, object target)
        {
            if (api == null) api = Api != null ? Capitalized(Api) : InferApi(firstUrl, target);
            if (Bound("BatchSize"))
            {
                Limits l = Module.Info.Limits;
                Range("BatchSize", BatchSize, 1, api == "Graph" ? l.GraphMaxBatchSize : l.ArmMaxBatchSize);
            }
            Cloud cloud = Module.Info.Cloud(Environment);
            string resource = api == "Graph" ? cloud.GraphResource : cloud.ArmResource;
            StringBuilder o = new StringBuilder(256);
            o.Append("{\"api\":").Append(api == "Graph" ? "\"graph\"" : "\"arm\"");
            o.Append(",\"cloud\":");
            JsonWriter.String(o, cloud.Name);
            if (Endpoint != null) { o.Append(",\"endpoint\":"); JsonWriter.String(o, Endpoint.AbsoluteUri.TrimEnd('/')); }
            // Without -GraphVersion, the version the first request names
            // (Invoke-MgGraphRequest's v1.0/users/x or https://graph.../beta/me).
            string version = GraphVersion ?? (api == "Graph" ? GraphVersionOf(firstUrl) : null);
            if (version != null) { o.Append(",\"graphVersion\":"); JsonWriter.String(o, version); }
            if (Bound("BatchSize")) o.Append(",\"batchSize\":").Append(BatchSize.ToString(CultureInfo.InvariantCulture));
            if (Bound("ThrottleLimit")) o.Append(",\"concurrency\":").Append(ThrottleLimit.ToString(CultureInfo.InvariantCulture));
            if (Bound("MaxAttempts")) o.Append(",\"maxAttempts\":").Append(MaxAttempts.ToString(CultureInfo.InvariantCulture));
            if (Bound("TimeoutSec")) o.Append(",\"timeoutSeconds\":").Append(TimeoutSec.ToString(CultureInfo.InvariantCulture));
            if (Bound("AttemptTimeoutSec")) o.Append(",\"attemptTimeoutSeconds\":").Append(AttemptTimeoutSec.ToString(CultureInfo.InvariantCulture));
            if (FollowNextLink.IsPresent) o.Append(",\"followNextLink\":true");
            if (RetryNonIdempotent.IsPresent) o.Append(",\"retryNonIdempotent\":true");
            if (JournalPath != null)
            {
                // Relative to the session's location, as PowerShell users expect.
                o.Append(",\"journal\":");
                JsonWriter.String(o, SessionState.Path.GetUnresolvedProviderPathFromPSPath(JournalPath));
            }
            this.resource = resource;
            azToken = Tokens.AppendCredential(o, this, resource);
            if (azToken != null)
            {
                WriteVerbose(string.Format(CultureInfo.InvariantCulture, "Token from the {0}{1}",
                    azToken.Source == "MgGraph" ? "Connect-MgGraph session" : "Az PowerShell context",
                    azToken.RenewAtUtc.HasValue ? ", renewed from " + azToken.RenewAtUtc.Value.ToString("u", CultureInfo.InvariantCulture) : ""));
            }
            o.Append('}');
            try { batch = new Batch(o.ToString()); }
            catch (AzBatchException e)
            {
                ThrowTerminatingError(new ErrorRecord(new ArgumentException("AzBatch refused the options: " + e.Message), "AzBatch.OptionsRefused", ErrorCategory.InvalidArgument, null));
            }
            finally { o.Clear(); }
            WriteVerbose(string.Format(CultureInfo.InvariantCulture, "API: {0}; endpoint {1} ({2})", api,
                Endpoint != null ? Endpoint.AbsoluteUri.TrimEnd('/') : (api == "Graph" ? cloud.Graph : cloud.Arm), cloud.Name));
            if (ParameterSetName != "Subscription")
            {
                batch.Open();
                open = true;
            }
            sinceProgress.Start();
        }

        private static string Capitalized(string a) { return a.Equals("graph", StringComparison.OrdinalIgnoreCase) ? "Graph" : "Arm"; }

        private string InferApi(string url, object target)
        {
            Uri abs;
            if (Uri.TryCreate(url, UriKind.Absolute, out abs) && (abs.Scheme == "https" || abs.Scheme == "http"))
            {
                foreach (Cloud c in Module.Info.Clouds)
                {
                    if (string.Equals(new Uri(c.Graph).Host, abs.Host, StringComparison.OrdinalIgnoreCase)) return "Graph";
                }
                return "Arm";
            }
            string guess = Batch.ApiOfUrl(url);
            if (guess != null) return guess;
            throw Refused(string.Format("Cannot tell whether '{0}' is an Azure Resource Manager or a Microsoft Graph URL: pass -Api Arm or -Api Graph.", url), target);
        }

        /// <summary>Writes results, with a verbose line per batch and progress
        /// at most four times a second: until the run is done (untilDone); or,
        /// waiting up to timeoutMs for the first, the ones that have finished
        /// (quick: only wait for the first, then take what is there, so that a
        /// producer held back by a full input adds again as soon as it can).</summary>
        private void TakeResults(uint timeoutMs, bool untilDone, bool quick)
        {
            while (true)
            {
                string item;
                Status status = batch.Next(timeoutMs, out item);
                if (quick) timeoutMs = 0;
                if (azToken != null && azToken.RenewAtUtc.HasValue && DateTime.UtcNow >= azToken.RenewAtUtc.Value) RenewToken();
                if (status == Status.Done) return;
                if (status == Status.Ok) Write(item);
                Progress p = batch.GetProgress();
                while (batchesSeen < p.Batches)
                {
                    batchesSeen++;
                    WriteVerbose(string.Format(CultureInfo.InvariantCulture, "Batch {0} sent; {1}/{2} done, {3} in flight, {4} retries, {5} throttled", batchesSeen, p.Completed, p.Total, p.InFlight, p.Retries, p.Throttled));
                }
                if (sinceProgress.ElapsedMilliseconds >= 250)
                {
                    lastStatus = string.Format(CultureInfo.InvariantCulture, "{0}/{1} done, {2} retries, {3} throttled", p.Completed, p.Total, p.Retries, p.Throttled);
                    lastPercent = (int)Math.Min(100, 100 * p.Completed / Math.Max(1UL, p.Total));
                    ShowProgress(ProgressRecordType.Processing);
                    progressShown = true;
                    sinceProgress.Reset();
                    sinceProgress.Start();
                }
                if (status == Status.Timeout && !untilDone) return;
            }
        }

        /// <summary>One progress record, new each time (the host and the
        /// progress stream may keep the ones written).</summary>
        private void ShowProgress(ProgressRecordType type)
        {
            ProgressRecord r = new ProgressRecord(ProgressId, "AzBatch", lastStatus);
            r.PercentComplete = type == ProgressRecordType.Completed ? 100 : lastPercent;
            r.RecordType = type;
            try { CommandRuntime.WriteProgress(progressSource, r); }
            catch (PipelineStoppedException)
            {
                // Ctrl+C: the runtime writes nothing once the pipeline is
                // stopping, so the bar would stay. The host still takes the
                // record that ends it (shown means $ProgressPreference let the
                // bar through).
                if (type != ProgressRecordType.Completed) throw;
                Host.UI.WriteProgress(progressSource, r);
            }
        }

        /// <summary>A fresh Az-context token for the running batch; a failure is
        /// a warning (the batch goes on with the token it has while it lasts).</summary>
        private void RenewToken()
        {
            List<string> tried = new List<string>();
            AzContextToken fresh = Tokens.Renew(this, resource, azToken, tried);
            string what = azToken.Source == "MgGraph" ? "Connect-MgGraph session's" : "Az PowerShell";
            if (fresh == null)
            {
                WriteWarning("AzBatch could not renew the " + what + " token: " + string.Join("; ", tried.ToArray()));
                azToken.RenewAtUtc = null;
                return;
            }
            try
            {
                batch.SetToken(fresh.Token);
                azToken = fresh;
                WriteVerbose("Renewed the " + what + " token" + (fresh.RenewAtUtc.HasValue ? "; next from " + fresh.RenewAtUtc.Value.ToString("u", CultureInfo.InvariantCulture) : ""));
            }
            catch (AzBatchException e)
            {
                WriteWarning("AzBatch could not use the renewed token: " + e.Message);
                azToken.RenewAtUtc = null;
            }
        }

        private void Write(string item)
        {
            if (Raw.IsPresent)
            {
                WriteObject(item);
                return;
            }
            Response response = Responses.Read(item);
            if (OutputType != null) response.BodyAs = OutputType;
            if (Responses.TokenRefused(response))
            {
                // Once for the run, terminating, as Invoke-RestMethod's 401 is:
                // the core sends nothing more with this token.
                try { batch.Cancel(); } catch (AzBatchException) { }
                ThrowTerminatingError(new ErrorRecord(new UnauthorizedAccessException(Responses.TokenRefusedMessage(response, api)),
                    "AzBatch.TokenRefused", ErrorCategory.AuthenticationError, response));
            }
            if (!response.Succeeded)
            {
                ErrorRecord failed = Responses.Error(response);
                WriteVerbose("Failed: " + failed.Exception.Message);
                WriteError(failed);
            }
            WriteObject(response);
        }
    }

    /// <summary>Completes a parameter with names the library hands out.</summary>
    public abstract class LibraryCompleter : IArgumentCompleter
    {
        protected abstract string[] Names();

        public IEnumerable<System.Management.Automation.CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, System.Management.Automation.Language.CommandAst commandAst, System.Collections.IDictionary fakeBoundParameters)
        {
            List<System.Management.Automation.CompletionResult> results = new List<System.Management.Automation.CompletionResult>();
            try { Module.Load(); } catch (DllNotFoundException) { return results; }
            foreach (string name in Names())
            {
                if (name.StartsWith(wordToComplete ?? "", StringComparison.OrdinalIgnoreCase)) results.Add(new System.Management.Automation.CompletionResult(name));
            }
            return results;
        }
    }

    /// <summary>Completes -Environment with the library's cloud names.</summary>
    public sealed class CloudCompleter : LibraryCompleter
    {
        protected override string[] Names() { return Module.Info.CloudNames(); }
    }

    /// <summary>Completes -GraphVersion with the library's Graph versions.</summary>
    public sealed class GraphVersionCompleter : LibraryCompleter
    {
        protected override string[] Names() { return Module.Info.GraphVersions; }
    }
}
