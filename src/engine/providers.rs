//! Resource providers' own limits, met beside ARM's buckets. A provider
//! (Compute, Network, Storage...) throttles by policies of its own, per
//! subscription, and tells on each answer what is left of every policy the
//! request met (`x-ms-ratelimit-remaining-resource`, read by
//! [`crate::dialect::arm::provider_policies`]). Nothing documents which
//! operations a policy covers, so an operation (a provider's resource type and
//! the kind of call) is taken to meet the policies its last answer named; its
//! next requests leave only when each of those policies' buckets holds what
//! they cost, as well as the subscription's own.
//!
//! A policy's bucket starts as full as its first figure says, refilled over
//! the period its name tells (`HighCostGet3Min`: three minutes), then the
//! figures correct its tokens and its 429s teach its [`crate::limiter::Rate`].
//!
//! Graph's services (identity writes, Intune) have policies of the same kind
//! that no answer counts down: their operations meet them from the start, as
//! documented ([`Providers::know`]), and a 429 whose throttle headers name one
//! teaches it. A policy counts requests, whatever the scope's bucket charges.

use std::collections::{HashMap, HashSet};

use tokio::time::Instant;

use super::bucket::Bucket;
use crate::dialect::arm::policy_period;
use crate::limiter::Learned;

/// How many requests of an operation not answered yet go at once: one
/// batch's worth, so that the first answer (which names the operation's
/// policies and what they have left) comes before a provider's small bucket
/// meets a burst it cannot take.
const PROBE: usize = 20;

#[derive(Debug, Default)]
pub(super) struct Providers {
    /// Each policy's bucket, by its name (`microsoft.compute/highcostget3min`).
    buckets: HashMap<String, Bucket>,
    /// The policies each operation's answers named last.
    met: HashMap<String, Vec<String>>,
    /// Operations answered at least once.
    answered: HashSet<String>,
    /// Requests of operations not answered yet, on the wire, by operation;
    /// and the operation of each such request.
    probing: HashMap<String, usize>,
    probes: HashMap<usize, String>,
}

impl Providers {
    /// The buckets of the policies operation `op` meets.
    fn of<'a>(&'a mut self, op: Option<&str>) -> impl Iterator<Item = &'a mut Bucket> + 'a {
        let names: &[String] = op
            .and_then(|op| self.met.get(op))
            .map_or(&[], Vec::as_slice);
        self.buckets
            .iter_mut()
            .filter(move |(name, _)| names.contains(name))
            .map(|(_, b)| b)
    }

    /// Units the emptiest of `op`'s policies has now (none known: no limit;
    /// an operation not answered yet: none once a batch's worth is out).
    pub fn available(&mut self, op: Option<&str>, now: Instant) -> f64 {
        if let Some(op) = op.filter(|op| !self.answered.contains(*op)) {
            if self.probing.get(op).copied().unwrap_or(0) >= PROBE {
                return 0.0;
            }
        }
        self.of(op)
            .map(|b| b.available(now))
            .fold(f64::INFINITY, f64::min)
    }

    /// Request `idx` of `op` goes: takes `cost` from each of its policies.
    pub fn take(&mut self, idx: usize, op: Option<&str>, cost: f64, now: Instant) {
        if let Some(op) = op.filter(|op| !self.answered.contains(*op)) {
            *self.probing.entry(op.to_string()).or_default() += 1;
            self.probes.insert(idx, op.to_string());
        }
        for b in self.of(op) {
            b.take(cost, now);
        }
    }

    /// Request `idx` of `op` did not go after all: what it took is given back.
    pub fn give_back(&mut self, idx: usize, op: Option<&str>, cost: f64) {
        self.landed(idx);
        for b in self.of(op) {
            b.give_back(cost);
        }
    }

    /// Request `idx` came back, whatever its answer.
    pub fn landed(&mut self, idx: usize) {
        if let Some(op) = self.probes.remove(&idx) {
            if let Some(n) = self.probing.get_mut(&op) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Whether `op` waits for its first answer (not for a refill).
    pub fn probing(&self, op: Option<&str>) -> bool {
        op.is_some_and(|op| !self.answered.contains(op))
    }

    /// `op` wanted more than its policies let out.
    pub fn starve(&mut self, op: Option<&str>) {
        for b in self.of(op) {
            b.starved();
        }
    }

    /// When each of `op`'s policies will hold `want` units (none known: none).
    pub fn ready_at(&self, op: Option<&str>, want: f64) -> Option<Instant> {
        let names = op.and_then(|op| self.met.get(op))?;
        names
            .iter()
            .filter_map(|n| self.buckets.get(n))
            .map(|b| b.ready_at(want))
            .max()
    }

    /// A request of `op`, sent at `sent`, succeeded, having cost `units` of
    /// each policy.
    pub fn served(&mut self, op: Option<&str>, units: f64, now: Instant, sent: Instant) {
        for b in self.of(op) {
            b.served(units, now, sent);
        }
    }

    /// Operation `op` meets `documented` policies from its start (Graph's
    /// services): each a bucket as its documentation sizes it, the operation
    /// known without a probe. Nothing for an operation met before, or none
    /// documented.
    pub fn know(&mut self, op: &str, documented: &[(&str, (f64, f64))], now: Instant) {
        if documented.is_empty() || self.met.contains_key(op) {
            return;
        }
        for (name, seed) in documented {
            self.buckets
                .entry((*name).to_string())
                .or_insert_with(|| Bucket::new(*seed, now));
        }
        let names = documented.iter().map(|(n, _)| (*n).to_string()).collect();
        self.met.insert(op.to_string(), names);
        self.answered.insert(op.to_string());
    }

    /// An answer to a request of `op` came, with or without the figures.
    pub fn answered(&mut self, op: &str) {
        if self.answered.insert(op.to_string()) {
            self.probing.remove(op);
        }
    }

    /// An answer to a request of `op` said what each policy it met has left;
    /// `later` of the scope's requests are on the wire (they will take
    /// theirs too) and `settled` says none is.
    pub fn observe(
        &mut self,
        op: &str,
        left: &[(String, f64)],
        later: f64,
        settled: bool,
        now: Instant,
    ) {
        for (name, remaining) in left {
            let b = self.buckets.entry(name.clone()).or_insert_with(|| {
                // As full as the figure shows, the answered request's one
                // included, refilled over the policy's period.
                let capacity = remaining + 1.0;
                let period = policy_period(name).as_secs_f64();
                Bucket::new((capacity, capacity / period), now)
            });
            let mark = b.sent();
            b.observe(*remaining, mark - later, settled, now);
        }
        let names: Vec<String> = left.iter().map(|(n, _)| n.clone()).collect();
        self.met.insert(op.to_string(), names);
    }

    /// The service refused a request for policy `name` (its figure was 0),
    /// sent at `sent`: what its bucket learned and the rate it paces at now,
    /// if the policy is known.
    pub fn throttled(&mut self, name: &str, now: Instant, sent: Instant) -> Option<(Learned, f64)> {
        self.buckets
            .get_mut(name)
            .map(|b| (b.throttled(now, sent), b.per_second()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_operation_waits_for_the_policies_its_answers_named() {
        let t0 = Instant::now();
        let mut p = Providers::default();
        let op = "microsoft.compute/virtualmachines reads";
        assert_eq!(
            p.available(Some(op), t0),
            f64::INFINITY,
            "nothing known yet"
        );
        p.observe(
            op,
            &[
                ("microsoft.compute/highcostget3min".into(), 2.0),
                ("microsoft.compute/highcostget30min".into(), 500.0),
            ],
            0.0,
            true,
            t0,
        );
        assert_eq!(p.available(Some(op), t0), 2.0, "the emptier policy");
        assert_eq!(
            p.available(Some("microsoft.network/virtualnetworks reads"), t0),
            f64::INFINITY,
            "another operation meets none of them"
        );
        p.answered(op);
        p.take(1, Some(op), 1.0, t0);
        p.take(2, Some(op), 1.0, t0);
        assert!(p.available(Some(op), t0) < 1.0);
        // 3 a 3 minutes: one comes back in a minute.
        let wake = p.ready_at(Some(op), 1.0).unwrap();
        let waited = wake.saturating_duration_since(t0);
        assert!(
            (Duration::from_secs(59)..=Duration::from_secs(61)).contains(&waited),
            "{waited:?}"
        );
        assert!(p
            .throttled("microsoft.compute/highcostget3min", t0, t0)
            .is_some());
        assert!(p.throttled("microsoft.compute/unknown", t0, t0).is_none());
    }

    #[test]
    fn an_operation_not_answered_yet_sends_one_batch_worth() {
        let t0 = Instant::now();
        let mut p = Providers::default();
        let name = "microsoft.compute/virtualmachines reads";
        let op = Some(name);
        for i in 0..PROBE {
            assert!(p.available(op, t0) >= 1.0, "probe {i}");
            p.take(i, op, 1.0, t0);
        }
        assert_eq!(p.available(op, t0), 0.0, "then it waits for an answer");
        assert!(p.probing(op));
        p.landed(0);
        assert!(
            p.available(op, t0) >= 1.0,
            "one came back (a lost batch's, say)"
        );
        p.take(100, op, 1.0, t0);
        p.answered(name);
        assert_eq!(
            p.available(op, t0),
            f64::INFINITY,
            "answered, naming no policy"
        );
        assert!(!p.probing(op) && p.available(None, t0) == f64::INFINITY);
    }
}
