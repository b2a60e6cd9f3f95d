//! DeviceController's Prometheus metrics, under the `devicecontroller_`
//! prefix.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// One label, e.g. `[("kind", "membership")]`.
type Label = [(&'static str, &'static str); 1];

/// The handles.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    messages_down: Family<Label, Counter>,
    status_patches: Family<Label, Counter>,
    errors: Family<Label, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("devicecontroller");
        r.register(
            "messages_down",
            "Messages sent towards edge nodes, by kind (membership, membership_detail, twin, attributes, device, devicemodel)",
            m.messages_down.clone(),
        );
        r.register(
            "status_patches",
            "Device status patches written, by cause (twins, state, pruned)",
            m.status_patches.clone(),
        );
        r.register(
            "errors",
            "Failures, by kind (malformed, kube, bus)",
            m.errors.clone(),
        );
        m
    }

    /// One message sent down.
    pub(crate) fn down(&self, kind: &'static str) {
        self.messages_down.get_or_create(&[("kind", kind)]).inc();
    }

    /// One status patch written.
    pub(crate) fn patched(&self, cause: &'static str) {
        self.status_patches.get_or_create(&[("cause", cause)]).inc();
    }

    /// One failure.
    pub(crate) fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&[("kind", kind)]).inc();
    }
}
