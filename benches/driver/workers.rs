//! Clients spread over worker processes: a process may hold at most 20 000 open files here
//! (the sandbox's hard limit, which root cannot raise) and each simulated client is a socket,
//! so the scale pass's 100 000 clients live in several copies of the bench binary, each
//! re-executed in worker mode (`ICQ_BENCH_WORKER` set) and driving up to [`PER_WORKER`]
//! clients with the same [`Sim`]. A worker takes one-word commands on its stdin and answers
//! one line each on its stdout; the parent measures the server from `/proc` as before.
//!
//! - `fill`: join every client, settle, answer `filled FIRST LAST JOINED` (the first and last
//!   welcome, in ns since the Unix epoch: one clock for all the processes of this machine);
//! - `count`: answer `count JOINED SENT RECEIVED` (clients in, datagrams so far);
//! - end of stdin: leave. Between commands the worker serves its clients (heartbeats).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Kind, Sim, raise_fd_limit};

/// Clients per worker: under the 20 000 open files a process may have, with room for the
/// epoll, the pipes and the few files a process opens anyway.
pub const PER_WORKER: usize = 19_000;
/// The variable that puts the bench binary in worker mode: `SERVER FIRST COUNT`.
const WORKER_VAR: &str = "ICQ_BENCH_WORKER";

/// Runs this process as a worker if it was started as one; returns whether it was.
pub fn run_if_worker() -> bool {
    let Ok(spec) = std::env::var(WORKER_VAR) else {
        return false;
    };
    let fields: Vec<&str> = spec.split_whitespace().collect();
    let [server, first, count] = fields[..] else {
        panic!("{WORKER_VAR}={spec:?}: want SERVER FIRST COUNT");
    };
    let server: SocketAddr = server.parse().expect("the server's address");
    let first: usize = first.parse().expect("the first client's number");
    let count: usize = count.parse().expect("the number of clients");
    raise_fd_limit(count + 100);
    serve(Sim::new(server), first, count);
    true
}

fn serve(mut sim: Sim, first: usize, count: usize) {
    sim.first = first;
    let commands = lines_of(std::io::stdin(), 0);
    let mut out = std::io::stdout().lock();
    loop {
        sim.pump(Duration::from_millis(20));
        let command = match commands.try_recv() {
            Ok((_, command)) => command,
            Err(TryRecvError::Empty) => continue,
            Err(TryRecvError::Disconnected) => return,
        };
        let answer = match command.as_str() {
            "fill" => {
                sim.joined.clear();
                sim.join_range(Kind::Named, count, Duration::from_secs(1800));
                let (first_at, last_at) = welcome_span(&sim);
                sim.settle(Duration::from_millis(300), Duration::from_secs(120));
                format!("filled {first_at} {last_at} {}", sim.joined_count())
            }
            "count" => format!("count {} {} {}", sim.joined_count(), sim.sent, sim.received),
            _ => panic!("worker: unknown command {command:?}"),
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}

/// The first and the last welcome in `sim.joined`, in ns since the Unix epoch.
fn welcome_span(sim: &Sim) -> (u128, u128) {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let epoch_ns = |at: Instant| {
        (wall - now.duration_since(at))
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    };
    let first = sim.joined.iter().map(|&(_, at)| at).min();
    let last = sim.joined.iter().map(|&(_, at)| at).max();
    (first.map_or(0, epoch_ns), last.map_or(0, epoch_ns))
}

/// Every line `source` gives, tagged with `tag`, from a thread of its own.
fn lines_of(source: impl std::io::Read + Send + 'static, tag: usize) -> Receiver<(usize, String)> {
    let (send, receive) = channel();
    forward(source, tag, send);
    receive
}

fn forward(source: impl std::io::Read + Send + 'static, tag: usize, to: Sender<(usize, String)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { return };
            if to.send((tag, line)).is_err() {
                return;
            }
        }
    });
}

/// Worker processes, each playing its share of the clients.
pub struct Workers {
    children: Vec<(Child, Option<ChildStdin>)>,
    answers: Receiver<(usize, String)>,
}

/// What `fill` measured over all the workers.
pub struct Filled {
    /// From the first welcome any worker saw to the last.
    pub span: Duration,
    pub joined: usize,
}

/// What `count` found over all the workers.
pub struct Counted {
    pub joined: usize,
    pub sent: u64,
    pub received: u64,
}

impl Workers {
    /// `count` clients numbered from `first`, over `processes` workers (at least enough
    /// that none holds more than [`PER_WORKER`]).
    pub fn start(server: SocketAddr, first: usize, count: usize, processes: usize) -> Workers {
        let processes = processes.max(count.div_ceil(PER_WORKER)).max(1);
        let exe = std::env::current_exe().expect("this bench's own path");
        let (send, answers) = channel();
        let mut children = Vec::new();
        let mut next = first;
        for k in 0..processes {
            let share = count / processes + usize::from(k < count % processes);
            let mut child = Command::new(&exe)
                .env(WORKER_VAR, format!("{server} {next} {share}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting a bench worker");
            forward(child.stdout.take().expect("a pipe"), k, send.clone());
            let stdin = child.stdin.take();
            children.push((child, stdin));
            next += share;
        }
        Workers { children, answers }
    }

    /// Sends `command` to every worker and collects their answers, serving `sim`'s own
    /// clients while waiting.
    fn ask(&mut self, command: &str, sim: &mut Sim) -> Vec<Vec<String>> {
        for (_, stdin) in &mut self.children {
            let stdin = stdin.as_mut().expect("a worker's stdin");
            writeln!(stdin, "{command}").expect("a worker took its command");
            stdin.flush().expect("a worker took its command");
        }
        let mut answers = vec![Vec::new(); self.children.len()];
        let mut waiting = self.children.len();
        while waiting > 0 {
            match self.answers.try_recv() {
                Ok((k, line)) => {
                    answers[k] = line.split_whitespace().skip(1).map(str::to_owned).collect();
                    waiting -= 1;
                }
                Err(TryRecvError::Empty) => {
                    sim.pump(Duration::from_millis(5));
                }
                Err(TryRecvError::Disconnected) => {
                    panic!("a bench worker ended before answering {command:?}")
                }
            }
        }
        answers
    }

    /// Every worker joins all its clients at once; returns when all are in.
    pub fn fill(&mut self, sim: &mut Sim) -> Filled {
        let answers = self.ask("fill", sim);
        let field = |a: &Vec<String>, i: usize| a[i].parse::<u128>().expect("a number");
        let first = answers.iter().map(|a| field(a, 0)).min().unwrap_or(0);
        let last = answers.iter().map(|a| field(a, 1)).max().unwrap_or(0);
        let span_ns = u64::try_from(last.saturating_sub(first)).unwrap_or(u64::MAX);
        Filled {
            span: Duration::from_nanos(span_ns),
            joined: answers.iter().map(|a| field(a, 2) as usize).sum(),
        }
    }

    /// The workers' clients still in, and the datagrams they sent and received so far.
    pub fn count(&mut self, sim: &mut Sim) -> Counted {
        let answers = self.ask("count", sim);
        let sum = |i: usize| -> u64 {
            answers
                .iter()
                .map(|a| a[i].parse::<u64>().expect("a number"))
                .sum()
        };
        Counted {
            joined: sum(0) as usize,
            sent: sum(1),
            received: sum(2),
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing a worker's stdin tells it to leave; one stuck is killed.
        for (child, stdin) in &mut self.children {
            drop(stdin.take());
            let until = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
