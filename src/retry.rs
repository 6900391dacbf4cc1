//! The retry policy, in three pure parts: which outcomes are worth another try
//! ([`is_retryable_status`]), how long the service asked us to wait
//! ([`retry_after`]), and how long to wait when it did not ([`Backoff`]).

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::limits::MAX_RETRY_AFTER;

/// Item or envelope statuses that another attempt may cure.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Envelope statuses that say the service did not run the batch at all, so
/// every item may be sent again, writes included.
pub fn envelope_not_processed(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// The wait the service asked for, from headers looked up case-insensitively by
/// `get`: `retry-after-ms`, `x-ms-retry-after-ms`, then `Retry-After` as seconds
/// (decimals allowed, as Graph sends `0.249`) or as an HTTP date relative to `now`.
/// Every form is cut to [`MAX_RETRY_AFTER`]. Returns `None` when there is no
/// usable header.
pub fn retry_after(get: impl Fn(&str) -> Option<String>, now: SystemTime) -> Option<Duration> {
    let wait = [("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0)]
        .into_iter()
        .find_map(|(name, per_second)| Some(number(&get(name)?)? / per_second))
        .map(seconds)
        .or_else(|| {
            let v = get("retry-after")?;
            match number(&v) {
                Some(s) => Some(seconds(s)),
                None => {
                    let at = httpdate::parse_http_date(v.trim()).ok()?;
                    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
                }
            }
        })?;
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A non-negative, finite number.
fn number(v: &str) -> Option<f64> {
    let n: f64 = v.trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n)
}

/// `s` seconds, saturating at the cap (a number too large for a Duration).
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(MAX_RETRY_AFTER)
}

/// Exponential backoff with optional jitter, for retries without `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first wait.
    pub base: Duration,
    /// No wait is longer than this, jitter included.
    pub cap: Duration,
    /// Adds a random part of up to the wait itself. Off in tests that check exact delays.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: crate::limits::BACKOFF_BASE,
            cap: crate::limits::BACKOFF_CAP,
            jitter: true,
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let mut b = ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.cap)
            .with_factor(2.0)
            .without_max_times();
        if self.jitter {
            b = b.with_jitter();
        }
        let d = b
            .build()
            .nth(retry.saturating_sub(1) as usize)
            .unwrap_or(self.cap);
        d.min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        move |k: &str| m.get(&k.to_ascii_lowercase()).cloned()
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        type Case<'a> = (Vec<(&'a str, &'a str)>, Option<Duration>);
        let table: Vec<Case> = vec![
            (vec![("Retry-After", "7")], Some(Duration::from_secs(7))),
            (
                vec![("retry-after", "0.249")],
                Some(Duration::from_millis(249)),
            ),
            (vec![("Retry-After", " 2 ")], Some(Duration::from_secs(2))),
            (vec![("Retry-After", &date)], Some(Duration::from_secs(30))),
            (vec![("Retry-After", &past)], Some(Duration::ZERO)),
            (vec![("Retry-After", "soon")], None),
            (vec![("Retry-After", "-3")], None),
            (
                vec![("retry-after-ms", "1500"), ("Retry-After", "9")],
                Some(Duration::from_millis(1500)),
            ),
            (
                vec![("x-ms-retry-after-ms", "250")],
                Some(Duration::from_millis(250)),
            ),
            (
                vec![("x-ms-retry-after-ms", "nope"), ("Retry-After", "3")],
                Some(Duration::from_secs(3)),
            ),
            (vec![], None),
            // One cap, one unit: a day, whichever form says more.
            (vec![("Retry-After", "1e12")], Some(MAX_RETRY_AFTER)),
            (vec![("retry-after-ms", "1e12")], Some(MAX_RETRY_AFTER)),
            (vec![("Retry-After", "90000")], Some(MAX_RETRY_AFTER)),
            (
                vec![("x-ms-retry-after-ms", "86400001")],
                Some(MAX_RETRY_AFTER),
            ),
            (
                vec![("retry-after-ms", "86399999")],
                Some(Duration::from_millis(86_399_999)),
            ),
            (vec![("Retry-After", "1e309")], None),
        ];
        for (headers, want) in table {
            assert_eq!(retry_after(lookup(&headers), now), want, "{headers:?}");
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 201, 202, 400, 401, 403, 404, 409, 424, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_from_base_up_to_cap() {
        let b = Backoff {
            jitter: false,
            ..Backoff::default()
        };
        let got: Vec<u128> = (1..=9).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(
            got,
            [800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
    }

    #[test]
    fn jitter_stays_between_the_wait_and_twice_it_and_under_the_cap() {
        let b = Backoff::default();
        for n in 1..=10 {
            let plain = Backoff { jitter: false, ..b }.delay(n);
            for _ in 0..50 {
                let d = b.delay(n);
                assert!(
                    d >= plain && d <= (plain * 2).min(b.cap),
                    "retry {n}: {d:?}"
                );
            }
        }
    }
}
