//! The roster as the server keeps it: every session's entry, encoded once, in the order a
//! roster lists them, so answering a join or a `/list` copies bytes instead of collecting,
//! folding and sorting every name (which made a join storm quadratic in CPU as well).
//!
//! Owns the index and the pages of a [`Delivery::Roster`] answer. It does not own when a
//! roster is sent (`room`, `sessions`), guests' plain-text roster (`guests`), or the entry's
//! layout (`wire`).

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

    /// Forgets every entry.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The pages of a roster stamped `time_ms`, each a [`Delivery::Roster`] with a blank
    /// envelope: as many entries as fit in [`wire::MAX_DATAGRAM`] each, at most `u16::MAX`
    /// entries in all (the count's width), and at least one page.
    pub(super) fn pages(&self, time_ms: i64) -> Vec<Arc<[u8]>> {
        let total = u16::try_from(self.entries.len()).unwrap_or(u16::MAX);
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
        for (index, entry) in self.entries.values().take(usize::from(total)).enumerate() {
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
