//! The command lines of both programs: the values their options take (addresses and ports,
//! yes/no switches, numbers of history lines) and how a bad one is told — one line in our words, exit status 2.
//!
//! Both binaries declare their options with clap and hand the address and switch options
//! the value parsers here, so `--server localhost:99999`, `ICQ_SERVER=host:0` and
//! `ICQ_NO_BELL=maybe` are refused by the same rules, before anything is opened. What each
//! option means stays with the binaries.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// The port when an address names none.
pub const DEFAULT_PORT: u16 = 4000;

/// The exit status for bad arguments.
pub const USAGE_STATUS: i32 = 2;

/// An address as typed: a host (name or IP address) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// A host name or an IP address (an IPv6 one without its brackets).
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// The one address to listen on (`--bind`, `--listen`): an IP address as it is; a host
    /// name through the system resolver, its IPv4 address first, as clients try IPv4 first
    /// (`localhost` often lists ::1 before 127.0.0.1, and a socket on ::1 alone would not
    /// hear those that chose 127.0.0.1).
    pub fn to_listen_address(&self) -> std::io::Result<SocketAddr> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .min_by_key(SocketAddr::is_ipv6)
            .ok_or_else(|| std::io::Error::other("the name resolved to no address"))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a typed address is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// What follows the host is not a port number in the range allowed.
    NotAPort {
        port: String,
        /// Whether 0 (any free port, for an address to listen on) is allowed.
        zero_allowed: bool,
    },
    /// `[` without its `]`.
    MissingBracket,
    /// Nothing before the `:PORT`.
    NoHost,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::NotAPort {
                port,
                zero_allowed: false,
            } => write!(f, "'{port}' is not a port (1-65535)"),
            AddressError::NotAPort {
                port,
                zero_allowed: true,
            } => write!(f, "'{port}' is not a port (0-65535, 0 for any free one)"),
            AddressError::MissingBracket => write!(f, "missing ']' after the IPv6 address"),
            AddressError::NoHost => write!(f, "no host before the port"),
        }
    }
}

impl std::error::Error for AddressError {}

/// Where to send: `--server`, `--peer`. `HOST`, `HOST:PORT`, `IP`, `IP:PORT` or
/// `[IPv6]:PORT`; port [`DEFAULT_PORT`] if omitted; port 0 is refused (nothing listens
/// there).
pub fn remote_address(text: &str) -> Result<HostPort, AddressError> {
    host_port(text, false)
}

/// Where to listen in peer mode: `--listen`. As [`remote_address`], but port 0 (any free
/// port) is allowed.
pub fn listen_address(text: &str) -> Result<HostPort, AddressError> {
    host_port(text, true)
}

/// Where the server listens: `--bind`. As [`listen_address`], and a bare `PORT` means that
/// port on every IPv4 interface.
pub fn bind_address(text: &str) -> Result<HostPort, AddressError> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(HostPort {
            host: "0.0.0.0".to_owned(),
            port: port(text, true)?,
        });
    }
    host_port(text, true)
}

fn host_port(text: &str, zero_allowed: bool) -> Result<HostPort, AddressError> {
    let (host, port) = if text.parse::<IpAddr>().is_ok() {
        // A bare address, IPv6 ones included (their colons are not a port separator).
        (text, DEFAULT_PORT)
    } else if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(AddressError::MissingBracket)?;
        match after {
            "" => (host, DEFAULT_PORT),
            _ => (
                host,
                port(after.strip_prefix(':').unwrap_or(after), zero_allowed)?,
            ),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, digits)) => (host, port(digits, zero_allowed)?),
            None => (text, DEFAULT_PORT),
        }
    };
    if host.is_empty() {
        return Err(AddressError::NoHost);
    }
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

fn port(digits: &str, zero_allowed: bool) -> Result<u16, AddressError> {
    match digits.parse::<u16>() {
        // `+80` parses as a u16; it is not how anyone writes a port.
        Ok(port) if (port > 0 || zero_allowed) && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(port)
        }
        _ => Err(AddressError::NotAPort {
            port: digits.to_owned(),
            zero_allowed,
        }),
    }
}

/// A yes/no switch's value (`ICQ_NO_BELL`, `ICQ_GUESTS`): 1/0, true/false, yes/no or
/// on/off, in any letter case.
pub fn switch(text: &str) -> Result<bool, SwitchError> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(SwitchError),
    }
}

/// A switch's value that is none of those [`switch`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchError;

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected 1/0, true/false, yes/no or on/off")
    }
}

impl std::error::Error for SwitchError {}

/// A `--history` value: how many lines to keep, at most
/// [`MAX_HISTORY`](crate::proto::paging::MAX_HISTORY).
pub fn history_lines(text: &str) -> Result<usize, LinesError> {
    lines(text, crate::proto::paging::MAX_HISTORY)
}

/// A `--replay` value: how many lines a newcomer is shown, at most
/// [`MAX_REPLAY`](crate::proto::paging::MAX_REPLAY).
pub fn replay_lines(text: &str) -> Result<usize, LinesError> {
    lines(text, crate::proto::paging::MAX_REPLAY)
}

fn lines(text: &str, max: usize) -> Result<usize, LinesError> {
    match text.parse::<usize>() {
        Ok(count) if count <= max && text.bytes().all(|b| b.is_ascii_digit()) => Ok(count),
        _ => Err(LinesError { max }),
    }
}

/// A number of lines out of its option's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinesError {
    /// The most the option takes.
    pub max: usize,
}

impl fmt::Display for LinesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected a number of lines between 0 and {}", self.max)
    }
}

impl std::error::Error for LinesError {}

/// Parses the command line of `program` (and its environment variables) with `command`.
/// `--help` and `--version` print and exit 0; any error prints one line on stderr, in our
/// words ([`error_line`]), and exits with [`USAGE_STATUS`].
pub fn matches_or_exit(program: &str, command: clap::Command) -> clap::ArgMatches {
    let error = match command.clone().try_get_matches() {
        Ok(matches) => return matches,
        Err(error) => error,
    };
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => error.exit(),
        _ => usage_error(
            program,
            &in_environment(&command, &error_line(&error), &error),
        ),
    }
}

/// A bad value that came from an option's environment variable rather than the command
/// line is named by its variable (`ICQ_NO_BELL=maybe: ...`), where the user set it.
fn in_environment(command: &clap::Command, line: &str, error: &clap::Error) -> String {
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        error.get(ContextKind::InvalidArg),
        error.get(ContextKind::InvalidValue),
    ) else {
        return line.to_owned();
    };
    let long = option_name(arg).trim_start_matches("--");
    let Some(variable) = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(clap::Arg::get_env)
    else {
        return line.to_owned();
    };
    let from_environment = std::env::var_os(variable).is_some_and(|v| v.to_str() == Some(value))
        && !std::env::args()
            .skip(1)
            .any(|word| word.contains(value.as_str()));
    match (from_environment, line.split_once(": ")) {
        (true, Some((_, why))) => format!("{}={value}: {why}", variable.to_string_lossy()),
        _ => line.to_owned(),
    }
}

/// As [`matches_or_exit`], for an error turning the matches into the program's own type.
pub fn exit_on(program: &str, error: &clap::Error) -> ! {
    usage_error(program, &error_line(error))
}

/// Prints `program: message` on stderr and exits with [`USAGE_STATUS`].
pub fn usage_error(program: &str, message: &str) -> ! {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{program}: {message}");
    std::process::exit(USAGE_STATUS);
}

/// One line saying what is wrong with the command line: `invalid value 'X' for --option:
/// why`, or clap's own first sentence (an unknown option, a missing one) without its
/// usage and help sections.
pub fn error_line(error: &clap::Error) -> String {
    let option = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => Some(option_name(arg)),
        _ => None,
    };
    let value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => Some(value.as_str()),
        _ => None,
    };
    match (error.kind(), option, value) {
        (ErrorKind::ValueValidation, Some(option), Some(value)) => {
            match std::error::Error::source(error) {
                Some(why) => format!("invalid value '{value}' for {option}: {why}"),
                None => format!("invalid value '{value}' for {option}"),
            }
        }
        (ErrorKind::InvalidValue, Some(option), Some(value)) => {
            match error.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(valid)) => format!(
                    "invalid value '{value}' for {option}: expected {}",
                    valid.join(", ")
                ),
                _ => format!("invalid value '{value}' for {option}"),
            }
        }
        _ => first_paragraph(&error.render().to_string()),
    }
}

/// `--server <SERVER>` → `--server`.
fn option_name(arg: &str) -> &str {
    arg.split_whitespace().next().unwrap_or(arg)
}

/// clap's message up to its first blank line, on one line, without `error: `.
fn first_paragraph(rendered: &str) -> String {
    let text = rendered.strip_prefix("error: ").unwrap_or(rendered);
    text.lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn addresses_take_a_host_and_an_optional_port() {
        assert_eq!(remote_address("localhost"), Ok(hp("localhost", 4000)));
        assert_eq!(remote_address("localhost:4001"), Ok(hp("localhost", 4001)));
        assert_eq!(remote_address("127.0.0.1"), Ok(hp("127.0.0.1", 4000)));
        assert_eq!(remote_address("::1"), Ok(hp("::1", 4000)));
        assert_eq!(remote_address("[::1]"), Ok(hp("::1", 4000)));
        assert_eq!(remote_address("[::1]:5"), Ok(hp("::1", 5)));
        assert_eq!(hp("::1", 5).to_string(), "[::1]:5");
        assert_eq!(hp("example.org", 5).to_string(), "example.org:5");
    }

    #[test]
    fn a_bad_port_is_named_in_the_message() {
        let not_a_port = |text: &str| remote_address(text).unwrap_err().to_string();
        assert_eq!(
            not_a_port("localhost:99999"),
            "'99999' is not a port (1-65535)"
        );
        assert_eq!(not_a_port("127.0.0.1:0"), "'0' is not a port (1-65535)");
        assert_eq!(not_a_port("[::1]:x"), "'x' is not a port (1-65535)");
        assert_eq!(not_a_port("host:+80"), "'+80' is not a port (1-65535)");
        assert_eq!(not_a_port("host:"), "'' is not a port (1-65535)");
        assert_eq!(not_a_port(":4000"), "no host before the port");
        assert_eq!(not_a_port("[::1"), "missing ']' after the IPv6 address");
        assert_eq!(
            listen_address("0.0.0.0:70000").unwrap_err().to_string(),
            "'70000' is not a port (0-65535, 0 for any free one)"
        );
    }

    #[test]
    fn port_zero_is_for_listening_only() {
        assert!(remote_address("127.0.0.1:0").is_err());
        assert_eq!(listen_address("127.0.0.1:0"), Ok(hp("127.0.0.1", 0)));
        assert_eq!(bind_address("127.0.0.1:0"), Ok(hp("127.0.0.1", 0)));
    }

    #[test]
    fn history_and_replay_take_numbers_of_lines_within_their_bounds() {
        assert_eq!(history_lines("0"), Ok(0));
        assert_eq!(history_lines("1000000"), Ok(1_000_000));
        assert_eq!(replay_lines("1000"), Ok(1_000));
        for bad in ["1000001", "-1", "+5", "", "lots"] {
            assert!(history_lines(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            replay_lines("1001").unwrap_err().to_string(),
            "expected a number of lines between 0 and 1000"
        );
    }

    #[test]
    fn switches_take_the_usual_words_for_yes_and_no() {
        for yes in ["1", "true", "yes", "on", "TRUE", "Yes", "ON"] {
            assert_eq!(switch(yes), Ok(true), "{yes}");
        }
        for no in ["0", "false", "no", "off", "False", "NO"] {
            assert_eq!(switch(no), Ok(false), "{no}");
        }
        for neither in ["", "maybe", "2", "y", "truee"] {
            assert_eq!(switch(neither), Err(SwitchError), "{neither}");
        }
    }

    #[test]
    fn bind_takes_a_bare_port_or_a_bare_host() {
        assert_eq!(bind_address("4001"), Ok(hp("0.0.0.0", 4001)));
        assert_eq!(bind_address("0"), Ok(hp("0.0.0.0", 0)));
        assert_eq!(bind_address("127.0.0.1"), Ok(hp("127.0.0.1", 4000)));
        assert_eq!(bind_address("localhost"), Ok(hp("localhost", 4000)));
        assert_eq!(bind_address("[::]:4002"), Ok(hp("::", 4002)));
        assert!(bind_address("99999").is_err());
    }
}
