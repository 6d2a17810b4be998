//! Guests, what is shown and the server's life: plain-text guests, terminal escapes
//! neutralized, the roster (sorted, split across datagrams when long), shutdown, a
//! restarted server, a join nobody answers, falling back to the next server address, and
//! long lines.

use super::*;

// Plain-text guests -----------------------------------------------------------------------

#[test]
fn a_plain_text_guest_joins_by_talking_and_reads_plain_text() {
    let mut sim = guest_sim();
    let alice = sim.join("alice");
    sim.clear_events();
    sim.advance(ms(2000));
    let at = WALL_START_MS + 2000;
    let guest = "guest-127.0.0.1:20001";

    let replies = sim.inject(STRANGER, b"hello\n");

    let lines: Vec<String> = replies
        .iter()
        .map(|bytes| String::from_utf8(bytes.clone()).expect("guests get text"))
        .collect();
    assert_eq!(
        lines,
        [
            format!("[{}] -- {guest} joined\n", text::clock(at, guest_offset())),
            format!("[{}] {guest}: hello\n", text::clock(at, guest_offset())),
        ]
    );
    assert_eq!(
        sim.take_events(alice),
        vec![
            presence(at, guest, PresenceChange::Joined),
            message(at, guest, "hello", false)
        ]
    );
    assert_eq!(
        sim.take_server_events(),
        vec![
            ServerEvent::Joined {
                time_ms: at,
                name: guest.to_owned(),
                addr: STRANGER,
                guest: true,
            },
            ServerEvent::Chat {
                time_ms: at,
                from: guest.to_owned(),
                text: "hello".to_owned(),
            },
        ]
    );
    let listed = sim.server.clients(sim.now);
    assert_eq!(listed.len(), 2);
    assert_eq!((listed[1].name.as_str(), listed[1].guest), (guest, true));

    // The guest reads what named clients say, as text.
    let mark = sim.mark();
    sim.send_text(alice, "hi guest");
    let to_guest = sim.server_sent_to(STRANGER, mark);
    assert_eq!(
        to_guest,
        [format!("[{}] alice: hi guest\n", text::clock(at, guest_offset())).into_bytes()]
    );
    // The binary says when its zone's offset changes; the next line follows.
    sim.server.set_utc_offset(text::UTC);
    let mark = sim.mark();
    sim.send_text(alice, "in UTC");
    assert_eq!(
        sim.server_sent_to(STRANGER, mark),
        [format!("[{}] alice: in UTC\n", text::clock(at, text::UTC)).into_bytes()]
    );

    // Several lines in one datagram, with CRLF endings and a blank line, are several messages.
    sim.inject(STRANGER, b"one\r\n\r\ntwo\r\n");
    let texts: Vec<String> = messages(&sim.take_events(alice))
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(texts, ["hi guest", "in UTC", "one", "two"]);
}

#[test]
fn with_guests_off_plain_text_gets_nothing() {
    let mut sim = default_sim();
    let alice = sim.join("alice");
    sim.clear_events();

    let mark = sim.mark();
    assert_eq!(sim.inject(STRANGER, b"hello\n"), Vec::<Vec<u8>>::new());
    assert_eq!(sim.sent_since(mark).len(), 1);
    assert_eq!(sim.take_events(alice), vec![]);
    assert_eq!(listed_names(&sim), ["alice"]);
    let logged = sim.take_server_events();
    assert!(
        matches!(logged.as_slice(), [ServerEvent::Malformed { addr, why, .. }]
            if *addr == STRANGER && why.contains("guests are off")),
        "{logged:?}"
    );
}

// Terminal escapes are neutralized --------------------------------------------------------

#[test]
fn the_server_neutralizes_terminal_escapes_in_chat() {
    let mut sim = default_sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);

    sim.send_text(alice, "\x1b[2Jgotcha\x07");
    sim.send_text(alice, "abc\u{202E}fed");

    let expected = ["^[[2Jgotcha^G", "abc\u{FFFD}fed"];
    let seen: Vec<String> = messages(&sim.take_events(bob))
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(seen, expected);
    let echoed: Vec<String> = messages(&sim.take_events(alice))
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(echoed, expected);
    let logged: Vec<String> = sim
        .take_server_events()
        .into_iter()
        .filter_map(|event| match event {
            ServerEvent::Chat { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(logged, expected);
}

// The roster: sorted, and split across datagrams when long --------------------------------

#[test]
fn the_roster_lists_everyone_sorted_case_insensitively() {
    let mut sim = default_sim();
    let bob = sim.join("bob");
    let alice = sim.join("Alice");
    let carol = sim.join("Carol");
    sim.clear_events();
    sim.advance(ms(42));

    sim.request_list(bob);

    assert_eq!(
        sim.take_events(bob),
        vec![ClientEvent::Roster {
            time_ms: WALL_START_MS + 42,
            total: 3,
            offset: 0,
            entries: ["Alice", "bob", "Carol"]
                .iter()
                .map(|name| RosterEntry {
                    name: (*name).to_owned(),
                    away: String::new(),
                    guest: false,
                })
                .collect(),
        }]
    );
    assert_eq!(sim.take_events(alice), vec![]);
    assert_eq!(sim.take_events(carol), vec![]);
}

#[test]
fn a_long_roster_spans_several_datagrams_that_together_are_complete() {
    const CLIENTS: usize = 200;
    // All the simulated clients share 127.0.0.1.
    let mut sim = Sim::new(ServerConfig {
        max_per_ip: None,
        ..ServerConfig::default()
    });
    let mut expected = Vec::new();
    let mut first = None;
    for i in 0..CLIENTS {
        let letter = char::from(b'a' + u8::try_from(i * 7 % 26).expect("a letter"));
        let letter = if i % 2 == 0 {
            letter.to_ascii_uppercase()
        } else {
            letter
        };
        let name = format!("{letter}{i:03}{}", "x".repeat(26));
        assert_eq!(name.len(), 30);
        let at = sim.add_client(&name);
        first.get_or_insert(at);
        expected.push(name);
    }
    sim.drive();
    expected.sort_by_key(|name| name.to_lowercase());
    assert_eq!(sim.server.clients(sim.now).len(), CLIENTS);
    let asker = first.expect("at least one client");
    sim.take_events(asker);

    let mark = sim.mark();
    sim.request_list(asker);

    let sent = sim.server_sent_to(asker, mark);
    assert!(sent.iter().all(|bytes| bytes.len() <= wire::MAX_DATAGRAM));
    let parts: Vec<(u16, u16, Vec<String>)> = sim
        .take_events(asker)
        .into_iter()
        .map(|event| match event {
            ClientEvent::Roster {
                total,
                offset,
                entries,
                ..
            } => (total, offset, entries.into_iter().map(|e| e.name).collect()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    // 40 fixed bytes (header, envelope, time, total, offset) and 32 per entry (a 30-byte
    // name and an empty away text, each with its length): 36 per datagram, so 6 datagrams.
    assert_eq!(parts.len(), 6);
    assert_eq!(sent.len(), 6);
    let mut all = Vec::new();
    for (total, offset, names) in parts {
        assert_eq!(usize::from(total), CLIENTS);
        assert_eq!(usize::from(offset), all.len(), "offsets follow on");
        all.extend(names);
    }
    assert_eq!(all, expected);
}

// Shutdown --------------------------------------------------------------------------------

#[test]
fn shutdown_tells_every_client_the_server_is_closing() {
    let mut sim = default_sim();
    let clients = [sim.join("alice"), sim.join("bob"), sim.join("carol")];
    sim.clear_events();

    let now = sim.now;
    sim.server.shutdown(now);
    sim.drive();

    for at in clients {
        assert_eq!(
            sim.take_events(at),
            vec![closed_by_server(
                DisconnectReason::ServerClosing,
                "the server is closing"
            )]
        );
        assert!(sim.client(at).is_closed());
        assert_eq!(sim.client(at).poll_timeout(), None);
    }
    assert_eq!(
        sim.take_server_events(),
        vec![ServerEvent::Closing {
            time_ms: WALL_START_MS,
            clients: 3,
        }]
    );
    assert_eq!(listed_names(&sim), Vec::<String>::new());
}

// A restarted server ----------------------------------------------------------------------

#[test]
fn clients_rejoin_a_restarted_server_under_the_same_name() {
    let mut sim = default_sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);

    sim.advance(ms(500));
    sim.restart_server(ServerConfig::default());
    let restarted_at = WALL_START_MS + 500;

    // Bob talks first: his line meets a server that does not know him.
    sim.send_text(bob, "anyone there?");
    assert_eq!(
        sim.take_events(bob),
        vec![
            ClientEvent::Rejoining,
            ClientEvent::Rejoined {
                name: "bob".to_owned(),
                queued: 1,
            },
            online(restarted_at, &["bob"]),
            // A new server holds no history yet, so nothing is replayed (a client that
            // showed lines of the old epoch is told the epoch changed: `replay.rs`).
            // The line the old server never acknowledged is sent again after the rejoin.
            message(restarted_at, "bob", "anyone there?", true),
        ]
    );
    assert_eq!(listed_names(&sim), ["bob"]);

    // Alice is idle: her next heartbeat finds out.
    sim.advance_in_steps(ServerConfig::default().heartbeat_interval(), ms(500));
    let alice_events = sim.take_events(alice);
    assert_eq!(
        &alice_events[..2],
        [
            ClientEvent::Rejoining,
            ClientEvent::Rejoined {
                name: "alice".to_owned(),
                queued: 0,
            }
        ]
    );
    assert_eq!(listed_names(&sim), ["alice", "bob"]);
    assert_eq!(notices(&sim.take_events(bob)), ["alice joined"]);

    sim.send_text(alice, "I'm back");
    assert_eq!(
        messages(&sim.take_events(bob)),
        [("alice".to_owned(), "I'm back".to_owned(), false)]
    );
}

// A join nobody answers -------------------------------------------------------------------

#[test]
fn a_join_nobody_answers_times_out_and_unsent_lines_are_reported() {
    let mut sim = default_sim();
    let nowhere = addr([127, 0, 0, 1], 4999);
    let lonely = sim.add_client_at(addr([127, 0, 0, 1], 10001), "lonely", vec![nowhere]);
    let now = sim.now;
    sim.client_mut(lonely).send_text(now, "is this thing on?");
    sim.drive();

    sim.advance_in_steps(join::JOIN_TIMEOUT - ms(1), ms(100));
    assert!(!sim.client(lonely).is_closed(), "not before JOIN_TIMEOUT");
    assert_eq!(sim.events(lonely), []);

    sim.advance(ms(1));
    assert_eq!(
        sim.take_events(lonely),
        vec![
            ClientEvent::NotSent {
                text: "is this thing on?".to_owned(),
                why: "the session ended before the server answered",
            },
            ClientEvent::Closed(CloseReason::JoinTimedOut),
        ]
    );
    let joins = frames(&sim.wire)
        .into_iter()
        .filter(|frame| matches!(frame, Frame::ToServer(ToServer::Join { .. })))
        .count();
    // At 0, 0.5, 1, ... 4.5 s: every JOIN_RETRY until JOIN_TIMEOUT.
    assert_eq!(joins, 10);
    assert_eq!(count_to(&sim.wire, nowhere), 10);
}

// Falling back to the next server address -------------------------------------------------

#[test]
fn a_client_falls_back_to_the_next_server_address() {
    let mut sim = default_sim();
    let nowhere = addr([127, 0, 0, 1], 4999);
    let alice = sim.add_client_at(
        addr([127, 0, 0, 1], 10001),
        "alice",
        vec![nowhere, SERVER_ADDR],
    );
    sim.drive();

    sim.advance_in_steps(join::ADDRESS_FALLBACK - ms(1), ms(100));
    assert_eq!(
        sim.events(alice),
        [],
        "the first address still has its chance"
    );
    assert_eq!(count_to(&sim.wire, SERVER_ADDR), 0);

    sim.advance(ms(1));
    assert_eq!(
        sim.take_events(alice),
        vec![
            ClientEvent::Joined {
                name: "alice".to_owned(),
                server: SERVER_ADDR,
            },
            online(WALL_START_MS + 1000, &["alice"]),
        ]
    );
    assert_eq!(sim.client(alice).server(), SERVER_ADDR);
    assert_eq!(count_to(&sim.wire, nowhere), 2, "joins at 0 and 0.5 s");

    // From then on it talks to the address that answered only.
    let mark = sim.mark();
    sim.send_text(alice, "found you");
    assert_eq!(count_to(sim.sent_since(mark), nowhere), 0);
    assert_eq!(messages(&sim.take_events(alice)).len(), 1);
}

// Long lines ------------------------------------------------------------------------------

#[test]
fn a_long_line_arrives_as_several_messages_in_order() {
    let mut sim = default_sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);

    // Two-byte characters (900 bytes is a boundary) and three-byte ones (it is not).
    for line in ["é".repeat(1500), "€".repeat(1000)] {
        assert!(line.len() >= 3000);
        sim.send_text(alice, &line);
        let pieces: Vec<String> = messages(&sim.take_events(bob))
            .into_iter()
            .map(|(from, text, _)| {
                assert_eq!(from, "alice");
                text
            })
            .collect();
        assert!(pieces.len() >= 3, "{} pieces", pieces.len());
        assert!(
            pieces
                .iter()
                .all(|piece| piece.len() <= wire::MAX_TEXT_BYTES)
        );
        assert_eq!(pieces.concat(), line);
    }
}
