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

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::banlist::{BanList, IpNet};
use crate::display;
use crate::names::{self, SERVER_NAME};
use crate::ratelimit::{FloodLimit, TokenBucket};
use crate::wire::{self, DecodeError, DisconnectReason, Frame, RefuseReason};

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            flood_limit: FloodLimit::from_options(5.0, 10),
            timeout: Duration::from_secs(30),
            guests: false,
            max_clients: 1024,
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
    /// The bytes. A broadcast encodes its frame once and shares it among all recipients.
    pub payload: Arc<[u8]>,
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
    /// A client was silent for longer than the timeout and was evicted.
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
    /// A datagram was dropped as malformed (logged once per address per minute at most).
    Malformed {
        time_ms: i64,
        addr: SocketAddr,
        why: String,
    },
    /// The server told every client it is closing.
    Closing { time_ms: i64, clients: usize },
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

/// Everything the server remembers about one connected client.
#[derive(Debug)]
struct Session {
    name: String,
    /// `name` folded for case-insensitive lookup (the key in `Server::by_name`).
    name_key: String,
    kind: ClientKind,
    joined_at: Instant,
    last_heard: Instant,
    flood_bucket: Option<TokenBucket>,
    /// Messages dropped since the last flood notice to this client.
    flood_dropped: u32,
}

/// Why a session ended; decides what the client and everyone else are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Left,
    TimedOut,
    Kicked,
    Banned,
}

/// The server's state machine. See the module documentation.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// An instant and the wall-clock time (ms since the Unix epoch) it corresponds to, so the
    /// server stamps messages with wall-clock time while its logic runs on `Instant`s.
    clock_origin: (Instant, i64),
    sessions: HashMap<SocketAddr, Session>,
    by_name: HashMap<String, SocketAddr>,
    bans: BanList,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
    /// Flooders to tell how many messages were dropped, and when.
    flood_notices_due: Vec<(Instant, SocketAddr)>,
    next_sweep: Instant,
    /// When a malformed datagram from each address was last logged.
    malformed_logged_at: HashMap<SocketAddr, Instant>,
    /// The address the server's socket is bound to, once the binary has said so; datagrams
    /// that claim to come from it are forgeries and are dropped.
    local_addr: Option<SocketAddr>,
}

impl Server {
    /// A server with no clients. `wall_ms` is the wall-clock time at `now`, in milliseconds
    /// since the Unix epoch.
    pub fn new(config: ServerConfig, bans: BanList, now: Instant, wall_ms: i64) -> Server {
        Server {
            next_sweep: now + config.sweep_interval(),
            config,
            clock_origin: (now, wall_ms),
            sessions: HashMap::new(),
            by_name: HashMap::new(),
            bans,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            flood_notices_due: Vec::new(),
            malformed_logged_at: HashMap::new(),
            local_addr: None,
        }
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

    /// Processes one datagram that arrived from `from`. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if self.is_own_address(from) {
            return self.note_malformed(now, from, "forged with the server's own address");
        }
        if self.bans.is_banned(from.ip()) {
            // A banned address gets no service; its join gets a refusal so a person using
            // a real client learns why (the refusal is smaller than the padded join).
            if let Ok(Frame::Join { name }) = Frame::decode(datagram) {
                self.refuse(now, from, name, RefuseReason::Banned);
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
                // Tell a newer or older client why nothing works, in the one frame every
                // version understands; it is no larger than what arrived.
                let refusal = Frame::Refused {
                    reason: RefuseReason::VersionUnsupported,
                }
                .to_bytes();
                if refusal.len() <= datagram.len() {
                    self.push(from, refusal.into());
                }
                self.note_malformed(now, from, &format!("protocol version {version}"));
            }
            Err(error) => self.note_malformed(now, from, &error.to_string()),
        }
    }

    fn handle_frame(&mut self, now: Instant, from: SocketAddr, frame: Frame) {
        if !frame.travels_to_server() {
            // Never answered, not even with NotJoined: answering a server-bound frame is how
            // two servers, or one server fed a forgery of its own address, would loop.
            let why = format!("a server-only frame ({})", frame_name(&frame));
            return self.note_malformed(now, from, &why);
        }
        if let Frame::Join { name } = frame {
            return self.handle_join(now, from, name);
        }
        if matches!(frame, Frame::Leave) {
            // Acknowledged even when the client is unknown: a repeated Leave whose first
            // copy already removed the client must still stop the client's retries.
            self.send(from, &Frame::LeaveAck);
        }
        let Some(session) = self.sessions.get_mut(&from) else {
            if !matches!(frame, Frame::Leave) {
                // Tiny, so it is safe to send to an address that proved nothing.
                self.send(from, &Frame::NotJoined);
            }
            return;
        };
        session.last_heard = now;
        match frame {
            Frame::Chat { text } => self.handle_chat(now, from, &text),
            Frame::Heartbeat => self.send(from, &Frame::HeartbeatAck),
            Frame::Leave => self.remove_session(now, from, Removal::Left),
            Frame::ListRequest => self.send_roster(now, from),
            // Join is handled above and server-only kinds are dropped before a session is
            // looked up.
            _ => {}
        }
    }

    fn handle_join(&mut self, now: Instant, from: SocketAddr, name: String) {
        if let Some(session) = self.sessions.get(&from) {
            if session.kind == ClientKind::Named && session.name == name {
                // The welcome was lost and the client asked again: answer, change nothing.
                let welcome = self.welcome(&session.name);
                self.send(from, &welcome);
                return;
            }
            // A new program at an address we know (a restarted client on the same port, or
            // a guest starting a real client): the old session is over.
            self.remove_session(now, from, Removal::Left);
        }
        if names::validate(&name).is_err() {
            return self.refuse(now, from, name, RefuseReason::NameInvalid);
        }
        let name_key = names::fold(&name);
        if self.by_name.contains_key(&name_key) {
            return self.refuse(now, from, name, RefuseReason::NameTaken);
        }
        if self.sessions.len() >= self.config.max_clients {
            return self.refuse(now, from, name, RefuseReason::ServerFull);
        }
        let welcome = self.welcome(&name);
        self.send(from, &welcome);
        self.add_session(now, from, name, name_key, ClientKind::Named);
    }

    fn welcome(&self, name: &str) -> Frame {
        let heartbeat_ms = self.config.heartbeat_interval().as_millis();
        Frame::Welcome {
            name: name.to_owned(),
            heartbeat_ms: u32::try_from(heartbeat_ms).unwrap_or(u32::MAX),
        }
    }

    fn refuse(&mut self, now: Instant, from: SocketAddr, name: String, reason: RefuseReason) {
        self.send(from, &Frame::Refused { reason });
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
        kind: ClientKind,
    ) {
        self.by_name.insert(name_key.clone(), addr);
        self.sessions.insert(
            addr,
            Session {
                name: name.clone(),
                name_key,
                kind,
                joined_at: now,
                last_heard: now,
                flood_bucket: self.config.flood_limit.map(|l| TokenBucket::new(l, now)),
                flood_dropped: 0,
            },
        );
        let time_ms = self.wall_ms(now);
        self.broadcast_notice(now, &format!("{name} joined"));
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
            self.broadcast_chat(now, &name, text);
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
            if self.sessions.len() >= self.config.max_clients {
                return self.note_malformed(now, from, "guest refused: server full");
            }
            // IPv4 peers of a server bound to [::] appear as ::ffff:a.b.c.d; name them by the
            // address people know.
            let shown = SocketAddr::new(from.ip().to_canonical(), from.port());
            let name = format!("{}{shown}", names::GUEST_PREFIX);
            let name_key = names::fold(&name);
            self.add_session(now, from, name, name_key, ClientKind::Guest);
        }
        if let Some(session) = self.sessions.get_mut(&from) {
            session.last_heard = now;
        }
        // `lines` also drops the `\r` of a `\r\n`, as sent by some terminals and netcat -C.
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            self.handle_chat(now, from, line);
        }
    }

    fn admit_under_flood_limit(&mut self, now: Instant, from: SocketAddr) -> bool {
        let Some(session) = self.sessions.get_mut(&from) else {
            return false;
        };
        let Some(bucket) = session.flood_bucket.as_mut() else {
            return true;
        };
        if bucket.try_take(now) {
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
        let mut names: Vec<&str> = self.sessions.values().map(|s| s.name.as_str()).collect();
        names.sort_by_cached_key(|name| names::fold(name));
        let total = u16::try_from(names.len()).unwrap_or(u16::MAX);
        let time_ms = self.wall_ms(now);
        // Header, time, total and offset; then as many names as fit in one datagram.
        const ROSTER_FIXED_LEN: usize = wire::HEADER_LEN + 8 + 2 + 2;
        let mut frames = Vec::new();
        let mut chunk: Vec<String> = Vec::new();
        let mut chunk_len = ROSTER_FIXED_LEN;
        let mut offset = 0usize;
        for (index, name) in names.iter().enumerate().take(usize::from(total)) {
            if chunk_len + 1 + name.len() > wire::MAX_DATAGRAM {
                frames.push((offset, std::mem::take(&mut chunk)));
                offset = index;
                chunk_len = ROSTER_FIXED_LEN;
            }
            chunk_len += 1 + name.len();
            chunk.push((*name).to_owned());
        }
        frames.push((offset, chunk));
        for (offset, names) in frames {
            let offset = u16::try_from(offset).unwrap_or(u16::MAX);
            self.send(
                to,
                &Frame::Roster {
                    time_ms,
                    total,
                    offset,
                    names,
                },
            );
        }
    }

    /// Advances timers: evicts silent clients, sends due flood notices. Call when
    /// [`Server::poll_timeout`]'s instant has passed (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = self
            .flood_notices_due
            .drain(..)
            .partition(|(when, _)| *when <= now);
        self.flood_notices_due = later;
        for (_, addr) in due {
            self.send_flood_notice(now, addr);
        }

        if now >= self.next_sweep {
            self.next_sweep = now + self.config.sweep_interval();
            let timeout = self.config.timeout;
            let silent: Vec<SocketAddr> = self
                .sessions
                .iter()
                .filter(|(_, s)| now.saturating_duration_since(s.last_heard) >= timeout)
                .map(|(addr, _)| *addr)
                .collect();
            for addr in silent {
                self.remove_session(now, addr, Removal::TimedOut);
            }
            self.malformed_logged_at
                .retain(|_, at| now.saturating_duration_since(*at) < MALFORMED_LOG_PERIOD);
        }
    }

    /// When [`Server::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sweep = (!self.sessions.is_empty() || !self.malformed_logged_at.is_empty())
            .then_some(self.next_sweep);
        let notices = self.flood_notices_due.iter().map(|(when, _)| *when);
        sweep.into_iter().chain(notices).min()
    }

    fn send_flood_notice(&mut self, now: Instant, addr: SocketAddr) {
        let Some(session) = self.sessions.get_mut(&addr) else {
            return;
        };
        let dropped = std::mem::take(&mut session.flood_dropped);
        if dropped == 0 {
            return;
        }
        let name = session.name.clone();
        let limit = self.config.flood_limit.map_or(String::new(), |l| {
            format!(" (limit: {}/s, bursts of {})", l.rate_per_sec, l.burst)
        });
        let plural = if dropped == 1 { "" } else { "s" };
        let text = format!("{dropped} message{plural} not sent: you are sending too fast{limit}");
        let time_ms = self.wall_ms(now);
        self.send_notice_to(addr, time_ms, &text);
        self.events.push_back(ServerEvent::FloodDropped {
            time_ms,
            name,
            addr,
            dropped,
        });
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing to log, if any.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Broadcasts a line the operator typed on the console, as from `server`.
    pub fn say(&mut self, now: Instant, text: &str) {
        if !text.trim().is_empty() {
            self.broadcast_chat(now, SERVER_NAME, text);
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
        self.by_name.get(&names::fold(name)).copied()
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
        let addrs: Vec<(SocketAddr, ClientKind)> =
            self.sessions.iter().map(|(a, s)| (*a, s.kind)).collect();
        for (addr, kind) in addrs {
            self.send_disconnect(addr, kind, time_ms, DisconnectReason::ServerClosing, text);
        }
        self.sessions.clear();
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
            })
            .collect();
        clients.sort_by_cached_key(|c| names::fold(&c.name));
        clients
    }

    /// Ends a session, telling the client why (unless it left by itself) and everyone else
    /// what happened.
    fn remove_session(&mut self, now: Instant, addr: SocketAddr, why: Removal) {
        let Some(session) = self.sessions.remove(&addr) else {
            return;
        };
        self.by_name.remove(&session.name_key);
        let time_ms = self.wall_ms(now);
        let name = session.name;
        let (notice, reason) = match why {
            Removal::Left => (format!("{name} left"), None),
            Removal::TimedOut => (
                format!("{name} timed out"),
                Some((DisconnectReason::TimedOut, "you were silent for too long")),
            ),
            Removal::Kicked => (
                format!("{name} was kicked"),
                Some((DisconnectReason::Kicked, "you were kicked by the operator")),
            ),
            Removal::Banned => (
                format!("{name} was banned"),
                Some((DisconnectReason::Banned, "your address was banned")),
            ),
        };
        if let Some((reason, text)) = reason {
            self.send_disconnect(addr, session.kind, time_ms, reason, text);
        }
        self.broadcast_notice(now, &notice);
        self.events.push_back(match why {
            Removal::Left => ServerEvent::Left {
                time_ms,
                name,
                addr,
            },
            Removal::TimedOut => ServerEvent::TimedOut {
                time_ms,
                name,
                addr,
            },
            Removal::Kicked => ServerEvent::Kicked {
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
    }

    fn send_disconnect(
        &mut self,
        addr: SocketAddr,
        kind: ClientKind,
        time_ms: i64,
        reason: DisconnectReason,
        text: &str,
    ) {
        match kind {
            ClientKind::Named => self.send(
                addr,
                &Frame::Disconnected {
                    time_ms,
                    reason,
                    text: text.to_owned(),
                },
            ),
            ClientKind::Guest => self.push(addr, guest_line(display::notice_line(time_ms, text))),
        }
    }

    /// Sends a chat message from `from` to everyone, the sender included (that echo is how
    /// a client knows its message went out, with the server's time on it). Text from the
    /// network is neutralized first, so guests' terminals and the log are safe too.
    fn broadcast_chat(&mut self, now: Instant, from: &str, text: &str) {
        let time_ms = self.wall_ms(now);
        let clean = display::sanitize(text);
        for piece in wire::split_text(&clean) {
            let frame = Frame::Message {
                time_ms,
                from: from.to_owned(),
                text: piece.to_owned(),
            };
            let guest_text = || display::message_line(time_ms, from, piece);
            self.broadcast(&frame, guest_text);
            self.events.push_back(ServerEvent::Chat {
                time_ms,
                from: from.to_owned(),
                text: piece.to_owned(),
            });
        }
    }

    fn broadcast_notice(&mut self, now: Instant, text: &str) {
        let time_ms = self.wall_ms(now);
        let frame = Frame::Notice {
            time_ms,
            text: text.to_owned(),
        };
        self.broadcast(&frame, || display::notice_line(time_ms, text));
    }

    /// Queues one copy of `frame` for every named client and one copy of the plain-text
    /// line for every guest, each encoded only once.
    fn broadcast(&mut self, frame: &Frame, guest_text: impl FnOnce() -> String) {
        let encoded: Arc<[u8]> = frame.to_bytes().into();
        let mut guest_text = Some(guest_text);
        let mut guest_encoded: Option<Arc<[u8]>> = None;
        for (addr, session) in &self.sessions {
            let payload = match session.kind {
                ClientKind::Named => encoded.clone(),
                ClientKind::Guest => guest_encoded
                    .get_or_insert_with(|| {
                        let make = guest_text.take().expect("taken only once");
                        guest_line(make())
                    })
                    .clone(),
            };
            self.transmits.push_back(Transmit {
                destination: *addr,
                payload,
            });
        }
    }

    fn send_notice_to(&mut self, addr: SocketAddr, time_ms: i64, text: &str) {
        match self.sessions.get(&addr).map(|s| s.kind) {
            Some(ClientKind::Named) => self.send(
                addr,
                &Frame::Notice {
                    time_ms,
                    text: text.to_owned(),
                },
            ),
            Some(ClientKind::Guest) => {
                self.push(addr, guest_line(display::notice_line(time_ms, text)))
            }
            None => {}
        }
    }

    fn send(&mut self, to: SocketAddr, frame: &Frame) {
        self.push(to, frame.to_bytes().into());
    }

    fn push(&mut self, destination: SocketAddr, payload: Arc<[u8]>) {
        self.transmits.push_back(Transmit {
            destination,
            payload,
        });
    }

    fn note_malformed(&mut self, now: Instant, from: SocketAddr, why: &str) {
        if let Some(at) = self.malformed_logged_at.get(&from) {
            if now.saturating_duration_since(*at) < MALFORMED_LOG_PERIOD {
                return;
            }
        } else if self.malformed_logged_at.len() >= MALFORMED_LOG_MEMORY {
            return;
        }
        self.malformed_logged_at.insert(from, now);
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

fn guest_line(mut line: String) -> Arc<[u8]> {
    line.push('\n');
    line.into_bytes().into()
}

fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Join { .. } => "join",
        Frame::Chat { .. } => "chat",
        Frame::Heartbeat => "heartbeat",
        Frame::Leave => "leave",
        Frame::ListRequest => "list request",
        Frame::Welcome { .. } => "welcome",
        Frame::Refused { .. } => "refused",
        Frame::Message { .. } => "message",
        Frame::Notice { .. } => "notice",
        Frame::Roster { .. } => "roster",
        Frame::HeartbeatAck => "heartbeat ack",
        Frame::LeaveAck => "leave ack",
        Frame::Disconnected { .. } => "disconnected",
        Frame::NotJoined => "not joined",
    }
}
