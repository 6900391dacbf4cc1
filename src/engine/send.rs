//! Sending one batch: the token, the POST, polling an asynchronous answer, one
//! token renewal after a 401, and turning what came back into a [`Reply`] the
//! run loop can classify.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::auth::{AuthError, TokenSource};
use crate::clock::Clock;
use crate::decision::{on_unauthorized, poll_again, Unauthorized, MAX_POLL_WAIT};
use crate::dialect::Api;
use crate::dialect::{self, ItemAnswer, Single};
use crate::journal::Journal;
use crate::options::Options;
use crate::result::codes;
use crate::retry::{is_retryable_status, retry_after};
use crate::secret::Secret;
use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError};

/// Wait between polls when the service names none.
const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(1);

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
    /// No usable token: nothing was sent.
    Auth(AuthError),
    /// The answer pointed somewhere AzBatch will not go with the token.
    Refused {
        /// The error code of the refusal.
        code: &'static str,
        /// The service had accepted the batch, so its items may run.
        may_have_run: bool,
        /// What was refused, and where it pointed.
        why: String,
    },
    /// The service rejected the token (401) and a fresh one was fetched: the
    /// items may be sent once more.
    TokenRenewed { body: Value },
}

impl Reply {
    /// What kind of reply it is, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Reply::Items(_) => "items",
            Reply::Envelope { .. } => "envelope error",
            Reply::NotSent(_) => "not sent",
            Reply::MaybeSent(_) => "lost",
            Reply::Auth(_) => "no token",
            Reply::Refused { .. } => "refused",
            Reply::TokenRenewed { .. } => "token renewed",
        }
    }
}

/// What every batch of a run shares.
pub(crate) struct Ctx {
    pub options: Arc<Options>,
    pub transport: Arc<dyn Transport>,
    pub auth: Option<Arc<TokenSource>>,
    pub clock: Clock,
    /// Where sends and final results are recorded, if anywhere.
    pub journal: Option<Arc<Journal>>,
}

impl Ctx {
    /// Sends an HTTP request to the endpoint. This is the only place a token
    /// is attached, and it refuses any other origin.
    async fn http(
        &self,
        method: &'static str,
        url: Url,
        body: Option<Vec<u8>>,
        bearer: &Option<Secret>,
    ) -> Result<HttpResponse, TransportError> {
        let headers = match body {
            Some(_) => vec![("Content-Type".into(), "application/json".to_string())],
            None => vec![],
        };
        self.http_with(method, url, headers, body, bearer).await
    }

    /// [`Ctx::http`] with the request's own headers.
    async fn http_with(
        &self,
        method: &'static str,
        url: Url,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
        bearer: &Option<Secret>,
    ) -> Result<HttpResponse, TransportError> {
        if !self.options.is_same_origin(&url) {
            return Err(TransportError::MaybeSent(format!(
                "refusing to call {}: it is not the endpoint {}",
                url.origin().ascii_serialization(),
                self.options.endpoint.origin().ascii_serialization()
            )));
        }
        let send = self.transport.send(HttpRequest {
            headers,
            body,
            bearer: bearer.clone(),
            ..HttpRequest::new(method, url)
        });
        let limit = self.options.attempt_timeout;
        match tokio::time::timeout(limit, send).await {
            Ok(answer) => answer,
            Err(_) => Err(TransportError::MaybeSent(format!(
                "no answer within {} s (the attempt timeout)",
                limit.as_secs_f64()
            ))),
        }
    }

    /// POSTs one batch (to `version`'s endpoint, when it is not the run's
    /// Graph version) and, when the service answers asynchronously, polls it.
    pub async fn send_batch(&self, body: Vec<u8>, version: Option<&str>) -> Reply {
        let (bearer, generation) = match &self.auth {
            None => (None, 0),
            Some(a) => match a.token().await {
                Ok((t, g)) => (Some(t), g),
                Err(e) => return Reply::Auth(e),
            },
        };
        let reply = match self
            .http(
                "POST",
                self.options.batch_url_in(version),
                Some(body),
                &bearer,
            )
            .await
        {
            Err(TransportError::NotSent(e)) => Reply::NotSent(e),
            Err(TransportError::MaybeSent(e)) => Reply::MaybeSent(e),
            Err(TransportError::Tls(why)) => Reply::Refused {
                code: codes::TLS_FAILED,
                may_have_run: false,
                why,
            },
            Ok(r) if matches!(r.status, 201 | 202) && r.header("location").is_some() => {
                self.poll(r, &bearer).await
            }
            Ok(r) => final_answer(self.options.api, r),
        };
        match (reply, &self.auth) {
            (
                Reply::Envelope {
                    status: 401,
                    headers,
                    body,
                },
                Some(auth),
            ) => self.unauthorized(auth, generation, headers, body).await,
            (reply, _) => reply,
        }
    }

    /// The batch was answered 401.
    async fn unauthorized(
        &self,
        auth: &TokenSource,
        generation: u64,
        headers: Vec<(String, String)>,
        body: Value,
    ) -> Reply {
        match on_unauthorized(auth.can_refresh()) {
            // One fresh token for every batch that saw this one rejected.
            Unauthorized::Renew => match auth.refresh(generation).await {
                Ok(()) => Reply::TokenRenewed { body },
                Err(e) => Reply::Auth(e),
            },
            Unauthorized::CheckExpiry => match auth.token().await {
                Err(e) => Reply::Auth(e),
                Ok(_) => {
                    // A live token the service refuses will be refused again:
                    // the batches after this one are not sent.
                    let why = match crate::result::error_of(401, &body) {
                        Some(e) if e.code != codes::HTTP_ERROR => format!(
                            "the service refused the token earlier in this run (HTTP 401 {}: {})",
                            e.code, e.message
                        ),
                        _ => "the service refused the token earlier in this run (HTTP 401)".into(),
                    };
                    auth.refuse(&why).await;
                    Reply::Envelope {
                        status: 401,
                        headers,
                        body,
                    }
                }
            },
        }
    }

    /// Sends each item of a batch as a request of its own (the batch endpoint
    /// is refused here), all at once, and reads their answers as the batch
    /// answer would have carried them. An item whose request failed is left
    /// out of the answer, so it is handled as an item the answer lost.
    pub async fn send_each(&self, singles: Vec<Single>) -> Reply {
        let bearer = match &self.auth {
            None => None,
            Some(a) => match a.token().await {
                Ok((t, _)) => Some(t),
                Err(e) => return Reply::Auth(e),
            },
        };
        let api = self.options.api;
        let sends = singles.into_iter().map(|one| {
            let bearer = bearer.clone();
            async move {
                let url = match self.single_url(&one.url) {
                    Ok(u) => u,
                    Err(e) => return Err(TransportError::NotSent(e)),
                };
                let answer = self
                    .http_with(one.method, url, one.headers, one.body, &bearer)
                    .await?;
                Ok(dialect::single_answer(
                    api,
                    &one.name,
                    answer.status,
                    &answer.headers,
                    &answer.body,
                ))
            }
        });
        let results = futures::future::join_all(sends).await;
        if let Some(Err(TransportError::Tls(why))) = results.first() {
            return Reply::Refused {
                code: codes::TLS_FAILED,
                may_have_run: false,
                why: why.clone(),
            };
        }
        if results
            .iter()
            .all(|r| matches!(r, Err(TransportError::NotSent(_))))
        {
            if let Some(Err(e)) = results.into_iter().next() {
                return Reply::NotSent(e.message().to_string());
            }
            return Reply::Items(vec![]);
        }
        Reply::Items(results.into_iter().filter_map(Result::ok).collect())
    }

    /// The URL of an item sent on its own: the run's root and its path (or,
    /// in another Graph version, that version's root).
    fn single_url(&self, relative: &str) -> Result<Url, String> {
        let version = dialect::batch_version(self.options.api, relative);
        let path = match version {
            Some(_) => dialect::graph::under_its_version(relative),
            None => relative,
        };
        let text = format!(
            "{}{}{path}",
            self.options.endpoint.origin().ascii_serialization(),
            self.options.url_root_in(version)
        );
        Url::parse(&text).map_err(|e| format!("\"{text}\" is not a URL: {e}"))
    }

    /// Polls the `Location` of an accepted batch until its final answer.
    async fn poll(&self, accepted: HttpResponse, bearer: &Option<Secret>) -> Reply {
        let location = accepted.header("location").unwrap_or_default();
        let url = match self.options.endpoint.join(&location) {
            Ok(u) => u,
            Err(e) => {
                return Reply::MaybeSent(format!(
                    "the batch's Location \"{location}\" is not a URL: {e}"
                ))
            }
        };
        if !self.options.is_same_origin(&url) {
            return Reply::Refused {
                code: codes::FOREIGN_HOST,
                may_have_run: true,
                why: format!(
                    "the service accepted the batch (HTTP {}) but its Location points to {}, not the endpoint {}; AzBatch does not send the token there, so the batch's answer is out of reach",
                    accepted.status,
                    url.origin().ascii_serialization(),
                    self.options.endpoint.origin().ascii_serialization()
                ),
            };
        }
        let mut wait = self.poll_wait(&accepted);
        let mut failures = 0;
        loop {
            tokio::time::sleep(wait).await;
            let (failure, asked) = match self.http("GET", url.clone(), None, bearer).await {
                Ok(r) if matches!(r.status, 201 | 202) => {
                    wait = self.poll_wait(&r);
                    continue;
                }
                Ok(r) if is_retryable_status(r.status) => (
                    format!("polling the batch answered HTTP {}", r.status),
                    retry_after(|k| r.header(k), self.clock.now()),
                ),
                Ok(r) if (200..300).contains(&r.status) => {
                    return final_answer(self.options.api, r)
                }
                Ok(r) if (300..400).contains(&r.status) => {
                    return redirected(&r, "polling the batch", true)
                }
                Ok(r) => {
                    return Reply::MaybeSent(format!(
                        "polling the batch answered HTTP {}",
                        r.status
                    ))
                }
                Err(
                    TransportError::NotSent(e)
                    | TransportError::MaybeSent(e)
                    | TransportError::Tls(e),
                ) => (format!("polling the batch failed: {e}"), None),
            };
            failures += 1;
            let o = &self.options;
            match poll_again(failures, asked, o.max_attempts, &o.backoff) {
                Some(w) => wait = w,
                None => return Reply::MaybeSent(failure),
            }
        }
    }

    fn poll_wait(&self, r: &HttpResponse) -> Duration {
        retry_after(|k| r.header(k), self.clock.now())
            .unwrap_or(DEFAULT_POLL_WAIT)
            .min(MAX_POLL_WAIT)
    }
}

/// A redirect: never followed (the token would go with it).
fn redirected(r: &HttpResponse, what: &str, may_have_run: bool) -> Reply {
    let to = r
        .header("location")
        .unwrap_or_else(|| "nowhere (no Location header)".into());
    Reply::Refused {
        code: codes::REDIRECTED,
        may_have_run,
        why: format!(
            "{what} was answered HTTP {} pointing to {to}; AzBatch does not follow redirects (the token would go with it): check the endpoint",
            r.status
        ),
    }
}

/// A final (non-202) answer to a batch request.
fn final_answer(api: Api, r: HttpResponse) -> Reply {
    if (200..300).contains(&r.status) {
        return match dialect::decode(api, &r.body) {
            Ok(items) => Reply::Items(items),
            Err(e) => Reply::MaybeSent(e),
        };
    }
    if (300..400).contains(&r.status) {
        return redirected(&r, "the batch request", false);
    }
    let body = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.body).into_owned()));
    Reply::Envelope {
        status: r.status,
        headers: r.headers,
        body,
    }
}
