//! Peer mode without sockets: sans-IO peers (`icq::peer::Peer`) wired through a simulated
//! network (`sim::mesh`) that may lose, duplicate and reorder datagrams, on a fake
//! clock.
//!
//! This file owns the promises of peer mode: a room with no special node, membership that
//! converges by gossip, every message shown exactly once and in each sender's order,
//! eviction of dead peers, unique names (concurrent joins included), and the security rules
//! (no impersonation, no traffic to unproven addresses, no panic on garbage). It does not own
//! the byte layout (`wire`) nor the real binaries (`peers_e2e.rs`).
//!
//! A failing seed is printed; `ICQ_SEED=N cargo test --test sansio peers::` runs that seed
//! alone, and `ICQ_SEEDS=N` runs seeds 0 to N-1 instead of the usual 50.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use icq::bans::list::BanList;
use icq::completion::NameBook;
use icq::peer::{PeerCloseReason, PeerConfig, PeerEvent};
use icq::proto::flood::FloodLimit;
use icq::render::ClientLook;
use icq::wire::{Delivery, PeerFrame, PeerItem, ToClient};
use icq::wire::{Frame, GoneReason, RefuseReason};

use crate::impairment::Impairment;
use crate::rng::Rng;
use crate::sim::mesh::{PeerSim, converged, messages, roster};
use crate::sim::{self, LossyLink, for_each_seed, privates};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Flood limiting off (the senders below type faster than people) and a short timeout, so
/// a dead peer is noticed in seconds of simulated time.
fn fast_config() -> PeerConfig {
    PeerConfig {
        flood_limit: None,
        timeout: secs(3),
        ..PeerConfig::default()
    }
}

/// What one sender typed, in order, and the time its own screen showed for each line.
type Typed = BTreeMap<String, Vec<(String, i64)>>;

/// Each of `senders` types `per_sender` lines in a random interleaving (from `rng`), one
/// every 10 ms; lines are `NAME K`, K counting from `first`.
fn chatter(
    sim: &mut PeerSim,
    senders: &[SocketAddr],
    per_sender: usize,
    first: usize,
    rng: &mut Rng,
    typed: &mut Typed,
) {
    let mut left: Vec<usize> = vec![per_sender; senders.len()];
    let mut next: Vec<usize> = vec![first; senders.len()];
    while left.iter().any(|&n| n > 0) {
        let candidates: Vec<usize> = (0..senders.len()).filter(|&i| left[i] > 0).collect();
        let pick = candidates[rng.below(candidates.len())];
        let at = senders[pick];
        let name = sim.peer(at).name().to_owned();
        let text = format!("{name} {}", next[pick]);
        sim.type_text(at, &text);
        typed
            .entry(name)
            .or_default()
            .push((text, sim.wall_ms_of(at)));
        next[pick] += 1;
        left[pick] -= 1;
        sim.run_for(ms(10));
    }
}

/// Checks that the peer at `at` showed, from each sender, exactly the lines in `expected`
/// (in that order, once each, stamped with the sender's clock), and nothing else.
fn check_shown(sim: &PeerSim, at: SocketAddr, expected: &Typed) -> Result<(), String> {
    let me = sim.peer(at).name().to_owned();
    let mut shown: Typed = BTreeMap::new();
    for event in sim.events(at) {
        if let PeerEvent::Message {
            time_ms,
            from,
            text,
            own,
        } = event
        {
            if *own != (*from == me) {
                return Err(format!("{me}: {from}'s line {text:?} has own={own}"));
            }
            shown
                .entry(from.clone())
                .or_default()
                .push((text.clone(), *time_ms));
        }
    }
    for (sender, lines) in expected {
        let got = shown.remove(sender).unwrap_or_default();
        if &got != lines {
            let first_difference = got
                .iter()
                .zip(lines)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(lines.len()));
            return Err(format!(
                "{me} showed {} lines from {sender}, expected {} (first difference at {}: {:?} \
                 instead of {:?})",
                got.len(),
                lines.len(),
                first_difference,
                got.get(first_difference),
                lines.get(first_difference)
            ));
        }
    }
    if let Some((sender, lines)) = shown.into_iter().next() {
        return Err(format!(
            "{me} showed unexpected lines from {sender}: {lines:?}"
        ));
    }
    Ok(())
}

/// Events that must not happen in a healthy room.
fn trouble(events: &[PeerEvent]) -> Vec<&PeerEvent> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                PeerEvent::NotSent { .. }
                    | PeerEvent::Undelivered { .. }
                    | PeerEvent::Closed(_)
                    | PeerEvent::DroppedBy { .. }
                    | PeerEvent::FloodDropped { .. }
                    | PeerEvent::FloodWarned { .. }
            )
        })
        .collect()
}

const NAMES: [&str; 5] = ["ann", "bob", "cid", "dee", "eve"];

/// The scenario on one seed: five peers join, each through the one before; 200
/// messages under 10 % loss (with some duplication and reordering); one peer dies; a new
/// one joins through the youngest; a few more messages. Returns the datagrams sent.
fn room_under_loss(seed: u64) -> Result<u64, String> {
    let mut sim = PeerSim::new(fast_config());
    sim.set_link(LossyLink::new(seed, ROOM_UNDER_LOSS));
    let mut rng = Rng::new(seed ^ 0x5EED);

    // Five peers, each joining through the previous one once it is in the room.
    let mut peers = vec![sim.start_room(NAMES[0])];
    for name in &NAMES[1..] {
        let contact = *peers.last().expect("a peer");
        let at = sim.add_joiner(name, &[contact]);
        sim.try_run_until(secs(10), |sim| sim.peer(at).is_in_room())?;
        peers.push(at);
    }
    sim.try_run_until(secs(20), |sim| converged(sim, &peers))
        .map_err(|e| format!("the five did not converge: {e}"))?;

    // 200 messages from random senders.
    let mut typed = Typed::new();
    chatter(&mut sim, &peers, 40, 0, &mut rng, &mut typed);
    sim.run_until_quiet(secs(60))?;
    for &at in &peers {
        check_shown(&sim, at, &typed)?;
    }

    // One of the first four dies (the youngest stays: the newcomer joins through it).
    let dead = peers[(seed % 4) as usize];
    let dead_name = sim.peer(dead).name().to_owned();
    sim.kill(dead);
    let survivors: Vec<SocketAddr> = peers.iter().copied().filter(|&p| p != dead).collect();
    sim.try_run_until(secs(20), |sim| converged(sim, &survivors))
        .map_err(|e| format!("{dead_name} was not evicted everywhere: {e}"))?;

    // A newcomer joins through the youngest; a few more lines from everyone.
    let youngest = *peers.last().expect("a peer");
    let fay = sim.add_joiner("fay", &[youngest]);
    sim.try_run_until(secs(10), |sim| sim.peer(fay).is_in_room())?;
    let mut everyone = survivors.clone();
    everyone.push(fay);
    sim.try_run_until(secs(20), |sim| converged(sim, &everyone))
        .map_err(|e| format!("fay did not converge: {e}"))?;
    let mut later = Typed::new();
    chatter(&mut sim, &everyone, 5, 40, &mut rng, &mut later);
    sim.run_until_quiet(secs(60))?;

    for &at in &everyone {
        let mut expected = if at == fay {
            Typed::new()
        } else {
            typed.clone()
        };
        for (sender, lines) in &later {
            expected
                .entry(sender.clone())
                .or_default()
                .extend(lines.iter().cloned());
        }
        check_shown(&sim, at, &expected)?;
        let events = sim.events(at);
        let problems = trouble(events);
        if !problems.is_empty() {
            return Err(format!("{}: {problems:?}", sim.peer(at).name()));
        }
        if at != fay {
            let evictions = events
                .iter()
                .filter(|e| {
                    matches!(e, PeerEvent::MemberGone { name, reason: GoneReason::TimedOut, .. }
                        if *name == dead_name)
                })
                .count();
            if evictions != 1 {
                return Err(format!(
                    "{} announced {dead_name}'s timeout {evictions} times",
                    sim.peer(at).name()
                ));
            }
        }
    }
    let lists: Vec<Vec<(String, u64)>> = everyone.iter().map(|&at| roster(&sim, at)).collect();
    if lists.windows(2).any(|w| w[0] != w[1]) || lists[0].len() != 5 {
        return Err(format!("member lists differ: {lists:?}"));
    }
    Ok(sim.datagrams)
}

/// How many seeds the lossy room runs with.
const SEEDS: u64 = 50;

/// The network of the lossy room.
const ROOM_UNDER_LOSS: Impairment = Impairment::new(0.10, 0.02, Duration::from_millis(20));

#[test]
fn a_room_under_loss_shows_every_message_once_in_order_and_survives_a_death() {
    let count =
        std::env::var("ICQ_SEEDS").map_or(SEEDS, |n| n.parse().expect("ICQ_SEEDS is a number"));
    let sent = for_each_seed(0..count, ROOM_UNDER_LOSS, room_under_loss);
    println!("{} datagrams over all seeds", sent.iter().sum::<u64>());
}

// A perfect network, one rule at a time ------------------------------------------------

/// The default settings with the flood limit off and a short timeout.
pub(crate) fn quick() -> PeerConfig {
    fast_config()
}

/// A room of `names`, each joining through the first, everyone in and connected.
pub(crate) fn room(sim: &mut PeerSim, names: &[&str]) -> Vec<SocketAddr> {
    let first = sim.start_room(names[0]);
    let mut peers = vec![first];
    for name in &names[1..] {
        peers.push(sim.join(name, first, secs(5)));
    }
    sim.run_until(secs(5), |sim| converged(sim, &peers));
    sim.clear_events();
    peers
}

fn closed_reason(events: &[PeerEvent]) -> Option<&PeerCloseReason> {
    events.iter().find_map(|e| match e {
        PeerEvent::Closed(reason) => Some(reason),
        _ => None,
    })
}

fn gone(events: &[PeerEvent]) -> Vec<(String, GoneReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::MemberGone { name, reason, .. } => Some((name.clone(), *reason)),
            _ => None,
        })
        .collect()
}

fn joined(events: &[PeerEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::MemberJoined { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_room_has_one_member_and_joiners_learn_everyone() {
    let mut sim = PeerSim::new(quick());
    let ann = sim.start_room("ann");
    assert_eq!(
        sim.peer(ann).members(sim.now).len(),
        1,
        "a new room holds its founder"
    );
    let bob = sim.join("bob", ann, secs(5));
    let cid = sim.join("cid", bob, secs(5));
    sim.run_until(secs(5), |sim| converged(sim, &[ann, bob, cid]));
    let [
        PeerEvent::Joined {
            through, members, ..
        },
    ] = &sim.events(cid)[..1]
    else {
        panic!("cid: {:?}", sim.events(cid));
    };
    assert_eq!(through, &Some(("bob".to_owned(), bob)));
    assert_eq!(members, &["ann", "bob", "cid"]);
    assert_eq!(joined(sim.events(ann)), ["bob", "cid"]);
    assert_eq!(joined(sim.events(bob)), ["cid"]);
}

#[test]
fn a_join_under_a_name_in_use_is_refused_in_any_letter_case() {
    let mut sim = PeerSim::new(quick());
    let [ann, bob] = room(&mut sim, &["ann", "bob"])[..] else {
        unreachable!()
    };
    let other = sim.add_joiner("BOB", &[ann]);
    sim.run_until(secs(5), |sim| sim.peer(other).is_closed());
    assert_eq!(
        closed_reason(sim.events(other)),
        Some(&PeerCloseReason::Refused(RefuseReason::NameTaken))
    );
    let mine = sim.add_joiner("Ann", &[bob]);
    sim.run_until(secs(5), |sim| sim.peer(mine).is_closed());
    assert_eq!(
        closed_reason(sim.events(mine)),
        Some(&PeerCloseReason::Refused(RefuseReason::NameTaken))
    );
    assert!(joined(sim.events(ann)).is_empty() && joined(sim.events(bob)).is_empty());
}

#[test]
fn a_look_alike_of_a_member_name_is_taken_and_mixed_scripts_are_invalid() {
    let mut sim = PeerSim::new(quick());
    let [ann, bob] = room(&mut sim, &["ann", "bob"])[..] else {
        unreachable!()
    };
    // `B0B`, with a zero for the o: one script, and the same skeleton as `bob`.
    let twin = sim.add_joiner("B0B", &[ann]);
    sim.run_until(secs(5), |sim| sim.peer(twin).is_closed());
    assert_eq!(
        closed_reason(sim.events(twin)),
        Some(&PeerCloseReason::Refused(RefuseReason::NameTaken))
    );
    // A Cyrillic а (U+0430) before Latin letters.
    let mixed = sim.add_joiner("\u{430}nn", &[bob]);
    sim.run_until(secs(5), |sim| sim.peer(mixed).is_closed());
    assert_eq!(
        closed_reason(sim.events(mixed)),
        Some(&PeerCloseReason::Refused(RefuseReason::NameInvalid))
    );
    assert!(joined(sim.events(ann)).is_empty() && joined(sim.events(bob)).is_empty());
}

/// Delivers every datagram after the same delay: joins through two members cross.
struct Delay(Duration);

impl sim::Link for Delay {
    fn route(&mut self, _now: Instant, _datagram: &sim::Datagram) -> Vec<Duration> {
        vec![self.0]
    }
}

#[test]
fn concurrent_joins_under_one_name_leave_the_same_single_winner_everywhere() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["ann", "bob", "cid"]);
    let (ann, bob) = (peers[0], peers[1]);
    sim.set_link(Delay(ms(10)));
    // Two people pick "dee" at the same moment, one through ann, one through bob: each
    // is let in before the news of the other arrives.
    let first = sim.add_joiner("dee", &[ann]);
    let second = sim.add_joiner("Dee", &[bob]);
    sim.run_until(secs(5), |sim| {
        sim.peer(first).is_closed() || sim.peer(second).is_closed()
    });
    sim.run_for(secs(2));
    // ann's clock runs behind bob's (see sim::mesh::CLOCK_SKEW): her newcomer joined first.
    assert_eq!(
        closed_reason(sim.events(second)),
        Some(&PeerCloseReason::NameConflict),
        "{:?}",
        sim.summary()
    );
    assert!(!sim.peer(first).is_closed());
    let mut everyone = peers.clone();
    everyone.push(first);
    sim.run_until(secs(5), |sim| converged(sim, &everyone));
}

#[test]
fn a_leaving_member_is_announced_after_its_last_messages() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["ann", "bob", "cid"]);
    let bob = peers[1];
    for text in ["one", "two", "three"] {
        sim.type_text(bob, text);
    }
    sim.leave(bob);
    sim.run_until(secs(5), |sim| sim.peer(bob).is_closed());
    assert_eq!(closed_reason(sim.events(bob)), Some(&PeerCloseReason::Left));
    for at in [peers[0], peers[2]] {
        let events = sim.events(at);
        let texts: Vec<String> = messages(events).into_iter().map(|(_, t, _)| t).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        let last_message = events
            .iter()
            .rposition(|e| matches!(e, PeerEvent::Message { .. }))
            .unwrap();
        let left = events
            .iter()
            .position(|e| matches!(e, PeerEvent::MemberGone { .. }))
            .unwrap();
        assert!(last_message < left, "{events:?}");
        assert_eq!(gone(events), [("bob".to_owned(), GoneReason::Left)]);
    }
    sim.run_until(secs(5), |sim| converged(sim, &[peers[0], peers[2]]));
}

#[test]
fn the_room_survives_its_founder_leaving_and_takes_newcomers_after() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["ann", "bob", "cid"]);
    let (ann, bob, cid) = (peers[0], peers[1], peers[2]);
    sim.leave(ann);
    sim.run_until(secs(5), |sim| sim.peer(ann).is_closed());
    sim.type_text(bob, "still here?");
    let dee = sim.join("dee", cid, secs(5));
    sim.run_until(secs(5), |sim| converged(sim, &[bob, cid, dee]));
    sim.type_text(dee, "hi all");
    sim.run_until_quiet(secs(5)).unwrap();
    assert_eq!(
        messages(sim.events(cid)),
        [
            ("bob".to_owned(), "still here?".to_owned(), false),
            ("dee".to_owned(), "hi all".to_owned(), false)
        ]
    );
    assert_eq!(
        messages(sim.events(bob)).last(),
        Some(&("dee".to_owned(), "hi all".to_owned(), false))
    );
}

#[test]
fn a_killed_peer_times_out_once_everywhere() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["ann", "bob", "cid", "dee"]);
    sim.kill(peers[0]);
    let rest = &peers[1..];
    sim.run_until(secs(10), |sim| converged(sim, rest));
    sim.run_for(secs(10));
    for &at in rest {
        assert_eq!(
            gone(sim.events(at)),
            [("ann".to_owned(), GoneReason::TimedOut)]
        );
    }
}

#[test]
fn completion_learns_the_room_from_typed_presence_news() {
    let mut sim = PeerSim::new(quick());
    // As `room` does, but keeping every event.
    let first = sim.start_room("ann");
    let mut peers = vec![first];
    for name in ["bob", "cid", "dee"] {
        peers.push(sim.join(name, first, secs(5)));
    }
    sim.run_until(secs(5), |sim| converged(sim, &peers));
    let book = |sim: &PeerSim, at| {
        let mut book = NameBook::new();
        for news in sim.events(at).iter().flat_map(PeerEvent::presence) {
            book.observe(&news);
        }
        book
    };
    // dee joined last: it learned everyone from the member list; bob from news of joins.
    assert_eq!(book(&sim, peers[3]).names(), ["ann", "bob", "cid"]);
    assert_eq!(book(&sim, peers[1]).names(), ["ann", "cid", "dee"]);
    sim.kill(peers[0]);
    sim.leave(peers[2]);
    let rest = [peers[1], peers[3]];
    sim.run_until(secs(10), |sim| converged(sim, &rest));
    sim.run_for(secs(10));
    assert_eq!(book(&sim, peers[1]).names(), ["dee"]);
    assert_eq!(book(&sim, peers[3]).names(), ["bob"]);
}

#[test]
fn private_messages_reach_their_recipient_only() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["ann", "bob", "cid"]);
    let (ann, bob, cid) = (peers[0], peers[1], peers[2]);
    let now = sim.now;
    sim.peer_mut(ann)
        .send_private(now, "BOB", "just for you")
        .unwrap();
    assert_eq!(
        sim.peer_mut(ann).send_private(now, "zed", "hello?"),
        Err(icq::peer::PeerError::NoSuchMember {
            name: "zed".to_owned()
        })
    );
    assert_eq!(
        sim.peer_mut(ann).send_private(now, "Ann", "me"),
        Err(icq::peer::PeerError::ToSelf)
    );
    sim.run_until_quiet(secs(5)).unwrap();
    let expected = |own| {
        vec![(
            "ann".to_owned(),
            "bob".to_owned(),
            "just for you".to_owned(),
            own,
        )]
    };
    assert_eq!(privates(sim.events(ann)), expected(true));
    assert_eq!(privates(sim.events(bob)), expected(false));
    assert!(sim.events(cid).is_empty(), "{:?}", sim.events(cid));
}

#[test]
fn lines_typed_while_joining_are_sent_once_in_the_room() {
    let mut sim = PeerSim::new(quick());
    let ann = sim.start_room("ann");
    let bob = sim.add_joiner("bob", &[ann]);
    sim.type_text(bob, "early bird");
    sim.leave(bob);
    sim.run_until(secs(5), |sim| sim.peer(bob).is_closed());
    assert_eq!(
        messages(sim.events(ann)),
        [("bob".to_owned(), "early bird".to_owned(), false)]
    );
    assert_eq!(closed_reason(sim.events(bob)), Some(&PeerCloseReason::Left));
    assert_eq!(
        gone(sim.events(ann)),
        [("bob".to_owned(), GoneReason::Left)]
    );
}

#[test]
fn a_join_nobody_answers_gives_up_after_the_join_timeout() {
    let mut sim = PeerSim::new(quick());
    let nowhere = sim.next_addr();
    let bob = sim.add_joiner("bob", &[nowhere]);
    sim.run_for(icq::proto::join::JOIN_TIMEOUT - ms(1));
    assert!(!sim.peer(bob).is_closed());
    sim.run_for(ms(1));
    assert_eq!(
        closed_reason(sim.events(bob)),
        Some(&PeerCloseReason::JoinTimedOut)
    );
}

#[test]
fn each_receiver_applies_the_flood_limit_and_tells_the_sender() {
    let mut sim = PeerSim::new(PeerConfig {
        flood_limit: FloodLimit::from_options(5.0, 10),
        ..quick()
    });
    let peers = room(&mut sim, &["ann", "bob", "cid"]);
    let (ann, bob, cid) = (peers[0], peers[1], peers[2]);
    sim.record = true;
    sim.type_text(bob, "hello");
    sim.run_until_quiet(secs(5)).unwrap();
    // Long enough for the buckets to fill again, and for a stamp of 0 to be stale.
    sim.run_for(secs(4));
    sim.clear_events();
    // Not an icq-client (which paces itself): a program at bob's address, with bob's
    // tokens, sends ann and cid 30 lines at once.
    for to in [ann, cid] {
        let token = token_on_wire(&sim, bob, to);
        let next_seq = sim
            .wire
            .iter()
            .filter(|d| d.from == bob && d.to == to)
            .filter_map(|d| d.frame()?.envelope().map(|e| e.seq))
            .max()
            .unwrap()
            + 1;
        for i in 0..30 {
            sim.inject(bob, to, &chat(token, next_seq + i, &format!("spam {i}")));
        }
    }
    sim.run_for(secs(2));
    for at in [ann, cid] {
        let events = sim.events(at);
        assert_eq!(messages(events).len(), 10, "the burst, then nothing");
        assert!(events.iter().any(|e| matches!(
            e,
            PeerEvent::FloodDropped { from, dropped: 20, .. } if from == "bob"
        )));
    }
    let warnings: Vec<(String, u32)> = sim
        .events(bob)
        .iter()
        .filter_map(|e| match e {
            PeerEvent::FloodWarned { by, dropped, .. } => Some((by.clone(), *dropped)),
            _ => None,
        })
        .collect();
    assert_eq!(warnings, [("ann".to_owned(), 20), ("cid".to_owned(), 20)]);
}

/// What a member showed from `from`, in order.
fn texts_from(sim: &PeerSim, at: SocketAddr, from: &str) -> Vec<String> {
    messages(sim.events(at))
        .into_iter()
        .filter(|(sender, ..)| sender == from)
        .map(|(_, text, _)| text)
        .collect()
}

fn flood_dropped_anywhere(sim: &PeerSim, peers: &[SocketAddr]) -> bool {
    peers.iter().any(|at| {
        sim.events(*at).iter().any(|e| {
            matches!(
                e,
                PeerEvent::FloodDropped { .. } | PeerEvent::FloodWarned { .. }
            )
        })
    })
}

#[test]
fn a_peer_paces_a_paste_and_every_member_shows_all_of_it_in_order() {
    let mut sim = PeerSim::new(PeerConfig::default());
    let peers = room(&mut sim, &["ann", "bob", "cid"]);
    let (ann, bob, cid) = (peers[0], peers[1], peers[2]);
    sim.clear_events();
    let typed: Vec<String> = (0..30).map(|i| format!("line {i}")).collect();
    for line in &typed {
        sim.type_text(bob, line);
    }
    sim.run_for(ms(150));
    assert!(
        sim.events(bob).contains(&PeerEvent::Queued {
            lines: 20,
            every: ms(200)
        }),
        "{:?}",
        sim.events(bob)
    );
    // 20 beyond the burst at 5 a second: all there within 4 s and a little.
    sim.run_for(ms(4100));
    for at in [ann, cid] {
        assert_eq!(texts_from(&sim, at, "bob"), typed);
    }
    assert!(!flood_dropped_anywhere(&sim, &peers));
    assert_eq!(sim.peer(bob).queued(), 0);
}

#[test]
fn a_backlog_resent_after_a_partition_is_not_taken_for_a_flood() {
    let mut sim = PeerSim::new(PeerConfig::default());
    let peers = room(&mut sim, &["ann", "bob", "cid"]);
    let (ann, bob, cid) = (peers[0], peers[1], peers[2]);
    sim.clear_events();
    let cut = std::rc::Rc::new(std::cell::Cell::new(true));
    sim.set_link(Partition {
        side: vec![bob],
        cut: cut.clone(),
    });
    // Bob types five lines a second for 15 s, cut off from everyone.
    let mut typed = Vec::new();
    for i in 0..75 {
        let line = format!("cut off {i}");
        sim.type_text(bob, &line);
        typed.push(line);
        sim.run_for(ms(200));
    }
    assert_eq!(texts_from(&sim, ann, "bob"), Vec::<String>::new());
    // The partition heals: the backlog comes all at once, counted as it was sent.
    cut.set(false);
    sim.run_for(secs(5));
    for at in [ann, cid] {
        assert_eq!(texts_from(&sim, at, "bob"), typed);
    }
    assert!(!flood_dropped_anywhere(&sim, &peers));
    // And the pair carries on: a line after it arrives at once.
    sim.type_text(bob, "still here");
    sim.run_until_quiet(secs(5)).unwrap();
    assert_eq!(
        texts_from(&sim, cid, "bob").last().map(String::as_str),
        Some("still here")
    );
}

fn ban(text: &str) -> BanList {
    BanList::parse(text).0
}

#[test]
fn each_peer_applies_its_own_ban_list() {
    let mut sim = PeerSim::new(quick());
    let ann = sim.start_room_with("ann", ban("10.0.0.5\n"));
    let bob = sim.join("bob", ann, secs(5));
    // mallory at a banned address asks ann: refused, and told why.
    let mallory_addr = SocketAddr::new([10, 0, 0, 5].into(), sim.next_addr().port());
    let mallory = sim.add_joiner_at(mallory_addr, "mallory", &[ann], BanList::default());
    sim.run_until(secs(5), |sim| sim.peer(mallory).is_closed());
    assert_eq!(
        closed_reason(sim.events(mallory)),
        Some(&PeerCloseReason::Refused(RefuseReason::Banned))
    );
    // Through bob, who bans nobody, the same person gets in; ann lists it as banned and
    // neither shows its lines nor sends it hers.
    sim.peers.remove(&mallory_addr);
    sim.clear_events();
    let mallory = sim.add_joiner_at(mallory_addr, "mallory", &[bob], BanList::default());
    sim.run_until(secs(5), |sim| sim.peer(mallory).is_in_room());
    sim.run_until(secs(5), |sim| {
        sim.peer(ann)
            .members(sim.now)
            .iter()
            .any(|m| m.name == "mallory")
    });
    sim.record = true;
    sim.type_text(mallory, "from mallory");
    sim.type_text(ann, "from ann");
    sim.run_until_quiet(secs(5)).unwrap();
    let shown = |at| -> Vec<String> {
        messages(sim.events(at))
            .into_iter()
            .filter(|m| !m.2)
            .map(|m| m.1)
            .collect()
    };
    assert_eq!(shown(bob), ["from mallory", "from ann"]);
    assert!(shown(ann).is_empty());
    assert!(shown(mallory).is_empty());
    assert!(
        !sim.wire
            .iter()
            .any(|d| d.from == ann && d.to == mallory_addr),
        "ann sent something to a banned address"
    );
    let listed = sim.peer(ann).members(sim.now);
    let entry = listed.iter().find(|m| m.name == "mallory").unwrap();
    assert!(entry.banned && !entry.reachable);
}

// Never trust the network ------------------------------------------------------------------

/// The token `at` puts in its frames to `to`, as seen on the wire (recording must be on).
pub(crate) fn token_on_wire(sim: &PeerSim, from: SocketAddr, to: SocketAddr) -> u64 {
    sim.wire
        .iter()
        .rev()
        .filter(|d| d.from == from && d.to == to)
        .find_map(|d| d.frame().and_then(|f| f.token()))
        .expect("a frame with a token on the wire")
}

fn chat(token: u64, seq: u32, text: &str) -> Vec<u8> {
    Frame::Peer(PeerFrame::Sequenced(
        icq::wire::Envelope {
            token,
            seq,
            acks: Default::default(),
        },
        PeerItem::Chat {
            time_ms: 0,
            sent_ms: 0,
            text: text.to_owned(),
        },
    ))
    .to_bytes()
}

#[test]
fn nobody_can_speak_as_a_member_without_its_address_and_token() {
    let mut sim = PeerSim::new(quick());
    sim.record = true;
    let peers = room(&mut sim, &["ann", "bob"]);
    let (ann, bob) = (peers[0], peers[1]);
    sim.type_text(bob, "real");
    sim.run_until_quiet(secs(5)).unwrap();
    let token = token_on_wire(&sim, bob, ann);
    let mallory = SocketAddr::new([10, 9, 9, 9].into(), 666);
    // The right token from another address; bob's address with a wrong token; a frame of
    // the client–server protocol from bob's address.
    assert!(
        sim.inject(mallory, ann, &chat(token, 50, "fake 1"))
            .is_empty()
    );
    assert!(
        sim.inject(bob, ann, &chat(token ^ 1, 2, "fake 2"))
            .is_empty()
    );
    let server_frame = Frame::ToClient(ToClient::Sequenced(
        icq::wire::Envelope {
            token,
            seq: 2,
            acks: Default::default(),
        },
        Delivery::Message {
            seq: 3,
            time_ms: 0,
            from: "bob".into(),
            text: "fake 3".into(),
        },
    ));
    assert!(sim.inject(bob, ann, &server_frame.to_bytes()).is_empty());
    sim.run_for(secs(1));
    let texts: Vec<String> = messages(sim.events(ann)).into_iter().map(|m| m.1).collect();
    assert_eq!(texts, ["real"]);
}

#[test]
fn a_forged_join_gets_one_small_challenge_and_unknown_hellos_get_nothing() {
    let mut sim = PeerSim::new(quick());
    let ann = sim.start_room("ann");
    let victim = SocketAddr::new([192, 0, 2, 1].into(), 53);
    let join = Frame::Peer(PeerFrame::Join {
        nonce: 7,
        cookie: 0,
        id: 1,
        token: 2,
        clock_ms: 0,
        flood: icq::wire::FloodTerms::NONE,
        name: "zed".into(),
    })
    .to_bytes();
    let replies = sim.inject(victim, ann, &join);
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].len() < join.len() / 10,
        "{} bytes",
        replies[0].len()
    );
    assert!(matches!(
        Frame::decode(&replies[0]),
        Ok(Frame::Peer(PeerFrame::Challenge { nonce: 7, .. }))
    ));
    // A wrong cookie is challenged again; nothing is let in.
    let guessed = Frame::Peer(PeerFrame::Join {
        nonce: 7,
        cookie: 12345,
        id: 1,
        token: 2,
        clock_ms: 0,
        flood: icq::wire::FloodTerms::NONE,
        name: "zed".into(),
    });
    let replies = sim.inject(victim, ann, &guessed.to_bytes());
    assert!(matches!(
        Frame::decode(&replies[0]),
        Ok(Frame::Peer(PeerFrame::Challenge { .. }))
    ));
    assert_eq!(sim.peer(ann).members(sim.now).len(), 1);
    let hello = Frame::Peer(PeerFrame::Hello {
        from_id: 1,
        to_id: sim.peer(ann).id(),
        token: 3,
        echo: 0,
        clock_ms: 0,
        flood: icq::wire::FloodTerms::NONE,
    });
    assert!(sim.inject(victim, ann, &hello.to_bytes()).is_empty());
}

#[test]
fn news_of_a_member_at_a_victims_address_sends_it_only_a_few_small_hellos() {
    let mut sim = PeerSim::new(quick());
    sim.record = true;
    let peers = room(&mut sim, &["ann", "bob"]);
    let (ann, bob) = (peers[0], peers[1]);
    sim.type_text(bob, "hi");
    sim.run_until_quiet(secs(5)).unwrap();
    // A misbehaving member (here: a forgery with bob's address, token and next sequence
    // number) tells ann that "zed" lives at the victim's address.
    let token = token_on_wire(&sim, bob, ann);
    let next_seq = sim
        .wire
        .iter()
        .filter(|d| d.from == bob && d.to == ann)
        .filter_map(|d| d.frame()?.envelope().map(|e| e.seq))
        .max()
        .unwrap()
        + 1;
    let victim = SocketAddr::new([192, 0, 2, 1].into(), 4000);
    let announce = Frame::Peer(PeerFrame::Sequenced(
        icq::wire::Envelope {
            token,
            seq: next_seq,
            acks: Default::default(),
        },
        PeerItem::Announce {
            member: icq::wire::MemberRecord {
                id: 99,
                joined_ms: 0,
                addr: victim,
                name: "zed".into(),
            },
        },
    ));
    let mark = sim.wire.len();
    sim.inject(bob, ann, &announce.to_bytes());
    sim.run_for(quick().timeout * 3);
    let to_victim: Vec<&sim::Datagram> =
        sim.wire[mark..].iter().filter(|d| d.to == victim).collect();
    assert!(
        to_victim.iter().all(
            |d| matches!(d.frame(), Some(Frame::Peer(PeerFrame::Hello { .. })))
                && d.bytes.len() <= 50
        ),
        "{to_victim:?}"
    );
    // Hellos back off up to an eighth of the timeout; the member is evicted at the timeout.
    assert!(
        (3..=12).contains(&to_victim.len()),
        "{} hellos",
        to_victim.len()
    );
    assert!(
        gone(sim.events(ann)).contains(&("zed".to_owned(), GoneReason::TimedOut)),
        "{:?}",
        sim.events(ann)
    );
}

#[test]
fn garbage_and_mangled_frames_never_panic_a_peer_in_any_state() {
    let mut sim = PeerSim::new(quick());
    sim.record = true;
    let peers = room(&mut sim, &["ann", "bob"]);
    let joining = sim.add_joiner("cid", &[peers[0]]);
    sim.type_text(peers[1], "some traffic to mangle");
    sim.run_until_quiet(secs(5)).unwrap();
    let samples: Vec<Vec<u8>> = sim.wire.iter().map(|d| d.bytes.clone()).collect();
    let mut rng = Rng::new(7);
    let from = peers[1];
    for round in 0..3000 {
        let mut bytes = samples[round % samples.len()].clone();
        match rng.up_to(3) {
            0 => {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.up_to(7);
            }
            1 => bytes.truncate(rng.up_to(bytes.len() as u64) as usize),
            2 => bytes.extend((0..rng.up_to(40)).map(|_| rng.byte())),
            _ => {
                bytes = vec![0; rng.up_to(1300) as usize];
                rng.fill(&mut bytes);
            }
        }
        for to in [peers[0], peers[1], joining] {
            let now = sim.now;
            sim.peer_mut(to).handle_datagram(now, from, &bytes);
        }
    }
    sim.drive();
    sim.run_for(secs(1));
    assert!(sim.peer(peers[0]).is_in_room() && sim.peer(peers[1]).is_in_room());
}

#[test]
fn a_server_answers_no_peer_frame_but_a_join_and_that_with_a_refusal() {
    use icq::server::{Server, ServerConfig};
    let start = std::time::Instant::now();
    let mut server = Server::new(ServerConfig::default(), BanList::default(), start, 0);
    let from = SocketAddr::new([127, 0, 0, 1].into(), 5555);
    let frames = [
        Frame::Peer(PeerFrame::Join {
            nonce: 1,
            cookie: 0,
            id: 2,
            token: 3,
            clock_ms: 0,
            flood: icq::wire::FloodTerms::NONE,
            name: "ann".into(),
        }),
        Frame::Peer(PeerFrame::Hello {
            from_id: 1,
            to_id: 2,
            token: 3,
            echo: 4,
            clock_ms: 0,
            flood: icq::wire::FloodTerms::NONE,
        }),
        Frame::Peer(PeerFrame::Ack {
            token: 1,
            acks: Default::default(),
        }),
        Frame::Peer(PeerFrame::Sequenced(Default::default(), PeerItem::Leave)),
    ];
    for frame in frames {
        assert!(!frame.travels_to_server() && frame.is_peer());
        let bytes = frame.to_bytes();
        server.handle_datagram(start, from, &bytes);
        if let Frame::Peer(PeerFrame::Join { nonce, .. }) = frame {
            // A peer pointed at a server is told so, in fewer bytes than it sent
            // (tests/programs/wrong_address.rs follows it through to what the person sees).
            let refusal = server.poll_transmit().expect("a refusal of the peer join");
            let mut answer = Vec::new();
            refusal.write_to(&mut answer);
            assert!(answer.len() < bytes.len(), "{answer:?}");
            let reason = RefuseReason::IsAServer;
            assert_eq!(
                Frame::decode(&answer),
                Ok(Frame::Peer(PeerFrame::Refused { nonce, reason }))
            );
        }
        assert_eq!(server.poll_transmit(), None, "{frame:?} was answered");
    }
}

/// Drops every datagram between the two sides while `cut` is true.
struct Partition {
    side: Vec<SocketAddr>,
    cut: std::rc::Rc<std::cell::Cell<bool>>,
}

impl sim::Link for Partition {
    fn route(&mut self, _now: Instant, datagram: &sim::Datagram) -> Vec<Duration> {
        let across = self.side.contains(&datagram.from) != self.side.contains(&datagram.to);
        if across && self.cut.get() {
            Vec::new()
        } else {
            vec![Duration::ZERO]
        }
    }
}

#[test]
fn a_partition_longer_than_the_timeout_leaves_two_rooms_that_do_not_merge() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["ann", "bob", "cid", "dee"]);
    let (left, right) = (&peers[..2], &peers[2..]);
    let cut = std::rc::Rc::new(std::cell::Cell::new(true));
    sim.set_link(Partition {
        side: left.to_vec(),
        cut: cut.clone(),
    });
    // A short cut is bridged by the probes: nobody is evicted.
    sim.run_for(quick().timeout / 3);
    cut.set(false);
    sim.run_for(secs(5));
    assert!(converged(&sim, &peers), "{:?}", sim.summary());
    // A cut longer than the timeout: each side evicts the other, and stays apart after.
    cut.set(true);
    sim.run_for(quick().timeout * 2);
    cut.set(false);
    sim.run_for(secs(10));
    assert!(
        converged(&sim, left) && converged(&sim, right),
        "{:?}",
        sim.summary()
    );
    for &at in left {
        assert_eq!(
            gone(sim.events(at)),
            [
                ("cid".to_owned(), GoneReason::TimedOut),
                ("dee".to_owned(), GoneReason::TimedOut)
            ]
        );
    }
    // Both halves go on; a newcomer joins the half it asks.
    sim.type_text(peers[3], "we are two now");
    let eve = sim.join("eve", peers[2], secs(5));
    sim.run_until(secs(5), |sim| converged(sim, &[peers[2], peers[3], eve]));
}

/// How many peers the larger room holds.
const LARGE_ROOM: usize = 24;

#[test]
fn a_larger_room_converges_and_delivers_under_loss() {
    for seed in 0..3 {
        let mut sim = PeerSim::new(PeerConfig {
            flood_limit: None,
            timeout: secs(10),
            ..PeerConfig::default()
        });
        sim.set_link(LossyLink::new(seed, Impairment::new(0.05, 0.01, ms(20))));
        let mut rng = Rng::new(seed);
        let mut peers = vec![sim.start_room("p0")];
        // Each joins through a random member, a moment after the one before: joins overlap.
        for n in 1..LARGE_ROOM {
            let contact = peers[rng.below(peers.len())];
            let contact = if sim.peer(contact).is_in_room() {
                contact
            } else {
                peers[0]
            };
            peers.push(sim.add_joiner(&format!("p{n}"), &[contact]));
            sim.run_for(ms(100));
        }
        if let Err(why) = sim.try_run_until(secs(60), |sim| converged(sim, &peers)) {
            panic!("seed {seed}: {why}");
        }
        let mut typed = Typed::new();
        chatter(&mut sim, &peers, 4, 0, &mut rng, &mut typed);
        sim.run_until_quiet(secs(60))
            .unwrap_or_else(|why| panic!("seed {seed}: {why}"));
        for &at in &peers {
            check_shown(&sim, at, &typed).unwrap_or_else(|why| panic!("seed {seed}: {why}"));
            let problems = trouble(sim.events(at));
            assert!(problems.is_empty(), "seed {seed}: {problems:?}");
        }
        println!(
            "seed {seed}: {LARGE_ROOM} peers, {} datagrams",
            sim.datagrams
        );
    }
}

/// Drops what `from` sends `to` while `cut` is true; delivers everything else at once.
struct OneWay {
    from: SocketAddr,
    to: SocketAddr,
    cut: std::rc::Rc<std::cell::Cell<bool>>,
}

impl sim::Link for OneWay {
    fn route(&mut self, _now: Instant, datagram: &sim::Datagram) -> Vec<Duration> {
        if self.cut.get() && datagram.from == self.from && datagram.to == self.to {
            Vec::new()
        } else {
            vec![Duration::ZERO]
        }
    }
}

#[test]
fn one_way_trouble_ends_with_the_pair_dropped_and_quiet_not_ping_pong() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["ann", "bob", "cid"]);
    let (ann, bob) = (peers[0], peers[1]);
    let cut = std::rc::Rc::new(std::cell::Cell::new(true));
    sim.set_link(OneWay {
        from: ann,
        to: bob,
        cut: cut.clone(),
    });
    // bob stops hearing ann; ann still hears bob. bob evicts ann; cid, who hears her, keeps
    // her. The trouble ends before ann would time bob out in turn (bob went quiet for her
    // when he evicted her); her next frame to bob is answered "not a member".
    sim.run_for(quick().timeout + secs(1));
    cut.set(false);
    sim.run_for(secs(5));
    assert_eq!(
        gone(sim.events(bob)),
        [("ann".to_owned(), GoneReason::TimedOut)]
    );
    assert!(gone(sim.events(peers[2])).is_empty(), "{:?}", sim.summary());
    assert!(
        sim.events(ann)
            .iter()
            .any(|e| matches!(e, PeerEvent::DroppedBy { name, .. } if name == "bob")),
        "{:?}",
        sim.summary()
    );
    // From then on the two say nothing to each other.
    sim.record = true;
    let mark = sim.wire.len();
    sim.run_for(secs(30));
    let between = sim.wire[mark..]
        .iter()
        .filter(|d| (d.from == ann && d.to == bob) || (d.from == bob && d.to == ann))
        .count();
    assert_eq!(between, 0);
}

#[test]
fn a_ban_put_in_force_mid_session_silences_that_member_both_ways() {
    let mut sim = PeerSim::new(PeerConfig {
        timeout: secs(30),
        ..quick()
    });
    let ann = sim.start_room("ann");
    let bob = sim.join("bob", ann, secs(5));
    let mallory_addr = SocketAddr::new([10, 0, 0, 5].into(), sim.next_addr().port());
    let mallory = sim.add_joiner_at(mallory_addr, "mallory", &[bob], BanList::default());
    let everyone = [ann, bob, mallory];
    sim.run_until(secs(5), |sim| converged(sim, &everyone));
    sim.clear_events();
    let now = sim.now;
    sim.peer_mut(ann).set_ban_list(now, ban("10.0.0.0/8\n"));
    sim.record = true;
    sim.type_text(mallory, "can you hear me?");
    sim.type_text(ann, "not you");
    sim.run_for(secs(2));
    let shown = |sim: &PeerSim, at| -> Vec<String> {
        messages(sim.events(at))
            .into_iter()
            .filter(|m| !m.2)
            .map(|m| m.1)
            .collect()
    };
    assert!(shown(&sim, ann).is_empty());
    assert!(shown(&sim, mallory).is_empty());
    assert_eq!(shown(&sim, bob), ["can you hear me?", "not you"]);
    assert!(
        !sim.wire
            .iter()
            .any(|d| d.from == ann && d.to == mallory_addr)
    );
    // Lifted again: the pair picks up where it stopped, and what mallory said meanwhile
    // (still unacknowledged) arrives in order.
    let now = sim.now;
    sim.peer_mut(ann).set_ban_list(now, BanList::default());
    sim.type_text(mallory, "and now?");
    sim.run_until_quiet(secs(10)).unwrap();
    assert_eq!(shown(&sim, ann), ["can you hear me?", "and now?"]);
}

// /me, /nick, /away and /back -------------------------------------------------------------

/// What the peer at `at` printed, without colors or bell, minus the clock and the `-- `
/// that marks a notice.
fn shown_lines(sim: &PeerSim, at: SocketAddr) -> Vec<String> {
    sim.events(at)
        .iter()
        .flat_map(|event| ClientLook::PLAIN.peer_lines(event, 0, sim.peer(at).name()))
        .map(|line| {
            let text = line
                .split_once("] ")
                .map_or(line.as_str(), |(_, rest)| rest);
            text.strip_prefix("-- ").unwrap_or(text).to_owned()
        })
        .collect()
}

#[test]
fn me_nick_away_and_back_are_shown_everywhere_as_in_server_mode() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["pa", "bob", "cid"]);
    let (pa, bob, cid) = (peers[0], peers[1], peers[2]);
    let now = sim.now;
    sim.peer_mut(pa).send_action(now, "waves");
    sim.peer_mut(pa).rename(now, "paula").unwrap();
    sim.peer_mut(pa).set_away(now, Some("lunch"));
    sim.peer_mut(pa).set_away(now, Some("lunch")); // no change: not announced again
    sim.peer_mut(pa).set_away(now, Some("away")); // the reason `/away` alone gives
    sim.peer_mut(pa).set_away(now, None);
    sim.run_until_quiet(secs(5)).unwrap();
    let everyone_sees = [
        "* pa waves",
        "pa is now known as paula",
        "paula is away: lunch",
        "paula is away",
        "paula is back",
    ];
    for at in [bob, cid] {
        assert_eq!(shown_lines(&sim, at), everyone_sees, "at {at}");
    }
    let mut own = everyone_sees.map(str::to_owned).to_vec();
    own[1] = "you are now known as paula".to_owned();
    assert_eq!(shown_lines(&sim, pa), own);
    assert_eq!(sim.peer(pa).name(), "paula");
    assert!(converged(&sim, &peers));
    // Tab completion follows the rename, from the typed news alone.
    let mut book = NameBook::new();
    for news in sim.events(bob).iter().flat_map(PeerEvent::presence) {
        book.observe(&news);
    }
    // A newcomer learns the new name from the member list.
    let dee = sim.join("dee", bob, secs(5));
    let mut everyone = peers.clone();
    everyone.push(dee);
    sim.run_until(secs(5), |sim| converged(sim, &everyone));
    assert!(roster(&sim, dee).iter().any(|(name, _)| name == "paula"));
    // `/list` says who is away, on every peer (ours included).
    let now = sim.now;
    sim.peer_mut(pa).set_away(now, Some("tea"));
    sim.run_until_quiet(secs(5)).unwrap();
    for at in [pa, bob, cid] {
        let listed = sim.peer(at).members(sim.now);
        let paula = listed.iter().find(|m| m.name == "paula").expect("paula");
        assert_eq!(paula.away.as_deref(), Some("tea"), "at {at}");
    }
    assert!(book.names().contains(&"paula"), "{:?}", book.names());
    assert!(!book.names().contains(&"pa"), "{:?}", book.names());
}

#[test]
fn a_rename_is_refused_for_the_servers_reasons() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["ann", "bob"]);
    let (ann, bob) = (peers[0], peers[1]);
    let now = sim.now;
    let refusal = |sim: &mut PeerSim, name: &str| {
        let now = sim.now;
        sim.peer_mut(ann)
            .rename(now, name)
            .map_err(|error| error.to_string())
    };
    assert_eq!(
        refusal(&mut sim, "BOB"),
        Err("cannot rename: BOB is taken".to_owned())
    );
    assert_eq!(
        refusal(&mut sim, "server"),
        Err(format!(
            "cannot rename to server: {}",
            icq::names::NameError::Reserved
        ))
    );
    assert!(matches!(
        sim.peer_mut(ann).rename(now, "b o b"),
        Err(icq::peer::PeerError::Rename {
            error: icq::names::RenameError::Invalid(_),
            ..
        })
    ));
    // Another letter case of one's own name is no one else's.
    sim.peer_mut(ann).rename(now, "Ann").unwrap();
    sim.run_until_quiet(secs(5)).unwrap();
    assert_eq!(shown_lines(&sim, bob), ["ann is now known as Ann"]);
    assert!(converged(&sim, &peers));
}

#[test]
fn concurrent_renames_to_one_name_leave_the_same_single_winner_everywhere() {
    let mut sim = PeerSim::new(quick());
    let peers = room(&mut sim, &["ann", "bob", "cid"]);
    let (ann, bob, cid) = (peers[0], peers[1], peers[2]);
    sim.set_link(Delay(ms(10)));
    // Both ask for "dee" before either hears of the other's rename.
    let now = sim.now;
    sim.peer_mut(bob).rename(now, "Dee").unwrap();
    sim.peer_mut(ann).rename(now, "dee").unwrap();
    sim.run_until_quiet(secs(5)).unwrap();
    // ann joined first (she started the room): her claim wins on every peer, whatever
    // order the two renames reached it in, and bob is bob again everywhere.
    assert_eq!(sim.peer(ann).name(), "dee");
    assert_eq!(sim.peer(bob).name(), "bob");
    assert!(converged(&sim, &peers), "{:?}", sim.summary());
    assert!(
        sim.events(bob).iter().any(|e| matches!(
            e,
            PeerEvent::RenameLost { name, back_to } if name == "Dee" && back_to == "bob"
        )),
        "{:?}",
        sim.events(bob)
    );
    assert!(
        shown_lines(&sim, bob).contains(
            &"another peer took the name Dee at the same moment, and keeps it; you are bob again"
                .to_owned()
        )
    );
    for at in [ann, bob, cid] {
        assert!(!sim.peer(at).is_closed());
    }
}
