//! The wire format: how every protocol message is laid out in one UDP datagram.
//!
//! This module owns the byte layout of frames — encoding a [`Frame`] into bytes and decoding
//! bytes back into a `Frame`, rejecting anything malformed with a typed [`DecodeError`]. It
//! does not own what a frame *means* or when to send one: that is the job of the server and
//! client cores. `PROTOCOL.md` at the repository root describes the same layout for people.
//!
//! Every frame starts with a four-byte header: the magic bytes `0xFF 'I'`, the protocol
//! version, and the frame kind. `0xFF` never occurs in UTF-8 text, so a datagram that starts
//! with it can never be a plain-text line from a guest (see the server's guest mode), and a
//! text line can never be mistaken for a frame. Integers are big-endian ("network order").
//! Strings are UTF-8 with a length prefix: one byte for names, two bytes for texts.

use std::fmt;

/// First two bytes of every frame.
pub const MAGIC: [u8; 2] = [0xFF, b'I'];

/// A [`Frame::Join`] datagram is zero-padded to at least this many bytes. Until an address
/// has joined, everything the server sends it (welcome and join notice, about 300 bytes at
/// most) must fit in what it sent, so that a forged join cannot turn the server into an
/// amplifier aimed at someone else's address.
pub const JOIN_MIN_LEN: usize = 512;

/// The protocol version this build speaks. A server refuses a join of any other version.
pub const VERSION: u8 = 1;

/// Bytes before the body of every frame: magic (2), version (1), kind (1).
pub const HEADER_LEN: usize = 4;

/// The largest datagram either side sends or accepts. 1200 bytes fits in one packet on any
/// path that IPv6 allows (minimum MTU 1280, less IPv6 and UDP headers), so a frame is never
/// fragmented — a lost fragment would lose the whole datagram.
pub const MAX_DATAGRAM: usize = 1200;

/// The most bytes of UTF-8 a name may take on the wire: 32 characters of up to 4 bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// The most bytes of UTF-8 text in one chat message or notice. Chosen so that the largest
/// server-to-client message (header, timestamp, longest name, text) stays within
/// [`MAX_DATAGRAM`]; longer typed lines are split into several messages.
pub const MAX_TEXT_BYTES: usize = 1000;

/// Why the server refused a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// Another client already uses this name (compared case-insensitively).
    NameTaken,
    /// The name breaks the naming rules (length, characters, reserved word).
    NameInvalid,
    /// The client's address is on the server's ban list.
    Banned,
    /// The server has as many clients as it accepts.
    ServerFull,
    /// The client speaks a protocol version the server does not.
    VersionUnsupported,
}

/// Why the server ended a client's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server operator kicked the client.
    Kicked,
    /// The client's address was banned.
    Banned,
    /// The server is shutting down.
    ServerClosing,
    /// The server heard nothing from the client for longer than its timeout.
    TimedOut,
}

/// One protocol message. Kinds below `0x80` travel from client to server, the others from
/// server to client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Client asks to join under `name`. Sent again until answered, so it must be idempotent.
    Join { name: String },
    /// Client sends one chat message to everyone.
    Chat { text: String },
    /// Client is alive; sent when it has sent nothing else for a heartbeat interval.
    Heartbeat,
    /// Client leaves the chat.
    Leave,
    /// Client asks who is online.
    ListRequest,

    /// Server accepted the join. `name` is the name as registered; `heartbeat_ms` tells the
    /// client how often to prove it is alive.
    Welcome { name: String, heartbeat_ms: u32 },
    /// Server refused the join.
    Refused { reason: RefuseReason },
    /// A chat message from `from` (a client's registered name, or `server`), stamped by the
    /// server with its receive time in milliseconds since the Unix epoch.
    Message {
        time_ms: i64,
        from: String,
        text: String,
    },
    /// Something happened that is not a chat message: a join, a leave, a warning.
    Notice { time_ms: i64, text: String },
    /// Part of the answer to [`Frame::ListRequest`]: `total` clients are online; this frame
    /// carries the names from position `offset` on (a long list spans several frames).
    Roster {
        time_ms: i64,
        total: u16,
        offset: u16,
        names: Vec<String>,
    },
    /// Server's answer to a heartbeat, so a client can tell a live server from a dead one.
    HeartbeatAck,
    /// Server confirms a [`Frame::Leave`], so the client can stop repeating it.
    LeaveAck,
    /// Server ended the session; the client must not send more (but may join again).
    Disconnected {
        time_ms: i64,
        reason: DisconnectReason,
        text: String,
    },
    /// Server does not know the sender (never joined, or forgotten after a restart or a
    /// timeout). Deliberately tiny: it may go to an address that never proved it is real.
    NotJoined,
}

/// Why a datagram is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The datagram is longer than [`MAX_DATAGRAM`].
    TooLarge { len: usize },
    /// The datagram does not start with [`MAGIC`]: it is not a frame at all.
    NotAFrame,
    /// A frame of a protocol version this build does not speak.
    UnsupportedVersion { version: u8 },
    /// An unknown frame kind.
    UnknownKind { kind: u8 },
    /// The datagram ended in the middle of a field.
    Truncated,
    /// Bytes left over after the last field.
    TrailingBytes { count: usize },
    /// A join that is not padded to [`JOIN_MIN_LEN`] bytes (or padded with non-zero bytes).
    UnpaddedJoin { len: usize },
    /// A string field is not valid UTF-8.
    InvalidUtf8,
    /// A string field is longer than its limit.
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// An enumerated field holds a value this version does not define.
    BadValue { field: &'static str, value: u8 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { len } => {
                write!(f, "datagram of {len} bytes exceeds {MAX_DATAGRAM}")
            }
            DecodeError::NotAFrame => write!(f, "not an icq frame (bad magic bytes)"),
            DecodeError::UnsupportedVersion { version } => {
                write!(
                    f,
                    "protocol version {version} is not supported (this is {VERSION})"
                )
            }
            DecodeError::UnknownKind { kind } => write!(f, "unknown frame kind 0x{kind:02x}"),
            DecodeError::Truncated => write!(f, "truncated frame"),
            DecodeError::TrailingBytes { count } => {
                write!(f, "{count} unexpected bytes after the frame")
            }
            DecodeError::UnpaddedJoin { len } => {
                write!(
                    f,
                    "join of {len} bytes is not zero-padded to {JOIN_MIN_LEN}"
                )
            }
            DecodeError::InvalidUtf8 => write!(f, "text is not valid UTF-8"),
            DecodeError::FieldTooLong { field, len, max } => {
                write!(f, "{field} of {len} bytes exceeds {max}")
            }
            DecodeError::BadValue { field, value } => write!(f, "invalid {field} value {value}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Whether a datagram claims to be a frame (starts with the magic bytes). The server uses
/// this to tell protocol frames from guests' plain-text lines before decoding.
pub fn is_frame(datagram: &[u8]) -> bool {
    datagram.starts_with(&MAGIC)
}

mod kind {
    pub const JOIN: u8 = 0x01;
    pub const CHAT: u8 = 0x02;
    pub const HEARTBEAT: u8 = 0x03;
    pub const LEAVE: u8 = 0x04;
    pub const LIST_REQUEST: u8 = 0x05;
    pub const WELCOME: u8 = 0x81;
    pub const REFUSED: u8 = 0x82;
    pub const MESSAGE: u8 = 0x83;
    pub const NOTICE: u8 = 0x84;
    pub const ROSTER: u8 = 0x85;
    pub const HEARTBEAT_ACK: u8 = 0x86;
    pub const LEAVE_ACK: u8 = 0x87;
    pub const DISCONNECTED: u8 = 0x88;
    pub const NOT_JOINED: u8 = 0x89;
}

impl RefuseReason {
    fn code(self) -> u8 {
        match self {
            RefuseReason::NameTaken => 1,
            RefuseReason::NameInvalid => 2,
            RefuseReason::Banned => 3,
            RefuseReason::ServerFull => 4,
            RefuseReason::VersionUnsupported => 5,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => RefuseReason::NameTaken,
            2 => RefuseReason::NameInvalid,
            3 => RefuseReason::Banned,
            4 => RefuseReason::ServerFull,
            5 => RefuseReason::VersionUnsupported,
            _ => return None,
        })
    }
}

impl DisconnectReason {
    fn code(self) -> u8 {
        match self {
            DisconnectReason::Kicked => 1,
            DisconnectReason::Banned => 2,
            DisconnectReason::ServerClosing => 3,
            DisconnectReason::TimedOut => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => DisconnectReason::Kicked,
            2 => DisconnectReason::Banned,
            3 => DisconnectReason::ServerClosing,
            4 => DisconnectReason::TimedOut,
            _ => return None,
        })
    }
}

impl Frame {
    /// Whether this kind travels from client to server. A server must never answer a frame
    /// that travels the other way: that frame is either a mistake or a forgery aimed at
    /// making two servers (or a server and itself) answer each other forever.
    pub fn travels_to_server(&self) -> bool {
        matches!(
            self,
            Frame::Join { .. }
                | Frame::Chat { .. }
                | Frame::Heartbeat
                | Frame::Leave
                | Frame::ListRequest
        )
    }

    /// Appends the encoded frame to `out`.
    ///
    /// The caller keeps names within [`MAX_NAME_BYTES`] and texts within [`MAX_TEXT_BYTES`]
    /// (the cores validate and split before building frames); a longer field is cut at a
    /// character boundary rather than producing a frame the peer would reject.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let frame_start = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        match self {
            Frame::Join { name } => {
                out.push(kind::JOIN);
                put_name(out, name);
                let padded_end = frame_start + JOIN_MIN_LEN;
                if out.len() < padded_end {
                    out.resize(padded_end, 0);
                }
            }
            Frame::Chat { text } => {
                out.push(kind::CHAT);
                put_text(out, text);
            }
            Frame::Heartbeat => out.push(kind::HEARTBEAT),
            Frame::Leave => out.push(kind::LEAVE),
            Frame::ListRequest => out.push(kind::LIST_REQUEST),
            Frame::Welcome { name, heartbeat_ms } => {
                out.push(kind::WELCOME);
                put_name(out, name);
                out.extend_from_slice(&heartbeat_ms.to_be_bytes());
            }
            Frame::Refused { reason } => {
                out.push(kind::REFUSED);
                out.push(reason.code());
            }
            Frame::Message {
                time_ms,
                from,
                text,
            } => {
                out.push(kind::MESSAGE);
                out.extend_from_slice(&time_ms.to_be_bytes());
                put_name(out, from);
                put_text(out, text);
            }
            Frame::Notice { time_ms, text } => {
                out.push(kind::NOTICE);
                out.extend_from_slice(&time_ms.to_be_bytes());
                put_text(out, text);
            }
            Frame::Roster {
                time_ms,
                total,
                offset,
                names,
            } => {
                out.push(kind::ROSTER);
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.extend_from_slice(&total.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                for name in names {
                    put_name(out, name);
                }
            }
            Frame::HeartbeatAck => out.push(kind::HEARTBEAT_ACK),
            Frame::LeaveAck => out.push(kind::LEAVE_ACK),
            Frame::Disconnected {
                time_ms,
                reason,
                text,
            } => {
                out.push(kind::DISCONNECTED);
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.push(reason.code());
                put_text(out, text);
            }
            Frame::NotJoined => out.push(kind::NOT_JOINED),
        }
    }

    /// The encoded frame as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out);
        out
    }

    /// Decodes one datagram. Strict: every field must be complete and within its limit, and
    /// nothing may follow the last field, so a corrupted datagram is rejected rather than
    /// half-understood.
    pub fn decode(datagram: &[u8]) -> Result<Frame, DecodeError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(DecodeError::TooLarge {
                len: datagram.len(),
            });
        }
        if !is_frame(datagram) {
            return Err(DecodeError::NotAFrame);
        }
        let mut r = Reader {
            rest: &datagram[MAGIC.len()..],
        };
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let frame = match r.u8()? {
            kind::JOIN => {
                let name = r.name()?;
                if datagram.len() < JOIN_MIN_LEN || r.rest.iter().any(|&b| b != 0) {
                    return Err(DecodeError::UnpaddedJoin {
                        len: datagram.len(),
                    });
                }
                r.rest = &[];
                Frame::Join { name }
            }
            kind::CHAT => Frame::Chat { text: r.text()? },
            kind::HEARTBEAT => Frame::Heartbeat,
            kind::LEAVE => Frame::Leave,
            kind::LIST_REQUEST => Frame::ListRequest,
            kind::WELCOME => Frame::Welcome {
                name: r.name()?,
                heartbeat_ms: r.u32()?,
            },
            kind::REFUSED => {
                let code = r.u8()?;
                Frame::Refused {
                    reason: RefuseReason::from_code(code).ok_or(DecodeError::BadValue {
                        field: "refuse reason",
                        value: code,
                    })?,
                }
            }
            kind::MESSAGE => Frame::Message {
                time_ms: r.i64()?,
                from: r.name()?,
                text: r.text()?,
            },
            kind::NOTICE => Frame::Notice {
                time_ms: r.i64()?,
                text: r.text()?,
            },
            kind::ROSTER => {
                let time_ms = r.i64()?;
                let total = r.u16()?;
                let offset = r.u16()?;
                let mut names = Vec::new();
                while !r.rest.is_empty() {
                    names.push(r.name()?);
                }
                Frame::Roster {
                    time_ms,
                    total,
                    offset,
                    names,
                }
            }
            kind::HEARTBEAT_ACK => Frame::HeartbeatAck,
            kind::LEAVE_ACK => Frame::LeaveAck,
            kind::DISCONNECTED => {
                let time_ms = r.i64()?;
                let code = r.u8()?;
                let reason = DisconnectReason::from_code(code).ok_or(DecodeError::BadValue {
                    field: "disconnect reason",
                    value: code,
                })?;
                Frame::Disconnected {
                    time_ms,
                    reason,
                    text: r.text()?,
                }
            }
            kind::NOT_JOINED => Frame::NotJoined,
            other => return Err(DecodeError::UnknownKind { kind: other }),
        };
        if !r.rest.is_empty() {
            return Err(DecodeError::TrailingBytes {
                count: r.rest.len(),
            });
        }
        Ok(frame)
    }
}

/// The longest prefix of `s` that fits in `max` bytes without splitting a character.
pub fn truncate_to_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Splits `text` into pieces of at most [`MAX_TEXT_BYTES`] bytes each, on character
/// boundaries, so a long typed line becomes several messages instead of an oversized frame.
/// An empty text gives no pieces.
pub fn split_text(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let piece = truncate_to_char_boundary(rest, MAX_TEXT_BYTES);
        rest = &rest[piece.len()..];
        Some(piece)
    })
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    let name = truncate_to_char_boundary(name, MAX_NAME_BYTES);
    // MAX_NAME_BYTES < 256, so the length fits the one-byte prefix.
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let text = truncate_to_char_boundary(text, MAX_TEXT_BYTES);
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A cursor over the bytes not yet decoded. Every read checks the length first, so a
/// truncated datagram yields [`DecodeError::Truncated`] instead of a panic.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn string(
        &mut self,
        len: usize,
        field: &'static str,
        max: usize,
    ) -> Result<String, DecodeError> {
        if len > max {
            return Err(DecodeError::FieldTooLong { field, len, max });
        }
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        Ok(text.to_owned())
    }

    fn name(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u8()?);
        self.string(len, "name", MAX_NAME_BYTES)
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u16()?);
        self.string(len, "text", MAX_TEXT_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Frame> {
        vec![
            Frame::Join {
                name: "alice".into(),
            },
            Frame::Chat {
                text: "héllo wörld 日本 🎉".into(),
            },
            Frame::Heartbeat,
            Frame::Leave,
            Frame::ListRequest,
            Frame::Welcome {
                name: "Alice".into(),
                heartbeat_ms: 10_000,
            },
            Frame::Refused {
                reason: RefuseReason::NameTaken,
            },
            Frame::Refused {
                reason: RefuseReason::VersionUnsupported,
            },
            Frame::Message {
                time_ms: 1_764_000_000_123,
                from: "bob".into(),
                text: "hi".into(),
            },
            Frame::Notice {
                time_ms: -5,
                text: "bob joined".into(),
            },
            Frame::Roster {
                time_ms: 7,
                total: 3,
                offset: 0,
                names: vec!["a".into(), "bb".into(), "ccc".into()],
            },
            Frame::Roster {
                time_ms: 7,
                total: 0,
                offset: 0,
                names: vec![],
            },
            Frame::HeartbeatAck,
            Frame::LeaveAck,
            Frame::Disconnected {
                time_ms: 9,
                reason: DisconnectReason::Kicked,
                text: "bye".into(),
            },
            Frame::NotJoined,
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for frame in every_kind() {
            let bytes = frame.to_bytes();
            assert!(bytes.len() <= MAX_DATAGRAM);
            assert_eq!(Frame::decode(&bytes), Ok(frame));
        }
    }

    #[test]
    fn header_layout_is_as_documented() {
        let bytes = Frame::Chat { text: "hi".into() }.to_bytes();
        assert_eq!(bytes, [0xFF, b'I', 1, 0x02, 0, 2, b'h', b'i']);
    }

    #[test]
    fn every_truncation_is_rejected_without_panic() {
        for frame in every_kind() {
            let bytes = frame.to_bytes();
            for len in 0..bytes.len() {
                let result = Frame::decode(&bytes[..len]);
                // A roster cut exactly between names is still a valid (shorter) roster.
                if let Ok(Frame::Roster { .. }) = result {
                    continue;
                }
                assert!(result.is_err(), "{frame:?} cut to {len} bytes decoded");
            }
        }
    }

    #[test]
    fn join_is_padded_and_unpadded_joins_are_rejected() {
        let bytes = Frame::Join { name: "al".into() }.to_bytes();
        assert_eq!(bytes.len(), JOIN_MIN_LEN);
        assert_eq!(&bytes[..7], &[0xFF, b'I', 1, 0x01, 2, b'a', b'l']);
        assert!(bytes[7..].iter().all(|&b| b == 0));
        let mut dirty = bytes.clone();
        dirty[100] = 1;
        assert_eq!(
            Frame::decode(&dirty),
            Err(DecodeError::UnpaddedJoin { len: JOIN_MIN_LEN })
        );
        assert_eq!(
            Frame::decode(&bytes[..7]),
            Err(DecodeError::UnpaddedJoin { len: 7 })
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = Frame::Heartbeat.to_bytes();
        bytes.push(0);
        assert_eq!(
            Frame::decode(&bytes),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn plain_text_is_not_a_frame() {
        assert!(!is_frame(b"hello\n"));
        assert_eq!(Frame::decode(b"hello"), Err(DecodeError::NotAFrame));
        assert_eq!(Frame::decode(b""), Err(DecodeError::NotAFrame));
    }

    #[test]
    fn other_versions_and_kinds_are_rejected() {
        assert_eq!(
            Frame::decode(&[0xFF, b'I', 2, 0x01]),
            Err(DecodeError::UnsupportedVersion { version: 2 })
        );
        assert_eq!(
            Frame::decode(&[0xFF, b'I', 1, 0x7E]),
            Err(DecodeError::UnknownKind { kind: 0x7E })
        );
        assert_eq!(
            Frame::decode(&[0xFF, b'I', 1, kind::REFUSED, 99]),
            Err(DecodeError::BadValue {
                field: "refuse reason",
                value: 99
            })
        );
    }

    #[test]
    fn invalid_utf8_and_oversized_fields_are_rejected() {
        assert_eq!(
            Frame::decode(&[0xFF, b'I', 1, kind::JOIN, 2, 0xC3, 0x28]),
            Err(DecodeError::InvalidUtf8)
        );
        let mut long_name = vec![0xFF, b'I', 1, kind::JOIN, 200];
        long_name.extend(std::iter::repeat_n(b'a', 200));
        assert_eq!(
            Frame::decode(&long_name),
            Err(DecodeError::FieldTooLong {
                field: "name",
                len: 200,
                max: MAX_NAME_BYTES
            })
        );
        let huge = vec![0xFF; MAX_DATAGRAM + 1];
        assert_eq!(
            Frame::decode(&huge),
            Err(DecodeError::TooLarge {
                len: MAX_DATAGRAM + 1
            })
        );
    }

    #[test]
    fn largest_message_fits_in_a_datagram() {
        let frame = Frame::Message {
            time_ms: i64::MAX,
            from: "é".repeat(MAX_NAME_BYTES / 2),
            text: "x".repeat(MAX_TEXT_BYTES),
        };
        let bytes = frame.to_bytes();
        assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
        assert_eq!(Frame::decode(&bytes), Ok(frame));
    }

    #[test]
    fn split_text_respects_limit_and_characters() {
        let text = "é".repeat(MAX_TEXT_BYTES); // 2 bytes each: 2000 bytes
        let pieces: Vec<&str> = split_text(&text).collect();
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| p.len() <= MAX_TEXT_BYTES));
        assert_eq!(pieces.concat(), text);

        let emoji = "🎉".repeat(251); // 4 bytes each: 1004 bytes, boundary not at 1000
        let pieces: Vec<&str> = split_text(&emoji).collect();
        assert_eq!(pieces[0].len(), 1000);
        assert_eq!(pieces[1], "🎉");
        assert_eq!(split_text("").count(), 0);
    }

    #[test]
    fn oversized_fields_are_cut_on_encode_not_rejected_by_peer() {
        let frame = Frame::Chat {
            text: "ü".repeat(MAX_TEXT_BYTES),
        };
        let decoded = Frame::decode(&frame.to_bytes()).expect("decodes");
        let Frame::Chat { text } = decoded else {
            panic!("wrong kind")
        };
        assert_eq!(text.len(), MAX_TEXT_BYTES);
    }
}
