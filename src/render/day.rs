//! The day change: `-- Tuesday 1 December 2026` before the first line of a new local day
//! (irssi's "Day changed"), and before history lines from another day.
//!
//! This module owns which local day a time falls on at a UTC offset ([`local_day`], also
//! the date in front of history lines from another day), the words of the day line, the
//! one piece of state it needs ([`DayMark`]: the day of the last line printed) and which
//! of the cores' events carry a time of their own ([`client_stamp`], [`peer_stamp`]).
//! Only those move the mark: a line the client makes up itself, help text or an error
//! neither gets a day line nor changes the day. It does not own the line's colors
//! ([`super::ClientLook::day_line`]) nor printing it (the program).

use chrono::{FixedOffset, NaiveDate};

use crate::client::ClientEvent;
use crate::peer::PeerEvent;
use crate::text;

/// The local date at `offset` from UTC of a time in milliseconds since the Unix epoch,
/// if the time is in range.
pub(super) fn local_day(time_ms: i64, offset: FixedOffset) -> Option<NaiveDate> {
    text::at_offset(time_ms, offset).map(|time| time.date_naive())
}

/// `-- Tuesday 1 December 2026`: English weekday and month, the day without a leading zero.
fn day_text(day: NaiveDate) -> String {
    format!("-- {}", day.format("%A %-d %B %Y"))
}

/// The local day of the last line printed with a time, so that the next line from another
/// day is preceded by a day line. It starts at the day the session starts: the first line
/// gets a day line only if it is from another day (a history line from yesterday), and a
/// line after midnight gets one however long nothing was printed (no timer needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayMark {
    day: Option<NaiveDate>,
}

impl DayMark {
    /// The mark of a session starting at `now_ms` (in the zone `offset` from UTC).
    pub fn new(now_ms: i64, offset: FixedOffset) -> DayMark {
        DayMark {
            day: local_day(now_ms, offset),
        }
    }

    /// The day line to print before a line stamped `time_ms` (read at `offset` from UTC),
    /// if its day is not the last one's; that day becomes the last one. A time out of range
    /// changes nothing.
    pub fn line(&mut self, time_ms: i64, offset: FixedOffset) -> Option<String> {
        let day = local_day(time_ms, offset)?;
        if self.day == Some(day) {
            return None;
        }
        self.day = Some(day);
        Some(day_text(day))
    }
}

/// The time a client event's line shows, when the server stamped it (messages, history
/// lines, notices, presence, `/list`); `None` for what the client says itself. Every
/// variant is named, so a new event is placed on purpose.
pub fn client_stamp(event: &ClientEvent) -> Option<i64> {
    match event {
        ClientEvent::Chat(chat) => Some(chat.time_ms()),
        ClientEvent::Notice { time_ms, .. }
        | ClientEvent::PresenceBatch { time_ms, .. }
        | ClientEvent::Roster { time_ms, .. } => Some(*time_ms),
        ClientEvent::Joined { .. }
        | ClientEvent::Renamed { .. }
        | ClientEvent::ServerSilent { .. }
        | ClientEvent::ServerBack
        | ClientEvent::Rejoining
        | ClientEvent::ServerLost
        | ClientEvent::Rejoined { .. }
        | ClientEvent::Queued { .. }
        | ClientEvent::Unsent { .. }
        | ClientEvent::NotSent { .. }
        | ClientEvent::Missed { .. }
        | ClientEvent::HistoryEnd { .. }
        | ClientEvent::PageEnd { .. }
        | ClientEvent::MissedWhileAway { .. }
        | ClientEvent::HistoryRestarted
        | ClientEvent::HistoryGone { .. }
        | ClientEvent::HistoryRewound { .. }
        | ClientEvent::Closed(_) => None,
    }
}

/// [`client_stamp`] for peer mode: the time a peer-mode event's line shows, when a peer
/// stamped it.
pub fn peer_stamp(event: &PeerEvent) -> Option<i64> {
    match event {
        PeerEvent::Chat(chat) => Some(chat.time_ms()),
        PeerEvent::MemberJoined { time_ms, .. }
        | PeerEvent::MemberGone { time_ms, .. }
        | PeerEvent::DroppedBy { time_ms, .. }
        | PeerEvent::FloodDropped { time_ms, .. }
        | PeerEvent::FloodWarned { time_ms, .. }
        | PeerEvent::Members { time_ms, .. } => Some(*time_ms),
        PeerEvent::Joined { .. }
        | PeerEvent::Renamed { .. }
        | PeerEvent::RenameLost { .. }
        | PeerEvent::Queued { .. }
        | PeerEvent::Unsent { .. }
        | PeerEvent::NotSent { .. }
        | PeerEvent::Undelivered { .. }
        | PeerEvent::HistoryEnd { .. }
        | PeerEvent::Closed(_) => None,
    }
}
