//! DeviceTwin's Prometheus metrics, under the `devicetwin_` prefix.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = [(&'static str, &'static str); 2];

/// The metric handles (cheap clones of shared atomics).
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    messages: Family<Labels, Counter>,
    commit_failures: Counter,
    devices: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("devicetwin");
        r.register(
            "messages",
            "Messages handled, by origin (mqtt, cloud) and outcome (ok, unchanged, invalid, not_found, ignored)",
            m.messages.clone(),
        );
        r.register(
            "commit_failures",
            "Batches whose device rows could not be written (answered with code 500)",
            m.commit_failures.clone(),
        );
        r.register("devices", "Devices bound to this node", m.devices.clone());
        m
    }

    pub(crate) fn handled(&self, origin: &'static str, outcome: &'static str) {
        self.messages
            .get_or_create(&[("origin", origin), ("outcome", outcome)])
            .inc();
    }

    pub(crate) fn commit_failed(&self) {
        self.commit_failures.inc();
    }

    pub(crate) fn set_devices(&self, n: usize) {
        self.devices.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
