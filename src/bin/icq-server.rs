//! `icq-server`: wires the server state machine to a UDP socket, the console and the ban file.
//!
//! Two threads share the state machine behind a mutex: the main thread receives datagrams
//! (with a read timeout set to the core's next deadline, so timers fire without a busy
//! loop) and reloads the ban file when it changes; the console thread reads the operator's
//! lines. Every rule lives in `icq::server`; this file only moves bytes and prints.
//!
//! Everything printed that may carry text from outside (names, messages, the ban file,
//! errors that quote what was typed) goes through `display::sanitize`; on a terminal, chat
//! lines color the sender's name and other events are dimmed (`icq::style`).

use std::io::{self, BufRead, IsTerminal};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

use icq::banlist::{self, BanWarning, FileWatch};
use icq::command::{self, Command, Input, Side};
use icq::display;
use icq::ratelimit::FloodLimit;
use icq::server::{Server, ServerConfig};
use icq::style::{self, ColorChoice};
use icq::wire::MAX_DATAGRAM;

/// `println!` that shrugs off a closed stdout (`icq-server | head`): the log reader went away,
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

/// How often the ban file is checked for hand edits.
const BAN_FILE_CHECK: Duration = Duration::from_secs(1);

/// After `/exit`, how long the server keeps repeating its farewell to clients that have not
/// acknowledged it yet before the process ends.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Large enough for any UDP datagram, so an oversized one is seen whole and rejected by the
/// decoder instead of silently truncated into something that might parse.
const RECEIVE_BUFFER: usize = 65_536;

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
/unban ADDR, /kick NAME, /exit, /help. Any other line is broadcast as from `server`."
)]
struct Args {
    /// Address to listen on: IP:PORT, HOST:PORT, or just PORT (all IPv4 interfaces).
    #[arg(long, default_value = "0.0.0.0:4000", env = "ICQ_BIND")]
    bind: String,
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
    #[arg(long, env = "ICQ_GUESTS")]
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

/// What both threads share.
struct Shared {
    socket: UdpSocket,
    bans_path: PathBuf,
    state: Mutex<State>,
}

struct State {
    server: Server,
    /// Notices hand edits of the ban file; also told about our own rewrites so they are not
    /// reloaded as if they were edits.
    bans_watch: FileWatch,
    /// Set by `/exit` or a signal: the process ends once every client has acknowledged the
    /// farewell, or at this instant.
    closing_deadline: Option<Instant>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            say_err!("icq-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let _ = COLOR.set(style::use_color_here(
        args.color,
        io::stdout().is_terminal(),
    ));
    let config = config_from(&args)?;
    let bind = resolve_bind(&args.bind)?;
    let bans_watch = FileWatch::new(&args.bans);
    let (bans, warnings) = banlist::load(&args.bans)
        .with_context(|| format!("reading ban list {}", args.bans.display()))?;
    print_ban_warnings(&args.bans, &warnings);
    let socket =
        UdpSocket::bind(bind).with_context(|| format!("listening on UDP address {bind}"))?;
    let local = socket.local_addr().context("reading the bound address")?;

    let now = Instant::now();
    let guests = if config.guests { "on" } else { "off" };
    log_notice(&format!(
        "listening on {local} (ban list {}: {}; guests {guests}; timeout {:?})",
        args.bans.display(),
        entries(bans.len()),
        config.timeout
    ));
    let mut server = Server::new(config, bans, now, wall_ms());
    server.set_local_address(local);
    let shared = Arc::new(Shared {
        socket,
        bans_path: args.bans,
        state: Mutex::new(State {
            server,
            bans_watch,
            closing_deadline: None,
        }),
    });

    let for_signals = Arc::clone(&shared);
    ctrlc::set_handler(move || shut_down(&for_signals))
        .context("installing the SIGINT/SIGTERM handler")?;
    let for_console = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || console(&for_console))
        .context("starting the console thread")?;

    serve(&shared)
}

fn config_from(args: &Args) -> Result<ServerConfig> {
    if !(args.flood_rate.is_finite() && args.flood_rate >= 0.0) {
        bail!("--flood-rate must be a number of messages per second, 0 or more");
    }
    // Clients send a heartbeat every third of the timeout, and never more often than every
    // 50 ms; below 0.3 s a live client could not keep up.
    if !(args.timeout.is_finite() && args.timeout >= 0.3 && args.timeout <= 86_400.0) {
        bail!("--timeout must be a number of seconds between 0.3 and 86400");
    }
    if args.max_clients == 0 {
        bail!("--max-clients must be at least 1");
    }
    Ok(ServerConfig {
        flood_limit: FloodLimit::from_options(args.flood_rate, args.flood_burst),
        timeout: Duration::from_secs_f64(args.timeout),
        guests: args.guests,
        max_clients: args.max_clients,
        max_per_ip: (args.max_per_ip > 0).then_some(args.max_per_ip),
        flood_kick: (args.flood_kick > 0).then_some(args.flood_kick),
        ..ServerConfig::default()
    })
}

/// `4000` means every IPv4 interface, port 4000; anything else is resolved as HOST:PORT.
fn resolve_bind(bind: &str) -> Result<SocketAddr> {
    if let Ok(port) = bind.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    // IPv4 first, as the client tries it first: `localhost` often lists ::1 before
    // 127.0.0.1, and a server on ::1 alone would not hear clients that chose 127.0.0.1.
    bind.to_socket_addrs()
        .with_context(|| {
            format!("resolving --bind '{bind}' (expected IP:PORT, HOST:PORT or PORT)")
        })?
        .min_by_key(SocketAddr::is_ipv6)
        .with_context(|| format!("--bind '{bind}' resolved to no address"))
}

/// The receive loop: runs until the process exits.
fn serve(shared: &Shared) -> Result<()> {
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    let mut next_ban_check = Instant::now() + BAN_FILE_CHECK;
    loop {
        let now = Instant::now();
        let deadline = {
            let state = lock(shared);
            let deadline = state
                .server
                .poll_timeout()
                .map_or(next_ban_check, |t| t.min(next_ban_check));
            state.closing_deadline.map_or(deadline, |c| c.min(deadline))
        };
        // A zero timeout means "block forever" to the OS, so never ask for less than 1 ms.
        let wait = deadline
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        shared
            .socket
            .set_read_timeout(Some(wait))
            .context("setting the socket's read timeout")?;
        match shared.socket.recv_from(&mut buffer) {
            // The empty datagram `shut_down` sends itself only wakes this loop.
            Ok((0, from))
                if lock(shared).closing_deadline.is_some() && from.port() == local_port(shared) => {
            }
            Ok((len, from)) => {
                let mut state = lock(shared);
                state
                    .server
                    .handle_datagram(Instant::now(), from, &buffer[..len]);
                flush(shared, &mut state.server);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // Some systems report an earlier datagram's ICMP error on the next receive;
            // it concerns one peer, not the server, so serving goes on.
            Err(_) => {}
        }
        let now = Instant::now();
        let mut state = lock(shared);
        if state.server.poll_timeout().is_some_and(|t| t <= now) {
            state.server.handle_timeout(now);
        }
        if now >= next_ban_check {
            next_ban_check = now + BAN_FILE_CHECK;
            if state.bans_watch.changed() {
                reload_bans(shared, &mut state, now);
            }
        }
        flush(shared, &mut state.server);
        if let Some(closing_deadline) = state.closing_deadline
            && (!state.server.farewells_pending() || now >= closing_deadline)
        {
            std::process::exit(0);
        }
    }
}

fn reload_bans(shared: &Shared, state: &mut State, now: Instant) {
    match banlist::load(&shared.bans_path) {
        Ok((bans, warnings)) => {
            print_ban_warnings(&shared.bans_path, &warnings);
            let count = bans.len();
            state.server.set_ban_list(now, bans);
            log_notice(&format!(
                "ban list {} changed on disk: {} now in force",
                shared.bans_path.display(),
                entries(count)
            ));
        }
        Err(error) => log_notice(&format!("{error}; keeping the previous ban list")),
    }
}

/// Sends every queued datagram and prints every queued event.
fn flush(shared: &Shared, server: &mut Server) {
    let mut datagram = Vec::with_capacity(MAX_DATAGRAM);
    while let Some(transmit) = server.poll_transmit() {
        transmit.write_to(&mut datagram);
        // A failed send concerns one recipient (unreachable, buffer full); UDP makes no
        // promise anyway, so the broadcast goes on to the others (and a sequenced frame is
        // sent again later).
        let _ = shared.socket.send_to(&datagram, transmit.destination);
    }
    while let Some(event) = server.poll_event() {
        say!("{}", style::server_line(&event, color()));
    }
}

/// Reads the operator's lines until end of input. End of input closes only the console:
/// the server keeps serving, so it can run as a daemon with stdin at /dev/null.
fn console(shared: &Shared) {
    let stdin = io::stdin();
    let mut reader = stdin.lock();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // A stray invalid byte should not end the console; show it as U+FFFD instead.
        let line = String::from_utf8_lossy(&raw);
        match command::parse(&line, Side::Server) {
            Ok(Input::Empty) => {}
            Ok(Input::Text(text)) => {
                let mut state = lock(shared);
                state.server.say(Instant::now(), &text);
                flush(shared, &mut state.server);
            }
            Ok(Input::Command(command)) => run_command(shared, command),
            Err(error) => say!("{}", display::sanitize(&error.to_string())),
        }
    }
    log_notice("console input closed; still serving (stop with SIGINT or SIGTERM)");
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
                say!("{}", display::sanitize(&error.to_string()));
            }
            flush(shared, &mut state.server);
        }
        Command::Ban { target } => ban(shared, &target, now),
        Command::Unban { target } => unban(shared, &target, now),
        Command::Msg { to, text } => {
            let mut state = lock(shared);
            if let Err(error) = state.server.say_privately(now, &to, &text) {
                say!("{}", display::sanitize(&error.to_string()));
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
            display::sanitize(&client.name),
            client.addr.to_string(),
            display::duration(client.connected_for),
            display::duration(client.idle_for),
            if client.guest { "  (guest)" } else { "" },
        );
        if let Some(reason) = client.away {
            say!("      away: {}", display::sanitize(&reason));
        }
    }
}

fn ban(shared: &Shared, target: &str, now: Instant) {
    let mut state = lock(shared);
    let net = match state.server.ban_target(target) {
        Ok(net) => net,
        Err(error) => {
            return say!(
                "{}",
                display::sanitize(&format!("cannot ban '{target}': {error}"))
            );
        }
    };
    let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M");
    let comment = if net.to_string() == target {
        format!("/ban on {stamp}")
    } else {
        format!("/ban {target} on {stamp}")
    };
    match banlist::append(&shared.bans_path, net, Some(&comment)) {
        Ok(outcome) => {
            print_ban_warnings(&shared.bans_path, &outcome.warnings);
            state.bans_watch.changed();
            state.server.set_ban_list(now, outcome.list);
            let path = shared.bans_path.display();
            if outcome.added {
                log_notice(&format!("banned {net} (added to {path})"));
            } else {
                log_notice(&format!("{net} was already in {path}"));
            }
        }
        Err(error) => say!("ban not saved: {error}"),
    }
    flush(shared, &mut state.server);
}

fn unban(shared: &Shared, target: &str, now: Instant) {
    let net = match target.parse() {
        Ok(net) => net,
        Err(error) => {
            return say!("{}", display::sanitize(&format!("cannot unban: {error}")));
        }
    };
    let mut state = lock(shared);
    match banlist::remove(&shared.bans_path, net) {
        Ok(outcome) => {
            print_ban_warnings(&shared.bans_path, &outcome.warnings);
            state.bans_watch.changed();
            state.server.set_ban_list(now, outcome.list);
            let path = shared.bans_path.display();
            if outcome.removed == 0 {
                say!("{net} is not listed in {path}");
            } else {
                log_notice(&format!("unbanned {net} (removed from {path})"));
            }
            for entry in outcome.still_covered_by {
                say!(
                    "{net} is still banned by '{}' on line {} of {path}; edit the file to lift it",
                    entry.net,
                    entry.line
                );
            }
        }
        Err(error) => say!("unban not saved: {error}"),
    }
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

/// "1 entry", "3 entries".
fn entries(count: usize) -> String {
    if count == 1 {
        "1 entry".to_owned()
    } else {
        format!("{count} entries")
    }
}

/// Warns about bad lines of the ban file, each once: the file is reread after every edit
/// and every `/ban`, and a line that was already reported need not be reported again.
fn print_ban_warnings(path: &Path, warnings: &[BanWarning]) {
    static REPORTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let current: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    let mut reported = REPORTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for warning in current.iter().filter(|w| !reported.contains(w)) {
        // The warning quotes the offending line of a file anyone with access may have edited.
        say_err!(
            "icq-server: warning: ban list {}: {}",
            path.display(),
            display::sanitize(warning)
        );
    }
    *reported = current;
}

fn log_notice(text: &str) {
    say!("{}", style::server_notice(wall_ms(), text, color()));
}

fn color() -> bool {
    COLOR.get().copied().unwrap_or(false)
}

fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Locks the shared state. A panic while holding the lock would be a bug; serving on with
/// the state as it is beats taking the whole chat down, so a poisoned lock is used anyway.
fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
