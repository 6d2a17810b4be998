//! The client program's run-time: typing into a core (a client of a server, or a peer), the
//! socket loop, and what is printed, until the session ends and the process exits.
//!
//! Two threads share the core behind a mutex: the typing thread reads what the user types
//! (through the line editor on a terminal, plain lines otherwise) and carries it out; the
//! socket loop ([`super::drive`]) takes datagrams and runs the core's timers. Whichever
//! thread sees the session end prints the farewell and ends the process with its exit
//! status ([`close_status`]). In peer mode the loop also puts the ban file in force again
//! when it changes. It owns that wiring and the exit statuses; the rules are the cores',
//! the look of lines `crate::render`'s, parsing `crate::command`'s.
//! The binary parses the options, opens the socket and hands it the pieces.

use std::convert::Infallible;
use std::io::{self, IsTerminal as _, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::log::Log;
use super::{Endpoint, drive, lock, send_each};
use crate::bans::keeper::{BanKeeper, BanNotice};
use crate::client::{Client, ClientEvent, CloseReason};
use crate::command::{self, Command, Input, Side};
use crate::completion::NameBook;
use crate::names::{self, RenameError};
use crate::peer::{Peer, PeerCloseReason, PeerEvent};
use crate::proto::presence::Presence;
use crate::render::{self, ClientLook, DayMark};
use crate::terminal::{self, LineEditor, Typed};
use crate::text::{self, AWAY_WITHOUT_REASON};

/// What the line editor shows before the line being typed.
const PROMPT: &str = "> ";

/// The socket loop wakes at least this often, so timers started by typing (a leave's
/// retries) run on time even though typing happens on the other thread.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// How often peer mode looks whether the ban file changed on disk.
const BAN_FILE_CHECK: Duration = Duration::from_secs(1);

/// Exit statuses, so scripts can tell failures apart.
pub mod exit {
    /// The server did not answer the first join, or the user left during an outage,
    /// before the server came back.
    pub const NO_ANSWER: u8 = 3;
    /// The server refused the join (name taken or invalid, address banned, server full).
    pub const REFUSED: u8 = 4;
    /// The server ended the session (kicked, banned, closing, timed out).
    pub const DISCONNECTED: u8 = 5;
}

/// The exit status for the end of a session.
pub fn close_status(reason: &CloseReason) -> u8 {
    match reason {
        CloseReason::Left => 0,
        CloseReason::JoinTimedOut | CloseReason::ForeignAnswer | CloseReason::LeftUnreachable => {
            exit::NO_ANSWER
        }
        CloseReason::Refused(_) => exit::REFUSED,
        CloseReason::Disconnected { .. } => exit::DISCONNECTED,
    }
}

/// The exit status for the end of a peer: the same numbers as with a server.
pub fn peer_close_status(reason: &PeerCloseReason) -> u8 {
    match reason {
        PeerCloseReason::Left => 0,
        PeerCloseReason::JoinTimedOut | PeerCloseReason::ForeignAnswer => exit::NO_ANSWER,
        PeerCloseReason::Refused(_) | PeerCloseReason::NameConflict => exit::REFUSED,
    }
}

/// The state machine behind the program: a client of a server, or a peer.
pub enum Core {
    Client(Box<Client>),
    Peer(Box<Peer>),
}

impl Endpoint for Core {
    type Transmit = (SocketAddr, Vec<u8>);
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        match self {
            Core::Client(client) => client.handle_datagram(now, from, datagram),
            Core::Peer(peer) => peer.handle_datagram(now, from, datagram),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Core::Client(client) => client.handle_timeout(now),
            Core::Peer(peer) => peer.handle_timeout(now),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Core::Client(client) => client.poll_timeout(),
            Core::Peer(peer) => peer.poll_timeout(),
        }
    }
    fn poll_transmit(&mut self) -> Option<Self::Transmit> {
        match self {
            Core::Client(client) => client.poll_transmit(),
            Core::Peer(peer) => peer.poll_transmit(),
        }
    }
}

impl Core {
    fn send_text(&mut self, now: Instant, text: &str) {
        match self {
            Core::Client(client) => client.send_text(now, text),
            Core::Peer(peer) => peer.send_text(now, text),
        }
    }

    fn send_action(&mut self, now: Instant, text: &str) {
        match self {
            Core::Client(client) => client.send_action(now, text),
            Core::Peer(peer) => peer.send_action(now, text),
        }
    }

    /// `/nick`; the refusal to show at once if the name cannot be had.
    fn rename(&mut self, now: Instant, name: &str) -> Result<(), String> {
        match self {
            Core::Client(client) => {
                let invalid = |error| text::rename_refusal(name, &RenameError::Invalid(error));
                names::validate(name).map_err(invalid)?;
                client.rename(now, name);
                Ok(())
            }
            Core::Peer(peer) => peer.rename(now, name).map_err(|error| error.to_string()),
        }
    }

    fn set_away(&mut self, now: Instant, reason: Option<&str>) {
        match self {
            Core::Client(client) => client.set_away(now, reason),
            Core::Peer(peer) => peer.set_away(now, reason),
        }
    }

    fn request_list(&mut self, now: Instant) {
        match self {
            Core::Client(client) => client.request_list(now),
            Core::Peer(peer) => peer.request_list(now),
        }
    }

    fn leave(&mut self, now: Instant) {
        match self {
            Core::Client(client) => client.leave(now),
            Core::Peer(peer) => peer.leave(now),
        }
    }

    /// Leaves once everything queued is sent (at the flood limit's pace): the end of piped
    /// input, which a script means to be delivered whole.
    fn leave_after_queue(&mut self, now: Instant) {
        match self {
            Core::Client(client) => client.leave_after_queue(now),
            Core::Peer(peer) => peer.leave_after_queue(now),
        }
    }
}

/// A session ready to run; [`ClientProgram::leaver`] leaves it from elsewhere (Ctrl-C).
pub struct ClientProgram {
    shared: Arc<Shared>,
}

struct Shared {
    socket: UdpSocket,
    core: Mutex<Core>,
    /// Colors and bell.
    look: ClientLook,
    /// The server (peer mode: the first --peer) as the user wrote it, for messages.
    server_text: String,
    /// Where lines go (lock order: `ban_file`, then `core`, then `day`, then `log`).
    log: Mutex<Log>,
    /// The local day of the last line printed with a time: a line from another day gets
    /// a day line before it.
    day: Mutex<DayMark>,
    /// Who has been seen online, for Tab (only kept up to date on a terminal).
    names: Arc<Mutex<NameBook>>,
    /// Peer mode's ban file, if one was given.
    ban_file: Option<Mutex<BanFile>>,
}

/// Peer mode's ban file, checked for changes now and then.
struct BanFile {
    keeper: BanKeeper,
    next_check: Instant,
}

impl ClientProgram {
    /// `core` on `socket`; `server_text` is the server (or first peer) as the user wrote
    /// it; `names` is what Tab completes from; `bans` is peer mode's ban file.
    pub fn new(
        socket: UdpSocket,
        core: Core,
        look: ClientLook,
        server_text: String,
        log: Log,
        names: Arc<Mutex<NameBook>>,
        bans: Option<BanKeeper>,
    ) -> ClientProgram {
        let ban_file = bans.map(|keeper| {
            Mutex::new(BanFile {
                keeper,
                next_check: Instant::now() + BAN_FILE_CHECK,
            })
        });
        // A client takes the room's fan-out: the server's segmented messages come whole.
        super::coalesce_receives(&socket);
        let now_ms = wall_ms();
        ClientProgram {
            shared: Arc::new(Shared {
                socket,
                core: Mutex::new(core),
                look,
                server_text,
                log: Mutex::new(log),
                day: Mutex::new(DayMark::new(now_ms, render::local_offset(now_ms))),
                names,
                ban_file,
            }),
        }
    }

    /// Leaves the session as `/exit` does: for Ctrl-C outside the line editor.
    pub fn leaver(&self) -> impl Fn() + Send + 'static {
        let shared = Arc::clone(&self.shared);
        move || {
            let mut core = lock(&shared.core);
            core.leave(Instant::now());
            pump(&shared, &mut core);
        }
    }

    /// Sends the first join, starts the socket loop and reads what the user types (through
    /// `editor` if there is one) until the session ends; the process then exits with the
    /// session's status. Returns only if the loop's thread cannot be started.
    pub fn run(self, editor: Option<LineEditor>) -> io::Result<()> {
        let shared = self.shared;
        pump(&shared, &mut lock(&shared.core));
        let for_loop = Arc::clone(&shared);
        let socket_loop = std::thread::Builder::new()
            .name("receiver".into())
            .spawn(move || receive(&for_loop))?;
        let ended = match editor {
            Some(editor) => edit_typing(&shared, editor),
            None => read_typing(&shared),
        };
        // Leave, and let the loop finish the goodbye and exit the process. `/exit` and
        // Ctrl-D wait a little for lines still queued; the end of piped input waits for all.
        {
            let mut core = lock(&shared.core);
            match ended {
                Ended::InputClosed => core.leave_after_queue(Instant::now()),
                Ended::Exit => core.leave(Instant::now()),
            }
            pump(&shared, &mut core);
        }
        match socket_loop.join() {
            Ok(never) => match never {},
            Err(_) => Err(io::Error::other("the receiver thread failed")),
        }
    }
}

/// How typing ended.
enum Ended {
    /// `/exit`, Ctrl-D or Ctrl-C: someone waits for the program to end.
    Exit,
    /// The end of piped input.
    InputClosed,
}

/// Reads typed lines until end of input or `/exit` (plain mode).
fn read_typing(shared: &Shared) -> Ended {
    let mut ended = Ended::InputClosed;
    terminal::read_plain_lines(|line| {
        let more = typed(shared, line) == Next::More;
        if !more {
            ended = Ended::Exit;
        }
        more
    });
    ended
}

/// Reads typed lines with the line editor until `/exit`, or Ctrl-C or Ctrl-D on an empty
/// line (Ctrl-C on a line being typed only clears it, in the editor).
fn edit_typing(shared: &Shared, mut editor: LineEditor) -> Ended {
    loop {
        match editor.read(PROMPT) {
            // A paste of several lines arrives at once: each is a line of its own, as if
            // typed one after the other.
            Typed::Line(text) => {
                for line in text.split('\n') {
                    if typed(shared, line) == Next::Exit {
                        return Ended::Exit;
                    }
                }
            }
            Typed::Interrupted | Typed::Eof => return Ended::Exit,
        }
    }
}

/// Whether to keep reading after a typed line.
#[derive(PartialEq, Eq)]
enum Next {
    More,
    Exit,
}

/// Carries out one typed line.
fn typed(shared: &Shared, line: &str) -> Next {
    let now = Instant::now();
    let mut core = lock(&shared.core);
    let mut lines = Vec::new();
    match command::parse(line, Side::Client) {
        Ok(Input::Empty) => {}
        Ok(Input::Text(text)) => core.send_text(now, &text),
        Ok(Input::Command(Command::Exit)) => return Next::Exit,
        Ok(Input::Command(Command::List)) => core.request_list(now),
        Ok(Input::Command(Command::Help)) => lines = command::help_lines(Side::Client),
        Ok(Input::Command(Command::Msg { to, text })) => match &mut *core {
            Core::Peer(peer) => {
                if let Err(error) = peer.send_private(now, &to, &text) {
                    lines.push(error.to_string());
                }
            }
            Core::Client(client) => client.send_private(now, &to, &text),
        },
        Ok(Input::Command(Command::Me { text })) => core.send_action(now, &text),
        Ok(Input::Command(Command::Nick { name })) => {
            if let Err(refusal) = core.rename(now, &name) {
                lines.push(refusal);
            }
        }
        Ok(Input::Command(Command::Away { reason })) => {
            let reason = reason.as_deref().unwrap_or(AWAY_WITHOUT_REASON);
            core.set_away(now, Some(reason));
        }
        Ok(Input::Command(Command::Back)) => core.set_away(now, None),
        Ok(Input::Command(Command::History(count))) => {
            lines.extend(count.note());
            match &mut *core {
                Core::Client(client) => client.request_history(now, count.count),
                Core::Peer(peer) => {
                    let count = Some(usize::from(count.count));
                    if let Err(error) = peer.request_history(now, count) {
                        lines.push(error.to_string());
                    }
                }
            }
        }
        // The parser only gives server commands to the server; nothing to do here.
        Ok(Input::Command(_)) => {}
        Err(error) => lines.push(error.to_string()),
    }
    print(shared, &lines);
    pump(shared, &mut core);
    Next::More
}

/// The socket loop's thread: runs until the session ends (the process exits in `pump`).
fn receive(shared: &Shared) -> Infallible {
    drive(&shared.socket, &shared.core, |core, now, _| {
        reload_bans_if_changed(shared, core, now);
        pump(shared, core);
        ControlFlow::Continue(Instant::now() + MAX_WAIT)
    })
}

/// Peer mode: puts the ban file in force again when it changed on disk (checked every
/// [`BAN_FILE_CHECK`]).
fn reload_bans_if_changed(shared: &Shared, core: &mut Core, now: Instant) {
    let Some(file) = &shared.ban_file else {
        return;
    };
    let mut file = lock(file);
    if now < file.next_check {
        return;
    }
    let polled = file.keeper.poll(now);
    // A file being written is looked at again as soon as it may have settled.
    file.next_check = file
        .keeper
        .next_look()
        .unwrap_or(now + BAN_FILE_CHECK)
        .min(now + BAN_FILE_CHECK);
    if polled.changed
        && let Core::Peer(peer) = core
    {
        peer.set_ban_list(now, file.keeper.in_force().clone());
    }
    let mut log = lock(&shared.log);
    for notice in &polled.notices {
        let text = text::sanitize(&notice.to_string()).into_owned();
        match notice {
            BanNotice::Warning { .. } => log.warning(format_args!("icq-client: {text}")),
            _ => log.line(shared.look.notice(wall_ms(), &text)),
        }
    }
    log.flush();
}

/// Prints lines at once.
fn print(shared: &Shared, lines: &[String]) {
    if !lines.is_empty() {
        let mut log = lock(&shared.log);
        log.lines(lines);
        log.flush();
    }
}

/// Sends what the core queued and prints what it has to say; ends the process when the
/// session is over.
fn pump(shared: &Shared, core: &mut Core) {
    send_each(&shared.socket, core);
    let now_ms = wall_ms();
    let mut lines = Vec::new();
    let mut day = lock(&shared.day);
    match core {
        Core::Client(client) => {
            while let Some(event) = client.poll_event() {
                if let ClientEvent::Closed(reason) = event {
                    print(shared, &lines);
                    let text = render::close_text(&reason, &server_shown(shared, client.server()));
                    finish(shared, &text, reason.is_failure(), close_status(&reason));
                }
                observe_presence(shared, &event.presence());
                if let Some(line) = shared.look.client_line(&event, now_ms, client.name()) {
                    let stamp = render::client_stamp(&event);
                    lines.extend(shared.look.day_line(&mut day, stamp));
                    lines.push(line);
                }
            }
        }
        Core::Peer(peer) => {
            while let Some(event) = peer.poll_event() {
                if let PeerEvent::Closed(reason) = event {
                    print(shared, &lines);
                    let contact = peer
                        .contact()
                        .map_or(String::new(), |addr| server_shown(shared, addr));
                    let text = render::peer_close_text(&reason, &contact, peer.name());
                    let status = peer_close_status(&reason);
                    finish(shared, &text, reason.is_failure(), status);
                }
                observe_presence(shared, &event.presence());
                let shown = shared.look.peer_lines(&event, now_ms, peer.name());
                if !shown.is_empty() {
                    let stamp = render::peer_stamp(&event);
                    lines.extend(shared.look.day_line(&mut day, stamp));
                }
                lines.extend(shown);
            }
        }
    }
    print(shared, &lines);
}

/// Tab completion learns who is online from the typed presence news of either role.
fn observe_presence(shared: &Shared, news: &[Presence]) {
    if news.is_empty() || !lock(&shared.log).has_editor() {
        return;
    }
    let mut book = lock(&shared.names);
    for one in news {
        book.observe(one);
    }
}

/// "localhost:4000 (127.0.0.1:4000)", but not "127.0.0.1:4000 (127.0.0.1:4000)".
fn server_shown(shared: &Shared, server: SocketAddr) -> String {
    if shared.server_text.parse::<SocketAddr>() == Ok(server) || shared.server_text.is_empty() {
        server.to_string()
    } else {
        format!("{} ({server})", shared.server_text)
    }
}

/// Prints the farewell and ends the process with `status`.
fn finish(shared: &Shared, text: &str, failure: bool, status: u8) -> ! {
    // On stdout with the conversation, and on stderr too when it is an error, where
    // someone who redirected the conversation (or only the errors) still sees it; on a
    // terminal the line on stdout already says it, a copy only helps elsewhere.
    let line = shared.look.farewell(wall_ms(), text, failure);
    let mut log = lock(&shared.log);
    let editor = log.has_editor();
    log.finish(&line);
    if failure && !(editor && io::stderr().is_terminal()) {
        let _ = writeln!(io::stderr(), "icq-client: {text}");
    }
    std::process::exit(i32::from(status));
}

fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
