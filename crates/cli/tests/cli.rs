//! `azbatch run` and `azbatch subscriptions` end to end: input forms, output,
//! exit codes and Ctrl+C, against an emulator in this test process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use azbatch_emulator::{Config, Emulator, Latency};
use serde_json::Value;

const TOKEN: &str = "cli-test-token";

fn emulator(config: Config) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        ..config
    })
    .unwrap()
}

fn sub(i: usize) -> String {
    azbatch_emulator::arm::model::subscription_id(i)
}

struct Out {
    code: i32,
    lines: Vec<Value>,
    stderr: String,
}

/// Writes `stdin` to the child's input and closes it. A command that exits
/// before reading its input (bad options) has closed it: not a failure.
fn feed(child: &mut std::process::Child, stdin: &str) {
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
}

fn azbatch(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_azbatch"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("AZBATCH_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    feed(&mut child, stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        lines: stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[test]
fn json_lines_in_results_out() {
    let emu = emulator(Config {
        subscriptions: 3,
        ..Config::default()
    });
    let input = format!(
        "{{\"id\":\"list\",\"url\":\"/subscriptions?api-version=2022-12-01\"}}\n\n\"/subscriptions/{}?api-version=2022-12-01\"\n",
        sub(1)
    );
    let out = azbatch(
        &["run", "--endpoint", &emu.url(), "--token", TOKEN],
        &input,
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.lines.len(), 2);
    let ids: Vec<&str> = out
        .lines
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"list") && ids.contains(&"1"), "{ids:?}");
    assert!(out.lines.iter().all(|l| l["status"] == 200));
    assert!(
        out.stderr.contains("2 requests: 2 succeeded, 0 failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_json_array_from_a_file_in_order_with_a_failure() {
    let emu = emulator(Config {
        subscriptions: 30,
        shuffle: true,
        ..Config::default()
    });
    let mut reqs: Vec<Value> = (0..30).map(|i| serde_json::json!({"id": format!("s{i}"), "url": format!("/subscriptions/{}?api-version=2022-12-01", sub(i))})).collect();
    reqs.push(serde_json::json!({"id": "missing", "url": format!("/subscriptions/{}?api-version=2022-12-01", sub(99))}));
    let file = std::env::temp_dir().join(format!("azbatch-cli-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_string_pretty(&reqs).unwrap()).unwrap();
    let out = azbatch(
        &[
            "run",
            "--endpoint",
            &emu.url(),
            "--ordered",
            "--batch-size",
            "7",
            file.to_str().unwrap(),
        ],
        "",
        &[("AZBATCH_TOKEN", TOKEN)],
    );
    assert_eq!(out.code, 1, "one request failed: {}", out.stderr);
    let ids: Vec<String> = out
        .lines
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (0..30)
        .map(|i| format!("s{i}"))
        .chain(["missing".to_string()])
        .collect();
    assert_eq!(ids, want, "--ordered keeps input order");
    assert_eq!(out.lines[30]["error"]["code"], "SubscriptionNotFound");
    // A result reads on its own: what was asked is in it.
    assert_eq!(
        (&out.lines[30]["method"], &out.lines[30]["url"]),
        (
            &Value::from("GET"),
            &Value::from(format!("/subscriptions/{}?api-version=2022-12-01", sub(99)))
        )
    );
}

/// No requests (a CI step's filter that selected nothing) is a run of none:
/// exit 0, "0 requests", from a file and from a pipe alike.
#[test]
fn empty_input_is_a_run_of_no_requests() {
    let emu = emulator(Config::default());
    let endpoint = emu.url();
    let base = ["run", "--endpoint", endpoint.as_str(), "--token", TOKEN];
    let file = std::env::temp_dir().join(format!("azbatch-cli-empty-{}.jsonl", std::process::id()));
    std::fs::write(&file, "\n\n").unwrap();
    let with_file: Vec<&str> = base
        .iter()
        .copied()
        .chain([file.to_str().unwrap()])
        .collect();
    for out in [
        azbatch(&base, "", &[]),
        azbatch(&with_file, "", &[]),
        azbatch(&base, "[]", &[]),
    ] {
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.contains("0 requests"), "{}", out.stderr);
        assert!(out.lines.is_empty());
    }
    std::fs::remove_file(&file).unwrap();
    assert!(emu.batches().is_empty());
}

/// A JSON array is one document: from a pipe too it is checked whole, and a
/// bad element sends nothing (not even the writes before it).
#[test]
fn a_json_array_from_a_pipe_is_checked_before_anything_is_sent() {
    let emu = emulator(Config::default());
    let endpoint = emu.url();
    let base = ["run", "--endpoint", endpoint.as_str(), "--token", TOKEN];
    let put = format!(
        "{{\"id\":\"w\",\"method\":\"PUT\",\"url\":\"/subscriptions/{}/resourcegroups/rg?api-version=2021-04-01\",\"body\":{{\"location\":\"westeurope\"}}}}",
        sub(0)
    );
    let out = azbatch(&base, &format!("\n[{put},\n{{\"url\":5}}]"), &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("request[1]"), "{}", out.stderr);
    assert!(
        out.lines.is_empty() && emu.batches().is_empty(),
        "nothing was sent"
    );
    // The same array, whole: it runs.
    let out = azbatch(&base, &format!("[{put}]"), &[]);
    assert_eq!((out.code, out.lines.len()), (0, 1), "{}", out.stderr);
}

/// Bad inputs and what the error says of each.
const BAD_INPUTS: [(&str, &str); 7] = [
    (
        "{\"url\":\"/a\"}\n{\"url\":\n",
        "line 2: not valid JSON: EOF while parsing a value (column 7)",
    ),
    (
        "{\"url\":\"/a\"}\n/subscriptions/x\n",
        "line 2: not valid JSON: expected value (column 1); each line is a JSON object with a \"url\", or a JSON string: \"/subscriptions/x\"",
    ),
    (
        "{\"url\":\"/a\"}\n\n{\"id\":\"x\",\"url\":\"https://evil.example/x\"}\n",
        "line 3: request[1] (id \"x\"): field \"url\"",
    ),
    (
        "{\"url\":\"/a\",\"methd\":\"GET\"}\n",
        "line 1: request[0]: unknown field `methd`",
    ),
    (
        "{\"url\":\"/a\"}\n{\"id\":\"a\",\"url\":\"/a\",\"dependsOn\":[\"ghost\"]}\n",
        "line 2: request[1] (id \"a\"): field \"dependsOn\": no request has the id \"ghost\"",
    ),
    (
        "{\"url\":5}\n",
        "line 1: request[0]: field \"url\": invalid type: integer `5`, expected a string",
    ),
    (
        "{\"url\":\"/a\"}\n{\"id\":\"b\",\"url\":\"/a\",\"dependsOn\":\"x\"}\n",
        "line 2: request[1] (id \"b\"): field \"dependsOn\": invalid type: string",
    ),
];

#[test]
fn bad_input_names_the_line_and_field() {
    let emu = emulator(Config::default());
    let endpoint = emu.url();
    let base = ["run", "--endpoint", endpoint.as_str(), "--token", TOKEN];
    // From a file, the whole file is checked first: nothing is sent.
    let file = std::env::temp_dir().join(format!("azbatch-cli-bad-{}.jsonl", std::process::id()));
    for (input, want) in BAD_INPUTS {
        std::fs::write(&file, input).unwrap();
        let args: Vec<&str> = base
            .iter()
            .copied()
            .chain([file.to_str().unwrap()])
            .collect();
        let out = azbatch(&args, "", &[]);
        assert_eq!(out.code, 2, "{input:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{input:?}: {}", out.stderr);
        assert!(out.lines.is_empty(), "nothing was sent");
    }
    std::fs::remove_file(&file).unwrap();
    assert!(emu.batches().is_empty());
}

/// From standard input, requests go as they are read: a bad line stops the
/// reading; what came before it still runs and is reported, and the error
/// says so.
#[test]
fn a_bad_line_from_a_pipe_stops_the_reading_and_says_what_was_sent() {
    let emu = emulator(Config::default());
    let endpoint = emu.url();
    let base = ["run", "--endpoint", endpoint.as_str(), "--token", TOKEN];
    for (input, want) in BAD_INPUTS
        .iter()
        .filter(|(_, want)| !want.contains("ghost"))
    {
        let out = azbatch(&base, input, &[]);
        assert_eq!(out.code, 2, "{input:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{input:?}: {}", out.stderr);
        let before = input
            .lines()
            .take_while(|l| l.starts_with("{\"url\":\"/a\"}"))
            .count();
        assert_eq!(
            out.lines.len(),
            before,
            "{input:?}: the lines before the bad one ran"
        );
        let said = match before {
            0 => "; nothing was sent".to_string(),
            1 => "; the 1 request before it was sent (results above); nothing after it was read"
                .into(),
            n => format!(
                "; the {n} requests before it were sent (results above); nothing after it was read"
            ),
        };
        assert!(
            out.stderr.contains(&said),
            "{input:?} says {said:?}: {}",
            out.stderr
        );
    }
    let out = azbatch(
        &base,
        "{\"id\":\"a\",\"url\":\"/a\",\"dependsOn\":[\"ghost\"]}\n",
        &[],
    );
    assert_eq!(
        out.code, 1,
        "an unknown dependsOn read from a pipe fails its request"
    );
    assert!(out.lines[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("\"ghost\", which is not a request of this run"));
}

#[test]
fn bad_options_exit_2() {
    let emu = emulator(Config::default());
    let endpoint = emu.url();
    let out = azbatch(&["run", "--batch-size"], "", &[]);
    assert_eq!(out.code, 2, "clap usage errors exit 2 too");
    let out = azbatch(
        &[
            "run",
            "--endpoint",
            &endpoint,
            "--token",
            TOKEN,
            "--cloud",
            "Mars",
        ],
        "\"/a\"",
        &[],
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cloud must be"), "{}", out.stderr);
    let out = azbatch(
        &["run", "--token", TOKEN, "--auth", "azureCli"],
        "\"/a\"",
        &[],
    );
    assert_eq!(out.code, 2, "--token and --auth conflict: {}", out.stderr);
}

#[test]
fn authentication_failures_exit_3() {
    let emu = emulator(Config {
        subscriptions: 2,
        ..Config::default()
    });
    let url = format!("/subscriptions/{}?api-version=2022-12-01", sub(0));
    let out = azbatch(
        &[
            "run",
            "--endpoint",
            &emu.url(),
            "--token",
            "wrong-token-value",
        ],
        &format!("\"{url}\""),
        &[],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.lines[0]["status"], 401);
    assert!(!out.stderr.contains("wrong-token-value"));
    // After the first refusal nothing more is sent; every request says so.
    let many: String = (0..10).map(|_| format!("\"{url}\"\n")).collect();
    let refused = azbatch(
        &[
            "run",
            "--endpoint",
            &emu.url(),
            "--token",
            "wrong-token-value",
            "--batch-size",
            "1",
            "--concurrency",
            "1",
        ],
        &many,
        &[],
    );
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert_eq!(refused.lines.len(), 10, "every request has its result");
    assert!(
        refused.stderr.contains(", 1 batch, "),
        "one batch sent: {}",
        refused.stderr
    );
    assert!(refused.lines.iter().skip(1).all(|l| l["error"]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("not sent: the service refused the token"))));
    assert!(
        out.stderr
            .contains("authentication failed: the service refused the token (HTTP 401"),
        "{}",
        out.stderr
    );
    let out = azbatch(
        &["run", "--endpoint", &emu.url(), "--auth", "managedIdentity"],
        &format!("\"{url}\""),
        &[("IDENTITY_ENDPOINT", &format!("{}/msi/token", emu.url()))],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.lines[0]["error"]["code"], "AuthenticationFailed");
    // The reason on standard error too: which source, what is missing.
    assert!(
        out.stderr
            .contains("authentication failed: AuthenticationFailed: ")
            && out.stderr.contains("managedIdentity")
            && out.stderr.contains("IDENTITY_HEADER"),
        "{}",
        out.stderr
    );
    assert!(out.lines[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("IDENTITY_HEADER"));
    let out = azbatch(
        &["run", "--endpoint", &emu.url(), "--auth", "managedIdentity"],
        &format!("\"{url}\""),
        &[
            ("IDENTITY_ENDPOINT", &format!("{}/msi/token", emu.url())),
            ("IDENTITY_HEADER", "emulator-identity-header"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn subscriptions_fans_out_over_every_subscription() {
    let emu = emulator(Config {
        subscriptions: 7,
        ..Config::default()
    });
    let out = azbatch(
        &["subscriptions", "--endpoint", &emu.url(), "--token", TOKEN, "--ordered", "--url", "/subscriptions/{subscriptionId}/providers/Microsoft.Batch/batchAccounts?api-version=2024-07-01", "--follow-next-link"],
        "",
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ids: Vec<String> = out
        .lines
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, (0..7).map(sub).collect::<Vec<_>>());
    // Each result names its subscription as the listing did, and its tenant.
    for (i, l) in out.lines.iter().enumerate() {
        assert_eq!(l["subscriptionId"], sub(i), "{l}");
        assert_eq!(l["subscriptionName"], format!("Subscription {i}"), "{l}");
        assert_eq!(l["tenantId"], "72f988bf-0000-4000-8000-000000000000", "{l}");
    }
    let accounts: usize = out
        .lines
        .iter()
        .map(|l| l["body"]["value"].as_array().unwrap().len())
        .sum();
    assert_eq!(accounts, (0..7).map(|i| i % 6).sum::<usize>());
    assert!(
        out.stderr.contains("7 requests: 7 succeeded"),
        "{}",
        out.stderr
    );
}

#[test]
fn ctrl_c_cancels_and_still_prints_every_result() {
    let emu = emulator(Config {
        subscriptions: 5,
        latency: Latency::fixed(Duration::from_millis(300)),
        ..Config::default()
    });
    let input: String = (0..60)
        .map(|i| format!("\"/subscriptions/{}?api-version=2022-12-01\"\n", sub(i % 5)))
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_azbatch"))
        .args([
            "run",
            "--endpoint",
            &emu.url(),
            "--token",
            TOKEN,
            "--batch-size",
            "2",
            "--concurrency",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("\"status\":200"), "{first}");
    let t = Instant::now();
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest: Vec<String> = stdout.lines().map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "cancel was prompt: {:?}",
        t.elapsed()
    );
    assert_eq!(status.code(), Some(1));
    rest.insert(0, first);
    assert_eq!(rest.len(), 60, "every request still gets its one line");
    let cancelled = rest
        .iter()
        .filter(|l| l.contains("\"code\":\"Cancelled\""))
        .count();
    assert!(cancelled >= 40, "{cancelled} cancelled");
}

/// `azbatch bench`, shrunk: every workload gives a row per strategy, AzBatch
/// runs each request once and is never throttled, and its memory and CPU are
/// read from its own process.
/// A bench row can be traced: with `AZBATCH_LOG` set, the azbatch run behind
/// AzBatch's row logs to the bench's standard error; without it, nothing.
#[test]
fn bench_passes_azbatch_log_to_its_rows() {
    let bench = |log: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_azbatch"));
        cmd.args(["bench", "--only", "q", "--azbatch-only"])
            .args(["--scale", "0.01", "--latency-ms", "10"])
            .env_remove("AZBATCH_LOG");
        if let Some(filter) = log {
            cmd.env("AZBATCH_LOG", filter);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("(q)"),
            "the row is printed whatever the log"
        );
        stderr
    };
    let traced = bench(Some("azbatch=debug"));
    assert!(traced.contains("batch sent"), "{traced}");
    let quiet = bench(None);
    assert!(!quiet.contains("batch sent"), "{quiet}");
}

#[test]
fn bench_prints_a_row_per_strategy() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_azbatch"))
        .args(["bench", "--scale", "0.01", "--latency-ms", "10", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let workloads: Vec<&str> = rows
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows.len(),
        4 * 4 + 5 * 3 + 2 + 4 + 5,
        "four strategies for a, b, c, d; five for e, f and g (with the Graph SDK); for h AzBatch and the library alone; AzBatch alone for the learned limits i, j, k, l and, on the plain server, m, n, o, p, q: {workloads:?}"
    );
    // Both kinds of server in one run.
    for (r, w) in rows.iter().zip(&workloads) {
        let plain = ["(m)", "(n)", "(o)", "(p)", "(q)"]
            .iter()
            .any(|l| w.starts_with(l));
        assert_eq!(r["server"], if plain { "plain" } else { "emulator" }, "{r}");
    }
    let tools =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/bin/csc");
    // The SDK's batches cannot name another request's answer: no row for (f).
    for sdk in rows.iter().filter(|r| {
        r["strategy"].as_str().unwrap().contains(".NET SDK")
            && !r["workload"].as_str().unwrap().starts_with("(f)")
    }) {
        if tools.exists() {
            assert!(
                sdk["attempts"].as_u64().unwrap() >= 20,
                "the SDK peer ran where ../shared/tools is: {sdk}"
            );
        } else {
            assert!(
                sdk["note"].as_str().unwrap().starts_with("not run"),
                "{sdk}"
            );
        }
    }
    for r in &rows {
        let ran = !r["note"].as_str().unwrap_or("").starts_with("not run");
        for k in ["seconds", "attempts", "throttled", "strategy"] {
            assert!(!r[k].is_null() || (!ran && k == "seconds"), "{k} in {r}");
        }
        if r["strategy"] == "AzBatch" || r["strategy"] == "AzBatch library" {
            // The workload's name says how many requests it has.
            let n: u64 = r["workload"].as_str().unwrap()[4..]
                .split(' ')
                .find_map(|t| t.parse().ok())
                .unwrap();
            assert_eq!(r["attempts"], n, "each request once: {r}");
            assert_eq!(r["throttled"], 0, "{r}");
            if cfg!(target_os = "linux") {
                assert!(r["peakRssMb"].as_f64().unwrap() > 1.0, "{r}");
                assert!(r["cpuSeconds"].as_f64().is_some(), "{r}");
            }
            if r["workload"].as_str().unwrap().starts_with("(h)") {
                let note = r["note"].as_str().unwrap_or("");
                assert!(note.contains(" us of CPU per request"), "{r}");
            }
        }
    }
}

#[test]
fn version_help_completions_and_man() {
    let out = Command::new(env!("CARGO_BIN_EXE_azbatch"))
        .arg("--version")
        .output()
        .unwrap();
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.starts_with("azbatch 0.1.0 (library 0.1.0, commit "),
        "{v}"
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let text = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_azbatch"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for sub in [
        "run",
        "subscriptions",
        "demo",
        "bench",
        "emulator",
        "completions",
        "man",
    ] {
        let help = text(&[sub, "--help"]);
        assert!(
            help.contains("Example"),
            "azbatch {sub} --help has examples:\n{help}"
        );
    }
    // The exit codes, word for word in --help and the README.
    let help = text(&["run", "--help"]);
    let codes = help
        .lines()
        .find(|l| l.starts_with("Exit codes:"))
        .expect("run --help lists the exit codes");
    assert!(
        readme.replace('\n', " ").contains(codes),
        "README has: {codes}"
    );
    assert!(text(&["subscriptions", "--help"]).contains(codes));
    // The shells `completions` takes, as its --help lists them, are the
    // README's list, and each gives a script.
    let help = text(&["completions", "--help"]);
    let values = help
        .split("[possible values: ")
        .nth(1)
        .and_then(|v| v.split(']').next())
        .expect("completions --help lists its shells");
    let shells: Vec<&str> = values.split(", ").collect();
    assert!(
        readme.contains(&format!("`azbatch completions {}`", shells.join("|"))),
        "README lists the shells {shells:?}"
    );
    for shell in shells {
        let script = text(&["completions", shell]);
        assert!(
            script.contains("azbatch")
                && script.contains("subscriptions")
                && script.contains("journal"),
            "{shell}"
        );
    }
    let man = text(&["man"]);
    assert!(
        man.contains(".TH azbatch 1")
            && man.contains(".TH azbatch-run 1")
            && man.contains("journal"),
        "{}",
        &man[..200]
    );
}

#[test]
fn urls_of_the_other_api_and_versioned_endpoints_are_refused_before_sending() {
    let emu = emulator(Config::default());
    let url = emu.url();
    let out = azbatch(
        &["run", "--endpoint", &url, "--token", TOKEN],
        "{\"url\":\"/users/ada@contoso.com\"}\n",
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("line 1: request[0]: field \"url\": \"/users\" is a Microsoft Graph URL, but this run's api is arm: use api graph (--api graph"), "{}", out.stderr);
    let arm_url = format!(
        "{{\"url\":\"/subscriptions/{}/resourcegroups?api-version=2021-04-01\"}}\n",
        sub(0)
    );
    let out = azbatch(
        &[
            "run",
            "--api",
            "graph",
            "--endpoint",
            &url,
            "--token",
            TOKEN,
        ],
        &arm_url,
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("is an Azure Resource Manager URL, but this run's api is graph: use api arm"),
        "{}",
        out.stderr
    );
    let versioned = format!("{url}/v1.0");
    let out = azbatch(
        &[
            "run",
            "--api",
            "graph",
            "--endpoint",
            &versioned,
            "--token",
            TOKEN,
        ],
        "\"/me\"\n",
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("already ends with the Graph version /v1.0"),
        "{}",
        out.stderr
    );
    assert!(emu.batches().is_empty(), "nothing was sent");
}

/// Every log line of a run: no secret, and what its verbosity promises.
fn check_logs(out: &Out, every_batch: bool) {
    let logs: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.starts_with("azbatch:"))
        .collect();
    for secret in [TOKEN, "emulator-client-secret", "eyJ"] {
        assert!(
            logs.iter().all(|l| !l.contains(secret)),
            "a log line holds a secret: {secret}"
        );
    }
    let has = |what: &str| logs.iter().any(|l| l.contains(what));
    assert!(
        has("token fetched") && has("retry scheduled") && has("scope paused"),
        "{}",
        out.stderr
    );
    if every_batch {
        assert!(
            has("batch sent") && has("batch answered"),
            "-vv logs every batch"
        );
    } else {
        assert!(!has("batch sent"), "-v does not log every batch");
        for l in &logs {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"));
            assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
        }
        assert!(has("\"source\":\"clientSecret\""), "{}", out.stderr);
    }
}

/// A batch's 429s pause their scope once: `-v` says so once per pause (and
/// what a throttle changed), not once per item.
#[test]
fn a_pause_is_logged_once_not_per_item() {
    let rule = azbatch_emulator::PlainRule::bucket(20.0, 20.0);
    let server =
        azbatch_emulator::PlainServer::start(vec![rule], Latency::fixed(Duration::from_millis(20)))
            .unwrap();
    let input: String = (0..100)
        .map(|i| format!("{{\"method\": \"PATCH\", \"url\": \"/users/u{i}\", \"body\": {{}}}}\n"))
        .collect();
    let url = server.url();
    let args = [
        "run",
        "-v",
        "--api",
        "graph",
        "--endpoint",
        &url,
        "--token",
        TOKEN,
    ];
    let out = azbatch(&args, &input, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let throttled = server.answers().iter().filter(|(_, s)| *s == 429).count();
    let lines = |what: &str| out.stderr.lines().filter(|l| l.contains(what)).count();
    let (paused, learned) = (lines("scope paused"), lines("scope throttled"));
    let batches = server.batches().len();
    // The first round sends 100 into a bucket of 20: most of its batches
    // come back all 429.
    assert!(throttled >= 40, "{throttled} 429s in {batches} batches");
    assert!(
        (1..batches).contains(&paused) && learned < batches,
        "{paused} pauses and {learned} lessons logged for {throttled} 429s in {batches} batches:\n{}",
        out.stderr
    );
}

#[test]
fn logs_say_what_happens_and_never_a_secret() {
    let emu = emulator(Config {
        subscriptions: 3,
        faults: azbatch_emulator::Faults {
            item_429: 0.3,
            seed: 3,
            ..Default::default()
        },
        ..Config::default()
    });
    let input: String = (0..30)
        .map(|i| {
            format!(
                "\"/subscriptions/{}?api-version=2022-12-01&n={i}\"\n",
                sub(i % 3)
            )
        })
        .collect();
    // A static token, then a client secret through the login host.
    let url = emu.url();
    let runs = [
        (
            vec!["run", "-vv", "--endpoint", &url, "--token", TOKEN],
            vec![],
        ),
        (
            vec![
                "run",
                "-v",
                "--log-format",
                "json",
                "--endpoint",
                &url,
                "--auth",
                "clientSecret",
            ],
            vec![
                ("AZURE_TENANT_ID", "tenant"),
                ("AZURE_CLIENT_ID", "app"),
                ("AZURE_CLIENT_SECRET", "emulator-client-secret"),
                ("AZURE_AUTHORITY_HOST", url.as_str()),
            ],
        ),
    ];
    for (args, env) in runs {
        let out = azbatch(&args, &input, &env);
        assert_eq!(out.code, 0, "{}", out.stderr);
        check_logs(&out, args.contains(&"-vv"));
    }
    // Quiet unless asked; AZBATCH_LOG asks as the C ABI and the module do.
    let out = azbatch(&["run", "--endpoint", &url, "--token", TOKEN], &input, &[]);
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| !l.starts_with("azbatch:"))
            .count(),
        0,
        "{}",
        out.stderr
    );
    let out = azbatch(
        &["run", "--endpoint", &url, "--token", TOKEN],
        &input,
        &[("AZBATCH_LOG", "info")],
    );
    assert!(
        out.stderr.contains("retry scheduled") && !out.stderr.contains(TOKEN),
        "{}",
        out.stderr
    );
}

#[test]
fn csv_table_and_json_show_the_same_results() {
    let emu = emulator(Config {
        subscriptions: 3,
        ..Config::default()
    });
    let url = emu.url();
    let input: String = (0..4)
        .map(|i| {
            format!(
                "{{\"id\":\"s{i}\",\"url\":\"/subscriptions/{}?api-version=2022-12-01\"}}\n",
                sub(i)
            )
        })
        .collect();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--endpoint", &url, "--token", TOKEN, "--ordered"];
        args.extend_from_slice(extra);
        run_raw(&args, &input, &[]).1
    };
    let select = "id,status,body.displayName,error.code";
    let csv = run(&["--output", "csv", "--select", select]);
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some(select));
    let rows: Vec<Vec<&str>> = rows.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert_eq!(rows[0], ["s0", "200", "Subscription 0", ""]);
    assert_eq!(rows[3], ["s3", "404", "", "SubscriptionNotFound"]);
    let table = run(&["--output", "table", "--select", select]);
    for (row, line) in rows.iter().zip(
        table
            .lines()
            .filter(|l| l.starts_with("│ s") && !l.contains("status")),
    ) {
        for cell in row.iter().filter(|c| !c.is_empty()) {
            assert!(line.contains(cell), "{cell} in {line}\n{table}");
        }
    }
    let json: Value = serde_json::from_str(&run(&["--output", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 4);
    assert_eq!(json[3]["error"]["code"], "SubscriptionNotFound");
    let picked = run(&["--select", "id,status"]);
    assert_eq!(
        picked.lines().next(),
        Some("{\"id\":\"s0\",\"status\":200}")
    );
    // In the order asked for, in JSON too.
    let picked = run(&["--select", "status,id"]);
    assert_eq!(
        picked.lines().next(),
        Some("{\"status\":200,\"id\":\"s0\"}")
    );
    for none in ["", " , "] {
        let (code, _) = run_raw(
            &[
                "run",
                "--endpoint",
                &url,
                "--token",
                TOKEN,
                "--select",
                none,
            ],
            &input,
            &[],
        );
        assert_eq!(code, Some(2), "--select {none:?} names no field: refused");
    }
}

/// 25 resource groups: a PUT of each, then a GET after it.
fn dry_run_input() -> String {
    let mut input = String::new();
    for i in 0..25 {
        let rg = format!(
            "/subscriptions/{}/resourcegroups/rg{i}?api-version=2021-04-01",
            sub(i % 3)
        );
        input += &format!("{{\"id\":\"put{i}\",\"method\":\"PUT\",\"url\":\"{rg}\",\"body\":{{\"location\":\"westeurope\"}}}}\n");
        input += &format!("{{\"id\":\"get{i}\",\"url\":\"{rg}\",\"dependsOn\":[\"put{i}\"]}}\n");
    }
    input
}

/// `azbatch` with `stdin`: its exit code and standard output as text.
fn run_raw(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_azbatch"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("AZBATCH_TOKEN")
        .envs(env.iter().copied());
    let mut child = cmd.spawn().unwrap();
    feed(&mut child, stdin);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn a_dry_run_prints_the_plan_and_sends_nothing() {
    let emu = emulator(Config {
        subscriptions: 3,
        ..Config::default()
    });
    let url = emu.url();
    let journal =
        std::env::temp_dir().join(format!("azbatch-dry-run-{}.journal", std::process::id()));
    let input = dry_run_input();
    let identity = format!("{url}/msi/token");
    let raw = |args: &[&str], env: &[(&str, &str)]| run_raw(args, &input, env);
    let (code, plan) = raw(
        &[
            "run",
            "--dry-run",
            "--endpoint",
            &url,
            "--auth",
            "managedIdentity",
            "--journal",
            journal.to_str().unwrap(),
        ],
        &[
            ("IDENTITY_ENDPOINT", &identity),
            ("IDENTITY_HEADER", "emulator-identity-header"),
        ],
    );
    assert_eq!(code, Some(0), "{plan}");
    assert!(
        emu.batches().is_empty() && emu.tokens_issued() == 0,
        "nothing sent, no token asked for"
    );
    assert!(!journal.exists(), "a dry run writes no journal");
    assert!(
        plan.starts_with(
            "azbatch dry run: 50 requests, 2 dependency wave(s), 4 batch(es) of at most 20"
        ),
        "{plan}"
    );
    assert!(
        plan.contains(
            "wave 2 (25 requests, each sent once the requests it depends on have succeeded)"
        ),
        "{plan}"
    );
    assert!(plan.contains(&format!("PUT    /subscriptions/{}/resourcegroups/rg0?api-version=2021-04-01  [subscription-writes/{}] id put0", sub(0), sub(0))), "{plan}");
    assert!(
        plan.contains(&format!("subscription-reads/{}: 9 request(s)", sub(0))),
        "{plan}"
    );
    assert!(emu.batches().is_empty());
    // A bad request is still refused, with its line.
    let out = azbatch(
        &["run", "--dry-run", "--endpoint", &url, "--token", TOKEN],
        "{\"url\":\"/users\"}\n",
        &[],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("line 1: request[0]: field \"url\""),
        "{}",
        out.stderr
    );
}

#[test]
fn a_dry_run_of_the_fan_out_asks_no_token() {
    let emu = emulator(Config {
        subscriptions: 3,
        ..Config::default()
    });
    let url = emu.url();
    let identity = format!("{url}/msi/token");
    // The fan-out too: the template is checked, the listing not made.
    let (code, plan) = run_raw(
        &[
            "subscriptions",
            "--dry-run",
            "--endpoint",
            &url,
            "--auth",
            "managedIdentity",
            "--url",
            "/subscriptions/{subscriptionId}/resourcegroups?api-version=2021-04-01",
        ],
        "",
        &[
            ("IDENTITY_ENDPOINT", &identity),
            ("IDENTITY_HEADER", "emulator-identity-header"),
        ],
    );
    assert_eq!(code, Some(0), "{plan}");
    assert!(
        plan.contains("sent once in every subscription")
            && plan.contains("subscription-reads/{subscriptionId}"),
        "{plan}"
    );
    assert!(emu.batches().is_empty() && emu.tokens_issued() == 0);
}

/// A reader that stops early (`azbatch run ... | head -1`) ends the run
/// quietly: the rest is cancelled, no failures are reported, and the exit
/// code is 141 on Unix, what a shell reports for a closed pipe.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    let emu = emulator(Config {
        latency: azbatch_emulator::Latency::fixed(Duration::from_millis(20)),
        ..Config::default()
    });
    let input: String = (0..3000)
        .map(|i| {
            format!(
                "\"/subscriptions/{}?api-version=2022-12-01\"\n",
                sub(i % 10)
            )
        })
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_azbatch"))
        .args(["run", "--endpoint", &emu.url(), "--token", TOKEN])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Fed from a thread: the child writes results while it reads.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone now: its end of the pipe closed.
    assert!(first.contains("\"status\":200"), "{first}");
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("failed"), "no failures counted: {stderr}");
}

/// `azbatch man | head` and `azbatch completions bash | head`: a reader that
/// stops early is no failure and no "Broken pipe".
#[test]
fn man_and_completions_end_quietly_when_the_reader_goes() {
    for args in [&["man"][..], &["completions", "bash"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_azbatch"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes before a byte is read: every write meets a closed pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

/// The README's command-line examples run as written: its sample request
/// line (with an emulated subscription for `<sub>`) and its emulator example
/// (with the emulator's port for `PORT`, its token for `t`).
#[test]
fn the_readme_examples_run_against_the_emulator() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block = |after: &str, fence: &str| -> String {
        let at = readme
            .find(after)
            .unwrap_or_else(|| panic!("README has {after:?}"));
        let rest = &readme[at..];
        let start = rest.find(fence).expect("a code block follows") + fence.len();
        let end = rest[start..].find("```").expect("the block ends");
        rest[start..start + end].trim().to_string()
    };
    let emu = emulator(Config::default());
    let port = emu.addr().port().to_string();
    // The sample line: a PUT of a resource group.
    let line = block("One request per line, as JSON", "```json\n").replace("<sub>", &sub(0));
    let endpoint = emu.url();
    let out = azbatch(
        &["run", "--endpoint", &endpoint, "--token", TOKEN],
        &format!("{line}\n"),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        matches!(out.lines[0]["status"].as_u64(), Some(200 | 201)),
        "{:?}",
        out.lines
    );
    // The emulator example, as a shell runs it.
    let script = block("Against the emulator, to try it without Azure", "```sh\n")
        .replace("PORT", &port)
        .replace("--token t", &format!("--token {TOKEN}"));
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_azbatch"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shell = Command::new("bash")
        .args(["-c", &script])
        .env("PATH", path)
        .env_remove("AZBATCH_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&shell.stdout);
    assert!(
        shell.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&shell.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().next().unwrap_or("")).unwrap();
    assert_eq!(result["status"], 200, "{stdout}");
}
