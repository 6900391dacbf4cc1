//! Live counters of a run, readable from any thread while it goes on.

use std::sync::{Mutex, MutexGuard};

/// Counters updated by the engine as it works. Cheap to read at any time,
/// and always read as one consistent moment: every update and every read
/// holds one lock (uncontended it costs a few nanoseconds), so a reader
/// never sees, say, a result counted as completed but not yet as failed.
#[derive(Debug, Default)]
pub struct Progress {
    counts: Mutex<ProgressSnapshot>,
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
    /// Batch requests that reached the service (or may have) and came back.
    pub batches: u64,
    /// Results handed out again from the journal (final before this run;
    /// counted in `completed` and `succeeded` or `failed` too).
    pub replayed: u64,
}

impl Progress {
    fn counts(&self) -> MutexGuard<'_, ProgressSnapshot> {
        // Counters stay usable after a panic elsewhere: they are plain numbers.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn add_total(&self, n: u64) {
        self.counts().total += n;
    }
    pub(crate) fn finished(&self, success: bool) {
        let mut c = self.counts();
        c.completed += 1;
        if success {
            c.succeeded += 1;
        } else {
            c.failed += 1;
        }
    }
    pub(crate) fn replayed(&self) {
        self.counts().replayed += 1;
    }
    pub(crate) fn retried(&self, n: u64) {
        self.counts().retries += n;
    }
    pub(crate) fn throttled(&self) {
        self.counts().throttled += 1;
    }
    pub(crate) fn batch_sent(&self, items: u64) {
        self.counts().in_flight += items;
    }
    /// `items` are off the wire, in `batches` batch requests that reached the
    /// service (or may have): one that was never sent (no token, no
    /// connection) is not counted.
    pub(crate) fn batch_landed(&self, items: u64, batches: u64) {
        let mut c = self.counts();
        c.in_flight = c.in_flight.saturating_sub(items);
        c.batches += batches;
    }

    /// Reads every counter at one moment.
    pub fn snapshot(&self) -> ProgressSnapshot {
        *self.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Read while two threads update: every snapshot adds up.
    #[test]
    fn every_snapshot_is_one_moment() {
        let p = Arc::new(Progress::default());
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for i in 0..200_000u64 {
                        p.add_total(1);
                        p.batch_sent(1);
                        p.batch_landed(1, 1);
                        p.finished(i % 3 == 0);
                    }
                })
            })
            .collect();
        let mut reads = 0;
        while !writers.iter().all(|w| w.is_finished()) {
            let s = p.snapshot();
            assert_eq!(s.completed, s.succeeded + s.failed, "{s:?}");
            assert!(s.completed <= s.total && s.batches <= s.total, "{s:?}");
            reads += 1;
        }
        writers.into_iter().for_each(|w| w.join().unwrap());
        let s = p.snapshot();
        assert_eq!(
            (s.total, s.completed, s.in_flight, s.batches),
            (400_000, 400_000, 0, 400_000)
        );
        assert!(reads > 0);
    }
}
