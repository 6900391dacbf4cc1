//! Engine behaviour against a scripted transport, on tokio's paused clock: the
//! waits are checked to the millisecond and take no wall time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Arrival, Engine, Input};
use crate::clock::Clock;
use crate::dependencies::SharedGraph;
use crate::dialect::Api;
use crate::endpoint::parse_endpoint;
use crate::options::Options;
use crate::progress::Progress;
use crate::request::Request;
use crate::result::ItemResult;
use crate::retry::Backoff;
use crate::secret::Secret;
use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError};

thread_local! {
    /// Turns of the run loop on this test's thread (each test has its own).
    static TURNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts a turn of the run loop; a loop that spins (wakes with nothing to do)
/// would never let the paused clock move, so it fails loudly instead of hanging.
pub(super) fn turn() {
    TURNS.with(|t| {
        t.set(t.get() + 1);
        assert!(t.get() < 100_000, "the run loop is spinning");
    });
}

fn turns() -> u64 {
    TURNS.with(|t| t.get())
}

/// The wall time every test starts at (HTTP dates are relative to it).
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

type Handler = Box<dyn FnMut(&Sent) -> Result<HttpResponse, TransportError> + Send>;

/// What the fake service saw: when, what, and which items.
#[derive(Clone, Debug)]
struct Sent {
    at: Duration,
    method: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    bearer: Option<String>,
    items: Vec<Value>,
    /// The body as it was sent.
    raw: Vec<u8>,
}

struct Script {
    start: Instant,
    handler: Mutex<Handler>,
    log: Mutex<Vec<Sent>>,
    /// How long every answer takes.
    latency: Duration,
}

struct Fake(Arc<Script>);

impl Transport for Fake {
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, TransportError>> {
        let body: Value = req
            .body
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let sent = Sent {
            at: self.0.start.elapsed(),
            method: req.method,
            url: req.url.to_string(),
            headers: req.headers.clone(),
            bearer: req.bearer.map(|s| s.expose().to_string()),
            items: body["requests"].as_array().cloned().unwrap_or_default(),
            raw: req.body.clone().unwrap_or_default(),
        };
        self.0.log.lock().unwrap().push(sent.clone());
        let out = (self.0.handler.lock().unwrap())(&sent);
        let latency = self.0.latency;
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            out
        })
    }
}

fn options() -> Options {
    let mut o = Options::new(Api::Arm);
    o.endpoint = parse_endpoint("https://arm.test").unwrap();
    o.credential = Some(crate::auth::Credential::Static(Secret::new("tok")));
    o.backoff = Backoff {
        jitter: false,
        ..Backoff::default()
    };
    o
}

fn get(id: &str, url: &str) -> Request {
    Request::get(id, url)
}

fn post(id: &str) -> Request {
    let mut r = Request::get(id, "/x?api-version=1");
    r.method = "POST".into();
    r.body = Some(json!({}));
    r
}

fn graph_options() -> Options {
    let mut o = options();
    o.api = Api::Graph;
    o
}

/// Requests as a caller gives them, through the same checks.
fn parse(o: &Options, reqs: &[Value]) -> Vec<Request> {
    let mut list = crate::request::RequestList::default();
    for r in reqs {
        list.add_json(&r.to_string(), o).unwrap();
    }
    list.check_dependencies().unwrap();
    list.into_vec()
}

fn answer(items: Vec<Value>) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status: 200,
        headers: vec![],
        body: json!({ "responses": items }).to_string().into_bytes(),
    })
}

fn item(sent: &Value, status: u16, headers: Value, content: Value) -> Value {
    json!({"name": sent["name"], "httpStatusCode": status, "headers": headers, "content": content})
}

fn ok_all(s: &Sent) -> Result<HttpResponse, TransportError> {
    answer(
        s.items
            .iter()
            .map(|i| item(i, 200, json!({}), json!({"url": i["url"]})))
            .collect(),
    )
}

async fn run(
    o: Options,
    requests: Vec<Request>,
    handler: Handler,
) -> (Vec<ItemResult>, Vec<Sent>, crate::Summary) {
    run_slowly(o, requests, handler, Duration::ZERO).await
}

/// [`run`], with every answer taking `latency`.
async fn run_slowly(
    o: Options,
    requests: Vec<Request>,
    handler: Handler,
    latency: Duration,
) -> (Vec<ItemResult>, Vec<Sent>, crate::Summary) {
    let script = Arc::new(Script {
        start: Instant::now(),
        handler: Mutex::new(handler),
        log: Mutex::new(vec![]),
        latency,
    });
    let engine = Engine::new(
        Arc::new(o),
        Arc::new(Fake(script.clone())),
        Clock::starting_at(t0()),
    );
    let (tx, mut rx) = crate::queue::queue(crate::queue::DEFAULT_LIMIT);
    let n = requests.len();
    let summary = engine
        .run(
            requests,
            tx,
            Arc::new(Progress::default()),
            CancellationToken::new(),
        )
        .await;
    let mut results = vec![];
    while let Some(r) = rx.try_recv() {
        results.push(r);
    }
    assert_eq!(results.len(), n, "one result per request");
    results.sort_by_key(|r| r.index);
    let log = script.log.lock().unwrap().clone();
    (results, log, summary)
}

#[tokio::test(start_paused = true)]
async fn item_429_waits_its_own_retry_after() {
    let mut calls = 0;
    let (results, log, summary) = run(
        options(),
        vec![get("a", "/a"), get("b", "/b")],
        Box::new(move |s| {
            calls += 1;
            answer(
                s.items
                    .iter()
                    .map(|i| {
                        if calls == 1 && i["url"] == "/a" {
                            item(
                                i,
                                429,
                                json!({"Retry-After": "7"}),
                                json!({"error":{"code":"TooManyRequests"}}),
                            )
                        } else {
                            item(i, 200, json!({}), json!({"ok": true}))
                        }
                    })
                    .collect(),
            )
        }),
    )
    .await;
    assert_eq!(log.len(), 2);
    assert_eq!(
        log[1].at,
        Duration::from_secs(7),
        "retried exactly after Retry-After"
    );
    assert_eq!(
        log[1].items.len(),
        1,
        "only the throttled item is sent again"
    );
    assert_eq!((results[0].status, results[0].attempts), (200, 2));
    assert_eq!((results[1].status, results[1].attempts), (200, 1));
    assert_eq!(
        (summary.retries, summary.batches, summary.succeeded),
        (1, 2, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_without_retry_after_and_attempts_run_out() {
    let (results, log, _) = run(
        options(),
        vec![get("a", "/a")],
        Box::new(|s| {
            answer(vec![item(
                &s.items[0],
                503,
                json!({}),
                json!({"error":{"code":"ServiceUnavailable","message":"busy"}}),
            )])
        }),
    )
    .await;
    // The timer rounds each wait up to the next millisecond, hence the tolerance.
    let gaps: Vec<u128> = log
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_millis())
        .collect();
    assert_eq!(gaps.len(), 5, "six attempts");
    for (gap, want) in gaps.iter().zip([800, 1600, 3200, 6400, 12800]) {
        assert!((want..=want + 1).contains(gap), "0.8 s doubling: {gaps:?}");
    }
    let r = &results[0];
    assert_eq!((r.status, r.attempts), (503, 6));
    assert_eq!(r.error.as_ref().unwrap().code, "ServiceUnavailable");
}

#[tokio::test(start_paused = true)]
async fn decimal_retry_after_and_http_date_are_honoured() {
    // The first send is answered "wait 0.249 s", the second "come back at
    // t0 + 30 s" as an HTTP date (sent 0.249 s after t0): 29.751 s later.
    let mut calls = 0;
    let (results, log, _) = run(
        options(),
        vec![get("a", "/a")],
        Box::new(move |s| {
            calls += 1;
            let (st, wait) = match calls {
                1 => (429, "0.249".to_string()),
                2 => (503, httpdate::fmt_http_date(t0() + Duration::from_secs(30))),
                _ => (200, "0".to_string()),
            };
            answer(vec![item(
                &s.items[0],
                st,
                json!({"retry-after": wait}),
                json!({}),
            )])
        }),
    )
    .await;
    assert_eq!(log[1].at, Duration::from_millis(249));
    assert_eq!(
        log[2].at,
        Duration::from_secs(30),
        "the HTTP date, on the injected clock"
    );
    assert_eq!((results[0].status, log.len()), (200, 3));
}

#[tokio::test(start_paused = true)]
async fn envelope_429_retries_everything_with_half_the_batch_size() {
    let mut calls = 0;
    let reqs: Vec<Request> = (0..40)
        .map(|i| get(&i.to_string(), &format!("/r{i}")))
        .collect();
    let mut o = options();
    o.concurrency = 1;
    let (results, log, _) = run(
        o,
        reqs,
        Box::new(move |s| {
            calls += 1;
            if calls == 1 {
                return Ok(HttpResponse {
                    status: 429,
                    headers: vec![("Retry-After".into(), "3".into())],
                    body: b"{}".to_vec(),
                });
            }
            ok_all(s)
        }),
    )
    .await;
    let sizes: Vec<usize> = log.iter().map(|s| s.items.len()).collect();
    assert_eq!(
        sizes,
        [20, 10, 11, 12, 7],
        "halved, then one more per batch taken"
    );
    assert!(
        log[1..].iter().all(|s| s.at >= Duration::from_secs(3)),
        "nothing is sent during the envelope's Retry-After"
    );
    assert!(results.iter().all(|r| r.status == 200));
}

#[tokio::test(start_paused = true)]
async fn envelope_500_resends_reads_but_not_writes_unless_allowed() {
    for allow in [false, true] {
        let mut calls = 0;
        let mut o = options();
        o.retry_non_idempotent = allow;
        let (results, log, _) = run(
            o,
            vec![get("g", "/g"), post("p")],
            Box::new(move |s| {
                calls += 1;
                if calls == 1 {
                    return Ok(HttpResponse {
                        status: 500,
                        headers: vec![],
                        body: b"oops".to_vec(),
                    });
                }
                ok_all(s)
            }),
        )
        .await;
        assert_eq!(results[0].status, 200);
        if allow {
            assert_eq!((results[1].status, results[1].attempts), (200, 2));
        } else {
            assert_eq!(results[1].status, 0);
            assert_eq!(results[1].error.as_ref().unwrap().code, "OutcomeUnknown");
            assert_eq!(log[1].items.len(), 1, "only the GET is sent again");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn lost_answers_and_unreachable_service() {
    // A reset after sending: the read is retried, the write is not.
    let mut calls = 0;
    let (results, _, _) = run(
        options(),
        vec![get("g", "/g"), post("p")],
        Box::new(move |s| {
            calls += 1;
            if calls == 1 {
                Err(TransportError::MaybeSent("connection reset".into()))
            } else {
                ok_all(s)
            }
        }),
    )
    .await;
    assert_eq!(results[0].status, 200);
    assert_eq!(results[1].error.as_ref().unwrap().code, "OutcomeUnknown");
    assert!(results[1]
        .error
        .as_ref()
        .unwrap()
        .message
        .contains("connection reset"));

    // Never reachable: everything is retried, then fails with ConnectionFailed.
    let (results, log, _) = run(
        options(),
        vec![get("g", "/g"), post("p")],
        Box::new(|_| Err(TransportError::NotSent("connection refused".into()))),
    )
    .await;
    assert_eq!(log.len(), 6);
    for r in &results {
        assert_eq!(
            (
                r.status,
                r.attempts,
                r.error.as_ref().unwrap().code.as_str()
            ),
            (0, 6, "ConnectionFailed")
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_item_missing_from_the_answer_is_not_lost() {
    let mut calls = 0;
    let (results, _, _) = run(
        options(),
        vec![get("g", "/g"), post("p")],
        Box::new(move |s| {
            calls += 1;
            if calls == 1 {
                answer(vec![])
            } else {
                ok_all(s)
            }
        }),
    )
    .await;
    assert_eq!(results[0].status, 200);
    assert_eq!(results[1].error.as_ref().unwrap().code, "OutcomeUnknown");
}

#[tokio::test(start_paused = true)]
async fn accepted_batches_are_polled_at_their_retry_after() {
    let mut polls = 0;
    let (results, log, _) = run(
        options(),
        vec![get("a", "/a"), get("b", "/b")],
        Box::new(move |s| {
            if s.method == "POST" {
                return Ok(HttpResponse {
                    status: 202,
                    headers: vec![("Location".into(), "https://arm.test/batchop/1".into()), ("Retry-After".into(), "2".into())],
                    body: vec![],
                });
            }
            polls += 1;
            if polls < 3 {
                return Ok(HttpResponse { status: 202, headers: vec![("Retry-After".into(), "5".into())], body: vec![] });
            }
            let v = json!({"value": [{"name":"0","httpStatusCode":200,"content":{"n":0}},{"name":"1","httpStatusCode":404,"content":{}}]});
            Ok(HttpResponse { status: 200, headers: vec![], body: v.to_string().into_bytes() })
        }),
    )
    .await;
    let at: Vec<(u64, &str)> = log.iter().map(|s| (s.at.as_secs(), s.method)).collect();
    assert_eq!(at, [(0, "POST"), (2, "GET"), (7, "GET"), (12, "GET")]);
    assert!(log.iter().all(|s| s.bearer.as_deref() == Some("tok")));
    assert_eq!((results[0].status, results[1].status), (200, 404));
}

#[tokio::test(start_paused = true)]
async fn a_location_on_another_host_is_never_called() {
    let (results, log, _) = run(
        options(),
        vec![get("a", "/a"), post("p")],
        Box::new(|_| {
            Ok(HttpResponse {
                status: 202,
                headers: vec![("Location".into(), "https://evil.test/op".into())],
                body: vec![],
            })
        }),
    )
    .await;
    // Final at once: neither polled nor sent again.
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((results[0].status, code(&results[0])), (0, "ForeignHost"));
    assert!(message(&results[0]).contains("https://evil.test"));
    assert_eq!(
        code(&results[1]),
        "OutcomeUnknown",
        "the accepted write may run"
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_waiting_items() {
    let mut o = options();
    o.timeout = Duration::from_secs(10);
    let start = Instant::now();
    let (results, _, _) = run(
        o,
        vec![get("a", "/a")],
        Box::new(|s| {
            answer(vec![item(
                &s.items[0],
                429,
                json!({"Retry-After": "30"}),
                json!({}),
            )])
        }),
    )
    .await;
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(results[0].error.as_ref().unwrap().code, "Timeout");
}

#[tokio::test(start_paused = true)]
async fn next_links_are_followed_on_the_endpoint_only() {
    let mut o = options();
    o.follow_next_link = true;
    let (results, log, _) = run(
        o,
        vec![get("list", "/things?api-version=1"), get("foreign", "/other?api-version=1")],
        Box::new(|s| {
            answer(s.items.iter().map(|i| {
                let url = i["url"].as_str().unwrap();
                let body = match url {
                    "/things?api-version=1" => json!({"value":[1,2],"nextLink":"https://arm.test/things?api-version=1&$skiptoken=2"}),
                    "/things?api-version=1&$skiptoken=2" => json!({"value":[3],"nextLink":"https://arm.test/things?api-version=1&$skiptoken=3"}),
                    "/things?api-version=1&$skiptoken=3" => json!({"value":[4]}),
                    _ => json!({"value":["x"],"nextLink":"https://evil.test/next"}),
                };
                item(i, 200, json!({}), body)
            }).collect())
        }),
    )
    .await;
    assert_eq!(results[0].body, json!({"value":[1,2,3,4]}));
    assert_eq!((results[0].pages, results[0].attempts), (3, 3));
    assert_eq!(
        results[1].body["nextLink"], "https://evil.test/next",
        "left for the caller to see"
    );
    assert_eq!(results[1].pages, 1);
    assert!(log.iter().all(|s| s.url.starts_with("https://arm.test/")));
}

#[tokio::test(start_paused = true)]
async fn cancel_gives_every_unfinished_request_a_result() {
    let script = Arc::new(Script {
        start: Instant::now(),
        handler: Mutex::new(Box::new(|s: &Sent| {
            answer(
                s.items
                    .iter()
                    .map(|i| item(i, 429, json!({"Retry-After":"60"}), json!({})))
                    .collect(),
            )
        })),
        log: Mutex::new(vec![]),
        latency: Duration::ZERO,
    });
    let engine = Engine::new(
        Arc::new(options()),
        Arc::new(Fake(script)),
        Clock::starting_at(t0()),
    );
    let (tx, mut rx) = crate::queue::queue(crate::queue::DEFAULT_LIMIT);
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        c2.cancel();
    });
    let reqs = (0..30).map(|i| get(&i.to_string(), "/a")).collect();
    engine
        .run(reqs, tx, Arc::new(Progress::default()), cancel)
        .await;
    let mut n = 0;
    while let Some(r) = rx.try_recv() {
        assert_eq!((r.status, r.error.unwrap().code.as_str()), (0, "Cancelled"));
        n += 1;
    }
    assert_eq!(n, 30);
}

#[tokio::test(start_paused = true)]
async fn dependents_wait_for_their_dependencies_and_read_their_answers() {
    let o = graph_options();
    let reqs = parse(
        &o,
        &[
            json!({"id": "license", "method": "POST", "url": "/users/{{newUser.body.id}}/assignLicense", "dependsOn": ["newUser", "sku"],
               "body": {"addLicenses": [{"skuId": "{{sku.body.value.0.skuId}}"}], "count": "{{sku.body.n}}"}}),
            json!({"id": "newUser", "method": "POST", "url": "/users", "body": {"displayName": "Ada"}}),
            json!({"id": "sku", "url": "/subscribedSkus"}),
        ],
    );
    let (results, log, _) = run(
        o,
        reqs,
        Box::new(|s| {
            answer(s.items.iter().map(|i| {
                let body = match i["url"].as_str().unwrap() {
                    "/users" => json!({"id": "u-42"}),
                    "/subscribedSkus" => json!({"value": [{"skuId": "sku-1"}], "n": 7}),
                    _ => json!({"echo": i["body"].clone()}),
                };
                json!({"id": i["id"], "status": if i["method"] == "POST" && i["url"] == "/users" { 201 } else { 200 }, "body": body})
            }).collect())
        }),
    )
    .await;
    assert_eq!(
        log.len(),
        2,
        "the two independent requests go first, together"
    );
    assert_eq!(log[0].items.len(), 2);
    assert_eq!(log[1].items[0]["url"], "/users/u-42/assignLicense");
    assert_eq!(
        log[1].items[0]["body"],
        json!({"addLicenses": [{"skuId": "sku-1"}], "count": 7})
    );
    assert_eq!(results[0].status, 200);
    assert!(results.iter().all(|r| r.error.is_none()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_dependency_cascades_as_424_without_sending() {
    let o = options();
    let reqs = parse(
        &o,
        &[
            json!({"id": "rg", "method": "PUT", "url": "/rg?api-version=1", "body": {"location": "x"}}),
            json!({"id": "deploy", "method": "PUT", "url": "/rg/deploy?api-version=1", "body": {}, "dependsOn": ["rg"]}),
            json!({"id": "check", "url": "/rg/deploy/status?api-version=1", "dependsOn": ["deploy"]}),
            json!({"id": "other", "url": "/other?api-version=1"}),
        ],
    );
    let (results, log, summary) = run(
        o,
        reqs,
        Box::new(|s| {
            answer(
                s.items
                    .iter()
                    .map(|i| {
                        if i["url"] == "/rg?api-version=1" {
                            item(i, 409, json!({}), json!({"error": {"code": "Conflict"}}))
                        } else {
                            item(i, 200, json!({}), json!({}))
                        }
                    })
                    .collect(),
            )
        }),
    )
    .await;
    assert_eq!(log.len(), 1, "only the first batch is sent");
    assert_eq!(results[0].status, 409);
    for r in &results[1..3] {
        assert_eq!(
            (
                r.status,
                r.attempts,
                r.error.as_ref().unwrap().code.as_str()
            ),
            (424, 0, "FailedDependency")
        );
    }
    assert!(results[2]
        .error
        .as_ref()
        .unwrap()
        .message
        .contains("\"deploy\""));
    assert_eq!(results[3].status, 200);
    assert_eq!((summary.succeeded, summary.failed), (1, 3));
}

#[tokio::test(start_paused = true)]
async fn a_missing_reference_fails_the_request_and_its_dependents() {
    let o = graph_options();
    let reqs = parse(
        &o,
        &[
            json!({"id": "u", "method": "POST", "url": "/users", "body": {}}),
            json!({"id": "g", "url": "/users/{{u.body.id}}", "dependsOn": ["u"]}),
            json!({"id": "h", "url": "/x", "dependsOn": ["g"]}),
        ],
    );
    let (results, log, _) = run(
        o,
        reqs,
        Box::new(|s| {
            answer(
                s.items
                    .iter()
                    .map(|i| json!({"id": i["id"], "status": 201, "body": {"noId": true}}))
                    .collect(),
            )
        }),
    )
    .await;
    assert_eq!(log.len(), 1);
    let e = results[1].error.as_ref().unwrap();
    assert_eq!(
        (results[1].status, e.code.as_str()),
        (0, "ReferenceNotFound")
    );
    assert!(e.message.contains("{{u.body.id}}"), "{}", e.message);
    assert_eq!(results[2].status, 424);
}

#[tokio::test(start_paused = true)]
async fn graph_base64_answers() {
    let o = graph_options();
    let reqs = parse(
        &o,
        &[
            json!({"id": "photo", "url": "/users/1/photo/$value"}),
            json!({"id": "me", "url": "/me"}),
        ],
    );
    let mut calls = 0;
    let (results, log, _) = run(
        o,
        reqs,
        Box::new(move |s| {
            calls += 1;
            if calls == 1 {
                return answer(vec![
                    json!({"id": s.items[0]["id"], "status": 200, "headers": {"Content-Type": "image/jpeg"}, "body": "/9j/4AAQ"}),
                    json!({"id": s.items[1]["id"], "status": 429, "headers": {"Retry-After": "0"}, "body": {"error": {"code": "TooManyRequests"}}}),
                ]);
            }
            answer(vec![json!({"id": s.items[0]["id"], "status": 200, "headers": {"Content-Type": "application/json"}, "body": {"id": "me"}})])
        }),
    )
    .await;
    assert_eq!(
        (results[0].body.as_str(), results[0].body_encoding),
        (Some("/9j/4AAQ"), Some("base64"))
    );
    let text = serde_json::to_string(&results[0]).unwrap();
    assert!(text.contains("\"bodyEncoding\":\"base64\""));
    assert!(!serde_json::to_string(&results[1])
        .unwrap()
        .contains("bodyEncoding"));
    assert!(log[0].url.ends_with("/v1.0/$batch"));
}

#[tokio::test(start_paused = true)]
async fn a_graph_429_holds_every_send_but_an_arm_429_only_its_subscription() {
    for api in [Api::Graph, Api::Arm] {
        let mut o = options();
        o.api = api;
        o.batch_size = 1;
        o.concurrency = 1;
        let mut calls = 0;
        let (results, log, _) = run(
            o,
            vec![get("a", "/subscriptions/s1/a"), get("b", "/subscriptions/s2/b")],
            Box::new(move |s| {
                calls += 1;
                let (id, name) = if api == Api::Graph { ("id", &s.items[0]["id"]) } else { ("name", &s.items[0]["name"]) };
                let status = if calls == 1 { 429 } else { 200 };
                let mut item = json!({"status": status, "httpStatusCode": status, "headers": {"Retry-After": "2"}, "body": {}, "content": {}});
                item[id] = name.clone();
                answer(vec![item])
            }),
        )
        .await;
        assert!(results.iter().all(|r| r.status == 200), "{api:?}");
        let later: Vec<Duration> = log[1..].iter().map(|s| s.at).collect();
        match api {
            Api::Graph => assert!(
                later.iter().all(|t| *t >= Duration::from_secs(2)),
                "Graph: {later:?}"
            ),
            Api::Arm => assert!(
                later.iter().any(|t| *t < Duration::from_secs(2)),
                "ARM: {later:?}"
            ),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_reference_cannot_point_the_url_at_another_host() {
    let o = options();
    let reqs = parse(
        &o,
        &[
            json!({"id": "a", "url": "/a?api-version=1"}),
            json!({"id": "b", "url": "{{a.body.link}}", "dependsOn": ["a"]}),
        ],
    );
    let (results, log, _) = run(
        o,
        reqs,
        Box::new(|s| {
            answer(
                s.items
                    .iter()
                    .map(|i| {
                        item(
                            i,
                            200,
                            json!({}),
                            json!({"link": "https://evil.test/steal"}),
                        )
                    })
                    .collect(),
            )
        }),
    )
    .await;
    assert_eq!(log.len(), 1, "b was never sent");
    let e = results[1].error.as_ref().unwrap();
    assert_eq!(
        (results[1].status, e.code.as_str()),
        (0, "ReferenceNotFound")
    );
    assert!(e.message.contains("evil.test"), "{}", e.message);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_subscription_waits_as_a_whole_and_keeps_its_attempts() {
    // Subscription s1 has room for one call a second; s2 is never throttled.
    let mut o = options();
    o.batch_size = 2;
    o.concurrency = 2;
    o.max_attempts = 2;
    let mut reqs: Vec<Request> = (0..12)
        .map(|i| get(&format!("s1-{i}"), "/subscriptions/s1/x"))
        .collect();
    reqs.extend((0..4).map(|i| get(&format!("s2-{i}"), "/subscriptions/s2/x")));
    let budget = Arc::new(Mutex::new((1u32, Duration::ZERO)));
    let (results, log, _) = run(
        o,
        reqs,
        Box::new(move |s| {
            let mut b = budget.lock().unwrap();
            if s.at >= b.1 + Duration::from_secs(1) {
                *b = (1, s.at);
            }
            answer(
                s.items
                    .iter()
                    .map(|i| {
                        if i["url"] == "/subscriptions/s1/x" {
                            if b.0 == 0 {
                                return item(
                                    i,
                                    429,
                                    json!({"Retry-After": "1"}),
                                    json!({"error": {"code": "SubscriptionRequestsThrottled"}}),
                                );
                            }
                            b.0 -= 1;
                        }
                        item(i, 200, json!({}), json!({}))
                    })
                    .collect(),
            )
        }),
    )
    .await;
    assert!(
        results.iter().all(|r| r.status == 200),
        "every request got through in the end, attempts to spare: {:?}",
        results
            .iter()
            .map(|r| (r.status, r.attempts))
            .collect::<Vec<_>>()
    );
    let most = results.iter().map(|r| r.attempts).max().unwrap();
    assert!(
        most > 2,
        "429s with a Retry-After did not use up the two attempts: at most {most} sends"
    );
    let s1_sends: usize = log
        .iter()
        .map(|s| {
            s.items
                .iter()
                .filter(|i| i["url"] == "/subscriptions/s1/x")
                .count()
        })
        .sum();
    assert!(
        s1_sends < 12 * 3,
        "held back while throttled instead of hammering: {s1_sends} sends for 12 requests"
    );
    let s2_done = log
        .iter()
        .filter(|s| s.items.iter().any(|i| i["url"] == "/subscriptions/s2/x"))
        .map(|s| s.at)
        .max()
        .unwrap();
    assert!(
        s2_done < Duration::from_secs(1),
        "s2 was not held up by s1: {s2_done:?}"
    );
}

/// A JWT whose `exp` is `exp` (unsigned: only its expiry is read).
fn jwt(exp: SystemTime) -> String {
    use base64::Engine as _;
    let secs = exp
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"aud": "https://management.azure.com/", "exp": secs}).to_string());
    format!("eyJhbGciOiJub25lIn0.{payload}.sig")
}

/// A run that outlives several managed-identity tokens renews each before it
/// expires: on the paused clock, with the identity endpoint scripted.
#[tokio::test(start_paused = true)]
async fn tokens_are_renewed_during_a_long_run() {
    const LIFETIME: Duration = Duration::from_secs(100);
    let _env = EnvGuard::set(&[
        ("IDENTITY_ENDPOINT", "https://identity.test/msi/token"),
        ("IDENTITY_HEADER", "the-identity-header"),
    ]);
    let mut o = options();
    o.credential = Some(crate::auth::Credential::ManagedIdentity { client_id: None });
    (o.batch_size, o.concurrency) = (1, 1);
    let issued = Arc::new(Mutex::new(Vec::<(String, SystemTime)>::new()));
    let tokens = issued.clone();
    let handler: Handler = Box::new(move |s| {
        if s.url.starts_with("https://identity.test/") {
            assert!(s.headers.contains(&(
                "X-IDENTITY-HEADER".to_string(),
                "the-identity-header".into()
            )));
            assert!(
                s.url
                    .contains("resource=https%3A%2F%2Fmanagement.azure.com%2F"),
                "{}",
                s.url
            );
            assert_eq!(s.bearer, None, "no token goes to the identity endpoint");
            let mut t = tokens.lock().unwrap();
            let expires = t0() + s.at + LIFETIME;
            let token = format!("mi-token-{}", t.len() + 1);
            t.push((token.clone(), expires));
            let secs = expires
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let body = json!({"access_token": token, "expires_on": secs.to_string()});
            return Ok(HttpResponse {
                status: 200,
                headers: vec![],
                body: body.to_string().into_bytes(),
            });
        }
        // Every batch carries a token that is still valid when it is sent.
        let t = tokens.lock().unwrap();
        let (_, expires) = t
            .iter()
            .find(|(tok, _)| Some(tok) == s.bearer.as_ref())
            .expect("a token we issued");
        assert!(
            t0() + s.at < *expires,
            "sent an expired token at {:?}",
            s.at
        );
        ok_all(s)
    });
    let reqs = (0..30).map(|i| get(&i.to_string(), "/a")).collect();
    let (results, log, _) = run_slowly(o, reqs, handler, Duration::from_secs(10)).await;
    assert!(results.iter().all(|r| r.status == 200));
    let run_time = log.last().unwrap().at;
    assert!(
        run_time >= Duration::from_secs(290),
        "30 sends of 10 s each: {run_time:?}"
    );
    let n = issued.lock().unwrap().len();
    assert!(
        (3..=5).contains(&n),
        "renewed a fifth of the lifetime early, not per batch: {n} tokens"
    );
}

/// A static token that expires mid-run: what it could send went out, the rest
/// ends `TokenExpired` at once instead of being sent.
#[tokio::test(start_paused = true)]
async fn a_static_token_that_expires_mid_run_ends_the_rest_promptly() {
    let token = jwt(t0() + Duration::from_secs(15));
    let mut o = options();
    o.credential = Some(crate::auth::Credential::Static(Secret::new(token.clone())));
    (o.batch_size, o.concurrency) = (1, 1);
    let reqs = (0..20).map(|i| get(&i.to_string(), "/a")).collect();
    let (results, log, _) = run_slowly(o, reqs, Box::new(ok_all), Duration::from_secs(2)).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    let expired: Vec<&ItemResult> = results
        .iter()
        .filter(|r| r.error.as_ref().is_some_and(|e| e.code == "TokenExpired"))
        .collect();
    // Nothing can renew it but its caller, who hands the next one in ahead
    // of its end: it is used to its last moment, sends at 0, 2, ..., 14 s.
    assert_eq!(ok, 8, "the token worked while it lived");
    assert_eq!(ok + expired.len(), 20);
    assert!(
        log.last().unwrap().at <= Duration::from_secs(14),
        "nothing sent after it expired"
    );
    assert!(expired[0]
        .error
        .as_ref()
        .unwrap()
        .message
        .contains("expired"));
    assert!(
        !serde_json::to_string(&results).unwrap().contains(&token),
        "the token is in no result"
    );
}

/// A token the service refuses is refused again: after the first batch's
/// 401 nothing more is sent, and every request still gets its result, saying
/// it was not sent and why.
#[tokio::test(start_paused = true)]
async fn a_refused_token_stops_the_run_from_sending() {
    let mut o = options();
    (o.batch_size, o.concurrency) = (1, 1);
    let reqs = (0..10).map(|i| get(&i.to_string(), "/a")).collect();
    let handler: Handler = Box::new(|_| {
        Ok(HttpResponse {
            status: 401,
            headers: vec![],
            body: json!({"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}})
                .to_string()
                .into_bytes(),
        })
    });
    let (results, log, _) = run(o, reqs, handler).await;
    assert_eq!(log.len(), 1, "one batch sent, then none: {log:?}");
    assert_eq!(results.len(), 10, "every request has its result");
    let not_sent: Vec<&ItemResult> = results.iter().filter(|r| r.status == 0).collect();
    assert_eq!(not_sent.len(), 9);
    for r in not_sent {
        let e = r.error.as_ref().unwrap();
        assert_eq!(e.code, "AuthenticationFailed");
        assert!(
            e.message.contains("not sent: the service refused the token earlier in this run (HTTP 401 InvalidAuthenticationToken"),
            "{}",
            e.message
        );
    }
}

/// Sets environment variables for one test and removes them after. The
/// library's unit tests set no other variables these sources read.
struct EnvGuard {
    vars: Vec<&'static str>,
    _held: std::sync::MutexGuard<'static, ()>,
}

static ENV: Mutex<()> = Mutex::new(());

impl EnvGuard {
    fn set(vars: &[(&'static str, &str)]) -> EnvGuard {
        let lock = ENV.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        EnvGuard {
            vars: vars.iter().map(|(k, _)| *k).collect(),
            _held: lock,
        }
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        for k in &self.vars {
            std::env::remove_var(k);
        }
    }
}

/// A reader that lags holds the run back: no new batch while the queue is full,
/// and the run goes on as soon as results are read. Nothing is lost.
#[tokio::test(start_paused = true)]
async fn a_slow_reader_holds_new_batches_back() {
    let script = Arc::new(Script {
        start: Instant::now(),
        handler: Mutex::new(Box::new(ok_all)),
        log: Mutex::new(vec![]),
        latency: Duration::from_millis(10),
    });
    let mut o = options();
    (o.batch_size, o.concurrency) = (2, 1);
    let engine = Engine::new(
        Arc::new(o),
        Arc::new(Fake(script.clone())),
        Clock::starting_at(t0()),
    );
    let (tx, mut rx) = crate::queue::queue(4);
    let reqs = (0..20).map(|i| get(&i.to_string(), "/a")).collect();
    let run = tokio::spawn(async move {
        engine
            .run(
                reqs,
                tx,
                Arc::new(Progress::default()),
                CancellationToken::new(),
            )
            .await
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent_while_unread = script.log.lock().unwrap().len();
    assert_eq!(
        sent_while_unread, 2,
        "two batches of two fill a queue of four, then it waits"
    );
    let mut got = vec![];
    while got.len() < 20 {
        got.push(rx.recv().await.unwrap().index);
    }
    run.await.unwrap();
    got.sort();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(script.log.lock().unwrap().len(), 10);
}

/// An engine run over an open input: the sender, the run, the results.
fn open_run(
    script: Arc<Script>,
) -> (
    Feed,
    tokio::task::JoinHandle<crate::Summary>,
    crate::queue::ResultReceiver,
) {
    open_run_with(options(), script)
}

fn open_run_with(
    o: Options,
    script: Arc<Script>,
) -> (
    Feed,
    tokio::task::JoinHandle<crate::Summary>,
    crate::queue::ResultReceiver,
) {
    let engine = Engine::new(
        Arc::new(o),
        Arc::new(Fake(script)),
        Clock::starting_at(t0()),
    );
    let (tx, rx) = mpsc::channel(64);
    let graph = SharedGraph::default();
    let feed = Feed {
        tx,
        graph: graph.clone(),
    };
    let (sink, results) = crate::queue::queue(crate::queue::DEFAULT_LIMIT);
    let run = tokio::spawn(async move {
        let input = Input {
            first: vec![],
            rest: Some(rx),
            graph,
        };
        engine
            .run_input(
                input,
                sink,
                Arc::new(Progress::default()),
                CancellationToken::new(),
            )
            .await
    });
    (feed, run, results)
}

/// How the tests feed an open run: each request placed in the run's graph
/// as it is sent, as a job's request list does.
struct Feed {
    tx: mpsc::Sender<Arrival>,
    graph: SharedGraph,
}

impl Feed {
    async fn send(&self, r: Request) {
        let permit = self.tx.reserve().await.expect("the run takes input");
        permit.send(self.arrival(r));
    }

    /// Sends `r` unless the run's input is full.
    fn try_send(&self, r: Request) -> Result<(), ()> {
        let permit = self.tx.try_reserve().map_err(drop)?;
        permit.send(self.arrival(r));
        Ok(())
    }

    fn arrival(&self, r: Request) -> Arrival {
        let links = self.graph.lock().push(r.given_id(), &r.depends_on);
        Arrival::new(r, links)
    }
}

fn drain_all(results: &mut crate::queue::ResultReceiver) -> Vec<ItemResult> {
    let mut got = vec![];
    while let Some(r) = results.try_recv() {
        got.push(r);
    }
    got.sort_by_key(|r| r.index);
    got
}

/// Requests may arrive while the run goes on: the first batch leaves before
/// the input ends, a request waits for a dependency that has not arrived, one
/// that arrives after its dependency finished still reads its answer, and one
/// whose dependency never comes fails when the input ends.
#[tokio::test(start_paused = true)]
async fn streamed_input_runs_as_it_arrives() {
    let script = Arc::new(Script {
        start: Instant::now(),
        handler: Mutex::new(Box::new(|s: &Sent| {
            let made = |i: &Value| json!({"id": format!("made{}", i["url"].as_str().unwrap())});
            answer(
                s.items
                    .iter()
                    .map(|i| item(i, 200, json!({}), made(i)))
                    .collect(),
            )
        })),
        log: Mutex::new(vec![]),
        latency: Duration::from_millis(100),
    });
    let mut list = crate::request::RequestList::default();
    for r in [
        json!({"id": "x", "url": "/x"}),
        json!({"id": "b", "url": "/b/{{a.body.id}}", "dependsOn": ["a"]}),
        json!({"id": "a", "url": "/a"}),
        json!({"id": "c", "url": "/c/{{a.body.id}}", "dependsOn": ["a"]}),
        json!({"id": "d", "url": "/d", "dependsOn": ["x", "zz"]}),
    ] {
        list.add_json(&r.to_string(), &options()).unwrap();
    }
    let (tx, run, mut results) = open_run(script.clone());
    let mut reqs = list.into_vec().into_iter();
    for (n, wait_after) in [0, 5, 5, 0, 5].into_iter().enumerate() {
        tx.send(reqs.next().unwrap()).await;
        tokio::time::sleep(Duration::from_secs(wait_after)).await;
        if n == 1 {
            assert_eq!(
                script.log.lock().unwrap().len(),
                1,
                "x went out at once; b waits for a"
            );
        }
    }
    drop(tx);
    let summary = run.await.unwrap();
    let got = drain_all(&mut results);
    let log = script.log.lock().unwrap();
    let urls: Vec<&str> = log
        .iter()
        .flat_map(|s| s.items.iter().map(|i| i["url"].as_str().unwrap()))
        .collect();
    assert_eq!(urls, ["/x", "/a", "/b/made/a", "/c/made/a"]);
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 200, 200, 0]
    );
    assert_eq!(got[4].error.as_ref().unwrap().code, "FailedDependency");
    assert!(got[4].error.as_ref().unwrap().message.contains("zz"));
    assert_eq!(
        (summary.total, summary.succeeded, summary.failed),
        (5, 4, 1)
    );
}

/// Requests that arrive a moment apart travel together: a batch that is not
/// full waits a little for more while the input is open.
#[tokio::test(start_paused = true)]
async fn an_open_input_fills_batches_before_sending() {
    let script = Arc::new(Script {
        start: Instant::now(),
        handler: Mutex::new(Box::new(ok_all)),
        log: Mutex::new(vec![]),
        latency: Duration::from_millis(100),
    });
    let (tx, run, mut results) = open_run(script.clone());
    for i in 0..45 {
        tx.send(get(&i.to_string(), "/a")).await;
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(tx);
    run.await.unwrap();
    let sizes: Vec<usize> = script
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.items.len())
        .collect();
    assert_eq!(
        sizes,
        [20, 20, 5],
        "full batches at once, the rest after the linger"
    );
    let mut n = 0;
    while results.try_recv().is_some() {
        n += 1;
    }
    assert_eq!(n, 45);
}

/// Requests their scopes hold back do not make batches short: ten mailboxes'
/// reads arrive a mailbox at a time, eight each, and Outlook takes four per
/// mailbox at once. The first four of each go in two full batches (five
/// mailboxes each), the next four of each in two more as those land. Sent as
/// soon as twenty were ready, the first batch would hold twelve (four each of
/// the first three mailboxes): more, shorter batches, each mailbox's reads
/// spread over several, and the run's window full sooner.
#[tokio::test(start_paused = true)]
async fn held_requests_do_not_leave_batches_short_while_the_input_comes() {
    let script = Arc::new(Script {
        start: Instant::now(),
        handler: Mutex::new(Box::new(|s: &Sent| {
            answer(
                s.items
                    .iter()
                    .map(|i| json!({"id": i["id"], "status": 200, "headers": {}, "body": {}}))
                    .collect(),
            )
        })),
        log: Mutex::new(vec![]),
        latency: Duration::from_millis(100),
    });
    let o = graph_options();
    let reqs: Vec<Value> = (0..10)
        .flat_map(|m| (0..8).map(move |k| json!({"id": format!("m{m}-{k}"), "url": format!("/users/u{m}/events?n={k}")})))
        .collect();
    let (tx, run, mut results) = open_run_with(o.clone(), script.clone());
    // A mailbox's reads together, a millisecond (the timer's tick) apart.
    for (k, r) in parse(&o, &reqs).into_iter().enumerate() {
        tx.send(r).await;
        if k % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    drop(tx);
    run.await.unwrap();
    let log = script.log.lock().unwrap();
    let mailboxes = |s: &Sent| {
        let mut m: Vec<String> = s
            .items
            .iter()
            .map(|i| {
                i["url"]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .nth(2)
                    .unwrap()
                    .to_string()
            })
            .collect();
        m.dedup();
        m.len()
    };
    assert_eq!(
        log.iter()
            .map(|s| (s.items.len(), mailboxes(s)))
            .collect::<Vec<_>>(),
        [(20, 5), (20, 5), (20, 5), (20, 5)],
        "(items, mailboxes) of each batch"
    );
    assert_eq!(drain_all(&mut results).len(), 80);
}

/// A scope whose pause has ended but whose window is full waits for a landing
/// batch, not in a busy loop: the run takes a few dozen turns, not millions.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_paused_scope_waits_without_spinning() {
    let mut calls = 0;
    let mut o = options();
    (o.batch_size, o.concurrency) = (2, 1);
    let reqs = (0..12)
        .map(|i| get(&i.to_string(), "/subscriptions/s1/x"))
        .collect();
    let (results, _, _) = run_slowly(
        o,
        reqs,
        Box::new(move |s| {
            calls += 1;
            let status = if calls == 1 { 429 } else { 200 };
            answer(
                s.items
                    .iter()
                    .map(|i| item(i, status, json!({"Retry-After": "1"}), json!({})))
                    .collect(),
            )
        }),
        Duration::from_secs(10),
    )
    .await;
    assert!(results.iter().all(|r| r.status == 200));
    assert!(turns() < 500, "{} turns", turns());
}

/// A throttled scope holds what it cannot send yet, but only so much: then the
/// run stops taking input, so memory stays flat however long the input is.
#[tokio::test(start_paused = true)]
async fn a_throttled_run_stops_taking_input_once_its_scopes_hold_enough() {
    let script = Arc::new(Script {
        start: Instant::now(),
        handler: Mutex::new(Box::new(|s: &Sent| {
            let busy = |i: &Value| item(i, 429, json!({"Retry-After": "600"}), json!({}));
            answer(s.items.iter().map(busy).collect())
        })),
        log: Mutex::new(vec![]),
        latency: Duration::from_millis(10),
    });
    let o = options();
    let window = (4 * o.batch_size * o.concurrency).max(1024);
    let (tx, run, _results) = open_run(script.clone());
    let (mut accepted, mut refused_in_a_row) = (0usize, 0);
    while refused_in_a_row < 100 && accepted < 50 * window {
        let r = get(
            &format!("r{accepted}"),
            "/subscriptions/hot/x?api-version=1",
        );
        match tx.try_send(r) {
            Ok(()) => {
                accepted += 1;
                refused_in_a_row = 0;
            }
            Err(_) => {
                refused_in_a_row += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        if accepted % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let held_at_most = super::run::HELD_WINDOWS * window + window + 64 + o.batch_size;
    assert!(
        accepted > super::run::HELD_WINDOWS * window && accepted <= held_at_most,
        "took {accepted} requests; the cap is about {held_at_most}"
    );
    let sent = script.log.lock().unwrap().len();
    assert!(
        sent <= o.concurrency,
        "{sent} batches: the first round, then the scope waits"
    );
    run.abort();
}

/// A service with ARM's documented read buckets (250, refilled at 25 a second,
/// per subscription) that says what is left on every answer.
fn arm_buckets() -> Handler {
    let buckets: Mutex<std::collections::HashMap<String, (f64, Duration)>> = Mutex::default();
    Box::new(move |s: &Sent| {
        let mut buckets = buckets.lock().unwrap();
        let items = s.items.iter().map(|i| {
            let sub = i["url"].as_str().unwrap().split('/').nth(2).unwrap().to_string();
            let (tokens, at) = buckets.entry(sub).or_insert((250.0, s.at));
            *tokens = (*tokens + (s.at - *at).as_secs_f64() * 25.0).min(250.0);
            *at = s.at;
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                let left = json!({"x-ms-ratelimit-remaining-subscription-reads": (*tokens as u64).to_string()});
                item(i, 200, left, json!({}))
            } else {
                item(i, 429, json!({"Retry-After": "1"}), json!({}))
            }
        });
        answer(items.collect())
    })
}

/// A Graph service that counts the app's resource units as the directory
/// does (3,500, refilled at 350 a second; a write costs 3, a read 1), says on
/// every answer what it cost and, from 0.8 of the limit on, how much is used;
/// mailboxes are counted apart and answer with neither.
fn graph_units() -> Handler {
    let bucket: Mutex<Option<(f64, Duration)>> = Mutex::default();
    Box::new(move |s: &Sent| {
        let mut bucket = bucket.lock().unwrap();
        let (units, at) = bucket.get_or_insert((3500.0, s.at));
        *units = (*units + (s.at - *at).as_secs_f64() * 350.0).min(3500.0);
        *at = s.at;
        let items = s.items.iter().map(|i| {
            let ok = |headers| json!({"id": i["id"], "status": 200, "headers": headers, "body": {}});
            if i["url"].as_str().unwrap().contains("/events") {
                return ok(json!({}));
            }
            let cost = if i["method"] == "GET" { 1.0 } else { 3.0 };
            if *units < cost {
                let wait = (cost - *units) / 350.0;
                return json!({"id": i["id"], "status": 429, "headers": {"Retry-After": format!("{wait:.3}")}, "body": {}});
            }
            *units -= cost;
            let used = 1.0 - *units / 3500.0;
            let mut h = json!({"x-ms-resource-unit": format!("{cost}")});
            if used >= 0.8 {
                h["x-ms-throttle-limit-percentage"] = json!(format!("{used:.2}"));
            }
            ok(h)
        });
        answer(items.collect())
    })
}

/// 2,000 Graph PATCHes cost 6,000 units where 3,500 are there and 350 come
/// a second: (6,000 - 3,500) / 350 = 7.14 s, which the run takes with next
/// to no 429 (the model learns the cost from the first answers and paces by
/// the bucket); mailbox reads beside them are not held by the app's units.
#[tokio::test(start_paused = true)]
async fn graph_writes_are_paced_by_the_apps_resource_units() {
    let o = graph_options();
    let mut reqs: Vec<Value> = (0..2000)
        .map(|i| json!({"id": format!("u{i}"), "method": "PATCH", "url": format!("/users/{i}"), "body": {"city": "x"}}))
        .collect();
    reqs.extend(
        (0..100).map(
            |i| json!({"id": format!("m{i}"), "url": format!("/users/{}/events?n={i}", i % 25)}),
        ),
    );
    let reqs = parse(&o, &reqs);
    let start = Instant::now();
    let (results, log, summary) =
        run_slowly(o, reqs, graph_units(), Duration::from_millis(100)).await;
    let took = start.elapsed();
    assert!(results.iter().all(|r| r.status == 200), "all succeed");
    assert!(
        summary.retries <= 20,
        "at most 1% answered 429: {} retries",
        summary.retries
    );
    assert!(
        took >= Duration::from_millis(7_100) && took <= Duration::from_millis(7_900),
        "took {took:?}; the units allow 7.14 s"
    );
    let mailboxes_done = log
        .iter()
        .filter(|s| {
            s.items
                .iter()
                .any(|i| i["url"].as_str().unwrap().contains("/events"))
        })
        .map(|s| s.at)
        .max()
        .unwrap();
    assert!(
        mailboxes_done < Duration::from_secs(2),
        "mailboxes are not held by the app's units: {mailboxes_done:?}"
    );
}

/// Reads beyond the bucket go out as it refills, not into 429s: 600 reads in
/// each of two subscriptions take the (600 - 250) / 25 = 14 s the buckets
/// allow, with nothing throttled, while a third subscription with headroom
/// is done at once.
#[tokio::test(start_paused = true)]
async fn reads_are_paced_by_the_subscription_buckets() {
    let mut reqs: Vec<Request> = (0..1200)
        .map(|i| {
            get(
                &format!("r{i}"),
                &format!("/subscriptions/s{}/x?api-version=1&n={i}", i % 2),
            )
        })
        .collect();
    reqs.extend((0..100).map(|i| {
        get(
            &format!("free{i}"),
            &format!("/subscriptions/free/x?api-version=1&n={i}"),
        )
    }));
    let start = Instant::now();
    let (results, log, summary) =
        run_slowly(options(), reqs, arm_buckets(), Duration::from_millis(50)).await;
    let took = start.elapsed();
    assert!(results.iter().all(|r| r.status == 200), "all succeed");
    assert_eq!(
        summary.retries, 0,
        "no 429: the run waits for tokens instead"
    );
    assert!(
        took >= Duration::from_secs(14) && took <= Duration::from_millis(15_400),
        "took {took:?}; the buckets allow 14 s"
    );
    let free_done = log
        .iter()
        .filter(|s| {
            s.items
                .iter()
                .any(|i| i["url"].as_str().unwrap().contains("/free/"))
        })
        .map(|s| s.at)
        .max()
        .unwrap();
    assert!(
        free_done < Duration::from_secs(1),
        "a scope with headroom is not held back: {free_done:?}"
    );
}

fn delete(id: &str) -> Request {
    let mut r = Request::get(id, "/r?api-version=1");
    r.method = "DELETE".into();
    r
}

fn code(r: &ItemResult) -> &str {
    r.error.as_ref().map_or("", |e| e.code.as_str())
}

fn message(r: &ItemResult) -> &str {
    r.error.as_ref().map_or("", |e| e.message.as_str())
}

/// A batch answered with a redirect fails at once, naming the status and where
/// it pointed; nothing goes there, nothing is resent.
#[tokio::test(start_paused = true)]
async fn a_redirected_batch_fails_naming_where_it_pointed() {
    let (results, log, summary) = run(
        options(),
        vec![get("a", "/a"), post("p")],
        Box::new(|_| {
            Ok(HttpResponse {
                status: 307,
                headers: vec![("Location".into(), "https://login.test/elsewhere".into())],
                body: vec![],
            })
        }),
    )
    .await;
    assert_eq!(log.len(), 1, "never followed, never resent: {log:?}");
    for r in &results {
        assert_eq!(code(r), "Redirected", "{r:?}");
        assert!(
            message(r).contains("HTTP 307") && message(r).contains("https://login.test/elsewhere"),
            "{r:?}"
        );
        assert!(!r.is_success());
    }
    assert_eq!(summary.failed, 2);
}

/// A `nextLink` to another host is not followed, and the result says the
/// listing is incomplete, keeping the pages fetched.
#[tokio::test(start_paused = true)]
async fn a_refused_next_link_leaves_the_listing_incomplete() {
    let mut o = options();
    o.follow_next_link = true;
    let (results, log, summary) = run(
        o,
        vec![get("list", "/things?api-version=1")],
        Box::new(|s| {
            answer(s.items.iter().map(|i| {
                let body = match i["url"].as_str().unwrap() {
                    "/things?api-version=1" => json!({"value":[1,2],"nextLink":"https://arm.test/things?api-version=1&$skiptoken=2"}),
                    _ => json!({"value":[3],"nextLink":"https://evil.test/things?$skiptoken=3"}),
                };
                item(i, 200, json!({}), body)
            }).collect())
        }),
    )
    .await;
    let r = &results[0];
    assert_eq!(log.len(), 2);
    assert_eq!((r.status, r.pages), (200, 2));
    assert_eq!(
        r.body["value"],
        json!([1, 2, 3]),
        "the pages fetched are kept"
    );
    assert_eq!(r.body["nextLink"], "https://evil.test/things?$skiptoken=3");
    assert_eq!(code(r), "IncompleteListing");
    assert!(
        message(r).contains("https://evil.test") && message(r).contains("2 page(s)"),
        "{r:?}"
    );
    assert_eq!(summary.failed, 1, "an incomplete listing is not a success");
}

/// A DELETE resent after its answer was lost, answered 404, did what was
/// asked: a success with a note. A DELETE whose first answer is 404 is not.
#[tokio::test(start_paused = true)]
async fn a_resent_delete_that_finds_the_resource_gone_succeeded() {
    let mut calls = 0;
    let (results, _, _) = run(
        options(),
        vec![delete("d")],
        Box::new(move |s| {
            calls += 1;
            match calls {
                1 => Err(TransportError::MaybeSent("connection reset".into())),
                _ => answer(vec![item(
                    &s.items[0],
                    404,
                    json!({}),
                    json!({"error":{"code":"ResourceNotFound","message":"gone"}}),
                )]),
            }
        }),
    )
    .await;
    let r = &results[0];
    assert_eq!(
        (r.status, r.attempts, r.error.clone()),
        (204, 2, None),
        "{r:?}"
    );
    assert!(r.note.as_deref().unwrap_or("").contains("404"), "{r:?}");
    assert!(r.is_success());

    let (results, _, _) = run(
        options(),
        vec![delete("d")],
        Box::new(|s| {
            answer(vec![item(
                &s.items[0],
                404,
                json!({}),
                json!({"error":{"code":"ResourceNotFound","message":"gone"}}),
            )])
        }),
    )
    .await;
    assert_eq!(
        (results[0].status, code(&results[0])),
        (404, "ResourceNotFound")
    );
    assert_eq!(results[0].note, None);
}

/// When the deadline (or a cancel) ends a run, writes on the wire may have
/// run: `OutcomeUnknown`; reads on the wire and requests never sent are
/// plainly ended.
#[tokio::test(start_paused = true)]
async fn writes_on_the_wire_at_the_end_are_outcome_unknown() {
    let mut o = options();
    o.timeout = Duration::from_secs(10);
    o.concurrency = 1;
    o.batch_size = 3;
    let reqs = vec![get("g", "/g"), post("p"), delete("d"), post("later")];
    let (results, log, _) = run_slowly(o, reqs, Box::new(ok_all), Duration::from_secs(60)).await;
    assert_eq!(
        log.len(),
        1,
        "one batch on the wire, the fourth request waits"
    );
    let got: Vec<(&str, &str)> = results.iter().map(|r| (r.id.as_str(), code(r))).collect();
    assert_eq!(
        got,
        [
            ("g", "Timeout"),
            ("p", "OutcomeUnknown"),
            ("d", "OutcomeUnknown"),
            ("later", "Timeout")
        ]
    );
    assert!(
        message(&results[1]).contains("may have run"),
        "{:?}",
        results[1]
    );
}

/// An answer that names one request twice is broken: that request gets
/// neither answer (a read is resent, a write ends `OutcomeUnknown`, both say
/// why); the others keep their own.
#[tokio::test(start_paused = true)]
async fn an_answer_naming_a_request_twice_is_not_trusted() {
    let mut calls = 0;
    let (results, log, _) = run(
        options(),
        vec![get("g", "/g"), post("p"), get("h", "/h")],
        Box::new(move |s| {
            calls += 1;
            if calls > 1 {
                return ok_all(s);
            }
            let i = &s.items;
            answer(vec![
                item(&i[0], 200, json!({}), json!({"mine": "g"})),
                item(&i[0], 200, json!({}), json!({"mine": "h"})),
                item(&i[1], 201, json!({}), json!({"mine": "p"})),
                item(&i[1], 201, json!({}), json!({"mine": "p"})),
                item(&i[2], 200, json!({}), json!({"mine": "h"})),
            ])
        }),
    )
    .await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].items.len(), 1, "only the read named twice is resent");
    assert_eq!((results[0].status, results[0].attempts), (200, 2));
    assert_eq!(
        results[0].body,
        json!({"url": "/g"}),
        "the answer of the resend"
    );
    assert_eq!(code(&results[1]), "OutcomeUnknown");
    assert!(message(&results[1]).contains("twice"), "{:?}", results[1]);
    assert_eq!(results[2].body, json!({"mine": "h"}));
}

/// An attempt that gets no answer within `attempt_timeout` is a lost answer:
/// the read is sent again, the write ends `OutcomeUnknown`, and the run does
/// not wait for the slow answer.
#[tokio::test(start_paused = true)]
async fn an_attempt_without_an_answer_in_time_is_lost() {
    let mut o = options();
    o.attempt_timeout = Duration::from_secs(5);
    o.max_attempts = 2;
    let start = Instant::now();
    let (results, log, _) = run_slowly(
        o,
        vec![get("g", "/g"), post("p")],
        Box::new(ok_all),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(log.len(), 2);
    assert_eq!(
        (code(&results[0]), results[0].attempts),
        ("InvalidResponse", 2)
    );
    assert!(
        message(&results[0]).contains("no answer within 5 s"),
        "{:?}",
        results[0]
    );
    assert_eq!(
        (code(&results[1]), results[1].attempts),
        ("OutcomeUnknown", 1)
    );
    assert!(
        start.elapsed() < Duration::from_secs(12),
        "{:?}",
        start.elapsed()
    );
}

/// Batches are cut by bytes as well as by count, and a batch the service
/// answers 413 is split and sent again, down to one item, whose 413 stands.
#[tokio::test(start_paused = true)]
async fn batches_are_cut_by_bytes_and_split_on_413() {
    let big = |id: &str, kb: usize| {
        let mut r = Request::get(id, "/u");
        r.method = "PATCH".into();
        r.body = Some(json!({ "blob": "x".repeat(kb * 1000) }));
        r
    };
    let o = options();
    let reqs = (0..5).map(|i| big(&i.to_string(), 1500)).collect();
    let (results, log, _) = run(o.clone(), reqs, Box::new(ok_all)).await;
    let sizes: Vec<usize> = log.iter().map(|s| s.items.len()).collect();
    assert_eq!(sizes, [2, 2, 1], "1.5 MB each, 4 MB a batch");
    assert!(results.iter().all(|r| r.status == 200));

    // The service's limit is lower: it takes at most 2 items; item "lone" it
    // never takes. Splits do not use up the attempts.
    let mut o = o;
    o.max_attempts = 2;
    let mut reqs: Vec<Request> = (0..6).map(|i| big(&i.to_string(), 10)).collect();
    reqs.push(big("lone", 100));
    let (results, log, summary) = run(
        o,
        reqs,
        Box::new(|s| {
            let too_big = s.items.len() > 2
                || s.items
                    .iter()
                    .any(|i| i["content"]["blob"].as_str().unwrap().len() > 50_000);
            if too_big {
                let body =
                    json!({"error": {"code": "RequestEntityTooLarge", "message": "too large"}});
                return Ok(HttpResponse {
                    status: 413,
                    headers: vec![],
                    body: body.to_string().into_bytes(),
                });
            }
            ok_all(s)
        }),
    )
    .await;
    let sizes: Vec<usize> = log.iter().map(|s| s.items.len()).collect();
    assert_eq!(sizes[0], 7);
    // Each split is a send (attempts), not a try of the retry budget.
    assert!(
        results[..6]
            .iter()
            .all(|r| r.status == 200 && r.attempts > 1),
        "{results:?}"
    );
    assert_eq!(
        (results[6].status, code(&results[6])),
        (413, "RequestEntityTooLarge")
    );
    assert!(log.iter().all(|s| s.items.len() <= 7));
    assert!(summary.retries > 0);
}

/// Batches that were never sent (no connection) are not counted.
#[tokio::test(start_paused = true)]
async fn the_summary_counts_only_batches_that_were_sent() {
    let mut calls = 0;
    let (_, log, summary) = run(
        options(),
        vec![get("g", "/g")],
        Box::new(move |s| {
            calls += 1;
            if calls <= 2 {
                Err(TransportError::NotSent("connection refused".into()))
            } else {
                ok_all(s)
            }
        }),
    )
    .await;
    assert_eq!((log.len(), summary.batches), (3, 1));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// A random dependency graph (each request may depend on earlier
        /// ones): every request is sent exactly once, never in a batch that
        /// leaves before the batches of its dependencies have been answered,
        /// and every batch is within the count.
        #[test]
        fn never_before_its_dependencies(
            deps in proptest::collection::vec(proptest::collection::vec(0usize..1000, 0..3), 1..80),
            batch_size in 1usize..25,
            concurrency in 1usize..6,
        ) {
            let mut o = graph_options();
            o.batch_size = batch_size.min(20);
            o.concurrency = concurrency;
            let reqs: Vec<Value> = deps.iter().enumerate().map(|(i, d)| {
                let on: Vec<String> = d.iter().filter(|_| i > 0).map(|x| format!("r{}", x % i)).collect();
                json!({"id": format!("r{i}"), "url": format!("/users/{i}"), "dependsOn": on})
            }).collect();
            let requests = parse(&o, &reqs);
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            let (results, log, _) = rt.block_on(run(o, requests, Box::new(graph_ok)));
            prop_assert!(results.iter().all(|r| r.status == 200), "{results:?}");
            // The batch (by position in the log) each request travelled in.
            let mut batch_of = vec![usize::MAX; reqs.len()];
            for (b, s) in log.iter().enumerate() {
                prop_assert!(s.items.len() <= batch_size.min(20));
                for item in &s.items {
                    let i: usize = item["id"].as_str().unwrap().parse().unwrap();
                    prop_assert_eq!(batch_of[i], usize::MAX, "sent once");
                    batch_of[i] = b;
                }
            }
            for (i, q) in reqs.iter().enumerate() {
                for d in q["dependsOn"].as_array().unwrap() {
                    let j: usize = d.as_str().unwrap()[1..].parse().unwrap();
                    prop_assert!(batch_of[j] < batch_of[i], "r{i} went with or before its dependency r{j}");
                }
            }
        }
    }

    /// Graph answers: every item 200.
    fn graph_ok(s: &Sent) -> Result<HttpResponse, TransportError> {
        let items: Vec<Value> = s
            .items
            .iter()
            .map(|i| json!({"id": i["id"], "status": 200, "body": {}}))
            .collect();
        Ok(HttpResponse {
            status: 200,
            headers: vec![],
            body: json!({"responses": items}).to_string().into_bytes(),
        })
    }
}

/// When each send went out, when the first batch of three requests to one
/// subscription (one item a batch, one batch at a time) is answered 429 with
/// `Retry-After: 14` and `error`, and every later one 200.
async fn sends_after_a_429(error: Value) -> (Vec<Duration>, crate::Summary) {
    let mut calls = 0;
    let sub = "/subscriptions/s1/providers/Microsoft.Network/publicIPAddresses";
    let mut o = options();
    o.batch_size = 1;
    o.concurrency = 1;
    let requests = (0..3)
        .map(|i| get(&format!("r{i}"), &format!("{sub}/ip{i}?api-version=1")))
        .collect();
    let (results, log, summary) = run(
        o,
        requests,
        Box::new(move |s| {
            calls += 1;
            let first = calls == 1;
            answer(
                s.items
                    .iter()
                    .map(|i| match first {
                        true => item(
                            i,
                            429,
                            json!({"Retry-After": "14"}),
                            json!({"error": error}),
                        ),
                        false => item(i, 200, json!({}), json!({"ok": true})),
                    })
                    .collect(),
            )
        }),
    )
    .await;
    assert!(results.iter().all(|r| r.status == 200), "{results:?}");
    (log.iter().map(|s| s.at).collect(), summary)
}

/// A 429 for another operation holding the resource: retried at its time,
/// the scope neither paused nor slowed.
#[tokio::test(start_paused = true)]
async fn a_429_of_another_operation_is_retried_without_slowing_its_scope() {
    let locked =
        json!({"code":"RetryableError","details":[{"code":"RetryableErrorDueToAnotherOperation"}]});
    let (at, _) = sends_after_a_429(locked).await;
    assert_eq!(
        &at[..3],
        &[Duration::ZERO, Duration::ZERO, Duration::ZERO],
        "the scope's other requests went on at once: {at:?}"
    );
    assert_eq!(at[3], Duration::from_secs(14), "the locked one at its time");
}

/// A 429 that is throttling pauses the scope: the next request of the
/// same subscription waits too (the contrast to the test above).
#[tokio::test(start_paused = true)]
async fn a_throttling_429_pauses_its_scope() {
    let (at, summary) = sends_after_a_429(json!({"code":"SubscriptionRequestsThrottled"})).await;
    assert_eq!(at[1], Duration::from_secs(14), "the scope waited: {at:?}");
    assert_eq!(summary.retries, 1);
}

/// Graph's x-ms-throttle-scope and x-ms-throttle-information reach the
/// final error; x-ms-throttle-priority travels with the item.
#[tokio::test(start_paused = true)]
async fn graph_throttle_headers_reach_the_error_and_priority_travels() {
    let mut o = graph_options();
    o.max_attempts = 1;
    let reqs = parse(
        &o,
        &[
            json!({"id": "u", "method": "PATCH", "url": "/users/1", "body": {"city": "Oslo"},
                 "headers": {"x-ms-throttle-priority": "Low"}}),
        ],
    );
    let (results, log, _) = run(
        o,
        reqs,
        Box::new(|s| {
            let i = &s.items[0];
            Ok(HttpResponse {
                status: 200,
                headers: vec![],
                body: json!({"responses": [{"id": i["id"], "status": 429, "headers": {
                    "x-ms-throttle-scope": "Tenant_Application/Write/9a3d526c-b3c1-4479-ba74-197b5c5751ae/0785ef7c-2d7a-4542-b048-95bcab406e0b",
                    "x-ms-throttle-information": "WriteLimitExceeded"},
                    "body": {"error": {"code": "TooManyRequests", "message": "Too many requests."}}}]})
                .to_string()
                .into_bytes(),
            })
        }),
    )
    .await;
    assert_eq!(log[0].items[0]["headers"]["x-ms-throttle-priority"], "Low");
    let e = results[0].error.as_ref().expect("a 429 is an error");
    let t = e.throttle.as_ref().expect("the throttle headers were read");
    assert_eq!(t.reason.as_deref(), Some("WriteLimitExceeded"));
    assert!(t
        .scope
        .as_deref()
        .unwrap()
        .starts_with("Tenant_Application/Write/"));
    assert!(
        e.message.contains("Too many requests.")
            && e.message.contains("the writes of this app in this tenant"),
        "{}",
        e.message
    );
    let json = serde_json::to_value(&results[0]).unwrap();
    assert_eq!(json["error"]["throttleReason"], "WriteLimitExceeded");
}

/// A listing whose third page fails: never a silently short listing. The
/// result is the page's failure, naming the page and its URL; the body keeps
/// the items of the pages before it, its nextLink at the failed page.
#[tokio::test(start_paused = true)]
async fn a_listing_whose_third_page_fails_names_it_and_keeps_what_was_read() {
    let mut o = options();
    o.follow_next_link = true;
    let (results, _, _) = run(
        o,
        vec![get("list", "/things?api-version=1")],
        Box::new(|s| {
            answer(s.items.iter().map(|i| {
                let url = i["url"].as_str().unwrap();
                match url {
                    "/things?api-version=1" => item(i, 200, json!({}), json!({"value":[1,2],"nextLink":"https://arm.test/things?api-version=1&$skiptoken=2"})),
                    "/things?api-version=1&$skiptoken=2" => item(i, 200, json!({}), json!({"value":[3],"nextLink":"https://arm.test/things?api-version=1&$skiptoken=3"})),
                    _ => item(i, 400, json!({}), json!({"error":{"code":"InvalidSkipToken","message":"The skip token has expired."}})),
                }
            }).collect())
        }),
    )
    .await;
    let r = &results[0];
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"value":[1,2,3],"nextLink":"https://arm.test/things?api-version=1&$skiptoken=3"}),
        "the items read so far, and where the listing stopped"
    );
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.code, "InvalidSkipToken", "the service's own code");
    assert!(
        e.message.starts_with("page 3 of the listing (GET /things?api-version=1&$skiptoken=3) failed with HTTP 400: The skip token has expired.")
            && e.message.contains("the 2 page(s) before it (3 items) are in the body"),
        "{}",
        e.message
    );
    assert_eq!(r.pages, 2);
}

fn refuses_the_batch_endpoint(s: &Sent) -> Result<HttpResponse, TransportError> {
    if s.url.contains("batch") {
        return Ok(HttpResponse {
            status: 404,
            headers: vec![],
            body: br#"{"error":{"code":"NotFound","message":"no route"}}"#.to_vec(),
        });
    }
    Ok(HttpResponse {
        status: if s.method == "PUT" { 201 } else { 200 },
        headers: vec![(
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        )],
        body: json!({"url": s.url, "method": s.method})
            .to_string()
            .into_bytes(),
    })
}

/// POST /batch answered 404 (a cloud or proxy that does not route the
/// undocumented endpoint): said once, and every request goes on its own.
#[tokio::test(start_paused = true)]
async fn a_refused_batch_endpoint_falls_back_to_one_request_each() {
    let mut put = get(
        "w",
        "/subscriptions/s/resourcegroups/rg?api-version=2021-04-01",
    );
    put.method = "PUT".into();
    put.body = Some(json!({"location": "westeurope"}));
    let requests = vec![
        get("a", "/subscriptions/s?api-version=2022-12-01"),
        put,
        get("b", "/subscriptions/t?api-version=2022-12-01"),
    ];
    let (results, log, summary) =
        run(options(), requests, Box::new(refuses_the_batch_endpoint)).await;
    assert_eq!(summary.fallback, Some("single"), "{summary:?}");
    assert_eq!(
        results
            .iter()
            .map(|r| (r.status, r.attempts))
            .collect::<Vec<_>>(),
        vec![(200, 1), (201, 1), (200, 1)],
        "the refused batch is not counted as a try"
    );
    assert_eq!(results[1].body["method"], "PUT");
    let singles: Vec<&Sent> = log.iter().filter(|s| !s.url.contains("batch")).collect();
    assert_eq!(
        log.iter().filter(|s| s.url.contains("batch")).count(),
        1,
        "refused once, not asked again"
    );
    assert_eq!(singles.len(), 3);
    assert!(singles.iter().any(|s| s.method == "PUT"
        && s.url == "https://arm.test/subscriptions/s/resourcegroups/rg?api-version=2021-04-01"
        && s.bearer.as_deref() == Some("tok")));
    let put_sent = singles.iter().find(|s| s.method == "PUT").unwrap();
    assert!(put_sent
        .headers
        .iter()
        .any(|(k, v)| k == "Content-Type" && v == "application/json"));
}

/// With the fallback off, a refused batch endpoint fails its requests.
#[tokio::test(start_paused = true)]
async fn the_fallback_can_be_turned_off() {
    let mut o = options();
    o.batch_fallback = false;
    let (results, log, summary) = run(
        o,
        vec![get("a", "/subscriptions/s?api-version=1")],
        Box::new(refuses_the_batch_endpoint),
    )
    .await;
    assert_eq!(results[0].status, 404);
    assert_eq!(summary.fallback, None);
    assert!(log.iter().all(|s| s.url.contains("batch")));
}

/// Graph one by one: the item's own headers, a base64 body sent as its bytes,
/// a binary answer read back as base64.
#[tokio::test(start_paused = true)]
async fn graph_one_by_one_keeps_headers_and_binary_bodies() {
    let o = graph_options();
    let reqs = parse(
        &o,
        &[
            json!({"id": "photo", "method": "PUT", "url": "/me/photo/$value", "body": "AAEC", "bodyEncoding": "base64",
                 "headers": {"Content-Type": "image/jpeg"}}),
            json!({"id": "count", "url": "/users/$count", "headers": {"ConsistencyLevel": "eventual"}}),
        ],
    );
    let (results, log, summary) = run(
        o,
        reqs,
        Box::new(|s| {
            let refused = s.url.ends_with("$batch");
            Ok(HttpResponse {
                status: if refused { 405 } else { 200 },
                headers: vec![("Content-Type".into(), "image/png".into())],
                body: if refused { vec![] } else { vec![0x89, 0x50] },
            })
        }),
    )
    .await;
    assert_eq!(summary.fallback, Some("single"));
    assert_eq!(
        (results[0].status, results[0].body_encoding),
        (200, Some("base64"))
    );
    assert_eq!(results[0].body, json!("iVA="), "a binary answer as base64");
    let photo = log.iter().find(|s| s.method == "PUT").unwrap();
    assert_eq!(photo.url, "https://arm.test/v1.0/me/photo/$value");
    let has =
        |s: &Sent, name: &str, value: &str| s.headers.iter().any(|(k, v)| k == name && v == value);
    assert!(has(photo, "Content-Type", "image/jpeg"));
    assert_eq!(
        photo.raw,
        vec![0u8, 1, 2],
        "the base64 body sent as its bytes"
    );
    let count = log.iter().find(|s| s.url.ends_with("$count")).unwrap();
    assert!(has(count, "ConsistencyLevel", "eventual"));
}
