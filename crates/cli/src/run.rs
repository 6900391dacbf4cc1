//! `azbatch run` and `azbatch subscriptions`: requests in, one JSON result per
//! line out as they finish, a summary and (on a terminal) a progress bar on
//! standard error, Ctrl+C to cancel.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use azbatch::journal::Journal;
use azbatch::limits;
use azbatch::options::AuthSpec;
use azbatch::request::RequestList;
use azbatch::result::codes;
use azbatch::{Error, ItemResult, Job, Next, Options, OptionsSpec, RequestSpec};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::input;
use crate::output::{Format, Output};

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
    /// The reader of the results went away (`azbatch run ... | head -1`): on
    /// Unix 141, what a shell reports for a program a closed pipe ended
    /// (128 + SIGPIPE), so `set -o pipefail` reads it as it reads `yes | head`;
    /// on Windows, where pipes end programs with no signal, 0.
    pub const CLOSED: i32 = if cfg!(unix) { 141 } else { 0 };
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
    #[arg(long, env = "AZBATCH_ENDPOINT")]
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
    /// Items per batch.
    #[arg(long, help = format!("Items per batch (ARM 1-{}, Graph 1-{}; default {})", limits::ARM_MAX_BATCH, limits::GRAPH_MAX_BATCH, limits::DEFAULT_BATCH_SIZE))]
    batch_size: Option<u64>,
    /// Batches in flight at once.
    #[arg(long, help = format!("Batches in flight at once ({}-{}; default {})", limits::CONCURRENCY.0, limits::CONCURRENCY.1, limits::DEFAULT_CONCURRENCY))]
    concurrency: Option<u64>,
    /// Sends per request before its last answer is final.
    #[arg(long, help = format!("Sends per request before its last answer is final ({}-{}; default {})", limits::MAX_ATTEMPTS.0, limits::MAX_ATTEMPTS.1, limits::DEFAULT_MAX_ATTEMPTS))]
    max_attempts: Option<u64>,
    /// Fetch every nextLink page and merge them into one result.
    #[arg(long)]
    follow_next_link: bool,
    /// Fail instead of sending the requests one by one when the batch
    /// endpoint itself is refused (404, 405 or 400).
    #[arg(long)]
    no_batch_fallback: bool,
    /// Deadline of the whole run in seconds.
    #[arg(long, value_name = "SECONDS", help = format!("Deadline of the whole run in seconds (default {})", limits::DEFAULT_TIMEOUT.as_secs()))]
    timeout: Option<f64>,
    /// How long one HTTP attempt waits for its answer, in seconds.
    #[arg(long, value_name = "SECONDS", help = format!("How long one HTTP attempt waits for its answer, in seconds (default {}); a longer wait is a lost answer: reads are sent again, writes end OutcomeUnknown", limits::DEFAULT_ATTEMPT_TIMEOUT.as_secs()))]
    attempt_timeout: Option<f64>,
    /// Graph version: v1.0 or beta.
    #[arg(long)]
    graph_version: Option<String>,
    /// Send POST and PATCH requests again when a batch's answer was lost (they may run twice).
    #[arg(long)]
    retry_non_idempotent: bool,
    /// Keep a crash-safe journal here: run the same command again after a crash
    /// and only what has no final result is sent (the rest is printed again).
    #[arg(long, value_name = "PATH")]
    journal: Option<PathBuf>,
    /// Print results in input order (still as soon as each one's turn comes).
    #[arg(long)]
    ordered: bool,
    /// Log to standard error what AzBatch does: -v batches' fates, retries and
    /// pauses; -vv every batch sent and answered (never a token or secret).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// How results are printed: JSON lines (the default, streamed), a JSON
    /// array, CSV, or a table (printed once every result is in).
    #[arg(long, value_enum, default_value = "jsonl")]
    output: Format,
    /// Fields to print, comma-separated dotted paths, in that order: id,status,body.value.0.id
    /// (CSV and table default: id,method,url,status,error.code,attempts,error.message).
    #[arg(long, value_name = "FIELDS", value_parser = some_fields)]
    select: Option<String>,
    /// Check everything, print the plan (dependency waves, batches, each item's
    /// method, URL and throttle scope) and send nothing; no token is asked for.
    #[arg(long)]
    dry_run: bool,
    /// Log lines as text or as JSON objects.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
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

/// `--select`'s value, refused when it names no field.
fn some_fields(s: &str) -> Result<String, String> {
    if s.split(',').all(|f| f.trim().is_empty()) {
        return Err("names no field (give fields such as id,status,body.value)".into());
    }
    Ok(s.to_string())
}

fn usage(message: impl std::fmt::Display) -> i32 {
    eprintln!("azbatch: {message}");
    exit::USAGE
}

impl Common {
    /// Starts logging as asked: `-v`/`-vv`, else `AZBATCH_LOG`.
    fn logging(&self) {
        let json = self.log_format == "json";
        match self.verbose {
            0 => {
                if let Ok(filter) = std::env::var("AZBATCH_LOG") {
                    azbatch::log::init(&filter, json);
                }
            }
            1 => azbatch::log::init("azbatch=info", json),
            _ => azbatch::log::init("azbatch=debug", json),
        }
    }

    fn options(&self) -> Result<Options, String> {
        self.logging();
        let auth = match (&self.token, &self.auth) {
            (Some(_), _) => None,
            (None, kind) => Some(AuthSpec {
                kind: kind.clone().unwrap_or_else(|| "azureCli".into()),
                client_id: self.client_id.clone(),
                az_path: None,
            }),
        };
        Options::from_spec(OptionsSpec {
            api: self.api.clone(),
            cloud: self.cloud.clone(),
            endpoint: self.endpoint.clone(),
            token: self.token.clone(),
            auth,
            batch_size: self.batch_size,
            concurrency: self.concurrency,
            max_attempts: self.max_attempts,
            timeout_seconds: self.timeout,
            attempt_timeout_seconds: self.attempt_timeout,
            graph_version: self.graph_version.clone(),
            follow_next_link: Some(self.follow_next_link),
            batch_fallback: Some(!self.no_batch_fallback),
            retry_non_idempotent: Some(self.retry_non_idempotent),
            journal: self.journal.as_ref().map(|p| p.display().to_string()),
            ..OptionsSpec::default()
        })
        .map_err(|e| e.to_string())
    }
}

/// `azbatch run`. Requests go out as they are read: from a file, once the
/// whole file has been checked (a bad request stops the run before anything is
/// sent); from standard input, as they come (a bad one stops the reading
/// there: what was read before it still runs and is reported, and the exit
/// code says the input was bad).
pub fn run(args: RunArgs) -> i32 {
    let options = match args.common.options() {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let path = args.input.filter(|p| p.as_os_str() != "-");
    let name = path
        .as_ref()
        .map_or("standard input".into(), |p| p.display().to_string());
    let open = || -> Result<Box<dyn BufRead + Send>, String> {
        match &path {
            Some(p) => match std::fs::File::open(p) {
                Ok(f) => Ok(Box::new(BufReader::new(f))),
                Err(e) => Err(format!("cannot read {}: {e}", p.display())),
            },
            None => Ok(Box::new(BufReader::new(std::io::stdin()))),
        }
    };
    if args.common.dry_run {
        // Before the file check: a dry run opens no journal either.
        return match open() {
            Ok(r) => dry_run(r, &options, &name),
            Err(e) => usage(e),
        };
    }
    // A file, and standard input that holds a JSON array (one document), is
    // checked whole before anything is sent; JSON lines from a pipe go as
    // they are read.
    let reader = match open().and_then(|r| whole_if_array(r, path.is_some())) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let reader = match reader {
        Input::Checked(text) => match check(std::io::Cursor::new(text.as_bytes()), &options) {
            Ok(_) => Box::new(std::io::Cursor::new(text.into_bytes())) as Box<dyn BufRead + Send>,
            Err(e) => return usage(format!("{name}: {e}")),
        },
        Input::File => match open().and_then(|r| check(r, &options)) {
            Ok(_) => match open() {
                Ok(r) => r,
                Err(e) => return usage(e),
            },
            Err(e) => return usage(format!("{name}: {e}")),
        },
        Input::Stream(r) => r,
    };
    let job = Arc::new(Job::new(options));
    if let Err(e) = job.open() {
        return usage(format!("{name}: {e}"));
    }
    let producer = job.clone();
    let feeder = std::thread::spawn(move || {
        let mut added = 0;
        let read = input::read_each(reader, |r| {
            add_when_room(&producer, r, added)?;
            added += 1;
            Ok(())
        });
        // Always, so the run ends once what was read is done.
        let _ = producer.close_input();
        read.map_err(|e| (e, added))
    });
    let code = stream(job, &args.common);
    match feeder.join() {
        // No requests (a filter that selected nothing) is a run of none: 0.
        Ok(Ok(_)) => code,
        Ok(Err((e, 0))) => usage(format!("{name}: {e}; nothing was sent")),
        Ok(Err((e, sent))) => usage(format!(
            "{name}: {e}; the {} before it {} sent (results above); nothing after it was read",
            plural(sent as u64, "request", "requests"),
            if sent == 1 { "was" } else { "were" }
        )),
        Err(_) => usage(format!("{name}: reading the requests failed")),
    }
}

/// `n` and the noun that goes with it: "1 batch", "2 batches".
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// How the requests are read: a file is checked whole, then streamed; a JSON
/// array from standard input is read whole and checked; JSON lines from
/// standard input stream as they come.
enum Input {
    File,
    Checked(String),
    Stream(Box<dyn BufRead + Send>),
}

/// Looks at what the input starts with: a JSON array from a pipe is read
/// whole (its leading blank lines kept, so errors name the right line).
fn whole_if_array(mut reader: Box<dyn BufRead + Send>, file: bool) -> Result<Input, String> {
    use std::io::Read as _;
    if file {
        return Ok(Input::File);
    }
    let mut head = Vec::new();
    loop {
        let buf = reader
            .fill_buf()
            .map_err(|e| format!("standard input: cannot read: {e}"))?;
        if buf.is_empty() {
            break;
        }
        let blank = buf
            .iter()
            .take_while(|b| b.is_ascii_whitespace() || [0xEF, 0xBB, 0xBF].contains(*b))
            .count();
        head.extend_from_slice(&buf[..blank]);
        let rest_starts_array = buf.get(blank) == Some(&b'[');
        let more = blank < buf.len();
        reader.consume(blank);
        if more {
            if !rest_starts_array {
                let lead = std::io::Cursor::new(head);
                return Ok(Input::Stream(Box::new(lead.chain(reader))));
            }
            let mut text = String::from_utf8_lossy(&head).into_owned();
            reader
                .read_to_string(&mut text)
                .map_err(|e| format!("standard input: cannot read: {e}"))?;
            return Ok(Input::Checked(text));
        }
    }
    Ok(Input::Stream(Box::new(std::io::Cursor::new(head))))
}

/// `--dry-run`: every request read and checked (all held: it is a plan), the
/// plan printed, nothing sent.
fn dry_run(reader: impl BufRead, options: &Options, name: &str) -> i32 {
    let mut list = RequestList::default();
    let read = input::read_each(reader, |r| {
        let spec = spec_of(r.json, list.len()).map_err(|e| format!("line {}: {e}", r.line))?;
        list.add(spec, options)
            .map(|_| ())
            .map_err(|e| format!("line {}: {e}", r.line))
    });
    if let Err(e) = read {
        return usage(format!("{name}: {e}"));
    }
    if let Err(e) = list.check_dependencies() {
        return usage(format!("{name}: {e}"));
    }
    let waves = list.waves();
    let requests = list.into_vec();
    // An error is a closed pipe: the reader has what it wanted.
    let _ = crate::dry_run::print(&requests, &waves, options, &mut std::io::stdout().lock());
    exit::OK
}

/// Checks every request of a file as the run would, holding none of them.
fn check(reader: impl BufRead, options: &Options) -> Result<usize, String> {
    let mut list = RequestList::default();
    // The journal, if any, must belong to this input: checked before anything is sent.
    let journal = match &options.journal {
        Some(p) => Some(Journal::open(p).map_err(|e| e.to_string())?),
        None => None,
    };
    // Line and id of each request with a dependsOn, to name it if one is unknown.
    let mut named = std::collections::HashMap::new();
    let n = input::read_each(reader, |r| {
        if r.json.get("dependsOn").is_some() {
            let id = r.json.get("id").or_else(|| r.json.get("name"));
            let id = id.map(|v| v.as_str().map_or(v.to_string(), str::to_string));
            named.insert(list.len(), (r.line, id));
        }
        spec_of(r.json, list.len())
            .and_then(|spec| {
                list.add(spec, options)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("line {}: {e}", r.line))?;
        let request = list.take_last().expect("just added");
        if let Some(j) = &journal {
            j.past(list.len() - 1, &request)
                .map_err(|e| format!("line {}: {e}", r.line))?;
        }
        Ok(())
    })?;
    let id_of = |i: usize| named.get(&i).and_then(|(_, id)| id.clone());
    if let Some((i, e)) = list.unknown_dependency(id_of) {
        let line = named.get(&i).map_or(0, |(line, _)| *line);
        return Err(format!("line {line}: {e}"));
    }
    Ok(n)
}

fn spec_of(json: Value, index: usize) -> Result<RequestSpec, String> {
    RequestSpec::from_value(input::normalize(json), index).map_err(|e| e.to_string())
}

/// Adds one request read from the input, waiting while the run has enough to
/// do (the results are being printed meanwhile).
fn add_when_room(job: &Job, r: input::Read, index: usize) -> Result<(), String> {
    let spec = spec_of(r.json, index).map_err(|e| format!("line {}: {e}", r.line))?;
    loop {
        match job.add(spec.clone()) {
            Ok(_) => return Ok(()),
            Err(Error::Full) => std::thread::sleep(Duration::from_millis(2)),
            // Ctrl+C: the reading stops, the run ends as it does.
            Err(Error::Cancelled) => return Ok(()),
            Err(e) => return Err(format!("line {}: {e}", r.line)),
        }
    }
}

/// `azbatch subscriptions`: the same request in every visible subscription.
pub fn subscriptions(args: SubscriptionsArgs) -> i32 {
    let options = match args.common.options() {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let body: Option<Value> = match args.body.as_deref().map(serde_json::from_str) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => return usage(format!("--body is not JSON: {e}")),
    };
    let job = Job::new(options);
    let template = RequestSpec {
        method: Some(args.method),
        body,
        for_each_subscription: Some(true),
        ..RequestSpec::get(args.url)
    };
    let shown = format!(
        "{} {}",
        template
            .method
            .as_deref()
            .unwrap_or("GET")
            .to_ascii_uppercase(),
        template.url.as_deref().unwrap_or("")
    );
    if let Err(e) = job.add(template) {
        return usage(e);
    }
    if args.common.dry_run {
        // The subscriptions are known only from the listing, which needs a token.
        println!(
            "azbatch dry run: {shown}\n  sent once in every subscription the token can see, listed when the run starts ({}, every page), in batches of at most {} to {}\n  throttle scopes: one per subscription ({}/{{subscriptionId}})\nnothing sent, no token asked for",
            azbatch::fanout::LISTING_URL,
            job.options().batch_size,
            job.options().batch_url(),
            azbatch::dialect::arm::subscription_scope(shown.split(' ').next().unwrap_or("GET")),
        );
        return exit::OK;
    }
    if let Err(e) = job.start() {
        return usage(format!("the subscriptions: {e}"));
    }
    stream(Arc::new(job), &args.common)
}

/// Why the first authentication failure happened, for standard error: the
/// token source's own words (which source, what it answered, what to do) or
/// the service's refusal. Never holds a token: neither message is built
/// from one.
fn auth_reason(r: &ItemResult) -> String {
    let e = r.error.as_ref();
    let said = e.map_or(String::new(), |e| format!("{}: {}", e.code, e.message));
    if r.status == 401 {
        format!("the service refused the token (HTTP 401, {said}); check that it is for this endpoint and has not expired, or use --auth")
    } else {
        said
    }
}

fn is_auth_failure(r: &ItemResult) -> bool {
    r.status == 401
        || r.error.as_ref().is_some_and(|e| {
            e.code == codes::AUTHENTICATION_FAILED || e.code == codes::TOKEN_EXPIRED
        })
}

/// Prints each result of the started job as one JSON line as it finishes.
fn stream(job: Arc<Job>, common: &Common) -> i32 {
    let ordered = common.ordered;
    let mut output = Output::new(common.output, common.select.as_deref());
    cancel_on_ctrl_c(job.clone());
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| progress_bar(job.clone()));
    let mut auth_failed: Option<String> = None;
    let mut pending: BTreeMap<usize, ItemResult> = BTreeMap::new();
    let mut next_index = 0;
    // Results already waiting go out in one write; the output is flushed
    // before each wait for more, so nothing finished sits in the buffer.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    // The reader went away (a closed pipe): stop sending, stay quiet.
    let mut closed = false;
    loop {
        let next = match job.next(Duration::ZERO) {
            Ok(Next::Timeout) => {
                if !closed && out.flush().is_err() {
                    closed = true;
                    job.cancel();
                }
                job.next(Duration::from_millis(200))
            }
            next => next,
        };
        let r = match next {
            Ok(Next::Item(r)) => r,
            Ok(Next::Timeout) => continue,
            Ok(Next::Done) => break,
            Err(e) => return usage(e),
        };
        if auth_failed.is_none() && is_auth_failure(&r) {
            auth_failed = Some(auth_reason(&r));
        }
        let ready: Vec<ItemResult> = if ordered {
            pending.insert(r.index, r);
            let mut lines = vec![];
            while let Some(l) = pending.remove(&next_index) {
                lines.push(l);
                next_index += 1;
            }
            lines
        } else {
            vec![r]
        };
        for r in &ready {
            let bytes = output.result(r);
            if !closed && !bytes.is_empty() && out.write_all(&bytes).is_err() {
                closed = true;
                job.cancel();
            }
        }
    }
    closed = closed
        || out
            .write_all(&output.end())
            .and_then(|_| out.flush())
            .is_err();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if closed {
        // What was cancelled is in the journal, if there is one; nothing
        // failed that the reader wanted.
        return exit::CLOSED;
    }
    report(&job, auth_failed)
}

/// The summary on standard error, and the exit code it comes to.
fn report(job: &Job, auth_failed: Option<String>) -> i32 {
    let s = job.summary().unwrap_or_default();
    let replayed = if s.replayed > 0 {
        format!(
            " ({} replayed from the journal, not sent again)",
            s.replayed
        )
    } else {
        String::new()
    };
    eprintln!(
        "azbatch: {}: {} succeeded, {} failed{replayed}, {}, {}, {:.2} s",
        plural(s.total, "request", "requests"),
        s.succeeded,
        s.failed,
        plural(s.retries, "retry", "retries"),
        plural(s.batches, "batch", "batches"),
        s.elapsed_ms as f64 / 1000.0
    );
    if s.fallback.is_some() {
        eprintln!("azbatch: warning: the batch endpoint was refused, so the requests were sent one by one (--no-batch-fallback turns this off)");
    }
    if let Some(why) = auth_failed {
        eprintln!("azbatch: authentication failed: {why}");
        exit::AUTH
    } else if s.failed > 0 {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// Ctrl+C cancels the job: unfinished requests still get a result.
fn cancel_on_ctrl_c(job: Arc<Job>) {
    let said = AtomicBool::new(false);
    let _ = ctrlc::set_handler(move || {
        if !said.swap(true, Ordering::SeqCst) {
            eprintln!("azbatch: cancelling; unfinished requests end as Cancelled");
        }
        job.cancel();
    });
}

/// A bar on standard error, fed from the job's counters.
fn progress_bar(job: Arc<Job>) -> ProgressBar {
    let bar = ProgressBar::new(job.progress().total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
            .expect("a valid template"),
    );
    let b = bar.clone();
    std::thread::spawn(move || {
        while !b.is_finished() {
            let p = job.progress();
            b.set_length(p.total);
            b.set_position(p.completed);
            let rate = p.completed as f64 / b.elapsed().as_secs_f64().max(0.001);
            b.set_message(format!(
                "{rate:.0}/s, {} in flight, {} retries, {} throttled, {} failed",
                p.in_flight, p.retries, p.throttled, p.failed
            ));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    bar
}
