//! Which bans are in force, and what the operator is told about them: the ban file as last
//! read whole, with the console's `/ban` and `/unban` on top. This module owns the rules that
//! join the two — a console command takes effect at once, before and whether or not the file
//! can be written; a change that could not be saved stays in force until the server stops
//! and is written with the next save that succeeds; a `/ban` line that an editor's stale save
//! removed is written back — and the reload policy (a changed file is read again, and a read
//! that looks torn is trusted only once the file has settled, so a half-written file never
//! lifts a ban). It does not own the file's format ([`crate::bans::list`]), the safe rewrite
//! ([`crate::bans::file`]) nor disconnecting banned clients (the server and peer cores).
//!
//! Like the cores it is driven from outside: [`BanKeeper::poll`] takes `now`, and
//! [`BanKeeper::save`] waits only through [`Surroundings`], so tests use a fake clock.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bans::file::{
    self, BanFileError, Edit, FileWatch, Settle, Snapshot, Surroundings, Verdict,
};
use crate::bans::list::{BanEntry, BanList, BanWarning, IpNet, parse_bytes};

/// Something the operator should read. Display gives the line, e.g. `banned 10.0.0.5 (added
/// to banned_ips.txt)` or `banned 10.0.0.5 (NOT saved to bans.txt: permission denied (os
/// error 13))`. The text may quote the file: print it through `text::sanitize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BanNotice {
    /// `/ban` wrote its line (`added`), or found `net` already listed.
    Banned {
        net: IpNet,
        path: PathBuf,
        added: bool,
    },
    /// `/unban` removed `removed` lines (0: it was not listed).
    Unbanned {
        net: IpNet,
        path: PathBuf,
        removed: usize,
    },
    /// A change is in force but could not be written; it is tried again at the next save.
    NotSaved {
        edit: Edit,
        path: PathBuf,
        reason: String,
    },
    /// A change that could not be written before has been written now.
    SavedLater { edit: Edit, path: PathBuf },
    /// After `/unban net`, this entry of the file still bans it.
    StillCovered {
        net: IpNet,
        path: PathBuf,
        by: BanEntry,
    },
    /// A line written by `/ban` disappeared from the file (an editor that had the file open
    /// saved its older copy over it, or it was deleted by hand): it is written back.
    Restored { net: IpNet, path: PathBuf },
    /// The file changed on disk and was read again.
    Reloaded { path: PathBuf, entries: usize },
    /// The file could not be read; the bans in force stay.
    ReadFailed { error: String },
    /// A line of the file is not an address or range (each reported once).
    Warning { path: PathBuf, warning: BanWarning },
}

impl fmt::Display for BanNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanNotice::Banned { net, path, added } => match added {
                true => write!(f, "banned {net} (added to {})", path.display()),
                false => write!(f, "banned {net} (already in {})", path.display()),
            },
            BanNotice::Unbanned { net, path, removed } => match removed {
                0 => write!(f, "{net} is not listed in {}", path.display()),
                _ => write!(f, "unbanned {net} (removed from {})", path.display()),
            },
            BanNotice::NotSaved { edit, path, reason } => {
                let path = path.display();
                match edit {
                    Edit::Ban { net, .. } => write!(
                        f,
                        "banned {net} (NOT saved to {path}: {reason}; in force until the server stops)"
                    ),
                    Edit::Unban { net } => write!(
                        f,
                        "unbanned {net} (NOT saved to {path}: {reason}; lifted until the server stops)"
                    ),
                }
            }
            BanNotice::SavedLater { edit, path } => {
                let (what, net) = match edit {
                    Edit::Ban { net, .. } => ("ban of", net),
                    Edit::Unban { net } => ("unban of", net),
                };
                write!(f, "the {what} {net} is saved to {} now", path.display())
            }
            BanNotice::StillCovered { net, path, by } => write!(
                f,
                "{net} is still banned by '{}' on line {} of {}; edit the file to lift it",
                by.net,
                by.line,
                path.display()
            ),
            BanNotice::Restored { net, path } => write!(
                f,
                "the line for {net} written by /ban disappeared from {} (an editor may have \
                 saved an older copy over it); it stays banned and is written back \
                 (lift it with /unban {net})",
                path.display()
            ),
            BanNotice::Reloaded { path, entries } => write!(
                f,
                "ban list {} changed on disk: {} now in force",
                path.display(),
                entries_text(*entries)
            ),
            BanNotice::ReadFailed { error } => write!(f, "{error}; keeping the bans in force"),
            BanNotice::Warning { path, warning } => {
                write!(f, "ban list {}: {warning}", path.display())
            }
        }
    }
}

/// "1 entry", "3 entries".
pub fn entries_text(count: usize) -> String {
    if count == 1 {
        "1 entry".to_owned()
    } else {
        format!("{count} entries")
    }
}

/// What [`BanKeeper::poll`] found.
#[derive(Debug, Default)]
pub struct Polled {
    /// The list in force changed: give [`BanKeeper::in_force`] to the core.
    pub changed: bool,
    /// What to tell the operator.
    pub notices: Vec<BanNotice>,
    /// Changes wait to be written (a `/ban` line to restore, an earlier failure to retry):
    /// call [`BanKeeper::save`] (which may wait, so not while holding the core).
    pub save_due: bool,
}

/// One console change not yet written, and whether the operator has heard it failed.
#[derive(Debug, Clone)]
struct Pending {
    edit: Edit,
    /// Already reported as not saved (a later success is then reported as saved later).
    failed_before: bool,
}

/// The bans in force, the ban file and the console's changes. See the module documentation.
#[derive(Debug)]
pub struct BanKeeper {
    /// The file as the operator named it (messages show this).
    path: PathBuf,
    /// What the file said at the last trusted read or write.
    file_list: BanList,
    /// `file_list` with `pending` applied: what the core enforces.
    in_force: BanList,
    /// Console changes not yet in the file, one per address or range (the latest wins).
    pending: Vec<Pending>,
    /// Ranges banned with `/ban` in this run and written: if a line disappears, it is put
    /// back. `/unban` takes a range off.
    asserted: Vec<IpNet>,
    settle: Settle,
    watch: FileWatch,
    /// When to read again a file whose last read was not trusted.
    look_again_at: Option<Instant>,
    /// Warnings already reported, so each bad line is reported once.
    warned: Vec<BanWarning>,
}

impl BanKeeper {
    /// Reads the file (once, as it is: nothing is in force yet to protect). A missing file
    /// is an empty list; a file that cannot be read is an error.
    pub fn open(path: &Path) -> Result<(BanKeeper, Vec<BanNotice>), BanFileError> {
        let watch = FileWatch::new(path);
        let snapshot = Snapshot::read(path)?;
        let mut settle = Settle::new();
        settle.trust(&snapshot.contents);
        let (file_list, warnings) = parse_bytes(&snapshot.contents);
        let mut keeper = BanKeeper {
            path: path.to_path_buf(),
            in_force: file_list.clone(),
            file_list,
            pending: Vec::new(),
            asserted: Vec::new(),
            settle,
            watch,
            look_again_at: None,
            warned: Vec::new(),
        };
        let notices = keeper.new_warnings(warnings);
        Ok((keeper, notices))
    }

    /// The bans in force.
    pub fn in_force(&self) -> &BanList {
        &self.in_force
    }

    /// The file as named.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts a console change in force at once (give [`BanKeeper::in_force`] to the core),
    /// to be written by the next [`BanKeeper::save`].
    pub fn stage(&mut self, edit: Edit) -> &BanList {
        let net = edit.net();
        self.pending.retain(|pending| pending.edit.net() != net);
        self.asserted.retain(|asserted| *asserted != net);
        self.pending.push(Pending {
            edit,
            failed_before: false,
        });
        self.recompute();
        &self.in_force
    }

    /// Whether changes wait to be written: console changes not yet saved, or a `/ban` line
    /// missing from the file.
    pub fn save_due(&self) -> bool {
        !self.pending.is_empty() || self.asserted.iter().any(|net| !self.file_list.lists(*net))
    }

    /// Writes every pending change into the file ([`file::save`]: under the lock, applied
    /// to the file's latest version), and writes back any `/ban` line that went missing.
    /// Whether it succeeds or not, the changes are in force; what failed stays pending.
    /// Returns what to tell the operator; the list in force may have changed (hand edits
    /// merged), so give it to the core again.
    pub fn save(&mut self, env: &mut impl Surroundings) -> Vec<BanNotice> {
        if !self.save_due() {
            return Vec::new();
        }
        // A ban line written back is an edit like any other: appended if missing.
        let mut edits: Vec<Edit> = self.pending.iter().map(|p| p.edit.clone()).collect();
        let restoring: Vec<IpNet> = self
            .asserted
            .iter()
            .copied()
            .filter(|net| !self.pending.iter().any(|p| p.edit.net() == *net))
            .collect();
        edits.extend(restoring.iter().map(|net| Edit::Ban {
            net: *net,
            comment: "/ban, written back".to_owned(),
        }));
        let mut notices = Vec::new();
        match file::save(&self.path, &edits, &mut self.settle, env) {
            Ok(saved) => {
                self.watch.seen(saved.stamp);
                self.look_again_at = None;
                let (before, _) = parse_bytes(&saved.base);
                let (file_list, warnings) = parse_bytes(&saved.contents);
                self.file_list = file_list;
                for net in restoring.iter().filter(|net| !before.lists(**net)) {
                    notices.push(BanNotice::Restored {
                        net: *net,
                        path: self.path.clone(),
                    });
                }
                for pending in std::mem::take(&mut self.pending) {
                    notices.extend(self.outcome(&pending, &before));
                }
                notices.extend(self.new_warnings(warnings));
            }
            Err(error) => {
                let reason = error.reason();
                for pending in &mut self.pending {
                    if !pending.failed_before {
                        pending.failed_before = true;
                        notices.push(BanNotice::NotSaved {
                            edit: pending.edit.clone(),
                            path: self.path.clone(),
                            reason: reason.clone(),
                        });
                    }
                }
            }
        }
        self.recompute();
        notices
    }

    /// What to say about one change now written; `before` is the version it was applied to.
    fn outcome(&mut self, pending: &Pending, before: &BanList) -> Vec<BanNotice> {
        let path = self.path.clone();
        let mut notices = Vec::new();
        match &pending.edit {
            Edit::Ban { net, .. } => {
                self.asserted.push(*net);
                if pending.failed_before {
                    notices.push(BanNotice::SavedLater {
                        edit: pending.edit.clone(),
                        path,
                    });
                } else {
                    notices.push(BanNotice::Banned {
                        net: *net,
                        path,
                        added: !before.lists(*net),
                    });
                }
            }
            Edit::Unban { net } => {
                let removed = before.entries().iter().filter(|e| e.net == *net).count();
                if pending.failed_before {
                    notices.push(BanNotice::SavedLater {
                        edit: pending.edit.clone(),
                        path: path.clone(),
                    });
                } else {
                    notices.push(BanNotice::Unbanned {
                        net: *net,
                        path: path.clone(),
                        removed,
                    });
                }
                for by in self.file_list.covering(*net) {
                    notices.push(BanNotice::StillCovered {
                        net: *net,
                        path: path.clone(),
                        by,
                    });
                }
            }
        }
        notices
    }

    /// Looks at the file: if it changed on disk, reads it and, once a read is trusted, puts
    /// it in force (with the console's changes on top). A read that looks cut is retried
    /// after [`file::SETTLE_TIME`]: call again at [`BanKeeper::next_look`]. Cheap when
    /// nothing changed (one `stat`).
    pub fn poll(&mut self, now: Instant) -> Polled {
        let mut polled = Polled::default();
        match self.look_again_at {
            Some(at) if now < at => return polled,
            Some(_) => {
                let _ = self.watch.changed();
            }
            None if !self.watch.changed() => return polled,
            None => {}
        }
        let snapshot = match Snapshot::read(&self.path) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                self.look_again_at = None;
                polled.notices.push(BanNotice::ReadFailed {
                    error: error.to_string(),
                });
                return polled;
            }
        };
        self.watch.seen(snapshot.stamp);
        if let Verdict::ReadAgainAt(at) = self.settle.judge(now, &snapshot) {
            self.look_again_at = Some(at);
            return polled;
        }
        self.look_again_at = None;
        let (file_list, warnings) = parse_bytes(&snapshot.contents);
        polled.notices.extend(self.new_warnings(warnings));
        self.file_list = file_list;
        let before = self.in_force.clone();
        self.recompute();
        polled.changed = self.in_force != before;
        polled.notices.push(BanNotice::Reloaded {
            path: self.path.clone(),
            entries: self.in_force.len(),
        });
        polled.save_due = self.save_due();
        polled
    }

    /// When [`BanKeeper::poll`] must look again at a file that was being written.
    pub fn next_look(&self) -> Option<Instant> {
        self.look_again_at
    }

    /// `file_list` with the `/ban`s of this run and the pending changes on top.
    fn recompute(&mut self) {
        let mut entries = self.file_list.entries().to_vec();
        for net in &self.asserted {
            if !entries.iter().any(|e| e.net == *net) {
                entries.push(BanEntry { net: *net, line: 0 });
            }
        }
        for pending in &self.pending {
            match &pending.edit {
                Edit::Ban { net, .. } => {
                    if !entries.iter().any(|e| e.net == *net) {
                        entries.push(BanEntry { net: *net, line: 0 });
                    }
                }
                Edit::Unban { net } => entries.retain(|e| e.net != *net),
            }
        }
        self.in_force = BanList::from_entries(entries);
    }

    fn new_warnings(&mut self, warnings: Vec<BanWarning>) -> Vec<BanNotice> {
        let notices = warnings
            .iter()
            .filter(|w| !self.warned.contains(w))
            .map(|warning| BanNotice::Warning {
                path: self.path.clone(),
                warning: warning.clone(),
            })
            .collect();
        self.warned = warnings;
        notices
    }
}
