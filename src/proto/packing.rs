//! Packing: what one turn of a loop sends, in as few datagrams as it fits in.
//!
//! A core queues one datagram per frame (and per guest line). Sending them as they are
//! costs the kernel its work per datagram (about 3 µs on loopback) for every one, while a
//! TCP server writes all the lines queued for a receiver in one call. So, as QUIC does,
//! the frames that wait for the same receiver at the end of one turn of the loop go in one
//! datagram, up to [`MAX_DATAGRAM`]: several frames behind the packed header
//! ([`crate::wire::unpack`] is the other end), or for a plain-text guest several lines, each
//! ending in `\n`, one after the other. Nothing waits for more: a frame alone in its turn
//! goes out alone, as it is, at once (no Nagle), so latency at one message in flight does
//! not grow.
//!
//! [`Packer`] owns that grouping, for the server, the client and the peer alike: per
//! receiver, in the order the core queued them, each group closed when the next one would
//! not fit; the kinds that always travel alone ([`crate::wire::may_pack`]: joins,
//! challenges, refusals) go alone, and what went to a receiver before and after one of them
//! stays before and after it; frames all of one stream go as a run, their token and
//! acknowledgements written once ([`crate::wire::RUN_KIND`]: 23 bytes less a frame, so
//! about 23 of the benchmarks' lines in a datagram instead of 16), others in the general
//! form. [`pack_stream`] makes the same datagrams of one stream's frames where they lie, for
//! a core that keeps a turn's frames in their stream rather than queuing one datagram each
//! (the server: a broadcast is then one frame in each window, not a queued datagram per
//! recipient). It also owns [`Outgoing`], what a queued datagram looks like to the loop.
//! It does not own the socket or when a turn ends (`net`), nor the packed layout (`wire`).

use std::collections::HashMap;
use std::net::SocketAddr;

use foldhash::fast::FixedState;

use crate::wire::{
    self, Acks, ENVELOPE_RANGE, Envelope, MAX_DATAGRAM, MAX_PACKED_FRAMES, PACKED_HEAD_LEN,
    PACKED_HEADER, PACKED_PREFIX, RUN_HEAD_LEN, RUN_HEADER, RUN_SAVING,
};

/// A sequenced datagram's own first bytes: the header and its envelope.
pub const HEAD: usize = ENVELOPE_RANGE.end;

/// A datagram a core queued: where it goes and its bytes, possibly in two pieces so a
/// payload shared by many recipients is never copied for each until it is written.
pub trait Outgoing {
    fn destination(&self) -> SocketAddr;
    /// The bytes, or for a datagram with a recipient's own head, the shared bytes whose
    /// first [`Outgoing::head`] bytes are replaced.
    fn bytes(&self) -> &[u8];
    /// Writes this recipient's own first bytes into `head` and says how many (0: `bytes`
    /// is the whole datagram as it is).
    fn head(&self, _head: &mut [u8; HEAD]) -> usize {
        0
    }
    /// The envelope this recipient's datagram carries, if it is a sequenced frame.
    fn envelope(&self) -> Option<Envelope> {
        let mut head = [0; HEAD];
        match self.head(&mut head) {
            HEAD => envelope_of(&head, self.bytes().len()),
            _ => envelope_of(self.bytes(), self.bytes().len()),
        }
    }
}

/// The envelope of a frame whose first bytes are `head` and whose length is `len`, if it
/// is of a sequenced kind (long enough to hold the envelope, [`wire::is_sequenced`]).
pub fn envelope_of(head: &[u8], len: usize) -> Option<Envelope> {
    let sequenced = wire::is_frame(head) && len >= HEAD && wire::is_sequenced(head[3]);
    sequenced.then(|| Envelope::read(head)).flatten()
}

impl Outgoing for (SocketAddr, Vec<u8>) {
    fn destination(&self) -> SocketAddr {
        self.0
    }

    fn bytes(&self) -> &[u8] {
        &self.1
    }
}

/// What a queued datagram may be packed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Nothing: it goes alone.
    Alone,
    /// Other plain-text lines (a guest's), each ending in `\n`.
    Text,
    /// Other frames of the same direction (its kind's range, see [`crate::wire::Frame`]).
    Frames(u8),
}

fn class(bytes: &[u8]) -> Class {
    if !wire::is_frame(bytes) {
        return if bytes.ends_with(b"\n") {
            Class::Text
        } else {
            Class::Alone
        };
    }
    // A packed datagram already written ([`pack_stream`]) holds what it can.
    if !wire::may_pack(bytes) || wire::is_packed(bytes) {
        return Class::Alone;
    }
    // The direction: below 0x80, 0x80..0xC0, peer mode and the rest.
    Class::Frames(bytes[3].min(0xC0) >> 6)
}

/// One datagram being put together: a list of queued items (linked through
/// [`Packer::next`]), for one destination.
#[derive(Debug, Clone, Copy)]
struct Group {
    destination: SocketAddr,
    class: Class,
    first: u32,
    last: u32,
    count: u32,
    /// The items' bytes together.
    len: usize,
    /// The token of the stream all its items are frames of, while they are: then the
    /// group goes as a run, which writes their header and envelope once
    /// ([`wire::RUN_KIND`]).
    run: Option<u64>,
    /// Whether it is still the one open for its destination (the last in
    /// [`Packer::latest`], and not closed).
    open: bool,
    /// The next group for the same destination ([`END`]: none yet), so a destination's
    /// datagrams can go out together ([`Packer::write_series`]).
    next: u32,
    /// Whether it is its destination's first group of the plan.
    leads: bool,
}

impl Group {
    /// Whether one more item of `len` bytes of `class`, a frame of stream `token` if it is
    /// a sequenced one, still fits; and then whether the group is still a run.
    fn fits(&self, class: Class, len: usize, token: Option<u64>) -> Option<Option<u64>> {
        if class != self.class {
            return None;
        }
        let (count, len) = (self.count as usize + 1, self.len + len);
        let (total, run) = match class {
            Class::Alone => return None,
            Class::Text => (len, None),
            Class::Frames(_) if count > MAX_PACKED_FRAMES => return None,
            Class::Frames(_) => {
                let run = token.filter(|_| token == self.run);
                (packed_len(count, len, run.is_some()), run)
            }
        };
        (total <= MAX_DATAGRAM).then_some(run)
    }

    /// The bytes [`Packer::write`] makes of it (the sizes of [`Group::fits`]).
    fn size(&self) -> usize {
        let count = self.count as usize;
        match self.class {
            Class::Frames(_) if count > 1 => packed_len(count, self.len, self.run.is_some()),
            _ => self.len,
        }
    }
}

/// The bytes of a packed datagram of `count` frames whose lengths alone add up to `len`:
/// as a run (`run`, [`wire::RUN_KIND`]) or in the general form.
fn packed_len(count: usize, len: usize, run: bool) -> usize {
    if run {
        // Each frame is `RUN_SAVING` shorter than alone, behind its length.
        (RUN_HEAD_LEN + PACKED_PREFIX * count + len).saturating_sub(RUN_SAVING * count)
    } else {
        PACKED_HEAD_LEN + PACKED_PREFIX * count + len
    }
}

/// Whether a datagram may be followed by another in one segmented message (UDP GSO: every
/// segment but the last is exactly [`MAX_DATAGRAM`] long): it is that long already, or it
/// is packed, and a packed datagram may end in zero bytes after its last frame
/// ([`crate::wire::unpack`] takes them). A lone frame or a guest's text may not: a receiver
/// would see the zeros as part of it.
fn may_lead(datagram: &[u8]) -> bool {
    datagram.len() == MAX_DATAGRAM || (datagram.len() < MAX_DATAGRAM && wire::is_packed(datagram))
}

/// No next item.
const END: u32 = u32::MAX;

/// Groups the datagrams of one turn by receiver (see the module documentation). Its
/// buffers are kept from one turn to the next, so a warm loop allocates nothing.
#[derive(Debug)]
pub struct Packer {
    groups: Vec<Group>,
    /// For each item, the next one in its group.
    next: Vec<u32>,
    /// The last group made for each destination (open or not: see [`Group::open`]).
    latest: HashMap<SocketAddr, u32, FixedState>,
    /// For each item, its group.
    group_of: Vec<u32>,
    /// The groups by destination: each destination's in order, one destination after the
    /// other (in the order of their first groups). [`Packer::write_series`] walks it.
    order: Vec<u32>,
}

impl Default for Packer {
    fn default() -> Packer {
        Packer::new()
    }
}

impl Packer {
    pub fn new() -> Packer {
        Packer {
            groups: Vec::new(),
            next: Vec::new(),
            latest: HashMap::with_hasher(FixedState::default()),
            group_of: Vec::new(),
            order: Vec::new(),
        }
    }

    /// Groups `items` (what one turn queued, in order) into datagrams; they are then
    /// [`Packer::len`] many, written by [`Packer::write`] with the same `items`. At most
    /// `u32::MAX - 1` items.
    pub fn plan<T: Outgoing>(&mut self, items: &[T]) {
        self.groups.clear();
        self.next.clear();
        self.latest.clear();
        self.group_of.clear();
        self.order.clear();
        // A broadcast queues one copy per receiver in the same order each time, so the
        // item this many places back usually went to the same receiver: its group, if
        // still open, is the one the map would give, found without hashing an address per
        // item (learned from the last lookup that found an open group).
        let mut period = 0;
        for (index, item) in items.iter().enumerate() {
            let index = index as u32;
            self.next.push(END);
            let bytes = item.bytes();
            let (destination, class, len) = (item.destination(), class(bytes), bytes.len());
            let token = match class {
                Class::Frames(_) => item.envelope().map(|envelope| envelope.token),
                _ => None,
            };
            let guess = (index as usize)
                .checked_sub(period)
                .filter(|_| period > 0)
                .map(|earlier| self.group_of[earlier])
                .filter(|&group| {
                    let group = &self.groups[group as usize];
                    group.open && group.destination == destination
                });
            let open = guess.or_else(|| {
                let found = self
                    .latest
                    .get(&destination)
                    .copied()
                    .filter(|&group| self.groups[group as usize].open);
                if let Some(group) = found {
                    period = (index - self.groups[group as usize].last) as usize;
                }
                found
            });
            if let Some(open) = open {
                let group = &mut self.groups[open as usize];
                if let Some(run) = group.fits(class, len, token) {
                    self.next[group.last as usize] = index;
                    group.last = index;
                    group.count += 1;
                    group.len += len;
                    group.run = run;
                    self.group_of.push(open);
                    continue;
                }
            }
            let group = self.groups.len() as u32;
            self.group_of.push(group);
            self.groups.push(Group {
                destination,
                class,
                first: index,
                last: index,
                count: 1,
                len,
                run: token,
                open: class != Class::Alone,
                next: END,
                leads: true,
            });
            // Whatever comes next for this destination goes after this one, so the group
            // before it is closed either way.
            if let Some(before) = self.latest.insert(destination, group) {
                let before = &mut self.groups[before as usize];
                before.open = false;
                before.next = group;
                self.groups[group as usize].leads = false;
            }
        }
        for (lead, group) in self.groups.iter().enumerate() {
            if group.leads {
                let mut at = lead as u32;
                while at != END {
                    self.order.push(at);
                    at = self.groups[at as usize].next;
                }
            }
        }
    }

    /// How many datagrams the last [`Packer::plan`] made.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether the last plan made no datagram.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Writes datagram `group` (below [`Packer::len`]) of the last plan into `out`
    /// (cleared first) and returns where it goes. `items` are the planned ones.
    pub fn write<T: Outgoing>(&self, items: &[T], group: usize, out: &mut Vec<u8>) -> SocketAddr {
        out.clear();
        self.append(items, group, out)
    }

    /// Appends to `out` one destination's datagrams of the last plan, in their order, as one
    /// message for UDP generic segmentation offload (`UDP_SEGMENT` of [`MAX_DATAGRAM`]):
    /// the datagrams one after the other, every one but the last padded with zeros to
    /// exactly [`MAX_DATAGRAM`], at most `max_segments` of them. The series starts at place
    /// `at` (below [`Packer::len`]) of the plan's order by destination, and ends early
    /// where a datagram may not be padded (a lone frame, a guest's text shorter than
    /// [`MAX_DATAGRAM`], a packed datagram closed by something else than the next frame of
    /// its kind not fitting) or the next one is longer than [`MAX_DATAGRAM`]. Returns where it
    /// goes, the place after the series (the next series' `at`; [`Packer::len`] after the last
    /// one) and how many datagrams it holds. With `max_segments` 1 every datagram is its
    /// own series, unpadded, as [`Packer::write`] writes it.
    pub fn write_series<T: Outgoing>(
        &self,
        items: &[T],
        mut at: usize,
        max_segments: usize,
        out: &mut Vec<u8>,
    ) -> (SocketAddr, usize, usize) {
        let mut start = out.len();
        let destination = self.append(items, self.order[at] as usize, out);
        at += 1;
        let mut segments = 1;
        while segments < max_segments && at < self.order.len() {
            let next = &self.groups[self.order[at] as usize];
            let previous = &self.groups[self.order[at - 1] as usize];
            // Padding goes only after a datagram that was closed because the next frame
            // of its kind did not fit: then it is shorter than that frame, never a small
            // datagram made large (what an address that proved nothing is sent must stay
            // below what it sent, and a frame alone, such as a challenge, may follow
            // small answers to it).
            let closed_full = out.len() - start == MAX_DATAGRAM || next.class == previous.class;
            if next.destination != destination
                || next.size() > MAX_DATAGRAM
                || !may_lead(&out[start..])
                || !closed_full
            {
                break;
            }
            out.resize(start + MAX_DATAGRAM, 0);
            start = out.len();
            self.append(items, self.order[at] as usize, out);
            debug_assert_eq!(out.len() - start, next.size(), "sized as written");
            at += 1;
            segments += 1;
        }
        (destination, at, segments)
    }

    /// [`Packer::write`] without clearing `out` first.
    fn append<T: Outgoing>(&self, items: &[T], group: usize, out: &mut Vec<u8>) -> SocketAddr {
        let group = self.groups[group];
        let mut head = [0; HEAD];
        let mut index = group.first;
        let packed = group.count > 1 && matches!(group.class, Class::Frames(_));
        if packed && let Some(token) = group.run {
            self.write_run(items, &group, token, out);
            return group.destination;
        }
        if packed {
            out.extend_from_slice(&PACKED_HEADER);
            // At most MAX_PACKED_FRAMES (`Group::fits`).
            out.push(group.count as u8);
        }
        while index != END {
            let item = &items[index as usize];
            let bytes = item.bytes();
            if packed {
                out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            }
            let own = item.head(&mut head);
            out.extend_from_slice(&head[..own]);
            out.extend_from_slice(&bytes[own..]);
            index = self.next[index as usize];
        }
        group.destination
    }

    /// Writes `group`, frames of the stream of `token` (`Packer::plan` saw to it), as a
    /// run: the token and the newest of their acknowledgements (the last frame's: each
    /// was true when its frame was made, the last is the most complete) once, then each
    /// frame as its kind, its sequence number and its body.
    fn write_run<T: Outgoing>(&self, items: &[T], group: &Group, token: u64, out: &mut Vec<u8>) {
        let envelope = |index: u32| {
            items[index as usize]
                .envelope()
                .expect("a run holds sequenced frames only (see `Packer::plan`)")
        };
        // At most MAX_PACKED_FRAMES (`Group::fits`).
        write_run_head(out, group.count as u8, token, envelope(group.last).acks);
        let mut index = group.first;
        while index != END {
            write_run_entry(out, envelope(index).seq, items[index as usize].bytes());
            index = self.next[index as usize];
        }
    }
}

/// A run's first bytes ([`RUN_HEAD_LEN`]): its header, how many frames follow, the token
/// and the acknowledgements they share.
fn write_run_head(out: &mut Vec<u8>, count: u8, token: u64, acks: Acks) {
    out.extend_from_slice(&RUN_HEADER);
    out.push(count);
    out.extend_from_slice(&token.to_be_bytes());
    out.extend_from_slice(&acks.through.to_be_bytes());
    out.extend_from_slice(&acks.also.to_be_bytes());
}

/// One frame of a run: `frame` (a whole sequenced frame, its envelope blank or not) as its
/// length, kind, `seq` and body.
fn write_run_entry(out: &mut Vec<u8>, seq: u32, frame: &[u8]) {
    out.extend_from_slice(&((frame.len() - RUN_SAVING) as u16).to_be_bytes());
    out.push(frame[3]);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&frame[HEAD..]);
}

/// What [`pack_stream`] makes of a stream's frames: datagrams ready to go.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamDatagram<'a, T: 'a> {
    /// Several frames as one run, written out.
    Run(Vec<u8>),
    /// A frame that goes alone (nothing else of the stream fit beside it): to send as it
    /// is, in the envelope of its `seq` (the stream's token, the acknowledgements given).
    Alone { seq: u32, frame: &'a T },
}

/// Packs frames of one stream, already numbered (`(seq, frame)`, in order, each a whole
/// sequenced frame with a blank envelope), into as few datagrams as they fit in: runs of
/// up to [`MAX_DATAGRAM`] bytes and [`MAX_PACKED_FRAMES`] frames carrying `token` and
/// `acks` once, in order, each closed when the next frame does not fit; a frame left alone
/// goes as it is. This is what a [`Packer`] makes of the same frames queued one by one,
/// for a core that keeps a turn's frames in their stream instead of queuing a datagram for
/// each: the server, where a broadcast puts one frame in every session's window and each
/// session's are written out once the turn ends.
pub fn pack_stream<'a, T: AsRef<[u8]> + 'a>(
    token: u64,
    acks: Acks,
    frames: impl IntoIterator<Item = (u32, &'a T)>,
    mut datagram: impl FnMut(StreamDatagram<'a, T>),
) {
    // The run being written and how many frames it holds; a frame that might still go
    // alone waits in `single` until a second one comes (most turns send one frame to each
    // client: they allocate nothing here).
    let mut run: Option<(Vec<u8>, usize)> = None;
    let mut single: Option<(u32, &'a T)> = None;
    for (seq, frame) in frames {
        let entry = PACKED_PREFIX + frame.as_ref().len() - RUN_SAVING;
        if let Some((out, count)) = &mut run {
            if *count < MAX_PACKED_FRAMES && out.len() + entry <= MAX_DATAGRAM {
                write_run_entry(out, seq, frame.as_ref());
                *count += 1;
                continue;
            }
            let (out, count) = run.take().expect("matched above");
            datagram(StreamDatagram::Run(close_run(out, count)));
            single = Some((seq, frame));
            continue;
        }
        let Some((first_seq, first)) = single.replace((seq, frame)) else {
            continue;
        };
        if packed_len(2, first.as_ref().len() + frame.as_ref().len(), true) > MAX_DATAGRAM {
            datagram(StreamDatagram::Alone {
                seq: first_seq,
                frame: first,
            });
            continue;
        }
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        write_run_head(&mut out, 0, token, acks);
        write_run_entry(&mut out, first_seq, first.as_ref());
        write_run_entry(&mut out, seq, frame.as_ref());
        single = None;
        run = Some((out, 2));
    }
    if let Some((out, count)) = run {
        datagram(StreamDatagram::Run(close_run(out, count)));
    }
    if let Some((seq, frame)) = single {
        datagram(StreamDatagram::Alone { seq, frame });
    }
}

/// A run written with [`write_run_head`]'s count left at 0, with its count: finished.
fn close_run(mut out: Vec<u8>, count: usize) -> Vec<u8> {
    // At most MAX_PACKED_FRAMES, which is a byte's.
    out[RUN_HEADER.len()] = count as u8;
    out
}

/// Packs `items` as one turn: each datagram with where it goes, in the order they go.
pub fn pack<T: Outgoing>(items: &[T]) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut packer = Packer::new();
    packer.plan(items);
    (0..packer.len())
        .map(|group| {
            let mut out = Vec::new();
            let to = packer.write(items, group, &mut out);
            (to, out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Acks, Frame, PeerFrame, RefuseReason, ToClient, ToServer};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A refusal: a kind that always travels alone.
    fn refusal() -> Vec<u8> {
        Frame::ToClient(ToClient::Refused {
            nonce: 7,
            reason: RefuseReason::Busy,
        })
        .to_bytes()
    }

    fn ack(token: u64) -> Vec<u8> {
        Frame::ToServer(ToServer::ClientAck {
            token,
            acks: Acks::default(),
        })
        .to_bytes()
    }

    #[test]
    fn frames_for_one_receiver_share_a_datagram_in_order() {
        let items: Vec<_> = (1..=5).map(|token| (addr(1), ack(token))).collect();
        let datagrams = pack(&items);
        assert_eq!(datagrams.len(), 1);
        let frames = wire::unpack(&datagrams[0].1).expect("a valid packed datagram");
        let expected: Vec<&[u8]> = items.iter().map(|(_, bytes)| &bytes[..]).collect();
        assert_eq!(frames, expected);
    }

    #[test]
    fn a_frame_alone_in_its_turn_goes_as_it_is() {
        let items = vec![(addr(1), ack(1)), (addr(2), ack(2))];
        assert_eq!(pack(&items), items);
    }

    #[test]
    fn receivers_are_kept_apart_and_each_ones_order_kept() {
        let items = vec![
            (addr(1), ack(1)),
            (addr(2), ack(2)),
            (addr(1), ack(3)),
            (addr(2), ack(4)),
        ];
        let datagrams = pack(&items);
        assert_eq!(datagrams.len(), 2);
        assert_eq!(datagrams[0].0, addr(1));
        assert_eq!(
            wire::unpack(&datagrams[0].1).unwrap(),
            [&ack(1)[..], &ack(3)]
        );
        assert_eq!(
            wire::unpack(&datagrams[1].1).unwrap(),
            [&ack(2)[..], &ack(4)]
        );
    }

    #[test]
    fn a_full_datagram_is_closed_and_the_next_one_opened() {
        // 24-byte frames plus a 2-byte length: (1200 - 5) / 26 = 45 per datagram.
        let items: Vec<_> = (0..200).map(|token| (addr(1), ack(token))).collect();
        let datagrams = pack(&items);
        let mut all = Vec::new();
        for (_, datagram) in &datagrams {
            assert!(datagram.len() <= MAX_DATAGRAM);
            all.extend(
                wire::unpack(datagram)
                    .expect("valid")
                    .into_iter()
                    .map(std::borrow::Cow::into_owned),
            );
        }
        assert_eq!(
            datagrams.len(),
            200usize.div_ceil((1200 - 5) / (ack(0).len() + 2))
        );
        assert_eq!(all, items.into_iter().map(|(_, b)| b).collect::<Vec<_>>());
    }

    #[test]
    fn joins_challenges_and_refusals_go_alone_and_keep_their_place() {
        let refusal = refusal();
        let peer_refusal = Frame::Peer(PeerFrame::Refused {
            nonce: 7,
            reason: RefuseReason::Busy,
        })
        .to_bytes();
        let items = vec![
            (addr(1), ack(1)),
            (addr(1), ack(2)),
            (addr(1), refusal.clone()),
            (addr(1), ack(3)),
            (addr(1), peer_refusal.clone()),
        ];
        let datagrams: Vec<Vec<u8>> = pack(&items).into_iter().map(|(_, d)| d).collect();
        assert_eq!(datagrams.len(), 4);
        assert_eq!(wire::unpack(&datagrams[0]).unwrap(), [&ack(1)[..], &ack(2)]);
        assert_eq!(datagrams[1..], [refusal, ack(3), peer_refusal]);
    }

    #[test]
    fn guest_lines_are_joined_each_with_its_newline() {
        let items = vec![
            (addr(1), b"[12:00:00] alice: hi\n".to_vec()),
            (addr(1), b"[12:00:00] bob: hello\n".to_vec()),
            (addr(1), b"no newline".to_vec()),
            (addr(1), b"[12:00:01] -- carol joined\n".to_vec()),
        ];
        let datagrams: Vec<Vec<u8>> = pack(&items).into_iter().map(|(_, d)| d).collect();
        assert_eq!(
            datagrams,
            [
                b"[12:00:00] alice: hi\n[12:00:00] bob: hello\n".to_vec(),
                b"no newline".to_vec(),
                b"[12:00:01] -- carol joined\n".to_vec(),
            ]
        );
        let long = vec![b'x'; 700];
        let mut line = long.clone();
        line.push(b'\n');
        let datagrams = pack(&[(addr(1), line.clone()), (addr(1), line.clone())]);
        assert_eq!(datagrams.len(), 2, "two 701-byte lines do not fit in 1200");
    }

    /// Broadcasts in the same order of receivers, then in another order, one receiver
    /// leaving mid-way, a refusal that goes alone, lines that fill datagrams: the guessed
    /// groups (see `Packer::plan`) are the ones a lookup per item gives, and every
    /// receiver gets its lines in order.
    #[test]
    fn a_receiver_order_that_changes_packs_as_a_lookup_per_item_would() {
        let refusal = refusal();
        let mut items = Vec::new();
        for round in 0..40usize {
            let mut order: Vec<u16> = (1..=6).collect();
            if round >= 20 {
                order.rotate_left(round % 6);
            }
            if round >= 30 {
                order.retain(|&port| port != 3);
            }
            for port in order {
                let line = format!(
                    "[12:00:00] alice: {round} {}\n",
                    "x".repeat(round * 37 % 300)
                );
                items.push((addr(port), line.into_bytes()));
            }
            if round == 25 {
                items.push((addr(2), refusal.clone()));
            }
        }
        // The same rules, with a lookup for every item.
        let mut expected: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let mut open: HashMap<SocketAddr, usize> = HashMap::new();
        for (to, bytes) in &items {
            let alone = bytes == &refusal;
            match open.get(to) {
                Some(&at) if !alone && expected[at].1.len() + bytes.len() <= MAX_DATAGRAM => {
                    expected[at].1.extend_from_slice(bytes);
                }
                _ => {
                    expected.push((*to, bytes.clone()));
                    if alone {
                        open.remove(to);
                    } else {
                        open.insert(*to, expected.len() - 1);
                    }
                }
            }
        }
        assert_eq!(pack(&items), expected);
    }

    /// A server's `Message` to the stream of `token`, frame `seq`, acknowledging `through`.
    fn message(token: u64, seq: u32, through: u32, text: &str) -> Vec<u8> {
        let envelope = Envelope {
            token,
            seq,
            acks: Acks { through, also: 0 },
        };
        Frame::ToClient(ToClient::Sequenced(
            envelope,
            wire::Delivery::Message {
                seq: u64::from(seq),
                time_ms: 1_764_000_000_163,
                from: "alice".into(),
                text: text.into(),
            },
        ))
        .to_bytes()
    }

    fn server_ack(token: u64) -> Vec<u8> {
        Frame::ToClient(ToClient::ServerAck {
            token,
            acks: Acks::default(),
            heartbeat_ms: 10_000,
        })
        .to_bytes()
    }

    /// Every datagram within the limit, and what they carry, in order, exactly `items`'.
    fn unpacked(datagrams: &[(SocketAddr, Vec<u8>)]) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut all = Vec::new();
        for (to, datagram) in datagrams {
            assert!(datagram.len() <= MAX_DATAGRAM, "{} bytes", datagram.len());
            match wire::unpack(datagram) {
                Ok(frames) => all.extend(frames.into_iter().map(|f| (*to, f.into_owned()))),
                Err(_) => all.push((*to, datagram.clone())),
            }
        }
        all
    }

    /// What `pack_stream` makes of `frames` (blank envelopes) for the stream of `token`
    /// with `acks`, as datagrams.
    fn stream_datagrams(token: u64, acks: Acks, frames: &[(u32, Vec<u8>)]) -> Vec<Vec<u8>> {
        let mut datagrams = Vec::new();
        pack_stream(token, acks, frames.iter().map(|(seq, f)| (*seq, f)), |d| {
            datagrams.push(match d {
                StreamDatagram::Run(bytes) => bytes,
                StreamDatagram::Alone { seq, frame } => {
                    let mut bytes = frame.clone();
                    Envelope { token, seq, acks }.patch(&mut bytes);
                    bytes
                }
            });
        });
        datagrams
    }

    #[test]
    fn a_streams_frames_packed_where_they_lie_are_what_the_packer_makes_of_them() {
        let acks = Acks {
            through: 7,
            also: 0b101,
        };
        // Every count from none to three runs' worth, of one length and of mixed ones
        // (a frame too long to share a datagram with the next goes alone).
        for count in [0, 1, 2, 3, 22, 23, 24, 46, 47, 70] {
            for long_every in [0, 5] {
                let text = |seq: u32| match long_every {
                    0 => "load 0123456789 abcd".to_owned(),
                    _ if seq.is_multiple_of(long_every) => "x".repeat(1_000),
                    _ => "short".to_owned(),
                };
                let blank: Vec<(u32, Vec<u8>)> = (1..=count)
                    .map(|seq| {
                        let mut frame = message(9, seq, 0, &text(seq));
                        Envelope::default().patch(&mut frame);
                        (seq, frame)
                    })
                    .collect();
                // The same frames queued one by one, each with its envelope, all with the
                // acknowledgements given.
                let items: Vec<_> = (1..=count)
                    .map(|seq| {
                        let mut frame = message(9, seq, 0, &text(seq));
                        Envelope {
                            token: 9,
                            seq,
                            acks,
                        }
                        .patch(&mut frame);
                        (addr(1), frame)
                    })
                    .collect();
                let packed: Vec<Vec<u8>> = pack(&items).into_iter().map(|(_, d)| d).collect();
                assert_eq!(
                    stream_datagrams(9, acks, &blank),
                    packed,
                    "{count} frames, a long one every {long_every}"
                );
            }
        }
    }

    #[test]
    fn frames_of_one_stream_go_as_a_run_and_fill_it() {
        // 72-byte frames, as the benchmarks' lines: 16 fit in the general form, 23 in a run.
        let items: Vec<_> = (1..=46)
            .map(|seq| (addr(1), message(9, seq, seq / 2, "load 0123456789 abcd")))
            .collect();
        assert_eq!(items[0].1.len(), 72);
        let datagrams = pack(&items);
        assert_eq!(datagrams.len(), 2, "23 frames a run");
        for (_, datagram) in &datagrams {
            assert_eq!(datagram[3], wire::RUN_KIND);
            // Each run carries the acknowledgements of its last frame: the newest.
            let frames = wire::unpack_decoded(datagram).unwrap();
            let last = Envelope::read(&items[22].1).unwrap().acks;
            let acks = frames[0].envelope().unwrap().acks;
            assert!(acks == last || acks == Envelope::read(&items[45].1).unwrap().acks);
        }
        let with_newest_acks: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(index, (to, bytes))| {
                let mut bytes = bytes.clone();
                let mut envelope = Envelope::read(&bytes).unwrap();
                envelope.acks.through = if index < 23 { 11 } else { 23 };
                envelope.patch(&mut bytes);
                (*to, bytes)
            })
            .collect();
        assert_eq!(unpacked(&datagrams), with_newest_acks);
    }

    #[test]
    fn frames_of_two_streams_or_standing_alone_go_in_the_general_form() {
        let one = message(9, 1, 0, "hi");
        // Another session's token at the same address (a rejoin within one turn), and a
        // bare acknowledgement: nothing to share, so each frame goes whole.
        for other in [message(10, 1, 0, "hi"), server_ack(9)] {
            let items = [(addr(1), one.clone()), (addr(1), other.clone())];
            let datagrams = pack(&items);
            assert_eq!(datagrams.len(), 1);
            assert_eq!(datagrams[0].1[3], wire::PACKED_KIND);
            assert_eq!(unpacked(&datagrams), items);
        }
        // A run that meets a frame it cannot take changes form only if the general form
        // still fits; otherwise that frame opens the next datagram.
        let mut items: Vec<_> = (1..=20)
            .map(|seq| (addr(1), message(9, seq, 0, "load 0123456789 abcd")))
            .collect();
        items.push((addr(1), server_ack(9)));
        items.push((addr(1), message(9, 21, 0, "load 0123456789 abcd")));
        let datagrams = pack(&items);
        assert_eq!(datagrams.len(), 2);
        assert_eq!(datagrams[0].1[3], wire::RUN_KIND);
        assert_eq!(datagrams[1].1[3], wire::PACKED_KIND);
        assert_eq!(unpacked(&datagrams), items);
        let few: Vec<_> = items[10..].to_vec();
        let datagrams = pack(&few);
        assert_eq!(datagrams.len(), 1);
        assert_eq!(datagrams[0].1[3], wire::PACKED_KIND);
        assert_eq!(unpacked(&datagrams), few);
    }

    #[test]
    fn frames_of_two_directions_are_never_packed_together() {
        let peer_ack = Frame::Peer(PeerFrame::Ack {
            token: 1,
            acks: Acks::default(),
        })
        .to_bytes();
        let datagrams = pack(&[(addr(1), ack(1)), (addr(1), peer_ack)]);
        assert_eq!(datagrams.len(), 2);
    }

    /// Every series of the last plan, from the first place to the last.
    fn series_of<T: Outgoing>(
        items: &[T],
        max_segments: usize,
    ) -> Vec<(SocketAddr, Vec<u8>, usize)> {
        let mut packer = Packer::new();
        packer.plan(items);
        let mut series = Vec::new();
        let mut at = 0;
        while at < packer.len() {
            let mut out = vec![7; 3];
            let (to, next, segments) = packer.write_series(items, at, max_segments, &mut out);
            assert_eq!(out.drain(..3).collect::<Vec<_>>(), [7; 3], "appended");
            assert!(next > at && segments == next - at);
            series.push((to, out, segments));
            at = next;
        }
        series
    }

    /// The datagrams of a series: every one but the last `MAX_DATAGRAM` long, the padding
    /// (zeros after what `pack` wrote) taken off by comparing with `pack`'s datagrams.
    fn segments(series: &[u8]) -> Vec<&[u8]> {
        series.chunks(MAX_DATAGRAM).collect()
    }

    /// Checks that `series` hold `pack`'s datagrams, each destination's in order, every one
    /// but a series' last padded to exactly `MAX_DATAGRAM` with zeros, and only packed ones
    /// padded.
    fn assert_series_hold_pack(
        items: &[(SocketAddr, Vec<u8>)],
        series: &[(SocketAddr, Vec<u8>, usize)],
    ) {
        let mut expected: HashMap<SocketAddr, Vec<Vec<u8>>> = HashMap::new();
        for (to, datagram) in pack(items) {
            expected.entry(to).or_default().push(datagram);
        }
        let mut got: HashMap<SocketAddr, Vec<Vec<u8>>> = HashMap::new();
        for (to, series, count) in series {
            let parts = segments(series);
            assert_eq!(parts.len(), *count);
            for (place, part) in parts.iter().enumerate() {
                let wanted = &expected[to][got.get(to).map_or(0, Vec::len)];
                if place + 1 < parts.len() {
                    assert_eq!(part.len(), MAX_DATAGRAM);
                    if wanted.len() < MAX_DATAGRAM {
                        assert!(wire::is_packed(wanted), "only packed datagrams are padded");
                    }
                }
                assert_eq!(&part[..wanted.len()], &wanted[..]);
                assert!(part[wanted.len()..].iter().all(|&b| b == 0));
                got.entry(*to).or_default().push(wanted.clone());
            }
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn a_series_holds_one_destinations_datagrams_in_order_padded() {
        // Two receivers, 200 acks each, interleaved: 5 datagrams each (45 acks a datagram),
        // which the plan's order places A1 B1 A2 B2 …, the series A1..A5 and B1..B5.
        let items: Vec<_> = (0..400)
            .map(|n| (addr(1 + (n % 2) as u16), ack(n)))
            .collect();
        let series = series_of(&items, 64);
        assert_eq!(series.len(), 2);
        assert_eq!((series[0].0, series[0].2), (addr(1), 5));
        assert_eq!((series[1].0, series[1].2), (addr(2), 5));
        assert_eq!(
            series[0].1.len(),
            4 * MAX_DATAGRAM + series[0].1.len() % MAX_DATAGRAM
        );
        assert_series_hold_pack(&items, &series);
    }

    #[test]
    fn a_series_is_split_at_its_most_segments() {
        // 100 datagrams for one receiver: series of 64 and 36; of 54 and 46.
        let items: Vec<_> = (0..45 * 100).map(|n| (addr(1), ack(n))).collect();
        for (max, counts) in [(64, vec![64, 36]), (54, vec![54, 46]), (1, vec![1; 100])] {
            let series = series_of(&items, max);
            assert_eq!(series.iter().map(|r| r.2).collect::<Vec<_>>(), counts);
            assert_series_hold_pack(&items, &series);
        }
    }

    #[test]
    fn with_one_segment_a_series_is_each_datagram_as_written() {
        let items: Vec<_> = (0..300)
            .map(|n| (addr(1 + (n % 3) as u16), ack(n)))
            .collect();
        let mut by_destination: Vec<(SocketAddr, Vec<u8>)> = pack(&items);
        by_destination.sort_by_key(|(to, _)| to.port());
        let series: Vec<_> = series_of(&items, 1)
            .into_iter()
            .map(|(to, d, _)| (to, d))
            .collect();
        assert_eq!(series, by_destination);
    }

    #[test]
    fn a_datagram_that_may_not_be_padded_ends_its_series() {
        let refusal = refusal();
        // A lone frame, the refusal (alone), then a packed datagram: three series; then
        // packed (padded), the refusal as the last of the series, and packed again.
        let items = vec![
            (addr(1), ack(1)),
            (addr(1), refusal.clone()),
            (addr(1), ack(2)),
            (addr(1), ack(3)),
        ];
        let found = series_of(&items, 64);
        assert_eq!(found.iter().map(|r| r.2).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!(found[0].1, ack(1), "a lone frame is not padded");
        assert_series_hold_pack(&items, &found);
        let items = vec![
            (addr(1), ack(1)),
            (addr(1), ack(2)),
            (addr(1), refusal.clone()),
            (addr(1), ack(3)),
            (addr(1), ack(4)),
        ];
        // Packed, but closed by the refusal, not because it was full: never padded (a
        // challenge after two small answers to an unproven address would otherwise make
        // them 1 200 bytes).
        let found = series_of(&items, 64);
        assert_eq!(found.iter().map(|r| r.2).collect::<Vec<_>>(), [1, 1, 1]);
        assert!(found[0].1.len() < 2 * ack(1).len() + 10, "not padded");
        assert_eq!(found[1].1, refusal);
        assert_series_hold_pack(&items, &found);
        // 45 acks fill a datagram (the 46th did not fit): padded by less than one frame and
        // followed by the next two; those, closed by the refusal, end the series unpadded.
        let mut items: Vec<_> = (0..47).map(|token| (addr(1), ack(token))).collect();
        items.push((addr(1), refusal.clone()));
        let found = series_of(&items, 64);
        assert_eq!(found.iter().map(|r| r.2).collect::<Vec<_>>(), [2, 1]);
        let first = pack(&items).remove(0).1;
        assert!(MAX_DATAGRAM - first.len() < ack(0).len() + 2);
        assert_eq!(found[0].1.len(), MAX_DATAGRAM + 5 + 2 * (ack(0).len() + 2));
        assert_eq!(found[1].1, refusal);
        assert_series_hold_pack(&items, &found);

        // Guests' text: datagrams of two 700-byte lines each go alone; lines that fill
        // exactly MAX_DATAGRAM go together, unpadded.
        let mut line = vec![b'x'; 700];
        line.push(b'\n');
        let items: Vec<_> = (0..3).map(|_| (addr(1), line.clone())).collect();
        let found = series_of(&items, 64);
        assert_eq!(found.iter().map(|r| r.2).collect::<Vec<_>>(), [1, 1, 1]);
        assert_series_hold_pack(&items, &found);
        let mut full = vec![b'y'; MAX_DATAGRAM - 1];
        full.push(b'\n');
        let items = vec![
            (addr(1), full.clone()),
            (addr(1), full.clone()),
            (addr(1), line.clone()),
            (addr(1), line.clone()),
        ];
        let found = series_of(&items, 64);
        assert_eq!(found.iter().map(|r| r.2).collect::<Vec<_>>(), [3, 1]);
        assert_series_hold_pack(&items, &found);

        // A datagram longer than MAX_DATAGRAM (which segmenting would cut) goes alone.
        let mut long = vec![b'z'; MAX_DATAGRAM + 100];
        long.push(b'\n');
        let items = vec![
            (addr(1), full.clone()),
            (addr(1), long.clone()),
            (addr(1), full.clone()),
        ];
        let found = series_of(&items, 64);
        assert_eq!(found.iter().map(|r| r.2).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!(found[1].1, long);
    }

    #[test]
    fn a_destinations_runs_go_as_one_series_the_receiver_unpacks_padded() {
        // 100 lines of one stream, 23 a run: five runs (E1), the first four padded.
        let items: Vec<_> = (1..=100)
            .map(|seq| (addr(1), message(9, seq, 0, "load 0123456789 abcd")))
            .collect();
        let found = series_of(&items, 64);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].2, 5);
        assert_series_hold_pack(&items, &found);
        let padded: Vec<_> = segments(&found[0].1)
            .into_iter()
            .map(|datagram| (addr(1), datagram.to_vec()))
            .collect();
        assert!(padded.iter().all(|(_, d)| d[3] == wire::RUN_KIND));
        assert_eq!(unpacked(&padded), unpacked(&pack(&items)), "padding taken");
    }
}
