//! The client's protocol logic as a plain state machine, with no sockets, threads or clock.
//!
//! [`Client`] owns the client's side of a session: joining (retrying, trying each address
//! the server's name resolved to, giving up after a deadline), sending what the user types
//! reliably (numbered, repeated until acknowledged) and at the pace the server's flood limit
//! allows (the `pacing` queue, which also keeps what is typed while there is no session),
//! showing what arrives exactly once and in order, heartbeats, leaving politely (after what
//! is queued, for a while), noticing a silent server, surviving an outage (rejoining with
//! backoff for as long as it takes, then sending what waited), and turning frames that
//! arrive into [`ClientEvent`]s. Inputs are method calls (a datagram arrived, the user typed
//! something, time passed); outputs are queued: datagrams to send, events to show, and when
//! to call back. The `icq-client` binary moves bytes between this type, its socket and the
//! terminal; tests drive it with a fake clock.
//!
//! What of the server's history has been shown — the mark a rejoin resumes from, which
//! replayed lines are new, `/history` paging — is `shown`'s.
//!
//! It does not own parsing what the user types (`command`), how events look on screen
//! (`render`), or the byte layout of frames (`wire`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::names;
use crate::proto::address::same_endpoint;
use crate::proto::chat::ChatEvent;
use crate::proto::flood::FloodLimit;
use crate::proto::join::{JoinAttempt, JoinStep};
use crate::proto::lateness::{self, Lateness};
use crate::proto::pacing::{Backlog, LeaveWait, MAX_QUEUED_LINES, Pacer};
use crate::proto::reliable::Ready;
use crate::proto::stream::{Resend, Stream};
use crate::wire::{
    self, DecodeError, Delivery, DisconnectReason, FloodTerms, Frame, LineKind, RefuseReason,
    Request, ToClient, ToServer,
};

mod event;
mod shown;

pub use event::{ClientEvent, CloseReason};
pub use shown::HistoryMark;
use shown::Shown;

/// How long leaving waits for the server to confirm (the leave, and every message sent
/// before it, is repeated meanwhile) before the program exits anyway.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// How many of the server's frames may arrive ahead of one that is missing.
pub const INBOX_LIMIT: u32 = 1024;

/// Up to this many lines never sent are each named when the session ends; more (a paste)
/// are counted instead, in one line.
const NAMED_UNSENT_MAX: usize = 3;

/// A sequenced frame from the server, held until its turn.
#[derive(Debug)]
enum Inbound {
    Event(ClientEvent),
    /// A live public line, line `seq` of the history.
    Public {
        seq: u64,
        event: ClientEvent,
    },
    Renamed(String),
    HistoryEnd {
        epoch: u64,
        newest: u64,
        earlier: u64,
    },
    Disconnected {
        time_ms: i64,
        reason: DisconnectReason,
        text: String,
    },
}

/// A joined session's state.
#[derive(Debug)]
struct Session {
    /// The streams to and from the server: what we sent, stamped, until acknowledged;
    /// what it sends, in order.
    stream: Stream<Request, Inbound>,
    /// When the welcome arrived: the zero of the stamps on what we send (`sent_ms`).
    started: Instant,
    heartbeat_interval: Duration,
    last_heard: Instant,
    silent_reported: bool,
}

/// The heartbeat interval a server's `heartbeat_ms` asks for (in its welcome, then in every
/// `ServerAck`), but at least [`MIN_HEARTBEAT`].
fn heartbeat_interval(heartbeat_ms: u32) -> Duration {
    Duration::from_millis(u64::from(heartbeat_ms)).max(MIN_HEARTBEAT)
}

/// The shortest heartbeat interval the client keeps: a zero from a broken server would make
/// it send in a busy loop.
const MIN_HEARTBEAT: Duration = Duration::from_millis(50);

#[derive(Debug)]
enum State {
    Joining(JoinAttempt),
    Joined(Session),
    Leaving { session: Session, deadline: Instant },
    Closed,
}

/// The client's state machine. See the module documentation.
#[derive(Debug)]
pub struct Client {
    name: String,
    /// Addresses the server's name resolved to, in the order to try them. Once joined,
    /// `servers[server]` is the one address datagrams are accepted from.
    servers: Vec<SocketAddr>,
    server: usize,
    state: State,
    /// Requests not sent yet, in order: waiting for their turn under the server's flood
    /// limit, or for a session (lines typed while joining or during an outage, and those
    /// sent but not acknowledged when the session was lost, to send again).
    queue: Pacer<Request>,
    /// The token of the last session we had (0 before the first): a rejoin says it.
    previous_token: u64,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<ClientEvent>,
    /// Requests sent again for lack of an acknowledgement, over the client's life.
    retransmissions: u64,
    /// Time this program itself could not run (it was stopped): the server's silence then
    /// is not the server's.
    lateness: Lateness,
    /// What of the server's history we have shown, across sessions.
    shown: Shown,
}

impl Client {
    /// Starts joining as `name`, asking `servers` in order until one answers. The name is
    /// checked by the caller with [`names::validate`] (the server checks it again).
    ///
    /// # Panics
    /// If `servers` is empty: there would be nobody to talk to.
    pub fn new(name: &str, servers: Vec<SocketAddr>, now: Instant) -> Client {
        assert!(!servers.is_empty(), "a client needs a server address");
        let mut client = Client {
            name: name.to_owned(),
            servers,
            server: 0,
            state: State::Closed,
            queue: Pacer::new(MAX_QUEUED_LINES),
            previous_token: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            retransmissions: 0,
            lateness: Lateness::new(),
            shown: Shown::default(),
        };
        client.start_joining(now);
        client
    }

    fn start_joining(&mut self, now: Instant) {
        self.state = State::Joining(JoinAttempt::new(now, self.server));
        self.handle_timeout(now);
    }

    /// The session is lost (the server restarted, timed us out, or stopped answering):
    /// join again until it answers, however long that takes, and send again what it had
    /// not acknowledged, before anything typed since.
    fn start_rejoining(&mut self, now: Instant) {
        if let State::Joined(session) | State::Leaving { session, .. } = &mut self.state {
            let unacked = session.stream.outbox.drain_unacked();
            self.queue.requeue(
                unacked
                    .into_iter()
                    .map(|request| {
                        let charged = is_flood_limited(&request);
                        (request, charged)
                    })
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
        }
        self.state = State::Joining(JoinAttempt::persistent(now, self.server));
        self.handle_timeout(now);
    }

    /// Whether we are trying to come back after an outage (not a first join).
    fn is_rejoining(&self) -> bool {
        matches!(&self.state, State::Joining(attempt) if attempt.is_persistent())
    }

    /// Whether a leave waits in the queue.
    fn leave_queued(&self) -> bool {
        self.queue.is_finishing()
    }

    /// How many queued requests are things the user typed.
    fn typed_in_queue(&self) -> usize {
        self.queue
            .iter()
            .filter(|request| as_typed(request).is_some())
            .count()
    }

    /// The name we asked for or were registered under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether the server has accepted us (and we have not started leaving).
    pub fn is_joined(&self) -> bool {
        matches!(self.state, State::Joined(_))
    }

    /// The server address in use (the one that answered, once joined).
    pub fn server(&self) -> SocketAddr {
        self.servers[self.server]
    }

    /// How many requests were sent again for lack of an acknowledgement.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// How many requests (typed lines, `/list`, leaving) are not confirmed by the server
    /// yet: sent and not acknowledged, or queued (for their turn, or for a session).
    pub fn unacknowledged(&self) -> usize {
        let sent = match &self.state {
            State::Joined(session) | State::Leaving { session, .. } => session.stream.outbox.len(),
            _ => 0,
        };
        sent + self.queue.len()
    }

    /// How many requests are queued and not sent yet.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Processes a datagram that arrived from `from`. Datagrams from anyone but the server,
    /// malformed ones and ones without our session's token are ignored: none of them can
    /// disturb the session.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if !self.servers.iter().any(|s| same_endpoint(*s, from)) {
            return;
        }
        if wire::is_packed(datagram) {
            // Checked whole before any of it is acted on; then each frame as if it had come
            // alone, except that what is owed is acknowledged once, after all of them: an
            // acknowledgement sent in the middle would be out of date at once. Checking
            // decoded every frame: each is handled as decoded, not decoded again.
            if let Ok(frames) = wire::unpack_decoded(datagram) {
                for frame in frames {
                    self.handle_frame(now, from, frame);
                }
                self.send_ack_if_due(now);
            }
            return;
        }
        self.handle_lone_frame(now, from, datagram);
        self.send_ack_if_due(now);
    }

    /// A datagram from `from` that is one frame, not packed: decoded, or what its failure
    /// to decode tells us; the caller sends the acknowledgement it may have made due.
    fn handle_lone_frame(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let frame = match Frame::decode(datagram) {
            Ok(frame) => frame,
            Err(DecodeError::UnsupportedVersion { .. }) => {
                if let State::Joining(attempt) = &self.state
                    && let Some((refusal_nonce, reason)) = wire::any_version_refusal(datagram)
                    && refusal_nonce == attempt.nonce
                    && let Some(from_index) =
                        self.servers.iter().position(|s| same_endpoint(*s, from))
                {
                    self.server = from_index;
                    self.close(CloseReason::Refused(reason));
                }
                return;
            }
            Err(_) => {
                // Something answering a join in another protocol: worth saying so if the
                // join gives up.
                if let State::Joining(attempt) = &mut self.state {
                    attempt.on_foreign_answer();
                }
                return;
            }
        };
        self.handle_frame(now, from, frame);
    }

    /// One frame from `from`, whether it came alone or packed; the caller sends the
    /// acknowledgement it may have made due.
    fn handle_frame(&mut self, now: Instant, from: SocketAddr, frame: Frame) {
        let Some(from_index) = self.servers.iter().position(|s| same_endpoint(*s, from)) else {
            return;
        };
        match &mut self.state {
            State::Joining(attempt) => {
                // Any of the server's addresses may answer (a late answer from the one we
                // asked first is as good as any); the nonce proves it answers us.
                match frame {
                    Frame::ToClient(ToClient::Challenge {
                        nonce: answered,
                        cookie: challenge,
                    }) if answered == attempt.nonce => {
                        // Join again at once, from the address that was challenged.
                        attempt.on_challenge(now, from_index, challenge);
                        self.handle_timeout(now);
                    }
                    Frame::ToClient(ToClient::Welcome {
                        nonce: answered,
                        token,
                        heartbeat_ms,
                        flood,
                        name,
                    }) if answered == attempt.nonce => {
                        self.server = from_index;
                        self.on_welcome(now, token, heartbeat_ms, flood, name);
                    }
                    Frame::ToClient(ToClient::Refused {
                        nonce: answered,
                        reason,
                    }) if answered == attempt.nonce => {
                        if reason == RefuseReason::Busy {
                            attempt.on_busy(now, from_index);
                            return;
                        }
                        self.server = from_index;
                        self.close(CloseReason::Refused(reason));
                    }
                    _ => {}
                }
            }
            State::Joined(session) | State::Leaving { session, .. } => {
                if from_index != self.server || frame.token() != Some(session.stream.token()) {
                    return;
                }
                session.last_heard = now;
                if std::mem::take(&mut session.silent_reported) {
                    self.events.push_back(ClientEvent::ServerBack);
                }
                if let Some(acks) = frame.acks() {
                    session.stream.outbox.on_acks(now, acks);
                }
                self.on_session_frame(now, frame);
            }
            State::Closed => {}
        }
    }

    fn on_welcome(
        &mut self,
        now: Instant,
        token: u64,
        heartbeat_ms: u32,
        flood: FloodTerms,
        name: String,
    ) {
        let heartbeat_interval = heartbeat_interval(heartbeat_ms);
        self.name = name.clone();
        let rejoined = self.previous_token != 0;
        self.previous_token = token;
        self.state = State::Joined(Session {
            stream: Stream::new(token, now, INBOX_LIMIT),
            started: now,
            heartbeat_interval,
            last_heard: now,
            silent_reported: false,
        });
        // A new session: the server's bucket for us is full again.
        self.queue.restart(now, FloodLimit::from_terms(flood));
        self.shown.session_started();
        if rejoined {
            let queued = self.typed_in_queue();
            self.events
                .push_back(ClientEvent::Rejoined { name, queued });
        } else {
            self.events.push_back(ClientEvent::Joined {
                name,
                server: self.server(),
            });
        }
        self.release(now);
        // A page asked for in the last session, whose answer was lost with it.
        self.send_deferred_page(now);
    }

    /// Sends what the queue lets go at `now`: everything the flood limit allows, in order;
    /// a queued leave last of all.
    fn release(&mut self, now: Instant) {
        loop {
            let State::Joined(session) = &self.state else {
                return;
            };
            // The stamp is in whole milliseconds, and the pacer's bucket runs on the same
            // instants, so the server's gate does the very same arithmetic.
            let sent_ms = now.saturating_duration_since(session.started).as_millis() as u64;
            let at = session.started + Duration::from_millis(sent_ms);
            let Some(request) = self.queue.pop(at) else {
                return;
            };
            if request == Request::Leave {
                return self.send_leave(now);
            }
            self.send_request(now, request, sent_ms);
        }
    }

    /// Tells the server we leave, after everything sent before.
    fn send_leave(&mut self, now: Instant) {
        if let State::Joined(session) = std::mem::replace(&mut self.state, State::Closed) {
            self.state = State::Leaving {
                session,
                deadline: now + LEAVE_TIMEOUT,
            };
            self.send_request(now, Request::Leave, 0);
        }
    }

    fn on_session_frame(&mut self, now: Instant, frame: Frame) {
        // Frames travelling any other way carry nothing for us.
        let Frame::ToClient(frame) = frame else {
            return;
        };
        let (State::Joined(session) | State::Leaving { session, .. }) = &mut self.state else {
            return;
        };
        let (envelope, delivery) = match frame {
            ToClient::Sequenced(envelope, delivery) => (envelope, delivery),
            ToClient::LeaveAck { .. } => {
                if let State::Leaving { session, .. } = &mut self.state {
                    // The server handles requests in order: confirming the leave confirms
                    // everything sent before it, even if those acknowledgements were lost.
                    session.stream.outbox.drain_unacked();
                    self.close(CloseReason::Left);
                }
                return;
            }
            ToClient::Probe { .. } => {
                // Someone asks for our name and the server checks we are still here: say
                // so at once, or the session ends.
                let heartbeat = Frame::ToServer(ToServer::Heartbeat {
                    token: session.stream.token(),
                    acks: session.stream.take_ack(now),
                });
                self.transmits
                    .push_back((self.servers[self.server], heartbeat.to_bytes()));
                return;
            }
            ToClient::ServerAck { heartbeat_ms, .. } => {
                // The server lengthens our interval as it fills (its acknowledgements were
                // taken above).
                session.heartbeat_interval = heartbeat_interval(heartbeat_ms);
                return;
            }
            ToClient::NotJoined { .. } => {
                if matches!(self.state, State::Leaving { .. }) {
                    // Forgotten by the server: as good as gone.
                    return self.close(CloseReason::Left);
                }
                return self.rejoin(now);
            }
            // Acknowledgements were taken above; duplicates of the welcome mean nothing.
            _ => return,
        };
        let own_name = &self.name;
        let own = |from: &str| names::same(from, own_name);
        // A live public line is said or acted: the event tells which.
        let line_kind = match &delivery {
            Delivery::ActionMessage { .. } => LineKind::Action,
            _ => LineKind::Chat,
        };
        let inbound = match delivery {
            Delivery::Message {
                seq,
                time_ms,
                from,
                text,
            }
            | Delivery::ActionMessage {
                seq,
                time_ms,
                from,
                text,
            } => {
                let own = own(&from);
                let event = ChatEvent::live(line_kind, time_ms, from, text, own);
                Some(Inbound::Public {
                    seq,
                    event: ClientEvent::Chat(event),
                })
            }
            Delivery::Notice { time_ms, text } => {
                Some(Inbound::Event(ClientEvent::Notice { time_ms, text }))
            }
            Delivery::Roster {
                time_ms,
                total,
                offset,
                entries,
            } => Some(Inbound::Event(ClientEvent::Roster {
                time_ms,
                total,
                offset,
                entries,
            })),
            Delivery::PrivateMessage {
                time_ms,
                from,
                to,
                text,
            } => Some(Inbound::Event(ClientEvent::Chat(ChatEvent::Private {
                own: own(&from),
                time_ms,
                from,
                to,
                text,
            }))),
            Delivery::Presence {
                time_ms,
                name,
                change,
            } => Some(Inbound::Event(ClientEvent::Chat(ChatEvent::Presence {
                time_ms,
                name,
                change,
            }))),
            Delivery::PresenceBatch { time_ms, changes } => {
                Some(Inbound::Event(ClientEvent::PresenceBatch {
                    time_ms,
                    changes,
                }))
            }
            Delivery::Renamed { name } => Some(Inbound::Renamed(name)),
            Delivery::Disconnected {
                time_ms,
                reason,
                text,
            } => Some(Inbound::Disconnected {
                time_ms,
                reason,
                text,
            }),
            Delivery::Missed { last } => {
                session.stream.inbox.skip_through(now, envelope.seq, last);
                None
            }
            Delivery::HistoryLine { line } => {
                let own = own(&line.from);
                Some(Inbound::Event(ClientEvent::Chat(ChatEvent::replayed(
                    line, own,
                ))))
            }
            Delivery::HistoryEnd {
                epoch,
                newest,
                earlier,
            } => Some(Inbound::HistoryEnd {
                epoch,
                newest,
                earlier,
            }),
        };
        if let Some(inbound) = inbound {
            session.stream.inbox.insert(now, envelope.seq, inbound);
        }
        loop {
            let (State::Joined(session) | State::Leaving { session, .. }) = &mut self.state else {
                return;
            };
            let Some(ready) = session.stream.inbox.pop_ready() else {
                return;
            };
            match ready {
                Ready::Item(Inbound::Event(event)) => {
                    let show = match &event {
                        ClientEvent::Chat(ChatEvent::HistoryLine { epoch, seq, .. }) => {
                            self.shown.line(*epoch, *seq)
                        }
                        // The roster comes before the join's answer, and so does the
                        // notice that a roster cut short is followed by.
                        ClientEvent::Roster {
                            total,
                            offset,
                            entries,
                            ..
                        } => {
                            let listed = usize::from(*offset) + entries.len();
                            self.shown.roster_page(listed < usize::from(*total));
                            true
                        }
                        ClientEvent::Notice { .. } => {
                            self.shown.notice();
                            true
                        }
                        _ => {
                            self.shown.other();
                            true
                        }
                    };
                    if show {
                        self.events.push_back(event);
                    }
                }
                Ready::Item(Inbound::Public { seq, event }) => {
                    self.events.push_back(event);
                    if let Some(probe) = self.shown.live_line(seq) {
                        self.request_unpaced(now, probe);
                    }
                }
                Ready::Item(Inbound::HistoryEnd {
                    epoch,
                    newest,
                    earlier,
                }) => {
                    self.shown.end(epoch, newest, earlier, &mut self.events);
                    self.send_deferred_page(now);
                }
                Ready::Item(Inbound::Renamed(name)) => {
                    self.shown.other();
                    // Our own messages are recognized by name from now on.
                    self.name = name.clone();
                    self.events.push_back(ClientEvent::Renamed { name });
                }
                Ready::Item(Inbound::Disconnected {
                    time_ms,
                    reason,
                    text,
                }) => {
                    self.shown.other();
                    // Say we got it, so the server stops repeating it.
                    let ack = Frame::ToServer(ToServer::ClientAck {
                        token: session.stream.token(),
                        acks: session.stream.take_ack(now),
                    });
                    self.transmits
                        .push_back((self.servers[self.server], ack.to_bytes()));
                    if matches!(self.state, State::Leaving { .. }) {
                        return self.close(CloseReason::Left);
                    }
                    if reason == DisconnectReason::TimedOut {
                        // We were silent too long (a suspended laptop, a network outage),
                        // or acknowledged nothing for too long, but are back: say why,
                        // and join again, as after a server restart.
                        self.events.push_back(ClientEvent::Notice { time_ms, text });
                        return self.rejoin(now);
                    }
                    return self.close(CloseReason::Disconnected { reason, text });
                }
                Ready::Skipped(count) => {
                    self.shown.other();
                    self.events.push_back(ClientEvent::Missed { count });
                }
            }
        }
    }

    /// Where in the server's history we are (see [`HistoryMark`]), once a public line has
    /// been shown or a replay has told it.
    pub fn history_mark(&self) -> Option<HistoryMark> {
        self.shown.mark()
    }

    /// `/history`: shows up to `count` (at least 1) public lines before the oldest one shown
    /// from the history, or the newest ones the first time. It goes in order with the rest,
    /// and the flood limit does not count it; typed while a page is on its way, it asks
    /// for as many more once that page is shown.
    pub fn request_history(&mut self, now: Instant, count: u16) {
        let queued = self
            .queue
            .iter()
            .any(|request| matches!(request, Request::History { count: 1.., .. }));
        if queued || self.shown.page_on_its_way() {
            self.shown.defer(count.max(1), u16::MAX);
            return;
        }
        let request = self.shown.page_request(count);
        self.request_unpaced(now, request);
    }

    /// Asks for the lines deferred while a page was on its way, once none is.
    fn send_deferred_page(&mut self, now: Instant) {
        if let Some(count) = self.shown.take_deferred() {
            let request = self.shown.page_request(count);
            self.request_unpaced(now, request);
        }
    }

    /// A request the flood limit does not count and whose order among the lines typed does
    /// not matter: in a session it goes at once, ahead of a backlog waiting for its turn;
    /// otherwise it waits in the queue like the rest.
    fn request_unpaced(&mut self, now: Instant, request: Request) {
        if matches!(self.state, State::Joined(_)) && !self.leave_queued() {
            self.send_request(now, request, 0);
        } else {
            self.request(now, request);
        }
    }

    /// The server no longer knows us (it restarted, or timed us out): join again under the
    /// same name, and send again what it had not acknowledged.
    fn rejoin(&mut self, now: Instant) {
        self.events.push_back(ClientEvent::Rejoining);
        self.start_rejoining(now);
    }

    /// Sends a line the user typed to everyone; a line too long for one datagram becomes
    /// several messages. It goes at once if the flood limit allows, else in its turn; typed
    /// while there is no session (joining, an outage), it waits for one.
    pub fn send_text(&mut self, now: Instant, text: &str) {
        for piece in wire::split_text(text) {
            let text = piece.to_owned();
            self.request(now, Request::Chat { sent_ms: 0, text });
        }
    }

    /// `/msg`: sends `text` to the person called `to` only. Typed while joining, it waits.
    pub fn send_private(&mut self, now: Instant, to: &str, text: &str) {
        for piece in wire::split_text(text) {
            self.request(
                now,
                Request::Private {
                    sent_ms: 0,
                    to: to.to_owned(),
                    text: piece.to_owned(),
                },
            );
        }
    }

    /// `/me`: tells everyone what we do.
    pub fn send_action(&mut self, now: Instant, text: &str) {
        for piece in wire::split_text(text) {
            let text = piece.to_owned();
            self.request(now, Request::Action { sent_ms: 0, text });
        }
    }

    /// `/nick`: asks to be called `name` (the server answers with
    /// [`ClientEvent::Renamed`], or a notice saying why not).
    pub fn rename(&mut self, now: Instant, name: &str) {
        let name = name.to_owned();
        self.request(now, Request::Nick { sent_ms: 0, name });
    }

    /// `/away REASON`, or `/back` with `None`.
    pub fn set_away(&mut self, now: Instant, reason: Option<&str>) {
        let reason = reason.map(|r| wire::truncate_to_char_boundary(r, wire::MAX_NAME_BYTES));
        let reason = reason.unwrap_or("").to_owned();
        self.request(now, Request::Away { sent_ms: 0, reason });
    }

    /// Queues a request behind everything queued before and sends what may go.
    fn request(&mut self, now: Instant, request: Request) {
        let refused = match self.state {
            State::Leaving { .. } | State::Closed => Some("the session is over"),
            _ if self.leave_queued() => Some("you are leaving"),
            _ => None,
        };
        let refused = match refused {
            Some(why) => Some((request, why)),
            None => {
                let charged = is_flood_limited(&request);
                self.queue.push(request, charged).err().map(|request| {
                    let why = "too many lines are waiting to be sent (1000)";
                    (request, why)
                })
            }
        };
        if let Some((request, why)) = refused {
            if let Some(text) = as_typed(&request) {
                self.events.push_back(ClientEvent::NotSent { text, why });
            }
            return;
        }
        self.release(now);
    }

    /// Asks the server who is online (the answer arrives as [`ClientEvent::Roster`]).
    pub fn request_list(&mut self, now: Instant) {
        if !self.queue.iter().any(|request| *request == Request::List) {
            self.request(now, Request::List);
        }
    }

    /// Leaves the chat: tells the server after everything typed before (repeating until it
    /// confirms, for at most [`LEAVE_TIMEOUT`]) and then closes with [`CloseReason::Left`].
    /// Lines still queued are waited for, at most
    /// [`QUEUE_DRAIN_LIMIT`](crate::proto::pacing::QUEUE_DRAIN_LIMIT).
    pub fn leave(&mut self, now: Instant) {
        self.leave_waiting(now, LeaveWait::Usual);
    }

    /// Leaves like [`Client::leave`], but gives what is queued all the time the flood
    /// limit needs to send it ([`LeaveWait::WholeQueue`]): for the end of a script's
    /// input, which is meant to be delivered whole.
    pub fn leave_after_queue(&mut self, now: Instant) {
        self.leave_waiting(now, LeaveWait::WholeQueue);
    }

    fn leave_waiting(&mut self, now: Instant, wait: LeaveWait) {
        if self.is_rejoining() && !self.leave_queued() && self.typed_in_queue() == 0 {
            // The server is away and nothing typed waits for it: nothing to lose.
            return self.close(CloseReason::Left);
        }
        // While joining, the join's outcome is still worth waiting for: lines typed before
        // the server answered (`echo hi | icq-client`) go out once it does, then we leave
        // politely; a refusal or no answer still ends the program with its own status.
        // Requests already queued were counted against the capacity: the leave always fits.
        let gone = matches!(self.state, State::Leaving { .. } | State::Closed);
        if !gone && self.queue.queue_leave(now, Request::Leave, wait) {
            self.release(now);
        }
    }

    /// Leaving waited long enough: what was still queued is not sent (`unsent` lines, the
    /// user is told), and the leave goes now — or, the server being away, we are done.
    fn drain_expired(&mut self, now: Instant, unsent: usize) {
        let rejoining = self.is_rejoining();
        if unsent > 0 {
            let why = if rejoining {
                "you left while the server was not answering"
            } else {
                "you left before their turn came"
            };
            self.events
                .push_back(ClientEvent::Unsent { count: unsent, why });
        }
        match self.state {
            State::Joined(_) => self.release(now),
            _ if rejoining => self.close(CloseReason::LeftUnreachable),
            // The first join: its own deadline decides.
            _ => {}
        }
    }

    /// Advances timers: join retries and deadline, retransmissions, acknowledgements,
    /// heartbeats, the leave deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Called late (the process was stopped): the server's silence meanwhile, and its
        // missing acknowledgements, are ours.
        if let Some(due) = self.poll_timeout() {
            let owed = self.lateness.timer_ran(now, due);
            if let State::Joined(session) | State::Leaving { session, .. } = &mut self.state {
                lateness::forgive_silence(&mut session.last_heard, now, owed);
                session.stream.forgive(now, owed);
            }
        }
        match &mut self.state {
            State::Joining(attempt) => match attempt.poll(now, self.servers.len()) {
                JoinStep::GiveUp if attempt.heard_foreign() => {
                    return self.close(CloseReason::ForeignAnswer);
                }
                JoinStep::GiveUp => return self.close(CloseReason::JoinTimedOut),
                JoinStep::Send(candidate) => {
                    let (history_epoch, history_seen) = self.shown.join_fields();
                    let join = Frame::ToServer(ToServer::Join {
                        nonce: attempt.nonce,
                        cookie: attempt.cookie,
                        previous_token: self.previous_token,
                        history_epoch,
                        history_seen,
                        name: self.name.clone(),
                    });
                    let to = self.servers[candidate];
                    self.transmits.push_back((to, join.to_bytes()));
                }
                JoinStep::Wait => {}
            },
            State::Joined(_) | State::Leaving { .. } => self.session_timers(now),
            State::Closed => return,
        }
        self.release(now);
        // After what was released: a request carries our acknowledgements and counts as
        // sending, so a bare acknowledgement or a heartbeat goes only if none went.
        self.send_ack_if_due(now);
        self.send_heartbeat_if_due(now);
        if let Some(Backlog { lines, every }) = self.queue.take_notice(now) {
            self.events.push_back(ClientEvent::Queued { lines, every });
        }
        if let Some(unsent) = self.queue.take_expired(now) {
            self.drain_expired(now, unsent);
        }
    }

    fn session_timers(&mut self, now: Instant) {
        let server = self.server();
        let (State::Joined(session) | State::Leaving { session, .. }) = &mut self.state else {
            return;
        };
        while let Some(due) = session.stream.poll_due(now) {
            match due {
                Resend::Send { envelope, item } => {
                    self.retransmissions += 1;
                    self.transmits.push_back((server, item.to_bytes(&envelope)));
                }
                Resend::GaveUp { item } => return self.lost_server(now, item),
            }
        }
        if let State::Leaving { deadline, .. } = self.state
            && now >= deadline
        {
            return self.close(CloseReason::Left);
        }
        let (State::Joined(session) | State::Leaving { session, .. }) = &mut self.state else {
            return;
        };
        let silent_for = now.saturating_duration_since(session.last_heard);
        // Three missed heartbeat answers: about the server's own timeout for us.
        if !session.silent_reported && silent_for >= session.heartbeat_interval * 3 {
            session.silent_reported = true;
            self.events
                .push_back(ClientEvent::ServerSilent { silent_for });
        }
    }

    fn send_heartbeat_if_due(&mut self, now: Instant) {
        let server = self.server();
        let (State::Joined(session) | State::Leaving { session, .. }) = &mut self.state else {
            return;
        };
        if now >= session.stream.last_sent() + session.heartbeat_interval {
            let heartbeat = Frame::ToServer(ToServer::Heartbeat {
                token: session.stream.token(),
                acks: session.stream.take_ack(now),
            });
            self.transmits.push_back((server, heartbeat.to_bytes()));
        }
    }

    /// A request went unacknowledged through every retry: the server is gone or cut off.
    /// Leaving, we report what was not confirmed and are done; otherwise this is an
    /// outage: everything unacknowledged waits, first in the queue, and we join again until
    /// the server is back.
    fn lost_server(&mut self, now: Instant, given_up: Request) {
        if let State::Leaving { session, .. } = &mut self.state {
            let mut undelivered = vec![given_up];
            undelivered.extend(session.stream.outbox.drain_unacked());
            for text in undelivered.iter().filter_map(as_typed) {
                self.events.push_back(ClientEvent::NotSent {
                    text,
                    why: "the server stopped answering",
                });
            }
            return self.close(CloseReason::Left);
        }
        let charged = is_flood_limited(&given_up);
        // It was the oldest unacknowledged request (the first to reach the give-up time):
        // it goes back first, ahead of the others `start_rejoining` puts back after it.
        if let State::Joined(session) = &mut self.state {
            let rest = session.stream.outbox.drain_unacked();
            let items: Vec<(Request, bool)> = std::iter::once((given_up, charged))
                .chain(rest.into_iter().map(|request| {
                    let charged = is_flood_limited(&request);
                    (request, charged)
                }))
                .collect();
            self.queue.requeue(items.into_iter());
        }
        self.events.push_back(ClientEvent::ServerLost);
        self.start_rejoining(now);
    }

    fn send_ack_if_due(&mut self, now: Instant) {
        let server = self.server();
        let (State::Joined(session) | State::Leaving { session, .. }) = &mut self.state else {
            return;
        };
        if let Some(acks) = session.stream.take_ack_if_due(now) {
            let ack = Frame::ToServer(ToServer::ClientAck {
                token: session.stream.token(),
                acks,
            });
            self.transmits.push_back((server, ack.to_bytes()));
        }
    }

    /// When [`Client::handle_timeout`] should next be called, unless the session is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = [
            self.queue.notice_deadline(),
            self.queue.finish_deadline(),
            match &self.state {
                State::Joined(_) => self.queue.waiting_until(),
                _ => None,
            },
        ];
        let session = self.session_deadline()?;
        Some(own.into_iter().flatten().fold(session, Instant::min))
    }

    fn session_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Joining(attempt) => Some(attempt.next_deadline(self.servers.len())),
            State::Joined(session) | State::Leaving { session, .. } => {
                let mut next = session.stream.last_sent() + session.heartbeat_interval;
                if !session.silent_reported {
                    next = next.min(session.last_heard + session.heartbeat_interval * 3);
                }
                if let Some(due) = session.stream.next_deadline() {
                    next = next.min(due);
                }
                if let State::Leaving { deadline, .. } = &self.state {
                    next = next.min(*deadline);
                }
                Some(next)
            }
            State::Closed => None,
        }
    }

    /// The next datagram to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next thing to show the user.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Sends `request` now, stamped `sent_ms` (see [`Request`]).
    fn send_request(&mut self, now: Instant, mut request: Request, sent_ms: u64) {
        let server = self.server();
        let (State::Joined(session) | State::Leaving { session, .. }) = &mut self.state else {
            return;
        };
        request.stamp(sent_ms);
        if let Request::History { count, .. } = request {
            self.shown.sent(count);
        }
        // Past the cap on requests in flight it waits, and goes from `session_timers`.
        let Some(envelope) = session.stream.send(now, &request) else {
            return;
        };
        self.transmits
            .push_back((server, request.to_bytes(&envelope)));
    }

    fn close(&mut self, reason: CloseReason) {
        let queued: Vec<String> = self.queue.drain().filter_map(|r| as_typed(&r)).collect();
        let (undelivered, why) = match &mut self.state {
            State::Joined(session) | State::Leaving { session, .. } => (
                session.stream.outbox.drain_unacked(),
                "the session ended before the server confirmed it",
            ),
            _ => (Vec::new(), "the session ended before the server answered"),
        };
        let queue_why = match self.state {
            State::Joined(_) | State::Leaving { .. } => "the session ended before their turn came",
            _ => "the session ended before the server answered",
        };
        self.state = State::Closed;
        for text in undelivered.iter().filter_map(as_typed) {
            self.events.push_back(ClientEvent::NotSent { text, why });
        }
        if queued.len() > NAMED_UNSENT_MAX {
            self.events.push_back(ClientEvent::Unsent {
                count: queued.len(),
                why: queue_why,
            });
        } else {
            for text in queued {
                self.events.push_back(ClientEvent::NotSent {
                    text,
                    why: queue_why,
                });
            }
        }
        self.events.push_back(ClientEvent::Closed(reason));
    }
}

/// Whether the server counts this request against the flood limit (it may not, for a
/// rename to the same name: counting it anyway only makes us a little slower).
fn is_flood_limited(request: &Request) -> bool {
    !matches!(
        request,
        Request::List | Request::Leave | Request::History { .. }
    )
}

/// What the user typed for this request, to tell them it was not delivered; `None` for
/// what needs no report (`/list`, leaving).
fn as_typed(request: &Request) -> Option<String> {
    match request {
        Request::Chat { text, .. } => Some(text.clone()),
        Request::Private { to, text, .. } => Some(format!("/msg {to} {text}")),
        Request::Action { text, .. } => Some(format!("/me {text}")),
        Request::Nick { name, .. } => Some(format!("/nick {name}")),
        Request::Away { reason, .. } if reason.is_empty() => Some("/back".to_owned()),
        Request::Away { reason, .. } => Some(format!("/away {reason}")),
        Request::List | Request::Leave | Request::History { .. } => None,
    }
}
