//! The frames a client sends a server: [`ToServer`] (joining, heartbeats, bare
//! acknowledgements) and the [`Request`]s of the client's reliable stream, as one table
//! (see `table`). This module owns which kinds travel this way and their fields; what the
//! server does with them belongs to `server`, when the client sends them to `client`.

use super::table::{Name, PaddedName, Text, frames};
use super::{Acks, JOIN_KIND};

frames! {
    /// A frame from a client to a server (kinds below `0x80`). A server answers nothing
    /// else: a frame travelling the other way is a mistake or a forgery, aimed at making two
    /// servers (or a server and itself) answer each other forever.
    pub enum ToServer;
    /// What a client asks of the server, in order and exactly once (the client's stream).
    /// `sent_ms` is when the client first sent it, in milliseconds of its own clock since
    /// the session's welcome arrived: the flood limit counts by it, so a backlog repeated
    /// after a loss is not taken for a flood. Every flood-limited request carries it.
    pub enum Request;
    standalone {
        /// Client asks to join under `name`. Sent again until answered, so it must be
        /// idempotent. `nonce` is a random number the answer must repeat, so an off-path
        /// attacker cannot forge the answer. Every version keeps the nonce right after the
        /// header, so a server can refuse a version it does not speak to the right client.
        /// `cookie` is 0 at first; the server answers with a
        /// [`super::ToClient::Challenge`], and the join repeated with that cookie proves the
        /// client receives at its address. `previous_token` is the token of the session this
        /// client had before (0 on its first join): a client coming back after an outage
        /// says so. `history_epoch` and `history_seen` are the server history's epoch and
        /// the number of the last public line this client showed (both 0 when it has shown
        /// none): a client coming back is sent exactly the lines after that one (see
        /// [`super::Delivery::HistoryLine`]) instead of the newest few. Padded to
        /// [`super::JOIN_MIN_LEN`] bytes.
        Join = JOIN_KIND, "join" {
            nonce: u64,
            cookie: u64,
            previous_token: u64,
            history_epoch: u64,
            history_seen: u64,
            name: String as PaddedName,
        },
        /// Client is alive; sent when it has sent nothing else for a heartbeat interval.
        /// The server answers with [`super::ToClient::ServerAck`].
        Heartbeat = 0x03, "heartbeat" { token: u64, acks: Acks },
        /// Client acknowledges what it received, with nothing else to say.
        ClientAck = 0x06, "client ack" { token: u64, acks: Acks },
    }
    sequenced {
        /// One chat message to everyone.
        Chat = 0x02, "chat" { sent_ms: u64, text: String as Text },
        /// Who is online? (Answered by [`super::Delivery::Roster`].)
        List = 0x05, "list request",
        /// The client leaves (after every request before it).
        Leave = 0x04, "leave",
        /// `text` to the client called `to` only (`/msg`).
        Private = 0x07, "private" { sent_ms: u64, to: String as Name, text: String as Text },
        /// What the client does, shown as `* alice waves` (`/me`).
        Action = 0x08, "action" { sent_ms: u64, text: String as Text },
        /// Call me `name` from now on (`/nick`).
        Nick = 0x09, "nick" { sent_ms: u64, name: String as Name },
        /// Away for `reason` (at most [`super::MAX_NAME_BYTES`] bytes), or back when it is
        /// empty (`/away`, `/back`).
        Away = 0x0A, "away" { sent_ms: u64, reason: String as Name },
        /// Show me up to `count` lines of history epoch `epoch` numbered below `before`
        /// (`/history`); `before` is the oldest line the client has shown, or `u64::MAX`
        /// for the newest. Answered by [`super::Delivery::HistoryLine`]s and one
        /// [`super::Delivery::HistoryEnd`]; the server clamps `count`, and answers an
        /// unknown epoch from its newest line. Not flood-limited.
        History = 0x0B, "history request" { epoch: u64, before: u64, count: u16 },
    }
}

impl ToServer {
    /// The session token the frame carries (a join carries none).
    pub fn token(&self) -> Option<u64> {
        match self {
            ToServer::Join { .. } => None,
            ToServer::Heartbeat { token, .. } | ToServer::ClientAck { token, .. } => Some(*token),
            ToServer::Sequenced(envelope, _) => Some(envelope.token),
        }
    }

    /// The acknowledgements the frame carries, if any.
    pub fn acks(&self) -> Option<Acks> {
        match self {
            ToServer::Join { .. } => None,
            ToServer::Heartbeat { acks, .. } | ToServer::ClientAck { acks, .. } => Some(*acks),
            ToServer::Sequenced(envelope, _) => Some(envelope.acks),
        }
    }
}

impl Request {
    /// When the client first sent the request (see the type); 0 for the requests the flood
    /// limit does not count.
    pub fn sent_ms(&self) -> u64 {
        match self {
            Request::Chat { sent_ms, .. }
            | Request::Private { sent_ms, .. }
            | Request::Action { sent_ms, .. }
            | Request::Nick { sent_ms, .. }
            | Request::Away { sent_ms, .. } => *sent_ms,
            Request::List | Request::Leave | Request::History { .. } => 0,
        }
    }

    /// Stamps the request with when it is first sent (no-op for the requests the flood
    /// limit does not count).
    pub fn stamp(&mut self, when_ms: u64) {
        match self {
            Request::Chat { sent_ms, .. }
            | Request::Private { sent_ms, .. }
            | Request::Action { sent_ms, .. }
            | Request::Nick { sent_ms, .. }
            | Request::Away { sent_ms, .. } => *sent_ms = when_ms,
            Request::List | Request::Leave | Request::History { .. } => {}
        }
    }
}
