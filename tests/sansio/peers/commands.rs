//! Peer mode's conversational commands: `/me`, `/nick`, `/away` and `/back`, and what
//! each peer sees.

use super::*;

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
