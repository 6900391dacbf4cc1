//! Run options: given typed ([`OptionsSpec`]) or as the JSON the C ABI takes,
//! checked once against [`crate::limits`], then shared read-only by the engine.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::auth::Credential;
use crate::cloud::Cloud;
use crate::dialect::{
    arm::BATCH_API_VERSIONS as ARM_BATCH_API_VERSIONS, graph::VERSIONS as GRAPH_VERSIONS, Api,
};
use crate::endpoint::{self, parse_endpoint, Root};
use crate::error::Error;
use crate::limits;
use crate::retry::Backoff;
use crate::secret::Secret;

/// Checked options for one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The batch dialect.
    pub api: Api,
    /// Scheme, host, port and optional base path of the service, without a
    /// trailing slash (the `url` crate shows an empty path as `/`).
    pub endpoint: Url,
    /// The cloud whose hosts (ARM, Graph, login) are used.
    pub cloud: Cloud,
    /// Where bearer tokens come from; sent to `endpoint`'s host only.
    pub credential: Option<Credential>,
    /// `api-version` of the ARM batch endpoint itself.
    pub api_version: String,
    /// Graph version root, `v1.0` or `beta`.
    pub graph_version: String,
    /// Items per batch request.
    pub batch_size: usize,
    /// Batch requests in flight at once.
    pub concurrency: usize,
    /// Sends per item (per page) before its last answer becomes final.
    pub max_attempts: u32,
    /// Fetch `nextLink` pages and merge them into one result.
    pub follow_next_link: bool,
    /// When the batch endpoint itself is refused (404, 405, 400), send the
    /// requests one by one instead, with the same pacing and retries.
    pub batch_fallback: bool,
    /// Overall deadline of a run, from its start.
    pub timeout: Duration,
    /// How long one HTTP attempt waits for its answer; a longer wait is a
    /// lost answer (reads are sent again, writes end `OutcomeUnknown`).
    pub attempt_timeout: Duration,
    /// Re-send POST and PATCH items when a batch may have reached the server but
    /// its answer was lost. Off by default: they may have run already.
    pub retry_non_idempotent: bool,
    /// Delays between retries that have no `Retry-After`.
    pub backoff: Backoff,
    /// Where the run keeps its crash-safe journal ([`crate::journal`]), if anywhere.
    pub journal: Option<std::path::PathBuf>,
}

/// Options as a caller gives them, before they are checked: the fields of the
/// C ABI's options JSON, typed. Every field but `api` may be left out.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OptionsSpec {
    /// `arm` or `graph`.
    pub api: String,
    /// The service endpoint; the cloud's when left out.
    pub endpoint: Option<String>,
    /// A static bearer token.
    pub token: Option<String>,
    /// Where to get tokens instead of a static one.
    pub auth: Option<AuthSpec>,
    /// `AzureCloud`, `AzureUSGovernment` or `AzureChinaCloud`.
    pub cloud: Option<String>,
    /// The ARM batch endpoint's `api-version`.
    pub api_version: Option<String>,
    /// `v1.0` or `beta`.
    pub graph_version: Option<String>,
    /// Items per batch.
    pub batch_size: Option<u64>,
    /// Batches in flight.
    pub concurrency: Option<u64>,
    /// Sends per item.
    pub max_attempts: Option<u64>,
    /// Follow `nextLink` pages.
    pub follow_next_link: Option<bool>,
    /// Send requests one by one when the batch endpoint is refused (default true).
    pub batch_fallback: Option<bool>,
    /// The run's deadline.
    pub timeout_seconds: Option<f64>,
    /// The wait for one HTTP attempt's answer.
    pub attempt_timeout_seconds: Option<f64>,
    /// Resend POST and PATCH after a lost answer.
    pub retry_non_idempotent: Option<bool>,
    /// Randomize backoff waits.
    pub jitter: Option<bool>,
    /// The crash-safe journal's path.
    pub journal: Option<String>,
}

/// `"auth": {...}`: where to get tokens instead of a static `"token"`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthSpec {
    /// `azureCli`, `managedIdentity` or `clientSecret`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A user-assigned managed identity's client id.
    pub client_id: Option<String>,
    /// Another `az` program.
    pub az_path: Option<String>,
}

impl AuthSpec {
    fn credential(self) -> Result<Credential, Error> {
        let only = |what: &str, kind: &str| {
            Error::InvalidOptions(format!("auth.{what} applies to type \"{kind}\" only"))
        };
        match self.kind.to_ascii_lowercase().as_str() {
            "azurecli" => {
                if self.client_id.is_some() {
                    return Err(only("clientId", "managedIdentity"));
                }
                Ok(Credential::AzureCli { program: self.az_path.unwrap_or_else(|| "az".into()) })
            }
            "managedidentity" => {
                if self.az_path.is_some() {
                    return Err(only("azPath", "azureCli"));
                }
                Ok(Credential::ManagedIdentity { client_id: self.client_id })
            }
            "clientsecret" => {
                if self.az_path.is_some() || self.client_id.is_some() {
                    return Err(Error::InvalidOptions("auth type \"clientSecret\" reads AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET and takes no other fields".into()));
                }
                Ok(Credential::ClientSecret)
            }
            other => Err(Error::InvalidOptions(format!(
                "auth.type must be \"azureCli\", \"managedIdentity\" or \"clientSecret\" (got \"{other}\")"
            ))),
        }
    }
}

impl Options {
    /// Options for `api` against its public endpoint, with every default.
    pub fn new(api: Api) -> Options {
        Options {
            api,
            endpoint: Url::parse(Cloud::AzureCloud.endpoint(api))
                .expect("default endpoint is a URL"),
            cloud: Cloud::AzureCloud,
            credential: None,
            api_version: ARM_BATCH_API_VERSIONS[0].to_string(),
            graph_version: GRAPH_VERSIONS[0].to_string(),
            batch_size: limits::DEFAULT_BATCH_SIZE,
            concurrency: limits::DEFAULT_CONCURRENCY,
            max_attempts: limits::DEFAULT_MAX_ATTEMPTS,
            follow_next_link: false,
            batch_fallback: true,
            timeout: limits::DEFAULT_TIMEOUT,
            attempt_timeout: limits::DEFAULT_ATTEMPT_TIMEOUT,
            retry_non_idempotent: false,
            backoff: Backoff::default(),
            journal: None,
        }
    }

    /// Parses and checks the options JSON of the C ABI. Unknown keys are an error
    /// so that a typo does not silently fall back to a default.
    pub fn from_json(text: &str) -> Result<Options, Error> {
        let spec: OptionsSpec = serde_json::from_str(text)
            .map_err(|e| Error::from_json(e, Error::InvalidOptions, "options"))?;
        Options::from_spec(spec)
    }

    /// Checks typed options.
    pub fn from_spec(spec: OptionsSpec) -> Result<Options, Error> {
        let mut o = Options::new(Api::parse(&spec.api)?);
        if let Some(c) = &spec.cloud {
            o.cloud = Cloud::parse(c)?;
            o.endpoint = Url::parse(o.cloud.endpoint(o.api)).expect("cloud endpoints are URLs");
        }
        // An explicit endpoint wins over the cloud's.
        if let Some(e) = &spec.endpoint {
            o.endpoint = parse_endpoint(e)?;
        }
        check_endpoint_path(&o)?;
        o.set_numbers(&spec)?;
        o.credential = credential(spec.token, spec.auth)?;
        o.set_versions(spec.graph_version, spec.api_version)?;
        if let Some(b) = spec.follow_next_link {
            o.follow_next_link = b;
        }
        if let Some(b) = spec.batch_fallback {
            o.batch_fallback = b;
        }
        if let Some(b) = spec.retry_non_idempotent {
            o.retry_non_idempotent = b;
        }
        if let Some(j) = spec.jitter {
            o.backoff.jitter = j;
        }
        match spec.journal.as_deref().map(str::trim) {
            Some("") => return Err(Error::InvalidOptions("journal is an empty path".into())),
            Some(p) => o.journal = Some(p.into()),
            None => {}
        }
        Ok(o)
    }

    fn set_versions(&mut self, graph: Option<String>, arm: Option<String>) -> Result<(), Error> {
        if let Some(v) = graph {
            self.graph_version = version("graphVersion", v, Api::Graph, self.api, &GRAPH_VERSIONS)?;
        }
        if let Some(v) = arm {
            self.api_version =
                version("apiVersion", v, Api::Arm, self.api, &ARM_BATCH_API_VERSIONS)?;
        }
        Ok(())
    }

    fn set_numbers(&mut self, spec: &OptionsSpec) -> Result<(), Error> {
        if let Some(n) = spec.batch_size {
            self.batch_size = in_range("batchSize", n, 1, self.api.max_batch() as u64)? as usize;
        }
        if let Some(n) = spec.concurrency {
            let (lo, hi) = limits::CONCURRENCY;
            self.concurrency = in_range("concurrency", n, lo as u64, hi as u64)? as usize;
        }
        if let Some(n) = spec.max_attempts {
            let (lo, hi) = limits::MAX_ATTEMPTS;
            self.max_attempts = in_range("maxAttempts", n, lo.into(), hi.into())? as u32;
        }
        if let Some(s) = spec.timeout_seconds {
            self.timeout = seconds("timeoutSeconds", s)?;
        }
        if let Some(s) = spec.attempt_timeout_seconds {
            self.attempt_timeout = seconds("attemptTimeoutSeconds", s)?;
        }
        Ok(())
    }

    /// The resource (token audience) tokens are asked for.
    pub fn resource(&self) -> String {
        self.cloud.resource(self.api)
    }

    /// The URL of the batch endpoint.
    pub fn batch_url(&self) -> Url {
        self.batch_url_in(None)
    }

    /// The URL of the batch endpoint of Graph's `version` (none: the run's).
    pub fn batch_url_in(&self, version: Option<&str>) -> Url {
        let mut u = self.endpoint.clone();
        let base = u.path().trim_end_matches('/').to_string();
        match self.api {
            Api::Arm => {
                u.set_path(&format!("{base}/batch"));
                u.set_query(Some(&format!("api-version={}", self.api_version)));
            }
            Api::Graph => u.set_path(&format!(
                "{base}/{}/$batch",
                version.unwrap_or(&self.graph_version)
            )),
        }
        u
    }

    /// The path that request URLs are relative to: the endpoint's own path for
    /// ARM, `{path}/{version}` for Graph.
    pub fn url_root(&self) -> String {
        self.url_root_in(None)
    }

    /// [`Options::url_root`] for Graph's `version` (none: the run's).
    pub fn url_root_in(&self, version: Option<&str>) -> String {
        let base = self.endpoint.path().trim_end_matches('/');
        match self.api {
            Api::Arm => base.to_string(),
            Api::Graph => format!("{base}/{}", version.unwrap_or(&self.graph_version)),
        }
    }

    /// Whether `url` is on the configured endpoint's scheme, host and port: the
    /// only place a token may be sent and a link may be followed.
    pub fn is_same_origin(&self, url: &Url) -> bool {
        endpoint::is_same_origin(&self.endpoint, url)
    }

    /// `text` as a path relative to this run's root; see [`endpoint::relative_url`].
    pub fn relative_url(&self, text: &str) -> Result<String, String> {
        let path = self.url_root();
        endpoint::relative_url(
            text,
            Root {
                api: self.api,
                endpoint: &self.endpoint,
                path: &path,
            },
        )
    }
}

/// An endpoint that already holds what AzBatch adds (Graph's version, ARM's
/// `/batch`) would be called at `/v1.0/v1.0/$batch`: refused, with the fix.
fn check_endpoint_path(o: &Options) -> Result<(), Error> {
    let path = o.endpoint.path().trim_end_matches('/');
    let last = path.rsplit('/').next().unwrap_or("");
    let origin = o.endpoint.origin().ascii_serialization();
    let held = match o.api {
        Api::Graph => GRAPH_VERSIONS.iter().find(|v| last.eq_ignore_ascii_case(v)).map(|v| {
            format!("the Graph version /{v}: give \"{origin}\" and pick the version with graphVersion (--graph-version, -GraphVersion)")
        }),
        Api::Arm => last.eq_ignore_ascii_case("batch").then(|| {
            format!("/batch, which AzBatch adds itself: give \"{origin}\"")
        }),
    };
    match held {
        Some(fix) => Err(Error::InvalidOptions(format!(
            "endpoint \"{}\" already ends with {fix}",
            o.endpoint.as_str().trim_end_matches('/')
        ))),
        None => Ok(()),
    }
}

/// A number of seconds: more than 0, at most [`limits::MAX_TIMEOUT`].
fn seconds(field: &str, s: f64) -> Result<Duration, Error> {
    let max = limits::MAX_TIMEOUT.as_secs();
    if !(s.is_finite() && s > 0.0 && s <= max as f64) {
        return Err(Error::InvalidOptions(format!(
            "{field} must be more than 0 and at most {max} (got {s})"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

fn credential(token: Option<String>, auth: Option<AuthSpec>) -> Result<Option<Credential>, Error> {
    match (token, auth) {
        (Some(_), Some(_)) => Err(Error::InvalidOptions(
            "give \"token\" or \"auth\", not both".into(),
        )),
        (Some(t), None) if t.trim().is_empty() => {
            Err(Error::InvalidOptions("token is empty".into()))
        }
        (Some(t), None) => {
            let t = t.trim();
            crate::secret::check_token(t).map_err(Error::InvalidOptions)?;
            Ok(Some(Credential::Static(Secret::new(t.to_string()))))
        }
        (None, Some(a)) => Ok(Some(a.credential()?)),
        (None, None) => Ok(None),
    }
}

/// A version option, checked against its API and the versions it may take.
fn version(
    field: &str,
    v: String,
    for_api: Api,
    api: Api,
    allowed: &[&str],
) -> Result<String, Error> {
    if api != for_api {
        return Err(Error::InvalidOptions(format!(
            "{field} applies to api \"{}\" only",
            for_api.name()
        )));
    }
    if !allowed.contains(&v.as_str()) {
        return Err(Error::InvalidOptions(format!(
            "{field} must be one of {allowed:?} (got \"{v}\")"
        )));
    }
    Ok(v)
}

fn in_range(field: &str, n: u64, lo: u64, hi: u64) -> Result<u64, Error> {
    if n < lo || n > hi {
        return Err(Error::InvalidOptions(format!(
            "{field} must be between {lo} and {hi} (got {n})"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_required_api() {
        let o = Options::from_json(r#"{"api":"arm"}"#).unwrap();
        assert_eq!(o.batch_size, 20);
        assert_eq!(o.concurrency, 8);
        assert_eq!(o.max_attempts, 6);
        assert_eq!(
            o.batch_url().as_str(),
            "https://management.azure.com/batch?api-version=2020-06-01"
        );
        let e = Options::from_json(r#"{"endpoint":"https://x"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `api`"), "{e}");
    }

    #[test]
    fn unknown_keys_and_ranges_are_errors() {
        let e = Options::from_json(r#"{"api":"arm","batchsize":5}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `batchsize`"), "{e}");
        let e = Options::from_json(r#"{"api":"arm","batchSize":501}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("batchSize must be between 1 and 500"),
            "{e}"
        );
        let e = Options::from_json(r#"{"api":"arm","apiVersion":"2019-01-01"}"#).unwrap_err();
        assert!(e.to_string().contains("apiVersion"), "{e}");
        let e = Options::from_json(r#"{"api":"graph","batchSize":21}"#).unwrap_err();
        assert!(
            e.to_string().contains("batchSize must be between 1 and 20"),
            "{e}"
        );
        let e = Options::from_json(r#"{"api":"graph","apiVersion":"2020-06-01"}"#).unwrap_err();
        assert!(e.to_string().contains("arm\" only"), "{e}");
        let e = Options::from_json(r#"{"api":"soap"}"#).unwrap_err();
        assert!(e.to_string().contains("\"soap\""), "{e}");
    }

    #[test]
    fn clouds_auth_and_an_explicit_endpoint() {
        let o = Options::from_json(r#"{"api":"graph","cloud":"AzureUSGovernment"}"#).unwrap();
        assert_eq!(
            (o.endpoint.as_str(), o.resource()),
            (
                "https://graph.microsoft.us/",
                "https://graph.microsoft.us".to_string()
            )
        );
        let o = Options::from_json(
            r#"{"api":"arm","cloud":"AzureChinaCloud","endpoint":"http://127.0.0.1:5"}"#,
        )
        .unwrap();
        assert_eq!(
            (o.endpoint.as_str(), o.resource()),
            (
                "http://127.0.0.1:5/",
                "https://management.chinacloudapi.cn/".to_string()
            )
        );
        let o = Options::from_json(
            r#"{"api":"arm","auth":{"type":"managedIdentity","clientId":"abc"}}"#,
        )
        .unwrap();
        assert_eq!(
            o.credential,
            Some(Credential::ManagedIdentity {
                client_id: Some("abc".into())
            })
        );
        let o = Options::from_json(r#"{"api":"arm","auth":{"type":"azureCli"}}"#).unwrap();
        assert_eq!(
            o.credential,
            Some(Credential::AzureCli {
                program: "az".into()
            })
        );
        for (bad, want) in [
            (
                r#"{"api":"arm","token":"t","auth":{"type":"azureCli"}}"#,
                "not both",
            ),
            (r#"{"api":"arm","auth":{"type":"password"}}"#, "auth.type"),
            (
                r#"{"api":"arm","auth":{"type":"azureCli","clientId":"x"}}"#,
                "clientId applies",
            ),
            (
                r#"{"api":"arm","auth":{"type":"clientSecret","secret":"x"}}"#,
                "unknown field `secret`",
            ),
            (r#"{"api":"arm","cloud":"Mars"}"#, "cloud must be"),
        ] {
            let e = Options::from_json(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn graph_endpoints() {
        let o = Options::from_json(r#"{"api":"graph"}"#).unwrap();
        assert_eq!(
            o.batch_url().as_str(),
            "https://graph.microsoft.com/v1.0/$batch"
        );
        let o = Options::from_json(
            r#"{"api":"Graph","graphVersion":"beta","endpoint":"http://127.0.0.1:9"}"#,
        )
        .unwrap();
        assert_eq!(o.batch_url().as_str(), "http://127.0.0.1:9/beta/$batch");
        assert_eq!(o.url_root(), "/beta");
    }

    #[test]
    fn an_endpoint_with_the_version_path_is_refused_with_the_fix() {
        let e =
            Options::from_json(r#"{"api":"graph","endpoint":"https://graph.microsoft.com/v1.0/"}"#)
                .unwrap_err()
                .to_string();
        assert!(
            e.contains(
                "already ends with the Graph version /v1.0: give \"https://graph.microsoft.com\""
            ),
            "{e}"
        );
        let e =
            Options::from_json(r#"{"api":"arm","endpoint":"https://management.azure.com/batch"}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("/batch, which AzBatch adds itself"), "{e}");
        assert!(
            Options::from_json(r#"{"api":"graph","endpoint":"http://127.0.0.1:9/graph"}"#).is_ok()
        );
        assert!(
            Options::from_json(r#"{"api":"arm","endpoint":"http://127.0.0.1:9/v1.0"}"#).is_ok()
        );
    }

    #[test]
    fn timeouts_and_tokens_are_checked() {
        let o = Options::from_json(r#"{"api":"arm","attemptTimeoutSeconds":2.5}"#).unwrap();
        assert_eq!(o.attempt_timeout, Duration::from_millis(2500));
        assert_eq!(
            Options::new(Api::Arm).attempt_timeout,
            limits::DEFAULT_ATTEMPT_TIMEOUT
        );
        let e = Options::from_json(r#"{"api":"arm","attemptTimeoutSeconds":0}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("attemptTimeoutSeconds must be more than 0"),
            "{e}"
        );
        for bad in [r"zq1\nzq2", "zq1 zq2", r"zq\u00e9q", r"zq\u0000q"] {
            let json = format!(r#"{{"api":"arm","token":"{bad}"}}"#);
            let e = Options::from_json(&json).unwrap_err().to_string();
            assert!(e.contains("cannot be sent in an HTTP header"), "{bad}: {e}");
            assert!(!e.contains("zq"), "the token is never echoed: {e}");
        }
        let e = Options::from_json(r#"{"api":"arm","token":"secretpart\nrest"}"#).unwrap_err();
        assert!(e.to_string().contains("character 11 of 15"), "{e}");
        assert!(Options::from_json(r#"{"api":"arm","token":"  eyJ.a-b_c.d~+/=  "}"#).is_ok());
    }

    #[test]
    fn token_is_not_in_debug_output() {
        let o = Options::from_json(r#"{"api":"arm","token":"s3cr3t-token"}"#).unwrap();
        assert!(!format!("{o:?}").contains("s3cr3t"));
    }
}
