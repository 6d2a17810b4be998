//! The layout's rules, beyond the golden bytes: round trips of every kind, truncation,
//! padding, limits, and the fields a receiver must reject.

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

#[rustfmt::skip]
fn every_kind() -> Vec<Frame> {
    let envelope = envelope();
    let acks = envelope.acks;
    vec![
        Frame::ToServer(ToServer::Join { nonce: 42, cookie: 0, previous_token: 0, history_epoch: 0, history_seen: 0, name: "alice".into() }),
        Frame::ToServer(ToServer::Join { nonce: 42, cookie: u64::MAX, previous_token: 0x0BAD_CAFE, history_epoch: u64::MAX, history_seen: 17, name: "alice".into() }),
        Frame::ToClient(ToClient::Challenge { nonce: 42, cookie: 0xDEAD_BEEF }),
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Chat { sent_ms: 1234, text: "héllo wörld 日本 🎉".into() })),
        Frame::ToServer(ToServer::Sequenced(envelope, Request::List)),
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Leave)),
        Frame::ToServer(ToServer::Heartbeat { token: 9, acks }),
        Frame::ToServer(ToServer::ClientAck { token: 9, acks }),
        Frame::ToClient(ToClient::Welcome { nonce: 42, token: u64::MAX, heartbeat_ms: 10_000, flood: FloodTerms { rate_milli: 5000, burst: 10 }, name: "Alice".into() }),
        Frame::ToClient(ToClient::Refused { nonce: 42, reason: RefuseReason::NameTaken }),
        Frame::ToClient(ToClient::Refused { nonce: 0, reason: RefuseReason::VersionUnsupported }),
        Frame::ToClient(ToClient::Refused { nonce: 1, reason: RefuseReason::AddressInUse }),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Message { seq: 1, time_ms: 1_764_000_000_123, from: "bob".into(), text: "hi".into() })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Notice { time_ms: -5, text: "bob joined".into() })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Roster { time_ms: 7, total: 3, offset: 0, entries: vec![ RosterEntry { name: "a".into(), away: String::new(), guest: false }, RosterEntry { name: "bb".into(), away: "lunch 🍜".into(), guest: true }] })),
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Private { sent_ms: 1, to: "bob".into(), text: "psst".into() })),
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Action { sent_ms: 2, text: "waves".into() })),
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Nick { sent_ms: 3, name: "alicia".into() })),
        Frame::ToServer(ToServer::Sequenced(envelope, Request::Away { sent_ms: u64::MAX, reason: String::new() })),
        Frame::ToServer(ToServer::Sequenced(envelope, Request::History { epoch: 5, before: u64::MAX, count: u16::MAX })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::PrivateMessage { time_ms: 3, from: "alice".into(), to: "bob".into(), text: "psst".into() })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::ActionMessage { seq: u64::MAX, time_ms: 3, from: "alice".into(), text: "waves".into() })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Renamed { name: "alicia".into() })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Presence { time_ms: 4, name: "bob".into(), change: PresenceChange::KickedForFlooding })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Presence { time_ms: 4, name: "bob".into(), change: PresenceChange::Renamed { to: "robert".into() } })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Presence { time_ms: 4, name: "zoë".into(), change: PresenceChange::Away { reason: "lunch 🍜".into() } })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Roster { time_ms: 7, total: 0, offset: 0, entries: vec![] })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::PresenceBatch { time_ms: 4, changes: vec![PresenceItem { name: "zoë".into(), change: PresenceChange::Away { reason: "lunch 🍜".into() } }, PresenceItem { name: "bob".into(), change: PresenceChange::TimedOut }] })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::PresenceBatch { time_ms: 4, changes: vec![PresenceItem { name: "al".into(), change: PresenceChange::Joined }] })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Disconnected { time_ms: 9, reason: DisconnectReason::Kicked, text: "bye".into() })),
        Frame::ToClient(ToClient::Sequenced(envelope, Delivery::Missed { last: 99 })),
        Frame::ToClient(ToClient::ServerAck { token: 9, acks, heartbeat_ms: 10_000 }),
        Frame::ToClient(ToClient::LeaveAck { token: 9 }),
        Frame::ToClient(ToClient::NotJoined { token: 9 }),
        Frame::ToClient(ToClient::Probe { token: 9 }),
        Frame::Peer(PeerFrame::Join { nonce: 42, cookie: 0, id: 11, token: 12, clock_ms: 99, flood: FloodTerms::NONE, name: "dave".into() }),
        Frame::Peer(PeerFrame::Challenge { nonce: 42, cookie: 0xBEEF }),
        Frame::Peer(PeerFrame::Welcome { nonce: 42, token: 13, your_joined_ms: 1_764_000_000_000, your_addr: "[::1]:4000".parse().expect("an address"), id: 14, joined_ms: -1, clock_ms: 7, flood: FloodTerms { rate_milli: 500, burst: 3 }, name: "alice".into() }),
        Frame::Peer(PeerFrame::Refused { nonce: 42, reason: RefuseReason::NameTaken }),
        Frame::Peer(PeerFrame::Hello { from_id: 1, to_id: 2, token: 3, echo: 0, clock_ms: 1_000_000, flood: FloodTerms { rate_milli: 5000, burst: 10 } }),
        Frame::Peer(PeerFrame::Ack { token: 9, acks }),
        Frame::Peer(PeerFrame::NotMember { token: 9, reason: GoneReason::TimedOut }),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Chat { time_ms: 5, sent_ms: 4, text: "salut 🎉".into() })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Private { time_ms: 6, sent_ms: 5, text: "psst".into() })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Members { last: true, members: vec![member("bob", "127.0.0.1:5000"), member("zoë", "[::1]:6000")] })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Members { last: false, members: vec![] })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Announce { member: member("carol", "10.0.0.1:4000") })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Gone { id: 77, reason: GoneReason::NameTaken })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Leave)),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::Flooded { dropped: 3 })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::HistoryLine { line: HistoryEntry { epoch: u64::MAX, seq: 1, time_ms: -1, from: "zoë".into(), kind: LineKind::Chat, text: "salut 🎉".into() } })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::HistoryLine { line: HistoryEntry { epoch: 1, seq: u64::MAX, time_ms: i64::MAX, from: String::new(), kind: LineKind::Console, text: String::new() } })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::HistoryEnd { epoch: 1, newest: 0, earlier: 0 })),
        Frame::Peer(PeerFrame::Sequenced(envelope, PeerItem::HistoryRequest { epoch: 0, before: u64::MAX, count: u16::MAX })),
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
    let frame = Frame::ToServer(ToServer::Sequenced(
        Envelope {
            token: 0x0102_0304_0506_0708,
            seq: 0x0A0B_0C0D,
            acks: Acks {
                through: 0x1112_1314,
                also: 0x2122_2324_2526_2728,
            },
        },
        Request::Chat {
            sent_ms: 0x3132_3334_3536_3738,
            text: "hi".into(),
        },
    ));
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
    let with = |envelope| {
        Frame::ToClient(ToClient::Sequenced(
            envelope,
            Delivery::Message {
                seq: 2,
                time_ms: 5,
                from: "bob".into(),
                text: "hi".into(),
            },
        ))
    };
    let mut bytes = with(Envelope::default()).to_bytes();
    envelope().patch(&mut bytes);
    assert_eq!(bytes, with(envelope()).to_bytes());
}

#[test]
fn version_refusal_is_readable_by_any_version() {
    let join = Frame::ToServer(ToServer::Join {
        nonce: 77,
        cookie: 0,
        previous_token: 0,
        history_epoch: 0,
        history_seen: 0,
        name: "al".into(),
    })
    .to_bytes();
    let mut foreign = join.clone();
    foreign[2] = VERSION + 1;
    assert_eq!(any_version_join_nonce(&foreign), Some(77));
    let refusal = Frame::ToClient(ToClient::Refused {
        nonce: 77,
        reason: RefuseReason::VersionUnsupported,
    })
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
            if let Ok(
                Frame::ToClient(ToClient::Sequenced(_, Delivery::Roster { .. }))
                | Frame::Peer(PeerFrame::Sequenced(_, PeerItem::Members { .. })),
            ) = result
            {
                continue;
            }
            assert!(result.is_err(), "{frame:?} cut to {len} bytes decoded");
        }
    }
}

#[test]
fn join_is_padded_and_unpadded_joins_are_rejected() {
    let bytes = Frame::ToServer(ToServer::Join {
        nonce: 0x0102_0304_0506_0708,
        cookie: 0x1112_1314_1516_1718,
        previous_token: 0x2122_2324_2526_2728,
        history_epoch: 0x3132_3334_3536_3738,
        history_seen: 0x4142_4344_4546_4748,
        name: "al".into(),
    })
    .to_bytes();
    assert_eq!(bytes.len(), JOIN_MIN_LEN);
    #[rustfmt::skip]
    let expected = [
        0xFF, b'I', VERSION, 0x01,
        1, 2, 3, 4, 5, 6, 7, 8,
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
        0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38,
        0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
        2, b'a', b'l',
    ];
    assert_eq!(&bytes[..47], &expected);
    assert!(bytes[47..].iter().all(|&b| b == 0));
    let mut dirty = bytes.clone();
    dirty[100] = 1;
    assert_eq!(
        Frame::decode(&dirty),
        Err(DecodeError::UnpaddedJoin { len: JOIN_MIN_LEN })
    );
    assert_eq!(
        Frame::decode(&bytes[..47]),
        Err(DecodeError::UnpaddedJoin { len: 47 })
    );
}

#[test]
fn peer_join_is_padded_and_its_nonce_readable_in_any_version() {
    let join = Frame::Peer(PeerFrame::Join {
        nonce: 0x0102_0304_0506_0708,
        cookie: 0,
        id: 1,
        token: 2,
        clock_ms: 3,
        flood: FloodTerms::NONE,
        name: "dave".into(),
    });
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
    MemberRecord::put(&longest, &mut Writer::frame(&mut record, 0));
    let record = &record[HEADER_LEN..];
    assert_eq!(record.len(), MAX_MEMBER_RECORD_LEN);
    assert_eq!(longest.encoded_len(), MAX_MEMBER_RECORD_LEN);
    let fixed = HEADER_LEN + ENVELOPE_LEN + 1;
    let per_part = (MAX_DATAGRAM - fixed) / MAX_MEMBER_RECORD_LEN;
    let frame = Frame::Peer(PeerFrame::Sequenced(
        envelope(),
        PeerItem::Members {
            last: true,
            members: vec![longest; per_part],
        },
    ));
    let bytes = frame.to_bytes();
    assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
    assert_eq!(Frame::decode(&bytes), Ok(frame));
}

#[test]
fn peer_reason_codes_and_flags_outside_the_tables_are_rejected() {
    let gone = Frame::Peer(PeerFrame::NotMember {
        token: 1,
        reason: GoneReason::Left,
    });
    let mut bytes = gone.to_bytes();
    *bytes.last_mut().expect("not empty") = 9;
    assert_eq!(
        Frame::decode(&bytes),
        Err(DecodeError::BadValue {
            field: "gone reason",
            value: 9
        })
    );
    let mut members = Frame::Peer(PeerFrame::Sequenced(
        envelope(),
        PeerItem::Members {
            last: true,
            members: vec![member("bob", "127.0.0.1:1")],
        },
    ))
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

/// A presence batch is read whole or not at all: its count must match its items exactly,
/// be at least 1, and every item be valid; nothing of a bad one is half-read.
#[test]
fn a_presence_batch_with_a_wrong_count_or_a_bad_item_is_rejected_whole() {
    let item = |name: &str, change| PresenceItem {
        name: name.into(),
        change,
    };
    let batch = |changes| {
        Frame::ToClient(ToClient::Sequenced(
            envelope(),
            Delivery::PresenceBatch {
                time_ms: 4,
                changes,
            },
        ))
        .to_bytes()
    };
    let good = batch(vec![
        item("alice", PresenceChange::Joined),
        item("bob", PresenceChange::Left),
    ]);
    let count_at = HEADER_LEN + ENVELOPE_LEN + 8;
    assert_eq!(good[count_at..count_at + 2], [0, 2]);
    // Cut between the two items: one item short of the count.
    let first_item_end = count_at + 2 + 1 + 5 + 1;
    assert_eq!(
        Frame::decode(&good[..first_item_end]),
        Err(DecodeError::Truncated)
    );
    // A count larger than the items (the last one "missing"), smaller (one left over), 0.
    for (count, error) in [
        (3u16, DecodeError::Truncated),
        (1, DecodeError::TrailingBytes { count: 5 }),
        (
            0,
            DecodeError::BadValue {
                field: "item count",
                value: 0,
            },
        ),
        (u16::MAX, DecodeError::Truncated),
    ] {
        let mut bytes = good.clone();
        bytes[count_at..count_at + 2].copy_from_slice(&count.to_be_bytes());
        assert_eq!(Frame::decode(&bytes), Err(error), "count {count}");
    }
    // A bad change code in the second item, and a name that is not UTF-8 in the first.
    let mut bytes = good.clone();
    *bytes.last_mut().expect("not empty") = 10;
    assert_eq!(
        Frame::decode(&bytes),
        Err(DecodeError::BadValue {
            field: "presence change",
            value: 10
        })
    );
    let mut bytes = good.clone();
    bytes[count_at + 3] = 0xFF;
    assert_eq!(Frame::decode(&bytes), Err(DecodeError::InvalidUtf8));
    // An empty batch is never encoded by the server, and never accepted.
    assert!(Frame::decode(&batch(vec![])).is_err());
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = Frame::ToClient(ToClient::LeaveAck { token: 1 }).to_bytes();
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
            REFUSED_KIND,
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
    let join_header = [&[0xFF, b'I', VERSION, JOIN_KIND][..], &[0; 40]].concat();
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
    let frame = Frame::ToClient(ToClient::Sequenced(
        envelope(),
        Delivery::Message {
            seq: u64::MAX,
            time_ms: i64::MAX,
            from: "é".repeat(MAX_NAME_BYTES / 2),
            text: "x".repeat(MAX_TEXT_BYTES),
        },
    ));
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
    let frame = Frame::ToServer(ToServer::Sequenced(
        envelope(),
        Request::Chat {
            sent_ms: 0,
            text: "ü".repeat(MAX_TEXT_BYTES),
        },
    ));
    let decoded = Frame::decode(&frame.to_bytes()).expect("decodes");
    let Frame::ToServer(ToServer::Sequenced(_, Request::Chat { text, .. })) = decoded else {
        panic!("wrong kind")
    };
    assert_eq!(text.len(), MAX_TEXT_BYTES);
}
