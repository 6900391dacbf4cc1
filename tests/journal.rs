//! The crash-safe journal end to end against the emulator: a finished run
//! replays, a run stopped mid-way sends only what has no final result and
//! never resends a write that may have run, and a journal of other input is
//! refused before anything is sent. The CLI's kill test
//! (`crates/cli/tests/kill.rs`) kills the real process.

mod common;

use azbatch::journal::{digest, Journal, Past};
use azbatch::request::RequestList;
use azbatch::{ErrorInfo, ItemResult, Options};
use azbatch_emulator::graph::model::user_id;
use azbatch_emulator::Config;
use common::*;
use serde_json::{json, Value};

fn temp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "azbatch-journal-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

/// p0 g0 p1 g1 p2 g2: a PATCH and a GET of each of three users.
fn requests() -> Vec<Value> {
    (0..3)
        .flat_map(|i| {
            [
                json!({"id": format!("p{i}"), "method": "PATCH", "url": format!("/users/{}", user_id(i)), "body": {"jobTitle": format!("t{i}")}}),
                json!({"id": format!("g{i}"), "url": format!("/users/{}", user_id(i))}),
            ]
        })
        .collect()
}

fn run(
    emu: &azbatch_emulator::Emulator,
    journal: &std::path::Path,
    reqs: &[Value],
    extra: Value,
) -> Result<Vec<ItemResult>, azbatch::Error> {
    let mut o = json!({"journal": journal});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    let b = graph_batch(emu, o);
    for r in reqs {
        add(&b, r.clone());
    }
    b.execute().map(|e| e.results)
}

/// How many times the emulator ran `method` on `path`.
fn ran(emu: &azbatch_emulator::Emulator, method: &str, path: &str) -> usize {
    emu.ops()
        .iter()
        .filter(|o| o.method == method && o.path.ends_with(path))
        .count()
}

fn config() -> Config {
    Config {
        graph_users: 5,
        ..Config::default()
    }
}

#[test]
fn a_finished_run_replays_and_sends_nothing() {
    let emu = emulator(config());
    let path = temp("replay");
    let first = run(&emu, &path, &requests(), json!({})).unwrap();
    assert!(first.iter().all(ItemResult::is_success), "{first:?}");
    let batches = emu.batches().len();
    let second = run(&emu, &path, &requests(), json!({})).unwrap();
    assert_eq!(emu.batches().len(), batches, "nothing sent again");
    let key = |r: &ItemResult| (r.id.clone(), r.status, r.body.clone(), r.attempts);
    assert_eq!(
        second.iter().map(key).collect::<Vec<_>>(),
        first.iter().map(key).collect::<Vec<_>>()
    );
    std::fs::remove_file(&path).unwrap();
}

/// A journal as a run killed mid-way leaves it: p0 and g0 finished, p1 and
/// g1 sent without an answer, p2 and g2 never sent.
fn crashed_journal(emu: &azbatch_emulator::Emulator, path: &std::path::Path) {
    let o = Options::from_json(
        &json!({"api": "graph", "endpoint": emu.url(), "token": TOKEN}).to_string(),
    )
    .unwrap();
    let mut list = RequestList::default();
    for r in requests() {
        list.add_json(&r.to_string(), &o).unwrap();
    }
    let reqs = list.into_vec();
    let d: Vec<String> = reqs.iter().map(digest).collect();
    let j = Journal::open(path).unwrap();
    j.sent(&[(0, &d[0]), (1, &d[1]), (2, &d[2]), (3, &d[3])])
        .unwrap();
    for i in [0, 1] {
        let mut r = ItemResult::no_answer(i, &reqs[i].id, 1, ErrorInfo::new("x", "y"));
        (r.status, r.error, r.body) = (200, None, json!({"fromTheJournal": i}));
        j.done(i, &d[i], &r).unwrap();
    }
    drop(j);
    let j = Journal::open(path).unwrap();
    assert!(matches!(j.past(2, &reqs[2]).unwrap(), Past::Sent(_)));
    assert!(matches!(j.past(4, &reqs[4]).unwrap(), Past::New(_)));
}

#[test]
fn after_a_crash_only_unfinished_requests_go_and_writes_are_not_resent() {
    let emu = emulator(config());
    let path = temp("crash");
    crashed_journal(&emu, &path);
    let results = run(&emu, &path, &requests(), json!({})).unwrap();
    let got: Vec<(&str, u16, &str)> = results
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.status,
                r.error.as_ref().map_or("", |e| e.code.as_str()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("p0", 200, ""),
            ("g0", 200, ""),
            ("p1", 0, "OutcomeUnknown"),
            ("g1", 200, ""),
            ("p2", 204, ""),
            ("g2", 200, "")
        ]
    );
    assert_eq!(
        results[0].body,
        json!({"fromTheJournal": 0}),
        "replayed, not sent"
    );
    assert!(
        results[2]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("earlier run"),
        "{:?}",
        results[2]
    );
    // It says what it answers, as every result does.
    assert_eq!(
        (results[2].method.as_str(), results[2].url.clone()),
        ("PATCH", format!("/users/{}", user_id(1))),
        "{:?}",
        results[2]
    );
    assert_eq!(ran(&emu, "PATCH", &user_id(0)), 0);
    assert_eq!(
        ran(&emu, "PATCH", &user_id(1)),
        0,
        "a write that may have run is not sent again"
    );
    assert_eq!(
        ran(&emu, "GET", &user_id(1)),
        1,
        "a read that may have run is"
    );
    assert_eq!(ran(&emu, "PATCH", &user_id(2)), 1);
    // The third run finds every result final: it sends nothing.
    let batches = emu.batches().len();
    let again = run(&emu, &path, &requests(), json!({})).unwrap();
    assert_eq!(
        (
            emu.batches().len(),
            again[2].error.as_ref().unwrap().code.as_str()
        ),
        (batches, "OutcomeUnknown")
    );
    std::fs::remove_file(&path).unwrap();

    // Allowed, the write goes again.
    let emu = emulator(config());
    crashed_journal(&emu, &path);
    let results = run(
        &emu,
        &path,
        &requests(),
        json!({"retryNonIdempotent": true}),
    )
    .unwrap();
    assert_eq!(results[2].status, 204);
    assert_eq!(ran(&emu, "PATCH", &user_id(1)), 1);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_journal_of_other_input_is_refused_before_anything_is_sent() {
    let emu = emulator(config());
    let path = temp("other");
    run(&emu, &path, &requests(), json!({})).unwrap();
    let batches = emu.batches().len();
    let mut other = requests();
    other[3]["url"] = json!(format!("/users/{}", user_id(4)));
    let e = run(&emu, &path, &other, json!({})).unwrap_err().to_string();
    assert!(
        e.contains("request[3] (id \"g1\")") && e.contains("different input"),
        "{e}"
    );
    assert_eq!(emu.batches().len(), batches);
    // The same through an open job: refused when added.
    let b = graph_batch(&emu, json!({"journal": path}));
    b.open().unwrap();
    for r in &other[..3] {
        b.add_json(&r.to_string()).unwrap();
    }
    let e = b.add_json(&other[3].to_string()).unwrap_err().to_string();
    assert!(e.contains("different input"), "{e}");
    // A refused request takes no place: the input's own fourth comes next.
    for r in &requests()[3..] {
        b.add_json(&r.to_string()).unwrap();
    }
    b.close_input().unwrap();
    let replayed = drain(&b, std::time::Duration::from_secs(10));
    assert_eq!(replayed.len(), 6, "{replayed:?}");
    assert!(replayed.iter().all(ItemResult::is_success), "{replayed:?}");
    assert_eq!(emu.batches().len(), batches, "all six were replayed");
    // A damaged journal is refused too.
    std::fs::write(
        &path,
        "{\"azbatchJournal\":1}\n{oops\n{\"sent\":[0],\"digests\":[\"x\"]}\n",
    )
    .unwrap();
    let e = run(&emu, &path, &requests(), json!({}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2 is damaged"), "{e}");
    std::fs::remove_file(&path).unwrap();
}

/// The results of one forEachSubscription `template` run with `journal`.
fn fanned(
    emu: &azbatch_emulator::Emulator,
    journal: &std::path::Path,
    template: &Value,
) -> Vec<ItemResult> {
    let b = batch(emu, json!({ "journal": journal }));
    add(&b, template.clone());
    b.execute().expect("runs").results
}

/// An emulator whose tenant has `subscriptions` subscriptions.
fn tenant(subscriptions: usize) -> azbatch_emulator::Emulator {
    emulator(Config {
        subscriptions,
        ..Config::default()
    })
}

/// The paths the emulator was asked for that end with `tail`.
fn sent(emu: &azbatch_emulator::Emulator, tail: &str) -> Vec<String> {
    emu.ops()
        .iter()
        .filter(|o| o.path.ends_with(tail))
        .map(|o| o.path.clone())
        .collect()
}

/// A forEachSubscription run journals its fanned-out requests: run again it
/// replays them (subscription and all); run against a tenant whose
/// subscriptions changed, a request the journal holds another request for at
/// its place gets a result that says so, with its own id, method and URL,
/// and is not sent.
#[test]
fn a_fanned_out_run_replays_and_refuses_what_the_journal_does_not_hold() {
    let path = temp("fanout");
    let template = json!({"id": "rg", "url": "/subscriptions/{subscriptionId}/resourceGroups?api-version=2021-04-01", "forEachSubscription": true});
    let run_arm = |emu: &azbatch_emulator::Emulator| fanned(emu, &path, &template);
    let emu = tenant(3);
    let first = run_arm(&emu);
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(first.iter().all(ItemResult::is_success), "{first:?}");
    assert_eq!(sent(&emu, "/resourceGroups").len(), 3);
    let again = run_arm(&emu);
    assert_eq!(
        sent(&emu, "/resourceGroups").len(),
        3,
        "nothing but the listing sent again"
    );
    let key = |r: &ItemResult| {
        (
            r.id.clone(),
            r.status,
            r.url.clone(),
            r.subscription.as_ref().map(|s| s.subscription_id.clone()),
        )
    };
    assert_eq!(
        again.iter().map(key).collect::<Vec<_>>(),
        first.iter().map(key).collect::<Vec<_>>()
    );

    // A tenant of four: the first three replay, the fourth is new and goes.
    let four = tenant(4);
    let grown = run_arm(&four);
    assert_eq!(grown.len(), 4, "{grown:?}");
    assert!(grown.iter().all(ItemResult::is_success), "{grown:?}");
    let went = sent(&four, "/resourceGroups");
    assert_eq!(
        went.len(),
        1,
        "only the new subscription's request: {went:?}"
    );
    assert!(went[0].contains(&sub(3)), "{went:?}");

    // A tenant whose subscriptions are others: every place holds another
    // request, so none is sent, and each result names its own request.
    let shifted = tenant(5);
    let other = json!({"id": "tags", "url": "/subscriptions/{subscriptionId}/resourceGroups?api-version=2022-09-01", "forEachSubscription": true});
    let results = fanned(&shifted, &path, &other);
    assert_eq!(results.len(), 5, "{results:?}");
    for (i, r) in results.iter().take(4).enumerate() {
        let e = r.error.as_ref().expect("refused");
        assert_eq!(e.code, "InvalidRequest", "{r:?}");
        assert!(e.message.contains("different input"), "{r:?}");
        assert_eq!(r.method, "GET", "{r:?}");
        assert!(
            r.url.contains(&sub(i)) && r.url.contains("2022-09-01"),
            "{r:?}"
        );
        assert_eq!(r.attempts, 0, "{r:?}");
        assert!(r.id.starts_with("tags"), "{r:?}");
    }
    let went = sent(&shifted, "/resourceGroups");
    assert_eq!(
        went.len(),
        1,
        "only the fifth, which the journal does not hold: {went:?}"
    );
    assert!(went[0].contains(&sub(4)), "{went:?}");
    assert!(results[4].is_success(), "{:?}", results[4]);
    std::fs::remove_file(&path).unwrap();
}
