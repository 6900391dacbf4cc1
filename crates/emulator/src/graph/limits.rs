//! Graph's per-service limits beside the directory's resource units, as
//! "Microsoft Graph service-specific throttling limits" documents them (read
//! 2026-12-07; microsoftgraph/microsoft-graph-docs-contrib,
//! `concepts/throttling-limits.md`):
//!
//! - identity and access **writes**: 3,000 requests per 2 minutes 30 seconds
//!   per app and tenant;
//! - **Intune** devices (`/deviceManagement/...`): POST, PUT, DELETE, PATCH
//!   200 requests per 20 seconds per app and tenant, any request 2,000 per
//!   20 seconds;
//! - **Outlook**: 10,000 requests per 10 minutes per app and mailbox (its
//!   four at once are `Service::enter_mailbox`'s);
//! - **SharePoint and OneDrive** ("Avoid getting throttled or blocked in
//!   SharePoint Online"): 1,250 resource units a minute per app for the
//!   smallest tenants, a call costing 1, 2 or 5 units by kind
//!   (`azbatch::dialect::graph::sharepoint_cost`); from 80% of them used the
//!   answers carry `RateLimit-Limit`, `RateLimit-Remaining` and
//!   `RateLimit-Reset`.
//!
//! Each is a token bucket of its count refilled evenly over its period. A
//! refused request is answered 429 with `Retry-After` and, as Graph sends
//! them, `x-ms-throttle-scope` and `x-ms-throttle-information`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use azbatch::dialect::graph::{mailbox_of, sharepoint_cost};

/// A documented count per period: (requests, seconds).
pub type Count = (f64, f64);

/// The limits, each as a count per period; tests shrink them.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLimits {
    pub identity_writes: Count,
    pub intune_writes: Count,
    pub intune_any: Count,
    pub outlook: Count,
    /// Resource units, per period.
    pub sharepoint: Count,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            identity_writes: (3000.0, 150.0),
            intune_writes: (200.0, 20.0),
            intune_any: (2000.0, 20.0),
            outlook: (10_000.0, 600.0),
            sharepoint: (1250.0, 60.0),
        }
    }
}

/// SharePoint's bucket of resource units.
const SHAREPOINT: &str = "sharepoint";

/// The emulator's app and tenant, as `x-ms-throttle-scope` names them.
const APP_ID: &str = "9a3d526c-b3c1-4479-ba74-197b5c5751ae";
const TENANT_ID: &str = "0785ef7c-2d7a-4542-b048-95bcab406e0b";

/// A request refused by one of the limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// Seconds until the bucket holds the request.
    pub retry_after: f64,
    /// `x-ms-throttle-scope`.
    pub scope: String,
    /// `x-ms-throttle-information`.
    pub information: &'static str,
}

/// The buckets, by limit and (for Outlook) mailbox.
pub struct Limits {
    limits: ServiceLimits,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limits {
    pub fn new(limits: ServiceLimits) -> Limits {
        Limits {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes what a `method` call to `path` (relative to the version root)
    /// counts against, or says which limit refused it. Identity and
    /// protection paths not written to count here for nothing.
    /// On success, the headers the answer carries (SharePoint's `RateLimit-*`
    /// from 80% of its units used).
    pub fn take(
        &self,
        method: &str,
        path: &str,
        now: Instant,
    ) -> Result<Vec<(String, String)>, Refused> {
        let write = !matches!(method, "GET" | "HEAD");
        let p = path.trim_start_matches('/').to_ascii_lowercase();
        let tenant = |kind: &str| format!("Tenant_Application/{kind}/{APP_ID}/{TENANT_ID}");
        let mut rules: Vec<(String, Count, &'static str, String)> = vec![];
        let mut cost = 1.0;
        if let Some(units) = sharepoint_cost(method, path) {
            cost = units;
            rules.push((
                SHAREPOINT.into(),
                self.limits.sharepoint,
                "ResourceUnitLimitExceeded",
                tenant("ReadWrite"),
            ));
        } else if let Some(mailbox) = mailbox_of(path) {
            let scope = format!("Mailbox_Application/ReadWrite/{APP_ID}/{mailbox}");
            rules.push((
                format!("outlook/{mailbox}"),
                self.limits.outlook,
                "MailboxLimitExceeded",
                scope,
            ));
        } else if p.starts_with("devicemanagement/") {
            if write {
                rules.push((
                    "intune-writes".into(),
                    self.limits.intune_writes,
                    "WriteLimitExceeded",
                    tenant("Write"),
                ));
            }
            rules.push((
                "intune".into(),
                self.limits.intune_any,
                "RequestLimitExceeded",
                tenant("ReadWrite"),
            ));
        } else if write {
            rules.push((
                "identity-writes".into(),
                self.limits.identity_writes,
                "WriteLimitExceeded",
                tenant("Write"),
            ));
        }
        let mut buckets = self.buckets.lock().unwrap();
        // Every limit must hold the request before any is charged.
        for (key, (count, seconds), information, scope) in &rules {
            let rate = count / seconds;
            let b = buckets.entry(key.clone()).or_insert((*count, now));
            b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(*count);
            b.1 = now;
            if b.0 < cost {
                return Err(Refused {
                    retry_after: (cost - b.0) / rate,
                    scope: scope.clone(),
                    information,
                });
            }
        }
        let mut headers = vec![];
        for (key, (count, seconds), ..) in &rules {
            if let Some(b) = buckets.get_mut(key) {
                b.0 -= cost;
                if key == SHAREPOINT && b.0 <= 0.2 * count {
                    let reset = (count - b.0) / (count / seconds);
                    headers = vec![
                        ("RateLimit-Limit".to_string(), format!("{count}")),
                        (
                            "RateLimit-Remaining".to_string(),
                            format!("{}", b.0.floor()),
                        ),
                        ("RateLimit-Reset".to_string(), format!("{}", reset.ceil())),
                    ];
                }
            }
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_limit_counts_its_own_calls_and_names_itself() {
        let limits = Limits::new(ServiceLimits {
            identity_writes: (3.0, 3.0),
            intune_writes: (2.0, 20.0),
            intune_any: (4.0, 20.0),
            outlook: (2.0, 600.0),
            ..ServiceLimits::default()
        });
        let t = Instant::now();
        for _ in 0..3 {
            limits.take("PATCH", "/users/a", t).unwrap();
        }
        let r = limits.take("POST", "/groups", t).unwrap_err();
        assert_eq!(r.information, "WriteLimitExceeded");
        assert!(r.scope.starts_with("Tenant_Application/Write/"), "{r:?}");
        assert!((r.retry_after - 1.0).abs() < 1e-9, "one a second: {r:?}");
        // Reads of the directory are the resource units' business.
        limits.take("GET", "/users/a", t).unwrap();
        // A second later one write is back.
        limits
            .take("PATCH", "/users/a", t + Duration::from_secs(1))
            .unwrap();
        // Intune: two writes, then reads until its four.
        limits
            .take("PATCH", "/deviceManagement/managedDevices/d1", t)
            .unwrap();
        limits
            .take("DELETE", "/deviceManagement/managedDevices/d2", t)
            .unwrap();
        let r = limits
            .take("PATCH", "/deviceManagement/managedDevices/d3", t)
            .unwrap_err();
        assert_eq!(r.information, "WriteLimitExceeded");
        limits
            .take("GET", "/deviceManagement/managedDevices", t)
            .unwrap();
        limits
            .take("GET", "/deviceManagement/managedDevices", t)
            .unwrap();
        let r = limits
            .take("GET", "/deviceManagement/managedDevices", t)
            .unwrap_err();
        assert_eq!(r.information, "RequestLimitExceeded");
        // Outlook per mailbox: another mailbox is not held back.
        limits.take("GET", "/users/u1/messages", t).unwrap();
        limits.take("GET", "/users/u1/messages", t).unwrap();
        let r = limits.take("GET", "/users/u1/messages", t).unwrap_err();
        assert!(r.scope.starts_with("Mailbox_Application/"), "{r:?}");
        limits.take("GET", "/users/u2/messages", t).unwrap();
    }

    #[test]
    fn sharepoint_charges_units_by_kind_and_says_what_is_left_past_80_percent() {
        let limits = Limits::new(ServiceLimits {
            sharepoint: (100.0, 10.0),
            ..ServiceLimits::default()
        });
        let t = Instant::now();
        // 39 listings (2 units each): 78 used, no header yet.
        for _ in 0..39 {
            let h = limits
                .take("GET", "/drives/d1/items/root/children", t)
                .unwrap();
            assert!(h.is_empty(), "{h:?}");
        }
        // A permission call (5): 83 used, 17 left: past 80%.
        let h = limits
            .take("GET", "/drives/d1/items/i1/permissions", t)
            .unwrap();
        assert!(
            h.contains(&("RateLimit-Remaining".to_string(), "17".to_string())),
            "{h:?}"
        );
        assert!(
            h.contains(&("RateLimit-Limit".to_string(), "100".to_string())),
            "{h:?}"
        );
        // 17 single items (1 each), then none.
        for _ in 0..17 {
            limits.take("GET", "/sites/s1", t).unwrap();
        }
        let r = limits.take("GET", "/sites/s1", t).unwrap_err();
        assert_eq!(r.information, "ResourceUnitLimitExceeded");
        assert!((r.retry_after - 0.1).abs() < 1e-9, "{r:?}");
        // SharePoint's writes are not the directory's.
        limits.take("PATCH", "/users/u1", t).unwrap();
    }
}
