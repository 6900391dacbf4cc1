//! Launch: due retries and released scopes join the ready queue, the planner
//! cuts the next batch, the dialect encodes it, the journal records it, and it
//! goes on the wire.

use std::cmp::Reverse;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::run::{Run, LINGER};
use super::send::Reply;
use super::InFlight;
use crate::dialect::{self, Single};
use crate::plan;
use crate::result::codes;

impl Run {
    /// Moves due retries and released scopes into the ready queue, then starts
    /// batches while there are slots, ready requests, and no hold.
    pub(super) fn launch_ready(&mut self, in_flight: &mut InFlight, now: Instant) {
        while let Some(Reverse((t, idx))) = self.delayed.peek().copied() {
            if t > now {
                break;
            }
            self.delayed.pop();
            self.ready.push_back(idx);
        }
        for idx in self.scopes.release(now).into_iter().rev() {
            self.ready.push_front(idx);
        }
        if self.ready.is_empty() {
            self.ready_since = None;
        } else if self.ready_since.is_none() {
            self.ready_since = Some(now);
        }
        if self.paused_until.is_some_and(|p| p > now) {
            return;
        }
        while in_flight.len() < self.options().concurrency
            && !self.ready.is_empty()
            && self.reader_keeps_up()
            && self.lingered(now).is_none()
        {
            // None when every ready request's scope is paused.
            if let Some(batch) = self.launch(now) {
                in_flight.push(batch);
                self.ready_since = (!self.ready.is_empty()).then_some(now);
            }
        }
    }

    /// While the input is open and no full batch is ready: until when the
    /// ready requests wait for company.
    pub(super) fn lingered(&self, now: Instant) -> Option<Instant> {
        let since = self.ready_since?;
        let full = self.ready.len() >= self.batch_size;
        (!full && self.may_linger(now)).then_some(since + LINGER)
    }

    /// Whether a short batch may still wait: the input is open and the
    /// oldest ready request has not waited [`LINGER`] yet.
    pub(super) fn may_linger(&self, now: Instant) -> bool {
        self.input_open && self.ready_since.is_some_and(|since| now < since + LINGER)
    }

    /// Plans the next batch from the ready queue and starts sending it; none
    /// when every ready request's scope is paused.
    pub(super) fn launch(
        &mut self,
        now: Instant,
    ) -> Option<BoxFuture<'static, (Vec<usize>, Reply)>> {
        let (items, scopes, api) = (&self.items, &mut self.scopes, self.ctx.options.api);
        let batch = plan::next_batch(
            &mut self.ready,
            plan::Limits {
                items: self.batch_size,
                bytes: self.max_bytes,
            },
            |i| plan::Size {
                body: items[i].live().request.body.is_some(),
                bytes: items[i].live().size,
            },
            |i| dialect::batch_version(api, items[i].live().url()),
            |i| {
                let item = items[i].live();
                scopes.admit(&item.scope, i, item.call(), item.operation.as_deref(), now)
            },
        );
        if batch.is_empty() {
            return None;
        }
        // Ready requests whose scopes held them back (a mailbox's fifth) left
        // this batch short while the input still comes: it waits for company
        // as a short batch of ready requests does, its requests keeping
        // their admission. Sent short, it would split the scopes' requests
        // over more batches than the run keeps in flight.
        if self.ready.is_empty() && batch.len() < self.batch_size && self.may_linger(now) {
            for &i in batch.iter().rev() {
                self.scopes.keep_admitted(i);
                self.ready.push_front(i);
            }
            return None;
        }
        let wire = self.wire(&batch);
        let refused = self.journal_sent(&batch);
        let now = Instant::now();
        for &i in &batch {
            let item = self.items[i].live_mut();
            item.attempts += 1;
            item.page_tries += 1;
            item.on_wire = true;
            item.sent_at = Some(now);
            item.batch_items = batch.len();
        }
        self.in_flight_items += batch.len() as u64;
        self.progress.batch_sent(batch.len() as u64);
        let ctx = self.ctx.clone();
        Some(Box::pin(async move {
            let reply = match refused {
                Some(why) => Reply::Refused {
                    code: codes::JOURNAL_FAILED,
                    may_have_run: false,
                    why,
                },
                None => match wire {
                    Wire::Batch(body, version) => ctx.send_batch(body, version).await,
                    Wire::OneByOne(singles) => ctx.send_each(singles).await,
                },
            };
            (batch, reply)
        }))
    }

    /// How `batch` travels: one batch request in the API's dialect, or,
    /// where the batch endpoint is refused, a request of its own for each.
    fn wire(&self, batch: &[usize]) -> Wire {
        let names: Vec<String> = batch.iter().map(|i| i.to_string()).collect();
        let outgoing: Vec<dialect::Outgoing<'_>> = batch
            .iter()
            .zip(&names)
            .map(|(&i, name)| self.items[i].live().outgoing(name))
            .collect();
        if self.one_by_one.is_some() {
            tracing::debug!(
                items = batch.len(),
                in_flight = self.in_flight_items,
                "requests sent one by one"
            );
            return Wire::OneByOne(outgoing.iter().map(dialect::single).collect());
        }
        let body = dialect::encode(self.options().api, &outgoing);
        let version = dialect::batch_version(self.options().api, outgoing[0].url);
        tracing::debug!(
            items = batch.len(),
            bytes = body.len(),
            in_flight = self.in_flight_items,
            "batch sent"
        );
        Wire::Batch(body, version)
    }

    /// Records in the journal that `batch` is about to leave; the reason not
    /// to send it when that fails (a send the journal does not know of could
    /// run twice after a crash).
    pub(super) fn journal_sent(&self, batch: &[usize]) -> Option<String> {
        let journal = self.ctx.journal.as_ref()?;
        let sent: Vec<(usize, &str)> = batch
            .iter()
            .filter_map(|&i| Some((i, self.items[i].live().digest.as_deref()?)))
            .collect();
        if sent.is_empty() {
            return None;
        }
        journal.sent(&sent).err().map(|e| {
            format!(
                "not sent: the journal {} cannot be written ({e})",
                journal.path().display()
            )
        })
    }

    /// Holds new batches back until `wait` from now (the later of any two holds).
    pub(super) fn pause(&mut self, wait: Duration) {
        // Field values are worked out only when the event is logged.
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            until = %httpdate::fmt_http_date(self.ctx.clock.now() + wait),
            "every batch held"
        );
        let until = Instant::now() + wait;
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }
}

/// How one batch's requests travel.
enum Wire {
    /// One batch request's body, and the Graph version it goes to when it
    /// is not the run's.
    Batch(Vec<u8>, Option<&'static str>),
    /// Each request on its own (the batch endpoint is refused).
    OneByOne(Vec<Single>),
}
