// Where the token comes from: -AccessToken, -Identity (managed identity,
// renewed by the core), -UseAzureCli (the Azure CLI, renewed by the core),
// else the Az PowerShell context (Get-AzAccessToken), else the Azure CLI.
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
            AzContextToken token = FromAzContext(cmdlet, resource, tried);
            if (token != null)
            {
                AppendToken(o, token.Token);
                return token;
            }
            if (AppendAzureCli(o, cmdlet, false)) return null;
            tried.Add("az: the Azure CLI is not installed");
            throw new PSInvalidOperationException(string.Format(
                "No access token for {0}. Pass -AccessToken, use -Identity (a managed identity, as in Azure Automation), or sign in with Connect-AzAccount (Az PowerShell) or 'az login' (Azure CLI). Tried: {1}",
                resource, string.Join("; ", tried.ToArray())));
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
            DateTime expires;
            if (v is DateTimeOffset) expires = ((DateTimeOffset)v).UtcDateTime;
            else if (v is DateTime) expires = ((DateTime)v).ToUniversalTime();
            else return null;
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
