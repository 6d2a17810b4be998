//! The client on a real terminal: the real `icq-client` binary runs in a pseudo-terminal
//! (driven with `rexpect`) against a real `icq-server` on loopback, next to a second client
//! whose stdin and stdout are pipes.
//!
//! These tests own what only a terminal shows: a line arriving while a line is half typed
//! is printed above it and leaves it intact, colors appear on the terminal and never in
//! the pipe, Tab completes names, mentions ring the bell under `--bell mention`, Ctrl-D
//! leaves, Ctrl-C clears a line or leaves from an empty one, and nothing typed ahead or
//! pasted (in one `write`, with or without bracketed paste) is lost. The look of each line is unit tested in `render`; the protocol in `core.rs`.
//!
//! Every wait has a deadline (rexpect's per-expectation timeout, `recv_timeout` for pipes);
//! every child is killed when its handle is dropped, so a failing test leaves nothing
//! running. Only 127.0.0.1 is used.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};

use icq::render::name_color;

/// How long any one expected output may take to show up. Generous: a loaded CI machine may
/// be slow, and a passing test never waits this long.
const DEADLINE: Duration = Duration::from_secs(10);

const ESC: char = '\u{1b}';
const BELL: char = '\u{07}';

/// A command with a clean environment: no `NO_COLOR`, `ICQ_*` or `USER` from the machine
/// running the tests, and a terminal type the line editor supports.
fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    command.env_clear().env("TERM", "xterm-256color");
    command
}

/// Lines a child prints, collected by a thread so reads can have a deadline.
fn line_reader(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    received
}

/// Waits for a line that satisfies `wanted`, keeping every line seen in `seen`.
fn wait_for_line(
    lines: &Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if wanted(&line) {
                    return line;
                }
            }
            Err(_) => panic!("no line {what} within {DEADLINE:?}; lines seen: {seen:#?}"),
        }
    }
}

/// A running `icq-server` on 127.0.0.1 with a ban file of its own; killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// Kept so the reader thread keeps draining the server's stdout: a closed pipe would
    /// make the server's next log line fail.
    _lines: Receiver<String>,
}

impl Server {
    fn start(test: &str) -> Server {
        Server::start_with(test, &[])
    }

    /// A server with more options, e.g. `--flood-rate 0` so a paste is not cut by the
    /// flood limit (pacing is not what these tests are about).
    fn start_with(test: &str, extra: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!("icq-terminal-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating a temporary directory");
        let mut child = command(env!("CARGO_BIN_EXE_icq-server"))
            .args(["--bind", "127.0.0.1:0", "--bans"])
            .arg(dir.join("bans.txt"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting icq-server");
        let lines = line_reader(child.stdout.take().expect("server stdout"));
        // `[HH:MM:SS] -- listening on 127.0.0.1:PORT (...)`
        let first = wait_for_line(&lines, &mut Vec::new(), "from the server", |_| true);
        let port = first
            .split_once("listening on 127.0.0.1:")
            .and_then(|(_, rest)| rest.split_once(' '))
            .and_then(|(port, _)| port.parse().ok());
        let server = Server {
            child,
            port: port.unwrap_or(0),
            dir,
            _lines: lines,
        };
        assert_ne!(
            server.port, 0,
            "no port in the server's first line: {first:?}"
        );
        server
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client whose stdin and stdout are pipes, as a script would run it; killed on drop.
struct PipedClient {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Every line it printed so far.
    seen: Vec<String>,
}

impl PipedClient {
    fn start(server: &Server, name: &str) -> PipedClient {
        PipedClient::start_at(&server.address(), name)
    }

    fn start_at(server: &str, name: &str) -> PipedClient {
        let mut child = command(env!("CARGO_BIN_EXE_icq-client"))
            .args(["--name", name, "--server", server, "--bell", "off"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting icq-client");
        let stdin = child.stdin.take().expect("client stdin");
        let lines = line_reader(child.stdout.take().expect("client stdout"));
        let mut client = PipedClient {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        };
        client.wait_for("saying it joined", |line| line.contains("connected to"));
        client
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("writing to the piped client");
        self.stdin
            .flush()
            .expect("flushing the piped client's input");
    }

    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        wait_for_line(&self.lines, &mut self.seen, what, wanted)
    }
}

impl Drop for PipedClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `icq-client` in a pseudo-terminal (stdin and stdout both the terminal); rexpect kills it
/// when the session is dropped. `extra` are more options; `env` more variables.
fn terminal_client(
    server: &Server,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> PtySession {
    let mut command = command(env!("CARGO_BIN_EXE_icq-client"));
    command
        .args(["--name", name, "--server", &server.address()])
        .args(extra)
        .envs(env.iter().copied());
    let millis = u64::try_from(DEADLINE.as_millis()).expect("a deadline in range");
    let mut session = spawn_command(command, Some(millis)).expect("starting icq-client in a pty");
    expect(&mut session, "connected to");
    session
}

/// Waits for `needle` in the terminal's output and returns everything printed before it
/// (since the previous expectation).
fn expect(session: &mut PtySession, needle: &str) -> String {
    match session.exp_string(needle) {
        Ok(before) => before,
        Err(error) => panic!("the terminal never showed {needle:?}: {error}"),
    }
}

/// Waits for the terminal client to say it left, the piped one to see it, and the
/// terminal client to exit with status 0.
fn leaves_cleanly(session: &mut PtySession, other: &mut PipedClient) {
    expect(session, "left the chat");
    other.wait_for("saying alice left", |line| line.ends_with("alice left"));
    let status = session.process().wait().expect("waiting for the client");
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "the client ended with {status:?}"
    );
}

/// The SGR sequence that starts a name in its color.
fn colored(name: &str) -> String {
    format!("{ESC}[{}m{name}{ESC}[0m", name_color(name))
}

#[test]
fn a_line_arriving_while_typing_leaves_the_typed_line_intact() {
    let server = Server::start("typing");
    let mut alice = terminal_client(&server, "alice", &[], &[]);
    let mut bob = PipedClient::start(&server, "bob");
    expect(&mut alice, "bob joined");

    // Half a line, no Enter; the editor echoes it.
    alice.send("hello wor").expect("typing");
    alice.flush().expect("typing");
    expect(&mut alice, "hello wor");

    bob.say("ping from bob");
    let before = expect(&mut alice, "ping from bob");
    assert!(
        before.contains(&colored("bob")),
        "bob's name is not in his color on the terminal: {before:?}"
    );
    // Printed above the half-typed line, which is drawn again after it, cursor at its end.
    expect(&mut alice, "> hello wor");

    // Finishing the line sends exactly what was typed, across the interruption.
    alice.send("ld\r").expect("typing");
    alice.flush().expect("typing");
    let delivered = bob.wait_for("with alice's line", |line| line.contains("alice:"));
    assert_eq!(
        delivered.split_once("] ").map(|(_, rest)| rest),
        Some("alice: hello world"),
        "{delivered:?}"
    );
    // The terminal shows alice's own message back, bold.
    let own = expect(&mut alice, "hello world");
    let own = own + &expect(&mut alice, "\n");
    assert!(
        own.contains(&format!("{ESC}[1;")),
        "own message not bold: {own:?}"
    );

    // No color, ever, in the pipe.
    for line in &bob.seen {
        assert!(!line.contains(ESC), "color code in piped output: {line:?}");
    }

    // Ctrl-D on an empty line leaves cleanly, like /exit.
    alice.send_control('d').expect("Ctrl-D");
    leaves_cleanly(&mut alice, &mut bob);
}

#[test]
fn tab_completes_names_and_only_mentions_ring_with_bell_mention() {
    let server = Server::start("mention");
    let mut alice = terminal_client(&server, "alice", &["--bell", "mention"], &[]);
    let mut bob = PipedClient::start(&server, "bob");
    expect(&mut alice, "bob joined");

    bob.say("nothing for you");
    let plain = expect(&mut alice, "nothing for you");
    bob.say("hey ALICE, look");
    let rest = expect(&mut alice, "look");
    let mention = rest + &expect(&mut alice, "\n");
    assert!(
        !plain.contains(BELL) && !mention.starts_with(BELL),
        "a message without a mention rang: {plain:?} {mention:?}"
    );
    assert!(
        mention.contains(BELL),
        "the mention did not ring: {mention:?}"
    );
    assert!(
        mention.contains(&format!("{ESC}[7mALICE{ESC}[27m")),
        "the mention is not highlighted: {mention:?}"
    );

    // `bo` + Tab at the start of the line becomes `bob: `.
    alice.send("bo\t").expect("typing");
    alice.flush().expect("typing");
    expect(&mut alice, "bob: ");
    alice.send("hi\r").expect("typing");
    alice.flush().expect("typing");
    let delivered = bob.wait_for("with alice's line", |line| line.contains("alice:"));
    assert_eq!(
        delivered.split_once("] ").map(|(_, rest)| rest),
        Some("alice: bob: hi"),
        "{delivered:?}"
    );
}

#[test]
fn no_color_turns_colors_off_on_a_terminal_too() {
    let server = Server::start("nocolor");
    let mut alice = terminal_client(&server, "alice", &["--bell", "off"], &[("NO_COLOR", "1")]);
    let mut bob = PipedClient::start(&server, "bob");
    expect(&mut alice, "bob joined");
    bob.say("plain please");
    let before = expect(&mut alice, "plain please");
    assert!(
        before.contains("bob: ") && !before.contains(&format!("{}m", name_color("bob"))),
        "colored despite NO_COLOR: {before:?}"
    );
}

/// Writes `bytes` to the terminal in one `write` system call, as a fast typist's
/// type-ahead, `tmux send-keys` or a terminal's paste reaches the program: all at once.
fn write_once(session: &PtySession, bytes: &[u8]) {
    let mut terminal = session
        .process()
        .get_file_handle()
        .expect("the terminal's file handle");
    let written = terminal.write(bytes).expect("writing to the terminal");
    assert_eq!(
        written,
        bytes.len(),
        "the terminal took only part of one write"
    );
}

/// The chat text of the lines `alice` sent, as the piped client printed them, in order:
/// waits until `count` have arrived.
fn lines_from(client: &mut PipedClient, sender: &str, count: usize) -> Vec<String> {
    let prefix = format!("{sender}: ");
    let mut got = Vec::new();
    while got.len() < count {
        let line = client.wait_for(&format!("number {} from {sender}", got.len() + 1), |line| {
            line.contains(&prefix)
        });
        let text = line.split_once(&prefix).map(|(_, text)| text.to_owned());
        got.push(text.unwrap_or(line));
    }
    got
}

#[test]
fn three_lines_typed_ahead_in_one_write_all_arrive_in_order() {
    let server = Server::start("typeahead");
    let mut alice = terminal_client(&server, "alice", &["--bell", "off"], &[]);
    let mut bob = PipedClient::start(&server, "bob");
    expect(&mut alice, "bob joined");

    write_once(&alice, b"one\rtwo\rthree\r");
    assert_eq!(lines_from(&mut bob, "alice", 3), ["one", "two", "three"]);
    // And the editor goes on reading after them.
    write_once(&alice, b"four\r");
    assert_eq!(lines_from(&mut bob, "alice", 1), ["four"]);

    // From a pipe too: three lines in one write, all sent, in order.
    bob.stdin
        .write_all(b"uno\ndos\ntres\n")
        .expect("writing to the piped client");
    bob.stdin
        .flush()
        .expect("flushing the piped client's input");
    for word in ["uno", "dos", "tres"] {
        expect(&mut alice, &format!("{}: {word}", colored("bob")));
    }
}

#[test]
fn a_fifty_line_paste_without_bracketed_paste_arrives_whole_and_in_order() {
    let server = Server::start_with("paste", &["--flood-rate", "0"]);
    let mut alice = terminal_client(&server, "alice", &["--bell", "off"], &[]);
    let mut bob = PipedClient::start(&server, "bob");
    expect(&mut alice, "bob joined");

    // A terminal without bracketed paste sends a paste as typed keys: each line ends with
    // a carriage return. Long enough to overflow one read of the editor's buffer.
    let lines: Vec<String> = (1..=50)
        .map(|n| format!("pasted line {n:02} of fifty, with some words to make it long"))
        .collect();
    let paste: String = lines.iter().map(|line| format!("{line}\r")).collect();
    assert!(paste.len() > 2048, "{} bytes", paste.len());
    write_once(&alice, paste.as_bytes());
    assert_eq!(lines_from(&mut bob, "alice", 50), lines);
}

#[test]
fn a_bracketed_paste_of_several_lines_sends_each_line_in_order() {
    let server = Server::start_with("bracketed", &["--flood-rate", "0"]);
    let mut alice = terminal_client(&server, "alice", &["--bell", "off"], &[]);
    let mut bob = PipedClient::start(&server, "bob");
    expect(&mut alice, "bob joined");

    // The terminal wraps a paste in ESC [200~ ... ESC [201~ (the editor asked for it); the
    // lines land in the line being edited, and Enter sends them, one message per line.
    let lines: Vec<String> = (1..=20).map(|n| format!("bracketed {n}")).collect();
    let mut paste = String::from("\u{1b}[200~");
    for line in &lines {
        paste.push_str(line);
        paste.push('\r');
    }
    paste.push_str("\u{1b}[201~");
    write_once(&alice, paste.as_bytes());
    expect(&mut alice, "bracketed 20");
    write_once(&alice, b"\r");
    assert_eq!(lines_from(&mut bob, "alice", 20), lines);
    // A paste and typing in one write: the paste first, then what follows it.
    write_once(&alice, b"\x1b[200~first\nsecond\x1b[201~ and more\rlast\r");
    assert_eq!(
        lines_from(&mut bob, "alice", 3),
        ["first", "second and more", "last"]
    );
}

#[test]
fn ctrl_c_clears_a_half_typed_line_and_leaves_from_an_empty_one() {
    let server = Server::start("ctrlc");
    let mut alice = terminal_client(&server, "alice", &["--bell", "off"], &[]);
    let mut bob = PipedClient::start(&server, "bob");
    expect(&mut alice, "bob joined");

    alice.send("half typed").expect("typing");
    alice.flush().expect("typing");
    expect(&mut alice, "half typed");
    alice.send_control('c').expect("Ctrl-C");
    // The client stays: the next line is sent alone, without what was cleared.
    alice.send("after\r").expect("typing");
    alice.flush().expect("typing");
    assert_eq!(lines_from(&mut bob, "alice", 1), ["after"]);
    // Ctrl-Y brings the cleared text back (it went to the kill ring).
    alice.send("\u{19} again\r").expect("typing");
    alice.flush().expect("typing");
    assert_eq!(lines_from(&mut bob, "alice", 1), ["half typed again"]);
    // A Ctrl-C typed ahead right behind a line is a key too, not a signal.
    write_once(&alice, b"more\rcleared\x03kept\r");
    assert_eq!(lines_from(&mut bob, "alice", 2), ["more", "kept"]);

    // On an empty line, Ctrl-C leaves, like /exit.
    alice.send_control('c').expect("Ctrl-C");
    leaves_cleanly(&mut alice, &mut bob);
    assert!(
        !bob.seen.iter().any(|line| line.contains("cleared")),
        "{:#?}",
        bob.seen
    );
}

/// `icq-server` in a pseudo-terminal (its console on the terminal), with a ban file in
/// `dir`; returns the session and the server's address. Killed when the session is dropped.
fn terminal_server(dir: &std::path::Path) -> (PtySession, String) {
    std::fs::create_dir_all(dir).expect("creating a temporary directory");
    let mut command = command(env!("CARGO_BIN_EXE_icq-server"));
    command
        .args(["--bind", "127.0.0.1:0", "--color", "never", "--bans"])
        .arg(dir.join("bans.txt"));
    let millis = u64::try_from(DEADLINE.as_millis()).expect("a deadline in range");
    let mut console = spawn_command(command, Some(millis)).expect("starting icq-server in a pty");
    let (_, listening) = console
        .exp_regex(r"listening on 127\.0\.0\.1:[0-9]+")
        .expect("the server's first line");
    let address = listening.trim_start_matches("listening on ").to_owned();
    (console, address)
}

#[test]
fn the_server_console_edits_a_line_while_the_log_goes_on_above_it() {
    let dir = std::env::temp_dir().join(format!("icq-terminal-console-{}", std::process::id()));
    let (mut console, address) = terminal_server(&dir);
    let mut alice = PipedClient::start_at(&address, "alice");
    expect(&mut console, "alice joined");

    // Half a line on the console; then a chat line is logged while it waits.
    console.send("half typed server li").expect("typing");
    console.flush().expect("typing");
    expect(&mut console, "half typed server li");
    alice.say("message while op types");
    let before = expect(&mut console, "alice: message while op types");
    assert!(
        !before.contains("li["),
        "the log line ran into the typed line: {before:?}"
    );
    // The half-typed line is drawn again below the log line, whole.
    expect(&mut console, "> half typed server li");
    console.send("ne\r").expect("typing");
    console.flush().expect("typing");
    assert_eq!(
        lines_from(&mut alice, "server", 1),
        ["half typed server line"]
    );

    // Up brings the line back from the history; Enter sends it again.
    console.send("\u{1b}[A").expect("typing");
    console.flush().expect("typing");
    expect(&mut console, "> half typed server line");
    console.send("\r").expect("typing");
    console.flush().expect("typing");
    assert_eq!(
        lines_from(&mut alice, "server", 1),
        ["half typed server line"]
    );

    // Tab completes commands and the names of the clients online.
    console.send("/ki\t").expect("typing");
    console.flush().expect("typing");
    expect(&mut console, "/kick ");
    console.send("al\t").expect("typing");
    console.flush().expect("typing");
    expect(&mut console, "/kick alice ");
    // Ctrl-C clears it (alice is not kicked); the next line is sent alone.
    console.send_control('c').expect("Ctrl-C");
    console.send("still here\r").expect("typing");
    console.flush().expect("typing");
    assert_eq!(lines_from(&mut alice, "server", 1), ["still here"]);

    // Ctrl-C on an empty line closes the server, as SIGINT does.
    console.send_control('c').expect("Ctrl-C");
    expect(&mut console, "server closing");
    alice.wait_for("saying the server closed", |line| {
        line.contains("the server is closing")
    });
    let status = console.process().wait().expect("waiting for the server");
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "the server ended with {status:?}"
    );
    assert!(
        !alice.seen.iter().any(|line| line.contains("kicked")),
        "{:#?}",
        alice.seen
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_d_closes_the_server_console_and_the_server_goes_on() {
    let dir = std::env::temp_dir().join(format!("icq-terminal-ctrld-{}", std::process::id()));
    let (mut console, address) = terminal_server(&dir);
    // At the prompt, as a person would: a Ctrl-D sent before the console's line editor has
    // the terminal can be lost when it switches the terminal to raw mode (seen under load).
    expect(&mut console, "> ");
    console.send_control('d').expect("Ctrl-D");
    expect(&mut console, "console input closed; still serving");
    // Still serving and logging; what is typed now is read by no one.
    let mut bob = PipedClient::start_at(&address, "bob");
    expect(&mut console, "bob joined");
    bob.say("anyone?");
    expect(&mut console, "bob: anyone?");
    console.send("ignored\r").expect("typing");
    console.flush().expect("typing");
    bob.say("still logged");
    expect(&mut console, "bob: still logged");
    assert!(
        !bob.seen.iter().any(|line| line.contains("ignored")),
        "{:#?}",
        bob.seen
    );
    let _ = std::fs::remove_dir_all(&dir);
}
