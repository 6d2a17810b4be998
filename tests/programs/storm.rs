//! The garbage storm (parser robustness), end to end with the real binaries: a
//! server on loopback with three named clients chatting while raw sockets fire 100 000
//! random datagrams at it, of random sizes up to the largest UDP payload (65 507 bytes):
//! pure random bytes, the frame header followed by random bytes, valid frames mutated,
//! valid frames with random tokens, and packed datagrams of such frames (valid, or mutated:
//! cut, a length or the count changed). The server must stay up and keep serving, and every
//! client must print every chat line exactly once.
//!
//! The storm goes as fast as the server reads: each sender waits for the answer to a probe
//! every few datagrams (see [`fire`]). Faster would only exercise the kernel, which drops
//! what does not fit in the server's socket buffer, and the server would parse a fraction of
//! the storm. Datagrams may still be dropped, the clients' included; the clients'
//! reliability layer repeats what was lost. What counts is that the server survives and the
//! messages arrive. The storm's figures (datagrams and bytes sent, rate, drops, the server's
//! memory before and after) are printed for the closing note: run with
//! `--nocapture` to see them.
//!
//! Every random choice comes from a [`Rng`] with a fixed seed per sender, so a storm
//! is the same datagrams every run (their timing, and so what the kernel drops, is not).
//! Nothing here sleeps "long enough": the clients type when the storm has reached a given
//! count, and every wait has a deadline.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{
    LineMatcher, Process, ServerOptions, TestServer, WAIT, join_client, matching, split_stamp,
};
use crate::rng::Rng;
use icq::wire::Acks;
use icq::wire::{
    self, DisconnectReason, Envelope, FloodTerms, Frame, GoneReason, MAGIC, MAX_DATAGRAM,
    MAX_NAME_BYTES, MAX_TEXT_BYTES, MemberRecord, PresenceChange, PresenceItem, RefuseReason,
    RosterEntry, VERSION,
};
use icq::wire::{
    Delivery, HistoryEntry, LineKind, PeerFrame, PeerItem, Request, ToClient, ToServer,
};

/// How many datagrams the storm fires in all.
const DATAGRAMS: u64 = 100_000;

/// How many sockets (one thread each) fire them.
const SENDERS: u64 = 4;

/// The largest UDP payload over IPv4: 65 535 less the IPv4 and UDP headers.
const MAX_UDP_PAYLOAD: usize = 65_507;

/// Lines each client types during the storm.
const LINES_PER_CLIENT: u64 = 20;

/// The clients that chat through the storm.
const CLIENTS: [&str; 3] = ["alice", "bob", "carol"];

/// Bounds the storm, should the machine be so loaded that it cannot send 100 000 datagrams
/// in this time (it takes a few seconds); the test then fails rather than hangs.
const STORM_LIMIT: Duration = Duration::from_secs(90);

/// How long after the storm every line may take to reach every client. The clients repeat a
/// lost frame at most 2 s apart; this leaves room for a loaded machine.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

/// Sizes on the edges that matter: empty, the header, header and nonce (a bare join of
/// another version), a refusal, the join padding, the frame limit, the UDP limit.
const EDGE_SIZES: [usize; 14] = [
    0,
    1,
    2,
    3,
    4,
    12,
    13,
    511,
    512,
    513,
    MAX_DATAGRAM - 1,
    MAX_DATAGRAM,
    MAX_DATAGRAM + 1,
    MAX_UDP_PAYLOAD,
];

/// A datagram size: mostly within a frame's limit (where the decoder has most to do), often
/// far beyond it, sometimes exactly on an edge.
fn random_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..80 => rng.below(MAX_DATAGRAM + 101),
        80..95 => MAX_DATAGRAM + 101 + rng.below(MAX_UDP_PAYLOAD - MAX_DATAGRAM - 100),
        _ => EDGE_SIZES[rng.below(EDGE_SIZES.len())],
    }
}

/// A string of ASCII, accented, CJK, emoji and control characters, at most `max_bytes` long.
fn random_string(rng: &mut Rng, max_chars: usize, max_bytes: usize) -> String {
    const ODD: [char; 10] = [
        'é', '日', '🎉', '\u{0}', '\u{1b}', '\u{7f}', '\u{9b}', '\u{202e}', '\u{200b}', ' ',
    ];
    let chars = rng.below(max_chars + 1);
    let text: String = (0..chars)
        .map(|_| {
            if rng.chance(0.80) {
                char::from(b'a' + rng.below(26) as u8)
            } else {
                ODD[rng.below(ODD.len())]
            }
        })
        .collect();
    wire::truncate_to_char_boundary(&text, max_bytes).to_owned()
}

fn random_name(rng: &mut Rng) -> String {
    random_string(rng, 40, MAX_NAME_BYTES)
}

fn random_text(rng: &mut Rng) -> String {
    let max_chars = if rng.chance(0.20) { MAX_TEXT_BYTES } else { 40 };
    random_string(rng, max_chars, MAX_TEXT_BYTES)
}

fn random_acks(rng: &mut Rng) -> Acks {
    Acks {
        through: rng.next_u64() as u32,
        also: rng.next_u64(),
    }
}

/// A random token and acknowledgements, and a sequence number that is small half the time
/// (inside a session's window, were the token right).
fn random_envelope(rng: &mut Rng) -> Envelope {
    let seq = if rng.chance(0.50) {
        rng.below(80) as u32
    } else {
        rng.next_u64() as u32
    };
    Envelope {
        token: rng.next_u64(),
        seq,
        acks: random_acks(rng),
    }
}

/// Random flood terms: none, the usual, or anything.
fn random_terms(rng: &mut Rng) -> FloodTerms {
    match rng.below(3) {
        0 => FloodTerms::NONE,
        1 => FloodTerms {
            rate_milli: 5000,
            burst: 10,
        },
        _ => FloodTerms {
            rate_milli: rng.next_u64() as u32,
            burst: rng.next_u64() as u16,
        },
    }
}

/// How many kinds [`random_frame`] makes.
const KINDS: usize = 50;

/// A valid frame of a random kind with random fields (and so, for every kind that carries
/// one, a random token). Every kind is listed here once: a new kind is one more arm (and
/// [`KINDS`] one more), and `random_frame_makes_every_kind` checks none is forgotten.
fn random_frame(rng: &mut Rng) -> Frame {
    match rng.below(KINDS) {
        0 => Frame::ToServer(ToServer::Join {
            nonce: rng.next_u64(),
            cookie: if rng.chance(0.50) { 0 } else { rng.next_u64() },
            previous_token: if rng.chance(0.50) { 0 } else { rng.next_u64() },
            history_epoch: if rng.chance(0.50) { 0 } else { rng.next_u64() },
            history_seen: rng.next_u64(),
            name: random_name(rng),
        }),
        1 => Frame::ToServer(ToServer::Sequenced(
            random_envelope(rng),
            Request::Chat {
                sent_ms: rng.next_u64(),
                text: random_text(rng),
            },
        )),
        2 => Frame::ToServer(ToServer::Sequenced(random_envelope(rng), Request::List)),
        3 => Frame::ToServer(ToServer::Sequenced(random_envelope(rng), Request::Leave)),
        4 => Frame::ToServer(ToServer::Heartbeat {
            token: rng.next_u64(),
            acks: random_acks(rng),
        }),
        5 => Frame::ToServer(ToServer::ClientAck {
            token: rng.next_u64(),
            acks: random_acks(rng),
        }),
        6 => Frame::ToClient(ToClient::Welcome {
            nonce: rng.next_u64(),
            token: rng.next_u64(),
            heartbeat_ms: rng.next_u64() as u32,
            flood: random_terms(rng),
            name: random_name(rng),
        }),
        7 => Frame::ToClient(ToClient::Refused {
            nonce: rng.next_u64(),
            reason: pick(rng, RefuseReason::ALL),
        }),
        8 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::Message {
                seq: rng.next_u64(),
                time_ms: rng.next_u64() as i64,
                from: random_name(rng),
                text: random_text(rng),
            },
        )),
        9 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::Notice {
                time_ms: rng.next_u64() as i64,
                text: random_text(rng),
            },
        )),
        10 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::Roster {
                time_ms: rng.next_u64() as i64,
                total: rng.next_u64() as u16,
                offset: rng.next_u64() as u16,
                entries: (0..rng.below(8))
                    .map(|_| RosterEntry {
                        name: random_string(rng, 12, 48),
                        away: random_string(rng, 4, 16),
                        guest: rng.chance(0.50),
                    })
                    .collect(),
            },
        )),
        11 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::Disconnected {
                time_ms: rng.next_u64() as i64,
                reason: pick(rng, DisconnectReason::ALL),
                text: random_text(rng),
            },
        )),
        12 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::Missed {
                last: rng.next_u64() as u32,
            },
        )),
        13 => Frame::ToClient(ToClient::ServerAck {
            token: rng.next_u64(),
            acks: random_acks(rng),
            heartbeat_ms: rng.next_u64() as u32,
        }),
        14 => Frame::ToClient(ToClient::LeaveAck {
            token: rng.next_u64(),
        }),
        15 => Frame::ToClient(ToClient::NotJoined {
            token: rng.next_u64(),
        }),
        16 => Frame::ToClient(ToClient::Challenge {
            nonce: rng.next_u64(),
            cookie: rng.next_u64(),
        }),
        17 => Frame::ToServer(ToServer::Sequenced(
            random_envelope(rng),
            Request::Private {
                sent_ms: rng.next_u64(),
                to: random_name(rng),
                text: random_text(rng),
            },
        )),
        18 => Frame::ToServer(ToServer::Sequenced(
            random_envelope(rng),
            Request::Action {
                sent_ms: rng.next_u64(),
                text: random_text(rng),
            },
        )),
        19 => Frame::ToServer(ToServer::Sequenced(
            random_envelope(rng),
            Request::Nick {
                sent_ms: rng.next_u64(),
                name: random_name(rng),
            },
        )),
        20 => Frame::ToServer(ToServer::Sequenced(
            random_envelope(rng),
            Request::Away {
                sent_ms: rng.next_u64(),
                reason: random_name(rng),
            },
        )),
        21 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::PrivateMessage {
                time_ms: rng.next_u64() as i64,
                from: random_name(rng),
                to: random_name(rng),
                text: random_text(rng),
            },
        )),
        22 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::ActionMessage {
                seq: rng.next_u64(),
                time_ms: rng.next_u64() as i64,
                from: random_name(rng),
                text: random_text(rng),
            },
        )),
        23 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::Renamed {
                name: random_name(rng),
            },
        )),
        24 => Frame::Peer(PeerFrame::Join {
            nonce: rng.next_u64(),
            cookie: if rng.chance(0.50) { 0 } else { rng.next_u64() },
            id: rng.next_u64(),
            token: rng.next_u64(),
            clock_ms: rng.next_u64(),
            flood: random_terms(rng),
            name: random_name(rng),
        }),
        25 => Frame::Peer(PeerFrame::Challenge {
            nonce: rng.next_u64(),
            cookie: rng.next_u64(),
        }),
        26 => Frame::Peer(PeerFrame::Welcome {
            nonce: rng.next_u64(),
            token: rng.next_u64(),
            your_joined_ms: rng.next_u64() as i64,
            your_addr: random_addr(rng),
            id: rng.next_u64(),
            joined_ms: rng.next_u64() as i64,
            clock_ms: rng.next_u64(),
            flood: random_terms(rng),
            name: random_name(rng),
        }),
        27 => Frame::Peer(PeerFrame::Refused {
            nonce: rng.next_u64(),
            reason: RefuseReason::NameTaken,
        }),
        28 => Frame::Peer(PeerFrame::Hello {
            from_id: rng.next_u64(),
            to_id: rng.next_u64(),
            token: rng.next_u64(),
            echo: rng.next_u64(),
            clock_ms: rng.next_u64(),
            flood: random_terms(rng),
        }),
        29 => Frame::Peer(PeerFrame::Ack {
            token: rng.next_u64(),
            acks: random_acks(rng),
        }),
        30 => Frame::Peer(PeerFrame::NotMember {
            token: rng.next_u64(),
            reason: GoneReason::TimedOut,
        }),
        31 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::Chat {
                time_ms: rng.next_u64() as i64,
                sent_ms: rng.next_u64(),
                text: random_text(rng),
            },
        )),
        32 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::Private {
                time_ms: rng.next_u64() as i64,
                sent_ms: rng.next_u64(),
                text: random_text(rng),
            },
        )),
        33 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::Members {
                last: rng.chance(0.50),
                members: (0..rng.below(6)).map(|_| random_member(rng)).collect(),
            },
        )),
        34 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::Announce {
                member: random_member(rng),
            },
        )),
        35 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::Gone {
                id: rng.next_u64(),
                reason: GoneReason::Left,
            },
        )),
        36 => Frame::Peer(PeerFrame::Sequenced(random_envelope(rng), PeerItem::Leave)),
        37 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::Flooded {
                dropped: rng.next_u64() as u32,
            },
        )),
        38 => Frame::ToClient(ToClient::Probe {
            token: rng.next_u64(),
        }),
        40 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::Action {
                time_ms: rng.next_u64() as i64,
                sent_ms: rng.next_u64(),
                text: random_text(rng),
            },
        )),
        41 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::Nick {
                sent_ms: rng.next_u64(),
                name: random_name(rng),
            },
        )),
        42 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::Away {
                sent_ms: rng.next_u64(),
                reason: random_name(rng),
            },
        )),
        43 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::HistoryLine {
                line: random_history_entry(rng),
            },
        )),
        44 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::HistoryEnd {
                epoch: rng.next_u64(),
                newest: rng.next_u64(),
                earlier: rng.next_u64(),
            },
        )),
        45 => Frame::ToServer(ToServer::Sequenced(
            random_envelope(rng),
            Request::History {
                epoch: rng.next_u64(),
                before: rng.next_u64(),
                count: rng.next_u64() as u16,
            },
        )),
        46 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::HistoryLine {
                line: random_history_entry(rng),
            },
        )),
        47 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::HistoryEnd {
                epoch: rng.next_u64(),
                newest: rng.next_u64(),
                earlier: rng.next_u64(),
            },
        )),
        48 => Frame::Peer(PeerFrame::Sequenced(
            random_envelope(rng),
            PeerItem::HistoryRequest {
                epoch: rng.next_u64(),
                before: rng.next_u64(),
                count: rng.next_u64() as u16,
            },
        )),
        49 => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::PresenceBatch {
                time_ms: rng.next_u64() as i64,
                // Up to four items of at most 259 bytes: within a datagram.
                changes: (0..1 + rng.below(4))
                    .map(|_| PresenceItem {
                        name: random_name(rng),
                        change: match rng.below(3) {
                            0 => PresenceChange::Joined,
                            1 => PresenceChange::TimedOut,
                            _ => PresenceChange::Renamed {
                                to: random_name(rng),
                            },
                        },
                    })
                    .collect(),
            },
        )),
        _ => Frame::ToClient(ToClient::Sequenced(
            random_envelope(rng),
            Delivery::Presence {
                time_ms: rng.next_u64() as i64,
                name: random_name(rng),
                change: match rng.below(4) {
                    0 => PresenceChange::Joined,
                    1 => PresenceChange::KickedForFlooding,
                    2 => PresenceChange::Renamed {
                        to: random_name(rng),
                    },
                    _ => PresenceChange::Away {
                        reason: random_string(rng, 4, 16),
                    },
                },
            },
        )),
    }
}

/// One of `values`, each equally likely.
fn pick<T: Copy>(rng: &mut Rng, values: &[T]) -> T {
    values[rng.below(values.len())]
}

/// A random IPv4 or IPv6 address and port.
fn random_addr(rng: &mut Rng) -> SocketAddr {
    let ip: std::net::IpAddr = if rng.chance(0.50) {
        std::net::Ipv4Addr::from(rng.next_u64() as u32).into()
    } else {
        std::net::Ipv6Addr::from(u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()))
            .into()
    };
    SocketAddr::new(ip, rng.next_u64() as u16)
}

/// A peer-mode member record with random fields.
fn random_member(rng: &mut Rng) -> MemberRecord {
    MemberRecord {
        id: rng.next_u64(),
        joined_ms: rng.next_u64() as i64,
        addr: random_addr(rng),
        name: random_name(rng),
    }
}

/// The position of a frame's kind in [`random_frame`]. No wildcard arm, so a new kind does
/// not compile until it is counted.
fn kind_index(frame: &Frame) -> usize {
    match frame {
        Frame::ToServer(ToServer::Join { .. }) => 0,
        Frame::ToServer(ToServer::Sequenced(_, Request::Chat { .. })) => 1,
        Frame::ToServer(ToServer::Sequenced(_, Request::List)) => 2,
        Frame::ToServer(ToServer::Sequenced(_, Request::Leave)) => 3,
        Frame::ToServer(ToServer::Heartbeat { .. }) => 4,
        Frame::ToServer(ToServer::ClientAck { .. }) => 5,
        Frame::ToClient(ToClient::Welcome { .. }) => 6,
        Frame::ToClient(ToClient::Refused { .. }) => 7,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::Message { .. })) => 8,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::Notice { .. })) => 9,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::Roster { .. })) => 10,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::Disconnected { .. })) => 11,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::Missed { .. })) => 12,
        Frame::ToClient(ToClient::ServerAck { .. }) => 13,
        Frame::ToClient(ToClient::LeaveAck { .. }) => 14,
        Frame::ToClient(ToClient::NotJoined { .. }) => 15,
        Frame::ToClient(ToClient::Challenge { .. }) => 16,
        Frame::ToServer(ToServer::Sequenced(_, Request::Private { .. })) => 17,
        Frame::ToServer(ToServer::Sequenced(_, Request::Action { .. })) => 18,
        Frame::ToServer(ToServer::Sequenced(_, Request::Nick { .. })) => 19,
        Frame::ToServer(ToServer::Sequenced(_, Request::Away { .. })) => 20,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::PrivateMessage { .. })) => 21,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::ActionMessage { .. })) => 22,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::Renamed { .. })) => 23,
        Frame::Peer(PeerFrame::Join { .. }) => 24,
        Frame::Peer(PeerFrame::Challenge { .. }) => 25,
        Frame::Peer(PeerFrame::Welcome { .. }) => 26,
        Frame::Peer(PeerFrame::Refused { .. }) => 27,
        Frame::Peer(PeerFrame::Hello { .. }) => 28,
        Frame::Peer(PeerFrame::Ack { .. }) => 29,
        Frame::Peer(PeerFrame::NotMember { .. }) => 30,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Chat { .. })) => 31,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Private { .. })) => 32,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Members { .. })) => 33,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Announce { .. })) => 34,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Gone { .. })) => 35,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Leave)) => 36,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Flooded { .. })) => 37,
        Frame::ToClient(ToClient::Probe { .. }) => 38,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::Presence { .. })) => 39,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Action { .. })) => 40,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Nick { .. })) => 41,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Away { .. })) => 42,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::HistoryLine { .. })) => 43,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::HistoryEnd { .. })) => 44,
        Frame::ToServer(ToServer::Sequenced(_, Request::History { .. })) => 45,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::HistoryLine { .. })) => 46,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::HistoryEnd { .. })) => 47,
        Frame::Peer(PeerFrame::Sequenced(_, PeerItem::HistoryRequest { .. })) => 48,
        Frame::ToClient(ToClient::Sequenced(_, Delivery::PresenceBatch { .. })) => 49,
    }
}

/// A history line with every field random (client–server and peer alike).
fn random_history_entry(rng: &mut Rng) -> HistoryEntry {
    HistoryEntry {
        epoch: rng.next_u64(),
        seq: rng.next_u64(),
        time_ms: rng.next_u64() as i64,
        from: random_name(rng),
        kind: random_line_kind(rng),
        text: random_text(rng),
    }
}

/// One of the line kinds a history line may carry.
fn random_line_kind(rng: &mut Rng) -> LineKind {
    pick(rng, LineKind::ALL)
}

/// Changes a datagram one to four times: flip a bit, overwrite, insert or delete a byte,
/// truncate, append random bytes, or grow it to a random size.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        // Half the changes hit the first 48 bytes: header, envelope, length prefixes.
        let at = if rng.chance(0.50) {
            rng.below(48)
        } else {
            rng.below(len.max(1))
        };
        match rng.below(7) {
            0 if len > 0 => bytes[at % len] ^= 1 << rng.below(8),
            1 if len > 0 => bytes[at % len] = rng.byte(),
            2 => bytes.insert(at % (len + 1), rng.byte()),
            3 if len > 0 => {
                bytes.remove(at % len);
            }
            4 => bytes.truncate(at % (len + 1)),
            5 => {
                let extra = 1 + rng.below(16);
                bytes.extend((0..extra).map(|_| rng.byte()));
            }
            6 => {
                let size = random_size(rng).max(len);
                let start = bytes.len();
                bytes.resize(size, 0);
                rng.fill(&mut bytes[start..]);
            }
            _ => {}
        }
    }
}

/// What a storm datagram was made as.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Random,
    Headed,
    Mutated,
    Forged,
    Packed,
}

/// Writes one storm datagram into `out`, at most [`MAX_UDP_PAYLOAD`] bytes.
fn storm_datagram(rng: &mut Rng, out: &mut Vec<u8>) -> Shape {
    out.clear();
    let shape = make_datagram(rng, out);
    out.truncate(MAX_UDP_PAYLOAD);
    shape
}

fn make_datagram(rng: &mut Rng, out: &mut Vec<u8>) -> Shape {
    match rng.below(100) {
        0..30 => {
            out.resize(random_size(rng), 0);
            rng.fill(out);
            Shape::Random
        }
        30..55 => {
            let version = if rng.chance(0.80) {
                VERSION
            } else {
                rng.byte()
            };
            let kind = match rng.below(3) {
                0 => rng.below(0x11) as u8,
                1 => 0x80 + rng.below(0x11) as u8,
                _ => rng.byte(),
            };
            out.extend_from_slice(&[MAGIC[0], MAGIC[1], version, kind]);
            let size = random_size(rng).max(out.len());
            out.resize(size, 0);
            // Half the tails are small bytes, so length prefixes look plausible.
            if rng.chance(0.50) {
                rng.fill(&mut out[4..]);
            } else {
                for byte in &mut out[4..] {
                    *byte = rng.below(4) as u8;
                }
            }
            Shape::Headed
        }
        55..70 => {
            random_frame(rng).encode(out);
            mutate(rng, out);
            Shape::Mutated
        }
        70..85 => {
            // Two to eight frames behind the packed header, as a sender packs them (a join
            // among them is rejected whole), then perhaps mutated like a single frame.
            out.extend_from_slice(&wire::PACKED_HEADER);
            let count = 2 + rng.below(7) as u8;
            out.push(count);
            let mut frame = Vec::new();
            for _ in 0..count {
                frame.clear();
                random_frame(rng).encode(&mut frame);
                out.extend_from_slice(&(frame.len() as u16).to_be_bytes());
                out.extend_from_slice(&frame);
            }
            if rng.chance(0.50) {
                mutate(rng, out);
            }
            Shape::Packed
        }
        _ => {
            random_frame(rng).encode(out);
            Shape::Forged
        }
    }
}

/// What one sender did.
#[derive(Debug, Default, Clone, Copy)]
struct SenderReport {
    datagrams: u64,
    bytes: u64,
    by_shape: [u64; 5],
    /// Valid joins the generator made and replaced: an address that joined would be a chat
    /// member, not an attacker.
    joins_replaced: u64,
    /// Answers to storm datagrams.
    replies: u64,
    reply_bytes: u64,
    /// Probes sent (see [`fire`]), their bytes, and how many got no answer in time.
    probes: u64,
    probe_bytes: u64,
    probes_unanswered: u64,
}

/// After this many datagrams or bytes, a sender waits until the server has read what it sent
/// (see [`fire`]).
const WINDOW_DATAGRAMS: u64 = 16;
const WINDOW_BYTES: usize = 32 * 1024;

/// How long a sender waits for the answer to a probe before going on without it (the kernel
/// may have dropped the probe or its answer).
const PROBE_WAIT: Duration = Duration::from_millis(100);

/// Fires `quota` datagrams at `server` from a socket of its own, counting every one in
/// `fired` and telling `milestones` each time the total crosses a chat milestone.
///
/// The storm goes as fast as the server reads, not faster: after every
/// [`WINDOW_DATAGRAMS`] datagrams or [`WINDOW_BYTES`] bytes the sender sends a probe (a
/// heartbeat with a token of its own, which the server answers with a 12-byte `NotJoined`
/// repeating it) and waits for the answer: the server reads its socket in order, so by then
/// it has read everything sent before. Without this the kernel would drop most of the storm
/// at the server's full socket buffer, and the server would parse only a fraction of it.
fn fire(
    seed: u64,
    quota: u64,
    server: SocketAddr,
    fired: &AtomicU64,
    milestones: &Sender<u64>,
    deadline: Instant,
) -> SenderReport {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a storm socket");
    socket
        .set_write_timeout(Some(WAIT))
        .expect("set the storm socket's write timeout");
    let mut rng = Rng::new(seed);
    let mut report = SenderReport::default();
    let mut datagram = Vec::with_capacity(MAX_UDP_PAYLOAD);
    let mut buffer = vec![0u8; 65_536];
    let step = DATAGRAMS / (LINES_PER_CLIENT + 1);
    let (mut window, mut window_bytes) = (0, 0);
    while report.datagrams < quota {
        let shape = loop {
            let shape = storm_datagram(&mut rng, &mut datagram);
            if matches!(
                Frame::decode(&datagram),
                Ok(Frame::ToServer(ToServer::Join { .. }))
            ) {
                report.joins_replaced += 1;
                continue;
            }
            break shape;
        };
        if let Err(e) = socket.send_to(&datagram, server) {
            panic!("storm send of {} bytes failed: {e}", datagram.len());
        }
        report.datagrams += 1;
        report.bytes += datagram.len() as u64;
        report.by_shape[shape as usize] += 1;
        let total = fired.fetch_add(1, Ordering::Relaxed) + 1;
        if total.is_multiple_of(step) && total / step <= LINES_PER_CLIENT {
            let _ = milestones.send(total / step);
        }
        window += 1;
        window_bytes += datagram.len();
        if window >= WINDOW_DATAGRAMS || window_bytes >= WINDOW_BYTES {
            probe(&socket, server, seed, &mut buffer, &mut report);
            (window, window_bytes) = (0, 0);
            assert!(
                Instant::now() < deadline,
                "the storm overran {STORM_LIMIT:?}"
            );
        }
    }
    probe(&socket, server, seed, &mut buffer, &mut report);
    report
}

/// Sends a probe and waits up to [`PROBE_WAIT`] for its answer, counting the answers to
/// storm datagrams that come before it.
fn probe(
    socket: &UdpSocket,
    server: SocketAddr,
    seed: u64,
    buffer: &mut [u8],
    report: &mut SenderReport,
) {
    let token = (seed << 32) | report.probes;
    let probe = Frame::ToServer(ToServer::Heartbeat {
        token,
        acks: Acks::default(),
    })
    .to_bytes();
    if let Err(e) = socket.send_to(&probe, server) {
        panic!("probe send failed: {e}");
    }
    report.probes += 1;
    report.probe_bytes += probe.len() as u64;
    let until = Instant::now() + PROBE_WAIT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            report.probes_unanswered += 1;
            return;
        }
        socket
            .set_read_timeout(Some(left))
            .expect("set the storm socket's read timeout");
        let Ok((len, _)) = socket.recv_from(buffer) else {
            report.probes_unanswered += 1;
            return;
        };
        report.reply_bytes += len as u64;
        // The server packs what it answers this socket in one turn (wire version 5): the
        // probe's answer may come inside a packed datagram, behind answers to the storm.
        let datagram = &buffer[..len];
        let frames = if wire::is_packed(datagram) {
            wire::unpack(datagram).unwrap_or_default()
        } else {
            vec![datagram.into()]
        };
        let answer = Frame::ToClient(ToClient::NotJoined { token });
        let others = frames
            .iter()
            .filter(|frame| Frame::decode(frame).as_ref() != Ok(&answer))
            .count();
        report.replies += others as u64;
        if others < frames.len() {
            return;
        }
    }
}

/// How many datagrams the kernel has dropped at the IPv4 UDP socket bound to `port`, because
/// its receive buffer was full (the last column of /proc/net/udp).
fn socket_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
    table
        .lines()
        .skip(1)
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            (u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| fields.last()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no socket on port {port} in /proc/net/udp"))
}

/// The server's resident and peak memory (`VmRSS`, `VmHWM` in /proc/PID/status), in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The chat line `[HH:MM:SS] from: text` (no bell: the clients run with `--no-bell`).
fn chat_line(from: &str, text: &str) -> impl LineMatcher + use<> {
    let wanted = format!("{from}: {text}");
    matching(
        format!("the chat line `[HH:MM:SS] {wanted}`"),
        move |line: &str| split_stamp(line).is_some_and(|(_, rest)| rest == wanted),
    )
}

/// What client `name` types at milestone `k`.
fn storm_line(name: &str, k: u64) -> String {
    format!("{name} says {k:02} through the storm ✓")
}

fn assert_still_running(server: &mut TestServer) {
    if let Some(status) = server.process.try_exit_status() {
        server
            .process
            .fail(&format!("the server exited during the storm: {status}"));
    }
}

#[test]
fn random_frame_makes_every_kind() {
    let mut rng = Rng::new(1);
    let mut seen = [false; KINDS];
    for _ in 0..1000 {
        let frame = random_frame(&mut rng);
        let bytes = frame.to_bytes();
        assert!(bytes.len() <= MAX_DATAGRAM, "{frame:?}");
        assert_eq!(Frame::decode(&bytes).as_ref(), Ok(&frame));
        seen[kind_index(&frame)] = true;
    }
    assert!(seen.iter().all(|&s| s), "kinds never made: {seen:?}");
}

#[test]
fn the_server_survives_a_garbage_storm_while_three_clients_chat() {
    let mut server = TestServer::start_with(ServerOptions::default().args(&["--flood-rate", "0"]));
    let address = server.address();
    let mut clients: Vec<Process> = CLIENTS
        .iter()
        .map(|name| join_client(&address, name, &["--no-bell"]))
        .collect();
    for name in CLIENTS {
        server
            .process
            .expect_line(format!("-- {name} joined from "), WAIT);
    }
    let pid = server.process.id();
    let (rss_before, _) = memory_kib(pid);
    let drops_before = socket_drops(server.addr.port());

    let start = Instant::now();
    let deadline = start + STORM_LIMIT;
    let fired = Arc::new(AtomicU64::new(0));
    let (milestones, milestone_rx) = mpsc::channel();
    let senders: Vec<_> = (0..SENDERS)
        .map(|index| {
            let fired = Arc::clone(&fired);
            let milestones = milestones.clone();
            let target = server.addr;
            let seed = 0x5707_0000 + index;
            thread::Builder::new()
                .name(format!("storm-{index}"))
                .spawn(move || {
                    fire(
                        seed,
                        DATAGRAMS / SENDERS,
                        target,
                        &fired,
                        &milestones,
                        deadline,
                    )
                })
                .expect("start a storm thread")
        })
        .collect();
    drop(milestones);

    // The clients type as the storm passes each milestone: one line each, twenty times.
    for k in 1..=LINES_PER_CLIENT {
        let within = deadline.saturating_duration_since(Instant::now());
        match milestone_rx.recv_timeout(within) {
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => panic!("the storm stalled before milestone {k}"),
            // The senders are gone: one of them panicked; joining it below says why.
            Err(RecvTimeoutError::Disconnected) => break,
        }
        for (client, name) in clients.iter_mut().zip(CLIENTS) {
            client.send_line(&storm_line(name, k));
        }
    }
    let reports: Vec<SenderReport> = senders
        .into_iter()
        .map(|sender| sender.join().expect("a storm thread panicked"))
        .collect();
    let storm = start.elapsed();
    let dropped = socket_drops(server.addr.port()) - drops_before;
    assert_still_running(&mut server);

    // Every client prints every line exactly once: all sixty arrive, then a line sent after
    // them (by a client that joins only now, which shows the server still serves), and
    // nothing in between twice.
    let expected: Vec<(&str, String)> = (1..=LINES_PER_CLIENT)
        .flat_map(|k| CLIENTS.iter().map(move |name| (*name, storm_line(name, k))))
        .collect();
    for client in &mut clients {
        let matchers: Vec<_> = expected
            .iter()
            .map(|(from, text)| chat_line(from, text))
            .collect();
        let wanted: Vec<&dyn LineMatcher> =
            matchers.iter().map(|m| m as &dyn LineMatcher).collect();
        client.expect_lines_unordered(&wanted, DELIVERY_LIMIT);
    }
    let delivered = start.elapsed();
    let mut dave = join_client(&address, "dave", &["--no-bell"]);
    dave.send_line("after the storm");
    for client in clients.iter_mut().chain([&mut dave]) {
        client.expect_line(chat_line("dave", "after the storm"), WAIT);
    }
    for client in &mut clients {
        for (from, text) in &expected {
            let matcher = chat_line(from, text);
            let count = client
                .seen()
                .iter()
                .filter(|line| matcher.is_match(&line.text))
                .count();
            if count != 1 {
                client.fail(&format!("`{from}: {text}` printed {count} times"));
            }
        }
    }
    assert_still_running(&mut server);
    let (rss_after, peak) = memory_kib(pid);

    let total = reports.iter().fold(SenderReport::default(), |mut sum, r| {
        sum.datagrams += r.datagrams;
        sum.bytes += r.bytes;
        for (s, n) in sum.by_shape.iter_mut().zip(r.by_shape) {
            *s += n;
        }
        sum.joins_replaced += r.joins_replaced;
        sum.replies += r.replies;
        sum.reply_bytes += r.reply_bytes;
        sum.probes += r.probes;
        sum.probe_bytes += r.probe_bytes;
        sum.probes_unanswered += r.probes_unanswered;
        sum
    });
    let seconds = storm.as_secs_f64();
    println!(
        "storm: {} datagrams ({} random, {} headed, {} mutated, {} forged, {} packed; {} \
         valid joins replaced), {:.1} MB, in {seconds:.2} s from {SENDERS} sockets: {:.0} datagrams/s, \
         {:.0} MB/s",
        total.datagrams,
        total.by_shape[Shape::Random as usize],
        total.by_shape[Shape::Headed as usize],
        total.by_shape[Shape::Mutated as usize],
        total.by_shape[Shape::Forged as usize],
        total.by_shape[Shape::Packed as usize],
        total.joins_replaced,
        total.bytes as f64 / 1e6,
        total.datagrams as f64 / seconds,
        total.bytes as f64 / 1e6 / seconds,
    );
    println!(
        "storm: {} probes ({} unanswered within {PROBE_WAIT:?}); the kernel dropped {dropped} \
         datagrams at the server's full socket buffer, so the server read about {} of the {} \
         datagrams and probes",
        total.probes,
        total.probes_unanswered,
        (total.datagrams + total.probes).saturating_sub(dropped),
        total.datagrams + total.probes,
    );
    println!(
        "storm: the server answered the storm sockets {} frames, {} bytes (probes' answers \
         included); all {} lines had reached all {} clients {:.2} s after the storm ended",
        total.replies + total.probes - total.probes_unanswered,
        total.reply_bytes,
        expected.len(),
        CLIENTS.len(),
        delivered.saturating_sub(storm).as_secs_f64(),
    );
    println!(
        "storm: server memory (VmRSS) {rss_before} KiB before, {rss_after} KiB after; peak \
         (VmHWM) {peak} KiB"
    );
    assert_eq!(total.datagrams, DATAGRAMS);
    // Nothing the storm sent joined, so the server may not answer with more than it got.
    let sent = total.bytes + total.probe_bytes;
    assert!(
        total.reply_bytes <= sent,
        "{sent} bytes sent, {} bytes answered",
        total.reply_bytes
    );
}
