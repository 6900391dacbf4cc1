//! What a model answers to one operation, inside a batch or called directly.

use serde_json::{json, Value};

/// An answer of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body (null for none).
    pub body: Value,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// A non-JSON body and its Content-Type (Graph's photos); `body` is then null.
    pub bytes: Option<(Vec<u8>, String)>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body,
            headers: vec![],
            bytes: None,
        }
    }

    /// An answer without a body.
    pub fn empty(status: u16) -> Reply {
        Reply::json(status, Value::Null)
    }
}

/// The `{"error":{"code","message"}}` body both ARM and Graph use.
pub fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"code": code, "message": message}}))
}
