//! Colors and emphasis: how lines look on a color terminal, and when to use color at all.
//!
//! This module owns the `--color auto|always|never` decision (with `NO_COLOR` and dumb
//! terminals), the stable color of each name (a hash of the case-folded name picks one of
//! [`NAME_PALETTE`], so a name has the same color on every client), and the styled variants
//! of the lines [`crate::display`] builds: names in their color, your own messages in bold,
//! mentions of you highlighted, notices dimmed, connection trouble in red. It also appends
//! the bell byte when [`crate::alert`] says a message rings.
//!
//! With color off, every function returns exactly what `display` returns, byte for byte, so
//! piped output and scripts see no difference. Text from the network is always passed
//! through [`display::sanitize`] *before* our own escape codes are added around it, so a
//! peer can never smuggle an escape sequence in. It does not own deciding what to print
//! (the cores' events) nor writing it (the binaries).

use std::fmt;

use crate::alert::{self, BellMode};
use crate::client::ClientEvent;
use crate::display::{self, BELL};
use crate::names;
use crate::peer::PeerEvent;
use crate::server::ServerEvent;
use crate::wire::RosterEntry;

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

/// SGR parameters used below.
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

/// `text`, sanitized, wrapped in the SGR sequence `params` and a reset. This is the only
/// place escape codes are put around text, and sanitizing comes first.
fn paint(params: &str, text: &str) -> String {
    format!("\u{1b}[{params}m{}\u{1b}[0m", display::sanitize(text))
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
    /// The line to print for `event`, or `None` for events that end the program (the
    /// binary reports those itself). `me` is the name we joined under (for mentions);
    /// `now_ms` stamps events the client makes up itself. A message that rings ends with
    /// [`BELL`].
    ///
    /// With color off this is [`display::client_event_line`] with the bell decided by
    /// [`BellMode`] instead of always.
    pub fn client_line(&self, event: &ClientEvent, now_ms: i64, me: &str) -> Option<String> {
        if let ClientEvent::Message {
            time_ms,
            from,
            text,
            own,
        } = event
        {
            let mentioned = !own && alert::mentions(&display::sanitize(text), me);
            let mut line = if self.color {
                styled_message(*time_ms, from, text, *own, mentioned.then_some(me))
            } else {
                display::message_line(*time_ms, from, text)
            };
            if self.bell.rings(*own, mentioned) {
                line.push(BELL);
            }
            return Some(line);
        }
        match event {
            // A private message is addressed to you: it rings and stands out like a mention.
            ClientEvent::Private {
                time_ms,
                from,
                to,
                text,
                own,
            } => {
                let plain = display::private_line(*time_ms, from, to, text);
                let mut line = if self.color {
                    paint(sgr::MENTION, &plain)
                } else {
                    plain
                };
                if self.bell.rings(*own, !own) {
                    line.push(BELL);
                }
                return Some(line);
            }
            ClientEvent::Action {
                time_ms,
                from,
                text,
                own,
            } => {
                let mentioned = !own && alert::mentions(&display::sanitize(text), me);
                let plain = display::action_line(*time_ms, from, text);
                let mut line = match (self.color, mentioned) {
                    (false, _) => plain,
                    (true, true) => paint(sgr::MENTION, &plain),
                    (true, false) => paint(&name_color(from).to_string(), &plain),
                };
                if self.bell.rings(*own, mentioned) {
                    line.push(BELL);
                }
                return Some(line);
            }
            _ => {}
        }
        let line = display::client_event_line(event, now_ms, false)?;
        if !self.color {
            return Some(line);
        }
        Some(match event {
            ClientEvent::Roster {
                time_ms,
                total,
                offset,
                entries,
            } => styled_roster(*time_ms, usize::from(*total), usize::from(*offset), entries),
            ClientEvent::ServerSilent { .. }
            | ClientEvent::ServerLost
            | ClientEvent::NotSent { .. }
            | ClientEvent::Unsent { .. } => paint(sgr::RED_BOLD, &line),
            ClientEvent::Joined { .. } | ClientEvent::ServerBack | ClientEvent::Rejoined { .. } => {
                paint(sgr::GREEN, &line)
            }
            ClientEvent::Rejoining => paint(sgr::YELLOW, &line),
            // Server notices, and any kind of event added later: quiet, like a notice.
            _ => paint(sgr::DIM, &line),
        })
    }

    /// The lines to print for a peer-mode event (several for `/list`, none for the end).
    /// Messages and private messages look, ring and highlight exactly like the client's.
    pub fn peer_lines(&self, event: &PeerEvent, now_ms: i64, me: &str) -> Vec<String> {
        match event {
            PeerEvent::Message {
                time_ms,
                from,
                text,
                own,
            } => {
                let as_client = ClientEvent::Message {
                    time_ms: *time_ms,
                    from: from.clone(),
                    text: text.clone(),
                    own: *own,
                };
                self.client_line(&as_client, now_ms, me)
                    .into_iter()
                    .collect()
            }
            PeerEvent::Private {
                time_ms,
                from,
                to,
                text,
                own,
            } => {
                let as_client = ClientEvent::Private {
                    time_ms: *time_ms,
                    from: from.clone(),
                    to: to.clone(),
                    text: text.clone(),
                    own: *own,
                };
                self.client_line(&as_client, now_ms, me)
                    .into_iter()
                    .collect()
            }
            _ => {
                let mut lines = display::peer_event_lines(event, now_ms, false);
                if !self.color {
                    return lines;
                }
                if let PeerEvent::Joined {
                    through: Some(_),
                    members,
                    ..
                } = event
                {
                    // Who is online, drawn as the client of a server draws it.
                    let roster = display::peer_roster(members);
                    lines.truncate(1);
                    let mut lines: Vec<String> =
                        lines.iter().map(|line| paint(sgr::GREEN, line)).collect();
                    lines.push(styled_roster(now_ms, members.len(), 0, &roster));
                    return lines;
                }
                let params = match event {
                    PeerEvent::Joined { .. } => sgr::GREEN,
                    PeerEvent::DroppedBy { .. }
                    | PeerEvent::NotSent { .. }
                    | PeerEvent::Unsent { .. }
                    | PeerEvent::Undelivered { .. }
                    | PeerEvent::FloodWarned { .. } => sgr::RED_BOLD,
                    _ => sgr::DIM,
                };
                lines.iter().map(|line| paint(params, line)).collect()
            }
        }
    }

    /// A notice the client makes up itself (joining, leaving), dimmed when colored.
    pub fn notice(&self, now_ms: i64, text: &str) -> String {
        let line = display::notice_line(now_ms, text);
        if self.color {
            paint(sgr::DIM, &line)
        } else {
            line
        }
    }

    /// The last line of a session (see [`display::close_text`]): red if it ended badly.
    pub fn farewell(&self, now_ms: i64, text: &str, failure: bool) -> String {
        let line = display::notice_line(now_ms, text);
        match (self.color, failure) {
            (false, _) => line,
            (true, true) => paint(sgr::RED_BOLD, &line),
            (true, false) => paint(sgr::DIM, &line),
        }
    }
}

/// The server console's line for `event`: [`display::server_event_line`], with the sender's
/// name in its color and everything that is not chat dimmed when `color` is on.
pub fn server_line(event: &ServerEvent, color: bool) -> String {
    match event {
        _ if !color => display::server_event_line(event),
        ServerEvent::Chat {
            time_ms,
            from,
            text,
        } => styled_message(*time_ms, from, text, false, None),
        _ => paint(sgr::DIM, &display::server_event_line(event)),
    }
}

/// A notice of the server console's own (`listening on ...`, ban list changes): dimmed
/// when `color` is on, [`display::notice_line`] otherwise.
pub fn server_notice(time_ms: i64, text: &str, color: bool) -> String {
    let line = display::notice_line(time_ms, text);
    if color { paint(sgr::DIM, &line) } else { line }
}

/// `[12:00:00] alice: hello` with a dim clock, the name in its color, and the text in bold
/// for our own messages or highlighted when it mentions `mention` (our name).
fn styled_message(
    time_ms: i64,
    from: &str,
    text: &str,
    own: bool,
    mention: Option<&str>,
) -> String {
    let color = name_color(from);
    let name = if own {
        paint(&format!("{};{color}", sgr::BOLD), from)
    } else {
        paint(&color.to_string(), from)
    };
    let text = display::sanitize(text);
    let body = match mention {
        _ if own => paint(sgr::BOLD, &text),
        Some(me) => highlight_mentions(&text, me),
        None => text.into_owned(),
    };
    format!(
        "{} {name}: {body}",
        paint(sgr::DIM, &format!("[{}]", display::clock(time_ms)))
    )
}

/// The whole text in the mention color, with each occurrence of `me` also in reverse video.
/// `text` is already sanitized (and re-sanitizing clean text changes nothing).
fn highlight_mentions(text: &str, me: &str) -> String {
    let text = display::sanitize(text);
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

/// `[12:00:00] -- 3 online: alice, bob, carol`, dimmed, with each name in its color: the
/// words of [`display::online_text`].
fn styled_roster(time_ms: i64, total: usize, offset: usize, entries: &[RosterEntry]) -> String {
    let head = display::online_text(total, offset, &[]);
    let names: Vec<String> = entries
        .iter()
        .map(|entry| {
            let name = display::sanitize(&entry.name);
            let painted = paint(&name_color(&entry.name).to_string(), &name);
            let remark = display::roster_remark(entry);
            if remark.is_empty() {
                painted
            } else {
                format!("{painted}{}", paint(sgr::DIM, &remark))
            }
        })
        .collect();
    format!(
        "{} {}",
        paint(
            sgr::DIM,
            &format!("[{}] -- {}", display::clock(time_ms), head.trim_end())
        ),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    fn entry(name: &str) -> crate::wire::RosterEntry {
        crate::wire::RosterEntry {
            guest: false,
            name: name.to_owned(),
            away: String::new(),
        }
    }

    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;

    const ESC: char = '\u{1b}';

    fn message(from: &str, text: &str, own: bool) -> ClientEvent {
        ClientEvent::Message {
            time_ms: 0,
            from: from.to_owned(),
            text: text.to_owned(),
            own,
        }
    }

    /// The text a person sees: the line without our SGR sequences.
    fn visible(line: &str) -> String {
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(ch) = chars.next() {
            if ch == ESC {
                assert_eq!(chars.next(), Some('['), "{line:?}");
                for ch in chars.by_ref() {
                    if ch == 'm' {
                        break;
                    }
                    assert!(ch.is_ascii_digit() || ch == ';', "{line:?}");
                }
            } else {
                out.push(ch);
            }
        }
        out
    }

    #[test]
    fn color_is_used_only_where_it_should_be() {
        use ColorChoice::*;
        // (choice, terminal, NO_COLOR, TERM) -> color
        let cases = [
            (Auto, true, None, Some("xterm-256color"), true),
            (Auto, true, None, None, true),
            (Auto, false, None, Some("xterm"), false),
            (Auto, true, Some("1"), Some("xterm"), false),
            (Auto, true, Some(""), Some("xterm"), true),
            (Auto, true, None, Some("dumb"), false),
            (Always, false, Some("1"), Some("dumb"), true),
            (Never, true, None, Some("xterm"), false),
        ];
        for (choice, tty, no_color, term, expected) in cases {
            assert_eq!(
                use_color(choice, tty, no_color, term),
                expected,
                "{choice} tty={tty} NO_COLOR={no_color:?} TERM={term:?}"
            );
        }
    }

    #[test]
    fn name_colors_are_stable_and_ignore_case() {
        // Pinned: every client, on every platform and Rust version, must agree (values
        // checked against an independent FNV-1a implementation).
        assert_eq!(name_color("alice"), 96);
        assert_eq!(name_color("bob"), 93);
        assert_eq!(name_color("carol"), 33);
        assert_eq!(name_color("server"), 91);
        assert_eq!(name_color("Alice"), name_color("alice"));
        assert_eq!(name_color("ALICE"), name_color("alice"));
        assert!(NAME_PALETTE.contains(&name_color("")));
    }

    #[test]
    fn name_colors_spread_over_the_palette() {
        let mut used = std::collections::BTreeSet::new();
        for i in 0..200 {
            used.insert(name_color(&format!("user{i}")));
        }
        assert_eq!(used.len(), NAME_PALETTE.len());
    }

    #[test]
    fn without_color_lines_are_exactly_the_plain_ones() {
        let events = [
            message("bob", "hi alice \u{1b}[2J", false),
            message("alice", "hello", true),
            ClientEvent::Notice {
                time_ms: 5,
                text: "bob joined".into(),
            },
            ClientEvent::Roster {
                time_ms: 0,
                total: 2,
                offset: 0,
                entries: vec![entry("alice"), entry("bob")],
            },
            ClientEvent::ServerSilent {
                silent_for: Duration::from_secs(9),
            },
            ClientEvent::ServerBack,
            ClientEvent::Joined {
                name: "alice".into(),
                server: SocketAddr::from(([127, 0, 0, 1], 4000)),
            },
        ];
        let all = ClientLook {
            color: false,
            bell: BellMode::All,
        };
        let off = ClientLook {
            color: false,
            bell: BellMode::Off,
        };
        for event in &events {
            assert_eq!(
                all.client_line(event, 7, "alice"),
                display::client_event_line(event, 7, true),
                "{event:?}"
            );
            assert_eq!(
                off.client_line(event, 7, "alice"),
                display::client_event_line(event, 7, false),
                "{event:?}"
            );
        }
        assert_eq!(all.notice(0, "x"), display::notice_line(0, "x"));
        assert_eq!(
            server_line_plain_chat(),
            display::server_event_line(&chat())
        );
        assert_eq!(
            all.client_line(
                &ClientEvent::Closed(crate::client::CloseReason::Left),
                0,
                "a"
            ),
            None
        );
    }

    fn chat() -> ServerEvent {
        ServerEvent::Chat {
            time_ms: 0,
            from: "bob".into(),
            text: "hi".into(),
        }
    }

    fn server_line_plain_chat() -> String {
        server_line(&chat(), false)
    }

    #[test]
    fn the_bell_follows_the_bell_mode() {
        let look = |bell| ClientLook { color: true, bell };
        let rings = |look: ClientLook, event: &ClientEvent| {
            look.client_line(event, 0, "alice").unwrap().ends_with(BELL)
        };
        let plain = message("bob", "hello", false);
        let mention = message("bob", "hello Alice", false);
        let own = message("alice", "hello alice", true);
        assert!(rings(look(BellMode::All), &plain));
        assert!(rings(look(BellMode::All), &mention));
        assert!(!rings(look(BellMode::All), &own));
        assert!(!rings(look(BellMode::Mention), &plain));
        assert!(rings(look(BellMode::Mention), &mention));
        assert!(!rings(look(BellMode::Mention), &own));
        assert!(!rings(look(BellMode::Off), &mention));
    }

    #[test]
    fn colored_messages_read_the_same_and_color_the_name() {
        let look = ClientLook {
            color: true,
            bell: BellMode::Off,
        };
        let line = look
            .client_line(&message("bob", "hello", false), 0, "alice")
            .unwrap();
        assert_eq!(visible(&line), display::message_line(0, "bob", "hello"));
        assert!(line.contains(&format!("{ESC}[{}mbob{ESC}[0m", name_color("bob"))));
        assert!(line.ends_with(": hello"), "{line:?}");
    }

    #[test]
    fn own_messages_are_bold() {
        let look = ClientLook {
            color: true,
            bell: BellMode::All,
        };
        let line = look
            .client_line(&message("alice", "hi all", true), 0, "alice")
            .unwrap();
        assert!(line.contains(&format!("{ESC}[1;{}malice", name_color("alice"))));
        assert!(
            line.ends_with(&format!("{ESC}[1mhi all{ESC}[0m")),
            "{line:?}"
        );
    }

    #[test]
    fn mentions_are_highlighted_with_the_name_reversed() {
        let look = ClientLook {
            color: true,
            bell: BellMode::Off,
        };
        let line = look
            .client_line(&message("bob", "hey ALICE!", false), 0, "alice")
            .unwrap();
        assert!(
            line.ends_with(&format!("{ESC}[1;33mhey {ESC}[7mALICE{ESC}[27m!{ESC}[0m")),
            "{line:?}"
        );
        let not = look
            .client_line(&message("bob", "malice", false), 0, "alice")
            .unwrap();
        assert!(not.ends_with(": malice"), "{not:?}");
    }

    #[test]
    fn peer_text_is_sanitized_before_our_codes_are_added() {
        let look = ClientLook {
            color: true,
            bell: BellMode::Off,
        };
        let hostile = "\u{1b}[31mred\u{1b}]0;title\u{7}";
        for event in [
            message("bob", hostile, false),
            message("bob", &format!("alice {hostile}"), false),
            message("alice", hostile, true),
            ClientEvent::Notice {
                time_ms: 0,
                text: hostile.into(),
            },
            ClientEvent::Roster {
                time_ms: 0,
                total: 1,
                offset: 0,
                entries: vec![entry(hostile)],
            },
        ] {
            let line = look.client_line(&event, 0, "alice").unwrap();
            // Only our own SGR sequences remain: `visible` panics on anything else, and
            // what is left has no control character at all.
            let shown = visible(&line);
            assert!(!shown.chars().any(char::is_control), "{line:?}");
            assert!(shown.contains("^[[31mred^[]0;title^G"), "{shown:?}");
        }
        let server = server_line(
            &ServerEvent::Chat {
                time_ms: 0,
                from: hostile.into(),
                text: hostile.into(),
            },
            true,
        );
        assert!(!visible(&server).chars().any(char::is_control));
    }

    #[test]
    fn peer_lines_are_the_plain_ones_without_color_and_safe_with_it() {
        let plain = ClientLook {
            color: false,
            bell: BellMode::All,
        };
        let colored = ClientLook {
            color: true,
            bell: BellMode::Mention,
        };
        let hostile = "\u{1b}[31mred";
        let events = [
            PeerEvent::Message {
                time_ms: 0,
                from: "bob".into(),
                text: hostile.into(),
                own: false,
            },
            PeerEvent::Private {
                time_ms: 0,
                from: "bob".into(),
                to: "alice".into(),
                text: hostile.into(),
                own: false,
            },
            PeerEvent::MemberJoined {
                time_ms: 0,
                name: "bob".into(),
            },
        ];
        for event in &events {
            assert_eq!(
                plain.peer_lines(event, 0, "alice"),
                display::peer_event_lines(event, 0, true),
                "{event:?}"
            );
            for line in colored.peer_lines(event, 0, "alice") {
                let shown = visible(line.trim_end_matches(BELL));
                assert!(!shown.chars().any(char::is_control), "{line:?}");
            }
        }
        // A private message rings under --bell mention; a public one without the name
        // does not.
        assert!(colored.peer_lines(&events[1], 0, "alice")[0].ends_with(BELL));
        assert!(!colored.peer_lines(&events[0], 0, "alice")[0].ends_with(BELL));
    }

    #[test]
    fn notices_are_dimmed_and_trouble_stands_out() {
        let look = ClientLook {
            color: true,
            bell: BellMode::All,
        };
        let notice = look
            .client_line(
                &ClientEvent::Notice {
                    time_ms: 0,
                    text: "bob joined".into(),
                },
                0,
                "alice",
            )
            .unwrap();
        assert!(notice.starts_with(&format!("{ESC}[2m[")), "{notice:?}");
        let silent = look
            .client_line(
                &ClientEvent::ServerSilent {
                    silent_for: Duration::from_secs(3),
                },
                0,
                "alice",
            )
            .unwrap();
        assert!(silent.starts_with(&format!("{ESC}[1;31m")), "{silent:?}");
        let back = look
            .client_line(&ClientEvent::ServerBack, 0, "alice")
            .unwrap();
        assert!(back.starts_with(&format!("{ESC}[32m")), "{back:?}");
        assert_eq!(
            visible(&back),
            display::client_event_line(&ClientEvent::ServerBack, 0, false).unwrap()
        );
        let roster = look
            .client_line(
                &ClientEvent::Roster {
                    time_ms: 0,
                    total: 2,
                    offset: 0,
                    entries: vec![entry("alice"), entry("bob")],
                },
                0,
                "alice",
            )
            .unwrap();
        assert_eq!(&visible(&roster)[9..], "] -- 2 online: alice, bob");
        assert!(server_line(&chat(), true).contains(&format!("{ESC}[93mbob")));
    }
}
