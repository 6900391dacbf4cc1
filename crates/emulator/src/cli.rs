//! The emulator's command-line flags, shared by `azbatch-emulator` and
//! `azbatch emulator`.

use std::time::Duration;

use clap::Parser;

use crate::{Config, Faults, Latency, Throttle};

/// A local emulator of the Azure Resource Manager and Microsoft Graph batch endpoints.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Subscriptions in the tenant.
    #[arg(long, default_value_t = 10)]
    subscriptions: usize,
    /// Bearer token every call must carry (default: any call is accepted).
    #[arg(long, env = "AZBATCH_EMULATOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Delay of each item in milliseconds, or a range such as 50-200.
    #[arg(long, default_value = "0")]
    latency_ms: String,
    /// Batches above this many items answer 202 and are polled.
    #[arg(long, default_value_t = 20)]
    async_threshold: usize,
    /// Turn off per-subscription throttling.
    #[arg(long)]
    no_throttle: bool,
    /// Reads per subscription bucket and refill per second, e.g. 250,25.
    #[arg(long, default_value = "250,25")]
    reads: String,
    /// Writes per subscription bucket and refill per second, e.g. 200,10.
    #[arg(long, default_value = "200,10")]
    writes: String,
    /// Deletes per subscription bucket and refill per second, e.g. 200,10.
    #[arg(long, default_value = "200,10")]
    deletes: String,
    /// Calls a second other principals take from each subscription's global
    /// bucket (shared by all principals, 15 times one principal's).
    #[arg(long, default_value_t = 0.0)]
    others_per_second: f64,
    /// Send no x-ms-ratelimit-remaining-* headers: answer 200 or 429 and nothing else.
    #[arg(long)]
    no_rate_headers: bool,
    /// Fault rates, e.g. item429=0.1,envelope503=0.05,reset=0.01,truncate=0.01,slow=0.1.
    #[arg(long, default_value = "")]
    faults: String,
    /// Users in the Graph directory.
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Groups in the Graph directory.
    #[arg(long, default_value_t = 10)]
    groups: usize,
    /// Lifetime in seconds of tokens from the identity endpoints.
    #[arg(long, default_value_t = 3600)]
    token_lifetime_secs: u64,
    /// Seed of the fault dice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn pair(s: &str, what: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or(format!("--{what} takes CAPACITY,REFILL"))?;
    Ok((
        a.trim()
            .parse()
            .map_err(|_| format!("--{what}: bad capacity"))?,
        b.trim()
            .parse()
            .map_err(|_| format!("--{what}: bad refill"))?,
    ))
}

/// Turns the arguments into a configuration, with errors that name the flag.
pub fn config(a: &Args) -> Result<Config, String> {
    let latency = match a.latency_ms.split_once('-') {
        Some((lo, hi)) => Latency {
            min: Duration::from_millis(
                lo.trim()
                    .parse()
                    .map_err(|_| "--latency-ms: bad lower bound")?,
            ),
            max: Duration::from_millis(
                hi.trim()
                    .parse()
                    .map_err(|_| "--latency-ms: bad upper bound")?,
            ),
        },
        None => Latency::fixed(Duration::from_millis(
            a.latency_ms
                .trim()
                .parse()
                .map_err(|_| "--latency-ms: not a number")?,
        )),
    };
    let (rc, rr) = pair(&a.reads, "reads")?;
    let (wc, wr) = pair(&a.writes, "writes")?;
    let (dc, dr) = pair(&a.deletes, "deletes")?;
    let mut faults = Faults {
        seed: a.seed,
        ..Faults::default()
    };
    for part in a.faults.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or(format!("--faults: \"{part}\" is not NAME=RATE"))?;
        let rate: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("--faults: {k}: not a number"))?;
        let slot = match k.trim() {
            "item429" => &mut faults.item_429,
            "item500" => &mut faults.item_500,
            "item503" => &mut faults.item_503,
            "envelope429" => &mut faults.envelope_429,
            "envelope500" => &mut faults.envelope_500,
            "envelope503" => &mut faults.envelope_503,
            "reset" => &mut faults.reset,
            "truncate" => &mut faults.truncate,
            "envelope413" => &mut faults.envelope_413,
            "redirect" => &mut faults.redirect,
            "garbage" => &mut faults.garbage,
            "duplicateName" => &mut faults.duplicate_name,
            "missingName" => &mut faults.missing_name,
            "hang" => &mut faults.hang,
            "slow" => &mut faults.slow_batch,
            other => return Err(format!("--faults: unknown fault \"{other}\"")),
        };
        *slot = rate;
    }
    Ok(Config {
        port: a.port,
        subscriptions: a.subscriptions,
        token: a.token.clone(),
        latency,
        throttle: Throttle {
            enabled: !a.no_throttle,
            read_capacity: rc,
            read_refill: rr,
            write_capacity: wc,
            write_refill: wr,
            delete_capacity: dc,
            delete_refill: dr,
            others_per_second: a.others_per_second,
            headers: !a.no_rate_headers,
            ..Throttle::default()
        },
        faults,
        async_threshold: a.async_threshold,
        graph_users: a.users,
        graph_groups: a.groups,
        token_lifetime: Duration::from_secs(a.token_lifetime_secs),
        ..Config::default()
    })
}
