//! The server program's run-time: its threads around one server core, one socket, the
//! console and the ban file.
//!
//! Three threads share the core behind a mutex: the socket loop ([`super::drive`]); the
//! console thread reads the operator's lines and carries them out
//! (`crate::server::console`); the bans thread looks at the ban file and writes it (file
//! work can wait on a lock or on an editor, so it never holds up the socket). With a history
//! file, a fourth thread commits the room's lines to it: the socket loop hands it each turn's
//! lines without waiting, and it commits everything handed over in one transaction, at most
//! once per [`HISTORY_COMMIT_INTERVAL`] (an fsync can take milliseconds, and costs as much
//! for one line as for hundreds). It owns the wiring between them, what goes to the log when,
//! and when the history is written; the rules are the core's, the console's answers
//! `crate::server::console`'s, the ban file's `crate::bans::keeper`'s, the history file's
//! `crate::history`'s. The binary parses the options and hands it the pieces.
//!
//! On a terminal the console reads through the line editor (`crate::terminal`: history,
//! Tab completion of commands and of the names online) and the log goes through its
//! printer, above the line being typed; otherwise it reads plain lines.

use std::convert::Infallible;
use std::io;
use std::net::UdpSocket;
use std::ops::ControlFlow;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::log::Log;
use super::{drive, lock, send_each, wake};
use crate::bans::file::{Edit, RealTime};
use crate::bans::keeper::{BanKeeper, BanNotice};
use crate::command::Side;
use crate::completion;
use crate::history::{Batch, Warning, Writer};
use crate::render;
use crate::server::Server;
use crate::server::console::{self, Then};
use crate::terminal::{self, LineEditor, Typed};
use crate::text;

/// What the console's line editor shows before the line being typed.
const PROMPT: &str = "> ";

/// How often the ban file is checked for hand edits.
const BAN_FILE_CHECK: Duration = Duration::from_secs(1);

/// How often guests' clocks are set to the local zone's offset again, so they follow it
/// into and out of daylight saving time.
const ZONE_CHECK: Duration = Duration::from_secs(1);

/// The socket loop wakes at least this often, even with no client and no deadline.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// After `/exit`, how long the server keeps repeating its farewell to clients that have not
/// acknowledged it yet before the process ends.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The history file is committed to at most this often: a line reaches it within this time
/// (and the fsync's) of being said; a quiet room's line at once. Under load the lines said
/// meanwhile share one transaction, so the file costs at most 20 fsyncs a second.
pub const HISTORY_COMMIT_INTERVAL: Duration = Duration::from_millis(50);

/// At the end, how long the process waits for the history's last lines to be committed.
const HISTORY_SYNC_LIMIT: Duration = Duration::from_secs(2);

/// A server ready to run; [`ServerProgram::shutter`] closes it from elsewhere (signals).
pub struct ServerProgram {
    shared: Arc<Shared>,
}

/// What the threads share. Lock order: `bans`, then `server`, then `log`.
struct Shared {
    socket: UdpSocket,
    /// The bans in force and the ban file; held while the file is read or written.
    bans: Mutex<BanKeeper>,
    server: Mutex<Server>,
    log: Mutex<Log>,
    /// Set once by `/exit` or a signal: the process ends once every client has
    /// acknowledged the farewell, or at this instant.
    closing: OnceLock<Instant>,
    /// What waits for the history thread, when the history has a file.
    history: OnceLock<HistoryQueue>,
    /// Whether the console uses color.
    color: bool,
}

impl ServerProgram {
    /// `server` on `socket` (bound, its address given to the core), with the ban file
    /// `keeper` opened and `log` to print to.
    pub fn new(
        socket: UdpSocket,
        server: Server,
        keeper: BanKeeper,
        log: Log,
        color: bool,
    ) -> ServerProgram {
        ServerProgram {
            shared: Arc::new(Shared {
                socket,
                bans: Mutex::new(keeper),
                server: Mutex::new(server),
                log: Mutex::new(log),
                closing: OnceLock::new(),
                history: OnceLock::new(),
                color,
            }),
        }
    }

    /// Closes the server as `/exit` does: for SIGINT and SIGTERM.
    pub fn shutter(&self) -> impl Fn() + Send + 'static {
        let shared = Arc::clone(&self.shared);
        move || shut_down(&shared)
    }

    /// Starts the console and ban file threads and runs the socket loop; the process ends
    /// (with success) once the farewell after `/exit` or a signal is done. Returns only
    /// if a thread cannot be started.
    pub fn run(self) -> io::Result<()> {
        let shared = self.shared;
        let editor = open_editor(&shared);
        let for_console = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("console".into())
            .spawn(move || console(&for_console, editor))?;
        let for_bans = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("bans".into())
            .spawn(move || watch_bans(&for_bans))?;
        let writer = lock(&shared.server).history_mut().take_writer();
        if let Some(writer) = writer {
            let _ = shared.history.set(HistoryQueue::default());
            let for_history = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("history".into())
                .spawn(move || {
                    if let Some(queue) = for_history.history.get() {
                        write_history(queue, writer);
                    }
                })?;
        }
        serve(&shared);
        Ok(())
    }
}

/// The socket loop, until the farewell is done after `/exit` or a signal. The log goes out
/// when the socket is idle, or in large chunks while datagrams keep coming.
fn serve(shared: &Shared) {
    let mut next_zone_check = Instant::now() + ZONE_CHECK;
    drive(&shared.socket, &shared.server, |server, now, busy| {
        if now >= next_zone_check {
            next_zone_check = now + ZONE_CHECK;
            server.set_utc_offset(render::local_offset(wall_ms()));
        }
        let mut log = lock(&shared.log);
        // This turn's lines go to the history thread (and the last ones before the process
        // ends).
        hand_over_history(shared, server, &mut log);
        queue_events(server, &mut log, shared.color);
        if let Some(&closing) = shared.closing.get()
            && (!server.farewells_pending() || now >= closing)
        {
            sync_history(shared);
            hand_over_history(shared, server, &mut log);
            log.finish("");
            std::process::exit(0);
        }
        if busy {
            log.flush_if_large();
        } else {
            log.flush();
        }
        let at = now + MAX_WAIT;
        ControlFlow::<Infallible, _>::Continue(shared.closing.get().map_or(at, |&c| c.min(at)))
    });
}

/// The bans thread: puts hand edits of the ban file in force (a file being written is read
/// again once it settles) and writes what waits to be written, until the process ends.
fn watch_bans(shared: &Shared) {
    loop {
        let next = {
            let mut keeper = lock(&shared.bans);
            let polled = keeper.poll(Instant::now());
            // The cause (the file changed) is printed before its effects (disconnections).
            print_ban_notices(&mut lock(&shared.log), &polled.notices, shared.color);
            if polled.changed {
                put_in_force(shared, &keeper);
            }
            if polled.save_due {
                let notices = keeper.save(&mut RealTime);
                put_in_force(shared, &keeper);
                print_ban_notices(&mut lock(&shared.log), &notices, shared.color);
            }
            keeper.next_look()
        };
        let wake = Instant::now() + BAN_FILE_CHECK;
        let wake = next.map_or(wake, |at| at.min(wake));
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
}

/// Gives the core the bans in force (disconnecting whoever they ban).
fn put_in_force(shared: &Shared, keeper: &BanKeeper) {
    let list = keeper.in_force().clone();
    let mut server = lock(&shared.server);
    server.set_ban_list(Instant::now(), list);
    flush(shared, &mut server, &[]);
}

/// Prints `lines`, then sends every queued datagram and prints every queued event: for the
/// other threads' rare changes (the socket loop sends in batches).
fn flush(shared: &Shared, server: &mut Server, lines: &[String]) {
    send_each(&shared.socket, server);
    let mut log = lock(&shared.log);
    log.lines(lines);
    queue_events(server, &mut log, shared.color);
    log.flush();
}

/// Moves the core's events into the log buffer (not yet to stdout).
fn queue_events(server: &mut Server, log: &mut Log, color: bool) {
    while let Some(event) = server.poll_event() {
        log.server_event(&event, color);
    }
}

/// On a terminal, opens the line editor for the console and sends the log through its
/// printer from now on; `None` elsewhere (plain lines). Tab completes the console's
/// commands and the names of the clients online now.
fn open_editor(shared: &Arc<Shared>) -> Option<LineEditor> {
    let for_tab = Arc::clone(shared);
    let (editor, printer) = LineEditor::open(Arc::new(move |line: &str, pos: usize| {
        let clients = lock(&for_tab.server).clients(Instant::now());
        let names = clients.iter().map(|client| client.name.as_str());
        completion::complete(line, pos, Side::Server, names)
    }))?;
    lock(&shared.log).print_through(printer);
    Some(editor)
}

/// Reads the operator's lines until end of input. End of input closes only the console:
/// the server keeps serving, so it can run as a daemon with stdin at /dev/null. With the
/// line editor, Ctrl-D on an empty line is the end of input, and Ctrl-C on an empty line
/// closes the server as SIGINT does (on a line being typed it clears the line).
fn console(shared: &Shared, editor: Option<LineEditor>) {
    match editor {
        Some(mut editor) => loop {
            match editor.read(PROMPT) {
                // A paste of several lines: each is a line of its own.
                Typed::Line(text) => text.split('\n').for_each(|line| console_line(shared, line)),
                Typed::Interrupted => return shut_down(shared),
                Typed::Eof => break,
            }
        },
        None => terminal::read_plain_lines(|line| {
            console_line(shared, line);
            true
        }),
    }
    let closed = "console input closed; still serving (stop with SIGINT or SIGTERM)";
    log_notice(&mut lock(&shared.log), closed, shared.color);
}

/// Carries out one line typed on the console.
fn console_line(shared: &Shared, line: &str) {
    let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M").to_string();
    let then = {
        let mut server = lock(&shared.server);
        let answer = console::carry_out(&mut server, Instant::now(), line, &stamp);
        flush(shared, &mut server, &answer.lines);
        answer.then
    };
    match then {
        Then::Nothing => {}
        Then::Exit => shut_down(shared),
        Then::Bans(edit) => change_bans(shared, edit),
    }
}

/// `/ban` and `/unban`: in force at once (clients at a banned address are disconnected
/// before the file is touched), then saved; what cannot be saved stays in force until the
/// server stops.
fn change_bans(shared: &Shared, edit: Edit) {
    let mut keeper = lock(&shared.bans);
    keeper.stage(edit);
    put_in_force(shared, &keeper);
    let notices = keeper.save(&mut RealTime);
    put_in_force(shared, &keeper);
    print_ban_notices(&mut lock(&shared.log), &notices, shared.color);
}

/// Tells every client the server is closing; the socket loop ends the process with success
/// once they have all acknowledged (or [`SHUTDOWN_GRACE`] has passed).
fn shut_down(shared: &Shared) {
    let mut server = lock(&shared.server);
    let now = Instant::now();
    if shared.closing.set(now + SHUTDOWN_GRACE).is_err() {
        return;
    }
    server.shutdown(now);
    flush(shared, &mut server, &[]);
    // The socket loop notices at once, even if no client answers.
    wake(&shared.socket);
}

/// Prints what the ban keeper has to say: bad lines of the file on stderr, the rest as
/// notices. Everything quoted from the file or typed goes through `sanitize`.
pub fn print_ban_notices(log: &mut Log, notices: &[BanNotice], color: bool) {
    for notice in notices {
        let text = text::sanitize(&notice.to_string()).into_owned();
        match notice {
            BanNotice::Warning { .. } => log.warning(format_args!("icq-server: warning: {text}")),
            _ => log_notice(log, &text, color),
        }
    }
}

/// The lines handed to the history thread and not yet taken by it, and what it says back.
#[derive(Default)]
struct HistoryQueue {
    state: Mutex<Queued>,
    /// The thread waits here for lines.
    lines: Condvar,
    /// [`sync_history`] waits here for the commit.
    committed: Condvar,
}

#[derive(Default)]
struct Queued {
    /// Every line handed over since the thread last took them (bounded: the newest
    /// `--history` lines at most, older ones would be trimmed by the same transaction).
    batch: Batch,
    /// The thread waits on [`HistoryQueue::lines`] (so a hand-over must wake it).
    idle: bool,
    /// The thread is committing what it took.
    writing: bool,
    /// Why the thread stopped writing the file, until the socket loop says so.
    failed: Option<Warning>,
    /// The thread has stopped (a commit failed).
    stopped: bool,
}

impl HistoryQueue {
    fn state(&self) -> MutexGuard<'_, Queued> {
        lock(&self.state)
    }
}

/// Hands the lines said since the last call to the history thread, if the history has a
/// file (never waiting for the file). If the thread could not write, lets the file go (the
/// history goes on in memory) and says so, once.
fn hand_over_history(shared: &Shared, server: &mut Server, log: &mut Log) {
    let Some(queue) = shared.history.get() else {
        return;
    };
    let mut state = queue.state();
    if let Some(warning) = state.failed.take() {
        server.history_mut().let_go();
        let text = text::sanitize(&warning.to_string()).into_owned();
        log.warning(format_args!("icq-server: warning: {text}"));
    }
    if let Some(batch) = server.history_mut().take_batch() {
        state.batch.absorb(batch);
        if state.idle {
            state.idle = false;
            queue.lines.notify_one();
        }
    }
}

/// Waits (at most [`HISTORY_SYNC_LIMIT`]) until the history thread has committed every line
/// handed over, or has stopped.
fn sync_history(shared: &Shared) {
    let Some(queue) = shared.history.get() else {
        return;
    };
    let state = queue.state();
    let _ = queue
        .committed
        .wait_timeout_while(state, HISTORY_SYNC_LIMIT, |state| {
            !state.stopped && (state.writing || !state.batch.is_empty())
        });
}

/// The history thread: commits what the socket loop hands over, everything waiting in one
/// transaction, at most once per [`HISTORY_COMMIT_INTERVAL`]. When a commit fails it leaves
/// the reason in the queue and stops.
fn write_history(queue: &HistoryQueue, mut writer: Writer) {
    let mut last_commit: Option<Instant> = None;
    loop {
        let mut state = queue.state();
        while state.batch.is_empty() {
            state.idle = true;
            state = queue
                .lines
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.idle = false;
        if let Some(at) = last_commit {
            drop(state);
            // Meanwhile the loop's hand-overs join the batch, and wake no one.
            std::thread::sleep(
                (at + HISTORY_COMMIT_INTERVAL).saturating_duration_since(Instant::now()),
            );
            state = queue.state();
        }
        let batch = std::mem::take(&mut state.batch);
        state.writing = true;
        drop(state);
        last_commit = Some(Instant::now());
        let result = writer.write(&batch);
        let mut state = queue.state();
        state.writing = false;
        queue.committed.notify_all();
        if let Err(warning) = result {
            state.failed = Some(warning);
            state.stopped = true;
            return;
        }
    }
}

pub fn log_notice(log: &mut Log, text: &str, color: bool) {
    log.line(render::server_notice(wall_ms(), text, color));
    log.flush();
}

/// The wall clock, for the notices' time of day.
pub fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
