//! Slash commands: turning one line typed by a person into a typed value.
//!
//! Both programs read lines from a keyboard: the client reads chat lines, the server console
//! reads lines to broadcast. A line that starts with `/` is a command instead of text. This
//! module owns the list of commands (one static table that both the parser and `/help` read,
//! so they can never disagree), the rules for splitting a line into a command word and its
//! arguments, and the error messages shown when a line cannot be understood. It does not own
//! carrying commands out: it does no I/O and knows nothing about sockets, clients, ban lists
//! or the wire protocol — the binaries decide what `Command::Kick` actually does.

use std::fmt;

/// Which program is reading the line: some commands exist only on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A chat client: its lines go to the server as chat messages.
    Client,
    /// The server console: its lines are broadcast as from `server`.
    Server,
}

/// What one typed line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Nothing to do (empty or whitespace-only line).
    Empty,
    /// A chat line to send/broadcast, exactly as typed minus the trailing newline
    /// (`\n` or `\r\n`). A line starting with `//` is text starting with a single `/`
    /// (the usual IRC escape), e.g. "//shrug" -> Text("/shrug").
    Text(String),
    /// A slash-command.
    Command(Command),
}

/// A command the person asked for, with its arguments already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/help` — both sides.
    Help,
    /// `/exit` (alias `/quit`) — both sides. Client: leave the chat. Server: close the server.
    Exit,
    /// `/list` (alias `/who`) — both sides. Who is online.
    List,
    /// `/ban ADDR|NAME` — server only. `target` is the single argument as typed (an IP
    /// address, a CIDR range, or a client's name); the server decides which it is.
    Ban {
        /// The argument exactly as typed.
        target: String,
    },
    /// `/unban ADDR` — server only. The single argument as typed (address or CIDR range).
    Unban {
        /// The argument exactly as typed.
        target: String,
    },
    /// `/kick NAME` — server only.
    Kick {
        /// The client's name exactly as typed (names may be case-sensitive).
        name: String,
    },
    /// `/msg NAME text` — both sides. A private message to one person.
    Msg {
        /// The recipient's name as typed.
        to: String,
        /// The message, as typed after the name.
        text: String,
    },
    /// `/me text` — client only. An action: `* alice waves`.
    Me {
        /// What you do, as typed.
        text: String,
    },
    /// `/nick NAME` — client only. Change your name.
    Nick {
        /// The new name as typed.
        name: String,
    },
    /// `/away [reason]` — client only. Say you are away (shown in `/list`).
    Away {
        /// Why, if given.
        reason: Option<String>,
    },
    /// `/back` — client only. You are back.
    Back,
    /// `/history [N]` — client only (a server's client and a peer alike). Show the N public
    /// lines said before the oldest one shown from the history so far (the newest N, the
    /// first time).
    History(HistoryCount),
}

/// How many lines `/history` asks for when no number is typed.
pub const HISTORY_DEFAULT: u16 = 50;

/// The most lines one `/history` asks for: what one answer carries at most (the server's
/// and a peer's page limit).
pub const HISTORY_MAX: u16 = crate::proto::paging::MAX_HISTORY_PAGE as u16;
const _: () = assert!(crate::proto::paging::MAX_HISTORY_PAGE <= u16::MAX as usize);

/// The count of a `/history`: what to ask for, already within 1 to [`HISTORY_MAX`], and
/// whether the number typed was outside that (the user is told, see
/// [`HistoryCount::note`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCount {
    /// How many lines to ask for: 1 to [`HISTORY_MAX`].
    pub count: u16,
    /// The number typed was below 1 or above [`HISTORY_MAX`], and was brought within.
    pub clamped: bool,
}

impl HistoryCount {
    /// What to tell the user before asking, when the number typed was changed.
    pub fn note(&self) -> Option<String> {
        self.clamped.then(|| {
            format!(
                "/history shows 1 to {HISTORY_MAX} lines at a time; asking for {}",
                self.count
            )
        })
    }

    /// The count for the argument of `/history` as typed (trimmed; empty for none).
    fn from_argument(argument: &str) -> Option<HistoryCount> {
        if argument.is_empty() {
            return Some(HistoryCount {
                count: HISTORY_DEFAULT,
                clamped: false,
            });
        }
        let (negative, digits) = match argument.as_bytes()[0] {
            b'-' => (true, &argument[1..]),
            b'+' => (false, &argument[1..]),
            _ => (false, argument),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Any number of digits is a number: one too big for any integer type is too big.
        let value = digits.parse::<u64>().unwrap_or(u64::MAX);
        let count = if negative {
            1
        } else {
            value.clamp(1, u64::from(HISTORY_MAX)) as u16
        };
        Some(HistoryCount {
            count,
            clamped: negative || u64::from(count) != value,
        })
    }
}

/// Why a line could not be understood. Display = one line for the user, always naming the
/// command and, where useful, its usage (e.g. "usage: /kick NAME") and pointing at /help
/// for unknown commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// `/frobnicate` — no such command (holds the word as typed, with the slash).
    Unknown {
        /// The command word as typed, slash included, case kept.
        command: String,
    },
    /// The command exists, but only on the other side (e.g. `/kick` typed in a client).
    WrongSide {
        /// The command's main name, e.g. `/kick` (also when an alias was typed).
        command: &'static str,
        /// The side the line was typed on — the side where the command is *not* available.
        side: Side,
    },
    /// A required argument is missing: `/kick` alone.
    MissingArgument {
        /// The command's main name, e.g. `/kick`.
        command: &'static str,
        /// How to type it, e.g. `/kick NAME`.
        usage: &'static str,
    },
    /// Too many arguments: `/exit now`, `/kick a b`.
    UnexpectedArgument {
        /// The command's main name, e.g. `/exit`.
        command: &'static str,
        /// How to type it, e.g. `/exit`.
        usage: &'static str,
    },
    /// A number was expected: `/history lots`.
    NotANumber {
        /// The command's main name, e.g. `/history`.
        command: &'static str,
        /// How to type it, e.g. `/history [N]`.
        usage: &'static str,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Unknown { command } => {
                write!(
                    f,
                    "unknown command {command}; type /help to list the commands"
                )
            }
            CommandError::WrongSide { command, side } => write!(
                f,
                "{command} can only be used {}, not {}",
                where_typed(other_side(*side)),
                where_typed(*side)
            ),
            CommandError::MissingArgument { command, usage } => {
                write!(f, "{command} needs an argument; usage: {usage}")
            }
            CommandError::UnexpectedArgument { command, usage } => {
                write!(f, "too many arguments for {command}; usage: {usage}")
            }
            CommandError::NotANumber { command, usage } => {
                write!(f, "{command} takes a number of lines; usage: {usage}")
            }
        }
    }
}

impl std::error::Error for CommandError {}

/// One line per command available on `side`: usage and a short description, aligned, for
/// `/help`. Generated from the same table the parser uses, so the two never disagree.
pub fn help_lines(side: Side) -> Vec<String> {
    help_lines_from(COMMANDS, side)
}

/// Parse one typed line.
pub fn parse(line: &str, side: Side) -> Result<Input, CommandError> {
    parse_with(COMMANDS, line, side)
}

/// What a command expects after its name. Each shape carries the function that builds the
/// `Command` from the arguments it extracted, so a table entry cannot pair a shape with a
/// builder that expects different arguments, and no "impossible" case needs a panic.
///
enum Shape {
    /// Nothing may follow the name; the command is always this value.
    NoArgument(Command),
    /// Exactly one whitespace-free word must follow the name.
    OneWord(fn(String) -> Command),
    /// One word, then free text that may not be empty (`/msg NAME text`).
    WordThenText(fn(String, String) -> Command),
    /// Free text that may not be empty (`/me waves`).
    Text(fn(String) -> Command),
    /// Free text, or nothing (`/away` or `/away lunch`).
    OptionalText(fn(Option<String>) -> Command),
    /// A count of history lines, or nothing for the default (`/history`, `/history 200`).
    OptionalCount(fn(HistoryCount) -> Command),
}

/// One row of the command table: everything the parser and `/help` know about a command.
struct CommandSpec {
    /// The main spelling, lowercase, slash included: what errors and `/help` show.
    name: &'static str,
    /// Other accepted spellings, lowercase, slash included.
    aliases: &'static [&'static str],
    /// How to type it, with argument placeholders in capitals, e.g. `/kick NAME`.
    usage: &'static str,
    /// The sides the command exists on, each with the `/help` summary for that side. One list
    /// for both facts because `/exit` means something different on each side.
    summaries: &'static [(Side, &'static str)],
    /// What may follow the name.
    shape: Shape,
}

/// Every command, in the order `/help` lists them.
static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "/help",
        aliases: &[],
        usage: "/help",
        summaries: &[
            (Side::Client, "list the commands you can use"),
            (Side::Server, "list the commands you can use"),
        ],
        shape: Shape::NoArgument(Command::Help),
    },
    CommandSpec {
        name: "/list",
        aliases: &["/who"],
        usage: "/list",
        summaries: &[
            (Side::Client, "show who is online"),
            (Side::Server, "show who is online"),
        ],
        shape: Shape::NoArgument(Command::List),
    },
    CommandSpec {
        name: "/exit",
        aliases: &["/quit"],
        usage: "/exit",
        summaries: &[
            (Side::Client, "leave the chat"),
            (Side::Server, "close the server"),
        ],
        shape: Shape::NoArgument(Command::Exit),
    },
    CommandSpec {
        name: "/msg",
        aliases: &["/m", "/tell"],
        usage: "/msg NAME text",
        summaries: &[
            (Side::Client, "send a private message that only NAME sees"),
            (Side::Server, "send a private message to one client"),
        ],
        shape: Shape::WordThenText(|to, text| Command::Msg { to, text }),
    },
    CommandSpec {
        name: "/me",
        aliases: &[],
        usage: "/me text",
        summaries: &[(Side::Client, "say what you do: /me waves shows * you waves")],
        shape: Shape::Text(|text| Command::Me { text }),
    },
    CommandSpec {
        name: "/nick",
        aliases: &[],
        usage: "/nick NAME",
        summaries: &[(Side::Client, "change your name (everyone is told)")],
        shape: Shape::OneWord(|name| Command::Nick { name }),
    },
    CommandSpec {
        name: "/away",
        aliases: &[],
        usage: "/away [reason]",
        summaries: &[(Side::Client, "say you are away, and why (shown in /list)")],
        shape: Shape::OptionalText(|reason| Command::Away { reason }),
    },
    CommandSpec {
        name: "/back",
        aliases: &[],
        usage: "/back",
        summaries: &[(Side::Client, "say you are back")],
        shape: Shape::NoArgument(Command::Back),
    },
    CommandSpec {
        name: "/history",
        aliases: &[],
        usage: "/history [N]",
        summaries: &[(
            Side::Client,
            "show N earlier lines of the room (50; at most 1000)",
        )],
        shape: Shape::OptionalCount(Command::History),
    },
    CommandSpec {
        name: "/kick",
        aliases: &[],
        usage: "/kick NAME",
        summaries: &[(Side::Server, "disconnect a client (it may join again)")],
        shape: Shape::OneWord(|name| Command::Kick { name }),
    },
    CommandSpec {
        name: "/ban",
        aliases: &[],
        usage: "/ban ADDR|NAME",
        summaries: &[(
            Side::Server,
            "refuse an address or CIDR range, or a client's address by name",
        )],
        shape: Shape::OneWord(|target| Command::Ban { target }),
    },
    CommandSpec {
        name: "/unban",
        aliases: &[],
        usage: "/unban ADDR",
        summaries: &[(Side::Server, "lift the ban on an address or CIDR range")],
        shape: Shape::OneWord(|target| Command::Unban { target }),
    },
];

/// Spaces between the usage column and the description column in `/help`.
const HELP_COLUMN_GAP: usize = 4;

impl CommandSpec {
    /// Whether `word` (as typed, slash included) names this command. Only ASCII letters are
    /// folded: every name is ASCII, and full Unicode folding would let look-alikes such as
    /// the Kelvin sign `K` stand for `k`.
    fn answers_to(&self, word: &str) -> bool {
        self.name.eq_ignore_ascii_case(word)
            || self
                .aliases
                .iter()
                .any(|alias| alias.eq_ignore_ascii_case(word))
    }

    /// The `/help` summary for `side`, or `None` if the command does not exist there.
    fn summary_on(&self, side: Side) -> Option<&'static str> {
        self.summaries
            .iter()
            .find(|(available_on, _)| *available_on == side)
            .map(|(_, summary)| *summary)
    }

    /// Check `arguments` (everything after the command word) against the shape and build
    /// the command.
    fn build(&self, arguments: &str) -> Result<Command, CommandError> {
        let too_many = CommandError::UnexpectedArgument {
            command: self.name,
            usage: self.usage,
        };
        let missing = CommandError::MissingArgument {
            command: self.name,
            usage: self.usage,
        };
        match &self.shape {
            Shape::NoArgument(command) => {
                if arguments.trim().is_empty() {
                    Ok(command.clone())
                } else {
                    Err(too_many)
                }
            }
            Shape::OneWord(build) => {
                let (word, rest) = split_first_word(arguments);
                if word.is_empty() {
                    Err(missing)
                } else if !rest.trim().is_empty() {
                    Err(too_many)
                } else {
                    Ok(build(word.to_string()))
                }
            }
            Shape::WordThenText(build) => {
                let (word, rest) = split_first_word(arguments);
                let text = rest.trim();
                if word.is_empty() || text.is_empty() {
                    Err(missing)
                } else {
                    Ok(build(word.to_string(), text.to_string()))
                }
            }
            Shape::Text(build) => match arguments.trim() {
                "" => Err(missing),
                text => Ok(build(text.to_string())),
            },
            Shape::OptionalText(build) => match arguments.trim() {
                "" => Ok(build(None)),
                text => Ok(build(Some(text.to_string()))),
            },
            Shape::OptionalCount(build) => {
                let (word, rest) = split_first_word(arguments);
                if !rest.trim().is_empty() {
                    return Err(too_many);
                }
                HistoryCount::from_argument(word)
                    .map(build)
                    .ok_or(CommandError::NotANumber {
                        command: self.name,
                        usage: self.usage,
                    })
            }
        }
    }
}

/// The parser proper, reading the given table so tests can supply commands the real table
/// does not have yet.
fn parse_with(table: &[CommandSpec], line: &str, side: Side) -> Result<Input, CommandError> {
    let line = strip_line_ending(line);
    let (leading_space, from_first_visible) = split_leading_whitespace(line);

    if from_first_visible.trim_end().is_empty() {
        return Ok(Input::Empty);
    }
    if !from_first_visible.starts_with('/') {
        return Ok(Input::Text(line.to_string()));
    }
    // `//text` is the escape for text that starts with a slash: drop one slash, keep the
    // rest of the line (leading spaces included) as it was typed.
    if let Some(after_escape) = from_first_visible.strip_prefix("//") {
        return Ok(Input::Text(format!("{leading_space}/{after_escape}")));
    }

    let (word, arguments) = split_first_word(from_first_visible);
    let Some(spec) = table.iter().find(|spec| spec.answers_to(word)) else {
        return Err(CommandError::Unknown {
            command: word.to_string(),
        });
    };
    if spec.summary_on(side).is_none() {
        return Err(CommandError::WrongSide {
            command: spec.name,
            side,
        });
    }
    spec.build(arguments).map(Input::Command)
}

/// `/help` for the given table: usages padded to one width so the descriptions line up.
fn help_lines_from(table: &[CommandSpec], side: Side) -> Vec<String> {
    let available: Vec<(&CommandSpec, &str)> = table
        .iter()
        .filter_map(|spec| spec.summary_on(side).map(|summary| (spec, summary)))
        .collect();
    let usage_width = available
        .iter()
        .map(|(spec, _)| spec.usage.chars().count())
        .max()
        .unwrap_or(0)
        + HELP_COLUMN_GAP;

    available
        .iter()
        .map(|(spec, summary)| {
            let also = if spec.aliases.is_empty() {
                String::new()
            } else {
                format!(" (also {})", spec.aliases.join(", "))
            };
            format!("{:<usage_width$}{summary}{also}", spec.usage)
        })
        .collect()
}

/// Remove one line terminator, `\n` or `\r\n`, as `read_line` leaves it. Only one: the
/// caller handed us one line, and anything before its terminator is content.
fn strip_line_ending(line: &str) -> &str {
    match line.strip_suffix('\n') {
        Some(without_newline) => without_newline
            .strip_suffix('\r')
            .unwrap_or(without_newline),
        None => line,
    }
}

/// Split `text` into its leading whitespace and everything from the first other character.
fn split_leading_whitespace(text: &str) -> (&str, &str) {
    // `find` returns the byte index of a character, so splitting there is always valid.
    let first_visible = text
        .find(|c: char| !c.is_whitespace())
        .unwrap_or(text.len());
    text.split_at(first_visible)
}

/// Skip leading whitespace and split off the first word. Returns the word (empty if there
/// is none) and the rest of the text unchanged, starting at the whitespace that ended the
/// word — so a shape that takes "the rest of the line" sees the text as typed.
fn split_first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
    text.split_at(word_end)
}

/// The side a command is available on when it is not available on `side`.
fn other_side(side: Side) -> Side {
    match side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    }
}

/// Where a person types on `side`, worded to follow "used" in an error message.
fn where_typed(side: Side) -> &'static str {
    match side {
        Side::Client => "in the client",
        Side::Server => "on the server console",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str, side: Side) -> Command {
        match parse(line, side) {
            Ok(Input::Command(command)) => command,
            other => panic!("{line:?} on {side:?}: expected a command, got {other:?}"),
        }
    }

    fn error(line: &str, side: Side) -> CommandError {
        match parse(line, side) {
            Err(error) => error,
            other => panic!("{line:?} on {side:?}: expected an error, got {other:?}"),
        }
    }

    fn text(value: &str) -> Result<Input, CommandError> {
        Ok(Input::Text(value.to_string()))
    }

    #[test]
    fn shared_commands_work_on_both_sides() {
        for side in [Side::Client, Side::Server] {
            assert_eq!(command("/help", side), Command::Help);
            assert_eq!(command("/exit", side), Command::Exit);
            assert_eq!(command("/list", side), Command::List);
        }
    }

    #[test]
    fn aliases_mean_the_same_command() {
        for side in [Side::Client, Side::Server] {
            assert_eq!(command("/quit", side), Command::Exit);
            assert_eq!(command("/who", side), Command::List);
        }
    }

    #[test]
    fn server_commands_take_their_argument_as_typed() {
        assert_eq!(
            command("/kick Alice", Side::Server),
            Command::Kick {
                name: "Alice".to_string()
            }
        );
        assert_eq!(
            command("/ban 10.0.0.0/8", Side::Server),
            Command::Ban {
                target: "10.0.0.0/8".to_string()
            }
        );
        assert_eq!(
            command("/ban Mallory", Side::Server),
            Command::Ban {
                target: "Mallory".to_string()
            }
        );
        assert_eq!(
            command("/unban 2001:db8::1", Side::Server),
            Command::Unban {
                target: "2001:db8::1".to_string()
            }
        );
    }

    #[test]
    fn command_words_ignore_case_but_arguments_keep_it() {
        assert_eq!(command("/EXIT", Side::Client), Command::Exit);
        assert_eq!(command("/QuIt", Side::Server), Command::Exit);
        assert_eq!(command("/Who", Side::Client), Command::List);
        assert_eq!(
            command("/KICK BoB", Side::Server),
            Command::Kick {
                name: "BoB".to_string()
            }
        );
    }

    #[test]
    fn whitespace_around_a_command_is_ignored() {
        assert_eq!(command("   /exit   ", Side::Client), Command::Exit);
        assert_eq!(command("\t/list\r\n", Side::Server), Command::List);
        assert_eq!(
            command("/kick \t  Alice  \n", Side::Server),
            Command::Kick {
                name: "Alice".to_string()
            }
        );
        // Arguments are split on Unicode whitespace, not only ASCII spaces: here a
        // no-break space and an ideographic space.
        assert_eq!(
            command("/ban\u{a0}10.0.0.5\u{3000}", Side::Server),
            Command::Ban {
                target: "10.0.0.5".to_string()
            }
        );
    }

    #[test]
    fn empty_and_whitespace_only_lines_are_empty() {
        for line in ["", "\n", "\r\n", "   ", " \t \r\n", "\u{3000}\n"] {
            assert_eq!(parse(line, Side::Client), Ok(Input::Empty), "{line:?}");
            assert_eq!(parse(line, Side::Server), Ok(Input::Empty), "{line:?}");
        }
    }

    #[test]
    fn text_keeps_its_spaces_and_loses_only_the_newline() {
        assert_eq!(parse("hello\n", Side::Client), text("hello"));
        assert_eq!(parse("hello\r\n", Side::Client), text("hello"));
        assert_eq!(parse("hello", Side::Server), text("hello"));
        assert_eq!(
            parse("  indented  and  spaced  \r\n", Side::Client),
            text("  indented  and  spaced  ")
        );
        // Only one terminator goes: the caller gave us a single line.
        assert_eq!(parse("two\n\n", Side::Client), text("two\n"));
        // A slash later in the line does not make a command.
        assert_eq!(parse("and/or\n", Side::Client), text("and/or"));
    }

    #[test]
    fn double_slash_escapes_text_that_starts_with_a_slash() {
        assert_eq!(parse("//shrug", Side::Client), text("/shrug"));
        assert_eq!(parse("//shrug\r\n", Side::Server), text("/shrug"));
        assert_eq!(parse("//", Side::Client), text("/"));
        assert_eq!(parse("///", Side::Client), text("//"));
        assert_eq!(parse("// spaced out ", Side::Client), text("/ spaced out "));
        assert_eq!(parse("  //kick me", Side::Client), text("  /kick me"));
    }

    #[test]
    fn unknown_commands_keep_the_word_as_typed() {
        assert_eq!(
            error("/frobnicate now", Side::Client),
            CommandError::Unknown {
                command: "/frobnicate".to_string()
            }
        );
        assert_eq!(
            error("/FROB", Side::Server),
            CommandError::Unknown {
                command: "/FROB".to_string()
            }
        );
        assert_eq!(
            error("/frobnicate", Side::Client).to_string(),
            "unknown command /frobnicate; type /help to list the commands"
        );
    }

    #[test]
    fn a_lone_slash_is_unknown() {
        for line in ["/", "/ ", "/\n", "  / kick", "/\r\n"] {
            assert_eq!(
                parse(line, Side::Client),
                Err(CommandError::Unknown {
                    command: "/".to_string()
                }),
                "{line:?}"
            );
        }
        assert_eq!(
            error("/", Side::Server).to_string(),
            "unknown command /; type /help to list the commands"
        );
    }

    #[test]
    fn server_commands_are_refused_in_the_client() {
        for (line, name) in [
            ("/kick Alice", "/kick"),
            ("/ban 10.0.0.5", "/ban"),
            ("/unban 10.0.0.5", "/unban"),
            // Side is checked before arguments: a client learns it cannot kick at all,
            // not how to type a kick.
            ("/kick", "/kick"),
        ] {
            assert_eq!(
                error(line, Side::Client),
                CommandError::WrongSide {
                    command: name,
                    side: Side::Client
                },
                "{line:?}"
            );
        }
        assert_eq!(
            error("/KICK Alice", Side::Client).to_string(),
            "/kick can only be used on the server console, not in the client"
        );
    }

    #[test]
    fn wrong_side_message_reads_right_for_the_server_too() {
        let error = CommandError::WrongSide {
            command: "/nick",
            side: Side::Server,
        };
        assert_eq!(
            error.to_string(),
            "/nick can only be used in the client, not on the server console"
        );
    }

    #[test]
    fn missing_argument_names_the_usage() {
        assert_eq!(
            error("/kick", Side::Server),
            CommandError::MissingArgument {
                command: "/kick",
                usage: "/kick NAME"
            }
        );
        assert_eq!(
            error("/ban   \r\n", Side::Server),
            CommandError::MissingArgument {
                command: "/ban",
                usage: "/ban ADDR|NAME"
            }
        );
        assert_eq!(
            error("/unban", Side::Server),
            CommandError::MissingArgument {
                command: "/unban",
                usage: "/unban ADDR"
            }
        );
        assert_eq!(
            error("/kick", Side::Server).to_string(),
            "/kick needs an argument; usage: /kick NAME"
        );
    }

    #[test]
    fn unexpected_argument_names_the_usage() {
        assert_eq!(
            error("/exit now", Side::Client),
            CommandError::UnexpectedArgument {
                command: "/exit",
                usage: "/exit"
            }
        );
        // An alias is reported under the command's main name.
        assert_eq!(
            error("/quit now", Side::Server),
            CommandError::UnexpectedArgument {
                command: "/exit",
                usage: "/exit"
            }
        );
        assert_eq!(
            error("/help me", Side::Client),
            CommandError::UnexpectedArgument {
                command: "/help",
                usage: "/help"
            }
        );
        assert_eq!(
            error("/who is there", Side::Client),
            CommandError::UnexpectedArgument {
                command: "/list",
                usage: "/list"
            }
        );
        assert_eq!(
            error("/kick a b", Side::Server),
            CommandError::UnexpectedArgument {
                command: "/kick",
                usage: "/kick NAME"
            }
        );
        assert_eq!(
            error("/exit now", Side::Client).to_string(),
            "too many arguments for /exit; usage: /exit"
        );
        assert_eq!(
            error("/kick a b", Side::Server).to_string(),
            "too many arguments for /kick; usage: /kick NAME"
        );
    }

    #[test]
    fn server_help_lists_every_command_aligned() {
        assert_eq!(
            help_lines(Side::Server),
            vec![
                "/help             list the commands you can use",
                "/list             show who is online (also /who)",
                "/exit             close the server (also /quit)",
                "/msg NAME text    send a private message to one client (also /m, /tell)",
                "/kick NAME        disconnect a client (it may join again)",
                "/ban ADDR|NAME    refuse an address or CIDR range, or a client's address by name",
                "/unban ADDR       lift the ban on an address or CIDR range",
            ]
        );
    }

    #[test]
    fn client_help_lists_only_client_commands() {
        assert_eq!(
            help_lines(Side::Client),
            vec![
                "/help             list the commands you can use",
                "/list             show who is online (also /who)",
                "/exit             leave the chat (also /quit)",
                "/msg NAME text    send a private message that only NAME sees (also /m, /tell)",
                "/me text          say what you do: /me waves shows * you waves",
                "/nick NAME        change your name (everyone is told)",
                "/away [reason]    say you are away, and why (shown in /list)",
                "/back             say you are back",
                "/history [N]      show N earlier lines of the room (50; at most 1000)",
            ]
        );
        let client_help = help_lines(Side::Client).join("\n");
        assert!(!client_help.contains("/ban"));
        assert!(!client_help.contains("/kick"));
    }

    #[test]
    fn msg_takes_a_name_and_the_rest_of_the_line() {
        for side in [Side::Client, Side::Server] {
            assert_eq!(
                parse("/msg bob  see you at 5, ok?  ", side),
                Ok(Input::Command(Command::Msg {
                    to: "bob".into(),
                    text: "see you at 5, ok?".into()
                }))
            );
            assert_eq!(
                parse("/TELL bob hi", side),
                Ok(Input::Command(Command::Msg {
                    to: "bob".into(),
                    text: "hi".into()
                }))
            );
            for incomplete in ["/msg", "/msg bob", "/msg bob   ", "/m"] {
                assert!(
                    matches!(
                        parse(incomplete, side),
                        Err(CommandError::MissingArgument {
                            usage: "/msg NAME text",
                            ..
                        })
                    ),
                    "{incomplete}"
                );
            }
        }
    }

    #[test]
    fn me_nick_away_and_back() {
        let client = |line| parse(line, Side::Client);
        assert_eq!(
            client("/me waves at everyone"),
            Ok(Input::Command(Command::Me {
                text: "waves at everyone".into()
            }))
        );
        assert!(matches!(
            client("/me   "),
            Err(CommandError::MissingArgument { .. })
        ));
        assert_eq!(
            client("/nick alicia"),
            Ok(Input::Command(Command::Nick {
                name: "alicia".into()
            }))
        );
        assert!(matches!(
            client("/nick a b"),
            Err(CommandError::UnexpectedArgument { .. })
        ));
        assert!(matches!(
            client("/nick"),
            Err(CommandError::MissingArgument { .. })
        ));
        assert_eq!(
            client("/away"),
            Ok(Input::Command(Command::Away { reason: None }))
        );
        assert_eq!(
            client("/away  out for lunch "),
            Ok(Input::Command(Command::Away {
                reason: Some("out for lunch".into())
            }))
        );
        assert_eq!(client("/back"), Ok(Input::Command(Command::Back)));
        assert!(matches!(
            client("/back now"),
            Err(CommandError::UnexpectedArgument { .. })
        ));
        for only_client in ["/me hi", "/nick x", "/away", "/back"] {
            assert!(
                matches!(
                    parse(only_client, Side::Server),
                    Err(CommandError::WrongSide { .. })
                ),
                "{only_client}"
            );
        }
    }

    #[test]
    fn history_takes_an_optional_count_clamped_to_1_to_1000() {
        let history = |line| match parse(line, Side::Client) {
            Ok(Input::Command(Command::History(count))) => (count.count, count.clamped),
            other => panic!("{line:?}: {other:?}"),
        };
        assert_eq!(history("/history"), (HISTORY_DEFAULT, false));
        assert_eq!(history("/HISTORY  "), (50, false));
        assert_eq!(history("/history 1"), (1, false));
        assert_eq!(history("/history 200"), (200, false));
        assert_eq!(history("/history +7"), (7, false));
        assert_eq!(history("/history 1000"), (HISTORY_MAX, false));
        assert_eq!(history("/history 0200"), (200, false));
        assert_eq!(history("/history 1001"), (1000, true));
        let huge = format!("/history {}", "9".repeat(40));
        assert_eq!(history(&huge), (1000, true));
        assert_eq!(history("/history 0"), (1, true));
        assert_eq!(history("/history -5"), (1, true));
        let told = |line| match parse(line, Side::Client) {
            Ok(Input::Command(Command::History(count))) => count.note(),
            other => panic!("{line:?}: {other:?}"),
        };
        assert_eq!(told("/history 30"), None);
        assert_eq!(
            told("/history 5000").as_deref(),
            Some("/history shows 1 to 1000 lines at a time; asking for 1000")
        );
        assert_eq!(
            told("/history 0").as_deref(),
            Some("/history shows 1 to 1000 lines at a time; asking for 1")
        );
        for not_a_number in [
            "/history lots",
            "/history 1e3",
            "/history -",
            "/history 5x",
            "/history ５",
        ] {
            assert_eq!(
                error(not_a_number, Side::Client).to_string(),
                "/history takes a number of lines; usage: /history [N]",
                "{not_a_number}"
            );
        }
        assert_eq!(
            error("/history 5 6", Side::Client).to_string(),
            "too many arguments for /history; usage: /history [N]"
        );
        assert!(matches!(
            parse("/history", Side::Server),
            Err(CommandError::WrongSide { .. })
        ));
        // `/help` says the numbers the parser uses.
        let help = help_lines(Side::Client).join("\n");
        assert!(
            help.contains(&format!("({HISTORY_DEFAULT}; at most {HISTORY_MAX})")),
            "{help}"
        );
    }

    #[test]
    fn help_and_parser_agree_on_every_command() {
        for side in [Side::Client, Side::Server] {
            let help = help_lines(side);
            for spec in COMMANDS {
                let listed = help
                    .iter()
                    .any(|line| line.starts_with(&format!("{} ", spec.usage)));
                let refused_as_wrong_side =
                    matches!(parse(spec.name, side), Err(CommandError::WrongSide { .. }));
                assert_eq!(listed, !refused_as_wrong_side, "{} on {side:?}", spec.name);
            }
        }
    }

    #[test]
    fn command_table_is_well_formed() {
        let mut spellings: Vec<&str> = Vec::new();
        for spec in COMMANDS {
            for spelling in std::iter::once(&spec.name).chain(spec.aliases) {
                assert!(spelling.starts_with('/'), "{spelling}");
                assert!(
                    !spelling.starts_with("//"),
                    "{spelling} clashes with the escape"
                );
                assert_eq!(*spelling, spelling.to_ascii_lowercase());
                assert!(!spellings.contains(spelling), "{spelling} is listed twice");
                spellings.push(spelling);
            }
            assert!(spec.usage.starts_with(spec.name), "{}", spec.usage);
            assert!(!spec.summaries.is_empty(), "{} exists nowhere", spec.name);
        }
    }

    /// A table with a made-up client-only command, to check that side checks work in both
    /// directions whatever the real table holds. The stand-in builds `List`.
    static TABLE_WITH_CLIENT_ONLY: &[CommandSpec] = &[
        CommandSpec {
            name: "/whoami",
            aliases: &[],
            usage: "/whoami",
            summaries: &[(Side::Client, "show your own name")],
            shape: Shape::NoArgument(Command::List),
        },
        CommandSpec {
            name: "/kick",
            aliases: &[],
            usage: "/kick NAME",
            summaries: &[(Side::Server, "disconnect a client")],
            shape: Shape::OneWord(|name| Command::Kick { name }),
        },
    ];

    #[test]
    fn wrong_side_is_detected_both_ways() {
        let table = TABLE_WITH_CLIENT_ONLY;
        assert_eq!(
            parse_with(table, "/whoami", Side::Client),
            Ok(Input::Command(Command::List))
        );
        assert_eq!(
            parse_with(table, "/whoami", Side::Server),
            Err(CommandError::WrongSide {
                command: "/whoami",
                side: Side::Server
            })
        );
        assert_eq!(
            parse_with(table, "/kick x", Side::Client),
            Err(CommandError::WrongSide {
                command: "/kick",
                side: Side::Client
            })
        );
        assert_eq!(
            help_lines_from(table, Side::Server),
            vec!["/kick NAME    disconnect a client"]
        );
        assert_eq!(
            help_lines_from(table, Side::Client),
            vec!["/whoami    show your own name"]
        );
    }

    #[test]
    fn odd_input_never_panics_and_still_gets_an_answer() {
        let long_text = "x".repeat(100_000);
        assert_eq!(parse(&long_text, Side::Client), text(&long_text));

        let long_argument = format!("/kick {}", "é".repeat(50_000));
        assert_eq!(
            command(&long_argument, Side::Server),
            Command::Kick {
                name: "é".repeat(50_000)
            }
        );

        assert_eq!(
            error("/\u{0}", Side::Client),
            CommandError::Unknown {
                command: "/\u{0}".to_string()
            }
        );
        assert_eq!(
            error("/ü", Side::Client),
            CommandError::Unknown {
                command: "/ü".to_string()
            }
        );
        // The Kelvin sign lowercases to `k` under Unicode rules; it must not pass for one.
        assert_eq!(
            error("/\u{212a}ick bob", Side::Server),
            CommandError::Unknown {
                command: "/\u{212a}ick".to_string()
            }
        );
        assert_eq!(parse("\r", Side::Client), Ok(Input::Empty));
        assert_eq!(parse("é\r\n", Side::Client), text("é"));
        assert_eq!(parse("\u{feff}/exit", Side::Client), text("\u{feff}/exit"));
    }
}
