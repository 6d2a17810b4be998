//! Pacing: an honest sender keeps to the flood limit its receiver announced, queueing what
//! goes beyond the burst and sending it at the allowed rate.
//!
//! [`Pacer`] owns the sender's side of the flood limit, shared by the client (the limit is
//! the server's, from its welcome) and the peer (the strictest limit the members announced
//! in their hellos): a queue of what the user typed and has not been sent yet, in order, a
//! token bucket that mirrors the receiver's, when the next item may go, and telling the user
//! once when a paste is queued. Items that the receiver does not count (a `/list`, a leave)
//! are not charged, but wait their turn like the others, so everything goes out in the order
//! it was typed. The queue is also where lines wait while there is no session at all (a
//! join, an outage), up to its capacity; and leaving waits on it, for a while
//! ([`Pacer::queue_leave`], as long as a [`LeaveWait`] says).
//!
//! It does not own sending (the caller pops what may go and sends it, stamped with the
//! moment it was released: see `flood::FloodGate` for how the receiver counts those
//! stamps), nor how the notice looks (`render`). Like the cores, it reads no clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::proto::flood::{FloodLimit, TokenBucket};

/// Leaving with lines still queued (for their turn, or for the other side to come back)
/// waits at most this long for them, then says how many were not sent (client and peer).
pub const QUEUE_DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// The most lines queued and not sent yet (waiting for their turn under the flood limit,
/// or for a session: joining, an outage). Beyond it the user is told the line was not
/// sent, rather than memory growing without bound (client and peer).
pub const MAX_QUEUED_LINES: usize = 1000;

/// How long after a paste first has to wait the user is told how much is queued: long
/// enough for the whole paste to have been read, so the count is the paste's.
pub const BACKLOG_NOTICE_DELAY: Duration = Duration::from_millis(100);

/// What the user is told once a paste is queued: `lines` wait, and one goes every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// How many queued items the receiver will count (typed lines, not `/list`).
    pub lines: usize,
    /// The pace they go at: one every this long.
    pub every: Duration,
}

/// How long leaving waits for what is still queued, before the leave goes anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveWait {
    /// At most [`QUEUE_DRAIN_LIMIT`]: someone leaving (`/quit`, Ctrl-C).
    Usual,
    /// All the time the flood limit needs to send it, and [`QUEUE_DRAIN_LIMIT`] more: the
    /// end of a script's input, which is meant to be delivered whole.
    WholeQueue,
}

#[derive(Debug, Clone)]
struct Queued<T> {
    item: T,
    charged: bool,
}

/// A sender's queue and bucket. See the module documentation.
#[derive(Debug, Clone)]
pub struct Pacer<T> {
    queue: VecDeque<Queued<T>>,
    capacity: usize,
    /// The receiver's bucket as we believe it to be; `None`: no limit (or none known).
    bucket: Option<TokenBucket>,
    /// When the user is to be told about the backlog, once it has formed.
    notice_at: Option<Instant>,
    /// Whether this backlog has been told (until the queue empties).
    told: bool,
    /// Leaving: the last item is the leave, and the rest gets until then.
    finish_by: Option<Instant>,
}

impl<T> Pacer<T> {
    /// An empty pacer that holds at most `capacity` items, with no limit yet.
    pub fn new(capacity: usize) -> Pacer<T> {
        Pacer {
            queue: VecDeque::new(),
            capacity,
            bucket: None,
            notice_at: None,
            told: false,
            finish_by: None,
        }
    }

    /// A new receiver's bucket, full at `now` (a session began): `limit` from now on.
    pub fn restart(&mut self, now: Instant, limit: Option<FloodLimit>) {
        self.bucket = limit.map(|limit| TokenBucket::new(limit, now));
    }

    /// The receiver's limit changed (a peer with a stricter one joined, or the strictest
    /// one left): what was spent stays spent.
    pub fn set_limit(&mut self, now: Instant, limit: Option<FloodLimit>) {
        match (&mut self.bucket, limit) {
            (Some(bucket), Some(limit)) => bucket.set_limit(now, limit),
            (None, Some(limit)) => self.bucket = Some(TokenBucket::new(limit, now)),
            (_, None) => self.bucket = None,
        }
    }

    /// The limit being kept to, if any.
    pub fn limit(&self) -> Option<FloodLimit> {
        self.bucket.as_ref().map(TokenBucket::limit)
    }

    /// Queues `item` behind everything queued before; `charged` if the receiver counts it
    /// against the limit. Gives it back when the queue is full.
    pub fn push(&mut self, item: T, charged: bool) -> Result<(), T> {
        if self.queue.len() >= self.capacity {
            return Err(item);
        }
        self.queue.push_back(Queued { item, charged });
        Ok(())
    }

    /// Puts `items` (oldest first) back at the head of the queue, ahead of everything:
    /// items sent and never confirmed, to send again in a new session. They were in the
    /// queue before, so the capacity does not turn them away.
    pub fn requeue(&mut self, items: impl DoubleEndedIterator<Item = (T, bool)>) {
        for (item, charged) in items.rev() {
            self.queue.push_front(Queued { item, charged });
        }
    }

    /// Leaving: queues `last` (the leave, which costs nothing) behind everything, even when
    /// the queue is full, and gives what is ahead of it until `now + patience`; after that,
    /// [`Pacer::take_expired`] drops it.
    pub fn finish_with(&mut self, now: Instant, last: T, patience: Duration) {
        self.queue.push_back(Queued {
            item: last,
            charged: false,
        });
        self.finish_by = Some(now + patience);
    }

    /// Leaving, for the client and the peer alike: queues `leave` last
    /// ([`Pacer::finish_with`]), giving what is ahead of it as long as `wait` says — unless
    /// a leave waits in the queue already. Says whether it queued this one (then the caller
    /// sends what may go now).
    pub fn queue_leave(&mut self, now: Instant, leave: T, wait: LeaveWait) -> bool {
        if self.is_finishing() {
            return false;
        }
        let patience = match wait {
            LeaveWait::Usual => QUEUE_DRAIN_LIMIT,
            LeaveWait::WholeQueue => self.patience_to_send_all(),
        };
        self.finish_with(now, leave, patience);
        true
    }

    /// Whether [`Pacer::finish_with`] queued the last item and it has not gone yet.
    pub fn is_finishing(&self) -> bool {
        self.finish_by.is_some()
    }

    /// When the wait given by [`Pacer::finish_with`] ends.
    pub fn finish_deadline(&self) -> Option<Instant> {
        self.finish_by
    }

    /// Once that wait is over: drops everything queued but the last item and says how many
    /// of the dropped items the receiver would have counted (typed lines); `None` before.
    pub fn take_expired(&mut self, now: Instant) -> Option<usize> {
        if self.finish_by.is_none_or(|at| now < at) {
            return None;
        }
        let last = self.queue.pop_back();
        let dropped = self.queue.iter().filter(|queued| queued.charged).count();
        self.queue.clear();
        self.queue.extend(last);
        Some(dropped)
    }

    /// The head of the queue if it may go at `now` (taking its token); `None` if the queue
    /// is empty or the head must wait for a token.
    pub fn pop(&mut self, now: Instant) -> Option<T> {
        let head = self.queue.front()?;
        if head.charged
            && let Some(bucket) = &mut self.bucket
            && !bucket.try_take(now)
        {
            if !self.told && self.notice_at.is_none() {
                self.notice_at = Some(now + BACKLOG_NOTICE_DELAY);
            }
            return None;
        }
        let item = self.queue.pop_front().map(|queued| queued.item);
        if self.queue.is_empty() {
            self.told = false;
            self.notice_at = None;
            self.finish_by = None;
        }
        item
    }

    /// When the head, waiting for a token, may go; `None` if nothing waits for a token
    /// (the queue is empty, or its head needs none and goes as soon as it can be sent).
    pub fn waiting_until(&self) -> Option<Instant> {
        let head = self.queue.front()?;
        match &self.bucket {
            Some(bucket) if head.charged => Some(bucket.next_token_at()),
            _ => None,
        }
    }

    /// When [`Pacer::take_notice`] will have something to say.
    pub fn notice_deadline(&self) -> Option<Instant> {
        self.notice_at
    }

    /// Once per backlog, after [`BACKLOG_NOTICE_DELAY`]: how much waits, and the pace.
    pub fn take_notice(&mut self, now: Instant) -> Option<Backlog> {
        let at = self.notice_at?;
        if now < at {
            return None;
        }
        self.notice_at = None;
        let limit = self.limit()?;
        let lines = self.queue.iter().filter(|queued| queued.charged).count();
        if lines == 0 {
            return None;
        }
        self.told = true;
        Some(Backlog {
            lines,
            every: Duration::from_secs_f64(1.0 / limit.rate_per_sec),
        })
    }

    /// How long sending everything queued takes at the limit's rate, beyond the burst the
    /// bucket holds now (zero without a limit).
    pub fn time_to_send_all(&self) -> Duration {
        let Some(limit) = self.limit() else {
            return Duration::ZERO;
        };
        let charged = self.queue.iter().filter(|queued| queued.charged).count();
        let beyond = charged.saturating_sub(limit.burst as usize);
        Duration::from_secs_f64(beyond as f64 / limit.rate_per_sec)
    }

    /// How long leaving waits for what is queued when all of it is meant to go (the end of
    /// a script's input): the time the limit needs, and [`QUEUE_DRAIN_LIMIT`] more.
    pub fn patience_to_send_all(&self) -> Duration {
        QUEUE_DRAIN_LIMIT + self.time_to_send_all()
    }

    /// Removes everything queued, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.told = false;
        self.notice_at = None;
        self.finish_by = None;
        self.queue.drain(..).map(|queued| queued.item)
    }

    /// The queued items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.queue.iter().map(|queued| &queued.item)
    }

    /// How many items are queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn five_a_second() -> Option<FloodLimit> {
        FloodLimit::from_options(5.0, 10)
    }

    /// Pops everything that may go at `now`.
    fn release(pacer: &mut Pacer<u32>, now: Instant) -> Vec<u32> {
        std::iter::from_fn(|| pacer.pop(now)).collect()
    }

    #[test]
    fn a_paste_goes_out_as_a_burst_then_at_the_rate_and_is_told_once() {
        let start = Instant::now();
        let mut pacer = Pacer::new(1000);
        pacer.restart(start, five_a_second());
        for line in 0..30 {
            pacer.push(line, true).expect("room");
        }
        assert_eq!(release(&mut pacer, start), (0..10).collect::<Vec<_>>());
        assert_eq!(pacer.take_notice(start), None);
        assert_eq!(pacer.notice_deadline(), Some(start + BACKLOG_NOTICE_DELAY));
        let told = pacer.take_notice(start + BACKLOG_NOTICE_DELAY);
        assert_eq!(
            told,
            Some(Backlog {
                lines: 20,
                every: ms(200)
            })
        );
        // The rest: one every 200 ms, on the dot, never early.
        let mut now = start;
        let mut sent = Vec::new();
        while let Some(at) = pacer.waiting_until() {
            assert!(at > now);
            now = at;
            sent.extend(release(&mut pacer, now));
        }
        assert_eq!(sent, (10..30).collect::<Vec<_>>());
        assert!(now - start <= ms(4000 + 20 * 2), "{:?}", now - start);
        assert!(now - start >= ms(4000));
        assert_eq!(pacer.take_notice(now + ms(1000)), None, "told once");
    }

    #[test]
    fn uncharged_items_keep_their_place_and_need_no_token() {
        let start = Instant::now();
        let mut pacer = Pacer::new(1000);
        pacer.restart(start, FloodLimit::from_options(1.0, 1));
        pacer.push(1, true).expect("room");
        pacer.push(2, true).expect("room");
        pacer.push(3, false).expect("room");
        assert_eq!(release(&mut pacer, start), [1]);
        assert_eq!(release(&mut pacer, start + ms(1001)), [2, 3]);
    }

    #[test]
    fn without_a_limit_everything_goes_and_the_capacity_holds() {
        let start = Instant::now();
        let mut pacer = Pacer::new(3);
        for line in 0..3 {
            pacer.push(line, true).expect("room");
        }
        assert_eq!(pacer.push(9, true), Err(9));
        pacer.requeue([(7, true), (8, true)].into_iter());
        assert_eq!(pacer.len(), 5);
        assert_eq!(release(&mut pacer, start), [7, 8, 0, 1, 2]);
        assert_eq!(pacer.waiting_until(), None);
    }

    #[test]
    fn finishing_waits_for_the_queue_then_drops_all_but_the_last() {
        let start = Instant::now();
        let mut pacer = Pacer::new(3);
        pacer.restart(start, FloodLimit::from_options(1.0, 1));
        for line in 0..3 {
            pacer.push(line, true).expect("room");
        }
        assert_eq!(release(&mut pacer, start), [0]);
        // The leave fits even in a full queue, and goes last.
        pacer.finish_with(start, 99, Duration::from_secs(1));
        assert!(pacer.is_finishing());
        assert_eq!(pacer.take_expired(start + ms(999)), None);
        assert_eq!(release(&mut pacer, start + ms(1001)), [1]);
        assert_eq!(pacer.take_expired(start + ms(1001)), Some(1));
        assert_eq!(release(&mut pacer, start + ms(1001)), [99]);
        assert!(!pacer.is_finishing() && pacer.is_empty());
    }

    #[test]
    fn a_leave_is_queued_once_and_waits_as_long_as_it_was_told() {
        let start = Instant::now();
        let mut pacer = Pacer::new(100);
        pacer.restart(start, FloodLimit::from_options(1.0, 1));
        for line in 0..5 {
            pacer.push(line, true).expect("room");
        }
        assert!(pacer.queue_leave(start, 99, LeaveWait::WholeQueue));
        // Four lines beyond the burst at one a second, and the usual limit more.
        assert_eq!(
            pacer.finish_deadline(),
            Some(start + QUEUE_DRAIN_LIMIT + Duration::from_secs(4))
        );
        assert!(!pacer.queue_leave(start + ms(1), 98, LeaveWait::Usual));
        assert_eq!(pacer.len(), 6, "the second leave is not queued");
        assert_eq!(
            pacer.finish_deadline(),
            Some(start + QUEUE_DRAIN_LIMIT + Duration::from_secs(4)),
            "nor does it change the wait"
        );

        let mut usual = Pacer::new(100);
        usual.restart(start, FloodLimit::from_options(1.0, 1));
        for line in 0..5 {
            usual.push(line, true).expect("room");
        }
        assert!(usual.queue_leave(start, 99, LeaveWait::Usual));
        assert_eq!(usual.finish_deadline(), Some(start + QUEUE_DRAIN_LIMIT));
    }

    #[test]
    fn a_stricter_limit_keeps_what_was_spent() {
        let start = Instant::now();
        let mut pacer = Pacer::new(100);
        pacer.restart(start, five_a_second());
        for line in 0..20 {
            pacer.push(line, true).expect("room");
        }
        assert_eq!(release(&mut pacer, start).len(), 10);
        pacer.set_limit(start, FloodLimit::from_options(1.0, 3));
        assert_eq!(release(&mut pacer, start + ms(999)).len(), 0);
        assert_eq!(release(&mut pacer, start + ms(1001)).len(), 1);
        assert_eq!(pacer.time_to_send_all(), Duration::from_secs(6));
    }
}
