//! Peer mode end to end: real `icq-client` processes started with `--listen 127.0.0.1:0`
//! (each reads its port from the peer's first line), chatting with no server, driven
//! through stdin and read from stdout.
//!
//! This file owns what people see of peer mode from outside: the lines each peer prints,
//! exit codes, a room that outlives its founder. The protocol rules are tested without
//! sockets in `peers.rs`; the process plumbing is `process`. Every wait has a deadline
//! (`process::WAIT`); nothing sleeps "long enough", and dropping a `Process` kills it.

use std::net::SocketAddr;
use std::process::Command;

use crate::process::{
    CLIENT_BIN, LineMatcher, Process, Stdin, Stream, TempDir, WAIT, matching, parse_listening_line,
    split_stamp,
};

/// Exit codes of `icq-client` (see its `--help`).
const EXIT_NO_ANSWER: i32 = 3;
const EXIT_REFUSED: i32 = 4;

/// Starts `icq-client --name NAME --listen IP:0 [--peer ADDR]... [args]` and reads the
/// address it listens on from its first line,
/// `[HH:MM:SS] -- listening on 127.0.0.1:PORT as NAME ...`.
fn start_peer_on(
    ip: &str,
    name: &str,
    peers: &[SocketAddr],
    args: &[&str],
) -> (Process, SocketAddr) {
    let mut command = Command::new(CLIENT_BIN);
    command
        .arg("--name")
        .arg(name)
        .arg("--listen")
        .arg(format!("{ip}:0"))
        .args(args);
    for peer in peers {
        command.arg("--peer").arg(peer.to_string());
    }
    let mut process = Process::spawn(&format!("peer {name:?}"), command, Stdin::Piped);
    let first = process.expect_stream_line(Stream::Stdout, "-- listening on ", WAIT);
    let addr = parse_listening_line(&first)
        .unwrap_or_else(|| process.fail(&format!("no address in {first:?}")));
    (process, addr)
}

fn start_peer(name: &str, peers: &[SocketAddr]) -> (Process, SocketAddr) {
    start_peer_on("127.0.0.1", name, peers, &[])
}

/// Starts a peer that joins through `through` and waits until it says it is in the room.
fn join_peer(name: &str, through: SocketAddr) -> (Process, SocketAddr) {
    let (mut process, addr) = start_peer(name, &[through]);
    process.expect_stream_line(
        Stream::Stdout,
        notice_starting("joined the room through "),
        WAIT,
    );
    (process, addr)
}

/// Matches the chat line `[HH:MM:SS] from: text`, with or without the bell.
fn message_from(from: &str, text: &str) -> impl LineMatcher + use<> {
    let wanted = format!("{from}: {text}");
    matching(
        format!("a chat line `[HH:MM:SS] {wanted}`"),
        move |line: &str| {
            split_stamp(line).is_some_and(|(_, rest)| rest.trim_end_matches('\u{7}') == wanted)
        },
    )
}

/// Matches the notice `[HH:MM:SS] -- text` exactly.
fn notice(text: &str) -> impl LineMatcher + use<> {
    let wanted = format!("-- {text}");
    matching(
        format!("the notice `[HH:MM:SS] {wanted}`"),
        move |line: &str| split_stamp(line).is_some_and(|(_, rest)| rest == wanted),
    )
}

/// Matches a notice `[HH:MM:SS] -- ...` starting with `prefix`.
fn notice_starting(prefix: &str) -> impl LineMatcher + use<> {
    let wanted = format!("-- {prefix}");
    matching(
        format!("a notice `[HH:MM:SS] {wanted}...`"),
        move |line: &str| split_stamp(line).is_some_and(|(_, rest)| rest.starts_with(&wanted)),
    )
}

/// Everyone in `peers` shows `from: text`.
fn all_see(peers: &mut [&mut Process], from: &str, text: &str) {
    for peer in peers.iter_mut() {
        peer.expect_stream_line(Stream::Stdout, message_from(from, text), WAIT);
    }
}

/// Types `/exit` and expects a clean end with status 0.
fn exit_cleanly(peer: &mut Process) {
    peer.send_line("/exit");
    peer.expect_stream_line(Stream::Stdout, notice("left the room"), WAIT);
    assert_eq!(peer.wait_exit_code(WAIT), 0, "/exit is a normal end");
}

#[test]
fn three_peers_chat_the_first_leaves_the_others_go_on_and_a_fourth_joins_through_the_second() {
    let (mut alice, alice_addr) = start_peer("alice", &[]);
    alice.expect_stream_line(
        Stream::Stdout,
        notice_starting("started a new room as alice"),
        WAIT,
    );
    let (mut bob, bob_addr) = join_peer("bob", alice_addr);
    let (mut carol, _) = join_peer("carol", alice_addr);
    alice.expect_lines_unordered(&[&notice("bob joined"), &notice("carol joined")], WAIT);
    bob.expect_stream_line(Stream::Stdout, notice("carol joined"), WAIT);

    // Everyone's line reaches everyone, with the time and the sender's name.
    for (name, text) in [
        ("alice", "hi all"),
        ("bob", "hello alice"),
        ("carol", "hey you two"),
    ] {
        let sender = match name {
            "alice" => &mut alice,
            "bob" => &mut bob,
            _ => &mut carol,
        };
        sender.send_line(text);
        all_see(&mut [&mut alice, &mut bob, &mut carol], name, text);
    }

    // The first one leaves; the others are told, and the room goes on without it.
    exit_cleanly(&mut alice);
    bob.expect_stream_line(Stream::Stdout, notice("alice left"), WAIT);
    carol.expect_stream_line(Stream::Stdout, notice("alice left"), WAIT);
    bob.send_line("just us now");
    all_see(&mut [&mut bob, &mut carol], "bob", "just us now");
    carol.send_line("so it seems");
    all_see(&mut [&mut bob, &mut carol], "carol", "so it seems");

    // A fourth joins through the second, learns who is there, and is heard by everyone.
    let (mut dave, _) = start_peer("dave", &[bob_addr]);
    dave.expect_stream_line(
        Stream::Stdout,
        notice_starting("joined the room through bob (")
            .and_ends_with("as dave; type /help for commands"),
        WAIT,
    );
    // Then who is online, in the words a client of a server uses.
    dave.expect_stream_line(Stream::Stdout, notice("3 online: bob, carol, dave"), WAIT);
    bob.expect_stream_line(Stream::Stdout, notice("dave joined"), WAIT);
    carol.expect_stream_line(Stream::Stdout, notice("dave joined"), WAIT);
    dave.send_line("hi, I am new");
    all_see(
        &mut [&mut bob, &mut carol, &mut dave],
        "dave",
        "hi, I am new",
    );
    carol.send_line("welcome dave");
    all_see(
        &mut [&mut bob, &mut carol, &mut dave],
        "carol",
        "welcome dave",
    );

    dave.send_line("/list");
    dave.expect_stream_line(Stream::Stdout, notice("3 in the room:"), WAIT);
    dave.expect_lines_unordered(
        &[
            &notice_starting("  bob at 127.0.0.1:"),
            &notice_starting("  carol at 127.0.0.1:"),
            &notice_starting("  dave (you) at 127.0.0.1:"),
        ],
        WAIT,
    );

    for peer in [&mut bob, &mut carol, &mut dave] {
        exit_cleanly(peer);
    }
    // Nobody ever showed alice's departure twice, or a line twice.
    let seen: Vec<String> = carol.seen().iter().map(|l| l.text.clone()).collect();
    assert_eq!(
        seen.iter().filter(|l| l.ends_with("-- alice left")).count(),
        1
    );
    assert_eq!(
        seen.iter()
            .filter(|l| message_from("bob", "just us now").is_match(l))
            .count(),
        1
    );
}

/// [`LineMatcher`] combinators for these tests.
trait AndEndsWith: LineMatcher + Sized {
    /// Also requires the line to end with `suffix`.
    fn and_ends_with(self, suffix: &str) -> impl LineMatcher {
        let suffix = suffix.to_owned();
        let description = format!("{} ending with {suffix:?}", self.describe());
        matching(description, move |line: &str| {
            self.is_match(line) && line.ends_with(&suffix)
        })
    }
}

impl<M: LineMatcher> AndEndsWith for M {}

#[test]
fn a_private_message_reaches_only_its_recipient() {
    let (mut alice, alice_addr) = start_peer("alice", &[]);
    let (mut bob, _) = join_peer("bob", alice_addr);
    let (mut carol, _) = join_peer("carol", alice_addr);
    alice.expect_lines_unordered(&[&notice("bob joined"), &notice("carol joined")], WAIT);
    bob.expect_stream_line(Stream::Stdout, notice("carol joined"), WAIT);

    alice.send_line("/msg Bob just between us");
    alice.expect_stream_line(
        Stream::Stdout,
        "alice -> bob (private): just between us",
        WAIT,
    );
    bob.expect_stream_line(
        Stream::Stdout,
        "alice -> bob (private): just between us",
        WAIT,
    );
    alice.send_line("/msg zed hello?");
    alice.expect_stream_line(Stream::Stdout, "nobody called 'zed' is in the room", WAIT);
    // A public line after it: once carol shows it, she would have shown the private one.
    alice.send_line("now for everyone");
    all_see(&mut [&mut bob, &mut carol], "alice", "now for everyone");
    assert!(
        !carol
            .seen()
            .iter()
            .any(|l| l.text.contains("just between us")),
        "carol saw the private message"
    );
    for peer in [&mut alice, &mut bob, &mut carol] {
        exit_cleanly(peer);
    }
}

/// Matches the action line `[HH:MM:SS] * from text`, with or without the bell.
fn action_from(from: &str, text: &str) -> impl LineMatcher + use<> {
    let wanted = format!("* {from} {text}");
    matching(
        format!("an action line `[HH:MM:SS] {wanted}`"),
        move |line: &str| {
            split_stamp(line).is_some_and(|(_, rest)| rest.trim_end_matches('\u{7}') == wanted)
        },
    )
}

#[test]
fn me_nick_away_and_back_are_shown_on_the_other_peer_as_in_server_mode() {
    let (mut pa, pa_addr) = start_peer("pa", &[]);
    let (mut bob, _) = join_peer("bob", pa_addr);
    pa.expect_stream_line(Stream::Stdout, notice("bob joined"), WAIT);

    pa.send_line("/me waves");
    for peer in [&mut pa, &mut bob] {
        peer.expect_stream_line(Stream::Stdout, action_from("pa", "waves"), WAIT);
    }
    pa.send_line("/nick paula");
    pa.expect_stream_line(Stream::Stdout, notice("you are now known as paula"), WAIT);
    bob.expect_stream_line(Stream::Stdout, notice("pa is now known as paula"), WAIT);
    pa.send_line("/away lunch");
    pa.send_line("/back");
    for peer in [&mut pa, &mut bob] {
        peer.expect_stream_line(Stream::Stdout, notice("paula is away: lunch"), WAIT);
        peer.expect_stream_line(Stream::Stdout, notice("paula is back"), WAIT);
    }
    // The new name is the one the room knows: taken for others, and where /msg goes.
    bob.send_line("/nick PAULA");
    bob.expect_stream_line(Stream::Stdout, "cannot rename: PAULA is taken", WAIT);
    bob.send_line("/msg paula still there?");
    pa.expect_stream_line(Stream::Stdout, "bob -> paula (private): still there?", WAIT);
    assert!(
        !pa.seen()
            .iter()
            .chain(bob.seen())
            .any(|l| l.text.contains("not available")),
        "a command was said to be unavailable"
    );
    for peer in [&mut pa, &mut bob] {
        exit_cleanly(peer);
    }
}

#[test]
fn a_name_already_in_the_room_is_refused_with_exit_code_4() {
    let (mut alice, alice_addr) = start_peer("alice", &[]);
    let (mut bob, bob_addr) = join_peer("bob", alice_addr);
    let (mut other, _) = start_peer("ALICE", &[bob_addr]);
    other.expect_stream_line(
        Stream::Stdout,
        "refused to let us in: the name is already taken in the room; choose another with --name",
        WAIT,
    );
    assert_eq!(other.wait_exit_code(WAIT), EXIT_REFUSED);
    exit_cleanly(&mut bob);
    exit_cleanly(&mut alice);
}

#[test]
fn a_look_alike_of_a_member_name_is_refused_with_exit_code_4() {
    let (mut alice, alice_addr) = start_peer("alice", &[]);
    // `alice` in Cyrillic letters (а, palochka ӏ, і, с, е): one script, the same look.
    let (mut twin, _) = start_peer("\u{430}\u{4CF}\u{456}\u{441}\u{435}", &[alice_addr]);
    twin.expect_stream_line(
        Stream::Stdout,
        "refused to let us in: the name is already taken in the room; choose another with --name",
        WAIT,
    );
    assert_eq!(twin.wait_exit_code(WAIT), EXIT_REFUSED);
    exit_cleanly(&mut alice);
}

#[test]
fn a_peer_bans_an_address_with_its_own_ban_file() {
    let dir = TempDir::new("peer-bans");
    let bans = dir.path().join("bans.txt");
    std::fs::write(&bans, "127.0.0.2  # mallory\n").expect("write the ban file");
    let bans = bans.to_string_lossy().into_owned();
    let (mut alice, alice_addr) = start_peer_on("127.0.0.1", "alice", &[], &["--bans", &bans]);
    let (mut mallory, _) = start_peer_on("127.0.0.2", "mallory", &[alice_addr], &[]);
    mallory.expect_stream_line(
        Stream::Stdout,
        "refused to let us in: it bans our address",
        WAIT,
    );
    assert_eq!(mallory.wait_exit_code(WAIT), EXIT_REFUSED);
    exit_cleanly(&mut alice);
}

#[test]
fn a_peer_nobody_answers_gives_up_with_exit_code_3() {
    // A port nobody answers on: bound and held for the whole test, never read, so that no
    // other test's program can be given it meanwhile (a closed port can be, and then
    // something answers).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free port");
    let free = silent.local_addr().expect("its address");
    let (mut lonely, _) = start_peer("lonely", &[free]);
    lonely.expect_stream_line(Stream::Stdout, "no answer from 127.0.0.1:", WAIT);
    assert_eq!(lonely.wait_exit_code(WAIT), EXIT_NO_ANSWER);
}

/// The lines a peer printed from its first history line up to the end of history, the end
/// line last; lines of `talkers` only (not notices).
fn history_lines(peer: &mut Process, talkers: &[&str]) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = peer.next_line(WAIT);
        let end = line.starts_with("-- end of history");
        let talk = split_stamp(&line)
            .is_some_and(|(_, rest)| talkers.iter().any(|t| rest.starts_with(&format!("{t}: "))));
        if end || talk {
            lines.push(line);
        }
        if end {
            return lines;
        }
    }
}

/// `line FIRST` to `line LAST` as shown (after the time), alice's odd, bob's even.
fn said(first: u32, last: u32) -> Vec<String> {
    (first..=last)
        .map(|i| {
            let from = if i % 2 == 1 { "alice" } else { "bob" };
            format!("{from}: line {i}")
        })
        .collect()
}

/// The texts of `lines` after their times, the end line left out.
fn texts(lines: &[String]) -> Vec<String> {
    let (_, shown) = lines.split_last().expect("an end of history");
    shown
        .iter()
        .map(|line| {
            let (clock, rest) = split_stamp(line).unwrap_or_else(|| panic!("no time: {line:?}"));
            assert_eq!(clock.len(), 8, "{line:?}");
            rest.to_owned()
        })
        .collect()
}

#[test]
fn a_newcomer_is_shown_the_rooms_last_20_lines_and_history_pages_its_contact() {
    let (mut alice, alice_addr) = start_peer("alice", &[]);
    let (mut bob, bob_addr) = join_peer("bob", alice_addr);
    alice.expect_stream_line(Stream::Stdout, notice("bob joined"), WAIT);
    for i in 1..=25 {
        let (speaker, listener, name) = if i % 2 == 1 {
            (&mut alice, &mut bob, "alice")
        } else {
            (&mut bob, &mut alice, "bob")
        };
        let text = format!("line {i}");
        speaker.send_line(&text);
        listener.expect_stream_line(Stream::Stdout, message_from(name, &text), WAIT);
    }
    let (mut carol, _) = start_peer("carol", &[bob_addr]);
    carol.expect_stream_line(
        Stream::Stdout,
        notice_starting("joined the room through bob"),
        WAIT,
    );
    let lines = history_lines(&mut carol, &["alice", "bob"]);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("-- end of history (5 earlier lines: /history 25)")
    );
    assert_eq!(texts(&lines), said(6, 25));
    // Live lines come after it.
    alice.send_line("now live");
    carol.expect_stream_line(Stream::Stdout, message_from("alice", "now live"), WAIT);

    carol.send_line("/history 25");
    let lines = history_lines(&mut carol, &["alice", "bob"]);
    let mut all = said(1, 25);
    all.push("alice: now live".to_owned());
    assert_eq!(texts(&lines), all[1..]);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("-- end of history (1 earlier line: /history 26)")
    );
    exit_cleanly(&mut carol);
}
