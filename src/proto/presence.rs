//! Who is online, as data: the one typed kind of presence news that both roles give the UI.
//!
//! A client of a server learns presence from the server's typed frames (the roster at join
//! and after `/list`, [`crate::Delivery::Presence`] and [`crate::Delivery::PresenceBatch`]
//! for joins, departures and renames, and the live lines of those who speak); a peer learns it from its room's membership (the member list at join,
//! announcements, departures). Each role turns its own events into [`Presence`] values
//! (`ClientEvent::presence`, `PeerEvent::presence`), and whatever keeps a list of who is
//! online (Tab completion, [`crate::completion::NameBook`]) reads only these, never the
//! text of a notice: every way of leaving removes the name, however it is worded. This
//! module owns only the type; the roles own producing it, and the UI owns what it does with
//! it.

/// One piece of presence news.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// Our own name from now on (we joined, or were renamed).
    Me { name: String },
    /// Who is online, ours included: the whole list when `first` (it replaces what was
    /// known), or a further part of a list that spans several frames.
    Online { names: Vec<String>, first: bool },
    /// Someone arrived (or was heard from: a live line of theirs came).
    Arrived { name: String },
    /// Someone is no longer online (left, timed out, kicked, banned, evicted).
    Gone { name: String },
    /// Someone called `from` is called `to` from now on.
    Renamed { from: String, to: String },
}
