//! The room's history as the server uses it: recording each public line as it is
//! broadcast (chat, `/me`, the console's broadcasts; never private messages) and replaying
//! the newest ones to a client that joins, before anything live, in its reliable stream.
//!
//! It does not own the store itself (numbering, epochs, the SQLite file: [`crate::history`]),
//! the frames' layout (`wire`), or when a line is broadcast (`room`).

use super::*;
use crate::history::Kind;
use crate::wire::LineKind;

impl Server {
    /// Records a public line the room is about to be shown and returns its number. Times
    /// before 1970 (a broken clock) are kept as 0.
    pub(super) fn record_line(&mut self, time_ms: i64, from: &str, kind: Kind, text: &str) -> u64 {
        let time_ms = u64::try_from(time_ms).unwrap_or(0);
        self.history.append(time_ms, from, kind, text)
    }

    /// Sends the client that just joined at `to` the newest [`ServerConfig::replay`] lines
    /// (at most [`MAX_REPLAY`]) of the history, oldest first, then [`Delivery::HistoryEnd`]. Sequenced like
    /// everything else, and queued right after the join's own frames: nothing live can come
    /// between. An empty history sends nothing; guests (plain text, no stream) are not
    /// replayed to.
    pub(super) fn replay_history(&mut self, now: Instant, to: SocketAddr) {
        let epoch = self.history.epoch();
        let count = self.config.replay.min(MAX_REPLAY);
        let page = self.history.before(u64::MAX, count);
        if page.lines.is_empty() && page.earlier == 0 {
            // Nothing to show: a join to an empty room costs what it did before history.
            return;
        }
        for line in page.lines {
            let frame = Frame::ToClient(ToClient::Sequenced(
                Envelope::default(),
                Delivery::HistoryLine {
                    epoch,
                    seq: line.seq,
                    time_ms: i64::try_from(line.time_ms).unwrap_or(i64::MAX),
                    from: line.name,
                    kind: line_kind(line.kind),
                    text: line.text,
                },
            ));
            self.send_sequenced(now, to, frame.to_bytes().into());
        }
        let end = Frame::ToClient(ToClient::Sequenced(
            Envelope::default(),
            Delivery::HistoryEnd {
                epoch,
                newest: self.history.newest(),
                earlier: page.earlier,
            },
        ));
        self.send_sequenced(now, to, end.to_bytes().into());
    }
}

/// The wire's name for a stored line's kind.
fn line_kind(kind: Kind) -> LineKind {
    match kind {
        Kind::Chat => LineKind::Chat,
        Kind::Action => LineKind::Action,
        Kind::Console => LineKind::Console,
    }
}
