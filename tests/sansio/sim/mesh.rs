//! Peers on the simulated network: [`PeerSim`] is a [`Net`] whose parties are sans-IO peers
//! (`icq::peer::Peer`), each at a fake address on 127.0.0.1 with its own wall clock, skewed
//! so that "the sender's time" is visible, and everything each reported. It adds what the
//! tests do as the peers' users (start a room, join, type, leave, be killed) and the
//! helpers that read their events and member lists. The wire log is off unless a test
//! turns [`Net::record`] on: long runs would keep hundreds of thousands of datagrams.
//!
//! It does not own expectations about the protocol: the tests do.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use icq::bans::list::BanList;
use icq::peer::{Peer, PeerConfig, PeerEvent};
use icq::proto::chat::ChatEvent;

use super::{Core, Net, Parties, WALL_START_MS, addr};

/// The port of the first peer; the next get 20002, 20003...
pub const FIRST_PORT: u16 = 20001;

/// How far apart the peers' wall clocks are: peer `n` (from 0) is `n` skews ahead of
/// [`WALL_START_MS`].
pub const CLOCK_SKEW: Duration = Duration::from_secs(7);

/// `127.0.0.1:port`.
pub fn local(port: u16) -> SocketAddr {
    addr([127, 0, 0, 1], port)
}

/// Peers and the network between them.
pub type PeerSim = Net<Mesh>;

/// The parties of a [`PeerSim`]: every peer (killed ones included) and what each reported.
pub struct Mesh {
    /// Every peer, by address (frozen ones included).
    pub peers: BTreeMap<SocketAddr, Peer>,
    /// Everything each peer reported, in order.
    pub events: BTreeMap<SocketAddr, Vec<PeerEvent>>,
    /// What every new peer is configured with.
    config: PeerConfig,
    next_port: u16,
}

impl Parties for Mesh {
    fn each(&mut self, visit: &mut dyn FnMut(SocketAddr, &mut dyn Core)) {
        for (&at, peer) in &mut self.peers {
            visit(at, peer);
        }
    }

    fn next_timeout(&self, frozen: &HashSet<SocketAddr>) -> Option<Instant> {
        self.peers
            .iter()
            .filter(|(at, _)| !frozen.contains(at))
            .filter_map(|(_, peer)| peer.poll_timeout())
            .min()
    }

    fn at(&mut self, at: SocketAddr) -> Option<&mut dyn Core> {
        self.peers.get_mut(&at).map(|peer| peer as &mut dyn Core)
    }

    fn collect_events(&mut self) {
        for (at, peer) in &mut self.peers {
            let log = self.events.entry(*at).or_default();
            while let Some(event) = peer.poll_event() {
                log.push(event);
            }
        }
    }
}

impl PeerSim {
    /// No peers yet, a perfect network; every peer gets `config`.
    pub fn new(config: PeerConfig) -> PeerSim {
        let mesh = Mesh {
            peers: BTreeMap::new(),
            events: BTreeMap::new(),
            config,
            next_port: FIRST_PORT,
        };
        let mut sim = Net::with_parties(mesh, Instant::now());
        sim.record = false;
        sim
    }

    /// The next free address.
    pub fn next_addr(&mut self) -> SocketAddr {
        let at = local(self.parties.next_port);
        self.parties.next_port += 1;
        at
    }

    /// The wall clock of the peer at `at` at the current instant: its port decides its
    /// skew.
    pub fn wall_ms_of(&self, at: SocketAddr) -> i64 {
        let skew = CLOCK_SKEW.as_millis() as i64 * i64::from(at.port() - FIRST_PORT);
        WALL_START_MS + skew + self.elapsed_ms()
    }

    /// Starts a new room with one peer called `name` at the next address.
    pub fn start_room(&mut self, name: &str) -> SocketAddr {
        self.start_room_with(name, BanList::default())
    }

    /// [`PeerSim::start_room`] with a ban list.
    pub fn start_room_with(&mut self, name: &str, bans: BanList) -> SocketAddr {
        let at = self.next_addr();
        let (config, now, wall_ms) = (self.config.clone(), self.now, self.wall_ms_of(at));
        self.insert(at, Peer::new_room(name, config, bans, now, wall_ms))
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
        let (config, now, wall_ms) = (self.config.clone(), self.now, self.wall_ms_of(at));
        let contacts = contacts.to_vec();
        self.insert(at, Peer::join(name, contacts, config, bans, now, wall_ms))
    }

    /// Puts `peer` at `at`, telling it its own address.
    fn insert(&mut self, at: SocketAddr, mut peer: Peer) -> SocketAddr {
        assert!(!self.peers.contains_key(&at), "two peers at {at}");
        peer.set_local_address(at);
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
    /// meanwhile.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.inject_to(from, to, bytes)
    }

    /// Runs in steps of 20 ms until `done` holds; panics if `within` passes first.
    pub fn run_until(&mut self, within: Duration, done: impl Fn(&PeerSim) -> bool) {
        if let Err(why) = self.try_run_until(within, done) {
            panic!("{why}");
        }
    }

    /// [`PeerSim::run_until`] that reports the timeout, with every live peer's member list
    /// and every event but messages, instead of panicking.
    pub fn try_run_until(
        &mut self,
        within: Duration,
        done: impl Fn(&PeerSim) -> bool,
    ) -> Result<(), String> {
        self.run_until_or_explain(within, done, |sim| {
            let members: BTreeMap<SocketAddr, Vec<String>> = sim
                .live()
                .iter()
                .map(|&at| {
                    let list = sim
                        .peer(at)
                        .members(sim.now)
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
            format!("members: {members:#?}; events so far: {:#?}", sim.summary())
        })
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
                    .filter(|e| {
                        !matches!(
                            e,
                            PeerEvent::Chat(ChatEvent::Message { .. })
                                | PeerEvent::Chat(ChatEvent::Private { .. })
                        )
                    })
                    .map(|e| format!("{e:?}"))
                    .collect();
                (*at, shown)
            })
            .collect()
    }
}

/// The chat messages among `events`, as `(from, text, own)`.
pub fn messages(events: &[PeerEvent]) -> Vec<(String, String, bool)> {
    events
        .iter()
        .filter_map(|event| match event {
            PeerEvent::Chat(ChatEvent::Message {
                from, text, own, ..
            }) => Some((from.clone(), text.clone(), *own)),
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
