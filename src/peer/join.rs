//! Joining a room, from both sides: the newcomer's attempt and the member that lets it in.
//!
//! Owns the newcomer's side (the join through contacts in turn, answering the challenge,
//! the welcome or refusal, a peer of another protocol version), the contact's side (the
//! stateless cookie that proves the newcomer's address, refusals, the welcome), and the
//! rule that settles concurrent joins under one name the same way on every peer ([`wins`]).
//!
//! It does not own the member list the welcome leads to (`membership`) or the streams a
//! new member is given (`links`).

use super::*;

impl Peer {
    /// A frame of another protocol version: a join gets the refusal every version reads; a
    /// refusal of our own join ends it.
    pub(super) fn on_other_version(&mut self, from: SocketAddr, datagram: &[u8]) {
        match self.state {
            State::InRoom => {
                if let Some(nonce) = wire::any_version_peer_join_nonce(datagram) {
                    let refusal = Frame::ToClient(ToClient::Refused {
                        nonce,
                        reason: RefuseReason::VersionUnsupported,
                    });
                    // Never more bytes back than came in, whatever the other version pads.
                    if refusal.to_bytes().len() <= datagram.len() {
                        self.send_unsequenced(from, &refusal);
                    }
                }
            }
            State::Joining(ref attempt) => {
                if self.contacts.contains(&from)
                    && let Some((answered, reason)) = wire::any_version_refusal(datagram)
                    && answered == attempt.nonce
                {
                    self.close(PeerCloseReason::Refused(reason));
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_joining_frame(&mut self, now: Instant, from: SocketAddr, frame: PeerFrame) {
        let State::Joining(attempt) = &mut self.state else {
            return;
        };
        // Any of the contacts may answer; the nonce proves it answers us.
        let Some(from_index) = self.contacts.iter().position(|c| *c == from) else {
            return;
        };
        match frame {
            PeerFrame::Challenge {
                nonce: answered,
                cookie: challenge,
            } if answered == attempt.nonce => {
                attempt.on_challenge(now, from_index, challenge);
                self.handle_timeout(now);
            }
            PeerFrame::Welcome {
                nonce: answered,
                token,
                your_joined_ms,
                your_addr,
                id,
                joined_ms,
                clock_ms,
                flood,
                name,
            } if answered == attempt.nonce => {
                if names::validate(&name).is_err() || id == self.id {
                    return; // a broken member: keep asking
                }
                self.joined_ms = your_joined_ms;
                self.seen_at = Some(canonical(your_addr));
                let record = MemberRecord {
                    id,
                    joined_ms,
                    addr: from,
                    name,
                };
                let mut member = self.new_member(now, record);
                member.link.my_token = self.join_token;
                member.link.learn_token(token);
                member.link.proven = true;
                member.link.learn_terms(now, clock_ms, flood);
                self.members.insert(from, member);
                self.update_pace(now);
                self.state = State::Syncing { contact: from };
                self.expect_replay(from);
                // Tell the contact at once that we are here and have nothing yet.
                self.send_ack_now(now, from);
            }
            PeerFrame::Refused {
                nonce: answered,
                reason,
            } if answered == attempt.nonce => self.close(PeerCloseReason::Refused(reason)),
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_join(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: u64,
        cookie: u64,
        id: u64,
        token: u64,
        (clock_ms, flood): (u64, FloodTerms),
        name: String,
    ) {
        // Until our own member list is complete we could let in a duplicate name or hand
        // out an incomplete list; while leaving we are no one to join through. The joiner
        // hears nothing and tries again (or another --peer).
        if !matches!(self.state, State::InRoom) {
            return;
        }
        if !self.cookies.is_valid(now, from, nonce, cookie) {
            // Prove the address first, keeping no state: the answer is smaller than the
            // padded join, so a forged join cannot aim us at someone else.
            let cookie = self.cookies.cookie(now, from, nonce);
            return self
                .send_unsequenced(from, &Frame::Peer(PeerFrame::Challenge { nonce, cookie }));
        }
        if let Some(member) = self.members.get(&from) {
            if member.join_nonce == Some(nonce) && member.record.id == id {
                // Our welcome was lost and it asked again: answer, change nothing. The
                // member list sent with the welcome was ignored (it came before the
                // welcome did): send it again now rather than after the backoff.
                let welcome = self.welcome(now, nonce, member);
                self.send_unsequenced(from, &welcome);
                if let Some(member) = self.members.get_mut(&from) {
                    member.link.stream.outbox.expedite(now);
                }
                return self.member_timers(now, from);
            }
            if member.key != names::key(&name) {
                // Someone else is a member at this address and port: a join (perhaps
                // forged) must not end it.
                return self.refuse(from, nonce, RefuseReason::AddressInUse);
            }
            // The same person's program started again on the same port: the old one is
            // gone.
            self.remove_member(now, from, GoneReason::Left, true);
        }
        if names::validate(&name).is_err() {
            return self.refuse(from, nonce, RefuseReason::NameInvalid);
        }
        let key = names::key(&name);
        if key == self.key || self.members.values().any(|m| m.key == key) {
            return self.refuse(from, nonce, RefuseReason::NameTaken);
        }
        if self.members.len() + 1 >= self.config.max_members {
            return self.refuse(from, nonce, RefuseReason::ServerFull);
        }
        if id == self.id
            || self.members.values().any(|m| m.record.id == id)
            || self.tombstones.iter().any(|t| t.id == id)
        {
            // An incarnation already known: a forged or replayed join.
            return self.refuse(from, nonce, RefuseReason::AddressInUse);
        }
        let record = MemberRecord {
            id,
            joined_ms: self.clock.wall_ms(now),
            addr: from,
            name: name.clone(),
        };
        let mut member = self.new_member(now, record.clone());
        member.join_nonce = Some(nonce);
        member.link.learn_token(token);
        // The cookie proved the address.
        member.link.proven = true;
        member.link.learn_terms(now, clock_ms, flood);
        let welcome = self.welcome(now, nonce, &member);
        self.members.insert(from, member);
        self.update_pace(now);
        self.send_unsequenced(from, &welcome);
        for part in self.member_list_parts(from) {
            self.send_item(now, from, part);
        }
        self.send_replay(now, from);
        let others: Vec<SocketAddr> = self
            .members
            .keys()
            .filter(|a| **a != from)
            .copied()
            .collect();
        for addr in others {
            self.send_item(
                now,
                addr,
                PeerItem::Announce {
                    member: record.clone(),
                },
            );
        }
        let time_ms = self.clock.wall_ms(now);
        self.events
            .push_back(PeerEvent::MemberJoined { time_ms, name });
    }

    pub(super) fn welcome(&self, now: Instant, nonce: u64, member: &Member) -> Frame {
        Frame::Peer(PeerFrame::Welcome {
            nonce,
            token: member.link.my_token,
            your_joined_ms: member.record.joined_ms,
            your_addr: member.record.addr,
            id: self.id,
            joined_ms: self.joined_ms,
            clock_ms: self.clock.since_start_ms(now),
            flood: FloodLimit::terms(self.config.flood_limit),
            name: self.name.clone(),
        })
    }

    fn refuse(&mut self, to: SocketAddr, nonce: u64, reason: RefuseReason) {
        self.send_unsequenced(to, &Frame::Peer(PeerFrame::Refused { nonce, reason }));
    }
}

/// Whether the member described by `challenger` takes the name from a holder with join
/// time `holder_ms`, address `holder_addr` (`None` only for the peer that started the
/// room, which nobody has seen yet — and whose name nobody can take concurrently, since
/// every member knows it from the start) and incarnation `holder_id`: the earlier join
/// wins; equal times are settled by address, then incarnation, so every peer picks the
/// same winner.
pub(super) fn wins(
    challenger: &MemberRecord,
    holder_ms: i64,
    holder_addr: Option<SocketAddr>,
    holder_id: u64,
) -> bool {
    let challenger_key = (
        challenger.joined_ms,
        Some(address_order(challenger.addr)),
        challenger.id,
    );
    let holder_key = (holder_ms, holder_addr.map(address_order), holder_id);
    challenger_key < holder_key
}

fn address_order(addr: SocketAddr) -> (IpAddr, u16) {
    (addr.ip().to_canonical(), addr.port())
}
