//! Getting someone's attention: which messages mention you, and when the bell rings.
//!
//! This module owns two decisions the client makes for every chat message that arrives:
//! whether it *mentions* you (your name appears in it as a word, in any letter case), and
//! whether it rings the terminal bell under the `--bell all|mention|off` setting. It only
//! decides: how a mention is highlighted belongs to [`crate::render`], and printing the bell
//! byte to the binary. Everything here is pure, so the rules are unit tested.

use std::fmt;
use std::ops::Range;

use crate::names;

/// When the terminal bell rings (`--bell`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BellMode {
    /// For every message from someone else (as ICQ did).
    #[default]
    All,
    /// Only for messages from someone else that mention your name.
    Mention,
    /// Never (the same as --no-bell).
    Off,
}

impl BellMode {
    /// Whether a message rings the bell. `own` is true for your own messages coming back
    /// from the server: they never ring, whatever they say.
    pub fn rings(self, own: bool, mentioned: bool) -> bool {
        match self {
            BellMode::All => !own,
            BellMode::Mention => !own && mentioned,
            BellMode::Off => false,
        }
    }
}

impl fmt::Display for BellMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BellMode::All => "all",
            BellMode::Mention => "mention",
            BellMode::Off => "off",
        })
    }
}

/// Whether `text` mentions `name`: see [`mention_ranges`].
pub fn mentions(text: &str, name: &str) -> bool {
    !mention_ranges(text, name).is_empty()
}

/// Where `name` appears in `text` as a mention, as byte ranges of `text`, in order and not
/// overlapping.
///
/// Letter case is ignored the way names are compared ([`names::fold`]): `ALICE` and `Alice`
/// mention `alice`. The name must stand as a word: `alice,` `@alice` and `(alice)` mention
/// her; `malice` and `alice2` do not. The boundary is only required where the name itself
/// begins or ends with a letter, digit or `_`, so a name such as `-=x=-` is found wherever
/// it appears. An empty name mentions nothing.
pub fn mention_ranges(text: &str, name: &str) -> Vec<Range<usize>> {
    let wanted: Vec<char> = names::fold(name).chars().collect();
    let (Some(&first), Some(&last)) = (wanted.first(), wanted.last()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut resume_at = 0;
    for (start, _) in text.char_indices() {
        if start < resume_at {
            continue;
        }
        let Some(end) = folded_match_end(text, start, &wanted) else {
            continue;
        };
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        let open = !is_word_char(first) || !before.is_some_and(is_word_char);
        let closed = !is_word_char(last) || !after.is_some_and(is_word_char);
        if open && closed {
            found.push(start..end);
            resume_at = end;
        }
    }
    found
}

/// If `text` from byte `start` on, lowercased char by char, begins with `wanted` and the
/// match ends on a character boundary of `text`, the byte where it ends.
fn folded_match_end(text: &str, start: usize, wanted: &[char]) -> Option<usize> {
    let mut matched = 0;
    for (offset, ch) in text[start..].char_indices() {
        // One character may lowercase to several (`İ` → `i̇`), so compare the whole
        // expansion, and only accept a match that ends after a whole source character.
        for lower in ch.to_lowercase() {
            if wanted.get(matched) != Some(&lower) {
                return None;
            }
            matched += 1;
        }
        if matched == wanted.len() {
            return Some(start + offset + ch.len_utf8());
        }
    }
    None
}

/// Letters, digits and `_`: the characters that make `alice` in `malice` not a mention.
fn is_word_char(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bell_rings_for_others_only_and_as_configured() {
        // (mode, own, mentioned) -> rings
        let cases = [
            (BellMode::All, false, false, true),
            (BellMode::All, false, true, true),
            (BellMode::All, true, false, false),
            (BellMode::All, true, true, false),
            (BellMode::Mention, false, false, false),
            (BellMode::Mention, false, true, true),
            (BellMode::Mention, true, true, false),
            (BellMode::Off, false, true, false),
            (BellMode::Off, false, false, false),
        ];
        for (mode, own, mentioned, rings) in cases {
            assert_eq!(
                mode.rings(own, mentioned),
                rings,
                "{mode} {own} {mentioned}"
            );
        }
        assert_eq!(BellMode::default(), BellMode::All);
    }

    #[test]
    fn a_name_as_a_word_is_a_mention_in_any_case() {
        for text in [
            "alice",
            "hi alice",
            "Alice: look",
            "ping @ALICE!",
            "(alice)",
            "thanks, aLiCe.",
            "alice's idea",
        ] {
            assert!(mentions(text, "alice"), "{text:?}");
            assert!(mentions(text, "Alice"), "{text:?}");
        }
    }

    #[test]
    fn a_name_inside_another_word_is_not_a_mention() {
        for text in ["malice", "alice2", "alice_b", "bob", "", "alic", "ali ce"] {
            assert!(!mentions(text, "alice"), "{text:?}");
        }
        assert!(!mentions("anything", ""));
    }

    #[test]
    fn ranges_point_at_each_mention_in_the_original_text() {
        let text = "Alice, ALICE and malice: alice";
        let ranges = mention_ranges(text, "alice");
        let shown: Vec<&str> = ranges.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(shown, ["Alice", "ALICE", "alice"]);
    }

    #[test]
    fn names_with_symbols_and_non_ascii_letters_are_found() {
        assert!(mentions("gg -=x=-!", "-=x=-"));
        assert!(mentions("a-=x=-b", "-=x=-"));
        assert!(mentions("salut ÉLODIE", "élodie"));
        assert!(!mentions("élodies", "élodie"));
        assert!(mentions("日本 さくら です", "さくら"));
        // A letter with a multi-character lowercase never matches half of itself.
        assert!(!mentions("İ", "i"));
        assert_eq!(mention_ranges("xİx İ", "i̇"), vec![5..7]);
    }
}
