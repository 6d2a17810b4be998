//! Plain-text guests (`nc -u host 4000`, when the server runs with `--guests`).
//!
//! Owns turning a guest's datagram into lines and commands, a guest joining by its first
//! line, the lines a guest is sent (chat, notices, the roster) as plain text.
//!
//! It does not own the room's rules that guests share with named clients (`room`: the
//! flood limit, broadcast), or the front door's bans and forged addresses (`front`).

use super::*;

impl Server {
    /// A guest's datagram: one or more plain text lines. The first one registers the guest.
    pub(super) fn handle_guest_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) {
        let Ok(text) = std::str::from_utf8(datagram) else {
            return self.note_malformed(now, from, "guest text is not valid UTF-8");
        };
        if !self.sessions.contains_key(&from) {
            if from.port() < 1024 || self.own_address.port() == Some(from.port()) {
                // Plain text from a well-known service port (echo, chargen, DNS...) or from
                // another chat server's port is a forgery meant to start an endless
                // exchange: every line we send there would come back as a new line.
                return self.note_malformed(now, from, "guest text from a service port");
            }
            if self.cooling_down(now, from) {
                return self.note_malformed(now, from, "guest kicked for flooding a moment ago");
            }
            if self.sessions.len() >= self.config.max_clients {
                return self.note_malformed(now, from, "guest refused: server full");
            }
            if self.at_per_ip_cap(from) {
                return self.note_malformed(now, from, "guest refused: too many from this IP");
            }
            // IPv4 peers of a server bound to [::] appear as ::ffff:a.b.c.d; name them by the
            // address people know.
            let shown = SocketAddr::new(from.ip().to_canonical(), from.port());
            let name = format!("{}{shown}", names::GUEST_PREFIX);
            let name_key = names::key(&name);
            self.add_session(now, from, name, name_key, None);
        }
        if let Some(session) = self.sessions.get_mut(&from) {
            // Owed lateness is for the silence that ends now (see `Session::catch_up`).
            session.catch_up(now, &self.lateness);
            session.last_heard = now;
        }
        // `lines` also drops the `\r` of a `\r\n`, as sent by some terminals and netcat -C.
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            if !self.sessions.contains_key(&from) {
                break; // it said /exit
            }
            self.handle_guest_line(now, from, line);
        }
    }

    /// One line from a guest: a command when it starts with `/` (the client's commands, read
    /// by the client's parser), chat otherwise (`//text` is the chat line `/text`). What a
    /// command answers goes to the guest only.
    fn handle_guest_line(&mut self, now: Instant, from: SocketAddr, line: &str) {
        let time_ms = self.clock.wall_ms(now);
        let command = match command::parse(line, Side::Client) {
            Ok(Input::Empty) => return,
            Ok(Input::Text(text)) => return self.handle_chat(now, from, &text),
            Ok(Input::Command(command)) => command,
            Err(error) => {
                // An answer the guest did not pay for with a datagram of its size: it
                // costs a flood token, like everything a guest makes us send.
                if self.admit_under_flood_limit(now, from) {
                    self.send_notice_to(now, from, time_ms, &error.to_string());
                }
                return;
            }
        };
        match command {
            Command::Msg { to, text } => self.handle_private(now, from, &to, &text),
            Command::Me { text } => self.handle_action(now, from, &text),
            Command::Nick { name } => self.handle_nick(now, from, name),
            Command::Away { reason } => {
                let reason = reason.as_deref().unwrap_or(AWAY_WITHOUT_REASON);
                self.handle_away(now, from, reason)
            }
            Command::Back => self.handle_away(now, from, ""),
            Command::Exit => {
                self.send_notice_to(now, from, time_ms, "you left the chat");
                self.remove_session(now, from, Removal::Left);
            }
            Command::List if self.admit_under_flood_limit(now, from) => {
                self.send_roster(now, from, Listing::Everyone)
            }
            Command::Help if self.admit_under_flood_limit(now, from) => {
                let mut text = String::new();
                for line in command::help_lines(Side::Client) {
                    text.push_str(&line);
                    text.push('\n');
                }
                self.push(from, text.into_bytes().into());
            }
            // Over the flood limit (counted and reported like chat), or a server command,
            // which the client's parser never returns.
            _ => {}
        }
    }

    /// A guest's `/list`: one line, `-- 3 online: alice, bob, carol`, in one datagram (a
    /// guest never proved its address: the answer to its few bytes stays small), ending
    /// `and N more` when not everyone fits. Only the people shown are looked at, in the
    /// roster's order: a `/list` in a large room costs what one datagram holds.
    pub(super) fn send_guest_roster(&mut self, to: SocketAddr, time_ms: i64) {
        // Room for the clock, the newline, and "and 100000 more".
        const RESERVE: usize = 40;
        let people = self.roster.len();
        let entries = self
            .roster
            .in_order()
            .filter_map(|addr| self.sessions.get(&addr))
            .map(|s| RosterEntry {
                name: s.name.clone(),
                away: s.away.clone().unwrap_or_default(),
                guest: s.kind == ClientKind::Guest,
            });
        let (mut words, shown) =
            text::online_text_within(people, 0, entries, wire::MAX_DATAGRAM - RESERVE);
        if shown < people {
            words.push_str(&format!(" and {} more", people - shown));
        }
        let line = self.guest_notice(time_ms, &words);
        self.push(to, line);
    }

    /// A guest's copy of a notice: `[12:00:00] -- text` and a newline, with the kept clock.
    pub(super) fn guest_notice(&mut self, time_ms: i64, words: &str) -> Arc<[u8]> {
        guest_line(text::notice_line(self.clock_text.get(time_ms), words))
    }
}

pub(super) fn guest_line(mut line: String) -> Arc<[u8]> {
    line.push('\n');
    line.into_bytes().into()
}

/// A guest's copy of a chat message: [`text::push_message_line`] and a newline, built in
/// one buffer from a clock already formatted (see [`ClockText`]).
pub(super) fn guest_message_line(clock: &str, from: &str, words: &str) -> Arc<[u8]> {
    let mut line = Vec::new();
    text::push_message_line(&mut line, clock, from, words);
    line.push(b'\n');
    line.into()
}
