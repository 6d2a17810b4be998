//! `cargo bench --bench banmatch`: what a big ban list costs each datagram.
//!
//! Every datagram the server receives is checked against the ban list before anything
//! else, so the check must not grow with the list (issue 11: a 99 003-entry list made each
//! datagram cost 152 µs instead of 4.6 µs). This drives the sans-IO server core in-process,
//! no sockets, with lists of 0, 1 000 and 100 000 entries (hosts and /24 ranges scattered
//! over the IPv4 space, some IPv6 ranges), and feeds it heartbeats with unknown tokens from
//! 4 096 addresses the list does not ban (the kind of datagram a flood of garbage or
//! leftover clients sends: decoded, checked, answered with a small `NotJoined`). It prints
//! the core's time per datagram at each size side by side, each as a multiple of the empty
//! list's, against the target of at most 1.5 ×, and the time of the ban lookup alone.
//!
//! Each figure is the median of 7 rounds of 200 000 datagrams, the lists taking turns round
//! by round (so a change in the machine's load touches all alike); `ICQ_BENCH_ROUNDS`
//! changes the number of rounds.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use icq::bans::list::{BanEntry, BanList, IpNet};

use icq::server::{Server, ServerConfig};
use icq::wire::Acks;
use icq::wire::Frame;
use icq::wire::ToServer;

const SIZES: [usize; 3] = [0, 1_000, 100_000];
const DATAGRAMS_PER_ROUND: usize = 200_000;
const SOURCES: usize = 4_096;
const TARGET: f64 = 1.5;

/// A deterministic generator (xorshift), so every run bans the same addresses.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `size` entries: mostly hosts, some /24s, a few IPv6 /48s, never covering 127.0.0.0/8
/// (where the senders are).
fn ban_list(size: usize) -> BanList {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut entries = Vec::with_capacity(size);
    while entries.len() < size {
        let bits = random.next();
        let v4 = Ipv4Addr::from(bits as u32);
        if v4.octets()[0] == 127 {
            continue;
        }
        let net: IpNet = match bits >> 60 {
            0 => format!("2001:db8:{:x}::/48", (bits >> 32) as u16),
            1..=3 => format!("{v4}/24"),
            _ => v4.to_string(),
        }
        .parse()
        .expect("a valid range");
        entries.push(BanEntry {
            net,
            line: entries.len() + 1,
        });
    }
    BanList::from_entries(entries)
}

/// The senders: loopback addresses the lists never ban.
fn sources() -> Vec<SocketAddr> {
    (0..SOURCES)
        .map(|i| {
            let ip = Ipv4Addr::new(127, 1, (i / 256) as u8, (i % 256) as u8);
            SocketAddr::new(IpAddr::V4(ip), 20_000 + (i % 1000) as u16)
        })
        .collect()
}

/// One server core per list, and the datagrams it is fed.
struct Bench {
    servers: Vec<Server>,
    sources: Vec<SocketAddr>,
    heartbeats: Vec<Vec<u8>>,
    now: Instant,
}

impl Bench {
    fn new(lists: &[BanList]) -> Bench {
        let now = Instant::now();
        Bench {
            servers: lists
                .iter()
                .map(|bans| Server::new(ServerConfig::default(), bans.clone(), now, 0))
                .collect(),
            sources: sources(),
            heartbeats: (0..64u64)
                .map(|token| {
                    Frame::ToServer(ToServer::Heartbeat {
                        token: 0x5eed_0000 + token,
                        acks: Acks::default(),
                    })
                    .to_bytes()
                })
                .collect(),
            now,
        }
    }

    /// Nanoseconds per datagram for one round through server `which`.
    fn round(&mut self, which: usize) -> f64 {
        let server = &mut self.servers[which];
        let started = Instant::now();
        for i in 0..DATAGRAMS_PER_ROUND {
            let from = self.sources[i % SOURCES];
            server.handle_datagram(self.now, from, &self.heartbeats[i % self.heartbeats.len()]);
            if i % 64 == 63 {
                while let Some(transmit) = server.poll_transmit() {
                    black_box(transmit);
                }
                while let Some(event) = server.poll_event() {
                    black_box(event);
                }
            }
        }
        started.elapsed().as_nanos() as f64 / DATAGRAMS_PER_ROUND as f64
    }

    /// The median per list over `rounds` rounds, taken in turn (list 0, 1, 2, 0, 1, 2, ...)
    /// so that a change in the machine's load touches every list alike.
    fn medians(&mut self, rounds: usize) -> Vec<f64> {
        let lists = self.servers.len();
        // One round each to warm caches and the allocator up.
        for which in 0..lists {
            self.round(which);
        }
        let mut samples = vec![Vec::with_capacity(rounds); lists];
        for _ in 0..rounds {
            for (which, samples) in samples.iter_mut().enumerate() {
                samples.push(self.round(which));
            }
        }
        samples.into_iter().map(median).collect()
    }
}

/// Nanoseconds per `is_banned` of a mix of banned and unbanned addresses, median of `rounds`.
fn lookup_cost(bans: &BanList, rounds: usize) -> f64 {
    let mut random = Random(0x1234_5678_9abc_def1);
    let probes: Vec<IpAddr> = (0..DATAGRAMS_PER_ROUND)
        .map(|i| match bans.entries().get(i % bans.len().max(1)) {
            // Half of them inside a listed range, half anywhere.
            Some(entry) if i % 2 == 0 => first_address(entry.net),
            _ => IpAddr::V4(Ipv4Addr::from(random.next() as u32)),
        })
        .collect();
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let mut banned = 0usize;
        for probe in &probes {
            banned += usize::from(bans.is_banned(black_box(*probe)));
        }
        black_box(banned);
        samples.push(started.elapsed().as_nanos() as f64 / probes.len() as f64);
    }
    median(samples)
}

fn first_address(net: IpNet) -> IpAddr {
    // `IpNet` displays as `address` or `address/prefix`; its first address is the network.
    let text = net.to_string();
    let address = text.split('/').next().unwrap_or_default();
    address.parse().unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let rounds = std::env::var("ICQ_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7usize)
        .max(1);
    println!(
        "ban matching: heartbeats from {SOURCES} unbanned addresses through the server core, \
         median of {rounds} rounds of {DATAGRAMS_PER_ROUND}"
    );
    println!();
    println!(
        "{:>10}  {:>14}  {:>10}  {:>14}  {:>10}",
        "entries", "ns / datagram", "× empty", "ns / lookup", "build"
    );
    let mut lists = Vec::new();
    let mut builds = Vec::new();
    for size in SIZES {
        let built = Instant::now();
        lists.push(ban_list(size));
        builds.push(built.elapsed());
    }
    let per_datagram = Bench::new(&lists).medians(rounds);
    let base = per_datagram[0];
    let mut worst: f64 = 0.0;
    for (index, size) in SIZES.iter().enumerate() {
        let ratio = per_datagram[index] / base;
        worst = worst.max(ratio);
        println!(
            "{:>10}  {:>14.1}  {:>9.2}×  {:>14.1}  {:>10}",
            size,
            per_datagram[index],
            ratio,
            lookup_cost(&lists[index], rounds),
            format!("{:.1} ms", duration_ms(builds[index])),
        );
    }
    println!();
    let verdict = if worst <= TARGET { "met" } else { "NOT met" };
    println!(
        "target: 100 000 entries at most {TARGET} × the empty list per datagram: {verdict} \
         (worst {worst:.2} ×)"
    );
}

fn duration_ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
