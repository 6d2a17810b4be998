//! Flood limiting: how many chat messages a sender may send, as a token bucket, and what a
//! receiver keeps per sender to stop a flood and say so once.
//!
//! This module owns the arithmetic of the bucket (it refills at a steady rate up to a burst
//! size, and each message takes one token), the receiving side's flood gate
//! ([`FloodGate`]): the rule that decides, for one sender's stream, whether a message is
//! within the limit, and the count of what was dropped with its delayed notice
//! ([`FloodWatch`], used by the server for each client and by a peer for each member). The
//! gate counts messages by when the sender says it first sent them, bounded so that a lying
//! sender gains little (see [`FloodGate`]); that is what lets a backlog repeated after an
//! outage or a partition through, while a flood is still stopped. It does not own what the
//! notice says nor how it travels (the server and peer cores), what else a flood costs
//! (the server's warnings and kick), nor the sending side's pacing (`pacing`). Time is
//! passed in as `now`, never read from the clock, so tests drive it with a fake clock.

use std::time::{Duration, Instant};

use crate::wire::FloodTerms;

/// A sending limit: `rate_per_sec` messages per second on average, with bursts of up to
/// `burst` messages after a quiet spell (people paste a few lines at once).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloodLimit {
    /// Sustained messages per second.
    pub rate_per_sec: f64,
    /// Messages that may be sent at once after the bucket has filled up.
    pub burst: u32,
}

impl FloodLimit {
    /// The limit from the command line, or `None` when a zero rate switches limiting off.
    pub fn from_options(rate_per_sec: f64, burst: u32) -> Option<FloodLimit> {
        (rate_per_sec > 0.0).then(|| FloodLimit {
            rate_per_sec,
            // A bucket that can never hold a whole token would refuse everything.
            burst: burst.max(1),
        })
    }

    /// How a receiver states a limit (`None`: no limit) to the sender it applies to. A rate
    /// is rounded to a thousandth; a burst beyond what the field holds is sent as its
    /// largest value.
    pub fn terms(limit: Option<FloodLimit>) -> FloodTerms {
        let Some(limit) = limit else {
            return FloodTerms::NONE;
        };
        let rate_milli = (limit.rate_per_sec * 1000.0).round();
        FloodTerms {
            // At least one thousandth: a positive rate must not read as "no limit".
            rate_milli: rate_milli.clamp(1.0, f64::from(u32::MAX)) as u32,
            burst: u16::try_from(limit.burst).unwrap_or(u16::MAX),
        }
    }

    /// The limit a sender was told (`None`: no limit).
    pub fn from_terms(terms: FloodTerms) -> Option<FloodLimit> {
        FloodLimit::from_options(f64::from(terms.rate_milli) / 1000.0, u32::from(terms.burst))
    }
}

/// One client's bucket. It starts full, so a newcomer can say a few things at once.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: FloodLimit,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: FloodLimit, now: Instant) -> TokenBucket {
        TokenBucket {
            limit,
            tokens: f64::from(limit.burst),
            refilled_at: now,
        }
    }

    /// Takes one token if there is one: `true` means the message may go out.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.try_take_within(now, 0.0)
    }

    /// Takes one token if there are at least `1 - slack` (so the bucket may go `slack`
    /// below empty): what a receiver allows for rounding between its arithmetic and the
    /// sender's.
    fn try_take_within(&mut self, now: Instant, slack: f64) -> bool {
        self.refill(now);
        if self.tokens + slack >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        // A clock that appears to run backwards refills nothing (a flood gate may ask about
        // a moment before the bucket's last refill: see `FloodGate::admit`).
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.limit.rate_per_sec).min(f64::from(self.limit.burst));
        self.refilled_at = now;
    }

    /// When the next token will be there: the last refill if there is one now. Never
    /// earlier than the truth, so waiting until then and trying again succeeds.
    pub fn next_token_at(&self) -> Instant {
        if self.tokens >= 1.0 {
            return self.refilled_at;
        }
        let wait = (1.0 - self.tokens) / self.limit.rate_per_sec;
        // Rounded up to the next whole millisecond, plus one, so float rounding can never
        // leave the caller a hair short of the token and waking in a loop.
        let wait_ms = (wait * 1000.0).ceil().min(1e12) as u64 + 1;
        self.refilled_at + Duration::from_millis(wait_ms)
    }

    /// The limit this bucket applies.
    pub fn limit(&self) -> FloodLimit {
        self.limit
    }

    /// Applies another limit from `now` on, keeping the tokens (at most the new burst).
    pub fn set_limit(&mut self, now: Instant, limit: FloodLimit) {
        self.refill(now);
        self.limit = limit;
        self.tokens = self.tokens.min(f64::from(limit.burst));
    }
}

/// How far below empty a [`FloodGate`]'s bucket may go: the sender's pacing and the gate
/// do the same arithmetic on the same stamps, but the gate's estimate of the sender's clock
/// may slip by a few milliseconds. A liar gains a quarter of a message from it, once.
const GATE_SLACK: f64 = 0.25;

/// The flood limit applied to one sender's stream, counting each message at the moment the
/// sender says it first sent it rather than when it arrived.
///
/// A sender stamps every flood-limited message with its own clock (milliseconds since some
/// start of its choosing) and tells the receiver that clock once (for a client, the welcome
/// is its zero; a peer says it in its join, welcome or hello). A backlog repeated at once
/// after an outage or a partition therefore counts at the pace it was first sent, so an
/// honest sender that paces itself (`pacing`) is never cut, however its messages bunch up
/// on the way. What a liar can claim is bounded:
///
/// - a message never counts later than it arrived: the estimate of the sender's clock only
///   moves so that every stamp maps to no later than its arrival, so claiming the future
///   buys nothing;
/// - a message never counts earlier than `max_lag` before it arrived, and never earlier
///   than the message before it: claiming the past buys at most one extra `max_lag` worth
///   of the rate, and only after keeping quiet for as long.
///
/// So over any stretch of time `t`, at most `burst + rate × (t + max_lag)` messages pass:
/// the sustained rate is the limit's, and the largest burst a liar can save up is
/// `rate × max_lag` beyond the limit's own.
#[derive(Debug, Clone)]
pub struct FloodGate {
    bucket: TokenBucket,
    /// Our instant at which the sender's clock read zero, as far as we can tell (the
    /// earliest its frames allow).
    origin: Option<Instant>,
    /// The moment the previous message counted at: later ones never count earlier.
    last: Option<Instant>,
    max_lag: Duration,
}

impl FloodGate {
    /// A gate with a full bucket, admitting stamps at most `max_lag` old.
    pub fn new(limit: FloodLimit, now: Instant, max_lag: Duration) -> FloodGate {
        FloodGate {
            bucket: TokenBucket::new(limit, now),
            origin: None,
            last: None,
            max_lag,
        }
    }

    /// The sender's clock read `clock_ms` when it sent a frame that arrived at `now`.
    pub fn sender_clock(&mut self, now: Instant, clock_ms: u64) {
        // The frame took some time to arrive: the earliest estimate is the best one.
        if let Some(origin) = now.checked_sub(Duration::from_millis(clock_ms)) {
            self.origin = Some(self.origin.map_or(origin, |known| known.min(origin)));
        }
    }

    /// Whether a message that arrived at `now` is within the limit. `sent_ms` is its stamp
    /// on the sender's clock; `None` for a sender that stamps nothing (a guest's line),
    /// which counts when it arrives.
    pub fn admit(&mut self, now: Instant, sent_ms: Option<u64>) -> bool {
        let sent = Duration::from_millis(sent_ms.unwrap_or(0));
        if sent_ms.is_some() {
            // A stamp later than the arrival moves our idea of the sender's clock back.
            self.sender_clock(now, sent.as_millis() as u64);
        }
        let claimed = match (sent_ms, self.origin) {
            (Some(_), Some(origin)) => origin.checked_add(sent).unwrap_or(now).min(now),
            _ => now,
        };
        let mut at = match now.checked_sub(self.max_lag) {
            Some(earliest) => claimed.max(earliest),
            None => claimed,
        };
        if let Some(last) = self.last {
            at = at.max(last);
        }
        self.last = Some(at);
        self.bucket.try_take_within(at, GATE_SLACK)
    }
}

/// How long after the first dropped message the sender is told how many were dropped. The
/// delay gathers a whole burst into one notice instead of one notice per dropped message.
pub const FLOOD_NOTICE_DELAY: Duration = Duration::from_secs(1);

/// One sender's flood gate (none while flood limiting is off) with the count of what it
/// dropped and when the sender is to be told.
#[derive(Debug, Clone)]
pub struct FloodWatch {
    gate: Option<FloodGate>,
    /// Messages dropped since the last notice.
    dropped: u32,
    /// When the next notice is due: [`FLOOD_NOTICE_DELAY`] after the first of them.
    notice_at: Option<Instant>,
}

/// What [`FloodWatch::admit`] decided about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    /// Within the limit.
    Admitted,
    /// Over it; counted for the notice already due.
    Dropped,
    /// Over it, the first since the last notice: one is due at this instant.
    DroppedNoticeAt(Instant),
}

impl Admission {
    /// Whether the message goes through.
    pub fn admitted(self) -> bool {
        self == Admission::Admitted
    }
}

impl FloodWatch {
    /// A watch over `gate`; `None` admits everything.
    pub fn new(gate: Option<FloodGate>) -> FloodWatch {
        FloodWatch {
            gate,
            dropped: 0,
            notice_at: None,
        }
    }

    /// The sender's clock read `clock_ms` at `now` (see [`FloodGate::sender_clock`]).
    pub fn sender_clock(&mut self, now: Instant, clock_ms: u64) {
        if let Some(gate) = &mut self.gate {
            gate.sender_clock(now, clock_ms);
        }
    }

    /// Whether a message that arrived at `now`, stamped `sent_ms` (see
    /// [`FloodGate::admit`]), is within the limit; one that is not is counted for the
    /// notice.
    pub fn admit(&mut self, now: Instant, sent_ms: Option<u64>) -> Admission {
        let Some(gate) = &mut self.gate else {
            return Admission::Admitted;
        };
        if gate.admit(now, sent_ms) {
            return Admission::Admitted;
        }
        self.dropped = self.dropped.saturating_add(1);
        if self.notice_at.is_some() {
            return Admission::Dropped;
        }
        let at = now + FLOOD_NOTICE_DELAY;
        self.notice_at = Some(at);
        Admission::DroppedNoticeAt(at)
    }

    /// When the sender is next to be told, if anything was dropped.
    pub fn notice_deadline(&self) -> Option<Instant> {
        self.notice_at
    }

    /// How many messages were dropped, once the notice is due at `now` (the count starts
    /// again from zero).
    pub fn take_notice(&mut self, now: Instant) -> Option<u32> {
        if self.notice_at.is_none_or(|at| at > now) {
            return None;
        }
        self.notice_at = None;
        Some(std::mem::take(&mut self.dropped)).filter(|&dropped| dropped > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limit(rate: f64, burst: u32) -> FloodLimit {
        FloodLimit::from_options(rate, burst).expect("enabled")
    }

    fn watch(now: Instant) -> FloodWatch {
        FloodWatch::new(Some(FloodGate::new(
            limit(5.0, 2),
            now,
            Duration::from_secs(10),
        )))
    }

    #[test]
    fn a_watch_without_a_gate_admits_everything_and_never_tells() {
        let start = Instant::now();
        let mut watch = FloodWatch::new(None);
        assert!((0..100).all(|_| watch.admit(start, None).admitted()));
        assert_eq!(watch.notice_deadline(), None);
        assert_eq!(watch.take_notice(start + Duration::from_secs(5)), None);
    }

    #[test]
    fn the_first_drop_schedules_one_notice_for_the_whole_burst() {
        let start = Instant::now();
        let mut watch = watch(start);
        assert_eq!(watch.admit(start, None), Admission::Admitted);
        assert_eq!(watch.admit(start, None), Admission::Admitted);
        let due = start + FLOOD_NOTICE_DELAY;
        assert_eq!(watch.admit(start, None), Admission::DroppedNoticeAt(due));
        assert_eq!(watch.admit(start, None), Admission::Dropped);
        assert_eq!(
            watch.admit(start + Duration::from_millis(10), None),
            Admission::Dropped
        );
        assert_eq!(watch.notice_deadline(), Some(due));
        assert_eq!(watch.take_notice(due - Duration::from_millis(1)), None);
        assert_eq!(watch.take_notice(due), Some(3));
        assert_eq!(watch.notice_deadline(), None);
        assert_eq!(watch.take_notice(due), None);
    }

    #[test]
    fn drops_after_a_notice_start_the_next_one() {
        let start = Instant::now();
        let mut watch = watch(start);
        while watch.admit(start, None).admitted() {}
        let first = start + FLOOD_NOTICE_DELAY;
        assert_eq!(watch.take_notice(first), Some(1));
        // A second later the bucket is full again: one burst passes, the rest is counted.
        let later = first + Duration::from_millis(100);
        let admitted = (0..10)
            .filter(|_| watch.admit(later, None).admitted())
            .count();
        assert_eq!(admitted, 2);
        assert_eq!(watch.notice_deadline(), Some(later + FLOOD_NOTICE_DELAY));
        assert_eq!(watch.take_notice(later + FLOOD_NOTICE_DELAY), Some(8));
    }

    #[test]
    fn a_full_bucket_allows_one_burst_then_refuses() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit(5.0, 10), start);
        let allowed = (0..15).filter(|_| bucket.try_take(start)).count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit(5.0, 10), start);
        while bucket.try_take(start) {}
        // 5 per second: one token every 200 ms.
        assert!(!bucket.try_take(start + Duration::from_millis(199)));
        assert!(bucket.try_take(start + Duration::from_millis(200)));
        assert!(!bucket.try_take(start + Duration::from_millis(200)));
        let later = start + Duration::from_secs(1) + Duration::from_millis(200);
        let allowed = (0..10).filter(|_| bucket.try_take(later)).count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn sustained_rate_matches_the_limit() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit(5.0, 10), start);
        // Someone trying 100 messages a second for 10 seconds.
        let allowed = (0..1000)
            .filter(|i| bucket.try_take(start + Duration::from_millis(i * 10)))
            .count();
        // The initial burst of 10 plus 5 per second for ~10 s.
        assert!((58..=61).contains(&allowed), "{allowed}");
    }

    #[test]
    fn never_fills_beyond_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit(5.0, 3), start);
        let much_later = start + Duration::from_secs(3600);
        let allowed = (0..10).filter(|_| bucket.try_take(much_later)).count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn next_token_at_is_never_early() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit(5.0, 2), start);
        assert_eq!(bucket.next_token_at(), start);
        assert!(bucket.try_take(start) && bucket.try_take(start));
        let next = bucket.next_token_at();
        assert!(next > start + Duration::from_millis(199), "{next:?}");
        assert!(next <= start + Duration::from_millis(202));
        assert!(!bucket.try_take(next - Duration::from_millis(2)));
        assert!(bucket.try_take(next));
    }

    const LAG: Duration = Duration::from_secs(30);

    #[test]
    fn a_gate_counts_a_backlog_at_the_pace_it_was_sent() {
        let start = Instant::now();
        let mut gate = FloodGate::new(limit(5.0, 10), start, LAG);
        gate.sender_clock(start, 0);
        // 60 messages sent 200 ms apart after the first 10 (what a paced sender does), all
        // arriving together 15 s later (a partition healed).
        let stamps: Vec<u64> = (0..10)
            .map(|_| 0)
            .chain((1..=50).map(|i| i * 200))
            .collect();
        let arrival = start + Duration::from_secs(15);
        assert!(stamps.iter().all(|&ms| gate.admit(arrival, Some(ms))));
        // Counted by arrival, the same backlog would be cut to the burst.
        let mut naive = FloodGate::new(limit(5.0, 10), start, LAG);
        let passed = stamps.iter().filter(|_| naive.admit(arrival, None)).count();
        assert_eq!(passed, 10);
    }

    #[test]
    fn a_gate_still_stops_a_flood_whatever_the_stamps_say() {
        let start = Instant::now();
        // Stamps from the future: they count when they arrive.
        let mut gate = FloodGate::new(limit(5.0, 10), start, LAG);
        gate.sender_clock(start, 0);
        let passed = (0..100)
            .filter(|i| gate.admit(start, Some(1_000_000 + i * 10_000)))
            .count();
        assert_eq!(passed, 10);
        // Stamps spread over an hour in the past, sent an hour in: at most one lag's
        // worth of the rate beyond the burst.
        let mut gate = FloodGate::new(limit(5.0, 10), start, LAG);
        gate.sender_clock(start, 0);
        let hour = start + Duration::from_secs(3600);
        let passed = (0..20_000u64)
            .filter(|i| gate.admit(hour, Some(i * 180)))
            .count();
        assert!((155..=161).contains(&passed), "{passed}");
        // And then no more than the rate: the saved-up time is spent.
        let passed = (0..100u64)
            .filter(|i| gate.admit(hour + Duration::from_secs(1), Some(3_600_000 + i)))
            .count();
        assert!(passed <= 6, "{passed}");
        // Stamps going backwards count no earlier than the one before.
        let mut gate = FloodGate::new(limit(5.0, 10), start, LAG);
        gate.sender_clock(start, 0);
        let later = start + Duration::from_secs(10);
        let passed = (0..100u64)
            .filter(|i| gate.admit(later, Some(10_000 - i * 100)))
            .count();
        assert_eq!(passed, 10);
    }

    #[test]
    fn a_gate_learns_a_clock_that_is_ahead_from_the_stamps() {
        let start = Instant::now();
        let mut gate = FloodGate::new(limit(5.0, 10), start, LAG);
        // The sender's clock said 5 s at our start, but its hello was slow: by its stamps,
        // its clock is 7 s ahead of ours. Paced messages 200 ms apart all pass.
        gate.sender_clock(start, 5_000);
        let passed = (0..60u64)
            .filter(|i| {
                let now = start + Duration::from_millis(i * 200);
                gate.admit(now, Some(7_000 + i * 200))
            })
            .count();
        assert_eq!(passed, 60);
    }

    #[test]
    fn zero_rate_disables_limiting() {
        assert_eq!(FloodLimit::from_options(0.0, 10), None);
        assert_eq!(limit(1.0, 0).burst, 1);
    }
}
