//! Decoding: [`Frame::decode`] never panics on any bytes (random, starting with a valid
//! header, a valid encoding mutated, cut short or relabelled with another version), and what
//! it accepts is exactly what the encoder writes; every kind survives encode → decode with
//! any field values within the limits; every encoding fits in [`MAX_DATAGRAM`]; patching an
//! envelope equals encoding with it.

use std::collections::HashSet;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use icq::wire::{
    self, DecodeError, ENVELOPE_RANGE, Frame, JOIN_MIN_LEN, MAGIC, MAX_DATAGRAM, PeerFrame,
    ToServer, VERSION,
};

use super::cases;
use super::frames::{
    arb_client_frame, arb_cut_frame, arb_envelope, arb_frame, arb_headed_bytes, arb_mutated_frame,
};

/// Decodes `bytes` (which must not panic, nor may the other-version helpers) and checks that
/// an accepted datagram is the canonical encoding of what was decoded: the decoder is
/// strict, so nothing is half understood. A join (of either mode) may be zero-padded past
/// [`JOIN_MIN_LEN`].
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    let result = Frame::decode(bytes);
    let _ = wire::any_version_join_nonce(bytes);
    let _ = wire::any_version_peer_join_nonce(bytes);
    let _ = wire::any_version_refusal(bytes);
    match result {
        Ok(frame) => {
            prop_assert!(bytes.len() <= MAX_DATAGRAM);
            let canonical = frame.to_bytes();
            if let Frame::ToServer(ToServer::Join { .. }) | Frame::Peer(PeerFrame::Join { .. }) =
                frame
            {
                prop_assert_eq!(&bytes[..canonical.len()], &canonical[..]);
                prop_assert!(bytes[canonical.len()..].iter().all(|&b| b == 0));
            } else {
                prop_assert_eq!(&canonical[..], bytes);
            }
        }
        Err(error) => {
            prop_assert!(!error.to_string().is_empty());
            if bytes.len() > MAX_DATAGRAM {
                prop_assert_eq!(error, DecodeError::TooLarge { len: bytes.len() });
            } else if !bytes.starts_with(&MAGIC) {
                prop_assert_eq!(error, DecodeError::NotAFrame);
            }
        }
    }
    Ok(())
}

#[test]
fn arb_frame_makes_every_kind() {
    let mut runner = TestRunner::deterministic();
    let strategy = arb_frame();
    let mut seen = HashSet::new();
    for _ in 0..2000 {
        let frame = strategy.new_tree(&mut runner).expect("a frame").current();
        seen.insert(frame.kind());
    }
    let client = arb_client_frame();
    for _ in 0..200 {
        let frame = client.new_tree(&mut runner).expect("a frame").current();
        assert!(frame.travels_to_server(), "{frame:?}");
    }
    // Every kind the decoder knows: a bare header of any other kind is an unknown kind.
    let missing: Vec<u8> = (0..=u8::MAX)
        .filter(|&kind| {
            !matches!(
                Frame::decode(&[MAGIC[0], MAGIC[1], VERSION, kind]),
                Err(DecodeError::UnknownKind { .. })
            )
        })
        .filter(|kind| !seen.contains(kind))
        .collect();
    assert!(
        missing.is_empty(),
        "arb_frame never made kinds {missing:02x?}"
    );
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn decode_never_panics_on_random_bytes(bytes in vec(any::<u8>(), 0..=1300)) {
        check_decode(&bytes)?;
    }

    #[test]
    fn decode_never_panics_past_a_valid_header(bytes in arb_headed_bytes()) {
        check_decode(&bytes)?;
    }

    #[test]
    fn decode_never_panics_on_mutated_frames(bytes in arb_mutated_frame()) {
        check_decode(&bytes)?;
    }

    #[test]
    fn decode_never_panics_on_cut_or_relabelled_frames(bytes in arb_cut_frame(arb_frame())) {
        check_decode(&bytes)?;
    }

    #[test]
    fn every_kind_round_trips_and_fits_in_a_datagram(frame in arb_frame()) {
        let bytes = frame.to_bytes();
        prop_assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
        if let Frame::ToServer(ToServer::Join { .. }) | Frame::Peer(PeerFrame::Join { .. }) = frame {
            prop_assert_eq!(bytes.len(), JOIN_MIN_LEN);
        }
        prop_assert_eq!(frame.travels_to_server(), bytes[3] < 0x80);
        prop_assert_eq!(frame.is_peer(), wire::PEER_KINDS.contains(&bytes[3]));
        prop_assert_eq!(Frame::decode(&bytes), Ok(frame));
    }

    #[test]
    fn patching_an_envelope_equals_encoding_with_it(
        frame in arb_frame(),
        envelope in arb_envelope(),
    ) {
        let mut with = frame.clone();
        if let Some(slot) = with.envelope_mut() {
            *slot = envelope;
            let mut patched = frame.to_bytes();
            envelope.patch(&mut patched);
            prop_assert_eq!(&patched, &with.to_bytes());
            prop_assert_eq!(patched.get(ENVELOPE_RANGE).map(<[u8]>::len), Some(24));
            prop_assert_eq!(Frame::decode(&patched), Ok(with));
        }
    }
}
