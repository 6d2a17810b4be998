//! The client's side of the history (its core alone, fed the server's frames by hand, fake
//! clock): the mark it keeps from live lines and answers and the join that carries it; the
//! catch-up after a rejoin showing each missed line once, then saying how many were
//! missed, gone, or lost to a restart; duplicate answers not shown again; `/history` pages
//! asked from the oldest line shown, never moving the mark back, one at a time, outside
//! the flood limit; the probe that learns the epoch of a room that was empty at the join.
//!
//! Last, the same with the real server core on the simulated network. The server's side
//! is tested in `replay.rs`, the real programs in `tests/programs/history_e2e.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use icq::client::{Client, ClientEvent, HistoryMark};
use icq::proto::chat::ChatEvent;
use icq::server::{ServerConfig, ServerEvent};
use icq::text;
use icq::wire::{
    Acks, Delivery, Envelope, FloodTerms, Frame, HistoryEntry, LineKind, Request, RosterEntry,
    ToClient, ToServer,
};

use crate::sim::addr;
use crate::sim::room::Sim;

const EPOCH: u64 = 0x00E0_0C00_0000_0001;
const OTHER_EPOCH: u64 = 0x00E0_0C00_0000_0002;
const LINE_TIME_MS: i64 = 1_764_000_000_000;

/// One client and a server played by the test: every frame the server sends is made here.
struct Harness {
    client: Client,
    server: SocketAddr,
    now: Instant,
    token: u64,
    /// The sequence number of the next frame in the server's stream.
    next_seq: u32,
    /// What the client sent, decoded, not looked at yet.
    sent: Vec<Frame>,
    /// The nonce of the client's latest join.
    nonce: u64,
    /// How many people the roster at join says are online; with more than one, the roster
    /// lists only alice and is followed by its notice, as in a large room.
    room: u16,
}

impl Harness {
    /// A client that joined (`flood`: the terms the welcome announces), roster received.
    fn joined_with(flood: FloodTerms) -> Harness {
        let now = Instant::now();
        let server = addr([127, 0, 0, 1], 4000);
        let client = Client::new("alice", vec![server], now);
        let mut harness = Harness {
            client,
            server,
            now,
            token: 0,
            next_seq: 1,
            sent: Vec::new(),
            nonce: 0,
            room: 1,
        };
        harness.welcome(flood);
        harness
    }

    fn joined() -> Harness {
        Harness::joined_with(FloodTerms::NONE)
    }

    fn collect(&mut self) {
        while let Some((to, bytes)) = self.client.poll_transmit() {
            assert_eq!(to, self.server);
            let frame = Frame::decode(&bytes).expect("the client sends well-formed frames");
            if let Frame::ToServer(ToServer::Join { nonce, .. }) = frame {
                self.nonce = nonce;
            }
            self.sent.push(frame);
        }
    }

    /// The joins the client sent since the last look, as `(history_epoch, history_seen)`.
    fn joins(&mut self) -> Vec<(u64, u64)> {
        self.collect();
        let joins = self
            .sent
            .iter()
            .filter_map(|frame| match frame {
                Frame::ToServer(ToServer::Join {
                    history_epoch,
                    history_seen,
                    ..
                }) => Some((*history_epoch, *history_seen)),
                _ => None,
            })
            .collect();
        self.sent
            .retain(|frame| !matches!(frame, Frame::ToServer(ToServer::Join { .. })));
        joins
    }

    /// The requests the client sent since the last look.
    fn requests(&mut self) -> Vec<Request> {
        self.collect();
        std::mem::take(&mut self.sent)
            .into_iter()
            .filter_map(|frame| match frame {
                Frame::ToServer(ToServer::Sequenced(_, request)) => Some(request),
                _ => None,
            })
            .collect()
    }

    /// Welcomes the client's latest join (a new session, numbered from 1), then sends the
    /// roster, as the server does.
    fn welcome(&mut self, flood: FloodTerms) {
        self.collect();
        let nonce = self.nonce;
        self.token += 1;
        self.next_seq = 1;
        let welcome = Frame::ToClient(ToClient::Welcome {
            nonce,
            token: self.token,
            heartbeat_ms: 10_000,
            flood,
            name: "alice".into(),
        });
        self.client
            .handle_datagram(self.now, self.server, &welcome.to_bytes());
        self.deliver(Delivery::Roster {
            time_ms: LINE_TIME_MS,
            total: self.room,
            offset: 0,
            entries: vec![RosterEntry {
                guest: false,
                name: "alice".into(),
                away: String::new(),
            }],
        });
        if self.room > 1 {
            self.deliver(Delivery::Notice {
                time_ms: LINE_TIME_MS,
                text: text::roster_cut_short(1, self.room.into()),
            });
        }
    }

    /// The next frame of the server's stream; returns its bytes (to deliver them again).
    fn deliver(&mut self, delivery: Delivery) -> Vec<u8> {
        let envelope = Envelope {
            token: self.token,
            seq: self.next_seq,
            acks: Acks::default(),
        };
        self.next_seq += 1;
        let bytes = Frame::ToClient(ToClient::Sequenced(envelope, delivery)).to_bytes();
        self.client.handle_datagram(self.now, self.server, &bytes);
        bytes
    }

    fn live(&mut self, seq: u64, text: &str) {
        self.deliver(Delivery::Message {
            seq,
            time_ms: LINE_TIME_MS + seq as i64,
            from: "bob".into(),
            text: text.into(),
        });
    }

    fn history_line(&mut self, epoch: u64, seq: u64) -> Vec<u8> {
        self.deliver(Delivery::HistoryLine {
            line: HistoryEntry {
                epoch,
                seq,
                time_ms: LINE_TIME_MS + seq as i64,
                from: "bob".into(),
                kind: LineKind::Chat,
                text: format!("line {seq}"),
            },
        })
    }

    /// An answer from the history: lines `seqs` of `epoch`, then its end.
    fn answer(
        &mut self,
        epoch: u64,
        seqs: impl IntoIterator<Item = u64>,
        newest: u64,
        earlier: u64,
    ) {
        for seq in seqs {
            self.history_line(epoch, seq);
        }
        self.deliver(Delivery::HistoryEnd {
            epoch,
            newest,
            earlier,
        });
    }

    /// The server forgets the session (a timeout, a restart): the client joins again; the
    /// join it sends is returned, and welcomed.
    fn lose_session(&mut self) -> (u64, u64) {
        self.joins();
        self.client.handle_datagram(
            self.now,
            self.server,
            &Frame::ToClient(ToClient::NotJoined { token: self.token }).to_bytes(),
        );
        let deadline = self.now + Duration::from_secs(60);
        let join = loop {
            if let Some(join) = self.joins().last().copied() {
                break join;
            }
            assert!(self.now < deadline, "no join again within 60 s");
            self.now = self
                .client
                .poll_timeout()
                .expect("a deadline")
                .max(self.now);
            self.client.handle_timeout(self.now);
        };
        self.welcome(FloodTerms::NONE);
        join
    }

    fn events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }

    /// Takes what the client showed since the last look and checks it: the history lines
    /// `shown` exactly, as `(epoch, seq)`, and the history's `news`. Returns it all, for
    /// what else a test looks at.
    #[track_caller]
    fn assert_shown(&mut self, shown: Vec<(u64, u64)>, news: &[ClientEvent]) -> Vec<ClientEvent> {
        let events = self.events();
        assert_eq!(lines(&events), shown);
        assert_eq!(history_news(&events), news);
        events
    }

    fn mark(&self) -> HistoryMark {
        self.client.history_mark().expect("a mark")
    }

    fn request_history(&mut self, count: u16) {
        let now = self.now;
        self.client.request_history(now, count);
    }
}

/// The history lines among `events`, as `(epoch, seq)`.
fn lines(events: &[ClientEvent]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Chat(ChatEvent::HistoryLine { epoch, seq, .. }) => Some((*epoch, *seq)),
            _ => None,
        })
        .collect()
}

/// What `events` say about history besides its lines, in order.
fn history_news(events: &[ClientEvent]) -> Vec<ClientEvent> {
    events
        .iter()
        .filter(|event| {
            matches!(
                event,
                ClientEvent::HistoryEnd { .. }
                    | ClientEvent::PageEnd { .. }
                    | ClientEvent::MissedWhileAway { .. }
                    | ClientEvent::HistoryRestarted
                    | ClientEvent::HistoryGone { .. }
                    | ClientEvent::HistoryRewound { .. }
            )
        })
        .cloned()
        .collect()
}

/// The client's news that a page of `/history` ended: `shown` lines, `earlier` still held.
fn page_end(shown: u64, earlier: u64) -> ClientEvent {
    ClientEvent::PageEnd { shown, earlier }
}

/// The client's news that a catch-up ended: `shown` lines, `earlier` still held.
fn history_end(shown: u64, earlier: u64) -> ClientEvent {
    ClientEvent::HistoryEnd { shown, earlier }
}

/// Where the client's view of `epoch` stands: `seq` the newest line seen, `oldest` the
/// oldest shown.
fn history_mark(epoch: u64, seq: u64, oldest: Option<u64>) -> HistoryMark {
    HistoryMark { epoch, seq, oldest }
}

/// The request for up to `count` history lines of `epoch` before `before`.
fn history_request(epoch: u64, before: u64, count: u16) -> Request {
    Request::History {
        epoch,
        before,
        count,
    }
}

fn of(epoch: u64, seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, u64)> {
    seqs.map(|seq| (epoch, seq)).collect()
}

/// A client that was replayed lines 1..=3, then saw 4 and 5 live.
fn client_that_saw_5_lines() -> Harness {
    let mut h = Harness::joined();
    h.answer(EPOCH, 1..=3, 3, 0);
    h.live(4, "four");
    h.live(5, "five");
    h.assert_shown(of(EPOCH, 1..=3), &[history_end(3, 0)]);
    assert_eq!(h.mark(), history_mark(EPOCH, 5, Some(1)));
    h
}

// The mark and the join that carries it --------------------------------------------------

#[test]
fn a_join_carries_nothing_before_a_line_was_shown_then_the_last_line_shown() {
    let mut h = Harness::joined();
    assert_eq!(h.client.history_mark(), None);
    assert_eq!(h.lose_session(), (0, 0));
    let mut h = client_that_saw_5_lines();
    // Live lines move the mark (they carry their number), and the next join says so.
    assert_eq!(h.lose_session(), (EPOCH, 5));
}

#[test]
fn only_a_higher_number_moves_the_mark() {
    let mut h = client_that_saw_5_lines();
    // A broken or replayed lower number does not take the mark back.
    h.live(2, "an old number");
    assert_eq!(h.mark().seq, 5);
    h.live(9, "nine");
    assert_eq!(h.mark().seq, 9);
}

// The catch-up after a rejoin -------------------------------------------------------------

#[test]
fn a_rejoin_shows_each_missed_line_once_in_order_then_how_many_were_missed() {
    let mut h = client_that_saw_5_lines();
    assert_eq!(h.lose_session(), (EPOCH, 5));
    h.answer(EPOCH, 6..=13, 13, 5);
    h.live(14, "live again");
    let events = h.assert_shown(
        of(EPOCH, 6..=13),
        &[ClientEvent::MissedWhileAway { count: 8 }],
    );
    let missed = events
        .iter()
        .position(|e| matches!(e, ClientEvent::MissedWhileAway { .. }))
        .unwrap();
    let live = events
        .iter()
        .position(|e| matches!(e, ClientEvent::Chat(ChatEvent::Message { .. })))
        .unwrap();
    assert!(missed < live, "{events:?}");
    // The view follows on from what was shown: /history still pages from line 1.
    assert_eq!(h.mark(), history_mark(EPOCH, 14, Some(1)));
    assert_eq!(h.lose_session(), (EPOCH, 14));
}

#[test]
fn a_rejoin_that_missed_nothing_says_nothing() {
    let mut h = client_that_saw_5_lines();
    h.lose_session();
    h.answer(EPOCH, [], 5, 5);
    let events = h.events();
    assert!(lines(&events).is_empty(), "{events:?}");
    assert!(history_news(&events).is_empty(), "{events:?}");
}

#[test]
fn lines_already_shown_are_never_shown_again() {
    let mut h = client_that_saw_5_lines();
    h.lose_session();
    // An answer that starts before the mark (a server replaying as to a newcomer): only
    // what is new is shown, and counted.
    h.answer(EPOCH, 1..=8, 8, 0);
    h.assert_shown(
        of(EPOCH, 6..=8),
        &[ClientEvent::MissedWhileAway { count: 3 }],
    );

    // The same answer again (a duplicate sent after an acknowledgement was lost): nothing.
    h.answer(EPOCH, 6..=8, 8, 0);
    let events = h.events();
    assert!(lines(&events).is_empty(), "{events:?}");
    assert!(history_news(&events).is_empty(), "{events:?}");

    // And the very same frame repeated by the stream is taken once.
    h.lose_session();
    let bytes = h.history_line(EPOCH, 9);
    h.client.handle_datagram(h.now, h.server, &bytes);
    h.deliver(Delivery::HistoryEnd {
        epoch: EPOCH,
        newest: 9,
        earlier: 0,
    });
    h.assert_shown(
        of(EPOCH, 9..=9),
        &[ClientEvent::MissedWhileAway { count: 1 }],
    );
}

#[test]
fn a_new_epoch_means_the_server_restarted_and_its_lines_are_all_new() {
    let mut h = client_that_saw_5_lines();
    h.lose_session();
    // Lines 1 and 2 of another history: not the lines 1 and 2 we saw.
    h.answer(OTHER_EPOCH, 1..=2, 2, 0);
    h.assert_shown(
        of(OTHER_EPOCH, 1..=2),
        &[
            ClientEvent::MissedWhileAway { count: 2 },
            ClientEvent::HistoryRestarted,
        ],
    );
    assert_eq!(h.mark(), history_mark(OTHER_EPOCH, 2, Some(1)));
    assert_eq!(h.lose_session(), (OTHER_EPOCH, 2));

    // Restarted with nothing said since: only the restart is told.
    let mut h = client_that_saw_5_lines();
    h.lose_session();
    h.answer(OTHER_EPOCH, [], 0, 0);
    assert_eq!(history_news(&h.events()), [ClientEvent::HistoryRestarted]);
    assert_eq!(h.lose_session(), (OTHER_EPOCH, 0));
}

#[test]
fn lines_the_catch_up_cannot_show_are_counted_and_those_held_pointed_at() {
    // History off (or trimmed): no line comes, 8 were said.
    let mut h = client_that_saw_5_lines();
    h.lose_session();
    h.answer(EPOCH, [], 13, 0);
    assert_eq!(
        history_news(&h.events()),
        [
            ClientEvent::MissedWhileAway { count: 8 },
            ClientEvent::HistoryGone { count: 8, held: 0 }
        ]
    );
    assert_eq!(h.mark().seq, 13);

    // More than one catch-up carries: lines 10..=13 come, 6..=9 are still held.
    let mut h = client_that_saw_5_lines();
    h.lose_session();
    h.answer(EPOCH, 10..=13, 13, 7);
    h.assert_shown(
        of(EPOCH, 10..=13),
        &[
            ClientEvent::MissedWhileAway { count: 8 },
            ClientEvent::HistoryGone { count: 4, held: 4 },
        ],
    );
    // The view starts again after the gap: /history asks for what is just before it.
    assert_eq!(h.mark().oldest, Some(10));
    h.request_history(4);
    assert_eq!(h.requests(), [history_request(EPOCH, 10, 4)]);
    h.answer(EPOCH, 6..=9, 13, 3);
    h.assert_shown(of(EPOCH, 6..=9), &[page_end(4, 3)]);
}

#[test]
fn a_history_that_went_back_is_told_and_followed() {
    // The server's file was restored from an older copy: its newest line is 3, we saw 5.
    let mut h = client_that_saw_5_lines();
    h.lose_session();
    h.answer(EPOCH, 1..=3, 3, 0);
    let events = h.events();
    assert!(lines(&events).is_empty(), "{events:?}");
    assert_eq!(
        history_news(&events),
        [ClientEvent::HistoryRewound { count: 2 }]
    );
    // Its next line 4 is another line than the 4 we saw, and is shown; the mark follows.
    assert_eq!(h.mark().seq, 3);
    h.live(4, "a new four");
    assert_eq!(h.lose_session(), (EPOCH, 4));
}

// The epoch of a room that was empty ------------------------------------------------------

#[test]
fn live_lines_in_a_room_empty_at_the_join_ask_once_for_the_epoch_silently() {
    let mut h = Harness::joined();
    h.live(1, "one");
    h.live(2, "two");
    assert_eq!(
        h.requests(),
        [history_request(0, u64::MAX, 0)],
        "one probe for the epoch, not one a line"
    );
    assert_eq!(
        h.lose_session(),
        (0, 0),
        "no epoch known yet: nothing to resume"
    );
    // Joining as a newcomer, it is replayed what it saw live (it cannot tell they are the
    // same lines), then the probe, sent again in the new session, is answered unseen.
    let requests = h.requests();
    assert!(
        requests.contains(&history_request(0, u64::MAX, 0)),
        "{requests:?}"
    );
    h.answer(EPOCH, 1..=2, 2, 0);
    h.answer(EPOCH, [], 2, 2);
    h.assert_shown(of(EPOCH, 1..=2), &[history_end(2, 0)]);
    assert_eq!(h.mark(), history_mark(EPOCH, 2, Some(1)));
    assert_eq!(h.lose_session(), (EPOCH, 2));
}

#[test]
fn the_probe_answered_in_its_session_makes_the_next_rejoin_resume() {
    let mut h = Harness::joined();
    h.live(1, "one");
    assert_eq!(h.requests().len(), 1);
    h.answer(EPOCH, [], 1, 1);
    h.live(2, "two");
    assert!(h.requests().is_empty(), "no second probe");
    assert!(history_news(&h.events()).is_empty());
    assert_eq!(h.lose_session(), (EPOCH, 2));
    h.answer(EPOCH, 3..=4, 4, 3);
    h.assert_shown(
        of(EPOCH, 3..=4),
        &[ClientEvent::MissedWhileAway { count: 2 }],
    );
}

// /history --------------------------------------------------------------------------------

#[test]
fn a_page_is_asked_before_the_oldest_line_shown_and_never_moves_the_mark_back() {
    let mut h = Harness::joined();
    // Replayed 11..=30 on joining, then 31 live.
    h.answer(EPOCH, 11..=30, 30, 10);
    h.live(31, "live");
    h.events();
    h.request_history(50);
    assert_eq!(h.requests(), [history_request(EPOCH, 11, 50)]);
    h.answer(EPOCH, 1..=10, 31, 0);
    h.assert_shown(of(EPOCH, 1..=10), &[page_end(10, 0)]);
    assert_eq!(h.mark(), history_mark(EPOCH, 31, Some(1)));
    assert_eq!(h.lose_session(), (EPOCH, 31));
}

#[test]
fn the_first_page_is_the_newest_lines_even_those_seen_live() {
    let mut h = Harness::joined();
    for seq in 1..=30 {
        h.live(seq, "live");
    }
    h.requests();
    h.answer(EPOCH, [], 30, 30); // the probe's answer
    h.request_history(30);
    assert_eq!(h.requests(), [history_request(EPOCH, u64::MAX, 30)]);
    h.answer(EPOCH, 1..=30, 30, 0);
    h.assert_shown(of(EPOCH, 1..=30), &[page_end(30, 0)]);
}

#[test]
fn a_page_typed_while_one_is_on_its_way_is_asked_from_where_that_one_ends() {
    let mut h = Harness::joined();
    h.answer(EPOCH, 91..=100, 100, 90);
    h.events();
    h.request_history(20);
    h.request_history(20);
    h.request_history(5);
    assert_eq!(
        h.requests(),
        [history_request(EPOCH, 91, 20)],
        "one page at a time"
    );
    h.answer(EPOCH, 71..=90, 100, 70);
    assert_eq!(
        h.requests(),
        [history_request(EPOCH, 71, 25)],
        "the rest together, from where the first page ends"
    );
    // A repeated page shows nothing twice.
    h.answer(EPOCH, 60..=75, 100, 59);
    let events = h.events();
    assert_eq!(
        lines(&events),
        [of(EPOCH, 71..=90), of(EPOCH, 60..=70)].concat()
    );
}

#[test]
fn the_notice_after_a_roster_cut_short_comes_before_the_joins_answer() {
    // Joined into a large room: the roster lists alice alone of 600, then says so. A page
    // typed before the replay arrives does not take the replay for its answer.
    let mut h = Harness::joined();
    h.room = 600;
    h.lose_session();
    let roster_and_notice = h.events();
    assert!(
        matches!(
            roster_and_notice.last(),
            Some(ClientEvent::Notice { text, .. }) if *text == text::roster_cut_short(1, 600)
        ),
        "{roster_and_notice:?}"
    );
    h.request_history(20);
    assert_eq!(h.requests(), [history_request(0, u64::MAX, 20)]);
    h.answer(EPOCH, 11..=30, 30, 10);
    h.assert_shown(of(EPOCH, 11..=30), &[history_end(20, 10)]);
    // The page's answer comes next, and pages back from the replay.
    h.answer(EPOCH, 1..=10, 30, 0);
    h.assert_shown(of(EPOCH, 1..=10), &[page_end(10, 0)]);
    // The same after a rejoin: the catch-up is the join's answer.
    h.live(31, "live");
    assert_eq!(h.lose_session(), (EPOCH, 31));
    assert!(matches!(
        h.events().last(),
        Some(ClientEvent::Notice { .. })
    ));
    // The page of the first session, never acknowledged here, is asked again in this one.
    assert_eq!(h.requests(), [history_request(0, u64::MAX, 20)]);
    h.answer(EPOCH, 32..=33, 33, 31);
    h.assert_shown(
        of(EPOCH, 32..=33),
        &[ClientEvent::MissedWhileAway { count: 2 }],
    );
}

#[test]
fn a_page_the_server_declined_is_asked_again_once() {
    let mut h = Harness::joined();
    h.answer(EPOCH, 91..=100, 100, 90);
    h.events();
    h.request_history(20);
    let page = history_request(EPOCH, 91, 20);
    assert_eq!(h.requests(), std::slice::from_ref(&page));
    // Sent before the replay was acknowledged, it gets the end alone: not shown, asked again.
    h.answer(EPOCH, [], 100, 90);
    assert!(history_news(&h.events()).is_empty());
    assert_eq!(h.requests(), [page]);
    // Declined again: the user is told what there is, and nothing is asked any more.
    h.answer(EPOCH, [], 100, 90);
    assert_eq!(history_news(&h.events()), [page_end(0, 90)]);
    assert!(h.requests().is_empty());
    // A page of lines all shown already is not declined: it is not asked again.
    h.request_history(5);
    h.requests();
    h.answer(EPOCH, 95..=99, 100, 90);
    assert_eq!(history_news(&h.events()), [page_end(0, 90)]);
    assert!(h.requests().is_empty());
}

#[test]
fn history_requests_skip_the_flood_limit_and_its_backlog() {
    // One line a second, bursts of 2: the third chat line waits, /history does not.
    let flood = FloodTerms {
        rate_milli: 1_000,
        burst: 2,
    };
    let mut h = Harness::joined_with(flood);
    h.answer(EPOCH, 5..=5, 5, 4);
    let now = h.now;
    for text in ["one", "two", "three"] {
        h.client.send_text(now, text);
    }
    assert_eq!(h.requests().len(), 2);
    assert_eq!(h.client.queued(), 1);
    h.request_history(10);
    assert_eq!(h.requests(), [history_request(EPOCH, 5, 10)]);
    assert_eq!(h.client.queued(), 1, "the backlog still waits its turn");
}

#[test]
fn a_page_from_a_history_we_did_not_know_says_so() {
    let mut h = Harness::joined();
    h.answer(EPOCH, 3..=4, 4, 2);
    h.events();
    h.request_history(10);
    h.requests();
    // The server's history is another one now (it answers from its newest line).
    h.answer(OTHER_EPOCH, 1..=2, 2, 0);
    h.assert_shown(
        of(OTHER_EPOCH, 1..=2),
        &[ClientEvent::HistoryRestarted, page_end(2, 0)],
    );
    assert_eq!(h.mark().epoch, OTHER_EPOCH);
}

// With the server core ----------------------------------------------------------------------

/// The texts of the history lines among `events`.
fn history_texts(events: &[ClientEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Chat(ChatEvent::HistoryLine { text, .. }) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// The chat messages among `events`, by text.
fn live_texts(events: &[ClientEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Chat(ChatEvent::Message { text, .. }) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// When bob says his 8 lines while alice's process is stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Said {
    /// Before the server times her out: they wait in her stream, repeated.
    BeforeTheTimeout,
    /// After: they are never sent to her.
    AfterTheTimeout,
}

/// Alice and bob in a room with a 3 s timeout; bob says 3 lines; then alice's process is
/// stopped for `stopped` (in the simulation what reaches a stopped process is lost, unlike
/// a socket's buffer) and bob says 8 more lines `when`; then it runs again, and bob says
/// one more. Returns what alice reported meanwhile.
fn alice_stopped_while_8_lines_are_said(stopped: Duration, when: Said) -> Vec<ClientEvent> {
    let mut sim = Sim::new(ServerConfig {
        timeout: Duration::from_secs(3),
        flood_limit: None,
        ..ServerConfig::default()
    });
    // Alice joins an empty room: no replay tells her the epoch, the probe does.
    let alice = sim.join("alice");
    let bob = sim.join("bob");
    for i in 1..=3 {
        sim.send_text(bob, &format!("line {i}"));
    }
    assert_eq!(
        sim.client(alice)
            .history_mark()
            .map(|mark| (mark.epoch, mark.seq)),
        Some((sim.server.history().epoch(), 3))
    );
    sim.clear_events();
    sim.frozen.insert(alice);
    let say = |sim: &mut Sim| {
        for i in 4..=11 {
            sim.send_text(bob, &format!("line {i}"));
        }
    };
    if when == Said::BeforeTheTimeout {
        say(&mut sim);
    }
    sim.run_for(Duration::from_secs(4));
    assert!(
        sim.take_server_events()
            .iter()
            .any(|e| matches!(e, ServerEvent::TimedOut { name, .. } if name == "alice")),
        "alice was timed out"
    );
    if when == Said::AfterTheTimeout {
        say(&mut sim);
    }
    sim.run_for(stopped.saturating_sub(Duration::from_secs(4)));
    sim.frozen.remove(&alice);
    sim.run_for(Duration::from_secs(10));
    sim.send_text(bob, "live again");
    sim.take_events(alice)
}

/// `line 4` to `line 11`.
fn the_8_lines() -> Vec<String> {
    (4..=11).map(|i| format!("line {i}")).collect()
}

/// The 8 lines came in the rejoin's catch-up, each once and in order, counted as missed,
/// and only the line said after it came live.
fn assert_8_lines_came_in_the_catch_up_once(events: &[ClientEvent]) {
    assert_eq!(history_texts(events), the_8_lines(), "each once, in order");
    assert_eq!(
        history_news(events),
        [ClientEvent::MissedWhileAway { count: 8 }]
    );
    assert_eq!(live_texts(events), ["live again"], "{events:?}");
}

#[test]
fn lines_said_after_a_stopped_client_timed_out_come_in_its_catch_up_once() {
    let events =
        alice_stopped_while_8_lines_are_said(Duration::from_secs(5), Said::AfterTheTimeout);
    assert_8_lines_came_in_the_catch_up_once(&events);
}

#[test]
fn lines_said_before_the_timeout_and_never_delivered_come_in_the_catch_up_once() {
    // Stopped longer than the server repeats its farewell (GIVE_UP_AFTER), and all of it
    // lost: the lines that waited in the ended stream come with the rejoin's catch-up.
    let events =
        alice_stopped_while_8_lines_are_said(Duration::from_secs(25), Said::BeforeTheTimeout);
    assert_8_lines_came_in_the_catch_up_once(&events);
}

#[test]
fn lines_said_before_the_timeout_and_delivered_by_the_farewell_are_not_shown_again() {
    // Back while the farewell is still repeated: the lines arrive in it, live, before the
    // session's end; the rejoin that follows catches up on nothing.
    let events =
        alice_stopped_while_8_lines_are_said(Duration::from_secs(5), Said::BeforeTheTimeout);
    let mut want = the_8_lines();
    want.push("live again".into());
    assert_eq!(live_texts(&events), want, "each once, in order");
    assert!(history_texts(&events).is_empty(), "{events:?}");
    assert!(history_news(&events).is_empty(), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Rejoined { .. })),
        "{events:?}"
    );
}
