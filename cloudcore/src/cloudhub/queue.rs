//! [`NodeQueue`]: one node's downstream queue, sans-IO. It is fed messages,
//! acks and the current time, and says what to send next and when it next
//! needs the time; the node task (`node.rs`) does the I/O.
//!
//! Admission follows KubeEdge (see `admission.rs`). Ack-needing messages
//! are sent at most `window` at a time and wait for the edge's `response`;
//! unacked ones are sent again every `resend_interval`, `max_resends` times,
//! then set aside with exponential backoff and sent again. Messages that
//! need no ack are sent once, in arrival order with the others. When the
//! link drops, everything unacked goes back to the queue in its original
//! order, to be sent first on the next connection.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use proto::{needs_ack, Message};

use super::admission::{ack_key, already_synced, refuse_ack_message, replaces, DropReason, Key};
use super::recent::RecentIds;

/// How many acked, superseded or sent-once ids a queue remembers, so a late
/// or repeated ack is recognised as one (16 default windows).
const DONE_IDS: usize = 512;

/// Tuning of every node's downstream queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Ack-needing messages sent and not yet acked, at most (default 32).
    pub window: usize,
    /// How long to wait for an ack before sending again (KubeEdge: 5 s).
    pub resend_interval: Duration,
    /// Resends before a message is set aside with backoff (KubeEdge: 4).
    pub max_resends: u32,
    /// First backoff once the resends ran out; doubles every failed round.
    pub backoff_base: Duration,
    /// Longest backoff (KubeEdge's workqueue caps at 1000 s).
    pub backoff_max: Duration,
    /// Messages held per node, at most; when full, the oldest message that
    /// needs no ack is dropped first (default 10,000).
    pub capacity: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            window: 32,
            resend_interval: Duration::from_secs(5),
            max_resends: 4,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(1000),
            capacity: 10_000,
        }
    }
}

/// What [`NodeQueue::push`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Queued as a new entry; `evicted` older no-ack messages made room.
    Queued { evicted: usize },
    /// Replaced the stored message for the same object.
    Replaced,
    /// Not queued.
    Dropped(DropReason),
}

/// A message to write to the edge now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transmit {
    /// The message, resource already in edge form.
    pub(crate) msg: Message,
    /// Sent before (timer or reconnect).
    pub(crate) resend: bool,
}

/// What an edge `response` meant to the queue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AckOutcome {
    /// It acked this queued message, now removed.
    Acked(Box<Message>),
    /// It answers a message already acked, superseded or sent once.
    Duplicate,
    /// It answers nothing this queue sent.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    InFlight { next: Instant, resends: u32 },
    Backoff { until: Instant },
}

#[derive(Debug)]
struct Entry {
    msg: Message,
    /// Arrival order; kept across replacement and requeueing.
    seq: u64,
    state: State,
    /// Rounds of resends that ran out (drives the backoff).
    failures: u32,
}

/// One node's downstream queue. See the module docs.
#[derive(Debug)]
pub(crate) struct NodeQueue {
    cfg: QueueConfig,
    entries: HashMap<Key, Entry>,
    ack_pending: BTreeMap<u64, Key>,
    noack_pending: BTreeMap<u64, Key>,
    inflight: BTreeMap<u64, Key>,
    resend_due: BTreeSet<u64>,
    backoff: BTreeMap<(Instant, u64), Key>,
    /// msg_id → key for every ack-needing entry sent at least once.
    ids: HashMap<String, Key>,
    done: RecentIds,
    next_seq: u64,
}

impl NodeQueue {
    /// An empty queue.
    pub(crate) fn new(cfg: QueueConfig) -> Self {
        NodeQueue {
            cfg,
            entries: HashMap::new(),
            ack_pending: BTreeMap::new(),
            noack_pending: BTreeMap::new(),
            inflight: BTreeMap::new(),
            resend_due: BTreeSet::new(),
            backoff: BTreeMap::new(),
            ids: HashMap::new(),
            done: RecentIds::new(DONE_IDS),
            next_seq: 0,
        }
    }

    /// Messages held (pending, in flight or backing off).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Ack-needing messages sent and not yet acked.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Offers a message (resource already stripped of its node prefix).
    #[cfg(test)]
    pub(crate) fn push(&mut self, msg: Message) -> Admission {
        self.push_synced(msg, &|_| None)
    }

    /// Offers a message; `acked` gives the resourceVersion the node last
    /// acked for an object key (its UID), consulted when nothing is queued
    /// for the object, as KubeEdge consults the ObjectSync.
    pub(crate) fn push_synced(
        &mut self,
        mut msg: Message,
        acked: &dyn Fn(&str) -> Option<String>,
    ) -> Admission {
        if msg.header.msg_id.is_empty() {
            msg.header.msg_id = proto::new_msg_id();
        }
        if needs_ack(&msg) {
            self.push_ack(msg, acked)
        } else {
            self.push_noack(msg)
        }
    }

    fn push_ack(&mut self, msg: Message, acked: &dyn Fn(&str) -> Option<String>) -> Admission {
        if let Some(reason) = refuse_ack_message(&msg) {
            return Admission::Dropped(reason);
        }
        let key = ack_key(&msg);
        if let Some(entry) = self.entries.get_mut(&key) {
            if let Err(reason) = replaces(&msg, &entry.msg) {
                return Admission::Dropped(reason);
            }
            let (seq, state) = (entry.seq, entry.state);
            let old = std::mem::replace(&mut entry.msg, msg);
            entry.state = State::Pending;
            entry.failures = 0;
            if self.ids.remove(old.id()).is_some() {
                self.done.insert(old.id());
            }
            match state {
                State::Pending => {}
                State::InFlight { .. } => {
                    self.inflight.remove(&seq);
                    self.resend_due.remove(&seq);
                    self.ack_pending.insert(seq, key);
                }
                State::Backoff { until } => {
                    self.backoff.remove(&(until, seq));
                    self.ack_pending.insert(seq, key);
                }
            }
            return Admission::Replaced;
        }
        if let Err(reason) = already_synced(&msg, &key, acked) {
            return Admission::Dropped(reason);
        }
        let Some(evicted) = self.make_room() else {
            return Admission::Dropped(DropReason::QueueFull);
        };
        let seq = self.insert(key.clone(), msg);
        self.ack_pending.insert(seq, key);
        Admission::Queued { evicted }
    }

    fn push_noack(&mut self, msg: Message) -> Admission {
        let key = Key::Msg(msg.id().to_owned());
        if self.entries.contains_key(&key) || self.done.contains(msg.id()) {
            return Admission::Dropped(DropReason::Duplicate);
        }
        let Some(evicted) = self.make_room() else {
            return Admission::Dropped(DropReason::QueueFull);
        };
        let seq = self.insert(key.clone(), msg);
        self.noack_pending.insert(seq, key);
        Admission::Queued { evicted }
    }

    fn insert(&mut self, key: Key, msg: Message) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            msg,
            seq,
            state: State::Pending,
            failures: 0,
        };
        self.entries.insert(key, entry);
        seq
    }

    /// Drops the oldest no-ack messages until one more fits; `None` when
    /// only ack-needing messages are left and the queue is full.
    fn make_room(&mut self) -> Option<usize> {
        let mut evicted = 0;
        while self.entries.len() >= self.cfg.capacity.max(1) {
            let (_, key) = self.noack_pending.pop_first()?;
            self.entries.remove(&key);
            evicted += 1;
        }
        Some(evicted)
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has something now.
    pub(crate) fn wants_transmit(&self) -> bool {
        !self.resend_due.is_empty()
            || !self.noack_pending.is_empty()
            || (!self.ack_pending.is_empty() && self.window_open())
    }

    fn window_open(&self) -> bool {
        self.inflight.len() < self.cfg.window.max(1)
    }

    /// The next message to write: due resends first, then the oldest
    /// pending message (ack-needing ones only while the window has room).
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        while let Some(seq) = self.resend_due.pop_first() {
            let entry = self.inflight.get(&seq).and_then(|k| self.entries.get(k));
            if let Some(entry) = entry {
                return Some(Transmit {
                    msg: entry.msg.clone(),
                    resend: true,
                });
            }
        }
        let ack = self
            .window_open()
            .then(|| self.ack_pending.first_key_value().map(|(s, _)| *s))
            .flatten();
        let noack = self.noack_pending.first_key_value().map(|(s, _)| *s);
        match (ack, noack) {
            (Some(a), n) if n.is_none_or(|n| a < n) => self.send_ack(a, now),
            (_, Some(n)) => self.send_noack(n),
            _ => None,
        }
    }

    fn send_ack(&mut self, seq: u64, now: Instant) -> Option<Transmit> {
        let key = self.ack_pending.remove(&seq)?;
        let entry = self.entries.get_mut(&key)?;
        entry.state = State::InFlight {
            next: now + self.cfg.resend_interval,
            resends: 0,
        };
        let resend = self
            .ids
            .insert(entry.msg.id().to_owned(), key.clone())
            .is_some();
        let msg = entry.msg.clone();
        self.inflight.insert(seq, key);
        Some(Transmit { msg, resend })
    }

    fn send_noack(&mut self, seq: u64) -> Option<Transmit> {
        let key = self.noack_pending.remove(&seq)?;
        let entry = self.entries.remove(&key)?;
        self.done.insert(entry.msg.id());
        Some(Transmit {
            msg: entry.msg,
            resend: false,
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work: the
    /// earliest resend deadline or end of a backoff.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let resend = self
            .inflight
            .values()
            .filter_map(|k| match self.entries.get(k)?.state {
                State::InFlight { next, .. } => Some(next),
                _ => None,
            })
            .min();
        let backoff = self.backoff.first_key_value().map(|((t, _), _)| *t);
        resend.into_iter().chain(backoff).min()
    }

    /// Marks due resends, sets aside messages whose resends ran out, and
    /// requeues those whose backoff ended.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, k)| {
                matches!(self.entries.get(*k).map(|e| e.state),
                    Some(State::InFlight { next, .. }) if next <= now)
            })
            .map(|(seq, _)| *seq)
            .collect();
        for seq in due {
            let Some(key) = self.inflight.get(&seq).cloned() else {
                continue;
            };
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            let State::InFlight { resends, .. } = entry.state else {
                continue;
            };
            if resends < self.cfg.max_resends {
                entry.state = State::InFlight {
                    next: now + self.cfg.resend_interval,
                    resends: resends + 1,
                };
                self.resend_due.insert(seq);
            } else {
                entry.failures = entry.failures.saturating_add(1);
                let until = now + backoff(&self.cfg, entry.failures);
                entry.state = State::Backoff { until };
                self.inflight.remove(&seq);
                self.resend_due.remove(&seq);
                self.backoff.insert((until, seq), key);
            }
        }
        while let Some(entry) = self.backoff.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, seq), key) = entry.remove_entry();
            if let Some(e) = self.entries.get_mut(&key) {
                e.state = State::Pending;
                self.ack_pending.insert(seq, key);
            }
        }
    }

    /// Applies an edge `response` whose `parent_msg_id` is `parent`.
    pub(crate) fn ack(&mut self, parent: &str) -> AckOutcome {
        if let Some(msg) = self.remove_sent(parent) {
            return AckOutcome::Acked(Box::new(msg));
        }
        if self.done.contains(parent) {
            AckOutcome::Duplicate
        } else {
            AckOutcome::Unknown
        }
    }

    /// Gives up on sent message `msg_id` (the link cannot carry it, e.g.
    /// over the frame cap); true when it was held.
    pub(crate) fn discard(&mut self, msg_id: &str) -> bool {
        self.remove_sent(msg_id).is_some()
    }

    /// Removes the ack-needing entry last sent as `msg_id`, whatever its
    /// state, and remembers the id.
    fn remove_sent(&mut self, msg_id: &str) -> Option<Message> {
        let key = self.ids.remove(msg_id)?;
        let entry = self.entries.remove(&key)?;
        match entry.state {
            State::Pending => {
                self.ack_pending.remove(&entry.seq);
            }
            State::InFlight { .. } => {
                self.inflight.remove(&entry.seq);
                self.resend_due.remove(&entry.seq);
            }
            State::Backoff { until } => {
                self.backoff.remove(&(until, entry.seq));
            }
        }
        self.done.insert(msg_id);
        Some(entry.msg)
    }

    /// The link dropped: everything unacked is pending again, in its
    /// original order, and backoffs are forgotten.
    pub(crate) fn disconnected(&mut self) {
        self.resend_due.clear();
        let inflight = std::mem::take(&mut self.inflight);
        let backoff = std::mem::take(&mut self.backoff);
        let requeue = inflight
            .into_iter()
            .chain(backoff.into_iter().map(|((_, seq), key)| (seq, key)));
        for (seq, key) in requeue {
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.state = State::Pending;
                self.ack_pending.insert(seq, key);
            }
        }
    }
}

/// `base × 2^(failures-1)`, capped.
fn backoff(cfg: &QueueConfig, failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u32::MAX);
    cfg.backoff_base.saturating_mul(factor).min(cfg.backoff_max)
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
