//! The batch envelopes of each API, exactly as they travel on the wire.

pub mod arm;

use serde_json::{Map, Value};

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
