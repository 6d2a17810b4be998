//! Text the cores put into lines: neutralizing hostile text, the clock, and the words and
//! shapes of the lines a guest (`nc -u`) reads.
//!
//! This module owns [`sanitize`] (so a peer can never send a terminal escape sequence, a
//! control character or a direction override to someone's screen), the `HH:MM:SS` clock for
//! a time and a UTC offset handed in (it never reads the host's time zone: the server core
//! formats guests' lines with the offset its binary gives it, see
//! `ServerConfig::utc_offset`), the line shapes (`[12:00:00] alice: hello`,
//! `[12:00:00] -- bob joined`), presence and `/list` words, away reasons and rename
//! refusals as both the server and the peers give them, durations and grouped counts.
//! It sits below the roles and imports none of them: the server, the client and the peer
//! use it, and so does [`crate::render`], which owns colors and the rendering of the cores'
//! events. Splitting text into datagram-sized pieces belongs to [`crate::wire`].

use std::borrow::{Borrow, Cow};
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};

use crate::names::{RenameError, is_invisible_or_bidi};
use crate::wire::{self, PresenceChange, PresenceItem, RosterEntry};

/// Coordinated Universal Time, the offset a core uses unless told its host's.
pub const UTC: FixedOffset = match FixedOffset::east_opt(0) {
    Some(utc) => utc,
    None => panic!("0 is a valid offset"),
};

/// The reason `/away` sends when none is given; shown as a plain "is away".
pub const AWAY_WITHOUT_REASON: &str = "away";

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

/// `HH:MM:SS` at `offset` from UTC for a time in milliseconds since the Unix epoch. The
/// time comes from the server, so everyone sees the same instant, each in the offset they
/// are given. An out-of-range value shows as `??:??:??` rather than failing.
pub fn clock(time_ms: i64, offset: FixedOffset) -> String {
    match at_offset(time_ms, offset) {
        Some(time) => time.format("%H:%M:%S").to_string(),
        None => "??:??:??".to_owned(),
    }
}

/// The date and time at `offset` from UTC for a time in milliseconds since the Unix epoch,
/// if it is in range: what [`clock`] shows, and the day it falls on.
pub fn at_offset(time_ms: i64, offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    DateTime::from_timestamp_millis(time_ms).map(|utc| utc.with_timezone(&offset))
}

/// The `HH:MM:SS` of one second, kept: a busy server stamps many lines within a second,
/// and formatting each (and, for the host's zone, going through its rules) costs more than
/// the rest of the line. Offsets change on whole seconds only, so the text for a second
/// never goes stale while the offset is the same; whoever changes the offset starts a new
/// `ClockText`.
#[derive(Debug)]
pub struct ClockText {
    offset: FixedOffset,
    second: Option<i64>,
    text: String,
}

impl Default for ClockText {
    fn default() -> ClockText {
        ClockText::at(UTC)
    }
}

impl ClockText {
    /// A cache at `offset` from UTC, holding nothing yet (usable in a `static`).
    pub const fn at(offset: FixedOffset) -> ClockText {
        ClockText {
            offset,
            second: None,
            text: String::new(),
        }
    }

    /// [`clock`] of `time_ms` at the kept offset.
    pub fn get(&mut self, time_ms: i64) -> &str {
        let offset = self.offset;
        self.get_with(time_ms, |_| offset)
    }

    /// [`clock`] of `time_ms` at the offset `offset_at` gives for it (for a zone whose
    /// offset changes): asked only when a new second begins, and kept from then on.
    pub fn get_with(&mut self, time_ms: i64, offset_at: impl FnOnce(i64) -> FixedOffset) -> &str {
        let second = time_ms.div_euclid(1000);
        if self.second != Some(second) {
            self.second = Some(second);
            self.offset = offset_at(time_ms);
            self.text = clock(time_ms, self.offset);
        }
        &self.text
    }
}

/// Appends a chat line, `[12:00:00] alice: hello`, to `out` (no newline): the guest's copy
/// of a message and the server's log line, written straight into their buffers. Name and
/// text are sanitized here, whatever the caller did, because this is the last step before
/// a terminal.
pub fn push_message_line(out: &mut Vec<u8>, clock: &str, from: &str, text: &str) {
    let from = sanitize(from);
    let text = sanitize(text);
    // Room for the newline both callers add.
    out.reserve(clock.len() + from.len() + text.len() + 6);
    for part in ["[", clock, "] ", &from, ": ", &text] {
        out.extend_from_slice(part.as_bytes());
    }
}

/// A notice line: `[12:00:00] -- bob joined`.
pub fn notice_line(clock: &str, text: &str) -> String {
    format!("[{clock}] -- {}", sanitize(text))
}

/// A `/me` action: `[12:00:00] * alice waves`.
pub fn action_line(clock: &str, from: &str, text: &str) -> String {
    format!("[{clock}] * {} {}", sanitize(from), sanitize(text))
}

/// A private message: `[12:00:00] alice -> bob (private): hi`. The arrow and the word say
/// at a glance that nobody else saw it.
pub fn private_line(clock: &str, from: &str, to: &str, text: &str) -> String {
    format!(
        "[{clock}] {} -> {} (private): {}",
        sanitize(from),
        sanitize(to),
        sanitize(text)
    )
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

/// How a person appears in `/list`: `bob`, or `bob (away: lunch)`, `carol (guest)`.
pub fn roster_entry(entry: &RosterEntry) -> String {
    format!("{}{}", sanitize(&entry.name), roster_remark(entry))
}

/// What follows a name in `/list`: ` (guest)`, ` (away)`, ` (away: lunch)`,
/// ` (guest, away: lunch)`, or nothing.
pub fn roster_remark(entry: &RosterEntry) -> String {
    let away = if entry.away.is_empty() {
        None
    } else if entry.away.eq_ignore_ascii_case(AWAY_WITHOUT_REASON) {
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

/// What comes before the names in [`online_text`]: `3 online:` for the first part of a
/// list (`offset` 0) of `total` people, `(online, continued)` for the next ones.
pub fn online_head(total: usize, offset: usize) -> String {
    if offset == 0 {
        format!("{total} online:")
    } else {
        "(online, continued)".to_owned()
    }
}

/// Who is online, as said at join and answering `/list`: `3 online: alice, bob (away:
/// lunch), carol`, or `(online, continued) dave, erin` (see [`online_head`]). A guest,
/// the client of a server and a peer all read it this way.
pub fn online_text(total: usize, offset: usize, entries: &[RosterEntry]) -> String {
    online_text_within(total, offset, entries, usize::MAX).0
}

/// [`online_text`] for as many of `entries` as fit in `room` bytes, and how many that is.
/// Built name by name, it stops at the first that does not fit: a long list costs what is
/// shown, not what it holds.
pub fn online_text_within<E: Borrow<RosterEntry>>(
    total: usize,
    offset: usize,
    entries: impl IntoIterator<Item = E>,
    room: usize,
) -> (String, usize) {
    let mut words = format!("{} ", online_head(total, offset));
    let mut shown = 0;
    for entry in entries {
        let name = roster_entry(entry.borrow());
        let separator = if shown == 0 { "" } else { ", " };
        if words.len() + separator.len() + name.len() > room {
            break;
        }
        words.push_str(separator);
        words.push_str(&name);
        shown += 1;
    }
    (words, shown)
}

/// What follows the roster a newcomer is sent in a large room, which lists only the first
/// `listed` of the `people` online: `first 500 of 10000 online listed: /list shows
/// everyone`. `people` is the real count, which the roster's own can be short of (it is
/// capped at 65 535).
pub fn roster_cut_short(listed: usize, people: usize) -> String {
    format!("first {listed} of {people} online listed: /list shows everyone")
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
        PresenceChange::Away { reason } => away_text(&name, Some(reason)),
        PresenceChange::Back => away_text(&name, None),
    }
}

/// The words for several presence changes shown at once (a batch, see
/// [`wire::Delivery::PresenceBatch`]), in one line: the changes of one kind together, kinds in
/// the order their first change came, separated by `; `. Up to three names are written out
/// (`alice, bob and carol joined`); with more, two and a count (`alice, bob and 3 others
/// joined`). Renames and away reasons are written out one by one, up to three of each
/// (`bob is now known as robert`), then counted (`and 2 others changed their names`,
/// `and 2 others are away`). One change is worded as [`presence_text`] words it.
pub fn presence_batch_text(changes: &[PresenceItem]) -> String {
    if let [one] = changes {
        return presence_text(&one.name, &one.change);
    }
    // The kinds in the order they first came, each with its changes.
    let mut groups: Vec<(u8, Vec<&PresenceItem>)> = Vec::new();
    for item in changes {
        let kind = item.change.code();
        match groups.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, items)) => items.push(item),
            None => groups.push((kind, vec![item])),
        }
    }
    let phrases: Vec<String> = groups
        .iter()
        .map(|(_, items)| match &items[0].change {
            PresenceChange::Renamed { .. } => one_by_one(items, "changed their names"),
            PresenceChange::Away { .. } => one_by_one(items, "are away"),
            change => {
                let names = name_list(items.iter().map(|item| item.name.as_str()), items.len());
                let plural = items.len() > 1;
                let verb = match change {
                    PresenceChange::Joined => "joined",
                    PresenceChange::Left => "left",
                    PresenceChange::TimedOut => "timed out",
                    PresenceChange::Kicked if plural => "were kicked",
                    PresenceChange::Kicked => "was kicked",
                    PresenceChange::KickedForFlooding if plural => "were kicked for flooding",
                    PresenceChange::KickedForFlooding => "was kicked for flooding",
                    PresenceChange::Banned if plural => "were banned",
                    PresenceChange::Banned => "was banned",
                    _ if plural => "are back",
                    _ => "is back",
                };
                format!("{names} {verb}")
            }
        })
        .collect();
    phrases.join("; ")
}

/// `alice`, `alice and bob`, `alice, bob and carol`, `alice, bob and 3 others` (`count`
/// names in all), each neutralized.
fn name_list<'a>(names: impl Iterator<Item = &'a str>, count: usize) -> String {
    let shown: Vec<Cow<'_, str>> = names
        .take(if count > 3 { 2 } else { 3 })
        .map(sanitize)
        .collect();
    match (shown.as_slice(), count) {
        ([one], 1) => one.to_string(),
        (_, count) if count > 3 => format!("{} and {} others", shown.join(", "), count - 2),
        ([first @ .., last], _) => format!("{} and {last}", first.join(", ")),
        _ => String::new(),
    }
}

/// Up to three changes in their own words (`bob is now known as robert, carol is away`),
/// then how many more (`and 2 others are away`).
fn one_by_one(items: &[&PresenceItem], more: &str) -> String {
    let mut words: Vec<String> = items
        .iter()
        .take(3)
        .map(|item| presence_text(&item.name, &item.change))
        .collect();
    if items.len() > 3 {
        words.push(format!("and {} others {more}", items.len() - 3));
    }
    words.join(", ")
}

/// `bob is away`, `bob is away: lunch`, or (no reason: back) `bob is back`.
pub fn away_text(name: &str, reason: Option<&str>) -> String {
    let name = sanitize(name);
    match reason {
        None => format!("{name} is back"),
        Some(reason) if reason.eq_ignore_ascii_case(AWAY_WITHOUT_REASON) => {
            format!("{name} is away")
        }
        Some(reason) => format!("{name} is away: {}", sanitize(reason)),
    }
}

/// The away reason to keep and announce for what someone asked (`/away REASON`; an empty
/// or blank reason is `/back`: `None`): neutralized, and cut to what a roster entry carries.
/// The one rule of the server and the peers.
pub fn away_reason(reason: &str) -> Option<String> {
    let reason = reason.trim();
    // Sanitizing can lengthen a reason; keep it within what a roster entry carries.
    (!reason.is_empty()).then(|| {
        let clean = sanitize(reason);
        wire::truncate_to_char_boundary(&clean, wire::MAX_NAME_BYTES).to_owned()
    })
}

/// Why a rename to `name` was refused, as both modes say it: `cannot rename: bob is taken`.
pub fn rename_refusal(name: &str, error: &RenameError) -> String {
    match error {
        RenameError::Invalid(error) => format!("cannot rename to {}: {error}", sanitize(name)),
        RenameError::Taken => format!("cannot rename: {} is taken", sanitize(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn east(hours: i32, minutes: i32) -> FixedOffset {
        FixedOffset::east_opt(hours * 3600 + minutes * 60).expect("a valid offset")
    }

    /// 2025-11-24 16:00:00 UTC.
    const INSTANT_MS: i64 = 1_764_000_000_000;

    #[test]
    fn the_clock_is_the_time_at_the_offset_handed_in() {
        assert_eq!(clock(INSTANT_MS, UTC), "16:00:00");
        assert_eq!(clock(INSTANT_MS + 1_999, UTC), "16:00:01");
        assert_eq!(clock(INSTANT_MS, east(1, 0)), "17:00:00");
        assert_eq!(clock(INSTANT_MS, east(-5, 0)), "11:00:00");
        assert_eq!(clock(INSTANT_MS, east(5, 30)), "21:30:00");
        assert_eq!(clock(INSTANT_MS, east(-9, -30)), "06:30:00");
        // Past midnight either way.
        assert_eq!(clock(INSTANT_MS, east(9, 0)), "01:00:00");
        assert_eq!(clock(INSTANT_MS - 17 * 3_600_000, UTC), "23:00:00");
        // Before 1970, and out of range.
        assert_eq!(clock(-1, UTC), "23:59:59");
        assert_eq!(clock(-1_000, east(1, 0)), "00:59:59");
        assert_eq!(clock(i64::MAX, UTC), "??:??:??");
        assert_eq!(clock(i64::MIN, east(2, 0)), "??:??:??");
        // At the ends of the range, an offset past them still shows a time.
        let last = DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis();
        let first = DateTime::<chrono::Utc>::MIN_UTC.timestamp_millis();
        for offset in [east(23, 59), east(-23, -59), UTC] {
            assert_eq!(clock(last, offset).len(), 8);
            assert_eq!(clock(first, offset).len(), 8);
        }
    }

    #[test]
    fn the_kept_clock_follows_the_seconds_and_asks_the_offset_once_per_second() {
        let mut kept = ClockText::at(east(2, 0));
        let times = [
            INSTANT_MS,
            INSTANT_MS + 999,
            INSTANT_MS + 1_000,
            -1,
            -1_000,
            -1_001,
        ];
        for time_ms in times {
            assert_eq!(kept.get(time_ms), clock(time_ms, east(2, 0)), "{time_ms}");
        }
        let mut asked = 0;
        let mut local = ClockText::default();
        for time_ms in times {
            let shown = local
                .get_with(time_ms, |at| {
                    asked += 1;
                    east(if at < 0 { -3 } else { 1 }, 0)
                })
                .to_owned();
            let offset = east(if time_ms < 0 { -3 } else { 1 }, 0);
            assert_eq!(shown, clock(time_ms, offset), "{time_ms}");
        }
        // INSTANT_MS + 999 is in the same second as INSTANT_MS, and -1_000 as -1.
        assert_eq!(asked, 4);
        // The offset found last is kept.
        assert_eq!(local.get(INSTANT_MS), "13:00:00");
        assert_eq!(ClockText::default().get(INSTANT_MS), "16:00:00");
    }

    #[test]
    fn line_shapes() {
        let mut line = Vec::new();
        push_message_line(&mut line, "12:00:00", "alice", "hi\u{1b}");
        assert_eq!(String::from_utf8(line).unwrap(), "[12:00:00] alice: hi^[");
        assert_eq!(
            notice_line("12:00:00", "bob joined"),
            "[12:00:00] -- bob joined"
        );
        assert_eq!(
            action_line("12:00:00", "bob", "waves\t!"),
            "[12:00:00] * bob waves !"
        );
        assert_eq!(
            private_line("12:00:00", "alice", "bob", "psst\u{1b}"),
            "[12:00:00] alice -> bob (private): psst^["
        );
    }

    #[test]
    fn roster_and_presence_words() {
        let entry = |name: &str, guest, away: &str| RosterEntry {
            name: name.into(),
            guest,
            away: away.into(),
        };
        let people = [
            entry("alice", false, ""),
            entry("bob", false, "lunch"),
            entry("carol", true, "AWAY"),
            entry("dave", true, ""),
        ];
        assert_eq!(
            online_text(9, 0, &people),
            "9 online: alice, bob (away: lunch), carol (guest, away), dave (guest)"
        );
        assert_eq!(online_text(9, 4, &people[..1]), "(online, continued) alice");
        assert_eq!(online_text(0, 0, &[]), "0 online: ");
        // Cut to a size: the longest start of the list that fits, whole names only.
        let whole = online_text(9, 0, &people);
        for room in 0..whole.len() + 2 {
            let (words, shown) = online_text_within(9, 0, &people, room);
            let longest = (0..=people.len())
                .rev()
                .find(|n| online_text(9, 0, &people[..*n]).len() <= room)
                .unwrap_or(0);
            assert_eq!(shown, longest, "room {room}");
            assert_eq!(words, online_text(9, 0, &people[..shown]), "room {room}");
        }
        assert_eq!(
            roster_cut_short(500, 100_000),
            "first 500 of 100000 online listed: /list shows everyone"
        );
        let away = PresenceChange::Away {
            reason: "away".into(),
        };
        assert_eq!(presence_text("bob", &away), "bob is away");
        assert_eq!(presence_text("bob", &PresenceChange::Back), "bob is back");
        assert_eq!(away_text("bob", Some("tea\u{7}")), "bob is away: tea^G");
        let renamed = PresenceChange::Renamed { to: "rob".into() };
        assert_eq!(presence_text("bob", &renamed), "bob is now known as rob");
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(19_980), "19 980");
        assert_eq!(grouped(1_234_567), "1 234 567");
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
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_secs(42)), "42s");
        assert_eq!(duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(duration(Duration::from_secs(2 * 3600 + 7 * 60)), "2h 07m");
        assert_eq!(
            duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d 04h"
        );
    }

    #[test]
    fn a_batch_of_changes_is_told_in_one_line_grouped_by_kind() {
        let item = |name: &str, change: PresenceChange| PresenceItem {
            name: name.into(),
            change,
        };
        let joined = |names: &[&str]| -> Vec<PresenceItem> {
            names
                .iter()
                .map(|name| item(name, PresenceChange::Joined))
                .collect()
        };
        assert_eq!(presence_batch_text(&joined(&["alice"])), "alice joined");
        assert_eq!(
            presence_batch_text(&joined(&["alice", "bob"])),
            "alice and bob joined"
        );
        assert_eq!(
            presence_batch_text(&joined(&["alice", "bob", "carol"])),
            "alice, bob and carol joined"
        );
        let mut changes = joined(&["alice", "bob", "carol", "dave", "erin"]);
        changes.insert(1, item("frank", PresenceChange::Left));
        changes.push(item("gina", PresenceChange::Kicked));
        changes.push(item("hal", PresenceChange::Kicked));
        changes.push(item("ivy\u{1b}[2J", PresenceChange::TimedOut));
        changes.push(item("bob", PresenceChange::Renamed { to: "rob".into() }));
        changes.push(item(
            "carol",
            PresenceChange::Away {
                reason: "tea".into(),
            },
        ));
        changes.push(item("frank", PresenceChange::Joined));
        assert_eq!(
            presence_batch_text(&changes),
            "alice, bob and 4 others joined; frank left; gina and hal were kicked; \
             ivy^[[2J timed out; bob is now known as rob; carol is away: tea"
        );
        let renames: Vec<PresenceItem> = (0..5)
            .map(|i| {
                item(
                    &format!("n{i}"),
                    PresenceChange::Renamed {
                        to: format!("m{i}"),
                    },
                )
            })
            .collect();
        assert_eq!(
            presence_batch_text(&renames),
            "n0 is now known as m0, n1 is now known as m1, n2 is now known as m2, \
             and 2 others changed their names"
        );
        let back = vec![
            item("a", PresenceChange::Back),
            item("b", PresenceChange::Back),
        ];
        assert_eq!(presence_batch_text(&back), "a and b are back");
    }
}
