//! Capped address memories: what a role remembers about an address for a while — a session
//! that just left (to confirm a repeated leave), a flooder just kicked (to keep it out for a
//! while) — bounded in size, because the addresses are whatever strangers put in their
//! datagrams.
//!
//! [`AddrMemory`] owns the bound and the expiry: past its capacity it remembers nothing new
//! (forged, ever-changing source addresses cannot make it grow), and an entry older than its
//! time to live is forgotten — at once for [`AddrMemory::recall`], and in memory at the next
//! [`AddrMemory::forget_expired`]. It does not own what is remembered nor why. Like the
//! cores it reads no clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foldhash::fast::FixedState;

/// A bounded map from addresses to what was noted about them and when.
#[derive(Debug, Clone)]
pub struct AddrMemory<V> {
    entries: HashMap<SocketAddr, (V, Instant), FixedState>,
    capacity: usize,
    ttl: Duration,
}

impl<V> AddrMemory<V> {
    /// An empty memory of at most `capacity` addresses, each remembered for `ttl`;
    /// `hasher` as the role's other maps (seeded, so a stranger cannot aim at a bucket).
    pub fn new(capacity: usize, ttl: Duration, hasher: FixedState) -> AddrMemory<V> {
        AddrMemory {
            entries: HashMap::with_hasher(hasher),
            capacity,
            ttl,
        }
    }

    /// Remembers `value` about `addr` from `now` on (replacing what was remembered about
    /// it). Past the capacity a new address is not remembered: returns false then.
    pub fn remember(&mut self, addr: SocketAddr, value: V, now: Instant) -> bool {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&addr) {
            return false;
        }
        self.entries.insert(addr, (value, now));
        true
    }

    /// What is remembered about `addr`, unless it is older than the time to live.
    pub fn recall(&self, addr: SocketAddr, now: Instant) -> Option<&V> {
        self.entries
            .get(&addr)
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(value, _)| value)
    }

    /// Drops every entry older than the time to live.
    pub fn forget_expired(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.entries
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
    }

    /// Whether nothing is remembered (expired entries not yet dropped count).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many addresses are remembered (expired entries not yet dropped count).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn memory(capacity: usize) -> AddrMemory<u64> {
        AddrMemory::new(capacity, Duration::from_secs(60), FixedState::with_seed(1))
    }

    #[test]
    fn an_entry_is_recalled_until_its_time_to_live_passes() {
        let start = Instant::now();
        let mut mem = memory(4);
        assert!(mem.remember(addr(1), 7, start));
        assert_eq!(
            mem.recall(addr(1), start + Duration::from_secs(59)),
            Some(&7)
        );
        assert_eq!(mem.recall(addr(1), start + Duration::from_secs(60)), None);
        assert_eq!(mem.recall(addr(2), start), None);
    }

    #[test]
    fn expired_entries_are_dropped_and_fresh_ones_kept() {
        let start = Instant::now();
        let mut mem = memory(4);
        mem.remember(addr(1), 1, start);
        mem.remember(addr(2), 2, start + Duration::from_secs(30));
        mem.forget_expired(start + Duration::from_secs(60));
        assert_eq!(mem.len(), 1);
        assert_eq!(
            mem.recall(addr(2), start + Duration::from_secs(60)),
            Some(&2)
        );
        mem.forget_expired(start + Duration::from_secs(90));
        assert!(mem.is_empty());
    }

    #[test]
    fn past_its_capacity_nothing_new_is_remembered() {
        let start = Instant::now();
        let mut mem = memory(2);
        assert!(mem.remember(addr(1), 1, start));
        assert!(mem.remember(addr(2), 2, start));
        assert!(!mem.remember(addr(3), 3, start));
        assert_eq!(mem.recall(addr(3), start), None);
        // An address already remembered is updated, full or not.
        assert!(mem.remember(addr(1), 9, start + Duration::from_secs(1)));
        assert_eq!(
            mem.recall(addr(1), start + Duration::from_secs(60)),
            Some(&9)
        );
        // Room comes back when entries expire.
        mem.forget_expired(start + Duration::from_secs(60));
        assert!(mem.remember(addr(3), 3, start + Duration::from_secs(60)));
    }
}
