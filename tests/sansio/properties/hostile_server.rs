//! The server core under hostile traffic: the sans-IO [`Server`] fed thousands of hostile
//! datagrams from any address (garbage, mutated frames, valid frames with random or learned
//! tokens, joins), time jumps and operator commands never panics; everything it sends is a
//! valid server-to-client frame or a guest's text line within [`MAX_DATAGRAM`]; it never
//! sends to an address that has not joined except in answer to that address; and (guests
//! off) it answers such an address with no more bytes than the datagram it answers, so no
//! more in total than it received from it. Garbage alone never makes anyone joined.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;

use icq::bans::list::BanList;
use icq::proto::flood::FloodLimit;
use icq::render;
use icq::server::{Server, ServerConfig, ServerEvent};
use icq::wire::{self, Frame, MAX_DATAGRAM, PeerFrame, ToClient, ToServer};

use crate::sim::room::{Seen, join_with_nonce};

use super::frames::{arb_client_frame, arb_cut_frame, arb_datagram, arb_frame};
use super::{arb_name, arb_string, arb_text, cases};

/// Addresses that come back, so sessions form and frames find them: loopback ports, the same
/// address written as IPv4-mapped IPv6, IPv6, a service port (53), the server's own address
/// (when the case sets it) and an address the case may ban.
fn pool() -> [SocketAddr; 8] {
    let v4 =
        |last: u8, port: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), port);
    [
        v4(1, 40001),
        v4(1, 40002),
        v4(1, 40003),
        SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped()),
            40001,
        ),
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 40005),
        v4(2, 53),
        v4(1, 4000),
        v4(9, 40009),
    ]
}

/// The pool address the case may ban (by IP: every port at it).
const BANNABLE: usize = 7;

/// Where a datagram comes from: a pool address, or any address at all (the core never
/// touches a network; these are only values).
#[derive(Debug, Clone)]
enum Source {
    Pool(usize),
    Any(SocketAddr),
}

fn arb_source() -> impl Strategy<Value = Source> {
    let any_v4 = (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| Source::Any(SocketAddr::new(IpAddr::V4(ip.into()), port)));
    let any_v6 = (any::<[u8; 16]>(), any::<u16>())
        .prop_map(|(ip, port)| Source::Any(SocketAddr::new(IpAddr::V6(ip.into()), port)));
    prop_oneof![6 => (0..pool().len()).prop_map(Source::Pool), 2 => any_v4, 1 => any_v6]
}

/// What a datagram holds.
#[derive(Debug, Clone)]
enum Payload {
    /// Bytes as generated: random, headed, mutated.
    Bytes(Vec<u8>),
    /// A valid frame as generated (random tokens: a forgery, or a stranger's).
    Frame(Frame),
    /// A valid frame carrying the token the server gave this address, if it has one, and a
    /// small sequence number, so it reaches the session's streams. Joins go as they are.
    Session(Frame),
    /// Plain text, as a guest (or `nc`) sends.
    Text(String),
}

#[derive(Debug, Clone)]
enum Op {
    Send {
        from: Source,
        payload: Payload,
    },
    /// Time passes by this many milliseconds; the timers run.
    Wait {
        ms: u32,
    },
    /// The operator types a line to broadcast.
    Say {
        text: String,
    },
    /// The operator kicks a name.
    Kick {
        name: String,
    },
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        2 => arb_datagram().prop_map(Payload::Bytes),
        1 => vec(any::<u8>(), MAX_DATAGRAM + 1..=4000).prop_map(Payload::Bytes),
        2 => arb_frame().prop_map(Payload::Frame),
        4 => arb_frame().prop_map(Payload::Session),
        1 => arb_string(40, 2000).prop_map(Payload::Text),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (arb_source(), arb_payload()).prop_map(|(from, payload)| Op::Send { from, payload }),
        3 => prop_oneof![0u32..100, 0u32..40_000].prop_map(|ms| Op::Wait { ms }),
        1 => arb_text().prop_map(|text| Op::Say { text }),
        1 => arb_name().prop_map(|name| Op::Kick { name }),
    ]
}

/// The settings a case runs with.
#[derive(Debug, Clone)]
struct Setup {
    guests: bool,
    max_clients: usize,
    flood: Option<(f64, u32)>,
    timeout_ms: u64,
    /// Which pool address the server is bound to, if it knows.
    local: Option<usize>,
    ban: bool,
    wall_ms: i64,
    /// Seconds east of UTC of guests' clocks.
    utc_offset: i32,
}

fn arb_setup() -> impl Strategy<Value = Setup> {
    record!(Setup {
        guests in any::<bool>(),
        max_clients in 1usize..=6,
        flood in prop_oneof![Just(None), Just(Some((5.0, 10))), Just(Some((0.5, 1)))],
        timeout_ms in prop_oneof![Just(30_000u64), 300u64..5_000],
        local in prop_oneof![Just(None), Just(Some(0)), Just(Some(6))],
        ban in any::<bool>(),
        wall_ms in prop_oneof![Just(0i64), Just(1_767_225_600_000), any::<i64>()],
        utc_offset in prop_oneof![Just(0i32), -86_399i32..=86_399],
    })
}

/// What the test knows about the run so far.
struct Watch {
    /// Addresses the server announced as joined (named or guest), ever.
    registered: HashSet<SocketAddr>,
    /// The token each address was last welcomed with.
    tokens: HashMap<SocketAddr, u64>,
    /// The nonce and cookie of the last challenge sent to each address, so a later join
    /// from there can pass the cookie check, as a real client's would.
    challenges: HashMap<SocketAddr, (u64, u64)>,
    bytes_in: HashMap<SocketAddr, usize>,
    bytes_out: HashMap<SocketAddr, usize>,
}

impl Watch {
    /// Collects what the server queued after one input from `from` (`None`: timers or the
    /// operator) and checks it: every datagram fits in [`MAX_DATAGRAM`] and is a valid
    /// server-to-client frame or a guest's text line; nothing goes to an address that has not
    /// joined, except the answer to `from`. Returns the bytes sent to `from` if it has not
    /// joined (0 if this input made it join). Then notes joins from the events.
    fn collect(
        &mut self,
        server: &mut Server,
        from: Option<SocketAddr>,
    ) -> Result<usize, TestCaseError> {
        let mut to_stranger = 0;
        let mut welcomed = false;
        while let Some(transmit) = server.poll_transmit() {
            let bytes = transmit.to_vec();
            let to = transmit.destination;
            prop_assert!(
                bytes.len() <= MAX_DATAGRAM,
                "{} bytes to {}",
                bytes.len(),
                to
            );
            if wire::is_frame(&bytes) {
                // A session's frames of one turn go packed, as a run.
                let frames = if wire::is_packed(&bytes) {
                    match wire::unpack_decoded(&bytes) {
                        Ok(frames) => frames.into_iter().map(Ok).collect(),
                        Err(error) => vec![Err(error)],
                    }
                } else {
                    vec![Frame::decode(&bytes)]
                };
                for frame in frames {
                    prop_assert!(
                        frame.as_ref().is_ok_and(|f| !f.travels_to_server()),
                        "server sent {:?}",
                        frame
                    );
                    if let Ok(Frame::ToClient(ToClient::Welcome { token, .. })) = frame {
                        self.tokens.insert(to, token);
                        welcomed |= Some(to) == from;
                    }
                    if let Ok(Frame::ToClient(ToClient::Challenge { nonce, cookie })) = frame {
                        self.challenges.insert(to, (nonce, cookie));
                    }
                }
            } else {
                let text = std::str::from_utf8(&bytes);
                prop_assert!(
                    text.is_ok_and(|t| t.ends_with('\n') && !t.contains('\u{1b}')),
                    "server sent {:?}",
                    bytes
                );
            }
            *self.bytes_out.entry(to).or_default() += bytes.len();
            if !self.registered.contains(&to) {
                prop_assert_eq!(
                    Some(to),
                    from,
                    "{} bytes to {}, which never joined, while handling input from {:?}",
                    bytes.len(),
                    to,
                    from
                );
                to_stranger += bytes.len();
            }
        }
        while let Some(event) = server.poll_event() {
            let _ = render::server_line(&event, false);
            if let ServerEvent::Joined { addr, .. } = event {
                self.registered.insert(addr);
            }
        }
        if welcomed {
            // Only a join whose cookie proved that `from` receives at its address is
            // welcomed: what comes with the welcome (the roster, the history's replay) may
            // be larger than the join.
            return Ok(0);
        }
        Ok(to_stranger)
    }
}

/// What a case may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Everything the ops say, with the tokens the server handed out.
    Everything,
    /// What an off-path attacker can send: no valid join (those ops are skipped) and no
    /// learned token, so no address ever joins (unless as a guest).
    Garbage,
}

/// The session token a frame carries, to change it.
fn token_mut(frame: &mut Frame) -> Option<&mut u64> {
    match frame {
        Frame::ToServer(ToServer::Heartbeat { token, .. })
        | Frame::ToServer(ToServer::ClientAck { token, .. })
        | Frame::ToClient(ToClient::Welcome { token, .. })
        | Frame::ToClient(ToClient::ServerAck { token, .. })
        | Frame::ToClient(ToClient::LeaveAck { token })
        | Frame::ToClient(ToClient::NotJoined { token })
        | Frame::ToClient(ToClient::Probe { token })
        | Frame::Peer(PeerFrame::Ack { token, .. })
        | Frame::Peer(PeerFrame::NotMember { token, .. }) => Some(token),
        other => other.envelope_mut().map(|envelope| &mut envelope.token),
    }
}

/// Runs `ops` against a fresh server set up as `setup` says, checking after every input.
fn run_server(setup: &Setup, ops: &[Op], mode: Mode) -> Result<(), TestCaseError> {
    let pool = pool();
    let config = ServerConfig {
        flood_limit: setup
            .flood
            .and_then(|(rate, burst)| FloodLimit::from_options(rate, burst)),
        timeout: Duration::from_millis(setup.timeout_ms),
        guests: setup.guests,
        max_clients: setup.max_clients,
        // Several pool addresses share an IP; flood kicks are exercised by the flood limit.
        max_per_ip: Some(4),
        flood_kick: Some(2),
        hash_seed: 7,
        utc_offset: chrono::FixedOffset::east_opt(setup.utc_offset).expect("within a day"),
        // Small, so joins replay a full history and lines are trimmed from it.
        history: 8,
        replay: 4,
        // Small, so rooms grow past it and go quiet.
        quiet_above: 5,
    };
    let bans = if setup.ban {
        BanList::parse(&pool[BANNABLE].ip().to_string()).0
    } else {
        BanList::default()
    };
    let mut now = Instant::now();
    let mut server = Server::new(config, bans, now, setup.wall_ms);
    if let Some(local) = setup.local {
        server.set_local_address(pool[local]);
    }
    let mut watch = Watch {
        registered: HashSet::new(),
        tokens: HashMap::new(),
        challenges: HashMap::new(),
        bytes_in: HashMap::new(),
        bytes_out: HashMap::new(),
    };
    for op in ops {
        match op {
            Op::Send { from, payload } => {
                let from = match from {
                    Source::Pool(index) => pool[*index],
                    Source::Any(addr) => *addr,
                };
                let bytes = match payload {
                    Payload::Bytes(bytes) => bytes.clone(),
                    Payload::Frame(frame) => match (mode, frame, watch.challenges.get(&from)) {
                        (
                            Mode::Everything,
                            Frame::ToServer(ToServer::Join { name, .. }),
                            Some(&(nonce, cookie)),
                        ) => join_with_nonce(nonce, name, cookie, Seen::NOTHING).to_bytes(),
                        _ => frame.to_bytes(),
                    },
                    Payload::Session(frame) => {
                        let mut frame = frame.clone();
                        if let Some(envelope) = frame.envelope_mut() {
                            envelope.seq %= 70;
                        }
                        if let (Mode::Everything, Some(token), Some(slot)) =
                            (mode, watch.tokens.get(&from), token_mut(&mut frame))
                        {
                            *slot = *token;
                        }
                        frame.to_bytes()
                    }
                    Payload::Text(text) => text.clone().into_bytes(),
                };
                if mode == Mode::Garbage
                    && matches!(
                        Frame::decode(&bytes),
                        Ok(Frame::ToServer(ToServer::Join { .. }))
                    )
                {
                    continue;
                }
                let stranger = !watch.registered.contains(&from);
                *watch.bytes_in.entry(from).or_default() += bytes.len();
                server.handle_datagram(now, from, &bytes);
                let answer = watch.collect(&mut server, Some(from))?;
                if stranger && !setup.guests {
                    prop_assert!(
                        answer <= bytes.len(),
                        "amplification: {} bytes in from {} ({:?}), {} bytes back",
                        bytes.len(),
                        from,
                        Frame::decode(&bytes),
                        answer
                    );
                }
            }
            Op::Wait { ms } => {
                now += Duration::from_millis(u64::from(*ms));
                server.handle_timeout(now);
                watch.collect(&mut server, None)?;
            }
            Op::Say { text } => {
                server.say(now, text);
                watch.collect(&mut server, None)?;
            }
            Op::Kick { name } => {
                let _ = server.kick(now, name);
                watch.collect(&mut server, None)?;
            }
        }
        if let Some(deadline) = server.poll_timeout() {
            // Calling early is harmless; calling when due is what the binary does.
            if deadline <= now {
                server.handle_timeout(now);
                watch.collect(&mut server, None)?;
            }
        }
    }
    prop_assert!(server.clients(now).len() <= setup.max_clients);
    server.shutdown(now);
    watch.collect(&mut server, None)?;
    if !setup.guests {
        if mode == Mode::Garbage {
            prop_assert!(watch.registered.is_empty(), "{:?} joined", watch.registered);
        }
        for (addr, &sent) in &watch.bytes_out {
            if !watch.registered.contains(addr) {
                let received = watch.bytes_in.get(addr).copied().unwrap_or(0);
                prop_assert!(sent <= received, "{addr}: {received} bytes in, {sent} out");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(4000))]

    /// One datagram from an address that never joined, to a server with one client: the
    /// answer is never larger than the datagram (no amplification, no reflection).
    #[test]
    fn a_stranger_gets_back_no_more_bytes_than_it_sent(
        setup in arb_setup(),
        datagram in prop_oneof![
            1 => arb_datagram(),
            2 => arb_cut_frame(arb_client_frame()),
            1 => arb_client_frame().prop_map(|frame| frame.to_bytes()),
        ],
    ) {
        let join = join_with_nonce(1, "alice", 0, Seen::NOTHING);
        let ops = [
            Op::Send { from: Source::Pool(0), payload: Payload::Frame(join) },
            Op::Send { from: Source::Pool(1), payload: Payload::Bytes(datagram) },
        ];
        let setup = Setup { guests: false, ..setup };
        run_server(&setup, &ops, Mode::Everything)?;
    }
}

proptest! {
    #![proptest_config(cases(64))]

    /// Everything at once: garbage, forgeries, real joins and session traffic with the
    /// tokens the server handed out, time jumps, the operator talking and kicking.
    #[test]
    fn the_server_core_survives_hostile_traffic(
        setup in arb_setup(),
        ops in vec(arb_op(), 1..=600),
    ) {
        run_server(&setup, &ops, Mode::Everything)?;
    }

    /// Only what an off-path attacker can send: garbage, mutated frames and frames with
    /// guessed tokens, from any address, and never a valid join.
    #[test]
    fn the_server_core_survives_garbage_from_anywhere(
        setup in arb_setup(),
        ops in vec(arb_op(), 1..=600),
    ) {
        run_server(&setup, &ops, Mode::Garbage)?;
    }
}
