//! The engine: sends batches in parallel, polls asynchronous ones, classifies
//! every answer, puts retryable items into later batches after their wait,
//! follows `nextLink` pages, holds requests back until the requests they depend
//! on have succeeded (filling in their references), and gives every request
//! exactly one final result, streamed out as soon as it is known.

mod item;
mod scopes;
mod send;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenSource;
use crate::options::Options;
use crate::plan;
use crate::progress::Progress;
use crate::reference;
use crate::request::Request;
use crate::result::{codes, ErrorInfo, ItemResult, Summary};
use crate::retry::{envelope_not_processed, is_retryable_status, retry_after, slow_down};
use crate::transport::Transport;
use crate::wire::{self, ItemAnswer, Outgoing};
use item::Item;
use scopes::Scopes;
use send::{Ctx, Reply};

/// Graph's header telling how much of the app's throttling limit is used.
const THROTTLE_PERCENT: &str = "x-ms-throttle-limit-percentage";

/// Everything a run needs besides its requests.
pub struct Engine {
    ctx: Arc<Ctx>,
}

impl Engine {
    /// An engine for `options` that sends through `transport`.
    pub fn new(options: Arc<Options>, transport: Arc<dyn Transport>) -> Engine {
        let auth = options
            .credential
            .clone()
            .map(|c| TokenSource::new(c, options.resource(), options.cloud.login().to_string()));
        Engine {
            ctx: Arc::new(Ctx {
                options,
                transport,
                auth,
            }),
        }
    }

    /// Runs `requests` to completion (or cancellation, or the deadline). Each
    /// request's final result goes to `sink` once, as soon as it is known.
    /// Every `dependsOn` must name a request in `requests`
    /// ([`crate::request::RequestList::check_dependencies`]); one that does not
    /// finishes its request with an error.
    pub async fn run(
        &self,
        requests: Vec<Request>,
        sink: UnboundedSender<ItemResult>,
        progress: Arc<Progress>,
        cancel: CancellationToken,
    ) -> Summary {
        let started = Instant::now();
        let deadline = started + self.ctx.options.timeout;
        progress.set_total(requests.len() as u64);
        let mut run = Run::new(self.ctx.clone(), requests, sink, progress.clone());
        let mut in_flight: FuturesUnordered<BoxFuture<'static, (Vec<usize>, Reply)>> =
            FuturesUnordered::new();

        loop {
            let now = Instant::now();
            run.promote_due(now);
            for idx in run.scopes.release(now).into_iter().rev() {
                run.ready.push_front(idx);
            }
            let paused = run.paused_until.filter(|t| *t > now);
            while paused.is_none()
                && in_flight.len() < self.ctx.options.concurrency
                && !run.ready.is_empty()
            {
                // Empty when every ready request's scope is paused.
                if let Some(batch) = run.launch(now) {
                    in_flight.push(batch);
                }
            }
            if in_flight.is_empty()
                && run.ready.is_empty()
                && run.delayed.is_empty()
                && !run.scopes.holding()
            {
                break;
            }
            let next_retry = [
                run.delayed.peek().map(|Reverse((t, _))| *t),
                run.scopes.next_wake(),
            ]
            .into_iter()
            .flatten()
            .min();
            let wake = match (paused, next_retry) {
                (Some(p), _) if !run.ready.is_empty() => Some(p),
                (Some(p), Some(r)) => Some(p.max(r)),
                (_, r) => r,
            };
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
                _ = sleep_until_opt(wake), if wake.is_some() => {}
            }
        }
        // Nothing should be left; if something is, it still gets its one result.
        run.abandon(
            &mut in_flight,
            codes::INTERNAL,
            "AzBatch stopped before this request could be sent",
        );

        let p = progress.snapshot();
        Summary {
            total: p.total,
            succeeded: p.succeeded,
            failed: p.failed,
            retries: p.retries,
            batches: p.batches,
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    if let Some(t) = t {
        tokio::time::sleep_until(t).await;
    }
}

/// The answer of a finished request, kept while requests that depend on it may
/// still read it through references.
struct Kept {
    status: u16,
    headers: Map<String, Value>,
    body: Value,
}

/// The mutable state of one run.
struct Run {
    ctx: Arc<Ctx>,
    items: Vec<Item>,
    /// Items to send as soon as a batch slot is free, in order.
    ready: VecDeque<usize>,
    /// Items waiting for their retry time.
    delayed: BinaryHeap<Reverse<(Instant, usize)>>,
    /// For each item, the items that depend on it.
    dependents: Vec<Vec<usize>>,
    /// For each item, how many of its dependencies have not succeeded yet.
    waiting: Vec<usize>,
    /// Lower-case id → index, for references.
    ids: HashMap<String, usize>,
    /// Answers of finished items that others depend on.
    kept: HashMap<usize, Kept>,
    /// Throttle scopes: requests wait here while their scope is throttled.
    scopes: Scopes,
    /// Each request's throttle scope.
    scope_keys: Vec<String>,
    /// Items per batch now; halved after an envelope 429.
    batch_size: usize,
    /// No batch is sent before this: the service throttled the whole client.
    paused_until: Option<Instant>,
    in_flight_items: u64,
    sink: UnboundedSender<ItemResult>,
    progress: Arc<Progress>,
}

impl Run {
    fn new(
        ctx: Arc<Ctx>,
        requests: Vec<Request>,
        sink: UnboundedSender<ItemResult>,
        progress: Arc<Progress>,
    ) -> Run {
        let ids: HashMap<String, usize> = requests
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.to_lowercase(), i))
            .collect();
        let mut dependents = vec![Vec::new(); requests.len()];
        let mut waiting = vec![0; requests.len()];
        let mut unknown = vec![];
        for (i, r) in requests.iter().enumerate() {
            for d in &r.depends_on {
                match ids.get(&d.to_lowercase()) {
                    Some(&j) => {
                        dependents[j].push(i);
                        waiting[i] += 1;
                    }
                    None => unknown.push((i, d.clone())),
                }
            }
        }
        let (batch_size, concurrency) = (ctx.options.batch_size, ctx.options.concurrency);
        let scope_keys = requests
            .iter()
            .map(|r| scopes::key(ctx.options.api, &r.url))
            .collect();
        let mut run = Run {
            scope_keys,
            ctx,
            ready: (0..requests.len()).filter(|&i| waiting[i] == 0).collect(),
            items: requests.into_iter().map(Item::new).collect(),
            delayed: BinaryHeap::new(),
            dependents,
            waiting,
            ids,
            kept: HashMap::new(),
            batch_size,
            scopes: Scopes::new(batch_size, concurrency),
            paused_until: None,
            in_flight_items: 0,
            sink,
            progress,
        };
        for (i, d) in unknown {
            run.ready.retain(|&r| r != i);
            let msg = format!("dependsOn names \"{d}\", which is not a request of this run");
            let result =
                run.items[i].finish_without_answer(ErrorInfo::new(codes::FAILED_DEPENDENCY, msg));
            run.finish(i, result);
        }
        run
    }

    fn options(&self) -> &Options {
        &self.ctx.options
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some(Reverse((t, idx))) = self.delayed.peek().copied() {
            if t > now {
                break;
            }
            self.delayed.pop();
            self.ready.push_back(idx);
        }
    }

    /// Holds new batches back until `until` (the later of any two holds).
    fn pause(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }

    /// Plans the next batch from the ready queue and starts sending it; none
    /// when every ready request's scope is paused.
    fn launch(&mut self, now: Instant) -> Option<BoxFuture<'static, (Vec<usize>, Reply)>> {
        let (items, scopes, keys) = (&self.items, &mut self.scopes, &self.scope_keys);
        let batch = plan::next_batch(
            &mut self.ready,
            self.batch_size,
            |i| items[i].request.body.is_some(),
            |i| scopes.admit(&keys[i], i, now),
        );
        if batch.is_empty() {
            return None;
        }
        let names: Vec<String> = batch.iter().map(|i| i.to_string()).collect();
        let outgoing: Vec<Outgoing<'_>> = batch
            .iter()
            .zip(&names)
            .map(|(&i, name)| Outgoing {
                name,
                request: &self.items[i].request,
                url: &self.items[i].url,
                depends_on: vec![],
            })
            .collect();
        let body = wire::encode(self.options().api, &outgoing);
        for &i in &batch {
            let item = &mut self.items[i];
            item.attempts += 1;
            item.page_tries += 1;
        }
        self.in_flight_items += batch.len() as u64;
        self.progress.batch_sent(batch.len() as u64);
        let ctx = self.ctx.clone();
        Some(Box::pin(async move {
            let reply = ctx.send_batch(body).await;
            (batch, reply)
        }))
    }

    /// Handles the reply to one batch.
    fn land(&mut self, batch: Vec<usize>, reply: Reply) {
        for &idx in &batch {
            self.scopes.landed(&self.scope_keys[idx]);
        }
        self.in_flight_items -= batch.len() as u64;
        self.progress.batch_landed(batch.len() as u64);
        match reply {
            Reply::Items(answers) => {
                let mut by_name: HashMap<String, ItemAnswer> =
                    answers.into_iter().map(|a| (a.name.clone(), a)).collect();
                for idx in batch {
                    match by_name.remove(&idx.to_string()) {
                        Some(answer) => self.answered(idx, answer),
                        None => self.maybe_sent(
                            idx,
                            "the batch answer had no response for this request".into(),
                        ),
                    }
                }
            }
            Reply::Envelope {
                status,
                headers,
                body,
            } => {
                if status == 429 {
                    self.progress.throttled();
                    self.batch_size = (self.batch_size / 2).max(1);
                }
                let wait = retry_after(|k| find_header(&headers, k), SystemTime::now());
                if envelope_not_processed(status) {
                    self.pause(wait.unwrap_or_else(|| self.options().backoff.delay(1)));
                }
                let what = format!("the batch request was answered HTTP {status}");
                let key = self.options().api.next_link_key();
                for idx in batch {
                    if envelope_not_processed(status) {
                        let body = body.clone();
                        self.retry_or(idx, wait, move |item| {
                            item.finish_http(status, Map::new(), body, false, key)
                        });
                    } else if is_retryable_status(status) {
                        self.maybe_sent(idx, format!("{what}; the request may have run"));
                    } else {
                        let result = self.items[idx].finish_http(
                            status,
                            Map::new(),
                            body.clone(),
                            false,
                            key,
                        );
                        self.finish(idx, result);
                    }
                }
            }
            Reply::NotSent(why) => {
                for idx in batch {
                    let why = why.clone();
                    self.retry_or(idx, None, move |item| {
                        item.finish_without_answer(ErrorInfo::new(codes::CONNECTION_FAILED, why))
                    });
                }
            }
            Reply::MaybeSent(why) => {
                for idx in batch {
                    self.maybe_sent(idx, why.clone());
                }
            }
            Reply::Auth(e) => {
                let code = if e.expired {
                    codes::TOKEN_EXPIRED
                } else {
                    codes::AUTHENTICATION_FAILED
                };
                for idx in batch {
                    let result = self.items[idx]
                        .finish_without_answer(ErrorInfo::new(code, e.message.clone()));
                    self.finish(idx, result);
                }
            }
            Reply::TokenRenewed { body } => {
                let key = self.options().api.next_link_key();
                for idx in batch {
                    if self.items[idx].token_renewed {
                        // Rejected again with a fresh token: that is the answer.
                        let result =
                            self.items[idx].finish_http(401, Map::new(), body.clone(), false, key);
                        self.finish(idx, result);
                    } else {
                        self.items[idx].token_renewed = true;
                        let body = body.clone();
                        self.retry_or(idx, Some(Duration::ZERO), move |item| {
                            item.finish_http(401, Map::new(), body, false, key)
                        });
                    }
                }
            }
        }
    }

    /// The batch may have reached the service but we have no answer for `idx`:
    /// send it again only when that is safe (or the caller opted in).
    fn maybe_sent(&mut self, idx: usize, why: String) {
        let item = &self.items[idx];
        if item.request.is_idempotent() || self.options().retry_non_idempotent {
            self.retry_or(idx, None, move |item| {
                item.finish_without_answer(ErrorInfo::new(codes::INVALID_RESPONSE, why))
            });
        } else {
            let msg = format!(
                "{why}; {} is not idempotent so it was not sent again (set retryNonIdempotent to allow that)",
                item.request.method
            );
            let result =
                self.items[idx].finish_without_answer(ErrorInfo::new(codes::OUTCOME_UNKNOWN, msg));
            self.finish(idx, result);
        }
    }

    /// One item's own answer.
    fn answered(&mut self, idx: usize, answer: ItemAnswer) {
        if answer.status == 429 {
            self.progress.throttled();
        }
        if let Some(wait) = answer
            .header(THROTTLE_PERCENT)
            .and_then(|p| p.trim().parse().ok())
            .and_then(slow_down)
        {
            self.pause(wait);
        }
        let key = self.options().api.next_link_key();
        if is_retryable_status(answer.status) {
            let wait = retry_after(|k| answer.header(k), SystemTime::now());
            if answer.status == 429 {
                // The scope (an ARM subscription, the Graph app) waits as a whole.
                let pause = wait.unwrap_or_else(|| self.options().backoff.delay(1));
                self.scopes
                    .throttled(&self.scope_keys[idx], pause, Instant::now());
                if wait.is_some() {
                    // The service named the time to come back: that retry is
                    // scheduled, not a failure. The run's deadline still bounds it.
                    self.items[idx].forgive_last_try();
                }
            }
            self.retry_or(idx, wait, move |item| {
                item.finish_http(
                    answer.status,
                    answer.headers,
                    answer.body,
                    answer.base64,
                    key,
                )
            });
            return;
        }
        if (200..300).contains(&answer.status) {
            self.scopes.succeeded(&self.scope_keys[idx]);
        }
        let follow = self.options().follow_next_link;
        let item = &mut self.items[idx];
        if follow && (200..300).contains(&answer.status) && !answer.base64 {
            if let Some(next) = item.next_link(&answer.body, &self.ctx.options) {
                item.add_page(answer.body, next, key);
                self.ready.push_back(idx);
                return;
            }
        }
        let result = item.finish_http(
            answer.status,
            answer.headers,
            answer.body,
            answer.base64,
            key,
        );
        self.finish(idx, result);
    }

    /// Schedules another attempt after `wait` (or the backoff), or, when the item
    /// has used its attempts, finishes it with `last`.
    fn retry_or(
        &mut self,
        idx: usize,
        wait: Option<Duration>,
        last: impl FnOnce(&mut Item) -> ItemResult,
    ) {
        let item = &mut self.items[idx];
        if item.page_tries >= self.ctx.options.max_attempts {
            let result = last(item);
            self.finish(idx, result);
            return;
        }
        let wait = wait.unwrap_or_else(|| self.ctx.options.backoff.delay(item.page_tries));
        self.progress.retried(1);
        self.delayed.push(Reverse((Instant::now() + wait, idx)));
    }

    /// Hands out a final result, then releases or fails the requests that
    /// depend on it (and theirs, and so on, without recursion).
    fn finish(&mut self, idx: usize, result: ItemResult) {
        let mut work = vec![(idx, result)];
        while let Some((i, mut result)) = work.pop() {
            if self.items[i].done {
                debug_assert!(false, "request {i} finished twice");
                continue;
            }
            self.items[i].done = true;
            result.index = i;
            let ok = result.is_success();
            self.progress.finished(ok);
            let dependents = std::mem::take(&mut self.dependents[i]);
            if ok && !dependents.is_empty() {
                let kept = Kept {
                    status: result.status,
                    headers: result.headers.clone(),
                    body: result.body.clone(),
                };
                self.kept.insert(i, kept);
            }
            let (id, status) = (result.id.clone(), result.status);
            let _ = self.sink.send(result);
            for d in dependents {
                if self.items[d].done {
                    continue;
                }
                if !ok {
                    work.push((d, failed_dependency(&mut self.items[d], &id, status)));
                    continue;
                }
                self.waiting[d] -= 1;
                if self.waiting[d] == 0 {
                    match self.fill_references(d) {
                        Ok(()) => self.ready.push_back(d),
                        Err(why) => {
                            let r = self.items[d].finish_without_answer(ErrorInfo::new(
                                codes::REFERENCE_NOT_FOUND,
                                why,
                            ));
                            work.push((d, r));
                        }
                    }
                }
            }
        }
    }

    /// Fills `{{id.body.path}}` references of item `idx` from the answers of the
    /// requests it depends on, which have all succeeded.
    fn fill_references(&mut self, idx: usize) -> Result<(), String> {
        if !self.items[idx].request.has_references {
            return Ok(());
        }
        let (ids, kept) = (&self.ids, &self.kept);
        let answer_of = |id: &str| {
            let k = kept.get(ids.get(&id.to_lowercase())?)?;
            Some(reference::Answer {
                status: k.status,
                headers: &k.headers,
                body: &k.body,
            })
        };
        let r = &self.items[idx].request;
        let mut url = reference::fill_text(&r.url, &answer_of)?;
        if r.url.starts_with("{{") {
            url = crate::request::relative_url(&url, &self.ctx.options)
                .map_err(|why| format!("the filled-in url {why}"))?;
        }
        let headers = r
            .headers
            .iter()
            .map(|(k, v)| Ok((k.clone(), reference::fill_text(v, &answer_of)?)))
            .collect::<Result<Vec<_>, String>>()?;
        let body = match &r.body {
            Some(b) if !r.body_base64 => Some(reference::fill_json(b, &answer_of)?),
            other => other.clone(),
        };
        let item = &mut self.items[idx];
        item.url = url.clone();
        item.request.url = url;
        item.request.headers = headers;
        item.request.body = body;
        Ok(())
    }

    /// Ends the run early: drops the batches on the wire and finishes every
    /// unfinished item with `code`.
    fn abandon<F>(&mut self, in_flight: &mut FuturesUnordered<F>, code: &str, message: &str) {
        in_flight.clear();
        self.scopes.clear();
        self.progress.batch_landed(self.in_flight_items);
        self.in_flight_items = 0;
        self.ready.clear();
        self.delayed.clear();
        for idx in 0..self.items.len() {
            if !self.items[idx].done {
                let result = self.items[idx].finish_without_answer(ErrorInfo::new(code, message));
                self.finish(idx, result);
            }
        }
    }
}

/// The 424 of a request whose dependency `id` failed with `status`.
fn failed_dependency(item: &mut Item, id: &str, status: u16) -> ItemResult {
    let message = match status {
        0 => format!("not sent: request \"{id}\", which it depends on, did not succeed"),
        s => format!("not sent: request \"{id}\", which it depends on, failed with status {s}"),
    };
    let body = json!({"error": {"code": codes::FAILED_DEPENDENCY, "message": message}});
    item.finish_http(424, Map::new(), body, false, "")
}

fn find_header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// Runs `requests` with the real HTTP client and returns every result in the
/// order added, with the totals. For callers that want results as they finish,
/// use [`Engine::run`] (async) or [`crate::Batch::next`] (blocking).
pub async fn execute(
    options: Options,
    requests: Vec<Request>,
) -> Result<(Vec<ItemResult>, Summary), crate::Error> {
    let transport = crate::transport::ReqwestTransport::new(options.concurrency)
        .map_err(crate::Error::Internal)?;
    let engine = Engine::new(Arc::new(options), Arc::new(transport));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let n = requests.len();
    let summary = engine
        .run(
            requests,
            tx,
            Arc::new(Progress::default()),
            CancellationToken::new(),
        )
        .await;
    let mut results: Vec<ItemResult> = Vec::with_capacity(n);
    while let Some(r) = rx.recv().await {
        results.push(r);
    }
    results.sort_by_key(|r| r.index);
    Ok((results, summary))
}
