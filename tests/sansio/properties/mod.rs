//! Property-based tests (parser robustness): everything that reads bytes or text
//! from outside is fed inputs made up by `proptest`, which shrinks any failure to a minimal
//! input and prints it. This module owns what every topic shares (the case settings, the
//! [`record!`] generator of records, names and texts); each topic is a module:
//!
//! - `frames`: the generators of frames and datagrams, every frame kind listed once, in a
//!   table per direction; `decode` fails until the tables make every kind the decoder knows.
//! - `decode`: [`Frame::decode`] never panics on any bytes (random, starting with a valid
//!   header, a valid encoding mutated, cut short or relabelled with another version), and
//!   what it accepts is exactly what the encoder writes; every kind survives encode → decode
//!   with any field values within the limits; every encoding fits in [`MAX_DATAGRAM`];
//!   patching an envelope equals encoding with it.
//! - `command_line`: [`icq::command::parse`] never panics on any line, on either side, and
//!   agrees with a model of the documented rules (text, `//` escape, commands, errors).
//! - `sanitize`: [`icq::text::sanitize`] leaves no control character, escape or bidi
//!   control, handles each character on its own, and passes printable text through unchanged.
//! - `hostile_server`: the sans-IO server fed thousands of hostile datagrams from any address
//!   (garbage, mutated frames, valid frames with random or learned tokens, joins), time jumps
//!   and operator commands never panics; everything it sends is a valid server-to-client
//!   frame or a guest's text line within [`MAX_DATAGRAM`]; it never sends to an address that
//!   has not joined except in answer to that address; and (guests off) it answers such an
//!   address with no more bytes than the datagram it answers, so no more in total than it
//!   received from it. Garbage alone never makes anyone joined.
//!
//! Case counts are moderate so the whole suite runs in seconds on two cores.
//!
//! [`Frame::decode`]: icq::wire::Frame::decode
//! [`MAX_DATAGRAM`]: icq::wire::MAX_DATAGRAM

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use icq::wire::{self, MAX_NAME_BYTES, MAX_TEXT_BYTES};

/// The strategy for a record (a struct or a struct variant) with each field drawn from its
/// own strategy: `record!(Request::Chat { sent_ms in any::<u64>(), text in arb_text() })`;
/// or, where several records draw the same fields, from one strategy of a tuple in field
/// order: `record!(PeerItem::Chat { time_ms, sent_ms, text } from arb_said())`. A macro
/// because no function can be generic over a variant's field names: without it every
/// generator wrote each field twice, in the closure's pattern and in the literal.
macro_rules! record {
    ($($path:ident)::+ { $($field:ident in $strategy:expr),+ $(,)? }) => {
        record!($($path)::+ { $($field),+ } from ($($strategy,)+))
    };
    ($($path:ident)::+ { $($field:ident),+ $(,)? } from $fields:expr) => {
        $fields.prop_map(|($($field,)+)| $($path)::+ { $($field),+ })
    };
}

mod command_line;
mod decode;
mod frames;
mod hostile_server;
mod sanitize;

/// `cases` cases per property. Failures are not saved to a file: proptest prints the
/// minimal input, and a bug found that way gets a plain regression test.
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One character of a name or a text: anything at all, or one of those that matter here
/// (multibyte, controls, escape, bidi and invisible characters, whitespace, the slash).
fn arb_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        3 => proptest::char::range('a', 'z'),
        2 => select(vec![
            'é', 'ß', 'Z', '日', '本', '🎉', '𝓪', '\u{0}', '\u{7}', '\u{1b}', '\u{7f}',
            '\u{85}', '\u{9b}', '\u{200b}', '\u{200d}', '\u{202e}', '\u{2066}', '\u{feff}',
            ' ', '\t', '\n', '\r', '/',
        ]),
    ]
}

/// Up to `max_chars` characters, cut to at most `max_bytes` bytes on a character boundary.
fn arb_string(max_chars: usize, max_bytes: usize) -> impl Strategy<Value = String> {
    vec(arb_char(), 0..=max_chars).prop_map(move |chars| {
        let text: String = chars.into_iter().collect();
        wire::truncate_to_char_boundary(&text, max_bytes).to_owned()
    })
}

/// `ch` repeated to fill `max_bytes` as nearly as whole characters allow.
fn filled(ch: char, max_bytes: usize) -> String {
    ch.to_string().repeat(max_bytes / ch.len_utf8())
}

/// A name as a frame may carry it: valid names (so joins succeed), anything within
/// [`MAX_NAME_BYTES`], and the longest names in bytes (1-, 2-, 3- and 4-byte characters).
fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-zA-Z0-9_]{1,12}",
        2 => arb_string(40, MAX_NAME_BYTES),
        1 => select(vec!['x', 'é', '日', '𝓪']).prop_map(|ch| filled(ch, MAX_NAME_BYTES)),
    ]
}

/// A text within [`MAX_TEXT_BYTES`]: short and mixed, long and mixed, or one character
/// repeated up to the limit.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => arb_string(64, MAX_TEXT_BYTES),
        1 => arb_string(MAX_TEXT_BYTES, MAX_TEXT_BYTES),
        1 => (arb_char(), 0..=MAX_TEXT_BYTES).prop_map(|(ch, n)| {
            let text = ch.to_string().repeat(n);
            wire::truncate_to_char_boundary(&text, MAX_TEXT_BYTES).to_owned()
        }),
    ]
}
