//! The generators of frames and of datagrams made from them. Every frame kind is listed
//! once, in the table of its direction ([`client_kinds`], [`server_kinds`], [`peer_kinds`]),
//! each field arbitrary within the limits the encoder documents: a new kind is one more
//! line in one table, and `arb_frame_makes_every_kind` (in `decode`) fails until it is there.
//! The datagrams are those encodings mutated, relabelled with another version, cut short,
//! or only headed like a frame.

use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;

use icq::wire::{
    Acks, Delivery, DisconnectReason, Envelope, FloodTerms, Frame, GoneReason, HEADER_LEN,
    HistoryEntry, LineKind, MAGIC, MAX_DATAGRAM, MemberRecord, PeerFrame, PeerItem, PresenceChange,
    PresenceItem, RefuseReason, Request, RosterEntry, ToClient, ToServer, VERSION,
};

use super::{arb_name, arb_text};

pub(super) fn arb_acks() -> impl Strategy<Value = Acks> {
    record!(Acks { through in any::<u32>(), also in any::<u64>() })
}

pub(super) fn arb_envelope() -> impl Strategy<Value = Envelope> {
    record!(Envelope { token in any::<u64>(), seq in any::<u32>(), acks in arb_acks() })
}

fn arb_terms() -> impl Strategy<Value = FloodTerms> {
    record!(FloodTerms { rate_milli in any::<u32>(), burst in any::<u16>() })
}

fn arb_refuse_reason() -> impl Strategy<Value = RefuseReason> {
    select(vec![
        RefuseReason::NameTaken,
        RefuseReason::NameInvalid,
        RefuseReason::Banned,
        RefuseReason::ServerFull,
        RefuseReason::VersionUnsupported,
        RefuseReason::AddressInUse,
        RefuseReason::TooManyFromAddress,
        RefuseReason::KickedRecently,
        RefuseReason::IsAServer,
        RefuseReason::IsAPeer,
    ])
}

fn arb_disconnect_reason() -> impl Strategy<Value = DisconnectReason> {
    select(vec![
        DisconnectReason::Kicked,
        DisconnectReason::Banned,
        DisconnectReason::ServerClosing,
        DisconnectReason::TimedOut,
    ])
}

fn arb_gone_reason() -> impl Strategy<Value = GoneReason> {
    select(vec![
        GoneReason::Left,
        GoneReason::TimedOut,
        GoneReason::NameTaken,
    ])
}

fn arb_presence_change() -> impl Strategy<Value = PresenceChange> {
    prop_oneof![
        select(vec![
            PresenceChange::Joined,
            PresenceChange::Left,
            PresenceChange::TimedOut,
            PresenceChange::Kicked,
            PresenceChange::KickedForFlooding,
            PresenceChange::Banned,
            PresenceChange::Back,
        ]),
        record!(PresenceChange::Renamed { to in arb_name() }),
        record!(PresenceChange::Away { reason in arb_name() }),
    ]
}

/// Bytes of a roster frame before its names: header, envelope, time, total, offset.
const ROSTER_FIXED_LEN: usize = HEADER_LEN + 24 + 8 + 2 + 2;

/// Several roster entries (a name and an away text each), as many as fit in one datagram
/// (the server splits longer lists).
fn arb_roster_entries() -> impl Strategy<Value = Vec<RosterEntry>> {
    let entry =
        record!(RosterEntry { name in arb_name(), away in arb_name(), guest in any::<bool>() });
    vec(entry, 0..=12).prop_map(|entries| {
        let mut len = ROSTER_FIXED_LEN;
        entries
            .into_iter()
            .take_while(|entry| {
                len += 3 + entry.name.len() + entry.away.len();
                len <= MAX_DATAGRAM
            })
            .collect()
    })
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

fn arb_member() -> impl Strategy<Value = MemberRecord> {
    record!(MemberRecord {
        id in any::<u64>(), joined_ms in any::<i64>(), addr in arb_addr(), name in arb_name()
    })
}

/// A history line, client–server or peer (the same record both ways).
fn arb_history_entry() -> impl Strategy<Value = HistoryEntry> {
    record!(HistoryEntry {
        epoch in any::<u64>(),
        seq in any::<u64>(),
        time_ms in any::<i64>(),
        from in arb_name(),
        kind in select(vec![LineKind::Chat, LineKind::Action, LineKind::Console]),
        text in arb_text(),
    })
}

/// The fields of the end of a history's replay, client–server or peer: epoch, newest, earlier.
fn arb_history_end() -> impl Strategy<Value = (u64, u64, u64)> {
    any::<(u64, u64, u64)>()
}

/// The fields of a line a peer says (chat, private, action): time, time sent, text.
fn arb_said() -> impl Strategy<Value = (i64, u64, String)> {
    (any::<i64>(), any::<u64>(), arb_text())
}

/// A frame that stands alone, from `frames` of one direction.
fn standalone<F: Into<Frame> + Debug + 'static>(
    frames: impl Strategy<Value = F> + 'static,
) -> BoxedStrategy<Frame> {
    frames.prop_map(Into::into).boxed()
}

/// A frame of a reliable stream: any envelope, and a body from `bodies` put in the frame of
/// its direction by `wrap` (`ToServer::Sequenced`, `ToClient::Sequenced`,
/// `PeerFrame::Sequenced`).
fn sequenced<B: Debug + 'static, F: Into<Frame> + 'static>(
    wrap: fn(Envelope, B) -> F,
    bodies: impl Strategy<Value = B> + 'static,
) -> BoxedStrategy<Frame> {
    (arb_envelope(), bodies)
        .prop_map(move |(envelope, body)| wrap(envelope, body).into())
        .boxed()
}

fn to_server(bodies: impl Strategy<Value = Request> + 'static) -> BoxedStrategy<Frame> {
    sequenced(ToServer::Sequenced, bodies)
}

fn to_client(bodies: impl Strategy<Value = Delivery> + 'static) -> BoxedStrategy<Frame> {
    sequenced(ToClient::Sequenced, bodies)
}

fn to_peer(bodies: impl Strategy<Value = PeerItem> + 'static) -> BoxedStrategy<Frame> {
    sequenced(PeerFrame::Sequenced, bodies)
}

/// Every kind a client sends, one strategy each.
fn client_kinds() -> Vec<BoxedStrategy<Frame>> {
    vec![
        standalone(record!(ToServer::Join {
            nonce in any::<u64>(), cookie in any::<u64>(), previous_token in any::<u64>(),
            history_epoch in any::<u64>(), history_seen in any::<u64>(), name in arb_name(),
        })),
        standalone(record!(ToServer::Heartbeat { token in any::<u64>(), acks in arb_acks() })),
        standalone(record!(ToServer::ClientAck { token in any::<u64>(), acks in arb_acks() })),
        to_server(record!(Request::Chat { sent_ms in any::<u64>(), text in arb_text() })),
        to_server(Just(Request::List)),
        to_server(Just(Request::Leave)),
        to_server(record!(Request::Private {
            sent_ms in any::<u64>(), to in arb_name(), text in arb_text()
        })),
        to_server(record!(Request::Action { sent_ms in any::<u64>(), text in arb_text() })),
        to_server(record!(Request::Nick { sent_ms in any::<u64>(), name in arb_name() })),
        to_server(record!(Request::Away { sent_ms in any::<u64>(), reason in arb_name() })),
        to_server(record!(Request::History { epoch, before, count } from any::<(u64, u64, u16)>())),
    ]
}

/// Every kind the server sends, one strategy each.
fn server_kinds() -> Vec<BoxedStrategy<Frame>> {
    // Four of the largest items still fit in a datagram.
    let item = record!(PresenceItem { name in arb_name(), change in arb_presence_change() });
    let changes = vec(item, 1..=4);
    vec![
        standalone(record!(ToClient::Welcome {
            nonce in any::<u64>(), token in any::<u64>(), heartbeat_ms in any::<u32>(),
            flood in arb_terms(), name in arb_name(),
        })),
        standalone(record!(ToClient::Refused {
            nonce in any::<u64>(), reason in arb_refuse_reason()
        })),
        standalone(record!(ToClient::Challenge { nonce in any::<u64>(), cookie in any::<u64>() })),
        standalone(record!(ToClient::ServerAck {
            token in any::<u64>(), acks in arb_acks(), heartbeat_ms in any::<u32>()
        })),
        standalone(record!(ToClient::LeaveAck { token in any::<u64>() })),
        standalone(record!(ToClient::NotJoined { token in any::<u64>() })),
        standalone(record!(ToClient::Probe { token in any::<u64>() })),
        to_client(record!(Delivery::Message {
            seq in any::<u64>(), time_ms in any::<i64>(), from in arb_name(), text in arb_text()
        })),
        to_client(record!(Delivery::Notice { time_ms in any::<i64>(), text in arb_text() })),
        to_client(record!(Delivery::Roster {
            time_ms in any::<i64>(), total in any::<u16>(), offset in any::<u16>(),
            entries in arb_roster_entries(),
        })),
        to_client(record!(Delivery::Disconnected {
            time_ms in any::<i64>(), reason in arb_disconnect_reason(), text in arb_text()
        })),
        to_client(record!(Delivery::Missed { last in any::<u32>() })),
        to_client(record!(Delivery::PrivateMessage {
            time_ms in any::<i64>(), from in arb_name(), to in arb_name(), text in arb_text()
        })),
        to_client(record!(Delivery::ActionMessage {
            seq in any::<u64>(), time_ms in any::<i64>(), from in arb_name(), text in arb_text()
        })),
        to_client(record!(Delivery::Renamed { name in arb_name() })),
        to_client(record!(Delivery::Presence {
            time_ms in any::<i64>(), name in arb_name(), change in arb_presence_change()
        })),
        to_client(record!(Delivery::PresenceBatch { time_ms in any::<i64>(), changes in changes })),
        to_client(record!(Delivery::HistoryLine { line in arb_history_entry() })),
        to_client(record!(Delivery::HistoryEnd { epoch, newest, earlier } from arb_history_end())),
    ]
}

/// Every kind a peer sends another, one strategy each.
fn peer_kinds() -> Vec<BoxedStrategy<Frame>> {
    vec![
        standalone(record!(PeerFrame::Join {
            nonce in any::<u64>(), cookie in any::<u64>(), id in any::<u64>(),
            token in any::<u64>(), clock_ms in any::<u64>(), flood in arb_terms(),
            name in arb_name(),
        })),
        standalone(record!(PeerFrame::Challenge { nonce in any::<u64>(), cookie in any::<u64>() })),
        standalone(record!(PeerFrame::Welcome {
            nonce in any::<u64>(), token in any::<u64>(), your_joined_ms in any::<i64>(),
            your_addr in arb_addr(), id in any::<u64>(), joined_ms in any::<i64>(),
            clock_ms in any::<u64>(), flood in arb_terms(), name in arb_name(),
        })),
        standalone(record!(PeerFrame::Refused {
            nonce in any::<u64>(), reason in arb_refuse_reason()
        })),
        standalone(record!(PeerFrame::Hello {
            from_id in any::<u64>(), to_id in any::<u64>(), token in any::<u64>(),
            echo in any::<u64>(), clock_ms in any::<u64>(), flood in arb_terms(),
        })),
        standalone(record!(PeerFrame::Ack { token in any::<u64>(), acks in arb_acks() })),
        standalone(record!(PeerFrame::NotMember {
            token in any::<u64>(), reason in arb_gone_reason()
        })),
        to_peer(record!(PeerItem::Chat { time_ms, sent_ms, text } from arb_said())),
        to_peer(record!(PeerItem::Private { time_ms, sent_ms, text } from arb_said())),
        to_peer(record!(PeerItem::Action { time_ms, sent_ms, text } from arb_said())),
        // At most 6 records of at most MAX_MEMBER_RECORD_LEN bytes: within a datagram.
        to_peer(record!(PeerItem::Members {
            last in any::<bool>(), members in vec(arb_member(), 0..=6)
        })),
        to_peer(record!(PeerItem::Announce { member in arb_member() })),
        to_peer(record!(PeerItem::Gone { id in any::<u64>(), reason in arb_gone_reason() })),
        to_peer(Just(PeerItem::Leave)),
        to_peer(record!(PeerItem::Flooded { dropped in any::<u32>() })),
        to_peer(record!(PeerItem::Nick { sent_ms in any::<u64>(), name in arb_name() })),
        to_peer(record!(PeerItem::Away { sent_ms in any::<u64>(), reason in arb_name() })),
        to_peer(record!(PeerItem::HistoryLine { line in arb_history_entry() })),
        to_peer(record!(PeerItem::HistoryEnd { epoch, newest, earlier } from arb_history_end())),
        to_peer(record!(PeerItem::HistoryRequest {
            epoch, before, count
        } from any::<(u64, u64, u16)>())),
    ]
}

/// Any frame of any kind, each kind as likely as any other.
pub(super) fn arb_frame() -> BoxedStrategy<Frame> {
    let kinds = client_kinds()
        .into_iter()
        .chain(server_kinds())
        .chain(peer_kinds());
    Union::new(kinds).boxed()
}

/// Any frame a client sends, each kind as likely as any other.
pub(super) fn arb_client_frame() -> BoxedStrategy<Frame> {
    Union::new(client_kinds()).boxed()
}

/// One change to a datagram. Positions are taken modulo the length; half of them fall in
/// the first 48 bytes, where the header, envelope and length prefixes are.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, value: u8 },
    Insert { at: usize, value: u8 },
    Delete { at: usize },
    Truncate { at: usize },
    Append { bytes: Vec<u8> },
}

fn arb_position() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..48, any::<usize>()]
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        record!(Mutation::Flip { at in arb_position(), bit in 0u8..8 }),
        record!(Mutation::Set { at in arb_position(), value in any::<u8>() }),
        record!(Mutation::Insert { at in arb_position(), value in any::<u8>() }),
        record!(Mutation::Delete { at in arb_position() }),
        record!(Mutation::Truncate { at in arb_position() }),
        record!(Mutation::Append { bytes in vec(any::<u8>(), 1..=16) }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match mutation {
        Mutation::Flip { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
        Mutation::Set { at, value } if len > 0 => bytes[at % len] = *value,
        Mutation::Insert { at, value } => bytes.insert(at % (len + 1), *value),
        Mutation::Delete { at } if len > 0 => {
            bytes.remove(at % len);
        }
        Mutation::Truncate { at } => bytes.truncate(at % (len + 1)),
        Mutation::Append { bytes: extra } => bytes.extend_from_slice(extra),
        _ => {}
    }
}

/// A valid encoding of any frame, changed by one to four mutations.
pub(super) fn arb_mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    (arb_frame(), vec(arb_mutation(), 1..=4)).prop_map(|(frame, mutations)| {
        let mut bytes = frame.to_bytes();
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        bytes
    })
}

/// The magic bytes, (mostly) this version, a kind near the known ones or any byte, then a
/// random tail (sometimes of small bytes, so length prefixes are plausible): reaches the
/// kind-specific decoding.
pub(super) fn arb_headed_bytes() -> impl Strategy<Value = Vec<u8>> {
    let version = prop_oneof![4 => Just(VERSION), 1 => any::<u8>()];
    let kind = prop_oneof![0x00u8..=0x10, 0x80u8..=0x90, 0xC0u8..=0xDF, any::<u8>()];
    let tail = prop_oneof![
        vec(any::<u8>(), 0..=MAX_DATAGRAM + 100 - HEADER_LEN),
        vec(0u8..=4, 0..=64),
    ];
    (version, kind, tail).prop_map(|(version, kind, tail)| {
        let mut bytes = vec![MAGIC[0], MAGIC[1], version, kind];
        bytes.extend(tail);
        bytes
    })
}

/// A valid encoding of a frame from `frames`, perhaps relabelled with another protocol
/// version, perhaps cut short (often within the first 32 bytes, where the fields are that
/// other versions share).
pub(super) fn arb_cut_frame(
    frames: impl Strategy<Value = Frame>,
) -> impl Strategy<Value = Vec<u8>> {
    let version = prop_oneof![Just(VERSION), any::<u8>()];
    let cut = prop_oneof![
        1 => Just(None),
        2 => (0usize..=24).prop_map(Some),
        1 => any::<usize>().prop_map(Some),
    ];
    (frames, version, cut).prop_map(|(frame, version, cut)| {
        let mut bytes = frame.to_bytes();
        bytes[2] = version;
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        bytes
    })
}

/// Any datagram worth decoding: random, with a header, a mutated valid frame, or a valid
/// frame of another version or cut short.
pub(super) fn arb_datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..=1300),
        arb_headed_bytes(),
        arb_mutated_frame(),
        arb_cut_frame(arb_frame()),
    ]
}
