//! How much of a room's history travels at once: the newest lines a newcomer is shown
//! (`--replay`), the bound on what one request (`/history`) can make a history's keeper
//! send, and the line kinds as the wire names them. The server and the peer keep their
//! histories the same way and answer by the same rule, written once here.
//!
//! It does not own the history itself (numbering, epochs, the queries: [`crate::history`]),
//! the frames that carry it (`wire`), or who may ask and when (the roles).

use crate::history::{Kind, Line};
use crate::wire::{HistoryEntry, LineKind};

/// How many lines of history a newcomer is shown when the user does not say (`--replay`).
pub const DEFAULT_REPLAY: usize = 20;

/// The most lines `--replay` may ask for: a newcomer's replay stays well inside what one
/// stream holds in flight, so it never pushes out what it replays.
pub const MAX_REPLAY: usize = 1_000;

/// The most lines `--history` may keep: a bound on the memory a room's history takes.
pub const MAX_HISTORY: usize = 1_000_000;

/// The most lines one history request is answered with, whatever it asks.
pub const MAX_HISTORY_PAGE: usize = 1_000;

/// How many lines a request for `asked` lines gets from a history keeping `capacity`:
/// never more than it holds, nor than [`MAX_HISTORY_PAGE`].
pub fn page_count(asked: u16, capacity: usize) -> usize {
    usize::from(asked).min(capacity).min(MAX_HISTORY_PAGE)
}

/// A history request as it arrived (`/history`, from a client or a member): up to `count`
/// lines of history epoch `epoch` numbered below `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRequest {
    /// The epoch the asker's numbers belong to.
    pub epoch: u64,
    /// Lines numbered below this one.
    pub before: u64,
    /// How many lines it asks for.
    pub count: u16,
}

impl HistoryRequest {
    /// The request for `count` lines of epoch `epoch` numbered below `before`.
    pub fn new(epoch: u64, before: u64, count: u16) -> HistoryRequest {
        HistoryRequest {
            epoch,
            before,
            count,
        }
    }
}

/// What a history's keeper sends for a request: the lines numbered below `before`, at most
/// `count` of them, then the end of history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Lines numbered below this one.
    pub before: u64,
    /// How many lines at the most.
    pub count: usize,
}

/// The one rule by which the server and a peer answer a history request, given the keeper's
/// history epoch and capacity: while its last answer to the asker is `outstanding` (not all
/// acknowledged) the asker gets the end alone, so one asker can never make it hold more than
/// one answer; otherwise the count is clamped ([`page_count`]) and to the `room` the asker's
/// stream has left. Numbers of an epoch not the keeper's mean nothing to it: such a request
/// is answered from the newest line, and the end's epoch tells the asker.
pub fn answer(
    request: HistoryRequest,
    epoch: u64,
    capacity: usize,
    outstanding: bool,
    room: usize,
) -> Answer {
    let count = if outstanding {
        0
    } else {
        page_count(request.count, capacity).min(room)
    };
    let before = if request.epoch == epoch {
        request.before
    } else {
        u64::MAX
    };
    Answer { before, count }
}

/// A stored line of history epoch `epoch` as it travels (to a client, or to a peer).
pub fn entry(epoch: u64, line: Line) -> HistoryEntry {
    HistoryEntry {
        epoch,
        seq: line.seq,
        time_ms: i64::try_from(line.time_ms).unwrap_or(i64::MAX),
        from: line.name,
        kind: line_kind(line.kind),
        text: line.text,
    }
}

/// The wire's name for a stored line's kind.
pub fn line_kind(kind: Kind) -> LineKind {
    match kind {
        Kind::Chat => LineKind::Chat,
        Kind::Action => LineKind::Action,
        Kind::Console => LineKind::Console,
    }
}

/// The stored kind of a line the wire names.
pub fn stored_kind(kind: LineKind) -> Kind {
    match kind {
        LineKind::Chat => Kind::Chat,
        LineKind::Action => Kind::Action,
        LineKind::Console => Kind::Console,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_clamped_to_the_capacity_and_the_page_limit() {
        assert_eq!(page_count(20, 1_000), 20);
        assert_eq!(page_count(u16::MAX, 1_000_000), MAX_HISTORY_PAGE);
        assert_eq!(page_count(u16::MAX, 50), 50);
        assert_eq!(page_count(5, 0), 0);
    }

    #[test]
    fn an_answer_follows_the_one_rule() {
        let asked = HistoryRequest::new(7, 40, 30);
        // Our epoch: the asker's numbers hold, the count is clamped to capacity and room.
        assert_eq!(
            answer(asked, 7, 1_000, false, usize::MAX),
            Answer {
                before: 40,
                count: 30
            }
        );
        assert_eq!(answer(asked, 7, 20, false, usize::MAX).count, 20);
        assert_eq!(answer(asked, 7, 1_000, false, 5).count, 5);
        // Another epoch: from the newest line.
        assert_eq!(answer(asked, 8, 1_000, false, usize::MAX).before, u64::MAX);
        // An answer still outstanding: the end alone.
        assert_eq!(answer(asked, 7, 1_000, true, usize::MAX).count, 0);
    }

    #[test]
    fn line_kinds_map_both_ways() {
        for kind in [Kind::Chat, Kind::Action, Kind::Console] {
            assert_eq!(stored_kind(line_kind(kind)), kind);
        }
    }
}
