//! Token buckets like ARM's: reads, writes and deletes, per subscription
//! (calls outside one count against the tenant's), as Microsoft documents
//! them (reads 250 refilled at 25 a second, writes and deletes 200 at 10).

use std::collections::HashMap;
use std::time::Instant;

use crate::config::Throttle;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Reads, writes or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// GET and HEAD.
    Read,
    /// DELETE.
    Delete,
    /// Everything else.
    Write,
}

impl Kind {
    /// The kind of an HTTP method.
    pub fn of(method: &str) -> Kind {
        match method {
            "GET" | "HEAD" => Kind::Read,
            "DELETE" => Kind::Delete,
            _ => Kind::Write,
        }
    }

    /// As ARM's messages say it.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Delete => "delete",
            Kind::Write => "write",
        }
    }

    /// ARM's header that tells how many calls of this kind remain, for a
    /// subscription's bucket or (`tenant`) the tenant's.
    pub fn remaining_header(self, tenant: bool) -> &'static str {
        match (tenant, self) {
            (false, Kind::Read) => "x-ms-ratelimit-remaining-subscription-reads",
            (false, Kind::Delete) => "x-ms-ratelimit-remaining-subscription-deletes",
            (false, Kind::Write) => "x-ms-ratelimit-remaining-subscription-writes",
            (true, Kind::Read) => "x-ms-ratelimit-remaining-tenant-reads",
            (true, Kind::Delete) => "x-ms-ratelimit-remaining-tenant-deletes",
            (true, Kind::Write) => "x-ms-ratelimit-remaining-tenant-writes",
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
            Kind::Delete => (self.config.delete_capacity, self.config.delete_refill),
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
        assert_eq!(b.take("s", Kind::Delete, t), Ok(199), "and deletes theirs");
        assert_eq!(
            Kind::of("DELETE").remaining_header(true),
            "x-ms-ratelimit-remaining-tenant-deletes"
        );
        assert_eq!(
            b.take("s", Kind::Read, t + Duration::from_millis(1500)),
            Ok(0)
        );
    }
}
