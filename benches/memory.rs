//! `cargo bench --bench memory`: the server core's memory per client, and allocations per
//! delivery, counted by a global allocator.
//!
//! No sockets and no clock: N named sessions join an `icq::server::Server` in-process
//! (join, cookie challenge, join again, welcome), as real clients would, and acknowledge what
//! they are sent every few joins (every join is announced to everyone, so acknowledging
//! each one would cost N² calls). Once all are in and everything is acknowledged, the heap
//! bytes the core holds, less what an empty server holds, divided by N, is the memory per
//! client. Then one chat message is broadcast to all of them, counting allocations: the
//! fan-out should allocate a fixed number of times, not once per recipient.
//!
//! Bytes are as requested from the allocator; malloc adds about 8 to 16 bytes to each
//! block (the allocation count per client is printed so the overhead can be estimated), and
//! the process's resident memory also holds freed blocks malloc has not returned. The
//! `fanout` benchmark reports the real server's resident memory.

#![forbid(unsafe_code)]

use std::alloc::System;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

use icq::bans::list::BanList;

use icq::server::{Server, ServerConfig};
use icq::wire::Acks;
use icq::wire::{Envelope, Frame};
use icq::wire::{Request, ToClient, ToServer};

/// Counts live bytes and allocations on top of the system allocator (`stats_alloc`: counters
/// around every call, forwarded unchanged).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

/// Allocations and reallocations so far (growing a buffer costs like a new one).
fn allocations() -> usize {
    let stats = GLOBAL.stats();
    stats.allocations + stats.reallocations
}

/// What the simulated clients know: each one's token and the last sequence number sent to
/// it.
#[derive(Default)]
struct Clients {
    tokens: HashMap<SocketAddr, u64>,
    last_seq: HashMap<SocketAddr, u32>,
    /// Cookies from challenges, waiting for the join to be repeated.
    cookies: HashMap<SocketAddr, u64>,
    deliveries: u64,
}

impl Clients {
    /// Takes everything the server queued, as the clients would receive it.
    fn receive(&mut self, server: &mut Server) {
        while let Some(transmit) = server.poll_transmit() {
            let to = transmit.destination;
            if let Some(envelope) = transmit.envelope {
                self.last_seq.insert(to, envelope.seq);
                self.deliveries += 1;
                continue;
            }
            match Frame::decode(&transmit.payload) {
                Ok(Frame::ToClient(ToClient::Challenge { cookie, .. })) => {
                    self.cookies.insert(to, cookie);
                }
                Ok(Frame::ToClient(ToClient::Welcome { token, .. })) => {
                    self.tokens.insert(to, token);
                }
                _ => {}
            }
        }
        while server.poll_event().is_some() {}
    }

    /// Every client acknowledges everything it was sent.
    fn acknowledge(&mut self, server: &mut Server, now: Instant) {
        for (addr, seq) in self.last_seq.drain() {
            let Some(&token) = self.tokens.get(&addr) else {
                continue;
            };
            let ack = Frame::ToServer(ToServer::ClientAck {
                token,
                acks: Acks {
                    through: seq,
                    also: 0,
                },
            });
            server.handle_datagram(now, addr, &ack.to_bytes());
        }
        self.receive(server);
    }
}

/// CPU time of this thread so far (not wall time: the machine may be busy with others).
#[cfg(unix)]
fn thread_cpu() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

/// Wall time elsewhere (no thread clock in std).
#[cfg(not(unix))]
fn thread_cpu() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

fn address(i: usize) -> SocketAddr {
    // Many addresses, a few thousand ports each, like clients behind a few NATs.
    let ip = Ipv4Addr::new(10, 0, (i / 50_000) as u8, (i / 200 % 250) as u8 + 1);
    SocketAddr::new(ip.into(), 20_000 + (i % 200 * 200 + i / 200 % 200) as u16)
}

/// Joins `n` sessions, lets them idle, then broadcasts twice.
fn measure(n: usize) -> Measured {
    let mut now = Instant::now();
    let config = ServerConfig {
        flood_limit: None,
        max_clients: n + 10,
        max_per_ip: None,
        hash_seed: 7,
        ..ServerConfig::default()
    };
    let live0 = live();
    let allocations0 = allocations();
    let mut server = Server::new(config, BanList::default(), now, 1_700_000_000_000);
    let empty = live() - live0;
    let mut clients = Clients::default();
    let joined0 = live();
    for i in 0..n {
        let addr = address(i);
        let nonce = i as u64 + 1;
        let name = format!("user{i}");
        let join = |cookie| {
            Frame::ToServer(ToServer::Join {
                nonce,
                cookie,
                previous_token: 0,
                history_epoch: 0,
                history_seen: 0,
                name: name.clone(),
            })
            .to_bytes()
        };
        server.handle_datagram(now, addr, &join(0));
        clients.receive(&mut server);
        let cookie = clients.cookies.remove(&addr).expect("a challenge");
        server.handle_datagram(now, addr, &join(cookie));
        clients.receive(&mut server);
        assert!(
            clients.tokens.contains_key(&addr),
            "client {i} was not welcomed"
        );
        now += Duration::from_micros(500);
        if i % 64 == 63 {
            clients.acknowledge(&mut server, now);
        }
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
            clients.receive(&mut server);
        }
    }
    clients.acknowledge(&mut server, now);
    // Let every timer run, and the periodic sweep twice with nothing outstanding: an
    // outbox empty from one sweep to the next gives its memory back.
    for _ in 0..3 {
        now += Duration::from_millis(1100);
        server.handle_timeout(now);
        clients.receive(&mut server);
        clients.acknowledge(&mut server, now);
    }
    // The timers of an idle server over a minute (twice the timeout): every client sends a
    // heartbeat every ten seconds, a tenth of them each second, and the server's timers
    // run every second (timed: the heartbeats' own handling is not).
    let mut timers = Duration::ZERO;
    let idle_seconds = 60;
    for second in 0..idle_seconds {
        for i in (second % 10..n).step_by(10) {
            let addr = address(i);
            let heartbeat = Frame::ToServer(ToServer::Heartbeat {
                token: clients.tokens[&addr],
                acks: Acks::default(),
            });
            server.handle_datagram(now, addr, &heartbeat.to_bytes());
        }
        clients.receive(&mut server);
        now += Duration::from_secs(1);
        let started = thread_cpu();
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        timers += thread_cpu().saturating_sub(started);
        clients.receive(&mut server);
    }
    assert_eq!(server.clients(now).len(), n, "nobody timed out");
    let timer_us_per_second = timers.as_secs_f64() * 1e6 / f64::from(idle_seconds as u32);
    assert!(!server.has_unacknowledged(), "everything was acknowledged");
    let per_session = (live() - joined0) as f64 / n as f64;
    let allocations_per_session = (allocations() - allocations0) as f64 / n as f64;

    // Chat messages from the first client to everyone: the first after the idle period
    // (every outbox was given back and is allocated again), then one more.
    let first = address(0);
    let mut broadcast = |seq: u32| {
        let chat = Frame::ToServer(ToServer::Sequenced(
            Envelope {
                token: clients.tokens[&first],
                seq,
                acks: Acks::default(),
            },
            Request::Chat {
                sent_ms: 0,
                text: "hello everyone".to_owned(),
            },
        ));
        let before = live();
        let allocations_before = allocations();
        server.handle_datagram(now, first, &chat.to_bytes());
        let held = live() - before; // queued transmits and outbox entries
        let delivered_before = clients.deliveries;
        clients.receive(&mut server);
        let allocated = allocations() - allocations_before;
        assert_eq!(
            (clients.deliveries - delivered_before) as usize,
            n,
            "everyone got it"
        );
        (held as f64 / n as f64, allocated)
    };
    let (_, after_idle) = broadcast(1);
    let (held, steady) = broadcast(2);
    Measured {
        per_session,
        allocations_per_session,
        empty,
        held_per_recipient: held,
        broadcast_after_idle: after_idle,
        broadcast_steady: steady,
        timer_us_per_second,
    }
}

struct Measured {
    per_session: f64,
    allocations_per_session: f64,
    empty: isize,
    held_per_recipient: f64,
    broadcast_after_idle: usize,
    broadcast_steady: usize,
    /// CPU time of the server's timers per second of an idle minute (thread CPU time).
    timer_us_per_second: f64,
}

fn main() {
    let quick = std::env::var_os("ICQ_BENCH_QUICK").is_some_and(|v| v != "0");
    let sizes: &[usize] = if quick {
        &[100, 1_000]
    } else {
        &[100, 1_000, 10_000]
    };
    println!("# icq server core: memory per client (counting allocator)\n");
    println!(
        "| sessions | heap bytes per session | allocations per session (join included) \
         | empty server bytes | new heap bytes per recipient, next broadcast \
         | allocations, first broadcast after idle | allocations, next broadcast \
         | timers while idle, µs per second |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let m = measure(n);
        println!(
            "| {n} | {:.0} | {:.1} | {} | {:.0} | {} | {} | {:.0} |",
            m.per_session,
            m.allocations_per_session,
            m.empty,
            m.held_per_recipient,
            m.broadcast_after_idle,
            m.broadcast_steady,
            m.timer_us_per_second
        );
    }
    println!(
        "\nBytes as requested from the allocator (malloc adds ~8-16 bytes per live block). A \
         broadcast allocates a fixed number of times (decoding the chat, encoding the copy, the \
         log event), except the first after a client's outbox sat empty for a whole sweep \
         (a second): that outbox gave its memory back and takes one allocation again."
    );
}
