//! Join cookies and the clock they are made against: how the server and a peer tell a
//! joiner that really receives at its address from a forger, without keeping any state for
//! the forger.
//!
//! A join without the right cookie is answered with one — a keyed hash of the joiner's
//! address, its nonce and the current period, under a secret made at start — and only the
//! address's owner receives it. [`CookieJar`] owns that secret and the arithmetic of periods;
//! [`WallClock`] owns the conversion between the cores' `Instant`s and wall-clock time
//! (milliseconds since the Unix epoch), which stamps what is shown and which the cookies'
//! periods count from. It does not own the frames that carry cookies, nor what a role does
//! with a join once its cookie is good. Like the cores it reads no clock: `now` is passed in.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::address::canonical;

/// A join cookie is good for the period it was made in and the next one: long enough for
/// a joiner's retries, short enough that an old cookie seen on the wire is soon useless.
pub const COOKIE_PERIOD: Duration = Duration::from_secs(30);

/// An instant and the wall-clock time it corresponds to, so a role stamps what it shows with
/// wall-clock time while its logic runs on `Instant`s.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    origin: Instant,
    origin_ms: i64,
}

impl WallClock {
    /// A clock that reads `wall_ms` (milliseconds since the Unix epoch) at `now`.
    pub fn new(now: Instant, wall_ms: i64) -> WallClock {
        WallClock {
            origin: now,
            origin_ms: wall_ms,
        }
    }

    /// The instant the clock was started at: the zero of [`WallClock::since_start_ms`].
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Wall-clock milliseconds since the Unix epoch at `now`.
    pub fn wall_ms(&self, now: Instant) -> i64 {
        let since = now.saturating_duration_since(self.origin).as_millis();
        self.origin_ms
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    /// Milliseconds since the clock was started (0 before): a role's own clock for stamps.
    pub fn since_start_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_millis() as u64
    }
}

/// The secret behind join cookies, and the periods they are good for.
#[derive(Debug)]
pub struct CookieJar {
    /// SipHash with random keys: a keyed hash built for exactly this (a short tag nobody
    /// without the key can compute).
    key: RandomState,
    /// Periods count from here.
    origin: Instant,
}

impl CookieJar {
    /// A jar with a fresh secret; periods count from `origin`.
    pub fn new(origin: Instant) -> CookieJar {
        CookieJar {
            key: RandomState::new(),
            origin,
        }
    }

    /// The cookie a join from `from` with `nonce` must carry at `now`. Never 0, which means
    /// "no cookie" on the wire.
    pub fn cookie(&self, now: Instant, from: SocketAddr, nonce: u64) -> u64 {
        self.in_period(from, nonce, self.period(now))
    }

    /// Whether a join from `from` with `nonce` carries the cookie of this period or the one
    /// before.
    pub fn is_valid(&self, now: Instant, from: SocketAddr, nonce: u64, cookie: u64) -> bool {
        let period = self.period(now);
        cookie != 0
            && (cookie == self.in_period(from, nonce, period)
                || (period > 0 && cookie == self.in_period(from, nonce, period - 1)))
    }

    /// The cookie of `period` (a number of [`COOKIE_PERIOD`]s since `origin`). The address
    /// in its canonical form: a dual-stack socket may report one joiner both ways.
    fn in_period(&self, from: SocketAddr, nonce: u64, period: u64) -> u64 {
        self.key.hash_one((canonical(from), nonce, period)).max(1)
    }

    fn period(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / COOKIE_PERIOD.as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn a_cookie_is_good_for_its_period_and_the_next_only() {
        let start = Instant::now();
        let jar = CookieJar::new(start);
        let from = addr("192.0.2.1:5000");
        let cookie = jar.cookie(start + Duration::from_secs(29), from, 7);
        assert_ne!(cookie, 0);
        assert!(jar.is_valid(start, from, 7, cookie));
        assert!(jar.is_valid(
            start + COOKIE_PERIOD * 2 - Duration::from_millis(1),
            from,
            7,
            cookie
        ));
        assert!(!jar.is_valid(start + COOKIE_PERIOD * 2, from, 7, cookie));
    }

    #[test]
    fn a_cookie_is_bound_to_address_and_nonce() {
        let start = Instant::now();
        let jar = CookieJar::new(start);
        let from = addr("192.0.2.1:5000");
        let cookie = jar.cookie(start, from, 7);
        assert!(!jar.is_valid(start, addr("192.0.2.1:5001"), 7, cookie));
        assert!(!jar.is_valid(start, addr("192.0.2.2:5000"), 7, cookie));
        assert!(!jar.is_valid(start, from, 8, cookie));
        assert!(!jar.is_valid(start, from, 7, 0));
    }

    #[test]
    fn a_mapped_address_is_the_same_joiner() {
        let start = Instant::now();
        let jar = CookieJar::new(start);
        let cookie = jar.cookie(start, addr("192.0.2.1:5000"), 7);
        assert!(jar.is_valid(start, addr("[::ffff:192.0.2.1]:5000"), 7, cookie));
    }

    #[test]
    fn two_jars_have_different_secrets() {
        let start = Instant::now();
        let from = addr("192.0.2.1:5000");
        let cookie = CookieJar::new(start).cookie(start, from, 7);
        assert!(!CookieJar::new(start).is_valid(start, from, 7, cookie));
    }

    #[test]
    fn the_wall_clock_advances_with_the_instants() {
        let start = Instant::now();
        let clock = WallClock::new(start + Duration::from_secs(1), 1_000_000);
        assert_eq!(
            clock.wall_ms(start + Duration::from_millis(3500)),
            1_002_500
        );
        assert_eq!(
            clock.since_start_ms(start + Duration::from_millis(3500)),
            2_500
        );
        // Before its start it reads its start: never backwards.
        assert_eq!(clock.wall_ms(start), 1_000_000);
        assert_eq!(clock.since_start_ms(start), 0);
    }
}
