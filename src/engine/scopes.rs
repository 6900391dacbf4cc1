//! Throttle scopes: the unit a service throttles by. ARM counts per
//! subscription (calls outside one count for the tenant) and kind of call
//! (reads, writes, deletes), each with its token bucket ([`Bucket`]); Graph
//! counts per app, so one scope holds every Graph request, with the app's
//! resource units as its bucket, except that Outlook takes at most four
//! requests at once per mailbox.
//!
//! A request waits here while its scope cannot take it: its bucket lacks what it costs,
//! the scope is paused after a 429 (until its `Retry-After`), or it has as
//! many in flight as its window allows. After a pause a scope restarts with
//! one batch's worth in flight and grows by one for every second success (by
//! half each round trip: doubling, as TCP's slow start does, overshoots the
//! refill a pause left by up to a round trip's worth, and here every
//! overshoot is a 429) until it is unlimited again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::bucket::Bucket;
use super::providers::Providers;
use crate::dialect::arm::{provider_policies, REMAINING_RESOURCE};
use crate::dialect::graph::{self, APP, OUTLOOK_CONCURRENCY, RESOURCE_UNIT, THROTTLE_PERCENT};
use crate::dialect::{arm, ItemAnswer};
use crate::limiter::Learned;

/// Whether scope `key`'s bucket is Graph's resource units (the app's scope),
/// which its answers' `x-ms-resource-unit` and limit percentage correct.
fn counts_units(key: &str) -> bool {
    key == APP
}

const UNLIMITED: usize = usize::MAX;

/// After a pause a scope's window grows by one for every this many
/// successes: by half each round trip.
const RAMP: usize = 2;

/// What a request takes from each of its operation's policies: one call
/// (ARM's providers and Graph's services count calls, not units).
const CALL: f64 = 1.0;

/// The most a Graph request is charged, whatever `x-ms-resource-unit` says.
const MAX_COST: f64 = 100.0;

/// Where a request stood in its bucket when it was sent, read with its answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Mark {
    /// The bucket's units sent, this request's included.
    at: f64,
    /// What the request was charged.
    charged: f64,
}

impl Mark {
    /// What the request was charged.
    pub fn charged(&self) -> f64 {
        self.charged
    }
}

/// What a Graph answer said of the app's resource units.
#[derive(Debug, Clone, Copy, Default)]
struct Units {
    /// `x-ms-resource-unit`: what the request cost.
    cost: Option<f64>,
    /// `x-ms-throttle-limit-percentage`: the fraction of the limit used.
    used: Option<f64>,
}

struct Scope {
    until: Option<Instant>,
    window: usize,
    /// The widest the window gets: unlimited, or Outlook's four.
    max_window: usize,
    in_flight: usize,
    /// Requests waiting.
    held: VecDeque<Held>,
    /// The scope's bucket: ARM's, or the Graph app's resource units; none
    /// for a mailbox.
    bucket: Option<Bucket>,
    /// What a read and a write cost from the bucket: one, or for Graph what
    /// `x-ms-resource-unit` said last.
    costs: [f64; 2],
    /// The resource providers' own limits its requests met (ARM).
    providers: Providers,
    /// Successes since its window last grew: after a pause it grows by one
    /// for every [`RAMP`] of them.
    ramp: usize,
}

/// What a request takes from its scope's bucket: what a read or a write
/// costs there, unless its API prices the call itself (SharePoint's
/// resource units by kind of call).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Call {
    pub read: bool,
    pub cost: Option<f64>,
}

impl From<bool> for Call {
    /// A read or not, at the scope's cost.
    fn from(read: bool) -> Call {
        Call { read, cost: None }
    }
}

/// A request waiting in its scope.
#[derive(Debug, Clone)]
struct Held {
    idx: usize,
    call: Call,
    /// Its operation, as a provider's limits see it.
    op: Option<String>,
}

impl Scope {
    /// How many held requests the window has room for.
    fn room(&self) -> usize {
        self.window
            .saturating_sub(self.in_flight)
            .min(self.held.len())
    }

    fn cost(&self, call: Call) -> f64 {
        call.cost.unwrap_or(self.costs[usize::from(!call.read)])
    }

    /// What the first `n` held requests cost.
    fn cost_of_first(&self, n: usize) -> f64 {
        self.held.iter().take(n).map(|h| self.cost(h.call)).sum()
    }

    /// The bucket, when it holds requests back.
    fn holding_bucket(&mut self) -> Option<&mut Bucket> {
        self.bucket.as_mut().filter(|b| b.active())
    }

    /// How many held requests may go now: room in the window, and units
    /// for a batch's worth (or all that is held) rather than one at a time.
    fn can_release(&mut self, restart: usize, now: Instant) -> usize {
        let room = self.room();
        let want = self.cost_of_first(room.min(restart));
        let Some((have, full)) = self
            .holding_bucket()
            .map(|b| (b.available(now), b.capacity()))
        else {
            return room;
        };
        // A bucket smaller than a batch's worth (one a second) lets out
        // what it holds when it is full.
        let want = want.min(full);
        if have < want {
            self.starve();
        }
        if have < want {
            return 0;
        }
        let (mut n, mut spent) = (0, 0.0);
        for h in self.held.iter().take(room) {
            spent += self.cost(h.call);
            if spent > have {
                break;
            }
            n += 1;
        }
        if n < self.held.len() {
            // More waits than goes: the scope wants more than it is let send.
            self.starve();
        }
        n
    }

    /// The scope wants more than its limits let out.
    fn starve(&mut self) {
        if let Some(b) = self.holding_bucket() {
            b.starved();
        }
    }
}

pub(super) struct Scopes {
    map: HashMap<String, Scope>,
    /// Scopes with requests waiting in `held`.
    waiting: HashSet<String>,
    /// Requests released from `held`, already counted in flight.
    released: HashSet<usize>,
    /// Requests held, in all scopes.
    held: usize,
    /// For each request in flight in a scope with a bucket, where it stood.
    marks: HashMap<usize, Mark>,
    /// Window after a pause: one batch.
    restart: usize,
    /// A window this large is as good as none.
    open: usize,
    /// How the cloud's ARM counts calls: the seeds of its buckets.
    arm_model: arm::Model,
}

impl Scopes {
    pub fn new(batch_size: usize, concurrency: usize) -> Scopes {
        Scopes {
            map: HashMap::new(),
            waiting: HashSet::new(),
            released: HashSet::new(),
            held: 0,
            marks: HashMap::new(),
            restart: batch_size.max(1),
            open: batch_size * concurrency * 2,
            arm_model: arm::Model::default(),
        }
    }

    /// These scopes, seeding ARM's buckets as `model` documents them.
    pub fn with_arm_model(mut self, model: arm::Model) -> Scopes {
        self.arm_model = model;
        self
    }

    fn scope(&mut self, key: &str, now: Instant) -> &mut Scope {
        let model = self.arm_model;
        self.map.entry(key.to_string()).or_insert_with(|| {
            let max_window = if key.starts_with("mailbox/") {
                OUTLOOK_CONCURRENCY
            } else {
                UNLIMITED
            };
            let bucket = match arm::bucket(key) {
                Some(arm) => {
                    let own = Bucket::new(arm.kind.seed(model), now);
                    let global = arm.global.and(arm.kind.global_seed(model));
                    Some(match global {
                        Some(seed) => own.within(seed),
                        None => own,
                    })
                }
                None if counts_units(key) => Some(Bucket::graph(now)),
                None => graph::seed(key).map(|seed| Bucket::new(seed, now)),
            };
            Scope {
                until: None,
                window: max_window,
                max_window,
                in_flight: 0,
                held: VecDeque::new(),
                bucket,
                costs: [1.0, 1.0],
                providers: Providers::default(),
                ramp: 0,
            }
        })
    }

    /// Whether request `idx` of scope `key` (a read or not, of provider
    /// operation `op`) may be sent now. When it may not, it is held until
    /// its scope can take it.
    pub fn admit(
        &mut self,
        key: &str,
        idx: usize,
        call: impl Into<Call>,
        op: Option<&str>,
        now: Instant,
    ) -> bool {
        let call = call.into();
        if self.released.remove(&idx) {
            return true;
        }
        let s = self.scope(key, now);
        if let Some(op) = op {
            s.providers
                .know(op, crate::dialect::documented_policies(op), now);
        }
        let paused = s.until.is_some_and(|t| t > now);
        let blocked = paused || s.in_flight >= s.window || !s.held.is_empty();
        let cost = s.cost(call);
        let providers_lack = !blocked && s.providers.available(op, now) < CALL;
        if providers_lack {
            s.providers.starve(op);
        }
        if blocked || providers_lack || !s.bucket.as_mut().is_none_or(|b| b.take(cost, now)) {
            s.held.push_back(Held {
                idx,
                call,
                op: op.map(str::to_string),
            });
            self.held += 1;
            self.waiting.insert(key.to_string());
            return false;
        }
        s.providers.take(idx, op, CALL, now);
        s.in_flight += 1;
        if let Some(at) = s.bucket.as_ref().map(Bucket::sent) {
            self.marks.insert(idx, Mark { at, charged: cost });
        }
        true
    }

    /// Request `idx`, admitted but not sent after all (its batch waits for
    /// company): its next admission is granted without counting it again.
    pub fn keep_admitted(&mut self, idx: usize) {
        self.released.insert(idx);
    }

    /// Whether requests were released or admitted that have not gone yet.
    pub fn released_unsent(&self) -> bool {
        !self.released.is_empty()
    }

    /// Request `idx` of scope `key`, released but not sent, when the
    /// service is about to say the scope is throttled: it waits in the scope
    /// again, first in line, and what its release took of the buckets is
    /// given back (it takes it again when released again). False when `idx`
    /// was not waiting to go.
    pub fn recall(&mut self, key: &str, idx: usize, call: Call, op: Option<&str>) -> bool {
        if !self.released.remove(&idx) {
            return false;
        }
        let Some(s) = self.map.get_mut(key) else {
            return false;
        };
        s.in_flight = s.in_flight.saturating_sub(1);
        let charged = self.marks.remove(&idx).map(|m| m.charged);
        s.providers.give_back(idx, op, CALL);
        if let (Some(b), Some(cost)) = (s.bucket.as_mut(), charged) {
            b.give_back(cost);
        }
        s.held.push_front(Held {
            idx,
            call,
            op: op.map(str::to_string),
        });
        self.held += 1;
        self.waiting.insert(key.to_string());
        true
    }

    /// Request `idx` of scope `key` came back (whatever its answer); where
    /// it stood in its bucket, for [`Scopes::observe`] and [`Scopes::observe_units`].
    pub fn landed(&mut self, key: &str, idx: usize) -> Option<Mark> {
        if let Some(s) = self.map.get_mut(key) {
            s.in_flight = s.in_flight.saturating_sub(1);
            s.providers.landed(idx);
        }
        self.marks.remove(&idx)
    }

    /// What the answer to a request of scope `key` (a read or not), sent at
    /// `mark`, says of its bucket: ARM's calls left
    /// (`x-ms-ratelimit-remaining-*`), Graph's resource units. A 429 says
    /// nothing of what a request cost.
    pub fn observe_answer(
        &mut self,
        key: &str,
        read: bool,
        op: Option<&str>,
        answer: &ItemAnswer,
        mark: Mark,
        now: Instant,
    ) {
        if let (Some(op), Some(s)) = (op, self.map.get_mut(key)) {
            s.providers.answered(op);
            if let Some(value) = answer.header(REMAINING_RESOURCE) {
                let settled = s.in_flight == 0;
                let left = provider_policies(&value);
                s.providers
                    .observe(op, &left, s.in_flight as f64, settled, now);
            }
        }
        if let Some(arm) = arm::bucket(key) {
            if let Some(n) = answer.number(arm.remaining) {
                self.observe(key, n, mark, now);
            }
            let global = arm.global.and_then(|h| answer.number(h));
            let settled = self.map.get(key).is_some_and(|s| s.in_flight == 0);
            if let (Some(n), Some(b)) = (global, self.bucket_of(key)) {
                b.observe_shared(n, mark.at, settled, now);
            }
        } else if key == graph::SHAREPOINT {
            // Sent past 80% of the minute's units: what is left of them.
            if let Some(n) = answer.number(graph::RATE_LIMIT_REMAINING) {
                self.observe(key, n, mark, now);
            }
        } else if counts_units(key) && answer.status != 429 {
            let units = Units {
                cost: answer.number(RESOURCE_UNIT),
                used: answer.number(THROTTLE_PERCENT),
            };
            self.observe_units(key, read, units, mark, now);
        }
    }

    fn bucket_of(&mut self, key: &str) -> Option<&mut Bucket> {
        self.map.get_mut(key).and_then(|s| s.bucket.as_mut())
    }

    /// The answer to a request of scope `key`, sent at `mark`, said
    /// `remaining` calls are left.
    fn observe(&mut self, key: &str, remaining: f64, mark: Mark, now: Instant) {
        if let Some(s) = self.map.get_mut(key) {
            let settled = s.in_flight == 0;
            if let Some(b) = s.bucket.as_mut() {
                b.observe(remaining, mark.at, settled, now);
            }
        }
    }

    /// Graph answered a request (a read or not) of scope `key`, sent at
    /// `mark`, saying what it cost (`x-ms-resource-unit`) and how much of the
    /// app's limit is used (`x-ms-throttle-limit-percentage`, a fraction
    /// sent from 0.8 on). Either shows that the service counts resource
    /// units, and from then on the app's bucket holds requests back.
    fn observe_units(&mut self, key: &str, read: bool, answer: Units, mark: Mark, now: Instant) {
        let Some(s) = self.map.get_mut(key) else {
            return;
        };
        let Some(b) = s.bucket.as_mut().filter(|_| counts_units(key)) else {
            return;
        };
        if answer.cost.is_none() && answer.used.is_none() {
            return;
        }
        b.activate();
        let mut at = mark.at;
        if let Some(cost) = answer.cost {
            // Graph documents costs from 1 to a few units; a value beyond
            // that is not believed further than a hundred.
            let cost = cost.clamp(1.0, MAX_COST);
            b.correct(mark.charged, cost);
            s.costs[usize::from(!read)] = cost;
            // The request's own correction is not something sent after it.
            at += cost - mark.charged;
        }
        match answer.used {
            Some(used) => b.observe_used(used, at, now),
            None => b.below_signal(at, now),
        }
    }

    /// The service throttled scope `key` for `wait`, refusing a request
    /// `sent` then: what its bucket's limiter learned, and the rate it paces
    /// at now. When the answer said a provider's `policy` was spent, that
    /// policy's bucket learns instead: the subscription's was not what ran
    /// out.
    pub fn throttled(
        &mut self,
        key: &str,
        wait: Duration,
        policy: Option<&str>,
        now: Instant,
        sent: Instant,
    ) -> Option<(Learned, f64)> {
        let restart = self.restart;
        let s = self.scope(key, now);
        let until = now + wait;
        s.until = Some(s.until.map_or(until, |t| t.max(until)));
        let learned = match policy.and_then(|p| s.providers.throttled(p, now, sent)) {
            Some(learned) => Some(learned),
            None => s
                .bucket
                .as_mut()
                .map(|b| (b.throttled(now, sent), b.per_second())),
        };
        // A 429 that did not follow the rate (a stray one, the scope's
        // noise, or one more of a burst in a scope known to be noisy) is no
        // reason to send less at once.
        let noisy = s.bucket.as_ref().is_some_and(Bucket::noisy);
        let noise = match learned {
            Some((Learned::Stray { .. } | Learned::Noise { .. } | Learned::Undone { .. }, _)) => {
                true
            }
            Some((Learned::Kept { .. }, _)) => noisy,
            _ => false,
        };
        if !noise {
            s.window = restart.min(s.max_window);
            s.ramp = 0;
        }
        learned
    }

    /// A request of scope `key`, sent at `sent`, succeeded, having cost
    /// `units` of its bucket; the scope's new rate when it rose (a quiet
    /// spell let it grow, or the answer completed a measure).
    pub fn succeeded(
        &mut self,
        key: &str,
        op: Option<&str>,
        units: f64,
        now: Instant,
        sent: Instant,
    ) -> Option<f64> {
        let open = self.open;
        let s = self.map.get_mut(key)?;
        s.providers.served(op, CALL, now, sent);
        if s.window < s.max_window {
            s.ramp += 1;
            if s.ramp >= RAMP {
                s.ramp = 0;
                s.window += 1;
            }
            if s.window >= open {
                s.window = s.max_window;
            }
        }
        s.bucket.as_mut().and_then(|b| b.served(units, now, sent))
    }

    /// Until when scope `key` is paused (a time already past, or none, when
    /// it is not).
    pub fn paused_until(&self, key: &str) -> Option<Instant> {
        self.map.get(key).and_then(|s| s.until)
    }

    /// Held requests whose scope can take them now, oldest first.
    pub fn release(&mut self, now: Instant) -> Vec<usize> {
        let mut out = vec![];
        let mut emptied = vec![];
        for key in &self.waiting {
            let s = self.map.get_mut(key).expect("waiting scopes exist");
            if s.until.is_some_and(|t| t > now) {
                continue;
            }
            for _ in 0..s.can_release(self.restart, now) {
                let Some(h) = s.held.front() else {
                    break;
                };
                let cost = s.cost(h.call);
                if s.providers.available(h.op.as_deref(), now) < CALL {
                    // Its provider's policy is spent: it and those behind wait.
                    s.providers.starve(h.op.as_deref());
                    break;
                }
                let Some(Held { idx, op, .. }) = s.held.pop_front() else {
                    break;
                };
                s.providers.take(idx, op.as_deref(), CALL, now);
                if let Some(b) = &mut s.bucket {
                    b.take(cost, now);
                    let at = b.sent();
                    self.marks.insert(idx, Mark { at, charged: cost });
                }
                self.held -= 1;
                s.in_flight += 1;
                self.released.insert(idx);
                out.push(idx);
            }
            if s.held.is_empty() {
                emptied.push(key.clone());
            }
        }
        for k in emptied {
            self.waiting.remove(&k);
        }
        out
    }

    /// When the next scope with waiting requests can send again: its pause
    /// ends, or its bucket holds a batch's worth. A scope that waits for its
    /// window is no reason to wake: only a landing batch opens it (waking for
    /// it would spin).
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        let restart = self.restart;
        self.waiting
            .iter()
            .filter_map(|k| {
                let s = &self.map[k];
                let room = s.room();
                let want = s.cost_of_first(room.min(restart));
                let own = s
                    .bucket
                    .as_ref()
                    .filter(|b| room > 0 && b.active())
                    .map(|b| b.ready_at(want));
                let head = s.held.front().filter(|_| room > 0);
                // A head waiting for its operation's first answer waits for
                // a landing, as one waiting for its window does.
                let provider = head
                    .filter(|h| !s.providers.probing(h.op.as_deref()))
                    .and_then(|h| s.providers.ready_at(h.op.as_deref(), CALL));
                let refilled = own.max(provider);
                match (s.until.filter(|t| *t > now), refilled) {
                    (Some(p), Some(r)) => Some(p.max(r)),
                    (p, r) => p.or(r),
                }
            })
            .filter(|t| *t > now)
            .min()
    }

    /// Whether any request is held.
    pub fn holding(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// How many requests are held, in all scopes.
    pub fn held(&self) -> usize {
        self.held
    }

    #[cfg(test)]
    fn clear_held_for_test(&mut self) {
        for s in self.map.values_mut() {
            s.held.clear();
        }
        self.waiting.clear();
        self.held = 0;
    }

    /// Forgets everything (the run ended early).
    pub fn clear(&mut self) {
        self.map.clear();
        self.waiting.clear();
        self.released.clear();
        self.marks.clear();
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_with(headers: serde_json::Value) -> ItemAnswer {
        ItemAnswer {
            name: "0".into(),
            status: 200,
            headers: headers.as_object().unwrap().clone(),
            body: serde_json::Value::Null,
            base64: false,
        }
    }

    #[test]
    fn sharepoint_units_are_charged_by_kind_of_call_and_corrected_by_its_header() {
        let t0 = Instant::now();
        let mut s = Scopes::new(20, 16);
        let key = graph::SHAREPOINT;
        let listing = Call {
            read: true,
            cost: crate::dialect::graph::sharepoint_cost("GET", "/drives/d/items/root/children"),
        };
        assert_eq!(listing.cost, Some(2.0));
        // The documented 1,250 units a minute: 625 listings at once, not one more.
        assert!((0..625).all(|i| s.admit(key, i, listing, None, t0)));
        assert!(!s.admit(key, 625, listing, None, t0), "the 626th waits");
        s.clear_held_for_test();
        // A service that says fewer units are left than the model thinks:
        // the bucket follows it (here: a fresh scope told 10 are left).
        let mut s = Scopes::new(20, 16);
        assert!(s.admit(key, 0, listing, None, t0));
        let mark = s.landed(key, 0).expect("a bucket marks its requests");
        s.observe_answer(
            key,
            true,
            None,
            &answer_with(serde_json::json!({"RateLimit-Remaining": "10"})),
            mark,
            t0,
        );
        let sent = (1..100)
            .take_while(|&i| s.admit(key, i, listing, None, t0))
            .count();
        assert_eq!(sent, 5, "10 units left: five listings");
    }

    #[test]
    fn the_global_subscription_bucket_paces_when_another_principal_drained_it() {
        let t0 = Instant::now();
        let mut s = Scopes::new(20, 8);
        let key = "subscription-reads/abc";
        assert!(s.admit(key, 0, true, None, t0));
        let mark = s.landed(key, 0).unwrap();
        // The principal's own bucket has plenty; the subscription's global
        // bucket, shared with every principal, has 3 left.
        let headers = serde_json::json!({
            "x-ms-ratelimit-remaining-subscription-reads": "249",
            "x-ms-ratelimit-remaining-subscription-global-reads": "3",
        });
        s.observe_answer(key, true, None, &answer_with(headers), mark, t0);
        assert!(
            (1..4).all(|i| s.admit(key, i, true, None, t0)),
            "the 3 the global bucket has"
        );
        assert!(
            !s.admit(key, 4, true, None, t0),
            "then the global bucket holds them"
        );
        let wake = s.next_wake(t0).expect("a refill to wait for");
        let waited = wake.saturating_duration_since(t0).as_millis();
        assert!(
            (1..=60).contains(&waited),
            "the global bucket refills 15 x 25 a second: {waited} ms"
        );
        // Tenant scopes have no global bucket: its header changes nothing.
        let tenant = "tenant-reads";
        assert!(s.admit(tenant, 10, true, None, t0));
        let mark = s.landed(tenant, 10).unwrap();
        let headers =
            serde_json::json!({"x-ms-ratelimit-remaining-subscription-global-reads": "0"});
        s.observe_answer(tenant, true, None, &answer_with(headers), mark, t0);
        assert!(s.admit(tenant, 11, true, None, t0));
    }

    #[test]
    fn an_empty_bucket_holds_its_requests_until_a_batch_worth_has_refilled() {
        let t0 = Instant::now();
        let mut s = Scopes::new(20, 8);
        let (hot, other) = ("subscription-deletes/hot", "subscription-deletes/other");
        assert!(
            (0..200).all(|i| s.admit(hot, i, true, None, t0)),
            "a full bucket: 200 deletes"
        );
        assert!(
            !s.admit(hot, 200, true, None, t0) && !s.admit(hot, 201, true, None, t0),
            "then they wait"
        );
        assert!(
            s.admit(other, 300, true, None, t0),
            "other scopes have their own bucket"
        );
        assert_eq!(
            s.next_wake(t0),
            Some(t0 + Duration::from_millis(201)),
            "2 held: 2 tokens at 10 a second"
        );
        assert_eq!(
            s.release(t0 + Duration::from_millis(150)),
            Vec::<usize>::new(),
            "one token is not enough for both"
        );
        assert_eq!(s.release(t0 + Duration::from_millis(201)), [200, 201]);
        for i in 202..260 {
            assert!(!s.admit(hot, i, true, None, t0 + Duration::from_millis(201)));
        }
        let t1 = t0 + Duration::from_millis(201);
        assert_eq!(
            s.next_wake(t1),
            Some(t1 + Duration::from_millis(2000)),
            "a batch of 20 at a time (0.01 token was left)"
        );
        // The first 200 come back; when the model has refilled a batch's
        // worth, the service says it has only 5 left (another client used the rest).
        let marks: Vec<Mark> = (0..200).filter_map(|i| s.landed(hot, i)).collect();
        assert_eq!(marks.len(), 200);
        let t2 = t1 + Duration::from_millis(2000);
        s.observe(hot, 5.0, marks[199], t2);
        assert_eq!(
            s.release(t2),
            Vec::<usize>::new(),
            "5 less the two sent after it"
        );
        assert_eq!(
            s.next_wake(t2),
            Some(t2 + Duration::from_millis(1701)),
            "17 more to refill"
        );
        s.observe(hot, 200.0, marks[199], t2);
        assert_eq!(
            s.release(t2),
            Vec::<usize>::new(),
            "an answer never raises the count"
        );
    }

    #[test]
    fn graph_resource_units_pace_the_app_once_the_service_counts_them() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Scopes::new(20, 8);
        // Nothing said yet: the app's requests go however many there are.
        assert!((0..4000).all(|i| s.admit("app", i, false, None, t0)));
        let unit = |cost, used| Units {
            cost: Some(cost),
            used,
        };
        // Request 0 cost 3 (not the 1 it was charged) and the app had used
        // 0.9 of its limit when it was served, 3,999 requests ago: nothing is
        // left. What the model counted before the service showed that it
        // counts units (500 past its 3,500) is forgiven: it may not all have
        // counted. Request 0's 2 more are not.
        let mark = s.landed("app", 0).expect("the app scope has a bucket");
        s.observe_units("app", false, unit(3.0, Some(0.9)), mark, t0);
        assert!(
            !s.admit("app", 4000, false, None, t0),
            "the bucket holds them now"
        );
        assert!(
            s.admit("mailbox/a", 9000, true, None, t0),
            "mailboxes are not in it"
        );
        assert!(s.admit("other", 9001, true, None, t0), "nor other scopes");
        assert_eq!(s.release(ms(5)), Vec::<usize>::new(), "350 a second");
        let woken = s.next_wake(t0).expect("a refill to wait for");
        let woke = woken.saturating_duration_since(t0).as_millis();
        assert_eq!(
            woke, 15,
            "5 units (2 owed, 3 for the next) at 350 a second, and a millisecond"
        );
        let t1 = woken;
        assert_eq!(
            s.release(t1),
            (4000..4001).collect::<Vec<_>>(),
            "one held, 3 units"
        );
        (1..4000).for_each(|i| {
            s.landed("app", i);
        });
        for i in 4001..4021 {
            assert!(
                !s.admit("app", i, false, None, t1),
                "queued behind the bucket"
            );
        }
        let t2 = s.next_wake(t1).expect("a batch's worth: 60 units");
        let wait = t2.saturating_duration_since(t1).as_millis();
        assert!(
            (170..=175).contains(&wait),
            "60 units at 350 a second: {wait} ms"
        );
        assert_eq!(s.release(t2).len(), 20);
    }

    #[test]
    fn odd_resource_units_are_kept_within_reason() {
        let t0 = Instant::now();
        let units = |cost, used| Units {
            cost: Some(cost),
            used,
        };
        let mut s = Scopes::new(20, 8);
        assert!(s.admit("app", 0, false, None, t0));
        let m = s.landed("app", 0).unwrap();
        s.observe_units("app", false, units(1e300, Some(0.9)), m, t0);
        assert!(
            (1..4).all(|i| s.admit("app", i, false, None, t0))
                && !s.admit("app", 4, false, None, t0),
            "350 units left, a write charged 100 at most"
        );
        let wake = s.next_wake(t0).expect("a refill");
        assert!(wake <= t0 + Duration::from_secs(1), "{wake:?}");
        let mut z = Scopes::new(20, 8);
        assert!(z.admit("app", 0, true, None, t0));
        let m = z.landed("app", 0).unwrap();
        z.observe_units("app", true, units(0.0, None), m, t0);
        assert!(
            (1..3500).all(|i| z.admit("app", i, true, None, t0))
                && !z.admit("app", 3500, true, None, t0),
            "no request costs less than one unit"
        );
    }

    #[test]
    fn a_graph_model_grows_when_the_service_shows_a_larger_limit() {
        let t0 = Instant::now();
        let mut s = Scopes::new(20, 8);
        let cost = Units {
            cost: Some(1.0),
            used: None,
        };
        // The service counts units but says nothing of the limit: less than 0.8 used.
        assert!(s.admit("app", 0, true, None, t0));
        let m = s.landed("app", 0).unwrap();
        s.observe_units("app", true, cost, m, t0);
        let mut sent = 1;
        let mut rounds = 0;
        // Round trips of 500 reads: each answered below the signal.
        while sent < 8000 && rounds < 40 {
            let start = sent;
            while s.admit("app", sent, true, None, t0) {
                sent += 1;
            }
            s.clear_held_for_test();
            let marks: Vec<Mark> = (start..sent).filter_map(|i| s.landed("app", i)).collect();
            for m in marks {
                s.observe_units("app", true, cost, m, t0);
            }
            rounds += 1;
        }
        assert!(
            sent >= 8000,
            "8,000 sent without a wait after {rounds} round trips: {sent}"
        );
        assert!(
            rounds > 3,
            "grown a tenth at a time, once a round trip: {rounds}"
        );
    }

    #[test]
    fn outlook_takes_four_at_once_per_mailbox() {
        let t0 = Instant::now();
        let mut s = Scopes::new(20, 8);
        assert!((0..4).all(|i| s.admit("mailbox/a", i, true, None, t0)));
        assert!(!s.admit("mailbox/a", 4, true, None, t0), "a fifth waits");
        assert!(
            s.admit("mailbox/b", 5, true, None, t0),
            "another mailbox does not"
        );
        s.landed("mailbox/a", 0);
        for _ in 0..100 {
            s.succeeded("mailbox/a", None, 1.0, t0, t0);
        }
        assert_eq!(s.release(t0), [4], "one back, one out");
        assert!(
            !s.admit("mailbox/a", 6, true, None, t0),
            "never more than four, however many succeed"
        );
    }

    #[test]
    fn a_throttle_recalls_what_was_released_but_not_sent() {
        let t0 = Instant::now();
        let key = "subscription-reads/abc";
        let mut s = Scopes::new(2, 2);
        assert!(s.admit(key, 0, true, None, t0));
        s.landed(key, 0);
        s.throttled(key, Duration::from_secs(1), None, t0, t0);
        for i in 1..=4 {
            assert!(!s.admit(key, i, true, None, t0), "paused");
        }
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(s.release(t1), [1, 2], "one batch's worth after the pause");
        let before = s.bucket_of(key).unwrap().available(t1);
        // Throttled again before request 2 went: it waits in its scope again,
        // first in line, and its unit is back in the bucket.
        assert!(s.recall(key, 2, true.into(), None));
        assert!(!s.recall(key, 2, true.into(), None), "only once");
        assert!(!s.recall(key, 3, true.into(), None), "3 was never released");
        assert_eq!(s.held(), 3);
        assert_eq!(s.bucket_of(key).unwrap().available(t1), before + 1.0);
        assert_eq!(s.release(t1), [2], "first in line again");
    }

    #[test]
    fn a_throttled_scope_waits_then_restarts_small_and_grows() {
        let t0 = Instant::now();
        let mut s = Scopes::new(2, 2);
        assert!(s.admit("a", 0, true, None, t0) && s.admit("b", 1, true, None, t0));
        s.landed("a", 0);
        s.throttled("a", Duration::from_secs(1), None, t0, t0);
        assert!(
            !s.admit("a", 2, true, None, t0)
                && !s.admit("a", 3, true, None, t0)
                && !s.admit("a", 4, true, None, t0),
            "paused"
        );
        assert!(s.admit("b", 5, true, None, t0), "other scopes go on");
        assert_eq!(s.held(), 3);
        assert_eq!(s.release(t0), Vec::<usize>::new());
        assert_eq!(s.next_wake(t0), Some(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(s.release(t1), [2, 3], "one batch's worth after the pause");
        assert_eq!(s.held(), 1);
        assert_eq!(
            s.next_wake(t1),
            None,
            "a pause that ended is no reason to wake"
        );
        assert!(
            s.admit("a", 2, true, None, t1) && s.admit("a", 3, true, None, t1),
            "released ones go without asking twice"
        );
        assert!(
            !s.admit("a", 6, true, None, t1),
            "queued behind the held ones"
        );
        s.landed("a", 0);
        s.succeeded("a", None, 1.0, t1, t1);
        assert_eq!(
            s.release(t1),
            [4],
            "one back, one out: the window is as wide"
        );
        s.landed("a", 4);
        s.succeeded("a", None, 1.0, t1, t1);
        assert_eq!(
            s.release(t1),
            [6],
            "every second success widens the window by one"
        );
        assert!(!s.holding() && s.held() == 0);
        for _ in 0..16 {
            s.succeeded("a", None, 1.0, t1, t1);
        }
        for i in 10..30 {
            assert!(s.admit("a", i, true, None, t1), "open again");
        }
    }
}
