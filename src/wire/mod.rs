//! The batch envelopes of each API, exactly as they travel on the wire.

pub mod arm;
pub mod graph;

use serde_json::{Map, Value};

use crate::api::Api;
use crate::request::Request;

/// The JSON body of one batch request in `api`'s dialect.
pub fn encode(api: Api, items: &[Outgoing<'_>]) -> Vec<u8> {
    match api {
        Api::Arm => arm::encode(items),
        Api::Graph => graph::encode(items),
    }
}

/// Reads a final batch answer in `api`'s dialect.
pub fn decode(api: Api, body: &[u8]) -> Result<Vec<ItemAnswer>, String> {
    match api {
        Api::Arm => arm::decode(body),
        Api::Graph => graph::decode(body),
    }
}

/// One item's answer inside a batch answer, whatever the dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemAnswer {
    /// The wire name (ARM `name`) the answer belongs to.
    pub name: String,
    /// The item's HTTP status.
    pub status: u16,
    /// The item's headers.
    pub headers: Map<String, Value>,
    /// The item's content: JSON, a string, or null.
    pub body: Value,
    /// `body` is base64 of a non-JSON answer (Graph).
    pub base64: bool,
}

/// What one batch item carries: the request, its wire name, and the URL of the
/// page to fetch (the request's own or a `nextLink`). Dependencies are ordered
/// on the client, so no item carries Graph's server-side `dependsOn`.
pub struct Outgoing<'a> {
    /// Unique within the batch; answers are matched by it.
    pub name: &'a str,
    /// The request.
    pub request: &'a Request,
    /// Path and query to call.
    pub url: &'a str,
}

impl ItemAnswer {
    /// A header of this answer, looked up case-insensitively.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    }
}
