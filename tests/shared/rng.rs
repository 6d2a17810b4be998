//! The one random-number generator of the tests, and the `ICQ_SEED` convention for
//! rerunning a seed. Compiled into both test binaries (`#[path]`), so a simulated network,
//! the loopback relay and the garbage storm draw from the same generator.
//!
//! SplitMix64 (Sebastiano Vigna): small, fast, and fixed here, so that a seed means the
//! same run whatever version of a crate's idea of randomness is in the lock file. It does
//! not own what is drawn (the links, the relay, the storm do).

use std::time::Duration;

/// A seeded SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`, from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A whole number in `0..=max` (the bias of `%` does not matter here).
    pub fn up_to(&mut self, max: u64) -> u64 {
        self.next_u64() % max.saturating_add(1)
    }

    /// An index below `len` (`len` > 0).
    pub fn below(&mut self, len: usize) -> usize {
        (self.next_u64() % len as u64) as usize
    }

    /// A duration between zero and `max`, both included, to the microsecond.
    pub fn duration_up_to(&mut self, max: Duration) -> Duration {
        let max_us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.up_to(max_us))
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// Fills `bytes` with random bytes.
    pub fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// The seed `ICQ_SEED` names, if set (a failing run prints its seed to rerun it alone).
pub fn chosen_seed() -> Option<u64> {
    std::env::var("ICQ_SEED")
        .ok()
        .map(|seed| seed.parse().expect("ICQ_SEED is a number"))
}
