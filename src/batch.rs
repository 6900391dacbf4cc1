//! A blocking facade over the engine: build a batch, add requests, then either
//! take results one at a time as they finish ([`Batch::next`]) or all at once
//! ([`Batch::execute`]). Every method takes `&self`, so progress and cancel can
//! be called from another thread while one thread waits in `next`; this is what
//! the C ABI exports.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::error::Error;
use crate::options::Options;
use crate::progress::{Progress, ProgressSnapshot};
use crate::request::{Request, RequestList};
use crate::result::{codes, ErrorInfo, ItemResult, Summary};
use crate::transport::ReqwestTransport;

/// What [`Batch::next`] hands out.
#[derive(Debug)]
pub enum Next {
    /// One request's final result.
    Item(ItemResult),
    /// Nothing finished within the timeout; call again.
    Timeout,
    /// Every result has been handed out.
    Done,
}

/// What [`Batch::execute`] returns: every result in the order added, and totals.
#[derive(Debug)]
pub struct Execution {
    /// One result per request, in the order the requests were added.
    pub results: Vec<ItemResult>,
    /// Totals of the run.
    pub summary: Summary,
}

/// A set of requests and, once started, their run.
pub struct Batch {
    options: Arc<Options>,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    state: Mutex<State>,
}

enum State {
    Building(RequestList),
    Running(Box<Running>),
}

struct Running {
    runtime: Runtime,
    results: mpsc::UnboundedReceiver<ItemResult>,
    task: Option<JoinHandle<Summary>>,
    /// Ids of all requests, to give a result to any the engine failed to finish.
    ids: Vec<String>,
    delivered: Vec<bool>,
    undelivered: usize,
    summary: Option<Summary>,
}

impl Batch {
    /// A new, empty batch.
    pub fn new(options: Options) -> Batch {
        Batch {
            options: Arc::new(options),
            progress: Arc::new(Progress::default()),
            cancel: CancellationToken::new(),
            state: Mutex::new(State::Building(RequestList::default())),
        }
    }

    /// The options this batch runs with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, Error> {
        self.state
            .lock()
            .map_err(|_| Error::Internal("the batch was poisoned by an earlier panic".into()))
    }

    /// Adds one request given as JSON; see [`RequestList::add_json`]. Returns its id.
    pub fn add_json(&self, request_json: &str) -> Result<String, Error> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        match &mut *self.lock()? {
            State::Building(list) => {
                let id = list.add_json(request_json, &self.options)?.id.clone();
                self.progress.set_total(list.len() as u64);
                Ok(id)
            }
            State::Running(_) => Err(Error::WrongState(
                "requests cannot be added after the batch has started".into(),
            )),
        }
    }

    /// Starts sending in the background. Results are then taken with [`Batch::next`].
    pub fn start(&self) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let mut state = self.lock()?;
        let list = match &mut *state {
            State::Building(list) => {
                list.check_dependencies()?;
                std::mem::take(list)
            }
            State::Running(_) => {
                return Err(Error::WrongState("the batch has already started".into()))
            }
        };
        let requests: Vec<Request> = list.into_vec();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("azbatch")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the runtime: {e}")))?;
        let transport = ReqwestTransport::new(self.options.concurrency).map_err(Error::Internal)?;
        let engine = Engine::new(self.options.clone(), Arc::new(transport));
        let (tx, rx) = mpsc::unbounded_channel();
        let ids: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
        let (progress, cancel) = (self.progress.clone(), self.cancel.clone());
        let task = runtime.spawn(async move { engine.run(requests, tx, progress, cancel).await });
        *state = State::Running(Box::new(Running {
            runtime,
            results: rx,
            task: Some(task),
            delivered: vec![false; ids.len()],
            undelivered: ids.len(),
            ids,
            summary: None,
        }));
        Ok(())
    }

    /// Waits up to `timeout` for the next finished result.
    pub fn next(&self, timeout: Duration) -> Result<Next, Error> {
        match &mut *self.lock()? {
            State::Building(_) => Err(Error::WrongState(
                "start the batch before taking results".into(),
            )),
            State::Running(run) => Ok(run.next(timeout)),
        }
    }

    /// Starts the batch and waits for every result; they come back in the order
    /// the requests were added.
    pub fn execute(&self) -> Result<Execution, Error> {
        self.start()?;
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

    /// Whether [`Batch::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl Running {
    fn next(&mut self, timeout: Duration) -> Next {
        if self.undelivered == 0 {
            self.collect_summary();
            return Next::Done;
        }
        let results = &mut self.results;
        let got = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, results.recv()).await });
        match got {
            Err(_) => Next::Timeout,
            Ok(Some(result)) => {
                self.mark(result.index);
                Next::Item(result)
            }
            // The engine ended without finishing everything: a bug, but the
            // caller still gets one result for each request.
            Ok(None) => {
                let idx = self
                    .delivered
                    .iter()
                    .position(|d| !d)
                    .expect("undelivered > 0");
                self.mark(idx);
                let msg =
                    "AzBatch stopped before this request finished; it may or may not have run";
                Next::Item(ItemResult::no_answer(
                    idx,
                    &self.ids[idx],
                    0,
                    ErrorInfo::new(codes::INTERNAL, msg),
                ))
            }
        }
    }

    fn mark(&mut self, idx: usize) {
        if let Some(d) = self.delivered.get_mut(idx) {
            if !*d {
                *d = true;
                self.undelivered -= 1;
            }
        }
    }

    fn collect_summary(&mut self) {
        if let Some(task) = self.task.take() {
            self.summary = self.runtime.block_on(task).ok();
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
