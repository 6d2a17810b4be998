//! The client's protocol logic as a plain state machine, with no sockets, threads or clock.
//!
//! [`Client`] owns the client's side of a session: joining (retrying, trying each address
//! the server's name resolved to, giving up after a deadline), heartbeats, leaving politely,
//! noticing a silent server, rejoining a server that restarted, and turning frames that
//! arrive into [`ClientEvent`]s. Inputs are method calls (a datagram arrived, the user typed
//! something, time passed); outputs are queued: datagrams to send, events to show, and when
//! to call back. The `icq-client` binary moves bytes between this type, its socket and the
//! terminal; tests drive it with a fake clock.
//!
//! It does not own parsing what the user types (`command`), how events look on screen
//! (`display`), or the byte layout of frames (`wire`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::names;
use crate::wire::{self, DisconnectReason, Frame, RefuseReason};

/// How long to wait for the server to answer a join before giving up.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an unanswered join is repeated (UDP may have lost it, or the answer).
pub const JOIN_RETRY: Duration = Duration::from_millis(500);

/// How long to keep asking one of the server's addresses before trying the next one.
pub const ADDRESS_FALLBACK: Duration = Duration::from_secs(1);

/// How often an unanswered leave is repeated, and for how long in all.
pub const LEAVE_RETRY: Duration = Duration::from_millis(200);
/// See [`LEAVE_RETRY`].
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The most lines typed while (re)joining that are kept to send once joined. Beyond it the
/// user is told the line was not sent, rather than memory growing without bound.
pub const MAX_PENDING_LINES: usize = 100;

/// Something to show the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted us under `name`.
    Joined { name: String, server: SocketAddr },
    /// A chat message. `own` is true for our own messages coming back from the server.
    Message {
        time_ms: i64,
        from: String,
        text: String,
        own: bool,
    },
    /// A notice from the server (joins, leaves, warnings).
    Notice { time_ms: i64, text: String },
    /// Part of an answer to `/list`.
    Roster {
        time_ms: i64,
        total: u16,
        offset: u16,
        names: Vec<String>,
    },
    /// Nothing has been heard from the server for `silent_for`.
    ServerSilent { silent_for: Duration },
    /// The server answers again after [`ClientEvent::ServerSilent`].
    ServerBack,
    /// The server no longer knows us (it restarted, or timed us out): joining again.
    Rejoining,
    /// A typed line could not be sent.
    NotSent { text: String, why: &'static str },
    /// The session is over; the program should exit.
    Closed(CloseReason),
}

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The user left.
    Left,
    /// No server answered the join in time.
    JoinTimedOut,
    /// The server refused the join.
    Refused(RefuseReason),
    /// The server ended the session.
    Disconnected {
        reason: DisconnectReason,
        text: String,
    },
}

impl CloseReason {
    /// Whether the program should exit with a failure status.
    pub fn is_failure(&self) -> bool {
        !matches!(self, CloseReason::Left)
    }
}

#[derive(Debug)]
enum State {
    Joining {
        started: Instant,
        next_send: Instant,
        /// Which of `Client::servers` is being asked now.
        candidate: usize,
        candidate_since: Instant,
    },
    Joined {
        heartbeat_interval: Duration,
        last_sent: Instant,
        last_heard: Instant,
        silent_reported: bool,
    },
    Leaving {
        deadline: Instant,
        next_send: Instant,
    },
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
    /// Lines typed before the join completed, sent once it does.
    pending_lines: Vec<String>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<ClientEvent>,
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
            pending_lines: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        client.start_joining(now);
        client
    }

    fn start_joining(&mut self, now: Instant) {
        self.state = State::Joining {
            started: now,
            next_send: now,
            candidate: self.server,
            candidate_since: now,
        };
        self.handle_timeout(now);
    }

    /// The name we asked for or were registered under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The server address in use (the one that answered, once joined).
    pub fn server(&self) -> SocketAddr {
        self.servers[self.server]
    }

    /// Processes a datagram that arrived from `from`. Datagrams from anyone but the server
    /// are ignored, as are malformed ones: neither can disturb the session.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Some(from_index) = self.servers.iter().position(|s| same_endpoint(*s, from)) else {
            return;
        };
        let Ok(frame) = Frame::decode(datagram) else {
            return;
        };
        match &mut self.state {
            State::Joining { candidate, .. } => {
                if from_index != *candidate {
                    return;
                }
                self.server = from_index;
                match frame {
                    Frame::Welcome { name, heartbeat_ms } => {
                        self.on_welcome(now, name, heartbeat_ms);
                    }
                    Frame::Refused { reason } => self.close(CloseReason::Refused(reason)),
                    // The server's farewell can race our join; anything else waits for the
                    // welcome (the server only sends us other frames once we are joined).
                    Frame::Disconnected { reason, text, .. } => {
                        self.close(CloseReason::Disconnected { reason, text })
                    }
                    _ => {}
                }
            }
            State::Joined {
                last_heard,
                silent_reported,
                ..
            } => {
                if from_index != self.server {
                    return;
                }
                *last_heard = now;
                if std::mem::take(silent_reported) {
                    self.events.push_back(ClientEvent::ServerBack);
                }
                self.on_frame_while_joined(now, frame);
            }
            State::Leaving { .. } => {
                if matches!(
                    frame,
                    Frame::LeaveAck | Frame::NotJoined | Frame::Disconnected { .. }
                ) {
                    self.close(CloseReason::Left);
                }
            }
            State::Closed => {}
        }
    }

    fn on_welcome(&mut self, now: Instant, name: String, heartbeat_ms: u32) {
        // A zero interval from a broken server would make us send in a busy loop.
        let heartbeat_interval = Duration::from_millis(u64::from(heartbeat_ms.max(50)));
        self.name = name.clone();
        self.state = State::Joined {
            heartbeat_interval,
            last_sent: now,
            last_heard: now,
            silent_reported: false,
        };
        self.events.push_back(ClientEvent::Joined {
            name,
            server: self.server(),
        });
        for line in std::mem::take(&mut self.pending_lines) {
            self.send_text(now, &line);
        }
    }

    fn on_frame_while_joined(&mut self, now: Instant, frame: Frame) {
        match frame {
            Frame::Message {
                time_ms,
                from,
                text,
            } => {
                let own = names::fold(&from) == names::fold(&self.name);
                self.events.push_back(ClientEvent::Message {
                    time_ms,
                    from,
                    text,
                    own,
                });
            }
            Frame::Notice { time_ms, text } => {
                self.events.push_back(ClientEvent::Notice { time_ms, text })
            }
            Frame::Roster {
                time_ms,
                total,
                offset,
                names,
            } => self.events.push_back(ClientEvent::Roster {
                time_ms,
                total,
                offset,
                names,
            }),
            Frame::Disconnected { reason, text, .. } => {
                self.close(CloseReason::Disconnected { reason, text })
            }
            Frame::NotJoined => {
                self.events.push_back(ClientEvent::Rejoining);
                self.start_joining(now);
            }
            // Duplicates of the welcome, heartbeat acks (already counted as "heard"), and
            // frames that make no sense here.
            _ => {}
        }
    }

    /// Sends a line the user typed to everyone; a line too long for one datagram becomes
    /// several messages. Typed while joining, it waits until the join completes.
    pub fn send_text(&mut self, now: Instant, text: &str) {
        match self.state {
            State::Joined { .. } => {
                let frames: Vec<Frame> = wire::split_text(text)
                    .map(|piece| Frame::Chat {
                        text: piece.to_owned(),
                    })
                    .collect();
                for frame in frames {
                    self.send(now, &frame);
                }
            }
            State::Joining { .. } if self.pending_lines.len() < MAX_PENDING_LINES => {
                self.pending_lines.push(text.to_owned());
            }
            State::Joining { .. } => self.events.push_back(ClientEvent::NotSent {
                text: text.to_owned(),
                why: "too many lines are waiting for the server to answer",
            }),
            State::Leaving { .. } | State::Closed => self.events.push_back(ClientEvent::NotSent {
                text: text.to_owned(),
                why: "the session is over",
            }),
        }
    }

    /// Asks the server who is online (the answer arrives as [`ClientEvent::Roster`]).
    pub fn request_list(&mut self, now: Instant) {
        if matches!(self.state, State::Joined { .. }) {
            self.send(now, &Frame::ListRequest);
        }
    }

    /// Leaves the chat: tells the server (repeating until it confirms, briefly) and then
    /// closes with [`CloseReason::Left`].
    pub fn leave(&mut self, now: Instant) {
        match self.state {
            State::Joined { .. } => {
                self.state = State::Leaving {
                    deadline: now + LEAVE_TIMEOUT,
                    next_send: now,
                };
                self.handle_timeout(now);
            }
            State::Joining { .. } => {
                // The server may have registered us and lost only its answer: say goodbye
                // once, so it does not keep the name until we time out.
                self.send(now, &Frame::Leave);
                self.close(CloseReason::Left);
            }
            State::Leaving { .. } | State::Closed => {}
        }
    }

    /// Advances timers: join retries and deadline, heartbeats, leave retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            State::Joining {
                started,
                next_send,
                candidate,
                candidate_since,
            } => {
                if now.saturating_duration_since(*started) >= JOIN_TIMEOUT {
                    return self.close(CloseReason::JoinTimedOut);
                }
                if self.servers.len() > 1
                    && now.saturating_duration_since(*candidate_since) >= ADDRESS_FALLBACK
                {
                    *candidate = (*candidate + 1) % self.servers.len();
                    *candidate_since = now;
                    *next_send = now;
                }
                if now >= *next_send {
                    *next_send = now + JOIN_RETRY;
                    let to = self.servers[*candidate];
                    let join = Frame::Join {
                        name: self.name.clone(),
                    };
                    self.transmits.push_back((to, join.to_bytes()));
                }
            }
            State::Joined {
                heartbeat_interval,
                last_sent,
                last_heard,
                silent_reported,
            } => {
                let silent_for = now.saturating_duration_since(*last_heard);
                // Three missed heartbeat answers: about the server's own timeout for us.
                if !*silent_reported && silent_for >= *heartbeat_interval * 3 {
                    *silent_reported = true;
                    self.events
                        .push_back(ClientEvent::ServerSilent { silent_for });
                }
                if now >= *last_sent + *heartbeat_interval {
                    self.send(now, &Frame::Heartbeat);
                }
            }
            State::Leaving {
                deadline,
                next_send,
            } => {
                if now >= *deadline {
                    return self.close(CloseReason::Left);
                }
                if now >= *next_send {
                    *next_send = now + LEAVE_RETRY;
                    self.send(now, &Frame::Leave);
                }
            }
            State::Closed => {}
        }
    }

    /// When [`Client::handle_timeout`] should next be called, unless the session is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Joining {
                started,
                next_send,
                candidate_since,
                ..
            } => {
                let mut next = (*next_send).min(*started + JOIN_TIMEOUT);
                if self.servers.len() > 1 {
                    next = next.min(*candidate_since + ADDRESS_FALLBACK);
                }
                Some(next)
            }
            State::Joined {
                heartbeat_interval,
                last_sent,
                last_heard,
                silent_reported,
            } => {
                let heartbeat = *last_sent + *heartbeat_interval;
                Some(if *silent_reported {
                    heartbeat
                } else {
                    heartbeat.min(*last_heard + *heartbeat_interval * 3)
                })
            }
            State::Leaving {
                deadline,
                next_send,
            } => Some((*deadline).min(*next_send)),
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

    fn send(&mut self, now: Instant, frame: &Frame) {
        if let State::Joined { last_sent, .. } = &mut self.state {
            *last_sent = now;
        }
        self.transmits.push_back((self.server(), frame.to_bytes()));
    }

    fn close(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        for text in std::mem::take(&mut self.pending_lines) {
            self.events.push_back(ClientEvent::NotSent {
                text,
                why: "the session ended before the server answered",
            });
        }
        self.events.push_back(ClientEvent::Closed(reason));
    }
}

/// Whether two socket addresses are the same endpoint, treating an IPv4 address and its
/// IPv4-mapped IPv6 form (what a dual-stack socket reports) as equal.
fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}
