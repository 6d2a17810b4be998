//! Links: the pair of reliable streams between us and each other member.
//!
//! Owns what travels on a pair's streams ([`PeerItem`]) and each member's [`Link`] (tokens,
//! send and receive windows, the sender's flood terms and gate), the hello exchange that
//! opens a link only once the other side proved its address, carrying out items in order,
//! the flood limit on what a member says, pacing what we send to the strictest announced
//! limit, acknowledgements when due, retransmission, heartbeats and the silence that gets a
//! member evicted.
//!
//! It does not own who is in the room and how news of it spreads (`membership`) or joins
//! (`join`).

use super::*;
use crate::proto::chat::ChatEvent;
use crate::proto::paging::HistoryRequest;

/// Whether the item is a message the user typed (what "undelivered" counts).
fn is_message(item: &PeerItem) -> bool {
    matches!(
        item,
        PeerItem::Chat { .. } | PeerItem::Private { .. } | PeerItem::Action { .. }
    )
}

/// The two streams between us and one member, and what opens them.
#[derive(Debug)]
pub(super) struct Link {
    /// The secret the member must put in every frame it sends us.
    pub(super) my_token: u64,
    /// The secret we must put in every frame we send it, once it has told us (the
    /// stream's token from then on: see [`Link::learn_token`]).
    pub(super) their_token: Option<u64>,
    /// Whether the member proved it receives at its address (it knows `my_token`, which
    /// only ever went there). Nothing but hellos is sent before.
    pub(super) proven: bool,
    /// When to say hello again while the streams are not open.
    pub(super) next_hello: Instant,
    pub(super) hello_wait: Duration,
    /// When to probe it again once it has gone quiet (see `Peer::member_timers`).
    pub(super) next_probe: Instant,
    /// Items waiting for the streams to open.
    pub(super) pending: VecDeque<PeerItem>,
    /// The pair's streams, open once it is proven and we know its token.
    pub(super) stream: Stream<PeerItem>,
    /// When the member last proved it is alive (or when we learned of it).
    pub(super) last_heard: Instant,
    /// The limit on its messages (counted by its stamps, against the clock it told us), and
    /// what it dropped since the member was last told.
    pub(super) flood: FloodWatch,
    /// The limit it applies to ours, once its join, welcome or hello said it.
    pub(super) their_terms: Option<FloodTerms>,
}

impl Link {
    pub(super) fn new(now: Instant, flood_limit: Option<FloodLimit>, max_lag: Duration) -> Link {
        Link {
            my_token: token::random_u64(),
            their_token: None,
            proven: false,
            next_hello: now,
            hello_wait: HELLO_RETRY,
            next_probe: now,
            pending: VecDeque::new(),
            stream: Stream::new(0, now, INBOX_LIMIT),
            last_heard: now,
            flood: FloodWatch::new(flood_limit.map(|limit| FloodGate::new(limit, now, max_lag))),
            their_terms: None,
        }
    }

    /// Whether both streams are open: we may send it anything.
    pub(super) fn is_open(&self) -> bool {
        self.proven && self.their_token.is_some()
    }

    /// What its join, welcome or hello said: its clock (against which its stamps are
    /// read) and its limit on what we send it.
    pub(super) fn learn_terms(&mut self, now: Instant, clock_ms: u64, terms: FloodTerms) {
        self.flood.sender_clock(now, clock_ms);
        self.their_terms = Some(terms);
    }

    /// The member told us the token to put in our frames.
    pub(super) fn learn_token(&mut self, token: u64) {
        self.their_token = Some(token);
        self.stream.set_token(token);
    }

    /// How many typed messages to this member are not confirmed yet.
    pub(super) fn unconfirmed_messages(&self) -> usize {
        self.pending.iter().filter(|item| is_message(item)).count()
            + self
                .stream
                .outbox
                .unacked()
                .filter(|item| is_message(item))
                .count()
    }
}

impl Peer {
    /// A frame of a pair's streams, from the member at `from` with our token.
    pub(super) fn on_link_frame(&mut self, now: Instant, from: SocketAddr, frame: PeerFrame) {
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        let link = &mut member.link;
        link.last_heard = now;
        if !link.proven {
            // It knows our token, which only ever went to its address: it is really there.
            link.proven = true;
            self.opened(now, from);
        }
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        let link = &mut member.link;
        if link.their_token.is_none() {
            // Its hello with its token was lost: ask again at once, or we cannot answer.
            link.next_hello = now;
        }
        if let Some(acks) = frame.acks() {
            link.stream.outbox.on_acks(now, acks);
        }
        if let PeerFrame::NotMember { reason, .. } = frame {
            return self.dropped_by(now, from, reason);
        }
        if let PeerFrame::Sequenced(envelope, item) = frame {
            link.stream.inbox.insert(now, envelope.seq, item);
        }
        // Items are handled in the order the member sent them, each once.
        while let Some(ready) = self
            .members
            .get_mut(&from)
            .and_then(|m| m.link.stream.inbox.pop_ready())
        {
            match ready {
                Ready::Item(item) => self.on_item(now, from, item),
                // Members never skip (a member that far behind is evicted instead).
                Ready::Skipped(_) => {}
            }
        }
        self.send_ack_if_due(now, from);
    }

    /// What our hellos say besides the pair's tokens: who we are, our clock, our limit.
    fn hello_terms(&self, now: Instant) -> (u64, u64, FloodTerms) {
        let terms = FloodLimit::terms(self.config.flood_limit);
        (self.id, self.clock.since_start_ms(now), terms)
    }

    /// Keeps our pace to the strictest limit the members announced (our own until one
    /// has): every member's gate must let through what we send everyone.
    pub(super) fn update_pace(&mut self, now: Instant) {
        let mut strictest: Option<FloodLimit> = None;
        let mut any_known = false;
        for member in self.members.values().filter(|m| !m.banned) {
            let Some(terms) = member.link.their_terms else {
                continue;
            };
            any_known = true;
            if let Some(limit) = FloodLimit::from_terms(terms) {
                strictest = Some(match strictest {
                    None => limit,
                    Some(known) => FloodLimit {
                        rate_per_sec: known.rate_per_sec.min(limit.rate_per_sec),
                        burst: known.burst.min(limit.burst),
                    },
                });
            }
        }
        if any_known && strictest != self.typed.limit() {
            self.typed.set_limit(now, strictest);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_hello(
        &mut self,
        now: Instant,
        from: SocketAddr,
        from_id: u64,
        to_id: u64,
        token: u64,
        echo: u64,
        (clock_ms, flood): (u64, FloodTerms),
    ) {
        if to_id != self.id {
            return;
        }
        let terms = self.hello_terms(now);
        // Only members the room told us about: a hello from anyone else is ignored (it
        // may come before the news of its join; it is repeated).
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        if member.record.id != from_id || member.banned {
            return;
        }
        let link = &mut member.link;
        let echoed = echo == link.my_token;
        match link.their_token {
            None => link.learn_token(token),
            Some(known) if known != token => {
                // A token never changes within an incarnation: believe a new one only
                // with the proof that it comes from the member.
                if !echoed {
                    return;
                }
                link.learn_token(token);
            }
            Some(_) => {}
        }
        let was_open = link.is_open();
        if echoed || link.their_token == Some(token) {
            // From the member (it knows our token, or holds the one it gave us): believe
            // its clock and limit.
            link.learn_terms(now, clock_ms, flood);
        }
        if echoed {
            link.proven = true;
            link.last_heard = now;
            if was_open {
                // It still says hello, so it lacks the proof that we are at our address:
                // any frame with its token gives it. (An acknowledgement never gets an
                // answer, so this cannot ping-pong either.)
                self.send_ack_now(now, from);
            }
        } else {
            // It does not know our token yet: tell it, echoing its own. (A hello that
            // echoes ours never gets an answer, so two hellos cannot ping-pong.)
            let mut answer = hello_frame(terms, from_id, link);
            if let Frame::Peer(PeerFrame::Hello { echo, .. }) = &mut answer {
                *echo = token;
            }
            self.send_unsequenced(from, &answer);
        }
        self.update_pace(now);
        if !was_open {
            self.opened(now, from);
        }
    }

    /// Called when a pair's streams may have just opened: sends what waited for it.
    fn opened(&mut self, now: Instant, addr: SocketAddr) {
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        if !member.link.is_open() {
            return;
        }
        let waiting: Vec<PeerItem> = member.link.pending.drain(..).collect();
        if waiting.is_empty() {
            // Whatever carries its token proves to it that we are at our address: do not
            // keep it waiting for our next heartbeat.
            self.send_ack_now(now, addr);
        }
        for item in waiting {
            self.send_item(now, addr, item);
        }
    }

    /// Carries out one item from the member at `from`, in its turn.
    fn on_item(&mut self, now: Instant, from: SocketAddr, item: PeerItem) {
        match item {
            PeerItem::Chat {
                time_ms,
                sent_ms,
                text,
            } => {
                if let Some(name) = self.admit_message(now, from, sent_ms, &text) {
                    self.show_public(time_ms, name, Kind::Chat, &text, false);
                }
            }
            PeerItem::Private {
                time_ms,
                sent_ms,
                text,
            } => {
                if let Some(name) = self.admit_message(now, from, sent_ms, &text) {
                    self.events.push_back(PeerEvent::Chat(ChatEvent::Private {
                        time_ms,
                        from: name,
                        to: self.name.clone(),
                        text: text::sanitize(&text).into_owned(),
                        own: false,
                    }));
                }
            }
            PeerItem::Members { last, members } => {
                for record in members {
                    self.learn(now, from, record, false);
                }
                if last
                    && let State::Syncing { contact } = self.state
                    && contact == from
                {
                    self.synced(now, from);
                }
            }
            PeerItem::Announce { member } => self.learn(now, from, member, true),
            PeerItem::Gone { id, reason } => self.hear_gone(now, from, id, reason),
            PeerItem::Leave => {
                // Say we got it before forgetting the pair, so it can stop repeating.
                self.send_ack_now(now, from);
                self.remove_member(now, from, GoneReason::Left, true);
            }
            PeerItem::Action {
                time_ms,
                sent_ms,
                text,
            } => {
                if let Some(name) = self.admit_message(now, from, sent_ms, &text) {
                    self.show_public(time_ms, name, Kind::Action, &text, false);
                }
            }
            // Counted by the flood limit like a message, as the server counts them.
            PeerItem::Nick { sent_ms, name } => {
                if self.admit_stamped(now, from, sent_ms).is_some() {
                    self.on_rename(now, from, name);
                }
            }
            PeerItem::Away { sent_ms, reason } => {
                if self.admit_stamped(now, from, sent_ms).is_some() {
                    self.on_away(now, from, &reason);
                }
            }
            // Not flood-limited (as with a server): only what we asked for is taken, and
            // what we send is bounded by the member's queue.
            PeerItem::HistoryLine { line } => self.on_history_line(from, line),
            PeerItem::HistoryEnd { epoch, earlier, .. } => {
                self.on_history_end(now, from, epoch, earlier)
            }
            PeerItem::HistoryRequest {
                epoch,
                before,
                count,
            } => self.answer_history(now, from, HistoryRequest::new(epoch, before, count)),
            PeerItem::Flooded { dropped } => {
                if let Some(member) = self.members.get(&from) {
                    let by = member.record.name.clone();
                    let time_ms = self.clock.wall_ms(now);
                    self.events.push_back(PeerEvent::FloodWarned {
                        time_ms,
                        by,
                        dropped,
                    });
                }
            }
        }
    }

    /// Whether a message from the member at `from`, stamped `sent_ms` on its clock, is
    /// within its flood limit; its name if so. Dropped ones are counted, and the sender told
    /// after [`FLOOD_NOTICE_DELAY`](crate::proto::flood::FLOOD_NOTICE_DELAY).
    fn admit_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sent_ms: u64,
        text: &str,
    ) -> Option<String> {
        if text.is_empty() {
            return None;
        }
        self.admit_stamped(now, from, sent_ms)
    }

    /// Whether what the member at `from` said, stamped `sent_ms` on its clock, is within
    /// its flood limit; its name if so. Dropped ones are counted, and the sender told after
    /// [`FLOOD_NOTICE_DELAY`](crate::proto::flood::FLOOD_NOTICE_DELAY).
    fn admit_stamped(&mut self, now: Instant, from: SocketAddr, sent_ms: u64) -> Option<String> {
        let member = self.members.get_mut(&from)?;
        let admitted = member.link.flood.admit(now, Some(sent_ms)).admitted();
        admitted.then(|| member.record.name.clone())
    }

    pub(super) fn member_timers(&mut self, now: Instant, addr: SocketAddr) {
        let terms = self.hello_terms(now);
        let timeout = self.config.timeout;
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        if let Some((when, reason)) = member.doomed
            && now >= when
        {
            return self.remove_member(now, addr, reason, false);
        }
        if member.banned {
            // Neither talked to nor listened to; it goes when the others say it went.
            return;
        }
        if now.saturating_duration_since(member.link.last_heard) >= timeout {
            return self.remove_member(now, addr, GoneReason::TimedOut, true);
        }
        let link = &mut member.link;
        if !link.is_open() && now >= link.next_hello {
            self.say_hello(now, addr);
        } else if link.is_open() && now >= probe_at(link, timeout) {
            // Quiet for half the timeout: its heartbeats may be getting lost. A hello on an
            // open pair asks for an acknowledgement at once, so a few round trips decide
            // before the timeout does; a member is not evicted for two unlucky datagrams.
            link.next_probe = now + timeout / 10;
            let hello = hello_frame(terms, member.record.id, link);
            self.send_unsequenced(addr, &hello);
        }
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        let link = &mut member.link;
        while let Some(due) = link.stream.poll_due(now) {
            match due {
                Resend::Send { envelope, item } => {
                    self.stats.retransmissions += 1;
                    self.stats.datagrams_sent += 1;
                    self.transmits.push_back((addr, item.to_bytes(&envelope)));
                }
                Resend::GaveUp { .. } => {
                    // Unacknowledged through every retry: it is gone, whatever it last said.
                    return self.remove_member(now, addr, GoneReason::TimedOut, true);
                }
            }
        }
        if let Some(dropped) = link.flood.take_notice(now) {
            let from = member.record.name.clone();
            let time_ms = self.clock.wall_ms(now);
            self.events.push_back(PeerEvent::FloodDropped {
                time_ms,
                from,
                dropped,
            });
            self.send_item(now, addr, PeerItem::Flooded { dropped });
        }
    }

    /// After the timers and what the user's queue released ([`Peer::member_timers`]): our
    /// acknowledgements to the member at `addr` if they are due, or a heartbeat, unless a
    /// frame of ours already carried them.
    pub(super) fn member_acks(&mut self, now: Instant, addr: SocketAddr) {
        let heartbeat = self.config.heartbeat_interval();
        if self.members.get(&addr).is_none_or(|member| member.banned) {
            return;
        }
        self.send_ack_if_due(now, addr);
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        let link = &mut member.link;
        if link.is_open() && now >= link.stream.last_sent() + heartbeat {
            // Nothing else went its way for a while: prove we are alive.
            self.send_ack_now(now, addr);
        }
    }

    pub(super) fn member_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Joining(attempt) => Some(attempt.next_deadline(self.contacts.len())),
            State::Closed => None,
            State::Syncing { .. } | State::InRoom | State::Leaving { .. } => {
                let timeout = self.config.timeout;
                let heartbeat = self.config.heartbeat_interval();
                let mut next: Option<Instant> = None;
                let mut consider = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
                for member in self.members.values() {
                    if let Some((when, _)) = member.doomed {
                        consider(when);
                    }
                    if member.banned {
                        continue;
                    }
                    let link = &member.link;
                    consider(link.last_heard + timeout);
                    if link.is_open() {
                        consider(link.stream.last_sent() + heartbeat);
                        consider(probe_at(link, timeout));
                        if let Some(due) = link.stream.next_deadline() {
                            consider(due);
                        }
                    } else {
                        consider(link.next_hello);
                    }
                    if let Some(at) = link.flood.notice_deadline() {
                        consider(at);
                    }
                }
                if let State::Leaving { deadline } = self.state {
                    consider(deadline);
                }
                if let Some(oldest) = self.tombstones.front() {
                    consider(oldest.at + TOMBSTONE_TTL);
                }
                next
            }
        }
    }

    /// Sends what we typed to every member, each in its own stream.
    pub(super) fn send_to_everyone(&mut self, now: Instant, item: PeerItem) {
        let addrs: Vec<SocketAddr> = self.members.keys().copied().collect();
        for addr in addrs {
            self.send_message(now, addr, item.clone());
        }
    }

    /// Sends a typed message to one member, unless it is banned or hopelessly behind (then
    /// it is reported undelivered).
    pub(super) fn send_message(&mut self, now: Instant, addr: SocketAddr, item: PeerItem) {
        let Some(member) = self.members.get(&addr) else {
            return;
        };
        if member.banned {
            return;
        }
        if member.link.pending.len() + member.link.stream.outbox.len() >= MAX_UNACKED {
            self.events.push_back(PeerEvent::Undelivered {
                to: member.record.name.clone(),
                count: 1,
                why: "it is too far behind",
            });
            return;
        }
        self.send_item(now, addr, item);
    }

    /// Sends a sequenced item to the member at `addr` if the pair's streams are open, or
    /// keeps it until they are. Nothing goes to a banned member.
    pub(super) fn send_item(&mut self, now: Instant, addr: SocketAddr, item: PeerItem) {
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        if member.banned {
            return;
        }
        let link = &mut member.link;
        if !link.is_open() {
            link.pending.push_back(item);
            return;
        }
        // Past the cap on items in flight it waits, and goes when the link's timers run.
        let Some(envelope) = link.stream.send(now, &item) else {
            return;
        };
        let datagram = item.to_bytes(&envelope);
        self.stats.datagrams_sent += 1;
        self.transmits.push_back((addr, datagram));
    }

    pub(super) fn say_hello(&mut self, now: Instant, addr: SocketAddr) {
        let terms = self.hello_terms(now);
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        if member.banned {
            return;
        }
        let link = &mut member.link;
        let hello = hello_frame(terms, member.record.id, link);
        link.next_hello = now + link.hello_wait;
        // Many tries fit in a timeout, however short it is set: a member we fail to reach
        // in time is evicted (by us).
        let longest = HELLO_MAX_RETRY.min(self.config.timeout / 8);
        link.hello_wait = (link.hello_wait * 2).min(longest);
        self.send_unsequenced(addr, &hello);
    }

    fn send_ack_if_due(&mut self, now: Instant, addr: SocketAddr) {
        self.send_ack(now, addr, false);
    }

    /// Sends our acknowledgements to the member at `addr` at once (if we know its token).
    pub(super) fn send_ack_now(&mut self, now: Instant, addr: SocketAddr) {
        self.send_ack(now, addr, true);
    }

    /// Sends our acknowledgements to the member at `addr` if one is due (or whether or not
    /// one is, `always`), once we know its token.
    fn send_ack(&mut self, now: Instant, addr: SocketAddr, always: bool) {
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        let link = &mut member.link;
        let Some(token) = link.their_token else {
            return;
        };
        let acks = if always {
            link.stream.take_ack(now)
        } else {
            let Some(acks) = link.stream.take_ack_if_due(now) else {
                return;
            };
            acks
        };
        let ack = Frame::Peer(PeerFrame::Ack { token, acks });
        self.stats.datagrams_sent += 1;
        self.transmits.push_back((addr, ack.to_bytes()));
    }
}

/// When to probe a quiet member: half a timeout after we last heard from it, then every
/// tenth of a timeout.
/// A hello on `link` to the member `to_id`, with our `(id, clock, limit)`.
fn hello_frame(
    (from_id, clock_ms, flood): (u64, u64, FloodTerms),
    to_id: u64,
    link: &Link,
) -> Frame {
    Frame::Peer(PeerFrame::Hello {
        from_id,
        to_id,
        token: link.my_token,
        echo: link.their_token.unwrap_or_default(),
        clock_ms,
        flood,
    })
}

fn probe_at(link: &Link, timeout: Duration) -> Instant {
    (link.last_heard + timeout / 2).max(link.next_probe)
}
