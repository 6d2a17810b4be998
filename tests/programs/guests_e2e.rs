//! End to end with raw `UdpSocket`s playing plain-text guests (`--guests`) beside the real
//! `icq-server` and `icq-client`: what a guest sends and is sent, its commands, its clock and
//! its eviction. [`Guest`] is the socket, also used by `e2e`'s tests as a witness.
//! Every wait has a deadline (see `process::WAIT`); nothing sleeps "long enough".

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::e2e::{QUIET_PERIOD, message_from, names, notice, notice_starting, server_list};
use crate::process::{
    LineMatcher, ServerOptions, TestServer, WAIT, join_client, matching, split_stamp,
};
/// A raw UDP socket speaking plain text to the server, as `nc -u` or a class's Python
/// client would: every datagram it gets is split into lines.
pub(crate) struct Guest {
    pub(crate) socket: UdpSocket,
    server: SocketAddr,
    /// Every line received, in order.
    lines: Vec<String>,
    /// Index of the first line no wait has consumed.
    cursor: usize,
}

impl Guest {
    /// A guest socket on `ip` (any port), talking to `server`.
    pub(crate) fn bind(ip: &str, server: SocketAddr) -> Guest {
        let socket = UdpSocket::bind((ip, 0)).expect("bind the guest socket");
        Guest {
            socket,
            server,
            lines: Vec::new(),
            cursor: 0,
        }
    }

    /// `guest-IP:PORT`, the name the server gives this guest.
    pub(crate) fn name(&self) -> String {
        format!("guest-{}", self.socket.local_addr().expect("local address"))
    }

    pub(crate) fn send(&self, text: &str) {
        self.socket
            .send_to(text.as_bytes(), self.server)
            .expect("send from the guest");
    }

    /// Waits up to `within` for a line matching `wanted` after the cursor; panics with every
    /// line received otherwise.
    pub(crate) fn expect_line(&mut self, wanted: impl LineMatcher, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut index = self.cursor;
        loop {
            while index < self.lines.len() {
                if wanted.is_match(&self.lines[index]) {
                    self.cursor = index + 1;
                    return self.lines[index].clone();
                }
                index += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "guest {}: expected line not received within {within:?}; got {:#?}",
                    self.name(),
                    self.lines
                );
            }
            if let Some((bytes, from)) = self.receive(left) {
                assert_eq!(from, self.server, "a datagram from someone else: {bytes:?}");
                let text = String::from_utf8(bytes).expect("guests are sent UTF-8");
                assert!(
                    text.ends_with('\n'),
                    "a guest datagram is whole lines: {text:?}"
                );
                self.lines.extend(text.lines().map(str::to_owned));
            }
        }
    }

    /// One datagram, or `None` if nothing came within `within`. A signal to this process
    /// (the tests share it) interrupts the wait; it goes on for what is left of `within`.
    pub(crate) fn receive(&self, within: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let deadline = Instant::now() + within;
        let mut buffer = [0u8; 65_536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("set the guest's read timeout");
            match self.socket.recv_from(&mut buffer) {
                Ok((len, from)) => return Some((buffer[..len].to_vec(), from)),
                Err(e) if e.kind() == ErrorKind::Interrupted && !left.is_zero() => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    return None;
                }
                Err(e) => panic!("guest receive failed: {e}"),
            }
        }
    }
}

#[test]
fn a_raw_udp_guest_chats_in_plain_text_when_guests_are_on() {
    let mut server = TestServer::start_with(ServerOptions::default().args(&["--guests"]));
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut guest = Guest::bind("127.0.0.1", server.addr);
    let guest_name = guest.name();

    guest.send("hi from a socket\n");
    // Everyone, the guest included, gets the line under the guest's address-based name.
    alice.expect_line(message_from(&guest_name, "hi from a socket"), WAIT);
    guest.expect_line(message_from(&guest_name, "hi from a socket"), WAIT);
    server.process.expect_line(
        notice(&format!(
            "{guest_name} joined from {} (guest)",
            &guest_name["guest-".len()..]
        )),
        WAIT,
    );

    alice.send_line("hi guest");
    let line = guest.expect_line(message_from("alice", "hi guest"), WAIT);
    let (clock, rest) = split_stamp(&line).expect("a time stamp");
    assert_eq!(rest, "alice: hi guest", "plain text, no bell: {line:?}");
    assert_eq!(clock.len(), 8);

    let rows = server_list(&mut server);
    let guest_row = rows
        .iter()
        .find(|r| r.name == guest_name)
        .unwrap_or_else(|| panic!("the guest is listed: {rows:?}"));
    assert!(guest_row.rest.ends_with("(guest)"), "{guest_row:?}");
}

/// The server binary gives its core the local offset from UTC (the core reads no time
/// zone): a guest's clock, like the console's, is the server's local time. The zone is 5 h
/// 30 east of UTC, written the POSIX way so that no zone file is needed.
#[test]
fn a_guests_clock_is_the_servers_local_time() {
    let options = ServerOptions::default()
        .args(&["--guests"])
        .env("TZ", "XYZ-5:30");
    let mut server = TestServer::start_with(options);
    let mut guest = Guest::bind("127.0.0.1", server.addr);
    let guest_name = guest.name();
    let before_ms = chrono::Utc::now().timestamp_millis();
    guest.send("what time is it\n");
    let line = guest.expect_line(message_from(&guest_name, "what time is it"), WAIT);
    let after_ms = chrono::Utc::now().timestamp_millis();
    let (clock, _) = split_stamp(&line).expect("a time stamp");
    let east = chrono::FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("a valid offset");
    let possible: Vec<String> = (before_ms.div_euclid(1000)..=after_ms.div_euclid(1000))
        .map(|second| icq::text::clock(second * 1000, east))
        .collect();
    assert!(
        possible.iter().any(|c| c == clock),
        "{line:?}, not one of {possible:?}"
    );
    let logged = server
        .process
        .expect_line(message_from(&guest_name, "what time is it"), WAIT);
    assert_eq!(split_stamp(&logged).map(|(clock, _)| clock), Some(clock));
}

#[test]
fn a_guests_slash_lines_are_commands_never_chat() {
    let mut server = TestServer::start_with(ServerOptions::default().args(&["--guests"]));
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut guest = Guest::bind("127.0.0.1", server.addr);
    let name = guest.name();
    guest.send("/list\n");
    guest.expect_line(notice(&format!("2 online: alice, {name} (guest)")), WAIT);
    guest.send("/nick carol\n");
    guest.expect_line(notice("you are now known as carol"), WAIT);
    alice.expect_line(notice(&format!("{name} is now known as carol")), WAIT);
    guest.send("//slash at the start\n");
    alice.expect_line(message_from("carol", "/slash at the start"), WAIT);
    guest.send("/me waves\n");
    alice.expect_line(
        matching("the action `[HH:MM:SS] * carol waves`", |line: &str| {
            split_stamp(line)
                .is_some_and(|(_, rest)| rest.trim_end_matches('\u{7}') == "* carol waves")
        }),
        WAIT,
    );
    alice.send_line("/list");
    alice.expect_line(notice("2 online: alice, carol (guest)"), WAIT);
    guest.send("/exit\n");
    guest.expect_line(notice("you left the chat"), WAIT);
    alice.expect_line(notice("carol left"), WAIT);
    // Nothing the guest typed after a slash reached anyone as chat.
    for command in ["/list", "/nick", "/me", "/exit"] {
        assert!(
            !alice.seen().iter().any(|line| line.text.contains(command)),
            "a guest's {command} was relayed as chat"
        );
    }
    assert_eq!(names(&server_list(&mut server)), ["alice"]);
}

#[test]
fn a_raw_udp_guest_gets_nothing_when_guests_are_off() {
    let mut server = TestServer::start();
    let mut alice = join_client(&server.address(), "alice", &[]);
    let guest = Guest::bind("127.0.0.1", server.addr);
    let guest_addr = guest.socket.local_addr().expect("guest address");

    guest.send("anyone there?\n");
    // The datagram did arrive: the server logged and dropped it.
    server.process.expect_line(
        notice_starting(&format!("ignored a malformed datagram from {guest_addr}: ")),
        WAIT,
    );
    if let Some((bytes, from)) = guest.receive(QUIET_PERIOD) {
        panic!(
            "guests are off, yet the guest got {:?} from {from}",
            String::from_utf8_lossy(&bytes)
        );
    }
    // Nothing reached alice either: her own later message arrives with nothing before it.
    alice.send_line("marker");
    alice.expect_line(message_from("alice", "marker"), WAIT);
    assert!(
        !alice
            .seen()
            .iter()
            .any(|l| l.text.contains("anyone there?")),
        "a guest's text was relayed with guests off"
    );
    assert_eq!(names(&server_list(&mut server)), ["alice"]);
}

#[test]
fn a_silent_guest_is_evicted_while_an_idle_client_is_kept_alive_by_heartbeats() {
    // Evictions need a short timeout; 2 s leaves heartbeats (every 2/3 s) a wide margin on a
    // loaded machine.
    let mut server =
        TestServer::start_with(ServerOptions::default().args(&["--guests", "--timeout", "2"]));
    let mut alice = join_client(&server.address(), "alice", &[]);
    let mut guest = Guest::bind("127.0.0.1", server.addr);
    let guest_name = guest.name();
    guest.send("hello, then silence\n");
    guest.expect_line(message_from(&guest_name, "hello, then silence"), WAIT);

    // Alice joined before the guest and typed nothing since, so when the guest times out
    // she has been idle longer than the timeout too: only her heartbeats keep her.
    guest.expect_line(
        matching("the guest's timeout notice", |line: &str| {
            line.contains("you were silent for too long")
        }),
        WAIT,
    );
    alice.expect_line(notice(&format!("{guest_name} timed out")), WAIT);
    server
        .process
        .expect_line(notice_starting(&format!("{guest_name} timed out (")), WAIT);
    assert_eq!(names(&server_list(&mut server)), ["alice"]);
    assert!(alice.try_exit_status().is_none(), "alice was dropped");
    alice.send_line("still here");
    alice.expect_line(message_from("alice", "still here"), WAIT);
}
