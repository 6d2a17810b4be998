//! The console log of a program: where its printed lines go, and when.
//!
//! Lines gather in one buffer and go out in one write when the program flushes: the server's
//! socket loop flushes when the socket is idle (so on a quiet server a line appears at
//! once), or when the buffer grows past [`FLUSH_AT`] under sustained load; everything else
//! flushes right after its lines. Writing each chat line with its own system call cost as
//! much as delivering it to a few clients. With the line editor (`crate::terminal`), the
//! buffer goes to the editor's printer instead of straight to stdout, so it appears above
//! the line being typed.
//!
//! What the lines say is the programs' and the renderer's business (`crate::render`). A
//! closed stdout
//! (`icq-server | head`) is no reason to stop serving, let alone to panic: what cannot be
//! written is dropped.

use std::fmt;
use std::io::{IsTerminal as _, Write as _};

use crate::render;
use crate::server::ServerEvent;
use crate::terminal::Printer;
use crate::text::{ClockText, UTC};

/// Past this many bytes the buffer is written even though datagrams keep coming: it bounds
/// the buffer's memory and keeps the log moving on a server that is never idle (about a
/// thousand chat lines).
pub const FLUSH_AT: usize = 64 * 1024;

/// A program's buffered console output (one per program, shared behind a mutex).
pub struct Log {
    buffer: Vec<u8>,
    clock: ClockText,
    /// The line editor's printer, once the console has one.
    printer: Option<Printer>,
}

impl Default for Log {
    fn default() -> Log {
        Log::new()
    }
}

impl Log {
    /// A log to stdout.
    pub const fn new() -> Log {
        Log {
            buffer: Vec::new(),
            clock: ClockText::at(UTC),
            printer: None,
        }
    }

    /// From now on, the log goes through `printer` (what is buffered goes out first).
    pub fn print_through(&mut self, printer: Printer) {
        self.flush();
        self.printer = Some(printer);
    }

    /// Whether the log goes through the line editor's printer.
    pub fn has_editor(&self) -> bool {
        self.printer.is_some()
    }

    /// Adds one line (a newline is appended).
    pub fn line(&mut self, line: impl fmt::Display) {
        let _ = write!(self.buffer, "{line}");
        self.buffer.push(b'\n');
    }

    /// Adds lines, each on a line of its own.
    pub fn lines<L: fmt::Display>(&mut self, lines: impl IntoIterator<Item = L>) {
        for line in lines {
            self.line(line);
        }
    }

    /// Adds the line for one of the server's events ([`render::push_server_line`]: a chat
    /// line with a clock formatted once a second, the one event a busy server logs
    /// thousands of times a second).
    pub fn server_event(&mut self, event: &ServerEvent, color: bool) {
        render::push_server_line(&mut self.buffer, &mut self.clock, event, color);
    }

    /// Writes the buffer out.
    pub fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        match &self.printer {
            Some(printer) => {
                let text = String::from_utf8_lossy(&self.buffer);
                printer.print(text.strip_suffix('\n').unwrap_or(&text));
            }
            None => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&self.buffer);
                let _ = stdout.flush();
            }
        }
        self.buffer.clear();
    }

    /// [`Log::flush`] if the buffer has grown past [`FLUSH_AT`].
    pub fn flush_if_large(&mut self) {
        if self.buffer.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// For the process about to exit: writes the buffer, then `last_line` (unless empty),
    /// and gives the terminal back as it was if the line editor had it.
    pub fn finish(&mut self, last_line: &str) {
        if self.printer.is_none() && !last_line.is_empty() {
            self.line(last_line);
        }
        self.flush();
        if let Some(printer) = &self.printer {
            printer.finish(last_line);
        }
    }

    /// A warning for stderr. While the line editor holds the terminal that stderr also
    /// writes to, the warning goes through the printer, so it does not garble the line
    /// being typed.
    pub fn warning(&mut self, warning: impl fmt::Display) {
        if self.printer.is_some() && std::io::stderr().is_terminal() {
            self.line(warning);
            self.flush();
        } else {
            let _ = writeln!(std::io::stderr(), "{warning}");
        }
    }

    /// What is buffered and not yet written.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_lines_are_the_styled_ones() {
        for (from, text) in [
            ("alice", "hello ~ {100%}"),
            ("zoë", "café 日本語 🎉"),
            ("bob", "tab\t, escape \u{1b}[2J, bidi \u{202e}x, del \u{7f}"),
        ] {
            let event = ServerEvent::Chat {
                time_ms: 1_700_000_123_456,
                from: from.to_owned(),
                text: text.to_owned(),
            };
            let mut log = Log::new();
            log.server_event(&event, false);
            let expected = format!("{}\n", render::server_line(&event, false));
            assert_eq!(String::from_utf8_lossy(log.buffered()), expected);
        }
    }

    #[test]
    fn lines_wait_for_the_flush() {
        let mut log = Log::new();
        log.line("one");
        log.lines(["two", "three"]);
        assert_eq!(log.buffered(), b"one\ntwo\nthree\n");
        log.flush_if_large();
        assert_eq!(
            log.buffered().len(),
            14,
            "below FLUSH_AT nothing is written"
        );
    }
}
