//! `icq-client`: wires the client state machine to a UDP socket and the terminal.
//!
//! The main thread reads what the user types; a receiver thread waits for datagrams (with a
//! read timeout so the core's timers — join retries, heartbeats — fire on time) and prints
//! what arrives. Both share the state machine behind a mutex. Every rule lives in
//! `icq::client`; this file only moves bytes and prints.
//!
//! On a terminal (stdin and stdout both), typing goes through the line editor of
//! `icq::terminal` and every printed line goes through its printer, so arrivals appear above
//! the line being typed; colors and the bell follow `icq::style`. Otherwise the client
//! reads and prints plain lines, as scripts and tests expect.

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;

use icq::alert::BellMode;
use icq::client::{Client, ClientEvent, CloseReason};
use icq::command::{self, Command, Input, Side};
use icq::completion::NameBook;
use icq::display;
use icq::names;
use icq::server::AWAY_WITHOUT_REASON;
use icq::style::{self, ClientLook, ColorChoice};
use icq::terminal::{LineEditor, Printer, Typed};
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

/// The server port when `--server` names none.
const DEFAULT_PORT: u16 = 4000;

/// What the line editor shows before the line being typed.
const PROMPT: &str = "> ";

/// The receiver wakes at least this often, so timers started by typing (a leave's retries)
/// run on time even though typing happens on the other thread.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// Exit statuses, so scripts can tell failures apart.
mod exit {
    /// The server did not answer the join.
    pub const NO_ANSWER: u8 = 3;
    /// The server refused the join (name taken or invalid, address banned, server full).
    pub const REFUSED: u8 = 4;
    /// The server ended the session (kicked, banned, closing, timed out).
    pub const DISCONNECTED: u8 = 5;
}

#[derive(Parser, Debug)]
#[command(
    version,
    about = "The icq chat client: chat with everyone on an icq server.",
    after_help = "Examples:
  icq-client --name alice                          the server on this machine, port 4000
  icq-client --name bob --server chat.example.org  port 4000 on that host
  icq-client --name carol --server [::1]:4001      an IPv6 address and port
  icq-client --name dan --bell mention             ring only when someone says \"dan\"
  ICQ_NAME=erin ICQ_SERVER=chat.example.org icq-client
                                                   the same options from the environment
  icq-client --name fay --color never --no-bell    no colors, no bell

Type a line and press Enter to send it to everyone. Commands: /list (who is online),
/msg NAME text (private), /me text (an action), /nick NAME, /away [reason], /back, /help,
/exit (or Ctrl-D, Ctrl-C). Start a message with // to send one beginning with /.
On a terminal, lines arriving while you type appear above your line; Up/Down recall what
you typed, Tab completes the names of people online (and commands after /). Names have
colors, your own messages are bold, messages that mention your name are highlighted.

Exit status: 0 after /exit; 2 bad arguments; 3 the server did not answer;
4 the server refused the join (name taken or invalid, address banned, server full);
5 the server ended the session (kicked, banned, closing, timed out)."
)]
struct Args {
    /// Your name in the chat: 1-32 characters, no spaces [default: $USER].
    #[arg(long, env = "ICQ_NAME")]
    name: Option<String>,
    /// The server: HOST, HOST:PORT, IP, IP:PORT or [IPv6]:PORT (port 4000 if omitted).
    #[arg(long, default_value = "localhost:4000", env = "ICQ_SERVER")]
    server: String,
    /// When an arriving message rings the terminal bell.
    #[arg(long, value_enum, default_value_t = BellMode::All, env = "ICQ_BELL")]
    bell: BellMode,
    /// Never ring the bell: the same as --bell off.
    #[arg(long, env = "ICQ_NO_BELL")]
    no_bell: bool,
    /// When to use colors: names in colors, your messages in bold, mentions highlighted.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, env = "ICQ_COLOR")]
    color: ColorChoice,
}

struct Shared {
    socket: UdpSocket,
    client: Mutex<Client>,
    /// Whether destinations must be given as IPv6 (the socket is dual-stack).
    socket_is_v6: bool,
    /// Colors and bell.
    look: ClientLook,
    /// The server as the user wrote it, for messages.
    server_text: String,
    /// Where lines go.
    out: Output,
    /// Who has been seen online, for Tab (only kept up to date on a terminal).
    names: Arc<Mutex<NameBook>>,
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
    let args = Args::parse();
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
    let name = match args.name.or_else(|| std::env::var("USER").ok()) {
        Some(name) => name,
        None => usage_error("no name given: use --name NAME (or set ICQ_NAME or USER)"),
    };
    if let Err(error) = names::validate(&name) {
        usage_error(&format!(
            "invalid name '{}': {error}",
            display::sanitize(&name)
        ));
    }
    let servers = resolve_server(&args.server)?;
    let socket_is_v6 = servers.iter().any(SocketAddr::is_ipv6);
    let local: SocketAddr = if socket_is_v6 {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        ([0, 0, 0, 0], 0).into()
    };
    let socket = UdpSocket::bind(local).context("opening a UDP socket")?;

    let look = ClientLook {
        color: style::use_color_here(args.color, io::stdout().is_terminal()),
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
    let joining = format!(
        "joining {} as {}...",
        display::sanitize(&args.server),
        display::sanitize(&name)
    );
    match &out {
        Output::Editor(_) => out.line(look.notice(wall_ms(), &joining)),
        // Not on stdout: scripts and tests read the conversation there, line by line.
        Output::Plain => say_err!("icq-client: {joining}"),
    }

    let shared = Arc::new(Shared {
        socket,
        client: Mutex::new(Client::new(&name, servers, Instant::now())),
        socket_is_v6,
        look,
        server_text: args.server,
        out,
        names,
    });
    pump(&shared, &mut lock(&shared));

    let for_signals = Arc::clone(&shared);
    ctrlc::set_handler(move || {
        let mut client = lock(&for_signals);
        client.leave(Instant::now());
        pump(&for_signals, &mut client);
    })
    .context("installing the Ctrl-C handler")?;

    let for_receiver = Arc::clone(&shared);
    let receiver = std::thread::Builder::new()
        .name("receiver".into())
        .spawn(move || receive(&for_receiver))
        .context("starting the receiver thread")?;

    match editor {
        Some(editor) => edit_typing(&shared, editor),
        None => read_typing(&shared),
    }
    // End of input: leave, and let the receiver finish the goodbye and exit the process.
    {
        let mut client = lock(&shared);
        client.leave(Instant::now());
        pump(&shared, &mut client);
    }
    match receiver.join() {
        Ok(result) => result,
        Err(_) => Err(anyhow!("the receiver thread failed")),
    }
}

/// Splits `--server` into host and port, then resolves the host with the system resolver.
/// IPv4 addresses are tried first: the server listens on IPv4 by default, and a name such
/// as `localhost` often resolves to `::1` before `127.0.0.1`.
fn resolve_server(server: &str) -> Result<Vec<SocketAddr>> {
    let (host, port) = split_host_port(server)?;
    let mut addrs: Vec<SocketAddr> = (host, port)
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

fn split_host_port(server: &str) -> Result<(&str, u16)> {
    if server.parse::<IpAddr>().is_ok() {
        // A bare address, IPv6 ones included (their colons are not a port separator).
        return Ok((server, DEFAULT_PORT));
    }
    if let Some(rest) = server.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .with_context(|| format!("'{server}': missing ']' after the IPv6 address"))?;
        return match after {
            "" => Ok((host, DEFAULT_PORT)),
            _ => Ok((
                host,
                parse_port(server, after.strip_prefix(':').unwrap_or(after))?,
            )),
        };
    }
    match server.rsplit_once(':') {
        Some((host, port)) => Ok((host, parse_port(server, port)?)),
        None => Ok((server, DEFAULT_PORT)),
    }
}

fn parse_port(server: &str, port: &str) -> Result<u16> {
    port.parse()
        .with_context(|| format!("'{server}': '{port}' is not a port number (1-65535)"))
}

/// Reads typed lines until end of input or `/exit` (plain mode).
fn read_typing(shared: &Shared) {
    let stdin = io::stdin();
    let mut reader = stdin.lock();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if typed(shared, &String::from_utf8_lossy(&raw)) == Next::Exit {
            return;
        }
    }
}

/// Reads typed lines with the line editor until `/exit`, Ctrl-C or Ctrl-D.
fn edit_typing(shared: &Shared, mut editor: LineEditor) {
    loop {
        match editor.read(PROMPT) {
            // A paste of several lines arrives at once: each is a line of its own, as if
            // typed one after the other.
            Typed::Line(text) => {
                for line in text.split('\n') {
                    if typed(shared, line) == Next::Exit {
                        return;
                    }
                }
            }
            Typed::Interrupted | Typed::Eof => return,
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
            let mut client = lock(shared);
            client.send_text(now, &text);
            pump(shared, &mut client);
        }
        Ok(Input::Command(Command::Exit)) => return Next::Exit,
        Ok(Input::Command(Command::List)) => {
            let mut client = lock(shared);
            client.request_list(now);
            pump(shared, &mut client);
        }
        Ok(Input::Command(Command::Help)) => {
            shared.out.lines(&command::help_lines(Side::Client));
        }
        Ok(Input::Command(Command::Msg { to, text })) => {
            let mut client = lock(shared);
            client.send_private(now, &to, &text);
            pump(shared, &mut client);
        }
        Ok(Input::Command(Command::Me { text })) => {
            let mut client = lock(shared);
            client.send_action(now, &text);
            pump(shared, &mut client);
        }
        Ok(Input::Command(Command::Nick { name })) => match names::validate(&name) {
            Ok(()) => {
                let mut client = lock(shared);
                client.rename(now, &name);
                pump(shared, &mut client);
            }
            Err(error) => shared.out.line(format!(
                "cannot rename to {}: {error}",
                display::sanitize(&name)
            )),
        },
        Ok(Input::Command(Command::Away { reason })) => {
            let mut client = lock(shared);
            let reason = reason.as_deref().unwrap_or(AWAY_WITHOUT_REASON);
            client.set_away(now, Some(reason));
            pump(shared, &mut client);
        }
        Ok(Input::Command(Command::Back)) => {
            let mut client = lock(shared);
            client.set_away(now, None);
            pump(shared, &mut client);
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
        let mut client = lock(shared);
        let now = Instant::now();
        if let Ok((len, from)) = received {
            client.handle_datagram(now, from, &buffer[..len]);
        }
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
        pump(shared, &mut client);
    }
}

/// Sends what the client queued and prints what it has to say; ends the process when the
/// session is over.
fn pump(shared: &Shared, client: &mut Client) {
    while let Some((destination, payload)) = client.poll_transmit() {
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
    while let Some(event) = client.poll_event() {
        if let ClientEvent::Closed(reason) = event {
            shared.out.lines(&lines);
            finish(shared, &reason, client.server());
        }
        if matches!(shared.out, Output::Editor(_)) {
            lock_names(&shared.names).observe(&event);
        }
        if let Some(line) = shared.look.client_line(&event, now_ms, client.name()) {
            lines.push(line);
        }
    }
    shared.out.lines(&lines);
}

fn finish(shared: &Shared, reason: &CloseReason, server: SocketAddr) -> ! {
    // "localhost:4000 (127.0.0.1:4000)", but not "127.0.0.1:4000 (127.0.0.1:4000)".
    let shown = if shared.server_text.parse::<SocketAddr>() == Ok(server) {
        server.to_string()
    } else {
        format!("{} ({server})", shared.server_text)
    };
    let text = display::close_text(reason, &shown);
    let status = match reason {
        CloseReason::Left => 0,
        CloseReason::JoinTimedOut => exit::NO_ANSWER,
        CloseReason::Refused(_) => exit::REFUSED,
        CloseReason::Disconnected { .. } => exit::DISCONNECTED,
    };
    // On stdout with the conversation, and on stderr too when it is an error, where
    // someone who redirected the conversation (or only the errors) still sees it.
    let line = shared.look.farewell(wall_ms(), &text, reason.is_failure());
    match &shared.out {
        Output::Plain => {
            say!("{line}");
            let _ = io::stdout().flush();
            if reason.is_failure() {
                say_err!("icq-client: {text}");
            }
        }
        Output::Editor(printer) => {
            printer.finish(&line);
            // On a terminal the line above already says it; a copy only helps elsewhere.
            if reason.is_failure() && !io::stderr().is_terminal() {
                say_err!("icq-client: {text}");
            }
        }
    }
    std::process::exit(i32::from(status));
}

fn usage_error(message: &str) -> ! {
    say_err!("icq-client: {message}");
    std::process::exit(2);
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

fn lock(shared: &Shared) -> MutexGuard<'_, Client> {
    shared
        .client
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
