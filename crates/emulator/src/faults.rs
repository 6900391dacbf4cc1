//! Seeded fault injection shared by both batch endpoints: what happens to a
//! whole batch before it runs, and which items fail without running.

use serde_json::json;

use crate::answer::Answer;
use crate::service::Service;

/// Rolls the batch-level dice: a reset, an envelope 429/500/503, or a slow
/// start. Returns the answer to give instead of running the batch, if any.
pub async fn envelope(svc: &Service) -> Option<Answer> {
    let f = svc.config.faults;
    let retry_after = || vec![("Retry-After".to_string(), f.retry_after_secs.to_string())];
    if svc.roll(f.reset) {
        return Some(Answer::Reset);
    }
    if svc.roll(f.envelope_429) {
        let body = json!({"error": {"code": "TooManyRequests", "message": "The batch request was throttled."}});
        return Some(Answer::Json {
            status: 429,
            headers: retry_after(),
            body,
        });
    }
    if svc.roll(f.envelope_500) {
        return Some(Answer::error(
            500,
            "InternalServerError",
            "Encountered an internal server error.",
        ));
    }
    if svc.roll(f.envelope_503) {
        let body = json!({"error": {"code": "ServiceUnavailable", "message": "The service is unavailable."}});
        return Some(Answer::Json {
            status: 503,
            headers: retry_after(),
            body,
        });
    }
    if svc.roll(f.slow_batch) {
        tokio::time::sleep(f.slow_delay).await;
    }
    None
}

/// An item answered with an error without running.
#[derive(Debug, Clone, Copy)]
pub struct ItemFault {
    /// 429, 500 or 503.
    pub status: u16,
    /// The error code of its body.
    pub code: &'static str,
}

impl ItemFault {
    /// Its headers: `Retry-After` for 429 and 503, and a marker.
    pub fn headers(&self, svc: &Service) -> Vec<(String, String)> {
        let mut h = vec![("x-ms-failure-cause".to_string(), "injected".to_string())];
        if self.status != 500 {
            h.push((
                "Retry-After".into(),
                svc.config.faults.retry_after_secs.to_string(),
            ));
        }
        h
    }

    /// Its body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": "Injected by the emulator."}})
    }
}

/// Rolls each of `n` items' dice in order, before any runs, so a seed replays
/// the same faults whatever order concurrent items finish in.
pub fn items(svc: &Service, n: usize) -> Vec<Option<ItemFault>> {
    let f = svc.config.faults;
    (0..n)
        .map(|_| {
            [
                (f.item_429, 429, "TooManyRequests"),
                (f.item_500, 500, "InternalServerError"),
                (f.item_503, 503, "ServiceUnavailable"),
            ]
            .into_iter()
            .find(|(rate, _, _)| svc.roll(*rate))
            .map(|(_, status, code)| ItemFault { status, code })
        })
        .collect()
}
