//! What the server refuses or limits: flood limits, kicks, bans, strangers and garbage
//! getting nothing through, nobody speaking as someone else, and no amplification (a
//! stranger never gets more bytes than it sent).

use super::*;

// Flood limits ----------------------------------------------------------------------------

#[test]
fn a_flood_is_cut_to_the_burst_and_the_sender_told_once() {
    let mut sim = default_sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);

    // Not an icq-client (which paces itself, see below): a program that sends 30 lines at
    // once, stamped truthfully.
    let token = sim.token(alice);
    let session_start = sim.now;
    let chat = |seq: u32, at: std::time::Instant, text: &str| {
        Frame::ToServer(ToServer::Sequenced(
            envelope(token, seq),
            Request::Chat {
                sent_ms: at.duration_since(session_start).as_millis() as u64,
                text: text.to_owned(),
            },
        ))
    };
    let now = sim.now;
    for i in 0..30 {
        sim.inject_frame(alice, &chat(i + 1, now, &format!("line {i}")));
    }

    let first_ten: Vec<(String, String, bool)> = (0..10)
        .map(|i| ("alice".to_owned(), format!("line {i}"), false))
        .collect();
    assert_eq!(messages(&sim.take_events(bob)), first_ten);
    assert_eq!(messages(sim.events(alice)).len(), 10);
    let chats = sim
        .server_events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Chat { .. }));
    assert_eq!(chats.count(), 10);

    sim.advance(flood::FLOOD_NOTICE_DELAY - ms(1));
    assert_eq!(
        notices(sim.events(alice)),
        Vec::<String>::new(),
        "not before the delay"
    );

    sim.advance(ms(1));
    let told = notices(sim.events(alice));
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].starts_with("20 messages not sent"), "{told:?}");
    assert_eq!(notices(&sim.take_events(bob)), Vec::<String>::new());
    let dropped: Vec<ServerEvent> =
        server_events_where(&mut sim, |e| matches!(e, ServerEvent::FloodDropped { .. }));
    assert_eq!(
        dropped,
        vec![ServerEvent::FloodDropped {
            time_ms: WALL_START_MS + 1000,
            name: "alice".to_owned(),
            addr: alice,
            dropped: 20,
        }]
    );
    sim.take_events(alice);

    // Two seconds refill the bucket (5/s): alice may talk again, and nobody is told more.
    sim.advance(Duration::from_secs(2));
    for (seq, text) in (31..).zip(["back", "again", "ok"]) {
        let now = sim.now;
        sim.inject_frame(alice, &chat(seq, now, text));
    }
    sim.advance(flood::FLOOD_NOTICE_DELAY * 2);
    let texts: Vec<String> = messages(&sim.take_events(bob))
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(texts, ["back", "again", "ok"]);
    assert_eq!(notices(&sim.take_events(alice)), Vec::<String>::new());
}

#[test]
fn thirty_lines_at_once_are_paced_by_the_client_and_all_arrive_in_order() {
    let mut sim = default_sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);

    // A paste of 30 lines: the burst goes at once, the rest is queued and told once.
    let now = sim.now;
    for i in 0..30 {
        sim.client_mut(alice).send_text(now, &format!("line {i}"));
    }
    sim.drive();
    assert_eq!(messages(&sim.take_events(bob)).len(), 10);
    assert_eq!(sim.client(alice).queued(), 20);
    sim.run_for(pacing::BACKLOG_NOTICE_DELAY);
    let queued: Vec<ClientEvent> = sim
        .take_events(alice)
        .into_iter()
        .filter(|e| matches!(e, ClientEvent::Queued { .. }))
        .collect();
    assert_eq!(
        queued,
        [ClientEvent::Queued {
            lines: 20,
            every: ms(200)
        }]
    );
    assert_eq!(
        ClientLook::PLAIN
            .client_line(&queued[0], 0, "alice")
            .map(|l| l[l.find("--").unwrap()..].to_owned()),
        Some("-- 20 lines queued (sending 5 a second)".to_owned())
    );

    // Then one every 200 ms: all 30 in order within 4 s, nothing dropped, nobody warned.
    sim.run_for(Duration::from_secs(4));
    let expected: Vec<(String, String, bool)> = (10..30)
        .map(|i| ("alice".to_owned(), format!("line {i}"), false))
        .collect();
    assert_eq!(messages(&sim.take_events(bob)), expected);
    assert!(
        !sim.server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::FloodDropped { .. })),
        "an icq-client is never cut by the flood limit"
    );
    let told = notices(&sim.take_events(alice));
    assert!(told.iter().all(|n| !n.contains("too fast")), "{told:?}");
    assert_eq!(sim.client(alice).queued(), 0);
}

#[test]
fn a_client_that_types_on_for_minutes_is_never_kicked() {
    let mut sim = default_sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    // 150 lines at once, then 20 lines a second for 10 s: everything arrives, in order,
    // at the server's pace; nobody is warned or kicked.
    let now = sim.now;
    for i in 0..150 {
        sim.client_mut(alice).send_text(now, &format!("paste {i}"));
    }
    let mut typed: Vec<String> = (0..150).map(|i| format!("paste {i}")).collect();
    for i in 0..200 {
        sim.run_for(ms(50));
        let now = sim.now;
        sim.client_mut(alice).send_text(now, &format!("typed {i}"));
        typed.push(format!("typed {i}"));
    }
    sim.run_for(Duration::from_secs(80));
    let texts: Vec<String> = messages(&sim.take_events(bob))
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(texts, typed);
    assert!(!sim.client(alice).is_closed());
    assert!(
        !sim.server_events.iter().any(|e| matches!(
            e,
            ServerEvent::FloodDropped { .. } | ServerEvent::Kicked { .. }
        )),
        "{:?}",
        sim.server_events
    );
}

#[test]
fn without_a_flood_limit_every_line_goes_out() {
    let mut sim = Sim::new(ServerConfig {
        flood_limit: None,
        ..ServerConfig::default()
    });
    assert_eq!(
        FloodLimit::from_options(0.0, 10),
        None,
        "how --flood-rate 0 turns it off"
    );
    let [alice, bob] = sim.join_settled(["alice", "bob"]);

    let now = sim.now;
    for i in 0..30 {
        sim.client_mut(alice).send_text(now, &format!("line {i}"));
    }
    sim.drive();
    sim.advance(flood::FLOOD_NOTICE_DELAY * 2);

    assert_eq!(messages(&sim.take_events(bob)).len(), 30);
    assert_eq!(notices(&sim.take_events(alice)), Vec::<String>::new());
    let flood_events =
        server_events_where(&mut sim, |e| matches!(e, ServerEvent::FloodDropped { .. })).len();
    assert_eq!(flood_events, 0);
}

// Kicks -----------------------------------------------------------------------------------

#[test]
fn the_operator_kicks_a_client_by_name_in_any_case() {
    let mut sim = default_sim();
    let [alice, bob, carol] = sim.join_settled(["alice", "bob", "carol"]);

    let now = sim.now;
    assert_eq!(sim.server.kick(now, "BOB"), Ok(()));
    sim.drive();

    assert_eq!(
        sim.take_events(bob),
        vec![closed_by_server(
            DisconnectReason::Kicked,
            "you were kicked by the operator"
        )]
    );
    assert_eq!(
        sim.take_events(alice),
        vec![presence(WALL_START_MS, "bob", PresenceChange::Kicked)]
    );
    assert_eq!(
        sim.take_events(carol),
        vec![presence(WALL_START_MS, "bob", PresenceChange::Kicked)]
    );
    assert_eq!(
        sim.take_server_events(),
        vec![ServerEvent::Kicked {
            time_ms: WALL_START_MS,
            name: "bob".to_owned(),
            addr: bob,
        }]
    );
    assert_eq!(listed_names(&sim), ["alice", "carol"]);

    assert_eq!(
        sim.server.kick(now, "bob"),
        Err(ServerError::NoSuchClient {
            name: "bob".to_owned()
        })
    );
    assert_eq!(
        sim.server.kick(now, "nobody"),
        Err(ServerError::NoSuchClient {
            name: "nobody".to_owned()
        })
    );

    // A kick is not a ban: bob may come back.
    sim.join("bob");
    assert_eq!(listed_names(&sim), ["alice", "bob", "carol"]);
}

// Bans ------------------------------------------------------------------------------------

#[test]
fn a_ban_disconnects_everyone_at_the_address_and_refuses_newcomers() {
    let mut sim = default_sim();
    let alice = sim.join("alice");
    let bob = sim.join("bob");
    let carol = sim.join_at(addr([192, 0, 2, 7], 10003), "carol");
    sim.clear_events();

    let localhost: IpNet = "127.0.0.1".parse().expect("an address");
    assert_eq!(sim.server.ban_target("alice"), Ok(localhost));
    assert_eq!(sim.server.ban_target("ALICE"), Ok(localhost));
    assert_eq!(
        sim.server.ban_target("carol"),
        Ok("192.0.2.7".parse().expect("an address"))
    );
    let range = sim.server.ban_target("10.0.0.0/8").expect("a range");
    assert_eq!(range, "10.0.0.0/8".parse().expect("a range"));
    assert_eq!(range.to_string(), "10.0.0.0/8");
    assert_eq!(
        sim.server.ban_target("nobody"),
        Err(ServerError::NoSuchClient {
            name: "nobody".to_owned()
        })
    );

    let (bans, warnings) = BanList::parse("127.0.0.1\n");
    assert!(warnings.is_empty());
    let now = sim.now;
    sim.server.set_ban_list(now, bans);
    sim.drive();

    // Whichever of the two goes first is announced to the other before its own farewell.
    let banned = closed_by_server(DisconnectReason::Banned, "your address was banned");
    let alice_events = sim.take_events(alice);
    let bob_events = sim.take_events(bob);
    assert_eq!(alice_events.last(), Some(&banned));
    assert_eq!(bob_events.last(), Some(&banned));
    let mut heard = [notices(&alice_events), notices(&bob_events)].concat();
    heard.sort();
    assert!(
        heard == ["alice was banned"] || heard == ["bob was banned"],
        "{alice_events:?} {bob_events:?}"
    );
    let mut told = notices(&sim.take_events(carol));
    told.sort();
    assert_eq!(told, ["alice was banned", "bob was banned"]);
    let mut logged: Vec<(String, SocketAddr)> = sim
        .take_server_events()
        .into_iter()
        .map(|event| match event {
            ServerEvent::Banned { name, addr, .. } => (name, addr),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    logged.sort();
    assert_eq!(
        logged,
        [("alice".to_owned(), alice), ("bob".to_owned(), bob)]
    );
    assert_eq!(listed_names(&sim), ["carol"]);

    // A newcomer from the banned address is told why.
    let dave = sim.add_client("dave");
    sim.drive();
    assert_eq!(
        sim.take_events(dave),
        vec![ClientEvent::Closed(CloseReason::Refused(
            RefuseReason::Banned
        ))]
    );
    assert!(matches!(
        sim.take_server_events().as_slice(),
        [ServerEvent::Refused { reason: RefuseReason::Banned, addr, .. }] if *addr == dave
    ));
    // Anything else from a banned address gets no answer at all.
    assert_eq!(sim.inject_frame(alice, &heartbeat_frame(1)), []);
    assert_eq!(sim.inject_frame(alice, &chat_frame(1, 1, "hi")), []);
    assert_eq!(sim.take_events(carol), vec![]);
}

// Strangers and garbage get nothing through -----------------------------------------------

#[test]
fn frames_from_an_unknown_address_get_one_not_joined_and_reach_nobody() {
    let mut sim = default_sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);

    for frame in [
        chat_frame(5, 1, "let me in"),
        heartbeat_frame(5),
        Frame::ToServer(ToServer::Sequenced(envelope(5, 2), Request::List)),
    ] {
        let mark = sim.mark();
        assert_eq!(
            sim.inject_frame(STRANGER, &frame),
            [Frame::ToClient(ToClient::NotJoined { token: 5 })],
            "{frame:?}"
        );
        assert_eq!(
            sim.sent_since(mark).len(),
            2,
            "one datagram in, one out, for {frame:?}"
        );
    }
    assert_eq!(sim.take_events(alice), vec![]);
    assert_eq!(sim.take_events(bob), vec![]);
    assert_eq!(sim.take_server_events(), vec![]);
    assert_eq!(listed_names(&sim), ["alice", "bob"]);
}

#[test]
fn garbage_and_truncated_frames_get_no_reply_and_reach_nobody() {
    let mut sim = default_sim();
    let alice = sim.join("alice");
    sim.clear_events();

    let chat = chat_frame(5, 1, "hello").to_bytes();
    let join = join_frame("mallory").to_bytes();
    let garbage: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\x00\x01\x02 not a frame".to_vec(),
        b"hello\n".to_vec(),                   // plain text, but guests are off
        vec![0xFF],                            // half a magic
        vec![0xFF, b'I'],                      // magic only
        vec![0xFF, b'I', wire::VERSION],       // no kind
        vec![0xFF, b'I', wire::VERSION, 0x7F], // unknown kind
        chat[..chat.len() - 2].to_vec(),       // truncated text
        [chat.as_slice(), b"x"].concat(),      // trailing byte
        join[..100].to_vec(),                  // unpadded join
        vec![0xFF; wire::MAX_DATAGRAM + 1],    // too large
    ];
    for bytes in &garbage {
        let mark = sim.mark();
        assert_eq!(
            sim.inject(STRANGER, bytes),
            Vec::<Vec<u8>>::new(),
            "{bytes:?}"
        );
        assert_eq!(sim.sent_since(mark).len(), 1, "nothing sent for {bytes:?}");
    }
    // Garbage from a joined client's address is dropped too, without ending its session.
    for bytes in &garbage {
        assert_eq!(sim.inject(alice, bytes), Vec::<Vec<u8>>::new(), "{bytes:?}");
    }
    assert_eq!(sim.take_events(alice), vec![]);
    assert_eq!(listed_names(&sim), ["alice"]);
}

#[test]
fn a_malformed_datagram_is_logged_once_per_address_per_minute() {
    let mut sim = default_sim();
    sim.join("alice");
    sim.clear_events();
    let garbage = b"\xFFI\x01\x7F";

    sim.inject(STRANGER, garbage);
    let logged = sim.take_server_events();
    assert!(
        matches!(logged.as_slice(), [ServerEvent::Malformed { addr, .. }] if *addr == STRANGER),
        "{logged:?}"
    );
    sim.inject(STRANGER, b"more garbage");
    sim.advance_in_steps(Duration::from_secs(30), Duration::from_secs(1));
    sim.inject(STRANGER, garbage);
    assert_eq!(
        sim.take_server_events(),
        vec![],
        "at most once a minute per address"
    );

    // Another address has its own allowance.
    let other = addr([127, 0, 0, 1], 20002);
    sim.inject(other, garbage);
    assert_eq!(sim.take_server_events().len(), 1);

    sim.advance_in_steps(
        server::MALFORMED_LOG_PERIOD - Duration::from_secs(30),
        Duration::from_secs(1),
    );
    sim.inject(STRANGER, garbage);
    let logged: Vec<String> = server_log(&mut sim);
    assert_eq!(logged.len(), 2, "{logged:?}");
    // The two held back are summed up when the minute ends, and it is logged again.
    assert!(
        logged[0].ends_with(&format!(
            "ignored 2 more malformed datagrams from {STRANGER} in the last minute"
        )),
        "{logged:?}"
    );
    assert!(
        logged[1].contains("ignored a malformed datagram from"),
        "a minute later it is logged again: {logged:?}"
    );
}

// Nobody speaks as someone else -----------------------------------------------------------

#[test]
fn nobody_can_speak_as_someone_else() {
    let mut sim = default_sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);

    // Chat from an address that is not alice's reaches nobody, whatever it claims.
    let fake = chat_frame(12345, 1, "alice: send me your password");
    assert_eq!(
        sim.inject_frame(STRANGER, &fake),
        [Frame::ToClient(ToClient::NotJoined { token: 12345 })]
    );
    // Nor does a chat forged with alice's own address, without her session's token.
    let alice_token = sim.token(alice);
    let spoofed = chat_frame(alice_token ^ 1, 1, "I quit");
    assert_eq!(
        sim.inject_frame(alice, &spoofed),
        [Frame::ToClient(ToClient::NotJoined {
            token: alice_token ^ 1
        })]
    );
    // A server-only message frame naming alice is not relayed either.
    let forged = Frame::ToClient(ToClient::Sequenced(
        envelope(0, 1),
        Delivery::Message {
            seq: 1,
            time_ms: 0,
            from: "alice".to_owned(),
            text: "I am alice".to_owned(),
        },
    ));
    // (Whether it is answered is the business of the loop tests below; it must not be relayed.)
    sim.inject_frame(STRANGER, &forged);
    // Joining under alice's name is refused.
    assert_eq!(
        forge_join(&mut sim, STRANGER, "ALICE"),
        [refused(RefuseReason::NameTaken)]
    );
    assert_eq!(messages(&sim.take_events(bob)), vec![]);

    // Once joined as mallory, every message carries the registered name, and a forged
    // message frame from a joined address is not relayed.
    let replies = forge_join(&mut sim, STRANGER, "mallory");
    let Frame::ToClient(ToClient::Welcome { token, .. }) = replies[0] else {
        panic!("{replies:?}");
    };
    sim.inject_frame(STRANGER, &forged);
    sim.inject_frame(
        STRANGER,
        &chat_frame(token, 1, "alice: send me your password"),
    );
    assert_eq!(
        messages(&sim.take_events(bob)),
        [(
            "mallory".to_owned(),
            "alice: send me your password".to_owned(),
            false
        )]
    );
    assert_eq!(
        messages(&sim.take_events(alice)),
        [(
            "mallory".to_owned(),
            "alice: send me your password".to_owned(),
            false
        )]
    );
}

// No amplification: a stranger never gets more bytes than it sent -------------------------

/// Sends `bytes` from a fresh address that never joined and checks that the server sends
/// back no more bytes than it received; returns how many it sent back.
fn reply_bytes(sim: &mut Sim, from: SocketAddr, bytes: &[u8]) -> usize {
    let sent: usize = sim.inject(from, bytes).iter().map(Vec::len).sum();
    assert!(
        sent <= bytes.len(),
        "{} bytes in from {from}, {sent} bytes out: amplification",
        bytes.len()
    );
    sent
}

#[test]
fn the_server_never_sends_an_unjoined_address_more_than_it_received() {
    let mut sim = Sim::new(ServerConfig {
        max_clients: 3,
        ..ServerConfig::default()
    });
    let alice = sim.join("alice");
    sim.clear_events();
    let mut port = 30000;
    let mut stranger = || {
        port += 1;
        addr([127, 0, 0, 1], port)
    };
    let join = |name: &str| join_frame(name).to_bytes();

    // A join without a cookie, even the widest: one 20-byte challenge, no state, no notice.
    let widest = "𝓪".repeat(32);
    assert_eq!(widest.len(), wire::MAX_NAME_BYTES);
    for name in ["eve", widest.as_str(), "ALICE", "server"] {
        assert_eq!(reply_bytes(&mut sim, stranger(), &join(name)), 20, "{name}");
    }
    // A wrong cookie is challenged again, however often it is tried.
    for cookie in [1, 2, u64::MAX] {
        let forged = join_with_cookie("eve", cookie).to_bytes();
        assert_eq!(reply_bytes(&mut sim, stranger(), &forged), 20);
    }
    assert_eq!(listed_names(&sim), ["alice"]);
    assert_eq!(sim.take_events(alice).len(), 0, "nobody was announced");

    // Frames that need a session get a 12-byte NotJoined (or LeaveAck) echoing the token.
    let chat = chat_frame(9, 1, "").to_bytes();
    assert_eq!(reply_bytes(&mut sim, stranger(), &chat), 12);
    for frame in [
        heartbeat_frame(9),
        Frame::ToServer(ToServer::ClientAck {
            token: 9,
            acks: Acks::default(),
        }),
        Frame::ToServer(ToServer::Sequenced(envelope(9, 1), Request::List)),
        Frame::ToServer(ToServer::Sequenced(envelope(9, 2), Request::Leave)),
    ] {
        assert_eq!(
            reply_bytes(&mut sim, stranger(), &frame.to_bytes()),
            12,
            "{frame:?}"
        );
    }
    // Another protocol version: only a join (which carries the nonce to repeat) is refused.
    let other_version = wire::VERSION + 1;
    assert_eq!(
        reply_bytes(&mut sim, stranger(), &[0xFF, b'I', other_version, 1]),
        0
    );
    // Found by tests/sansio/properties.rs: a bare header and nonce (12 bytes) of another version
    // used to get the 13-byte refusal. A real join has a name after the nonce.
    let mut bare = vec![0xFF, b'I', other_version, 1];
    bare.extend_from_slice(&7u64.to_be_bytes());
    assert_eq!(reply_bytes(&mut sim, stranger(), &bare), 0);
    bare.push(0);
    assert_eq!(reply_bytes(&mut sim, stranger(), &bare), 13);
    let mut future_join = join("alice2");
    future_join[2] = other_version;
    assert_eq!(reply_bytes(&mut sim, stranger(), &future_join), 13);
    let replies = sim.inject(stranger(), &future_join);
    assert_eq!(
        Frame::decode(&replies[0]),
        Ok(refused(RefuseReason::VersionUnsupported))
    );

    // Once the address is proven, refusals are 13 bytes: taken, invalid, server full.
    assert_eq!(
        forge_join(&mut sim, stranger(), "ALICE"),
        [refused(RefuseReason::NameTaken)]
    );
    assert_eq!(
        forge_join(&mut sim, stranger(), "server"),
        [refused(RefuseReason::NameInvalid)]
    );
    assert!(matches!(
        forge_join(&mut sim, stranger(), "bob")[0],
        Frame::ToClient(ToClient::Welcome { .. })
    ));
    assert!(matches!(
        forge_join(&mut sim, stranger(), &widest)[0],
        Frame::ToClient(ToClient::Welcome { .. })
    ));
    assert_eq!(
        forge_join(&mut sim, stranger(), "zed"),
        [refused(RefuseReason::ServerFull)]
    );

    // A banned address: its join is refused outright (13 bytes), anything else ignored.
    let mut sim = Sim::with_bans(ServerConfig::default(), BanList::parse("127.0.0.0/8").0);
    assert_eq!(reply_bytes(&mut sim, stranger(), &join("eve")), 13);
    assert_eq!(reply_bytes(&mut sim, stranger(), &chat), 0);
}

#[test]
fn a_join_forged_with_a_victims_address_sends_the_victim_nothing_more() {
    let mut sim = default_sim();
    let alice = sim.join("alice");
    let victim = addr([192, 0, 2, 80], 5353);
    // The attacker cannot see the challenge, so it can only send joins without a cookie
    // (or with guessed ones).
    for guess in [0, 1, 0xDEAD_BEEF] {
        sim.inject_frame(victim, &join_with_cookie("victim", guess));
    }
    let mark = sim.mark();
    for i in 0..20 {
        sim.send_text(alice, &format!("news {i}"));
    }
    sim.run_for(Duration::from_secs(5));
    assert!(
        sim.sent_since(mark).iter().all(|d| d.to != victim),
        "the victim got broadcasts"
    );
    assert_eq!(listed_names(&sim), ["alice"]);
}
