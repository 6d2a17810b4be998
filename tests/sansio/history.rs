//! The history store on real SQLite files in a temporary directory: creating, reopening,
//! trimming, WAL mode, refusing files that are not ours without changing a byte, the
//! read-only fallback, a writer killed with SIGKILL losing nothing it flushed, and the
//! writer taken out of its history committing the batches handed to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use icq::history::{
    APPLICATION_ID, Access, History, Kind, OpenError, Opened, SCHEMA_VERSION, Warning,
};
use rusqlite::Connection;

fn open(path: &Path, capacity: usize, epoch: u64) -> History {
    let Opened { history, warning } = History::open(path, capacity, epoch).expect("open");
    assert_eq!(warning, None);
    history
}

fn say(history: &mut History, from: u64, to: u64) {
    for i in from..=to {
        let seq = history.append(
            1_700_000_000_000 + i,
            "alice",
            Kind::Chat,
            &format!("line {i}"),
        );
        assert_eq!(seq, i);
    }
}

/// The rows in the file, read with a connection of our own (as `sqlite3` would).
fn rows(path: &Path) -> Vec<(i64, String)> {
    let conn = Connection::open(path).unwrap();
    let mut statement = conn
        .prepare("SELECT seq, text FROM lines ORDER BY seq")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn seqs(history: &History) -> Vec<u64> {
    history.last(usize::MAX).iter().map(|l| l.seq).collect()
}

#[test]
fn a_missing_file_is_created_in_wal_mode_with_our_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut history = open(&path, 100, 0x0123_4567_89AB_CDEF);
    assert!(path.exists());
    assert!(history.is_persistent());
    say(&mut history, 1, 3);
    assert_eq!(history.flush(), Ok(3));

    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .unwrap();
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!((id, version), (APPLICATION_ID, SCHEMA_VERSION));
    let (epoch, newest): (String, i64) = conn
        .query_row("SELECT epoch, newest FROM meta", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((epoch.as_str(), newest), ("0123456789abcdef", 3));
    let (name, kind, time): (String, String, i64) = conn
        .query_row(
            "SELECT name, kind, time_ms FROM lines WHERE seq = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (name.as_str(), kind.as_str(), time),
        ("alice", "chat", 1_700_000_000_002)
    );
}

#[test]
fn appends_reach_the_file_only_at_flush_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut history = open(&path, 100, 1);
    say(&mut history, 1, 5);
    assert_eq!(history.pending(), 5);
    assert_eq!(history.last(10).len(), 5, "queryable before the flush");
    assert!(rows(&path).is_empty());
    assert_eq!(history.flush(), Ok(5));
    assert_eq!(history.flush(), Ok(0), "nothing new: no transaction");
    assert_eq!(rows(&path).len(), 5);
    let stats = history.stats();
    assert_eq!((stats.persisted, stats.transactions), (5, 1));
}

#[test]
fn a_writer_taken_out_commits_the_batches_handed_to_it_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut history = open(&path, 100, 1);
    let mut writer = history.take_writer().expect("a file, so a writer");
    assert!(history.take_writer().is_none(), "taken once");
    assert!(
        history.is_persistent(),
        "lines are still collected for the file"
    );
    say(&mut history, 1, 3);
    assert_eq!(history.flush(), Ok(0), "the writer is elsewhere");
    assert_eq!(history.pending(), 3, "and the lines wait for it");
    let mut batch = history.take_batch().expect("three lines");
    assert_eq!((batch.len(), history.pending()), (3, 0));
    assert!(history.take_batch().is_none(), "nothing new");
    say(&mut history, 4, 5);
    batch.absorb(history.take_batch().unwrap());
    assert!(
        rows(&path).is_empty(),
        "nothing written before the writer writes"
    );
    writer.write(&batch).unwrap();
    assert_eq!(
        rows(&path).iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let stats = writer.stats();
    assert_eq!((stats.persisted, stats.transactions), (5, 1));
    drop((history, writer));
    assert_eq!(seqs(&open(&path, 100, 2)), [1, 2, 3, 4, 5]);
}

#[test]
fn batches_joined_keep_the_newest_lines_and_the_file_its_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut history = open(&path, 3, 1);
    let mut writer = history.take_writer().unwrap();
    say(&mut history, 1, 2);
    let mut batch = history.take_batch().unwrap();
    say(&mut history, 3, 7);
    batch.absorb(history.take_batch().unwrap());
    assert_eq!(
        batch.len(),
        3,
        "older lines would be trimmed by the same transaction"
    );
    writer.write(&batch).unwrap();
    assert_eq!(
        rows(&path).iter().map(|r| r.0).collect::<Vec<_>>(),
        [5, 6, 7]
    );
    drop((history, writer));
    let mut reopened = open(&path, 3, 2);
    assert_eq!(
        reopened.append(8, "bob", Kind::Chat, "on"),
        8,
        "numbering goes on"
    );
}

#[test]
fn a_history_whose_writer_failed_goes_on_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut history = open(&path, 10, 1);
    let _writer = history.take_writer().unwrap();
    history.let_go();
    assert!(!history.is_persistent());
    say(&mut history, 1, 2);
    assert_eq!((history.pending(), history.take_batch()), (0, None));
    assert_eq!(seqs(&history), [1, 2]);
}

#[test]
fn reopening_keeps_the_epoch_the_lines_and_the_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut history = open(&path, 100, 0xE1);
    say(&mut history, 1, 5);
    history.append(9, "op", Kind::Console, "server going down");
    history.flush().unwrap();
    let before = history.last(100);
    drop(history);

    let mut history = open(&path, 100, 0xE2);
    assert_eq!(
        history.epoch(),
        0xE1,
        "the epoch of the file, not the new one"
    );
    assert_eq!(history.last(100), before);
    assert_eq!(history.newest(), 6);
    assert_eq!(history.append(10, "bob", Kind::Action, "waves"), 7);
    history.flush().unwrap();
    drop(history);
    let history = open(&path, 100, 0xE3);
    assert_eq!(seqs(&history), (1..=7).collect::<Vec<_>>());
    assert_eq!(history.last(1)[0].kind, Kind::Action);
}

#[test]
fn the_file_is_trimmed_to_the_capacity_and_numbering_survives_the_trim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut history = open(&path, 4, 7);
    for i in 1..=10 {
        say(&mut history, i, i);
        if i % 3 == 0 {
            history.flush().unwrap();
        }
    }
    history.flush().unwrap();
    let kept: Vec<i64> = rows(&path).iter().map(|r| r.0).collect();
    assert_eq!(kept, [7, 8, 9, 10]);
    drop(history);

    let history = open(&path, 4, 8);
    assert_eq!(seqs(&history), [7, 8, 9, 10]);
    let missed = history.after(2, 100).unwrap();
    assert_eq!(missed.gone, 4, "lines 3 to 6 are gone, and said so");
    drop(history);

    // Reopened with a smaller capacity: the newest lines are held; the file is trimmed at the
    // next write.
    let mut history = open(&path, 2, 9);
    assert_eq!(seqs(&history), [9, 10]);
    say(&mut history, 11, 11);
    history.flush().unwrap();
    let kept: Vec<i64> = rows(&path).iter().map(|r| r.0).collect();
    assert_eq!(kept, [10, 11]);
}

#[test]
fn an_empty_file_or_empty_database_becomes_a_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("touched.db");
    std::fs::write(&path, b"").unwrap();
    let mut history = open(&path, 10, 3);
    say(&mut history, 1, 2);
    history.flush().unwrap();
    assert_eq!(rows(&path).len(), 2);
}

/// The file's bytes and the directory's names, to show nothing was changed or added.
fn snapshot(dir: &Path, path: &Path) -> (Vec<u8>, Vec<PathBuf>) {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    (std::fs::read(path).unwrap(), names)
}

#[test]
fn another_programs_database_is_refused_and_left_byte_for_byte_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO users (name) VALUES ('carol'), ('dave');",
        )
        .unwrap();
    }
    let before = snapshot(dir.path(), &path);
    let error = History::open(&path, 100, 1).unwrap_err();
    assert!(matches!(error, OpenError::Foreign { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("not an icq history") && message.contains("not changed"),
        "{message}"
    );
    assert_eq!(snapshot(dir.path(), &path), before);
}

#[test]
fn our_application_id_with_another_shape_or_a_newer_version_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let shape = dir.path().join("shape.db");
    {
        let conn = Connection::open(&shape).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};
             CREATE TABLE meta (epoch TEXT, newest INTEGER);
             CREATE TABLE lines (seq INTEGER PRIMARY KEY, body TEXT);"
        ))
        .unwrap();
    }
    let newer = dir.path().join("newer.db");
    {
        let dir_history = open(&newer, 10, 1);
        drop(dir_history);
        let conn = Connection::open(&newer).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let before = (
        std::fs::read(&shape).unwrap(),
        std::fs::read(&newer).unwrap(),
    );
    let error = History::open(&shape, 10, 1).unwrap_err();
    assert!(matches!(error, OpenError::Foreign { .. }), "{error:?}");
    let error = History::open(&newer, 10, 1).unwrap_err();
    assert!(
        matches!(error, OpenError::NewerSchema { version, .. } if version == SCHEMA_VERSION + 1),
        "{error:?}"
    );
    assert_eq!(
        (
            std::fs::read(&shape).unwrap(),
            std::fs::read(&newer).unwrap()
        ),
        before
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("bans.txt", b"10.0.0.0/8 # noisy lab\n".to_vec()),
        ("short", b"SQLite".to_vec()),
        ("noise", (0..8192u32).map(|i| (i * 7 % 251) as u8).collect()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let before = snapshot(dir.path(), &path);
        let error = History::open(&path, 100, 1).unwrap_err();
        assert!(
            matches!(error, OpenError::NotSqlite { .. }),
            "{name}: {error:?}"
        );
        assert!(error.to_string().contains("is not an SQLite database"));
        assert_eq!(snapshot(dir.path(), &path), before, "{name}");
    }
}

/// Root may write any file or directory whatever its mode, so read-only is made real in
/// two ways that hold for root too: a directory in /proc, where nobody can create a file,
/// and an existing history opened with a read-only SQLite connection.
#[test]
fn a_database_that_cannot_be_written_leaves_a_working_history_in_memory() {
    let path = Path::new("/proc/self/icq-history-test.db");
    let Opened {
        mut history,
        warning,
    } = History::open(path, 10, 0x77).expect("a warning, not an error");
    let warning = warning.expect("a warning");
    assert!(matches!(warning, Warning::ReadOnly { .. }), "{warning:?}");
    assert!(
        warning.to_string().contains("kept in memory only"),
        "{warning}"
    );
    assert!(!history.is_persistent());
    assert_eq!(history.epoch(), 0x77);
    say(&mut history, 1, 3);
    assert_eq!(history.flush(), Ok(0));
    assert_eq!(history.last(5).len(), 3);
    assert!(!path.exists());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut writer = open(&path, 10, 0x88);
    say(&mut writer, 1, 4);
    writer.flush().unwrap();
    drop(writer);
    let before = std::fs::read(&path).unwrap();
    let Opened {
        mut history,
        warning,
    } = History::open_with(&path, 10, 0x99, Access::ReadOnly).unwrap();
    assert!(
        matches!(warning, Some(Warning::ReadOnly { .. })),
        "{warning:?}"
    );
    assert_eq!(history.epoch(), 0x88, "what the file held is read");
    assert_eq!(seqs(&history), [1, 2, 3, 4]);
    assert_eq!(history.append(1, "bob", Kind::Chat, "still here"), 5);
    assert_eq!(history.flush(), Ok(0));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(rows(&path).len(), 4);
}

/// Kills the child on every way out of the test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CRASH_ENV: &str = "ICQ_HISTORY_CRASH_CHILD_DB";

/// The child half of the crash test (does nothing when run by itself): appends forever,
/// flushing every 7 lines and printing the newest line flushed.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_ENV) else {
        return;
    };
    let mut history = open(Path::new(&path), 1_000_000, 5);
    for i in 1.. {
        history.append(i, "alice", Kind::Chat, &format!("line {i}"));
        if i % 7 == 0 {
            history.flush().unwrap();
            println!("flushed {i}");
        }
    }
}

#[test]
fn a_writer_killed_with_sigkill_loses_no_flushed_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "history::crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("flushed ")
                && tx.send(n.parse::<u64>().unwrap()).is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut flushed = 0;
    while flushed < 700 {
        let left = deadline.saturating_duration_since(Instant::now());
        flushed = rx.recv_timeout(left).expect("the child flushes");
    }
    child.0.kill().unwrap(); // SIGKILL: no destructor, no clean close.
    child.0.wait().unwrap();
    while let Ok(n) = rx.try_recv() {
        flushed = n;
    }

    let history = open(&path, 1_000_000, 6);
    assert_eq!(history.epoch(), 5);
    let lines = history.last(usize::MAX);
    assert!(lines.len() as u64 >= flushed, "{} < {flushed}", lines.len());
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!((line.seq, line.text.clone()), (n, format!("line {n}")));
    }
}

#[test]
fn a_second_writer_on_the_same_file_is_stopped_not_mixed_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut first = open(&path, 100, 1);
    let mut second = open(&path, 100, 2);
    say(&mut first, 1, 3);
    first.flush().unwrap();
    second.append(5, "mallory", Kind::Chat, "overwrite line 1");
    let warning = second.flush().unwrap_err();
    assert!(
        matches!(warning, Warning::WriteFailed { .. }),
        "{warning:?}"
    );
    assert!(!second.is_persistent(), "in memory from now on");
    assert_eq!(second.last(1)[0].text, "overwrite line 1");
    let texts: Vec<String> = rows(&path).into_iter().map(|r| r.1).collect();
    assert_eq!(texts, ["line 1", "line 2", "line 3"]);
}
