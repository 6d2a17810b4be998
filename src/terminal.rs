//! The interactive terminal: a line editor whose typed line is never garbled by output.
//!
//! When both stdin and stdout are terminals, the client reads what the user types through
//! rustyline (history with Up/Down, Tab completion, the usual editing keys) and prints
//! everything else through rustyline's *external printer*, which draws each line above the
//! line being edited and then redraws that line with its cursor. This module owns that
//! wiring: opening the editor, a printer thread that feeds the external printer in order,
//! and putting the terminal back as it was when the program must exit while the editor is
//! still reading (the server closed the session, a signal). It does not own what is printed
//! or what a typed line means, and it is not used at all when either side is not a
//! terminal: the binaries then keep their plain line-by-line mode.
//!
//! Unlike the rest of the library this module does I/O: it exists so that both binaries can
//! share it, and it has no logic worth a unit test beyond what the pseudo-terminal test in
//! `tests/terminal.rs` checks end to end.

use std::io::{self, IsTerminal, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustyline::completion::Completer;
use rustyline::config::{Behavior, Config};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, ExternalPrinter as _, Helper};

/// How many typed lines Up/Down can bring back.
const HISTORY_SIZE: usize = 1000;

/// How long [`Printer::finish`] waits for lines already queued to reach the editor. Normally
/// instant; the bound only matters if the editor stopped reading (the user just ended the
/// session), when those lines could otherwise never be taken.
const FLUSH_LIMIT: Duration = Duration::from_millis(500);

/// Time the editor thread gets to draw the last line it was handed before
/// [`Printer::finish`] writes to the terminal itself. rustyline offers no way to learn that a
/// line has been drawn; drawing one takes microseconds, so this is ample and only delays
/// an exit the server forced.
const DRAW_GRACE: Duration = Duration::from_millis(30);

/// Turns off the bracketed-paste mode rustyline turns on while it reads, in case the program
/// exits in the middle of a read.
const BRACKETED_PASTE_OFF: &str = "\u{1b}[?2004l";

/// What Tab offers: given the line and the cursor's byte offset, where the word being
/// completed starts and its possible replacements.
pub type CompleteFn = dyn Fn(&str, usize) -> (usize, Vec<String>) + Send + Sync;

/// The result of reading one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// A line, without its newline. A multi-line paste comes as one `Line` with `\n`s in it.
    Line(String),
    /// Ctrl-C.
    Interrupted,
    /// Ctrl-D on an empty line, or the terminal went away.
    Eof,
}

/// The line editor, used by the thread that reads what the user types.
pub struct LineEditor {
    editor: Editor<TabHelper, DefaultHistory>,
}

/// Prints lines above the one being typed. Cheap to clone and usable from any thread; lines
/// appear in the order they were given, whichever thread gave them.
#[derive(Clone)]
pub struct Printer {
    jobs: mpsc::Sender<Job>,
    /// The terminal's settings before the editor first changed them.
    #[cfg(unix)]
    /// (nix's `Termios` is not `Sync`, hence the mutex.)
    saved: Arc<Mutex<Option<nix::sys::termios::Termios>>>,
    /// Serializes [`Printer::finish`] calls (two threads may end the program at once).
    finishing: Arc<Mutex<()>>,
}

enum Job {
    Print(String),
    /// Answer once every earlier line has been handed to the editor.
    Flush(mpsc::Sender<()>),
}

impl LineEditor {
    /// Opens the editor if stdin and stdout are both terminals it can drive (not, say,
    /// `TERM=dumb`); `None` means: use plain line mode. `complete` serves Tab.
    pub fn open(complete: Arc<CompleteFn>) -> Option<(LineEditor, Printer)> {
        if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
            return None;
        }
        #[cfg(unix)]
        let saved = Arc::new(Mutex::new(nix::sys::termios::tcgetattr(io::stdin()).ok()));
        let config = Config::builder()
            .max_history_size(HISTORY_SIZE)
            .ok()?
            .history_ignore_dups(true)
            .ok()?
            .auto_add_history(false)
            .behavior(Behavior::Stdio)
            .build();
        let mut editor = Editor::with_config(config).ok()?;
        editor.set_helper(Some(TabHelper { complete }));
        // Fails on terminals rustyline does not support; plain mode works everywhere.
        let mut external = editor.create_external_printer().ok()?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("printer".into())
            .spawn(move || {
                for job in queue {
                    match job {
                        Job::Print(mut line) => {
                            // rustyline adds the newline itself only while it is reading;
                            // with one always there, both cases look the same.
                            line.push('\n');
                            if external.print(line.clone()).is_err() {
                                let _ = io::stdout().write_all(line.as_bytes());
                                let _ = io::stdout().flush();
                            }
                        }
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .ok()?;
        let printer = Printer {
            jobs,
            #[cfg(unix)]
            saved,
            finishing: Arc::new(Mutex::new(())),
        };
        Some((LineEditor { editor }, printer))
    }

    /// Reads one line, showing `prompt`. A non-blank line is added to the history.
    pub fn read(&mut self, prompt: &str) -> Typed {
        match self.editor.readline(prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = self.editor.add_history_entry(line.as_str());
                }
                Typed::Line(line)
            }
            Err(ReadlineError::Interrupted) => Typed::Interrupted,
            Err(_) => Typed::Eof,
        }
    }
}

impl Printer {
    /// Prints one line (no newline needed) above the line being typed.
    pub fn print(&self, line: impl Into<String>) {
        // Fails only once the printer thread is gone, when the process is exiting anyway.
        let _ = self.jobs.send(Job::Print(line.into()));
    }

    /// For a program about to exit: prints the lines already given, then `last_line` on a
    /// line of its own in place of the line being typed, and puts the terminal back in the
    /// mode it had before the editor started (the editor may be in the middle of a read
    /// that will never return, since the process exits). Never returns to a second caller
    /// while the first is still writing.
    pub fn finish(&self, last_line: &str) {
        let _guard = self
            .finishing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (done, flushed) = mpsc::channel();
        if self.jobs.send(Job::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(FLUSH_LIMIT);
        }
        std::thread::sleep(DRAW_GRACE);
        #[cfg(unix)]
        if let Some(saved) = self
            .saved
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            let _ = nix::sys::termios::tcsetattr(
                io::stdin(),
                nix::sys::termios::SetArg::TCSADRAIN,
                saved,
            );
        }
        let mut out = io::stdout().lock();
        // Back to the start of the line being typed, clear it and what is below, then the
        // last line where it was.
        let _ = write!(out, "{BRACKETED_PASTE_OFF}\r\u{1b}[J{last_line}\n");
        let _ = out.flush();
    }
}

/// Connects rustyline's completion to [`CompleteFn`]; hints, highlighting and multi-line
/// validation stay off.
struct TabHelper {
    complete: Arc<CompleteFn>,
}

impl Completer for TabHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok((self.complete)(line, pos))
    }
}

impl Hinter for TabHelper {
    type Hint = String;
}

impl Highlighter for TabHelper {}

impl Validator for TabHelper {}

impl Helper for TabHelper {}
