//! The conversational commands on the sans-IO cores (`sim::room`): `/msg`, `/me`, `/nick`,
//! `/away` and `/back`, and what each party sees.
//!
//! This file owns who sees what for those commands. The parser's side is in
//! `command.rs`'s unit tests; the real binaries' side in `e2e.rs`.

use std::net::SocketAddr;

use icq::client::ClientEvent;
use icq::proto::chat::ChatEvent;
use icq::server::{ServerConfig, ServerEvent};
use icq::wire::RosterEntry;

use crate::sim::privates;
use crate::sim::room::{Sim, messages, notices};

fn sim() -> Sim {
    Sim::new(ServerConfig::default())
}

fn roster(sim: &mut Sim, at: std::net::SocketAddr) -> Vec<RosterEntry> {
    sim.take_events(at);
    sim.request_list(at);
    sim.take_events(at)
        .into_iter()
        .flat_map(|e| match e {
            ClientEvent::Roster { entries, .. } => entries,
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_private_message_reaches_only_its_recipient_and_its_sender() {
    let mut sim = sim();
    let [alice, bob, carol] = sim.join_settled(["alice", "bob", "carol"]);

    let now = sim.now;
    sim.client_mut(alice)
        .send_private(now, "BOB", "the password is swordfish");
    sim.drive();

    let expected = |own| {
        vec![(
            "alice".to_owned(),
            "bob".to_owned(),
            "the password is swordfish".to_owned(),
            own,
        )]
    };
    assert_eq!(privates(sim.events(bob)), expected(false));
    assert_eq!(privates(sim.events(alice)), expected(true));
    assert_eq!(sim.events(carol), [], "carol sees nothing at all");
    // The operator's log shows it, marked private.
    assert!(matches!(
        sim.take_server_events().as_slice(),
        [ServerEvent::Private { from, to, .. }] if from == "alice" && to == "bob"
    ));
}

#[test]
fn a_private_message_to_nobody_is_reported_to_the_sender_only() {
    let mut sim = sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    let now = sim.now;
    sim.client_mut(alice).send_private(now, "zed", "hello?");
    sim.drive();
    assert_eq!(
        notices(sim.events(alice)),
        ["not delivered: no one called zed is online (see /list)"]
    );
    assert_eq!(sim.events(bob), []);
}

#[test]
fn the_operator_can_message_one_client_privately() {
    let mut sim = sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    let now = sim.now;
    sim.server
        .say_privately(now, "alice", "please stop")
        .expect("alice is online");
    sim.drive();
    assert_eq!(
        privates(sim.events(alice)),
        [(
            "server".to_owned(),
            "alice".to_owned(),
            "please stop".to_owned(),
            false
        )]
    );
    assert_eq!(sim.events(bob), []);
    assert!(sim.server.say_privately(now, "zed", "hi").is_err());
}

#[test]
fn an_action_is_shown_to_everyone() {
    let mut sim = sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    let now = sim.now;
    sim.client_mut(alice).send_action(now, "waves");
    sim.drive();
    for (at, own) in [(alice, true), (bob, false)] {
        assert!(
            matches!(
                sim.events(at),
                [ClientEvent::Chat(ChatEvent::Action { from, text, own: o, .. })]
                    if from == "alice" && text == "waves" && *o == own
            ),
            "{:?}",
            sim.events(at)
        );
    }
}

#[test]
fn nick_renames_announces_and_keeps_names_unique() {
    let mut sim = sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);

    let now = sim.now;
    sim.client_mut(alice).rename(now, "Alicia");
    sim.drive();
    assert!(sim.events(alice).contains(&ClientEvent::Renamed {
        name: "Alicia".to_owned()
    }));
    assert_eq!(notices(sim.events(bob)), ["alice is now known as Alicia"]);
    assert_eq!(sim.client(alice).name(), "Alicia");
    sim.clear_events();

    // Her messages now carry the new name, and she still recognizes them as her own.
    sim.send_text(alice, "hi");
    assert_eq!(
        messages(sim.events(alice)),
        [("Alicia".to_owned(), "hi".to_owned(), true)]
    );
    // The old name is free again; the new one is taken, case-insensitively.
    let now = sim.now;
    sim.client_mut(bob).rename(now, "ALICIA");
    sim.drive();
    assert_eq!(notices(sim.events(bob)), ["cannot rename: ALICIA is taken"]);
    sim.client_mut(bob).rename(now, "server");
    sim.drive();
    assert!(
        notices(sim.events(bob))
            .last()
            .is_some_and(|n| n.starts_with("cannot rename to server:"))
    );
    sim.client_mut(bob).rename(now, "alice");
    sim.drive();
    let names: Vec<String> = sim
        .server
        .clients(sim.now)
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["alice", "Alicia"]);
}

#[test]
fn away_and_back_are_announced_and_shown_in_the_list() {
    let mut sim = sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);

    let now = sim.now;
    sim.client_mut(alice).set_away(now, Some("lunch 🍜"));
    sim.drive();
    assert_eq!(notices(sim.events(bob)), ["alice is away: lunch 🍜"]);
    assert_eq!(
        roster(&mut sim, bob),
        [
            RosterEntry {
                name: "alice".to_owned(),
                away: "lunch 🍜".to_owned(),
                guest: false,
            },
            RosterEntry {
                name: "bob".to_owned(),
                away: String::new(),
                guest: false,
            }
        ]
    );
    let info = sim.server.clients(sim.now);
    assert_eq!(info[0].away.as_deref(), Some("lunch 🍜"));

    // Saying it twice announces it once; coming back is announced.
    sim.clear_events();
    let now = sim.now;
    sim.client_mut(alice).set_away(now, Some("lunch 🍜"));
    sim.client_mut(alice).set_away(now, None);
    sim.drive();
    assert_eq!(notices(sim.events(bob)), ["alice is back"]);
    assert!(roster(&mut sim, bob).iter().all(|e| e.away.is_empty()));
}

#[test]
fn a_long_line_typed_while_joining_is_split_not_cut() {
    let mut sim = sim();
    let bob = sim.join("bob");
    let alice = sim.add_client("alice");
    let long = "ü".repeat(700); // 1400 bytes: two messages
    let now = sim.now;
    sim.client_mut(alice).send_text(now, &long);
    sim.drive();
    let shown: String = messages(sim.events(bob))
        .into_iter()
        .map(|(_, text, _)| text)
        .collect();
    assert_eq!(shown, long);
}

#[test]
fn renames_and_away_toggles_count_against_the_flood_limit() {
    let mut sim = sim();
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    let now = sim.now;
    for i in 0..50 {
        sim.client_mut(alice).set_away(now, Some("brb"));
        sim.client_mut(alice).set_away(now, None);
        sim.client_mut(alice).rename(now, &format!("alice{i}"));
    }
    sim.drive();
    // The default limit allows a burst of 10; everything past it is dropped (and the
    // sender warned), not announced.
    let announced = notices(sim.events(bob)).len();
    assert!(announced <= 10, "{announced} notices reached bob");
}

// Guests' commands ------------------------------------------------------------------------

fn guest_sim() -> Sim {
    Sim::new(ServerConfig {
        guests: true,
        ..ServerConfig::default()
    })
}

/// What a guest at `from` sends and gets back, as text lines without their clocks.
fn guest_says(sim: &mut Sim, from: SocketAddr, text: &str) -> Vec<String> {
    guest_lines(&sim.inject(from, text.as_bytes()))
}

/// The text lines of the `datagrams` a guest got, without their clocks.
pub(crate) fn guest_lines(datagrams: &[Vec<u8>]) -> Vec<String> {
    datagrams
        .iter()
        .flat_map(|bytes| {
            let text = String::from_utf8(bytes.clone()).expect("guests get text");
            text.lines()
                .map(|line| {
                    line.split_once("] ")
                        .map_or(line, |(_, rest)| rest)
                        .to_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_guests_commands_are_answered_to_the_guest_only_and_never_broadcast() {
    let mut sim = guest_sim();
    let alice = sim.join("alice");
    let guest = SocketAddr::from(([127, 0, 0, 1], 20001));
    let name = "guest-127.0.0.1:20001";
    assert_eq!(
        guest_says(&mut sim, guest, "/list\n"),
        [
            format!("-- {name} joined"),
            format!("-- 2 online: alice, {name} (guest)")
        ]
    );
    // An unknown command and a bad one: the error goes to the guest only.
    assert_eq!(
        guest_says(&mut sim, guest, "/frob\n/nick\n"),
        [
            "-- unknown command /frob; type /help to list the commands",
            "-- /nick needs an argument; usage: /nick NAME",
        ]
    );
    let help = guest_says(&mut sim, guest, "/help\n");
    assert!(
        help.iter().any(|line| line.starts_with("/msg NAME text")),
        "{help:?}"
    );
    let events = sim.take_events(alice);
    assert_eq!(notices(&events), [format!("{name} joined")]);
    assert!(messages(&events).is_empty(), "{events:?}");
}

#[test]
fn a_guest_chats_renames_acts_messages_and_exits_by_command() {
    let mut sim = guest_sim();
    let alice = sim.join("alice");
    let guest = SocketAddr::from(([127, 0, 0, 1], 20001));
    guest_says(&mut sim, guest, "hello\n");
    sim.clear_events();

    // `/nick` under the rules of a named client: an invalid name, a taken one, a free one.
    assert_eq!(
        guest_says(&mut sim, guest, "/nick guest-1\n/nick ALICE\n"),
        [
            "-- cannot rename to guest-1: 'server' and names starting with 'guest-' are reserved",
            "-- cannot rename: ALICE is taken",
        ]
    );
    assert_eq!(
        guest_says(&mut sim, guest, "/nick carol\n"),
        [
            "-- you are now known as carol",
            "-- guest-127.0.0.1:20001 is now known as carol",
        ]
    );
    assert_eq!(
        notices(&sim.take_events(alice)),
        ["guest-127.0.0.1:20001 is now known as carol"]
    );
    // Still a guest in everyone's /list; a client may not take the name meanwhile.
    let listed = roster(&mut sim, alice);
    assert_eq!(
        listed[1],
        RosterEntry {
            name: "carol".into(),
            away: String::new(),
            guest: true,
        }
    );
    let twin = sim.add_client("Carol");
    sim.drive();
    assert!(sim.client(twin).is_closed());

    // `//` escapes a slash; `/me` and `/msg` work as for anyone.
    guest_says(&mut sim, guest, "//shrug\n/me waves\n/msg alice psst\n");
    let events = sim.take_events(alice);
    assert_eq!(
        messages(&events),
        [("carol".to_owned(), "/shrug".to_owned(), false)]
    );
    assert!(events.iter().any(|event| matches!(event,
        ClientEvent::Chat(ChatEvent::Action { from, text, .. }) if from == "carol" && text == "waves")));
    assert_eq!(
        privates(&events),
        [(
            "carol".to_owned(),
            "alice".to_owned(),
            "psst".to_owned(),
            false
        )]
    );
    // `/exit` leaves; the rest of the datagram is not read.
    assert_eq!(
        guest_says(&mut sim, guest, "/exit\nstill here?\n"),
        ["-- you left the chat"]
    );
    let events = sim.take_events(alice);
    assert_eq!(notices(&events), ["carol left"]);
    assert!(messages(&events).is_empty());
    assert_eq!(sim.server.clients(sim.now).len(), 1);
}
