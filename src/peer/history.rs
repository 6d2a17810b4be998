//! The room's recent public lines, as one peer keeps them: every chat line and action it
//! showed (its own, the other members', and those it was replayed when it joined; never a
//! private line) in its own [`Ring`], numbered in its own epoch; the newest `--replay` of
//! them sent to a newcomer it lets in, right after the member list; and `/history`, asked
//! of our contact (or any member we can reach) and answered, by every peer, with the rule
//! the server follows ([`paging`](crate::proto::paging)).
//!
//! A peer's numbering is its own: the numbers a member sends are only used to page that
//! member's history again. Lines are taken only from the member we asked, only until its
//! end of history, and at most as many as we asked for.
//!
//! It does not own the store (`history`), the frames (`wire`), the streams they travel on
//! (`links`), or how the lines look (`render`: exactly as a client's replay).

use super::*;
use crate::proto::chat::ChatEvent;
use crate::proto::paging::{self, HistoryRequest, MAX_HISTORY_PAGE, MAX_REPLAY};
use crate::wire::HistoryEntry;

/// History lines we asked a member for and have not all received.
#[derive(Debug, Clone, Copy)]
pub(super) struct HistoryWait {
    /// The member asked (our contact, for the lines a newcomer is replayed).
    pub(super) from: SocketAddr,
    /// Whether the lines join our own history: those replayed when we joined, which we
    /// show as the room's latest; not a page of older lines.
    pub(super) record: bool,
    /// Lines shown so far, and the most we take.
    pub(super) shown: u64,
    pub(super) limit: u64,
    /// The epoch of the first line received (all must share it).
    pub(super) epoch: Option<u64>,
}

impl Peer {
    /// Shows a public line (ours or a member's, as it arrives) and keeps it in our history.
    pub(super) fn show_public(
        &mut self,
        time_ms: i64,
        from: String,
        kind: Kind,
        text: &str,
        own: bool,
    ) {
        self.history
            .push(u64::try_from(time_ms).unwrap_or(0), &from, kind, text);
        let text = text::sanitize(text).into_owned();
        self.events.push_back(PeerEvent::Chat(ChatEvent::live(
            paging::line_kind(kind),
            time_ms,
            from,
            text,
            own,
        )));
    }

    /// `/history [N]`: asks our contact (or, if it left, any member we can reach) for the
    /// newest `count` lines of its history (at most [`MAX_HISTORY_PAGE`]; `None`: as many as
    /// a newcomer is shown by default), shown as they arrive. Alone in the room, we show
    /// our own.
    pub fn request_history(&mut self, now: Instant, count: Option<usize>) -> Result<(), PeerError> {
        if !matches!(self.state, State::InRoom) {
            return Err(PeerError::NotInRoom);
        }
        if self.history_wait.is_some() {
            return Err(PeerError::HistoryPending);
        }
        let count = count
            .unwrap_or(paging::DEFAULT_REPLAY)
            .min(MAX_HISTORY_PAGE);
        let reachable = |m: &Member| !m.banned && m.doomed.is_none() && m.link.is_open();
        let asked = self
            .contact_addr
            .filter(|addr| self.members.get(addr).is_some_and(reachable))
            .or_else(|| {
                self.members
                    .iter()
                    .find(|(_, m)| reachable(m))
                    .map(|(addr, _)| *addr)
            });
        let Some(addr) = asked else {
            self.show_own_history(count);
            return Ok(());
        };
        let epoch = self.members.get(&addr).map_or(0, |m| m.history_epoch);
        self.history_wait = Some(HistoryWait {
            from: addr,
            record: false,
            shown: 0,
            limit: count as u64,
            epoch: None,
        });
        let count = u16::try_from(count).unwrap_or(u16::MAX);
        let request = PeerItem::HistoryRequest {
            epoch,
            before: u64::MAX,
            count,
        };
        self.send_item(now, addr, request);
        Ok(())
    }

    /// The newest `count` lines of our own history, shown as a member's would be.
    fn show_own_history(&mut self, count: usize) {
        let page = self.history.before(u64::MAX, count);
        let shown = page.lines.len() as u64;
        for line in page.lines {
            self.show_replayed(paging::entry(self.history_epoch, line));
        }
        self.events.push_back(PeerEvent::HistoryEnd {
            shown,
            earlier: page.earlier,
        });
    }

    /// Shows a line from a history (a member's, or ours) as it travelled, like a client's
    /// replay: a member's name and text are its own to choose, and the renderer neutralizes
    /// them, as it does the server's.
    fn show_replayed(&mut self, line: HistoryEntry) {
        let own = names::key(&line.from) == self.key;
        self.events
            .push_back(PeerEvent::Chat(ChatEvent::replayed(line, own)));
    }

    /// We were let in by `contact`: the lines it replays come next on its stream.
    pub(super) fn expect_replay(&mut self, contact: SocketAddr) {
        self.contact_addr = Some(contact);
        self.history_wait = Some(HistoryWait {
            from: contact,
            record: true,
            shown: 0,
            limit: MAX_REPLAY as u64,
            epoch: None,
        });
    }

    /// Sends the newcomer at `to` the newest `--replay` lines of our history, then the end
    /// of history: right after its member list, before anything live.
    pub(super) fn send_replay(&mut self, now: Instant, to: SocketAddr) {
        let count = self.config.replay.min(MAX_REPLAY);
        self.send_history(now, to, u64::MAX, count);
    }

    /// The member at `from` asks for up to `count` lines of our history epoch `epoch`
    /// numbered below `before`: clamped as the server clamps it, and to the room left in
    /// that member's queue, so that no request can make us hold more for it than
    /// [`MAX_UNACKED`] items; while our last answer to it (or its replay) is not all
    /// acknowledged, as with the server, it gets the end alone. An epoch not ours is
    /// answered from our newest line.
    pub(super) fn answer_history(&mut self, now: Instant, from: SocketAddr, asked: HistoryRequest) {
        let Some(member) = self.members.get(&from) else {
            return;
        };
        let link = &member.link;
        let outstanding = member.history_answer.is_some_and(|mark| {
            !link.pending.is_empty() || !link.stream.outbox.acknowledged_before(mark)
        });
        let queued = link.pending.len() + link.stream.outbox.len();
        // Room for the lines and their end.
        let room = MAX_UNACKED.saturating_sub(queued + 1);
        let answer = paging::answer(
            asked,
            self.history_epoch,
            self.history.capacity(),
            outstanding,
            room,
        );
        self.send_history(now, from, answer.before, answer.count);
    }

    /// Sends the member at `to` up to `count` lines numbered below `before`, oldest first,
    /// and the end of history (always, even with no line).
    fn send_history(&mut self, now: Instant, to: SocketAddr, before: u64, count: usize) {
        let epoch = self.history_epoch;
        let page = self.history.before(before, count);
        for line in page.lines {
            let item = PeerItem::HistoryLine {
                line: paging::entry(epoch, line),
            };
            self.send_item(now, to, item);
        }
        let end = PeerItem::HistoryEnd {
            epoch,
            newest: self.history.newest(),
            earlier: page.earlier,
        };
        self.send_item(now, to, end);
        if let Some(member) = self.members.get_mut(&to) {
            member.history_answer = Some(member.link.stream.outbox.next_seq());
        }
    }

    /// A history line from the member at `from`: shown if we asked it for lines and it has
    /// not sent all we asked for; kept in our history if it is part of our join's replay.
    pub(super) fn on_history_line(&mut self, from: SocketAddr, line: HistoryEntry) {
        let Some(wait) = self.history_wait.as_mut() else {
            return;
        };
        if wait.from != from
            || wait.shown >= wait.limit
            || *wait.epoch.get_or_insert(line.epoch) != line.epoch
        {
            return;
        }
        wait.shown += 1;
        if wait.record {
            let time = u64::try_from(line.time_ms).unwrap_or(0);
            self.history
                .push(time, &line.from, paging::stored_kind(line.kind), &line.text);
        }
        self.show_replayed(line);
    }

    /// The end of the history lines of the member at `from`, if we were waiting for them:
    /// the end is shown (unless a newcomer's replay was empty), the member's epoch kept for
    /// the next request, and after a join's replay what we typed meanwhile goes.
    pub(super) fn on_history_end(
        &mut self,
        now: Instant,
        from: SocketAddr,
        epoch: u64,
        earlier: u64,
    ) {
        let Some(wait) = self.history_wait.filter(|wait| wait.from == from) else {
            return;
        };
        self.history_wait = None;
        if let Some(member) = self.members.get_mut(&from) {
            member.history_epoch = epoch;
        }
        // Nothing said in the room yet: a join costs no line.
        if !(wait.record && wait.shown == 0 && earlier == 0) {
            self.events.push_back(PeerEvent::HistoryEnd {
                shown: wait.shown,
                earlier,
            });
        }
        if wait.record {
            self.release(now);
        }
    }

    /// The member at `addr` is gone: we no longer wait for its lines.
    pub(super) fn forget_history_wait(&mut self, addr: SocketAddr) {
        if self.history_wait.is_some_and(|wait| wait.from == addr) {
            self.history_wait = None;
        }
    }
}
