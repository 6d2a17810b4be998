//! The client's lines: one for each [`ClientEvent`], and what it says when its session
//! ends (why a server refused or disconnected us, in words).

use std::borrow::Cow;
use std::time::Duration;

use super::{Chat, ChatKind, ClientLook, Tone};
use crate::client::{ClientEvent, CloseReason};
use crate::command;
use crate::proto::chat::ChatEvent;
use crate::text::{duration, presence_batch_text, presence_text, sanitize};
use crate::wire::{DisconnectReason, RefuseReason};

impl ClientLook {
    /// The line to print for `event`, or `None` for events that end the program (the
    /// binary reports those itself). `me` is the name we joined under (for mentions);
    /// `now_ms` stamps events the client makes up itself (the server stamps the rest). A
    /// message that rings ends with [`super::BELL`].
    pub fn client_line(&self, event: &ClientEvent, now_ms: i64, me: &str) -> Option<String> {
        let (tone, time_ms, words): (Tone, i64, Cow<'_, str>) = match event {
            ClientEvent::Chat(chat) => return Some(self.chat_line(chat, now_ms, me)),
            ClientEvent::HistoryEnd { earlier, .. } => {
                // `/history` pages back from the oldest line shown: it asks for the rest.
                return Some(self.brush().history_end(*earlier, *earlier));
            }
            ClientEvent::PageEnd { shown, earlier } => {
                return Some(self.brush().page_end(*shown, *earlier));
            }
            ClientEvent::MissedWhileAway { count } => (
                Tone::Quiet,
                now_ms,
                format!("you missed {} while away", lines(*count)).into(),
            ),
            ClientEvent::HistoryRestarted => (
                Tone::Quiet,
                now_ms,
                "the server restarted: what was said before it is gone".into(),
            ),
            ClientEvent::HistoryGone { count, held } => {
                (Tone::Quiet, now_ms, gone_text(*count, *held).into())
            }
            ClientEvent::HistoryRewound { count } => (
                Tone::Quiet,
                now_ms,
                format!(
                    "the server's history lost the last {} you saw",
                    lines(*count)
                )
                .into(),
            ),
            ClientEvent::Roster {
                time_ms,
                total,
                offset,
                entries,
            } => {
                let (total, offset) = (usize::from(*total), usize::from(*offset));
                return Some(self.brush().roster(*time_ms, total, offset, entries));
            }
            ClientEvent::Joined { name, server } => (
                Tone::Good,
                now_ms,
                format!("connected to {server} as {name}; type /help for commands").into(),
            ),
            ClientEvent::Notice { time_ms, text } => (Tone::Quiet, *time_ms, text.into()),
            ClientEvent::PresenceBatch { time_ms, changes } => {
                (Tone::Quiet, *time_ms, presence_batch_text(changes).into())
            }
            ClientEvent::Renamed { name } => (Tone::Quiet, now_ms, renamed_text(name).into()),
            ClientEvent::ServerSilent { silent_for } => (
                Tone::Trouble,
                now_ms,
                format!(
                    "no answer from the server for {}; still trying",
                    duration(*silent_for)
                )
                .into(),
            ),
            ClientEvent::ServerBack => (Tone::Good, now_ms, "the server answers again".into()),
            ClientEvent::Rejoining => (
                Tone::Waiting,
                now_ms,
                "the server no longer knows this session (it restarted, or timed us out); \
                 joining again"
                    .into(),
            ),
            ClientEvent::ServerLost => (
                Tone::Trouble,
                now_ms,
                "the server stopped answering; joining again until it is back (what you type \
                 meanwhile is kept, and sent then)"
                    .into(),
            ),
            ClientEvent::Rejoined { name, queued: 0 } => (
                Tone::Good,
                now_ms,
                format!("back in the chat as {}", sanitize(name)).into(),
            ),
            ClientEvent::Rejoined { name, queued } => (
                Tone::Good,
                now_ms,
                format!(
                    "back in the chat as {}; sending the {} typed meanwhile",
                    sanitize(name),
                    lines(*queued as u64)
                )
                .into(),
            ),
            ClientEvent::Queued {
                lines: count,
                every,
            } => (Tone::Quiet, now_ms, queued_text(*count, *every).into()),
            ClientEvent::Unsent { count, why } => {
                (Tone::Trouble, now_ms, unsent_text(*count, why).into())
            }
            ClientEvent::NotSent { text, why } => {
                (Tone::Trouble, now_ms, not_sent_text(text, why).into())
            }
            ClientEvent::Missed { count } => {
                let plural = if *count == 1 { "" } else { "s" };
                let words =
                    format!("{count} message{plural} missed: this client fell too far behind");
                (Tone::Quiet, now_ms, words.into())
            }
            ClientEvent::Closed(_) => return None,
        };
        Some(self.brush().notice(tone, time_ms, &words))
    }

    /// The line for something said in the room or a change of someone in it, the same in
    /// both modes (a client of a server's, a peer's). `now_ms` and `me` as for
    /// [`ClientLook::client_line`].
    pub fn chat_line(&self, event: &ChatEvent, now_ms: i64, me: &str) -> String {
        let (kind, time_ms, from, text, own) = match event {
            ChatEvent::Message {
                time_ms,
                from,
                text,
                own,
            } => (ChatKind::Message, time_ms, from, text, own),
            ChatEvent::Private {
                time_ms,
                from,
                to,
                text,
                own,
            } => (ChatKind::Private { to }, time_ms, from, text, own),
            ChatEvent::Action {
                time_ms,
                from,
                text,
                own,
            } => (ChatKind::Action, time_ms, from, text, own),
            ChatEvent::Presence {
                time_ms,
                name,
                change,
            } => {
                return self
                    .brush()
                    .notice(Tone::Quiet, *time_ms, &presence_text(name, change));
            }
            ChatEvent::HistoryLine {
                time_ms,
                from,
                kind,
                text,
                ..
            } => {
                return self
                    .brush()
                    .history_line(*time_ms, now_ms, from, *kind, text);
            }
        };
        self.chat(Chat::new(kind, *time_ms, from, text, *own), me)
    }
}

/// What we are told when our name changes (after our `/nick`): `you are now known as bob`.
pub fn renamed_text(name: &str) -> String {
    format!("you are now known as {}", sanitize(name))
}

/// `1 line`, `20 lines`.
fn lines(count: u64) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} line{plural}")
}

/// What the catch-up after a rejoin could not show: `count` lines said while we were
/// away, of which the server still holds the newest `held` (`/history` shows them).
fn gone_text(count: u64, held: u64) -> String {
    let said = format!("{} said while you were away", lines(count));
    let (are, them) = if count == 1 {
        ("is", "it")
    } else {
        ("are", "them")
    };
    let ask = held.min(u64::from(command::HISTORY_MAX));
    if held == 0 {
        format!("{said} {are} gone")
    } else if held >= count {
        format!("{said} {are} not shown: /history {ask} shows {them}")
    } else {
        format!("{said} are gone, but /history {ask} shows the last {held} of them")
    }
}

/// `20 lines queued (sending 5 a second)`: a paste beyond the flood limit's burst.
pub(super) fn queued_text(count: usize, every: Duration) -> String {
    format!(
        "{} queued (sending {})",
        lines(count as u64),
        pace_text(every)
    )
}

/// `3 lines not sent: why`.
pub(super) fn unsent_text(count: usize, why: &str) -> String {
    format!("{} not sent: {why}", lines(count as u64))
}

/// `not delivered (why): text`.
pub(super) fn not_sent_text(text: &str, why: &str) -> String {
    format!("not delivered ({why}): {text}")
}

/// `5 a second`, `2.5 a second`, `one every 4s`.
pub fn pace_text(every: Duration) -> String {
    if every > Duration::from_secs(1) {
        return format!("one every {}", duration(every));
    }
    let per_second = 1.0 / every.as_secs_f64().max(1e-9);
    let rounded = (per_second * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0} a second")
    } else {
        format!("{rounded:.1} a second")
    }
}

/// Why a join was refused, in words.
pub fn refuse_text(reason: RefuseReason) -> &'static str {
    match reason {
        RefuseReason::NameTaken => "the name is already taken",
        RefuseReason::NameInvalid => "the name is not allowed",
        RefuseReason::Banned => "the address is banned",
        RefuseReason::ServerFull => "the server is full",
        RefuseReason::VersionUnsupported => "the server speaks another protocol version",
        RefuseReason::AddressInUse => "another session is running from the same address and port",
        RefuseReason::TooManyFromAddress => "too many clients are connected from this address",
        RefuseReason::KickedRecently => {
            "this address was kicked for flooding; try again in a minute"
        }
        RefuseReason::IsAServer => "it is an icq server, not a peer",
        RefuseReason::IsAPeer => "it is an icq peer, not a server",
        RefuseReason::Busy => "the server is busy",
    }
}

/// Why a session was ended by the server, in words.
pub fn disconnect_text(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::Kicked => "you were kicked",
        DisconnectReason::Banned => "your address was banned",
        DisconnectReason::ServerClosing => "the server closed",
        DisconnectReason::TimedOut => "the server timed you out",
    }
}

/// What a client says when its session ends, naming the server.
pub fn close_text(reason: &CloseReason, server: &str) -> String {
    match reason {
        CloseReason::Left => "left the chat".to_owned(),
        CloseReason::LeftUnreachable => {
            format!("left the chat without reaching {server} again (it was not answering)")
        }
        CloseReason::JoinTimedOut => {
            format!("no answer from {server}: is the server running, and is the address right?")
        }
        CloseReason::ForeignAnswer => format!(
            "{server} answers, but not in icq's protocol: is the address right (the port above all)?"
        ),
        CloseReason::Refused(RefuseReason::IsAPeer) => format!(
            "{server} is an icq peer, not a server: to join its room, use --listen and --peer"
        ),
        CloseReason::Refused(RefuseReason::NameTaken) => format!(
            "{server} refused to let us join: the name is already taken by someone online; choose another with --name"
        ),
        CloseReason::Refused(reason) => {
            format!("{server} refused to let us join: {}", refuse_text(*reason))
        }
        // The server's own words when it gave some, else ours for its reason.
        CloseReason::Disconnected { reason, text } if text.trim().is_empty() => {
            format!("disconnected from {server}: {}", disconnect_text(*reason))
        }
        CloseReason::Disconnected { text, .. } => {
            format!("disconnected from {server}: {}", sanitize(text))
        }
    }
}
