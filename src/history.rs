//! The room's history: the recent public lines (chat, actions, the server console's
//! broadcasts), numbered, and the queries the protocol asks of them.
//!
//! Each line gets a sequence number — increasing and without gaps within an *epoch*, a random
//! id chosen when a history starts — so a client that remembers (epoch, last number seen) can
//! ask for exactly what it missed and be told honestly when some of it is gone. [`Ring`] is
//! the sans-IO core: the last N lines in memory, no clock (times are passed in), no I/O.
//! [`History`] wraps it with an optional SQLite file (`--history-db`): appends go to memory
//! at once and reach the file in one transaction per [`History::flush`], in WAL mode, trimmed
//! to N lines. The file's [`Writer`] can be taken out to commit on a thread of its own, the
//! lines not yet written handed to it as a [`Batch`] (the server does, so that an fsync never
//! holds up its socket loop). A file that is not ours is refused and never written; a file we
//! cannot write leaves a working in-memory history and a [`Warning`] for the operator.
//!
//! This module does not decide who may see a line (private messages never come here), how a
//! line looks, or how history travels on the wire.

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

/// Lines kept when the operator does not say (`--history`).
pub const DEFAULT_CAPACITY: usize = 1_000;

/// `PRAGMA application_id` of our database files: "ICQh" in ASCII. A file with another id
/// belongs to some other program and is refused.
pub const APPLICATION_ID: i32 = 0x4943_5168;

/// `PRAGMA user_version` of the schema this code writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// What kind of public line an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A chat line typed by a member.
    Chat,
    /// `/me` — an action.
    Action,
    /// A broadcast typed at the server's console.
    Console,
}

impl Kind {
    /// The word stored in the database's `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Action => "action",
            Kind::Console => "console",
        }
    }

    /// The kind a stored word names, if any.
    pub fn from_word(word: &str) -> Option<Kind> {
        match word {
            "chat" => Some(Kind::Chat),
            "action" => Some(Kind::Action),
            "console" => Some(Kind::Console),
            _ => None,
        }
    }
}

/// One line of history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Its number in the epoch: the first line is 1, each next one is one more.
    pub seq: u64,
    /// The server's time when it was said, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Who said it (for [`Kind::Console`], the name the console speaks as).
    pub name: String,
    pub kind: Kind,
    pub text: String,
}

/// The answer to "what came after line S": the lines held, in order, and what could not be
/// given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct After {
    pub lines: Vec<Line>,
    /// Lines after S that are no longer held (trimmed away); they come before `lines`.
    pub gone: u64,
    /// Lines after the last one returned that the limit left out: ask again from there.
    pub remaining: u64,
}

/// The answer to "the K lines before line S" (paging back with `/history`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub lines: Vec<Line>,
    /// Lines still held before the first one returned: the next page.
    pub earlier: u64,
    /// Lines of this epoch before those that are no longer held.
    pub gone: u64,
}

/// A question the history cannot answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// Asked for what came after a line that was never said in this epoch: the asker is
    /// confused or lying, and must not be told that it missed nothing.
    Ahead { asked: u64, newest: u64 },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Ahead { asked, newest } => write!(
                f,
                "asked for lines after line {asked}, but the newest line is {newest}"
            ),
        }
    }
}

impl std::error::Error for QueryError {}

/// The last `capacity` lines of one epoch, in memory: the sans-IO core of the history.
///
/// Invariant: the lines held are exactly `oldest ..= newest` with no gaps, so a sequence
/// number maps to a position by subtraction.
#[derive(Clone, Debug)]
pub struct Ring {
    lines: VecDeque<Line>,
    capacity: usize,
    /// The number of the newest line ever said in this epoch (0: none yet). It keeps
    /// counting when lines are trimmed, or when nothing is held (capacity 0), so "gone" stays
    /// honest.
    newest: u64,
}

impl Ring {
    /// An empty history keeping at most `capacity` lines (0: none are kept).
    pub fn new(capacity: usize) -> Ring {
        Ring {
            lines: VecDeque::new(),
            capacity,
            newest: 0,
        }
    }

    /// A history that continues after line `newest`, holding what of `lines` is the gapless
    /// run ending at `newest` (older lines, or lines after a hole, count as gone).
    fn resume(capacity: usize, newest: u64, mut lines: Vec<Line>) -> Ring {
        lines.sort_by_key(|line| line.seq);
        let mut kept = VecDeque::new();
        let mut want = newest;
        while let Some(line) = lines.pop() {
            if line.seq != want || want == 0 || kept.len() == capacity {
                break;
            }
            want -= 1;
            kept.push_front(line);
        }
        Ring {
            lines: kept,
            capacity,
            newest,
        }
    }

    /// Records a line and returns its sequence number, dropping the oldest line when full.
    pub fn push(&mut self, time_ms: u64, name: &str, kind: Kind, text: &str) -> u64 {
        self.newest += 1;
        if self.capacity == 0 {
            return self.newest;
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(Line {
            seq: self.newest,
            time_ms,
            name: name.to_owned(),
            kind,
            text: text.to_owned(),
        });
        self.newest
    }

    /// The most lines held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of the newest line said in this epoch (0: none yet).
    pub fn newest(&self) -> u64 {
        self.newest
    }

    /// How many lines are held.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The number of the oldest line held; `newest + 1` when none is.
    fn oldest(&self) -> u64 {
        self.lines.front().map_or(self.newest + 1, |line| line.seq)
    }

    /// The lines numbered `from ..= to`, all of which must be held.
    fn range(&self, from: u64, to: u64) -> Vec<Line> {
        if from > to {
            return Vec::new();
        }
        let start = (from - self.oldest()) as usize;
        let end = (to - self.oldest()) as usize;
        self.lines.range(start..=end).cloned().collect()
    }

    /// The last `k` lines held, oldest first (what a newcomer is shown).
    pub fn last(&self, k: usize) -> Vec<Line> {
        let skip = self.lines.len().saturating_sub(k);
        self.lines.iter().skip(skip).cloned().collect()
    }

    /// Up to `limit` lines after line `seq` (0: from the start of the epoch), oldest first:
    /// what a client that saw line `seq` missed. A limit above the capacity is clamped to it.
    pub fn after(&self, seq: u64, limit: usize) -> Result<After, QueryError> {
        if seq > self.newest {
            return Err(QueryError::Ahead {
                asked: seq,
                newest: self.newest,
            });
        }
        let start = self.oldest().max(seq + 1);
        let gone = start - (seq + 1);
        let limit = limit.min(self.capacity) as u64;
        let end = self
            .newest
            .min(start.saturating_add(limit).saturating_sub(1));
        let lines = if limit == 0 {
            Vec::new()
        } else {
            self.range(start, end)
        };
        let last_given = if lines.is_empty() { start - 1 } else { end };
        Ok(After {
            lines,
            gone,
            remaining: self.newest - last_given,
        })
    }

    /// Up to `k` lines before line `seq`, oldest first (paging back). A `seq` past the newest
    /// line means "before now"; a `k` above the capacity is clamped to it.
    pub fn before(&self, seq: u64, k: usize) -> Page {
        let end = seq.min(self.newest + 1).saturating_sub(1);
        let oldest = self.oldest();
        let k = k.min(self.capacity) as u64;
        let start = oldest.max(end.saturating_sub(k) + 1);
        let lines = if k == 0 || end < oldest {
            Vec::new()
        } else {
            self.range(start, end)
        };
        let first = if lines.is_empty() { end + 1 } else { start };
        let earlier = first.saturating_sub(oldest);
        Page {
            lines,
            earlier,
            gone: first.min(oldest) - 1,
        }
    }
}

/// What to do with an existing database file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read it and keep it up to date (the server's normal mode).
    ReadWrite,
    /// Read it, never write it: the history continues in memory.
    ReadOnly,
}

/// A database file that cannot be used; the file has not been changed.
#[derive(Debug)]
pub enum OpenError {
    /// The file exists but is not an SQLite database.
    NotSqlite { path: PathBuf },
    /// An SQLite database, but not an icq history (another program's file).
    Foreign { path: PathBuf, detail: String },
    /// An icq history written by a newer version of icq.
    NewerSchema { path: PathBuf, version: i32 },
    /// An icq history whose contents make no sense (edited by hand?).
    Corrupt { path: PathBuf, detail: String },
    /// The file could not be read.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// SQLite refused to read it.
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotSqlite { path } => write!(
                f,
                "{} is not an SQLite database; refusing to use it as the history (it was not changed)",
                path.display()
            ),
            OpenError::Foreign { path, detail } => write!(
                f,
                "{} is an SQLite database but not an icq history ({detail}); refusing to use it (it was not changed)",
                path.display()
            ),
            OpenError::NewerSchema { path, version } => write!(
                f,
                "{} is an icq history of a newer format (version {version}, this icq reads {SCHEMA_VERSION}); it was not changed",
                path.display()
            ),
            OpenError::Corrupt { path, detail } => write!(
                f,
                "{} is a damaged icq history ({detail}); it was not changed",
                path.display()
            ),
            OpenError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            OpenError::Sqlite { path, source } => {
                write!(f, "cannot read the history {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io { source, .. } => Some(source),
            OpenError::Sqlite { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Something the operator should hear about; the history keeps working in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// The file (or its directory) cannot be written: what it held was read, new lines are
    /// kept in memory only.
    ReadOnly { path: PathBuf, reason: String },
    /// Writing failed while running (disk full, file removed, ...): from now on the history
    /// is in memory only.
    WriteFailed { path: PathBuf, reason: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::ReadOnly { path, reason } => write!(
                f,
                "history database {} cannot be written ({reason}): history is kept in memory only and will not survive a restart",
                path.display()
            ),
            Warning::WriteFailed { path, reason } => write!(
                f,
                "writing the history database {} failed ({reason}): history is kept in memory only from now on",
                path.display()
            ),
        }
    }
}

/// Counters for measuring the database's write rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lines committed to the database since it was opened.
    pub persisted: u64,
    /// Transactions committed (flushes that had something to write).
    pub transactions: u64,
}

/// An opened history, and what the operator should be told about it.
#[derive(Debug)]
pub struct Opened {
    pub history: History,
    pub warning: Option<Warning>,
}

/// Lines not yet written to the file, to be committed in one transaction: the lines, oldest
/// first (never more than the capacity: older ones would be trimmed by the same transaction
/// anyway), the newest number said when they were taken, and the capacity to trim the file to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    lines: VecDeque<Line>,
    newest: u64,
    capacity: usize,
}

impl Batch {
    /// The `pending` lines of `ring`'s history (leaving none).
    fn take(pending: &mut VecDeque<Line>, ring: &Ring) -> Batch {
        Batch {
            lines: std::mem::take(pending),
            newest: ring.newest,
            capacity: ring.capacity,
        }
    }

    /// Adds `later`, a batch taken from the same history after this one: one transaction
    /// then writes both.
    pub fn absorb(&mut self, later: Batch) {
        self.lines.extend(later.lines);
        self.capacity = later.capacity;
        let excess = self.lines.len().saturating_sub(self.capacity);
        self.lines.drain(..excess);
        self.newest = self.newest.max(later.newest);
    }

    /// How many lines it holds.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// A history's database file, open for writing; it may be taken out of its [`History`]
/// ([`History::take_writer`]) to commit [`Batch`]es on another thread.
pub struct Writer {
    conn: Connection,
    path: PathBuf,
    stats: Stats,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Writer {
    /// Commits `batch` in one transaction (its lines, the newest number, the trim to the
    /// capacity). A failure leaves the file as it was before the transaction; the writer
    /// should then be let go (and the history goes on in memory), as the warning says.
    pub fn write(&mut self, batch: &Batch) -> Result<(), Warning> {
        match write(&mut self.conn, batch) {
            Ok(()) => {
                self.stats.persisted += batch.len() as u64;
                self.stats.transactions += 1;
                Ok(())
            }
            Err(error) => Err(Warning::WriteFailed {
                path: self.path.clone(),
                reason: error.to_string(),
            }),
        }
    }

    /// What it has committed so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }
}

/// The database side of a [`History`].
#[derive(Debug)]
struct Db {
    /// Lines appended since the last flush (or [`History::take_batch`]); never more than
    /// the capacity.
    pending: VecDeque<Line>,
    /// The file; `None` once taken out by [`History::take_writer`].
    writer: Option<Writer>,
}

/// The room's history: a [`Ring`] in memory, optionally kept in an SQLite file.
#[derive(Debug)]
pub struct History {
    ring: Ring,
    epoch: u64,
    db: Option<Db>,
}

/// How long a flush waits for another process's write lock on the file.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(50);

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

const CREATE_SCHEMA: &str = "
    CREATE TABLE meta (
        epoch  TEXT    NOT NULL,
        newest INTEGER NOT NULL
    );
    CREATE TABLE lines (
        seq     INTEGER PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        name    TEXT    NOT NULL,
        kind    TEXT    NOT NULL,
        text    TEXT    NOT NULL
    );
";

impl History {
    /// A history in memory only, starting epoch `epoch` (a fresh random id, e.g.
    /// `getrandom::u64()`).
    pub fn in_memory(capacity: usize, epoch: u64) -> History {
        History {
            ring: Ring::new(capacity),
            epoch,
            db: None,
        }
    }

    /// Opens (or creates) the history in the SQLite file `path`, keeping its last `capacity`
    /// lines. An existing history keeps its epoch and continues its numbering; a new one
    /// starts epoch `new_epoch` (a fresh random id).
    pub fn open(path: &Path, capacity: usize, new_epoch: u64) -> Result<Opened, OpenError> {
        History::open_with(path, capacity, new_epoch, Access::ReadWrite)
    }

    /// [`History::open`], saying whether the file may be written.
    pub fn open_with(
        path: &Path,
        capacity: usize,
        new_epoch: u64,
        access: Access,
    ) -> Result<Opened, OpenError> {
        let exists = check_header(path)?;
        // Look before touching: a read-only connection cannot change the file, so a foreign
        // one is refused exactly as it was found.
        let found = if exists {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|source| sqlite_error(path, source))?;
            let found = inspect(&conn, path)?;
            if access == Access::ReadOnly {
                let (epoch, ring) = match found {
                    Found::Ours => load(&conn, path, capacity)?,
                    Found::Empty => (new_epoch, Ring::new(capacity)),
                };
                return Ok(History::fallback(
                    ring,
                    epoch,
                    path,
                    "opened read-only".into(),
                ));
            }
            Some((found, conn))
        } else {
            None
        };

        match open_writable(path, capacity, new_epoch) {
            Ok(Some(history)) => Ok(Opened {
                history,
                warning: None,
            }),
            Err(Writable::Refused(error)) => Err(error),
            Ok(None) => {
                let reason = "the file or its directory is read-only".to_owned();
                History::read_only(found, path, capacity, new_epoch, reason)
            }
            Err(Writable::ReadOnly(reason)) => {
                History::read_only(found, path, capacity, new_epoch, reason)
            }
        }
    }

    /// The fallback when the file cannot be written: what it holds (if anything) in memory.
    fn read_only(
        found: Option<(Found, Connection)>,
        path: &Path,
        capacity: usize,
        new_epoch: u64,
        reason: String,
    ) -> Result<Opened, OpenError> {
        let (epoch, ring) = match found {
            Some((Found::Ours, conn)) => load(&conn, path, capacity)?,
            _ => (new_epoch, Ring::new(capacity)),
        };
        Ok(History::fallback(ring, epoch, path, reason))
    }

    fn fallback(ring: Ring, epoch: u64, path: &Path, reason: String) -> Opened {
        Opened {
            history: History {
                ring,
                epoch,
                db: None,
            },
            warning: Some(Warning::ReadOnly {
                path: path.to_owned(),
                reason,
            }),
        }
    }

    /// Records a public line said at `time_ms` and returns its sequence number. It is
    /// queryable at once; it reaches the database at the next [`History::flush`] (or with
    /// the next [`History::take_batch`]).
    pub fn append(&mut self, time_ms: u64, name: &str, kind: Kind, text: &str) -> u64 {
        let seq = self.ring.push(time_ms, name, kind, text);
        if let (Some(db), Some(line)) = (self.db.as_mut(), self.ring.lines.back())
            && line.seq == seq
        {
            if db.pending.len() == self.ring.capacity {
                db.pending.pop_front();
            }
            db.pending.push_back(line.clone());
        }
        seq
    }

    /// Commits the lines appended since the last flush to the database in one transaction
    /// and trims it to the capacity; returns how many lines were written. Without a database
    /// (or with nothing new), or with its writer taken out ([`History::take_writer`]: then
    /// [`History::take_batch`] hands the lines over), it does nothing. Should writing fail,
    /// the database is let go and the history goes on in memory: the error says so, once.
    pub fn flush(&mut self) -> Result<usize, Warning> {
        let Some(Db {
            pending,
            writer: Some(writer),
        }) = self.db.as_mut()
        else {
            return Ok(0);
        };
        if pending.is_empty() {
            return Ok(0);
        }
        let batch = Batch::take(pending, &self.ring);
        match writer.write(&batch) {
            Ok(()) => Ok(batch.len()),
            Err(warning) => {
                self.let_go();
                Err(warning)
            }
        }
    }

    /// Takes the database's writer out, to commit on a thread of its own what
    /// [`History::take_batch`] hands over; `None` without a database (or if taken already).
    /// The history stays persistent: lines keep being collected for the file.
    pub fn take_writer(&mut self) -> Option<Writer> {
        self.db.as_mut()?.writer.take()
    }

    /// The lines appended since the last flush or batch, for the file; `None` without a
    /// database or when there are none.
    pub fn take_batch(&mut self) -> Option<Batch> {
        let db = self.db.as_mut()?;
        if db.pending.is_empty() {
            return None;
        }
        Some(Batch::take(&mut db.pending, &self.ring))
    }

    /// Stops keeping the file (its writer failed, see [`Writer::write`]): the history goes
    /// on in memory.
    pub fn let_go(&mut self) {
        self.db = None;
    }

    /// This history's epoch: a client that saw another epoch has seen none of these lines.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether lines are being written to a database file.
    pub fn is_persistent(&self) -> bool {
        self.db.is_some()
    }

    /// Lines appended but not yet committed (nor handed over in a batch).
    pub fn pending(&self) -> usize {
        self.db.as_ref().map_or(0, |db| db.pending.len())
    }

    /// What the database's writer has committed; zeros without a database or with the
    /// writer taken out (ask the [`Writer`]).
    pub fn stats(&self) -> Stats {
        self.db
            .as_ref()
            .and_then(|db| db.writer.as_ref())
            .map_or_else(Stats::default, Writer::stats)
    }

    /// The lines in memory and the queries on them.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// See [`Ring::newest`].
    pub fn newest(&self) -> u64 {
        self.ring.newest()
    }

    /// See [`Ring::last`].
    pub fn last(&self, k: usize) -> Vec<Line> {
        self.ring.last(k)
    }

    /// See [`Ring::after`].
    pub fn after(&self, seq: u64, limit: usize) -> Result<After, QueryError> {
        self.ring.after(seq, limit)
    }

    /// See [`Ring::before`].
    pub fn before(&self, seq: u64, k: usize) -> Page {
        self.ring.before(seq, k)
    }
}

/// What an existing SQLite file turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// An icq history of our schema.
    Ours,
    /// A database with nothing in it (e.g. made by `sqlite3 FILE ""`): free to initialize.
    Empty,
}

/// Whether `path` exists, refusing a file that is not SQLite before SQLite sees it. An empty
/// file is an empty database to SQLite, and holds nothing to lose.
fn check_header(path: &Path) -> Result<bool, OpenError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(OpenError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut head = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|source| OpenError::Io {
            path: path.to_owned(),
            source,
        })?;
    if !head.is_empty() && head.as_slice() != SQLITE_MAGIC {
        return Err(OpenError::NotSqlite {
            path: path.to_owned(),
        });
    }
    Ok(true)
}

fn sqlite_error(path: &Path, source: rusqlite::Error) -> OpenError {
    if source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
        OpenError::NotSqlite {
            path: path.to_owned(),
        }
    } else {
        OpenError::Sqlite {
            path: path.to_owned(),
            source,
        }
    }
}

/// The column names of `table`, in order.
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    statement
        .query_map([table], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()
}

/// Tells our history apart from an empty database and from anything else.
fn inspect(conn: &Connection, path: &Path) -> Result<Found, OpenError> {
    let fail = |source| sqlite_error(path, source);
    let application_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(fail)?;
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(fail)?;
    let objects: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema ORDER BY name")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(fail)?;
    let foreign = |detail: String| OpenError::Foreign {
        path: path.to_owned(),
        detail,
    };
    if application_id == 0 && version == 0 && objects.is_empty() {
        return Ok(Found::Empty);
    }
    if application_id != APPLICATION_ID {
        return Err(foreign(format!(
            "application id {application_id:#x}, icq's is {APPLICATION_ID:#x}"
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema {
            path: path.to_owned(),
            version,
        });
    }
    if version != SCHEMA_VERSION {
        return Err(foreign(format!("schema version {version}")));
    }
    if objects != ["lines", "meta"] {
        return Err(foreign(format!("tables {}", objects.join(", "))));
    }
    let lines = columns(conn, "lines").map_err(fail)?;
    let meta = columns(conn, "meta").map_err(fail)?;
    if lines != ["seq", "time_ms", "name", "kind", "text"] || meta != ["epoch", "newest"] {
        return Err(foreign(format!(
            "columns lines({}) meta({})",
            lines.join(", "),
            meta.join(", ")
        )));
    }
    Ok(Found::Ours)
}

/// Reads a history of our schema: its epoch and its last `capacity` lines.
fn load(conn: &Connection, path: &Path, capacity: usize) -> Result<(u64, Ring), OpenError> {
    let corrupt = |detail: String| OpenError::Corrupt {
        path: path.to_owned(),
        detail,
    };
    let fail = |source| sqlite_error(path, source);
    let meta: Option<(String, i64)> = conn
        .query_row("SELECT epoch, newest FROM meta", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(fail)?;
    let Some((epoch, newest)) = meta else {
        return Err(corrupt("no epoch in table meta".into()));
    };
    let epoch = u64::from_str_radix(&epoch, 16)
        .map_err(|_| corrupt(format!("epoch {epoch:?} is not 16 hex digits")))?;
    let newest_line: Option<i64> = conn
        .query_row("SELECT max(seq) FROM lines", [], |row| row.get(0))
        .map_err(fail)?;
    let newest = newest.max(newest_line.unwrap_or(0));
    let newest = u64::try_from(newest).map_err(|_| corrupt(format!("line number {newest}")))?;
    let mut statement = conn
        .prepare("SELECT seq, time_ms, name, kind, text FROM lines ORDER BY seq DESC LIMIT ?1")
        .map_err(fail)?;
    let rows = statement
        .query_map([i64::try_from(capacity).unwrap_or(i64::MAX)], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .map_err(fail)?;
    let mut lines = Vec::new();
    for row in rows {
        let (seq, time_ms, name, kind, text) = row.map_err(fail)?;
        let (Ok(seq), Ok(time_ms)) = (u64::try_from(seq), u64::try_from(time_ms)) else {
            return Err(corrupt(format!("line {seq} has a negative number or time")));
        };
        let Some(kind) = Kind::from_word(&kind) else {
            return Err(corrupt(format!("line {seq} has unknown kind {kind:?}")));
        };
        lines.push(Line {
            seq,
            time_ms,
            name,
            kind,
            text,
        });
    }
    Ok((epoch, Ring::resume(capacity, newest, lines)))
}

/// Why the file could not be opened for writing.
enum Writable {
    /// It cannot be written: run in memory with a warning.
    ReadOnly(String),
    /// It must not be used at all.
    Refused(OpenError),
}

/// Opens `path` for writing, creating and initializing it when new or empty. `Ok(None)`: the
/// file can only be read.
fn open_writable(
    path: &Path,
    capacity: usize,
    new_epoch: u64,
) -> Result<Option<History>, Writable> {
    let cannot_write = |error: rusqlite::Error| match error.sqlite_error_code() {
        Some(
            rusqlite::ErrorCode::ReadOnly
            | rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::PermissionDenied,
        ) => Writable::ReadOnly(error.to_string()),
        _ => Writable::Refused(sqlite_error(path, error)),
    };
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(cannot_write)?;
    // SQLite quietly opens a write-protected file read-only.
    if conn
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(|error| Writable::Refused(sqlite_error(path, error)))?
    {
        return Ok(None);
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(cannot_write)?;
    // Checked again under the write lock: another process may have made it meanwhile.
    match inspect(&tx, path).map_err(Writable::Refused)? {
        Found::Ours => {}
        Found::Empty => {
            tx.execute_batch(CREATE_SCHEMA).map_err(cannot_write)?;
            tx.execute(
                "INSERT INTO meta (epoch, newest) VALUES (?1, 0)",
                [format!("{new_epoch:016x}")],
            )
            .map_err(cannot_write)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(cannot_write)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(cannot_write)?;
        }
    }
    tx.commit().map_err(cannot_write)?;
    // WAL: a commit is one append to the log, and a crash (even of the machine, with
    // synchronous = FULL) loses nothing committed; readers such as `sqlite3` do not block us.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(cannot_write)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Writable::ReadOnly(format!(
            "the file system does not allow WAL mode (journal mode {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(cannot_write)?;
    // The server's loop must not stall behind another process holding the write lock; a
    // flush that cannot get it in time fails and the history goes on in memory.
    conn.busy_timeout(BUSY_TIMEOUT).map_err(cannot_write)?;
    let (epoch, ring) = load(&conn, path, capacity).map_err(Writable::Refused)?;
    Ok(Some(History {
        ring,
        epoch,
        db: Some(Db {
            pending: VecDeque::new(),
            writer: Some(Writer {
                conn,
                path: path.to_owned(),
                stats: Stats::default(),
            }),
        }),
    }))
}

/// One transaction: the batch's lines, the newest number, and the trim to the capacity.
fn write(conn: &mut Connection, batch: &Batch) -> rusqlite::Result<()> {
    let as_sql = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (newest, capacity) = (batch.newest, batch.capacity);
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO lines (seq, time_ms, name, kind, text) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for line in &batch.lines {
            insert.execute(params![
                as_sql(line.seq),
                as_sql(line.time_ms),
                line.name,
                line.kind.as_str(),
                line.text
            ])?;
        }
        tx.prepare_cached("UPDATE meta SET newest = ?1")?
            .execute([as_sql(newest)])?;
        tx.prepare_cached("DELETE FROM lines WHERE seq <= ?1")?
            .execute([as_sql(newest.saturating_sub(capacity as u64))])?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests;
