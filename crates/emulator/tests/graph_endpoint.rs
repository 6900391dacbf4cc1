//! The emulator's Graph `$batch` endpoint enforces Graph's rules: limits, ids,
//! Content-Type, the dependsOn shapes, 424 cascades, and throttling.

use azbatch_emulator::graph::batch::SHAPE_ERROR;
use azbatch_emulator::graph::model::user_id;
use azbatch_emulator::{Config, Emulator, GraphThrottle};
use reqwest::Client;
use serde_json::{json, Value};

async fn batch(emu: &Emulator, body: &Value) -> (u16, Value) {
    let r = Client::new()
        .post(format!("{}/v1.0/$batch", emu.url()))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn get(id: &str, deps: &[&str]) -> Value {
    json!({"id": id, "method": "GET", "url": format!("/users/{}", user_id(0)), "dependsOn": deps})
}

#[tokio::test]
async fn envelope_rules() {
    let emu = Emulator::start(Config::default()).unwrap();
    let many: Vec<Value> = (0..21).map(|i| get(&i.to_string(), &[])).collect();
    let cases = vec![
        (json!({"requests": many}), "exceeds the maximum of 20"),
        (
            json!({"requests": [get("a", &[]), get("A", &[])]}),
            "duplicated",
        ),
        (
            json!({"requests": [{"id": "1", "method": "POST", "url": "/users", "body": {"displayName": "x"}}]}),
            "does not contain Content-Type",
        ),
        (json!({"requests": [get("1", &["9"])]}), "not in the batch"),
        (json!({"reqs": []}), "Invalid batch payload"),
    ];
    for (body, want) in cases {
        let (s, b) = batch(&emu, &body).await;
        assert_eq!(s, 400, "{body:.60}");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(want),
            "{b}"
        );
    }
    let twenty: Vec<Value> = (0..20).map(|i| get(&i.to_string(), &[])).collect();
    assert_eq!(batch(&emu, &json!({"requests": twenty})).await.0, 200);
}

#[tokio::test]
async fn depends_on_shapes() {
    let emu = Emulator::start(Config::default()).unwrap();
    let accepted = [
        vec![get("1", &[]), get("2", &[]), get("3", &[])],
        vec![get("1", &[]), get("2", &["1"]), get("3", &["2"])],
        vec![get("1", &[]), get("2", &["1"]), get("3", &["1"])],
    ];
    for reqs in accepted {
        let (s, b) = batch(&emu, &json!({"requests": reqs})).await;
        assert_eq!(s, 200, "{b}");
        assert!(b["responses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == 200));
    }
    let refused = [
        vec![get("1", &[]), get("2", &["1"]), get("3", &[])],
        vec![
            get("1", &[]),
            get("2", &["1"]),
            get("3", &["2"]),
            get("4", &["1"]),
        ],
        vec![get("1", &["2"]), get("2", &[])],
        vec![get("1", &[]), get("2", &[]), get("3", &["1", "2"])],
        vec![get("1", &[]), get("2", &[]), get("3", &["2"])],
    ];
    for reqs in refused {
        let (s, b) = batch(&emu, &json!({"requests": reqs})).await;
        assert_eq!(
            (s, b["error"]["message"].as_str().unwrap()),
            (400, SHAPE_ERROR)
        );
    }
}

#[tokio::test]
async fn failed_dependencies_cascade_and_answers_are_shuffled() {
    let emu = Emulator::start(Config::default()).unwrap();
    let reqs = vec![
        json!({"id": "1", "method": "GET", "url": "/users/nobody"}),
        get("2", &["1"]),
        get("3", &["2"]),
    ];
    let (_, b) = batch(&emu, &json!({"requests": reqs})).await;
    let mut statuses: Vec<(String, u64)> = b["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().into(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [("1".into(), 404), ("2".into(), 424), ("3".into(), 424)]
    );
    assert_eq!(emu.ops().len(), 1, "dependents of a failure are not run");

    let reqs: Vec<Value> = (0..20).map(|i| get(&i.to_string(), &[])).collect();
    let mut shuffled = false;
    for _ in 0..5 {
        let (_, b) = batch(&emu, &json!({"requests": reqs})).await;
        let ids: Vec<&str> = b["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect::<Vec<_>>()
            .into_iter()
            .collect();
        let in_order: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        shuffled |= ids.iter().zip(&in_order).any(|(a, b)| a != b);
    }
    assert!(shuffled, "answers come back in any order");
}

#[tokio::test]
async fn resource_units_run_out_with_decimal_retry_after() {
    let throttle = GraphThrottle {
        capacity: 10.0,
        refill: 4.0,
        ..GraphThrottle::default()
    };
    let emu = Emulator::start(Config {
        graph_throttle: throttle,
        ..Config::default()
    })
    .unwrap();
    let mut reqs: Vec<Value> = (0..12).map(|i| get(&i.to_string(), &[])).collect();
    // Outlook counts its own way: a mailbox's requests take no units.
    reqs.extend((0..3).map(|i| json!({"id": format!("mail{i}"), "method": "GET", "url": format!("/users/{}/events", user_id(i))})));
    let (_, b) = batch(&emu, &json!({"requests": reqs})).await;
    let rs = b["responses"].as_array().unwrap();
    let throttled: Vec<&Value> = rs.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(throttled.len(), 2, "10 units for 12 reads");
    for r in rs {
        let (mail, ok) = (
            r["id"].as_str().unwrap().starts_with("mail"),
            r["status"] == 200,
        );
        let unit = r["headers"]["x-ms-resource-unit"].as_str();
        assert_eq!(mail, r["status"] == 200 && unit.is_none(), "{r}");
        if ok && !mail {
            assert_eq!(unit, Some("1"), "what a read cost: {r}");
        }
    }
    let wait = throttled[0]["headers"]["Retry-After"].as_str().unwrap();
    assert!(
        wait.contains('.') && wait.parse::<f64>().unwrap() > 0.0,
        "{wait}"
    );
    let used: Vec<f64> = rs
        .iter()
        .filter_map(|r| r["headers"]["x-ms-throttle-limit-percentage"].as_str())
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(!used.is_empty(), "above 0.8 of the limit it is announced");
    assert!(
        used.iter().all(|u| (0.8..=1.8).contains(u)),
        "as Graph sends it, a fraction from 0.8 to 1.8: {used:?}"
    );
}

#[tokio::test]
async fn direct_calls_and_binary_bodies() {
    let emu = Emulator::start(Config::default()).unwrap();
    let http = Client::new();
    let r = http
        .get(format!(
            "{}/v1.0/users/{}/photo/$value",
            emu.url(),
            user_id(1)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(&r.bytes().await.unwrap()[..2], &[0xFF, 0xD8]);
    let photo = "AAEC/w=="; // bytes 0, 1, 2, 255
    let reqs = json!({"requests": [
        {"id": "put", "method": "PUT", "url": format!("/users/{}/photo/$value", user_id(2)), "headers": {"Content-Type": "image/jpeg"}, "body": photo},
        {"id": "get", "method": "GET", "url": format!("/users/{}/photo/$value", user_id(2)), "dependsOn": ["put"]},
    ]});
    let (_, b) = batch(&emu, &reqs).await;
    let got = b["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "get")
        .unwrap()
        .clone();
    assert_eq!(
        (
            got["body"].as_str(),
            got["headers"]["Content-Type"].as_str()
        ),
        (Some(photo), Some("image/jpeg"))
    );
    let beta = http
        .get(format!("{}/beta/users?$top=1", emu.url()))
        .send()
        .await
        .unwrap();
    let v: Value = beta.json().await.unwrap();
    assert!(v["@odata.nextLink"]
        .as_str()
        .unwrap()
        .contains("/beta/users?$top=1&$skiptoken=1"));
}
