//! MetaManager's Prometheus metrics, under the `metamanager_` prefix.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type Label = [(&'static str, &'static str); 1];

/// The metric handles (cheap clones of shared atomics).
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    applied: Family<Label, Counter>,
    write_failures: Counter,
    acks: Counter,
    forwarded: Counter,
    queries: Family<Label, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("metamanager");
        r.register(
            "applied",
            "Object writes committed, by outcome (created, updated, deleted, unchanged)",
            m.applied.clone(),
        );
        r.register(
            "write_failures",
            "Writes that could not be committed (not acked; the cloud resends)",
            m.write_failures.clone(),
        );
        r.register(
            "acks",
            "Cloud messages acked after their commit",
            m.acks.clone(),
        );
        r.register(
            "forwarded",
            "Local messages sent on to the cloud",
            m.forwarded.clone(),
        );
        r.register(
            "queries",
            "Queries answered, by where the answer came from (remote, local)",
            m.queries.clone(),
        );
        m
    }

    pub(crate) fn applied(&self, outcome: &'static str) {
        self.applied.get_or_create(&[("outcome", outcome)]).inc();
    }

    pub(crate) fn write_failed(&self) {
        self.write_failures.inc();
    }

    pub(crate) fn acked(&self) {
        self.acks.inc();
    }

    pub(crate) fn forwarded(&self) {
        self.forwarded.inc();
    }

    pub(crate) fn query(&self, source: &'static str) {
        self.queries.get_or_create(&[("source", source)]).inc();
    }
}
