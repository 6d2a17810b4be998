//! `cargo bench --bench fanout`: the release `icq-server` under load from simulated clients.
//!
//! Cargo builds the server (`icq-server` with the bench profile, optimized like release)
//! before this program runs; it starts a fresh server on a free 127.0.0.1 port for each
//! pass, drives it from this process (the scale pass's clients from worker copies of it) and
//! stops it by its PID (`driver/`, which `benches/versus_irc.rs` shares: the same load next to
//! IRC servers). Each simulated client is the library's own sans-IO `icq::client::Client` (or
//! a plain-text guest) behind its own
//! non-blocking UDP socket, all served by one thread with `epoll`. One client sends
//! `bench SEQ T` messages with at most W of them in flight: a message is done when its
//! sender has the echo (latency pass: when every client has it). Printed as markdown:
//!
//! - deliveries/s, and the server's CPU (utime+stime from `/proc/PID/stat`, 10 ms ticks)
//!   per delivery, for guests (the plain-text mode `../shared/perf/run.sh` measures) and
//!   named clients (sequence numbers, acknowledgements) at N = 10, 100 and 1 000;
//! - datagrams the server sent and received per delivery (from `/proc/net/snmp`, minus
//!   what this process sent and received: the machine should be otherwise quiet);
//! - p50/p99/max latency from send to receipt, loss and duplicates as the clients saw them;
//! - the history pass: the named load at N = 10 and 100 with the history off (`--history 0`),
//!   in memory (the default) and in SQLite (`--history-db`, a fresh file in the temporary
//!   directory), alternated over 3 rounds (medians): CPU per delivery side by side (target:
//!   ≤ 1.05 × off), the part of it the server's history thread spent (its SQLite commits,
//!   from that thread's `schedstat`), and the lines persisted per second;
//! - the scale pass: N idle named clients (5 000 by default; `ICQ_BENCH_IDLE=10000` for the
//!   issue's 10 000, about a minute more), how long filling the server takes, the server's
//!   RSS and the CPU their heartbeats and timers cost, and how long a join takes at 10 and at
//!   N clients.
//!
//! About five minutes in all; `ICQ_BENCH_QUICK=1` shrinks every pass (about two minutes);
//! `ICQ_BENCH_IDLE=N` sets the scale pass's client count (0 skips it; past 20 000 the clients
//! send from several loopback addresses; each worker process raises its file descriptor
//! limit as far as it may), `ICQ_BENCH_IDLE_SECS` its idle period (30 s; 10 quick),
//! `ICQ_BENCH_IDLE_SETTLE` seconds of idleness before that period is measured (0: the
//! heartbeat intervals grow with the sessions at each join, so the steady state of a big
//! fill begins once its last joiners' first heartbeats came, ~105 s at 100 000),
//! `ICQ_BENCH_IDLE_TIMEOUT` the server's `--timeout` in it (seconds; unset: the server's
//! default, 30 s; clients heartbeat every third of it up to `HEARTBEAT_BUDGET` × that many
//! clients, so the heartbeats' cost follows it);
//! `ICQ_BENCH_WORKERS` how many worker processes play the scale pass's clients (2: the
//! server has one core, they the other; more if needed for each to stay under its 20 000
//! open files: `driver/workers.rs`); `ICQ_BENCH_SERVER=PATH` measures another build;
//! `ICQ_BENCH_NS="10 100"` the load passes' client counts; `ICQ_BENCH_HISTORY="10 100"` the
//! history pass's (empty: skipped); `ICQ_BENCH_ONLY=history` runs the history pass alone
//! (about 1.5 minutes). Linux only (`epoll`, `/proc`). The clients' sockets are read with the
//! library's own batched receive (`icq::net::Io`), and epoll, the clock tick and the file
//! descriptor limit come through nix's safe API: no unsafe code here.

#![forbid(unsafe_code)]

/// jemalloc for the simulated clients too: in the scale pass a worker's clients decode every
/// roster they are sent (two strings per entry), and with glibc's malloc half of a worker's
/// CPU was malloc and free (perf, 10 000 clients), so the fill measured the driver.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("benches/fanout.rs needs Linux (epoll, /proc); nothing measured");
}

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(target_os = "linux")]
mod driver;

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{self, Write as _};
    use std::time::{Duration, Instant};

    use crate::driver::workers::{self, PER_WORKER, Workers};
    use crate::driver::{
        Kind, Pass, ServerProcess, Sim, load_average, process_user_system_ticks, raise_fd_limit,
        ticks_per_second, udp_counters,
    };
    use icq::history::{DEFAULT_CAPACITY, History};
    /// Before a timed join: quiet for longer than the clients' acknowledgement delay (10 ms),
    /// so the join does not meet the last join's acknowledgements; much longer, and an idle
    /// virtual CPU falls asleep and takes milliseconds to wake, whatever the server does.
    const QUIET_MS: u64 = 30;

    pub fn main() {
        if workers::run_if_worker() {
            return;
        }
        let quick = std::env::var_os("ICQ_BENCH_QUICK").is_some_and(|v| v != "0");
        let idle: usize = std::env::var("ICQ_BENCH_IDLE")
            .ok()
            .and_then(|v| v.parse().ok())
            // A join is announced (in batches) only while the room has at most 500 people
            // (the server's --quiet-above), and each newcomer gets the roster, its first 500
            // entries past that: filling a server costs O(N) roster bytes and notices. 10 000
            // (ICQ_BENCH_IDLE=10000) takes about a minute more than the default.
            .unwrap_or(if quick { 1_000 } else { 5_000 });
        // Another build can be measured the same way (ICQ_BENCH_SERVER=path/to/icq-server).
        let server_override = std::env::var("ICQ_BENCH_SERVER").ok();
        let server = server_override
            .as_deref()
            .unwrap_or(env!("CARGO_BIN_EXE_icq-server"));
        // The scale pass's clients are in worker processes, each raising its own limit.
        raise_fd_limit(idle.min(PER_WORKER) + 100);
        println!("# icq-server fan-out benchmark\n");
        println!(
            "server: {server}; {} mode; {} CPUs; one load pass per row, a fresh server each\n",
            if quick { "quick" } else { "full" },
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );

        let deliveries = if quick { 200_000 } else { 1_000_000 };
        let latency_deliveries = if quick { 20_000 } else { 100_000 };
        // ICQ_BENCH_ONLY=history: the history pass alone (no load, latency or scale pass).
        let only_history = std::env::var("ICQ_BENCH_ONLY").is_ok_and(|v| v == "history");
        let counts = |var: &str, default: &[usize]| -> Vec<usize> {
            std::env::var(var)
                .ok()
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_else(|| default.to_vec())
        };
        let ns = if only_history {
            Vec::new()
        } else {
            counts("ICQ_BENCH_NS", &[10, 100, 1000])
        };
        let history_ns = counts("ICQ_BENCH_HISTORY", &[10, 100]);
        let idle = if only_history { 0 } else { idle };
        let mut rows = Vec::new();
        for &n in &ns {
            for kind in [Kind::Guest, Kind::Named] {
                let m = (deliveries / n).max(1);
                let load = Pass::run(server, kind, n, m, 8, false, &[]);
                rows.push((kind, n, 8, load));
            }
        }
        if !rows.is_empty() {
            print_load_table(&rows);
        }

        let mut lat_rows = Vec::new();
        for kind in [Kind::Guest, Kind::Named]
            .into_iter()
            .filter(|_| !ns.is_empty())
        {
            let n = 100;
            let pass = Pass::run(server, kind, n, latency_deliveries / n, 1, true, &[]);
            lat_rows.push((kind, n, 1, pass));
        }
        if !lat_rows.is_empty() {
            print_latency_table(&lat_rows);
            print_ratios(&rows, &lat_rows);
        }

        if !history_ns.is_empty() {
            let rounds = HISTORY_ROUNDS;
            let rows: Vec<HistoryCost> = history_ns
                .iter()
                .map(|&n| HistoryCost::measure(server, n, deliveries / n, rounds))
                .collect();
            print_history_table(&rows, rounds);
        }

        if idle > 0 {
            let idle_for = std::env::var("ICQ_BENCH_IDLE_SECS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if quick { 10 } else { 30 });
            // Joiners spread over worker processes: the server has one core, they the other.
            let workers = std::env::var("ICQ_BENCH_WORKERS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2);
            // The operator's --timeout sets the heartbeat rate (a third of it): unset, the
            // server's own default, so the pass measures what an operator gets untouched.
            let timeout = std::env::var("ICQ_BENCH_IDLE_TIMEOUT")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    let seconds: f64 = v.trim().parse().unwrap_or_else(|_| {
                        panic!("ICQ_BENCH_IDLE_TIMEOUT must be seconds, not {v:?}")
                    });
                    seconds.to_string()
                });
            // Heartbeat intervals grow with the sessions at each join (up to 100 s for the
            // 100 000th): the steady state starts once the last joiner's first heartbeat
            // came, so a settle period before measuring (unset: none).
            let settle = std::env::var("ICQ_BENCH_IDLE_SETTLE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            scale(
                server,
                idle,
                (Duration::from_secs(settle), Duration::from_secs(idle_for)),
                workers,
                timeout.as_deref(),
            );
        }
    }

    fn print_load_table(rows: &[(Kind, usize, usize, Pass)]) {
        println!("## Load: one sender, window 8 (done when the sender has its echo)\n");
        println!(
            "| clients | N | deliveries/s | server CPU µs/delivery | server datagrams out/delivery \
             | in/delivery | p50 µs | p99 µs | max µs | lost | dup |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (kind, n, _, p) in rows {
            println!(
                "| {} | {n} | {:.0} | {:.2} | {:.3} | {:.3} | {:.0} | {:.0} | {:.0} | {} | {} |",
                kind.label(),
                p.rate(),
                p.cpu_us_per_delivery,
                p.server_out_per_delivery,
                p.server_in_per_delivery,
                p.p50_us,
                p.p99_us,
                p.max_us,
                p.expected - p.deliveries,
                p.duplicates
            );
        }
        let drops: u64 = rows.iter().map(|r| r.3.rcvbuf_errors).sum();
        println!(
            "\nout/in: datagrams the server sent/received per delivery (system-wide UDP counters \
             less this process's own); UDP receive-buffer drops during the passes: {drops}\n"
        );
    }

    fn print_latency_table(rows: &[(Kind, usize, usize, Pass)]) {
        println!("## Latency: window 1, done when every client has the message\n");
        println!(
            "| clients | N | p50 µs | p99 µs | max µs | lost | dup | server CPU µs/delivery |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (kind, n, _, p) in rows {
            println!(
                "| {} | {n} | {:.0} | {:.0} | {:.0} | {} | {} | {:.2} |",
                kind.label(),
                p.p50_us,
                p.p99_us,
                p.max_us,
                p.expected - p.deliveries,
                p.duplicates,
                p.cpu_us_per_delivery
            );
        }
        println!();
    }

    fn print_ratios(rows: &[(Kind, usize, usize, Pass)], latency: &[(Kind, usize, usize, Pass)]) {
        println!("## Targets\n");
        for n in [10, 100, 1000] {
            let find = |k| rows.iter().find(|r| r.0 == k && r.1 == n).map(|r| &r.3);
            if let (Some(g), Some(p)) = (find(Kind::Guest), find(Kind::Named)) {
                let ratio = p.cpu_us_per_delivery / g.cpu_us_per_delivery;
                let lost = p.expected - p.deliveries;
                println!(
                    "- N = {n}: named CPU/delivery = {ratio:.2} × guests' (target ≤ 1.6: {}); \
                     named lost {lost} (target 0: {})",
                    if ratio <= 1.6 { "met" } else { "NOT met" },
                    if lost == 0 { "met" } else { "NOT met" }
                );
            }
        }
        if let Some((_, _, _, p)) = latency.iter().find(|r| r.0 == Kind::Named) {
            println!(
                "- window 1, 100 named clients: p99 {:.0} µs (target ≤ 2 000: {})",
                p.p99_us,
                if p.p99_us <= 2000.0 { "met" } else { "NOT met" }
            );
        }
        println!();
    }

    /// Rounds of the history pass: each runs the three configurations one after the other,
    /// so that the machine's noise hits each alike; the figures are the medians.
    const HISTORY_ROUNDS: usize = 3;

    /// Where the server keeps the room's history during a pass.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Keep {
        /// `--history 0`: every public line is numbered, none is kept.
        Off,
        /// The default: the last 1 000 lines in memory.
        Memory,
        /// `--history-db FILE` (a fresh file per pass, in the system's temporary directory):
        /// the same, and each loop turn's lines committed in one transaction.
        Sqlite,
    }

    impl Keep {
        const ALL: [Keep; 3] = [Keep::Off, Keep::Memory, Keep::Sqlite];

        fn label(self) -> &'static str {
            match self {
                Keep::Off => "off",
                Keep::Memory => "memory",
                Keep::Sqlite => "SQLite",
            }
        }
    }

    /// The history pass at N named clients: the load pass's work (one sender, window 8)
    /// with the history off, in memory and in SQLite.
    struct HistoryCost {
        n: usize,
        /// Per configuration (in [`Keep::ALL`]'s order), one pass per round.
        passes: [Vec<Pass>; 3],
        /// Lines committed to the SQLite file by the end of each SQLite pass, per second of
        /// that pass.
        persisted_per_second: Vec<f64>,
    }

    impl HistoryCost {
        fn measure(server: &str, n: usize, m: usize, rounds: usize) -> HistoryCost {
            let mut cost = HistoryCost {
                n,
                passes: [Vec::new(), Vec::new(), Vec::new()],
                persisted_per_second: Vec::new(),
            };
            for round in 1..=rounds {
                for (i, keep) in Keep::ALL.into_iter().enumerate() {
                    eprint!("history {} round {round}: ", keep.label());
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let db = dir.path().join("history.db");
                    let db_arg = db.to_string_lossy().into_owned();
                    let extra: &[&str] = match keep {
                        Keep::Off => &["--history", "0"],
                        Keep::Memory => &[],
                        Keep::Sqlite => &["--history-db", &db_arg],
                    };
                    let pass = Pass::run(server, Kind::Named, n, m, 8, false, extra);
                    if keep == Keep::Sqlite {
                        // The server is gone (killed): what the file holds is what it
                        // committed; the newest number counts every line committed.
                        let opened = History::open(&db, DEFAULT_CAPACITY, 1)
                            .expect("the pass's history file");
                        let lines = opened.history.newest() as f64;
                        cost.persisted_per_second.push(if pass.seconds > 0.0 {
                            lines / pass.seconds
                        } else {
                            0.0
                        });
                    }
                    cost.passes[i].push(pass);
                }
            }
            cost
        }

        /// The median over the rounds of `figure` for configuration `keep`.
        fn median(&self, keep: Keep, figure: impl Fn(&Pass) -> f64) -> f64 {
            let i = Keep::ALL.iter().position(|&k| k == keep).unwrap_or(0);
            median(self.passes[i].iter().map(figure).collect())
        }
    }

    fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    }

    fn print_history_table(rows: &[HistoryCost], rounds: usize) {
        println!(
            "## History: named clients, window 8, history off / in memory / in SQLite \
             (median of {rounds} rounds, the three alternated)\n"
        );
        println!("| what | measured | target |");
        println!("|---|---:|---|");
        for row in rows {
            let n = row.n;
            let three = |figure: &dyn Fn(&Pass) -> f64| Keep::ALL.map(|k| row.median(k, figure));
            let [off, memory, sqlite] = three(&|p| p.cpu_us_per_delivery);
            let (memory_ratio, sqlite_ratio) = (memory / off, sqlite / off);
            let met = if memory_ratio <= 1.05 && sqlite_ratio <= 1.05 {
                "met"
            } else {
                "NOT met"
            };
            println!(
                "| CPU per delivery, history off / memory / SQLite, N = {n} \
                 | {off:.2} / {memory:.2} / {sqlite:.2} µs \
                 | ratio b/a {memory_ratio:.3}, c/a {sqlite_ratio:.3} ≤ 1.05: {met} |"
            );
            let [off, memory, sqlite] = three(&|p| p.rate());
            println!(
                "| deliveries/s, history off / memory / SQLite, N = {n} \
                 | {off:.0} / {memory:.0} / {sqlite:.0} | — |"
            );
            let [off, memory, sqlite] = three(&|p| p.p99_us);
            println!(
                "| p99 latency, history off / memory / SQLite, N = {n} \
                 | {off:.0} / {memory:.0} / {sqlite:.0} µs | — |"
            );
            let [off, memory, sqlite] = three(&|p| (p.expected - p.deliveries) as f64);
            println!(
                "| lost, history off / memory / SQLite, N = {n} \
                 | {off:.0} / {memory:.0} / {sqlite:.0} | 0 |"
            );
            println!(
                "| of which the history thread's SQLite commits (SQLite), N = {n} \
                 | {:.3} µs | — |",
                row.median(Keep::Sqlite, |p| p.history_thread_us_per_delivery)
            );
            println!(
                "| lines persisted per second (SQLite, one transaction per 50 ms at most), N = {n} \
                 | {:.0} | — |",
                median(row.persisted_per_second.clone())
            );
        }
        println!();
        for row in rows {
            let each = |i: usize| {
                row.passes[i]
                    .iter()
                    .map(|p| format!("{:.2}", p.cpu_us_per_delivery))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "N = {}: CPU µs/delivery per round, off: {}; memory: {}; SQLite: {}",
                row.n,
                each(0),
                each(1),
                each(2)
            );
        }
        println!(
            "\nLines persisted per second: the lines the SQLite file held (its newest number) \
             after the pass, over the pass's time (all the room said: the file keeps up). The \
             server's history thread commits everything said since its last commit in one \
             transaction, at most every 50 ms; the CPU figures count that thread too.\n"
        );
        let _ = io::stdout().flush();
    }

    /// The scale pass: `count` named clients join and stay idle. This process plays the
    /// first 10 and the timed joins; the rest are in `workers` processes (at least enough
    /// for each to hold its sockets), which join theirs all at once.
    /// `timeout`: the server's `--timeout` in seconds (`None`: the server's default).
    fn scale(
        binary: &str,
        count: usize,
        (settle, idle_for): (Duration, Duration),
        workers: usize,
        timeout: Option<&str>,
    ) {
        let max_clients = (count + 100).to_string();
        let mut args = vec!["--max-clients", &max_clients];
        if let Some(seconds) = timeout {
            args.extend(["--timeout", seconds]);
        }
        let server = ServerProcess::start(binary, &args);
        std::thread::sleep(Duration::from_millis(200));
        let rss0 = server.rss_kib();
        let mut sim = Sim::new(server.addr);
        let t0 = Instant::now();
        // Joins are timed one at a time on a settled server, as the 10th and the last: the
        // joining client's socket alone is watched (busy-polled) from its first join until
        // the welcome, so the time is the server's, not this process's queue of others'
        // datagrams. The median of a few joins.
        let timed = |sim: &mut Sim, times: usize| -> Duration {
            let mut spans: Vec<Duration> = (0..times)
                .map(|_| {
                    sim.settle(Duration::from_millis(QUIET_MS), Duration::from_secs(120));
                    sim.join_one()
                })
                .collect();
            spans.sort();
            spans[spans.len() / 2]
        };
        sim.join_range(Kind::Named, 9, Duration::from_secs(60));
        let tenth = timed(&mut sim, 5);
        // This process plays 9 + 5 + 5 (numbered below 100), the workers the rest.
        let bulk = count.saturating_sub(9 + 5 + 5);
        let mut pool = Workers::start(server.addr, 100, bulk, workers);
        let (cpu_fill0, clients_cpu0) = (server.cpu_ticks(), pool.cpu_ticks());
        let filled = pool.fill(&mut sim);
        let fill_time = filled.span;
        let fill_cpu = (server.cpu_ticks() - cpu_fill0) as f64 / ticks_per_second();
        // The clients' share: a fill can be no faster than its slower side on its core(s).
        let clients_fill_cpu =
            pool.cpu_ticks().saturating_sub(clients_cpu0) as f64 / ticks_per_second();
        sim.settle(Duration::from_millis(300), Duration::from_secs(120));
        let last = timed(&mut sim, 5);
        let fill_total = t0.elapsed();
        let joined = sim.joined_count() + filled.joined;
        sim.settle(Duration::from_millis(500), Duration::from_secs(120));
        let rss1 = server.rss_kib();

        let load_after_fill = load_average();
        let settle_start = Instant::now();
        while settle_start.elapsed() < settle {
            sim.pump(Duration::from_millis(100));
        }
        let (user0, system0) = process_user_system_ticks(server.pid());
        let (in0, out0, _) = udp_counters();
        let before = pool.count(&mut sim);
        let (sent0, received0) = (sim.sent + before.sent, sim.received + before.received);
        let idle_start = Instant::now();
        while idle_start.elapsed() < idle_for {
            sim.pump(Duration::from_millis(100));
        }
        let (user1, system1) = process_user_system_ticks(server.pid());
        let (in1, out1, _) = udp_counters();
        let seconds = idle_start.elapsed().as_secs_f64();
        let after = pool.count(&mut sim);
        let (sent1, received1) = (sim.sent + after.sent, sim.received + after.received);
        let percent = |ticks: u64| ticks as f64 / ticks_per_second() / seconds * 100.0;
        let (user_busy, system_busy) = (percent(user1 - user0), percent(system1 - system0));
        let busy = user_busy + system_busy;
        let server_out = out1.saturating_sub(out0).saturating_sub(sent1 - sent0);
        let server_in = in1
            .saturating_sub(in0)
            .saturating_sub(received1 - received0);
        let still = sim.joined_count() + after.joined;
        let rss2 = server.rss_kib();
        let load_idle = load_average();
        let pool_size = pool.len();
        drop(pool);

        let timeout_label = match timeout {
            Some(seconds) => format!("--timeout {seconds} s"),
            // The server reads ICQ_TIMEOUT when --timeout is absent, and inherits this
            // process's environment.
            None => match std::env::var("ICQ_TIMEOUT") {
                Ok(seconds) => format!("ICQ_TIMEOUT={seconds} s from the environment"),
                Err(_) => "--timeout unset: the server's default".to_string(),
            },
        };
        println!(
            "## Scale: {count} idle named clients ({bulk} in {pool_size} worker processes; \
             {timeout_label}; each client heartbeats as the server tells it, at its join and \
             in each answer: a third of it, or one per {} ms per session if longer; idle CPU \
             measured over {:.0} s after {:.0} s settling)\n",
            1000 / icq::server::HEARTBEAT_BUDGET,
            seconds,
            settle.as_secs_f64()
        );
        println!("| what | measured | target |");
        println!("|---|---:|---|");
        println!(
            "| clients joined / still joined after the idle period | {joined} / {still} | all |"
        );
        println!(
            "| time to fill the server (joins announced in batches up to {} people, the roster \
             to each newcomer, its first {0} entries past that: {} entries) | {:.1} s (server \
             CPU {:.1} s), {:.1} s in all | ≤ 10 s |",
            icq::server::DEFAULT_QUIET_ABOVE,
            (1..=count)
                .map(|people| people.min(icq::server::DEFAULT_QUIET_ABOVE))
                .sum::<usize>(),
            fill_time.as_secs_f64(),
            fill_cpu,
            fill_total.as_secs_f64()
        );
        println!(
            "| the clients' CPU during the fill ({} worker processes, decoding what they are sent) \
             | {clients_fill_cpu:.1} s | — |",
            pool_size
        );
        println!(
            "| server RSS: empty / {count} clients / after {:.0} s idle | {:.1} / {:.1} / {:.1} MB | ≤ 20 MB at 10 000 |",
            seconds + settle.as_secs_f64(),
            rss0 as f64 / 1024.0,
            rss1 as f64 / 1024.0,
            rss2 as f64 / 1024.0
        );
        println!(
            "| server memory per client (RSS growth after the idle period / clients) | {:.0} bytes | — |",
            (rss2.saturating_sub(rss0) * 1024) as f64 / count as f64
        );
        println!(
            "| server CPU while idle (heartbeats, timers) | {busy:.2} % of one core | ≤ 2 % |"
        );
        println!(
            "| … of which in the server's code / in the kernel (its datagrams; on loopback also \
             their delivery into the clients' sockets) | {user_busy:.2} / {system_busy:.2} % | — |"
        );
        println!(
            "| load average (1 min) after the fill / after the idle period | {load_after_fill} / \
             {load_idle} | — |"
        );
        println!(
            "| server datagrams in / out per second while idle | {:.0} / {:.0} | — |",
            server_in as f64 / seconds,
            server_out as f64 / seconds
        );
        println!(
            "| join time (join → welcome, incl. the cookie round trip), median of 5: at 10 / at {count} \
             | {:.0} / {:.0} µs | as fast |",
            tenth.as_secs_f64() * 1e6,
            last.as_secs_f64() * 1e6
        );
        println!();
        let _ = io::stdout().flush();
    }
}
