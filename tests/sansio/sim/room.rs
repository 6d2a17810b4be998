//! The server and its clients on the simulated network: [`Sim`] is a [`Net`] whose parties
//! are one `icq` server (at [`SERVER_ADDR`]) and any number of clients, each at a fake
//! address, with everything each of them reported. It adds what the tests do as the
//! clients' users (join, type, leave) and as an attacker (inject and forge frames), and
//! the helpers that read the clients' events.
//!
//! It does not own any expectation about the protocol: the tests decide what the logs must
//! contain.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use icq::bans::list::BanList;
use icq::client::{Client, ClientEvent};
use icq::proto::chat::ChatEvent;
use icq::server::{Server, ServerConfig, ServerEvent};
use icq::wire::{Acks, Envelope, Frame, RefuseReason, Request, ToClient, ToServer};

use super::{Core, Net, Parties, WALL_START_MS, addr};

/// Where the simulated server listens.
pub const SERVER_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000);

/// The port of the first client added with [`Sim::add_client`]; the next get 10002, 10003...
pub const FIRST_CLIENT_PORT: u16 = 10001;

/// One server, its clients and the network between them.
pub type Sim = Net<Room>;

/// The parties of a [`Sim`]: the server, its clients, and what each reported.
pub struct Room {
    /// The server under test. Tests call its console methods (`kick`, `shutdown`...) directly
    /// and then [`Net::drive`] to deliver what it queued.
    pub server: Server,
    /// Where the server listens; the same across [`Sim::restart_server`].
    pub server_addr: SocketAddr,
    /// Every client, by the address it sends from.
    pub clients: BTreeMap<SocketAddr, Client>,
    /// Everything each client reported, in order, until a test takes it.
    pub client_events: BTreeMap<SocketAddr, Vec<ClientEvent>>,
    /// Everything the server reported, in order, until a test takes it.
    pub server_events: Vec<ServerEvent>,
    next_port: u16,
}

impl Parties for Room {
    fn each(&mut self, visit: &mut dyn FnMut(SocketAddr, &mut dyn Core)) {
        visit(self.server_addr, &mut self.server);
        for (&at, client) in &mut self.clients {
            visit(at, client);
        }
    }

    fn next_timeout(&self, frozen: &std::collections::HashSet<SocketAddr>) -> Option<Instant> {
        let clients = self
            .clients
            .iter()
            .filter(|(at, _)| !frozen.contains(at))
            .filter_map(|(_, client)| client.poll_timeout());
        self.server.poll_timeout().into_iter().chain(clients).min()
    }

    fn at(&mut self, at: SocketAddr) -> Option<&mut dyn Core> {
        if at == self.server_addr {
            Some(&mut self.server)
        } else {
            self.clients
                .get_mut(&at)
                .map(|client| client as &mut dyn Core)
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
        let mut server = Server::new(config, bans, start, WALL_START_MS);
        server.set_local_address(SERVER_ADDR);
        let room = Room {
            server,
            server_addr: SERVER_ADDR,
            clients: BTreeMap::new(),
            client_events: BTreeMap::new(),
            server_events: Vec::new(),
            next_port: FIRST_CLIENT_PORT,
        };
        Net::with_parties(room, start)
    }

    /// The server's wall clock at the current instant: what it stamps messages with.
    pub fn wall_ms(&self) -> i64 {
        WALL_START_MS + self.elapsed_ms()
    }

    /// Replaces the server by a fresh one at the same address, as if the process restarted:
    /// it knows no client. Datagrams in flight to the old one reach the new one.
    pub fn restart_server(&mut self, mut config: ServerConfig) {
        config.hash_seed = 0;
        let (now, wall_ms) = (self.now, self.wall_ms());
        self.server = Server::new(config, BanList::default(), now, wall_ms);
        self.server.set_local_address(SERVER_ADDR);
    }

    /// Adds a client called `name` at the next free port of 127.0.0.1, talking to the
    /// server. It starts joining (its first join is queued) but nothing is delivered until
    /// the next [`Sim::drive`], so a test can type lines while it joins.
    pub fn add_client(&mut self, name: &str) -> SocketAddr {
        let at = addr([127, 0, 0, 1], self.parties.next_port);
        self.parties.next_port += 1;
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
        let client = Client::new(name, servers, self.now);
        self.clients.insert(at, client);
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

    /// Joins clients with these names one after the other (see [`Sim::join`]), then forgets
    /// every event so far: the test starts in a settled room.
    pub fn join_settled<const N: usize>(&mut self, names: [&str; N]) -> [SocketAddr; N] {
        let joined = names.map(|name| self.join(name));
        self.clear_events();
        joined
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
        let to = self.server_addr;
        self.inject_to(from, to, bytes)
    }

    /// [`Sim::inject`] of an encoded frame; the replies decoded (a reply that is not a frame
    /// fails the test).
    pub fn inject_frame(&mut self, from: SocketAddr, frame: &Frame) -> Vec<Frame> {
        self.inject(from, &frame.to_bytes())
            .iter()
            .map(|bytes| Frame::decode(bytes).expect("the server sends well-formed frames"))
            .collect()
    }
}

/// The chat messages among `events`, as `(from, text, own)`.
pub fn messages(events: &[ClientEvent]) -> Vec<(String, String, bool)> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Chat(ChatEvent::Message {
                from, text, own, ..
            }) => Some((from.clone(), text.clone(), *own)),
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
            ClientEvent::Chat(ChatEvent::Presence { name, change, .. }) => {
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
    join_having_seen(name, cookie, Seen::NOTHING)
}

/// What a joining client says it has shown of the server's history (the join's
/// `history_epoch` and `history_seen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub epoch: u64,
    pub seq: u64,
}

impl Seen {
    /// A client that has shown no line.
    pub const NOTHING: Seen = Seen { epoch: 0, seq: 0 };
}

/// A join by a client that has shown `seen` of the history.
pub fn join_having_seen(name: &str, cookie: u64, seen: Seen) -> Frame {
    join_with_nonce(NONCE, name, cookie, seen)
}

/// A join with `nonce`: a test that answers the challenge to someone else's join repeats
/// that join's nonce, since the cookie is bound to it.
pub fn join_with_nonce(nonce: u64, name: &str, cookie: u64, seen: Seen) -> Frame {
    Frame::ToServer(ToServer::Join {
        nonce,
        cookie,
        previous_token: 0,
        history_epoch: seen.epoch,
        history_seen: seen.seq,
        name: name.to_owned(),
    })
}

/// Joins from `from` as a real client would: a join, the server's challenge, the join again
/// with the cookie. Returns the server's answers to the second join.
pub fn forge_join(sim: &mut Sim, from: SocketAddr, name: &str) -> Vec<Frame> {
    forge_join_having_seen(sim, from, name, Seen::NOTHING)
}

/// [`forge_join`] by a client that has shown `seen` of the history.
pub fn forge_join_having_seen(
    sim: &mut Sim,
    from: SocketAddr,
    name: &str,
    seen: Seen,
) -> Vec<Frame> {
    let replies = sim.inject_frame(from, &join_having_seen(name, 0, seen));
    let [Frame::ToClient(ToClient::Challenge { nonce, cookie })] = replies[..] else {
        panic!("a join without a cookie is challenged, got {replies:?}");
    };
    assert_eq!(nonce, NONCE);
    sim.inject_frame(from, &join_having_seen(name, cookie, seen))
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
