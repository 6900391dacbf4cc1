//! The decision table: what happens to a request after one thing happened to
//! it (an answer, a lost answer, a refused token). Pure: the engine asks,
//! then carries the decision out. [`crate::retry`] answers the narrower
//! questions (is a status retryable, what did `Retry-After` say, how long is
//! the backoff); this module puts them together in one place.
//!
//! | outcome                                    | decision                                       |
//! |--------------------------------------------|------------------------------------------------|
//! | item 429 with `Retry-After`                | pause its scope, retry at it, attempt refunded |
//! | item 429 without                           | pause its scope for the backoff, retry after it|
//! | item 429 not throttling (another operation | retry at `Retry-After` or backoff; the scope   |
//! | holds the resource)                        | is not paused, nothing counted as throttled    |
//! | item 408/500/502/503/504                   | retry at `Retry-After` or backoff              |
//! | item other                                 | final: the answer                              |
//! | envelope 429                               | hold all sends, halve the batch, retry         |
//! | envelope 503                               | hold all sends, retry                          |
//! | envelope 413, more than one item           | split the batch, resend now, attempt refunded  |
//! | envelope 408/500/502/504, answer lost      | retry reads; writes end `OutcomeUnknown`       |
//! | (reset, timeout, cut-off, missing, twice)  | (a resent one is marked "may have run")        |
//! | envelope other (413 alone included)        | final: the answer                              |
//! | refused (a redirect, a foreign `Location`) | final: the refusal; writes that may have run   |
//! |                                            | end `OutcomeUnknown`                           |
//! | nothing sent                               | retry after backoff                            |
//! | token refused, fresh one fetched           | retry now, once (within the attempts)          |
//! | no token                                   | final: `AuthenticationFailed`/`TokenExpired`   |
//!
//! A retry that would exceed the attempts of its page is final instead, with
//! what the last attempt gave.

use std::time::Duration;

use crate::result::codes;
use crate::retry::{envelope_not_processed, is_retryable_status, Backoff};

/// What happened to one request on one attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The request's own answer inside the batch answer.
    Item {
        /// Its status.
        status: u16,
        /// The wait its headers asked for.
        retry_after: Option<Duration>,
    },
    /// A 429 that is not throttling: the service says another operation
    /// holds the resource (ARM's `RetryableErrorDueToAnotherOperation`).
    Contended {
        /// The wait its headers asked for.
        retry_after: Option<Duration>,
    },
    /// The batch request itself was answered with an error status.
    Envelope {
        /// The envelope's status.
        status: u16,
        /// The wait its headers asked for.
        retry_after: Option<Duration>,
    },
    /// The batch may have reached the service but no answer for this request
    /// came back (connection reset, cut-off or unreadable answer, missing item).
    Lost,
    /// Nothing reached the service.
    NotSent,
    /// The service refused the token and a fresh one was fetched.
    TokenRenewed {
        /// This request was already sent once with a fresh token.
        again: bool,
    },
    /// AzBatch would not go where the answer pointed (a redirect, a
    /// `Location` on another host): the request ends with `code`.
    Refused {
        /// The error code of the refusal.
        code: &'static str,
        /// The service had accepted the batch, so its items may run.
        may_have_run: bool,
    },
    /// No usable token could be had.
    NoToken {
        /// The caller's static token expired.
        expired: bool,
    },
}

/// What is known about the request besides the outcome.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Sends of the current page so far, this one included.
    pub tries: u32,
    /// Sends allowed per page.
    pub max_attempts: u32,
    /// Sending it twice has the effect of sending it once (GET, PUT, DELETE, HEAD).
    pub idempotent: bool,
    /// The caller allows resending writes whose answer was lost.
    pub retry_non_idempotent: bool,
    /// Waits when the service names none.
    pub backoff: &'a Backoff,
    /// Items in the batch it travelled in.
    pub batch_items: usize,
}

/// How a request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The HTTP answer it got (its own, or the envelope's) is its result.
    Answer,
    /// It ends without an HTTP answer, with this error code.
    Error(&'static str),
}

/// What to do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It is done.
    Final(Ending),
    /// Send it again after this wait.
    Retry(Duration),
}

/// The whole decision: the request's fate and what else the run must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Finish or retry.
    pub action: Action,
    /// The send does not count against the attempts (a 429 that named its time).
    pub refund: bool,
    /// Pause the request's throttle scope for this long.
    pub pause_scope: Option<Duration>,
    /// Send no batch at all for this long (the service refused the whole batch).
    pub hold_all: Option<Duration>,
    /// Halve the batch size.
    pub shrink_batch: bool,
    /// Count a 429.
    pub throttled: bool,
    /// The batch was too large: send its items again in smaller batches.
    pub split_batch: bool,
    /// The request is sent again though it may have run already.
    pub maybe_ran: bool,
}

impl Decision {
    fn new(action: Action) -> Decision {
        Decision {
            action,
            refund: false,
            pause_scope: None,
            hold_all: None,
            shrink_batch: false,
            throttled: false,
            split_batch: false,
            maybe_ran: false,
        }
    }
}

/// The decision for `outcome`, given `facts`.
pub fn decide(outcome: Outcome, facts: &Facts<'_>) -> Decision {
    let retry = |wait: Option<Duration>, last: Ending| {
        if facts.tries >= facts.max_attempts {
            Action::Final(last)
        } else {
            Action::Retry(wait.unwrap_or_else(|| facts.backoff.delay(facts.tries)))
        }
    };
    match outcome {
        Outcome::Item {
            status: 429,
            retry_after,
        } => Decision {
            // A named time is a scheduled return, not a failure: the run's
            // deadline bounds it, not the attempts.
            action: match retry_after {
                Some(w) => Action::Retry(w),
                None => retry(None, Ending::Answer),
            },
            refund: retry_after.is_some(),
            pause_scope: Some(retry_after.unwrap_or_else(|| facts.backoff.delay(1))),
            throttled: true,
            ..Decision::new(Action::Final(Ending::Answer))
        },
        Outcome::Contended { retry_after } => Decision {
            refund: retry_after.is_some(),
            ..Decision::new(match retry_after {
                Some(w) => Action::Retry(w),
                None => retry(None, Ending::Answer),
            })
        },
        Outcome::Item {
            status,
            retry_after,
        } if is_retryable_status(status) => Decision::new(retry(retry_after, Ending::Answer)),
        Outcome::Item { .. } => Decision::new(Action::Final(Ending::Answer)),
        Outcome::Envelope { status: 413, .. } if facts.batch_items > 1 => Decision {
            refund: true,
            split_batch: true,
            ..Decision::new(Action::Retry(Duration::ZERO))
        },
        Outcome::Envelope {
            status,
            retry_after,
        } if envelope_not_processed(status) => Decision {
            hold_all: Some(retry_after.unwrap_or_else(|| facts.backoff.delay(1))),
            shrink_batch: status == 429,
            throttled: status == 429,
            ..Decision::new(retry(retry_after, Ending::Answer))
        },
        Outcome::Envelope { status, .. } if is_retryable_status(status) => lost(facts, retry),
        Outcome::Envelope { .. } => Decision::new(Action::Final(Ending::Answer)),
        Outcome::Lost => lost(facts, retry),
        Outcome::NotSent => Decision::new(retry(None, Ending::Error(codes::CONNECTION_FAILED))),
        Outcome::TokenRenewed { again: false } => {
            Decision::new(retry(Some(Duration::ZERO), Ending::Answer))
        }
        Outcome::TokenRenewed { again: true } => Decision::new(Action::Final(Ending::Answer)),
        Outcome::Refused { code, may_have_run } => {
            let unknown = may_have_run && !facts.idempotent;
            Decision::new(Action::Final(Ending::Error(if unknown {
                codes::OUTCOME_UNKNOWN
            } else {
                code
            })))
        }
        Outcome::NoToken { expired } => Decision::new(Action::Final(Ending::Error(if expired {
            codes::TOKEN_EXPIRED
        } else {
            codes::AUTHENTICATION_FAILED
        }))),
    }
}

/// The answer may have been lost after the service ran the request: send it
/// again only when that is safe, or the caller allowed it.
fn lost(facts: &Facts<'_>, retry: impl Fn(Option<Duration>, Ending) -> Action) -> Decision {
    if facts.idempotent || facts.retry_non_idempotent {
        let action = retry(None, Ending::Error(codes::INVALID_RESPONSE));
        Decision {
            maybe_ran: matches!(action, Action::Retry(_)),
            ..Decision::new(action)
        }
    } else {
        Decision::new(Action::Final(Ending::Error(codes::OUTCOME_UNKNOWN)))
    }
}

/// What to do when polling an accepted batch failed for the `failures`-th
/// time: poll again after the wait, or give the batch up as lost (`None`).
pub fn poll_again(
    failures: u32,
    retry_after: Option<Duration>,
    max_attempts: u32,
    backoff: &Backoff,
) -> Option<Duration> {
    (failures < max_attempts).then(|| {
        retry_after
            .unwrap_or_else(|| backoff.delay(failures))
            .min(MAX_POLL_WAIT)
    })
}

/// Longest wait between polls, whatever the service asks.
pub const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

/// What to do when the service answers a batch 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthorized {
    /// Fetch a fresh token (once for every batch that saw this one refused)
    /// and send the items once more.
    Renew,
    /// A static token cannot be renewed: if it has expired the items end
    /// `TokenExpired`, else the 401 is the service's answer.
    CheckExpiry,
}

/// The step after a 401, by whether the token source can renew.
pub fn on_unauthorized(can_renew: bool) -> Unauthorized {
    if can_renew {
        Unauthorized::Renew
    } else {
        Unauthorized::CheckExpiry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Option<Duration> = |s| Some(Duration::from_secs(s));

    fn facts(tries: u32, idempotent: bool) -> Facts<'static> {
        static BACKOFF: Backoff = Backoff {
            base: Duration::from_millis(800),
            cap: Duration::from_secs(60),
            jitter: false,
        };
        Facts {
            tries,
            max_attempts: 3,
            idempotent,
            retry_non_idempotent: false,
            backoff: &BACKOFF,
            batch_items: 2,
        }
    }

    fn retry(ms: u64) -> Action {
        Action::Retry(Duration::from_millis(ms))
    }

    const ANSWER: Action = Action::Final(Ending::Answer);

    /// (outcome, tries, idempotent) -> (action, refund, pause_scope ms, hold_all ms, shrink)
    type Row = (
        Outcome,
        u32,
        bool,
        Action,
        bool,
        Option<u64>,
        Option<u64>,
        bool,
    );

    #[rustfmt::skip]
    fn rows() -> Vec<Row> {
        use Outcome::*;
        let unknown = Action::Final(Ending::Error(codes::OUTCOME_UNKNOWN));
        let error = |code| Action::Final(Ending::Error(code));
        vec![
            (Item { status: 200, retry_after: None }, 1, true, ANSWER, false, None, None, false),
            (Item { status: 404, retry_after: S(5) }, 1, true, ANSWER, false, None, None, false),
            (Item { status: 429, retry_after: S(7) }, 1, true, retry(7000), true, Some(7000), None, false),
            (Item { status: 429, retry_after: S(7) }, 3, true, retry(7000), true, Some(7000), None, false),
            (Item { status: 429, retry_after: None }, 2, true, retry(1600), false, Some(800), None, false),
            (Item { status: 429, retry_after: None }, 3, true, ANSWER, false, Some(800), None, false),
            (Contended { retry_after: S(14) }, 1, false, retry(14000), true, None, None, false),
            (Contended { retry_after: None }, 1, false, retry(800), false, None, None, false),
            (Contended { retry_after: None }, 3, true, ANSWER, false, None, None, false),
            (Item { status: 503, retry_after: None }, 1, false, retry(800), false, None, None, false),
            (Item { status: 500, retry_after: S(2) }, 2, true, retry(2000), false, None, None, false),
            (Item { status: 504, retry_after: None }, 3, true, ANSWER, false, None, None, false),
            (Envelope { status: 429, retry_after: S(4) }, 1, false, retry(4000), false, None, Some(4000), true),
            (Envelope { status: 503, retry_after: None }, 2, false, retry(1600), false, None, Some(800), false),
            (Envelope { status: 503, retry_after: None }, 3, true, ANSWER, false, None, Some(800), false),
            (Envelope { status: 500, retry_after: None }, 1, true, retry(800), false, None, None, false),
            (Envelope { status: 502, retry_after: None }, 1, false, unknown, false, None, None, false),
            (Envelope { status: 400, retry_after: None }, 1, true, ANSWER, false, None, None, false),
            (Envelope { status: 401, retry_after: None }, 1, true, ANSWER, false, None, None, false),
            (Lost, 1, true, retry(800), false, None, None, false),
            (Lost, 3, true, error(codes::INVALID_RESPONSE), false, None, None, false),
            (Lost, 1, false, unknown, false, None, None, false),
            (NotSent, 2, false, retry(1600), false, None, None, false),
            (NotSent, 3, false, error(codes::CONNECTION_FAILED), false, None, None, false),
            (TokenRenewed { again: false }, 1, false, retry(0), false, None, None, false),
            (TokenRenewed { again: false }, 3, false, ANSWER, false, None, None, false),
            (TokenRenewed { again: true }, 1, true, ANSWER, false, None, None, false),
            (Envelope { status: 413, retry_after: None }, 3, false, retry(0), true, None, None, false),
            (Refused { code: codes::REDIRECTED, may_have_run: false }, 1, false, error(codes::REDIRECTED), false, None, None, false),
            (Refused { code: codes::FOREIGN_HOST, may_have_run: true }, 1, true, error(codes::FOREIGN_HOST), false, None, None, false),
            (Refused { code: codes::FOREIGN_HOST, may_have_run: true }, 1, false, unknown, false, None, None, false),
            (NoToken { expired: true }, 1, true, error(codes::TOKEN_EXPIRED), false, None, None, false),
            (NoToken { expired: false }, 1, true, error(codes::AUTHENTICATION_FAILED), false, None, None, false),
        ]
    }

    #[test]
    fn the_table() {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        // Backoff is computed in floating point: compare whole milliseconds.
        let whole = |a: Action| match a {
            Action::Retry(d) => retry(d.as_millis() as u64),
            final_ => final_,
        };
        for (outcome, tries, idempotent, action, refund, pause, hold, shrink) in rows() {
            let d = decide(outcome, &facts(tries, idempotent));
            assert_eq!(
                (
                    whole(d.action),
                    d.refund,
                    ms(d.pause_scope),
                    ms(d.hold_all),
                    d.shrink_batch
                ),
                (action, refund, pause, hold, shrink),
                "{outcome:?} on try {tries}, idempotent {idempotent}"
            );
            let is_429 = matches!(
                outcome,
                Outcome::Item { status: 429, .. } | Outcome::Envelope { status: 429, .. }
            );
            assert_eq!(d.throttled, is_429, "{outcome:?}");
        }
    }

    #[test]
    fn a_too_large_batch_splits_until_one_item_is_left() {
        let mut f = facts(1, false);
        let d = decide(
            Outcome::Envelope {
                status: 413,
                retry_after: None,
            },
            &f,
        );
        assert!(d.split_batch && d.refund && d.action == Action::Retry(Duration::ZERO));
        f.batch_items = 1;
        let d = decide(
            Outcome::Envelope {
                status: 413,
                retry_after: None,
            },
            &f,
        );
        assert!(!d.split_batch && d.action == ANSWER);
    }

    #[test]
    fn a_resent_lost_request_is_marked_as_maybe_run() {
        assert!(decide(Outcome::Lost, &facts(1, true)).maybe_ran);
        assert!(
            !decide(Outcome::Lost, &facts(3, true)).maybe_ran,
            "final, not resent"
        );
        assert!(!decide(Outcome::NotSent, &facts(1, true)).maybe_ran);
    }

    #[test]
    fn a_lost_write_is_resent_only_when_allowed() {
        let mut f = facts(1, false);
        assert_eq!(
            decide(Outcome::Lost, &f).action,
            Action::Final(Ending::Error(codes::OUTCOME_UNKNOWN))
        );
        f.retry_non_idempotent = true;
        assert!(matches!(decide(Outcome::Lost, &f).action, Action::Retry(_)));
    }

    #[test]
    fn polls_and_unauthorized() {
        let b = Backoff {
            jitter: false,
            ..Backoff::default()
        };
        assert_eq!(poll_again(1, None, 3, &b), Some(Duration::from_millis(800)));
        assert_eq!(poll_again(2, S(600), 3, &b), Some(MAX_POLL_WAIT));
        assert_eq!(poll_again(3, S(1), 3, &b), None);
        assert_eq!(on_unauthorized(true), Unauthorized::Renew);
        assert_eq!(on_unauthorized(false), Unauthorized::CheckExpiry);
    }
}
