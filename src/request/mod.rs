//! Requests as callers give them ([`RequestSpec`], typed, or its JSON form):
//! parsed, checked and given unique ids before a run starts, so the engine only
//! ever sees well-formed work.

pub(crate) mod peers;

use std::collections::HashSet;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dependencies::{Links, SharedGraph, GIVEN_IDS_ONLY};
use crate::dialect::{self, Api};
use crate::error::Error;
use crate::limits;
use crate::options::Options;
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
    /// The caller gave the id (others can only name requests by a given id).
    pub named: bool,
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
            named: true,
        }
    }

    /// The id its caller gave, by which others may name it (`None`: it was
    /// assigned, and names nothing).
    pub fn given_id(&self) -> Option<&str> {
        self.named.then_some(self.id.as_str())
    }

    /// Whether sending this request twice has the effect of sending it once.
    pub fn is_idempotent(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "PUT" | "DELETE" | "HEAD")
    }

    /// Whether it only reads (a send that may have run changed nothing).
    pub fn is_read(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD")
    }

    /// About how many bytes it adds to a batch request body: URL, headers,
    /// body, and the item's own keys and punctuation.
    pub fn wire_size(&self) -> usize {
        const ITEM_KEYS: usize = 96;
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum();
        let deps: usize = self.depends_on.iter().map(|d| d.len() + 8).sum();
        ITEM_KEYS
            + self.url.len()
            + headers
            + deps
            + self.body.as_ref().map_or(0, json_len)
            + self.header_details.as_ref().map_or(0, json_len)
    }
}

/// The length of `v` as compact JSON, counted without building the text.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    serde_json::to_writer(&mut c, v).map_or(0, |_| c.0)
}

/// A request as a caller gives it, before it is checked: the fields of the C
/// ABI's request JSON, typed. ARM's spellings (`name`, `httpMethod`, `content`)
/// are accepted beside the general ones, and the shapes of Invoke-AzRestMethod
/// and Invoke-MgGraphRequest ([`peers`]), with keys in any case.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestSpec {
    /// A string or number; assigned when left out.
    pub id: Option<Value>,
    /// ARM's spelling of `id`.
    pub name: Option<Value>,
    /// `GET` when left out.
    pub method: Option<String>,
    /// ARM's spelling of `method`.
    pub http_method: Option<String>,
    /// A path, or an absolute URL on the endpoint.
    pub url: Option<String>,
    /// Header names and values (Graph).
    pub headers: Option<Map<String, Value>>,
    /// The JSON body, or base64 text with `bodyEncoding`.
    pub body: Option<Value>,
    /// ARM's spelling of `body`.
    pub content: Option<Value>,
    /// `base64` for a non-JSON Graph body.
    pub body_encoding: Option<String>,
    /// ARM's `requestHeaderDetails`, passed through.
    pub request_header_details: Option<Value>,
    /// Ids of requests that must succeed first.
    pub depends_on: Option<Vec<Value>>,
    /// A template sent once in every subscription ([`crate::fanout`]).
    pub for_each_subscription: Option<bool>,
    /// Invoke-AzRestMethod's `Path`: the `url`.
    pub path: Option<String>,
    /// Invoke-AzRestMethod's `Payload`: JSON text, the `body`.
    pub payload: Option<Value>,
    /// Invoke-AzRestMethod's path by parts (with `resourceGroupName`,
    /// `resourceProviderName`, `resourceType`, `resourceName`, `apiVersion`).
    pub subscription_id: Option<String>,
    pub resource_group_name: Option<String>,
    pub resource_provider_name: Option<String>,
    /// Text (`/` between a type and its child types) or a list.
    pub resource_type: Option<Value>,
    /// Invoke-AzRestMethod's `Name` (beside `ResourceType`): text or a list.
    pub resource_name: Option<Value>,
    pub api_version: Option<String>,
    /// Invoke-MgGraphRequest's `ContentType`: the `Content-Type` header.
    pub content_type: Option<String>,
}

impl RequestSpec {
    /// Parses the JSON form of request number `index` (for messages). A
    /// value of the wrong type names the request and the field.
    pub fn from_json(text: &str, index: usize) -> Result<RequestSpec, Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        match serde_path_to_error::deserialize::<_, RequestSpec>(&mut de) {
            Ok(spec) => {
                de.end().map_err(|e| {
                    Error::InvalidJson(format!("request[{index}]: not valid JSON: {e}"))
                })?;
                Ok(spec)
            }
            // Keys in another spelling (`Path`, `Uri`): read again, by name.
            Err(e) if e.inner().to_string().starts_with("unknown field") => {
                let json: Value = serde_json::from_str(text).map_err(|e| {
                    Error::InvalidJson(format!("request[{index}]: not valid JSON: {e}"))
                })?;
                RequestSpec::from_value(json, index)
            }
            Err(e) => {
                // Only on the error path: the id, to name the request by it.
                let id = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| given_id_of(&v));
                Err(spec_error(e, &At::new(index, id.as_deref())))
            }
        }
    }

    /// [`RequestSpec::from_json`], from JSON already parsed.
    pub fn from_value(mut json: Value, index: usize) -> Result<RequestSpec, Error> {
        if let Some(object) = json.as_object_mut() {
            peers::canonical_keys(object);
        }
        let id = given_id_of(&json);
        serde_path_to_error::deserialize(json)
            .map_err(|e| spec_error(e, &At::new(index, id.as_deref())))
    }

    /// The request in its own fields only, the peers' forms resolved
    /// ([`peers`]): what the module sends, and shows before sending.
    pub fn canonical(mut self, index: usize) -> Result<RequestSpec, Error> {
        let id = self.id.clone().or(self.name.clone()).and_then(scalar_id);
        peers::resolve(&mut self)
            .map_err(|(field, why)| At::new(index, id.as_deref()).bad(field, why))?;
        Ok(self)
    }

    /// Its JSON form, the fields given only.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.retain(|_, x| !x.is_null());
        }
        v
    }

    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> RequestSpec {
        RequestSpec {
            url: Some(url.into()),
            ..RequestSpec::default()
        }
    }
}

/// The requests of one run, in the order added, with their dependency graph.
/// A running job hands each request on as it is added ([`RequestList::take_last`]),
/// keeping only the graph, so ids stay unique over the whole run.
#[derive(Debug, Default)]
pub struct RequestList {
    items: Vec<Request>,
    /// How each request held is linked to the others; `None` when to none
    /// (most requests: a word each rather than a [`Links`]).
    links: Vec<Option<Box<Links>>>,
    graph: SharedGraph,
    /// Requests added so far, handed on or not.
    added: usize,
    /// Which requests were assigned their index as id (one bit each): a
    /// given id is checked against these without holding them as text.
    plain: Vec<u64>,
    /// Assigned ids that needed a suffix (`1-1`: a caller had taken `1`), lower case.
    suffixed: HashSet<String>,
}

/// `links` as the list stores them: boxed when the request is linked to
/// any other, else nothing ([`unbox`] gives them back).
fn boxed(links: Links) -> Option<Box<Links>> {
    let linked = !(links.known.is_empty() && links.unknown == 0 && links.awaited_by.is_empty());
    linked.then(|| Box::new(links))
}

/// The links of request `index`, as [`boxed`] stored them.
fn unbox(links: Option<Box<Links>>, index: usize) -> Links {
    links.map_or(
        Links {
            index,
            ..Links::default()
        },
        |l| *l,
    )
}

/// Where a request stands in its list, for error messages.
pub(crate) struct At {
    index: usize,
    pub text: String,
}

impl At {
    pub fn new(index: usize, id: Option<&str>) -> At {
        let text = match id {
            Some(id) => format!("request[{index}] (id \"{id}\")"),
            None => format!("request[{index}]"),
        };
        At { index, text }
    }

    pub fn bad(&self, field: &str, why: impl std::fmt::Display) -> Error {
        Error::InvalidRequest(format!("{}: field \"{field}\": {why}", self.text))
    }
}

/// A body and how it is encoded.
struct Body {
    value: Option<Value>,
    base64: bool,
}

impl RequestList {
    /// How many requests were added.
    #[allow(clippy::len_without_is_empty)] // a list is asked its length, never whether it is empty
    pub fn len(&self) -> usize {
        self.added
    }

    /// The requests, in the order added.
    pub fn into_vec(self) -> Vec<Request> {
        self.items
    }

    /// The requests held, each with its links, and the graph that placed
    /// them, for the engine.
    pub(crate) fn into_linked(mut self) -> (Vec<(Request, Links)>, SharedGraph) {
        let linked = self.take_all();
        (linked, self.graph)
    }

    /// The run's graph, which this list goes on adding to.
    pub(crate) fn graph(&self) -> SharedGraph {
        self.graph.clone()
    }

    /// Asks `f` about every request held, in order, with its index.
    pub fn try_each(
        &self,
        mut f: impl FnMut(usize, &Request) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let first = self.added - self.items.len();
        for (k, r) in self.items.iter().enumerate() {
            f(first + k, r)?;
        }
        Ok(())
    }

    /// Each request's dependency wave, from the list's graph
    /// ([`crate::dependencies::DependencyGraph::waves`]).
    pub fn waves(&self) -> Vec<usize> {
        self.graph.lock().waves()
    }

    /// Hands on the requests held so far with their links, keeping the graph.
    pub(crate) fn take_all(&mut self) -> Vec<(Request, Links)> {
        let first = self.added - self.items.len();
        let links = std::mem::take(&mut self.links);
        std::mem::take(&mut self.items)
            .into_iter()
            .zip(links)
            .enumerate()
            .map(|(k, (r, l))| (r, unbox(l, first + k)))
            .collect()
    }

    /// Hands on the request added last, keeping the graph.
    pub fn take_last(&mut self) -> Option<Request> {
        self.take_last_linked().map(|(r, _)| r)
    }

    /// [`RequestList::take_last`], with its links.
    pub(crate) fn take_last_linked(&mut self) -> Option<(Request, Links)> {
        let request = self.items.pop()?;
        let links = self.links.pop().flatten();
        Some((request, unbox(links, self.added - self.items.len() - 1)))
    }

    /// Checks that every `dependsOn` names a request that was added.
    /// Dependencies may be added in any order, so this runs before the start.
    pub fn check_dependencies(&self) -> Result<(), Error> {
        let id_of = |i: usize| self.items.get(i).map(|r| r.id.clone());
        self.unknown_dependency(id_of)
            .map_or(Ok(()), |(_, e)| Err(e))
    }

    /// The first request whose `dependsOn` names no request added, by index,
    /// with the error that says so; `id_of` names a request by its index
    /// (for requests already handed on, which the list no longer holds).
    pub fn unknown_dependency(
        &self,
        id_of: impl Fn(usize) -> Option<String>,
    ) -> Option<(usize, Error)> {
        let (i, d) = self.graph.lock().unresolved().into_iter().next()?;
        let e = At::new(i, id_of(i).as_deref()).bad(
            "dependsOn",
            format!("no request has the id \"{d}\" ({GIVEN_IDS_ONLY})"),
        );
        Some((i, e))
    }

    /// Parses one request from JSON and adds it; see [`RequestList::add`].
    pub fn add_json(&mut self, text: &str, options: &Options) -> Result<&Request, Error> {
        let spec = RequestSpec::from_json(text, self.added)?;
        self.add(spec, options)
    }

    /// Checks one request against `options` and adds it. Errors name the
    /// request (`request[3]`, with its id when it has one) and the field at fault.
    pub fn add(&mut self, spec: RequestSpec, options: &Options) -> Result<&Request, Error> {
        let request = self.prepare(spec, options)?;
        self.commit(request)
    }

    /// The request `spec` would be if added next, checked (but for cycles),
    /// the list unchanged: a job asks its journal about it before it is
    /// added ([`RequestList::commit`]).
    pub(crate) fn prepare(&self, spec: RequestSpec, options: &Options) -> Result<Request, Error> {
        let index = self.added;
        let spec = spec.canonical(index)?;
        let id = given_id(spec.id, spec.name, index)?;
        let at = At::new(index, id.as_deref());
        if spec.for_each_subscription == Some(true) {
            return Err(at.bad(
                "forEachSubscription",
                "a template is added to a job, not to a request list",
            ));
        }
        let method = method(spec.method, spec.http_method, &at)?;
        let url = spec.url.ok_or_else(|| at.bad("url", "is required"))?;
        let url = options
            .relative_url(&url)
            .map_err(|why| at.bad("url", why))?;
        dialect::refuse_foreign_url(&url, options.api).map_err(|why| at.bad("url", why))?;
        let body = body(
            spec.body,
            spec.content,
            spec.body_encoding,
            &method,
            options.api,
            &at,
        )?;
        let given = spec.headers.unwrap_or_default();
        let headers = dialect::item_headers(given, options.api, body.value.is_some(), body.base64)
            .map_err(|why| at.bad("headers", why))?;
        let depends_on = depends_on(spec.depends_on.unwrap_or_default(), id.as_deref(), &at)?;
        let has_references = check_references(&url, &headers, &body, &depends_on, &at)?;
        let named = id.is_some();
        let id = self.unique_id(id, &at)?;
        let request = Request {
            id,
            method,
            url,
            headers,
            body: body.value,
            body_base64: body.base64,
            header_details: spec.request_header_details,
            depends_on,
            has_references,
            named,
        };
        let size = request.wire_size();
        if size > limits::MAX_BATCH_BYTES {
            return Err(at.bad(
                if request.body.is_some() { "body" } else { "url" },
                format!(
                    "makes the request {size} bytes; a batch request can carry at most {} bytes, so this one cannot be sent through a batch",
                    limits::MAX_BATCH_BYTES
                ),
            ));
        }
        Ok(request)
    }

    /// Adds a request [`RequestList::prepare`] made, unless it would close a
    /// cycle of `dependsOn`.
    pub(crate) fn commit(&mut self, request: Request) -> Result<&Request, Error> {
        let index = self.added;
        let links = self
            .graph
            .lock()
            .add(request.given_id(), &request.depends_on)
            .map_err(|cycle| {
                At::new(index, request.given_id()).bad(
                    "dependsOn",
                    format!("makes a cycle: {}", cycle.join(" -> ")),
                )
            })?;
        if !request.named {
            self.note_assigned(index, &request.id);
        }
        self.links.push(boxed(links));
        self.items.push(request);
        self.added += 1;
        Ok(self.items.last().expect("just pushed"))
    }

    fn note_assigned(&mut self, index: usize, id: &str) {
        if id == index.to_string() {
            let (word, bit) = (index / 64, index % 64);
            if self.plain.len() <= word {
                self.plain.resize(word + 1, 0);
            }
            self.plain[word] |= 1 << bit;
        } else {
            self.suffixed.insert(id.to_lowercase());
        }
    }

    /// Whether some request already has `id` (in any case).
    fn taken(&self, id: &str) -> bool {
        if self.graph.lock().index_of(id).is_some() || self.suffixed.contains(&id.to_lowercase()) {
            return true;
        }
        // An assigned id is the index in plain decimal: "7", never "07" or "+7".
        let plain = id
            .parse::<usize>()
            .ok()
            .filter(|i| *i < self.added && id == i.to_string());
        plain.is_some_and(|i| {
            self.plain
                .get(i / 64)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
        })
    }

    /// The id given, refused when another request has it; or a fresh one: the
    /// index, with a suffix when a caller already used that text.
    fn unique_id(&self, given: Option<String>, at: &At) -> Result<String, Error> {
        if let Some(id) = given {
            if self.taken(&id) {
                return Err(at.bad(
                    "id",
                    "duplicate: another request already has this id (ids are case-insensitive)",
                ));
            }
            return Ok(id);
        }
        let mut id = at.index.to_string();
        let mut n = 1;
        while self.taken(&id) {
            id = format!("{}-{n}", at.index);
            n += 1;
        }
        Ok(id)
    }
}

fn given_id(id: Option<Value>, name: Option<Value>, index: usize) -> Result<Option<String>, Error> {
    match (id, name) {
        (Some(_), Some(_)) => Err(Error::InvalidRequest(format!(
            "request[{index}]: give \"id\" or \"name\", not both"
        ))),
        (Some(v), None) | (None, Some(v)) => scalar_id(v).map(Some).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "request[{index}]: field \"id\": must be a non-empty string or a number"
            ))
        }),
        (None, None) => Ok(None),
    }
}

fn method(method: Option<String>, http_method: Option<String>, at: &At) -> Result<String, Error> {
    let method = match (method, http_method) {
        (Some(_), Some(_)) => {
            return Err(at.bad("method", "give \"method\" or \"httpMethod\", not both"))
        }
        (Some(m), None) | (None, Some(m)) => m.trim().to_ascii_uppercase(),
        (None, None) => "GET".to_string(),
    };
    if !METHODS.contains(&method.as_str()) {
        return Err(at.bad(
            "method",
            format!("must be one of {METHODS:?} (got \"{method}\")"),
        ));
    }
    Ok(method)
}

fn body(
    body: Option<Value>,
    content: Option<Value>,
    encoding: Option<String>,
    method: &str,
    api: Api,
    at: &At,
) -> Result<Body, Error> {
    let value = match (body, content) {
        (Some(_), Some(_)) => return Err(at.bad("body", "give \"body\" or \"content\", not both")),
        (Some(v), None) | (None, Some(v)) => Some(v).filter(|v| !v.is_null()),
        (None, None) => None,
    };
    if value.is_some() && matches!(method, "GET" | "HEAD") {
        return Err(at.bad("body", format!("a {method} request cannot have a body")));
    }
    let base64 = match encoding.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("json") => false,
        Some("base64") if api == Api::Graph => true,
        Some("base64") => {
            return Err(at.bad("bodyEncoding", "ARM batch items carry JSON content only"))
        }
        Some(other) => {
            return Err(at.bad(
                "bodyEncoding",
                format!("must be \"base64\" (got \"{other}\")"),
            ))
        }
    };
    if base64 {
        match value.as_ref().and_then(Value::as_str) {
            Some(b64)
                if base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .is_ok() => {}
            Some(_) => return Err(at.bad("body", "is not valid base64")),
            None => {
                return Err(at.bad(
                    "body",
                    "with bodyEncoding \"base64\" must be a base64 string",
                ))
            }
        }
    }
    Ok(Body { value, base64 })
}

fn depends_on(given: Vec<Value>, id: Option<&str>, at: &At) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = vec![];
    for d in given {
        let d = scalar_id(d)
            .ok_or_else(|| at.bad("dependsOn", "must list ids (strings or numbers)"))?;
        if id.is_some_and(|me| me.eq_ignore_ascii_case(&d)) {
            return Err(at.bad("dependsOn", "a request cannot depend on itself"));
        }
        if !out.iter().any(|x| x.eq_ignore_ascii_case(&d)) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Checks that references read only from requests this one depends on;
/// returns whether there are any.
fn check_references(
    url: &str,
    headers: &[(String, String)],
    body: &Body,
    depends_on: &[String],
    at: &At,
) -> Result<bool, Error> {
    let mut refs: Vec<(&str, reference::Reference)> = vec![];
    for r in reference::find(url).map_err(|why| at.bad("url", why))? {
        refs.push(("url", r));
    }
    for (_, v) in headers {
        for r in reference::find(v).map_err(|why| at.bad("headers", why))? {
            refs.push(("headers", r));
        }
    }
    if let Some(b) = body.value.as_ref().filter(|_| !body.base64) {
        for r in reference::find_in_json(b).map_err(|why| at.bad("body", why))? {
            refs.push(("body", r));
        }
    }
    for (field, r) in &refs {
        if !depends_on.iter().any(|d| d.eq_ignore_ascii_case(&r.id)) {
            return Err(at.bad(
                field,
                format!(
                    "the reference {{{{{}}}}} reads request \"{}\", which is not in dependsOn",
                    r.text, r.id
                ),
            ));
        }
    }
    Ok(!refs.is_empty())
}

/// The id (or ARM's `name`) a request's JSON gives, if it is usable.
fn given_id_of(v: &Value) -> Option<String> {
    v.get("id")
        .or_else(|| v.get("name"))
        .cloned()
        .and_then(scalar_id)
}

/// A request's JSON that does not fit [`RequestSpec`]: broken text, or which
/// field holds what kind of wrong value.
fn spec_error(e: serde_path_to_error::Error<serde_json::Error>, at: &At) -> Error {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        Error::InvalidJson(format!("{}: not valid JSON: {inner}", at.text))
    } else if path == "." || path.is_empty() || inner.to_string().starts_with("unknown field") {
        Error::InvalidRequest(format!("{}: {inner}", at.text))
    } else {
        at.bad(&path, inner)
    }
}

fn scalar_id(v: Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dialect::Api;

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
            (r#"{"url":5}"#, "request[1]: field \"url\": invalid type: integer `5`, expected a string"),
            (r#"{"id":"q","url":"/a","dependsOn":"x"}"#, "request[1] (id \"q\"): field \"dependsOn\": invalid type: string \"x\", expected a sequence"),
            (r#"{"name":7,"url":"/a","method":["GET"]}"#, "request[1] (id \"7\"): field \"method\": invalid type: sequence"),
            (r#"{"url":"/a","followLinks":true}"#, "request[1]: unknown field `followLinks`"),
            (r#"{"url":"/users/x"}"#, "field \"url\": \"/users\" is a Microsoft Graph URL, but this run's api is arm: use api graph"),
            (r#"{"url":"/me/messages"}"#, "use api graph (--api graph, -Api Graph)"),
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
    fn arm_urls_are_refused_in_a_graph_run() {
        let mut l = RequestList::default();
        let e = l
            .add_json(
                r#"{"url":"/subscriptions/s1/resourceGroups?api-version=2021-04-01"}"#,
                &graph(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "is an Azure Resource Manager URL, but this run's api is graph: use api arm"
            ),
            "{e}"
        );
        // Graph's own /subscriptions (change notifications) are fine.
        assert!(l
            .add_json(
                r#"{"url":"/subscriptions/7f105c7d-2dc5-4530-97cd-4e7ae6534c07"}"#,
                &graph()
            )
            .is_ok());
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
    fn given_ids_never_repeat_assigned_ones() {
        let mut l = RequestList::default();
        let add = |l: &mut RequestList, json: &str| l.add_json(json, &opts()).map(|r| r.id.clone());
        assert_eq!(add(&mut l, r#"{"url":"/a"}"#).unwrap(), "0");
        let e = add(&mut l, r#"{"id":"0","url":"/b"}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
        assert_eq!(add(&mut l, r#"{"id":"00","url":"/b"}"#).unwrap(), "00");
        assert_eq!(add(&mut l, r#"{"id":"5","url":"/c"}"#).unwrap(), "5");
        for want in ["3", "4", "5-1"] {
            assert_eq!(add(&mut l, r#"{"url":"/d"}"#).unwrap(), want);
        }
        for taken in ["3", "5-1", "5-1".to_uppercase().as_str()] {
            let json = format!(r#"{{"id":"{taken}","url":"/e"}}"#);
            assert!(add(&mut l, &json)
                .unwrap_err()
                .to_string()
                .contains("duplicate"));
        }
        assert_eq!(
            add(&mut l, r#"{"id":"6","url":"/f"}"#).unwrap(),
            "6",
            "not assigned yet"
        );
        add(&mut l, r#"{"id":"w","url":"/g","dependsOn":["4"]}"#).unwrap();
        let e = l.check_dependencies().unwrap_err().to_string();
        assert!(
            e.contains("no request has the id \"4\""),
            "dependsOn names given ids only: {e}"
        );
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
