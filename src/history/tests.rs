use super::*;

fn ring_with(capacity: usize, lines: u64) -> Ring {
    let mut ring = Ring::new(capacity);
    for i in 1..=lines {
        ring.push(1_000 * i, "alice", Kind::Chat, &format!("line {i}"));
    }
    ring
}

fn seqs(lines: &[Line]) -> Vec<u64> {
    lines.iter().map(|line| line.seq).collect()
}

#[test]
fn numbers_start_at_one_and_the_ring_keeps_the_last_n() {
    let ring = ring_with(3, 5);
    assert_eq!(ring.newest(), 5);
    assert_eq!(ring.len(), 3);
    assert_eq!(seqs(&ring.last(10)), [3, 4, 5]);
    let newest = &ring.last(1)[0];
    assert_eq!(
        newest,
        &Line {
            seq: 5,
            time_ms: 5_000,
            name: "alice".into(),
            kind: Kind::Chat,
            text: "line 5".into()
        }
    );
}

#[test]
fn last_k_is_the_newest_k_oldest_first() {
    let ring = ring_with(10, 6);
    assert_eq!(seqs(&ring.last(2)), [5, 6]);
    assert_eq!(seqs(&ring.last(0)), Vec::<u64>::new());
    assert_eq!(ring.last(usize::MAX).len(), 6);
}

#[test]
fn after_gives_what_was_missed_in_pages() {
    let ring = ring_with(100, 30);
    let page = ring.after(10, 8).unwrap();
    assert_eq!(seqs(&page.lines), (11..=18).collect::<Vec<_>>());
    assert_eq!((page.gone, page.remaining), (0, 12));
    let page = ring.after(18, 100).unwrap();
    assert_eq!(seqs(&page.lines), (19..=30).collect::<Vec<_>>());
    assert_eq!((page.gone, page.remaining), (0, 0));
    let caught_up = ring.after(30, 100).unwrap();
    assert_eq!(
        caught_up,
        After {
            lines: vec![],
            gone: 0,
            remaining: 0
        }
    );
}

#[test]
fn after_reports_how_many_lines_are_gone() {
    let ring = ring_with(5, 20);
    let page = ring.after(3, 100).unwrap();
    assert_eq!(seqs(&page.lines), [16, 17, 18, 19, 20]);
    assert_eq!((page.gone, page.remaining), (12, 0));
    // From the start of the epoch.
    let page = ring.after(0, 2).unwrap();
    assert_eq!(seqs(&page.lines), [16, 17]);
    assert_eq!((page.gone, page.remaining), (15, 3));
}

#[test]
fn after_a_line_never_said_is_an_error() {
    let ring = ring_with(5, 20);
    assert_eq!(
        ring.after(21, 5),
        Err(QueryError::Ahead {
            asked: 21,
            newest: 20
        })
    );
    assert!(ring.after(u64::MAX, usize::MAX).is_err());
    assert_eq!(
        QueryError::Ahead {
            asked: 21,
            newest: 20
        }
        .to_string(),
        "asked for lines after line 21, but the newest line is 20"
    );
}

#[test]
fn absurd_limits_are_clamped_to_the_capacity() {
    let ring = ring_with(4, 10);
    let page = ring.after(0, usize::MAX).unwrap();
    assert_eq!(seqs(&page.lines), [7, 8, 9, 10]);
    let page = ring.before(u64::MAX, usize::MAX);
    assert_eq!(seqs(&page.lines), [7, 8, 9, 10]);
    assert_eq!((page.earlier, page.gone), (0, 6));
    let none = ring.after(2, 0).unwrap();
    assert_eq!((none.lines.len(), none.gone, none.remaining), (0, 4, 4));
}

#[test]
fn before_pages_back_to_the_oldest_line_held() {
    let ring = ring_with(50, 40);
    let page = ring.before(u64::MAX, 15);
    assert_eq!(seqs(&page.lines), (26..=40).collect::<Vec<_>>());
    assert_eq!((page.earlier, page.gone), (25, 0));
    let page = ring.before(26, 15);
    assert_eq!(seqs(&page.lines), (11..=25).collect::<Vec<_>>());
    assert_eq!((page.earlier, page.gone), (10, 0));
    let page = ring.before(11, 15);
    assert_eq!(seqs(&page.lines), (1..=10).collect::<Vec<_>>());
    assert_eq!((page.earlier, page.gone), (0, 0));
    let page = ring.before(1, 15);
    assert_eq!((page.lines.len(), page.earlier, page.gone), (0, 0, 0));
    let page = ring.before(0, 15);
    assert_eq!((page.lines.len(), page.earlier, page.gone), (0, 0, 0));
}

#[test]
fn before_with_k_zero_counts_what_it_could_have_given() {
    let ring = ring_with(10, 25);
    let page = ring.before(20, 0);
    assert_eq!((page.lines.len(), page.earlier, page.gone), (0, 4, 15));
}

#[test]
fn before_says_what_was_trimmed() {
    let ring = ring_with(10, 25);
    let page = ring.before(20, 3);
    assert_eq!(seqs(&page.lines), [17, 18, 19]);
    assert_eq!((page.earlier, page.gone), (1, 15));
    // Before a line that is itself gone: nothing held, all of it gone.
    let page = ring.before(9, 3);
    assert_eq!((page.lines.len(), page.earlier, page.gone), (0, 0, 8));
}

#[test]
fn capacity_zero_keeps_nothing_but_keeps_counting() {
    let ring = ring_with(0, 7);
    assert_eq!((ring.newest(), ring.len()), (7, 0));
    assert!(ring.last(5).is_empty());
    let page = ring.after(2, 5).unwrap();
    assert_eq!((page.lines.len(), page.gone, page.remaining), (0, 5, 0));
    let page = ring.before(u64::MAX, 5);
    assert_eq!((page.lines.len(), page.earlier, page.gone), (0, 0, 7));
}

#[test]
fn an_empty_history_answers_every_question() {
    let ring = Ring::new(10);
    assert!(ring.last(20).is_empty());
    assert_eq!(
        ring.after(0, 20).unwrap(),
        After {
            lines: vec![],
            gone: 0,
            remaining: 0
        }
    );
    assert_eq!(
        ring.before(5, 20),
        Page {
            lines: vec![],
            earlier: 0,
            gone: 0
        }
    );
}

#[test]
fn resuming_keeps_only_the_gapless_run_ending_at_the_newest_line() {
    let line = |seq| Line {
        seq,
        time_ms: seq,
        name: "bob".into(),
        kind: Kind::Action,
        text: String::new(),
    };
    let ring = Ring::resume(10, 9, [2, 3, 5, 6, 7, 8, 9].map(line).to_vec());
    assert_eq!(seqs(&ring.last(10)), [5, 6, 7, 8, 9]);
    let page = ring.after(1, 10).unwrap();
    assert_eq!(page.gone, 3);
    // The newest lines are missing: nothing held, numbering goes on.
    let mut ring = Ring::resume(10, 12, [8, 9].map(line).to_vec());
    assert!(ring.is_empty());
    assert_eq!(ring.push(1, "bob", Kind::Chat, "hi"), 13);
    let ring = Ring::resume(2, 9, [7, 8, 9].map(line).to_vec());
    assert_eq!(seqs(&ring.last(10)), [8, 9]);
}

#[test]
fn a_memory_history_keeps_its_epoch_and_needs_no_flush() {
    let mut history = History::in_memory(3, 0xABCD);
    assert_eq!(history.append(5, "op", Kind::Console, "hello"), 1);
    assert_eq!(history.epoch(), 0xABCD);
    assert!(!history.is_persistent());
    assert_eq!(history.flush(), Ok(0));
    assert_eq!(history.pending(), 0);
    assert_eq!(history.last(1)[0].kind, Kind::Console);
}

#[test]
fn kinds_round_trip_through_their_stored_words() {
    for kind in [Kind::Chat, Kind::Action, Kind::Console] {
        assert_eq!(Kind::from_word(kind.as_str()), Some(kind));
    }
    assert_eq!(Kind::from_word("private"), None);
}
