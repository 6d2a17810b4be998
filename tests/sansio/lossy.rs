//! Delivery guarantees over a bad network, without sockets: the sans-IO server and clients
//! wired through a simulated network (`sim::room`) that loses, duplicates and delays
//! (so reorders) datagrams at random, from a seeded generator, on a fake clock.
//!
//! This file owns the promise of exactly-once, in-order delivery and its corner cases (a
//! lost leave, lost heartbeats, a server restart mid-conversation). It does not own the
//! byte layout (`wire`) nor the chat rules on a perfect network (`core.rs`).
//!
//! A failing seed is printed; `ICQ_SEED=N cargo test --test sansio lossy::` runs that seed
//! alone, and `ICQ_DEBUG=1` adds what every party reported and a count of datagrams by kind.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use icq::client::{ClientEvent, CloseReason};
use icq::proto::chat::ChatEvent;
use icq::server::{ServerConfig, ServerEvent};
use icq::wire::Frame;
use icq::wire::{Delivery, Request, ToClient, ToServer};

use crate::impairment::Impairment;
use crate::sim::room::{SERVER_ADDR, Sim, messages, notices};
use crate::sim::{Datagram, Link, LossyLink, for_each_seed};

/// Drops the datagrams `drop` picks, delivers the rest at once.
struct Filter<F: FnMut(&Datagram) -> bool>(F);

impl<F: FnMut(&Datagram) -> bool> Link for Filter<F> {
    fn route(&mut self, _now: Instant, datagram: &Datagram) -> Vec<Duration> {
        if (self.0)(datagram) {
            Vec::new()
        } else {
            vec![Duration::ZERO]
        }
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// A server with flood limiting off: the senders below type faster than any person.
fn unlimited() -> ServerConfig {
    ServerConfig {
        flood_limit: None,
        ..ServerConfig::default()
    }
}

/// Adds clients `names` and runs until every one has joined (joins are retried through
/// the loss too).
fn join_all(sim: &mut Sim, names: &[&str]) -> Vec<SocketAddr> {
    let clients: Vec<SocketAddr> = names.iter().map(|name| sim.add_client(name)).collect();
    for _ in 0..200 {
        if clients.iter().all(|&c| sim.client(c).is_joined())
            && sim.server.clients(sim.now).len() == clients.len()
        {
            return clients;
        }
        sim.run_for(ms(50));
    }
    panic!("not everyone joined: {:?}", sim.server.clients(sim.now));
}

/// Runs until nothing is left unacknowledged anywhere, or `limit` passes.
fn run_until_quiet(sim: &mut Sim, clients: &[SocketAddr], limit: Duration) {
    let end = sim.now + limit;
    while sim.now < end {
        sim.run_for(ms(100));
        let clients_done = clients.iter().all(|&c| sim.client(c).unacknowledged() == 0);
        if clients_done && !sim.server.has_unacknowledged() {
            return;
        }
    }
}

/// What one run of the conversation produced.
struct Outcome {
    /// Every datagram put on the network while the messages flowed and settled.
    datagrams: usize,
    /// Messages shown, summed over the clients.
    deliveries: usize,
    retransmissions: u64,
    /// Simulated time from the first line typed until nothing was left unacknowledged.
    settled_in: Duration,
}

const SENDERS: [&str; 3] = ["alice", "bob", "carol"];
const MESSAGES_EACH: usize = 300;

/// Three senders each type `MESSAGES_EACH` numbered lines, interleaved, one every 5 ms,
/// over `link`; then checks what every client displayed. Returns the figures, or what went
/// wrong.
fn conversation(link: impl Link + 'static) -> Result<Outcome, String> {
    conversation_packed(link, false)
}

/// [`conversation`], with each party's datagrams of a round packed per receiver when
/// `pack` is on, as the programs pack one turn's.
fn conversation_packed(link: impl Link + 'static, pack: bool) -> Result<Outcome, String> {
    let mut sim = Sim::new(unlimited());
    sim.set_link(link);
    sim.pack = pack;
    let clients = join_all(&mut sim, &SENDERS);
    sim.run_for(ms(500)); // join notices settle
    sim.clear_events();
    sim.take_server_events();
    let mark = sim.mark();
    let started = sim.now;

    for i in 0..MESSAGES_EACH {
        for (&client, name) in clients.iter().zip(SENDERS) {
            let now = sim.now;
            sim.client_mut(client)
                .send_text(now, &format!("{name} {i}"));
        }
        sim.run_for(ms(5));
    }
    run_until_quiet(&mut sim, &clients, Duration::from_secs(60));
    let settled_in = sim.now - started;

    // The server's order: the order in which it broadcast the lines.
    let server_order: Vec<(String, String)> = sim
        .take_server_events()
        .into_iter()
        .inspect(|event| {
            if std::env::var("ICQ_DEBUG").is_ok() && !matches!(event, ServerEvent::Chat { .. }) {
                eprintln!("server: {event:?}");
            }
        })
        .filter_map(|event| match event {
            ServerEvent::Chat { from, text, .. } => Some((from, text)),
            _ => None,
        })
        .collect();
    if std::env::var("ICQ_DEBUG").is_ok() {
        for &client in &clients {
            for event in sim.events(client) {
                if !matches!(event, ClientEvent::Chat(ChatEvent::Message { .. })) {
                    eprintln!("{client}: {event:?}");
                }
            }
            eprintln!(
                "{client}: unacknowledged {}",
                sim.client(client).unacknowledged()
            );
        }
    }
    if server_order.len() != SENDERS.len() * MESSAGES_EACH {
        return Err(format!(
            "the server broadcast {} lines, not {}",
            server_order.len(),
            SENDERS.len() * MESSAGES_EACH
        ));
    }
    for name in SENDERS {
        let sent_order: Vec<&str> = server_order
            .iter()
            .filter(|(from, _)| from == name)
            .map(|(_, text)| text.as_str())
            .collect();
        let expected: Vec<String> = (0..MESSAGES_EACH).map(|i| format!("{name} {i}")).collect();
        if sent_order != expected {
            return Err(format!(
                "{name}'s lines were broadcast out of order or twice"
            ));
        }
    }

    let mut deliveries = 0;
    for (&client, name) in clients.iter().zip(SENDERS) {
        let events = sim.take_events(client);
        let shown: Vec<(String, String)> = messages(&events)
            .into_iter()
            .map(|(from, text, _)| (from, text))
            .collect();
        if shown != server_order {
            let first_difference = shown
                .iter()
                .zip(&server_order)
                .position(|(a, b)| a != b)
                .unwrap_or(shown.len().min(server_order.len()));
            return Err(format!(
                "{name} showed {} lines, not the server's {} in its order (first difference \
                 at position {first_difference}: {:?} instead of {:?}); other events: {:?}",
                shown.len(),
                server_order.len(),
                shown.get(first_difference),
                server_order.get(first_difference),
                events
                    .iter()
                    .filter(|e| !matches!(e, ClientEvent::Chat(ChatEvent::Message { .. })))
                    .take(5)
                    .collect::<Vec<_>>()
            ));
        }
        let trouble: Vec<&ClientEvent> = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    ClientEvent::NotSent { .. }
                        | ClientEvent::Missed { .. }
                        | ClientEvent::Rejoining
                        | ClientEvent::Closed(_)
                )
            })
            .collect();
        if !trouble.is_empty() {
            return Err(format!("{name} reported {trouble:?}"));
        }
        deliveries += shown.len();
    }
    if std::env::var("ICQ_DEBUG").is_ok() {
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for d in sim.sent_since(mark) {
            let kind = d.frame().map_or("?".to_owned(), |f| {
                format!("{f:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("")
                    .to_owned()
            });
            *kinds.entry(kind).or_default() += 1;
        }
        eprintln!(
            "kinds {kinds:?}; server retransmissions {}, client {:?}",
            sim.server.stats().retransmissions,
            clients
                .iter()
                .map(|&c| sim.client(c).retransmissions())
                .collect::<Vec<_>>()
        );
    }
    let retransmissions = sim.server.stats().retransmissions
        + clients
            .iter()
            .map(|&c| sim.client(c).retransmissions())
            .sum::<u64>();
    Ok(Outcome {
        datagrams: sim.sent_since(mark).len(),
        deliveries,
        retransmissions,
        settled_in,
    })
}

/// How many seeds the lossy conversation runs with.
const SEEDS: u64 = 100;

/// The network of the lossy conversation.
const CONVERSATION: Impairment = Impairment::new(0.20, 0.10, Duration::from_millis(50));

#[test]
fn every_message_arrives_exactly_once_in_order_through_loss_duplication_and_reordering() {
    let outcomes = for_each_seed(0..SEEDS, CONVERSATION, |seed| {
        conversation(LossyLink::new(seed, CONVERSATION))
    });
    let runs = outcomes.len() as f64;
    let sum = |of: fn(&Outcome) -> f64| outcomes.iter().map(of).sum::<f64>();
    let deliveries = sum(|o| o.deliveries as f64);
    println!(
        "{CONVERSATION}, {runs} seeds: {:.2} datagrams per message delivered, {:.3} \
         retransmissions per delivery, settled in {:.2} s on average (simulated; the lines \
         take {:.2} s to type)",
        sum(|o| o.datagrams as f64) / deliveries,
        sum(|o| o.retransmissions as f64) / deliveries,
        sum(|o| o.settled_in.as_secs_f64()) / runs,
        (MESSAGES_EACH as u32 * ms(5)).as_secs_f64()
    );
}

#[test]
fn packed_datagrams_deliver_every_message_once_in_order_through_loss_and_reordering() {
    // A lost packed datagram loses all its frames at once: what must still hold.
    let outcomes = for_each_seed(0..SEEDS / 4, CONVERSATION, |seed| {
        conversation_packed(LossyLink::new(seed, CONVERSATION), true)
    });
    let deliveries: usize = outcomes.iter().map(|o| o.deliveries).sum();
    let datagrams: usize = outcomes.iter().map(|o| o.datagrams).sum();
    println!(
        "{CONVERSATION}, packed: {:.2} datagrams per message delivered",
        datagrams as f64 / deliveries as f64
    );
}

#[test]
fn packing_on_a_perfect_network_sends_fewer_datagrams_than_deliveries() {
    let outcome =
        conversation_packed(LossyLink::new(1, Impairment::NONE), true).expect("delivered");
    let per_delivery = outcome.datagrams as f64 / outcome.deliveries as f64;
    println!("0 % loss, packed: {per_delivery:.2} datagrams per message delivered");
    assert_eq!(outcome.retransmissions, 0);
    // Three lines typed at once reach each client in one datagram, not three.
    assert!(
        per_delivery < 0.8,
        "{per_delivery:.2} datagrams per delivery"
    );
}

#[test]
fn on_a_perfect_network_the_overhead_is_small() {
    let outcome = conversation(LossyLink::new(1, Impairment::NONE)).expect("delivered");
    let per_delivery = outcome.datagrams as f64 / outcome.deliveries as f64;
    println!(
        "0 % loss: {per_delivery:.2} datagrams per message delivered, {} retransmissions",
        outcome.retransmissions
    );
    assert_eq!(outcome.retransmissions, 0);
    // One datagram per delivery, plus the senders' chats and the receivers' acks.
    assert!(
        per_delivery < 1.6,
        "{per_delivery:.2} datagrams per delivery"
    );
}

#[test]
fn a_lost_leave_is_repeated_and_the_client_is_announced_as_left() {
    let mut sim = Sim::new(ServerConfig::default());
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    // The network loses bob's first leave.
    let mut leaves_dropped = 0;
    sim.set_link(Filter(move |d: &Datagram| {
        let drop = d.from == bob
            && matches!(
                d.frame(),
                Some(Frame::ToServer(ToServer::Sequenced(_, Request::Leave)))
            )
            && leaves_dropped == 0;
        if drop {
            leaves_dropped += 1;
        }
        drop
    }));
    sim.leave(bob);
    assert!(!sim.client(bob).is_closed(), "waiting for the confirmation");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(
        sim.take_events(bob),
        vec![ClientEvent::Closed(CloseReason::Left)]
    );
    assert_eq!(notices(sim.events(alice)), ["bob left"]);
}

#[test]
fn lost_heartbeats_do_not_evict_a_live_client() {
    let config = ServerConfig {
        timeout: ms(900),
        ..ServerConfig::default()
    };
    let mut sim = Sim::new(config);
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    // Two heartbeats in a row are lost, then the third gets through: bob stays.
    let mut heartbeats = 0;
    sim.set_link(Filter(move |d: &Datagram| {
        if d.from == bob && matches!(d.frame(), Some(Frame::ToServer(ToServer::Heartbeat { .. }))) {
            heartbeats += 1;
            return heartbeats <= 2;
        }
        false
    }));
    sim.run_for(Duration::from_secs(3));
    assert_eq!(notices(sim.events(alice)), Vec::<String>::new());
    assert_eq!(sim.server.clients(sim.now).len(), 2);
    assert!(
        !sim.events(bob)
            .iter()
            .any(|e| matches!(e, ClientEvent::Closed(_) | ClientEvent::Rejoining)),
        "{:?}",
        sim.events(bob)
    );
}

#[test]
fn a_server_restart_mid_conversation_loses_no_typed_line() {
    let mut sim = Sim::new(unlimited());
    sim.set_link(LossyLink::new(42, Impairment::new(0.10, 0.05, ms(30))));
    let clients = join_all(&mut sim, &SENDERS);

    let typed = |sim: &mut Sim, rounds: std::ops::Range<usize>| {
        let mut typed: BTreeMap<SocketAddr, Vec<String>> = BTreeMap::new();
        for i in rounds {
            for (&client, name) in clients.iter().zip(SENDERS) {
                let text = format!("{name} {i}");
                let now = sim.now;
                sim.client_mut(client).send_text(now, &text);
                typed.entry(client).or_default().push(text);
            }
            sim.run_for(ms(50));
        }
        typed
    };
    typed(&mut sim, 0..20);
    run_until_quiet(&mut sim, &clients, Duration::from_secs(30));
    sim.clear_events();

    // The server restarts (it forgets everyone, and whatever it had not delivered yet is
    // gone with it) while everyone keeps typing. Each client learns of the restart from the
    // answer to its next line, joins again and sends that line and the next ones.
    sim.restart_server(unlimited());
    let typed_after = typed(&mut sim, 20..40);
    run_until_quiet(&mut sim, &clients, Duration::from_secs(30));
    let others = |events: &[ClientEvent]| -> Vec<ClientEvent> {
        events
            .iter()
            .filter(|e| !matches!(e, ClientEvent::Chat(ChatEvent::Message { .. })))
            .cloned()
            .collect()
    };
    assert_eq!(
        sim.server.clients(sim.now).len(),
        3,
        "{:?}",
        clients
            .iter()
            .map(|&c| others(sim.events(c)))
            .collect::<Vec<_>>()
    );

    for (&client, name) in clients.iter().zip(SENDERS) {
        let events = sim.take_events(client);
        assert!(
            events.contains(&ClientEvent::Rejoining),
            "{name} says it joins again: {events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, ClientEvent::NotSent { .. } | ClientEvent::Closed(_))),
            "{name}: {events:?}"
        );
        // Every line typed after the restart reached the new server once, in order: its
        // echo came back exactly once.
        let echoes: Vec<String> = messages(&events)
            .into_iter()
            .filter(|(from, _, own)| from == name && *own)
            .map(|(_, text, _)| text)
            .collect();
        assert_eq!(echoes, typed_after[&client], "{name}");
        // And whatever else a client shows, it shows once and in each sender's order.
        let shown = messages(&events);
        let distinct: HashSet<&(String, String, bool)> = shown.iter().collect();
        assert_eq!(distinct.len(), shown.len(), "{name} showed a line twice");
        for sender in SENDERS {
            let numbers: Vec<usize> = shown
                .iter()
                .filter(|(from, _, _)| from == sender)
                .map(|(_, text, _)| text.rsplit(' ').next().unwrap().parse().unwrap())
                .collect();
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "{name} shows {sender}'s lines out of order: {numbers:?}"
            );
        }
        assert_eq!(SERVER_ADDR, sim.client(client).server());
    }
}

#[test]
fn the_confirmation_of_a_leave_confirms_every_line_before_it() {
    let mut sim = Sim::new(ServerConfig::default());
    let alice = sim.join("alice");
    sim.join("bob");
    sim.clear_events();
    // Every acknowledgement of alice's line is lost (the echo and any bare ack); only the
    // leave's confirmation gets through. The server did carry the line out, in order,
    // before the leave: alice must not report it as not delivered.
    sim.set_link(Filter(move |d: &Datagram| {
        d.to == alice
            && matches!(
                d.frame(),
                Some(
                    Frame::ToClient(ToClient::Sequenced(_, Delivery::Message { .. }))
                        | Frame::ToClient(ToClient::ServerAck { .. })
                        | Frame::ToClient(ToClient::Sequenced(_, Delivery::Notice { .. }))
                )
            )
    }));
    sim.send_text(alice, "last words");
    sim.leave(alice);
    sim.run_for(Duration::from_secs(4));
    let events = sim.take_events(alice);
    assert_eq!(events, vec![ClientEvent::Closed(CloseReason::Left)]);
}

#[test]
fn a_leave_confirmed_by_a_server_that_never_had_the_session_confirms_nothing() {
    let mut sim = Sim::new(ServerConfig::default());
    let alice = sim.join("alice");
    sim.clear_events();
    // The server restarts, and alice's next line is lost on the way to it; then she leaves.
    // The new server does not know her session: it must not confirm the leave (that would
    // tell alice her line was delivered).
    sim.restart_server(ServerConfig::default());
    let mut dropped = false;
    sim.set_link(Filter(move |d: &Datagram| {
        let drop = !dropped
            && matches!(
                d.frame(),
                Some(Frame::ToServer(ToServer::Sequenced(
                    _,
                    Request::Chat { .. }
                )))
            );
        dropped |= drop;
        drop
    }));
    sim.send_text(alice, "lost on the way");
    sim.leave(alice);
    sim.run_for(Duration::from_secs(4));
    let events = sim.take_events(alice);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::NotSent { text, .. } if text == "lost on the way")),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&ClientEvent::Closed(CloseReason::Left)));
}
