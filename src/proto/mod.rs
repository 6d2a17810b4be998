//! The session layer: the mechanisms the server, the client and the peer share, written once.
//!
//! Everything here sits between the byte layout (`wire`) and the roles (`server`, `client`,
//! `peer`): it knows what a sequence number, a flood limit or a deadline is, but not which
//! role is speaking, nor how a frame is laid out in bytes. Like the roles it is sans-IO: no
//! socket, and no clock read — every method takes `now`.
//!
//! - [`token`]: random tokens and nonces — the one wrapper around the OS's random source.
//! - [`join`]: one attempt to join (nonce, cookie, retries, fallback, giving up, backoff).
//! - [`cookie`]: join cookies and their secret, and the wall clock the roles stamp with.
//! - [`address`]: one endpoint in either address form, and the forged own-address check.
//! - [`addrmem`]: capped, expiring memories about addresses (left, kicked recently).
//! - [`reliable`]: sequence numbers, acknowledgements and retransmission — what makes every
//!   message arrive exactly once and in order over a lossy network.
//! - [`stream`]: one reliable stream pair (token, both windows, envelope, ack when due,
//!   retransmission timer), the one every role keeps per other end.
//! - [`flood`]: the token bucket behind the flood limit, the flood gate that counts one
//!   sender's messages by when it says it sent them, and the delayed notice of what it
//!   dropped.
//! - [`pacing`]: an honest sender's side of the flood limit — the queue of what waits for its
//!   turn, released at the announced rate (client and peer).
//! - [`lateness`]: how far behind its own schedule a role fell, so its own lateness is never
//!   blamed on the other side (eviction, giving up on a frame).
//! - [`loggate`]: how often a log line a stranger can cause is written, and the summary of
//!   the rest.
//! - [`presence`]: who is online as typed news, the one kind every role gives the UI.
//! - [`chat`]: what is said in a room (lines, private messages, actions, presence changes,
//!   history lines) as one event type, shown alike by the client and the peer.
//! - [`paging`]: how much history travels at once — the replay's default, the bound on one
//!   request (`/history`), line kinds on the wire (server and peer).
//! - [`packing`]: what one turn sends, grouped per receiver into as few datagrams as fit
//!   (several frames behind the packed header, or several guest lines), never waiting.

pub mod address;
pub mod addrmem;
pub mod chat;
pub mod cookie;
pub mod flood;
pub mod join;
pub mod lateness;
pub mod loggate;
pub mod pacing;
pub mod packing;
pub mod paging;
pub mod presence;
pub mod reliable;
pub mod stream;
pub mod token;
