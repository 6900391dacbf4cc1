//! Requests as callers give them: parsed, checked and given unique ids before a
//! run starts, so the engine only ever sees well-formed work.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::error::Error;
use crate::options::{Api, Options};
use crate::reference;

/// One request to send through the batch endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Unique (case-insensitively) within a run; given or assigned.
    pub id: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// Path and query relative to the API's root (the endpoint for ARM, the
    /// version root for Graph), starting with `/`.
    pub url: String,
    /// Headers to send with it (Graph only; `Content-Type` added for bodies).
    pub headers: Vec<(String, String)>,
    /// JSON content, or base64 text when `body_base64` is set.
    pub body: Option<Value>,
    /// The body is base64 of non-JSON bytes (Graph).
    pub body_base64: bool,
    /// ARM's `requestHeaderDetails`, passed through as given.
    pub header_details: Option<Value>,
    /// Ids of the requests that must succeed before this one is sent.
    pub depends_on: Vec<String>,
    /// Whether url, headers or body hold `{{id.body.path}}` references.
    pub has_references: bool,
}

const METHODS: [&str; 6] = ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"];

impl Request {
    /// A GET of `url` with the given id.
    pub fn get(id: &str, url: &str) -> Request {
        Request {
            id: id.into(),
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: None,
            body_base64: false,
            header_details: None,
            depends_on: vec![],
            has_references: false,
        }
    }

    /// Whether sending this request twice has the effect of sending it once.
    pub fn is_idempotent(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "PUT" | "DELETE" | "HEAD")
    }
}

/// The JSON form of a request (`request_json` in the C ABI).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRequest {
    id: Option<Value>,
    name: Option<Value>,
    method: Option<String>,
    http_method: Option<String>,
    url: Option<String>,
    headers: Option<Map<String, Value>>,
    body: Option<Value>,
    content: Option<Value>,
    body_encoding: Option<String>,
    request_header_details: Option<Value>,
    depends_on: Option<Vec<Value>>,
}

/// The requests of one run, in the order added, with their ids.
#[derive(Debug, Default)]
pub struct RequestList {
    items: Vec<Request>,
    /// Lower-case id → index.
    ids: HashMap<String, usize>,
}

impl RequestList {
    /// How many requests were added.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The requests, in the order added.
    pub fn into_vec(self) -> Vec<Request> {
        self.items
    }

    /// Checks that every `dependsOn` names a request that was added.
    /// Dependencies may be added in any order, so this runs before the start.
    pub fn check_dependencies(&self) -> Result<(), Error> {
        for (i, r) in self.items.iter().enumerate() {
            for d in &r.depends_on {
                if !self.ids.contains_key(&d.to_lowercase()) {
                    return Err(Error::InvalidRequest(format!(
                        "request[{i}] (id \"{}\"): field \"dependsOn\": no request has the id \"{d}\"",
                        r.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// Parses one request from JSON, checks it against `options`, and adds it.
    /// Errors name the request (`request[3]`, with its id when it has one) and
    /// the field at fault.
    pub fn add_json(&mut self, text: &str, options: &Options) -> Result<&Request, Error> {
        let index = self.items.len();
        let raw: RawRequest = serde_json::from_str(text).map_err(|e| {
            Error::from_json(
                e,
                |m| Error::InvalidRequest(format!("request[{index}]: {m}")),
                &format!("request[{index}]"),
            )
        })?;
        let id = match (raw.id, raw.name) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidRequest(format!(
                    "request[{index}]: give \"id\" or \"name\", not both"
                )))
            }
            (Some(v), None) | (None, Some(v)) => Some(scalar_id(v).ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "request[{index}]: field \"id\": must be a non-empty string or a number"
                ))
            })?),
            (None, None) => None,
        };
        let at = match &id {
            Some(id) => format!("request[{index}] (id \"{id}\")"),
            None => format!("request[{index}]"),
        };
        let bad = |field: &str, why: String| {
            Error::InvalidRequest(format!("{at}: field \"{field}\": {why}"))
        };

        let method = match (raw.method, raw.http_method) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "method",
                    "give \"method\" or \"httpMethod\", not both".into(),
                ))
            }
            (Some(m), None) | (None, Some(m)) => m.trim().to_ascii_uppercase(),
            (None, None) => "GET".to_string(),
        };
        if !METHODS.contains(&method.as_str()) {
            return Err(bad(
                "method",
                format!("must be one of {METHODS:?} (got \"{method}\")"),
            ));
        }
        let url = raw.url.ok_or_else(|| bad("url", "is required".into()))?;
        let url = relative_url(&url, options).map_err(|why| bad("url", why))?;

        let body = match (raw.body, raw.content) {
            (Some(_), Some(_)) => {
                return Err(bad("body", "give \"body\" or \"content\", not both".into()))
            }
            (Some(v), None) | (None, Some(v)) => Some(v).filter(|v| !v.is_null()),
            (None, None) => None,
        };
        if body.is_some() && matches!(method.as_str(), "GET" | "HEAD") {
            return Err(bad(
                "body",
                format!("a {method} request cannot have a body"),
            ));
        }
        let body_base64 = match raw
            .body_encoding
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("json") => false,
            Some("base64") if options.api == Api::Graph => true,
            Some("base64") => {
                return Err(bad(
                    "bodyEncoding",
                    "ARM batch items carry JSON content only".into(),
                ))
            }
            Some(other) => {
                return Err(bad(
                    "bodyEncoding",
                    format!("must be \"base64\" (got \"{other}\")"),
                ))
            }
        };
        if body_base64 {
            match body.as_ref().and_then(Value::as_str) {
                Some(b64)
                    if base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .is_ok() => {}
                Some(_) => return Err(bad("body", "is not valid base64".into())),
                None => {
                    return Err(bad(
                        "body",
                        "with bodyEncoding \"base64\" must be a base64 string".into(),
                    ))
                }
            }
        }
        let headers = headers(
            raw.headers.unwrap_or_default(),
            options.api,
            body.is_some(),
            body_base64,
        )
        .map_err(|why| bad("headers", why))?;

        let mut depends_on: Vec<String> = vec![];
        for d in raw.depends_on.unwrap_or_default() {
            let d = scalar_id(d)
                .ok_or_else(|| bad("dependsOn", "must list ids (strings or numbers)".into()))?;
            if id.as_deref().is_some_and(|me| me.eq_ignore_ascii_case(&d)) {
                return Err(bad("dependsOn", "a request cannot depend on itself".into()));
            }
            if !depends_on.iter().any(|x| x.eq_ignore_ascii_case(&d)) {
                depends_on.push(d);
            }
        }

        // References may only read from requests this one depends on.
        let mut refs: Vec<(&str, reference::Reference)> = vec![];
        for r in reference::find(&url).map_err(|why| bad("url", why))? {
            refs.push(("url", r));
        }
        for (_, v) in &headers {
            for r in reference::find(v).map_err(|why| bad("headers", why))? {
                refs.push(("headers", r));
            }
        }
        if let Some(b) = body.as_ref().filter(|_| !body_base64) {
            for r in reference::find_in_json(b).map_err(|why| bad("body", why))? {
                refs.push(("body", r));
            }
        }
        for (field, r) in &refs {
            if !depends_on.iter().any(|d| d.eq_ignore_ascii_case(&r.id)) {
                return Err(bad(
                    field,
                    format!(
                        "the reference {{{{{}}}}} reads request \"{}\", which is not in dependsOn",
                        r.text, r.id
                    ),
                ));
            }
        }

        let id = match id {
            Some(id) => {
                if self.ids.contains_key(&id.to_lowercase()) {
                    return Err(bad(
                        "id",
                        "duplicate: another request already has this id (ids are case-insensitive)"
                            .into(),
                    ));
                }
                id
            }
            None => self.fresh_id(index),
        };
        if let Some(cycle) = self.cycle_through(&id, &depends_on) {
            return Err(bad(
                "dependsOn",
                format!("makes a cycle: {}", cycle.join(" -> ")),
            ));
        }
        self.ids.insert(id.to_lowercase(), index);
        self.items.push(Request {
            id,
            method,
            url,
            headers,
            body,
            body_base64,
            header_details: raw.request_header_details,
            depends_on,
            has_references: !refs.is_empty(),
        });
        Ok(self.items.last().expect("just pushed"))
    }

    /// A path from `id` back to itself through `depends_on` and the requests
    /// already added, if adding it would close a cycle.
    fn cycle_through(&self, id: &str, depends_on: &[String]) -> Option<Vec<String>> {
        let target = id.to_lowercase();
        let mut stack: Vec<(String, Vec<String>)> = depends_on
            .iter()
            .map(|d| (d.to_lowercase(), vec![id.to_string(), d.clone()]))
            .collect();
        let mut seen = HashSet::new();
        while let Some((cur, path)) = stack.pop() {
            if cur == target {
                return Some(path);
            }
            if !seen.insert(cur.clone()) {
                continue;
            }
            if let Some(&i) = self.ids.get(&cur) {
                for d in &self.items[i].depends_on {
                    let mut p = path.clone();
                    p.push(d.clone());
                    stack.push((d.to_lowercase(), p));
                }
            }
        }
        None
    }

    /// An id for a request that came without one: its index, or the index with
    /// a suffix when a caller already used that text.
    fn fresh_id(&self, index: usize) -> String {
        let mut id = index.to_string();
        let mut n = 1;
        while self.ids.contains_key(&id.to_lowercase()) {
            id = format!("{index}-{n}");
            n += 1;
        }
        id
    }
}

/// Checks and completes a request's headers. ARM items cannot carry headers
/// (a JSON Content-Type is accepted and implied); Graph items can, and a body
/// gets the `Content-Type` Graph requires.
fn headers(
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
        if api == Api::Arm {
            let json = name.eq_ignore_ascii_case("content-type")
                && value.to_ascii_lowercase().starts_with("application/json");
            if !json {
                return Err(format!("ARM batch items cannot carry the header \"{name}\" (only Content-Type: application/json)"));
            }
            continue;
        }
        out.push((name, value));
    }
    if api == Api::Graph
        && has_body
        && !out
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        let ct = if base64 {
            "application/octet-stream"
        } else {
            "application/json"
        };
        out.push(("Content-Type".into(), ct.into()));
    }
    Ok(out)
}

fn scalar_id(v: Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Turns a request URL into a path and query relative to the API's root (see
/// [`Options::url_root`]). Absolute URLs must be on the endpoint's origin (and,
/// for Graph, under the run's version): anything else would send the token to
/// another host.
pub fn relative_url(text: &str, options: &Options) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    // `{{rg.body.id}}?api-version=...`: checked the same way once filled in.
    if text.starts_with("{{") {
        return Ok(text.to_string());
    }
    if !text.contains("://") {
        if text.starts_with("//") {
            return Err(format!("\"{text}\" is neither a path nor an absolute URL"));
        }
        if text.starts_with('/') {
            return Ok(text.to_string());
        }
        if options.api == Api::Graph {
            return Ok(format!("/{text}"));
        }
        return Err(format!(
            "\"{text}\" is neither a path starting with '/' nor an absolute URL"
        ));
    }
    let url = Url::parse(text).map_err(|e| format!("\"{text}\" is not a valid URL ({e})"))?;
    if !options.is_same_origin(&url) {
        return Err(format!(
            "\"{}\" is not on the endpoint {}; only the endpoint's own host is called",
            url.origin().ascii_serialization(),
            options.endpoint.origin().ascii_serialization()
        ));
    }
    let root = options.url_root();
    let path = match url.path().strip_prefix(&root) {
        Some(p) if p.is_empty() || p.starts_with('/') => p,
        _ if options.api == Api::Graph => {
            return Err(format!(
                "\"{text}\" is not under {root}, the Graph version of this run"
            ));
        }
        _ => url.path(),
    };
    Ok(match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options::new(Api::Arm)
    }

    fn graph() -> Options {
        Options::new(Api::Graph)
    }

    #[test]
    fn accepts_both_spellings_and_defaults_to_get() {
        let mut l = RequestList::default();
        let r = l
            .add_json(
                r#"{"name":"a","httpMethod":"put","url":"/x?api-version=1","content":{"k":1}}"#,
                &opts(),
            )
            .unwrap();
        assert_eq!(
            (r.id.as_str(), r.method.as_str(), r.body.clone()),
            ("a", "PUT", Some(serde_json::json!({"k":1})))
        );
        let r = l
            .add_json(
                r#"{"url":"https://management.azure.com/subscriptions?api-version=2"}"#,
                &opts(),
            )
            .unwrap();
        assert_eq!(
            (r.id.as_str(), r.method.as_str(), r.url.as_str()),
            ("1", "GET", "/subscriptions?api-version=2")
        );
    }

    #[test]
    fn errors_name_the_request_and_the_field() {
        let mut l = RequestList::default();
        l.add_json(r#"{"id":"one","url":"/a"}"#, &opts()).unwrap();
        let cases = [
            (r#"{"id":"ONE","url":"/b"}"#, "request[1] (id \"ONE\"): field \"id\": duplicate"),
            (r#"{"id":"x","url":"https://evil.example/steal"}"#, "request[1] (id \"x\"): field \"url\""),
            (r#"{"url":"relative/path"}"#, "request[1]: field \"url\""),
            (r#"{"id":"y"}"#, "field \"url\": is required"),
            (r#"{"url":"/a","method":"FETCH"}"#, "field \"method\""),
            (r#"{"url":"/a","boddy":{}}"#, "request[1]: unknown field `boddy`"),
            (r#"{"url":"/a","headers":{"x-foo":"1"}}"#, "field \"headers\""),
            (r#"{"url":"/a","body":{"a":1}}"#, "GET request cannot have a body"),
            (r#"{"url":"/a","id":""}"#, "field \"id\""),
            (r#"not json"#, "request[1]: not valid JSON"),
            (r#"{"id":"z","url":"/a","dependsOn":["z"]}"#, "cannot depend on itself"),
            (r#"{"id":"z","url":"/{{one.body.id}}"}"#, "field \"url\": the reference {{one.body.id}} reads request \"one\", which is not in dependsOn"),
            (r#"{"url":"/a","method":"POST","body":"aGk=","bodyEncoding":"base64"}"#, "ARM batch items carry JSON content only"),
        ];
        for (input, want) in cases {
            let e = l.add_json(input, &opts()).unwrap_err().to_string();
            assert!(e.contains(want), "{input}: {e}");
        }
        assert_eq!(l.len(), 1, "refused requests are not added");
    }

    #[test]
    fn generated_ids_avoid_given_ones() {
        let mut l = RequestList::default();
        l.add_json(r#"{"id":"1","url":"/a"}"#, &opts()).unwrap();
        let r = l.add_json(r#"{"url":"/b"}"#, &opts()).unwrap();
        assert_eq!(r.id, "1-1");
        let e = l
            .add_json(r#"{"id":"1-1","url":"/c"}"#, &opts())
            .unwrap_err();
        assert!(e.to_string().contains("duplicate"));
    }

    #[test]
    fn dependencies_in_any_order_without_cycles() {
        let mut l = RequestList::default();
        l.add_json(r#"{"id":"c","url":"/c","dependsOn":["b"]}"#, &opts())
            .unwrap();
        l.add_json(r#"{"id":"b","url":"/b","dependsOn":["a"]}"#, &opts())
            .unwrap();
        let e = l
            .add_json(r#"{"id":"a","url":"/a","dependsOn":["C"]}"#, &opts())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "request[2] (id \"a\"): field \"dependsOn\": makes a cycle: a -> C -> b -> a"
            ),
            "{e}"
        );
        let e = l.check_dependencies().unwrap_err().to_string();
        assert!(
            e.contains("request[1] (id \"b\"): field \"dependsOn\": no request has the id \"a\""),
            "{e}"
        );
        let mut l = RequestList::default();
        l.add_json(r#"{"id":"c","url":"/c","dependsOn":["a","A"]}"#, &opts())
            .unwrap();
        l.add_json(r#"{"id":"a","url":"/a"}"#, &opts()).unwrap();
        l.check_dependencies().unwrap();
        let reqs = l.into_vec();
        assert_eq!(reqs[0].depends_on, ["a"], "duplicates folded");
    }

    #[test]
    fn graph_urls_headers_and_bodies() {
        let g = graph();
        let mut l = RequestList::default();
        let r = l.add_json(r#"{"id":"u","method":"POST","url":"https://graph.microsoft.com/v1.0/users?$select=id","body":{"a":1}}"#, &g).unwrap();
        assert_eq!(r.url, "/users?$select=id");
        assert_eq!(
            r.headers,
            [("Content-Type".to_string(), "application/json".to_string())]
        );
        let r = l
            .add_json(
                r#"{"url":"me/messages","headers":{"ConsistencyLevel":"eventual"}}"#,
                &g,
            )
            .unwrap();
        assert_eq!((r.url.as_str(), r.headers.len()), ("/me/messages", 1));
        let r = l.add_json(r#"{"id":"p","method":"PUT","url":"/users/{{u.body.id}}/photo/$value","dependsOn":["u"],"headers":{"Content-Type":"image/jpeg"},"body":"/9j/4AAQ","bodyEncoding":"base64"}"#, &g).unwrap();
        assert!(r.body_base64 && r.has_references);
        for (input, want) in [
            (
                r#"{"url":"https://graph.microsoft.com/beta/me"}"#,
                "not under /v1.0",
            ),
            (
                r#"{"url":"https://graph.microsoft.us/v1.0/me"}"#,
                "not on the endpoint",
            ),
            (
                r#"{"url":"/me","headers":{"Authorization":"Bearer x"}}"#,
                "set by AzBatch",
            ),
            (
                r#"{"method":"POST","url":"/x","body":"%%%","bodyEncoding":"base64"}"#,
                "not valid base64",
            ),
        ] {
            let e = l.add_json(input, &g).unwrap_err().to_string();
            assert!(e.contains(want), "{input}: {e}");
        }
    }
}
