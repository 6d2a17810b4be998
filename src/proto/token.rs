//! Random numbers nobody off the path can guess: session and pair tokens, incarnations, join
//! nonces. This is the one wrapper around the operating system's random source; it owns
//! nothing of what the numbers are used for (the roles decide that).
//!
//! The numbers only have to be unguessable by someone who cannot see the traffic (anyone
//! who can see it reads them off the wire anyway). Should the source fail — it does not on
//! any supported system — the clock's nanoseconds mixed with a counter still keep two
//! numbers apart, so two sessions never share a token by accident.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh random number from the operating system.
pub fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        fallback(nanos)
    })
}

/// What stands in for the random source: `nanos` mixed with a counter, so that two calls
/// in the same nanosecond (or on a coarse clock) still differ.
fn fallback(nanos: u64) -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn numbers_do_not_repeat() {
        let seen: HashSet<u64> = (0..1000).map(|_| random_u64()).collect();
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn the_fallback_differs_within_one_nanosecond() {
        let seen: HashSet<u64> = (0..1000).map(|_| fallback(1_234_567)).collect();
        assert_eq!(seen.len(), 1000);
    }
}
