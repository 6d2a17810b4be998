//! `icq-client`: wires the client state machine to a UDP socket and the terminal.
//!
//! The main thread reads what the user types; a receiver thread waits for datagrams (with a
//! read timeout so the core's timers — join retries, heartbeats — fire on time) and prints
//! what arrives. Both share the state machine behind a mutex. Every rule lives in
//! `icq::client`; this file only moves bytes and prints.
//!
//! On a terminal (stdin and stdout both), typing goes through the line editor of
//! `icq::terminal` and every printed line goes through its printer, so arrivals appear above
//! the line being typed; colors and the bell follow `icq::render`. Otherwise the client
//! reads and prints plain lines, as scripts and tests expect.
//!
//! With `--listen` it runs in peer mode instead: no server, the state machine is
//! `icq::peer`, the socket is bound to the given address (its first line says which port it
//! got), and the ban file given with `--bans` is reloaded when it changes. The threads, the
//! typing and the printing are the same in both modes.

#![forbid(unsafe_code)]

use std::io::{self, IsTerminal, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use icq::alert::BellMode;
use icq::bans::keeper::{BanKeeper, BanNotice};
use icq::bans::list::BanList;
use icq::cli::{self, HostPort};
use icq::client::{Client, ClientEvent, CloseReason};
use icq::command::{self, Command, Input, Side};
use icq::completion::NameBook;
use icq::names::{self, RenameError};
use icq::peer::{Peer, PeerCloseReason, PeerConfig, PeerEvent};
use icq::proto::presence::Presence;
use icq::render::{self, ClientLook, ColorChoice};
use icq::terminal::{self, LineEditor, Printer, Typed};
use icq::text::{self, AWAY_WITHOUT_REASON};
use icq::wire::MAX_DATAGRAM;

/// `println!` that shrugs off a closed stdout (`icq-client | head`): the log reader went away,
/// which is no reason to stop serving, let alone to panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that shrugs off a closed stderr, like [`say!`].
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The program's name, for messages.
const PROGRAM: &str = "icq-client";

/// What the line editor shows before the line being typed.
const PROMPT: &str = "> ";

/// The receiver wakes at least this often, so timers started by typing (a leave's retries)
/// run on time even though typing happens on the other thread.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// How often peer mode looks whether the ban file changed on disk.
const BAN_FILE_CHECK: Duration = Duration::from_secs(1);

/// Exit statuses, so scripts can tell failures apart.
mod exit {
    /// The server did not answer the first join, or the user left during an outage,
    /// before the server came back.
    pub const NO_ANSWER: u8 = 3;
    /// The server refused the join (name taken or invalid, address banned, server full).
    pub const REFUSED: u8 = 4;
    /// The server ended the session (kicked, banned, closing, timed out).
    pub const DISCONNECTED: u8 = 5;
}

/// The exit status for the end of a session.
fn close_status(reason: &CloseReason) -> u8 {
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
fn peer_close_status(reason: &PeerCloseReason) -> u8 {
    match reason {
        PeerCloseReason::Left => 0,
        PeerCloseReason::JoinTimedOut | PeerCloseReason::ForeignAnswer => exit::NO_ANSWER,
        PeerCloseReason::Refused(_) | PeerCloseReason::NameConflict => exit::REFUSED,
    }
}

#[derive(Parser, Debug)]
#[command(
    version,
    about = "The icq chat client: chat with everyone on an icq server, or with --listen \
             with peers and no server at all.",
    after_help = "Examples:
  icq-client --name alice                          the server on this machine, port 4000
  icq-client --name bob --server chat.example.org  port 4000 on that host
  icq-client --name carol --server [::1]:4001      an IPv6 address and port
  icq-client --name dan --bell mention             ring only when someone says \"dan\"
  ICQ_NAME=erin ICQ_SERVER=chat.example.org icq-client
                                                   the same options from the environment
  icq-client --name fay --color never --no-bell    no colors, no bell

Peer mode (no server: every peer is the same program, messages go straight to each one):
  icq-client --name alice --listen 0.0.0.0:5000    start a new room
  icq-client --name bob --listen 0.0.0.0:0 --peer 192.168.1.10:5000
                                                   join the room alice's peer is in
  icq-client --name carol --listen 0.0.0.0:0 --peer 192.168.1.11:43210 --bans bans.txt
                                                   join through any member, with a ban file

Type a line and press Enter to send it to everyone. Commands: /list (who is online),
/msg NAME text (private), /me text (an action), /nick NAME, /away [reason], /back, /help,
/exit (or Ctrl-D). Start a message with // to send one beginning with /.
On a terminal, lines arriving while you type appear above your line; Ctrl-C clears the
line, and on an empty line leaves; Up/Down recall what you typed, Tab completes the names of
people online (and commands after /). Names have colors, your own messages are bold,
messages that mention your name are highlighted.

Exit status: 0 after /exit; 1 another error (a host name that does not resolve); 2 bad
arguments; 3 the server (peer mode: the --peer) did not answer the first join, or answered
in another protocol, or you left during an outage before the server was back; 4 the join
was refused (name taken or invalid, address banned, server or room full, a peer's address
given to --server or a server's to --peer) or, in peer mode, another peer took the name at
the same moment; 5 the server ended the session (kicked, banned, closing, timed out)."
)]
struct Args {
    /// Your name in the chat: 1-32 characters, no spaces [default: $USER].
    #[arg(long, env = "ICQ_NAME")]
    name: Option<String>,
    /// The server: HOST, HOST:PORT, IP, IP:PORT or [IPv6]:PORT (port 4000 if omitted).
    #[arg(long, default_value = "localhost:4000", env = "ICQ_SERVER", value_parser = cli::remote_address)]
    server: HostPort,
    /// When an arriving message rings the terminal bell.
    #[arg(long, value_enum, default_value_t = BellMode::All, env = "ICQ_BELL")]
    bell: BellMode,
    /// Never ring the bell: the same as --bell off.
    #[arg(long, env = "ICQ_NO_BELL", value_parser = cli::switch)]
    no_bell: bool,
    /// When to use colors: names in colors, your messages in bold, mentions highlighted.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, env = "ICQ_COLOR")]
    color: ColorChoice,
    /// Peer mode, with no server: receive on this address (IP:PORT, port 0 for any free
    /// one; the first line printed says which). Not with --server.
    #[arg(long, value_name = "ADDR", env = "ICQ_LISTEN", value_parser = cli::listen_address)]
    listen: Option<HostPort>,
    /// Peer mode: join the room of the peer at HOST:PORT (repeat, or separate with commas,
    /// to give others to try in turn). Without it, start a new room.
    #[arg(
        long = "peer",
        value_name = "HOST:PORT",
        env = "ICQ_PEER",
        value_delimiter = ',',
        requires = "listen",
        value_parser = cli::remote_address
    )]
    peers: Vec<HostPort>,
    /// Peer mode: a ban file (as the server's): peers at these addresses are neither heard
    /// nor talked to, and may not join through us. Reloaded when it changes.
    #[arg(long, value_name = "FILE", env = "ICQ_BANS", requires = "listen")]
    bans: Option<PathBuf>,
}

/// The state machine behind the program: a client of a server, or a peer.
enum Core {
    Client(Box<Client>),
    Peer(Box<Peer>),
}

impl Core {
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

    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        match self {
            Core::Client(client) => client.poll_transmit(),
            Core::Peer(peer) => peer.poll_transmit(),
        }
    }

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

/// Peer mode's ban file, checked for changes now and then.
struct BanFile {
    keeper: BanKeeper,
    next_check: Instant,
}

struct Shared {
    socket: UdpSocket,
    core: Mutex<Core>,
    /// Whether destinations must be given as IPv6 (the socket is dual-stack).
    socket_is_v6: bool,
    /// Colors and bell.
    look: ClientLook,
    /// The server (peer mode: the first --peer) as the user wrote it, for messages.
    server_text: String,
    /// Where lines go.
    out: Output,
    /// Who has been seen online, for Tab (only kept up to date on a terminal).
    names: Arc<Mutex<NameBook>>,
    /// Peer mode's ban file, if one was given.
    ban_file: Option<Mutex<BanFile>>,
}

/// Where printed lines go: straight to stdout, or above the line being edited.
enum Output {
    Plain,
    Editor(Printer),
}

impl Output {
    /// Prints lines, in order, each on a line of its own.
    fn lines(&self, lines: &[String]) {
        match self {
            Output::Plain => {
                let mut stdout = io::stdout().lock();
                for line in lines {
                    // stdout gone (the reader closed the pipe): nothing useful left to do.
                    let _ = writeln!(stdout, "{line}");
                }
                let _ = stdout.flush();
            }
            Output::Editor(printer) => {
                for line in lines {
                    printer.print(line.as_str());
                }
            }
        }
    }

    fn line(&self, line: impl Into<String>) {
        self.lines(&[line.into()]);
    }
}

fn main() -> ExitCode {
    let matches = cli::matches_or_exit(PROGRAM, Args::command());
    let args =
        Args::from_arg_matches(&matches).unwrap_or_else(|error| cli::exit_on(PROGRAM, &error));
    // A --server typed next to --listen is a mistake worth saying; ICQ_SERVER left in the
    // environment for the usual server is not.
    if args.listen.is_some() && matches.value_source("server") == Some(ValueSource::CommandLine) {
        cli::usage_error(
            PROGRAM,
            "--server and --listen cannot be used together: --listen runs a peer, with no server",
        );
    }
    match run(args) {
        // `run` only returns on errors: a session ends through `finish`.
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            say_err!("icq-client: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let name = match args.name.clone().or_else(|| std::env::var("USER").ok()) {
        Some(name) => name,
        None => cli::usage_error(
            PROGRAM,
            "no name given: use --name NAME (or set ICQ_NAME or USER)",
        ),
    };
    if let Err(error) = names::validate(&name) {
        cli::usage_error(
            PROGRAM,
            &format!("invalid name '{}': {error}", text::sanitize(&name)),
        );
    }
    let look = ClientLook {
        color: render::use_color_here(args.color, io::stdout().is_terminal()),
        bell: if args.no_bell {
            BellMode::Off
        } else {
            args.bell
        },
    };
    let names = Arc::new(Mutex::new(NameBook::new()));
    let for_tab = Arc::clone(&names);
    let editor = LineEditor::open(Arc::new(move |line: &str, pos: usize| {
        lock_names(&for_tab).complete(line, pos)
    }));
    let (editor, out) = match editor {
        Some((editor, printer)) => (Some(editor), Output::Editor(printer)),
        None => (None, Output::Plain),
    };
    let shared = match &args.listen {
        Some(listen) => start_peer(&args, listen, &name, look, out, names)?,
        None => start_client(&args, &name, look, out, names)?,
    };
    pump(&shared, &mut lock(&shared));

    let for_signals = Arc::clone(&shared);
    ctrlc::set_handler(move || {
        let mut core = lock(&for_signals);
        core.leave(Instant::now());
        pump(&for_signals, &mut core);
    })
    .context("installing the Ctrl-C handler")?;

    let for_receiver = Arc::clone(&shared);
    let receiver = std::thread::Builder::new()
        .name("receiver".into())
        .spawn(move || receive(&for_receiver))
        .context("starting the receiver thread")?;

    let ended = match editor {
        Some(editor) => edit_typing(&shared, editor),
        None => read_typing(&shared),
    };
    // Leave, and let the receiver finish the goodbye and exit the process. `/exit` and
    // Ctrl-D wait a little for lines still queued; the end of piped input waits for all.
    {
        let mut core = lock(&shared);
        match ended {
            Ended::InputClosed => core.leave_after_queue(Instant::now()),
            Ended::Exit => core.leave(Instant::now()),
        }
        pump(&shared, &mut core);
    }
    match receiver.join() {
        Ok(result) => result,
        Err(_) => Err(anyhow!("the receiver thread failed")),
    }
}

/// Opens the socket and starts joining the server given with `--server`.
fn start_client(
    args: &Args,
    name: &str,
    look: ClientLook,
    out: Output,
    names: Arc<Mutex<NameBook>>,
) -> Result<Arc<Shared>> {
    let servers = resolve_server(&args.server)?;
    let socket_is_v6 = servers.iter().any(SocketAddr::is_ipv6);
    let local: SocketAddr = if socket_is_v6 {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        ([0, 0, 0, 0], 0).into()
    };
    let socket = UdpSocket::bind(local).context("opening a UDP socket")?;
    let joining = format!(
        "joining {} as {}...",
        text::sanitize(&args.server.to_string()),
        text::sanitize(name)
    );
    match &out {
        Output::Editor(_) => out.line(look.notice(wall_ms(), &joining)),
        // Not on stdout: scripts and tests read the conversation there, line by line.
        Output::Plain => say_err!("icq-client: {joining}"),
    }
    Ok(Arc::new(Shared {
        socket,
        core: Mutex::new(Core::Client(Box::new(Client::new(
            name,
            servers,
            Instant::now(),
        )))),
        socket_is_v6,
        look,
        server_text: args.server.to_string(),
        out,
        names,
        ban_file: None,
    }))
}

/// Peer mode: binds `--listen`, loads `--bans`, and starts a new room or joins one through
/// the `--peer` addresses. The first line printed says where we listen, port included.
fn start_peer(
    args: &Args,
    listen: &HostPort,
    name: &str,
    look: ClientLook,
    out: Output,
    names: Arc<Mutex<NameBook>>,
) -> Result<Arc<Shared>> {
    let listen_addr = listen
        .to_listen_address()
        .with_context(|| format!("resolving --listen address '{listen}'"))?;
    let socket = UdpSocket::bind(listen_addr)
        .with_context(|| format!("listening on {}", text::sanitize(&listen.to_string())))?;
    let local = socket
        .local_addr()
        .context("reading the socket's address")?;
    let socket_is_v6 = local.is_ipv6();
    let mut contacts = Vec::new();
    for peer in &args.peers {
        let addrs = resolve_server(peer)?;
        // A socket of one family only reaches that family (an IPv6 one reaches both).
        let usable: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|addr| socket_is_v6 || addr.is_ipv4())
            .collect();
        if usable.is_empty() {
            bail!("--peer {peer}: no IPv4 address to reach from an IPv4 --listen address");
        }
        contacts.extend(usable);
    }
    let (bans, ban_file) = match &args.bans {
        Some(path) => {
            // The error names the file already.
            let (keeper, notices) = BanKeeper::open(path)?;
            for notice in &notices {
                say_err!("icq-client: {}", text::sanitize(&notice.to_string()));
            }
            let file = BanFile {
                keeper,
                next_check: Instant::now() + BAN_FILE_CHECK,
            };
            let bans = file.keeper.in_force().clone();
            (bans, Some(Mutex::new(file)))
        }
        None => (BanList::default(), None),
    };
    let now = Instant::now();
    let mut peer = if contacts.is_empty() {
        Peer::new_room(name, PeerConfig::default(), bans, now, wall_ms())
    } else {
        Peer::join(name, contacts, PeerConfig::default(), bans, now, wall_ms())
    };
    peer.set_local_address(local);
    let first_line = if args.peers.is_empty() {
        format!(
            "listening on {local} as {} (new room)",
            text::sanitize(name)
        )
    } else {
        format!(
            "listening on {local} as {}; joining the room through {}...",
            text::sanitize(name),
            text::sanitize(&peer_list(&args.peers))
        )
    };
    // On stdout in every mode: scripts and tests learn the port from it.
    out.line(look.notice(wall_ms(), &first_line));
    Ok(Arc::new(Shared {
        socket,
        core: Mutex::new(Core::Peer(Box::new(peer))),
        socket_is_v6,
        look,
        server_text: args
            .peers
            .first()
            .map(HostPort::to_string)
            .unwrap_or_default(),
        out,
        names,
        ban_file,
    }))
}

/// Resolves `--server` (or a `--peer`) with the system resolver. IPv4 addresses are tried
/// first: the server listens on IPv4 by default, and a name such as `localhost` often
/// resolves to `::1` before `127.0.0.1`.
fn resolve_server(server: &HostPort) -> Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving server address '{server}'"))?
        .collect();
    addrs.sort_by_key(|addr| addr.is_ipv6());
    addrs.dedup();
    if addrs.is_empty() {
        bail!("server address '{server}' resolved to no address");
    }
    Ok(addrs)
}

/// `a:1, b:2`.
fn peer_list(peers: &[HostPort]) -> String {
    peers
        .iter()
        .map(HostPort::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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
    match command::parse(line, Side::Client) {
        Ok(Input::Empty) => {}
        Ok(Input::Text(text)) => {
            let mut core = lock(shared);
            core.send_text(now, &text);
            pump(shared, &mut core);
        }
        Ok(Input::Command(Command::Exit)) => return Next::Exit,
        Ok(Input::Command(Command::List)) => {
            let mut core = lock(shared);
            core.request_list(now);
            pump(shared, &mut core);
        }
        Ok(Input::Command(Command::Help)) => {
            shared.out.lines(&command::help_lines(Side::Client));
        }
        Ok(Input::Command(Command::Msg { to, text })) => {
            let mut core = lock(shared);
            match &mut *core {
                Core::Peer(peer) => {
                    if let Err(error) = peer.send_private(now, &to, &text) {
                        shared.out.line(error.to_string());
                    }
                }
                Core::Client(client) => client.send_private(now, &to, &text),
            }
            pump(shared, &mut core);
        }
        Ok(Input::Command(Command::Me { text })) => {
            let mut core = lock(shared);
            core.send_action(now, &text);
            pump(shared, &mut core);
        }
        Ok(Input::Command(Command::Nick { name })) => {
            let mut core = lock(shared);
            if let Err(refusal) = core.rename(now, &name) {
                shared.out.line(refusal);
            }
            pump(shared, &mut core);
        }
        Ok(Input::Command(Command::Away { reason })) => {
            let reason = reason.as_deref().unwrap_or(AWAY_WITHOUT_REASON);
            let mut core = lock(shared);
            core.set_away(now, Some(reason));
            pump(shared, &mut core);
        }
        Ok(Input::Command(Command::Back)) => {
            let mut core = lock(shared);
            core.set_away(now, None);
            pump(shared, &mut core);
        }
        // The parser only gives server commands to the server; nothing to do here.
        Ok(Input::Command(_)) => {}
        Err(error) => shared.out.line(error.to_string()),
    }
    Next::More
}

/// The receiver thread: waits for datagrams and deadlines until the session ends (then the
/// process exits from `finish`).
fn receive(shared: &Shared) -> Result<()> {
    let mut buffer = [0u8; MAX_DATAGRAM + 1];
    loop {
        reload_bans_if_changed(shared);
        let deadline = lock(shared).poll_timeout();
        let now = Instant::now();
        let wait = deadline
            .map_or(MAX_WAIT, |d| d.saturating_duration_since(now).min(MAX_WAIT))
            .max(Duration::from_millis(1));
        shared
            .socket
            .set_read_timeout(Some(wait))
            .context("setting the socket's read timeout")?;
        let received = shared.socket.recv_from(&mut buffer);
        let mut core = lock(shared);
        let now = Instant::now();
        if let Ok((len, from)) = received {
            core.handle_datagram(now, from, &buffer[..len]);
        }
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        pump(shared, &mut core);
    }
}

/// Peer mode: puts the ban file in force again when it changed on disk (checked every
/// [`BAN_FILE_CHECK`]).
fn reload_bans_if_changed(shared: &Shared) {
    let Some(file) = &shared.ban_file else {
        return;
    };
    let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let now = Instant::now();
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
        && let Core::Peer(peer) = &mut *lock(shared)
    {
        peer.set_ban_list(now, file.keeper.in_force().clone());
    }
    for notice in &polled.notices {
        let text = text::sanitize(&notice.to_string()).into_owned();
        match notice {
            BanNotice::Warning { .. } => say_err!("icq-client: {text}"),
            _ => shared.out.line(shared.look.notice(wall_ms(), &text)),
        }
    }
}

/// Sends what the core queued and prints what it has to say; ends the process when the
/// session is over.
fn pump(shared: &Shared, core: &mut Core) {
    while let Some((destination, payload)) = core.poll_transmit() {
        let destination = if shared.socket_is_v6 {
            as_ipv6(destination)
        } else {
            destination
        };
        // Lost like any UDP datagram if this fails; the client's timers retry what matters.
        let _ = shared.socket.send_to(&payload, destination);
    }
    let now_ms = wall_ms();
    let mut lines = Vec::new();
    match core {
        Core::Client(client) => {
            while let Some(event) = client.poll_event() {
                if let ClientEvent::Closed(reason) = event {
                    shared.out.lines(&lines);
                    let text = render::close_text(&reason, &server_shown(shared, client.server()));
                    finish(shared, &text, reason.is_failure(), close_status(&reason));
                }
                observe_presence(shared, &event.presence());
                if let Some(line) = shared.look.client_line(&event, now_ms, client.name()) {
                    lines.push(line);
                }
            }
        }
        Core::Peer(peer) => {
            while let Some(event) = peer.poll_event() {
                if let PeerEvent::Closed(reason) = event {
                    shared.out.lines(&lines);
                    let contact = peer
                        .contact()
                        .map_or(String::new(), |addr| server_shown(shared, addr));
                    let text = render::peer_close_text(&reason, &contact, peer.name());
                    finish(
                        shared,
                        &text,
                        reason.is_failure(),
                        peer_close_status(&reason),
                    );
                }
                observe_presence(shared, &event.presence());
                lines.extend(shared.look.peer_lines(&event, now_ms, peer.name()));
            }
        }
    }
    shared.out.lines(&lines);
}

/// Tab completion learns who is online from the typed presence news of either role.
fn observe_presence(shared: &Shared, news: &[Presence]) {
    if news.is_empty() || !matches!(shared.out, Output::Editor(_)) {
        return;
    }
    let mut book = lock_names(&shared.names);
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

fn finish(shared: &Shared, text: &str, failure: bool, status: u8) -> ! {
    // On stdout with the conversation, and on stderr too when it is an error, where
    // someone who redirected the conversation (or only the errors) still sees it.
    let line = shared.look.farewell(wall_ms(), text, failure);
    match &shared.out {
        Output::Plain => {
            say!("{line}");
            let _ = io::stdout().flush();
            if failure {
                say_err!("icq-client: {text}");
            }
        }
        Output::Editor(printer) => {
            printer.finish(&line);
            // On a terminal the line above already says it; a copy only helps elsewhere.
            if failure && !io::stderr().is_terminal() {
                say_err!("icq-client: {text}");
            }
        }
    }
    std::process::exit(i32::from(status));
}

/// A dual-stack IPv6 socket reaches IPv4 peers through IPv4-mapped addresses.
fn as_ipv6(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0).into(),
        v6 => v6,
    }
}

fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn lock_names(names: &Mutex<NameBook>) -> MutexGuard<'_, NameBook> {
    names
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock(shared: &Shared) -> MutexGuard<'_, Core> {
    shared
        .core
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
