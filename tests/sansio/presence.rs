//! Presence news in storms: the server gathers the joins, departures and renames of a short
//! window into one batch per client, and in a large room announces none of them. Checked
//! here: after storms of every kind of change, interleaved across windows, every client's
//! own idea of who is online (what its Tab completion learned from its events) is exactly
//! the server's roster; a storm costs each client one frame per window; in a quiet room no
//! one is told, the join's roster and `/list` are exact and completion learns from lines
//! said; a batch cut or corrupted anywhere is rejected whole.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use icq::client::ClientEvent;
use icq::completion::NameBook;
use icq::names;
use icq::proto::chat::ChatEvent;
use icq::server::{PRESENCE_BURST, PRESENCE_WINDOW, ServerConfig};
use icq::wire::{Delivery, Envelope, Frame, HEADER_LEN, PresenceChange, PresenceItem, ToClient};

use crate::impairment::Impairment;
use crate::rng::Rng;
use crate::sim::room::{SERVER_ADDR, Sim};
use crate::sim::{LossyLink, for_each_seed};

/// A room with no flood limit and no cap per address (every simulated client is on
/// 127.0.0.1), quiet above `quiet_above` people.
pub(crate) fn config(quiet_above: usize) -> ServerConfig {
    ServerConfig {
        flood_limit: None,
        max_per_ip: None,
        quiet_above,
        ..ServerConfig::default()
    }
}

/// Who the client at `at` believes is online, itself included, folded: everything its
/// events said, read as its Tab completion reads them.
fn view(sim: &Sim, at: SocketAddr) -> BTreeSet<String> {
    let mut book = NameBook::new();
    for event in sim.events(at) {
        for news in event.presence() {
            book.observe(&news);
        }
    }
    let me = names::fold(sim.client(at).name());
    book.names()
        .into_iter()
        .map(names::fold)
        .chain(std::iter::once(me))
        .collect()
}

/// Who the server lists, folded.
fn roster(sim: &Sim) -> BTreeSet<String> {
    sim.server
        .clients(sim.now)
        .into_iter()
        .map(|c| names::fold(&c.name))
        .collect()
}

/// The clients still in the room.
fn online(sim: &Sim, clients: &[SocketAddr]) -> Vec<SocketAddr> {
    clients
        .iter()
        .copied()
        .filter(|at| sim.client(*at).is_joined())
        .collect()
}

/// One storm: a burst of joins, leaves, renames and aways (several at the same instant,
/// some a few milliseconds apart, so changes fall in and across windows), then a pause.
fn storm(sim: &mut Sim, rng: &mut Rng, clients: &mut Vec<SocketAddr>, fresh: &mut usize) {
    for _ in 0..5 + rng.below(40) {
        let here = online(sim, clients);
        let now = sim.now;
        match rng.below(10) {
            0..=4 => {
                *fresh += 1;
                let at = sim.add_client(&format!("p{fresh}"));
                clients.push(at);
            }
            5 | 6 if here.len() > 2 => {
                let at = here[rng.below(here.len())];
                sim.client_mut(at).leave(now);
            }
            7 if !here.is_empty() => {
                let at = here[rng.below(here.len())];
                *fresh += 1;
                sim.client_mut(at).rename(now, &format!("r{fresh}"));
            }
            8 if !here.is_empty() => {
                let at = here[rng.below(here.len())];
                let name = sim.client(at).name().to_owned();
                let _ = sim.server.kick(now, &name);
            }
            _ if !here.is_empty() => {
                let at = here[rng.below(here.len())];
                let away = rng.chance(0.5).then_some("lunch");
                sim.client_mut(at).set_away(now, away);
            }
            _ => {}
        }
        if rng.chance(0.3) {
            sim.drive();
        }
        if rng.chance(0.2) {
            sim.run_for(rng.duration_up_to(Duration::from_millis(30)));
        }
    }
    sim.drive();
}

// Batching keeps every view exact --------------------------------------------------------

/// Six storms over `network`, then every client still in the room must see exactly the
/// server's roster.
fn storms_end_with_exact_views(network: Impairment) {
    for_each_seed(0..8, network, |seed| {
        let mut rng = Rng::new(seed);
        let mut sim = Sim::new(config(500));
        sim.set_link(LossyLink::new(seed, network));
        let mut clients = Vec::new();
        let mut fresh = 0;
        for _ in 0..6 {
            storm(&mut sim, &mut rng, &mut clients, &mut fresh);
            sim.run_for(rng.duration_up_to(PRESENCE_WINDOW * 3));
        }
        // Whatever still waits goes out with its window, and what was lost again (a frame
        // lost three times in a row waits seconds for its next try).
        sim.run_for(Duration::from_secs(10));
        let here = online(&sim, &clients);
        let batches: usize = here
            .iter()
            .map(|at| {
                sim.events(*at)
                    .iter()
                    .filter(|e| matches!(e, ClientEvent::PresenceBatch { .. }))
                    .count()
            })
            .sum();
        if batches == 0 {
            return Err("no storm was batched".to_owned());
        }
        let expected = roster(&sim);
        for at in here {
            let seen = view(&sim, at);
            if seen != expected {
                if std::env::var_os("ICQ_DEBUG").is_some() {
                    eprintln!("{:#?}", sim.events(at));
                }
                return Err(format!("{at} sees {seen:?}, the server lists {expected:?}"));
            }
        }
        Ok(())
    });
}

#[test]
fn after_storms_of_joins_leaves_renames_and_kicks_every_client_sees_the_servers_roster() {
    storms_end_with_exact_views(Impairment::NONE);
}

#[test]
fn over_a_lossy_network_too_every_view_ends_exact() {
    storms_end_with_exact_views(Impairment::new(0.1, 0.05, Duration::from_millis(20)));
}

#[test]
fn a_storm_costs_each_client_a_burst_then_one_batch_per_window() {
    let mut sim = Sim::new(config(500));
    let watcher = sim.join("watcher");
    sim.run_for(PRESENCE_WINDOW * 2);
    sim.clear_events();
    let mark = sim.mark();
    // 30 joins at one instant: the first few go out one by one, the rest wait for the
    // window's end and go in one frame.
    let first: Vec<SocketAddr> = (0..30).map(|i| sim.add_client(&format!("a{i}"))).collect();
    sim.drive();
    let presence_frames = |sim: &Sim, mark: usize| -> (usize, usize) {
        let sent = sim.server_sent_to(watcher, mark);
        let kind = |k: u8| sent.iter().filter(|b| b.get(3) == Some(&k)).count();
        (kind(0x8F), kind(0x93))
    };
    assert_eq!(presence_frames(&sim, mark), (PRESENCE_BURST, 0));
    sim.run_for(PRESENCE_WINDOW);
    assert_eq!(presence_frames(&sim, mark), (PRESENCE_BURST, 1));

    // A storm that goes on: a join every 5 ms for half a second, ten windows, in which
    // every change waits: one batch per window.
    let mark = sim.mark();
    let mut later = Vec::new();
    for i in 0..100 {
        later.push(sim.add_client(&format!("b{i}")));
        sim.run_for(Duration::from_millis(5));
    }
    sim.run_for(PRESENCE_WINDOW * 2);
    // (A window that happens to hold one change sends it as a plain `Presence`.)
    let (single, batches) = presence_frames(&sim, mark);
    assert!(
        (10..=12).contains(&(single + batches)) && single <= 2,
        "{single} + {batches} presence frames for 100 joins over 10 windows"
    );
    assert_eq!(view(&sim, watcher), roster(&sim));
    assert_eq!(roster(&sim).len(), 1 + first.len() + later.len());
    // And the batch carries every join, in order.
    let joined: Vec<String> = sim
        .events(watcher)
        .iter()
        .flat_map(|event| match event {
            ClientEvent::Chat(ChatEvent::Presence { name, .. }) => vec![name.clone()],
            ClientEvent::PresenceBatch { changes, .. } => {
                changes.iter().map(|item| item.name.clone()).collect()
            }
            _ => Vec::new(),
        })
        .collect();
    let expected: Vec<String> = (0..30)
        .map(|i| format!("a{i}"))
        .chain((0..100).map(|i| format!("b{i}")))
        .collect();
    assert_eq!(joined, expected);

    // Once the storm is over, the next change goes out at once again.
    let mark = sim.mark();
    sim.leave(later[0]);
    assert_eq!(presence_frames(&sim, mark), (1, 0));
}

#[test]
fn a_newcomer_hears_only_the_changes_after_its_own_join() {
    let mut sim = Sim::new(config(500));
    let watcher = sim.join("watcher");
    // Use up the window's burst, so what follows waits.
    for i in 0..PRESENCE_BURST {
        sim.join(&format!("early{i}"));
    }
    let before = sim.add_client("before");
    sim.drive();
    let newcomer = sim.join("newcomer");
    let after = sim.add_client("after");
    sim.drive();
    sim.run_for(PRESENCE_WINDOW);
    assert!(sim.client(before).is_joined() && sim.client(after).is_joined());
    let heard = |sim: &Sim, at| -> Vec<String> {
        sim.events(at)
            .iter()
            .flat_map(|event| match event {
                ClientEvent::PresenceBatch { changes, .. } => {
                    changes.iter().map(|item| item.name.clone()).collect()
                }
                ClientEvent::Chat(ChatEvent::Presence { name, .. }) => vec![name.clone()],
                _ => Vec::new(),
            })
            .collect()
    };
    assert_eq!(heard(&sim, newcomer), ["after"]);
    assert_eq!(
        heard(&sim, watcher).last_chunk::<3>(),
        Some(&[
            "before".to_owned(),
            "newcomer".to_owned(),
            "after".to_owned()
        ])
    );
    for at in [watcher, before, newcomer, after] {
        assert_eq!(view(&sim, at), roster(&sim), "as {at} sees it");
    }
}

// The quiet room ---------------------------------------------------------------------------

#[test]
fn in_a_large_room_nobody_is_told_of_joins_leaves_and_renames_but_list_is_exact() {
    let mut sim = Sim::new(config(5));
    let first: Vec<SocketAddr> = (0..5).map(|i| sim.join(&format!("c{i}"))).collect();
    sim.run_for(PRESENCE_WINDOW * 2);
    assert_eq!(view(&sim, first[0]), roster(&sim));
    sim.clear_events();
    let mark = sim.mark();

    // The sixth makes the room large: its join, and everything after, is announced to no
    // one. Each newcomer gets the first five of the roster (see `join_roster.rs`).
    let more: Vec<SocketAddr> = (5..12).map(|i| sim.join(&format!("c{i}"))).collect();
    let now = sim.now;
    sim.client_mut(more[0]).rename(now, "renamed");
    sim.client_mut(first[1]).leave(now);
    sim.client_mut(first[2]).set_away(now, Some("lunch"));
    sim.drive();
    sim.run_for(PRESENCE_WINDOW * 2);
    for at in first.iter().chain(&more) {
        let told: Vec<&ClientEvent> = sim
            .events(*at)
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    ClientEvent::Chat(ChatEvent::Presence { .. })
                        | ClientEvent::PresenceBatch { .. }
                )
            })
            .collect();
        // The person who went away is told it is, and only it.
        if *at == first[2] {
            assert_eq!(told.len(), 1, "{told:?}");
        } else {
            assert!(told.is_empty(), "{at} was told {told:?}");
        }
    }
    for at in &more {
        let server_sent = sim.server_sent_to(*at, mark);
        assert!(
            server_sent
                .iter()
                .all(|b| b.get(3) != Some(&0x8F) && b.get(3) != Some(&0x93)),
            "presence frames reached {at}"
        );
    }
    assert!(
        view(&sim, first[0]) != roster(&sim),
        "the view is stale until /list"
    );

    // `/list` makes every view exact again; a line said teaches completion its author.
    for at in online(
        &sim,
        first
            .iter()
            .chain(&more)
            .copied()
            .collect::<Vec<_>>()
            .as_slice(),
    ) {
        sim.request_list(at);
        assert_eq!(view(&sim, at), roster(&sim), "after /list, as {at} sees it");
    }
    let late = sim.join("latecomer");
    sim.send_text(late, "hello");
    assert!(view(&sim, first[0]).contains("latecomer"));
    // The join roster is exact in what it lists, the room's first five, and `/list` in the
    // rest.
    let first_five: BTreeSet<String> = roster(&sim)
        .into_iter()
        .take(5)
        .chain(std::iter::once(names::fold("latecomer")))
        .collect();
    assert_eq!(view(&sim, late), first_five, "the join roster is exact");
    sim.request_list(late);
    assert_eq!(view(&sim, late), roster(&sim), "and so is /list");
}

// A batch is read whole or not at all ---------------------------------------------------

#[test]
fn a_batch_cut_or_corrupted_anywhere_is_rejected_whole_and_the_intact_one_accepted() {
    let mut sim = Sim::new(config(500));
    let alice = sim.join("alice");
    sim.run_for(PRESENCE_WINDOW * 2);
    let token = sim.token(alice);
    // The next number alice's stream expects from the server.
    let next = sim
        .server_sent_to(alice, 0)
        .iter()
        .filter_map(|bytes| Frame::decode(bytes).ok()?.envelope().map(|e| e.seq))
        .max()
        .expect("alice was sent her roster")
        + 1;
    sim.clear_events();
    let batch = Frame::ToClient(ToClient::Sequenced(
        Envelope {
            token,
            seq: next,
            ..Envelope::default()
        },
        Delivery::PresenceBatch {
            time_ms: sim.wall_ms(),
            changes: vec![
                PresenceItem {
                    name: "mallory".into(),
                    change: PresenceChange::Joined,
                },
                PresenceItem {
                    name: "trent".into(),
                    change: PresenceChange::Joined,
                },
            ],
        },
    ))
    .to_bytes();
    let count_at = HEADER_LEN + 24 + 8;
    let mut bad = Vec::new();
    // Cut anywhere after the header: between the items too.
    for len in HEADER_LEN..batch.len() {
        bad.push(batch[..len].to_vec());
    }
    // A count that does not match, or is 0.
    for count in [0u16, 1, 3] {
        let mut bytes = batch.clone();
        bytes[count_at..count_at + 2].copy_from_slice(&count.to_be_bytes());
        bad.push(bytes);
    }
    // A change code outside the table in the last item.
    let mut bytes = batch.clone();
    *bytes.last_mut().expect("not empty") = 0x2A;
    bad.push(bytes);
    for bytes in &bad {
        sim.inject_to(SERVER_ADDR, alice, bytes);
        sim.run_for(Duration::from_millis(20));
    }
    let shown = |sim: &Sim| {
        sim.events(alice)
            .iter()
            .filter(|e| matches!(e, ClientEvent::PresenceBatch { .. }))
            .count()
    };
    assert_eq!(shown(&sim), 0, "{:?}", sim.events(alice));
    assert!(!view(&sim, alice).contains("mallory"));
    // The same number, intact, is taken: none of the bad ones used it up.
    sim.inject_to(SERVER_ADDR, alice, &batch);
    assert_eq!(shown(&sim), 1);
    assert!(view(&sim, alice).contains("mallory") && view(&sim, alice).contains("trent"));
}
