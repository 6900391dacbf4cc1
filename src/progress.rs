//! Live counters of a run, readable from any thread while it goes on.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters updated by the engine as it works. Cheap to read at any time.
#[derive(Debug, Default)]
pub struct Progress {
    total: AtomicU64,
    completed: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    in_flight: AtomicU64,
    throttled: AtomicU64,
    batches: AtomicU64,
}

/// A copy of [`Progress`] at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressSnapshot {
    /// Requests in the run.
    pub total: u64,
    /// Requests with a final result.
    pub completed: u64,
    /// Final results with a 2xx status.
    pub succeeded: u64,
    /// Final results that are not 2xx (including cancelled and unknown outcomes).
    pub failed: u64,
    /// Sends of an item beyond its first (retries and re-sent batches).
    pub retries: u64,
    /// Items inside batches that are on the wire now.
    pub in_flight: u64,
    /// Answers with status 429 seen so far (items and envelopes).
    pub throttled: u64,
    /// Batch requests sent so far.
    pub batches: u64,
}

impl Progress {
    pub(crate) fn add_total(&self, n: u64) {
        self.total.fetch_add(n, Relaxed);
    }
    pub(crate) fn finished(&self, success: bool) {
        self.completed.fetch_add(1, Relaxed);
        if success {
            self.succeeded.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
    }
    pub(crate) fn retried(&self, n: u64) {
        self.retries.fetch_add(n, Relaxed);
    }
    pub(crate) fn throttled(&self) {
        self.throttled.fetch_add(1, Relaxed);
    }
    pub(crate) fn batch_sent(&self, items: u64) {
        self.batches.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(items, Relaxed);
    }
    pub(crate) fn batch_landed(&self, items: u64) {
        self.in_flight.fetch_sub(items, Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            total: self.total.load(Relaxed),
            completed: self.completed.load(Relaxed),
            succeeded: self.succeeded.load(Relaxed),
            failed: self.failed.load(Relaxed),
            retries: self.retries.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            throttled: self.throttled.load(Relaxed),
            batches: self.batches.load(Relaxed),
        }
    }
}
