//! A client driven by hand on the simulated network of [`super::room`]: [`Hand`] joins
//! with whatever history fields a test chooses, puts what the server sends it back in
//! order with the library's own receive window, acknowledges it when the test says so (or
//! never), and sends requests as the test words them. It speaks the session layer
//! directly, bypassing the client core, so a test can say exactly what a client claims.
//!
//! It does not own any expectation about the protocol: the tests decide what it must have
//! received.

use std::net::SocketAddr;
use std::time::Duration;

use icq::proto::reliable::{Arrival, Ready, ReceiveWindow};
use icq::wire::{Delivery, Envelope, Frame, Request, ToClient, ToServer};

use super::room::{Seen, Sim, forge_join_having_seen};

/// How many frames ahead of a missing one the hand holds: all the server can have in flight.
const HELD: u32 = 1 << 16;

/// A hand-driven session with the simulated server.
pub struct Hand {
    /// Where it sends from.
    pub at: SocketAddr,
    /// Its session's token, from the welcome.
    pub token: u64,
    inbox: ReceiveWindow<Delivery>,
    next_seq: u32,
    /// How much of the network's log it has read.
    read: usize,
    /// Every sequenced delivery of its session so far, in order.
    pub got: Vec<Delivery>,
    /// How many frames the server said it will never get (`Missed`).
    pub skipped: u32,
}

impl Hand {
    /// Joins as `name` from `at`, having shown `seen`, and takes in (without acknowledging)
    /// what the server sent at once.
    pub fn join(sim: &mut Sim, at: SocketAddr, name: &str, seen: Seen) -> Hand {
        let read = sim.mark();
        let replies = forge_join_having_seen(sim, at, name, seen);
        let token = replies
            .iter()
            .find_map(|frame| match frame {
                Frame::ToClient(ToClient::Welcome { token, .. }) => Some(*token),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name} was not welcomed: {replies:?}"));
        let mut hand = Hand {
            at,
            token,
            inbox: ReceiveWindow::new(HELD),
            next_seq: 1,
            read,
            got: Vec::new(),
            skipped: 0,
        };
        hand.take_in(sim);
        hand
    }

    /// Reads what the server sent this session since the last look, puts it in order into
    /// [`Hand::got`], and returns how many frames were new.
    pub fn take_in(&mut self, sim: &Sim) -> usize {
        let mut new = 0;
        for bytes in sim.server_sent_to(self.at, self.read) {
            let Ok(Frame::ToClient(ToClient::Sequenced(envelope, delivery))) =
                Frame::decode(&bytes)
            else {
                continue;
            };
            if envelope.token != self.token {
                continue;
            }
            match delivery {
                Delivery::Missed { last } => {
                    self.inbox.skip_through(sim.now, envelope.seq, last);
                    new += 1;
                }
                delivery => {
                    if self.inbox.insert(sim.now, envelope.seq, delivery) == Arrival::New {
                        new += 1;
                    }
                }
            }
        }
        self.read = sim.mark();
        while let Some(ready) = self.inbox.pop_ready() {
            match ready {
                Ready::Item(delivery) => self.got.push(delivery),
                Ready::Skipped(count) => self.skipped += count,
            }
        }
        new
    }

    /// Acknowledges everything taken in so far.
    pub fn ack(&mut self, sim: &mut Sim) {
        let ack = Frame::ToServer(ToServer::ClientAck {
            token: self.token,
            acks: self.inbox.acks(),
        });
        sim.inject(self.at, &ack.to_bytes());
    }

    /// Takes in and acknowledges until the server sends nothing more (what waited for room
    /// in its window comes as acknowledgements make room).
    pub fn settle(&mut self, sim: &mut Sim) {
        self.take_in(sim);
        for _ in 0..1000 {
            self.ack(sim);
            sim.run_for(Duration::from_millis(20));
            if self.take_in(sim) == 0 {
                return;
            }
        }
        panic!("the server never stopped sending to {}", self.at);
    }

    /// Sends `request` as the session's next sequenced frame, acknowledging only what was
    /// taken in so far.
    pub fn request(&mut self, sim: &mut Sim, request: Request) {
        let envelope = Envelope {
            token: self.token,
            seq: self.next_seq,
            acks: self.inbox.acks(),
        };
        self.next_seq += 1;
        let frame = Frame::ToServer(ToServer::Sequenced(envelope, request));
        sim.inject(self.at, &frame.to_bytes());
    }

    /// Asks for up to `count` lines of epoch `epoch` below line `before` (`/history`).
    pub fn ask_history(&mut self, sim: &mut Sim, epoch: u64, before: u64, count: u16) {
        self.request(
            sim,
            Request::History {
                epoch,
                before,
                count,
            },
        );
    }

    /// Forgets what it received so far (the test has read it).
    pub fn take_got(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.got)
    }
}
