//! The server's front door: what every datagram meets before it reaches a session.
//!
//! Owns the checks in front of the room, in the order a datagram meets them: a forged
//! source (the server's own address), bans in force, the protocol version (and the refusal
//! every version can read), peer-mode and server-only frames, join cookies (the stateless
//! challenge that proves an address), and admission: the per-address cap, the cool-down
//! after a flood kick, the busy refusal while the server falls behind, names in use and the
//! probe of their holder, welcomes and refusals.
//!
//! It does not own what happens once a session exists (`sessions`), the room's messages
//! (`room`), or plain-text guests (`guests`).

use super::*;

impl Server {
    /// Processes one datagram that arrived from `from`. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if self.own_address.is_own(from) {
            return self.note_malformed(now, from, "forged with the server's own address");
        }
        if self.bans.is_banned(from.ip()) {
            // A banned address gets no service; its join gets a refusal so a person using
            // a real client learns why (the refusal is smaller than the padded join).
            if let Ok(Frame::ToServer(ToServer::Join { nonce, name, .. })) = Frame::decode(datagram)
            {
                self.refuse(now, from, nonce, name, RefuseReason::Banned);
            }
            return;
        }
        if wire::is_packed(datagram) {
            // Checked whole before any of it is acted on; then each frame as if it had come
            // alone (the checks above hold for all of them; checking decoded every frame,
            // so each is handled as decoded, not decoded again).
            match wire::unpack_decoded(datagram) {
                Ok(frames) => frames
                    .into_iter()
                    .for_each(|frame| self.handle_frame(now, from, frame)),
                Err(error) => self.note_malformed(now, from, &format!("packed: {error}")),
            }
            return;
        }
        if !wire::is_frame(datagram) {
            if self.config.guests {
                self.handle_guest_datagram(now, from, datagram);
            } else {
                self.note_malformed(now, from, "plain text, but guests are off (--guests)");
            }
            return;
        }
        match Frame::decode(datagram) {
            Ok(frame) => self.handle_frame(now, from, frame),
            Err(DecodeError::UnsupportedVersion { version }) => {
                // Tell a newer or older client why nothing works, in the refusal every
                // version can read; only joins are answered (never a server's frame, or two
                // servers of different versions could answer each other forever), and never
                // with more bytes than the join had.
                if let Some(nonce) = wire::any_version_join_nonce(datagram) {
                    let refusal = Frame::ToClient(ToClient::Refused {
                        nonce,
                        reason: RefuseReason::VersionUnsupported,
                    })
                    .to_bytes();
                    // A real join of any version has a name after the nonce, so it is at
                    // least as long as the refusal; a bare header and nonce (12 bytes) is a
                    // forgery and must not get 13 bytes back.
                    if refusal.len() <= datagram.len() {
                        self.push(from, refusal.into());
                    }
                }
                self.note_malformed(now, from, &format!("protocol version {version}"));
            }
            Err(error) => self.note_malformed(now, from, &error.to_string()),
        }
    }

    fn handle_frame(&mut self, now: Instant, from: SocketAddr, frame: Frame) {
        let frame = match frame {
            Frame::ToServer(frame) => frame,
            Frame::Peer(frame) => {
                // Peer mode needs no server: a peer frame here is a peer given the server's
                // address by mistake, or a forgery. Only a join is answered, with a refusal
                // the peer's join reads (13 bytes for 512: a forgery gains nothing), so the
                // person learns this is a server; nothing else, like a server-only frame.
                if let PeerFrame::Join { nonce, .. } = frame {
                    let reason = RefuseReason::IsAServer;
                    self.send_unsequenced(from, &PeerFrame::Refused { nonce, reason }.into());
                }
                let why = "a peer-mode frame (servers take no part)";
                return self.note_malformed(now, from, why);
            }
            Frame::ToClient(frame) => {
                // Never answered, not even with NotJoined: answering a server-bound frame is
                // how two servers, or one server fed a forgery of its own address, would loop.
                let why = format!("a server-only frame ({})", frame.name());
                return self.note_malformed(now, from, &why);
            }
        };
        if let ToServer::Join {
            nonce,
            cookie,
            history_epoch,
            history_seen,
            // What the session it had was no longer matters: what it showed of the
            // history says what it missed.
            previous_token: _,
            name,
        } = frame
        {
            if !self.cookies.is_valid(now, from, nonce, cookie) {
                // Prove the address first: answer with a cookie only its owner receives,
                // keeping no state (a storm of forged joins costs us no memory).
                let cookie = self.cookies.cookie(now, from, nonce);
                let challenge = ToClient::Challenge { nonce, cookie };
                return self.send_unsequenced(from, &challenge.into());
            }
            if self.refused_as_busy(from, nonce) {
                return;
            }
            let seen = Seen {
                epoch: history_epoch,
                seq: history_seen,
            };
            return self.handle_join(now, from, nonce, seen, name);
        }
        let token = frame.token().unwrap_or_default();
        let is_session = self
            .sessions
            .get(&from)
            .and_then(|s| s.streams.as_ref())
            .is_some_and(|streams| streams.token() == token);
        if is_session {
            return self.handle_session_frame(now, from, frame);
        }
        if let Some(farewell) = self.farewells.get_mut(&from)
            && farewell.streams.token() == token
        {
            // The session is over; only its acknowledgements still matter, to stop
            // repeating the farewell.
            if let Some(acks) = frame.acks() {
                farewell.streams.outbox.on_acks(now, acks);
            }
            if farewell.streams.outbox.is_empty() {
                self.farewells.remove(&from);
            } else {
                // The client is there but has not got the farewell (it was suspended, or
                // the farewell was lost): repeat it now rather than at the next timer.
                farewell.streams.outbox.expedite(now);
                let mut out = Outgoing {
                    transmits: &mut self.transmits,
                    timers: &mut self.timers,
                    stats: &mut self.stats,
                    later: &mut self.later,
                };
                if !out.retransmit_due(&mut farewell.streams, now, from) {
                    self.farewells.remove(&from);
                }
            }
            return;
        }
        // Unknown session: a client of a server that restarted, one we evicted, or a
        // forgery. The answer is tiny and repeats only what was sent, so it is safe to send
        // to an address that proved nothing; a Leave's answer lets the client stop.
        let left_recently = self.left.recall(from, now) == Some(&token);
        if matches!(frame, ToServer::Sequenced(_, Request::Leave)) && left_recently {
            self.send_unsequenced(from, &Frame::ToClient(ToClient::LeaveAck { token }));
        } else {
            self.send_unsequenced(from, &Frame::ToClient(ToClient::NotJoined { token }));
        }
    }

    /// Whether a join with a valid cookie must wait: the loop is falling behind and
    /// [`JOINS_PER_TURN`] joins were carried out since its last report. It is then refused
    /// as busy here, and the client asks again after
    /// [`BUSY_RETRY`](crate::proto::join::BUSY_RETRY), not at once. A repeated join of a live
    /// session (its welcome was lost) is cheap and never refused; any other join counts.
    fn refused_as_busy(&mut self, from: SocketAddr, nonce: u64) -> bool {
        let repeat = self
            .sessions
            .get(&from)
            .is_some_and(|s| s.streams.is_some() && s.nonce == nonce);
        if !repeat && self.lateness.is_behind() && self.joins_this_turn >= JOINS_PER_TURN {
            // Not logged: a storm would flood the log with one line per join.
            let busy = Frame::ToClient(ToClient::Refused {
                nonce,
                reason: RefuseReason::Busy,
            });
            self.send_unsequenced(from, &busy);
            return true;
        }
        self.joins_this_turn += 1;
        false
    }

    fn handle_join(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: u64,
        seen: Seen,
        name: String,
    ) {
        self.write_later_of(from);
        self.farewells.remove(&from);
        if let Some(session) = self.sessions.get(&from) {
            match &session.streams {
                Some(streams) if session.nonce == nonce => {
                    // The welcome was lost and the client asked again: answer, change
                    // nothing.
                    let welcome =
                        self.welcome(nonce, streams.token(), &session.name, session.heartbeat());
                    self.send_unsequenced(from, &welcome);
                    return;
                }
                Some(_) if names::key(&session.name) != names::key(&name) => {
                    // Someone else's session is live at this address and port: do not let
                    // a join (perhaps forged) end it.
                    return self.refuse(now, from, nonce, name, RefuseReason::AddressInUse);
                }
                // The same person's program restarted on the same port, or a guest starts
                // a real client: the old session is over.
                _ => {
                    self.remove_session(now, from, Removal::Replaced);
                }
            }
        }
        if self.cooling_down(now, from) {
            return self.refuse(now, from, nonce, name, RefuseReason::KickedRecently);
        }
        if names::validate(&name).is_err() {
            return self.refuse(now, from, nonce, name, RefuseReason::NameInvalid);
        }
        let name_key = names::key(&name);
        if let Some(&holder) = self.by_name.get(&name_key) {
            match self.check_holder(now, holder) {
                Holder::Live => {
                    return self.refuse(now, from, nonce, name, RefuseReason::NameTaken);
                }
                // The join gets no answer yet; the client repeats it until it does.
                Holder::Probing => return,
                Holder::Gone => {
                    self.remove_session(now, holder, Removal::TimedOut);
                }
            }
        }
        if self.sessions.len() >= self.config.max_clients {
            return self.refuse(now, from, nonce, name, RefuseReason::ServerFull);
        }
        if self.at_per_ip_cap(from) {
            return self.refuse(now, from, nonce, name, RefuseReason::TooManyFromAddress);
        }
        let token = token::random_u64();
        let heartbeat = self.config.heartbeat_for(self.sessions.len() + 1);
        let welcome = self.welcome(nonce, token, &name, heartbeat);
        self.send_unsequenced(from, &welcome);
        self.add_session(now, from, name, name_key, Some((token, nonce, heartbeat)));
        self.send_join_history(now, from, seen);
    }

    /// Whether the session at `holder`, whose name a join (with a valid cookie) asks for,
    /// is alive: heard from within [`PROBE_AFTER_SILENCE`], or answering a [`ToClient::Probe`]
    /// within [`PROBE_TIMEOUT`]. Only cookie-proven joins get here, and what is kept is
    /// kept on the holder's session, never for the joiner: a join repeated meanwhile
    /// finds the same probe.
    fn check_holder(&mut self, now: Instant, holder: SocketAddr) -> Holder {
        let Some(session) = self.sessions.get_mut(&holder) else {
            return Holder::Gone;
        };
        session.catch_up(now, &self.lateness);
        // A guest has no way to answer: its name is held until it times out.
        let Some(token) = session.streams.as_ref().map(|s| s.token()) else {
            return Holder::Live;
        };
        if now.saturating_duration_since(session.last_heard) <= PROBE_AFTER_SILENCE {
            return Holder::Live;
        }
        match &mut session.probe {
            Some(probe) if now >= probe.deadline => return Holder::Gone,
            Some(probe) if now.saturating_duration_since(probe.sent) < PROBE_REPEAT => {
                return Holder::Probing;
            }
            Some(probe) => probe.sent = now,
            None => {
                let deadline = now + PROBE_TIMEOUT;
                session.probe = Some(Probe {
                    deadline,
                    sent: now,
                });
                self.probes.push((deadline, holder));
            }
        }
        self.send_unsequenced(holder, &Frame::ToClient(ToClient::Probe { token }));
        Holder::Probing
    }

    pub(super) fn welcome(&self, nonce: u64, token: u64, name: &str, heartbeat: Duration) -> Frame {
        Frame::ToClient(ToClient::Welcome {
            nonce,
            token,
            heartbeat_ms: sessions::heartbeat_ms(heartbeat),
            flood: FloodLimit::terms(self.config.flood_limit),
            name: name.to_owned(),
        })
    }

    fn refuse(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: u64,
        name: String,
        reason: RefuseReason,
    ) {
        self.send_unsequenced(from, &Frame::ToClient(ToClient::Refused { nonce, reason }));
        // Anyone can make us refuse: the log says so a few times, then sums up.
        let banned_by = match reason {
            RefuseReason::Banned => self.bans.matching(from.ip()).map(|entry| entry.net),
            _ => None,
        };
        let key = banned_by.map_or(RefusalKey::Address(from.ip()), RefusalKey::Banned);
        if !self.refusal_log.admit(now, &key) {
            return;
        }
        self.events.push_back(ServerEvent::Refused {
            time_ms: self.clock.wall_ms(now),
            name: sanitize(&name).into_owned(),
            addr: from,
            reason,
        });
    }

    /// Whether `from` was kicked for flooding less than [`FLOOD_KICK_WINDOW`] ago.
    pub(super) fn cooling_down(&self, now: Instant, from: SocketAddr) -> bool {
        self.flood_kicked.recall(from, now).is_some()
    }

    /// Whether `from`'s IP address already has as many sessions as one address may.
    pub(super) fn at_per_ip_cap(&self, from: SocketAddr) -> bool {
        let Some(cap) = self.config.max_per_ip else {
            return false;
        };
        let ip = from.ip().to_canonical();
        // A scan, but only when someone joins, and bounded by max_clients.
        let count = self
            .sessions
            .keys()
            .filter(|addr| addr.ip().to_canonical() == ip)
            .take(cap)
            .count();
        count >= cap
    }
}
