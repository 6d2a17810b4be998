//! An in-memory network that drives one `icq` server and several clients together, with no
//! sockets and a fake clock, in the style of quinn-proto's test `Pair`.
//!
//! [`Sim`] owns the server, the clients (each at a fake address), the current instant,
//! everything each party reported (client and server events), and a log of every datagram
//! put on the wire. A [`Link`] decides what the network does with each datagram — deliver it
//! now, later, twice, or never — so a lossy or reordering network is one `Link` away; the
//! default [`PerfectLink`] delivers everything at once, in order. Time only moves when a test
//! says so ([`Sim::advance`], [`Sim::advance_in_steps`], [`Sim::run_for`]); nothing sleeps.
//!
//! It does not own any expectation about the protocol: the tests decide what the logs must
//! contain. The only rule it enforces itself is that the system settles: a burst of datagrams
//! that never dies down, or a timer that stays due after it fired, is a livelock and panics.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use icq::banlist::BanList;
use icq::client::{Client, ClientEvent};

use icq::server::{Server, ServerConfig, ServerEvent};
use icq::wire::Acks;
use icq::wire::{Envelope, Frame, RefuseReason};
use icq::wire::{Request, ToClient, ToServer};

/// Where the simulated server listens.
pub const SERVER_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000);

/// The port of the first client added with [`Sim::add_client`]; the next get 10002, 10003...
pub const FIRST_CLIENT_PORT: u16 = 10001;

/// The wall-clock time (ms since the Unix epoch) at the simulation's start: 2026-01-01
/// 00:00:00 UTC. Fixed, so message timestamps are known in advance.
pub const WALL_START_MS: i64 = 1_767_225_600_000;

/// How many rounds of "collect every datagram, deliver every datagram" [`Sim::drive`] allows
/// before declaring a livelock. A healthy exchange settles in a handful of rounds.
const MAX_ROUNDS: usize = 10_000;

/// How many timer firings one call of [`Sim::run_for`] or [`Sim::advance`] allows.
const MAX_TIMER_STEPS: usize = 1_000_000;

/// `ip:port` for an IPv4 address, for the addresses tests invent.
pub fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

/// One datagram as it was put on the wire.
#[derive(Debug, Clone)]
pub struct Datagram {
    /// The sender's address (for an injected datagram, whatever address the test forged).
    pub from: SocketAddr,
    /// Where it was sent.
    pub to: SocketAddr,
    /// The payload, byte for byte.
    pub bytes: Vec<u8>,
    /// When it was sent.
    pub sent_at: Instant,
}

impl Datagram {
    /// The payload decoded as a protocol frame, or `None` if it is not one (a guest's text).
    pub fn frame(&self) -> Option<Frame> {
        Frame::decode(&self.bytes).ok()
    }
}

/// What the network does with each datagram.
pub trait Link {
    /// The delays after which copies of `datagram` arrive: empty drops it, one entry delivers
    /// it once, two entries duplicate it. A zero delay delivers it in the current
    /// [`Sim::drive`]; a longer one holds it until the clock reaches it.
    fn route(&mut self, now: Instant, datagram: &Datagram) -> Vec<Duration>;
}

/// A network that loses nothing and delivers every datagram at once, in the order sent.
pub struct PerfectLink;

impl Link for PerfectLink {
    fn route(&mut self, _now: Instant, _datagram: &Datagram) -> Vec<Duration> {
        vec![Duration::ZERO]
    }
}

/// A datagram the link accepted and that has not arrived yet.
struct InFlight {
    deliver_at: Instant,
    /// Send order, so datagrams due at the same instant arrive in the order they were sent.
    seq: u64,
    datagram: Datagram,
}

/// One server, its clients and the network between them. See the module documentation.
pub struct Sim {
    /// The server under test. Tests call its console methods (`kick`, `shutdown`...) directly
    /// and then [`Sim::drive`] to deliver what it queued.
    pub server: Server,
    /// Where the server listens; the same across [`Sim::restart_server`].
    pub server_addr: SocketAddr,
    /// Every client, by the address it sends from.
    pub clients: BTreeMap<SocketAddr, Client>,
    /// The instant the simulation started.
    pub start: Instant,
    /// The current instant. Only the `advance`/`run_for` methods move it.
    pub now: Instant,
    /// Everything each client reported, in order, until a test takes it.
    pub client_events: BTreeMap<SocketAddr, Vec<ClientEvent>>,
    /// Everything the server reported, in order, until a test takes it.
    pub server_events: Vec<ServerEvent>,
    /// Every datagram anyone sent (or a test injected), in order, whatever became of it.
    pub wire: Vec<Datagram>,
    /// Addresses whose outgoing datagrams the network drops (the party still runs).
    pub muted: HashSet<SocketAddr>,
    /// Clients no longer driven at all: no timers, nothing sent, nothing received — as if
    /// the process were suspended.
    pub frozen: HashSet<SocketAddr>,
    link: Box<dyn Link>,
    in_flight: Vec<InFlight>,
    next_seq: u64,
    next_port: u16,
}

impl Sim {
    /// A simulation around a fresh server with `config` and no bans, on a perfect network.
    pub fn new(config: ServerConfig) -> Sim {
        Sim::with_bans(config, BanList::default())
    }

    /// A simulation around a fresh server with `config` and `bans` in force.
    pub fn with_bans(mut config: ServerConfig, bans: BanList) -> Sim {
        // A fixed hash seed: the server's table order, and so the order of its datagrams,
        // is the same on every run, and a seeded lossy network replays exactly.
        config.hash_seed = 0;
        let start = Instant::now();
        Sim {
            server: {
                let mut server = Server::new(config, bans, start, WALL_START_MS);
                server.set_local_address(SERVER_ADDR);
                server
            },
            server_addr: SERVER_ADDR,
            clients: BTreeMap::new(),
            start,
            now: start,
            client_events: BTreeMap::new(),
            server_events: Vec::new(),
            wire: Vec::new(),
            muted: HashSet::new(),
            frozen: HashSet::new(),
            link: Box::new(PerfectLink),
            in_flight: Vec::new(),
            next_seq: 0,
            next_port: FIRST_CLIENT_PORT,
        }
    }

    /// Replaces the network's behaviour (loss, delay, duplication) from now on.
    pub fn set_link(&mut self, link: impl Link + 'static) {
        self.link = Box::new(link);
    }

    /// The server's wall clock at the current instant: what it stamps messages with.
    pub fn wall_ms(&self) -> i64 {
        let elapsed = self.now.duration_since(self.start).as_millis();
        WALL_START_MS + i64::try_from(elapsed).expect("a test runs for less than 292 My")
    }

    /// Replaces the server by a fresh one at the same address, as if the process restarted:
    /// it knows no client. Datagrams in flight to the old one reach the new one.
    pub fn restart_server(&mut self, mut config: ServerConfig) {
        config.hash_seed = 0;
        self.server = Server::new(config, BanList::default(), self.now, self.wall_ms());
        self.server.set_local_address(SERVER_ADDR);
    }

    /// Adds a client called `name` at the next free port of 127.0.0.1, talking to the
    /// server. It starts joining (its first join is queued) but nothing is delivered until
    /// the next [`Sim::drive`], so a test can type lines while it joins.
    pub fn add_client(&mut self, name: &str) -> SocketAddr {
        let at = addr([127, 0, 0, 1], self.next_port);
        self.next_port += 1;
        let servers = vec![self.server_addr];
        self.add_client_at(at, name, servers)
    }

    /// Adds a client called `name` sending from `at`, trying `servers` in order.
    pub fn add_client_at(
        &mut self,
        at: SocketAddr,
        name: &str,
        servers: Vec<SocketAddr>,
    ) -> SocketAddr {
        assert!(!self.clients.contains_key(&at), "two clients at {at}");
        self.clients
            .insert(at, Client::new(name, servers, self.now));
        self.client_events.entry(at).or_default();
        at
    }

    /// Adds a client called `name`, delivers everything, and checks that it joined.
    pub fn join(&mut self, name: &str) -> SocketAddr {
        let at = self.add_client(name);
        self.drive();
        self.expect_joined(at);
        at
    }

    /// Adds a client called `name` at `at`, delivers everything, and checks that it joined.
    pub fn join_at(&mut self, at: SocketAddr, name: &str) -> SocketAddr {
        let servers = vec![self.server_addr];
        self.add_client_at(at, name, servers);
        self.drive();
        self.expect_joined(at);
        at
    }

    fn expect_joined(&self, at: SocketAddr) {
        let joined = self.client_events[&at]
            .iter()
            .any(|event| matches!(event, ClientEvent::Joined { .. }));
        assert!(
            joined,
            "client at {at} did not join: {:?}",
            self.client_events[&at]
        );
    }

    /// The client at `at`.
    pub fn client(&self, at: SocketAddr) -> &Client {
        self.clients
            .get(&at)
            .unwrap_or_else(|| panic!("no client at {at}"))
    }

    /// The client at `at`, to call its methods with [`Sim::now`].
    pub fn client_mut(&mut self, at: SocketAddr) -> &mut Client {
        self.clients
            .get_mut(&at)
            .unwrap_or_else(|| panic!("no client at {at}"))
    }

    /// The user of the client at `at` types `text`; then everything is delivered.
    pub fn send_text(&mut self, at: SocketAddr, text: &str) {
        let now = self.now;
        self.client_mut(at).send_text(now, text);
        self.drive();
    }

    /// The user of the client at `at` types `/list`; then everything is delivered.
    pub fn request_list(&mut self, at: SocketAddr) {
        let now = self.now;
        self.client_mut(at).request_list(now);
        self.drive();
    }

    /// The user of the client at `at` types `/quit`; then everything is delivered.
    pub fn leave(&mut self, at: SocketAddr) {
        let now = self.now;
        self.client_mut(at).leave(now);
        self.drive();
    }

    /// Everything the client at `at` reported and no test has taken yet.
    pub fn events(&self, at: SocketAddr) -> &[ClientEvent] {
        self.client_events.get(&at).map_or(&[], Vec::as_slice)
    }

    /// Takes everything the client at `at` reported so far.
    pub fn take_events(&mut self, at: SocketAddr) -> Vec<ClientEvent> {
        self.client_events
            .get_mut(&at)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Forgets every client's and the server's events so far (the start of a test's "act").
    pub fn clear_events(&mut self) {
        for events in self.client_events.values_mut() {
            events.clear();
        }
        self.server_events.clear();
    }

    /// Takes everything the server reported so far.
    pub fn take_server_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.server_events)
    }

    /// The session token the server gave `client` in its latest welcome, as seen on the
    /// wire; forged frames need it to pass for the client's.
    pub fn token(&self, client: SocketAddr) -> u64 {
        self.wire
            .iter()
            .rev()
            .filter(|d| d.to == client)
            .find_map(|d| match d.frame() {
                Some(Frame::ToClient(ToClient::Welcome { token, .. })) => Some(token),
                _ => None,
            })
            .expect("the client was welcomed")
    }

    /// A position in the wire log, to look at what was sent after it.
    pub fn mark(&self) -> usize {
        self.wire.len()
    }

    /// Every datagram sent since `mark`.
    pub fn sent_since(&self, mark: usize) -> &[Datagram] {
        &self.wire[mark..]
    }

    /// The payloads the server sent to `to` since `mark`.
    pub fn server_sent_to(&self, to: SocketAddr, mark: usize) -> Vec<Vec<u8>> {
        self.wire[mark..]
            .iter()
            .filter(|d| d.from == self.server_addr && d.to == to)
            .map(|d| d.bytes.clone())
            .collect()
    }

    /// A datagram arrives at the server from `from` — any address, joined or not, real or
    /// forged — bypassing the link. Everything is then delivered; the result is every
    /// payload the server sent back to `from` meanwhile.
    pub fn inject(&mut self, from: SocketAddr, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mark = self.mark();
        self.wire.push(Datagram {
            from,
            to: self.server_addr,
            bytes: bytes.to_vec(),
            sent_at: self.now,
        });
        self.server.handle_datagram(self.now, from, bytes);
        self.drive();
        self.server_sent_to(from, mark)
    }

    /// [`Sim::inject`] of an encoded frame; the replies decoded (a reply that is not a frame
    /// fails the test).
    pub fn inject_frame(&mut self, from: SocketAddr, frame: &Frame) -> Vec<Frame> {
        self.inject(from, &frame.to_bytes())
            .iter()
            .map(|bytes| Frame::decode(bytes).expect("the server sends well-formed frames"))
            .collect()
    }

    /// Delivers datagrams until nothing moves: collect every datagram the server and the
    /// clients want to send, hand each to the link, deliver those due, collect events, and
    /// repeat. Panics if the exchange does not settle (a livelock is a bug).
    pub fn drive(&mut self) {
        for _ in 0..MAX_ROUNDS {
            self.collect_transmits();
            self.collect_events();
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

    /// Moves the clock forward by `by`, lets everyone whose deadline has passed handle its
    /// timeout (once, at the new instant — a long jump skips the deadlines in between, as a
    /// stalled process would), and delivers everything.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.settle_timers();
    }

    /// Time passes `step` at a time for `total` (the last step may be shorter), with timers
    /// and deliveries handled after every step: heartbeats go out between the steps.
    pub fn advance_in_steps(&mut self, total: Duration, step: Duration) {
        assert!(!step.is_zero(), "a zero step would never end");
        let end = self.now + total;
        while self.now < end {
            let by = step.min(end - self.now);
            self.advance(by);
        }
    }

    /// Time passes for `total`, stopping at every deadline on the way (timers and delayed
    /// datagrams) exactly when it falls due: the most faithful way to let time pass.
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

    /// The earliest instant anything is due: a timer of the server or of a running client,
    /// or a delayed datagram.
    pub fn next_deadline(&self) -> Option<Instant> {
        let server = self.server.poll_timeout();
        let clients = self
            .clients
            .iter()
            .filter(|(at, _)| !self.frozen.contains(at))
            .filter_map(|(_, client)| client.poll_timeout());
        let datagrams = self.in_flight.iter().map(|f| f.deliver_at);
        server.into_iter().chain(clients).chain(datagrams).min()
    }

    /// Fires every timer that is due and delivers everything, until nothing is due. A timer
    /// still due right after it fired would make a real program spin: that panics.
    fn settle_timers(&mut self) {
        for _ in 0..MAX_TIMER_STEPS {
            let now = self.now;
            let mut fired = false;
            if self.server.poll_timeout().is_some_and(|t| t <= now) {
                self.server.handle_timeout(now);
                fired = true;
            }
            for (at, client) in &mut self.clients {
                if !self.frozen.contains(at) && client.poll_timeout().is_some_and(|t| t <= now) {
                    client.handle_timeout(now);
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

    /// Puts everything the server and the running clients want to send on the wire.
    fn collect_transmits(&mut self) {
        let mut outgoing = Vec::new();
        while let Some(transmit) = self.server.poll_transmit() {
            outgoing.push(Datagram {
                from: self.server_addr,
                to: transmit.destination,
                bytes: transmit.to_vec(),
                sent_at: self.now,
            });
        }
        for (at, client) in &mut self.clients {
            if self.frozen.contains(at) {
                continue;
            }
            while let Some((to, bytes)) = client.poll_transmit() {
                outgoing.push(Datagram {
                    from: *at,
                    to,
                    bytes,
                    sent_at: self.now,
                });
            }
        }
        for datagram in outgoing {
            if !self.muted.contains(&datagram.from) {
                for delay in self.link.route(self.now, &datagram) {
                    self.in_flight.push(InFlight {
                        deliver_at: self.now + delay,
                        seq: self.next_seq,
                        datagram: datagram.clone(),
                    });
                    self.next_seq += 1;
                }
            }
            self.wire.push(datagram);
        }
    }

    fn collect_events(&mut self) {
        while let Some(event) = self.server.poll_event() {
            self.server_events.push(event);
        }
        for (at, client) in &mut self.clients {
            let log = self.client_events.entry(*at).or_default();
            while let Some(event) = client.poll_event() {
                log.push(event);
            }
        }
    }

    /// Removes and returns the datagrams due by now, in arrival order.
    fn take_due(&mut self) -> Vec<Datagram> {
        let now = self.now;
        let (mut due, later): (Vec<InFlight>, Vec<InFlight>) =
            self.in_flight.drain(..).partition(|f| f.deliver_at <= now);
        self.in_flight = later;
        due.sort_by_key(|f| (f.deliver_at, f.seq));
        due.into_iter().map(|f| f.datagram).collect()
    }

    /// Hands one datagram to whoever listens at its destination; nobody may (then it is
    /// lost, as UDP to a closed port is).
    fn deliver(&mut self, datagram: Datagram) {
        if datagram.to == self.server_addr {
            self.server
                .handle_datagram(self.now, datagram.from, &datagram.bytes);
        } else if self.frozen.contains(&datagram.to) {
            // A suspended process reads nothing; the datagram is lost.
        } else if let Some(client) = self.clients.get_mut(&datagram.to) {
            client.handle_datagram(self.now, datagram.from, &datagram.bytes);
        }
    }
}

/// The chat messages among `events`, as `(from, text, own)`.
pub fn messages(events: &[ClientEvent]) -> Vec<(String, String, bool)> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Message {
                from, text, own, ..
            } => Some((from.clone(), text.clone(), *own)),
            _ => None,
        })
        .collect()
}

/// The texts of the notices among `events`, presence news included (in the words the
/// client shows it in).
pub fn notices(events: &[ClientEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Notice { text, .. } => Some(text.clone()),
            ClientEvent::Presence { name, change, .. } => {
                Some(icq::text::presence_text(name, change))
            }
            _ => None,
        })
        .collect()
}

// Forging frames, as an attacker (or a test) would ---------------------------------------

/// The nonce of every join these tests forge: the server only repeats it.
pub const NONCE: u64 = 7;

/// A join as a client first sends it, without a cookie.
pub fn join_frame(name: &str) -> Frame {
    join_with_cookie(name, 0)
}

pub fn join_with_cookie(name: &str, cookie: u64) -> Frame {
    Frame::ToServer(ToServer::Join {
        nonce: NONCE,
        cookie,
        previous_token: 0,
        name: name.to_owned(),
    })
}

/// Joins from `from` as a real client would: a join, the server's challenge, the join again
/// with the cookie. Returns the server's answers to the second join.
pub fn forge_join(sim: &mut Sim, from: SocketAddr, name: &str) -> Vec<Frame> {
    let replies = sim.inject_frame(from, &join_frame(name));
    let [Frame::ToClient(ToClient::Challenge { nonce, cookie })] = replies[..] else {
        panic!("a join without a cookie is challenged, got {replies:?}");
    };
    assert_eq!(nonce, NONCE);
    sim.inject_frame(from, &join_with_cookie(name, cookie))
}

/// The server's refusal of a join forged with [`join_frame`].
pub fn refused(reason: RefuseReason) -> Frame {
    Frame::ToClient(ToClient::Refused {
        nonce: NONCE,
        reason,
    })
}

/// The envelope of a sequenced frame in session `token`, acknowledging nothing.
pub fn envelope(token: u64, seq: u32) -> Envelope {
    Envelope {
        token,
        seq,
        acks: Acks::default(),
    }
}

pub fn chat_frame(token: u64, seq: u32, text: &str) -> Frame {
    Frame::ToServer(ToServer::Sequenced(
        envelope(token, seq),
        Request::Chat {
            // The client's stamp: as if sent at the start of its session. A hand-made frame
            // is a burst, counted as sent at once, which is what the flood tests want.
            sent_ms: 0,
            text: text.to_owned(),
        },
    ))
}

pub fn heartbeat_frame(token: u64) -> Frame {
    Frame::ToServer(ToServer::Heartbeat {
        token,
        acks: Acks::default(),
    })
}
