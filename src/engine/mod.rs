//! The engine: sends batches in parallel, polls asynchronous ones, asks the
//! [decision table](crate::decision) what every outcome means, puts retryable
//! items into later batches after their wait, follows `nextLink` pages, holds
//! requests back until the requests they depend on have succeeded (filling in
//! their references), and gives every request exactly one final result,
//! streamed out as soon as it is known.
//!
//! [`Engine::run_input`] is the loop, and reads as the table of contents:
//! each turn it launches what is ready ([`launch`]), hands out what finished
//! ([`effects`]), then waits for the first of: cancellation, the deadline, a
//! batch landing (with every other already in: [`landing`], whose outcomes go
//! through the decision table and are carried out in [`effects`]), the reader
//! taking results, more input ([`intake`]), or the next retry or refill time
//! ([`run`]).

// The rooms of a run: its state (run), then in the order a request passes
// through them: intake, launch, landing, effects.
mod effects;
mod intake;
mod landing;
mod launch;
mod run;
// What the rooms use.
mod bucket;
mod deps;
mod item;
#[cfg(test)]
mod pacing_tests;
mod providers;
mod scopes;
mod send;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenSource;
use crate::clock::Clock;
use crate::dependencies::{Links, SharedGraph};
use crate::journal::{Journal, Past};
use crate::options::Options;
use crate::progress::Progress;
use crate::queue::ResultSender;
use crate::request::Request;
use crate::result::{codes, SubscriptionInfo, Summary};
use crate::transport::Transport;
use run::Run;
use send::{Ctx, Reply};

/// Everything a run needs besides its requests.
pub struct Engine {
    ctx: Arc<Ctx>,
}

type InFlight = FuturesUnordered<BoxFuture<'static, (Vec<usize>, Reply)>>;

/// A request as a run takes it: the caller's input, its place in the run's
/// dependency graph, and what the job learned of it before the run: what an
/// earlier run of the same input did with it (its journal), and the
/// subscription a fan-out sent it to.
#[derive(Debug)]
pub struct Arrival {
    pub request: Request,
    pub links: Links,
    pub past: Past,
    pub subscription: Option<Box<SubscriptionInfo>>,
}

impl Arrival {
    /// `request`, linked as `links` say, with no journal and no fan-out behind it.
    pub fn new(request: Request, links: Links) -> Arrival {
        Arrival {
            request,
            links,
            past: Past::Unjournaled,
            subscription: None,
        }
    }
}

/// Where a run's requests come from: `first`, known at the start, then,
/// when there is a `rest`, more arriving while the run goes on, until every
/// sender of it is dropped. A request may depend on one that has not
/// arrived yet: it waits for it, and fails with `FailedDependency` if the
/// input ends without it.
pub struct Input {
    pub first: Vec<Arrival>,
    pub rest: Option<mpsc::Receiver<Arrival>>,
    /// The graph that placed every request given (built once, by the
    /// request list, or by [`Input::all`]).
    pub graph: SharedGraph,
}

impl Input {
    /// `requests`, all known at the start, placed in a graph of their own.
    pub fn all(requests: Vec<Request>) -> Input {
        let graph = SharedGraph::default();
        let first = {
            let mut g = graph.lock();
            requests
                .into_iter()
                .map(|r| {
                    let links = g.push(r.given_id(), &r.depends_on);
                    Arrival::new(r, links)
                })
                .collect()
        };
        Input {
            first,
            rest: None,
            graph,
        }
    }
}

impl Engine {
    /// An engine for `options` that sends through `transport` (token fetches
    /// too) and reads wall time from `clock` (the tests' way in; a job
    /// builds its engine with its token source).
    #[cfg(test)]
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
        self.run_input(Input::all(requests), sink, progress, cancel)
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
        let mut run = Run::new(self.ctx.clone(), input.graph, sink, progress.clone());
        input.first.into_iter().for_each(|r| run.add(r));
        let mut incoming = input.rest;
        if incoming.is_none() {
            run.close_input();
        }
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
                Some((batch, reply)) = in_flight.next(), if !in_flight.is_empty() => {
                    run.land(batch, reply);
                    // Every answer already in, before the next send: a 429 in
                    // one of them is heard before the others' slots refill.
                    while let Some(Some((batch, reply))) = in_flight.next().now_or_never() {
                        run.land(batch, reply);
                    }
                }
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
        summary(&progress, started, run.one_by_one.is_some())
    }
}

fn summary(progress: &Progress, started: Instant, one_by_one: bool) -> Summary {
    let p = progress.snapshot();
    Summary {
        total: p.total,
        succeeded: p.succeeded,
        failed: p.failed,
        retries: p.retries,
        replayed: p.replayed,
        batches: p.batches,
        elapsed_ms: started.elapsed().as_millis() as u64,
        fallback: one_by_one.then_some("single"),
    }
}

/// Adds the requests already waiting in `incoming`, while the run takes them;
/// true when the input has ended.
fn drain(incoming: &mut Option<mpsc::Receiver<Arrival>>, run: &mut Run) -> bool {
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

async fn recv(incoming: &mut Option<mpsc::Receiver<Arrival>>) -> Option<Arrival> {
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
