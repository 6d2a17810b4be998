//! What members tell the room about themselves: actions (`/me`), renames
//! (`/nick`), away and back (`/away`, `/back`) — ours as typed, the other members' as they
//! arrive — and how two claims on one name are settled.
//!
//! Names stay unique in the room as with joins: when two members claim one name (two
//! renames crossing, or a rename crossing a join), the claim of the member with the smaller
//! (join time, address, incarnation) wins ([`wins`], the join's tie-break), so every peer
//! that sees both picks the same winner whatever the order they arrived in. The loser of a
//! rename takes back the name it had before, everywhere (it shows
//! `another peer took the name ... at the same moment`); a member that has no earlier name
//! to go back to (it joined under the name, or its old name was taken meanwhile) gives way
//! as a join's loser does, and leaves the room.
//!
//! It also owns [`PeerEvent::as_client_event`]: these events, and messages, are the very
//! events a client of a server gets, so they look the same in both modes.
//!
//! It does not own the queue what we type waits in (`mod.rs`), the streams these travel on
//! and the flood limit they count against (`links`), the naming rules or the away-reason
//! rule (shared with the server: `names::check_rename`, `text::away_reason`), or
//! how the events look (`render`).

use super::*;
use crate::proto::chat::ChatEvent;

impl Peer {
    /// `/me`: an action to everyone (`* pa waves`), in its turn like any line.
    pub fn send_action(&mut self, now: Instant, text: &str) {
        for piece in wire::split_text(text) {
            self.enqueue(now, Typed::Action(piece.to_owned()));
        }
    }

    /// `/nick`: asks to be called `name` from now on. A name that breaks the rules or that a
    /// member has is refused at once (in the server's words); otherwise the rename goes in
    /// its turn, after what was typed before it.
    pub fn rename(&mut self, now: Instant, name: &str) -> Result<(), PeerError> {
        if !matches!(self.state, State::InRoom) {
            return Err(PeerError::NotInRoom);
        }
        self.check_rename(name)?;
        self.enqueue(now, Typed::Nick(name.to_owned()));
        Ok(())
    }

    /// `/away REASON`, or `/back` with `None`: announced to everyone, in its turn.
    pub fn set_away(&mut self, now: Instant, reason: Option<&str>) {
        self.enqueue(now, Typed::Away(reason.and_then(text::away_reason)));
    }

    /// The server's check of a rename, against the names in the room; the new name's key.
    fn check_rename(&self, name: &str) -> Result<String, PeerError> {
        let own = &self.key;
        let taken = |key: &str| key != own && self.members.values().any(|m| m.key == key);
        names::check_rename(name, taken).map_err(|error| PeerError::Rename {
            name: name.to_owned(),
            error,
        })
    }

    /// Our `/me` leaves the queue: shown here, sent to everyone.
    pub(super) fn release_action(&mut self, now: Instant, sent_ms: u64, text: String) {
        let time_ms = self.clock.wall_ms(now);
        self.show_public(time_ms, self.name.clone(), Kind::Action, &text, true);
        let item = PeerItem::Action {
            time_ms,
            sent_ms,
            text,
        };
        self.send_to_everyone(now, item);
    }

    /// Our `/nick` leaves the queue: checked again (a member may have taken the name while
    /// it waited), then ours and announced.
    pub(super) fn release_rename(&mut self, now: Instant, sent_ms: u64, name: String) {
        if name == self.name {
            return;
        }
        let key = match self.check_rename(&name) {
            Ok(key) => key,
            Err(_) => {
                return self.events.push_back(PeerEvent::NotSent {
                    text: format!("/nick {name}"),
                    why: "someone in the room took the name before its turn",
                });
            }
        };
        self.key = key;
        self.previous_name = Some(std::mem::replace(&mut self.name, name.clone()));
        self.events
            .push_back(PeerEvent::Renamed { name: name.clone() });
        self.send_to_everyone(now, PeerItem::Nick { sent_ms, name });
    }

    /// Our `/away` or `/back` leaves the queue: shown here as everyone sees it, and sent.
    pub(super) fn release_away(&mut self, now: Instant, sent_ms: u64, reason: Option<String>) {
        if self.away == reason {
            return;
        }
        self.away.clone_from(&reason);
        let time_ms = self.clock.wall_ms(now);
        self.events.push_back(PeerEvent::Chat(ChatEvent::Presence {
            time_ms,
            name: self.name.clone(),
            change: away_change(reason.clone()),
        }));
        let reason = reason.unwrap_or_default();
        self.send_to_everyone(now, PeerItem::Away { sent_ms, reason });
    }

    /// The member at `from` says it is called `name` from now on.
    pub(super) fn on_rename(&mut self, now: Instant, from: SocketAddr, name: String) {
        let Some(member) = self.members.get(&from) else {
            return;
        };
        if member.record.name == name || names::validate(&name).is_err() {
            return;
        }
        let key = names::key(&name);
        let claimant = member.record.clone();
        if key != member.key {
            if key == self.key {
                if !wins(&claimant, self.joined_ms, self.seen_at, self.id) {
                    return; // we keep it; it gives way when our own rename reaches it
                }
                if !self.give_way_ourselves() {
                    return;
                }
            } else if let Some(holder) = self
                .members
                .values()
                .find(|m| m.key == key && m.record.addr != from)
            {
                let holder_addr = holder.record.addr;
                if let Some((_, reason)) = holder.doomed {
                    // On its way out anyway: the name is free.
                    self.remove_member(now, holder_addr, reason, false);
                } else if wins(
                    &claimant,
                    holder.record.joined_ms,
                    Some(holder_addr),
                    holder.record.id,
                ) {
                    self.give_way(now, holder_addr);
                } else {
                    return; // the holder keeps it; the claimant gives way when it hears
                }
            }
        }
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        let old = std::mem::replace(&mut member.record.name, name.clone());
        member.key = key;
        member.previous_name = Some(old.clone());
        let time_ms = self.clock.wall_ms(now);
        self.events.push_back(PeerEvent::Chat(ChatEvent::Presence {
            time_ms,
            name: old,
            change: PresenceChange::Renamed { to: name },
        }));
    }

    /// The member at `from` is away for `reason`, or back (an empty reason).
    pub(super) fn on_away(&mut self, now: Instant, from: SocketAddr, reason: &str) {
        let time_ms = self.clock.wall_ms(now);
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        let reason = text::away_reason(reason);
        if member.away == reason {
            return;
        }
        member.away.clone_from(&reason);
        self.events.push_back(PeerEvent::Chat(ChatEvent::Presence {
            time_ms,
            name: member.record.name.clone(),
            change: away_change(reason),
        }));
    }

    /// The member at `addr` lost its name to an earlier member's claim: it goes back to the
    /// name it had before its last rename if nobody has that now, or else gives way as a
    /// join's loser does (told so, and removed).
    pub(super) fn give_way(&mut self, now: Instant, addr: SocketAddr) {
        let Some(member) = self.members.get(&addr) else {
            return;
        };
        let back_to = member
            .previous_name
            .clone()
            .filter(|name| self.name_is_free(&names::key(name), Some(addr)));
        let Some(back_to) = back_to else {
            self.tell_not_member(addr, GoneReason::NameTaken);
            return self.remove_member(now, addr, GoneReason::NameTaken, false);
        };
        let time_ms = self.clock.wall_ms(now);
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        member.key = names::key(&back_to);
        member.previous_name = None;
        let lost = std::mem::replace(&mut member.record.name, back_to.clone());
        self.events.push_back(PeerEvent::Chat(ChatEvent::Presence {
            time_ms,
            name: lost,
            change: PresenceChange::Renamed { to: back_to },
        }));
    }

    /// We lost our name to an earlier member's claim: we take back the one we had before our
    /// last rename, or, with none free, leave the room as a join's loser does. Whether we
    /// are still in the room.
    pub(super) fn give_way_ourselves(&mut self) -> bool {
        let back_to = self
            .previous_name
            .take()
            .filter(|name| self.name_is_free(&names::key(name), None));
        let Some(back_to) = back_to else {
            self.close(PeerCloseReason::NameConflict);
            return false;
        };
        self.key = names::key(&back_to);
        let lost = std::mem::replace(&mut self.name, back_to.clone());
        self.events.push_back(PeerEvent::RenameLost {
            name: lost,
            back_to,
        });
        true
    }

    /// Whether nobody but the member at `except` (`None`: us) is called by `key`.
    fn name_is_free(&self, key: &str, except: Option<SocketAddr>) -> bool {
        let ours = except.is_some() && key == self.key;
        !ours
            && !self
                .members
                .values()
                .any(|m| m.key == key && Some(m.record.addr) != except)
    }
}

/// The presence change `/away` with `reason` (or `/back`, `None`) announces.
fn away_change(reason: Option<String>) -> PresenceChange {
    match reason {
        Some(reason) => PresenceChange::Away { reason },
        None => PresenceChange::Back,
    }
}
