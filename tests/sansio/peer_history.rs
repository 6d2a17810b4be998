//! Peer mode's history, without sockets: every peer keeps the public lines it showed, the
//! member that lets a newcomer in sends it the newest `--replay` of them right after the
//! member list, and `/history` asks the contact (or another member) for a page.
//!
//! This file owns those promises — what a newcomer is shown and in which order, that private
//! lines are never kept, paging, the clamp on what one request can make a peer send, and
//! that history lines are only taken from the member asked. It does not own the frames'
//! layout (`wire`), the store (`history`), how the lines look (`render`) or the real
//! binaries (`peers_e2e.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use icq::peer::{PeerConfig, PeerError, PeerEvent};
use icq::proto::chat::ChatEvent;
use icq::render::ClientLook;
use icq::wire::{Envelope, Frame, HistoryEntry, LineKind, PeerFrame, PeerItem};

use crate::peers::{quick, room, token_on_wire};
use crate::sim::mesh::{PeerSim, converged, messages};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The history lines among `events`, as `(from, text)`.
fn history(events: &[PeerEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|event| match event {
            PeerEvent::Chat(ChatEvent::HistoryLine { from, text, .. }) => {
                Some((from.clone(), text.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The lines `at`'s screen shows (plain, on the day each was said) for the history lines
/// among its events.
fn shown_history(sim: &PeerSim, at: SocketAddr) -> Vec<String> {
    let me = sim.peer(at).name();
    sim.events(at)
        .iter()
        .filter_map(|event| match event {
            PeerEvent::Chat(line @ ChatEvent::HistoryLine { .. }) => {
                Some(ClientLook::PLAIN.peer_lines(event, line.time_ms(), me))
            }
            _ => None,
        })
        .flatten()
        .collect()
}

/// Whether `shown` is one line per entry of `expected`, each ending in it after the clock
/// (`[12:00:00] `) and none with a control character left.
fn shown_as(shown: &[String], expected: &[String]) -> bool {
    shown.len() == expected.len()
        && shown.iter().zip(expected).all(|(line, tail)| {
            line.starts_with('[')
                && line.ends_with(&format!("] {tail}"))
                && !line.chars().any(char::is_control)
        })
}

/// Text with an SGR sequence, a title-setting OSC sequence and a bell.
const HOSTILE: &str = "\u{1b}[31mred\u{1b}]0;title\u{7}";

/// [`HOSTILE`] as the screen shows it: every control character written out.
const NEUTRALIZED: &str = "^[[31mred^[]0;title^G";

/// The ends of history among `events`, as `(shown, earlier)`.
fn ends(events: &[PeerEvent]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|event| match event {
            PeerEvent::HistoryEnd { shown, earlier } => Some((*shown, *earlier)),
            _ => None,
        })
        .collect()
}

/// `line FIRST` to `line LAST`, each from ann when odd and bob when even.
fn lines(first: u32, last: u32) -> Vec<(String, String)> {
    (first..=last)
        .map(|i| {
            let from = if i % 2 == 1 { "ann" } else { "bob" };
            (from.to_owned(), format!("line {i}"))
        })
        .collect()
}

/// A room of ann and bob in which they said `line 1` to `line COUNT`, taking turns.
fn chatty_room(sim: &mut PeerSim, count: u32) -> (SocketAddr, SocketAddr) {
    let peers = room(sim, &["ann", "bob"]);
    let (ann, bob) = (peers[0], peers[1]);
    for i in 1..=count {
        let who = if i % 2 == 1 { ann } else { bob };
        sim.type_text(who, &format!("line {i}"));
        sim.run_until_quiet(secs(5)).unwrap();
    }
    sim.clear_events();
    (ann, bob)
}

fn joined_room(events: &[PeerEvent], name: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, PeerEvent::MemberJoined { name: n, .. } if n == name))
}

// What a newcomer is shown --------------------------------------------------------------

#[test]
fn a_newcomer_is_shown_the_last_20_lines_with_the_members_in_order_before_live_lines() {
    let mut sim = PeerSim::new(quick());
    let (ann, bob) = chatty_room(&mut sim, 25);
    let carol = sim.add_joiner("carol", &[bob]);
    // The contact says something the moment it has let carol in: it comes after the replay.
    sim.run_until(secs(5), |sim| joined_room(sim.events(bob), "carol"));
    sim.type_text(bob, "live from bob");
    sim.run_until(secs(5), |sim| converged(sim, &[ann, bob, carol]));
    sim.type_text(ann, "live from ann");
    sim.run_until_quiet(secs(5)).unwrap();

    let events = sim.events(carol);
    let PeerEvent::Joined { members, .. } = &events[0] else {
        panic!("carol's first event is not her join: {events:?}");
    };
    assert_eq!(members, &["ann", "bob", "carol"]);
    assert_eq!(history(events), lines(6, 25));
    assert!(
        events[1..=20]
            .iter()
            .all(|e| matches!(e, PeerEvent::Chat(ChatEvent::HistoryLine { .. }))),
        "{events:?}"
    );
    assert_eq!(
        events[21],
        PeerEvent::HistoryEnd {
            shown: 20,
            earlier: 5
        }
    );
    let live: Vec<(String, String)> = messages(&events[22..])
        .into_iter()
        .map(|(from, text, _)| (from, text))
        .collect();
    assert_eq!(
        live,
        [
            ("bob".to_owned(), "live from bob".to_owned()),
            ("ann".to_owned(), "live from ann".to_owned())
        ]
    );
    assert!(messages(&events[..22]).is_empty());
    // Nobody else is replayed anything.
    assert!(history(sim.events(ann)).is_empty() && history(sim.events(bob)).is_empty());

    // carol keeps what she was shown, replayed lines included: dave, let in by her, gets her
    // newest 20.
    let dave = sim.join("dave", carol, secs(5));
    sim.run_until_quiet(secs(5)).unwrap();
    let mut expected = lines(8, 25);
    expected.push(("bob".into(), "live from bob".into()));
    expected.push(("ann".into(), "live from ann".into()));
    assert_eq!(history(sim.events(dave)), expected);
    assert_eq!(ends(sim.events(dave)), [(20, 2)]);
}

#[test]
fn lines_typed_while_joining_go_after_the_replay() {
    let mut sim = PeerSim::new(quick());
    let (ann, bob) = chatty_room(&mut sim, 3);
    let carol = sim.add_joiner("carol", &[bob]);
    sim.type_text(carol, "typed early");
    sim.run_until(secs(5), |sim| converged(sim, &[ann, bob, carol]));
    sim.run_until_quiet(secs(5)).unwrap();
    let events = sim.events(carol);
    let end = events
        .iter()
        .position(|e| matches!(e, PeerEvent::HistoryEnd { .. }))
        .expect("an end of history");
    assert_eq!(history(&events[..end]), lines(1, 3));
    assert_eq!(
        messages(&events[end..]),
        [("carol".to_owned(), "typed early".to_owned(), true)]
    );
    for at in [ann, bob] {
        let shown = messages(sim.events(at));
        assert_eq!(
            shown,
            [("carol".to_owned(), "typed early".to_owned(), false)]
        );
    }
}

#[test]
fn an_empty_room_replays_nothing_and_history_off_keeps_nothing() {
    let mut sim = PeerSim::new(quick());
    let ann = sim.start_room("ann");
    let bob = sim.join("bob", ann, secs(5));
    sim.run_until_quiet(secs(5)).unwrap();
    assert!(history(sim.events(bob)).is_empty());
    assert!(ends(sim.events(bob)).is_empty(), "{:?}", sim.events(bob));

    let mut sim = PeerSim::new(PeerConfig {
        history: 0,
        ..quick()
    });
    let (_, bob) = chatty_room(&mut sim, 3);
    let carol = sim.join("carol", bob, secs(5));
    sim.run_until_quiet(secs(5)).unwrap();
    assert!(history(sim.events(carol)).is_empty());
    // Lines were said, none is held: the end says none is earlier either.
    assert!(
        ends(sim.events(carol)).is_empty(),
        "{:?}",
        sim.events(carol)
    );
}

#[test]
fn private_lines_are_never_kept_nor_replayed_and_actions_are() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["ann", "bob"]);
    let (ann, bob) = (peers[0], peers[1]);
    let now = sim.now;
    sim.type_text(ann, "public");
    sim.peer_mut(ann)
        .send_private(now, "bob", "secret")
        .unwrap();
    sim.peer_mut(bob)
        .send_private(now, "ann", "secret too")
        .unwrap();
    sim.peer_mut(ann).send_action(now, "waves");
    sim.run_until_quiet(secs(5)).unwrap();
    for contact in [ann, bob] {
        let name = format!("new{}", contact.port());
        let newcomer = sim.join(&name, contact, secs(5));
        sim.run_until_quiet(secs(5)).unwrap();
        let kinds: Vec<(LineKind, String)> = sim
            .events(newcomer)
            .iter()
            .filter_map(|e| match e {
                PeerEvent::Chat(ChatEvent::HistoryLine { kind, text, .. }) => {
                    Some((*kind, text.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (LineKind::Chat, "public".to_owned()),
                (LineKind::Action, "waves".to_owned())
            ]
        );
        assert!(
            !format!("{:?}", sim.events(newcomer)).contains("secret"),
            "{:?}",
            sim.events(newcomer)
        );
    }
}

// /history -------------------------------------------------------------------------------

#[test]
fn history_from_a_newcomer_pages_its_contact_then_another_member_when_it_left() {
    let mut sim = PeerSim::new(quick());
    let (ann, bob) = chatty_room(&mut sim, 25);
    let carol = sim.join("carol", bob, secs(5));
    sim.run_until_quiet(secs(5)).unwrap();
    sim.clear_events();

    let page = |sim: &mut PeerSim, count: Option<usize>| {
        let now = sim.now;
        sim.peer_mut(carol).request_history(now, count).unwrap();
        // One request at a time.
        assert_eq!(
            sim.peer_mut(carol).request_history(now, Some(1)),
            Err(PeerError::HistoryPending)
        );
        sim.run_until_quiet(secs(5)).unwrap();
        let shown = (history(sim.events(carol)), ends(sim.events(carol)));
        sim.clear_events();
        shown
    };
    assert_eq!(page(&mut sim, Some(25)), (lines(1, 25), vec![(25, 0)]));
    assert_eq!(page(&mut sim, Some(10)), (lines(16, 25), vec![(10, 15)]));
    assert_eq!(page(&mut sim, None), (lines(6, 25), vec![(20, 5)]));
    // More than anyone holds: all there is.
    assert_eq!(
        page(&mut sim, Some(usize::MAX)),
        (lines(1, 25), vec![(25, 0)])
    );

    // The contact leaves: ann answers, from her own history (which has no replayed lines).
    sim.leave(bob);
    sim.run_until(secs(5), |sim| converged(sim, &[ann, carol]));
    sim.clear_events();
    assert_eq!(page(&mut sim, Some(3)), (lines(23, 25), vec![(3, 22)]));

    // Pages are shown, not kept: dave, let in by carol, gets only what carol was replayed.
    let dave = sim.join("dave", carol, secs(5));
    sim.run_until_quiet(secs(5)).unwrap();
    assert_eq!(history(sim.events(dave)), lines(6, 25));
    assert_eq!(ends(sim.events(dave)), [(20, 0)]);
}

#[test]
fn history_alone_in_a_room_shows_our_own() {
    let mut sim = PeerSim::new(quick());
    let ann = sim.start_room("ann");
    for i in 1..=3 {
        sim.type_text(ann, &format!("line {i}"));
    }
    sim.run_until_quiet(secs(5)).unwrap();
    let now = sim.now;
    sim.peer_mut(ann).request_history(now, Some(2)).unwrap();
    sim.run_until_quiet(secs(5)).unwrap();
    let events = sim.events(ann);
    assert_eq!(
        history(events),
        [
            ("ann".to_owned(), "line 2".to_owned()),
            ("ann".to_owned(), "line 3".to_owned())
        ]
    );
    assert!(events.iter().all(|e| !matches!(
        e,
        PeerEvent::Chat(ChatEvent::HistoryLine { own: false, .. })
    )));
    assert_eq!(ends(events), [(2, 1)]);
}

// Never trust the network ------------------------------------------------------------------

#[test]
fn replayed_lines_with_control_characters_are_shown_neutralized() {
    // A member's line as it travelled in a newcomer's replay, and in a `/history` answer
    // whose member chose a name with control characters of its own.
    let mut sim = PeerSim::new(quick());
    sim.record = true;
    let peers = room(&mut sim, &["ann", "bob"]);
    let (ann, bob) = (peers[0], peers[1]);
    sim.type_text(ann, HOSTILE);
    sim.run_until_quiet(secs(5)).unwrap();
    let carol = sim.join("carol", bob, secs(5));
    sim.run_until_quiet(secs(5)).unwrap();
    assert_eq!(
        history(sim.events(carol)),
        [("ann".to_owned(), HOSTILE.to_owned())]
    );
    let shown = shown_history(&sim, carol);
    assert!(
        shown_as(&shown, &[format!("ann: {NEUTRALIZED}")]),
        "{shown:?}"
    );
    sim.clear_events();

    let now = sim.now;
    sim.peer_mut(carol).request_history(now, Some(5)).unwrap();
    let token = token_on_wire(&sim, bob, carol);
    let next = last_seq(&sim, bob, carol) + 1;
    let line = PeerItem::HistoryLine {
        line: HistoryEntry {
            epoch: 1,
            seq: 1,
            time_ms: 0,
            from: format!("bob{HOSTILE}"),
            kind: LineKind::Action,
            text: HOSTILE.into(),
        },
    };
    sim.inject(bob, carol, &sequenced(token, next, line));
    sim.run_until_quiet(secs(5)).unwrap();
    let shown = shown_history(&sim, carol);
    let forged = format!("* bob{NEUTRALIZED} {NEUTRALIZED}");
    assert!(shown_as(&shown[..1], &[forged]), "{shown:?}");
    assert!(!shown.concat().chars().any(char::is_control), "{shown:?}");

    // Our own history, alone in a room.
    let mut sim = PeerSim::new(quick());
    let dave = sim.start_room("dave");
    sim.type_text(dave, HOSTILE);
    sim.run_until_quiet(secs(5)).unwrap();
    sim.clear_events();
    let now = sim.now;
    sim.peer_mut(dave).request_history(now, Some(1)).unwrap();
    sim.run_until_quiet(secs(5)).unwrap();
    assert_eq!(
        history(sim.events(dave)),
        [("dave".to_owned(), HOSTILE.to_owned())]
    );
    let shown = shown_history(&sim, dave);
    assert!(
        shown_as(&shown, &[format!("dave: {NEUTRALIZED}")]),
        "{shown:?}"
    );
}

/// A sequenced frame from a pair's stream with `token`, numbered `seq`.
fn sequenced(token: u64, seq: u32, item: PeerItem) -> Vec<u8> {
    let envelope = Envelope {
        token,
        seq,
        acks: Default::default(),
    };
    Frame::Peer(PeerFrame::Sequenced(envelope, item)).to_bytes()
}

/// The highest sequence number `from` used on its stream to `to`.
fn last_seq(sim: &PeerSim, from: SocketAddr, to: SocketAddr) -> u32 {
    sim.wire
        .iter()
        .filter(|d| d.from == from && d.to == to)
        .filter_map(|d| d.frame()?.envelope().map(|e| e.seq))
        .max()
        .unwrap_or(0)
}

/// The history frames `from` sent `to` since wire datagram `since`: the numbers of the lines
/// (each once, resent or not) and the ends, as `(epoch, newest, earlier)`.
fn history_sent(
    sim: &PeerSim,
    from: SocketAddr,
    to: SocketAddr,
    since: usize,
) -> (Vec<u64>, Vec<(u64, u64, u64)>) {
    let mut seen = std::collections::BTreeMap::new();
    let mut ends = std::collections::BTreeMap::new();
    for datagram in sim.wire[since..]
        .iter()
        .filter(|d| d.from == from && d.to == to)
    {
        if let Some(Frame::Peer(PeerFrame::Sequenced(envelope, item))) = datagram.frame() {
            match item {
                PeerItem::HistoryLine { line } => {
                    seen.insert(envelope.seq, line.seq);
                }
                PeerItem::HistoryEnd {
                    epoch,
                    newest,
                    earlier,
                } => {
                    ends.insert(envelope.seq, (epoch, newest, earlier));
                }
                _ => {}
            }
        }
    }
    (seen.into_values().collect(), ends.into_values().collect())
}

#[test]
fn a_hostile_history_request_is_clamped_and_an_unasked_answer_is_not_shown() {
    let mut sim = PeerSim::new(PeerConfig {
        history: 5_000,
        ..quick()
    });
    let bob = sim.start_room("bob");
    for i in 1..=1_500 {
        sim.type_text(bob, &format!("line {i}"));
    }
    sim.run_until_quiet(secs(5)).unwrap();
    sim.record = true;
    let carol = sim.join("carol", bob, secs(5));
    sim.run_until_quiet(secs(5)).unwrap();
    let (replayed, replay_end) = history_sent(&sim, bob, carol, 0);
    assert_eq!(replayed, (1_481..=1_500).collect::<Vec<u64>>());
    let [(epoch, 1_500, 1_480)] = replay_end[..] else {
        panic!("the replay's end: {replay_end:?}");
    };
    sim.clear_events();

    // carol's stream, with her token and her next numbers: an unknown epoch and an absurd
    // `before`, then bob's own epoch with another; both ask for 65535 lines.
    let token = token_on_wire(&sim, carol, bob);
    let mut seq = last_seq(&sim, carol, bob);
    for (asked, before) in [(epoch ^ 1, 3), (epoch, u64::MAX - 7)] {
        seq += 1;
        let since = sim.wire.len();
        let request = PeerItem::HistoryRequest {
            epoch: asked,
            before,
            count: u16::MAX,
        };
        sim.inject(carol, bob, &sequenced(token, seq, request));
        sim.run_until_quiet(secs(10)).unwrap();
        let (sent, end) = history_sent(&sim, bob, carol, since);
        assert_eq!(sent, (501..=1_500).collect::<Vec<u64>>());
        assert_eq!(end, [(epoch, 1_500, 500)]);
    }
    // Two at once: the second, while the first answer is not acknowledged, gets the end
    // alone.
    let since = sim.wire.len();
    for _ in 0..2 {
        seq += 1;
        let request = PeerItem::HistoryRequest {
            epoch,
            before: u64::MAX,
            count: 10,
        };
        let request = sequenced(token, seq, request);
        let now = sim.now;
        sim.peer_mut(bob).handle_datagram(now, carol, &request);
    }
    sim.run_until_quiet(secs(10)).unwrap();
    let (sent, end) = history_sent(&sim, bob, carol, since);
    assert_eq!(sent, (1_491..=1_500).collect::<Vec<u64>>());
    assert_eq!(end, [(epoch, 1_500, 1_490), (epoch, 1_500, 1_500)]);
    // carol never asked: nothing of it is shown, and the room is fine.
    assert!(history(sim.events(carol)).is_empty() && ends(sim.events(carol)).is_empty());
    assert!(converged(&sim, &[bob, carol]));
}

#[test]
fn history_lines_from_a_non_member_or_with_a_wrong_token_are_ignored() {
    let mut sim = PeerSim::new(quick());
    sim.record = true;
    let (_, bob) = chatty_room(&mut sim, 3);
    let carol = sim.join("carol", bob, secs(5));
    sim.run_until_quiet(secs(5)).unwrap();
    sim.clear_events();
    let now = sim.now;
    sim.peer_mut(carol).request_history(now, Some(5)).unwrap();
    let token = token_on_wire(&sim, bob, carol);
    let next = last_seq(&sim, bob, carol) + 1;
    let forged = |text: &str| PeerItem::HistoryLine {
        line: HistoryEntry {
            epoch: 1,
            seq: 1,
            time_ms: 0,
            from: "bob".into(),
            kind: LineKind::Chat,
            text: text.into(),
        },
    };
    let mallory = SocketAddr::new([10, 9, 9, 9].into(), 666);
    // Right token, wrong address; right address, wrong token. Both ahead of bob's answer.
    assert!(
        sim.inject(mallory, carol, &sequenced(token, next, forged("forged 1")))
            .is_empty()
    );
    sim.inject(bob, carol, &sequenced(token ^ 1, next, forged("forged 2")));
    let end = PeerItem::HistoryEnd {
        epoch: 1,
        newest: 1,
        earlier: 0,
    };
    sim.inject(mallory, carol, &sequenced(token, next + 1, end));
    sim.run_until_quiet(secs(5)).unwrap();
    assert_eq!(history(sim.events(carol)), lines(1, 3));
    assert_eq!(ends(sim.events(carol)), [(3, 0)]);
}
