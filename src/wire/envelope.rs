//! The session fields of the reliable streams: the [`Envelope`] every sequenced frame
//! carries right after the header (token, sequence number, [`Acks`]), and the [`Acks`]
//! that bare acknowledgements carry alone. This module owns their layout and the
//! arithmetic of the selective-acknowledgement bitmap; what a sender does with
//! acknowledgements (retransmission, windows) belongs to the session layer's `reliable`.

use super::table::{Codec, record_codec};
use super::{HEADER_LEN, Reader};

/// How many frames past the cumulative acknowledgement the selective bitmap describes: the
/// bits of [`Acks::also`].
pub const ACK_BITS: u32 = 64;

/// What a receiver has got: every sequence number up to `through`, plus those marked in
/// `also` (bit `i` set means `through + 2 + i` arrived; `through + 1` is by definition
/// missing). Sequence numbers start at 1, so `through == 0` means nothing yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Acks {
    /// Every frame up to and including this sequence number arrived.
    pub through: u32,
    /// Frames after the first gap that arrived too, as a bitmap (see the type's doc).
    pub also: u64,
}

impl Acks {
    /// Whether these acknowledgements cover `seq`.
    pub fn contains(&self, seq: u32) -> bool {
        if seq <= self.through {
            return true;
        }
        let offset = seq - self.through;
        (2..2 + ACK_BITS).contains(&offset) && self.also & (1 << (offset - 2)) != 0
    }

    /// The highest sequence number these acknowledgements cover.
    pub fn largest(&self) -> u32 {
        if self.also == 0 {
            self.through
        } else {
            // Saturating: a peer may claim `through = u32::MAX`, and that must not panic.
            self.through
                .saturating_add(1 + (ACK_BITS - self.also.leading_zeros()))
        }
    }
}

record_codec!(Acks {
    through: u32,
    also: u64
});

/// The session fields every frame of the reliable streams carries, right after the header:
/// the session token, the frame's own sequence number in its direction, and the sender's
/// acknowledgements of the other direction. They sit at a fixed place ([`ENVELOPE_RANGE`]) so
/// a broadcast can be encoded once and patched for each recipient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Envelope {
    /// The session's secret, chosen by the server at join (see
    /// [`super::ToClient::Welcome`]).
    pub token: u64,
    /// This frame's number in its direction's stream, from 1.
    pub seq: u32,
    /// What the sender has received of the other direction's stream.
    pub acks: Acks,
}

/// Encoded size of an [`Envelope`]: token (8), seq (4), acks.through (4), acks.also (8).
pub const ENVELOPE_LEN: usize = 24;

/// Where the [`Envelope`] sits in every sequenced frame.
pub const ENVELOPE_RANGE: std::ops::Range<usize> = HEADER_LEN..HEADER_LEN + ENVELOPE_LEN;

impl Envelope {
    /// Overwrites the envelope of an encoded sequenced frame, as encoding with it would
    /// have written it. `datagram` must be a sequenced frame (at least
    /// [`ENVELOPE_RANGE`]`.end` bytes long).
    pub fn patch(&self, datagram: &mut [u8]) {
        let field = &mut datagram[ENVELOPE_RANGE];
        field[..8].copy_from_slice(&self.token.to_be_bytes());
        field[8..12].copy_from_slice(&self.seq.to_be_bytes());
        field[12..16].copy_from_slice(&self.acks.through.to_be_bytes());
        field[16..24].copy_from_slice(&self.acks.also.to_be_bytes());
    }

    /// The envelope of an encoded sequenced frame, read where [`Envelope::patch`] writes
    /// it; `None` if `frame` is too short to hold one. (Whether the frame is of a
    /// sequenced kind is the caller's to know: see [`super::is_sequenced`].)
    pub fn read(frame: &[u8]) -> Option<Envelope> {
        let mut field = Reader {
            rest: frame.get(ENVELOPE_RANGE)?,
            len: ENVELOPE_LEN,
        };
        <Envelope as Codec<Envelope>>::get(&mut field).ok()
    }
}

record_codec!(Envelope {
    token: u64,
    seq: u32,
    acks: Acks
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_bitmap_contains_and_largest() {
        let acks = Acks {
            through: 10,
            also: 0b101,
        };
        assert!(acks.contains(1) && acks.contains(10));
        assert!(!acks.contains(11));
        assert!(acks.contains(12) && !acks.contains(13) && acks.contains(14));
        assert!(!acks.contains(10 + 2 + ACK_BITS));
        assert_eq!(acks.largest(), 14);
        assert_eq!(Acks::default().largest(), 0);
        // A hostile peer's numbers must not overflow.
        let hostile = Acks {
            through: u32::MAX,
            also: 1,
        };
        assert_eq!(hostile.largest(), u32::MAX);
    }
}
