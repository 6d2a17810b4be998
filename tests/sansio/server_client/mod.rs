//! The server and client cores driven together over the simulated network (`sim::room`),
//! with a fake clock: joins, chat, leaves, timeouts, flood limits, kicks, bans, guests,
//! hostile datagrams, restarts and fallbacks, end to end but without a socket.
//!
//! This file owns the end-to-end rules — what each party must see when they talk to each
//! other. It does not own the byte layout (`wire`'s unit tests) nor the harness (`sim`).
//!
//! This module holds what the topics share (the stranger, the small builders of expected
//! events); each topic is a module: `membership`, `policing`, `lifecycle`, `network`.

mod lifecycle;
mod membership;
mod network;
mod policing;

use std::net::SocketAddr;
use std::time::Duration;

use icq::bans::list::{BanList, IpNet};
use icq::client::{self, ClientEvent, CloseReason};
use icq::completion::NameBook;
use icq::proto::chat::ChatEvent;
use icq::proto::flood::{self, FloodLimit};
use icq::proto::join;
use icq::proto::pacing;
use icq::render::{self, ClientLook};
use icq::server::{self, Server, ServerConfig, ServerError, ServerEvent};
use icq::text;
use icq::wire::Acks;
use icq::wire::{self, DisconnectReason, Frame, PresenceChange, RefuseReason, RosterEntry};
use icq::wire::{Delivery, Request, ToClient, ToServer};

use crate::sim::room::{
    SERVER_ADDR, Sim, chat_frame, envelope, forge_join, heartbeat_frame, join_frame,
    join_with_cookie, messages, notices, refused,
};
use crate::sim::{Datagram, Link, WALL_START_MS, addr};

/// An address that never joined: an attacker, a scanner, or a guest typing into netcat.
const STRANGER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 20001);

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn default_sim() -> Sim {
    Sim::new(ServerConfig::default())
}

/// The names the server lists, in its order.
pub(crate) fn listed_names(sim: &Sim) -> Vec<String> {
    sim.server
        .clients(sim.now)
        .into_iter()
        .map(|c| c.name)
        .collect()
}

fn presence(time_ms: i64, name: &str, change: PresenceChange) -> ClientEvent {
    ClientEvent::Chat(ChatEvent::Presence {
        time_ms,
        name: name.to_owned(),
        change,
    })
}

/// The roster a client gets at join (or after `/list`) when these names are online.
fn online(time_ms: i64, names: &[&str]) -> ClientEvent {
    ClientEvent::Roster {
        time_ms,
        total: u16::try_from(names.len()).expect("a short list"),
        offset: 0,
        entries: names
            .iter()
            .map(|name| RosterEntry {
                name: (*name).to_owned(),
                ..RosterEntry::default()
            })
            .collect(),
    }
}

fn message(time_ms: i64, from: &str, text: &str, own: bool) -> ClientEvent {
    ClientEvent::Chat(ChatEvent::Message {
        time_ms,
        from: from.to_owned(),
        text: text.to_owned(),
        own,
    })
}

fn closed_by_server(reason: DisconnectReason, text: &str) -> ClientEvent {
    ClientEvent::Closed(CloseReason::Disconnected {
        reason,
        text: text.to_owned(),
    })
}

/// The frames among `datagrams` (a guest's text lines are left out).
fn frames(datagrams: &[Datagram]) -> Vec<Frame> {
    datagrams.iter().filter_map(Datagram::frame).collect()
}

/// How many datagrams among `datagrams` went to `to`.
fn count_to(datagrams: &[Datagram], to: SocketAddr) -> usize {
    datagrams.iter().filter(|d| d.to == to).count()
}

/// The server's events since the last look that `kind` picks, in order.
fn server_events_where(sim: &mut Sim, kind: impl Fn(&ServerEvent) -> bool) -> Vec<ServerEvent> {
    sim.take_server_events().into_iter().filter(kind).collect()
}

/// The operator's log since the last look: the server's events as the terminal shows them.
fn server_log(sim: &mut Sim) -> Vec<String> {
    sim.take_server_events()
        .iter()
        .map(|event| render::server_line(event, false))
        .collect()
}

/// The offset from UTC guests' clocks are given in these tests: not the test machine's.
fn guest_offset() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("a valid offset")
}

fn guest_sim() -> Sim {
    Sim::new(ServerConfig {
        guests: true,
        utc_offset: guest_offset(),
        ..ServerConfig::default()
    })
}
