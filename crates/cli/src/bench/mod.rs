//! `azbatch bench`: workloads side by side, one run, one table. The emulator
//! runs in this process with a latency model and ARM's documented buckets;
//! AzBatch runs as a child `azbatch run` (so its peak memory and CPU are its
//! own, read from the kernel when it exits); the other strategies run here.
//! Each row: time, the ideal (the larger of the latency bound and the
//! throttling bound, from the emulator's own model), their ratio, the item
//! attempts the emulator saw and how many it answered 429.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use azbatch_emulator::arm::model::subscription_id;
use azbatch_emulator::graph::model::user_id;
use azbatch_emulator::{
    Config, Emulator, GraphThrottle, Latency, PlainRule, PlainServer, Throttle,
};
use serde::Serialize;
use serde_json::{json, Value};

pub mod library;
mod plain;
mod sdk;

const TOKEN: &str = "bench-token";
const PIM: &str =
    "providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2020-10-01";
/// Batches AzBatch keeps in flight in the benchmark, and items per batch.
const CONCURRENCY: usize = 16;
const BATCH: usize = 20;
/// One-at-a-time runs are timed on this many requests and scaled to the
/// workload; sequential batches on this many (both are far from the buckets
/// then, so time grows with the count).
const SAMPLE: usize = 200;
const SAMPLE_SEQUENTIAL: usize = 3_000;

/// Benchmark settings.
#[derive(clap::Args)]
pub struct Args {
    /// Print the rows as a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Workloads to run, by letter (a to q); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Mean latency of every call inside the emulator, in milliseconds (each call takes 0.5x to 1.5x of it).
    #[arg(long, default_value_t = 100)]
    latency_ms: u64,
    /// Multiplies every workload's request count (0.01 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Run AzBatch's rows only (a quick look after a change).
    #[arg(long)]
    azbatch_only: bool,
}

/// One row of the table.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    workload: String,
    /// What answered: the emulator, or the plain server (429 and Retry-After only).
    server: &'static str,
    strategy: String,
    /// None for a strategy that could not run here (its note says why).
    seconds: Option<f64>,
    /// None where neither latency nor throttling bounds the workload.
    ideal_seconds: Option<f64>,
    ratio: Option<f64>,
    attempts: usize,
    throttled: usize,
    peak_rss_mb: Option<f64>,
    cpu_seconds: Option<f64>,
    note: Option<String>,
}

/// A workload: ARM reads of `urls` against an emulator with `subscriptions`,
/// or (`graph`) Graph requests: PATCHes of users, or reads of their calendars.
struct Workload {
    letter: &'static str,
    name: String,
    subscriptions: usize,
    urls: Vec<String>,
    graph: bool,
    /// The method of every request (GET, or PATCH for the Graph bulk update).
    method: &'static str,
    /// Onboarding chains instead of `urls` (Graph: create a user, then six
    /// requests that name its new id).
    chains: usize,
    latency: Latency,
    /// The strategies other than AzBatch (skipped where they would take hours
    /// or, for memory, mean nothing).
    baselines: bool,
    /// ARM's buckets as the emulator keeps them for this workload.
    throttle: Throttle,
    /// Graph's resource units as the emulator keeps them.
    graph_throttle: GraphThrottle,
    /// The cloud AzBatch is told it talks to (its documented seeds).
    cloud: Option<&'static str>,
    /// A limit AzBatch learns from the answers: AzBatch's row alone.
    learned: bool,
    /// Runs against the plain server with these rules instead of the emulator.
    plain: Option<Vec<PlainRule>>,
}

fn reads(n: usize, subscriptions: usize) -> Vec<String> {
    (0..n).map(|i| read_url(i, subscriptions)).collect()
}

/// Read number `i` of a workload over `subscriptions`.
fn read_url(i: usize, subscriptions: usize) -> String {
    format!(
        "/subscriptions/{}/resourceGroups?api-version=2021-04-01&n={i}",
        subscription_id(i % subscriptions)
    )
}

impl Workload {
    /// ARM reads of `urls` in `subscriptions`.
    fn arm(
        letter: &'static str,
        name: String,
        subscriptions: usize,
        urls: Vec<String>,
        latency: Latency,
    ) -> Workload {
        Workload {
            letter,
            name,
            subscriptions,
            urls,
            graph: false,
            method: "GET",
            chains: 0,
            latency,
            baselines: true,
            throttle: Throttle::default(),
            graph_throttle: GraphThrottle::default(),
            cloud: None,
            learned: false,
            plain: None,
        }
    }

    /// This workload against the plain server, its limits `rules`.
    fn plain(self, rules: Vec<PlainRule>) -> Workload {
        Workload {
            plain: Some(rules),
            learned: true,
            ..self
        }
    }

    /// This workload against buckets AzBatch does not know beforehand.
    fn learning(self, throttle: Throttle, graph_throttle: GraphThrottle) -> Workload {
        Workload {
            throttle,
            graph_throttle,
            learned: true,
            ..self
        }
    }

    /// Graph requests of `method` to `urls`.
    fn graph(
        letter: &'static str,
        name: String,
        method: &'static str,
        urls: Vec<String>,
        latency: Latency,
    ) -> Workload {
        Workload {
            graph: true,
            method,
            ..Workload::arm(letter, name, 1, urls, latency)
        }
    }
}

fn workloads(latency_ms: u64, scale: f64) -> Vec<Workload> {
    let n = move |count: usize| ((count as f64 * scale).ceil() as usize).max(1);
    let mean = Duration::from_millis(latency_ms);
    let latency = Latency {
        min: mean / 2,
        max: mean * 3 / 2,
    };
    let mut all = arm_workloads(&n, latency);
    all.extend(graph_workloads(&n, latency));
    all.extend(learned_workloads(&n, latency));
    all.extend(plain::workloads(&n, latency));
    all.push(Workload {
        baselines: false,
        ..Workload::arm(
            "h",
            format!("(h) {} small results (memory; no latency)", n(200_000)),
            1_000,
            reads(n(200_000), 1_000),
            Latency::fixed(Duration::ZERO),
        )
    });
    all
}

fn arm_workloads(n: &impl Fn(usize) -> usize, latency: Latency) -> Vec<Workload> {
    let pim = (0..n(200))
        .map(|i| format!("/subscriptions/{}/{PIM}", subscription_id(i)))
        .collect();
    let name_a = format!("(a) PIM eligibility in each of {} subscriptions", n(200));
    let name_b = format!("(b) {} ARM reads over 500 subscriptions", n(10_000));
    let name_c = format!(
        "(c) {} ARM reads in one subscription (bucket-bound)",
        n(1_000)
    );
    let name_d = format!("(d) {} ARM reads over 200 subscriptions", n(100_000));
    vec![
        Workload::arm("a", name_a, n(200), pim, latency),
        Workload::arm("b", name_b, 500, reads(n(10_000), 500), latency),
        Workload::arm("c", name_c, 1, reads(n(1_000), 1), latency),
        Workload::arm("d", name_d, 200, reads(n(100_000), 200), latency),
    ]
}

/// Limits the emulator keeps that AzBatch must learn from the answers (or
/// take from its cloud's documented seeds): AzBatch's row alone.
fn learned_workloads(n: &impl Fn(usize) -> usize, latency: Latency) -> Vec<Workload> {
    let arm = Throttle::default();
    let graph = GraphThrottle::default();
    let slow = Throttle {
        read_refill: 5.0,
        headers: false,
        ..arm
    };
    // Another principal takes 45 of the global bucket's 50 a second (a
    // global bucket of twice a principal's here, so the row is short).
    let shared = Throttle {
        global_factor: 2.0,
        others_per_second: 45.0,
        ..arm
    };
    let hourly = Throttle {
        read_capacity: 12_000.0,
        read_refill: 12_000.0 / 3600.0,
        ..arm
    };
    let users = (0..n(2_000))
        .map(|i| format!("/users/{}", user_id(i)))
        .collect();
    vec![
        Workload::arm(
            "i",
            format!(
                "(i) {} ARM reads, a bucket slower than documented (250 + 5/s), no rate headers",
                n(600)
            ),
            1,
            reads(n(600), 1),
            latency,
        )
        .learning(slow, graph),
        Workload::arm(
            "j",
            format!(
                "(j) {} ARM reads, the global bucket drained by another principal (5/s left)",
                n(600)
            ),
            1,
            reads(n(600), 1),
            latency,
        )
        .learning(shared, graph),
        Workload {
            cloud: Some("AzureChinaCloud"),
            ..Workload::arm(
                "k",
                format!(
                    "(k) {} ARM reads, China's hourly counts (12,000 reads an hour)",
                    n(12_100)
                ),
                1,
                reads(n(12_100), 1),
                latency,
            )
            .learning(hourly, graph)
        },
        Workload::graph(
            "l",
            format!("(l) {} Graph user updates, no unit headers", n(2_000)),
            "PATCH",
            users,
            latency,
        )
        .learning(
            arm,
            GraphThrottle {
                headers: false,
                ..graph
            },
        ),
    ]
}

fn graph_workloads(n: &impl Fn(usize) -> usize, latency: Latency) -> Vec<Workload> {
    let users = (0..n(2_000))
        .map(|i| format!("/users/{}", user_id(i)))
        .collect();
    // Each person's calendar queries together, as a script reading the
    // calendars of 50 people makes them.
    let calendars = (0..50)
        .flat_map(|m| (0..n(40)).map(move |k| format!("/users/{}/events?n={k}", user_id(m))))
        .collect();
    let name_e = format!(
        "(e) {} Graph user updates (throttled by resource units)",
        n(2_000)
    );
    let name_f = format!(
        "(f) {} Graph requests: {} onboarding chains with dependencies and references",
        7 * n(200),
        n(200)
    );
    let name_g = format!(
        "(g) {} calendar reads over 50 mailboxes (Outlook: 4 at once each)",
        50 * n(40)
    );
    vec![
        Workload::graph("e", name_e, "PATCH", users, latency),
        Workload::graph("f", name_f, "POST", vec![], latency).with_chains(n(200)),
        Workload::graph("g", name_g, "GET", calendars, latency),
    ]
}

impl Workload {
    fn with_chains(self, chains: usize) -> Workload {
        Workload { chains, ..self }
    }
}

/// The ideal: every request's latency once with AzBatch's parallelism
/// (rounds of `CONCURRENCY * BATCH` items, each round as long as a batch: the
/// slowest of its items, since a batch is answered when all of them are), or
/// what the service's limits allow, whichever is longer.
fn ideal(w: &Workload, throttle: &Throttle) -> Option<f64> {
    if w.graph {
        return Some(graph_ideal(w));
    }
    let per_sub = w.urls.len().div_ceil(w.subscriptions) as f64;
    let bucket = (per_sub - throttle.read_capacity).max(0.0) / throttle.read_refill;
    let f = throttle.global_factor;
    let global_rate = throttle.read_refill * f - throttle.others_per_second;
    let global = (per_sub - throttle.read_capacity * f).max(0.0) / global_rate.max(0.001);
    Some(latency_bound(w, w.urls.len()).max(bucket).max(global)).filter(|i| *i > 0.0)
}

/// The time `n` requests sent together take: one round ends with the slowest
/// of its items; more rounds follow one another, each as long as a batch.
fn latency_bound(w: &Workload, n: usize) -> f64 {
    let (lo, hi) = (w.latency.min.as_secs_f64(), w.latency.max.as_secs_f64());
    // The expected slowest of k latencies spread evenly from lo to hi.
    let slowest = |k: usize| lo + (hi - lo) * k as f64 / (k as f64 + 1.0);
    let per_round = CONCURRENCY * BATCH;
    match n {
        0 => 0.0,
        n if n <= per_round => slowest(n),
        n => n.div_ceil(per_round) as f64 * slowest(BATCH),
    }
}

/// The Graph workloads' ideal: rounds of batches (two waves for the chains:
/// the new users, then what names them), the resource units of what the
/// directory counts (Outlook's requests are not among them), and each
/// mailbox's requests four at a time.
fn graph_ideal(w: &Workload) -> f64 {
    let g = w.graph_throttle;
    let chain_requests: Vec<Value> = (0..w.chains)
        .flat_map(crate::demo::onboarding_requests)
        .collect();
    let mut requests: Vec<(&str, &str)> = chain_requests
        .iter()
        .map(|r| {
            let method = r["method"].as_str().unwrap_or("GET");
            (method, r["url"].as_str().unwrap_or(""))
        })
        .collect();
    requests.extend(w.urls.iter().map(|u| (w.method, u.as_str())));
    let latency = match w.chains {
        0 => latency_bound(w, requests.len()),
        n => latency_bound(w, n) + latency_bound(w, requests.len() - n),
    };
    let mut units = 0.0;
    let mut per_mailbox: std::collections::HashMap<String, usize> = Default::default();
    for (method, url) in &requests {
        let path = url.split('?').next().unwrap_or(url);
        match azbatch_emulator::service::mailbox_of(path) {
            Some(m) => *per_mailbox.entry(m).or_default() += 1,
            None if *method == "GET" => units += g.read_cost,
            None => units += g.write_cost,
        }
    }
    // Each mailbox's rounds of four, each as long as a batch.
    let mailbox = per_mailbox.values().max().map_or(0.0, |n| {
        let rounds = n.div_ceil(azbatch_emulator::service::OUTLOOK_CONCURRENCY);
        rounds as f64 * latency_bound(w, BATCH)
    });
    latency
        .max((units - g.capacity).max(0.0) / g.refill)
        .max(mailbox)
}

pub async fn run(args: Args) -> Result<()> {
    let mut rows = vec![];
    for w in workloads(args.latency_ms, args.scale) {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == w.letter) {
            continue;
        }
        if !args.json {
            eprintln!("{}", w.name);
        }
        rows.extend(workload_rows(&w, args.azbatch_only).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows);
    }
    Ok(())
}

/// The server AzBatch runs against: the emulator or the plain one.
trait Server {
    fn url(&self) -> String;
    /// Item attempts answered so far, and how many were 429.
    fn counts(&self) -> (usize, usize);
}

impl Server for Emulator {
    fn url(&self) -> String {
        Emulator::url(self)
    }
    fn counts(&self) -> (usize, usize) {
        let ops = self.ops();
        let throttled = ops.iter().filter(|o| o.status == 429).count();
        (ops.len(), throttled)
    }
}

impl Server for PlainServer {
    fn url(&self) -> String {
        PlainServer::url(self)
    }
    fn counts(&self) -> (usize, usize) {
        PlainServer::counts(self)
    }
}

async fn workload_rows(w: &Workload, azbatch_only: bool) -> Result<Vec<Row>> {
    let throttle = w.throttle;
    let (server, ideal) = match &w.plain {
        Some(rules) => ("plain", Some(plain::ideal(w, rules))),
        None => ("emulator", ideal(w, &throttle)),
    };
    let mut rows = vec![];
    let mut row = |strategy: &str, m: Measured, note: Option<String>| {
        rows.push(Row {
            workload: w.name.clone(),
            server,
            strategy: strategy.into(),
            seconds: m.ran.then_some(round(m.seconds)),
            ideal_seconds: ideal.map(round),
            ratio: ideal.filter(|_| m.ran).map(|i| round(m.seconds / i)),
            attempts: m.attempts,
            throttled: m.throttled,
            peak_rss_mb: m.peak_rss_mb.map(round),
            cpu_seconds: m.cpu_seconds.map(round),
            note,
        })
    };
    if let Some(rules) = &w.plain {
        let plain =
            PlainServer::start(rules.clone(), w.latency).context("starting the plain server")?;
        row("AzBatch", azbatch_child(&plain, w)?, None);
        return Ok(rows);
    }
    let emu = restart(w, throttle)?;
    if !w.baselines {
        let m = azbatch_child(&emu, w)?;
        let per_request = |m: &Measured| {
            m.cpu_seconds
                .map(|c| format!("{:.1} us of CPU per request", c * 1e6 / w.urls.len() as f64))
        };
        let note = per_request(&m).map(|c| format!("azbatch run, JSON in and out: {c}"));
        row("AzBatch", m, note);
        let emu = restart(w, throttle)?;
        let m = library_child(&emu, w)?;
        let note = per_request(&m)
            .map(|c| format!("the library alone (requests made in memory, results dropped): {c}"));
        row("AzBatch library", m, note);
    } else if azbatch_only || w.learned {
        let m = azbatch_child(&emu, w)?;
        row("AzBatch", m, None);
    } else if w.chains > 0 {
        chain_rows(w, emu, &mut row).await?;
    } else if w.graph {
        graph_rows(w, emu, &mut row).await?;
    } else {
        arm_rows(w, emu, &mut row).await?;
    }
    Ok(rows)
}

/// The ARM reads, each strategy against full buckets.
async fn arm_rows(
    w: &Workload,
    emu: Emulator,
    row: &mut impl FnMut(&str, Measured, Option<String>),
) -> Result<()> {
    let throttle = Throttle::default();
    let sample = &w.urls[..SAMPLE.min(w.urls.len())];
    let m = counted(&emu, one_at_a_time(&emu.url(), sample, "GET")).await?;
    let scaled = m.scaled(w.urls.len() as f64 / sample.len() as f64);
    let note = (sample.len() < w.urls.len()).then(|| format!("timed on {} requests", sample.len()));
    row("one request at a time", scaled, note);
    // Each strategy starts from full buckets, as the next hour of a tenant would.
    drop(emu);
    let sample = &w.urls[..SAMPLE_SEQUENTIAL.min(w.urls.len())];
    let by = w.urls.len() as f64 / sample.len() as f64;
    let timed_on = |what: &str| match sample.len() < w.urls.len() {
        true => format!("{what}; timed on {} requests", sample.len()),
        false => what.to_string(),
    };
    let emu = restart(w, throttle)?;
    let m = counted(&emu, sequential_batches(&emu.url(), sample, 15, true)).await?;
    row(
        "sequential batches of 15",
        m.scaled(by),
        Some(timed_on("429s sent again after Retry-After")),
    );
    let emu = restart(w, throttle)?;
    let m = counted(&emu, sequential_batches(&emu.url(), sample, 20, false))
        .await?
        .scaled(by);
    let failed = m.failed;
    row(
        "sequential batches of 20, no item retry",
        m,
        Some(timed_on(&format!("{failed} left failed (429)"))),
    );
    let emu = restart(w, throttle)?;
    let m = azbatch_child(&emu, w)?;
    row("AzBatch", m, None);
    Ok(())
}

/// The Graph bulk update, each strategy against fresh resource units.
async fn graph_rows(
    w: &Workload,
    emu: Emulator,
    row: &mut impl FnMut(&str, Measured, Option<String>),
) -> Result<()> {
    let throttle = Throttle::default();
    let sample = &w.urls[..SAMPLE.min(w.urls.len())];
    let m = counted(
        &emu,
        one_at_a_time(&format!("{}/v1.0", emu.url()), sample, w.method),
    )
    .await?;
    let note = (sample.len() < w.urls.len()).then(|| format!("timed on {} requests", sample.len()));
    row(
        "one request at a time",
        m.scaled(w.urls.len() as f64 / sample.len() as f64),
        note,
    );
    drop(emu);
    let emu = restart(w, throttle)?;
    let m = counted(&emu, graph_sequential(&emu.url(), &w.urls, w.method, true)).await?;
    row(
        "sequential batches of 20",
        m,
        Some("429s sent again after Retry-After".into()),
    );
    let emu = restart(w, throttle)?;
    let m = counted(&emu, graph_sequential(&emu.url(), &w.urls, w.method, false)).await?;
    let failed = m.failed;
    row(
        "sequential batches of 20, no item retry",
        m,
        Some(format!("{failed} left failed (429)")),
    );
    let emu = restart(w, throttle)?;
    match sdk::Peer::build() {
        Ok(peer) => {
            let (m, failed) = peer.run(&emu, &w.urls, w.method)?;
            let note = format!(
                "NewBatchWithFailedRequests, up to {} rounds; {failed} left failed",
                sdk::ROUNDS
            );
            row("Microsoft Graph .NET SDK 6.10.0", m, Some(note));
        }
        Err(why) => row(
            "Microsoft Graph .NET SDK 6.10.0",
            Measured::default(),
            Some(format!("not run: {why}")),
        ),
    }
    let emu = restart(w, throttle)?;
    let m = azbatch_child(&emu, w)?;
    row("AzBatch", m, None);
    Ok(())
}

/// The onboarding chains: the script ways run them wave by wave (the new
/// users, then the requests that name their ids, filled in by the script, as
/// Graph's own batches cannot); AzBatch takes them with their dependsOn and
/// references as they are.
async fn chain_rows(
    w: &Workload,
    emu: Emulator,
    row: &mut impl FnMut(&str, Measured, Option<String>),
) -> Result<()> {
    let throttle = Throttle::default();
    let sample = SAMPLE.div_ceil(7).min(w.chains);
    let m = counted(&emu, chains_in_waves(&emu.url(), sample, 1, true)).await?;
    let note = (sample < w.chains).then(|| format!("timed on {sample} chains"));
    row(
        "one request at a time",
        m.scaled(w.chains as f64 / sample as f64),
        note,
    );
    drop(emu);
    let emu = restart(w, throttle)?;
    let m = counted(&emu, chains_in_waves(&emu.url(), w.chains, 20, true)).await?;
    row(
        "sequential batches of 20",
        m,
        Some("wave by wave; 429s sent again after Retry-After".into()),
    );
    let emu = restart(w, throttle)?;
    let m = counted(&emu, chains_in_waves(&emu.url(), w.chains, 20, false)).await?;
    let failed = m.failed;
    row(
        "sequential batches of 20, no item retry",
        m,
        Some(format!("wave by wave; {failed} left failed")),
    );
    row(
        "Microsoft Graph .NET SDK 6.10.0",
        Measured::default(),
        Some("not run: its batches cannot name another request's answer; a script runs the waves as above".into()),
    );
    let emu = restart(w, throttle)?;
    let m = azbatch_child(&emu, w)?;
    row("AzBatch", m, None);
    Ok(())
}

/// Runs `chains` onboarding chains in two waves, each in sequential batches
/// of `size` (1: one request at a time, as a batch of one: the same round trip).
async fn chains_in_waves(endpoint: &str, chains: usize, size: usize, retry: bool) -> Result<usize> {
    let http = client()?;
    let all: Vec<Vec<Value>> = (0..chains).map(crate::demo::onboarding_requests).collect();
    let first: Vec<Value> = all.iter().map(|c| c[0].clone()).collect();
    let (ids, mut failed) = send_graph_wave(&http, endpoint, &first, size, retry).await?;
    let mut second = vec![];
    for (k, chain) in all.iter().enumerate() {
        let Some(id) = ids.get(&format!("new{k}")) else {
            failed += chain.len() - 1;
            continue;
        };
        for r in &chain[1..] {
            let text = r
                .to_string()
                .replace(&format!("{{{{new{k}.body.id}}}}"), id);
            second.push(serde_json::from_str::<Value>(&text)?);
        }
    }
    let (_, more) = send_graph_wave(&http, endpoint, &second, size, retry).await?;
    Ok(failed + more)
}

/// Sends Graph requests (with ids) in sequential batches of `size`; the new
/// ids of those that succeeded with one, and how many failed.
async fn send_graph_wave(
    http: &reqwest::Client,
    endpoint: &str,
    requests: &[Value],
    size: usize,
    retry: bool,
) -> Result<(std::collections::HashMap<String, String>, usize)> {
    let mut todo: std::collections::VecDeque<&Value> = requests.iter().collect();
    let (mut ids, mut failed) = (std::collections::HashMap::new(), 0);
    while !todo.is_empty() {
        let chunk: Vec<&Value> = (0..size).filter_map(|_| todo.pop_front()).collect();
        let items: Vec<Value> = chunk
            .iter()
            .map(|r| match &r["body"] {
                Value::Null => json!({"id": r["id"], "method": r["method"], "url": r["url"]}),
                body => json!({"id": r["id"], "method": r["method"], "url": r["url"], "body": body,
                               "headers": {"Content-Type": "application/json"}}),
            })
            .collect();
        let v: Value = http
            .post(format!("{endpoint}/v1.0/$batch"))
            .bearer_auth(TOKEN)
            .json(&json!({ "requests": items }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut wait = Duration::ZERO;
        for r in v["responses"].as_array().context("batch answer")? {
            let status = r["status"].as_u64().unwrap_or(0);
            let id = r["id"].as_str().unwrap_or("").to_string();
            if (200..300).contains(&status) {
                if let Some(new) = r["body"]["id"].as_str() {
                    ids.insert(id, new.to_string());
                }
            } else if status == 429 && retry {
                let again = chunk
                    .iter()
                    .find(|c| c["id"] == r["id"])
                    .context("an answer to no request")?;
                todo.push_back(again);
                wait = wait.max(item_retry_after(&r["headers"]));
            } else {
                failed += 1;
            }
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    Ok((ids, failed))
}

fn patch_body(url: &str) -> Value {
    json!({"jobTitle": format!("Engineer {}", url.len())})
}

/// Graph batches of 20 sent one after another; with `retry`, throttled items
/// go into the next batch after their Retry-After. Returns how many failed.
async fn graph_sequential(
    endpoint: &str,
    urls: &[String],
    method: &str,
    retry: bool,
) -> Result<usize> {
    let requests: Vec<Value> = urls
        .iter()
        .enumerate()
        .map(|(i, u)| match method {
            "PATCH" => {
                json!({"id": i.to_string(), "method": method, "url": u, "body": patch_body(u)})
            }
            _ => json!({"id": i.to_string(), "method": method, "url": u}),
        })
        .collect();
    let (_, failed) = send_graph_wave(&client()?, endpoint, &requests, 20, retry).await?;
    Ok(failed)
}

fn restart(w: &Workload, throttle: Throttle) -> Result<Emulator> {
    Emulator::start(Config {
        subscriptions: w.subscriptions,
        graph_users: if w.graph { w.urls.len().max(20) } else { 20 },
        latency: w.latency,
        token: Some(TOKEN.into()),
        throttle,
        graph_throttle: w.graph_throttle,
        ..Config::default()
    })
    .context("starting the emulator")
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[derive(Default)]
struct Measured {
    /// False for a strategy that did not run.
    ran: bool,
    seconds: f64,
    attempts: usize,
    throttled: usize,
    failed: usize,
    peak_rss_mb: Option<f64>,
    cpu_seconds: Option<f64>,
}

impl Measured {
    fn scaled(self, by: f64) -> Measured {
        Measured {
            seconds: self.seconds * by,
            attempts: (self.attempts as f64 * by) as usize,
            throttled: (self.throttled as f64 * by) as usize,
            failed: (self.failed as f64 * by) as usize,
            ..self
        }
    }
}

/// Times `strategy` and reads from the emulator what it saw meanwhile.
async fn counted(
    emu: &Emulator,
    strategy: impl std::future::Future<Output = Result<usize>>,
) -> Result<Measured> {
    let before = emu.ops().len();
    let t = Instant::now();
    let failed = strategy.await?;
    let seconds = t.elapsed().as_secs_f64();
    let ops = emu.ops();
    let new = &ops[before..];
    Ok(Measured {
        ran: true,
        seconds,
        attempts: new.len(),
        throttled: new.iter().filter(|o| o.status == 429).count(),
        failed,
        ..Measured::default()
    })
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().build()?)
}

/// How long a 429 asks to wait, read as AzBatch reads it (seconds, decimals,
/// an HTTP date, `retry-after-ms`); 1 s when it does not say.
fn retry_after(get: impl Fn(&str) -> Option<String>) -> Duration {
    azbatch::retry::retry_after(get, std::time::SystemTime::now()).unwrap_or(Duration::from_secs(1))
}

/// The Retry-After of a batch item's JSON headers.
fn item_retry_after(headers: &Value) -> Duration {
    retry_after(|name| {
        let h = headers.as_object()?;
        let (_, v) = h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
        v.as_str().map(str::to_string)
    })
}

/// One request after another to `endpoint` + each url (GET, or PATCH with a
/// body), as a `foreach` over Invoke-AzRestMethod does; a 429 is waited out
/// and sent again. Returns how many failed.
async fn one_at_a_time(endpoint: &str, urls: &[String], method: &str) -> Result<usize> {
    let http = client()?;
    for u in urls {
        let url = format!("{endpoint}{u}");
        let request = match method {
            "PATCH" => http.patch(url).json(&patch_body(u)),
            _ => http.get(url),
        };
        loop {
            let r = request
                .try_clone()
                .context("a request that cannot be sent twice")?
                .bearer_auth(TOKEN)
                .send()
                .await?;
            if r.status() != 429 {
                r.error_for_status()?;
                break;
            }
            let h = r.headers();
            tokio::time::sleep(retry_after(|name| {
                Some(h.get(name)?.to_str().ok()?.to_string())
            }))
            .await;
        }
    }
    Ok(0)
}

/// ARM batches of `size` sent one after another. With `retry`, items answered
/// 429 go into the next batch after their Retry-After (the careful script);
/// without, they stay failed (what the Graph SDKs leave to their caller).
/// Returns how many failed.
async fn sequential_batches(
    endpoint: &str,
    urls: &[String],
    size: usize,
    retry: bool,
) -> Result<usize> {
    let http = client()?;
    let mut todo: std::collections::VecDeque<&String> = urls.iter().collect();
    let mut failed = 0;
    while !todo.is_empty() {
        let chunk: Vec<&String> = (0..size).filter_map(|_| todo.pop_front()).collect();
        let requests: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, u)| json!({"httpMethod": "GET", "name": i.to_string(), "url": u}))
            .collect();
        let mut answer = http
            .post(format!("{endpoint}/batch?api-version=2020-06-01"))
            .bearer_auth(TOKEN)
            .json(&json!({ "requests": requests }))
            .send()
            .await?;
        while answer.status() == 202 {
            let location = answer
                .headers()
                .get("location")
                .context("202 without Location")?
                .to_str()?
                .to_string();
            tokio::time::sleep(Duration::from_millis(200)).await;
            answer = http.get(location).bearer_auth(TOKEN).send().await?;
        }
        let v: Value = answer.error_for_status()?.json().await?;
        let mut wait = Duration::ZERO;
        for r in v["responses"].as_array().context("batch answer")? {
            if r["httpStatusCode"] == 200 {
                continue;
            }
            if r["httpStatusCode"] == 429 && retry {
                let i: usize = r["name"].as_str().unwrap_or("0").parse()?;
                todo.push_back(chunk[i]);
                wait = wait.max(item_retry_after(&r["headers"]));
            } else {
                failed += 1;
            }
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    Ok(failed)
}

/// The library alone in a child process: `w`'s reads made in memory, the
/// results taken and dropped.
fn library_child(emu: &Emulator, w: &Workload) -> Result<Measured> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(library::child_args(
        &emu.url(),
        TOKEN,
        w.urls.len(),
        w.subscriptions,
    ))
    .stderr(std::process::Stdio::inherit());
    let (m, printed) = timed_child(emu, cmd, |mut out| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut out, &mut text).map(|_| text)
    })?;
    if printed.trim() != w.urls.len().to_string() {
        bail!(
            "the library run gave {} results for {} requests",
            printed.trim(),
            w.urls.len()
        );
    }
    Ok(m)
}

/// Runs `cmd` with its output read by `read` on a thread of its own: its
/// time, its peak memory and CPU from the kernel, and what the emulator saw
/// meanwhile.
fn timed_child<T: Send + 'static>(
    emu: &impl Server,
    mut cmd: std::process::Command,
    read: impl FnOnce(std::process::ChildStdout) -> std::io::Result<T> + Send + 'static,
) -> Result<(Measured, T)> {
    let before = emu.counts();
    let t = Instant::now();
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn()?;
    let out = child.stdout.take().context("the child's output")?;
    let reader = std::thread::spawn(move || read(out));
    let peak = watch_peak(child.id());
    let mut usage = wait_with_usage(&mut child)?;
    usage.peak_rss_mb = peak.join().ok().flatten();
    let seconds = t.elapsed().as_secs_f64();
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reading the output failed"))??;
    let after = emu.counts();
    let m = Measured {
        ran: true,
        seconds,
        attempts: after.0 - before.0,
        throttled: after.1 - before.1,
        failed: usage.failed,
        peak_rss_mb: usage.peak_rss_mb,
        cpu_seconds: usage.cpu_seconds,
    };
    Ok((m, got))
}

/// AzBatch as a user runs it: `azbatch run` in a process of its own, requests
/// from a file, results to a pipe that is read and dropped.
fn azbatch_child(emu: &impl Server, w: &Workload) -> Result<Measured> {
    let urls = &w.urls;
    let file = std::env::temp_dir().join(format!("azbatch-bench-{}.jsonl", std::process::id()));
    let mut expected = urls.len();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for k in 0..w.chains {
            for r in crate::demo::onboarding_requests(k) {
                writeln!(f, "{r}")?;
                expected += 1;
            }
        }
        for u in urls {
            let line = match (w.graph, w.method) {
                (true, "PATCH") => json!({"method": "PATCH", "url": u, "body": patch_body(u)}),
                (true, _) => json!({"method": w.method, "url": u}),
                (false, _) => Value::String(u.clone()),
            };
            writeln!(f, "{line}")?;
        }
    }
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["run", "--endpoint", &emu.url(), "--token", TOKEN])
        .args(["--api", if w.graph { "graph" } else { "arm" }])
        .args([
            "--concurrency",
            &CONCURRENCY.to_string(),
            "--batch-size",
            &BATCH.to_string(),
        ])
        .args(w.cloud.map(|c| ["--cloud", c]).into_iter().flatten())
        .arg(&file);
    // Its log, when `AZBATCH_LOG` asks for one, goes to the bench's standard
    // error (the child reads the variable); else the child is quiet.
    if std::env::var_os("AZBATCH_LOG").is_none() {
        cmd.stderr(std::process::Stdio::null());
    }
    let measured = timed_child(emu, cmd, |mut out| {
        let mut sink = Counting(0);
        std::io::copy(&mut out, &mut sink)?;
        Ok(sink.0)
    });
    let _ = std::fs::remove_file(&file);
    let (m, newlines) = measured?;
    if newlines != expected {
        bail!("azbatch run printed {newlines} results for {expected} requests");
    }
    Ok(m)
}

/// Counts the lines written to it.
struct Counting(usize);

impl std::io::Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.iter().filter(|b| **b == b'\n').count();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Usage {
    failed: usize,
    peak_rss_mb: Option<f64>,
    cpu_seconds: Option<f64>,
}

/// The child's peak memory: its VmHWM, read until it exits. (The kernel's
/// ru_maxrss would count the parent's memory, which a child started with
/// vfork shares until it execs; VmHWM is the new program's own.)
fn watch_peak(pid: u32) -> std::thread::JoinHandle<Option<f64>> {
    std::thread::spawn(move || {
        let path = format!("/proc/{pid}/status");
        let mut peak = None;
        let started = Instant::now();
        // The first reads may still see the parent's memory: the last one
        // counts. Read often at first, so a run of a few milliseconds is not
        // measured by the loader's first page.
        while let Ok(status) = std::fs::read_to_string(&path) {
            let kb = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
            match kb {
                Some(kb) => peak = Some(kb / 1024.0),
                None => break, // exiting: its memory is gone
            }
            let every = if started.elapsed() < Duration::from_millis(500) {
                1
            } else {
                20
            };
            std::thread::sleep(Duration::from_millis(every));
        }
        peak
    })
}

/// Waits for the child and reads its CPU time from the kernel.
#[cfg(target_os = "linux")]
fn wait_with_usage(child: &mut std::process::Child) -> Result<Usage> {
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills; the pid is our child's.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if got != pid {
        bail!(
            "waiting for azbatch run failed: {}",
            std::io::Error::last_os_error()
        );
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let code = libc::WEXITSTATUS(status);
    Ok(Usage {
        failed: usize::from(code != 0),
        peak_rss_mb: None,
        cpu_seconds: Some(secs(ru.ru_utime) + secs(ru.ru_stime)),
    })
}

#[cfg(not(target_os = "linux"))]
fn wait_with_usage(child: &mut std::process::Child) -> Result<Usage> {
    let status = child.wait()?;
    Ok(Usage {
        failed: usize::from(!status.success()),
        peak_rss_mb: None,
        cpu_seconds: None,
    })
}

fn print_table(rows: &[Row]) {
    let mut last = "";
    for r in rows {
        if r.workload != last {
            let ideal = r
                .ideal_seconds
                .map_or("none".to_string(), |i| format!("{i:.2} s"));
            println!("\n{}  (ideal {ideal}; {})", r.workload, r.server);
            println!(
                "  {:<42} {:>9} {:>7} {:>9} {:>8} {:>8} {:>7}",
                "strategy", "seconds", "ratio", "attempts", "429s", "peak MB", "CPU s"
            );
            last = &r.workload;
        }
        let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}"));
        let opt2 = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
        println!(
            "  {:<42} {:>9} {:>7} {:>9} {:>8} {:>8} {:>7}{}",
            r.strategy,
            opt2(r.seconds),
            r.ratio.map_or("-".to_string(), |x| format!("{x:.2}")),
            r.attempts,
            r.throttled,
            opt(r.peak_rss_mb),
            opt(r.cpu_seconds),
            r.note.as_ref().map_or(String::new(), |n| format!("   {n}"))
        );
    }
}
