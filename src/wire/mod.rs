//! The wire format: how every protocol message is laid out in one UDP datagram.
//!
//! This module owns the byte layout of frames — encoding a [`Frame`] into bytes and decoding
//! bytes back into a `Frame`, rejecting anything malformed with a typed [`DecodeError`]. It
//! does not own what a frame *means* or when to send one: that is the job of the session
//! layer and the server, client and peer cores. `docs/protocol.md` describes the same
//! layout for people.
//!
//! Every frame starts with a four-byte header: the magic bytes `0xFF 'I'`, the protocol
//! version, and the frame kind. `0xFF` never occurs in UTF-8 text, so a datagram that starts
//! with it can never be a plain-text line from a guest (see the server's guest mode), and a
//! text line can never be mistaken for a frame. Integers are big-endian ("network order").
//! Strings are UTF-8 with a length prefix: one byte for names, two bytes for texts.
//!
//! Frames are typed by direction: [`ToServer`] (kinds below `0x80`), [`ToClient`]
//! (`0x80..=0xBF`) and, in peer mode, [`PeerFrame`] (`0xC0..=0xDF`, [`PEER_KINDS`]), each
//! declared in one table (`table`) that gives every kind its code, name, encoder and
//! decoder. A frame of a reliable stream is `Sequenced(envelope, body)`: the [`Envelope`]
//! (`envelope`) comes right after the header, then the body's fields.
//!
//! A datagram holds one frame, or (since version 5) several frames for the same receiver
//! behind a header of kind [`PACKED_KIND`], or (since version 7) several frames of one
//! stream behind a header of kind [`RUN_KIND`] that carries their token and
//! acknowledgements once (`packed`): [`unpack`] checks it whole and gives its frames, each
//! then decoded as if it had come alone.

use std::fmt;

mod codes;
mod envelope;
mod packed;
mod peer;
mod table;
mod to_client;
mod to_server;

pub use codes::{DisconnectReason, GoneReason, LineKind, RefuseReason};
pub use envelope::{ACK_BITS, Acks, ENVELOPE_LEN, ENVELOPE_RANGE, Envelope};
pub use packed::{
    MAX_PACKED_FRAMES, PACKED_HEAD_LEN, PACKED_HEADER, PACKED_KIND, PACKED_PREFIX, RUN_HEAD_LEN,
    RUN_HEADER, RUN_KIND, RUN_SAVING, is_packed, may_pack, unpack, unpack_decoded,
};
pub use peer::{LastPart, MAX_MEMBER_RECORD_LEN, MemberRecord, PeerFrame, PeerItem};
pub use table::{Codec, Counted, Name, PaddedName, Text};
pub use to_client::{
    Delivery, FLOOD_TERMS_LEN, FloodTerms, HistoryEntry, PRESENCE_BATCH_FIXED_LEN, PresenceChange,
    PresenceItem, RosterEntry, ToClient,
};
pub use to_server::{Request, ToServer};

/// First two bytes of every frame.
pub const MAGIC: [u8; 2] = [0xFF, b'I'];

/// A join ([`ToServer::Join`], [`PeerFrame::Join`]) is zero-padded to at least this many
/// bytes. Until an address has proved it receives there (the cookie of a
/// [`ToClient::Challenge`]), what the server answers it (a challenge, a refusal) must be far
/// smaller than what it sent, so that a forged join cannot turn the server into an
/// amplifier aimed at someone else's address.
pub const JOIN_MIN_LEN: usize = 512;

/// The protocol version this build speaks. A server refuses a join of any other version.
pub const VERSION: u8 = 7;

/// The frame kinds reserved for peer mode ([`PeerFrame`]); other kinds belong to the
/// client–server protocol.
pub const PEER_KINDS: std::ops::RangeInclusive<u8> = 0xC0..=0xDF;

/// Bytes before the body of every frame: magic (2), version (1), kind (1).
pub const HEADER_LEN: usize = 4;

/// The largest datagram either side sends or accepts. 1200 bytes fits in one packet on any
/// path that IPv6 allows (minimum MTU 1280, less IPv6 and UDP headers), so a frame is never
/// fragmented — a lost fragment would lose the whole datagram.
pub const MAX_DATAGRAM: usize = 1200;

/// The most bytes of UTF-8 a name may take on the wire: 32 characters of up to 4 bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// The most bytes of UTF-8 text in one chat message or notice. Chosen so that the largest
/// server-to-client frame, a private message (header 4, envelope 24, timestamp 8, two
/// names of up to 1 + 128, text length 2), stays within [`MAX_DATAGRAM`]: 1200 - 296 = 904;
/// longer typed lines are split into several messages.
pub const MAX_TEXT_BYTES: usize = 900;

/// The kinds whose layout every version keeps (see the `any_version_*` functions), named
/// here so that those functions and the tables agree.
const JOIN_KIND: u8 = 0x01;
const REFUSED_KIND: u8 = 0x82;
const PEER_JOIN_KIND: u8 = 0xC0;

/// One protocol message, of any direction. A receiver decodes every datagram to a `Frame`
/// and then answers only the direction it expects: a server [`Frame::ToServer`], a client
/// [`Frame::ToClient`], a peer [`Frame::Peer`] (and a client's join, to refuse it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// From a client to a server.
    ToServer(ToServer),
    /// From a server to a client.
    ToClient(ToClient),
    /// Between peers.
    Peer(PeerFrame),
}

impl From<ToServer> for Frame {
    fn from(frame: ToServer) -> Frame {
        Frame::ToServer(frame)
    }
}

impl From<ToClient> for Frame {
    fn from(frame: ToClient) -> Frame {
        Frame::ToClient(frame)
    }
}

impl From<PeerFrame> for Frame {
    fn from(frame: PeerFrame) -> Frame {
        Frame::Peer(frame)
    }
}

impl Frame {
    /// Whether this frame travels from client to server. A server must never answer a
    /// frame that travels another way: it is either a mistake or a forgery aimed at making
    /// two servers (or a server and itself) answer each other forever.
    pub fn travels_to_server(&self) -> bool {
        matches!(self, Frame::ToServer(_))
    }

    /// Whether this is a peer-mode frame (kinds `0xC0..=0xDF`), which only peers exchange.
    pub fn is_peer(&self) -> bool {
        matches!(self, Frame::Peer(_))
    }

    /// The kind code on the wire.
    pub fn kind(&self) -> u8 {
        match self {
            Frame::ToServer(frame) => frame.kind(),
            Frame::ToClient(frame) => frame.kind(),
            Frame::Peer(frame) => frame.kind(),
        }
    }

    /// The kind's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::ToServer(frame) => frame.name(),
            Frame::ToClient(frame) => frame.name(),
            Frame::Peer(frame) => frame.name(),
        }
    }

    /// The envelope of a sequenced frame; `None` for frames that stand alone.
    pub fn envelope(&self) -> Option<&Envelope> {
        match self {
            Frame::ToServer(frame) => frame.envelope(),
            Frame::ToClient(frame) => frame.envelope(),
            Frame::Peer(frame) => frame.envelope(),
        }
    }

    /// The envelope of a sequenced frame, to change it.
    pub fn envelope_mut(&mut self) -> Option<&mut Envelope> {
        match self {
            Frame::ToServer(frame) => frame.envelope_mut(),
            Frame::ToClient(frame) => frame.envelope_mut(),
            Frame::Peer(frame) => frame.envelope_mut(),
        }
    }

    /// The session token the frame carries, if any (see each direction's `token`).
    pub fn token(&self) -> Option<u64> {
        match self {
            Frame::ToServer(frame) => frame.token(),
            Frame::ToClient(frame) => frame.token(),
            Frame::Peer(frame) => frame.token(),
        }
    }

    /// The acknowledgements the frame carries, if any.
    pub fn acks(&self) -> Option<Acks> {
        match self {
            Frame::ToServer(frame) => frame.acks(),
            Frame::ToClient(frame) => frame.acks(),
            Frame::Peer(frame) => frame.acks(),
        }
    }

    /// Appends the encoded frame to `out`.
    ///
    /// The caller keeps names within [`MAX_NAME_BYTES`] and texts within [`MAX_TEXT_BYTES`]
    /// (the cores validate and split before building frames); a longer field is cut at a
    /// character boundary rather than producing a frame the peer would reject.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::ToServer(frame) => frame.encode(out),
            Frame::ToClient(frame) => frame.encode(out),
            Frame::Peer(frame) => frame.encode(out),
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
            len: datagram.len(),
        };
        let [version] = r.array()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let [kind] = r.array()?;
        // The kind's range says its direction, so one table is asked.
        let frame = match kind {
            ..0x80 => ToServer::decode_kind(kind, &mut r)?,
            0x80..0xC0 => ToClient::decode_kind(kind, &mut r)?,
            _ => PeerFrame::decode_kind(kind, &mut r)?,
        };
        if !r.rest.is_empty() {
            return Err(DecodeError::TrailingBytes {
                count: r.rest.len(),
            });
        }
        Ok(frame)
    }
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
    /// A packed datagram holds a frame of a kind that always travels alone (a join, a
    /// challenge, a refusal).
    Unpackable { kind: u8 },
    /// A packed datagram holds frames of more than one direction.
    MixedDirections,
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
            DecodeError::Unpackable { kind } => {
                write!(f, "a packed datagram holds a frame of kind 0x{kind:02x}")
            }
            DecodeError::MixedDirections => {
                write!(f, "a packed datagram holds frames of two directions")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Whether a datagram claims to be a frame (starts with the magic bytes). The server uses
/// this to tell protocol frames from guests' plain-text lines before decoding.
pub fn is_frame(datagram: &[u8]) -> bool {
    datagram.starts_with(&MAGIC)
}

/// Whether frames of kind `kind` (of any direction) are sequenced: they carry an
/// [`Envelope`] at [`ENVELOPE_RANGE`].
pub fn is_sequenced(kind: u8) -> bool {
    ToServer::is_sequenced_kind(kind)
        || ToClient::is_sequenced_kind(kind)
        || PeerFrame::is_sequenced_kind(kind)
}

/// The nonce of a join of any protocol version: every version keeps it right after the
/// header, so a server can address a version refusal to the right client.
pub fn any_version_join_nonce(datagram: &[u8]) -> Option<u64> {
    if !is_frame(datagram) || datagram.len() < HEADER_LEN + 8 || datagram[3] != JOIN_KIND {
        return None;
    }
    let nonce = datagram[HEADER_LEN..HEADER_LEN + 8].try_into().ok()?;
    Some(u64::from_be_bytes(nonce))
}

/// The nonce of a [`PeerFrame::Join`] of any protocol version, which keeps it right after
/// the header like [`ToServer::Join`]: a peer answers a join of another version with the
/// [`ToClient::Refused`] every version reads.
pub fn any_version_peer_join_nonce(datagram: &[u8]) -> Option<u64> {
    if !is_frame(datagram) || datagram.len() < HEADER_LEN + 8 || datagram[3] != PEER_JOIN_KIND {
        return None;
    }
    let nonce = datagram[HEADER_LEN..HEADER_LEN + 8].try_into().ok()?;
    Some(u64::from_be_bytes(nonce))
}

/// Decodes a refusal of any protocol version. A [`ToClient::Refused`] keeps the same layout in
/// every version (header, nonce, reason), so a client can learn that a server speaks
/// another version instead of waiting for an answer it cannot read.
pub fn any_version_refusal(datagram: &[u8]) -> Option<(u64, RefuseReason)> {
    if !is_frame(datagram) || datagram.len() != HEADER_LEN + 9 || datagram[3] != REFUSED_KIND {
        return None;
    }
    let nonce = u64::from_be_bytes(datagram[HEADER_LEN..HEADER_LEN + 8].try_into().ok()?);
    Some((nonce, RefuseReason::from_code(datagram[HEADER_LEN + 8])?))
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

/// Where an encoder writes: the buffer, and where the frame began in it (a join is padded
/// to a length counted from there).
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> Writer<'a> {
    /// Starts a frame of kind `kind` at the end of `out`: writes its header.
    #[inline]
    pub(crate) fn frame(out: &'a mut Vec<u8>, kind: u8) -> Writer<'a> {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[VERSION, kind]);
        Writer { out, start }
    }

    /// Appends raw bytes.
    #[inline]
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Appends zeros until the frame is `len` bytes long.
    pub fn pad_to(&mut self, len: usize) {
        let end = self.start + len;
        if self.out.len() < end {
            self.out.resize(end, 0);
        }
    }
}

/// A cursor over the bytes not yet decoded. Every read checks the length first, so a
/// truncated datagram yields [`DecodeError::Truncated`] instead of a panic.
pub struct Reader<'a> {
    rest: &'a [u8],
    /// The whole datagram's length (a join's padding is checked against it).
    len: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes.
    #[inline]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `len` bytes as UTF-8, if `len` is within `max`.
    pub fn string(
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

    /// Takes the rest of the datagram, which must be zeros making it at least `min` bytes.
    pub fn zero_padding(&mut self, min: usize) -> Result<(), DecodeError> {
        if self.len < min || self.rest.iter().any(|&b| b != 0) {
            return Err(DecodeError::UnpaddedJoin { len: self.len });
        }
        self.rest = &[];
        Ok(())
    }
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests;
