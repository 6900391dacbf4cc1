//! The rate a throttle scope can sustain, learned from the answers alone.
//!
//! A pure state machine fed `(now, outcome)`, beside the [decision
//! table](crate::decision): the engine's bucket for a scope refills at
//! [`Rate::per_second`], and tells it what came back. Headers are the strong
//! signal (they set the bucket's tokens: `engine/bucket.rs`); this is what
//! makes the pacing converge where the service sends none, or where its
//! bucket is smaller or slower than the documented one (another cloud, a trial
//! subscription, a provider's own limit, another principal draining a shared
//! bucket).
//!
//! The services throttle with token buckets (ARM: "Understand how Azure
//! Resource Manager throttles requests"; Graph's identity and access service:
//! "Microsoft Graph service-specific throttling limits"): a 429 means the
//! service's bucket is empty at that moment. Between two such moments the
//! service served exactly what it refilled, so the requests that succeeded
//! between them, over the time between them, measure its refill rate, when
//! the scope wanted more than that all along (it was held back by its own
//! bucket): a scope that sent little, or a stray 429, measures nothing. After a
//! throttle the rate is set a little below that measure (or, at the first
//! throttle, when there is nothing to measure yet, cut to [`FIRST_CUT`] of
//! itself), and while nothing is throttled it grows back by
//! [`GROWTH`] every [`GROW_AFTER`], up to its ceiling (the documented rate),
//! so a limit that was lowered for a while (another principal's burst) is
//! found again. A 429 that is not throttling (another operation in progress)
//! is not fed here.
//!
//! A span is counted by when its requests were *sent*, not answered: the
//! service spends its bucket as requests arrive, and answers come back up to
//! a round trip apart. Counted by answer, a span after the first throttle
//! took in the tail of the burst still on the wire (measuring the refill
//! twice over), and a span that closed with a batch still on the wire lost
//! that batch's successes (a fifth of a short span's): both moved the rate
//! far from the refill. So a success counts towards the span its request was
//! sent in, and one that comes back after its span was measured completes
//! that measure (which may raise the rate it set, never above the rate the
//! span began at).

use std::time::Duration;

use tokio::time::Instant;

/// The share of the measured refill rate a scope is paced at: a little
/// below, so the service's bucket is not met at its empty mark again at once.
const MARGIN: f64 = 0.95;
/// The cut at the first throttle, before there is a span to measure.
const FIRST_CUT: f64 = 0.5;
/// The shortest span between two throttles that is measured: shorter ones are
/// one burst answered in several batches.
const MIN_SPAN: Duration = Duration::from_secs(1);
/// How long a scope goes without a throttle before its rate grows.
const GROW_AFTER: Duration = Duration::from_secs(5);
/// Nor before it has served this many units since: a slow scope (a
/// provider's policy of a hundred calls in three minutes) grows by its own
/// count, not by the clock, or it meets its limit again every few requests.
const GROW_AFTER_UNITS: f64 = 20.0;
/// How much the rate grows at a time.
const GROWTH: f64 = 1.05;
/// Below this share of 429s among a scope's answers since the last throttle
/// learned from, a 429 to a scope that was not held back by its own pace is
/// stray: the service was not what held it back.
const STRAY_SHARE: f64 = 0.1;
/// The weight of each answer in [`Rate`]'s moving share of 429s: about the
/// last hundred answers count.
const RECENT: f64 = 0.01;
/// Above this moving share of 429s no 429 is stray: a little over the 2% of
/// attempts the pacing aims under. (Lone 429s among many successes stay
/// well below it; a wave of them every few seconds, with the pauses after
/// `Retry-After` pacing the scope, does not.)
const RECENT_STRAY: f64 = 0.025;
/// A cut is judged by the span after it: when the share of the scope's
/// answers that were 429 stayed within this factor of what it was (neither
/// fell, as after a cut that helped, nor rose, as when the service is slower
/// still), the 429s do not follow the scope's rate (a fault, a limit that is
/// not a rate), and the cut is undone.
const HELPED: f64 = 0.5;
/// A span teaches nothing when its 429s are no more than the scope's noise
/// (the share a cut did not lower) would give, give or take this many
/// standard deviations: a span holds a few hundred answers at most, and the
/// share of so few swings.
const NOISE_SIGMAS: f64 = 4.0;
/// The most of a scope's answers that can be noise: a share of 429s above it
/// is a limit, however it answers a cut.
const NOISE_AT_MOST: f64 = 0.2;
/// Whether a span's `share` of 429s, after a cut that `then` led to, says
/// the 429s did not follow the rate: about the same share (a cut lowers it, a
/// limit slower still raises it), and few enough to be noise.
fn noise_again(share: f64, then: f64) -> bool {
    share > then * HELPED && share < then / HELPED && share < NOISE_AT_MOST
}

/// The fewest answers a throttle is judged on (the first, and each span
/// after): one 429 among a few answers says nothing of a rate.
const MIN_ANSWERS: f64 = 20.0;
/// The fewest 429s in a span that say the service held the scope back
/// whatever its pace: among a few dozen answers, four or five 429s are a
/// fifth by chance (the fault table's 5% of random 429s met it).
const HELD_BACK_429S: f64 = 10.0;
/// The fewest units served between two throttles that measure anything
/// (none served over a span measures only that the scope sent nothing).
const MIN_SERVED: f64 = 1.0;
/// The lowest rate a scope is paced at (one request a minute). No share of
/// the ceiling is a floor: a provider's policy can be a fiftieth of the
/// subscription's rate, and 429s that do not follow the rate are noise.
const FLOOR: f64 = 1.0 / 60.0;

/// A scope's sustainable rate, in units a second.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    per_second: f64,
    /// The most it grows back to: the documented rate, or what the service showed.
    ceiling: f64,
    /// The last moment the service's bucket was seen empty (a throttle).
    empty_at: Option<Instant>,
    /// When the request whose 429 showed it was sent: the span measured
    /// since is counted by send time.
    empty_sent: Option<Instant>,
    /// Units the service served since then (answers since `empty_at`).
    served: f64,
    /// Units served of requests sent since `empty_sent`: the span's measure.
    span_served: f64,
    /// The span measured last, completed by the answers still on the wire
    /// when it closed.
    measured: Option<Closed>,
    /// Since when the rate has not changed.
    steady_since: Instant,
    /// Units served since then.
    steady_served: f64,
    /// Whether the scope wanted more than its bucket let out since the last
    /// throttle: only then does what the service served measure its refill
    /// (a scope that sent little says little; a stray 429 is no measure).
    starved: bool,
    /// Items answered 429 since the last throttle learned from.
    refused: f64,
    /// The last cut, until it is judged: the rate before it and the share of
    /// 429s that led to it.
    cut: Option<(f64, f64)>,
    /// The 429s the scope is answered whatever its rate.
    noise: Noise,
    /// The share of 429s among its last hundred answers or so (a moving
    /// average): a 429 is stray only when both the share since the last
    /// lesson and this one are small ([`RECENT_STRAY`]), or a scope that
    /// once had a long clean run would call a regular wave of 429s stray for
    /// as long again.
    recent: f64,
}

/// A span that was measured, by when its requests were sent.
#[derive(Debug, Clone, PartialEq)]
struct Closed {
    /// Sent after this (the request whose 429 opened it)...
    open: Instant,
    /// ...and no later than this (the one whose 429 closed it).
    close: Instant,
    /// Units served of requests sent in it, so far.
    served: f64,
    /// The rate it was measured from: its completed measure goes no higher.
    from: f64,
}

impl Closed {
    /// The refill it measures, with the margin.
    fn rate(&self) -> f64 {
        self.served
            / self
                .close
                .saturating_duration_since(self.open)
                .as_secs_f64()
            * MARGIN
    }
}

/// The answers of the spans judged noise, and how many were 429.
#[derive(Debug, Clone, Default, PartialEq)]
struct Noise {
    answers: f64,
    refused: f64,
}

impl Noise {
    /// The share of 429s the scope is answered whatever its rate.
    fn share(&self) -> f64 {
        if self.answers > 0.0 {
            self.refused / self.answers
        } else {
            0.0
        }
    }
}

/// What a throttle taught, for the logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Learned {
    /// The first throttle: the rate was cut, nothing measured yet.
    Cut { from: f64, to: f64 },
    /// The span since the last throttle measured the service's refill.
    Measured {
        from: f64,
        to: f64,
        served: f64,
        span: Duration,
    },
    /// Too soon after the last throttle to measure (the same burst), or the
    /// measure was above the rate already paced at.
    Kept { rate: f64 },
    /// A stray 429: so few of the scope's answers were 429 that the service
    /// was not what held it back (a fault, another limit's brief refusal).
    Stray { rate: f64 },
    /// No more of the scope's answers were 429 than its noise.
    Noise { rate: f64, share: f64 },
    /// The last cut did not lower the share of 429s: they do not follow the
    /// scope's rate, which goes back to what it was; that share is noise.
    Undone { from: f64, to: f64, share: f64 },
}

impl Learned {
    /// Whether the scope's rate is not what it was.
    pub fn changed_the_rate(&self) -> bool {
        matches!(
            self,
            Learned::Cut { .. } | Learned::Measured { .. } | Learned::Undone { .. }
        )
    }
}

impl Rate {
    /// A rate believed to be `per_second`, growing back to at most `ceiling`.
    pub fn new(per_second: f64, ceiling: f64, now: Instant) -> Rate {
        Rate {
            per_second,
            ceiling: ceiling.max(per_second),
            empty_at: None,
            empty_sent: None,
            served: 0.0,
            span_served: 0.0,
            measured: None,
            steady_since: now,
            steady_served: 0.0,
            starved: false,
            refused: 0.0,
            cut: None,
            noise: Noise::default(),
            recent: 0.0,
        }
    }

    /// The scope wanted more than its bucket let out.
    pub fn starved(&mut self) {
        self.starved = true;
    }

    /// Units a second the scope is paced at now.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Whether some of its 429s were found not to follow its rate.
    pub fn noisy(&self) -> bool {
        self.noise.answers > 0.0
    }

    /// Whether a throttle has ever lowered it.
    #[cfg(test)]
    pub fn learned(&self) -> bool {
        self.empty_at.is_some()
    }

    /// The service served `units` at `now`, of a request `sent` then.
    /// Returns the new rate when it rose: it grew after a quiet spell, or
    /// this answer, still on the wire when its span was measured, completed
    /// that measure.
    pub fn served(&mut self, units: f64, now: Instant, sent: Instant) -> Option<f64> {
        let units = units.max(0.0);
        self.recent *= 1.0 - RECENT;
        self.served += units;
        self.steady_served += units;
        if let Some(late) = self
            .measured
            .as_mut()
            .filter(|c| c.open < sent && sent <= c.close)
        {
            late.served += units;
            let completed = late.rate().min(late.from);
            if completed > self.per_second {
                self.per_second = completed;
                return Some(completed);
            }
            return None;
        }
        if self.empty_sent.is_none_or(|open| sent > open) {
            self.span_served += units;
        }
        let steady = now.saturating_duration_since(self.steady_since);
        if self.per_second >= self.ceiling
            || steady < GROW_AFTER
            || self.steady_served < GROW_AFTER_UNITS
        {
            return None;
        }
        self.per_second = (self.per_second * GROWTH).min(self.ceiling);
        self.steady_since = now;
        self.steady_served = 0.0;
        // A quiet spell after a cut shows it helped.
        self.cut = None;
        Some(self.per_second)
    }

    /// The service showed a larger limit than believed (Graph's units): the
    /// rate and its ceiling scale by `factor`.
    pub fn scale(&mut self, factor: f64) {
        self.per_second *= factor;
        self.ceiling *= factor;
    }

    /// The service throttled the scope at `now`, refusing a request `sent`
    /// then: its bucket was empty. A scope whose answers tell its bucket's
    /// state (`informed`) is not cut at its first throttle (the headers
    /// already pace it, and one 429 in answers that arrive out of order says
    /// little); its spans are measured all the same.
    pub fn throttled(&mut self, now: Instant, sent: Instant, informed: bool) -> Learned {
        let from = self.per_second;
        self.refused += 1.0;
        let answers = self.served + self.refused;
        let share = self.refused / answers;
        self.recent = self.recent * (1.0 - RECENT) + RECENT;
        if !self.starved && share < STRAY_SHARE && self.recent < RECENT_STRAY {
            return Learned::Stray { rate: from };
        }
        if answers < MIN_ANSWERS && (self.empty_at.is_some() || !informed) {
            // Too few answers to tell a rate by (a cold scope, one that sends
            // little): keep counting. (A scope its headers pace records its
            // first empty moment all the same.)
            return Learned::Kept { rate: from };
        }
        let learned = match self.empty_at {
            None if informed => Learned::Kept { rate: from },
            None => self.cut_to(from * FIRST_CUT, share),
            Some(since) => {
                let open = self.empty_sent.unwrap_or(since);
                let span = sent.saturating_duration_since(open);
                if now.saturating_duration_since(since) < MIN_SPAN || span < MIN_SPAN {
                    // The same burst (answered, or sent, within a moment of
                    // the first of it): keep counting from that one.
                    return Learned::Kept { rate: from };
                }
                let span_measure = Closed {
                    open,
                    close: sent,
                    served: self.span_served,
                    from,
                };
                let measured = span_measure.rate();
                // A cut after which the 429s are what they were, or not
                // half as many and what the scope's noise is at any rate,
                // did not help. (One after which they fell by half helped,
                // whatever the noise: a limit met at the cold start can look
                // like noise for a span, and undoing each cut that helped
                // kept a scope at its limit, cut and undone by turns.)
                let heard = self.noisy() && self.within_noise();
                if let Some((before, _)) = self.cut.filter(|&(_, then)| {
                    (heard && share > then * HELPED) || noise_again(share, then)
                }) {
                    self.per_second = before;
                    self.hear_noise();
                    Learned::Undone {
                        from,
                        to: before,
                        share,
                    }
                } else if self.within_noise() {
                    self.hear_noise();
                    Learned::Noise { rate: from, share }
                } else if measured < from && self.held_back(share) && self.span_served >= MIN_SERVED
                {
                    self.measured = Some(span_measure);
                    match self.cut_to(measured, share) {
                        Learned::Cut { from, to } => Learned::Measured {
                            from,
                            to,
                            served: self.span_served,
                            span,
                        },
                        other => other,
                    }
                } else {
                    Learned::Kept { rate: from }
                }
            }
        };
        if !matches!(learned, Learned::Measured { .. }) {
            // Only a measure is completed by the answers still on the wire.
            self.measured = None;
        }
        self.empty_at = Some(now);
        self.empty_sent = Some(sent);
        self.served = 0.0;
        self.span_served = 0.0;
        self.refused = 0.0;
        self.starved = false;
        if !matches!(learned, Learned::Noise { .. } | Learned::Undone { .. }) {
            // Noise is no reason to wait longer before growing.
            self.steady_since = now;
            self.steady_served = 0.0;
        }
        if !matches!(learned, Learned::Cut { .. } | Learned::Measured { .. }) {
            self.cut = None;
        }
        learned
    }

    /// Whether the service, not the scope's demand, set what it served over
    /// the span: the scope wanted more than its pace let out, or more than
    /// noise can be of its answers were 429 (a scope whose retries come back
    /// due one by one after each `Retry-After` never waits on its own pace,
    /// and was met at its limit wave after wave without it).
    fn held_back(&self, share: f64) -> bool {
        self.starved || (share > NOISE_AT_MOST && self.refused >= HELD_BACK_429S)
    }

    /// Whether the span's 429s are as many as the scope's noise gives (and
    /// no more than noise can be: [`NOISE_AT_MOST`]).
    fn within_noise(&self) -> bool {
        let n = self.served + self.refused;
        let p = self.noise.share();
        self.refused <= n * NOISE_AT_MOST
            && self.refused <= n * p + NOISE_SIGMAS * (n * p * (1.0 - p)).sqrt()
    }

    /// The span's answers were noise: they refine its share.
    fn hear_noise(&mut self) {
        self.noise.answers += self.served + self.refused;
        self.noise.refused += self.refused;
    }

    /// Lowers the rate to `to` (not below the floor), remembering what it
    /// was and the `share` of 429s that led here, for the next span to judge.
    fn cut_to(&mut self, to: f64, share: f64) -> Learned {
        let from = self.per_second;
        self.per_second = to.max(FLOOR);
        self.cut = Some((from, share));
        Learned::Cut {
            from,
            to: self.per_second,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// A cold scope held back by its pace, answered `MIN_ANSWERS` times by `now`:
    /// its first throttle is judged.
    fn warmed(r: &mut Rate, now: Instant) {
        r.starved();
        r.served(MIN_ANSWERS, now, now);
    }

    #[test]
    fn the_first_throttle_halves_then_spans_measure_the_refill() {
        let t0 = Instant::now();
        let mut r = Rate::new(25.0, 25.0, t0);
        assert!(!r.learned());
        warmed(&mut r, t0);
        assert_eq!(
            r.throttled(at(t0, 10_000), at(t0, 10_000), false),
            Learned::Cut {
                from: 25.0,
                to: 12.5
            }
        );
        // 10 s later, 80 served while the scope wanted more: the service
        // refills 8 a second.
        r.starved();
        for i in 1..=80 {
            assert_eq!(
                r.served(1.0, at(t0, 10_000 + i * 50), at(t0, 10_000 + i * 50)),
                None,
                "no growth yet"
            );
        }
        match r.throttled(at(t0, 20_000), at(t0, 20_000), false) {
            Learned::Measured {
                from,
                to,
                served,
                span,
            } => {
                assert_eq!((from, served, span), (12.5, 80.0, Duration::from_secs(10)));
                assert!((to - 8.0 * MARGIN).abs() < 1e-9, "{to}");
            }
            other => panic!("{other:?}"),
        }
        // The same burst, answered a moment later: nothing new to measure.
        assert_eq!(
            r.throttled(at(t0, 20_100), at(t0, 20_100), false),
            Learned::Kept { rate: 8.0 * MARGIN }
        );
        // A measure above the rate paced at is no reason to rise on a throttle.
        r.starved();
        for _ in 0..400 {
            r.served(1.0, at(t0, 21_000), at(t0, 21_000));
        }
        assert_eq!(
            r.throttled(at(t0, 22_000), at(t0, 22_000), false),
            Learned::Kept { rate: 8.0 * MARGIN }
        );
        // One 429 among 100 successes of a scope its pace did not hold back
        // is stray.
        for _ in 0..100 {
            r.served(1.0, at(t0, 23_000), at(t0, 23_000));
        }
        assert_eq!(
            r.throttled(at(t0, 24_000), at(t0, 24_000), false),
            Learned::Stray { rate: 8.0 * MARGIN }
        );
    }

    #[test]
    fn a_quiet_scope_grows_back_to_its_ceiling_and_no_further() {
        let t0 = Instant::now();
        let mut r = Rate::new(25.0, 25.0, t0);
        warmed(&mut r, t0);
        r.throttled(t0, t0, false);
        assert_eq!(r.per_second(), 12.5);
        assert_eq!(
            r.served(19.0, at(t0, 4_999), at(t0, 4_999)),
            None,
            "not yet"
        );
        assert_eq!(
            r.served(0.5, at(t0, 5_000), at(t0, 5_000)),
            None,
            "5 s, but fewer than 20 served: a slow scope grows by its count"
        );
        assert_eq!(
            r.served(0.5, at(t0, 5_001), at(t0, 5_001)),
            Some(12.5 * GROWTH)
        );
        assert_eq!(
            r.served(20.0, at(t0, 6_000), at(t0, 6_000)),
            None,
            "once per quiet spell"
        );
        let mut t = 5_000;
        let mut grew = 1;
        while r.per_second() < 25.0 {
            t += 5_000;
            r.served(20.0, at(t0, t), at(t0, t));
            grew += 1;
            assert!(grew < 30, "it reaches the ceiling");
        }
        assert_eq!(r.per_second(), 25.0, "capped at the ceiling");
        assert_eq!(r.served(1.0, at(t0, t + 60_000), at(t0, t + 60_000)), None);
    }

    #[test]
    fn a_span_of_few_answers_teaches_nothing() {
        // A scope that sends little (a subscription's few writes): after its
        // first lesson, 2 served and a 429 over 2 s is no measure of a rate.
        let t0 = Instant::now();
        let mut r = Rate::new(10.0, 10.0, t0);
        warmed(&mut r, t0);
        r.throttled(t0, t0, false);
        let cut = r.per_second();
        r.starved();
        r.served(2.0, at(t0, 1_000), at(t0, 1_000));
        assert_eq!(
            r.throttled(at(t0, 2_000), at(t0, 2_000), false),
            Learned::Kept { rate: cut }
        );
        assert_eq!(r.per_second(), cut, "not measured down to 2 served in 2 s");
    }

    #[test]
    fn one_429_among_the_first_answers_teaches_nothing() {
        let t0 = Instant::now();
        let mut r = Rate::new(25.0, 25.0, t0);
        r.starved();
        r.served(3.0, t0, t0);
        assert_eq!(r.throttled(t0, t0, false), Learned::Kept { rate: 25.0 });
        assert!(!r.learned());
    }

    #[test]
    fn a_scope_its_headers_pace_is_not_cut_at_its_first_throttle() {
        let t0 = Instant::now();
        let mut r = Rate::new(25.0, 25.0, t0);
        assert_eq!(r.throttled(t0, t0, true), Learned::Kept { rate: 25.0 });
        assert!(r.learned(), "the empty moment is recorded");
        for _ in 0..50 {
            r.served(1.0, at(t0, 1_000), at(t0, 1_000));
        }
        r.starved();
        assert!(
            matches!(
                r.throttled(at(t0, 10_000), at(t0, 10_000), true),
                Learned::Measured { .. }
            ),
            "a span is measured all the same"
        );
        assert!((r.per_second() - 5.0 * MARGIN).abs() < 1e-9);
    }

    #[test]
    fn a_scope_that_sent_little_measures_nothing() {
        let t0 = Instant::now();
        let mut r = Rate::new(25.0, 25.0, t0);
        warmed(&mut r, t0);
        r.throttled(t0, t0, false);
        r.served(3.0, at(t0, 1_000), at(t0, 1_000));
        assert_eq!(
            r.throttled(at(t0, 2_000), at(t0, 2_000), false),
            Learned::Kept { rate: 12.5 },
            "3 served in 2 s, never held back: a stray 429, not the refill"
        );
    }

    #[test]
    fn a_stray_429_among_many_successes_is_not_learned_from() {
        let t0 = Instant::now();
        let mut r = Rate::new(25.0, 25.0, t0);
        for _ in 0..100 {
            r.served(1.0, t0, t0);
        }
        assert_eq!(
            r.throttled(at(t0, 2_000), at(t0, 2_000), false),
            Learned::Stray { rate: 25.0 }
        );
        assert!(!r.learned(), "nothing learned");
        // When 429s are a tenth of the answers, the service is the limit.
        for i in 0..12 {
            r.throttled(at(t0, 2_000 + i), at(t0, 2_000 + i), false);
        }
        assert!(r.learned() && r.per_second() < 25.0, "{}", r.per_second());
    }

    #[test]
    fn a_wave_of_429s_after_a_long_clean_run_is_not_stray() {
        let t0 = Instant::now();
        let mut r = Rate::new(350.0, 350.0, t0);
        // A bucket's burst served clean, not held back by the pace; then its
        // refill's worth served and a wave of 429s, again and again.
        for _ in 0..500 {
            r.served(1.0, t0, t0);
        }
        let mut t = 0;
        let mut lessons = vec![];
        for _ in 0..3 {
            for _ in 0..16 {
                t += 1;
                lessons.push(r.throttled(at(t0, t), at(t0, t), false));
            }
            t += 2_500;
            for _ in 0..100 {
                r.served(1.0, at(t0, t), at(t0, t));
            }
        }
        let stray = lessons
            .iter()
            .filter(|l| matches!(l, Learned::Stray { .. }))
            .count();
        // Since the start, 48 of 848 answers were 429 (5.7%): each would be
        // stray by that share alone. The last hundred or so held more.
        assert!(stray < 16, "{stray} of 48 stray: {lessons:?}");
        assert!(r.per_second() < 350.0, "{lessons:?}");
    }

    #[test]
    fn a_cut_that_does_not_lower_the_share_of_429s_is_undone() {
        let t0 = Instant::now();
        let mut r = Rate::new(100.0, 100.0, t0);
        // Answers 429 at random, one in twenty, whatever the rate.
        let mut t = 0;
        let span = |r: &mut Rate, t: &mut u64| {
            r.starved();
            for _ in 0..19 {
                *t += 10;
                r.served(1.0, at(t0, *t), at(t0, *t));
            }
            *t += 1_000;
            r.throttled(at(t0, *t), at(t0, *t), false)
        };
        assert_eq!(
            r.throttled(t0, t0, false),
            Learned::Kept { rate: 100.0 },
            "the first 429, before any success: too few answers to tell"
        );
        assert_eq!(
            span(&mut r, &mut t),
            Learned::Cut {
                from: 100.0,
                to: 50.0
            },
            "2 of 21 answers, held back by its own pace"
        );
        match span(&mut r, &mut t) {
            Learned::Undone { from, to, share } => {
                assert_eq!((from, to, share), (50.0, 100.0, 0.05));
            }
            other => panic!("{other:?}"),
        }
        for _ in 0..20 {
            assert_eq!(
                span(&mut r, &mut t),
                Learned::Noise {
                    rate: r.per_second(),
                    share: 0.05
                }
            );
        }
        assert!(
            r.per_second() > 50.0,
            "noise does not stop it growing back: {}",
            r.per_second()
        );
        // A real limit shows more 429s than the noise, and is learned.
        r.starved();
        for _ in 0..15 {
            t += 100;
            r.served(1.0, at(t0, t), at(t0, t));
        }
        t += 1_000;
        for _ in 0..5 {
            r.refused += 1.0;
        }
        assert!(matches!(
            r.throttled(at(t0, t), at(t0, t), false),
            Learned::Measured { .. }
        ));
    }

    /// The stop 34 CI failure (59% of attempts 429 against a plain bucket):
    /// a cut at the cold start was undone as noise, and from then on each
    /// cut that helped was undone as noise too, the span after it holding
    /// fewer 429s than the noise heard.
    #[test]
    fn noise_heard_does_not_undo_a_cut_that_helped() {
        let t0 = Instant::now();
        let mut r = Rate::new(350.0, 350.0, t0);
        let mut t = 0;
        // A span of `served` successes and `refused` 429s, the last at its end.
        let span = |r: &mut Rate, t: &mut u64, served: u32, refused: u32| {
            r.starved();
            for _ in 0..served {
                *t += 5;
                r.served(1.0, at(t0, *t), at(t0, *t));
            }
            r.refused += f64::from(refused - 1);
            *t += 1_100;
            r.throttled(at(t0, *t), at(t0, *t), false)
        };
        assert!(matches!(span(&mut r, &mut t, 100, 20), Learned::Cut { .. }));
        // The cold start's next span: about the same share (19% for 17%).
        assert!(matches!(
            span(&mut r, &mut t, 130, 30),
            Learned::Undone { .. }
        ));
        assert!(r.noisy());
        // Half the answers 429: a limit, not noise, and learned.
        let cut = match span(&mut r, &mut t, 40, 40) {
            Learned::Measured { to, .. } => to,
            other => panic!("{other:?}"),
        };
        // Two in five are no noise either, whatever the noise heard (19%).
        assert!(matches!(
            span(&mut r, &mut t, 30, 20),
            Learned::Measured { .. }
        ));
        let cut = r.per_second().min(cut);
        // The cut helped: 429s fell to a tenth of the answers (within
        // the noise heard). It stands.
        let after = span(&mut r, &mut t, 36, 4);
        assert!(!matches!(after, Learned::Undone { .. }), "{after:?}");
        assert!(r.per_second() <= cut, "{} for {cut}", r.per_second());
    }

    /// Stop 34's failure traced under load: after a cut undone, the scope's
    /// retries came back due one by one, each let out at once (its pace of
    /// 175 a second far above them), so it never waited on its pace; the
    /// service (50 a second) answered half of each wave 429, and every span
    /// was kept.
    #[test]
    fn a_span_mostly_429_measures_the_refill_without_waiting_on_the_pace() {
        let t0 = Instant::now();
        let mut r = Rate::new(175.0, 350.0, t0);
        let mut t = 0;
        let mut wave = |r: &mut Rate| {
            for _ in 0..54 {
                t += 2;
                r.served(1.0, at(t0, t), at(t0, t));
            }
            r.refused += 59.0;
            t += 1_080 - 54 * 2;
            r.throttled(at(t0, t), at(t0, t), false)
        };
        // The first wave's empty moment: nothing measured yet, not stray.
        assert!(matches!(wave(&mut r), Learned::Cut { .. }));
        match wave(&mut r) {
            Learned::Measured { to, served, .. } => {
                assert_eq!(served, 54.0);
                assert!((to - 54.0 / 1.08 * MARGIN).abs() < 1e-9, "{to}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// Bench row (p)'s slow runs (2,000 Graph updates against a plain bucket
    /// refilling 40 a second), traced: spans were counted by when their
    /// answers came back. The first after the cold start took in the burst
    /// still on the wire (137 served in 1.43 s), the next lost a batch of 10
    /// that came back after its closing 429 (39 in 1.2 s), and the rate sat at
    /// 31 a second for half the run. Counted by when the requests were sent,
    /// the late answers completing the measure, each span measures the refill.
    #[test]
    fn a_span_is_counted_by_when_its_requests_were_sent() {
        let t0 = Instant::now();
        let mut r = Rate::new(175.0, 350.0, t0);
        warmed(&mut r, t0);
        // The first 429 comes back at 1 s; its request was sent at 0.9 s.
        assert_eq!(
            r.throttled(at(t0, 1_000), at(t0, 900), false),
            Learned::Cut {
                from: 175.0,
                to: 87.5
            }
        );
        r.starved();
        // The burst's tail, sent before that request, comes back after it.
        for i in 0..100 {
            assert_eq!(r.served(1.0, at(t0, 1_000 + i), at(t0, 800)), None);
        }
        // 38 sent in the span, each answered 100 ms later; then a 429 to a
        // request sent at 2.1 s.
        for i in 1..=38 {
            let sent = 900 + i * 31;
            r.served(1.0, at(t0, sent + 100), at(t0, sent));
        }
        match r.throttled(at(t0, 2_200), at(t0, 2_100), false) {
            Learned::Measured {
                from,
                to,
                served,
                span,
            } => {
                assert_eq!((from, served), (87.5, 38.0));
                assert_eq!(span, Duration::from_millis(1_200));
                assert!((to - 38.0 / 1.2 * MARGIN).abs() < 1e-9, "{to}");
            }
            other => panic!("{other:?}"),
        }
        // A batch of 10 sent with that request comes back after its 429:
        // the span served 48 in 1.2 s.
        let mut rose = None;
        for _ in 0..10 {
            rose = r.served(1.0, at(t0, 2_250), at(t0, 2_100)).or(rose);
        }
        let refill = 48.0 / 1.2 * MARGIN;
        assert!((r.per_second() - refill).abs() < 1e-9, "{}", r.per_second());
        assert_eq!(rose, Some(r.per_second()), "the rise is told");
        // Answers to requests sent after the closing one, or before the
        // span, change nothing.
        assert_eq!(r.served(1.0, at(t0, 2_300), at(t0, 2_150)), None);
        assert_eq!(r.served(1.0, at(t0, 2_300), at(t0, 850)), None);
        assert!((r.per_second() - refill).abs() < 1e-9);
        // However many come back late, the measure goes no higher than the
        // rate the span began at.
        for _ in 0..1_000 {
            r.served(1.0, at(t0, 2_400), at(t0, 2_000));
        }
        assert_eq!(r.per_second(), 87.5);
    }

    #[test]
    fn it_never_goes_below_one_a_minute() {
        let t0 = Instant::now();
        let mut r = Rate::new(0.02, 0.02, t0);
        warmed(&mut r, t0);
        r.throttled(t0, t0, false);
        assert_eq!(r.per_second(), FLOOR);
        r.starved();
        r.throttled(at(t0, 600_000), at(t0, 600_000), false);
        assert_eq!(r.per_second(), FLOOR, "nothing served in ten minutes");
        r.scale(2.0);
        assert_eq!(r.per_second(), 2.0 * FLOOR);
    }
}
