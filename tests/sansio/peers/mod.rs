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
//!
//! This module holds what the topics share (configs, the chatter and its checks) and the
//! room under loss; each topic is a module: `rules` (a perfect network, one rule at a
//! time), `untrusted` (never trust the network), `commands` (`/me`, `/nick`, `/away`,
//! `/back`).

mod commands;
mod rules;
mod untrusted;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use icq::bans::list::BanList;
use icq::completion::NameBook;
use icq::peer::{PeerCloseReason, PeerConfig, PeerEvent};
use icq::proto::chat::ChatEvent;
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
        if let PeerEvent::Chat(ChatEvent::Message {
            time_ms,
            from,
            text,
            own,
        }) = event
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

fn gone(events: &[PeerEvent]) -> Vec<(String, GoneReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::MemberGone { name, reason, .. } => Some((name.clone(), *reason)),
            _ => None,
        })
        .collect()
}

/// Delivers every datagram after the same delay: joins through two members cross.
struct Delay(Duration);

impl sim::Link for Delay {
    fn route(&mut self, _now: Instant, _datagram: &sim::Datagram) -> Vec<Duration> {
        vec![self.0]
    }
}

fn ban(text: &str) -> BanList {
    BanList::parse(text).0
}

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
