//! icq: a terminal instant messenger over UDP, in the spirit of ICQ (1996).
//!
//! Two programs talk over UDP: `icq-server` keeps the list of connected clients and
//! broadcasts every chat message to all of them; `icq-client` prints what arrives while you
//! type. Plain-text "guests" (`nc -u host 4000`) can join too when the server allows it.
//! With `--listen`, `icq-client` needs no server at all: identical peers form a room and
//! send each message straight to every member (peer mode, [`peer`]).
//!
//! The protocol logic is written "sans-IO": the server and the client are plain state
//! machines that take datagrams, typed lines and the current time, and return datagrams to
//! send, events to show and the next deadline. They never touch a socket or read the clock,
//! so every rule — timeouts, flood limits, bans, joins — is tested without a network and
//! with a fake clock. The binaries in `src/bin/` only move bytes between sockets, the
//! terminal and these state machines.
//!
//! # Layout
//!
//! - [`wire`]: the byte layout of every frame; encoding and strict decoding — `table` (the
//!   one table of frame kinds and field codecs), `codes` (the one-byte codes), `envelope`
//!   (session token, sequence number, acknowledgements), `to_server`, `to_client`, `peer`
//!   (the three directions), `packed` (several frames in one datagram), `golden` (the hex
//!   examples as tests). Start here to learn the protocol (also described in
//!   `docs/protocol.md`).
//! - [`server`]: the server's state machine — `front` (forged addresses, bans in force,
//!   version, join cookies, admission), `sessions` (sessions, their streams, timeouts,
//!   probes, leaving, farewells), `room` (broadcast, roster, private messages, nick, away,
//!   flood limits and kicks), `presence` (batched presence news, the quiet large room),
//!   `roster` (every session's roster entry, sorted and encoded once), `replay` (history
//!   for a newcomer, resume and `/history`), `guests` (plain-text guests), `console` (the
//!   operator's commands as library code returning lines).
//! - [`client`]: the client's state machine — joining (nonce, cookie), sending what the user
//!   types reliably, showing what arrives exactly once and in order, heartbeats, leaving,
//!   server silence, rejoining a restarted server; `event` (what it tells the UI),
//!   `shown` (what of the history was shown: the resume mark, `/history` paging).
//! - [`peer`]: serverless mode — one peer's state machine in a room of identical peers:
//!   `join` (joining through any member, names unique in the room), `membership` (the
//!   member list by gossip, departures, tombstones), `links` (a reliable stream pair per
//!   member, flood limit and pacing, eviction of silent members), `room` (`/me`, `/nick`,
//!   `/away`, `/back` and concurrent renames), `history` (the public lines it showed, the
//!   replay a newcomer gets, `/history`).
//! - [`command`]: parsing the slash-commands people type, shared by both programs.
//! - [`cli`]: the values the programs' options take (addresses, ports, switches) and
//!   one-line argument errors.
//! - [`bans`]: the ban system — `list` (the ban file's format, addresses and CIDR ranges,
//!   matching in O(log n)), `file` (the file as a shared document: torn-read detection, the
//!   locked, checked, atomic rewrite that keeps every hand-written line, symlinks), `keeper`
//!   (which bans are in force: the file plus the console's `/ban` and `/unban`, saved or
//!   not, and what the operator is told).
//! - [`proto`]: the session layer under the three roles — joining, cookies and tokens, the
//!   reliable stream pair, flood limits and pacing, address memories, lateness, the log
//!   gate, presence news, the chat events the client and the peer both show (its `//!`
//!   has the map).
//! - [`history`]: the room's recent public lines, numbered within an epoch, and the
//!   queries for replay, resume and paging; in memory or in an SQLite file.
//! - [`names`]: which names are allowed and when two names are the same.
//! - [`text`]: neutralizing hostile text, the clock at a UTC offset handed in, the words
//!   and line shapes the cores put into guests' lines (below the roles; imports none).
//! - [`render`]: the line a person reads for each of the cores' events, plain or colored
//!   (`--color`, `NO_COLOR`), the local clock, the stable color of each name — `client`,
//!   `peer`, `server` (each role's events), `day` (the line when the local date changes).
//! - [`alert`]: which messages mention you, and when the bell rings (`--bell`).
//! - [`completion`]: the names seen online and what Tab completes (client and console).
//! - [`terminal`]: the line editor that keeps the typed line intact while lines arrive
//!   (the one module here that does terminal I/O, shared by the binaries).
//! - [`net`]: the socket loop over any core (batched, no unsafe code of ours), `log` (the
//!   buffered console log), and the programs' run-time threads (`server_program`,
//!   `client_program`).
//!
//! The binaries, `src/bin/icq-server.rs` and `src/bin/icq-client.rs`, parse the options and
//! hand the pieces to [`net`].

#![forbid(unsafe_code)]

pub mod alert;
pub mod bans;
pub mod cli;
pub mod client;
pub mod command;
pub mod completion;
pub mod history;
pub mod names;
pub mod net;
pub mod peer;
pub mod proto;
pub mod render;
pub mod server;
pub mod terminal;
pub mod text;
pub mod wire;
