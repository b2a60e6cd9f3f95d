//! EventBus's Prometheus metrics, under the `eventbus_` prefix in the
//! registry the daemon passes in.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `reason` values of `eventbus_dropped_total`.
pub(crate) mod reason {
    /// A payload over the size limit (either way).
    pub(crate) const OVERSIZED: &str = "oversized";
    /// A non-UTF-8 payload on a DeviceTwin topic.
    pub(crate) const NOT_UTF8: &str = "not_utf8";
    /// More messages from the broker than EventBus could hand on.
    pub(crate) const BACKLOG: &str = "backlog";
    /// A publish from the bus while the broker is unreachable and the
    /// outgoing queue is full.
    pub(crate) const BROKER_UNREACHABLE: &str = "broker_unreachable";
    /// Nobody on the bus took a message from the broker.
    pub(crate) const NO_RECEIVER: &str = "no_receiver";
    /// A bus message EventBus cannot carry out (bad topic, unknown op, ...).
    pub(crate) const REFUSED: &str = "refused";
}

type Label = [(&'static str, &'static str); 1];

/// The metric handles (cheap clones of shared atomics).
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    received: Family<Label, Counter>,
    published: Counter,
    dropped: Family<Label, Counter>,
    connected: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("eventbus");
        r.register(
            "messages_received",
            "Messages received from MQTT brokers, by where they went (twin or cloud)",
            m.received.clone(),
        );
        r.register(
            "messages_published",
            "PUBLISH packets written to MQTT brokers (resends included)",
            m.published.clone(),
        );
        r.register(
            "dropped",
            "Messages EventBus did not carry, by reason",
            m.dropped.clone(),
        );
        r.register(
            "connected",
            "MQTT brokers EventBus is connected to",
            m.connected.clone(),
        );
        m
    }

    pub(crate) fn received(&self, route: &'static str) {
        self.received.get_or_create(&[("route", route)]).inc();
    }

    pub(crate) fn published(&self) {
        self.published.inc();
    }

    pub(crate) fn dropped(&self, reason: &'static str) {
        self.dropped.get_or_create(&[("reason", reason)]).inc();
    }

    pub(crate) fn connected(&self, up: bool) {
        if up {
            self.connected.inc();
        } else {
            self.connected.dec();
        }
    }
}
