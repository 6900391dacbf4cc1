//! Sending one batch: the POST, polling an asynchronous answer, and turning what
//! came back into a [`Reply`] the run loop can classify.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use url::Url;

use crate::options::Api;
use crate::options::Options;
use crate::retry::{is_retryable_status, retry_after};
use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError};
use crate::wire::{self, ItemAnswer};

/// Wait between polls when the service names none.
const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(1);
/// Longest wait between polls, whatever the service asks.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

/// What came of sending one batch.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The final answer, one entry per item the service answered.
    Items(Vec<ItemAnswer>),
    /// The batch request itself was answered with an error status.
    Envelope {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    },
    /// Nothing reached the service.
    NotSent(String),
    /// The batch may have reached the service, but no usable answer came back.
    MaybeSent(String),
}

pub(crate) struct Ctx {
    pub options: Arc<Options>,
    pub transport: Arc<dyn Transport>,
}

impl Ctx {
    /// Sends an HTTP request to the endpoint, with the token. This is the only
    /// place the token is attached, and it refuses any other origin.
    async fn http(
        &self,
        method: &'static str,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, TransportError> {
        if !self.options.is_same_origin(&url) {
            return Err(TransportError::MaybeSent(format!(
                "refusing to call {}: it is not the endpoint {}",
                url.origin().ascii_serialization(),
                self.options.endpoint.origin().ascii_serialization()
            )));
        }
        let bearer = self.options.token.clone();
        self.transport
            .send(HttpRequest {
                method,
                url,
                body,
                bearer,
            })
            .await
    }

    /// POSTs one batch and, when the service answers asynchronously, polls it.
    pub async fn send_batch(&self, body: Vec<u8>) -> Reply {
        match self
            .http("POST", self.options.batch_url(), Some(body))
            .await
        {
            Err(TransportError::NotSent(e)) => Reply::NotSent(e),
            Err(TransportError::MaybeSent(e)) => Reply::MaybeSent(e),
            Ok(r) if matches!(r.status, 201 | 202) && r.header("location").is_some() => {
                self.poll(r).await
            }
            Ok(r) => final_answer(self.options.api, r),
        }
    }

    /// Polls the `Location` of an accepted batch until its final answer.
    async fn poll(&self, accepted: HttpResponse) -> Reply {
        let location = accepted.header("location").unwrap_or_default();
        let url = match self.options.endpoint.join(&location) {
            Ok(u) => u,
            Err(e) => {
                return Reply::MaybeSent(format!(
                    "the batch's Location \"{location}\" is not a URL: {e}"
                ))
            }
        };
        let mut wait = poll_wait(&accepted);
        let mut failures = 0;
        loop {
            tokio::time::sleep(wait).await;
            let failure = match self.http("GET", url.clone(), None).await {
                Ok(r) if matches!(r.status, 201 | 202) => {
                    wait = poll_wait(&r);
                    continue;
                }
                Ok(r) if is_retryable_status(r.status) => {
                    let w = retry_after(|k| r.header(k), SystemTime::now());
                    (format!("polling the batch answered HTTP {}", r.status), w)
                }
                Ok(r) if (200..300).contains(&r.status) => {
                    return final_answer(self.options.api, r)
                }
                Ok(r) => {
                    return Reply::MaybeSent(format!(
                        "polling the batch answered HTTP {}",
                        r.status
                    ))
                }
                Err(TransportError::NotSent(e) | TransportError::MaybeSent(e)) => {
                    (format!("polling the batch failed: {e}"), None)
                }
            };
            failures += 1;
            if failures >= self.options.max_attempts {
                return Reply::MaybeSent(failure.0);
            }
            wait = failure
                .1
                .unwrap_or_else(|| self.options.backoff.delay(failures))
                .min(MAX_POLL_WAIT);
        }
    }
}

fn poll_wait(r: &HttpResponse) -> Duration {
    retry_after(|k| r.header(k), SystemTime::now())
        .unwrap_or(DEFAULT_POLL_WAIT)
        .min(MAX_POLL_WAIT)
}

/// A final (non-202) answer to a batch request.
fn final_answer(api: Api, r: HttpResponse) -> Reply {
    if (200..300).contains(&r.status) {
        return match wire::decode(api, &r.body) {
            Ok(items) => Reply::Items(items),
            Err(e) => Reply::MaybeSent(e),
        };
    }
    let body = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.body).into_owned()));
    Reply::Envelope {
        status: r.status,
        headers: r.headers,
        body,
    }
}
