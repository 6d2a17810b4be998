//! One reliable stream pair between two ends: what the server keeps per client, the client
//! per session and a peer per member, written once.
//!
//! A [`Stream`] owns the token its frames carry, both windows ([`SendWindow`] for what we
//! send, [`ReceiveWindow`] for what we receive), the envelope every sequenced frame gets
//! (our acknowledgements ride on it, so they are no longer due once it goes), when an
//! acknowledgement of its own is due, when we last sent anything, and the retransmission
//! timer an owner with many streams files in its own queue. It is generic over what is
//! carried and builds no frames: the role turns an item and its [`Envelope`] into bytes,
//! and decides what an acknowledgement frame looks like. Like the windows, it reads no
//! clock: every method takes `now`.

use std::time::{Duration, Instant};

use super::reliable::{Due, ReceiveWindow, SendWindow};
use crate::wire::{Acks, Envelope};

/// A stream pair: `S` is what we send (kept until acknowledged), `R` what we receive.
#[derive(Debug)]
pub struct Stream<S, R = S> {
    /// What every frame we send on it carries, so the other end knows it is ours.
    token: u64,
    /// What we sent and is not acknowledged yet.
    pub outbox: SendWindow<S>,
    /// What arrives, put back in order.
    pub inbox: ReceiveWindow<R>,
    /// When we last sent anything carrying our acknowledgements.
    last_sent: Instant,
    /// The retransmission deadline filed in the owner's timer queue, if any.
    timer: Option<Instant>,
    /// The first and last sequence numbers sent by [`Stream::send_later`] and not written
    /// out yet ([`Stream::take_later`]); 0 when there is none (no frame is numbered 0). Two
    /// numbers, not an `Option` of them: a server's session stays in a 640-byte allocation.
    later: (u32, u32),
}

/// What [`Stream::poll_due`] asks the owner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resend<S> {
    /// Send `item` (again, or for the first time if it waited for room) in `envelope`.
    Send { envelope: Envelope, item: S },
    /// `item` went unacknowledged through every retry (see [`Due::GaveUp`]).
    GaveUp { item: S },
}

/// What [`Stream::send_later`] did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// It is the first of the turn to write out: the owner notes the stream, to write its
    /// frames out at the turn's end. False too when it waits for room.
    pub first_of_turn: bool,
    /// When it is due, for [`Stream::arm_after_send`].
    pub deadline: Instant,
}

impl<S: Clone, R> Stream<S, R> {
    /// A stream whose frames carry `token`, holding at most `inbox_limit` early arrivals.
    /// Nothing was sent on it before `now`.
    pub fn new(token: u64, now: Instant, inbox_limit: u32) -> Stream<S, R> {
        Stream {
            token,
            outbox: SendWindow::new(now),
            inbox: ReceiveWindow::new(inbox_limit),
            last_sent: now,
            timer: None,
            later: (0, 0),
        }
    }

    /// The token our frames carry.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// From now on our frames carry `token` (a peer learns its member's late).
    pub fn set_token(&mut self, token: u64) {
        self.token = token;
    }

    /// When we last sent anything carrying our acknowledgements.
    pub fn last_sent(&self) -> Instant {
        self.last_sent
    }

    /// Numbers `item` and keeps it until acknowledged. Returns the envelope to send it in
    /// now, or `None` when it waits for room (it then comes out of [`Stream::poll_due`]).
    pub fn send(&mut self, now: Instant, item: &S) -> Option<Envelope> {
        let seq = self.outbox.push(now, item.clone())?;
        Some(self.envelope(now, seq))
    }

    /// [`Stream::send`] for an owner that writes a turn's frames out at its end, packed
    /// ([`crate::proto::packing::pack_stream`]), rather than one datagram each as it goes:
    /// numbers `item`, counts it as sent at `now` (our acknowledgements with it) and keeps
    /// it to write with the others of the turn ([`Stream::take_later`]), or to come out of
    /// [`Stream::poll_due`] if it waits for room (as after `send`).
    pub fn send_later(&mut self, now: Instant, item: S) -> Queued {
        let (seq, deadline) = self.outbox.push_noting(now, item);
        let Some(seq) = seq else {
            return Queued {
                first_of_turn: false,
                deadline,
            };
        };
        // Our acknowledgements go with it: those of when it is written out.
        self.inbox.ack_sent();
        self.last_sent = self.last_sent.max(now);
        let first_of_turn = self.later.0 == 0;
        self.later = (if first_of_turn { seq } else { self.later.0 }, seq);
        Queued {
            first_of_turn,
            deadline,
        }
    }

    /// The frames of [`Stream::send_later`] not written out yet, in order with their
    /// sequence numbers (those still waiting for an acknowledgement: a hostile receiver
    /// may acknowledge what it was not sent yet), and the acknowledgements to write on
    /// them: ours now, so none is due any more. `None` if there is none.
    pub fn take_later(&mut self) -> Option<(u64, Acks, impl Iterator<Item = (u32, &S)>)> {
        let (first, last) = std::mem::take(&mut self.later);
        if first == 0 {
            return None;
        }
        let acks = self.inbox.acks();
        self.inbox.ack_sent();
        Some((self.token, acks, self.outbox.sent_between(first, last)))
    }

    /// The envelope of frame `seq` sent at `now`: it carries our acknowledgements, so none
    /// is due any more.
    pub fn envelope(&mut self, now: Instant, seq: u32) -> Envelope {
        Envelope {
            token: self.token,
            seq,
            acks: self.take_ack(now),
        }
    }

    /// What is due at `now` on the sending side: one item to send (again) at a time, or the
    /// news that one was given up on.
    pub fn poll_due(&mut self, now: Instant) -> Option<Resend<S>> {
        Some(match self.outbox.poll_due(now)? {
            Due::Send { seq, item } => Resend::Send {
                envelope: self.envelope(now, seq),
                item,
            },
            Due::GaveUp { item, .. } => Resend::GaveUp { item },
        })
    }

    /// Our acknowledgements, to send at `now` on a frame of their own (a heartbeat, an
    /// acknowledgement): none is due any more.
    pub fn take_ack(&mut self, now: Instant) -> Acks {
        let acks = self.inbox.acks();
        self.inbox.ack_sent();
        self.last_sent = self.last_sent.max(now);
        acks
    }

    /// Our acknowledgements, if one is due by `now`.
    pub fn take_ack_if_due(&mut self, now: Instant) -> Option<Acks> {
        self.inbox
            .ack_deadline()
            .is_some_and(|due| due <= now)
            .then(|| self.take_ack(now))
    }

    /// Whether an acknowledgement is owed at all, however soon it is due.
    pub fn ack_pending(&self) -> bool {
        self.inbox.ack_deadline().is_some()
    }

    /// The earliest of the next retransmission and the next acknowledgement owed.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.outbox.next_deadline(), self.inbox.ack_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// We could not run for `stalled` before `now`: that time does not count against the
    /// other end's acknowledgements (see [`SendWindow::forgive`]).
    pub fn forgive(&mut self, now: Instant, stalled: Duration) {
        self.outbox.forgive(now, stalled);
    }

    /// The retransmission deadline to file in the owner's timer queue, if it is earlier
    /// than the one filed (or none is): the owner pushes it and later calls
    /// [`Stream::timer_fired`] with it. Filed deadlines are never taken back; a stale one
    /// is told apart by [`Stream::is_armed_for`].
    pub fn arm(&mut self, now: Instant) -> Option<Instant> {
        let deadline = self.outbox.next_deadline()?.max(now);
        self.file_if_sooner(deadline)
    }

    /// Files `deadline` unless the one filed already comes no later; returns it if filed.
    fn file_if_sooner(&mut self, deadline: Instant) -> Option<Instant> {
        if self.timer.is_some_and(|armed| armed <= deadline) {
            return None;
        }
        self.timer = Some(deadline);
        Some(deadline)
    }

    /// [`Stream::arm`] right after [`Stream::send_later`] (what it returned: `queued`), when
    /// nothing else changed the window since the last arm: the push can only have brought
    /// the deadline forward to its own item's, so only that one is compared with the filed
    /// one. A full [`Stream::arm`]
    /// passes over every frame in flight, and a server arms once per recipient of each
    /// broadcast: at 128 messages in flight that pass was half of its CPU.
    pub fn arm_after_send(&mut self, now: Instant, queued: &Queued) -> Option<Instant> {
        if self.timer.is_none() {
            return self.arm(now);
        }
        self.file_if_sooner(queued.deadline.max(now))
    }

    /// [`Stream::arm`] right after acknowledgements were taken ([`SendWindow::on_acks_noting`]),
    /// when the filed deadline was the window's earliest: acknowledgements can only have
    /// brought forward the deadline it gave (`earlier`), so only those are
    /// compared with it, not every frame in flight. A filed deadline may then be earlier
    /// than any frame's (the frame it was for was acknowledged): when it comes, nothing is
    /// due, and the owner arms again ([`Stream::arm`]) as after any retransmission.
    pub fn arm_after_acks(&mut self, now: Instant, earlier: Option<Instant>) -> Option<Instant> {
        if self.timer.is_none() {
            return self.arm(now);
        }
        self.file_if_sooner(earlier?.max(now))
    }

    /// Whether `deadline`, popped from the owner's queue, is the one this stream is armed
    /// for (and not a stale one, superseded since).
    pub fn is_armed_for(&self, deadline: Instant) -> bool {
        self.timer == Some(deadline)
    }

    /// Forgets the filed deadline: the next [`Stream::arm`] files a new one whatever it is.
    pub fn disarm(&mut self) {
        self.timer = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reliable::{GIVE_UP_AFTER, Ready, ReceiveWindow};

    /// A sender and a receiver on a path that loses a fifth of the frames and some of the
    /// acknowledgements, with acknowledgements that come late and in bursts, and hundreds
    /// in flight: after every acknowledgement the sender re-arms the cheap way
    /// ([`Stream::arm_after_acks`]), and its filed deadline must never be later than the
    /// earliest deadline in its window (the full pass's), or a frame would wait past its
    /// timeout. It may be earlier: when it comes, nothing is due and it arms again.
    #[test]
    fn after_acknowledgements_the_filed_deadline_is_never_later_than_the_earliest() {
        let start = Instant::now();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let mut sender: Stream<u32, ()> = Stream::new(1, start, 1024);
        let mut receiver: ReceiveWindow<u32> = ReceiveWindow::new(1024);
        let (mut now, mut filed, mut item) = (start, None, 0);
        for step in 0..4_000 {
            now += Duration::from_micros(random(3_000));
            let mut arrivals = Vec::new();
            for _ in 0..random(40) {
                item += 1;
                let queued = sender.send_later(now, item);
                if let Some(deadline) = sender.arm_after_send(now, &queued) {
                    filed = Some(deadline);
                }
                if random(5) > 0 {
                    arrivals.push((sender.outbox.next_seq() - 1, item));
                }
            }
            if filed.is_some_and(|deadline| deadline <= now) && sender.is_armed_for(filed.unwrap())
            {
                while let Some(due) = sender.poll_due(now) {
                    if let Resend::Send { envelope, item } = due
                        && random(5) > 0
                    {
                        arrivals.push((envelope.seq, item));
                    }
                }
                sender.disarm();
                filed = sender.arm(now).or(filed);
            }
            for (seq, item) in arrivals {
                receiver.insert(now, seq, item);
            }
            while receiver.pop_ready().is_some() {}
            if step % 7 == 0 && random(4) > 0 {
                let (_, earlier) = sender.outbox.on_acks_noting(now, receiver.acks());
                if let Some(deadline) = sender.arm_after_acks(now, earlier) {
                    filed = Some(deadline);
                }
                if let Some(earliest) = sender.outbox.next_deadline() {
                    let armed = sender
                        .timer
                        .expect("a window with frames has a deadline filed");
                    assert!(
                        armed <= earliest.max(now),
                        "step {step}: filed {armed:?}, a frame due at {earliest:?}"
                    );
                }
            }
        }
        assert!(sender.outbox.retransmissions() > 0, "the path lost frames");
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Two ends of one stream pair, started at `start`.
    fn pair(start: Instant) -> (Stream<&'static str>, Stream<&'static str>) {
        (Stream::new(11, start, 64), Stream::new(22, start, 64))
    }

    #[test]
    fn a_sent_item_carries_the_token_and_our_acknowledgements() {
        let start = Instant::now();
        let (mut a, mut b) = pair(start);
        let envelope = a.send(start, &"hello").expect("room");
        assert_eq!((envelope.token, envelope.seq), (11, 1));
        b.inbox.insert(start, envelope.seq, "hello");
        assert!(matches!(b.inbox.pop_ready(), Some(Ready::Item("hello"))));
        assert!(b.ack_pending());
        // B's reply carries the acknowledgement: none is owed afterwards.
        let reply = b.send(start + ms(1), &"hi").expect("room");
        assert_eq!(reply.token, 22);
        assert!(reply.acks.contains(1));
        assert!(!b.ack_pending());
        assert_eq!(b.last_sent(), start + ms(1));
        assert_eq!(a.outbox.on_acks(start + ms(2), reply.acks), 1);
        assert!(a.outbox.is_empty());
    }

    #[test]
    fn an_acknowledgement_goes_alone_only_when_due() {
        let start = Instant::now();
        let (_, mut b) = pair(start);
        b.inbox.insert(start, 1, "one");
        assert!(matches!(b.inbox.pop_ready(), Some(Ready::Item("one"))));
        let due = b.next_deadline().expect("an acknowledgement is owed");
        assert!(due > start);
        assert_eq!(b.take_ack_if_due(due - ms(1)), None);
        let acks = b.take_ack_if_due(due).expect("due");
        assert_eq!(acks.through, 1);
        assert_eq!(b.take_ack_if_due(due), None);
        assert_eq!(b.next_deadline(), None);
        assert_eq!(b.last_sent(), due);
    }

    #[test]
    fn an_unacknowledged_item_is_sent_again_then_given_up() {
        let start = Instant::now();
        let (mut a, _) = pair(start);
        a.send(start, &"hello").expect("room");
        let first = a.next_deadline().expect("retransmission timer");
        assert_eq!(a.poll_due(first - ms(1)), None);
        match a.poll_due(first) {
            Some(Resend::Send { envelope, item }) => {
                assert_eq!((envelope.token, envelope.seq, item), (11, 1, "hello"));
            }
            other => panic!("expected a retransmission, got {other:?}"),
        }
        let gave_up = loop {
            let now = a.next_deadline().expect("still trying");
            match a.poll_due(now) {
                Some(Resend::GaveUp { item }) => break item,
                Some(Resend::Send { .. }) | None => {}
            }
            assert!(now < start + Duration::from_secs(60), "never gave up");
        };
        assert_eq!(gave_up, "hello");
        assert!(a.outbox.is_empty());
    }

    #[test]
    fn forgiven_time_does_not_count_towards_giving_up() {
        let start = Instant::now();
        let (mut a, _) = pair(start);
        a.send(start, &"hello").expect("room");
        let late = start + GIVE_UP_AFTER + ms(1);
        // We were stopped for all but the last millisecond: nothing is given up yet.
        a.forgive(late, late - start - ms(1));
        assert!(!matches!(a.poll_due(late), Some(Resend::GaveUp { .. })));
    }

    #[test]
    fn the_timer_files_only_earlier_deadlines_and_tells_stale_ones() {
        let start = Instant::now();
        let (mut a, _) = pair(start);
        assert_eq!(a.arm(start), None, "nothing to retransmit");
        a.send(start, &"one").expect("room");
        let filed = a.arm(start).expect("a first deadline");
        assert!(a.is_armed_for(filed));
        a.send(start + ms(5), &"two").expect("room");
        assert_eq!(a.arm(start + ms(5)), None, "the filed deadline comes first");
        a.disarm();
        assert!(!a.is_armed_for(filed), "stale once disarmed");
        let again = a.arm(start + ms(5)).expect("re-filed");
        assert!(a.is_armed_for(again));
        // A deadline already past is filed as now.
        a.disarm();
        assert_eq!(a.arm(again + ms(500)), Some(again + ms(500)));
    }

    #[test]
    fn arming_after_a_send_files_what_a_full_arm_would() {
        let start = Instant::now();
        let (mut a, _) = pair(start);
        let queued = a.send_later(start, "one");
        let filed = a
            .arm_after_send(start, &queued)
            .expect("nothing filed yet: a full arm");
        assert_eq!(filed, start + crate::proto::reliable::INITIAL_RTO);
        let queued = a.send_later(start + ms(5), "two");
        assert_eq!(
            a.arm_after_send(start + ms(5), &queued),
            None,
            "due after the filed one"
        );
        // A quick round trip shortens the timeout, so the next frame is due before the
        // deadline filed for the first.
        a.outbox.on_acks(
            start + ms(10),
            Acks {
                through: 2,
                also: 0,
            },
        );
        assert_eq!(a.arm(start + ms(10)), None, "nothing in flight");
        let queued = a.send_later(start + ms(10), "three");
        let sooner = a
            .arm_after_send(start + ms(10), &queued)
            .expect("brought forward");
        assert!(sooner < filed);
        a.disarm();
        assert_eq!(
            a.arm(start + ms(10)),
            Some(sooner),
            "the same as a full arm"
        );
    }

    #[test]
    fn a_token_learned_late_is_on_every_later_frame() {
        let start = Instant::now();
        let mut a: Stream<&str> = Stream::new(0, start, 64);
        a.set_token(99);
        assert_eq!(a.token(), 99);
        assert_eq!(a.send(start, &"x").expect("room").token, 99);
    }
}
