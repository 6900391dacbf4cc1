//! Graph's `$batch` endpoint: `POST /{v1.0|beta}/$batch`, at most 20 items,
//! unique ids (case-insensitive), a Content-Type with every body, and
//! `dependsOn` only in the shapes Graph runs (fully parallel, fully sequential,
//! or all on one earlier item); dependents of a failed item get 424. Items
//! without dependencies run concurrently and answers come back shuffled.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use rand::seq::SliceRandom;
use serde_json::{json, Map, Value};

use crate::answer::Answer;
use crate::faults;
use crate::reply::object;
use crate::service::{BatchRecord, Service};

/// Most items in one Graph batch.
pub const MAX_ITEMS: usize = 20;
/// Graph's answer to a `dependsOn` shape it does not run.
pub const SHAPE_ERROR: &str = "Batch should be either fully sequential or fully parallel";
const METHODS: [&str; 6] = ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"];

struct Item {
    id: String,
    method: String,
    url: String,
    headers: Map<String, Value>,
    body: Option<Value>,
    depends_on: Option<usize>,
}

fn bad_request(message: &str) -> Answer {
    Answer::error(400, "BadRequest", message)
}

/// Handles one batch request; `root` is the absolute version root
/// (`http://host/v1.0`) that links start with.
pub async fn post(svc: Arc<Service>, body: &[u8], root: &str) -> Answer {
    let answer = envelope(svc.clone(), body, root).await;
    let record = BatchRecord::of(body, answer.status());
    svc.batches.lock().unwrap().push(record);
    answer
}

async fn envelope(svc: Arc<Service>, body: &[u8], root: &str) -> Answer {
    if let Some(answer) = faults::envelope(&svc).await {
        return answer;
    }
    let items = match parse(body) {
        Ok(items) => items,
        Err(message) => return bad_request(&message),
    };
    let answers = run_items(&svc, items, root).await;
    faults::answer(&svc, object([("responses", Value::Array(answers))]), "id").await
}

/// Whether Graph runs these dependencies: each item depends on at most one
/// earlier item, and the batch is fully parallel, fully sequential, or all
/// items but the first depend on the first.
pub fn shape_is_accepted(depends_on: &[Option<usize>]) -> bool {
    let parallel = depends_on.iter().all(Option::is_none);
    let sequential = depends_on.iter().enumerate().all(|(i, d)| {
        if i == 0 {
            d.is_none()
        } else {
            *d == Some(i - 1)
        }
    });
    let same = depends_on.first().is_some_and(Option::is_none)
        && depends_on.iter().skip(1).all(|d| *d == Some(0));
    parallel || sequential || same
}

fn parse(body: &[u8]) -> Result<Vec<Item>, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "Invalid batch payload format.".to_string())?;
    let reqs = v
        .get("requests")
        .and_then(Value::as_array)
        .ok_or("Invalid batch payload format.")?;
    if reqs.is_empty() {
        return Err("Invalid batch payload format: the batch has no requests.".into());
    }
    if reqs.len() > MAX_ITEMS {
        return Err(format!(
            "Number of batch requests exceeds the maximum of {MAX_ITEMS}."
        ));
    }
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut items = Vec::with_capacity(reqs.len());
    let mut raw_deps: Vec<Vec<String>> = vec![];
    for (i, r) in reqs.iter().enumerate() {
        let (item, deps) = parse_item(i, r)?;
        if index.insert(item.id.to_ascii_lowercase(), i).is_some() {
            return Err(format!(
                "Request with id '{}' is duplicated; request ids must be unique in a batch.",
                item.id
            ));
        }
        raw_deps.push(deps);
        items.push(item);
    }
    let shape = dependency_shape(&items, &raw_deps, &index)?;
    for (item, d) in items.iter_mut().zip(shape) {
        item.depends_on = d;
    }
    Ok(items)
}

/// One request of the envelope, and the ids it names in `dependsOn`.
fn parse_item(i: usize, r: &Value) -> Result<(Item, Vec<String>), String> {
    let id = match r.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(format!("Request at position {i} has no 'id'.")),
    };
    let method = r
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .unwrap_or_default();
    if !METHODS.contains(&method.as_str()) {
        return Err(format!(
            "Request id : {id}, has an invalid or missing 'method'."
        ));
    }
    let url = r
        .get("url")
        .and_then(Value::as_str)
        .ok_or(format!("Request id : {id}, has no 'url'."))?
        .to_string();
    let headers = r
        .get("headers")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let body = r.get("body").cloned().filter(|b| !b.is_null());
    let has_type = headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"));
    if body.is_some() && !has_type {
        return Err(format!(
            "Write request id : {id}, does not contain Content-Type header or body."
        ));
    }
    let deps: Vec<String> = match r.get("dependsOn") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|d| {
                d.as_str()
                    .map(str::to_string)
                    .ok_or("dependsOn must list request ids")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("Request id : {id}, 'dependsOn' must be an array.")),
    };
    let item = Item {
        id,
        method,
        url,
        headers,
        body,
        depends_on: None,
    };
    Ok((item, deps))
}

/// Each item's one dependency (an earlier item), when the batch has a shape
/// Graph runs; Graph's 400 otherwise.
fn dependency_shape(
    items: &[Item],
    raw_deps: &[Vec<String>],
    index: &HashMap<String, usize>,
) -> Result<Vec<Option<usize>>, String> {
    let mut shape = vec![];
    for (i, deps) in raw_deps.iter().enumerate() {
        let mut resolved = HashSet::new();
        for d in deps {
            let j = *index.get(&d.to_ascii_lowercase()).ok_or(format!(
                "Request id : {}, depends on '{d}', which is not in the batch.",
                items[i].id
            ))?;
            resolved.insert(j);
        }
        match resolved.len() {
            0 => shape.push(None),
            1 => {
                let j = *resolved.iter().next().expect("one");
                if j >= i {
                    return Err(SHAPE_ERROR.into());
                }
                shape.push(Some(j));
            }
            _ => return Err(SHAPE_ERROR.into()),
        }
    }
    if !shape_is_accepted(&shape) {
        return Err(SHAPE_ERROR.into());
    }
    Ok(shape)
}

async fn run_items(svc: &Service, items: Vec<Item>, root: &str) -> Vec<Value> {
    let faults = faults::items(svc, items.len());
    let mut status: Vec<Option<u16>> = vec![None; items.len()];
    let mut answers: Vec<Option<Value>> = vec![None; items.len()];
    // Waves: everything whose dependency has finished runs together.
    while status.iter().any(Option::is_none) {
        let wave: Vec<usize> = (0..items.len())
            .filter(|&i| {
                status[i].is_none() && items[i].depends_on.is_none_or(|d| status[d].is_some())
            })
            .collect();
        let runs = wave.iter().map(|&i| {
            let item = &items[i];
            let dep_failed = item.depends_on.and_then(|d| status[d]).filter(|s| !(200..300).contains(s));
            let fault = faults[i];
            async move {
                if let Some(s) = dep_failed {
                    let body = json!({"error": {"code": "FailedDependency", "message": format!("The dependent request failed with status {s}.")}});
                    return answer(&item.id, 424, vec![], Some(body), None);
                }
                if let Some(fault) = fault {
                    return answer(&item.id, fault.status, fault.headers(svc), Some(fault.body()), None);
                }
                let (json_body, bytes) = match decode_body(item) {
                    Ok(b) => b,
                    Err(m) => return answer(&item.id, 400, vec![], Some(json!({"error": {"code": "BadRequest", "message": m}})), None),
                };
                let r = svc.execute_graph(&item.method, &item.url, json_body.as_ref(), bytes.as_deref(), root, true).await;
                let body = if r.body.is_null() { None } else { Some(r.body) };
                answer(&item.id, r.status, r.headers, body, r.bytes)
            }
        });
        let done = futures::future::join_all(runs).await;
        for (i, (s, v)) in wave.into_iter().zip(done) {
            status[i] = Some(s);
            answers[i] = Some(v);
        }
    }
    let mut out: Vec<Value> = answers.into_iter().flatten().collect();
    if svc.config.graph_shuffle {
        out.shuffle(&mut rand::rng());
    }
    out
}

/// A JSON body, or the bytes of a base64 body whose Content-Type is not JSON.
fn decode_body(item: &Item) -> Result<(Option<Value>, Option<Vec<u8>>), String> {
    let Some(body) = &item.body else {
        return Ok((None, None));
    };
    let content_type = item
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("");
    if content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Ok((Some(body.clone()), None));
    }
    let text = body
        .as_str()
        .ok_or("A body that is not JSON must be sent base64 encoded.")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "The body is not valid base64.".to_string())?;
    Ok((None, Some(bytes)))
}

fn answer(
    id: &str,
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    bytes: Option<(Vec<u8>, String)>,
) -> (u16, Value) {
    let mut h: Map<String, Value> = headers
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut out = json!({"id": id, "status": status});
    if let Some((bytes, content_type)) = bytes {
        h.insert("Content-Type".into(), json!(content_type));
        out["body"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    } else if let Some(b) = body {
        h.insert("Content-Type".into(), json!("application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"));
        out["body"] = b;
    }
    out["headers"] = Value::Object(h);
    (status, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_shapes() {
        assert!(shape_is_accepted(&[None, None, None]), "parallel");
        assert!(
            shape_is_accepted(&[None, Some(0), Some(1), Some(2)]),
            "sequential"
        );
        assert!(
            shape_is_accepted(&[None, Some(0), Some(0), Some(0)]),
            "all on the first"
        );
        assert!(shape_is_accepted(&[None, Some(0)]), "two in a row");
        assert!(
            !shape_is_accepted(&[None, Some(0), None]),
            "mixed parallel and dependent"
        );
        assert!(
            !shape_is_accepted(&[None, Some(0), Some(1), Some(0)]),
            "chain that branches"
        );
        assert!(
            !shape_is_accepted(&[None, None, Some(1)]),
            "all on one that is not the first"
        );
    }
}
