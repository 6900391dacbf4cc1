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

/// An object of `fields`, moved in. `json!` copies a value it is given by
/// reference (it serializes it into a new one): for an array of a batch's
/// answers that copy was the emulator's largest cost.
pub fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// The length of `v` as JSON text, counted without writing it.
pub fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter cannot fail, and a Value always serializes.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// The `{"error":{"code","message"}}` body both ARM and Graph use.
pub fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"code": code, "message": message}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_len_is_the_length_of_the_text() {
        let v = json!({"name": "ä \"quoted\" \u{1}", "n": [1, 2.5, null, true], "o": {}});
        assert_eq!(json_len(&v), v.to_string().len());
    }

    #[test]
    fn object_moves_its_fields_in() {
        let v = object([("a", json!([1, 2])), ("b", Value::Null)]);
        assert_eq!(v, json!({"a": [1, 2], "b": null}));
    }
}
