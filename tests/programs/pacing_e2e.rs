//! The flood limit, pacing and outages with the real binaries over loopback: a paste
//! bigger than the burst is paced by the client (server and peer mode) and arrives whole;
//! a program that does not pace itself is still cut; a server killed and started again
//! gets what was typed meanwhile, and every client carries on.
//!
//! This file owns those end-to-end checks; the rules themselves are tested with a fake
//! clock in `tests/sansio/server_client.rs` and `tests/sansio/peers.rs`, the harness is `process`.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{
    CLIENT_BIN, LineMatcher, Process, ServerOptions, Stdin, Stream, TestServer, WAIT, join_client,
    matching, parse_listening_line, send_signal, split_stamp,
};
use icq::wire::{Delivery, Envelope, Frame, Request, ToClient, ToServer};

/// `[HH:MM:SS] FROM: TEXT`, exactly (the bell byte after it aside).
fn message_from(from: &str, text: &str) -> impl LineMatcher + use<> {
    let wanted = format!("{from}: {text}");
    matching(format!("a message `{wanted}`"), move |line: &str| {
        split_stamp(line).is_some_and(|(_, rest)| rest.trim_end_matches('\u{7}') == wanted)
    })
}

/// `[HH:MM:SS] -- TEXT...`.
fn notice_starting(prefix: &str) -> impl LineMatcher + use<> {
    let wanted = format!("-- {prefix}");
    matching(
        format!("a notice starting `{wanted}`"),
        move |line: &str| split_stamp(line).is_some_and(|(_, rest)| rest.starts_with(&wanted)),
    )
}

/// Whether any line `process` printed so far contains `text`.
fn said(process: &mut Process, text: &str) -> bool {
    process.seen().iter().any(|line| line.text.contains(text))
}

/// Expects `lines` from `from`, in this order, each before `deadline`.
fn expect_in_order(process: &mut Process, from: &str, lines: &[String], deadline: Instant) {
    for line in lines {
        let left = deadline.saturating_duration_since(Instant::now());
        process.expect_line(message_from(from, line), left);
    }
}

fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix} {i}")).collect()
}

#[test]
fn thirty_lines_piped_at_once_all_arrive_in_order_within_ten_seconds() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    let lines = numbered("paste", 30);
    let start = Instant::now();
    for line in &lines {
        alice.send_line(line);
    }
    alice.expect_line(
        notice_starting("20 lines queued (sending 5 a second)"),
        WAIT,
    );
    expect_in_order(&mut bob, "alice", &lines, start + Duration::from_secs(10));
    // Nobody was cut, warned or kicked.
    alice.expect_line(message_from("alice", "paste 29"), WAIT);
    assert!(!said(&mut alice, "too fast"), "{}", alice.transcript());
    assert!(
        !said(&mut server.process, "flood"),
        "{}",
        server.process.transcript()
    );
    alice.send_line("/exit");
    assert_eq!(alice.wait_exit_code(WAIT), 0);
}

#[test]
fn a_hundred_and_fifty_piped_lines_all_arrive_in_order_and_nobody_is_kicked() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut bob = join_client(&server.address(), "bob", &[]);
    let lines = numbered("file line", 150);
    let start = Instant::now();
    for line in &lines {
        alice.send_line(line);
    }
    // The end of a script's input: everything queued still goes, at the server's pace.
    alice.close_stdin();
    // 10 at once, then 5 a second: 28 s, and some room for a loaded machine.
    expect_in_order(&mut bob, "alice", &lines, start + Duration::from_secs(45));
    assert_eq!(alice.wait_exit_code(WAIT), 0, "{}", alice.transcript());
    assert!(!said(&mut alice, "too fast"), "{}", alice.transcript());
    assert!(!said(&mut alice, "not sent"), "{}", alice.transcript());
    assert!(
        !said(&mut server.process, "flood"),
        "{}",
        server.process.transcript()
    );
    bob.expect_line(notice_starting("alice left"), WAIT);
}

/// Starts `icq-client --name NAME --listen 127.0.0.1:0 [--peer ADDR]` and reads its
/// address from its first line.
fn start_peer(name: &str, through: Option<SocketAddr>) -> (Process, SocketAddr) {
    let mut command = Command::new(CLIENT_BIN);
    command
        .arg("--name")
        .arg(name)
        .arg("--listen")
        .arg("127.0.0.1:0");
    if let Some(through) = through {
        command.arg("--peer").arg(through.to_string());
    }
    let mut process = Process::spawn(&format!("peer {name:?}"), command, Stdin::Piped);
    let first = process.expect_stream_line(Stream::Stdout, "-- listening on ", WAIT);
    let addr = parse_listening_line(&first)
        .unwrap_or_else(|| process.fail(&format!("no address in {first:?}")));
    if through.is_some() {
        process.expect_line(notice_starting("joined the room through "), WAIT);
    }
    (process, addr)
}

#[test]
fn thirty_lines_piped_at_once_to_a_peer_all_arrive_in_order_within_ten_seconds() {
    let (mut ann, ann_addr) = start_peer("ann", None);
    let (mut bob, _) = start_peer("bob", Some(ann_addr));
    ann.expect_line(notice_starting("bob joined"), WAIT);
    let lines = numbered("peer paste", 30);
    let start = Instant::now();
    for line in &lines {
        bob.send_line(line);
    }
    bob.expect_line(
        notice_starting("20 lines queued (sending 5 a second)"),
        WAIT,
    );
    expect_in_order(&mut ann, "bob", &lines, start + Duration::from_secs(10));
    assert!(!said(&mut ann, "sent too fast"), "{}", ann.transcript());
    assert!(!said(&mut bob, "too fast"), "{}", bob.transcript());
}

/// A program that speaks the protocol but does not pace itself (not an icq-client).
struct RawClient {
    socket: UdpSocket,
    server: SocketAddr,
    token: u64,
}

impl RawClient {
    /// Joins as `name`: join, challenge, join with the cookie, welcome.
    fn join(server: SocketAddr, name: &str) -> RawClient {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        let deadline = Instant::now() + WAIT;
        let mut cookie = 0;
        while Instant::now() < deadline {
            let join = Frame::ToServer(ToServer::Join {
                nonce: 77,
                cookie,
                previous_token: 0,
                history_epoch: 0,
                history_seen: 0,
                name: name.to_owned(),
            });
            socket.send_to(&join.to_bytes(), server).expect("send");
            let mut buffer = [0u8; 2048];
            let Ok((len, _)) = socket.recv_from(&mut buffer) else {
                continue;
            };
            match Frame::decode(&buffer[..len]) {
                Ok(Frame::ToClient(ToClient::Challenge { cookie: c, .. })) => cookie = c,
                Ok(Frame::ToClient(ToClient::Welcome { token, .. })) => {
                    return RawClient {
                        socket,
                        server,
                        token,
                    };
                }
                _ => {}
            }
        }
        panic!("the raw client was not welcomed");
    }

    fn chat(&self, seq: u32, text: &str) {
        let chat = Frame::ToServer(ToServer::Sequenced(
            Envelope {
                token: self.token,
                seq,
                acks: Default::default(),
            },
            Request::Chat {
                sent_ms: 0,
                text: text.to_owned(),
            },
        ));
        self.socket
            .send_to(&chat.to_bytes(), self.server)
            .expect("send");
    }

    /// Waits for a notice containing `text`, reading (and not acknowledging) frames.
    fn expect_notice(&self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut buffer = [0u8; 2048];
        while Instant::now() < deadline {
            let Ok((len, _)) = self.socket.recv_from(&mut buffer) else {
                continue;
            };
            if let Ok(Frame::ToClient(ToClient::Sequenced(
                _,
                Delivery::Notice { text: notice, .. },
            ))) = Frame::decode(&buffer[..len])
                && notice.contains(text)
            {
                return notice;
            }
        }
        panic!("no notice containing {text:?}");
    }
}

#[test]
fn a_program_that_does_not_pace_itself_is_still_cut_to_the_burst() {
    const SENT: u32 = 40;
    let mut server = TestServer::start();
    let mut bob = join_client(&server.address(), "bob", &[]);
    let mallory = RawClient::join(server.addr, "mallory");
    for seq in 1..=SENT {
        mallory.chat(seq, &format!("flood {seq}"));
    }
    let notice = mallory.expect_notice("not sent: you are sending too fast");
    let dropped: u32 = notice
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    server.process.expect_line(
        notice_starting(&format!(
            "flood: dropped {dropped} message(s) from mallory ("
        )),
        WAIT,
    );
    bob.expect_line(message_from("mallory", "flood 10"), WAIT);
    let delivered = bob
        .seen()
        .iter()
        .filter(|l| l.text.contains("mallory: flood "))
        .count() as u32;
    assert!(
        delivered >= 10 && delivered + dropped <= SENT,
        "{delivered} + {dropped}"
    );
}

/// Binds `addr`, the port a killed server let go, so that no other socket takes it before
/// the server comes back there (under load, another test's socket may be given it, and
/// hold it for a moment: bound tries until `within` passes). The clients' sockets are not
/// connected, so for them a port held in silence is no different from a closed one.
fn hold_port(addr: SocketAddr, within: Duration) -> UdpSocket {
    let deadline = Instant::now() + within;
    loop {
        match UdpSocket::bind(addr) {
            Ok(socket) => return socket,
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot hold {addr} for the restarted server: {e}"),
        }
    }
}

/// Kills the server with SIGKILL, lets `alice` type a line, starts a new server on the
/// same port `outage` later, and checks that the line reaches it and that both clients
/// carry on.
fn survive_a_restart(outage: Duration) {
    let mut old = TestServer::start();
    let addr = old.address();
    let mut alice = join_client(&addr, "alice", &[]);
    let mut bob = join_client(&addr, "bob", &[]);
    send_signal(&old.process, "KILL");
    old.process.wait_exit(WAIT);
    let killed_at = Instant::now();
    let held = hold_port(old.addr, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    alice.send_line("typed during the outage");
    // The outage itself: how long the server stays away is the scenario, not a wait.
    std::thread::sleep(outage.saturating_sub(killed_at.elapsed()));
    // Handed over at the last moment: the new server binds it a few milliseconds later.
    drop(held);
    let mut server = TestServer::start_with(ServerOptions::default().bind(&addr));
    assert_eq!(
        server.addr, old.addr,
        "the server is back on the same address"
    );
    // Rejoining backs off to 30 s at most between tries; the idle bob learns of it from
    // his next heartbeat (every 10 s).
    let back = Duration::from_secs(35);
    server
        .process
        .expect_line(message_from("alice", "typed during the outage"), back);
    alice.expect_line(notice_starting("back in the chat as alice"), WAIT);
    alice.expect_line(message_from("alice", "typed during the outage"), WAIT);
    bob.expect_line(notice_starting("back in the chat as bob"), back);
    // What alice said while bob was away reaches him too: live if he was back first, else
    // from the new server's history (a new epoch: everything it holds).
    bob.expect_line(message_from("alice", "typed during the outage"), WAIT);
    // Every client carries on.
    bob.send_line("still here");
    alice.expect_line(message_from("bob", "still here"), WAIT);
    alice.send_line("me too");
    bob.expect_line(message_from("alice", "me too"), WAIT);
    for client in [&mut alice, &mut bob] {
        assert!(
            client.try_exit_status().is_none(),
            "{}",
            client.transcript()
        );
        assert!(!said(client, "not delivered"), "{}", client.transcript());
        assert!(!said(client, "too fast"), "{}", client.transcript());
    }
    alice.send_line("/exit");
    assert_eq!(alice.wait_exit_code(WAIT), 0);
}

#[test]
fn a_server_killed_and_started_again_3_s_later_gets_the_line_typed_meanwhile() {
    survive_a_restart(Duration::from_secs(3));
}

#[test]
fn a_server_killed_and_started_again_20_s_later_gets_the_line_typed_meanwhile() {
    survive_a_restart(Duration::from_secs(20));
}
