//! The room: what members say and what everyone is shown.
//!
//! Owns broadcasting chat lines and notices to every session (named or guest), the roster (`/who`), private messages, actions (`/me`), renaming (`/nick`),
//! away and back (`/away`), and the flood limit on what a session says, with its delayed
//! notice of how many messages were dropped.
//!
//! It does not own sessions' streams and their end (`sessions`), joins (`front`), or how a
//! guest's datagram becomes a line (`guests`).

use super::*;

/// How much of the roster a named client is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listing {
    /// The roster at join: everyone, but in a room of more than
    /// [`ServerConfig::quiet_above`] people only the first that many, so a join costs the
    /// server and the newcomer the same however large the room.
    Join,
    /// `/list`, asked for on purpose (and flood-limited): everyone.
    Everyone,
}

impl Server {
    pub(super) fn handle_chat(&mut self, now: Instant, from: SocketAddr, text: &str) {
        if text.is_empty() || !self.admit_under_flood_limit(now, from) {
            return;
        }
        if let Some(name) = self.sessions.get(&from).map(|s| s.name.clone()) {
            self.broadcast_public(now, Some(from), &name, history::Kind::Chat, text);
        }
    }

    pub(super) fn admit_under_flood_limit(&mut self, now: Instant, from: SocketAddr) -> bool {
        let Some(session) = self.sessions.get_mut(&from) else {
            return false;
        };
        let stamp = session.stamp;
        match session.flood.admit(now, stamp) {
            Admission::Admitted => true,
            Admission::Dropped => false,
            Admission::DroppedNoticeAt(at) => {
                self.flood_notices_due.push((at, from));
                false
            }
        }
    }

    /// Sends the session at `to` who is online, as much as `listing` says: a named client
    /// the pages of the roster (`roster`), then, when they list only the first people of a
    /// large room, a notice saying so; a guest one line.
    pub(super) fn send_roster(&mut self, now: Instant, to: SocketAddr, listing: Listing) {
        let time_ms = self.clock.wall_ms(now);
        match self.sessions.get(&to).map(|s| s.kind) {
            Some(ClientKind::Named) => {
                let people = self.roster.len();
                let listed = match listing {
                    Listing::Join if people > self.config.quiet_above => {
                        self.config.quiet_above.min(usize::from(u16::MAX))
                    }
                    Listing::Join | Listing::Everyone => usize::MAX,
                };
                for page in self.roster.pages(time_ms, listed) {
                    self.send_sequenced(now, to, page);
                }
                if listed < people {
                    let words = text::roster_cut_short(listed, people);
                    self.send_notice_to(now, to, time_ms, &words);
                }
            }
            Some(ClientKind::Guest) => self.send_guest_roster(to, time_ms),
            None => {}
        }
    }

    /// `/msg`: delivers `text` to the client called `to` and echoes it to the sender, so
    /// both see it (and only they do). An unknown name gets the sender a notice.
    pub(super) fn handle_private(&mut self, now: Instant, from: SocketAddr, to: &str, text: &str) {
        if text.trim().is_empty() || !self.admit_under_flood_limit(now, from) {
            return;
        }
        let Some(sender) = self.sessions.get(&from).map(|s| s.name.clone()) else {
            return;
        };
        // An unknown name is already reported to the sender as a notice.
        let _ = self.send_private(now, &sender, Some(from), to, text);
    }

    /// Sends a private message from `sender` (at `from`, or the console when `None`).
    pub(super) fn send_private(
        &mut self,
        now: Instant,
        sender: &str,
        from: Option<SocketAddr>,
        to: &str,
        text: &str,
    ) -> Result<(), ServerError> {
        let time_ms = self.clock.wall_ms(now);
        let Some(recipient_addr) = self.address_of(to) else {
            if let Some(from) = from {
                let notice = format!(
                    "not delivered: no one called {} is online (see /list)",
                    sanitize(to)
                );
                self.send_notice_to(now, from, time_ms, &notice);
            }
            return Err(ServerError::NoSuchClient {
                name: to.to_owned(),
            });
        };
        let recipient = self.sessions[&recipient_addr].name.clone();
        let clean = sanitize(text);
        for piece in wire::split_text(&clean) {
            let frame = Frame::ToClient(ToClient::Sequenced(
                Envelope::default(),
                Delivery::PrivateMessage {
                    time_ms,
                    from: sender.to_owned(),
                    to: recipient.clone(),
                    text: piece.to_owned(),
                },
            ));
            let payload: Arc<[u8]> = frame.to_bytes().into();
            let mut recipients = vec![recipient_addr];
            if let Some(from) = from
                && from != recipient_addr
            {
                recipients.push(from);
            }
            for addr in recipients {
                match self.sessions.get(&addr).map(|s| s.kind) {
                    Some(ClientKind::Named) => self.send_sequenced(now, addr, payload.clone()),
                    Some(ClientKind::Guest) => {
                        let mut line = Vec::new();
                        let clock = self.clock_text.get(time_ms);
                        text::push_message_line(&mut line, clock, sender, piece);
                        line.extend_from_slice(b" (private)\n");
                        self.push(addr, line.into());
                    }
                    None => {}
                }
            }
            self.events.push_back(ServerEvent::Private {
                time_ms,
                from: sender.to_owned(),
                to: recipient.clone(),
                text: piece.to_owned(),
            });
        }
        Ok(())
    }

    /// `/me`: an action, broadcast as `* alice waves`.
    pub(super) fn handle_action(&mut self, now: Instant, from: SocketAddr, text: &str) {
        if text.trim().is_empty() || !self.admit_under_flood_limit(now, from) {
            return;
        }
        let Some(name) = self.sessions.get(&from).map(|s| s.name.clone()) else {
            return;
        };
        self.broadcast_public(now, Some(from), &name, history::Kind::Action, text);
    }

    /// `/nick`: renames the client if the new name is valid and free, and tells everyone.
    pub(super) fn handle_nick(&mut self, now: Instant, from: SocketAddr, new_name: String) {
        let time_ms = self.clock.wall_ms(now);
        let Some(old_name) = self.sessions.get(&from).map(|s| s.name.clone()) else {
            return;
        };
        let taken = |key: &str| self.by_name.get(key).is_some_and(|addr| *addr != from);
        let new_key = match names::check_rename(&new_name, taken) {
            Ok(key) => key,
            Err(error) => {
                let refusal = text::rename_refusal(&new_name, &error);
                return self.send_notice_to(now, from, time_ms, &refusal);
            }
        };
        if new_name == old_name {
            return;
        }
        // A rename is announced to everyone: it costs a flood token like a message.
        if !self.admit_under_flood_limit(now, from) {
            return;
        }
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        let old_key = std::mem::replace(&mut session.name_key, new_key.clone());
        session.name = new_name.clone();
        let kind = session.kind;
        self.roster.remove(from, &old_name);
        self.roster.set(
            from,
            &new_name,
            session.away.as_deref(),
            kind == ClientKind::Guest,
        );
        self.by_name.remove(&old_key);
        self.by_name.insert(new_key, from);
        let renamed = Frame::ToClient(ToClient::Sequenced(
            Envelope::default(),
            Delivery::Renamed {
                name: new_name.clone(),
            },
        ));
        match kind {
            ClientKind::Named => self.send_sequenced(now, from, renamed.to_bytes().into()),
            ClientKind::Guest => {
                let text = format!("you are now known as {}", sanitize(&new_name));
                self.send_notice_to(now, from, time_ms, &text);
            }
        }
        self.announce(
            now,
            from,
            &old_name,
            PresenceChange::Renamed {
                to: new_name.clone(),
            },
        );
        self.events.push_back(ServerEvent::Renamed {
            time_ms,
            from: old_name,
            to: new_name,
            addr: from,
        });
    }

    /// `/away REASON` (or `/back`: an empty reason): shown in `/list`, announced once.
    pub(super) fn handle_away(&mut self, now: Instant, from: SocketAddr, reason: &str) {
        let new = text::away_reason(reason);
        if self.sessions.get(&from).is_none_or(|s| s.away == new) {
            return;
        }
        // Each change is announced to everyone: it costs a flood token like a message.
        if !self.admit_under_flood_limit(now, from) {
            return;
        }
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        let name = session.name.clone();
        session.away = new.clone();
        let guest = session.kind == ClientKind::Guest;
        self.roster.set(from, &name, new.as_deref(), guest);
        let change = match &new {
            Some(reason) => PresenceChange::Away {
                reason: reason.clone(),
            },
            None => PresenceChange::Back,
        };
        self.announce(now, from, &name, change);
        self.events.push_back(ServerEvent::Away {
            time_ms: self.clock.wall_ms(now),
            name,
            reason: new,
        });
    }

    pub(super) fn send_flood_notice(&mut self, now: Instant, addr: SocketAddr) {
        let Some(session) = self.sessions.get_mut(&addr) else {
            return;
        };
        let Some(dropped) = session.flood.take_notice(now) else {
            return;
        };
        session
            .flood_warnings
            .retain(|at| now.saturating_duration_since(*at) < FLOOD_KICK_WINDOW);
        session.flood_warnings.push(now);
        let warnings = session.flood_warnings.len();
        let name = session.name.clone();
        let limit = self.config.flood_limit.map_or(String::new(), |l| {
            format!(" (limit: {}/s, bursts of {})", l.rate_per_sec, l.burst)
        });
        let plural = if dropped == 1 { "" } else { "s" };
        let text = format!("{dropped} message{plural} not sent: you are sending too fast{limit}");
        let time_ms = self.clock.wall_ms(now);
        self.send_notice_to(now, addr, time_ms, &text);
        self.events.push_back(ServerEvent::FloodDropped {
            time_ms,
            name,
            addr,
            dropped,
        });
        if self
            .config
            .flood_kick
            .is_some_and(|kick_after| warnings >= kick_after as usize)
        {
            self.remove_session(now, addr, Removal::FloodKicked);
            // Past the memory's bound, a kicked flooder may come back at once (and is
            // kicked again by the same rule).
            self.flood_kicked.remember(addr, (), now);
        }
    }

    /// Sends a public line — chat, `/me` action or console broadcast (`kind`, also the
    /// history's) — from `from` to everyone, the sender included (that echo is how
    /// a client knows its message went out, with the server's time on it). Text from the
    /// network is neutralized first, so guests' terminals and the log are safe too.
    /// The sender (`sender`, when a client) gets its copy first: the echo is what a sender
    /// waits for before its next lines (a client's window of unacknowledged messages), and
    /// everyone else's copies can go out meanwhile.
    pub(super) fn broadcast_public(
        &mut self,
        now: Instant,
        sender: Option<SocketAddr>,
        from: &str,
        kind: history::Kind,
        text: &str,
    ) {
        let time_ms = self.clock.wall_ms(now);
        let clean = sanitize(text);
        let action = kind == history::Kind::Action;
        for piece in wire::split_text(&clean) {
            // Numbered before it goes out: every copy carries the line's place in the
            // history, which is how a client that comes back asks for what it missed.
            let seq = self.record_line(time_ms, from, kind, piece);
            let frame = || {
                let (from, text) = (from.to_owned(), piece.to_owned());
                let delivery = if action {
                    Delivery::ActionMessage {
                        seq,
                        time_ms,
                        from,
                        text,
                    }
                } else {
                    Delivery::Message {
                        seq,
                        time_ms,
                        from,
                        text,
                    }
                };
                Frame::ToClient(ToClient::Sequenced(Envelope::default(), delivery))
            };
            let guest_text = |clock: &mut ClockText| {
                if action {
                    guest_line(text::action_line(clock.get(time_ms), from, piece))
                } else {
                    guest_message_line(clock.get(time_ms), from, piece)
                }
            };
            self.broadcast(now, sender, frame, guest_text);
            let (from, text) = (from.to_owned(), piece.to_owned());
            self.events.push_back(if action {
                ServerEvent::Action {
                    time_ms,
                    from,
                    text,
                }
            } else {
                ServerEvent::Chat {
                    time_ms,
                    from,
                    text,
                }
            });
        }
    }

    /// Queues one copy of the frame for every named client and one copy of the plain-text
    /// line for every guest, `first`'s copy first, each built and encoded only once (and only
    /// if someone of that kind is there): named clients share one payload, and only their
    /// envelopes differ. The loop over recipients allocates nothing; it is the server's
    /// innermost loop.
    pub(super) fn broadcast(
        &mut self,
        now: Instant,
        first: Option<SocketAddr>,
        frame: impl FnOnce() -> Frame,
        guest_text: impl FnOnce(&mut ClockText) -> Arc<[u8]>,
    ) {
        let mut frame = Some(frame);
        let mut encoded: Option<Arc<[u8]>> = None;
        let mut guest_text = Some(guest_text);
        let mut guest_encoded: Option<Arc<[u8]>> = None;
        let mut out = Outgoing {
            transmits: &mut self.transmits,
            timers: &mut self.timers,
            stats: &mut self.stats,
            later: &mut self.later,
        };
        let clock = &mut self.clock_text;
        let mut deliver = |addr: SocketAddr, session: &mut Session| match session.streams.as_mut() {
            Some(streams) => {
                let payload = encoded
                    .get_or_insert_with(|| {
                        let make = frame.take().expect("taken only once");
                        make().to_bytes().into()
                    })
                    .clone();
                out.send(streams, now, addr, payload);
            }
            None => {
                let payload = guest_encoded
                    .get_or_insert_with(|| {
                        let make = guest_text.take().expect("taken only once");
                        make(clock)
                    })
                    .clone();
                out.stats.datagrams_sent += 1;
                out.transmits.push_back(Transmit {
                    destination: addr,
                    payload,
                    envelope: None,
                });
            }
        };
        let first = first.filter(|addr| match self.sessions.get_mut(addr) {
            Some(session) => {
                deliver(*addr, session);
                true
            }
            None => false,
        });
        for (addr, session) in &mut self.sessions {
            if Some(*addr) != first {
                deliver(*addr, session);
            }
        }
    }

    pub(super) fn send_notice_to(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        time_ms: i64,
        text: &str,
    ) {
        match self.sessions.get(&addr).map(|s| s.kind) {
            Some(ClientKind::Named) => {
                let notice = Frame::ToClient(ToClient::Sequenced(
                    Envelope::default(),
                    Delivery::Notice {
                        time_ms,
                        text: text.to_owned(),
                    },
                ));
                self.send_sequenced(now, addr, notice.to_bytes().into());
            }
            Some(ClientKind::Guest) => {
                let line = self.guest_notice(time_ms, text);
                self.push(addr, line)
            }
            None => {}
        }
    }
}
