//! Final results: exactly one per request, whatever happened to it.

use serde::Serialize;
use serde_json::{Map, Value};

/// Error codes AzBatch itself gives to results that have no HTTP answer (status 0)
/// or whose answer AzBatch could not use.
pub mod codes {
    /// The run was cancelled before this request finished.
    pub const CANCELLED: &str = "Cancelled";
    /// The batch may have reached the service but its answer was lost; the
    /// request was not idempotent so it was not sent again.
    pub const OUTCOME_UNKNOWN: &str = "OutcomeUnknown";
    /// The run's deadline passed before this request finished.
    pub const TIMEOUT: &str = "Timeout";
    /// The service could not be reached (nothing was sent), attempts exhausted.
    pub const CONNECTION_FAILED: &str = "ConnectionFailed";
    /// TLS with the endpoint failed (its certificate was not trusted, or no
    /// handshake could be made): nothing was sent, and nothing is sent again.
    pub const TLS_FAILED: &str = "TlsFailed";
    /// The batch's answer could not be read, attempts exhausted.
    pub const INVALID_RESPONSE: &str = "InvalidResponse";
    /// The answer was an HTTP error without an error object of its own.
    pub const HTTP_ERROR: &str = "HttpError";
    /// A request made from a subscription template was refused (for example
    /// its id is taken); it was not sent.
    pub const INVALID_REQUEST: &str = "InvalidRequest";
    /// AzBatch failed internally; the request may or may not have run.
    pub const INTERNAL: &str = "InternalError";
    /// No token could be had (the message names the source and what to do).
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    /// The caller's static token expired during the run; the rest was not sent.
    pub const TOKEN_EXPIRED: &str = "TokenExpired";
    /// A request it depends on failed, so it was not sent (status 424).
    pub const FAILED_DEPENDENCY: &str = "FailedDependency";
    /// A `{{id.body.path}}` reference had no value (or its value made the url
    /// invalid), so the request was not sent.
    pub const REFERENCE_NOT_FOUND: &str = "ReferenceNotFound";
    /// The batch request was answered with a redirect (3xx); AzBatch never
    /// follows one with the token. The message names where it pointed.
    pub const REDIRECTED: &str = "Redirected";
    /// The service pointed AzBatch at a host other than the endpoint (a
    /// batch's `Location`); it was not called, the token stays home.
    pub const FOREIGN_HOST: &str = "ForeignHost";
    /// The pages fetched so far are in the body, but the listing goes on at
    /// a `nextLink` AzBatch would not follow (another host).
    pub const INCOMPLETE_LISTING: &str = "IncompleteListing";
    /// The journal could not be written, so the request was not sent.
    pub const JOURNAL_FAILED: &str = "JournalFailed";
}

/// `{"code","message"}`, the error part of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    /// A stable code: the service's own (`ResourceGroupNotFound`) or one of [`codes`].
    pub code: String,
    /// What happened, for people.
    pub message: String,
    /// Which of the service's limits throttled the request, and why, where
    /// it said so (Graph).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Box<Throttle>>,
}

/// What a throttled answer said of the limit that throttled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Throttle {
    /// Graph's `x-ms-throttle-scope`: `Tenant_Application/Write/{app}/{tenant}`.
    #[serde(rename = "throttleScope", skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Graph's `x-ms-throttle-information`: `WriteLimitExceeded`.
    #[serde(rename = "throttleReason", skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ErrorInfo {
    /// An error with the given code and message.
    pub fn new(code: &str, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo {
            code: code.to_string(),
            message: message.into(),
            throttle: None,
        }
    }
}

/// The final result of one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemResult {
    /// The request's id.
    pub id: String,
    /// HTTP status of the final answer; 0 when there was none.
    pub status: u16,
    /// The request's method, so that a result reads on its own (absent when
    /// the request never reached the run, e.g. refused input).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// The request's URL as sent (path and query; for Graph, under the version).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Headers of the final answer.
    pub headers: Map<String, Value>,
    /// The answer's JSON (pages merged), a string when it was not JSON, or null.
    pub body: Value,
    /// How many times the request was sent (all pages together).
    pub attempts: u32,
    /// How many pages were fetched (1 without paging; 0 when nothing came back).
    pub pages: u32,
    /// Null on success.
    pub error: Option<ErrorInfo>,
    /// `"base64"` when `body` is base64 of a non-JSON answer (Graph), else absent.
    #[serde(rename = "bodyEncoding", skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<&'static str>,
    /// What AzBatch made of the answer, when it is not the plain answer (a
    /// resent DELETE that found the resource gone); else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The subscription a `forEachSubscription` request went to, as its
    /// fields `subscriptionId`, `subscriptionName`, `tenantId`; else absent.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<Box<SubscriptionInfo>>,
    /// Position of the request in the order added.
    #[serde(skip)]
    pub index: usize,
}

impl ItemResult {
    /// Whether the request succeeded (2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status) && self.error.is_none()
    }

    /// A result for a request that got no usable HTTP answer.
    pub fn no_answer(index: usize, id: &str, attempts: u32, error: ErrorInfo) -> ItemResult {
        ItemResult {
            id: id.to_string(),
            method: String::new(),
            url: String::new(),
            status: 0,
            headers: Map::new(),
            body: Value::Null,
            attempts,
            pages: 0,
            error: Some(error),
            body_encoding: None,
            note: None,
            subscription: None,
            index,
        }
    }
}

/// Which subscription a fanned-out request went to, as its listing named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionInfo {
    /// Its id (a GUID).
    pub subscription_id: String,
    /// Its display name.
    pub subscription_name: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
}

/// The error of an HTTP answer: the service's `{"error":{"code","message"}}` when
/// it sent one, else a generic one for non-2xx statuses, else none.
pub fn error_of(status: u16, body: &Value) -> Option<ErrorInfo> {
    if (200..400).contains(&status) {
        return None;
    }
    let e = body.get("error").unwrap_or(body);
    let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    Some(match (text("code"), text("message")) {
        (Some(code), message) => ErrorInfo::new(&code, message.unwrap_or_default()),
        _ => ErrorInfo::new(codes::HTTP_ERROR, format!("HTTP {status}")),
    })
}

/// Totals of a finished run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Requests in the run.
    pub total: u64,
    /// Results with a 2xx status.
    pub succeeded: u64,
    /// All other results.
    pub failed: u64,
    /// Sends beyond each item's first.
    pub retries: u64,
    /// Results replayed from the journal, not sent in this run.
    pub replayed: u64,
    /// Batch requests sent.
    pub batches: u64,
    /// Wall time of the run.
    pub elapsed_ms: u64,
    /// `"single"` when the batch endpoint was refused and the requests went
    /// one by one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_comes_from_cloud_error_or_status() {
        assert_eq!(error_of(200, &json!({"error":{"code":"X"}})), None);
        let e = error_of(
            404,
            &json!({"error":{"code":"ResourceGroupNotFound","message":"gone"}}),
        )
        .unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("ResourceGroupNotFound", "gone")
        );
        let e = error_of(502, &json!("bad gateway")).unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("HttpError", "HTTP 502")
        );
    }
}
