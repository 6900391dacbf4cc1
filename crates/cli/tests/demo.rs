//! The README's main command works end to end and its three ways agree.

use std::process::Command;

#[test]
fn demo_runs_and_the_three_ways_agree() {
    let out = Command::new(env!("CARGO_BIN_EXE_azbatch"))
        .args([
            "demo",
            "--subscriptions",
            "60",
            "--latency-ms",
            "5",
            "--users",
            "300",
            "--no-check",
        ])
        .output()
        .expect("azbatch runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Found 60 subscriptions (2 pages"), "{text}");
    // Subscription i has 1 + i % 3 eligibilities: 120 over 60 subscriptions.
    assert_eq!(
        text.matches("60 calls, 120 eligibilities").count(),
        3,
        "{text}"
    );
    // Subscription i has i % 6 Batch accounts, two per page.
    assert!(text.contains("150 accounts from 100 pages"), "{text}");
    assert!(text.contains("AzBatch vs one at a time:"), "{text}");
    // The Graph part: every row ends with its failures, and there are none.
    for row in [
        "onboard 50 users (350 requests)",
        "add one user to 40 groups",
        "bulk-update 300 users",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("no row {row}:\n{text}"));
        assert!(line.trim_end().ends_with(" 0 failed"), "{line}");
    }
}

/// What the README says the demo prints is what it prints: each line of its
/// excerpt is a line of the demo's output, but for the figures.
#[test]
fn the_readme_excerpt_is_what_the_demo_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let at = readme
        .find("prints, in part:\n\n```text\n")
        .expect("the README shows what the demo prints");
    let excerpt = &readme[at..];
    let start = excerpt.find("```text\n").unwrap() + "```text\n".len();
    let end = start
        + excerpt[start..]
            .find("\n```\n")
            .expect("the excerpt's block ends");
    let excerpt = &excerpt[start..end];
    let out = Command::new(env!("CARGO_BIN_EXE_azbatch"))
        .args([
            "demo",
            "--subscriptions",
            "30",
            "--latency-ms",
            "2",
            "--users",
            "100",
            "--no-check",
        ])
        .output()
        .expect("azbatch runs");
    assert!(out.status.success());
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(shape)
        .collect();
    for line in excerpt.lines() {
        assert!(
            printed.contains(&shape(line)),
            "the demo prints no line like the README's {line:?}:\n{}",
            printed.join("\n")
        );
    }
}

/// A line with its figures as `#` and its runs of spaces as one.
fn shape(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_digit() || *c == '.')
            {
                chars.next();
            }
            out.push('#');
        } else if c == ' ' {
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}
