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
