//! Unit tests of [`super`] on real files, each in a temporary directory of its own: loading
//! (entries, warnings, read errors), `/ban`'s append and `/unban`'s removal keeping every
//! other byte (and the file's permissions, with the temporary file and the lock beside it),
//! and the watch that notices changes on disk. The races with hand edits at each
//! [`super::Moment`] are tested in `tests/sansio/banfile.rs`.

use super::*;
use crate::bans::list::BanEntry;

/// A directory of its own for one test, deleted again when the test ends.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(test_name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("icq-banfile-{}-{test_name}", std::process::id()));
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

fn read_text(path: &Path) -> String {
    fs::read_to_string(path).expect("read test file")
}

/// What one `/ban` or `/unban` did to the file, as the old `append`/`remove` reported.
struct Outcome {
    list: BanList,
    warnings: Vec<BanWarning>,
    added: bool,
    removed: usize,
    still_covered_by: Vec<BanEntry>,
}

fn run(path: &Path, edit: Edit) -> Outcome {
    let net = edit.net();
    let (before, _) = parse_bytes(&fs::read(path).unwrap_or_default());
    let saved = save(
        path,
        std::slice::from_ref(&edit),
        &mut Settle::new(),
        &mut RealTime,
    )
    .unwrap_or_else(|error| panic!("{edit:?} not saved: {error}"));
    let (list, warnings) = parse_bytes(&saved.contents);
    let count = |list: &BanList| list.entries().iter().filter(|e| e.net == net).count();
    Outcome {
        added: matches!(edit, Edit::Ban { .. }) && saved.written,
        removed: count(&before) - count(&list).min(count(&before)),
        still_covered_by: list.covering(net),
        list,
        warnings,
    }
}

fn ban(path: &Path, net_text: &str, comment: &str) -> Outcome {
    let comment = comment.to_owned();
    run(
        path,
        Edit::Ban {
            net: net(net_text),
            comment,
        },
    )
}

fn unban(path: &Path, net_text: &str) -> Outcome {
    run(path, Edit::Unban { net: net(net_text) })
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

    let outcome = ban(&path, "192.168.1.7", "");

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
    assert_eq!(dir.names(), [".banned_ips.txt.lock", "banned_ips.txt"]);
}

#[test]
fn append_adds_missing_final_newline_first() {
    let dir = TempDir::new("append_newline");
    let path = dir.file("banned_ips.txt");
    fs::write(&path, "10.0.0.5  # no newline at end").expect("write test file");

    let outcome = ban(&path, "10.0.0.6", "");

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

    let outcome = ban(&path, "2001:db8::/32", "");

    assert_eq!(read_text(&path), "2001:db8::/32\n");
    assert!(outcome.added);
    assert_eq!(
        outcome.list.entries(),
        &[BanEntry {
            net: net("2001:db8::/32"),
            line: 1
        }]
    );
    assert_eq!(dir.names(), [".banned_ips.txt.lock", "banned_ips.txt"]);
}

#[test]
fn append_does_not_duplicate_a_listed_range() {
    let dir = TempDir::new("append_duplicate");
    let path = dir.file("banned_ips.txt");
    let original = "10.0.0.0/24  # office\n::ffff:1.2.3.4\n";
    fs::write(&path, original).expect("write test file");

    // Same range once host bits are cleared, and the same host in IPv4 notation.
    let range = ban(&path, "10.0.0.77/24", "again");
    let host = ban(&path, "1.2.3.4", "");

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

    let outcome = ban(&path, "10.0.0.5", "");

    assert!(outcome.added);
    assert_eq!(read_text(&path), "10.0.0.0/24\n10.0.0.5\n");
}

#[test]
fn append_writes_the_comment() {
    let dir = TempDir::new("append_comment");
    let path = dir.file("banned_ips.txt");

    ban(&path, "10.0.0.5", "flooding the lobby");
    ban(&path, "10.0.0.6", "   ");

    assert_eq!(
        read_text(&path),
        "10.0.0.5  # flooding the lobby\n10.0.0.6\n"
    );
}

#[test]
fn append_keeps_a_comment_on_one_line() {
    let dir = TempDir::new("append_comment_newline");
    let path = dir.file("banned_ips.txt");

    let outcome = ban(&path, "10.0.0.5", "first\n10.0.0.9\r\tend");

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

    ban(&path, "10.0.0.6", "");

    let mode = fs::metadata(&path).expect("metadata").permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn append_into_missing_directory_is_a_write_error() {
    let dir = TempDir::new("append_no_directory");
    let path = dir.file("no-such-directory").join("banned_ips.txt");
    let edit = Edit::Ban {
        net: net("10.0.0.5"),
        comment: String::new(),
    };
    match save(&path, &[edit], &mut Settle::new(), &mut RealTime) {
        Err(BanFileError::Write { path: reported, .. }) => assert_eq!(reported, path),
        other => panic!("expected a write error, got {other:?}"),
    }
}

#[test]
fn temp_file_sits_beside_the_ban_file() {
    let pid = std::process::id();
    let (directory, temp, lock) = paths_beside(Path::new("banned_ips.txt")).expect("temp");
    assert_eq!(directory, PathBuf::from("."));
    assert_eq!(temp, PathBuf::from(format!("./.banned_ips.txt.tmp.{pid}")));
    assert_eq!(lock, PathBuf::from("./.banned_ips.txt.lock"));
    let (directory, temp, lock) = paths_beside(Path::new("/etc/icq/bans")).expect("temp");
    assert_eq!(directory, PathBuf::from("/etc/icq"));
    assert_eq!(temp, PathBuf::from(format!("/etc/icq/.bans.tmp.{pid}")));
    assert_eq!(lock, PathBuf::from("/etc/icq/.bans.lock"));
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

    let outcome = unban(&path, "10.0.0.5");

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
    assert_eq!(dir.names(), [".banned_ips.txt.lock", "banned_ips.txt"]);
}

#[test]
fn remove_reports_ranges_that_still_cover_the_address() {
    let dir = TempDir::new("remove_covered");
    let path = dir.file("banned_ips.txt");
    fs::write(&path, "10.0.0.0/24\n10.0.0.5\n0.0.0.0/0\n10.0.1.0/24\n").expect("write test file");

    let outcome = unban(&path, "10.0.0.5");

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
    fs::write(&path, "10.0.0.0/8\n10.1.0.0/16\n10.1.0.0/24\n10.1.2.3\n").expect("write test file");

    let outcome = unban(&path, "10.1.0.0/16");

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

    let outcome = unban(&path, "10.0.0.5");

    assert_eq!(outcome.removed, 0);
    assert_eq!(outcome.still_covered_by.len(), 1);
    assert_eq!(read_text(&path), original);
    assert!(!watch.changed());
}

#[test]
fn remove_from_missing_file_creates_nothing() {
    let dir = TempDir::new("remove_missing");
    let path = dir.file("banned_ips.txt");

    let outcome = unban(&path, "10.0.0.5");

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
