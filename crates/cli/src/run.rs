//! `azbatch run` and `azbatch subscriptions`: requests in, one JSON result per
//! line out as they finish, a summary and (on a terminal) a progress bar on
//! standard error, Ctrl+C to cancel.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read as _, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azbatch::engine::Engine;
use azbatch::request::{Request, RequestList};
use azbatch::result::codes;
use azbatch::transport::ReqwestTransport;
use azbatch::{ItemResult, Options, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::input;

/// Exit codes.
pub mod exit {
    /// Every request succeeded.
    pub const OK: i32 = 0;
    /// Some requests failed (or were cancelled).
    pub const FAILED: i32 = 1;
    /// Bad usage or input.
    pub const USAGE: i32 = 2;
    /// No token could be had, or the service refused it.
    pub const AUTH: i32 = 3;
}

/// Options shared by `run` and `subscriptions`.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// The API: arm or graph.
    #[arg(long, default_value = "arm", value_parser = ["arm", "graph"])]
    api: String,
    /// AzureCloud, AzureUSGovernment or AzureChinaCloud (picks the ARM, Graph and login hosts).
    #[arg(long)]
    cloud: Option<String>,
    /// The service endpoint, overriding the cloud's (e.g. the emulator's http://127.0.0.1:PORT).
    #[arg(long)]
    endpoint: Option<String>,
    /// Where tokens come from when no --token is given.
    #[arg(long, value_parser = ["azureCli", "managedIdentity", "clientSecret"], conflicts_with = "token")]
    auth: Option<String>,
    /// Client id of a user-assigned managed identity (with --auth managedIdentity).
    #[arg(long, requires = "auth")]
    client_id: Option<String>,
    /// A bearer token (default with neither --token nor --auth: the Azure CLI's).
    #[arg(long, env = "AZBATCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Items per batch (ARM 1-500, Graph 1-20; default 20).
    #[arg(long)]
    batch_size: Option<u64>,
    /// Batches in flight at once (default 8).
    #[arg(long)]
    concurrency: Option<u64>,
    /// Sends per request before its last answer is final (default 6).
    #[arg(long)]
    max_attempts: Option<u64>,
    /// Fetch every nextLink page and merge them into one result.
    #[arg(long)]
    follow_next_link: bool,
    /// Deadline of the whole run in seconds (default 3600).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Graph version: v1.0 or beta.
    #[arg(long)]
    graph_version: Option<String>,
    /// Send POST and PATCH requests again when a batch's answer was lost (they may run twice).
    #[arg(long)]
    retry_non_idempotent: bool,
    /// Print results in input order (still as soon as each one's turn comes).
    #[arg(long)]
    ordered: bool,
}

/// `azbatch run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Requests: a JSON array, or one JSON request per line; '-' or nothing reads standard input.
    input: Option<PathBuf>,
}

/// `azbatch subscriptions`.
#[derive(clap::Args, Debug)]
pub struct SubscriptionsArgs {
    #[command(flatten)]
    common: Common,
    /// URL template with {subscriptionId}, e.g. '/subscriptions/{subscriptionId}/resourceGroups?api-version=2021-04-01'.
    #[arg(long)]
    url: String,
    /// Method of each request.
    #[arg(long, default_value = "GET")]
    method: String,
    /// JSON body of each request.
    #[arg(long)]
    body: Option<String>,
}

fn usage(message: impl std::fmt::Display) -> i32 {
    eprintln!("azbatch: {message}");
    exit::USAGE
}

impl Common {
    fn options(&self, follow_next_link: bool) -> Result<Options, String> {
        let mut o = json!({"api": self.api});
        let set = |o: &mut Value, k: &str, v: Value| {
            if !v.is_null() {
                o[k] = v;
            }
        };
        set(&mut o, "cloud", json!(self.cloud));
        set(&mut o, "endpoint", json!(self.endpoint));
        set(&mut o, "batchSize", json!(self.batch_size));
        set(&mut o, "concurrency", json!(self.concurrency));
        set(&mut o, "maxAttempts", json!(self.max_attempts));
        set(&mut o, "timeoutSeconds", json!(self.timeout));
        set(&mut o, "graphVersion", json!(self.graph_version));
        o["followNextLink"] = json!(self.follow_next_link || follow_next_link);
        o["retryNonIdempotent"] = json!(self.retry_non_idempotent);
        match (&self.token, &self.auth) {
            (Some(t), _) => o["token"] = json!(t),
            (None, Some(kind)) => {
                o["auth"] = json!({"type": kind});
                if let Some(id) = &self.client_id {
                    o["auth"]["clientId"] = json!(id);
                }
            }
            (None, None) => o["auth"] = json!({"type": "azureCli"}),
        }
        Options::from_json(&o.to_string()).map_err(|e| e.to_string())
    }
}

/// `azbatch run`.
pub async fn run(args: RunArgs) -> i32 {
    let options = match args.common.options(false) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let (text, name) = match args.input.as_deref().filter(|p| p.as_os_str() != "-") {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => (t, path.display().to_string()),
            Err(e) => return usage(format!("cannot read {}: {e}", path.display())),
        },
        None => {
            let mut t = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut t) {
                return usage(format!("cannot read standard input: {e}"));
            }
            (t, "standard input".to_string())
        }
    };
    let reads = match input::parse(&text) {
        Ok(r) => r,
        Err(e) => return usage(format!("{name}: {e}")),
    };
    let mut list = RequestList::default();
    for r in reads {
        if let Err(e) = list.add_json(&input::normalize(r.json).to_string(), &options) {
            return usage(format!("{name}: line {}: {e}", r.line));
        }
    }
    if let Err(e) = list.check_dependencies() {
        return usage(format!("{name}: {e}"));
    }
    if list.is_empty() {
        return usage(format!("{name}: no requests"));
    }
    execute(options, list.into_vec(), args.common.ordered).await
}

/// `azbatch subscriptions`: the same request in every visible subscription.
pub async fn subscriptions(args: SubscriptionsArgs) -> i32 {
    if args.common.api != "arm" {
        return usage("subscriptions works with --api arm only");
    }
    if !args.url.contains("{subscriptionId}") {
        return usage("--url must contain {subscriptionId}");
    }
    let body: Option<Value> = match args.body.as_deref().map(serde_json::from_str) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => return usage(format!("--body is not JSON: {e}")),
    };
    let (list_options, options) = match (args.common.options(true), args.common.options(false)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let (subs, _) = match azbatch::engine::execute(
        list_options,
        vec![Request::get(
            "subscriptions",
            "/subscriptions?api-version=2022-12-01",
        )],
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let answer = &subs[0];
    if !answer.is_success() {
        eprintln!(
            "azbatch: listing subscriptions failed: {} {}",
            answer.status,
            answer
                .error
                .as_ref()
                .map(|e| e.message.as_str())
                .unwrap_or("")
        );
        return if is_auth_failure(answer) {
            exit::AUTH
        } else {
            exit::FAILED
        };
    }
    let mut list = RequestList::default();
    for s in answer.body["value"].as_array().into_iter().flatten() {
        let Some(id) = s["subscriptionId"].as_str() else {
            continue;
        };
        let mut r = json!({"id": id, "method": args.method, "url": args.url.replace("{subscriptionId}", id)});
        if let Some(b) = &body {
            r["body"] = b.clone();
        }
        if let Err(e) = list.add_json(&r.to_string(), &options) {
            return usage(e);
        }
    }
    eprintln!("azbatch: {} subscriptions", list.len());
    if list.is_empty() {
        return exit::OK;
    }
    execute(options, list.into_vec(), args.common.ordered).await
}

fn is_auth_failure(r: &ItemResult) -> bool {
    r.status == 401
        || r.error.as_ref().is_some_and(|e| {
            e.code == codes::AUTHENTICATION_FAILED || e.code == codes::TOKEN_EXPIRED
        })
}

/// Runs the requests, printing each result as one JSON line.
async fn execute(options: Options, requests: Vec<Request>, ordered: bool) -> i32 {
    let transport = match ReqwestTransport::new(options.concurrency) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let total = requests.len() as u64;
    let engine = Engine::new(Arc::new(options), Arc::new(transport));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = Arc::new(Progress::default());
    let cancel = CancellationToken::new();
    let run = {
        let (progress, cancel) = (progress.clone(), cancel.clone());
        tokio::spawn(async move { engine.run(requests, tx, progress, cancel).await })
    };
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("azbatch: cancelling; unfinished requests end as Cancelled");
                cancel.cancel();
            }
        });
    }
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| progress_bar(total, progress.clone()));

    let (mut failed, mut auth_failed) = (0u64, false);
    let mut pending: BTreeMap<usize, String> = BTreeMap::new();
    let mut next_index = 0;
    let mut out = std::io::stdout().lock();
    while let Some(r) = rx.recv().await {
        failed += u64::from(!r.is_success());
        auth_failed |= is_auth_failure(&r);
        let line = serde_json::to_string(&r).expect("results serialize");
        let ready: Vec<String> = if ordered {
            pending.insert(r.index, line);
            let mut lines = vec![];
            while let Some(l) = pending.remove(&next_index) {
                lines.push(l);
                next_index += 1;
            }
            lines
        } else {
            vec![line]
        };
        for l in ready {
            let written = writeln!(out, "{l}").and_then(|_| out.flush());
            if written.is_err() {
                // The reader went away (a closed pipe): stop sending, stay quiet.
                cancel.cancel();
            }
        }
    }
    let summary = run.await.unwrap_or_default();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "azbatch: {} requests: {} succeeded, {} failed, {} retries, {} batches, {:.2} s",
        summary.total,
        summary.succeeded,
        failed,
        summary.retries,
        summary.batches,
        summary.elapsed_ms as f64 / 1000.0
    );
    if auth_failed {
        exit::AUTH
    } else if failed > 0 {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// A bar on standard error, fed from the run's counters.
fn progress_bar(total: u64, progress: Arc<Progress>) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
            .expect("a valid template"),
    );
    let b = bar.clone();
    tokio::spawn(async move {
        while !b.is_finished() {
            let p = progress.snapshot();
            b.set_position(p.completed);
            let rate = p.completed as f64 / b.elapsed().as_secs_f64().max(0.001);
            b.set_message(format!(
                "{rate:.0}/s, {} in flight, {} retries, {} throttled, {} failed",
                p.in_flight, p.retries, p.throttled, p.failed
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    bar
}
