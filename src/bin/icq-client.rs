//! `icq-client`: parses the options, opens the socket and hands a client core
//! (`icq::client`) or, with `--listen`, a peer core (`icq::peer`) to
//! `icq::net::client_program`, which runs the typing, the socket loop and the printing.
//! Every rule lives in the library.
//!
//! In peer mode there is no server: the socket is bound to the `--listen` address (the
//! first line printed says which port it got), and the ban file given with `--bans` is
//! reloaded when it changes.

#![forbid(unsafe_code)]

use std::io::{self, IsTerminal, Write as _};
use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use icq::alert::BellMode;
use icq::bans::keeper::BanKeeper;
use icq::bans::list::BanList;
use icq::cli::{self, HostPort};
use icq::client::Client;
use icq::completion::NameBook;
use icq::history;
use icq::names;
use icq::net::client_program::{ClientProgram, Core};
use icq::net::{lock, log::Log};
use icq::peer::{Peer, PeerConfig};
use icq::proto::paging;
use icq::render::{self, ClientLook, ColorChoice};
use icq::terminal::LineEditor;
use icq::text;

/// `eprintln!` that shrugs off a closed stderr.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The program's name, for messages.
const PROGRAM: &str = "icq-client";

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
    /// Peer mode: how many of the room's public lines this peer keeps in memory, to show
    /// newcomers and answer /history (0 = none). The server's variable too: a server's
    /// history is its own.
    #[arg(long, value_name = "N", default_value_t = history::DEFAULT_CAPACITY, env = "ICQ_HISTORY", value_parser = cli::history_lines)]
    history: usize,
    /// Peer mode: how many of them a peer that joins through this one is shown first (at
    /// most --history).
    #[arg(long, value_name = "N", default_value_t = paging::DEFAULT_REPLAY, env = "ICQ_REPLAY", value_parser = cli::replay_lines)]
    replay: usize,
}

fn main() -> ExitCode {
    let matches = cli::matches_or_exit(PROGRAM, Args::command());
    let args =
        Args::from_arg_matches(&matches).unwrap_or_else(|error| cli::exit_on(PROGRAM, &error));
    // A --server typed next to --listen is a mistake worth saying; ICQ_SERVER left in the
    // environment for the usual server is not.
    for option in ["history", "replay"] {
        if args.listen.is_none() && matches.value_source(option) == Some(ValueSource::CommandLine) {
            cli::usage_error(
                PROGRAM,
                &format!("--{option} is for peer mode (with --listen): a server keeps its own"),
            );
        }
    }
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

/// What the program runs on: the socket, the core, and for messages the server (peer mode:
/// the first --peer) as the user wrote it; in peer mode, the ban file.
struct Start {
    socket: UdpSocket,
    core: Core,
    server_text: String,
    bans: Option<BanKeeper>,
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
        lock(&for_tab).complete(line, pos)
    }));
    let mut log = Log::new();
    let editor = editor.map(|(editor, printer)| {
        log.print_through(printer);
        editor
    });
    let start = match &args.listen {
        Some(listen) => start_peer(&args, listen, &name, look, &mut log)?,
        None => start_client(&args, &name, look, &mut log)?,
    };
    let program = ClientProgram::new(
        start.socket,
        start.core,
        look,
        start.server_text,
        log,
        names,
        start.bans,
    );
    ctrlc::set_handler(program.leaver()).context("installing the Ctrl-C handler")?;
    program.run(editor).context("starting the receiver thread")
}

/// Opens the socket and starts joining the server given with `--server`.
fn start_client(args: &Args, name: &str, look: ClientLook, log: &mut Log) -> Result<Start> {
    let servers = resolve_server(&args.server)?;
    let local: SocketAddr = if servers.iter().any(SocketAddr::is_ipv6) {
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
    if log.has_editor() {
        log.line(look.notice(wall_ms(), &joining));
        log.flush();
    } else {
        // Not on stdout: scripts and tests read the conversation there, line by line.
        say_err!("icq-client: {joining}");
    }
    Ok(Start {
        socket,
        core: Core::Client(Box::new(Client::new(name, servers, Instant::now()))),
        server_text: args.server.to_string(),
        bans: None,
    })
}

/// Peer mode: binds `--listen`, loads `--bans`, and starts a new room or joins one through
/// the `--peer` addresses. The first line printed says where we listen, port included.
fn start_peer(
    args: &Args,
    listen: &HostPort,
    name: &str,
    look: ClientLook,
    log: &mut Log,
) -> Result<Start> {
    let listen_addr = listen
        .to_listen_address()
        .with_context(|| format!("resolving --listen address '{listen}'"))?;
    let socket = UdpSocket::bind(listen_addr)
        .with_context(|| format!("listening on {}", text::sanitize(&listen.to_string())))?;
    let local = socket
        .local_addr()
        .context("reading the socket's address")?;
    let mut contacts = Vec::new();
    for peer in &args.peers {
        // A socket of one family only reaches that family (an IPv6 one reaches both).
        let usable: Vec<SocketAddr> = resolve_server(peer)?
            .into_iter()
            .filter(|addr| local.is_ipv6() || addr.is_ipv4())
            .collect();
        if usable.is_empty() {
            bail!("--peer {peer}: no IPv4 address to reach from an IPv4 --listen address");
        }
        contacts.extend(usable);
    }
    let (bans, keeper) = match &args.bans {
        Some(path) => {
            // The error names the file already.
            let (keeper, notices) = BanKeeper::open(path)?;
            for notice in &notices {
                say_err!("icq-client: {}", text::sanitize(&notice.to_string()));
            }
            (keeper.in_force().clone(), Some(keeper))
        }
        None => (BanList::default(), None),
    };
    let now = Instant::now();
    let config = PeerConfig {
        history: args.history,
        // More than is kept cannot be shown.
        replay: args.replay.min(args.history),
        ..PeerConfig::default()
    };
    let mut peer = if contacts.is_empty() {
        Peer::new_room(name, config, bans, now, wall_ms())
    } else {
        Peer::join(name, contacts, config, bans, now, wall_ms())
    };
    peer.set_local_address(local);
    let first_line = if args.peers.is_empty() {
        format!(
            "listening on {local} as {} (new room)",
            text::sanitize(name)
        )
    } else {
        let through: Vec<String> = args.peers.iter().map(HostPort::to_string).collect();
        format!(
            "listening on {local} as {}; joining the room through {}...",
            text::sanitize(name),
            text::sanitize(&through.join(", "))
        )
    };
    // On stdout in every mode: scripts and tests learn the port from it.
    log.line(look.notice(wall_ms(), &first_line));
    log.flush();
    Ok(Start {
        socket,
        core: Core::Peer(Box::new(peer)),
        server_text: args
            .peers
            .first()
            .map(HostPort::to_string)
            .unwrap_or_default(),
        bans: keeper,
    })
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

fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
