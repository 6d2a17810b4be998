//! Packed datagrams: several frames for one receiver in one datagram (since version 5).
//!
//! This module owns the layout of a packed datagram and its strict decoding: a header of
//! kind [`PACKED_KIND`], a count of frames (one byte), then that many frames, each behind a
//! two-byte length, ending exactly at the end of the datagram, at most
//! [`MAX_DATAGRAM`](super::MAX_DATAGRAM) bytes in all (the count makes a datagram cut at any
//! byte, even between two frames, a rejected one). Every inner frame is a whole frame
//! (header included) and is decoded with the strictness of a datagram of its own; the
//! datagram is accepted only if every one of them is, so a receiver acts on all of its
//! frames or on none. It does not own *which* frames a sender packs together, or when
//! (`proto::packing`): only which kinds may never travel packed ([`may_pack`]).

use super::{
    DecodeError, Frame, HEADER_LEN, JOIN_KIND, MAGIC, MAX_DATAGRAM, PEER_JOIN_KIND, REFUSED_KIND,
    VERSION, is_frame,
};

/// The kind byte of a packed datagram. It lies outside every direction's range, so a
/// decoder of one frame ([`Frame::decode`]) rejects it as an unknown kind: a packed
/// datagram never nests in another.
pub const PACKED_KIND: u8 = 0xE0;

/// The header of a packed datagram in this version.
pub const PACKED_HEADER: [u8; HEADER_LEN] = [MAGIC[0], MAGIC[1], VERSION, PACKED_KIND];

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

/// Whether `datagram` claims to be a packed datagram (of any version): then
/// [`unpack`] says whether it is one.
pub fn is_packed(datagram: &[u8]) -> bool {
    is_frame(datagram) && datagram.get(3) == Some(&PACKED_KIND)
}

/// The inner frames of a packed datagram, in order, each checked to be a whole, valid
/// frame of a kind that may travel packed, all of one direction. Strict: a count of zero,
/// fewer or more frames than the count, a length running past the end, an inner frame
/// that does not decode on its own (a packed datagram inside included), a join, challenge
/// or refusal, or frames of two directions (or of peer mode and the client–server
/// protocol) is rejected whole.
pub fn unpack(datagram: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    Ok(unpack_both(datagram)?
        .into_iter()
        .map(|(bytes, _)| bytes)
        .collect())
}

/// The inner frames of a packed datagram as [`unpack`] checks them, already decoded:
/// checking decodes every frame, so a receiver that acts on the frames takes these rather
/// than decoding each one a second time.
pub fn unpack_decoded(datagram: &[u8]) -> Result<Vec<Frame>, DecodeError> {
    Ok(unpack_both(datagram)?
        .into_iter()
        .map(|(_, frame)| frame)
        .collect())
}

/// The rules of [`unpack`], once: each inner frame's bytes and what they decode to.
fn unpack_both(datagram: &[u8]) -> Result<Vec<(&[u8], Frame)>, DecodeError> {
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
    if header[3] != PACKED_KIND {
        return Err(DecodeError::UnknownKind { kind: header[3] });
    }
    let &count = datagram.get(HEADER_LEN).ok_or(DecodeError::Truncated)?;
    if count == 0 {
        return Err(DecodeError::BadValue {
            field: "frame count",
            value: 0,
        });
    }
    let mut rest = &datagram[PACKED_HEAD_LEN..];
    let mut frames = Vec::with_capacity(usize::from(count));
    let mut direction = None;
    while frames.len() < usize::from(count) {
        let (len, after) = rest
            .split_at_checked(PACKED_PREFIX)
            .ok_or(DecodeError::Truncated)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (frame, after) = after.split_at_checked(len).ok_or(DecodeError::Truncated)?;
        let decoded = Frame::decode(frame)?;
        if !may_pack(frame) {
            return Err(DecodeError::Unpackable {
                kind: decoded.kind(),
            });
        }
        let this = std::mem::discriminant(&decoded);
        if *direction.get_or_insert(this) != this {
            return Err(DecodeError::MixedDirections);
        }
        frames.push((frame, decoded));
        rest = after;
    }
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: rest.len() });
    }
    Ok(frames)
}
