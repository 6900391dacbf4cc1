//! Graph batching end to end: the real engine against the emulator's `$batch`.

mod common;

use std::time::Duration;

use azbatch_emulator::graph::limits::ServiceLimits;
use azbatch_emulator::graph::model::{group_id, user_id, SKU};
use azbatch_emulator::{Config, GraphThrottle, Latency};
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

fn onboarding(k: usize, groups: &[String]) -> Vec<Value> {
    let new = format!("new{k}");
    let user = format!("{{{{{new}.body.id}}}}");
    let mut reqs = vec![
        json!({"id": new, "method": "POST", "url": "/users",
               "body": {"displayName": format!("New {k}"), "userPrincipalName": format!("new{k}@contoso.example"), "accountEnabled": true}}),
        json!({"id": format!("lic{k}"), "method": "POST", "url": format!("/users/{user}/assignLicense"), "dependsOn": [new],
               "body": {"addLicenses": [{"skuId": SKU}], "removeLicenses": []}}),
        json!({"id": format!("event{k}"), "method": "POST", "url": format!("/users/{user}/events"), "dependsOn": [new],
               "body": {"subject": "Welcome!", "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-12-01T09:30:00", "timeZone": "UTC"}}}),
        json!({"id": format!("perm{k}"), "method": "POST", "url": format!("/users/{user}/calendar/calendarPermissions"), "dependsOn": [new],
               "body": {"emailAddress": {"address": "manager@contoso.example", "name": "Manager"}, "role": "read"}}),
    ];
    for (j, g) in groups.iter().enumerate() {
        reqs.push(json!({"id": format!("grp{k}-{j}"), "method": "POST", "url": format!("/groups/{g}/members/$ref"), "dependsOn": [new],
                         "body": {"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user}")}}));
    }
    reqs
}

#[test]
fn onboarding_with_dependencies_and_references() {
    let emu = emulator(Config {
        graph_groups: 3,
        ..Config::default()
    });
    let b = graph_batch(&emu, json!({}));
    let groups: Vec<String> = (0..3).map(group_id).collect();
    let mut n = 0;
    for k in 0..5 {
        for r in onboarding(k, &groups) {
            add(&b, r);
            n += 1;
        }
    }
    let run = execute(&b, n);
    for r in &run.results {
        assert!(
            r.is_success(),
            "{} failed: {} {:?}",
            r.id,
            r.status,
            r.error
        );
    }
    let ids: Vec<String> = run
        .results
        .iter()
        .filter(|r| r.id.starts_with("new"))
        .map(|r| r.body["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5);
    for id in &ids {
        assert_eq!(emu.graph(|g| g.licenses(id)), vec![SKU.to_string()]);
        for g in &groups {
            assert!(
                emu.graph(|m| m.members(g).unwrap().contains(id)),
                "{id} in {g}"
            );
        }
    }
    assert!(
        emu.batches().iter().all(|b| b.status == 200),
        "no batch was refused"
    );
}

#[test]
fn twenty_one_requests_make_two_batches_and_answers_are_matched_by_id() {
    let emu = emulator(Config {
        graph_users: 21,
        ..Config::default()
    });
    let b = graph_batch(&emu, json!({}));
    for i in 0..21 {
        add(
            &b,
            json!({"id": format!("u{i}"), "url": format!("{}/v1.0/users/{}?$select=displayName", emu.url(), user_id(i))}),
        );
    }
    let run = execute(&b, 21);
    for (i, r) in run.results.iter().enumerate() {
        assert_eq!(r.body["id"], user_id(i));
        assert_eq!(r.body["displayName"], format!("User {i}"));
    }
    let mut sizes: Vec<usize> = emu.batches().iter().map(|b| b.items).collect();
    sizes.sort();
    assert_eq!(
        sizes,
        [1, 20],
        "batches run in parallel and land in any order"
    );
}

#[test]
fn base64_bodies_both_ways() {
    let emu = emulator(Config::default());
    let b = graph_batch(&emu, json!({}));
    let bytes = [0xFFu8, 0xD8, 0x00, 0x7F, 0x80];
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    add(
        &b,
        json!({"id": "put", "method": "PUT", "url": format!("/users/{}/photo/$value", user_id(3)), "headers": {"Content-Type": "image/jpeg"}, "body": b64, "bodyEncoding": "base64"}),
    );
    add(
        &b,
        json!({"id": "get", "url": format!("/users/{}/photo/$value", user_id(3)), "dependsOn": ["put"]}),
    );
    let run = execute(&b, 2);
    assert_eq!(run.results[0].status, 204);
    let got = &run.results[1];
    assert_eq!((got.status, got.body_encoding), (200, Some("base64")));
    let back = base64::engine::general_purpose::STANDARD
        .decode(got.body.as_str().unwrap())
        .unwrap();
    assert_eq!(back, bytes);
}

#[test]
fn a_failure_cascades_424_and_dependents_are_never_sent() {
    let emu = emulator(Config::default());
    let b = graph_batch(&emu, json!({}));
    // The UPN is taken: the create fails, so nothing that depends on it runs.
    add(
        &b,
        json!({"id": "dup", "method": "POST", "url": "/users", "body": {"displayName": "Dup", "userPrincipalName": "user0@contoso.example"}}),
    );
    add(
        &b,
        json!({"id": "lic", "method": "POST", "url": "/users/{{dup.body.id}}/assignLicense", "dependsOn": ["dup"], "body": {"addLicenses": [], "removeLicenses": []}}),
    );
    add(
        &b,
        json!({"id": "after", "url": "/users/{{lic.body.id}}", "dependsOn": ["lic"]}),
    );
    let run = execute(&b, 3);
    assert_eq!(run.results[0].status, 400);
    assert_eq!((run.results[1].status, run.results[1].attempts), (424, 0));
    assert_eq!((run.results[2].status, run.results[2].attempts), (424, 0));
    assert_eq!(
        emu.ops().len(),
        1,
        "only the failed create reached the directory"
    );
}

#[test]
fn a_diamond_of_dependencies_runs_in_order() {
    let emu = emulator(Config {
        graph_groups: 1,
        ..Config::default()
    });
    let b = graph_batch(&emu, json!({}));
    let g = group_id(0);
    // d depends on b and c, which both depend on a; added in reverse order.
    add(
        &b,
        json!({"id": "d", "url": format!("/groups/{g}/members"), "dependsOn": ["b", "c"]}),
    );
    add(
        &b,
        json!({"id": "c", "method": "POST", "url": format!("/groups/{g}/members/$ref"), "dependsOn": ["a"], "body": {"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", user_id(2))}}),
    );
    add(
        &b,
        json!({"id": "b", "method": "POST", "url": format!("/groups/{g}/members/$ref"), "dependsOn": ["a"], "body": {"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/{{a.body.id}}"}}),
    );
    add(
        &b,
        json!({"id": "a", "method": "POST", "url": "/users", "body": {"displayName": "A", "userPrincipalName": "a@contoso.example"}}),
    );
    let run = execute(&b, 4);
    assert!(
        run.results.iter().all(|r| r.is_success()),
        "{:?}",
        run.results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(
        run.results[0].body["value"].as_array().unwrap().len(),
        2,
        "d saw both memberships"
    );
}

#[test]
fn unknown_dependencies_are_refused_at_start() {
    let emu = emulator(Config::default());
    let b = graph_batch(&emu, json!({}));
    add(
        &b,
        json!({"id": "x", "url": "/users", "dependsOn": ["ghost"]}),
    );
    let e = b.start().unwrap_err().to_string();
    assert!(
        e.contains("request[0] (id \"x\"): field \"dependsOn\": no request has the id \"ghost\""),
        "{e}"
    );
    add(&b, json!({"id": "ghost", "url": "/users"}));
    b.start().expect("fixed by adding the missing request");
    assert_eq!(drain(&b, Duration::from_secs(5)).len(), 2);
}

#[test]
fn throttled_items_wait_their_decimal_retry_after() {
    let throttle = GraphThrottle {
        capacity: 30.0,
        refill: 100.0,
        ..GraphThrottle::default()
    };
    let emu = emulator(Config {
        graph_users: 60,
        graph_throttle: throttle,
        ..Config::default()
    });
    let b = graph_batch(&emu, json!({}));
    for i in 0..60 {
        add(
            &b,
            json!({"method": "PATCH", "url": format!("/users/{}", user_id(i)), "body": {"department": "Finance"}}),
        );
    }
    let run = execute(&b, 60);
    assert!(
        run.results.iter().all(|r| r.status == 204),
        "{:?}",
        run.results.iter().find(|r| r.status != 204)
    );
    assert!(b.progress().throttled > 0 && run.summary.retries > 0);
    for i in 0..60 {
        assert_eq!(
            emu.graph(|g| g.user(&user_id(i)).unwrap()["department"].clone()),
            "Finance"
        );
    }
    let patches = emu
        .ops()
        .iter()
        .filter(|o| o.method == "PATCH" && o.status == 204)
        .count();
    assert_eq!(patches, 60, "each update applied once");
}

#[test]
fn odata_next_links_are_followed() {
    let emu = emulator(Config {
        graph_users: 23,
        latency: Latency::default(),
        ..Config::default()
    });
    let b = graph_batch(&emu, json!({"followNextLink": true}));
    add(
        &b,
        json!({"id": "all", "url": "/users?$top=5&$select=displayName"}),
    );
    let r = &execute(&b, 1).results[0];
    assert_eq!((r.status, r.pages), (200, 5));
    let names: Vec<&str> = r.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 23);
    assert!(r.body.get("@odata.nextLink").is_none());
}

/// Conditional Access: the emulator allows the tenant one request a second and
/// answers the rest 429 without `Retry-After`, as Graph documents; the engine,
/// seeded at that rate, meets no 429 at all.
#[test]
// The emulator answers on real sockets, in real time.
#[allow(clippy::disallowed_methods)]
fn conditional_access_is_paced_at_one_a_second_and_meets_no_429() {
    let emu = emulator(Config::default());
    let b = graph_batch(&emu, json!({}));
    for i in 0..4 {
        add(
            &b,
            json!({"id": format!("p{i}"), "url": format!("/identity/conditionalAccess/policies?n={i}")}),
        );
    }
    let started = std::time::Instant::now();
    let run = execute(&b, 4);
    assert!(
        run.results.iter().all(|r| r.status != 429),
        "{:?}",
        run.results
    );
    let refused = emu.ops().iter().filter(|o| o.status == 429).count();
    assert_eq!(refused, 0, "no request met the limit");
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "four requests at one a second: {:?}",
        started.elapsed()
    );
    // The emulator's rule itself: CA requests sent together meet it, and
    // its 429 names no time.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses: Vec<(u16, bool)> = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut out = vec![];
        for i in 0..3 {
            let r = client
                .get(format!(
                    "{}/v1.0/identity/conditionalAccess/policies?b={i}",
                    emu.url()
                ))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            out.push((r.status().as_u16(), r.headers().contains_key("retry-after")));
        }
        out
    });
    assert!(
        statuses.iter().skip(1).any(|&(s, ra)| s == 429 && !ra),
        "{statuses:?}"
    );
}

/// Graph's identity writes (3,000 per 2 min 30 s per app and tenant, here
/// shrunk to 40 per 2 s): the emulator refuses the rest 429 naming the limit
/// (`x-ms-throttle-scope`, `x-ms-throttle-information`).
#[test]
fn the_emulator_refuses_writes_past_their_limit_naming_it() {
    let emu = emulator(Config {
        graph_users: 50,
        graph_throttle: GraphThrottle {
            services: ServiceLimits {
                identity_writes: (40.0, 2.0),
                ..ServiceLimits::default()
            },
            ..GraphThrottle::default()
        },
        ..Config::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Until the first refusal: 40 go through at once, and a busy machine
    // can take long enough over them for the bucket to refill one or two.
    let (at, first) = rt.block_on(async {
        let client = reqwest::Client::new();
        for i in 0..200 {
            let r = client
                .patch(format!("{}/v1.0/users/{}", emu.url(), user_id(i % 50)))
                .bearer_auth(TOKEN)
                .json(&json!({"department": "Sales"}))
                .send()
                .await
                .unwrap();
            if r.status() == 204 {
                continue;
            }
            let h = |k: &str| r.headers().get(k).map(|v| v.to_str().unwrap().to_string());
            return (
                i,
                (
                    r.status().as_u16(),
                    h("x-ms-throttle-information"),
                    h("x-ms-throttle-scope")
                        .is_some_and(|s| s.starts_with("Tenant_Application/Write/")),
                    h("retry-after"),
                ),
            );
        }
        panic!("200 writes at 40 per 2 s, none refused");
    });
    assert!(at >= 40, "refused at write {at}, within the limit of 40");
    assert_eq!(
        first,
        (
            429,
            Some("WriteLimitExceeded".into()),
            true,
            Some("1".into())
        )
    );
}

/// The documented identity write limit (3,000 per 2 min 30 s) is honoured
/// from the start: 3,200 writes, the last 200 at its 20 a second, meet it
/// (all but) never (the resource units are set wide, so the write limit is
/// the one that binds); each write lands once.
#[test]
fn identity_writes_are_paced_to_their_documented_limit() {
    let n = 3_200;
    let emu = emulator(Config {
        graph_users: n,
        graph_throttle: GraphThrottle {
            capacity: 1e9,
            refill: 1e9,
            ..GraphThrottle::default()
        },
        ..Config::default()
    });
    let b = graph_batch(&emu, json!({}));
    for i in 0..n {
        add(
            &b,
            json!({"method": "PATCH", "url": format!("/users/{}", user_id(i)), "body": {"department": "Finance"}}),
        );
    }
    // Without the pacing, 386 of them met it; a busy machine can bring a
    // send a few milliseconds early, so a few are allowed.
    paced(&emu, &b, n, 204, "the write limit");
    let patches = emu
        .ops()
        .iter()
        .filter(|o| o.method == "PATCH" && o.status == 204)
        .count();
    assert_eq!(patches, n, "each update applied once");
}

/// SharePoint's resource units (1,250 a minute for the smallest tenants; a
/// listing costs 2): 700 listings are 1,400 units, the last 150 of them at
/// 1,250 a minute. The engine paces the app's SharePoint calls to that from
/// the start and meets (all but) no 429; each gets its answer.
#[test]
fn sharepoint_listings_are_paced_to_the_documented_units() {
    let emu = emulator(Config::default());
    let b = graph_batch(&emu, json!({}));
    let n = 700;
    for i in 0..n {
        add(
            &b,
            json!({"url": format!("/drives/d{i}/items/root/children")}),
        );
    }
    paced(&emu, &b, n, 200, "SharePoint's units");
}

/// Runs `b`'s `n` requests: each answered `status`, and `limit` met (a 429)
/// at most once in a hundred.
fn paced(emu: &azbatch_emulator::Emulator, b: &azbatch::Job, n: usize, status: u16, limit: &str) {
    let run = execute(b, n);
    assert!(
        run.results.iter().all(|r| r.status == status),
        "{:?}",
        run.results.iter().find(|r| r.status != status)
    );
    let refused = emu.ops().iter().filter(|o| o.status == 429).count();
    assert!(refused <= n / 100, "{limit}: met {refused} times");
}
