//! `icq-server`: wires the server state machine to a UDP socket, the console and the ban file.
//!
//! Three threads share the state machine behind a mutex: the main thread receives datagrams
//! (with a read timeout set to the core's next deadline, so timers fire without a busy
//! loop); the console thread reads the operator's lines; the bans thread looks at the ban
//! file and writes it (file work can wait on a lock or on an editor, so it never holds up
//! the socket). Every rule lives in `icq::server` and `icq::bans::keeper`; this file only moves
//! bytes and prints.
//!
//! When stdin and stdout are a terminal, the console reads through the client's line editor
//! (`icq::terminal`: history, Tab completion of commands and of the names online from
//! `icq::completion`) and the log goes through its printer, above the line being typed;
//! otherwise (a daemon, stdin at /dev/null, pipes) it reads plain lines.
//!
//! Everything printed that may carry text from outside (names, messages, the ban file,
//! errors that quote what was typed) goes through `text::sanitize`; on a terminal, chat
//! lines color the sender's name and other events are dimmed (`icq::render`).

use std::io::{self, IsTerminal};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser};

use icq::bans::file::{Edit, RealTime};
use icq::bans::keeper::{self, BanKeeper, BanNotice};
use icq::cli::{self, HostPort};
use icq::command::{self, Command, Input, Side};
use icq::completion;
use icq::proto::flood::FloodLimit;
use icq::server::{Server, ServerConfig};

use batch::Io;
use icq::render::{self, ColorChoice};
use icq::terminal::{self, LineEditor, Typed};
use icq::text;
use icq::wire::MAX_DATAGRAM;

/// `println!` through the log buffer, flushed at once: for the console's answers and the
/// server's own notices. Shrugs off a closed stdout (`icq-server | head`): the log reader
/// went away, which is no reason to stop serving, let alone to panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        log::line(format_args!($($arg)*));
        log::flush();
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
const PROGRAM: &str = "icq-server";

/// What the console's line editor shows before the line being typed.
const PROMPT: &str = "> ";

/// How often the ban file is checked for hand edits (and malloc's free memory returned).
const BAN_FILE_CHECK: Duration = Duration::from_secs(1);

/// After `/exit`, how long the server keeps repeating its farewell to clients that have not
/// acknowledged it yet before the process ends.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Whether the console uses color. Decided once from the options before any thread starts,
/// then read wherever a line is printed (a global rather than one more argument threaded
/// through every function that logs).
static COLOR: OnceLock<bool> = OnceLock::new();

#[derive(Parser, Debug)]
#[command(
    version,
    about = "The icq chat server: relays every message to every connected client over UDP.",
    after_help = "Examples:
  icq-server                                   listen on 0.0.0.0:4000
  icq-server --bind [::]:4000 --guests         IPv6 too, and let `nc -u HOST 4000` join
  icq-server --bind 127.0.0.1:0 --timeout 5    a free local port (printed at start)
  icq-server --flood-rate 0 --max-clients 50   no flood limit, at most 50 clients
  icq-server --max-per-ip 0 --flood-kick 0     a class behind one NAT; never kick
  ICQ_BIND=4001 ICQ_BANS=/etc/icq/bans.txt icq-server < /dev/null > icq.log
                                               options from the environment, as a daemon

Console commands (type them while it runs): /list, /msg NAME text, /ban ADDR|NAME,
/unban ADDR, /kick NAME, /exit, /help. Any other line is broadcast as from `server`.
On a terminal the console has a line editor: the log appears above the line being typed,
Up/Down recall lines, Tab completes commands and the names online, Ctrl-C clears the line
(on an empty line it closes the server, as /exit does), Ctrl-D ends console input."
)]
struct Args {
    /// Address to listen on: IP:PORT, HOST:PORT, IP or HOST (port 4000), or just PORT (all
    /// IPv4 interfaces); port 0 for any free one (printed at start).
    #[arg(long, default_value = "0.0.0.0:4000", env = "ICQ_BIND", value_parser = cli::bind_address)]
    bind: HostPort,
    /// Ban list file: one address or CIDR range per line; `#` comments.
    #[arg(long, default_value = "banned_ips.txt", env = "ICQ_BANS")]
    bans: PathBuf,
    /// Messages per second each client may send on average (0 = no limit).
    #[arg(long, default_value_t = 5.0, env = "ICQ_FLOOD_RATE")]
    flood_rate: f64,
    /// Messages a client may send in one burst.
    #[arg(long, default_value_t = 10, env = "ICQ_FLOOD_BURST")]
    flood_burst: u32,
    /// Seconds of silence after which a client is dropped (fractions allowed).
    #[arg(long, default_value_t = 30.0, env = "ICQ_TIMEOUT")]
    timeout: f64,
    /// Accept plain-text UDP clients (e.g. `nc -u`) as guests named after their address.
    #[arg(long, env = "ICQ_GUESTS", value_parser = cli::switch)]
    guests: bool,
    /// The most clients served at once.
    #[arg(long, default_value_t = 1024, env = "ICQ_MAX_CLIENTS")]
    max_clients: usize,
    /// The most clients served at once from one IP address (0 = no limit, e.g. for a
    /// classroom behind one NAT).
    #[arg(long, default_value_t = 16, env = "ICQ_MAX_PER_IP")]
    max_per_ip: usize,
    /// Kick a client warned this many times within a minute for sending too fast (0 = never
    /// kick, only drop and warn).
    #[arg(long, default_value_t = 3, env = "ICQ_FLOOD_KICK")]
    flood_kick: u32,
    /// When to use colors on the console: names in colors, other events dimmed.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, env = "ICQ_COLOR")]
    color: ColorChoice,
}

/// What the threads share. Lock order: `bans` before `state`.
struct Shared {
    socket: UdpSocket,
    /// The bans in force and the ban file; held while the file is read or written.
    bans: Mutex<BanKeeper>,
    state: Mutex<State>,
}

struct State {
    server: Server,
    /// Set by `/exit` or a signal: the process ends once every client has acknowledged the
    /// farewell, or at this instant.
    closing_deadline: Option<Instant>,
}

fn main() -> ExitCode {
    let matches = cli::matches_or_exit(PROGRAM, Args::command());
    let args =
        Args::from_arg_matches(&matches).unwrap_or_else(|error| cli::exit_on(PROGRAM, &error));
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            say_err!("icq-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let _ = COLOR.set(render::use_color_here(
        args.color,
        io::stdout().is_terminal(),
    ));
    let config = config_from(&args).unwrap_or_else(|error| cli::usage_error(PROGRAM, error));
    let bind = args
        .bind
        .to_listen_address()
        .with_context(|| format!("resolving --bind '{}'", args.bind))?;
    // The error names the file already.
    let (keeper, notices) = BanKeeper::open(&args.bans)?;
    print_ban_notices(&notices);
    let bans = keeper.in_force().clone();
    let socket =
        UdpSocket::bind(bind).with_context(|| format!("listening on UDP address {bind}"))?;
    let local = socket.local_addr().context("reading the bound address")?;
    batch::enlarge_receive_buffer(&socket);

    let now = Instant::now();
    let guests = if config.guests { "on" } else { "off" };
    log_notice(&format!(
        "listening on {local} (ban list {}: {}; guests {guests}; timeout {:?})",
        args.bans.display(),
        keeper::entries_text(bans.len()),
        config.timeout
    ));
    let mut server = Server::new(config, bans, now, wall_ms());
    server.set_local_address(local);
    let shared = Arc::new(Shared {
        socket,
        bans: Mutex::new(keeper),
        state: Mutex::new(State {
            server,
            closing_deadline: None,
        }),
    });

    let for_signals = Arc::clone(&shared);
    ctrlc::set_handler(move || shut_down(&for_signals))
        .context("installing the SIGINT/SIGTERM handler")?;
    let editor = open_editor(&shared);
    let for_console = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || console(&for_console, editor))
        .context("starting the console thread")?;
    let for_bans = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("bans".into())
        .spawn(move || watch_bans(&for_bans))
        .context("starting the ban file thread")?;

    serve(&shared)
}

/// The core's settings from the options, or what is wrong with them.
fn config_from(args: &Args) -> Result<ServerConfig, &'static str> {
    if !(args.flood_rate.is_finite() && args.flood_rate >= 0.0) {
        return Err("--flood-rate must be a number of messages per second, 0 or more");
    }
    // Clients send a heartbeat every third of the timeout, and never more often than every
    // 50 ms; below 0.3 s a live client could not keep up.
    if !(args.timeout.is_finite() && args.timeout >= 0.3 && args.timeout <= 86_400.0) {
        return Err("--timeout must be a number of seconds between 0.3 and 86400");
    }
    if args.max_clients == 0 {
        return Err("--max-clients must be at least 1");
    }
    Ok(ServerConfig {
        flood_limit: FloodLimit::from_options(args.flood_rate, args.flood_burst),
        timeout: Duration::from_secs_f64(args.timeout),
        guests: args.guests,
        max_clients: args.max_clients,
        max_per_ip: (args.max_per_ip > 0).then_some(args.max_per_ip),
        flood_kick: (args.flood_kick > 0).then_some(args.flood_kick),
        utc_offset: render::local_offset(wall_ms()),
        ..ServerConfig::default()
    })
}

/// The receive loop: runs until the process exits.
///
/// It takes every datagram already waiting (a batch per system call where the platform
/// allows), hands them to the core, sends what the core queued, and goes on while datagrams
/// keep coming. Only when none is pending does it print the log, run due timers and block
/// (until a datagram comes or the core's next deadline). So a busy server writes its log in
/// large chunks, one system call per many lines, while on a quiet one each line still
/// appears at once. Timers also run between batches when due, so a server that is never
/// idle still evicts silent clients and retransmits.
fn serve(shared: &Shared) -> Result<()> {
    let mut io = Io::new();
    let mut next_ban_check = Instant::now() + BAN_FILE_CHECK;
    let mut wait = None;
    let local_port = local_port(shared);
    loop {
        let count = io.receive(&shared.socket, wait);
        let now = Instant::now();
        let mut state = lock(shared);
        for index in 0..count {
            let (datagram, from) = io.datagram(index);
            // The empty datagram `shut_down` sends itself only wakes this loop.
            if datagram.is_empty() && state.closing_deadline.is_some() && from.port() == local_port
            {
                continue;
            }
            state.server.handle_datagram(now, from, datagram);
        }
        // A full batch means more is waiting: the core then puts heartbeats and
        // acknowledgements before joins, and blames nobody for silence meanwhile.
        state
            .server
            .handle_loop_report(now, batch::fell_behind(count));
        if state.server.poll_timeout().is_some_and(|t| t <= now) {
            state.server.handle_timeout(now);
        }
        if now >= next_ban_check {
            next_ban_check = now + BAN_FILE_CHECK;
            // Guests' clocks follow the local zone into and out of daylight saving time.
            state.server.set_utc_offset(render::local_offset(wall_ms()));
            batch::return_free_memory(now);
        }
        io.send(&shared.socket, &mut state.server);
        queue_events(&mut state.server);
        if let Some(closing_deadline) = state.closing_deadline
            && (!state.server.farewells_pending() || now >= closing_deadline)
        {
            log::finish();
            std::process::exit(0);
        }
        if count > 0 {
            // Maybe more is waiting: look without blocking before anything else.
            wait = None;
            log::flush_if_large();
            continue;
        }
        // Idle: the log goes out now, then wait for the next datagram or deadline.
        log::flush();
        let deadline = state
            .server
            .poll_timeout()
            .map_or(next_ban_check, |t| t.min(next_ban_check));
        let deadline = state.closing_deadline.map_or(deadline, |c| c.min(deadline));
        wait = Some(deadline.saturating_duration_since(Instant::now()));
    }
}

/// The bans thread: puts hand edits of the ban file in force (a file being written is read
/// again once it settles) and writes what waits to be written, until the process ends.
fn watch_bans(shared: &Shared) {
    loop {
        let next = {
            let mut keeper = lock_bans(shared);
            let polled = keeper.poll(Instant::now());
            // The cause (the file changed) is printed before its effects (disconnections).
            print_ban_notices(&polled.notices);
            if polled.changed {
                put_in_force(shared, &keeper);
            }
            if polled.save_due {
                let notices = keeper.save(&mut RealTime);
                put_in_force(shared, &keeper);
                print_ban_notices(&notices);
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
    let mut state = lock(shared);
    state.server.set_ban_list(Instant::now(), list);
    flush(shared, &mut state.server);
}

/// Sends every queued datagram and prints every queued event, one datagram per system call:
/// for the console thread's rare commands (the receive loop sends in batches, [`Io::send`]).
fn flush(shared: &Shared, server: &mut Server) {
    let mut datagram = Vec::with_capacity(MAX_DATAGRAM);
    while let Some(transmit) = server.poll_transmit() {
        transmit.write_to(&mut datagram);
        // A failed send concerns one recipient (unreachable, buffer full); UDP makes no
        // promise anyway, so the broadcast goes on to the others (and a sequenced frame is
        // sent again later).
        let _ = shared.socket.send_to(&datagram, transmit.destination);
    }
    queue_events(server);
    log::flush();
}

/// Moves the core's events into the log buffer (not yet to stdout).
fn queue_events(server: &mut Server) {
    while let Some(event) = server.poll_event() {
        log::event(&event, color());
    }
}

/// On a terminal, opens the line editor for the console and sends the log through its
/// printer from now on; `None` elsewhere (plain lines). Tab completes the console's
/// commands and the names of the clients online now.
fn open_editor(shared: &Arc<Shared>) -> Option<LineEditor> {
    let for_tab = Arc::clone(shared);
    let (editor, printer) = LineEditor::open(Arc::new(move |line: &str, pos: usize| {
        let clients = lock(&for_tab).server.clients(Instant::now());
        let names = clients.iter().map(|client| client.name.as_str());
        completion::complete(line, pos, Side::Server, names)
    }))?;
    log::print_through(printer);
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
    log_notice("console input closed; still serving (stop with SIGINT or SIGTERM)");
}

/// Carries out one line typed on the console.
fn console_line(shared: &Shared, line: &str) {
    match command::parse(line, Side::Server) {
        Ok(Input::Empty) => {}
        Ok(Input::Text(text)) => {
            let mut state = lock(shared);
            state.server.say(Instant::now(), &text);
            flush(shared, &mut state.server);
        }
        Ok(Input::Command(command)) => run_command(shared, command),
        Err(error) => say!("{}", text::sanitize(&error.to_string())),
    }
}

fn run_command(shared: &Shared, command: Command) {
    let now = Instant::now();
    match command {
        Command::Help => {
            for line in command::help_lines(Side::Server) {
                say!("{line}");
            }
        }
        Command::Exit => shut_down(shared),
        Command::List => print_clients(&lock(shared).server, now),
        Command::Kick { name } => {
            let mut state = lock(shared);
            if let Err(error) = state.server.kick(now, &name) {
                say!("{}", text::sanitize(&error.to_string()));
            }
            flush(shared, &mut state.server);
        }
        Command::Ban { target } => ban(shared, &target),
        Command::Unban { target } => unban(shared, &target),
        Command::Msg { to, text } => {
            let mut state = lock(shared);
            if let Err(error) = state.server.say_privately(now, &to, &text) {
                say!("{}", text::sanitize(&error.to_string()));
            }
            flush(shared, &mut state.server);
        }
        // The parser only gives client commands to clients.
        Command::Me { .. } | Command::Nick { .. } | Command::Away { .. } | Command::Back => {}
    }
}

fn print_clients(server: &Server, now: Instant) {
    let clients = server.clients(now);
    if clients.is_empty() {
        say!("no clients online");
        return;
    }
    say!("{} client(s) online:", clients.len());
    let name_width = clients
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    let addr_width = clients
        .iter()
        .map(|c| c.addr.to_string().len())
        .max()
        .unwrap_or(0);
    for client in clients {
        say!(
            "  {:<name_width$}  {:<addr_width$}  connected {:>7}  idle {:>7}{}",
            text::sanitize(&client.name),
            client.addr.to_string(),
            text::duration(client.connected_for),
            text::duration(client.idle_for),
            if client.guest { "  (guest)" } else { "" },
        );
        if let Some(reason) = client.away {
            say!("      away: {}", text::sanitize(&reason));
        }
    }
}

/// `/ban TARGET`: in force at once (clients at the address are disconnected before the file
/// is touched), then saved; if it cannot be saved it stays in force until the server stops.
fn ban(shared: &Shared, target: &str) {
    let net = match lock(shared).server.ban_target(target) {
        Ok(net) => net,
        Err(error) => {
            return say!(
                "{}",
                text::sanitize(&format!("cannot ban '{target}': {error}"))
            );
        }
    };
    let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M");
    let comment = if net.to_string() == target {
        format!("/ban on {stamp}")
    } else {
        format!("/ban {target} on {stamp}")
    };
    change_bans(shared, Edit::Ban { net, comment });
}

/// `/unban ADDR`: lifted at once, then saved (see `BanKeeper`).
fn unban(shared: &Shared, target: &str) {
    match target.parse() {
        Ok(net) => change_bans(shared, Edit::Unban { net }),
        Err(error) => say!("{}", text::sanitize(&format!("cannot unban: {error}"))),
    }
}

fn change_bans(shared: &Shared, edit: Edit) {
    let mut keeper = lock_bans(shared);
    keeper.stage(edit);
    put_in_force(shared, &keeper);
    let notices = keeper.save(&mut RealTime);
    put_in_force(shared, &keeper);
    print_ban_notices(&notices);
}

/// Tells every client the server is closing; the receive loop ends the process with success
/// once they have all acknowledged (or [`SHUTDOWN_GRACE`] has passed).
fn shut_down(shared: &Shared) {
    let mut state = lock(shared);
    if state.closing_deadline.is_some() {
        return;
    }
    let now = Instant::now();
    state.server.shutdown(now);
    state.closing_deadline = Some(now + SHUTDOWN_GRACE);
    flush(shared, &mut state.server);
    // Wake the receive loop at once, so it notices even if no client answers.
    if let Ok(local) = shared.socket.local_addr() {
        let _ = shared.socket.send_to(&[], loopback_of(local));
    }
}

fn local_port(shared: &Shared) -> u16 {
    shared.socket.local_addr().map_or(0, |a| a.port())
}

/// An address of this machine at which the socket bound to `local` can be reached.
fn loopback_of(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        ip if !ip.is_unspecified() => local,
        std::net::IpAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], local.port())),
        std::net::IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, local.port())),
    }
}

/// Prints what the ban keeper has to say: bad lines of the file on stderr, the rest as
/// notices. Everything quoted from the file or typed goes through `sanitize`.
fn print_ban_notices(notices: &[BanNotice]) {
    for notice in notices {
        let text = text::sanitize(&notice.to_string()).into_owned();
        match notice {
            BanNotice::Warning { .. } => log::warning(format_args!("icq-server: warning: {text}")),
            _ => log_notice(&text),
        }
    }
}

fn log_notice(text: &str) {
    say!("{}", render::server_notice(wall_ms(), text, color()));
}

fn color() -> bool {
    COLOR.get().copied().unwrap_or(false)
}

fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Locks the ban keeper (before `state`, never after).
fn lock_bans(shared: &Shared) -> MutexGuard<'_, BanKeeper> {
    shared
        .bans
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Locks the shared state. A panic while holding the lock would be a bug; serving on with
/// the state as it is beats taking the whole chat down, so a poisoned lock is used anyway.
fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The console log. Lines gather in one buffer and go to stdout in one write: the receive
/// loop flushes when the socket is idle (so on a quiet server a line appears at once), or
/// when the buffer grows past [`log::FLUSH_AT`] under sustained load; everything else
/// flushes right after its line. Writing each chat line with its own system call cost as
/// much as delivering it to a few clients.
///
/// With the console's line editor, the buffer goes to the editor's printer instead of
/// straight to stdout, so it appears above the line the operator is typing.
mod log {
    use std::fmt;
    use std::io::{IsTerminal as _, Write as _};
    use std::sync::{Mutex, MutexGuard, OnceLock};

    use icq::render;
    use icq::server::ServerEvent;
    use icq::terminal::Printer;
    use icq::text::ClockText;

    /// The line editor's printer, once the console has one.
    static PRINTER: OnceLock<Printer> = OnceLock::new();

    /// From now on, the log goes through `printer`.
    pub fn print_through(printer: Printer) {
        flush();
        let _ = PRINTER.set(printer);
    }

    /// Past this many bytes the buffer is written even though datagrams keep coming: it
    /// bounds the buffer's memory and keeps the log moving on a server that is never idle
    /// (about a thousand chat lines).
    pub const FLUSH_AT: usize = 64 * 1024;

    struct Log {
        buffer: Vec<u8>,
        clock: ClockText,
    }

    static LOG: Mutex<Log> = Mutex::new(Log {
        buffer: Vec::new(),
        clock: ClockText::at(icq::text::UTC),
    });

    fn lock() -> MutexGuard<'static, Log> {
        LOG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds one line (a newline is appended).
    pub fn line(args: fmt::Arguments<'_>) {
        let mut log = lock();
        let _ = log.buffer.write_fmt(args);
        log.buffer.push(b'\n');
    }

    /// Adds the line for one of the core's events ([`render::push_server_line`]: a chat
    /// line with a clock formatted once a second, the one event a busy server logs
    /// thousands of times a second).
    pub fn event(event: &ServerEvent, color: bool) {
        let mut log = lock();
        let Log { buffer, clock } = &mut *log;
        render::push_server_line(buffer, clock, event, color);
    }

    /// Writes the buffer to stdout. A closed stdout (`icq-server | head`) is no reason to
    /// stop serving, let alone to panic: what could not be written is dropped.
    pub fn flush() {
        let mut log = lock();
        if log.buffer.is_empty() {
            return;
        }
        match PRINTER.get() {
            Some(printer) => {
                let text = String::from_utf8_lossy(&log.buffer);
                printer.print(text.strip_suffix('\n').unwrap_or(&text));
            }
            None => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&log.buffer);
                let _ = stdout.flush();
            }
        }
        log.buffer.clear();
    }

    /// For the process about to exit: writes the buffer, and gives the terminal back as it
    /// was if the line editor had it.
    pub fn finish() {
        flush();
        if let Some(printer) = PRINTER.get() {
            printer.finish("");
        }
    }

    /// A warning for stderr. While the line editor holds the terminal that stderr also
    /// writes to, the warning goes through the printer, so it does not garble the line
    /// being typed.
    pub fn warning(args: fmt::Arguments<'_>) {
        if PRINTER.get().is_some() && std::io::stderr().is_terminal() {
            line(args);
            flush();
        } else {
            let _ = writeln!(std::io::stderr(), "{args}");
        }
    }

    /// [`flush`] if the buffer has grown past [`FLUSH_AT`].
    pub fn flush_if_large() {
        if lock().buffer.len() >= FLUSH_AT {
            flush();
        }
    }
}

/// The server's socket I/O on Linux: `recvmmsg` takes every waiting datagram (up to
/// [`batch::RECV_BATCH`]) in one system call without blocking, `poll` waits when none is
/// waiting, and `sendmmsg` sends up to [`batch::SEND_BATCH`] datagrams per call. A
/// sequenced datagram goes out as two pieces (its own header and envelope, then the shared
/// payload), so the broadcast payload is never copied per recipient.
///
/// Measured with `../shared/perf/run.sh` (guest mode, 10 and 100 clients), batching cut the
/// server's CPU per delivery by about a tenth, like the kit's `limit_mmsg` against
/// `limit_server`: the kernel's work per datagram stays, the system call around it goes.
#[cfg(target_os = "linux")]
mod batch {
    use std::mem;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::ptr;
    use std::time::{Duration, Instant};

    use icq::server::{Server, Transmit};
    use icq::wire::ENVELOPE_RANGE;

    /// Datagrams taken per `recvmmsg`.
    pub const RECV_BATCH: usize = 32;

    /// Whether a receive of `count` datagrams filled the batch: more are probably waiting,
    /// the loop is not keeping up.
    pub fn fell_behind(count: usize) -> bool {
        count >= RECV_BATCH
    }
    /// Datagrams sent per `sendmmsg` (the kernel accepts up to 1024).
    pub const SEND_BATCH: usize = 256;
    /// Large enough for any UDP datagram, so an oversized one is seen whole and rejected by
    /// the decoder instead of silently truncated into something that might parse. Pages of
    /// it that no datagram reached are never touched, so they cost no memory.
    const RECEIVE_BUFFER: usize = 65_536;
    /// A sequenced datagram's own first bytes: the header and its envelope.
    const HEAD: usize = ENVELOPE_RANGE.end;

    /// The socket's receive buffer is asked for this size (the kernel caps it at
    /// `net.core.rmem_max`). The default (208 KiB on Linux) holds a few hundred small
    /// datagrams: with a thousand named clients, the acknowledgements they send after one
    /// burst of broadcasts overflowed it, and every lost acknowledgement cost
    /// retransmissions (measured by `benches/fanout.rs`, 1 000 clients: 210 000 drops and
    /// 2.6 datagrams sent per delivery). Memory is only used while datagrams wait.
    const RECEIVE_BUFFER_BYTES: libc::c_int = 4 << 20;

    /// Asks for a receive buffer of [`RECEIVE_BUFFER_BYTES`]; a smaller one still works.
    pub fn enlarge_receive_buffer(socket: &UdpSocket) {
        let size = RECEIVE_BUFFER_BYTES;
        // SAFETY: a valid socket, option and option value of the size given.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw const size).cast(),
                mem::size_of::<libc::c_int>() as u32,
            );
        }
    }

    /// Gives the memory malloc holds free back to the system, every
    /// [`TRIM_PERIOD`] at most (called about once a second). A join storm or a burst of
    /// broadcasts to thousands of clients fills their outboxes for a moment; the core frees
    /// that memory once acknowledged (and idle outboxes entirely), but glibc's malloc keeps
    /// freed blocks inside its heap, so the process would stay at its peak size.
    /// benches/fanout.rs, 2 000 idle clients: resident memory 18.7 MB without, see the
    /// commit for with. Trimming walks malloc's free lists: well under a millisecond here.
    pub fn return_free_memory(now: Instant) {
        #[cfg(target_env = "gnu")]
        {
            use std::sync::Mutex;
            static NEXT: Mutex<Option<Instant>> = Mutex::new(None);
            let mut next = NEXT.lock().unwrap_or_else(|p| p.into_inner());
            if next.is_none_or(|next| now >= next) {
                *next = Some(now + TRIM_PERIOD);
                // SAFETY: malloc_trim has no preconditions.
                unsafe { libc::malloc_trim(0) };
            }
        }
        #[cfg(not(target_env = "gnu"))]
        let _ = now;
    }

    /// See [`return_free_memory`].
    const TRIM_PERIOD: Duration = Duration::from_secs(10);

    /// Buffers reused by every call, so the loop allocates nothing once warm.
    pub struct Io {
        buffers: Vec<u8>,
        names: Vec<libc::sockaddr_storage>,
        iovecs: Vec<libc::iovec>,
        headers: Vec<libc::mmsghdr>,
        received: Vec<(usize, SocketAddr)>,
        pending: Vec<Transmit>,
        heads: Vec<[u8; HEAD]>,
    }

    impl Io {
        pub fn new() -> Io {
            let slots = RECV_BATCH.max(SEND_BATCH);
            Io {
                buffers: vec![0; RECV_BATCH * RECEIVE_BUFFER],
                // SAFETY: all-zero bytes are a valid value of these plain C structs.
                names: vec![unsafe { mem::zeroed() }; slots],
                iovecs: vec![unsafe { mem::zeroed() }; 2 * slots],
                headers: vec![unsafe { mem::zeroed() }; slots],
                received: Vec::with_capacity(RECV_BATCH),
                pending: Vec::with_capacity(SEND_BATCH),
                heads: vec![[0; HEAD]; SEND_BATCH],
            }
        }

        /// Takes the datagrams waiting on `socket`; with `wait`, first waits up to that long
        /// for one to come. Returns how many were taken (0 after a timeout, or an error,
        /// which with UDP concerns one peer, not the server).
        pub fn receive(&mut self, socket: &UdpSocket, wait: Option<Duration>) -> usize {
            self.received.clear();
            let fd = socket.as_raw_fd();
            if let Some(wait) = wait {
                // Rounded up to whole milliseconds, so the deadline has passed on return.
                let ms = wait.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
                let mut pollfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, as the count says.
                if unsafe { libc::poll(&mut pollfd, 1, ms) } <= 0 {
                    return 0;
                }
            }
            for slot in 0..RECV_BATCH {
                self.iovecs[slot] = libc::iovec {
                    iov_base: self.buffers[slot * RECEIVE_BUFFER..].as_mut_ptr().cast(),
                    iov_len: RECEIVE_BUFFER,
                };
                let header = &mut self.headers[slot].msg_hdr;
                header.msg_name = ptr::from_mut(&mut self.names[slot]).cast();
                header.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as u32;
                header.msg_iov = &mut self.iovecs[slot];
                header.msg_iovlen = 1;
                header.msg_control = ptr::null_mut();
                header.msg_controllen = 0;
                header.msg_flags = 0;
            }
            // SAFETY: RECV_BATCH headers, each pointing at its own live name and buffer.
            let count = unsafe {
                libc::recvmmsg(
                    fd,
                    self.headers.as_mut_ptr(),
                    RECV_BATCH as u32,
                    libc::MSG_DONTWAIT,
                    ptr::null_mut(),
                )
            };
            for slot in 0..usize::try_from(count).unwrap_or(0) {
                if let Some(from) = socket_addr(&self.names[slot]) {
                    self.received.push((slot, from));
                }
            }
            self.received.len()
        }

        /// The `index`th datagram taken by the last [`Io::receive`].
        pub fn datagram(&self, index: usize) -> (&[u8], SocketAddr) {
            let (slot, from) = self.received[index];
            let len = self.headers[slot].msg_len as usize;
            let start = slot * RECEIVE_BUFFER;
            (&self.buffers[start..start + len.min(RECEIVE_BUFFER)], from)
        }

        /// Sends everything the core has queued, in order.
        pub fn send(&mut self, socket: &UdpSocket, server: &mut Server) {
            loop {
                self.pending.clear();
                while self.pending.len() < SEND_BATCH {
                    match server.poll_transmit() {
                        Some(transmit) => self.pending.push(transmit),
                        None => break,
                    }
                }
                if self.pending.is_empty() {
                    return;
                }
                self.send_pending(socket);
            }
        }

        fn send_pending(&mut self, socket: &UdpSocket) {
            let count = self.pending.len();
            for (slot, transmit) in self.pending.iter().enumerate() {
                let name_len = write_socket_addr(transmit.destination, &mut self.names[slot]);
                let payload = &transmit.payload[..];
                let pieces = match &transmit.envelope {
                    Some(envelope) if payload.len() >= HEAD => {
                        let head = &mut self.heads[slot];
                        head.copy_from_slice(&payload[..HEAD]);
                        envelope.patch(head);
                        self.iovecs[2 * slot] = iovec(head);
                        self.iovecs[2 * slot + 1] = iovec(&payload[HEAD..]);
                        2
                    }
                    _ => {
                        self.iovecs[2 * slot] = iovec(payload);
                        1
                    }
                };
                let header = &mut self.headers[slot].msg_hdr;
                header.msg_name = ptr::from_mut(&mut self.names[slot]).cast();
                header.msg_namelen = name_len;
                header.msg_iov = &mut self.iovecs[2 * slot];
                header.msg_iovlen = pieces;
                header.msg_control = ptr::null_mut();
                header.msg_controllen = 0;
                header.msg_flags = 0;
            }
            let fd = socket.as_raw_fd();
            let mut sent = 0;
            while sent < count {
                // SAFETY: `count - sent` headers from `sent` on, each pointing at its own
                // name and at buffers (heads, payloads held by `pending`) alive until the
                // end of this function.
                let result = unsafe {
                    libc::sendmmsg(
                        fd,
                        self.headers[sent..].as_mut_ptr(),
                        (count - sent) as u32,
                        0,
                    )
                };
                match usize::try_from(result) {
                    Ok(done) if done > 0 => sent += done,
                    // Interrupted by a signal before anything went: try again.
                    _ if std::io::Error::last_os_error().kind()
                        == std::io::ErrorKind::Interrupted => {}
                    // The first datagram failed (unreachable, buffer full): UDP promises
                    // nothing anyway, so skip it and send the rest, as `send_to` would (a
                    // sequenced frame is sent again later).
                    _ => sent += 1,
                }
            }
        }
    }

    fn iovec(bytes: &[u8]) -> libc::iovec {
        libc::iovec {
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        }
    }

    fn socket_addr(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(name.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin = unsafe { &*ptr::from_ref(name).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6 = unsafe { &*ptr::from_ref(name).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let port = u16::from_be(sin6.sin6_port);
                Some(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id).into())
            }
            _ => None,
        }
    }

    fn write_socket_addr(addr: SocketAddr, name: &mut libc::sockaddr_storage) -> u32 {
        match addr {
            SocketAddr::V4(addr) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: addr.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(addr.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for any sockaddr.
                unsafe { ptr::from_mut(name).cast::<libc::sockaddr_in>().write(sin) };
                mem::size_of::<libc::sockaddr_in>() as u32
            }
            SocketAddr::V6(addr) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: addr.port().to_be(),
                    sin6_flowinfo: addr.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: addr.ip().octets(),
                    },
                    sin6_scope_id: addr.scope_id(),
                };
                // SAFETY: as above.
                unsafe { ptr::from_mut(name).cast::<libc::sockaddr_in6>().write(sin6) };
                mem::size_of::<libc::sockaddr_in6>() as u32
            }
        }
    }
}

/// The portable fallback: one datagram per system call, waiting with the socket's read
/// timeout. Never reports a datagram without waiting, so the loop flushes the log after
/// each one.
#[cfg(not(target_os = "linux"))]
mod batch {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};
    use std::time::Duration;

    use icq::server::Server;
    use icq::wire::MAX_DATAGRAM;

    /// See the Linux version.
    const RECEIVE_BUFFER: usize = 65_536;

    /// Keeps the system's default receive buffer.
    pub fn enlarge_receive_buffer(_socket: &UdpSocket) {}

    /// One datagram per call cannot tell a backlog from a quiet socket: never reported.
    pub fn fell_behind(_count: usize) -> bool {
        false
    }

    /// Leaves memory to the system allocator.
    pub fn return_free_memory(_now: std::time::Instant) {}

    pub struct Io {
        buffer: Vec<u8>,
        received: Option<(usize, SocketAddr)>,
        datagram: Vec<u8>,
    }

    impl Io {
        pub fn new() -> Io {
            Io {
                buffer: vec![0; RECEIVE_BUFFER],
                received: None,
                datagram: Vec::with_capacity(MAX_DATAGRAM),
            }
        }

        pub fn receive(&mut self, socket: &UdpSocket, wait: Option<Duration>) -> usize {
            self.received = None;
            let Some(wait) = wait else {
                return 0;
            };
            // A zero timeout means "block forever" to the OS, so never ask for less than 1 ms.
            let wait = wait.max(Duration::from_millis(1));
            if socket.set_read_timeout(Some(wait)).is_err() {
                return 0;
            }
            match socket.recv_from(&mut self.buffer) {
                Ok((len, from)) => {
                    self.received = Some((len, from));
                    1
                }
                // A timeout; or, on some systems, an earlier datagram's ICMP error reported
                // on this receive: it concerns one peer, not the server.
                Err(_) => 0,
            }
        }

        pub fn datagram(&self, _index: usize) -> (&[u8], SocketAddr) {
            let (len, from) = self.received.expect("a datagram was received");
            (&self.buffer[..len], from)
        }

        pub fn send(&mut self, socket: &UdpSocket, server: &mut Server) {
            while let Some(transmit) = server.poll_transmit() {
                transmit.write_to(&mut self.datagram);
                let _: io::Result<usize> = socket.send_to(&self.datagram, transmit.destination);
            }
        }
    }
}
