//! Flood limiting: how many chat messages a client may send, as a token bucket.
//!
//! This module owns the arithmetic of the bucket: it refills at a steady rate up to a burst
//! size, and each message takes one token. It does not own what happens to a message over
//! the limit, nor telling anyone (the server core drops it and notifies the sender). Time is
//! passed in as `now`, never read from the clock, so tests drive it with a fake clock.

use std::time::Instant;

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
        // A clock that appears to run backwards (it should not, with Instant) refills nothing.
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.limit.rate_per_sec).min(f64::from(self.limit.burst));
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limit(rate: f64, burst: u32) -> FloodLimit {
        FloodLimit::from_options(rate, burst).expect("enabled")
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
    fn zero_rate_disables_limiting() {
        assert_eq!(FloodLimit::from_options(0.0, 10), None);
        assert_eq!(limit(1.0, 0).burst, 1);
    }
}
