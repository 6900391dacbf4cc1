//! The two APIs AzBatch speaks, each in one place: [`arm`] holds everything
//! Azure Resource Manager's batch endpoint asks and answers (envelope, URLs,
//! methods, throttle buckets and their headers, batch limits), [`graph`] the
//! same for Microsoft Graph's JSON batching. This file holds what the rest of
//! the library asks of either, by [`Api`].

pub mod arm;
pub mod graph;

use serde_json::{Map, Value};

use crate::error::Error;

/// Which batch dialect to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Azure Resource Manager, `POST {endpoint}/batch`.
    Arm,
    /// Microsoft Graph, `POST {endpoint}/{v1.0|beta}/$batch`.
    Graph,
}

impl Api {
    /// Parses `arm` or `graph` (any case).
    pub fn parse(s: &str) -> Result<Api, Error> {
        match s.to_ascii_lowercase().as_str() {
            "arm" => Ok(Api::Arm),
            "graph" => Ok(Api::Graph),
            other => Err(Error::InvalidOptions(format!(
                "api must be \"arm\" or \"graph\" (got \"{other}\")"
            ))),
        }
    }

    /// The name options and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Api::Arm => "arm",
            Api::Graph => "graph",
        }
    }

    /// Most items one batch may hold.
    pub fn max_batch(self) -> usize {
        match self {
            Api::Arm => arm::MAX_BATCH,
            Api::Graph => graph::MAX_BATCH,
        }
    }

    /// The body key of a paged answer's link to the next page.
    pub fn next_link_key(self) -> &'static str {
        match self {
            Api::Arm => arm::NEXT_LINK,
            Api::Graph => graph::NEXT_LINK,
        }
    }

    /// The API a relative URL belongs to, from its first segment (Graph's
    /// versions and top-level resources, ARM's roots) or an `api-version` in
    /// its query; `None` when it could be either. What `-Api` is inferred from.
    pub fn of_url(url: &str) -> Option<Api> {
        let first = first_segment(url);
        if graph::is_root(first)
            || graph::VERSIONS
                .iter()
                .any(|v| first.eq_ignore_ascii_case(v))
        {
            Some(Api::Graph)
        } else if arm::is_root(first) || arm::has_api_version(url) {
            Some(Api::Arm)
        } else {
            None
        }
    }
}

/// The first segment of a relative URL's path: `users` of `/users/1?$top=1`.
pub(crate) fn first_segment(url: &str) -> &str {
    let path = url.trim_start_matches('/');
    let end = path.find(['/', '?', '(']).unwrap_or(path.len());
    &path[..end]
}

/// The JSON body of one batch request in `api`'s dialect.
pub fn encode(api: Api, items: &[Outgoing<'_>]) -> Vec<u8> {
    match api {
        Api::Arm => arm::encode(items),
        Api::Graph => graph::encode(items),
    }
}

/// Reads a final batch answer in `api`'s dialect.
pub fn decode(api: Api, body: &[u8]) -> Result<Vec<ItemAnswer>, String> {
    match api {
        Api::Arm => arm::decode(body),
        Api::Graph => graph::decode(body),
    }
}

/// An item as a request of its own (the batch endpoint is refused).
#[derive(Debug, Clone, PartialEq)]
pub struct Single {
    /// The item's wire name, which its answer is read back under.
    pub name: String,
    /// Its method, as the transport takes it.
    pub method: &'static str,
    /// Path and query relative to the run's root.
    pub url: String,
    /// Graph's own headers, and a body's `Content-Type`.
    pub headers: Vec<(String, String)>,
    /// The body's bytes (a base64 body decoded).
    pub body: Option<Vec<u8>>,
}

/// An item as a request of its own, for when the batch endpoint is refused.
pub fn single(o: &Outgoing<'_>) -> Single {
    use base64::Engine as _;
    let method = match o.method {
        "GET" => "GET",
        "PUT" => "PUT",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "HEAD",
    };
    let mut headers: Vec<(String, String)> = o.headers.to_vec();
    let base64 = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && !graph::is_json_type(v));
    let body = o.body.map(|b| match (b, base64) {
        (Value::String(text), true) => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap_or_default(),
        (json, _) => serde_json::to_vec(json).expect("a JSON value always serializes"),
    });
    if body.is_some()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    Single {
        name: o.name.to_string(),
        method,
        url: o.url.to_string(),
        headers,
        body,
    }
}

/// A request's own answer, sent on its own, read as a batch item's answer
/// named `name`: JSON bodies as JSON, others as text (base64 for Graph, as
/// its batch answers carry them).
pub fn single_answer(
    api: Api,
    name: &str,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> ItemAnswer {
    use base64::Engine as _;
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let json_type = header_in(&headers, "content-type").is_none_or(|t| graph::is_json_type(&t));
    let (body, base64) = match serde_json::from_slice::<Value>(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(v) if json_type => (v, false),
        _ if api == Api::Graph => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
        _ => (
            Value::String(String::from_utf8_lossy(body).into_owned()),
            false,
        ),
    };
    ItemAnswer {
        name: name.to_string(),
        status,
        headers,
        body,
        base64,
    }
}

/// Whether a batch request answered `status` means the batch endpoint
/// itself is refused here (not routed, not allowed, not understood), so the
/// requests can only go one by one.
pub fn batch_endpoint_refused(status: u16) -> bool {
    matches!(status, 400 | 404 | 405)
}

/// A URL that clearly belongs to the other API, found before anything is
/// sent: the server would only answer 404 (or worse, something else).
pub(crate) fn refuse_foreign_url(url: &str, api: Api) -> Result<(), String> {
    match api {
        Api::Arm if graph::is_root(first_segment(url)) => Err(format!(
            "\"/{}\" is a Microsoft Graph URL, but this run's api is arm: use api graph (--api graph, -Api Graph)",
            first_segment(url)
        )),
        Api::Graph if arm::is_surely_arm(url) => Err(
            "is an Azure Resource Manager URL, but this run's api is graph: use api arm (--api arm, -Api Arm)"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// Checks and completes a request's headers for `api`: what its items may
/// carry, and the `Content-Type` a body needs.
pub(crate) fn item_headers(
    given: Map<String, Value>,
    api: Api,
    has_body: bool,
    base64: bool,
) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = vec![];
    for (name, value) in given {
        let value = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(format!("the value of \"{name}\" must be a string")),
        };
        if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("host") {
            return Err(format!("\"{name}\" is set by AzBatch and cannot be given"));
        }
        out.push((name, value));
    }
    match api {
        Api::Arm => arm::item_headers(out),
        Api::Graph => Ok(graph::item_headers(out, has_body, base64)),
    }
}

/// The error code of a 429 that is not throttling (another operation holds
/// the resource): retried, but its scope is not slowed.
pub(crate) fn contention(api: Api, status: u16, body: &Value) -> Option<String> {
    match (api, status) {
        (Api::Arm, 429) => arm::contention(body),
        _ => None,
    }
}

/// The Graph version a request URL travels in when it is not its run's
/// (`/beta/users/x` in a v1.0 run): its batch goes to that version's
/// endpoint. None for the run's own, and for ARM.
pub fn batch_version(api: Api, url: &str) -> Option<&'static str> {
    match api {
        Api::Graph => graph::version_of(url).map(|(v, _)| v),
        Api::Arm => None,
    }
}

/// The throttle scope a request falls in, as the engine paces it:
/// `subscription-reads/{id}`, `tenant-writes`, `app`, `mailbox/{user}`.
pub fn throttle_scope(api: Api, method: &str, url: &str) -> String {
    let path = url.split('?').next().unwrap_or("");
    match api {
        Api::Arm => arm::scope(method, path),
        Api::Graph => graph::scope(path),
    }
}

/// The operation a request is, as the service's own limits inside a scope
/// see it: ARM's resource providers ([`arm::operation`]), Graph's services
/// ([`graph::operation`]).
pub(crate) fn provider_operation(api: Api, method: &str, url: &str) -> Option<String> {
    match api {
        Api::Arm => arm::operation(method, url),
        Api::Graph => graph::operation(method, url).map(str::to_string),
    }
}

/// What a request costs of its scope's bucket when its API prices calls
/// one by one (SharePoint's resource units); none where the scope's own
/// cost for a read or a write applies.
pub(crate) fn call_cost(api: Api, method: &str, url: &str) -> Option<f64> {
    match api {
        Api::Graph => graph::sharepoint_cost(method, url),
        Api::Arm => None,
    }
}

/// The documented policies an operation meets from its start (Graph's
/// services; ARM's providers say theirs on their answers).
pub(crate) fn documented_policies(op: &str) -> &'static [graph::Policy] {
    graph::policies(op)
}

/// The policy of operation `op` an answer says is spent: ARM's provider
/// policy whose figure is below one (the emptiest when several are), or the
/// Graph limit its throttle headers name.
pub(crate) fn spent_policy(op: Option<&str>, answer: &ItemAnswer) -> Option<String> {
    if let Some(named) = op.and_then(|op| graph::spent_policy(op, |k| answer.header(k))) {
        return Some(named.to_string());
    }
    let value = answer.header(arm::REMAINING_RESOURCE)?;
    arm::provider_policies(&value)
        .into_iter()
        .filter(|(_, left)| *left < 1.0)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(name, _)| name)
}

/// A header of an item's answer, looked up case-insensitively.
pub(crate) fn header_in(headers: &Map<String, Value>, name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
}

/// What a throttled answer's headers say of the limit that throttled it
/// (Graph's `x-ms-throttle-scope` and `x-ms-throttle-information`): the
/// scope, the reason, and both in words.
pub(crate) fn throttle_info(
    headers: &Map<String, Value>,
) -> Option<(Option<String>, Option<String>, String)> {
    graph::throttle_info(|k| header_in(headers, k))
}

/// One item's answer inside a batch answer, whatever the dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemAnswer {
    /// The wire name (ARM `name`) the answer belongs to.
    pub name: String,
    /// The item's HTTP status.
    pub status: u16,
    /// The item's headers.
    pub headers: Map<String, Value>,
    /// The item's content: JSON, a string, or null.
    pub body: Value,
    /// `body` is base64 of a non-JSON answer (Graph).
    pub base64: bool,
}

/// What one batch item carries: its wire name, the request's method,
/// headers and body, and the URL of the page to fetch (the request's own or a
/// `nextLink`). Dependencies are ordered on the client, so no item carries
/// Graph's server-side `dependsOn`.
pub struct Outgoing<'a> {
    /// Unique within the batch; answers are matched by it.
    pub name: &'a str,
    /// Upper-case HTTP method.
    pub method: &'a str,
    /// Path and query to call.
    pub url: &'a str,
    /// Headers (Graph only).
    pub headers: &'a [(String, String)],
    /// JSON content, or base64 text (Graph).
    pub body: Option<&'a Value>,
    /// ARM's `requestHeaderDetails`, passed through.
    pub header_details: Option<&'a Value>,
}

impl ItemAnswer {
    /// A header of this answer, looked up case-insensitively.
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(&self.headers, name)
    }

    /// A header of this answer read as a finite, non-negative number.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.header(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_apart_by_their_first_segment() {
        let cases = [
            ("/users/1", Some(Api::Graph)),
            ("me/messages", Some(Api::Graph)),
            ("/servicePrincipals(appId='x')", Some(Api::Graph)),
            ("/deviceManagement/managedDevices", Some(Api::Graph)),
            (
                "/subscriptions/s/resourceGroups?api-version=2021-04-01",
                Some(Api::Arm),
            ),
            (
                "/providers/Microsoft.Management/managementGroups",
                Some(Api::Arm),
            ),
            ("/whatever?api-version=1", Some(Api::Arm)),
            ("v1.0/users/x", Some(Api::Graph)),
            ("/beta/me", Some(Api::Graph)),
            ("/whatever", None),
        ];
        for (url, api) in cases {
            assert_eq!(Api::of_url(url), api, "{url}");
        }
    }

    #[test]
    fn foreign_urls_are_refused_with_the_fix() {
        assert!(refuse_foreign_url("/users/1", Api::Arm)
            .unwrap_err()
            .contains("--api graph"));
        assert!(refuse_foreign_url("/domains", Api::Arm).is_err());
        assert!(
            refuse_foreign_url("/subscriptions/s/resourceGroups?api-version=1", Api::Graph)
                .unwrap_err()
                .contains("--api arm")
        );
        // Graph's own /subscriptions (change notifications) stays Graph's.
        assert!(refuse_foreign_url("/subscriptions/abc", Api::Graph).is_ok());
        assert!(refuse_foreign_url("/subscriptions/abc?api-version=1", Api::Arm).is_ok());
    }

    #[test]
    fn scopes() {
        let arm = |m, u| throttle_scope(Api::Arm, m, u);
        assert_eq!(
            arm("GET", "/subscriptions/ABC/resourceGroups?x=1"),
            "subscription-reads/abc"
        );
        assert_eq!(
            arm("PUT", "/subscriptions/abc/resourceGroups/x"),
            "subscription-writes/abc"
        );
        assert_eq!(
            arm("DELETE", "/subscriptions/abc/resourceGroups/x"),
            "subscription-deletes/abc"
        );
        assert_eq!(arm("GET", "/subscriptions?api-version=1"), "tenant-reads");
        assert_eq!(
            arm("POST", "/providers/Microsoft.Management/x"),
            "tenant-writes"
        );
        let graph = |u| throttle_scope(Api::Graph, "GET", u);
        assert_eq!(graph("/users/1"), "app");
        assert_eq!(
            graph("/users/Ada@x.com/messages?$top=5"),
            "mailbox/ada@x.com"
        );
        assert_eq!(graph("/users/1/calendarView?startDateTime=x"), "mailbox/1");
        assert_eq!(graph("/me/events"), "mailbox/me");
        assert_eq!(graph("/users/1/memberOf"), "app");
    }
}
