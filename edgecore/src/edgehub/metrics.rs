//! EdgeHub's Prometheus metrics, registered under the `edgehub_` prefix in
//! the registry the daemon passes in.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `direction` label values of `edgehub_messages_total`.
pub(crate) const UP: &str = "up";
/// Messages received from the cloud.
pub(crate) const DOWN: &str = "down";

type Direction = [(&'static str, &'static str); 1];

/// The metric handles (cheap clones of shared atomics).
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    connected: Gauge,
    messages: Family<Direction, Counter>,
    outbox_depth: Gauge,
    reconnects: Counter,
    dial_failures: Counter,
    outbox_rejected: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `edgehub_`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("edgehub");
        r.register(
            "connected",
            "1 while the link to the cloud is up",
            m.connected.clone(),
        );
        r.register(
            "messages",
            "Messages sent to (up) and received from (down) the cloud",
            m.messages.clone(),
        );
        r.register(
            "outbox_depth",
            "Cloud-bound messages waiting in the outbox",
            m.outbox_depth.clone(),
        );
        r.register(
            "reconnects",
            "Connections to the cloud lost and redialled",
            m.reconnects.clone(),
        );
        r.register(
            "dial_failures",
            "Failed attempts to connect to the cloud",
            m.dial_failures.clone(),
        );
        r.register(
            "outbox_rejected",
            "Cloud-bound messages dropped because the outbox was full or failed",
            m.outbox_rejected.clone(),
        );
        m
    }

    pub(crate) fn set_connected(&self, up: bool) {
        self.connected.set(i64::from(up));
    }

    pub(crate) fn message(&self, direction: &'static str) {
        self.messages
            .get_or_create(&[("direction", direction)])
            .inc();
    }

    pub(crate) fn set_outbox_depth(&self, len: u64) {
        self.outbox_depth
            .set(i64::try_from(len).unwrap_or(i64::MAX));
    }

    pub(crate) fn reconnect(&self) {
        self.reconnects.inc();
    }

    pub(crate) fn dial_failure(&self) {
        self.dial_failures.inc();
    }

    pub(crate) fn outbox_rejected(&self) {
        self.outbox_rejected.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.set_connected(true);
        m.message(UP);
        m.message(DOWN);
        m.set_outbox_depth(3);
        m.reconnect();
        m.dial_failure();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "edgehub_connected 1",
            "edgehub_messages_total{direction=\"up\"} 1",
            "edgehub_messages_total{direction=\"down\"} 1",
            "edgehub_outbox_depth 3",
            "edgehub_reconnects_total 1",
            "edgehub_dial_failures_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
