//! The dependency graph of a run's requests: who waits for whom. Built once,
//! as requests are added (refusing cycles then), by the request list, and
//! handed on with them: each request reaches the engine with its
//! [`Links`], and the engine reads the same graph ([`SharedGraph`]) for the
//! ids its references name and the ids no request had when the input closed
//! (an open job's list goes on adding while the engine runs). The dry run
//! reads its waves from it.
//!
//! `dependsOn` names requests by the id their caller gave; a request without
//! one (its id was assigned) cannot be named, so the graph holds nothing for
//! it unless it depends on others: a run of many plain requests costs nothing
//! here.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What an error about an unknown `dependsOn` id adds, since assigned ids
/// cannot be named.
pub const GIVEN_IDS_ONLY: &str = "dependsOn names requests by the id (or name) given to them";

/// Requests by id (case-insensitive) and what each depends on. Requests may
/// come in any order: one that names an id not added yet waits for it, and is
/// linked to it when it arrives.
#[derive(Debug, Default)]
pub struct DependencyGraph {
    /// Lower-case id → index, for the requests whose caller gave an id.
    ids: HashMap<String, usize>,
    /// The ids each request depends on, as given (requests with none are not here).
    depends_on: HashMap<usize, Vec<String>>,
    /// Requests added.
    len: usize,
    /// Lower-case id not added yet → the requests that wait for it.
    awaiting: HashMap<String, Vec<usize>>,
}

/// A run's one graph, shared by the request list that builds it and the
/// engine that reads it.
#[derive(Debug, Clone, Default)]
pub struct SharedGraph(Arc<Mutex<DependencyGraph>>);

impl SharedGraph {
    /// The graph, for a moment (no lock is held across an await or a call
    /// out). A panic while it was held leaves it as it was, so it is taken
    /// as it is.
    pub fn lock(&self) -> MutexGuard<'_, DependencyGraph> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How a request just added is linked to the others.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Links {
    /// Its index.
    pub index: usize,
    /// The requests already added that it depends on.
    pub known: Vec<usize>,
    /// How many of its dependencies are not added yet.
    pub unknown: usize,
    /// Earlier requests that were waiting for this one to be added.
    pub awaited_by: Vec<usize>,
}

impl DependencyGraph {
    /// The index of the request with `id`, in any case.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.ids.get(&id.to_lowercase()).copied()
    }

    /// How many requests the graph holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Adds a request with the id its caller gave (`None`: it has none, and
    /// no request can name it), or returns the cycle it would close (ids
    /// along it, from `id` back to `id`). Its dependencies may be added later.
    pub fn add(&mut self, id: Option<&str>, depends_on: &[String]) -> Result<Links, Vec<String>> {
        if let Some(cycle) = id.and_then(|id| self.cycle_through(id, depends_on)) {
            return Err(cycle);
        }
        Ok(self.push(id, depends_on))
    }

    /// Adds a request without looking for cycles (a request in a cycle never
    /// becomes ready), and says how it is linked. This is the one place that
    /// reads `dependsOn`.
    pub fn push(&mut self, id: Option<&str>, depends_on: &[String]) -> Links {
        let index = self.len;
        self.len += 1;
        let mut awaited_by = vec![];
        if let Some(id) = id {
            let key = id.to_lowercase();
            awaited_by = self.awaiting.remove(&key).unwrap_or_default();
            self.ids.insert(key, index);
        }
        let mut links = Links {
            index,
            awaited_by,
            ..Links::default()
        };
        for d in depends_on {
            match self.index_of(d) {
                Some(j) => links.known.push(j),
                None => {
                    links.unknown += 1;
                    self.awaiting
                        .entry(d.to_lowercase())
                        .or_default()
                        .push(index);
                }
            }
        }
        if !depends_on.is_empty() {
            self.depends_on.insert(index, depends_on.to_vec());
        }
        links
    }

    /// Each request's wave: 0 when it depends on none, else one more than the
    /// deepest of those it depends on (what the dry run prints; a request
    /// runs when its own dependencies have succeeded, not a whole wave).
    /// A dependency not added counts for nothing; a cycle is cut where met.
    pub fn waves(&self) -> Vec<usize> {
        let mut wave: Vec<Option<usize>> = vec![None; self.len];
        for start in 0..self.len {
            if wave[start].is_some() {
                continue;
            }
            // Depth first without recursion: a chain can be long.
            let mut stack = vec![(start, false)];
            while let Some((i, expanded)) = stack.pop() {
                let deps: Vec<usize> = self
                    .depends_on
                    .get(&i)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| self.index_of(d))
                    .collect();
                if expanded {
                    let w = deps.iter().filter_map(|&j| wave[j]).map(|w| w + 1).max();
                    wave[i] = Some(w.unwrap_or(0));
                    continue;
                }
                if wave[i].is_some() {
                    continue;
                }
                wave[i] = Some(0); // a cycle back here reads 0
                stack.push((i, true));
                stack.extend(
                    deps.into_iter()
                        .filter(|&j| wave[j].is_none())
                        .map(|j| (j, false)),
                );
            }
        }
        wave.into_iter().map(|w| w.unwrap_or(0)).collect()
    }

    /// `(request, id)` for every `dependsOn` id that names no request added so
    /// far, in the order the requests were added.
    pub fn unresolved(&self) -> Vec<(usize, String)> {
        let mut out: Vec<(usize, String)> = vec![];
        for waiters in self.awaiting.values() {
            for &w in waiters {
                for d in self.depends_on.get(&w).into_iter().flatten() {
                    if self.index_of(d).is_none() && !out.iter().any(|(i, x)| *i == w && x == d) {
                        out.push((w, d.clone()));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// A path from `id` back to itself through `depends_on` and the requests
    /// already added, if adding it would close a cycle.
    fn cycle_through(&self, id: &str, depends_on: &[String]) -> Option<Vec<String>> {
        let target = id.to_lowercase();
        let mut stack: Vec<(String, Vec<String>)> = depends_on
            .iter()
            .map(|d| (d.to_lowercase(), vec![id.to_string(), d.clone()]))
            .collect();
        let mut seen = HashSet::new();
        while let Some((cur, path)) = stack.pop() {
            if cur == target {
                return Some(path);
            }
            if !seen.insert(cur.clone()) {
                continue;
            }
            if let Some(i) = self.index_of(&cur) {
                for d in self.depends_on.get(&i).into_iter().flatten() {
                    let mut p = path.clone();
                    p.push(d.clone());
                    stack.push((d.to_lowercase(), p));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn links_requests_in_any_order() {
        let mut g = DependencyGraph::default();
        let c = g.add(Some("c"), &ids(&["A", "b"])).unwrap();
        assert_eq!((c.known.len(), c.unknown), (0, 2));
        let a = g.add(Some("a"), &[]).unwrap();
        assert_eq!(a.awaited_by, [0], "c was waiting for a");
        let b = g.add(Some("b"), &ids(&["a", "zz"])).unwrap();
        assert_eq!(
            (b.known.clone(), b.unknown, b.awaited_by.clone()),
            (vec![1], 1, vec![0])
        );
        assert_eq!(g.unresolved(), [(2, "zz".to_string())]);
        assert_eq!(g.index_of("B"), Some(2));
    }

    #[test]
    fn waves_are_one_more_than_the_deepest_dependency() {
        let mut g = DependencyGraph::default();
        // c waits for a and b, b for a; d for nothing; e for one never added.
        g.add(Some("c"), &ids(&["a", "B"])).unwrap();
        g.add(Some("a"), &[]).unwrap();
        g.add(Some("b"), &ids(&["a"])).unwrap();
        g.add(None, &[]).unwrap();
        g.add(Some("e"), &ids(&["ghost"])).unwrap();
        assert_eq!(g.waves(), [2, 0, 1, 0, 0]);
        // A chain far deeper than a thread's stack would take recursively.
        let mut g = DependencyGraph::default();
        g.push(Some("r0"), &[]);
        for i in 1..100_000 {
            g.push(Some(&format!("r{i}")), &[format!("r{}", i - 1)]);
        }
        assert_eq!(g.waves().last(), Some(&99_999));
        // A cycle (pushed unchecked) does not hang.
        let mut g = DependencyGraph::default();
        g.push(Some("x"), &ids(&["y"]));
        g.push(Some("y"), &ids(&["x"]));
        assert_eq!(g.waves().len(), 2);
    }

    #[test]
    fn a_request_without_a_given_id_cannot_be_named() {
        let mut g = DependencyGraph::default();
        let plain = g.add(None, &[]).unwrap();
        assert_eq!(plain.index, 0);
        let waits = g.add(Some("w"), &ids(&["0"])).unwrap();
        assert_eq!(
            (waits.index, waits.known.len(), waits.unknown),
            (1, 0, 1),
            "the assigned id 0 names nothing"
        );
        let plain = g.add(None, &ids(&["w"])).unwrap();
        assert_eq!((plain.index, plain.known.clone()), (2, vec![1]));
        assert_eq!(g.len(), 3);
        assert_eq!(g.unresolved(), [(1, "0".to_string())]);
        assert!(
            g.ids.len() == 1 && g.depends_on.len() == 2,
            "only what can be named or waits is held"
        );
    }

    #[test]
    fn refuses_the_request_that_closes_a_cycle() {
        let mut g = DependencyGraph::default();
        g.add(Some("c"), &ids(&["b"])).unwrap();
        g.add(Some("b"), &ids(&["a"])).unwrap();
        assert_eq!(
            g.add(Some("a"), &ids(&["C"])),
            Err(ids(&["a", "C", "b", "a"]))
        );
        assert_eq!(g.len(), 2, "the refused request is not added");
        let mut unchecked = DependencyGraph::default();
        assert_eq!(
            unchecked.push(Some("x"), &ids(&["x"])).known,
            [0],
            "push records, never refuses"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Random `dependsOn` lists, added in random order: `add` refuses
        /// exactly the requests that would close a cycle, and what it accepts
        /// links every dependency (known now, or awaited until it arrives).
        #[test]
        fn refuses_exactly_the_cycles(edges in proptest::collection::vec(proptest::collection::vec(0usize..12, 0..4), 1..12)) {
            let n = edges.len();
            let mut g = DependencyGraph::default();
            let mut accepted: Vec<Vec<usize>> = vec![];
            let mut ids: Vec<usize> = vec![];
            for (me, deps) in edges.iter().enumerate() {
                let deps: Vec<usize> = deps.iter().copied().filter(|d| *d < n).collect();
                let names: Vec<String> = deps.iter().map(|d| format!("r{d}")).collect();
                // Would `me` close a cycle among the requests accepted so far?
                let mut reach = deps.clone();
                let mut cycle = false;
                let mut k = 0;
                while k < reach.len() {
                    let x = reach[k];
                    k += 1;
                    if x == me { cycle = true; break; }
                    if let Some(p) = ids.iter().position(|i| *i == x) {
                        for y in &accepted[p] {
                            if !reach.contains(y) { reach.push(*y); }
                        }
                    }
                }
                let got = g.add(Some(&format!("r{me}")), &names);
                prop_assert_eq!(got.is_err(), cycle, "r{} -> {:?}", me, deps);
                if let Ok(links) = got {
                    let known = deps.iter().filter(|d| ids.contains(d)).count();
                    prop_assert_eq!(links.known.len() + links.unknown, known + deps.iter().filter(|d| !ids.contains(d)).count());
                    ids.push(me);
                    accepted.push(deps);
                }
            }
        }
    }
}
