//! The server's history as clients meet it (`sim::room`, fake clock): a client that joins
//! is replayed the newest public lines, in order and before anything live, with their
//! original times and the end-of-history marker; private lines are never replayed; a
//! history of 0 lines replays nothing; replay counts are clamped to what is kept. A client
//! coming back (`sim::hand`: the join's history fields as a test words them) is resumed
//! with exactly what it missed, after a timeout or a restart, or with everything of a new
//! epoch; `/history` pages walk back through the lines, each once; every answer is clamped,
//! and bounded so a client asking in a loop cannot grow its queue or lose live lines;
//! guests and unproven addresses are sent no history.
//!
//! The store's own behaviour (numbering, epochs, trimming, the SQLite file) is tested in
//! `history.rs`; the real binaries' side in `tests/programs/history_e2e.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use icq::client::ClientEvent;
use icq::history::History;
use icq::proto::chat::ChatEvent;
use icq::server::{self, ServerConfig, ServerEvent};
use icq::wire::{self, Delivery, Frame, LineKind, Request, ToClient, ToServer};

use crate::sim::addr;
use crate::sim::hand::Hand;
use crate::sim::room::{self, Seen, Sim, messages};

fn config(history: usize, replay: usize) -> ServerConfig {
    ServerConfig {
        flood_limit: None,
        history,
        replay,
        ..ServerConfig::default()
    }
}

/// `alice` says `line 1` to `line {count}`, 100 ms apart.
fn say_lines(sim: &mut Sim, alice: SocketAddr, count: usize) {
    for i in 1..=count {
        sim.send_text(alice, &format!("line {i}"));
        sim.run_for(Duration::from_millis(100));
    }
}

/// The replayed lines among `events`, as `(seq, time_ms, from, kind, text)`.
fn replayed(events: &[ClientEvent]) -> Vec<(u64, i64, String, LineKind, String)> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Chat(ChatEvent::HistoryLine {
                seq,
                time_ms,
                from,
                kind,
                text,
                ..
            }) => Some((*seq, *time_ms, from.clone(), *kind, text.clone())),
            _ => None,
        })
        .collect()
}

/// The `(shown, earlier)` of each end of history among `events`.
fn ends(events: &[ClientEvent]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::HistoryEnd { shown, earlier } => Some((*shown, *earlier)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_newcomer_is_shown_the_last_20_lines_in_order_before_live_lines() {
    let mut sim = Sim::new(config(1000, 20));
    let alice = sim.join("alice");
    let start_ms = sim.wall_ms();
    say_lines(&mut sim, alice, 30);
    let bob = sim.join("bob");
    sim.send_text(alice, "live line");
    let events = sim.take_events(bob);

    let lines = replayed(&events);
    let texts: Vec<String> = lines.iter().map(|line| line.4.clone()).collect();
    let want: Vec<String> = (11..=30).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, want);
    for (index, (seq, time_ms, from, kind, _)) in lines.iter().enumerate() {
        assert_eq!(*seq, 11 + index as u64);
        assert_eq!(from, "alice");
        assert_eq!(*kind, LineKind::Chat);
        // Each keeps the time it was said at, 100 ms apart, not the time of the replay.
        assert_eq!(*time_ms, start_ms + 100 * (10 + index as i64));
    }
    assert_eq!(ends(&events), [(20, 10)]);
    let end = events
        .iter()
        .position(|e| matches!(e, ClientEvent::HistoryEnd { .. }))
        .expect("an end of history");
    let live = events
        .iter()
        .position(|e| matches!(e, ClientEvent::Chat(ChatEvent::Message { text, .. }) if text == "live line"))
        .expect("the live line");
    assert!(end < live, "{events:?}");
    assert!(
        events[..end]
            .iter()
            .all(|e| !matches!(e, ClientEvent::Chat(ChatEvent::Message { .. }))),
        "{events:?}"
    );
    let mark = sim.client(bob).history_mark().expect("a mark");
    assert_eq!(
        mark.seq, 31,
        "the replay's newest, then the live line's number"
    );
    assert_eq!(
        mark.epoch,
        sim.server.history().epoch(),
        "the client keeps the server's epoch"
    );
    assert_eq!(
        sim.server.history().newest(),
        31,
        "the live line is kept too"
    );
}

#[test]
fn actions_and_console_broadcasts_are_replayed_private_lines_never() {
    let mut sim = Sim::new(config(1000, 20));
    let alice = sim.join("alice");
    let carol = sim.join("carol");
    let now = sim.now;
    sim.client_mut(alice).send_action(now, "waves");
    sim.drive();
    sim.client_mut(alice)
        .send_private(now, "carol", "a secret for carol");
    sim.drive();
    sim.server.say(now, "from the console");
    sim.drive();
    sim.send_text(carol, "hello all");
    let bob = sim.join("bob");
    let lines = replayed(&sim.take_events(bob));
    let shown: Vec<(String, LineKind, String)> = lines
        .into_iter()
        .map(|(_, _, from, kind, text)| (from, kind, text))
        .collect();
    assert_eq!(
        shown,
        [
            ("alice".to_owned(), LineKind::Action, "waves".to_owned()),
            (
                "server".to_owned(),
                LineKind::Console,
                "from the console".to_owned()
            ),
            ("carol".to_owned(), LineKind::Chat, "hello all".to_owned()),
        ]
    );
    // Not even the two who exchanged it are replayed it when they come back.
    sim.leave(carol);
    let carol = sim.join("carol");
    let events = sim.take_events(carol);
    assert!(
        replayed(&events)
            .iter()
            .all(|line| !line.4.contains("secret")),
        "{events:?}"
    );
    assert_eq!(sim.server.history().newest(), 3);
}

#[test]
fn a_history_of_0_lines_replays_nothing() {
    let mut sim = Sim::new(config(0, 20));
    let alice = sim.join("alice");
    say_lines(&mut sim, alice, 5);
    let bob = sim.join("bob");
    let events = sim.take_events(bob);
    assert!(replayed(&events).is_empty(), "{events:?}");
    assert!(ends(&events).is_empty(), "{events:?}");
    // Live lines still flow.
    sim.send_text(alice, "still here");
    assert!(
        messages(&sim.take_events(bob))
            .iter()
            .any(|(from, text, _)| from == "alice" && text == "still here")
    );
}

#[test]
fn an_empty_room_replays_nothing_and_replay_0_shows_only_the_count() {
    let mut sim = Sim::new(config(1000, 20));
    let alice = sim.join("alice");
    let events = sim.take_events(alice);
    assert!(ends(&events).is_empty(), "{events:?}");
    assert_eq!(sim.client(alice).history_mark(), None);

    let mut sim = Sim::new(config(1000, 0));
    let alice = sim.join("alice");
    say_lines(&mut sim, alice, 3);
    let bob = sim.join("bob");
    let events = sim.take_events(bob);
    assert!(replayed(&events).is_empty(), "{events:?}");
    assert_eq!(ends(&events), [(0, 3)]);
}

#[test]
fn the_replay_is_clamped_to_the_lines_kept() {
    // More asked than kept: the history holds 5, so 5 are shown and none is earlier.
    let mut sim = Sim::new(config(5, 20));
    let alice = sim.join("alice");
    say_lines(&mut sim, alice, 12);
    let bob = sim.join("bob");
    let events = sim.take_events(bob);
    let seqs: Vec<u64> = replayed(&events).iter().map(|line| line.0).collect();
    assert_eq!(seqs, [8, 9, 10, 11, 12]);
    assert_eq!(ends(&events), [(5, 0)]);

    // An absurd replay count is capped by the server (it would crowd its own outbox).
    let mut sim = Sim::new(config(5000, usize::MAX));
    let now = sim.now;
    for i in 1..=1200 {
        sim.server.say(now, &format!("line {i}"));
    }
    let bob = sim.join("bob");
    // A thousand frames go out as acknowledgements come back, over a few round trips.
    sim.run_for(Duration::from_secs(5));
    let events = sim.take_events(bob);
    let lines = replayed(&events);
    assert_eq!(lines.len(), icq::server::MAX_REPLAY);
    assert_eq!(lines.last().map(|line| line.0), Some(1200));
    assert_eq!(ends(&events), [(1000, 200)]);
}

// Resuming a client that comes back --------------------------------------------------------

/// The `n`th hand-driven client's address.
fn hand_at(n: u16) -> SocketAddr {
    addr([127, 0, 0, 1], 20_000 + n)
}

/// The history lines among what a hand received, as `(seq, text)`.
fn lines_of(got: &[Delivery]) -> Vec<(u64, String)> {
    got.iter()
        .filter_map(|delivery| match delivery {
            Delivery::HistoryLine { line } => Some((line.seq, line.text.clone())),
            _ => None,
        })
        .collect()
}

/// The seqs of the history lines among what a hand received.
fn seqs_of(got: &[Delivery]) -> Vec<u64> {
    lines_of(got).into_iter().map(|(seq, _)| seq).collect()
}

/// The `(epoch, newest, earlier)` of each history end among what a hand received.
fn ends_of(got: &[Delivery]) -> Vec<(u64, u64, u64)> {
    got.iter()
        .filter_map(|delivery| match delivery {
            Delivery::HistoryEnd {
                epoch,
                newest,
                earlier,
            } => Some((*epoch, *newest, *earlier)),
            _ => None,
        })
        .collect()
}

/// The seqs of the live public lines (chat and actions) among what a hand received.
fn live_seqs(got: &[Delivery]) -> Vec<u64> {
    got.iter()
        .filter_map(|delivery| match delivery {
            Delivery::Message { seq, .. } | Delivery::ActionMessage { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

/// Asserts that what a hand received after its welcome is its roster, then exactly the
/// history lines `seqs`, then one end `(epoch, newest, earlier)`: nothing live before the
/// end.
fn assert_answer(got: &[Delivery], seqs: &[u64], end: (u64, u64, u64)) {
    assert_eq!(seqs_of(got), seqs, "{got:?}");
    assert_eq!(ends_of(got), [end], "{got:?}");
    let roster = got
        .iter()
        .take_while(|d| matches!(d, Delivery::Roster { .. }))
        .count();
    let answer = &got[roster..roster + seqs.len() + 1];
    assert!(
        answer[..seqs.len()]
            .iter()
            .all(|d| matches!(d, Delivery::HistoryLine { .. })),
        "the roster, then the lines: {got:?}"
    );
    assert!(
        matches!(answer[seqs.len()], Delivery::HistoryEnd { .. }),
        "the end right after the lines: {got:?}"
    );
}

/// `count` console broadcasts `{prefix} 1`..., all at once (they are not flood-limited).
fn broadcast_lines(sim: &mut Sim, prefix: &str, count: usize) {
    let now = sim.now;
    for i in 1..=count {
        sim.server.say(now, &format!("{prefix} {i}"));
    }
    sim.drive();
}

#[test]
fn a_client_timed_out_while_lines_are_said_is_resumed_with_exactly_those_lines() {
    let mut sim = Sim::new(ServerConfig {
        timeout: Duration::from_secs(3),
        ..config(1000, 20)
    });
    let alice = sim.join("alice");
    say_lines(&mut sim, alice, 3);
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen::NOTHING);
    bob.settle(&mut sim);
    let got = bob.take_got();
    let epoch = sim.server.history().epoch();
    assert_answer(&got, &[1, 2, 3], (epoch, 3, 0));
    // Live lines carry their number: the last line bob shows is line 6.
    for i in 4..=6 {
        sim.send_text(alice, &format!("line {i}"));
    }
    bob.settle(&mut sim);
    assert_eq!(live_seqs(&bob.take_got()), [4, 5, 6]);

    // Bob's program hangs: it takes in nothing more. Lines are said before and after the
    // server times him out.
    sim.take_server_events();
    for i in 7..=9 {
        sim.send_text(alice, &format!("line {i}"));
    }
    sim.run_for(Duration::from_secs(4));
    assert!(
        sim.take_server_events()
            .iter()
            .any(|e| matches!(e, ServerEvent::TimedOut { name, .. } if name == "bob")),
        "bob was timed out"
    );
    for i in 10..=12 {
        sim.send_text(alice, &format!("line {i}"));
    }

    // He comes back having shown line 6 of this epoch: lines 7 to 12, and the end.
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen { epoch, seq: 6 });
    bob.settle(&mut sim);
    let got = bob.take_got();
    assert_answer(&got, &[7, 8, 9, 10, 11, 12], (epoch, 12, 6));
    let texts: Vec<String> = lines_of(&got).into_iter().map(|(_, text)| text).collect();
    let want: Vec<String> = (7..=12).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, want);
    // The first line is the one after the last seen: nothing is gone.
    // Live lines follow the end.
    sim.send_text(alice, "live again");
    bob.settle(&mut sim);
    assert_eq!(live_seqs(&bob.take_got()), [13]);
}

#[test]
fn a_client_that_missed_nothing_is_sent_the_end_alone() {
    let mut sim = Sim::new(config(1000, 20));
    let alice = sim.join("alice");
    say_lines(&mut sim, alice, 10);
    let epoch = sim.server.history().epoch();
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen { epoch, seq: 10 });
    bob.settle(&mut sim);
    // The end always comes on a resume; its `earlier` counts what /history can still reach.
    assert_answer(&bob.take_got(), &[], (epoch, 10, 10));
}

#[test]
fn a_server_restarted_with_the_same_history_resumes_a_client_of_that_epoch() {
    let mut sim = Sim::new(config(1000, 20));
    let alice = sim.join("alice");
    say_lines(&mut sim, alice, 5);
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen::NOTHING);
    bob.settle(&mut sim);
    let epoch = sim.server.history().epoch();
    assert_answer(&bob.take_got(), &[1, 2, 3, 4, 5], (epoch, 5, 0));
    // Bob's network goes; three more lines are said; the server stops and starts again
    // with the same history (as with --history-db): same epoch, same numbers.
    for i in 6..=8 {
        sim.send_text(alice, &format!("line {i}"));
    }
    let kept = sim.server.history().last(usize::MAX);
    let mut restored = History::in_memory(1000, epoch);
    for line in &kept {
        restored.append(line.time_ms, &line.name, line.kind, &line.text);
    }
    assert_eq!(restored.newest(), 8);
    sim.restart_server(config(1000, 20));
    sim.server.set_history(restored);

    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen { epoch, seq: 5 });
    bob.settle(&mut sim);
    let got = bob.take_got();
    assert_answer(&got, &[6, 7, 8], (epoch, 8, 5));
    // Each with the time it was said before the restart.
    let times: Vec<i64> = got
        .iter()
        .filter_map(|d| match d {
            Delivery::HistoryLine { line } => Some(line.time_ms),
            _ => None,
        })
        .collect();
    let want: Vec<i64> = kept[5..].iter().map(|line| line.time_ms as i64).collect();
    assert_eq!(times, want);
}

#[test]
fn a_client_of_another_epoch_is_sent_every_line_of_the_new_one() {
    let mut sim = Sim::new(config(1000, 2));
    let alice = sim.join("alice");
    say_lines(&mut sim, alice, 4);
    let epoch = sim.server.history().epoch();
    // It showed line 40 of a history this server never had (it restarted without its
    // file): every line of this epoch, not the newest `--replay` 2 nor those after 40.
    let old = Seen {
        epoch: epoch ^ 1,
        seq: 40,
    };
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", old);
    bob.settle(&mut sim);
    assert_answer(&bob.take_got(), &[1, 2, 3, 4], (epoch, 4, 0));

    // At most MAX_RESUME of them: the newest.
    let mut sim = Sim::new(config(5000, 2));
    broadcast_lines(&mut sim, "line", 1200);
    let epoch = sim.server.history().epoch();
    let old = Seen {
        epoch: epoch.wrapping_add(1),
        seq: 0,
    };
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", old);
    bob.settle(&mut sim);
    let want: Vec<u64> = (201..=1200).collect();
    assert_eq!(want.len(), server::MAX_RESUME);
    assert_answer(&bob.take_got(), &want, (epoch, 1200, 200));
}

#[test]
fn lines_trimmed_away_meanwhile_are_not_sent_and_the_end_says_how_many() {
    // --history 5: 12 lines are said while bob is away; the 5 still held are sent, and the
    // end lets him count the 7 others as gone.
    let mut sim = Sim::new(config(5, 20));
    let alice = sim.join("alice");
    say_lines(&mut sim, alice, 3);
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen::NOTHING);
    bob.settle(&mut sim);
    let epoch = sim.server.history().epoch();
    assert_answer(&bob.take_got(), &[1, 2, 3], (epoch, 3, 0));
    bob.request(&mut sim, Request::Leave);
    for i in 4..=15 {
        sim.send_text(alice, &format!("line {i}"));
    }
    let seen = Seen { epoch, seq: 3 };
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", seen);
    bob.settle(&mut sim);
    let got = bob.take_got();
    assert_answer(&got, &[11, 12, 13, 14, 15], (epoch, 15, 0));
    let first = seqs_of(&got)[0];
    let gone = first - seen.seq - 1;
    assert_eq!(gone, 7);

    // With no history at all, nothing is sent but the end, which counts every line.
    let mut sim = Sim::new(config(0, 20));
    let alice = sim.join("alice");
    say_lines(&mut sim, alice, 4);
    let epoch = sim.server.history().epoch();
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen { epoch, seq: 1 });
    bob.settle(&mut sim);
    assert_answer(&bob.take_got(), &[], (epoch, 4, 0));
}

#[test]
fn a_client_claiming_a_line_beyond_the_newest_is_replayed_the_newest_lines() {
    // The server lost lines it had sent (its file restored from an older copy): the client
    // is replayed the newest `--replay` lines, and the end's newest tells it.
    let mut sim = Sim::new(config(1000, 4));
    broadcast_lines(&mut sim, "line", 10);
    let epoch = sim.server.history().epoch();
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen { epoch, seq: 50 });
    bob.settle(&mut sim);
    assert_answer(&bob.take_got(), &[7, 8, 9, 10], (epoch, 10, 6));
}

// Paging back with /history -----------------------------------------------------------------

#[test]
fn pages_of_25_walk_back_through_60_lines_each_once_in_order() {
    let mut sim = Sim::new(config(1000, 0));
    broadcast_lines(&mut sim, "line", 60);
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen::NOTHING);
    bob.settle(&mut sim);
    let got = bob.take_got();
    let [(epoch, 60, 60)] = ends_of(&got)[..] else {
        panic!("a replay of 0 lines still says the epoch and how many are held: {got:?}");
    };
    let mut before = u64::MAX;
    let mut all: Vec<(u64, String)> = Vec::new();
    let mut pages = Vec::new();
    loop {
        bob.ask_history(&mut sim, epoch, before, 25);
        bob.settle(&mut sim);
        let got = bob.take_got();
        let lines = lines_of(&got);
        let ends = ends_of(&got);
        assert_eq!(ends.len(), 1, "exactly one end per answer: {got:?}");
        assert!(matches!(got.last(), Some(Delivery::HistoryEnd { .. })));
        pages.push(lines.len());
        let (_, newest, earlier) = ends[0];
        assert_eq!(newest, 60);
        before = lines.first().map_or(before, |line| line.0);
        all.splice(0..0, lines);
        if earlier == 0 {
            break;
        }
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }
    assert_eq!(pages, [25, 25, 10]);
    let want: Vec<(u64, String)> = (1..=60).map(|i| (i, format!("line {i}"))).collect();
    assert_eq!(all, want);
}

#[test]
fn history_requests_are_clamped_whatever_they_ask() {
    let mut sim = Sim::new(config(5000, 0));
    broadcast_lines(&mut sim, "line", 1200);
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen::NOTHING);
    bob.settle(&mut sim);
    let epoch = sim.server.history().epoch();
    bob.take_got();
    let ask = |bob: &mut Hand, sim: &mut Sim, epoch: u64, before: u64, count: u16| {
        bob.ask_history(sim, epoch, before, count);
        bob.settle(sim);
        bob.take_got()
    };

    // 65535 lines asked: MAX_HISTORY_PAGE sent, the newest.
    let got = ask(&mut bob, &mut sim, epoch, u64::MAX, u16::MAX);
    let want: Vec<u64> = (201..=1200).collect();
    assert_eq!(want.len(), server::MAX_HISTORY_PAGE);
    assert_eq!(seqs_of(&got), want);
    assert_eq!(ends_of(&got), [(epoch, 1200, 200)]);
    // Below line 0: nothing, and nothing earlier.
    let got = ask(&mut bob, &mut sim, epoch, 0, 10);
    assert_eq!(seqs_of(&got), Vec::<u64>::new());
    assert_eq!(ends_of(&got), [(epoch, 1200, 0)]);
    // Below a line beyond the newest: from the newest.
    let got = ask(&mut bob, &mut sim, epoch, 99_999, 3);
    assert_eq!(seqs_of(&got), [1198, 1199, 1200]);
    assert_eq!(ends_of(&got), [(epoch, 1200, 1197)]);
    // Count 0: the end alone, saying how many lines are held below `before`.
    let got = ask(&mut bob, &mut sim, epoch, 101, 0);
    assert_eq!(seqs_of(&got), Vec::<u64>::new());
    assert_eq!(ends_of(&got), [(epoch, 1200, 100)]);
    // An epoch it never had: from its newest line, and the end names its own epoch.
    for absurd in [0, u64::MAX, epoch ^ 0xFFFF] {
        let got = ask(&mut bob, &mut sim, absurd, 3, 2);
        assert_eq!(seqs_of(&got), [1199, 1200], "epoch {absurd}");
        assert_eq!(ends_of(&got), [(epoch, 1200, 1198)]);
    }

    // Never more than --history, whatever the request.
    let mut sim = Sim::new(config(5, 0));
    broadcast_lines(&mut sim, "line", 12);
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen::NOTHING);
    bob.settle(&mut sim);
    let epoch = sim.server.history().epoch();
    bob.take_got();
    let got = ask(&mut bob, &mut sim, epoch, u64::MAX, 100);
    assert_eq!(seqs_of(&got), [8, 9, 10, 11, 12]);
    assert_eq!(ends_of(&got), [(epoch, 12, 0)]);
}

#[test]
fn private_messages_are_in_no_replay_resume_or_page() {
    let mut sim = Sim::new(config(1000, 20));
    let alice = sim.join("alice");
    let carol = sim.join("carol");
    sim.send_text(alice, "public 1");
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen::NOTHING);
    bob.settle(&mut sim);
    let epoch = sim.server.history().epoch();
    assert_answer(&bob.take_got(), &[1], (epoch, 1, 0));
    bob.request(&mut sim, Request::Leave);

    let now = sim.now;
    sim.client_mut(alice).send_private(now, "carol", "secret 1");
    sim.drive();
    sim.send_text(alice, "public 2");
    sim.client_mut(carol).send_private(now, "alice", "secret 2");
    sim.drive();
    sim.server
        .say_privately(now, "carol", "secret 3")
        .expect("carol is online");
    sim.client_mut(carol).send_action(now, "public 3");
    sim.drive();
    sim.client_mut(alice)
        .send_private(now, "alice", "secret 4 to herself");
    sim.drive();
    sim.send_text(carol, "public 4");

    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen { epoch, seq: 1 });
    bob.settle(&mut sim);
    let got = bob.take_got();
    assert_answer(&got, &[2, 3, 4], (epoch, 4, 1));
    bob.ask_history(&mut sim, epoch, u64::MAX, 100);
    bob.settle(&mut sim);
    let page = bob.take_got();
    assert_eq!(seqs_of(&page), [1, 2, 3, 4]);
    let dave = sim.join("dave");
    let replay: Vec<String> = replayed(&sim.take_events(dave))
        .into_iter()
        .map(|line| line.4)
        .collect();
    assert_eq!(replay, ["public 1", "public 2", "public 3", "public 4"]);
    for (_, text) in lines_of(&got).into_iter().chain(lines_of(&page)) {
        assert!(text.starts_with("public"), "{text}");
    }
    assert_eq!(sim.server.history().newest(), 4);
}

// Bounds: a client asking in a loop -----------------------------------------------------------

#[test]
fn requests_sent_in_a_loop_get_one_whole_answer_at_a_time_and_live_lines_all_arrive() {
    let mut sim = Sim::new(config(1000, 0));
    broadcast_lines(&mut sim, "old", 1000);
    let alice = sim.join("alice");
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen::NOTHING);
    bob.settle(&mut sim);
    let epoch = sim.server.history().epoch();
    bob.take_got();

    // Ten requests for 1000 lines at once, acknowledging nothing in between: the first
    // is answered in full; the nine that come while it is outstanding get an end alone,
    // which says how many lines they may ask for again.
    for _ in 0..10 {
        bob.ask_history(&mut sim, epoch, u64::MAX, 1000);
    }
    for i in 1..=5 {
        sim.send_text(alice, &format!("live {i}"));
    }
    bob.settle(&mut sim);
    let got = bob.take_got();
    let want: Vec<u64> = (1..=1000).collect();
    assert_eq!(seqs_of(&got), want, "each line once");
    let mut ends = vec![(epoch, 1000, 0)];
    ends.extend([(epoch, 1000, 1000); 9]);
    assert_eq!(ends_of(&got), ends);
    assert_eq!(live_seqs(&got), [1001, 1002, 1003, 1004, 1005]);
    assert_eq!(bob.skipped, 0, "nothing pushed out");
    assert_eq!(sim.server.stats().frames_missed, 0);

    // A client that takes each answer in before asking again gets each in full, and is
    // never dropped for it.
    sim.take_server_events();
    for _ in 0..5 {
        bob.ask_history(&mut sim, epoch, u64::MAX, 1000);
        bob.settle(&mut sim);
        let got = bob.take_got();
        assert_eq!(seqs_of(&got).len(), 1000);
        assert_eq!(ends_of(&got).len(), 1);
    }
    sim.send_text(alice, "still here");
    bob.settle(&mut sim);
    assert_eq!(live_seqs(&bob.take_got()), [1006]);
    assert!(
        !sim.take_server_events()
            .iter()
            .any(|e| matches!(e, ServerEvent::TimedOut { .. })),
        "nobody dropped"
    );
}

#[test]
fn an_answer_is_cut_to_the_room_live_lines_leave_and_never_pushes_them_out() {
    let mut sim = Sim::new(config(1000, 0));
    broadcast_lines(&mut sim, "old", 1000);
    let mut bob = Hand::join(&mut sim, hand_at(1), "bob", Seen::NOTHING);
    bob.settle(&mut sim);
    let epoch = sim.server.history().epoch();
    bob.take_got();
    // 900 live lines bob has not acknowledged yet (a slow path): the answer gets the room
    // left below HISTORY_ROOM, the end included, and its `earlier` counts the rest.
    broadcast_lines(&mut sim, "live", 900);
    bob.ask_history(&mut sim, epoch, u64::MAX, 1000);
    bob.settle(&mut sim);
    let got = bob.take_got();
    let room = server::HISTORY_ROOM - 900 - 1;
    assert_eq!(room, 123);
    let want: Vec<u64> = (1900 - room as u64 + 1..=1900).collect();
    assert_eq!(seqs_of(&got), want);
    assert_eq!(ends_of(&got), [(epoch, 1900, 1000 - room as u64)]);
    // Every live line arrived, once, in order: none was pushed out.
    let want: Vec<u64> = (1001..=1900).collect();
    assert_eq!(live_seqs(&got), want);
    assert_eq!(bob.skipped, 0);
    assert_eq!(sim.server.stats().frames_missed, 0);
}

// Who gets history at all --------------------------------------------------------------------

#[test]
fn guests_and_unproven_addresses_are_sent_no_history() {
    let mut sim = Sim::new(ServerConfig {
        guests: true,
        ..config(1000, 20)
    });
    let alice = sim.join("alice");
    say_lines(&mut sim, alice, 3);
    let epoch = sim.server.history().epoch();

    // A guest is shown live lines as text, never a frame (no replay, no history).
    let guest = addr([127, 0, 0, 1], 30_000);
    let mark = sim.mark();
    sim.inject(guest, b"hello from nc\n");
    sim.send_text(alice, "line 4");
    let sent = sim.server_sent_to(guest, mark);
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|bytes| !wire::is_frame(bytes)), "{sent:?}");

    // A join naming the history is challenged first, like any join: nothing else.
    let stranger = addr([10, 0, 0, 9], 4444);
    let seen = Seen { epoch, seq: 1 };
    let replies = sim.inject_frame(stranger, &room::join_having_seen("mallory", 0, seen));
    assert!(
        matches!(replies[..], [Frame::ToClient(ToClient::Challenge { .. })]),
        "{replies:?}"
    );
    let replies = sim.inject_frame(stranger, &room::join_having_seen("mallory", 12345, seen));
    assert!(
        matches!(replies[..], [Frame::ToClient(ToClient::Challenge { .. })]),
        "a wrong cookie is challenged again: {replies:?}"
    );
    // A history request outside a session is answered with NotJoined only.
    let request = Frame::ToServer(ToServer::Sequenced(
        room::envelope(0xDEAD_BEEF, 1),
        Request::History {
            epoch,
            before: u64::MAX,
            count: 1000,
        },
    ));
    let replies = sim.inject_frame(stranger, &request);
    assert!(
        matches!(replies[..], [Frame::ToClient(ToClient::NotJoined { .. })]),
        "{replies:?}"
    );
}
