//! The frames peers exchange in peer mode, with no server (kinds `0xC0..=0xDF`,
//! [`super::PEER_KINDS`]): [`PeerFrame`] (joining a room, opening a pair, bare
//! acknowledgements) and the [`PeerItem`]s of each pair's two reliable streams, as one
//! table (see `table`), with the field types only they carry ([`MemberRecord`],
//! addresses; the one-byte codes are `codes`'). They share the header, the field
//! encodings and the envelope of the client–server frames. This module owns their layout;
//! the rules of peer mode belong to `peer`.

use std::net::{IpAddr, SocketAddr};

use super::table::{Codec, Name, PaddedName, Text, frames, record_codec};
use super::{
    Acks, DecodeError, FloodTerms, GoneReason, HistoryEntry, MAX_NAME_BYTES, PEER_JOIN_KIND,
    Reader, RefuseReason, Writer,
};

/// One member of a peer room, as a peer describes it to another: in the member list a
/// newcomer receives ([`PeerItem::Members`]) and in the news of a join
/// ([`PeerItem::Announce`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The member's incarnation: a random number its program chose when it started. Two
    /// runs of one person's program are two members.
    pub id: u64,
    /// When the member joined, in ms since the Unix epoch, stamped by the peer that let it
    /// in. Of two members who took one name at the same moment, the earlier keeps it.
    pub joined_ms: i64,
    /// Where the member receives datagrams, as the describing peer knows it.
    pub addr: SocketAddr,
    /// The member's name.
    pub name: String,
}

/// The most bytes a [`MemberRecord`] takes on the wire: id (8), time (8), address family
/// (1), IPv6 address (16), port (2), the longest name with its length byte (129).
pub const MAX_MEMBER_RECORD_LEN: usize = 8 + 8 + 1 + 16 + 2 + 1 + MAX_NAME_BYTES;

impl MemberRecord {
    /// How many bytes the record takes on the wire.
    pub fn encoded_len(&self) -> usize {
        let ip = if self.addr.is_ipv4() { 4 } else { 16 };
        8 + 8 + 1 + ip + 2 + 1 + super::truncate_to_char_boundary(&self.name, MAX_NAME_BYTES).len()
    }
}

// A record: id, join time, address, name.
record_codec!(MemberRecord {
    id: u64,
    joined_ms: i64,
    addr: SocketAddr,
    name: String as Name,
});

/// An address: family (4 or 6), the 4 or 16 bytes of the IP address, the port.
impl Codec<SocketAddr> for SocketAddr {
    fn put(value: &SocketAddr, w: &mut Writer<'_>) {
        match value.ip() {
            IpAddr::V4(ip) => {
                w.bytes(&[4]);
                w.bytes(&ip.octets());
            }
            IpAddr::V6(ip) => {
                w.bytes(&[6]);
                w.bytes(&ip.octets());
            }
        }
        u16::put(&value.port(), w);
    }

    fn get(r: &mut Reader<'_>) -> Result<SocketAddr, DecodeError> {
        let ip = match r.array::<1>()?[0] {
            4 => IpAddr::from(r.array::<4>()?),
            6 => IpAddr::from(r.array::<16>()?),
            value => {
                return Err(DecodeError::BadValue {
                    field: "address family",
                    value,
                });
            }
        };
        Ok(SocketAddr::new(ip, u16::get(r)?))
    }
}

/// Whether a part of the member list is the last: one byte, 0 or 1.
pub struct LastPart;

impl Codec<bool> for LastPart {
    fn put(value: &bool, w: &mut Writer<'_>) {
        w.bytes(&[u8::from(*value)]);
    }

    fn get(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
        match r.array::<1>()?[0] {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::BadValue {
                field: "last-part flag",
                value,
            }),
        }
    }
}

frames! {
    /// A frame between two peers (kinds `0xC0..=0xDF`). Peers talk to each other directly,
    /// each pair over its own two reliable streams; a server answers none of these but a
    /// join (with a refusal).
    pub enum PeerFrame;
    /// What one member tells another, in order and exactly once (one pair's stream).
    pub enum PeerItem;
    standalone {
        /// A peer asks a member of a room to let it in under `name`: the peer-mode join,
        /// padded the same way and answered with [`PeerFrame::Challenge`] until it carries
        /// the member's `cookie`. `id` is the joining program's incarnation; `token` is the
        /// secret the member must put in every frame it sends the newcomer. `clock_ms` is
        /// the joining program's clock (milliseconds since it started) and `flood` the limit
        /// it applies to the member's messages (see [`PeerFrame::Hello`]).
        Join = PEER_JOIN_KIND, "peer join" {
            nonce: u64, cookie: u64, id: u64, token: u64, clock_ms: u64, flood: FloodTerms,
            name: String as PaddedName,
        },
        /// A member asks a joining peer to repeat its join with `cookie`, which only someone
        /// receiving at the join's source address can know.
        Challenge = 0xC1, "peer challenge" { nonce: u64, cookie: u64 },
        /// A member let the joining peer in. `token` is the secret the newcomer must put in
        /// every frame it sends this member; `your_joined_ms` is the newcomer's join time and
        /// `your_addr` the address it was seen at (how the room will know it); `id`,
        /// `joined_ms` and `name` describe the member that answers, `clock_ms` and `flood`
        /// its clock and limit (see [`PeerFrame::Hello`]). The rest of the room follows as
        /// [`PeerItem::Members`].
        Welcome = 0xC2, "peer welcome" {
            nonce: u64, token: u64, your_joined_ms: i64, your_addr: SocketAddr,
            id: u64, joined_ms: i64, clock_ms: u64, flood: FloodTerms, name: String as Name,
        },
        /// A member refused the join (name taken or invalid, address banned, room full).
        Refused = 0xC3, "peer refused" { nonce: u64, reason: RefuseReason },
        /// Two members who learned of each other through the room open their pair's
        /// streams. `token` is the secret the receiver must put in the frames it sends back;
        /// `echo` is the receiver's own secret if the sender knows it yet (0 otherwise):
        /// echoing it proves the sender receives at its address. `clock_ms` is the sender's
        /// clock (milliseconds since its program started), against which the receiver reads
        /// the `sent_ms` of the sender's messages; `flood` is the limit the sender applies to
        /// the receiver's messages, which the receiver paces itself to.
        Hello = 0xC4, "peer hello" {
            from_id: u64, to_id: u64, token: u64, echo: u64, clock_ms: u64, flood: FloodTerms,
        },
        /// Acknowledgements with nothing else to say; also the heartbeat that keeps a pair
        /// alive when nothing else flows.
        Ack = 0xC5, "peer ack" { token: u64, acks: Acks },
        /// The sender no longer counts the receiver as a member, for `reason`. Tiny, and it
        /// repeats the receiver's own secret, so only the real member believes it.
        NotMember = 0xC6, "peer not member" { token: u64, reason: GoneReason },
    }
    sequenced {
        /// A chat message from the sender to everyone, stamped with the sender's wall clock
        /// (`time_ms`, shown) and with when the sender first sent it (`sent_ms`, on the
        /// clock of its hello; the flood limit counts by it).
        Chat = 0xD0, "peer chat" { time_ms: i64, sent_ms: u64, text: String as Text },
        /// A private message from the sender to the receiver only, stamped like
        /// [`PeerItem::Chat`].
        Private = 0xD1, "peer private" { time_ms: i64, sent_ms: u64, text: String as Text },
        /// Part of the member list a newcomer receives from the member that let it in, that
        /// member and the newcomer excepted; `last` marks the final part.
        Members = 0xD2, "peer members" { last: bool as LastPart, members: Vec<MemberRecord> },
        /// Someone joined the room. Passed on once by every member that learns it.
        Announce = 0xD3, "peer announce" { member: MemberRecord },
        /// The member with incarnation `id` is gone. Passed on like an announcement.
        Gone = 0xD4, "peer gone" { id: u64, reason: GoneReason },
        /// The sender leaves the room (after everything sent before it).
        Leave = 0xD5, "peer leave",
        /// The sender dropped `dropped` of the receiver's messages: they came too fast.
        Flooded = 0xD6, "peer flooded" { dropped: u32 },
        /// `/me`: an action of the sender's, to everyone (`* bob waves`), stamped like
        /// [`PeerItem::Chat`].
        Action = 0xD7, "peer action" { time_ms: i64, sent_ms: u64, text: String as Text },
        /// `/nick`: the sender is called `name` from now on (`sent_ms` as in
        /// [`PeerItem::Chat`]: the flood limit counts it like a message).
        Nick = 0xD8, "peer nick" { sent_ms: u64, name: String as Name },
        /// `/away REASON`, or `/back` with an empty `reason` (at most
        /// [`MAX_NAME_BYTES`] bytes; `sent_ms` as in [`PeerItem::Nick`]).
        Away = 0xD9, "peer away" { sent_ms: u64, reason: String as Name },
        /// One public line the sender showed, from its own history, as
        /// [`super::Delivery::HistoryLine`] (the epoch is a random id of the sender's; the
        /// numbering is the sender's own).
        /// Sent to a newcomer right after the member list, and in answer to
        /// [`PeerItem::HistoryRequest`]; always followed by one [`PeerItem::HistoryEnd`].
        HistoryLine = 0xDA, "peer history line" { line: HistoryEntry },
        /// The end of the sender's history lines: its `epoch`, the number of its newest line
        /// `newest` (0: none yet), and how many lines it still holds `earlier` than those
        /// sent, as [`super::Delivery::HistoryEnd`].
        HistoryEnd = 0xDB, "peer history end" { epoch: u64, newest: u64, earlier: u64 },
        /// `/history`: send me up to `count` lines of your history epoch `epoch` numbered
        /// below `before` (`u64::MAX`: from your newest), as [`super::Request::History`].
        /// Answered by [`PeerItem::HistoryLine`]s and one [`PeerItem::HistoryEnd`].
        HistoryRequest = 0xDC, "peer history request" { epoch: u64, before: u64, count: u16 },
    }
}

impl PeerFrame {
    /// The secret the frame carries for the receiver's pair, when that is the whole point
    /// of it: acknowledgements, a dismissal, a sequenced frame. (The tokens in a join, a
    /// welcome or a hello are offered, not proved, so they do not count.)
    pub fn token(&self) -> Option<u64> {
        match self {
            PeerFrame::Ack { token, .. } | PeerFrame::NotMember { token, .. } => Some(*token),
            PeerFrame::Sequenced(envelope, _) => Some(envelope.token),
            _ => None,
        }
    }

    /// The acknowledgements the frame carries, if any.
    pub fn acks(&self) -> Option<Acks> {
        match self {
            PeerFrame::Ack { acks, .. } => Some(*acks),
            PeerFrame::Sequenced(envelope, _) => Some(envelope.acks),
            _ => None,
        }
    }
}
