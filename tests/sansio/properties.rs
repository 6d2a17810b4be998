//! Property-based tests (parser robustness): everything that reads bytes or text
//! from outside is fed inputs made up by `proptest`, which shrinks any failure to a minimal
//! input and prints it.
//!
//! - `wire`: [`Frame::decode`] never panics on any bytes (random, starting with a valid
//!   header, a valid encoding mutated, cut short or relabelled with another version), and
//!   what it accepts is exactly what the encoder writes; every kind survives encode → decode
//!   with any field values within the limits; every encoding fits in [`MAX_DATAGRAM`];
//!   patching an envelope equals encoding with it.
//! - `command`: [`command::parse`] never panics on any line, on either side, and agrees with
//!   a model of the documented rules (text, `//` escape, commands, errors).
//! - `text`: [`text::sanitize`] leaves no control character, escape or bidi control,
//!   handles each character on its own, and passes printable text through unchanged.
//! - `server`: the sans-IO [`Server`] fed thousands of hostile datagrams from any address
//!   (garbage, mutated frames, valid frames with random or learned tokens, joins), time jumps
//!   and operator commands never panics; everything it sends is a valid server-to-client
//!   frame or a guest's text line within [`MAX_DATAGRAM`]; it never sends to an address that
//!   has not joined except in answer to that address; and (guests off) it answers such an
//!   address with no more bytes than the datagram it answers, so no more in total than it
//!   received from it. Garbage alone never makes anyone joined.
//!
//! The generators list every frame kind once, in [`arb_frame`]; `arb_frame_makes_every_kind`
//! fails until `arb_frame` makes every kind the decoder knows. Case counts are moderate so
//! the whole file runs in seconds on two cores.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use icq::bans::list::BanList;
use icq::command::{self, Command, CommandError, Input, Side};
use icq::names;
use icq::proto::flood::FloodLimit;
use icq::render;
use icq::server::{Server, ServerConfig, ServerEvent};
use icq::text;
use icq::wire::Acks;
use icq::wire::{
    self, DecodeError, DisconnectReason, ENVELOPE_RANGE, Envelope, FloodTerms, Frame, GoneReason,
    HEADER_LEN, JOIN_MIN_LEN, MAGIC, MAX_DATAGRAM, MAX_NAME_BYTES, MAX_TEXT_BYTES, MemberRecord,
    PresenceChange, PresenceItem, RefuseReason, RosterEntry, VERSION,
};
use icq::wire::{Delivery, LineKind, PeerFrame, PeerItem, Request, ToClient, ToServer};

/// `cases` cases per property. Failures are not saved to a file: proptest prints the
/// minimal input, and a bug found that way gets a plain regression test.
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// Generators ------------------------------------------------------------------------------

/// One character of a name or a text: anything at all, or one of those that matter here
/// (multibyte, controls, escape, bidi and invisible characters, whitespace, the slash).
fn arb_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        3 => proptest::char::range('a', 'z'),
        2 => select(vec![
            'é', 'ß', 'Z', '日', '本', '🎉', '𝓪', '\u{0}', '\u{7}', '\u{1b}', '\u{7f}',
            '\u{85}', '\u{9b}', '\u{200b}', '\u{200d}', '\u{202e}', '\u{2066}', '\u{feff}',
            ' ', '\t', '\n', '\r', '/',
        ]),
    ]
}

/// Up to `max_chars` characters, cut to at most `max_bytes` bytes on a character boundary.
fn arb_string(max_chars: usize, max_bytes: usize) -> impl Strategy<Value = String> {
    vec(arb_char(), 0..=max_chars).prop_map(move |chars| {
        let text: String = chars.into_iter().collect();
        wire::truncate_to_char_boundary(&text, max_bytes).to_owned()
    })
}

/// `ch` repeated to fill `max_bytes` as nearly as whole characters allow.
fn filled(ch: char, max_bytes: usize) -> String {
    ch.to_string().repeat(max_bytes / ch.len_utf8())
}

/// A name as a frame may carry it: valid names (so joins succeed), anything within
/// [`MAX_NAME_BYTES`], and the longest names in bytes (1-, 2-, 3- and 4-byte characters).
fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-zA-Z0-9_]{1,12}",
        2 => arb_string(40, MAX_NAME_BYTES),
        1 => select(vec!['x', 'é', '日', '𝓪']).prop_map(|ch| filled(ch, MAX_NAME_BYTES)),
    ]
}

/// A text within [`MAX_TEXT_BYTES`]: short and mixed, long and mixed, or one character
/// repeated up to the limit.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => arb_string(64, MAX_TEXT_BYTES),
        1 => arb_string(MAX_TEXT_BYTES, MAX_TEXT_BYTES),
        1 => (arb_char(), 0..=MAX_TEXT_BYTES).prop_map(|(ch, n)| {
            let text = ch.to_string().repeat(n);
            wire::truncate_to_char_boundary(&text, MAX_TEXT_BYTES).to_owned()
        }),
    ]
}

fn arb_acks() -> impl Strategy<Value = Acks> {
    (any::<u32>(), any::<u64>()).prop_map(|(through, also)| Acks { through, also })
}

fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (any::<u64>(), any::<u32>(), arb_acks()).prop_map(|(token, seq, acks)| Envelope {
        token,
        seq,
        acks,
    })
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

/// Bytes of a roster frame before its names: header, envelope, time, total, offset.
const ROSTER_FIXED_LEN: usize = HEADER_LEN + 24 + 8 + 2 + 2;

/// Several roster entries (a name and an away text each), as many as fit in one datagram
/// (the server splits longer lists).
fn arb_roster_entries() -> impl Strategy<Value = Vec<RosterEntry>> {
    vec((arb_name(), arb_name(), any::<bool>()), 0..=12).prop_map(|triples| {
        let mut len = ROSTER_FIXED_LEN;
        triples
            .into_iter()
            .map(|(name, away, guest)| RosterEntry { name, away, guest })
            .take_while(|entry| {
                len += 3 + entry.name.len() + entry.away.len();
                len <= MAX_DATAGRAM
            })
            .collect()
    })
}

/// Any frame of any kind, every field arbitrary within the limits the encoder documents,
/// each kind as likely as any other.
fn arb_frame() -> BoxedStrategy<Frame> {
    prop_oneof![
        CLIENT_KINDS => arb_client_frame(),
        SERVER_KINDS => arb_server_frame(),
        PEER_KINDS => arb_peer_frame(),
    ]
    .boxed()
}

/// How many kinds [`arb_peer_frame`] makes.
const PEER_KINDS: u32 = 17;

/// How many kinds [`arb_server_frame`] makes.
const SERVER_KINDS: u32 = 18;

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

fn arb_member() -> impl Strategy<Value = MemberRecord> {
    (any::<u64>(), any::<i64>(), arb_addr(), arb_name()).prop_map(|(id, joined_ms, addr, name)| {
        MemberRecord {
            id,
            joined_ms,
            addr,
            name,
        }
    })
}

fn arb_gone_reason() -> impl Strategy<Value = GoneReason> {
    select(vec![
        GoneReason::Left,
        GoneReason::TimedOut,
        GoneReason::NameTaken,
    ])
}

/// Any frame a peer sends another (in two groups: `prop_oneof!` takes at most ten arms).
fn arb_peer_frame() -> BoxedStrategy<Frame> {
    prop_oneof![
        7 => arb_peer_frame_unsequenced(),
        10 => arb_peer_frame_sequenced(),
    ]
    .boxed()
}

fn arb_terms() -> BoxedStrategy<FloodTerms> {
    (any::<u32>(), any::<u16>())
        .prop_map(|(rate_milli, burst)| FloodTerms { rate_milli, burst })
        .boxed()
}

fn arb_peer_frame_unsequenced() -> BoxedStrategy<Frame> {
    prop_oneof![
        (
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            (any::<u64>(), arb_terms(), arb_name())
        )
            .prop_map(|((nonce, cookie, id, token), (clock_ms, flood, name))| {
                Frame::Peer(PeerFrame::Join {
                    nonce,
                    cookie,
                    id,
                    token,
                    clock_ms,
                    flood,
                    name,
                })
            }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(nonce, cookie)| Frame::Peer(PeerFrame::Challenge { nonce, cookie })),
        (
            (any::<u64>(), any::<u64>(), any::<i64>(), arb_addr()),
            (
                any::<u64>(),
                any::<i64>(),
                any::<u64>(),
                arb_terms(),
                arb_name()
            )
        )
            .prop_map(
                |(
                    (nonce, token, your_joined_ms, your_addr),
                    (id, joined_ms, clock_ms, flood, name),
                )| {
                    Frame::Peer(PeerFrame::Welcome {
                        nonce,
                        token,
                        your_joined_ms,
                        your_addr,
                        id,
                        joined_ms,
                        clock_ms,
                        flood,
                        name,
                    })
                }
            ),
        (any::<u64>(), arb_refuse_reason())
            .prop_map(|(nonce, reason)| Frame::Peer(PeerFrame::Refused { nonce, reason })),
        (
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            (any::<u64>(), arb_terms())
        )
            .prop_map(|((from_id, to_id, token, echo), (clock_ms, flood))| {
                Frame::Peer(PeerFrame::Hello {
                    from_id,
                    to_id,
                    token,
                    echo,
                    clock_ms,
                    flood,
                })
            }),
        (any::<u64>(), arb_acks())
            .prop_map(|(token, acks)| Frame::Peer(PeerFrame::Ack { token, acks })),
        (any::<u64>(), arb_gone_reason())
            .prop_map(|(token, reason)| Frame::Peer(PeerFrame::NotMember { token, reason })),
    ]
    .boxed()
}

fn arb_peer_frame_sequenced() -> BoxedStrategy<Frame> {
    prop_oneof![
        (arb_envelope(), any::<i64>(), any::<u64>(), arb_text()).prop_map(
            |(envelope, time_ms, sent_ms, text)| Frame::Peer(PeerFrame::Sequenced(
                envelope,
                PeerItem::Chat {
                    time_ms,
                    sent_ms,
                    text
                }
            ))
        ),
        (arb_envelope(), any::<i64>(), any::<u64>(), arb_text()).prop_map(
            |(envelope, time_ms, sent_ms, text)| Frame::Peer(PeerFrame::Sequenced(
                envelope,
                PeerItem::Private {
                    time_ms,
                    sent_ms,
                    text
                }
            ))
        ),
        // At most 6 records of at most MAX_MEMBER_RECORD_LEN bytes: within a datagram.
        (arb_envelope(), any::<bool>(), vec(arb_member(), 0..=6)).prop_map(
            |(envelope, last, members)| Frame::Peer(PeerFrame::Sequenced(
                envelope,
                PeerItem::Members { last, members }
            ))
        ),
        (arb_envelope(), arb_member()).prop_map(|(envelope, member)| Frame::Peer(
            PeerFrame::Sequenced(envelope, PeerItem::Announce { member })
        )),
        (arb_envelope(), any::<u64>(), arb_gone_reason()).prop_map(|(envelope, id, reason)| {
            Frame::Peer(PeerFrame::Sequenced(
                envelope,
                PeerItem::Gone { id, reason },
            ))
        }),
        arb_envelope()
            .prop_map(|envelope| Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Leave))),
        (arb_envelope(), any::<u32>()).prop_map(|(envelope, dropped)| Frame::Peer(
            PeerFrame::Sequenced(envelope, PeerItem::Flooded { dropped })
        )),
        (arb_envelope(), any::<i64>(), any::<u64>(), arb_text()).prop_map(
            |(envelope, time_ms, sent_ms, text)| Frame::Peer(PeerFrame::Sequenced(
                envelope,
                PeerItem::Action {
                    time_ms,
                    sent_ms,
                    text
                }
            ))
        ),
        (arb_envelope(), any::<u64>(), arb_name()).prop_map(|(envelope, sent_ms, name)| {
            Frame::Peer(PeerFrame::Sequenced(
                envelope,
                PeerItem::Nick { sent_ms, name },
            ))
        }),
        (arb_envelope(), any::<u64>(), arb_name()).prop_map(|(envelope, sent_ms, reason)| {
            Frame::Peer(PeerFrame::Sequenced(
                envelope,
                PeerItem::Away { sent_ms, reason },
            ))
        }),
        (arb_envelope(), arb_history_line()).prop_map(
            |(envelope, (epoch, seq, time_ms, from, kind, text))| {
                Frame::Peer(PeerFrame::Sequenced(
                    envelope,
                    PeerItem::HistoryLine {
                        epoch,
                        seq,
                        time_ms,
                        from,
                        kind,
                        text,
                    },
                ))
            }
        ),
        (arb_envelope(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(envelope, epoch, newest, earlier)| Frame::Peer(PeerFrame::Sequenced(
                envelope,
                PeerItem::HistoryEnd {
                    epoch,
                    newest,
                    earlier
                }
            ))
        ),
        (arb_envelope(), any::<u64>(), any::<u64>(), any::<u16>()).prop_map(
            |(envelope, epoch, before, count)| Frame::Peer(PeerFrame::Sequenced(
                envelope,
                PeerItem::HistoryRequest {
                    epoch,
                    before,
                    count
                }
            ))
        ),
    ]
    .boxed()
}

/// How many kinds [`arb_client_frame`] makes.
const CLIENT_KINDS: u32 = 10;

/// Any frame a client sends. With [`arb_server_frame`], the one place that lists every
/// kind: a new kind is one more line in one of them (and one more in its count).
fn arb_client_frame() -> BoxedStrategy<Frame> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<(u64, u64)>(),
            arb_name()
        )
            .prop_map(
                |(nonce, cookie, previous_token, (history_epoch, history_seen), name)| {
                    Frame::ToServer(ToServer::Join {
                        nonce,
                        cookie,
                        previous_token,
                        history_epoch,
                        history_seen,
                        name,
                    })
                }
            ),
        (arb_envelope(), any::<u64>(), arb_text()).prop_map(|(envelope, sent_ms, text)| {
            Frame::ToServer(ToServer::Sequenced(
                envelope,
                Request::Chat { sent_ms, text },
            ))
        }),
        arb_envelope()
            .prop_map(|envelope| Frame::ToServer(ToServer::Sequenced(envelope, Request::List))),
        arb_envelope()
            .prop_map(|envelope| Frame::ToServer(ToServer::Sequenced(envelope, Request::Leave))),
        (any::<u64>(), arb_acks())
            .prop_map(|(token, acks)| Frame::ToServer(ToServer::Heartbeat { token, acks })),
        (any::<u64>(), arb_acks())
            .prop_map(|(token, acks)| Frame::ToServer(ToServer::ClientAck { token, acks })),
        (arb_envelope(), any::<u64>(), arb_name(), arb_text()).prop_map(
            |(envelope, sent_ms, to, text)| Frame::ToServer(ToServer::Sequenced(
                envelope,
                Request::Private { sent_ms, to, text }
            ))
        ),
        (arb_envelope(), any::<u64>(), arb_text()).prop_map(|(envelope, sent_ms, text)| {
            Frame::ToServer(ToServer::Sequenced(
                envelope,
                Request::Action { sent_ms, text },
            ))
        }),
        (arb_envelope(), any::<u64>(), arb_name()).prop_map(|(envelope, sent_ms, name)| {
            Frame::ToServer(ToServer::Sequenced(
                envelope,
                Request::Nick { sent_ms, name },
            ))
        }),
        (arb_envelope(), any::<u64>(), arb_name()).prop_map(|(envelope, sent_ms, reason)| {
            Frame::ToServer(ToServer::Sequenced(
                envelope,
                Request::Away { sent_ms, reason },
            ))
        }),
        (arb_envelope(), any::<(u64, u64, u16)>()).prop_map(
            |(envelope, (epoch, before, count))| {
                Frame::ToServer(ToServer::Sequenced(
                    envelope,
                    Request::History {
                        epoch,
                        before,
                        count,
                    },
                ))
            }
        ),
    ]
    .boxed()
}

/// Any frame the server sends (in two groups: `prop_oneof!` takes at most ten arms).
fn arb_server_frame() -> BoxedStrategy<Frame> {
    prop_oneof![
        10 => arb_server_frame_first(),
        8 => arb_server_frame_second(),
    ]
    .boxed()
}

fn arb_server_frame_second() -> BoxedStrategy<Frame> {
    prop_oneof![
        (any::<u64>(), any::<u64>())
            .prop_map(|(nonce, cookie)| Frame::ToClient(ToClient::Challenge { nonce, cookie })),
        (
            arb_envelope(),
            any::<i64>(),
            arb_name(),
            arb_name(),
            arb_text()
        )
            .prop_map(|(envelope, time_ms, from, to, text)| Frame::ToClient(
                ToClient::Sequenced(
                    envelope,
                    Delivery::PrivateMessage {
                        time_ms,
                        from,
                        to,
                        text
                    }
                )
            )),
        (arb_envelope(), any::<(u64, i64)>(), arb_name(), arb_text()).prop_map(
            |(envelope, (seq, time_ms), from, text)| Frame::ToClient(ToClient::Sequenced(
                envelope,
                Delivery::ActionMessage {
                    seq,
                    time_ms,
                    from,
                    text
                }
            ))
        ),
        (arb_envelope(), arb_name()).prop_map(|(envelope, name)| Frame::ToClient(
            ToClient::Sequenced(envelope, Delivery::Renamed { name })
        )),
        any::<u64>().prop_map(|token| Frame::ToClient(ToClient::Probe { token })),
        (
            arb_envelope(),
            any::<i64>(),
            arb_name(),
            arb_presence_change()
        )
            .prop_map(|(envelope, time_ms, name, change)| Frame::ToClient(
                ToClient::Sequenced(
                    envelope,
                    Delivery::Presence {
                        time_ms,
                        name,
                        change
                    }
                )
            )),
        (
            arb_envelope(),
            any::<i64>(),
            // Four of the largest items still fit in a datagram.
            prop::collection::vec(
                (arb_name(), arb_presence_change())
                    .prop_map(|(name, change)| PresenceItem { name, change }),
                1..=4
            )
        )
            .prop_map(
                |(envelope, time_ms, changes)| Frame::ToClient(ToClient::Sequenced(
                    envelope,
                    Delivery::PresenceBatch { time_ms, changes }
                ))
            ),
        (arb_envelope(), arb_history_line()).prop_map(
            |(envelope, (epoch, seq, time_ms, from, kind, text))| {
                Frame::ToClient(ToClient::Sequenced(
                    envelope,
                    Delivery::HistoryLine {
                        epoch,
                        seq,
                        time_ms,
                        from,
                        kind,
                        text,
                    },
                ))
            }
        ),
        (arb_envelope(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(envelope, epoch, newest, earlier)| Frame::ToClient(ToClient::Sequenced(
                envelope,
                Delivery::HistoryEnd {
                    epoch,
                    newest,
                    earlier
                }
            ))
        ),
    ]
    .boxed()
}

/// The fields of a history line, client–server or peer: epoch, seq, time, from, kind, text.
fn arb_history_line() -> impl Strategy<Value = (u64, u64, i64, String, LineKind, String)> {
    (
        (any::<u64>(), any::<u64>(), any::<i64>()),
        arb_name(),
        select(vec![LineKind::Chat, LineKind::Action, LineKind::Console]),
        arb_text(),
    )
        .prop_map(|((epoch, seq, time_ms), from, kind, text)| {
            (epoch, seq, time_ms, from, kind, text)
        })
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
        arb_name().prop_map(|to| PresenceChange::Renamed { to }),
        arb_name().prop_map(|reason| PresenceChange::Away { reason }),
    ]
}

fn arb_server_frame_first() -> BoxedStrategy<Frame> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            arb_terms(),
            arb_name()
        )
            .prop_map(|(nonce, token, heartbeat_ms, flood, name)| Frame::ToClient(
                ToClient::Welcome {
                    nonce,
                    token,
                    heartbeat_ms,
                    flood,
                    name
                }
            )),
        (any::<u64>(), arb_refuse_reason())
            .prop_map(|(nonce, reason)| Frame::ToClient(ToClient::Refused { nonce, reason })),
        (arb_envelope(), any::<(u64, i64)>(), arb_name(), arb_text()).prop_map(
            |(envelope, (seq, time_ms), from, text)| Frame::ToClient(ToClient::Sequenced(
                envelope,
                Delivery::Message {
                    seq,
                    time_ms,
                    from,
                    text
                }
            ))
        ),
        (arb_envelope(), any::<i64>(), arb_text()).prop_map(|(envelope, time_ms, text)| {
            Frame::ToClient(ToClient::Sequenced(
                envelope,
                Delivery::Notice { time_ms, text },
            ))
        }),
        (
            arb_envelope(),
            any::<i64>(),
            any::<u16>(),
            any::<u16>(),
            arb_roster_entries()
        )
            .prop_map(
                |(envelope, time_ms, total, offset, entries)| Frame::ToClient(ToClient::Sequenced(
                    envelope,
                    Delivery::Roster {
                        time_ms,
                        total,
                        offset,
                        entries
                    }
                ))
            ),
        (
            arb_envelope(),
            any::<i64>(),
            arb_disconnect_reason(),
            arb_text()
        )
            .prop_map(|(envelope, time_ms, reason, text)| Frame::ToClient(
                ToClient::Sequenced(
                    envelope,
                    Delivery::Disconnected {
                        time_ms,
                        reason,
                        text
                    }
                )
            )),
        (arb_envelope(), any::<u32>()).prop_map(|(envelope, last)| Frame::ToClient(
            ToClient::Sequenced(envelope, Delivery::Missed { last })
        )),
        (any::<u64>(), arb_acks())
            .prop_map(|(token, acks)| Frame::ToClient(ToClient::ServerAck { token, acks })),
        any::<u64>().prop_map(|token| Frame::ToClient(ToClient::LeaveAck { token })),
        any::<u64>().prop_map(|token| Frame::ToClient(ToClient::NotJoined { token })),
    ]
    .boxed()
}

/// The session token a frame carries, to change it.
fn token_mut(frame: &mut Frame) -> Option<&mut u64> {
    match frame {
        Frame::ToServer(ToServer::Heartbeat { token, .. })
        | Frame::ToServer(ToServer::ClientAck { token, .. })
        | Frame::ToClient(ToClient::Welcome { token, .. })
        | Frame::ToClient(ToClient::ServerAck { token, .. })
        | Frame::ToClient(ToClient::LeaveAck { token })
        | Frame::ToClient(ToClient::NotJoined { token })
        | Frame::ToClient(ToClient::Probe { token })
        | Frame::Peer(PeerFrame::Ack { token, .. })
        | Frame::Peer(PeerFrame::NotMember { token, .. }) => Some(token),
        other => other.envelope_mut().map(|envelope| &mut envelope.token),
    }
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
        (arb_position(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (arb_position(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        (arb_position(), any::<u8>()).prop_map(|(at, value)| Mutation::Insert { at, value }),
        arb_position().prop_map(|at| Mutation::Delete { at }),
        arb_position().prop_map(|at| Mutation::Truncate { at }),
        vec(any::<u8>(), 1..=16).prop_map(|bytes| Mutation::Append { bytes }),
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
fn arb_mutated_frame() -> impl Strategy<Value = Vec<u8>> {
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
fn arb_headed_bytes() -> impl Strategy<Value = Vec<u8>> {
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
fn arb_cut_frame(frames: impl Strategy<Value = Frame>) -> impl Strategy<Value = Vec<u8>> {
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
fn arb_datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..=1300),
        arb_headed_bytes(),
        arb_mutated_frame(),
        arb_cut_frame(arb_frame()),
    ]
}

// Decoding: never a panic, every frame kind round trips -----------------------------------

/// Decodes `bytes` (which must not panic, nor may the other-version helpers) and checks that
/// an accepted datagram is the canonical encoding of what was decoded: the decoder is
/// strict, so nothing is half understood. A join (of either mode) may be zero-padded past
/// [`JOIN_MIN_LEN`].
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    let result = Frame::decode(bytes);
    let _ = wire::any_version_join_nonce(bytes);
    let _ = wire::any_version_peer_join_nonce(bytes);
    let _ = wire::any_version_refusal(bytes);
    match result {
        Ok(frame) => {
            prop_assert!(bytes.len() <= MAX_DATAGRAM);
            let canonical = frame.to_bytes();
            if let Frame::ToServer(ToServer::Join { .. }) | Frame::Peer(PeerFrame::Join { .. }) =
                frame
            {
                prop_assert_eq!(&bytes[..canonical.len()], &canonical[..]);
                prop_assert!(bytes[canonical.len()..].iter().all(|&b| b == 0));
            } else {
                prop_assert_eq!(&canonical[..], bytes);
            }
        }
        Err(error) => {
            prop_assert!(!error.to_string().is_empty());
            if bytes.len() > MAX_DATAGRAM {
                prop_assert_eq!(error, DecodeError::TooLarge { len: bytes.len() });
            } else if !bytes.starts_with(&MAGIC) {
                prop_assert_eq!(error, DecodeError::NotAFrame);
            }
        }
    }
    Ok(())
}

#[test]
fn arb_frame_makes_every_kind() {
    let mut runner = TestRunner::deterministic();
    let strategy = arb_frame();
    let mut seen = HashSet::new();
    for _ in 0..2000 {
        let frame = strategy.new_tree(&mut runner).expect("a frame").current();
        seen.insert(frame.kind());
    }
    let client = arb_client_frame();
    for _ in 0..200 {
        let frame = client.new_tree(&mut runner).expect("a frame").current();
        assert!(frame.travels_to_server(), "{frame:?}");
    }
    // Every kind the decoder knows: a bare header of any other kind is an unknown kind.
    let missing: Vec<u8> = (0..=u8::MAX)
        .filter(|&kind| {
            !matches!(
                Frame::decode(&[MAGIC[0], MAGIC[1], VERSION, kind]),
                Err(DecodeError::UnknownKind { .. })
            )
        })
        .filter(|kind| !seen.contains(kind))
        .collect();
    assert!(
        missing.is_empty(),
        "arb_frame never made kinds {missing:02x?}"
    );
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn decode_never_panics_on_random_bytes(bytes in vec(any::<u8>(), 0..=1300)) {
        check_decode(&bytes)?;
    }

    #[test]
    fn decode_never_panics_past_a_valid_header(bytes in arb_headed_bytes()) {
        check_decode(&bytes)?;
    }

    #[test]
    fn decode_never_panics_on_mutated_frames(bytes in arb_mutated_frame()) {
        check_decode(&bytes)?;
    }

    #[test]
    fn decode_never_panics_on_cut_or_relabelled_frames(bytes in arb_cut_frame(arb_frame())) {
        check_decode(&bytes)?;
    }

    #[test]
    fn every_kind_round_trips_and_fits_in_a_datagram(frame in arb_frame()) {
        let bytes = frame.to_bytes();
        prop_assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
        if let Frame::ToServer(ToServer::Join { .. }) | Frame::Peer(PeerFrame::Join { .. }) = frame {
            prop_assert_eq!(bytes.len(), JOIN_MIN_LEN);
        }
        prop_assert_eq!(frame.travels_to_server(), bytes[3] < 0x80);
        prop_assert_eq!(frame.is_peer(), wire::PEER_KINDS.contains(&bytes[3]));
        prop_assert_eq!(Frame::decode(&bytes), Ok(frame));
    }

    #[test]
    fn patching_an_envelope_equals_encoding_with_it(
        frame in arb_frame(),
        envelope in arb_envelope(),
    ) {
        let mut with = frame.clone();
        if let Some(slot) = with.envelope_mut() {
            *slot = envelope;
            let mut patched = frame.to_bytes();
            envelope.patch(&mut patched);
            prop_assert_eq!(&patched, &with.to_bytes());
            prop_assert_eq!(patched.get(ENVELOPE_RANGE).map(<[u8]>::len), Some(24));
            prop_assert_eq!(Frame::decode(&patched), Ok(with));
        }
    }
}

// Command lines: parsed as a model of the rules says --------------------------------------

/// What `command::parse` should answer, written from the rules documented in `command.rs`
/// with `split_whitespace` rather than the parser's own code: one `\n` or `\r\n` is dropped;
/// a blank line is `Empty`; a line whose first visible character is not `/` is `Text`, as
/// typed; `//` is text with one slash less; otherwise the first word names a command (ASCII
/// letters in any case) and the other words are its arguments.
fn model_parse(line: &str, side: Side) -> Result<Input, CommandError> {
    let line = line
        .strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(Input::Empty);
    }
    let visible = line.trim_start();
    if !visible.starts_with('/') {
        return Ok(Input::Text(line.to_owned()));
    }
    if visible.starts_with("//") {
        let slash = line.len() - visible.len();
        return Ok(Input::Text(format!(
            "{}{}",
            &line[..slash],
            &line[slash + 1..]
        )));
    }
    let mut words = visible.split_whitespace();
    let word = words.next().unwrap_or_default();
    let arguments: Vec<&str> = words.collect();
    // The commands that take free text: everything after the command word, trimmed.
    let rest = visible[word.len()..].trim();
    let client_only = |command: &'static str, build: Result<Command, &'static str>| {
        if side == Side::Server {
            return Err(CommandError::WrongSide { command, side });
        }
        build
            .map(Input::Command)
            .map_err(|usage| CommandError::MissingArgument { command, usage })
    };
    match word.to_ascii_lowercase().as_str() {
        "/msg" | "/m" | "/tell" => {
            let (to, text) = rest
                .split_once(char::is_whitespace)
                .map_or((rest, ""), |(to, text)| (to, text.trim()));
            return if to.is_empty() || text.is_empty() {
                Err(CommandError::MissingArgument {
                    command: "/msg",
                    usage: "/msg NAME text",
                })
            } else {
                Ok(Input::Command(Command::Msg {
                    to: to.to_owned(),
                    text: text.to_owned(),
                }))
            };
        }
        "/me" => {
            let built = if rest.is_empty() {
                Err("/me text")
            } else {
                Ok(Command::Me {
                    text: rest.to_owned(),
                })
            };
            return client_only("/me", built);
        }
        "/away" => {
            let reason = (!rest.is_empty()).then(|| rest.to_owned());
            return client_only("/away", Ok(Command::Away { reason }));
        }
        "/back" if side == Side::Client && !rest.is_empty() => {
            return Err(CommandError::UnexpectedArgument {
                command: "/back",
                usage: "/back",
            });
        }
        "/back" => return client_only("/back", Ok(Command::Back)),
        "/nick" if side == Side::Server => {
            return Err(CommandError::WrongSide {
                command: "/nick",
                side,
            });
        }
        "/nick" => {
            return match arguments.as_slice() {
                [] => Err(CommandError::MissingArgument {
                    command: "/nick",
                    usage: "/nick NAME",
                }),
                [name] => Ok(Input::Command(Command::Nick {
                    name: (*name).to_owned(),
                })),
                _ => Err(CommandError::UnexpectedArgument {
                    command: "/nick",
                    usage: "/nick NAME",
                }),
            };
        }
        _ => {}
    }
    type Build = fn(String) -> Command;
    let (name, usage, server_only, build): (&'static str, &'static str, bool, Option<Build>) =
        match word.to_ascii_lowercase().as_str() {
            "/help" => ("/help", "/help", false, None),
            "/list" | "/who" => ("/list", "/list", false, None),
            "/exit" | "/quit" => ("/exit", "/exit", false, None),
            "/kick" => (
                "/kick",
                "/kick NAME",
                true,
                Some(|name| Command::Kick { name }),
            ),
            "/ban" => (
                "/ban",
                "/ban ADDR|NAME",
                true,
                Some(|target| Command::Ban { target }),
            ),
            "/unban" => (
                "/unban",
                "/unban ADDR",
                true,
                Some(|target| Command::Unban { target }),
            ),
            _ => {
                return Err(CommandError::Unknown {
                    command: word.to_owned(),
                });
            }
        };
    if server_only && side == Side::Client {
        return Err(CommandError::WrongSide {
            command: name,
            side,
        });
    }
    let too_many = CommandError::UnexpectedArgument {
        command: name,
        usage,
    };
    match (build, arguments.as_slice()) {
        (None, []) => Ok(Input::Command(match name {
            "/help" => Command::Help,
            "/list" => Command::List,
            _ => Command::Exit,
        })),
        (None, _) => Err(too_many),
        (Some(_), []) => Err(CommandError::MissingArgument {
            command: name,
            usage,
        }),
        (Some(build), [argument]) => Ok(Input::Command(build((*argument).to_owned()))),
        (Some(_), _) => Err(too_many),
    }
}

/// Whitespace of several kinds, Unicode's included (what the parser splits on).
fn arb_space() -> impl Strategy<Value = String> {
    vec(
        select(vec![
            ' ', ' ', '\t', '\u{a0}', '\u{3000}', '\u{85}', '\u{2028}', '\u{b}', '\u{c}', '\r',
        ]),
        0..=2,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// A line shaped like a command: spaces, slashes, a command word (known or not) in random
/// ASCII case, arguments, a line ending.
fn arb_command_line() -> impl Strategy<Value = String> {
    let word = select(vec![
        "help",
        "msg",
        "m",
        "tell",
        "me",
        "nick",
        "away",
        "back",
        "list",
        "who",
        "exit",
        "quit",
        "kick",
        "ban",
        "unban",
        "frob",
        "",
        "\u{212a}ick",
        "kickk",
        "bAn",
    ]);
    let case = vec(any::<bool>(), 8);
    let argument = prop_oneof![
        "[a-z0-9./:]{1,8}",
        arb_string(6, 64),
        Just("1.2.3.0/24".to_owned())
    ];
    (
        arb_space(),
        select(vec!["/", "/", "//", "///", "", "x/"]),
        word,
        case,
        vec((arb_space(), argument), 0..=3),
        arb_space(),
        select(vec!["", "", "\n", "\r\n", "\r", "\n\n", "\r\r\n"]),
    )
        .prop_map(|(lead, slashes, word, case, arguments, trail, ending)| {
            let word: String = word
                .chars()
                .zip(case.iter().cycle())
                .map(|(ch, &upper)| if upper { ch.to_ascii_uppercase() } else { ch })
                .collect();
            let mut line = format!("{lead}{slashes}{word}");
            for (space, argument) in arguments {
                line.push_str(if space.is_empty() { " " } else { &space });
                line.push_str(&argument);
            }
            line.push_str(&trail);
            line.push_str(ending);
            line
        })
}

/// Any line: printable strings, any characters at all, or command-shaped lines.
fn arb_line() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        1 => vec(arb_char(), 0..=40).prop_map(|chars| chars.into_iter().collect()),
        2 => arb_command_line(),
    ]
}

fn check_parse(line: &str) -> Result<(), TestCaseError> {
    for side in [Side::Client, Side::Server] {
        let parsed = command::parse(line, side);
        prop_assert_eq!(
            &parsed,
            &model_parse(line, side),
            "{:?} on {:?}",
            line,
            side
        );
        // One line ending added to a line that has none changes nothing.
        if !line.ends_with(['\n', '\r']) {
            prop_assert_eq!(&command::parse(&format!("{line}\n"), side), &parsed);
            prop_assert_eq!(&command::parse(&format!("{line}\r\n"), side), &parsed);
        }
        if let Err(error) = &parsed {
            let message = error.to_string();
            prop_assert!(!message.contains(['\n', '\r']), "{:?}", message);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn parse_never_panics_and_follows_the_rules(line in arb_line()) {
        check_parse(&line)?;
    }
}

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn parse_handles_very_long_lines(
        start in arb_line(),
        fill in arb_char(),
        count in 10_000usize..150_000,
    ) {
        let line = format!("{start}{}", fill.to_string().repeat(count));
        check_parse(&line)?;
        check_parse(&format!("/kick {}", fill.to_string().repeat(count)))?;
    }
}

// Sanitizing text: no escape survives, printable text is kept -----------------------------

/// The characters Unicode calls bidirectional controls (property `Bidi_Control`), listed
/// here apart from `names::is_invisible_or_bidi` so the check does not trust the code.
fn is_bidi_control(ch: char) -> bool {
    matches!(ch, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text an attacker would send: any characters, heavy on C0, C1, DEL, escape sequences and
/// the format characters around U+2000 and U+FE00.
fn arb_hostile_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        any::<char>(),
        proptest::char::range('\u{0}', '\u{a0}'),
        proptest::char::range('\u{2000}', '\u{206f}'),
        proptest::char::range('\u{fe00}', '\u{feff}'),
        select(vec![
            '\u{1b}', '[', ']', '2', 'J', ';', '\u{7}', '\u{9b}', '\u{61c}'
        ]),
    ];
    vec(ch, 0..=200).prop_map(|chars| chars.into_iter().collect())
}

/// Printable text in several scripts, RTL letters and emoji (single code points: emoji
/// sequences built with U+200D or U+FE0F are not included, since `sanitize` documents those
/// as invisible characters and replaces them).
fn arb_printable_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        proptest::char::range(' ', '~'),
        proptest::char::range('\u{a1}', '\u{ac}'),
        proptest::char::range('\u{ae}', '\u{24f}'),
        proptest::char::range('\u{391}', '\u{3a9}'),
        proptest::char::range('\u{410}', '\u{44f}'),
        proptest::char::range('\u{5d0}', '\u{5ea}'),
        proptest::char::range('\u{627}', '\u{64a}'),
        proptest::char::range('\u{3041}', '\u{3096}'),
        proptest::char::range('\u{4e00}', '\u{9fff}'),
        proptest::char::range('\u{ac00}', '\u{d7a3}'),
        proptest::char::range('\u{1f300}', '\u{1f64f}'),
        proptest::char::range('\u{1f680}', '\u{1f6ff}'),
    ];
    vec(ch, 0..=120).prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn sanitize_leaves_no_control_escape_or_bidi_character(text in arb_hostile_text()) {
        let clean = text::sanitize(&text);
        for ch in clean.chars() {
            // Joiners and variation selectors stay: emoji sequences and some scripts
            // need them, and they neither move nor hide text.
            let joiner = matches!(ch, '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}');
            prop_assert!(
                !ch.is_control()
                    && !is_bidi_control(ch)
                    && (joiner || !names::is_invisible_or_bidi(ch)),
                "U+{:04X} left in {:?}", u32::from(ch), clean
            );
        }
        // Each character is handled on its own: no combination slips through, and cleaning
        // twice changes nothing more.
        let one_by_one: String = text
            .chars()
            .map(|ch| text::sanitize(&ch.to_string()).into_owned())
            .collect();
        prop_assert_eq!(&clean[..], &one_by_one[..]);
        prop_assert_eq!(&text::sanitize(&clean)[..], &clean[..]);
    }

    #[test]
    fn sanitize_keeps_printable_text_unchanged(text in arb_printable_text()) {
        let clean = text::sanitize(&text);
        prop_assert!(matches!(clean, Cow::Borrowed(_)), "{:?} was copied", text);
        prop_assert_eq!(&clean[..], &text[..]);
    }
}

// The server core under hostile traffic: no panic, no amplification -----------------------

/// Addresses that come back, so sessions form and frames find them: loopback ports, the same
/// address written as IPv4-mapped IPv6, IPv6, a service port (53), the server's own address
/// (when the case sets it) and an address the case may ban.
fn pool() -> [SocketAddr; 8] {
    let v4 =
        |last: u8, port: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), port);
    [
        v4(1, 40001),
        v4(1, 40002),
        v4(1, 40003),
        SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped()),
            40001,
        ),
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 40005),
        v4(2, 53),
        v4(1, 4000),
        v4(9, 40009),
    ]
}

/// The pool address the case may ban (by IP: every port at it).
const BANNABLE: usize = 7;

/// Where a datagram comes from: a pool address, or any address at all (the core never
/// touches a network; these are only values).
#[derive(Debug, Clone)]
enum Source {
    Pool(usize),
    Any(SocketAddr),
}

fn arb_source() -> impl Strategy<Value = Source> {
    let any_v4 = (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| Source::Any(SocketAddr::new(IpAddr::V4(ip.into()), port)));
    let any_v6 = (any::<[u8; 16]>(), any::<u16>())
        .prop_map(|(ip, port)| Source::Any(SocketAddr::new(IpAddr::V6(ip.into()), port)));
    prop_oneof![6 => (0..pool().len()).prop_map(Source::Pool), 2 => any_v4, 1 => any_v6]
}

/// What a datagram holds.
#[derive(Debug, Clone)]
enum Payload {
    /// Bytes as generated: random, headed, mutated.
    Bytes(Vec<u8>),
    /// A valid frame as generated (random tokens: a forgery, or a stranger's).
    Frame(Frame),
    /// A valid frame carrying the token the server gave this address, if it has one, and a
    /// small sequence number, so it reaches the session's streams. Joins go as they are.
    Session(Frame),
    /// Plain text, as a guest (or `nc`) sends.
    Text(String),
}

#[derive(Debug, Clone)]
enum Op {
    Send {
        from: Source,
        payload: Payload,
    },
    /// Time passes by this many milliseconds; the timers run.
    Wait {
        ms: u32,
    },
    /// The operator types a line to broadcast.
    Say {
        text: String,
    },
    /// The operator kicks a name.
    Kick {
        name: String,
    },
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        2 => arb_datagram().prop_map(Payload::Bytes),
        1 => vec(any::<u8>(), MAX_DATAGRAM + 1..=4000).prop_map(Payload::Bytes),
        2 => arb_frame().prop_map(Payload::Frame),
        4 => arb_frame().prop_map(Payload::Session),
        1 => arb_string(40, 2000).prop_map(Payload::Text),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (arb_source(), arb_payload()).prop_map(|(from, payload)| Op::Send { from, payload }),
        3 => prop_oneof![0u32..100, 0u32..40_000].prop_map(|ms| Op::Wait { ms }),
        1 => arb_text().prop_map(|text| Op::Say { text }),
        1 => arb_name().prop_map(|name| Op::Kick { name }),
    ]
}

/// The settings a case runs with.
#[derive(Debug, Clone)]
struct Setup {
    guests: bool,
    max_clients: usize,
    flood: Option<(f64, u32)>,
    timeout_ms: u64,
    /// Which pool address the server is bound to, if it knows.
    local: Option<usize>,
    ban: bool,
    wall_ms: i64,
    /// Seconds east of UTC of guests' clocks.
    utc_offset: i32,
}

fn arb_setup() -> impl Strategy<Value = Setup> {
    (
        any::<bool>(),
        1usize..=6,
        prop_oneof![Just(None), Just(Some((5.0, 10))), Just(Some((0.5, 1)))],
        prop_oneof![Just(30_000u64), 300u64..5_000],
        prop_oneof![Just(None), Just(Some(0)), Just(Some(6))],
        any::<bool>(),
        prop_oneof![Just(0i64), Just(1_767_225_600_000), any::<i64>()],
        prop_oneof![Just(0i32), -86_399i32..=86_399],
    )
        .prop_map(
            |(guests, max_clients, flood, timeout_ms, local, ban, wall_ms, utc_offset)| Setup {
                guests,
                max_clients,
                flood,
                timeout_ms,
                local,
                ban,
                wall_ms,
                utc_offset,
            },
        )
}

/// What the test knows about the run so far.
struct Watch {
    /// Addresses the server announced as joined (named or guest), ever.
    registered: HashSet<SocketAddr>,
    /// The token each address was last welcomed with.
    tokens: HashMap<SocketAddr, u64>,
    /// The nonce and cookie of the last challenge sent to each address, so a later join
    /// from there can pass the cookie check, as a real client's would.
    challenges: HashMap<SocketAddr, (u64, u64)>,
    bytes_in: HashMap<SocketAddr, usize>,
    bytes_out: HashMap<SocketAddr, usize>,
}

impl Watch {
    /// Collects what the server queued after one input from `from` (`None`: timers or the
    /// operator) and checks it: every datagram fits in [`MAX_DATAGRAM`] and is a valid
    /// server-to-client frame or a guest's text line; nothing goes to an address that has not
    /// joined, except the answer to `from`. Returns the bytes sent to `from` if it has not
    /// joined (0 if this input made it join). Then notes joins from the events.
    fn collect(
        &mut self,
        server: &mut Server,
        from: Option<SocketAddr>,
    ) -> Result<usize, TestCaseError> {
        let mut to_stranger = 0;
        let mut welcomed = false;
        while let Some(transmit) = server.poll_transmit() {
            let bytes = transmit.to_vec();
            let to = transmit.destination;
            prop_assert!(
                bytes.len() <= MAX_DATAGRAM,
                "{} bytes to {}",
                bytes.len(),
                to
            );
            if wire::is_frame(&bytes) {
                let frame = Frame::decode(&bytes);
                prop_assert!(
                    frame.as_ref().is_ok_and(|f| !f.travels_to_server()),
                    "server sent {:?}",
                    frame
                );
                if let Ok(Frame::ToClient(ToClient::Welcome { token, .. })) = frame {
                    self.tokens.insert(to, token);
                    welcomed |= Some(to) == from;
                }
                if let Ok(Frame::ToClient(ToClient::Challenge { nonce, cookie })) = frame {
                    self.challenges.insert(to, (nonce, cookie));
                }
            } else {
                let text = std::str::from_utf8(&bytes);
                prop_assert!(
                    text.is_ok_and(|t| t.ends_with('\n') && !t.contains('\u{1b}')),
                    "server sent {:?}",
                    bytes
                );
            }
            *self.bytes_out.entry(to).or_default() += bytes.len();
            if !self.registered.contains(&to) {
                prop_assert_eq!(
                    Some(to),
                    from,
                    "{} bytes to {}, which never joined, while handling input from {:?}",
                    bytes.len(),
                    to,
                    from
                );
                to_stranger += bytes.len();
            }
        }
        while let Some(event) = server.poll_event() {
            let _ = render::server_line(&event, false);
            if let ServerEvent::Joined { addr, .. } = event {
                self.registered.insert(addr);
            }
        }
        if welcomed {
            // Only a join whose cookie proved that `from` receives at its address is
            // welcomed: what comes with the welcome (the roster, the history's replay) may
            // be larger than the join.
            return Ok(0);
        }
        Ok(to_stranger)
    }
}

/// What a case may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Everything the ops say, with the tokens the server handed out.
    Everything,
    /// What an off-path attacker can send: no valid join (those ops are skipped) and no
    /// learned token, so no address ever joins (unless as a guest).
    Garbage,
}

/// Runs `ops` against a fresh server set up as `setup` says, checking after every input.
fn run_server(setup: &Setup, ops: &[Op], mode: Mode) -> Result<(), TestCaseError> {
    let pool = pool();
    let config = ServerConfig {
        flood_limit: setup
            .flood
            .and_then(|(rate, burst)| FloodLimit::from_options(rate, burst)),
        timeout: Duration::from_millis(setup.timeout_ms),
        guests: setup.guests,
        max_clients: setup.max_clients,
        // Several pool addresses share an IP; flood kicks are exercised by the flood limit.
        max_per_ip: Some(4),
        flood_kick: Some(2),
        hash_seed: 7,
        utc_offset: chrono::FixedOffset::east_opt(setup.utc_offset).expect("within a day"),
        // Small, so joins replay a full history and lines are trimmed from it.
        history: 8,
        replay: 4,
        // Small, so rooms grow past it and go quiet.
        quiet_above: 5,
    };
    let bans = if setup.ban {
        BanList::parse(&pool[BANNABLE].ip().to_string()).0
    } else {
        BanList::default()
    };
    let mut now = Instant::now();
    let mut server = Server::new(config, bans, now, setup.wall_ms);
    if let Some(local) = setup.local {
        server.set_local_address(pool[local]);
    }
    let mut watch = Watch {
        registered: HashSet::new(),
        tokens: HashMap::new(),
        challenges: HashMap::new(),
        bytes_in: HashMap::new(),
        bytes_out: HashMap::new(),
    };
    for op in ops {
        match op {
            Op::Send { from, payload } => {
                let from = match from {
                    Source::Pool(index) => pool[*index],
                    Source::Any(addr) => *addr,
                };
                let bytes = match payload {
                    Payload::Bytes(bytes) => bytes.clone(),
                    Payload::Frame(frame) => match (mode, frame, watch.challenges.get(&from)) {
                        (
                            Mode::Everything,
                            Frame::ToServer(ToServer::Join { name, .. }),
                            Some(&(nonce, cookie)),
                        ) => Frame::ToServer(ToServer::Join {
                            nonce,
                            cookie,
                            previous_token: 0,
                            history_epoch: 0,
                            history_seen: 0,
                            name: name.clone(),
                        })
                        .to_bytes(),
                        _ => frame.to_bytes(),
                    },
                    Payload::Session(frame) => {
                        let mut frame = frame.clone();
                        if let Some(envelope) = frame.envelope_mut() {
                            envelope.seq %= 70;
                        }
                        if let (Mode::Everything, Some(token), Some(slot)) =
                            (mode, watch.tokens.get(&from), token_mut(&mut frame))
                        {
                            *slot = *token;
                        }
                        frame.to_bytes()
                    }
                    Payload::Text(text) => text.clone().into_bytes(),
                };
                if mode == Mode::Garbage
                    && matches!(
                        Frame::decode(&bytes),
                        Ok(Frame::ToServer(ToServer::Join { .. }))
                    )
                {
                    continue;
                }
                let stranger = !watch.registered.contains(&from);
                *watch.bytes_in.entry(from).or_default() += bytes.len();
                server.handle_datagram(now, from, &bytes);
                let answer = watch.collect(&mut server, Some(from))?;
                if stranger && !setup.guests {
                    prop_assert!(
                        answer <= bytes.len(),
                        "amplification: {} bytes in from {} ({:?}), {} bytes back",
                        bytes.len(),
                        from,
                        Frame::decode(&bytes),
                        answer
                    );
                }
            }
            Op::Wait { ms } => {
                now += Duration::from_millis(u64::from(*ms));
                server.handle_timeout(now);
                watch.collect(&mut server, None)?;
            }
            Op::Say { text } => {
                server.say(now, text);
                watch.collect(&mut server, None)?;
            }
            Op::Kick { name } => {
                let _ = server.kick(now, name);
                watch.collect(&mut server, None)?;
            }
        }
        if let Some(deadline) = server.poll_timeout() {
            // Calling early is harmless; calling when due is what the binary does.
            if deadline <= now {
                server.handle_timeout(now);
                watch.collect(&mut server, None)?;
            }
        }
    }
    prop_assert!(server.clients(now).len() <= setup.max_clients);
    server.shutdown(now);
    watch.collect(&mut server, None)?;
    if !setup.guests {
        if mode == Mode::Garbage {
            prop_assert!(watch.registered.is_empty(), "{:?} joined", watch.registered);
        }
        for (addr, &sent) in &watch.bytes_out {
            if !watch.registered.contains(addr) {
                let received = watch.bytes_in.get(addr).copied().unwrap_or(0);
                prop_assert!(sent <= received, "{addr}: {received} bytes in, {sent} out");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(4000))]

    /// One datagram from an address that never joined, to a server with one client: the
    /// answer is never larger than the datagram (no amplification, no reflection).
    #[test]
    fn a_stranger_gets_back_no_more_bytes_than_it_sent(
        setup in arb_setup(),
        datagram in prop_oneof![
            1 => arb_datagram(),
            2 => arb_cut_frame(arb_client_frame()),
            1 => arb_client_frame().prop_map(|frame| frame.to_bytes()),
        ],
    ) {
        let join = Frame::ToServer(ToServer::Join { nonce: 1, cookie: 0, previous_token: 0, history_epoch: 0, history_seen: 0, name: "alice".to_owned() });
        let ops = [
            Op::Send { from: Source::Pool(0), payload: Payload::Frame(join) },
            Op::Send { from: Source::Pool(1), payload: Payload::Bytes(datagram) },
        ];
        let setup = Setup { guests: false, ..setup };
        run_server(&setup, &ops, Mode::Everything)?;
    }
}

proptest! {
    #![proptest_config(cases(64))]

    /// Everything at once: garbage, forgeries, real joins and session traffic with the
    /// tokens the server handed out, time jumps, the operator talking and kicking.
    #[test]
    fn the_server_core_survives_hostile_traffic(
        setup in arb_setup(),
        ops in vec(arb_op(), 1..=600),
    ) {
        run_server(&setup, &ops, Mode::Everything)?;
    }

    /// Only what an off-path attacker can send: garbage, mutated frames and frames with
    /// guessed tokens, from any address, and never a valid join.
    #[test]
    fn the_server_core_survives_garbage_from_anywhere(
        setup in arb_setup(),
        ops in vec(arb_op(), 1..=600),
    ) {
        run_server(&setup, &ops, Mode::Garbage)?;
    }
}
