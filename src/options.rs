//! Run options: parsed from the JSON the C ABI and the command line take, checked
//! once, then shared read-only by the engine.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::auth::Credential;
use crate::cloud::Cloud;
use crate::error::Error;
use crate::retry::Backoff;
use crate::secret::Secret;

/// Which batch dialect to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Azure Resource Manager, `POST {endpoint}/batch`.
    Arm,
    /// Microsoft Graph, `POST {endpoint}/{v1.0|beta}/$batch`.
    Graph,
}

impl Api {
    fn parse(s: &str) -> Result<Api, Error> {
        match s.to_ascii_lowercase().as_str() {
            "arm" => Ok(Api::Arm),
            "graph" => Ok(Api::Graph),
            other => Err(Error::InvalidOptions(format!(
                "api must be \"arm\" or \"graph\" (got \"{other}\")"
            ))),
        }
    }

    /// Most items one batch may hold.
    pub fn max_batch(self) -> usize {
        match self {
            Api::Arm => ARM_MAX_BATCH,
            Api::Graph => GRAPH_MAX_BATCH,
        }
    }

    /// The body key of a paged answer's link to the next page.
    pub fn next_link_key(self) -> &'static str {
        match self {
            Api::Arm => "nextLink",
            Api::Graph => "@odata.nextLink",
        }
    }
}

/// Graph's versions.
pub const GRAPH_VERSIONS: [&str; 2] = ["v1.0", "beta"];
/// Largest Graph batch the service takes.
pub(crate) const GRAPH_MAX_BATCH: usize = 20;

/// The API versions the ARM batch endpoint accepts.
pub const ARM_BATCH_API_VERSIONS: [&str; 2] = ["2020-06-01", "2015-11-01"];
/// Largest ARM batch the service takes.
pub(crate) const ARM_MAX_BATCH: usize = 500;

/// Checked options for one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The batch dialect.
    pub api: Api,
    /// Scheme, host, port and optional base path of the service; no trailing slash.
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
    /// Overall deadline of a run, from its start.
    pub timeout: Duration,
    /// Re-send POST and PATCH items when a batch may have reached the server but
    /// its answer was lost. Off by default: they may have run already.
    pub retry_non_idempotent: bool,
    /// Delays between retries that have no `Retry-After`.
    pub backoff: Backoff,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOptions {
    api: String,
    endpoint: Option<String>,
    token: Option<String>,
    auth: Option<RawAuth>,
    cloud: Option<String>,
    api_version: Option<String>,
    graph_version: Option<String>,
    batch_size: Option<u64>,
    concurrency: Option<u64>,
    max_attempts: Option<u64>,
    follow_next_link: Option<bool>,
    timeout_seconds: Option<f64>,
    retry_non_idempotent: Option<bool>,
    jitter: Option<bool>,
}

/// `"auth": {...}`: where to get tokens instead of a static `"token"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAuth {
    #[serde(rename = "type")]
    kind: String,
    client_id: Option<String>,
    az_path: Option<String>,
}

impl RawAuth {
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

/// Default overall deadline of a run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

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
            batch_size: 20,
            concurrency: 8,
            max_attempts: 6,
            follow_next_link: false,
            timeout: DEFAULT_TIMEOUT,
            retry_non_idempotent: false,
            backoff: Backoff::default(),
        }
    }

    /// Parses and checks the options JSON of the C ABI. Unknown keys are an error
    /// so that a typo does not silently fall back to a default.
    pub fn from_json(text: &str) -> Result<Options, Error> {
        let raw: RawOptions = serde_json::from_str(text)
            .map_err(|e| Error::from_json(e, Error::InvalidOptions, "options"))?;
        let mut o = Options::new(Api::parse(&raw.api)?);
        if let Some(c) = raw.cloud {
            o.cloud = Cloud::parse(&c)?;
            o.endpoint = Url::parse(o.cloud.endpoint(o.api)).expect("cloud endpoints are URLs");
        }
        // An explicit endpoint wins over the cloud's.
        if let Some(e) = raw.endpoint {
            o.endpoint = parse_endpoint(&e)?;
        }
        o.credential = match (raw.token, raw.auth) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidOptions(
                    "give \"token\" or \"auth\", not both".into(),
                ))
            }
            (Some(t), None) if t.trim().is_empty() => {
                return Err(Error::InvalidOptions("token is empty".into()))
            }
            (Some(t), None) => Some(Credential::Static(Secret::new(t.trim().to_string()))),
            (None, Some(a)) => Some(a.credential()?),
            (None, None) => None,
        };
        if let Some(v) = raw.graph_version {
            if o.api != Api::Graph {
                return Err(Error::InvalidOptions(
                    "graphVersion applies to api \"graph\" only".into(),
                ));
            }
            if !GRAPH_VERSIONS.contains(&v.as_str()) {
                return Err(Error::InvalidOptions(format!(
                    "graphVersion must be one of {GRAPH_VERSIONS:?} (got \"{v}\")"
                )));
            }
            o.graph_version = v;
        }
        if let Some(v) = raw.api_version {
            if o.api != Api::Arm {
                return Err(Error::InvalidOptions(
                    "apiVersion applies to api \"arm\" only".into(),
                ));
            }
            if !ARM_BATCH_API_VERSIONS.contains(&v.as_str()) {
                return Err(Error::InvalidOptions(format!(
                    "apiVersion must be one of {ARM_BATCH_API_VERSIONS:?} (got \"{v}\")"
                )));
            }
            o.api_version = v;
        }
        if let Some(n) = raw.batch_size {
            o.batch_size = in_range("batchSize", n, 1, o.api.max_batch() as u64)? as usize;
        }
        if let Some(n) = raw.concurrency {
            o.concurrency = in_range("concurrency", n, 1, 256)? as usize;
        }
        if let Some(n) = raw.max_attempts {
            o.max_attempts = in_range("maxAttempts", n, 1, 100)? as u32;
        }
        if let Some(b) = raw.follow_next_link {
            o.follow_next_link = b;
        }
        if let Some(s) = raw.timeout_seconds {
            if !(s.is_finite() && s > 0.0 && s <= 7.0 * 86400.0) {
                return Err(Error::InvalidOptions(format!(
                    "timeoutSeconds must be more than 0 and at most 604800 (got {s})"
                )));
            }
            o.timeout = Duration::from_secs_f64(s);
        }
        if let Some(b) = raw.retry_non_idempotent {
            o.retry_non_idempotent = b;
        }
        if let Some(j) = raw.jitter {
            o.backoff.jitter = j;
        }
        Ok(o)
    }

    /// The resource (token audience) tokens are asked for.
    pub fn resource(&self) -> String {
        self.cloud.resource(self.api)
    }

    /// The URL of the batch endpoint.
    pub fn batch_url(&self) -> Url {
        let mut u = self.endpoint.clone();
        let base = u.path().trim_end_matches('/').to_string();
        match self.api {
            Api::Arm => {
                u.set_path(&format!("{base}/batch"));
                u.set_query(Some(&format!("api-version={}", self.api_version)));
            }
            Api::Graph => u.set_path(&format!("{base}/{}/$batch", self.graph_version)),
        }
        u
    }

    /// The path that request URLs are relative to: the endpoint's own path for
    /// ARM, `{path}/{version}` for Graph.
    pub fn url_root(&self) -> String {
        let base = self.endpoint.path().trim_end_matches('/');
        match self.api {
            Api::Arm => base.to_string(),
            Api::Graph => format!("{base}/{}", self.graph_version),
        }
    }

    /// Whether `url` is on the configured endpoint's scheme, host and port: the
    /// only place a token may be sent and a link may be followed.
    pub fn is_same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.endpoint.scheme()
            && url.host_str().map(str::to_ascii_lowercase)
                == self.endpoint.host_str().map(str::to_ascii_lowercase)
            && url.port_or_known_default() == self.endpoint.port_or_known_default()
    }
}

fn in_range(field: &str, n: u64, lo: u64, hi: u64) -> Result<u64, Error> {
    if n < lo || n > hi {
        return Err(Error::InvalidOptions(format!(
            "{field} must be between {lo} and {hi} (got {n})"
        )));
    }
    Ok(n)
}

/// Parses an endpoint: `https://` anywhere, `http://` only on a loopback host
/// (the emulator), no query or fragment.
pub fn parse_endpoint(text: &str) -> Result<Url, Error> {
    let bad = |why: String| Error::InvalidOptions(format!("endpoint \"{text}\": {why}"));
    let mut url = Url::parse(text.trim()).map_err(|e| bad(e.to_string()))?;
    let host = url.host_str().ok_or_else(|| bad("has no host".into()))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => return Err(bad("http:// is allowed only for loopback hosts".into())),
        s => return Err(bad(format!("scheme {s} is not supported"))),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials".into()));
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
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
    fn http_only_on_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9/",
            "https://example.com/",
        ] {
            parse_endpoint(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "https://h/?a=b",
            "https://u:p@h",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            parse_endpoint("http://127.0.0.1:8/").unwrap().as_str(),
            "http://127.0.0.1:8/"
        );
    }

    #[test]
    fn same_origin_checks_scheme_host_and_port() {
        let mut o = Options::new(Api::Arm);
        o.endpoint = parse_endpoint("http://127.0.0.1:8080").unwrap();
        assert!(o.is_same_origin(&Url::parse("http://127.0.0.1:8080/subscriptions?a=1").unwrap()));
        assert!(!o.is_same_origin(&Url::parse("http://127.0.0.1:8081/x").unwrap()));
        assert!(!o.is_same_origin(&Url::parse("https://127.0.0.1:8080/x").unwrap()));
        assert!(!o.is_same_origin(&Url::parse("http://evil.example/x").unwrap()));
    }

    #[test]
    fn token_is_not_in_debug_output() {
        let o = Options::from_json(r#"{"api":"arm","token":"s3cr3t-token"}"#).unwrap();
        assert!(!format!("{o:?}").contains("s3cr3t"));
    }
}
