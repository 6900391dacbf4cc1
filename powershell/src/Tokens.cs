// Where the token comes from: -AccessToken, -Identity (managed identity,
// renewed by the core), -UseAzureCli (the Azure CLI, renewed by the core),
// -UseClientSecret; else, for Graph, a Connect-MgGraph session; else the Az
// PowerShell context (Get-AzAccessToken); else the Azure CLI.
// The token goes into the options JSON only; it is never written anywhere.
using System;
using System.Collections.Generic;
using System.Management.Automation;
using System.Runtime.InteropServices;
using System.Security;
using System.Text;

namespace AzBatch
{
    /// <summary>A token from the Az context and when to fetch the next one.</summary>
    public sealed class AzContextToken
    {
        public string Token;
        /// <summary>Where it came from, to renew it there: "Az" or "MgGraph".</summary>
        public string Source = "Az";
        /// <summary>When to renew it (a quarter of its life early, at most five
        /// minutes), or null when its expiry is not known.</summary>
        public DateTime? RenewAtUtc;
    }

    public static class Tokens
    {
        /// <summary>Appends "token" or "auth" to the options JSON being built.
        /// Returns the Az-context token when that is where it came from (the
        /// cmdlet renews it during long runs), else null.</summary>
        public static AzContextToken AppendCredential(StringBuilder o, PSCmdlet cmdlet, string resource)
        {
            InvokeAzBatchRequestCommand c = (InvokeAzBatchRequestCommand)cmdlet;
            if (cmdlet.MyInvocation.BoundParameters.ContainsKey("AccessToken"))
            {
                AppendToken(o, Plain(c.AccessToken));
                return null;
            }
            if (c.Identity.IsPresent)
            {
                o.Append(",\"auth\":{\"type\":\"managedIdentity\"");
                if (!string.IsNullOrEmpty(c.AccountId)) { o.Append(",\"clientId\":"); JsonWriter.String(o, c.AccountId); }
                o.Append('}');
                return null;
            }
            if (c.UseAzureCli.IsPresent)
            {
                AppendAzureCli(o, cmdlet, true);
                return null;
            }
            if (c.UseClientSecret.IsPresent)
            {
                // The core reads AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
                o.Append(",\"auth\":{\"type\":\"clientSecret\"}");
                return null;
            }
            List<string> tried = new List<string>();
            bool graph = c.IsGraphRun;
            AzContextToken token = graph ? FromGraphSession(cmdlet, tried) : null;
            if (token == null) token = FromAzContext(cmdlet, resource, tried);
            if (token != null)
            {
                AppendToken(o, token.Token);
                return token;
            }
            if (AppendAzureCli(o, cmdlet, false)) return null;
            tried.Add("az: the Azure CLI is not installed");
            throw new PSInvalidOperationException(string.Format(
                "No access token for {0}. Pass -AccessToken, use -Identity (a managed identity, as in Azure Automation), or sign in with {1}Connect-AzAccount (Az PowerShell) or 'az login' (Azure CLI). Tried: {2}",
                resource, graph ? "Connect-MgGraph (Microsoft Graph PowerShell), " : "", string.Join("; ", tried.ToArray())));
        }

        /// <summary>A fresh token from where `token` came from.</summary>
        public static AzContextToken Renew(PSCmdlet cmdlet, string resource, AzContextToken token, List<string> tried)
        {
            return token.Source == "MgGraph" ? FromGraphSession(cmdlet, tried) : FromAzContext(cmdlet, resource, tried);
        }

        /// <summary>The token of a Connect-MgGraph session (Microsoft.Graph.Authentication
        /// loaded and Get-MgContext not null). The session hands out no token by
        /// itself: one Invoke-MgGraphRequest is made, GET v1.0/me?$select=id with
        /// -SkipHttpErrorCheck -OutputType HttpResponseMessage, and the token is
        /// read from the Authorization header the session put on it. Its answer is
        /// not used, so it works whatever the session may read (an app-only
        /// session's 400 included). The token's expiry is read from it (a JWT)
        /// to renew it before it ends.</summary>
        public static AzContextToken FromGraphSession(PSCmdlet cmdlet, List<string> tried)
        {
            CommandTypes kinds = CommandTypes.Cmdlet | CommandTypes.Function | CommandTypes.Alias;
            CommandInfo context = cmdlet.InvokeCommand.GetCommand("Get-MgContext", kinds);
            CommandInfo invoke = cmdlet.InvokeCommand.GetCommand("Invoke-MgGraphRequest", kinds);
            if (context == null || invoke == null)
            {
                tried.Add("Get-MgContext: the Microsoft.Graph.Authentication module is not loaded");
                return null;
            }
            using (PowerShell ps = PowerShell.Create(RunspaceMode.CurrentRunspace))
            {
                try
                {
                    ps.AddCommand(context);
                    bool signedIn = false;
                    foreach (PSObject r in ps.Invoke()) if (r != null) signedIn = true;
                    if (!signedIn)
                    {
                        tried.Add("Get-MgContext: no session (run Connect-MgGraph)");
                        return null;
                    }
                    ps.Commands.Clear();
                    ps.AddCommand(invoke).AddParameter("Method", "GET").AddParameter("Uri", "v1.0/me?$select=id")
                        .AddParameter("OutputType", "HttpResponseMessage").AddParameter("SkipHttpErrorCheck", true);
                    if (Has(invoke, "ErrorAction")) ps.AddParameter("ErrorAction", "Stop");
                    foreach (PSObject r in ps.Invoke())
                    {
                        object auth = Member(Member(Member(r, "RequestMessage"), "Headers"), "Authorization");
                        string token = Convert.ToString(Member(auth, "Parameter"), System.Globalization.CultureInfo.InvariantCulture);
                        if (string.IsNullOrEmpty(token)) continue;
                        return new AzContextToken { Token = token, RenewAtUtc = RenewBefore(JwtExpiry(token)), Source = "MgGraph" };
                    }
                    tried.Add("Invoke-MgGraphRequest: the session put no token on its request");
                }
                catch (RuntimeException e)
                {
                    tried.Add("Connect-MgGraph session: " + e.Message);
                }
            }
            return null;
        }

        private static object Member(object o, string name)
        {
            if (o == null) return null;
            PSPropertyInfo p = PSObject.AsPSObject(o).Properties[name];
            return p == null ? null : p.Value;
        }

        /// <summary>The exp claim of a JWT, or null.</summary>
        public static DateTime? JwtExpiry(string token)
        {
            string[] parts = token.Split('.');
            if (parts.Length < 2) return null;
            try
            {
                string b64 = parts[1].Replace('-', '+').Replace('_', '/');
                b64 = b64.PadRight(b64.Length + (4 - b64.Length % 4) % 4, '=');
                string json = Encoding.UTF8.GetString(Convert.FromBase64String(b64));
                foreach (KeyValuePair<string, object> e in JsonReader.ReadObject(json))
                {
                    if (e.Key != "exp" || e.Value == null) continue;
                    long exp = (long)Math.Floor(Convert.ToDouble(e.Value, System.Globalization.CultureInfo.InvariantCulture));
                    return new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(exp);
                }
            }
            catch (FormatException) { }
            catch (OverflowException) { }
            catch (ArgumentException) { }
            return null;
        }

        /// <summary>The core runs az itself and renews the token during long runs;
        /// it is told which az PowerShell sees (the session's PATH may differ from
        /// the process environment the core reads).</summary>
        private static bool AppendAzureCli(StringBuilder o, PSCmdlet cmdlet, bool required)
        {
            CommandInfo az = cmdlet.InvokeCommand.GetCommand("az", CommandTypes.Application);
            if (az == null && !required) return false;
            o.Append(",\"auth\":{\"type\":\"azureCli\"");
            if (az != null)
            {
                ApplicationInfo app = az as ApplicationInfo;
                o.Append(",\"azPath\":");
                JsonWriter.String(o, app != null ? app.Path : az.Definition);
            }
            o.Append('}');
            return true;
        }

        private static void AppendToken(StringBuilder o, string token)
        {
            if (string.IsNullOrEmpty(token)) throw new PSArgumentException("-AccessToken is empty.");
            o.Append(",\"token\":");
            JsonWriter.String(o, token);
        }

        /// <summary>Get-AzAccessToken in a nested pipeline, so that neither its
        /// errors nor a missing Az.Accounts reach the caller's error streams;
        /// -AsSecureString where the installed Az.Accounts has it (newer ones warn
        /// on every call without it).</summary>
        public static AzContextToken FromAzContext(PSCmdlet cmdlet, string resource, List<string> tried)
        {
            CommandInfo get = cmdlet.InvokeCommand.GetCommand("Get-AzAccessToken", CommandTypes.Cmdlet | CommandTypes.Function | CommandTypes.Alias);
            if (get == null)
            {
                tried.Add("Get-AzAccessToken: the Az.Accounts module is not available");
                return null;
            }
            using (PowerShell ps = PowerShell.Create(RunspaceMode.CurrentRunspace))
            {
                ps.AddCommand(get).AddParameter("ResourceUrl", resource);
                if (Has(get, "ErrorAction")) ps.AddParameter("ErrorAction", "Stop").AddParameter("WarningAction", "SilentlyContinue");
                if (Has(get, "AsSecureString")) ps.AddParameter("AsSecureString", true);
                try
                {
                    foreach (PSObject r in ps.Invoke())
                    {
                        PSPropertyInfo t = r == null ? null : r.Properties["Token"];
                        if (t == null || t.Value == null) continue;
                        return new AzContextToken { Token = Plain(t.Value), RenewAtUtc = RenewAt(r.Properties["ExpiresOn"]) };
                    }
                    tried.Add("Get-AzAccessToken: no token (run Connect-AzAccount)");
                }
                catch (RuntimeException e)
                {
                    tried.Add("Get-AzAccessToken: " + e.Message);
                }
            }
            return null;
        }

        private static DateTime? RenewAt(PSPropertyInfo expiresOn)
        {
            if (expiresOn == null || expiresOn.Value == null) return null;
            object v = expiresOn.Value;
            PSObject pso = v as PSObject;
            if (pso != null) v = pso.BaseObject;
            if (v is DateTimeOffset) return RenewBefore(((DateTimeOffset)v).UtcDateTime);
            if (v is DateTime) return RenewBefore(((DateTime)v).ToUniversalTime());
            return null;
        }

        /// <summary>When to renew a token that expires at `expires` (UTC): a
        /// quarter of its life early, at most five minutes.</summary>
        private static DateTime? RenewBefore(DateTime? expiresAt)
        {
            if (!expiresAt.HasValue) return null;
            DateTime expires = expiresAt.Value;
            TimeSpan life = expires - DateTime.UtcNow;
            if (life <= TimeSpan.Zero) return DateTime.UtcNow;
            TimeSpan early = TimeSpan.FromTicks(Math.Min(TimeSpan.FromMinutes(5).Ticks, life.Ticks / 4));
            return expires - early;
        }

        private static bool Has(CommandInfo c, string parameter)
        {
            try { return c.Parameters != null && c.Parameters.ContainsKey(parameter); }
            catch (RuntimeException) { return false; }
        }

        /// <summary>A token given as a string or a SecureString.</summary>
        public static string Plain(object value)
        {
            PSObject pso = value as PSObject;
            if (pso != null) value = pso.BaseObject;
            SecureString secure = value as SecureString;
            if (secure == null) return value == null ? null : value.ToString();
            IntPtr p = IntPtr.Zero;
            try
            {
                p = Marshal.SecureStringToGlobalAllocUnicode(secure);
                return Marshal.PtrToStringUni(p);
            }
            finally
            {
                if (p != IntPtr.Zero) Marshal.ZeroFreeGlobalAllocUnicode(p);
            }
        }
    }
}
