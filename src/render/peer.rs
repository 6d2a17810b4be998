//! A peer's lines: the ones for each [`PeerEvent`] (several for `/list`), and what a peer
//! says when it stops. Messages look, ring and highlight exactly like the client's.

use super::client::{not_sent_text, queued_text, refuse_text, renamed_text, unsent_text};
use super::{ClientLook, Tone};
use crate::peer::{MemberInfo, PeerCloseReason, PeerEvent};
use crate::text::{duration, presence_text, roster_remark, sanitize};
use crate::wire::{GoneReason, PresenceChange, RefuseReason, RosterEntry};

impl ClientLook {
    /// The lines to print for a peer-mode event (several for `/list`, none for the end:
    /// the binary reports that itself). `now_ms` stamps events the peer makes up itself;
    /// messages carry their sender's time. `me` is our name (for mentions).
    pub fn peer_lines(&self, event: &PeerEvent, now_ms: i64, me: &str) -> Vec<String> {
        let brush = self.brush();
        let (tone, time_ms, words) = match event {
            PeerEvent::Joined {
                name,
                through: None,
                ..
            } => (
                Tone::Good,
                now_ms,
                format!(
                    "started a new room as {name}; others join it with --peer and this \
                     address; type /help for commands"
                ),
            ),
            PeerEvent::Joined {
                name,
                through: Some((contact, addr)),
                members,
            } => {
                let joined = format!(
                    "joined the room through {contact} ({addr}) as {name}; type /help for \
                     commands"
                );
                return vec![
                    brush.notice(Tone::Good, now_ms, &joined),
                    brush.roster(now_ms, members.len(), 0, &peer_roster(members)),
                ];
            }
            // These look exactly as in server mode.
            PeerEvent::Chat(chat) => return vec![self.chat_line(chat, now_ms, me)],
            PeerEvent::Renamed { name } => (Tone::Quiet, now_ms, renamed_text(name)),
            // A peer's `/history` asks for the newest lines: all that are held, to see the
            // earlier ones.
            PeerEvent::HistoryEnd { shown, earlier } => {
                return vec![brush.history_end(*earlier, shown.saturating_add(*earlier))];
            }
            PeerEvent::RenameLost { name, back_to } => (
                Tone::Trouble,
                now_ms,
                format!(
                    "another peer took the name {} at the same moment, and keeps it; you are \
                     {} again",
                    sanitize(name),
                    sanitize(back_to)
                ),
            ),
            PeerEvent::MemberJoined { time_ms, name } => (
                Tone::Quiet,
                *time_ms,
                presence_text(name, &PresenceChange::Joined),
            ),
            PeerEvent::MemberGone {
                time_ms,
                name,
                reason,
            } => (Tone::Quiet, *time_ms, gone_text(name, *reason)),
            PeerEvent::DroppedBy { time_ms, name } => (
                Tone::Trouble,
                *time_ms,
                format!(
                    "{name} no longer counts us in the room (it stopped hearing from us); \
                     we no longer talk to {name} either"
                ),
            ),
            PeerEvent::FloodDropped {
                time_ms,
                from,
                dropped,
            } => (
                Tone::Quiet,
                *time_ms,
                format!(
                    "{} from {from} not shown: sent too fast",
                    messages(*dropped)
                ),
            ),
            PeerEvent::FloodWarned {
                time_ms,
                by,
                dropped,
            } => (
                Tone::Trouble,
                *time_ms,
                format!(
                    "{} not shown by {by}: you are sending too fast",
                    messages(*dropped)
                ),
            ),
            PeerEvent::Members { time_ms, members } => {
                let head = format!("{} in the room:", members.len());
                let rows = members
                    .iter()
                    .map(|member| format!("  {}", member_text(member)));
                return std::iter::once(head)
                    .chain(rows)
                    .map(|words| brush.notice(Tone::Quiet, *time_ms, &words))
                    .collect();
            }
            PeerEvent::Queued {
                lines: count,
                every,
            } => (Tone::Quiet, now_ms, queued_text(*count, *every)),
            PeerEvent::Unsent { count, why } => (Tone::Trouble, now_ms, unsent_text(*count, why)),
            PeerEvent::NotSent { text, why } => (Tone::Trouble, now_ms, not_sent_text(text, why)),
            PeerEvent::Undelivered { to, count, why } => (
                Tone::Trouble,
                now_ms,
                format!("{} to {to} not confirmed ({why})", messages(*count as u32)),
            ),
            PeerEvent::Closed(_) => return Vec::new(),
        };
        vec![brush.notice(tone, time_ms, &words)]
    }
}

/// What a peer says when a member is gone: `bob left`, `bob timed out`...
pub fn gone_text(name: &str, reason: GoneReason) -> String {
    match reason {
        GoneReason::Left => presence_text(name, &PresenceChange::Left),
        GoneReason::TimedOut => presence_text(name, &PresenceChange::TimedOut),
        GoneReason::NameTaken => {
            format!("{name} gave way: another peer joined under that name at the same moment")
        }
    }
}

/// A peer room's names as roster entries (peer mode has no away or guests).
pub fn peer_roster(members: &[String]) -> Vec<RosterEntry> {
    members
        .iter()
        .map(|name| RosterEntry {
            name: name.clone(),
            ..RosterEntry::default()
        })
        .collect()
}

/// `1 message`, `3 messages`.
fn messages(count: u32) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} message{plural}")
}

/// One member in `/list`: `bob at 127.0.0.1:5001, heard 2s ago`.
fn member_text(member: &MemberInfo) -> String {
    let mut text = member.name.clone();
    if member.you {
        text.push_str(" (you)");
    }
    // Away in the server's words: ` (away: lunch)`.
    let as_listed = RosterEntry {
        name: String::new(),
        away: member.away.clone().unwrap_or_default(),
        guest: false,
    };
    text.push_str(&roster_remark(&as_listed));
    if let Some(addr) = member.addr {
        text.push_str(&format!(" at {addr}"));
    }
    if member.you {
        return text;
    }
    if member.banned {
        text.push_str(", banned here: not talked to, not listened to");
    } else if !member.reachable {
        text.push_str(", not reachable yet");
    } else if let Some(idle) = member.idle_for {
        text.push_str(&format!(", heard {} ago", duration(idle)));
    }
    text
}

/// What a peer says when it stops, naming the `--peer` it asked (`contact`).
pub fn peer_close_text(reason: &PeerCloseReason, contact: &str, name: &str) -> String {
    let refused = |why: &str| format!("{contact} refused to let us in: {why}");
    match reason {
        PeerCloseReason::Left => "left the room".to_owned(),
        PeerCloseReason::JoinTimedOut => format!(
            "no answer from {contact}: is a peer running there (in a room, not leaving), and \
             is the address right?"
        ),
        PeerCloseReason::ForeignAnswer => format!(
            "{contact} answers, but not in icq's protocol: is the address right (the port above all)?"
        ),
        PeerCloseReason::Refused(RefuseReason::IsAServer) => format!(
            "{contact} is an icq server, not a peer: to join it, use --server (without --listen)"
        ),
        PeerCloseReason::Refused(RefuseReason::NameTaken) => {
            refused("the name is already taken in the room; choose another with --name")
        }
        PeerCloseReason::Refused(RefuseReason::Banned) => refused("it bans our address"),
        PeerCloseReason::Refused(RefuseReason::ServerFull) => refused("the room is full"),
        PeerCloseReason::Refused(RefuseReason::VersionUnsupported) => {
            refused("it speaks another protocol version")
        }
        PeerCloseReason::Refused(RefuseReason::AddressInUse) => {
            refused("another member uses our address and port")
        }
        PeerCloseReason::Refused(reason) => refused(refuse_text(*reason)),
        PeerCloseReason::NameConflict => format!(
            "another peer joined the room as {} at the same moment, and keeps the name; \
             choose another with --name",
            sanitize(name)
        ),
    }
}
