//! The renderer's tests: colors only add to the plain words, hostile text is sanitized before
//! our escape codes, the bell follows `--bell`, and each event's line has its documented shape.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::client::{ClientEvent, CloseReason};
use crate::peer::{MemberInfo, PeerEvent};
use crate::proto::chat::ChatEvent;
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
    ClientEvent::Chat(said(from, text, own))
}

// The chat events below are shared by both roles: each test wraps them as the client's or
// the peer's event.
fn said(from: &str, text: &str, own: bool) -> ChatEvent {
    ChatEvent::Message {
        time_ms: 0,
        from: from.to_owned(),
        text: text.to_owned(),
        own,
    }
}

fn private(from: &str, to: &str, text: &str, own: bool) -> ChatEvent {
    ChatEvent::Private {
        time_ms: 0,
        from: from.to_owned(),
        to: to.to_owned(),
        text: text.to_owned(),
        own,
    }
}

/// `/me` from bob.
fn action(text: &str) -> ChatEvent {
    ChatEvent::Action {
        time_ms: 0,
        from: "bob".into(),
        text: text.to_owned(),
        own: false,
    }
}

/// A line from bob replayed from epoch 7.
fn replayed(seq: u64, time_ms: i64, kind: LineKind, text: &str, own: bool) -> ChatEvent {
    ChatEvent::HistoryLine {
        epoch: 7,
        seq,
        time_ms,
        from: "bob".into(),
        kind,
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
        ClientEvent::Chat(private("bob", "alice", HOSTILE, false)),
        ClientEvent::Chat(action("waves at alice")),
        ClientEvent::Chat(action("waves")),
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
        ClientEvent::PageEnd {
            shown: 3,
            earlier: 9,
        },
        ClientEvent::MissedWhileAway { count: 8 },
        ClientEvent::HistoryRestarted,
        ClientEvent::HistoryGone { count: 9, held: 4 },
        ClientEvent::HistoryRewound { count: 2 },
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
        PeerEvent::Chat(said("bob", "\u{1b}[31mred", false)),
        PeerEvent::Chat(private("bob", "alice", "\u{1b}[31mred", false)),
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
    let private = PeerEvent::Chat(private("alice", "bob", "psst\u{1b}", true));
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
fn peer_history_lines_look_exactly_like_the_clients() {
    // A day before now: the date goes in front, as in client mode.
    let (now_ms, then_ms) = (1_764_000_000_000, 1_764_000_000_000 - 86_400_000);
    for look in [look(false, BellMode::All), look(true, BellMode::All)] {
        for (kind, own) in [(LineKind::Chat, false), (LineKind::Action, true)] {
            let line = replayed(3, then_ms, kind, "hi alice", own);
            let peer = PeerEvent::Chat(line.clone());
            let client = ClientEvent::Chat(line);
            // Dated like the client's too: the day line goes before it.
            assert_eq!(peer_stamp(&peer), client_stamp(&client));
            assert_eq!(peer_stamp(&peer), Some(then_ms));
            let expected = look.client_line(&client, now_ms, "alice");
            assert_eq!(
                look.peer_lines(&peer, now_ms, "alice"),
                Vec::from_iter(expected)
            );
        }
        let end = |shown, earlier| {
            assert_eq!(peer_stamp(&PeerEvent::HistoryEnd { shown, earlier }), None);
            let peer = look.peer_lines(&PeerEvent::HistoryEnd { shown, earlier }, now_ms, "a");
            let client = look.client_line(&ClientEvent::HistoryEnd { shown, earlier }, now_ms, "a");
            (visible(&peer.concat()), client.map(|line| visible(&line)))
        };
        // A peer's /history asks for the newest lines, a client's for those before the
        // oldest shown: each end points at its own.
        let (peer, client) = end(20, 5);
        assert_eq!(peer, "-- end of history (5 earlier lines: /history 25)");
        assert_eq!(
            client.as_deref(),
            Some("-- end of history (5 earlier lines: /history 5)")
        );
        let (peer, client) = end(3, 0);
        assert_eq!(peer, "-- end of history");
        assert_eq!(client.as_deref(), Some("-- end of history"));
    }
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
    ClientEvent::Chat(replayed(1, time_ms, kind, text, false))
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

    let end = |shown, earlier| plain_line(&ClientEvent::HistoryEnd { shown, earlier });
    assert_points_at_the_earlier_lines(end);
    assert_eq!(end(3, 0), "-- end of history");
}

#[test]
fn a_peers_replayed_line_is_neutralized_like_a_servers() {
    // A member's history reaches us as it travelled: its name and text are the member's
    // to choose, so the renderer is what stands between them and the terminal.
    for kind in [LineKind::Chat, LineKind::Action] {
        let line = PeerEvent::Chat(ChatEvent::HistoryLine {
            epoch: 1,
            seq: 1,
            time_ms: 0,
            from: format!("bob{HOSTILE}"),
            kind,
            text: HOSTILE.into(),
            own: false,
        });
        let plain = ClientLook::PLAIN.peer_lines(&line, 0, "alice");
        let colored = look(true, BellMode::All).peer_lines(&line, 0, "alice");
        assert_eq!(plain.len(), 1);
        assert_eq!(
            colored.iter().map(|l| visible(l)).collect::<Vec<_>>(),
            plain
        );
        let shown = &plain[0];
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(
            shown.matches("^[[31mred^[]0;title^G").count(),
            2,
            "{shown:?}"
        );
    }
}

/// The plain line of a client's event, at time 0, for user `a`.
fn plain_line(event: &ClientEvent) -> String {
    ClientLook::PLAIN
        .client_line(event, 0, "a")
        .expect("a line for the event")
}

/// The end of a replay and of a page (`end(shown, earlier)`) say alike what is earlier:
/// `/history` pages back from the oldest line shown, so it asks for the earlier ones, at
/// most a page of them.
fn assert_points_at_the_earlier_lines(end: impl Fn(u64, u64) -> String) {
    for (shown, earlier, expected) in [
        (20, 20, "-- end of history (20 earlier lines: /history 20)"),
        (
            50,
            120,
            "-- end of history (120 earlier lines: /history 120)",
        ),
        (20, 1, "-- end of history (1 earlier line: /history 1)"),
        (
            20,
            5000,
            "-- end of history (5000 earlier lines: /history 1000)",
        ),
    ] {
        assert_eq!(
            end(shown, earlier),
            expected,
            "shown {shown}, earlier {earlier}"
        );
    }
}

// The day line: `-- Tuesday 1 December 2026` before the first line of another local day
// than the last line printed (the session starts at today), at the offset handed in.

/// Milliseconds since the epoch of `year-month-day hour:minute` UTC.
fn utc_ms(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|date| date.and_hms_opt(hour, minute, 0))
        .expect("a valid date and time")
        .and_utc()
        .timestamp_millis()
}

fn hours_east(hours: i32) -> FixedOffset {
    FixedOffset::east_opt(hours * 3600).expect("a valid offset")
}

#[test]
fn the_first_line_of_a_session_from_today_gets_no_day_line() {
    let mut mark = DayMark::new(utc_ms(2026, 12, 1, 9, 0), text::UTC);
    assert_eq!(mark.line(utc_ms(2026, 12, 1, 10, 0), text::UTC), None);
    assert_eq!(mark.line(utc_ms(2026, 12, 1, 23, 59), text::UTC), None);
}

#[test]
fn the_first_line_after_midnight_gets_the_day_line_once() {
    let mut mark = DayMark::new(utc_ms(2026, 12, 1, 23, 0), text::UTC);
    assert_eq!(mark.line(utc_ms(2026, 12, 1, 23, 59), text::UTC), None);
    assert_eq!(
        mark.line(utc_ms(2026, 12, 2, 0, 0), text::UTC).as_deref(),
        Some("-- Wednesday 2 December 2026")
    );
    assert_eq!(mark.line(utc_ms(2026, 12, 2, 0, 1), text::UTC), None);
}

#[test]
fn the_day_is_the_local_one_at_a_negative_offset_not_the_utc_one() {
    // 23:00 UTC on 1 December is 18:00 there; 01:00 UTC on the 2nd is 20:00 on the 1st.
    let west = hours_east(-5);
    let mut mark = DayMark::new(utc_ms(2026, 12, 1, 23, 0), west);
    assert_eq!(mark.line(utc_ms(2026, 12, 2, 1, 0), west), None);
    // 05:30 UTC is half past midnight there: now it is the 2nd.
    assert_eq!(
        mark.line(utc_ms(2026, 12, 2, 5, 30), west).as_deref(),
        Some("-- Wednesday 2 December 2026")
    );
    // The same instants at UTC+0: the day changed at 01:00 already.
    let mut at_utc = DayMark::new(utc_ms(2026, 12, 1, 23, 0), text::UTC);
    assert_eq!(
        at_utc.line(utc_ms(2026, 12, 2, 1, 0), text::UTC).as_deref(),
        Some("-- Wednesday 2 December 2026")
    );
    // Far east the 1st already ended at 23:00 UTC the day before: 13:00 UTC on 1 December
    // is 03:00 on the 2nd at UTC+14.
    let east = hours_east(14);
    let mut mark = DayMark::new(utc_ms(2026, 12, 1, 9, 0), east);
    assert_eq!(
        mark.line(utc_ms(2026, 12, 1, 13, 0), east).as_deref(),
        Some("-- Wednesday 2 December 2026")
    );
}

#[test]
fn history_lines_from_two_earlier_days_then_live_lines_get_one_day_line_per_day() {
    let mut mark = DayMark::new(utc_ms(2026, 12, 1, 12, 0), text::UTC);
    let lines = [
        utc_ms(2026, 11, 29, 10, 0),
        utc_ms(2026, 11, 29, 11, 0),
        utc_ms(2026, 11, 30, 9, 0),
        utc_ms(2026, 11, 30, 18, 0),
        // Live lines, today.
        utc_ms(2026, 12, 1, 12, 0),
        utc_ms(2026, 12, 1, 12, 1),
    ];
    let day_lines: Vec<Option<String>> = lines
        .iter()
        .map(|&time_ms| mark.line(time_ms, text::UTC))
        .collect();
    let want = [
        Some("-- Sunday 29 November 2026"),
        None,
        Some("-- Monday 30 November 2026"),
        None,
        Some("-- Tuesday 1 December 2026"),
        None,
    ];
    assert_eq!(day_lines, want.map(|line| line.map(str::to_owned)));
}

#[test]
fn a_line_after_days_of_silence_gets_its_own_day_without_a_leading_zero() {
    let mut mark = DayMark::new(utc_ms(2026, 12, 1, 8, 0), text::UTC);
    assert_eq!(mark.line(utc_ms(2026, 12, 1, 8, 5), text::UTC), None);
    // Nothing printed for two days (no timer): the next line says which day it is.
    assert_eq!(
        mark.line(utc_ms(2026, 12, 3, 9, 0), text::UTC).as_deref(),
        Some("-- Thursday 3 December 2026")
    );
}

#[test]
fn a_time_out_of_range_neither_gets_a_day_line_nor_moves_the_day() {
    let mut mark = DayMark::new(utc_ms(2026, 12, 1, 8, 0), text::UTC);
    assert_eq!(mark.line(i64::MAX, text::UTC), None);
    assert_eq!(mark.line(utc_ms(2026, 12, 1, 9, 0), text::UTC), None);
}

#[test]
fn the_day_line_is_dimmed_when_colored_and_lines_without_a_time_change_nothing() {
    // Ten days apart: another day in any time zone the tests run in.
    let start = utc_ms(2026, 12, 1, 12, 0);
    let later = utc_ms(2026, 12, 11, 12, 0);
    let mut mark = DayMark::new(start, text::UTC);
    assert_eq!(ClientLook::PLAIN.day_line(&mut mark, None), None);
    let plain = ClientLook::PLAIN
        .day_line(&mut mark, Some(later))
        .expect("a day line");
    assert!(plain.starts_with("-- ") && plain.ends_with(" December 2026"));
    assert!(!plain.contains(ESC), "{plain:?}");
    assert_eq!(ClientLook::PLAIN.day_line(&mut mark, Some(later)), None);

    let colored = ClientLook {
        color: true,
        bell: BellMode::Off,
    };
    let mut mark = DayMark::new(start, text::UTC);
    let line = colored.day_line(&mut mark, Some(later));
    assert_eq!(line, Some(format!("{ESC}[2m{plain}{ESC}[0m")));
}

#[test]
fn only_lines_the_server_or_a_peer_stamped_carry_a_day() {
    assert_eq!(
        client_stamp(&history_line(1_000, LineKind::Chat, "hi")),
        Some(1_000)
    );
    assert_eq!(client_stamp(&message("bob", "hi", false)), Some(0));
    let joined = ClientEvent::Joined {
        name: "alice".into(),
        server: "127.0.0.1:4000".parse().expect("an address"),
    };
    assert_eq!(client_stamp(&joined), None);
    let history_end = ClientEvent::HistoryEnd {
        shown: 1,
        earlier: 0,
    };
    assert_eq!(client_stamp(&history_end), None);
    let arrived = PeerEvent::MemberJoined {
        time_ms: 7,
        name: "bob".into(),
    };
    assert_eq!(peer_stamp(&arrived), Some(7));
    assert_eq!(peer_stamp(&PeerEvent::Renamed { name: "a".into() }), None);
}

#[test]
fn a_history_page_ends_saying_what_is_earlier() {
    let end = |shown, earlier| plain_line(&ClientEvent::PageEnd { shown, earlier });
    assert_points_at_the_earlier_lines(end);
    assert_eq!(end(30, 0), "-- end of history (no earlier lines)");
    assert_eq!(end(0, 0), "-- no earlier lines");
    // Dimmed like the lines it ends.
    let colored = look(true, BellMode::All)
        .client_line(
            &ClientEvent::PageEnd {
                shown: 1,
                earlier: 0,
            },
            0,
            "a",
        )
        .unwrap();
    assert_eq!(
        colored,
        format!(
            "{ESC}[{}m-- end of history (no earlier lines){ESC}[0m",
            sgr::DIM
        )
    );
}

#[test]
fn a_catch_up_says_what_was_missed_gone_or_restarted() {
    let now_ms = 1_700_000_000_000;
    let notice = |event: ClientEvent| {
        let line = ClientLook::PLAIN.client_line(&event, now_ms, "a").unwrap();
        let stamp = format!("[{}] -- ", clock(now_ms));
        line.strip_prefix(&stamp)
            .unwrap_or_else(|| panic!("{line:?} is a notice of now"))
            .to_owned()
    };
    assert_eq!(
        notice(ClientEvent::MissedWhileAway { count: 8 }),
        "you missed 8 lines while away"
    );
    assert_eq!(
        notice(ClientEvent::MissedWhileAway { count: 1 }),
        "you missed 1 line while away"
    );
    assert_eq!(
        notice(ClientEvent::HistoryRestarted),
        "the server restarted: what was said before it is gone"
    );
    assert_eq!(
        notice(ClientEvent::HistoryGone { count: 8, held: 0 }),
        "8 lines said while you were away are gone"
    );
    assert_eq!(
        notice(ClientEvent::HistoryGone { count: 1, held: 0 }),
        "1 line said while you were away is gone"
    );
    assert_eq!(
        notice(ClientEvent::HistoryGone { count: 1, held: 1 }),
        "1 line said while you were away is not shown: /history 1 shows it"
    );
    assert_eq!(
        notice(ClientEvent::HistoryGone {
            count: 200,
            held: 200
        }),
        "200 lines said while you were away are not shown: /history 200 shows them"
    );
    assert_eq!(
        notice(ClientEvent::HistoryGone {
            count: 300,
            held: 200
        }),
        "300 lines said while you were away are gone, but /history 200 shows the last 200 of them"
    );
    assert_eq!(
        notice(ClientEvent::HistoryGone {
            count: 5000,
            held: 4000
        }),
        "5000 lines said while you were away are gone, but /history 1000 shows the last 4000 of them"
    );
    assert_eq!(
        notice(ClientEvent::HistoryRewound { count: 3 }),
        "the server's history lost the last 3 lines you saw"
    );
    // Dimmed, like other notices.
    let colored = look(true, BellMode::All)
        .client_line(&ClientEvent::MissedWhileAway { count: 2 }, now_ms, "a")
        .unwrap();
    assert!(
        colored.starts_with(&format!("{ESC}[{}m", sgr::DIM)),
        "{colored:?}"
    );
}
