//! Terminal rendering: turning what arrived from the network into lines a person reads.
//!
//! This module owns the look of every line both programs print (`[HH:MM:SS] alice: hello`,
//! `[HH:MM:SS] -- bob joined`), clock and duration formatting, and — most importantly —
//! neutralizing text from the network so that a peer can never send a terminal escape
//! sequence, a control character or a direction override to someone's screen. It does not
//! own deciding *what* to print (the cores emit events) or writing to stdout (the binaries).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Local};

use crate::client::{ClientEvent, CloseReason};
use crate::names::is_invisible_or_bidi;
use crate::peer::{MemberInfo, PeerCloseReason, PeerEvent};
use crate::server::{ServerEvent, SuppressedKind};
use crate::wire::{DisconnectReason, GoneReason, PresenceChange, RefuseReason, RosterEntry};

/// The bell byte: terminals beep or flash when it is printed.
pub const BELL: char = '\u{07}';

/// Makes text from the network safe to print, keeping ordinary Unicode (accents, CJK, emoji).
///
/// - C0 controls and DEL are shown in caret notation (`ESC` becomes `^[`), so an escape
///   sequence is printed visibly and does nothing: `\x1b[2J` shows as `^[[2J`.
/// - A tab becomes a space (a raw tab would let text jump columns).
/// - C1 controls (U+0080–U+009F; some terminals treat U+009B as an escape) and invisible or
///   direction-changing characters become U+FFFD `�`, so a right-to-left override cannot
///   reorder what follows it.
///
/// Clean text (the usual case) is returned without copying.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    // Printable ASCII (most chat) never needs changing, and checking bytes is several
    // times faster than the character test below; a busy server sanitizes every line.
    if text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Cow::Borrowed(text);
    }
    if !text.chars().any(needs_neutralizing) {
        return Cow::Borrowed(text);
    }
    let mut clean = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        match ch {
            '\t' => clean.push(' '),
            '\u{00}'..='\u{1F}' => {
                clean.push('^');
                clean.push(char::from(ch as u8 + 0x40));
            }
            '\u{7F}' => clean.push_str("^?"),
            ch if needs_neutralizing(ch) => clean.push('\u{FFFD}'),
            ch => clean.push(ch),
        }
    }
    Cow::Owned(clean)
}

fn needs_neutralizing(ch: char) -> bool {
    ch.is_control() || (is_invisible_or_bidi(ch) && !joins_emoji_or_script(ch))
}

/// Invisible characters that ordinary text needs: the zero-width joiner and non-joiner
/// (👨‍👩‍👧 is three emoji joined by U+200D; Persian and Indic scripts use both) and the
/// variation selectors (❤️ is U+2764 U+FE0F). They move nothing and hide nothing, so text
/// keeps them; names, where they could make two names look alike, still refuse them.
fn joins_emoji_or_script(ch: char) -> bool {
    matches!(ch, '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}')
}

/// The local `HH:MM:SS` of one second, kept: a busy server stamps many lines within a
/// second, and going through the time-zone rules for each costs more than the rest of the
/// line. Time zones change their offset on whole seconds only, so the text for a second
/// never goes stale.
#[derive(Debug, Default)]
pub struct ClockText {
    second: Option<i64>,
    text: String,
}

impl ClockText {
    /// A cache holding nothing yet (usable in a `static`).
    pub const fn new() -> ClockText {
        ClockText {
            second: None,
            text: String::new(),
        }
    }

    /// [`clock`] of `time_ms`.
    pub fn get(&mut self, time_ms: i64) -> &str {
        let second = time_ms.div_euclid(1000);
        if self.second != Some(second) {
            self.second = Some(second);
            self.text = clock(time_ms);
        }
        &self.text
    }
}

/// `HH:MM:SS` in the local time zone for a time in milliseconds since the Unix epoch.
/// The time comes from the server, so every client shows the same instant, each in its own
/// zone. An out-of-range value shows as `??:??:??` rather than failing.
pub fn clock(time_ms: i64) -> String {
    match DateTime::from_timestamp_millis(time_ms) {
        Some(utc) => utc.with_timezone(&Local).format("%H:%M:%S").to_string(),
        None => "??:??:??".to_owned(),
    }
}

/// A chat line: `[12:00:00] alice: hello`. Name and text are sanitized here, whatever the
/// caller did, because this is the last step before a terminal.
pub fn message_line(time_ms: i64, from: &str, text: &str) -> String {
    format!(
        "[{}] {}: {}",
        clock(time_ms),
        sanitize(from),
        sanitize(text)
    )
}

/// A notice line: `[12:00:00] -- bob joined`.
pub fn notice_line(time_ms: i64, text: &str) -> String {
    format!("[{}] -- {}", clock(time_ms), sanitize(text))
}

/// A short human duration for `/list`: `42s`, `3m 05s`, `2h 07m`, `3d 04h`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = if days > 0 {
        write!(out, "{days}d {hours:02}h")
    } else if hours > 0 {
        write!(out, "{hours}h {minutes:02}m")
    } else if minutes > 0 {
        write!(out, "{minutes}m {seconds:02}s")
    } else {
        write!(out, "{seconds}s")
    };
    out
}

/// How a person appears in `/list`: `bob`, or `bob (away: lunch)`, `carol (guest)`.
pub fn roster_entry(entry: &RosterEntry) -> String {
    format!("{}{}", sanitize(&entry.name), roster_remark(entry))
}

/// What follows a name in `/list`: ` (guest)`, ` (away)`, ` (away: lunch)`,
/// ` (guest, away: lunch)`, or nothing.
pub fn roster_remark(entry: &RosterEntry) -> String {
    let away = if entry.away.is_empty() {
        None
    } else if entry
        .away
        .eq_ignore_ascii_case(crate::server::AWAY_WITHOUT_REASON)
    {
        Some("away".to_owned())
    } else {
        Some(format!("away: {}", sanitize(&entry.away)))
    };
    match (entry.guest, away) {
        (false, None) => String::new(),
        (true, None) => " (guest)".to_owned(),
        (false, Some(away)) => format!(" ({away})"),
        (true, Some(away)) => format!(" (guest, {away})"),
    }
}

/// Who is online, as said at join and answering `/list`: `3 online: alice, bob (away:
/// lunch), carol` for the first part of a list (`offset` 0) of `total` people, `(online,
/// continued) dave, erin` for the next ones. The client of a server and a peer both say it
/// this way.
pub fn online_text(total: usize, offset: usize, entries: &[RosterEntry]) -> String {
    let names: Vec<String> = entries.iter().map(roster_entry).collect();
    let names = names.join(", ");
    if offset == 0 {
        format!("{total} online: {names}")
    } else {
        format!("(online, continued) {names}")
    }
}

/// A change of someone's presence, as everyone is told: `bob joined`, `bob left`, `bob was
/// kicked for flooding`, `bob is now known as robert`, `bob is away: lunch`...
pub fn presence_text(name: &str, change: &PresenceChange) -> String {
    let name = sanitize(name);
    match change {
        PresenceChange::Joined => format!("{name} joined"),
        PresenceChange::Left => format!("{name} left"),
        PresenceChange::TimedOut => format!("{name} timed out"),
        PresenceChange::Kicked => format!("{name} was kicked"),
        PresenceChange::KickedForFlooding => format!("{name} was kicked for flooding"),
        PresenceChange::Banned => format!("{name} was banned"),
        PresenceChange::Renamed { to } => format!("{name} is now known as {}", sanitize(to)),
        PresenceChange::Away { reason }
            if reason.eq_ignore_ascii_case(crate::server::AWAY_WITHOUT_REASON) =>
        {
            format!("{name} is away")
        }
        PresenceChange::Away { reason } => format!("{name} is away: {}", sanitize(reason)),
        PresenceChange::Back => format!("{name} is back"),
    }
}

/// A private message: `[12:00:00] alice -> bob (private): hi`. The arrow and the word say
/// at a glance that nobody else saw it.
pub fn private_line(time_ms: i64, from: &str, to: &str, text: &str) -> String {
    format!(
        "[{}] {} -> {} (private): {}",
        clock(time_ms),
        sanitize(from),
        sanitize(to),
        sanitize(text)
    )
}

/// A `/me` action: `[12:00:00] * alice waves`.
pub fn action_line(time_ms: i64, from: &str, text: &str) -> String {
    format!(
        "[{}] * {} {}",
        clock(time_ms),
        sanitize(from),
        sanitize(text)
    )
}

/// The server's log line for one event: `[12:00:00] alice: hello`,
/// `[12:00:00] -- alice joined from 127.0.0.1:50000`.
pub fn server_event_line(event: &ServerEvent) -> String {
    match event {
        ServerEvent::Chat {
            time_ms,
            from,
            text,
        } => message_line(*time_ms, from, text),
        ServerEvent::Private {
            time_ms,
            from,
            to,
            text,
        } => private_line(*time_ms, from, to, text),
        ServerEvent::Action {
            time_ms,
            from,
            text,
        } => action_line(*time_ms, from, text),
        ServerEvent::Away {
            time_ms,
            name,
            reason: Some(reason),
        } if reason.eq_ignore_ascii_case(crate::server::AWAY_WITHOUT_REASON) => {
            notice_line(*time_ms, &format!("{} is away", sanitize(name)))
        }
        ServerEvent::Away {
            time_ms,
            name,
            reason: Some(reason),
        } => notice_line(
            *time_ms,
            &format!("{} is away: {}", sanitize(name), sanitize(reason)),
        ),
        ServerEvent::Away {
            time_ms,
            name,
            reason: None,
        } => notice_line(*time_ms, &format!("{} is back", sanitize(name))),
        ServerEvent::Renamed {
            time_ms,
            from,
            to,
            addr,
        } => notice_line(
            *time_ms,
            &format!(
                "{} is now known as {} ({addr})",
                sanitize(from),
                sanitize(to)
            ),
        ),
        ServerEvent::Joined {
            time_ms,
            name,
            addr,
            guest,
        } => {
            let kind = if *guest { " (guest)" } else { "" };
            notice_line(*time_ms, &format!("{name} joined from {addr}{kind}"))
        }
        ServerEvent::Left {
            time_ms,
            name,
            addr,
        } => notice_line(*time_ms, &format!("{name} left ({addr})")),
        ServerEvent::TimedOut {
            time_ms,
            name,
            addr,
        } => notice_line(*time_ms, &format!("{name} timed out ({addr})")),
        ServerEvent::Kicked {
            time_ms,
            name,
            addr,
        } => notice_line(*time_ms, &format!("{name} was kicked ({addr})")),
        ServerEvent::Banned {
            time_ms,
            name,
            addr,
        } => notice_line(
            *time_ms,
            &format!("{name} was disconnected: {addr} is banned"),
        ),
        ServerEvent::Refused {
            time_ms,
            name,
            addr,
            reason,
        } => notice_line(
            *time_ms,
            &format!(
                "refused join of '{name}' from {addr}: {}",
                refuse_text(*reason)
            ),
        ),
        ServerEvent::FloodDropped {
            time_ms,
            name,
            addr,
            dropped,
        } => notice_line(
            *time_ms,
            &format!("flood: dropped {dropped} message(s) from {name} ({addr})"),
        ),
        ServerEvent::Malformed { time_ms, addr, why } => notice_line(
            *time_ms,
            &format!(
                "ignored a malformed datagram from {addr}: {why} (not logged again for this address for a minute)"
            ),
        ),
        ServerEvent::Suppressed {
            time_ms,
            kind,
            from,
            count,
            period,
        } => {
            let (verb, what) = match (kind, count) {
                (SuppressedKind::Refusals, 1) => ("refused", "join"),
                (SuppressedKind::Refusals, _) => ("refused", "joins"),
                (SuppressedKind::Malformed, 1) => ("ignored", "malformed datagram"),
                (SuppressedKind::Malformed, _) => ("ignored", "malformed datagrams"),
            };
            let from = from.as_deref().unwrap_or("other addresses");
            let over = match period.as_secs() {
                60 => "the last minute".to_owned(),
                secs => format!("the last {secs}s"),
            };
            notice_line(
                *time_ms,
                &format!(
                    "{verb} {} more {what} from {from} in {over}",
                    grouped(*count)
                ),
            )
        }
        ServerEvent::Closing { time_ms, clients } => notice_line(
            *time_ms,
            &format!("server closing; told {clients} client(s)"),
        ),
    }
}

/// `19980` as `19 980`: counts in summaries are read at a glance.
pub fn grouped(count: u64) -> String {
    let digits = count.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(digit);
    }
    out
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

/// The line a client prints for an event, or `None` for events that end the program (the
/// binary reports those itself). `now_ms` stamps events the client makes up itself (the
/// server stamps the rest); `bell` adds [`BELL`] to other people's messages.
pub fn client_event_line(event: &ClientEvent, now_ms: i64, bell: bool) -> Option<String> {
    Some(match event {
        ClientEvent::Joined { name, server } => notice_line(
            now_ms,
            &format!("connected to {server} as {name}; type /help for commands"),
        ),
        ClientEvent::Message {
            time_ms,
            from,
            text,
            own,
        } => {
            let mut line = message_line(*time_ms, from, text);
            if bell && !own {
                line.push(BELL);
            }
            line
        }
        ClientEvent::Notice { time_ms, text } => notice_line(*time_ms, text),
        ClientEvent::Presence {
            time_ms,
            name,
            change,
        } => notice_line(*time_ms, &presence_text(name, change)),
        ClientEvent::Roster {
            time_ms,
            total,
            offset,
            entries,
        } => notice_line(
            *time_ms,
            &online_text(usize::from(*total), usize::from(*offset), entries),
        ),
        ClientEvent::Private {
            time_ms,
            from,
            to,
            text,
            own,
        } => {
            let mut line = private_line(*time_ms, from, to, text);
            if bell && !own {
                line.push(BELL);
            }
            line
        }
        ClientEvent::Action {
            time_ms,
            from,
            text,
            own,
        } => {
            let mut line = action_line(*time_ms, from, text);
            if bell && !own {
                line.push(BELL);
            }
            line
        }
        ClientEvent::Renamed { name } => {
            notice_line(now_ms, &format!("you are now known as {}", sanitize(name)))
        }
        ClientEvent::ServerSilent { silent_for } => notice_line(
            now_ms,
            &format!(
                "no answer from the server for {}; still trying",
                duration(*silent_for)
            ),
        ),
        ClientEvent::ServerBack => notice_line(now_ms, "the server answers again"),
        ClientEvent::Rejoining => notice_line(
            now_ms,
            "the server no longer knows this session (it restarted, or timed us out); joining again",
        ),
        ClientEvent::ServerLost => notice_line(
            now_ms,
            "the server stopped answering; joining again until it is back (what you type \
             meanwhile is kept, and sent then)",
        ),
        ClientEvent::Rejoined { name, queued: 0 } => {
            notice_line(now_ms, &format!("back in the chat as {}", sanitize(name)))
        }
        ClientEvent::Rejoined { name, queued } => notice_line(
            now_ms,
            &format!(
                "back in the chat as {}; sending the {} typed meanwhile",
                sanitize(name),
                lines(*queued)
            ),
        ),
        ClientEvent::Queued {
            lines: count,
            every,
        } => queued_line(now_ms, *count, *every),
        ClientEvent::Unsent { count, why } => {
            notice_line(now_ms, &format!("{} not sent: {why}", lines(*count)))
        }
        ClientEvent::NotSent { text, why } => {
            notice_line(now_ms, &format!("not delivered ({why}): {text}"))
        }
        ClientEvent::Missed { count } => {
            let plural = if *count == 1 { "" } else { "s" };
            notice_line(
                now_ms,
                &format!("{count} message{plural} missed: this client fell too far behind"),
            )
        }
        ClientEvent::Closed(_) => return None,
    })
}

/// `1 line`, `20 lines`.
fn lines(count: usize) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} line{plural}")
}

/// `-- 20 lines queued (sending 5 a second)`: a paste beyond the flood limit's burst.
fn queued_line(now_ms: i64, count: usize, every: Duration) -> String {
    notice_line(
        now_ms,
        &format!("{} queued (sending {})", lines(count), pace_text(every)),
    )
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

/// The lines a peer prints for an event (several for `/list`, none for the end: the binary
/// reports that itself). `now_ms` stamps events the peer makes up itself; messages carry
/// their sender's time. `bell` adds [`BELL`] to other people's messages.
pub fn peer_event_lines(event: &PeerEvent, now_ms: i64, bell: bool) -> Vec<String> {
    let ring = |mut line: String, own: bool| {
        if bell && !own {
            line.push(BELL);
        }
        line
    };
    let line = match event {
        PeerEvent::Joined {
            name,
            through: None,
            ..
        } => notice_line(
            now_ms,
            &format!(
                "started a new room as {name}; others join it with --peer and this \
                 address; type /help for commands"
            ),
        ),
        PeerEvent::Joined {
            name,
            through: Some((contact, addr)),
            members,
        } => {
            return vec![
                notice_line(
                    now_ms,
                    &format!(
                        "joined the room through {contact} ({addr}) as {name}; type /help for \
                         commands"
                    ),
                ),
                notice_line(
                    now_ms,
                    &online_text(members.len(), 0, &peer_roster(members)),
                ),
            ];
        }
        PeerEvent::Message {
            time_ms,
            from,
            text,
            own,
        } => ring(message_line(*time_ms, from, text), *own),
        PeerEvent::Private {
            time_ms,
            from,
            to,
            text,
            own,
        } => ring(private_line(*time_ms, from, to, text), *own),
        PeerEvent::MemberJoined { time_ms, name } => {
            notice_line(*time_ms, &presence_text(name, &PresenceChange::Joined))
        }
        PeerEvent::MemberGone {
            time_ms,
            name,
            reason,
        } => notice_line(*time_ms, &gone_text(name, *reason)),
        PeerEvent::DroppedBy { time_ms, name } => notice_line(
            *time_ms,
            &format!(
                "{name} no longer counts us in the room (it stopped hearing from us); \
                 we no longer talk to {name} either"
            ),
        ),
        PeerEvent::FloodDropped {
            time_ms,
            from,
            dropped,
        } => notice_line(
            *time_ms,
            &format!(
                "{} from {from} not shown: sent too fast",
                messages(*dropped)
            ),
        ),
        PeerEvent::FloodWarned {
            time_ms,
            by,
            dropped,
        } => notice_line(
            *time_ms,
            &format!(
                "{} not shown by {by}: you are sending too fast",
                messages(*dropped)
            ),
        ),
        PeerEvent::Members { time_ms, members } => {
            let mut lines = vec![notice_line(
                *time_ms,
                &format!("{} in the room:", members.len()),
            )];
            lines.extend(
                members
                    .iter()
                    .map(|member| notice_line(*time_ms, &format!("  {}", member_text(member)))),
            );
            return lines;
        }
        PeerEvent::Queued {
            lines: count,
            every,
        } => queued_line(now_ms, *count, *every),
        PeerEvent::Unsent { count, why } => {
            notice_line(now_ms, &format!("{} not sent: {why}", lines(*count)))
        }
        PeerEvent::NotSent { text, why } => {
            notice_line(now_ms, &format!("not delivered ({why}): {text}"))
        }
        PeerEvent::Undelivered { to, count, why } => notice_line(
            now_ms,
            &format!("{} to {to} not confirmed ({why})", messages(*count as u32)),
        ),
        PeerEvent::Closed(_) => return Vec::new(),
    };
    vec![line]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(19_980), "19 980");
        assert_eq!(grouped(1_234_567), "1 234 567");
    }

    #[test]
    fn peer_lines_have_the_documented_shape() {
        let private = private_line(0, "alice", "bob", "psst\u{1b}");
        assert_eq!(&private[9..], "] alice -> bob (private): psst^[");
        let gone = PeerEvent::MemberGone {
            time_ms: 0,
            name: "bob".into(),
            reason: GoneReason::TimedOut,
        };
        assert_eq!(
            &peer_event_lines(&gone, 0, true)[0][9..],
            "] -- bob timed out"
        );
        let message = PeerEvent::Message {
            time_ms: 0,
            from: "bob".into(),
            text: "hi".into(),
            own: false,
        };
        assert!(peer_event_lines(&message, 0, true)[0].ends_with(BELL));
        assert!(!peer_event_lines(&message, 0, false)[0].ends_with(BELL));
        let list = PeerEvent::Members {
            time_ms: 0,
            members: vec![MemberInfo {
                name: "bob".into(),
                id: 1,
                addr: Some("127.0.0.1:5001".parse().unwrap()),
                you: false,
                idle_for: Some(Duration::from_secs(2)),
                reachable: true,
                banned: false,
            }],
        };
        let lines = peer_event_lines(&list, 0, true);
        assert_eq!(&lines[0][9..], "] -- 1 in the room:");
        assert_eq!(&lines[1][9..], "] --   bob at 127.0.0.1:5001, heard 2s ago");
    }

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        let text = "héllo wörld 日本語 🎉 (ok)";
        assert!(matches!(sanitize(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn escape_sequences_are_shown_not_executed() {
        assert_eq!(
            sanitize("\u{1b}[2J\u{1b}]0;pwned\u{07}"),
            "^[[2J^[]0;pwned^G"
        );
        assert_eq!(sanitize("a\u{0}b\u{7f}c"), "a^@b^?c");
        assert_eq!(sanitize("line1\nline2\r"), "line1^Jline2^M");
        assert_eq!(sanitize("a\tb"), "a b");
    }

    #[test]
    fn emoji_sequences_and_joiners_are_kept() {
        for text in ["👨\u{200D}👩\u{200D}👧", "❤\u{FE0F}", "می\u{200C}خواهم"] {
            assert_eq!(sanitize(text), text);
        }
    }

    #[test]
    fn c1_and_direction_overrides_are_replaced() {
        assert_eq!(sanitize("a\u{9b}31mb"), "a\u{FFFD}31mb");
        assert_eq!(sanitize("abc\u{202E}fed"), "abc\u{FFFD}fed");
        assert_eq!(sanitize("x\u{2066}y\u{200B}z"), "x\u{FFFD}y\u{FFFD}z");
    }

    #[test]
    fn sanitized_text_has_no_control_characters_left() {
        let hostile: String = (0u32..0x250).filter_map(char::from_u32).collect();
        let clean = sanitize(&hostile);
        assert!(!clean.chars().any(|c| c.is_control()));
    }

    #[test]
    fn lines_have_the_documented_shape() {
        let line = message_line(0, "alice", "hi\u{1b}");
        assert!(line.starts_with('['), "{line}");
        assert_eq!(&line[9..], "] alice: hi^[");
        assert_eq!(&notice_line(0, "bob joined")[9..], "] -- bob joined");
        assert_eq!(clock(i64::MAX), "??:??:??");
    }

    #[test]
    fn clock_shows_hours_minutes_seconds() {
        let shown = clock(1_764_000_000_000);
        assert_eq!(shown.len(), 8);
        assert_eq!(shown.as_bytes()[2], b':');
        assert_eq!(&shown[6..], "00"); // whole-minute instant in every time zone
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_secs(42)), "42s");
        assert_eq!(duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(duration(Duration::from_secs(2 * 3600 + 7 * 60)), "2h 07m");
        assert_eq!(
            duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d 04h"
        );
    }
}
