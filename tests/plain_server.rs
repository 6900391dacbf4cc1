//! The engine against a server of our own that knows nothing of the
//! emulator's headers: each item 200 or 429, with `Retry-After` or without
//! (`azbatch_emulator::plain`). Every request must succeed, and past its cold
//! start (what was in flight when the bucket ran dry, and the few spans the
//! engine learns the rate from) it must stay under the limit: under 2% of
//! the later attempts 429.

// The server answers on real sockets, in real time.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use azbatch::{Job, Options};
use azbatch_emulator::{Calls, Latency, PlainRule, PlainServer};
use serde_json::json;

fn job(server: &PlainServer, api: &str) -> Job {
    azbatch::log::init_from_env();
    let o = json!({"api": api, "endpoint": server.url(), "token": "plain-token", "jitter": false});
    Job::new(Options::from_json(&o.to_string()).expect("valid options"))
}

/// When a run is past its cold start, from the server's start (as
/// `src/engine/pacing_tests.rs` has it).
const WARM: Duration = Duration::from_secs(5);

/// Runs `requests` and checks every one succeeded; the answers' share of
/// 429 overall and past [`WARM`], and how many answers came past it.
fn run(server: &PlainServer, api: &str, requests: Vec<serde_json::Value>) -> (f64, f64, usize) {
    let b = job(server, api);
    let n = requests.len();
    for r in requests {
        b.add_json(&r.to_string()).expect("request accepted");
    }
    let run = b.execute().expect("runs");
    assert_eq!(run.results.len(), n, "one result per request");
    let failed: Vec<_> = run.results.iter().filter(|r| r.status != 200).collect();
    assert!(failed.is_empty(), "every request succeeds: {failed:?}");
    let answers = server.answers();
    let share = |a: &[(Duration, u16)]| {
        a.iter().filter(|(_, s)| *s == 429).count() as f64 / a.len().max(1) as f64
    };
    // Past the cold start (the first 429s, the spans the engine learns
    // from, the wave of retries): as the paced-clock tests count it.
    let later: Vec<_> = answers
        .iter()
        .copied()
        .filter(|(at, _)| *at >= WARM)
        .collect();
    eprintln!(
        "{} attempts for {n} requests; 429: {:.1}% overall, {:.1}% of {} past the cold start",
        answers.len(),
        share(&answers) * 100.0,
        share(&later) * 100.0,
        later.len()
    );
    (share(&answers), share(&later), later.len())
}

fn latency() -> Latency {
    Latency {
        min: Duration::from_millis(20),
        max: Duration::from_millis(60),
    }
}

/// Runs `requests` against a plain server keeping `rules`: every request
/// succeeds, the run goes on past its cold start (more than `answers_past`
/// answers), and from then on under 2% of the attempts are 429.
fn stays_under_the_limit(
    rules: Vec<PlainRule>,
    api: &str,
    requests: Vec<serde_json::Value>,
    answers_past: usize,
) {
    let server = PlainServer::start(rules, latency()).unwrap();
    let (_, later, seen) = run(&server, api, requests);
    assert!(seen > answers_past, "answers past the cold start: {seen}");
    assert!(
        later < 0.02,
        "under 2% 429 once learned: {:.1}%",
        later * 100.0
    );
}

fn user_patches(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| json!({"method": "PATCH", "url": format!("/users/u{i}"), "body": {"jobTitle": "x"}}))
        .collect()
}

/// ARM reads against a bucket slower than ARM documents (250, refilled at 20
/// a second): no rate header, only 429 and Retry-After.
#[test]
fn arm_learns_a_slower_bucket_from_429_and_retry_after_alone() {
    let reads = (0..600)
        .map(|i| json!({"url": format!("/subscriptions/s1/resourceGroups?api-version=2021-04-01&n={i}")}))
        .collect();
    stays_under_the_limit(vec![PlainRule::bucket(250.0, 20.0)], "arm", reads, 100);
}

/// Graph writes against a bucket whose 429s name no time (as Conditional
/// Access answers): the engine backs off without being told how long.
#[test]
fn graph_backs_off_from_429s_without_retry_after() {
    let rule = PlainRule {
        url_contains: "/users/".into(),
        calls: Calls::Writes,
        capacity: 40.0,
        per_second: 10.0,
        retry_after: false,
    };
    stays_under_the_limit(vec![rule], "graph", user_patches(160), 50);
}

/// A Graph workload that sends no unit headers (most do not): 400 + 40/s,
/// as the issue measured it, shrunk.
#[test]
fn graph_learns_a_bucket_without_unit_headers() {
    stays_under_the_limit(
        vec![PlainRule::bucket(100.0, 50.0)],
        "graph",
        user_patches(700),
        100,
    );
}

/// Invoke-MgGraphRequest's users mix versions: `v1.0/users/x` and
/// `/beta/users/x` (and the absolute forms) in one run. Each batch goes to
/// one version's endpoint, its items' URLs relative to it.
#[test]
fn graph_versions_mixed_in_one_run_travel_in_batches_of_their_own() {
    let server = PlainServer::start(vec![], latency()).unwrap();
    let b = job(&server, "graph");
    let url = server.url();
    let requests = [
        json!({"id": "a", "url": "v1.0/users/a"}),
        json!({"id": "b", "url": "/beta/users/b?$select=id"}),
        json!({"id": "c", "url": "/users/c"}),
        json!({"id": "d", "url": format!("{url}/beta/me")}),
        json!({"id": "e", "method": "PATCH", "url": "BETA/users/e", "body": {"city": "Oslo"}}),
    ];
    for r in &requests {
        b.add_json(&r.to_string()).expect("request accepted");
    }
    let run = b.execute().expect("runs");
    assert!(
        run.results.iter().all(|r| r.status == 200),
        "{:?}",
        run.results
    );
    let mut sent: Vec<(String, String)> = server
        .batches()
        .into_iter()
        .flat_map(|(path, urls)| urls.into_iter().map(move |u| (path.clone(), u)))
        .collect();
    sent.sort();
    let want = [
        ("/beta/$batch", "/me"),
        ("/beta/$batch", "/users/b?$select=id"),
        ("/beta/$batch", "/users/e"),
        ("/v1.0/$batch", "/users/a"),
        ("/v1.0/$batch", "/users/c"),
    ];
    let sent: Vec<(&str, &str)> = sent.iter().map(|(p, u)| (p.as_str(), u.as_str())).collect();
    assert_eq!(sent, want);
    // The results name each request as it was given.
    let urls: Vec<&str> = run.results.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(urls[1], "/beta/users/b?$select=id", "{urls:?}");
}
