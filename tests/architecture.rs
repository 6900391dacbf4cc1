//! The library's house rules, read from its source: modules depend on each
//! other without circles, and no module reaches back up through the crate
//! root's re-exports (`crate::Error`) instead of the module that holds a thing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules its code names (`crate::x`).
type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file that ships: comments and inline test modules (a
/// `#[cfg(test)]` followed by `mod name {`, always last) left out.
fn shipped_code(text: &str) -> String {
    let mut out = vec![];
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if l.trim() == "#[cfg(test)]" {
            let next = lines.peek().map_or("", |n| n.trim());
            if next.starts_with("mod ") && next.ends_with('{') {
                break;
            }
            lines.next(); // `mod tests;` or a test-only item
            continue;
        }
        out.push(match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        });
    }
    out.join("\n")
}

/// Every `crate::name` in `code`, as (name, whether it starts upper-case).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `azbatch_crate::`
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

fn module_graph(src: &Path) -> (Graph, Vec<String>) {
    let mut files = vec![];
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    let mut root_reexports = vec![];
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let code = shipped_code(&std::fs::read_to_string(&f).unwrap());
        let deps = graph.entry(module.clone()).or_default();
        for name in crate_paths(&code) {
            if name.chars().next().is_some_and(char::is_uppercase) {
                root_reexports.push(format!("{}: crate::{name}", rel.display()));
            } else if name != module {
                deps.insert(name);
            }
        }
    }
    (graph, root_reexports)
}

/// A circle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        m: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut c = path[at..].to_vec();
            c.push(m.to_string());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(graph, m, &mut vec![], &mut done))
}

#[test]
fn the_library_modules_have_no_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (graph, _) = module_graph(&src);
    assert!(graph.len() > 10, "read the modules: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "modules depend on each other in a circle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn no_module_reaches_back_through_the_crate_root() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (_, reexports) = module_graph(&src);
    assert!(
        reexports.is_empty(),
        "use the module that holds these, not lib.rs's re-exports: {reexports:?}"
    );
}

#[test]
fn the_checks_themselves_find_a_circle_and_a_root_path() {
    let mut g = Graph::new();
    for (a, b) in [
        ("options", "auth"),
        ("auth", "sources"),
        ("sources", "options"),
        ("engine", "options"),
    ] {
        g.entry(a.into()).or_default().insert(b.into());
    }
    assert_eq!(
        find_cycle(&g).map(|c| c.join(" -> ")),
        Some("auth -> sources -> options -> auth".to_string())
    );
    g.get_mut("sources").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
    let code = shipped_code("use crate::error::Error;\n// crate::engine in a comment\nfn f() -> crate::Error {}\n#[cfg(test)]\nmod tests;\nuse crate::plan;\n#[cfg(test)]\nmod tests {\nuse crate::batch;");
    assert_eq!(crate_paths(&code), ["error", "Error", "plan"]);
}
