//! Graph's JSON batch envelope: `POST {graph}/{v1.0|beta}/$batch` with
//! `{"requests":[{"id","method","url","headers","body"}]}`, answered
//! with `{"responses":[{"id","status","headers","body"}]}` in any order. Bodies
//! that are not JSON travel as base64 strings, both ways.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ItemAnswer, Outgoing};

#[derive(Serialize)]
struct Envelope<'a> {
    requests: Vec<Item<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    id: &'a str,
    method: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Map::is_empty")]
    headers: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a Value>,
}

/// The JSON body of a batch request.
pub fn encode(items: &[Outgoing<'_>]) -> Vec<u8> {
    let env = Envelope {
        requests: items
            .iter()
            .map(|o| Item {
                id: o.name,
                method: &o.request.method,
                url: o.url,
                headers: o
                    .request
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
                body: o.request.body.as_ref(),
            })
            .collect(),
    };
    serde_json::to_vec(&env).expect("a batch envelope always serializes")
}

#[derive(Deserialize)]
struct Answer {
    responses: Vec<AnswerItem>,
}

#[derive(Deserialize)]
struct AnswerItem {
    id: Option<String>,
    status: u16,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    body: Value,
}

/// Whether a Content-Type is JSON (Graph sends other bodies as base64).
pub fn is_json_type(content_type: &str) -> bool {
    let t = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    t == "application/json" || t.ends_with("+json")
}

/// Reads a batch answer. Items without an id cannot be matched and are dropped
/// here; the engine notices the request they belonged to is unanswered.
pub fn decode(body: &[u8]) -> Result<Vec<ItemAnswer>, String> {
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| format!("batch answer is not valid: {e}"))?;
    Ok(a.responses
        .into_iter()
        .filter_map(|i| {
            let headers = i.headers.unwrap_or_default();
            let content_type = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .and_then(|(_, v)| v.as_str());
            let base64 = i.body.is_string() && content_type.is_some_and(|t| !is_json_type(t));
            Some(ItemAnswer {
                name: i.id?,
                status: i.status,
                headers,
                body: i.body,
                base64,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Request;
    use serde_json::json;

    #[test]
    fn encodes_graph_items() {
        let mut r = Request::get("u", "/users/1");
        r.method = "PATCH".into();
        r.body = Some(json!({"city": "Oslo"}));
        r.headers = vec![("Content-Type".into(), "application/json".into())];
        let plain = Request::get("g", "/me");
        let body = encode(&[
            Outgoing {
                name: "3",
                request: &r,
                url: &r.url,
            },
            Outgoing {
                name: "4",
                request: &plain,
                url: &plain.url,
            },
        ]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"requests":[
                {"id":"3","method":"PATCH","url":"/users/1","headers":{"Content-Type":"application/json"},"body":{"city":"Oslo"}},
                {"id":"4","method":"GET","url":"/me"}
            ]})
        );
    }

    #[test]
    fn decodes_answers_and_spots_base64() {
        let body = json!({"responses":[
            {"id":"2","status":200,"headers":{"Content-Type":"image/jpeg"},"body":"/9j/4AAQ"},
            {"id":"1","status":201,"headers":{"content-type":"application/json; odata.metadata=minimal"},"body":{"id":"x"}},
            {"id":"3","status":204,"body":null}
        ]});
        let got = decode(body.to_string().as_bytes()).unwrap();
        assert_eq!((got[0].name.as_str(), got[0].base64), ("2", true));
        assert_eq!((got[1].status, got[1].base64), (201, false));
        assert!(!got[2].base64);
        assert!(decode(b"{\"value\":[]}").is_err());
    }
}
