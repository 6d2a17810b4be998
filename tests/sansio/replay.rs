//! The server's history as clients meet it (`sim::room`, fake clock): a client that joins
//! is replayed the newest public lines, in order and before anything live, with their
//! original times and the end-of-history marker; private lines are never replayed; a
//! history of 0 lines replays nothing; replay counts are clamped to what is kept.
//!
//! The store's own behaviour (numbering, epochs, trimming, the SQLite file) is tested in
//! `history.rs`; the real binaries' side in `tests/programs/history_e2e.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use icq::client::ClientEvent;
use icq::server::ServerConfig;
use icq::wire::LineKind;

use crate::sim::room::{Sim, messages};

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
            ClientEvent::HistoryLine {
                seq,
                time_ms,
                from,
                kind,
                text,
                ..
            } => Some((*seq, *time_ms, from.clone(), *kind, text.clone())),
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
        .position(|e| matches!(e, ClientEvent::Message { text, .. } if text == "live line"))
        .expect("the live line");
    assert!(end < live, "{events:?}");
    assert!(
        events[..end]
            .iter()
            .all(|e| !matches!(e, ClientEvent::Message { .. })),
        "{events:?}"
    );
    let mark = sim.client(bob).history_mark().expect("a mark");
    assert_eq!(mark.seq, 30);
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
