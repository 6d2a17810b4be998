//! Running the real `icq-server` and `icq-client` binaries from tests, and reading what they
//! print, with a deadline on every wait.
//!
//! [`Process`] wraps one child with piped stdin, stdout and stderr. Two reader threads read
//! stdout and stderr byte by byte up to each `\n` and send every line into one channel, so a
//! test can wait for a line with [`Process::expect_line`] (which panics with everything the
//! process printed when the deadline passes), type with [`Process::send_line`], hang up with
//! [`Process::close_stdin`] and collect the exit status with [`Process::wait_exit`]. Lines
//! keep every byte but the final `\n` (the bell byte `\x07` above all). Dropping a `Process`
//! kills it and reaps it, so a failing test never leaves a program behind.
//!
//! [`TestServer`] starts `icq-server --bind 127.0.0.1:0 --bans <dir>/bans.txt` in a fresh
//! [`TempDir`] and reads the port it got from its first line; [`start_client`] and
//! [`join_client`] start clients against any address (the server's, or a relay's).
//!
//! Every wait takes a duration (how long from now it may take) and no helper sleeps "long
//! enough": what a test waits for is a line, an exit or a datagram, and the deadline only
//! bounds how long a broken program can hold the test up. [`WAIT`] is generous, for a loaded
//! two-core machine; a working program answers in milliseconds, so tests stay fast.
//!
//! It does not own any expectation about what the programs print: the tests do.

use std::fmt;
use std::fs;
use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen at once: generous, because a
/// loaded machine may stall a process for seconds; a healthy run never comes close.
pub const WAIT: Duration = Duration::from_secs(10);

/// The real server binary, built by cargo for this test run.
pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_icq-server");

/// The real client binary, built by cargo for this test run.
pub const CLIENT_BIN: &str = env!("CARGO_BIN_EXE_icq-client");

/// The bell byte a client prints after someone else's message.
pub const BELL: char = '\u{07}';

/// The environment variables `icq-client` reads as option defaults, one per option.
pub const CLIENT_ENV: &[&str] = &[
    "ICQ_NAME",
    "ICQ_SERVER",
    "ICQ_BELL",
    "ICQ_NO_BELL",
    "ICQ_COLOR",
    "ICQ_LISTEN",
    "ICQ_PEER",
    "ICQ_BANS",
    "ICQ_HISTORY",
    "ICQ_REPLAY",
];

/// The environment variables `icq-server` reads as option defaults, one per option.
pub const SERVER_ENV: &[&str] = &[
    "ICQ_BIND",
    "ICQ_BANS",
    "ICQ_FLOOD_RATE",
    "ICQ_FLOOD_BURST",
    "ICQ_TIMEOUT",
    "ICQ_GUESTS",
    "ICQ_MAX_CLIENTS",
    "ICQ_MAX_PER_IP",
    "ICQ_FLOOD_KICK",
    "ICQ_HISTORY",
    "ICQ_REPLAY",
    "ICQ_QUIET_ABOVE",
    "ICQ_HISTORY_DB",
    "ICQ_COLOR",
];

/// How often [`Process::wait_exit`] looks whether the child has exited.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// Which of the child's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line a child printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Where it was printed.
    pub stream: Stream,
    /// The line without its final `\n`, every other byte kept; invalid UTF-8 shows as `�`.
    pub text: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.stream {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        };
        // Debug formatting shows the bell and other control bytes visibly.
        write!(f, "{tag}| {:?}", self.text)
    }
}

/// What [`Process::expect_line`] looks for: a substring (`&str`, `String`), a predicate
/// (any `Fn(&str) -> bool`), or a described predicate ([`matching`]).
pub trait LineMatcher {
    /// Whether `line` is the one wanted.
    fn is_match(&self, line: &str) -> bool;
    /// What is wanted, for the panic message.
    fn describe(&self) -> String;
}

impl LineMatcher for &str {
    fn is_match(&self, line: &str) -> bool {
        line.contains(*self)
    }
    fn describe(&self) -> String {
        format!("a line containing {self:?}")
    }
}

impl LineMatcher for String {
    fn is_match(&self, line: &str) -> bool {
        line.contains(self.as_str())
    }
    fn describe(&self) -> String {
        format!("a line containing {self:?}")
    }
}

impl<F: Fn(&str) -> bool> LineMatcher for F {
    fn is_match(&self, line: &str) -> bool {
        self(line)
    }
    fn describe(&self) -> String {
        "a line matching the test's predicate".to_owned()
    }
}

/// A predicate with a description for failure messages; see [`matching`].
pub struct Matching<F> {
    description: String,
    predicate: F,
}

/// A [`LineMatcher`] for lines where `predicate` holds, described as `description` when a
/// wait fails ("a chat line from alice saying hi").
pub fn matching<F: Fn(&str) -> bool>(description: impl Into<String>, predicate: F) -> Matching<F> {
    Matching {
        description: description.into(),
        predicate,
    }
}

impl<F: Fn(&str) -> bool> LineMatcher for Matching<F> {
    fn is_match(&self, line: &str) -> bool {
        (self.predicate)(line)
    }
    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// What the child's stdin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// A pipe the test writes to ([`Process::send_line`]).
    Piped,
    /// `/dev/null`: the child reads end of input at once.
    Null,
}

/// A running child program whose output is read line by line. See the module documentation.
///
/// Lines are read "expect"-style: a cursor moves past each line a wait consumes, so the next
/// wait only looks at later lines; [`Process::seen`] still has every line, for checks that
/// something was *not* printed and for failure messages.
pub struct Process {
    /// A short name for messages (`server`, `alice`).
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    /// Every line received so far, in arrival order.
    seen: Vec<Line>,
    /// Index in `seen` of the first line no wait has consumed yet.
    cursor: usize,
    /// Both reader threads have finished: the child closed its output.
    output_closed: bool,
    /// The exit status, once collected.
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `command` with stdout and stderr piped to reader threads and stdin as asked.
    /// `label` names the process in failure messages.
    pub fn spawn(label: &str, mut command: Command, stdin: Stdin) -> Process {
        // A developer's shell settings must not change what a test runs.
        for var in CLIENT_ENV.iter().chain(SERVER_ENV) {
            command.env_remove(var);
        }
        command
            .stdin(match stdin {
                Stdin::Piped => Stdio::piped(),
                Stdin::Null => Stdio::null(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{label}: cannot start {command:?}: {e}"));
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        spawn_line_reader(label, Stream::Stdout, stdout, sender.clone());
        spawn_line_reader(label, Stream::Stderr, stderr, sender);
        Process {
            label: label.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            cursor: 0,
            output_closed: false,
            status: None,
        }
    }

    /// The label given at start.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `within` for a line (on stdout or stderr) after the cursor that matches,
    /// moves the cursor past it and returns its text. Panics, showing every line seen, if
    /// the time runs out or the child closes its output first.
    pub fn expect_line(&mut self, wanted: impl LineMatcher, within: Duration) -> String {
        self.expect_line_on(None, wanted, within)
    }

    /// [`Process::expect_line`] looking only at lines from `stream`.
    pub fn expect_stream_line(
        &mut self,
        stream: Stream,
        wanted: impl LineMatcher,
        within: Duration,
    ) -> String {
        self.expect_line_on(Some(stream), wanted, within)
    }

    fn expect_line_on(
        &mut self,
        stream: Option<Stream>,
        wanted: impl LineMatcher,
        within: Duration,
    ) -> String {
        let deadline = Instant::now() + within;
        let mut index = self.cursor;
        loop {
            while index < self.seen.len() {
                let line = &self.seen[index];
                if stream.is_none_or(|s| s == line.stream) && wanted.is_match(&line.text) {
                    self.cursor = index + 1;
                    return line.text.clone();
                }
                index += 1;
            }
            if !self.receive_until(deadline) {
                let why = if self.output_closed {
                    "the process closed its output first"
                } else {
                    "the time ran out"
                };
                let on = stream.map_or(String::new(), |s| format!(" on {s:?}"));
                self.fail(&format!(
                    "expected {}{on} within {within:?}, but {why}",
                    wanted.describe()
                ));
            }
        }
    }

    /// Waits up to `within` for the next line after the cursor, whatever it says, and moves
    /// the cursor past it. For output whose order matters, such as a table.
    pub fn next_line(&mut self, within: Duration) -> String {
        self.expect_line(|_: &str| true, within)
    }

    /// Waits up to `within` until every matcher has matched its own line after the cursor,
    /// in any order, and moves the cursor past the last line used. Returns the lines in the
    /// order of the matchers. Panics like [`Process::expect_line`].
    pub fn expect_lines_unordered(
        &mut self,
        wanted: &[&dyn LineMatcher],
        within: Duration,
    ) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let mut used = vec![false; self.seen.len()];
            let found: Vec<Option<usize>> = wanted
                .iter()
                .map(|matcher| {
                    let at = (self.cursor..self.seen.len())
                        .find(|&i| !used[i] && matcher.is_match(&self.seen[i].text))?;
                    used[at] = true;
                    Some(at)
                })
                .collect();
            if found.iter().all(Option::is_some) {
                let indices: Vec<usize> = found.into_iter().flatten().collect();
                self.cursor = indices.iter().max().map_or(self.cursor, |&i| i + 1);
                return indices
                    .into_iter()
                    .map(|i| self.seen[i].text.clone())
                    .collect();
            }
            if !self.receive_until(deadline) {
                let missing: Vec<String> = wanted
                    .iter()
                    .zip(&found)
                    .filter(|(_, at)| at.is_none())
                    .map(|(matcher, _)| matcher.describe())
                    .collect();
                self.fail(&format!(
                    "expected all of several lines within {within:?}; still missing: {}",
                    missing.join("; ")
                ));
            }
        }
    }

    /// Every line received so far, consumed or not. Only what has arrived: to be sure a line
    /// has had time to arrive, first wait for one printed after it.
    pub fn seen(&mut self) -> &[Line] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Receives at least one more line into `seen`; false if none came before `deadline` or
    /// the output is closed.
    fn receive_until(&mut self, deadline: Instant) -> bool {
        if self.output_closed {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        match self.lines.recv_timeout(deadline - now) {
            Ok(line) => {
                self.seen.push(line);
                while let Ok(line) = self.lines.try_recv() {
                    self.seen.push(line);
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.output_closed = true;
                false
            }
        }
    }

    /// Writes `text` and a newline to the child's stdin. Panics if stdin was closed, or the
    /// child does not read it any more (it exited).
    pub fn send_line(&mut self, text: &str) {
        let Some(stdin) = self.stdin.as_mut() else {
            self.fail(&format!("cannot send {text:?}: stdin is closed"));
        };
        let written = stdin
            .write_all(format!("{text}\n").as_bytes())
            .and_then(|()| stdin.flush());
        if let Err(error) = written {
            self.fail(&format!("cannot send {text:?}: {error}"));
        }
    }

    /// Closes the child's stdin: it reads end of input.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `within` for the child to exit and returns its status. Panics, showing
    /// its output, if it is still running then (the drop kills it).
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_exit_status() {
                return status;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("expected it to exit within {within:?}"));
            }
            thread::sleep(EXIT_POLL);
        }
    }

    /// Waits like [`Process::wait_exit`] and returns the exit code; panics if the child was
    /// killed by a signal.
    pub fn wait_exit_code(&mut self, within: Duration) -> i32 {
        let status = self.wait_exit(within);
        match status.code() {
            Some(code) => code,
            None => self.fail(&format!(
                "expected an exit code, but it ended with {status}"
            )),
        }
    }

    /// Waits up to `within` until the child has closed stdout and stderr (it exited, as a
    /// rule), so [`Process::seen`] holds everything it printed. Panics otherwise.
    pub fn wait_output_closed(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.output_closed {
            if !self.receive_until(deadline) && !self.output_closed {
                self.fail(&format!(
                    "expected it to close its output within {within:?}"
                ));
            }
        }
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("{}: cannot check the child's status: {e}", self.label));
        }
        self.status
    }

    /// Panics with `what`, followed by every line the child printed so far.
    pub fn fail(&mut self, what: &str) -> ! {
        self.seen();
        let status = match self.try_exit_status() {
            Some(status) => format!("exited: {status}"),
            None => "still running".to_owned(),
        };
        panic!(
            "{} (pid {}, {status}): {what}\n{}",
            self.label,
            self.child.id(),
            self.transcript()
        );
    }

    /// Every line seen, one per line, with a marker where the cursor stands.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        for (index, line) in self.seen.iter().enumerate() {
            if index == self.cursor {
                out.push_str("    ---- (cursor: later waits look below) ----\n");
            }
            out.push_str(&format!("    {line}\n"));
        }
        if self.seen.is_empty() {
            out.push_str("    (no output)\n");
        }
        out
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if thread::panicking() {
            // A failed assertion elsewhere in the test: show what this program said.
            self.seen();
            eprintln!("---- output of {} ----\n{}", self.label, self.transcript());
        }
        self.stdin = None;
        if self.status.is_none() {
            // It may have exited on its own meanwhile; a failed kill is harmless then.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `from` up to each `\n` and sends each line (its last `\n` removed, every other byte
/// kept) until end of input or until nobody listens. A last line without `\n` is sent too.
pub fn spawn_line_reader(
    label: &str,
    stream: Stream,
    from: impl Read + Send + 'static,
    to: Sender<Line>,
) {
    thread::Builder::new()
        .name(format!("{label}-{stream:?}"))
        .spawn(move || {
            icq::terminal::read_lines_lossy(BufReader::new(from), |text| {
                let line = Line {
                    stream,
                    text: text.strip_suffix('\n').unwrap_or(text).to_owned(),
                };
                to.send(line).is_ok()
            });
        })
        .expect("start an output reader thread");
}

/// A directory of its own for one test, under the system's temporary directory, removed with
/// everything in it on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `icq-e2e-<label>-<pid>-<n>`, unique within this run (and across runs: a
    /// leftover directory of the same name is skipped).
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("icq-e2e-{label}-{}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// How to start a [`TestServer`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The `--bind` address: a loopback address, port 0 (the default `127.0.0.1:0`).
    pub bind: String,
    /// Arguments after `--bind` and `--bans` (`--guests`, `--timeout 1`...).
    pub args: Vec<String>,
    /// Contents to write to the ban file before start; `None` leaves it missing.
    pub bans: Option<String>,
    /// The ban file's path inside the server's directory (`bans.txt`).
    pub bans_file: String,
    /// The server's console.
    pub stdin: Stdin,
    /// Environment variables set for the server (`TZ`...).
    pub env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            bind: "127.0.0.1:0".to_owned(),
            args: Vec::new(),
            bans: None,
            bans_file: "bans.txt".to_owned(),
            stdin: Stdin::Piped,
            env: Vec::new(),
        }
    }
}

impl ServerOptions {
    /// Sets the environment variable `name` to `value` for the server.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Listens on `bind` instead of `127.0.0.1:0` (say `[::1]:0`); keep it on loopback.
    pub fn bind(mut self, bind: &str) -> Self {
        self.bind = bind.to_owned();
        self
    }

    /// Adds command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Writes `contents` to the ban file before the server starts.
    pub fn bans(mut self, contents: &str) -> Self {
        self.bans = Some(contents.to_owned());
        self
    }

    /// Gives the ban file another path inside the server's directory, e.g. `missing/bans.txt`
    /// for a directory that does not exist (a file that cannot be written, even by root).
    pub fn bans_file(mut self, relative: &str) -> Self {
        self.bans_file = relative.to_owned();
        self
    }

    /// Sets what the console reads.
    pub fn stdin(mut self, stdin: Stdin) -> Self {
        self.stdin = stdin;
        self
    }
}

/// A running `icq-server` on a free loopback port, with its own temporary directory (its
/// working directory, holding `bans.txt`). The process is declared before the directory, so
/// it is killed before the directory is removed.
pub struct TestServer {
    /// The server process; its console is [`Process::send_line`].
    pub process: Process,
    /// Where it listens (`127.0.0.1:PORT`, or as [`ServerOptions::bind`] said).
    pub addr: SocketAddr,
    /// The ban file it was given.
    pub bans_path: PathBuf,
    dir: TempDir,
}

impl TestServer {
    /// Starts a server with default options.
    pub fn start() -> TestServer {
        TestServer::start_with(ServerOptions::default())
    }

    /// Starts `icq-server --bind 127.0.0.1:0 --bans <dir>/bans.txt [options.args]` and waits
    /// for its first line, `[HH:MM:SS] -- listening on 127.0.0.1:PORT (...)`, to learn the port
    /// (another `--bind` with [`ServerOptions::bind`]).
    pub fn start_with(options: ServerOptions) -> TestServer {
        let dir = TempDir::new("server");
        let bans_path = dir.path().join(&options.bans_file);
        if let Some(contents) = &options.bans {
            fs::write(&bans_path, contents).expect("write the ban file");
        }
        let mut command = Command::new(SERVER_BIN);
        command
            .current_dir(dir.path())
            .arg("--bind")
            .arg(&options.bind)
            .arg("--bans")
            .arg(&bans_path)
            .args(&options.args)
            .envs(options.env.iter().map(|(name, value)| (name, value)));
        let mut process = Process::spawn("server", command, options.stdin);
        let first = process.expect_line("listening on ", WAIT);
        let addr = parse_listening_line(&first)
            .unwrap_or_else(|| process.fail(&format!("cannot read the port from {first:?}")));
        TestServer {
            process,
            addr,
            bans_path,
            dir,
        }
    }

    /// The temporary directory (the server's working directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `127.0.0.1:PORT` (`[::1]:PORT` for IPv6), as given to `--server`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }
}

/// The address in `[HH:MM:SS] -- listening on ADDR (...)`.
pub fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let (_, after) = line.split_once("listening on ")?;
    after.split_whitespace().next()?.parse().ok()
}

/// Sends `signal` (`TERM`, `INT`, `KILL`) to `process` with the system's `kill` program.
pub fn send_signal(process: &Process, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(process.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed: {status}");
}

/// Starts `icq-client --name NAME --server SERVER [args]` without waiting for anything.
pub fn start_client(server: &str, name: &str, args: &[&str]) -> Process {
    let mut command = Command::new(CLIENT_BIN);
    command
        .arg("--name")
        .arg(name)
        .arg("--server")
        .arg(server)
        .args(args);
    Process::spawn(&format!("client {name:?}"), command, Stdin::Piped)
}

/// Starts a client and waits until it says it is connected
/// (`[HH:MM:SS] -- connected to ADDR as NAME; ...`).
pub fn join_client(server: &str, name: &str, args: &[&str]) -> Process {
    let mut client = start_client(server, name, args);
    client.expect_stream_line(Stream::Stdout, "-- connected to ", WAIT);
    client
}

/// Splits `[HH:MM:SS] rest` into the clock and the rest, if the line starts with a
/// well-formed time stamp followed by one space.
pub fn split_stamp(line: &str) -> Option<(&str, &str)> {
    let inside = line.strip_prefix('[')?;
    let (clock, rest) = inside.split_once("] ")?;
    let bytes = clock.as_bytes();
    let well_formed = bytes.len() == 8
        && bytes[2] == b':'
        && bytes[5] == b':'
        && [0, 1, 3, 4, 6, 7]
            .iter()
            .all(|&i| bytes[i].is_ascii_digit());
    well_formed.then_some((clock, rest))
}
