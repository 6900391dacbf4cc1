//! Seeded fault injection shared by both batch endpoints: what happens to a
//! whole batch before it runs, which items fail without running, and how the
//! answer of a batch that ran can be broken. Every fault injected is counted
//! by kind ([`Service::faults_injected`]).

use serde_json::json;

use crate::answer::Answer;
use crate::service::Service;

/// Rolls the batch-level dice: a reset, an envelope 429/500/503, or a slow
/// start. Returns the answer to give instead of running the batch, if any.
pub async fn envelope(svc: &Service) -> Option<Answer> {
    let f = svc.config.faults;
    let retry_after = || vec![("Retry-After".to_string(), f.retry_after_secs.to_string())];
    if svc.in_outage() {
        svc.injected("outage");
        return Some(Answer::Reset);
    }
    if svc.inject("reset", f.reset) {
        return Some(Answer::Reset);
    }
    if svc.inject("envelope 413", f.envelope_413) {
        return Some(Answer::error(
            413,
            "RequestEntityTooLarge",
            "The request is larger than the service accepts.",
        ));
    }
    if svc.inject("redirect", f.redirect) {
        return Some(Answer::Json {
            status: 307,
            headers: vec![("Location".into(), "https://elsewhere.invalid/batch".into())],
            body: serde_json::Value::Null,
        });
    }
    if svc.inject("envelope 429", f.envelope_429) {
        let body = json!({"error": {"code": "TooManyRequests", "message": "The batch request was throttled."}});
        return Some(Answer::Json {
            status: 429,
            headers: retry_after(),
            body,
        });
    }
    if svc.inject("envelope 500", f.envelope_500) {
        return Some(Answer::error(
            500,
            "InternalServerError",
            "Encountered an internal server error.",
        ));
    }
    if svc.inject("envelope 503", f.envelope_503) {
        let body = json!({"error": {"code": "ServiceUnavailable", "message": "The service is unavailable."}});
        return Some(Answer::Json {
            status: 503,
            headers: retry_after(),
            body,
        });
    }
    if svc.inject("slow", f.slow_batch) {
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
                ("item 429", f.item_429, 429, "TooManyRequests"),
                ("item 500", f.item_500, 500, "InternalServerError"),
                ("item 503", f.item_503, 503, "ServiceUnavailable"),
            ]
            .into_iter()
            .find(|(kind, rate, _, _)| svc.inject(kind, *rate))
            .map(|(_, _, status, code)| ItemFault { status, code })
        })
        .collect()
}

/// The answer of a batch whose items ran, broken as the dice say: cut off,
/// an HTML page, one item named twice (once with another's answer), one left
/// out, or never sent at all. `name` is the key that names an item (`name`
/// for ARM, `id` for Graph).
pub async fn answer(svc: &Service, mut body: serde_json::Value, name: &str) -> Answer {
    let f = svc.config.faults;
    if svc.inject("truncated", f.truncate) {
        return Answer::Truncated(body);
    }
    if svc.inject("not JSON", f.garbage) {
        return Answer::Html(
            200,
            "<html><body>Service temporarily unavailable</body></html>",
        );
    }
    let n = body["responses"].as_array().map_or(0, Vec::len);
    if n >= 2 && svc.inject("name twice", f.duplicate_name) {
        let items = body["responses"].as_array_mut().expect("counted above");
        let (a, b) = (svc.pick(n), svc.pick(n));
        let b = if a == b { (a + 1) % n } else { b };
        let mut copy = items[b].clone();
        copy[name] = items[a][name].clone();
        items.push(copy);
    } else if n >= 1 && svc.inject("name missing", f.missing_name) {
        let at = svc.pick(n);
        body["responses"]
            .as_array_mut()
            .expect("counted above")
            .remove(at);
    }
    if svc.inject("hung", f.hang) {
        std::future::pending::<()>().await;
    }
    Answer::json(200, body)
}
