//! Datagram I/O for the programs: one UDP socket driven for any sans-IO core.
//!
//! Owns the socket side of both binaries and of `benches/fanout.rs`: taking every waiting
//! datagram in batches ([`Io::receive`]: `recvmmsg` on Linux, one system call per batch),
//! waiting with `poll` until one comes or the core's next deadline, sending what the core
//! queued in one turn packed per receiver ([`crate::proto::packing`]) and in batches
//! ([`Io::send`]: `sendmmsg`), the socket's receive buffer size, and the
//! loop ([`drive`]) that turns all of it into calls on a core ([`Endpoint`]: the server, the
//! client, the peer). It uses the safe APIs of nix (batches, poll) and socket2 (buffer
//! size); there is no unsafe code here. It knows nothing of what datagrams mean (the cores)
//! nor of what is printed: [`log`] holds the buffered console log, the programs choose its
//! lines.
//!
//! Measured with `../shared/perf/run.sh` (guest mode, 10 and 100 clients), batching cut the
//! server's CPU per delivery by about a tenth, like the kit's `limit_mmsg` against
//! `limit_server`: the kernel's work per datagram stays, the system call around it goes.
//! Packing takes the kernel's work per datagram away too, for all but one of the frames a
//! receiver gets in a turn (`docs/performance.md` has the figures). On Linux a receiver's
//! several datagrams of a turn then go as one message of the `sendmmsg`, which the kernel
//! cuts into them (UDP generic segmentation offload, `UDP_SEGMENT` of 1200 bytes: every
//! datagram but the last padded to 1200, so only packed ones closed full may lead,
//! [`Packer::write_series`]), cheaper per datagram than one message each; a kernel or device
//! that cannot do it turns it off for the socket. A client's socket takes the other half
//! ([`coalesce_receives`], UDP GRO): the kernel hands over one sender's datagrams that
//! arrived together as one message, which [`Io::datagrams`] cuts apart again, and on
//! loopback the server's segmented message then reaches the client whole, never cut into
//! datagrams by the kernel. Elsewhere than Linux one datagram goes per system call.

pub mod client_program;
pub mod log;
pub mod server_program;

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::ops::ControlFlow;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use crate::proto::packing::{HEAD, Outgoing};
use crate::proto::packing::{Packer, envelope_of};
use crate::server::{Server, Transmit};
use crate::wire::Envelope;

/// Large enough for any UDP datagram, so an oversized one is seen whole and rejected by the
/// decoder instead of silently truncated into something that might parse. Pages of it that
/// no datagram reached are never touched, so they cost no memory.
const RECEIVE_BUFFER: usize = 65_536;

/// The socket's receive buffer is asked for this size (the kernel caps it at
/// `net.core.rmem_max`). The default (208 KiB on Linux) holds a few hundred small
/// datagrams: with a thousand named clients, the acknowledgements they send after one burst
/// of broadcasts overflowed it, and every lost acknowledgement cost retransmissions
/// (measured by `benches/fanout.rs`, 1 000 clients: 210 000 drops and 2.6 datagrams sent
/// per delivery). Memory is only used while datagrams wait.
pub const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// A sans-IO core as the socket loop sees it: datagrams and the time in, datagrams and the
/// next deadline out. The server is one; the client program's `Core` (a client or a peer)
/// is the other.
pub trait Endpoint {
    /// One datagram to send.
    type Transmit: Outgoing;
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_transmit(&mut self) -> Option<Self::Transmit>;
    /// Every datagram queued, in order, for the loop to pack where they lie and then
    /// [`Endpoint::discard_transmits`]; `None` (the default) when the core only hands them
    /// out one by one. The server queues one per receiver of a fan-out.
    fn queued_transmits(&mut self) -> Option<&mut [Self::Transmit]> {
        None
    }
    /// Forgets the first `count` of [`Endpoint::queued_transmits`]: they were sent.
    fn discard_transmits(&mut self, _count: usize) {}
    /// After every batch of datagrams: whether the batch was full (more are probably
    /// waiting, the loop is not keeping up). Only the server acts on it.
    fn handle_loop_report(&mut self, _now: Instant, _fell_behind: bool) {}
}

impl Outgoing for Transmit {
    fn destination(&self) -> SocketAddr {
        self.destination
    }

    fn bytes(&self) -> &[u8] {
        &self.payload
    }

    fn head(&self, head: &mut [u8; HEAD]) -> usize {
        match &self.envelope {
            Some(envelope) if self.payload.len() >= HEAD => {
                head.copy_from_slice(&self.payload[..HEAD]);
                envelope.patch(head);
                HEAD
            }
            _ => 0,
        }
    }

    fn envelope(&self) -> Option<Envelope> {
        // The recipient's own envelope when it has one, without writing its head.
        let frame = envelope_of(&self.payload, self.payload.len())?;
        Some(self.envelope.unwrap_or(frame))
    }
}

impl Endpoint for Server {
    type Transmit = Transmit;
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        Server::handle_datagram(self, now, from, datagram);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Server::handle_timeout(self, now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Server::poll_timeout(self)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Server::poll_transmit(self)
    }
    fn queued_transmits(&mut self) -> Option<&mut [Transmit]> {
        Some(Server::queued_transmits(self))
    }
    fn discard_transmits(&mut self, count: usize) {
        Server::discard_transmits(self, count);
    }
    fn handle_loop_report(&mut self, now: Instant, fell_behind: bool) {
        Server::handle_loop_report(self, now, fell_behind);
    }
}

/// Runs a core on `socket` until `after` breaks, and returns what it broke with.
///
/// Each turn takes every datagram already waiting, hands them to the core, runs its timers
/// when due, sends what it queued, then calls `after` with the core still locked (to print
/// its events, look at files, decide to stop), telling it whether datagrams came. It goes
/// on without waiting while datagrams keep coming; only when none came does it block, until
/// one comes, the core's next deadline, or the instant `after` returned, whichever is
/// first. So a busy program can write its log in large chunks (one system call per many
/// lines) while on a quiet one each line still appears at once; and timers run between
/// batches when due, so a server that is never idle still evicts silent clients and
/// retransmits.
///
/// Other threads share the core through `core` (typed lines, console commands) and send
/// what they caused with [`send_each`]; [`wake`] ends the loop's wait at once.
pub fn drive<C: Endpoint, R>(
    socket: &UdpSocket,
    core: &Mutex<C>,
    mut after: impl FnMut(&mut C, Instant, bool) -> ControlFlow<R, Instant>,
) -> R {
    let mut io = Io::new(socket);
    let mut wait = None;
    loop {
        let count = io.receive(socket, wait);
        let now = Instant::now();
        let mut core = lock(core);
        for (datagram, from) in io.datagrams() {
            core.handle_datagram(now, from, datagram);
        }
        core.handle_loop_report(now, io.fell_behind(count));
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        io.send(socket, &mut *core);
        let wake_at = match after(&mut core, now, count > 0) {
            ControlFlow::Break(result) => return result,
            ControlFlow::Continue(at) => at,
        };
        wait = if count > 0 {
            // Maybe more is waiting: look without blocking before anything else.
            None
        } else {
            let deadline = core.poll_timeout().map_or(wake_at, |t| t.min(wake_at));
            Some(deadline.saturating_duration_since(Instant::now()))
        };
    }
}

/// Sends every datagram `core` queued, packed ([`Packer`]), one per system call: for the
/// other threads' rare sends (a typed line, a console command); the loop of [`drive`] sends
/// in batches.
pub fn send_each<C: Endpoint>(socket: &UdpSocket, core: &mut C) {
    let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    let pending: Vec<C::Transmit> = std::iter::from_fn(|| core.poll_transmit()).collect();
    let mut packer = Packer::new();
    packer.plan(&pending);
    let mut datagram = Vec::new();
    for group in 0..packer.len() {
        let to = packer.write(&pending, group, &mut datagram);
        // A failed send concerns one recipient (unreachable, buffer full); UDP makes no
        // promise anyway, so the others still get theirs (and a sequenced frame is sent
        // again later).
        let _ = socket.send_to(&datagram, reachable(to, v6));
    }
}

/// Ends the wait of the [`drive`] loop on `socket` at once: an empty datagram to itself,
/// which the loop drops unseen.
pub fn wake(socket: &UdpSocket) {
    if let Some(own) = own_address(socket) {
        let _ = socket.send_to(&[], own);
    }
}

/// Asks for a receive buffer of [`RECEIVE_BUFFER_BYTES`]; a smaller one still works.
pub fn enlarge_receive_buffer(socket: &UdpSocket) {
    let _ = socket2::SockRef::from(socket).set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
}

/// Locks a mutex shared between a program's threads. A panic while holding the lock would
/// be a bug; serving on with the state as it is beats taking the whole chat down, so a
/// poisoned lock is used anyway.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An address of this machine at which `socket` can be reached (for [`wake`]).
fn own_address(socket: &UdpSocket) -> Option<SocketAddr> {
    let local = socket.local_addr().ok()?;
    Some(match local.ip() {
        ip if !ip.is_unspecified() => local,
        std::net::IpAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], local.port())),
        std::net::IpAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, local.port())),
    })
}

/// A dual-stack IPv6 socket reaches IPv4 addresses through IPv4-mapped ones.
fn reachable(addr: SocketAddr, socket_is_v6: bool) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) if socket_is_v6 => {
            SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0).into()
        }
        other => other,
    }
}

/// Turns `wait` into whole milliseconds, rounded up, so the deadline has passed on return.
fn wait_ms(wait: Duration) -> u32 {
    wait.as_nanos()
        .div_ceil(1_000_000)
        .min(i32::MAX as u128)
        .try_into()
        .unwrap_or(i32::MAX as u32)
}

pub use batch::{Io, coalesce_receives};

/// Linux: `recvmmsg` takes every waiting datagram (up to [`RECV_BATCH`]) in one system
/// call without blocking, `poll` waits when none is waiting, and `sendmmsg` sends up to
/// [`SEND_BATCH`] messages per call, each a destination's series of up to [`GSO_SEGMENTS`]
/// datagrams that the kernel segments (`UDP_SEGMENT`), or one datagram when GSO is off.
/// The datagrams are written (packed) into one buffer first: a copy of at most 1200 bytes
/// each, which costs far less than the kernel's work for each datagram it saves.
#[cfg(target_os = "linux")]
mod batch {
    use std::io::{IoSlice, IoSliceMut};
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::Duration;

    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::{
        ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, cmsg_space,
        getsockopt, recvmmsg, sendmmsg, setsockopt, sockopt,
    };

    use super::{Endpoint, Outgoing, Packer, RECEIVE_BUFFER, own_address, reachable, wait_ms};
    use crate::wire::MAX_DATAGRAM;

    /// Datagrams taken per `recvmmsg`. What one batch brings is handled in one turn, and
    /// what a turn queues for a receiver is packed: a deeper batch packs fuller datagrams
    /// when the loop falls behind. At 32, a turn of 32 guest lines of 76 bytes left each
    /// guest datagrams of 15, 15 and 2 lines; at 128 a backlog of a window of 128 messages
    /// is taken in one turn (measured at window 128, 100 guests: 16 % fewer datagrams, 6 %
    /// less CPU per delivery). Nothing waits for it: a batch is what is already waiting.
    /// Its buffers are touched only as far as datagrams reach (a page per slot).
    pub const RECV_BATCH: usize = 128;
    /// Messages taken per `recvmmsg` on a socket that coalesces receives: each may hold up
    /// to 54 datagrams, and its headers are made anew after most receives (see
    /// `Io::coalesced`): for 128 of them, 11 KB allocated and written each time.
    const COALESCED_BATCH: usize = 16;
    /// Messages sent per `sendmmsg` (the kernel accepts up to 1024).
    pub const SEND_BATCH: usize = 256;
    /// The bytes written for one `sendmmsg` before it is sent: as many as [`SEND_BATCH`]
    /// full datagrams, so the buffer is what it was before messages held several.
    const SEND_BYTES: usize = SEND_BATCH * MAX_DATAGRAM;
    /// The most datagrams in one segmented message: the kernel takes at most 64 segments
    /// (`UDP_MAX_SEGMENTS`) and a message of at most 64 KiB with its headers (an IP
    /// datagram's length field), which at [`MAX_DATAGRAM`] is the tighter: 54, 64 800 bytes.
    pub const GSO_SEGMENTS: usize = {
        let by_bytes = 65_000 / MAX_DATAGRAM;
        if by_bytes < 64 { by_bytes } else { 64 }
    };
    /// The segment size every message is sent with while segmenting is on. A message no
    /// longer than it goes as the one datagram it is, so one control message serves them all.
    const SEGMENT: u16 = MAX_DATAGRAM as u16;
    /// The most queued datagrams packed together: what a turn queued beyond it is packed
    /// apart (a storm of joins queues millions), so the memory held stays bounded. At 100
    /// clients it is 163 broadcasts, more than a full receive batch brings (at 4096, a
    /// turn of 128 was cut into packing rounds every 41 lines, each ending in a part-full
    /// datagram per receiver).
    pub const PACK_BATCH: usize = 16384;

    /// Buffers reused by every call, so the loop allocates nothing once warm.
    pub struct Io<T> {
        buffers: Vec<u8>,
        /// The receive side's headers. The send side has its own: a send points a header's
        /// address at the addresses given to it, which a receive would then write into.
        /// (Each header keeps the address length of its last receive as its capacity; one
        /// socket's senders are all of one family, so it never needs to grow back.)
        receiving: MultiHeaders<SockaddrStorage>,
        /// Whether the sockets read may hand over several datagrams as one
        /// ([`coalesce_receives`], on the socket given to [`Io::new`]). Then a header that
        /// took a message without a control message is made anew: the kernel left it no
        /// room for the next one's (the length is the room going in and what was written
        /// coming out, and nix does not restore it: nix-rust/nix#2813), and a coalesced
        /// message without its segment size could not be cut apart.
        coalesced: bool,
        sending: MultiHeaders<SockaddrStorage>,
        /// The send side's headers with room for the segment size (while GSO is on), for a
        /// batch in which some message holds several datagrams: a batch of one datagram per
        /// message goes without, as it did before GSO: sending every message with the
        /// option (the kernel then builds even a lone datagram in page fragments) measured
        /// dearer with one message in flight (`docs/performance.md`, "UDP GSO on the send
        /// path").
        sending_segmented: Option<MultiHeaders<SockaddrStorage>>,
        /// The last receive's messages: (slot, length, sender, the length of each datagram
        /// in it). A message is one datagram, or several of one sender that the kernel
        /// handed over together (UDP GRO, [`coalesce_receives`]): all as long as the
        /// first, but the last, which may be shorter.
        received: Vec<(usize, usize, SocketAddr, usize)>,
        /// What the core queued, packed by `packer` into the messages written in `out`.
        pending: Vec<T>,
        packer: Packer,
        /// The messages of one `sendmmsg`, one after the other: message `i` ends at
        /// `ends[i]` and goes to `addresses[i]`.
        out: Vec<u8>,
        ends: Vec<usize>,
        addresses: Vec<Option<SockaddrStorage>>,
        /// Whether a message written in `out` holds several datagrams.
        segmented: bool,
        /// Whether messages are sent segmented (UDP GSO, [`GSO_SEGMENTS`] datagrams at most
        /// in each): from the start if the kernel knows `UDP_SEGMENT`, until a send says the
        /// kernel or the device cannot do it.
        gso: bool,
        /// The segment size asked for ([`SEGMENT`]; tests ask for an impossible one to see
        /// the fallback).
        segment: u16,
        own: Option<SocketAddr>,
        v6: bool,
    }

    impl<T: Outgoing> Io<T> {
        pub fn new(socket: &UdpSocket) -> Io<T> {
            // A kernel without UDP GSO (before 4.18) does not know the option.
            let gso = getsockopt(socket, sockopt::UdpGsoSegment).is_ok();
            let coalesced = getsockopt(socket, sockopt::UdpGroSegment).unwrap_or(false);
            Io {
                buffers: vec![0; RECV_BATCH * RECEIVE_BUFFER],
                receiving: receiving_headers(receiving_batch(coalesced)),
                coalesced,
                sending: MultiHeaders::preallocate(SEND_BATCH, None),
                sending_segmented: gso.then(|| {
                    MultiHeaders::preallocate(
                        SEND_BATCH,
                        Some(Vec::with_capacity(cmsg_space::<u16>())),
                    )
                }),
                segmented: false,
                received: Vec::with_capacity(RECV_BATCH),
                pending: Vec::new(),
                packer: Packer::new(),
                out: Vec::with_capacity(SEND_BYTES),
                ends: Vec::with_capacity(SEND_BATCH),
                addresses: vec![None; SEND_BATCH],
                gso,
                segment: SEGMENT,
                own: own_address(socket),
                v6: socket.local_addr().is_ok_and(|a| a.is_ipv6()),
            }
        }

        /// Whether a receive of `count` datagrams filled the batch: more are probably
        /// waiting, the loop is not keeping up.
        pub fn fell_behind(&self, count: usize) -> bool {
            count >= self.receiving_batch()
        }

        /// Messages one receive takes at most.
        fn receiving_batch(&self) -> usize {
            receiving_batch(self.coalesced)
        }

        /// Takes the datagrams waiting on `socket`; with `wait`, first waits up to that
        /// long for one to come. Returns how many were taken (0 after a timeout, or an
        /// error, which with UDP concerns one peer, not the program).
        pub fn receive(&mut self, socket: &UdpSocket, wait: Option<Duration>) -> usize {
            self.received.clear();
            if let Some(wait) = wait {
                let timeout = PollTimeout::try_from(wait_ms(wait)).unwrap_or(PollTimeout::MAX);
                let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
                if !poll(&mut fds, timeout).is_ok_and(|ready| ready > 0) {
                    return 0;
                }
            }
            let mut chunks = self.buffers.chunks_exact_mut(RECEIVE_BUFFER);
            let mut slices: [[IoSliceMut<'_>; 1]; RECV_BATCH] = std::array::from_fn(|_| {
                [IoSliceMut::new(
                    chunks.next().expect("one buffer for each slot"),
                )]
            });
            let Ok(messages) = recvmmsg(
                socket.as_raw_fd(),
                &mut self.receiving,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) else {
                return 0;
            };
            let (mut count, mut room_lost) = (0, false);
            for (slot, message) in messages.enumerate() {
                count += 1;
                let each = message.cmsgs().ok().and_then(|mut control| {
                    control.find_map(|c| match c {
                        ControlMessageOwned::UdpGroSegments(size) => usize::try_from(size).ok(),
                        _ => None,
                    })
                });
                room_lost |= each.is_none();
                let Some(from) = message.address.as_ref().and_then(socket_addr) else {
                    continue;
                };
                // The empty datagram `wake` sends only ends the wait.
                if message.bytes == 0 && Some(from) == self.own {
                    continue;
                }
                if self.coalesced && message.flags.contains(MsgFlags::MSG_CTRUNC) {
                    // No room was left for the control message saying how long each of
                    // several datagrams is, so they cannot be told apart: dropped, as a
                    // loss (a sequenced frame is sent again). Headers made anew as below
                    // always have the room.
                    continue;
                }
                let each = each.filter(|&size| size > 0).unwrap_or(message.bytes);
                self.received.push((slot, message.bytes, from, each));
            }
            if self.coalesced && room_lost {
                self.receiving = receiving_headers(self.receiving_batch());
            }
            count
        }

        /// The datagrams taken by the last [`Io::receive`], with their senders: those the
        /// kernel handed over together cut apart again, in order.
        pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
            self.received.iter().flat_map(|&(slot, len, from, each)| {
                let start = slot * RECEIVE_BUFFER;
                let message = &self.buffers[start..start + len.min(RECEIVE_BUFFER)];
                // An empty datagram is one datagram (`chunks` would give none).
                let one = message.is_empty().then_some(message);
                one.into_iter()
                    .chain(message.chunks(each.max(1)))
                    .map(move |datagram| (datagram, from))
            })
        }

        /// Sends everything the core has queued, packed per receiver, in order: where
        /// the core keeps it when it can ([`Endpoint::queued_transmits`]), else moved out
        /// one by one.
        pub fn send<C: Endpoint<Transmit = T>>(&mut self, socket: &UdpSocket, core: &mut C) {
            loop {
                if let Some(queued) = core.queued_transmits() {
                    let count = queued.len().min(PACK_BATCH);
                    if count == 0 {
                        return;
                    }
                    self.pack_and_send(socket, &queued[..count]);
                    core.discard_transmits(count);
                    continue;
                }
                let mut pending = std::mem::take(&mut self.pending);
                pending.clear();
                while pending.len() < PACK_BATCH {
                    match core.poll_transmit() {
                        Some(transmit) => pending.push(transmit),
                        None => break,
                    }
                }
                let done = pending.is_empty();
                self.pack_and_send(socket, &pending);
                pending.clear();
                self.pending = pending;
                if done {
                    return;
                }
            }
        }

        /// Packs `items` (one turn's, in order) and sends the datagrams in batches: while
        /// GSO is on, each destination's series of them as one message that the kernel cuts
        /// into datagrams ([`Packer::write_series`]), else one datagram per message.
        fn pack_and_send(&mut self, socket: &UdpSocket, items: &[T]) {
            self.packer.plan(items);
            self.out.clear();
            self.ends.clear();
            let mut at = 0;
            while at < self.packer.len() {
                let segments = if self.gso { GSO_SEGMENTS } else { 1 };
                if self.ends.len() == SEND_BATCH
                    || self.out.len() + segments * MAX_DATAGRAM > SEND_BYTES
                {
                    self.send_written(socket);
                }
                let start = self.out.len();
                let (to, next, count) =
                    self.packer.write_series(items, at, segments, &mut self.out);
                self.segmented |= count > 1;
                at = next;
                let to = reachable(to, self.v6);
                if self.gso && count == 1 && self.out.len() - start > MAX_DATAGRAM {
                    // One datagram longer than a segment, which the kernel would cut (no
                    // core queues one today): on its own, after what was written before it.
                    self.send_written(socket);
                    let _ = socket.send_to(&self.out, to);
                    self.out.clear();
                    continue;
                }
                self.addresses[self.ends.len()] = Some(SockaddrStorage::from(to));
                self.ends.push(self.out.len());
            }
            self.send_written(socket);
        }

        /// Sends the messages written (`ends`), and forgets them; what was written after
        /// the last of them stays, at the start of `out`.
        fn send_written(&mut self, socket: &UdpSocket) {
            let count = self.ends.len();
            let mut sent = 0;
            while sent < count {
                match self.send_from(socket, sent) {
                    Ok(done) if done > 0 => sent += done,
                    // Interrupted by a signal before anything went: try again.
                    Err(Errno::EINTR) => {}
                    // The kernel or the device cannot segment, or this message cannot go
                    // anyway: sent alone, unsegmented, it says which. A destination's fault
                    // (port 0, which any forged datagram can claim, is refused with EINVAL
                    // too) costs that message, as below, and segmenting stays on; the
                    // segmenting's, it is never asked for again on this socket, and what is
                    // left of this batch goes one datagram per system call. (The padding is
                    // harmless: only packed datagrams were padded.)
                    Err(Errno::EIO | Errno::EINVAL | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP)
                        if self.gso && self.segmented =>
                    {
                        if self.send_each_datagram(socket, sent, sent + 1) {
                            self.gso = false;
                            self.sending_segmented = None;
                            self.send_each_datagram(socket, sent + 1, count);
                            break;
                        }
                        sent += 1;
                    }
                    // The first message failed (unreachable, buffer full): UDP promises
                    // nothing anyway, so skip it and send the rest, as `send_to` would (a
                    // sequenced frame is sent again later).
                    _ => sent += 1,
                }
            }
            self.out.drain(..self.ends.last().copied().unwrap_or(0));
            self.ends.clear();
            self.segmented = false;
        }

        /// One `sendmmsg` of the messages written from `first` on: how many went.
        fn send_from(&mut self, socket: &UdpSocket, first: usize) -> nix::Result<usize> {
            let Io {
                sending,
                sending_segmented,
                out,
                ends,
                addresses,
                segmented,
                segment,
                ..
            } = self;
            let mut start = first.checked_sub(1).map_or(0, |before| ends[before]);
            let mut written = ends[first..].iter();
            let slices: [[IoSlice<'_>; 1]; SEND_BATCH] =
                std::array::from_fn(|_| match written.next() {
                    Some(&end) => {
                        let message = &out[start..end];
                        start = end;
                        [IoSlice::new(message)]
                    }
                    None => [IoSlice::new(&[])],
                });
            let option = [ControlMessage::UdpGsoSegments(&*segment)];
            let (headers, control): (_, &[ControlMessage<'_>]) = match sending_segmented {
                Some(headers) if *segmented => (headers, &option),
                _ => (sending, &[]),
            };
            let count = ends.len() - first;
            sendmmsg(
                socket.as_raw_fd(),
                headers,
                slices[..count].iter(),
                &addresses[first..first + count],
                control,
                MsgFlags::empty(),
            )
            .map(Iterator::count)
        }

        /// Sends the datagrams of the messages written from `first` to before `end`, one per
        /// system call (every one but a message's last is [`MAX_DATAGRAM`] long): the way
        /// out of a batch that could not be segmented. Returns whether the first of them
        /// went.
        fn send_each_datagram(&self, socket: &UdpSocket, first: usize, end: usize) -> bool {
            let mut start = first.checked_sub(1).map_or(0, |before| self.ends[before]);
            let mut first_went = None;
            for (message, &message_end) in self.ends.iter().enumerate().take(end).skip(first) {
                let to = self.addresses[message].as_ref().and_then(socket_addr);
                for datagram in self.out[start..message_end].chunks(MAX_DATAGRAM) {
                    let went = to.is_some_and(|to| socket.send_to(datagram, to).is_ok());
                    first_went.get_or_insert(went);
                }
                start = message_end;
            }
            first_went.unwrap_or(false)
        }
    }

    /// Lets the kernel hand over several datagrams of one sender, arrived together, as one
    /// message of up to 64 KiB (UDP GRO, Linux 5.0 on), which [`Io::datagrams`] cuts apart
    /// again: the receiving counterpart of sending segmented. On loopback a segmented
    /// message from the server then reaches a client whole, and the kernel does not cut it
    /// into datagrams for it (in the sender's time: most of the server's own system time
    /// per datagram it sends). For a socket that receives fan-out (clients, peers), set
    /// before [`Io::new`] is given it; a server's clients send it single datagrams, with
    /// nothing to coalesce. Where the kernel does not know the option, each datagram comes
    /// alone as before.
    pub fn coalesce_receives(socket: &UdpSocket) {
        let _ = setsockopt(socket, sockopt::UdpGroSegment, &true);
    }

    /// Messages one receive takes at most, on a socket that coalesces receives or not.
    fn receiving_batch(coalesced: bool) -> usize {
        if coalesced {
            COALESCED_BATCH
        } else {
            RECV_BATCH
        }
    }

    /// Headers for `count` receives, each with room for the one control message a
    /// coalesced message carries (its segment size).
    fn receiving_headers(count: usize) -> MultiHeaders<SockaddrStorage> {
        MultiHeaders::preallocate(count, Some(Vec::with_capacity(cmsg_space::<i32>())))
    }

    fn socket_addr(name: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(sin) = name.as_sockaddr_in() {
            return Some(SocketAddr::V4((*sin).into()));
        }
        name.as_sockaddr_in6()
            .map(|sin6| SocketAddr::V6((*sin6).into()))
    }

    #[cfg(test)]
    mod tests {
        use std::collections::{HashMap, VecDeque};
        use std::time::Instant;

        use super::*;
        use crate::proto::packing::pack;
        use crate::wire::{Acks, Frame, ToServer};

        /// A core that only sends what it was given.
        struct Queue(VecDeque<(SocketAddr, Vec<u8>)>);

        impl Endpoint for Queue {
            type Transmit = (SocketAddr, Vec<u8>);
            fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}
            fn handle_timeout(&mut self, _: Instant) {}
            fn poll_timeout(&self) -> Option<Instant> {
                None
            }
            fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
                self.0.pop_front()
            }
        }

        fn ack(token: u64) -> Vec<u8> {
            Frame::ToServer(ToServer::ClientAck {
                token,
                acks: Acks::default(),
            })
            .to_bytes()
        }

        fn bound() -> UdpSocket {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("a read timeout");
            socket
        }

        /// Sends 400 acks, to two receivers in turn, through `io`, and checks that each
        /// receiver gets `pack`'s datagrams for it, in order, each either as it is or, if
        /// `padded` says so, padded with zeros to MAX_DATAGRAM when a packed one.
        fn send_and_check(io: &mut Io<(SocketAddr, Vec<u8>)>, sender: &UdpSocket, padded: bool) {
            send_after_and_check(io, sender, padded, Vec::new());
        }

        /// [`send_and_check`], with `before` queued ahead of the 400 acks.
        fn send_after_and_check(
            io: &mut Io<(SocketAddr, Vec<u8>)>,
            sender: &UdpSocket,
            padded: bool,
            before: Vec<(SocketAddr, Vec<u8>)>,
        ) {
            let receivers = [bound(), bound()];
            let to: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
            let items: Vec<_> = (0..400u64).map(|n| (to[n as usize % 2], ack(n))).collect();
            let mut expected: HashMap<SocketAddr, Vec<Vec<u8>>> = HashMap::new();
            for (to, datagram) in pack(&items) {
                expected.entry(to).or_default().push(datagram);
            }
            let queued = before.into_iter().chain(items);
            io.send(sender, &mut Queue(queued.collect()));
            let mut buffer = vec![0; RECEIVE_BUFFER];
            for receiver in &receivers {
                let wanted = &expected[&receiver.local_addr().unwrap()];
                assert_eq!(wanted.len(), 5);
                for (place, datagram) in wanted.iter().enumerate() {
                    // A deadline of 10 s (the read timeout): loopback delivers at once.
                    let (len, _) = receiver.recv_from(&mut buffer).expect("every datagram");
                    let last = place + 1 == wanted.len();
                    assert_arrived(&buffer[..len], datagram, padded && !last);
                }
            }
        }

        #[test]
        fn a_destinations_run_goes_segmented_and_arrives_as_its_datagrams_in_order() {
            let sender = bound();
            let mut io = Io::new(&sender);
            assert!(io.gso, "this kernel has UDP GSO");
            send_and_check(&mut io, &sender, true);
            assert!(io.gso);
        }

        #[test]
        fn a_send_that_cannot_be_segmented_turns_gso_off_and_still_delivers() {
            let sender = bound();
            let mut io = Io::new(&sender);
            // A segment of 1 byte: a message of more than 64 segments, which the
            // kernel refuses (EINVAL) as it would a segmenting it cannot do.
            io.segment = 1;
            send_and_check(&mut io, &sender, true);
            assert!(!io.gso, "off for good");
            send_and_check(&mut io, &sender, false);
        }

        /// Checks that `got` is the datagram `sent`, in order: with `padded`, padded with
        /// zeros to a whole segment, as a packed datagram that is not a series' last.
        fn assert_arrived(got: &[u8], sent: &[u8], padded: bool) {
            if padded {
                assert_eq!(got.len(), MAX_DATAGRAM, "padded to a whole segment");
            } else {
                assert_eq!(got.len(), sent.len(), "not padded");
            }
            assert_eq!(&got[..sent.len()], sent, "in order");
            assert!(got[sent.len()..].iter().all(|&b| b == 0));
        }

        /// Receives through `io` on `socket` until `wanted` datagrams came (10 s at most):
        /// the datagrams, and how many messages brought them.
        fn receive_all(
            io: &mut Io<(SocketAddr, Vec<u8>)>,
            socket: &UdpSocket,
            wanted: usize,
        ) -> (Vec<Vec<u8>>, usize) {
            let deadline = Instant::now() + Duration::from_secs(10);
            let (mut got, mut messages) = (Vec::new(), 0);
            while got.len() < wanted && Instant::now() < deadline {
                messages += io.receive(socket, Some(Duration::from_millis(100)));
                got.extend(io.datagrams().map(|(datagram, _)| datagram.to_vec()));
            }
            (got, messages)
        }

        #[test]
        fn datagrams_the_kernel_hands_over_together_are_cut_apart_again() {
            let sender = bound();
            let mut sending = Io::new(&sender);
            let receiver = bound();
            coalesce_receives(&receiver);
            let mut receiving = Io::new(&receiver);
            assert!(receiving.coalesced, "this kernel has UDP GRO");
            let to = receiver.local_addr().unwrap();
            for round in 0..4u64 {
                // A datagram sent unsegmented comes without a segment size, and the kernel
                // leaves its header no room for the next one's. Before and after the run
                // in turn, so that the run's message falls where the lone one was.
                let alone = (to, ack(1000 + round));
                let run: Vec<_> = (0..200u64).map(|n| (to, ack(n))).collect();
                let mut expected: Vec<(Vec<u8>, bool)> = pack(&run)
                    .into_iter()
                    .map(|(_, datagram)| (datagram, true))
                    .collect();
                expected.last_mut().expect("a datagram").1 = false;
                assert!(expected.len() > 1);
                // Two sends, so the lone datagram is not packed with the run.
                let mut sends = vec![VecDeque::from([alone.clone()]), VecDeque::from(run)];
                let lone_at = if round % 2 == 0 {
                    expected.insert(0, (alone.1, false));
                    0
                } else {
                    sends.reverse();
                    expected.push((alone.1, false));
                    expected.len() - 1
                };
                for queued in sends {
                    sending.send(&sender, &mut Queue(queued));
                }
                let (got, messages) = receive_all(&mut receiving, &receiver, expected.len());
                assert_eq!(got.len(), expected.len(), "round {round}: every datagram");
                assert_eq!(got[lone_at], ack(1000 + round));
                assert!(messages < got.len(), "round {round}: some came together");
                for ((datagram, padded), got) in expected.iter().zip(&got) {
                    assert_arrived(got, datagram, *padded);
                }
            }
        }

        #[test]
        fn a_destination_that_refuses_a_send_does_not_turn_gso_off() {
            let sender = bound();
            let mut io = Io::new(&sender);
            // Port 0, which a forged datagram can claim as its source: the kernel refuses
            // to send there with EINVAL, as it does a segmenting it cannot do. Its two
            // datagrams go first, as one segmented message.
            let nowhere = SocketAddr::from(([127, 0, 0, 1], 0));
            let refused = (0..60).map(|n| (nowhere, ack(n))).collect();
            send_after_and_check(&mut io, &sender, true, refused);
            assert!(io.gso, "still on");
        }
    }
}

/// The portable fallback: one datagram per system call, waiting with the socket's read
/// timeout. Never reports a datagram without waiting, so the loop flushes the log after
/// each one.
#[cfg(not(target_os = "linux"))]
mod batch {
    use std::net::{SocketAddr, UdpSocket};
    use std::time::Duration;

    use super::{Endpoint, Outgoing, RECEIVE_BUFFER, own_address, send_each};

    /// Datagrams always come one at a time here.
    pub fn coalesce_receives(_socket: &UdpSocket) {}

    pub struct Io<T> {
        buffer: Vec<u8>,
        received: Option<(usize, SocketAddr)>,
        own: Option<SocketAddr>,
        _transmit: std::marker::PhantomData<T>,
    }

    impl<T: Outgoing> Io<T> {
        pub fn new(socket: &UdpSocket) -> Io<T> {
            Io {
                buffer: vec![0; RECEIVE_BUFFER],
                received: None,
                own: own_address(socket),
                _transmit: std::marker::PhantomData,
            }
        }

        /// One datagram per call cannot tell a backlog from a quiet socket: never reported.
        pub fn fell_behind(&self, _count: usize) -> bool {
            false
        }

        pub fn receive(&mut self, socket: &UdpSocket, wait: Option<Duration>) -> usize {
            self.received = None;
            let Some(wait) = wait else {
                return 0;
            };
            // A zero timeout means "block forever" to the OS, so never ask for less than 1 ms.
            let wait = wait.max(Duration::from_millis(1));
            if socket.set_read_timeout(Some(wait)).is_err() {
                return 0;
            }
            match socket.recv_from(&mut self.buffer) {
                Ok((0, from)) if Some(from) == self.own => 1,
                Ok((len, from)) => {
                    self.received = Some((len, from));
                    1
                }
                // A timeout; or, on some systems, an earlier datagram's ICMP error reported
                // on this receive: it concerns one peer, not the program.
                Err(_) => 0,
            }
        }

        pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
            self.received
                .iter()
                .map(|&(len, from)| (&self.buffer[..len], from))
        }

        pub fn send<C: Endpoint<Transmit = T>>(&mut self, socket: &UdpSocket, core: &mut C) {
            send_each(socket, core);
        }
    }
}
