//! Token buckets like ARM's: one pair (reads, writes) per subscription.

use std::collections::HashMap;
use std::time::Instant;

use crate::config::Throttle;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// GET and HEAD.
    Read,
    /// Everything else.
    Write,
}

impl Kind {
    /// ARM's header that tells how many calls of this kind remain.
    pub fn remaining_header(self) -> &'static str {
        match self {
            Kind::Read => "x-ms-ratelimit-remaining-subscription-reads",
            Kind::Write => "x-ms-ratelimit-remaining-subscription-writes",
        }
    }
}

/// All buckets of the tenant.
pub struct Buckets {
    config: Throttle,
    buckets: HashMap<(String, Kind), Bucket>,
}

impl Buckets {
    /// Full buckets for every key.
    pub fn new(config: Throttle) -> Buckets {
        Buckets {
            config,
            buckets: HashMap::new(),
        }
    }

    /// Takes one call from `key`'s bucket: `Ok(remaining)` or `Err(seconds to wait)`.
    pub fn take(&mut self, key: &str, kind: Kind, now: Instant) -> Result<u64, u64> {
        let (cap, refill) = match kind {
            Kind::Read => (self.config.read_capacity, self.config.read_refill),
            Kind::Write => (self.config.write_capacity, self.config.write_refill),
        };
        let b = self
            .buckets
            .entry((key.to_ascii_lowercase(), kind))
            .or_insert(Bucket {
                tokens: cap,
                last: now,
            });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * refill).min(cap);
        b.last = now;
        if !self.config.enabled {
            return Ok(b.tokens as u64);
        }
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(b.tokens as u64)
        } else {
            Err((((1.0 - b.tokens) / refill).ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn empties_then_refills() {
        let mut b = Buckets::new(Throttle {
            read_capacity: 3.0,
            read_refill: 1.0,
            ..Throttle::default()
        });
        let t = Instant::now();
        assert_eq!(b.take("s", Kind::Read, t), Ok(2));
        assert_eq!(
            b.take("S", Kind::Read, t),
            Ok(1),
            "keys are case-insensitive"
        );
        assert_eq!(b.take("s", Kind::Read, t), Ok(0));
        assert_eq!(b.take("s", Kind::Read, t), Err(1));
        assert_eq!(
            b.take("other", Kind::Read, t),
            Ok(2),
            "buckets are per subscription"
        );
        assert_eq!(
            b.take("s", Kind::Write, t),
            Ok(199),
            "writes have their own bucket"
        );
        assert_eq!(
            b.take("s", Kind::Read, t + Duration::from_millis(1500)),
            Ok(0)
        );
    }
}
