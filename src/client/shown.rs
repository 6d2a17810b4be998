//! What of the server's history this client has shown, and what each answer from that
//! history means to it: the [`HistoryMark`] a join carries (the epoch, the newest line
//! shown), the oldest line shown from the history (where `/history` pages back from), which
//! lines of an answer are new and which repeat what was shown (never shown twice), and what
//! the catch-up after a rejoin ends with (lines missed, lines gone, a history that is not the
//! one we knew).
//!
//! Answers are told apart by their place in the session's stream, which the server keeps in
//! order: the join's answer comes before anything but the roster (and the notice that follows
//! a roster cut short, in a large room); every other answer follows
//! the history requests of this session one for one, in the order they were sent. A request
//! for 0 lines is the *probe*: sent once a session when live lines were shown whose history
//! this client does not know yet (a room empty when we joined sends no replay), its answer
//! only tells the epoch, so the next rejoin can resume.
//!
//! A server answers one history request at a time: one that arrives before the previous
//! answer (the join's included) is acknowledged gets the end alone. A page that comes back
//! with no line although earlier lines are held was declined so, and is asked again, once:
//! the request that asks again acknowledges everything before it.
//!
//! It owns no frames, timers or sockets (`client` hands it what arrives, in order, and
//! sends what it asks for), and not how any of it looks (`render`).

use std::collections::VecDeque;

use super::ClientEvent;
use crate::wire::Request;

/// Where in the server's history this client is: the epoch it last heard of and the
/// number of the newest line of it the client knows of (shown, or said before the lines
/// it was shown), kept across sessions so a rejoin can say what it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryMark {
    /// The history's epoch; 0 while only live lines were shown (they carry their number,
    /// not the epoch) and no answer from the history has told it yet.
    pub epoch: u64,
    /// The newest line shown, or said before the lines shown (a replay's newest). Only a
    /// higher number moves it, or a new epoch.
    pub seq: u64,
    /// The oldest line shown from the history (a replay, a catch-up, `/history`), where the
    /// next `/history` pages back from; `None` before any. A catch-up with a gap before it
    /// starts the view again from its first line.
    pub oldest: Option<u64>,
}

/// What kind of answer is arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The join's answer (a replay, or the catch-up of a rejoin), or an answer nobody asked
    /// for: only lines after the mark are shown.
    CatchUp,
    /// A page asked for with `/history`: only lines before the oldest shown are shown.
    Page,
    /// The probe's answer: no line is shown, and nothing is said.
    Probe,
}

/// A history request sent and not answered yet.
#[derive(Debug, Clone, Copy)]
struct Asked {
    /// Lines asked for (0: the probe).
    count: u16,
    /// It asks again for a page that was declined.
    again: bool,
}

/// The answer being received: its lines so far.
#[derive(Debug)]
struct Answer {
    kind: Kind,
    /// The request it answers (none for a catch-up).
    asked: Option<Asked>,
    /// Lines received, shown or not.
    received: u64,
    /// The mark when the answer began.
    since: Option<HistoryMark>,
    /// Lines shown.
    shown: u64,
    /// The first line shown.
    first: Option<u64>,
    /// The last line shown, as (epoch, seq): an answer's lines only go up.
    last: Option<(u64, u64)>,
}

/// The history's side of the client. See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Shown {
    mark: Option<HistoryMark>,
    /// The join of this session may still be answered.
    join_answer_due: bool,
    /// The last thing that arrived was a roster page that lists fewer than the roster's
    /// total: more pages, or the notice saying how many more are online, come next.
    roster_short: bool,
    /// The history requests sent in this session and not answered yet, oldest first.
    asked: VecDeque<Asked>,
    /// The next page sent asks again for one that was declined.
    ask_again: bool,
    /// Lines asked for with `/history` while another page was on its way: asked next.
    deferred: u16,
    /// The probe was sent in this session.
    probed: bool,
    answer: Option<Answer>,
}

impl Shown {
    pub(super) fn mark(&self) -> Option<HistoryMark> {
        self.mark
    }

    /// `(history_epoch, history_seen)` for a join: both 0 while the epoch is unknown.
    pub(super) fn join_fields(&self) -> (u64, u64) {
        match self.mark {
            Some(mark) if mark.epoch != 0 => (mark.epoch, mark.seq),
            _ => (0, 0),
        }
    }

    /// A session began: its join's answer is due, and nothing asked before is (requests
    /// sent again count again when they go).
    pub(super) fn session_started(&mut self) {
        self.join_answer_due = true;
        self.roster_short = false;
        self.asked.clear();
        self.ask_again = false;
        self.probed = false;
        self.answer = None;
    }

    /// A history request for `count` lines went out in this session.
    pub(super) fn sent(&mut self, count: u16) {
        let again = count > 0 && std::mem::take(&mut self.ask_again);
        self.asked.push_back(Asked { count, again });
    }

    /// Whether a page asked with `/history` is on its way (sent and not answered).
    pub(super) fn page_on_its_way(&self) -> bool {
        self.asked.iter().any(|asked| asked.count > 0)
    }

    /// The request for a page of `count` (at least 1) lines before the oldest shown.
    pub(super) fn page_request(&self, count: u16) -> Request {
        Request::History {
            epoch: self.mark.map_or(0, |mark| mark.epoch),
            before: self.mark.and_then(|mark| mark.oldest).unwrap_or(u64::MAX),
            count: count.max(1),
        }
    }

    /// `/history` while a page is on its way: `count` more lines are asked for once it is
    /// answered (and shown), from where it ends.
    pub(super) fn defer(&mut self, count: u16, most: u16) {
        self.deferred = self.deferred.saturating_add(count).min(most);
    }

    /// The lines to ask for now that no page is on its way, if any were deferred.
    pub(super) fn take_deferred(&mut self) -> Option<u16> {
        if self.page_on_its_way() || self.deferred == 0 {
            return None;
        }
        Some(std::mem::take(&mut self.deferred))
    }

    /// The request for the epoch of the lines shown, if it is to be sent now (see the
    /// module documentation).
    fn probe(&mut self) -> Option<Request> {
        let unknown = self.mark.is_some_and(|mark| mark.epoch == 0);
        if !unknown || std::mem::replace(&mut self.probed, true) {
            return None;
        }
        Some(Request::History {
            epoch: 0,
            before: u64::MAX,
            count: 0,
        })
    }

    /// Something arrived that is neither the roster nor history: the join's answer, which
    /// comes before anything else, is not coming.
    pub(super) fn other(&mut self) {
        self.join_answer_due = false;
        self.roster_short = false;
    }

    /// A page of a roster arrived; `short`: it ends before the roster's last entry.
    pub(super) fn roster_page(&mut self, short: bool) {
        self.roster_short = short;
    }

    /// A notice arrived: the one that ends a roster cut short belongs to the roster, any
    /// other is [`Shown::other`].
    pub(super) fn notice(&mut self) {
        if !std::mem::take(&mut self.roster_short) {
            self.other();
        }
    }

    /// Live public line `seq` was shown. Returns the probe to send, if it is time.
    pub(super) fn live_line(&mut self, seq: u64) -> Option<Request> {
        self.other();
        match &mut self.mark {
            Some(mark) => mark.seq = mark.seq.max(seq),
            None => {
                self.mark = Some(HistoryMark {
                    epoch: 0,
                    seq,
                    oldest: None,
                })
            }
        }
        self.probe()
    }

    /// An answer that begins now: which one it is, by its place in the stream.
    fn begin_answer(&mut self) -> Answer {
        let asked = if std::mem::take(&mut self.join_answer_due) {
            None
        } else {
            self.asked.pop_front()
        };
        let kind = match asked {
            None => Kind::CatchUp,
            Some(Asked { count: 0, .. }) => Kind::Probe,
            Some(_) => Kind::Page,
        };
        Answer {
            kind,
            asked,
            received: 0,
            since: self.mark,
            shown: 0,
            first: None,
            last: None,
        }
    }

    /// The answer arriving, taken out (begun now by its first line, or by its end when it
    /// has none).
    fn take_answer(&mut self) -> Answer {
        self.roster_short = false;
        match self.answer.take() {
            Some(answer) => answer,
            None => self.begin_answer(),
        }
    }

    /// History line `seq` of `epoch` arrived: whether to show it (it is new to this
    /// client). The mark follows what is shown.
    pub(super) fn line(&mut self, epoch: u64, seq: u64) -> bool {
        let mut answer = self.take_answer();
        let show = self.show(&mut answer, epoch, seq);
        self.answer = Some(answer);
        show
    }

    /// Whether line `seq` of `epoch` is new in `answer`; if so the answer and the mark
    /// count it.
    fn show(&mut self, answer: &mut Answer, epoch: u64, seq: u64) -> bool {
        answer.received += 1;
        if answer.kind == Kind::Probe {
            return false;
        }
        if answer.last.is_some_and(|(e, s)| e == epoch && seq <= s) {
            return false;
        }
        if let Some(since) = answer.since.filter(|since| since.epoch == epoch) {
            let repeat = match answer.kind {
                Kind::CatchUp => seq <= since.seq,
                Kind::Page | Kind::Probe => since.oldest.is_some_and(|oldest| seq >= oldest),
            };
            if repeat {
                return false;
            }
        }
        let first_of_answer = answer.first.is_none();
        answer.first.get_or_insert(seq);
        answer.last = Some((epoch, seq));
        answer.shown += 1;
        let (kind, since) = (answer.kind, answer.since);
        self.mark = Some(match self.mark {
            Some(mark) if mark.epoch == epoch => {
                let oldest = match kind {
                    // A catch-up that follows on from what was shown keeps the view; one
                    // with a gap before it starts it again.
                    Kind::CatchUp if first_of_answer => {
                        let follows_on = since
                            .is_some_and(|s| s.epoch == epoch && s.seq.checked_add(1) == Some(seq));
                        match mark.oldest {
                            Some(oldest) if follows_on => Some(oldest),
                            _ => Some(seq),
                        }
                    }
                    Kind::CatchUp => mark.oldest.or(Some(seq)),
                    Kind::Page | Kind::Probe => Some(mark.oldest.map_or(seq, |o| o.min(seq))),
                };
                HistoryMark {
                    epoch,
                    seq: mark.seq.max(seq),
                    oldest,
                }
            }
            // A page tells the epoch of the live lines shown so far.
            Some(mark) if mark.epoch == 0 && kind != Kind::CatchUp => HistoryMark {
                epoch,
                seq: mark.seq.max(seq),
                oldest: Some(seq),
            },
            // The first history shown, or another one than the one we knew.
            _ => HistoryMark {
                epoch,
                seq,
                oldest: Some(seq),
            },
        });
        true
    }

    /// The answer ended: the history is `epoch`, its newest line `newest`, and it holds
    /// `earlier` lines before those sent. Pushes what to tell the user.
    pub(super) fn end(
        &mut self,
        epoch: u64,
        newest: u64,
        earlier: u64,
        events: &mut VecDeque<ClientEvent>,
    ) {
        let Answer {
            kind,
            asked,
            received,
            since,
            shown,
            first,
            ..
        } = self.take_answer();
        let known = since.filter(|since| since.epoch != 0);
        let restarted = known.is_some_and(|since| since.epoch != epoch);
        let rewound = known
            .filter(|since| since.epoch == epoch && newest < since.seq)
            .map(|since| since.seq - newest);
        self.mark = Some(match self.mark {
            Some(mark) if mark.epoch == epoch => HistoryMark {
                epoch,
                // The server no longer has lines we saw: the numbers after `newest` will
                // be other lines.
                seq: if rewound.is_some() {
                    newest
                } else {
                    mark.seq.max(newest)
                },
                oldest: mark.oldest,
            },
            Some(mark) if mark.epoch == 0 && kind != Kind::CatchUp => HistoryMark {
                epoch,
                seq: mark.seq.max(newest),
                oldest: mark.oldest,
            },
            _ => HistoryMark {
                epoch,
                seq: newest,
                oldest: None,
            },
        });
        if let Some(Asked {
            count,
            again: false,
        }) = asked
            && kind == Kind::Page
            && received == 0
            && earlier > 0
        {
            // Declined (see the module documentation): asked again, with what was typed
            // meanwhile.
            self.deferred = self.deferred.saturating_add(count);
            self.ask_again = true;
            return;
        }
        match kind {
            Kind::Probe | Kind::Page => {
                if restarted {
                    events.push_back(ClientEvent::HistoryRestarted);
                }
                if kind == Kind::Page {
                    events.push_back(ClientEvent::PageEnd { shown, earlier });
                }
            }
            Kind::CatchUp => match (known, rewound) {
                // A newcomer's replay.
                (None, _) => events.push_back(ClientEvent::HistoryEnd { shown, earlier }),
                (Some(_), Some(count)) => events.push_back(ClientEvent::HistoryRewound { count }),
                (Some(since), None) => {
                    // Counted from the last line seen, or from the start of a new history.
                    let seen = if restarted { 0 } else { since.seq };
                    let gone = first
                        .unwrap_or(newest.saturating_add(1))
                        .saturating_sub(seen)
                        .saturating_sub(1);
                    let missed = shown.saturating_add(gone);
                    if missed > 0 {
                        events.push_back(ClientEvent::MissedWhileAway { count: missed });
                    }
                    if restarted {
                        events.push_back(ClientEvent::HistoryRestarted);
                    }
                    if gone > 0 {
                        events.push_back(ClientEvent::HistoryGone {
                            count: gone,
                            held: earlier.min(gone),
                        });
                    }
                }
            },
        }
    }
}
