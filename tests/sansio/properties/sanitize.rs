//! Sanitizing text: [`text::sanitize`] leaves no control character, escape or bidi control,
//! handles each character on its own, and passes printable text through unchanged.

use std::borrow::Cow;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use icq::names;
use icq::text;

use super::cases;

/// The characters Unicode calls bidirectional controls (property `Bidi_Control`), listed
/// here apart from `names::is_invisible_or_bidi` so the check does not trust the code.
fn is_bidi_control(ch: char) -> bool {
    matches!(ch, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text an attacker would send: any characters, heavy on C0, C1, DEL, escape sequences and
/// the format characters around U+2000 and U+FE00.
fn arb_hostile_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        any::<char>(),
        proptest::char::range('\u{0}', '\u{a0}'),
        proptest::char::range('\u{2000}', '\u{206f}'),
        proptest::char::range('\u{fe00}', '\u{feff}'),
        select(vec![
            '\u{1b}', '[', ']', '2', 'J', ';', '\u{7}', '\u{9b}', '\u{61c}'
        ]),
    ];
    vec(ch, 0..=200).prop_map(|chars| chars.into_iter().collect())
}

/// Printable text in several scripts, RTL letters and emoji (single code points: emoji
/// sequences built with U+200D or U+FE0F are not included, since `sanitize` documents those
/// as invisible characters and replaces them).
fn arb_printable_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        proptest::char::range(' ', '~'),
        proptest::char::range('\u{a1}', '\u{ac}'),
        proptest::char::range('\u{ae}', '\u{24f}'),
        proptest::char::range('\u{391}', '\u{3a9}'),
        proptest::char::range('\u{410}', '\u{44f}'),
        proptest::char::range('\u{5d0}', '\u{5ea}'),
        proptest::char::range('\u{627}', '\u{64a}'),
        proptest::char::range('\u{3041}', '\u{3096}'),
        proptest::char::range('\u{4e00}', '\u{9fff}'),
        proptest::char::range('\u{ac00}', '\u{d7a3}'),
        proptest::char::range('\u{1f300}', '\u{1f64f}'),
        proptest::char::range('\u{1f680}', '\u{1f6ff}'),
    ];
    vec(ch, 0..=120).prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn sanitize_leaves_no_control_escape_or_bidi_character(text in arb_hostile_text()) {
        let clean = text::sanitize(&text);
        for ch in clean.chars() {
            // Joiners and variation selectors stay: emoji sequences and some scripts
            // need them, and they neither move nor hide text.
            let joiner = matches!(ch, '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}');
            prop_assert!(
                !ch.is_control()
                    && !is_bidi_control(ch)
                    && (joiner || !names::is_invisible_or_bidi(ch)),
                "U+{:04X} left in {:?}", u32::from(ch), clean
            );
        }
        // Each character is handled on its own: no combination slips through, and cleaning
        // twice changes nothing more.
        let one_by_one: String = text
            .chars()
            .map(|ch| text::sanitize(&ch.to_string()).into_owned())
            .collect();
        prop_assert_eq!(&clean[..], &one_by_one[..]);
        prop_assert_eq!(&text::sanitize(&clean)[..], &clean[..]);
    }

    #[test]
    fn sanitize_keeps_printable_text_unchanged(text in arb_printable_text()) {
        let clean = text::sanitize(&text);
        prop_assert!(matches!(clean, Cow::Borrowed(_)), "{:?} was copied", text);
        prop_assert_eq!(&clean[..], &text[..]);
    }
}
