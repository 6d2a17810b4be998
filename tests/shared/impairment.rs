//! The one model of a bad network in the tests: each datagram lost with some probability,
//! otherwise sent once or twice, each copy after its own random delay (so datagrams
//! overtake each other). Compiled into both test binaries (`#[path]`): the simulated links
//! of `tests/sansio/sim` and the loopback relay of `tests/programs/relay.rs` decide alike.
//!
//! It owns the decision, not the delivery: the simulator and the relay carry the copies.

use std::fmt;
use std::time::Duration;

use crate::rng::Rng;

/// What a bad network does to each datagram: loses it with probability `loss`; otherwise
/// sends it, and a second copy with probability `duplication`, each copy after a delay
/// drawn evenly from zero to `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    pub loss: f64,
    pub duplication: f64,
    pub max_delay: Duration,
}

impl Impairment {
    /// A perfect network: every datagram once, at once, in order.
    pub const NONE: Impairment = Impairment::new(0.0, 0.0, Duration::ZERO);

    /// Loss and duplication as probabilities, each copy delayed by 0 to `max_delay`.
    pub const fn new(loss: f64, duplication: f64, max_delay: Duration) -> Impairment {
        Impairment {
            loss,
            duplication,
            max_delay,
        }
    }

    /// The delays after which the copies of one datagram arrive: none if it is lost, two if
    /// it is duplicated. Always draws four numbers from `rng`, so the fate of the n-th
    /// datagram does not depend on what happened to the ones before.
    pub fn copies(&self, rng: &mut Rng) -> Vec<Duration> {
        let lost = rng.chance(self.loss);
        let duplicated = rng.chance(self.duplication);
        let delays = [
            rng.duration_up_to(self.max_delay),
            rng.duration_up_to(self.max_delay),
        ];
        match (lost, duplicated) {
            (true, _) => Vec::new(),
            (false, false) => vec![delays[0]],
            (false, true) => delays.to_vec(),
        }
    }
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.0} % loss, {:.0} % duplication, 0-{} ms delay",
            self.loss * 100.0,
            self.duplication * 100.0,
            self.max_delay.as_millis()
        )
    }
}
