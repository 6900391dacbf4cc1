//! The emulator's ARM batch endpoint enforces ARM's rules: these tests call it
//! over HTTP the way any client would.

use std::time::{Duration, Instant};

use azbatch_emulator::arm::model::subscription_id;
use azbatch_emulator::{Config, Emulator, Faults, Latency};
use reqwest::Client;
use serde_json::{json, Value};

const TOKEN: &str = "emu-test-token";

fn start(config: Config) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        ..config
    })
    .unwrap()
}

async fn post(
    emu: &Emulator,
    query: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = Client::new()
        .post(format!("{}/batch{query}", emu.url()))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn items(n: usize, named: bool) -> Value {
    let v: Vec<Value> = (0..n)
        .map(|i| {
            let mut r = json!({"httpMethod": "GET", "url": format!("/subscriptions/{}?api-version=2022-12-01", subscription_id(i % 3))});
            if named {
                r["name"] = json!(format!("r{i}"));
            }
            r
        })
        .collect();
    json!({ "requests": v })
}

const V: &str = "?api-version=2020-06-01";

#[tokio::test]
async fn envelope_rules() {
    let emu = start(Config {
        subscriptions: 3,
        async_threshold: 1000,
        ..Config::default()
    });
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("", items(1, true), 400, "MissingApiVersionParameter"),
        (
            "?api-version=2019-01-01",
            items(1, true),
            400,
            "InvalidApiVersionParameter",
        ),
        (V, json!({"reqs": []}), 400, "InvalidRequestContent"),
        (V, items(501, true), 400, "InvalidRequestContent"),
        (V, items(21, false), 400, "InvalidRequestContent"),
        (
            V,
            json!({"requests": [{"name": "a", "httpMethod": "GET", "url": "/x"}, {"name": "A", "httpMethod": "GET", "url": "/y"}]}),
            400,
            "InvalidRequestContent",
        ),
        (
            V,
            json!({"requests": [{"name": "a", "httpMethod": "FETCH", "url": "/x"}]}),
            400,
            "InvalidRequestContent",
        ),
    ];
    for (q, body, status, code) in cases {
        let (s, _, b) = post(&emu, q, &body).await;
        assert_eq!(
            (s, b["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{q} {body:.80}"
        );
    }
    let (s, _, b) = post(&emu, V, &items(20, false)).await;
    assert_eq!(s, 200, "20 unnamed items are fine");
    assert_eq!(b["responses"].as_array().unwrap().len(), 20);
    let (s, _, _) = post(&emu, "?api-version=2015-11-01", &items(2, true)).await;
    assert_eq!(s, 200, "the older version is accepted");
    let r = Client::new()
        .post(format!("{}/batch{V}", emu.url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "no token, no entry");
    let r = Client::new()
        .post(format!("{}/batch{V}", emu.url()))
        .bearer_auth("other")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = Client::new()
        .post(format!("{}/batch{V}", emu.url()))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn items_carry_the_remaining_reads_and_throttle_per_subscription() {
    let emu = start(Config {
        subscriptions: 3,
        ..Config::default()
    });
    let (_, _, b) = post(&emu, V, &items(3, true)).await;
    for r in b["responses"].as_array().unwrap() {
        assert_eq!(r["httpStatusCode"], 200);
        assert_eq!(
            r["headers"]["x-ms-ratelimit-remaining-subscription-reads"], "249",
            "each subscription has its own bucket"
        );
        assert_eq!(
            r["headers"]["x-ms-ratelimit-remaining-subscription-global-reads"], "3749",
            "inside the subscription's global bucket, 15 times a principal's"
        );
        let length = r["contentLength"].as_u64().unwrap() as usize;
        assert_eq!(
            length,
            r["content"].to_string().len(),
            "contentLength is the length of the content"
        );
    }
    // Deletes have a bucket of their own, and calls outside a subscription
    // count against the tenant's, with the tenant's header.
    let sub = "/subscriptions/00000000-0000-4000-8000-000000000000";
    let batch = json!({"requests": [
        {"httpMethod": "DELETE", "name": "d", "url": format!("{sub}/resourcegroups/nope?api-version=2021-04-01")},
        {"httpMethod": "PUT", "name": "w", "url": format!("{sub}/resourcegroups/rg?api-version=2021-04-01"), "content": {"location": "westeurope"}},
        {"httpMethod": "GET", "name": "t", "url": "/tenants?api-version=2022-12-01"},
    ]});
    let (_, _, b) = post(&emu, V, &batch).await;
    let by_name = |n: &str| {
        b["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_name("d")["headers"]["x-ms-ratelimit-remaining-subscription-deletes"],
        "199"
    );
    assert_eq!(
        by_name("w")["headers"]["x-ms-ratelimit-remaining-subscription-writes"],
        "199"
    );
    assert_eq!(
        by_name("t")["headers"]["x-ms-ratelimit-remaining-tenant-reads"],
        "249"
    );
}

#[tokio::test]
async fn large_batches_answer_202_then_the_result() {
    let emu = start(Config {
        subscriptions: 3,
        latency: Latency::fixed(Duration::from_millis(1000)),
        async_retry_after_secs: 2,
        ..Config::default()
    });
    let (s, h, _) = post(&emu, V, &items(25, true)).await;
    assert_eq!(s, 202);
    assert_eq!(h["retry-after"], "2");
    let location = h["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&emu.url()), "{location}");
    let http = Client::new();
    let first = http.get(&location).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 202, "still running");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let done = http.get(&location).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(done.status().as_u16(), 200);
    let v: Value = done.json().await.unwrap();
    assert_eq!(v["responses"].as_array().unwrap().len(), 25);
    let unknown = http
        .get(format!("{}/batchOperations/nope{V}", emu.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

#[tokio::test]
async fn direct_calls_reach_the_same_model_and_are_logged() {
    let emu = start(Config {
        subscriptions: 3,
        ..Config::default()
    });
    let http = Client::new();
    let get = |path: String| {
        http.get(format!("{}{path}", emu.url()))
            .bearer_auth(TOKEN)
            .send()
    };
    assert_eq!(
        get("/subscriptions/x/unknown?api-version=1".into())
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        get("/nowhere?api-version=1".into())
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let r = get("/subscriptions".into()).await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "api-version is required");
    let r = get("/subscriptions?api-version=2022-12-01".into())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    post(&emu, V, &items(2, true)).await;
    let ops = emu.ops();
    assert_eq!(ops.len(), 6);
    assert_eq!(ops.iter().filter(|o| o.in_batch).count(), 2);
    assert_eq!(ops.iter().filter(|o| o.status == 404).count(), 2);
}

#[tokio::test]
async fn latency_ranges_and_slow_batches_delay_the_answer() {
    let faults = Faults {
        slow_batch: 1.0,
        slow_delay: Duration::from_millis(300),
        ..Faults::default()
    };
    let latency = Latency {
        min: Duration::from_millis(50),
        max: Duration::from_millis(80),
    };
    let emu = start(Config {
        subscriptions: 3,
        faults,
        latency,
        ..Config::default()
    });
    let t = Instant::now();
    let (s, _, _) = post(&emu, V, &items(5, true)).await;
    assert_eq!(s, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "slow batch plus item latency: {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn injected_faults_follow_the_seed() {
    let run = |seed| async move {
        let faults = Faults {
            seed,
            item_429: 0.3,
            item_503: 0.2,
            ..Faults::default()
        };
        let emu = start(Config {
            subscriptions: 3,
            faults,
            ..Config::default()
        });
        let (_, _, b) = post(&emu, V, &items(20, true)).await;
        let mut statuses: Vec<(String, u64)> = b["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["httpStatusCode"].as_u64().unwrap(),
                )
            })
            .collect();
        statuses.sort();
        statuses
    };
    let a = run(11).await;
    assert!(
        a.iter().any(|(_, s)| *s == 429) && a.iter().any(|(_, s)| *s == 200),
        "{a:?}"
    );
    assert!(a
        .iter()
        .filter(|(_, s)| *s != 200)
        .all(|(_, s)| *s == 429 || *s == 503));
    assert_eq!(run(11).await, a, "the same seed injects the same faults");
    assert_ne!(run(12).await, a, "another seed, other faults");
}

#[tokio::test]
async fn without_rate_headers_items_say_nothing_of_their_buckets() {
    let emu = start(Config {
        subscriptions: 3,
        throttle: azbatch_emulator::config::Throttle {
            headers: false,
            read_capacity: 1.0,
            read_refill: 0.001,
            ..Default::default()
        },
        ..Config::default()
    });
    let (_, _, b) = post(&emu, V, &items(3, true)).await;
    let (_, _, again) = post(&emu, V, &items(3, true)).await;
    for r in b["responses"]
        .as_array()
        .unwrap()
        .iter()
        .chain(again["responses"].as_array().unwrap())
    {
        let headers = r["headers"].as_object().unwrap();
        assert!(
            headers.keys().all(|k| !k.starts_with("x-ms-ratelimit")),
            "{headers:?}"
        );
    }
    assert!(
        again["responses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["httpStatusCode"] == 429),
        "still throttled, with Retry-After alone: {again}"
    );
}
