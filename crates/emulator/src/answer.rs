//! What a handler answers, including the broken answers fault injection asks
//! for, and how each becomes an HTTP response.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

/// An answer of the emulator.
pub enum Answer {
    /// A JSON answer (null body: empty).
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    },
    /// Drop the connection without answering.
    Reset,
    /// Start a 200 JSON answer and cut it off halfway.
    Truncated(Value),
    /// An HTML page (what a proxy or a broken gateway sends).
    Html(u16, &'static str),
}

impl Answer {
    /// A JSON answer without extra headers.
    pub fn json(status: u16, body: Value) -> Answer {
        Answer::Json {
            status,
            headers: vec![],
            body,
        }
    }

    /// ARM's `{"error":{"code","message"}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer::json(
            status,
            serde_json::json!({"error": {"code": code, "message": message}}),
        )
    }

    /// The status this answer starts with (0 for a reset).
    pub fn status(&self) -> u16 {
        match self {
            Answer::Json { status, .. } => *status,
            Answer::Reset => 0,
            Answer::Truncated(_) => 200,
            Answer::Html(status, _) => *status,
        }
    }
}

fn broken(e: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, e.to_string())
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Json {
                status,
                headers,
                body,
            } => {
                let bytes = if body.is_null() {
                    Vec::new()
                } else {
                    serde_json::to_vec(&body).unwrap()
                };
                let mut r = Response::new(Body::from(bytes));
                *r.status_mut() =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if !body.is_null() {
                    r.headers_mut().insert(
                        "content-type",
                        HeaderValue::from_static("application/json; charset=utf-8"),
                    );
                }
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                        r.headers_mut().append(k, v);
                    }
                }
                r
            }
            // A body that fails before its first byte makes the server drop the
            // connection: the client sees it closed with no (complete) answer.
            Answer::Reset => {
                let s = futures::stream::once(async { Err::<Bytes, _>(broken("injected reset")) });
                Response::new(Body::from_stream(s))
            }
            Answer::Html(status, page) => {
                let mut r = Response::new(Body::from(page));
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_static("text/html"));
                r
            }
            Answer::Truncated(body) => {
                let bytes = serde_json::to_vec(&body).unwrap();
                let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
                let s = futures::stream::iter(vec![Ok(half), Err(broken("injected truncation"))]);
                let mut r = Response::new(Body::from_stream(s));
                r.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_static("application/json; charset=utf-8"),
                );
                r.headers_mut()
                    .insert("content-length", HeaderValue::from(bytes.len()));
                r
            }
        }
    }
}
