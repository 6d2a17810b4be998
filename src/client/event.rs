//! What the client core tells its user: [`ClientEvent`] (something to show — the chat
//! events a peer shows too, [`ChatEvent`], and what only a client of a server says — with
//! what it says about who is online) and [`CloseReason`] (why the session ended).
//!
//! It does not own when events happen (the client core, `client`) or how they look on
//! screen (`render`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::chat::ChatEvent;
use crate::proto::presence::Presence;
use crate::wire::{DisconnectReason, PresenceChange, PresenceItem, RefuseReason, RosterEntry};

/// Something to show the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Something said in the room or a change of someone in it, the same as a peer is
    /// shown: messages, private messages and actions (stamped by the server; `own` for ours
    /// coming back), presence changes, and lines from the server's history (replayed to a
    /// newcomer, said while we were away, or asked for with `/history`).
    Chat(ChatEvent),
    /// The server accepted us under `name`.
    Joined { name: String, server: SocketAddr },
    /// A notice from the server (warnings, answers to what we asked).
    Notice { time_ms: i64, text: String },
    /// Several people's presence changed within a short while, in this order (the server
    /// gathers them, see [`Delivery::PresenceBatch`]): each as one [`ChatEvent::Presence`]
    /// would say it, and shown together.
    PresenceBatch {
        time_ms: i64,
        changes: Vec<PresenceItem>,
    },
    /// Part of an answer to `/list`.
    Roster {
        time_ms: i64,
        total: u16,
        offset: u16,
        entries: Vec<RosterEntry>,
    },
    /// The server renamed us (after our `/nick`).
    Renamed { name: String },
    /// Nothing has been heard from the server for `silent_for`.
    ServerSilent { silent_for: Duration },
    /// The server answers again after [`ClientEvent::ServerSilent`].
    ServerBack,
    /// The server no longer knows us (it restarted, or timed us out): joining again.
    Rejoining,
    /// The server stopped answering (what we sent went unacknowledged through every
    /// retry): joining again, with backoff, until it is back; what is typed meanwhile waits.
    ServerLost,
    /// A new session began after an outage, under `name`; `queued` typed lines that waited
    /// go out now.
    Rejoined { name: String, queued: usize },
    /// More was typed than the flood limit lets go at once: `lines` wait, and go one every
    /// `every` (told once per backlog).
    Queued { lines: usize, every: Duration },
    /// `count` queued lines were never sent, because `why`.
    Unsent { count: usize, why: &'static str },
    /// A typed line could not be sent, or was sent but never acknowledged.
    NotSent { text: String, why: &'static str },
    /// The server dropped `count` messages meant for us because we fell too far behind.
    Missed { count: u32 },
    /// The replay a newcomer is shown is over: `shown` lines were replayed, the server
    /// holds `earlier` more before them.
    HistoryEnd { shown: u64, earlier: u64 },
    /// The page asked for with `/history` is over: `shown` lines were shown, the server
    /// holds `earlier` more before them.
    PageEnd { shown: u64, earlier: u64 },
    /// The catch-up after a rejoin is over: `count` lines were said while we were away
    /// (those shown just before, and those gone: see [`ClientEvent::HistoryGone`]).
    MissedWhileAway { count: u64 },
    /// The server's history is not the one we knew (it restarted without keeping it): what
    /// was said before is gone.
    HistoryRestarted,
    /// `count` lines said while we were away could not be shown (not kept, trimmed, or
    /// more than one catch-up carries); the newest `held` of them the server still holds,
    /// for `/history`.
    HistoryGone { count: u64, held: u64 },
    /// The server's history ends `count` lines before the last line we saw (it lost them,
    /// e.g. its file was restored from an older copy).
    HistoryRewound { count: u64 },
    /// The session is over; the program should exit.
    Closed(CloseReason),
}

impl ClientEvent {
    /// What this event says about who is online, as typed news (see [`Presence`]): a batch
    /// gives one piece per change, in order; a live line from someone else says its author
    /// is online (in a large room, where the server announces no arrivals, that is how
    /// completion learns the names of those who speak).
    pub fn presence(&self) -> Vec<Presence> {
        let one = match self {
            ClientEvent::Joined { name, .. }
            | ClientEvent::Rejoined { name, .. }
            | ClientEvent::Renamed { name } => Presence::Me { name: name.clone() },
            ClientEvent::Roster {
                offset, entries, ..
            } => Presence::Online {
                names: entries.iter().map(|entry| entry.name.clone()).collect(),
                first: *offset == 0,
            },
            ClientEvent::Chat(ChatEvent::Presence { name, change, .. }) => {
                match presence_news(name, change) {
                    Some(news) => news,
                    None => return Vec::new(),
                }
            }
            ClientEvent::PresenceBatch { changes, .. } => {
                return changes
                    .iter()
                    .filter_map(|item| presence_news(&item.name, &item.change))
                    .collect();
            }
            ClientEvent::Chat(ChatEvent::Message {
                from, own: false, ..
            })
            | ClientEvent::Chat(ChatEvent::Action {
                from, own: false, ..
            })
            | ClientEvent::Chat(ChatEvent::Private {
                from, own: false, ..
            }) => Presence::Arrived { name: from.clone() },
            _ => return Vec::new(),
        };
        vec![one]
    }
}

/// What one presence change of `name` says about who is online (nothing, for away and
/// back).
fn presence_news(name: &str, change: &PresenceChange) -> Option<Presence> {
    Some(match change {
        PresenceChange::Joined => Presence::Arrived {
            name: name.to_owned(),
        },
        PresenceChange::Renamed { to } => Presence::Renamed {
            from: name.to_owned(),
            to: to.clone(),
        },
        change if change.is_departure() => Presence::Gone {
            name: name.to_owned(),
        },
        _ => return None,
    })
}

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The user left.
    Left,
    /// The user left while the server was not answering (an outage), before it came back.
    LeftUnreachable,
    /// No server answered the join in time.
    JoinTimedOut,
    /// No server answered the join in time, but the server's address answered in another
    /// protocol than ours.
    ForeignAnswer,
    /// The server refused the join.
    Refused(RefuseReason),
    /// The server ended the session.
    Disconnected {
        reason: DisconnectReason,
        text: String,
    },
}

impl CloseReason {
    /// Whether the program should exit with a failure status.
    pub fn is_failure(&self) -> bool {
        !matches!(self, CloseReason::Left)
    }
}
