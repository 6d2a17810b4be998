//! Packed datagrams: several frames for one receiver in one datagram (since version 5), in
//! two forms (since version 7).
//!
//! This module owns the layout of a packed datagram and its strict decoding. The general
//! form, of kind [`PACKED_KIND`]: a count of frames (one byte), then that many whole frames
//! (header included), each behind a two-byte length. The run, of kind [`RUN_KIND`], for
//! frames of one reliable stream: the session token and the acknowledgements they all
//! carry are written once, after the count, and each frame behind its length is only its
//! kind, its sequence number and its body; the receiver puts back the header and the
//! envelope it left out ([`RUN_SAVING`] bytes a frame). Either form ends after its last
//! frame, or in zero bytes up to the datagram's end (padding, so that a sender can hand the
//! kernel several datagrams of one size in one call), at most
//! [`MAX_DATAGRAM`](super::MAX_DATAGRAM) bytes in all (the count makes a datagram cut at
//! any byte, even between two frames, a rejected one). Every inner frame is decoded with
//! the strictness of a datagram of its own; the datagram is accepted only if every one of
//! them is, so a receiver acts on all of its frames or on none. It does not own *which*
//! frames a sender packs together, or when, or in which form (`proto::packing`): only
//! which kinds may never travel packed ([`may_pack`]).

use std::borrow::Cow;

use super::{
    DecodeError, ENVELOPE_LEN, ENVELOPE_RANGE, Frame, HEADER_LEN, JOIN_KIND, MAGIC, MAX_DATAGRAM,
    PEER_JOIN_KIND, REFUSED_KIND, VERSION, is_frame, is_sequenced,
};

/// The kind byte of a packed datagram. It lies outside every direction's range, so a
/// decoder of one frame ([`Frame::decode`]) rejects it as an unknown kind: a packed
/// datagram never nests in another.
pub const PACKED_KIND: u8 = 0xE0;

/// The header of a packed datagram in this version.
pub const PACKED_HEADER: [u8; HEADER_LEN] = [MAGIC[0], MAGIC[1], VERSION, PACKED_KIND];

/// The kind byte of a run: a packed datagram whose frames are all of one reliable stream,
/// sharing their token and acknowledgements (since version 7).
pub const RUN_KIND: u8 = 0xE1;

/// The header of a run in this version.
pub const RUN_HEADER: [u8; HEADER_LEN] = [MAGIC[0], MAGIC[1], VERSION, RUN_KIND];

/// Bytes before a run's first frame: the header, the count, the token (8) and the
/// acknowledgements (`through`, 4, and `also`, 8).
pub const RUN_HEAD_LEN: usize = HEADER_LEN + 1 + 8 + 12;

/// What a frame in a run keeps of its header and envelope: its kind (1) and its sequence
/// number (4).
pub const RUN_FRAME_HEAD: usize = 1 + 4;

/// The bytes a frame saves in a run: its header and envelope, but for what it keeps.
pub const RUN_SAVING: usize = HEADER_LEN + ENVELOPE_LEN - RUN_FRAME_HEAD;

/// Bytes before the first inner frame: the header and the count of frames.
pub const PACKED_HEAD_LEN: usize = HEADER_LEN + 1;

/// The most frames one packed datagram holds (its count is one byte).
pub const MAX_PACKED_FRAMES: usize = 255;

/// The length before each inner frame.
pub const PACKED_PREFIX: usize = 2;

/// The kinds that always travel alone: the joins (their padding is what keeps an answer to
/// an unproven address smaller than the question), and the answers to an address that has
/// proved nothing (challenges, refusals), whose size the anti-amplification rule bounds and
/// whose layout (a refusal's) every version must be able to read.
const ALONE: [u8; 6] = [
    JOIN_KIND,
    REFUSED_KIND,
    CHALLENGE_KIND,
    PEER_JOIN_KIND,
    PEER_CHALLENGE_KIND,
    PEER_REFUSED_KIND,
];
const CHALLENGE_KIND: u8 = 0x8B;
const PEER_CHALLENGE_KIND: u8 = 0xC1;
const PEER_REFUSED_KIND: u8 = 0xC3;

/// Whether the encoded frame `frame` may travel in a packed datagram: it is a frame, not of
/// a kind that always travels alone.
pub fn may_pack(frame: &[u8]) -> bool {
    is_frame(frame) && frame.len() >= HEADER_LEN && !ALONE.contains(&frame[3])
}

/// Whether `datagram` claims to be a packed datagram, of either form (of any version):
/// then [`unpack`] says whether it is one.
pub fn is_packed(datagram: &[u8]) -> bool {
    is_frame(datagram) && matches!(datagram.get(3), Some(&(PACKED_KIND | RUN_KIND)))
}

/// The inner frames of a packed datagram, in order, each checked to be a whole, valid
/// frame of a kind that may travel packed, all of one direction; a run's frames with the
/// header and envelope put back (so as new buffers), the general form's as they lie in the
/// datagram. Strict: a count of zero, fewer or more frames than the count, a length running
/// past the end, bytes after the last frame that are not zeros, an inner frame that does
/// not decode on its own (a packed datagram inside included), a join, challenge or refusal,
/// a frame of a run that is not of a sequenced kind, or frames of two directions (or of
/// peer mode and the client–server protocol) is rejected whole.
pub fn unpack(datagram: &[u8]) -> Result<Vec<Cow<'_, [u8]>>, DecodeError> {
    let mut frames = Vec::new();
    check(datagram, |bytes, _| {
        frames.push(match bytes {
            Inner::InDatagram(bytes) => Cow::Borrowed(bytes),
            Inner::Rebuilt(bytes) => Cow::Owned(bytes.to_vec()),
        })
    })?;
    Ok(frames)
}

/// The inner frames of a packed datagram as [`unpack`] checks them, already decoded:
/// checking decodes every frame, so a receiver that acts on the frames takes these rather
/// than decoding each one a second time.
pub fn unpack_decoded(datagram: &[u8]) -> Result<Vec<Frame>, DecodeError> {
    let mut frames = Vec::new();
    check(datagram, |_, frame| frames.push(frame))?;
    Ok(frames)
}

/// Where an inner frame's bytes are: in the datagram (the general form), or put together
/// again from a run, in a buffer that lasts until the next frame.
enum Inner<'a, 'b> {
    InDatagram(&'a [u8]),
    Rebuilt(&'b [u8]),
}

/// The rules of [`unpack`], once: gives `each` every inner frame's bytes and what they
/// decode to, in order, as it checks them. On an error what `each` was given is to be
/// dropped: the datagram is rejected whole.
fn check<'a>(
    datagram: &'a [u8],
    mut each: impl FnMut(Inner<'a, '_>, Frame),
) -> Result<(), DecodeError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(DecodeError::TooLarge {
            len: datagram.len(),
        });
    }
    if !is_frame(datagram) {
        return Err(DecodeError::NotAFrame);
    }
    let header = datagram.get(..HEADER_LEN).ok_or(DecodeError::Truncated)?;
    if header[2] != VERSION {
        return Err(DecodeError::UnsupportedVersion { version: header[2] });
    }
    let run = match header[3] {
        PACKED_KIND => false,
        RUN_KIND => true,
        kind => return Err(DecodeError::UnknownKind { kind }),
    };
    let &count = datagram.get(HEADER_LEN).ok_or(DecodeError::Truncated)?;
    if count == 0 {
        return Err(DecodeError::BadValue {
            field: "frame count",
            value: 0,
        });
    }
    let mut rest = &datagram[PACKED_HEAD_LEN..];
    // A run's frames are rebuilt here: a header, then the shared token and
    // acknowledgements in their places in the envelope, around the sequence number each
    // frame writes in.
    let mut rebuilt = Vec::new();
    if run {
        let (shared, after) = rest
            .split_at_checked(RUN_HEAD_LEN - PACKED_HEAD_LEN)
            .ok_or(DecodeError::Truncated)?;
        let (token, acks) = shared.split_at(8);
        rebuilt.extend_from_slice(&RUN_HEADER);
        rebuilt.extend_from_slice(token);
        rebuilt.extend_from_slice(&[0; 4]);
        rebuilt.extend_from_slice(acks);
        debug_assert_eq!(rebuilt.len(), ENVELOPE_RANGE.end);
        rest = after;
    }
    let mut direction = None;
    for _ in 0..count {
        let (len, after) = rest
            .split_at_checked(PACKED_PREFIX)
            .ok_or(DecodeError::Truncated)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (frame, after) = after.split_at_checked(len).ok_or(DecodeError::Truncated)?;
        rest = after;
        let frame = if run {
            let (head, body) = frame
                .split_at_checked(RUN_FRAME_HEAD)
                .ok_or(DecodeError::Truncated)?;
            let kind = head[0];
            if !is_sequenced(kind) {
                return Err(DecodeError::Unpackable { kind });
            }
            rebuilt.truncate(ENVELOPE_RANGE.end);
            rebuilt[3] = kind;
            // The sequence number's place in the envelope: after the token.
            rebuilt[ENVELOPE_RANGE.start + 8..ENVELOPE_RANGE.start + 12]
                .copy_from_slice(&head[1..]);
            rebuilt.extend_from_slice(body);
            Inner::Rebuilt(&rebuilt)
        } else {
            Inner::InDatagram(frame)
        };
        let bytes = match frame {
            Inner::InDatagram(bytes) | Inner::Rebuilt(bytes) => bytes,
        };
        let decoded = Frame::decode(bytes)?;
        if !may_pack(bytes) {
            return Err(DecodeError::Unpackable {
                kind: decoded.kind(),
            });
        }
        let this = std::mem::discriminant(&decoded);
        if *direction.get_or_insert(this) != this {
            return Err(DecodeError::MixedDirections);
        }
        each(frame, decoded);
    }
    // Padding: zeros to the end, so that a sender can make its datagrams one size.
    if let Some(nonzero) = rest.iter().position(|&byte| byte != 0) {
        return Err(DecodeError::TrailingBytes {
            count: rest.len() - nonzero,
        });
    }
    Ok(())
}
