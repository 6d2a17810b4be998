//! The roster a newcomer is sent at join, server and client cores together over the
//! simulated network: in a room of more than `quiet_above` people it lists exactly the first
//! `quiet_above` entries in order, with the room's real total, then a notice saying so, and
//! the history's replay still follows as the join's answer; in a room of at most that many
//! it lists everyone and says nothing more; `/list` always lists everyone; what a join
//! costs stops growing with the room past the threshold; and a guest, which gets no roster
//! at join, is answered `/list` with the start of the roster in one datagram.

use std::net::SocketAddr;

use icq::client::ClientEvent;
use icq::proto::chat::ChatEvent;
use icq::server::ServerConfig;
use icq::text;
use icq::wire::{self, RosterEntry};

use crate::presence::config;
use crate::server_client::listed_names;
use crate::sim::room::Sim;
use crate::social::guest_lines;

/// Names whose sorted order (case-insensitive) is not the order they join in.
const NAMES: [&str; 12] = [
    "zed", "Bob", "amy", "Carl", "dora", "Yves", "eve", "Fay", "gus", "Xena", "hal", "ian",
];

/// A room of `config` filled with the first `people` of [`NAMES`], in that order.
fn room(config: ServerConfig, people: usize) -> (Sim, Vec<SocketAddr>) {
    let mut sim = Sim::new(config);
    let clients = NAMES[..people].iter().map(|name| sim.join(name)).collect();
    (sim, clients)
}

/// One roster as a client was sent it, from its first page on.
#[derive(Debug)]
struct RosterSeen {
    /// Every page's `total`.
    totals: Vec<u16>,
    /// The names of every page, in order.
    names: Vec<String>,
    /// How many pages.
    pages: usize,
    /// What came right after the last page.
    next: Option<ClientEvent>,
}

/// The roster that begins at the `nth` first page (offset 0) among `events`. Every page
/// must follow on from the one before.
#[track_caller]
fn nth_roster(events: &[ClientEvent], nth: usize) -> RosterSeen {
    let start = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, ClientEvent::Roster { offset: 0, .. }))
        .nth(nth)
        .map(|(index, _)| index)
        .unwrap_or_else(|| panic!("no roster number {nth} in {events:?}"));
    let mut seen = RosterSeen {
        totals: Vec::new(),
        names: Vec::new(),
        pages: 0,
        next: None,
    };
    for event in &events[start..] {
        let ClientEvent::Roster {
            total,
            offset,
            entries,
            ..
        } = event
        else {
            seen.next = Some(event.clone());
            break;
        };
        if seen.pages > 0 && *offset == 0 {
            seen.next = Some(event.clone());
            break;
        }
        assert_eq!(usize::from(*offset), seen.names.len(), "pages in order");
        seen.totals.push(*total);
        seen.names
            .extend(entries.iter().map(|entry| entry.name.clone()));
        seen.pages += 1;
    }
    seen
}

/// The notice that follows a roster listing the first `listed` of `people`.
fn cut_short(listed: usize, people: usize) -> String {
    text::roster_cut_short(listed, people)
}

/// The words of `event`, if it is a notice.
fn notice_text(event: Option<&ClientEvent>) -> Option<&str> {
    match event {
        Some(ClientEvent::Notice { text, .. }) => Some(text),
        _ => None,
    }
}

#[test]
fn in_a_large_room_a_newcomer_is_listed_the_first_quiet_above_people_then_told_so() {
    let (mut sim, clients) = room(config(5), 11);
    // Lines to replay: the join's answer comes after the notice, and is still shown as it.
    sim.send_text(clients[0], "one");
    sim.send_text(clients[1], "two");
    let late = sim.join(NAMES[11]);
    let events = sim.events(late).to_vec();
    let everyone = listed_names(&sim);
    assert_eq!(everyone.len(), 12);

    let seen = nth_roster(&events, 0);
    assert_eq!(seen.names, everyone[..5], "the first five, in order");
    assert!(seen.totals.iter().all(|total| *total == 12), "{seen:?}");
    assert_eq!(
        notice_text(seen.next.as_ref()),
        Some(cut_short(5, 12).as_str())
    );
    let replayed: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Chat(ChatEvent::HistoryLine { text, .. }) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(replayed, ["one", "two"], "the replay follows the notice");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::HistoryEnd { shown: 2, .. })),
        "the replay ends as the join's answer: {events:?}"
    );

    // `/list`, in the same room, lists everyone, and nothing follows it.
    sim.request_list(late);
    let events = sim.events(late).to_vec();
    let listed = nth_roster(&events, 1);
    assert_eq!(listed.names, everyone);
    assert!(listed.totals.iter().all(|total| *total == 12));
    assert_eq!(listed.next, None);
    assert_eq!(
        events
            .iter()
            .filter(|e| notice_text(Some(e)).is_some_and(|t| t.starts_with("first")))
            .count(),
        1,
        "only the join's roster is cut short: {events:?}"
    );
}

#[test]
fn a_room_of_exactly_quiet_above_people_is_listed_whole_with_no_notice() {
    let (mut sim, _) = room(config(5), 4);
    let fifth = sim.join(NAMES[4]);
    let seen = nth_roster(sim.events(fifth), 0);
    assert_eq!(seen.names, listed_names(&sim), "all five");
    assert_eq!(seen.totals, [5]);
    assert!(
        !matches!(seen.next, Some(ClientEvent::Notice { .. })),
        "nothing more to say: {seen:?}"
    );
    // One more makes the room large: the sixth gets the first five and the notice.
    let sixth = sim.join(NAMES[5]);
    let seen = nth_roster(sim.events(sixth), 0);
    assert_eq!(seen.names, listed_names(&sim)[..5]);
    assert_eq!(seen.totals, [6]);
    assert_eq!(
        notice_text(seen.next.as_ref()),
        Some(cut_short(5, 6).as_str())
    );
}

#[test]
fn how_many_a_join_lists_follows_quiet_above_as_configured() {
    for quiet_above in [0, 1, 3, 8, 11, 12] {
        let (sim, clients) = room(config(quiet_above), 12);
        let late = *clients.last().expect("a newcomer");
        let seen = nth_roster(sim.events(late), 0);
        let everyone = listed_names(&sim);
        if quiet_above < 12 {
            assert_eq!(
                seen.names,
                everyone[..quiet_above],
                "quiet above {quiet_above}"
            );
            assert_eq!(
                notice_text(seen.next.as_ref()),
                Some(cut_short(quiet_above, 12).as_str())
            );
        } else {
            assert_eq!(seen.names, everyone);
            assert!(!matches!(seen.next, Some(ClientEvent::Notice { .. })));
        }
        assert!(seen.totals.iter().all(|total| *total == 12));
    }
}

#[test]
fn past_the_threshold_a_join_costs_the_same_however_large_the_room() {
    // Names of 32 characters: a page holds few of them, so the roster takes several pages.
    const QUIET_ABOVE: usize = 60;
    let name = |i: usize| format!("n{i:031}");
    let mut sim = Sim::new(config(QUIET_ABOVE));
    // For each newcomer measured: the pages of its join's roster, the bytes the server sent
    // it while it joined, and the pages of its `/list`.
    let mut joins = Vec::new();
    let mut lists = Vec::new();
    for i in 0..3 * QUIET_ABOVE {
        let people = i + 1;
        let mark = sim.mark();
        let at = sim.join(&name(i));
        if people > QUIET_ABOVE && people % QUIET_ABOVE == 1 {
            let joined = nth_roster(sim.events(at), 0);
            assert_eq!(joined.names.len(), QUIET_ABOVE);
            let bytes: usize = sim.server_sent_to(at, mark).iter().map(Vec::len).sum();
            joins.push((joined.pages, bytes));
            sim.request_list(at);
            let listed = nth_roster(sim.events(at), 1);
            assert_eq!(listed.names.len(), people);
            lists.push(listed.pages);
        }
    }
    assert_eq!(joins.len(), 2);
    let ((pages_61, bytes_61), (pages_121, bytes_121)) = (joins[0], joins[1]);
    assert!(pages_61 > 1, "several pages: {joins:?}");
    assert_eq!(
        pages_61, pages_121,
        "the join's pages do not grow with the room"
    );
    // Only the notice's count of people is one digit longer.
    assert!(
        bytes_121 <= bytes_61 + 1,
        "the join's bytes do not grow with the room: {joins:?}"
    );
    assert!(lists[1] > lists[0], "/list's do: {lists:?}");
}

#[test]
fn a_guest_gets_no_roster_at_join_and_its_list_is_the_start_of_the_roster_in_one_datagram() {
    let mut sim = Sim::new(ServerConfig {
        guests: true,
        ..config(20)
    });
    for i in 0..100 {
        sim.join(&format!("n{i:031}"));
    }
    let guest = SocketAddr::from(([127, 0, 0, 1], 20001));
    let datagrams = sim.inject(guest, b"/list\n");
    assert!(datagrams.iter().all(|d| d.len() <= wire::MAX_DATAGRAM));
    let lines = guest_lines(&datagrams);
    let listed: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("-- ") && l.contains(" online: "))
        .collect();
    assert_eq!(
        listed.len(),
        1,
        "only the /list answer lists anyone: {lines:?}"
    );
    let entries: Vec<RosterEntry> = sim
        .server
        .clients(sim.now)
        .into_iter()
        .map(|c| RosterEntry {
            name: c.name,
            away: c.away.unwrap_or_default(),
            guest: c.guest,
        })
        .collect();
    assert_eq!(entries.len(), 101);
    let shown = (1..entries.len())
        .find(|n| {
            *listed[0]
                == format!(
                    "-- {} and {} more",
                    text::online_text(101, 0, &entries[..*n]),
                    101 - n
                )
        })
        .unwrap_or_else(|| panic!("not the start of the roster: {}", listed[0]));
    assert!(shown > 10, "as many as fit: {shown}");
}
