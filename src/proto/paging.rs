//! How much of a room's history travels at once: the newest lines a newcomer is shown
//! (`--replay`), the bound on what one request (`/history`) can make a history's keeper
//! send, and the line kinds as the wire names them. The server and the peer keep their
//! histories the same way and answer by the same rule, written once here.
//!
//! It does not own the history itself (numbering, epochs, the queries: [`crate::history`]),
//! the frames that carry it (`wire`), or who may ask and when (the roles).

use crate::history::Kind;
use crate::wire::LineKind;

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
    fn line_kinds_map_both_ways() {
        for kind in [Kind::Chat, Kind::Action, Kind::Console] {
            assert_eq!(stored_kind(line_kind(kind)), kind);
        }
    }
}
