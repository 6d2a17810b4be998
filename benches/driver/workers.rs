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
//! - end of stdin: the worker exits at once, whatever it is doing (so a parent that died
//!   leaves no worker behind). Between commands the worker serves its clients (heartbeats).
//!
//! The parent fails loudly: a worker that exits, answers anything but the expected line, or
//! is silent past the command's deadline is a panic naming the worker and its clients, and
//! every worker is killed when [`Workers`] is dropped (on that panic too).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::ops::Range;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Kind, Sim, process_cpu_ticks, raise_fd_limit};

/// Clients per worker: under the 20 000 open files a process may have, with room for the
/// epoll, the pipes and the few files a process opens anyway.
pub const PER_WORKER: usize = 19_000;
/// The variable that puts the bench binary in worker mode: `SERVER FIRST COUNT`.
const WORKER_VAR: &str = "ICQ_BENCH_WORKER";
/// How long a worker's clients may take to join (it panics past this)...
const JOIN_LIMIT: Duration = Duration::from_secs(1800);
/// ... and to settle after the last welcome.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);
/// How long the parent waits for a `fill` answer: the worker's own limits, and a margin.
const FILL_DEADLINE: Duration = JOIN_LIMIT
    .saturating_add(SETTLE_LIMIT)
    .saturating_add(Duration::from_secs(60));
/// How long the parent waits for a `count` answer (a worker answers between two pumps).
const COUNT_DEADLINE: Duration = Duration::from_secs(30);

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
    let commands = commands_from_stdin();
    let mut out = std::io::stdout().lock();
    loop {
        sim.pump(Duration::from_millis(20));
        let command = match commands.try_recv() {
            Ok(command) => command,
            Err(TryRecvError::Empty) => continue,
            Err(TryRecvError::Disconnected) => return,
        };
        let answer = match command.as_str() {
            "fill" => {
                sim.joined.clear();
                sim.join_range(Kind::Named, count, JOIN_LIMIT);
                let (first_at, last_at) = welcome_span(&sim);
                sim.settle(Duration::from_millis(300), SETTLE_LIMIT);
                format!("filled {first_at} {last_at} {}", sim.joined_count())
            }
            "count" => format!("count {} {} {}", sim.joined_count(), sim.sent, sim.received),
            _ => panic!("bench worker (clients {first}..): unknown command {command:?}"),
        };
        // A parent that stopped reading is gone: the end of stdin ends this process.
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}

/// The parent's commands, from a thread of its own that ends this process when stdin ends:
/// the parent closed it to stop this worker, or died (the kernel closed it), even while a
/// `fill` is under way and nothing reads the channel.
fn commands_from_stdin() -> Receiver<String> {
    let (send, receive) = channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
        std::process::exit(0);
    });
    receive
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

/// What a worker's stdout gave the parent: a line, or its end (the worker exited).
enum Said {
    Line(String),
    Ended,
}

/// Forwards worker `k`'s every stdout line to `to`, then [`Said::Ended`], from a thread of
/// its own.
fn forward(source: impl std::io::Read + Send + 'static, k: usize, to: Sender<(usize, Said)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { break };
            if to.send((k, Said::Line(line))).is_err() {
                return;
            }
        }
        let _ = to.send((k, Said::Ended));
    });
}

/// One worker process and the clients it plays.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    clients: Range<usize>,
}

/// Worker processes, each playing its share of the clients.
pub struct Workers {
    workers: Vec<Worker>,
    answers: Receiver<(usize, Said)>,
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
        let processes = Workers::needed(count, processes);
        let exe = std::env::current_exe().expect("this bench's own path");
        let (send, answers) = channel();
        let mut pool = Workers {
            workers: Vec::new(),
            answers,
        };
        let mut next = first;
        for k in 0..processes {
            let share = count / processes + usize::from(k < count % processes);
            // Pushed as soon as it runs, so a failure to start the next still kills it.
            let mut child = Command::new(&exe)
                .env(WORKER_VAR, format!("{server} {next} {share}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("starting bench worker {k} ({exe:?}): {e}"));
            forward(
                child.stdout.take().expect("a piped stdout"),
                k,
                send.clone(),
            );
            let stdin = child.stdin.take();
            pool.workers.push(Worker {
                child,
                stdin,
                clients: next..next + share,
            });
            next += share;
        }
        pool
    }

    /// How many worker processes `count` clients take when `wanted` are asked for.
    pub fn needed(count: usize, wanted: usize) -> usize {
        wanted.max(count.div_ceil(PER_WORKER)).max(1)
    }

    /// Sends `command` to every worker and collects their answers (each `reply` and `fields`
    /// numbers), serving `sim`'s own clients while waiting; panics, naming the worker, if
    /// one exits, answers anything else, or has not answered within `deadline`.
    fn ask(
        &mut self,
        command: &str,
        reply: &str,
        fields: usize,
        deadline: Duration,
        sim: &mut Sim,
    ) -> Vec<Vec<u128>> {
        for k in 0..self.workers.len() {
            let stdin = self.workers[k]
                .stdin
                .as_mut()
                .expect("a worker's stdin, open until drop");
            if let Err(e) = writeln!(stdin, "{command}").and_then(|()| stdin.flush()) {
                panic!("bench {} did not take {command:?}: {e}", self.describe(k));
            }
        }
        let until = Instant::now() + deadline;
        let mut answers: Vec<Option<Vec<u128>>> = vec![None; self.workers.len()];
        while answers.iter().any(Option::is_none) {
            let (k, said) = match self.answers.try_recv() {
                Ok(answer) => answer,
                Err(TryRecvError::Empty) => {
                    if Instant::now() >= until {
                        let silent: Vec<_> = (0..answers.len())
                            .filter(|&k| answers[k].is_none())
                            .map(|k| self.describe(k))
                            .collect();
                        panic!(
                            "no answer to {command:?} within {deadline:?} from bench {}",
                            silent.join(", ")
                        );
                    }
                    sim.pump(Duration::from_millis(5));
                    continue;
                }
                // Each forwarding thread holds a sender until it has said `Ended`.
                Err(TryRecvError::Disconnected) => unreachable!("every worker said it ended"),
            };
            let line = match said {
                Said::Line(line) => line,
                Said::Ended => panic!(
                    "bench {} ended before answering {command:?}",
                    self.describe(k)
                ),
            };
            let parsed = parse_answer(&line, reply, fields);
            let Some(numbers) = parsed.filter(|_| answers[k].is_none()) else {
                panic!(
                    "bench {} answered {line:?} to {command:?} (want `{reply}` and {fields} \
                     numbers, once)",
                    self.describe(k)
                );
            };
            answers[k] = Some(numbers);
        }
        answers.into_iter().flatten().collect()
    }

    /// Worker `k`, its clients and, if it has exited, how.
    fn describe(&mut self, k: usize) -> String {
        // A moment for an exit that closed stdout to be seen as an exit.
        std::thread::sleep(Duration::from_millis(50));
        let worker = &mut self.workers[k];
        let state = match worker.child.try_wait() {
            Ok(Some(status)) => format!("exited, {status}"),
            Ok(None) => "still running".to_owned(),
            Err(e) => format!("state unknown: {e}"),
        };
        format!(
            "worker {k} (pid {}, clients {:?}, {state})",
            worker.child.id(),
            worker.clients
        )
    }

    /// How many worker processes there are.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// The workers' CPU time (utime + stime) so far, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.workers
            .iter()
            .map(|worker| process_cpu_ticks(worker.child.id()))
            .sum()
    }

    /// Every worker joins all its clients at once; returns when all are in.
    pub fn fill(&mut self, sim: &mut Sim) -> Filled {
        let answers = self.ask("fill", "filled", 3, FILL_DEADLINE, sim);
        let first = answers.iter().map(|a| a[0]).min().unwrap_or(0);
        let last = answers.iter().map(|a| a[1]).max().unwrap_or(0);
        let span_ns = u64::try_from(last.saturating_sub(first)).unwrap_or(u64::MAX);
        Filled {
            span: Duration::from_nanos(span_ns),
            joined: answers.iter().map(|a| a[2] as usize).sum(),
        }
    }

    /// The workers' clients still in, and the datagrams they sent and received so far.
    pub fn count(&mut self, sim: &mut Sim) -> Counted {
        let answers = self.ask("count", "count", 3, COUNT_DEADLINE, sim);
        let sum = |i: usize| answers.iter().map(|a| a[i] as u64).sum::<u64>();
        Counted {
            joined: sum(0) as usize,
            sent: sum(1),
            received: sum(2),
        }
    }
}

/// `REPLY N1 N2 …` with exactly `fields` numbers → the numbers.
fn parse_answer(line: &str, reply: &str, fields: usize) -> Option<Vec<u128>> {
    let mut words = line.split_whitespace();
    if words.next() != Some(reply) {
        return None;
    }
    let numbers: Vec<u128> = words.map(str::parse).collect::<Result<_, _>>().ok()?;
    (numbers.len() == fields).then_some(numbers)
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing a worker's stdin tells it to leave (all at once, so they leave together);
        // one still running after the grace period is killed.
        for worker in &mut self.workers {
            drop(worker.stdin.take());
        }
        let until = Instant::now() + Duration::from_secs(5);
        for worker in &mut self.workers {
            while matches!(worker.child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = worker.child.kill();
            let _ = worker.child.wait();
        }
    }
}
