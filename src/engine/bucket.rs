//! The services' token buckets as the client sees them. ARM: one per
//! throttle scope and kind of operation, seeded from Microsoft's documented
//! sizes and refill rates and corrected by the `x-ms-ratelimit-remaining-*`
//! header of every answer. Graph: the app's resource units, charged what
//! `x-ms-resource-unit` says each request costs and corrected by
//! `x-ms-throttle-limit-percentage`. A request leaves only when its bucket
//! holds what it costs, so a 429 is the rare fallback rather than the signal
//! that paces the run.
//!
//! The documented sizes and rates are the dialects' facts
//! ([`crate::dialect::arm::Kind::seed`], [`crate::dialect::graph::UNITS_SEED`]);
//! this file holds only how a bucket fills, drains and is corrected. Its
//! refill rate is a [`Rate`] learned from the answers: a throttle shows the
//! service's bucket is smaller or slower than the model's.

use tokio::time::{Duration, Instant};

use crate::dialect::graph::{SIGNAL_FROM as GRAPH_SIGNAL_FROM, UNITS_SEED as GRAPH_UNITS};
use crate::limiter::{Learned, Rate};

/// The longest a bucket makes a request wait for its refill.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// How much a Graph model grows at a time when the service shows it is larger.
const GROWTH: f64 = 1.1;

/// After a throttle cut its rate, a bucket holds at most this many seconds of
/// its refill (ARM's documented buckets hold 10 to 20): a service slower than
/// believed is not met with the old burst after a quiet spell.
const BURST_SECONDS: f64 = 10.0;
/// Nor less than a batch's worth.
const MIN_BURST: f64 = 20.0;

/// A 429 for a bucket whose answers said it still held this share of its
/// capacity is another limit's, not this bucket running out.
const STRAY_SHARE: f64 = 0.1;

#[derive(Debug, Clone)]
pub(super) struct Bucket {
    /// Units left (requests for ARM, resource units for Graph); below zero
    /// when more was spent than the model had (a cost learned late).
    tokens: f64,
    capacity: f64,
    /// Units added a second: documented, then learned.
    rate: Rate,
    at: Instant,
    /// Units taken from this bucket so far.
    sent: f64,
    /// Whether the bucket holds requests back. A Graph bucket counts from
    /// the start but holds nothing until the service shows it counts
    /// resource units (most of Graph does not).
    active: bool,
    /// Whether it held requests back from the start (a documented bucket),
    /// rather than from what the answers showed.
    holds_from_start: bool,
    /// `sent` when the model last grew: it grows once per round trip.
    grown_at: f64,
    /// Whether the service's answers have told this bucket's state (a
    /// remaining-figure, a unit cost or percentage).
    informed: bool,
    /// The lowest remaining-figure (and its request's mark) the answers told
    /// since the first request sent after the scope last had nothing on the
    /// wire.
    lowest: Option<(f64, f64)>,
    /// Whether the last answer found nothing of the scope on the wire: the
    /// next request taken starts a new span for `lowest` (the answers after
    /// it in the same landing do not: they were served before it too).
    settled: bool,
    /// A bucket the service keeps for every client of the scope together
    /// (ARM's global subscription bucket): a request takes from both, and
    /// the emptier one paces.
    shared: Option<Box<Bucket>>,
}

impl Bucket {
    /// A full bucket of a documented size and refill, as a run that has
    /// sent nothing assumes.
    pub fn new(seed: (f64, f64), now: Instant) -> Bucket {
        Bucket::full(seed, true, now)
    }

    /// Graph's resource units for the app, not yet holding anything.
    pub fn graph(now: Instant) -> Bucket {
        Bucket::full(GRAPH_UNITS, false, now)
    }

    fn full((capacity, refill): (f64, f64), active: bool, now: Instant) -> Bucket {
        Bucket {
            tokens: capacity,
            capacity,
            rate: Rate::new(refill, refill, now),
            at: now,
            sent: 0.0,
            active,
            holds_from_start: active,
            grown_at: 0.0,
            informed: false,
            lowest: None,
            settled: false,
            shared: None,
        }
    }

    /// This bucket, inside one of `seed` that every client shares.
    pub fn within(mut self, seed: (f64, f64)) -> Bucket {
        self.shared = Some(Box::new(Bucket::full(seed, true, self.at)));
        self
    }

    /// Whether the bucket holds requests back.
    pub fn active(&self) -> bool {
        self.active
    }

    /// The service showed that it counts what this bucket models.
    /// Until then it counted everything sent in its scope, much of which the
    /// service may not count (another of Graph's services): what it owes from
    /// before is forgiven, and the answers correct it from here.
    pub fn activate(&mut self) {
        self.informed = true;
        if !self.active {
            self.tokens = self.tokens.max(0.0);
        }
        self.active = true;
    }

    /// How many units have been taken from the bucket: the mark of the
    /// request taken last, for [`Bucket::observe`].
    pub fn sent(&self) -> f64 {
        self.sent
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_second()).min(self.capacity);
        self.at = self.at.max(now);
    }

    /// Takes `cost` units for one request, if the bucket has them (an
    /// inactive bucket always does: it only counts).
    pub fn take(&mut self, cost: f64, now: Instant) -> bool {
        if self.active && self.available(now) < cost {
            self.starved();
            return false;
        }
        self.spend(cost);
        if let Some(shared) = &mut self.shared {
            shared.spend(cost);
        }
        true
    }

    /// `cost` units went out: after a landing that found nothing on the
    /// wire, a new span of answers starts.
    fn spend(&mut self, cost: f64) {
        if self.settled {
            self.settled = false;
            self.lowest = None;
        }
        self.tokens -= cost;
        self.sent += cost;
    }

    /// A request that took `cost` did not go after all: the units are back
    /// (its mark stays counted: answers to requests taken before it read a
    /// little low, never high).
    pub fn give_back(&mut self, cost: f64) {
        self.tokens += cost;
        if let Some(shared) = &mut self.shared {
            shared.tokens += cost;
        }
    }

    /// Units in the bucket now (in the emptier, when one is shared).
    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        match &mut self.shared {
            Some(shared) => self.tokens.min(shared.available(now)),
            None => self.tokens,
        }
    }

    /// The answer to the request marked `mark` said the shared bucket has
    /// `remaining` units left (ARM's `...-global-*` header).
    pub fn observe_shared(&mut self, remaining: f64, mark: f64, settled: bool, now: Instant) {
        if let Some(shared) = &mut self.shared {
            shared.observe(remaining, mark, settled, now);
        }
    }

    /// A request charged `charged` units cost `actual` (Graph's
    /// `x-ms-resource-unit`): the difference is given back or taken.
    pub fn correct(&mut self, charged: f64, actual: f64) {
        self.tokens += charged - actual;
        self.sent += actual - charged;
    }

    /// The answer to the request marked `mark` (see [`Bucket::sent`]) said
    /// `remaining` units are left. The requests taken after it will take
    /// theirs too, so the bucket holds `remaining` less those, or fewer:
    /// answers come back in any order and batches sent together may be
    /// served in another, so an answer can only lower the model's count
    /// (another client of the same principal, a smaller bucket), never raise
    /// it, unless it shows a bucket larger than the model's, or the scope is
    /// `settled` (nothing of it on the wire: every request sent has been
    /// served, so the lowest figure since it last was, less those sent after
    /// its request, is at most what the bucket holds, and what out-of-order
    /// answers lowered too far is given back; not this answer's own figure,
    /// which may come from a request served before another that came back
    /// earlier).
    pub fn observe(&mut self, remaining: f64, mark: f64, settled: bool, now: Instant) {
        self.informed = true;
        self.refill(now);
        let sent = self.sent;
        let estimate = |remaining: f64, mark: f64| (remaining - (sent - mark).max(0.0)).max(0.0);
        // Of the answers of `lowest`'s span, the lowest figure is the one
        // served last, for all the client knows (the last to come back may
        // have been served before another).
        let lowest = match self.lowest {
            Some((r, m)) if r < remaining => (r, m),
            _ => (remaining, mark),
        };
        self.lowest = Some(lowest);
        self.settled = settled;
        if remaining > self.capacity {
            self.capacity = remaining;
            self.tokens = estimate(remaining, mark);
        } else if settled {
            self.tokens = estimate(lowest.0, lowest.1).min(self.capacity);
        } else {
            self.tokens = self.tokens.min(estimate(remaining, mark));
        }
    }

    /// Graph said the app has used `used` of its limit (a fraction, sent
    /// from 0.8 on) when it served the request marked `mark`: what is left
    /// is the rest of the model's capacity.
    pub fn observe_used(&mut self, used: f64, mark: f64, now: Instant) {
        let remaining = (1.0 - used).max(0.0) * self.capacity;
        self.observe(remaining, mark, false, now);
    }

    /// Graph answered the request marked `mark` without saying how much of
    /// the limit is used: less than 0.8. When the model had it nearer its
    /// end than that, the service's bucket is larger: the model grows by a
    /// tenth, at most once per round trip.
    pub fn below_signal(&mut self, mark: f64, now: Instant) {
        self.refill(now);
        let left_at_mark = self.tokens + (self.sent - mark).max(0.0);
        if left_at_mark >= (1.0 - GRAPH_SIGNAL_FROM) * self.capacity || mark <= self.grown_at {
            return;
        }
        let more = self.capacity * (GROWTH - 1.0);
        self.capacity += more;
        self.rate.scale(GROWTH);
        self.tokens += more;
        self.grown_at = self.sent;
    }

    /// The service throttled this bucket, refusing a request `sent` then: it
    /// is empty now, and its refill is what the limiter learns from the span
    /// since the last throttle. From then on it holds requests back, whatever
    /// it did before; after a cut it bursts at most [`BURST_SECONDS`] of its
    /// rate.
    pub fn throttled(&mut self, now: Instant, sent: Instant) -> Learned {
        self.refill(now);
        // A bucket whose answers said it holds plenty did not run out: the
        // 429 was another limit's (or a stray one); it is not learned from.
        let plenty = self.informed && self.tokens >= STRAY_SHARE * self.capacity;
        if let Some(shared) = &mut self.shared {
            // The emptier bucket is the one the service ran out of.
            if shared.available(now) < self.tokens {
                self.tokens = self.tokens.min(0.0);
                return shared.throttled(now, sent);
            }
        }
        if plenty {
            self.tokens = self.tokens.min(0.0);
            return Learned::Kept {
                rate: self.rate.per_second(),
            };
        }
        let learned = self.rate.throttled(now, sent, self.informed);
        if let Learned::Stray { .. } = learned {
            // The service was not what held the scope back: the model stays.
            return learned;
        }
        // A lesson (a cut) makes a bucket hold requests back; a lesson undone (the 429s
        // did not follow the rate) gives back to a bucket that held nothing
        // before its first 429 the freedom it had.
        match learned {
            Learned::Cut { .. } | Learned::Measured { .. } => self.active = true,
            Learned::Undone { .. } => self.active = self.holds_from_start || self.informed,
            _ => {}
        }
        self.tokens = self.tokens.min(0.0);
        if matches!(learned, Learned::Cut { .. } | Learned::Measured { .. }) {
            let burst = (self.rate.per_second() * BURST_SECONDS).max(MIN_BURST);
            self.capacity = self.capacity.min(burst);
        }
        learned
    }

    /// Whether some of its 429s were found not to follow its rate.
    pub fn noisy(&self) -> bool {
        self.rate.noisy()
    }

    /// The service served `units` of this bucket at `now`, of a request
    /// `sent` then; the new rate when it rose (a quiet spell let it grow
    /// back, or the answer completed a measure).
    pub fn served(&mut self, units: f64, now: Instant, sent: Instant) -> Option<f64> {
        self.refill(now);
        let shared = self
            .shared
            .as_mut()
            .and_then(|s| s.served(units, now, sent));
        self.rate.served(units, now, sent).or(shared)
    }

    /// The scope wanted more than the bucket (or the shared one) lets out.
    pub fn starved(&mut self) {
        self.rate.starved();
        if let Some(shared) = &mut self.shared {
            shared.starved();
        }
    }

    /// Units a full bucket holds (the smaller, when one is shared).
    pub fn capacity(&self) -> f64 {
        self.shared
            .as_ref()
            .map_or(self.capacity, |s| self.capacity.min(s.capacity()))
    }

    /// Units added a second now (the slower, when one is shared).
    pub fn per_second(&self) -> f64 {
        self.shared.as_ref().map_or(self.rate.per_second(), |s| {
            self.rate.per_second().min(s.per_second())
        })
    }

    /// When the bucket (and the shared one) will hold `want` units (at least
    /// one, at most full).
    pub fn ready_at(&self, want: f64) -> Instant {
        let own = self.own_ready_at(want);
        self.shared
            .as_ref()
            .map_or(own, |s| own.max(s.own_ready_at(want)))
    }

    fn own_ready_at(&self, want: f64) -> Instant {
        let want = want.clamp(1.0, self.capacity.max(1.0));
        let missing = (want - self.tokens).max(0.0);
        // A millisecond more, so that rounding never wakes the run a hair early.
        let wait =
            Duration::try_from_secs_f64(missing / self.rate.per_second()).unwrap_or(LONGEST_WAIT);
        self.at + wait.min(LONGEST_WAIT) + Duration::from_millis(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::arm::{Kind, Model};

    #[test]
    fn a_settled_scope_believes_the_answer_served_last() {
        let t0 = Instant::now();
        let mut b = Bucket::new(Kind::of("GET").seed(Model::TokenBucket), t0);
        assert!((0..20).all(|_| b.take(1.0, t0)), "two batches of ten");
        // The second batch (marks 11 to 20) was served first, then the first;
        // the first's answer comes back first, the second's last.
        b.observe(220.0, 10.0, false, t0);
        b.observe(230.0, 20.0, true, t0);
        assert!(
            b.available(t0) <= 220.0,
            "the bucket holds what the answer served last said, not the last to come back: {}",
            b.available(t0)
        );
        // Another answer of the same landing, served before the first
        // batch too, says no more.
        b.observe(235.0, 19.0, true, t0);
        assert!(
            b.available(t0) <= 220.0,
            "an answer of the same landing raised the bucket to {}",
            b.available(t0)
        );
        // Once a request goes, the span starts anew: its answer, with
        // nothing else on the wire, is believed.
        assert!(b.take(1.0, t0));
        b.observe(240.0, 21.0, true, t0);
        assert_eq!(b.available(t0), 240.0);
    }

    #[test]
    fn empties_refills_and_believes_the_service() {
        let t0 = Instant::now();
        let mut b = Bucket::new(Kind::of("GET").seed(Model::TokenBucket), t0);
        assert!((0..250).all(|_| b.take(1.0, t0)), "250 reads at once");
        assert!(!b.take(1.0, t0), "then none");
        assert_eq!(
            b.ready_at(1.0),
            t0 + Duration::from_millis(41),
            "25 a second"
        );
        assert_eq!(b.ready_at(20.0), t0 + Duration::from_millis(801));
        let t1 = t0 + Duration::from_secs(1);
        assert!((0..25).all(|_| b.take(1.0, t1)) && !b.take(1.0, t1));
        assert_eq!(b.sent(), 275.0);
        let t2 = t1 + Duration::from_secs(4);
        assert_eq!(b.available(t2), 100.0, "refilled");
        b.observe(70.0, 245.0, false, t2);
        assert!(
            (0..40).all(|_| b.take(1.0, t2)),
            "what the service has left, less the 30 sent after"
        );
        assert!(!b.take(1.0, t2));
        b.observe(200.0, 240.0, false, t2);
        assert!(!b.take(1.0, t2), "an answer never raises the count");
        b.observe(9.0, b.sent(), true, t2);
        assert!(
            (0..9).all(|_| b.take(1.0, t2)) && !b.take(1.0, t2),
            "except when nothing of the scope is on the wire: then it is the bucket's figure"
        );
        b.observe(1000.0, b.sent(), false, t2);
        assert!(
            (0..1000).all(|_| b.take(1.0, t2)),
            "a larger bucket than documented"
        );
        b.throttled(t2, t2);
        assert!(!b.take(1.0, t2));
        let mut w = Bucket::new(Kind::of("DELETE").seed(Model::TokenBucket), t0);
        assert!((0..200).all(|_| w.take(1.0, t0)) && !w.take(1.0, t0));
        assert_eq!(
            w.ready_at(5.0),
            t0 + Duration::from_millis(501),
            "10 a second"
        );
        assert_eq!(
            (Kind::of("PATCH"), Kind::of("HEAD")),
            (Kind::Writes, Kind::Reads)
        );
    }
}
