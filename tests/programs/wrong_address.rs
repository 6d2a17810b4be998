//! A program pointed at the wrong kind of address: a peer (`--listen --peer`) at a server,
//! a client (`--server`) at a peer, either at something that answers in another protocol,
//! or at nothing at all. Each case must say exactly which it is.
//!
//! The cores first, without sockets and on a fake clock (the refusals are never larger than
//! the join they answer, so a forged join gains nothing), then the real binaries on
//! loopback, for the words people read and the exit statuses. Every wait has a deadline;
//! dropping a `Process` kills it.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use icq::bans::list::BanList;
use icq::client::{Client, ClientEvent, CloseReason};
use icq::peer::{Peer, PeerCloseReason, PeerConfig, PeerEvent};
use icq::proto::join::JOIN_TIMEOUT;
use icq::server::{Server, ServerConfig};
use icq::wire::{Frame, RefuseReason};
use icq::wire::{PeerFrame, ToClient, ToServer};

use crate::process;
use crate::process::{CLIENT_BIN, Process, Stdin, Stream, TestServer, WAIT, parse_listening_line};

/// Exit codes of `icq-client` (see its `--help`).
const EXIT_NO_ANSWER: i32 = 3;
const EXIT_REFUSED: i32 = 4;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// What a server sends back, as (destination, bytes).
fn server_output(server: &mut Server) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(transmit) = server.poll_transmit() {
        let mut bytes = Vec::new();
        transmit.write_to(&mut bytes);
        out.push((transmit.destination, bytes));
    }
    out
}

fn peer_closed(peer: &mut Peer) -> Option<PeerCloseReason> {
    std::iter::from_fn(|| peer.poll_event()).find_map(|event| match event {
        PeerEvent::Closed(reason) => Some(reason),
        _ => None,
    })
}

fn client_closed(client: &mut Client) -> Option<CloseReason> {
    std::iter::from_fn(|| client.poll_event()).find_map(|event| match event {
        ClientEvent::Closed(reason) => Some(reason),
        _ => None,
    })
}

#[test]
fn a_server_refuses_a_peer_join_as_a_server_in_fewer_bytes() {
    let now = Instant::now();
    let (server_addr, peer_addr) = (addr(4000), addr(5000));
    let mut server = Server::new(ServerConfig::default(), BanList::default(), now, 0);
    let config = PeerConfig::default();
    let mut peer = Peer::join("pat", vec![server_addr], config, BanList::default(), now, 0);
    let (to, join) = peer.poll_transmit().expect("the peer's join");
    assert_eq!(to, server_addr);
    let Ok(Frame::Peer(PeerFrame::Join { nonce, .. })) = Frame::decode(&join) else {
        panic!("not a peer join: {join:?}");
    };

    server.handle_datagram(now, peer_addr, &join);
    let answers = server_output(&mut server);
    assert_eq!(answers.len(), 1, "{answers:?}");
    let (to, refusal) = &answers[0];
    assert_eq!(*to, peer_addr);
    assert!(
        refusal.len() <= join.len() && refusal.len() == 13,
        "{refusal:?}"
    );
    let reason = RefuseReason::IsAServer;
    assert_eq!(
        Frame::decode(refusal),
        Ok(Frame::Peer(PeerFrame::Refused { nonce, reason }))
    );
    // Nobody joined, and no other peer frame is answered.
    assert!(server.clients(now).is_empty());
    peer.handle_datagram(now, server_addr, refusal);
    assert_eq!(
        peer_closed(&mut peer),
        Some(PeerCloseReason::Refused(RefuseReason::IsAServer))
    );
}

#[test]
fn a_peer_refuses_a_client_join_as_a_peer_in_fewer_bytes() {
    let now = Instant::now();
    let (peer_addr, client_addr) = (addr(5000), addr(6000));
    let config = PeerConfig::default();
    let mut peer = Peer::new_room("alice", config, BanList::default(), now, 0);
    let mut client = Client::new("bob", vec![peer_addr], now);
    let (to, join) = client.poll_transmit().expect("the client's join");
    assert_eq!(to, peer_addr);
    let Ok(Frame::ToServer(ToServer::Join { nonce, .. })) = Frame::decode(&join) else {
        panic!("not a join: {join:?}");
    };

    peer.handle_datagram(now, client_addr, &join);
    let (to, refusal) = peer.poll_transmit().expect("an answer");
    assert_eq!(to, client_addr);
    assert!(peer.poll_transmit().is_none());
    assert!(
        refusal.len() <= join.len() && refusal.len() == 13,
        "{refusal:?}"
    );
    let reason = RefuseReason::IsAPeer;
    assert_eq!(
        Frame::decode(&refusal),
        Ok(Frame::ToClient(ToClient::Refused { nonce, reason }))
    );
    client.handle_datagram(now, peer_addr, &refusal);
    assert_eq!(
        client_closed(&mut client),
        Some(CloseReason::Refused(RefuseReason::IsAPeer))
    );
}

#[test]
fn an_answer_in_another_protocol_is_told_apart_from_silence() {
    let start = Instant::now();
    let (there, elsewhere) = (addr(4000), addr(4001));
    let foreign = b"HTTP/1.1 400 Bad Request\r\n\r\n";

    // The client: garbage from the server's address, then nothing else that answers.
    let mut answered = Client::new("bob", vec![there], start);
    answered.handle_datagram(start, there, foreign);
    // The same garbage from another address says nothing about the server.
    let mut silent = Client::new("bob", vec![there], start);
    silent.handle_datagram(start, elsewhere, foreign);
    for client in [&mut answered, &mut silent] {
        client.handle_timeout(start + JOIN_TIMEOUT - Duration::from_millis(1));
        assert!(!client.is_closed(), "gave up early");
        client.handle_timeout(start + JOIN_TIMEOUT);
    }
    assert_eq!(
        client_closed(&mut answered),
        Some(CloseReason::ForeignAnswer)
    );
    assert_eq!(client_closed(&mut silent), Some(CloseReason::JoinTimedOut));

    // A peer, the same through the join attempt they share.
    let config = PeerConfig::default();
    let mut answered = Peer::join(
        "pat",
        vec![there],
        config.clone(),
        BanList::default(),
        start,
        0,
    );
    answered.handle_datagram(start, there, foreign);
    let mut silent = Peer::join("pat", vec![there], config, BanList::default(), start, 0);
    silent.handle_datagram(start, elsewhere, foreign);
    for peer in [&mut answered, &mut silent] {
        peer.handle_timeout(start + JOIN_TIMEOUT);
    }
    assert_eq!(
        peer_closed(&mut answered),
        Some(PeerCloseReason::ForeignAnswer)
    );
    assert_eq!(
        peer_closed(&mut silent),
        Some(PeerCloseReason::JoinTimedOut)
    );
}

/// Starts `icq-client --name NAME --listen 127.0.0.1:0 [--peer ADDR]` and reads the address
/// it listens on from its first line.
fn start_peer(name: &str, peer: Option<&str>) -> (Process, SocketAddr) {
    let mut command = Command::new(CLIENT_BIN);
    command.args(["--name", name, "--listen", "127.0.0.1:0"]);
    if let Some(peer) = peer {
        command.args(["--peer", peer]);
    }
    let mut process = Process::spawn(&format!("peer {name:?}"), command, Stdin::Piped);
    let first = process.expect_stream_line(Stream::Stdout, "-- listening on ", WAIT);
    let addr = parse_listening_line(&first)
        .unwrap_or_else(|| process.fail(&format!("no address in {first:?}")));
    (process, addr)
}

#[test]
fn a_peer_pointed_at_a_server_is_told_it_is_a_server() {
    let server = TestServer::start();
    let (mut pat, _) = start_peer("pat", Some(&server.address()));
    let line = pat.expect_stream_line(Stream::Stdout, "not a peer", WAIT);
    assert!(
        line.ends_with(&format!(
            "{} is an icq server, not a peer: to join it, use --server (without --listen)",
            server.address()
        )),
        "{line:?}"
    );
    assert_eq!(pat.wait_exit_code(WAIT), EXIT_REFUSED);
}

#[test]
fn a_client_pointed_at_a_peer_is_told_it_is_a_peer() {
    let (_alice, alice_addr) = start_peer("alice", None);
    let mut bob = process::start_client(&alice_addr.to_string(), "bob", &[]);
    let line = bob.expect_stream_line(Stream::Stdout, "not a server", WAIT);
    assert!(
        line.ends_with(&format!(
            "{alice_addr} is an icq peer, not a server: to join its room, use --listen and --peer"
        )),
        "{line:?}"
    );
    assert_eq!(bob.wait_exit_code(WAIT), EXIT_REFUSED);
}

/// A UDP service of another protocol on loopback: answers every datagram with a short
/// line of its own, until dropped.
struct ForeignService {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ForeignService {
    fn start() -> ForeignService {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("setting a read timeout");
        let addr = socket.local_addr().expect("the socket's address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buffer = [0u8; 2048];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok((_, from)) = socket.recv_from(&mut buffer) {
                    let _ = socket.send_to(b"ERR unknown command\r\n", from);
                }
            }
        });
        ForeignService {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ForeignService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_host_answering_in_another_protocol_is_not_called_silent() {
    let service = ForeignService::start();
    let target = service.addr.to_string();
    let mut bob = process::start_client(&target, "bob", &[]);
    let (mut pat, _) = start_peer("pat", Some(&target));
    let wanted = format!(
        "{target} answers, but not in icq's protocol: is the address right (the port above all)?"
    );
    for program in [&mut bob, &mut pat] {
        let line = program.expect_stream_line(Stream::Stdout, "not in icq's protocol", WAIT);
        assert!(line.ends_with(&wanted), "{line:?}");
        assert_eq!(program.wait_exit_code(WAIT), EXIT_NO_ANSWER);
    }
}
