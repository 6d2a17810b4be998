//! The one in-memory network of the sans-IO tests: it drives any set of cores (server and
//! clients in [`room`], a hand-driven client in [`hand`], peers in [`mesh`]) together, with no sockets and a fake clock, in
//! the style of quinn-proto's test `Pair`.
//!
//! [`Net`] owns the current instant, the datagrams in flight, a log of every datagram put on
//! the wire, which parties are muted or frozen, and the [`Link`] that decides what the
//! network does with each datagram — deliver it now, later, twice, or never. The parties
//! themselves (the cores and what they reported) are a [`Parties`] value the network derefs
//! to, so a test reads `sim.server` or `sim.peers` directly; each role's module adds its
//! own ways to add parties and act as their users. Time only moves when a test says so
//! ([`Net::advance`], [`Net::advance_in_steps`], [`Net::run_for`]); nothing sleeps.
//!
//! It does not own any expectation about the protocol: the tests decide what the logs must
//! contain. The only rule it enforces itself is that the system settles: a burst of
//! datagrams that never dies down, or a timer that stays due after it fired, is a livelock
//! and panics. With `ICQ_TRACE=1` every datagram's fate is printed on stderr.

pub mod hand;
pub mod mesh;
pub mod room;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Deref, DerefMut, Range};
use std::time::{Duration, Instant};

use icq::client::{Client, ClientEvent};
use icq::peer::{Peer, PeerEvent};
use icq::proto::chat::ChatEvent;
use icq::proto::packing;
use icq::server::Server;
use icq::wire::{self, Frame};

use crate::impairment::Impairment;
use crate::rng::{Rng, chosen_seed};

/// The wall-clock time (ms since the Unix epoch) at the simulation's start: 2026-01-01
/// 00:00:00 UTC. Fixed, so message timestamps are known in advance.
pub const WALL_START_MS: i64 = 1_767_225_600_000;

/// How many rounds of "collect every datagram, deliver every datagram" [`Net::drive`]
/// allows before declaring a livelock. A healthy exchange settles in a handful of rounds.
const MAX_ROUNDS: usize = 10_000;

/// How many timer firings [`Net::run_for`] allows before declaring a timer that never rests.
const MAX_TIMER_STEPS: usize = 1_000_000;

/// `ip:port` for an IPv4 address, for the addresses tests invent.
pub fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

/// Runs `run` with every seed of `usual` (or the one `ICQ_SEED` names) and returns what
/// each run gave, in seed order; panics listing every seed that failed and why, so one
/// run shows them all and each can be rerun alone. `network` is named in the message.
pub fn for_each_seed<T>(
    usual: Range<u64>,
    network: Impairment,
    mut run: impl FnMut(u64) -> Result<T, String>,
) -> Vec<T> {
    let seeds = chosen_seed().map_or(usual, |seed| seed..seed + 1);
    let tried = seeds.end - seeds.start;
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for seed in seeds {
        match run(seed) {
            Ok(outcome) => outcomes.push(outcome),
            Err(why) => failures.push(format!("seed {seed}: {why}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {tried} seeds failed ({network}); rerun one with ICQ_SEED=N:\n{}",
        failures.len(),
        failures.join("\n")
    );
    outcomes
}

/// A sans-IO core as the simulator drives it: datagrams and the time in, datagrams and the
/// next deadline out. The server, the client and the peer all fit.
pub trait Core {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)>;
}

impl Core for Server {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Server::handle_datagram(self, now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Server::handle_timeout(self, now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Server::poll_timeout(self)
    }
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        Server::poll_transmit(self).map(|transmit| (transmit.destination, transmit.to_vec()))
    }
}

impl Core for Client {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Client::handle_datagram(self, now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Client::handle_timeout(self, now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Client::poll_timeout(self)
    }
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        Client::poll_transmit(self)
    }
}

impl Core for Peer {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Peer::handle_datagram(self, now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Peer::handle_timeout(self, now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Peer::poll_timeout(self)
    }
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        Peer::poll_transmit(self)
    }
}

/// The cores a [`Net`] connects, each at its address, and the logs of what they reported.
pub trait Parties {
    /// Calls `visit` with every core, in a fixed order.
    fn each(&mut self, visit: &mut dyn FnMut(SocketAddr, &mut dyn Core));
    /// The earliest deadline of the cores not in `frozen`.
    fn next_timeout(&self, frozen: &HashSet<SocketAddr>) -> Option<Instant>;
    /// The core listening at `at`, if any.
    fn at(&mut self, at: SocketAddr) -> Option<&mut dyn Core>;
    /// Moves what the cores reported into the logs the tests read.
    fn collect_events(&mut self);
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
    /// The payload decoded as a protocol frame, or `None` if it is not one (a guest's text,
    /// a packed datagram).
    pub fn frame(&self) -> Option<Frame> {
        Frame::decode(&self.bytes).ok()
    }

    /// Every frame the payload carries: its one frame, or those of a packed datagram;
    /// nothing if it is neither.
    pub fn frames(&self) -> Vec<Frame> {
        match wire::unpack_decoded(&self.bytes) {
            Ok(inner) => inner,
            Err(_) => self.frame().into_iter().collect(),
        }
    }
}

/// What the network does with each datagram.
pub trait Link {
    /// The delays after which copies of `datagram` arrive: empty drops it, one entry
    /// delivers it once, two entries duplicate it. A zero delay delivers it in the current
    /// [`Net::drive`]; a longer one holds it until the clock reaches it.
    fn route(&mut self, now: Instant, datagram: &Datagram) -> Vec<Duration>;
}

/// A network that loses nothing and delivers every datagram at once, in the order sent.
pub struct PerfectLink;

impl Link for PerfectLink {
    fn route(&mut self, _now: Instant, _datagram: &Datagram) -> Vec<Duration> {
        vec![Duration::ZERO]
    }
}

/// A bad network: every datagram goes through one [`Impairment`], drawn from a seeded
/// generator, so a seed replays exactly.
pub struct LossyLink {
    pub impairment: Impairment,
    pub rng: Rng,
}

impl LossyLink {
    /// Every datagram through `impairment`, decided from `seed`.
    pub fn new(seed: u64, impairment: Impairment) -> LossyLink {
        LossyLink {
            impairment,
            rng: Rng::new(seed),
        }
    }
}

impl Link for LossyLink {
    fn route(&mut self, _now: Instant, _datagram: &Datagram) -> Vec<Duration> {
        self.impairment.copies(&mut self.rng)
    }
}

/// A datagram the link accepted and that has not arrived yet.
struct InFlight {
    deliver_at: Instant,
    /// Send order, so datagrams due at the same instant arrive in the order they were sent.
    seq: u64,
    datagram: Datagram,
}

/// Some cores and the network between them. See the module documentation.
pub struct Net<P: Parties> {
    /// The cores and what they reported; the network derefs to them.
    pub parties: P,
    /// The instant the simulation started.
    pub start: Instant,
    /// The current instant. Only the `advance`/`run_for` methods move it.
    pub now: Instant,
    /// Every datagram anyone sent (or a test injected), in order, whatever became of it,
    /// while [`Net::record`] is on.
    pub wire: Vec<Datagram>,
    /// Whether [`Net::wire`] is kept (long runs would keep hundreds of thousands).
    pub record: bool,
    /// Whether each party's datagrams of one round are packed per receiver, as the
    /// programs' socket loop packs one turn's (`icq::proto::packing`); off by default, so
    /// the other tests see one frame per datagram.
    pub pack: bool,
    /// Datagrams put on the wire, and their bytes, since the start, recorded or not.
    pub datagrams: u64,
    pub bytes: u64,
    /// Addresses whose outgoing datagrams the network drops (the party still runs).
    pub muted: HashSet<SocketAddr>,
    /// Parties no longer driven at all: no timers, nothing sent, nothing received — as if
    /// the process were suspended (or killed).
    pub frozen: HashSet<SocketAddr>,
    link: Box<dyn Link>,
    in_flight: Vec<InFlight>,
    next_seq: u64,
    trace: bool,
}

impl<P: Parties> Deref for Net<P> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.parties
    }
}

impl<P: Parties> DerefMut for Net<P> {
    fn deref_mut(&mut self) -> &mut P {
        &mut self.parties
    }
}

impl<P: Parties> Net<P> {
    /// A network around `parties`, perfect until [`Net::set_link`], starting at `start`.
    pub fn with_parties(parties: P, start: Instant) -> Net<P> {
        Net {
            parties,
            start,
            now: start,
            wire: Vec::new(),
            record: true,
            pack: false,
            datagrams: 0,
            bytes: 0,
            muted: HashSet::new(),
            frozen: HashSet::new(),
            link: Box::new(PerfectLink),
            in_flight: Vec::new(),
            next_seq: 0,
            trace: std::env::var_os("ICQ_TRACE").is_some_and(|v| v != "0"),
        }
    }

    /// Replaces the network's behaviour (loss, delay, duplication) from now on.
    pub fn set_link(&mut self, link: impl Link + 'static) {
        self.link = Box::new(link);
    }

    /// Time since the simulation started, in milliseconds.
    pub fn elapsed_ms(&self) -> i64 {
        let elapsed = self.now.duration_since(self.start).as_millis();
        i64::try_from(elapsed).expect("a test runs for less than 292 My")
    }

    /// A position in the wire log, to look at what was sent after it.
    pub fn mark(&self) -> usize {
        self.wire.len()
    }

    /// Every datagram recorded since `mark`.
    pub fn sent_since(&self, mark: usize) -> &[Datagram] {
        &self.wire[mark..]
    }

    /// A datagram arrives at `to` from `from` — any address, real or forged — bypassing the
    /// link; then everything is delivered. Returns every payload `to` sent back to `from`
    /// meanwhile (recorded for the call even when recording is off).
    pub fn inject_to(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) -> Vec<Vec<u8>> {
        let was_recording = std::mem::replace(&mut self.record, true);
        let mark = self.mark();
        self.wire.push(Datagram {
            from,
            to,
            bytes: bytes.to_vec(),
            sent_at: self.now,
        });
        let now = self.now;
        if let Some(core) = self.parties.at(to) {
            core.handle_datagram(now, from, bytes);
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

    /// Delivers datagrams until nothing moves: collect every datagram the running parties
    /// want to send, hand each to the link, deliver those due, collect events, and repeat.
    /// Panics if the exchange does not settle (a livelock is a bug).
    pub fn drive(&mut self) {
        for _ in 0..MAX_ROUNDS {
            self.collect_transmits();
            self.parties.collect_events();
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

    /// Runs in steps of 20 ms until `done` holds; `Err` with what `why_not` says if
    /// `within` passes first.
    pub fn run_until_or_explain(
        &mut self,
        within: Duration,
        done: impl Fn(&Self) -> bool,
        why_not: impl Fn(&Self) -> String,
    ) -> Result<(), String> {
        let end = self.now + within;
        loop {
            self.drive();
            if done(self) {
                return Ok(());
            }
            if self.now >= end {
                return Err(format!("not done within {within:?}; {}", why_not(self)));
            }
            self.run_for(Duration::from_millis(20));
        }
    }

    /// The earliest instant anything is due: a timer of a running party, or a delayed
    /// datagram.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timers = self.parties.next_timeout(&self.frozen);
        let datagrams = self.in_flight.iter().map(|f| f.deliver_at);
        timers.into_iter().chain(datagrams).min()
    }

    /// Fires every timer that is due and delivers everything, until nothing is due. A timer
    /// still due right after it fired would make a real program spin: that panics.
    fn settle_timers(&mut self) {
        for _ in 0..MAX_TIMER_STEPS {
            let now = self.now;
            let mut fired = false;
            let frozen = &self.frozen;
            self.parties.each(&mut |at, core| {
                if !frozen.contains(&at) && core.poll_timeout().is_some_and(|t| t <= now) {
                    core.handle_timeout(now);
                    fired = true;
                }
            });
            self.drive();
            if !fired {
                return;
            }
        }
        panic!("timers kept firing at one instant: a busy loop");
    }

    /// Puts everything the running parties want to send on the wire.
    fn collect_transmits(&mut self) {
        let mut outgoing = Vec::new();
        let (frozen, now, pack) = (&self.frozen, self.now, self.pack);
        self.parties.each(&mut |at, core| {
            if frozen.contains(&at) {
                return;
            }
            let mut queued: Vec<(SocketAddr, Vec<u8>)> =
                std::iter::from_fn(|| core.poll_transmit()).collect();
            if pack {
                queued = packing::pack(&queued);
            } else {
                // The server writes a turn's frames of one stream as runs itself: here
                // each goes on its own, as the other tests expect.
                queued = queued
                    .into_iter()
                    .flat_map(|(to, bytes)| match wire::unpack(&bytes) {
                        Ok(frames) => frames.into_iter().map(|f| (to, f.into_owned())).collect(),
                        Err(_) => vec![(to, bytes)],
                    })
                    .collect();
            }
            for (to, bytes) in queued {
                outgoing.push(Datagram {
                    from: at,
                    to,
                    bytes,
                    sent_at: now,
                });
            }
        });
        for datagram in outgoing {
            self.datagrams += 1;
            self.bytes += datagram.bytes.len() as u64;
            let routes = if self.muted.contains(&datagram.from) {
                Vec::new()
            } else {
                self.link.route(self.now, &datagram)
            };
            if self.trace {
                self.print_trace(&datagram, &routes);
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

    fn print_trace(&self, datagram: &Datagram, routes: &[Duration]) {
        let frame = datagram
            .frame()
            .map_or("?".to_owned(), |f| format!("{f:?}"));
        let frame: String = frame.chars().take(160).collect();
        eprintln!(
            "{:>6} {} -> {} {:?} {frame}",
            self.elapsed_ms(),
            datagram.from,
            datagram.to,
            routes
        );
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
    /// lost, as UDP to a closed port is), and a frozen party reads nothing.
    fn deliver(&mut self, datagram: Datagram) {
        if self.frozen.contains(&datagram.to) {
            return;
        }
        let now = self.now;
        if let Some(core) = self.parties.at(datagram.to) {
            core.handle_datagram(now, datagram.from, &datagram.bytes);
        }
    }
}

/// A private message as a core reports it, as `(from, to, text, own)`: the same for the
/// client and the peer, so a test of `/msg` reads the same on either.
pub type PrivateLine = (String, String, String, bool);

/// An event that may be a private message: each core's event type says how it carries one.
pub trait CarriesPrivate {
    fn private_line(&self) -> Option<PrivateLine>;
}

/// Both cores' event enums carry a private message as `Chat(ChatEvent::Private)`, so one
/// pattern, written once, reads either.
macro_rules! carries_private {
    ($($event:ident),+) => {$(
        impl CarriesPrivate for $event {
            fn private_line(&self) -> Option<PrivateLine> {
                match self {
                    $event::Chat(ChatEvent::Private {
                        from,
                        to,
                        text,
                        own,
                        ..
                    }) => Some((from.clone(), to.clone(), text.clone(), *own)),
                    _ => None,
                }
            }
        }
    )+};
}

carries_private!(ClientEvent, PeerEvent);

/// The private messages among `events`, in order.
pub fn privates<E: CarriesPrivate>(events: &[E]) -> Vec<PrivateLine> {
    events.iter().filter_map(E::private_line).collect()
}
