//! SyncController's Prometheus metrics, under the `synccontroller_`
//! prefix.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One label, e.g. `[("op", "update")]`.
type Label = [(&'static str, &'static str); 1];

/// The handles (cheap clones of shared atomics).
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    acks: Counter,
    tracked: Gauge,
    api_writes: Family<Label, Counter>,
    api_errors: Family<Label, Counter>,
    resync_sends: Family<Label, Counter>,
    gc_deletions: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("synccontroller");
        r.register(
            "acks_recorded",
            "Edge acks of objects recorded in the sync index",
            m.acks.clone(),
        );
        r.register(
            "tracked_objects",
            "(node, object) pairs in the sync index",
            m.tracked.clone(),
        );
        r.register(
            "api_writes",
            "ObjectSync/ClusterObjectSync writes, by op (create, status, delete)",
            m.api_writes.clone(),
        );
        r.register(
            "api_errors",
            "Failed Kubernetes API requests, by op (list, create, status, delete)",
            m.api_errors.clone(),
        );
        r.register(
            "resync_sends",
            "Catch-up messages handed to CloudHub, by op (insert, update, delete)",
            m.resync_sends.clone(),
        );
        r.register(
            "gc_deletions",
            "Sync records dropped because their node is gone",
            m.gc_deletions.clone(),
        );
        m
    }

    /// An ack was recorded.
    pub(crate) fn ack(&self) {
        self.acks.inc();
    }

    /// The index now holds `n` entries.
    pub(crate) fn tracked(&self, n: usize) {
        self.tracked.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// One API write done.
    pub(crate) fn write(&self, op: &'static str) {
        self.api_writes.get_or_create(&[("op", op)]).inc();
    }

    /// One API request failed.
    pub(crate) fn error(&self, op: &'static str) {
        self.api_errors.get_or_create(&[("op", op)]).inc();
    }

    /// One catch-up message sent.
    pub(crate) fn resync(&self, op: &'static str) {
        self.resync_sends.get_or_create(&[("op", op)]).inc();
    }

    /// `n` records collected.
    pub(crate) fn collected(&self, n: usize) {
        self.gc_deletions
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }
}
