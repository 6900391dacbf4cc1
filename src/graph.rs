//! The dependency graph of a run's requests: who waits for whom. Built as
//! requests are added (refusing cycles then), and resolved once into the
//! tables the engine runs on. The request list and the engine both use
//! [`DependencyGraph::resolve`], so there is one reading of `dependsOn`.

use std::collections::{HashMap, HashSet};

/// Requests by id (case-insensitive) and what each depends on.
#[derive(Debug, Default)]
pub struct DependencyGraph {
    /// Lower-case id → index.
    ids: HashMap<String, usize>,
    /// For each request, the ids it depends on, as given.
    depends_on: Vec<Vec<String>>,
}

/// The graph read for a run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// For each request, the requests that depend on it.
    pub dependents: Vec<Vec<usize>>,
    /// For each request, how many requests it waits for.
    pub waiting: Vec<usize>,
    /// `(request, id)` for every `dependsOn` id that names no request.
    pub unknown: Vec<(usize, String)>,
}

impl DependencyGraph {
    /// The graph of requests given as `(id, depends_on)`, without checking for
    /// cycles (a request in a cycle never becomes ready).
    pub fn of<'a>(requests: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Self {
        let mut g = DependencyGraph::default();
        for (id, deps) in requests {
            g.push(id, deps);
        }
        g
    }

    /// The index of the request with `id`, in any case.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.ids.get(&id.to_lowercase()).copied()
    }

    /// How many requests the graph holds.
    pub fn len(&self) -> usize {
        self.depends_on.len()
    }

    /// Whether the graph holds no request.
    pub fn is_empty(&self) -> bool {
        self.depends_on.is_empty()
    }

    /// Adds a request, or returns the cycle it would close (ids along it, from
    /// `id` back to `id`). Its dependencies may be added later.
    pub fn add(&mut self, id: &str, depends_on: &[String]) -> Result<usize, Vec<String>> {
        if let Some(cycle) = self.cycle_through(id, depends_on) {
            return Err(cycle);
        }
        Ok(self.push(id, depends_on))
    }

    fn push(&mut self, id: &str, depends_on: &[String]) -> usize {
        let index = self.depends_on.len();
        self.ids.insert(id.to_lowercase(), index);
        self.depends_on.push(depends_on.to_vec());
        index
    }

    /// The tables a run needs.
    pub fn resolve(&self) -> Resolved {
        let n = self.depends_on.len();
        let mut r = Resolved {
            dependents: vec![Vec::new(); n],
            waiting: vec![0; n],
            unknown: vec![],
        };
        for (i, deps) in self.depends_on.iter().enumerate() {
            for d in deps {
                match self.index_of(d) {
                    Some(j) => {
                        r.dependents[j].push(i);
                        r.waiting[i] += 1;
                    }
                    None => r.unknown.push((i, d.clone())),
                }
            }
        }
        r
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
                for d in &self.depends_on[i] {
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
    fn resolves_dependents_waiting_and_unknown_ids() {
        let mut g = DependencyGraph::default();
        g.add("c", &ids(&["A", "b"])).unwrap();
        g.add("a", &[]).unwrap();
        g.add("b", &ids(&["a", "zz"])).unwrap();
        let r = g.resolve();
        assert_eq!(r.dependents, [vec![], vec![0, 2], vec![0]]);
        assert_eq!(r.waiting, [2, 0, 1]);
        assert_eq!(r.unknown, [(2, "zz".to_string())]);
        assert_eq!(g.index_of("B"), Some(2));
    }

    #[test]
    fn refuses_the_request_that_closes_a_cycle() {
        let mut g = DependencyGraph::default();
        g.add("c", &ids(&["b"])).unwrap();
        g.add("b", &ids(&["a"])).unwrap();
        assert_eq!(g.add("a", &ids(&["C"])), Err(ids(&["a", "C", "b", "a"])));
        assert_eq!(g.len(), 2, "the refused request is not added");
        let unchecked = DependencyGraph::of([("x", &ids(&["x"])[..])]);
        assert_eq!(
            unchecked.resolve().waiting,
            [1],
            "of() records, never refuses"
        );
    }
}
