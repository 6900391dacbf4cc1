//! The demo: the "PIM eligibility in every subscription" job three ways, then
//! Batch accounts across all subscriptions with every page followed, all
//! against the emulator started in-process.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use azbatch::request::RequestList;
use azbatch::{ItemResult, Options, Summary};
use azbatch_emulator::{Config, Emulator, Latency};
use serde_json::{json, Value};

const TOKEN: &str = "demo-token";
const PIM: &str =
    "providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2020-10-01";
const BATCH_ACCOUNTS: &str = "providers/Microsoft.Batch/batchAccounts?api-version=2024-07-01";

/// Demo settings.
#[derive(clap::Args)]
pub struct Args {
    /// Subscriptions in the emulated tenant.
    #[arg(long, default_value_t = 200)]
    subscriptions: usize,
    /// Delay of every call inside the emulator, in milliseconds.
    #[arg(long, default_value_t = 150)]
    latency_ms: u64,
    /// Batches AzBatch keeps in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Report the speed-up targets but do not fail when one is missed (for
    /// tests on busy machines; timings are the demo's business, not a test's).
    #[arg(long)]
    no_check: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let emu = Emulator::start(Config {
        subscriptions: args.subscriptions,
        latency: Latency::fixed(Duration::from_millis(args.latency_ms)),
        token: Some(TOKEN.into()),
        ..Config::default()
    })
    .context("starting the emulator")?;
    let endpoint = emu.url();
    println!(
        "AzBatch {} demo: emulator at {endpoint}, {} subscriptions, {} ms per call\n",
        azbatch::VERSION,
        args.subscriptions,
        args.latency_ms
    );

    // Every subscription the token can see, all pages followed.
    let (subs, summary) = azbatch_run(
        &endpoint,
        &json!({"followNextLink": true}),
        vec![json!({"url": "/subscriptions?api-version=2022-12-01"})],
    )
    .await?;
    let ids: Vec<String> = subs[0].body["value"]
        .as_array()
        .context("subscription list")?
        .iter()
        .filter_map(|s| s["subscriptionId"].as_str().map(str::to_string))
        .collect();
    println!(
        "Found {} subscriptions ({} pages, {} ms)\n",
        ids.len(),
        subs[0].pages,
        summary.elapsed_ms
    );
    let urls: Vec<String> = ids
        .iter()
        .map(|id| format!("/subscriptions/{id}/{PIM}"))
        .collect();

    println!("PIM eligibility in every subscription:");
    let (t1, n1) = one_at_a_time(&endpoint, &urls).await?;
    row("one request at a time", t1, t1, n1, urls.len());
    let (t2, n2) = sequential_batches(&endpoint, &urls, 15).await?;
    row("sequential batches of 15", t2, t1, n2, urls.len());
    let t = Instant::now();
    let reqs: Vec<Value> = urls.iter().map(|u| json!({"url": u})).collect();
    let (results, summary) =
        azbatch_run(&endpoint, &json!({"concurrency": args.concurrency}), reqs).await?;
    let t3 = t.elapsed();
    let n3 = count_values(&results)?;
    row("AzBatch", t3, t1, n3, urls.len());
    println!(
        "  ({} batches, {} retries, {} failed)\n",
        summary.batches, summary.retries, summary.failed
    );
    if n1 != n2 || n2 != n3 {
        bail!("the three ways disagree: {n1}, {n2} and {n3} eligibilities");
    }

    let vs_single = t1.as_secs_f64() / t3.as_secs_f64();
    let vs_batches = t2.as_secs_f64() / t3.as_secs_f64();
    let ok1 = vs_single >= 50.0;
    let ok2 = vs_batches >= 5.0;
    println!(
        "AzBatch vs one at a time:       {vs_single:7.1}x  (target 50x) {}",
        mark(ok1)
    );
    println!(
        "AzBatch vs sequential batches:  {vs_batches:7.1}x  (target 5x)  {}\n",
        mark(ok2)
    );

    let t = Instant::now();
    let reqs: Vec<Value> = ids
        .iter()
        .map(|id| json!({"url": format!("/subscriptions/{id}/{BATCH_ACCOUNTS}")}))
        .collect();
    let (results, summary) = azbatch_run(
        &endpoint,
        &json!({"followNextLink": true, "concurrency": args.concurrency}),
        reqs,
    )
    .await?;
    let accounts = count_values(&results)?;
    let pages: u32 = results.iter().map(|r| r.pages).sum();
    println!(
        "Batch accounts in every subscription: {accounts} accounts from {pages} pages in {} ms ({} batches, {} failed)",
        t.elapsed().as_millis(),
        summary.batches,
        summary.failed
    );
    for r in results
        .iter()
        .filter(|r| r.body["value"].as_array().is_some_and(|v| !v.is_empty()))
        .take(3)
    {
        let a = &r.body["value"][0];
        println!(
            "  {:<14} {:<11} {}",
            a["name"].as_str().unwrap_or(""),
            a["location"].as_str().unwrap_or(""),
            a["properties"]["accountEndpoint"].as_str().unwrap_or("")
        );
    }
    let targets_met = ok1 && ok2;
    if !targets_met && !args.no_check {
        bail!("a speed-up target was missed");
    }
    Ok(())
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn row(what: &str, took: Duration, baseline: Duration, found: usize, calls: usize) {
    println!(
        "  {what:<26} {:>9.2} s  {:>7.1}x   {calls} calls, {found} eligibilities",
        took.as_secs_f64(),
        baseline.as_secs_f64() / took.as_secs_f64()
    );
}

/// Runs requests through AzBatch's engine against the emulator.
async fn azbatch_run(
    endpoint: &str,
    extra: &Value,
    requests: Vec<Value>,
) -> Result<(Vec<ItemResult>, Summary)> {
    let mut o = json!({"api": "arm", "endpoint": endpoint, "token": TOKEN});
    for (k, v) in extra.as_object().into_iter().flatten() {
        o[k] = v.clone();
    }
    let options = Options::from_json(&o.to_string())?;
    let mut list = RequestList::default();
    for r in &requests {
        list.add_json(&r.to_string(), &options)?;
    }
    Ok(azbatch::engine::execute(options, list.into_vec()).await?)
}

fn count_values(results: &[ItemResult]) -> Result<usize> {
    let mut n = 0;
    for r in results {
        if r.status != 200 {
            bail!("request {} failed: {} {:?}", r.id, r.status, r.error);
        }
        n += r.body["value"].as_array().map_or(0, Vec::len);
    }
    Ok(n)
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().build()?)
}

/// The baseline: one GET after another, as a `foreach` over Invoke-AzRestMethod does.
async fn one_at_a_time(endpoint: &str, urls: &[String]) -> Result<(Duration, usize)> {
    let http = client()?;
    let t = Instant::now();
    let mut n = 0;
    for u in urls {
        let v: Value = http
            .get(format!("{endpoint}{u}"))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        n += v["value"].as_array().map_or(0, Vec::len);
    }
    Ok((t.elapsed(), n))
}

/// The classic script: ARM batches of `size`, sent one after another.
async fn sequential_batches(
    endpoint: &str,
    urls: &[String],
    size: usize,
) -> Result<(Duration, usize)> {
    let http = client()?;
    let t = Instant::now();
    let mut n = 0;
    for chunk in urls.chunks(size) {
        let requests: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, u)| json!({"httpMethod": "GET", "name": i.to_string(), "url": u}))
            .collect();
        let v: Value = http
            .post(format!("{endpoint}/batch?api-version=2020-06-01"))
            .bearer_auth(TOKEN)
            .json(&json!({ "requests": requests }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for r in v["responses"].as_array().context("batch answer")? {
            if r["httpStatusCode"] != 200 {
                bail!("a classic batch item failed: {r}");
            }
            n += r["content"]["value"].as_array().map_or(0, Vec::len);
        }
    }
    Ok((t.elapsed(), n))
}
