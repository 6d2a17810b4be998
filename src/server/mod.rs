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
//! This file owns the `Server` type and its state, the configuration, the events and
//! errors it gives, the public API (operator commands, statistics) and the timer and
//! output entry points (`handle_timeout`, `poll_*`). The rest is split by concern into
//! `impl Server` blocks: `front.rs` (what every datagram meets first: forged
//! addresses, bans, version, join cookies, admission), `sessions.rs` (sessions and their
//! streams, requests in order, retransmission, probes, leaving and farewells), `room.rs`
//! (broadcast, roster, private messages, `/me`, `/nick`, `/away`, the flood limit),
//! `presence.rs` (when presence changes are announced, and to whom: batching windows, the
//! quiet room), `roster.rs` (every session's roster entry, kept sorted and encoded),
//! `replay.rs` (recording public lines; what a join is shown of them, replayed or
//! resumed; answering history requests) and `guests.rs`
//! (plain-text guests). `console.rs` holds the operator's console commands
//! (a typed line in, lines to print out), on top of the public API.
//!
//! It does not own the byte layout of frames (`wire`), reading or writing the ban file
//! (`bans`), or how log lines look (`render`; the words guests read are
//! [`crate::text`]'s).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use chrono::FixedOffset;
use foldhash::fast::FixedState;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bans::list::{BanList, IpNet};
use crate::command::{self, Command, Input, Side};
use crate::history::{self, History};
use crate::names::{self, SERVER_NAME};
use crate::proto::address::OwnAddress;
use crate::proto::addrmem::AddrMemory;
use crate::proto::cookie::{CookieJar, WallClock};
use crate::proto::flood::{Admission, FloodGate, FloodLimit, FloodWatch};
use crate::proto::lateness::{self, Credited, Lateness};
use crate::proto::loggate::{GateLimits, LogGate, Summary};
use crate::proto::reliable::Ready;
use crate::proto::stream::{Resend, Stream};
use crate::proto::token;
use crate::text::{self, AWAY_WITHOUT_REASON, ClockText, sanitize};
use crate::wire::{
    self, DecodeError, Delivery, DisconnectReason, Envelope, Frame, PeerFrame, PresenceChange,
    RefuseReason, Request, RosterEntry, ToClient, ToServer,
};

pub mod console;
mod front;
mod guests;
mod presence;
mod replay;
mod room;
mod roster;
mod sessions;

use guests::{guest_line, guest_message_line};
use presence::PresenceNews;
pub use presence::{DEFAULT_QUIET_ABOVE, PRESENCE_BURST, PRESENCE_WINDOW};
use replay::Seen;
use room::Listing;
use roster::Roster;
use sessions::{Farewell, Holder, Probe, Removal, Session};

/// A malformed datagram is logged at most once per address per this period, so garbage
/// cannot flood the operator's log.
pub const MALFORMED_LOG_PERIOD: Duration = Duration::from_secs(60);

/// At most this many addresses are remembered by each per-address memory (the log gates,
/// sessions that left, flooders kicked); past that, nothing new is remembered until
/// entries expire. This keeps memory bounded when datagrams come from forged,
/// ever-changing source addresses.
const ADDRESS_MEMORY: usize = 4096;

/// The most frames sent to one client and not yet acknowledged. A client that falls this far
/// behind (a stalled program, a path losing nearly everything) has its oldest half replaced
/// by one [`Delivery::Missed`] telling it how many it will never get: memory stays bounded and
/// the gap is never silent.
pub const OUTBOX_LIMIT: usize = 2048;

/// How many of a client's frames may arrive ahead of one that is missing; later ones are
/// dropped unacknowledged and come again. Bounds the memory a client can make us hold.
pub const INBOX_LIMIT: u32 = 64;

/// Flood warnings count towards a kick only within this window: a client that bursts now
/// and then is warned, one that floods on and on is removed.
pub const FLOOD_KICK_WINDOW: Duration = Duration::from_secs(60);

/// How long the token of a session that left is remembered, so a repeated leave is
/// confirmed (its first confirmation was lost) while a leave for a session the server never
/// had (it restarted) is not: confirming that one would tell the client its unconfirmed
/// lines were delivered.
pub const LEFT_MEMORY: Duration = Duration::from_secs(60);

/// A join under a name whose session has been silent for longer than this probes that
/// session ([`ToClient::Probe`]) instead of being refused at once: the holder may have crashed
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

/// How many ended sessions may still be repeating their farewell ([`Delivery::Disconnected`])
/// at once; past it, a farewell is sent once and not repeated.
const FAREWELL_LIMIT: usize = 4096;

/// The history's limits, shared with peer mode: the default and the most lines of a
/// newcomer's replay (`--replay`, well inside [`OUTBOX_LIMIT`], so a replay never pushes
/// out what it replays), the most lines `--history` may keep, the most one request gets.
pub use crate::proto::paging::{DEFAULT_REPLAY, MAX_HISTORY, MAX_HISTORY_PAGE, MAX_REPLAY};

/// The most lines a client coming back is resumed with (the lines after the last one it
/// showed, or every line of a new epoch): the newest this many if more were said.
pub const MAX_RESUME: usize = 1_000;

/// A history answer (replay, resume or page) never brings a client's outbox above this
/// many frames: it is cut to fit, and the rest of [`OUTBOX_LIMIT`] stays for live lines,
/// which an answer therefore never pushes out.
pub const HISTORY_ROOM: usize = OUTBOX_LIMIT / 2;

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
    /// The offset from UTC of the clock in guests' lines (`[12:00:00] alice: hi`): the
    /// core never reads the host's time zone, its binary says it (UTC by default; see
    /// [`Server::set_utc_offset`] for when it changes).
    pub utc_offset: FixedOffset,
    /// The most public lines kept in the room's history (`--history`); 0 keeps none.
    pub history: usize,
    /// How many of the newest lines a client that joins is shown (`--replay`), at most
    /// [`ServerConfig::history`].
    pub replay: usize,
    /// In a room of more than this many people (`--quiet-above`), joins, departures and
    /// renames are announced to nobody, and an away or back only to the person: a join
    /// storm in a large room costs each client nothing. The roster at join lists the first
    /// this many people (and says how many more), so a join costs the same however large
    /// the room; `/list` lists everyone.
    pub quiet_above: usize,
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
            hash_seed: token::random_u64(),
            utc_offset: text::UTC,
            history: history::DEFAULT_CAPACITY,
            replay: DEFAULT_REPLAY,
            quiet_above: DEFAULT_QUIET_ABOVE,
        }
    }
}

/// The heartbeats per second a server plans for, all its clients together: while `n`
/// sessions are served each client is told (at its welcome, then in every `ServerAck`) to
/// send one every `n / HEARTBEAT_BUDGET` seconds if that is longer than the timeout's third
/// (see [`ServerConfig::heartbeat_for`]; a session's interval is never shortened). Each
/// heartbeat costs a datagram in, a `ServerAck` out and the wake-ups they cause: ~25 µs of
/// CPU on the 2-core machine of docs/performance.md with 100 000 clients, so 500 a second
/// is ~1.3 % of a core. At the default 30 s timeout that keeps the interval at 10 s up to
/// 5 000 clients; at 100 000 everyone heartbeats every 200 s and a vanished client is
/// evicted after 10 minutes (IRC servers ping every 90–180 s and wait as long again).
pub const HEARTBEAT_BUDGET: u32 = 500;

impl ServerConfig {
    /// How often clients of a small room must send something: a third of the timeout, so
    /// two heartbeats in a row can be lost before a live client is evicted.
    pub fn heartbeat_interval(&self) -> Duration {
        self.timeout / 3
    }

    /// The heartbeat interval of a client while `sessions` sessions (itself included) are
    /// served: [`ServerConfig::heartbeat_interval`], or one heartbeat per
    /// [`HEARTBEAT_BUDGET`]-th of a second per session if that is longer, so heartbeats
    /// stay within the budget however many clients there are. A session is told it when
    /// it joins and again by each `ServerAck`, if it is longer than the session's.
    pub fn heartbeat_for(&self, sessions: usize) -> Duration {
        let sessions = u32::try_from(sessions).unwrap_or(u32::MAX);
        let scaled = Duration::from_secs(1) / HEARTBEAT_BUDGET * sessions;
        self.heartbeat_interval().max(scaled)
    }

    /// How long a session told to heartbeat every `heartbeat` may stay silent: the
    /// timeout, or three of its heartbeats if that is longer (two in a row may be lost).
    pub fn timeout_for(&self, heartbeat: Duration) -> Duration {
        self.timeout.max(heartbeat.saturating_mul(3))
    }

    /// How often the sessions whose check is due are checked (for silence and idle memory).
    /// Eviction happens between a session's timeout and that plus this; checking on a
    /// period keeps the loop from waking for every session's deadline.
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
                    sanitize(name)
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

/// Retransmission deadlines, earliest first (and, in `Server::checks`, sessions' check
/// deadlines). Entries are never removed early: a popped entry that no longer matches
/// what its session filed is stale and skipped.
type Timers = BinaryHeap<Reverse<(Instant, SocketAddr)>>;

/// Where sending puts things; borrowed from `Server` beside a borrowed session.
struct Outgoing<'a> {
    transmits: &'a mut VecDeque<Transmit>,
    /// Where the sessions whose streams hold frames to write out this turn are (see
    /// `Server::later`).
    later: &'a mut Vec<SocketAddr>,
    timers: &'a mut Timers,
    stats: &'a mut ServerStats,
}

/// The server's state machine. See the module documentation.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// Wall-clock time for the stamps on messages, while the logic runs on `Instant`s.
    clock: WallClock,
    /// Each session in a box of its own: the table holds a pointer per slot, so its empty
    /// slots (an eighth to more than half of them, by its load) cost 8 bytes and not a
    /// whole session's ~600, and growing it moves pointers.
    sessions: HashMap<SocketAddr, Box<Session>, FixedState>,
    by_name: HashMap<String, SocketAddr, FixedState>,
    farewells: HashMap<SocketAddr, Farewell, FixedState>,
    bans: BanList,
    transmits: VecDeque<Transmit>,
    /// The addresses of the sessions (or farewells) whose streams hold frames sent this
    /// turn and not yet written out ([`Stream::send_later`]): a broadcast puts its frame in
    /// every window, and each session's frames of the turn become as few datagrams as they
    /// fit in when the transmits are asked for ([`Server::write_later`]), not a queued
    /// transmit per frame and recipient.
    later: Vec<SocketAddr>,
    events: VecDeque<ServerEvent>,
    timers: Timers,
    /// When each session is next checked for silence ([`Session::check_at`]), at its
    /// eviction deadline: a session with nothing due costs the sweep nothing.
    checks: Timers,
    /// Sessions whose send window emptied since the last sweep, which gives back its
    /// memory if it stayed empty ([`Session::quiet`]).
    quiet: Vec<SocketAddr>,
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
    own_address: OwnAddress,
    /// The tokens of sessions that left recently, for [`LEFT_MEMORY`].
    left: AddrMemory<u64>,
    /// Addresses kicked for flooding, and when: they may not come back (a guest by sending
    /// another line, a client by joining) until [`FLOOD_KICK_WINDOW`] has passed.
    flood_kicked: AddrMemory<()>,
    /// The secret of join cookies.
    cookies: CookieJar,
    /// The clock of guests' lines at [`ServerConfig::utc_offset`], formatted once a second.
    clock_text: ClockText,
    /// Time the server itself could not run or keep up: clients' silence then is ours.
    lateness: Lateness,
    /// Joins carried out since the loop's last report ([`Server::handle_loop_report`]).
    joins_this_turn: usize,
    /// The room's recent public lines, replayed to clients that join and paged back
    /// through by history requests.
    history: History,
    /// Presence changes waiting for the end of their window.
    presence: PresenceNews,
    /// Every session's roster entry, ready to send.
    roster: Roster,
}

impl Server {
    /// A server with no clients. `wall_ms` is the wall-clock time at `now`, in milliseconds
    /// since the Unix epoch.
    pub fn new(config: ServerConfig, bans: BanList, now: Instant, wall_ms: i64) -> Server {
        let hasher = FixedState::with_seed(config.hash_seed);
        Server {
            history: History::in_memory(config.history, token::random_u64()),
            presence: PresenceNews::default(),
            roster: Roster::default(),
            next_sweep: now + config.sweep_interval(),
            clock_text: ClockText::at(config.utc_offset),
            config,
            clock: WallClock::new(now, wall_ms),
            sessions: HashMap::with_hasher(hasher.clone()),
            by_name: HashMap::with_hasher(hasher.clone()),
            farewells: HashMap::with_hasher(hasher.clone()),
            bans,
            transmits: VecDeque::new(),
            later: Vec::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            checks: BinaryHeap::new(),
            quiet: Vec::new(),
            lateness: Lateness::new(),
            joins_this_turn: 0,
            stats: ServerStats::default(),
            flood_notices_due: Vec::new(),
            probes: Vec::new(),
            malformed_log: LogGate::new(GateLimits {
                period: MALFORMED_LOG_PERIOD,
                keys: ADDRESS_MEMORY,
                ..GateLimits::default()
            }),
            refusal_log: LogGate::new(GateLimits {
                keys: ADDRESS_MEMORY,
                ..GateLimits::default()
            }),
            flood_kicked: AddrMemory::new(ADDRESS_MEMORY, FLOOD_KICK_WINDOW, hasher.clone()),
            left: AddrMemory::new(ADDRESS_MEMORY, LEFT_MEMORY, hasher.clone()),
            own_address: OwnAddress::default(),
            cookies: CookieJar::new(now),
        }
    }

    /// Puts `history` in the place of the in-memory one the server started with: the
    /// binary opens the `--history-db` file (the core does no I/O of its own) and hands it
    /// over before anyone joins.
    pub fn set_history(&mut self, history: History) {
        self.history = history;
    }

    /// The room's history (to read it, and for the binary to flush it to its file once per
    /// turn of its loop with [`History::flush`]: the core never writes the file itself).
    pub fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    /// The room's history, to read.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Tells the core which address its socket is bound to. Datagrams claiming to come from
    /// that address (or, for a wildcard bind, from the same port on a loopback address) are
    /// forgeries: answering them would make the server talk to itself forever.
    pub fn set_local_address(&mut self, local_addr: SocketAddr) {
        self.own_address.set(local_addr);
    }

    /// Tells the core the offset from UTC its host's clock now has, for guests' lines: the
    /// binary looks it up (the core reads no time zone) and says so when it changes, as at
    /// the start or end of daylight saving time.
    pub fn set_utc_offset(&mut self, offset: FixedOffset) {
        if offset != self.config.utc_offset {
            self.config.utc_offset = offset;
            self.clock_text = ClockText::at(offset);
        }
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

    /// The loop reports, after each batch of datagrams, whether more were waiting
    /// (`behind`: it is not keeping up). While it falls behind, the time counts as the
    /// server's own lateness (no client is evicted for silence meanwhile, its datagrams
    /// may have waited or been dropped in the socket's buffer), and joins wait their turn
    /// so heartbeats and acknowledgements are handled first.
    pub fn handle_loop_report(&mut self, now: Instant, behind: bool) {
        self.lateness.loop_report(now, behind);
        self.joins_this_turn = 0;
    }

    /// Advances timers: evicts silent clients, sends due flood notices. Call when
    /// [`Server::poll_timeout`]'s instant has passed (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.retransmit_due(now);
        self.presence_timeout(now);
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

        let time_ms = self.clock.wall_ms(now);
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
            self.check_sessions(now);
            self.flood_kicked.forget_expired(now);
            self.left.forget_expired(now);
            self.release_spare_room();
        }
    }

    /// Gives back the room a burst left in the server's queues and tables: a join storm or
    /// a broadcast to thousands queues a transmit per recipient (88 bytes each), files
    /// retransmission timers, and grows the tables; once the burst is over they would keep
    /// that room for ever. Called by the sweep, so a queue in steady use keeps its memory
    /// and sending allocates nothing.
    fn release_spare_room(&mut self) {
        if let Some(room) = spare(self.transmits.len(), self.transmits.capacity()) {
            self.transmits.shrink_to(room);
        }
        if let Some(room) = spare(self.events.len(), self.events.capacity()) {
            self.events.shrink_to(room);
        }
        if let Some(room) = spare(self.timers.len(), self.timers.capacity()) {
            self.timers.shrink_to(room);
        }
        if let Some(room) = spare(self.checks.len(), self.checks.capacity()) {
            self.checks.shrink_to(room);
        }
        if let Some(room) = spare(self.quiet.len(), self.quiet.capacity()) {
            self.quiet.shrink_to(room);
        }
        if let Some(room) = spare(self.sessions.len(), self.sessions.capacity()) {
            self.sessions.shrink_to(room);
        }
        if let Some(room) = spare(self.by_name.len(), self.by_name.capacity()) {
            self.by_name.shrink_to(room);
        }
        if let Some(room) = spare(self.farewells.len(), self.farewells.capacity()) {
            self.farewells.shrink_to(room);
        }
    }

    /// When [`Server::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // The sweep runs on its period while anyone is here; it visits only the sessions
        // whose check is due. (Waking it only for the earliest check changed how often the
        // retransmission tests' late receiver was sent each frame, 1.37 → 1.52: not
        // understood yet, so the period stays.)
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
            self.presence.deadline(),
        ];
        sweep
            .into_iter()
            .chain(notices)
            .chain(retransmit)
            .chain(summaries.into_iter().flatten())
            .min()
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.write_later();
        self.transmits.pop_front()
    }

    /// Every datagram queued, in the order [`Server::poll_transmit`] would give them, for
    /// a loop that packs them where they lie and then [`Server::discard_transmits`] them
    /// (a fan-out queues one per receiver: moving each out first cost a copy apiece).
    pub fn queued_transmits(&mut self) -> &mut [Transmit] {
        self.write_later();
        self.transmits.make_contiguous()
    }

    /// Forgets the first `count` of [`Server::queued_transmits`], sent by the caller.
    pub fn discard_transmits(&mut self, count: usize) {
        self.transmits.drain(..count.min(self.transmits.len()));
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
            self.broadcast_public(now, None, SERVER_NAME, history::Kind::Console, text);
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
        let time_ms = self.clock.wall_ms(now);
        let text = "the server is closing";
        let clients = self.sessions.len();
        let addrs: Vec<SocketAddr> = self.sessions.keys().copied().collect();
        for addr in addrs {
            self.write_later_of(addr);
            if let Some(session) = self.sessions.remove(&addr) {
                self.say_farewell(
                    now,
                    addr,
                    *session,
                    time_ms,
                    DisconnectReason::ServerClosing,
                    text,
                );
            }
        }
        self.by_name.clear();
        self.flood_notices_due.clear();
        self.presence.clear();
        self.roster.clear();
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

    /// Sends a sequenced frame (encoded with a blank envelope) to one named client.
    fn send_sequenced(&mut self, now: Instant, to: SocketAddr, payload: Arc<[u8]>) {
        let Some(streams) = self.sessions.get_mut(&to).and_then(|s| s.streams.as_mut()) else {
            return;
        };
        let mut out = Outgoing {
            transmits: &mut self.transmits,
            timers: &mut self.timers,
            stats: &mut self.stats,
            later: &mut self.later,
        };
        out.send(streams, now, to, payload);
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
            time_ms: self.clock.wall_ms(now),
            addr: from,
            why: why.to_owned(),
        });
    }
}

/// Room for `len` items and as many again, if a collection of `len` items holds room for
/// over four times that (and more than a small fixed amount, not worth giving back).
fn spare(len: usize, capacity: usize) -> Option<usize> {
    /// Room for this many items is always kept.
    const KEEP: usize = 256;
    let room = (2 * len).max(KEEP);
    (capacity > 2 * room).then_some(room)
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
