//! Peer mode: a chat room with no server, as a plain state machine with no sockets, threads
//! or clock.
//!
//! [`Peer`] owns one peer's part of a room: starting a room or joining one through a member
//! (a cookie proves the newcomer's address, as with the server's join), the member list
//! every peer keeps (name, address, incarnation, last heard), spreading news of joins and
//! departures by gossip, opening a pair of reliable streams with every other member (one
//! [`SendWindow`] and one [`ReceiveWindow`] per member, so each sender's messages are shown
//! exactly once and in order), heartbeats and eviction of silent members, names unique in
//! the room (concurrent joins under one name settled the same way by everyone), a flood
//! limit per sender (counted by the sender's stamps, `flood::FloodGate`) and pacing
//! what we send to the strictest limit the members announced (`pacing`), the peer's own
//! ban list, leaving politely, and turning what arrives into [`PeerEvent`]s. Inputs and outputs are those of the client core: a datagram arrived,
//! the user typed something, time passed; datagrams to send, events to show, when to call
//! back. The `icq-client` binary runs it when given `--listen`; tests drive it with a fake
//! clock.
//!
//! It does not own the byte layout of frames (`wire`), the reliability rules (`reliable`),
//! how events look (`render`), the naming rules (`names`) or the ban file
//! (`bans`). `docs/protocol.md` describes the peer protocol for people.
//!
//! This file owns the `Peer` type and its state, configuration, events and errors, the
//! public API (what the user does: say, private messages, `/who`, leaving, with the queue
//! paced to the flood limit), the dispatch of what arrives, timers and output. The rest is
//! split by concern into `impl Peer` blocks: `join.rs` (joining, on both sides: cookies,
//! challenge, welcome, the tie-break of concurrent joins under one name), `membership.rs`
//! (the member list, gossip of joins and departures, tombstones), `links.rs` (the pair
//! of reliable streams with each member: hellos, items in order, flood limit and pacing,
//! acknowledgements, retransmission, heartbeats and eviction), `room.rs` (`/me`,
//! `/nick`, `/away`, `/back`, and settling two claims on one name) and `history.rs` (the
//! public lines we showed, replayed to a newcomer, and `/history`).
//!
//! # Membership, in short
//!
//! - A newcomer sends a padded [`PeerFrame::Join`] to any member (its *contact*), answers
//!   the [`PeerFrame::Challenge`], and gets a [`PeerFrame::Welcome`] and the member list.
//!   The contact stamps the newcomer's join time and tells every member
//!   ([`PeerItem::Announce`]); each member that learns of a join passes it on once, so the
//!   news spreads even if the contact dies half-way.
//! - Two members who learn of each other through the room exchange [`PeerFrame::Hello`]s:
//!   each gives the other a secret token that must be in every frame sent back, and only
//!   talks once the other has echoed its own token — proof that it receives at the address
//!   the room gave for it. Nothing but these small hellos ever goes to an address that has
//!   not proved itself, so a forged address cannot make peers send traffic to a victim.
//! - A frame is accepted only from the member's address and with the token we gave that
//!   member: a name is never taken from a frame, so nobody can speak as someone else.
//! - Departures spread like joins ([`PeerItem::Gone`]). A member silent for
//!   [`PeerConfig::timeout`] is evicted; news that a member timed out is only believed by
//!   peers that do not hear it themselves. Departed incarnations are remembered for a while
//!   (tombstones), so late news cannot bring them back, and their late frames get an
//!   answer ([`PeerFrame::NotMember`]) that tells them.
//! - Of two members with one name (two joins through different members at the same
//!   moment), the one with the earlier (join time, address, incarnation) keeps it; every
//!   peer computes the same winner, and the other is told and exits.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::bans::list::BanList;
use crate::history::{DEFAULT_CAPACITY as DEFAULT_HISTORY, Kind, Ring};
use crate::names::{self, RenameError};
use crate::proto::address::{OwnAddress, canonical};
use crate::proto::chat::ChatEvent;
use crate::proto::cookie::{CookieJar, WallClock};
use crate::proto::flood::{FloodGate, FloodLimit, FloodWatch};
use crate::proto::join::{JoinAttempt, JoinStep};
use crate::proto::lateness::{self, Lateness};
use crate::proto::pacing::{Backlog, LeaveWait, Pacer};
use crate::proto::presence::Presence;
use crate::proto::reliable::Ready;
use crate::proto::stream::{Resend, Stream};
use crate::proto::token;
use crate::text;
use crate::wire::{
    self, Acks, DecodeError, FloodTerms, Frame, GoneReason, MAX_DATAGRAM, MemberRecord, PeerFrame,
    PeerItem, PresenceChange, RefuseReason, ToClient, ToServer,
};

mod history;
mod join;
mod links;
mod membership;
mod room;

use history::HistoryWait;
use join::wins;
use links::Link;
use membership::{Member, Tombstone};

// Leaving with lines queued waits for them as a `LeaveWait` says, and at most
// `MAX_QUEUED_LINES` wait, as for a client: one pacing rule for both roles.
use crate::proto::pacing::MAX_QUEUED_LINES;

/// How long leaving waits for every member to confirm (the leave, and every message sent
/// before it, is repeated meanwhile) before the program exits anyway.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// When another member says someone left, that someone is kept this long in case its own
/// leave (which comes after its last messages to us) is still on the way.
pub const LEAVE_GRACE: Duration = Duration::from_secs(4);

/// The first wait before repeating a hello; it doubles up to [`HELLO_MAX_RETRY`].
pub const HELLO_RETRY: Duration = Duration::from_millis(250);

/// The longest wait between two hellos to a member that has not answered (an eighth of
/// the timeout if that is shorter).
pub const HELLO_MAX_RETRY: Duration = Duration::from_secs(2);

/// How many of one member's frames may arrive ahead of one that is missing.
pub const INBOX_LIMIT: u32 = 1024;

/// The most items waiting for one member (not yet acknowledged, or waiting for the pair's
/// hello). Beyond it new messages to that member are reported undelivered: a member that
/// far behind is as good as gone, and memory stays bounded.
pub const MAX_UNACKED: usize = 2048;

/// How long a departed incarnation is remembered.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(600);

/// The most departed incarnations remembered at once (the oldest are forgotten first).
pub const TOMBSTONE_LIMIT: usize = 1024;

/// How many frames that overtook the welcome are kept for it.
const EARLY_LIMIT: usize = 16;

/// A departed member's late frames are answered at most this often.
const NOT_MEMBER_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of a peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The chat limit applied to every other member's messages; `None` turns it off.
    pub flood_limit: Option<FloodLimit>,
    /// A member silent for this long is evicted; heartbeats go out every third of it.
    pub timeout: Duration,
    /// The most members (us included) a room may have: joins through us beyond it are
    /// refused, and news of more members is ignored.
    pub max_members: usize,
    /// The most public lines we keep (`--history`; 0 keeps none).
    pub history: usize,
    /// How many of them a newcomer we let in is sent (`--replay`).
    pub replay: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            flood_limit: FloodLimit::from_options(5.0, 10),
            timeout: Duration::from_secs(30),
            max_members: 64,
            history: DEFAULT_HISTORY,
            replay: crate::proto::paging::DEFAULT_REPLAY,
        }
    }
}

impl PeerConfig {
    /// How often each member is sent something: a third of the timeout, so two heartbeats
    /// in a row can be lost before a live member is evicted.
    pub fn heartbeat_interval(&self) -> Duration {
        self.timeout / 3
    }
}

/// Something to show the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// Something said in the room or a change of someone in it, the same as a client of a
    /// server is shown: messages, private messages and actions (stamped with the sender's
    /// clock; `own` for ours), renames, away and back of a member (ours too, for away and
    /// back, as everyone sees it), and public lines from a member's history (our
    /// contact's, when we joined, or the one `/history` asked; ours when alone).
    Chat(ChatEvent),
    /// We are in the room. `through` is the member we joined through (its name and
    /// address), or `None` for a room we started. `members` are the names in the room,
    /// ours included, sorted.
    Joined {
        name: String,
        through: Option<(String, SocketAddr)>,
        members: Vec<String>,
    },
    /// The history lines are over: `shown` came, the member holds `earlier` more before
    /// them.
    HistoryEnd { shown: u64, earlier: u64 },
    /// We are called `name` from now on (our `/nick` went out).
    Renamed { name: String },
    /// Another member claimed `name` at the same moment as we did and keeps it (see
    /// `room`): we are called `back_to` again.
    RenameLost { name: String, back_to: String },
    /// Someone joined the room.
    MemberJoined { time_ms: i64, name: String },
    /// Someone is no longer in the room.
    MemberGone {
        time_ms: i64,
        name: String,
        reason: GoneReason,
    },
    /// A member no longer counts us in the room (it stopped hearing from us): we stop
    /// talking to it too.
    DroppedBy { time_ms: i64, name: String },
    /// Messages from `from` came faster than the flood limit; `dropped` were not shown.
    FloodDropped {
        time_ms: i64,
        from: String,
        dropped: u32,
    },
    /// `by` dropped `dropped` of our messages: we sent faster than its flood limit.
    FloodWarned {
        time_ms: i64,
        by: String,
        dropped: u32,
    },
    /// The answer to `/list`: everyone in the room, sorted by name.
    Members {
        time_ms: i64,
        members: Vec<MemberInfo>,
    },
    /// More was typed than the members' flood limits let go at once: `lines` wait, and go
    /// one every `every` (told once per backlog).
    Queued { lines: usize, every: Duration },
    /// `count` queued lines were never sent, because `why`.
    Unsent { count: usize, why: &'static str },
    /// A typed line could not be sent at all.
    NotSent { text: String, why: &'static str },
    /// `count` of our messages to `to` were never confirmed, for the reason `why`.
    Undelivered {
        to: String,
        count: usize,
        why: &'static str,
    },
    /// The peer is done; the program should exit.
    Closed(PeerCloseReason),
}

impl PeerEvent {
    /// What this event says about who is in the room, as typed news (see [`Presence`]):
    /// the same kind a client of a server gives, so the UI keeps one list for both.
    pub fn presence(&self) -> Vec<Presence> {
        match self {
            PeerEvent::Joined { name, members, .. } => vec![
                Presence::Me { name: name.clone() },
                Presence::Online {
                    names: members.clone(),
                    first: true,
                },
            ],
            PeerEvent::MemberJoined { name, .. } => vec![Presence::Arrived { name: name.clone() }],
            PeerEvent::MemberGone { name, .. } | PeerEvent::DroppedBy { name, .. } => {
                vec![Presence::Gone { name: name.clone() }]
            }
            PeerEvent::Members { members, .. } => vec![Presence::Online {
                names: members.iter().map(|member| member.name.clone()).collect(),
                first: true,
            }],
            PeerEvent::Chat(ChatEvent::Presence {
                name,
                change: PresenceChange::Renamed { to },
                ..
            }) => vec![Presence::Renamed {
                from: name.clone(),
                to: to.clone(),
            }],
            PeerEvent::Renamed { name } | PeerEvent::RenameLost { back_to: name, .. } => {
                vec![Presence::Me { name: name.clone() }]
            }
            _ => Vec::new(),
        }
    }
}

/// Why a peer's time in the room ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCloseReason {
    /// The user left.
    Left,
    /// No member answered the join in time (or the one that answered went silent before
    /// sending the member list).
    JoinTimedOut,
    /// No member answered the join in time, but a contact's address answered in another
    /// protocol than ours.
    ForeignAnswer,
    /// The member asked refused the join.
    Refused(RefuseReason),
    /// Another peer joined under our name at the same moment, and keeps it.
    NameConflict,
}

impl PeerCloseReason {
    /// Whether the program should exit with a failure status.
    pub fn is_failure(&self) -> bool {
        !matches!(self, PeerCloseReason::Left)
    }
}

/// What `/list` shows about one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's name.
    pub name: String,
    /// Its incarnation (see [`MemberRecord::id`]).
    pub id: u64,
    /// Where it receives. For ourselves, where the member that let us in saw us (`None`
    /// in a room we started: nobody has told us).
    pub addr: Option<SocketAddr>,
    /// Whether this is us.
    pub you: bool,
    /// Time since we last heard from it (`None` for ourselves).
    pub idle_for: Option<Duration>,
    /// Whether the pair's streams are open (its hello answered); `true` for ourselves.
    pub reachable: bool,
    /// Whether our ban list bans its address (we neither talk to it nor listen).
    pub banned: bool,
    /// Why it is away (`/away`), or `None` while it is here (or we were not told: the
    /// member list a newcomer gets does not carry it).
    pub away: Option<String>,
}

/// A command that could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    /// No member has this name.
    NoSuchMember { name: String },
    /// The name is our own.
    ToSelf,
    /// Our ban list bans the member's address: we do not talk to it.
    Banned { name: String },
    /// We are not in a room yet (or any more).
    NotInRoom,
    /// A rename to `name` is refused, for the server's reasons.
    Rename { name: String, error: RenameError },
    /// The history asked for before has not all arrived yet.
    HistoryPending,
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::NoSuchMember { name } => write!(
                f,
                "nobody called '{}' is in the room (see /list)",
                text::sanitize(name)
            ),
            PeerError::ToSelf => write!(f, "that is your own name"),
            PeerError::Banned { name } => write!(
                f,
                "your ban list bans {}'s address: you do not talk to it",
                text::sanitize(name)
            ),
            PeerError::NotInRoom => write!(f, "not in the room yet: wait until you have joined"),
            PeerError::Rename { name, error } => {
                write!(f, "{}", text::rename_refusal(name, error))
            }
            PeerError::HistoryPending => write!(
                f,
                "the history asked for before is still on its way: wait for its end"
            ),
        }
    }
}

impl std::error::Error for PeerError {}

impl Typed {
    /// The line as the user typed it; `None` for a leave.
    fn text(&self) -> Option<String> {
        match self {
            Typed::Chat(text) => Some(text.clone()),
            Typed::Action(text) => Some(format!("/me {text}")),
            Typed::Nick(name) => Some(format!("/nick {name}")),
            Typed::Away(Some(reason)) => Some(format!("/away {reason}")),
            Typed::Away(None) => Some("/back".to_owned()),
            Typed::Private { name, text, .. } => Some(format!("/msg {name} {text}")),
            Typed::Leave => None,
        }
    }
}

/// Something the user did, queued for its turn: while joining, or beyond the flood limit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Typed {
    Chat(String),
    /// `/me`.
    Action(String),
    /// `/nick`.
    Nick(String),
    /// `/away` with its reason, or `/back` (`None`).
    Away(Option<String>),
    /// A private message to the member at this address (called `name` when typed).
    Private {
        to: SocketAddr,
        name: String,
        text: String,
    },
    Leave,
}

#[derive(Debug)]
enum State {
    /// Asking `contacts` in turn to let us in (the same join attempt as a client's).
    Joining(JoinAttempt),
    /// Let in by `contact`; waiting for the rest of the member list.
    Syncing {
        contact: SocketAddr,
    },
    InRoom,
    /// Telling everyone we leave; done when all confirmed, or at `deadline`.
    Leaving {
        deadline: Instant,
    },
    Closed,
}

/// Counters for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Datagrams queued for sending, of every kind.
    pub datagrams_sent: u64,
    /// Sequenced frames sent again because no acknowledgement came in time.
    pub retransmissions: u64,
}

/// One peer's state machine. See the module documentation.
#[derive(Debug)]
pub struct Peer {
    config: PeerConfig,
    name: String,
    key: String,
    /// The name we had before our last rename: taken back if another member's claim on the
    /// new one wins (see `room`).
    previous_name: Option<String>,
    /// Why we are away (`/away`), or `None` while we are here.
    away: Option<String>,
    /// Our incarnation.
    id: u64,
    /// When we joined, as stamped by our contact (or by us for a room we started).
    joined_ms: i64,
    /// The address our contact saw us at: how the room knows us. (`None` for a room we
    /// started: nobody has seen us yet.)
    seen_at: Option<SocketAddr>,
    /// Messages carry our wall clock, while the logic runs on `Instant`s; its start is the
    /// zero of our stamps and of the clock we tell members.
    clock: WallClock,
    state: State,
    /// The `--peer` addresses, tried in order when joining.
    contacts: Vec<SocketAddr>,
    /// The secret our contact must put in its frames (sent in our join).
    join_token: u64,
    members: BTreeMap<SocketAddr, Member>,
    tombstones: VecDeque<Tombstone>,
    bans: BanList,
    /// What the user typed and is not sent yet: before we were in the room, or beyond what
    /// the members' flood limits let go at once (released at the strictest one's pace).
    typed: Pacer<Typed>,
    /// Frames of our contact's stream that overtook its welcome, replayed after it.
    early: Vec<(SocketAddr, Vec<u8>)>,
    own_address: OwnAddress,
    cookies: CookieJar,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<PeerEvent>,
    stats: PeerStats,
    /// Time this program itself could not run (it was stopped): members' silence then is
    /// not theirs, and nobody is evicted for it.
    lateness: Lateness,
    /// The public lines we showed (see `history`), numbered in our own epoch.
    history: Ring,
    /// Our history's epoch: a random id, chosen when the program started.
    history_epoch: u64,
    /// History lines we asked a member for (or were let in by it), until its end.
    history_wait: Option<HistoryWait>,
    /// The member that let us in (`None` in a room we started).
    contact_addr: Option<SocketAddr>,
}

impl Peer {
    /// A peer that starts a new room as `name`, alone in it. `wall_ms` is the wall-clock
    /// time at `now` (ms since the Unix epoch). The name is checked by the caller with
    /// [`names::validate`].
    pub fn new_room(
        name: &str,
        config: PeerConfig,
        bans: BanList,
        now: Instant,
        wall_ms: i64,
    ) -> Peer {
        let mut peer = Peer::blank(name, config, bans, Vec::new(), now, wall_ms);
        peer.joined_ms = wall_ms;
        peer.state = State::InRoom;
        peer.events.push_back(PeerEvent::Joined {
            name: peer.name.clone(),
            through: None,
            members: vec![peer.name.clone()],
        });
        peer
    }

    /// A peer that joins the room of the member at one of `contacts` (tried in order) as
    /// `name`.
    ///
    /// # Panics
    /// If `contacts` is empty: there would be nobody to join through.
    pub fn join(
        name: &str,
        contacts: Vec<SocketAddr>,
        config: PeerConfig,
        bans: BanList,
        now: Instant,
        wall_ms: i64,
    ) -> Peer {
        assert!(!contacts.is_empty(), "joining needs a member's address");
        let contacts = contacts.into_iter().map(canonical).collect();
        let mut peer = Peer::blank(name, config, bans, contacts, now, wall_ms);
        peer.state = State::Joining(JoinAttempt::new(now, 0));
        peer.handle_timeout(now);
        peer
    }

    fn blank(
        name: &str,
        config: PeerConfig,
        bans: BanList,
        contacts: Vec<SocketAddr>,
        now: Instant,
        wall_ms: i64,
    ) -> Peer {
        Peer {
            name: name.to_owned(),
            key: names::key(name),
            previous_name: None,
            away: None,
            id: token::random_u64(),
            joined_ms: wall_ms,
            seen_at: None,
            clock: WallClock::new(now, wall_ms),
            state: State::Closed,
            contacts,
            join_token: token::random_u64(),
            members: BTreeMap::new(),
            tombstones: VecDeque::new(),
            bans,
            typed: {
                // Until the members say theirs, assume they keep the same limit as we do.
                let mut pacer = Pacer::new(MAX_QUEUED_LINES);
                pacer.restart(now, config.flood_limit);
                pacer
            },
            early: Vec::new(),
            own_address: OwnAddress::default(),
            cookies: CookieJar::new(now),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: PeerStats::default(),
            history: Ring::new(config.history.min(crate::proto::paging::MAX_HISTORY)),
            history_epoch: token::random_u64(),
            history_wait: None,
            contact_addr: None,
            config,
            lateness: Lateness::new(),
        }
    }

    /// Our name in the room.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Our incarnation: a random number chosen at start.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether we are in a room (joined, member list and our contact's replay complete, not
    /// leaving): what we type goes at once.
    pub fn is_in_room(&self) -> bool {
        matches!(self.state, State::InRoom) && !self.awaiting_replay()
    }

    /// Whether the lines our contact replays when it lets us in are still on their way.
    fn awaiting_replay(&self) -> bool {
        self.history_wait.is_some_and(|wait| wait.record)
    }

    /// Whether we are done.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The address we were joining through, or joined through (the first `--peer` before
    /// any answer).
    pub fn contact(&self) -> Option<SocketAddr> {
        match &self.state {
            State::Joining(attempt) => self.contacts.get(attempt.candidate).copied(),
            State::Syncing { contact } => Some(*contact),
            _ => self.contacts.first().copied(),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> PeerStats {
        self.stats
    }

    /// How many items (messages, news, a leave) are not confirmed by their member yet.
    pub fn unacknowledged(&self) -> usize {
        self.members
            .values()
            .filter(|m| !m.banned)
            .map(|m| m.link.pending.len() + m.link.stream.outbox.len())
            .sum::<usize>()
            + self.typed.len()
    }

    /// How many typed lines are queued and not sent yet.
    pub fn queued(&self) -> usize {
        self.typed.len()
    }

    /// Tells the core which address its socket is bound to. Datagrams claiming to come
    /// from it are forgeries (answering them would make us talk to ourselves), and so are
    /// members said to live there.
    pub fn set_local_address(&mut self, local_addr: SocketAddr) {
        self.own_address.set(local_addr);
    }

    /// Everyone in the room, us included, sorted by name.
    pub fn members(&self, now: Instant) -> Vec<MemberInfo> {
        let mut list: Vec<MemberInfo> = self
            .members
            .values()
            .map(|m| MemberInfo {
                name: m.record.name.clone(),
                id: m.record.id,
                addr: Some(m.record.addr),
                you: false,
                idle_for: Some(now.saturating_duration_since(m.link.last_heard)),
                reachable: m.link.is_open(),
                banned: m.banned,
                away: m.away.clone(),
            })
            .collect();
        if !matches!(self.state, State::Joining(_) | State::Closed) {
            list.push(MemberInfo {
                name: self.name.clone(),
                id: self.id,
                addr: self.seen_at,
                you: true,
                idle_for: None,
                reachable: true,
                banned: false,
                away: self.away.clone(),
            });
        }
        list.sort_by_cached_key(|m| (names::fold(&m.name), m.id));
        list
    }

    /// Puts a new ban list in force: we stop talking to members it bans, and talk again to
    /// those it no longer bans.
    pub fn set_ban_list(&mut self, now: Instant, bans: BanList) {
        self.bans = bans;
        for member in self.members.values_mut() {
            let banned = self.bans.is_banned(member.record.addr.ip());
            if member.banned && !banned {
                // Heard of or not while banned, it gets a full timeout from now.
                member.link.last_heard = now;
                member.link.next_hello = now;
            }
            member.banned = banned;
        }
    }

    // Input ----------------------------------------------------------------------------

    /// Processes a datagram that arrived from `from`. Never panics, whatever the bytes;
    /// anything that is not a frame of a member's pair (or a join, or a hello) is ignored.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let from = canonical(from);
        if self.is_closed() || self.own_address.is_own(from) {
            return;
        }
        if self.bans.is_banned(from.ip()) {
            // A banned address gets no service; its join gets a refusal (far smaller than
            // the padded join) so a person using a real client learns why.
            if matches!(self.state, State::InRoom)
                && let Ok(Frame::Peer(PeerFrame::Join { nonce, .. })) = Frame::decode(datagram)
            {
                let reason = RefuseReason::Banned;
                self.send_unsequenced(from, &Frame::Peer(PeerFrame::Refused { nonce, reason }));
            }
            return;
        }
        if wire::is_packed(datagram) {
            // Checked whole before any of it is acted on; then each frame as if it had come
            // alone.
            if let Ok(frames) = wire::unpack(datagram) {
                for frame in frames {
                    self.handle_datagram(now, from, &frame);
                }
            }
            return;
        }
        let frame = match Frame::decode(datagram) {
            Ok(Frame::Peer(frame)) => frame,
            // A client given a peer's address for a server's: its join is told so, in the
            // refusal a client reads (13 bytes for 512).
            Ok(Frame::ToServer(ToServer::Join { nonce, .. })) => {
                let reason = RefuseReason::IsAPeer;
                return self
                    .send_unsequenced(from, &Frame::ToClient(ToClient::Refused { nonce, reason }));
            }
            // Other client–server frames mean nothing here.
            Ok(_) => return,
            Err(DecodeError::UnsupportedVersion { .. }) => {
                return self.on_other_version(from, datagram);
            }
            Err(_) => {
                // Something answering a join in another protocol: worth saying so if the
                // join gives up (see `JoinAttempt::heard_foreign`).
                if let State::Joining(attempt) = &mut self.state
                    && self.contacts.contains(&from)
                {
                    attempt.on_foreign_answer();
                }
                return;
            }
        };
        match self.state {
            State::Joining(_) => {
                if frame.token() == Some(self.join_token) && self.early.len() < EARLY_LIMIT {
                    // The contact's first frames (the member list) can overtake its welcome
                    // on the way: keep them for when the welcome is in.
                    self.early.push((from, datagram.to_vec()));
                    return;
                }
                self.on_joining_frame(now, from, frame);
                if !matches!(self.state, State::Joining(_)) {
                    for (from, datagram) in std::mem::take(&mut self.early) {
                        self.handle_datagram(now, from, &datagram);
                    }
                }
            }
            State::Closed => {}
            State::Syncing { .. } | State::InRoom | State::Leaving { .. } => {
                self.on_room_frame(now, from, frame)
            }
        }
        self.check_left();
    }

    fn on_room_frame(&mut self, now: Instant, from: SocketAddr, frame: PeerFrame) {
        match frame {
            PeerFrame::Join {
                nonce,
                cookie,
                id,
                token,
                clock_ms,
                flood,
                name,
            } => {
                let terms = (clock_ms, flood);
                self.on_join(now, from, nonce, cookie, id, token, terms, name)
            }
            PeerFrame::Hello {
                from_id,
                to_id,
                token,
                echo,
                clock_ms,
                flood,
            } => {
                let terms = (clock_ms, flood);
                self.on_hello(now, from, from_id, to_id, token, echo, terms)
            }
            // Late answers to our own join.
            PeerFrame::Challenge { .. } | PeerFrame::Welcome { .. } | PeerFrame::Refused { .. } => {
            }
            frame => {
                let Some(token) = frame.token() else {
                    return;
                };
                let ours = self
                    .members
                    .get(&from)
                    .is_some_and(|m| !m.banned && m.link.my_token == token);
                if ours {
                    self.on_link_frame(now, from, frame);
                } else {
                    self.answer_departed(now, from, token, &frame);
                }
            }
        }
    }

    // What the user does -----------------------------------------------------------------

    /// Sends a line the user typed to everyone in the room; a line too long for one
    /// datagram becomes several messages. It goes at once if the members' flood limits
    /// allow, else in its turn; typed while joining, it waits until we are in.
    pub fn send_text(&mut self, now: Instant, text: &str) {
        for piece in wire::split_text(text) {
            self.enqueue(now, Typed::Chat(piece.to_owned()));
        }
    }

    /// Sends a private message to the member called `to` (in any letter case) only, in its
    /// turn like any line.
    pub fn send_private(&mut self, now: Instant, to: &str, text: &str) -> Result<(), PeerError> {
        if !matches!(self.state, State::InRoom) {
            return Err(PeerError::NotInRoom);
        }
        let key = names::key(to);
        if key == self.key {
            return Err(PeerError::ToSelf);
        }
        let Some((addr, member)) = self.members.iter().find(|(_, m)| m.key == key) else {
            return Err(PeerError::NoSuchMember {
                name: to.to_owned(),
            });
        };
        if member.banned {
            return Err(PeerError::Banned {
                name: member.record.name.clone(),
            });
        }
        let (addr, name) = (*addr, member.record.name.clone());
        for piece in wire::split_text(text) {
            let private = Typed::Private {
                to: addr,
                name: name.clone(),
                text: piece.to_owned(),
            };
            self.enqueue(now, private);
        }
        Ok(())
    }

    /// Queues what the user typed behind everything before, and sends what may go.
    fn enqueue(&mut self, now: Instant, typed: Typed) {
        let why = match self.state {
            State::Leaving { .. } | State::Closed => Some("we are leaving the room"),
            _ if self.leave_queued() => Some("we are leaving the room"),
            _ => None,
        };
        let refused = match why {
            Some(why) => Some((typed, why)),
            None => self
                .typed
                .push(typed, true)
                .err()
                .map(|typed| (typed, "too many lines are waiting to be sent (1000)")),
        };
        if let Some((typed, why)) = refused {
            if let Some(text) = typed.text() {
                self.events.push_back(PeerEvent::NotSent { text, why });
            }
            return;
        }
        self.release(now);
    }

    fn leave_queued(&self) -> bool {
        self.typed.is_finishing()
    }

    fn typed_in_queue(&self) -> usize {
        self.typed.iter().filter(|t| t.text().is_some()).count()
    }

    /// Sends what the queue lets go at `now` (in the room only, after our join's replay):
    /// everything the members' flood limits allow, in order; a queued leave last of all.
    fn release(&mut self, now: Instant) {
        // Lines typed while joining go after the replay our contact sends with the member
        // list (unless we are leaving: then nothing waits for it).
        if self.awaiting_replay() && !self.leave_queued() {
            return;
        }
        while matches!(self.state, State::InRoom) {
            // Whole milliseconds, as stamped: the members' gates do the same arithmetic.
            let sent_ms = self.clock.since_start_ms(now);
            let at = self.clock.origin() + Duration::from_millis(sent_ms);
            let Some(typed) = self.typed.pop(at) else {
                return;
            };
            let time_ms = self.clock.wall_ms(now);
            match typed {
                Typed::Chat(text) => {
                    self.show_public(time_ms, self.name.clone(), Kind::Chat, &text, true);
                    let item = PeerItem::Chat {
                        time_ms,
                        sent_ms,
                        text,
                    };
                    self.send_to_everyone(now, item);
                }
                Typed::Action(text) => self.release_action(now, sent_ms, text),
                Typed::Nick(name) => self.release_rename(now, sent_ms, name),
                Typed::Away(reason) => self.release_away(now, sent_ms, reason),
                Typed::Private { to, name, text } => {
                    if !self.members.contains_key(&to) {
                        self.events.push_back(PeerEvent::NotSent {
                            text: format!("/msg {name} {text}"),
                            why: "they left the room before its turn",
                        });
                        continue;
                    }
                    self.events.push_back(PeerEvent::Chat(ChatEvent::Private {
                        time_ms,
                        from: self.name.clone(),
                        to: name,
                        text: text::sanitize(&text).into_owned(),
                        own: true,
                    }));
                    let item = PeerItem::Private {
                        time_ms,
                        sent_ms,
                        text,
                    };
                    self.send_message(now, to, item);
                }
                Typed::Leave => return self.start_leaving(now),
            }
        }
    }

    /// Shows who is in the room (a [`PeerEvent::Members`]).
    pub fn request_list(&mut self, now: Instant) {
        let time_ms = self.clock.wall_ms(now);
        let members = self.members(now);
        self.events
            .push_back(PeerEvent::Members { time_ms, members });
    }

    /// Leaves the room: tells every member after everything typed before (repeating until
    /// each confirms, for at most [`LEAVE_TIMEOUT`]) and then closes with
    /// [`PeerCloseReason::Left`]. While joining, the join's outcome is awaited first; lines
    /// still queued are waited for, at most
    /// [`QUEUE_DRAIN_LIMIT`](crate::proto::pacing::QUEUE_DRAIN_LIMIT).
    pub fn leave(&mut self, now: Instant) {
        self.leave_waiting(now, LeaveWait::Usual);
    }

    /// Leaves like [`Peer::leave`], but gives what is queued all the time the flood limits
    /// need to send it ([`LeaveWait::WholeQueue`]): the end of a script's input.
    pub fn leave_after_queue(&mut self, now: Instant) {
        self.leave_waiting(now, LeaveWait::WholeQueue);
    }

    fn leave_waiting(&mut self, now: Instant, wait: LeaveWait) {
        let gone = matches!(self.state, State::Leaving { .. } | State::Closed);
        if !gone && self.typed.queue_leave(now, Typed::Leave, wait) {
            self.release(now);
        }
    }

    /// Leaving waited long enough: what is still queued is not sent (the user is told how
    /// many lines), and the leave goes now (once in the room).
    fn drain_expired(&mut self, now: Instant, unsent: usize) {
        if unsent > 0 {
            self.events.push_back(PeerEvent::Unsent {
                count: unsent,
                why: "you left before their turn came",
            });
        }
        self.release(now);
    }

    fn start_leaving(&mut self, now: Instant) {
        self.state = State::Leaving {
            deadline: now + LEAVE_TIMEOUT,
        };
        let addrs: Vec<SocketAddr> = self.members.keys().copied().collect();
        for addr in addrs {
            self.send_item(now, addr, PeerItem::Leave);
        }
        self.check_left();
    }

    /// Closes once every member we can reach has confirmed everything, the leave included.
    fn check_left(&mut self) {
        if !matches!(self.state, State::Leaving { .. }) {
            return;
        }
        let done = self.members.values().all(|m| {
            m.banned
                || !m.link.is_open()
                || (m.link.pending.is_empty() && m.link.stream.outbox.is_empty())
        });
        if done {
            self.close(PeerCloseReason::Left);
        }
    }

    // Time ------------------------------------------------------------------------------

    /// Advances timers: join retries and deadline, hellos, retransmissions,
    /// acknowledgements, heartbeats, evictions, flood notices, the leave deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Called late (the process was stopped): every member's silence meanwhile, and its
        // missing acknowledgements, are ours. (Few members: crediting each one is cheap.)
        if let Some(due) = self.poll_timeout() {
            let owed = self.lateness.timer_ran(now, due);
            if !owed.is_zero() {
                for member in self.members.values_mut() {
                    lateness::forgive_silence(&mut member.link.last_heard, now, owed);
                    member.link.stream.forgive(now, owed);
                }
            }
        }
        match &mut self.state {
            State::Joining(attempt) => match attempt.poll(now, self.contacts.len()) {
                JoinStep::GiveUp if attempt.heard_foreign() => {
                    self.close(PeerCloseReason::ForeignAnswer)
                }
                JoinStep::GiveUp => self.close(PeerCloseReason::JoinTimedOut),
                JoinStep::Send(candidate) => {
                    let join = Frame::Peer(PeerFrame::Join {
                        nonce: attempt.nonce,
                        cookie: attempt.cookie,
                        id: self.id,
                        token: self.join_token,
                        clock_ms: self.clock.since_start_ms(now),
                        flood: FloodLimit::terms(self.config.flood_limit),
                        name: self.name.clone(),
                    });
                    self.send_unsequenced(self.contacts[candidate], &join);
                }
                JoinStep::Wait => {}
            },
            State::Closed => {}
            State::Syncing { .. } | State::InRoom | State::Leaving { .. } => {
                let addrs: Vec<SocketAddr> = self.members.keys().copied().collect();
                for addr in addrs {
                    self.member_timers(now, addr);
                }
                if let State::Leaving { deadline } = self.state
                    && now >= deadline
                {
                    return self.close(PeerCloseReason::Left);
                }
                self.trim_tombstones(now);
                self.check_left();
            }
        }
        self.release(now);
        if matches!(
            self.state,
            State::Syncing { .. } | State::InRoom | State::Leaving { .. }
        ) {
            let addrs: Vec<SocketAddr> = self.members.keys().copied().collect();
            for addr in addrs {
                self.member_acks(now, addr);
            }
        }
        if let Some(Backlog { lines, every }) = self.typed.take_notice(now) {
            self.events.push_back(PeerEvent::Queued { lines, every });
        }
        if let Some(unsent) = self.typed.take_expired(now) {
            self.drain_expired(now, unsent);
        }
    }

    /// When [`Peer::handle_timeout`] should next be called, unless we are done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = [
            self.typed.notice_deadline(),
            self.typed.finish_deadline(),
            match self.state {
                State::InRoom => self.typed.waiting_until(),
                _ => None,
            },
        ];
        let next = self.member_deadline()?;
        Some(own.into_iter().flatten().fold(next, Instant::min))
    }

    // Output -----------------------------------------------------------------------------

    /// The next datagram to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next thing to show the user.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    fn send_unsequenced(&mut self, to: SocketAddr, frame: &Frame) {
        self.stats.datagrams_sent += 1;
        self.transmits.push_back((to, frame.to_bytes()));
    }

    fn close(&mut self, reason: PeerCloseReason) {
        if self.is_closed() {
            return;
        }
        let why = "we left before it confirmed them";
        for member in self.members.values() {
            let count = member.link.unconfirmed_messages();
            if count > 0 && !member.banned {
                self.events.push_back(PeerEvent::Undelivered {
                    to: member.record.name.clone(),
                    count,
                    why,
                });
            }
        }
        let unsent = self.typed_in_queue();
        self.typed.drain().for_each(drop);
        if unsent > 0 {
            let why = match self.state {
                State::Joining(_) | State::Syncing { .. } => "we never got into the room",
                _ => "we left before their turn came",
            };
            self.events
                .push_back(PeerEvent::Unsent { count: unsent, why });
        }
        self.state = State::Closed;
        self.events.push_back(PeerEvent::Closed(reason));
    }
}
