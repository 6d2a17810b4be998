//! What overload may cost and whom it may hurt, without sockets: the sans-IO server and
//! clients on a fake clock (`util::Sim`), with a receiver whose acknowledgements come back
//! late, and a server whose loop falls behind during a join storm.
//!
//! This file owns two promises: a slow receiver costs its sender bounded work (a few copies
//! of each frame, however late it acknowledges), and a server that is itself late never
//! evicts a healthy client for the silence its own lateness caused. It does not own
//! delivery over loss (`lossy.rs`) nor the flood rules (`core.rs`).

mod util;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use icq::client::ClientEvent;
use icq::server::{ServerConfig, ServerEvent};

use util::{Datagram, Link, Sim, messages, notices};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A server with flood limiting off: the talker below types faster than any person.
fn unlimited() -> ServerConfig {
    ServerConfig {
        flood_limit: None,
        ..ServerConfig::default()
    }
}

/// Delays everything `slow` sends by `lag` (its acknowledgements, its heartbeats), and
/// delivers everything else at once.
struct LateSender {
    slow: SocketAddr,
    lag: Duration,
}

impl Link for LateSender {
    fn route(&mut self, _now: Instant, datagram: &Datagram) -> Vec<Duration> {
        if datagram.from == self.slow {
            vec![self.lag]
        } else {
            vec![Duration::ZERO]
        }
    }
}

/// What the server sent one client: datagrams carrying a sequenced frame, and how many
/// distinct frames they carried.
struct Cost {
    datagrams: usize,
    frames: usize,
}

impl Cost {
    fn per_frame(&self) -> f64 {
        self.datagrams as f64 / self.frames as f64
    }
}

fn sequenced_cost(sim: &Sim, to: SocketAddr, mark: usize) -> Cost {
    let mut datagrams = 0;
    let mut seqs = HashSet::new();
    for datagram in sim.sent_since(mark) {
        if datagram.from != sim.server_addr || datagram.to != to {
            continue;
        }
        if let Some(envelope) = datagram
            .frame()
            .as_ref()
            .and_then(|f| f.envelope().copied())
            && envelope.seq != 0
        {
            datagrams += 1;
            seqs.insert(envelope.seq);
        }
    }
    Cost {
        datagrams,
        frames: seqs.len(),
    }
}

/// A busy room for `minutes` minutes: a talker types a line every 100 ms, and everything a
/// slow listener sends reaches the server `lag` late. Returns the cost of the slow
/// listener and of a normal one, and what the slow one showed.
fn busy_room_with_a_late_listener(lag: Duration, minutes: u64) -> (Cost, Cost, Vec<ClientEvent>) {
    let mut sim = Sim::new(unlimited());
    let talker = sim.join("talker");
    let normal = sim.join("normal");
    let slow = sim.join("slow");
    sim.clear_events();
    sim.set_link(LateSender { slow, lag });
    let mark = sim.mark();
    let lines = minutes * 600;
    for i in 0..lines {
        let now = sim.now;
        sim.client_mut(talker).send_text(now, &format!("line {i}"));
        sim.run_for(ms(100));
    }
    sim.run_for(lag * 2 + secs(5));
    let slow_cost = sequenced_cost(&sim, slow, mark);
    let normal_cost = sequenced_cost(&sim, normal, mark);
    let events = sim.take_events(slow);
    (slow_cost, normal_cost, events)
}

#[test]
fn a_receiver_that_acknowledges_15_s_late_costs_at_most_3_datagrams_a_frame() {
    let (slow, normal, events) = busy_room_with_a_late_listener(secs(15), 5);
    println!(
        "15 s-late acknowledger: {} datagrams for {} frames ({:.2} per frame); normal client: \
         {} datagrams for {} frames ({:.2} per frame)",
        slow.datagrams,
        slow.frames,
        slow.per_frame(),
        normal.datagrams,
        normal.frames,
        normal.per_frame()
    );
    assert!(slow.frames >= 3000, "{} frames", slow.frames);
    assert!(
        slow.per_frame() <= 3.0,
        "{:.2} datagrams per frame for the slow receiver",
        slow.per_frame()
    );
    assert!(
        normal.per_frame() <= 1.05,
        "{:.2} datagrams per frame for a normal receiver",
        normal.per_frame()
    );
    // Slow is not broken: it got every line, in order, once, and was never dropped.
    let shown: Vec<String> = messages(&events)
        .into_iter()
        .filter(|(from, _, _)| from == "talker")
        .map(|(_, text, _)| text)
        .collect();
    let expected: Vec<String> = (0..3000).map(|i| format!("line {i}")).collect();
    assert_eq!(shown, expected);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ClientEvent::Closed(_) | ClientEvent::Rejoining)),
        "{:?}",
        events
            .iter()
            .filter(|e| !matches!(e, ClientEvent::Message { .. }))
            .inspect(|e| eprintln!("{e:?}"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_receiver_a_few_seconds_late_is_sent_each_frame_about_once() {
    let (slow, _, _) = busy_room_with_a_late_listener(secs(5), 2);
    println!(
        "5 s-late acknowledger: {} datagrams for {} frames ({:.2} per frame)",
        slow.datagrams,
        slow.frames,
        slow.per_frame()
    );
    assert!(slow.per_frame() <= 1.5, "{:.2}", slow.per_frame());
}

#[test]
fn a_receiver_that_acknowledges_nothing_is_dropped_with_a_reason_at_bounded_cost() {
    let mut sim = Sim::new(unlimited());
    let talker = sim.join("talker");
    let deaf = sim.join("deaf");
    let token = sim.token(deaf);
    sim.clear_events();
    sim.take_server_events();
    // Deaf's program hangs, but something at its address keeps the session alive with
    // heartbeats that acknowledge nothing: it is heard, never silent, and takes in
    // everything it is sent without a word.
    sim.frozen.insert(deaf);
    let mark = sim.mark();
    let mut dropped_after = None;
    for i in 0..400 {
        let now = sim.now;
        sim.client_mut(talker).send_text(now, &format!("line {i}"));
        if i % 50 == 0 {
            sim.inject_frame(deaf, &util::heartbeat_frame(token));
        }
        sim.run_for(ms(100));
        let events = sim.take_server_events();
        if dropped_after.is_none()
            && events
                .iter()
                .any(|e| matches!(e, ServerEvent::TimedOut { name, .. } if name == "deaf"))
        {
            dropped_after = Some(sim.now - sim.wire[mark].sent_at);
            break;
        }
    }
    let dropped_after = dropped_after.expect("deaf was dropped");
    let cost = sequenced_cost(&sim, deaf, mark);
    println!(
        "a receiver that acknowledges nothing: dropped after {:.1} s, having cost {} datagrams \
         for {} frames",
        dropped_after.as_secs_f64(),
        cost.datagrams,
        cost.frames
    );
    assert!(dropped_after <= icq::reliable::GIVE_UP_AFTER + secs(1));
    // About 200 frames queued for it by then, each tried every 2 s at most.
    assert!(
        cost.datagrams <= 11 * cost.frames,
        "{} datagrams",
        cost.datagrams
    );
    // The farewell says why, and the client shows it once it runs again (soon enough for
    // the farewell to be still repeated).
    sim.frozen.remove(&deaf);
    sim.run_for(secs(3));
    let events = sim.take_events(deaf);
    let told = notices(&events);
    assert!(
        told.iter()
            .any(|n| n.contains("you acknowledged nothing the server sent")),
        "{told:?}"
    );
    // And it joined again, being alive after all.
    assert!(events.contains(&ClientEvent::Rejoining), "{events:?}");
}
