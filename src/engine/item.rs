//! One request's state during a run: attempts, the page it is on, and the pages
//! merged so far.

use serde_json::{Map, Value};
use url::Url;

use crate::options::Options;
use crate::request::Request;
use crate::result::{error_of, ErrorInfo, ItemResult};

pub(super) struct Item {
    pub request: Request,
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
    /// Once final: whether it succeeded, and its status.
    pub outcome: Option<(bool, u16)>,
}

impl Item {
    pub fn new(request: Request) -> Item {
        Item {
            next_page: None,
            request,
            attempts: 0,
            page_tries: 0,
            pages: 0,
            merged: None,
            token_renewed: false,
            outcome: None,
        }
    }

    /// Path and query to send now: the request's URL or the page it is on.
    pub fn url(&self) -> &str {
        self.next_page.as_deref().unwrap_or(&self.request.url)
    }

    /// The next page to fetch, when `body` links to one on the endpoint's origin.
    /// A link elsewhere is not followed (the token would go with it).
    pub fn next_link(&self, body: &Value, options: &Options) -> Option<String> {
        let link = body.get(options.api.next_link_key())?.as_str()?;
        let url = Url::parse(link).ok()?;
        if !options.is_same_origin(&url) {
            return None;
        }
        options.relative_url(link).ok()
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
        let body = if ok && !base64 {
            self.merge(body, link_key);
            self.merged.take().unwrap_or(Value::Null)
        } else {
            if ok {
                self.pages += 1;
            }
            body
        };
        ItemResult {
            id: self.request.id.clone(),
            status,
            error: error_of(status, &body),
            headers,
            body,
            attempts: self.attempts,
            pages: self.pages,
            body_encoding: base64.then_some("base64"),
            index: 0,
        }
    }

    /// Frees what a finished request no longer needs (its id stays, for the
    /// messages of requests that depend on it): a long run holds only what is
    /// still to do.
    pub fn release(&mut self) {
        let r = &mut self.request;
        r.url = String::new();
        r.headers = Vec::new();
        r.body = None;
        r.header_details = None;
        r.depends_on = Vec::new();
        self.next_page = None;
        self.merged = None;
    }

    /// The final result when there is no HTTP answer to give.
    pub fn finish_without_answer(&mut self, error: ErrorInfo) -> ItemResult {
        let mut r = ItemResult::no_answer(0, &self.request.id, self.attempts, error);
        r.pages = self.pages;
        r
    }
}
