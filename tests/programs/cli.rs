//! The command lines of both binaries: every option can also be set from the environment
//! and `--help` says so, the help has examples, the choices (`--bell`, `--color`) and
//! switches (`ICQ_NO_BELL`, `ICQ_GUESTS`) accept their documented values, and every bad
//! value exits 2 with exactly one line saying what is wrong (bad ports, port 0 to send to,
//! a bare host for `--bind`, a context never given twice).
//!
//! Only argument parsing is exercised: every run here exits before opening a socket.

use std::process::{Command, Output};

use crate::process::{CLIENT_ENV, SERVER_ENV};

fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("running the binary")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The long options `--help` lists (without `--help` and `--version`), each with the text
/// of its entry.
fn option_entries(help: &str) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        if line.starts_with("  ") && (trimmed.starts_with("--") || trimmed.starts_with("-h")) {
            let name = trimmed
                .split([' ', ','])
                .find(|word| word.starts_with("--"))
                .unwrap_or(trimmed)
                .to_owned();
            entries.push((name, String::new()));
        } else if line.starts_with("Examples:") {
            break;
        } else if let Some((_, text)) = entries.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    entries.retain(|(name, _)| name != "--help" && name != "--version");
    entries
}

#[test]
fn every_option_has_an_environment_variable_shown_in_help() {
    for (program, expected) in [
        (env!("CARGO_BIN_EXE_icq-client"), CLIENT_ENV),
        (env!("CARGO_BIN_EXE_icq-server"), SERVER_ENV),
    ] {
        let output = run(program, &["--help"], &[]);
        assert!(output.status.success(), "{program} --help failed");
        let help = stdout(&output);
        let entries = option_entries(&help);
        assert_eq!(entries.len(), expected.len(), "{program}: {entries:?}");
        for (name, text) in &entries {
            assert!(
                text.contains("[env: ICQ_"),
                "{program} {name} has no environment variable:\n{text}"
            );
        }
        for variable in expected {
            assert!(
                help.contains(&format!("[env: {variable}=")),
                "{program}: {variable}"
            );
        }
        assert!(help.contains("\nExamples:\n"), "{program}: no examples");
    }
}

#[test]
fn bell_and_color_take_their_documented_values_only() {
    let client = env!("CARGO_BIN_EXE_icq-client");
    // A name that is not allowed stops the client right after parsing (exit 2, nothing
    // sent), which proves the rest of the line parsed.
    let parses = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--name", "server"];
        all.extend_from_slice(args);
        let output = run(client, &all, env);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (stderr.contains("invalid name"), stderr)
    };
    for args in [
        &["--bell", "all"][..],
        &["--bell", "mention"],
        &["--bell", "off"],
        &["--no-bell"],
        &["--color", "auto"],
        &["--color", "always"],
        &["--color", "never"],
    ] {
        let (ok, stderr) = parses(args, &[]);
        assert!(ok, "{args:?} refused: {stderr}");
    }
    for env in [("ICQ_BELL", "mention"), ("ICQ_COLOR", "never")] {
        let (ok, stderr) = parses(&[], &[env]);
        assert!(ok, "{env:?} refused: {stderr}");
    }
    for (args, env) in [
        (&["--bell", "loud"][..], &[][..]),
        (&["--color", "sometimes"], &[]),
        (&[], &[("ICQ_BELL", "loud")]),
    ] {
        let (ok, stderr) = parses(args, env);
        assert!(
            !ok && stderr.contains(": expected ") && stderr.lines().count() == 1,
            "{args:?} {env:?}: {stderr}"
        );
    }
    let server = run(
        env!("CARGO_BIN_EXE_icq-server"),
        &["--color", "sometimes"],
        &[],
    );
    assert_eq!(server.status.code(), Some(2));
}

/// Runs `program`, expecting exit status 2 and exactly `message` (one line) on stderr.
fn refused(program: &str, args: &[&str], env: &[(&str, &str)], message: &str) {
    let output = run(program, args, env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        (output.status.code(), stderr.as_ref()),
        (Some(2), format!("{message}\n").as_str()),
        "{args:?} {env:?}"
    );
    assert!(output.stdout.is_empty(), "{args:?}: printed on stdout");
}

#[test]
fn bad_addresses_and_ports_exit_2_with_one_line() {
    let client = env!("CARGO_BIN_EXE_icq-client");
    let server = env!("CARGO_BIN_EXE_icq-server");
    let name = ["--name", "bob"];
    let with_name = |more: &[&'static str]| [&name[..], more].concat();
    refused(
        client,
        &with_name(&["--server", "localhost:99999"]),
        &[],
        "icq-client: invalid value 'localhost:99999' for --server: '99999' is not a port (1-65535)",
    );
    refused(
        client,
        &with_name(&["--server", "127.0.0.1:0"]),
        &[],
        "icq-client: invalid value '127.0.0.1:0' for --server: '0' is not a port (1-65535)",
    );
    refused(
        client,
        &with_name(&["--server", "[::1]:x"]),
        &[],
        "icq-client: invalid value '[::1]:x' for --server: 'x' is not a port (1-65535)",
    );
    refused(
        client,
        &with_name(&["--server", "[::1"]),
        &[],
        "icq-client: invalid value '[::1' for --server: missing ']' after the IPv6 address",
    );
    refused(
        client,
        &with_name(&["--server", ":4000"]),
        &[],
        "icq-client: invalid value ':4000' for --server: no host before the port",
    );
    refused(
        client,
        &with_name(&["--listen", "127.0.0.1:0", "--peer", "127.0.0.1:0"]),
        &[],
        "icq-client: invalid value '127.0.0.1:0' for --peer: '0' is not a port (1-65535)",
    );
    refused(
        client,
        &with_name(&["--listen", "127.0.0.1:65536"]),
        &[],
        "icq-client: invalid value '127.0.0.1:65536' for --listen: '65536' is not a port (0-65535, 0 for any free one)",
    );
    // From the environment, the variable is named, as that is where the value was set.
    refused(
        client,
        &name,
        &[("ICQ_SERVER", "localhost:0")],
        "icq-client: ICQ_SERVER=localhost:0: '0' is not a port (1-65535)",
    );
    refused(
        server,
        &["--bind", "127.0.0.1:99999"],
        &[],
        "icq-server: invalid value '127.0.0.1:99999' for --bind: '99999' is not a port (0-65535, 0 for any free one)",
    );
    refused(
        server,
        &[],
        &[("ICQ_BIND", "70000")],
        "icq-server: ICQ_BIND=70000: '70000' is not a port (0-65535, 0 for any free one)",
    );
}

#[test]
fn bad_option_values_exit_2_with_one_line() {
    let client = env!("CARGO_BIN_EXE_icq-client");
    let server = env!("CARGO_BIN_EXE_icq-server");
    refused(
        client,
        &["--bell", "loud"],
        &[],
        "icq-client: invalid value 'loud' for --bell: expected all, mention, off",
    );
    refused(
        client,
        &["--frob"],
        &[],
        "icq-client: unexpected argument '--frob' found",
    );
    refused(
        server,
        &["--timeout", "0"],
        &[],
        "icq-server: --timeout must be a number of seconds between 0.3 and 86400",
    );
    refused(
        server,
        &["--max-clients", "0"],
        &[],
        "icq-server: --max-clients must be at least 1",
    );
    refused(
        server,
        &["--flood-rate=-1"],
        &[],
        "icq-server: --flood-rate must be a number of messages per second, 0 or more",
    );
    refused(
        server,
        &["--flood-burst", "many"],
        &[],
        "icq-server: invalid value 'many' for --flood-burst: invalid digit found in string",
    );
    refused(
        server,
        &["--history", "2000000"],
        &[],
        "icq-server: invalid value '2000000' for --history: expected a number of lines between 0 and 1000000",
    );
    refused(
        server,
        &[],
        &[("ICQ_REPLAY", "5000")],
        "icq-server: ICQ_REPLAY=5000: expected a number of lines between 0 and 1000",
    );
}

#[test]
fn switches_from_the_environment_take_1_0_true_false_yes_no_on_off() {
    let client = env!("CARGO_BIN_EXE_icq-client");
    let server = env!("CARGO_BIN_EXE_icq-server");
    for value in [
        "1", "0", "true", "false", "yes", "no", "on", "off", "YES", "Off",
    ] {
        // Parsing succeeded when the run gets as far as refusing the name (client) or the
        // client limit (server), which are checked after every option is read.
        refused(
            client,
            &["--name", "server"],
            &[("ICQ_NO_BELL", value)],
            "icq-client: invalid name 'server': 'server' and names starting with 'guest-' are reserved",
        );
        refused(
            server,
            &["--max-clients", "0"],
            &[("ICQ_GUESTS", value)],
            "icq-server: --max-clients must be at least 1",
        );
    }
    refused(
        client,
        &["--name", "bob"],
        &[("ICQ_NO_BELL", "maybe")],
        "icq-client: ICQ_NO_BELL=maybe: expected 1/0, true/false, yes/no or on/off",
    );
    refused(
        server,
        &[],
        &[("ICQ_GUESTS", "2")],
        "icq-server: ICQ_GUESTS=2: expected 1/0, true/false, yes/no or on/off",
    );
}

#[test]
fn bind_takes_a_bare_host_or_a_bare_port() {
    // Accepted (the run gets as far as the client limit, checked after parsing); the port
    // a bare host gets (4000) is unit tested in `cli`, without binding it here.
    let server = env!("CARGO_BIN_EXE_icq-server");
    for bind in [
        "127.0.0.1",
        "localhost",
        "::1",
        "[::1]",
        "4001",
        "127.0.0.1:0",
    ] {
        refused(
            server,
            &["--bind", bind, "--max-clients", "0"],
            &[],
            "icq-server: --max-clients must be at least 1",
        );
    }
}

#[test]
fn a_ban_file_that_is_a_directory_is_named_once() {
    let dir = std::env::temp_dir();
    let dir_text = dir.to_str().expect("a UTF-8 temporary directory");
    let output = run(
        env!("CARGO_BIN_EXE_icq-server"),
        &["--bind", "127.0.0.1:0", "--bans", dir_text],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("reading ban list").count(),
        1,
        "context given twice: {stderr}"
    );
    assert!(
        stderr.starts_with(&format!("icq-server: reading ban list {dir_text}: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
