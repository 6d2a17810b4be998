//! The command lines of both binaries: every option can also be set from the environment
//! and `--help` says so, the help has examples, and the new choices (`--bell`, `--color`)
//! accept their documented values and refuse others.
//!
//! Only argument parsing is exercised: every run here exits before opening a socket.

use std::process::{Command, Output};

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
        (
            env!("CARGO_BIN_EXE_icq-client"),
            &[
                "ICQ_NAME",
                "ICQ_SERVER",
                "ICQ_BELL",
                "ICQ_NO_BELL",
                "ICQ_COLOR",
                "ICQ_LISTEN",
                "ICQ_PEER",
                "ICQ_BANS",
            ][..],
        ),
        (
            env!("CARGO_BIN_EXE_icq-server"),
            &[
                "ICQ_BIND",
                "ICQ_BANS",
                "ICQ_FLOOD_RATE",
                "ICQ_FLOOD_BURST",
                "ICQ_TIMEOUT",
                "ICQ_GUESTS",
                "ICQ_MAX_CLIENTS",
                "ICQ_MAX_PER_IP",
                "ICQ_FLOOD_KICK",
                "ICQ_COLOR",
            ][..],
        ),
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
            !ok && stderr.contains("invalid value"),
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
