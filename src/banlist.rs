//! The ban list: which client addresses the server refuses to serve. This module owns the
//! IP network type ([`IpNet`], a single address or a CIDR range), the text format of the ban
//! file (`banned_ips.txt` by default: one entry per line, `#` comments, blank lines), matching
//! an address against the list, and reading and rewriting that file safely while an operator
//! may be editing it by hand. It does not own deciding when to reload the file (the server
//! binary polls, using [`FileWatch`] to skip unchanged files) nor what happens to a client
//! once its address is banned (that is the server core's business).
//!
//! Every address is compared in one 128-bit space: an IPv4 address `a.b.c.d` is treated as the
//! IPv4-mapped IPv6 address `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2). That is how a server bound
//! to `[::]` sees IPv4 peers, so an entry written in either notation bans the peer however
//! the socket reports it.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

/// The 96 leading bits shared by every IPv4-mapped IPv6 address, `::ffff:0:0/96`.
const IPV4_MAPPED_NETWORK: u128 = 0xffff << 32;

/// How many leading bits of a 128-bit address the IPv4-mapped network fixes.
const IPV4_MAPPED_PREFIX_LEN: u8 = 96;

/// An IP address or CIDR range. Equality is on the normalized range (host bits cleared).
///
/// A range that lies wholly inside `::ffff:0:0/96` is stored as the IPv4 range it maps, so
/// `::ffff:1.2.3.4` and `1.2.3.4` are the same `IpNet` and both display as `1.2.3.4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The first address of the range; every bit after `prefix_len` is zero.
    network: IpAddr,
    /// How many leading bits of `network` every member shares (0..=32 or 0..=128).
    prefix_len: u8,
}

impl IpNet {
    /// The range holding exactly one address.
    pub fn host(addr: IpAddr) -> IpNet {
        IpNet::normalized(addr, max_prefix_len(addr))
    }

    /// Whether `addr` lies in this range. An IPv4-mapped IPv6 address (::ffff:1.2.3.4) is
    /// treated as the IPv4 address it maps (servers bound to [::] see IPv4 peers that way),
    /// in both directions (an entry written as ::ffff:1.2.3.4 bans 1.2.3.4 too).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let (network, prefix_len) = self.in_ipv6_space();
        to_ipv6_space(addr) & mask(prefix_len) == network
    }

    /// Whether every address of `other` lies in this range, e.g. `10.0.0.0/8` covers
    /// `10.0.1.0/24` and `10.0.1.5`, but `10.0.1.5` does not cover `10.0.1.0/24`.
    fn covers(&self, other: &IpNet) -> bool {
        let (network, prefix_len) = self.in_ipv6_space();
        let (other_network, other_prefix_len) = other.in_ipv6_space();
        other_prefix_len >= prefix_len && other_network & mask(prefix_len) == network
    }

    /// Builds the canonical form of `addr/prefix_len`: host bits cleared, and IPv4-mapped
    /// ranges turned into IPv4, so that derived equality and hashing compare ranges.
    fn normalized(addr: IpAddr, prefix_len: u8) -> IpNet {
        let prefix_len_in_ipv6_space = match addr {
            IpAddr::V4(_) => prefix_len.saturating_add(IPV4_MAPPED_PREFIX_LEN),
            IpAddr::V6(_) => prefix_len,
        }
        .min(128);
        let network = to_ipv6_space(addr) & mask(prefix_len_in_ipv6_space);
        let is_ipv4_mapped = prefix_len_in_ipv6_space >= IPV4_MAPPED_PREFIX_LEN
            && network & mask(IPV4_MAPPED_PREFIX_LEN) == IPV4_MAPPED_NETWORK;
        if is_ipv4_mapped {
            // The low 32 bits of a mapped address are the IPv4 address itself.
            let ipv4_bits = (network & u128::from(u32::MAX)) as u32;
            IpNet {
                network: IpAddr::V4(Ipv4Addr::from(ipv4_bits)),
                prefix_len: prefix_len_in_ipv6_space - IPV4_MAPPED_PREFIX_LEN,
            }
        } else {
            IpNet {
                network: IpAddr::V6(Ipv6Addr::from(network)),
                prefix_len: prefix_len_in_ipv6_space,
            }
        }
    }

    /// This range as a 128-bit network and prefix length, IPv4 ranges moved into
    /// `::ffff:0:0/96`, so that ranges of either family can be compared bit by bit.
    fn in_ipv6_space(&self) -> (u128, u8) {
        match self.network {
            IpAddr::V4(_) => (
                to_ipv6_space(self.network),
                self.prefix_len + IPV4_MAPPED_PREFIX_LEN,
            ),
            IpAddr::V6(_) => (to_ipv6_space(self.network), self.prefix_len),
        }
    }
}

/// The number of bits in an address of `addr`'s family: the prefix length of a single host.
fn max_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `addr` as 128 bits, an IPv4 address becoming its IPv4-mapped IPv6 form.
fn to_ipv6_space(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(ipv4) => IPV4_MAPPED_NETWORK | u128::from(u32::from(ipv4)),
        IpAddr::V6(ipv6) => u128::from(ipv6),
    }
}

/// A 128-bit mask with the leading `prefix_len` bits set (`prefix_len` at most 128).
fn mask(prefix_len: u8) -> u128 {
    // Shifting a u128 by 128 is an overflow, so the empty mask is a special case.
    match prefix_len {
        0 => 0,
        len => u128::MAX << (128 - u32::from(len.min(128))),
    }
}

impl FromStr for IpNet {
    type Err = IpNetParseError;

    /// Parses `1.2.3.4`, `1.2.3.0/24`, `::1` or `2001:db8::/32`. Surrounding whitespace is
    /// not accepted, as with [`IpAddr`]'s own parser; host bits after the prefix are cleared.
    fn from_str(text: &str) -> Result<IpNet, IpNetParseError> {
        let fail = |reason| IpNetParseError {
            input: text.to_string(),
            reason,
        };
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr_text, prefix_text)) => (addr_text, Some(prefix_text)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| fail(ParseFailure::NotAnAddress))?;
        let longest = max_prefix_len(addr);
        let prefix_len = match prefix_text {
            None => longest,
            Some(prefix_text) => parse_prefix_len(prefix_text, longest).map_err(fail)?,
        };
        Ok(IpNet::normalized(addr, prefix_len))
    }
}

/// Reads the decimal prefix length after the `/`, which may be at most `longest`.
fn parse_prefix_len(prefix_text: &str, longest: u8) -> Result<u8, ParseFailure> {
    if prefix_text.is_empty() {
        return Err(ParseFailure::PrefixMissing);
    }
    // Checked by hand because `u8::from_str` also accepts a leading `+`.
    if !prefix_text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ParseFailure::PrefixNotANumber {
            prefix: prefix_text.to_string(),
        });
    }
    match prefix_text.parse::<u8>() {
        Ok(prefix_len) if prefix_len <= longest => Ok(prefix_len),
        // All digits, so a failed parse can only mean a number too big for a u8.
        _ => Err(ParseFailure::PrefixTooLong {
            prefix: prefix_text.to_string(),
            longest,
        }),
    }
}

impl fmt::Display for IpNet {
    /// `1.2.3.4` for a single host, `1.2.3.0/24` for a range, so a host entry written back
    /// to the file looks the way an operator would type it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = if self.prefix_len == max_prefix_len(self.network) {
            self.network.to_string()
        } else {
            format!("{}/{}", self.network, self.prefix_len)
        };
        // `pad` honours width and alignment, so entries line up in console tables.
        f.pad(&text)
    }
}

/// Why a string is not an address or range; Display e.g. "'10.0.0.300' is not an IP address"
/// or "'10.0.0.0/40': prefix length 40 is longer than 32".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNetParseError {
    /// The text as given, quoted in the message so the user can find it.
    input: String,
    /// What is wrong with it.
    reason: ParseFailure,
}

/// The ways an address or range can be malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ParseFailure {
    /// The part before any `/` is neither an IPv4 nor an IPv6 address.
    NotAnAddress,
    /// Nothing follows the `/`.
    PrefixMissing,
    /// The text after the `/` is not a plain decimal number.
    PrefixNotANumber { prefix: String },
    /// The prefix length exceeds the number of bits in the address family.
    PrefixTooLong { prefix: String, longest: u8 },
}

impl fmt::Display for IpNetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = &self.input;
        match &self.reason {
            ParseFailure::NotAnAddress => write!(f, "'{input}' is not an IP address"),
            ParseFailure::PrefixMissing => {
                write!(f, "'{input}': prefix length is missing after '/'")
            }
            ParseFailure::PrefixNotANumber { prefix } => {
                write!(f, "'{input}': prefix length '{prefix}' is not a number")
            }
            ParseFailure::PrefixTooLong { prefix, longest } => {
                write!(
                    f,
                    "'{input}': prefix length {prefix} is longer than {longest}"
                )
            }
        }
    }
}

impl std::error::Error for IpNetParseError {}

/// A parsed ban list: the entries in file order, each with its line number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BanList {
    /// In file order, so the first match is the one nearest the top of the file.
    entries: Vec<BanEntry>,
}

/// One entry: the range and the 1-based line it came from (0 if not from a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BanEntry {
    /// The banned address or range.
    pub net: IpNet,
    /// The 1-based line number in the file, so messages can point the operator at it.
    pub line: usize,
}

impl BanList {
    /// Parse the file's text. Never fails: bad lines become warnings.
    pub fn parse(text: &str) -> (BanList, Vec<BanWarning>) {
        let mut entries = Vec::new();
        let mut warnings = Vec::new();
        // Splitting on '\n' alone numbers lines the way editors do; a '\r' left by CRLF line
        // endings is whitespace and disappears when the line is trimmed.
        for (index, line_text) in text.split('\n').enumerate() {
            let line = index + 1;
            match parse_line(line_text) {
                None => {}
                Some(Ok(net)) => entries.push(BanEntry { net, line }),
                Some(Err(error)) => warnings.push(BanWarning { line, error }),
            }
        }
        (BanList { entries }, warnings)
    }

    /// The first entry that bans `addr`, if any (so a message can say which line bans it).
    pub fn matching(&self, addr: IpAddr) -> Option<&BanEntry> {
        self.entries.iter().find(|entry| entry.net.contains(addr))
    }

    /// Whether any entry bans `addr`.
    pub fn is_banned(&self, addr: IpAddr) -> bool {
        self.matching(addr).is_some()
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[BanEntry] {
        &self.entries
    }

    /// How many entries the list holds (comments, blank and invalid lines not counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list bans nobody.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What one line of the file says: `None` for a blank or comment-only line, otherwise the
/// entry or why it is not one. A `#` anywhere starts a comment.
fn parse_line(line_text: &str) -> Option<Result<IpNet, IpNetParseError>> {
    let before_comment = match line_text.split_once('#') {
        Some((before_comment, _comment)) => before_comment,
        None => line_text,
    };
    let entry_text = before_comment.trim();
    if entry_text.is_empty() {
        None
    } else {
        Some(entry_text.parse())
    }
}

/// Parses raw file bytes. Invalid UTF-8 (say, a Latin-1 comment) is replaced rather than
/// refused, so one odd byte cannot switch off the whole ban list; an entry containing such a
/// byte becomes a warning like any other bad line.
fn parse_bytes(contents: &[u8]) -> (BanList, Vec<BanWarning>) {
    BanList::parse(&String::from_utf8_lossy(contents))
}

/// A line that could not be used. Display: "line 7: '10.0.0.300' is not an IP address"
/// (the caller prefixes the file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanWarning {
    /// The 1-based line number of the unusable line.
    pub line: usize,
    /// Why the line is not an address or range.
    pub error: IpNetParseError,
}

impl fmt::Display for BanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

/// Failure reading or writing the file. Display names the path and the OS error, e.g.
/// "writing ban list banned_ips.txt: permission denied (os error 13)".
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
}

impl fmt::Display for BanFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (action, path, source) = match self {
            BanFileError::Read { path, source } => ("reading", path, source),
            BanFileError::Write { path, source } => ("writing", path, source),
        };
        write!(
            f,
            "{action} ban list {}: {}",
            path.display(),
            lowercase_first_letter(&source.to_string())
        )
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

/// Read and parse the file. A missing file is an empty list, not an error.
pub fn load(path: &Path) -> Result<(BanList, Vec<BanWarning>), BanFileError> {
    let contents = read_if_present(path)?.unwrap_or_default();
    Ok(parse_bytes(&contents))
}

/// The result of [`append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The list as the file now stands.
    pub list: BanList,
    /// The file's unusable lines, as it now stands.
    pub warnings: Vec<BanWarning>,
    /// False when the range was already listed and the file was left alone.
    pub added: bool,
}

/// Add `net` (with an optional trailing comment, written as `net  # comment`) to the file:
/// re-read the current file (it may have been edited by hand a moment ago — keep every line,
/// comment and blank line byte for byte, including invalid lines), append the new line
/// (adding a newline first if the file did not end with one), and replace the file
/// atomically: write a temporary file in the same directory, fsync it, rename it over the
/// original (so a crash leaves the old file or the new one, never a torn one). Creates the
/// file if missing. If `net` is already listed exactly, the file is left alone.
/// Returns the newly parsed list (and warnings) after the change, and whether a line was added.
///
/// Control characters in `comment` (a newline above all, which would start a line of its
/// own, perhaps an entry) are written as spaces.
pub fn append(
    path: &Path,
    net: IpNet,
    comment: Option<&str>,
) -> Result<AppendOutcome, BanFileError> {
    let old_contents = read_if_present(path)?.unwrap_or_default();
    let (list, warnings) = parse_bytes(&old_contents);
    if list.entries().iter().any(|entry| entry.net == net) {
        return Ok(AppendOutcome {
            list,
            warnings,
            added: false,
        });
    }

    let mut new_contents = old_contents;
    if !new_contents.is_empty() && !new_contents.ends_with(b"\n") {
        // Without this the new entry would be glued onto the last line and both would be lost.
        new_contents.push(b'\n');
    }
    new_contents.extend_from_slice(entry_line(net, comment).as_bytes());
    replace_atomically(path, &new_contents)?;

    let (list, warnings) = parse_bytes(&new_contents);
    Ok(AppendOutcome {
        list,
        warnings,
        added: true,
    })
}

/// The line `append` writes: `net\n`, or `net  # comment\n` when there is a comment.
fn entry_line(net: IpNet, comment: Option<&str>) -> String {
    let single_line_comment: String = comment
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match single_line_comment.trim() {
        "" => format!("{net}\n"),
        comment => format!("{net}  # {comment}\n"),
    }
}

/// The result of [`remove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveOutcome {
    /// The list as the file now stands.
    pub list: BanList,
    /// The file's unusable lines, as it now stands.
    pub warnings: Vec<BanWarning>,
    /// How many lines named exactly `net` and were deleted.
    pub removed: usize,
    /// Remaining entries whose range includes all of `net`, so it is still banned.
    pub still_covered_by: Vec<BanEntry>,
}

/// Remove every line whose entry equals `net` exactly (same normalized range), keeping every
/// other line and comment, with the same atomic rewrite. Report how many lines were removed
/// and which remaining entries still cover `net` (e.g. /unban 10.0.0.5 while 10.0.0.0/24 is
/// listed), so the operator can be told why the address is still banned.
///
/// When no line matches, the file is not rewritten (and a missing file is not created).
pub fn remove(path: &Path, net: IpNet) -> Result<RemoveOutcome, BanFileError> {
    let old_contents = read_if_present(path)?.unwrap_or_default();

    let mut new_contents = Vec::with_capacity(old_contents.len());
    let mut removed = 0;
    // `split_inclusive` keeps each line's own terminator (or its lack of one on the last
    // line), so the kept lines are copied back exactly as they were.
    for line_bytes in old_contents.split_inclusive(|&byte| byte == b'\n') {
        let names_net = matches!(
            parse_line(&String::from_utf8_lossy(line_bytes)),
            Some(Ok(entry)) if entry == net
        );
        if names_net {
            removed += 1;
        } else {
            new_contents.extend_from_slice(line_bytes);
        }
    }
    if removed > 0 {
        replace_atomically(path, &new_contents)?;
    }

    let (list, warnings) = parse_bytes(&new_contents);
    let still_covered_by = list
        .entries()
        .iter()
        .filter(|entry| entry.net.covers(&net))
        .copied()
        .collect();
    Ok(RemoveOutcome {
        list,
        warnings,
        removed,
        still_covered_by,
    })
}

/// The file's bytes, or `None` if it does not exist.
fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, BanFileError> {
    match fs::read(path) {
        Ok(contents) => Ok(Some(contents)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(BanFileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces the file at `path` with `contents` so that readers, and the file after a crash,
/// show either the old contents or the new, never a mix. A rename within one directory is
/// atomic, so the new contents go to a temporary file beside the original, reach the disk
/// (fsync) before the rename, and only then take the original's name.
fn replace_atomically(path: &Path, contents: &[u8]) -> Result<(), BanFileError> {
    let write_error = |source| BanFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let (directory, temp_path) = temp_path_beside(path).map_err(write_error)?;
    // Keep the operator's choice of permissions; a file created here gets the defaults.
    let original_permissions = fs::metadata(path).ok().map(|meta| meta.permissions());

    let written = write_synced(&temp_path, contents, original_permissions)
        .and_then(|()| fs::rename(&temp_path, path));
    if let Err(source) = written {
        // Best effort: the error worth reporting is the one that stopped the write.
        let _ = fs::remove_file(&temp_path);
        return Err(write_error(source));
    }
    sync_directory(&directory);
    Ok(())
}

/// The directory holding `path` and the temporary file name `.{filename}.tmp.{pid}` in it.
/// The directory of a bare file name is ".". The process id keeps two servers sharing one
/// ban file from writing into each other's temporary file.
fn temp_path_beside(path: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp.{}", std::process::id()));
    let temp_path = directory.join(temp_name);
    Ok((directory, temp_path))
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

/// Notices when the file changed on disk since it was last seen, so the server can reload
/// hand edits without re-reading the file every second. Compares modification time, length
/// and (on Unix) inode, because an atomic rename keeps the length but changes the inode,
/// and two edits within one mtime tick change the length.
#[derive(Debug, Clone)]
pub struct FileWatch {
    /// The watched file.
    path: PathBuf,
    /// Its state at the last look, `None` while it did not exist or could not be examined.
    last_seen: Option<FileStamp>,
}

/// What the watch remembers about the file: cheap to fetch, and it changes whenever the
/// contents are replaced or rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    /// Last modification time, if the platform reports one.
    modified: Option<SystemTime>,
    /// Length in bytes.
    len: u64,
    /// Device and inode on Unix: a different value means a different file took the name.
    identity: Option<(u64, u64)>,
}

impl FileStamp {
    /// The file's current stamp, or `None` if it cannot be examined (usually: it is missing).
    fn of(path: &Path) -> Option<FileStamp> {
        let metadata = fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            identity: file_identity(&metadata),
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own for one test, deleted again when the test ends.
    struct TempDir {
        path: PathBuf,
    }

    impl TempDir {
        fn new(test_name: &str) -> TempDir {
            let path = std::env::temp_dir()
                .join(format!("icq-banlist-{}-{test_name}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).expect("create test directory");
            TempDir { path }
        }

        fn file(&self, name: &str) -> PathBuf {
            self.path.join(name)
        }

        /// File names in the directory, sorted, to prove no temporary file was left behind.
        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.path)
                .expect("list test directory")
                .map(|entry| {
                    entry
                        .expect("directory entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.path);
        }
    }

    fn net(text: &str) -> IpNet {
        text.parse()
            .unwrap_or_else(|error| panic!("{text} should parse: {error}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|error| panic!("{text} should be an address: {error}"))
    }

    fn parse_error(text: &str) -> String {
        match text.parse::<IpNet>() {
            Ok(parsed) => panic!("{text} should not parse, got {parsed}"),
            Err(error) => error.to_string(),
        }
    }

    fn read_text(path: &Path) -> String {
        fs::read_to_string(path).expect("read test file")
    }

    // ---- parsing one address or range ----

    #[test]
    fn parses_ipv4_host() {
        let parsed = net("10.0.0.5");
        assert_eq!(parsed, IpNet::host(ip("10.0.0.5")));
        assert_eq!(parsed.to_string(), "10.0.0.5");
    }

    #[test]
    fn parses_ipv6_host() {
        let parsed = net("2001:db8::1");
        assert_eq!(parsed, IpNet::host(ip("2001:db8::1")));
        assert_eq!(parsed.to_string(), "2001:db8::1");
    }

    #[test]
    fn parses_cidr_ranges_of_both_families() {
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(net("::/0").to_string(), "::/0");
    }

    #[test]
    fn full_length_prefix_is_a_single_host() {
        assert_eq!(net("10.0.0.5/32"), net("10.0.0.5"));
        assert_eq!(net("10.0.0.5/32").to_string(), "10.0.0.5");
        assert_eq!(net("::1/128").to_string(), "::1");
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(net("10.0.0.5/24"), net("10.0.0.0/24"));
        assert_eq!(net("10.0.0.5/24").to_string(), "10.0.0.0/24");
        assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_ne!(net("10.0.0.0/24"), net("10.0.0.0/25"));
    }

    #[test]
    fn ipv4_mapped_entries_are_the_ipv4_range_they_map() {
        assert_eq!(net("::ffff:1.2.3.4"), net("1.2.3.4"));
        assert_eq!(net("::ffff:1.2.3.4").to_string(), "1.2.3.4");
        assert_eq!(net("::ffff:1.2.3.0/120").to_string(), "1.2.3.0/24");
        assert_eq!(net("::ffff:0:0/96").to_string(), "0.0.0.0/0");
        assert_eq!(IpNet::host(ip("::ffff:10.0.0.5")).to_string(), "10.0.0.5");
        // Wider than the mapped block, so it stays IPv6.
        assert_eq!(net("::ffff:0:0/95").to_string(), "::fffe:0:0/95");
    }

    #[test]
    fn display_honours_width() {
        assert_eq!(format!("[{:<12}]", net("10.0.0.0/8")), "[10.0.0.0/8  ]");
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        assert_eq!(
            parse_error("10.0.0.300"),
            "'10.0.0.300' is not an IP address"
        );
        assert_eq!(parse_error("spammer"), "'spammer' is not an IP address");
        assert_eq!(parse_error(""), "'' is not an IP address");
        assert_eq!(
            parse_error("10.0.0.300/8"),
            "'10.0.0.300/8' is not an IP address"
        );
        assert_eq!(parse_error(" 10.0.0.1"), "' 10.0.0.1' is not an IP address");
    }

    #[test]
    fn rejects_prefix_longer_than_the_address() {
        assert_eq!(
            parse_error("10.0.0.0/40"),
            "'10.0.0.0/40': prefix length 40 is longer than 32"
        );
        assert_eq!(
            parse_error("2001:db8::/129"),
            "'2001:db8::/129': prefix length 129 is longer than 128"
        );
        assert_eq!(
            parse_error("10.0.0.0/99999999999"),
            "'10.0.0.0/99999999999': prefix length 99999999999 is longer than 32"
        );
        assert_eq!(net("10.0.0.0/32"), net("10.0.0.0"));
        assert_eq!(net("::/128"), net("::"));
    }

    #[test]
    fn rejects_malformed_prefix() {
        assert_eq!(
            parse_error("10.0.0.0/"),
            "'10.0.0.0/': prefix length is missing after '/'"
        );
        assert_eq!(
            parse_error("10.0.0.0/abc"),
            "'10.0.0.0/abc': prefix length 'abc' is not a number"
        );
        assert_eq!(
            parse_error("10.0.0.0/+8"),
            "'10.0.0.0/+8': prefix length '+8' is not a number"
        );
        assert_eq!(
            parse_error("10.0.0.0/8/9"),
            "'10.0.0.0/8/9': prefix length '8/9' is not a number"
        );
    }

    // ---- parsing the file format ----

    #[test]
    fn parses_file_with_comments_blank_lines_and_bad_lines() {
        let text = "# banned hosts\n\
                    10.0.0.5  # spammer\n\
                    \n\
                    \t2001:db8::/32\t\n\
                    10.0.0.300\n\
                    192.168.0.7/24#no space before comment\r\n\
                    # 10.9.9.9 is commented out\n\
                    10.0.0.0/40  # too wide\n\
                    ::ffff:1.2.3.4";
        let (list, warnings) = BanList::parse(text);
        assert_eq!(
            list.entries(),
            &[
                BanEntry {
                    net: net("10.0.0.5"),
                    line: 2
                },
                BanEntry {
                    net: net("2001:db8::/32"),
                    line: 4
                },
                BanEntry {
                    net: net("192.168.0.0/24"),
                    line: 6
                },
                BanEntry {
                    net: net("1.2.3.4"),
                    line: 9
                },
            ]
        );
        let messages: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "line 5: '10.0.0.300' is not an IP address",
                "line 8: '10.0.0.0/40': prefix length 40 is longer than 32",
            ]
        );
        assert_eq!(warnings[0].line, 5);
        assert_eq!(list.len(), 4);
        assert!(!list.is_empty());
    }

    #[test]
    fn line_with_two_addresses_is_one_bad_line() {
        let (list, warnings) = BanList::parse("10.0.0.1 10.0.0.2\n");
        assert!(list.is_empty());
        assert_eq!(
            warnings[0].to_string(),
            "line 1: '10.0.0.1 10.0.0.2' is not an IP address"
        );
    }

    #[test]
    fn empty_text_is_an_empty_list() {
        let (list, warnings) = BanList::parse("");
        assert_eq!(list, BanList::default());
        assert_eq!(list.len(), 0);
        assert!(list.is_empty());
        assert!(warnings.is_empty());
    }

    #[test]
    fn matching_returns_the_first_entry_in_file_order() {
        let (list, _) = BanList::parse("10.0.0.0/8\n10.0.0.5\n");
        assert_eq!(
            list.matching(ip("10.0.0.5")),
            Some(&BanEntry {
                net: net("10.0.0.0/8"),
                line: 1
            })
        );
        assert!(list.is_banned(ip("10.200.0.1")));
        assert_eq!(list.matching(ip("11.0.0.1")), None);
        assert!(!list.is_banned(ip("11.0.0.1")));
    }

    // ---- matching addresses ----

    #[test]
    fn contains_respects_the_boundaries_of_a_slash_24() {
        let range = net("10.0.0.0/24");
        assert!(range.contains(ip("10.0.0.0")));
        assert!(range.contains(ip("10.0.0.255")));
        assert!(!range.contains(ip("9.255.255.255")));
        assert!(!range.contains(ip("10.0.1.0")));
    }

    #[test]
    fn slash_0_contains_its_whole_family() {
        let all_ipv4 = net("0.0.0.0/0");
        assert!(all_ipv4.contains(ip("0.0.0.0")));
        assert!(all_ipv4.contains(ip("255.255.255.255")));
        assert!(all_ipv4.contains(ip("::ffff:8.8.8.8")));
        assert!(!all_ipv4.contains(ip("2001:db8::1")));
        assert!(!all_ipv4.contains(ip("::")));

        let all_ipv6 = net("::/0");
        assert!(all_ipv6.contains(ip("2001:db8::1")));
        assert!(all_ipv6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        // IPv4 peers reach an IPv6 socket as mapped addresses, which lie in ::/0.
        assert!(all_ipv6.contains(ip("1.2.3.4")));
    }

    #[test]
    fn contains_respects_the_boundaries_of_an_ipv6_slash_64() {
        let range = net("2001:db8:0:1::/64");
        assert!(range.contains(ip("2001:db8:0:1::")));
        assert!(range.contains(ip("2001:db8:0:1:ffff:ffff:ffff:ffff")));
        assert!(!range.contains(ip("2001:db8:0:0:ffff:ffff:ffff:ffff")));
        assert!(!range.contains(ip("2001:db8:0:2::")));
    }

    #[test]
    fn ipv4_entry_matches_ipv4_mapped_peer() {
        assert!(net("1.2.3.4").contains(ip("::ffff:1.2.3.4")));
        assert!(net("1.2.3.0/24").contains(ip("::ffff:1.2.3.200")));
        assert!(!net("1.2.3.0/24").contains(ip("::ffff:1.2.4.1")));
    }

    #[test]
    fn ipv4_mapped_entry_matches_ipv4_peer() {
        assert!(net("::ffff:1.2.3.4").contains(ip("1.2.3.4")));
        assert!(net("::ffff:1.2.3.0/120").contains(ip("1.2.3.99")));
        assert!(!net("::ffff:1.2.3.4").contains(ip("1.2.3.5")));
    }

    #[test]
    fn ipv4_entry_does_not_match_unrelated_ipv6() {
        let entry = net("1.2.3.4");
        assert!(!entry.contains(ip("::1.2.3.4"))); // deprecated IPv4-compatible form
        assert!(!entry.contains(ip("64:ff9b::1.2.3.4"))); // NAT64
        assert!(!entry.contains(ip("2001:db8::102:304")));
        assert!(!net("127.0.0.1").contains(ip("::1")));
        assert!(!net("2001:db8::/32").contains(ip("32.1.13.184")));
    }

    // ---- reading the file ----

    #[test]
    fn load_of_missing_file_is_an_empty_list() {
        let dir = TempDir::new("load_missing");
        let (list, warnings) = load(&dir.file("banned_ips.txt")).expect("missing file is fine");
        assert!(list.is_empty());
        assert!(warnings.is_empty());
        assert_eq!(dir.names(), Vec::<String>::new());
    }

    #[test]
    fn load_reads_entries_and_warnings() {
        let dir = TempDir::new("load_reads");
        let path = dir.file("banned_ips.txt");
        fs::write(&path, "10.0.0.5\nnonsense # why\n").expect("write test file");
        let (list, warnings) = load(&path).expect("load");
        assert_eq!(
            list.entries(),
            &[BanEntry {
                net: net("10.0.0.5"),
                line: 1
            }]
        );
        assert_eq!(
            warnings[0].to_string(),
            "line 2: 'nonsense' is not an IP address"
        );
    }

    #[test]
    fn load_survives_invalid_utf8_in_a_comment() {
        let dir = TempDir::new("load_latin1");
        let path = dir.file("banned_ips.txt");
        fs::write(&path, b"10.0.0.5  # caf\xe9 spammer\n10.0.0.6\n").expect("write test file");
        let (list, warnings) = load(&path).expect("load");
        assert_eq!(list.len(), 2);
        assert!(warnings.is_empty());
    }

    #[test]
    fn load_of_a_directory_is_a_read_error() {
        let dir = TempDir::new("load_directory");
        match load(&dir.path) {
            Err(BanFileError::Read { path, .. }) => assert_eq!(path, dir.path),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn file_error_names_path_and_os_error() {
        let error = BanFileError::Write {
            path: PathBuf::from("banned_ips.txt"),
            source: io::Error::from_raw_os_error(13),
        };
        assert_eq!(
            error.to_string(),
            "writing ban list banned_ips.txt: permission denied (os error 13)"
        );
        let error = BanFileError::Read {
            path: PathBuf::from("/etc/icq/bans"),
            source: io::Error::from_raw_os_error(21),
        };
        assert_eq!(
            error.to_string(),
            "reading ban list /etc/icq/bans: is a directory (os error 21)"
        );
    }

    // ---- appending ----

    #[test]
    fn append_keeps_every_existing_byte() {
        let dir = TempDir::new("append_keeps");
        let path = dir.file("banned_ips.txt");
        let original = "# banned by hand\n\n10.0.0.5  # spammer\nnot-an-ip\n  \t \r\n";
        fs::write(&path, original).expect("write test file");

        let outcome = append(&path, net("192.168.1.7"), None).expect("append");

        assert_eq!(read_text(&path), format!("{original}192.168.1.7\n"));
        assert!(outcome.added);
        assert_eq!(
            outcome.list.entries(),
            &[
                BanEntry {
                    net: net("10.0.0.5"),
                    line: 3
                },
                BanEntry {
                    net: net("192.168.1.7"),
                    line: 6
                },
            ]
        );
        assert_eq!(
            outcome.warnings[0].to_string(),
            "line 4: 'not-an-ip' is not an IP address"
        );
        assert_eq!(dir.names(), ["banned_ips.txt"]);
    }

    #[test]
    fn append_adds_missing_final_newline_first() {
        let dir = TempDir::new("append_newline");
        let path = dir.file("banned_ips.txt");
        fs::write(&path, "10.0.0.5  # no newline at end").expect("write test file");

        let outcome = append(&path, net("10.0.0.6"), None).expect("append");

        assert_eq!(
            read_text(&path),
            "10.0.0.5  # no newline at end\n10.0.0.6\n"
        );
        assert_eq!(outcome.list.len(), 2);
    }

    #[test]
    fn append_creates_missing_file() {
        let dir = TempDir::new("append_creates");
        let path = dir.file("banned_ips.txt");

        let outcome = append(&path, net("2001:db8::/32"), None).expect("append");

        assert_eq!(read_text(&path), "2001:db8::/32\n");
        assert!(outcome.added);
        assert_eq!(
            outcome.list.entries(),
            &[BanEntry {
                net: net("2001:db8::/32"),
                line: 1
            }]
        );
        assert_eq!(dir.names(), ["banned_ips.txt"]);
    }

    #[test]
    fn append_does_not_duplicate_a_listed_range() {
        let dir = TempDir::new("append_duplicate");
        let path = dir.file("banned_ips.txt");
        let original = "10.0.0.0/24  # office\n::ffff:1.2.3.4\n";
        fs::write(&path, original).expect("write test file");

        // Same range once host bits are cleared, and the same host in IPv4 notation.
        let range = append(&path, net("10.0.0.77/24"), Some("again")).expect("append");
        let host = append(&path, net("1.2.3.4"), None).expect("append");

        assert!(!range.added);
        assert!(!host.added);
        assert_eq!(range.list.len(), 2);
        assert_eq!(read_text(&path), original);
    }

    #[test]
    fn append_adds_a_host_inside_a_listed_range() {
        let dir = TempDir::new("append_inside_range");
        let path = dir.file("banned_ips.txt");
        fs::write(&path, "10.0.0.0/24\n").expect("write test file");

        let outcome = append(&path, net("10.0.0.5"), None).expect("append");

        assert!(outcome.added);
        assert_eq!(read_text(&path), "10.0.0.0/24\n10.0.0.5\n");
    }

    #[test]
    fn append_writes_the_comment() {
        let dir = TempDir::new("append_comment");
        let path = dir.file("banned_ips.txt");

        append(&path, net("10.0.0.5"), Some("flooding the lobby")).expect("append");
        append(&path, net("10.0.0.6"), Some("   ")).expect("append");

        assert_eq!(
            read_text(&path),
            "10.0.0.5  # flooding the lobby\n10.0.0.6\n"
        );
    }

    #[test]
    fn append_keeps_a_comment_on_one_line() {
        let dir = TempDir::new("append_comment_newline");
        let path = dir.file("banned_ips.txt");

        let outcome =
            append(&path, net("10.0.0.5"), Some("first\n10.0.0.9\r\tend")).expect("append");

        assert_eq!(read_text(&path), "10.0.0.5  # first 10.0.0.9  end\n");
        assert_eq!(outcome.list.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn append_preserves_file_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("append_permissions");
        let path = dir.file("banned_ips.txt");
        fs::write(&path, "10.0.0.5\n").expect("write test file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");

        append(&path, net("10.0.0.6"), None).expect("append");

        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn append_into_missing_directory_is_a_write_error() {
        let dir = TempDir::new("append_no_directory");
        let path = dir.file("no-such-directory").join("banned_ips.txt");
        match append(&path, net("10.0.0.5"), None) {
            Err(BanFileError::Write { path: reported, .. }) => assert_eq!(reported, path),
            other => panic!("expected a write error, got {other:?}"),
        }
    }

    #[test]
    fn temp_file_sits_beside_the_ban_file() {
        let pid = std::process::id();
        let (directory, temp) = temp_path_beside(Path::new("banned_ips.txt")).expect("temp");
        assert_eq!(directory, PathBuf::from("."));
        assert_eq!(temp, PathBuf::from(format!("./.banned_ips.txt.tmp.{pid}")));
        let (directory, temp) = temp_path_beside(Path::new("/etc/icq/bans")).expect("temp");
        assert_eq!(directory, PathBuf::from("/etc/icq"));
        assert_eq!(temp, PathBuf::from(format!("/etc/icq/.bans.tmp.{pid}")));
    }

    // ---- removing ----

    #[test]
    fn remove_deletes_only_exact_lines() {
        let dir = TempDir::new("remove_exact");
        let path = dir.file("banned_ips.txt");
        fs::write(
            &path,
            "10.0.0.5\n# keep me\n10.0.0.5/32  # same host again\n10.0.0.50\nbad line\n10.0.0.6",
        )
        .expect("write test file");

        let outcome = remove(&path, net("10.0.0.5")).expect("remove");

        assert_eq!(read_text(&path), "# keep me\n10.0.0.50\nbad line\n10.0.0.6");
        assert_eq!(outcome.removed, 2);
        assert_eq!(
            outcome.list.entries(),
            &[
                BanEntry {
                    net: net("10.0.0.50"),
                    line: 2
                },
                BanEntry {
                    net: net("10.0.0.6"),
                    line: 4
                },
            ]
        );
        assert_eq!(
            outcome.warnings[0].to_string(),
            "line 3: 'bad line' is not an IP address"
        );
        assert!(outcome.still_covered_by.is_empty());
        assert_eq!(dir.names(), ["banned_ips.txt"]);
    }

    #[test]
    fn remove_reports_ranges_that_still_cover_the_address() {
        let dir = TempDir::new("remove_covered");
        let path = dir.file("banned_ips.txt");
        fs::write(&path, "10.0.0.0/24\n10.0.0.5\n0.0.0.0/0\n10.0.1.0/24\n")
            .expect("write test file");

        let outcome = remove(&path, net("10.0.0.5")).expect("remove");

        assert_eq!(outcome.removed, 1);
        assert_eq!(
            outcome.still_covered_by,
            [
                BanEntry {
                    net: net("10.0.0.0/24"),
                    line: 1
                },
                BanEntry {
                    net: net("0.0.0.0/0"),
                    line: 2
                },
            ]
        );
        assert_eq!(read_text(&path), "10.0.0.0/24\n0.0.0.0/0\n10.0.1.0/24\n");
    }

    #[test]
    fn remove_of_a_range_ignores_narrower_entries() {
        let dir = TempDir::new("remove_range");
        let path = dir.file("banned_ips.txt");
        fs::write(&path, "10.0.0.0/8\n10.1.0.0/16\n10.1.0.0/24\n10.1.2.3\n")
            .expect("write test file");

        let outcome = remove(&path, net("10.1.0.0/16")).expect("remove");

        assert_eq!(outcome.removed, 1);
        assert_eq!(
            outcome.still_covered_by,
            [BanEntry {
                net: net("10.0.0.0/8"),
                line: 1
            }]
        );
    }

    #[test]
    fn remove_of_unlisted_range_leaves_file_alone() {
        let dir = TempDir::new("remove_unlisted");
        let path = dir.file("banned_ips.txt");
        let original = "10.0.0.0/24 # office\n";
        fs::write(&path, original).expect("write test file");
        let mut watch = FileWatch::new(&path);

        let outcome = remove(&path, net("10.0.0.5")).expect("remove");

        assert_eq!(outcome.removed, 0);
        assert_eq!(outcome.still_covered_by.len(), 1);
        assert_eq!(read_text(&path), original);
        assert!(!watch.changed());
    }

    #[test]
    fn remove_from_missing_file_creates_nothing() {
        let dir = TempDir::new("remove_missing");
        let path = dir.file("banned_ips.txt");

        let outcome = remove(&path, net("10.0.0.5")).expect("remove");

        assert_eq!(outcome.removed, 0);
        assert!(outcome.list.is_empty());
        assert!(!path.exists());
    }

    // ---- watching ----

    #[test]
    fn watch_reports_no_change_when_nothing_happened() {
        let dir = TempDir::new("watch_still");
        let path = dir.file("banned_ips.txt");
        fs::write(&path, "10.0.0.5\n").expect("write test file");
        let mut watch = FileWatch::new(&path);
        assert!(!watch.changed());
        assert!(!watch.changed());
    }

    #[test]
    fn watch_detects_a_write() {
        let dir = TempDir::new("watch_write");
        let path = dir.file("banned_ips.txt");
        fs::write(&path, "10.0.0.5\n").expect("write test file");
        let mut watch = FileWatch::new(&path);

        fs::write(&path, "10.0.0.5\n10.0.0.6\n").expect("rewrite test file");

        assert!(watch.changed());
        assert!(!watch.changed(), "the change is reported once");
    }

    #[cfg(unix)]
    #[test]
    fn watch_detects_atomic_replace_with_same_length() {
        let dir = TempDir::new("watch_rename");
        let path = dir.file("banned_ips.txt");
        fs::write(&path, "10.0.0.5\n").expect("write test file");
        let mut watch = FileWatch::new(&path);

        // Same length, and possibly the same mtime tick: only the inode tells them apart.
        let replacement = dir.file("replacement");
        fs::write(&replacement, "10.0.0.6\n").expect("write replacement");
        fs::rename(&replacement, &path).expect("rename over");

        assert!(watch.changed());
    }

    #[test]
    fn watch_detects_appearing_and_disappearing() {
        let dir = TempDir::new("watch_appear");
        let path = dir.file("banned_ips.txt");
        let mut watch = FileWatch::new(&path);
        assert!(!watch.changed());

        fs::write(&path, "").expect("create test file");
        assert!(watch.changed());

        fs::remove_file(&path).expect("delete test file");
        assert!(watch.changed());
        assert!(!watch.changed());
    }
}
