//! Reliable, ordered delivery over datagrams that may be lost, duplicated or reordered.
//!
//! This module owns the bookkeeping both ends of a session share: numbering what one side
//! sends ([`SendWindow`]: sequence numbers, round-trip-time estimation, retransmission with
//! exponential backoff, a cap on what is in flight, giving up after [`GIVE_UP_AFTER`]), and putting what the other
//! side receives back in order exactly once ([`ReceiveWindow`]: duplicate detection, holding
//! early arrivals, cumulative acknowledgements with a selective bitmap, deciding when an
//! acknowledgement is due). It is generic over what is carried and never builds frames or
//! touches a socket: the server and client cores decide what goes in a window and how it is
//! encoded. Like the cores, it reads no clock: every method takes `now`.
//!
//! The rules follow TCP's and QUIC's: a retransmission timeout of smoothed RTT plus four
//! times its variation (RFC 6298), doubling after each timeout; no RTT sample from a
//! retransmitted frame (Karn's rule); and a frame counted lost, whatever its backoff, once a
//! frame sent after it has been acknowledged and a retransmission timeout has passed since
//! it was sent (QUIC's time threshold, RFC 9002 §6.1.2, with TCP's margin). While
//! acknowledgements flow, a lost frame is therefore repeated about once per timeout.
//!
//! The timeout and its backoff belong to the session, not to each frame (as TCP's): a
//! timeout doubles it once, however many frames time out together, and a clean round trip
//! resets it. While the receiver is silent the backoff stops at [`MAX_RTO`] (an outage is
//! probed every couple of seconds); while it acknowledges, but late, it grows to
//! [`SLOW_MAX_RTO`], and acknowledgements are trusted as evidence of loss only by the first
//! send of what they acknowledge, so a slow receiver costs a bounded number of copies of
//! each frame instead of one per timeout. At most [`MAX_IN_FLIGHT`] items are in flight at
//! once; later ones wait unsent. Frames beyond what the receiver's acknowledgement bitmap
//! can describe are not repeated while it is known to be alive: their fate is learned once
//! the gap before them fills. Time the caller itself could not run (a stopped process, a
//! loop that fell behind) can be forgiven ([`SendWindow::forgive`]), so it does not count
//! towards giving up.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crate::wire::{ACK_BITS, Acks};

/// Retransmission timeout before any round trip has been measured.
pub const INITIAL_RTO: Duration = Duration::from_millis(200);

/// The retransmission timeout never drops below this, however fast the path: it must cover
/// the peer's [`ACK_DELAY`] and a busy machine's scheduling hiccups.
pub const MIN_RTO: Duration = Duration::from_millis(50);

/// Exponential backoff stops growing here, so a frame is still retried every couple of
/// seconds during a long outage.
pub const MAX_RTO: Duration = Duration::from_secs(2);

/// Backoff goes on growing up to this while the receiver is alive but late (it
/// acknowledged something since the frame that timed out was sent): such a receiver is
/// asked again at most every 8 s instead of every [`MAX_RTO`], so one whose
/// acknowledgements come 15 s late costs two datagrams a frame, not ten. Short enough that
/// a frame still gets three tries within [`GIVE_UP_AFTER`].
pub const SLOW_MAX_RTO: Duration = Duration::from_secs(8);

/// The most items a window keeps sent and unacknowledged; later ones wait (in the window,
/// unsent) until acknowledgements make room. With datagrams of at most
/// [`crate::wire::MAX_DATAGRAM`] bytes, that caps a session's bytes in flight at 600 KB:
/// a receiver that stops acknowledging costs its sender that much per timeout, however
/// much is queued for it.
pub const MAX_IN_FLIGHT: usize = 512;

/// A frame still unacknowledged this long after it was first sent is given up on (and,
/// since the stream cannot go on with a hole, so is the session). With backoff capped at
/// [`MAX_RTO`] that is 13 tries when nothing comes back at all; at 20 % loss each way the
/// chance that all of them fail is 0.36^13 ≈ 2·10⁻⁶.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(20);

/// However fast acknowledgements come back, a frame is sent at most this many times: the
/// bound on what one frame can cost (at 20 % loss each way, 0.36^32 ≈ 6·10⁻¹⁵ of frames
/// would reach it).
pub const MAX_TRANSMISSIONS: u16 = 32;

/// How long a receiver may hold back an acknowledgement hoping to combine it with others.
pub const ACK_DELAY: Duration = Duration::from_millis(10);

/// A receiver acknowledges at once after this many frames, whatever [`ACK_DELAY`] says, so
/// a busy sender's window keeps moving. As many as the bitmap describes, and an eighth of
/// [`MAX_IN_FLIGHT`], so the window never waits on it. Since frames are packed, 16 (the
/// value before) meant an acknowledgement every second or third datagram under load: at
/// 100 clients, 0.06 datagrams in for each delivery, each costing the receiver a send and
/// the sender a receive and a pass over its window, for a window that had room anyway.
pub const ACK_EVERY: u32 = 64;

/// Smoothed round-trip time and the retransmission timeout derived from it (RFC 6298).
#[derive(Debug, Clone, Copy)]
pub struct RttEstimator {
    smoothed: Option<Duration>,
    variation: Duration,
}

impl Default for RttEstimator {
    fn default() -> Self {
        RttEstimator {
            smoothed: None,
            variation: Duration::ZERO,
        }
    }
}

impl RttEstimator {
    /// Feeds one measured round trip.
    pub fn sample(&mut self, rtt: Duration) {
        match self.smoothed {
            None => {
                self.smoothed = Some(rtt);
                self.variation = rtt / 2;
            }
            Some(smoothed) => {
                let deviation = smoothed.abs_diff(rtt);
                self.variation = (self.variation * 3 + deviation) / 4;
                self.smoothed = Some((smoothed * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed round-trip time, once one has been measured.
    pub fn smoothed(&self) -> Option<Duration> {
        self.smoothed
    }

    /// How long to wait for an acknowledgement before sending a frame again (first try).
    pub fn rto(&self) -> Duration {
        match self.smoothed {
            None => INITIAL_RTO,
            Some(smoothed) => (smoothed + self.variation * 4).clamp(MIN_RTO, MAX_RTO),
        }
    }
}

/// A moment of a window's frames in 8 bytes rather than an `Instant`'s 16: the nanoseconds
/// since the window was made ([`SendWindow::new`]), plus one, so that an `Option` of it is 8
/// bytes too (2⁶⁴ ns are 584 years). A frame in flight holds four: with them it is 56 bytes,
/// not 96, under one cache line. A server writes one into every recipient's window for
/// each broadcast, and with a hundred windows of hundreds of frames those lines are not in
/// the cache: those stores were where the server waited at 128 messages in flight
/// (`docs/performance.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp(NonZeroU64);

impl Stamp {
    /// `at` counted from `epoch`; an instant before `epoch` (no window is given one) counts
    /// as `epoch`.
    fn of(at: Instant, epoch: Instant) -> Stamp {
        let nanos = at.saturating_duration_since(epoch).as_nanos();
        Stamp(NonZeroU64::MIN.saturating_add(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }

    /// The instant this stands for, counted from `epoch`.
    fn instant(self, epoch: Instant) -> Instant {
        epoch + Duration::from_nanos(self.0.get() - 1)
    }

    /// `delay` later.
    fn after(self, delay: Duration) -> Stamp {
        Stamp(
            self.0
                .saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

#[derive(Debug)]
struct InFlight<T> {
    seq: u32,
    /// At most [`MAX_TRANSMISSIONS`].
    transmissions: u16,
    /// The receiver's acknowledgements show this copy was lost: the next send is a repair
    /// on a path that works, not a timeout, and does not back the session off.
    lost: bool,
    acked: bool,
    item: T,
    /// When it was first sent; `None` while it waits to go (for room in the window, or a
    /// replacement).
    first_sent: Option<Stamp>,
    /// When it was last sent; `None` if it never was.
    sent_at: Option<Stamp>,
    /// When it was queued: the clock for [`GIVE_UP_AFTER`], moved on by
    /// [`SendWindow::forgive`].
    queued_at: Stamp,
    /// When to send it again if no acknowledgement comes first (for one never sent: when
    /// it may go).
    due: Stamp,
}

/// What [`SendWindow::poll_due`] asks the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due<T> {
    /// Send this item (again, or for the first time if [`SendWindow::push`] held it back)
    /// under sequence number `seq`.
    Send { seq: u32, item: T },
    /// This item went unacknowledged for [`GIVE_UP_AFTER`] (or through
    /// [`MAX_TRANSMISSIONS`] tries); it has been removed from the window. The stream now
    /// has a hole the receiver cannot fill.
    GaveUp { seq: u32, item: T },
}

/// The sending half of a session: items sent and not yet acknowledged, in sequence order.
///
/// The caller sends an item right after [`SendWindow::push`] when it returns a sequence
/// number, feeds every acknowledgement to [`SendWindow::on_acks`], and sends whatever
/// [`SendWindow::poll_due`] returns once [`SendWindow::next_deadline`] has passed.
#[derive(Debug)]
pub struct SendWindow<T> {
    /// What the frames' [`Stamp`]s count from: when the window was made.
    epoch: Instant,
    next_seq: u32,
    in_flight: VecDeque<InFlight<T>>,
    rtt: RttEstimator,
    /// Acknowledgements describe frames up to this number; what lies beyond is unknown.
    ack_horizon: u32,
    /// When the peer last acknowledged anything: it is alive. (A [`Stamp`], as is
    /// `backed_off_at`: 16 bytes saved pay for `epoch`, and a server's session stays in a
    /// 640-byte allocation.)
    last_ack_at: Option<Stamp>,
    /// The session's retransmission timeout now: the estimator's, doubled by each timeout
    /// (at most once per timeout) and reset by the next clean round trip.
    interval: Duration,
    /// When `interval` was last doubled.
    backed_off_at: Option<Stamp>,
    /// How late acknowledgements came since the last backoff, at the least: from the
    /// first send of the newest frame one acknowledged to its arrival. About the round
    /// trip, unless the receiver is slow. `None` if none came since.
    ack_lag: Option<Duration>,
    /// Whether acknowledgements since the last backoff showed a gap: the receiver is
    /// losing frames, not just late, so the backoff stays at [`MAX_RTO`].
    gaps_since_backoff: bool,
    /// Items sent and not acknowledged: what [`MAX_IN_FLIGHT`] bounds.
    outstanding: usize,
    /// Items never sent yet, waiting for room.
    waiting: usize,
    /// How many frames were sent again: a figure for tests and benchmarks.
    retransmissions: u64,
    /// `next_seq` at the last [`SendWindow::release_memory_if_idle`].
    next_seq_at_idle_check: u32,
}

impl<T: Clone> SendWindow<T> {
    /// An empty window made at `now`, whose first item gets sequence number 1. Its frames'
    /// times are kept as [`Stamp`]s from `now`: the window is never given an earlier time.
    pub fn new(now: Instant) -> Self {
        SendWindow {
            epoch: now,
            next_seq: 1,
            in_flight: VecDeque::new(),
            rtt: RttEstimator::default(),
            // Before any acknowledgement, the first bitmap's reach.
            ack_horizon: 1 + ACK_BITS,
            last_ack_at: None,
            interval: INITIAL_RTO,
            backed_off_at: None,
            ack_lag: None,
            gaps_since_backoff: false,
            outstanding: 0,
            waiting: 0,
            retransmissions: 0,
            next_seq_at_idle_check: 1,
        }
    }

    /// `at` as a [`Stamp`] of this window.
    fn stamp(&self, at: Instant) -> Stamp {
        Stamp::of(at, self.epoch)
    }

    /// The instant a [`Stamp`] of this window stands for.
    fn instant(&self, stamp: Stamp) -> Instant {
        stamp.instant(self.epoch)
    }

    /// Numbers `item` and queues it at `now`. Returns its sequence number when the caller
    /// is to send it at once; `None` when [`MAX_IN_FLIGHT`] items already wait for an
    /// acknowledgement (or earlier items wait to go): it then comes out of
    /// [`SendWindow::poll_due`] when acknowledgements make room.
    pub fn push(&mut self, now: Instant, item: T) -> Option<u32> {
        self.push_noting(now, item).0
    }

    /// [`SendWindow::push`], also returning when the item is due: the one deadline a push
    /// can bring forward (it only adds an item, and the room it takes can only push waiting
    /// items' deadlines back). It is worked out from what was written, not read back from
    /// the window: the slot just written is seldom in the cache (a server writes one in
    /// every recipient's window per broadcast), and reading it would wait for it.
    pub fn push_noting(&mut self, now: Instant, item: T) -> (Option<u32>, Instant) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        let send = self.outstanding < MAX_IN_FLIGHT && self.waiting == 0;
        let stamped_now = self.stamp(now);
        let stamped_due = if send {
            stamped_now.after(self.interval)
        } else {
            stamped_now
        };
        self.in_flight.push_back(InFlight {
            seq,
            transmissions: u16::from(send),
            lost: false,
            acked: false,
            item,
            first_sent: send.then_some(stamped_now),
            sent_at: send.then_some(stamped_now),
            queued_at: stamped_now,
            due: stamped_due,
        });
        if send {
            self.outstanding += 1;
        } else {
            self.waiting += 1;
        }
        let deadline = self.instant(self.due_of(seq, send, stamped_due, stamped_now));
        (send.then_some(seq), deadline)
    }

    /// How many items are waiting for an acknowledgement (or behind one that is).
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether everything sent has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The sequence number the next pushed item will get.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// The round-trip estimator, for display and tests.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// The session's retransmission timeout now, backoff included.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How many times an item was sent again, over the window's life.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// Whether every item numbered below `seq` has been acknowledged (or is no longer kept:
    /// given up on, or replaced). A sender that must not queue a second batch behind one
    /// still unacknowledged marks the batch's end with [`SendWindow::next_seq`] and asks
    /// this before sending the next.
    pub fn acknowledged_before(&self, seq: u32) -> bool {
        // Items are kept in sequence order (a replacement takes the first number it
        // replaced), so the first unacknowledged one decides.
        self.in_flight
            .iter()
            .find(|f| !f.acked)
            .is_none_or(|f| f.seq >= seq)
    }

    /// Items not yet acknowledged, oldest first.
    pub fn unacked(&self) -> impl Iterator<Item = &T> {
        self.in_flight.iter().filter(|f| !f.acked).map(|f| &f.item)
    }

    /// Removes and returns every item not yet acknowledged, oldest first (the session is
    /// over, or starts again under new sequence numbers).
    pub fn drain_unacked(&mut self) -> Vec<T> {
        self.outstanding = 0;
        self.waiting = 0;
        self.in_flight
            .drain(..)
            .filter(|f| !f.acked)
            .map(|f| f.item)
            .collect()
    }

    /// Gives back the memory of a window that stayed empty since the previous call (nothing
    /// was pushed meanwhile); it grows again when items come. A server holds a window per
    /// client, and an idle client's would otherwise keep room for the largest burst it ever
    /// had in flight (80 bytes an item). Meant for a periodic sweep: a window in use keeps
    /// its memory, so sending to it does not allocate.
    pub fn release_memory_if_idle(&mut self) {
        if self.in_flight.is_empty()
            && self.next_seq == self.next_seq_at_idle_check
            && self.in_flight.capacity() > 0
        {
            self.in_flight = VecDeque::new();
        }
        self.next_seq_at_idle_check = self.next_seq;
    }

    /// The caller could not run for `stalled` just before `now` (its process was stopped,
    /// or its loop fell behind): that time does not count towards [`GIVE_UP_AFTER`], since
    /// the peer's acknowledgements may have waited on us, not on the peer.
    pub fn forgive(&mut self, now: Instant, stalled: Duration) {
        let stamped_now = self.stamp(now);
        for flight in self.in_flight.iter_mut().filter(|f| !f.acked) {
            flight.queued_at = flight.queued_at.after(stalled).min(stamped_now);
        }
    }

    /// The items numbered `first` to `last` that were sent and are not acknowledged, in
    /// order, with their numbers.
    pub fn sent_between(&self, first: u32, last: u32) -> impl Iterator<Item = (u32, &T)> {
        // Numbers follow one another in the window, but for a frame given up on or
        // replaced: where `first` would be if none was, else a search.
        let back = self.next_seq.wrapping_sub(first) as usize;
        let start = match self.in_flight.len().checked_sub(back) {
            Some(at) if self.in_flight.get(at).is_some_and(|f| f.seq == first) => at,
            _ => self.in_flight.partition_point(|flight| flight.seq < first),
        };
        self.in_flight
            .range(start..)
            .take_while(move |flight| flight.seq <= last)
            .filter(|flight| flight.sent_at.is_some() && !flight.acked)
            .map(|flight| (flight.seq, &flight.item))
    }

    /// Takes the peer's acknowledgements into account; returns how many items they newly
    /// acknowledged. Acknowledgements of numbers never sent are ignored.
    pub fn on_acks(&mut self, now: Instant, acks: Acks) -> usize {
        self.on_acks_noting(now, acks).0
    }

    /// [`SendWindow::on_acks`], also saying the earliest deadline the acknowledgements can
    /// have brought forward, if any (see [`SendWindow::note_earlier_deadlines`]): an owner
    /// whose timer was filed at the window's earliest deadline need compare no more than
    /// that with it ([`crate::proto::stream::Stream::arm_after_acks`]).
    pub fn on_acks_noting(&mut self, now: Instant, acks: Acks) -> (usize, Option<Instant>) {
        if self.in_flight.is_empty() {
            // A receiver's usual case: every frame it gets carries acknowledgements of a
            // stream it seldom sends on. Only the peer's liveness and the horizon move.
            self.heard(now, acks);
            self.shrink_if_empty();
            return (0, None);
        }
        let mut newly_acked = 0;
        // When the frame that gives the sample was sent: the last one that may (below), its
        // round trip worked out once.
        let mut rtt_sent_at = None;
        // A copy sent at or before this was sent at least half a round trip ago (worked out
        // once, not per frame acknowledged: hundreds are, on a busy session).
        // (None too when that is before the window began: no frame was sent then.)
        let long_enough_ago = self
            .rtt
            .smoothed()
            .and_then(|srtt| now.checked_sub(srtt / 2))
            .filter(|&before| before >= self.epoch)
            .map(|before| self.stamp(before));
        // The latest send among the frames acknowledged now: anything last sent before it
        // and still unacknowledged was probably lost. For a frame sent several times, the
        // send of a copy that can have been the one acknowledged: the acknowledgement of a
        // slow receiver comes long after we sent the frame again, and is for its first
        // copy; it must not make every frame sent in between look lost.
        let mut evidence = None;
        let reported_through = acks.largest();
        let old_horizon = self.ack_horizon;
        // In sequence order: what lies past the largest number acknowledged is not looked
        // at (most of the window, between a receiver's acknowledgements).
        for flight in self.in_flight.iter_mut() {
            if flight.seq > reported_through {
                break;
            }
            if flight.acked || !acks.contains(flight.seq) {
                continue;
            }
            flight.acked = true;
            newly_acked += 1;
            if flight.sent_at.is_some() {
                self.outstanding -= 1;
            } else {
                self.waiting -= 1;
            }
            // Which copy was acknowledged? The last one could have been only if it was
            // sent at least half a round trip ago; otherwise count from the first.
            let plausible_copy = match (flight.sent_at, long_enough_ago) {
                (Some(last), Some(before)) if last <= before => Some(last),
                _ => flight.first_sent,
            };
            evidence = evidence.max(plausible_copy);
            if let Some(sent_at) = flight.sent_at {
                // Karn's rule: an acknowledged retransmission is ambiguous (which copy was
                // acknowledged?), so only frames sent once give a sample. Nor does a frame
                // the receiver could not describe until now: its acknowledgement waited for
                // a gap to fill, not for the network.
                if flight.transmissions == 1 && flight.seq <= self.ack_horizon {
                    rtt_sent_at = Some(sent_at);
                }
            }
        }
        if let Some(rtt) =
            rtt_sent_at.map(|sent_at| now.saturating_duration_since(self.instant(sent_at)))
        {
            self.rtt.sample(rtt);
            // A clean round trip ends the backoff (RFC 6298 §5.7), but the timeout stays
            // above the round trip just measured: a receiver that is slow, not gone, is not
            // sent everything twice.
            self.interval = self.rtt.rto().max((rtt + rtt / 2).min(SLOW_MAX_RTO));
            self.backed_off_at = None;
        }
        self.heard(now, acks);
        while self.in_flight.front().is_some_and(|f| f.acked) {
            self.in_flight.pop_front();
        }
        let mut earlier = self.note_earlier_deadlines(now, old_horizon);
        self.shrink_if_empty();
        // A frame is known to be missing when the receiver reports frames after it, or when
        // a frame first sent after its last copy has been acknowledged. Such a frame goes
        // again a timeout after its last send (the margin for reordering), without backoff:
        // the path works, this copy was unlucky.
        let Some(evidence) = evidence else {
            return (newly_acked, earlier);
        };
        self.gaps_since_backoff |= acks.also != 0;
        let lag = now.saturating_duration_since(self.instant(evidence));
        self.ack_lag = Some(self.ack_lag.map_or(lag, |least| least.min(lag)));
        let (rto, epoch) = (self.rtt.rto(), self.epoch);
        for (index, flight) in self.in_flight.iter_mut().enumerate() {
            let Some(sent_at) = flight.sent_at.filter(|_| !flight.acked) else {
                continue;
            };
            if sent_at < evidence || flight.seq < reported_through {
                self.gaps_since_backoff = true;
                flight.lost = true;
                let repair = Stamp::of((sent_at.instant(epoch) + rto).max(now), epoch);
                flight.due = flight.due.min(repair);
                // At the earliest (a frame beyond the horizon waits longer).
                let due = flight.due.instant(epoch);
                earlier = Some(earlier.map_or(due, |earlier: Instant| earlier.min(due)));
            } else if index > 0 && flight.first_sent.is_some_and(|first| first >= evidence) {
                // Frames go out first in sequence order (only a replacement, which is
                // always the oldest, can go later), so every later one was first sent
                // after the evidence too, and lies beyond what was reported: none is lost,
                // and the rest of the window (most of it, usually) need not be looked at.
                break;
            }
        }
        (newly_acked, earlier)
    }

    /// Acknowledgements `acks` came at `now`: the peer is alive, and they describe frames
    /// up to their bitmap's reach.
    fn heard(&mut self, now: Instant, acks: Acks) {
        self.last_ack_at = Some(self.stamp(now));
        self.ack_horizon = self
            .ack_horizon
            .max(acks.through.saturating_add(1 + ACK_BITS));
    }

    /// An idle session keeps no memory from its last burst.
    fn shrink_if_empty(&mut self) {
        if self.in_flight.is_empty() && self.in_flight.capacity() > 64 {
            self.in_flight.shrink_to(8);
        }
    }

    /// The earliest of the deadlines that acknowledgements at `now` can have brought
    /// forward, besides frames found lost (noted where they are): those of the frames the
    /// horizon moved over (beyond `old_horizon` they waited for the receiver's
    /// acknowledgements to describe them; now their own deadline counts), and, if the
    /// acknowledgements made room for frames waiting to go, `now`. Everything else only
    /// moves later, or leaves: so an owner whose timer was filed at the window's earliest
    /// deadline need look at no more than this after acknowledgements, instead of passing
    /// over every frame in flight on each. Each frame is passed over by the horizon once.
    fn note_earlier_deadlines(&self, now: Instant, old_horizon: u32) -> Option<Instant> {
        let mut earliest = None;
        if self.waiting > 0 && self.outstanding < MAX_IN_FLIGHT {
            earliest = Some(now);
        }
        if self.ack_horizon > old_horizon {
            let start = self.in_flight.partition_point(|f| f.seq <= old_horizon);
            let passed_over = self
                .in_flight
                .range(start..)
                .take_while(|f| f.seq <= self.ack_horizon)
                .filter(|f| !f.acked)
                .map(|f| self.effective_due(f))
                .min()
                .map(|due| self.instant(due));
            if let Some(due) = passed_over {
                earliest = Some(earliest.map_or(due, |earliest| earliest.min(due)));
            }
        }
        earliest
    }

    /// When [`SendWindow::poll_due`] next has something to return, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight
            .iter()
            .filter(|f| !f.acked)
            .map(|f| self.effective_due(f))
            .min()
            .map(|due| self.instant(due))
    }

    /// When a frame is really due: a frame waiting for room goes when there is room; a
    /// frame the receiver's acknowledgements cannot describe yet waits while the receiver
    /// shows it is alive (until [`MAX_RTO`] after its last acknowledgement), instead of
    /// being repeated blindly behind a gap that is being filled; and any frame is given up
    /// on [`GIVE_UP_AFTER`] after it was queued.
    fn effective_due(&self, flight: &InFlight<T>) -> Stamp {
        self.due_of(
            flight.seq,
            flight.sent_at.is_some(),
            flight.due,
            flight.queued_at,
        )
    }

    /// [`SendWindow::effective_due`] of frame `seq`, from its parts: whether it was sent,
    /// its own deadline and when it was queued.
    fn due_of(&self, seq: u32, sent: bool, due: Stamp, queued_at: Stamp) -> Stamp {
        let give_up = queued_at.after(GIVE_UP_AFTER);
        let due = match (sent, self.last_ack_at) {
            (false, _) if self.outstanding >= MAX_IN_FLIGHT => give_up,
            (true, Some(last_ack_at)) if seq > self.ack_horizon => {
                due.max(last_ack_at.after(MAX_RTO))
            }
            _ => due,
        };
        due.min(give_up)
    }

    /// The next item to send (again) or to give up on at `now`, if any. Call until `None`.
    pub fn poll_due(&mut self, now: Instant) -> Option<Due<T>> {
        let stamped_now = self.stamp(now);
        let index = self
            .in_flight
            .iter()
            .position(|f| !f.acked && self.effective_due(f) <= stamped_now)?;
        let flight = &self.in_flight[index];
        if flight.transmissions >= MAX_TRANSMISSIONS
            || now.saturating_duration_since(self.instant(flight.queued_at)) >= GIVE_UP_AFTER
        {
            let flight = self.in_flight.remove(index).expect("index is in range");
            if flight.sent_at.is_some() {
                self.outstanding -= 1;
            } else {
                self.waiting -= 1;
            }
            return Some(Due::GaveUp {
                seq: flight.seq,
                item: flight.item,
            });
        }
        match flight.sent_at {
            None => {
                self.waiting -= 1;
                self.outstanding += 1;
            }
            Some(sent_at) => {
                self.retransmissions += 1;
                if !flight.lost {
                    self.back_off(now, sent_at);
                }
            }
        }
        let due = stamped_now.after(self.interval);
        let flight = &mut self.in_flight[index];
        flight.first_sent = flight.first_sent.or(Some(stamped_now));
        flight.sent_at = Some(stamped_now);
        flight.transmissions += 1;
        flight.lost = false;
        flight.due = due;
        Some(Due::Send {
            seq: flight.seq,
            item: flight.item.clone(),
        })
    }

    /// A frame last sent at `sent_at` timed out at `now`: doubles the session's timeout, at
    /// most once per timeout (a burst of frames timing out together is one event, not a
    /// reason to wait 2¹⁰ times longer). The doubling stops at [`MAX_RTO`] while the
    /// receiver is silent, so an outage is probed every couple of seconds, and also while
    /// it acknowledges promptly or reports gaps (frames are being lost: retry as before);
    /// but a receiver that acknowledges everything, in order and late, backs us off up to
    /// how late (at most [`SLOW_MAX_RTO`]), so it is not sent every frame again and again.
    fn back_off(&mut self, now: Instant, sent_at: Stamp) {
        if self
            .backed_off_at
            .is_some_and(|at| now < self.instant(at) + self.interval)
        {
            return;
        }
        let alive = self.last_ack_at.is_some_and(|at| at > sent_at);
        let steady = !std::mem::take(&mut self.gaps_since_backoff);
        let cap = match self.ack_lag.take() {
            Some(lag) if alive && steady => lag.clamp(MAX_RTO, SLOW_MAX_RTO),
            _ => MAX_RTO,
        };
        self.interval = (self.interval * 2).min(cap).max(self.rtt.rto());
        self.backed_off_at = Some(self.stamp(now));
    }

    /// Makes every unacknowledged item due at `now`: the peer has just shown it is there
    /// but has not got them, so waiting for the timers would only add delay.
    pub fn expedite(&mut self, now: Instant) {
        let stamped_now = self.stamp(now);
        for flight in self.in_flight.iter_mut().filter(|f| !f.acked) {
            flight.due = flight.due.min(stamped_now);
            flight.lost = true;
        }
    }

    /// Replaces the `count` oldest items by one item built by `replacement(first, last)`
    /// from the first and last sequence numbers replaced; it takes the first one's number
    /// and is due at once. This is how a sender bounds its memory when the receiver falls
    /// too far behind: the replacement tells the receiver what it will never get.
    pub fn replace_oldest(
        &mut self,
        now: Instant,
        count: usize,
        replacement: impl FnOnce(u32, u32) -> T,
    ) {
        let count = count.min(self.in_flight.len());
        if count == 0 {
            return;
        }
        let first = self.in_flight[0].seq;
        let last = self.in_flight[count - 1].seq;
        for flight in self.in_flight.drain(..count).filter(|f| !f.acked) {
            if flight.sent_at.is_some() {
                self.outstanding -= 1;
            } else {
                self.waiting -= 1;
            }
        }
        self.waiting += 1;
        let stamped_now = self.stamp(now);
        self.in_flight.push_front(InFlight {
            seq: first,
            transmissions: 0,
            lost: false,
            acked: false,
            item: replacement(first, last),
            first_sent: None,
            sent_at: None,
            queued_at: stamped_now,
            due: stamped_now,
        });
    }
}

/// What [`ReceiveWindow::insert`] made of an arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Not seen before; it will come out of [`ReceiveWindow::pop_ready`] in its turn.
    New,
    /// Already received (our acknowledgement was lost or slow); dropped.
    Duplicate,
    /// Too far ahead of the first missing frame to be held; dropped unacknowledged, so the
    /// sender will send it again later.
    TooFar,
}

/// What comes out of a [`ReceiveWindow`], in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready<T> {
    /// The next item in sequence.
    Item(T),
    /// The sender gave up on this many items (see [`ReceiveWindow::skip_through`]).
    Skipped(u32),
}

/// The receiving half of a session: delivers items in sequence order, each exactly once,
/// and says what to acknowledge and when.
#[derive(Debug)]
pub struct ReceiveWindow<T> {
    /// Every sequence number up to this one has been delivered (or skipped).
    through: u32,
    /// Items that arrived and wait for their turn, in sequence order: usually one at a
    /// time, in order, so each arrival is a push at the back and its delivery a pop at the
    /// front (a tree allocated and freed a node for each frame: a client's receiving was a
    /// tenth malloc). One that fills a gap is put in its place.
    held: VecDeque<(u32, T)>,
    /// The most sequence numbers past `through` that may be held.
    capacity: u32,
    /// A range the sender said it gave up on, applied when `through` reaches it.
    skip: Option<(u32, u32)>,
    /// The highest sequence number received so far, to tell in-order arrivals from gaps.
    largest_received: u32,
    arrivals_since_ack: u32,
    ack_due: Option<Instant>,
}

impl<T> ReceiveWindow<T> {
    /// An empty window that holds at most `capacity` early arrivals.
    pub fn new(capacity: u32) -> Self {
        ReceiveWindow {
            through: 0,
            held: VecDeque::new(),
            capacity: capacity.max(1),
            skip: None,
            largest_received: 0,
            arrivals_since_ack: 0,
            ack_due: None,
        }
    }

    /// Records an arrival at `now`, holding the item until its turn.
    pub fn insert(&mut self, now: Instant, seq: u32, item: T) -> Arrival {
        let arrival = if seq == 0 || seq <= self.through {
            Arrival::Duplicate
        } else if seq - self.through > self.capacity {
            Arrival::TooFar
        } else if self.held.back().is_none_or(|&(last, _)| last < seq) {
            self.held.push_back((seq, item));
            Arrival::New
        } else {
            match self.held.binary_search_by_key(&seq, |&(held, _)| held) {
                Ok(_) => Arrival::Duplicate,
                Err(at) => {
                    self.held.insert(at, (seq, item));
                    Arrival::New
                }
            }
        };
        match arrival {
            // A duplicate means our acknowledgement went missing: answer at once.
            Arrival::Duplicate => self.ack_due = Some(now),
            // A new gap: tell the sender what is missing at once. (An arrival that fills a
            // gap is acknowledged with the others, after ACK_DELAY.)
            Arrival::New if seq > self.largest_received.max(self.through) + 1 => {
                self.largest_received = seq;
                self.ack_due = Some(now);
            }
            Arrival::New => {
                self.largest_received = self.largest_received.max(seq);
                self.arrivals_since_ack += 1;
                let due = if self.arrivals_since_ack >= ACK_EVERY {
                    now
                } else {
                    now + ACK_DELAY
                };
                self.ack_due = Some(self.ack_due.map_or(due, |d| d.min(due)));
            }
            Arrival::TooFar => {}
        }
        arrival
    }

    /// Notes that the sender gave up on every sequence number from `first` to `last`: when
    /// delivery reaches `first`, [`ReceiveWindow::pop_ready`] reports how many were skipped.
    pub fn skip_through(&mut self, now: Instant, first: u32, last: u32) {
        // Even a repeat is answered: the sender repeats because our acknowledgement of the
        // first copy was lost.
        self.ack_due = Some(now);
        if last <= self.through || first > last {
            return;
        }
        // Bounded like held items, so a bogus range cannot make us wait forever.
        if last - self.through > self.capacity.saturating_mul(64) {
            return;
        }
        self.skip = Some(match self.skip {
            Some((f, l)) => (f.min(first), l.max(last)),
            None => (first, last),
        });
        self.ack_due = Some(now);
    }

    /// The next item in order, if it has arrived.
    pub fn pop_ready(&mut self) -> Option<Ready<T>> {
        if let Some((first, last)) = self.skip
            && first <= self.through + 1
        {
            self.skip = None;
            if last > self.through {
                let skipped = last - self.through;
                self.through = last;
                self.held.retain(|&(seq, _)| seq > last);
                return Some(Ready::Skipped(skipped));
            }
        }
        let next = self.through + 1;
        if self.held.front()?.0 != next {
            return None;
        }
        let (_, item) = self.held.pop_front()?;
        self.through = next;
        Some(Ready::Item(item))
    }

    /// The acknowledgements to send now.
    pub fn acks(&self) -> Acks {
        let mut also = 0u64;
        let first = self.through.saturating_add(2);
        let end = first.saturating_add(ACK_BITS);
        for &(seq, _) in self.held.iter().take_while(|&&(seq, _)| seq < end) {
            if seq >= first {
                also |= 1 << (seq - first);
            }
        }
        Acks {
            through: self.through,
            also,
        }
    }

    /// When an acknowledgement should be sent, if one is owed.
    pub fn ack_deadline(&self) -> Option<Instant> {
        self.ack_due
    }

    /// Records that the current acknowledgements went out (alone or on another frame).
    pub fn ack_sent(&mut self) {
        self.ack_due = None;
        self.arrivals_since_ack = 0;
    }

    /// How many items wait for an earlier one.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Gives back the room for held items if none is held: a server holds a window per
    /// client, and one that once held a few would keep that room while idle. Meant for a
    /// periodic sweep, so receiving in a steady flow does not allocate.
    pub fn release_memory_if_idle(&mut self) {
        if self.held.is_empty() && self.held.capacity() > 0 {
            self.held = VecDeque::new();
        }
    }

    /// Every sequence number up to this one has been delivered.
    pub fn through(&self) -> u32 {
        self.through
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_frame_in_flight_takes_less_than_a_cache_line() {
        assert_eq!(std::mem::size_of::<InFlight<std::sync::Arc<[u8]>>>(), 56);
    }

    #[test]
    fn stamps_keep_the_nanosecond_and_the_order() {
        let epoch = Instant::now();
        let later = epoch + Duration::new(86_400 * 365, 123_456_789);
        assert_eq!(Stamp::of(epoch, epoch).instant(epoch), epoch);
        assert_eq!(Stamp::of(later, epoch).instant(epoch), later);
        assert!(Stamp::of(epoch + Duration::from_nanos(1), epoch) > Stamp::of(epoch, epoch));
        assert_eq!(std::mem::size_of::<Option<Stamp>>(), 8);
    }

    #[test]
    fn hostile_acks_do_not_panic() {
        let hostile = Acks {
            through: u32::MAX,
            also: 1,
        };
        let now = Instant::now();
        let mut window = SendWindow::new(now);
        window.push(now, ());
        window.on_acks(now, hostile);
    }

    #[test]
    fn acknowledged_before_waits_for_every_earlier_item_not_only_the_last() {
        let now = Instant::now();
        let mut window = SendWindow::new(now);
        for item in ["a", "b", "c"] {
            window.push(now, item);
        }
        let mark = window.next_seq();
        assert_eq!(mark, 4);
        assert!(!window.acknowledged_before(mark));
        assert!(window.acknowledged_before(1), "nothing is numbered below 1");
        // The last one acknowledged, an earlier one not: the batch is still outstanding.
        window.on_acks(
            now,
            Acks {
                through: 0,
                also: 0b10,
            },
        );
        assert!(!window.acknowledged_before(mark));
        window.on_acks(
            now,
            Acks {
                through: 2,
                also: 0,
            },
        );
        assert!(window.acknowledged_before(mark));
        // What comes after the mark does not count.
        window.push(now, "d");
        assert!(window.acknowledged_before(mark));
        assert!(!window.acknowledged_before(window.next_seq()));
    }

    #[test]
    fn rto_starts_at_initial_and_follows_samples() {
        let mut rtt = RttEstimator::default();
        assert_eq!(rtt.rto(), INITIAL_RTO);
        rtt.sample(ms(100));
        assert_eq!(rtt.rto(), ms(300)); // 100 + 4 × 50
        for _ in 0..50 {
            rtt.sample(ms(1));
        }
        assert_eq!(rtt.rto(), MIN_RTO);
        for _ in 0..50 {
            rtt.sample(ms(5000));
        }
        assert_eq!(rtt.rto(), MAX_RTO);
    }

    #[test]
    fn unacked_item_is_resent_with_backoff_then_given_up() {
        let start = Instant::now();
        let mut window = SendWindow::new(start);
        assert_eq!(window.push(start, "a"), Some(1));
        assert_eq!(window.next_deadline(), Some(start + INITIAL_RTO));
        assert_eq!(window.poll_due(start + ms(199)), None);

        let mut now = start;
        let mut gaps = Vec::new();
        loop {
            let due = window.next_deadline().expect("pending");
            gaps.push(due - now);
            now = due;
            match window.poll_due(now).expect("due") {
                Due::Send { seq, item } => assert_eq!((seq, item), (1, "a")),
                Due::GaveUp { seq, item } => {
                    assert_eq!((seq, item), (1, "a"));
                    break;
                }
            }
        }
        // Sent at 0, 0.2, 0.6, 1.4, 3 s, then every 2 s up to 19 s (nothing ever came back,
        // so the backoff stops at MAX_RTO); given up at GIVE_UP_AFTER exactly.
        assert_eq!(&gaps[..5], &[ms(200), ms(400), ms(800), ms(1600), ms(2000)]);
        assert_eq!(now - start, GIVE_UP_AFTER);
        assert_eq!(gaps.len(), 13);
        assert!(window.is_empty());
        assert_eq!(window.retransmissions(), 12);
    }

    #[test]
    fn acked_items_leave_and_give_rtt_samples() {
        let start = Instant::now();
        let mut window = SendWindow::new(start);
        for item in ["a", "b", "c"] {
            window.push(start, item);
        }
        let acked = window.on_acks(
            start + ms(30),
            Acks {
                through: 1,
                also: 0b1,
            },
        );
        assert_eq!(acked, 2);
        assert_eq!(window.unacked().copied().collect::<Vec<_>>(), ["b"]);
        assert_eq!(window.rtt().smoothed(), Some(ms(30)));
        // Acknowledging again, or numbers never sent, changes nothing.
        assert_eq!(
            window.on_acks(
                start + ms(40),
                Acks {
                    through: 1,
                    also: u64::MAX
                }
            ),
            0
        );
        assert_eq!(
            window.on_acks(
                start + ms(40),
                Acks {
                    through: 3,
                    also: 0
                }
            ),
            1
        );
        assert!(window.is_empty());
        assert_eq!(window.next_deadline(), None);
    }

    #[test]
    fn an_item_reported_missing_is_resent_without_backoff() {
        let start = Instant::now();
        let mut window = SendWindow::new(start);
        window.push(start, 'a');
        // Nothing comes back: 'a' goes again at its timer, and then waits twice as long.
        assert_eq!(
            window.poll_due(start + ms(200)),
            Some(Due::Send { seq: 1, item: 'a' })
        );
        assert_eq!(window.next_deadline(), Some(start + ms(600)));
        // 'b' goes out and the receiver reports having it but not 'a': the path works and
        // the copy of 'a' was lost too. 'a' goes again a timeout after its last send (the
        // estimate from b: 10 ms, so the 50 ms floor), not after the doubled wait.
        window.push(start + ms(210), 'b');
        window.on_acks(
            start + ms(220),
            Acks {
                through: 0,
                also: 0b1,
            },
        );
        assert_eq!(window.rtt().smoothed(), Some(ms(10)));
        assert_eq!(window.rtt().rto(), MIN_RTO);
        assert_eq!(window.next_deadline(), Some(start + ms(250)));
        assert_eq!(window.poll_due(start + ms(249)), None);
        assert_eq!(
            window.poll_due(start + ms(250)),
            Some(Due::Send { seq: 1, item: 'a' })
        );
    }

    #[test]
    fn frames_the_receiver_cannot_describe_wait_while_it_answers() {
        let start = Instant::now();
        let mut window = SendWindow::new(start);
        for item in 0..200 {
            window.push(start, item);
        }
        // The receiver lacks frame 1 and reports 2..=65; 66.. lie beyond its bitmap.
        window.on_acks(
            start + ms(20),
            Acks {
                through: 0,
                also: u64::MAX,
            },
        );
        let mut resent = Vec::new();
        while let Some(Due::Send { seq, .. }) = window.poll_due(start + ms(300)) {
            resent.push(seq);
        }
        assert_eq!(resent, [1], "only the known gap, not the unknown tail");
        // If the receiver falls silent, the tail (66..=200) goes again too, and the gap once
        // more.
        let later = start + ms(20) + MAX_RTO;
        let mut resent = 0;
        while let Some(Due::Send { .. }) = window.poll_due(later) {
            resent += 1;
        }
        assert_eq!(resent, 135 + 1);
    }

    #[test]
    fn receive_window_delivers_in_order_once() {
        let now = Instant::now();
        let mut window = ReceiveWindow::new(8);
        assert_eq!(window.insert(now, 2, "b"), Arrival::New);
        assert_eq!(window.pop_ready(), None);
        assert_eq!(
            window.acks(),
            Acks {
                through: 0,
                also: 0b1
            }
        );
        assert_eq!(window.insert(now, 1, "a"), Arrival::New);
        assert_eq!(window.insert(now, 1, "a"), Arrival::Duplicate);
        assert_eq!(window.pop_ready(), Some(Ready::Item("a")));
        assert_eq!(window.pop_ready(), Some(Ready::Item("b")));
        assert_eq!(window.pop_ready(), None);
        assert_eq!(window.insert(now, 2, "b"), Arrival::Duplicate);
        assert_eq!(window.insert(now, 11, "k"), Arrival::TooFar);
        assert_eq!(window.insert(now, 0, "zero"), Arrival::Duplicate);
        assert_eq!(
            window.acks(),
            Acks {
                through: 2,
                also: 0
            }
        );
    }

    #[test]
    fn acks_are_delayed_and_coalesced_in_order_but_immediate_after_a_gap() {
        let start = Instant::now();
        // Room for every frame below, none of them delivered.
        let mut window = ReceiveWindow::new(2 * ACK_EVERY);
        window.insert(start, 1, ());
        assert_eq!(window.ack_deadline(), Some(start + ACK_DELAY));
        window.insert(start + ms(5), 2, ());
        assert_eq!(window.ack_deadline(), Some(start + ACK_DELAY));
        window.ack_sent();
        assert_eq!(window.ack_deadline(), None);
        for seq in 3..3 + ACK_EVERY {
            window.insert(start, seq, ());
        }
        assert_eq!(window.ack_deadline(), Some(start));
        window.ack_sent();
        // A gap: frames 3 + ACK_EVERY to 12 + ACK_EVERY are missing.
        window.insert(start, 13 + ACK_EVERY, ());
        assert_eq!(window.ack_deadline(), Some(start));
    }

    #[test]
    fn skipped_range_is_reported_once_in_its_turn() {
        let now = Instant::now();
        let mut window = ReceiveWindow::new(16);
        window.insert(now, 1, 'a');
        window.insert(now, 5, 'e'); // held, then covered by the skip
        window.insert(now, 7, 'g');
        window.skip_through(now, 3, 6);
        assert_eq!(window.pop_ready(), Some(Ready::Item('a')));
        assert_eq!(window.pop_ready(), None); // 2 is still missing
        window.insert(now, 2, 'b');
        assert_eq!(window.pop_ready(), Some(Ready::Item('b')));
        assert_eq!(window.pop_ready(), Some(Ready::Skipped(4)));
        assert_eq!(window.pop_ready(), Some(Ready::Item('g')));
        assert_eq!(window.through(), 7);
        window.ack_sent();
        window.skip_through(now, 3, 6); // a repeat changes nothing but is acknowledged
        assert_eq!(window.pop_ready(), None);
        assert_eq!(window.ack_deadline(), Some(now));
    }

    #[test]
    fn replace_oldest_bounds_the_window() {
        let start = Instant::now();
        let mut window = SendWindow::new(start);
        for item in 0..10 {
            window.push(start, item);
        }
        window.replace_oldest(start, 6, |first, last| 100 + (last - first + 1) as i32);
        assert_eq!(window.len(), 5);
        assert_eq!(
            window.poll_due(start),
            Some(Due::Send { seq: 1, item: 106 })
        );
        window.on_acks(
            start + ms(1),
            Acks {
                through: 6,
                also: 0,
            },
        );
        assert_eq!(window.len(), 4);
    }
}
