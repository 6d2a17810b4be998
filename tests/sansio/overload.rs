//! What overload may cost and whom it may hurt, without sockets: the sans-IO server and
//! clients on a fake clock (`sim::room`), with a receiver whose acknowledgements come back
//! late, and a server whose loop falls behind during a join storm.
//!
//! This file owns two promises: a slow receiver costs its sender bounded work (a few copies
//! of each frame, however late it acknowledges), and a server that is itself late never
//! evicts a healthy client for the silence its own lateness caused. It does not own
//! delivery over loss (`lossy.rs`) nor the flood rules (`core.rs`).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use icq::bans::list::BanList;
use icq::client::{Client, ClientEvent};
use icq::proto::chat::ChatEvent;
use icq::server::{Server, ServerConfig, ServerEvent};
use icq::wire::ToClient;
use icq::wire::{Frame, RefuseReason};

use crate::sim::room;
use crate::sim::room::{Sim, messages, notices};
use crate::sim::{self, Datagram, Link};

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
    let [talker, normal, slow] = sim.join_settled(["talker", "normal", "slow"]);
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
            .filter(|e| !matches!(e, ClientEvent::Chat(ChatEvent::Message { .. })))
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
            sim.inject_frame(deaf, &room::heartbeat_frame(token));
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
    assert!(dropped_after <= icq::proto::reliable::GIVE_UP_AFTER + secs(1));
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

/// A server whose work takes time on the fake clock, behind a socket buffer that drops
/// what does not fit: the loop of `icq-server`, but slow enough to fall behind.
struct SlowLoop {
    server: Server,
    clients: BTreeMap<SocketAddr, Client>,
    events: BTreeMap<SocketAddr, Vec<ClientEvent>>,
    server_events: Vec<ServerEvent>,
    now: Instant,
    /// The server socket's receive buffer.
    buffer: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Datagrams the full buffer dropped, by sender.
    dropped: BTreeMap<SocketAddr, usize>,
    /// How many joins the server refused as busy.
    busy: usize,
    /// When the loop last found datagrams still waiting after a batch.
    behind_until: Option<Instant>,
    behind_for: Duration,
}

/// What handling something costs the server: 20 µs, plus 50 µs per datagram it makes the
/// server send. A join (a roster, and a presence frame to everyone) is the expensive kind.
fn cost(sent: u64) -> Duration {
    Duration::from_micros(20 + 50 * sent)
}

/// What the simulated socket buffer holds, and what one receive takes.
const BUFFER: usize = 1024;
const BATCH: usize = 32;

impl SlowLoop {
    fn new(config: ServerConfig) -> SlowLoop {
        let now = Instant::now();
        let mut server = Server::new(config, BanList::default(), now, sim::WALL_START_MS);
        server.set_local_address(room::SERVER_ADDR);
        SlowLoop {
            server,
            clients: BTreeMap::new(),
            events: BTreeMap::new(),
            server_events: Vec::new(),
            now,
            buffer: VecDeque::new(),
            dropped: BTreeMap::new(),
            busy: 0,
            behind_until: None,
            behind_for: Duration::ZERO,
        }
    }

    fn add_client(&mut self, port: u16, name: &str) -> SocketAddr {
        let at = sim::addr([127, 0, 0, 1], port);
        let client = Client::new(name, vec![room::SERVER_ADDR], self.now);
        self.clients.insert(at, client);
        self.collect(at);
        at
    }

    /// Queues what client `at` sent (dropping what the buffer cannot hold) and keeps
    /// what it reported.
    fn collect(&mut self, at: SocketAddr) {
        let client = self.clients.get_mut(&at).expect("a client");
        while let Some((_, bytes)) = client.poll_transmit() {
            if self.buffer.len() < BUFFER {
                self.buffer.push_back((at, bytes));
            } else {
                *self.dropped.entry(at).or_default() += 1;
            }
        }
        let events = self.events.entry(at).or_default();
        events.extend(std::iter::from_fn(|| client.poll_event()));
    }

    /// Every client whose timer is due runs it.
    fn client_timers(&mut self) {
        let due: Vec<SocketAddr> = self
            .clients
            .iter()
            .filter(|(_, c)| c.poll_timeout().is_some_and(|t| t <= self.now))
            .map(|(at, _)| *at)
            .collect();
        for at in due {
            let now = self.now;
            self.clients.get_mut(&at).unwrap().handle_timeout(now);
            self.collect(at);
        }
    }

    /// Delivers what the server sent, at once (the way back is not the bottleneck).
    fn deliver(&mut self) {
        let mut bytes = Vec::new();
        while let Some(transmit) = self.server.poll_transmit() {
            transmit.write_to(&mut bytes);
            let to = transmit.destination;
            if matches!(
                Frame::decode(&bytes),
                Ok(Frame::ToClient(ToClient::Refused {
                    reason: RefuseReason::Busy,
                    ..
                }))
            ) {
                self.busy += 1;
            }
            if let Some(client) = self.clients.get_mut(&to) {
                client.handle_datagram(self.now, room::SERVER_ADDR, &bytes);
                self.collect(to);
            }
        }
        self.server_events
            .extend(std::iter::from_fn(|| self.server.poll_event()));
    }

    /// One turn of the loop: a batch of datagrams, each costing time in proportion to what
    /// it made the server send, then the report, the timers and the deliveries. When
    /// nothing waits, time moves to the next deadline.
    fn turn(&mut self) {
        if self.buffer.is_empty() {
            let next = self
                .clients
                .values()
                .filter_map(Client::poll_timeout)
                .chain(self.server.poll_timeout())
                .min()
                .expect("something is pending");
            self.now = self.now.max(next);
        }
        let count = self.buffer.len().min(BATCH);
        for _ in 0..count {
            let (from, bytes) = self.buffer.pop_front().expect("counted");
            self.server.handle_datagram(self.now, from, &bytes);
            let sent = self.server.stats().datagrams_sent;
            self.deliver();
            self.now += cost(self.server.stats().datagrams_sent - sent);
            self.client_timers();
        }
        let behind = count == BATCH && !self.buffer.is_empty();
        if behind {
            if let Some(since) = self.behind_until {
                self.behind_for += self.now - since;
            }
            self.behind_until = Some(self.now);
        } else {
            self.behind_until = None;
        }
        self.server.handle_loop_report(self.now, behind);
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            let sent = self.server.stats().datagrams_sent;
            self.server.handle_timeout(self.now);
            self.deliver();
            self.now += cost(self.server.stats().datagrams_sent - sent);
        }
        self.deliver();
        self.client_timers();
    }

    fn run_until(&mut self, end: Instant) {
        while self.now < end {
            self.turn();
        }
    }
}

#[test]
fn a_join_storm_that_saturates_the_server_evicts_no_healthy_client() {
    const STORM: u16 = 400;
    let config = ServerConfig {
        timeout: secs(3),
        max_per_ip: None,
        ..ServerConfig::default()
    };
    let mut net = SlowLoop::new(config);
    let alice = net.add_client(10_001, "alice");
    let start = net.now;
    net.run_until(start + secs(1));
    assert!(net.clients[&alice].is_joined());
    net.events.clear();
    net.server_events.clear();

    // The storm: everyone at once, while alice sits idle.
    let storm: Vec<SocketAddr> = (0..STORM)
        .map(|i| net.add_client(20_000 + i, &format!("user{i}")))
        .collect();
    let storm_start = net.now;
    net.run_until(storm_start + secs(40));

    let joined = storm
        .iter()
        .filter(|&&c| net.clients[&c].is_joined())
        .count();
    let alice_dropped = net.dropped.get(&alice).copied().unwrap_or(0);
    let total_dropped: usize = net.dropped.values().sum();
    println!(
        "join storm: {STORM} clients; the loop fell behind for {:.1} s in all (timeout 3 s); \
         {} joins refused as busy; {total_dropped} datagrams dropped by the full socket \
         buffer, {alice_dropped} of them alice's; {joined} of {STORM} joined within 40 s",
        net.behind_for.as_secs_f64(),
        net.busy
    );
    // The storm really was one: the full buffer dropped datagrams of everyone, alice's
    // heartbeats and acknowledgements too. (Without the server's lateness credited, this
    // run evicts dozens of storm clients that had joined and were answering.)
    // Nobody healthy was evicted: not alice, not any storm client that got in.
    let evicted: Vec<&ServerEvent> = net
        .server_events
        .iter()
        .filter(|e| matches!(e, ServerEvent::TimedOut { .. }))
        .collect();
    assert!(evicted.is_empty(), "{evicted:?}");
    let alice_events = &net.events[&alice];
    assert!(
        !alice_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Closed(_) | ClientEvent::Rejoining)),
        "{:?}",
        alice_events
            .iter()
            .filter(|e| !matches!(
                e,
                ClientEvent::Notice { .. } | ClientEvent::Chat(ChatEvent::Presence { .. })
            ))
            .collect::<Vec<_>>()
    );
    assert!(net.clients[&alice].is_joined());
    // And the storm got in, busy answers and all: nobody gave up.
    assert_eq!(joined, usize::from(STORM));
    assert!(
        !storm.iter().any(|c| net.events[c]
            .iter()
            .any(|e| matches!(e, ClientEvent::Closed(_)))),
        "a storm client gave up"
    );
}

#[test]
fn silence_while_the_server_itself_falls_behind_does_not_count() {
    let config = ServerConfig {
        timeout: secs(3),
        ..ServerConfig::default()
    };
    let mut sim = Sim::new(config);
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    sim.take_server_events();
    // For 10 s the server's loop reports that it cannot keep up, and everything alice
    // sends is lost in its overflowing socket buffer.
    sim.muted.insert(alice);
    for _ in 0..100 {
        let now = sim.now;
        sim.server.handle_loop_report(now, true);
        sim.run_for(ms(100));
    }
    let now = sim.now;
    sim.server.handle_loop_report(now, false);
    sim.muted.remove(&alice);
    sim.run_for(secs(2));
    let evicted: Vec<ServerEvent> = sim
        .take_server_events()
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::TimedOut { .. }))
        .collect();
    assert!(evicted.is_empty(), "{evicted:?}");
    assert!(sim.client(alice).is_joined() && sim.client(bob).is_joined());
    // Once the loop keeps up, silence counts again: a client that stops is evicted.
    sim.frozen.insert(bob);
    sim.run_for(secs(5));
    assert!(
        sim.take_server_events()
            .iter()
            .any(|e| matches!(e, ServerEvent::TimedOut { name, .. } if name == "bob"))
    );
}
