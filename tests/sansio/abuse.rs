//! Hostile input, one test per defence against it, on the sans-IO server and clients
//! (`sim::room`, fake clock): spoofed frames, reflection, resource caps, flood fairness,
//! confusable names, escape sequences, ban-list edge cases.
//!
//! This file owns the proof that each attack is defeated. Parser robustness (property tests)
//! and the garbage storm against the real binaries live in their own files.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use icq::bans::file::{self, Edit, RealTime, Settle};
use icq::bans::list::{BanList, IpNet};
use icq::client::{ClientEvent, CloseReason};
use icq::completion::NameBook;
use icq::names;
use icq::proto::chat::ChatEvent;
use icq::proto::flood::FloodLimit;
use icq::proto::presence::Presence;
use icq::render::{self, ClientLook};
use icq::server::{ServerConfig, ServerEvent};
use icq::wire::Acks;
use icq::wire::{Delivery, Request, ToClient, ToServer};
use icq::wire::{DisconnectReason, Frame, RefuseReason};

use crate::sim::room::{
    self, Sim, chat_frame, envelope, forge_join, join_frame, messages, notices, refused,
};
use crate::sim::{self, addr};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn listed(sim: &Sim) -> Vec<String> {
    sim.server
        .clients(sim.now)
        .into_iter()
        .map(|c| c.name)
        .collect()
}

// Spoofing ---------------------------------------------------------------------------------

#[test]
fn an_attacker_forging_alices_address_cannot_speak_leave_or_ack_for_her() {
    let mut sim = Sim::new(ServerConfig::default());
    let [alice, bob] = sim.join_settled(["alice", "bob"]);
    let token = sim.token(alice);
    // Off the path, the attacker knows alice's address but not her session token.
    let guess = token.wrapping_add(1);

    sim.inject_frame(alice, &chat_frame(guess, 1, "I owe bob $100"));
    sim.inject_frame(
        alice,
        &Frame::ToServer(ToServer::Sequenced(envelope(guess, 2), Request::Leave)),
    );
    assert_eq!(messages(sim.events(bob)), vec![]);
    assert_eq!(listed(&sim), ["alice", "bob"], "alice did not leave");

    // Acknowledging on her behalf would make the server stop repeating what she missed.
    sim.muted.insert(room::SERVER_ADDR);
    sim.send_text(bob, "did you get this, alice?");
    assert!(sim.server.has_unacknowledged());
    sim.inject_frame(
        alice,
        &Frame::ToServer(ToServer::ClientAck {
            token: guess,
            acks: Acks {
                through: 1000,
                also: u64::MAX,
            },
        }),
    );
    assert!(sim.server.has_unacknowledged(), "a forged ack was believed");
    sim.muted.clear();
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        messages(sim.events(alice)),
        [(
            "bob".to_owned(),
            "did you get this, alice?".to_owned(),
            false
        )]
    );
}

#[test]
fn a_client_ignores_frames_forged_with_the_servers_address_but_not_its_token() {
    let mut sim = Sim::new(ServerConfig::default());
    let alice = sim.join("alice");
    sim.clear_events();
    let now = sim.now;
    let forged = Frame::ToClient(ToClient::Sequenced(
        envelope(12345, 1),
        Delivery::Message {
            seq: 1,
            time_ms: 0,
            from: "bob".to_owned(),
            text: "send me your password".to_owned(),
        },
    ));
    sim.client_mut(alice)
        .handle_datagram(now, room::SERVER_ADDR, &forged.to_bytes());
    let not_joined = Frame::ToClient(ToClient::NotJoined { token: 12345 });
    sim.client_mut(alice)
        .handle_datagram(now, room::SERVER_ADDR, &not_joined.to_bytes());
    sim.drive();
    assert_eq!(sim.events(alice), []);
    assert!(sim.client(alice).is_joined());
}

// Reflection -------------------------------------------------------------------------------

#[test]
fn a_short_join_of_another_version_gets_no_larger_refusal() {
    let mut sim = Sim::new(ServerConfig::default());
    // Magic, another version, the join kind and a nonce: 12 bytes. The refusal is 13.
    let mut short = vec![0xFF, b'I', icq::wire::VERSION + 1, 0x01];
    short.extend([7; 8]);
    assert_eq!(
        sim.inject(addr([192, 0, 2, 1], 5000), &short),
        Vec::<Vec<u8>>::new()
    );
    short.push(0);
    assert_eq!(sim.inject(addr([192, 0, 2, 1], 5000), &short).len(), 1);
}

#[test]
fn a_storm_of_forged_joins_leaves_no_state_and_reflects_less_than_it_receives() {
    let mut sim = Sim::new(ServerConfig::default());
    sim.join("alice");
    let mut bytes_in = 0;
    let mut bytes_out = 0;
    for port in 0..5_000u16 {
        let from = addr([198, 51, 100, (port % 200) as u8], 20_000 + port);
        let join = join_frame(&format!("bot{port}")).to_bytes();
        bytes_in += join.len();
        bytes_out += sim.inject(from, &join).iter().map(Vec::len).sum::<usize>();
    }
    assert_eq!(listed(&sim), ["alice"], "no half-open sessions");
    assert!(!sim.server.farewells_pending());
    // One 20-byte challenge per 512-byte join.
    assert_eq!(bytes_out * 512, bytes_in * 20);
}

// Resource bounds --------------------------------------------------------------------------

#[test]
fn one_ip_address_gets_at_most_max_per_ip_sessions() {
    let mut sim = Sim::new(ServerConfig {
        max_per_ip: Some(3),
        ..ServerConfig::default()
    });
    for i in 0..3 {
        let replies = forge_join(&mut sim, addr([10, 0, 0, 1], 5000 + i), &format!("u{i}"));
        assert!(
            matches!(replies[0], Frame::ToClient(ToClient::Welcome { .. })),
            "{replies:?}"
        );
    }
    assert_eq!(
        forge_join(&mut sim, addr([10, 0, 0, 1], 6000), "u3"),
        [refused(RefuseReason::TooManyFromAddress)]
    );
    // The same address written as IPv4-mapped IPv6 (a dual-stack socket) is the same IP.
    let mapped = SocketAddr::new(
        IpAddr::V6(Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0001])),
        6001,
    );
    assert_eq!(
        forge_join(&mut sim, mapped, "u4"),
        [refused(RefuseReason::TooManyFromAddress)]
    );
    // Other addresses are not affected, and lifting the cap lifts it.
    assert!(matches!(
        forge_join(&mut sim, addr([10, 0, 0, 2], 5000), "v")[0],
        Frame::ToClient(ToClient::Welcome { .. })
    ));
    let mut open = Sim::new(ServerConfig {
        max_per_ip: None,
        ..ServerConfig::default()
    });
    for i in 0..40 {
        let replies = forge_join(&mut open, addr([10, 0, 0, 1], 5000 + i), &format!("u{i}"));
        assert!(matches!(
            replies[0],
            Frame::ToClient(ToClient::Welcome { .. })
        ));
    }
}

#[test]
fn a_guest_storm_from_one_address_is_capped_too() {
    let mut sim = Sim::new(ServerConfig {
        guests: true,
        max_per_ip: Some(2),
        ..ServerConfig::default()
    });
    for port in 40_000..40_010 {
        sim.inject(addr([10, 9, 9, 9], port), b"hi\n");
    }
    assert_eq!(listed(&sim).len(), 2);
}

// Flood fairness ---------------------------------------------------------------------------

#[test]
fn a_flooder_is_capped_then_kicked_while_others_are_heard_at_once() {
    let limit = FloodLimit::from_options(5.0, 10).expect("a limit");
    let mut sim = Sim::new(ServerConfig {
        flood_limit: Some(limit),
        flood_kick: Some(3),
        ..ServerConfig::default()
    });
    let [flooder, bob, carol] = sim.join_settled(["flooder", "bob", "carol"]);
    let start = sim.now;
    let token = sim.token(flooder);

    // The flooder's program is not an icq-client (which paces itself): it sends 200 lines
    // a second, stamped truthfully; bob says something now and then.
    let mut bob_said = Vec::new();
    for tick in 0..1_000u32 {
        let now = sim.now;
        let chat = Frame::ToServer(ToServer::Sequenced(
            room::envelope(token, tick + 1),
            Request::Chat {
                sent_ms: now.duration_since(start).as_millis() as u64,
                text: format!("spam {tick}"),
            },
        ));
        sim.inject_frame(flooder, &chat);
        if tick % 100 == 50 {
            sim.client_mut(bob).send_text(now, &format!("bob {tick}"));
            bob_said.push((tick, sim.now));
        }
        sim.run_for(ms(5));
        if sim.client(flooder).is_closed() {
            break;
        }
    }
    let carol_events = sim.take_events(carol);
    let shown = messages(&carol_events);
    let spam = shown.iter().filter(|(from, ..)| from == "flooder").count();
    let kicked_at = sim
        .take_server_events()
        .into_iter()
        .find_map(|e| match e {
            ServerEvent::Kicked { time_ms, name, .. } if name == "flooder" => Some(time_ms),
            _ => None,
        })
        .expect("the flooder was kicked");
    let flooding_for = Duration::from_millis((kicked_at - sim::WALL_START_MS) as u64)
        - start.duration_since(sim.start);
    // At most the burst plus the sustained rate over the time it flooded.
    let allowed = 10 + (5.0 * flooding_for.as_secs_f64()).ceil() as usize;
    assert!(
        spam <= allowed,
        "{spam} spam lines broadcast in {flooding_for:?}"
    );
    assert!(notices(&carol_events).contains(&"flooder was kicked for flooding".to_owned()));
    // Tab completion learns it from the typed news, not from those words.
    let mut after = NameBook::new();
    after.observe(&Presence::Online {
        names: vec!["flooder".into(), "bob".into(), "carol".into()],
        first: true,
    });
    for news in carol_events.iter().flat_map(ClientEvent::presence) {
        after.observe(&news);
    }
    assert_eq!(after.names(), ["bob", "carol"]);
    assert!(matches!(
        sim.events(flooder).last(),
        Some(ClientEvent::Closed(CloseReason::Disconnected {
            reason: DisconnectReason::Kicked,
            ..
        }))
    ));
    // Everything bob said while the flood went on reached carol, and promptly.
    for (tick, _) in &bob_said {
        let text = format!("bob {tick}");
        assert!(
            shown.iter().any(|(from, t, _)| from == "bob" && *t == text),
            "{text} lost"
        );
    }
    let bob_delays: Vec<i64> = carol_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Chat(ChatEvent::Message {
                time_ms,
                from,
                text,
                ..
            }) if from == "bob" => {
                let tick: u32 = text.rsplit(' ').next()?.parse().ok()?;
                let sent_ms = i64::from(tick) * 5;
                let start_ms = start.duration_since(sim.start).as_millis() as i64;
                Some(time_ms - sim::WALL_START_MS - start_ms - sent_ms)
            }
            _ => None,
        })
        .collect();
    assert!(
        bob_delays.iter().all(|&d| d <= 5),
        "bob's lines were held back: {bob_delays:?} ms"
    );
}

#[test]
fn a_flooding_guest_is_kicked_too() {
    let mut sim = Sim::new(ServerConfig {
        guests: true,
        flood_kick: Some(2),
        ..ServerConfig::default()
    });
    let alice = sim.join("alice");
    let guest = addr([127, 0, 0, 1], 45_000);
    for i in 0..400 {
        sim.inject(guest, format!("spam {i}\n").as_bytes());
        sim.run_for(ms(10));
    }
    // Kicked, and it stays out for a while however much it sends.
    assert_eq!(listed(&sim), ["alice"]);
    let kicks = notices(sim.events(alice))
        .iter()
        .filter(|n| *n == "guest-127.0.0.1:45000 was kicked for flooding")
        .count();
    assert_eq!(kicks, 1);
}

#[test]
fn a_client_kicked_for_flooding_cannot_rejoin_at_once() {
    let mut sim = Sim::new(ServerConfig {
        flood_kick: Some(1),
        ..ServerConfig::default()
    });
    let flooder = addr([127, 0, 0, 1], 46_000);
    let replies = forge_join(&mut sim, flooder, "flooder");
    let Frame::ToClient(ToClient::Welcome { token, .. }) = replies[0] else {
        panic!("{replies:?}");
    };
    for seq in 1..=20 {
        sim.inject_frame(flooder, &chat_frame(token, seq, "spam"));
    }
    sim.run_for(Duration::from_secs(2));
    assert_eq!(listed(&sim), Vec::<String>::new());
    assert_eq!(
        forge_join(&mut sim, flooder, "flooder"),
        [refused(RefuseReason::KickedRecently)]
    );
    sim.run_for(icq::server::FLOOD_KICK_WINDOW);
    assert!(matches!(
        forge_join(&mut sim, flooder, "flooder")[0],
        Frame::ToClient(ToClient::Welcome { .. })
    ));
}

// Names ------------------------------------------------------------------------------------

#[test]
fn names_that_look_alike_cannot_coexist() {
    let mut sim = Sim::new(ServerConfig::default());
    sim.join("Straße");
    sim.join("Σίσυφος");
    for (from_port, name, reason) in [
        (30_001, "STRASSE", RefuseReason::NameTaken),
        (30_002, "strasse", RefuseReason::NameTaken),
        (30_003, "ΣΊΣΥΦΟΣ", RefuseReason::NameTaken),
        (30_004, "Stra\u{200B}ße", RefuseReason::NameInvalid),
        (30_005, "\u{202E}ssarts", RefuseReason::NameInvalid),
        (30_006, "Straße\u{FE0F}", RefuseReason::NameInvalid),
        (30_007, "SERVER", RefuseReason::NameInvalid),
    ] {
        assert_eq!(
            forge_join(&mut sim, addr([127, 0, 0, 1], from_port), name),
            [refused(reason)],
            "{name:?}"
        );
    }
    assert_eq!(names::fold("ǅemal"), names::fold("ǆEMAL"));
    assert_eq!(listed(&sim), ["Straße", "Σίσυφος"]);
}

// Text -------------------------------------------------------------------------------------

#[test]
fn escape_sequences_and_bidi_tricks_are_neutralized_but_unicode_is_kept() {
    let mut sim = Sim::new(ServerConfig::default());
    let [mallory, alice] = sim.join_settled(["mallory", "alice"]);
    let hostile =
        "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m red \u{202E}txt.exe\u{2066} \r\n café 日本 🎉";
    sim.send_text(mallory, hostile);

    let shown = messages(sim.events(alice));
    let [(_, text, _)] = shown.as_slice() else {
        panic!("{shown:?}");
    };
    for bad in [
        '\u{1b}', '\u{7}', '\u{9b}', '\u{202E}', '\u{2066}', '\r', '\n',
    ] {
        assert!(!text.contains(bad), "{bad:?} reached alice in {text:?}");
    }
    assert!(text.ends_with(" café 日本 🎉"), "{text:?}");
    // The server's log line and the client's screen line are clean as well.
    let log = sim
        .take_server_events()
        .iter()
        .map(|event| render::server_line(event, false))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !log.contains('\u{1b}') && !log.contains('\u{202E}'),
        "{log:?}"
    );
    let line = ClientLook::PLAIN
        .client_line(&sim.events(alice)[0], 0, "alice")
        .expect("a line");
    assert!(
        !line.contains('\u{1b}') && !line.contains('\u{9b}'),
        "{line:?}"
    );
}

// Bans -------------------------------------------------------------------------------------

#[test]
fn an_ipv4_ban_matches_the_ipv4_mapped_form_and_every_client_behind_it() {
    let mut sim = Sim::new(ServerConfig {
        max_per_ip: None,
        ..ServerConfig::default()
    });
    let mapped = |port| {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207])),
            port,
        )
    };
    forge_join(&mut sim, mapped(7001), "one");
    forge_join(&mut sim, mapped(7002), "two");
    let alice = sim.join("alice");
    sim.clear_events();

    let now = sim.now;
    sim.server
        .set_ban_list(now, BanList::parse("192.0.2.0/24").0);
    sim.drive();
    assert_eq!(listed(&sim), ["alice"]);
    assert_eq!(
        notices(sim.events(alice)),
        ["one was banned", "two was banned"]
    );
    // And a newcomer from there is refused.
    assert_eq!(
        sim.inject_frame(mapped(7003), &join_frame("three")),
        [refused(RefuseReason::Banned)]
    );
}

/// A scratch directory for ban-file tests, removed afterwards.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("icq-abuse-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What `/ban` does to the file.
fn ban(path: &std::path::Path, net: IpNet, comment: &str) {
    let edit = Edit::Ban {
        net,
        comment: comment.to_owned(),
    };
    file::save(path, &[edit], &mut Settle::new(), &mut RealTime).expect("saved");
}

#[test]
fn a_ban_right_after_a_hand_edit_keeps_both() {
    let scratch = Scratch::new("hand-edit");
    let path = scratch.0.join("bans.txt");
    std::fs::write(&path, "# our bans\n10.0.0.1\n").expect("write");
    // The operator adds a line by hand, and before the server rereads the file, /ban runs.
    std::fs::write(&path, "# our bans\n10.0.0.1\n# added by hand\n10.0.0.2\n").expect("edit");
    let net: IpNet = "10.0.0.3".parse().expect("an address");
    ban(&path, net, "/ban");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        text.starts_with("# our bans\n10.0.0.1\n# added by hand\n10.0.0.2\n"),
        "{text}"
    );
    assert!(text.contains("10.0.0.3"));
    let (list, warnings) = BanList::parse(&text);
    assert!(warnings.is_empty());
    assert_eq!(list.len(), 3);
}

#[test]
fn a_ban_replaces_the_file_whole_and_never_writes_into_it() {
    use std::os::unix::fs::MetadataExt;
    let scratch = Scratch::new("atomic");
    let path = scratch.0.join("bans.txt");
    let before = "# keep me\n10.0.0.1\n";
    std::fs::write(&path, before).expect("write");
    // A hard link keeps the old file reachable: if /ban wrote into it in place, a crash
    // half-way would leave a torn file; replaced by rename, the old one stays whole.
    let old = scratch.0.join("old.txt");
    std::fs::hard_link(&path, &old).expect("link");
    let inode_before = std::fs::metadata(&path).expect("stat").ino();

    ban(&path, "10.0.0.9".parse().expect("address"), "");

    assert_eq!(std::fs::read_to_string(&old).expect("read old"), before);
    assert_ne!(std::fs::metadata(&path).expect("stat").ino(), inode_before);
    let now = std::fs::read_to_string(&path).expect("read new");
    assert!(now.starts_with(before) && now.contains("10.0.0.9"), "{now}");
    // No temporary file is left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(&scratch.0)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n != "bans.txt" && n != "old.txt" && n != ".bans.txt.lock")
        .collect();
    assert_eq!(leftovers, Vec::<std::ffi::OsString>::new());
}

#[test]
fn a_joining_client_believes_only_answers_that_repeat_its_nonce() {
    let mut sim = Sim::new(ServerConfig::default());
    // The real server's answers never arrive; an off-path attacker guesses.
    sim.muted.insert(room::SERVER_ADDR);
    let alice = sim.add_client("alice");
    sim.drive();
    let now = sim.now;
    for forged in [
        Frame::ToClient(ToClient::Welcome {
            nonce: 1,
            token: 99,
            heartbeat_ms: 1000,
            flood: icq::wire::FloodTerms::NONE,
            name: "alice".to_owned(),
        }),
        Frame::ToClient(ToClient::Refused {
            nonce: 1,
            reason: RefuseReason::Banned,
        }),
        Frame::ToClient(ToClient::Challenge {
            nonce: 1,
            cookie: 5,
        }),
    ] {
        sim.client_mut(alice)
            .handle_datagram(now, room::SERVER_ADDR, &forged.to_bytes());
    }
    sim.drive();
    assert_eq!(sim.events(alice), []);
    assert!(!sim.client(alice).is_joined() && !sim.client(alice).is_closed());
}
