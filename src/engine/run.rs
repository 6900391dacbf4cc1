//! One run's state ([`Run`]): what every room of the engine reads and
//! changes, and the questions the loop asks of it between turns (is anything
//! left, when to wake, does the reader keep up).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::deps::Kept;
use super::item::Slot;
use super::scopes::Scopes;
use super::send::Ctx;
use crate::dependencies::SharedGraph;
use crate::limits;
use crate::options::Options;
use crate::progress::Progress;
use crate::queue::ResultSender;
use crate::result::ItemResult;

/// How a caller allows resending writes, in each of AzBatch's faces (the
/// option, then the CLI's flag and the module's parameter: the module keeps
/// the last).
pub(super) const ALLOW_RESEND: &str =
    "allow that with retryNonIdempotent (--retry-non-idempotent, -RetryNonIdempotent)";

/// Answers kept for requests that may still arrive and read them, while the
/// input is open (beyond those that have dependents waiting already).
pub(super) const KEEP_FOR_LATECOMERS: usize = 10_000;

/// How many times the ready window throttled scopes may hold while more input
/// waits: enough that one hot scope does not stop the others at once, little
/// enough that memory stays flat when every scope is throttled.
pub(super) const HELD_WINDOWS: usize = 8;

/// While the input is open, a batch that is not full waits this long for more
/// requests before it goes (a producer adds them microseconds apart; without
/// the wait the first requests would each travel alone).
pub(super) const LINGER: Duration = Duration::from_millis(25);

/// What one request got on one attempt, besides the outcome: its answer, or
/// the words that explain why there is none.
pub(super) enum Got {
    Answer {
        status: u16,
        headers: Map<String, Value>,
        body: Value,
        base64: bool,
    },
    Why(String),
}

impl std::fmt::Display for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Got::Answer { status, .. } => write!(f, "HTTP {status}"),
            Got::Why(why) => f.write_str(why),
        }
    }
}

/// The mutable state of one run.
pub(super) struct Run {
    pub(super) ctx: Arc<Ctx>,
    /// Every request of the run by index: live ones whole, final ones as how
    /// they ended.
    pub(super) items: Vec<Slot>,
    /// Items to send as soon as a batch slot is free, in order.
    pub(super) ready: VecDeque<usize>,
    /// Items waiting for their retry time.
    pub(super) delayed: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Who depends on whom: the run's one graph, which placed each request
    /// before it arrived.
    pub(super) graph: SharedGraph,
    /// Answers of finished items that others depend on, or may (see
    /// [`KEEP_FOR_LATECOMERS`]).
    pub(super) kept: HashMap<usize, Kept>,
    /// Items whose answers are kept only for requests still to come, oldest first.
    pub(super) kept_for_latecomers: VecDeque<usize>,
    /// More requests may still arrive.
    pub(super) input_open: bool,
    /// Since when requests have been ready and not sent.
    pub(super) ready_since: Option<Instant>,
    /// Throttle scopes: requests wait here while their scope is throttled.
    pub(super) scopes: Scopes,
    /// Items per batch now; halved after an envelope 429, then one more per
    /// batch the service takes, up to the configured size.
    pub(super) batch_size: usize,
    /// No batch is sent before this: the service throttled the whole client.
    pub(super) paused_until: Option<Instant>,
    /// Bytes per batch request now: [`limits::MAX_BATCH_BYTES`], halved each
    /// time the service answers a batch 413.
    pub(super) max_bytes: usize,
    pub(super) in_flight_items: u64,
    /// The batch endpoint was refused (its status): requests go one by one.
    pub(super) one_by_one: Option<u16>,
    pub(super) sink: ResultSender,
    /// Results finished this turn of the run's loop, handed out together at
    /// its end (one wake-up of the reader for a batch's answers, not one each).
    pub(super) outbox: Vec<ItemResult>,
    pub(super) progress: Arc<Progress>,
}

impl Run {
    pub(super) fn new(
        ctx: Arc<Ctx>,
        graph: SharedGraph,
        sink: ResultSender,
        progress: Arc<Progress>,
    ) -> Run {
        let (batch_size, concurrency) = (ctx.options.batch_size, ctx.options.concurrency);
        let model = ctx.options.cloud.arm_model();
        Run {
            ctx,
            items: vec![],
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            graph,
            kept: HashMap::new(),
            kept_for_latecomers: VecDeque::new(),
            input_open: true,
            ready_since: None,
            scopes: Scopes::new(batch_size, concurrency).with_arm_model(model),
            batch_size,
            paused_until: None,
            max_bytes: limits::MAX_BATCH_BYTES,
            in_flight_items: 0,
            one_by_one: None,
            sink,
            outbox: vec![],
            progress,
        }
    }

    pub(super) fn options(&self) -> &Options {
        &self.ctx.options
    }

    /// Whether nothing is left to send or wait for (batches in flight aside).
    pub(super) fn idle(&self) -> bool {
        self.ready.is_empty() && self.delayed.is_empty() && !self.scopes.holding()
    }

    /// Whether the results of one more batch fit beside those unread and on the wire.
    pub(super) fn reader_keeps_up(&self) -> bool {
        let more = self.in_flight_items as usize + self.batch_size;
        self.sink.has_room(more + self.outbox.len())
    }

    /// Ready work waits only for the reader to take results.
    pub(super) fn waits_for_reader(&self) -> bool {
        !self.ready.is_empty() && !self.reader_keeps_up()
    }

    /// When the loop must look again though no batch has landed.
    pub(super) fn next_wake(&self, now: Instant) -> Option<Instant> {
        let paused = self.paused_until.filter(|t| *t > now);
        let next_retry = [
            self.delayed.peek().map(|Reverse((t, _))| *t),
            self.scopes.next_wake(now),
            self.lingered(now),
        ]
        .into_iter()
        .flatten()
        .min();
        match (paused, next_retry) {
            (Some(p), _) if !self.ready.is_empty() => Some(p),
            (Some(p), Some(r)) => Some(p.max(r)),
            (_, r) => r,
        }
    }
}
