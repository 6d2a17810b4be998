//! Golden tests: the wire bytes pinned byte for byte, so that a change to how frames are
//! laid out in the code cannot change what travels. The first half are the worked
//! examples of the protocol document (section 11, and the `PeerHello` of section 12),
//! copied from there, and section 11 is checked to still show them; the second half give
//! every other frame kind one example, printed by the encoder of version 3 before its code
//! was reorganised (version 4 added the history fields of the join, the message and the
//! action; versions 5 and 6 changed the version byte, and version 6 gave `ServerAck` its
//! `heartbeat_ms`; the presence batch, kind `93`, was written by hand from its layout).
//! Each is checked both ways: the value encodes to exactly these bytes, and these bytes
//! decode to exactly the value.

use super::*;

/// Bytes written as the document writes them: hex pairs separated by spaces.
fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|pair| u8::from_str_radix(pair, 16).expect("a hex pair"))
        .collect()
}

/// A join's bytes: `text`, then zeros up to [`JOIN_MIN_LEN`].
fn padded(text: &str) -> Vec<u8> {
    let mut bytes = hex(text);
    assert!(bytes.len() < JOIN_MIN_LEN);
    bytes.resize(JOIN_MIN_LEN, 0);
    bytes
}

fn assert_golden(frame: Frame, bytes: Vec<u8>) {
    assert_eq!(frame.to_bytes(), bytes, "encoding {frame:?}");
    assert_eq!(Frame::decode(&bytes), Ok(frame), "decoding {bytes:02X?}");
}

/// The protocol document, whose worked examples these tests pin.
const DOCUMENT: &str = include_str!("../../docs/protocol.md");

/// [`assert_golden`], and the document shows exactly these bytes: as one run of hex pairs
/// (line breaks in a block count as spaces, backticks are ignored), a join as its bytes up
/// to the name, then `then N zero bytes`.
fn assert_documented(frame: Frame, bytes: Vec<u8>) {
    let shown = match bytes.iter().rposition(|&byte| byte != 0) {
        Some(last) if bytes.len() == JOIN_MIN_LEN => {
            let zeros = bytes.len() - last - 1;
            format!("{} then {zeros} zero bytes", pairs(&bytes[..=last]))
        }
        _ => pairs(&bytes),
    };
    assert!(
        document_shows(&shown),
        "docs/protocol.md does not show {frame:?} as `{shown}`"
    );
    assert_golden(frame, bytes);
}

/// Whether the document shows `text` (line breaks in a block count as spaces, backticks
/// are ignored).
fn document_shows(text: &str) -> bool {
    let document = DOCUMENT.replace('`', "");
    let document = document.split_whitespace().collect::<Vec<_>>().join(" ");
    document.contains(text)
}

/// Bytes as the document writes them.
fn pairs(bytes: &[u8]) -> String {
    let pairs: Vec<String> = bytes.iter().map(|byte| format!("{byte:02X}")).collect();
    pairs.join(" ")
}

fn acks(through: u32, also: u64) -> Acks {
    Acks { through, also }
}

/// The worked session of the document: alice's and bob's tokens, alice's join nonce.
const ALICE: u64 = 0x779C_D83D_C15C_9EDE;
const BOB: u64 = 0xCEAE_7ECA_5FD8_5209;
const ALICE_NONCE: u64 = 0x03E4_9452_6B51_0082;
const ALICE_COOKIE: u64 = 0x189A_21D2_4D3E_1684;
/// 2025-11-24 16:00:00.163 UTC, in ms since the epoch.
const CHAT_TIME: i64 = 1_764_000_000_163;

fn envelope(token: u64, seq: u32, through: u32) -> Envelope {
    Envelope {
        token,
        seq,
        acks: acks(through, 0),
    }
}

#[test]
#[rustfmt::skip]
fn the_documents_worked_session() {
    assert_documented(
        Frame::ToServer(ToServer::Join { nonce: ALICE_NONCE, cookie: 0, previous_token: 0, history_epoch: 0, history_seen: 0, name: "alice".into() }),
        padded(
            "FF 49 07 01 03 E4 94 52 6B 51 00 82 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 05 61 6C 69 63 65",
        ),
    );
    assert_documented(
        Frame::ToClient(ToClient::Challenge { nonce: ALICE_NONCE, cookie: ALICE_COOKIE }),
        hex("FF 49 07 8B 03 E4 94 52 6B 51 00 82 18 9A 21 D2 4D 3E 16 84"),
    );
    assert_documented(
        Frame::ToServer(ToServer::Join { nonce: ALICE_NONCE, cookie: ALICE_COOKIE, previous_token: 0, history_epoch: 0, history_seen: 0, name: "alice".into() }),
        padded(
            "FF 49 07 01 03 E4 94 52 6B 51 00 82 18 9A 21 D2 4D 3E 16 84 00 00 00 00 00 00 00 00 \
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 05 61 6C 69 63 65",
        ),
    );
    assert_documented(
        Frame::ToClient(ToClient::Welcome { nonce: ALICE_NONCE, token: ALICE, heartbeat_ms: 10_000, flood: FloodTerms { rate_milli: 5000, burst: 10 }, name: "alice".into() }),
        hex(
            "FF 49 07 81 03 E4 94 52 6B 51 00 82 77 9C D8 3D C1 5C 9E DE 00 00 27 10 00 00 13 88 \
             00 0A 05 61 6C 69 63 65",
        ),
    );
    assert_documented(
        Frame::ToClient(ToClient::Sequenced(envelope(ALICE, 1, 0), Delivery::Roster { time_ms: 0x019A_B697_E88F, total: 2, offset: 0, entries: vec![ RosterEntry { name: "alice".into(), ..RosterEntry::default() }, RosterEntry { name: "bob".into(), ..RosterEntry::default() }, ] })),
        hex(
            "FF 49 07 85 77 9C D8 3D C1 5C 9E DE 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 \
             00 00 01 9A B6 97 E8 8F 00 02 00 00 05 61 6C 69 63 65 00 00 03 62 6F 62 00 00",
        ),
    );
    assert_documented(
        Frame::ToServer(ToServer::ClientAck { token: ALICE, acks: acks(1, 0) }),
        hex("FF 49 07 06 77 9C D8 3D C1 5C 9E DE 00 00 00 01 00 00 00 00 00 00 00 00"),
    );
    let chat = "h\u{e9}llo \u{1F389}";
    assert_documented(
        Frame::ToServer(ToServer::Sequenced(envelope(ALICE, 1, 1), Request::Chat { sent_ms: 30, text: chat.into() })),
        hex(
            "FF 49 07 02 77 9C D8 3D C1 5C 9E DE 00 00 00 01 00 00 00 01 \
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1E \
             00 0B 68 C3 A9 6C 6C 6F 20 F0 9F 8E 89",
        ),
    );
    let message = |envelope| {
        Frame::ToClient(ToClient::Sequenced(
            envelope,
            Delivery::Message {
                seq: 1,
                time_ms: CHAT_TIME,
                from: "alice".into(),
                text: chat.into(),
            },
        ))
    };
    assert_documented(
        message(envelope(ALICE, 2, 1)),
        hex(
            "FF 49 07 83 77 9C D8 3D C1 5C 9E DE 00 00 00 02 00 00 00 01 \
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 \
             00 00 01 9A B6 97 E8 A3 05 61 6C 69 63 65 \
             00 0B 68 C3 A9 6C 6C 6F 20 F0 9F 8E 89",
        ),
    );
    assert_documented(
        message(envelope(BOB, 3, 0)),
        hex(
            "FF 49 07 83 CE AE 7E CA 5F D8 52 09 00 00 00 03 00 00 00 00 \
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 \
             00 00 01 9A B6 97 E8 A3 05 61 6C 69 63 65 \
             00 0B 68 C3 A9 6C 6C 6F 20 F0 9F 8E 89",
        ),
    );
    assert_documented(
        Frame::ToServer(ToServer::Heartbeat { token: ALICE, acks: acks(2, 0) }),
        hex("FF 49 07 03 77 9C D8 3D C1 5C 9E DE 00 00 00 02 00 00 00 00 00 00 00 00"),
    );
    assert_documented(
        Frame::ToClient(ToClient::ServerAck { token: ALICE, acks: acks(1, 0), heartbeat_ms: 10_000 }),
        hex("FF 49 07 86 77 9C D8 3D C1 5C 9E DE 00 00 00 01 00 00 00 00 00 00 00 00 00 00 27 10"),
    );
}

/// The fixed values of the document's reference table.
const NONCE: u64 = 0x1122_3344_5566_7788;
const COOKIE: u64 = 0x99AA_BBCC_DDEE_FF00;
const TOKEN: u64 = 0x0123_4567_89AB_CDEF;
const TIME: i64 = 1_764_000_000_123;

fn reference_envelope() -> Envelope {
    Envelope {
        token: TOKEN,
        seq: 5,
        acks: acks(3, 0b101),
    }
}

/// Header and envelope of the reference table's sequenced frames of kind `kind`.
fn sequenced(kind: &str, rest: &str) -> Vec<u8> {
    hex(&format!(
        "FF 49 07 {kind} 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
         {rest}"
    ))
}

#[test]
#[rustfmt::skip]
fn the_documents_reference_table() {
    let envelope = reference_envelope();
    let name = |name: &str| name.to_owned();
    assert_documented(
        Frame::ToServer(ToServer::Join { nonce: NONCE, cookie: 0, previous_token: 0, history_epoch: 0, history_seen: 0, name: name("alice") }),
        padded(
            "FF 49 07 01 11 22 33 44 55 66 77 88 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 05 61 6C 69 63 65",
        ),
    );
    assert_documented(
        Frame::ToClient(ToClient::Challenge { nonce: NONCE, cookie: COOKIE }),
        hex("FF 49 07 8B 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 00"),
    );
    assert_documented(
        Frame::ToServer(ToServer::Join { nonce: NONCE, cookie: COOKIE, previous_token: 0, history_epoch: 0, history_seen: 0, name: name("alice") }),
        padded(
            "FF 49 07 01 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 00 00 00 00 00 00 00 00 00 \
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 05 61 6C 69 63 65",
        ),
    );
    assert_documented(
        Frame::ToClient(ToClient::Welcome { nonce: NONCE, token: TOKEN, heartbeat_ms: 10_000, flood: FloodTerms { rate_milli: 5000, burst: 10 }, name: name("alice") }),
        hex(
            "FF 49 07 81 11 22 33 44 55 66 77 88 01 23 45 67 89 AB CD EF 00 00 27 10 00 00 13 88 \
             00 0A 05 61 6C 69 63 65",
        ),
    );
    assert_documented(
        Frame::ToClient(ToClient::Refused { nonce: NONCE, reason: RefuseReason::VersionUnsupported }),
        hex("FF 49 07 82 11 22 33 44 55 66 77 88 05"),
    );
    assert_documented(
        Frame::ToClient(ToClient::Refused { nonce: NONCE, reason: RefuseReason::TooManyFromAddress }),
        hex("FF 49 07 82 11 22 33 44 55 66 77 88 07"),
    );
    let ack_bytes = |kind: &str| {
        hex(&format!(
            "FF 49 07 {kind} 01 23 45 67 89 AB CD EF 00 00 00 03 00 00 00 00 00 00 00 05"
        ))
    };
    let acks = envelope.acks;
    assert_documented(
        Frame::ToServer(ToServer::Heartbeat { token: TOKEN, acks }),
        ack_bytes("03"),
    );
    assert_documented(
        Frame::ToServer(ToServer::ClientAck { token: TOKEN, acks }),
        ack_bytes("06"),
    );
    assert_documented(
        Frame::ToClient(ToClient::ServerAck { token: TOKEN, acks, heartbeat_ms: 100_000 }),
        hex("FF 49 07 86 01 23 45 67 89 AB CD EF 00 00 00 03 00 00 00 00 00 00 00 05 00 01 86 A0"),
    );
    assert_documented(
        Frame::ToServer(ToServer::Sequenced(envelope, Request::List)),
        sequenced("05", ""),
    );
    assert_documented(
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Leave)),
        sequenced("04", ""),
    );
    assert_documented(
        Frame::ToClient(ToClient::LeaveAck { token: TOKEN }),
        hex("FF 49 07 87 01 23 45 67 89 AB CD EF"),
    );
    assert_documented(
        Frame::ToClient(ToClient::NotJoined { token: TOKEN }),
        hex("FF 49 07 89 01 23 45 67 89 AB CD EF"),
    );
    assert_documented(
        Frame::ToClient(ToClient::Sequenced(Envelope { seq: 40, ..envelope }, Delivery::Missed { last: 1063 })),
        hex(
            "FF 49 07 8A 01 23 45 67 89 AB CD EF 00 00 00 28 00 00 00 03 00 00 00 00 00 00 00 05 \
             00 00 04 27",
        ),
    );
    assert_documented(
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Roster { time_ms: TIME, total: 2, offset: 0, entries: vec![ RosterEntry { name: name("alice"), ..RosterEntry::default() }, RosterEntry { name: name("bob"), away: name("lunch"), guest: false }, ] })),
        // Each entry ends with its flags byte (`00`: not a guest), as section 5 says: 59 bytes.
        sequenced(
            "85",
            "00 00 01 9A B6 97 E8 7B 00 02 00 00 05 61 6C 69 63 65 00 00 03 62 6F 62 05 6C 75 6E \
             63 68 00",
        ),
    );
    assert_documented(
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Private { sent_ms: 1000, to: name("bob"), text: name("psst") })),
        sequenced(
            "07",
            "00 00 00 00 00 00 03 E8 03 62 6F 62 00 04 70 73 73 74",
        ),
    );
    assert_documented(
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Action { sent_ms: 1000, text: name("waves") })),
        sequenced("08", "00 00 00 00 00 00 03 E8 00 05 77 61 76 65 73"),
    );
    assert_documented(
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Nick { sent_ms: 1000, name: name("alicia") })),
        sequenced("09", "00 00 00 00 00 00 03 E8 06 61 6C 69 63 69 61"),
    );
    assert_documented(
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Away { sent_ms: 1000, reason: name("lunch") })),
        sequenced("0A", "00 00 00 00 00 00 03 E8 05 6C 75 6E 63 68"),
    );
    assert_documented(
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Away { sent_ms: 1000, reason: String::new() })),
        sequenced("0A", "00 00 00 00 00 00 03 E8 00"),
    );
    assert_documented(
        Frame::ToServer(ToServer::Sequenced(envelope, Request::History { epoch: 0x0011_2233_4455_6677, before: 42, count: 50 })),
        sequenced("0B", "00 11 22 33 44 55 66 77 00 00 00 00 00 00 00 2A 00 32"),
    );
    assert_documented(
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::PrivateMessage { time_ms: TIME, from: name("alice"), to: name("bob"), text: name("psst") })),
        sequenced(
            "8C",
            "00 00 01 9A B6 97 E8 7B 05 61 6C 69 63 65 03 62 6F 62 00 04 70 73 73 74",
        ),
    );
    assert_documented(
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::ActionMessage { seq: 7, time_ms: TIME, from: name("alice"), text: name("waves") })),
        sequenced(
            "8D",
            "00 00 00 00 00 00 00 07 00 00 01 9A B6 97 E8 7B 05 61 6C 69 63 65 00 05 77 61 76 65 73",
        ),
    );
    assert_documented(
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Renamed { name: name("alicia") })),
        sequenced("8E", "06 61 6C 69 63 69 61"),
    );
    assert_documented(
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Disconnected { time_ms: TIME, reason: DisconnectReason::Kicked, text: name("you were kicked by the operator") })),
        sequenced(
            "88",
            "00 00 01 9A B6 97 E8 7B 01 00 1F 79 6F 75 20 77 65 72 65 20 6B 69 63 6B 65 64 20 62 \
             79 20 74 68 65 20 6F 70 65 72 61 74 6F 72",
        ),
    );
}

#[test]
fn the_documents_peer_hello() {
    assert_golden(
        Frame::Peer(PeerFrame::Hello {
            from_id: 0x0102_0304_0506_0708,
            to_id: 0x1112_1314_1516_1718,
            token: 0x2122_2324_2526_2728,
            echo: 0,
            clock_ms: 60_000,
            flood: FloodTerms {
                rate_milli: 5000,
                burst: 10,
            },
        }),
        hex(
            "FF 49 07 C4 01 02 03 04 05 06 07 08 11 12 13 14 15 16 17 18 \
             21 22 23 24 25 26 27 28 00 00 00 00 00 00 00 00 00 00 00 00 00 00 EA 60 \
             00 00 13 88 00 0A",
        ),
    );
}

fn member(id: u64, addr: &str, name: &str) -> MemberRecord {
    MemberRecord {
        id,
        joined_ms: TIME,
        addr: addr.parse().expect("an address"),
        name: name.into(),
    }
}

/// One example of every kind the document shows no bytes for, and of the field shapes
/// (IPv6 addresses, guest flags, presence changes with a name) it leaves out.
#[rustfmt::skip]
fn other_kinds() -> Vec<Frame> {
    let envelope = reference_envelope();
    let acks = envelope.acks;
    let flood = FloodTerms {
        rate_milli: 500,
        burst: 3,
    };
    vec![
        Frame::ToServer(ToServer::Join { nonce: NONCE, cookie: COOKIE, previous_token: TOKEN, history_epoch: 0x0011_2233_4455_6677, history_seen: 42, name: "zo\u{eb}".into() }),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Notice { time_ms: TIME, text: "bob joined".into() })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Roster { time_ms: TIME, total: 9, offset: 8, entries: vec![RosterEntry { name: "guest1".into(), away: String::new(), guest: true }] })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Presence { time_ms: TIME, name: "alice".into(), change: PresenceChange::Joined })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Presence { time_ms: TIME, name: "bob".into(), change: PresenceChange::Renamed { to: "robert".into() } })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Presence { time_ms: TIME, name: "bob".into(), change: PresenceChange::Away { reason: "lunch".into() } })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Presence { time_ms: TIME, name: "bob".into(), change: PresenceChange::Back })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Disconnected { time_ms: TIME, reason: DisconnectReason::TimedOut, text: String::new() })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::HistoryLine { line: HistoryEntry { epoch: 0x0011_2233_4455_6677, seq: 42, time_ms: TIME, from: "alice".into(), kind: LineKind::Action, text: "waves".into() } })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::HistoryEnd { epoch: 0x0011_2233_4455_6677, newest: 42, earlier: 22 })),
        Frame::ToClient(ToClient::Probe { token: TOKEN }),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::PresenceBatch { time_ms: TIME, changes: vec![ PresenceItem { name: "alice".into(), change: PresenceChange::Joined }, PresenceItem { name: "bob".into(), change: PresenceChange::Renamed { to: "robert".into() } }, PresenceItem { name: "carol".into(), change: PresenceChange::Back }, ] })),
        Frame::Peer(PeerFrame::Join { nonce: NONCE, cookie: COOKIE, id: 0x0102_0304_0506_0708, token: TOKEN, clock_ms: 60_000, flood, name: "dave".into() }),
        Frame::Peer(PeerFrame::Challenge { nonce: NONCE, cookie: COOKIE }),
        Frame::Peer(PeerFrame::Welcome { nonce: NONCE, token: TOKEN, your_joined_ms: TIME, your_addr: "192.168.1.20:4000".parse().expect("an address"), id: 0x0102_0304_0506_0708, joined_ms: TIME - 1000, clock_ms: 60_000, flood, name: "alice".into() }),
        Frame::Peer(PeerFrame::Welcome { nonce: NONCE, token: TOKEN, your_joined_ms: TIME, your_addr: "[2001:db8::1]:4000".parse().expect("an address"), id: 0x0102_0304_0506_0708, joined_ms: TIME - 1000, clock_ms: 60_000, flood: FloodTerms::NONE, name: "alice".into() }),
        Frame::Peer(PeerFrame::Refused { nonce: NONCE, reason: RefuseReason::IsAServer }),
        Frame::ToClient(ToClient::Refused { nonce: NONCE, reason: RefuseReason::Busy }),
        Frame::Peer(PeerFrame::Ack { token: TOKEN, acks }),
        Frame::Peer(PeerFrame::NotMember { token: TOKEN, reason: GoneReason::TimedOut }),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Chat { time_ms: TIME, sent_ms: 1000, text: "salut".into() })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Private { time_ms: TIME, sent_ms: 1000, text: "psst".into() })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Members { last: true, members: vec![ member(7, "127.0.0.1:5000", "bob"), member(8, "[::1]:6000", "carol"), ] })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Members { last: false, members: vec![] })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Announce { member: member(9, "10.0.0.1:4000", "erin") })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Gone { id: 9, reason: GoneReason::NameTaken })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Leave)),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Flooded { dropped: 3 })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Action { time_ms: TIME, sent_ms: 1000, text: "waves".into() })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Nick { sent_ms: 1000, name: "paula".into() })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Away { sent_ms: 1000, reason: "lunch".into() })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Away { sent_ms: 1000, reason: String::new() })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::HistoryLine { line: HistoryEntry { epoch: 0x0A0B_0C0D_0E0F_1011, seq: 21, time_ms: TIME, from: "bob".into(), kind: LineKind::Action, text: "waves".into() } })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::HistoryEnd { epoch: 0x0A0B_0C0D_0E0F_1011, newest: 25, earlier: 5 })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::HistoryRequest { epoch: 0x0A0B_0C0D_0E0F_1011, before: u64::MAX, count: 20 })),
    ]
}

/// What [`other_kinds`] encoded to, in the same order; `+` at the end: then zeros up to
/// [`JOIN_MIN_LEN`].
const OTHER_KINDS_BYTES: [&str; 35] = [
    "FF 49 07 01 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 00 01 23 45 67 89 AB CD EF \
     00 11 22 33 44 55 66 77 00 00 00 00 00 00 00 2A 04 7A 6F C3 AB +",
    "FF 49 07 84 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 00 0A 62 6F 62 20 6A 6F 69 6E 65 64",
    "FF 49 07 85 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 00 09 00 08 06 67 75 65 73 74 31 00 01",
    "FF 49 07 8F 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 05 61 6C 69 63 65 01",
    "FF 49 07 8F 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 03 62 6F 62 07 06 72 6F 62 65 72 74",
    "FF 49 07 8F 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 03 62 6F 62 08 05 6C 75 6E 63 68",
    "FF 49 07 8F 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 03 62 6F 62 09",
    "FF 49 07 88 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 04 00 00",
    "FF 49 07 91 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 11 22 33 44 55 66 77 00 00 00 00 00 00 00 2A 00 00 01 9A B6 97 E8 7B \
     05 61 6C 69 63 65 02 00 05 77 61 76 65 73",
    "FF 49 07 92 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 11 22 33 44 55 66 77 00 00 00 00 00 00 00 2A 00 00 00 00 00 00 00 16",
    "FF 49 07 90 01 23 45 67 89 AB CD EF",
    "FF 49 07 93 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 00 03 05 61 6C 69 63 65 01 03 62 6F 62 07 06 72 6F 62 65 72 \
     74 05 63 61 72 6F 6C 09",
    "FF 49 07 C0 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 00 01 02 03 04 05 06 07 08 \
     01 23 45 67 89 AB CD EF 00 00 00 00 00 00 EA 60 00 00 01 F4 00 03 04 64 61 76 65 +",
    "FF 49 07 C1 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 00",
    "FF 49 07 C2 11 22 33 44 55 66 77 88 01 23 45 67 89 AB CD EF 00 00 01 9A B6 97 E8 7B \
     04 C0 A8 01 14 0F A0 01 02 03 04 05 06 07 08 00 00 01 9A B6 97 E4 93 00 00 00 00 00 \
     00 EA 60 00 00 01 F4 00 03 05 61 6C 69 63 65",
    "FF 49 07 C2 11 22 33 44 55 66 77 88 01 23 45 67 89 AB CD EF 00 00 01 9A B6 97 E8 7B \
     06 20 01 0D B8 00 00 00 00 00 00 00 00 00 00 00 01 0F A0 01 02 03 04 05 06 07 08 00 \
     00 01 9A B6 97 E4 93 00 00 00 00 00 00 EA 60 00 00 00 00 00 00 05 61 6C 69 63 65",
    "FF 49 07 C3 11 22 33 44 55 66 77 88 09",
    "FF 49 07 82 11 22 33 44 55 66 77 88 0B",
    "FF 49 07 C5 01 23 45 67 89 AB CD EF 00 00 00 03 00 00 00 00 00 00 00 05",
    "FF 49 07 C6 01 23 45 67 89 AB CD EF 02",
    "FF 49 07 D0 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 00 00 00 00 00 00 03 E8 00 05 73 61 6C 75 74",
    "FF 49 07 D1 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 00 00 00 00 00 00 03 E8 00 04 70 73 73 74",
    "FF 49 07 D2 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     01 00 00 00 00 00 00 00 07 00 00 01 9A B6 97 E8 7B 04 7F 00 00 01 13 88 03 62 6F 62 \
     00 00 00 00 00 00 00 08 00 00 01 9A B6 97 E8 7B 06 00 00 00 00 00 00 00 00 00 00 00 \
     00 00 00 00 01 17 70 05 63 61 72 6F 6C",
    "FF 49 07 D2 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00",
    "FF 49 07 D3 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 00 00 00 00 00 09 00 00 01 9A B6 97 E8 7B 04 0A 00 00 01 0F A0 04 65 72 69 6E",
    "FF 49 07 D4 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 00 00 00 00 00 09 03",
    "FF 49 07 D5 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05",
    "FF 49 07 D6 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 00 03",
    "FF 49 07 D7 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 01 9A B6 97 E8 7B 00 00 00 00 00 00 03 E8 00 05 77 61 76 65 73",
    "FF 49 07 D8 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 00 00 00 00 03 E8 05 70 61 75 6C 61",
    "FF 49 07 D9 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 00 00 00 00 03 E8 05 6C 75 6E 63 68",
    "FF 49 07 D9 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     00 00 00 00 00 00 03 E8 00",
    "FF 49 07 DA 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     0A 0B 0C 0D 0E 0F 10 11 00 00 00 00 00 00 00 15 00 00 01 9A B6 97 E8 7B 03 62 6F 62 \
     02 00 05 77 61 76 65 73",
    "FF 49 07 DB 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     0A 0B 0C 0D 0E 0F 10 11 00 00 00 00 00 00 00 19 00 00 00 00 00 00 00 05",
    "FF 49 07 DC 01 23 45 67 89 AB CD EF 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 05 \
     0A 0B 0C 0D 0E 0F 10 11 FF FF FF FF FF FF FF FF 00 14",
];

#[test]
fn every_other_kind() {
    let frames = other_kinds();
    assert_eq!(frames.len(), OTHER_KINDS_BYTES.len());
    for (frame, text) in frames.into_iter().zip(OTHER_KINDS_BYTES) {
        let bytes = match text.strip_suffix(" +") {
            Some(text) => padded(text),
            None => hex(text),
        };
        assert_golden(frame, bytes);
    }
}

#[test]
fn every_kind_has_a_golden_example() {
    let mut kinds: Vec<u8> = OTHER_KINDS_BYTES
        .iter()
        .map(|text| hex(&text[..11])[3])
        .collect();
    kinds.extend([0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B]);
    kinds.extend([
        0x81, 0x82, 0x83, 0x86, 0x87, 0x89, 0x8A, 0x8B, 0x8C, 0x8D, 0x8E, 0xC4,
    ]);
    kinds.sort_unstable();
    kinds.dedup();
    let known: Vec<u8> = (0..=u8::MAX)
        .filter(|&kind| {
            !matches!(
                Frame::decode(&[0xFF, b'I', VERSION, kind]),
                Err(DecodeError::UnknownKind { .. })
            )
        })
        .collect();
    assert_eq!(kinds, known);
}

#[test]
fn the_documents_packed_datagram() {
    let chat = |seq, text: &str| {
        Frame::ToServer(ToServer::Sequenced(
            envelope(ALICE, seq, 1),
            Request::Chat {
                sent_ms: 30,
                text: text.into(),
            },
        ))
        .to_bytes()
    };
    let frames = [chat(1, "héllo 🎉"), chat(2, "!")];
    let mut bytes = PACKED_HEADER.to_vec();
    bytes.push(2);
    for frame in &frames {
        bytes.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        bytes.extend_from_slice(frame);
    }
    assert!(
        document_shows(&pairs(&bytes)),
        "docs/protocol.md does not show the packed datagram as `{}`",
        pairs(&bytes)
    );
    let inner = unpack(&bytes).expect("the document's packed datagram is valid");
    assert_eq!(inner, [&frames[0][..], &frames[1][..]]);

    // The same two frames as a run: one token and one set of acknowledgements.
    let run = hex(
        "FF 49 07 E1 02 77 9C D8 3D C1 5C 9E DE 00 00 00 01 00 00 00 00 \
        00 00 00 00 00 1A 02 00 00 00 01 00 00 00 00 00 00 00 1E 00 0B \
        68 C3 A9 6C 6C 6F 20 F0 9F 8E 89 00 10 02 00 00 00 02 00 00 00 \
        00 00 00 00 1E 00 01 21",
    );
    assert_eq!(run.len(), 71);
    assert_eq!(run[..4], RUN_HEADER);
    assert!(
        document_shows(&pairs(&run)),
        "docs/protocol.md does not show the run as `{}`",
        pairs(&run)
    );
    let inner = unpack(&run).expect("the document's run is valid");
    assert_eq!(inner, [&frames[0][..], &frames[1][..]]);
}
