//! Throttle scopes: the unit a service throttles by. ARM counts per
//! subscription (calls outside one count for the tenant); Graph counts per
//! app, so one scope holds every Graph request.
//!
//! A 429 pauses its scope until the `Retry-After`; the scope's requests wait
//! here meanwhile instead of being sent into the same empty bucket. After a
//! pause a scope restarts with one batch's worth in flight and grows by one
//! for every success (doubling each round trip) until it is unlimited again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::api::Api;

/// The scope a request belongs to.
pub(super) fn key(api: Api, url: &str) -> String {
    match api {
        Api::Graph => "app".to_string(),
        Api::Arm => {
            let path = url.split('?').next().unwrap_or("");
            let mut segs = path.trim_start_matches('/').split('/');
            match (segs.next(), segs.next()) {
                (Some(s), Some(id))
                    if s.eq_ignore_ascii_case("subscriptions") && !id.is_empty() =>
                {
                    id.to_ascii_lowercase()
                }
                _ => "tenant".to_string(),
            }
        }
    }
}

const UNLIMITED: usize = usize::MAX;

struct Scope {
    until: Option<Instant>,
    window: usize,
    in_flight: usize,
    held: VecDeque<usize>,
}

pub(super) struct Scopes {
    map: HashMap<String, Scope>,
    /// Scopes with requests waiting in `held`.
    waiting: HashSet<String>,
    /// Requests released from `held`, already counted in flight.
    released: HashSet<usize>,
    /// Requests held, in all scopes.
    held: usize,
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
            restart: batch_size.max(1),
            open: batch_size * concurrency * 2,
        }
    }

    fn scope(&mut self, key: &str) -> &mut Scope {
        self.map.entry(key.to_string()).or_insert(Scope {
            until: None,
            window: UNLIMITED,
            in_flight: 0,
            held: VecDeque::new(),
        })
    }

    /// Whether request `idx` of scope `key` may be sent now. When it may not,
    /// it is held until its scope can take it.
    pub fn admit(&mut self, key: &str, idx: usize, now: Instant) -> bool {
        if self.released.remove(&idx) {
            return true;
        }
        let s = self.scope(key);
        let paused = s.until.is_some_and(|t| t > now);
        if paused || s.in_flight >= s.window || !s.held.is_empty() {
            s.held.push_back(idx);
            self.held += 1;
            self.waiting.insert(key.to_string());
            return false;
        }
        s.in_flight += 1;
        true
    }

    /// A request of scope `key` came back (whatever its answer).
    pub fn landed(&mut self, key: &str) {
        let s = self.scope(key);
        s.in_flight = s.in_flight.saturating_sub(1);
    }

    /// The service throttled scope `key` for `wait`.
    pub fn throttled(&mut self, key: &str, wait: Duration, now: Instant) {
        let restart = self.restart;
        let s = self.scope(key);
        let until = now + wait;
        s.until = Some(s.until.map_or(until, |t| t.max(until)));
        s.window = restart;
    }

    /// A request of scope `key` succeeded.
    pub fn succeeded(&mut self, key: &str) {
        let open = self.open;
        let s = self.scope(key);
        if s.window != UNLIMITED {
            s.window += 1;
            if s.window >= open {
                s.window = UNLIMITED;
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
            while s.in_flight < s.window {
                let Some(idx) = s.held.pop_front() else { break };
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

    /// When the next paused scope with waiting requests resumes. A pause that
    /// has ended is no reason to wake: such a scope waits for its window, which
    /// only a landing batch opens (waking for it would spin).
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.waiting
            .iter()
            .filter_map(|k| self.map[k].until)
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
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            key(Api::Arm, "/subscriptions/ABC/resourceGroups?x=1"),
            "abc"
        );
        assert_eq!(key(Api::Arm, "/subscriptions?api-version=1"), "tenant");
        assert_eq!(key(Api::Arm, "/providers/Microsoft.Management/x"), "tenant");
        assert_eq!(key(Api::Graph, "/users/1"), "app");
    }

    #[test]
    fn a_throttled_scope_waits_then_restarts_small_and_grows() {
        let t0 = Instant::now();
        let mut s = Scopes::new(2, 2);
        assert!(s.admit("a", 0, t0) && s.admit("b", 1, t0));
        s.landed("a");
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
        s.landed("a");
        s.succeeded("a");
        assert_eq!(s.release(t1), [4, 6], "each success widens the window");
        assert!(!s.holding() && s.held() == 0);
        for _ in 0..8 {
            s.succeeded("a");
        }
        for i in 10..30 {
            assert!(s.admit("a", i, t1), "open again");
        }
    }
}
