//! The roster as the server keeps it: every session's entry, encoded once, in the order a
//! roster lists them, so answering a join or a `/list` copies bytes instead of collecting,
//! folding and sorting every name (which made a join storm quadratic in CPU as well).
//!
//! Owns the index and the pages of a [`Delivery::Roster`] answer, the whole list or only its
//! first entries (a join in a large room), built in time proportional to the entries sent.
//! It does not own when a roster is sent or how much of it (`room`, `sessions`), guests'
//! plain-text roster (`guests`), or the entry's layout (`wire`).

use std::collections::BTreeMap;

use super::*;

/// Every session's roster entry, sorted case-insensitively (by [`names::fold`]).
#[derive(Debug, Default)]
pub(super) struct Roster {
    /// (folded name, address) → the entry's bytes. The address keeps two entries apart
    /// should two names ever fold alike.
    entries: BTreeMap<(String, SocketAddr), Box<[u8]>>,
}

impl Roster {
    /// Puts in, or replaces, the entry of the session at `addr` called `name`.
    pub(super) fn set(&mut self, addr: SocketAddr, name: &str, away: Option<&str>, guest: bool) {
        let entry = RosterEntry {
            name: name.to_owned(),
            away: away.unwrap_or_default().to_owned(),
            guest,
        };
        self.entries
            .insert((names::fold(name), addr), entry.to_bytes().into());
    }

    /// Takes out the entry of the session at `addr` called `name`.
    pub(super) fn remove(&mut self, addr: SocketAddr, name: &str) {
        self.entries.remove(&(names::fold(name), addr));
    }

    /// The sessions' addresses in the roster's order.
    pub(super) fn in_order(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.entries.keys().map(|(_, addr)| *addr)
    }

    /// How many entries there are: the room's real size, uncapped.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets every entry.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The pages of a roster stamped `time_ms` listing the first `most` entries in order
    /// (every entry when there are fewer), each a [`Delivery::Roster`] with a blank
    /// envelope: as many entries as fit in [`wire::MAX_DATAGRAM`] each, at most `u16::MAX`
    /// entries in all (the count's width), and at least one page. `total` is the number of
    /// entries (capped so), however many are listed. The walk stops at the last entry
    /// listed: a short roster of a large room costs what it sends.
    pub(super) fn pages(&self, time_ms: i64, most: usize) -> Vec<Arc<[u8]>> {
        let total = u16::try_from(self.entries.len()).unwrap_or(u16::MAX);
        let listed = most.min(usize::from(total));
        let start = |offset: usize| {
            Frame::ToClient(ToClient::Sequenced(
                Envelope::default(),
                Delivery::Roster {
                    time_ms,
                    total,
                    offset: u16::try_from(offset).unwrap_or(u16::MAX),
                    entries: Vec::new(),
                },
            ))
            .to_bytes()
        };
        let mut pages = Vec::new();
        let mut page = start(0);
        let mut in_page = 0;
        for (index, entry) in self.entries.values().take(listed).enumerate() {
            if in_page > 0 && page.len() + entry.len() > wire::MAX_DATAGRAM {
                pages.push(std::mem::replace(&mut page, start(index)).into());
                in_page = 0;
            }
            page.extend_from_slice(entry);
            in_page += 1;
        }
        pages.push(page.into());
        pages
    }
}
