//! ARM's token buckets as the client sees them: one per throttle scope and
//! kind of operation, seeded from Microsoft's documented sizes and refill
//! rates and corrected by the `x-ms-ratelimit-remaining-*` header of every
//! answer. A request leaves only when its bucket holds a token, so a 429 is
//! the rare fallback rather than the signal that paces the run.
//!
//! The documented buckets (Azure Resource Manager request limits, 2024
//! regional throttling): per subscription and per tenant, per principal,
//! reads 250 tokens refilled at 25 a second, writes and deletes 200 at 10.

use tokio::time::{Duration, Instant};

/// What an ARM call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Reads,
    Writes,
    Deletes,
}

impl Kind {
    /// The kind of an HTTP method.
    pub fn of(method: &str) -> Kind {
        match method {
            "GET" | "HEAD" => Kind::Reads,
            "DELETE" => Kind::Deletes,
            _ => Kind::Writes,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Reads => "reads",
            Kind::Writes => "writes",
            Kind::Deletes => "deletes",
        }
    }

    /// Tokens in a full bucket, and tokens added a second.
    fn seed(self) -> (f64, f64) {
        match self {
            Kind::Reads => (250.0, 25.0),
            Kind::Writes | Kind::Deletes => (200.0, 10.0),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Bucket {
    tokens: f64,
    capacity: f64,
    refill: f64,
    at: Instant,
    /// Requests taken from this bucket so far.
    sent: u64,
}

impl Bucket {
    /// A full bucket of `kind`, as a run that has sent nothing assumes.
    pub fn new(kind: Kind, now: Instant) -> Bucket {
        let (capacity, refill) = kind.seed();
        Bucket {
            tokens: capacity,
            capacity,
            refill,
            at: now,
            sent: 0,
        }
    }

    /// How many requests have been taken from the bucket: the mark of the
    /// one taken last, for [`Bucket::observe`].
    pub fn sent(&self) -> u64 {
        self.sent
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill).min(self.capacity);
        self.at = self.at.max(now);
    }

    /// Takes a token for one request, if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.sent += 1;
            true
        } else {
            false
        }
    }

    /// Whole tokens in the bucket now.
    pub fn available(&mut self, now: Instant) -> usize {
        self.refill(now);
        self.tokens as usize
    }

    /// The answer to the request marked `mark` (see [`Bucket::sent`]) said
    /// `remaining` calls are left. The requests taken after it will each take
    /// one too, so the bucket holds `remaining` less those, or fewer: answers
    /// come back in any order and batches sent together may be served in
    /// another, so an answer can only lower the model's count (another client
    /// of the same principal, a smaller bucket), never raise it, unless it
    /// shows a bucket larger than the model's.
    pub fn observe(&mut self, remaining: f64, mark: u64, now: Instant) {
        self.refill(now);
        let estimate = (remaining - self.sent.saturating_sub(mark) as f64).max(0.0);
        if remaining > self.capacity {
            self.capacity = remaining;
            self.tokens = estimate;
        } else {
            self.tokens = self.tokens.min(estimate);
        }
    }

    /// The service throttled this bucket: it is empty.
    pub fn empty(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = 0.0;
    }

    /// When the bucket will hold `want` tokens (at least one, at most full).
    pub fn ready_at(&self, want: usize) -> Instant {
        let want = (want as f64).clamp(1.0, self.capacity.max(1.0));
        let missing = (want - self.tokens).max(0.0);
        // A millisecond more, so that rounding never wakes the run a hair early.
        self.at + Duration::from_secs_f64(missing / self.refill) + Duration::from_millis(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empties_refills_and_believes_the_service() {
        let t0 = Instant::now();
        let mut b = Bucket::new(Kind::of("GET"), t0);
        assert!((0..250).all(|_| b.take(t0)), "250 reads at once");
        assert!(!b.take(t0), "then none");
        assert_eq!(b.ready_at(1), t0 + Duration::from_millis(41), "25 a second");
        assert_eq!(b.ready_at(20), t0 + Duration::from_millis(801));
        let t1 = t0 + Duration::from_secs(1);
        assert!((0..25).all(|_| b.take(t1)) && !b.take(t1));
        assert_eq!(b.sent(), 275);
        let t2 = t1 + Duration::from_secs(4);
        assert_eq!(b.available(t2), 100, "refilled");
        b.observe(70.0, 245, t2);
        assert!(
            (0..40).all(|_| b.take(t2)),
            "what the service has left, less the 30 sent after"
        );
        assert!(!b.take(t2));
        b.observe(200.0, 240, t2);
        assert!(!b.take(t2), "an answer never raises the count");
        b.observe(1000.0, b.sent(), t2);
        assert!(
            (0..1000).all(|_| b.take(t2)),
            "a larger bucket than documented"
        );
        b.empty(t2);
        assert!(!b.take(t2));
        let mut w = Bucket::new(Kind::of("DELETE"), t0);
        assert!((0..200).all(|_| w.take(t0)) && !w.take(t0));
        assert_eq!(
            w.ready_at(5),
            t0 + Duration::from_millis(501),
            "10 a second"
        );
        assert_eq!(
            (Kind::of("PATCH"), Kind::of("HEAD")),
            (Kind::Writes, Kind::Reads)
        );
    }
}
