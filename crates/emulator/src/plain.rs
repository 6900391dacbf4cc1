//! A plain throttling server: ARM's `POST /batch` and Graph's
//! `POST /{version}/$batch`, each item answered 200 or 429 by token buckets,
//! and nothing else: no `x-ms-ratelimit-*`, no resource units, no percentage,
//! only `Retry-After` on a 429 (and not even that where the rule says so, as
//! Conditional Access answers). Written apart from the emulator's model on
//! purpose: the engine must pace well against a server that tells it nothing
//! but "too many" and "when", and the engine's tests and `azbatch bench` run
//! against both kinds.
//!
//! Each [`PlainRule`] is one bucket shared by every request it matches (by a
//! piece of the URL, and reads or writes); the first rule that matches a
//! request decides it. A request no rule matches is answered 200.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::{Latency, Serving};

/// Which calls a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// Every method.
    All,
    /// GET and HEAD.
    Reads,
    /// Every other method.
    Writes,
}

/// One token bucket: `capacity` calls at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct PlainRule {
    /// A piece of the item URL (lower case) the rule applies to; empty: all.
    pub url_contains: String,
    pub calls: Calls,
    pub capacity: f64,
    pub per_second: f64,
    /// Whether a 429 says when to come back (`Retry-After` in whole seconds,
    /// until the bucket holds a call again).
    pub retry_after: bool,
}

impl PlainRule {
    /// A bucket of `capacity` refilled at `per_second`, for every call, with
    /// `Retry-After` on its 429s.
    pub fn bucket(capacity: f64, per_second: f64) -> PlainRule {
        PlainRule {
            url_contains: String::new(),
            calls: Calls::All,
            capacity,
            per_second,
            retry_after: true,
        }
    }

    fn applies(&self, method: &str, url: &str) -> bool {
        let read = matches!(method, "GET" | "HEAD");
        let kind = match self.calls {
            Calls::All => true,
            Calls::Reads => read,
            Calls::Writes => !read,
        };
        kind && url.to_ascii_lowercase().contains(&self.url_contains)
    }
}

struct Bucket {
    rule: PlainRule,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a call, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let refilled = now.duration_since(self.at).as_secs_f64() * self.rule.per_second;
        self.tokens = (self.tokens + refilled).min(self.rule.capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.rule.per_second.max(1e-9),
            ))
        }
    }
}

struct Plain {
    buckets: Mutex<Vec<Bucket>>,
    latency: Latency,
    started: Instant,
    /// Every item answered: when (since the start) and its status.
    answers: Mutex<Vec<(Duration, u16)>>,
    /// Every batch: the path it was posted to, and its items' URLs.
    batches: Mutex<Vec<(String, Vec<String>)>>,
}

impl Plain {
    fn record(&self, path: String, items: &[Value]) {
        let urls = items.iter().map(|i| text(i, "url").to_string()).collect();
        self.batches.lock().unwrap().push((path, urls));
    }

    /// The status of one item, and the header to send with it.
    fn answer(&self, method: &str, url: &str) -> (u16, Option<u64>) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        let verdict = buckets
            .iter_mut()
            .find(|b| b.rule.applies(method, url))
            .map(|b| (b.take(now), b.rule.retry_after));
        drop(buckets);
        let answer = match verdict {
            Some((Err(wait), true)) => (429, Some(wait.as_secs_f64().ceil().max(1.0) as u64)),
            Some((Err(_), false)) => (429, None),
            _ => (200, None),
        };
        self.answers
            .lock()
            .unwrap()
            .push((now.duration_since(self.started), answer.0));
        answer
    }

    async fn delay(&self) {
        let (lo, hi) = (self.latency.min, self.latency.max);
        let d = if hi > lo {
            lo + (hi - lo).mul_f64(rand::random::<f64>())
        } else {
            lo
        };
        tokio::time::sleep(d).await;
    }
}

/// A running plain server on 127.0.0.1; dropping it stops it.
pub struct PlainServer {
    plain: Arc<Plain>,
    serving: Serving,
}

impl PlainServer {
    /// Binds and serves `rules` (first match decides), each batch answered
    /// after a delay drawn from `latency`.
    pub fn start(rules: Vec<PlainRule>, latency: Latency) -> std::io::Result<PlainServer> {
        let now = Instant::now();
        let plain = Arc::new(Plain {
            buckets: Mutex::new(
                rules
                    .into_iter()
                    .map(|rule| Bucket {
                        tokens: rule.capacity,
                        rule,
                        at: now,
                    })
                    .collect(),
            ),
            latency,
            started: now,
            answers: Mutex::new(vec![]),
            batches: Mutex::new(vec![]),
        });
        let app = Router::new()
            .route("/batch", post(arm))
            .route("/{version}/$batch", post(graph))
            .with_state(plain.clone());
        let serving = Serving::start(0, app, "azbatch-plain")?;
        Ok(PlainServer { plain, serving })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.serving.addr())
    }

    /// Item attempts answered so far, and how many of them were 429.
    pub fn counts(&self) -> (usize, usize) {
        let answers = self.plain.answers.lock().unwrap();
        let throttled = answers.iter().filter(|(_, s)| *s == 429).count();
        (answers.len(), throttled)
    }

    /// Every batch so far: the path it was posted to (`/batch`,
    /// `/beta/$batch`) and its items' URLs as sent.
    pub fn batches(&self) -> Vec<(String, Vec<String>)> {
        self.plain.batches.lock().unwrap().clone()
    }

    /// Every item answered so far: when (since the server started) and its
    /// status.
    pub fn answers(&self) -> Vec<(Duration, u16)> {
        self.plain.answers.lock().unwrap().clone()
    }
}

fn refused(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": why}))).into_response()
}

fn items(body: &Bytes) -> Option<Vec<Value>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("requests")?.as_array().cloned()
}

fn text<'a>(item: &'a Value, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or("")
}

async fn arm(State(plain): State<Arc<Plain>>, body: Bytes) -> Response {
    let Some(items) = items(&body) else {
        return refused("a JSON object with requests");
    };
    plain.record("/batch".into(), &items);
    let responses: Vec<Value> = items
        .iter()
        .map(|item| {
            let method = text(item, "httpMethod").to_ascii_uppercase();
            let (status, wait) = plain.answer(&method, text(item, "url"));
            let mut answer = json!({"name": item["name"], "httpStatusCode": status});
            if status == 429 {
                answer["content"] =
                    json!({"error": {"code": "TooManyRequests", "message": "too many requests"}});
                if let Some(s) = wait {
                    answer["headers"] = json!({"Retry-After": s.to_string()});
                }
            } else {
                answer["content"] = json!({"value": []});
            }
            answer
        })
        .collect();
    plain.delay().await;
    Json(json!({ "responses": responses })).into_response()
}

async fn graph(
    State(plain): State<Arc<Plain>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    let Some(items) = items(&body) else {
        return refused("a JSON object with requests");
    };
    plain.record(format!("/{version}/$batch"), &items);
    let responses: Vec<Value> = items
        .iter()
        .map(|item| {
            let method = text(item, "method").to_ascii_uppercase();
            let (status, wait) = plain.answer(&method, text(item, "url"));
            let mut answer = json!({"id": item["id"], "status": status});
            if status == 429 {
                answer["body"] =
                    json!({"error": {"code": "TooManyRequests", "message": "too many requests"}});
                if let Some(s) = wait {
                    answer["headers"] = json!({"Retry-After": s.to_string()});
                }
            } else {
                answer["body"] = json!({"id": item["id"]});
            }
            answer
        })
        .collect();
    plain.delay().await;
    Json(json!({ "responses": responses })).into_response()
}
