//! Token buckets like ARM's: reads, writes and deletes, per subscription
//! (calls outside one count against the tenant's), as Microsoft documents
//! them (reads 250 refilled at 25 a second, writes and deletes 200 at 10),
//! inside each subscription's global bucket, 15 times that, which every
//! principal shares (other principals' calls can be set to drain it).

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

    /// ARM's header with the calls of this kind left in a subscription's
    /// global bucket (all principals).
    pub fn global_header(self) -> &'static str {
        match self {
            Kind::Read => "x-ms-ratelimit-remaining-subscription-global-reads",
            Kind::Delete => "x-ms-ratelimit-remaining-subscription-global-deletes",
            Kind::Write => "x-ms-ratelimit-remaining-subscription-global-writes",
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
    /// The subscriptions' global buckets.
    global: HashMap<(String, Kind), Bucket>,
}

/// What a call found: the principal's calls left, and the global bucket's
/// (subscriptions only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// In the principal's bucket.
    pub own: u64,
    /// In the subscription's global bucket.
    pub global: Option<u64>,
}

impl Buckets {
    /// Full buckets for every key.
    pub fn new(config: Throttle) -> Buckets {
        Buckets {
            config,
            buckets: HashMap::new(),
            global: HashMap::new(),
        }
    }

    /// Takes one call from `key`'s bucket (and, for a subscription, its
    /// global one): what is left, or the seconds to wait and what is left.
    pub fn take(&mut self, key: &str, kind: Kind, now: Instant) -> Result<Left, (u64, Left)> {
        let (cap, refill) = match kind {
            Kind::Read => (self.config.read_capacity, self.config.read_refill),
            Kind::Write => (self.config.write_capacity, self.config.write_refill),
            Kind::Delete => (self.config.delete_capacity, self.config.delete_refill),
        };
        let key = key.to_ascii_lowercase();
        let factor = self.config.global_factor;
        let others = self.config.others_per_second;
        let subscription = key != crate::service::TENANT;
        let own = fill(&mut self.buckets, (key.clone(), kind), cap, refill, now);
        let global = subscription.then(|| {
            fill(
                &mut self.global,
                (key.clone(), kind),
                cap * factor,
                refill * factor - others,
                now,
            )
        });
        let left = |own: f64, global: Option<f64>| Left {
            own: own.max(0.0) as u64,
            global: global.map(|g| g.max(0.0) as u64),
        };
        if !self.config.enabled {
            return Ok(left(own, global));
        }
        let short = [
            Some((own, refill)),
            global.map(|g| (g, refill * factor - others)),
        ]
        .into_iter()
        .flatten()
        .filter(|(tokens, _)| *tokens < 1.0)
        .map(|(tokens, rate)| ((1.0 - tokens) / rate.max(0.001)).ceil() as u64)
        .max();
        if let Some(wait) = short {
            return Err((wait.max(1), left(own, global)));
        }
        self.buckets.get_mut(&(key.clone(), kind)).unwrap().tokens -= 1.0;
        if let Some(g) = self.global.get_mut(&(key, kind)) {
            g.tokens -= 1.0;
        }
        Ok(left(own - 1.0, global.map(|g| g - 1.0)))
    }
}

/// The bucket at `key` in `map`, refilled (or, with a negative `rate`,
/// drained) to `now`: its tokens.
fn fill(
    map: &mut HashMap<(String, Kind), Bucket>,
    key: (String, Kind),
    cap: f64,
    rate: f64,
    now: Instant,
) -> f64 {
    let b = map.entry(key).or_insert(Bucket {
        tokens: cap,
        last: now,
    });
    b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).clamp(0.0, cap);
    b.last = now;
    b.tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::TENANT;
    use std::time::Duration;

    #[test]
    fn empties_then_refills() {
        let mut b = Buckets::new(Throttle {
            read_capacity: 3.0,
            read_refill: 1.0,
            ..Throttle::default()
        });
        let t = Instant::now();
        let own = |r: Result<Left, (u64, Left)>| r.map(|l| l.own).map_err(|(w, _)| w);
        assert_eq!(own(b.take("s", Kind::Read, t)), Ok(2));
        assert_eq!(
            own(b.take("S", Kind::Read, t)),
            Ok(1),
            "keys are case-insensitive"
        );
        assert_eq!(own(b.take("s", Kind::Read, t)), Ok(0));
        assert_eq!(own(b.take("s", Kind::Read, t)), Err(1));
        assert_eq!(
            own(b.take("other", Kind::Read, t)),
            Ok(2),
            "buckets are per subscription"
        );
        assert_eq!(
            own(b.take("s", Kind::Write, t)),
            Ok(199),
            "writes have their own bucket"
        );
        assert_eq!(
            own(b.take("s", Kind::Delete, t)),
            Ok(199),
            "and deletes theirs"
        );
        assert_eq!(
            Kind::of("DELETE").remaining_header(true),
            "x-ms-ratelimit-remaining-tenant-deletes"
        );
        assert_eq!(
            own(b.take("s", Kind::Read, t + Duration::from_millis(1500))),
            Ok(0)
        );
    }

    #[test]
    fn the_global_bucket_binds_when_other_principals_drain_it() {
        // A principal's bucket of 10 refilled 1/s, the global one of 20
        // refilled 2/s, of which other principals take 1.5/s.
        let mut b = Buckets::new(Throttle {
            read_capacity: 10.0,
            read_refill: 1.0,
            global_factor: 2.0,
            others_per_second: 1.5,
            ..Throttle::default()
        });
        let t = Instant::now();
        assert_eq!(
            b.take(TENANT, Kind::Read, t).unwrap().global,
            None,
            "a tenant has none"
        );
        let burst = |b: &mut Buckets, at: Instant| {
            (0..10)
                .take_while(|_| b.take("s", Kind::Read, at).is_ok())
                .count()
        };
        assert_eq!(burst(&mut b, t), 10, "20 in the global bucket");
        assert_eq!(
            burst(&mut b, t + Duration::from_secs(10)),
            10,
            "10 + 5 left"
        );
        assert_eq!(burst(&mut b, t + Duration::from_secs(20)), 10, "5 + 5 left");
        let at = t + Duration::from_secs(30);
        assert_eq!(burst(&mut b, at), 5, "the global bucket binds: 0 + 5");
        let (wait, left) = b.take("s", Kind::Read, at).unwrap_err();
        assert_eq!(
            left,
            Left {
                own: 5,
                global: Some(0)
            }
        );
        assert_eq!(
            wait, 2,
            "a call's worth at the 0.5 a second the others leave"
        );
    }
}
