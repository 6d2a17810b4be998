//! `icq-client`: wires the client state machine to a UDP socket and the terminal.
//!
//! The main thread reads what the user types; a receiver thread waits for datagrams (with a
//! read timeout so the core's timers — join retries, heartbeats — fire on time) and prints
//! what arrives. Both share the state machine behind a mutex. Every rule lives in
//! `icq::client`; this file only moves bytes and prints.

use std::io::{self, BufRead, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;

use icq::client::{Client, ClientEvent, CloseReason, JOIN_TIMEOUT};
use icq::command::{self, Command, Input, Side};
use icq::display;
use icq::names;
use icq::wire::MAX_DATAGRAM;

/// The server port when `--server` names none.
const DEFAULT_PORT: u16 = 4000;

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

Type a line and press Enter to send it to everyone. Commands: /list (who is online),
/help, /exit (or Ctrl-D, Ctrl-C). Start a message with // to send one beginning with /.

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
    /// Do not ring the terminal bell when someone else's message arrives.
    #[arg(long, env = "ICQ_NO_BELL")]
    no_bell: bool,
}

struct Shared {
    socket: UdpSocket,
    client: Mutex<Client>,
    /// Whether destinations must be given as IPv6 (the socket is dual-stack).
    socket_is_v6: bool,
    bell: bool,
    /// The server as the user wrote it, for messages.
    server_text: String,
    /// Lines were typed while the server had not accepted us yet: the core keeps them and
    /// sends them when the join completes. Changed only with `client` locked; cleared (and
    /// `join_settled` notified) when the join completes.
    lines_waiting_for_join: AtomicBool,
    /// Whether the server has accepted us (false again while rejoining). Changed only with
    /// `client` locked.
    joined: AtomicBool,
    /// Notified, with `client` locked, when the join completes.
    join_settled: Condvar,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        // `run` only returns on errors: a session ends through `finish`.
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("icq-client: {error:#}");
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

    let shared = Arc::new(Shared {
        socket,
        client: Mutex::new(Client::new(&name, servers, Instant::now())),
        socket_is_v6,
        bell: !args.no_bell,
        server_text: args.server,
        lines_waiting_for_join: AtomicBool::new(false),
        joined: AtomicBool::new(false),
        join_settled: Condvar::new(),
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

    read_typing(&shared);
    // End of input or /exit: leave, and let the receiver finish the goodbye and exit the
    // process. Lines typed before the server answered go out when the join completes, so
    // leaving waits for that: `echo hello | icq-client` sends "hello".
    {
        let mut client = wait_for_lines_waiting_for_join(&shared);
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

/// Reads typed lines until end of input or `/exit`.
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
        let line = String::from_utf8_lossy(&raw);
        let now = Instant::now();
        match command::parse(&line, Side::Client) {
            Ok(Input::Empty) => {}
            Ok(Input::Text(text)) => {
                let mut client = lock(shared);
                if !shared.joined.load(Ordering::SeqCst) {
                    shared.lines_waiting_for_join.store(true, Ordering::SeqCst);
                }
                client.send_text(now, &text);
                pump(shared, &mut client);
            }
            Ok(Input::Command(Command::Exit)) => return,
            Ok(Input::Command(Command::List)) => {
                let mut client = lock(shared);
                client.request_list(now);
                pump(shared, &mut client);
            }
            Ok(Input::Command(Command::Help)) => {
                for line in command::help_lines(Side::Client) {
                    println!("{line}");
                }
            }
            // The parser only gives server commands to the server; nothing to do here.
            Ok(Input::Command(_)) => {}
            Err(error) => println!("{error}"),
        }
    }
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
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut stdout = io::stdout().lock();
    while let Some(event) = client.poll_event() {
        match event {
            ClientEvent::Closed(reason) => {
                drop(stdout);
                finish(shared, &reason, client.server());
            }
            event => {
                match event {
                    ClientEvent::Joined { .. } => {
                        shared.joined.store(true, Ordering::SeqCst);
                        // The core has just sent the lines typed while joining.
                        shared.lines_waiting_for_join.store(false, Ordering::SeqCst);
                        shared.join_settled.notify_all();
                    }
                    ClientEvent::Rejoining => shared.joined.store(false, Ordering::SeqCst),
                    _ => {}
                }
                if let Some(line) = display::client_event_line(&event, now_ms, shared.bell) {
                    // stdout gone (the reader closed the pipe): nothing useful left to do.
                    let _ = writeln!(stdout, "{line}");
                }
            }
        }
    }
    let _ = stdout.flush();
}

/// Locks the client once no typed line is waiting for the join to complete. A join that
/// fails or times out ends the process from the receiver thread; the deadline here is only a
/// safety net.
fn wait_for_lines_waiting_for_join(shared: &Shared) -> MutexGuard<'_, Client> {
    let deadline = Instant::now() + JOIN_TIMEOUT + Duration::from_secs(1);
    let mut client = lock(shared);
    while shared.lines_waiting_for_join.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        client = shared
            .join_settled
            .wait_timeout(client, left)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
    client
}

fn finish(shared: &Shared, reason: &CloseReason, server: SocketAddr) -> ! {
    let shown = format!("{} ({server})", shared.server_text);
    let text = display::close_text(reason, &shown);
    let status = match reason {
        CloseReason::Left => 0,
        CloseReason::JoinTimedOut => exit::NO_ANSWER,
        CloseReason::Refused(_) => exit::REFUSED,
        CloseReason::Disconnected { .. } => exit::DISCONNECTED,
    };
    // On stdout with the conversation, and on stderr too when it is an error, where
    // someone who redirected the conversation still sees it.
    println!(
        "{}",
        display::notice_line(chrono::Utc::now().timestamp_millis(), &text)
    );
    if reason.is_failure() {
        eprintln!("icq-client: {text}");
    }
    let _ = io::stdout().flush();
    std::process::exit(i32::from(status));
}

fn usage_error(message: &str) -> ! {
    eprintln!("icq-client: {message}");
    std::process::exit(2);
}

/// A dual-stack IPv6 socket reaches IPv4 peers through IPv4-mapped addresses.
fn as_ipv6(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0).into(),
        v6 => v6,
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Client> {
    shared
        .client
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
