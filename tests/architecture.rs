//! The library's house rules, read from its source: modules depend on each
//! other without circles, no module reaches back up through the crate root's
//! re-exports (`crate::Error`) instead of the module that holds a thing, no
//! file grows past 600 lines of code, each API's headers and envelope fields
//! are named in its dialect module alone, and the PowerShell module asks the
//! library which API a URL belongs to instead of keeping its own lists.

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
        if module == "lib"
            || rel
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"))
        {
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

/// Lines of code that ship: not blank, not comments, not tests.
fn code_lines(text: &str) -> usize {
    shipped_code(text)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// The library's files, without test-only files.
fn shipped_files() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter(|f| {
            f.file_name()
                .is_none_or(|n| !n.to_string_lossy().ends_with("tests.rs"))
        })
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f.strip_prefix(&src).unwrap().to_path_buf(), text)
        })
        .collect()
}

#[test]
fn no_file_has_more_than_600_lines_of_code() {
    let files = shipped_files();
    assert!(files.len() > 30, "read the files: {}", files.len());
    let big: Vec<String> = files
        .iter()
        .map(|(p, text)| (p, code_lines(text)))
        .filter(|(_, n)| *n > 600)
        .map(|(p, n)| format!("{}: {n}", p.display()))
        .collect();
    assert!(big.is_empty(), "split these by what they do: {big:?}");
}

/// What only an API's dialect names: its throttling headers and its batch
/// envelope's fields. (`x-ms-retry-after-ms` is Azure's retry header for both,
/// read with `Retry-After` by `retry.rs`.)
const DIALECT_WORDS: [&str; 9] = [
    "\"x-ms-ratelimit",
    "\"x-ms-resource-unit",
    "\"x-ms-throttle",
    "\"httpStatusCode\"",
    "\"contentLength\"",
    "\"requestHeaderDetails\"",
    "\"@odata.nextLink\"",
    "\"nextLink\"",
    "\"responses\"",
];

/// The dialect words `code` names outside a dialect module.
fn dialect_words_in(code: &str) -> Vec<&'static str> {
    DIALECT_WORDS
        .iter()
        .copied()
        .filter(|w| code.contains(w))
        .collect()
}

#[test]
fn only_the_dialect_modules_name_headers_and_envelope_fields() {
    let mut found = vec![];
    for (path, text) in shipped_files() {
        if path.starts_with("dialect") {
            continue;
        }
        for w in dialect_words_in(&shipped_code(&text)) {
            found.push(format!("{}: {w}", path.display()));
        }
    }
    assert!(
        found.is_empty(),
        "name these in src/dialect/ and read them from there: {found:?}"
    );
    let dialect = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dialect/arm.rs");
    let arm = shipped_code(&std::fs::read_to_string(dialect).unwrap());
    assert!(
        dialect_words_in(&arm).contains(&"\"x-ms-ratelimit"),
        "the check reads what the dialect names"
    );
}

#[test]
fn the_module_asks_the_library_which_api_a_url_belongs_to() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("powershell/src");
    let mut sources = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "cs") {
            continue;
        }
        sources += 1;
        let text = std::fs::read_to_string(&p).unwrap();
        for root in [
            "\"servicePrincipals\"",
            "\"deviceManagement\"",
            "\"subscriptions\"",
        ] {
            assert!(
                !text.contains(root),
                "{} lists the API's URL roots ({root}): ask the library (batch_url_api)",
                p.display()
            );
        }
        // The request keys and their spellings, the peers' keys and Graph's
        // versions come from batch_info.
        for fact in [
            "\"HttpMethod\"",
            "\"Payload\"",
            "\"ResourceGroupName\"",
            "\"ContentType\"",
            "\"beta\"",
        ] {
            assert!(
                !text.to_lowercase().contains(&fact.to_lowercase()),
                "{} keeps its own list ({fact}): read it from batch_info",
                p.display()
            );
        }
    }
    assert!(sources > 3, "read the module's sources: {sources}");
}

#[test]
fn the_size_and_word_checks_count_what_they_should() {
    let text = "fn a() {}\n\n// a comment\nconst H: &str = \"x-ms-ratelimit-remaining-tenant-reads\";\n#[cfg(test)]\nmod tests {\nfn b() {}\n}\n";
    assert_eq!(code_lines(text), 2);
    assert_eq!(dialect_words_in(&shipped_code(text)), ["\"x-ms-ratelimit"]);
}

/// The library's public face is what callers use (the CLI, the emulator,
/// the tests and fuzz targets): the engine's rooms and the pacing machinery
/// stay inside the crate.
#[test]
fn the_engine_and_its_machinery_are_not_public() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for inside in [
        "engine",
        "limiter",
        "decision",
        "dependencies",
        "queue",
        "clock",
        "job",
        "progress",
        "error",
    ] {
        assert!(
            lib.contains(&format!("pub(crate) mod {inside};")),
            "src/lib.rs: {inside} is the crate's own (pub(crate) mod {inside};)"
        );
    }
    let public = lib.lines().filter(|l| l.starts_with("pub mod ")).count();
    assert!(public <= 17, "{public} public modules");
}
