//! ARM batching end to end: the real engine and HTTP client against the
//! emulator on loopback.

// These tests run against a real emulator over loopback: "cancel returns
// promptly" and "the deadline bounds a run" are real-time promises.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use azbatch_emulator::arm::model::{batch_account_count, eligibility_count};
use azbatch_emulator::{Config, Faults, Latency, Throttle};
use common::*;
use serde_json::json;

fn no_throttle() -> Throttle {
    Throttle {
        enabled: false,
        ..Throttle::default()
    }
}

#[test]
fn pim_eligibility_across_subscriptions() {
    let emu = emulator(Config {
        subscriptions: 45,
        ..Config::default()
    });
    let b = batch(&emu, json!({}));
    for i in 0..45 {
        add(&b, json!({"id": format!("sub-{i}"), "url": pim_url(i)}));
    }
    let run = execute(&b, 45);
    for (i, r) in run.results.iter().enumerate() {
        assert_eq!(
            (r.id.as_str(), r.status, r.attempts),
            (format!("sub-{i}").as_str(), 200, 1)
        );
        assert_eq!(
            r.body["value"].as_array().unwrap().len(),
            eligibility_count(i)
        );
        assert!(r.error.is_none());
    }
    let sizes: Vec<usize> = emu.batches().iter().map(|b| b.items).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 45);
    assert_eq!(sizes.len(), 3, "20 + 20 + 5: {sizes:?}");
    assert_eq!(
        (
            run.summary.total,
            run.summary.succeeded,
            run.summary.batches
        ),
        (45, 45, 3)
    );
    let p = b.progress();
    assert_eq!(
        (p.total, p.completed, p.succeeded, p.in_flight),
        (45, 45, 45, 0)
    );
}

#[test]
fn answers_out_of_order_are_matched_by_name() {
    let emu = emulator(Config {
        subscriptions: 30,
        shuffle: true,
        ..Config::default()
    });
    let b = batch(&emu, json!({}));
    for i in 0..30 {
        add(
            &b,
            json!({"url": format!("/subscriptions/{}?api-version=2022-12-01", sub(i))}),
        );
    }
    for (i, r) in execute(&b, 30).results.iter().enumerate() {
        assert_eq!(
            r.body["subscriptionId"],
            sub(i),
            "result {i} carries its own answer"
        );
        assert_eq!(
            r.id,
            i.to_string(),
            "requests without an id get their index"
        );
    }
}

#[test]
fn large_batches_are_accepted_then_polled_whatever_the_answer_key() {
    for key in ["responses", "value"] {
        let emu = emulator(Config {
            subscriptions: 60,
            async_result_key: key,
            async_retry_after_secs: 0,
            ..Config::default()
        });
        let b = batch(&emu, json!({"batchSize": 60}));
        for i in 0..60 {
            add(&b, json!({"url": pim_url(i)}));
        }
        let run = execute(&b, 60);
        assert!(run.results.iter().all(|r| r.status == 200), "{key}");
        let batches = emu.batches();
        assert_eq!(
            (batches.len(), batches[0].status, batches[0].items),
            (1, 202, 60),
            "{key}"
        );
    }
}

#[test]
fn throttled_items_are_retried_and_every_write_runs_once() {
    let faults = Faults {
        seed: 7,
        item_429: 0.3,
        item_503: 0.2,
        retry_after_secs: 0,
        ..Faults::default()
    };
    let emu = emulator(Config {
        subscriptions: 30,
        faults,
        throttle: no_throttle(),
        ..Config::default()
    });
    let b = batch(&emu, json!({"maxAttempts": 20}));
    for i in 0..60 {
        let url = format!(
            "/subscriptions/{}/resourcegroups/rg-{i}?api-version=2021-04-01",
            sub(i % 30)
        );
        add(
            &b,
            json!({"method": "PUT", "url": url, "body": {"location": "westeurope"}}),
        );
    }
    let run = execute(&b, 60);
    assert!(
        run.results.iter().all(|r| r.status == 201),
        "every group created once"
    );
    assert!(run.summary.retries > 0, "the faults forced retries");
    assert!(run.results.iter().any(|r| r.attempts > 1));
    let mut per_path: HashMap<String, usize> = HashMap::new();
    for op in emu.ops().into_iter().filter(|o| o.method == "PUT") {
        *per_path.entry(op.path.to_lowercase()).or_default() += 1;
    }
    assert_eq!(per_path.len(), 60);
    assert!(
        per_path.values().all(|&n| n == 1),
        "exactly once: {per_path:?}"
    );
}

#[test]
fn subscription_throttling_is_waited_out() {
    let throttle = Throttle {
        read_capacity: 5.0,
        read_refill: 5.0,
        ..Throttle::default()
    };
    let emu = emulator(Config {
        subscriptions: 1,
        throttle,
        ..Config::default()
    });
    let b = batch(&emu, json!({}));
    for _ in 0..12 {
        add(&b, json!({"url": pim_url(0)}));
    }
    let run = execute(&b, 12);
    assert!(run.results.iter().all(|r| r.status == 200));
    assert!(b.progress().throttled > 0, "the bucket ran dry");
    let r = run.results.last().unwrap();
    assert!(
        r.headers
            .contains_key("x-ms-ratelimit-remaining-subscription-reads"),
        "{:?}",
        r.headers
    );
}

#[test]
fn broken_batches_are_retried_for_reads() {
    // One batch at a time, so the seed fixes the whole fault sequence (and the
    // test's duration: consecutive failures of the same items back off 0.8 s,
    // 1.6 s, 3.2 s, ...).
    const SEED: u64 = 6;
    let faults = Faults {
        seed: SEED,
        envelope_503: 0.08,
        envelope_429: 0.05,
        envelope_500: 0.04,
        reset: 0.04,
        truncate: 0.04,
        retry_after_secs: 0,
        ..Faults::default()
    };
    let emu = emulator(Config {
        subscriptions: 40,
        faults,
        ..Config::default()
    });
    let b = batch(
        &emu,
        json!({"maxAttempts": 30, "batchSize": 5, "concurrency": 1}),
    );
    for i in 0..40 {
        add(&b, json!({"url": pim_url(i)}));
    }
    let run = execute(&b, 40);
    assert!(
        run.results.iter().all(|r| r.status == 200),
        "{:?}",
        run.results.iter().find(|r| r.status != 200)
    );
    let statuses: Vec<u16> = emu.batches().iter().map(|b| b.status).collect();
    assert!(
        statuses.iter().filter(|&&s| s != 200).count() >= 2,
        "faults were injected: {statuses:?}"
    );
}

#[test]
fn a_lost_answer_leaves_writes_unknown_and_never_repeats_them() {
    let cost = |i: usize| {
        format!(
            "/subscriptions/{}/providers/Microsoft.CostManagement/query?api-version=2023-03-01",
            sub(i)
        )
    };
    // The answer is cut off after the items ran.
    let emu = emulator(Config {
        subscriptions: 2,
        faults: Faults {
            truncate: 1.0,
            ..Faults::default()
        },
        ..Config::default()
    });
    let b = batch(&emu, json!({"maxAttempts": 2}));
    add(
        &b,
        json!({"id": "cost", "method": "POST", "url": cost(0), "body": {"type": "ActualCost", "timeframe": "MonthToDate"}}),
    );
    add(&b, json!({"id": "read", "url": pim_url(1)}));
    let run = execute(&b, 2);
    let (cost_r, read_r) = (&run.results[0], &run.results[1]);
    assert_eq!(
        (
            cost_r.status,
            cost_r.error.as_ref().unwrap().code.as_str(),
            cost_r.attempts
        ),
        (0, "OutcomeUnknown", 1)
    );
    assert_eq!(
        (
            read_r.status,
            read_r.error.as_ref().unwrap().code.as_str(),
            read_r.attempts
        ),
        (0, "InvalidResponse", 2)
    );
    let posts = emu.ops().iter().filter(|o| o.method == "POST").count();
    assert_eq!(posts, 1, "the POST ran once and was not sent again");

    // With the opt-in, the write is sent again.
    let emu = emulator(Config {
        subscriptions: 2,
        faults: Faults {
            reset: 1.0,
            ..Faults::default()
        },
        ..Config::default()
    });
    let b = batch(&emu, json!({"maxAttempts": 2, "retryNonIdempotent": true}));
    add(
        &b,
        json!({"method": "POST", "url": cost(0), "body": {"type": "ActualCost"}}),
    );
    let r = &execute(&b, 1).results[0];
    assert_eq!(
        (r.attempts, r.error.as_ref().unwrap().code.as_str()),
        (2, "InvalidResponse")
    );
}

#[test]
fn next_links_are_followed_and_merged() {
    let emu = emulator(Config {
        subscriptions: 12,
        ..Config::default()
    });
    let b = batch(&emu, json!({"followNextLink": true}));
    for i in 0..12 {
        add(
            &b,
            json!({"url": format!("/subscriptions/{}/providers/Microsoft.Batch/batchAccounts?api-version=2024-07-01", sub(i))}),
        );
    }
    let run = execute(&b, 12);
    for (i, r) in run.results.iter().enumerate() {
        let n = batch_account_count(i);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body["value"].as_array().unwrap().len(),
            n,
            "subscription {i}"
        );
        assert_eq!(r.pages as usize, n.div_ceil(2).max(1), "subscription {i}");
        assert!(r.body.get("nextLink").is_none());
        let names: Vec<&str> = r.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        let want: Vec<String> = (0..n).map(|k| format!("batch{i}x{k}")).collect();
        assert_eq!(names, want);
    }
}

#[test]
fn next_links_to_other_hosts_are_not_followed() {
    let emu = emulator(Config {
        subscriptions: 6,
        next_link_base: Some("https://evil.example".into()),
        ..Config::default()
    });
    let b = batch(&emu, json!({"followNextLink": true}));
    add(
        &b,
        json!({"url": format!("/subscriptions/{}/providers/Microsoft.Batch/batchAccounts?api-version=2024-07-01", sub(5))}),
    );
    let r = &execute(&b, 1).results[0];
    assert_eq!((r.status, r.pages), (200, 1));
    assert!(r.body["nextLink"]
        .as_str()
        .unwrap()
        .starts_with("https://evil.example/"));
    assert_eq!(emu.ops().len(), 1, "only the first page was fetched");
}

#[test]
fn a_wrong_token_fails_every_item_and_never_shows_itself() {
    let emu = emulator(Config::default());
    let secret = "wrong-secret-token-0042";
    let b = batch(&emu, json!({"token": secret}));
    for i in 0..3 {
        add(&b, json!({"url": pim_url(i)}));
    }
    let run = execute(&b, 3);
    for r in &run.results {
        assert_eq!(
            (r.status, r.error.as_ref().unwrap().code.as_str()),
            (401, "InvalidAuthenticationToken")
        );
        let text = serde_json::to_string(r).unwrap();
        assert!(!text.contains(secret));
    }
    assert!(!format!("{:?}", b.options()).contains(secret));
}

#[test]
fn cancel_mid_run_finishes_everything_promptly() {
    let emu = emulator(Config {
        subscriptions: 10,
        latency: Latency::fixed(Duration::from_millis(300)),
        ..Config::default()
    });
    let b = batch(&emu, json!({"concurrency": 1, "batchSize": 5}));
    for i in 0..100 {
        add(&b, json!({"url": pim_url(i % 10)}));
    }
    b.start().unwrap();
    let mut got = vec![];
    while got.len() < 5 {
        if let azbatch::Next::Item(r) = b.next(Duration::from_secs(5)).unwrap() {
            got.push(r);
        }
    }
    let t = Instant::now();
    b.cancel();
    got.extend(drain(&b, Duration::from_secs(5)));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "cancel returned promptly"
    );
    let mut ids: Vec<usize> = got.iter().map(|r| r.index).collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..100).collect::<Vec<_>>(),
        "every request exactly once"
    );
    let cancelled = got
        .iter()
        .filter(|r| r.error.as_ref().is_some_and(|e| e.code == "Cancelled"))
        .count();
    assert!(cancelled >= 80, "{cancelled} cancelled");
    assert!(b.add_json(r#"{"url":"/x"}"#).is_err());
}

#[test]
fn the_deadline_bounds_a_run() {
    let emu = emulator(Config {
        subscriptions: 2,
        latency: Latency::fixed(Duration::from_secs(3)),
        ..Config::default()
    });
    let b = batch(&emu, json!({"timeoutSeconds": 0.5}));
    add(&b, json!({"url": pim_url(0)}));
    let t = Instant::now();
    let r = &execute(&b, 1).results[0];
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(
        (r.status, r.error.as_ref().unwrap().code.as_str()),
        (0, "Timeout")
    );
}

#[test]
fn an_unreachable_endpoint_fails_cleanly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = format!(
        r#"{{"api":"arm","endpoint":"http://127.0.0.1:{port}","maxAttempts":2,"jitter":false}}"#
    );
    let b = azbatch::Job::new(azbatch::Options::from_json(&o).unwrap());
    b.add_json(r#"{"url":"/subscriptions?api-version=2022-12-01"}"#)
        .unwrap();
    let r = &b.execute().unwrap().results[0];
    assert_eq!(
        (
            r.status,
            r.attempts,
            r.error.as_ref().unwrap().code.as_str()
        ),
        (0, 2, "ConnectionFailed")
    );
}

#[test]
fn resource_group_lifecycle_through_batches() {
    let emu = emulator(Config {
        subscriptions: 1,
        ..Config::default()
    });
    let url = format!(
        "/subscriptions/{}/resourcegroups/demo?api-version=2021-04-01",
        sub(0)
    );
    let steps = [
        (
            json!({"method": "PUT", "url": url, "body": {"location": "westeurope"}}),
            201,
        ),
        (
            json!({"method": "PATCH", "url": url, "body": {"tags": {"env": "test"}}}),
            200,
        ),
        (json!({"method": "GET", "url": url}), 200),
        (json!({"method": "DELETE", "url": url}), 202),
        (json!({"method": "GET", "url": url}), 404),
    ];
    for (req, status) in steps {
        let b = batch(&emu, json!({}));
        add(&b, req.clone());
        let r = &execute(&b, 1).results[0];
        assert_eq!(r.status, status, "{req}");
        if status == 404 {
            assert_eq!(r.error.as_ref().unwrap().code, "ResourceGroupNotFound");
        }
    }
}

#[test]
fn arm_dependencies_are_ordered_client_side_with_references() {
    let emu = emulator(Config {
        subscriptions: 1,
        ..Config::default()
    });
    let b = batch(&emu, json!({}));
    let url = format!(
        "/subscriptions/{}/resourcegroups/app?api-version=2021-04-01",
        sub(0)
    );
    // Added last-first: the read depends on the tag update, which depends on the create.
    add(
        &b,
        json!({"id": "read", "url": "{{rg.body.id}}?api-version=2021-04-01", "dependsOn": ["rg", "tag"]}),
    );
    add(
        &b,
        json!({"id": "tag", "method": "PATCH", "url": url, "body": {"tags": {"owner": "{{rg.body.name}}"}}, "dependsOn": ["rg"]}),
    );
    add(
        &b,
        json!({"id": "rg", "method": "PUT", "url": url, "body": {"location": "westeurope"}}),
    );
    let run = execute(&b, 3);
    assert_eq!(
        run.results.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 201]
    );
    assert_eq!(run.results[0].body["tags"], json!({"owner": "app"}));
    let sizes: Vec<usize> = emu.batches().iter().map(|b| b.items).collect();
    assert_eq!(sizes, [1, 1, 1], "three rounds, one per level");
}
