//! Token issuers, so AzBatch's token sources are tested end to end: the App
//! Service / Azure Automation managed identity endpoint (`/msi/token`), the VM
//! IMDS (`/metadata/identity/oauth2/token`) and Entra's client credentials
//! endpoint (`/{tenant}/oauth2/v2.0/token`). Issued tokens are JWT-shaped with
//! an `exp`, live `Config::token_lifetime`, and are accepted by every other
//! endpoint until then.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::answer::Answer;
use crate::config::Config;

/// Issued tokens and their expiry.
#[derive(Default)]
pub struct Issuer {
    issued: Mutex<HashMap<String, SystemTime>>,
    count: AtomicU64,
}

/// Whether a presented bearer token is good.
pub enum Verdict {
    /// Accepted.
    Valid,
    /// Known, but past its expiry.
    Expired,
    /// Not known.
    Invalid,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The `exp` of a JWT-shaped token.
fn jwt_exp(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let exp = serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_f64()?;
    // An `exp` no clock can hold (negative, huge) is no expiry, never a panic.
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(exp).ok()?)
}

/// A JWT-shaped (unsigned) token for tests that expires at `exp`.
pub fn make_token(audience: &str, exp: SystemTime, id: u64) -> String {
    let secs = exp
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(
        json!({"aud": audience, "exp": secs, "iss": "azbatch-emulator", "jti": id})
            .to_string()
            .as_bytes(),
    );
    format!("{header}.{payload}.emulator")
}

impl Issuer {
    /// Tokens issued so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn issue(&self, config: &Config, audience: &str) -> (String, SystemTime) {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let exp = SystemTime::now() + config.token_lifetime;
        let token = make_token(audience, exp, n);
        self.issued.lock().unwrap().insert(token.clone(), exp);
        (token, exp)
    }

    /// Checks a bearer token against the configured one and the issued ones.
    pub fn verdict(&self, config: &Config, token: &str) -> Verdict {
        let now = SystemTime::now();
        if let Some(exp) = self.issued.lock().unwrap().get(token) {
            return if *exp > now {
                Verdict::Valid
            } else {
                Verdict::Expired
            };
        }
        if config.token.as_deref() == Some(token) {
            return match jwt_exp(token) {
                Some(exp) if exp <= now => Verdict::Expired,
                _ => Verdict::Valid,
            };
        }
        Verdict::Invalid
    }

    /// `GET /msi/token?resource=R&api-version=2019-08-01` with `X-IDENTITY-HEADER`.
    pub fn app_service(
        &self,
        config: &Config,
        header: Option<&str>,
        query: &BTreeMap<String, String>,
    ) -> Answer {
        if header != Some(config.identity_header.as_str()) {
            return Answer::json(
                401,
                json!({"statusCode": 401, "message": "Unauthorized request: X-IDENTITY-HEADER is missing or wrong."}),
            );
        }
        self.managed(config, query, "2019-08-01")
    }

    /// `GET /metadata/identity/oauth2/token?resource=R&api-version=2018-02-01` with `Metadata: true`.
    pub fn imds(
        &self,
        config: &Config,
        metadata: Option<&str>,
        query: &BTreeMap<String, String>,
    ) -> Answer {
        if metadata != Some("true") {
            return Answer::json(
                400,
                json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
            );
        }
        self.managed(config, query, "2018-02-01")
    }

    fn managed(&self, config: &Config, query: &BTreeMap<String, String>, version: &str) -> Answer {
        if query.get("api-version").map(String::as_str) != Some(version) {
            return Answer::json(
                400,
                json!({"error": "invalid_request", "error_description": format!("api-version must be {version}")}),
            );
        }
        let Some(resource) = query.get("resource").filter(|r| !r.is_empty()) else {
            return Answer::json(
                400,
                json!({"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"}),
            );
        };
        let (token, exp) = self.issue(config, resource);
        let secs = exp.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut body = json!({"access_token": token, "expires_on": secs.to_string(), "resource": resource, "token_type": "Bearer"});
        if let Some(id) = query.get("client_id") {
            body["client_id"] = json!(id);
        }
        body["expires_in"] = json!(config.token_lifetime.as_secs().to_string());
        Answer::json(200, body)
    }

    /// `POST /{tenant}/oauth2/v2.0/token` with the client credentials form.
    pub fn client_credentials(&self, config: &Config, form: &BTreeMap<String, String>) -> Answer {
        let refuse = |status: u16, error: &str, description: &str| {
            Answer::json(
                status,
                json!({"error": error, "error_description": description}),
            )
        };
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return refuse(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            );
        }
        if form.get("client_id").is_none_or(|c| c.is_empty()) {
            return refuse(
                400,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'client_id'.",
            );
        }
        if form.get("client_secret") != Some(&config.client_secret) {
            return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.");
        }
        let Some(scope) = form.get("scope").filter(|s| s.ends_with("/.default")) else {
            return refuse(400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.");
        };
        let (token, _) = self.issue(config, scope.trim_end_matches("/.default"));
        let secs = config.token_lifetime.as_secs();
        Answer::json(
            200,
            json!({"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": token}),
        )
    }
}
