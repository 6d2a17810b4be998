//! The naming rules: which names a client may join under, and when two names are "the same".
//!
//! This module owns name validation and the key under which the server and the peers of a
//! room keep names unique ([`key`]: case-insensitive, and blind to look-alike letters). It
//! does not own what happens on a violation (the server core refuses the join; the client
//! binary refuses to start) nor how names are displayed.
//!
//! Look-alikes come from Unicode's own data (UTS #39, "Unicode Security Mechanisms", through
//! the `unicode-security` crate): the confusable skeletons and the script of each letter.

use std::fmt;

use unicode_script::{Script, UnicodeScript};
use unicode_security::MixedScript;

/// The most characters a name may have.
pub const MAX_NAME_CHARS: usize = 32;

/// The name the server itself speaks under (console messages); no client may take it.
pub const SERVER_NAME: &str = "server";

/// Names starting with this are given by the server to guests (`guest-127.0.0.1:5000`), so a
/// named client cannot pass itself off as a guest at some address.
pub const GUEST_PREFIX: &str = "guest-";

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name has more than [`MAX_NAME_CHARS`] characters.
    TooLong { chars: usize },
    /// The name contains a space, control, invisible or text-direction character.
    ForbiddenChar { ch: char },
    /// The name is reserved (`server`, or starts with `guest-`).
    Reserved,
    /// The name mixes letters of several scripts (Latin `a` with Cyrillic `а`): the usual
    /// way to forge a name that looks like someone else's. `scripts` names them, in the
    /// order they appear.
    MixedScripts { scripts: Vec<&'static str> },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "a name needs at least one character"),
            NameError::TooLong { chars } => {
                write!(
                    f,
                    "a name has at most {MAX_NAME_CHARS} characters, not {chars}"
                )
            }
            NameError::ForbiddenChar { ch } if ch.is_whitespace() => {
                write!(f, "a name cannot contain spaces")
            }
            NameError::ForbiddenChar { ch } => write!(
                f,
                "a name cannot contain the invisible or control character U+{:04X}",
                u32::from(*ch)
            ),
            NameError::Reserved => write!(
                f,
                "'{SERVER_NAME}' and names starting with '{GUEST_PREFIX}' are reserved"
            ),
            NameError::MixedScripts { scripts } => write!(
                f,
                "a name cannot mix letters of different scripts (this one mixes {}), as \
                 look-alike names are made that way",
                scripts.join(" and ")
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Why a rename (`/nick`) is refused, in server and peer mode alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenameError {
    /// The new name breaks the naming rules.
    Invalid(NameError),
    /// Someone else is called that (by [`key`]).
    Taken,
}

/// Checks a rename to `new_name`: the naming rules first, then `taken`, asked with the new
/// name's [`key`] whether someone else holds it. Returns that key. The one check both the
/// server and the peers make, so a name refused in one mode is refused in the other.
pub fn check_rename(
    new_name: &str,
    taken: impl FnOnce(&str) -> bool,
) -> Result<String, RenameError> {
    validate(new_name).map_err(RenameError::Invalid)?;
    let new_key = key(new_name);
    if taken(&new_key) {
        return Err(RenameError::Taken);
    }
    Ok(new_key)
}

/// Checks a name a client asks to join under: 1 to 32 printable characters, no whitespace,
/// none of the invisible or direction-changing characters that would let two different names
/// look identical on screen, letters of one script (UTS #39's "single-script": Japanese may
/// mix Han and kana, anyone may add digits and punctuation), and not reserved.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(NameError::TooLong { chars });
    }
    if let Some(ch) = name.chars().find(|&ch| is_forbidden_in_name(ch)) {
        return Err(NameError::ForbiddenChar { ch });
    }
    if !name.is_single_script() {
        return Err(NameError::MixedScripts {
            scripts: scripts_of(name),
        });
    }
    let key = key(name);
    if key == SERVER_NAME || key.starts_with(GUEST_PREFIX) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// The scripts of the letters in `name`, each once, in order of appearance (digits and
/// punctuation belong to none).
fn scripts_of(name: &str) -> Vec<&'static str> {
    let mut scripts = Vec::new();
    for script in name.chars().map(|ch| ch.script()) {
        let name = script.full_name();
        if !matches!(script, Script::Common | Script::Inherited | Script::Unknown)
            && !scripts.contains(&name)
        {
            scripts.push(name);
        }
    }
    scripts
}

/// The key under which names are unique: two names with the same key are one name, and
/// only one person may hold it. `Alice`, `ALICE` and `alice` share a key (see [`fold`]), and
/// so do names that only differ by look-alike characters: `аӏісе` in Cyrillic letters,
/// `a1ice` and `alice`, `rn` and `m`.
///
/// The key is the UTS #39 confusable skeleton of the case-folded name (the comparison that
/// standard gives for case-insensitive identifiers), folded again because the skeleton's
/// prototypes may be capitals (`0` becomes `O`).
pub fn key(name: &str) -> String {
    let skeleton: String = unicode_security::skeleton(&fold(name)).collect();
    fold(&skeleton)
}

/// The key under which names are compared: `Alice`, `ALICE` and `alice` are one name, and
/// so are `Straße` and `STRASSE`, or `Σίσυφος` and `ΣΊΣΥΦΟΣ`.
///
/// Unicode's full case folding maps each character to a caseless form. Upper-casing first
/// (which expands `ß` to `SS`, `ﬁ` to `FI`, final `ς` to `Σ`) and then lower-casing gives the
/// same keys for names, with only the standard library.
pub fn fold(name: &str) -> String {
    name.to_uppercase().to_lowercase()
}

/// Whether `a` and `b` are one name by [`fold`] (case-insensitive): `fold(a) == fold(b)`,
/// without building either key when both are ASCII. The client asks this of every line it
/// receives ("is it my own?"), so the common case is kept free of allocations.
///
/// For ASCII text [`fold`] is exactly ASCII lower-casing (upper-casing an ASCII letter gives
/// an ASCII capital, lower-casing it the small letter; nothing else changes), so
/// `eq_ignore_ascii_case` gives the same answer. One ASCII and one non-ASCII name still go the
/// full way: some non-ASCII letters fold to ASCII ones (the Kelvin sign `K` to `k`, the long
/// `ſ` to `s`, the dotless `ı` to `i`).
pub fn same(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        fold(a) == fold(b)
    }
}

fn is_forbidden_in_name(ch: char) -> bool {
    ch.is_whitespace() || ch.is_control() || is_invisible_or_bidi(ch)
}

/// Characters that draw nothing or reorder the text around them. In a name they would let
/// `alice` and `al\u{200B}ice` coexist while looking the same; in text they are neutralized
/// by [`crate::text::sanitize`].
pub fn is_invisible_or_bidi(ch: char) -> bool {
    matches!(ch,
        '\u{00AD}'                // soft hyphen
        | '\u{034F}'              // combining grapheme joiner
        | '\u{061C}'              // Arabic letter mark
        | '\u{115F}' | '\u{1160}' // Hangul fillers
        | '\u{17B4}' | '\u{17B5}'
        | '\u{180E}'              // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{206A}'..='\u{206F}'
        | '\u{3164}'              // Hangul filler
        | '\u{FE00}'..='\u{FE0F}' // variation selectors
        | '\u{FEFF}'              // byte-order mark
        | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_accepted() {
        for name in [
            "alice",
            "Bob_42",
            "zoë",
            "日本語",
            "a",
            &"x".repeat(32),
            "guest",
        ] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(
            validate(&"é".repeat(33)),
            Err(NameError::TooLong { chars: 33 })
        );
        assert_eq!(
            validate("al ice"),
            Err(NameError::ForbiddenChar { ch: ' ' })
        );
        assert_eq!(
            validate("al\u{1b}ice"),
            Err(NameError::ForbiddenChar { ch: '\u{1b}' })
        );
        assert_eq!(
            validate("al\u{200B}ice"),
            Err(NameError::ForbiddenChar { ch: '\u{200B}' })
        );
        assert_eq!(
            validate("\u{202E}ecila"),
            Err(NameError::ForbiddenChar { ch: '\u{202E}' })
        );
        assert_eq!(validate("Server"), Err(NameError::Reserved));
        assert_eq!(validate("guest-1.2.3.4:5"), Err(NameError::Reserved));
    }

    #[test]
    fn error_messages_say_what_to_fix() {
        assert_eq!(
            NameError::ForbiddenChar { ch: ' ' }.to_string(),
            "a name cannot contain spaces"
        );
        assert_eq!(
            NameError::ForbiddenChar { ch: '\u{200B}' }.to_string(),
            "a name cannot contain the invisible or control character U+200B"
        );
    }

    #[test]
    fn names_mixing_scripts_are_refused_with_the_scripts_named() {
        // A Cyrillic "а" (U+0430) before Latin "lice".
        let error = validate("\u{430}lice").unwrap_err();
        assert_eq!(
            error,
            NameError::MixedScripts {
                scripts: vec!["Cyrillic", "Latin"]
            }
        );
        assert_eq!(
            error.to_string(),
            "a name cannot mix letters of different scripts (this one mixes Cyrillic and \
             Latin), as look-alike names are made that way"
        );
        assert!(validate("bob\u{3B1}").is_err(), "Latin with Greek");
        // One script, with digits and punctuation, is fine; so is Japanese (Han and kana).
        for name in ["Иван", "Ελένη", "bob_42", "日本語ひらがな", "l33t-h4x"] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn look_alike_names_share_a_key() {
        let alice = key("alice");
        // All Cyrillic: а, palochka ӏ, Ukrainian і, с, е.
        assert_eq!(key("\u{430}\u{4CF}\u{456}\u{441}\u{435}"), alice);
        assert_eq!(key("ALICE"), alice);
        assert_eq!(key("a1ice"), alice);
        assert_eq!(key("b0b"), key("BOB"));
        assert_eq!(key("rn"), key("m"));
        assert_eq!(key("Straße"), key("STRASSE"));
        assert_ne!(key("alice"), key("alicia"));
        assert_ne!(key("bob"), key("rob"));
        // Reserved names are checked by key, so look-alikes of them are reserved too.
        assert_eq!(key("SERVER"), SERVER_NAME);
        assert_eq!(validate("5erver"), Ok(()));
        assert_eq!(validate("gue5t-1"), Ok(()));
    }

    #[test]
    fn same_agrees_with_comparing_folds() {
        let names = [
            "alice",
            "ALICE",
            "Alice",
            "alicia",
            "alic",
            "",
            "a",
            "A",
            "bob_42",
            "BOB_42",
            "bob-42",
            "@[`{", // the bytes just outside A-Z and a-z
            "`[{@",
            "\u{0}\u{7f}",
            "k",
            "K",
            "\u{212A}", // Kelvin sign: folds to ASCII "k"
            "s",
            "S",
            "\u{17F}", // long s: folds to "s"
            "i",
            "I",
            "\u{131}", // dotless i: folds to "i"
            "\u{130}", // capital I with dot: lower-cases to "i" and a combining dot
            "strasse",
            "STRASSE",
            "straße",
            "Straße",
            "zoë",
            "ZOË",
            "zoe",
            "ﬁsh",
            "FISH",
            "fish",
            "Σίσυφος",
            "ΣΊΣΥΦΟΣ",
            "日本語",
        ];
        for a in names {
            for b in names {
                assert_eq!(same(a, b), fold(a) == fold(b), "{a:?} and {b:?}");
            }
        }
        // Every pair of single ASCII characters: the fast path against the full one.
        for x in 0u8..=127 {
            for y in 0u8..=127 {
                let (a, b) = (char::from(x).to_string(), char::from(y).to_string());
                assert_eq!(same(&a, &b), fold(&a) == fold(&b), "{x} and {y}");
            }
        }
        assert!(same("Alice", "aLICE"));
        assert!(same("k", "\u{212A}"), "mixed ASCII and not: the full path");
        assert!(same("Straße", "STRASSE"));
        assert!(!same("alice", "alicia"));
    }

    #[test]
    fn folding_ignores_case() {
        assert_eq!(fold("ALICE"), fold("alice"));
        assert_eq!(fold("ZOË"), "zoë");
    }
}
