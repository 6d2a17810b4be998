//! The room's history as the server uses it: recording each public line as it is
//! broadcast (chat, `/me`, the console's broadcasts; never private messages), what a client
//! that joins is shown of it (the newest lines to a newcomer; exactly what it missed to a
//! client coming back; everything of a new epoch to a client of the old one), and the
//! answer to a history request (`/history`, paging back). Every answer is history lines,
//! oldest first, then one [`Delivery::HistoryEnd`], in the client's reliable stream.
//!
//! Every answer is bounded, and a client cannot make the server queue answers faster than
//! it takes them in: at most one answer is outstanding per session. A history request that
//! arrives while the previous answer (the join's included) is not yet acknowledged in full
//! is answered with a `HistoryEnd` alone, which says how many lines the client may ask for
//! again. An answer is also cut to fit [`HISTORY_ROOM`] of the client's outbox, so it never
//! pushes out the client's live lines (as [`OUTBOX_LIMIT`] would) and its frames wait in
//! the window only behind what the client has not acknowledged yet. Guests (plain text, no
//! stream) are sent no history at all.
//!
//! It does not own the store itself (numbering, epochs, the SQLite file: [`crate::history`]),
//! the frames' layout (`wire`), or when a line is broadcast (`room`).

use super::*;
use crate::history::{Kind, Line};
use crate::proto::paging::{self, HistoryRequest};

/// What a joining client says it has shown of the history: the epoch and the number of the
/// last public line (both 0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) epoch: u64,
    pub(super) seq: u64,
}

impl Server {
    /// Records a public line the room is about to be shown and returns its number. Times
    /// before 1970 (a broken clock) are kept as 0.
    pub(super) fn record_line(&mut self, time_ms: i64, from: &str, kind: Kind, text: &str) -> u64 {
        let time_ms = u64::try_from(time_ms).unwrap_or(0);
        self.history.append(time_ms, from, kind, text)
    }

    /// Sends the client that just joined at `to` what it is owed of the history, by what it
    /// says it has `seen`, queued right after the join's own frames (nothing live can come
    /// between):
    ///
    /// - nothing shown (epoch 0): the newest [`ServerConfig::replay`] lines (at most
    ///   [`MAX_REPLAY`]), and nothing at all, not even the end, from an empty history;
    /// - this epoch: every line after the last one it showed (at most [`MAX_RESUME`], the
    ///   newest if more), then the end, even with no line; if it claims a line beyond the
    ///   newest (the server lost lines it had sent), the newest `replay` lines and the end;
    /// - another epoch (this server's history started since): every line held (at most
    ///   [`MAX_RESUME`]), then the end, whose epoch tells the client the change.
    pub(super) fn send_join_history(&mut self, now: Instant, to: SocketAddr, seen: Seen) {
        let newest = self.history.newest();
        let replay = self.config.replay.min(MAX_REPLAY);
        let count = if seen.epoch == 0 {
            if self.history.ring().is_empty() {
                // Nothing to show: a join to an empty room costs what it did before history.
                return;
            }
            replay
        } else if seen.epoch != self.history.epoch() {
            MAX_RESUME
        } else if seen.seq > newest {
            replay
        } else {
            // At most newest - seen lines come after `seen`, so the newest that many are
            // exactly those still held.
            usize::try_from(newest - seen.seq)
                .unwrap_or(usize::MAX)
                .min(MAX_RESUME)
        };
        self.send_history(now, to, u64::MAX, count);
    }

    /// Answers a history request of the session at `from`: up to `count` lines of epoch
    /// `epoch` numbered below `before` (clamped to [`ServerConfig::history`] and
    /// [`MAX_HISTORY_PAGE`]; an epoch other than this history's is answered from the newest
    /// line, and its end's epoch tells the client), or none while the previous answer is
    /// outstanding.
    pub(super) fn answer_history(&mut self, now: Instant, from: SocketAddr, asked: HistoryRequest) {
        let Some(session) = self.sessions.get(&from) else {
            return;
        };
        let Some(streams) = session.streams.as_ref() else {
            return;
        };
        let outstanding = session
            .history_answer
            .is_some_and(|mark| !streams.outbox.acknowledged_before(mark));
        // The room is checked when sending (HISTORY_ROOM).
        let answer = paging::answer(
            asked,
            self.history.epoch(),
            self.config.history,
            outstanding,
            usize::MAX,
        );
        self.send_history(now, from, answer.before, answer.count);
    }

    /// Sends the named client at `to` up to `count` lines numbered below `before` (what
    /// fits in [`HISTORY_ROOM`]: the newest of them), oldest first, then one
    /// [`Delivery::HistoryEnd`] saying how many lines are still held before the first one
    /// sent; and marks the answer outstanding until it is acknowledged. Nothing for a guest.
    fn send_history(&mut self, now: Instant, to: SocketAddr, before: u64, count: usize) {
        let Some(streams) = self.sessions.get(&to).and_then(|s| s.streams.as_ref()) else {
            return;
        };
        // The end takes one frame of the room too.
        let room = HISTORY_ROOM.saturating_sub(streams.outbox.len() + 1);
        let epoch = self.history.epoch();
        let page = self.history.before(before, count.min(room));
        for line in page.lines {
            let frame = Frame::ToClient(ToClient::Sequenced(
                Envelope::default(),
                history_line(epoch, line),
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
        if let Some(session) = self.sessions.get_mut(&to)
            && let Some(streams) = session.streams.as_ref()
        {
            session.history_answer = Some(streams.outbox.next_seq());
        }
    }
}

/// A stored line of epoch `epoch` as the frame that shows it again.
fn history_line(epoch: u64, line: Line) -> Delivery {
    Delivery::HistoryLine {
        line: paging::entry(epoch, line),
    }
}
