//! Presence news: who is told of a join, a departure, a rename, an away, and when.
//!
//! Owns the two rules that keep a join storm linear. **Batching**: the first change opens a
//! window of [`PRESENCE_WINDOW`]; it and the next ones, up to [`PRESENCE_BURST`] in all, go
//! out at once, each as a [`Delivery::Presence`]; later ones wait for the window's end and
//! then go together, one [`Delivery::PresenceBatch`] per client (more only if they do not
//! fit one datagram). While changes keep coming, each window that sent a batch is followed
//! by another in which every change waits: a storm costs each client one frame per window.
//! A session that joins while changes wait hears only those after its join (the roster it
//! was sent has the rest). **The quiet room**: in a
//! room of more than [`ServerConfig::quiet_above`] people, joins, departures and renames are
//! announced to nobody, and an away or back only to the person (its confirmation); `/list`
//! stays exact, and the roster at join lists the room's first `quiet_above` people
//! (`room`). The deadline of the window is one of the server's
//! timers ([`Server::poll_timeout`]).
//!
//! It does not own what the changes are (`room`, `sessions`), the frames' layout (`wire`) or
//! the words guests read ([`crate::text`]).

use super::*;

use crate::wire::{PRESENCE_BATCH_FIXED_LEN, PresenceItem};

/// How long presence changes that follow an announced one wait to go out together: a storm
/// of joins costs each client one frame per window, not one per join.
pub const PRESENCE_WINDOW: Duration = Duration::from_millis(50);

/// How many changes of one window go out at once, each in its own frame, before the rest
/// wait for the window's end: a few changes at a time are shown without delay.
pub const PRESENCE_BURST: usize = 8;

/// The largest room in which joins, departures and renames are announced, when the operator
/// does not say (`--quiet-above`).
pub const DEFAULT_QUIET_ABOVE: usize = 500;

/// Presence changes waiting for the end of a window.
#[derive(Debug, Default)]
pub(super) struct PresenceNews {
    /// The changes since the window opened, in order.
    pending: Vec<PresenceItem>,
    /// When the open window ends; `None`: no window, the next change goes at once.
    window_ends: Option<Instant>,
    /// How many more changes the open window sends at once.
    allowance: usize,
    /// Sessions that joined while changes were pending: how many of them each must not hear
    /// (its roster has them).
    joined_late: HashMap<SocketAddr, usize>,
}

impl PresenceNews {
    /// When the pending changes are due, if any wait.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.window_ends.filter(|_| !self.pending.is_empty())
    }

    /// Forgets everything waiting (the server is closing: everyone gets its farewell).
    pub(super) fn clear(&mut self) {
        *self = PresenceNews::default();
    }
}

impl Server {
    /// Tells the room that `name` (at `subject`) changed its presence, under the rules of the
    /// module documentation. For a join, call it before the newcomer's session exists (it
    /// does not hear of itself) and [`Server::joined_while_pending`] after.
    pub(super) fn announce(
        &mut self,
        now: Instant,
        subject: SocketAddr,
        name: &str,
        change: PresenceChange,
    ) {
        // The room's size once the change is done (a newcomer's session comes next).
        let people = self.sessions.len() + usize::from(change == PresenceChange::Joined);
        if people > self.config.quiet_above {
            if matches!(change, PresenceChange::Away { .. } | PresenceChange::Back) {
                let time_ms = self.clock.wall_ms(now);
                let item = PresenceItem {
                    name: name.to_owned(),
                    change,
                };
                self.send_presence_to(now, subject, time_ms, std::slice::from_ref(&item));
            }
            return;
        }
        let item = PresenceItem {
            name: name.to_owned(),
            change,
        };
        let news = &mut self.presence;
        if news.window_ends.is_some_and(|ends| now < ends) {
            if news.allowance == 0 || !news.pending.is_empty() {
                news.pending.push(item);
                return;
            }
            news.allowance -= 1;
        } else {
            // A window that ended without its timer having run yet goes first.
            self.flush_presence(now);
            self.presence.window_ends = Some(now + PRESENCE_WINDOW);
            self.presence.allowance = PRESENCE_BURST - 1;
        }
        let time_ms = self.clock.wall_ms(now);
        let words = text::presence_text(&item.name, &item.change);
        let PresenceItem { name, change } = item;
        let frame = || {
            Frame::ToClient(ToClient::Sequenced(
                Envelope::default(),
                Delivery::Presence {
                    time_ms,
                    name,
                    change,
                },
            ))
        };
        self.broadcast(now, None, frame, |clock: &mut ClockText| {
            guest_line(text::notice_line(clock.get(time_ms), &words))
        });
    }

    /// A session just joined at `addr`: while changes wait, it must not hear those that came
    /// before it.
    pub(super) fn joined_while_pending(&mut self, addr: SocketAddr) {
        let news = &mut self.presence;
        if news.pending.is_empty() {
            news.joined_late.remove(&addr);
        } else {
            news.joined_late.insert(addr, news.pending.len());
        }
    }

    /// The window's timer: sends what waited, and if anything did (a storm goes on) opens
    /// another window in which every change waits; otherwise closes it.
    pub(super) fn presence_timeout(&mut self, now: Instant) {
        if self.presence.window_ends.is_none_or(|ends| now < ends) {
            return;
        }
        let sent = !self.presence.pending.is_empty();
        self.flush_presence(now);
        self.presence.window_ends = sent.then_some(now + PRESENCE_WINDOW);
        self.presence.allowance = 0;
    }

    /// Sends every waiting change: to each session, those that came after it joined, in as
    /// few frames as fit ([`presence_payloads`]), each encoded once for all who hear the
    /// same changes.
    fn flush_presence(&mut self, now: Instant) {
        let pending = std::mem::take(&mut self.presence.pending);
        let joined_late = std::mem::take(&mut self.presence.joined_late);
        if pending.is_empty() {
            return;
        }
        let time_ms = self.clock.wall_ms(now);
        // By how many changes a recipient skips: the frames, and the guests' lines.
        let mut encoded: HashMap<usize, Encoded> = HashMap::new();
        let mut out = Outgoing {
            transmits: &mut self.transmits,
            timers: &mut self.timers,
            stats: &mut self.stats,
            later: &mut self.later,
        };
        let clock = &mut self.clock_text;
        for (addr, session) in &mut self.sessions {
            let skip = joined_late.get(addr).copied().unwrap_or(0);
            let Some(changes) = pending.get(skip..).filter(|rest| !rest.is_empty()) else {
                continue;
            };
            let (frames, lines) = encoded.entry(skip).or_insert_with(|| {
                let frames = presence_payloads(time_ms, changes);
                let lines = presence_chunks(changes)
                    .map(|chunk| guest_presence_line(clock.get(time_ms), chunk))
                    .collect();
                (frames, lines)
            });
            match session.streams.as_mut() {
                Some(streams) => {
                    for payload in frames.iter() {
                        out.send(streams, now, *addr, payload.clone());
                    }
                }
                None => {
                    for line in lines.iter() {
                        out.stats.datagrams_sent += 1;
                        out.transmits.push_back(Transmit {
                            destination: *addr,
                            payload: line.clone(),
                            envelope: None,
                        });
                    }
                }
            }
        }
    }

    /// Sends `changes` to the session at `addr` alone.
    fn send_presence_to(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        time_ms: i64,
        changes: &[PresenceItem],
    ) {
        match self.sessions.get(&addr).map(|s| s.kind) {
            Some(ClientKind::Named) => {
                for payload in presence_payloads(time_ms, changes) {
                    self.send_sequenced(now, addr, payload);
                }
            }
            Some(ClientKind::Guest) => {
                for chunk in presence_chunks(changes) {
                    let line = guest_presence_line(self.clock_text.get(time_ms), chunk);
                    self.push(addr, line);
                }
            }
            None => {}
        }
    }
}

/// The frames for named clients and the lines for guests that carry the same changes.
type Encoded = (Vec<Arc<[u8]>>, Vec<Arc<[u8]>>);

/// `changes` cut in runs that each fit one frame of [`MAX_DATAGRAM`](wire::MAX_DATAGRAM).
fn presence_chunks(changes: &[PresenceItem]) -> impl Iterator<Item = &[PresenceItem]> {
    let mut rest = changes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut len = PRESENCE_BATCH_FIXED_LEN;
        // Every item fits an empty frame (a name and a reason of 128 bytes: 260 bytes).
        let take = rest
            .iter()
            .take_while(|item| {
                len += item.encoded_len();
                len <= wire::MAX_DATAGRAM
            })
            .count()
            .max(1);
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        Some(chunk)
    })
}

/// The frames (each with a blank envelope) that carry `changes`: one `Presence` for a
/// lone change, `PresenceBatch` frames for more.
fn presence_payloads(time_ms: i64, changes: &[PresenceItem]) -> Vec<Arc<[u8]>> {
    presence_chunks(changes)
        .map(|chunk| {
            let delivery = match chunk {
                [one] => Delivery::Presence {
                    time_ms,
                    name: one.name.clone(),
                    change: one.change.clone(),
                },
                _ => Delivery::PresenceBatch {
                    time_ms,
                    changes: chunk.to_vec(),
                },
            };
            Frame::ToClient(ToClient::Sequenced(Envelope::default(), delivery))
                .to_bytes()
                .into()
        })
        .collect()
}

/// A guest's line for the changes of one frame, in the words of
/// [`text::presence_batch_text`], cut to a text's size.
fn guest_presence_line(clock: &str, changes: &[PresenceItem]) -> Arc<[u8]> {
    let words = text::presence_batch_text(changes);
    let words = wire::truncate_to_char_boundary(&words, wire::MAX_TEXT_BYTES);
    guest_line(text::notice_line(clock, words))
}
