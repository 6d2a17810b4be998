//! Peer mode on a perfect network, one rule at a time: joining and the member list,
//! gossip, messages and private messages, leaving, eviction of dead peers, and unique names.

use super::*;
use icq::proto::chat::ChatEvent;

// A perfect network, one rule at a time ------------------------------------------------

fn closed_reason(events: &[PeerEvent]) -> Option<&PeerCloseReason> {
    events.iter().find_map(|e| match e {
        PeerEvent::Closed(reason) => Some(reason),
        _ => None,
    })
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
            .rposition(|e| matches!(e, PeerEvent::Chat(ChatEvent::Message { .. })))
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
