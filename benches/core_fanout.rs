//! `cargo bench --bench core_fanout`: what the server core itself costs per delivery, with
//! no socket and no kernel: the fan-out load of `versus_irc` (one sender, W messages in
//! flight, N named clients) played between a `Server` and N of the library's `Client`s in
//! this one process, on a clock that moves 1 ms per exchange. Only the time spent in the
//! server (its datagrams in, its timers, and packing what it queued as the socket loop does)
//! is counted: the core's share of `versus_irc`'s figure, without the kernel's (a third to a
//! half of it) and without waiting on the clients' scheduling. A shared host still moves it
//! by a fifth from run to run, so compare builds by alternating them. Printed: ns of server
//! time per delivery, its datagrams out per delivery and the frames it sent again (none on
//! this lossless exchange, unless a change breaks its timers), for W = 1, 8 and 128 at
//! N = 10 and 100 (`ICQ_BENCH_NS`, `ICQ_BENCH_WS` choose others), medians of 5 rounds.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use icq::bans::list::BanList;
use icq::client::{Client, ClientEvent};
use icq::proto::chat::ChatEvent;
use icq::proto::packing::Packer;
use icq::server::{Server, ServerConfig};

/// Deliveries measured in each round, unless `ICQ_BENCH_DELIVERIES` says (fewer, to run it
/// under `valgrind --tool=callgrind`, whose instruction and cache counts do not depend on
/// the host's load).
const DELIVERIES: usize = 400_000;

/// Rounds per figure, unless `ICQ_BENCH_ROUNDS` says; the median is printed.
const ROUNDS: usize = 5;

fn main() {
    let list = |name: &str, default: &str| -> Vec<usize> {
        std::env::var(name)
            .unwrap_or_else(|_| default.to_owned())
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let (ns, ws) = (
        list("ICQ_BENCH_NS", "10 100"),
        list("ICQ_BENCH_WS", "1 8 128"),
    );
    let deliveries = list("ICQ_BENCH_DELIVERIES", "")
        .first()
        .copied()
        .unwrap_or(DELIVERIES);
    let rounds = list("ICQ_BENCH_ROUNDS", "")
        .first()
        .copied()
        .unwrap_or(ROUNDS)
        .max(1);
    println!("# the server core alone: ns of its time per delivery (medians of {rounds} rounds)\n");
    println!("| N | W | server ns/delivery | datagrams out/delivery | frames sent again |");
    println!("|---:|---:|---:|---:|---:|");
    for &n in &ns {
        for &w in &ws {
            let mut room = Room::new(n);
            let before = room.server.stats().retransmissions;
            let mut figures: Vec<(f64, f64)> =
                (0..rounds).map(|_| room.round(w, deliveries)).collect();
            let again = room.server.stats().retransmissions - before;
            figures.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (ns, datagrams) = figures[rounds / 2];
            println!("| {n} | {w} | {ns:.1} | {datagrams:.3} | {again} |");
        }
    }
}

/// A server and its clients, and the datagrams between them.
struct Room {
    server: Server,
    server_addr: SocketAddr,
    clients: Vec<(SocketAddr, Client)>,
    now: Instant,
    packer: Packer,
    /// Time spent in the server's calls since the last [`Room::round`] began.
    in_server: Duration,
    /// Datagrams the server sent meanwhile.
    sent: u64,
    /// Messages of the sender's that came back to it.
    echoes: usize,
}

impl Room {
    fn new(n: usize) -> Room {
        let now = Instant::now();
        let config = ServerConfig {
            flood_limit: None,
            max_per_ip: None,
            max_clients: n + 1,
            hash_seed: 1,
            ..ServerConfig::default()
        };
        let server_addr: SocketAddr = "127.0.0.1:4000".parse().expect("an address");
        let clients = (0..n)
            .map(|i| {
                let addr = SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16));
                (addr, Client::new(&format!("c{i}"), vec![server_addr], now))
            })
            .collect();
        let mut room = Room {
            server: Server::new(config, BanList::default(), now, 0),
            server_addr,
            clients,
            now,
            packer: Packer::new(),
            in_server: Duration::ZERO,
            sent: 0,
            echoes: 0,
        };
        while !room.clients.iter().all(|(_, c)| c.is_joined()) {
            room.exchange();
        }
        // The joins' presence and rosters settle.
        for _ in 0..100 {
            room.exchange();
        }
        room
    }

    /// Client 0 keeps `w` messages in flight until `deliveries` were made; returns the
    /// server's ns per delivery and datagrams out per delivery.
    fn round(&mut self, w: usize, deliveries: usize) -> (f64, f64) {
        let n = self.clients.len();
        let messages = deliveries.div_ceil(n);
        (self.in_server, self.sent, self.echoes) = (Duration::ZERO, 0, 0);
        let mut said = 0;
        while self.echoes < messages {
            while said < messages && said - self.echoes < w {
                let now = self.now;
                self.clients[0].1.send_text(now, &format!("bench {said} 0"));
                said += 1;
            }
            self.exchange();
        }
        // The last acknowledgements (due after the clients' delay) count in this round, so
        // every round ends with nothing in flight.
        for _ in 0..20 {
            self.exchange();
        }
        let deliveries = (messages * n) as f64;
        (
            self.in_server.as_nanos() as f64 / deliveries,
            self.sent as f64 / deliveries,
        )
    }

    /// One turn: every client's datagrams to the server, the server's (packed, as the
    /// socket loop packs a turn's) to the clients, everyone's timers; the clock moves on.
    fn exchange(&mut self) {
        self.now += Duration::from_millis(1);
        let now = self.now;
        let mut to_server = Vec::new();
        for (addr, client) in &mut self.clients {
            if client.poll_timeout().is_some_and(|t| t <= now) {
                client.handle_timeout(now);
            }
            while let Some((_, datagram)) = client.poll_transmit() {
                to_server.push((*addr, datagram));
            }
        }
        let began = Instant::now();
        for (from, datagram) in &to_server {
            self.server.handle_datagram(now, *from, datagram);
        }
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        let mut out = Vec::new();
        let mut datagrams = Vec::new();
        let queued = self.server.queued_transmits();
        self.packer.plan(queued);
        for group in 0..self.packer.len() {
            let to = self.packer.write(queued, group, &mut out);
            datagrams.push((to, out.clone()));
        }
        let count = queued.len();
        self.server.discard_transmits(count);
        self.in_server += began.elapsed();
        self.sent += datagrams.len() as u64;
        for (to, datagram) in datagrams {
            let Some(index) = usize::from(to.port()).checked_sub(10_000) else {
                continue;
            };
            let client = &mut self.clients[index].1;
            client.handle_datagram(now, self.server_addr, &datagram);
            while let Some(event) = client.poll_event() {
                if index == 0
                    && let ClientEvent::Chat(ChatEvent::Message { own: true, .. }) = event
                {
                    self.echoes += 1;
                }
            }
        }
    }
}
