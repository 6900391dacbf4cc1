//! Effects: a decision carried out. A retry is scheduled, or the item
//! finishes: its final result is recorded, handed out, and its dependents are
//! released or failed; an early end finishes every item still open.

use std::cmp::Reverse;

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::item::Slot;
use super::run::{Got, Run, ALLOW_RESEND};
use super::InFlight;
use crate::decision::{decide, Action, Decision, Ending, Facts, Outcome};
use crate::dialect;
use crate::result::{codes, ErrorInfo, ItemResult, Throttle};

impl Run {
    pub(super) fn decide(&self, idx: usize, outcome: Outcome) -> Decision {
        let (o, item) = (self.options(), self.items[idx].live());
        decide(
            outcome,
            &Facts {
                tries: item.page_tries,
                max_attempts: o.max_attempts,
                idempotent: item.request.is_idempotent(),
                retry_non_idempotent: o.retry_non_idempotent,
                backoff: &o.backoff,
                batch_items: item.batch_items.max(1),
            },
        )
    }

    /// What a decision asks of the whole run.
    pub(super) fn apply_run_effects(&mut self, d: &Decision) {
        if d.throttled {
            self.progress.throttled();
        }
        if d.shrink_batch {
            self.batch_size = (self.batch_size / 2).max(1);
        }
        if let Some(hold) = d.hold_all {
            self.pause(hold);
        }
    }

    /// What a decision asks for one item: a retry at its time, or its result.
    pub(super) fn carry_out(&mut self, idx: usize, d: Decision, got: Got) {
        if d.refund {
            self.items[idx].live_mut().forgive_last_try();
        }
        if d.maybe_ran {
            self.items[idx].live_mut().maybe_ran = true;
        }
        match (d.action, got) {
            (Action::Retry(wait), got) => {
                let item = self.items[idx].live();
                tracing::info!(
                    id = item.request.id.as_str(),
                    attempt = item.attempts,
                    wait_ms = wait.as_millis() as u64,
                    why = %got,
                    "retry scheduled"
                );
                self.progress.retried(1);
                self.delayed.push(Reverse((Instant::now() + wait, idx)));
            }
            (
                Action::Final(Ending::Answer),
                Got::Answer {
                    status,
                    headers,
                    body,
                    base64,
                },
            ) => self.final_answer(idx, status, headers, body, base64),
            (Action::Final(Ending::Answer), Got::Why(why)) => {
                let r = self.items[idx]
                    .live_mut()
                    .finish_without_answer(ErrorInfo::new(codes::INTERNAL, why));
                self.finish(idx, r);
            }
            (Action::Final(Ending::Error(code)), got) => {
                let why = match got {
                    Got::Why(why) => why,
                    Got::Answer { status, .. } => format!("the answer was HTTP {status}"),
                };
                let message = match code {
                    codes::OUTCOME_UNKNOWN => format!(
                        "{why}; the request may have run. {} is not idempotent so it was not sent again ({ALLOW_RESEND})",
                        self.items[idx].live().request.method
                    ),
                    _ => why,
                };
                let r = self.items[idx]
                    .live_mut()
                    .finish_without_answer(ErrorInfo::new(code, message));
                self.finish(idx, r);
            }
        }
    }

    /// The HTTP answer stands: a success may lead to the next page.
    pub(super) fn final_answer(
        &mut self,
        idx: usize,
        status: u16,
        headers: Map<String, Value>,
        body: Value,
        base64: bool,
    ) {
        let ok = (200..300).contains(&status);
        if ok {
            let item = self.items[idx].live();
            let units = item.sent_mark.map_or(1.0, |m| m.charged());
            let now = Instant::now();
            if let Some(rate) = self.scopes.succeeded(
                &item.scope,
                item.operation.as_deref(),
                units,
                now,
                item.sent_at.unwrap_or(now),
            ) {
                tracing::info!(
                    scope = item.scope.as_str(),
                    per_second = rate,
                    "scope's rate rose"
                );
            }
        }
        let key = self.options().api.next_link_key();
        let follow = self.options().follow_next_link;
        let item = self.items[idx].live_mut();
        let mut incomplete = None;
        if follow && ok && !base64 {
            match item.next_link(&body, &self.ctx.options) {
                Ok(Some(next)) => {
                    tracing::debug!(id = item.request.id.as_str(), "next page followed");
                    item.add_page(body, next, key);
                    self.ready.push_back(idx);
                    return;
                }
                Ok(None) => {}
                Err(why) => incomplete = Some(why),
            }
        }
        let gone = status == 404 && item.maybe_ran && item.request.method == "DELETE";
        let mut result = item.finish_http(status, headers, body, base64, key);
        if status == 429 {
            if let (Some(e), Some((scope, reason, words))) =
                (&mut result.error, dialect::throttle_info(&result.headers))
            {
                e.message = if e.message.is_empty() {
                    words
                } else {
                    format!("{}; {words}", e.message)
                };
                e.throttle = Some(Box::new(Throttle { scope, reason }));
            }
        }
        if let Some(why) = incomplete {
            result.error = Some(ErrorInfo::new(codes::INCOMPLETE_LISTING, why));
        }
        if gone {
            // The first send ran and its answer was lost: gone is what was asked.
            result.status = 204;
            result.error = None;
            result.body = Value::Null;
            result.note = Some("the first DELETE's answer was lost and the resend was answered 404: the resource is gone, as asked".into());
        }
        self.finish(idx, result);
    }

    /// Hands out a final result, then releases or fails the requests that
    /// depend on it (and theirs, and so on, without recursion).
    pub(super) fn finish(&mut self, idx: usize, result: ItemResult) {
        let mut work = vec![(idx, result)];
        while let Some((i, mut result)) = work.pop() {
            if self.items[i].outcome().is_some() {
                debug_assert!(false, "request {i} finished twice");
                continue;
            }
            result.index = i;
            let ok = result.is_success();
            let done = Slot::Done {
                ok,
                status: result.status,
            };
            let Slot::Live(mut item) = std::mem::replace(&mut self.items[i], done) else {
                unreachable!("checked above");
            };
            if let Some(sub) = item.subscription.take() {
                result.subscription = Some(sub);
            }
            if result.method.is_empty() {
                // Every result says what it answers, whoever made it (a
                // refusal before sending, the journal's OutcomeUnknown).
                result.method = std::mem::take(&mut item.request.method);
                result.url = std::mem::take(&mut item.request.url);
            }
            self.progress.finished(ok);
            if let (Some(j), Some(d)) = (&self.ctx.journal, &item.digest) {
                // A record that cannot be written leaves the request "sent" in
                // the journal: a rerun resends a read, and ends a write
                // OutcomeUnknown. Nothing is lost either way.
                let _ = j.done(i, d, &result);
            }
            if ok {
                self.keep(i, &result, !item.dependents.is_empty(), item.request.named);
            }
            let (id, status) = (result.id.clone(), result.status);
            self.outbox.push(result);
            let outcome = if ok { Ok(()) } else { Err((id, status)) };
            work.extend(self.settle_dependents(item.dependents, outcome));
        }
    }

    /// Ends the run early: drops the batches on the wire and finishes every
    /// unfinished item with `code`.
    /// A write that was on the wire, or whose earlier answer was lost, may
    /// have run: it ends `OutcomeUnknown`, saying why the run stopped.
    pub(super) fn abandon(&mut self, in_flight: &mut InFlight, code: &str, message: &str) {
        self.progress
            .batch_landed(self.in_flight_items, in_flight.len() as u64);
        in_flight.clear();
        self.scopes.clear();
        self.in_flight_items = 0;
        self.ready.clear();
        self.delayed.clear();
        for idx in 0..self.items.len() {
            if self.items[idx].outcome().is_none() {
                let item = self.items[idx].live_mut();
                let sent = item.on_wire || item.maybe_ran;
                let error = if sent && !item.request.is_read() {
                    let m = format!(
                        "{message}, but it had been sent and may have run ({} is a write: check before sending it again)",
                        item.request.method
                    );
                    ErrorInfo::new(codes::OUTCOME_UNKNOWN, m)
                } else {
                    ErrorInfo::new(code, message)
                };
                let result = item.finish_without_answer(error);
                self.finish(idx, result);
            }
        }
    }

    /// Hands out what finished since the last time.
    pub(super) fn hand_out(&mut self) {
        if !self.outbox.is_empty() {
            self.sink.send_all(std::mem::take(&mut self.outbox));
        }
    }
}
