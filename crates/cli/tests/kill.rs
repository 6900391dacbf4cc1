//! The journal against `kill -9`: the real `azbatch run` is killed at random
//! moments again and again, and then run to the end with the same journal.
//! Checked against the emulator's log of what it ran: every request has
//! exactly one result in the last run, and no write ran twice.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use azbatch_emulator::graph::model::user_id;
use azbatch_emulator::{Config, Emulator, GraphThrottle, Latency};
use serde_json::{json, Value};

const TOKEN: &str = "kill-test-token";
const USERS: usize = 1500;
const KILLS: usize = 24;

/// A small deterministic generator: the kill moments replay with the seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn azbatch(emu: &Emulator, input: &std::path::Path, journal: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_azbatch"));
    cmd.args([
        "run",
        "--api",
        "graph",
        "--endpoint",
        &emu.url(),
        "--token",
        TOKEN,
    ])
    .arg("--journal")
    .arg(journal)
    .arg(input)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .env_remove("AZBATCH_TOKEN");
    cmd
}

fn emulator() -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        graph_users: USERS,
        latency: Latency {
            min: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        graph_throttle: GraphThrottle {
            enabled: false,
            ..GraphThrottle::default()
        },
        ..Config::default()
    })
    .unwrap()
}

/// A PATCH of each user, then a GET of it that waits for the PATCH.
fn write_input(input: &std::path::Path) {
    let mut lines = String::new();
    for i in 0..USERS {
        let u = user_id(i);
        lines += &format!(
            "{}\n",
            json!({"id": format!("p{i}"), "method": "PATCH", "url": format!("/users/{u}"), "body": {"jobTitle": format!("t{i}")}})
        );
        lines += &format!(
            "{}\n",
            json!({"id": format!("g{i}"), "url": format!("/users/{u}"), "dependsOn": [format!("p{i}")]})
        );
    }
    std::fs::write(input, lines).unwrap();
}

#[test]
fn killed_again_and_again_nothing_is_lost_doubled_or_run_twice() {
    let emu = emulator();
    let dir = std::env::temp_dir().join(format!("azbatch-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, journal) = (dir.join("requests.jsonl"), dir.join("journal"));
    write_input(&input);

    let mut rng = Lcg(0x5eed);
    let mut killed_with_output = 0;
    for _ in 0..KILLS {
        let mut child = azbatch(&emu, &input, &journal).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(50 + rng.below(700)));
        child.kill().unwrap(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        killed_with_output += usize::from(!out.stdout.is_empty());
    }
    let out = azbatch(&emu, &input, &journal)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let summary = String::from_utf8(out.stderr.clone()).unwrap();
    // The summary counts what this run did apart from what it replayed.
    assert!(
        summary.contains("replayed from the journal, not sent again"),
        "{summary}"
    );
    let results: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let mut by_id: HashMap<String, Vec<&Value>> = HashMap::new();
    for r in &results {
        by_id
            .entry(r["id"].as_str().unwrap().to_string())
            .or_default()
            .push(r);
    }
    let lost = (0..USERS)
        .flat_map(|i| [format!("p{i}"), format!("g{i}")])
        .filter(|id| !by_id.contains_key(id))
        .count();
    let duplicated = by_id.values().filter(|v| v.len() > 1).count();
    let mut runs: HashMap<String, usize> = HashMap::new();
    for op in emu.ops().iter().filter(|o| o.method == "PATCH") {
        *runs.entry(op.path.clone()).or_default() += 1;
    }
    let twice = runs.values().filter(|n| **n > 1).count();
    let code = |r: &Value| r["error"]["code"].as_str().unwrap_or("").to_string();
    let unknown = results
        .iter()
        .filter(|r| code(r) == "OutcomeUnknown")
        .count();
    let succeeded = results.iter().filter(|r| r["error"].is_null()).count();
    println!(
        "kill test: {KILLS} kills ({killed_with_output} after output began), {} requests: {succeeded} succeeded, {unknown} OutcomeUnknown, {} other failures; lost {lost}, duplicated {duplicated}, writes run twice {twice}",
        2 * USERS,
        results.len() - succeeded - unknown,
    );
    assert_eq!((lost, duplicated, twice), (0, 0, 0));
    assert_eq!(results.len(), 2 * USERS);
    // Every write either ran (once) and says so, or may have and says that.
    for i in 0..USERS {
        let p = by_id[&format!("p{i}")][0];
        let ran = runs
            .get(&format!("/users/{}", user_id(i)))
            .copied()
            .unwrap_or(0);
        match (p["status"].as_u64(), code(p).as_str()) {
            (Some(204), "") => assert_eq!(ran, 1, "p{i} succeeded, so it ran: {p}"),
            (Some(0), "OutcomeUnknown") => {}
            _ => panic!("p{i}: {p}"),
        }
        let g = by_id[&format!("g{i}")][0];
        assert!(
            g["error"].is_null() || code(g) == "FailedDependency",
            "g{i}: {g}"
        );
    }
    assert!(killed_with_output > 0, "some kills must land mid-run");
    std::fs::remove_dir_all(&dir).unwrap();
}
