//! `cargo bench --bench history`: how fast the history store takes lines — appended in
//! memory, and persisted to an SQLite file with the writes batched (one transaction per
//! flush) at several batch sizes, side by side — and the CPU time (this thread's, user and
//! system, from `/proc/thread-self/schedstat`) per line and per transaction.
//!
//! The server commits at most every 50 ms, so a batch is whatever the room said meanwhile: 1
//! line when it is quiet, hundreds under load. Each SQLite transaction ends in an fsync (WAL,
//! `synchronous = FULL`), so lines persisted per second grow with the batch. The file is made
//! in the system's temporary directory (`TMPDIR` to measure another disk).

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use icq::history::{DEFAULT_CAPACITY, History, Kind};

/// A typical chat line.
const TEXT: &str = "did anyone try the new build on the lab machines? it hangs for me on start";

/// How long each figure is measured.
const BUDGET: Duration = Duration::from_secs(2);

fn main() {
    let quick = std::env::var_os("ICQ_BENCH_QUICK").is_some_and(|v| v != "0");
    let budget = if quick { BUDGET / 4 } else { BUDGET };

    let mut history = History::in_memory(DEFAULT_CAPACITY, 1);
    let cpu0 = cpu_ns();
    let (lines, elapsed) = run(budget, 1_000, || {
        for i in 0..1_000u64 {
            history.append(i, "alice", Kind::Chat, TEXT);
        }
    });
    println!(
        "memory: {:>12.0} lines appended/s, {:.3} µs CPU per line (capacity {DEFAULT_CAPACITY}, {lines} lines)",
        lines as f64 / elapsed.as_secs_f64(),
        (cpu_ns() - cpu0) as f64 / 1e3 / lines as f64
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    for batch in [1u64, 8, 64, 512] {
        let path = dir.path().join(format!("history-{batch}.db"));
        let opened = History::open(&path, DEFAULT_CAPACITY, 2).expect("open the database");
        assert!(opened.warning.is_none(), "{:?}", opened.warning);
        let mut history = opened.history;
        let cpu0 = cpu_ns();
        let (lines, elapsed) = run(budget, batch, || {
            for i in 0..batch {
                history.append(i, "alice", Kind::Chat, TEXT);
            }
            history.flush().expect("flush");
        });
        let cpu = (cpu_ns() - cpu0) as f64 / 1e3;
        let stats = history.stats();
        assert_eq!(stats.persisted, lines);
        println!(
            "sqlite: {:>12.0} lines persisted/s, {:>6.0} transactions/s, CPU {:>6.1} µs per transaction, {:>5.2} per line ({batch:>3} lines per flush, {lines} lines)",
            lines as f64 / elapsed.as_secs_f64(),
            stats.transactions as f64 / elapsed.as_secs_f64(),
            cpu / stats.transactions as f64,
            cpu / lines as f64,
        );
    }
}

/// Calls `step` (which handles `per_step` lines) until `budget` has passed; returns the lines
/// handled and the time taken.
fn run(budget: Duration, per_step: u64, mut step: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut lines = 0;
    while start.elapsed() < budget {
        step();
        lines += per_step;
    }
    (lines, start.elapsed())
}

/// The CPU time this thread has used (user and system, the fsyncs' included), in ns; 0
/// where `/proc/thread-self/schedstat` does not exist.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
