//! The three token sources. Each returns a token and its expiry, or an error
//! that says which source failed and what to do.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{AuthError, Fetched};
use crate::secret::Secret;

/// Where the IMDS lives; `AZURE_POD_IDENTITY_AUTHORITY_HOST` overrides it, as in
/// the Azure SDKs.
const IMDS: &str = "http://169.254.169.254";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn epoch_seconds(v: &Value) -> Option<SystemTime> {
    let secs = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some(UNIX_EPOCH + Duration::from_secs_f64(secs))
}

fn token_field(v: &Value, key: &str, source: &str) -> Result<Secret, AuthError> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(|t| Secret::new(t.to_string()))
        .ok_or_else(|| AuthError::new(source, format!("the answer has no \"{key}\"")))
}

/// `az account get-access-token --resource R --output json`.
pub(super) async fn azure_cli(program: &str, resource: &str) -> Result<Fetched, AuthError> {
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
    let expires_at = v.get("expires_on").and_then(epoch_seconds).or_else(|| {
        v.get("expiresOn")
            .map(|_| SystemTime::now() + Duration::from_secs(300))
    });
    Ok(Fetched { token, expires_at })
}

/// A managed identity: the App Service / Azure Automation endpoint when
/// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, else the VM's IMDS.
pub(super) async fn managed_identity(
    http: &reqwest::Client,
    resource: &str,
    client_id: Option<&str>,
) -> Result<Fetched, AuthError> {
    const SOURCE: &str = "managedIdentity";
    let mut query: Vec<(&str, &str)> = vec![("resource", resource)];
    if let Some(id) = client_id {
        query.push(("client_id", id));
    }
    let request = match (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
        (Some(endpoint), Some(header)) => {
            query.push(("api-version", "2019-08-01"));
            http.get(endpoint).query(&query).header("X-IDENTITY-HEADER", header).header("Metadata", "true")
        }
        (Some(_), None) => return Err(AuthError::new(SOURCE, "IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not; both come from the Automation account or App Service")),
        (None, Some(_)) => return Err(AuthError::new(SOURCE, "IDENTITY_HEADER is set but IDENTITY_ENDPOINT is not set")),
        (None, None) => {
            query.push(("api-version", "2018-02-01"));
            let host = env("AZURE_POD_IDENTITY_AUTHORITY_HOST").unwrap_or_else(|| IMDS.to_string());
            http.get(format!("{}/metadata/identity/oauth2/token", host.trim_end_matches('/'))).query(&query).header("Metadata", "true")
        }
    };
    let resp = request.send().await.map_err(|e| {
        AuthError::new(SOURCE, format!("no managed identity endpoint answered (IDENTITY_ENDPOINT not set, and the VM's IMDS is unreachable: {})", e.without_url()))
    })?;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status != 200 {
        let why = v
            .get("error_description")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(AuthError::new(
            SOURCE,
            format!("the identity endpoint answered HTTP {status}: {why}"),
        ));
    }
    let token = token_field(&v, "access_token", SOURCE)?;
    let expires_at = v.get("expires_on").and_then(epoch_seconds);
    Ok(Fetched { token, expires_at })
}

/// The client credentials flow against `{login}/{tenant}/oauth2/v2.0/token`.
/// `AZURE_AUTHORITY_HOST` overrides the login host, as in the Azure SDKs.
pub(super) async fn client_secret(
    http: &reqwest::Client,
    login: &str,
    resource: &str,
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
    let authority = crate::options::parse_endpoint(&authority)
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
    let resp = http
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await
        .map_err(|e| {
            AuthError::new(
                SOURCE,
                format!("the login host did not answer: {}", e.without_url()),
            )
        })?;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status != 200 {
        let why = v
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        return Err(AuthError::new(
            SOURCE,
            format!("the login host refused the client secret (HTTP {status}): {why}"),
        ));
    }
    let token = token_field(&v, "access_token", SOURCE)?;
    let expires_at = v
        .get("expires_in")
        .and_then(epoch_seconds)
        .map(|d| SystemTime::now() + d.duration_since(UNIX_EPOCH).unwrap_or_default());
    Ok(Fetched { token, expires_at })
}
