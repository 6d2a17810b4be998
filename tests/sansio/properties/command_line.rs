//! Command lines: [`command::parse`] never panics on any line, on either side, and agrees
//! with a model of the documented rules (text, `//` escape, commands, errors), also on very
//! long lines.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use icq::command::{self, Command, CommandError, Input, Side};

use super::{arb_char, arb_string, cases};

/// What `command::parse` should answer, written from the rules documented in `command.rs`
/// with `split_whitespace` rather than the parser's own code: one `\n` or `\r\n` is dropped;
/// a blank line is `Empty`; a line whose first visible character is not `/` is `Text`, as
/// typed; `//` is text with one slash less; otherwise the first word names a command (ASCII
/// letters in any case) and the other words are its arguments.
fn model_parse(line: &str, side: Side) -> Result<Input, CommandError> {
    let line = line
        .strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(Input::Empty);
    }
    let visible = line.trim_start();
    if !visible.starts_with('/') {
        return Ok(Input::Text(line.to_owned()));
    }
    if visible.starts_with("//") {
        let slash = line.len() - visible.len();
        return Ok(Input::Text(format!(
            "{}{}",
            &line[..slash],
            &line[slash + 1..]
        )));
    }
    let mut words = visible.split_whitespace();
    let word = words.next().unwrap_or_default();
    let arguments: Vec<&str> = words.collect();
    // The commands that take free text: everything after the command word, trimmed.
    let rest = visible[word.len()..].trim();
    let client_only = |command: &'static str, build: Result<Command, &'static str>| {
        if side == Side::Server {
            return Err(CommandError::WrongSide { command, side });
        }
        build
            .map(Input::Command)
            .map_err(|usage| CommandError::MissingArgument { command, usage })
    };
    match word.to_ascii_lowercase().as_str() {
        "/msg" | "/m" | "/tell" => {
            let (to, text) = rest
                .split_once(char::is_whitespace)
                .map_or((rest, ""), |(to, text)| (to, text.trim()));
            return if to.is_empty() || text.is_empty() {
                Err(CommandError::MissingArgument {
                    command: "/msg",
                    usage: "/msg NAME text",
                })
            } else {
                Ok(Input::Command(Command::Msg {
                    to: to.to_owned(),
                    text: text.to_owned(),
                }))
            };
        }
        "/me" => {
            let built = if rest.is_empty() {
                Err("/me text")
            } else {
                Ok(Command::Me {
                    text: rest.to_owned(),
                })
            };
            return client_only("/me", built);
        }
        "/away" => {
            let reason = (!rest.is_empty()).then(|| rest.to_owned());
            return client_only("/away", Ok(Command::Away { reason }));
        }
        "/back" if side == Side::Client && !rest.is_empty() => {
            return Err(CommandError::UnexpectedArgument {
                command: "/back",
                usage: "/back",
            });
        }
        "/back" => return client_only("/back", Ok(Command::Back)),
        "/nick" if side == Side::Server => {
            return Err(CommandError::WrongSide {
                command: "/nick",
                side,
            });
        }
        "/nick" => {
            return match arguments.as_slice() {
                [] => Err(CommandError::MissingArgument {
                    command: "/nick",
                    usage: "/nick NAME",
                }),
                [name] => Ok(Input::Command(Command::Nick {
                    name: (*name).to_owned(),
                })),
                _ => Err(CommandError::UnexpectedArgument {
                    command: "/nick",
                    usage: "/nick NAME",
                }),
            };
        }
        _ => {}
    }
    type Build = fn(String) -> Command;
    let (name, usage, server_only, build): (&'static str, &'static str, bool, Option<Build>) =
        match word.to_ascii_lowercase().as_str() {
            "/help" => ("/help", "/help", false, None),
            "/list" | "/who" => ("/list", "/list", false, None),
            "/exit" | "/quit" => ("/exit", "/exit", false, None),
            "/kick" => (
                "/kick",
                "/kick NAME",
                true,
                Some(|name| Command::Kick { name }),
            ),
            "/ban" => (
                "/ban",
                "/ban ADDR|NAME",
                true,
                Some(|target| Command::Ban { target }),
            ),
            "/unban" => (
                "/unban",
                "/unban ADDR",
                true,
                Some(|target| Command::Unban { target }),
            ),
            _ => {
                return Err(CommandError::Unknown {
                    command: word.to_owned(),
                });
            }
        };
    if server_only && side == Side::Client {
        return Err(CommandError::WrongSide {
            command: name,
            side,
        });
    }
    let too_many = CommandError::UnexpectedArgument {
        command: name,
        usage,
    };
    match (build, arguments.as_slice()) {
        (None, []) => Ok(Input::Command(match name {
            "/help" => Command::Help,
            "/list" => Command::List,
            _ => Command::Exit,
        })),
        (None, _) => Err(too_many),
        (Some(_), []) => Err(CommandError::MissingArgument {
            command: name,
            usage,
        }),
        (Some(build), [argument]) => Ok(Input::Command(build((*argument).to_owned()))),
        (Some(_), _) => Err(too_many),
    }
}

/// Whitespace of several kinds, Unicode's included (what the parser splits on).
fn arb_space() -> impl Strategy<Value = String> {
    vec(
        select(vec![
            ' ', ' ', '\t', '\u{a0}', '\u{3000}', '\u{85}', '\u{2028}', '\u{b}', '\u{c}', '\r',
        ]),
        0..=2,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// A line shaped like a command: spaces, slashes, a command word (known or not) in random
/// ASCII case, arguments, a line ending.
fn arb_command_line() -> impl Strategy<Value = String> {
    let word = select(vec![
        "help",
        "msg",
        "m",
        "tell",
        "me",
        "nick",
        "away",
        "back",
        "list",
        "who",
        "exit",
        "quit",
        "kick",
        "ban",
        "unban",
        "frob",
        "",
        "\u{212a}ick",
        "kickk",
        "bAn",
    ]);
    let case = vec(any::<bool>(), 8);
    let argument = prop_oneof![
        "[a-z0-9./:]{1,8}",
        arb_string(6, 64),
        Just("1.2.3.0/24".to_owned())
    ];
    (
        arb_space(),
        select(vec!["/", "/", "//", "///", "", "x/"]),
        word,
        case,
        vec((arb_space(), argument), 0..=3),
        arb_space(),
        select(vec!["", "", "\n", "\r\n", "\r", "\n\n", "\r\r\n"]),
    )
        .prop_map(|(lead, slashes, word, case, arguments, trail, ending)| {
            let word: String = word
                .chars()
                .zip(case.iter().cycle())
                .map(|(ch, &upper)| if upper { ch.to_ascii_uppercase() } else { ch })
                .collect();
            let mut line = format!("{lead}{slashes}{word}");
            for (space, argument) in arguments {
                line.push_str(if space.is_empty() { " " } else { &space });
                line.push_str(&argument);
            }
            line.push_str(&trail);
            line.push_str(ending);
            line
        })
}

/// Any line: printable strings, any characters at all, or command-shaped lines.
fn arb_line() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        1 => vec(arb_char(), 0..=40).prop_map(|chars| chars.into_iter().collect()),
        2 => arb_command_line(),
    ]
}

fn check_parse(line: &str) -> Result<(), TestCaseError> {
    for side in [Side::Client, Side::Server] {
        let parsed = command::parse(line, side);
        prop_assert_eq!(
            &parsed,
            &model_parse(line, side),
            "{:?} on {:?}",
            line,
            side
        );
        // One line ending added to a line that has none changes nothing.
        if !line.ends_with(['\n', '\r']) {
            prop_assert_eq!(&command::parse(&format!("{line}\n"), side), &parsed);
            prop_assert_eq!(&command::parse(&format!("{line}\r\n"), side), &parsed);
        }
        if let Err(error) = &parsed {
            let message = error.to_string();
            prop_assert!(!message.contains(['\n', '\r']), "{:?}", message);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn parse_never_panics_and_follows_the_rules(line in arb_line()) {
        check_parse(&line)?;
    }
}

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn parse_handles_very_long_lines(
        start in arb_line(),
        fill in arb_char(),
        count in 10_000usize..150_000,
    ) {
        let line = format!("{start}{}", fill.to_string().repeat(count));
        check_parse(&line)?;
        check_parse(&format!("/kick {}", fill.to_string().repeat(count)))?;
    }
}
