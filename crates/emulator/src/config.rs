//! What the emulator models and how badly it behaves: sizes, latency,
//! throttling limits and seeded fault rates.

use std::time::Duration;

/// Delay of each item (and each direct call): fixed when `min == max`, else
/// uniform in `min..=max`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Shortest delay.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Latency {
    /// The same delay every time.
    pub fn fixed(d: Duration) -> Latency {
        Latency { min: d, max: d }
    }
}

/// ARM's token buckets, per subscription (and the tenant's).
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    /// Off: never 429 for load.
    pub enabled: bool,
    /// Read bucket size.
    pub read_capacity: f64,
    /// Reads refilled per second.
    pub read_refill: f64,
    /// Write bucket size.
    pub write_capacity: f64,
    /// Writes refilled per second.
    pub write_refill: f64,
    /// Delete bucket size.
    pub delete_capacity: f64,
    /// Deletes refilled per second.
    pub delete_refill: f64,
    /// The subscription's global bucket, every principal's together: this
    /// many times a principal's (ARM documents 15).
    pub global_factor: f64,
    /// Calls a second that other principals take from the global buckets.
    pub others_per_second: f64,
    /// Whether answers say what is left (`x-ms-ratelimit-remaining-*`); off,
    /// the service answers 200 or 429 and nothing else.
    pub headers: bool,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            enabled: true,
            read_capacity: 250.0,
            read_refill: 25.0,
            write_capacity: 200.0,
            write_refill: 10.0,
            delete_capacity: 200.0,
            delete_refill: 10.0,
            global_factor: 15.0,
            others_per_second: 0.0,
            headers: true,
        }
    }
}

/// Graph's per-app throttling: a bucket of resource units like the directory's.
#[derive(Debug, Clone, Copy)]
pub struct GraphThrottle {
    /// Off: never 429 for load.
    pub enabled: bool,
    /// Resource units in a full bucket.
    pub capacity: f64,
    /// Resource units refilled per second.
    pub refill: f64,
    /// Cost of a read.
    pub read_cost: f64,
    /// Cost of a write.
    pub write_cost: f64,
    /// Whether answers say what they cost and how much of the limit is used
    /// (`x-ms-resource-unit`, `x-ms-throttle-limit-percentage`); off, as most of
    /// Graph, a 429 with `Retry-After` is all the service says.
    pub headers: bool,
    /// The per-service limits beside the resource units: identity writes,
    /// Intune, Outlook's count per mailbox.
    pub services: crate::graph::limits::ServiceLimits,
}

impl Default for GraphThrottle {
    fn default() -> Self {
        GraphThrottle {
            enabled: true,
            capacity: 3500.0,
            refill: 350.0,
            read_cost: 1.0,
            write_cost: 3.0,
            headers: true,
            services: Default::default(),
        }
    }
}

/// Seeded fault injection; each rate is the chance (0..=1) per item or per batch.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Seed of the fault dice, so a failing run can be replayed.
    pub seed: u64,
    /// An item answered 429 (not executed).
    pub item_429: f64,
    /// An item answered 500 (not executed).
    pub item_500: f64,
    /// An item answered 503 (not executed).
    pub item_503: f64,
    /// The batch answered 429 (nothing executed).
    pub envelope_429: f64,
    /// The batch answered 500 (nothing executed).
    pub envelope_500: f64,
    /// The batch answered 503 (nothing executed).
    pub envelope_503: f64,
    /// The connection is dropped before any answer (nothing executed).
    pub reset: f64,
    /// The items run, then the answer is cut off halfway.
    pub truncate: f64,
    /// The batch answered 413 (nothing executed).
    pub envelope_413: f64,
    /// The batch answered 307 to another host (nothing executed).
    pub redirect: f64,
    /// The items run, then the answer is an HTML error page with status 200.
    pub garbage: f64,
    /// The items run, then the answer names one item twice (once with
    /// another item's answer).
    pub duplicate_name: f64,
    /// The items run, then the answer leaves one item out.
    pub missing_name: f64,
    /// The items run, then no answer ever comes (the connection stays open).
    pub hang: f64,
    /// From `.0` after the start, for `.1`, every batch is answered with a
    /// dropped connection: the service is down.
    pub outage: Option<(Duration, Duration)>,
    /// The batch waits `slow_delay` before it starts.
    pub slow_batch: f64,
    /// Delay of a slow batch.
    pub slow_delay: Duration,
    /// `Retry-After` seconds of injected 429/503 answers.
    pub retry_after_secs: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 1,
            item_429: 0.0,
            item_500: 0.0,
            item_503: 0.0,
            envelope_429: 0.0,
            envelope_500: 0.0,
            envelope_503: 0.0,
            reset: 0.0,
            truncate: 0.0,
            envelope_413: 0.0,
            redirect: 0.0,
            garbage: 0.0,
            duplicate_name: 0.0,
            missing_name: 0.0,
            hang: 0.0,
            outage: None,
            slow_batch: 0.0,
            slow_delay: Duration::from_secs(2),
            retry_after_secs: 1,
        }
    }
}

/// Everything the emulator can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// How many subscriptions the tenant has.
    pub subscriptions: usize,
    /// The bearer token every call must carry (besides tokens the emulator
    /// issued itself); `None` accepts any call. A JWT-shaped token is refused
    /// after its `exp`.
    pub token: Option<String>,
    /// How long tokens issued by the identity endpoints live.
    pub token_lifetime: Duration,
    /// The `X-IDENTITY-HEADER` the App Service / Automation endpoint wants.
    pub identity_header: String,
    /// The client secret the token endpoint accepts.
    pub client_secret: String,
    /// Per-item delay.
    pub latency: Latency,
    /// Per-subscription throttling.
    pub throttle: Throttle,
    /// Fault injection.
    pub faults: Faults,
    /// Batches with more items than this answer 202 and are polled.
    pub async_threshold: usize,
    /// `Retry-After` seconds of 202 answers.
    pub async_retry_after_secs: u64,
    /// Key of the item list in a polled final answer: `responses` or `value`.
    pub async_result_key: &'static str,
    /// Answer batch items in a random order instead of the order sent.
    pub shuffle: bool,
    /// Page size of `GET /subscriptions`.
    pub subscriptions_page: usize,
    /// Page size of the Batch accounts list.
    pub batch_accounts_page: usize,
    /// Users in the Graph directory.
    pub graph_users: usize,
    /// Groups in the Graph directory.
    pub graph_groups: usize,
    /// Graph's per-app throttling.
    pub graph_throttle: GraphThrottle,
    /// Answer Graph batch items in a random order, as Graph does.
    pub graph_shuffle: bool,
    /// When set, `nextLink`s point at this base URL instead of the emulator (tests
    /// that links to other hosts are not followed).
    pub next_link_base: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 0,
            subscriptions: 10,
            token: None,
            token_lifetime: Duration::from_secs(3600),
            identity_header: "emulator-identity-header".into(),
            client_secret: "emulator-client-secret".into(),
            latency: Latency::default(),
            throttle: Throttle::default(),
            faults: Faults::default(),
            async_threshold: 20,
            async_retry_after_secs: 1,
            async_result_key: "responses",
            shuffle: false,
            subscriptions_page: 50,
            batch_accounts_page: 2,
            graph_users: 20,
            graph_groups: 10,
            graph_throttle: GraphThrottle::default(),
            graph_shuffle: true,
            next_link_base: None,
        }
    }
}
