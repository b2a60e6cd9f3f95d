//! Which nodes have a live session right now, and a broadcast of every
//! change: the controllers' view of the links CloudHub holds.
//!
//! EdgeController marks a node NotReady when its link goes and Ready when it
//! returns; SyncController resyncs a node the moment it reconnects. The
//! node tasks report through [`NodeLinks::set`], which never blocks: a
//! controller that falls behind the broadcast gets `Lagged` and reads
//! [`NodeLinks::connected`] instead.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

/// Link changes buffered for slow subscribers before they lag.
const EVENT_CAPACITY: usize = 1024;

/// A node's link came or went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The node has a session (first or after a reconnect).
    Connected(String),
    /// The node's last session ended (timeout, error, node deleted,
    /// CloudHub stopping).
    Disconnected(String),
}

impl LinkEvent {
    /// The node it is about.
    pub fn node(&self) -> &str {
        match self {
            LinkEvent::Connected(node) | LinkEvent::Disconnected(node) => node,
        }
    }
}

/// The shared, cloneable registry of connected nodes.
#[derive(Debug, Clone)]
pub struct NodeLinks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connected: Mutex<BTreeSet<String>>,
    events: broadcast::Sender<LinkEvent>,
}

impl Default for NodeLinks {
    fn default() -> Self {
        NodeLinks::new()
    }
}

impl NodeLinks {
    /// No node connected.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        NodeLinks {
            inner: Arc::new(Inner {
                connected: Mutex::new(BTreeSet::new()),
                events,
            }),
        }
    }

    /// Link changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LinkEvent> {
        self.inner.events.subscribe()
    }

    /// Whether `node` has a session now.
    pub fn is_connected(&self, node: &str) -> bool {
        self.lock().contains(node)
    }

    /// The nodes with a session now.
    pub fn connected(&self) -> BTreeSet<String> {
        self.lock().clone()
    }

    /// Records that `node` now has (`up`) or lacks a session; broadcasts
    /// only real changes.
    pub(crate) fn set(&self, node: &str, up: bool) {
        let changed = {
            let mut connected = self.lock();
            if up {
                connected.insert(node.to_owned())
            } else {
                connected.remove(node)
            }
        };
        if changed {
            let event = if up {
                LinkEvent::Connected(node.to_owned())
            } else {
                LinkEvent::Disconnected(node.to_owned())
            };
            // No subscriber is fine: nobody is interested yet.
            let _ = self.inner.events.send(event);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.inner
            .connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_changes() {
        let links = NodeLinks::new();
        let mut events = links.subscribe();
        links.set("a", true);
        links.set("a", true);
        links.set("b", true);
        links.set("a", false);
        links.set("a", false);
        assert!(!links.is_connected("a"));
        assert!(links.is_connected("b"));
        assert_eq!(links.connected().into_iter().collect::<Vec<_>>(), ["b"]);
        let got: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).collect();
        assert_eq!(
            got,
            [
                LinkEvent::Connected("a".into()),
                LinkEvent::Connected("b".into()),
                LinkEvent::Disconnected("a".into()),
            ]
        );
        assert_eq!(got[2].node(), "a");
    }
}
