//! End to end with the real binaries: `icq-server` and `icq-client` started as programs on
//! loopback (the server on a free port), driven through their stdin and read from their
//! stdout and stderr, plus raw `UdpSocket`s playing plain-text guests.
//!
//! This file owns what a person or a script sees from outside: the lines each program
//! prints, exit codes, the ban file on disk. It does not own the protocol rules (the
//! sans-IO tests in `core.rs` do, with a fake clock) nor the process plumbing (`process`).
//! Every wait has a deadline (see `process::WAIT`); nothing sleeps "long enough".

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::guests_e2e::Guest;
use crate::process;
use crate::process::{
    BELL, LineMatcher, Process, ServerOptions, Stdin, Stream, TestServer, WAIT, join_client,
    matching, send_signal, split_stamp, start_client,
};

/// How long to watch for something that must *not* happen (a datagram to a refused guest).
/// Only bounds how long the test takes; the check that the datagram did arrive at the server
/// is separate, so a short period cannot make the test pass by accident.
pub(crate) const QUIET_PERIOD: Duration = Duration::from_secs(1);

/// A hand edit of the ban file must take effect within 2 s; a loaded machine gets this long.
const HAND_EDIT_LIMIT: Duration = Duration::from_secs(5);

/// Client exit codes (see `icq-client --help`).
const EXIT_NO_ANSWER: i32 = 3;
const EXIT_REFUSED: i32 = 4;
const EXIT_DISCONNECTED: i32 = 5;

/// A chat line as a client or the server prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    clock: String,
    from: String,
    text: String,
    /// Whether the line ended with the bell byte.
    bell: bool,
}

/// Parses `[HH:MM:SS] from: text`, with an optional bell byte at the very end. Notices
/// (`[HH:MM:SS] -- ...`) are not messages.
fn parse_message(line: &str) -> Option<Message> {
    let (clock, rest) = split_stamp(line)?;
    if rest.starts_with("-- ") {
        return None;
    }
    let (rest, bell) = match rest.strip_suffix(BELL) {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    // Names hold no spaces, so the first ": " ends the name (a guest's name has a colon
    // before its port, but no space).
    let (from, text) = rest.split_once(": ")?;
    Some(Message {
        clock: clock.to_owned(),
        from: from.to_owned(),
        text: text.to_owned(),
        bell,
    })
}

/// Matches the chat line `[HH:MM:SS] from: text` (bell or not).
pub(crate) fn message_from(from: &str, text: &str) -> impl LineMatcher + use<> {
    let (from, text) = (from.to_owned(), text.to_owned());
    matching(
        format!("a chat line `[HH:MM:SS] {from}: {text}`"),
        move |line: &str| parse_message(line).is_some_and(|m| m.from == from && m.text == text),
    )
}

/// Matches the notice line `[HH:MM:SS] -- text` exactly.
pub(crate) fn notice(text: &str) -> impl LineMatcher + use<> {
    let text = format!("-- {text}");
    matching(
        format!("the notice `[HH:MM:SS] {text}`"),
        move |line: &str| split_stamp(line).is_some_and(|(_, rest)| rest == text),
    )
}

/// Matches a notice line `[HH:MM:SS] -- ...` that starts with `prefix`.
pub(crate) fn notice_starting(prefix: &str) -> impl LineMatcher + use<> {
    let prefix = format!("-- {prefix}");
    matching(
        format!("a notice `[HH:MM:SS] {prefix}...`"),
        move |line: &str| split_stamp(line).is_some_and(|(_, rest)| rest.starts_with(&prefix)),
    )
}

/// The address in the server's log line `[..] -- NAME joined from ADDR`, waiting for it.
fn joined_from(server: &mut TestServer, name: &str) -> SocketAddr {
    let line = server
        .process
        .expect_line(notice_starting(&format!("{name} joined from ")), WAIT);
    let addr = line.rsplit(' ').next().unwrap_or_default();
    addr.parse()
        .unwrap_or_else(|_| panic!("no address at the end of {line:?}"))
}

/// One row of the server's `/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListRow {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    /// The rest of the row: `connected 0s  idle 0s`, and `(guest)` for guests.
    pub(crate) rest: String,
}

/// Types `/list` on the server's console and reads the table it prints:
/// `N client(s) online:` then N rows `  NAME  ADDR  connected DUR  idle DUR`, or
/// `no clients online`.
pub(crate) fn server_list(server: &mut TestServer) -> Vec<ListRow> {
    let process = &mut server.process;
    process.send_line("/list");
    let header = process.expect_stream_line(
        Stream::Stdout,
        matching(
            "the /list header (`N client(s) online:` or `no clients online`)",
            |line: &str| line == "no clients online" || line.ends_with(" client(s) online:"),
        ),
        WAIT,
    );
    if header == "no clients online" {
        return Vec::new();
    }
    let count: usize = header
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| process.fail(&format!("no count in {header:?}")));
    (0..count)
        .map(|_| {
            let row = process.next_line(WAIT);
            let mut words = row.split_whitespace();
            let (Some(name), Some(addr)) = (words.next(), words.next()) else {
                process.fail(&format!("malformed /list row {row:?}"));
            };
            let Ok(addr) = addr.parse() else {
                process.fail(&format!("no address in /list row {row:?}"));
            };
            let rest = words.collect::<Vec<_>>().join(" ");
            if !(row.starts_with("  ") && rest.starts_with("connected ") && rest.contains(" idle "))
            {
                process.fail(&format!("malformed /list row {row:?}"));
            }
            ListRow {
                name: name.to_owned(),
                addr,
                rest,
            }
        })
        .collect()
}

pub(crate) fn names(rows: &[ListRow]) -> Vec<&str> {
    rows.iter().map(|r| r.name.as_str()).collect()
}

/// A port on 127.0.0.1 where nothing listens (bound, read, released at once).
fn unused_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a probe socket");
    socket.local_addr().expect("probe address")
}

/// Expects a client to exit with `code` and to have said `why` on stderr (anywhere in its
/// output, whatever earlier waits consumed: stdout and stderr lines interleave freely).
fn expect_client_ended(client: &mut Process, code: i32, why: &str) {
    let got = client.wait_exit_code(WAIT);
    if got != code {
        client.fail(&format!("expected exit code {code}, got {got}"));
    }
    client.wait_output_closed(WAIT);
    let said = client
        .seen()
        .iter()
        .any(|l| l.stream == Stream::Stderr && l.text.contains(why));
    if !said {
        client.fail(&format!("expected {why:?} on stderr"));
    }
}

#[test]
fn three_clients_each_see_all_three_messages_with_time_and_name() {
    let server = TestServer::start();
    let names = ["alice", "bob", "carol"];
    // Each join completes before the next starts, so all three are registered before anyone
    // speaks and every message goes to all three.
    let mut clients: Vec<Process> = names
        .iter()
        .map(|name| join_client(&server.address(), name, &[]))
        .collect();
    for (client, name) in clients.iter_mut().zip(names) {
        client.send_line(&format!("hello from {name}, with: a colon"));
    }

    let mut clocks: Vec<Vec<String>> = Vec::new();
    for client in &mut clients {
        let matchers: Vec<_> = names
            .iter()
            .map(|name| message_from(name, &format!("hello from {name}, with: a colon")))
            .collect();
        let wanted: Vec<&dyn process::LineMatcher> = matchers
            .iter()
            .map(|m| m as &dyn process::LineMatcher)
            .collect();
        let lines = client.expect_lines_unordered(&wanted, WAIT);
        let mut seen_clocks = Vec::new();
        for (line, name) in lines.iter().zip(names) {
            let message = parse_message(line).expect("matched lines are messages");
            // Exactly `[HH:MM:SS] name: text`, and the bell byte only at the very end.
            let bell = if message.bell { "\u{7}" } else { "" };
            assert_eq!(
                *line,
                format!(
                    "[{}] {name}: hello from {name}, with: a colon{bell}",
                    message.clock
                )
            );
            seen_clocks.push(message.clock);
        }
        clocks.push(seen_clocks);
    }
    // The server stamps the time: every client shows the same time for the same message.
    assert_eq!(clocks[0], clocks[1], "alice and bob disagree on the times");
    assert_eq!(
        clocks[0], clocks[2],
        "alice and carol disagree on the times"
    );
    // Output to a pipe is plain lines: no color or cursor escape sequences.
    for client in &mut clients {
        let label = client.label().to_owned();
        let escapes: Vec<String> = client
            .seen()
            .iter()
            .filter(|l| l.text.contains('\u{1b}'))
            .map(|l| l.to_string())
            .collect();
        assert!(escapes.is_empty(), "{label} printed escapes: {escapes:?}");
    }
}

#[test]
fn exit_command_leaves_others_see_it_and_the_server_forgets_the_client() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    assert_eq!(names(&server_list(&mut server)), ["alice", "bob"]);

    bob.send_line("/exit");
    let code = bob.wait_exit_code(WAIT);
    assert_eq!(code, 0, "/exit is a normal end");
    bob.expect_stream_line(Stream::Stdout, notice("left the chat"), WAIT);
    alice.expect_line(notice("bob left"), WAIT);
    server
        .process
        .expect_line(notice_starting("bob left (127.0.0.1:"), WAIT);
    // The leave is in the server's log, so `/list` is asked after the server removed bob.
    let rows = server_list(&mut server);
    assert_eq!(names(&rows), ["alice"], "{rows:?}");
}

#[test]
fn server_list_shows_every_client_with_address_and_times() {
    let mut server = TestServer::start();
    let _alice = join_client(&server.address(), "alice", &[]);
    let alice_addr = joined_from(&mut server, "alice");
    let _bob = join_client(&server.address(), "Bob", &[]);
    let bob_addr = joined_from(&mut server, "Bob");

    let rows = server_list(&mut server);
    assert_eq!(names(&rows), ["alice", "Bob"], "sorted by name, any case");
    assert_eq!(rows[0].addr, alice_addr);
    assert_eq!(rows[1].addr, bob_addr);
    for row in &rows {
        assert!(!row.rest.contains("(guest)"), "{row:?}");
    }
}

#[test]
fn server_console_text_reaches_every_client_as_from_server() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);

    server.process.send_line("the server speaks: welcome");
    for client in [&mut alice, &mut bob] {
        let line = client.expect_line(message_from("server", "the server speaks: welcome"), WAIT);
        let message = parse_message(&line).expect("a message");
        assert!(message.bell, "someone else's message rings: {line:?}");
    }
    server.process.expect_stream_line(
        Stream::Stdout,
        message_from("server", "the server speaks: welcome"),
        WAIT,
    );
}

#[test]
fn ban_command_writes_the_file_keeps_comments_and_disconnects_the_client() {
    let original = "# keep this comment: banned by hand\n203.0.113.7  # a documentation address\n";
    let mut server =
        TestServer::start_with(ServerOptions::default().bans(original).args(&["--guests"]));
    // A witness at another loopback address, which the ban does not cover.
    let mut witness = Guest::bind("127.0.0.2", server.addr);
    witness.send("witness here\n");
    let witness_name = witness.name();
    witness.expect_line(message_from(&witness_name, "witness here"), WAIT);
    let mut alice = join_client(&server.address(), "alice", &[]);

    server.process.send_line("/ban 127.0.0.1");
    // In force first (alice is gone before the file is touched), then saved.
    server
        .process
        .expect_line(notice_starting("alice was disconnected: 127.0.0.1:"), WAIT);
    server
        .process
        .expect_line(notice_starting("banned 127.0.0.1 (added to "), WAIT);
    expect_client_ended(&mut alice, EXIT_DISCONNECTED, "your address was banned");
    witness.expect_line(notice("alice was banned"), WAIT);

    let contents = fs::read_to_string(&server.bans_path).expect("read the ban file");
    let added = contents
        .strip_prefix(original)
        .unwrap_or_else(|| panic!("existing lines must be kept as they were: {contents:?}"));
    let added: Vec<&str> = added.lines().collect();
    assert_eq!(added.len(), 1, "one line added: {contents:?}");
    let (entry, comment) = added[0].split_once('#').expect("a comment on the new line");
    assert_eq!(entry.trim(), "127.0.0.1", "{contents:?}");
    assert!(comment.trim().starts_with("/ban "), "{contents:?}");
    // The atomic rewrite (temp file + rename) leaves nothing behind but the lock file.
    let mut files: Vec<String> = fs::read_dir(server.dir())
        .expect("list the directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, [".bans.txt.lock", "bans.txt"]);

    // The ban stays in force: the same address cannot join again; others are still served.
    let mut again = start_client(&server.address(), "alice2", &[]);
    expect_client_ended(&mut again, EXIT_REFUSED, "the address is banned");
    witness.send("still here\n");
    witness.expect_line(message_from(&witness_name, "still here"), WAIT);
}

#[test]
fn a_banned_address_is_refused_with_exit_code_4_and_a_clear_message() {
    let mut server = TestServer::start_with(
        ServerOptions::default().bans("# loopback is banned\n127.0.0.0/8\n"),
    );
    let mut alice = start_client(&server.address(), "alice", &[]);
    expect_client_ended(
        &mut alice,
        EXIT_REFUSED,
        "refused to let us join: the address is banned",
    );
    server.process.expect_line(
        notice_starting("refused join of 'alice' from 127.0.0.1:"),
        WAIT,
    );
    assert!(
        !alice.seen().iter().any(|l| l.text.contains("connected to")),
        "a banned client never joins"
    );

    // Even with nothing to read (input already at its end), the refusal is what counts:
    // a script learns it was refused, not that it "left".
    let mut bob = start_client(&server.address(), "bob", &[]);
    bob.close_stdin();
    expect_client_ended(
        &mut bob,
        EXIT_REFUSED,
        "refused to let us join: the address is banned",
    );
}

#[test]
fn server_exit_ends_every_client_and_the_server_exits_0() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);

    server.process.send_line("/exit");
    server
        .process
        .expect_line(notice("server closing; told 2 client(s)"), WAIT);
    assert_eq!(server.process.wait_exit_code(WAIT), 0);
    for client in [&mut alice, &mut bob] {
        expect_client_ended(client, EXIT_DISCONNECTED, "the server is closing");
    }
}

#[test]
fn bell_rings_for_others_messages_only_and_never_with_no_bell() {
    let server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    let mut quiet = join_client(&server.address(), "quiet", &["--no-bell"]);

    alice.send_line("ding");
    // Bob speaks only once alice's message is through, so every client gets both in order.
    bob.expect_line(message_from("alice", "ding"), WAIT);
    bob.send_line("dong");

    let alice_own = alice.expect_line(message_from("alice", "ding"), WAIT);
    let alice_other = alice.expect_line(message_from("bob", "dong"), WAIT);
    let bob_own = bob.expect_line(message_from("bob", "dong"), WAIT);
    // Bob's copy of alice's line was consumed above; look it up again.
    let bob_other = bob
        .seen()
        .iter()
        .find(|l| message_from("alice", "ding").is_match(&l.text))
        .expect("seen above")
        .text
        .clone();
    assert!(!alice_own.contains(BELL), "own message: {alice_own:?}");
    assert!(!bob_own.contains(BELL), "own message: {bob_own:?}");
    assert!(
        alice_other.ends_with(BELL),
        "bob's message to alice: {alice_other:?}"
    );
    assert!(
        bob_other.ends_with(BELL),
        "alice's message to bob: {bob_other:?}"
    );
    assert_eq!(alice_other.matches(BELL).count(), 1, "{alice_other:?}");

    quiet.expect_line(message_from("alice", "ding"), WAIT);
    quiet.expect_line(message_from("bob", "dong"), WAIT);
    let rang: Vec<String> = quiet
        .seen()
        .iter()
        .filter(|l| l.text.contains(BELL))
        .map(|l| l.to_string())
        .collect();
    assert!(rang.is_empty(), "--no-bell printed a bell: {rang:?}");
}

#[test]
fn server_given_as_localhost_and_port_resolves_and_works() {
    let server = TestServer::start();
    let by_name = format!("localhost:{}", server.addr.port());
    let mut alice = join_client(&by_name, "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    alice.send_line("hello by name");
    alice.expect_line(message_from("alice", "hello by name"), WAIT);
    bob.expect_line(message_from("alice", "hello by name"), WAIT);
    bob.send_line("hello back");
    alice.expect_line(message_from("bob", "hello back"), WAIT);
}

#[test]
fn a_name_taken_in_any_case_is_refused_with_exit_code_4() {
    let mut server = TestServer::start();
    let _alice = join_client(&server.address(), "alice", &[]);
    let mut impostor = start_client(&server.address(), "ALICE", &[]);
    expect_client_ended(&mut impostor, EXIT_REFUSED, "the name is already taken");
    server
        .process
        .expect_line(notice_starting("refused join of 'ALICE' from "), WAIT);
    assert_eq!(names(&server_list(&mut server)), ["alice"]);
}

#[test]
fn a_look_alike_name_is_refused_while_the_real_one_is_online() {
    let mut server = TestServer::start();
    let _alice = join_client(&server.address(), "alice", &[]);
    // `alice` in Cyrillic letters (а, palochka ӏ, і, с, е): one script, the same look.
    let cyrillic = "\u{430}\u{4CF}\u{456}\u{441}\u{435}";
    let mut twin = start_client(&server.address(), cyrillic, &[]);
    expect_client_ended(&mut twin, EXIT_REFUSED, "the name is already taken");
    // A Cyrillic а before Latin letters: the client refuses it before joining.
    let mut mixed = start_client(&server.address(), "\u{430}lice", &[]);
    assert_eq!(mixed.wait_exit_code(WAIT), 2);
    mixed.expect_stream_line(
        Stream::Stderr,
        "icq-client: invalid name 'аlice': a name cannot mix letters of different scripts \
         (this one mixes Cyrillic and Latin), as look-alike names are made that way",
        WAIT,
    );
    assert_eq!(names(&server_list(&mut server)), ["alice"]);
}

#[test]
fn invalid_names_are_refused_before_anything_is_sent() {
    // No server at all: a name check that went to the network would time out instead.
    let nowhere = unused_port().to_string();
    for (name, why) in [
        ("server", "reserved"),
        ("SERVER", "reserved"),
        ("a b", "spaces"),
        ("", "at least one character"),
        ("guest-127.0.0.1:5000", "reserved"),
    ] {
        let mut client = start_client(&nowhere, name, &[]);
        let code = client.wait_exit_code(WAIT);
        assert_ne!(code, 0, "name {name:?} accepted");
        assert_ne!(
            code, EXIT_NO_ANSWER,
            "name {name:?} was sent to the network"
        );
        client.expect_stream_line(
            Stream::Stderr,
            matching(format!("`invalid name ...{why}...`"), |line: &str| {
                line.contains("invalid name") && line.contains(why)
            }),
            WAIT,
        );
    }
}

#[test]
fn a_client_with_no_server_gives_up_with_exit_code_3() {
    let nowhere = unused_port().to_string();
    let started = Instant::now();
    let mut waiting = start_client(&nowhere, "alice", &[]);
    // A second client whose input ends, with a line typed, while the join is unanswered: it
    // must not report success (exit 0) for a line it never delivered.
    let mut piped = start_client(&nowhere, "bot", &[]);
    piped.send_line("into the void");
    piped.close_stdin();

    for client in [&mut waiting, &mut piped] {
        let code = client.wait_exit_code(icq::proto::join::JOIN_TIMEOUT + WAIT);
        let took = started.elapsed();
        assert_eq!(code, EXIT_NO_ANSWER, "{}", client.transcript());
        // It kept trying for the whole join timeout (not giving up on the first ICMP error)
        // and no longer (with slack for a slow start on a loaded machine).
        assert!(
            took >= icq::proto::join::JOIN_TIMEOUT,
            "gave up after {took:?}, before the join timeout"
        );
        assert!(
            took < icq::proto::join::JOIN_TIMEOUT + Duration::from_secs(5),
            "took {took:?} to give up"
        );
        expect_client_ended(client, EXIT_NO_ANSWER, "is the server running");
    }
    piped.expect_line(
        notice("not delivered (the session ended before the server answered): into the void"),
        WAIT,
    );
}

#[test]
fn a_hand_edit_of_the_ban_file_takes_effect_while_the_server_runs() {
    let mut server = TestServer::start_with(ServerOptions::default().bans("# edited by hand\n"));
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);

    let edited_at = Instant::now();
    let mut file = OpenOptions::new()
        .append(true)
        .open(&server.bans_path)
        .expect("open the ban file");
    file.write_all(b"127.0.0.1\n")
        .expect("append to the ban file");
    drop(file);

    // Bounded by the limit itself: a ban that comes later fails here.
    let code = alice.wait_exit_code(HAND_EDIT_LIMIT);
    let took = edited_at.elapsed();
    assert!(took < HAND_EDIT_LIMIT, "the ban took {took:?}");
    assert_eq!(code, EXIT_DISCONNECTED, "{}", alice.transcript());
    expect_client_ended(&mut alice, EXIT_DISCONNECTED, "your address was banned");
    expect_client_ended(&mut bob, EXIT_DISCONNECTED, "your address was banned");
    server
        .process
        .expect_line("changed on disk: 1 entry now in force", WAIT);
    server
        .process
        .expect_line(notice_starting("alice was disconnected: 127.0.0.1:"), WAIT);
}

#[test]
fn a_server_whose_console_is_dev_null_keeps_serving() {
    let mut server = TestServer::start_with(ServerOptions::default().stdin(Stdin::Null));
    server
        .process
        .expect_line(notice_starting("console input closed; still serving"), WAIT);
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    alice.send_line("still there?");
    bob.expect_line(message_from("alice", "still there?"), WAIT);
    bob.send_line("yes");
    alice.expect_line(message_from("bob", "yes"), WAIT);
    assert!(
        server.process.try_exit_status().is_none(),
        "the server exited"
    );
}

#[test]
fn end_of_input_on_a_client_leaves_cleanly() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);

    bob.close_stdin();
    assert_eq!(bob.wait_exit_code(WAIT), 0, "end of input is a normal end");
    alice.expect_line(notice("bob left"), WAIT);
    server
        .process
        .expect_line(notice_starting("bob left (127.0.0.1:"), WAIT);
    assert_eq!(names(&server_list(&mut server)), ["alice"]);
}

#[test]
fn the_server_logs_one_timestamped_line_per_join_message_and_leave() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let alice_addr = joined_from(&mut server, "alice");
    alice.send_line("hello");
    alice.expect_line(message_from("alice", "hello"), WAIT);
    alice.send_line("/exit");
    assert_eq!(alice.wait_exit_code(WAIT), 0);
    server
        .process
        .expect_line(notice(&format!("alice left ({alice_addr})")), WAIT);
    // The list is printed after everything above: the log is complete up to here.
    assert!(server_list(&mut server).is_empty());

    let log: Vec<String> = server
        .process
        .seen()
        .iter()
        .filter(|l| l.stream == Stream::Stdout)
        .map(|l| l.text.clone())
        .collect();
    let count = |wanted: &dyn LineMatcher| log.iter().filter(|l| wanted.is_match(l)).count();
    assert_eq!(
        count(&notice(&format!("alice joined from {alice_addr}"))),
        1,
        "{log:#?}"
    );
    assert_eq!(count(&message_from("alice", "hello")), 1, "{log:#?}");
    assert_eq!(
        count(&notice(&format!("alice left ({alice_addr})"))),
        1,
        "{log:#?}"
    );
    // The exact shape of the chat line: `[HH:MM:SS] alice: hello`.
    let chat = log
        .iter()
        .find(|l| message_from("alice", "hello").is_match(l))
        .expect("counted above");
    let (_, rest) = split_stamp(chat).expect("a time stamp");
    assert_eq!(rest, "alice: hello");
    // Every log line but the /list table is timestamped.
    for line in &log {
        let table = line == "no clients online";
        assert!(
            table || split_stamp(line).is_some(),
            "untimestamped log line {line:?}"
        );
    }
}

// Console commands, signals, timeouts, IPv6, flood limits and piped input, checked the
// same way.

#[test]
fn a_client_killed_with_sigkill_rejoins_under_its_name_within_8_seconds() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    alice.expect_line(notice("bob joined"), WAIT);
    send_signal(&alice, "KILL");
    alice.wait_exit(WAIT);
    let killed = Instant::now();
    // A person starts the program again a moment later: the server refuses a name whose
    // session was heard from within the last second (it is live), so wait until the dead
    // session has been silent that long, as the server's /list shows it.
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = server_list(&mut server);
        let idle = rows
            .iter()
            .find(|row| row.name == "alice")
            .and_then(|row| row.rest.split("idle").nth(1))
            .and_then(|idle| idle.trim().strip_suffix('s'))
            .and_then(|secs| secs.parse::<u64>().ok());
        if idle.is_some_and(|secs| secs >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "alice never went idle: {rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The same name, from a new program (and port), as after a crash.
    let mut again = start_client(&server.address(), "alice", &[]);
    again.expect_stream_line(Stream::Stdout, "-- connected to ", Duration::from_secs(8));
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(8), "rejoined after {took:?}");
    again.expect_line(notice("2 online: alice, bob"), WAIT);
    bob.expect_line(notice("alice timed out"), WAIT);
    bob.expect_line(notice("alice joined"), WAIT);
    again.send_line("back again");
    bob.expect_line(message_from("alice", "back again"), WAIT);
    // A live holder keeps its name: bob's is refused at once.
    let mut impostor = start_client(&server.address(), "BOB", &[]);
    expect_client_ended(&mut impostor, EXIT_REFUSED, "the name is already taken");
    assert_eq!(names(&server_list(&mut server)), ["alice", "bob"]);
}

#[test]
fn server_kick_disconnects_one_client_by_name_in_any_case() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);

    server.process.send_line("/kick nobody");
    server
        .process
        .expect_line("no client named 'nobody' is online", WAIT);
    server.process.send_line("/kick BOB");
    expect_client_ended(&mut bob, EXIT_DISCONNECTED, "you were kicked");
    alice.expect_line(notice("bob was kicked"), WAIT);
    server
        .process
        .expect_line(notice_starting("bob was kicked (127.0.0.1:"), WAIT);
    assert_eq!(names(&server_list(&mut server)), ["alice"]);
}

#[test]
fn unknown_commands_get_one_clear_line_and_send_nothing() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);

    alice.send_line("/frobnicate now");
    alice.expect_stream_line(Stream::Stdout, "unknown command /frobnicate", WAIT);
    server.process.send_line("/frobnicate");
    server
        .process
        .expect_stream_line(Stream::Stdout, "unknown command /frobnicate", WAIT);
    // Markers sent after the bad commands arrive with nothing from them before.
    alice.send_line("marker from alice");
    server.process.send_line("marker from the console");
    bob.expect_lines_unordered(
        &[
            &message_from("alice", "marker from alice"),
            &message_from("server", "marker from the console"),
        ],
        WAIT,
    );
    assert!(
        !bob.seen().iter().any(|l| l.text.contains("frobnicate")),
        "an unknown command was sent on"
    );
    assert!(
        server.process.try_exit_status().is_none(),
        "the server exited"
    );
}

#[test]
fn sigterm_on_the_server_closes_it_like_exit() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    send_signal(&server.process, "TERM");
    assert_eq!(server.process.wait_exit_code(WAIT), 0);
    server
        .process
        .expect_line(notice("server closing; told 1 client(s)"), WAIT);
    expect_client_ended(&mut alice, EXIT_DISCONNECTED, "the server is closing");
}

#[test]
fn sigint_on_a_client_leaves_like_exit() {
    let server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    send_signal(&bob, "INT");
    assert_eq!(bob.wait_exit_code(WAIT), 0, "Ctrl-C is a normal end");
    alice.expect_line(notice("bob left"), WAIT);
}

#[test]
fn client_list_command_shows_who_is_online() {
    let server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let _bob = join_client(&server.address(), "bob", &[]);
    alice.send_line("/list");
    alice.expect_line(notice("2 online: alice, bob"), WAIT);
}

#[test]
fn server_and_clients_work_over_ipv6_loopback() {
    let mut server = TestServer::start_with(ServerOptions::default().bind("[::1]:0"));
    assert_eq!(server.addr.ip(), std::net::Ipv6Addr::LOCALHOST);
    assert!(server.address().starts_with("[::1]:"));
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    server
        .process
        .expect_line(notice_starting("bob joined from [::1]:"), WAIT);
    alice.send_line("over six");
    bob.expect_line(message_from("alice", "over six"), WAIT);
    alice.expect_line(message_from("alice", "over six"), WAIT);
}

#[test]
fn lines_piped_in_before_the_join_completes_are_sent_before_leaving() {
    // `printf 'one\ntwo\n' | icq-client`: input ends before the server has answered the
    // join, and the lines must still go out.
    let server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bot = start_client(&server.address(), "bot", &[]);
    bot.send_line("piped one");
    bot.send_line("piped two");
    bot.close_stdin();
    assert_eq!(bot.wait_exit_code(WAIT), 0, "{}", bot.transcript());
    alice.expect_line(message_from("bot", "piped one"), WAIT);
    alice.expect_line(message_from("bot", "piped two"), WAIT);
    alice.expect_line(notice("bot left"), WAIT);
    bot.wait_output_closed(WAIT);
    let unsent: Vec<String> = bot
        .seen()
        .iter()
        .filter(|l| l.text.contains("not sent"))
        .map(|l| l.to_string())
        .collect();
    assert!(unsent.is_empty(), "{unsent:?}");
}

#[test]
fn a_ban_that_cannot_be_saved_is_in_force_all_the_same_and_saved_later() {
    // The ban file's directory does not exist: nothing can be written there, even by root.
    let mut server = TestServer::start_with(ServerOptions::default().bans_file("gone/bans.txt"));
    let mut alice = join_client(&server.address(), "alice", &[]);

    server.process.send_line("/ban alice");
    let line = server
        .process
        .expect_line(notice_starting("banned 127.0.0.1 (NOT saved to "), WAIT);
    assert!(
        line.contains("gone/bans.txt: no such file or directory"),
        "the line names the file and the reason: {line}"
    );
    expect_client_ended(&mut alice, EXIT_DISCONNECTED, "your address was banned");
    let mut refused = start_client(&server.address(), "alice", &[]);
    expect_client_ended(&mut refused, EXIT_REFUSED, "the address is banned");

    // Once the file can be written, the next change writes the earlier one too.
    fs::create_dir(server.dir().join("gone")).expect("create the directory");
    server.process.send_line("/ban 203.0.113.7");
    server
        .process
        .expect_line(notice_starting("the ban of 127.0.0.1 is saved to "), WAIT);
    server
        .process
        .expect_line(notice_starting("banned 203.0.113.7 (added to "), WAIT);
    let contents = fs::read_to_string(&server.bans_path).expect("read the ban file");
    let (list, _) = icq::bans::list::BanList::parse(&contents);
    let listed: Vec<String> = list.entries().iter().map(|e| e.net.to_string()).collect();
    assert_eq!(listed, ["127.0.0.1", "203.0.113.7"], "{contents}");
}

#[test]
fn unban_lifts_a_ban_and_keeps_the_other_lines() {
    let original = "# keep me\n203.0.113.7\n";
    let mut server = TestServer::start_with(ServerOptions::default().bans(original));
    server.process.send_line("/ban 127.0.0.1");
    server
        .process
        .expect_line(notice_starting("banned 127.0.0.1 (added to "), WAIT);
    let mut refused = start_client(&server.address(), "alice", &[]);
    expect_client_ended(&mut refused, EXIT_REFUSED, "the address is banned");

    server.process.send_line("/unban 127.0.0.1");
    server
        .process
        .expect_line(notice_starting("unbanned 127.0.0.1 (removed from "), WAIT);
    let contents = fs::read_to_string(&server.bans_path).expect("read the ban file");
    assert_eq!(contents, original, "only the /ban line is removed");
    let mut alice = join_client(&server.address(), "alice", &[]);
    alice.send_line("back again");
    alice.expect_line(message_from("alice", "back again"), WAIT);
}

#[test]
fn a_long_line_arrives_as_several_messages_that_add_up_to_it() {
    let server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    // Multi-byte characters, so a split in the middle of one would show as `�`.
    let long: String = "é日🎉x".repeat(400);
    alice.send_line(&long);
    alice.send_line("end of long");
    bob.expect_line(message_from("alice", "end of long"), WAIT);
    let pieces: Vec<String> = bob
        .seen()
        .iter()
        .filter_map(|l| parse_message(&l.text))
        .filter(|m| m.from == "alice" && m.text != "end of long")
        .map(|m| m.text)
        .collect();
    assert!(pieces.len() >= 2, "{} bytes in one datagram?", long.len());
    assert_eq!(pieces.concat(), long);
}

#[test]
fn escape_sequences_from_the_network_are_shown_not_executed() {
    let mut server = TestServer::start_with(ServerOptions::default().args(&["--guests"]));
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    alice.send_line("clear \u{1b}[2J and title \u{1b}]0;pwned\u{7}");
    let shown = "clear ^[[2J and title ^[]0;pwned^G";
    bob.expect_line(message_from("alice", shown), WAIT);
    server
        .process
        .expect_line(message_from("alice", shown), WAIT);
    // A guest's raw bytes too.
    let guest = Guest::bind("127.0.0.1", server.addr);
    guest.send("\u{1b}[31mred\n");
    alice.expect_line(message_from(&guest.name(), "^[[31mred"), WAIT);
    for process in [&mut alice, &mut bob, &mut server.process] {
        let label = process.label().to_owned();
        assert!(
            !process.seen().iter().any(|l| l.text.contains('\u{1b}')),
            "{label} printed a raw escape"
        );
    }
}

#[test]
fn a_private_message_is_seen_by_its_recipient_and_sender_but_not_a_third_client() {
    let server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    let mut carol = join_client(&server.address(), "carol", &[]);
    alice.send_line("/msg bob meet me at 5");
    for client in [&mut alice, &mut bob] {
        client.expect_line("alice -> bob (private): meet me at 5", WAIT);
    }
    // Carol hears what everyone hears afterwards, and never the private line.
    alice.send_line("public again");
    carol.expect_line(message_from("alice", "public again"), WAIT);
    assert!(
        !carol.seen().iter().any(|l| l.text.contains("meet me")),
        "carol saw the private message"
    );
    // An unknown name is reported to the sender.
    alice.send_line("/msg zed hello?");
    alice.expect_line("no one called zed is online", WAIT);
}

#[test]
fn a_nick_change_is_announced_and_the_new_name_is_used() {
    let server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    alice.send_line("/nick alicia");
    alice.expect_line("you are now known as alicia", WAIT);
    bob.expect_line("alice is now known as alicia", WAIT);
    alice.send_line("hello again");
    bob.expect_line(message_from("alicia", "hello again"), WAIT);
    // Taken names are refused with a reason.
    bob.send_line("/nick ALICIA");
    bob.expect_line("cannot rename: ALICIA is taken", WAIT);
}

#[test]
fn away_shows_in_list_on_both_sides_until_back() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    alice.send_line("/away lunch");
    bob.expect_line("alice is away: lunch", WAIT);
    bob.send_line("/list");
    bob.expect_line("2 online: alice (away: lunch), bob", WAIT);
    server.process.send_line("/list");
    server.process.expect_line("away: lunch", WAIT);
    alice.send_line("/back");
    bob.expect_line("alice is back", WAIT);
    bob.send_line("/list");
    bob.expect_line("2 online: alice, bob", WAIT);
}

#[test]
fn a_newcomer_is_told_who_is_online_before_anything_else() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    let _carol = join_client(&server.address(), "carol", &[]);
    bob.send_line("/away lunch");
    alice.expect_line("bob is away: lunch", WAIT);
    // Someone talks while dave joins: whatever arrives, the list comes first.
    alice.send_line("hello all");
    let mut dave = start_client(&server.address(), "dave", &[]);
    dave.expect_stream_line(Stream::Stdout, "-- connected to ", WAIT);
    let next = dave.next_line(WAIT);
    assert_eq!(
        split_stamp(&next).map(|(_, rest)| rest),
        Some("-- 4 online: alice, bob (away: lunch), carol, dave"),
        "{next:?}"
    );
    alice.expect_line(notice("dave joined"), WAIT);
    server
        .process
        .expect_line(notice_starting("dave joined from "), WAIT);
}

#[test]
fn the_bind_address_can_be_a_bare_port_or_a_host_name() {
    for (bind, listening_ip) in [("0", "0.0.0.0"), ("localhost:0", "127.0.0.1")] {
        let server = TestServer::start_with(ServerOptions::default().bind(bind));
        assert_eq!(server.addr.ip().to_string(), listening_ip, "--bind {bind}");
        let mut alice = join_client(&format!("127.0.0.1:{}", server.addr.port()), "alice", &[]);
        alice.send_line("hi");
        alice.expect_line(message_from("alice", "hi"), WAIT);
    }
}

#[test]
fn the_name_defaults_to_the_login_name() {
    let server = TestServer::start();
    let mut command = std::process::Command::new(process::CLIENT_BIN);
    command
        .env("USER", "zed")
        .arg("--server")
        .arg(server.address());
    let mut client = Process::spawn("client from $USER", command, Stdin::Piped);
    client.expect_line("connected to", WAIT);
    client.send_line("/list");
    client.expect_line("1 online: zed", WAIT);
}
