//! What the engine does for dependencies: keeps the answers dependents may
//! read, fills their `{{id.body.path}}` references, and gives the 424 of a
//! request whose dependency failed.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::item::Item;
use crate::dependencies::SharedGraph;
use crate::options::Options;
use crate::reference;
use crate::result::{codes, ItemResult};

/// The answer of a finished request, kept while requests that depend on it may
/// still read it through references.
pub(super) struct Kept {
    pub status: u16,
    pub headers: Map<String, Value>,
    pub body: Value,
}

impl Kept {
    pub fn of(r: &ItemResult) -> Kept {
        Kept {
            status: r.status,
            headers: r.headers.clone(),
            body: r.body.clone(),
        }
    }
}

/// Fills the references of `item` from the answers of the requests it depends
/// on, which have all succeeded. A URL that started with a reference passes
/// the endpoint check once filled.
pub(super) fn fill_references(
    item: &mut Item,
    graph: &SharedGraph,
    kept: &HashMap<usize, Kept>,
    options: &Options,
) -> Result<(), String> {
    if !item.request.has_references {
        return Ok(());
    }
    let graph = graph.lock();
    let answer_of = |id: &str| {
        let k = kept.get(&graph.index_of(id)?)?;
        Some(reference::Answer {
            status: k.status,
            headers: &k.headers,
            body: &k.body,
        })
    };
    let r = &item.request;
    let mut url = reference::fill_text(&r.url, &answer_of)?;
    if r.url.starts_with("{{") {
        url = options
            .relative_url(&url)
            .map_err(|why| format!("the filled-in url {why}"))?;
    }
    let url = crate::endpoint::encode_url(&url);
    let headers = r
        .headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), reference::fill_text(v, &answer_of)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let body = match &r.body {
        Some(b) if !r.body_base64 => Some(reference::fill_json(b, &answer_of)?),
        other => other.clone(),
    };
    item.request.url = url;
    item.request.headers = headers;
    item.request.body = body;
    Ok(())
}

/// The 424 of a request whose dependency `id` failed with `status`.
pub(super) fn failed_dependency(item: &mut Item, id: &str, status: u16) -> ItemResult {
    let message = match status {
        0 => format!("not sent: request \"{id}\", which it depends on, did not succeed"),
        s => format!("not sent: request \"{id}\", which it depends on, failed with status {s}"),
    };
    let body = json!({"error": {"code": codes::FAILED_DEPENDENCY, "message": message}});
    item.finish_http(424, Map::new(), body, false, "")
}
