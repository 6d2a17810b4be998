//! The server's history end to end, with the real binaries: a newcomer is shown the last
//! lines said, with their times (and their day, when it is not today) and in order, a
//! server restarted with the same `--history-db` file still has them, and one whose file
//! cannot be written warns and chats on; `/history` shows lines again; a client stopped
//! (SIGSTOP) past the server's timeout is shown each line said meanwhile once, then how
//! many it missed. The rules (order, privacy, clamping, what is new) are tested on the
//! sans-IO cores in `tests/sansio/replay.rs` and `tests/sansio/client_history.rs`; here,
//! what a person sees.

use icq::history::{History, Kind};

use crate::process::split_stamp;
use crate::process::{
    Process, ServerOptions, Stream, TempDir, TestServer, WAIT, join_client, send_signal,
};

/// `alice` says `{prefix} 1` to `{prefix} {count}` and waits for the echo of the last one.
fn say_lines(alice: &mut Process, prefix: &str, count: usize) {
    say_lines_as(alice, "alice", prefix, count);
}

/// [`say_lines`] by the client called `name`.
fn say_lines_as(client: &mut Process, name: &str, prefix: &str, count: usize) {
    for i in 1..=count {
        client.send_line(&format!("{prefix} {i}"));
    }
    client.expect_stream_line(
        Stream::Stdout,
        format!("] {name}: {prefix} {count}").as_str(),
        WAIT,
    );
}

/// The lines a client printed from the first history line up to the end of history,
/// the end line last.
fn replay_lines(client: &mut Process) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = client.next_line(WAIT);
        let end = line.starts_with("-- end of history");
        if end || line.contains("] alice: ") {
            lines.push(line);
        }
        if end {
            return lines;
        }
    }
}

#[test]
fn a_newcomer_is_shown_the_last_20_of_30_lines_with_their_times_in_order() {
    let server = TestServer::start_with(ServerOptions::default().args(&["--flood-rate", "0"]));
    let mut alice = join_client(&server.address(), "alice", &[]);
    say_lines(&mut alice, "line", 30);
    let mut bob = join_client(&server.address(), "bob", &[]);
    let lines = replay_lines(&mut bob);
    let (end, shown) = lines.split_last().expect("an end of history");
    assert_eq!(end, "-- end of history (10 earlier lines: /history 10)");
    let texts: Vec<&str> = shown
        .iter()
        .map(|line| {
            let (clock, rest) = split_stamp(line).unwrap_or_else(|| panic!("no time: {line:?}"));
            assert_eq!(clock.len(), 8, "{line:?}");
            rest
        })
        .collect();
    let want: Vec<String> = (11..=30).map(|i| format!("alice: line {i}")).collect();
    assert_eq!(texts, want);
    // Live lines come after it, as usual.
    alice.send_line("now live");
    bob.expect_stream_line(Stream::Stdout, "] alice: now live", WAIT);
}

#[test]
fn a_server_restarted_with_the_same_history_db_replays_what_was_said_before() {
    let dir = TempDir::new("history");
    let db = dir.path().join("history.db");
    let db = db.to_str().expect("a UTF-8 path");
    let mut server = TestServer::start_with(ServerOptions::default().args(&["--history-db", db]));
    let mut alice = join_client(&server.address(), "alice", &[]);
    say_lines(&mut alice, "before", 3);
    server.process.send_line("/exit");
    assert_eq!(server.process.wait_exit_code(WAIT), 0);
    drop(alice);

    let server = TestServer::start_with(ServerOptions::default().args(&["--history-db", db]));
    let mut bob = join_client(&server.address(), "bob", &[]);
    let lines = replay_lines(&mut bob);
    let texts: Vec<&str> = lines
        .iter()
        .filter_map(|line| split_stamp(line).map(|(_, rest)| rest))
        .collect();
    assert_eq!(
        texts,
        ["alice: before 1", "alice: before 2", "alice: before 3"]
    );
    assert_eq!(lines.last().map(String::as_str), Some("-- end of history"));
}

#[test]
fn history_lines_from_another_day_come_after_a_day_line_and_so_do_todays() {
    // A database holding two lines said on Monday 30 November 2026 (12:00 and 12:01 UTC),
    // replayed to a client whose time zone is UTC.
    let dir = TempDir::new("history");
    let db = dir.path().join("history.db");
    let opened = History::open(&db, 100, 1).expect("create the database");
    let mut history = opened.history;
    let monday_noon: u64 = 1_796_040_000_000;
    history.append(monday_noon, "alice", Kind::Chat, "before 1");
    history.append(monday_noon + 60_000, "alice", Kind::Chat, "before 2");
    history.flush().expect("write the database");
    drop(history);

    let db = db.to_str().expect("a UTF-8 path");
    let server = TestServer::start_with(ServerOptions::default().args(&["--history-db", db]));
    let mut bob = start_client_with_env(&server.address(), "bob", &[("TZ", "UTC")]);
    bob.expect_stream_line(Stream::Stdout, "-- connected to ", WAIT);
    bob.expect_stream_line(Stream::Stdout, "-- 1 online: bob", WAIT);
    let want = [
        "-- Monday 30 November 2026",
        "2026-11-30 [12:00:00] alice: before 1",
        "2026-11-30 [12:01:00] alice: before 2",
        "-- end of history",
    ];
    for line in want {
        assert_eq!(bob.next_line(WAIT), line);
    }
    // A line said now is from today: its day comes first.
    let today = || chrono::Utc::now().format("-- %A %-d %B %Y").to_string();
    let before = today();
    bob.send_line("now live");
    let day = bob.next_line(WAIT);
    let after = today();
    assert!(day == before || day == after, "{day:?}");
    let live = bob.next_line(WAIT);
    assert_eq!(
        split_stamp(&live).map(|(_, rest)| rest),
        Some("bob: now live")
    );
}

/// `icq-client --name NAME --server SERVER` with the environment variables `env` set.
fn start_client_with_env(server: &str, name: &str, env: &[(&str, &str)]) -> Process {
    let mut command = std::process::Command::new(crate::process::CLIENT_BIN);
    command
        .args(["--name", name, "--server", server])
        .envs(env.iter().copied());
    Process::spawn("client", command, crate::process::Stdin::Piped)
}

#[test]
fn a_history_db_another_program_keeps_locked_is_let_go_with_a_warning_and_the_chat_goes_on() {
    let dir = TempDir::new("history");
    let db = dir.path().join("history.db");
    let db_arg = db.to_str().expect("a UTF-8 path");
    let mut server =
        TestServer::start_with(ServerOptions::default().args(&["--history-db", db_arg]));
    let mut alice = join_client(&server.address(), "alice", &[]);
    // Another program takes the file's write lock and keeps it: the server's next commit
    // (on its history thread) gives up after its busy timeout.
    let other = rusqlite::Connection::open(&db).expect("open the file beside the server");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock");
    say_lines(&mut alice, "locked", 1);
    server.process.expect_stream_line(
        Stream::Stderr,
        "icq-server: warning: writing the history database",
        WAIT,
    );
    say_lines(&mut alice, "still chatting", 2);
    other.execute_batch("ROLLBACK").expect("let the lock go");
}

#[test]
fn a_history_db_that_is_not_ours_is_refused_and_left_alone() {
    let dir = TempDir::new("history");
    let db = dir.path().join("notes.txt");
    std::fs::write(&db, "my notes, not a database\n").expect("write the file");
    let mut command = std::process::Command::new(crate::process::SERVER_BIN);
    command
        .current_dir(dir.path())
        .args(["--bind", "127.0.0.1:0", "--bans"])
        .arg(dir.path().join("bans.txt"))
        .arg("--history-db")
        .arg(&db);
    let mut server = Process::spawn("server", command, crate::process::Stdin::Null);
    let line = server.expect_stream_line(Stream::Stderr, "icq-server: ", WAIT);
    assert!(line.contains("notes.txt"), "{line:?}");
    assert_ne!(server.wait_exit_code(WAIT), 0);
    let kept = std::fs::read_to_string(&db).expect("read the file");
    assert_eq!(kept, "my notes, not a database\n");
}

/// The texts after the time stamp of `client`'s stdout lines from the cursor on, until
/// (and without) the first line that is `end`.
fn lines_until(client: &mut Process, end: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = client.expect_stream_line(Stream::Stdout, |_: &str| true, WAIT);
        if line == end {
            return lines;
        }
        let (_, rest) = split_stamp(&line).unwrap_or_else(|| panic!("no time: {line:?}"));
        lines.push(rest.to_owned());
    }
}

#[test]
fn history_30_after_30_lines_shows_all_30_again_in_order() {
    let server = TestServer::start_with(ServerOptions::default().args(&["--flood-rate", "0"]));
    let mut alice = join_client(&server.address(), "alice", &[]);
    say_lines(&mut alice, "line", 30);
    alice.send_line("/history 30");
    let shown = lines_until(&mut alice, "-- end of history (no earlier lines)");
    let want: Vec<String> = (1..=30).map(|i| format!("alice: line {i}")).collect();
    assert_eq!(shown, want);
    // The next page has nothing more.
    alice.send_line("/history");
    alice.expect_stream_line(Stream::Stdout, "-- no earlier lines", WAIT);
}

#[test]
fn a_client_stopped_past_the_timeout_is_shown_each_line_said_meanwhile_once_then_the_count() {
    let mut server = TestServer::start_with(ServerOptions::default().args(&[
        "--flood-rate",
        "0",
        "--timeout",
        "1",
    ]));
    let mut alice = join_client(&server.address(), "alice", &["--no-bell"]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    bob.send_line("before");
    alice.expect_stream_line(Stream::Stdout, "] bob: before", WAIT);

    send_signal(&alice, "STOP");
    server
        .process
        .expect_stream_line(Stream::Stdout, "-- alice timed out", WAIT);
    say_lines_as(&mut bob, "bob", "while away", 8);
    send_signal(&alice, "CONT");

    alice.expect_stream_line(Stream::Stdout, "-- you missed 8 lines while away", WAIT);
    bob.send_line("live again");
    alice.expect_stream_line(Stream::Stdout, "] bob: live again", WAIT);
    // Every line of bob's and the count, in the order alice printed them.
    let shown: Vec<String> = alice
        .seen()
        .iter()
        .filter(|line| line.stream == Stream::Stdout)
        .filter_map(|line| split_stamp(&line.text).map(|(_, rest)| rest.to_owned()))
        .filter(|rest| rest.starts_with("bob: ") || rest.starts_with("-- you missed"))
        .collect();
    let mut want = vec!["bob: before".to_owned()];
    want.extend((1..=8).map(|i| format!("bob: while away {i}")));
    want.push("-- you missed 8 lines while away".to_owned());
    want.push("bob: live again".to_owned());
    assert_eq!(shown, want, "each once, in order");
}
