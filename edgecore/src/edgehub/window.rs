//! The upstream send window, sans-IO: which outbox rows to read next, which
//! are sent and wait for the cloud's ack, and when to send them again.
//!
//! Fed events and `now`; does no I/O. The session reads rows from the
//! outbox when [`Window::wants_fetch`] says so, sends what
//! [`Window::next_to_send`] yields, and reports sends and acks back.
//! Against a cloud without upstream acks the session deletes each row once
//! written and never calls [`Window::on_sent`].
//!
//! Invariant: rows are sent in `seq` order; after [`Window::rewind`] (a new
//! connection, or the oldest row waited longer than the ack timeout) the
//! next fetch starts again from the oldest row still stored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use proto::Message;

/// One sent row waiting for its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    seq: u64,
    msg_id: String,
    sent_at: Instant,
}

/// The state of one connection's upstream flow.
#[derive(Debug)]
pub(crate) struct Window {
    capacity: usize,
    ack_timeout: Duration,
    /// The highest `seq` read from the outbox so far.
    cursor: u64,
    /// Read, not yet sent.
    queued: VecDeque<(u64, Message)>,
    /// Sent, not yet acked, in `seq` order.
    in_flight: VecDeque<InFlight>,
}

impl Window {
    /// A window allowing `capacity` unacked rows (at least one), resending
    /// once the oldest has waited `ack_timeout`.
    pub(crate) fn new(capacity: usize, ack_timeout: Duration) -> Self {
        Window {
            capacity: capacity.max(1),
            ack_timeout,
            cursor: 0,
            queued: VecDeque::new(),
            in_flight: VecDeque::new(),
        }
    }

    /// Where to read from and how many rows, if the window wants more rows
    /// and the outbox has rows past the cursor (`last_seq` is the outbox's
    /// highest `seq`).
    pub(crate) fn wants_fetch(&self, last_seq: u64) -> Option<(u64, usize)> {
        let room = self.capacity.saturating_sub(self.in_flight.len());
        (self.queued.is_empty() && room > 0 && last_seq > self.cursor)
            .then_some((self.cursor, room))
    }

    /// Takes the rows read for [`wants_fetch`](Self::wants_fetch). `last_seq`
    /// is the outbox's highest `seq` as seen before the read: when nothing
    /// comes back, every row up to it is gone and the cursor moves there.
    pub(crate) fn on_fetched(&mut self, rows: Vec<(u64, Message)>, last_seq: u64) {
        match rows.last() {
            Some((seq, _)) => self.cursor = self.cursor.max(*seq),
            None => self.cursor = self.cursor.max(last_seq),
        }
        self.queued.extend(rows);
    }

    /// Whether a row is waiting to be sent.
    pub(crate) fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// The next row to send, removed from the queue.
    pub(crate) fn next_to_send(&mut self) -> Option<(u64, Message)> {
        self.queued.pop_front()
    }

    /// Records that row `seq` went out at `now` and waits for its ack.
    pub(crate) fn on_sent(&mut self, seq: u64, msg_id: &str, now: Instant) {
        self.in_flight.push_back(InFlight {
            seq,
            msg_id: msg_id.to_owned(),
            sent_at: now,
        });
    }

    /// Takes the cloud's ack of `msg_id`; returns its `seq` if it was in
    /// flight.
    pub(crate) fn on_ack(&mut self, msg_id: &str) -> Option<u64> {
        let at = self.in_flight.iter().position(|f| f.msg_id == msg_id)?;
        self.in_flight.remove(at).map(|f| f.seq)
    }

    /// How many sent rows wait for an ack.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the oldest unacked row has waited longer than the ack
    /// timeout.
    pub(crate) fn ack_overdue(&self, now: Instant) -> bool {
        self.in_flight
            .front()
            .is_some_and(|f| now.saturating_duration_since(f.sent_at) >= self.ack_timeout)
    }

    /// Forgets what was read and sent, so the next fetch starts from the
    /// oldest row still stored (go-back-N; the cloud drops duplicates).
    pub(crate) fn rewind(&mut self) {
        self.cursor = 0;
        self.queued.clear();
        self.in_flight.clear();
    }
}

#[cfg(test)]
mod tests {
    use proto::Operation;

    use super::*;

    fn row(seq: u64) -> (u64, Message) {
        let mut m = Message::new(
            "twin",
            "twin",
            Operation::Update,
            "device/d/twin/edge_updated",
        );
        m.header.msg_id = format!("m{seq}");
        (seq, m)
    }

    #[test]
    fn reads_sends_and_waits_for_acks_in_order() {
        let now = Instant::now();
        let mut w = Window::new(2, Duration::from_secs(30));
        assert_eq!(w.wants_fetch(0), None, "empty outbox");
        assert_eq!(w.wants_fetch(5), Some((0, 2)));
        w.on_fetched(vec![row(3), row(4)], 5);
        assert_eq!(w.wants_fetch(5), None, "rows still queued");
        for expected in [3, 4] {
            let (seq, msg) = w.next_to_send().unwrap();
            assert_eq!(seq, expected);
            w.on_sent(seq, msg.id(), now);
        }
        assert_eq!(w.wants_fetch(5), None, "window full");
        assert_eq!(w.on_ack("m4"), Some(4));
        assert_eq!(w.on_ack("m4"), None);
        assert_eq!(w.wants_fetch(5), Some((4, 1)));
        assert_eq!(w.in_flight(), 1);
    }

    #[test]
    fn an_empty_read_moves_the_cursor_to_the_seen_end() {
        let mut w = Window::new(4, Duration::from_secs(30));
        w.on_fetched(Vec::new(), 7);
        assert_eq!(w.wants_fetch(7), None);
        assert_eq!(w.wants_fetch(8), Some((7, 4)));
    }

    #[test]
    fn overdue_acks_and_reconnects_rewind_to_the_oldest_row() {
        let start = Instant::now();
        let mut w = Window::new(8, Duration::from_secs(10));
        w.on_fetched(vec![row(1), row(2)], 2);
        let (seq, msg) = w.next_to_send().unwrap();
        w.on_sent(seq, msg.id(), start);
        assert!(!w.ack_overdue(start + Duration::from_secs(9)));
        assert!(w.ack_overdue(start + Duration::from_secs(10)));
        w.rewind();
        assert!(!w.has_queued());
        assert_eq!(w.in_flight(), 0);
        assert_eq!(w.wants_fetch(2), Some((0, 8)));
    }
}
