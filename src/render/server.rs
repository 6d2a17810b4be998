//! The server console's lines: one for each [`ServerEvent`] (chat with the sender's name
//! in its color, everything else dimmed when colored), and the console's own notices.

use super::client::refuse_text;
use super::{Brush, Tone, clock, clock_kept, sgr};
use crate::server::{ServerEvent, SuppressedKind};
use crate::text::{self, ClockText, away_text, grouped, push_message_line, sanitize};

/// The server console's line for `event`: `[12:00:00] alice: hello`,
/// `[12:00:00] -- alice joined from 127.0.0.1:50000`; with `color`, the sender's name in
/// its color and everything that is not chat dimmed.
pub fn server_line(event: &ServerEvent, color: bool) -> String {
    let brush = Brush { color };
    let (time_ms, words) = match event {
        ServerEvent::Chat {
            time_ms,
            from,
            text,
        } => return brush.message(*time_ms, from, text, false, None),
        ServerEvent::Private {
            time_ms,
            from,
            to,
            text,
        } => {
            let line = text::private_line(&clock(*time_ms), from, to, text);
            return brush.line(sgr::DIM, line);
        }
        ServerEvent::Action {
            time_ms,
            from,
            text,
        } => return brush.line(sgr::DIM, text::action_line(&clock(*time_ms), from, text)),
        ServerEvent::Away {
            time_ms,
            name,
            reason,
        } => (*time_ms, away_text(name, reason.as_deref())),
        ServerEvent::Renamed {
            time_ms,
            from,
            to,
            addr,
        } => (
            *time_ms,
            format!(
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
            (*time_ms, format!("{name} joined from {addr}{kind}"))
        }
        ServerEvent::Left {
            time_ms,
            name,
            addr,
        } => (*time_ms, format!("{name} left ({addr})")),
        ServerEvent::TimedOut {
            time_ms,
            name,
            addr,
        } => (*time_ms, format!("{name} timed out ({addr})")),
        ServerEvent::Kicked {
            time_ms,
            name,
            addr,
        } => (*time_ms, format!("{name} was kicked ({addr})")),
        ServerEvent::Banned {
            time_ms,
            name,
            addr,
        } => (
            *time_ms,
            format!("{name} was disconnected: {addr} is banned"),
        ),
        ServerEvent::Refused {
            time_ms,
            name,
            addr,
            reason,
        } => (
            *time_ms,
            format!(
                "refused join of '{name}' from {addr}: {}",
                refuse_text(*reason)
            ),
        ),
        ServerEvent::FloodDropped {
            time_ms,
            name,
            addr,
            dropped,
        } => (
            *time_ms,
            format!("flood: dropped {dropped} message(s) from {name} ({addr})"),
        ),
        ServerEvent::Malformed { time_ms, addr, why } => (
            *time_ms,
            format!(
                "ignored a malformed datagram from {addr}: {why} (not logged again for this \
                 address for a minute)"
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
            let count = grouped(*count);
            (
                *time_ms,
                format!("{verb} {count} more {what} from {from} in {over}"),
            )
        }
        ServerEvent::Closing { time_ms, clients } => (
            *time_ms,
            format!("server closing; told {clients} client(s)"),
        ),
    };
    brush.notice(Tone::Quiet, time_ms, &words)
}

/// Appends [`server_line`] and a newline to the console log's buffer. A chat line without
/// colors is written straight in, with the clock `kept` formatted once a second: it is the
/// one event a busy server logs thousands of times a second.
pub fn push_server_line(out: &mut Vec<u8>, kept: &mut ClockText, event: &ServerEvent, color: bool) {
    match event {
        ServerEvent::Chat {
            time_ms,
            from,
            text,
        } if !color => push_message_line(out, clock_kept(kept, *time_ms), from, text),
        _ => out.extend_from_slice(server_line(event, color).as_bytes()),
    }
    out.push(b'\n');
}

/// A notice of the server console's own (`listening on ...`, ban list changes): dimmed
/// when `color` is on.
pub fn server_notice(time_ms: i64, text: &str, color: bool) -> String {
    Brush { color }.notice(Tone::Quiet, time_ms, text)
}
