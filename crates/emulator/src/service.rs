//! The emulator's shared state and the one path every inner operation takes,
//! inside a batch or called directly: throttle, latency, the model, the log.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::arm::model::{cloud_error, ArmModel};
use crate::config::Config;
use crate::graph::model::GraphModel;
use crate::reply::{error, Reply};
use crate::throttle::{Buckets, Kind};

/// One inner operation the emulator executed (it reached the model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// HTTP method.
    pub method: String,
    /// Path without query, as sent.
    pub path: String,
    /// The status the model answered.
    pub status: u16,
    /// Whether it came inside a batch.
    pub in_batch: bool,
}

/// One batch request the emulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// Items in it (0 when the envelope was refused before reading them).
    pub items: usize,
    /// Status of the envelope's first answer.
    pub status: u16,
}

impl BatchRecord {
    /// The record of a batch whose body is `body`, answered `status`; the
    /// items are counted without building them (the handler already did).
    pub fn of(body: &[u8], status: u16) -> BatchRecord {
        #[derive(serde::Deserialize)]
        struct Envelope {
            requests: Vec<serde::de::IgnoredAny>,
        }
        let items = serde_json::from_slice::<Envelope>(body).map_or(0, |e| e.requests.len());
        BatchRecord { items, status }
    }
}

/// State behind every request.
pub struct Service {
    pub(crate) config: Config,
    arm: Mutex<ArmModel>,
    buckets: Mutex<Buckets>,
    graph: Mutex<GraphModel>,
    /// Graph's resource units left and when they were last topped up.
    graph_units: Mutex<(f64, Instant)>,
    /// Outlook requests running now, per mailbox.
    mailboxes: Mutex<HashMap<String, usize>>,
    /// Identity protection and Conditional Access: when the tenant's one
    /// request a second was last taken.
    protection: Mutex<Option<Instant>>,
    /// Graph's per-service limits: identity writes, Intune, Outlook's count.
    service_limits: crate::graph::limits::Limits,
    rng: Mutex<StdRng>,
    /// Faults injected so far, by kind.
    injected: Mutex<BTreeMap<&'static str, u64>>,
    /// When the emulator started (outages are timed from it).
    started: Instant,
    ops: Mutex<Vec<Op>>,
    pub(crate) batches: Mutex<Vec<BatchRecord>>,
    /// Tokens issued by the identity endpoints.
    pub issuer: crate::identity::Issuer,
    /// Asynchronous batches: id → final answer once done.
    pub(crate) pending: Mutex<HashMap<String, Option<Value>>>,
}

impl Service {
    /// A fresh tenant for `config`.
    pub fn new(config: Config) -> Service {
        Service {
            arm: Mutex::new(ArmModel::new(
                config.subscriptions,
                config.subscriptions_page,
                config.batch_accounts_page,
            )),
            buckets: Mutex::new(Buckets::new(config.throttle)),
            graph: Mutex::new(GraphModel::new(config.graph_users, config.graph_groups)),
            graph_units: Mutex::new((config.graph_throttle.capacity, Instant::now())),
            mailboxes: Mutex::new(HashMap::new()),
            protection: Mutex::new(None),
            service_limits: crate::graph::limits::Limits::new(config.graph_throttle.services),
            rng: Mutex::new(StdRng::seed_from_u64(config.faults.seed)),
            injected: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
            ops: Mutex::new(Vec::new()),
            batches: Mutex::new(Vec::new()),
            issuer: Default::default(),
            pending: Mutex::new(HashMap::new()),
            config,
        }
    }

    /// Rolls the fault dice: true with probability `rate`.
    pub fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && self.rng.lock().unwrap().random::<f64>() < rate
    }

    /// [`Service::roll`] for a fault of `kind`, counted when it hits.
    pub fn inject(&self, kind: &'static str, rate: f64) -> bool {
        let hit = self.roll(rate);
        if hit {
            self.injected(kind);
        }
        hit
    }

    /// Counts one fault of `kind`.
    pub fn injected(&self, kind: &'static str) {
        *self.injected.lock().unwrap().entry(kind).or_default() += 1;
    }

    /// Faults injected so far, by kind.
    pub fn faults_injected(&self) -> BTreeMap<&'static str, u64> {
        self.injected.lock().unwrap().clone()
    }

    /// Whether the configured outage is going on now.
    pub fn in_outage(&self) -> bool {
        self.config.faults.outage.is_some_and(|(from, len)| {
            let t = self.started.elapsed();
            t >= from && t < from + len
        })
    }

    /// A number below `n`, from the fault dice.
    pub fn pick(&self, n: usize) -> usize {
        self.rng.lock().unwrap().random_range(0..n.max(1))
    }

    fn latency(&self) -> Duration {
        let l = self.config.latency;
        if l.max <= l.min {
            return l.min;
        }
        let span = (l.max - l.min).as_micros() as u64;
        l.min + Duration::from_micros(self.rng.lock().unwrap().random_range(0..=span))
    }

    /// Every operation executed so far.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }

    /// Reads the Graph directory, for tests.
    pub fn graph<T>(&self, f: impl FnOnce(&GraphModel) -> T) -> T {
        f(&self.graph.lock().unwrap())
    }

    fn log(&self, method: &str, path: String, status: u16, in_batch: bool) {
        self.ops.lock().unwrap().push(Op {
            method: method.to_string(),
            path,
            status,
            in_batch,
        });
    }

    /// Takes `cost` resource units: `Ok(percent of the limit now used)` or
    /// `Err(seconds until there are enough)`.
    fn take_units(&self, cost: f64) -> Result<f64, f64> {
        let t = self.config.graph_throttle;
        if !t.enabled {
            // No throttling: nothing counted, and no header says otherwise.
            return Ok(0.0);
        }
        let mut g = self.graph_units.lock().unwrap();
        let now = Instant::now();
        g.0 = (g.0 + now.duration_since(g.1).as_secs_f64() * t.refill).min(t.capacity);
        g.1 = now;
        if g.0 < cost {
            return Err((cost - g.0) / t.refill);
        }
        g.0 = (g.0 - cost).max(0.0);
        Ok(100.0 * (1.0 - g.0 / t.capacity))
    }

    /// Takes the tenant's one identity-protection request of this second.
    fn take_protection(&self) -> bool {
        let mut last = self.protection.lock().unwrap();
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Counts a request to a mailbox as running until the guard drops; none
    /// when the mailbox already has Outlook's four at once. Requests that are
    /// not to a mailbox always enter.
    fn enter_mailbox(&self, path: &str) -> Option<MailboxGuard<'_>> {
        let Some(mailbox) = mailbox_of(path) else {
            return Some(MailboxGuard {
                svc: self,
                mailbox: None,
            });
        };
        let mut running = self.mailboxes.lock().unwrap();
        let n = running.entry(mailbox.clone()).or_insert(0);
        if *n >= OUTLOOK_CONCURRENCY {
            return None;
        }
        *n += 1;
        Some(MailboxGuard {
            svc: self,
            mailbox: Some(mailbox),
        })
    }

    /// The Graph per-service limits (identity writes, Intune, Outlook's
    /// count, SharePoint's units) a call takes from: the headers its answer
    /// carries, or the 429 of the limit it is over, naming it as Graph does.
    fn service_limits(&self, method: &str, path: &str) -> Result<Vec<(String, String)>, Reply> {
        let t = self.config.graph_throttle;
        if !t.enabled {
            return Ok(vec![]);
        }
        let refused = match self.service_limits.take(method, path, Instant::now()) {
            Ok(headers) if t.headers => return Ok(headers),
            Ok(_) => return Ok(vec![]),
            Err(r) => r,
        };
        let mut r = error(
            429,
            "TooManyRequests",
            "Too many requests, please retry later.",
        );
        r.headers.push((
            "Retry-After".into(),
            format!("{:.0}", refused.retry_after.ceil().max(1.0)),
        ));
        if t.headers {
            r.headers
                .push(("x-ms-throttle-scope".into(), refused.scope));
            r.headers.push((
                "x-ms-throttle-information".into(),
                refused.information.into(),
            ));
        }
        Err(r)
    }

    /// Runs one Graph operation: throttling, latency, the directory, the log.
    /// `url` is relative to the version root (or absolute); `root` is the
    /// absolute version root for links.
    pub async fn execute_graph(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        bytes: Option<&[u8]>,
        root: &str,
        in_batch: bool,
    ) -> Reply {
        let (path, query) = split_url(url);
        let t = self.config.graph_throttle;
        let cost = if matches!(method, "GET" | "HEAD") {
            t.read_cost
        } else {
            t.write_cost
        };
        let Some(_running) = self.enter_mailbox(&path) else {
            // As Outlook answers a fifth request at once to one mailbox.
            let mut r = error(
                429,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            );
            r.headers.push(("Retry-After".into(), "1".into()));
            self.log(method, path, r.status, in_batch);
            return r;
        };
        if t.enabled && is_protection(&path) && !self.take_protection() {
            // "1 request per second" per tenant, and the 429 carries no
            // Retry-After ("Microsoft Graph service-specific throttling limits").
            let r = error(429, "TooManyRequests", "Too many requests.");
            self.log(method, path, r.status, in_batch);
            return r;
        }
        let service_headers = match self.service_limits(method, &path) {
            Ok(h) => h,
            Err(r) => {
                self.log(method, path, r.status, in_batch);
                return r;
            }
        };
        // Resource units are the directory's (identity and access) limit;
        // Outlook and SharePoint count their own way and send neither header.
        let counted = mailbox_of(&path).is_none() && !is_sharepoint(&path) && t.enabled;
        let taken = if counted {
            self.take_units(cost)
        } else {
            Ok(0.0)
        };
        let reply = match taken {
            Err(wait) => {
                let mut r = error(
                    429,
                    "TooManyRequests",
                    "Too many requests, please retry later.",
                );
                // Graph sends decimal seconds, such as 0.249.
                r.headers
                    .push(("Retry-After".into(), format!("{:.3}", wait.max(0.001))));
                r
            }
            Ok(percent) => {
                let delay = self.latency();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let mut r = self
                    .graph
                    .lock()
                    .unwrap()
                    .handle(method, &path, &query, body, bytes, root);
                r.headers.extend(service_headers);
                if counted && t.headers {
                    // What the request cost, on every answer that counted.
                    r.headers
                        .push(("x-ms-resource-unit".into(), format!("{cost}")));
                }
                // As Graph sends it: the fraction of the limit used, only above 0.8.
                if percent >= 80.0 && t.headers {
                    r.headers.push((
                        "x-ms-throttle-limit-percentage".into(),
                        format!("{:.2}", percent / 100.0),
                    ));
                }
                r
            }
        };
        self.log(method, path, reply.status, in_batch);
        reply
    }

    /// Runs one ARM operation: throttling, latency, the model, the log.
    /// `url` is a path with query, or an absolute URL whose path is used.
    pub async fn execute(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        base: &str,
        in_batch: bool,
    ) -> Reply {
        let (path, query) = split_url(url);
        let kind = Kind::of(method);
        let key = throttle_key(&path);
        let header = kind.remaining_header(key == TENANT);
        let taken = self
            .buckets
            .lock()
            .unwrap()
            .take(&key, kind, Instant::now());
        let left = match taken {
            Ok(l) | Err((_, l)) => l,
        };
        let mut reply = match taken {
            Err((wait, _)) => {
                let mut r = if key == TENANT {
                    cloud_error(429, "TenantRequestsThrottled", &format!("Number of {} requests for the tenant exceeded the limit. Please try again after '{wait}' seconds.", kind.word()))
                } else {
                    cloud_error(429, "SubscriptionRequestsThrottled", &format!("Number of {} requests for subscription '{key}' exceeded the limit. Please try again after '{wait}' seconds.", kind.word()))
                };
                r.headers.push(("Retry-After".into(), wait.to_string()));
                r
            }
            Ok(_) => {
                let delay = self.latency();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let base = self.config.next_link_base.as_deref().unwrap_or(base);
                self.arm
                    .lock()
                    .unwrap()
                    .handle(method, &path, &query, body, base)
            }
        };
        if self.config.throttle.headers {
            reply.headers.push((header.into(), left.own.to_string()));
            if let Some(g) = left.global {
                reply
                    .headers
                    .push((kind.global_header().into(), g.to_string()));
            }
        }
        reply.headers.push((
            "x-ms-request-id".into(),
            format!("{:016x}", self.rng.lock().unwrap().random::<u64>()),
        ));
        self.ops.lock().unwrap().push(Op {
            method: method.to_string(),
            path,
            status: reply.status,
            in_batch,
        });
        reply
    }
}

/// Outlook's limit and which paths reach a mailbox are Graph's facts,
/// written once, in the library's dialect.
pub use azbatch::dialect::graph::{is_protection, is_sharepoint, mailbox_of, OUTLOOK_CONCURRENCY};

/// A request counted as running in its mailbox.
struct MailboxGuard<'a> {
    svc: &'a Service,
    mailbox: Option<String>,
}

impl Drop for MailboxGuard<'_> {
    fn drop(&mut self) {
        if let Some(m) = &self.mailbox {
            if let Some(n) = self.svc.mailboxes.lock().unwrap().get_mut(m) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// The throttle key of calls outside any subscription.
pub(crate) const TENANT: &str = "tenant";

/// `/subscriptions/{id}/...` is throttled per subscription; anything else per tenant.
fn throttle_key(path: &str) -> String {
    let mut segs = path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next()) {
        (Some(s), Some(id)) if s.eq_ignore_ascii_case("subscriptions") && !id.is_empty() => {
            id.to_ascii_lowercase()
        }
        _ => TENANT.to_string(),
    }
}

/// Splits a path-with-query or absolute URL into its path and decoded query.
pub fn split_url(url: &str) -> (String, BTreeMap<String, String>) {
    let rest = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            after.find('/').map(|j| &after[j..]).unwrap_or("/")
        }
        None => url,
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let query = url_query(query);
    (path.to_string(), query)
}

fn url_query(q: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths_and_queries() {
        let (p, q) = split_url(
            "https://management.azure.com/subscriptions?api-version=2022-12-01&%24skiptoken=50",
        );
        assert_eq!(p, "/subscriptions");
        assert_eq!(q["api-version"], "2022-12-01");
        assert_eq!(q["$skiptoken"], "50");
        let (p, q) = split_url("/a/b");
        assert_eq!((p.as_str(), q.len()), ("/a/b", 0));
        assert_eq!(throttle_key("/subscriptions/ABC/resourcegroups"), "abc");
        assert_eq!(throttle_key("/subscriptions"), "tenant");
        assert_eq!(mailbox_of("/users/Ada/events"), Some("ada".into()));
        assert_eq!(mailbox_of("/me/calendarView"), Some("me".into()));
        assert_eq!(mailbox_of("/users/ada"), None);
        assert_eq!(mailbox_of("/users/ada/memberOf"), None);
    }
}
