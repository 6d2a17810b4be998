//! How far behind its own schedule a role fell, so that its lateness is never blamed on
//! the other side.
//!
//! A role evicts a peer that stays silent for a timeout, and gives up on a frame that stays
//! unacknowledged too long. Both measure the other side's silence, and both are wrong when
//! the silence was ours: the process was stopped (a suspended laptop, `kill -STOP`), or its
//! loop could not keep up (a join storm at 100 % CPU), so that what the other side sent
//! waited in — or overflowed — the socket's buffer. [`Lateness`] keeps a running total of
//! such time, learned from two signs: a timer ran later than it was due (the role was not
//! called), and the loop reported that datagrams were still waiting after a full batch (it
//! fell behind). Each session remembers the total it has been credited with; the difference
//! is added to its silence clock and forgiven by its send window. That is O(1) per stall,
//! whatever the number of sessions.
//!
//! It reads no clock (every method takes `now`) and knows nothing of sessions, frames or
//! sockets; the roles (`server`, `client`, `peer`) apply the credit.

use std::time::{Duration, Instant};

/// A timer that runs up to this late is on time: scheduling noise on a busy machine, not a
/// stall. Beyond it, the whole delay is credited.
pub const STALL_SLACK: Duration = Duration::from_millis(250);

/// The time a role could not run or keep up, as a running total. See the module
/// documentation.
#[derive(Debug, Clone, Default)]
pub struct Lateness {
    total: Duration,
    /// Since when the loop has been reporting that it falls behind, if it is.
    behind_since: Option<Instant>,
    /// Credit is never given twice for the same time: nothing before this instant.
    credited_until: Option<Instant>,
}

impl Lateness {
    /// No lateness yet.
    pub fn new() -> Lateness {
        Lateness::default()
    }

    /// The time credited so far. A session stores it when it is credited, and is owed the
    /// difference the next time it looks.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// Whether the loop said, at its latest report, that it is falling behind.
    pub fn is_behind(&self) -> bool {
        self.behind_since.is_some()
    }

    /// A timer due at `due` runs at `now`: if that is more than [`STALL_SLACK`] late, the
    /// delay is credited (the role was not called: its process stopped, or its loop was
    /// busy). Returns what was credited.
    pub fn timer_ran(&mut self, now: Instant, due: Instant) -> Duration {
        if now.saturating_duration_since(due) <= STALL_SLACK {
            return Duration::ZERO;
        }
        self.credit(due, now)
    }

    /// The loop reports, at `now`, whether datagrams were still waiting after its last
    /// batch (`behind`). Time between a report of falling behind and the next report is
    /// credited: what peers sent meanwhile may have waited in the socket's buffer, or been
    /// dropped when it overflowed. Returns what was credited.
    pub fn loop_report(&mut self, now: Instant, behind: bool) -> Duration {
        let credited = match self.behind_since {
            Some(since) => self.credit(since, now),
            None => Duration::ZERO,
        };
        self.behind_since = behind.then_some(now);
        credited
    }

    /// Credits the time from `from` to `to`, less what was already credited.
    fn credit(&mut self, from: Instant, to: Instant) -> Duration {
        let from = self.credited_until.map_or(from, |until| from.max(until));
        let credited = to.saturating_duration_since(from);
        self.total += credited;
        self.credited_until = Some(self.credited_until.map_or(to, |until| until.max(to)));
        credited
    }
}

/// A session's share of a role's [`Lateness`]: how much of the total it has been credited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Credited(Duration);

impl Credited {
    /// A session created now owes nothing for earlier lateness.
    pub fn now(lateness: &Lateness) -> Credited {
        Credited(lateness.total())
    }

    /// How much lateness the session has not been credited with yet; marks it credited.
    pub fn take(&mut self, lateness: &Lateness) -> Duration {
        let owed = lateness.total().saturating_sub(self.0);
        self.0 = lateness.total();
        owed
    }
}

/// Moves a "last heard" instant forward by `owed` (never past `now`): the other side's
/// silence during our own lateness does not count.
pub fn forgive_silence(last_heard: &mut Instant, now: Instant, owed: Duration) {
    if !owed.is_zero() {
        *last_heard = (*last_heard + owed).min(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_late_timer_is_credited_beyond_noise_and_never_twice() {
        let start = Instant::now();
        let mut lateness = Lateness::new();
        assert_eq!(lateness.timer_ran(start + ms(100), start), Duration::ZERO);
        assert_eq!(lateness.timer_ran(start + ms(5000), start), ms(5000));
        // A second timer that was due during the same stall adds nothing twice.
        assert_eq!(
            lateness.timer_ran(start + ms(5000), start + ms(1000)),
            ms(0)
        );
        assert_eq!(lateness.total(), ms(5000));
    }

    #[test]
    fn time_spent_behind_is_credited_until_the_loop_catches_up() {
        let start = Instant::now();
        let mut lateness = Lateness::new();
        lateness.loop_report(start, false);
        assert!(!lateness.is_behind());
        lateness.loop_report(start + ms(10), true);
        assert!(lateness.is_behind());
        assert_eq!(lateness.loop_report(start + ms(510), true), ms(500));
        assert_eq!(lateness.loop_report(start + ms(710), false), ms(200));
        assert!(!lateness.is_behind());
        assert_eq!(lateness.loop_report(start + ms(900), false), ms(0));
        assert_eq!(lateness.total(), ms(700));
    }

    #[test]
    fn each_session_is_credited_what_came_after_it() {
        let start = Instant::now();
        let mut lateness = Lateness::new();
        lateness.timer_ran(start + ms(3000), start);
        let mut session = Credited::now(&lateness);
        assert_eq!(session.take(&lateness), ms(0));
        lateness.timer_ran(start + ms(9000), start + ms(4000));
        assert_eq!(session.take(&lateness), ms(5000));
        assert_eq!(session.take(&lateness), ms(0));
        let mut heard = start + ms(4000);
        forgive_silence(&mut heard, start + ms(9000), ms(5000));
        assert_eq!(heard, start + ms(9000));
    }
}
