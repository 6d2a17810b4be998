//! The log gate: how often a log line that someone outside can cause is written. Without it
//! a stranger decides how big the operator's log grows (20 000 forged joins from a banned
//! range wrote 20 000 lines in 0.4 s). This module owns the counting: per key (an address,
//! a banned range) a few lines per period pass, the rest are counted and reported once, at
//! the end of the period, as a summary (`refused 19 980 more joins from banned 10.0.0.0/8 in
//! the last minute`); the number of keys remembered is capped, and so is the number of
//! lines per period over all keys. It does not own what the lines say, nor what the caller
//! does with the datagram (the server core and the peer core decide that). Time is passed
//! in as `now`, so tests drive it with a fake clock.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The limits of one gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    /// The counting period, and how often a summary can come for one key.
    pub period: Duration,
    /// Lines that pass per key per period.
    pub per_key: u32,
    /// Lines that pass per period over all keys; past it, lines are counted as "others".
    pub total: u32,
    /// Keys remembered at once; lines of further keys are counted as "others".
    pub keys: usize,
    /// Summaries given one by one per period; past it, one summary for the rest.
    pub summaries: usize,
}

impl Default for GateLimits {
    /// One line per key per minute, at most 100 lines a minute in all, 4 096 keys, and at
    /// most 20 summary lines a minute.
    fn default() -> GateLimits {
        GateLimits {
            period: Duration::from_secs(60),
            per_key: 1,
            total: 100,
            keys: 4096,
            summaries: 20,
        }
    }
}

/// Lines held back, reported when a period ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<K> {
    /// Whose lines: `None` for lines of keys not counted one by one (past the key or line
    /// caps, or folded together past [`GateLimits::summaries`]).
    pub key: Option<K>,
    /// How many lines were not written.
    pub suppressed: u64,
    /// Over how long (the gate's period).
    pub period: Duration,
}

#[derive(Debug, Clone)]
struct Tally {
    passed: u32,
    suppressed: u64,
}

/// A capped, time-driven gate for log lines keyed by `K`. See the module documentation.
#[derive(Debug, Clone)]
pub struct LogGate<K> {
    limits: GateLimits,
    tallies: HashMap<K, Tally>,
    /// Keys in the order their periods end (each key's period starts at its first line, and
    /// every period is as long, so first in, first due).
    due: VecDeque<(Instant, K)>,
    /// The period over all keys: when it ends, and the lines passed in it.
    total_until: Option<Instant>,
    total_passed: u32,
    /// Lines of keys not counted one by one, since `others_since`.
    others: u64,
    others_since: Option<Instant>,
}

impl<K: Hash + Eq + Clone> LogGate<K> {
    /// A gate with these limits, nothing counted yet.
    pub fn new(limits: GateLimits) -> LogGate<K> {
        LogGate {
            limits,
            tallies: HashMap::new(),
            due: VecDeque::new(),
            total_until: None,
            total_passed: 0,
            others: 0,
            others_since: None,
        }
    }

    /// Whether a line for `key` may be written now; if not, it is counted for the summary.
    pub fn admit(&mut self, now: Instant, key: &K) -> bool {
        if self.total_until.is_none_or(|until| now >= until) {
            self.total_until = Some(now + self.limits.period);
            self.total_passed = 0;
        }
        let within_total = self.total_passed < self.limits.total;
        let room = self.tallies.len() < self.limits.keys;
        let admitted = match self.tallies.get_mut(key) {
            Some(tally) => {
                if tally.passed < self.limits.per_key && within_total {
                    tally.passed += 1;
                    true
                } else {
                    tally.suppressed += 1;
                    false
                }
            }
            None if room => {
                self.tallies.insert(
                    key.clone(),
                    Tally {
                        passed: u32::from(within_total),
                        suppressed: u64::from(!within_total),
                    },
                );
                self.due.push_back((now + self.limits.period, key.clone()));
                within_total
            }
            None => {
                self.count_other(now);
                false
            }
        };
        if admitted {
            self.total_passed += 1;
        }
        admitted
    }

    fn count_other(&mut self, now: Instant) {
        self.others += 1;
        self.others_since.get_or_insert(now);
    }

    /// The summaries of every period that has ended by `now`; keys whose period ended are
    /// forgotten (their next line passes again).
    pub fn poll(&mut self, now: Instant) -> Vec<Summary<K>> {
        let mut summaries = Vec::new();
        let mut folded = 0;
        while let Some((until, _)) = self.due.front() {
            if *until > now {
                break;
            }
            let (_, key) = self.due.pop_front().expect("looked at it");
            let Some(tally) = self.tallies.remove(&key) else {
                continue;
            };
            if tally.suppressed == 0 {
                continue;
            }
            if summaries.len() < self.limits.summaries {
                summaries.push(Summary {
                    key: Some(key),
                    suppressed: tally.suppressed,
                    period: self.limits.period,
                });
            } else {
                folded += tally.suppressed;
            }
        }
        if self
            .others_since
            .is_some_and(|since| now >= since + self.limits.period)
        {
            folded += self.others;
            self.others = 0;
            self.others_since = None;
        }
        if folded > 0 {
            summaries.push(Summary {
                key: None,
                suppressed: folded,
                period: self.limits.period,
            });
        }
        summaries
    }

    /// When [`LogGate::poll`] next has something to do, if anything is counted.
    pub fn next_deadline(&self) -> Option<Instant> {
        let key = self.due.front().map(|(until, _)| *until);
        let others = self.others_since.map(|since| since + self.limits.period);
        key.into_iter().chain(others).min()
    }

    /// How many keys are remembered (bounded by [`GateLimits::keys`]).
    pub fn len(&self) -> usize {
        self.tallies.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.tallies.is_empty() && self.others == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> GateLimits {
        GateLimits {
            period: Duration::from_secs(60),
            per_key: 2,
            total: 10,
            keys: 3,
            summaries: 2,
        }
    }

    #[test]
    fn a_key_passes_its_lines_then_is_counted_and_summarized_once() {
        let start = Instant::now();
        let mut gate = LogGate::new(limits());
        let passed = (0..20_000)
            .filter(|i| gate.admit(start + Duration::from_micros(*i), &"10.0.0.0/8"))
            .count();
        assert_eq!(passed, 2);
        assert_eq!(gate.poll(start + Duration::from_secs(59)), []);
        assert_eq!(gate.next_deadline(), Some(start + Duration::from_secs(60)));
        assert_eq!(
            gate.poll(start + Duration::from_secs(60)),
            [Summary {
                key: Some("10.0.0.0/8"),
                suppressed: 19_998,
                period: Duration::from_secs(60),
            }]
        );
        assert!(gate.is_empty());
        assert_eq!(gate.next_deadline(), None);
        // A new period: the key's lines pass again.
        assert!(gate.admit(start + Duration::from_secs(61), &"10.0.0.0/8"));
    }

    #[test]
    fn a_quiet_key_gets_no_summary() {
        let start = Instant::now();
        let mut gate = LogGate::new(limits());
        assert!(gate.admit(start, &1));
        assert_eq!(gate.poll(start + Duration::from_secs(60)), []);
        assert!(gate.is_empty());
    }

    #[test]
    fn keys_past_the_cap_are_counted_together() {
        let start = Instant::now();
        let mut gate = LogGate::new(limits());
        for key in 0..3 {
            assert!(gate.admit(start, &key));
        }
        // A fourth address: not remembered, counted among the others.
        assert!(!gate.admit(start, &99));
        assert!(!gate.admit(start, &100));
        assert_eq!(gate.len(), 3);
        let summaries = gate.poll(start + Duration::from_secs(60));
        assert_eq!(
            summaries,
            [Summary {
                key: None,
                suppressed: 2,
                period: Duration::from_secs(60),
            }]
        );
    }

    #[test]
    fn the_total_caps_lines_over_all_keys() {
        let start = Instant::now();
        let mut gate = LogGate::new(GateLimits {
            keys: 1000,
            ..limits()
        });
        let passed = (0..100).filter(|key| gate.admit(start, key)).count();
        assert_eq!(passed, 10);
        // The next period passes lines again.
        assert!(gate.admit(start + Duration::from_secs(60), &1000));
    }

    #[test]
    fn summaries_past_the_cap_are_folded_into_one() {
        let start = Instant::now();
        let mut gate = LogGate::new(GateLimits {
            per_key: 1,
            ..limits()
        });
        for key in 0..3 {
            for _ in 0..5 {
                gate.admit(start, &key);
            }
        }
        let summaries = gate.poll(start + Duration::from_secs(60));
        assert_eq!(summaries.len(), 3);
        assert_eq!(summaries[2].key, None);
        assert_eq!(summaries[2].suppressed, 4);
    }
}
