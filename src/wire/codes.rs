//! The protocol's one-byte codes — why a join was refused, why a session ended, what kind
//! of line a history line is, why a member left a peer room — as one table: each code's
//! value and meaning, its enum and its strict codec (see `table`'s `codes!`). The frames
//! that carry them are the direction modules'.

use super::table::codes;

codes! {
    /// Why the server refused a join.
    pub enum RefuseReason ("refuse reason") {
        /// Another client already uses this name (compared case-insensitively).
        NameTaken = 1,
        /// The name breaks the naming rules (length, characters, reserved word).
        NameInvalid = 2,
        /// The client's address is on the server's ban list.
        Banned = 3,
        /// The server has as many clients as it accepts.
        ServerFull = 4,
        /// The client speaks a protocol version the server does not.
        VersionUnsupported = 5,
        /// Another session is in progress from the same address and port.
        AddressInUse = 6,
        /// The client's IP address already has as many sessions as the server allows one
        /// address.
        TooManyFromAddress = 7,
        /// The client was kicked for flooding a moment ago and may not rejoin yet.
        KickedRecently = 8,
        /// A peer's join reached a server, which takes no part in peer mode (in a
        /// [`super::PeerFrame::Refused`]).
        IsAServer = 9,
        /// A client's join reached a peer, which is no server (in [`super::ToClient::Refused`]).
        IsAPeer = 10,
        /// The server is saturated and takes no new joins for now: the client retries (after
        /// `proto::join::BUSY_RETRY`), it does not give up.
        Busy = 11,
    }

    /// Why the server ended a client's session.
    pub enum DisconnectReason ("disconnect reason") {
        /// The server operator kicked the client.
        Kicked = 1,
        /// The client's address was banned.
        Banned = 2,
        /// The server is shutting down.
        ServerClosing = 3,
        /// The server heard nothing from the client for longer than its timeout.
        TimedOut = 4,
    }

    /// What kind of public line a [`super::Delivery::HistoryLine`] replays: it is shown as it was
    /// shown live.
    pub enum LineKind ("line kind") {
        /// A chat line (`alice: hi`).
        Chat = 1,
        /// `/me` (`* alice waves`).
        Action = 2,
        /// A broadcast typed at the server's console (`server: ...`).
        Console = 3,
    }

    /// Why a member is no longer in a peer room (see [`super::PeerItem::Gone`]).
    pub enum GoneReason ("gone reason") {
        /// The member said it was leaving.
        Left = 1,
        /// Nothing was heard from the member for longer than the timeout.
        TimedOut = 2,
        /// The member joined under a name another member took at the same moment, and gave
        /// way (the earlier join keeps the name).
        NameTaken = 3,
    }
}
