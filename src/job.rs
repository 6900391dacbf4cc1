//! A job: the Rust API's whole run, and the one driver of a run to its end.
//! Add requests, start, then take results one at a time as they finish
//! ([`Job::next`]) or all at once ([`Job::execute`], which is `start` and
//! `next` until done). Every method takes `&self`, so progress and cancel can
//! be called from another thread while one thread waits in `next`. The C ABI,
//! the command line and the demo all run through it. (One job sends many
//! batches: "batch" is the envelope on the wire.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenSource;
use crate::clock::Clock;
use crate::engine::{token_source, Arrival, Engine, Input};
use crate::error::Error;
use crate::fanout;
use crate::journal::{Journal, Past};
use crate::options::Options;
use crate::progress::{Progress, ProgressSnapshot};
use crate::queue::{self, ResultReceiver, ResultSender};
use crate::request::{Request, RequestList, RequestSpec};
use crate::result::{codes, ErrorInfo, ItemResult, Summary};
use crate::secret::Secret;
use crate::transport::{ReqwestTransport, Transport};

/// What [`Job::next`] hands out.
// Nearly every Next is an Item, moved once to the caller: boxing it would add
// an allocation per result to save a copy of 200 bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Next {
    /// One request's final result.
    Item(ItemResult),
    /// Nothing finished within the timeout; call again.
    Timeout,
    /// Every result has been handed out.
    Done,
}

/// What [`Job::execute`] returns: every result in the order added, and totals.
#[derive(Debug)]
pub struct Execution {
    /// One result per request, in the order the requests were added.
    pub results: Vec<ItemResult>,
    /// Totals of the run.
    pub summary: Summary,
}

/// A set of requests and, once started, their run.
pub struct Job {
    options: Arc<Options>,
    /// The HTTP client; the real one, made at the start, unless given.
    transport: Option<Arc<dyn Transport>>,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    state: Mutex<State>,
    /// While a job opened with [`Job::open`] takes more requests: apart from
    /// `state`, so adding never waits for a reader blocked in `next`.
    input: Mutex<Option<OpenInput>>,
    /// The run's token source, once started (for [`Job::set_token`]).
    tokens: Mutex<Option<Arc<TokenSource>>>,
}

/// The open input of a running job.
struct OpenInput {
    /// Checks each request (unique ids, no cycles) and keeps the graph.
    list: RequestList,
    /// Each request is checked against it as it is added.
    journal: Option<Arc<Journal>>,
    tx: mpsc::Sender<Arrival>,
    pending: Pending,
}

/// The ids of the requests handed to the engine whose results have not been
/// handed out, by index: if the run ends without finishing one (a bug), the
/// caller still gets a result for it. Holds only what is unfinished.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<BTreeMap<usize, String>>>);

impl Pending {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<usize, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The requests from index `from` on have these ids.
    fn extend<'a>(&self, from: usize, ids: impl IntoIterator<Item = &'a String>) {
        let mut map = self.lock();
        for (k, id) in ids.into_iter().enumerate() {
            map.insert(from + k, id.clone());
        }
    }

    fn remove(&self, index: usize) {
        self.lock().remove(&index);
    }

    fn take_first(&self) -> Option<(usize, String)> {
        self.lock().pop_first()
    }
}

/// Requests an open job holds for the engine before `add` answers "full".
const INPUT_CAPACITY: usize = 256;

enum State {
    Building(Box<Building>),
    Running(Box<Running>),
}

/// What a job holds before it starts.
#[derive(Default)]
struct Building {
    list: RequestList,
    /// Requests to send in every subscription ([`fanout`]).
    templates: Vec<RequestSpec>,
}

impl Building {
    fn added(&self) -> usize {
        self.list.len() + self.templates.len()
    }
}

struct Running {
    runtime: Runtime,
    results: ResultReceiver,
    task: Option<JoinHandle<Summary>>,
    /// To give a result to any request that the engine failed to finish.
    pending: Pending,
    summary: Option<Summary>,
}

/// The background side of a started job: expands subscription templates (after
/// listing the subscriptions in the same run), then runs every request.
struct Drive {
    options: Arc<Options>,
    transport: Arc<dyn Transport>,
    clock: Clock,
    sink: ResultSender,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    pending: Pending,
    auth: Option<Arc<TokenSource>>,
    journal: Option<Arc<Journal>>,
}

impl Drive {
    fn engine(&self, options: Arc<Options>) -> Engine {
        Engine::with_tokens(
            options,
            self.transport.clone(),
            self.clock,
            self.auth.clone(),
        )
    }

    /// The engine of the run proper, which keeps the journal.
    fn journaled_engine(&self) -> Engine {
        self.engine(self.options.clone())
            .with_journal(self.journal.clone())
    }

    async fn run(self, mut list: RequestList, templates: Vec<RequestSpec>) -> Summary {
        let mut fanned = fanout::Expanded::default();
        if !templates.is_empty() {
            let listing = self.list_subscriptions().await;
            fanned = fanout::expand_into(&mut list, &templates, &listing, &self.options);
        }
        let refused = fanned.refused;
        let (requests, graph) = list.into_linked();
        let n = requests.len();
        let ids = requests
            .iter()
            .map(|(r, _)| &r.id)
            .chain(refused.iter().map(|(id, ..)| id));
        self.pending.extend(0, ids);
        // Results for what could not become a request, after the requests' indexes.
        self.progress.add_total(refused.len() as u64);
        for (k, (id, error, listing)) in refused.into_iter().enumerate() {
            let mut r = ItemResult::no_answer(n + k, &id, 0, error);
            if let Some(l) = listing {
                (r.status, r.headers, r.body, r.attempts) =
                    (l.status, l.headers, l.body, l.attempts);
            }
            self.progress.finished(false);
            self.sink.send(r);
        }
        let journal = self.journal.as_deref();
        let first = requests
            .into_iter()
            .enumerate()
            .map(|(i, (request, links))| {
                // A fanned-out request is known only now: one the journal
                // holds another request for is not sent.
                let past = past(journal, i, &request).unwrap_or_else(|e| {
                    let error = ErrorInfo::new(codes::INVALID_REQUEST, e.to_string());
                    Past::Done(Box::new(ItemResult::no_answer(i, &request.id, 0, error)))
                });
                Arrival {
                    request,
                    links,
                    past,
                    subscription: fanned.subscriptions.remove(&i),
                }
            })
            .collect();
        let input = Input {
            first,
            rest: None,
            graph,
        };
        let engine = self.journaled_engine();
        engine
            .run_input(input, self.sink, self.progress, self.cancel)
            .await
    }

    async fn stream(self, input: Input) -> Summary {
        let engine = self.journaled_engine();
        engine
            .run_input(input, self.sink, self.progress, self.cancel)
            .await
    }

    /// Every subscription the token can see, all pages, cancelled with the job.
    async fn list_subscriptions(&self) -> ItemResult {
        let mut options = (*self.options).clone();
        options.follow_next_link = true;
        let mut list = RequestList::default();
        let listing = list
            .add(RequestSpec::get(fanout::LISTING_URL), &options)
            .cloned();
        let engine = self.engine(Arc::new(options));
        let (tx, mut rx) = queue::queue(queue::DEFAULT_LIMIT);
        let progress = Arc::new(Progress::default());
        match listing {
            Ok(r) => {
                engine.run(vec![r], tx, progress, self.cancel.clone()).await;
            }
            Err(e) => {
                tx.send(ItemResult::no_answer(
                    0,
                    "subscriptions",
                    0,
                    ErrorInfo::new(codes::INTERNAL, e.to_string()),
                ));
            }
        }
        rx.recv().await.unwrap_or_else(|| {
            ItemResult::no_answer(
                0,
                "subscriptions",
                0,
                ErrorInfo::new(codes::INTERNAL, "the listing ended without a result"),
            )
        })
    }
}

impl Job {
    /// A new, empty job.
    pub fn new(options: Options) -> Job {
        Job {
            options: Arc::new(options),
            transport: None,
            progress: Arc::new(Progress::default()),
            cancel: CancellationToken::new(),
            state: Mutex::new(State::Building(Box::default())),
            input: Mutex::new(None),
            tokens: Mutex::new(None),
        }
    }

    /// A job that sends through `transport` instead of the real HTTP client.
    pub fn with_transport(options: Options, transport: Arc<dyn Transport>) -> Job {
        let mut job = Job::new(options);
        job.transport = Some(transport);
        job
    }

    /// The options this job runs with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, Error> {
        self.state.lock().map_err(|_| poisoned())
    }

    /// Adds one request, or a template for every subscription
    /// (`for_each_subscription`, see [`crate::fanout`]). Returns its id.
    pub fn add(&self, spec: RequestSpec) -> Result<String, Error> {
        if let Some(input) = &mut *self.input.lock().map_err(|_| poisoned())? {
            return self.add_open(input, spec);
        }
        self.building(|b, options| {
            if spec.for_each_subscription != Some(true) {
                return Ok(b.list.add(spec, options)?.id.clone());
            }
            let id = fanout::check_template(&spec, b.added(), options)?;
            if b.templates.iter().any(|t| fanout::template_id(t).eq_ignore_ascii_case(&id)) {
                return Err(Error::InvalidRequest(format!(
                    "request[{}] (id \"{id}\"): field \"id\": another forEachSubscription template has this id; give each its own",
                    b.added()
                )));
            }
            b.templates.push(spec);
            Ok(id)
        })
    }

    /// Adds one request given as JSON; see [`Job::add`].
    pub fn add_json(&self, request_json: &str) -> Result<String, Error> {
        let open = self
            .input
            .lock()
            .map_err(|_| poisoned())?
            .as_ref()
            .map(|i| i.list.len());
        let index = match open {
            Some(n) => n,
            None => self.lock().map(|s| match &*s {
                State::Building(b) => b.added(),
                State::Running(_) => 0,
            })?,
        };
        self.add(RequestSpec::from_json(request_json, index)?)
    }

    /// A request for a job that is running with its input open: refused with
    /// [`Error::Full`] (nothing added) while the engine has enough to do.
    fn add_open(&self, input: &mut OpenInput, spec: RequestSpec) -> Result<String, Error> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if spec.for_each_subscription == Some(true) {
            return Err(Error::WrongState(
                "forEachSubscription templates are added before the job starts".into(),
            ));
        }
        let permit = input.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => Error::Full,
            mpsc::error::TrySendError::Closed(()) => {
                Error::WrongState("the run has ended; it takes no more requests".into())
            }
        })?;
        // Asked before it is added: a request the journal refuses is not
        // part of the run (nor of its graph).
        let request = input.list.prepare(spec, &self.options)?;
        let index = input.list.len();
        let past = past(input.journal.as_deref(), index, &request)?;
        let id = input.list.commit(request)?.id.clone();
        let (request, links) = input.list.take_last_linked().expect("just added");
        input.pending.extend(index, [&id]);
        permit.send(Arrival {
            request,
            links,
            past,
            subscription: None,
        });
        Ok(id)
    }

    /// Hands a running job a fresh token, used from its next batch on: for a
    /// job whose options gave a static `token`, whose caller renews it (the
    /// PowerShell module does, from the Az context, before it expires).
    pub fn set_token(&self, token: &str) -> Result<(), Error> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::InvalidOptions("token is empty".into()));
        }
        crate::secret::check_token(token).map_err(Error::InvalidOptions)?;
        let tokens = self.tokens.lock().map_err(|_| poisoned())?;
        let source = tokens
            .as_ref()
            .ok_or_else(|| Error::WrongState("start the job before handing it a token".into()))?;
        source
            .hand_in(Secret::new(token.to_string()))
            .map_err(|e| Error::InvalidOptions(e.message))
    }

    /// Starts sending what was added so far and keeps taking requests while
    /// the run goes on ([`Job::add`] answers [`Error::Full`] while the engine has
    /// enough to do: take results, then add again), until [`Job::close_input`].
    /// A request may name in `dependsOn` one added later.
    pub fn open(&self) -> Result<(), Error> {
        self.begin(true)
    }

    /// No more requests: what waits for an id never added fails, and the run
    /// ends when the rest is done. Closing twice, or a job never opened, is fine.
    pub fn close_input(&self) -> Result<(), Error> {
        self.input.lock().map_err(|_| poisoned())?.take();
        Ok(())
    }

    fn building<T>(
        &self,
        f: impl FnOnce(&mut Building, &Options) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        match &mut *self.lock()? {
            State::Building(b) => f(b, &self.options),
            State::Running(_) => Err(Error::WrongState(
                "requests cannot be added after the job has started".into(),
            )),
        }
    }

    /// Starts sending in the background. Results are then taken with [`Job::next`].
    pub fn start(&self) -> Result<(), Error> {
        self.begin(false)
    }

    fn begin(&self, open: bool) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let mut state = self.lock()?;
        let journal = match (&*state, &self.options.journal) {
            (State::Building(_), Some(path)) => Some(Arc::new(Journal::open(path)?)),
            _ => None,
        };
        let building = take_building(&mut state, open, journal.as_deref())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("azbatch")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the runtime: {e}")))?;
        let transport: Arc<dyn Transport> = match &self.transport {
            Some(t) => t.clone(),
            None => Arc::new(
                ReqwestTransport::new(self.options.concurrency, self.options.attempt_timeout)
                    .map_err(Error::Internal)?,
            ),
        };
        let clock = runtime.block_on(async { Clock::system() });
        let auth = token_source(&self.options, &transport, clock);
        *self.tokens.lock().map_err(|_| poisoned())? = auth.clone();
        let (tx, rx) = queue::queue(queue::DEFAULT_LIMIT);
        let pending = Pending::default();
        let drive = Drive {
            options: self.options.clone(),
            transport,
            clock,
            sink: tx,
            progress: self.progress.clone(),
            cancel: self.cancel.clone(),
            pending: pending.clone(),
            auth,
            journal: journal.clone(),
        };
        let task = if open {
            let mut list = building.list;
            let first = list.take_all();
            pending.extend(0, first.iter().map(|(r, _)| &r.id));
            let first = first
                .into_iter()
                .enumerate()
                .map(|(i, (request, links))| {
                    let past = past(journal.as_deref(), i, &request)?;
                    Ok(Arrival {
                        request,
                        links,
                        past,
                        subscription: None,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            let graph = list.graph();
            let (tx, rest) = mpsc::channel(INPUT_CAPACITY);
            *self.input.lock().map_err(|_| poisoned())? = Some(OpenInput {
                list,
                journal,
                tx,
                pending: pending.clone(),
            });
            runtime.spawn(drive.stream(Input {
                first,
                rest: Some(rest),
                graph,
            }))
        } else {
            runtime.spawn(drive.run(building.list, building.templates))
        };
        *state = State::Running(Box::new(Running {
            runtime,
            results: rx,
            task: Some(task),
            pending,
            summary: None,
        }));
        Ok(())
    }

    /// Waits up to `timeout` for the next finished result.
    pub fn next(&self, timeout: Duration) -> Result<Next, Error> {
        match &mut *self.lock()? {
            State::Building(_) => Err(Error::WrongState(
                "start the job before taking results".into(),
            )),
            State::Running(run) => Ok(run.next(timeout)),
        }
    }

    /// Starts the job and waits for every result; they come back in the order
    /// the requests were added.
    pub fn execute(&self) -> Result<Execution, Error> {
        if self.input.lock().map_err(|_| poisoned())?.is_some() {
            self.close_input()?;
        } else {
            self.start()?;
        }
        let mut slots: Vec<Option<ItemResult>> = Vec::new();
        loop {
            match self.next(Duration::from_secs(3600))? {
                Next::Item(r) => {
                    let i = r.index;
                    if slots.len() <= i {
                        slots.resize(i + 1, None);
                    }
                    slots[i] = Some(r);
                }
                Next::Timeout => continue,
                Next::Done => break,
            }
        }
        let results: Vec<ItemResult> = slots.into_iter().flatten().collect();
        let summary = self.summary().unwrap_or_default();
        Ok(Execution { results, summary })
    }

    /// Totals of the run, once every result has been handed out.
    pub fn summary(&self) -> Option<Summary> {
        match &*self.lock().ok()? {
            State::Running(run) => run.summary.clone(),
            State::Building(_) => None,
        }
    }

    /// The run's counters now. Safe from any thread at any time.
    pub fn progress(&self) -> ProgressSnapshot {
        self.progress.snapshot()
    }

    /// Stops sending; every unfinished request gets a `Cancelled` result.
    /// Safe from any thread at any time.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Running {
    fn next(&mut self, timeout: Duration) -> Next {
        // A result already waiting needs no timer (tokio's timers tick in
        // milliseconds: a zero timeout would still cost one), nor does a zero
        // timeout when none is.
        let got = match self.results.poll_now() {
            Ok(r) => Ok(Some(r)),
            Err(true) => Ok(None),
            Err(false) if timeout.is_zero() => Err(()),
            Err(false) => {
                let results = &mut self.results;
                self.runtime
                    .block_on(async { tokio::time::timeout(timeout, results.recv()).await })
                    .map_err(|_| ())
            }
        };
        match got {
            Err(_) => Next::Timeout,
            Ok(Some(result)) => {
                self.pending.remove(result.index);
                Next::Item(result)
            }
            // The run is over. If it ended without finishing everything (a
            // bug), the caller still gets one result for each request.
            Ok(None) => match self.pending.take_first() {
                Some((idx, id)) => {
                    let msg =
                        "AzBatch stopped before this request finished; it may or may not have run";
                    Next::Item(ItemResult::no_answer(
                        idx,
                        &id,
                        0,
                        ErrorInfo::new(codes::INTERNAL, msg),
                    ))
                }
                None => {
                    self.collect_summary();
                    Next::Done
                }
            },
        }
    }

    fn collect_summary(&mut self) {
        if let Some(task) = self.task.take() {
            self.summary = self.runtime.block_on(task).ok();
        }
    }
}

/// What a job built before `begin`, checked (dependencies, the journal) and
/// taken out of its state; the state stays as it was when a check fails.
fn take_building(
    state: &mut State,
    open: bool,
    journal: Option<&Journal>,
) -> Result<Building, Error> {
    match state {
        State::Building(b) if open && !b.templates.is_empty() => Err(Error::WrongState(
            "a job with forEachSubscription templates is started with start, not open".into(),
        )),
        State::Building(b) => {
            if !open {
                b.list.check_dependencies()?;
            }
            // Nothing is sent when the journal belongs to other input.
            b.list.try_each(|i, r| past(journal, i, r).map(drop))?;
            Ok(std::mem::take(b))
        }
        State::Running(_) => Err(Error::WrongState("the job has already started".into())),
    }
}

/// What an earlier run of the same input did with request `index`, as the
/// journal says (the one place a job asks it); an error when the journal
/// recorded another request at that place.
fn past(journal: Option<&Journal>, index: usize, request: &Request) -> Result<Past, Error> {
    match journal {
        Some(j) => j.past(index, request),
        None => Ok(Past::Unjournaled),
    }
}

fn poisoned() -> Error {
    Error::Internal("the job was poisoned by an earlier panic".into())
}

impl Drop for Job {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;

    use super::*;
    use crate::transport::{HttpRequest, HttpResponse, TransportError};

    /// A transport with a bug: every send panics, which ends the engine's task
    /// with every request unfinished.
    struct Broken;

    impl Transport for Broken {
        fn send(&self, _: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, TransportError>> {
            panic!("a bug in the transport");
        }
    }

    #[test]
    fn a_run_that_dies_still_gives_every_request_one_result() {
        let options =
            Options::from_json(r#"{"api":"arm","endpoint":"http://127.0.0.1:9","token":"t"}"#)
                .unwrap();
        for open in [false, true] {
            let job = Job::with_transport(options.clone(), Arc::new(Broken));
            let mut ids = vec![];
            if open {
                job.open().unwrap();
            }
            for k in 0..5 {
                let json = match k % 2 {
                    0 => format!(r#"{{"url":"/subscriptions/s{k}?api-version=1"}}"#),
                    _ => format!(r#"{{"id":"r{k}","url":"/subscriptions/s{k}?api-version=1"}}"#),
                };
                ids.push(job.add_json(&json).unwrap());
            }
            if open {
                job.close_input().unwrap();
            } else {
                job.start().unwrap();
            }
            let mut got = vec![];
            loop {
                match job.next(Duration::from_secs(10)).unwrap() {
                    Next::Item(r) => {
                        assert_eq!(
                            r.error.as_ref().map(|e| e.code.as_str()),
                            Some(codes::INTERNAL)
                        );
                        got.push(r.id);
                    }
                    Next::Done => break,
                    Next::Timeout => panic!("no result within 10 s (open: {open})"),
                }
            }
            got.sort();
            ids.sort();
            assert_eq!(got, ids, "open: {open}");
        }
    }
}
