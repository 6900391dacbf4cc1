//! Landing: a batch's reply becomes one outcome per item (its own answer,
//! the envelope's, or why there is none), the scopes hear what the answers
//! say of their buckets, and the decision table says what each outcome means.

use std::collections::HashMap;

use serde_json::Map;
use tokio::time::Instant;

use super::run::{Got, Run};
use super::send::Reply;
use crate::decision::Outcome;
use crate::dialect::{self, ItemAnswer};
use crate::retry::retry_after;

/// A scope's pause is logged again when a 429 pushes it back by this much
/// or more (the other 429s of a batch end it at the same time).
const PUSHED_BACK: std::time::Duration = std::time::Duration::from_secs(1);

impl Run {
    /// Handles the reply to one batch: every item's outcome goes through the
    /// decision table.
    pub(super) fn land(&mut self, batch: Vec<usize>, reply: Reply) {
        for &idx in &batch {
            let item = self.items[idx].live_mut();
            item.sent_mark = self.scopes.landed(&item.scope, idx);
            item.on_wire = false;
        }
        self.in_flight_items -= batch.len() as u64;
        let reached = !matches!(reply, Reply::NotSent(_) | Reply::Auth(_));
        tracing::debug!(items = batch.len(), answer = reply.kind(), "batch answered");
        self.progress
            .batch_landed(batch.len() as u64, reached.into());
        match reply {
            Reply::Items(answers) => {
                // The service took a whole batch: after an envelope 429 halved
                // the size, it grows back by one per batch taken.
                self.batch_size = (self.batch_size + 1).min(self.options().batch_size);
                self.land_items(batch, answers)
            }
            Reply::Envelope { status, .. } if self.falls_back(status) => {
                self.one_by_one(batch, status)
            }
            Reply::Envelope {
                status,
                headers,
                body,
            } => {
                let wait = retry_after(|k| find_header(&headers, k), self.ctx.clock.now());
                let outcome = Outcome::Envelope {
                    status,
                    retry_after: wait,
                };
                self.for_each(batch, outcome, |_| Got::Answer {
                    status,
                    headers: Map::new(),
                    body: body.clone(),
                    base64: false,
                });
            }
            Reply::NotSent(why) => {
                self.for_each(batch, Outcome::NotSent, |_| Got::Why(why.clone()))
            }
            Reply::MaybeSent(why) => self.for_each(batch, Outcome::Lost, |_| Got::Why(why.clone())),
            Reply::Refused {
                code,
                may_have_run,
                why,
            } => {
                let outcome = Outcome::Refused { code, may_have_run };
                self.for_each(batch, outcome, |_| Got::Why(why.clone()));
            }
            Reply::Auth(e) => {
                let outcome = Outcome::NoToken { expired: e.expired };
                self.for_each(batch, outcome, |_| Got::Why(e.message.clone()));
            }
            Reply::TokenRenewed { body } => {
                for idx in batch {
                    let again =
                        std::mem::replace(&mut self.items[idx].live_mut().token_renewed, true);
                    let got = Got::Answer {
                        status: 401,
                        headers: Map::new(),
                        body: body.clone(),
                        base64: false,
                    };
                    let d = self.decide(idx, Outcome::TokenRenewed { again });
                    self.carry_out(idx, d, got);
                }
            }
        }
    }

    /// One outcome for every item of a batch: its effects on the run (a hold,
    /// a smaller batch, a 429 counted) once, its action for each item.
    pub(super) fn for_each(
        &mut self,
        batch: Vec<usize>,
        outcome: Outcome,
        got: impl Fn(usize) -> Got,
    ) {
        let Some(&first) = batch.first() else { return };
        let d = self.decide(first, outcome);
        self.apply_run_effects(&d);
        if d.split_batch {
            // Too large for the service: its items go again in halves.
            let bytes: usize = batch.iter().map(|&i| self.items[i].live().size).sum();
            self.max_bytes = self.max_bytes.min(bytes / 2).max(1);
        }
        for idx in batch {
            let d = self.decide(idx, outcome);
            self.carry_out(idx, d, got(idx));
        }
    }

    /// The answers of a batch, matched to its items by name. An item the
    /// answer names twice has no answer it can trust (either could be
    /// another's): like one the answer left out, its answer is lost.
    pub(super) fn land_items(&mut self, batch: Vec<usize>, answers: Vec<ItemAnswer>) {
        let mut by_name: HashMap<String, ItemAnswer> = HashMap::with_capacity(answers.len());
        let mut twice: Vec<String> = vec![];
        for a in answers {
            if by_name.contains_key(&a.name) {
                twice.push(a.name);
            } else {
                by_name.insert(a.name.clone(), a);
            }
        }
        for name in &twice {
            by_name.remove(name);
        }
        // The scopes this batch's 429s throttle first take back what they
        // released that has not gone: it goes after their pause, not in it.
        if by_name.values().any(|a| a.status == 429) {
            let mut throttled: Vec<String> = vec![];
            for &idx in &batch {
                let scope = &self.items[idx].live().scope;
                let refused = by_name
                    .get(&idx.to_string())
                    .is_some_and(|a| a.status == 429);
                if refused && !throttled.contains(scope) {
                    throttled.push(scope.clone());
                }
            }
            for key in throttled {
                self.recall(&key);
            }
        }
        for idx in batch {
            let name = idx.to_string();
            match by_name.remove(&name) {
                Some(answer) => self.answered(idx, answer),
                None => {
                    let d = self.decide(idx, Outcome::Lost);
                    let why = if twice.contains(&name) {
                        "the batch answer was broken: it answered this request twice, so neither answer can be trusted"
                    } else {
                        "the batch answer had no response for this request"
                    };
                    self.carry_out(idx, d, Got::Why(why.into()));
                }
            }
        }
    }

    /// The service throttled scope `key`: its requests released to the ready
    /// queue that have not gone yet wait in the scope again (released when a
    /// batch's slot was free, they would go while the scope is paused).
    fn recall(&mut self, key: &str) {
        if !self.scopes.released_unsent() {
            return;
        }
        let (items, scopes) = (&self.items, &mut self.scopes);
        self.ready.retain(|&idx| {
            let item = items[idx].live();
            !(item.scope == key && scopes.recall(key, idx, item.call(), item.operation.as_deref()))
        });
    }

    /// One item's own answer.
    pub(super) fn answered(&mut self, idx: usize, answer: ItemAnswer) {
        let retry_after = retry_after(|k| answer.header(k), self.ctx.clock.now());
        let api = self.options().api;
        let outcome = match dialect::contention(api, answer.status, &answer.body) {
            Some(code) => {
                tracing::info!(
                    id = self.items[idx].live().request.id.as_str(),
                    code = code.as_str(),
                    "429 is not throttling: another operation holds the resource; retried without slowing its scope"
                );
                Outcome::Contended { retry_after }
            }
            None => Outcome::Item {
                status: answer.status,
                retry_after,
            },
        };
        if answer.status == 429 {
            if let Some((scope, _, words)) = dialect::throttle_info(&answer.headers) {
                tracing::info!(
                    id = self.items[idx].live().request.id.as_str(),
                    throttle_scope = scope.as_deref().unwrap_or(""),
                    "{words}"
                );
            }
        }
        let d = self.decide(idx, outcome);
        self.apply_run_effects(&d);
        let item = self.items[idx].live();
        if let Some(mark) = item.sent_mark {
            let read = item.request.is_read();
            let op = item.operation.as_deref();
            self.scopes
                .observe_answer(&item.scope, read, op, &answer, mark, Instant::now());
        }
        if let Some(pause) = d.pause_scope {
            let item = self.items[idx].live();
            let key = &item.scope;
            let policy = dialect::spent_policy(item.operation.as_deref(), &answer);
            let now = Instant::now();
            let sent = item.sent_at.unwrap_or(now);
            let before = self.scopes.paused_until(key).filter(|t| *t > now);
            let learned = self
                .scopes
                .throttled(key, pause, policy.as_deref(), now, sent);
            // A batch's 429s come together: the log says when a pause begins
            // or is pushed back, and what a throttle changed, not each item.
            let news = before.is_none_or(|t| now + pause >= t + PUSHED_BACK);
            if news {
                tracing::info!(
                    scope = key.as_str(),
                    wait_ms = pause.as_millis() as u64,
                    until = %httpdate::fmt_http_date(self.ctx.clock.now() + pause),
                    "scope paused"
                );
            }
            if let Some((learned, rate)) = learned {
                if news || learned.changed_the_rate() {
                    tracing::info!(scope = key.as_str(), per_second = rate, learned = ?learned, "scope throttled");
                } else {
                    tracing::debug!(scope = key.as_str(), per_second = rate, learned = ?learned, "scope throttled");
                }
            }
        }
        let got = Got::Answer {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
            base64: answer.base64,
        };
        self.carry_out(idx, d, got);
    }

    /// Whether a batch answered `status` means the batch endpoint itself is
    /// refused here, and the run may send its requests one by one instead.
    fn falls_back(&self, status: u16) -> bool {
        self.one_by_one.is_none()
            && self.options().batch_fallback
            && dialect::batch_endpoint_refused(status)
    }

    /// The batch endpoint answered `status`: from now on every request goes
    /// on its own, with the same pacing, retries and results; this batch's
    /// requests go again at once (the refusal is not counted as their try).
    fn one_by_one(&mut self, batch: Vec<usize>, status: u16) {
        tracing::warn!(
            status,
            url = %self.options().batch_url(),
            "the batch endpoint was refused: the requests are sent one by one (turn this off with batchFallback false, --no-batch-fallback)"
        );
        self.one_by_one = Some(status);
        for &idx in batch.iter().rev() {
            let item = self.items[idx].live_mut();
            item.forgive_last_try();
            item.attempts = item.attempts.saturating_sub(1);
            self.ready.push_front(idx);
        }
    }
}

fn find_header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}
