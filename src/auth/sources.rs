//! The three token sources. Each returns a token and its expiry, or an error
//! that says which source failed and what to do.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use url::Url;

use super::{AuthError, Fetched};
use crate::secret::Secret;
use crate::transport::{HttpRequest, HttpResponse, Transport};

/// Where the IMDS lives; `AZURE_POD_IDENTITY_AUTHORITY_HOST` overrides it, as in
/// the Azure SDKs.
const IMDS: &str = "http://169.254.169.254";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A number of seconds, as a JSON number or a string of one.
fn seconds(v: &Value) -> Option<Duration> {
    let secs = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// An `expires_on`: seconds since the Unix epoch.
fn epoch_seconds(v: &Value) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(seconds(v)?)
}

fn token_field(v: &Value, key: &str, source: &str) -> Result<Secret, AuthError> {
    let t = v
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AuthError::new(source, format!("the answer has no \"{key}\"")))?;
    crate::secret::check_token(t).map_err(|why| {
        AuthError::new(source, format!("the answer's \"{key}\" is unusable: {why}"))
    })?;
    Ok(Secret::new(t.to_string()))
}

/// `az account get-access-token --resource R --output json`.
pub(super) async fn azure_cli(
    program: &str,
    resource: &str,
    now: SystemTime,
) -> Result<Fetched, AuthError> {
    const SOURCE: &str = "azureCli";
    let out = tokio::process::Command::new(program)
        .args(["account", "get-access-token", "--resource", resource, "--output", "json"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AuthError::new(SOURCE, format!("\"{program}\" is not installed (or not on PATH); install the Azure CLI and run 'az login'")),
            _ => AuthError::new(SOURCE, format!("cannot run \"{program}\": {e}")),
        })?;
    if !out.status.success() {
        // az's own words (e.g. "Please run 'az login' to setup account."), never a token.
        let why = String::from_utf8_lossy(&out.stderr)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        return Err(AuthError::new(
            SOURCE,
            format!(
                "az account get-access-token failed ({}): {why}; run 'az login'",
                out.status
            ),
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| AuthError::new(SOURCE, "az printed something that is not JSON"))?;
    let token = token_field(&v, "accessToken", SOURCE)?;
    // Newer az prints expires_on (epoch seconds); older only a local expiresOn,
    // so without it the token is kept for five minutes at most.
    let expires_at = v
        .get("expires_on")
        .and_then(epoch_seconds)
        .or_else(|| v.get("expiresOn").map(|_| now + Duration::from_secs(300)));
    Ok(Fetched { token, expires_at })
}

/// A managed identity: the App Service / Azure Automation endpoint when
/// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, else the VM's IMDS.
pub(super) async fn managed_identity(
    http: &dyn Transport,
    resource: &str,
    client_id: Option<&str>,
) -> Result<Fetched, AuthError> {
    const SOURCE: &str = "managedIdentity";
    let bad_url = |what: &str, e: url::ParseError| {
        AuthError::new(SOURCE, format!("{what} is not a URL: {e}"))
    };
    let (mut url, mut headers, version) = match (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
        (Some(endpoint), Some(header)) => {
            let url = Url::parse(&endpoint).map_err(|e| bad_url("IDENTITY_ENDPOINT", e))?;
            (url, vec![("X-IDENTITY-HEADER", header)], "2019-08-01")
        }
        (Some(_), None) => return Err(AuthError::new(SOURCE, "IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not; both come from the Automation account or App Service")),
        (None, Some(_)) => return Err(AuthError::new(SOURCE, "IDENTITY_HEADER is set but IDENTITY_ENDPOINT is not set")),
        (None, None) => {
            let host = env("AZURE_POD_IDENTITY_AUTHORITY_HOST").unwrap_or_else(|| IMDS.to_string());
            let url = Url::parse(&format!("{}/metadata/identity/oauth2/token", host.trim_end_matches('/')))
                .map_err(|e| bad_url("AZURE_POD_IDENTITY_AUTHORITY_HOST", e))?;
            (url, vec![], "2018-02-01")
        }
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("resource", resource);
        if let Some(id) = client_id {
            q.append_pair("client_id", id);
        }
        q.append_pair("api-version", version);
    }
    headers.push(("Metadata", "true".into()));
    let request = HttpRequest {
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..HttpRequest::new("GET", url)
    };
    let resp = http.send(request).await.map_err(|e| {
        AuthError::new(SOURCE, format!("no managed identity endpoint answered (IDENTITY_ENDPOINT not set, and the VM's IMDS is unreachable: {})", e.message()))
    })?;
    let v = json_of(&resp);
    if resp.status != 200 {
        let why = v
            .get("error_description")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(AuthError::new(
            SOURCE,
            format!("the identity endpoint answered HTTP {}: {why}", resp.status),
        ));
    }
    let token = token_field(&v, "access_token", SOURCE)?;
    let expires_at = v.get("expires_on").and_then(epoch_seconds);
    Ok(Fetched { token, expires_at })
}

fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

/// The client credentials flow against `{login}/{tenant}/oauth2/v2.0/token`.
/// `AZURE_AUTHORITY_HOST` overrides the login host, as in the Azure SDKs.
pub(super) async fn client_secret(
    http: &dyn Transport,
    login: &str,
    resource: &str,
    now: SystemTime,
) -> Result<Fetched, AuthError> {
    const SOURCE: &str = "clientSecret";
    let missing: Vec<&str> = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"]
        .into_iter()
        .filter(|n| env(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(AuthError::new(
            SOURCE,
            format!(
                "{} not set; set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
                missing.join(", ")
            ),
        ));
    }
    let (tenant, client, secret) = (
        env("AZURE_TENANT_ID").unwrap_or_default(),
        env("AZURE_CLIENT_ID").unwrap_or_default(),
        env("AZURE_CLIENT_SECRET").unwrap_or_default(),
    );
    let authority = env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| login.to_string());
    let authority = crate::endpoint::parse_endpoint(&authority)
        .map_err(|e| AuthError::new(SOURCE, format!("AZURE_AUTHORITY_HOST: {e}")))?;
    let scope = format!("{}/.default", resource.trim_end_matches('/'));
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &client)
        .append_pair("client_secret", &secret)
        .append_pair("scope", &scope)
        .finish();
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        authority.as_str().trim_end_matches('/'),
        tenant
    );
    let url = Url::parse(&url)
        .map_err(|e| AuthError::new(SOURCE, format!("AZURE_TENANT_ID makes no URL: {e}")))?;
    let request = HttpRequest {
        headers: vec![(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: Some(form.into_bytes()),
        ..HttpRequest::new("POST", url)
    };
    let resp = http.send(request).await.map_err(|e| {
        AuthError::new(
            SOURCE,
            format!("the login host did not answer: {}", e.message()),
        )
    })?;
    let v = json_of(&resp);
    if resp.status != 200 {
        let why = v
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        return Err(AuthError::new(
            SOURCE,
            format!(
                "the login host refused the client secret (HTTP {}): {why}",
                resp.status
            ),
        ));
    }
    let token = token_field(&v, "access_token", SOURCE)?;
    let expires_at = v
        .get("expires_in")
        .and_then(seconds)
        .and_then(|d| now.checked_add(d));
    Ok(Fetched { token, expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifetimes_no_clock_can_hold_are_no_expiry() {
        for v in [
            json!(-1),
            json!(1e300),
            json!("-5"),
            json!("1e19"),
            json!(f64::MAX),
            json!("x"),
        ] {
            let d = seconds(&v);
            assert!(d.is_none() || epoch_seconds(&v).is_none(), "{v}");
        }
        assert_eq!(seconds(&json!(-1)), None);
        assert_eq!(epoch_seconds(&json!(1e300)), None);
        assert_eq!(seconds(&json!("3599")), Some(Duration::from_secs(3599)));
    }
}
