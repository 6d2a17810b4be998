//! Tab completion: who is around, learned from typed presence news, and what Tab offers for
//! the word being typed, in the client and on the server console.
//!
//! [`NameBook`] keeps the client's list of who is online from the [`Presence`] news both
//! roles give (the list at join and after `/list`, arrivals, departures, renames): data,
//! never the text of a notice, so every way of leaving removes the name. [`complete`] then
//! completes a name (or, at the start of a line, a slash-command) for the word before the
//! cursor; the server console calls it with the names of its sessions and its own
//! commands. This module owns only that bookkeeping and choice; the line editor that calls
//! it lives in [`crate::terminal`], and the news comes from the roles
//! (`ClientEvent::presence`, `PeerEvent::presence`).

use std::collections::BTreeMap;

use crate::command::{self, Side};
use crate::names::{self, NameError};
use crate::proto::presence::Presence;

/// The names the client knows to be online. See the module documentation.
#[derive(Debug, Default, Clone)]
pub struct NameBook {
    /// Our own name, folded: never offered (completing yourself is never what you want).
    me: String,
    /// Folded name → the name as last seen.
    names: BTreeMap<String, String>,
}

impl NameBook {
    /// An empty book.
    pub fn new() -> NameBook {
        NameBook::default()
    }

    /// Learns from one piece of presence news.
    pub fn observe(&mut self, news: &Presence) {
        match news {
            Presence::Me { name } => self.me = names::fold(name),
            Presence::Online { names, first } => {
                // The whole list replaces what was known.
                if *first {
                    self.names.clear();
                }
                for name in names {
                    self.insert(name);
                }
            }
            Presence::Arrived { name } => self.insert(name),
            Presence::Gone { name } => {
                self.names.remove(&names::fold(name));
            }
            Presence::Renamed { from, to } => {
                self.names.remove(&names::fold(from));
                self.insert(to);
            }
        }
    }

    /// Adds a name, unless it could not be a client's name (it will be typed into the line
    /// and drawn by the editor, so nothing that could not be a name gets in) or is the
    /// server's own.
    fn insert(&mut self, name: &str) {
        let plausible = matches!(names::validate(name), Ok(()) | Err(NameError::Reserved));
        let key = names::fold(name);
        if plausible && key != names::SERVER_NAME {
            self.names.insert(key, name.to_owned());
        }
    }

    /// The names known now, sorted case-insensitively, without our own.
    pub fn names(&self) -> Vec<&str> {
        self.names
            .iter()
            .filter(|(key, _)| **key != self.me)
            .map(|(_, name)| name.as_str())
            .collect()
    }

    /// Completions for the word that ends at byte `pos` of `line`, among the client's
    /// commands and the names known now: see [`complete`].
    pub fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        complete(line, pos, Side::Client, self.names())
    }
}

/// Completions for the word that ends at byte `pos` of `line`: the byte where that word
/// starts, and what it could be replaced with. Shared by the client (names from a
/// [`NameBook`]) and the server console (names from the server's own sessions).
///
/// - At the start of the line, a word beginning with `/` completes to a command of `side`.
/// - Otherwise the word completes to the `names` starting with it (in any letter case),
///   followed by `: ` at the start of the line (addressing someone) and a space
///   elsewhere. A leading `@` is kept. Candidates come sorted case-insensitively.
pub fn complete<'a>(
    line: &str,
    pos: usize,
    side: Side,
    names: impl IntoIterator<Item = &'a str>,
) -> (usize, Vec<String>) {
    let Some(before) = line.get(..pos) else {
        return (pos, Vec::new());
    };
    let start = before
        .char_indices()
        .rev()
        .find(|(_, ch)| ch.is_whitespace())
        .map_or(0, |(i, ch)| i + ch.len_utf8());
    let word = &before[start..];
    if start == 0 && word.starts_with('/') {
        let typed = word.to_lowercase();
        let commands = command::help_lines(side)
            .iter()
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .filter(|name| name.starts_with(&typed))
            .map(|name| format!("{name} "))
            .collect();
        return (start, commands);
    }
    let (at, prefix) = match word.strip_prefix('@') {
        Some(rest) => ("@", rest),
        None => ("", word),
    };
    let prefix = names::fold(prefix);
    let suffix = if start == 0 && at.is_empty() {
        ": "
    } else {
        " "
    };
    let mut matching: Vec<&str> = names
        .into_iter()
        .filter(|name| names::fold(name).starts_with(&prefix))
        .collect();
    matching.sort_by_cached_key(|name| names::fold(name));
    let candidates = matching
        .into_iter()
        .map(|name| format!("{at}{name}{suffix}"))
        .collect();
    (start, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(names: &[&str], first: bool) -> Presence {
        Presence::Online {
            names: names.iter().map(|name| name.to_string()).collect(),
            first,
        }
    }

    fn book() -> NameBook {
        let mut book = NameBook::new();
        book.observe(&Presence::Me {
            name: "alice".into(),
        });
        book.observe(&online(&["alice", "Bob", "bea"], true));
        book
    }

    #[test]
    fn names_come_from_lists_arrivals_departures_and_renames() {
        let mut book = book();
        assert_eq!(book.names(), ["bea", "Bob"]);
        for name in ["carol", "dave"] {
            book.observe(&Presence::Arrived { name: name.into() });
        }
        assert_eq!(book.names(), ["bea", "Bob", "carol", "dave"]);
        for name in ["bob", "carol"] {
            book.observe(&Presence::Gone { name: name.into() });
        }
        book.observe(&Presence::Renamed {
            from: "DAVE".into(),
            to: "david".into(),
        });
        assert_eq!(book.names(), ["bea", "david"]);
        // A later list is the truth, over several parts.
        book.observe(&online(&["alice", "erin"], true));
        book.observe(&online(&["frank"], false));
        assert_eq!(book.names(), ["erin", "frank"]);
        // Renamed ourselves: the old name is someone else's to have.
        book.observe(&Presence::Me {
            name: "alicia".into(),
        });
        book.observe(&Presence::Arrived {
            name: "alice".into(),
        });
        assert_eq!(book.names(), ["alice", "erin", "frank"]);
    }

    #[test]
    fn impossible_names_are_ignored() {
        let mut book = book();
        for name in ["x\u{1b}[2J", "server", "a b"] {
            book.observe(&Presence::Arrived { name: name.into() });
        }
        assert_eq!(book.names(), ["bea", "Bob"]);
        book.observe(&Presence::Arrived {
            name: "guest-127.0.0.1:5000".into(),
        });
        assert_eq!(book.names(), ["bea", "Bob", "guest-127.0.0.1:5000"]);
    }

    #[test]
    fn a_word_completes_to_matching_names_in_any_case() {
        let book = book();
        assert_eq!(
            book.complete("b", 1),
            (0, vec!["bea: ".into(), "Bob: ".into()])
        );
        assert_eq!(book.complete("BO", 2), (0, vec!["Bob: ".into()]));
        assert_eq!(book.complete("hi bo", 5), (3, vec!["Bob ".into()]));
        assert_eq!(book.complete("hi @be", 6), (3, vec!["@bea ".into()]));
        assert_eq!(book.complete("@b", 2).1, ["@bea ", "@Bob "]);
        // Only the word before the cursor counts.
        assert_eq!(book.complete("bo and more", 2), (0, vec!["Bob: ".into()]));
        // Our own name is never offered; nothing known, nothing offered.
        assert_eq!(book.complete("al", 2), (0, vec![]));
        assert_eq!(book.complete("zz", 2), (0, vec![]));
    }

    #[test]
    fn a_slash_at_the_start_completes_commands() {
        let book = book();
        assert_eq!(book.complete("/l", 2), (0, vec!["/list ".into()]));
        assert_eq!(book.complete("/E", 2), (0, vec!["/exit ".into()]));
        let all = book.complete("/", 1).1;
        assert!(all.contains(&"/help ".to_string()), "{all:?}");
        assert!(!all.iter().any(|c| c.starts_with("/kick")), "{all:?}");
        // Later in the line a slash word is just a word.
        assert_eq!(book.complete("see /l", 6), (4, vec![]));
    }

    #[test]
    fn the_server_console_completes_its_own_commands_and_the_names_given() {
        let online = ["zoe", "Bob", "bea"];
        assert_eq!(
            complete("/k", 2, Side::Server, online),
            (0, vec!["/kick ".into()])
        );
        assert!(complete("/ex", 3, Side::Server, online).1 == ["/exit "]);
        assert_eq!(
            complete("/me", 3, Side::Server, online).1,
            Vec::<String>::new()
        );
        assert_eq!(
            complete("/kick b", 7, Side::Server, online),
            (6, vec!["bea ".into(), "Bob ".into()])
        );
        assert_eq!(complete("z", 1, Side::Server, online).1, ["zoe: "]);
    }

    #[test]
    fn a_cursor_inside_a_character_offers_nothing() {
        let book = book();
        assert_eq!(book.complete("é", 1), (1, vec![]));
    }
}
