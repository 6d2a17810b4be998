//! The server console's commands: a line the operator typed in, the lines to print out.
//!
//! Owns what each console line does to the server core (`/list`, `/kick`, `/msg`, a line
//! broadcast as from `server`) and how `/ban` and `/unban` turn into an edit of the ban
//! list, with every answer as text. It does not own the ban file (`crate::bans::keeper` stages
//! and saves the edit the program hands it), the socket, or where the lines are printed.
//! Everything quoted from outside (names, typed targets, errors that quote what was typed)
//! goes through `text::sanitize`.

use std::time::Instant;

use crate::bans::file::Edit;
use crate::command::{self, Command, Input, Side};
use crate::server::Server;
use crate::text;

/// What a console line asks of the program beyond what it did to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    Nothing,
    /// `/exit`: close the server.
    Exit,
    /// `/ban` or `/unban`: put this edit in force, then save it.
    Bans(Edit),
}

/// The console's answer to one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// To print, in order, before the events the line caused.
    pub lines: Vec<String>,
    pub then: Then,
}

impl Answer {
    fn lines(lines: Vec<String>) -> Answer {
        Answer {
            lines,
            then: Then::Nothing,
        }
    }

    fn line(line: impl AsRef<str>) -> Answer {
        Answer::lines(vec![text::sanitize(line.as_ref()).into_owned()])
    }

    fn then(then: Then) -> Answer {
        Answer {
            lines: Vec::new(),
            then,
        }
    }
}

/// Carries out one console line on `server`. `local_stamp` is the operator's local time
/// (`2026-12-01 22:45`), written in the comment of a ban's line in the file.
pub fn carry_out(server: &mut Server, now: Instant, line: &str, local_stamp: &str) -> Answer {
    let command = match command::parse(line, Side::Server) {
        Ok(Input::Empty) => return Answer::lines(Vec::new()),
        Ok(Input::Text(text)) => {
            server.say(now, &text);
            return Answer::lines(Vec::new());
        }
        Ok(Input::Command(command)) => command,
        Err(error) => return Answer::line(error.to_string()),
    };
    match command {
        Command::Help => Answer::lines(command::help_lines(Side::Server)),
        Command::Exit => Answer::then(Then::Exit),
        Command::List => Answer::lines(client_lines(server, now)),
        Command::Kick { name } => match server.kick(now, &name) {
            Ok(()) => Answer::lines(Vec::new()),
            Err(error) => Answer::line(error.to_string()),
        },
        Command::Msg { to, text } => match server.say_privately(now, &to, &text) {
            Ok(()) => Answer::lines(Vec::new()),
            Err(error) => Answer::line(error.to_string()),
        },
        Command::Ban { target } => ban(server, &target, local_stamp),
        Command::Unban { target } => match target.parse() {
            Ok(net) => Answer::then(Then::Bans(Edit::Unban { net })),
            Err(error) => Answer::line(format!("cannot unban: {error}")),
        },
        // The parser only gives client commands to clients.
        Command::Me { .. }
        | Command::Nick { .. }
        | Command::Away { .. }
        | Command::Back
        | Command::History(_) => Answer::lines(Vec::new()),
    }
}

/// `/ban TARGET`: an address, a range, or the name of a client online (its address).
fn ban(server: &Server, target: &str, local_stamp: &str) -> Answer {
    let net = match server.ban_target(target) {
        Ok(net) => net,
        Err(error) => return Answer::line(format!("cannot ban '{target}': {error}")),
    };
    let comment = if net.to_string() == target {
        format!("/ban on {local_stamp}")
    } else {
        format!("/ban {target} on {local_stamp}")
    };
    Answer::then(Then::Bans(Edit::Ban { net, comment }))
}

/// `/list`: who is online, in columns.
pub fn client_lines(server: &Server, now: Instant) -> Vec<String> {
    let clients = server.clients(now);
    if clients.is_empty() {
        return vec!["no clients online".to_owned()];
    }
    let name_width = clients
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    let addr_width = clients
        .iter()
        .map(|c| c.addr.to_string().len())
        .max()
        .unwrap_or(0);
    let mut lines = vec![format!("{} client(s) online:", clients.len())];
    for client in clients {
        lines.push(format!(
            "  {:<name_width$}  {:<addr_width$}  connected {:>7}  idle {:>7}{}",
            text::sanitize(&client.name),
            client.addr.to_string(),
            text::duration(client.connected_for),
            text::duration(client.idle_for),
            if client.guest { "  (guest)" } else { "" },
        ));
        if let Some(reason) = client.away {
            lines.push(format!("      away: {}", text::sanitize(&reason)));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bans::list::BanList;
    use crate::server::ServerConfig;

    fn server() -> (Server, Instant) {
        let now = Instant::now();
        let config = ServerConfig {
            guests: true,
            ..ServerConfig::default()
        };
        (
            Server::new(config, BanList::default(), now, 1_700_000_000_000),
            now,
        )
    }

    #[test]
    fn list_of_an_empty_server_says_so() {
        let (mut server, now) = server();
        let answer = carry_out(&mut server, now, "/list", "2026-12-01 22:45");
        assert_eq!(answer.lines, ["no clients online"]);
        assert_eq!(answer.then, Then::Nothing);
    }

    #[test]
    fn list_shows_a_guest_in_columns() {
        let (mut server, now) = server();
        let guest = "127.0.0.1:5555".parse().unwrap();
        server.handle_datagram(now, guest, b"hello\n");
        let lines = client_lines(&server, now);
        assert_eq!(lines[0], "1 client(s) online:");
        assert!(
            lines[1].starts_with(
                "  guest-127.0.0.1:5555  127.0.0.1:5555  connected      0s  idle      0s"
            ),
            "{lines:?}"
        );
        assert!(lines[1].ends_with("  (guest)"), "{lines:?}");
    }

    #[test]
    fn ban_of_an_address_and_of_a_name() {
        let (mut server, now) = server();
        let answer = carry_out(&mut server, now, "/ban 10.0.0.0/8", "2026-12-01 22:45");
        assert_eq!(
            answer.then,
            Then::Bans(Edit::Ban {
                net: "10.0.0.0/8".parse().unwrap(),
                comment: "/ban on 2026-12-01 22:45".to_owned(),
            })
        );
        let answer = carry_out(&mut server, now, "/ban nobody", "2026-12-01 22:45");
        assert_eq!(answer.then, Then::Nothing);
        assert_eq!(answer.lines.len(), 1);
        assert!(
            answer.lines[0].starts_with("cannot ban 'nobody': "),
            "{answer:?}"
        );
    }

    #[test]
    fn unban_needs_an_address() {
        let (mut server, now) = server();
        let answer = carry_out(&mut server, now, "/unban 10.1.2.3", "");
        assert_eq!(
            answer.then,
            Then::Bans(Edit::Unban {
                net: "10.1.2.3".parse().unwrap()
            })
        );
        let answer = carry_out(&mut server, now, "/unban bob", "");
        assert_eq!(answer.then, Then::Nothing);
        assert!(answer.lines[0].starts_with("cannot unban: "), "{answer:?}");
    }

    #[test]
    fn exit_help_and_errors() {
        let (mut server, now) = server();
        assert_eq!(carry_out(&mut server, now, "/exit", "").then, Then::Exit);
        assert_eq!(
            carry_out(&mut server, now, "/help", "").lines,
            command::help_lines(Side::Server)
        );
        let unknown = carry_out(&mut server, now, "/frobnicate", "");
        assert_eq!(unknown.lines.len(), 1);
        assert!(unknown.lines[0].contains("/frobnicate"), "{unknown:?}");
        let kick = carry_out(&mut server, now, "/kick ghost", "");
        assert_eq!(kick.lines.len(), 1);
        assert!(kick.lines[0].contains("ghost"), "{kick:?}");
    }
}
