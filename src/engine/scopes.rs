//! Throttle scopes: the unit a service throttles by. ARM counts per
//! subscription (calls outside one count for the tenant) and kind of call
//! (reads, writes, deletes), each with its token bucket ([`Bucket`]); Graph
//! counts per app, so one scope holds every Graph request, except that
//! Outlook takes at most four requests at once per mailbox.
//!
//! A request waits here while its scope cannot take it: its bucket is empty,
//! the scope is paused after a 429 (until its `Retry-After`), or it has as
//! many in flight as its window allows. After a pause a scope restarts with
//! one batch's worth in flight and grows by one for every success (doubling
//! each round trip) until it is unlimited again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::bucket::{Bucket, Kind};
use crate::api::Api;

/// Outlook's limit of requests at once per mailbox (per app), Graph batches included.
pub(super) const OUTLOOK_CONCURRENCY: usize = 4;

/// The scope a request belongs to: `subscription-reads/{id}`, `tenant-writes`,
/// `app`, `mailbox/{user}`. For ARM the part before `/` names the
/// `x-ms-ratelimit-remaining-*` header that tells its bucket's tokens.
pub(super) fn key(api: Api, method: &str, url: &str) -> String {
    let path = url.split('?').next().unwrap_or("");
    let mut segs = path.trim_start_matches('/').split('/');
    let (first, second, third) = (segs.next(), segs.next(), segs.next());
    match api {
        Api::Graph => match (first, second, third) {
            (Some(u), Some(id), Some(what))
                if u.eq_ignore_ascii_case("users") && is_mailbox(what) =>
            {
                format!("mailbox/{}", id.to_ascii_lowercase())
            }
            (Some(me), Some(what), _) if me.eq_ignore_ascii_case("me") && is_mailbox(what) => {
                "mailbox/me".to_string()
            }
            _ => "app".to_string(),
        },
        Api::Arm => {
            let kind = Kind::of(method).name();
            match (first, second) {
                (Some(s), Some(id))
                    if s.eq_ignore_ascii_case("subscriptions") && !id.is_empty() =>
                {
                    format!("subscription-{kind}/{}", id.to_ascii_lowercase())
                }
                _ => format!("tenant-{kind}"),
            }
        }
    }
}

/// Outlook's resources under a user: mail, calendar, contacts.
fn is_mailbox(segment: &str) -> bool {
    const OUTLOOK: [&str; 10] = [
        "messages",
        "mailfolders",
        "events",
        "calendar",
        "calendars",
        "calendarview",
        "calendargroups",
        "contacts",
        "contactfolders",
        "outlook",
    ];
    OUTLOOK.iter().any(|o| segment.eq_ignore_ascii_case(o))
}

/// ARM's buckets by the head of a scope's key: their kind, and the header
/// that tells how many calls are left.
const ARM_BUCKETS: [(&str, Kind, &str); 6] = [
    (
        "subscription-reads",
        Kind::Reads,
        "x-ms-ratelimit-remaining-subscription-reads",
    ),
    (
        "subscription-writes",
        Kind::Writes,
        "x-ms-ratelimit-remaining-subscription-writes",
    ),
    (
        "subscription-deletes",
        Kind::Deletes,
        "x-ms-ratelimit-remaining-subscription-deletes",
    ),
    (
        "tenant-reads",
        Kind::Reads,
        "x-ms-ratelimit-remaining-tenant-reads",
    ),
    (
        "tenant-writes",
        Kind::Writes,
        "x-ms-ratelimit-remaining-tenant-writes",
    ),
    (
        "tenant-deletes",
        Kind::Deletes,
        "x-ms-ratelimit-remaining-tenant-deletes",
    ),
];

fn arm_bucket(key: &str) -> Option<(Kind, &'static str)> {
    let head = key.split('/').next()?;
    ARM_BUCKETS
        .iter()
        .find(|(h, ..)| *h == head)
        .map(|&(_, kind, header)| (kind, header))
}

/// The header that tells how many calls scope `key`'s bucket has left.
pub(super) fn remaining_header(key: &str) -> Option<&'static str> {
    arm_bucket(key).map(|(_, header)| header)
}

const UNLIMITED: usize = usize::MAX;

/// How long a "near the limit" signal holds the window's growth.
const NEAR: Duration = Duration::from_millis(250);

struct Scope {
    until: Option<Instant>,
    window: usize,
    /// The widest the window gets: unlimited, or Outlook's four.
    max_window: usize,
    in_flight: usize,
    held: VecDeque<usize>,
    /// ARM's bucket for this scope; none for Graph.
    bucket: Option<Bucket>,
    /// The service said the scope is near its limit: the window does not
    /// grow until then, and was cut at most once meanwhile.
    near_until: Option<Instant>,
}

impl Scope {
    /// How many held requests the window has room for.
    fn room(&self) -> usize {
        self.window
            .saturating_sub(self.in_flight)
            .min(self.held.len())
    }

    /// How many held requests may go now: room in the window, and tokens
    /// for a batch's worth (or all that is held) rather than one at a time.
    fn can_release(&mut self, restart: usize, now: Instant) -> usize {
        let room = self.room();
        match &mut self.bucket {
            None => room,
            Some(b) => {
                let have = b.available(now);
                if have < room.min(restart) {
                    0
                } else {
                    have.min(room)
                }
            }
        }
    }
}

pub(super) struct Scopes {
    map: HashMap<String, Scope>,
    /// Scopes with requests waiting in `held`.
    waiting: HashSet<String>,
    /// Requests released from `held`, already counted in flight.
    released: HashSet<usize>,
    /// Requests held, in all scopes.
    held: usize,
    /// For each request in flight in an ARM scope, its bucket's mark when it
    /// was taken (how many had been sent then).
    marks: HashMap<usize, u64>,
    /// Window after a pause: one batch.
    restart: usize,
    /// A window this large is as good as none.
    open: usize,
}

impl Scopes {
    pub fn new(batch_size: usize, concurrency: usize) -> Scopes {
        Scopes {
            map: HashMap::new(),
            waiting: HashSet::new(),
            released: HashSet::new(),
            held: 0,
            marks: HashMap::new(),
            restart: batch_size.max(1),
            open: batch_size * concurrency * 2,
        }
    }

    fn scope(&mut self, key: &str, now: Instant) -> &mut Scope {
        self.map.entry(key.to_string()).or_insert_with(|| {
            let max_window = if key.starts_with("mailbox/") {
                OUTLOOK_CONCURRENCY
            } else {
                UNLIMITED
            };
            Scope {
                until: None,
                window: max_window,
                max_window,
                in_flight: 0,
                held: VecDeque::new(),
                bucket: arm_bucket(key).map(|(kind, _)| Bucket::new(kind, now)),
                near_until: None,
            }
        })
    }

    /// Whether request `idx` of scope `key` may be sent now. When it may not,
    /// it is held until its scope can take it.
    pub fn admit(&mut self, key: &str, idx: usize, now: Instant) -> bool {
        if self.released.remove(&idx) {
            return true;
        }
        let s = self.scope(key, now);
        let paused = s.until.is_some_and(|t| t > now);
        let blocked = paused || s.in_flight >= s.window || !s.held.is_empty();
        if blocked || !s.bucket.as_mut().is_none_or(|b| b.take(now)) {
            s.held.push_back(idx);
            self.held += 1;
            self.waiting.insert(key.to_string());
            return false;
        }
        s.in_flight += 1;
        if let Some(mark) = s.bucket.as_ref().map(Bucket::sent) {
            self.marks.insert(idx, mark);
        }
        true
    }

    /// Request `idx` of scope `key` came back (whatever its answer); its
    /// bucket's mark, for [`Scopes::observe`].
    pub fn landed(&mut self, key: &str, idx: usize) -> Option<u64> {
        if let Some(s) = self.map.get_mut(key) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.marks.remove(&idx)
    }

    /// The answer to a request of scope `key`, sent at `mark`, said
    /// `remaining` calls are left.
    pub fn observe(&mut self, key: &str, remaining: f64, mark: u64, now: Instant) {
        if let Some(b) = self.map.get_mut(key).and_then(|s| s.bucket.as_mut()) {
            b.observe(remaining, mark, now);
        }
    }

    /// The service throttled scope `key` for `wait`.
    pub fn throttled(&mut self, key: &str, wait: Duration, now: Instant) {
        let restart = self.restart;
        let s = self.scope(key, now);
        let until = now + wait;
        s.until = Some(s.until.map_or(until, |t| t.max(until)));
        s.window = restart.min(s.max_window);
        if let Some(b) = &mut s.bucket {
            b.empty(now);
        }
    }

    /// The service said scope `key` has used `used` of its limit (Graph's
    /// `x-ms-throttle-limit-percentage`, a fraction sent from 0.8 on): before
    /// its 429s start, the scope's window is cut to half of what is in flight
    /// (once per `NEAR`), and does not grow while the service keeps saying so.
    pub fn near_limit(&mut self, key: &str, used: f64, now: Instant) {
        let restart = self.restart;
        let Some(s) = self.map.get_mut(key) else {
            return;
        };
        if used.is_nan() || used < 0.8 {
            return;
        }
        if s.near_until.is_none_or(|t| t <= now) {
            let cut = (s.in_flight.min(s.window) / 2).max(restart);
            s.window = s.window.min(cut);
        }
        s.near_until = Some(now + NEAR);
    }

    /// A request of scope `key` succeeded.
    pub fn succeeded(&mut self, key: &str, now: Instant) {
        let open = self.open;
        let Some(s) = self.map.get_mut(key) else {
            return;
        };
        if s.near_until.is_some_and(|t| t > now) {
            return;
        }
        if s.window < s.max_window {
            s.window += 1;
            if s.window >= open {
                s.window = s.max_window;
            }
        }
    }

    /// Held requests whose scope can take them now, oldest first.
    pub fn release(&mut self, now: Instant) -> Vec<usize> {
        let mut out = vec![];
        let mut emptied = vec![];
        for key in &self.waiting {
            let s = self.map.get_mut(key).expect("waiting scopes exist");
            if s.until.is_some_and(|t| t > now) {
                continue;
            }
            for _ in 0..s.can_release(self.restart, now) {
                let Some(idx) = s.held.pop_front() else { break };
                if let Some(b) = &mut s.bucket {
                    b.take(now);
                    self.marks.insert(idx, b.sent());
                }
                self.held -= 1;
                s.in_flight += 1;
                self.released.insert(idx);
                out.push(idx);
            }
            if s.held.is_empty() {
                emptied.push(key.clone());
            }
        }
        for k in emptied {
            self.waiting.remove(&k);
        }
        out
    }

    /// When the next scope with waiting requests can send again: its pause
    /// ends, or its bucket holds a batch's worth. A scope that waits for its
    /// window is no reason to wake: only a landing batch opens it (waking for
    /// it would spin).
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        let restart = self.restart;
        self.waiting
            .iter()
            .filter_map(|k| {
                let s = &self.map[k];
                let room = s.room();
                let refilled = s
                    .bucket
                    .as_ref()
                    .filter(|_| room > 0)
                    .map(|b| b.ready_at(room.min(restart)));
                match (s.until.filter(|t| *t > now), refilled) {
                    (Some(p), Some(r)) => Some(p.max(r)),
                    (p, r) => p.or(r),
                }
            })
            .filter(|t| *t > now)
            .min()
    }

    /// Whether any request is held.
    pub fn holding(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// How many requests are held, in all scopes.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Forgets everything (the run ended early).
    pub fn clear(&mut self) {
        self.map.clear();
        self.waiting.clear();
        self.released.clear();
        self.marks.clear();
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let arm = |m, u| key(Api::Arm, m, u);
        assert_eq!(
            arm("GET", "/subscriptions/ABC/resourceGroups?x=1"),
            "subscription-reads/abc"
        );
        assert_eq!(
            arm("PUT", "/subscriptions/abc/resourceGroups/x"),
            "subscription-writes/abc"
        );
        assert_eq!(
            arm("DELETE", "/subscriptions/abc/resourceGroups/x"),
            "subscription-deletes/abc"
        );
        assert_eq!(arm("GET", "/subscriptions?api-version=1"), "tenant-reads");
        assert_eq!(
            arm("POST", "/providers/Microsoft.Management/x"),
            "tenant-writes"
        );
        let graph = |u| key(Api::Graph, "GET", u);
        assert_eq!(graph("/users/1"), "app");
        assert_eq!(
            graph("/users/Ada@x.com/messages?$top=5"),
            "mailbox/ada@x.com"
        );
        assert_eq!(graph("/users/1/calendarView?startDateTime=x"), "mailbox/1");
        assert_eq!(graph("/me/events"), "mailbox/me");
        assert_eq!(graph("/users/1/memberOf"), "app");
        assert_eq!(
            remaining_header("subscription-deletes/abc"),
            Some("x-ms-ratelimit-remaining-subscription-deletes")
        );
        assert_eq!(
            remaining_header("tenant-reads"),
            Some("x-ms-ratelimit-remaining-tenant-reads")
        );
        assert_eq!(remaining_header("mailbox/1"), None);
    }

    #[test]
    fn an_empty_bucket_holds_its_requests_until_a_batch_worth_has_refilled() {
        let t0 = Instant::now();
        let mut s = Scopes::new(20, 8);
        let (hot, other) = ("subscription-deletes/hot", "subscription-deletes/other");
        assert!(
            (0..200).all(|i| s.admit(hot, i, t0)),
            "a full bucket: 200 deletes"
        );
        assert!(
            !s.admit(hot, 200, t0) && !s.admit(hot, 201, t0),
            "then they wait"
        );
        assert!(
            s.admit(other, 300, t0),
            "other scopes have their own bucket"
        );
        assert_eq!(
            s.next_wake(t0),
            Some(t0 + Duration::from_millis(201)),
            "2 held: 2 tokens at 10 a second"
        );
        assert_eq!(
            s.release(t0 + Duration::from_millis(150)),
            Vec::<usize>::new(),
            "one token is not enough for both"
        );
        assert_eq!(s.release(t0 + Duration::from_millis(201)), [200, 201]);
        for i in 202..260 {
            assert!(!s.admit(hot, i, t0 + Duration::from_millis(201)));
        }
        let t1 = t0 + Duration::from_millis(201);
        assert_eq!(
            s.next_wake(t1),
            Some(t1 + Duration::from_millis(2000)),
            "a batch of 20 at a time (0.01 token was left)"
        );
        // The first 200 come back; when the model has refilled a batch's
        // worth, the service says it has only 5 left (another client used the rest).
        let marks: Vec<u64> = (0..200).filter_map(|i| s.landed(hot, i)).collect();
        assert_eq!(marks.len(), 200);
        let t2 = t1 + Duration::from_millis(2000);
        s.observe(hot, 5.0, marks[199], t2);
        assert_eq!(
            s.release(t2),
            Vec::<usize>::new(),
            "5 less the two sent after it"
        );
        assert_eq!(
            s.next_wake(t2),
            Some(t2 + Duration::from_millis(1701)),
            "17 more to refill"
        );
        s.observe(hot, 200.0, marks[199], t2);
        assert_eq!(
            s.release(t2),
            Vec::<usize>::new(),
            "an answer never raises the count"
        );
    }

    #[test]
    fn near_its_limit_a_scope_is_cut_to_half_and_stops_growing() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Scopes::new(20, 8);
        assert!((0..100).all(|i| s.admit("app", i, t0)));
        s.near_limit("app", 0.85, t0);
        assert!(!s.admit("app", 100, t0), "cut to half of the 100 in flight");
        (0..60).for_each(|i| {
            s.landed("app", i);
        });
        assert_eq!(s.release(t0), [100], "40 in flight, 50 allowed");
        s.near_limit("app", 0.9, ms(10));
        (0..30).for_each(|_| s.succeeded("app", ms(100)));
        assert!(
            (101..110).all(|i| s.admit("app", i, ms(100))),
            "still 50: one cut per signal, no growth"
        );
        assert!(!s.admit("app", 110, ms(100)));
        s.near_limit("app", 0.5, ms(200));
        s.succeeded("app", ms(400));
        assert_eq!(
            s.release(ms(400)),
            [110],
            "grows again once the service stops saying so"
        );
    }

    #[test]
    fn outlook_takes_four_at_once_per_mailbox() {
        let t0 = Instant::now();
        let mut s = Scopes::new(20, 8);
        assert!((0..4).all(|i| s.admit("mailbox/a", i, t0)));
        assert!(!s.admit("mailbox/a", 4, t0), "a fifth waits");
        assert!(s.admit("mailbox/b", 5, t0), "another mailbox does not");
        s.landed("mailbox/a", 0);
        for _ in 0..100 {
            s.succeeded("mailbox/a", t0);
        }
        assert_eq!(s.release(t0), [4], "one back, one out");
        assert!(
            !s.admit("mailbox/a", 6, t0),
            "never more than four, however many succeed"
        );
    }

    #[test]
    fn a_throttled_scope_waits_then_restarts_small_and_grows() {
        let t0 = Instant::now();
        let mut s = Scopes::new(2, 2);
        assert!(s.admit("a", 0, t0) && s.admit("b", 1, t0));
        s.landed("a", 0);
        s.throttled("a", Duration::from_secs(1), t0);
        assert!(
            !s.admit("a", 2, t0) && !s.admit("a", 3, t0) && !s.admit("a", 4, t0),
            "paused"
        );
        assert!(s.admit("b", 5, t0), "other scopes go on");
        assert_eq!(s.held(), 3);
        assert_eq!(s.release(t0), Vec::<usize>::new());
        assert_eq!(s.next_wake(t0), Some(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(s.release(t1), [2, 3], "one batch's worth after the pause");
        assert_eq!(s.held(), 1);
        assert_eq!(
            s.next_wake(t1),
            None,
            "a pause that ended is no reason to wake"
        );
        assert!(
            s.admit("a", 2, t1) && s.admit("a", 3, t1),
            "released ones go without asking twice"
        );
        assert!(!s.admit("a", 6, t1), "queued behind the held ones");
        s.landed("a", 0);
        s.succeeded("a", t1);
        assert_eq!(s.release(t1), [4, 6], "each success widens the window");
        assert!(!s.holding() && s.held() == 0);
        for _ in 0..8 {
            s.succeeded("a", t1);
        }
        for i in 10..30 {
            assert!(s.admit("a", i, t1), "open again");
        }
    }
}
