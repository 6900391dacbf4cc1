//! The benchmark's rows against the plain server (`azbatch_emulator::plain`):
//! limits that say nothing but 429 and, where the service sends it,
//! `Retry-After`, as a service written apart from AzBatch answers. Beside
//! the emulator's rows in the same run, so both kinds of server are measured
//! together.

use azbatch_emulator::arm::model::subscription_id;
use azbatch_emulator::graph::model::user_id;
use azbatch_emulator::{Calls, Latency, PlainRule};

use super::{Workload, BATCH, CONCURRENCY};

/// Compute's documented policy shape (a count refilled over three minutes,
/// `HighCostGet3Min`), here with a hundred calls.
const PROVIDER_CALLS: f64 = 100.0;
const PROVIDER_PERIOD_SECONDS: f64 = 180.0;

/// The workloads, `n` scaling their counts.
pub(super) fn workloads(n: &impl Fn(usize) -> usize, latency: Latency) -> Vec<Workload> {
    let vms = (0..n(150))
        .map(|i| {
            format!(
                "/subscriptions/{}/providers/Microsoft.Compute/virtualMachines?api-version=2024-03-01&n={i}",
                subscription_id(0)
            )
        })
        .collect();
    let policies = (0..n(20))
        .map(|i| format!("/identity/conditionalAccess/policies?n={i}"))
        .collect();
    let reads = (0..n(600)).map(|i| super::read_url(i, 1)).collect();
    let mut rows = vec![
        Workload::arm(
            "m",
            format!(
                "(m) {} ARM reads, a provider's policy of 100 per 3 minutes",
                n(150)
            ),
            1,
            vms,
            latency,
        )
        .plain(vec![PlainRule {
            url_contains: "/providers/microsoft.compute/".into(),
            calls: Calls::All,
            capacity: PROVIDER_CALLS,
            per_second: PROVIDER_CALLS / PROVIDER_PERIOD_SECONDS,
            retry_after: true,
        }]),
        Workload::graph(
            "n",
            format!(
                "(n) {} Conditional Access reads, 1 a second, 429 without Retry-After",
                n(20)
            ),
            "GET",
            policies,
            latency,
        )
        .plain(vec![PlainRule {
            url_contains: "/identity/conditionalaccess/".into(),
            calls: Calls::All,
            capacity: 1.0,
            per_second: 1.0,
            retry_after: false,
        }]),
        Workload::arm(
            "o",
            format!(
                "(o) {} ARM reads, a subscription bucket of 250 + 10/s",
                n(600)
            ),
            1,
            reads,
            latency,
        )
        .plain(vec![PlainRule::bucket(250.0, 10.0)]),
    ];
    rows.extend(graph_workloads(n, latency));
    rows
}

/// Graph's user updates against a bucket no unit header describes, and
/// against no limit at all (the latency bound).
fn graph_workloads(n: &impl Fn(usize) -> usize, latency: Latency) -> Vec<Workload> {
    let users: Vec<String> = (0..n(2_000))
        .map(|i| format!("/users/{}", user_id(i)))
        .collect();
    vec![
        Workload::graph(
            "p",
            format!(
                "(p) {} Graph user updates, a bucket of 400 + 40/s",
                n(2_000)
            ),
            "PATCH",
            users.clone(),
            latency,
        )
        .plain(vec![PlainRule::bucket(400.0, 40.0)]),
        Workload::graph(
            "q",
            format!(
                "(q) {} Graph user updates, no limit (latency-bound)",
                n(2_000)
            ),
            "PATCH",
            users,
            latency,
        )
        .plain(vec![]),
    ]
}

/// The ideal against `rules`: the latency bound, or the slowest rule's
/// bucket (what it holds at the start goes at once, the rest at its rate).
/// The plain server answers a batch after one delay (the emulator, after
/// its slowest item's), so the latency bound is each of the
/// [`CONCURRENCY`] slots sending its share of the batches one after
/// another, each taking the mean delay.
pub(super) fn ideal(w: &Workload, rules: &[PlainRule]) -> f64 {
    let bucket = rules
        .iter()
        .map(|r| {
            let lower = r.url_contains.to_ascii_lowercase();
            let met = w
                .urls
                .iter()
                .filter(|u| u.to_ascii_lowercase().contains(&lower))
                .count() as f64;
            (met - r.capacity).max(0.0) / r.per_second
        })
        .fold(0.0, f64::max);
    let mean = (w.latency.min + w.latency.max).as_secs_f64() / 2.0;
    let rounds = w.urls.len().div_ceil(BATCH).div_ceil(CONCURRENCY);
    (rounds as f64 * mean).max(bucket)
}
