//! The ban file as a shared document: the operator edits it by hand (with `echo >>`, with an
//! editor that saves through a temporary file and a rename, or with one that rewrites the file
//! in place) while the server reads it and writes `/ban` and `/unban` into it. This module
//! owns reading it safely (a read that looks torn waits for the file to settle), changing it
//! safely (under an advisory lock, re-read, applied, written beside it and renamed into place
//! only if nobody wrote in the meantime), following a symlink to the file it names, and
//! noticing changes on disk. It does not own the text format or matching ([`crate::bans::list`])
//! nor which bans are in force and what the operator is told ([`crate::bans::keeper`]).
//!
//! The rules, each kept by [`save`]:
//! - every byte of a line the server did not add or remove is kept: hand edits, comments,
//!   blank lines, invalid lines, a missing final newline;
//! - the file is replaced whole by a rename, so a crash leaves the old file or the new one;
//! - the rename happens only if the file is still the one that was read (same inode, size
//!   and modification time); otherwise the file is read again and the change applied again;
//! - a write that lands on the old file in the instant between that check and the rename is
//!   noticed (the old file is still open) and merged in the same way.
//!
//! Time only passes through [`Surroundings`], so every wait is tested with a fake clock.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::bans::list::{BanList, BanWarning, IpNet, parse_bytes, parse_line};

/// A file that changed while being read, or looks torn, is trusted once it has not changed
/// for this long: an editor writing the file back in place is usually done well within it.
pub const SETTLE_TIME: Duration = Duration::from_millis(200);

/// How long [`save`] waits for the file to settle or for another writer's lock before it
/// gives up (and the caller keeps the change in force without saving it).
pub const SAVE_PATIENCE: Duration = Duration::from_secs(5);

/// How often [`save`] looks again at a busy lock.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// More symlinks than this in a chain is a loop (Linux's own limit is 40).
const MAX_SYMLINKS: usize = 40;

/// Failure reading or writing the file. Display names the path and the OS error, e.g.
/// "writing ban list banned_ips.txt: permission denied (os error 13)"; [`BanFileError::reason`]
/// is the part after the path.
#[derive(Debug)]
pub enum BanFileError {
    /// The file exists but could not be read.
    Read {
        /// The ban file.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The new contents could not be written, synced or renamed into place; the old file is
    /// still intact.
    Write {
        /// The ban file.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The file never stopped changing (or looking torn) within [`SAVE_PATIENCE`], or
    /// another process held the lock that long; nothing was written.
    Busy {
        /// The ban file.
        path: PathBuf,
        /// What kept it busy.
        what: &'static str,
    },
}

impl BanFileError {
    /// Why, without the path: "permission denied (os error 13)".
    pub fn reason(&self) -> String {
        match self {
            BanFileError::Read { source, .. } | BanFileError::Write { source, .. } => {
                lowercase_first_letter(&source.to_string())
            }
            BanFileError::Busy { what, .. } => format!("{what} for {}s", SAVE_PATIENCE.as_secs()),
        }
    }
}

impl fmt::Display for BanFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (action, path) = match self {
            BanFileError::Read { path, .. } => ("reading", path),
            BanFileError::Write { path, .. } | BanFileError::Busy { path, .. } => ("writing", path),
        };
        write!(f, "{action} ban list {}: {}", path.display(), self.reason())
    }
}

/// The OS error is already part of the message, so it is not also returned as `source()`:
/// a reporter that prints the whole chain would otherwise print it twice.
impl std::error::Error for BanFileError {}

/// `message` with its first letter in lower case, as Rust error messages are written
/// ("Permission denied" becomes "permission denied") when they follow a colon.
fn lowercase_first_letter(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Read and parse the file once, as it is. A missing file is an empty list, not an error.
pub fn load(path: &Path) -> Result<(BanList, Vec<BanWarning>), BanFileError> {
    let snapshot = Snapshot::read(path)?;
    Ok(parse_bytes(&snapshot.contents))
}

// ---- reading -----------------------------------------------------------------------------

/// What identifies one version of the file cheaply: it changes whenever the contents are
/// replaced (the inode) or rewritten (size, modification time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Last modification time, if the platform reports one.
    modified: Option<SystemTime>,
    /// Length in bytes.
    len: u64,
    /// Device and inode on Unix: a different value means a different file took the name.
    identity: Option<(u64, u64)>,
}

impl FileStamp {
    /// The stamp of whatever `path` names now (following symlinks), `None` if nothing.
    fn of(path: &Path) -> Option<FileStamp> {
        fs::metadata(path)
            .ok()
            .map(|metadata| FileStamp::from(&metadata))
    }

    /// The stamp of an open file.
    fn of_open(file: &fs::File) -> Option<FileStamp> {
        file.metadata()
            .ok()
            .map(|metadata| FileStamp::from(&metadata))
    }
}

impl From<&fs::Metadata> for FileStamp {
    fn from(metadata: &fs::Metadata) -> FileStamp {
        FileStamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            identity: file_identity(metadata),
        }
    }
}

/// The (device, inode) pair naming the file itself rather than its path.
#[cfg(unix)]
fn file_identity(metadata: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

/// Stable std offers no file identity here; modification time and length must do.
#[cfg(not(unix))]
fn file_identity(_metadata: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// One read of the file: its bytes, the version read, and whether it changed meanwhile.
#[derive(Debug)]
pub struct Snapshot {
    /// The bytes read (empty for a missing file).
    pub contents: Vec<u8>,
    /// The version the bytes belong to; `None` for a missing file.
    pub stamp: Option<FileStamp>,
    /// The file changed while it was being read (its stamp differs before and after, or the
    /// name was given to another file): the bytes may be a mix of versions.
    pub moved: bool,
    /// The file read, still open: after a rename over it, writes that reached it late show.
    open: Option<fs::File>,
}

impl Snapshot {
    /// Reads the file at `path` (following symlinks). A missing file reads as empty.
    pub fn read(path: &Path) -> Result<Snapshot, BanFileError> {
        let read_error = |source| BanFileError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = match fs::File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Snapshot {
                    contents: Vec::new(),
                    stamp: None,
                    moved: FileStamp::of(path).is_some(),
                    open: None,
                });
            }
            Err(source) => return Err(read_error(source)),
        };
        let before = FileStamp::of_open(&file);
        let mut contents = Vec::new();
        file.read_to_end(&mut contents).map_err(read_error)?;
        let after = FileStamp::of_open(&file);
        let moved = before != after || FileStamp::of(path) != after;
        Ok(Snapshot {
            contents,
            stamp: after,
            moved,
            open: Some(file),
        })
    }
}

/// What [`Settle::judge`] says about one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The bytes are a whole version of the file: use them.
    Use,
    /// The file is being written: read it again at this instant (or later).
    ReadAgainAt(Instant),
}

/// Decides whether a read of the file can be trusted, remembering the last trusted version.
/// A read is suspect when the file changed while being read; when it looks torn, shorter
/// than the last trusted version and not ending in a newline (an editor that truncated the
/// file and is still writing it back; a deleted file counts too); or when it lacks an entry
/// the last trusted version had (the same editor caught just after a line ending). A
/// suspect read is trusted once the file has kept the same stamp for [`SETTLE_TIME`], so a
/// file really shortened by hand is believed 200 ms later, and a half-written one never
/// drops what is in force.
#[derive(Debug, Clone, Default)]
pub struct Settle {
    /// The length and the entries of the last trusted version.
    trusted: Option<(u64, HashSet<IpNet>)>,
    /// A suspect version being watched: its stamp and when it was first seen.
    watching: Option<(Option<FileStamp>, Instant)>,
}

impl Settle {
    /// A judge that has trusted nothing yet: the first read is suspect only if it moved.
    pub fn new() -> Settle {
        Settle::default()
    }

    /// The verdict on `read`, taken at `now`.
    pub fn judge(&mut self, now: Instant, read: &Snapshot) -> Verdict {
        if !read.moved && !self.looks_cut(&read.contents) {
            self.trust(&read.contents);
            return Verdict::Use;
        }
        match self.watching {
            Some((stamp, since)) if stamp == read.stamp && !read.moved => {
                if now.saturating_duration_since(since) >= SETTLE_TIME {
                    self.trust(&read.contents);
                    Verdict::Use
                } else {
                    Verdict::ReadAgainAt(since + SETTLE_TIME)
                }
            }
            _ => {
                self.watching = Some((read.stamp, now));
                Verdict::ReadAgainAt(now + SETTLE_TIME)
            }
        }
    }

    /// Whether `contents` look like part of a version being written.
    fn looks_cut(&self, contents: &[u8]) -> bool {
        let Some((trusted_len, trusted_entries)) = &self.trusted else {
            return false;
        };
        if (contents.len() as u64) < *trusted_len && !contents.ends_with(b"\n") {
            return true;
        }
        let entries = entries_of(contents);
        trusted_entries.iter().any(|net| !entries.contains(net))
    }

    /// Records a version written by us (or otherwise known whole) as trusted.
    pub fn trust(&mut self, contents: &[u8]) {
        self.trusted = Some((contents.len() as u64, entries_of(contents)));
        self.watching = None;
    }
}

fn entries_of(contents: &[u8]) -> HashSet<IpNet> {
    let (list, _) = parse_bytes(contents);
    list.entries().iter().map(|entry| entry.net).collect()
}

/// Notices when the file changed on disk since it was last seen, so the file is re-read only
/// when it changed. Compares modification time, length and (on Unix) inode, because an
/// atomic rename keeps the length but changes the inode, and two edits within one mtime tick
/// change the length.
#[derive(Debug, Clone)]
pub struct FileWatch {
    /// The watched file.
    path: PathBuf,
    /// Its state at the last look, `None` while it did not exist or could not be examined.
    last_seen: Option<FileStamp>,
}

impl FileWatch {
    /// Starts watching `path`, recording its current state (a missing file is a state too).
    pub fn new(path: &Path) -> FileWatch {
        FileWatch {
            path: path.to_path_buf(),
            last_seen: FileStamp::of(path),
        }
    }

    /// True if the file's state differs from the last call (appearing or disappearing counts).
    pub fn changed(&mut self) -> bool {
        let now = FileStamp::of(&self.path);
        let changed = now != self.last_seen;
        self.last_seen = now;
        changed
    }

    /// Takes `stamp` as seen: a version the caller read or wrote itself.
    pub fn seen(&mut self, stamp: Option<FileStamp>) {
        self.last_seen = stamp;
    }
}

// ---- changing ------------------------------------------------------------------------------

/// A change the server makes to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Append `net  # comment` unless `net` is already listed exactly.
    Ban {
        /// The address or range.
        net: IpNet,
        /// Written after `#` on the new line; control characters become spaces.
        comment: String,
    },
    /// Delete every line whose entry is exactly `net` (a covering range stays).
    Unban {
        /// The address or range.
        net: IpNet,
    },
}

impl Edit {
    /// The address or range the edit is about.
    pub fn net(&self) -> IpNet {
        match self {
            Edit::Ban { net, .. } | Edit::Unban { net } => *net,
        }
    }
}

/// `contents` with `edits` applied in order, every other byte kept.
pub fn apply(contents: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut contents = contents.to_vec();
    for edit in edits {
        contents = match edit {
            Edit::Ban { net, comment } => with_line_for(contents, *net, comment),
            Edit::Unban { net } => without_lines_for(&contents, *net),
        };
    }
    contents
}

fn with_line_for(mut contents: Vec<u8>, net: IpNet, comment: &str) -> Vec<u8> {
    let (list, _) = parse_bytes(&contents);
    if list.lists(net) {
        return contents;
    }
    if !contents.is_empty() && !contents.ends_with(b"\n") {
        // Without this the new entry would be glued onto the last line and both be lost.
        contents.push(b'\n');
    }
    contents.extend_from_slice(entry_line(net, comment).as_bytes());
    contents
}

/// The line a ban writes: `net\n`, or `net  # comment\n` when there is a comment. Control
/// characters in the comment (a newline above all, which would start a line of its own,
/// perhaps an entry) are written as spaces.
fn entry_line(net: IpNet, comment: &str) -> String {
    let single_line_comment: String = comment
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match single_line_comment.trim() {
        "" => format!("{net}\n"),
        comment => format!("{net}  # {comment}\n"),
    }
}

fn without_lines_for(contents: &[u8], net: IpNet) -> Vec<u8> {
    let mut kept = Vec::with_capacity(contents.len());
    // `split_inclusive` keeps each line's own terminator (or its lack of one on the last
    // line), so the kept lines are copied back exactly as they were.
    for line_bytes in contents.split_inclusive(|&byte| byte == b'\n') {
        let names_net = matches!(
            parse_line(&String::from_utf8_lossy(line_bytes)),
            Some(Ok(entry)) if entry == net
        );
        if !names_net {
            kept.extend_from_slice(line_bytes);
        }
    }
    kept
}

/// The moments in [`save`] at which another writer can strike; a test's [`Surroundings`]
/// strikes there to prove the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// The file has just been read (and judged whole).
    Read,
    /// The new version is on disk under the temporary name, not yet checked or renamed.
    Written,
    /// Between the check that the file is unchanged and the rename: the window no check
    /// can close, which is why the old file is looked at again afterwards.
    Checked,
}

/// Time and waiting, for [`save`]: the real clock in the binaries, a fake one in tests.
pub trait Surroundings {
    /// The current instant.
    fn now(&mut self) -> Instant;
    /// Returns at `deadline` or later.
    fn sleep_until(&mut self, deadline: Instant);
    /// Called at each [`Moment`] with the file's real path; nothing happens in real use.
    fn moment(&mut self, _moment: Moment, _target: &Path) {}
}

/// The real clock and real sleeping.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealTime;

impl Surroundings for RealTime {
    fn now(&mut self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&mut self, deadline: Instant) {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    }
}

/// What [`save`] leaves on disk.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The latest version, which the edits were applied to.
    pub base: Vec<u8>,
    /// The file's contents now: `base` with the edits applied.
    pub contents: Vec<u8>,
    /// The stamp of that version (for [`FileWatch::seen`]).
    pub stamp: Option<FileStamp>,
    /// Whether the file was written (false when the edits changed nothing).
    pub written: bool,
}

/// Applies `edits` to the file at `path` and writes it back, safely against hand edits made
/// at the same time (see the module documentation for the rules). `settle` judges every read
/// and learns the length written. A symlink at `path` is followed (through any chain) and
/// the file it names is replaced, in that file's directory, so the link stays a link. If
/// the edits change nothing, nothing is written (and a missing file is not created).
///
/// While another process holds the lock, or the file keeps changing, this waits, through
/// `env`, up to [`SAVE_PATIENCE`] in all.
pub fn save(
    path: &Path,
    edits: &[Edit],
    settle: &mut Settle,
    env: &mut impl Surroundings,
) -> Result<Saved, BanFileError> {
    let write_error = |source| BanFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let give_up_at = env.now() + SAVE_PATIENCE;
    let target = resolve_symlinks(path).map_err(|source| BanFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (directory, temp_path, lock_path) = paths_beside(&target).map_err(write_error)?;
    let mut lock: Option<Lock> = None;
    // Set when a write reached the old file after the rename: that version, not the file now
    // in place (which is ours), is the one to apply the edits to.
    let mut late: Option<Vec<u8>> = None;
    loop {
        if env.now() > give_up_at {
            return Err(BanFileError::Busy {
                path: path.to_path_buf(),
                what: "the file kept changing",
            });
        }
        let mut snapshot = read_whole(&target, settle, env, give_up_at, path)?;
        let read_at = env.now();
        env.moment(Moment::Read, &target);
        let base = late.take().unwrap_or_else(|| snapshot.contents.clone());
        let contents = apply(&base, edits);
        if contents == snapshot.contents {
            return Ok(Saved {
                base,
                contents,
                stamp: snapshot.stamp,
                written: false,
            });
        }
        if lock.is_none() {
            // Taken only once there is something to write, then the file is read again
            // under it: whatever another holder of the lock wrote is in that read.
            lock = Some(
                Lock::take(&lock_path, env, give_up_at).map_err(|error| match error {
                    LockError::Io(source) => write_error(source),
                    LockError::Busy => BanFileError::Busy {
                        path: path.to_path_buf(),
                        what: "another process held the lock",
                    },
                })?,
            );
            continue;
        }
        let permissions = fs::metadata(&target).ok().map(|meta| meta.permissions());
        write_synced(&temp_path, &contents, permissions).map_err(|source| {
            let _ = fs::remove_file(&temp_path);
            write_error(source)
        })?;
        env.moment(Moment::Written, &target);
        if FileStamp::of(&target) != snapshot.stamp {
            // Someone wrote since the read: start again from their version.
            let _ = fs::remove_file(&temp_path);
            continue;
        }
        env.moment(Moment::Checked, &target);
        let displaced = match swap_into_place(&temp_path, &target) {
            Ok(displaced) => displaced,
            Err(source) => {
                let _ = fs::remove_file(&temp_path);
                return Err(write_error(source));
            }
        };
        sync_directory(&directory);
        let stamp = FileStamp::of(&target);
        settle.trust(&contents);
        // The instant between the check and the rename. A file renamed into place by an
        // editor then is what the exchange handed back under the temporary name: apply the
        // edits to it. A write into the file we read is in the file we still hold open:
        // wait for it to settle, then apply the edits to that.
        let replaced_another = displaced
            .as_ref()
            .is_some_and(|displaced| displaced.identity != snapshot.stamp.and_then(|s| s.identity));
        if replaced_another {
            let theirs = fs::read(&temp_path);
            let _ = fs::remove_file(&temp_path);
            late = Some(theirs.map_err(|source| BanFileError::Read {
                path: path.to_path_buf(),
                source,
            })?);
            continue;
        }
        if displaced.is_some() {
            let _ = fs::remove_file(&temp_path);
        }
        if let Some(version) = late_version(&mut snapshot, read_at, env, give_up_at, path)? {
            late = Some(version);
            continue;
        }
        return Ok(Saved {
            base,
            contents,
            stamp,
            written: true,
        });
    }
}

/// Puts the file at `temp_path` in place at `target`. Where the system can, the two are
/// exchanged atomically (`renameat2` with `RENAME_EXCHANGE`), so whatever held the name at
/// that instant is left at `temp_path` and its stamp returned: a file another editor renamed
/// into place a moment earlier is not lost. Elsewhere (another system, a file system
/// without exchange, no file yet) it is a plain rename and `None` is returned.
fn swap_into_place(temp_path: &Path, target: &Path) -> io::Result<Option<FileStamp>> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::errno::Errno;
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(
            AT_FDCWD,
            temp_path,
            AT_FDCWD,
            target,
            RenameFlags::RENAME_EXCHANGE,
        ) {
            Ok(()) => return Ok(FileStamp::of(temp_path)),
            // No file at the target: nothing to exchange with. No exchange on this file
            // system or kernel: the plain rename below.
            Err(Errno::ENOENT | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {}
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
    fs::rename(temp_path, target).map(|()| None)
}

/// Reads `target` until `settle` trusts the read, waiting through `env`.
fn read_whole(
    target: &Path,
    settle: &mut Settle,
    env: &mut impl Surroundings,
    give_up_at: Instant,
    path: &Path,
) -> Result<Snapshot, BanFileError> {
    loop {
        let snapshot = Snapshot::read(target)?;
        match settle.judge(env.now(), &snapshot) {
            Verdict::Use => return Ok(snapshot),
            Verdict::ReadAgainAt(at) => {
                if at > give_up_at {
                    return Err(BanFileError::Busy {
                        path: path.to_path_buf(),
                        what: "the file kept changing",
                    });
                }
                env.sleep_until(at);
            }
        }
    }
}

/// After the rename: the version read is trusted only once it has not changed for
/// [`SETTLE_TIME`] since it was read (`read_at`), so this waits until then, watching the old
/// file, still open in `snapshot`. If a writer reached it (an editor rewriting in place
/// that had written part when it was read, or that began just before the rename), this
/// waits until it has not changed for [`SETTLE_TIME`] and returns that writer's version.
fn late_version(
    snapshot: &mut Snapshot,
    read_at: Instant,
    env: &mut impl Surroundings,
    give_up_at: Instant,
    path: &Path,
) -> Result<Option<Vec<u8>>, BanFileError> {
    let Some(old) = snapshot.open.as_mut() else {
        return Ok(None);
    };
    let quiet_until = read_at + SETTLE_TIME;
    if env.now() < quiet_until {
        env.sleep_until(quiet_until);
    }
    let mut last = FileStamp::of_open(old);
    if last == snapshot.stamp {
        return Ok(None);
    }
    let read_error = |source| BanFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut since = env.now();
    loop {
        let at = since + SETTLE_TIME;
        if at > give_up_at {
            return Err(BanFileError::Busy {
                path: path.to_path_buf(),
                what: "the replaced file kept changing",
            });
        }
        env.sleep_until(at);
        let stamp = FileStamp::of_open(old);
        if stamp == last {
            let mut contents = Vec::new();
            io::Seek::rewind(old).map_err(read_error)?;
            old.read_to_end(&mut contents).map_err(read_error)?;
            return Ok(Some(contents));
        }
        last = stamp;
        since = env.now();
    }
}

/// The file a chain of symlinks at `path` ends at (`path` itself if it is no symlink); a
/// missing final file is fine (it will be created there).
fn resolve_symlinks(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let link = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(parent) => parent.join(link),
                    None => link,
                };
            }
            Ok(_) => return Ok(current),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(error) => return Err(error),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "too many levels of symbolic links",
    ))
}

/// The directory holding `target`, and in it the temporary file `.{name}.tmp.{pid}` and the
/// lock file `.{name}.lock`. The directory of a bare file name is ".". The process id keeps
/// two servers sharing one ban file from writing into each other's temporary file.
fn paths_beside(target: &Path) -> io::Result<(PathBuf, PathBuf, PathBuf)> {
    let file_name = target.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let directory = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let beside = |suffix: &str| {
        let mut name = OsString::from(".");
        name.push(file_name);
        name.push(suffix);
        directory.join(name)
    };
    let temp_path = beside(&format!(".tmp.{}", std::process::id()));
    let lock_path = beside(".lock");
    Ok((directory, temp_path, lock_path))
}

/// Writes `contents` to a fresh file at `temp_path` and waits until they are on disk.
fn write_synced(
    temp_path: &Path,
    contents: &[u8],
    permissions: Option<fs::Permissions>,
) -> io::Result<()> {
    // A leftover from a crashed run is removed, and `create_new` then guarantees we write a
    // file of our own rather than through whatever (a symlink, say) sits at that name.
    let _ = fs::remove_file(temp_path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp_path)?;
    if let Some(permissions) = permissions {
        file.set_permissions(permissions)?;
    }
    file.write_all(contents)?;
    // Without this the rename could reach the disk before the data, and a crash would leave
    // an empty file under the original name.
    file.sync_all()
}

/// Asks the OS to persist the directory entry changed by the rename. Best effort: the new
/// file is already in place, and some file systems refuse to sync a directory at all.
fn sync_directory(directory: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = fs::File::open(directory) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = directory;
}

/// The advisory lock every writer of the file takes: `flock` on `.{name}.lock` beside it
/// (a file of its own, because the ban file itself is replaced by each write, and a lock on
/// a replaced file guards nothing). Released when dropped. A script can take the same lock:
/// `flock .banned_ips.txt.lock -c 'echo 10.0.0.9 >> banned_ips.txt'`.
struct Lock {
    #[cfg(unix)]
    _held: nix::fcntl::Flock<fs::File>,
}

enum LockError {
    Io(io::Error),
    Busy,
}

impl Lock {
    fn take(
        lock_path: &Path,
        env: &mut impl Surroundings,
        give_up_at: Instant,
    ) -> Result<Lock, LockError> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path)
            .map_err(LockError::Io)?;
        #[cfg(not(unix))]
        {
            let _ = (&mut file, env, give_up_at);
            Ok(Lock {})
        }
        #[cfg(unix)]
        loop {
            use nix::fcntl::{Flock, FlockArg};
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(held) => return Ok(Lock { _held: held }),
                Err((returned, nix::errno::Errno::EWOULDBLOCK)) => {
                    file = returned;
                    let now = env.now();
                    if now >= give_up_at {
                        return Err(LockError::Busy);
                    }
                    env.sleep_until((now + LOCK_RETRY).min(give_up_at));
                }
                Err((_, errno)) => return Err(LockError::Io(io::Error::from(errno))),
            }
        }
    }
}

#[cfg(test)]
mod tests;
