//! What is said in a room, as the user is shown it: [`ChatEvent`], the one kind of chat
//! event that both roles which show a room (the client of a server, the peer) give the UI.
//!
//! A line, a private message, an action, a presence change and a line from the history
//! are the same thing whoever relays them, so they are one type: each role wraps it in its
//! own event enum (`ClientEvent::Chat`, `PeerEvent::Chat`) next to what only it can say,
//! and the renderer draws it once. This module owns only the type; the roles own when it
//! happens, and `render` owns how it looks.

use crate::wire::{HistoryEntry, LineKind, PresenceChange};

/// Something said in the room, or a change of someone in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A chat message, stamped with its sender's time (the server's, or the peer's who
    /// sent it). `own` is true for ours.
    Message {
        time_ms: i64,
        from: String,
        text: String,
        own: bool,
    },
    /// A private message between `from` and `to` (one of them is us; `own`: we sent it).
    Private {
        time_ms: i64,
        from: String,
        to: String,
        text: String,
        own: bool,
    },
    /// A `/me` action: `* from text` (`own`: ours).
    Action {
        time_ms: i64,
        from: String,
        text: String,
        own: bool,
    },
    /// Someone's presence changed (`name` is the name they had until now): joined, left,
    /// timed out, was kicked or banned, renamed, away or back — the changes a server
    /// announces (a peer announces renames, away and back this way).
    Presence {
        time_ms: i64,
        name: String,
        change: PresenceChange,
    },
    /// A public line said before, not shown before, from a history (the server's, or a
    /// member's): replayed on joining, a rejoin's catch-up, or asked for with `/history`.
    /// Line `seq` of epoch `epoch`, said at `time_ms` (`own`: by us, under our present
    /// name).
    HistoryLine {
        epoch: u64,
        seq: u64,
        time_ms: i64,
        from: String,
        kind: LineKind,
        text: String,
        own: bool,
    },
}

impl ChatEvent {
    /// A live public line of `kind`: a [`ChatEvent::Action`] for an action, a
    /// [`ChatEvent::Message`] otherwise.
    pub fn live(kind: LineKind, time_ms: i64, from: String, text: String, own: bool) -> Self {
        match kind {
            LineKind::Action => ChatEvent::Action {
                time_ms,
                from,
                text,
                own,
            },
            LineKind::Chat | LineKind::Console => ChatEvent::Message {
                time_ms,
                from,
                text,
                own,
            },
        }
    }

    /// A line from a history as it travelled (`own`: said by us).
    pub fn replayed(line: HistoryEntry, own: bool) -> Self {
        ChatEvent::HistoryLine {
            epoch: line.epoch,
            seq: line.seq,
            time_ms: line.time_ms,
            from: line.from,
            kind: line.kind,
            text: line.text,
            own,
        }
    }

    /// When it was said (or changed), by the stamp of whoever said it.
    pub fn time_ms(&self) -> i64 {
        match self {
            ChatEvent::Message { time_ms, .. }
            | ChatEvent::Private { time_ms, .. }
            | ChatEvent::Action { time_ms, .. }
            | ChatEvent::Presence { time_ms, .. }
            | ChatEvent::HistoryLine { time_ms, .. } => *time_ms,
        }
    }
}
