//! ARM's batch envelope: `POST {arm}/batch?api-version=2020-06-01` with
//! `{"requests":[{"httpMethod","name","url","content"}]}`, answered with
//! `{"responses":[{"name","httpStatusCode","headers","content","contentLength"}]}`
//! (a polled answer of an asynchronous batch may say `value` instead of `responses`).

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
    http_method: &'a str,
    name: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_header_details: Option<&'a Value>,
}

/// The JSON body of a batch request.
pub fn encode(items: &[Outgoing<'_>]) -> Vec<u8> {
    let env = Envelope {
        requests: items
            .iter()
            .map(|o| Item {
                http_method: &o.request.method,
                name: o.name,
                url: o.url,
                content: o.request.body.as_ref(),
                request_header_details: o.request.header_details.as_ref(),
            })
            .collect(),
    };
    serde_json::to_vec(&env).expect("a batch envelope always serializes")
}

#[derive(Deserialize)]
struct Answer {
    responses: Option<Vec<AnswerItem>>,
    value: Option<Vec<AnswerItem>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerItem {
    name: Option<String>,
    http_status_code: u16,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    content: Value,
}

/// Reads a final batch answer. Items without a name cannot be matched and are
/// dropped here; the engine notices the request they belonged to is unanswered.
pub fn decode(body: &[u8]) -> Result<Vec<ItemAnswer>, String> {
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| format!("batch answer is not valid: {e}"))?;
    let items = a
        .responses
        .or(a.value)
        .ok_or_else(|| "batch answer has neither \"responses\" nor \"value\"".to_string())?;
    Ok(items
        .into_iter()
        .filter_map(|i| {
            Some(ItemAnswer {
                name: i.name?,
                status: i.http_status_code,
                headers: i.headers.unwrap_or_default(),
                body: i.content,
                base64: false,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_arm_items() {
        let mut r = crate::request::Request::get(
            "rg",
            "/subscriptions/s/resourcegroups/rg?api-version=2021-04-01",
        );
        r.method = "PUT".into();
        r.body = Some(json!({"location":"westeurope"}));
        r.header_details = Some(json!({"commandName":"test"}));
        let body = encode(&[Outgoing {
            name: "7",
            request: &r,
            url: &r.url,
        }]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"requests":[{"httpMethod":"PUT","name":"7","url":r.url,
                "content":{"location":"westeurope"},"requestHeaderDetails":{"commandName":"test"}}]})
        );
    }

    #[test]
    fn decodes_responses_or_value() {
        for key in ["responses", "value"] {
            let body = json!({key: [
                {"name":"b","httpStatusCode":404,"headers":{"x":"1"},"content":{"error":{"code":"NotFound"}},"contentLength":30},
                {"name":"a","httpStatusCode":200,"content":{"ok":true}}
            ]});
            let got = decode(body.to_string().as_bytes()).unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!((got[0].name.as_str(), got[0].status), ("b", 404));
            assert_eq!(got[0].header("X").as_deref(), Some("1"));
            assert_eq!(got[1].body, json!({"ok":true}));
        }
        assert!(decode(b"{}").unwrap_err().contains("neither"));
        assert!(decode(b"{\"responses\":[").is_err());
    }
}
