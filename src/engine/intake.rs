//! Intake: requests come in (checked, with their place in the dependency
//! graph), wait for what they depend on, and are released to the ready queue
//! with their references filled in; the input closes.

use super::deps::{failed_dependency, fill_references, Kept};
use super::item::{Item, Slot};
use super::run::{Run, ALLOW_RESEND, HELD_WINDOWS, KEEP_FOR_LATECOMERS};
use super::Arrival;
use crate::dependencies::GIVEN_IDS_ONLY;
use crate::dialect::{self};
use crate::journal::Past;
use crate::result::{codes, ErrorInfo, ItemResult};

impl Run {
    /// Takes one more request: it is ready when what it depends on has
    /// succeeded, fails at once when any of it failed, and waits otherwise
    /// (also for requests not arrived yet).
    pub(super) fn add(&mut self, arrival: Arrival) {
        let Arrival {
            request,
            links,
            past,
            subscription,
        } = arrival;
        let i = links.index;
        debug_assert_eq!(
            i,
            self.items.len(),
            "requests arrive in the order the graph placed them"
        );
        self.progress.add_total(1);
        let scope = dialect::throttle_scope(self.ctx.options.api, &request.method, &request.url);
        let operation =
            dialect::provider_operation(self.ctx.options.api, &request.method, &request.url);
        let cost = dialect::call_cost(self.ctx.options.api, &request.method, &request.url);
        let mut item = Item::new(request, scope);
        item.subscription = subscription;
        item.operation = operation;
        item.cost = cost;
        item.dependents = links.awaited_by;
        item.waiting = links.unknown;
        let mut failed = None;
        for j in links.known {
            match self.items[j].outcome() {
                None => {
                    self.items[j].live_mut().dependents.push(i);
                    item.waiting += 1;
                }
                Some((true, _)) => {}
                Some((false, status)) => failed = Some((j, status)),
            }
        }
        let failed = failed.map(|(j, status)| {
            // The id as this request names it: the failed one's own is gone.
            let graph = self.graph.lock();
            let id = item
                .request
                .depends_on
                .iter()
                .find(|d| graph.index_of(d) == Some(j));
            (id.cloned().unwrap_or_default(), status)
        });
        let ready = item.waiting == 0;
        let resumed = match past {
            Past::Unjournaled => None,
            Past::New(d) => {
                item.digest = Some(d);
                None
            }
            Past::Sent(d) => {
                item.digest = Some(d);
                item.maybe_ran = true;
                self.sent_before(&item)
            }
            Past::Done(r) => {
                // Final before this run: its result again, not recorded again.
                item.digest = None;
                self.progress.replayed();
                Some(*r)
            }
        };
        self.items.push(Slot::Live(Box::new(item)));
        if let Some(result) = resumed {
            self.finish(i, result);
        } else if let Some((id, status)) = failed {
            let result = failed_dependency(self.items[i].live_mut(), &id, status);
            self.finish(i, result);
        } else if ready {
            if let Some(result) = self.release(i) {
                self.finish(i, result);
            }
        }
    }

    /// An earlier run sent `item` and stopped before its answer: a write that
    /// may not run twice ends here, `OutcomeUnknown`; anything else is sent.
    pub(super) fn sent_before(&self, item: &Item) -> Option<ItemResult> {
        let r = &item.request;
        if r.is_idempotent() || self.options().retry_non_idempotent {
            return None;
        }
        let journal = self
            .ctx
            .journal
            .as_ref()
            .map_or("the journal".into(), |j| j.path().display().to_string());
        let why = format!(
            "an earlier run with the journal {journal} sent this request and stopped before its answer came back, so it may have run. {} is not idempotent so it was not sent again ({ALLOW_RESEND})",
            r.method
        );
        Some(ItemResult::no_answer(
            0,
            &r.id,
            0,
            ErrorInfo::new(codes::OUTCOME_UNKNOWN, why),
        ))
    }

    /// No more requests will arrive: whatever waits for an id that never came
    /// fails.
    pub(super) fn close_input(&mut self) {
        self.input_open = false;
        self.kept_for_latecomers.clear();
        let unresolved = self.graph.lock().unresolved();
        for (i, d) in unresolved {
            if self.items[i].outcome().is_some() {
                continue;
            }
            let msg = format!(
                "dependsOn names \"{d}\", which is not a request of this run ({GIVEN_IDS_ONLY})"
            );
            let result = self.items[i]
                .live_mut()
                .finish_without_answer(ErrorInfo::new(codes::FAILED_DEPENDENCY, msg));
            self.finish(i, result);
        }
    }

    /// Whether the run can use another request now: it takes them only while
    /// the work ready to send stays within a few batches' worth, and while
    /// throttled scopes hold no more than [`HELD_WINDOWS`] times that (so a
    /// throttled run holds what it can use soon, not the whole input; other
    /// scopes keep going meanwhile).
    pub(super) fn takes_input(&self) -> bool {
        let window = (4 * self.batch_size * self.options().concurrency).max(1024);
        self.ready.len() + self.delayed.len() < window && self.scopes.held() < HELD_WINDOWS * window
    }

    /// Every dependency of `i` succeeded: fill its references and queue it.
    /// Returns the `ReferenceNotFound` result instead when a reference has no
    /// value; the caller finishes it (so `finish` need not recurse).
    pub(super) fn release(&mut self, i: usize) -> Option<ItemResult> {
        let filled = fill_references(
            self.items[i].live_mut(),
            &self.graph,
            &self.kept,
            &self.ctx.options,
        );
        match filled {
            Ok(()) => {
                self.ready.push_back(i);
                None
            }
            Err(why) => {
                let e = ErrorInfo::new(codes::REFERENCE_NOT_FOUND, why);
                Some(self.items[i].live_mut().finish_without_answer(e))
            }
        }
    }

    /// Keeps a success's answer for the requests that read it: those waiting
    /// now, and, while the input is open, ones still to come that name it
    /// (the latest [`KEEP_FOR_LATECOMERS`] of those).
    pub(super) fn keep(&mut self, i: usize, result: &ItemResult, awaited: bool, named: bool) {
        if awaited {
            self.kept.insert(i, Kept::of(result));
        } else if self.input_open && named {
            self.kept.insert(i, Kept::of(result));
            self.kept_for_latecomers.push_back(i);
            if self.kept_for_latecomers.len() > KEEP_FOR_LATECOMERS {
                if let Some(old) = self.kept_for_latecomers.pop_front() {
                    self.kept.remove(&old);
                }
            }
        }
    }

    /// A request finished: its `dependents` each wait for one fewer (and are
    /// released when none is left), or, when it failed (`Err` with its id and
    /// status), fail too. Returns the results of those that ended here, for
    /// the caller to finish (so finishing need not recurse).
    pub(super) fn settle_dependents(
        &mut self,
        dependents: Vec<usize>,
        outcome: Result<(), (String, u16)>,
    ) -> Vec<(usize, ItemResult)> {
        let mut ended = vec![];
        for d in dependents {
            if self.items[d].outcome().is_some() {
                continue;
            }
            if let Err((id, status)) = &outcome {
                ended.push((d, failed_dependency(self.items[d].live_mut(), id, *status)));
                continue;
            }
            let waiting = &mut self.items[d].live_mut().waiting;
            *waiting -= 1;
            if *waiting == 0 {
                if let Some(result) = self.release(d) {
                    ended.push((d, result));
                }
            }
        }
        ended
    }
}
