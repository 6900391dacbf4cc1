//! Helpers shared by the integration tests: an emulator and a batch aimed at it.

// Bounds on real waits against the emulator (a hang fails, not blocks).
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use azbatch::{Execution, ItemResult, Job, Next, Options};
use azbatch_emulator::{Config, Emulator};
use serde_json::{json, Value};
use std::time::Duration;

pub const TOKEN: &str = "test-token-5f3a9c";

pub fn emulator(config: Config) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        ..config
    })
    .expect("emulator starts")
}

/// A batch for `emu` with extra options merged over the defaults.
pub fn batch(emu: &Emulator, extra: Value) -> Job {
    let mut o = json!({"api": "arm", "endpoint": emu.url(), "token": TOKEN, "jitter": false});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    Job::new(Options::from_json(&o.to_string()).expect("valid options"))
}

pub fn sub(i: usize) -> String {
    azbatch_emulator::arm::model::subscription_id(i)
}

pub fn pim_url(i: usize) -> String {
    format!("/subscriptions/{}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2020-10-01", sub(i))
}

pub fn add(b: &Job, request: Value) {
    b.add_json(&request.to_string()).expect("request accepted");
}

/// Runs the batch and checks the one-result-per-request promise.
pub fn execute(b: &Job, n: usize) -> Execution {
    let run = b.execute().expect("batch runs");
    assert_eq!(run.results.len(), n, "one result per request");
    for (i, r) in run.results.iter().enumerate() {
        assert_eq!(r.index, i, "results in the order added");
    }
    run
}

/// Drains `batch_next`-style until done, with a bound on total time.
pub fn drain(b: &Job, limit: Duration) -> Vec<ItemResult> {
    let start = std::time::Instant::now();
    let mut out = vec![];
    loop {
        assert!(
            start.elapsed() < limit,
            "draining took longer than {limit:?}"
        );
        match b.next(Duration::from_millis(100)).unwrap() {
            Next::Item(r) => out.push(r),
            Next::Timeout => {}
            Next::Done => return out,
        }
    }
}

/// A Graph batch for `emu` with extra options merged over the defaults.
pub fn graph_batch(emu: &Emulator, extra: Value) -> Job {
    let mut o = json!({"api": "graph", "endpoint": emu.url(), "token": TOKEN, "jitter": false});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    Job::new(Options::from_json(&o.to_string()).expect("valid options"))
}
