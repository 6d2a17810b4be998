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
//! how events look (`display`, `style`), the naming rules (`names`) or the ban file
//! (`banlist`). `PROTOCOL.md` describes the peer protocol for people.
//!
//! # Membership, in short
//!
//! - A newcomer sends a padded [`Frame::PeerJoin`] to any member (its *contact*), answers
//!   the [`Frame::PeerChallenge`], and gets a [`Frame::PeerWelcome`] and the member list.
//!   The contact stamps the newcomer's join time and tells every member
//!   ([`Frame::PeerAnnounce`]); each member that learns of a join passes it on once, so the
//!   news spreads even if the contact dies half-way.
//! - Two members who learn of each other through the room exchange [`Frame::PeerHello`]s:
//!   each gives the other a secret token that must be in every frame sent back, and only
//!   talks once the other has echoed its own token — proof that it receives at the address
//!   the room gave for it. Nothing but these small hellos ever goes to an address that has
//!   not proved itself, so a forged address cannot make peers send traffic to a victim.
//! - A frame is accepted only from the member's address and with the token we gave that
//!   member: a name is never taken from a frame, so nobody can speak as someone else.
//! - Departures spread like joins ([`Frame::PeerGone`]). A member silent for
//!   [`PeerConfig::timeout`] is evicted; news that a member timed out is only believed by
//!   peers that do not hear it themselves. Departed incarnations are remembered for a while
//!   (tombstones), so late news cannot bring them back, and their late frames get an
//!   answer ([`Frame::PeerNotMember`]) that tells them.
//! - Of two members with one name (two joins through different members at the same
//!   moment), the one with the earlier (join time, address, incarnation) keeps it; every
//!   peer computes the same winner, and the other is told and exits.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::banlist::BanList;
use crate::client::{JoinAttempt, JoinStep};
use crate::display;
use crate::names;
use crate::proto::flood::{FloodGate, FloodLimit};
use crate::proto::lateness::{self, Lateness};
use crate::proto::pacing::{Backlog, Pacer};
use crate::proto::presence::Presence;
use crate::proto::reliable::{Acks, Due, Ready, ReceiveWindow, SendWindow};
use crate::wire::{
    self, DecodeError, Envelope, FloodTerms, Frame, GoneReason, MAX_DATAGRAM, MemberRecord,
    RefuseReason,
};

/// Joining a room runs the client's [`JoinAttempt`], with its timers: give up after
/// `JOIN_TIMEOUT`, repeat every `JOIN_RETRY`, try the next `--peer` after `ADDRESS_FALLBACK`.
/// Leaving with lines queued waits for them `QUEUE_DRAIN_LIMIT` at most, as a client does.
pub use crate::client::{ADDRESS_FALLBACK, JOIN_RETRY, JOIN_TIMEOUT, QUEUE_DRAIN_LIMIT};

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

/// A join cookie is good for the period it was made in and the next one.
pub const COOKIE_PERIOD: Duration = Duration::from_secs(30);

/// How many of one member's frames may arrive ahead of one that is missing.
pub const INBOX_LIMIT: u32 = 1024;

/// The most items waiting for one member (not yet acknowledged, or waiting for the pair's
/// hello). Beyond it new messages to that member are reported undelivered: a member that
/// far behind is as good as gone, and memory stays bounded.
pub const MAX_UNACKED: usize = 2048;

/// The most lines queued and not sent yet (waiting for their turn under the members' flood
/// limits, or typed while joining).
pub const MAX_QUEUED_LINES: usize = crate::client::MAX_QUEUED_LINES;

/// How long after the first dropped message its sender is told how many were dropped: one
/// notice for a whole burst.
pub const FLOOD_NOTICE_DELAY: Duration = Duration::from_secs(1);

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
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            flood_limit: FloodLimit::from_options(5.0, 10),
            timeout: Duration::from_secs(30),
            max_members: 64,
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
    /// We are in the room. `through` is the member we joined through (its name and
    /// address), or `None` for a room we started. `members` are the names in the room,
    /// ours included, sorted.
    Joined {
        name: String,
        through: Option<(String, SocketAddr)>,
        members: Vec<String>,
    },
    /// A chat message, stamped with the sender's clock. `own` is true for ours.
    Message {
        time_ms: i64,
        from: String,
        text: String,
        own: bool,
    },
    /// A private message between `from` and `to` (one of them is us).
    Private {
        time_ms: i64,
        from: String,
        to: String,
        text: String,
        own: bool,
    },
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
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::NoSuchMember { name } => write!(
                f,
                "nobody called '{}' is in the room (see /list)",
                display::sanitize(name)
            ),
            PeerError::ToSelf => write!(f, "that is your own name"),
            PeerError::Banned { name } => write!(
                f,
                "your ban list bans {}'s address: you do not talk to it",
                display::sanitize(name)
            ),
            PeerError::NotInRoom => write!(f, "not in the room yet: wait until you have joined"),
        }
    }
}

impl std::error::Error for PeerError {}

/// A sequenced item of a pair's stream, kept until acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Chat {
        time_ms: i64,
        sent_ms: u64,
        text: String,
    },
    Private {
        time_ms: i64,
        sent_ms: u64,
        text: String,
    },
    Members {
        last: bool,
        members: Vec<MemberRecord>,
    },
    Announce(MemberRecord),
    Gone {
        id: u64,
        reason: GoneReason,
    },
    Leave,
    Flooded {
        dropped: u32,
    },
}

impl Typed {
    /// The line as the user typed it; `None` for a leave.
    fn text(&self) -> Option<String> {
        match self {
            Typed::Chat(text) => Some(text.clone()),
            Typed::Private { name, text, .. } => Some(format!("/msg {name} {text}")),
            Typed::Leave => None,
        }
    }
}

impl Item {
    /// Whether the item is a message the user typed (what "undelivered" counts).
    fn is_message(&self) -> bool {
        matches!(self, Item::Chat { .. } | Item::Private { .. })
    }

    fn frame(&self, envelope: Envelope) -> Frame {
        match self.clone() {
            Item::Chat {
                time_ms,
                sent_ms,
                text,
            } => Frame::PeerChat {
                envelope,
                time_ms,
                sent_ms,
                text,
            },
            Item::Private {
                time_ms,
                sent_ms,
                text,
            } => Frame::PeerPrivate {
                envelope,
                time_ms,
                sent_ms,
                text,
            },
            Item::Members { last, members } => Frame::PeerMembers {
                envelope,
                last,
                members,
            },
            Item::Announce(member) => Frame::PeerAnnounce { envelope, member },
            Item::Gone { id, reason } => Frame::PeerGone {
                envelope,
                id,
                reason,
            },
            Item::Leave => Frame::PeerLeave { envelope },
            Item::Flooded { dropped } => Frame::PeerFlooded { envelope, dropped },
        }
    }

    /// The item a sequenced frame carries, with its sequence number.
    fn from_frame(frame: Frame) -> Option<(u32, Item)> {
        Some(match frame {
            Frame::PeerChat {
                envelope,
                time_ms,
                sent_ms,
                text,
            } => (
                envelope.seq,
                Item::Chat {
                    time_ms,
                    sent_ms,
                    text,
                },
            ),
            Frame::PeerPrivate {
                envelope,
                time_ms,
                sent_ms,
                text,
            } => (
                envelope.seq,
                Item::Private {
                    time_ms,
                    sent_ms,
                    text,
                },
            ),
            Frame::PeerMembers {
                envelope,
                last,
                members,
            } => (envelope.seq, Item::Members { last, members }),
            Frame::PeerAnnounce { envelope, member } => (envelope.seq, Item::Announce(member)),
            Frame::PeerGone {
                envelope,
                id,
                reason,
            } => (envelope.seq, Item::Gone { id, reason }),
            Frame::PeerLeave { envelope } => (envelope.seq, Item::Leave),
            Frame::PeerFlooded { envelope, dropped } => (envelope.seq, Item::Flooded { dropped }),
            _ => return None,
        })
    }
}

/// The two streams between us and one member, and what opens them.
#[derive(Debug)]
struct Link {
    /// The secret the member must put in every frame it sends us.
    my_token: u64,
    /// The secret we must put in every frame we send it, once it has told us.
    their_token: Option<u64>,
    /// Whether the member proved it receives at its address (it knows `my_token`, which
    /// only ever went there). Nothing but hellos is sent before.
    proven: bool,
    /// When to say hello again while the streams are not open.
    next_hello: Instant,
    hello_wait: Duration,
    /// When to probe it again once it has gone quiet (see `Peer::member_timers`).
    next_probe: Instant,
    /// Items waiting for the streams to open.
    pending: VecDeque<Item>,
    outbox: SendWindow<Item>,
    inbox: ReceiveWindow<Item>,
    /// When the member last proved it is alive (or when we learned of it).
    last_heard: Instant,
    /// When we last sent it anything carrying our acknowledgements.
    last_sent: Instant,
    /// The limit on its messages (counted by its stamps, against the clock it told us).
    flood: Option<FloodGate>,
    /// The limit it applies to ours, once its join, welcome or hello said it.
    their_terms: Option<FloodTerms>,
    /// Its messages dropped since it was last told.
    flood_dropped: u32,
    flood_notice_at: Option<Instant>,
}

impl Link {
    fn new(now: Instant, flood_limit: Option<FloodLimit>, max_lag: Duration) -> Link {
        Link {
            my_token: random_u64(),
            their_token: None,
            proven: false,
            next_hello: now,
            hello_wait: HELLO_RETRY,
            next_probe: now,
            pending: VecDeque::new(),
            outbox: SendWindow::new(),
            inbox: ReceiveWindow::new(INBOX_LIMIT),
            last_heard: now,
            last_sent: now,
            flood: flood_limit.map(|limit| FloodGate::new(limit, now, max_lag)),
            their_terms: None,
            flood_dropped: 0,
            flood_notice_at: None,
        }
    }

    /// Whether both streams are open: we may send it anything.
    fn is_open(&self) -> bool {
        self.proven && self.their_token.is_some()
    }

    /// What its join, welcome or hello said: its clock (against which its stamps are
    /// read) and its limit on what we send it.
    fn learn_terms(&mut self, now: Instant, clock_ms: u64, terms: FloodTerms) {
        if let Some(gate) = &mut self.flood {
            gate.sender_clock(now, clock_ms);
        }
        self.their_terms = Some(terms);
    }

    fn envelope(&self, seq: u32) -> Envelope {
        Envelope {
            token: self.their_token.unwrap_or_default(),
            seq,
            acks: self.inbox.acks(),
        }
    }

    /// How many typed messages to this member are not confirmed yet.
    fn unconfirmed_messages(&self) -> usize {
        self.pending.iter().filter(|item| item.is_message()).count()
            + self
                .outbox
                .unacked()
                .filter(|item| item.is_message())
                .count()
    }
}

/// One other member of the room.
#[derive(Debug)]
struct Member {
    record: MemberRecord,
    /// `record.name` folded, for name uniqueness.
    key: String,
    /// Our ban list bans its address: we neither send to it nor listen to it.
    banned: bool,
    /// The nonce of the join that let it in through us, to answer a repeated join.
    join_nonce: Option<u64>,
    /// Another member said it is gone: it is removed then, unless its own leave comes first.
    doomed: Option<(Instant, GoneReason)>,
    link: Link,
}

/// A departed incarnation, remembered so that late news cannot bring it back and its late
/// frames get an answer.
#[derive(Debug)]
struct Tombstone {
    id: u64,
    addr: SocketAddr,
    reason: GoneReason,
    at: Instant,
    my_token: u64,
    their_token: Option<u64>,
    /// What we had received from it, to acknowledge a repeated leave.
    acks: Acks,
    last_answer: Option<Instant>,
}

/// Something the user did, queued for its turn: while joining, or beyond the flood limit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Typed {
    Chat(String),
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
    /// Our incarnation.
    id: u64,
    /// When we joined, as stamped by our contact (or by us for a room we started).
    joined_ms: i64,
    /// The address our contact saw us at: how the room knows us. (`None` for a room we
    /// started: nobody has seen us yet.)
    seen_at: Option<SocketAddr>,
    /// An instant and the wall-clock time it corresponds to: messages carry our wall
    /// clock, while the logic runs on `Instant`s.
    clock_origin: (Instant, i64),
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
    local_addr: Option<SocketAddr>,
    cookie_key: std::hash::RandomState,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<PeerEvent>,
    stats: PeerStats,
    /// Time this program itself could not run (it was stopped): members' silence then is
    /// not theirs, and nobody is evicted for it.
    lateness: Lateness,
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
            id: random_u64(),
            joined_ms: wall_ms,
            seen_at: None,
            clock_origin: (now, wall_ms),
            state: State::Closed,
            contacts,
            join_token: random_u64(),
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
            local_addr: None,
            cookie_key: std::hash::RandomState::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: PeerStats::default(),
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

    /// Whether we are in a room (joined, member list complete, not leaving).
    pub fn is_in_room(&self) -> bool {
        matches!(self.state, State::InRoom)
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
            .map(|m| m.link.pending.len() + m.link.outbox.len())
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
        self.local_addr = Some(canonical(local_addr));
    }

    fn is_own_address(&self, addr: SocketAddr) -> bool {
        let Some(local) = self.local_addr else {
            return false;
        };
        addr.port() == local.port()
            && (addr.ip() == local.ip() || (local.ip().is_unspecified() && addr.ip().is_loopback()))
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
            });
        }
        list.sort_by_cached_key(|m| (names::fold(&m.name), m.id));
        list
    }

    fn member_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .members
            .values()
            .map(|m| m.record.name.clone())
            .collect();
        names.push(self.name.clone());
        names.sort_by_cached_key(|name| names::fold(name));
        names
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
        if self.is_closed() || self.is_own_address(from) {
            return;
        }
        if self.bans.is_banned(from.ip()) {
            // A banned address gets no service; its join gets a refusal (far smaller than
            // the padded join) so a person using a real client learns why.
            if matches!(self.state, State::InRoom)
                && let Ok(Frame::PeerJoin { nonce, .. }) = Frame::decode(datagram)
            {
                let reason = RefuseReason::Banned;
                self.send_unsequenced(from, &Frame::PeerRefused { nonce, reason });
            }
            return;
        }
        let frame = match Frame::decode(datagram) {
            Ok(frame) if frame.is_peer() => frame,
            // A client given a peer's address for a server's: its join is told so, in the
            // refusal a client reads (13 bytes for 512).
            Ok(Frame::Join { nonce, .. }) => {
                let reason = RefuseReason::IsAPeer;
                return self.send_unsequenced(from, &Frame::Refused { nonce, reason });
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

    /// A frame of another protocol version: a join gets the refusal every version reads; a
    /// refusal of our own join ends it.
    fn on_other_version(&mut self, from: SocketAddr, datagram: &[u8]) {
        match self.state {
            State::InRoom => {
                if let Some(nonce) = wire::any_version_peer_join_nonce(datagram) {
                    let refusal = Frame::Refused {
                        nonce,
                        reason: RefuseReason::VersionUnsupported,
                    };
                    // Never more bytes back than came in, whatever the other version pads.
                    if refusal.to_bytes().len() <= datagram.len() {
                        self.send_unsequenced(from, &refusal);
                    }
                }
            }
            State::Joining(ref attempt) => {
                if self.contacts.contains(&from)
                    && let Some((answered, reason)) = wire::any_version_refusal(datagram)
                    && answered == attempt.nonce
                {
                    self.close(PeerCloseReason::Refused(reason));
                }
            }
            _ => {}
        }
    }

    fn on_joining_frame(&mut self, now: Instant, from: SocketAddr, frame: Frame) {
        let State::Joining(attempt) = &mut self.state else {
            return;
        };
        // Any of the contacts may answer; the nonce proves it answers us.
        let Some(from_index) = self.contacts.iter().position(|c| *c == from) else {
            return;
        };
        match frame {
            Frame::PeerChallenge {
                nonce: answered,
                cookie: challenge,
            } if answered == attempt.nonce => {
                attempt.on_challenge(now, from_index, challenge);
                self.handle_timeout(now);
            }
            Frame::PeerWelcome {
                nonce: answered,
                token,
                your_joined_ms,
                your_addr,
                id,
                joined_ms,
                clock_ms,
                flood,
                name,
            } if answered == attempt.nonce => {
                if names::validate(&name).is_err() || id == self.id {
                    return; // a broken member: keep asking
                }
                self.joined_ms = your_joined_ms;
                self.seen_at = Some(canonical(your_addr));
                let record = MemberRecord {
                    id,
                    joined_ms,
                    addr: from,
                    name,
                };
                let mut member = self.new_member(now, record);
                member.link.my_token = self.join_token;
                member.link.their_token = Some(token);
                member.link.proven = true;
                member.link.learn_terms(now, clock_ms, flood);
                self.members.insert(from, member);
                self.update_pace(now);
                self.state = State::Syncing { contact: from };
                // Tell the contact at once that we are here and have nothing yet.
                self.send_ack_now(now, from);
            }
            Frame::PeerRefused {
                nonce: answered,
                reason,
            } if answered == attempt.nonce => self.close(PeerCloseReason::Refused(reason)),
            _ => {}
        }
    }

    fn on_room_frame(&mut self, now: Instant, from: SocketAddr, frame: Frame) {
        match frame {
            Frame::PeerJoin {
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
            Frame::PeerHello {
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
            Frame::PeerChallenge { .. } | Frame::PeerWelcome { .. } | Frame::PeerRefused { .. } => {
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

    /// A frame of a pair's streams, from the member at `from` with our token.
    fn on_link_frame(&mut self, now: Instant, from: SocketAddr, frame: Frame) {
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        let link = &mut member.link;
        link.last_heard = now;
        if !link.proven {
            // It knows our token, which only ever went to its address: it is really there.
            link.proven = true;
            self.opened(now, from);
        }
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        let link = &mut member.link;
        if link.their_token.is_none() {
            // Its hello with its token was lost: ask again at once, or we cannot answer.
            link.next_hello = now;
        }
        if let Some(acks) = frame.acks() {
            link.outbox.on_acks(now, acks);
        }
        if let Frame::PeerNotMember { reason, .. } = frame {
            return self.dropped_by(now, from, reason);
        }
        if let Some((seq, item)) = Item::from_frame(frame) {
            link.inbox.insert(now, seq, item);
        }
        // Items are handled in the order the member sent them, each once.
        while let Some(ready) = self
            .members
            .get_mut(&from)
            .and_then(|m| m.link.inbox.pop_ready())
        {
            match ready {
                Ready::Item(item) => self.on_item(now, from, item),
                // Members never skip (a member that far behind is evicted instead).
                Ready::Skipped(_) => {}
            }
        }
        self.send_ack_if_due(now, from);
    }

    /// Answers a frame with a token we do not know from this address: a member that left
    /// or was evicted, still talking. A leave repeated because our acknowledgement was lost
    /// gets it again; anything else is told the sender is not a member for us. Nothing at
    /// all for frames no member of ours could have sent.
    fn answer_departed(&mut self, now: Instant, from: SocketAddr, token: u64, frame: &Frame) {
        if matches!(frame, Frame::PeerNotMember { .. }) {
            // Two peers that dropped each other must not tell each other so forever.
            return;
        }
        let Some(tomb) = self
            .tombstones
            .iter_mut()
            .find(|t| t.addr == from && t.my_token == token)
        else {
            return;
        };
        let Some(their_token) = tomb.their_token else {
            return;
        };
        if tomb.reason == GoneReason::Left {
            if frame.envelope().is_some() {
                let ack = Frame::PeerAck {
                    token: their_token,
                    acks: tomb.acks,
                };
                self.send_unsequenced(from, &ack);
            }
            return;
        }
        if tomb
            .last_answer
            .is_some_and(|at| now.saturating_duration_since(at) < NOT_MEMBER_INTERVAL)
        {
            return;
        }
        tomb.last_answer = Some(now);
        let answer = Frame::PeerNotMember {
            token: their_token,
            reason: tomb.reason,
        };
        self.send_unsequenced(from, &answer);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_join(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: u64,
        cookie: u64,
        id: u64,
        token: u64,
        (clock_ms, flood): (u64, FloodTerms),
        name: String,
    ) {
        // Until our own member list is complete we could let in a duplicate name or hand
        // out an incomplete list; while leaving we are no one to join through. The joiner
        // hears nothing and tries again (or another --peer).
        if !matches!(self.state, State::InRoom) {
            return;
        }
        if !self.cookie_is_valid(now, from, nonce, cookie) {
            // Prove the address first, keeping no state: the answer is smaller than the
            // padded join, so a forged join cannot aim us at someone else.
            let cookie = self.cookie(from, nonce, self.cookie_period(now));
            return self.send_unsequenced(from, &Frame::PeerChallenge { nonce, cookie });
        }
        if let Some(member) = self.members.get(&from) {
            if member.join_nonce == Some(nonce) && member.record.id == id {
                // Our welcome was lost and it asked again: answer, change nothing. The
                // member list sent with the welcome was ignored (it came before the
                // welcome did): send it again now rather than after the backoff.
                let welcome = self.welcome(now, nonce, member);
                self.send_unsequenced(from, &welcome);
                if let Some(member) = self.members.get_mut(&from) {
                    member.link.outbox.expedite(now);
                }
                return self.member_timers(now, from);
            }
            if member.key != names::key(&name) {
                // Someone else is a member at this address and port: a join (perhaps
                // forged) must not end it.
                return self.refuse(from, nonce, RefuseReason::AddressInUse);
            }
            // The same person's program started again on the same port: the old one is
            // gone.
            self.remove_member(now, from, GoneReason::Left, true);
        }
        if names::validate(&name).is_err() {
            return self.refuse(from, nonce, RefuseReason::NameInvalid);
        }
        let key = names::key(&name);
        if key == self.key || self.members.values().any(|m| m.key == key) {
            return self.refuse(from, nonce, RefuseReason::NameTaken);
        }
        if self.members.len() + 1 >= self.config.max_members {
            return self.refuse(from, nonce, RefuseReason::ServerFull);
        }
        if id == self.id
            || self.members.values().any(|m| m.record.id == id)
            || self.tombstones.iter().any(|t| t.id == id)
        {
            // An incarnation already known: a forged or replayed join.
            return self.refuse(from, nonce, RefuseReason::AddressInUse);
        }
        let record = MemberRecord {
            id,
            joined_ms: self.wall_ms(now),
            addr: from,
            name: name.clone(),
        };
        let mut member = self.new_member(now, record.clone());
        member.join_nonce = Some(nonce);
        member.link.their_token = Some(token);
        // The cookie proved the address.
        member.link.proven = true;
        member.link.learn_terms(now, clock_ms, flood);
        let welcome = self.welcome(now, nonce, &member);
        self.members.insert(from, member);
        self.update_pace(now);
        self.send_unsequenced(from, &welcome);
        for part in self.member_list_parts(from) {
            self.send_item(now, from, part);
        }
        let others: Vec<SocketAddr> = self
            .members
            .keys()
            .filter(|a| **a != from)
            .copied()
            .collect();
        for addr in others {
            self.send_item(now, addr, Item::Announce(record.clone()));
        }
        let time_ms = self.wall_ms(now);
        self.events
            .push_back(PeerEvent::MemberJoined { time_ms, name });
    }

    fn welcome(&self, now: Instant, nonce: u64, member: &Member) -> Frame {
        Frame::PeerWelcome {
            nonce,
            token: member.link.my_token,
            your_joined_ms: member.record.joined_ms,
            your_addr: member.record.addr,
            id: self.id,
            joined_ms: self.joined_ms,
            clock_ms: self.clock_ms(now),
            flood: FloodTerms::from_limit(self.config.flood_limit),
            name: self.name.clone(),
        }
    }

    /// Our clock for stamps and for what we tell members: milliseconds since we started.
    fn clock_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.clock_origin.0)
            .as_millis() as u64
    }

    /// What our hellos say besides the pair's tokens: who we are, our clock, our limit.
    fn hello_terms(&self, now: Instant) -> (u64, u64, FloodTerms) {
        let terms = FloodTerms::from_limit(self.config.flood_limit);
        (self.id, self.clock_ms(now), terms)
    }

    /// Keeps our pace to the strictest limit the members announced (our own until one
    /// has): every member's gate must let through what we send everyone.
    fn update_pace(&mut self, now: Instant) {
        let mut strictest: Option<FloodLimit> = None;
        let mut any_known = false;
        for member in self.members.values().filter(|m| !m.banned) {
            let Some(terms) = member.link.their_terms else {
                continue;
            };
            any_known = true;
            if let Some(limit) = terms.limit() {
                strictest = Some(match strictest {
                    None => limit,
                    Some(known) => FloodLimit {
                        rate_per_sec: known.rate_per_sec.min(limit.rate_per_sec),
                        burst: known.burst.min(limit.burst),
                    },
                });
            }
        }
        if any_known && strictest != self.typed.limit() {
            self.typed.set_limit(now, strictest);
        }
    }

    fn refuse(&mut self, to: SocketAddr, nonce: u64, reason: RefuseReason) {
        self.send_unsequenced(to, &Frame::PeerRefused { nonce, reason });
    }

    /// The member list for the newcomer at `newcomer`, in parts that each fit in a
    /// datagram: everyone but us (the welcome describes us) and the newcomer, and not the
    /// members already on their way out.
    fn member_list_parts(&self, newcomer: SocketAddr) -> Vec<Item> {
        const FIXED: usize = wire::HEADER_LEN + wire::ENVELOPE_LEN + 1;
        let mut parts = Vec::new();
        let mut part: Vec<MemberRecord> = Vec::new();
        let mut len = FIXED;
        for member in self.members.values() {
            if member.record.addr == newcomer || member.doomed.is_some() {
                continue;
            }
            let record_len = member.record.encoded_len();
            if len + record_len > MAX_DATAGRAM {
                parts.push(Item::Members {
                    last: false,
                    members: std::mem::take(&mut part),
                });
                len = FIXED;
            }
            len += record_len;
            part.push(member.record.clone());
        }
        parts.push(Item::Members {
            last: true,
            members: part,
        });
        parts
    }

    #[allow(clippy::too_many_arguments)]
    fn on_hello(
        &mut self,
        now: Instant,
        from: SocketAddr,
        from_id: u64,
        to_id: u64,
        token: u64,
        echo: u64,
        (clock_ms, flood): (u64, FloodTerms),
    ) {
        if to_id != self.id {
            return;
        }
        let terms = self.hello_terms(now);
        // Only members the room told us about: a hello from anyone else is ignored (it
        // may come before the news of its join; it is repeated).
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        if member.record.id != from_id || member.banned {
            return;
        }
        let link = &mut member.link;
        let echoed = echo == link.my_token;
        match link.their_token {
            None => link.their_token = Some(token),
            Some(known) if known != token => {
                // A token never changes within an incarnation: believe a new one only
                // with the proof that it comes from the member.
                if !echoed {
                    return;
                }
                link.their_token = Some(token);
            }
            Some(_) => {}
        }
        let was_open = link.is_open();
        if echoed || link.their_token == Some(token) {
            // From the member (it knows our token, or holds the one it gave us): believe
            // its clock and limit.
            link.learn_terms(now, clock_ms, flood);
        }
        if echoed {
            link.proven = true;
            link.last_heard = now;
            if was_open {
                // It still says hello, so it lacks the proof that we are at our address:
                // any frame with its token gives it. (An acknowledgement never gets an
                // answer, so this cannot ping-pong either.)
                self.send_ack_now(now, from);
            }
        } else {
            // It does not know our token yet: tell it, echoing its own. (A hello that
            // echoes ours never gets an answer, so two hellos cannot ping-pong.)
            let mut answer = hello_frame(terms, from_id, link);
            if let Frame::PeerHello { echo, .. } = &mut answer {
                *echo = token;
            }
            self.send_unsequenced(from, &answer);
        }
        self.update_pace(now);
        if !was_open {
            self.opened(now, from);
        }
    }

    /// Called when a pair's streams may have just opened: sends what waited for it.
    fn opened(&mut self, now: Instant, addr: SocketAddr) {
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        if !member.link.is_open() {
            return;
        }
        let waiting: Vec<Item> = member.link.pending.drain(..).collect();
        if waiting.is_empty() {
            // Whatever carries its token proves to it that we are at our address: do not
            // keep it waiting for our next heartbeat.
            self.send_ack_now(now, addr);
        }
        for item in waiting {
            self.send_item(now, addr, item);
        }
    }

    /// Carries out one item from the member at `from`, in its turn.
    fn on_item(&mut self, now: Instant, from: SocketAddr, item: Item) {
        match item {
            Item::Chat {
                time_ms,
                sent_ms,
                text,
            } => {
                if let Some(name) = self.admit_message(now, from, sent_ms, &text) {
                    self.events.push_back(PeerEvent::Message {
                        time_ms,
                        from: name,
                        text: display::sanitize(&text).into_owned(),
                        own: false,
                    });
                }
            }
            Item::Private {
                time_ms,
                sent_ms,
                text,
            } => {
                if let Some(name) = self.admit_message(now, from, sent_ms, &text) {
                    self.events.push_back(PeerEvent::Private {
                        time_ms,
                        from: name,
                        to: self.name.clone(),
                        text: display::sanitize(&text).into_owned(),
                        own: false,
                    });
                }
            }
            Item::Members { last, members } => {
                for record in members {
                    self.learn(now, from, record, false);
                }
                if last
                    && let State::Syncing { contact } = self.state
                    && contact == from
                {
                    self.synced(now, from);
                }
            }
            Item::Announce(record) => self.learn(now, from, record, true),
            Item::Gone { id, reason } => self.hear_gone(now, from, id, reason),
            Item::Leave => {
                // Say we got it before forgetting the pair, so it can stop repeating.
                self.send_ack_now(now, from);
                self.remove_member(now, from, GoneReason::Left, true);
            }
            Item::Flooded { dropped } => {
                if let Some(member) = self.members.get(&from) {
                    let by = member.record.name.clone();
                    let time_ms = self.wall_ms(now);
                    self.events.push_back(PeerEvent::FloodWarned {
                        time_ms,
                        by,
                        dropped,
                    });
                }
            }
        }
    }

    /// Whether a message from the member at `from`, stamped `sent_ms` on its clock, is
    /// within its flood limit; its name if so. Dropped ones are counted, and the sender told
    /// after [`FLOOD_NOTICE_DELAY`].
    fn admit_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sent_ms: u64,
        text: &str,
    ) -> Option<String> {
        let member = self.members.get_mut(&from)?;
        if text.is_empty() {
            return None;
        }
        let link = &mut member.link;
        if let Some(gate) = link.flood.as_mut()
            && !gate.admit(now, Some(sent_ms))
        {
            link.flood_dropped = link.flood_dropped.saturating_add(1);
            link.flood_notice_at.get_or_insert(now + FLOOD_NOTICE_DELAY);
            return None;
        }
        Some(member.record.name.clone())
    }

    /// The member list from our contact is complete: we are in the room.
    fn synced(&mut self, now: Instant, contact: SocketAddr) {
        self.state = State::InRoom;
        let through = self
            .members
            .get(&contact)
            .map(|m| (m.record.name.clone(), contact));
        self.events.push_back(PeerEvent::Joined {
            name: self.name.clone(),
            through,
            members: self.member_names(),
        });
        self.release(now);
    }

    /// Learns of a member from the member at `via`: from the member list (`news` false) or
    /// the news of a join (`news` true, shown and passed on).
    fn learn(&mut self, now: Instant, via: SocketAddr, mut record: MemberRecord, news: bool) {
        record.addr = canonical(record.addr);
        if record.id == self.id
            || names::validate(&record.name).is_err()
            || !plausible_address(record.addr)
            || self.is_own_address(record.addr)
            || self.tombstones.iter().any(|t| t.id == record.id)
            || self.members.values().any(|m| m.record.id == record.id)
        {
            return;
        }
        if let Some(old) = self.members.get(&record.addr) {
            // Two incarnations at one address: the later program owns the port now.
            if old.record.joined_ms > record.joined_ms {
                return;
            }
            self.remove_member(now, record.addr, GoneReason::Left, false);
        }
        let key = names::key(&record.name);
        if key == self.key {
            if !wins(&record, self.joined_ms, self.seen_at, self.id) {
                return; // it gives way; its contact tells it
            }
            return self.close(PeerCloseReason::NameConflict);
        }
        if let Some(holder) = self.members.values().find(|m| m.key == key) {
            let holder_addr = holder.record.addr;
            if let Some((_, reason)) = holder.doomed {
                // On its way out anyway: the name is free.
                self.remove_member(now, holder_addr, reason, false);
            } else if wins(
                &record,
                holder.record.joined_ms,
                Some(holder_addr),
                holder.record.id,
            ) {
                // The holder joined later: it gives way, and is told so.
                self.tell_not_member(holder_addr, GoneReason::NameTaken);
                self.remove_member(now, holder_addr, GoneReason::NameTaken, false);
            } else {
                return; // the newcomer gives way; its contact tells it
            }
        }
        if self.members.len() + 1 >= self.config.max_members {
            return;
        }
        let name = record.name.clone();
        let addr = record.addr;
        let member = self.new_member(now, record.clone());
        self.members.insert(addr, member);
        if news {
            let time_ms = self.wall_ms(now);
            self.events
                .push_back(PeerEvent::MemberJoined { time_ms, name });
            // Pass it on once, so the news spreads even if its source dies half-way.
            let others: Vec<SocketAddr> = self
                .members
                .keys()
                .filter(|a| **a != via && **a != addr)
                .copied()
                .collect();
            for other in others {
                self.send_item(now, other, Item::Announce(record.clone()));
            }
        }
        self.say_hello(now, addr);
    }

    fn new_member(&self, now: Instant, record: MemberRecord) -> Member {
        Member {
            key: names::key(&record.name),
            banned: self.bans.is_banned(record.addr.ip()),
            join_nonce: None,
            doomed: None,
            // A backlog older than the timeout cannot be honest: a member silent that long
            // has been evicted.
            link: Link::new(now, self.config.flood_limit, self.config.timeout),
            record,
        }
    }

    /// The member at `via` says the incarnation `id` is gone.
    fn hear_gone(&mut self, now: Instant, via: SocketAddr, id: u64, reason: GoneReason) {
        if id == self.id || self.tombstones.iter().any(|t| t.id == id) {
            // About us (those who stop counting us say so themselves), or old news.
            return;
        }
        let Some(addr) = self
            .members
            .iter()
            .find(|(_, m)| m.record.id == id)
            .map(|(addr, _)| *addr)
        else {
            // Someone we never knew: remember it is gone, so late news of its join cannot
            // bring it in, and pass it on.
            self.bury(now, id, None, reason);
            return self.forward_gone(now, via, None, id, reason);
        };
        let timeout = self.config.timeout;
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        match reason {
            GoneReason::Left => {
                if member.doomed.is_some() {
                    return;
                }
                // Its own leave comes after its last messages to us: wait a little for it.
                member.doomed = Some((now + LEAVE_GRACE, reason));
                self.forward_gone(now, via, Some(addr), id, reason);
            }
            GoneReason::TimedOut => {
                // Believed only if we do not hear it ourselves: a member one peer cannot
                // reach may be fine for the others.
                if now.saturating_duration_since(member.link.last_heard) < timeout / 2 {
                    return;
                }
                self.remove_member(now, addr, GoneReason::TimedOut, false);
                self.forward_gone(now, via, Some(addr), id, reason);
            }
            // Everyone settles name conflicts alone, from the records.
            GoneReason::NameTaken => {}
        }
    }

    fn forward_gone(
        &mut self,
        now: Instant,
        via: SocketAddr,
        subject: Option<SocketAddr>,
        id: u64,
        reason: GoneReason,
    ) {
        let others: Vec<SocketAddr> = self
            .members
            .keys()
            .filter(|a| **a != via && Some(**a) != subject)
            .copied()
            .collect();
        for addr in others {
            self.send_item(now, addr, Item::Gone { id, reason });
        }
    }

    /// The member at `addr` no longer counts us (it answered with our own token).
    fn dropped_by(&mut self, now: Instant, addr: SocketAddr, reason: GoneReason) {
        if reason == GoneReason::NameTaken {
            return self.close(PeerCloseReason::NameConflict);
        }
        let Some(member) = self.members.get(&addr) else {
            return;
        };
        let name = member.record.name.clone();
        let time_ms = self.wall_ms(now);
        self.events
            .push_back(PeerEvent::DroppedBy { time_ms, name });
        self.forget_member(now, addr, reason, "it no longer counts us in the room");
    }

    /// Removes the member at `addr`, shows why, and if `tell_others` passes the news on.
    fn remove_member(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        reason: GoneReason,
        tell_others: bool,
    ) {
        let Some(member) = self.members.get(&addr) else {
            return;
        };
        let id = member.record.id;
        let name = member.record.name.clone();
        let why = match reason {
            GoneReason::Left => "it left first",
            GoneReason::TimedOut => "it timed out",
            GoneReason::NameTaken => "it gave way to another member of the same name",
        };
        self.forget_member(now, addr, reason, why);
        let time_ms = self.wall_ms(now);
        self.events.push_back(PeerEvent::MemberGone {
            time_ms,
            name,
            reason,
        });
        if tell_others {
            let others: Vec<SocketAddr> = self.members.keys().copied().collect();
            for other in others {
                self.send_item(now, other, Item::Gone { id, reason });
            }
        }
        if let State::Syncing { contact } = self.state
            && contact == addr
        {
            // Our contact went away before the member list was complete.
            self.close(PeerCloseReason::JoinTimedOut);
        }
    }

    /// Drops the member at `addr` and its streams, keeping a tombstone; reports messages
    /// it never confirmed.
    fn forget_member(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        reason: GoneReason,
        why: &'static str,
    ) {
        let Some(member) = self.members.remove(&addr) else {
            return;
        };
        let count = member.link.unconfirmed_messages();
        if count > 0 {
            self.events.push_back(PeerEvent::Undelivered {
                to: member.record.name.clone(),
                count,
                why,
            });
        }
        self.tombstones.push_back(Tombstone {
            id: member.record.id,
            addr,
            reason,
            at: now,
            my_token: member.link.my_token,
            their_token: member.link.their_token,
            acks: member.link.inbox.acks(),
            last_answer: None,
        });
        self.trim_tombstones(now);
    }

    /// Remembers that `id` is gone, with no pair to answer for.
    fn bury(&mut self, now: Instant, id: u64, addr: Option<SocketAddr>, reason: GoneReason) {
        self.tombstones.push_back(Tombstone {
            id,
            addr: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            reason,
            at: now,
            // No frame carries token 0 that we would answer: nobody was given it.
            my_token: 0,
            their_token: None,
            acks: Acks::default(),
            last_answer: None,
        });
        self.trim_tombstones(now);
    }

    fn trim_tombstones(&mut self, now: Instant) {
        while self.tombstones.len() > TOMBSTONE_LIMIT
            || self
                .tombstones
                .front()
                .is_some_and(|t| now.saturating_duration_since(t.at) >= TOMBSTONE_TTL)
        {
            self.tombstones.pop_front();
        }
    }

    /// Tells the member at `addr` it is no longer a member for us (if its streams are open
    /// enough to know its token).
    fn tell_not_member(&mut self, addr: SocketAddr, reason: GoneReason) {
        let Some(token) = self.members.get(&addr).and_then(|m| m.link.their_token) else {
            return;
        };
        self.send_unsequenced(addr, &Frame::PeerNotMember { token, reason });
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

    /// Sends what the queue lets go at `now` (in the room only): everything the members'
    /// flood limits allow, in order; a queued leave last of all.
    fn release(&mut self, now: Instant) {
        while matches!(self.state, State::InRoom) {
            // Whole milliseconds, as stamped: the members' gates do the same arithmetic.
            let sent_ms = self.clock_ms(now);
            let at = self.clock_origin.0 + Duration::from_millis(sent_ms);
            let Some(typed) = self.typed.pop(at) else {
                return;
            };
            let time_ms = self.wall_ms(now);
            match typed {
                Typed::Chat(text) => {
                    self.events.push_back(PeerEvent::Message {
                        time_ms,
                        from: self.name.clone(),
                        text: display::sanitize(&text).into_owned(),
                        own: true,
                    });
                    let item = Item::Chat {
                        time_ms,
                        sent_ms,
                        text,
                    };
                    let addrs: Vec<SocketAddr> = self.members.keys().copied().collect();
                    for addr in addrs {
                        self.send_message(now, addr, item.clone());
                    }
                }
                Typed::Private { to, name, text } => {
                    if !self.members.contains_key(&to) {
                        self.events.push_back(PeerEvent::NotSent {
                            text: format!("/msg {name} {text}"),
                            why: "they left the room before its turn",
                        });
                        continue;
                    }
                    self.events.push_back(PeerEvent::Private {
                        time_ms,
                        from: self.name.clone(),
                        to: name,
                        text: display::sanitize(&text).into_owned(),
                        own: true,
                    });
                    let item = Item::Private {
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
        let time_ms = self.wall_ms(now);
        let members = self.members(now);
        self.events
            .push_back(PeerEvent::Members { time_ms, members });
    }

    /// Leaves the room: tells every member after everything typed before (repeating until
    /// each confirms, for at most [`LEAVE_TIMEOUT`]) and then closes with
    /// [`PeerCloseReason::Left`]. While joining, the join's outcome is awaited first; lines
    /// still queued are waited for, at most [`QUEUE_DRAIN_LIMIT`].
    pub fn leave(&mut self, now: Instant) {
        self.leave_within(now, QUEUE_DRAIN_LIMIT);
    }

    /// Leaves like [`Peer::leave`], but gives what is queued all the time the flood limits
    /// need to send it (and [`QUEUE_DRAIN_LIMIT`] more): the end of a script's input.
    pub fn leave_after_queue(&mut self, now: Instant) {
        let patience = QUEUE_DRAIN_LIMIT + self.typed.time_to_send_all();
        self.leave_within(now, patience);
    }

    /// Leaves, waiting at most `patience` for what is queued.
    pub fn leave_within(&mut self, now: Instant, patience: Duration) {
        if matches!(self.state, State::Leaving { .. } | State::Closed) || self.leave_queued() {
            return;
        }
        self.typed.finish_with(now, Typed::Leave, patience);
        self.release(now);
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
            self.send_item(now, addr, Item::Leave);
        }
        self.check_left();
    }

    /// Closes once every member we can reach has confirmed everything, the leave included.
    fn check_left(&mut self) {
        if !matches!(self.state, State::Leaving { .. }) {
            return;
        }
        let done = self.members.values().all(|m| {
            m.banned || !m.link.is_open() || (m.link.pending.is_empty() && m.link.outbox.is_empty())
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
                    member.link.outbox.forgive(now, owed);
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
                    let join = Frame::PeerJoin {
                        nonce: attempt.nonce,
                        cookie: attempt.cookie,
                        id: self.id,
                        token: self.join_token,
                        clock_ms: now
                            .saturating_duration_since(self.clock_origin.0)
                            .as_millis() as u64,
                        flood: FloodTerms::from_limit(self.config.flood_limit),
                        name: self.name.clone(),
                    };
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
        if let Some(Backlog { lines, every }) = self.typed.take_notice(now) {
            self.events.push_back(PeerEvent::Queued { lines, every });
        }
        if let Some(unsent) = self.typed.take_expired(now) {
            self.drain_expired(now, unsent);
        }
    }

    fn member_timers(&mut self, now: Instant, addr: SocketAddr) {
        let terms = self.hello_terms(now);
        let timeout = self.config.timeout;
        let heartbeat = self.config.heartbeat_interval();
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        if let Some((when, reason)) = member.doomed
            && now >= when
        {
            return self.remove_member(now, addr, reason, false);
        }
        if member.banned {
            // Neither talked to nor listened to; it goes when the others say it went.
            return;
        }
        if now.saturating_duration_since(member.link.last_heard) >= timeout {
            return self.remove_member(now, addr, GoneReason::TimedOut, true);
        }
        let link = &mut member.link;
        if !link.is_open() && now >= link.next_hello {
            self.say_hello(now, addr);
        } else if link.is_open() && now >= probe_at(link, timeout) {
            // Quiet for half the timeout: its heartbeats may be getting lost. A hello on an
            // open pair asks for an acknowledgement at once, so a few round trips decide
            // before the timeout does; a member is not evicted for two unlucky datagrams.
            link.next_probe = now + timeout / 10;
            let hello = hello_frame(terms, member.record.id, link);
            self.send_unsequenced(addr, &hello);
        }
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        let link = &mut member.link;
        while let Some(due) = link.outbox.poll_due(now) {
            match due {
                Due::Send { seq, item } => {
                    self.stats.retransmissions += 1;
                    let frame = item.frame(link.envelope(seq));
                    link.inbox.ack_sent();
                    link.last_sent = now;
                    self.stats.datagrams_sent += 1;
                    self.transmits.push_back((addr, frame.to_bytes()));
                }
                Due::GaveUp { .. } => {
                    // Unacknowledged through every retry: it is gone, whatever it last said.
                    return self.remove_member(now, addr, GoneReason::TimedOut, true);
                }
            }
        }
        if let Some(at) = link.flood_notice_at
            && now >= at
        {
            link.flood_notice_at = None;
            let dropped = std::mem::take(&mut link.flood_dropped);
            let from = member.record.name.clone();
            let time_ms = self.wall_ms(now);
            self.events.push_back(PeerEvent::FloodDropped {
                time_ms,
                from,
                dropped,
            });
            self.send_item(now, addr, Item::Flooded { dropped });
        }
        self.send_ack_if_due(now, addr);
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        let link = &mut member.link;
        if link.is_open() && now >= link.last_sent + heartbeat {
            // Nothing else went its way for a while: prove we are alive.
            self.send_ack_now(now, addr);
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

    fn member_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Joining(attempt) => Some(attempt.next_deadline(self.contacts.len())),
            State::Closed => None,
            State::Syncing { .. } | State::InRoom | State::Leaving { .. } => {
                let timeout = self.config.timeout;
                let heartbeat = self.config.heartbeat_interval();
                let mut next: Option<Instant> = None;
                let mut consider = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
                for member in self.members.values() {
                    if let Some((when, _)) = member.doomed {
                        consider(when);
                    }
                    if member.banned {
                        continue;
                    }
                    let link = &member.link;
                    consider(link.last_heard + timeout);
                    if link.is_open() {
                        consider(link.last_sent + heartbeat);
                        consider(probe_at(link, timeout));
                        if let Some(due) = link.outbox.next_deadline() {
                            consider(due);
                        }
                        if let Some(due) = link.inbox.ack_deadline() {
                            consider(due);
                        }
                    } else {
                        consider(link.next_hello);
                    }
                    if let Some(at) = link.flood_notice_at {
                        consider(at);
                    }
                }
                if let State::Leaving { deadline } = self.state {
                    consider(deadline);
                }
                if let Some(oldest) = self.tombstones.front() {
                    consider(oldest.at + TOMBSTONE_TTL);
                }
                next
            }
        }
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

    /// Sends a typed message to one member, unless it is banned or hopelessly behind (then
    /// it is reported undelivered).
    fn send_message(&mut self, now: Instant, addr: SocketAddr, item: Item) {
        let Some(member) = self.members.get(&addr) else {
            return;
        };
        if member.banned {
            return;
        }
        if member.link.pending.len() + member.link.outbox.len() >= MAX_UNACKED {
            self.events.push_back(PeerEvent::Undelivered {
                to: member.record.name.clone(),
                count: 1,
                why: "it is too far behind",
            });
            return;
        }
        self.send_item(now, addr, item);
    }

    /// Sends a sequenced item to the member at `addr` if the pair's streams are open, or
    /// keeps it until they are. Nothing goes to a banned member.
    fn send_item(&mut self, now: Instant, addr: SocketAddr, item: Item) {
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        if member.banned {
            return;
        }
        let link = &mut member.link;
        if !link.is_open() {
            link.pending.push_back(item);
            return;
        }
        // Past the cap on items in flight it waits, and goes when the link's timers run.
        let Some(seq) = link.outbox.push(now, item.clone()) else {
            return;
        };
        let frame = item.frame(link.envelope(seq));
        link.inbox.ack_sent();
        link.last_sent = now;
        self.stats.datagrams_sent += 1;
        self.transmits.push_back((addr, frame.to_bytes()));
    }

    fn say_hello(&mut self, now: Instant, addr: SocketAddr) {
        let terms = self.hello_terms(now);
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        if member.banned {
            return;
        }
        let link = &mut member.link;
        let hello = hello_frame(terms, member.record.id, link);
        link.next_hello = now + link.hello_wait;
        // Many tries fit in a timeout, however short it is set: a member we fail to reach
        // in time is evicted (by us).
        let longest = HELLO_MAX_RETRY.min(self.config.timeout / 8);
        link.hello_wait = (link.hello_wait * 2).min(longest);
        self.send_unsequenced(addr, &hello);
    }

    fn send_ack_if_due(&mut self, now: Instant, addr: SocketAddr) {
        let due = self
            .members
            .get(&addr)
            .and_then(|m| m.link.inbox.ack_deadline())
            .is_some_and(|due| due <= now);
        if due {
            self.send_ack_now(now, addr);
        }
    }

    /// Sends our acknowledgements to the member at `addr` at once (if we know its token).
    fn send_ack_now(&mut self, now: Instant, addr: SocketAddr) {
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        let link = &mut member.link;
        let Some(token) = link.their_token else {
            return;
        };
        let ack = Frame::PeerAck {
            token,
            acks: link.inbox.acks(),
        };
        link.inbox.ack_sent();
        link.last_sent = link.last_sent.max(now);
        self.stats.datagrams_sent += 1;
        self.transmits.push_back((addr, ack.to_bytes()));
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

    // Cookies and clocks -------------------------------------------------------------------

    /// The cookie a join from `from` with `nonce` must carry during `period`. Never 0.
    fn cookie(&self, from: SocketAddr, nonce: u64, period: u64) -> u64 {
        self.cookie_key.hash_one((from, nonce, period)).max(1)
    }

    fn cookie_period(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.clock_origin.0).as_secs() / COOKIE_PERIOD.as_secs()
    }

    fn cookie_is_valid(&self, now: Instant, from: SocketAddr, nonce: u64, cookie: u64) -> bool {
        let period = self.cookie_period(now);
        cookie != 0
            && (cookie == self.cookie(from, nonce, period)
                || (period > 0 && cookie == self.cookie(from, nonce, period - 1)))
    }

    /// Wall-clock milliseconds since the Unix epoch at `now`.
    fn wall_ms(&self, now: Instant) -> i64 {
        let (origin, origin_ms) = self.clock_origin;
        let since = now.saturating_duration_since(origin).as_millis();
        origin_ms.saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }
}

/// Whether the member described by `challenger` takes the name from a holder with join
/// time `holder_ms`, address `holder_addr` (`None` only for the peer that started the
/// room, which nobody has seen yet — and whose name nobody can take concurrently, since
/// every member knows it from the start) and incarnation `holder_id`: the earlier join
/// wins; equal times are settled by address, then incarnation, so every peer picks the
/// same winner.
fn wins(
    challenger: &MemberRecord,
    holder_ms: i64,
    holder_addr: Option<SocketAddr>,
    holder_id: u64,
) -> bool {
    let challenger_key = (
        challenger.joined_ms,
        Some(address_order(challenger.addr)),
        challenger.id,
    );
    let holder_key = (holder_ms, holder_addr.map(address_order), holder_id);
    challenger_key < holder_key
}

fn address_order(addr: SocketAddr) -> (IpAddr, u16) {
    (addr.ip().to_canonical(), addr.port())
}

/// When to probe a quiet member: half a timeout after we last heard from it, then every
/// tenth of a timeout.
/// A hello on `link` to the member `to_id`, with our `(id, clock, limit)`.
fn hello_frame(
    (from_id, clock_ms, flood): (u64, u64, FloodTerms),
    to_id: u64,
    link: &Link,
) -> Frame {
    Frame::PeerHello {
        from_id,
        to_id,
        token: link.my_token,
        echo: link.their_token.unwrap_or_default(),
        clock_ms,
        flood,
    }
}

fn probe_at(link: &Link, timeout: Duration) -> Instant {
    (link.last_heard + timeout / 2).max(link.next_probe)
}

/// An IPv4 address and its IPv4-mapped IPv6 form (what a dual-stack socket reports) are
/// one member: every address is kept in its canonical form.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether a member could live at `addr`: a unicast address and a real port. Anything else
/// in a member list is a broken or hostile member's doing.
fn plausible_address(addr: SocketAddr) -> bool {
    let ip = addr.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
}

/// A random number from the operating system (tokens, incarnations, nonces): unguessable
/// by anyone who cannot see the traffic. Should the source fail, the clock's nanoseconds
/// mixed with a counter still keep them apart.
fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
    })
}
