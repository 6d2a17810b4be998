//! Membership: who is in the room, as every peer keeps it, and news of it by gossip.
//!
//! Owns each [`Member`] record, the member list sent to a newcomer, learning of joins and
//! passing the news on once, departures (left, timed out, banned) and passing them on,
//! removing and forgetting members, tombstones of departed incarnations so late news
//! cannot bring them back, and the answer to a departed member's late frames.
//!
//! It does not own the streams to each member (`links`) or how a newcomer gets in
//! (`join`).

use super::*;

/// One other member of the room.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) record: MemberRecord,
    /// `record.name` folded, for name uniqueness.
    pub(super) key: String,
    /// Our ban list bans its address: we neither send to it nor listen to it.
    pub(super) banned: bool,
    /// The nonce of the join that let it in through us, to answer a repeated join.
    pub(super) join_nonce: Option<u64>,
    /// Another member said it is gone: it is removed then, unless its own leave comes first.
    pub(super) doomed: Option<(Instant, GoneReason)>,
    /// The name it had before its last rename: taken back if another member's claim on the
    /// new one wins (see `room`).
    pub(super) previous_name: Option<String>,
    /// Why it is away (`/away`), or `None` while it is here (or we have not been told: the
    /// member list does not carry it).
    pub(super) away: Option<String>,
    /// The epoch of its history, as its last end of history said (0: not told yet).
    pub(super) history_epoch: u64,
    /// The first number of our stream to it after the last history we sent it (a replay or
    /// an answer): until everything before it is acknowledged, that answer is outstanding.
    pub(super) history_answer: Option<u32>,
    pub(super) link: Link,
}

/// A departed incarnation, remembered so that late news cannot bring it back and its late
/// frames get an answer.
#[derive(Debug)]
pub(super) struct Tombstone {
    pub(super) id: u64,
    pub(super) addr: SocketAddr,
    pub(super) reason: GoneReason,
    pub(super) at: Instant,
    pub(super) my_token: u64,
    pub(super) their_token: Option<u64>,
    /// What we had received from it, to acknowledge a repeated leave.
    pub(super) acks: Acks,
    pub(super) last_answer: Option<Instant>,
}

impl Peer {
    fn member_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .members
            .values()
            .map(|m| m.record.name.clone())
            .collect();
        names.push(self.name.clone());
        names.sort_by_cached_key(|name| names::fold(name));
        names
    }

    /// Answers a frame with a token we do not know from this address: a member that left
    /// or was evicted, still talking. A leave repeated because our acknowledgement was lost
    /// gets it again; anything else is told the sender is not a member for us. Nothing at
    /// all for frames no member of ours could have sent.
    pub(super) fn answer_departed(
        &mut self,
        now: Instant,
        from: SocketAddr,
        token: u64,
        frame: &PeerFrame,
    ) {
        if matches!(frame, PeerFrame::NotMember { .. }) {
            // Two peers that dropped each other must not tell each other so forever.
            return;
        }
        let Some(tomb) = self
            .tombstones
            .iter_mut()
            .find(|t| t.addr == from && t.my_token == token)
        else {
            return;
        };
        let Some(their_token) = tomb.their_token else {
            return;
        };
        if tomb.reason == GoneReason::Left {
            if frame.envelope().is_some() {
                let ack = Frame::Peer(PeerFrame::Ack {
                    token: their_token,
                    acks: tomb.acks,
                });
                self.send_unsequenced(from, &ack);
            }
            return;
        }
        if tomb
            .last_answer
            .is_some_and(|at| now.saturating_duration_since(at) < NOT_MEMBER_INTERVAL)
        {
            return;
        }
        tomb.last_answer = Some(now);
        let answer = Frame::Peer(PeerFrame::NotMember {
            token: their_token,
            reason: tomb.reason,
        });
        self.send_unsequenced(from, &answer);
    }

    /// The member list for the newcomer at `newcomer`, in parts that each fit in a
    /// datagram: everyone but us (the welcome describes us) and the newcomer, and not the
    /// members already on their way out.
    pub(super) fn member_list_parts(&self, newcomer: SocketAddr) -> Vec<PeerItem> {
        const FIXED: usize = wire::HEADER_LEN + wire::ENVELOPE_LEN + 1;
        let mut parts = Vec::new();
        let mut part: Vec<MemberRecord> = Vec::new();
        let mut len = FIXED;
        for member in self.members.values() {
            if member.record.addr == newcomer || member.doomed.is_some() {
                continue;
            }
            let record_len = member.record.encoded_len();
            if len + record_len > MAX_DATAGRAM {
                parts.push(PeerItem::Members {
                    last: false,
                    members: std::mem::take(&mut part),
                });
                len = FIXED;
            }
            len += record_len;
            part.push(member.record.clone());
        }
        parts.push(PeerItem::Members {
            last: true,
            members: part,
        });
        parts
    }

    /// The member list from our contact is complete: we are in the room.
    pub(super) fn synced(&mut self, now: Instant, contact: SocketAddr) {
        self.state = State::InRoom;
        let through = self
            .members
            .get(&contact)
            .map(|m| (m.record.name.clone(), contact));
        self.events.push_back(PeerEvent::Joined {
            name: self.name.clone(),
            through,
            members: self.member_names(),
        });
        self.release(now);
    }

    /// Learns of a member from the member at `via`: from the member list (`news` false) or
    /// the news of a join (`news` true, shown and passed on).
    pub(super) fn learn(
        &mut self,
        now: Instant,
        via: SocketAddr,
        mut record: MemberRecord,
        news: bool,
    ) {
        record.addr = canonical(record.addr);
        if record.id == self.id
            || names::validate(&record.name).is_err()
            || !plausible_address(record.addr)
            || self.own_address.is_own(record.addr)
            || self.tombstones.iter().any(|t| t.id == record.id)
            || self.members.values().any(|m| m.record.id == record.id)
        {
            return;
        }
        if let Some(old) = self.members.get(&record.addr) {
            // Two incarnations at one address: the later program owns the port now.
            if old.record.joined_ms > record.joined_ms {
                return;
            }
            self.remove_member(now, record.addr, GoneReason::Left, false);
        }
        let key = names::key(&record.name);
        if key == self.key {
            if !wins(&record, self.joined_ms, self.seen_at, self.id) {
                return; // it gives way; its contact tells it
            }
            if !self.give_way_ourselves() {
                return;
            }
        }
        if let Some(holder) = self.members.values().find(|m| m.key == key) {
            let holder_addr = holder.record.addr;
            if let Some((_, reason)) = holder.doomed {
                // On its way out anyway: the name is free.
                self.remove_member(now, holder_addr, reason, false);
            } else if wins(
                &record,
                holder.record.joined_ms,
                Some(holder_addr),
                holder.record.id,
            ) {
                // The holder joined later: it gives way (back to its old name, or told so
                // and removed).
                self.give_way(now, holder_addr);
            } else {
                return; // the newcomer gives way; its contact tells it
            }
        }
        if self.members.len() + 1 >= self.config.max_members {
            return;
        }
        let name = record.name.clone();
        let addr = record.addr;
        let member = self.new_member(now, record.clone());
        self.members.insert(addr, member);
        if news {
            let time_ms = self.clock.wall_ms(now);
            self.events
                .push_back(PeerEvent::MemberJoined { time_ms, name });
            // Pass it on once, so the news spreads even if its source dies half-way.
            let others: Vec<SocketAddr> = self
                .members
                .keys()
                .filter(|a| **a != via && **a != addr)
                .copied()
                .collect();
            for other in others {
                self.send_item(
                    now,
                    other,
                    PeerItem::Announce {
                        member: record.clone(),
                    },
                );
            }
        }
        self.say_hello(now, addr);
    }

    pub(super) fn new_member(&self, now: Instant, record: MemberRecord) -> Member {
        Member {
            key: names::key(&record.name),
            banned: self.bans.is_banned(record.addr.ip()),
            join_nonce: None,
            doomed: None,
            previous_name: None,
            away: None,
            history_epoch: 0,
            history_answer: None,
            // A backlog older than the timeout cannot be honest: a member silent that long
            // has been evicted.
            link: Link::new(now, self.config.flood_limit, self.config.timeout),
            record,
        }
    }

    /// The member at `via` says the incarnation `id` is gone.
    pub(super) fn hear_gone(&mut self, now: Instant, via: SocketAddr, id: u64, reason: GoneReason) {
        if id == self.id || self.tombstones.iter().any(|t| t.id == id) {
            // About us (those who stop counting us say so themselves), or old news.
            return;
        }
        let Some(addr) = self
            .members
            .iter()
            .find(|(_, m)| m.record.id == id)
            .map(|(addr, _)| *addr)
        else {
            // Someone we never knew: remember it is gone, so late news of its join cannot
            // bring it in, and pass it on.
            self.bury(now, id, None, reason);
            return self.forward_gone(now, via, None, id, reason);
        };
        let timeout = self.config.timeout;
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        match reason {
            GoneReason::Left => {
                if member.doomed.is_some() {
                    return;
                }
                // Its own leave comes after its last messages to us: wait a little for it.
                member.doomed = Some((now + LEAVE_GRACE, reason));
                self.forward_gone(now, via, Some(addr), id, reason);
            }
            GoneReason::TimedOut => {
                // Believed only if we do not hear it ourselves: a member one peer cannot
                // reach may be fine for the others.
                if now.saturating_duration_since(member.link.last_heard) < timeout / 2 {
                    return;
                }
                self.remove_member(now, addr, GoneReason::TimedOut, false);
                self.forward_gone(now, via, Some(addr), id, reason);
            }
            // Everyone settles name conflicts alone, from the records.
            GoneReason::NameTaken => {}
        }
    }

    fn forward_gone(
        &mut self,
        now: Instant,
        via: SocketAddr,
        subject: Option<SocketAddr>,
        id: u64,
        reason: GoneReason,
    ) {
        let others: Vec<SocketAddr> = self
            .members
            .keys()
            .filter(|a| **a != via && Some(**a) != subject)
            .copied()
            .collect();
        for addr in others {
            self.send_item(now, addr, PeerItem::Gone { id, reason });
        }
    }

    /// The member at `addr` no longer counts us (it answered with our own token).
    pub(super) fn dropped_by(&mut self, now: Instant, addr: SocketAddr, reason: GoneReason) {
        if reason == GoneReason::NameTaken {
            return self.close(PeerCloseReason::NameConflict);
        }
        let Some(member) = self.members.get(&addr) else {
            return;
        };
        let name = member.record.name.clone();
        let time_ms = self.clock.wall_ms(now);
        self.events
            .push_back(PeerEvent::DroppedBy { time_ms, name });
        self.forget_member(now, addr, reason, "it no longer counts us in the room");
    }

    /// Removes the member at `addr`, shows why, and if `tell_others` passes the news on.
    pub(super) fn remove_member(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        reason: GoneReason,
        tell_others: bool,
    ) {
        let Some(member) = self.members.get(&addr) else {
            return;
        };
        let id = member.record.id;
        let name = member.record.name.clone();
        let why = match reason {
            GoneReason::Left => "it left first",
            GoneReason::TimedOut => "it timed out",
            GoneReason::NameTaken => "it gave way to another member of the same name",
        };
        self.forget_member(now, addr, reason, why);
        let time_ms = self.clock.wall_ms(now);
        self.events.push_back(PeerEvent::MemberGone {
            time_ms,
            name,
            reason,
        });
        if tell_others {
            let others: Vec<SocketAddr> = self.members.keys().copied().collect();
            for other in others {
                self.send_item(now, other, PeerItem::Gone { id, reason });
            }
        }
        if let State::Syncing { contact } = self.state
            && contact == addr
        {
            // Our contact went away before the member list was complete.
            self.close(PeerCloseReason::JoinTimedOut);
        }
    }

    /// Drops the member at `addr` and its streams, keeping a tombstone; reports messages
    /// it never confirmed.
    fn forget_member(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        reason: GoneReason,
        why: &'static str,
    ) {
        let Some(member) = self.members.remove(&addr) else {
            return;
        };
        self.forget_history_wait(addr);
        let count = member.link.unconfirmed_messages();
        if count > 0 {
            self.events.push_back(PeerEvent::Undelivered {
                to: member.record.name.clone(),
                count,
                why,
            });
        }
        self.tombstones.push_back(Tombstone {
            id: member.record.id,
            addr,
            reason,
            at: now,
            my_token: member.link.my_token,
            their_token: member.link.their_token,
            acks: member.link.stream.inbox.acks(),
            last_answer: None,
        });
        self.trim_tombstones(now);
    }

    /// Remembers that `id` is gone, with no pair to answer for.
    fn bury(&mut self, now: Instant, id: u64, addr: Option<SocketAddr>, reason: GoneReason) {
        self.tombstones.push_back(Tombstone {
            id,
            addr: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            reason,
            at: now,
            // No frame carries token 0 that we would answer: nobody was given it.
            my_token: 0,
            their_token: None,
            acks: Acks::default(),
            last_answer: None,
        });
        self.trim_tombstones(now);
    }

    pub(super) fn trim_tombstones(&mut self, now: Instant) {
        while self.tombstones.len() > TOMBSTONE_LIMIT
            || self
                .tombstones
                .front()
                .is_some_and(|t| now.saturating_duration_since(t.at) >= TOMBSTONE_TTL)
        {
            self.tombstones.pop_front();
        }
    }

    /// Tells the member at `addr` it is no longer a member for us (if its streams are open
    /// enough to know its token).
    pub(super) fn tell_not_member(&mut self, addr: SocketAddr, reason: GoneReason) {
        let Some(token) = self.members.get(&addr).and_then(|m| m.link.their_token) else {
            return;
        };
        self.send_unsequenced(addr, &Frame::Peer(PeerFrame::NotMember { token, reason }));
    }
}

/// Whether a member could live at `addr`: a unicast address and a real port. Anything else
/// in a member list is a broken or hostile member's doing.
fn plausible_address(addr: SocketAddr) -> bool {
    let ip = addr.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
}
