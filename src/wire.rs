//! The wire format: how every protocol message is laid out in one UDP datagram.
//!
//! This module owns the byte layout of frames — encoding a [`Frame`] into bytes and decoding
//! bytes back into a `Frame`, rejecting anything malformed with a typed [`DecodeError`]. It
//! does not own what a frame *means* or when to send one: that is the job of the server and
//! client cores. `PROTOCOL.md` at the repository root describes the same layout for people.
//!
//! Every frame starts with a four-byte header: the magic bytes `0xFF 'I'`, the protocol
//! version, and the frame kind. `0xFF` never occurs in UTF-8 text, so a datagram that starts
//! with it can never be a plain-text line from a guest (see the server's guest mode), and a
//! text line can never be mistaken for a frame. Integers are big-endian ("network order").
//! Strings are UTF-8 with a length prefix: one byte for names, two bytes for texts.
//!
//! Kinds `0xC0..=0xDF` belong to peer mode (`peer`): frames peers exchange directly, with
//! no server. They share the header, the field encodings and the [`Envelope`] of the
//! server's frames, travel in neither of the client–server directions
//! ([`Frame::travels_to_server`] is false, [`Frame::is_peer`] true), and a server ignores
//! them.

use std::fmt;

use crate::proto::flood::FloodLimit;
use crate::proto::reliable::Acks;

/// First two bytes of every frame.
pub const MAGIC: [u8; 2] = [0xFF, b'I'];

/// A [`Frame::Join`] datagram is zero-padded to at least this many bytes. Until an address
/// has proved it receives there (the cookie of a [`Frame::Challenge`]), what the server
/// answers it (a challenge, a refusal) must be far smaller than what it sent, so that a
/// forged join cannot turn the server into an amplifier aimed at someone else's address.
pub const JOIN_MIN_LEN: usize = 512;

/// The protocol version this build speaks. A server refuses a join of any other version.
pub const VERSION: u8 = 3;

/// The frame kinds reserved for peer mode ([`Frame::is_peer`]); other kinds belong to the
/// client–server protocol.
pub const PEER_KINDS: std::ops::RangeInclusive<u8> = 0xC0..=0xDF;

/// Bytes before the body of every frame: magic (2), version (1), kind (1).
pub const HEADER_LEN: usize = 4;

/// The largest datagram either side sends or accepts. 1200 bytes fits in one packet on any
/// path that IPv6 allows (minimum MTU 1280, less IPv6 and UDP headers), so a frame is never
/// fragmented — a lost fragment would lose the whole datagram.
pub const MAX_DATAGRAM: usize = 1200;

/// The most bytes of UTF-8 a name may take on the wire: 32 characters of up to 4 bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// The most bytes of UTF-8 text in one chat message or notice. Chosen so that the largest
/// server-to-client frame, a private message (header 4, envelope 24, timestamp 8, two
/// names of up to 1 + 128, text length 2), stays within [`MAX_DATAGRAM`]: 1200 - 296 = 904;
/// longer typed lines are split into several messages.
pub const MAX_TEXT_BYTES: usize = 900;

/// Why the server refused a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// Another client already uses this name (compared case-insensitively).
    NameTaken,
    /// The name breaks the naming rules (length, characters, reserved word).
    NameInvalid,
    /// The client's address is on the server's ban list.
    Banned,
    /// The server has as many clients as it accepts.
    ServerFull,
    /// The client speaks a protocol version the server does not.
    VersionUnsupported,
    /// Another session is in progress from the same address and port.
    AddressInUse,
    /// The client's IP address already has as many sessions as the server allows one
    /// address.
    TooManyFromAddress,
    /// The client was kicked for flooding a moment ago and may not rejoin yet.
    KickedRecently,
    /// A peer's join reached a server, which takes no part in peer mode (in `PeerRefused`).
    IsAServer,
    /// A client's join reached a peer, which is no server (in `Refused`).
    IsAPeer,
    /// The server is saturated and takes no new joins for now: the client retries (after
    /// [`crate::client::BUSY_RETRY`]), it does not give up.
    Busy,
}

/// Why the server ended a client's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server operator kicked the client.
    Kicked,
    /// The client's address was banned.
    Banned,
    /// The server is shutting down.
    ServerClosing,
    /// The server heard nothing from the client for longer than its timeout.
    TimedOut,
}

/// Why a member is no longer in a peer room (see [`Frame::PeerGone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// The member said it was leaving.
    Left,
    /// Nothing was heard from the member for longer than the timeout.
    TimedOut,
    /// The member joined under a name another member took at the same moment, and gave
    /// way (the earlier join keeps the name).
    NameTaken,
}

/// One member of a peer room, as a peer describes it to another: in the member list a
/// newcomer receives ([`Frame::PeerMembers`]) and in the news of a join
/// ([`Frame::PeerAnnounce`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The member's incarnation: a random number its program chose when it started. Two
    /// runs of one person's program are two members.
    pub id: u64,
    /// When the member joined, in ms since the Unix epoch, stamped by the peer that let it
    /// in. Of two members who took one name at the same moment, the earlier keeps it.
    pub joined_ms: i64,
    /// Where the member receives datagrams, as the describing peer knows it.
    pub addr: std::net::SocketAddr,
    /// The member's name.
    pub name: String,
}

/// The most bytes a [`MemberRecord`] takes on the wire: id (8), time (8), address family
/// (1), IPv6 address (16), port (2), the longest name with its length byte (129).
pub const MAX_MEMBER_RECORD_LEN: usize = 8 + 8 + 1 + 16 + 2 + 1 + MAX_NAME_BYTES;

/// The session fields every frame of the reliable streams carries, right after the header:
/// the session token, the frame's own sequence number in its direction, and the sender's
/// acknowledgements of the other direction. They sit at a fixed place ([`ENVELOPE_RANGE`]) so
/// a broadcast can be encoded once and patched for each recipient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Envelope {
    /// The session's secret, chosen by the server at join (see [`Frame::Welcome`]).
    pub token: u64,
    /// This frame's number in its direction's stream, from 1.
    pub seq: u32,
    /// What the sender has received of the other direction's stream.
    pub acks: Acks,
}

/// Encoded size of an [`Envelope`]: token (8), seq (4), acks.through (4), acks.also (8).
pub const ENVELOPE_LEN: usize = 24;

/// Where the [`Envelope`] sits in every sequenced frame.
pub const ENVELOPE_RANGE: std::ops::Range<usize> = HEADER_LEN..HEADER_LEN + ENVELOPE_LEN;

impl Envelope {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.token.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        put_acks(out, self.acks);
    }

    /// Overwrites the envelope of an encoded sequenced frame, as [`Frame::encode`] would
    /// have written it. `datagram` must be a sequenced frame (at least
    /// [`ENVELOPE_RANGE`]`.end` bytes long).
    pub fn patch(&self, datagram: &mut [u8]) {
        let field = &mut datagram[ENVELOPE_RANGE];
        field[..8].copy_from_slice(&self.token.to_be_bytes());
        field[8..12].copy_from_slice(&self.seq.to_be_bytes());
        field[12..16].copy_from_slice(&self.acks.through.to_be_bytes());
        field[16..24].copy_from_slice(&self.acks.also.to_be_bytes());
    }
}

/// One line of a roster: who, why they are away (empty when they are not), and whether
/// they are a plain-text guest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterEntry {
    /// The registered name.
    pub name: String,
    /// What the person said with `/away` (at most [`MAX_NAME_BYTES`] bytes), or empty.
    pub away: String,
    /// A plain-text guest (shown `(guest)`: a guest may have taken an ordinary name with
    /// `/nick`).
    pub guest: bool,
}

/// What happened to someone's presence in the chat: the typed news of a
/// [`Frame::Presence`], so that clients learn who is online from data, never by reading
/// notice text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// They joined.
    Joined,
    /// They left by saying so.
    Left,
    /// The server heard nothing from them for too long (or they stopped acknowledging).
    TimedOut,
    /// The operator kicked them.
    Kicked,
    /// The server kicked them for flooding on after warnings.
    KickedForFlooding,
    /// Their address was banned.
    Banned,
    /// They are called `to` from now on.
    Renamed { to: String },
    /// They are away, for `reason` (at most [`MAX_NAME_BYTES`] bytes, never empty).
    Away { reason: String },
    /// They are back.
    Back,
}

impl PresenceChange {
    /// Whether the person is no longer online after this change.
    pub fn is_departure(&self) -> bool {
        matches!(
            self,
            PresenceChange::Left
                | PresenceChange::TimedOut
                | PresenceChange::Kicked
                | PresenceChange::KickedForFlooding
                | PresenceChange::Banned
        )
    }
}

/// The flood limit a receiver applies to what one sender sends it, as it tells that sender
/// (in [`Frame::Welcome`], [`Frame::PeerJoin`], [`Frame::PeerWelcome`] and
/// [`Frame::PeerHello`]), so an honest sender can pace itself: on average `rate_milli`
/// thousandths of a message per second, bursts of up to `burst` messages. A zero rate means
/// no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FloodTerms {
    /// Sustained rate, in thousandths of a message per second (5 000: five a second).
    pub rate_milli: u32,
    /// Messages that may go at once after a quiet spell.
    pub burst: u16,
}

/// Encoded size of [`FloodTerms`]: rate (4), burst (2).
pub const FLOOD_TERMS_LEN: usize = 6;

impl FloodTerms {
    /// No limit at all.
    pub const NONE: FloodTerms = FloodTerms {
        rate_milli: 0,
        burst: 0,
    };

    /// The terms of a limit (`None`: no limit). A rate is rounded to a thousandth; a burst
    /// beyond what the field holds is sent as its largest value.
    pub fn from_limit(limit: Option<FloodLimit>) -> FloodTerms {
        let Some(limit) = limit else {
            return FloodTerms::NONE;
        };
        let rate_milli = (limit.rate_per_sec * 1000.0).round();
        FloodTerms {
            // At least one thousandth: a positive rate must not read as "no limit".
            rate_milli: rate_milli.clamp(1.0, f64::from(u32::MAX)) as u32,
            burst: u16::try_from(limit.burst).unwrap_or(u16::MAX),
        }
    }

    /// The limit these terms describe (`None`: no limit).
    pub fn limit(self) -> Option<FloodLimit> {
        FloodLimit::from_options(f64::from(self.rate_milli) / 1000.0, u32::from(self.burst))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rate_milli.to_be_bytes());
        out.extend_from_slice(&self.burst.to_be_bytes());
    }
}

/// One protocol message. Kinds below `0x80` travel from client to server, kinds
/// `0xC0..=0xDF` ([`PEER_KINDS`]) between peers in peer mode, the others from server to
/// client.
///
/// Two streams run in each session, one per direction. Frames carrying an [`Envelope`] are
/// numbered in their stream and delivered exactly once, in order (see `reliable`); the
/// others (joining, heartbeats, bare acknowledgements) stand alone and may be lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Client asks to join under `name`. Sent again until answered, so it must be
    /// idempotent. `nonce` is a random number the answer must repeat, so an off-path
    /// attacker cannot forge the answer. Every version keeps the nonce right after the
    /// header, so a server can refuse a version it does not speak to the right client.
    /// `cookie` is 0 at first; the server answers with a [`Frame::Challenge`], and the
    /// join repeated with that cookie proves the client receives at its address.
    /// `previous_token` is the token of the session this client had before (0 on its first
    /// join): a client coming back after an outage says so, and is told what it may have
    /// missed.
    Join {
        nonce: u64,
        cookie: u64,
        previous_token: u64,
        name: String,
    },
    /// Client sends one chat message to everyone (sequenced). `sent_ms` is when the client
    /// first sent it, in milliseconds of its own clock since the session's welcome arrived:
    /// the flood limit counts by it, so a backlog repeated after a loss is not taken for
    /// a flood. Every flood-limited request carries it.
    Chat {
        envelope: Envelope,
        sent_ms: u64,
        text: String,
    },
    /// Client asks who is online (sequenced).
    ListRequest { envelope: Envelope },
    /// Client leaves the chat (sequenced, so it comes after every message sent before it).
    Leave { envelope: Envelope },
    /// Client is alive; sent when it has sent nothing else for a heartbeat interval. The
    /// server answers with [`Frame::ServerAck`].
    Heartbeat { token: u64, acks: Acks },
    /// Client acknowledges what it received, with nothing else to say.
    ClientAck { token: u64, acks: Acks },
    /// Client sends `text` to the client called `to` only (sequenced; `/msg`).
    Private {
        envelope: Envelope,
        sent_ms: u64,
        to: String,
        text: String,
    },
    /// Client describes what it does, shown as `* alice waves` (sequenced; `/me`).
    Action {
        envelope: Envelope,
        sent_ms: u64,
        text: String,
    },
    /// Client asks to be called `name` from now on (sequenced; `/nick`).
    Nick {
        envelope: Envelope,
        sent_ms: u64,
        name: String,
    },
    /// Client is away for `reason` (at most [`MAX_NAME_BYTES`] bytes), or back when it is
    /// empty (sequenced; `/away`, `/back`).
    Away {
        envelope: Envelope,
        sent_ms: u64,
        reason: String,
    },

    /// Server accepted the join. `name` is the name as registered; `token` must be in every
    /// later frame of the session, both ways; `heartbeat_ms` tells the client how often to
    /// prove it is alive; `flood` is the limit the server applies to the client's messages,
    /// which an honest client paces itself to.
    Welcome {
        nonce: u64,
        token: u64,
        heartbeat_ms: u32,
        flood: FloodTerms,
        name: String,
    },
    /// Server refused the join.
    Refused { nonce: u64, reason: RefuseReason },
    /// Server asks the joining client to repeat its join with `cookie`, a value only
    /// someone receiving at the join's source address can know. Until then the server
    /// keeps no state and sends nothing else, so a join forged with someone else's address
    /// cannot make the server send them anything but this small frame.
    Challenge { nonce: u64, cookie: u64 },
    /// A chat message from `from` (a client's registered name, or `server`), stamped by the
    /// server with its receive time in milliseconds since the Unix epoch (sequenced).
    Message {
        envelope: Envelope,
        time_ms: i64,
        from: String,
        text: String,
    },
    /// Something happened that is not a chat message: a join, a leave, a warning
    /// (sequenced).
    Notice {
        envelope: Envelope,
        time_ms: i64,
        text: String,
    },
    /// Part of the answer to [`Frame::ListRequest`]: `total` clients are online; this frame
    /// carries them from position `offset` on (a long list spans several frames).
    Roster {
        envelope: Envelope,
        time_ms: i64,
        total: u16,
        offset: u16,
        entries: Vec<RosterEntry>,
    },
    /// A private message from `from` to `to`, sent to both of them only (sequenced).
    PrivateMessage {
        envelope: Envelope,
        time_ms: i64,
        from: String,
        to: String,
        text: String,
    },
    /// `/me`: `from` does `text`, shown to everyone as `* from text` (sequenced).
    ActionMessage {
        envelope: Envelope,
        time_ms: i64,
        from: String,
        text: String,
    },
    /// The recipient's own name is now `name` (after its `/nick`) (sequenced).
    Renamed { envelope: Envelope, name: String },
    /// Someone's presence changed: `name` (the name they had until now) joined, left,
    /// timed out, was kicked or banned, was renamed, went away or came back (sequenced).
    Presence {
        envelope: Envelope,
        time_ms: i64,
        name: String,
        change: PresenceChange,
    },
    /// Server ended the session; the client must not send more (but may join again). It is
    /// sequenced, so it comes after everything sent before it, and repeated until
    /// acknowledged.
    Disconnected {
        envelope: Envelope,
        time_ms: i64,
        reason: DisconnectReason,
        text: String,
    },
    /// The client fell so far behind that the server dropped the frames numbered from this
    /// frame's own sequence number to `last`: the client will never get them and says how
    /// many it missed (sequenced).
    Missed { envelope: Envelope, last: u32 },
    /// Server acknowledges what it received: the answer to a heartbeat, or to a sequenced
    /// frame that produced nothing else to send.
    ServerAck { token: u64, acks: Acks },
    /// Server confirms a [`Frame::Leave`] (and so every frame before it): the client can
    /// stop repeating it.
    LeaveAck { token: u64 },
    /// Server asks the client of session `token` whether it is still there: someone wants
    /// its name, and it has been silent for a while. The client answers at once with a
    /// [`Frame::Heartbeat`]; a session that does not is ended (see the server's probe).
    Probe { token: u64 },
    /// Server does not know the session `token` (never joined, or forgotten after a restart
    /// or a timeout). Deliberately tiny: it may go to an address that never proved it is
    /// real; it repeats the token so only the real client believes it.
    NotJoined { token: u64 },

    // Peer mode (`peer`): peers talk to each other directly, each pair over its own two
    // reliable streams. Kinds 0xC0..=0xDF.
    /// A peer asks a member of a room to let it in under `name`: the peer-mode
    /// [`Frame::Join`], padded the same way and answered with [`Frame::PeerChallenge`]
    /// until it carries the member's `cookie`. `id` is the joining program's incarnation;
    /// `token` is the secret the member must put in every frame it sends the newcomer.
    /// `clock_ms` is the joining program's clock (milliseconds since it started) and `flood`
    /// the limit it applies to the member's messages (see [`Frame::PeerHello`]).
    PeerJoin {
        nonce: u64,
        cookie: u64,
        id: u64,
        token: u64,
        clock_ms: u64,
        flood: FloodTerms,
        name: String,
    },
    /// A member asks a joining peer to repeat its join with `cookie`, which only someone
    /// receiving at the join's source address can know.
    PeerChallenge { nonce: u64, cookie: u64 },
    /// A member let the joining peer in. `token` is the secret the newcomer must put in
    /// every frame it sends this member; `your_joined_ms` is the newcomer's join time and
    /// `your_addr` the address it was seen at (how the room will know it); `id`,
    /// `joined_ms` and `name` describe the member that answers, `clock_ms` and `flood` its
    /// clock and limit (see [`Frame::PeerHello`]). The rest of the room follows as
    /// [`Frame::PeerMembers`].
    PeerWelcome {
        nonce: u64,
        token: u64,
        your_joined_ms: i64,
        your_addr: std::net::SocketAddr,
        id: u64,
        joined_ms: i64,
        clock_ms: u64,
        flood: FloodTerms,
        name: String,
    },
    /// A member refused the join (name taken or invalid, address banned, room full).
    PeerRefused { nonce: u64, reason: RefuseReason },
    /// Two members who learned of each other through the room open their pair's streams.
    /// `token` is the secret the receiver must put in the frames it sends back; `echo` is
    /// the receiver's own secret if the sender knows it yet (0 otherwise): echoing it
    /// proves the sender receives at its address. `clock_ms` is the sender's clock
    /// (milliseconds since its program started), against which the receiver reads the
    /// `sent_ms` of the sender's messages; `flood` is the limit the sender applies to the
    /// receiver's messages, which the receiver paces itself to.
    PeerHello {
        from_id: u64,
        to_id: u64,
        token: u64,
        echo: u64,
        clock_ms: u64,
        flood: FloodTerms,
    },
    /// Acknowledgements with nothing else to say; also the heartbeat that keeps a pair
    /// alive when nothing else flows.
    PeerAck { token: u64, acks: Acks },
    /// The sender no longer counts the receiver as a member, for `reason`. Tiny, and it
    /// repeats the receiver's own secret, so only the real member believes it.
    PeerNotMember { token: u64, reason: GoneReason },
    /// A chat message from the sender to everyone, stamped with the sender's wall clock
    /// (`time_ms`, shown) and with when the sender first sent it (`sent_ms`, on the clock
    /// of its hello; the flood limit counts by it) (sequenced).
    PeerChat {
        envelope: Envelope,
        time_ms: i64,
        sent_ms: u64,
        text: String,
    },
    /// A private message from the sender to the receiver only, stamped like
    /// [`Frame::PeerChat`] (sequenced).
    PeerPrivate {
        envelope: Envelope,
        time_ms: i64,
        sent_ms: u64,
        text: String,
    },
    /// Part of the member list a newcomer receives from the member that let it in, that
    /// member and the newcomer excepted; `last` marks the final part (sequenced).
    PeerMembers {
        envelope: Envelope,
        last: bool,
        members: Vec<MemberRecord>,
    },
    /// Someone joined the room (sequenced). Passed on once by every member that learns it.
    PeerAnnounce {
        envelope: Envelope,
        member: MemberRecord,
    },
    /// The member with incarnation `id` is gone (sequenced). Passed on like an announcement.
    PeerGone {
        envelope: Envelope,
        id: u64,
        reason: GoneReason,
    },
    /// The sender leaves the room (sequenced, so it comes after everything sent before it).
    PeerLeave { envelope: Envelope },
    /// The sender dropped `dropped` of the receiver's messages: they came too fast
    /// (sequenced).
    PeerFlooded { envelope: Envelope, dropped: u32 },
}

/// Why a datagram is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The datagram is longer than [`MAX_DATAGRAM`].
    TooLarge { len: usize },
    /// The datagram does not start with [`MAGIC`]: it is not a frame at all.
    NotAFrame,
    /// A frame of a protocol version this build does not speak.
    UnsupportedVersion { version: u8 },
    /// An unknown frame kind.
    UnknownKind { kind: u8 },
    /// The datagram ended in the middle of a field.
    Truncated,
    /// Bytes left over after the last field.
    TrailingBytes { count: usize },
    /// A join that is not padded to [`JOIN_MIN_LEN`] bytes (or padded with non-zero bytes).
    UnpaddedJoin { len: usize },
    /// A string field is not valid UTF-8.
    InvalidUtf8,
    /// A string field is longer than its limit.
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// An enumerated field holds a value this version does not define.
    BadValue { field: &'static str, value: u8 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { len } => {
                write!(f, "datagram of {len} bytes exceeds {MAX_DATAGRAM}")
            }
            DecodeError::NotAFrame => write!(f, "not an icq frame (bad magic bytes)"),
            DecodeError::UnsupportedVersion { version } => {
                write!(
                    f,
                    "protocol version {version} is not supported (this is {VERSION})"
                )
            }
            DecodeError::UnknownKind { kind } => write!(f, "unknown frame kind 0x{kind:02x}"),
            DecodeError::Truncated => write!(f, "truncated frame"),
            DecodeError::TrailingBytes { count } => {
                write!(f, "{count} unexpected bytes after the frame")
            }
            DecodeError::UnpaddedJoin { len } => {
                write!(
                    f,
                    "join of {len} bytes is not zero-padded to {JOIN_MIN_LEN}"
                )
            }
            DecodeError::InvalidUtf8 => write!(f, "text is not valid UTF-8"),
            DecodeError::FieldTooLong { field, len, max } => {
                write!(f, "{field} of {len} bytes exceeds {max}")
            }
            DecodeError::BadValue { field, value } => write!(f, "invalid {field} value {value}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Whether a datagram claims to be a frame (starts with the magic bytes). The server uses
/// this to tell protocol frames from guests' plain-text lines before decoding.
pub fn is_frame(datagram: &[u8]) -> bool {
    datagram.starts_with(&MAGIC)
}

mod kind {
    pub const JOIN: u8 = 0x01;
    pub const CHAT: u8 = 0x02;
    pub const HEARTBEAT: u8 = 0x03;
    pub const LEAVE: u8 = 0x04;
    pub const LIST_REQUEST: u8 = 0x05;
    pub const CLIENT_ACK: u8 = 0x06;
    pub const PRIVATE: u8 = 0x07;
    pub const ACTION: u8 = 0x08;
    pub const NICK: u8 = 0x09;
    pub const AWAY: u8 = 0x0A;
    pub const WELCOME: u8 = 0x81;
    pub const REFUSED: u8 = 0x82;
    pub const MESSAGE: u8 = 0x83;
    pub const NOTICE: u8 = 0x84;
    pub const ROSTER: u8 = 0x85;
    pub const SERVER_ACK: u8 = 0x86;
    pub const LEAVE_ACK: u8 = 0x87;
    pub const DISCONNECTED: u8 = 0x88;
    pub const NOT_JOINED: u8 = 0x89;
    pub const MISSED: u8 = 0x8A;
    pub const CHALLENGE: u8 = 0x8B;
    pub const PRIVATE_MESSAGE: u8 = 0x8C;
    pub const ACTION_MESSAGE: u8 = 0x8D;
    pub const RENAMED: u8 = 0x8E;
    pub const PRESENCE: u8 = 0x8F;
    pub const PROBE: u8 = 0x90;
    // Peer mode: 0xC0..=0xDF.
    pub const PEER_JOIN: u8 = 0xC0;
    pub const PEER_CHALLENGE: u8 = 0xC1;
    pub const PEER_WELCOME: u8 = 0xC2;
    pub const PEER_REFUSED: u8 = 0xC3;
    pub const PEER_HELLO: u8 = 0xC4;
    pub const PEER_ACK: u8 = 0xC5;
    pub const PEER_NOT_MEMBER: u8 = 0xC6;
    pub const PEER_CHAT: u8 = 0xD0;
    pub const PEER_PRIVATE: u8 = 0xD1;
    pub const PEER_MEMBERS: u8 = 0xD2;
    pub const PEER_ANNOUNCE: u8 = 0xD3;
    pub const PEER_GONE: u8 = 0xD4;
    pub const PEER_LEAVE: u8 = 0xD5;
    pub const PEER_FLOODED: u8 = 0xD6;
}

/// The nonce of a join of any protocol version: every version keeps it right after the
/// header, so a server can address a version refusal to the right client.
pub fn any_version_join_nonce(datagram: &[u8]) -> Option<u64> {
    if !is_frame(datagram) || datagram.len() < HEADER_LEN + 8 || datagram[3] != kind::JOIN {
        return None;
    }
    let nonce = datagram[HEADER_LEN..HEADER_LEN + 8].try_into().ok()?;
    Some(u64::from_be_bytes(nonce))
}

/// The nonce of a [`Frame::PeerJoin`] of any protocol version, which keeps it right after
/// the header like [`Frame::Join`]: a peer answers a join of another version with the
/// [`Frame::Refused`] every version reads.
pub fn any_version_peer_join_nonce(datagram: &[u8]) -> Option<u64> {
    if !is_frame(datagram) || datagram.len() < HEADER_LEN + 8 || datagram[3] != kind::PEER_JOIN {
        return None;
    }
    let nonce = datagram[HEADER_LEN..HEADER_LEN + 8].try_into().ok()?;
    Some(u64::from_be_bytes(nonce))
}

/// Decodes a refusal of any protocol version. A [`Frame::Refused`] keeps the same layout in
/// every version (header, nonce, reason), so a client can learn that a server speaks
/// another version instead of waiting for an answer it cannot read.
pub fn any_version_refusal(datagram: &[u8]) -> Option<(u64, RefuseReason)> {
    if !is_frame(datagram) || datagram.len() != HEADER_LEN + 9 || datagram[3] != kind::REFUSED {
        return None;
    }
    let nonce = u64::from_be_bytes(datagram[HEADER_LEN..HEADER_LEN + 8].try_into().ok()?);
    Some((nonce, RefuseReason::from_code(datagram[HEADER_LEN + 8])?))
}

impl RefuseReason {
    fn code(self) -> u8 {
        match self {
            RefuseReason::NameTaken => 1,
            RefuseReason::NameInvalid => 2,
            RefuseReason::Banned => 3,
            RefuseReason::ServerFull => 4,
            RefuseReason::VersionUnsupported => 5,
            RefuseReason::AddressInUse => 6,
            RefuseReason::TooManyFromAddress => 7,
            RefuseReason::KickedRecently => 8,
            RefuseReason::IsAServer => 9,
            RefuseReason::IsAPeer => 10,
            RefuseReason::Busy => 11,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => RefuseReason::NameTaken,
            2 => RefuseReason::NameInvalid,
            3 => RefuseReason::Banned,
            4 => RefuseReason::ServerFull,
            5 => RefuseReason::VersionUnsupported,
            6 => RefuseReason::AddressInUse,
            7 => RefuseReason::TooManyFromAddress,
            8 => RefuseReason::KickedRecently,
            9 => RefuseReason::IsAServer,
            10 => RefuseReason::IsAPeer,
            11 => RefuseReason::Busy,
            _ => return None,
        })
    }
}

impl DisconnectReason {
    fn code(self) -> u8 {
        match self {
            DisconnectReason::Kicked => 1,
            DisconnectReason::Banned => 2,
            DisconnectReason::ServerClosing => 3,
            DisconnectReason::TimedOut => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => DisconnectReason::Kicked,
            2 => DisconnectReason::Banned,
            3 => DisconnectReason::ServerClosing,
            4 => DisconnectReason::TimedOut,
            _ => return None,
        })
    }
}

impl PresenceChange {
    fn code(&self) -> u8 {
        match self {
            PresenceChange::Joined => 1,
            PresenceChange::Left => 2,
            PresenceChange::TimedOut => 3,
            PresenceChange::Kicked => 4,
            PresenceChange::KickedForFlooding => 5,
            PresenceChange::Banned => 6,
            PresenceChange::Renamed { .. } => 7,
            PresenceChange::Away { .. } => 8,
            PresenceChange::Back => 9,
        }
    }

    /// The changes that carry nothing more than their code.
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => PresenceChange::Joined,
            2 => PresenceChange::Left,
            3 => PresenceChange::TimedOut,
            4 => PresenceChange::Kicked,
            5 => PresenceChange::KickedForFlooding,
            6 => PresenceChange::Banned,
            9 => PresenceChange::Back,
            _ => return None,
        })
    }
}

impl GoneReason {
    fn code(self) -> u8 {
        match self {
            GoneReason::Left => 1,
            GoneReason::TimedOut => 2,
            GoneReason::NameTaken => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => GoneReason::Left,
            2 => GoneReason::TimedOut,
            3 => GoneReason::NameTaken,
            _ => return None,
        })
    }
}

impl MemberRecord {
    /// Appends the record: id, join time, address (family 4 or 6, the address, the port),
    /// name.
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.joined_ms.to_be_bytes());
        put_addr(out, self.addr);
        put_name(out, &self.name);
    }

    /// How many bytes [`MemberRecord::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let ip = if self.addr.is_ipv4() { 4 } else { 16 };
        8 + 8 + 1 + ip + 2 + 1 + truncate_to_char_boundary(&self.name, MAX_NAME_BYTES).len()
    }
}

impl Frame {
    /// Whether this kind travels from client to server. A server must never answer a frame
    /// that travels the other way: that frame is either a mistake or a forgery aimed at
    /// making two servers (or a server and itself) answer each other forever. Peer-mode
    /// frames travel between peers, never to a server: false for them too.
    pub fn travels_to_server(&self) -> bool {
        matches!(
            self,
            Frame::Join { .. }
                | Frame::Chat { .. }
                | Frame::ListRequest { .. }
                | Frame::Leave { .. }
                | Frame::Heartbeat { .. }
                | Frame::ClientAck { .. }
                | Frame::Private { .. }
                | Frame::Action { .. }
                | Frame::Nick { .. }
                | Frame::Away { .. }
        )
    }

    /// Whether this is a peer-mode frame (kinds `0xC0..=0xDF`), which only peers exchange.
    pub fn is_peer(&self) -> bool {
        matches!(
            self,
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
                | Frame::PeerFlooded { .. }
        )
    }

    /// The envelope of a sequenced frame; `None` for frames that stand alone.
    pub fn envelope(&self) -> Option<&Envelope> {
        match self {
            Frame::Chat { envelope, .. }
            | Frame::ListRequest { envelope }
            | Frame::Leave { envelope }
            | Frame::Message { envelope, .. }
            | Frame::Notice { envelope, .. }
            | Frame::Roster { envelope, .. }
            | Frame::Disconnected { envelope, .. }
            | Frame::Missed { envelope, .. }
            | Frame::Private { envelope, .. }
            | Frame::Action { envelope, .. }
            | Frame::Nick { envelope, .. }
            | Frame::Away { envelope, .. }
            | Frame::PrivateMessage { envelope, .. }
            | Frame::ActionMessage { envelope, .. }
            | Frame::Renamed { envelope, .. }
            | Frame::Presence { envelope, .. }
            | Frame::PeerChat { envelope, .. }
            | Frame::PeerPrivate { envelope, .. }
            | Frame::PeerMembers { envelope, .. }
            | Frame::PeerAnnounce { envelope, .. }
            | Frame::PeerGone { envelope, .. }
            | Frame::PeerLeave { envelope }
            | Frame::PeerFlooded { envelope, .. } => Some(envelope),
            _ => None,
        }
    }

    /// The session token the frame carries, if any (joins and refusals carry none).
    pub fn token(&self) -> Option<u64> {
        match self {
            Frame::Heartbeat { token, .. }
            | Frame::ClientAck { token, .. }
            | Frame::Welcome { token, .. }
            | Frame::ServerAck { token, .. }
            | Frame::LeaveAck { token }
            | Frame::NotJoined { token }
            | Frame::Probe { token }
            | Frame::PeerAck { token, .. }
            | Frame::PeerNotMember { token, .. } => Some(*token),
            other => other.envelope().map(|e| e.token),
        }
    }

    /// The acknowledgements the frame carries, if any.
    pub fn acks(&self) -> Option<Acks> {
        match self {
            Frame::Heartbeat { acks, .. }
            | Frame::ClientAck { acks, .. }
            | Frame::ServerAck { acks, .. }
            | Frame::PeerAck { acks, .. } => Some(*acks),
            other => other.envelope().map(|e| e.acks),
        }
    }

    /// Appends the encoded frame to `out`.
    ///
    /// The caller keeps names within [`MAX_NAME_BYTES`] and texts within [`MAX_TEXT_BYTES`]
    /// (the cores validate and split before building frames); a longer field is cut at a
    /// character boundary rather than producing a frame the peer would reject.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let frame_start = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        match self {
            Frame::Join {
                nonce,
                cookie,
                previous_token,
                name,
            } => {
                out.push(kind::JOIN);
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(&cookie.to_be_bytes());
                out.extend_from_slice(&previous_token.to_be_bytes());
                put_name(out, name);
                let padded_end = frame_start + JOIN_MIN_LEN;
                if out.len() < padded_end {
                    out.resize(padded_end, 0);
                }
            }
            Frame::Chat {
                envelope,
                sent_ms,
                text,
            } => {
                out.push(kind::CHAT);
                envelope.encode(out);
                out.extend_from_slice(&sent_ms.to_be_bytes());
                put_text(out, text);
            }
            Frame::ListRequest { envelope } => {
                out.push(kind::LIST_REQUEST);
                envelope.encode(out);
            }
            Frame::Leave { envelope } => {
                out.push(kind::LEAVE);
                envelope.encode(out);
            }
            Frame::Heartbeat { token, acks } => {
                out.push(kind::HEARTBEAT);
                out.extend_from_slice(&token.to_be_bytes());
                put_acks(out, *acks);
            }
            Frame::ClientAck { token, acks } => {
                out.push(kind::CLIENT_ACK);
                out.extend_from_slice(&token.to_be_bytes());
                put_acks(out, *acks);
            }
            Frame::Welcome {
                nonce,
                token,
                heartbeat_ms,
                flood,
                name,
            } => {
                out.push(kind::WELCOME);
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(&token.to_be_bytes());
                out.extend_from_slice(&heartbeat_ms.to_be_bytes());
                flood.encode(out);
                put_name(out, name);
            }
            Frame::Refused { nonce, reason } => {
                out.push(kind::REFUSED);
                out.extend_from_slice(&nonce.to_be_bytes());
                out.push(reason.code());
            }
            Frame::Challenge { nonce, cookie } => {
                out.push(kind::CHALLENGE);
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(&cookie.to_be_bytes());
            }
            Frame::Message {
                envelope,
                time_ms,
                from,
                text,
            } => {
                out.push(kind::MESSAGE);
                envelope.encode(out);
                out.extend_from_slice(&time_ms.to_be_bytes());
                put_name(out, from);
                put_text(out, text);
            }
            Frame::Notice {
                envelope,
                time_ms,
                text,
            } => {
                out.push(kind::NOTICE);
                envelope.encode(out);
                out.extend_from_slice(&time_ms.to_be_bytes());
                put_text(out, text);
            }
            Frame::Roster {
                envelope,
                time_ms,
                total,
                offset,
                entries,
            } => {
                out.push(kind::ROSTER);
                envelope.encode(out);
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.extend_from_slice(&total.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                for entry in entries {
                    put_name(out, &entry.name);
                    put_name(out, &entry.away);
                    out.push(u8::from(entry.guest));
                }
            }
            Frame::Disconnected {
                envelope,
                time_ms,
                reason,
                text,
            } => {
                out.push(kind::DISCONNECTED);
                envelope.encode(out);
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.push(reason.code());
                put_text(out, text);
            }
            Frame::Private {
                envelope,
                sent_ms,
                to,
                text,
            } => {
                out.push(kind::PRIVATE);
                envelope.encode(out);
                out.extend_from_slice(&sent_ms.to_be_bytes());
                put_name(out, to);
                put_text(out, text);
            }
            Frame::Action {
                envelope,
                sent_ms,
                text,
            } => {
                out.push(kind::ACTION);
                envelope.encode(out);
                out.extend_from_slice(&sent_ms.to_be_bytes());
                put_text(out, text);
            }
            Frame::Nick {
                envelope,
                sent_ms,
                name,
            } => {
                out.push(kind::NICK);
                envelope.encode(out);
                out.extend_from_slice(&sent_ms.to_be_bytes());
                put_name(out, name);
            }
            Frame::Away {
                envelope,
                sent_ms,
                reason,
            } => {
                out.push(kind::AWAY);
                envelope.encode(out);
                out.extend_from_slice(&sent_ms.to_be_bytes());
                put_name(out, reason);
            }
            Frame::PrivateMessage {
                envelope,
                time_ms,
                from,
                to,
                text,
            } => {
                out.push(kind::PRIVATE_MESSAGE);
                envelope.encode(out);
                out.extend_from_slice(&time_ms.to_be_bytes());
                put_name(out, from);
                put_name(out, to);
                put_text(out, text);
            }
            Frame::ActionMessage {
                envelope,
                time_ms,
                from,
                text,
            } => {
                out.push(kind::ACTION_MESSAGE);
                envelope.encode(out);
                out.extend_from_slice(&time_ms.to_be_bytes());
                put_name(out, from);
                put_text(out, text);
            }
            Frame::Renamed { envelope, name } => {
                out.push(kind::RENAMED);
                envelope.encode(out);
                put_name(out, name);
            }
            Frame::Presence {
                envelope,
                time_ms,
                name,
                change,
            } => {
                out.push(kind::PRESENCE);
                envelope.encode(out);
                out.extend_from_slice(&time_ms.to_be_bytes());
                put_name(out, name);
                out.push(change.code());
                match change {
                    PresenceChange::Renamed { to } => put_name(out, to),
                    PresenceChange::Away { reason } => put_name(out, reason),
                    _ => {}
                }
            }
            Frame::Missed { envelope, last } => {
                out.push(kind::MISSED);
                envelope.encode(out);
                out.extend_from_slice(&last.to_be_bytes());
            }
            Frame::ServerAck { token, acks } => {
                out.push(kind::SERVER_ACK);
                out.extend_from_slice(&token.to_be_bytes());
                put_acks(out, *acks);
            }
            Frame::LeaveAck { token } => {
                out.push(kind::LEAVE_ACK);
                out.extend_from_slice(&token.to_be_bytes());
            }
            Frame::NotJoined { token } => {
                out.push(kind::NOT_JOINED);
                out.extend_from_slice(&token.to_be_bytes());
            }
            Frame::Probe { token } => {
                out.push(kind::PROBE);
                out.extend_from_slice(&token.to_be_bytes());
            }
            Frame::PeerJoin {
                nonce,
                cookie,
                id,
                token,
                clock_ms,
                flood,
                name,
            } => {
                out.push(kind::PEER_JOIN);
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(&cookie.to_be_bytes());
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&token.to_be_bytes());
                out.extend_from_slice(&clock_ms.to_be_bytes());
                flood.encode(out);
                put_name(out, name);
                let padded_end = frame_start + JOIN_MIN_LEN;
                if out.len() < padded_end {
                    out.resize(padded_end, 0);
                }
            }
            Frame::PeerChallenge { nonce, cookie } => {
                out.push(kind::PEER_CHALLENGE);
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(&cookie.to_be_bytes());
            }
            Frame::PeerWelcome {
                nonce,
                token,
                your_joined_ms,
                your_addr,
                id,
                joined_ms,
                clock_ms,
                flood,
                name,
            } => {
                out.push(kind::PEER_WELCOME);
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(&token.to_be_bytes());
                out.extend_from_slice(&your_joined_ms.to_be_bytes());
                put_addr(out, *your_addr);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&joined_ms.to_be_bytes());
                out.extend_from_slice(&clock_ms.to_be_bytes());
                flood.encode(out);
                put_name(out, name);
            }
            Frame::PeerRefused { nonce, reason } => {
                out.push(kind::PEER_REFUSED);
                out.extend_from_slice(&nonce.to_be_bytes());
                out.push(reason.code());
            }
            Frame::PeerHello {
                from_id,
                to_id,
                token,
                echo,
                clock_ms,
                flood,
            } => {
                out.push(kind::PEER_HELLO);
                out.extend_from_slice(&from_id.to_be_bytes());
                out.extend_from_slice(&to_id.to_be_bytes());
                out.extend_from_slice(&token.to_be_bytes());
                out.extend_from_slice(&echo.to_be_bytes());
                out.extend_from_slice(&clock_ms.to_be_bytes());
                flood.encode(out);
            }
            Frame::PeerAck { token, acks } => {
                out.push(kind::PEER_ACK);
                out.extend_from_slice(&token.to_be_bytes());
                put_acks(out, *acks);
            }
            Frame::PeerNotMember { token, reason } => {
                out.push(kind::PEER_NOT_MEMBER);
                out.extend_from_slice(&token.to_be_bytes());
                out.push(reason.code());
            }
            Frame::PeerChat {
                envelope,
                time_ms,
                sent_ms,
                text,
            } => {
                out.push(kind::PEER_CHAT);
                envelope.encode(out);
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.extend_from_slice(&sent_ms.to_be_bytes());
                put_text(out, text);
            }
            Frame::PeerPrivate {
                envelope,
                time_ms,
                sent_ms,
                text,
            } => {
                out.push(kind::PEER_PRIVATE);
                envelope.encode(out);
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.extend_from_slice(&sent_ms.to_be_bytes());
                put_text(out, text);
            }
            Frame::PeerMembers {
                envelope,
                last,
                members,
            } => {
                out.push(kind::PEER_MEMBERS);
                envelope.encode(out);
                out.push(u8::from(*last));
                for member in members {
                    member.encode(out);
                }
            }
            Frame::PeerAnnounce { envelope, member } => {
                out.push(kind::PEER_ANNOUNCE);
                envelope.encode(out);
                member.encode(out);
            }
            Frame::PeerGone {
                envelope,
                id,
                reason,
            } => {
                out.push(kind::PEER_GONE);
                envelope.encode(out);
                out.extend_from_slice(&id.to_be_bytes());
                out.push(reason.code());
            }
            Frame::PeerLeave { envelope } => {
                out.push(kind::PEER_LEAVE);
                envelope.encode(out);
            }
            Frame::PeerFlooded { envelope, dropped } => {
                out.push(kind::PEER_FLOODED);
                envelope.encode(out);
                out.extend_from_slice(&dropped.to_be_bytes());
            }
        }
    }

    /// The encoded frame as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out);
        out
    }

    /// Decodes one datagram. Strict: every field must be complete and within its limit, and
    /// nothing may follow the last field, so a corrupted datagram is rejected rather than
    /// half-understood.
    pub fn decode(datagram: &[u8]) -> Result<Frame, DecodeError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(DecodeError::TooLarge {
                len: datagram.len(),
            });
        }
        if !is_frame(datagram) {
            return Err(DecodeError::NotAFrame);
        }
        let mut r = Reader {
            rest: &datagram[MAGIC.len()..],
        };
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let frame = match r.u8()? {
            kind::JOIN => {
                let nonce = r.u64()?;
                let cookie = r.u64()?;
                let previous_token = r.u64()?;
                let name = r.name()?;
                if datagram.len() < JOIN_MIN_LEN || r.rest.iter().any(|&b| b != 0) {
                    return Err(DecodeError::UnpaddedJoin {
                        len: datagram.len(),
                    });
                }
                r.rest = &[];
                Frame::Join {
                    nonce,
                    cookie,
                    previous_token,
                    name,
                }
            }
            kind::CHAT => Frame::Chat {
                envelope: r.envelope()?,
                sent_ms: r.u64()?,
                text: r.text()?,
            },
            kind::LIST_REQUEST => Frame::ListRequest {
                envelope: r.envelope()?,
            },
            kind::LEAVE => Frame::Leave {
                envelope: r.envelope()?,
            },
            kind::HEARTBEAT => Frame::Heartbeat {
                token: r.u64()?,
                acks: r.acks()?,
            },
            kind::CLIENT_ACK => Frame::ClientAck {
                token: r.u64()?,
                acks: r.acks()?,
            },
            kind::WELCOME => Frame::Welcome {
                nonce: r.u64()?,
                token: r.u64()?,
                heartbeat_ms: r.u32()?,
                flood: r.flood_terms()?,
                name: r.name()?,
            },
            kind::REFUSED => {
                let nonce = r.u64()?;
                let code = r.u8()?;
                Frame::Refused {
                    nonce,
                    reason: RefuseReason::from_code(code).ok_or(DecodeError::BadValue {
                        field: "refuse reason",
                        value: code,
                    })?,
                }
            }
            kind::MESSAGE => Frame::Message {
                envelope: r.envelope()?,
                time_ms: r.i64()?,
                from: r.name()?,
                text: r.text()?,
            },
            kind::NOTICE => Frame::Notice {
                envelope: r.envelope()?,
                time_ms: r.i64()?,
                text: r.text()?,
            },
            kind::ROSTER => {
                let envelope = r.envelope()?;
                let time_ms = r.i64()?;
                let total = r.u16()?;
                let offset = r.u16()?;
                let mut entries = Vec::new();
                while !r.rest.is_empty() {
                    let name = r.name()?;
                    let away = r.name()?;
                    let flags = r.u8()?;
                    if flags > 1 {
                        return Err(DecodeError::BadValue {
                            field: "roster entry flags",
                            value: flags,
                        });
                    }
                    entries.push(RosterEntry {
                        name,
                        away,
                        guest: flags == 1,
                    });
                }
                Frame::Roster {
                    envelope,
                    time_ms,
                    total,
                    offset,
                    entries,
                }
            }
            kind::DISCONNECTED => {
                let envelope = r.envelope()?;
                let time_ms = r.i64()?;
                let code = r.u8()?;
                let reason = DisconnectReason::from_code(code).ok_or(DecodeError::BadValue {
                    field: "disconnect reason",
                    value: code,
                })?;
                Frame::Disconnected {
                    envelope,
                    time_ms,
                    reason,
                    text: r.text()?,
                }
            }
            kind::PRIVATE => Frame::Private {
                envelope: r.envelope()?,
                sent_ms: r.u64()?,
                to: r.name()?,
                text: r.text()?,
            },
            kind::ACTION => Frame::Action {
                envelope: r.envelope()?,
                sent_ms: r.u64()?,
                text: r.text()?,
            },
            kind::NICK => Frame::Nick {
                envelope: r.envelope()?,
                sent_ms: r.u64()?,
                name: r.name()?,
            },
            kind::AWAY => Frame::Away {
                envelope: r.envelope()?,
                sent_ms: r.u64()?,
                reason: r.name()?,
            },
            kind::PRIVATE_MESSAGE => Frame::PrivateMessage {
                envelope: r.envelope()?,
                time_ms: r.i64()?,
                from: r.name()?,
                to: r.name()?,
                text: r.text()?,
            },
            kind::ACTION_MESSAGE => Frame::ActionMessage {
                envelope: r.envelope()?,
                time_ms: r.i64()?,
                from: r.name()?,
                text: r.text()?,
            },
            kind::RENAMED => Frame::Renamed {
                envelope: r.envelope()?,
                name: r.name()?,
            },
            kind::PRESENCE => {
                let envelope = r.envelope()?;
                let time_ms = r.i64()?;
                let name = r.name()?;
                let code = r.u8()?;
                let change = match code {
                    7 => PresenceChange::Renamed { to: r.name()? },
                    8 => PresenceChange::Away { reason: r.name()? },
                    _ => PresenceChange::from_code(code).ok_or(DecodeError::BadValue {
                        field: "presence change",
                        value: code,
                    })?,
                };
                Frame::Presence {
                    envelope,
                    time_ms,
                    name,
                    change,
                }
            }
            kind::CHALLENGE => Frame::Challenge {
                nonce: r.u64()?,
                cookie: r.u64()?,
            },
            kind::MISSED => Frame::Missed {
                envelope: r.envelope()?,
                last: r.u32()?,
            },
            kind::SERVER_ACK => Frame::ServerAck {
                token: r.u64()?,
                acks: r.acks()?,
            },
            kind::LEAVE_ACK => Frame::LeaveAck { token: r.u64()? },
            kind::NOT_JOINED => Frame::NotJoined { token: r.u64()? },
            kind::PROBE => Frame::Probe { token: r.u64()? },
            kind::PEER_JOIN => {
                let nonce = r.u64()?;
                let cookie = r.u64()?;
                let id = r.u64()?;
                let token = r.u64()?;
                let clock_ms = r.u64()?;
                let flood = r.flood_terms()?;
                let name = r.name()?;
                if datagram.len() < JOIN_MIN_LEN || r.rest.iter().any(|&b| b != 0) {
                    return Err(DecodeError::UnpaddedJoin {
                        len: datagram.len(),
                    });
                }
                r.rest = &[];
                Frame::PeerJoin {
                    nonce,
                    cookie,
                    id,
                    token,
                    clock_ms,
                    flood,
                    name,
                }
            }
            kind::PEER_CHALLENGE => Frame::PeerChallenge {
                nonce: r.u64()?,
                cookie: r.u64()?,
            },
            kind::PEER_WELCOME => Frame::PeerWelcome {
                nonce: r.u64()?,
                token: r.u64()?,
                your_joined_ms: r.i64()?,
                your_addr: r.addr()?,
                id: r.u64()?,
                joined_ms: r.i64()?,
                clock_ms: r.u64()?,
                flood: r.flood_terms()?,
                name: r.name()?,
            },
            kind::PEER_REFUSED => {
                let nonce = r.u64()?;
                let code = r.u8()?;
                Frame::PeerRefused {
                    nonce,
                    reason: RefuseReason::from_code(code).ok_or(DecodeError::BadValue {
                        field: "refuse reason",
                        value: code,
                    })?,
                }
            }
            kind::PEER_HELLO => Frame::PeerHello {
                from_id: r.u64()?,
                to_id: r.u64()?,
                token: r.u64()?,
                echo: r.u64()?,
                clock_ms: r.u64()?,
                flood: r.flood_terms()?,
            },
            kind::PEER_ACK => Frame::PeerAck {
                token: r.u64()?,
                acks: r.acks()?,
            },
            kind::PEER_NOT_MEMBER => Frame::PeerNotMember {
                token: r.u64()?,
                reason: r.gone_reason()?,
            },
            kind::PEER_CHAT => Frame::PeerChat {
                envelope: r.envelope()?,
                time_ms: r.i64()?,
                sent_ms: r.u64()?,
                text: r.text()?,
            },
            kind::PEER_PRIVATE => Frame::PeerPrivate {
                envelope: r.envelope()?,
                time_ms: r.i64()?,
                sent_ms: r.u64()?,
                text: r.text()?,
            },
            kind::PEER_MEMBERS => {
                let envelope = r.envelope()?;
                let last = match r.u8()? {
                    0 => false,
                    1 => true,
                    value => {
                        return Err(DecodeError::BadValue {
                            field: "last-part flag",
                            value,
                        });
                    }
                };
                let mut members = Vec::new();
                while !r.rest.is_empty() {
                    members.push(r.member()?);
                }
                Frame::PeerMembers {
                    envelope,
                    last,
                    members,
                }
            }
            kind::PEER_ANNOUNCE => Frame::PeerAnnounce {
                envelope: r.envelope()?,
                member: r.member()?,
            },
            kind::PEER_GONE => Frame::PeerGone {
                envelope: r.envelope()?,
                id: r.u64()?,
                reason: r.gone_reason()?,
            },
            kind::PEER_LEAVE => Frame::PeerLeave {
                envelope: r.envelope()?,
            },
            kind::PEER_FLOODED => Frame::PeerFlooded {
                envelope: r.envelope()?,
                dropped: r.u32()?,
            },
            other => return Err(DecodeError::UnknownKind { kind: other }),
        };
        if !r.rest.is_empty() {
            return Err(DecodeError::TrailingBytes {
                count: r.rest.len(),
            });
        }
        Ok(frame)
    }
}

/// The longest prefix of `s` that fits in `max` bytes without splitting a character.
pub fn truncate_to_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Splits `text` into pieces of at most [`MAX_TEXT_BYTES`] bytes each, on character
/// boundaries, so a long typed line becomes several messages instead of an oversized frame.
/// An empty text gives no pieces.
pub fn split_text(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let piece = truncate_to_char_boundary(rest, MAX_TEXT_BYTES);
        rest = &rest[piece.len()..];
        Some(piece)
    })
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    let name = truncate_to_char_boundary(name, MAX_NAME_BYTES);
    // MAX_NAME_BYTES < 256, so the length fits the one-byte prefix.
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

/// An address: family (4 or 6), the 4 or 16 bytes of the IP address, the port.
fn put_addr(out: &mut Vec<u8>, addr: std::net::SocketAddr) {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        std::net::IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

fn put_acks(out: &mut Vec<u8>, acks: Acks) {
    out.extend_from_slice(&acks.through.to_be_bytes());
    out.extend_from_slice(&acks.also.to_be_bytes());
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let text = truncate_to_char_boundary(text, MAX_TEXT_BYTES);
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A cursor over the bytes not yet decoded. Every read checks the length first, so a
/// truncated datagram yields [`DecodeError::Truncated`] instead of a panic.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn acks(&mut self) -> Result<Acks, DecodeError> {
        Ok(Acks {
            through: self.u32()?,
            also: self.u64()?,
        })
    }

    fn envelope(&mut self) -> Result<Envelope, DecodeError> {
        Ok(Envelope {
            token: self.u64()?,
            seq: self.u32()?,
            acks: self.acks()?,
        })
    }

    fn string(
        &mut self,
        len: usize,
        field: &'static str,
        max: usize,
    ) -> Result<String, DecodeError> {
        if len > max {
            return Err(DecodeError::FieldTooLong { field, len, max });
        }
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        Ok(text.to_owned())
    }

    fn flood_terms(&mut self) -> Result<FloodTerms, DecodeError> {
        Ok(FloodTerms {
            rate_milli: self.u32()?,
            burst: self.u16()?,
        })
    }

    fn name(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u8()?);
        self.string(len, "name", MAX_NAME_BYTES)
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u16()?);
        self.string(len, "text", MAX_TEXT_BYTES)
    }

    fn gone_reason(&mut self) -> Result<GoneReason, DecodeError> {
        let code = self.u8()?;
        GoneReason::from_code(code).ok_or(DecodeError::BadValue {
            field: "gone reason",
            value: code,
        })
    }

    fn addr(&mut self) -> Result<std::net::SocketAddr, DecodeError> {
        let ip = match self.u8()? {
            4 => std::net::IpAddr::from(self.array::<4>()?),
            6 => std::net::IpAddr::from(self.array::<16>()?),
            value => {
                return Err(DecodeError::BadValue {
                    field: "address family",
                    value,
                });
            }
        };
        Ok(std::net::SocketAddr::new(ip, self.u16()?))
    }

    fn member(&mut self) -> Result<MemberRecord, DecodeError> {
        Ok(MemberRecord {
            id: self.u64()?,
            joined_ms: self.i64()?,
            addr: self.addr()?,
            name: self.name()?,
        })
    }
}

#[cfg(test)]
#[path = "wire/golden.rs"]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            token: 0x0123_4567_89AB_CDEF,
            seq: 7,
            acks: Acks {
                through: 3,
                also: 0b101,
            },
        }
    }

    fn every_kind() -> Vec<Frame> {
        let envelope = envelope();
        let acks = envelope.acks;
        vec![
            Frame::Join {
                nonce: 42,
                cookie: 0,
                previous_token: 0,
                name: "alice".into(),
            },
            Frame::Join {
                nonce: 42,
                cookie: u64::MAX,
                previous_token: 0x0BAD_CAFE,
                name: "alice".into(),
            },
            Frame::Challenge {
                nonce: 42,
                cookie: 0xDEAD_BEEF,
            },
            Frame::Chat {
                envelope,
                sent_ms: 1234,
                text: "héllo wörld 日本 🎉".into(),
            },
            Frame::ListRequest { envelope },
            Frame::Leave { envelope },
            Frame::Heartbeat { token: 9, acks },
            Frame::ClientAck { token: 9, acks },
            Frame::Welcome {
                nonce: 42,
                token: u64::MAX,
                heartbeat_ms: 10_000,
                flood: FloodTerms {
                    rate_milli: 5000,
                    burst: 10,
                },
                name: "Alice".into(),
            },
            Frame::Refused {
                nonce: 42,
                reason: RefuseReason::NameTaken,
            },
            Frame::Refused {
                nonce: 0,
                reason: RefuseReason::VersionUnsupported,
            },
            Frame::Refused {
                nonce: 1,
                reason: RefuseReason::AddressInUse,
            },
            Frame::Message {
                envelope,
                time_ms: 1_764_000_000_123,
                from: "bob".into(),
                text: "hi".into(),
            },
            Frame::Notice {
                envelope,
                time_ms: -5,
                text: "bob joined".into(),
            },
            Frame::Roster {
                envelope,
                time_ms: 7,
                total: 3,
                offset: 0,
                entries: vec![
                    RosterEntry {
                        name: "a".into(),
                        away: String::new(),
                        guest: false,
                    },
                    RosterEntry {
                        name: "bb".into(),
                        away: "lunch 🍜".into(),
                        guest: true,
                    },
                ],
            },
            Frame::Private {
                envelope,
                sent_ms: 1,
                to: "bob".into(),
                text: "psst".into(),
            },
            Frame::Action {
                envelope,
                sent_ms: 2,
                text: "waves".into(),
            },
            Frame::Nick {
                envelope,
                sent_ms: 3,
                name: "alicia".into(),
            },
            Frame::Away {
                envelope,
                sent_ms: u64::MAX,
                reason: String::new(),
            },
            Frame::PrivateMessage {
                envelope,
                time_ms: 3,
                from: "alice".into(),
                to: "bob".into(),
                text: "psst".into(),
            },
            Frame::ActionMessage {
                envelope,
                time_ms: 3,
                from: "alice".into(),
                text: "waves".into(),
            },
            Frame::Renamed {
                envelope,
                name: "alicia".into(),
            },
            Frame::Presence {
                envelope,
                time_ms: 4,
                name: "bob".into(),
                change: PresenceChange::KickedForFlooding,
            },
            Frame::Presence {
                envelope,
                time_ms: 4,
                name: "bob".into(),
                change: PresenceChange::Renamed {
                    to: "robert".into(),
                },
            },
            Frame::Presence {
                envelope,
                time_ms: 4,
                name: "zoë".into(),
                change: PresenceChange::Away {
                    reason: "lunch 🍜".into(),
                },
            },
            Frame::Roster {
                envelope,
                time_ms: 7,
                total: 0,
                offset: 0,
                entries: vec![],
            },
            Frame::Disconnected {
                envelope,
                time_ms: 9,
                reason: DisconnectReason::Kicked,
                text: "bye".into(),
            },
            Frame::Missed { envelope, last: 99 },
            Frame::ServerAck { token: 9, acks },
            Frame::LeaveAck { token: 9 },
            Frame::NotJoined { token: 9 },
            Frame::Probe { token: 9 },
            Frame::PeerJoin {
                nonce: 42,
                cookie: 0,
                id: 11,
                token: 12,
                clock_ms: 99,
                flood: FloodTerms::NONE,
                name: "dave".into(),
            },
            Frame::PeerChallenge {
                nonce: 42,
                cookie: 0xBEEF,
            },
            Frame::PeerWelcome {
                nonce: 42,
                token: 13,
                your_joined_ms: 1_764_000_000_000,
                your_addr: "[::1]:4000".parse().expect("an address"),
                id: 14,
                joined_ms: -1,
                clock_ms: 7,
                flood: FloodTerms {
                    rate_milli: 500,
                    burst: 3,
                },
                name: "alice".into(),
            },
            Frame::PeerRefused {
                nonce: 42,
                reason: RefuseReason::NameTaken,
            },
            Frame::PeerHello {
                from_id: 1,
                to_id: 2,
                token: 3,
                echo: 0,
                clock_ms: 1_000_000,
                flood: FloodTerms {
                    rate_milli: 5000,
                    burst: 10,
                },
            },
            Frame::PeerAck { token: 9, acks },
            Frame::PeerNotMember {
                token: 9,
                reason: GoneReason::TimedOut,
            },
            Frame::PeerChat {
                envelope,
                time_ms: 5,
                sent_ms: 4,
                text: "salut 🎉".into(),
            },
            Frame::PeerPrivate {
                envelope,
                time_ms: 6,
                sent_ms: 5,
                text: "psst".into(),
            },
            Frame::PeerMembers {
                envelope,
                last: true,
                members: vec![member("bob", "127.0.0.1:5000"), member("zoë", "[::1]:6000")],
            },
            Frame::PeerMembers {
                envelope,
                last: false,
                members: vec![],
            },
            Frame::PeerAnnounce {
                envelope,
                member: member("carol", "10.0.0.1:4000"),
            },
            Frame::PeerGone {
                envelope,
                id: 77,
                reason: GoneReason::NameTaken,
            },
            Frame::PeerLeave { envelope },
            Frame::PeerFlooded {
                envelope,
                dropped: 3,
            },
        ]
    }

    fn member(name: &str, addr: &str) -> MemberRecord {
        MemberRecord {
            id: 0xFEED_0000 + name.len() as u64,
            joined_ms: 1_764_000_000_000,
            addr: addr.parse().expect("an address"),
            name: name.into(),
        }
    }

    #[test]
    fn every_kind_round_trips() {
        for frame in every_kind() {
            let bytes = frame.to_bytes();
            assert!(bytes.len() <= MAX_DATAGRAM);
            assert_eq!(Frame::decode(&bytes), Ok(frame));
        }
    }

    #[test]
    fn direction_token_and_acks_are_reported() {
        for frame in every_kind() {
            let kind = frame.to_bytes()[3];
            assert_eq!(frame.travels_to_server(), kind < 0x80, "{frame:?}");
            assert_eq!(frame.is_peer(), PEER_KINDS.contains(&kind), "{frame:?}");
            if frame.envelope().is_some() {
                assert_eq!(frame.token(), Some(envelope().token));
                assert_eq!(frame.acks(), Some(envelope().acks));
            }
        }
    }

    #[test]
    fn header_layout_is_as_documented() {
        let frame = Frame::Chat {
            envelope: Envelope {
                token: 0x0102_0304_0506_0708,
                seq: 0x0A0B_0C0D,
                acks: Acks {
                    through: 0x1112_1314,
                    also: 0x2122_2324_2526_2728,
                },
            },
            sent_ms: 0x3132_3334_3536_3738,
            text: "hi".into(),
        };
        let bytes = frame.to_bytes();
        #[rustfmt::skip]
        let expected = [
            0xFF, b'I', VERSION, 0x02,
            1, 2, 3, 4, 5, 6, 7, 8,
            0x0A, 0x0B, 0x0C, 0x0D,
            0x11, 0x12, 0x13, 0x14,
            0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
            0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38,
            0, 2, b'h', b'i',
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn patching_an_envelope_equals_encoding_with_it() {
        let with = |envelope| Frame::Message {
            envelope,
            time_ms: 5,
            from: "bob".into(),
            text: "hi".into(),
        };
        let mut bytes = with(Envelope::default()).to_bytes();
        envelope().patch(&mut bytes);
        assert_eq!(bytes, with(envelope()).to_bytes());
    }

    #[test]
    fn version_refusal_is_readable_by_any_version() {
        let join = Frame::Join {
            nonce: 77,
            cookie: 0,
            previous_token: 0,
            name: "al".into(),
        }
        .to_bytes();
        let mut foreign = join.clone();
        foreign[2] = VERSION + 1;
        assert_eq!(any_version_join_nonce(&foreign), Some(77));
        let refusal = Frame::Refused {
            nonce: 77,
            reason: RefuseReason::VersionUnsupported,
        }
        .to_bytes();
        let mut foreign = refusal.clone();
        foreign[2] = VERSION + 1;
        assert_eq!(
            any_version_refusal(&foreign),
            Some((77, RefuseReason::VersionUnsupported))
        );
        assert_eq!(any_version_join_nonce(&refusal), None);
        assert_eq!(any_version_refusal(&join), None);
    }

    #[test]
    fn every_truncation_is_rejected_without_panic() {
        for frame in every_kind() {
            let bytes = frame.to_bytes();
            for len in 0..bytes.len() {
                let result = Frame::decode(&bytes[..len]);
                // A roster cut exactly between names is still a valid (shorter) roster, and
                // so is a member list cut between members.
                if let Ok(Frame::Roster { .. } | Frame::PeerMembers { .. }) = result {
                    continue;
                }
                assert!(result.is_err(), "{frame:?} cut to {len} bytes decoded");
            }
        }
    }

    #[test]
    fn join_is_padded_and_unpadded_joins_are_rejected() {
        let bytes = Frame::Join {
            nonce: 0x0102_0304_0506_0708,
            cookie: 0x1112_1314_1516_1718,
            previous_token: 0x2122_2324_2526_2728,
            name: "al".into(),
        }
        .to_bytes();
        assert_eq!(bytes.len(), JOIN_MIN_LEN);
        #[rustfmt::skip]
        let expected = [
            0xFF, b'I', VERSION, 0x01,
            1, 2, 3, 4, 5, 6, 7, 8,
            0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
            0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
            2, b'a', b'l',
        ];
        assert_eq!(&bytes[..31], &expected);
        assert!(bytes[31..].iter().all(|&b| b == 0));
        let mut dirty = bytes.clone();
        dirty[100] = 1;
        assert_eq!(
            Frame::decode(&dirty),
            Err(DecodeError::UnpaddedJoin { len: JOIN_MIN_LEN })
        );
        assert_eq!(
            Frame::decode(&bytes[..31]),
            Err(DecodeError::UnpaddedJoin { len: 31 })
        );
    }

    #[test]
    fn peer_join_is_padded_and_its_nonce_readable_in_any_version() {
        let join = Frame::PeerJoin {
            nonce: 0x0102_0304_0506_0708,
            cookie: 0,
            id: 1,
            token: 2,
            clock_ms: 3,
            flood: FloodTerms::NONE,
            name: "dave".into(),
        };
        let mut bytes = join.to_bytes();
        assert_eq!(bytes.len(), JOIN_MIN_LEN);
        assert_eq!(&bytes[..4], &[0xFF, b'I', VERSION, 0xC0]);
        bytes[2] = VERSION + 1;
        assert_eq!(
            any_version_peer_join_nonce(&bytes),
            Some(0x0102_0304_0506_0708)
        );
        assert_eq!(any_version_join_nonce(&bytes), None);
        let mut dirty = join.to_bytes();
        dirty[JOIN_MIN_LEN - 1] = 1;
        assert_eq!(
            Frame::decode(&dirty),
            Err(DecodeError::UnpaddedJoin { len: JOIN_MIN_LEN })
        );
    }

    #[test]
    fn largest_member_list_part_fits_in_a_datagram() {
        let longest = MemberRecord {
            id: u64::MAX,
            joined_ms: i64::MIN,
            addr: "[ffff::1]:65535".parse().expect("an address"),
            name: "é".repeat(MAX_NAME_BYTES / 2),
        };
        let mut record = Vec::new();
        longest.encode(&mut record);
        assert_eq!(record.len(), MAX_MEMBER_RECORD_LEN);
        assert_eq!(longest.encoded_len(), MAX_MEMBER_RECORD_LEN);
        let fixed = HEADER_LEN + ENVELOPE_LEN + 1;
        let per_part = (MAX_DATAGRAM - fixed) / MAX_MEMBER_RECORD_LEN;
        let frame = Frame::PeerMembers {
            envelope: envelope(),
            last: true,
            members: vec![longest; per_part],
        };
        let bytes = frame.to_bytes();
        assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
        assert_eq!(Frame::decode(&bytes), Ok(frame));
    }

    #[test]
    fn peer_reason_codes_and_flags_outside_the_tables_are_rejected() {
        let gone = Frame::PeerNotMember {
            token: 1,
            reason: GoneReason::Left,
        };
        let mut bytes = gone.to_bytes();
        *bytes.last_mut().expect("not empty") = 9;
        assert_eq!(
            Frame::decode(&bytes),
            Err(DecodeError::BadValue {
                field: "gone reason",
                value: 9
            })
        );
        let mut members = Frame::PeerMembers {
            envelope: envelope(),
            last: true,
            members: vec![member("bob", "127.0.0.1:1")],
        }
        .to_bytes();
        members[HEADER_LEN + ENVELOPE_LEN] = 2;
        assert!(matches!(
            Frame::decode(&members),
            Err(DecodeError::BadValue { value: 2, .. })
        ));
        members[HEADER_LEN + ENVELOPE_LEN] = 1;
        members[HEADER_LEN + ENVELOPE_LEN + 1 + 16] = 5; // address family
        assert!(matches!(
            Frame::decode(&members),
            Err(DecodeError::BadValue {
                field: "address family",
                value: 5
            })
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = Frame::LeaveAck { token: 1 }.to_bytes();
        bytes.push(0);
        assert_eq!(
            Frame::decode(&bytes),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn plain_text_is_not_a_frame() {
        assert!(!is_frame(b"hello\n"));
        assert_eq!(Frame::decode(b"hello"), Err(DecodeError::NotAFrame));
        assert_eq!(Frame::decode(b""), Err(DecodeError::NotAFrame));
    }

    #[test]
    fn other_versions_and_kinds_are_rejected() {
        assert_eq!(
            Frame::decode(&[0xFF, b'I', 1, 0x01]),
            Err(DecodeError::UnsupportedVersion { version: 1 })
        );
        assert_eq!(
            Frame::decode(&[0xFF, b'I', VERSION, 0x7E]),
            Err(DecodeError::UnknownKind { kind: 0x7E })
        );
        assert_eq!(
            Frame::decode(&[
                0xFF,
                b'I',
                VERSION,
                kind::REFUSED,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                99
            ]),
            Err(DecodeError::BadValue {
                field: "refuse reason",
                value: 99
            })
        );
    }

    #[test]
    fn invalid_utf8_and_oversized_fields_are_rejected() {
        let join_header = [&[0xFF, b'I', VERSION, kind::JOIN][..], &[0; 24]].concat();
        assert_eq!(
            Frame::decode(&[&join_header[..], &[2, 0xC3, 0x28]].concat()),
            Err(DecodeError::InvalidUtf8)
        );
        let mut long_name = [&join_header[..], &[200]].concat();
        long_name.extend(std::iter::repeat_n(b'a', 200));
        assert_eq!(
            Frame::decode(&long_name),
            Err(DecodeError::FieldTooLong {
                field: "name",
                len: 200,
                max: MAX_NAME_BYTES
            })
        );
        let huge = vec![0xFF; MAX_DATAGRAM + 1];
        assert_eq!(
            Frame::decode(&huge),
            Err(DecodeError::TooLarge {
                len: MAX_DATAGRAM + 1
            })
        );
    }

    #[test]
    fn largest_message_fits_in_a_datagram() {
        let frame = Frame::Message {
            envelope: envelope(),
            time_ms: i64::MAX,
            from: "é".repeat(MAX_NAME_BYTES / 2),
            text: "x".repeat(MAX_TEXT_BYTES),
        };
        let bytes = frame.to_bytes();
        assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
        assert_eq!(Frame::decode(&bytes), Ok(frame));
    }

    #[test]
    fn split_text_respects_limit_and_characters() {
        let text = "é".repeat(MAX_TEXT_BYTES); // 2 bytes each: 1800 bytes
        let pieces: Vec<&str> = split_text(&text).collect();
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| p.len() <= MAX_TEXT_BYTES));
        assert_eq!(pieces.concat(), text);

        let emoji = "🎉".repeat(226); // 4 bytes each: 904 bytes, boundary not at 900
        let pieces: Vec<&str> = split_text(&emoji).collect();
        assert_eq!(pieces[0].len(), 900);
        assert_eq!(pieces[1], "🎉");
        assert_eq!(split_text("").count(), 0);
    }

    #[test]
    fn oversized_fields_are_cut_on_encode_not_rejected_by_peer() {
        let frame = Frame::Chat {
            envelope: envelope(),
            sent_ms: 0,
            text: "ü".repeat(MAX_TEXT_BYTES),
        };
        let decoded = Frame::decode(&frame.to_bytes()).expect("decodes");
        let Frame::Chat { text, .. } = decoded else {
            panic!("wrong kind")
        };
        assert_eq!(text.len(), MAX_TEXT_BYTES);
    }
}
