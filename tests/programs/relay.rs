//! A bad network on loopback for tests with the real binaries: a UDP relay between the
//! clients and the server that drops, duplicates and delays (so reorders) datagrams, with
//! every decision drawn from a seeded generator.
//!
//! [`Relay`] owns one socket facing the clients (its address is what clients are given as
//! `--server`) and, for each client address it hears from, one socket of its own facing the
//! server, so the server sees as many distinct clients as there are and answers each on its
//! own socket. What arrives on either side is forwarded to the other, each datagram going
//! through the [`Impairment`] in force: lost, or sent once or twice, each copy after its own
//! random delay. Three kinds of threads do the work: one receives from the clients, one per
//! client receives from the server, and one sends every copy when its delay is over. All of
//! them stop when the relay is dropped (a shared stop flag; receives use a short timeout so
//! they notice it) and the drop joins them, so a test never leaves a thread behind.
//!
//! Determinism: each flow (one client, one direction) draws from its own [`Rng`],
//! derived from the seed, the client's number (in the order clients first spoke) and the
//! direction, and every datagram draws the same four numbers whatever the impairment. So
//! the fate of the n-th datagram of a flow depends only on the seed and the impairment —
//! though which datagrams the programs send, and when, still depends on real time.
//!
//! [`Relay::stats`] counts what happened in each direction ([`RelayStats`]), for checks and
//! for figures such as datagrams per delivered message. With `ICQ_RELAY_TRACE=1` in the
//! environment, every datagram's fate is printed on stderr, one line each: milliseconds
//! since the relay started, direction, client number, fate, and the frame as
//! `icq::wire::Frame` decodes it — what to read when a lossy test fails.
//!
//! It is for tests only: it listens on loopback, serves at most [`MAX_CLIENTS`] client
//! addresses, and does not own any expectation about the protocol.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::ops::Sub;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::impairment::Impairment;
use crate::rng::Rng;

/// How long a receiving thread blocks before looking at the stop flag again: the most a drop
/// waits for the threads to notice.
const TICK: Duration = Duration::from_millis(20);

/// The most client addresses one relay serves; datagrams from further addresses are
/// dropped (and counted as dropped), so a stray sender cannot make it start threads
/// without end.
pub const MAX_CLIENTS: usize = 64;

/// Large enough for any UDP datagram.
const BUFFER: usize = 65_536;

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From a client to the server.
    ToServer,
    /// From the server to a client.
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

/// What happened to the datagrams going one way. A datagram that arrived is either
/// `dropped`, or sent once plus once more if `duplicated`; copies still waiting out their
/// delay when the relay stops are never sent. So, once nothing waits,
/// `received + duplicated == dropped + forwarded + failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams the relay read (what the programs sent, but for any the system itself
    /// dropped because the relay's socket buffer was full).
    pub received: u64,
    /// Copies sent on (duplicates included).
    pub forwarded: u64,
    /// Datagrams lost on purpose (or from a client beyond [`MAX_CLIENTS`]).
    pub dropped: u64,
    /// Datagrams sent twice.
    pub duplicated: u64,
    /// Copies the operating system refused to send.
    pub failed: u64,
}

impl Sub for DirectionStats {
    type Output = DirectionStats;

    fn sub(self, earlier: DirectionStats) -> DirectionStats {
        DirectionStats {
            received: self.received - earlier.received,
            forwarded: self.forwarded - earlier.forwarded,
            dropped: self.dropped - earlier.dropped,
            duplicated: self.duplicated - earlier.duplicated,
            failed: self.failed - earlier.failed,
        }
    }
}

impl fmt::Display for DirectionStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} received, {} forwarded, {} dropped, {} duplicated",
            self.received, self.forwarded, self.dropped, self.duplicated
        )?;
        if self.failed > 0 {
            write!(f, ", {} failed to send", self.failed)?;
        }
        Ok(())
    }
}

/// A snapshot of the relay's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Clients to server.
    pub to_server: DirectionStats,
    /// Server to clients.
    pub to_clients: DirectionStats,
}

impl RelayStats {
    /// Datagrams the programs sent, both ways.
    pub fn received(&self) -> u64 {
        self.to_server.received + self.to_clients.received
    }

    /// Copies the relay sent on, both ways.
    pub fn forwarded(&self) -> u64 {
        self.to_server.forwarded + self.to_clients.forwarded
    }
}

impl Sub for RelayStats {
    type Output = RelayStats;

    fn sub(self, earlier: RelayStats) -> RelayStats {
        RelayStats {
            to_server: self.to_server - earlier.to_server,
            to_clients: self.to_clients - earlier.to_clients,
        }
    }
}

impl fmt::Display for RelayStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "clients -> server: {}; server -> clients: {}",
            self.to_server, self.to_clients
        )
    }
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DirectionStats {
        DirectionStats {
            received: self.received.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            duplicated: self.duplicated.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One copy waiting out its delay.
struct Scheduled {
    due: Instant,
    /// Arrival order, so copies due at the same instant leave in the order they came.
    order: u64,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    payload: Arc<[u8]>,
    direction: Direction,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest copy first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.order).cmp(&(self.due, self.order))
    }
}

#[derive(Default)]
struct Queue {
    copies: BinaryHeap<Scheduled>,
    next_order: u64,
}

/// What every thread of the relay shares.
struct Shared {
    server: SocketAddr,
    seed: u64,
    stop: AtomicBool,
    impairment: Mutex<Impairment>,
    queue: Mutex<Queue>,
    /// Wakes the sending thread when a copy is queued or the relay stops.
    queued: Condvar,
    counters: [Counters; 2],
    /// The threads receiving from the server, one per client, joined on drop.
    upstream_threads: Mutex<Vec<JoinHandle<()>>>,
    /// When the relay started, and whether to print every datagram's fate.
    started: Instant,
    trace: bool,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn counters(&self, direction: Direction) -> &Counters {
        &self.counters[direction.index()]
    }

    /// Decides the fate of one datagram that arrived going `direction` and queues its
    /// copies. Always draws four numbers from `rng`, so the n-th datagram's fate does not
    /// depend on what happened to the ones before.
    fn impair(
        &self,
        rng: &mut Rng,
        client: usize,
        direction: Direction,
        socket: &Arc<UdpSocket>,
        to: SocketAddr,
        datagram: &[u8],
    ) {
        let impairment = *lock(&self.impairment);
        let delays = impairment.copies(rng);
        let counters = self.counters(direction);
        bump(&counters.received);
        if self.trace {
            let fate = match delays[..] {
                [] => "lost".to_owned(),
                [once] => format!("after {once:?}"),
                _ => format!("twice, after {:?} and {:?}", delays[0], delays[1]),
            };
            let frame = match icq::wire::Frame::decode(datagram) {
                Ok(frame) => format!("{frame:?}"),
                Err(error) => format!("{} bytes, undecodable: {error}", datagram.len()),
            };
            eprintln!(
                "relay {:>9.3} ms {direction:?} client {client}: {fate}: {frame}",
                self.started.elapsed().as_secs_f64() * 1000.0
            );
        }
        match delays.len() {
            0 => {
                bump(&counters.dropped);
                return;
            }
            1 => {}
            _ => bump(&counters.duplicated),
        }
        let now = Instant::now();
        let payload: Arc<[u8]> = datagram.into();
        let mut queue = lock(&self.queue);
        for delay in &delays {
            let order = queue.next_order;
            queue.next_order += 1;
            queue.copies.push(Scheduled {
                due: now + *delay,
                order,
                socket: Arc::clone(socket),
                to,
                payload: Arc::clone(&payload),
                direction,
            });
        }
        drop(queue);
        self.queued.notify_one();
    }
}

/// A relay running on loopback. See the module documentation.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    front_thread: Option<JoinHandle<()>>,
    send_thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts a relay in front of `server` (a loopback address), on a free port of the same
    /// loopback address family, treating datagrams as `impairment` says, with decisions
    /// drawn from `seed`.
    pub fn start(server: SocketAddr, seed: u64, impairment: Impairment) -> Relay {
        let loopback = loopback_like(server);
        let front = UdpSocket::bind(SocketAddr::new(loopback, 0)).expect("bind the relay socket");
        front
            .set_read_timeout(Some(TICK))
            .expect("set the relay socket's read timeout");
        let addr = front.local_addr().expect("the relay socket's address");
        let front = Arc::new(front);
        let shared = Arc::new(Shared {
            server,
            seed,
            stop: AtomicBool::new(false),
            impairment: Mutex::new(impairment),
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            counters: Default::default(),
            upstream_threads: Mutex::new(Vec::new()),
            started: Instant::now(),
            trace: std::env::var_os("ICQ_RELAY_TRACE").is_some_and(|v| v != "0"),
        });
        let for_front = Arc::clone(&shared);
        let front_thread = thread::Builder::new()
            .name("relay-front".into())
            .spawn(move || from_clients(&for_front, front))
            .expect("start the relay's client-side thread");
        let for_send = Arc::clone(&shared);
        let send_thread = thread::Builder::new()
            .name("relay-send".into())
            .spawn(move || send_when_due(&for_send))
            .expect("start the relay's sending thread");
        Relay {
            addr,
            shared,
            front_thread: Some(front_thread),
            send_thread: Some(send_thread),
        }
    }

    /// The address as given to `icq-client --server`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Changes what happens to datagrams arriving from now on (copies already waiting keep
    /// their delay).
    pub fn set_impairment(&self, impairment: Impairment) {
        *lock(&self.shared.impairment) = impairment;
    }

    /// The counters so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            to_server: self.shared.counters(Direction::ToServer).snapshot(),
            to_clients: self.shared.counters(Direction::ToClient).snapshot(),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            // Taking the lock orders the flag before the sender's next wait.
            let _queue = lock(&self.shared.queue);
            self.shared.queued.notify_all();
        }
        // The client-side thread first: once it is gone, no thread starts any more.
        let mut threads: Vec<JoinHandle<()>> = self.front_thread.take().into_iter().collect();
        threads.extend(self.send_thread.take());
        for handle in threads {
            let _ = handle.join();
        }
        let upstream = std::mem::take(&mut *lock(&self.shared.upstream_threads));
        for handle in upstream {
            let _ = handle.join();
        }
    }
}

/// One client as the relay knows it.
struct Flow {
    /// The client's number, in the order clients first spoke (from 0).
    index: usize,
    /// Faces the server on the client's behalf.
    upstream: Arc<UdpSocket>,
    /// Draws the fate of this client's datagrams to the server.
    rng: Rng,
}

/// The generator for one flow: the `2 * client + direction`-th number after `seed` seeds it.
fn flow_rng(seed: u64, client: usize, direction: Direction) -> Rng {
    let mut from_seed = Rng::new(seed);
    let mut flow_seed = 0;
    for _ in 0..=(2 * client + direction.index()) {
        flow_seed = from_seed.next_u64();
    }
    Rng::new(flow_seed)
}

/// The client-side thread: receives from clients, starts a flow for each new client
/// address, and queues what arrives for the server.
fn from_clients(shared: &Arc<Shared>, front: Arc<UdpSocket>) {
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buffer = vec![0u8; BUFFER];
    while !shared.stopping() {
        let (len, client) = match front.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => {
                // An error reported by the system for an earlier send; nothing to receive.
                continue;
            }
        };
        if !flows.contains_key(&client) {
            if flows.len() >= MAX_CLIENTS {
                let counters = shared.counters(Direction::ToServer);
                bump(&counters.received);
                bump(&counters.dropped);
                continue;
            }
            let index = flows.len();
            let flow = start_flow(shared, &front, client, index);
            flows.insert(client, flow);
        }
        let flow = flows.get_mut(&client).expect("the flow was just made");
        shared.impair(
            &mut flow.rng,
            flow.index,
            Direction::ToServer,
            &flow.upstream,
            shared.server,
            &buffer[..len],
        );
    }
}

/// Opens the socket that stands for client number `index` (at `client`) towards the
/// server, and starts the thread that carries the server's answers back.
fn start_flow(
    shared: &Arc<Shared>,
    front: &Arc<UdpSocket>,
    client: SocketAddr,
    index: usize,
) -> Flow {
    let upstream = UdpSocket::bind(SocketAddr::new(loopback_like(shared.server), 0))
        .expect("bind a relay socket facing the server");
    upstream
        .set_read_timeout(Some(TICK))
        .expect("set the upstream socket's read timeout");
    let upstream = Arc::new(upstream);
    let for_thread = Arc::clone(shared);
    let (socket, front) = (Arc::clone(&upstream), Arc::clone(front));
    let mut rng = flow_rng(shared.seed, index, Direction::ToClient);
    let handle = thread::Builder::new()
        .name(format!("relay-up-{index}"))
        .spawn(move || {
            let mut buffer = vec![0u8; BUFFER];
            while !for_thread.stopping() {
                let (len, from) = match socket.recv_from(&mut buffer) {
                    Ok(received) => received,
                    Err(_) => continue,
                };
                if from != for_thread.server {
                    continue; // only the server speaks to this socket
                }
                for_thread.impair(
                    &mut rng,
                    index,
                    Direction::ToClient,
                    &front,
                    client,
                    &buffer[..len],
                );
            }
        })
        .expect("start a relay thread facing the server");
    lock(&shared.upstream_threads).push(handle);
    Flow {
        index,
        upstream,
        rng: flow_rng(shared.seed, index, Direction::ToServer),
    }
}

/// The sending thread: sends every queued copy when its delay is over, until the relay
/// stops (copies still waiting then are never sent, like datagrams in a cut cable).
fn send_when_due(shared: &Shared) {
    let mut queue = lock(&shared.queue);
    loop {
        if shared.stopping() {
            return;
        }
        let now = Instant::now();
        match queue.copies.peek().map(|copy| copy.due) {
            Some(due) if due <= now => {
                let copy = queue.copies.pop().expect("peeked");
                drop(queue);
                let counters = shared.counters(copy.direction);
                match copy.socket.send_to(&copy.payload, copy.to) {
                    Ok(_) => bump(&counters.forwarded),
                    Err(_) => bump(&counters.failed),
                }
                queue = lock(&shared.queue);
            }
            next => {
                let wait = next.map_or(TICK, |due| due - now);
                queue = shared
                    .queued
                    .wait_timeout(queue, wait)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
        }
    }
}

/// The loopback address of `addr`'s family.
fn loopback_like(addr: SocketAddr) -> IpAddr {
    match addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
