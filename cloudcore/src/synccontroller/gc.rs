//! Garbage collection of sync records, decided without I/O.
//!
//! KubeEdge deletes, at start, the records of nodes that no longer exist.
//! Apiary also syncs Devices to node names that never were Nodes (a
//! Device's `spec.nodeName` needs no Node), so "no Node" alone cannot mean
//! "gone". The policy, per node with records:
//!
//! - it is a Node, or it is connected → keep;
//! - it was an edge Node — its records include its own Node object, which
//!   only an edge Node is sent — and the Node is gone → collect at once;
//! - otherwise it is a device-only name: keep while anything in the scope
//!   is bound to it (a Device names it); once nothing is, collect when it
//!   has stayed so, disconnected and Node-less, for a grace period.
//!
//! The grace clock lives in memory and starts when this process first sees
//! the node so: a restart starts it again, which errs on keeping records.
//! A collected node that comes back is sent everything afresh (inserts).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// What is known about a node with sync records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeFacts {
    /// A Node of that name exists.
    pub(crate) is_node: bool,
    /// It has a session with CloudHub.
    pub(crate) connected: bool,
    /// Its records include its own Node object.
    pub(crate) was_node: bool,
    /// Something in the scope is bound to it now.
    pub(crate) bound: bool,
}

/// What to do with a node's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep them.
    Keep,
    /// Delete them now.
    Collect,
    /// Delete them once the node has stayed so for the grace period.
    AfterGrace,
}

/// The policy in the module docs.
pub(crate) fn verdict(facts: NodeFacts) -> Verdict {
    if facts.is_node || facts.connected {
        Verdict::Keep
    } else if facts.was_node {
        Verdict::Collect
    } else if facts.bound {
        Verdict::Keep
    } else {
        Verdict::AfterGrace
    }
}

/// Since when each node has been waiting out its grace period.
#[derive(Debug)]
pub(crate) struct GcClock {
    grace: Duration,
    since: HashMap<String, Instant>,
}

impl GcClock {
    /// No node waiting; a grace period of `grace`.
    pub(crate) fn new(grace: Duration) -> Self {
        GcClock {
            grace,
            since: HashMap::new(),
        }
    }

    /// Whether `node`'s records go now, given its `verdict` at `now`.
    pub(crate) fn due(&mut self, node: &str, verdict: Verdict, now: Instant) -> bool {
        match verdict {
            Verdict::Keep => {
                self.since.remove(node);
                false
            }
            Verdict::Collect => {
                self.since.remove(node);
                true
            }
            Verdict::AfterGrace => {
                let since = *self.since.entry(node.to_owned()).or_insert(now);
                let due = now.duration_since(since) >= self.grace;
                if due {
                    self.since.remove(node);
                }
                due
            }
        }
    }

    /// Forgets nodes that no longer have records.
    pub(crate) fn retain(&mut self, nodes: &BTreeSet<String>) {
        self.since.retain(|node, _| nodes.contains(node));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GONE: NodeFacts = NodeFacts {
        is_node: false,
        connected: false,
        was_node: false,
        bound: false,
    };

    #[test]
    fn nodes_and_connected_names_are_kept() {
        let node = NodeFacts {
            is_node: true,
            was_node: true,
            ..GONE
        };
        assert_eq!(verdict(node), Verdict::Keep);
        let connected = NodeFacts {
            connected: true,
            was_node: true,
            ..GONE
        };
        assert_eq!(verdict(connected), Verdict::Keep);
    }

    #[test]
    fn deleted_edge_nodes_are_collected_at_once() {
        let deleted = NodeFacts {
            was_node: true,
            bound: true,
            ..GONE
        };
        assert_eq!(verdict(deleted), Verdict::Collect);
    }

    #[test]
    fn device_only_names_wait_while_bound_then_for_the_grace() {
        let bound = NodeFacts {
            bound: true,
            ..GONE
        };
        assert_eq!(verdict(bound), Verdict::Keep);
        assert_eq!(verdict(GONE), Verdict::AfterGrace);

        let t0 = Instant::now();
        let grace = Duration::from_secs(600);
        let mut clock = GcClock::new(grace);
        assert!(!clock.due("d", Verdict::AfterGrace, t0));
        assert!(!clock.due("d", Verdict::AfterGrace, t0 + grace / 2));
        // Bound again for a moment: the clock starts over.
        assert!(!clock.due("d", Verdict::Keep, t0 + grace / 2));
        assert!(!clock.due("d", Verdict::AfterGrace, t0 + grace));
        assert!(!clock.due("d", Verdict::AfterGrace, t0 + grace + grace / 2));
        assert!(clock.due("d", Verdict::AfterGrace, t0 + grace * 2));
        assert!(clock.due("n", Verdict::Collect, t0));

        assert!(!clock.due("x", Verdict::AfterGrace, t0));
        clock.retain(&BTreeSet::new());
        assert!(
            !clock.due("x", Verdict::AfterGrace, t0 + grace),
            "forgotten"
        );
    }
}
