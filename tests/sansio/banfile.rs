//! The ban file as a shared document: `/ban` and `/unban` interleaved with hand
//! edits — `echo >>` appends, editors that save through a temporary file and a rename,
//! editors that rewrite the file in place and leave it torn for a while, editors that save
//! a copy read before the `/ban` — on a real file, with a fake clock: every hand line and
//! every ban survives, and a torn file never lifts a ban that is in force. Also: a symlinked
//! ban file stays a symlink, and a file that never settles is reported, not half-used.
//!
//! The hand edits strike at the moments [`file::save`] names ([`Moment`]), and at every
//! wait (a torn write is finished while the server waits for the file to settle), which is
//! where a real editor's timing would put them.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use icq::bans::file::{self, Edit, Moment, RealTime, Settle, Snapshot, Surroundings, Verdict};
use icq::bans::keeper::BanKeeper;
use icq::bans::list::{BanList, IpNet};

/// A directory of its own for one test, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "icq-banfile-test-{}-{name}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn net(text: &str) -> IpNet {
    text.parse().expect("a network")
}

/// The first lines of every file: hand-written comments and a blank line.
const HEADER: &str =
    "# Bans for the lab server.\n# One address or range per line.\n\n10.9.0.0/16  # the old lab\n";

/// How an operator changes the file by hand.
#[derive(Debug, Clone, Copy)]
enum HandKind {
    /// `echo ... >> file`: one appending write.
    Append,
    /// Read, write `.edit.tmp`, rename it over the file.
    Rename,
    /// Read, open with truncation, write the first `cut` bytes; the rest a little later.
    InPlace { cut_per_mille: u16 },
}

/// When the hand edit strikes, relative to the next `/ban` or `/unban`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strike {
    /// Before it, on its own.
    Before,
    /// Inside the save, at this moment.
    At(Moment),
    /// The editor read the file before the `/ban` and saves after it (a stale copy).
    Stale,
}

#[derive(Debug, Clone)]
enum Op {
    Ban(u8),
    Unban(u8),
    Hand(HandKind, Strike),
    /// Time passes and the server looks at the file.
    Poll(u16),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(HandKind::Append),
        Just(HandKind::Rename),
        (0u16..1000).prop_map(|cut_per_mille| HandKind::InPlace { cut_per_mille }),
    ];
    let strike = prop_oneof![
        Just(Strike::Before),
        Just(Strike::At(Moment::Read)),
        Just(Strike::At(Moment::Written)),
        Just(Strike::At(Moment::Checked)),
        Just(Strike::Stale),
    ];
    prop_oneof![
        3 => (0u8..12).prop_map(Op::Ban),
        1 => (0u8..12).prop_map(Op::Unban),
        4 => (kind, strike).prop_map(|(kind, strike)| Op::Hand(kind, strike)),
        2 => (0u16..1500).prop_map(Op::Poll),
    ]
}

/// An editor's save in progress: what it will write, and, for an in-place one, the open file
/// it has written part of.
struct Editor {
    kind: HandKind,
    /// The whole version it saves.
    version: Vec<u8>,
    /// Its own lines (what an append writes).
    lines: String,
    /// An in-place save that has written part: the file and how much.
    torn: Option<(File, usize)>,
}

/// The fake world: a clock, and hand edits waiting for their moment.
struct World {
    path: PathBuf,
    now: Instant,
    /// A hand edit to make at this moment of the next save.
    scheduled: Option<(Moment, Editor)>,
    /// An in-place save to finish at the next wait.
    unfinished: Option<Editor>,
    /// Every hand line written, to find in the file at the end.
    hand_lines: Vec<String>,
    next_hand: u32,
}

impl World {
    fn new(path: &Path) -> World {
        World {
            path: path.to_path_buf(),
            now: Instant::now(),
            scheduled: None,
            unfinished: None,
            hand_lines: Vec::new(),
            next_hand: 0,
        }
    }

    /// The lines hand edit number `n` adds: a comment and an entry, both to be kept.
    fn new_hand_lines(&mut self) -> String {
        let n = self.next_hand;
        self.next_hand += 1;
        let comment = format!("# added by hand, edit {n}");
        let entry = format!("10.2.{}.{}  # hand {n}", n / 256, n % 256);
        let text = format!("{comment}\n{entry}\n");
        self.hand_lines.push(comment);
        self.hand_lines.push(entry);
        text
    }

    /// An editor that read the file now and will save it with its lines added.
    fn editor(&mut self, kind: HandKind) -> Editor {
        // One editor at a time: an earlier in-place save is finished first.
        self.finish_torn();
        let mut version = fs::read(&self.path).unwrap_or_default();
        if !version.is_empty() && !version.ends_with(b"\n") {
            version.push(b'\n');
        }
        let lines = self.new_hand_lines();
        version.extend_from_slice(lines.as_bytes());
        Editor {
            kind,
            version,
            lines,
            torn: None,
        }
    }

    /// Makes the editor's save (an in-place one only begins: it finishes at the next wait).
    fn save_by_hand(&mut self, mut editor: Editor) {
        self.finish_torn();
        match editor.kind {
            HandKind::Append => {
                // An append adds only its own lines to whatever the file is now.
                let mut file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&self.path)
                    .expect("open for append");
                let current = fs::read(&self.path).unwrap_or_default();
                let mut bytes = Vec::new();
                if !current.is_empty() && !current.ends_with(b"\n") {
                    bytes.push(b'\n');
                }
                bytes.extend_from_slice(editor.lines.as_bytes());
                file.write_all(&bytes).expect("append");
            }
            HandKind::Rename => {
                let temp = self.path.with_file_name(".edit.tmp");
                fs::write(&temp, &editor.version).expect("editor's temp file");
                fs::rename(&temp, &self.path).expect("editor's rename");
            }
            HandKind::InPlace { cut_per_mille } => {
                let cut = editor.version.len() * usize::from(cut_per_mille) / 1000;
                let mut file = OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .create(true)
                    .open(&self.path)
                    .expect("open in place");
                file.write_all(&editor.version[..cut]).expect("first part");
                editor.torn = Some((file, cut));
                self.unfinished = Some(editor);
            }
        }
    }

    /// Finishes an in-place save that has written only part.
    fn finish_torn(&mut self) {
        if let Some(editor) = self.unfinished.take()
            && let Some((mut file, written)) = editor.torn
        {
            file.write_all(&editor.version[written..])
                .expect("the rest");
        }
    }
}

impl Surroundings for World {
    fn now(&mut self) -> Instant {
        self.now
    }

    fn sleep_until(&mut self, deadline: Instant) {
        // The editor is faster than the server's patience: it finishes while we wait.
        self.finish_torn();
        self.now = self.now.max(deadline);
    }

    fn moment(&mut self, moment: Moment, _target: &Path) {
        if self.scheduled.as_ref().is_some_and(|(at, _)| *at == moment) {
            let (_, editor) = self.scheduled.take().expect("scheduled");
            self.save_by_hand(editor);
        }
    }
}

fn ban_net(n: u8) -> IpNet {
    net(&format!("10.0.0.{n}"))
}

/// Lets time pass and the keeper look until the file has settled and all is written.
fn settle_down(world: &mut World, keeper: &mut BanKeeper) {
    world.finish_torn();
    for _ in 0..20 {
        world.now += Duration::from_millis(300);
        let polled = keeper.poll(world.now);
        if polled.save_due || keeper.save_due() {
            keeper.save(world);
        }
        if keeper.next_look().is_none() && !keeper.save_due() && !polled.changed {
            // One more look with nothing changed: settled.
            world.now += Duration::from_millis(300);
            let polled = keeper.poll(world.now);
            if !polled.changed && keeper.next_look().is_none() && !keeper.save_due() {
                return;
            }
        }
    }
    panic!("the ban file never settled");
}

fn run_ops(ops: &[Op]) -> Result<(), TestCaseError> {
    let scratch = Scratch::new("prop");
    let path = scratch.0.join("bans.txt");
    fs::write(&path, HEADER).expect("write the file");
    let (mut keeper, _) = BanKeeper::open(&path).expect("open");
    let mut world = World::new(&path);
    // The bans that must be in force now (banned and not unbanned since).
    let mut banned: Vec<IpNet> = Vec::new();
    // An editor that read the file and saves after the next command (a stale copy).
    let mut stale: Option<Editor> = None;
    for op in ops {
        match op {
            Op::Ban(n) | Op::Unban(n) => {
                let net = ban_net(*n);
                let edit = match op {
                    Op::Ban(_) => Edit::Ban {
                        net,
                        comment: "/ban".to_owned(),
                    },
                    _ => Edit::Unban { net },
                };
                keeper.stage(edit);
                keeper.save(&mut world);
                if let Some((_, editor)) = world.scheduled.take() {
                    // The save never reached that moment (nothing to write): strike now.
                    world.save_by_hand(editor);
                }
                if let Some(editor) = stale.take() {
                    world.save_by_hand(editor);
                }
                banned.retain(|b| *b != net);
                if matches!(op, Op::Ban(_)) {
                    banned.push(net);
                }
            }
            Op::Hand(kind, strike) => {
                if stale.is_some() || world.scheduled.is_some() {
                    // One editor at a time: two editors racing each other lose each other's
                    // lines whatever the server does.
                    continue;
                }
                let editor = world.editor(*kind);
                match strike {
                    Strike::Before => world.save_by_hand(editor),
                    Strike::At(moment) => world.scheduled = Some((*moment, editor)),
                    Strike::Stale => stale = Some(editor),
                }
            }
            Op::Poll(ms) => {
                if ms % 3 == 0 {
                    world.finish_torn();
                }
                world.now += Duration::from_millis(u64::from(*ms));
                let polled = keeper.poll(world.now);
                if polled.save_due {
                    keeper.save(&mut world);
                }
            }
        }
        // Whatever the file looks like meanwhile, nothing banned is lifted.
        for net in &banned {
            prop_assert!(
                keeper.in_force().lists(*net),
                "{net} not in force after {op:?}"
            );
        }
    }
    if let Some(editor) = stale.take() {
        world.save_by_hand(editor);
    }
    if let Some((_, editor)) = world.scheduled.take() {
        world.save_by_hand(editor);
    }
    settle_down(&mut world, &mut keeper);

    let text = fs::read_to_string(&path).expect("read the file");
    prop_assert!(text.starts_with(HEADER), "the header is kept:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    for hand in &world.hand_lines {
        prop_assert!(lines.contains(&hand.as_str()), "lost {hand:?}:\n{text}");
    }
    let (on_disk, _) = BanList::parse(&text);
    for net in &banned {
        prop_assert!(on_disk.lists(*net), "lost the ban of {net}:\n{text}");
    }
    prop_assert_eq!(keeper.in_force().entries(), on_disk.entries());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_hand_line_and_every_ban_survive_any_interleaving(
        ops in proptest::collection::vec(arb_op(), 1..40)
    ) {
        run_ops(&ops)?;
    }
}

#[test]
fn a_ban_during_an_in_place_save_waits_for_it_and_keeps_everything() {
    // The report's case: two comments and two entries; an editor truncates the file and
    // takes a while to write it back; `/ban victim` comes in that window.
    let scratch = Scratch::new("in-place");
    let path = scratch.0.join("bans.txt");
    let original = "# comment one\n# comment two\n10.0.0.1\n10.0.0.2\n";
    fs::write(&path, original).expect("write");
    let (mut keeper, _) = BanKeeper::open(&path).expect("open");
    let mut world = World::new(&path);
    let editor = world.editor(HandKind::InPlace { cut_per_mille: 0 });
    world.save_by_hand(editor);
    assert_eq!(fs::read(&path).expect("read").len(), 0, "truncated");
    // The server looks while the file is empty: nothing in force is lifted.
    world.now += Duration::from_secs(1);
    keeper.poll(world.now);
    assert!(keeper.in_force().lists(net("10.0.0.1")));
    assert_eq!(keeper.next_look(), Some(world.now + file::SETTLE_TIME));

    keeper.stage(Edit::Ban {
        net: net("192.0.2.66"),
        comment: "victim".to_owned(),
    });
    let started = world.now;
    keeper.save(&mut world);
    assert!(
        world.now >= started + file::SETTLE_TIME,
        "the save waited for the file to settle"
    );
    let text = fs::read_to_string(&path).expect("read");
    assert!(text.starts_with(original), "{text}");
    for hand in &world.hand_lines {
        assert!(text.contains(hand.as_str()), "{text}");
    }
    assert!(text.ends_with("192.0.2.66  # victim\n"), "{text}");
    assert_eq!(keeper.in_force().len(), 4);
}

#[test]
fn a_file_really_emptied_by_hand_is_believed_once_it_has_settled() {
    let scratch = Scratch::new("emptied");
    let path = scratch.0.join("bans.txt");
    fs::write(&path, "10.0.0.1\n10.0.0.2\n").expect("write");
    let (mut keeper, _) = BanKeeper::open(&path).expect("open");
    let start = Instant::now();
    fs::write(&path, "").expect("empty it");
    let polled = keeper.poll(start);
    assert!(!polled.changed, "a cut file is not believed at once");
    assert_eq!(keeper.in_force().len(), 2);
    // Asked again too early: still waiting.
    keeper.poll(start + Duration::from_millis(100));
    assert_eq!(keeper.in_force().len(), 2);
    let polled = keeper.poll(start + file::SETTLE_TIME);
    assert!(polled.changed);
    assert!(keeper.in_force().is_empty());
}

#[test]
fn a_line_dropped_at_a_line_ending_is_also_a_cut_file() {
    // An in-place save caught right after a newline looks whole; it still lacks an entry
    // that the file had, so it waits like any other cut.
    let scratch = Scratch::new("cut-at-newline");
    let path = scratch.0.join("bans.txt");
    fs::write(&path, "10.0.0.1\n10.0.0.2\n").expect("write");
    let mut settle = Settle::new();
    let start = Instant::now();
    assert_eq!(
        settle.judge(start, &Snapshot::read(&path).expect("read")),
        Verdict::Use
    );
    fs::write(&path, "10.0.0.1\n").expect("cut");
    let read = Snapshot::read(&path).expect("read");
    assert_eq!(
        settle.judge(start, &read),
        Verdict::ReadAgainAt(start + file::SETTLE_TIME)
    );
    // An addition is no cut: believed at once.
    fs::write(&path, "10.0.0.1\n10.0.0.2\n10.0.0.3").expect("grow");
    let read = Snapshot::read(&path).expect("read");
    assert_eq!(settle.judge(start, &read), Verdict::Use);
}

#[test]
fn a_ban_written_by_a_stale_editor_save_is_written_back() {
    let scratch = Scratch::new("stale");
    let path = scratch.0.join("bans.txt");
    fs::write(&path, "# by hand\n").expect("write");
    let (mut keeper, _) = BanKeeper::open(&path).expect("open");
    let stale_copy = "# by hand\n10.7.7.7  # added in the editor\n";
    keeper.stage(Edit::Ban {
        net: net("10.0.0.9"),
        comment: "/ban".to_owned(),
    });
    keeper.save(&mut RealTime);
    // The editor had the file open since before the /ban, and saves over it.
    fs::write(&path, stale_copy).expect("editor's save");
    // It lacks an entry, so it is believed once it has not changed for a moment.
    let now = Instant::now();
    let polled = keeper.poll(now);
    assert!(!polled.changed && !polled.save_due);
    let polled = keeper.poll(now + file::SETTLE_TIME);
    assert!(polled.save_due);
    assert!(keeper.in_force().lists(net("10.0.0.9")), "still in force");
    let notices = keeper.save(&mut RealTime);
    let restored = notices.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert!(
        restored
            .iter()
            .any(|n| n.starts_with("the line for 10.0.0.9 written by /ban disappeared")),
        "{restored:?}"
    );
    let text = fs::read_to_string(&path).expect("read");
    assert!(text.starts_with(stale_copy), "{text}");
    assert!(text.contains("10.0.0.9"), "{text}");
}

#[cfg(unix)]
#[test]
fn a_symlinked_ban_file_stays_a_link_and_its_target_is_updated() {
    use std::os::unix::fs::symlink;
    let scratch = Scratch::new("symlink");
    // The real file lives in another directory, named through a relative link, itself
    // named through a second link.
    let real_dir = scratch.0.join("etc");
    fs::create_dir(&real_dir).expect("dir");
    let real = real_dir.join("bans.real");
    fs::write(&real, "# the real one\n10.0.0.1\n").expect("write");
    let link = scratch.0.join("bans.txt");
    symlink("etc/bans.real", &link).expect("link");
    let second = scratch.0.join("bans-link.txt");
    symlink("bans.txt", &second).expect("second link");

    let (mut keeper, _) = BanKeeper::open(&second).expect("open");
    keeper.stage(Edit::Ban {
        net: net("10.0.0.2"),
        comment: String::new(),
    });
    let notices = keeper.save(&mut RealTime);
    assert_eq!(
        notices.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [format!("banned 10.0.0.2 (added to {})", second.display())]
    );

    for name in [&link, &second] {
        assert!(
            fs::symlink_metadata(name)
                .expect("stat")
                .file_type()
                .is_symlink(),
            "{} is still a link",
            name.display()
        );
    }
    assert_eq!(
        fs::read_to_string(&real).expect("read the target"),
        "# the real one\n10.0.0.1\n10.0.0.2\n"
    );
    // The temporary file went in the target's directory and is gone; the lock stays there.
    let mut beside: Vec<String> = fs::read_dir(&real_dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(beside, [".bans.real.lock", "bans.real"]);
    // A later hand edit of the target is seen through the link.
    fs::write(&real, "# the real one\n10.0.0.1\n10.0.0.2\n10.0.0.3\n").expect("edit");
    let polled = keeper.poll(Instant::now());
    assert!(polled.changed);
    assert!(keeper.in_force().lists(net("10.0.0.3")));
}

#[cfg(unix)]
#[test]
fn a_dangling_symlink_gets_its_target_created() {
    use std::os::unix::fs::symlink;
    let scratch = Scratch::new("dangling");
    let link = scratch.0.join("bans.txt");
    symlink("real.txt", &link).expect("link");
    let edit = Edit::Ban {
        net: net("10.0.0.2"),
        comment: String::new(),
    };
    file::save(&link, &[edit], &mut Settle::new(), &mut RealTime).expect("saved");
    assert!(
        fs::symlink_metadata(&link)
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_to_string(scratch.0.join("real.txt")).expect("read"),
        "10.0.0.2\n"
    );
}

#[test]
fn a_file_that_never_settles_is_not_saved_and_the_ban_stays_in_force() {
    /// A world in which the file is rewritten before every look.
    struct Restless {
        path: PathBuf,
        now: Instant,
        n: u32,
    }
    impl Surroundings for Restless {
        fn now(&mut self) -> Instant {
            self.now
        }
        fn sleep_until(&mut self, deadline: Instant) {
            self.now = self.now.max(deadline);
            self.n += 1;
            fs::write(&self.path, format!("10.0.0.1\n10.3.0.{}", self.n % 200)).expect("write");
        }
    }
    let scratch = Scratch::new("restless");
    let path = scratch.0.join("bans.txt");
    fs::write(&path, "10.0.0.1\n10.3.0.0/24\n").expect("write");
    let (mut keeper, _) = BanKeeper::open(&path).expect("open");
    // Torn: shorter, no final newline.
    fs::write(&path, "10.0.0.1\n10.3").expect("write");
    let mut world = Restless {
        path: path.clone(),
        now: Instant::now(),
        n: 0,
    };
    keeper.stage(Edit::Ban {
        net: net("10.0.0.5"),
        comment: String::new(),
    });
    let notices = keeper.save(&mut world);
    let text: Vec<String> = notices.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(
        text[0].starts_with("banned 10.0.0.5 (NOT saved to ")
            && text[0].contains("the file kept changing for 5s"),
        "{text:?}"
    );
    assert!(keeper.in_force().lists(net("10.0.0.5")));
    assert!(
        keeper.in_force().lists(net("10.3.0.0/24")),
        "nothing lifted"
    );
}
