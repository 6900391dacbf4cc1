//! Every number a caller can set, with its range and default, and AzBatch's
//! own waits: the options parser checks against these, the command line's
//! help and the PowerShell module (through `batch_info`) read them, so each
//! lives here only. (The services' limits are their dialects': `src/dialect/`.)

use std::time::Duration;

use serde::Serialize;

/// Largest ARM batch the service takes.
pub const ARM_MAX_BATCH: usize = crate::dialect::arm::MAX_BATCH;
/// Largest Graph batch the service takes.
pub const GRAPH_MAX_BATCH: usize = crate::dialect::graph::MAX_BATCH;
/// Items per batch unless the caller says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 20;

/// Fewest and most batches in flight at once.
pub const CONCURRENCY: (usize, usize) = (1, 256);
/// Batches in flight unless the caller says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Fewest and most sends of one item (per page).
pub const MAX_ATTEMPTS: (u32, u32) = (1, 100);
/// Sends per item unless the caller says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;

/// Longest deadline a run may have.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);
/// A run's deadline unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long one HTTP attempt may wait for its answer unless the caller says
/// otherwise; a longer wait is handled as a lost answer.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// Largest batch request body AzBatch sends: Graph refuses requests over
/// 4 MB, and ARM's request limit is 4 MB too; a little is left for headers.
pub const MAX_BATCH_BYTES: usize = 4_000_000;

/// The first wait of AzBatch's own backoff (doubling from here), when the
/// service names none.
pub const BACKOFF_BASE: Duration = Duration::from_millis(800);
/// The longest wait of AzBatch's own backoff, jitter included.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Longest wait AzBatch accepts from a service's `Retry-After` (or its own
/// backoff); anything longer is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// The limits as the C ABI's `batch_info` gives them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Most items in an ARM batch.
    pub arm_max_batch_size: usize,
    /// Most items in a Graph batch.
    pub graph_max_batch_size: usize,
    /// Default items per batch.
    pub default_batch_size: usize,
    /// Fewest batches in flight.
    pub min_concurrency: usize,
    /// Most batches in flight.
    pub max_concurrency: usize,
    /// Default batches in flight.
    pub default_concurrency: usize,
    /// Fewest sends per item.
    pub min_attempts: u32,
    /// Most sends per item.
    pub max_attempts: u32,
    /// Default sends per item.
    pub default_max_attempts: u32,
    /// Longest run deadline, in seconds.
    pub max_timeout_seconds: u64,
    /// Default run deadline, in seconds.
    pub default_timeout_seconds: u64,
    /// Default wait for one HTTP attempt's answer, in seconds.
    pub default_attempt_timeout_seconds: u64,
    /// Largest batch request body, in bytes.
    pub max_batch_bytes: usize,
}

/// Every limit above, in one value.
pub fn all() -> Limits {
    Limits {
        arm_max_batch_size: ARM_MAX_BATCH,
        graph_max_batch_size: GRAPH_MAX_BATCH,
        default_batch_size: DEFAULT_BATCH_SIZE,
        min_concurrency: CONCURRENCY.0,
        max_concurrency: CONCURRENCY.1,
        default_concurrency: DEFAULT_CONCURRENCY,
        min_attempts: MAX_ATTEMPTS.0,
        max_attempts: MAX_ATTEMPTS.1,
        default_max_attempts: DEFAULT_MAX_ATTEMPTS,
        max_timeout_seconds: MAX_TIMEOUT.as_secs(),
        default_timeout_seconds: DEFAULT_TIMEOUT.as_secs(),
        default_attempt_timeout_seconds: DEFAULT_ATTEMPT_TIMEOUT.as_secs(),
        max_batch_bytes: MAX_BATCH_BYTES,
    }
}
