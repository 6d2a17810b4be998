//! Who is in the room: joining (who is online comes first, everyone else is told), chat
//! stamped with the server's time and the operator's lines, one holder per name, invalid
//! names in raw join frames, leaving (and a lost leave acknowledgement), and silent or
//! suspended clients timing out.

use super::*;
use icq::proto::chat::ChatEvent;

// Joining: who is online comes first, everyone else is told -------------------------------

#[test]
fn a_client_joins_sees_who_is_online_first_and_everyone_else_is_told() {
    let mut sim = default_sim();
    let alice = sim.add_client("alice");
    sim.drive();

    assert_eq!(
        sim.take_events(alice),
        vec![
            ClientEvent::Joined {
                name: "alice".to_owned(),
                server: SERVER_ADDR,
            },
            online(WALL_START_MS, &["alice"]),
        ]
    );
    assert_eq!(
        sim.take_server_events(),
        vec![ServerEvent::Joined {
            time_ms: WALL_START_MS,
            name: "alice".to_owned(),
            addr: alice,
            guest: false,
        }]
    );
    // The join is padded, so the challenge and the welcome sent back are never larger.
    let join = &sim.wire[0];
    assert_eq!((join.from, join.to), (alice, SERVER_ADDR));
    assert_eq!(join.bytes.len(), wire::JOIN_MIN_LEN);

    sim.advance(ms(1500));
    let bob = sim.join("bob");
    let at = WALL_START_MS + 1500;
    assert_eq!(
        sim.take_events(bob),
        vec![
            ClientEvent::Joined {
                name: "bob".to_owned(),
                server: SERVER_ADDR,
            },
            // Who is online comes before anything else.
            online(at, &["alice", "bob"]),
        ]
    );
    assert_eq!(
        sim.take_events(alice),
        vec![presence(at, "bob", PresenceChange::Joined)]
    );
    let listed = sim.server.clients(sim.now);
    assert_eq!(listed.len(), 2);
    assert_eq!((listed[0].name.as_str(), listed[0].addr), ("alice", alice));
    assert_eq!(listed[0].connected_for, ms(1500));
    assert_eq!((listed[1].name.as_str(), listed[1].addr), ("bob", bob));
    assert_eq!(listed[1].connected_for, Duration::ZERO);
    assert!(!listed[0].guest && !listed[1].guest);
    assert_eq!(sim.client(bob).name(), "bob");
    assert_eq!(sim.client(bob).server(), SERVER_ADDR);
}

// Chat stamped with the server's time, and the operator's lines ---------------------------

#[test]
fn three_clients_each_see_all_messages_stamped_with_the_server_time() {
    let mut sim = default_sim();
    let [alice, bob, carol] = sim.join_settled(["alice", "bob", "carol"]);

    sim.advance(ms(250));
    sim.send_text(alice, "hello from alice");
    sim.advance(ms(250));
    sim.send_text(bob, "hi alice");
    sim.advance(ms(250));
    sim.send_text(carol, "hey both");

    let said = [
        (WALL_START_MS + 250, "alice", "hello from alice"),
        (WALL_START_MS + 500, "bob", "hi alice"),
        (WALL_START_MS + 750, "carol", "hey both"),
    ];
    for (at, me) in [(alice, "alice"), (bob, "bob"), (carol, "carol")] {
        let expected: Vec<ClientEvent> = said
            .iter()
            .map(|&(time_ms, from, text)| message(time_ms, from, text, from == me))
            .collect();
        assert_eq!(sim.take_events(at), expected, "as seen by {me}");
    }
    let logged: Vec<ServerEvent> = said
        .iter()
        .map(|&(time_ms, from, text)| ServerEvent::Chat {
            time_ms,
            from: from.to_owned(),
            text: text.to_owned(),
        })
        .collect();
    assert_eq!(sim.take_server_events(), logged);
}

#[test]
fn the_operator_speaks_as_server_and_blank_lines_are_not_sent() {
    let mut sim = default_sim();
    let alice = sim.join("alice");
    sim.clear_events();

    let now = sim.now;
    sim.server.say(now, "   ");
    sim.server.say(now, "maintenance at noon");
    sim.drive();

    assert_eq!(
        sim.take_events(alice),
        vec![message(
            WALL_START_MS,
            "server",
            "maintenance at noon",
            false
        )]
    );
}

// One holder per name: other cases and look-alikes ----------------------------------------

#[test]
fn a_name_taken_in_another_case_is_refused() {
    let mut sim = default_sim();
    let first = sim.join("Alice");
    sim.clear_events();

    let second = sim.add_client("alice");
    sim.drive();

    assert_eq!(
        sim.take_events(second),
        vec![ClientEvent::Closed(CloseReason::Refused(
            RefuseReason::NameTaken
        ))]
    );
    assert!(sim.client(second).is_closed());
    assert_eq!(
        sim.take_server_events(),
        vec![ServerEvent::Refused {
            time_ms: WALL_START_MS,
            name: "alice".to_owned(),
            addr: second,
            reason: RefuseReason::NameTaken,
        }]
    );
    assert_eq!(
        sim.take_events(first),
        vec![],
        "a refused join is not announced"
    );
    assert_eq!(listed_names(&sim), ["Alice"]);
}

/// `alice` in Cyrillic letters (а U+0430, palochka ӏ U+04CF, і U+0456, с U+0441, е U+0435):
/// one script, so a valid name, but it looks exactly like `alice`.
const CYRILLIC_ALICE: &str = "\u{430}\u{4CF}\u{456}\u{441}\u{435}";

#[test]
fn a_look_alike_of_a_name_online_is_taken_and_mixed_scripts_are_invalid() {
    let mut sim = default_sim();
    let alice = sim.join("alice");
    sim.clear_events();

    let twin = sim.add_client(CYRILLIC_ALICE);
    sim.drive();
    assert_eq!(
        sim.take_events(twin),
        vec![ClientEvent::Closed(CloseReason::Refused(
            RefuseReason::NameTaken
        ))]
    );
    // A Cyrillic а among Latin letters: refused as invalid, whoever is online.
    let mixed = sim.add_client("\u{430}lice");
    sim.drive();
    assert_eq!(
        sim.take_events(mixed),
        vec![ClientEvent::Closed(CloseReason::Refused(
            RefuseReason::NameInvalid
        ))]
    );
    assert_eq!(listed_names(&sim), ["alice"]);
    // A private message or a kick addressed to the look-alike reaches the one holder.
    let now = sim.now;
    assert!(sim.server.kick(now, CYRILLIC_ALICE).is_ok());
    sim.drive();
    assert!(sim.client(alice).is_closed());
    // Once alice is gone, the Cyrillic name is free.
    let later = sim.join(CYRILLIC_ALICE);
    assert_eq!(listed_names(&sim), [CYRILLIC_ALICE]);
    assert!(sim.client(later).is_joined());
}

// Invalid names in raw join frames --------------------------------------------------------

#[test]
fn the_server_refuses_invalid_names_sent_in_raw_join_frames() {
    let mut sim = default_sim();
    let alice = sim.join("alice");
    sim.clear_events();

    let invalid = [
        "server".to_owned(),
        "SERVER".to_owned(),
        "a b".to_owned(),
        "a".repeat(33),
        "guest-x".to_owned(),
        "Guest-X".to_owned(),
        String::new(),
        "tab\there".to_owned(),
        "rtl\u{202E}evil".to_owned(),
        "bell\u{7}".to_owned(),
    ];
    for name in &invalid {
        // Refusals are logged once per address per minute (then summed up): one a minute.
        sim.advance_in_steps(Duration::from_secs(61), Duration::from_secs(1));
        sim.take_server_events();
        let mark = sim.mark();
        let replies = forge_join(&mut sim, STRANGER, name);
        assert_eq!(
            replies,
            [refused(RefuseReason::NameInvalid)],
            "name {name:?}"
        );
        assert_eq!(
            sim.sent_since(mark).len(),
            4,
            "only the join, the challenge, the join with its cookie and the refusal, for \
             {name:?}"
        );
        let events = sim.take_server_events();
        assert!(
            matches!(
                events.as_slice(),
                [ServerEvent::Refused {
                    addr,
                    reason: RefuseReason::NameInvalid,
                    ..
                }] if *addr == STRANGER
            ),
            "name {name:?}: {events:?}"
        );
    }
    assert_eq!(sim.take_events(alice), vec![]);
    assert_eq!(listed_names(&sim), ["alice"]);

    // The longest valid name is accepted: the limit is 32 characters, not fewer.
    let longest = "b".repeat(32);
    let replies = forge_join(&mut sim, STRANGER, &longest);
    assert!(
        matches!(&replies[0], Frame::ToClient(ToClient::Welcome { name, .. }) if *name == longest),
        "{replies:?}"
    );
}

// Leaving, and a lost leave acknowledgement -----------------------------------------------

#[test]
fn a_client_that_leaves_is_announced_forgotten_and_acknowledged_again() {
    let mut sim = default_sim();
    let [alice, bob, carol] = sim.join_settled(["alice", "bob", "carol"]);
    sim.advance(ms(100));

    let bob_token = sim.token(bob);
    let mark = sim.mark();
    sim.leave(bob);

    assert_eq!(
        sim.take_events(bob),
        vec![ClientEvent::Closed(CloseReason::Left)]
    );
    assert!(sim.client(bob).is_closed());
    let at = WALL_START_MS + 100;
    let left = presence(at, "bob", PresenceChange::Left);
    assert_eq!(sim.take_events(alice), vec![left.clone()]);
    assert_eq!(sim.take_events(carol), vec![left]);
    assert_eq!(
        sim.take_server_events(),
        vec![ServerEvent::Left {
            time_ms: at,
            name: "bob".to_owned(),
            addr: bob,
        }]
    );
    assert_eq!(listed_names(&sim), ["alice", "carol"]);
    let leaves = sim
        .sent_since(mark)
        .iter()
        .filter(|d| {
            d.from == bob
                && matches!(
                    d.frame(),
                    Some(Frame::ToServer(ToServer::Sequenced(_, Request::Leave)))
                )
        })
        .count();
    assert_eq!(leaves, 1, "acknowledged at once, so not repeated");

    // A copy of the leave arriving late is acknowledged, and changes nothing.
    let mark = sim.mark();
    let late_leave = Frame::ToServer(ToServer::Sequenced(envelope(bob_token, 1), Request::Leave));
    assert_eq!(
        sim.inject_frame(bob, &late_leave),
        [Frame::ToClient(ToClient::LeaveAck { token: bob_token })]
    );
    assert_eq!(sim.sent_since(mark).len(), 2);
    assert_eq!(sim.take_server_events(), vec![]);
    assert_eq!(sim.take_events(alice), vec![]);
}

#[test]
fn a_client_whose_leave_ack_is_lost_retries_and_still_closes() {
    let mut sim = default_sim();
    let alice = sim.join("alice");
    sim.clear_events();
    sim.muted.insert(SERVER_ADDR);

    let mark = sim.mark();
    sim.leave(alice);
    sim.advance_in_steps(client::LEAVE_TIMEOUT - ms(1), ms(50));
    assert!(!sim.client(alice).is_closed(), "still waiting for the ack");
    sim.advance(ms(1));

    assert_eq!(
        sim.take_events(alice),
        vec![ClientEvent::Closed(CloseReason::Left)]
    );
    let leaves = sim
        .sent_since(mark)
        .iter()
        .filter(|d| d.from == alice)
        .count();
    // Sent at 0, 200, 600 and 1400 ms (the wait doubles each time), and perhaps once more
    // as the deadline arrives.
    assert!((4..=5).contains(&leaves), "{leaves} leaves");
    assert_eq!(listed_names(&sim), Vec::<String>::new());
}

// Silent and suspended clients time out ---------------------------------------------------

fn fast_timeout_config() -> ServerConfig {
    ServerConfig {
        timeout: ms(300),
        ..ServerConfig::default()
    }
}

#[test]
fn a_silent_client_is_evicted_after_the_timeout_and_not_before() {
    let config = fast_timeout_config();
    assert_eq!(config.heartbeat_interval(), ms(100));
    let mut sim = Sim::new(config);
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    // Bob still runs and hears the server, but nothing he sends arrives.
    sim.muted.insert(bob);

    sim.advance_in_steps(ms(290), ms(10));
    assert_eq!(
        listed_names(&sim),
        ["alice", "bob"],
        "not evicted before the timeout"
    );
    assert_eq!(notices(sim.events(alice)), Vec::<String>::new());

    sim.advance_in_steps(ms(110), ms(10));
    assert_eq!(listed_names(&sim), ["alice"]);
    assert_eq!(notices(sim.events(alice)), ["bob timed out"]);
    let events = sim.take_server_events();
    let [
        ServerEvent::TimedOut {
            time_ms,
            name,
            addr,
        },
    ] = events.as_slice()
    else {
        panic!("expected one TimedOut event, got {events:?}");
    };
    assert_eq!((name.as_str(), *addr), ("bob", bob));
    // Evicted between the timeout and the timeout plus one sweep interval (75 ms here).
    let after = time_ms - WALL_START_MS;
    assert!(
        (300..=375).contains(&after),
        "evicted {after} ms after its last datagram"
    );
    // Bob hears he was timed out and, being alive, joins again by himself.
    assert_eq!(sim.events(bob).last(), Some(&ClientEvent::Rejoining));
}

#[test]
fn a_suspended_client_is_evicted_and_rejoins_when_it_wakes_up() {
    let mut sim = Sim::new(fast_timeout_config());
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    sim.frozen.insert(bob);

    sim.advance_in_steps(ms(500), ms(10));
    assert_eq!(listed_names(&sim), ["alice"]);
    assert_eq!(notices(sim.events(alice)), ["bob timed out"]);
    assert_eq!(sim.events(bob), [], "a suspended process sees nothing");
    sim.send_text(alice, "said while bob slept");

    // Its next heartbeat meets a server that forgot it: it joins again by itself.
    sim.frozen.remove(&bob);
    sim.advance(ms(10));
    let bob_events = sim.take_events(bob);
    assert!(
        bob_events.contains(&ClientEvent::Rejoining),
        "{bob_events:?}"
    );
    assert!(
        bob_events.contains(&ClientEvent::Rejoined {
            name: "bob".to_owned(),
            queued: 0,
        }),
        "{bob_events:?}"
    );
    // And he is shown what was said meanwhile, from the history, rather than nothing.
    let shown: Vec<&str> = bob_events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Chat(ChatEvent::HistoryLine { from, text, .. }) if from == "alice" => {
                Some(text.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(shown, ["said while bob slept"], "{bob_events:?}");
    assert!(
        bob_events
            .iter()
            .any(|event| matches!(event, ClientEvent::HistoryEnd { .. })),
        "{bob_events:?}"
    );
    assert_eq!(listed_names(&sim), ["alice", "bob"]);
}

#[test]
fn a_driven_idle_client_is_never_evicted_thanks_to_heartbeats() {
    let mut sim = Sim::new(fast_timeout_config());
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    let mark = sim.mark();

    // Ten timeouts, in steps, then ten more stopping exactly at every deadline.
    sim.advance_in_steps(ms(3000), ms(10));
    sim.run_for(ms(3000));

    assert_eq!(listed_names(&sim), ["alice", "bob"]);
    assert_eq!(sim.take_server_events(), vec![]);
    assert_eq!(
        sim.take_events(alice),
        vec![],
        "no silence reported, no eviction"
    );
    assert_eq!(sim.take_events(bob), vec![]);
    let heartbeats = sim
        .sent_since(mark)
        .iter()
        .filter(|d| {
            d.from == alice
                && matches!(d.frame(), Some(Frame::ToServer(ToServer::Heartbeat { .. })))
        })
        .count();
    // One per heartbeat interval (100 ms) over 6 s.
    assert!((59..=60).contains(&heartbeats), "{heartbeats} heartbeats");
    let acks = sim
        .sent_since(mark)
        .iter()
        .filter(|d| {
            d.to == alice && matches!(d.frame(), Some(Frame::ToClient(ToClient::ServerAck { .. })))
        })
        .count();
    assert_eq!(acks, heartbeats);
}

#[test]
fn a_client_notices_a_silent_server_and_its_return() {
    let mut sim = Sim::new(fast_timeout_config());
    let alice = sim.join("alice");
    sim.clear_events();
    sim.muted.insert(SERVER_ADDR);

    sim.advance_in_steps(ms(290), ms(10));
    assert_eq!(sim.events(alice), []);
    sim.advance_in_steps(ms(20), ms(10));
    assert_eq!(
        sim.take_events(alice),
        vec![ClientEvent::ServerSilent {
            silent_for: ms(300)
        }]
    );

    sim.muted.remove(&SERVER_ADDR);
    sim.advance_in_steps(ms(100), ms(10));
    assert_eq!(sim.take_events(alice), vec![ClientEvent::ServerBack]);
}

// Heartbeats that scale: each newcomer's interval, and its own timeout ----------------------

#[test]
fn the_heartbeat_interval_grows_with_the_sessions_beyond_the_budget_and_no_sooner() {
    let config = ServerConfig::default();
    assert_eq!(server::HEARTBEAT_BUDGET, 500);
    // A small room, and up to 5 000 clients at the default timeout: a third of it.
    for sessions in [1, 2, 100, 5_000] {
        assert_eq!(config.heartbeat_for(sessions), Duration::from_secs(10));
    }
    assert_eq!(config.heartbeat_for(10_000), Duration::from_secs(20));
    assert_eq!(config.heartbeat_for(100_000), Duration::from_secs(200));
    // Evicted after the timeout, or three of its own heartbeats if that is longer.
    assert_eq!(
        config.timeout_for(Duration::from_secs(10)),
        Duration::from_secs(30)
    );
    assert_eq!(
        config.timeout_for(Duration::from_secs(200)),
        Duration::from_secs(600)
    );
    let slow = ServerConfig {
        timeout: Duration::from_secs(90),
        ..ServerConfig::default()
    };
    assert_eq!(slow.heartbeat_for(15_000), Duration::from_secs(30));
    assert_eq!(slow.heartbeat_for(100_000), Duration::from_secs(200));
    assert_eq!(
        slow.timeout_for(Duration::from_secs(30)),
        Duration::from_secs(90)
    );
}

/// The `heartbeat_ms` of the welcome among `replies`.
fn welcomed_heartbeat(replies: &[Frame]) -> u32 {
    replies
        .iter()
        .find_map(|frame| match frame {
            Frame::ToClient(ToClient::Welcome { heartbeat_ms, .. }) => Some(*heartbeat_ms),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no welcome in {replies:?}"))
}

/// Whether the session at `at` is still served.
fn is_served(sim: &Sim, at: SocketAddr) -> bool {
    sim.server.clients(sim.now).iter().any(|c| c.addr == at)
}

#[test]
fn each_session_is_told_its_interval_at_join_and_evicted_after_three_of_them() {
    // At a 300 ms timeout the budget allows 2 ms per session: from the 51st, newcomers
    // heartbeat less often than every 100 ms.
    let mut sim = Sim::new(ServerConfig {
        max_per_ip: None,
        ..fast_timeout_config()
    });
    let early = addr([10, 0, 0, 1], 5000);
    assert_eq!(
        welcomed_heartbeat(&forge_join(&mut sim, early, "early")),
        100
    );
    for i in 0..149 {
        sim.join(&format!("c{i}"));
    }
    let late = addr([10, 0, 0, 2], 5000);
    let joined_late = sim.now;
    let replies = forge_join(&mut sim, late, "late");
    assert_eq!(
        welcomed_heartbeat(&replies),
        302,
        "151 sessions with this one"
    );
    // A repeated join (its welcome was lost) is told the same, though more joined since.
    sim.join("c149");
    let repeat = sim.inject_frame(late, &join_frame("late"));
    let [Frame::ToClient(ToClient::Challenge { cookie, .. })] = repeat[..] else {
        panic!("challenged, got {repeat:?}");
    };
    let again = sim.inject_frame(late, &join_with_cookie("late", cookie));
    assert_eq!(welcomed_heartbeat(&again), 302);

    // Neither forged session ever sends again. The early one is evicted after the timeout
    // (300 ms, as the tests above time), the late one after three of its own heartbeats
    // (906 ms), within a sweep interval (75 ms) after.
    let evicted_at = |sim: &mut Sim, at: SocketAddr| {
        // Bounded: a session that is never evicted fails the test instead of hanging it.
        let give_up = sim.now + ms(2_000);
        while is_served(sim, at) {
            assert!(sim.now < give_up, "{at} still served 2 s after its join");
            sim.advance(ms(5));
        }
        sim.now
    };
    let late_gone = evicted_at(&mut sim, late);
    let late_silent = late_gone - joined_late;
    assert!(
        (ms(906)..=ms(906 + 75 + 5)).contains(&late_silent),
        "evicted {late_silent:?} after its join"
    );
    assert!(!is_served(&sim, early));
    // The real clients heartbeat by what they were told, and none was evicted.
    assert_eq!(sim.server.clients(sim.now).len(), 150);
}

/// When each of `at`'s heartbeats since `mark` was sent, and the `heartbeat_ms` of each
/// `ServerAck` it was sent, in order.
fn heartbeats_and_intervals(
    sim: &Sim,
    mark: usize,
    at: SocketAddr,
) -> (Vec<std::time::Instant>, Vec<u32>) {
    let sent = sim.sent_since(mark);
    let beats = sent
        .iter()
        .filter(|d| {
            d.from == at && matches!(d.frame(), Some(Frame::ToServer(ToServer::Heartbeat { .. })))
        })
        .map(|d| d.sent_at)
        .collect();
    let told = sent
        .iter()
        .filter(|d| d.to == at)
        .filter_map(|d| match d.frame() {
            Some(Frame::ToClient(ToClient::ServerAck { heartbeat_ms, .. })) => Some(heartbeat_ms),
            _ => None,
        })
        .collect();
    (beats, told)
}

#[test]
fn a_session_s_interval_lengthens_as_the_server_fills_and_never_shortens() {
    // At a 300 ms timeout the budget allows 2 ms per session: 100 sessions heartbeat every
    // 200 ms, not 100.
    let mut sim = Sim::new(ServerConfig {
        max_per_ip: None,
        ..fast_timeout_config()
    });
    let alice = sim.join("alice");
    let mark = sim.mark();
    sim.advance_in_steps(ms(250), ms(10));
    let (beats, told) = heartbeats_and_intervals(&sim, mark, alice);
    assert_eq!(told, [100, 100], "alone: a third of the timeout");
    assert_eq!(beats.len(), 2);

    // 99 sessions join that will never send again: the server counts them at once,
    // alice hears of it at her next heartbeat (the presence batches she acknowledges
    // meanwhile put it off: a `ClientAck` resets her heartbeat clock).
    for i in 0..99u16 {
        forge_join(
            &mut sim,
            addr([10, 0, 1, 1], 5000 + i),
            &format!("crowd{i}"),
        );
    }
    let mark = sim.mark();
    sim.advance_in_steps(ms(200), ms(5));
    let (_, told) = heartbeats_and_intervals(&sim, mark, alice);
    assert_eq!(told, [200], "100 sessions served");

    // The crowd is evicted (after 300–375 ms of silence) and she is alone again; she keeps
    // heartbeating every 200 ms.
    let give_up = sim.now + ms(1_000);
    while sim.server.clients(sim.now).len() > 1 {
        assert!(
            sim.now < give_up,
            "the crowd still served 1 s after it went silent"
        );
        sim.advance(ms(5));
    }
    sim.advance_in_steps(ms(100), ms(5));
    let mark = sim.mark();
    sim.advance_in_steps(ms(1_000), ms(5));
    let (beats, told) = heartbeats_and_intervals(&sim, mark, alice);
    assert_eq!(told, [200; 5], "never shorter");
    for pair in beats.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (ms(200)..=ms(205)).contains(&gap),
            "heartbeats {gap:?} apart"
        );
    }

    // Judged by her longer interval: silent, she is evicted after three of them (600 ms),
    // not after the timeout (300 ms).
    sim.muted.insert(alice);
    let last_heard = *beats.last().expect("heartbeats");
    let give_up = sim.now + ms(2_000);
    while is_served(&sim, alice) {
        assert!(
            sim.now < give_up,
            "alice still served 2 s after her last heartbeat"
        );
        sim.advance(ms(5));
    }
    let silent = sim.now - last_heard;
    assert!(
        (ms(600)..=ms(600 + 75 + 5)).contains(&silent),
        "evicted after {silent:?} of silence"
    );
}
