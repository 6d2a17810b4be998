//! `cargo bench --bench fanout`: the release `icq-server` under load from simulated clients.
//!
//! Cargo builds the server (`icq-server` with the bench profile, optimized like release)
//! before this program runs; it starts a fresh server on a free 127.0.0.1 port for each
//! pass, drives it from this one process and stops it by its PID. Each simulated client is
//! the library's own sans-IO `icq::client::Client` (or a plain-text guest) behind its own
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
//!   ≤ 1.05 × off), and the lines persisted per second;
//! - the scale pass: N idle named clients (5 000 by default; `ICQ_BENCH_IDLE=10000` for the
//!   issue's 10 000, about six minutes more), the server's RSS and the CPU their heartbeats
//!   and timers cost, and how long a join takes at 10 and at N clients.
//!
//! About five minutes in all; `ICQ_BENCH_QUICK=1` shrinks every pass (about two minutes);
//! `ICQ_BENCH_IDLE=N` sets the scale pass's client count (0 skips it); `ICQ_BENCH_SERVER=PATH`
//! measures another build; `ICQ_BENCH_NS="10 100"` the load passes' client counts;
//! `ICQ_BENCH_HISTORY="10 100"` the history pass's (empty: skipped); `ICQ_BENCH_ONLY=history`
//! runs the history pass alone (about 1.5 minutes). Linux only (`epoll`, `/proc`). The
//! clients' sockets are read with the library's own batched receive (`icq::net::Io`), and epoll, the clock tick and the file
//! descriptor limit come through nix's safe API: no unsafe code here.

#![forbid(unsafe_code)]

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("benches/fanout.rs needs Linux (epoll, /proc); nothing measured");
}

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(target_os = "linux")]
mod linux {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::io::{self, Write as _};
    use std::net::{SocketAddr, UdpSocket};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use icq::client::{Client, ClientEvent};
    use icq::history::{DEFAULT_CAPACITY, History};
    use icq::net::Io;
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use nix::unistd::{SysconfVar, sysconf};
    /// Joins in flight at once while filling the server: a burst of padded joins beyond
    /// this would overflow the server's receive buffer and wait for the client's retry.
    const JOINS_IN_FLIGHT: usize = 64;
    /// Each client socket's receive buffer (capped by net.core.rmem_max).
    const RCVBUF: usize = 1 << 20;
    /// A pass gives up on messages in flight after this long without progress.
    const STALL: Duration = Duration::from_secs(1);
    /// Before a timed join: quiet for longer than the clients' acknowledgement delay (10 ms),
    /// so the join does not meet the last join's acknowledgements; much longer, and an idle
    /// virtual CPU falls asleep and takes milliseconds to wake, whatever the server does.
    const QUIET_MS: u64 = 30;

    pub fn main() {
        let quick = std::env::var_os("ICQ_BENCH_QUICK").is_some_and(|v| v != "0");
        let idle: usize = std::env::var("ICQ_BENCH_IDLE")
            .ok()
            .and_then(|v| v.parse().ok())
            // Every join is announced to everyone already there, so filling a server with N
            // clients costs N²/2 notices: 5 000 take ~1.5 minutes here, 10 000 about six
            // (ICQ_BENCH_IDLE=10000), more than this benchmark's budget of five minutes.
            .unwrap_or(if quick { 1_000 } else { 5_000 });
        // Another build can be measured the same way (ICQ_BENCH_SERVER=path/to/icq-server).
        let server_override = std::env::var("ICQ_BENCH_SERVER").ok();
        let server = server_override
            .as_deref()
            .unwrap_or(env!("CARGO_BIN_EXE_icq-server"));
        raise_fd_limit(idle + 100);
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
            let idle_for = if quick { 10 } else { 30 };
            scale(server, idle, Duration::from_secs(idle_for));
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Kind {
        /// Plain-text clients (`--guests`): no sequence numbers, no acknowledgements.
        Guest,
        /// The protocol's clients: the library's `Client` core.
        Named,
    }

    impl Kind {
        fn label(self) -> &'static str {
            match self {
                Kind::Guest => "guests",
                Kind::Named => "named",
            }
        }
    }

    /// A running `icq-server`, killed by its PID when dropped.
    struct ServerProcess {
        child: Child,
        addr: SocketAddr,
    }

    impl ServerProcess {
        fn start(binary: &str, extra: &[&str]) -> ServerProcess {
            // A free port: bind, note it, let go (the server binds it a moment later).
            let port = UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .expect("a free local port")
                .port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let bans =
                std::env::temp_dir().join(format!("icq-bench-bans-{}.txt", std::process::id()));
            let _ = std::fs::write(&bans, "");
            let child = Command::new(binary)
                .args([
                    "--bind",
                    &addr.to_string(),
                    "--flood-rate",
                    "0",
                    "--max-per-ip",
                    "0",
                ])
                .arg("--bans")
                .arg(&bans)
                .args(extra)
                .stdin(Stdio::null())
                // The log of every chat line is part of the work, as in run.sh.
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting icq-server");
            let server = ServerProcess { child, addr };
            // Ready once it answers: a malformed datagram gets no answer, so wait for the
            // socket to exist by probing with a join that gets a challenge.
            let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
            probe
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut client = Client::new("probe", vec![addr], Instant::now());
            for _ in 0..100 {
                while let Some((to, bytes)) = client.poll_transmit() {
                    let _ = probe.send_to(&bytes, to);
                }
                let mut buf = [0u8; 2048];
                if let Ok((len, from)) = probe.recv_from(&mut buf) {
                    client.handle_datagram(Instant::now(), from, &buf[..len]);
                    if client.is_joined() {
                        break;
                    }
                }
                client.handle_timeout(Instant::now());
            }
            assert!(client.is_joined(), "icq-server did not answer on {addr}");
            client.leave(Instant::now());
            while let Some((to, bytes)) = client.poll_transmit() {
                let _ = probe.send_to(&bytes, to);
            }
            std::thread::sleep(Duration::from_millis(50));
            server
        }

        fn pid(&self) -> u32 {
            self.child.id()
        }

        /// utime + stime so far, in clock ticks.
        fn cpu_ticks(&self) -> u64 {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after.split_whitespace().collect();
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            // After the command name: state is field 0, utime 11, stime 12.
            field(11) + field(12)
        }

        /// Resident memory in KiB.
        fn rss_kib(&self) -> u64 {
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        }
    }

    impl Drop for ServerProcess {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn ticks_per_second() -> f64 {
        match sysconf(SysconfVar::CLK_TCK) {
            Ok(Some(ticks)) if ticks > 0 => ticks as f64,
            _ => 100.0,
        }
    }

    /// System-wide UDP counters: (InDatagrams, OutDatagrams, RcvbufErrors).
    fn udp_counters() -> (u64, u64, u64) {
        let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
        let mut lines = snmp.lines().filter(|l| l.starts_with("Udp: "));
        let (Some(head), Some(values)) = (lines.next(), lines.next()) else {
            return (0, 0, 0);
        };
        let get = |name: &str| {
            head.split_whitespace()
                .zip(values.split_whitespace())
                .find(|(h, _)| *h == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        };
        (get("InDatagrams"), get("OutDatagrams"), get("RcvbufErrors"))
    }

    fn raise_fd_limit(want: usize) {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
        let soft = if setrlimit(Resource::RLIMIT_NOFILE, hard.max(soft), hard).is_ok() {
            hard.max(soft)
        } else {
            soft
        };
        if (soft as usize) < want {
            eprintln!("warning: {soft} file descriptors allowed, {want} wanted (ulimit -n)");
        }
    }

    /// One simulated client: its socket (connected to the server) and its core.
    struct Peer {
        socket: UdpSocket,
        core: Core,
        /// The deadline this peer has in `Sim::timers`, if any.
        armed: Option<Instant>,
    }

    enum Core {
        Named(Box<Client>),
        Guest { registered: bool },
    }

    /// Every client of one pass, one thread, one epoll.
    struct Sim {
        server: SocketAddr,
        epoll: Epoll,
        peers: Vec<Peer>,
        timers: BinaryHeap<Reverse<(Instant, usize)>>,
        start: Instant,
        /// Datagrams this process sent to / received from the server.
        sent: u64,
        received: u64,
        /// Takes the datagrams of one client socket at a time, in batches.
        io: Io<(SocketAddr, Vec<u8>)>,
        /// Messages that arrived: (peer, seq, latency ns), for the pass to count.
        arrived: Vec<(usize, u32, u64)>,
        joined: Vec<(usize, Instant)>,
        /// Joins that timed out and started over.
        rejoins: u64,
        /// When a datagram other than a heartbeat's answer last arrived.
        last_activity: Instant,
    }

    impl Sim {
        fn new(server: SocketAddr) -> Sim {
            let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).expect("epoll_create1");
            // The batches' buffers, for every client socket in turn.
            let io = Io::new(&UdpSocket::bind("127.0.0.1:0").expect("a socket"));
            Sim {
                server,
                epoll,
                peers: Vec::new(),
                timers: BinaryHeap::new(),
                start: Instant::now(),
                sent: 0,
                received: 0,
                io,
                arrived: Vec::new(),
                joined: Vec::new(),
                rejoins: 0,
                last_activity: Instant::now(),
            }
        }

        /// Adds a client; a named one starts joining at once, a guest registers with its
        /// first line (see [`Sim::greet`]).
        fn add(&mut self, kind: Kind, now: Instant) -> usize {
            let index = self.peers.len();
            let socket = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
            socket.connect(self.server).expect("connect");
            socket.set_nonblocking(true).unwrap();
            let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(RCVBUF);
            let event = EpollEvent::new(EpollFlags::EPOLLIN, index as u64);
            self.epoll.add(&socket, event).expect("epoll_ctl");
            let core = match kind {
                Kind::Named => Core::Named(Box::new(Client::new(
                    &format!("c{index}"),
                    vec![self.server],
                    now,
                ))),
                Kind::Guest => Core::Guest { registered: false },
            };
            self.peers.push(Peer {
                socket,
                core,
                armed: None,
            });
            self.after(index, now);
            index
        }

        /// A guest's first line (registers it; its echo says it is in).
        fn greet(&mut self, index: usize) {
            let hello = format!("hello from {index}");
            let _ = self.peers[index].socket.send(hello.as_bytes());
            self.sent += 1;
        }

        fn is_in(&self, index: usize) -> bool {
            match &self.peers[index].core {
                Core::Named(client) => client.is_joined(),
                Core::Guest { registered } => *registered,
            }
        }

        /// Sends message `seq` from peer `index`.
        fn send_message(&mut self, index: usize, seq: u32, now: Instant) {
            let t = now.duration_since(self.start).as_nanos() as u64;
            let text = format!("bench {seq} {t}");
            match &mut self.peers[index].core {
                Core::Named(client) => client.send_text(now, &text),
                Core::Guest { .. } => {
                    let _ = self.peers[index].socket.send(text.as_bytes());
                    self.sent += 1;
                }
            }
            self.after(index, now);
        }

        /// Sends what a named client queued, takes its events, and re-arms its timer.
        fn after(&mut self, index: usize, now: Instant) {
            let peer = &mut self.peers[index];
            let Core::Named(client) = &mut peer.core else {
                return;
            };
            while let Some((_, bytes)) = client.poll_transmit() {
                let _ = peer.socket.send(&bytes);
                self.sent += 1;
            }
            while let Some(event) = client.poll_event() {
                match event {
                    ClientEvent::Message { text, .. } => {
                        if let Some((seq, latency)) = parse(&text, self.start, now) {
                            self.arrived.push((index, seq, latency));
                        }
                    }
                    ClientEvent::Joined { .. } => self.joined.push((index, now)),
                    _ => {}
                }
            }
            if let Some(deadline) = client.poll_timeout()
                && peer.armed.is_none_or(|armed| deadline < armed)
            {
                peer.armed = Some(deadline);
                self.timers.push(Reverse((deadline, index)));
            }
        }

        /// Waits up to `wait` for datagrams, handles all that came and every due timer.
        /// Returns how many datagrams arrived.
        fn pump(&mut self, wait: Duration) -> usize {
            let now = Instant::now();
            let wait = match self.timers.peek() {
                Some(Reverse((deadline, _))) => wait.min(deadline.saturating_duration_since(now)),
                None => wait,
            };
            let mut events = [EpollEvent::empty(); 256];
            let ms = u32::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u32::MAX);
            let timeout = EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::MAX);
            let ready = self.epoll.wait(&mut events, timeout).unwrap_or(0);
            let mut count = 0;
            for event in &events[..ready] {
                count += self.drain(event.data() as usize);
            }
            let now = Instant::now();
            while let Some(&Reverse((deadline, index))) = self.timers.peek() {
                if deadline > now {
                    break;
                }
                self.timers.pop();
                let peer = &mut self.peers[index];
                if peer.armed != Some(deadline) {
                    continue;
                }
                peer.armed = None;
                if let Core::Named(client) = &mut peer.core {
                    client.handle_timeout(now);
                }
                self.after(index, now);
            }
            count
        }

        /// Takes every datagram waiting on peer `index`'s socket.
        fn drain(&mut self, index: usize) -> usize {
            let mut total = 0;
            loop {
                let got = self.io.receive(&self.peers[index].socket, None);
                if got == 0 {
                    return total;
                }
                let now = Instant::now();
                for (datagram, _) in self.io.datagrams() {
                    self.received += 1;
                    // Byte 3 is the frame kind; 0x86 is the server's bare acknowledgement.
                    if datagram.get(3) != Some(&0x86) {
                        self.last_activity = now;
                    }
                    match &mut self.peers[index].core {
                        Core::Named(client) => client.handle_datagram(now, self.server, datagram),
                        Core::Guest { registered } => {
                            // A packed datagram holds several lines: each is a delivery.
                            let text = String::from_utf8_lossy(datagram);
                            for line in text.split_inclusive('\n') {
                                if let Some(at) = line.find("bench ") {
                                    if let Some((seq, latency)) =
                                        parse(&line[at..], self.start, now)
                                    {
                                        self.arrived.push((index, seq, latency));
                                    }
                                } else if !*registered
                                    && line.contains(&format!("hello from {index}\n"))
                                {
                                    *registered = true;
                                    self.joined.push((index, now));
                                }
                            }
                        }
                    }
                }
                self.after(index, now);
                total += got;
                if !self.io.fell_behind(got) {
                    return total;
                }
            }
        }

        /// One named client joins while only its own socket is watched; returns the time
        /// from its first join datagram to the welcome.
        fn join_one(&mut self) -> Duration {
            // The socket first (a guest sends nothing when added), then the clock starts.
            let index = self.add(Kind::Guest, Instant::now());
            let started = Instant::now();
            let name = format!("c{index}");
            self.peers[index].core =
                Core::Named(Box::new(Client::new(&name, vec![self.server], started)));
            self.after(index, started);
            loop {
                self.drain(index);
                if self.is_in(index) {
                    let joined = self.joined.iter().rev().find(|(i, _)| *i == index);
                    return joined.map_or(started.elapsed(), |(_, at)| at.duration_since(started));
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "a join took 10 s"
                );
                if let Core::Named(client) = &mut self.peers[index].core
                    && client.poll_timeout().is_some_and(|t| t <= Instant::now())
                {
                    client.handle_timeout(Instant::now());
                    self.after(index, Instant::now());
                }
            }
        }

        /// Runs until nothing has arrived for `quiet` (all acknowledgements and notices
        /// settled), or `limit` has passed.
        /// Heartbeat answers do not count: with thousands of clients they never stop.
        fn settle(&mut self, quiet: Duration, limit: Duration) {
            let until = Instant::now() + limit;
            self.last_activity = Instant::now();
            while Instant::now() < until && self.last_activity.elapsed() < quiet {
                self.pump(Duration::from_millis(5));
            }
            self.arrived.clear();
        }

        /// Brings peers `from..to` in, at most [`JOINS_IN_FLIGHT`] joining at once, while
        /// serving everyone already in. Returns when all are in.
        fn join_range(&mut self, kind: Kind, count: usize, limit: Duration) {
            let first = self.peers.len();
            let until = Instant::now() + limit;
            let mut next = first;
            let mut last_greet = Instant::now();
            let mut last_report = Instant::now();
            while (first..self.peers.len()).filter(|&i| self.is_in(i)).count() < count {
                if Instant::now() >= until {
                    let gave_up = (first..self.peers.len())
                        .filter(|&i| matches!(&self.peers[i].core, Core::Named(c) if c.is_closed()))
                        .count();
                    let in_now = (first..self.peers.len()).filter(|&i| self.is_in(i)).count();
                    panic!(
                        "joining {count} clients took over {limit:?}: {in_now} in, {gave_up} gave \
                         up, {} started",
                        self.peers.len() - first
                    );
                }
                let in_now = (first..self.peers.len()).filter(|&i| self.is_in(i)).count();
                while next < first + count && next - first < in_now + JOINS_IN_FLIGHT {
                    let index = self.add(kind, Instant::now());
                    if kind == Kind::Guest {
                        self.greet(index);
                    }
                    next += 1;
                }
                self.pump(Duration::from_millis(5));
                if count >= 1000 && last_report.elapsed() > Duration::from_secs(10) {
                    last_report = Instant::now();
                    eprintln!("joining: {in_now} of {count} in");
                }
                // A client whose join timed out (the server was busy announcing the joins
                // before it) starts over, as a person would.
                for i in first..self.peers.len() {
                    if let Core::Named(client) = &mut self.peers[i].core
                        && client.is_closed()
                    {
                        **client = Client::new(&format!("c{i}"), vec![self.server], Instant::now());
                        self.rejoins += 1;
                        self.after(i, Instant::now());
                    }
                }
                // A guest's hello is not repeated by any core: repeat it here.
                if kind == Kind::Guest && last_greet.elapsed() > Duration::from_millis(200) {
                    last_greet = Instant::now();
                    for i in first..self.peers.len() {
                        if !self.is_in(i) {
                            self.greet(i);
                        }
                    }
                }
            }
        }
    }

    /// `bench SEQ T` → (SEQ, now − T in ns).
    fn parse(text: &str, start: Instant, now: Instant) -> Option<(u32, u64)> {
        let mut words = text.strip_prefix("bench ")?.split_whitespace();
        let seq = words.next()?.parse().ok()?;
        let sent: u64 = words.next()?.parse().ok()?;
        let at = now.duration_since(start).as_nanos() as u64;
        Some((seq, at.saturating_sub(sent)))
    }

    /// What one load or latency pass measured.
    struct Pass {
        deliveries: u64,
        expected: u64,
        duplicates: u64,
        seconds: f64,
        cpu_us_per_delivery: f64,
        server_out_per_delivery: f64,
        server_in_per_delivery: f64,
        rcvbuf_errors: u64,
        p50_us: f64,
        p99_us: f64,
        max_us: f64,
    }

    impl Pass {
        /// N clients of `kind`, M messages from client 0 with `window` in flight; with
        /// `all`, a message is done once every client has it. `extra`: more options for
        /// the server.
        fn run(
            binary: &str,
            kind: Kind,
            n: usize,
            m: usize,
            window: usize,
            all: bool,
            extra: &[&str],
        ) -> Pass {
            let max_clients = (n + 10).to_string();
            let mut args = vec!["--guests", "--max-clients", &max_clients];
            args.extend_from_slice(extra);
            let server = ServerProcess::start(binary, &args);
            let mut sim = Sim::new(server.addr);
            sim.join_range(kind, n, Duration::from_secs(20));
            sim.settle(Duration::from_millis(300), Duration::from_secs(30));

            let mut seen = vec![0u64; (n * m).div_ceil(64)];
            let mut got = vec![0u32; m];
            let mut latencies: Vec<u32> = Vec::with_capacity(n * m);
            let (mut deliveries, mut duplicates) = (0u64, 0u64);
            let (mut sent, mut done) = (0usize, 0usize);
            let expected = (n * m) as u64;

            let cpu0 = server.cpu_ticks();
            let (in0, out0, drops0) = udp_counters();
            let (sent0, received0) = (sim.sent, sim.received);
            let t0 = Instant::now();
            let mut last_progress = t0;
            let mut last_delivery = t0;
            while deliveries < expected {
                let now = Instant::now();
                while sent < m && sent - done < window {
                    sim.send_message(0, sent as u32, now);
                    sent += 1;
                }
                if now.duration_since(t0) > Duration::from_secs(120) {
                    break;
                }
                sim.pump(Duration::from_millis(100));
                let now = Instant::now();
                for (peer, seq, latency) in sim.arrived.drain(..) {
                    let (peer, seq) = (peer, seq as usize);
                    if seq >= m {
                        continue;
                    }
                    let bit = peer * m + seq;
                    if seen[bit / 64] & (1 << (bit % 64)) != 0 {
                        duplicates += 1;
                        continue;
                    }
                    seen[bit / 64] |= 1 << (bit % 64);
                    deliveries += 1;
                    last_progress = now;
                    last_delivery = now;
                    latencies.push((latency / 1000).min(u64::from(u32::MAX)) as u32);
                    got[seq] += 1;
                    let finished = if all {
                        got[seq] as usize == n
                    } else {
                        peer == 0
                    };
                    if finished && seq >= done && seq < sent {
                        done = seq + 1;
                    }
                }
                if now.duration_since(last_progress) > STALL {
                    if sent == m {
                        break;
                    }
                    if sent - done >= window {
                        done = sent; // given up as lost; the window reopens
                        last_progress = now;
                    }
                }
            }
            let seconds = last_delivery.duration_since(t0).as_secs_f64();
            let cpu1 = server.cpu_ticks();
            let (in1, out1, drops1) = udp_counters();
            let ours_out = sim.sent - sent0;
            let ours_in = sim.received - received0;
            let per = |x: f64| {
                if deliveries > 0 {
                    x / deliveries as f64
                } else {
                    0.0
                }
            };
            latencies.sort_unstable();
            let pick = |q: f64| {
                if latencies.is_empty() {
                    0.0
                } else {
                    let i =
                        ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
                    f64::from(latencies[i - 1])
                }
            };
            let pass = Pass {
                deliveries,
                expected,
                duplicates,
                seconds,
                cpu_us_per_delivery: per((cpu1 - cpu0) as f64 / ticks_per_second() * 1e6),
                // Everything the machine sent over UDP, less what this process sent, is
                // what the server sent; likewise for what it received.
                server_out_per_delivery: per(
                    out1.saturating_sub(out0).saturating_sub(ours_out) as f64
                ),
                server_in_per_delivery: per(in1.saturating_sub(in0).saturating_sub(ours_in) as f64),
                rcvbuf_errors: drops1.saturating_sub(drops0),
                p50_us: pick(0.50),
                p99_us: pick(0.99),
                max_us: latencies.last().map_or(0.0, |&l| f64::from(l)),
            };
            eprintln!(
                "{} N={n} W={window}{}: {} deliveries in {:.2} s, {:.2} µs CPU each",
                kind.label(),
                if all { " (all)" } else { "" },
                pass.deliveries,
                pass.seconds,
                pass.cpu_us_per_delivery
            );
            pass
        }

        fn rate(&self) -> f64 {
            if self.seconds > 0.0 {
                self.deliveries as f64 / self.seconds
            } else {
                0.0
            }
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

    /// The scale pass: `count` named clients join and stay idle.
    fn scale(binary: &str, count: usize, idle_for: Duration) {
        let server = ServerProcess::start(binary, &["--max-clients", &(count + 100).to_string()]);
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
        let cpu_fill0 = server.cpu_ticks();
        let fill_start = Instant::now();
        sim.join_range(
            Kind::Named,
            count.saturating_sub(10 + 5),
            Duration::from_secs(900),
        );
        sim.settle(Duration::from_millis(300), Duration::from_secs(120));
        let fill_time = fill_start.elapsed();
        let fill_cpu = (server.cpu_ticks() - cpu_fill0) as f64 / ticks_per_second();
        let last = timed(&mut sim, 5);
        let fill_total = t0.elapsed();
        let joined = sim
            .peers
            .iter()
            .filter(|p| matches!(&p.core, Core::Named(c) if c.is_joined()))
            .count();
        sim.settle(Duration::from_millis(500), Duration::from_secs(120));
        let rss1 = server.rss_kib();

        let cpu0 = server.cpu_ticks();
        let (in0, out0, _) = udp_counters();
        let (sent0, received0) = (sim.sent, sim.received);
        let idle_start = Instant::now();
        while idle_start.elapsed() < idle_for {
            sim.pump(Duration::from_millis(100));
        }
        let cpu1 = server.cpu_ticks();
        let (in1, out1, _) = udp_counters();
        let seconds = idle_start.elapsed().as_secs_f64();
        let busy = (cpu1 - cpu0) as f64 / ticks_per_second() / seconds * 100.0;
        let server_out = out1.saturating_sub(out0).saturating_sub(sim.sent - sent0);
        let server_in = in1
            .saturating_sub(in0)
            .saturating_sub(sim.received - received0);
        let still = sim
            .peers
            .iter()
            .filter(|p| matches!(&p.core, Core::Named(c) if c.is_joined()))
            .count();
        let rss2 = server.rss_kib();

        println!("## Scale: {count} idle named clients\n");
        println!("| what | measured | target |");
        println!("|---|---:|---|");
        println!(
            "| clients joined / still joined after the idle period | {joined} / {still} | all |"
        );
        println!(
            "| time to fill the server (every join is announced to everyone: {} notices) \
             | {:.1} s (server CPU {:.1} s), {:.1} s in all | — |",
            count * (count - 1) / 2,
            fill_time.as_secs_f64(),
            fill_cpu,
            fill_total.as_secs_f64()
        );
        println!(
            "| server RSS: empty / {count} clients / after {:.0} s idle | {:.1} / {:.1} / {:.1} MB | ≤ 30 MB |",
            seconds,
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
