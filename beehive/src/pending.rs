//! Requests waiting for their reply: `msg_id` → one-shot sender, as
//! KubeEdge's `SendSync` parks an anonymous channel under the message id.
//!
//! Invariant: an entry lives exactly as long as the request that made it.
//! [`PendingGuard`] removes it when the request finishes, times out or is
//! dropped, and removes only its own entry (a per-entry ticket tells a
//! reused `msg_id` apart).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use proto::Message;
use tokio::sync::oneshot;

use crate::error::BusError;

/// One waiting request.
#[derive(Debug)]
struct Waiter {
    ticket: u64,
    tx: oneshot::Sender<Message>,
}

/// The table of waiting requests.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    waiting: Mutex<HashMap<String, Waiter>>,
    next_ticket: AtomicU64,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Waiter>> {
        // No code panics while holding the lock, but stay usable if one did.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks a waiter under `msg_id`. The entry goes away when the returned
    /// guard is dropped.
    pub(crate) fn register(
        &self,
        msg_id: &str,
    ) -> Result<(PendingGuard<'_>, oneshot::Receiver<Message>), BusError> {
        let (tx, rx) = oneshot::channel();
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let mut waiting = self.lock();
        if waiting.contains_key(msg_id) {
            return Err(BusError::DuplicateRequest {
                msg_id: msg_id.to_owned(),
            });
        }
        waiting.insert(msg_id.to_owned(), Waiter { ticket, tx });
        drop(waiting);
        let guard = PendingGuard {
            pending: self,
            msg_id: msg_id.to_owned(),
            ticket,
        };
        Ok((guard, rx))
    }

    /// Hands `reply` to the request whose id is its `parent_msg_id`. Returns
    /// `None` when delivered, or the reply itself when no such request is
    /// waiting any more.
    pub(crate) fn resolve(&self, reply: Message) -> Option<Message> {
        let Some(parent) = reply.parent_id() else {
            return Some(reply);
        };
        let waiter = self.lock().remove(parent);
        match waiter {
            Some(waiter) => waiter.tx.send(reply).err(),
            None => Some(reply),
        }
    }

    /// How many requests are waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Removes its request's entry when dropped.
#[derive(Debug)]
pub(crate) struct PendingGuard<'a> {
    pending: &'a Pending,
    msg_id: String,
    ticket: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut waiting = self.pending.lock();
        if waiting
            .get(&self.msg_id)
            .is_some_and(|w| w.ticket == self.ticket)
        {
            waiting.remove(&self.msg_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_to(id: &str) -> Message {
        let mut m = Message::default();
        m.header.parent_msg_id = id.into();
        m
    }

    #[test]
    fn resolve_reaches_the_waiter_once() {
        let pending = Pending::default();
        let (_guard, mut rx) = pending.register("a").unwrap();
        assert_eq!(pending.len(), 1);
        assert!(pending.resolve(reply_to("a")).is_none());
        assert_eq!(rx.try_recv().unwrap().parent_id(), Some("a"));
        assert_eq!(pending.len(), 0);
        assert!(pending.resolve(reply_to("a")).is_some());
    }

    #[test]
    fn guard_cleans_up_and_rejects_duplicates() {
        let pending = Pending::default();
        let (guard, _rx) = pending.register("a").unwrap();
        assert!(matches!(
            pending.register("a"),
            Err(BusError::DuplicateRequest { .. })
        ));
        drop(guard);
        assert_eq!(pending.len(), 0);
        assert!(pending.resolve(reply_to("a")).is_some());
        assert!(pending.resolve(Message::default()).is_some());
    }

    #[test]
    fn stale_guard_leaves_a_newer_entry_alone() {
        let pending = Pending::default();
        let (old, _rx) = pending.register("a").unwrap();
        assert!(pending.resolve(reply_to("a")).is_none());
        let (_new, _rx2) = pending.register("a").unwrap();
        drop(old);
        assert_eq!(pending.len(), 1);
    }
}
