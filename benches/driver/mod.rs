//! The fan-out benchmarks' driver (shared by `benches/fanout.rs` and `benches/versus_irc.rs`):
//! starting a release `icq-server` on a free 127.0.0.1 port and stopping it by its PID, and N
//! simulated clients — the library's own sans-IO `icq::client::Client`, or a plain-text guest —
//! each behind its own non-blocking UDP socket, all served by one thread with `epoll`; one
//! load or latency pass (one sender, a window of W messages in flight) and what it measured.
//! It does not print tables or choose the passes: each benchmark does. `workers` spreads a
//! pass's clients over several processes of this kind, for more sockets than one may hold.
//!
//! Each benchmark uses a part of it, so unused items are allowed here.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use icq::client::{Client, ClientEvent};
use icq::net::Io;
use icq::proto::chat::ChatEvent;
use icq::proto::packing::Packer;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::unistd::{SysconfVar, sysconf};

pub mod workers;
/// Joins in flight at once while filling the server: a burst of padded joins beyond
/// this would overflow the server's receive buffer and wait for the client's retry.
pub const JOINS_IN_FLIGHT: usize = 64;
/// Each client socket's receive buffer (capped by net.core.rmem_max).
pub const RCVBUF: usize = 1 << 20;
/// A pass gives up on messages in flight after this long without progress.
pub const STALL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Plain-text clients (`--guests`): no sequence numbers, no acknowledgements.
    Guest,
    /// The protocol's clients: the library's `Client` core.
    Named,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Guest => "guests",
            Kind::Named => "named",
        }
    }
}

/// A running `icq-server`, killed by its PID when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its (empty) ban list, removed with it.
    bans: PathBuf,
}

impl ServerProcess {
    /// Started and answering a join of this build's client (so of this wire version).
    pub fn start(binary: &str, extra: &[&str]) -> ServerProcess {
        let server = ServerProcess::spawn(binary, extra);
        server.probe();
        server
    }

    /// Started and bound, its readiness seen in /proc/net/udp as the kit's scripts see it:
    /// for a server driven by guests only, of whatever wire version (an older build).
    pub fn start_bound(binary: &str, extra: &[&str]) -> ServerProcess {
        let mut server = ServerProcess::spawn(binary, extra);
        let want = format!("0100007F:{:04X}", server.addr.port());
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
            // The local address is the second field; 07 is an unconnected socket's state.
            let bound = table.lines().skip(1).any(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                f.get(1) == Some(&want.as_str()) && f.get(3) == Some(&"07")
            });
            if bound {
                return server;
            }
            let exited = !matches!(server.child.try_wait(), Ok(None));
            assert!(
                !exited && Instant::now() < until,
                "icq-server did not bind {}",
                server.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(binary: &str, extra: &[&str]) -> ServerProcess {
        // A free port: bind, note it, let go (the server binds it a moment later).
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free local port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let bans = std::env::temp_dir().join(format!("icq-bench-bans-{}.txt", std::process::id()));
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
        ServerProcess { child, addr, bans }
    }

    fn probe(&self) {
        let addr = self.addr;
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
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime so far, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        process_cpu_ticks(self.pid())
    }

    /// CPU time (user + system) so far of the server's threads named `name`, in ns (from
    /// `/proc/PID/task/TID/schedstat`); 0 when it has none.
    pub fn thread_cpu_ns(&self, name: &str) -> u64 {
        let tasks = format!("/proc/{}/task", self.pid());
        let Ok(entries) = std::fs::read_dir(tasks) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
            .filter_map(|task| {
                let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                stat.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum()
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
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
        let _ = std::fs::remove_file(&self.bans);
    }
}

/// utime + stime so far of process `pid` (all its threads), in clock ticks; 0 once it is gone.
pub fn process_cpu_ticks(pid: u32) -> u64 {
    let (user, system) = process_user_system_ticks(pid);
    user + system
}

/// (utime, stime) so far of process `pid`, in clock ticks: the CPU in its own code and in the
/// kernel's on its behalf (on loopback that includes delivering what it sends into the
/// receiving sockets).
pub fn process_user_system_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the command name: state is field 0, utime 11, stime 12.
    (field(11), field(12))
}

/// CPU time (user + system) used so far by `who`, in seconds.
pub fn cpu_seconds(who: UsageWho) -> f64 {
    getrusage(who).map_or(0.0, |usage| {
        let (user, system) = (usage.user_time(), usage.system_time());
        user.tv_sec() as f64
            + system.tv_sec() as f64
            + (user.tv_usec() + system.tv_usec()) as f64 / 1e6
    })
}

/// This process's CPU time so far, in seconds.
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds(UsageWho::RUSAGE_SELF)
}

pub fn ticks_per_second() -> f64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

/// The 1-minute load average (`/proc/loadavg`), printed with the figures: the machine is
/// shared, and its load moves wall times.
pub fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg.split_whitespace().next().unwrap_or("?").to_owned()
}

/// System-wide UDP counters: (InDatagrams, OutDatagrams, RcvbufErrors).
pub fn udp_counters() -> (u64, u64, u64) {
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

/// Lets this process hold `want` sockets: the soft limit up to the hard one, and past the
/// hard one too where it may (root may raise it up to `fs.nr_open`).
pub fn raise_fd_limit(want: usize) {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
    let want_limit = want as u64;
    let soft = if want_limit > hard
        && setrlimit(Resource::RLIMIT_NOFILE, want_limit, want_limit).is_ok()
    {
        want_limit
    } else if setrlimit(Resource::RLIMIT_NOFILE, hard.max(soft), hard).is_ok() {
        hard.max(soft)
    } else {
        soft
    };
    if soft < want_limit {
        eprintln!("warning: {soft} file descriptors allowed, {want} wanted (ulimit -n)");
    }
}

/// Client sockets bound to one loopback address: fewer than the 28 232 ephemeral ports of
/// Linux's default range (`net.ipv4.ip_local_port_range`), so 100 000 clients take
/// addresses 127.0.0.1 to 127.0.0.5, each with its own ports (all of 127.0.0.0/8 is this
/// machine's loopback).
const CLIENTS_PER_ADDRESS: usize = 20_000;

/// The loopback address client `index` sends from.
fn client_address(index: usize) -> SocketAddr {
    let host = 1 + (index / CLIENTS_PER_ADDRESS).min(250) as u8;
    SocketAddr::from(([127, 0, 0, host], 0))
}

/// One simulated client: its socket (connected to the server) and its core.
pub struct Peer {
    pub socket: UdpSocket,
    pub core: Core,
    /// The deadline this peer has in `Sim::timers`, if any.
    pub armed: Option<Instant>,
}

pub enum Core {
    Named(Box<Client>),
    Guest { registered: bool },
}

/// Every client of one pass, one thread, one epoll.
pub struct Sim {
    pub server: SocketAddr,
    /// The number of this process's first client among all of a pass's: a worker process
    /// (`workers`) plays clients `first..`, with their names and loopback addresses.
    pub first: usize,
    pub epoll: Epoll,
    pub peers: Vec<Peer>,
    pub timers: BinaryHeap<Reverse<(Instant, usize)>>,
    pub start: Instant,
    /// Datagrams this process sent to / received from the server, as the kernel's
    /// counters count them (a message of several datagrams that arrived together is one).
    pub sent: u64,
    pub received: u64,
    /// Takes the datagrams of one client socket at a time, in batches.
    pub io: Io<(SocketAddr, Vec<u8>)>,
    /// Messages that arrived: (peer, seq, latency ns), for the pass to count.
    pub arrived: Vec<(usize, u32, u64)>,
    pub joined: Vec<(usize, Instant)>,
    /// Joins that timed out and started over.
    pub rejoins: u64,
    /// When a datagram other than a heartbeat's answer last arrived.
    pub last_activity: Instant,
}

impl Sim {
    pub fn new(server: SocketAddr) -> Sim {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).expect("epoll_create1");
        // The batches' buffers, for every client socket in turn.
        // Every client socket it reads coalesces receives, as the client program's does.
        let reader = UdpSocket::bind("127.0.0.1:0").expect("a socket");
        icq::net::coalesce_receives(&reader);
        let io = Io::new(&reader);
        Sim {
            server,
            first: 0,
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
    pub fn add(&mut self, kind: Kind, now: Instant) -> usize {
        let index = self.peers.len();
        let socket = UdpSocket::bind(client_address(self.first + index)).expect("a client socket");
        socket.connect(self.server).expect("connect");
        socket.set_nonblocking(true).unwrap();
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(RCVBUF);
        // As the client program does for its socket.
        icq::net::coalesce_receives(&socket);
        let event = EpollEvent::new(EpollFlags::EPOLLIN, index as u64);
        self.epoll.add(&socket, event).expect("epoll_ctl");
        let core = match kind {
            Kind::Named => Core::Named(Box::new(Client::new(
                &self.name(index),
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

    /// Peer `index`'s name: unique among all the processes' clients.
    pub fn name(&self, index: usize) -> String {
        format!("c{}", self.first + index)
    }

    /// How many named peers are in the room.
    pub fn joined_count(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| matches!(&p.core, Core::Named(c) if c.is_joined()))
            .count()
    }

    /// A guest's first line (registers it; its echo says it is in).
    pub fn greet(&mut self, index: usize) {
        let hello = format!("hello from {index}");
        let _ = self.peers[index].socket.send(hello.as_bytes());
        self.sent += 1;
    }

    pub fn is_in(&self, index: usize) -> bool {
        match &self.peers[index].core {
            Core::Named(client) => client.is_joined(),
            Core::Guest { registered } => *registered,
        }
    }

    /// Sends messages `seqs` from peer `index`, all at `now`: a named client's go packed,
    /// as the client program sends what its core queued in one turn.
    pub fn send_messages(&mut self, index: usize, seqs: std::ops::Range<u32>, now: Instant) {
        let t = now.duration_since(self.start).as_nanos() as u64;
        for seq in seqs {
            let text = format!("bench {seq} {t}");
            match &mut self.peers[index].core {
                Core::Named(client) => client.send_text(now, &text),
                Core::Guest { .. } => {
                    let _ = self.peers[index].socket.send(text.as_bytes());
                    self.sent += 1;
                }
            }
        }
        self.after(index, now);
    }

    /// Sends what a named client queued, takes its events, and re-arms its timer.
    pub fn after(&mut self, index: usize, now: Instant) {
        let peer = &mut self.peers[index];
        let Core::Named(client) = &mut peer.core else {
            return;
        };
        let queued: Vec<(SocketAddr, Vec<u8>)> =
            std::iter::from_fn(|| client.poll_transmit()).collect();
        if queued.len() == 1 {
            let _ = peer.socket.send(&queued[0].1);
            self.sent += 1;
        } else if !queued.is_empty() {
            let mut packer = Packer::new();
            packer.plan(&queued);
            let mut datagram = Vec::new();
            for group in 0..packer.len() {
                packer.write(&queued, group, &mut datagram);
                let _ = peer.socket.send(&datagram);
                self.sent += 1;
            }
        }
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Chat(ChatEvent::Message { text, .. }) => {
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
    pub fn pump(&mut self, wait: Duration) -> usize {
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
    pub fn drain(&mut self, index: usize) -> usize {
        let mut total = 0;
        loop {
            let got = self.io.receive(&self.peers[index].socket, None);
            if got == 0 {
                return total;
            }
            let now = Instant::now();
            // Messages, as the kernel's counters count them: several datagrams of the
            // server that arrived together are one (`coalesce_receives`).
            self.received += got as u64;
            for (datagram, _) in self.io.datagrams() {
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
                                if let Some((seq, latency)) = parse(&line[at..], self.start, now) {
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
    pub fn join_one(&mut self) -> Duration {
        // The socket first (a guest sends nothing when added), then the clock starts.
        let index = self.add(Kind::Guest, Instant::now());
        let started = Instant::now();
        let name = self.name(index);
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
    pub fn settle(&mut self, quiet: Duration, limit: Duration) {
        let until = Instant::now() + limit;
        self.last_activity = Instant::now();
        while Instant::now() < until && self.last_activity.elapsed() < quiet {
            self.pump(Duration::from_millis(5));
        }
        self.arrived.clear();
    }

    /// Brings `count` new peers in, at most [`JOINS_IN_FLIGHT`] joining at once, while
    /// serving everyone already in. Returns when all are in. Only the peers still joining
    /// are looked at each turn, so 100 000 joins cost no quadratic scan here.
    pub fn join_range(&mut self, kind: Kind, count: usize, limit: Duration) {
        let until = Instant::now() + limit;
        let mut started = 0;
        let mut joining: Vec<usize> = Vec::new();
        let mut in_now = 0;
        let mut last_greet = Instant::now();
        let mut last_report = Instant::now();
        while in_now < count {
            if Instant::now() >= until {
                let gave_up = joining
                    .iter()
                    .filter(|&&i| matches!(&self.peers[i].core, Core::Named(c) if c.is_closed()))
                    .count();
                panic!(
                    "joining {count} clients took over {limit:?}: {in_now} in, {gave_up} gave \
                     up, {started} started"
                );
            }
            while started < count && joining.len() < JOINS_IN_FLIGHT {
                let index = self.add(kind, Instant::now());
                if kind == Kind::Guest {
                    self.greet(index);
                }
                joining.push(index);
                started += 1;
            }
            self.pump(Duration::from_millis(5));
            joining.retain(|&i| !self.is_in(i));
            in_now = started - joining.len();
            if count >= 1000 && last_report.elapsed() > Duration::from_secs(10) {
                last_report = Instant::now();
                eprintln!("joining: {in_now} of {count} in");
            }
            // A client whose join timed out (the server was busy announcing the joins
            // before it) starts over, as a person would.
            for &i in &joining {
                if let Core::Named(client) = &mut self.peers[i].core
                    && client.is_closed()
                {
                    let name = format!("c{}", self.first + i);
                    **client = Client::new(&name, vec![self.server], Instant::now());
                    self.rejoins += 1;
                    self.after(i, Instant::now());
                }
            }
            // A guest's hello is not repeated by any core: repeat it here.
            if kind == Kind::Guest && last_greet.elapsed() > Duration::from_millis(200) {
                last_greet = Instant::now();
                for &i in &joining {
                    self.greet(i);
                }
            }
        }
    }
}

/// `bench SEQ T` → (SEQ, now − T in ns).
pub fn parse(text: &str, start: Instant, now: Instant) -> Option<(u32, u64)> {
    let mut words = text.strip_prefix("bench ")?.split_whitespace();
    let seq = words.next()?.parse().ok()?;
    let sent: u64 = words.next()?.parse().ok()?;
    let at = now.duration_since(start).as_nanos() as u64;
    Some((seq, at.saturating_sub(sent)))
}

/// What one load or latency pass measured.
pub struct Pass {
    pub deliveries: u64,
    pub expected: u64,
    pub duplicates: u64,
    pub seconds: f64,
    pub cpu_us_per_delivery: f64,
    pub server_out_per_delivery: f64,
    pub server_in_per_delivery: f64,
    pub rcvbuf_errors: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// This process's CPU time (user + system) over the pass's wall time: 1.0 is one core.
    pub driver_cpu_util: f64,
    /// The part of `cpu_us_per_delivery` spent by the server's history thread (its SQLite
    /// commits; 0 without a history file).
    pub history_thread_us_per_delivery: f64,
}

impl Pass {
    /// N clients of `kind`, M messages from client 0 with `window` in flight; with
    /// `all`, a message is done once every client has it. `extra`: more options for
    /// the server.
    pub fn run(
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
        let history0 = server.thread_cpu_ns("history");
        let (in0, out0, drops0) = udp_counters();
        let (sent0, received0) = (sim.sent, sim.received);
        let self0 = self_cpu_seconds();
        let t0 = Instant::now();
        let mut last_progress = t0;
        let mut last_delivery = t0;
        while deliveries < expected {
            let now = Instant::now();
            let open = (m - sent).min(window - (sent - done).min(window));
            if open > 0 {
                sim.send_messages(0, sent as u32..(sent + open) as u32, now);
                sent += open;
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
        let wall = t0.elapsed().as_secs_f64();
        let driver_cpu = self_cpu_seconds() - self0;
        let cpu1 = server.cpu_ticks();
        let history1 = server.thread_cpu_ns("history");
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
                let i = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
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
            server_out_per_delivery: per(out1.saturating_sub(out0).saturating_sub(ours_out) as f64),
            server_in_per_delivery: per(in1.saturating_sub(in0).saturating_sub(ours_in) as f64),
            rcvbuf_errors: drops1.saturating_sub(drops0),
            p50_us: pick(0.50),
            p99_us: pick(0.99),
            max_us: latencies.last().map_or(0.0, |&l| f64::from(l)),
            driver_cpu_util: if wall > 0.0 { driver_cpu / wall } else { 0.0 },
            history_thread_us_per_delivery: per(history1.saturating_sub(history0) as f64 / 1e3),
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

    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.deliveries as f64 / self.seconds
        } else {
            0.0
        }
    }
}
