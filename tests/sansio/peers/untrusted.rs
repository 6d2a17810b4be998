//! Peer mode never trusts the network: no impersonation, no traffic to unproven
//! addresses, no panic on garbage, and what a hostile or broken peer can and cannot do.

use super::*;

// Never trust the network ------------------------------------------------------------------

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
