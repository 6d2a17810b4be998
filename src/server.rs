//! The server's protocol logic as a plain state machine, with no sockets, threads or clock.
//!
//! [`Server`] owns everything the server knows: who is connected at which address under
//! which name, flood buckets, timeouts, the ban list in force, guests. Inputs are method
//! calls — a datagram arrived ([`Server::handle_datagram`]), time passed
//! ([`Server::handle_timeout`]), the operator typed something (`say`, `kick`, `shutdown`,
//! [`Server::set_ban_list`]) — and outputs are queued for the caller to collect:
//! datagrams to send ([`Server::poll_transmit`]), things to log ([`Server::poll_event`]), and
//! when to call back ([`Server::poll_timeout`]). The `icq-server` binary is a thin loop that
//! moves bytes between its socket and this type; tests drive it directly with a fake clock.
//! (The shape follows quinn-proto's `Endpoint`.)
//!
//! It does not own the byte layout of frames (`wire`), reading or writing the ban file
//! (`banlist`), or how log lines look (`display`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use foldhash::fast::FixedState;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::banlist::{BanList, IpNet};
use crate::command::{self, Command, Input, Side};
use crate::display::{self, ClockText, sanitize};
use crate::names::{self, SERVER_NAME};
use crate::proto::flood::{FloodGate, FloodLimit};
use crate::proto::lateness::{self, Credited, Lateness};
use crate::proto::loggate::{GateLimits, LogGate, Summary};
use crate::proto::reliable::{Due, Ready, ReceiveWindow, SendWindow};
use crate::wire::{
    self, DecodeError, DisconnectReason, Envelope, FloodTerms, Frame, PresenceChange, RefuseReason,
    RosterEntry,
};

/// How long after the first dropped message the flooder is told how many were dropped. The
/// delay gathers a whole burst into one notice instead of one notice per dropped message.
pub const FLOOD_NOTICE_DELAY: Duration = Duration::from_secs(1);

/// A malformed datagram is logged at most once per address per this period, so garbage
/// cannot flood the operator's log.
pub const MALFORMED_LOG_PERIOD: Duration = Duration::from_secs(60);

/// At most this many addresses are remembered for rate-limiting malformed-datagram log
/// lines; past that, further malformed datagrams are not logged until entries expire. This
/// keeps memory bounded when garbage comes from forged, ever-changing source addresses.
const MALFORMED_LOG_MEMORY: usize = 4096;

/// The most frames sent to one client and not yet acknowledged. A client that falls this far
/// behind (a stalled program, a path losing nearly everything) has its oldest half replaced
/// by one [`Frame::Missed`] telling it how many it will never get: memory stays bounded and
/// the gap is never silent.
pub const OUTBOX_LIMIT: usize = 2048;

/// How many of a client's frames may arrive ahead of one that is missing; later ones are
/// dropped unacknowledged and come again. Bounds the memory a client can make us hold.
pub const INBOX_LIMIT: u32 = 64;

/// Flood warnings count towards a kick only within this window: a client that bursts now
/// and then is warned, one that floods on and on is removed.
pub const FLOOD_KICK_WINDOW: Duration = Duration::from_secs(60);

/// What a client that comes back after losing its session (the server restarted, or timed
/// it out) is told: the server keeps no history to replay.
pub const MISSED_WHILE_AWAY: &str = "you were away: messages sent to the chat meanwhile are \
     not replayed and may have been missed";

/// The reason `/away` sends when none is given; shown as a plain "is away".
pub const AWAY_WITHOUT_REASON: &str = "away";

/// How long the token of a session that left is remembered, so a repeated leave is
/// confirmed (its first confirmation was lost) while a leave for a session the server never
/// had (it restarted) is not: confirming that one would tell the client its unconfirmed
/// lines were delivered.
pub const LEFT_MEMORY: Duration = Duration::from_secs(60);

/// A join cookie is good for the period it was made in and the next one: long enough for
/// a client's join retries, short enough that an old cookie seen on the wire is soon
/// useless.
pub const COOKIE_PERIOD: Duration = Duration::from_secs(30);

/// A join under a name whose session has been silent for longer than this probes that
/// session ([`Frame::Probe`]) instead of being refused at once: the holder may have crashed
/// (a name is held by a live session, not for the whole timeout of a dead one).
pub const PROBE_AFTER_SILENCE: Duration = Duration::from_secs(1);

/// How long a probed session has to answer before it is ended as timed out, and the name
/// given to the join that asked for it.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A probe is sent again (it may be lost) when the join is repeated, at most this often.
pub const PROBE_REPEAT: Duration = Duration::from_millis(500);

/// While the loop falls behind, at most this many joins are carried out per turn of the
/// loop (between two [`Server::handle_loop_report`]s); later ones are refused with
/// [`RefuseReason::Busy`] and asked again after a while. A join costs a roster and a
/// presence frame to everyone, a heartbeat or an acknowledgement almost nothing: under
/// saturation the cheap, vital datagrams must not wait behind a queue of joins.
pub const JOINS_PER_TURN: usize = 8;

/// How many ended sessions may still be repeating their farewell ([`Frame::Disconnected`])
/// at once; past it, a farewell is sent once and not repeated.
const FAREWELL_LIMIT: usize = 4096;

/// Settings chosen on the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Per-client chat limit; `None` turns flood limiting off.
    pub flood_limit: Option<FloodLimit>,
    /// A client silent for this long is evicted.
    pub timeout: Duration,
    /// Whether plain-text datagrams are accepted as chat from guests.
    pub guests: bool,
    /// The most clients (named and guests together) served at once.
    pub max_clients: usize,
    /// The most clients served at once from one IP address (any ports); `None` lifts the
    /// cap (for benchmarks, or a classroom behind one NAT).
    pub max_per_ip: Option<usize>,
    /// A client that is warned this many times within [`FLOOD_KICK_WINDOW`] for sending too
    /// fast is kicked; `None` only drops and warns.
    pub flood_kick: Option<u32>,
    /// Seeds the hash tables. Random by default, so nobody can predict which addresses
    /// collide; tests fix it so a simulation replays exactly.
    pub hash_seed: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            flood_limit: FloodLimit::from_options(5.0, 10),
            timeout: Duration::from_secs(30),
            guests: false,
            max_clients: 1024,
            max_per_ip: Some(16),
            flood_kick: Some(3),
            hash_seed: getrandom::u64().unwrap_or(0x1C0_5EED),
        }
    }
}

impl ServerConfig {
    /// How often clients must send something: a third of the timeout, so two heartbeats in
    /// a row can be lost before a live client is evicted.
    pub fn heartbeat_interval(&self) -> Duration {
        self.timeout / 3
    }

    /// How often the sessions are scanned for timeouts. Eviction happens between `timeout`
    /// and `timeout` plus this; scanning on a period instead of tracking a deadline per
    /// client keeps each datagram's work independent of how many clients there are.
    fn sweep_interval(&self) -> Duration {
        (self.timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub destination: SocketAddr,
    /// The bytes, or for a sequenced frame the bytes with a blank envelope. A broadcast
    /// encodes its frame once and shares it among all recipients.
    pub payload: Arc<[u8]>,
    /// The recipient's own envelope (token, sequence number, acknowledgements), to write
    /// over the blank one; `None` when `payload` is complete as it is.
    pub envelope: Option<Envelope>,
}

impl Transmit {
    /// Writes the datagram into `out` (cleared first): the payload with the envelope in
    /// place. The binary reuses one buffer, so sending allocates nothing.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.payload);
        if let Some(envelope) = &self.envelope {
            envelope.patch(out);
        }
    }

    /// The datagram as a new buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// Counters for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Datagrams queued for sending, of every kind.
    pub datagrams_sent: u64,
    /// Sequenced frames sent again because no acknowledgement came in time.
    pub retransmissions: u64,
    /// Frames a client will never get because it fell [`OUTBOX_LIMIT`] behind.
    pub frames_missed: u64,
}

/// Something the operator should see in the log. Each becomes one timestamped line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A client joined (a guest joins by sending its first line).
    Joined {
        time_ms: i64,
        name: String,
        addr: SocketAddr,
        guest: bool,
    },
    /// A client left by saying so.
    Left {
        time_ms: i64,
        name: String,
        addr: SocketAddr,
    },
    /// A client was silent for longer than the timeout, or stopped acknowledging what it
    /// was sent, and was evicted.
    TimedOut {
        time_ms: i64,
        name: String,
        addr: SocketAddr,
    },
    /// The operator kicked a client.
    Kicked {
        time_ms: i64,
        name: String,
        addr: SocketAddr,
    },
    /// A connected client was disconnected because its address is now banned.
    Banned {
        time_ms: i64,
        name: String,
        addr: SocketAddr,
    },
    /// A join was refused.
    Refused {
        time_ms: i64,
        name: String,
        addr: SocketAddr,
        reason: RefuseReason,
    },
    /// A client sent faster than the flood limit; `dropped` of its messages were not sent.
    FloodDropped {
        time_ms: i64,
        name: String,
        addr: SocketAddr,
        dropped: u32,
    },
    /// A chat message was broadcast.
    Chat {
        time_ms: i64,
        from: String,
        text: String,
    },
    /// A private message went from `from` to `to` (the operator's log shows it: the server
    /// relays it in the clear anyway, and abuse must be traceable).
    Private {
        time_ms: i64,
        from: String,
        to: String,
        text: String,
    },
    /// A `/me` action was broadcast.
    Action {
        time_ms: i64,
        from: String,
        text: String,
    },
    /// A client said it is away (`reason`), or back (`None`).
    Away {
        time_ms: i64,
        name: String,
        reason: Option<String>,
    },
    /// A client changed its name.
    Renamed {
        time_ms: i64,
        from: String,
        to: String,
        addr: SocketAddr,
    },
    /// A datagram was dropped as malformed (logged once per address per minute at most).
    Malformed {
        time_ms: i64,
        addr: SocketAddr,
        why: String,
    },
    /// Lines that strangers caused and the log gate held back over `period`: `count` more
    /// of `kind` from `from` (`None`: from addresses not counted one by one).
    Suppressed {
        time_ms: i64,
        kind: SuppressedKind,
        from: Option<String>,
        count: u64,
        period: Duration,
    },
    /// The server told every client it is closing.
    Closing { time_ms: i64, clients: usize },
}

/// What a [`ServerEvent::Suppressed`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressedKind {
    /// Refused joins ([`ServerEvent::Refused`]).
    Refusals,
    /// Malformed datagrams ([`ServerEvent::Malformed`]).
    Malformed,
}

/// Whose refused joins one log-gate key counts: a banned range as a whole (a forger picks
/// any address in it), any other refusal by address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RefusalKey {
    Banned(IpNet),
    Address(IpAddr),
}

impl fmt::Display for RefusalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalKey::Banned(net) => write!(f, "banned {net}"),
            RefusalKey::Address(ip) => write!(f, "{}", ip.to_canonical()),
        }
    }
}

/// What the operator's `/list` shows about one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Registered name.
    pub name: String,
    /// Address the client sends from.
    pub addr: SocketAddr,
    /// Whether it is a plain-text guest.
    pub guest: bool,
    /// Time since it joined.
    pub connected_for: Duration,
    /// Time since it was last heard from.
    pub idle_for: Duration,
    /// Why it is away, if it said so with `/away`.
    pub away: Option<String>,
}

/// A console command that could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerError {
    /// No client has this name.
    NoSuchClient { name: String },
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::NoSuchClient { name } => {
                write!(
                    f,
                    "no client named '{}' is online (see /list)",
                    display::sanitize(name)
                )
            }
        }
    }
}

impl std::error::Error for ServerError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    /// Speaks the protocol and joined with a name.
    Named,
    /// Sends and receives plain text lines.
    Guest,
}

/// A sequenced request from a client, in the order the client sent it.
#[derive(Debug)]
enum Request {
    Chat(String),
    List,
    Leave,
    Private { to: String, text: String },
    Action(String),
    Nick(String),
    Away(String),
}

/// The reliable streams of one named session.
#[derive(Debug)]
struct Streams {
    /// The session's secret: frames without it are not from this client.
    token: u64,
    /// The join's nonce, to tell a repeated join from a new program at the same address.
    nonce: u64,
    /// Frames sent to the client and not yet acknowledged.
    outbox: SendWindow<Arc<[u8]>>,
    /// The client's requests, put back in order, each with the client's stamp of when it
    /// first sent it (`sent_ms`, see [`Frame::Chat`]).
    inbox: ReceiveWindow<(Request, u64)>,
    /// The stamp of the request being carried out, which its flood check counts by.
    stamp: Option<u64>,
    /// The retransmission deadline this session has in `Server::timers`, if any.
    timer: Option<Instant>,
}

impl Streams {
    fn new(token: u64, nonce: u64) -> Streams {
        Streams {
            token,
            nonce,
            outbox: SendWindow::new(),
            inbox: ReceiveWindow::new(INBOX_LIMIT),
            stamp: None,
            timer: None,
        }
    }

    /// Sends a sequenced frame (already encoded with a blank envelope).
    fn send(&mut self, now: Instant, to: SocketAddr, payload: Arc<[u8]>, out: &mut Outgoing<'_>) {
        if self.outbox.len() >= OUTBOX_LIMIT {
            out.stats.frames_missed += self.replace_oldest(now, OUTBOX_LIMIT / 2);
        }
        // Past the cap on frames in flight it waits in the window, and `arm` makes the
        // timer fetch it as soon as acknowledgements make room.
        if let Some(seq) = self.outbox.push(now, payload.clone()) {
            self.transmit(to, seq, payload, out);
        }
        self.arm(now, to, out.timers);
    }

    /// Replaces the `count` oldest frames by one [`Frame::Missed`] telling the client how
    /// many it will never get; returns that many.
    fn replace_oldest(&mut self, now: Instant, count: usize) -> u64 {
        let mut missed = 0;
        self.outbox.replace_oldest(now, count, |first, last| {
            missed = u64::from(last - first + 1);
            Frame::Missed {
                envelope: Envelope::default(),
                last,
            }
            .to_bytes()
            .into()
        });
        missed
    }

    fn transmit(&mut self, to: SocketAddr, seq: u32, payload: Arc<[u8]>, out: &mut Outgoing<'_>) {
        let envelope = Envelope {
            token: self.token,
            seq,
            acks: self.inbox.acks(),
        };
        self.inbox.ack_sent();
        out.stats.datagrams_sent += 1;
        out.transmits.push_back(Transmit {
            destination: to,
            payload,
            envelope: Some(envelope),
        });
    }

    /// Makes sure `timers` holds this session's next retransmission deadline.
    fn arm(&mut self, now: Instant, addr: SocketAddr, timers: &mut Timers) {
        let Some(deadline) = self.outbox.next_deadline() else {
            return;
        };
        let deadline = deadline.max(now);
        if self.timer.is_none_or(|armed| deadline < armed) {
            self.timer = Some(deadline);
            timers.push(Reverse((deadline, addr)));
        }
    }

    /// Sends whatever is due; returns false if a frame was given up on (the client stopped
    /// acknowledging for [`reliable::MAX_TRANSMISSIONS`](crate::proto::reliable::MAX_TRANSMISSIONS)
    /// tries).
    fn retransmit_due(&mut self, now: Instant, to: SocketAddr, out: &mut Outgoing<'_>) -> bool {
        while let Some(due) = self.outbox.poll_due(now) {
            match due {
                Due::Send { seq, item } => {
                    out.stats.retransmissions += 1;
                    self.transmit(to, seq, item, out);
                }
                Due::GaveUp { .. } => return false,
            }
        }
        self.timer = None;
        self.arm(now, to, out.timers);
        true
    }
}

/// Retransmission deadlines, earliest first. Entries are never removed early: a popped
/// entry that no longer matches its session's `timer` is stale and skipped.
type Timers = BinaryHeap<Reverse<(Instant, SocketAddr)>>;

/// Where sending puts things; borrowed from `Server` beside a borrowed session.
struct Outgoing<'a> {
    transmits: &'a mut VecDeque<Transmit>,
    timers: &'a mut Timers,
    stats: &'a mut ServerStats,
}

/// Everything the server remembers about one connected client.
#[derive(Debug)]
struct Session {
    name: String,
    /// `name` folded for case-insensitive lookup (the key in `Server::by_name`).
    name_key: String,
    kind: ClientKind,
    joined_at: Instant,
    last_heard: Instant,
    /// The flood limit on what the client says (by its stamps; a guest's by arrival).
    flood: Option<FloodGate>,
    /// Messages dropped since the last flood notice to this client.
    flood_dropped: u32,
    /// When this client was warned for flooding, within the last [`FLOOD_KICK_WINDOW`].
    flood_warnings: Vec<Instant>,
    /// Why the client is away (`/away`), or `None` while it is here.
    away: Option<String>,
    /// The reliable streams; `None` for guests.
    streams: Option<Streams>,
    /// How much of the server's own lateness this session's clocks were credited with.
    credited: Credited,
    /// Someone asked for this session's name and it was probed, unanswered so far.
    probe: Option<Probe>,
}

/// An unanswered [`Frame::Probe`] of a session whose name a join asked for.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// When the session is ended unless it has answered.
    deadline: Instant,
    /// When the probe was last sent.
    sent: Instant,
}

/// What a join under a name in use learns of the session holding it.
enum Holder {
    /// It was heard from a moment ago (or is a guest, which cannot be asked): the name is
    /// taken.
    Live,
    /// It is being probed: no answer to the join yet (the client repeats it).
    Probing,
    /// It did not answer its probe in time: end it and give the name away.
    Gone,
}

impl Session {
    /// Credits the session with the server's lateness since it was last credited: the
    /// client's silence, and its missing acknowledgements, during that time are ours.
    fn catch_up(&mut self, now: Instant, lateness: &Lateness) {
        let owed = self.credited.take(lateness);
        if owed.is_zero() {
            return;
        }
        lateness::forgive_silence(&mut self.last_heard, now, owed);
        if let Some(streams) = self.streams.as_mut() {
            streams.outbox.forgive(now, owed);
        }
    }
}

/// A named session that ended by the server's decision: its streams live on until the
/// client acknowledges the [`Frame::Disconnected`] (or stops answering), so a lost farewell
/// is repeated and the client never rejoins by mistake.
#[derive(Debug)]
struct Farewell {
    streams: Streams,
}

/// Why a session ended; decides what the client and everyone else are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Left,
    TimedOut,
    /// Heard from, maybe, but acknowledged nothing of what it was sent for
    /// [`GIVE_UP_AFTER`](crate::proto::reliable::GIVE_UP_AFTER): a receiver this slow costs work
    /// and gets nothing.
    Unresponsive,
    Kicked,
    /// Kicked automatically for flooding on after warnings.
    FloodKicked,
    Banned,
    /// A new program joined from the same address and port.
    Replaced,
}

/// The server's state machine. See the module documentation.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// An instant and the wall-clock time (ms since the Unix epoch) it corresponds to, so the
    /// server stamps messages with wall-clock time while its logic runs on `Instant`s.
    clock_origin: (Instant, i64),
    sessions: HashMap<SocketAddr, Session, FixedState>,
    by_name: HashMap<String, SocketAddr, FixedState>,
    farewells: HashMap<SocketAddr, Farewell, FixedState>,
    bans: BanList,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
    timers: Timers,
    stats: ServerStats,
    /// Flooders to tell how many messages were dropped, and when.
    flood_notices_due: Vec<(Instant, SocketAddr)>,
    /// Probed sessions and when their probe runs out (at most a few per session: one is
    /// added per probe, and a probe is answered or runs out within [`PROBE_TIMEOUT`]).
    probes: Vec<(Instant, SocketAddr)>,
    next_sweep: Instant,
    /// Malformed-datagram log lines, per address.
    malformed_log: LogGate<SocketAddr>,
    /// Refused-join log lines, per banned range or address.
    refusal_log: LogGate<RefusalKey>,
    /// The address the server's socket is bound to, once the binary has said so; datagrams
    /// that claim to come from it are forgeries and are dropped.
    local_addr: Option<SocketAddr>,
    /// Sessions that left recently: address, token and when, for [`LEFT_MEMORY`].
    left: HashMap<SocketAddr, (u64, Instant), FixedState>,
    /// Addresses kicked for flooding, and when: they may not come back (a guest by sending
    /// another line, a client by joining) until [`FLOOD_KICK_WINDOW`] has passed.
    flood_kicked: HashMap<SocketAddr, Instant, FixedState>,
    /// The secret key of join cookies: SipHash with random keys, a keyed hash built for
    /// exactly this (a short tag nobody without the key can compute).
    cookie_key: std::hash::RandomState,
    /// The clock of guests' chat lines, formatted once a second.
    clock_text: ClockText,
    /// Time the server itself could not run or keep up: clients' silence then is ours.
    lateness: Lateness,
    /// Joins carried out since the loop's last report ([`Server::handle_loop_report`]).
    joins_this_turn: usize,
}

impl Server {
    /// A server with no clients. `wall_ms` is the wall-clock time at `now`, in milliseconds
    /// since the Unix epoch.
    pub fn new(config: ServerConfig, bans: BanList, now: Instant, wall_ms: i64) -> Server {
        let hasher = FixedState::with_seed(config.hash_seed);
        Server {
            next_sweep: now + config.sweep_interval(),
            config,
            clock_origin: (now, wall_ms),
            sessions: HashMap::with_hasher(hasher.clone()),
            by_name: HashMap::with_hasher(hasher.clone()),
            farewells: HashMap::with_hasher(hasher.clone()),
            bans,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            lateness: Lateness::new(),
            joins_this_turn: 0,
            stats: ServerStats::default(),
            flood_notices_due: Vec::new(),
            probes: Vec::new(),
            malformed_log: LogGate::new(GateLimits {
                period: MALFORMED_LOG_PERIOD,
                keys: MALFORMED_LOG_MEMORY,
                ..GateLimits::default()
            }),
            refusal_log: LogGate::new(GateLimits {
                keys: MALFORMED_LOG_MEMORY,
                ..GateLimits::default()
            }),
            flood_kicked: HashMap::with_hasher(hasher.clone()),
            left: HashMap::with_hasher(hasher.clone()),
            local_addr: None,
            cookie_key: std::hash::RandomState::new(),
            clock_text: ClockText::default(),
        }
    }

    /// The cookie a join from `from` with `nonce` must carry during `period` (a number of
    /// [`COOKIE_PERIOD`]s since the server started). Never 0, which means "no cookie".
    fn cookie(&self, from: SocketAddr, nonce: u64, period: u64) -> u64 {
        use std::hash::BuildHasher;
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        self.cookie_key.hash_one((from, nonce, period)).max(1)
    }

    fn cookie_period(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.clock_origin.0);
        elapsed.as_secs() / COOKIE_PERIOD.as_secs()
    }

    /// Whether a join carries the cookie of this period or the one before.
    fn cookie_is_valid(&self, now: Instant, from: SocketAddr, nonce: u64, cookie: u64) -> bool {
        let period = self.cookie_period(now);
        cookie != 0
            && (cookie == self.cookie(from, nonce, period)
                || (period > 0 && cookie == self.cookie(from, nonce, period - 1)))
    }

    /// Tells the core which address its socket is bound to. Datagrams claiming to come from
    /// that address (or, for a wildcard bind, from the same port on a loopback address) are
    /// forgeries: answering them would make the server talk to itself forever.
    pub fn set_local_address(&mut self, local_addr: SocketAddr) {
        self.local_addr = Some(local_addr);
    }

    fn is_own_address(&self, from: SocketAddr) -> bool {
        let Some(local) = self.local_addr else {
            return false;
        };
        let from_ip = from.ip().to_canonical();
        from.port() == local.port()
            && (from_ip == local.ip().to_canonical()
                || (local.ip().is_unspecified() && from_ip.is_loopback()))
    }

    /// The settings in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Counters since the server started.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Whether any frame sent to a client still waits for its acknowledgement.
    pub fn has_unacknowledged(&self) -> bool {
        self.farewells_pending()
            || self
                .sessions
                .values()
                .filter_map(|s| s.streams.as_ref())
                .any(|streams| !streams.outbox.is_empty())
    }

    /// Whether ended sessions are still repeating their farewell; a closing server waits
    /// (briefly) for this to turn false so its last words arrive.
    pub fn farewells_pending(&self) -> bool {
        !self.farewells.is_empty()
    }

    /// Processes one datagram that arrived from `from`. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if self.is_own_address(from) {
            return self.note_malformed(now, from, "forged with the server's own address");
        }
        if self.bans.is_banned(from.ip()) {
            // A banned address gets no service; its join gets a refusal so a person using
            // a real client learns why (the refusal is smaller than the padded join).
            if let Ok(Frame::Join { nonce, name, .. }) = Frame::decode(datagram) {
                self.refuse(now, from, nonce, name, RefuseReason::Banned);
            }
            return;
        }
        if !wire::is_frame(datagram) {
            if self.config.guests {
                self.handle_guest_datagram(now, from, datagram);
            } else {
                self.note_malformed(now, from, "plain text, but guests are off (--guests)");
            }
            return;
        }
        match Frame::decode(datagram) {
            Ok(frame) => self.handle_frame(now, from, frame),
            Err(DecodeError::UnsupportedVersion { version }) => {
                // Tell a newer or older client why nothing works, in the refusal every
                // version can read; only joins are answered (never a server's frame, or two
                // servers of different versions could answer each other forever), and never
                // with more bytes than the join had.
                if let Some(nonce) = wire::any_version_join_nonce(datagram) {
                    let refusal = Frame::Refused {
                        nonce,
                        reason: RefuseReason::VersionUnsupported,
                    }
                    .to_bytes();
                    // A real join of any version has a name after the nonce, so it is at
                    // least as long as the refusal; a bare header and nonce (12 bytes) is a
                    // forgery and must not get 13 bytes back.
                    if refusal.len() <= datagram.len() {
                        self.push(from, refusal.into());
                    }
                }
                self.note_malformed(now, from, &format!("protocol version {version}"));
            }
            Err(error) => self.note_malformed(now, from, &error.to_string()),
        }
    }

    fn handle_frame(&mut self, now: Instant, from: SocketAddr, frame: Frame) {
        if frame.is_peer() {
            // Peer mode needs no server: a peer frame here is a peer given the server's
            // address by mistake, or a forgery. Only a join is answered, with a refusal
            // the peer's join reads (13 bytes for 512: a forgery gains nothing), so the
            // person learns this is a server; nothing else, like a server-only frame.
            if let Frame::PeerJoin { nonce, .. } = frame {
                let reason = RefuseReason::IsAServer;
                self.send_unsequenced(from, &Frame::PeerRefused { nonce, reason });
            }
            return self.note_malformed(now, from, "a peer-mode frame (servers take no part)");
        }
        if !frame.travels_to_server() {
            // Never answered, not even with NotJoined: answering a server-bound frame is how
            // two servers, or one server fed a forgery of its own address, would loop.
            let why = format!("a server-only frame ({})", frame_name(&frame));
            return self.note_malformed(now, from, &why);
        }
        if let Frame::Join {
            nonce,
            cookie,
            previous_token,
            name,
        } = frame
        {
            if !self.cookie_is_valid(now, from, nonce, cookie) {
                // Prove the address first: answer with a cookie only its owner receives,
                // keeping no state (a storm of forged joins costs us no memory).
                let cookie = self.cookie(from, nonce, self.cookie_period(now));
                return self.send_unsequenced(from, &Frame::Challenge { nonce, cookie });
            }
            return self.admit_join(now, from, nonce, previous_token, name);
        }
        let token = frame.token().unwrap_or_default();
        let is_session = self
            .sessions
            .get(&from)
            .and_then(|s| s.streams.as_ref())
            .is_some_and(|streams| streams.token == token);
        if is_session {
            return self.handle_session_frame(now, from, frame);
        }
        if let Some(farewell) = self.farewells.get_mut(&from)
            && farewell.streams.token == token
        {
            // The session is over; only its acknowledgements still matter, to stop
            // repeating the farewell.
            if let Some(acks) = frame.acks() {
                farewell.streams.outbox.on_acks(now, acks);
            }
            if farewell.streams.outbox.is_empty() {
                self.farewells.remove(&from);
            } else {
                // The client is there but has not got the farewell (it was suspended, or
                // the farewell was lost): repeat it now rather than at the next timer.
                farewell.streams.outbox.expedite(now);
                let mut out = Outgoing {
                    transmits: &mut self.transmits,
                    timers: &mut self.timers,
                    stats: &mut self.stats,
                };
                if !farewell.streams.retransmit_due(now, from, &mut out) {
                    self.farewells.remove(&from);
                }
            }
            return;
        }
        // Unknown session: a client of a server that restarted, one we evicted, or a
        // forgery. The answer is tiny and repeats only what was sent, so it is safe to send
        // to an address that proved nothing; a Leave's answer lets the client stop.
        let left_recently = self
            .left
            .get(&from)
            .is_some_and(|(left_token, _)| *left_token == token);
        if matches!(frame, Frame::Leave { .. }) && left_recently {
            self.send_unsequenced(from, &Frame::LeaveAck { token });
        } else {
            self.send_unsequenced(from, &Frame::NotJoined { token });
        }
    }

    fn handle_session_frame(&mut self, now: Instant, from: SocketAddr, frame: Frame) {
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        let Some(streams) = session.streams.as_mut() else {
            return;
        };
        session.last_heard = now;
        // Any frame of the session answers a probe.
        session.probe = None;
        if let Some(acks) = frame.acks() {
            streams.outbox.on_acks(now, acks);
        }
        // A heartbeat is always answered: that answer is how the client knows we are alive.
        let heartbeat = matches!(frame, Frame::Heartbeat { .. });
        // Requests the flood limit does not count carry no stamp: 0 stands in.
        let request = match frame {
            Frame::Chat {
                envelope,
                sent_ms,
                text,
            } => Some((envelope.seq, Request::Chat(text), sent_ms)),
            Frame::ListRequest { envelope } => Some((envelope.seq, Request::List, 0)),
            Frame::Leave { envelope } => Some((envelope.seq, Request::Leave, 0)),
            Frame::Private {
                envelope,
                sent_ms,
                to,
                text,
            } => Some((envelope.seq, Request::Private { to, text }, sent_ms)),
            Frame::Action {
                envelope,
                sent_ms,
                text,
            } => Some((envelope.seq, Request::Action(text), sent_ms)),
            Frame::Nick {
                envelope,
                sent_ms,
                name,
            } => Some((envelope.seq, Request::Nick(name), sent_ms)),
            Frame::Away {
                envelope,
                sent_ms,
                reason,
            } => Some((envelope.seq, Request::Away(reason), sent_ms)),
            _ => None,
        };
        if let Some((seq, request, sent_ms)) = request {
            streams.inbox.insert(now, seq, (request, sent_ms));
        }
        // Requests are carried out in the order the client sent them, each once.
        while let Some(ready) = self
            .sessions
            .get_mut(&from)
            .and_then(|s| s.streams.as_mut())
            .and_then(|streams| {
                let ready = streams.inbox.pop_ready();
                streams.stamp = match &ready {
                    Some(Ready::Item((_, sent_ms))) => Some(*sent_ms),
                    _ => None,
                };
                ready.map(|ready| match ready {
                    Ready::Item((request, _)) => Ready::Item(request),
                    Ready::Skipped(count) => Ready::Skipped(count),
                })
            })
        {
            match ready {
                Ready::Item(Request::Chat(text)) => self.handle_chat(now, from, &text),
                Ready::Item(Request::List) => self.send_roster(now, from),
                Ready::Item(Request::Private { to, text }) => {
                    self.handle_private(now, from, &to, &text)
                }
                Ready::Item(Request::Action(text)) => self.handle_action(now, from, &text),
                Ready::Item(Request::Nick(name)) => self.handle_nick(now, from, name),
                Ready::Item(Request::Away(reason)) => self.handle_away(now, from, &reason),
                Ready::Item(Request::Leave) => {
                    let token = self.remove_session(now, from, Removal::Left);
                    if let Some(token) = token {
                        self.send_unsequenced(from, &Frame::LeaveAck { token });
                        // Bounded like the other per-address memories.
                        if self.left.len() < MALFORMED_LOG_MEMORY {
                            self.left.insert(from, (token, now));
                        }
                    }
                    return;
                }
                Ready::Skipped(_) => {}
            }
        }
        // Whatever we sent meanwhile carried the acknowledgements; if nothing did, say so.
        if let Some(streams) = self
            .sessions
            .get_mut(&from)
            .and_then(|s| s.streams.as_mut())
            && (heartbeat || streams.inbox.ack_deadline().is_some())
        {
            let ack = Frame::ServerAck {
                token: streams.token,
                acks: streams.inbox.acks(),
            };
            streams.inbox.ack_sent();
            self.send_unsequenced(from, &ack);
        }
        if let Some(streams) = self
            .sessions
            .get_mut(&from)
            .and_then(|s| s.streams.as_mut())
        {
            // Acknowledgements may have emptied the outbox or changed its deadline.
            streams.arm(now, from, &mut self.timers);
        }
    }

    /// The loop reports, after each batch of datagrams, whether more were waiting
    /// (`behind`: it is not keeping up). While it falls behind, the time counts as the
    /// server's own lateness (no client is evicted for silence meanwhile, its datagrams
    /// may have waited or been dropped in the socket's buffer), and joins wait their turn
    /// so heartbeats and acknowledgements are handled first.
    pub fn handle_loop_report(&mut self, now: Instant, behind: bool) {
        self.lateness.loop_report(now, behind);
        self.joins_this_turn = 0;
    }

    /// A join with a valid cookie: carried out now, unless the loop is falling behind
    /// and [`JOINS_PER_TURN`] joins were carried out since its last report; then it is
    /// refused as busy, and the client asks again after
    /// [`BUSY_RETRY`](crate::client::BUSY_RETRY), not at once. A repeated join of a live
    /// session (its welcome was lost) is cheap and never refused.
    fn admit_join(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: u64,
        previous_token: u64,
        name: String,
    ) {
        let repeat = self
            .sessions
            .get(&from)
            .and_then(|s| s.streams.as_ref())
            .is_some_and(|streams| streams.nonce == nonce);
        if !repeat && self.lateness.is_behind() && self.joins_this_turn >= JOINS_PER_TURN {
            // Not logged: a storm would flood the log with one line per join.
            let busy = Frame::Refused {
                nonce,
                reason: RefuseReason::Busy,
            };
            return self.send_unsequenced(from, &busy);
        }
        self.joins_this_turn += 1;
        self.handle_join(now, from, nonce, previous_token, name);
    }

    fn handle_join(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: u64,
        previous_token: u64,
        name: String,
    ) {
        self.farewells.remove(&from);
        if let Some(session) = self.sessions.get(&from) {
            match &session.streams {
                Some(streams) if streams.nonce == nonce => {
                    // The welcome was lost and the client asked again: answer, change
                    // nothing.
                    let welcome = self.welcome(nonce, streams.token, &session.name);
                    self.send_unsequenced(from, &welcome);
                    return;
                }
                Some(_) if names::key(&session.name) != names::key(&name) => {
                    // Someone else's session is live at this address and port: do not let
                    // a join (perhaps forged) end it.
                    return self.refuse(now, from, nonce, name, RefuseReason::AddressInUse);
                }
                // The same person's program restarted on the same port, or a guest starts
                // a real client: the old session is over.
                _ => {
                    self.remove_session(now, from, Removal::Replaced);
                }
            }
        }
        if self.cooling_down(now, from) {
            return self.refuse(now, from, nonce, name, RefuseReason::KickedRecently);
        }
        if names::validate(&name).is_err() {
            return self.refuse(now, from, nonce, name, RefuseReason::NameInvalid);
        }
        let name_key = names::key(&name);
        if let Some(&holder) = self.by_name.get(&name_key) {
            match self.check_holder(now, holder) {
                Holder::Live => {
                    return self.refuse(now, from, nonce, name, RefuseReason::NameTaken);
                }
                // The join gets no answer yet; the client repeats it until it does.
                Holder::Probing => return,
                Holder::Gone => {
                    self.remove_session(now, holder, Removal::TimedOut);
                }
            }
        }
        if self.sessions.len() >= self.config.max_clients {
            return self.refuse(now, from, nonce, name, RefuseReason::ServerFull);
        }
        if self.at_per_ip_cap(from) {
            return self.refuse(now, from, nonce, name, RefuseReason::TooManyFromAddress);
        }
        let token = new_token();
        let welcome = self.welcome(nonce, token, &name);
        self.send_unsequenced(from, &welcome);
        let streams = Streams::new(token, nonce);
        self.add_session(now, from, name, name_key, Some(streams));
        if previous_token != 0 {
            // Coming back after losing its session: whatever was said meanwhile is gone
            // (a history to replay is for later), and silence would hide that.
            let time_ms = self.wall_ms(now);
            self.send_notice_to(now, from, time_ms, MISSED_WHILE_AWAY);
        }
    }

    /// Whether the session at `holder`, whose name a join (with a valid cookie) asks for,
    /// is alive: heard from within [`PROBE_AFTER_SILENCE`], or answering a [`Frame::Probe`]
    /// within [`PROBE_TIMEOUT`]. Only cookie-proven joins get here, and what is kept is
    /// kept on the holder's session, never for the joiner: a join repeated meanwhile
    /// finds the same probe.
    fn check_holder(&mut self, now: Instant, holder: SocketAddr) -> Holder {
        let Some(session) = self.sessions.get_mut(&holder) else {
            return Holder::Gone;
        };
        // A guest has no way to answer: its name is held until it times out.
        let Some(token) = session.streams.as_ref().map(|s| s.token) else {
            return Holder::Live;
        };
        if now.saturating_duration_since(session.last_heard) <= PROBE_AFTER_SILENCE {
            return Holder::Live;
        }
        match &mut session.probe {
            Some(probe) if now >= probe.deadline => return Holder::Gone,
            Some(probe) if now.saturating_duration_since(probe.sent) < PROBE_REPEAT => {
                return Holder::Probing;
            }
            Some(probe) => probe.sent = now,
            None => {
                let deadline = now + PROBE_TIMEOUT;
                session.probe = Some(Probe {
                    deadline,
                    sent: now,
                });
                self.probes.push((deadline, holder));
            }
        }
        self.send_unsequenced(holder, &Frame::Probe { token });
        Holder::Probing
    }

    fn welcome(&self, nonce: u64, token: u64, name: &str) -> Frame {
        let heartbeat_ms = self.config.heartbeat_interval().as_millis();
        Frame::Welcome {
            nonce,
            token,
            heartbeat_ms: u32::try_from(heartbeat_ms).unwrap_or(u32::MAX),
            flood: FloodTerms::from_limit(self.config.flood_limit),
            name: name.to_owned(),
        }
    }

    fn refuse(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: u64,
        name: String,
        reason: RefuseReason,
    ) {
        self.send_unsequenced(from, &Frame::Refused { nonce, reason });
        // Anyone can make us refuse: the log says so a few times, then sums up.
        let banned_by = match reason {
            RefuseReason::Banned => self.bans.matching(from.ip()).map(|entry| entry.net),
            _ => None,
        };
        let key = banned_by.map_or(RefusalKey::Address(from.ip()), RefusalKey::Banned);
        if !self.refusal_log.admit(now, &key) {
            return;
        }
        self.events.push_back(ServerEvent::Refused {
            time_ms: self.wall_ms(now),
            name: display::sanitize(&name).into_owned(),
            addr: from,
            reason,
        });
    }

    fn add_session(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        name: String,
        name_key: String,
        streams: Option<Streams>,
    ) {
        let kind = if streams.is_some() {
            ClientKind::Named
        } else {
            ClientKind::Guest
        };
        // Everyone already here hears of the newcomer; the newcomer hears who is here
        // instead (a named client) or its own arrival (a guest, which has no roster).
        self.broadcast_presence(now, &name, PresenceChange::Joined);
        self.by_name.insert(name_key.clone(), addr);
        self.sessions.insert(
            addr,
            Session {
                name: name.clone(),
                name_key,
                kind,
                joined_at: now,
                last_heard: now,
                flood: self.config.flood_limit.map(|limit| {
                    // A backlog older than the timeout cannot be honest: a client silent
                    // that long has been evicted.
                    let mut gate = FloodGate::new(limit, now, self.config.timeout);
                    if kind == ClientKind::Named {
                        // The client's stamps count from the welcome, sent now.
                        gate.sender_clock(now, 0);
                    }
                    gate
                }),
                flood_dropped: 0,
                flood_warnings: Vec::new(),
                away: None,
                streams,
                probe: None,
                credited: Credited::now(&self.lateness),
            },
        );
        let time_ms = self.wall_ms(now);
        match kind {
            ClientKind::Named => self.send_roster(now, addr),
            ClientKind::Guest => {
                let line = display::presence_text(&name, &PresenceChange::Joined);
                self.push(addr, guest_line(display::notice_line(time_ms, &line)));
            }
        }
        self.events.push_back(ServerEvent::Joined {
            time_ms,
            name,
            addr,
            guest: kind == ClientKind::Guest,
        });
    }

    fn handle_chat(&mut self, now: Instant, from: SocketAddr, text: &str) {
        if text.is_empty() || !self.admit_under_flood_limit(now, from) {
            return;
        }
        if let Some(name) = self.sessions.get(&from).map(|s| s.name.clone()) {
            self.broadcast_chat(now, Some(from), &name, text);
        }
    }

    /// A guest's datagram: one or more plain text lines. The first one registers the guest.
    fn handle_guest_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Ok(text) = std::str::from_utf8(datagram) else {
            return self.note_malformed(now, from, "guest text is not valid UTF-8");
        };
        if !self.sessions.contains_key(&from) {
            if from.port() < 1024 || self.local_addr.is_some_and(|l| l.port() == from.port()) {
                // Plain text from a well-known service port (echo, chargen, DNS...) or from
                // another chat server's port is a forgery meant to start an endless
                // exchange: every line we send there would come back as a new line.
                return self.note_malformed(now, from, "guest text from a service port");
            }
            if self.cooling_down(now, from) {
                return self.note_malformed(now, from, "guest kicked for flooding a moment ago");
            }
            if self.sessions.len() >= self.config.max_clients {
                return self.note_malformed(now, from, "guest refused: server full");
            }
            if self.at_per_ip_cap(from) {
                return self.note_malformed(now, from, "guest refused: too many from this IP");
            }
            // IPv4 peers of a server bound to [::] appear as ::ffff:a.b.c.d; name them by the
            // address people know.
            let shown = SocketAddr::new(from.ip().to_canonical(), from.port());
            let name = format!("{}{shown}", names::GUEST_PREFIX);
            let name_key = names::key(&name);
            self.add_session(now, from, name, name_key, None);
        }
        if let Some(session) = self.sessions.get_mut(&from) {
            session.last_heard = now;
        }
        // `lines` also drops the `\r` of a `\r\n`, as sent by some terminals and netcat -C.
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            if !self.sessions.contains_key(&from) {
                break; // it said /exit
            }
            self.handle_guest_line(now, from, line);
        }
    }

    /// One line from a guest: a command when it starts with `/` (the client's commands, read
    /// by the client's parser), chat otherwise (`//text` is the chat line `/text`). What a
    /// command answers goes to the guest only.
    fn handle_guest_line(&mut self, now: Instant, from: SocketAddr, line: &str) {
        let time_ms = self.wall_ms(now);
        let command = match command::parse(line, Side::Client) {
            Ok(Input::Empty) => return,
            Ok(Input::Text(text)) => return self.handle_chat(now, from, &text),
            Ok(Input::Command(command)) => command,
            Err(error) => {
                // An answer the guest did not pay for with a datagram of its size: it
                // costs a flood token, like everything a guest makes us send.
                if self.admit_under_flood_limit(now, from) {
                    self.send_notice_to(now, from, time_ms, &error.to_string());
                }
                return;
            }
        };
        match command {
            Command::Msg { to, text } => self.handle_private(now, from, &to, &text),
            Command::Me { text } => self.handle_action(now, from, &text),
            Command::Nick { name } => self.handle_nick(now, from, name),
            Command::Away { reason } => {
                let reason = reason.as_deref().unwrap_or(AWAY_WITHOUT_REASON);
                self.handle_away(now, from, reason)
            }
            Command::Back => self.handle_away(now, from, ""),
            Command::Exit => {
                self.send_notice_to(now, from, time_ms, "you left the chat");
                self.remove_session(now, from, Removal::Left);
            }
            Command::List if self.admit_under_flood_limit(now, from) => self.send_roster(now, from),
            Command::Help if self.admit_under_flood_limit(now, from) => {
                let mut text = String::new();
                for line in command::help_lines(Side::Client) {
                    text.push_str(&line);
                    text.push('\n');
                }
                self.push(from, text.into_bytes().into());
            }
            // Over the flood limit (counted and reported like chat), or a server command,
            // which the client's parser never returns.
            _ => {}
        }
    }

    /// Whether `from` was kicked for flooding less than [`FLOOD_KICK_WINDOW`] ago.
    fn cooling_down(&self, now: Instant, from: SocketAddr) -> bool {
        self.flood_kicked
            .get(&from)
            .is_some_and(|at| now.saturating_duration_since(*at) < FLOOD_KICK_WINDOW)
    }

    /// Whether `from`'s IP address already has as many sessions as one address may.
    fn at_per_ip_cap(&self, from: SocketAddr) -> bool {
        let Some(cap) = self.config.max_per_ip else {
            return false;
        };
        let ip = from.ip().to_canonical();
        // A scan, but only when someone joins, and bounded by max_clients.
        let count = self
            .sessions
            .keys()
            .filter(|addr| addr.ip().to_canonical() == ip)
            .take(cap)
            .count();
        count >= cap
    }

    fn admit_under_flood_limit(&mut self, now: Instant, from: SocketAddr) -> bool {
        let Some(session) = self.sessions.get_mut(&from) else {
            return false;
        };
        let Some(gate) = session.flood.as_mut() else {
            return true;
        };
        let stamp = session.streams.as_ref().and_then(|streams| streams.stamp);
        if gate.admit(now, stamp) {
            return true;
        }
        if session.flood_dropped == 0 {
            self.flood_notices_due
                .push((now + FLOOD_NOTICE_DELAY, from));
        }
        session.flood_dropped = session.flood_dropped.saturating_add(1);
        false
    }

    fn send_roster(&mut self, now: Instant, to: SocketAddr) {
        let mut people: Vec<RosterEntry> = self
            .sessions
            .values()
            .map(|s| RosterEntry {
                name: s.name.clone(),
                away: s.away.clone().unwrap_or_default(),
                guest: s.kind == ClientKind::Guest,
            })
            .collect();
        people.sort_by_cached_key(|entry| names::fold(&entry.name));
        let time_ms = self.wall_ms(now);
        if self
            .sessions
            .get(&to)
            .is_some_and(|s| s.kind == ClientKind::Guest)
        {
            return self.send_guest_roster(to, time_ms, &people);
        }
        let total = u16::try_from(people.len()).unwrap_or(u16::MAX);
        people.truncate(usize::from(total));
        // Header, envelope, time, total and offset; then as many entries as fit in one
        // datagram.
        const ROSTER_FIXED_LEN: usize = wire::HEADER_LEN + wire::ENVELOPE_LEN + 8 + 2 + 2;
        let mut frames = Vec::new();
        let mut chunk: Vec<RosterEntry> = Vec::new();
        let mut chunk_len = ROSTER_FIXED_LEN;
        let mut offset = 0usize;
        for (index, entry) in people.into_iter().enumerate() {
            let entry_len = 3 + entry.name.len() + entry.away.len();
            if chunk_len + entry_len > wire::MAX_DATAGRAM {
                frames.push((offset, std::mem::take(&mut chunk)));
                offset = index;
                chunk_len = ROSTER_FIXED_LEN;
            }
            chunk_len += entry_len;
            chunk.push(entry);
        }
        frames.push((offset, chunk));
        for (offset, entries) in frames {
            let offset = u16::try_from(offset).unwrap_or(u16::MAX);
            let roster = Frame::Roster {
                envelope: Envelope::default(),
                time_ms,
                total,
                offset,
                entries,
            };
            self.send_sequenced(now, to, roster.to_bytes().into());
        }
    }

    /// A guest's `/list`: one line, `-- 3 online: alice, bob, carol`, in one datagram (a
    /// guest never proved its address: the answer to its few bytes stays small), ending
    /// `and N more` when not everyone fits.
    fn send_guest_roster(&mut self, to: SocketAddr, time_ms: i64, people: &[RosterEntry]) {
        // Room for the clock, the newline, and "and 65535 more".
        const RESERVE: usize = 40;
        let mut shown = people.len();
        let mut text = display::online_text(people.len(), 0, people);
        while text.len() + RESERVE > wire::MAX_DATAGRAM && shown > 0 {
            shown -= 1;
            text = display::online_text(people.len(), 0, &people[..shown]);
        }
        if shown < people.len() {
            text.push_str(&format!(" and {} more", people.len() - shown));
        }
        self.push(to, guest_line(display::notice_line(time_ms, &text)));
    }

    /// `/msg`: delivers `text` to the client called `to` and echoes it to the sender, so
    /// both see it (and only they do). An unknown name gets the sender a notice.
    fn handle_private(&mut self, now: Instant, from: SocketAddr, to: &str, text: &str) {
        if text.trim().is_empty() || !self.admit_under_flood_limit(now, from) {
            return;
        }
        let Some(sender) = self.sessions.get(&from).map(|s| s.name.clone()) else {
            return;
        };
        // An unknown name is already reported to the sender as a notice.
        let _ = self.send_private(now, &sender, Some(from), to, text);
    }

    /// Sends a private message from `sender` (at `from`, or the console when `None`).
    fn send_private(
        &mut self,
        now: Instant,
        sender: &str,
        from: Option<SocketAddr>,
        to: &str,
        text: &str,
    ) -> Result<(), ServerError> {
        let time_ms = self.wall_ms(now);
        let Some(recipient_addr) = self.address_of(to) else {
            if let Some(from) = from {
                let notice = format!(
                    "not delivered: no one called {} is online (see /list)",
                    display::sanitize(to)
                );
                self.send_notice_to(now, from, time_ms, &notice);
            }
            return Err(ServerError::NoSuchClient {
                name: to.to_owned(),
            });
        };
        let recipient = self.sessions[&recipient_addr].name.clone();
        let clean = display::sanitize(text);
        for piece in wire::split_text(&clean) {
            let frame = Frame::PrivateMessage {
                envelope: Envelope::default(),
                time_ms,
                from: sender.to_owned(),
                to: recipient.clone(),
                text: piece.to_owned(),
            };
            let payload: Arc<[u8]> = frame.to_bytes().into();
            let mut recipients = vec![recipient_addr];
            if let Some(from) = from
                && from != recipient_addr
            {
                recipients.push(from);
            }
            for addr in recipients {
                match self.sessions.get(&addr).map(|s| s.kind) {
                    Some(ClientKind::Named) => self.send_sequenced(now, addr, payload.clone()),
                    Some(ClientKind::Guest) => {
                        let line = format!(
                            "{} (private)",
                            display::message_line(time_ms, sender, piece)
                        );
                        self.push(addr, guest_line(line));
                    }
                    None => {}
                }
            }
            self.events.push_back(ServerEvent::Private {
                time_ms,
                from: sender.to_owned(),
                to: recipient.clone(),
                text: piece.to_owned(),
            });
        }
        Ok(())
    }

    /// `/me`: an action, broadcast as `* alice waves`.
    fn handle_action(&mut self, now: Instant, from: SocketAddr, text: &str) {
        if text.trim().is_empty() || !self.admit_under_flood_limit(now, from) {
            return;
        }
        let Some(name) = self.sessions.get(&from).map(|s| s.name.clone()) else {
            return;
        };
        let time_ms = self.wall_ms(now);
        let clean = display::sanitize(text);
        for piece in wire::split_text(&clean) {
            let frame = || Frame::ActionMessage {
                envelope: Envelope::default(),
                time_ms,
                from: name.clone(),
                text: piece.to_owned(),
            };
            let guest = |clock: &mut ClockText| {
                guest_line(format!("[{}] * {name} {piece}", clock.get(time_ms)))
            };
            self.broadcast(now, Some(from), frame, guest);
            self.events.push_back(ServerEvent::Action {
                time_ms,
                from: name.clone(),
                text: piece.to_owned(),
            });
        }
    }

    /// `/nick`: renames the client if the new name is valid and free, and tells everyone.
    fn handle_nick(&mut self, now: Instant, from: SocketAddr, new_name: String) {
        let time_ms = self.wall_ms(now);
        let Some(old_name) = self.sessions.get(&from).map(|s| s.name.clone()) else {
            return;
        };
        let new_key = names::key(&new_name);
        let refusal = if let Err(error) = names::validate(&new_name) {
            Some(format!(
                "cannot rename to {}: {error}",
                display::sanitize(&new_name)
            ))
        } else if self.by_name.get(&new_key).is_some_and(|addr| *addr != from) {
            Some(format!(
                "cannot rename: {} is taken",
                display::sanitize(&new_name)
            ))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return self.send_notice_to(now, from, time_ms, &refusal);
        }
        if new_name == old_name {
            return;
        }
        // A rename is announced to everyone: it costs a flood token like a message.
        if !self.admit_under_flood_limit(now, from) {
            return;
        }
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        let old_key = std::mem::replace(&mut session.name_key, new_key.clone());
        session.name = new_name.clone();
        let kind = session.kind;
        self.by_name.remove(&old_key);
        self.by_name.insert(new_key, from);
        let renamed = Frame::Renamed {
            envelope: Envelope::default(),
            name: new_name.clone(),
        };
        match kind {
            ClientKind::Named => self.send_sequenced(now, from, renamed.to_bytes().into()),
            ClientKind::Guest => {
                let text = format!("you are now known as {}", display::sanitize(&new_name));
                self.send_notice_to(now, from, time_ms, &text);
            }
        }
        self.broadcast_presence(
            now,
            &old_name,
            PresenceChange::Renamed {
                to: new_name.clone(),
            },
        );
        self.events.push_back(ServerEvent::Renamed {
            time_ms,
            from: old_name,
            to: new_name,
            addr: from,
        });
    }

    /// `/away REASON` (or `/back`: an empty reason): shown in `/list`, announced once.
    fn handle_away(&mut self, now: Instant, from: SocketAddr, reason: &str) {
        let reason = reason.trim();
        // Sanitizing can lengthen a reason; keep it within what a roster entry carries.
        let new = (!reason.is_empty()).then(|| {
            let clean = display::sanitize(reason);
            wire::truncate_to_char_boundary(&clean, wire::MAX_NAME_BYTES).to_owned()
        });
        if self.sessions.get(&from).is_none_or(|s| s.away == new) {
            return;
        }
        // Each change is announced to everyone: it costs a flood token like a message.
        if !self.admit_under_flood_limit(now, from) {
            return;
        }
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        let name = session.name.clone();
        session.away = new.clone();
        let change = match &new {
            Some(reason) => PresenceChange::Away {
                reason: reason.clone(),
            },
            None => PresenceChange::Back,
        };
        self.broadcast_presence(now, &name, change);
        self.events.push_back(ServerEvent::Away {
            time_ms: self.wall_ms(now),
            name,
            reason: new,
        });
    }

    /// Advances timers: evicts silent clients, sends due flood notices. Call when
    /// [`Server::poll_timeout`]'s instant has passed (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.retransmit_due(now);
        let (due, later): (Vec<_>, Vec<_>) = self
            .flood_notices_due
            .drain(..)
            .partition(|(when, _)| *when <= now);
        self.flood_notices_due = later;
        for (_, addr) in due {
            self.send_flood_notice(now, addr);
        }
        let (due, later): (Vec<_>, Vec<_>) =
            self.probes.drain(..).partition(|(when, _)| *when <= now);
        self.probes = later;
        for (deadline, addr) in due {
            let unanswered = self
                .sessions
                .get(&addr)
                .and_then(|s| s.probe)
                .is_some_and(|probe| probe.deadline == deadline);
            if unanswered {
                self.remove_session(now, addr, Removal::TimedOut);
            }
        }

        let time_ms = self.wall_ms(now);
        let summaries = self
            .refusal_log
            .poll(now)
            .into_iter()
            .map(|summary| suppressed(time_ms, SuppressedKind::Refusals, summary))
            .chain(
                self.malformed_log
                    .poll(now)
                    .into_iter()
                    .map(|summary| suppressed(time_ms, SuppressedKind::Malformed, summary)),
            );
        self.events.extend(summaries.collect::<Vec<_>>());

        if now >= self.next_sweep {
            self.next_sweep = now + self.config.sweep_interval();
            let timeout = self.config.timeout;
            let mut silent = Vec::new();
            for (addr, session) in &mut self.sessions {
                session.catch_up(now, &self.lateness);
                if now.saturating_duration_since(session.last_heard) >= timeout {
                    silent.push(*addr);
                } else if let Some(streams) = session.streams.as_mut() {
                    // Idle clients are most of them on a big server: each one's outbox
                    // would keep room for its largest burst (~5 KB for 64 frames).
                    streams.outbox.release_memory_if_idle();
                }
            }
            for addr in silent {
                self.remove_session(now, addr, Removal::TimedOut);
            }
            self.flood_kicked
                .retain(|_, at| now.saturating_duration_since(*at) < FLOOD_KICK_WINDOW);
            self.left
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < LEFT_MEMORY);
        }
    }

    /// When [`Server::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sweep =
            (!self.sessions.is_empty() || !self.flood_kicked.is_empty() || !self.left.is_empty())
                .then_some(self.next_sweep);
        let notices = self
            .flood_notices_due
            .iter()
            .chain(&self.probes)
            .map(|(when, _)| *when);
        let retransmit = self.timers.peek().map(|Reverse((when, _))| *when);
        let summaries = [
            self.refusal_log.next_deadline(),
            self.malformed_log.next_deadline(),
        ];
        sweep
            .into_iter()
            .chain(notices)
            .chain(retransmit)
            .chain(summaries.into_iter().flatten())
            .min()
    }

    /// Sends again every sequenced frame whose acknowledgement is overdue, to sessions and
    /// farewells alike. Evicts a client that stopped acknowledging altogether.
    fn retransmit_due(&mut self, now: Instant) {
        let mut unreachable = Vec::new();
        while let Some(&Reverse((deadline, addr))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let mut out = Outgoing {
                transmits: &mut self.transmits,
                timers: &mut self.timers,
                stats: &mut self.stats,
            };
            if let Some(streams) = self
                .sessions
                .get_mut(&addr)
                .and_then(|s| s.streams.as_mut())
            {
                if streams.timer != Some(deadline) {
                    continue; // stale: re-armed for another instant since
                }
                if let Some(session) = self.sessions.get_mut(&addr) {
                    session.catch_up(now, &self.lateness);
                }
                let Some(streams) = self
                    .sessions
                    .get_mut(&addr)
                    .and_then(|s| s.streams.as_mut())
                else {
                    continue;
                };
                if !streams.retransmit_due(now, addr, &mut out) {
                    unreachable.push(addr);
                }
            } else if let Some(farewell) = self.farewells.get_mut(&addr) {
                if farewell.streams.timer != Some(deadline) {
                    continue;
                }
                if !farewell.streams.retransmit_due(now, addr, &mut out)
                    || farewell.streams.outbox.is_empty()
                {
                    self.farewells.remove(&addr);
                }
            }
        }
        for addr in unreachable {
            self.remove_session(now, addr, Removal::Unresponsive);
        }
    }

    fn send_flood_notice(&mut self, now: Instant, addr: SocketAddr) {
        let Some(session) = self.sessions.get_mut(&addr) else {
            return;
        };
        let dropped = std::mem::take(&mut session.flood_dropped);
        if dropped == 0 {
            return;
        }
        session
            .flood_warnings
            .retain(|at| now.saturating_duration_since(*at) < FLOOD_KICK_WINDOW);
        session.flood_warnings.push(now);
        let warnings = session.flood_warnings.len();
        let name = session.name.clone();
        let limit = self.config.flood_limit.map_or(String::new(), |l| {
            format!(" (limit: {}/s, bursts of {})", l.rate_per_sec, l.burst)
        });
        let plural = if dropped == 1 { "" } else { "s" };
        let text = format!("{dropped} message{plural} not sent: you are sending too fast{limit}");
        let time_ms = self.wall_ms(now);
        self.send_notice_to(now, addr, time_ms, &text);
        self.events.push_back(ServerEvent::FloodDropped {
            time_ms,
            name,
            addr,
            dropped,
        });
        if self
            .config
            .flood_kick
            .is_some_and(|kick_after| warnings >= kick_after as usize)
        {
            self.remove_session(now, addr, Removal::FloodKicked);
            // Bounded like the malformed-datagram log: past the bound, a kicked flooder
            // may come back at once (and is kicked again by the same rule).
            if self.flood_kicked.len() < MALFORMED_LOG_MEMORY {
                self.flood_kicked.insert(addr, now);
            }
        }
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing to log, if any.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Sends a private message from the operator (`/msg` on the console) to the client
    /// called `to`.
    pub fn say_privately(&mut self, now: Instant, to: &str, text: &str) -> Result<(), ServerError> {
        if text.trim().is_empty() {
            return Ok(());
        }
        self.send_private(now, SERVER_NAME, None, to, text)
    }

    /// Broadcasts a line the operator typed on the console, as from `server`.
    pub fn say(&mut self, now: Instant, text: &str) {
        if !text.trim().is_empty() {
            self.broadcast_chat(now, None, SERVER_NAME, text);
        }
    }

    /// Disconnects the client called `name` (case-insensitively); it may join again.
    pub fn kick(&mut self, now: Instant, name: &str) -> Result<(), ServerError> {
        let addr = self
            .address_of(name)
            .ok_or_else(|| ServerError::NoSuchClient {
                name: name.to_owned(),
            })?;
        self.remove_session(now, addr, Removal::Kicked);
        Ok(())
    }

    /// What `/ban TARGET` bans: an address or range as written, or the address of the client
    /// called TARGET.
    pub fn ban_target(&self, target: &str) -> Result<IpNet, ServerError> {
        if let Ok(net) = target.parse::<IpNet>() {
            return Ok(net);
        }
        self.address_of(target)
            .map(|addr| IpNet::host(addr.ip().to_canonical()))
            .ok_or_else(|| ServerError::NoSuchClient {
                name: target.to_owned(),
            })
    }

    fn address_of(&self, name: &str) -> Option<SocketAddr> {
        self.by_name.get(&names::key(name)).copied()
    }

    /// Puts a new ban list in force (after `/ban`, `/unban` or a hand edit of the file) and
    /// disconnects every client whose address it bans.
    pub fn set_ban_list(&mut self, now: Instant, bans: BanList) {
        self.bans = bans;
        let banned: Vec<SocketAddr> = self
            .sessions
            .keys()
            .filter(|addr| self.bans.is_banned(addr.ip()))
            .copied()
            .collect();
        for addr in banned {
            self.remove_session(now, addr, Removal::Banned);
        }
    }

    /// The ban list in force.
    pub fn ban_list(&self) -> &BanList {
        &self.bans
    }

    /// Tells every client the server is closing and forgets them all.
    pub fn shutdown(&mut self, now: Instant) {
        let time_ms = self.wall_ms(now);
        let text = "the server is closing";
        let clients = self.sessions.len();
        let addrs: Vec<SocketAddr> = self.sessions.keys().copied().collect();
        for addr in addrs {
            if let Some(session) = self.sessions.remove(&addr) {
                self.say_farewell(
                    now,
                    addr,
                    session,
                    time_ms,
                    DisconnectReason::ServerClosing,
                    text,
                );
            }
        }
        self.by_name.clear();
        self.flood_notices_due.clear();
        self.events
            .push_back(ServerEvent::Closing { time_ms, clients });
    }

    /// Who is connected, sorted by name, for the operator's `/list`.
    pub fn clients(&self, now: Instant) -> Vec<ClientInfo> {
        let mut clients: Vec<ClientInfo> = self
            .sessions
            .iter()
            .map(|(addr, s)| ClientInfo {
                name: s.name.clone(),
                addr: *addr,
                guest: s.kind == ClientKind::Guest,
                connected_for: now.saturating_duration_since(s.joined_at),
                idle_for: now.saturating_duration_since(s.last_heard),
                away: s.away.clone(),
            })
            .collect();
        clients.sort_by_cached_key(|c| names::fold(&c.name));
        clients
    }

    /// Ends a session, telling the client why (unless it left by itself) and everyone else
    /// what happened. Returns the session's token, if it had one.
    fn remove_session(&mut self, now: Instant, addr: SocketAddr, why: Removal) -> Option<u64> {
        let mut session = self.sessions.remove(&addr)?;
        if why == Removal::Unresponsive
            && let Some(streams) = session.streams.as_mut()
        {
            // What it never acknowledged would hold the farewell back for ever: the client
            // is told it missed it, then why it was dropped, should it come back in time.
            let backlog = streams.outbox.len();
            self.stats.frames_missed += streams.replace_oldest(now, backlog);
        }
        self.by_name.remove(&session.name_key);
        let token = session.streams.as_ref().map(|s| s.token);
        let time_ms = self.wall_ms(now);
        let name = session.name.clone();
        let unresponsive = format!(
            "you acknowledged nothing the server sent for {} seconds",
            crate::proto::reliable::GIVE_UP_AFTER.as_secs()
        );
        let (change, farewell) = match why {
            Removal::Left | Removal::Replaced => (PresenceChange::Left, None),
            Removal::TimedOut => (
                PresenceChange::TimedOut,
                Some((DisconnectReason::TimedOut, "you were silent for too long")),
            ),
            Removal::Unresponsive => (
                PresenceChange::TimedOut,
                Some((DisconnectReason::TimedOut, unresponsive.as_str())),
            ),
            Removal::Kicked => (
                PresenceChange::Kicked,
                Some((DisconnectReason::Kicked, "you were kicked by the operator")),
            ),
            Removal::FloodKicked => (
                PresenceChange::KickedForFlooding,
                Some((
                    DisconnectReason::Kicked,
                    "you were kicked for sending too fast after warnings",
                )),
            ),
            Removal::Banned => (
                PresenceChange::Banned,
                Some((DisconnectReason::Banned, "your address was banned")),
            ),
        };
        if let Some((reason, text)) = farewell {
            self.say_farewell(now, addr, session, time_ms, reason, text);
        }
        self.broadcast_presence(now, &name, change);
        self.events.push_back(match why {
            Removal::Left | Removal::Replaced => ServerEvent::Left {
                time_ms,
                name,
                addr,
            },
            Removal::TimedOut | Removal::Unresponsive => ServerEvent::TimedOut {
                time_ms,
                name,
                addr,
            },
            Removal::Kicked | Removal::FloodKicked => ServerEvent::Kicked {
                time_ms,
                name,
                addr,
            },
            Removal::Banned => ServerEvent::Banned {
                time_ms,
                name,
                addr,
            },
        });
        token
    }

    /// Tells a removed client why its session ended. A named client's streams live on as a
    /// farewell until it acknowledges, so everything sent before (and the farewell itself)
    /// arrives despite loss.
    fn say_farewell(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        session: Session,
        time_ms: i64,
        reason: DisconnectReason,
        text: &str,
    ) {
        let Some(mut streams) = session.streams else {
            return self.push(addr, guest_line(display::notice_line(time_ms, text)));
        };
        let frame = Frame::Disconnected {
            envelope: Envelope::default(),
            time_ms,
            reason,
            text: text.to_owned(),
        };
        let mut out = Outgoing {
            transmits: &mut self.transmits,
            timers: &mut self.timers,
            stats: &mut self.stats,
        };
        streams.timer = None;
        streams.send(now, addr, frame.to_bytes().into(), &mut out);
        if self.farewells.len() < FAREWELL_LIMIT {
            self.farewells.insert(addr, Farewell { streams });
        }
    }

    /// Sends a chat message from `from` to everyone, the sender included (that echo is how
    /// a client knows its message went out, with the server's time on it). Text from the
    /// network is neutralized first, so guests' terminals and the log are safe too.
    /// The sender (`sender`, when a client) gets its copy first: the echo is what a sender
    /// waits for before its next lines (a client's window of unacknowledged messages), and
    /// everyone else's copies can go out meanwhile.
    fn broadcast_chat(&mut self, now: Instant, sender: Option<SocketAddr>, from: &str, text: &str) {
        let time_ms = self.wall_ms(now);
        let clean = sanitize(text);
        for piece in wire::split_text(&clean) {
            let frame = || Frame::Message {
                envelope: Envelope::default(),
                time_ms,
                from: from.to_owned(),
                text: piece.to_owned(),
            };
            let guest_text =
                |clock: &mut ClockText| guest_message_line(clock.get(time_ms), from, piece);
            self.broadcast(now, sender, frame, guest_text);
            self.events.push_back(ServerEvent::Chat {
                time_ms,
                from: from.to_owned(),
                text: piece.to_owned(),
            });
        }
    }

    /// Tells everyone of a change of `name`'s presence: named clients in a typed
    /// [`Frame::Presence`], guests in words ([`display::presence_text`]).
    fn broadcast_presence(&mut self, now: Instant, name: &str, change: PresenceChange) {
        let time_ms = self.wall_ms(now);
        let text = display::presence_text(name, &change);
        let frame = || Frame::Presence {
            envelope: Envelope::default(),
            time_ms,
            name: name.to_owned(),
            change,
        };
        self.broadcast(now, None, frame, |_: &mut ClockText| {
            guest_line(display::notice_line(time_ms, &text))
        });
    }

    /// Queues one copy of the frame for every named client and one copy of the plain-text
    /// line for every guest, `first`'s copy first, each built and encoded only once (and only
    /// if someone of that kind is there): named clients share one payload, and only their
    /// envelopes differ. The loop over recipients allocates nothing; it is the server's
    /// innermost loop.
    fn broadcast(
        &mut self,
        now: Instant,
        first: Option<SocketAddr>,
        frame: impl FnOnce() -> Frame,
        guest_text: impl FnOnce(&mut ClockText) -> Arc<[u8]>,
    ) {
        let mut frame = Some(frame);
        let mut encoded: Option<Arc<[u8]>> = None;
        let mut guest_text = Some(guest_text);
        let mut guest_encoded: Option<Arc<[u8]>> = None;
        let mut out = Outgoing {
            transmits: &mut self.transmits,
            timers: &mut self.timers,
            stats: &mut self.stats,
        };
        let clock = &mut self.clock_text;
        let mut deliver = |addr: SocketAddr, session: &mut Session| match session.streams.as_mut() {
            Some(streams) => {
                let payload = encoded
                    .get_or_insert_with(|| {
                        let make = frame.take().expect("taken only once");
                        make().to_bytes().into()
                    })
                    .clone();
                streams.send(now, addr, payload, &mut out);
            }
            None => {
                let payload = guest_encoded
                    .get_or_insert_with(|| {
                        let make = guest_text.take().expect("taken only once");
                        make(clock)
                    })
                    .clone();
                out.stats.datagrams_sent += 1;
                out.transmits.push_back(Transmit {
                    destination: addr,
                    payload,
                    envelope: None,
                });
            }
        };
        let first = first.filter(|addr| match self.sessions.get_mut(addr) {
            Some(session) => {
                deliver(*addr, session);
                true
            }
            None => false,
        });
        for (addr, session) in &mut self.sessions {
            if Some(*addr) != first {
                deliver(*addr, session);
            }
        }
    }

    fn send_notice_to(&mut self, now: Instant, addr: SocketAddr, time_ms: i64, text: &str) {
        match self.sessions.get(&addr).map(|s| s.kind) {
            Some(ClientKind::Named) => {
                let notice = Frame::Notice {
                    envelope: Envelope::default(),
                    time_ms,
                    text: text.to_owned(),
                };
                self.send_sequenced(now, addr, notice.to_bytes().into());
            }
            Some(ClientKind::Guest) => {
                self.push(addr, guest_line(display::notice_line(time_ms, text)))
            }
            None => {}
        }
    }

    /// Sends a sequenced frame (encoded with a blank envelope) to one named client.
    fn send_sequenced(&mut self, now: Instant, to: SocketAddr, payload: Arc<[u8]>) {
        let Some(streams) = self.sessions.get_mut(&to).and_then(|s| s.streams.as_mut()) else {
            return;
        };
        let mut out = Outgoing {
            transmits: &mut self.transmits,
            timers: &mut self.timers,
            stats: &mut self.stats,
        };
        streams.send(now, to, payload, &mut out);
    }

    /// Sends a frame that stands alone (no sequence number, never repeated by us).
    fn send_unsequenced(&mut self, to: SocketAddr, frame: &Frame) {
        self.push(to, frame.to_bytes().into());
    }

    fn push(&mut self, destination: SocketAddr, payload: Arc<[u8]>) {
        self.stats.datagrams_sent += 1;
        self.transmits.push_back(Transmit {
            destination,
            payload,
            envelope: None,
        });
    }

    fn note_malformed(&mut self, now: Instant, from: SocketAddr, why: &str) {
        if !self.malformed_log.admit(now, &from) {
            return;
        }
        self.events.push_back(ServerEvent::Malformed {
            time_ms: self.wall_ms(now),
            addr: from,
            why: why.to_owned(),
        });
    }

    /// Wall-clock milliseconds since the Unix epoch at `now`.
    fn wall_ms(&self, now: Instant) -> i64 {
        let (origin, origin_ms) = self.clock_origin;
        let since = now.saturating_duration_since(origin).as_millis();
        origin_ms.saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }
}

/// The event for one summary of a log gate.
fn suppressed<K: fmt::Display>(
    time_ms: i64,
    kind: SuppressedKind,
    summary: Summary<K>,
) -> ServerEvent {
    ServerEvent::Suppressed {
        time_ms,
        kind,
        from: summary.key.map(|key| key.to_string()),
        count: summary.suppressed,
        period: summary.period,
    }
}

fn guest_line(mut line: String) -> Arc<[u8]> {
    line.push('\n');
    line.into_bytes().into()
}

/// A guest's copy of a chat message: [`display::message_line`] and a newline, built in one
/// buffer from a clock already formatted (see [`ClockText`]). `text` is sanitized by the
/// caller; the name is sanitized here all the same, as the last step before a terminal.
fn guest_message_line(clock: &str, from: &str, text: &str) -> Arc<[u8]> {
    let from = sanitize(from);
    let text = sanitize(text);
    let mut line = Vec::with_capacity(clock.len() + from.len() + text.len() + 6);
    for part in ["[", clock, "] ", &from, ": ", &text, "\n"] {
        line.extend_from_slice(part.as_bytes());
    }
    line.into()
}

/// A fresh session token from the operating system's random source. Tokens only need to be
/// unguessable by someone who cannot see the traffic; should the OS source fail (it does
/// not on any supported system), the clock's nanoseconds mixed with a counter still keep
/// sessions apart.
fn new_token() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
    })
}

fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Join { .. } => "join",
        Frame::Chat { .. } => "chat",
        Frame::ListRequest { .. } => "list request",
        Frame::Leave { .. } => "leave",
        Frame::Heartbeat { .. } => "heartbeat",
        Frame::ClientAck { .. } => "ack",
        Frame::Welcome { .. } => "welcome",
        Frame::Refused { .. } => "refused",
        Frame::Challenge { .. } => "challenge",
        Frame::Private { .. } => "private",
        Frame::Action { .. } => "action",
        Frame::Nick { .. } => "nick",
        Frame::Away { .. } => "away",
        Frame::PrivateMessage { .. } => "private message",
        Frame::ActionMessage { .. } => "action message",
        Frame::Renamed { .. } => "renamed",
        Frame::Presence { .. } => "presence",
        Frame::Message { .. } => "message",
        Frame::Notice { .. } => "notice",
        Frame::Roster { .. } => "roster",
        Frame::Disconnected { .. } => "disconnected",
        Frame::Missed { .. } => "missed",
        Frame::ServerAck { .. } => "server ack",
        Frame::LeaveAck { .. } => "leave ack",
        Frame::NotJoined { .. } => "not joined",
        Frame::Probe { .. } => "probe",
        Frame::PeerJoin { .. }
        | Frame::PeerChallenge { .. }
        | Frame::PeerWelcome { .. }
        | Frame::PeerRefused { .. }
        | Frame::PeerHello { .. }
        | Frame::PeerAck { .. }
        | Frame::PeerNotMember { .. }
        | Frame::PeerChat { .. }
        | Frame::PeerPrivate { .. }
        | Frame::PeerMembers { .. }
        | Frame::PeerAnnounce { .. }
        | Frame::PeerGone { .. }
        | Frame::PeerLeave { .. }
        | Frame::PeerFlooded { .. } => "peer-mode frame",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcuts of the chat path must print exactly what `display` would.
    #[test]
    fn guest_lines_and_sanitizing_match_display() {
        let time_ms = 1_700_000_123_456;
        let mut clock = ClockText::default();
        for (from, text) in [
            ("alice", "hello, world ~ 100% {ok}"),
            ("zoë", "naïve café 日本語 🎉"),
            (
                "bob",
                "tab\there, escape \u{1b}[2J, bidi \u{202e}evil, del \u{7f}",
            ),
            ("guest-127.0.0.1:5000", ""),
        ] {
            assert_eq!(sanitize(text), display::sanitize(text));
            let expected = format!("{}\n", display::message_line(time_ms, from, text));
            let line = guest_message_line(clock.get(time_ms), from, &sanitize(text));
            assert_eq!(std::str::from_utf8(&line).unwrap(), expected);
        }
        // The kept clock follows the seconds, including before 1970.
        for time_ms in [time_ms + 999, time_ms + 1_000, -1, -1_000, -1_001, 0] {
            assert_eq!(clock.get(time_ms), display::clock(time_ms));
        }
    }
}
