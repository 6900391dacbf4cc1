//! The demo: the "PIM eligibility in every subscription" job three ways, then
//! Batch accounts across all subscriptions with every page followed, all
//! against the emulator started in-process.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use azbatch::{ItemResult, Job, Options, OptionsSpec, RequestSpec, Summary};
use azbatch_emulator::graph::model::{group_id, user_id, SKU};
use azbatch_emulator::{Config, Emulator, GraphThrottle, Latency};
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
    /// Users in the emulated directory (the bulk update touches all of them).
    #[arg(long, default_value_t = 2000)]
    users: usize,
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
        graph_users: args.users,
        graph_groups: 40,
        // Enough resource units for the onboarding, not for the bulk update:
        // the update shows throttled items retried after Graph's Retry-After.
        graph_throttle: GraphThrottle {
            capacity: 3500.0,
            refill: 1000.0,
            ..GraphThrottle::default()
        },
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
    let (subs, _) = azbatch_run(
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
        "Found {} subscriptions ({} pages)\n",
        ids.len(),
        subs[0].pages
    );
    let arm_ok = arm_part(&args, &endpoint, &ids).await?;
    graph_part(&args, &endpoint).await?;
    if !arm_ok && !args.no_check {
        bail!("a speed-up target was missed");
    }
    Ok(())
}

/// The ARM part: the PIM query three ways, then Batch accounts with paging.
/// Says whether both speed-up targets were met.
async fn arm_part(args: &Args, endpoint: &str, ids: &[String]) -> Result<bool> {
    let endpoint = endpoint.to_string();
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
    println!();
    Ok(ok1 && ok2)
}

/// The Graph part: onboarding with dependencies and references, one user into
/// many groups, and a bulk update that runs into throttling.
async fn graph_part(args: &Args, endpoint: &str) -> Result<()> {
    println!("Microsoft Graph:");
    let graph = json!({"api": "graph", "concurrency": args.concurrency});

    let mut reqs = vec![];
    for k in 0..50 {
        reqs.extend(onboarding_requests(k));
    }
    let n = reqs.len();
    let (results, summary) = azbatch_run(endpoint, &graph, reqs).await?;
    graph_row(
        &format!("onboard 50 users ({n} requests)"),
        &summary,
        &results,
    );

    let reqs: Vec<Value> = (0..40)
        .map(|g| json!({"method": "POST", "url": format!("/groups/{}/members/$ref", group_id(g)),
                        "body": {"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", user_id(0))}}))
        .collect();
    let (results, summary) = azbatch_run(endpoint, &graph, reqs).await?;
    graph_row("add one user to 40 groups", &summary, &results);

    let reqs: Vec<Value> = (0..args.users)
        .map(|i| json!({"method": "PATCH", "url": format!("/users/{}", user_id(i)), "body": {"department": "Platform", "jobTitle": "Engineer"}}))
        .collect();
    let (results, summary) = azbatch_run(endpoint, &graph, reqs).await?;
    graph_row(
        &format!("bulk-update {} users", args.users),
        &summary,
        &results,
    );
    Ok(())
}

/// One new user: create it, then (using its new id) license it, add it to three
/// groups, book a welcome event and share a calendar.
pub(crate) fn onboarding_requests(k: usize) -> Vec<Value> {
    let new = format!("new{k}");
    let user = format!("{{{{{new}.body.id}}}}");
    let mut reqs = vec![
        json!({"id": new, "method": "POST", "url": "/users",
               "body": {"displayName": format!("New Hire {k}"), "userPrincipalName": format!("newhire{k}@contoso.example"), "accountEnabled": true, "mailNickname": format!("newhire{k}")}}),
        json!({"id": format!("{new}-license"), "method": "POST", "url": format!("/users/{user}/assignLicense"), "dependsOn": [new],
               "body": {"addLicenses": [{"skuId": SKU}], "removeLicenses": []}}),
        json!({"id": format!("{new}-welcome"), "method": "POST", "url": format!("/users/{user}/events"), "dependsOn": [new],
               "body": {"subject": "Welcome aboard", "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-12-01T09:30:00", "timeZone": "UTC"}}}),
        json!({"id": format!("{new}-calendar"), "method": "POST", "url": format!("/users/{user}/calendar/calendarPermissions"), "dependsOn": [new],
               "body": {"emailAddress": {"address": "manager@contoso.example", "name": "Manager"}, "role": "read"}}),
    ];
    for g in 0..3 {
        reqs.push(json!({"id": format!("{new}-group{g}"), "method": "POST", "url": format!("/groups/{}/members/$ref", group_id(g)), "dependsOn": [new],
                         "body": {"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user}")}}));
    }
    reqs
}

fn graph_row(what: &str, s: &Summary, results: &[ItemResult]) {
    println!(
        "  {what:<34} {:>7.2} s  {:>4} batches  {:>5} retries  {} failed",
        s.elapsed_ms as f64 / 1000.0,
        s.batches,
        s.retries,
        s.failed
    );
    for r in results.iter().filter(|r| !r.is_success()).take(3) {
        println!(
            "    {}: {} {}",
            r.id,
            r.status,
            r.error.as_ref().map(|e| e.message.as_str()).unwrap_or("")
        );
    }
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

/// Runs requests through AzBatch against the emulator. The job blocks, so it
/// runs on a thread of its own, outside the demo's async runtime.
async fn azbatch_run(
    endpoint: &str,
    extra: &Value,
    requests: Vec<Value>,
) -> Result<(Vec<ItemResult>, Summary)> {
    let mut o = json!({"api": "arm", "endpoint": endpoint, "token": TOKEN});
    for (k, v) in extra.as_object().into_iter().flatten() {
        o[k] = v.clone();
    }
    let spec: OptionsSpec = serde_json::from_value(o)?;
    let options = Options::from_spec(spec)?;
    let run = std::thread::scope(|s| {
        s.spawn(move || -> Result<_> {
            let job = Job::new(options);
            for r in requests {
                job.add(serde_json::from_value::<RequestSpec>(r)?)?;
            }
            Ok(job.execute()?)
        })
        .join()
    })
    .map_err(|_| anyhow::anyhow!("the AzBatch run panicked"))??;
    Ok((run.results, run.summary))
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
