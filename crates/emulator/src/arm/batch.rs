//! ARM's batch endpoint: `POST /batch?api-version=2020-06-01|2015-11-01`.
//! Envelope checks as ARM makes them, items run concurrently, large batches
//! answered 202 with a `Location` to poll.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::seq::SliceRandom;
use serde_json::{Map, Value};

use crate::answer::Answer;
use crate::faults;
use crate::reply::{json_len, object};
use crate::service::{BatchRecord, Service};

/// Versions of the batch API the endpoint takes.
pub const API_VERSIONS: [&str; 2] = ["2020-06-01", "2015-11-01"];
/// Most items in one batch.
pub const MAX_ITEMS: usize = 500;
/// Above this many items, every item must be named.
pub const MAX_UNNAMED: usize = 20;
const METHODS: [&str; 6] = ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"];

static NEXT_OPERATION: AtomicU64 = AtomicU64::new(1);

struct Item {
    name: Option<String>,
    method: String,
    url: String,
    content: Option<Value>,
}

/// Handles one batch request; `base` is the scheme and host it was sent to.
pub async fn post(
    svc: Arc<Service>,
    query: &BTreeMap<String, String>,
    body: &[u8],
    base: &str,
) -> Answer {
    let answer = envelope(svc.clone(), query, body, base).await;
    let record = BatchRecord::of(body, answer.status());
    svc.batches.lock().unwrap().push(record);
    answer
}

async fn envelope(
    svc: Arc<Service>,
    query: &BTreeMap<String, String>,
    body: &[u8],
    base: &str,
) -> Answer {
    let version = match query.get("api-version") {
        None => {
            return Answer::error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        }
        Some(v) if !API_VERSIONS.contains(&v.as_str()) => {
            return Answer::error(
                400,
                "InvalidApiVersionParameter",
                &format!(
                    "The api-version '{v}' is invalid. The supported versions are '{}'.",
                    API_VERSIONS.join(",")
                ),
            )
        }
        Some(v) => v.clone(),
    };
    if let Some(answer) = faults::envelope(&svc).await {
        return answer;
    }
    let items = match parse(body) {
        Ok(items) => items,
        Err(message) => return Answer::error(400, "InvalidRequestContent", &message),
    };
    if items.len() > svc.config.async_threshold {
        let id = format!("{:08x}", NEXT_OPERATION.fetch_add(1, Ordering::Relaxed));
        svc.pending.lock().unwrap().insert(id.clone(), None);
        let (svc2, base2, id2) = (svc.clone(), base.to_string(), id.clone());
        tokio::spawn(async move {
            let answers = run_items(&svc2, items, &base2).await;
            svc2.pending
                .lock()
                .unwrap()
                .insert(id2, Some(Value::Array(answers)));
        });
        return accepted(&svc, &id, &version, base);
    }
    let answers = run_items(&svc, items, base).await;
    faults::answer(&svc, object([("responses", Value::Array(answers))]), "name").await
}

fn accepted(svc: &Service, id: &str, version: &str, base: &str) -> Answer {
    Answer::Json {
        status: 202,
        headers: vec![
            (
                "Location".into(),
                format!("{base}/batchOperations/{id}?api-version={version}"),
            ),
            (
                "Retry-After".into(),
                svc.config.async_retry_after_secs.to_string(),
            ),
        ],
        body: Value::Null,
    }
}

/// `GET /batchOperations/{id}`: 202 while the batch runs, then its answer.
pub fn poll(svc: &Service, id: &str, query: &BTreeMap<String, String>, base: &str) -> Answer {
    let state = svc.pending.lock().unwrap().get(id).cloned();
    match state {
        None => Answer::error(
            404,
            "NotFound",
            &format!("The batch operation '{id}' does not exist."),
        ),
        Some(None) => accepted(
            svc,
            id,
            query
                .get("api-version")
                .map(String::as_str)
                .unwrap_or(API_VERSIONS[0]),
            base,
        ),
        Some(Some(answers)) => {
            let mut body = Map::new();
            body.insert(svc.config.async_result_key.to_string(), answers);
            Answer::json(200, Value::Object(body))
        }
    }
}

fn parse(body: &[u8]) -> Result<Vec<Item>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!("The request content was invalid and could not be deserialized: {e}")
    })?;
    let reqs = v
        .get("requests")
        .and_then(Value::as_array)
        .ok_or("The batch request must have a 'requests' array.")?;
    if reqs.len() > MAX_ITEMS {
        return Err(format!(
            "The batch request contains {} requests; at most {MAX_ITEMS} are allowed.",
            reqs.len()
        ));
    }
    let mut names = HashSet::new();
    let mut items = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        let name = r.get("name").and_then(Value::as_str).map(str::to_string);
        match &name {
            None if reqs.len() > MAX_UNNAMED => {
                return Err(format!("Request {i} has no name; every request must be named when a batch has more than {MAX_UNNAMED}."))
            }
            Some(n) if !names.insert(n.to_ascii_lowercase()) => return Err(format!("The request name '{n}' is used more than once.")),
            _ => {}
        }
        let method = r
            .get("httpMethod")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .unwrap_or_default();
        if !METHODS.contains(&method.as_str()) {
            return Err(format!(
                "Request {i} has an invalid or missing 'httpMethod'."
            ));
        }
        let url = r
            .get("url")
            .and_then(Value::as_str)
            .ok_or(format!("Request {i} has no 'url'."))?
            .to_string();
        items.push(Item {
            name,
            method,
            url,
            content: r.get("content").cloned(),
        });
    }
    Ok(items)
}

async fn run_items(svc: &Service, items: Vec<Item>, base: &str) -> Vec<Value> {
    let faults = faults::items(svc, items.len());
    let runs = items
        .into_iter()
        .zip(faults)
        .map(|(item, injected)| async move {
            let (status, headers, content) = match injected {
                Some(fault) => (fault.status, fault.headers(svc), fault.body()),
                None => {
                    let r = svc
                        .execute(&item.method, &item.url, item.content.as_ref(), base, true)
                        .await;
                    (r.status, r.headers, r.body)
                }
            };
            let headers: Map<String, Value> = headers
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let mut out = object([
                ("name", item.name.map_or(Value::Null, Value::String)),
                ("httpStatusCode", status.into()),
                ("headers", Value::Object(headers)),
            ]);
            if !content.is_null() {
                out["contentLength"] = json_len(&content).into();
                out["content"] = content;
            }
            out
        });
    let mut answers = futures::future::join_all(runs).await;
    if svc.config.shuffle {
        answers.shuffle(&mut rand::rng());
    }
    answers
}
