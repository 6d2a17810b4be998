//! The renderer's tests: colors only add to the plain words, hostile text is sanitized before
//! our escape codes, the bell follows `--bell`, and each event's line has its documented shape.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::client::{ClientEvent, CloseReason};
use crate::peer::{MemberInfo, PeerEvent};
use crate::server::ServerEvent;
use crate::wire::{GoneReason, LineKind};

const ESC: char = '\u{1b}';

const HOSTILE: &str = "\u{1b}[31mred\u{1b}]0;title\u{7}";

fn entry(name: &str) -> RosterEntry {
    RosterEntry {
        guest: false,
        name: name.to_owned(),
        away: String::new(),
    }
}

fn message(from: &str, text: &str, own: bool) -> ClientEvent {
    ClientEvent::Message {
        time_ms: 0,
        from: from.to_owned(),
        text: text.to_owned(),
        own,
    }
}

fn chat(from: &str, text: &str) -> ServerEvent {
    ServerEvent::Chat {
        time_ms: 1_700_000_123_456,
        from: from.into(),
        text: text.into(),
    }
}

fn look(color: bool, bell: BellMode) -> ClientLook {
    ClientLook { color, bell }
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

/// One event of each shape the client shows, hostile text included.
fn client_events() -> Vec<ClientEvent> {
    vec![
        message("bob", "hi alice \u{1b}[2J", false),
        message("alice", "hello", true),
        ClientEvent::Private {
            time_ms: 0,
            from: "bob".into(),
            to: "alice".into(),
            text: HOSTILE.into(),
            own: false,
        },
        ClientEvent::Action {
            time_ms: 0,
            from: "bob".into(),
            text: "waves at alice".into(),
            own: false,
        },
        ClientEvent::Action {
            time_ms: 0,
            from: "bob".into(),
            text: "waves".into(),
            own: false,
        },
        ClientEvent::Notice {
            time_ms: 5,
            text: HOSTILE.into(),
        },
        ClientEvent::Roster {
            time_ms: 0,
            total: 2,
            offset: 0,
            entries: vec![entry("alice"), entry(HOSTILE)],
        },
        ClientEvent::Roster {
            time_ms: 0,
            total: 2,
            offset: 0,
            entries: Vec::new(),
        },
        ClientEvent::ServerSilent {
            silent_for: Duration::from_secs(9),
        },
        ClientEvent::ServerBack,
        ClientEvent::Rejoining,
        ClientEvent::Joined {
            name: "alice".into(),
            server: SocketAddr::from(([127, 0, 0, 1], 4000)),
        },
    ]
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
fn the_clock_is_the_local_one() {
    for time_ms in [0, -1, 1_764_000_000_000, i64::MAX] {
        assert_eq!(clock(time_ms), text::clock(time_ms, local_offset(time_ms)));
        let mut kept = ClockText::default();
        assert_eq!(clock_kept(&mut kept, time_ms), clock(time_ms));
    }
    let shown = clock(1_764_000_000_000);
    assert_eq!(shown.len(), 8);
    assert_eq!(&shown[6..], "00"); // a whole-minute instant in every time zone
}

/// With color off, lines are the words and shapes of `text` that guests read too.
#[test]
fn plain_lines_are_the_shapes_of_text() {
    let plain = ClientLook::PLAIN;
    let stamp = clock(0);
    let mut expected = Vec::new();
    text::push_message_line(&mut expected, &stamp, "bob", "hi alice \u{1b}[2J");
    let line = plain.client_line(&client_events()[0], 7, "alice");
    assert_eq!(line.map(String::into_bytes), Some(expected));
    let roster = plain.client_line(&client_events()[6], 7, "alice").unwrap();
    let people = [entry("alice"), entry(HOSTILE)];
    let words = text::online_text(2, 0, &people);
    assert_eq!(roster, text::notice_line(&stamp, &words));
    assert_eq!(plain.notice(0, "x"), text::notice_line(&stamp, "x"));
    assert_eq!(
        plain.client_line(&ClientEvent::Closed(CloseReason::Left), 0, "a"),
        None
    );
    // The server's log: the chat line written straight into the buffer is the rendered
    // one, including before 1970.
    for (from, text) in [
        ("alice", "hello ~ {100%}"),
        ("zoë", "café 日本語 🎉"),
        ("bob", "tab\t, escape \u{1b}[2J, bidi \u{202e}x, del \u{7f}"),
    ] {
        let mut kept = ClockText::default();
        for event in [chat(from, text), chat(from, text), chat("x", "")] {
            let mut log = Vec::new();
            push_server_line(&mut log, &mut kept, &event, false);
            let expected = format!("{}\n", server_line(&event, false));
            assert_eq!(String::from_utf8(log).unwrap(), expected);
        }
    }
}

/// Colors only add: what a person sees of a colored line is the plain line.
#[test]
fn colored_lines_read_as_the_plain_ones() {
    for bell in [BellMode::All, BellMode::Off] {
        for event in client_events() {
            let colored = look(true, bell).client_line(&event, 0, "alice").unwrap();
            let plain = look(false, bell).client_line(&event, 0, "alice").unwrap();
            assert_eq!(visible(&colored), plain, "{event:?}");
            assert_ne!(colored, plain, "{event:?}");
        }
    }
    for event in [chat("bob", HOSTILE), chat(HOSTILE, "hi")] {
        assert_eq!(
            visible(&server_line(&event, true)),
            server_line(&event, false)
        );
    }
}

#[test]
fn the_bell_follows_the_bell_mode() {
    let rings = |bell, event: &ClientEvent| {
        look(true, bell)
            .client_line(event, 0, "alice")
            .unwrap()
            .ends_with(BELL)
    };
    let plain = message("bob", "hello", false);
    let mention = message("bob", "hello Alice", false);
    let own = message("alice", "hello alice", true);
    assert!(rings(BellMode::All, &plain));
    assert!(rings(BellMode::All, &mention));
    assert!(!rings(BellMode::All, &own));
    assert!(!rings(BellMode::Mention, &plain));
    assert!(rings(BellMode::Mention, &mention));
    assert!(!rings(BellMode::Mention, &own));
    assert!(!rings(BellMode::Off, &mention));
}

#[test]
fn colored_messages_color_the_name() {
    let line = look(true, BellMode::Off)
        .client_line(&message("bob", "hello", false), 0, "alice")
        .unwrap();
    assert!(line.contains(&format!("{ESC}[{}mbob{ESC}[0m", name_color("bob"))));
    assert!(line.ends_with(": hello"), "{line:?}");
}

#[test]
fn own_messages_are_bold() {
    let line = look(true, BellMode::All)
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
    let colored = look(true, BellMode::Off);
    let line = colored
        .client_line(&message("bob", "hey ALICE!", false), 0, "alice")
        .unwrap();
    assert!(
        line.ends_with(&format!("{ESC}[1;33mhey {ESC}[7mALICE{ESC}[27m!{ESC}[0m")),
        "{line:?}"
    );
    let not = colored
        .client_line(&message("bob", "malice", false), 0, "alice")
        .unwrap();
    assert!(not.ends_with(": malice"), "{not:?}");
}

#[test]
fn peer_text_is_sanitized_before_our_codes_are_added() {
    let colored = look(true, BellMode::Off);
    for event in [
        message("bob", HOSTILE, false),
        message("bob", &format!("alice {HOSTILE}"), false),
        message("alice", HOSTILE, true),
        ClientEvent::Notice {
            time_ms: 0,
            text: HOSTILE.into(),
        },
        ClientEvent::Roster {
            time_ms: 0,
            total: 1,
            offset: 0,
            entries: vec![entry(HOSTILE)],
        },
    ] {
        let line = colored.client_line(&event, 0, "alice").unwrap();
        // Only our own SGR sequences remain: `visible` panics on anything else, and what
        // is left has no control character at all.
        let shown = visible(&line);
        assert!(!shown.chars().any(char::is_control), "{line:?}");
        assert!(shown.contains("^[[31mred^[]0;title^G"), "{shown:?}");
    }
    let server = server_line(&chat(HOSTILE, HOSTILE), true);
    assert!(!visible(&server).chars().any(char::is_control));
}

#[test]
fn peer_lines_ring_like_the_clients_and_are_safe_with_color() {
    let plain = look(false, BellMode::All);
    let colored = look(true, BellMode::Mention);
    let events = [
        PeerEvent::Message {
            time_ms: 0,
            from: "bob".into(),
            text: "\u{1b}[31mred".into(),
            own: false,
        },
        PeerEvent::Private {
            time_ms: 0,
            from: "bob".into(),
            to: "alice".into(),
            text: "\u{1b}[31mred".into(),
            own: false,
        },
        PeerEvent::MemberJoined {
            time_ms: 0,
            name: "bob".into(),
        },
        PeerEvent::Joined {
            name: "alice".into(),
            through: Some(("bob".into(), SocketAddr::from(([127, 0, 0, 1], 5001)))),
            members: vec!["alice".into(), "bob".into()],
        },
    ];
    for event in &events {
        let colored = colored.peer_lines(event, 0, "alice");
        let plain = plain.peer_lines(event, 0, "alice");
        assert_eq!(colored.len(), plain.len());
        for (colored, plain) in colored.iter().zip(&plain) {
            let shown = visible(colored.trim_end_matches(BELL));
            assert!(!shown.chars().any(char::is_control), "{colored:?}");
            assert_eq!(shown, plain.trim_end_matches(BELL));
        }
    }
    let ring = |look: ClientLook, event| look.peer_lines(event, 0, "alice")[0].ends_with(BELL);
    assert!(ring(plain, &events[0]));
    // A private message rings under --bell mention; a public one without the name does
    // not.
    assert!(ring(colored, &events[1]));
    assert!(!ring(colored, &events[0]));
}

#[test]
fn peer_lines_have_the_documented_shape() {
    let plain = look(false, BellMode::All);
    let gone = PeerEvent::MemberGone {
        time_ms: 0,
        name: "bob".into(),
        reason: GoneReason::TimedOut,
    };
    assert_eq!(
        &plain.peer_lines(&gone, 0, "alice")[0][9..],
        "] -- bob timed out"
    );
    let private = PeerEvent::Private {
        time_ms: 0,
        from: "alice".into(),
        to: "bob".into(),
        text: "psst\u{1b}".into(),
        own: true,
    };
    assert_eq!(
        &plain.peer_lines(&private, 0, "alice")[0][9..],
        "] alice -> bob (private): psst^["
    );
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
            away: None,
        }],
    };
    let lines = plain.peer_lines(&list, 0, "alice");
    assert_eq!(&lines[0][9..], "] -- 1 in the room:");
    assert_eq!(&lines[1][9..], "] --   bob at 127.0.0.1:5001, heard 2s ago");
    let PeerEvent::Members { mut members, .. } = list else {
        unreachable!("made as a member list just above")
    };
    members[0].away = Some("lunch".into());
    let list = PeerEvent::Members {
        time_ms: 0,
        members,
    };
    let lines = plain.peer_lines(&list, 0, "alice");
    assert_eq!(
        &lines[1][9..],
        "] --   bob (away: lunch) at 127.0.0.1:5001, heard 2s ago"
    );
}

#[test]
fn notices_are_dimmed_and_trouble_stands_out() {
    let colored = look(true, BellMode::All);
    let line = |event: &ClientEvent| colored.client_line(event, 0, "alice").unwrap();
    let notice = line(&ClientEvent::Notice {
        time_ms: 0,
        text: "bob joined".into(),
    });
    assert!(notice.starts_with(&format!("{ESC}[2m[")), "{notice:?}");
    let silent = line(&ClientEvent::ServerSilent {
        silent_for: Duration::from_secs(3),
    });
    assert!(silent.starts_with(&format!("{ESC}[1;31m")), "{silent:?}");
    let back = line(&ClientEvent::ServerBack);
    assert!(back.starts_with(&format!("{ESC}[32m")), "{back:?}");
    let rejoining = line(&ClientEvent::Rejoining);
    assert!(
        rejoining.starts_with(&format!("{ESC}[33m")),
        "{rejoining:?}"
    );
    let roster = line(&ClientEvent::Roster {
        time_ms: 0,
        total: 2,
        offset: 0,
        entries: vec![entry("alice"), entry("bob")],
    });
    assert_eq!(&visible(&roster)[9..], "] -- 2 online: alice, bob");
    assert!(server_line(&chat("bob", "hi"), true).contains(&format!("{ESC}[93mbob")));
    assert!(
        colored
            .farewell(0, "gone", true)
            .starts_with(&format!("{ESC}[1;31m"))
    );
    assert!(
        colored
            .farewell(0, "left", false)
            .starts_with(&format!("{ESC}[2m"))
    );
}

fn history_line(time_ms: i64, kind: LineKind, text: &str) -> ClientEvent {
    ClientEvent::HistoryLine {
        epoch: 7,
        seq: 1,
        time_ms,
        from: "bob".into(),
        kind,
        text: text.into(),
        own: false,
    }
}

#[test]
fn history_lines_look_like_live_ones_with_the_date_when_not_today_and_dimmed() {
    let plain = ClientLook::PLAIN;
    let day_ms = 86_400_000;
    let said = 40 * 365 * day_ms + 12 * 3_600_000;
    let stamp = clock(said);
    let chat = plain.client_line(&history_line(said, LineKind::Chat, "hi"), said + 1000, "a");
    assert_eq!(chat.as_deref(), Some(format!("[{stamp}] bob: hi").as_str()));
    let action = history_line(said, LineKind::Action, "waves");
    let action = plain.client_line(&action, said + 1000, "a").unwrap();
    assert_eq!(action, text::action_line(&stamp, "bob", "waves"));
    // Two days later it carries its date.
    let old = history_line(said, LineKind::Chat, "hi");
    let old = plain.client_line(&old, said + 2 * day_ms, "a").unwrap();
    let date = local_date(said).unwrap();
    assert_eq!(old, format!("{date} [{stamp}] bob: hi"));
    assert_eq!(date.len(), "2010-01-01".len());
    // Hostile text is sanitized, and with color the whole line is dimmed, no bell rung.
    let hostile = history_line(said, LineKind::Chat, HOSTILE);
    let colored = look(true, BellMode::All)
        .client_line(&hostile, said, "bob")
        .unwrap();
    let uncolored = look(false, BellMode::All)
        .client_line(&hostile, said, "bob")
        .unwrap();
    assert_eq!(visible(&colored), uncolored);
    assert!(
        colored.starts_with(&format!("{ESC}[{}m", sgr::DIM)),
        "{colored:?}"
    );
    assert!(!colored.contains(BELL) && !uncolored.contains(BELL));

    let end = |shown, earlier| {
        plain
            .client_line(&ClientEvent::HistoryEnd { shown, earlier }, 0, "a")
            .unwrap()
    };
    assert_eq!(
        end(20, 20),
        "-- end of history (20 earlier lines: /history 40)"
    );
    assert_eq!(
        end(20, 1),
        "-- end of history (1 earlier line: /history 21)"
    );
    assert_eq!(end(3, 0), "-- end of history");
}
