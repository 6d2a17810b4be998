//! The frames a server sends a client: [`ToClient`] (the answers to a join, bare
//! acknowledgements, the tiny answers to strangers) and the [`Delivery`]s of the server's
//! reliable stream, as one table (see `table`), with the field types only they carry —
//! [`FloodTerms`] and [`HistoryEntry`], which peer mode reuses, [`RosterEntry`],
//! [`PresenceChange`] and [`PresenceItem`] (the one-byte codes are `codes`'). This module
//! owns their layout; when the server sends them belongs to `server`, what a client makes
//! of them to `client`.

use super::table::{Codec, Counted, Name, Text, frames, record_codec};
use super::{
    Acks, DecodeError, DisconnectReason, LineKind, REFUSED_KIND, Reader, RefuseReason, Writer,
};

/// One public line of a room's history as it travels, to a client
/// ([`Delivery::HistoryLine`]) or between peers ([`super::PeerItem::HistoryLine`]): line
/// `seq` of history epoch `epoch` (a random id; numbers grow by one per line within an
/// epoch), said at `time_ms` by `from`, shown live as `kind` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The history epoch the number belongs to.
    pub epoch: u64,
    /// The line's number within its epoch.
    pub seq: u64,
    /// When it was said (wall clock, milliseconds since the Unix epoch).
    pub time_ms: i64,
    /// Who said it.
    pub from: String,
    /// How it was shown live.
    pub kind: LineKind,
    /// What was said.
    pub text: String,
}

record_codec!(HistoryEntry {
    epoch: u64,
    seq: u64,
    time_ms: i64,
    from: String as Name,
    kind: LineKind,
    text: String as Text,
});

/// The flood limit a receiver applies to what one sender sends it, as it tells that sender
/// (in [`ToClient::Welcome`] and in peer mode's join, welcome and hello), so an honest sender
/// can pace itself: on average `rate_milli` thousandths of a message per second, bursts of
/// up to `burst` messages. A zero rate means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FloodTerms {
    /// Sustained rate, in thousandths of a message per second (5 000: five a second).
    pub rate_milli: u32,
    /// Messages that may go at once after a quiet spell.
    pub burst: u16,
}

/// Encoded size of [`FloodTerms`]: rate (4), burst (2).
pub const FLOOD_TERMS_LEN: usize = 6;

impl FloodTerms {
    /// No limit at all.
    pub const NONE: FloodTerms = FloodTerms {
        rate_milli: 0,
        burst: 0,
    };
}

record_codec!(FloodTerms {
    rate_milli: u32,
    burst: u16
});

/// One line of a roster: who, why they are away (empty when they are not), and whether
/// they are a plain-text guest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterEntry {
    /// The registered name.
    pub name: String,
    /// What the person said with `/away` (at most [`super::MAX_NAME_BYTES`] bytes), or
    /// empty.
    pub away: String,
    /// A plain-text guest (shown `(guest)`: a guest may have taken an ordinary name with
    /// `/nick`).
    pub guest: bool,
}

/// An entry: name, away reason (a name field, empty when not away), flags (1: a guest).
impl Codec<RosterEntry> for RosterEntry {
    fn put(value: &RosterEntry, w: &mut Writer<'_>) {
        Name::put(&value.name, w);
        Name::put(&value.away, w);
        w.bytes(&[u8::from(value.guest)]);
    }

    fn get(r: &mut Reader<'_>) -> Result<RosterEntry, DecodeError> {
        let name = Name::get(r)?;
        let away = Name::get(r)?;
        let flags = r.array::<1>()?[0];
        if flags > 1 {
            return Err(DecodeError::BadValue {
                field: "roster entry flags",
                value: flags,
            });
        }
        Ok(RosterEntry {
            name,
            away,
            guest: flags == 1,
        })
    }
}

impl RosterEntry {
    /// The entry's bytes as a [`Delivery::Roster`] carries them, one after another after the
    /// frame's fixed fields: a server keeps each session's ready, so a roster is built by
    /// copying bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.name.len() + self.away.len());
        let mut w = Writer {
            out: &mut out,
            start: 0,
        };
        RosterEntry::put(self, &mut w);
        out
    }
}

/// What happened to someone's presence in the chat: the typed news of a
/// [`Delivery::Presence`], so that clients learn who is online from data, never by reading
/// notice text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// They joined.
    Joined,
    /// They left by saying so.
    Left,
    /// The server heard nothing from them for too long (or they stopped acknowledging).
    TimedOut,
    /// The operator kicked them.
    Kicked,
    /// The server kicked them for flooding on after warnings.
    KickedForFlooding,
    /// Their address was banned.
    Banned,
    /// They are called `to` from now on.
    Renamed { to: String },
    /// They are away, for `reason` (at most [`super::MAX_NAME_BYTES`] bytes, never empty).
    Away { reason: String },
    /// They are back.
    Back,
}

impl PresenceChange {
    /// The change's code on the wire (1 to 9).
    pub fn code(&self) -> u8 {
        match self {
            PresenceChange::Joined => 1,
            PresenceChange::Left => 2,
            PresenceChange::TimedOut => 3,
            PresenceChange::Kicked => 4,
            PresenceChange::KickedForFlooding => 5,
            PresenceChange::Banned => 6,
            PresenceChange::Renamed { .. } => 7,
            PresenceChange::Away { .. } => 8,
            PresenceChange::Back => 9,
        }
    }

    /// Whether the person is no longer online after this change.
    pub fn is_departure(&self) -> bool {
        matches!(
            self,
            PresenceChange::Left
                | PresenceChange::TimedOut
                | PresenceChange::Kicked
                | PresenceChange::KickedForFlooding
                | PresenceChange::Banned
        )
    }
}

/// A code (1 to 9), then the new name of a rename (7) or the reason of an away (8).
impl Codec<PresenceChange> for PresenceChange {
    fn put(value: &PresenceChange, w: &mut Writer<'_>) {
        w.bytes(&[value.code()]);
        match value {
            PresenceChange::Renamed { to: name } | PresenceChange::Away { reason: name } => {
                Name::put(name, w);
            }
            _ => {}
        }
    }

    fn get(r: &mut Reader<'_>) -> Result<PresenceChange, DecodeError> {
        Ok(match r.array::<1>()?[0] {
            1 => PresenceChange::Joined,
            2 => PresenceChange::Left,
            3 => PresenceChange::TimedOut,
            4 => PresenceChange::Kicked,
            5 => PresenceChange::KickedForFlooding,
            6 => PresenceChange::Banned,
            7 => PresenceChange::Renamed { to: Name::get(r)? },
            8 => PresenceChange::Away {
                reason: Name::get(r)?,
            },
            9 => PresenceChange::Back,
            value => {
                return Err(DecodeError::BadValue {
                    field: "presence change",
                    value,
                });
            }
        })
    }
}

impl PresenceChange {
    /// Its encoded size: the code, and the name or reason of a rename or an away.
    pub fn encoded_len(&self) -> usize {
        match self {
            PresenceChange::Renamed { to: name } | PresenceChange::Away { reason: name } => {
                2 + name.len().min(super::MAX_NAME_BYTES)
            }
            _ => 1,
        }
    }
}

/// One change of a [`Delivery::PresenceBatch`]: `name` (the name held until the change)
/// and what happened, as one [`Delivery::Presence`] would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceItem {
    /// The name held until this change.
    pub name: String,
    /// What happened.
    pub change: PresenceChange,
}

impl PresenceItem {
    /// Its encoded size: the name and the change.
    pub fn encoded_len(&self) -> usize {
        1 + self.name.len().min(super::MAX_NAME_BYTES) + self.change.encoded_len()
    }
}

// An item: the name, then the change as in `Delivery::Presence`.
record_codec!(PresenceItem {
    name: String as Name,
    change: PresenceChange
});

/// The bytes of a [`Delivery::PresenceBatch`] before its first item: header, envelope,
/// `time_ms` and the item count.
pub const PRESENCE_BATCH_FIXED_LEN: usize = super::HEADER_LEN + super::ENVELOPE_LEN + 8 + 2;

frames! {
    /// A frame from a server to a client (kinds `0x80..=0xBF`).
    pub enum ToClient;
    /// What the server tells a client, in order and exactly once (the server's stream).
    /// Times (`time_ms`) are the server's wall clock, in milliseconds since the Unix epoch.
    pub enum Delivery;
    standalone {
        /// Server accepted the join. `name` is the name as registered; `token` must be in
        /// every later frame of the session, both ways; `heartbeat_ms` tells the client how
        /// often to prove it is alive; `flood` is the limit the server applies to the
        /// client's messages, which an honest client paces itself to.
        Welcome = 0x81, "welcome" {
            nonce: u64,
            token: u64,
            heartbeat_ms: u32,
            flood: FloodTerms,
            name: String as Name,
        },
        /// Server refused the join. Laid out the same in every version (see
        /// [`super::any_version_refusal`]).
        Refused = REFUSED_KIND, "refused" { nonce: u64, reason: RefuseReason },
        /// Server asks the joining client to repeat its join with `cookie`, a value only
        /// someone receiving at the join's source address can know. Until then the server
        /// keeps no state and sends nothing else, so a join forged with someone else's
        /// address cannot make the server send them anything but this small frame.
        Challenge = 0x8B, "challenge" { nonce: u64, cookie: u64 },
        /// Server acknowledges what it received: the answer to a heartbeat, or to a
        /// sequenced frame that produced nothing else to send. `heartbeat_ms` is the
        /// session's heartbeat interval from now on (as in the welcome; since version 6):
        /// the server lengthens it as it fills, so that all its clients' heartbeats
        /// together stay within its budget.
        ServerAck = 0x86, "server ack" { token: u64, acks: Acks, heartbeat_ms: u32 },
        /// Server confirms a [`super::Request::Leave`] (and so every frame before it): the
        /// client can stop repeating it.
        LeaveAck = 0x87, "leave ack" { token: u64 },
        /// Server does not know the session `token` (never joined, or forgotten after a
        /// restart or a timeout). Deliberately tiny: it may go to an address that never
        /// proved it is real; it repeats the token so only the real client believes it.
        NotJoined = 0x89, "not joined" { token: u64 },
        /// Server asks the client of session `token` whether it is still there: someone
        /// wants its name, and it has been silent for a while. The client answers at once
        /// with a heartbeat; a session that does not is ended (see the server's probe).
        Probe = 0x90, "probe" { token: u64 },
    }
    sequenced {
        /// A chat message from `from` (a client's registered name, or `server`), stamped
        /// with the server's receive time; line `seq` of the room's history epoch (see
        /// [`Delivery::HistoryLine`]), so a client knows the last line it has shown.
        Message = 0x83, "message" {
            seq: u64,
            time_ms: i64,
            from: String as Name,
            text: String as Text,
        },
        /// Something happened that is not a chat message: a join, a leave, a warning.
        Notice = 0x84, "notice" { time_ms: i64, text: String as Text },
        /// Part of the answer to [`super::Request::List`]: `total` clients are online; this
        /// frame carries them from position `offset` on (a long list spans several frames).
        Roster = 0x85, "roster" { time_ms: i64, total: u16, offset: u16, entries: Vec<RosterEntry> },
        /// Server ended the session; the client must not send more (but may join again).
        /// Sequenced, so it comes after everything sent before it, and repeated until
        /// acknowledged.
        Disconnected = 0x88, "disconnected" {
            time_ms: i64,
            reason: DisconnectReason,
            text: String as Text,
        },
        /// The client fell so far behind that the server dropped the frames numbered from
        /// this frame's own sequence number to `last`: the client will never get them and
        /// says how many it missed.
        Missed = 0x8A, "missed" { last: u32 },
        /// A private message from `from` to `to`, sent to both of them only.
        PrivateMessage = 0x8C, "private message" {
            time_ms: i64,
            from: String as Name,
            to: String as Name,
            text: String as Text,
        },
        /// `/me`: `from` does `text`, shown to everyone as `* from text`; line `seq` of the
        /// history, as in [`Delivery::Message`].
        ActionMessage = 0x8D, "action message" {
            seq: u64,
            time_ms: i64,
            from: String as Name,
            text: String as Text,
        },
        /// The recipient's own name is now `name` (after its `/nick`).
        Renamed = 0x8E, "renamed" { name: String as Name },
        /// Someone's presence changed: `name` (the name they had until now) joined, left,
        /// timed out, was kicked or banned, was renamed, went away or came back.
        Presence = 0x8F, "presence" { time_ms: i64, name: String as Name, change: PresenceChange },
        /// One public line said before the client joined, replayed from the server's
        /// history. Replayed lines come before anything live and end with a
        /// [`Delivery::HistoryEnd`].
        HistoryLine = 0x91, "history line" { line: HistoryEntry },
        /// The end of a replay: the history's `epoch`, the number of its newest line
        /// `newest` (0: none yet), and how many lines it still holds `earlier` than those
        /// replayed.
        HistoryEnd = 0x92, "history end" { epoch: u64, newest: u64, earlier: u64 },
        /// Several presence changes at once, in the order they happened, each as one
        /// [`Delivery::Presence`] would say it: the server gathers the changes of a short
        /// window into one frame per client (a join storm costs each client a frame per
        /// window, not one per join). At least one change; a frame cut anywhere is rejected.
        PresenceBatch = 0x93, "presence batch" {
            time_ms: i64,
            changes: Vec<PresenceItem> as Counted,
        },
    }
}

impl ToClient {
    /// The session token the frame carries (the answers to a join before the welcome
    /// carry none).
    pub fn token(&self) -> Option<u64> {
        match self {
            ToClient::Refused { .. } | ToClient::Challenge { .. } => None,
            ToClient::Welcome { token, .. }
            | ToClient::ServerAck { token, .. }
            | ToClient::LeaveAck { token }
            | ToClient::NotJoined { token }
            | ToClient::Probe { token } => Some(*token),
            ToClient::Sequenced(envelope, _) => Some(envelope.token),
        }
    }

    /// The acknowledgements the frame carries, if any.
    pub fn acks(&self) -> Option<Acks> {
        match self {
            ToClient::ServerAck { acks, .. } => Some(*acks),
            ToClient::Sequenced(envelope, _) => Some(envelope.acks),
            _ => None,
        }
    }
}
