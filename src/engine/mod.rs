//! The engine: sends batches in parallel, polls asynchronous ones, asks the
//! [decision table](crate::decision) what every outcome means, puts retryable
//! items into later batches after their wait, follows `nextLink` pages, holds
//! requests back until the requests they depend on have succeeded (filling in
//! their references), and gives every request exactly one final result,
//! streamed out as soon as it is known.

mod bucket;
mod deps;
mod item;
mod scopes;
mod send;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenSource;
use crate::clock::Clock;
use crate::decision::{decide, Action, Decision, Ending, Facts, Outcome};
use crate::dialect::{self, ItemAnswer};
use crate::graph::{DependencyGraph, GIVEN_IDS_ONLY};
use crate::journal::{Journal, Past};
use crate::limits;
use crate::options::Options;
use crate::plan;
use crate::progress::Progress;
use crate::queue::ResultSender;
use crate::request::Request;
use crate::result::{codes, ErrorInfo, ItemResult, Summary};
use crate::retry::retry_after;
use crate::transport::Transport;
use deps::{failed_dependency, fill_references, Kept};
use item::{Item, Slot};
use scopes::Scopes;
use send::{Ctx, Reply};

/// How a caller allows resending writes, in each of AzBatch's faces.
const ALLOW_RESEND: &str =
    "allow that with --retry-non-idempotent, -RetryNonIdempotent, or the option retryNonIdempotent";

/// Everything a run needs besides its requests.
pub struct Engine {
    ctx: Arc<Ctx>,
}

type InFlight = FuturesUnordered<BoxFuture<'static, (Vec<usize>, Reply)>>;

/// Where a run's requests come from.
pub enum Input {
    /// All of them, known at the start.
    All(Vec<Request>),
    /// `first`, then more arriving while the run goes on, until every sender
    /// of `rest` is dropped. A request may depend on one that has not arrived
    /// yet: it waits for it, and fails with `FailedDependency` if the input
    /// ends without it.
    Stream {
        /// Known at the start.
        first: Vec<Request>,
        /// The rest, as it comes.
        rest: mpsc::Receiver<Request>,
    },
}

/// Answers kept for requests that may still arrive and read them, while the
/// input is open (beyond those that have dependents waiting already).
const KEEP_FOR_LATECOMERS: usize = 10_000;

/// How many times the ready window throttled scopes may hold while more input
/// waits: enough that one hot scope does not stop the others at once, little
/// enough that memory stays flat when every scope is throttled.
const HELD_WINDOWS: usize = 8;

/// While the input is open, a batch that is not full waits this long for more
/// requests before it goes (a producer adds them microseconds apart; without
/// the wait the first requests would each travel alone).
const LINGER: Duration = Duration::from_millis(25);

impl Engine {
    /// An engine for `options` that sends through `transport` (token fetches
    /// too) and reads wall time from `clock`.
    pub fn new(options: Arc<Options>, transport: Arc<dyn Transport>, clock: Clock) -> Engine {
        let auth = token_source(&options, &transport, clock);
        Engine::with_tokens(options, transport, clock, auth)
    }

    /// [`Engine::new`], with the tokens from `auth` (which the caller may
    /// hold too, to hand in fresh static tokens).
    pub fn with_tokens(
        options: Arc<Options>,
        transport: Arc<dyn Transport>,
        clock: Clock,
        auth: Option<Arc<TokenSource>>,
    ) -> Engine {
        Engine {
            ctx: Arc::new(Ctx {
                options,
                transport,
                auth,
                clock,
                journal: None,
            }),
        }
    }

    /// This engine, recording what it sends and how each request ends in
    /// `journal` (and reading each request's [`Past`] from it).
    pub fn with_journal(mut self, journal: Option<Arc<Journal>>) -> Engine {
        Arc::get_mut(&mut self.ctx)
            .expect("an engine not yet running has its context alone")
            .journal = journal;
        self
    }

    /// Runs `requests` to completion (or cancellation, or the deadline). Each
    /// request's final result goes to `sink` once, as soon as it is known;
    /// while the sink's reader lags, no new batch is started, so read while the
    /// run goes on.
    /// A `dependsOn` that names no request in `requests` finishes its request
    /// with `FailedDependency` (callers that check first refuse it instead:
    /// [`crate::request::RequestList::check_dependencies`]).
    pub async fn run(
        &self,
        requests: Vec<Request>,
        sink: ResultSender,
        progress: Arc<Progress>,
        cancel: CancellationToken,
    ) -> Summary {
        self.run_input(Input::All(requests), sink, progress, cancel)
            .await
    }

    /// [`Engine::run`], with the requests given as an [`Input`]: a streamed
    /// input is taken only as fast as the run can use it, so a producer that
    /// is faster than the network waits instead of filling memory.
    pub async fn run_input(
        &self,
        input: Input,
        sink: ResultSender,
        progress: Arc<Progress>,
        cancel: CancellationToken,
    ) -> Summary {
        let started = Instant::now();
        let deadline = started + self.ctx.options.timeout;
        let mut run = Run::new(self.ctx.clone(), sink, progress.clone());
        let mut incoming = match input {
            Input::All(requests) => {
                requests.into_iter().for_each(|r| run.add(r));
                run.close_input();
                None
            }
            Input::Stream { first, rest } => {
                first.into_iter().for_each(|r| run.add(r));
                Some(rest)
            }
        };
        let mut in_flight = InFlight::new();
        loop {
            #[cfg(test)]
            tests::turn();
            let now = Instant::now();
            run.launch_ready(&mut in_flight, now);
            // What this turn finished goes out before the run waits again.
            run.hand_out();
            if in_flight.is_empty() && run.idle() && incoming.is_none() {
                break;
            }
            let wake = run.next_wake(now);
            let mut ended = false;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    run.abandon(&mut in_flight, codes::CANCELLED, "the run was cancelled before this request finished");
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    run.abandon(&mut in_flight, codes::TIMEOUT, "the run's deadline passed before this request finished");
                    break;
                }
                Some((batch, reply)) = in_flight.next(), if !in_flight.is_empty() => run.land(batch, reply),
                _ = run.sink.taken(), if run.waits_for_reader() => {}
                r = recv(&mut incoming), if incoming.is_some() && run.takes_input() => match r {
                    Some(request) => {
                        run.add(request);
                        // Take what else has arrived in one go: one turn of the loop, not one each.
                        ended = drain(&mut incoming, &mut run);
                    }
                    None => ended = true,
                },
                _ = sleep_until_opt(wake), if wake.is_some() => {}
            }
            if ended {
                incoming = None;
                run.close_input();
            }
        }
        // Nothing should be left; if something is, it still gets its one result.
        run.abandon(
            &mut in_flight,
            codes::INTERNAL,
            "AzBatch stopped before this request could be sent",
        );
        run.hand_out();
        if let Some(j) = &self.ctx.journal {
            let _ = j.sync();
        }
        summary(&progress, started)
    }
}

fn summary(progress: &Progress, started: Instant) -> Summary {
    let p = progress.snapshot();
    Summary {
        total: p.total,
        succeeded: p.succeeded,
        failed: p.failed,
        retries: p.retries,
        replayed: p.replayed,
        batches: p.batches,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

/// Adds the requests already waiting in `incoming`, while the run takes them;
/// true when the input has ended.
fn drain(incoming: &mut Option<mpsc::Receiver<Request>>, run: &mut Run) -> bool {
    let Some(rx) = incoming else { return false };
    while run.takes_input() {
        match rx.try_recv() {
            Ok(r) => run.add(r),
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
    false
}

/// The token source the options ask for.
pub fn token_source(
    options: &Options,
    transport: &Arc<dyn Transport>,
    clock: Clock,
) -> Option<Arc<TokenSource>> {
    options.credential.clone().map(|c| {
        let login = options.cloud.login().to_string();
        Arc::new(TokenSource::new(
            c,
            options.resource(),
            login,
            transport.clone(),
            clock,
        ))
    })
}

async fn recv(incoming: &mut Option<mpsc::Receiver<Request>>) -> Option<Request> {
    match incoming {
        Some(rx) => rx.recv().await,
        None => None,
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    if let Some(t) = t {
        tokio::time::sleep_until(t).await;
    }
}

/// What one request got on one attempt, besides the outcome: its answer, or
/// the words that explain why there is none.
enum Got {
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
struct Run {
    ctx: Arc<Ctx>,
    /// Every request of the run by index: live ones whole, final ones as how
    /// they ended.
    items: Vec<Slot>,
    /// Items to send as soon as a batch slot is free, in order.
    ready: VecDeque<usize>,
    /// Items waiting for their retry time.
    delayed: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Who depends on whom.
    graph: DependencyGraph,
    /// Answers of finished items that others depend on, or may (see
    /// [`KEEP_FOR_LATECOMERS`]).
    kept: HashMap<usize, Kept>,
    /// Items whose answers are kept only for requests still to come, oldest first.
    kept_for_latecomers: VecDeque<usize>,
    /// More requests may still arrive.
    input_open: bool,
    /// Since when requests have been ready and not sent.
    ready_since: Option<Instant>,
    /// Throttle scopes: requests wait here while their scope is throttled.
    scopes: Scopes,
    /// Items per batch now; halved after an envelope 429, then one more per
    /// batch the service takes, up to the configured size.
    batch_size: usize,
    /// No batch is sent before this: the service throttled the whole client.
    paused_until: Option<Instant>,
    /// Bytes per batch request now: [`limits::MAX_BATCH_BYTES`], halved each
    /// time the service answers a batch 413.
    max_bytes: usize,
    in_flight_items: u64,
    sink: ResultSender,
    /// Results finished this turn of the run's loop, handed out together at
    /// its end (one wake-up of the reader for a batch's answers, not one each).
    outbox: Vec<ItemResult>,
    progress: Arc<Progress>,
}

impl Run {
    fn new(ctx: Arc<Ctx>, sink: ResultSender, progress: Arc<Progress>) -> Run {
        let (batch_size, concurrency) = (ctx.options.batch_size, ctx.options.concurrency);
        Run {
            ctx,
            items: vec![],
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            graph: DependencyGraph::default(),
            kept: HashMap::new(),
            kept_for_latecomers: VecDeque::new(),
            input_open: true,
            ready_since: None,
            scopes: Scopes::new(batch_size, concurrency),
            batch_size,
            paused_until: None,
            max_bytes: limits::MAX_BATCH_BYTES,
            in_flight_items: 0,
            sink,
            outbox: vec![],
            progress,
        }
    }

    /// Hands out what finished since the last time.
    fn hand_out(&mut self) {
        if !self.outbox.is_empty() {
            self.sink.send_all(std::mem::take(&mut self.outbox));
        }
    }

    /// Takes one more request: it is ready when what it depends on has
    /// succeeded, fails at once when any of it failed, and waits otherwise
    /// (also for requests not arrived yet).
    fn add(&mut self, mut request: Request) {
        let past = std::mem::take(&mut request.past);
        let given = request.named.then_some(request.id.as_str());
        let links = self.graph.push(given, &request.depends_on);
        let i = links.index;
        self.progress.add_total(1);
        let scope = dialect::throttle_scope(self.ctx.options.api, &request.method, &request.url);
        let mut item = Item::new(request, scope);
        item.dependents = links.awaited_by;
        item.waiting = links.unknown;
        let mut failed = None;
        for j in links.known {
            match self.items[j].outcome() {
                None => {
                    self.items[j].live_mut().dependents.push(i);
                    item.waiting += 1;
                }
                Some((true, _)) => {}
                Some((false, status)) => failed = Some((j, status)),
            }
        }
        let failed = failed.map(|(j, status)| {
            // The id as this request names it: the failed one's own is gone.
            let id = item
                .request
                .depends_on
                .iter()
                .find(|d| self.graph.index_of(d) == Some(j));
            (id.cloned().unwrap_or_default(), status)
        });
        let ready = item.waiting == 0;
        let resumed = match past {
            Past::Unjournaled => None,
            Past::New(d) => {
                item.digest = Some(d);
                None
            }
            Past::Sent(d) => {
                item.digest = Some(d);
                item.maybe_ran = true;
                self.sent_before(&item)
            }
            Past::Done(r) => {
                // Final before this run: its result again, not recorded again.
                item.digest = None;
                self.progress.replayed();
                Some(*r)
            }
        };
        self.items.push(Slot::Live(Box::new(item)));
        if let Some(result) = resumed {
            self.finish(i, result);
        } else if let Some((id, status)) = failed {
            let result = failed_dependency(self.items[i].live_mut(), &id, status);
            self.finish(i, result);
        } else if ready {
            if let Some(result) = self.release(i) {
                self.finish(i, result);
            }
        }
    }

    /// An earlier run sent `item` and stopped before its answer: a write that
    /// may not run twice ends here, `OutcomeUnknown`; anything else is sent.
    fn sent_before(&self, item: &Item) -> Option<ItemResult> {
        let r = &item.request;
        if r.is_idempotent() || self.options().retry_non_idempotent {
            return None;
        }
        let journal = self
            .ctx
            .journal
            .as_ref()
            .map_or("the journal".into(), |j| j.path().display().to_string());
        let why = format!(
            "an earlier run with the journal {journal} sent this request and stopped before its answer came back, so it may have run. {} is not idempotent so it was not sent again ({ALLOW_RESEND})",
            r.method
        );
        Some(ItemResult::no_answer(
            0,
            &r.id,
            0,
            ErrorInfo::new(codes::OUTCOME_UNKNOWN, why),
        ))
    }

    /// No more requests will arrive: whatever waits for an id that never came
    /// fails.
    fn close_input(&mut self) {
        self.input_open = false;
        self.kept_for_latecomers.clear();
        for (i, d) in self.graph.unresolved() {
            if self.items[i].outcome().is_some() {
                continue;
            }
            let msg = format!(
                "dependsOn names \"{d}\", which is not a request of this run ({GIVEN_IDS_ONLY})"
            );
            let result = self.items[i]
                .live_mut()
                .finish_without_answer(ErrorInfo::new(codes::FAILED_DEPENDENCY, msg));
            self.finish(i, result);
        }
    }

    /// Whether the run can use another request now: it takes them only while
    /// the work ready to send stays within a few batches' worth, and while
    /// throttled scopes hold no more than [`HELD_WINDOWS`] times that (so a
    /// throttled run holds what it can use soon, not the whole input; other
    /// scopes keep going meanwhile).
    fn takes_input(&self) -> bool {
        let window = (4 * self.batch_size * self.options().concurrency).max(1024);
        self.ready.len() + self.delayed.len() < window && self.scopes.held() < HELD_WINDOWS * window
    }

    /// Every dependency of `i` succeeded: fill its references and queue it.
    /// Returns the `ReferenceNotFound` result instead when a reference has no
    /// value; the caller finishes it (so `finish` need not recurse).
    fn release(&mut self, i: usize) -> Option<ItemResult> {
        let filled = fill_references(
            self.items[i].live_mut(),
            &self.graph,
            &self.kept,
            &self.ctx.options,
        );
        match filled {
            Ok(()) => {
                self.ready.push_back(i);
                None
            }
            Err(why) => {
                let e = ErrorInfo::new(codes::REFERENCE_NOT_FOUND, why);
                Some(self.items[i].live_mut().finish_without_answer(e))
            }
        }
    }

    fn options(&self) -> &Options {
        &self.ctx.options
    }

    /// Whether nothing is left to send or wait for (batches in flight aside).
    fn idle(&self) -> bool {
        self.ready.is_empty() && self.delayed.is_empty() && !self.scopes.holding()
    }

    /// Moves due retries and released scopes into the ready queue, then starts
    /// batches while there are slots, ready requests, and no hold.
    fn launch_ready(&mut self, in_flight: &mut InFlight, now: Instant) {
        while let Some(Reverse((t, idx))) = self.delayed.peek().copied() {
            if t > now {
                break;
            }
            self.delayed.pop();
            self.ready.push_back(idx);
        }
        for idx in self.scopes.release(now).into_iter().rev() {
            self.ready.push_front(idx);
        }
        if self.ready.is_empty() {
            self.ready_since = None;
        } else if self.ready_since.is_none() {
            self.ready_since = Some(now);
        }
        if self.paused_until.is_some_and(|p| p > now) {
            return;
        }
        while in_flight.len() < self.options().concurrency
            && !self.ready.is_empty()
            && self.reader_keeps_up()
            && self.lingered(now).is_none()
        {
            // None when every ready request's scope is paused.
            if let Some(batch) = self.launch(now) {
                in_flight.push(batch);
                self.ready_since = (!self.ready.is_empty()).then_some(now);
            }
        }
    }

    /// While the input is open and no full batch is ready: until when the
    /// ready requests wait for company.
    fn lingered(&self, now: Instant) -> Option<Instant> {
        let since = self.ready_since?;
        let full = self.ready.len() >= self.batch_size;
        (!full && self.may_linger(now)).then_some(since + LINGER)
    }

    /// Whether a short batch may still wait: the input is open and the
    /// oldest ready request has not waited [`LINGER`] yet.
    fn may_linger(&self, now: Instant) -> bool {
        self.input_open && self.ready_since.is_some_and(|since| now < since + LINGER)
    }

    /// Whether the results of one more batch fit beside those unread and on the wire.
    fn reader_keeps_up(&self) -> bool {
        let more = self.in_flight_items as usize + self.batch_size;
        self.sink.has_room(more + self.outbox.len())
    }

    /// Ready work waits only for the reader to take results.
    fn waits_for_reader(&self) -> bool {
        !self.ready.is_empty() && !self.reader_keeps_up()
    }

    /// When the loop must look again though no batch has landed.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
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

    /// Holds new batches back until `wait` from now (the later of any two holds).
    fn pause(&mut self, wait: Duration) {
        // Field values are worked out only when the event is logged.
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            until = %httpdate::fmt_http_date(self.ctx.clock.now() + wait),
            "every batch held"
        );
        let until = Instant::now() + wait;
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }

    /// Plans the next batch from the ready queue and starts sending it; none
    /// when every ready request's scope is paused.
    fn launch(&mut self, now: Instant) -> Option<BoxFuture<'static, (Vec<usize>, Reply)>> {
        let (items, scopes) = (&self.items, &mut self.scopes);
        let batch = plan::next_batch(
            &mut self.ready,
            plan::Limits {
                items: self.batch_size,
                bytes: self.max_bytes,
            },
            |i| plan::Size {
                body: items[i].live().request.body.is_some(),
                bytes: items[i].live().size,
            },
            |i| {
                let item = items[i].live();
                scopes.admit(&item.scope, i, item.request.is_read(), now)
            },
        );
        if batch.is_empty() {
            return None;
        }
        // Ready requests whose scopes held them back (a mailbox's fifth) left
        // this batch short while the input still comes: it waits for company
        // as a short batch of ready requests does, its requests keeping
        // their admission. Sent short, it would split the scopes' requests
        // over more batches than the run keeps in flight.
        if self.ready.is_empty() && batch.len() < self.batch_size && self.may_linger(now) {
            for &i in batch.iter().rev() {
                self.scopes.keep_admitted(i);
                self.ready.push_front(i);
            }
            return None;
        }
        let names: Vec<String> = batch.iter().map(|i| i.to_string()).collect();
        let outgoing: Vec<dialect::Outgoing<'_>> = batch
            .iter()
            .zip(&names)
            .map(|(&i, name)| self.items[i].live().outgoing(name))
            .collect();
        let body = dialect::encode(self.options().api, &outgoing);
        tracing::debug!(
            items = batch.len(),
            bytes = body.len(),
            in_flight = self.in_flight_items,
            "batch sent"
        );
        let refused = self.journal_sent(&batch);
        for &i in &batch {
            let item = self.items[i].live_mut();
            item.attempts += 1;
            item.page_tries += 1;
            item.on_wire = true;
            item.batch_items = batch.len();
        }
        self.in_flight_items += batch.len() as u64;
        self.progress.batch_sent(batch.len() as u64);
        let ctx = self.ctx.clone();
        Some(Box::pin(async move {
            let reply = match refused {
                Some(why) => Reply::Refused {
                    code: codes::JOURNAL_FAILED,
                    may_have_run: false,
                    why,
                },
                None => ctx.send_batch(body).await,
            };
            (batch, reply)
        }))
    }

    /// Records in the journal that `batch` is about to leave; the reason not
    /// to send it when that fails (a send the journal does not know of could
    /// run twice after a crash).
    fn journal_sent(&self, batch: &[usize]) -> Option<String> {
        let journal = self.ctx.journal.as_ref()?;
        let sent: Vec<(usize, &str)> = batch
            .iter()
            .filter_map(|&i| Some((i, self.items[i].live().digest.as_deref()?)))
            .collect();
        if sent.is_empty() {
            return None;
        }
        journal.sent(&sent).err().map(|e| {
            format!(
                "not sent: the journal {} cannot be written ({e})",
                journal.path().display()
            )
        })
    }

    /// Handles the reply to one batch: every item's outcome goes through the
    /// decision table.
    fn land(&mut self, batch: Vec<usize>, reply: Reply) {
        for &idx in &batch {
            let item = self.items[idx].live_mut();
            item.sent_mark = self.scopes.landed(&item.scope, idx);
            item.on_wire = false;
        }
        self.in_flight_items -= batch.len() as u64;
        let reached = !matches!(reply, Reply::NotSent(_) | Reply::Auth(_));
        tracing::debug!(items = batch.len(), answer = reply.kind(), "batch answered");
        self.progress
            .batch_landed(batch.len() as u64, reached.into());
        match reply {
            Reply::Items(answers) => {
                // The service took a whole batch: after an envelope 429 halved
                // the size, it grows back by one per batch taken.
                self.batch_size = (self.batch_size + 1).min(self.options().batch_size);
                self.land_items(batch, answers)
            }
            Reply::Envelope {
                status,
                headers,
                body,
            } => {
                let wait = retry_after(|k| find_header(&headers, k), self.ctx.clock.now());
                let outcome = Outcome::Envelope {
                    status,
                    retry_after: wait,
                };
                self.for_each(batch, outcome, |_| Got::Answer {
                    status,
                    headers: Map::new(),
                    body: body.clone(),
                    base64: false,
                });
            }
            Reply::NotSent(why) => {
                self.for_each(batch, Outcome::NotSent, |_| Got::Why(why.clone()))
            }
            Reply::MaybeSent(why) => self.for_each(batch, Outcome::Lost, |_| Got::Why(why.clone())),
            Reply::Refused {
                code,
                may_have_run,
                why,
            } => {
                let outcome = Outcome::Refused { code, may_have_run };
                self.for_each(batch, outcome, |_| Got::Why(why.clone()));
            }
            Reply::Auth(e) => {
                let outcome = Outcome::NoToken { expired: e.expired };
                self.for_each(batch, outcome, |_| Got::Why(e.message.clone()));
            }
            Reply::TokenRenewed { body } => {
                for idx in batch {
                    let again =
                        std::mem::replace(&mut self.items[idx].live_mut().token_renewed, true);
                    let got = Got::Answer {
                        status: 401,
                        headers: Map::new(),
                        body: body.clone(),
                        base64: false,
                    };
                    let d = self.decide(idx, Outcome::TokenRenewed { again });
                    self.carry_out(idx, d, got);
                }
            }
        }
    }

    /// One outcome for every item of a batch: its effects on the run (a hold,
    /// a smaller batch, a 429 counted) once, its action for each item.
    fn for_each(&mut self, batch: Vec<usize>, outcome: Outcome, got: impl Fn(usize) -> Got) {
        let Some(&first) = batch.first() else { return };
        let d = self.decide(first, outcome);
        self.apply_run_effects(&d);
        if d.split_batch {
            // Too large for the service: its items go again in halves.
            let bytes: usize = batch.iter().map(|&i| self.items[i].live().size).sum();
            self.max_bytes = self.max_bytes.min(bytes / 2).max(1);
        }
        for idx in batch {
            let d = self.decide(idx, outcome);
            self.carry_out(idx, d, got(idx));
        }
    }

    /// The answers of a batch, matched to its items by name. An item the
    /// answer names twice has no answer it can trust (either could be
    /// another's): like one the answer left out, its answer is lost.
    fn land_items(&mut self, batch: Vec<usize>, answers: Vec<ItemAnswer>) {
        let mut by_name: HashMap<String, ItemAnswer> = HashMap::with_capacity(answers.len());
        let mut twice: Vec<String> = vec![];
        for a in answers {
            if by_name.contains_key(&a.name) {
                twice.push(a.name);
            } else {
                by_name.insert(a.name.clone(), a);
            }
        }
        for name in &twice {
            by_name.remove(name);
        }
        for idx in batch {
            let name = idx.to_string();
            match by_name.remove(&name) {
                Some(answer) => self.answered(idx, answer),
                None => {
                    let d = self.decide(idx, Outcome::Lost);
                    let why = if twice.contains(&name) {
                        "the batch answer was broken: it answered this request twice, so neither answer can be trusted"
                    } else {
                        "the batch answer had no response for this request"
                    };
                    self.carry_out(idx, d, Got::Why(why.into()));
                }
            }
        }
    }

    /// One item's own answer.
    fn answered(&mut self, idx: usize, answer: ItemAnswer) {
        let outcome = Outcome::Item {
            status: answer.status,
            retry_after: retry_after(|k| answer.header(k), self.ctx.clock.now()),
        };
        let d = self.decide(idx, outcome);
        self.apply_run_effects(&d);
        let item = self.items[idx].live();
        if let Some(mark) = item.sent_mark {
            let read = item.request.is_read();
            self.scopes
                .observe_answer(&item.scope, read, &answer, mark, Instant::now());
        }
        if let Some(pause) = d.pause_scope {
            let key = &self.items[idx].live().scope;
            tracing::info!(
                scope = key.as_str(),
                wait_ms = pause.as_millis() as u64,
                until = %httpdate::fmt_http_date(self.ctx.clock.now() + pause),
                "scope paused"
            );
            self.scopes.throttled(key, pause, Instant::now());
        }
        let got = Got::Answer {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
            base64: answer.base64,
        };
        self.carry_out(idx, d, got);
    }

    fn decide(&self, idx: usize, outcome: Outcome) -> Decision {
        let (o, item) = (self.options(), self.items[idx].live());
        decide(
            outcome,
            &Facts {
                tries: item.page_tries,
                max_attempts: o.max_attempts,
                idempotent: item.request.is_idempotent(),
                retry_non_idempotent: o.retry_non_idempotent,
                backoff: &o.backoff,
                batch_items: item.batch_items.max(1),
            },
        )
    }

    /// What a decision asks of the whole run.
    fn apply_run_effects(&mut self, d: &Decision) {
        if d.throttled {
            self.progress.throttled();
        }
        if d.shrink_batch {
            self.batch_size = (self.batch_size / 2).max(1);
        }
        if let Some(hold) = d.hold_all {
            self.pause(hold);
        }
    }

    /// What a decision asks for one item: a retry at its time, or its result.
    fn carry_out(&mut self, idx: usize, d: Decision, got: Got) {
        if d.refund {
            self.items[idx].live_mut().forgive_last_try();
        }
        if d.maybe_ran {
            self.items[idx].live_mut().maybe_ran = true;
        }
        match (d.action, got) {
            (Action::Retry(wait), got) => {
                let item = self.items[idx].live();
                tracing::info!(
                    id = item.request.id.as_str(),
                    attempt = item.attempts,
                    wait_ms = wait.as_millis() as u64,
                    why = %got,
                    "retry scheduled"
                );
                self.progress.retried(1);
                self.delayed.push(Reverse((Instant::now() + wait, idx)));
            }
            (
                Action::Final(Ending::Answer),
                Got::Answer {
                    status,
                    headers,
                    body,
                    base64,
                },
            ) => self.final_answer(idx, status, headers, body, base64),
            (Action::Final(Ending::Answer), Got::Why(why)) => {
                let r = self.items[idx]
                    .live_mut()
                    .finish_without_answer(ErrorInfo::new(codes::INTERNAL, why));
                self.finish(idx, r);
            }
            (Action::Final(Ending::Error(code)), got) => {
                let why = match got {
                    Got::Why(why) => why,
                    Got::Answer { status, .. } => format!("the answer was HTTP {status}"),
                };
                let message = match code {
                    codes::OUTCOME_UNKNOWN => format!(
                        "{why}; the request may have run. {} is not idempotent so it was not sent again ({ALLOW_RESEND})",
                        self.items[idx].live().request.method
                    ),
                    _ => why,
                };
                let r = self.items[idx]
                    .live_mut()
                    .finish_without_answer(ErrorInfo::new(code, message));
                self.finish(idx, r);
            }
        }
    }

    /// The HTTP answer stands: a success may lead to the next page.
    fn final_answer(
        &mut self,
        idx: usize,
        status: u16,
        headers: Map<String, Value>,
        body: Value,
        base64: bool,
    ) {
        let ok = (200..300).contains(&status);
        if ok {
            self.scopes.succeeded(&self.items[idx].live().scope);
        }
        let key = self.options().api.next_link_key();
        let follow = self.options().follow_next_link;
        let item = self.items[idx].live_mut();
        let mut incomplete = None;
        if follow && ok && !base64 {
            match item.next_link(&body, &self.ctx.options) {
                Ok(Some(next)) => {
                    tracing::debug!(id = item.request.id.as_str(), "next page followed");
                    item.add_page(body, next, key);
                    self.ready.push_back(idx);
                    return;
                }
                Ok(None) => {}
                Err(why) => incomplete = Some(why),
            }
        }
        let gone = status == 404 && item.maybe_ran && item.request.method == "DELETE";
        let mut result = item.finish_http(status, headers, body, base64, key);
        if let Some(why) = incomplete {
            result.error = Some(ErrorInfo::new(codes::INCOMPLETE_LISTING, why));
        }
        if gone {
            // The first send ran and its answer was lost: gone is what was asked.
            result.status = 204;
            result.error = None;
            result.body = Value::Null;
            result.note = Some("the first DELETE's answer was lost and the resend was answered 404: the resource is gone, as asked".into());
        }
        self.finish(idx, result);
    }

    /// Hands out a final result, then releases or fails the requests that
    /// depend on it (and theirs, and so on, without recursion).
    fn finish(&mut self, idx: usize, result: ItemResult) {
        let mut work = vec![(idx, result)];
        while let Some((i, mut result)) = work.pop() {
            if self.items[i].outcome().is_some() {
                debug_assert!(false, "request {i} finished twice");
                continue;
            }
            result.index = i;
            let ok = result.is_success();
            let done = Slot::Done {
                ok,
                status: result.status,
            };
            let Slot::Live(mut item) = std::mem::replace(&mut self.items[i], done) else {
                unreachable!("checked above");
            };
            if let Some(sub) = item.request.subscription.take() {
                result.subscription = Some(sub);
            }
            self.progress.finished(ok);
            if let (Some(j), Some(d)) = (&self.ctx.journal, &item.digest) {
                // A record that cannot be written leaves the request "sent" in
                // the journal: a rerun resends a read, and ends a write
                // OutcomeUnknown. Nothing is lost either way.
                let _ = j.done(i, d, &result);
            }
            if ok {
                self.keep(i, &result, !item.dependents.is_empty(), item.request.named);
            }
            let (id, status) = (result.id.clone(), result.status);
            self.outbox.push(result);
            for d in item.dependents {
                if self.items[d].outcome().is_some() {
                    continue;
                }
                if !ok {
                    let r = failed_dependency(self.items[d].live_mut(), &id, status);
                    work.push((d, r));
                    continue;
                }
                let waiting = &mut self.items[d].live_mut().waiting;
                *waiting -= 1;
                if *waiting == 0 {
                    if let Some(result) = self.release(d) {
                        work.push((d, result));
                    }
                }
            }
        }
    }

    /// Keeps a success's answer for the requests that read it: those waiting
    /// now, and, while the input is open, ones still to come that name it
    /// (the latest [`KEEP_FOR_LATECOMERS`] of those).
    fn keep(&mut self, i: usize, result: &ItemResult, awaited: bool, named: bool) {
        if awaited {
            self.kept.insert(i, Kept::of(result));
        } else if self.input_open && named {
            self.kept.insert(i, Kept::of(result));
            self.kept_for_latecomers.push_back(i);
            if self.kept_for_latecomers.len() > KEEP_FOR_LATECOMERS {
                if let Some(old) = self.kept_for_latecomers.pop_front() {
                    self.kept.remove(&old);
                }
            }
        }
    }

    /// Ends the run early: drops the batches on the wire and finishes every
    /// unfinished item with `code`.
    /// A write that was on the wire, or whose earlier answer was lost, may
    /// have run: it ends `OutcomeUnknown`, saying why the run stopped.
    fn abandon(&mut self, in_flight: &mut InFlight, code: &str, message: &str) {
        self.progress
            .batch_landed(self.in_flight_items, in_flight.len() as u64);
        in_flight.clear();
        self.scopes.clear();
        self.in_flight_items = 0;
        self.ready.clear();
        self.delayed.clear();
        for idx in 0..self.items.len() {
            if self.items[idx].outcome().is_none() {
                let item = self.items[idx].live_mut();
                let sent = item.on_wire || item.maybe_ran;
                let error = if sent && !item.request.is_read() {
                    let m = format!(
                        "{message}, but it had been sent and may have run ({} is a write: check before sending it again)",
                        item.request.method
                    );
                    ErrorInfo::new(codes::OUTCOME_UNKNOWN, m)
                } else {
                    ErrorInfo::new(code, message)
                };
                let result = item.finish_without_answer(error);
                self.finish(idx, result);
            }
        }
    }
}

fn find_header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}
