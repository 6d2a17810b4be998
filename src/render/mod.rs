//! The renderer: the line a person reads for each of the cores' events, plain or colored.
//!
//! This module owns how the server's, the client's and the peer's events look on a
//! terminal ([`server_line`], [`ClientLook::client_line`], [`ClientLook::peer_lines`]), the
//! local time zone of the clock, the day line when the local date changes ([`DayMark`]), the `--color auto|always|never` decision (with `NO_COLOR`
//! and dumb terminals), the stable color of each name (a hash of the case-folded name picks
//! one of [`NAME_PALETTE`], so a name has the same color on every client), and the bell
//! byte when [`crate::alert`] says a message rings. Each line is built once, by a
//! [`Brush`] that either adds colors and emphasis or adds nothing: with color off, lines
//! are the plain ones byte for byte, so piped output and scripts see no difference. Text
//! from the network goes through [`sanitize`] *before* our own escape codes are put around
//! it, so a peer can never smuggle an escape sequence in.
//!
//! The words and line shapes shared with the cores (guests read them too) live below, in
//! [`crate::text`]. It does not own deciding what to print (the cores' events) nor writing
//! it (the binaries).

mod client;
mod day;
mod peer;
mod server;

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, FixedOffset, Local, TimeZone as _};

use crate::alert::{self, BellMode};
use crate::command;
use crate::names;
use crate::text::{self, ClockText, sanitize};
use crate::wire::{LineKind, RosterEntry};

pub use client::{close_text, disconnect_text, pace_text, refuse_text};
pub use day::{DayMark, client_stamp, peer_stamp};
pub use peer::{gone_text, peer_close_text, peer_roster};
pub use server::{push_server_line, server_line, server_notice};

/// The bell byte: terminals beep or flash when it is printed.
pub const BELL: char = '\u{07}';

/// The host's offset from UTC at `time_ms` (milliseconds since the Unix epoch): the zone
/// a person reads the clock in. Times out of range get UTC; their clock is `??:??:??`.
pub fn local_offset(time_ms: i64) -> FixedOffset {
    match DateTime::from_timestamp_millis(time_ms) {
        Some(utc) => Local.offset_from_utc_datetime(&utc.naive_utc()),
        None => text::UTC,
    }
}

/// `HH:MM:SS` in the local time zone (see [`text::clock`]). The time comes from the
/// server, so every client shows the same instant, each in its own zone.
pub fn clock(time_ms: i64) -> String {
    text::clock(time_ms, local_offset(time_ms))
}

/// [`clock`] through a kept [`ClockText`]: the local zone's rules are consulted once a
/// second, not once a line (the server's log).
pub fn clock_kept(kept: &mut ClockText, time_ms: i64) -> &str {
    kept.get_with(time_ms, local_offset)
}

/// The local date at `time_ms` (`2026-12-01`), if the time is in range.
fn local_date(time_ms: i64) -> Option<String> {
    let day = day::local_day(time_ms, local_offset(time_ms))?;
    Some(day.format("%Y-%m-%d").to_string())
}

/// Whether to use color (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Only when printing to a terminal, unless NO_COLOR is set (not empty) or TERM=dumb.
    #[default]
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

impl fmt::Display for ColorChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColorChoice::Auto => "auto",
            ColorChoice::Always => "always",
            ColorChoice::Never => "never",
        })
    }
}

/// Decides whether to color output. `no_color` is the value of the `NO_COLOR` environment
/// variable and `term` that of `TERM`, if set; both only matter in `auto` mode, where an
/// explicit `--color always` or `never` wins (as <https://no-color.org> asks).
pub fn use_color(
    choice: ColorChoice,
    stdout_is_terminal: bool,
    no_color: Option<&str>,
    term: Option<&str>,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            stdout_is_terminal
                && no_color.is_none_or(str::is_empty)
                && term.is_none_or(|t| t != "dumb")
        }
    }
}

/// [`use_color`] with the process's environment.
pub fn use_color_here(choice: ColorChoice, stdout_is_terminal: bool) -> bool {
    let no_color = std::env::var("NO_COLOR").ok();
    let term = std::env::var("TERM").ok();
    use_color(
        choice,
        stdout_is_terminal,
        no_color.as_deref(),
        term.as_deref(),
    )
}

/// The colors names are drawn in: SGR foreground codes of the 16-color set every terminal
/// has (so the user's theme decides the exact shades), without black and white, one of
/// which is always the background.
pub const NAME_PALETTE: [u8; 12] = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

/// The SGR foreground code of `name`'s color. The same on every client: the hash is
/// FNV-1a (32 bits) of the case-folded name's UTF-8 bytes, written out here rather than
/// taken from the standard library, whose hasher may change between Rust versions.
pub fn name_color(name: &str) -> u8 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in names::fold(name).bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    NAME_PALETTE[hash as usize % NAME_PALETTE.len()]
}

/// SGR parameters used here.
mod sgr {
    pub const BOLD: &str = "1";
    pub const DIM: &str = "2";
    pub const RED_BOLD: &str = "1;31";
    pub const GREEN: &str = "32";
    pub const YELLOW: &str = "33";
    /// A message that mentions you.
    pub const MENTION: &str = "1;33";
    /// Your name inside such a message (reverse video on top of [`MENTION`]).
    pub const REVERSE_ON: &str = "7";
    pub const REVERSE_OFF: &str = "27";
}

/// How a notice stands out when colored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tone {
    /// Dimmed: most notices.
    Quiet,
    /// Red and bold: connection trouble, what was not sent.
    Trouble,
    /// Green: connected, back.
    Good,
    /// Yellow: joining again.
    Waiting,
}

impl Tone {
    fn sgr(self) -> &'static str {
        match self {
            Tone::Quiet => sgr::DIM,
            Tone::Trouble => sgr::RED_BOLD,
            Tone::Good => sgr::GREEN,
            Tone::Waiting => sgr::YELLOW,
        }
    }
}

/// What kind of chat line [`Brush::chat`] draws.
#[derive(Debug, Clone, Copy)]
enum ChatKind<'a> {
    Message,
    Private { to: &'a str },
    Action,
}

/// One chat line's parts, as both the client's and the peer's events carry them.
#[derive(Debug, Clone, Copy)]
struct Chat<'a> {
    kind: ChatKind<'a>,
    time_ms: i64,
    from: &'a str,
    text: &'a str,
    own: bool,
}

impl<'a> Chat<'a> {
    fn new(kind: ChatKind<'a>, time_ms: i64, from: &'a str, text: &'a str, own: bool) -> Self {
        Chat {
            kind,
            time_ms,
            from,
            text,
            own,
        }
    }
}

/// Builds lines with colors on or off: the one place that decides what a line looks like
/// either way. Off, it adds nothing to the plain words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Brush {
    color: bool,
}

impl Brush {
    /// `text`, sanitized, and with color on wrapped in the SGR sequence `params` and a
    /// reset. This and [`Brush::line`] are the only places escape codes are put around
    /// text, and sanitizing comes first.
    fn paint<'a>(self, params: &str, text: &'a str) -> Cow<'a, str> {
        let clean = sanitize(text);
        if self.color {
            Cow::Owned(format!("\u{1b}[{params}m{clean}\u{1b}[0m"))
        } else {
            clean
        }
    }

    /// A whole line of our own making (its parts sanitized already) in `params`: the line
    /// as it is with color off, painted with it on.
    fn line(self, params: &str, line: String) -> String {
        if self.color {
            self.paint(params, &line).into_owned()
        } else {
            line
        }
    }

    /// `[12:00:00] -- text`, in the tone's colors.
    fn notice(self, tone: Tone, time_ms: i64, text: &str) -> String {
        self.line(tone.sgr(), text::notice_line(&clock(time_ms), text))
    }

    /// `[12:00:00] alice: hello` with a dim clock, the name in its color, and the text in
    /// bold for our own messages or highlighted when it mentions `mention` (our name).
    fn message(
        self,
        time_ms: i64,
        from: &str,
        text: &str,
        own: bool,
        mention: Option<&str>,
    ) -> String {
        let name = match (self.color, own) {
            (false, _) => sanitize(from),
            (true, true) => self.paint(&format!("{};{}", sgr::BOLD, name_color(from)), from),
            (true, false) => self.paint(&name_color(from).to_string(), from),
        };
        let text = sanitize(text);
        let body = match mention {
            _ if own => self.paint(sgr::BOLD, &text).into_owned(),
            Some(me) if self.color => highlight_mentions(&text, me),
            _ => text.into_owned(),
        };
        let stamp = self
            .paint(sgr::DIM, &format!("[{}]", clock(time_ms)))
            .into_owned();
        format!("{stamp} {name}: {body}")
    }

    /// A chat line as a person sees it: a message, a private message (addressed to us: it
    /// stands out like a mention), or an action (standing out when it mentions `me`, else
    /// in the sender's color). Whether it rings is the caller's, from the second value:
    /// whether it is addressed to or mentions `me`.
    fn chat(self, chat: Chat<'_>, me: &str) -> (String, bool) {
        let Chat {
            kind,
            time_ms,
            from,
            text,
            own,
        } = chat;
        let mentioned = match kind {
            ChatKind::Private { .. } => !own,
            ChatKind::Message | ChatKind::Action => !own && alert::mentions(&sanitize(text), me),
        };
        let line = match kind {
            ChatKind::Message => self.message(time_ms, from, text, own, mentioned.then_some(me)),
            ChatKind::Private { to } => self.line(
                sgr::MENTION,
                text::private_line(&clock(time_ms), from, to, text),
            ),
            ChatKind::Action => {
                let line = text::action_line(&clock(time_ms), from, text);
                match (self.color, mentioned) {
                    (false, _) => line,
                    (true, true) => self.line(sgr::MENTION, line),
                    (true, false) => self.line(&name_color(from).to_string(), line),
                }
            }
        };
        (line, mentioned)
    }

    /// A line replayed from the server's history, as it was shown live (`[12:00:00] alice:
    /// hi`, `[12:00:00] * alice waves`) at its original time, with the local date in front
    /// when that is not the day of `now_ms` (`2026-11-30 [12:00:00] alice: hi`), and all
    /// of it dimmed when colored: it is set apart from live lines, and rings no bell.
    fn history_line(
        self,
        time_ms: i64,
        now_ms: i64,
        from: &str,
        kind: LineKind,
        text: &str,
    ) -> String {
        let clock = clock(time_ms);
        let line = match kind {
            LineKind::Action => text::action_line(&clock, from, text),
            LineKind::Chat | LineKind::Console => {
                let mut line = Vec::new();
                text::push_message_line(&mut line, &clock, from, text);
                String::from_utf8_lossy(&line).into_owned()
            }
        };
        let line = match (local_date(time_ms), local_date(now_ms)) {
            (Some(day), Some(today)) if day != today => format!("{day} {line}"),
            _ => line,
        };
        self.line(sgr::DIM, line)
    }

    /// `-- end of history (20 earlier lines: /history 20)` after a replay, or `-- end of
    /// history` when the server holds nothing earlier; dimmed like the lines above it.
    /// `ask` is the `/history` that shows the earlier lines: their count where `/history`
    /// pages back from the oldest line shown (a server's client), all of them where it asks
    /// for the newest (a peer).
    fn history_end(self, earlier: u64, ask: u64) -> String {
        let line = if earlier == 0 {
            "-- end of history".to_owned()
        } else {
            earlier_text(earlier, ask)
        };
        self.line(sgr::DIM, line)
    }

    /// The end of a `/history` page: as [`Brush::history_end`] when the server holds more,
    /// else `-- end of history (no earlier lines)`, or `-- no earlier lines` when the page
    /// had none.
    fn page_end(self, shown: u64, earlier: u64) -> String {
        let line = match (shown, earlier) {
            (0, 0) => "-- no earlier lines".to_owned(),
            (_, 0) => "-- end of history (no earlier lines)".to_owned(),
            _ => earlier_text(earlier, earlier),
        };
        self.line(sgr::DIM, line)
    }

    /// `[12:00:00] -- 3 online: alice, bob, carol`: dimmed, with each name in its color,
    /// the words of [`text::online_text`].
    fn roster(self, time_ms: i64, total: usize, offset: usize, entries: &[RosterEntry]) -> String {
        let names: Vec<String> = entries
            .iter()
            .map(|entry| {
                let name = self.paint(&name_color(&entry.name).to_string(), &entry.name);
                let remark = text::roster_remark(entry);
                if remark.is_empty() {
                    name.into_owned()
                } else {
                    format!("{name}{}", self.paint(sgr::DIM, &remark))
                }
            })
            .collect();
        let head = format!(
            "[{}] -- {}",
            clock(time_ms),
            text::online_head(total, offset)
        );
        format!("{} {}", self.line(sgr::DIM, head), names.join(", "))
    }
}

/// `-- end of history (20 earlier lines: /history 20)`: how many lines the server holds
/// before those shown, and the `/history` that shows them (`ask`, or as many as one may
/// ask for).
fn earlier_text(earlier: u64, ask: u64) -> String {
    let plural = if earlier == 1 { "" } else { "s" };
    let ask = ask.min(u64::from(command::HISTORY_MAX));
    format!("-- end of history ({earlier} earlier line{plural}: /history {ask})")
}

/// The whole text in the mention color, with each occurrence of `me` also in reverse video.
/// `text` is already sanitized (and re-sanitizing clean text changes nothing).
fn highlight_mentions(text: &str, me: &str) -> String {
    let text = sanitize(text);
    let mut out = format!("\u{1b}[{}m", sgr::MENTION);
    let mut done = 0;
    for range in alert::mention_ranges(&text, me) {
        out.push_str(&text[done..range.start]);
        out.push_str(&format!(
            "\u{1b}[{}m{}\u{1b}[{}m",
            sgr::REVERSE_ON,
            &text[range.clone()],
            sgr::REVERSE_OFF
        ));
        done = range.end;
    }
    out.push_str(&text[done..]);
    out.push_str("\u{1b}[0m");
    out
}

/// How the client shows events: colors on or off, and when the bell rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLook {
    /// Whether to add colors and emphasis (see [`use_color`]).
    pub color: bool,
    /// When messages ring the bell.
    pub bell: BellMode,
}

impl ClientLook {
    /// No color and no bell: the bare words (logs, tests).
    pub const PLAIN: ClientLook = ClientLook {
        color: false,
        bell: BellMode::Off,
    };

    fn brush(self) -> Brush {
        Brush { color: self.color }
    }

    /// A chat line (see [`Brush::chat`]) with [`BELL`] at the end when it rings.
    fn chat(self, chat: Chat<'_>, me: &str) -> String {
        let (mut line, mentioned) = self.brush().chat(chat, me);
        if self.bell.rings(chat.own, mentioned) {
            line.push(BELL);
        }
        line
    }

    /// A notice the client makes up itself (joining, leaving), dimmed when colored.
    pub fn notice(&self, now_ms: i64, text: &str) -> String {
        self.brush().notice(Tone::Quiet, now_ms, text)
    }

    /// The day line (see [`DayMark::line`]) to print before a line the server or a peer
    /// stamped `time_ms` (`None`: a line without a time of its own, which changes
    /// nothing), read in the local time zone, dimmed when colored.
    pub fn day_line(&self, mark: &mut DayMark, time_ms: Option<i64>) -> Option<String> {
        let time_ms = time_ms?;
        let words = mark.line(time_ms, local_offset(time_ms))?;
        Some(self.brush().line(sgr::DIM, words))
    }

    /// The last line of a session (see [`close_text`]): red if it ended badly.
    pub fn farewell(&self, now_ms: i64, text: &str, failure: bool) -> String {
        let tone = if failure { Tone::Trouble } else { Tone::Quiet };
        self.brush().notice(tone, now_ms, text)
    }
}

#[cfg(test)]
mod tests;
