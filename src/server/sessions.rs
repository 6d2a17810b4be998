//! Sessions of named clients and their reliable streams.
//!
//! Owns what the server keeps per session ([`Session`], its [`Streams`] and sending on
//! them: a turn's frames are kept in the stream and written out at its end, as few
//! datagrams as they fit in; the retransmission timers), admitting a session once the
//! front door said yes, carrying out a session's requests in order, retransmission and
//! giving up, the probe of a silent session, crediting sessions with the server's own
//! lateness, and the end of a session: leaving, timeouts, kicks, and the farewell that is
//! repeated until the client acknowledges it.
//!
//! It does not own the checks before a join is admitted (`front`), what the requests do to
//! the room (`room`), or guests, which have no streams (`guests`).

use super::*;
use crate::proto::packing::{StreamDatagram, pack_stream};
use crate::proto::paging::HistoryRequest;

/// The reliable streams of one named session (or of its farewell): frames sent to the
/// client, encoded with a blank envelope, until acknowledged; the client's requests put
/// back in order, each with the client's stamp of when it first sent it (`sent_ms`, see
/// [`Request`]). Its token is the session's secret: frames without it are not from this
/// client.
pub(super) type Streams = Stream<Arc<[u8]>, Request>;

impl Outgoing<'_> {
    /// Sends a sequenced frame (already encoded with a blank envelope) on `streams`.
    pub(super) fn send(
        &mut self,
        streams: &mut Streams,
        now: Instant,
        to: SocketAddr,
        payload: Arc<[u8]>,
    ) {
        let replacing = streams.outbox.len() >= OUTBOX_LIMIT;
        if replacing {
            self.stats.frames_missed += replace_oldest(streams, now, OUTBOX_LIMIT / 2);
        }
        // Written out with the session's other frames of the turn (`Server::write_later`).
        // Past the cap on frames in flight it waits in the window, and arming makes the
        // timer fetch it as soon as acknowledgements make room.
        let queued = streams.send_later(now, payload);
        if queued.first_of_turn {
            self.later.push(to);
        }
        // A replacement is due at once, wherever it sits: then the whole window is looked
        // at; otherwise only what this send added.
        let deadline = if replacing {
            streams.arm(now)
        } else {
            streams.arm_after_send(now, &queued)
        };
        file(deadline, to, self.timers);
    }

    fn transmit(&mut self, to: SocketAddr, envelope: Envelope, payload: Arc<[u8]>) {
        self.stats.datagrams_sent += 1;
        self.transmits.push_back(Transmit {
            destination: to,
            payload,
            envelope: Some(envelope),
        });
    }

    /// Writes out the frames `streams` (at `to`) was sent this turn ([`Outgoing::send`]):
    /// as few datagrams as they fit in, the acknowledgements on them ours now.
    pub(super) fn write_later(&mut self, to: SocketAddr, streams: &mut Streams) {
        let Some((token, acks, frames)) = streams.take_later() else {
            return;
        };
        let (transmits, stats) = (&mut *self.transmits, &mut *self.stats);
        pack_stream(token, acks, frames, |datagram| {
            stats.datagrams_sent += 1;
            transmits.push_back(match datagram {
                StreamDatagram::Run(bytes) => Transmit {
                    destination: to,
                    payload: bytes.into(),
                    envelope: None,
                },
                StreamDatagram::Alone { seq, frame } => Transmit {
                    destination: to,
                    payload: frame.clone(),
                    envelope: Some(Envelope { token, seq, acks }),
                },
            });
        });
    }

    /// Sends whatever is due on `streams`; returns false if a frame was given up on (the
    /// client stopped acknowledging for
    /// [`reliable::MAX_TRANSMISSIONS`](crate::proto::reliable::MAX_TRANSMISSIONS) tries).
    pub(super) fn retransmit_due(
        &mut self,
        streams: &mut Streams,
        now: Instant,
        to: SocketAddr,
    ) -> bool {
        while let Some(due) = streams.poll_due(now) {
            match due {
                Resend::Send { envelope, item } => {
                    self.stats.retransmissions += 1;
                    self.transmit(to, envelope, item);
                }
                Resend::GaveUp { .. } => return false,
            }
        }
        streams.disarm();
        arm(streams, now, to, self.timers);
        true
    }
}

impl Server {
    /// Writes out every stream's frames of the turn (see `Server::later`), in the order the
    /// streams were first sent to.
    pub(super) fn write_later(&mut self) {
        let mut later = std::mem::take(&mut self.later);
        if later.len() > self.sessions.len() / 2 {
            // A broadcast's turn: most sessions have frames to write. Going through the
            // table costs less than looking each one up, in the order a broadcast sent to
            // them (its first recipient, then the table's order).
            if let Some(&first) = later.first() {
                self.write_later_of(first);
            }
            let mut out = Outgoing {
                transmits: &mut self.transmits,
                later: &mut self.later,
                timers: &mut self.timers,
                stats: &mut self.stats,
            };
            for (addr, session) in &mut self.sessions {
                if let Some(streams) = session.streams.as_mut() {
                    out.write_later(*addr, streams);
                }
            }
            for (addr, farewell) in &mut self.farewells {
                out.write_later(*addr, &mut farewell.streams);
            }
        } else {
            for &addr in &later {
                self.write_later_of(addr);
            }
        }
        later.clear();
        // Kept, so a warm loop allocates nothing here.
        self.later = later;
    }

    /// Writes out the frames of the turn of the session or farewell at `addr`, if any: before
    /// it ends, so what it was sent goes as it would have.
    pub(super) fn write_later_of(&mut self, addr: SocketAddr) {
        let streams = match self.sessions.get_mut(&addr) {
            Some(session) => session.streams.as_mut(),
            None => self.farewells.get_mut(&addr).map(|f| &mut f.streams),
        };
        let Some(streams) = streams else {
            return;
        };
        let mut out = Outgoing {
            transmits: &mut self.transmits,
            later: &mut self.later,
            timers: &mut self.timers,
            stats: &mut self.stats,
        };
        out.write_later(addr, streams);
    }
}

/// Makes sure `timers` holds the next retransmission deadline of the streams at `addr`.
pub(super) fn arm(streams: &mut Streams, now: Instant, addr: SocketAddr, timers: &mut Timers) {
    file(streams.arm(now), addr, timers);
}

/// Files the deadline a stream asked for ([`Stream::arm`]), if any, in `timers`.
fn file(deadline: Option<Instant>, addr: SocketAddr, timers: &mut Timers) {
    if let Some(deadline) = deadline {
        timers.push(Reverse((deadline, addr)));
    }
}

/// Replaces the `count` oldest frames by one [`Delivery::Missed`] telling the client how
/// many it will never get; returns that many.
pub(super) fn replace_oldest(streams: &mut Streams, now: Instant, count: usize) -> u64 {
    let mut missed = 0;
    streams.outbox.replace_oldest(now, count, |first, last| {
        missed = u64::from(last - first + 1);
        Frame::ToClient(ToClient::Sequenced(
            Envelope::default(),
            Delivery::Missed { last },
        ))
        .to_bytes()
        .into()
    });
    missed
}

/// A heartbeat interval as the wire and the session keep it: milliseconds, capped at
/// `u32::MAX` (docs/protocol.md §7.4).
pub(super) fn heartbeat_ms(interval: Duration) -> u32 {
    u32::try_from(interval.as_millis()).unwrap_or(u32::MAX)
}

/// Everything the server remembers about one connected client.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) name: String,
    /// `name` folded for case-insensitive lookup (the key in `Server::by_name`).
    pub(super) name_key: String,
    pub(super) kind: ClientKind,
    pub(super) joined_at: Instant,
    pub(super) last_heard: Instant,
    /// When the sweep next looks at this session for silence (its entry in
    /// `Server::checks`; others with this address are stale).
    pub(super) check_at: Instant,
    /// The heartbeat interval the client was told, in milliseconds: at its join
    /// ([`ServerConfig::heartbeat_for`]; 0 for a guest), lengthened since by any
    /// `ServerAck` as the server filled; a repeated welcome says it again.
    /// (Milliseconds, not a `Duration`: the session stays in a 640-byte allocation.)
    pub(super) heartbeat_ms: u32,
    /// Whether it is in `Server::quiet`: its send window emptied since the last sweep.
    pub(super) quiet: bool,
    /// The flood limit on what the client says (by its stamps; a guest's by arrival), and
    /// what it dropped since the last notice.
    pub(super) flood: FloodWatch,
    /// When this client was warned for flooding, within the last [`FLOOD_KICK_WINDOW`].
    pub(super) flood_warnings: Vec<Instant>,
    /// Why the client is away (`/away`), or `None` while it is here.
    pub(super) away: Option<String>,
    /// The reliable streams; `None` for guests.
    pub(super) streams: Option<Streams>,
    /// The join's nonce, to tell a repeated join from a new program at the same address
    /// (0 for guests).
    pub(super) nonce: u64,
    /// The stamp of the request being carried out, which its flood check counts by.
    pub(super) stamp: Option<u64>,
    /// How much of the server's own lateness this session's clocks were credited with.
    pub(super) credited: Credited,
    /// Someone asked for this session's name and it was probed, unanswered so far.
    pub(super) probe: Option<Probe>,
    /// The outbox's next sequence number right after the last history answer (the join's
    /// replay or resume, or a page) was queued: that answer is outstanding until
    /// everything numbered below it is acknowledged (see `replay.rs`).
    pub(super) history_answer: Option<u32>,
}

/// An unanswered [`ToClient::Probe`] of a session whose name a join asked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    /// When the session is ended unless it has answered.
    pub(super) deadline: Instant,
    /// When the probe was last sent.
    pub(super) sent: Instant,
}

/// What a join under a name in use learns of the session holding it.
pub(super) enum Holder {
    /// It was heard from a moment ago (or is a guest, which cannot be asked): the name is
    /// taken.
    Live,
    /// It is being probed: no answer to the join yet (the client repeats it).
    Probing,
    /// It did not answer its probe in time: end it and give the name away.
    Gone,
}

impl Session {
    /// The heartbeat interval it was told.
    pub(super) fn heartbeat(&self) -> Duration {
        Duration::from_millis(u64::from(self.heartbeat_ms))
    }

    /// Makes `interval` the session's heartbeat interval if it is longer, to be told in the
    /// next `ServerAck`. Never shorter: a client that has not yet heard a shorter interval
    /// would heartbeat too seldom for it and be evicted while alive, whereas one that has not
    /// heard a longer one only heartbeats more often than it needs to, and its eviction,
    /// judged by the longer one, comes later.
    pub(super) fn lengthen_heartbeat(&mut self, interval: Duration) {
        self.heartbeat_ms = self.heartbeat_ms.max(heartbeat_ms(interval));
    }

    /// When this session is evicted unless it is heard from, by what it has been credited:
    /// after [`ServerConfig::timeout_for`] its heartbeat (a guest's: the timeout).
    pub(super) fn silence_deadline(&self, config: &ServerConfig) -> Instant {
        self.last_heard + config.timeout_for(self.heartbeat())
    }

    /// Credits the session with the server's lateness since it was last credited: the
    /// client's silence, and its missing acknowledgements, during that time are ours.
    pub(super) fn catch_up(&mut self, now: Instant, lateness: &Lateness) {
        let owed = self.credited.take(lateness);
        if owed.is_zero() {
            return;
        }
        lateness::forgive_silence(&mut self.last_heard, now, owed);
        if let Some(streams) = self.streams.as_mut() {
            streams.forgive(now, owed);
        }
    }
}

/// A named session that ended by the server's decision: its streams live on until the
/// client acknowledges the [`Delivery::Disconnected`] (or stops answering), so a lost farewell
/// is repeated and the client never rejoins by mistake.
#[derive(Debug)]
pub(super) struct Farewell {
    pub(super) streams: Streams,
}

/// Why a session ended; decides what the client and everyone else are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removal {
    Left,
    TimedOut,
    /// Heard from, maybe, but acknowledged nothing of what it was sent for
    /// [`GIVE_UP_AFTER`](crate::proto::reliable::GIVE_UP_AFTER): a receiver this slow costs work
    /// and gets nothing.
    Unresponsive,
    Kicked,
    /// Kicked automatically for flooding on after warnings.
    FloodKicked,
    Banned,
    /// A new program joined from the same address and port.
    Replaced,
}

impl Server {
    pub(super) fn handle_session_frame(&mut self, now: Instant, from: SocketAddr, frame: ToServer) {
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        // The lateness owed so far is for the silence that ends now, and for what is in
        // flight: credited here, it is never applied to what comes after.
        session.catch_up(now, &self.lateness);
        let Some(streams) = session.streams.as_mut() else {
            return;
        };
        session.last_heard = now;
        // Any frame of the session answers a probe.
        session.probe = None;
        // The deadline the acknowledgements can have brought forward, for the timer below.
        let mut earlier = None;
        if let Some(acks) = frame.acks() {
            let in_flight = !streams.outbox.is_empty();
            earlier = streams.outbox.on_acks_noting(now, acks).1;
            if in_flight && streams.outbox.is_empty() {
                // The window went quiet: the memory of its burst is given back if it stays
                // so until the next sweep (`Server::check_sessions`).
                streams.outbox.release_memory_if_idle();
                if !session.quiet {
                    session.quiet = true;
                    self.quiet.push(from);
                }
            }
        }
        // A heartbeat is always answered: that answer is how the client knows we are alive.
        let heartbeat = matches!(frame, ToServer::Heartbeat { .. });
        if let ToServer::Sequenced(envelope, request) = frame {
            streams.inbox.insert(now, envelope.seq, request);
        }
        // Requests are carried out in the order the client sent them, each once.
        while let Some(ready) = self.sessions.get_mut(&from).and_then(|s| {
            let ready = s.streams.as_mut()?.inbox.pop_ready();
            s.stamp = match &ready {
                Some(Ready::Item(request)) => Some(request.sent_ms()),
                _ => None,
            };
            ready
        }) {
            match ready {
                Ready::Item(Request::Chat { text, .. }) => self.handle_chat(now, from, &text),
                Ready::Item(Request::List) => self.send_roster(now, from, Listing::Everyone),
                Ready::Item(Request::Private { to, text, .. }) => {
                    self.handle_private(now, from, &to, &text)
                }
                Ready::Item(Request::Action { text, .. }) => self.handle_action(now, from, &text),
                Ready::Item(Request::Nick { name, .. }) => self.handle_nick(now, from, name),
                Ready::Item(Request::Away { reason, .. }) => self.handle_away(now, from, &reason),
                Ready::Item(Request::History {
                    epoch,
                    before,
                    count,
                }) => self.answer_history(now, from, HistoryRequest::new(epoch, before, count)),
                Ready::Item(Request::Leave) => {
                    let token = self.remove_session(now, from, Removal::Left);
                    if let Some(token) = token {
                        self.send_unsequenced(from, &ToClient::LeaveAck { token }.into());
                        self.left.remember(from, token, now);
                    }
                    return;
                }
                Ready::Skipped(_) => {}
            }
        }
        // Whatever we sent meanwhile carried the acknowledgements; if nothing did, say so.
        let heartbeat_now = self.config.heartbeat_for(self.sessions.len());
        if let Some(session) = self.sessions.get_mut(&from)
            && session
                .streams
                .as_ref()
                .is_some_and(|streams| heartbeat || streams.ack_pending())
        {
            session.lengthen_heartbeat(heartbeat_now);
            let heartbeat_ms = session.heartbeat_ms;
            if let Some(streams) = session.streams.as_mut() {
                let ack = Frame::ToClient(ToClient::ServerAck {
                    token: streams.token(),
                    acks: streams.take_ack(now),
                    heartbeat_ms,
                });
                self.send_unsequenced(from, &ack);
            }
        }
        if let Some(streams) = self
            .sessions
            .get_mut(&from)
            .and_then(|s| s.streams.as_mut())
        {
            // Acknowledgements may have brought a deadline forward (or emptied the outbox,
            // and the filed deadline then finds nothing due).
            file(streams.arm_after_acks(now, earlier), from, &mut self.timers);
        }
    }

    pub(super) fn add_session(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        name: String,
        name_key: String,
        named: Option<(u64, u64, Duration)>,
    ) {
        let kind = if named.is_some() {
            ClientKind::Named
        } else {
            ClientKind::Guest
        };
        // Everyone already here hears of the newcomer; the newcomer hears who is here
        // instead (a named client) or its own arrival (a guest, which has no roster).
        self.announce(now, addr, &name, PresenceChange::Joined);
        self.by_name.insert(name_key.clone(), addr);
        self.roster
            .set(addr, &name, None, kind == ClientKind::Guest);
        let heartbeat = named.map_or(Duration::ZERO, |(_, _, beat)| beat);
        let heartbeat_ms = heartbeat_ms(heartbeat);
        let timeout = self
            .config
            .timeout_for(Duration::from_millis(heartbeat_ms.into()));
        let check_at = now + timeout;
        self.checks.push(Reverse((check_at, addr)));
        self.sessions.insert(
            addr,
            Box::new(Session {
                name: name.clone(),
                name_key,
                kind,
                joined_at: now,
                last_heard: now,
                check_at,
                heartbeat_ms,
                quiet: false,
                flood: FloodWatch::new(self.config.flood_limit.map(|limit| {
                    // A backlog older than the timeout cannot be honest: a client silent
                    // that long has been evicted.
                    let mut gate = FloodGate::new(limit, now, timeout);
                    if kind == ClientKind::Named {
                        // The client's stamps count from the welcome, sent now.
                        gate.sender_clock(now, 0);
                    }
                    gate
                })),
                flood_warnings: Vec::new(),
                away: None,
                streams: named.map(|(token, _, _)| Stream::new(token, now, INBOX_LIMIT)),
                nonce: named.map_or(0, |(_, nonce, _)| nonce),
                stamp: None,
                probe: None,
                history_answer: None,
                credited: Credited::now(&self.lateness),
            }),
        );
        self.joined_while_pending(addr);
        let time_ms = self.clock.wall_ms(now);
        match kind {
            ClientKind::Named => self.send_roster(now, addr, Listing::Join),
            ClientKind::Guest => {
                let line = text::presence_text(&name, &PresenceChange::Joined);
                let line = self.guest_notice(time_ms, &line);
                self.push(addr, line);
            }
        }
        self.events.push_back(ServerEvent::Joined {
            time_ms,
            name,
            addr,
            guest: kind == ClientKind::Guest,
        });
    }

    /// Gives back the memory of the windows that went quiet since the last sweep and
    /// stayed so (an idle client's outbox would keep room for its largest burst, ~5 KB for
    /// 64 frames; most clients of a big server are idle). Then looks at the sessions whose
    /// check is due: credits each with the server's lateness, evicts it if it stayed silent
    /// for its timeout, else files its next check at its silence deadline. A session heard
    /// from since its check was filed is simply filed again: hearing from a client files
    /// nothing, so a heartbeat costs no timer work.
    pub(super) fn check_sessions(&mut self, now: Instant) {
        let mut quiet = std::mem::take(&mut self.quiet);
        for addr in &quiet {
            let Some(session) = self.sessions.get_mut(addr) else {
                continue;
            };
            session.quiet = false;
            if let Some(streams) = session.streams.as_mut() {
                // Released unless something was sent since the window emptied.
                streams.outbox.release_memory_if_idle();
                streams.inbox.release_memory_if_idle();
            }
        }
        quiet.clear();
        self.quiet = quiet;
        let mut silent = Vec::new();
        while let Some(&Reverse((when, addr))) = self.checks.peek() {
            if when > now {
                break;
            }
            self.checks.pop();
            let Some(session) = self.sessions.get_mut(&addr) else {
                continue;
            };
            if session.check_at != when {
                continue; // stale: filed again for another instant since
            }
            session.catch_up(now, &self.lateness);
            let deadline = session.silence_deadline(&self.config);
            if now >= deadline {
                silent.push(addr);
                continue;
            }
            if let Some(streams) = session.streams.as_mut() {
                streams.inbox.release_memory_if_idle();
            }
            session.check_at = deadline;
            self.checks.push(Reverse((deadline, addr)));
        }
        for addr in silent {
            self.remove_session(now, addr, Removal::TimedOut);
        }
    }

    /// Sends again every sequenced frame whose acknowledgement is overdue, to sessions and
    /// farewells alike. Evicts a client that stopped acknowledging altogether.
    pub(super) fn retransmit_due(&mut self, now: Instant) {
        let mut unreachable = Vec::new();
        while let Some(&Reverse((deadline, addr))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let mut out = Outgoing {
                transmits: &mut self.transmits,
                timers: &mut self.timers,
                stats: &mut self.stats,
                later: &mut self.later,
            };
            if let Some(streams) = self
                .sessions
                .get_mut(&addr)
                .and_then(|s| s.streams.as_mut())
            {
                if !streams.is_armed_for(deadline) {
                    continue; // stale: re-armed for another instant since
                }
                if let Some(session) = self.sessions.get_mut(&addr) {
                    session.catch_up(now, &self.lateness);
                }
                let Some(streams) = self
                    .sessions
                    .get_mut(&addr)
                    .and_then(|s| s.streams.as_mut())
                else {
                    continue;
                };
                if !out.retransmit_due(streams, now, addr) {
                    unreachable.push(addr);
                }
            } else if let Some(farewell) = self.farewells.get_mut(&addr) {
                if !farewell.streams.is_armed_for(deadline) {
                    continue;
                }
                if !out.retransmit_due(&mut farewell.streams, now, addr)
                    || farewell.streams.outbox.is_empty()
                {
                    self.farewells.remove(&addr);
                }
            }
        }
        for addr in unreachable {
            self.remove_session(now, addr, Removal::Unresponsive);
        }
    }

    /// Ends a session, telling the client why (unless it left by itself) and everyone else
    /// what happened. Returns the session's token, if it had one.
    pub(super) fn remove_session(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        why: Removal,
    ) -> Option<u64> {
        self.write_later_of(addr);
        let mut session = self.sessions.remove(&addr)?;
        if why == Removal::Unresponsive
            && let Some(streams) = session.streams.as_mut()
        {
            // What it never acknowledged would hold the farewell back for ever: the client
            // is told it missed it, then why it was dropped, should it come back in time.
            let backlog = streams.outbox.len();
            self.stats.frames_missed += replace_oldest(streams, now, backlog);
        }
        self.by_name.remove(&session.name_key);
        self.roster.remove(addr, &session.name);
        let token = session.streams.as_ref().map(|s| s.token());
        let time_ms = self.clock.wall_ms(now);
        let name = session.name.clone();
        let unresponsive = format!(
            "you acknowledged nothing the server sent for {} seconds",
            crate::proto::reliable::GIVE_UP_AFTER.as_secs()
        );
        let (change, farewell) = match why {
            Removal::Left | Removal::Replaced => (PresenceChange::Left, None),
            Removal::TimedOut => (
                PresenceChange::TimedOut,
                Some((DisconnectReason::TimedOut, "you were silent for too long")),
            ),
            Removal::Unresponsive => (
                PresenceChange::TimedOut,
                Some((DisconnectReason::TimedOut, unresponsive.as_str())),
            ),
            Removal::Kicked => (
                PresenceChange::Kicked,
                Some((DisconnectReason::Kicked, "you were kicked by the operator")),
            ),
            Removal::FloodKicked => (
                PresenceChange::KickedForFlooding,
                Some((
                    DisconnectReason::Kicked,
                    "you were kicked for sending too fast after warnings",
                )),
            ),
            Removal::Banned => (
                PresenceChange::Banned,
                Some((DisconnectReason::Banned, "your address was banned")),
            ),
        };
        if let Some((reason, text)) = farewell {
            self.say_farewell(now, addr, *session, time_ms, reason, text);
        }
        self.announce(now, addr, &name, change);
        self.events.push_back(match why {
            Removal::Left | Removal::Replaced => ServerEvent::Left {
                time_ms,
                name,
                addr,
            },
            Removal::TimedOut | Removal::Unresponsive => ServerEvent::TimedOut {
                time_ms,
                name,
                addr,
            },
            Removal::Kicked | Removal::FloodKicked => ServerEvent::Kicked {
                time_ms,
                name,
                addr,
            },
            Removal::Banned => ServerEvent::Banned {
                time_ms,
                name,
                addr,
            },
        });
        token
    }

    /// Tells a removed client why its session ended. A named client's streams live on as a
    /// farewell until it acknowledges, so everything sent before (and the farewell itself)
    /// arrives despite loss.
    pub(super) fn say_farewell(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        session: Session,
        time_ms: i64,
        reason: DisconnectReason,
        text: &str,
    ) {
        let Some(mut streams) = session.streams else {
            let line = self.guest_notice(time_ms, text);
            return self.push(addr, line);
        };
        let frame = Frame::ToClient(ToClient::Sequenced(
            Envelope::default(),
            Delivery::Disconnected {
                time_ms,
                reason,
                text: text.to_owned(),
            },
        ));
        let mut out = Outgoing {
            transmits: &mut self.transmits,
            timers: &mut self.timers,
            stats: &mut self.stats,
            later: &mut self.later,
        };
        streams.disarm();
        out.send(&mut streams, now, addr, frame.to_bytes().into());
        if self.farewells.len() < FAREWELL_LIMIT {
            self.farewells.insert(addr, Farewell { streams });
        } else {
            // Sent once, not repeated: now, before the streams are gone.
            out.write_later(addr, &mut streams);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The server's allocator (jemalloc) rounds a session's box up to its size class: past
    /// 640 bytes it takes 768, 13 MB more at 100 000 clients.
    #[test]
    fn a_session_stays_in_a_640_byte_allocation() {
        assert!(std::mem::size_of::<super::Session>() <= 640);
    }
}
