//! `icq-server`: parses the options and wires the server state machine (`icq::server`) to
//! a UDP socket, the console and the ban file through `icq::net::server_program`, which
//! runs the threads. Every rule lives in the library.

#![forbid(unsafe_code)]

use std::io::{self, IsTerminal};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser};

use icq::bans::keeper::{self, BanKeeper};
use icq::cli::{self, HostPort};
use icq::history::{self, History};
use icq::net;
use icq::net::log::Log;
use icq::net::server_program::{self, ServerProgram, wall_ms};
use icq::proto::flood::FloodLimit;
use icq::proto::token;
use icq::render::{self, ColorChoice};
use icq::server::{self, Server, ServerConfig};

/// jemalloc, not the system's malloc: after a join storm it gives the freed pages back to the
/// system, where glibc's keeps them (see docs/performance.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The program's name, for messages.
const PROGRAM: &str = "icq-server";

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
  icq-server --history-db chat.db              keep the room's history across restarts
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
    /// Public lines (chat, /me, console broadcasts; never private messages) the room's
    /// history keeps (0 = none).
    #[arg(long, value_name = "N", default_value_t = history::DEFAULT_CAPACITY, env = "ICQ_HISTORY", value_parser = cli::history_lines)]
    history: usize,
    /// Lines of history a client that joins is shown first (at most --history).
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_REPLAY, env = "ICQ_REPLAY", value_parser = cli::replay_lines)]
    replay: usize,
    /// In a room of more than this many people, joins, departures and renames are not
    /// announced, and the roster at join lists the first this many (/list shows everyone).
    #[arg(long, default_value_t = server::DEFAULT_QUIET_ABOVE, env = "ICQ_QUIET_ABOVE")]
    quiet_above: usize,
    /// Keep the history in this SQLite file too (created if missing), so it survives a
    /// restart; without it, the history lives in memory only.
    #[arg(long, env = "ICQ_HISTORY_DB")]
    history_db: Option<PathBuf>,
    /// When to use colors on the console: names in colors, other events dimmed.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, env = "ICQ_COLOR")]
    color: ColorChoice,
}

fn main() -> ExitCode {
    let matches = cli::matches_or_exit(PROGRAM, Args::command());
    let args =
        Args::from_arg_matches(&matches).unwrap_or_else(|error| cli::exit_on(PROGRAM, &error));
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            Log::new().warning(format_args!("icq-server: {error:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let color = render::use_color_here(args.color, io::stdout().is_terminal());
    let config = config_from(&args).unwrap_or_else(|error| cli::usage_error(PROGRAM, error));
    let bind = args
        .bind
        .to_listen_address()
        .with_context(|| format!("resolving --bind '{}'", args.bind))?;
    let mut log = Log::new();
    // The error names the file already.
    let (keeper, notices) = BanKeeper::open(&args.bans)?;
    server_program::print_ban_notices(&mut log, &notices, color);
    let bans = keeper.in_force().clone();
    let socket =
        UdpSocket::bind(bind).with_context(|| format!("listening on UDP address {bind}"))?;
    let local = socket.local_addr().context("reading the bound address")?;
    net::enlarge_receive_buffer(&socket);

    let guests = if config.guests { "on" } else { "off" };
    let listening = format!(
        "listening on {local} (ban list {}: {}; guests {guests}; timeout {:?})",
        args.bans.display(),
        keeper::entries_text(bans.len()),
        config.timeout
    );
    server_program::log_notice(&mut log, &listening, color);
    let history = open_history(&args, &config, &mut log)?;
    let mut server = Server::new(config, bans, Instant::now(), wall_ms());
    server.set_local_address(local);
    if let Some(history) = history {
        server.set_history(history);
    }
    server_program::log_notice(&mut log, &history_text(&server), color);
    let program = ServerProgram::new(socket, server, keeper, log, color);
    ctrlc::set_handler(program.shutter()).context("installing the SIGINT/SIGTERM handler")?;
    program.run().context("starting a thread")
}

/// The history in the `--history-db` file, if one is given: created if missing, refused
/// (an error: the program stops) when it is not ours, in memory with a warning when it
/// cannot be written.
fn open_history(args: &Args, config: &ServerConfig, log: &mut Log) -> Result<Option<History>> {
    let Some(path) = &args.history_db else {
        return Ok(None);
    };
    let opened = History::open(path, config.history, token::random_u64())
        .context("opening the history (--history-db)")?;
    if let Some(warning) = &opened.warning {
        let text = icq::text::sanitize(&warning.to_string()).into_owned();
        log.warning(format_args!("icq-server: warning: {text}"));
    }
    Ok(Some(opened.history))
}

/// What the start-up log says of the history: how much is kept, where, how much is held,
/// and how much a join is shown.
fn history_text(server: &Server) -> String {
    let (config, history) = (server.config(), server.history());
    let place = if history.is_persistent() {
        "in memory and in its file"
    } else {
        "in memory"
    };
    format!(
        "history: up to {} lines kept {place} ({} held, newest line {}); {} replayed on join",
        config.history,
        history.ring().len(),
        history.newest(),
        config.replay
    )
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
        history: args.history,
        // More than is kept cannot be shown.
        replay: args.replay.min(args.history),
        quiet_above: args.quiet_above,
        ..ServerConfig::default()
    })
}
