//! CloudHub's Prometheus metrics, registered under the `cloudhub_` prefix.
//! Every metric is a cheap, cloneable handle shared by the accept loops,
//! sessions and node tasks.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::admission::DropReason;

/// One label, e.g. `[("reason", "node_limit")]`.
type Label = [(&'static str, &'static str); 1];

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Edge → cloud.
    Up,
    /// Cloud → edge.
    Down,
}

/// The handles; see the module docs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    connected_nodes: Gauge,
    messages: Family<Label, Counter>,
    queue_depth: Gauge,
    resends: Counter,
    acks: Counter,
    reconnects: Counter,
    refused: Family<Label, Counter>,
    dropped: Family<Label, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under
    /// `cloudhub_`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("cloudhub");
        r.register(
            "connected_nodes",
            "Edge nodes with a session now",
            m.connected_nodes.clone(),
        );
        r.register(
            "messages",
            "Messages between the cloud and edges, by direction (up, down)",
            m.messages.clone(),
        );
        r.register(
            "queue_depth",
            "Messages held in the per-node downstream queues, all nodes together",
            m.queue_depth.clone(),
        );
        r.register(
            "resends",
            "Downstream messages sent again for want of an ack",
            m.resends.clone(),
        );
        r.register(
            "acks",
            "Downstream messages acked by an edge",
            m.acks.clone(),
        );
        r.register(
            "reconnects",
            "Connections of a node that had connected before",
            m.reconnects.clone(),
        );
        r.register(
            "refused_connections",
            "Connections refused, by reason",
            m.refused.clone(),
        );
        r.register(
            "dropped_messages",
            "Messages dropped, by reason",
            m.dropped.clone(),
        );
        m
    }

    /// A node got a session (`true`) or lost its only one (`false`).
    pub(crate) fn node_connected(&self, up: bool) {
        if up {
            self.connected_nodes.inc();
        } else {
            self.connected_nodes.dec();
        }
    }

    /// A message read from or written to an edge.
    pub(crate) fn message(&self, direction: Direction) {
        let value = match direction {
            Direction::Up => "up",
            Direction::Down => "down",
        };
        self.messages.get_or_create(&[("direction", value)]).inc();
    }

    /// A queue's length changed by `delta`.
    pub(crate) fn queue_depth_changed(&self, delta: i64) {
        if delta != 0 {
            self.queue_depth.inc_by(delta);
        }
    }

    /// A downstream message was sent again.
    pub(crate) fn resend(&self) {
        self.resends.inc();
    }

    /// An edge acked a downstream message.
    pub(crate) fn ack(&self) {
        self.acks.inc();
    }

    /// A node that had connected before connected again.
    pub(crate) fn reconnect(&self) {
        self.reconnects.inc();
    }

    /// A connection was refused for `reason`.
    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&[("reason", reason)]).inc();
    }

    /// `n` messages were dropped for `reason`.
    pub(crate) fn dropped(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.dropped
                .get_or_create(&[("reason", reason.as_str())])
                .inc_by(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn names_carry_the_prefix_and_labels() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.message(Direction::Up);
        m.refused("node_limit");
        m.dropped(DropReason::Stale, 2);
        m.node_connected(true);
        m.queue_depth_changed(3);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        for line in [
            "cloudhub_messages_total{direction=\"up\"} 1",
            "cloudhub_refused_connections_total{reason=\"node_limit\"} 1",
            "cloudhub_dropped_messages_total{reason=\"stale\"} 2",
            "cloudhub_connected_nodes 1",
            "cloudhub_queue_depth 3",
            "cloudhub_resends_total 0",
            "cloudhub_acks_total 0",
            "cloudhub_reconnects_total 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
