//! The interactive terminal: a line editor whose typed line is never garbled by output.
//!
//! When both stdin and stdout are terminals, the client and the server's console read what
//! the user types through rustyline (history with Up/Down, Tab completion, the usual editing
//! keys) and print everything else through rustyline's *external printer*, which draws each
//! line above the line being edited and then redraws that line with its cursor. This module owns that
//! wiring: opening the editor, a printer thread that feeds the external printer in order,
//! and putting the terminal back as it was when the program must exit while the editor is
//! still reading (the server closed the session, a signal). It does not own what is printed
//! or what a typed line means, and it is not used at all when either side is not a
//! terminal: the binaries then keep their plain line-by-line mode.
//!
//! No typed line is lost, however fast it comes: rustyline keeps what it read past the end
//! of one line for the next read (its `buffer-redux` feature; without it, type-ahead and an
//! unbracketed paste went with the reader after the first line), and between two reads the
//! terminal stays in the editor's own mode, so bytes that arrive while a line is being sent
//! wait for the next read unechoed and untranslated, Ctrl-C included. Ctrl-C clears a line
//! being typed (it can be yanked back with Ctrl-Y) and is reported only on an empty line.
//!
//! Unlike the rest of the library this module does I/O: it exists so that both binaries can
//! share it, and it has no logic worth a unit test beyond what the pseudo-terminal tests in
//! `tests/programs/terminal.rs` check end to end.

use std::io::{self, BufRead, IsTerminal, Write};
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
use rustyline::{
    Cmd, ConditionalEventHandler, Context, Editor, Event, EventContext, EventHandler,
    ExternalPrinter as _, Helper, KeyEvent, Movement, RepeatCount,
};

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
    /// Ctrl-C on an empty line (on a line being typed it only clears the line).
    Interrupted,
    /// Ctrl-D on an empty line, or the terminal went away.
    Eof,
}

/// The line editor, used by the thread that reads what the user types. Dropping it puts
/// the terminal back in the mode it had before [`LineEditor::open`].
pub struct LineEditor {
    editor: Editor<TabHelper, DefaultHistory>,
    /// The terminal's settings before the editor changed them.
    #[cfg(unix)]
    saved: Arc<Mutex<Option<nix::sys::termios::Termios>>>,
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
        editor.bind_sequence(
            KeyEvent::ctrl('C'),
            EventHandler::Conditional(Box::new(CtrlC)),
        );
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
        #[cfg(unix)]
        quiet_between_reads(&saved);
        let printer = Printer {
            jobs,
            #[cfg(unix)]
            saved: Arc::clone(&saved),
            finishing: Arc::new(Mutex::new(())),
        };
        let editor = LineEditor {
            editor,
            #[cfg(unix)]
            saved,
        };
        Some((editor, printer))
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

impl Drop for LineEditor {
    fn drop(&mut self) {
        #[cfg(unix)]
        restore(&self.saved);
    }
}

/// Puts the terminal, outside rustyline's reads, in the mode rustyline reads in: no echo,
/// no line discipline (erase, kill, end-of-file), no signal keys, no CR-to-NL translation.
/// rustyline takes the mode it finds as the one to restore after each read, so the
/// terminal never returns to cooked mode while the editor is open: a line typed ahead while
/// the previous one is being sent is neither echoed by the kernel across the screen nor
/// changed before the next read takes it, and a Ctrl-C in that moment reaches the editor
/// as a key rather than as SIGINT.
#[cfg(unix)]
fn quiet_between_reads(saved: &Mutex<Option<nix::sys::termios::Termios>>) {
    use nix::sys::termios::{InputFlags, LocalFlags, SpecialCharacterIndices};
    let saved = saved
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(mut quiet) = saved.clone() else {
        return;
    };
    quiet.input_flags &= !(InputFlags::ICRNL | InputFlags::IXON);
    quiet.local_flags &=
        !(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::IEXTEN | LocalFlags::ISIG);
    quiet.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    quiet.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    let _ = nix::sys::termios::tcsetattr(io::stdin(), nix::sys::termios::SetArg::TCSADRAIN, &quiet);
}

/// Puts the terminal back in the mode it had before the editor opened.
#[cfg(unix)]
fn restore(saved: &Mutex<Option<nix::sys::termios::Termios>>) {
    if let Some(saved) = saved
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
    {
        let _ =
            nix::sys::termios::tcsetattr(io::stdin(), nix::sys::termios::SetArg::TCSADRAIN, saved);
    }
}

/// Ctrl-C: clears the line being typed (into the kill ring, so Ctrl-Y brings it back); on
/// an empty line, interrupts the read.
struct CtrlC;

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        if ctx.line().is_empty() {
            Some(Cmd::Interrupt)
        } else {
            Some(Cmd::Kill(Movement::WholeBuffer))
        }
    }
}

impl Printer {
    /// Prints one line (no newline needed) above the line being typed.
    pub fn print(&self, line: impl Into<String>) {
        // Fails only once the printer thread is gone, when the process is exiting anyway.
        let _ = self.jobs.send(Job::Print(line.into()));
    }

    /// For a program about to exit: prints the lines already given, then `last_line` (unless
    /// empty) on a line of its own in place of the line being typed, and puts the terminal back in the
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
        restore(&self.saved);
        let mut out = io::stdout().lock();
        // Back to the start of the line being typed, clear it and what is below, then the
        // last line where it was (if there is one).
        let _ = write!(out, "{BRACKETED_PASTE_OFF}\r\u{1b}[J");
        if !last_line.is_empty() {
            let _ = writeln!(out, "{last_line}");
        }
        let _ = out.flush();
    }
}

/// Plain mode (stdin not a terminal, or no editor): reads stdin line by line and hands each
/// line (newline included) to `line`, until end of input or until `line` returns `false`.
/// A stray invalid byte does not end the input: it is shown as U+FFFD.
pub fn read_plain_lines(line: impl FnMut(&str) -> bool) {
    read_lines_lossy(io::stdin().lock(), line);
}

/// Reads `reader` up to each `\n` and hands each line (newline included; a last line
/// without one too) to `line`, until end of input, a read error, or `line` returning
/// `false`. Invalid UTF-8 is shown as U+FFFD rather than ending the input, since a stray
/// byte in a pipe or a program's output should not silence the rest.
pub fn read_lines_lossy(mut reader: impl BufRead, mut line: impl FnMut(&str) -> bool) {
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if !line(&String::from_utf8_lossy(&raw)) {
            return;
        }
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
