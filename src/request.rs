//! Requests as callers give them: parsed, checked and given unique ids before a
//! run starts, so the engine only ever sees well-formed work.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::error::Error;
use crate::options::Options;

/// One request to send through the batch endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Unique (case-insensitively) within a run; given or assigned.
    pub id: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// Path and query relative to the endpoint, starting with `/`.
    pub url: String,
    /// JSON content, if any.
    pub body: Option<Value>,
    /// ARM's `requestHeaderDetails`, passed through as given.
    pub header_details: Option<Value>,
}

const METHODS: [&str; 6] = ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"];

impl Request {
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
    request_header_details: Option<Value>,
}

/// The requests of one run, in the order added, with their ids.
#[derive(Debug, Default)]
pub struct RequestList {
    items: Vec<Request>,
    ids: HashSet<String>,
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
        if let Some(headers) = raw.headers {
            for (name, value) in headers {
                let json = name.eq_ignore_ascii_case("content-type")
                    && value
                        .as_str()
                        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
                if !json {
                    return Err(bad(
                        "headers",
                        format!("ARM batch items cannot carry the header \"{name}\" (only Content-Type: application/json)"),
                    ));
                }
            }
        }
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

        let id = match id {
            Some(id) => {
                if !self.ids.insert(id.to_lowercase()) {
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
        self.items.push(Request {
            id,
            method,
            url,
            body,
            header_details: raw.request_header_details,
        });
        Ok(self.items.last().expect("just pushed"))
    }

    /// An id for a request that came without one: its index, or the index with
    /// a suffix when a caller already used that text.
    fn fresh_id(&mut self, index: usize) -> String {
        let mut id = index.to_string();
        let mut n = 1;
        while !self.ids.insert(id.to_lowercase()) {
            id = format!("{index}-{n}");
            n += 1;
        }
        id
    }
}

fn scalar_id(v: Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Turns a request URL into a path and query relative to the endpoint. Absolute
/// URLs must be on the endpoint's origin: anything else would send the token to
/// another host.
pub fn relative_url(text: &str, options: &Options) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.starts_with('/') && !text.starts_with("//") {
        return Ok(text.to_string());
    }
    let url = Url::parse(text).map_err(|e| {
        format!("\"{text}\" is neither a path starting with '/' nor an absolute URL ({e})")
    })?;
    if !options.is_same_origin(&url) {
        return Err(format!(
            "\"{}\" is not on the endpoint {}; only the endpoint's own host is called",
            url.origin().ascii_serialization(),
            options.endpoint.origin().ascii_serialization()
        ));
    }
    let base = options.endpoint.path().trim_end_matches('/');
    let path = url.path().strip_prefix(base).unwrap_or(url.path());
    Ok(match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Api;

    fn opts() -> Options {
        Options::new(Api::Arm)
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
            (
                r#"{"id":"ONE","url":"/b"}"#,
                "request[1] (id \"ONE\"): field \"id\": duplicate",
            ),
            (
                r#"{"id":"x","url":"https://evil.example/steal"}"#,
                "request[1] (id \"x\"): field \"url\"",
            ),
            (r#"{"url":"relative/path"}"#, "request[1]: field \"url\""),
            (r#"{"id":"y"}"#, "field \"url\": is required"),
            (r#"{"url":"/a","method":"FETCH"}"#, "field \"method\""),
            (
                r#"{"url":"/a","boddy":{}}"#,
                "request[1]: unknown field `boddy`",
            ),
            (
                r#"{"url":"/a","headers":{"x-foo":"1"}}"#,
                "field \"headers\"",
            ),
            (
                r#"{"url":"/a","body":{"a":1}}"#,
                "GET request cannot have a body",
            ),
            (r#"{"url":"/a","id":""}"#, "field \"id\""),
            (r#"not json"#, "request[1]: not valid JSON"),
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
}
