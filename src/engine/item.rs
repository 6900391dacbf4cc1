//! One request's state during a run: attempts, the page it is on, the pages
//! merged so far, and who waits for it. Once final, only how it ended stays
//! ([`Slot::Done`]): a long run holds what is still to do, not what is done.

use serde_json::{Map, Value};
use url::Url;

use super::scopes::Call;
use crate::dialect::Outgoing;
use crate::options::Options;
use crate::request::Request;
use crate::result::{error_of, ErrorInfo, ItemResult};

/// A request's place in a run.
pub(super) enum Slot {
    /// Not final yet.
    Live(Box<Item>),
    /// Final: whether it succeeded, and its status.
    Done { ok: bool, status: u16 },
}

pub(super) struct Item {
    pub request: Request,
    /// Its throttle scope.
    pub scope: String,
    /// Its operation, as a resource provider's own limits see it (ARM).
    pub operation: Option<String>,
    /// What it costs of its scope's bucket, where its API prices each call
    /// (SharePoint); none: the scope's cost of a read or a write.
    pub cost: Option<f64>,
    /// The subscription a fan-out sent it to, for its result.
    pub subscription: Option<Box<crate::result::SubscriptionInfo>>,
    /// The requests that wait for this one.
    pub dependents: Vec<usize>,
    /// How many of its dependencies have not succeeded yet.
    pub waiting: usize,
    /// Path and query of the `nextLink` page to fetch next; none while on
    /// the request's own URL.
    next_page: Option<String>,
    /// Sends of this request, all pages together.
    pub attempts: u32,
    /// Sends of the current page; the retry budget is per page.
    pub page_tries: u32,
    /// Pages received and merged so far.
    pages: u32,
    /// The merged body of the pages received so far.
    merged: Option<Value>,
    /// Sent once more after a 401, with a freshly fetched token.
    pub token_renewed: bool,
    /// Where it stood in its scope's bucket when it was last sent, read with its answer.
    pub sent_mark: Option<super::scopes::Mark>,
    /// In a batch on the wire now.
    pub on_wire: bool,
    /// When it was last sent: the limiter counts the service's spans by it.
    pub sent_at: Option<tokio::time::Instant>,
    /// An earlier send may have run (its answer was lost) and it is being
    /// sent again.
    pub maybe_ran: bool,
    /// Items in the batch it was last sent in.
    pub batch_items: usize,
    /// About how many bytes it adds to a batch request.
    pub size: usize,
    /// Its digest in the journal, when the run keeps one.
    pub digest: Option<String>,
}

impl Item {
    pub fn new(request: Request, scope: String) -> Item {
        Item {
            on_wire: false,
            sent_at: None,
            maybe_ran: false,
            batch_items: 0,
            size: request.wire_size(),
            digest: None,
            next_page: None,
            request,
            scope,
            operation: None,
            cost: None,
            subscription: None,
            dependents: vec![],
            waiting: 0,
            attempts: 0,
            page_tries: 0,
            pages: 0,
            merged: None,
            token_renewed: false,
            sent_mark: None,
        }
    }

    /// What it takes from its scope's bucket.
    pub fn call(&self) -> Call {
        Call {
            read: self.request.is_read(),
            cost: self.cost,
        }
    }

    /// Path and query to send now: the request's URL or the page it is on.
    /// This item as its next batch carries it, under wire name `name`.
    pub fn outgoing<'a>(&'a self, name: &'a str) -> Outgoing<'a> {
        let r = &self.request;
        Outgoing {
            name,
            method: &r.method,
            url: self.url(),
            headers: &r.headers,
            body: r.body.as_ref(),
            header_details: r.header_details.as_ref(),
        }
    }

    pub fn url(&self) -> &str {
        self.next_page.as_deref().unwrap_or(&self.request.url)
    }

    /// The next page to fetch, when `body` links to one: `Ok(None)` when it
    /// links to none, `Err(why)` when the link cannot be followed (another
    /// host: the token would go with it).
    pub fn next_link(&self, body: &Value, options: &Options) -> Result<Option<String>, String> {
        let key = options.api.next_link_key();
        let Some(link) = body.get(key).and_then(Value::as_str) else {
            return Ok(None);
        };
        let refused = |why: String| {
            format!(
                "the listing is incomplete: {} page(s) fetched, then its {key} {why}; the body holds the pages fetched and the link",
                self.pages + 1
            )
        };
        let url =
            Url::parse(link).map_err(|e| refused(format!("\"{link}\" is not a URL ({e})")))?;
        if !options.is_same_origin(&url) {
            return Err(refused(format!(
                "points to {}, not the endpoint {}: AzBatch does not send the token there",
                url.origin().ascii_serialization(),
                options.endpoint.origin().ascii_serialization()
            )));
        }
        options.relative_url(link).map(Some).map_err(refused)
    }

    /// Merges a page that links to another and moves on to `next`.
    pub fn add_page(&mut self, body: Value, next: String, link_key: &str) {
        self.merge(body, link_key);
        self.next_page = Some(next);
        self.page_tries = 0;
    }

    /// The last send was answered with a scheduled return (a 429 naming its
    /// Retry-After): it does not count against the attempts of this page.
    pub fn forgive_last_try(&mut self) {
        self.page_tries = self.page_tries.saturating_sub(1);
    }

    fn merge(&mut self, body: Value, link_key: &str) {
        self.pages += 1;
        match &mut self.merged {
            None => self.merged = Some(body),
            Some(merged) => {
                if let (Some(Value::Array(all)), Value::Object(mut page)) =
                    (merged.get_mut("value"), body)
                {
                    if let Some(Value::Array(more)) = page.remove("value") {
                        all.extend(more);
                    }
                    match page.remove(link_key) {
                        Some(link) => merged[link_key] = link,
                        None => {
                            if let Some(m) = merged.as_object_mut() {
                                m.remove(link_key);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The final result from an HTTP answer. A successful last page joins the
    /// pages before it; a failed page ends the request with that failure.
    pub fn finish_http(
        &mut self,
        status: u16,
        headers: Map<String, Value>,
        body: Value,
        base64: bool,
        link_key: &str,
    ) -> ItemResult {
        let ok = (200..300).contains(&status);
        let mut error = None;
        let body = if ok && !base64 {
            self.merge(body, link_key);
            self.merged.take().unwrap_or(Value::Null)
        } else if let (false, Some(read)) = (ok, self.merged.take()) {
            // A later page failed: never a silently short listing. The error
            // names the page; the body keeps what the pages before it held,
            // its link pointing at the failed page, to resume from.
            error = error_of(status, &body).map(|e| self.page_failed(e, status, &read));
            read
        } else {
            if ok {
                self.pages += 1;
            }
            body
        };
        ItemResult {
            id: self.request.id.clone(),
            method: self.request.method.clone(),
            url: self.request.url.clone(),
            status,
            error: error.or_else(|| error_of(status, &body)),
            headers,
            body,
            attempts: self.attempts,
            pages: self.pages,
            body_encoding: base64.then_some("base64"),
            note: None,
            subscription: None,
            index: 0,
        }
    }

    /// The error of page `self.pages + 1`, which failed with `status` after
    /// the pages merged in `read`.
    fn page_failed(&self, mut e: ErrorInfo, status: u16, read: &Value) -> ErrorInfo {
        let items = read
            .get("value")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let why = if e.message.is_empty() {
            e.code.clone()
        } else {
            e.message.clone()
        };
        e.message = format!(
            "page {} of the listing ({} {}) failed with HTTP {status}: {why}; the {} page(s) before it ({items} items) are in the body, whose link points at the failed page",
            self.pages + 1,
            self.request.method,
            self.url(),
            self.pages,
        );
        e
    }

    /// The final result when there is no HTTP answer to give (its method
    /// and URL are the request's, filled in as it finishes).
    pub fn finish_without_answer(&mut self, error: ErrorInfo) -> ItemResult {
        let mut r = ItemResult::no_answer(0, &self.request.id, self.attempts, error);
        r.pages = self.pages;
        r
    }
}

impl Slot {
    /// The state of a request that is not final yet. Only such requests are
    /// ready, in flight, delayed or held, so the engine never asks otherwise.
    pub fn live(&self) -> &Item {
        match self {
            Slot::Live(item) => item,
            Slot::Done { .. } => panic!("a final request has no state"),
        }
    }

    /// [`Slot::live`], to change.
    pub fn live_mut(&mut self) -> &mut Item {
        match self {
            Slot::Live(item) => item,
            Slot::Done { .. } => panic!("a final request has no state"),
        }
    }

    /// How it ended, once final.
    pub fn outcome(&self) -> Option<(bool, u16)> {
        match self {
            Slot::Live(_) => None,
            Slot::Done { ok, status } => Some((*ok, *status)),
        }
    }
}
