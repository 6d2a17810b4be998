//! An in-memory network that drives several sans-IO peers (`icq::peer::Peer`) together,
//! with no sockets and a fake clock: `util::Sim`'s counterpart for peer mode.
//!
//! [`PeerSim`] owns the peers (each at a fake address on 127.0.0.1, each with its own wall
//! clock, skewed so that "the sender's time" is visible), the current instant, every event
//! each peer reported, and counts of what went on the wire. A [`Link`] decides what the
//! network does with each datagram: [`PerfectLink`] delivers at once, [`LossyLink`] loses,
//! duplicates and delays (so reorders) datagrams from a seeded generator. Time only moves
//! when a test says so; nothing sleeps. A peer can be frozen (as if its process were
//! killed: it is no longer driven and reads nothing) and datagrams can be injected from any
//! address, as an attacker would.
//!
//! It does not own expectations about the protocol: the tests do. The only rule it enforces
//! is that the system settles: a burst of datagrams that never dies down, or a timer that is
//! still due right after it fired, is a livelock and panics.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use icq::banlist::BanList;
use icq::peer::{Peer, PeerConfig, PeerEvent};
use icq::wire::Frame;

/// The port of the first peer; the next get 20002, 20003...
pub const FIRST_PORT: u16 = 20001;

/// The wall-clock time (ms since the Unix epoch) of the first peer at the start:
/// 2026-01-01 00:00:00 UTC. Every next peer's clock runs [`CLOCK_SKEW`] later.
pub const WALL_START_MS: i64 = 1_767_225_600_000;

/// How far apart the peers' wall clocks are: peer `n` (from 0) is `n` skews ahead.
pub const CLOCK_SKEW: Duration = Duration::from_secs(7);

/// Rounds of "collect every datagram, deliver every datagram" one [`PeerSim::drive`] allows.
const MAX_ROUNDS: usize = 10_000;

/// Timer firings one [`PeerSim::run_for`] allows.
const MAX_TIMER_STEPS: usize = 1_000_000;

/// `127.0.0.1:port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// One datagram on the wire.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

impl Datagram {
    /// The payload decoded, if it is a frame.
    pub fn frame(&self) -> Option<Frame> {
        Frame::decode(&self.bytes).ok()
    }
}

/// What the network does with each datagram.
pub trait Link {
    /// The delays after which copies of `datagram` arrive: none drops it, two duplicate it.
    fn route(&mut self, datagram: &Datagram) -> Vec<Duration>;
}

/// Delivers everything at once, in order.
pub struct PerfectLink;

impl Link for PerfectLink {
    fn route(&mut self, _datagram: &Datagram) -> Vec<Duration> {
        vec![Duration::ZERO]
    }
}

/// A small seedable generator (SplitMix64): a test must not depend on a crate's idea of
/// randomness changing between versions.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A whole number in `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        self.next_u64() % (max + 1)
    }
}

/// Drops each datagram with probability `loss`, duplicates it with probability
/// `duplication`, and delays each copy by 0 to `max_delay`.
pub struct LossyLink {
    pub rng: Rng,
    pub loss: f64,
    pub duplication: f64,
    pub max_delay: Duration,
}

impl LossyLink {
    pub fn new(seed: u64, loss: f64, duplication: f64, max_delay: Duration) -> LossyLink {
        LossyLink {
            rng: Rng(seed),
            loss,
            duplication,
            max_delay,
        }
    }

    fn delay(&mut self) -> Duration {
        Duration::from_micros(self.rng.up_to(self.max_delay.as_micros() as u64))
    }
}

impl Link for LossyLink {
    fn route(&mut self, _datagram: &Datagram) -> Vec<Duration> {
        if self.rng.chance(self.loss) {
            return Vec::new();
        }
        let mut copies = vec![self.delay()];
        if self.rng.chance(self.duplication) {
            copies.push(self.delay());
        }
        copies
    }
}

struct InFlight {
    deliver_at: Instant,
    seq: u64,
    datagram: Datagram,
}

/// Peers and the network between them. See the module documentation.
pub struct PeerSim {
    /// Every peer, by address (frozen ones included).
    pub peers: BTreeMap<SocketAddr, Peer>,
    pub start: Instant,
    pub now: Instant,
    /// Everything each peer reported, in order.
    pub events: BTreeMap<SocketAddr, Vec<PeerEvent>>,
    /// Peers no longer driven: no timers, nothing sent, nothing received.
    pub frozen: HashSet<SocketAddr>,
    /// Datagrams put on the wire, and their bytes, since the start.
    pub datagrams: u64,
    pub bytes: u64,
    /// Every datagram, when [`PeerSim::record`] is on (off by default: long runs would
    /// keep hundreds of thousands).
    pub wire: Vec<Datagram>,
    pub record: bool,
    config: PeerConfig,
    link: Box<dyn Link>,
    in_flight: Vec<InFlight>,
    next_seq: u64,
    next_port: u16,
}

impl PeerSim {
    /// No peers yet, a perfect network; every peer gets `config`.
    pub fn new(config: PeerConfig) -> PeerSim {
        let start = Instant::now();
        PeerSim {
            peers: BTreeMap::new(),
            start,
            now: start,
            events: BTreeMap::new(),
            frozen: HashSet::new(),
            datagrams: 0,
            bytes: 0,
            wire: Vec::new(),
            record: false,
            config,
            link: Box::new(PerfectLink),
            in_flight: Vec::new(),
            next_seq: 0,
            next_port: FIRST_PORT,
        }
    }

    /// Replaces the network's behaviour from now on.
    pub fn set_link(&mut self, link: impl Link + 'static) {
        self.link = Box::new(link);
    }

    /// The next free address.
    pub fn next_addr(&mut self) -> SocketAddr {
        let at = local(self.next_port);
        self.next_port += 1;
        at
    }

    /// The wall clock of the peer at `at` at the current instant: its port decides its
    /// skew.
    pub fn wall_ms_of(&self, at: SocketAddr) -> i64 {
        let skew = CLOCK_SKEW.as_millis() as i64 * i64::from(at.port() - FIRST_PORT);
        let elapsed = self.now.duration_since(self.start).as_millis() as i64;
        WALL_START_MS + skew + elapsed
    }

    /// Starts a new room with one peer called `name` at the next address.
    pub fn start_room(&mut self, name: &str) -> SocketAddr {
        self.start_room_with(name, BanList::default())
    }

    /// [`PeerSim::start_room`] with a ban list.
    pub fn start_room_with(&mut self, name: &str, bans: BanList) -> SocketAddr {
        let at = self.next_addr();
        let mut peer = Peer::new_room(
            name,
            self.config.clone(),
            bans,
            self.now,
            self.wall_ms_of(at),
        );
        peer.set_local_address(at);
        self.insert(at, peer)
    }

    /// Adds a peer called `name` at the next address, joining through `contacts`. Nothing
    /// is delivered until the next [`PeerSim::drive`].
    pub fn add_joiner(&mut self, name: &str, contacts: &[SocketAddr]) -> SocketAddr {
        let at = self.next_addr();
        self.add_joiner_at(at, name, contacts, BanList::default())
    }

    /// Adds a peer at `at` (which sets its clock skew), joining through `contacts`.
    pub fn add_joiner_at(
        &mut self,
        at: SocketAddr,
        name: &str,
        contacts: &[SocketAddr],
        bans: BanList,
    ) -> SocketAddr {
        let mut peer = Peer::join(
            name,
            contacts.to_vec(),
            self.config.clone(),
            bans,
            self.now,
            self.wall_ms_of(at),
        );
        peer.set_local_address(at);
        self.insert(at, peer)
    }

    fn insert(&mut self, at: SocketAddr, peer: Peer) -> SocketAddr {
        assert!(!self.peers.contains_key(&at), "two peers at {at}");
        self.peers.insert(at, peer);
        self.events.entry(at).or_default();
        at
    }

    /// Adds a joiner and runs until it is in the room (panics after `within`).
    pub fn join(&mut self, name: &str, contact: SocketAddr, within: Duration) -> SocketAddr {
        let at = self.add_joiner(name, &[contact]);
        self.run_until(within, |sim| sim.peer(at).is_in_room());
        at
    }

    pub fn peer(&self, at: SocketAddr) -> &Peer {
        self.peers
            .get(&at)
            .unwrap_or_else(|| panic!("no peer at {at}"))
    }

    pub fn peer_mut(&mut self, at: SocketAddr) -> &mut Peer {
        self.peers
            .get_mut(&at)
            .unwrap_or_else(|| panic!("no peer at {at}"))
    }

    /// The user of the peer at `at` types `text` (nothing is delivered yet).
    pub fn type_text(&mut self, at: SocketAddr, text: &str) {
        let now = self.now;
        self.peer_mut(at).send_text(now, text);
    }

    /// The user of the peer at `at` leaves (nothing is delivered yet).
    pub fn leave(&mut self, at: SocketAddr) {
        let now = self.now;
        self.peer_mut(at).leave(now);
    }

    /// The peer's process is killed: it is never driven again.
    pub fn kill(&mut self, at: SocketAddr) {
        self.frozen.insert(at);
    }

    /// Addresses of the peers still running and not closed.
    pub fn live(&self) -> Vec<SocketAddr> {
        self.peers
            .iter()
            .filter(|(at, peer)| !self.frozen.contains(at) && !peer.is_closed())
            .map(|(at, _)| *at)
            .collect()
    }

    pub fn events(&self, at: SocketAddr) -> &[PeerEvent] {
        self.events.get(&at).map_or(&[], Vec::as_slice)
    }

    pub fn clear_events(&mut self) {
        for events in self.events.values_mut() {
            events.clear();
        }
    }

    /// A datagram arrives at `to` from `from` — any address, real or forged — bypassing the
    /// network; then everything is delivered. Returns what `to` sent back to `from`
    /// meanwhile (the recording must be on to see it: it is turned on for the call).
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) -> Vec<Vec<u8>> {
        let was_recording = std::mem::replace(&mut self.record, true);
        let mark = self.wire.len();
        let now = self.now;
        if let Some(peer) = self.peers.get_mut(&to) {
            peer.handle_datagram(now, from, bytes);
        }
        self.drive();
        let replies = self.wire[mark..]
            .iter()
            .filter(|d| d.from == to && d.to == from)
            .map(|d| d.bytes.clone())
            .collect();
        self.record = was_recording;
        replies
    }

    /// Delivers datagrams until nothing moves. Panics on a livelock.
    pub fn drive(&mut self) {
        for _ in 0..MAX_ROUNDS {
            self.collect();
            let due = self.take_due();
            if due.is_empty() {
                return;
            }
            for datagram in due {
                self.deliver(datagram);
            }
        }
        panic!("the network did not settle after {MAX_ROUNDS} rounds: livelock");
    }

    /// Time passes for `total`, stopping at every deadline on the way.
    pub fn run_for(&mut self, total: Duration) {
        let end = self.now + total;
        for _ in 0..MAX_TIMER_STEPS {
            match self.next_deadline() {
                Some(deadline) if deadline <= end => {
                    self.now = self.now.max(deadline);
                    self.settle_timers();
                }
                _ => {
                    self.now = end;
                    self.settle_timers();
                    return;
                }
            }
        }
        panic!("more than {MAX_TIMER_STEPS} deadlines in {total:?}: a timer that never rests");
    }

    /// Runs in steps of 20 ms until `done` holds; panics if `within` passes first.
    pub fn run_until(&mut self, within: Duration, done: impl Fn(&PeerSim) -> bool) {
        if let Err(why) = self.try_run_until(within, done) {
            panic!("{why}");
        }
    }

    /// [`PeerSim::run_until`] that reports the timeout instead of panicking.
    pub fn try_run_until(
        &mut self,
        within: Duration,
        done: impl Fn(&PeerSim) -> bool,
    ) -> Result<(), String> {
        let end = self.now + within;
        loop {
            self.drive();
            if done(self) {
                return Ok(());
            }
            if self.now >= end {
                let members: BTreeMap<SocketAddr, Vec<String>> = self
                    .live()
                    .iter()
                    .map(|&at| {
                        let list = self
                            .peer(at)
                            .members(self.now)
                            .iter()
                            .map(|m| {
                                format!(
                                    "{} {:?} open={} idle={:?}",
                                    m.name, m.addr, m.reachable, m.idle_for
                                )
                            })
                            .collect();
                        (at, list)
                    })
                    .collect();
                return Err(format!(
                    "not done within {within:?}; members: {members:#?}; events so far: {:#?}",
                    self.summary()
                ));
            }
            self.run_for(Duration::from_millis(20));
        }
    }

    /// Runs until no live peer has anything unacknowledged (or `within` passes).
    pub fn run_until_quiet(&mut self, within: Duration) -> Result<(), String> {
        self.try_run_until(within, |sim| {
            sim.live()
                .iter()
                .all(|&at| sim.peer(at).unacknowledged() == 0)
        })
    }

    /// Every event but messages, per peer: what a failure message shows.
    pub fn summary(&self) -> BTreeMap<SocketAddr, Vec<String>> {
        self.events
            .iter()
            .map(|(at, events)| {
                let shown = events
                    .iter()
                    .filter(|e| !matches!(e, PeerEvent::Message { .. } | PeerEvent::Private { .. }))
                    .map(|e| format!("{e:?}"))
                    .collect();
                (*at, shown)
            })
            .collect()
    }

    /// The earliest instant anything is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let peers = self
            .peers
            .iter()
            .filter(|(at, _)| !self.frozen.contains(at))
            .filter_map(|(_, peer)| peer.poll_timeout());
        let datagrams = self.in_flight.iter().map(|f| f.deliver_at);
        peers.chain(datagrams).min()
    }

    fn settle_timers(&mut self) {
        for _ in 0..MAX_TIMER_STEPS {
            let now = self.now;
            let mut fired = false;
            for (at, peer) in &mut self.peers {
                if !self.frozen.contains(at) && peer.poll_timeout().is_some_and(|t| t <= now) {
                    peer.handle_timeout(now);
                    fired = true;
                }
            }
            self.drive();
            if !fired {
                return;
            }
        }
        panic!("timers kept firing at one instant: a busy loop");
    }

    fn collect(&mut self) {
        let mut outgoing = Vec::new();
        for (at, peer) in &mut self.peers {
            if self.frozen.contains(at) {
                continue;
            }
            while let Some((to, bytes)) = peer.poll_transmit() {
                outgoing.push(Datagram {
                    from: *at,
                    to,
                    bytes,
                });
            }
            let log = self.events.entry(*at).or_default();
            while let Some(event) = peer.poll_event() {
                log.push(event);
            }
        }
        let trace = std::env::var_os("ICQ_TRACE").is_some();
        for datagram in outgoing {
            self.datagrams += 1;
            self.bytes += datagram.bytes.len() as u64;
            let routes = self.link.route(&datagram);
            if trace {
                let t = self.now.duration_since(self.start).as_millis();
                let frame = datagram
                    .frame()
                    .map_or("?".to_owned(), |f| format!("{f:?}"));
                let frame: String = frame.chars().take(160).collect();
                eprintln!(
                    "{t:>6} {} -> {} {} {frame}",
                    datagram.from.port(),
                    datagram.to.port(),
                    if routes.is_empty() { "LOST" } else { "    " }
                );
            }
            for delay in routes {
                self.in_flight.push(InFlight {
                    deliver_at: self.now + delay,
                    seq: self.next_seq,
                    datagram: datagram.clone(),
                });
                self.next_seq += 1;
            }
            if self.record {
                self.wire.push(datagram);
            }
        }
    }

    fn take_due(&mut self) -> Vec<Datagram> {
        let now = self.now;
        let (mut due, later): (Vec<InFlight>, Vec<InFlight>) =
            self.in_flight.drain(..).partition(|f| f.deliver_at <= now);
        self.in_flight = later;
        due.sort_by_key(|f| (f.deliver_at, f.seq));
        due.into_iter().map(|f| f.datagram).collect()
    }

    fn deliver(&mut self, datagram: Datagram) {
        if self.frozen.contains(&datagram.to) {
            return;
        }
        if let Some(peer) = self.peers.get_mut(&datagram.to) {
            peer.handle_datagram(self.now, datagram.from, &datagram.bytes);
        }
    }
}

/// The chat messages among `events`, as `(from, text, own)`.
pub fn messages(events: &[PeerEvent]) -> Vec<(String, String, bool)> {
    events
        .iter()
        .filter_map(|event| match event {
            PeerEvent::Message {
                from, text, own, ..
            } => Some((from.clone(), text.clone(), *own)),
            _ => None,
        })
        .collect()
}

/// The names in the member list of the peer at `at`, sorted, with incarnations.
pub fn roster(sim: &PeerSim, at: SocketAddr) -> Vec<(String, u64)> {
    sim.peer(at)
        .members(sim.now)
        .into_iter()
        .map(|m| (m.name, m.id))
        .collect()
}

/// Whether every peer in `peers` has the same member list, of `peers` exactly, with every
/// pair's streams open.
pub fn converged(sim: &PeerSim, peers: &[SocketAddr]) -> bool {
    let mut expected: Vec<(String, u64)> = peers
        .iter()
        .map(|&at| (sim.peer(at).name().to_owned(), sim.peer(at).id()))
        .collect();
    expected.sort_by_cached_key(|(name, id)| (icq::names::fold(name), *id));
    peers.iter().all(|&at| {
        sim.peer(at).is_in_room()
            && roster(sim, at) == expected
            && sim.peer(at).members(sim.now).iter().all(|m| m.reachable)
    })
}
