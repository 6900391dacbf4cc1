//! `{{id.body.path}}` references: found, refused, or filled from an answer,
//! never a panic.
#![no_main]
use azbatch::reference::{self, Answer};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map};

fuzz_target!(|text: &str| {
    let _ = reference::find(text);
    let body = json!({"id": "u1", "value": [{"id": "a", "n": 1}], "nested": {"x": [true, null]}});
    let headers = Map::new();
    let answer_of = |id: &str| {
        (id == "a").then_some(Answer {
            status: 201,
            headers: &headers,
            body: &body,
        })
    };
    let _ = reference::fill_text(text, &answer_of);
    if let Ok(v) = serde_json::from_str(text) {
        let _ = reference::find_in_json(&v);
        let _ = reference::fill_json(&v, &answer_of);
    }
});
