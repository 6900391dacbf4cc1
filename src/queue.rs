//! The queue of final results between the engine and whoever reads them (the
//! job's `next`, and so `batch_next`, the command line, the module). Nothing is
//! ever dropped or refused: instead, while `limit` results wait unread, the
//! engine starts no new batch, so a slow reader holds the run back rather than
//! letting results pile up in memory. Results travel in groups (a batch's
//! answers, landed together), so a reader that sleeps between them is woken
//! once a group, not once a result.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use crate::result::ItemResult;

/// Results waiting unread before the engine pauses, unless a run's own
/// batches in flight need more room.
pub const DEFAULT_LIMIT: usize = 4096;

struct Shared {
    waiting: AtomicUsize,
    taken: Notify,
    limit: usize,
}

/// The engine's end.
#[derive(Clone)]
pub struct ResultSender {
    tx: mpsc::UnboundedSender<Vec<ItemResult>>,
    shared: Arc<Shared>,
}

/// The reader's end.
pub struct ResultReceiver {
    rx: mpsc::UnboundedReceiver<Vec<ItemResult>>,
    /// The rest of the group last received.
    group: VecDeque<ItemResult>,
    shared: Arc<Shared>,
}

/// A queue that asks the engine to wait while `limit` results are unread.
pub fn queue(limit: usize) -> (ResultSender, ResultReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        waiting: AtomicUsize::new(0),
        taken: Notify::new(),
        limit: limit.max(1),
    });
    (
        ResultSender {
            tx,
            shared: shared.clone(),
        },
        ResultReceiver {
            rx,
            group: VecDeque::new(),
            shared,
        },
    )
}

impl ResultSender {
    /// Hands out one result (never refused; a reader that went away is ignored).
    pub fn send(&self, r: ItemResult) {
        self.send_all(vec![r]);
    }

    /// Hands out `rs` together: the reader wakes once for all of them.
    pub fn send_all(&self, rs: Vec<ItemResult>) {
        let n = rs.len();
        if n == 0 {
            return;
        }
        // Counted before they can be taken: a reader that took one first
        // would count it down below zero.
        self.shared.waiting.fetch_add(n, Ordering::AcqRel);
        if self.tx.send(rs).is_err() {
            self.shared.waiting.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Whether `more` results (a batch about to be sent) fit beside those waiting.
    pub fn has_room(&self, more: usize) -> bool {
        self.tx.is_closed()
            || self
                .shared
                .waiting
                .load(Ordering::Acquire)
                .saturating_add(more)
                <= self.shared.limit
    }

    /// Resolves when the reader has taken a result.
    pub async fn taken(&self) {
        self.shared.taken.notified().await;
    }
}

impl ResultReceiver {
    /// The next result; `None` once the engine is done and all were read.
    pub async fn recv(&mut self) -> Option<ItemResult> {
        if self.group.is_empty() {
            self.group = self.rx.recv().await?.into();
        }
        let r = self.group.pop_front();
        if r.is_some() {
            self.took();
        }
        r
    }

    /// A result that is already waiting, if any.
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<ItemResult> {
        self.poll_now().ok()
    }

    /// A result that is already waiting; `Err(true)` when none will come any
    /// more, `Err(false)` when none is waiting now.
    pub fn poll_now(&mut self) -> Result<ItemResult, bool> {
        while self.group.is_empty() {
            match self.rx.try_recv() {
                Ok(group) => self.group = group.into(),
                Err(mpsc::error::TryRecvError::Empty) => return Err(false),
                Err(mpsc::error::TryRecvError::Disconnected) => return Err(true),
            }
        }
        let r = self.group.pop_front().expect("the group is not empty");
        self.took();
        Ok(r)
    }

    fn took(&self) {
        let before = self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before > 0, "a result was taken before it was counted");
        // One permit is kept when the engine is not waiting yet, so a take
        // between its check and its wait is never missed.
        self.shared.taken.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::ErrorInfo;

    fn r(i: usize) -> ItemResult {
        ItemResult::no_answer(i, &i.to_string(), 0, ErrorInfo::new("x", "y"))
    }

    /// A reader on another thread takes each result as soon as it is in the
    /// channel: it must never find one that is not counted yet.
    #[test]
    fn a_result_is_counted_before_it_can_be_taken() {
        let (tx, mut rx) = queue(usize::MAX);
        let n = 200_000;
        let reader = std::thread::spawn(move || {
            let mut got = 0;
            while got < n {
                if rx.try_recv().is_some() {
                    got += 1;
                }
            }
            got
        });
        for i in 0..n {
            tx.send(r(i));
        }
        assert_eq!(
            reader
                .join()
                .expect("the reader never saw an uncounted result"),
            n
        );
        assert!(tx.has_room(usize::MAX), "all taken: nothing waits");
    }

    #[tokio::test]
    async fn room_shrinks_as_results_wait_and_grows_as_they_are_read() {
        let (tx, mut rx) = queue(3);
        assert!(tx.has_room(3) && !tx.has_room(4));
        tx.send(r(0));
        tx.send(r(1));
        assert!(tx.has_room(1) && !tx.has_room(2));
        let woken = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.taken().await })
        };
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await.map(|r| r.index), Some(0));
        woken.await.unwrap();
        assert!(tx.has_room(2));
        assert_eq!(rx.try_recv().map(|r| r.index), Some(1));
        assert!(rx.try_recv().is_none());
        drop(rx);
        assert!(tx.has_room(100), "nobody reads: nothing to wait for");
    }

    #[tokio::test]
    async fn a_group_is_counted_whole_and_read_one_result_at_a_time_in_order() {
        let (tx, mut rx) = queue(4);
        tx.send_all(vec![r(0), r(1), r(2)]);
        tx.send_all(vec![]);
        tx.send(r(3));
        assert!(!tx.has_room(1), "four wait, whether sent alone or together");
        assert_eq!(rx.try_recv().map(|r| r.index), Some(0));
        assert!(tx.has_room(1) && !tx.has_room(2));
        assert_eq!(rx.recv().await.map(|r| r.index), Some(1));
        assert_eq!(rx.try_recv().map(|r| r.index), Some(2));
        assert_eq!(rx.recv().await.map(|r| r.index), Some(3));
        assert!(tx.has_room(4));
        drop(tx);
        assert_eq!(
            rx.poll_now().map(|r| r.index),
            Err(true),
            "done once all are read"
        );
    }
}
