//! Packed datagrams, without sockets: several frames for one receiver in one datagram.
//!
//! This file owns three promises. A packed datagram is decoded frame by frame, each frame
//! as strictly as if it had come alone, and one that is cut, lies about a length, mixes
//! directions or holds a join is rejected whole: the server acts on none of its frames.
//! What one turn queues for a receiver goes in one datagram (five broadcasts, one datagram
//! of five frames; a guest's lines one after the other, each ending in `\n`), while a frame
//! alone in its turn goes out at once as it is. And the room works the same with packing
//! on: every line arrives once, in order, through loss (`lossy.rs` runs its conversation
//! packed too). The grouping itself is `icq::proto::packing`'s unit tests.

use std::net::SocketAddr;

use icq::peer::PeerConfig;
use icq::proto::packing;
use icq::server::{ServerConfig, ServerEvent};
use icq::wire::{
    self, Acks, DecodeError, Delivery, ENVELOPE_RANGE, Frame, MAX_DATAGRAM, PACKED_HEADER,
    PeerFrame, RUN_HEADER, RUN_SAVING, ToClient, ToServer,
};

use crate::sim::mesh::{self, PeerSim};
use crate::sim::room::{Sim, chat_frame, forge_join, join_frame, messages};
use crate::sim::{Datagram, addr};

fn unlimited() -> ServerConfig {
    ServerConfig {
        flood_limit: None,
        ..ServerConfig::default()
    }
}

/// A packed datagram of `frames`, written by hand as the document lays it out (so that
/// the tests can also write what no sender would).
fn packed(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = PACKED_HEADER.to_vec();
    out.push(frames.len() as u8);
    for frame in frames {
        out.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// A run (kind `E1`) of `frames`, frames of one stream, written by hand as the document
/// lays it out: the first frame's token, the last one's acknowledgements, then each frame
/// as its kind, sequence number and body behind its length.
fn run(frames: &[Vec<u8>]) -> Vec<u8> {
    let envelope = |frame: &[u8]| wire::Envelope::read(frame).expect("a sequenced frame");
    let (first, last) = (envelope(&frames[0]), envelope(&frames[frames.len() - 1]));
    let mut out = RUN_HEADER.to_vec();
    out.push(frames.len() as u8);
    out.extend_from_slice(&first.token.to_be_bytes());
    out.extend_from_slice(&last.acks.through.to_be_bytes());
    out.extend_from_slice(&last.acks.also.to_be_bytes());
    for frame in frames {
        out.extend_from_slice(&((frame.len() - RUN_SAVING) as u16).to_be_bytes());
        out.push(frame[3]);
        out.extend_from_slice(&envelope(frame).seq.to_be_bytes());
        out.extend_from_slice(&frame[ENVELOPE_RANGE.end..]);
    }
    out
}

/// The two forms of a packed datagram, by name, for the tests that hold for both.
const FORMS: [(&str, Writer); 2] = [("packed", packed), ("run", run)];

/// Writes frames as one packed datagram of some form.
type Writer = fn(&[Vec<u8>]) -> Vec<u8>;

/// A room with alice (a forged session, so the test knows her every sequence number) and
/// bob (a real client, who shows what is broadcast). Returns alice's address and token,
/// and bob's address.
fn room() -> (Sim, SocketAddr, u64, SocketAddr) {
    let mut sim = Sim::new(unlimited());
    let bob = sim.join("bob");
    let alice = addr([10, 0, 0, 1], 5000);
    let replies = forge_join(&mut sim, alice, "alice");
    let token = replies
        .iter()
        .find_map(|frame| match frame {
            Frame::ToClient(ToClient::Welcome { token, .. }) => Some(*token),
            _ => None,
        })
        .expect("alice is welcomed");
    sim.run_for(std::time::Duration::from_millis(200));
    sim.clear_events();
    (sim, alice, token, bob)
}

/// Alice's chat lines `seqs` as encoded frames.
fn chats(token: u64, seqs: std::ops::RangeInclusive<u32>) -> Vec<Vec<u8>> {
    seqs.map(|seq| chat_frame(token, seq, &format!("line {seq}")).to_bytes())
        .collect()
}

/// The chat lines bob was shown since the events were last cleared.
fn bob_saw(sim: &Sim, bob: SocketAddr) -> Vec<String> {
    messages(sim.events(bob))
        .into_iter()
        .map(|(from, text, _)| format!("{from}: {text}"))
        .collect()
}

/// Injects `datagram` from alice and checks that the server did nothing with it: no
/// answer, nothing broadcast, no event but a malformed datagram noted.
fn assert_ignored(sim: &mut Sim, alice: SocketAddr, bob: SocketAddr, datagram: &[u8]) {
    let mark = sim.mark();
    let replies = sim.inject(alice, datagram);
    assert!(
        replies.is_empty(),
        "answered {replies:02x?} to {datagram:02x?}"
    );
    assert!(
        sim.server_sent_to(bob, mark).is_empty(),
        "bob was sent something for {datagram:02x?}"
    );
    let events = sim.take_server_events();
    assert!(
        events
            .iter()
            .all(|event| matches!(event, ServerEvent::Malformed { .. })),
        "{events:?} for {datagram:02x?}"
    );
}

// Decoding: frame by frame, strict, whole or not at all ----------------------------------

#[test]
fn a_packed_datagram_decodes_frame_by_frame_as_each_frame_alone() {
    let frames: Vec<Frame> = (1..=5u32)
        .map(|seq| {
            Frame::ToClient(ToClient::Sequenced(
                crate::sim::room::envelope(9, seq),
                Delivery::Message {
                    seq: u64::from(seq),
                    time_ms: 1_000 * i64::from(seq),
                    from: "alice".into(),
                    text: format!("line {seq}"),
                },
            ))
        })
        .collect();
    let to = addr([10, 0, 0, 2], 4000);
    let queued: Vec<(SocketAddr, Vec<u8>)> = frames.iter().map(|f| (to, f.to_bytes())).collect();
    let datagrams = packing::pack(&queued);
    assert_eq!(datagrams.len(), 1);
    let (_, sent) = &datagrams[0];
    // Frames of one stream go as a run, 23 bytes shorter each than in the general form.
    let alone: Vec<Vec<u8>> = queued.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(sent[..5], [0xFF, b'I', wire::VERSION, 0xE1, 5]);
    assert_eq!(*sent, run(&alone));
    assert_eq!(packed(&alone).len() - sent.len(), 5 * 23 - (25 - 5));
    for (form, datagram) in [("packed", packed(&alone)), ("run", sent.clone())] {
        let inner = wire::unpack(&datagram).expect("a valid packed datagram");
        assert_eq!(inner, alone, "{form}");
        let decoded: Vec<Frame> = inner
            .iter()
            .map(|bytes| Frame::decode(bytes).expect("each frame decodes alone"))
            .collect();
        assert_eq!(decoded, frames, "{form}");
        // What a receiver acts on: the same frames, decoded while they were checked.
        assert_eq!(
            wire::unpack_decoded(&datagram),
            Ok(frames.clone()),
            "{form}"
        );
        // A decoder of one frame does not take a packed datagram for a frame.
        assert_eq!(
            Frame::decode(&datagram),
            Err(DecodeError::UnknownKind { kind: datagram[3] }),
            "{form}"
        );
        // Zeros after the last frame are padding, to the datagram's limit and no further.
        let mut padded = datagram.clone();
        padded.resize(MAX_DATAGRAM, 0);
        assert_eq!(wire::unpack_decoded(&padded), Ok(frames.clone()), "{form}");
        padded.push(0);
        assert_eq!(
            wire::unpack(&padded),
            Err(DecodeError::TooLarge {
                len: MAX_DATAGRAM + 1
            }),
            "{form}"
        );
    }
}

#[test]
fn a_packed_datagram_cut_at_any_byte_is_rejected_whole_without_side_effects() {
    for (form, write) in FORMS {
        let (mut sim, alice, token, bob) = room();
        let datagram = write(&chats(token, 1..=3));
        for cut in 0..datagram.len() {
            assert!(
                wire::unpack(&datagram[..cut]).is_err(),
                "{form} cut at {cut}"
            );
            assert!(
                wire::unpack_decoded(&datagram[..cut]).is_err(),
                "{form} cut at {cut}"
            );
            assert_ignored(&mut sim, alice, bob, &datagram[..cut]);
        }
        // Cut before a frame, then padded back to its length: the frames the count
        // promises are missing, and padding is no frame.
        let mut boundaries = vec![if form == "run" { 25 } else { 5 }];
        while let Some(&at) = boundaries.last().filter(|&&at| at < datagram.len()) {
            boundaries
                .push(at + 2 + usize::from(u16::from_be_bytes([datagram[at], datagram[at + 1]])));
        }
        assert_eq!(boundaries.pop(), Some(datagram.len()), "{form}");
        for cut in boundaries {
            let mut padded = datagram[..cut].to_vec();
            padded.resize(datagram.len(), 0);
            assert!(
                wire::unpack(&padded).is_err(),
                "{form} cut at {cut}, padded"
            );
            assert_ignored(&mut sim, alice, bob, &padded);
        }
        assert!(bob_saw(&sim, bob).is_empty(), "{form}");
        // Whole, it is three lines, in order, once.
        sim.inject(alice, &datagram);
        sim.inject(alice, &datagram);
        assert_eq!(
            bob_saw(&sim, bob),
            ["alice: line 1", "alice: line 2", "alice: line 3"],
            "{form}"
        );
    }
}

#[test]
fn a_malicious_count_or_inner_length_is_rejected_whole() {
    let (mut sim, alice, token, bob) = room();
    let frames = chats(token, 1..=2);
    let good = packed(&frames);
    let first_len = 5;
    let second_len = first_len + 2 + frames[0].len();
    let set_u16 = |bytes: &mut Vec<u8>, at: usize, value: u16| {
        bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
    };
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for (what, count) in [
        ("no frames", 0u8),
        ("one frame counted", 1),
        ("three counted", 3),
    ] {
        let mut bytes = good.clone();
        bytes[4] = count;
        cases.push((what, bytes));
    }
    let lengths = [
        (
            "first length one short",
            first_len,
            frames[0].len() as u16 - 1,
        ),
        (
            "first length one long",
            first_len,
            frames[0].len() as u16 + 1,
        ),
        ("first length zero", first_len, 0),
        ("first length past the end", first_len, u16::MAX),
        (
            "second length past the end",
            second_len,
            frames[1].len() as u16 + 1,
        ),
        (
            "second length short",
            second_len,
            frames[1].len() as u16 - 1,
        ),
    ];
    for (what, at, value) in lengths {
        let mut bytes = good.clone();
        set_u16(&mut bytes, at, value);
        cases.push((what, bytes));
    }
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0, 0, 1]);
    cases.push(("a byte after the last frame that is not padding", trailing));
    let mut other_version = good.clone();
    other_version[2] = wire::VERSION + 1;
    cases.push(("another version", other_version));
    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] = 0xFF; // the second line's last byte: not UTF-8
    cases.push(("an invalid second frame", corrupt));
    let oversized = packed(&chats(token, 1..=40));
    assert!(oversized.len() > MAX_DATAGRAM);
    cases.push(("over 1200 bytes", oversized));
    for (what, bytes) in &cases {
        assert!(wire::unpack(bytes).is_err(), "{what}: accepted");
        assert_eq!(
            wire::unpack_decoded(bytes).err(),
            wire::unpack(bytes).err(),
            "{what}"
        );
        assert_ignored(&mut sim, alice, bob, bytes);
    }
    assert!(
        bob_saw(&sim, bob).is_empty(),
        "the first, valid frame was acted on"
    );
    sim.inject(alice, &good);
    assert_eq!(bob_saw(&sim, bob), ["alice: line 1", "alice: line 2"]);
}

#[test]
fn a_run_that_lies_about_its_frames_is_rejected_whole() {
    let (mut sim, alice, token, bob) = room();
    let frames = chats(token, 1..=2);
    let good = run(&frames);
    // The first entry: its length at 25, its kind at 27, its seq at 28..32.
    let second = 25 + 2 + frames[0].len() - RUN_SAVING;
    let mut cases: Vec<(&str, Vec<u8>, Option<DecodeError>)> = Vec::new();
    let mut edit = |what, at: usize, bytes: &[u8], error| {
        let mut datagram = good.clone();
        datagram[at..at + bytes.len()].copy_from_slice(bytes);
        cases.push((what, datagram, error));
    };
    // A kind that stands alone (a heartbeat) has no envelope to share.
    edit(
        "a heartbeat in a run",
        27,
        &[0x03],
        Some(DecodeError::Unpackable { kind: 0x03 }),
    );
    edit(
        "a packed kind in a run",
        27,
        &[0xE0],
        Some(DecodeError::Unpackable { kind: 0xE0 }),
    );
    edit(
        "a run in a run",
        27,
        &[0xE1],
        Some(DecodeError::Unpackable { kind: 0xE1 }),
    );
    edit(
        "an unknown kind",
        27,
        &[0x7E],
        Some(DecodeError::Unpackable { kind: 0x7E }),
    );
    // A server's `Message` among a client's chats: another direction (or a body that is
    // not a `Message`'s), rejected either way.
    edit("another direction's kind", second + 2, &[0x83], None);
    edit("an entry shorter than its kind and seq", 25, &[0, 4], None);
    edit(
        "an entry one byte short",
        25,
        &((frames[0].len() - RUN_SAVING - 1) as u16).to_be_bytes(),
        None,
    );
    edit(
        "no frames",
        4,
        &[0],
        Some(DecodeError::BadValue {
            field: "frame count",
            value: 0,
        }),
    );
    edit("three counted", 4, &[3], None);
    for (what, bytes, error) in &cases {
        let got = wire::unpack(bytes);
        assert!(got.is_err(), "{what}: accepted");
        if let Some(error) = error {
            assert_eq!(got.as_ref().err(), Some(error), "{what}");
        }
        assert_eq!(wire::unpack_decoded(bytes).err(), got.err(), "{what}");
        assert_ignored(&mut sim, alice, bob, bytes);
    }
    assert!(
        bob_saw(&sim, bob).is_empty(),
        "a frame of a rejected run was acted on"
    );
    // Whole, each frame carries the run's token: another session's token in the run header
    // makes every frame that session's, which the server checks as it would alone.
    let mut forged = good.clone();
    forged[5..13].copy_from_slice(&(token ^ 1).to_be_bytes());
    sim.inject(alice, &forged);
    assert!(
        bob_saw(&sim, bob).is_empty(),
        "a run with a wrong token was believed"
    );
    sim.inject(alice, &good);
    assert_eq!(bob_saw(&sim, bob), ["alice: line 1", "alice: line 2"]);
}

#[test]
fn a_packed_datagram_that_mixes_directions_or_holds_a_join_is_rejected_whole() {
    let (mut sim, alice, token, bob) = room();
    let chat = chats(token, 1..=1).remove(0);
    let to_client = Frame::ToClient(ToClient::NotJoined { token }).to_bytes();
    let peer = Frame::Peer(PeerFrame::Ack {
        token,
        acks: Acks::default(),
    })
    .to_bytes();
    let join = join_frame("mallory").to_bytes();
    let nested = packed(&chats(token, 2..=3));
    let cases = [
        (vec![chat.clone(), to_client], DecodeError::MixedDirections),
        (vec![chat.clone(), peer], DecodeError::MixedDirections),
        (
            vec![chat.clone(), join],
            DecodeError::Unpackable { kind: 0x01 },
        ),
        (
            vec![chat.clone(), nested],
            DecodeError::UnknownKind { kind: 0xE0 },
        ),
    ];
    for (frames, error) in cases {
        let bytes = packed(&frames);
        if bytes.len() <= MAX_DATAGRAM {
            assert_eq!(wire::unpack(&bytes), Err(error));
        } else {
            assert!(wire::unpack(&bytes).is_err());
        }
        assert_ignored(&mut sim, alice, bob, &bytes);
    }
    // Not even a join's refusal or challenge: a packed datagram is never answered as one.
    let challenged = packed(&[join_frame("mallory").to_bytes()]);
    assert_eq!(
        wire::unpack(&challenged),
        Err(DecodeError::Unpackable { kind: 0x01 })
    );
    assert!(
        sim.inject(addr([10, 9, 9, 9], 5000), &challenged)
            .is_empty()
    );
    assert!(bob_saw(&sim, bob).is_empty());
}

// Sending: one turn, one datagram per receiver; alone, at once ---------------------------

/// The datagrams the server sent `to` since `mark`.
fn from_server_to(sim: &Sim, to: SocketAddr, mark: usize) -> Vec<Datagram> {
    sim.sent_since(mark)
        .iter()
        .filter(|d| d.from == sim.server_addr && d.to == to)
        .cloned()
        .collect()
}

fn message_texts(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            Frame::ToClient(ToClient::Sequenced(_, Delivery::Message { text, .. })) => {
                Some(text.clone())
            }
            _ => None,
        })
        .collect()
}

/// A packing server with alice and bob in, past what a join sets off: each client asks the
/// history's epoch of a room empty at its join (its probe) and is answered, and alice's
/// first line is out, so that nothing of that is counted by what a test does next.
fn packed_pair_past_probes() -> (Sim, SocketAddr, SocketAddr) {
    let mut sim = Sim::new(unlimited());
    sim.pack = true;
    let alice = sim.join("alice");
    let bob = sim.join("bob");
    sim.send_text(alice, "hello");
    sim.run_for(std::time::Duration::from_millis(200));
    (sim, alice, bob)
}

#[test]
fn five_broadcasts_in_one_turn_reach_a_client_in_one_datagram_of_five_frames() {
    let (mut sim, alice, bob) = packed_pair_past_probes();
    sim.clear_events();
    let mark = sim.mark();
    let now = sim.now;
    for i in 1..=5 {
        sim.client_mut(alice).send_text(now, &format!("line {i}"));
    }
    sim.drive();
    let typed: Vec<String> = (1..=5).map(|i| format!("line {i}")).collect();
    // Alice's five lines went in one datagram, and so did their five copies to each.
    let from_alice: Vec<&Datagram> = sim
        .sent_since(mark)
        .iter()
        .filter(|d| d.from == alice)
        .collect();
    assert_eq!(from_alice.len(), 1);
    assert_eq!(from_alice[0].frames().len(), 5);
    for to in [alice, bob] {
        let carrying: Vec<Datagram> = from_server_to(&sim, to, mark)
            .into_iter()
            .filter(|d| !message_texts(&d.frames()).is_empty())
            .collect();
        assert_eq!(carrying.len(), 1, "to {to}");
        assert!(wire::is_packed(&carrying[0].bytes));
        assert!(carrying[0].bytes.len() <= MAX_DATAGRAM);
        let frames = carrying[0].frames();
        assert_eq!(frames.len(), 5);
        assert_eq!(message_texts(&frames), typed);
    }
    let shown: Vec<String> = messages(sim.events(bob)).into_iter().map(|m| m.1).collect();
    assert_eq!(shown, typed);
}

#[test]
fn a_frame_alone_in_its_turn_goes_out_at_once_as_it_is() {
    let (mut sim, alice, bob) = packed_pair_past_probes();
    let mark = sim.mark();
    let typed_at = sim.now;
    sim.send_text(alice, "just one");
    let to_bob = from_server_to(&sim, bob, mark);
    assert_eq!(to_bob.len(), 1);
    let datagram = &to_bob[0];
    // Not packed: the very bytes an unpacked server sends, at the instant it was typed.
    assert!(!wire::is_packed(&datagram.bytes));
    let frame = Frame::decode(&datagram.bytes).expect("a frame of its own");
    assert_eq!(message_texts(&[frame]), ["just one"]);
    assert_eq!(datagram.sent_at, typed_at);
}

#[test]
fn a_guest_gets_several_lines_in_one_datagram_each_ending_in_a_newline() {
    let mut sim = Sim::new(ServerConfig {
        guests: true,
        ..unlimited()
    });
    sim.pack = true;
    let alice = sim.join("alice");
    let guest = addr([10, 0, 0, 3], 6000);
    sim.inject(guest, b"hello\n");
    sim.run_for(std::time::Duration::from_millis(200));
    let mark = sim.mark();
    let now = sim.now;
    for i in 1..=5 {
        sim.client_mut(alice).send_text(now, &format!("line {i}"));
    }
    sim.drive();
    let to_guest = from_server_to(&sim, guest, mark);
    assert_eq!(to_guest.len(), 1, "{to_guest:?}");
    let text = std::str::from_utf8(&to_guest[0].bytes).expect("plain text");
    assert!(to_guest[0].bytes.len() <= MAX_DATAGRAM);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(lines.len(), 5, "{text:?}");
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.ends_with(&format!("alice: line {}\n", i + 1)),
            "{line:?}"
        );
    }
}

#[test]
fn frames_to_different_receivers_are_never_packed_together() {
    let mut sim = Sim::new(unlimited());
    sim.pack = true;
    let clients: Vec<SocketAddr> = ["a", "b", "c"].iter().map(|n| sim.join(n)).collect();
    sim.run_for(std::time::Duration::from_millis(200));
    let mark = sim.mark();
    sim.send_text(clients[0], "hi");
    for d in sim.sent_since(mark) {
        let frames = d.frames();
        assert!(!frames.is_empty(), "{d:?}");
        // Each frame's token is the receiver's (or the sender's, to the server).
        let tokens: Vec<Option<u64>> = frames.iter().map(Frame::token).collect();
        assert!(tokens.windows(2).all(|w| w[0] == w[1]), "{frames:?}");
    }
}

// Peers pack the same way -----------------------------------------------------------------

#[test]
fn peers_that_pack_deliver_every_line_once_in_order() {
    let mut sim = PeerSim::new(PeerConfig {
        flood_limit: None,
        ..PeerConfig::default()
    });
    sim.pack = true;
    sim.record = true;
    let first = sim.start_room("ann");
    let second = sim.join("ben", first, std::time::Duration::from_secs(5));
    let third = sim.join("cy", first, std::time::Duration::from_secs(5));
    sim.run_until_quiet(std::time::Duration::from_secs(5))
        .expect("the room settles");
    sim.clear_events();
    let mark = sim.mark();
    for (at, name) in [(first, "ann"), (second, "ben"), (third, "cy")] {
        for i in 1..=6 {
            sim.type_text(at, &format!("{name} {i}"));
        }
    }
    sim.run_until_quiet(std::time::Duration::from_secs(5))
        .expect("the lines settle");
    assert!(
        sim.sent_since(mark)
            .iter()
            .any(|d| wire::is_packed(&d.bytes)),
        "nothing was packed"
    );
    for at in [first, second, third] {
        let shown = mesh::messages(sim.events(at));
        for name in ["ann", "ben", "cy"] {
            let theirs: Vec<String> = shown
                .iter()
                .filter(|(from, _, _)| from == name)
                .map(|(_, text, _)| text.clone())
                .collect();
            let typed: Vec<String> = (1..=6).map(|i| format!("{name} {i}")).collect();
            assert_eq!(theirs, typed, "at {at}, from {name}");
        }
    }
}

#[test]
fn a_client_sends_no_bare_acknowledgement_with_a_line_that_carries_it() {
    use std::time::Duration;
    let mut sim = Sim::new(ServerConfig {
        flood_limit: icq::proto::flood::FloodLimit::from_options(1.0, 1),
        ..ServerConfig::default()
    });
    sim.pack = true;
    let alice = sim.join("alice");
    let bob = sim.join("bob");
    sim.run_for(Duration::from_millis(200));
    // Bob's second line waits a second for its turn under the flood limit.
    let start = sim.now;
    sim.send_text(bob, "first");
    let now = sim.now;
    sim.client_mut(bob).send_text(now, "second");
    // Everything owed so far is acknowledged; the line still waits.
    sim.run_for(Duration::from_millis(500));
    // Alice speaks just before it is due; the clock is then moved past both bob's
    // acknowledgement and his line's turn without running his timers, so one call has
    // both to send: the line goes, carrying the acknowledgement, and no bare one.
    sim.now = start + Duration::from_millis(995);
    sim.send_text(alice, "question");
    sim.now = start + Duration::from_millis(1050);
    let mark = sim.mark();
    let now = sim.now;
    sim.client_mut(bob).handle_timeout(now);
    sim.drive();
    let from_bob: Vec<Frame> = sim
        .sent_since(mark)
        .iter()
        .filter(|d| d.from == bob)
        .flat_map(Datagram::frames)
        .collect();
    let carried = from_bob.iter().any(|f| {
        matches!(f, Frame::ToServer(ToServer::Sequenced(..)))
            && f.acks().is_some_and(|a| a.through > 0)
    });
    assert!(
        carried,
        "the line went with the acknowledgements: {from_bob:?}"
    );
    assert!(
        !from_bob
            .iter()
            .any(|f| matches!(f, Frame::ToServer(ToServer::ClientAck { .. }))),
        "{from_bob:?}"
    );
}
