//! Joining: one attempt to join, shared by the client joining a server and a peer joining a
//! room — which address to ask and when, the nonce every answer must repeat, the cookie the
//! asked address gave, when to move to the next address, and when to give up (or, after an
//! outage, never give up and back off).
//!
//! [`JoinAttempt`] owns that schedule and nothing else: what a join frame looks like and how
//! answers are read are the roles' (`client`, `peer`). Like the roles it reads no clock:
//! every method takes `now`.

use std::time::{Duration, Instant};

use super::token;

/// How long to wait for the server to answer the first join before giving up. (Once a
/// session has begun, losing it is an outage, and the client never gives up rejoining.)
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// After an outage, the first wait between two joins; it doubles up to
/// [`REJOIN_MAX_RETRY`].
pub const REJOIN_FIRST_RETRY: Duration = Duration::from_secs(1);

/// The longest wait between two joins while the server is away.
pub const REJOIN_MAX_RETRY: Duration = Duration::from_secs(30);

/// How often an unanswered join is repeated (UDP may have lost it, or the answer).
pub const JOIN_RETRY: Duration = Duration::from_millis(500);

/// How long to wait before asking again a server that answered "busy" (`Refused Busy`):
/// it is saturated, and joins only add to its load. A busy answer is an answer: the
/// attempt's [`JOIN_TIMEOUT`] starts again, so a client waits out a long join storm.
pub const BUSY_RETRY: Duration = Duration::from_secs(2);

/// How long to keep asking one of the server's addresses before trying the next one.
pub const ADDRESS_FALLBACK: Duration = Duration::from_secs(1);

/// One attempt to join: asking a list of addresses in turn, repeating the join until one
/// answers, giving up after [`JOIN_TIMEOUT`] — or, after an outage, never giving up and
/// repeating with backoff ([`JoinAttempt::persistent`]). The client joining a server and a
/// peer joining a room (`peer`) both run one; what they send and how they read answers is
/// theirs.
#[derive(Debug, Clone)]
pub struct JoinAttempt {
    started: Instant,
    /// `None`: keep asking until an answer comes (backoff between tries).
    give_up_at: Option<Instant>,
    /// The wait before the next repeat.
    retry: Duration,
    next_send: Instant,
    /// Which of the addresses is being asked now.
    pub candidate: usize,
    candidate_since: Instant,
    /// The random number every answer must repeat (so off-path forgeries are ignored).
    pub nonce: u64,
    /// The cookie the asked address gave us for this nonce, once it has (0 before).
    pub cookie: u64,
    /// Whether one of the addresses sent something that is not our protocol.
    foreign: bool,
}

/// What [`JoinAttempt::poll`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinStep {
    /// Send the join (with the current nonce and cookie) to the address at this index.
    Send(usize),
    /// Nothing to do yet.
    Wait,
    /// Nobody answered within [`JOIN_TIMEOUT`].
    GiveUp,
}

impl JoinAttempt {
    /// Starts asking the address at `first`, with a fresh random nonce.
    pub fn new(now: Instant, first: usize) -> JoinAttempt {
        JoinAttempt {
            started: now,
            give_up_at: Some(now + JOIN_TIMEOUT),
            retry: JOIN_RETRY,
            next_send: now,
            candidate: first,
            candidate_since: now,
            nonce: token::random_u64(),
            cookie: 0,
            foreign: false,
        }
    }

    /// One of the addresses asked sent a datagram that is not our protocol: something else
    /// listens there. The attempt goes on (it may be a stray datagram, or a forgery), but
    /// if it gives up, that is worth telling apart from silence.
    pub fn on_foreign_answer(&mut self) {
        self.foreign = true;
    }

    /// Whether [`JoinAttempt::on_foreign_answer`] was called.
    pub fn heard_foreign(&self) -> bool {
        self.foreign
    }

    /// Like [`JoinAttempt::new`], but never giving up: the join is repeated after
    /// [`REJOIN_FIRST_RETRY`], then twice as long each time up to [`REJOIN_MAX_RETRY`],
    /// each time to the next address. For coming back after an outage, when the server will
    /// be back some time.
    pub fn persistent(now: Instant, first: usize) -> JoinAttempt {
        JoinAttempt {
            give_up_at: None,
            retry: REJOIN_FIRST_RETRY,
            ..JoinAttempt::new(now, first)
        }
    }

    /// Whether this attempt never gives up (see [`JoinAttempt::persistent`]).
    pub fn is_persistent(&self) -> bool {
        self.give_up_at.is_none()
    }

    /// The address at `from` challenged us with `cookie`: ask it again at once, with it.
    pub fn on_challenge(&mut self, now: Instant, from: usize, cookie: u64) {
        self.cookie = cookie;
        self.candidate = from;
        self.next_send = now;
        if self.is_persistent() {
            // It answers: the outage is over, no reason to wait long for the next try.
            self.retry = REJOIN_FIRST_RETRY;
        }
    }

    /// The address at `from` is there but too busy to take a join: ask it again after
    /// [`BUSY_RETRY`], with a fresh [`JOIN_TIMEOUT`] (it did answer).
    pub fn on_busy(&mut self, now: Instant, from: usize) {
        if self.give_up_at.is_some() {
            self.give_up_at = Some(now + BUSY_RETRY + JOIN_TIMEOUT);
        }
        self.candidate = from;
        self.candidate_since = now;
        self.next_send = now + BUSY_RETRY;
    }

    /// Advances the attempt among `addresses` addresses: moves to the next one after
    /// [`ADDRESS_FALLBACK`], repeats the join every [`JOIN_RETRY`], gives up at
    /// [`JOIN_TIMEOUT`].
    pub fn poll(&mut self, now: Instant, addresses: usize) -> JoinStep {
        if self.give_up_at.is_some_and(|at| now >= at) {
            return JoinStep::GiveUp;
        }
        if self.is_persistent() {
            if now < self.next_send {
                return JoinStep::Wait;
            }
            let candidate = self.candidate;
            if addresses > 1 && self.cookie == 0 {
                // The next try goes to the next address (a cookie is only good for the
                // address that gave it, so a challenged one is asked again first).
                self.candidate = (self.candidate + 1) % addresses;
            }
            self.next_send = now + self.retry;
            self.retry = (self.retry * 2).min(REJOIN_MAX_RETRY);
            return JoinStep::Send(candidate);
        }
        if addresses > 1 && now.saturating_duration_since(self.candidate_since) >= ADDRESS_FALLBACK
        {
            self.candidate = (self.candidate + 1) % addresses;
            self.candidate_since = now;
            self.next_send = now;
            // A cookie is only good for the address that gave it.
            self.cookie = 0;
        }
        if now < self.next_send {
            return JoinStep::Wait;
        }
        self.next_send = now + self.retry;
        JoinStep::Send(self.candidate)
    }

    /// When [`JoinAttempt::poll`] next has something to do.
    pub fn next_deadline(&self, addresses: usize) -> Instant {
        let Some(give_up_at) = self.give_up_at else {
            return self.next_send;
        };
        let mut next = self.next_send.min(give_up_at);
        if addresses > 1 {
            next = next.min(self.candidate_since + ADDRESS_FALLBACK);
        }
        next
    }

    /// When the attempt began.
    pub fn started(&self) -> Instant {
        self.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_join_is_repeated_then_given_up() {
        let start = Instant::now();
        let mut attempt = JoinAttempt::new(start, 0);
        assert_eq!(attempt.poll(start, 1), JoinStep::Send(0));
        assert_eq!(attempt.poll(start + JOIN_RETRY - ms(1), 1), JoinStep::Wait);
        assert_eq!(attempt.next_deadline(1), start + JOIN_RETRY);
        assert_eq!(attempt.poll(start + JOIN_RETRY, 1), JoinStep::Send(0));
        assert_eq!(attempt.poll(start + JOIN_TIMEOUT, 1), JoinStep::GiveUp);
    }

    #[test]
    fn the_next_address_is_asked_after_the_fallback_and_forgets_the_cookie() {
        let start = Instant::now();
        let mut attempt = JoinAttempt::new(start, 0);
        assert_eq!(attempt.poll(start, 2), JoinStep::Send(0));
        attempt.on_challenge(start + ms(10), 0, 42);
        assert_eq!(attempt.poll(start + ms(10), 2), JoinStep::Send(0));
        assert_eq!(attempt.cookie, 42);
        assert_eq!(attempt.poll(start + ADDRESS_FALLBACK, 2), JoinStep::Send(1));
        assert_eq!(
            attempt.cookie, 0,
            "a cookie is only good where it came from"
        );
    }

    #[test]
    fn a_busy_answer_waits_and_starts_the_timeout_again() {
        let start = Instant::now();
        let mut attempt = JoinAttempt::new(start, 0);
        assert_eq!(attempt.poll(start, 1), JoinStep::Send(0));
        let busy_at = start + ms(4000);
        attempt.on_busy(busy_at, 0);
        assert_eq!(
            attempt.poll(busy_at + BUSY_RETRY - ms(1), 1),
            JoinStep::Wait
        );
        assert_eq!(attempt.poll(busy_at + BUSY_RETRY, 1), JoinStep::Send(0));
        let gives_up = busy_at + BUSY_RETRY + JOIN_TIMEOUT;
        assert_ne!(attempt.poll(gives_up - ms(1), 1), JoinStep::GiveUp);
        assert_eq!(attempt.poll(gives_up, 1), JoinStep::GiveUp);
    }

    #[test]
    fn a_persistent_attempt_backs_off_without_giving_up() {
        let start = Instant::now();
        let mut attempt = JoinAttempt::persistent(start, 0);
        assert!(attempt.is_persistent());
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..8 {
            assert!(matches!(attempt.poll(now, 2), JoinStep::Send(_)));
            let next = attempt.next_deadline(2);
            waits.push(next - now);
            now = next;
        }
        assert_eq!(waits[0], REJOIN_FIRST_RETRY);
        assert_eq!(waits[1], REJOIN_FIRST_RETRY * 2);
        assert_eq!(*waits.last().expect("eight tries"), REJOIN_MAX_RETRY);
        // An answer ends the backoff.
        attempt.on_challenge(now, 1, 7);
        assert_eq!(attempt.poll(now, 2), JoinStep::Send(1));
        assert_eq!(attempt.next_deadline(2) - now, REJOIN_FIRST_RETRY);
    }

    #[test]
    fn every_attempt_has_its_own_nonce() {
        let start = Instant::now();
        assert_ne!(
            JoinAttempt::new(start, 0).nonce,
            JoinAttempt::new(start, 0).nonce
        );
    }
}
