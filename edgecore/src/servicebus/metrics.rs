//! ServiceBus's Prometheus metrics, under the `servicebus_` prefix.
//!
//! `direction` is `cloud_to_edge` (the cloud calls a local app) or
//! `edge_to_cloud` (a local app calls the cloud); `code` is the status code
//! the caller got; `part` is `request` or `response`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The cloud calls a local app.
pub(crate) const CLOUD_TO_EDGE: &str = "cloud_to_edge";
/// A local app calls the cloud.
pub(crate) const EDGE_TO_CLOUD: &str = "edge_to_cloud";

type Outcome = [(&'static str, String); 2];
type Part = [(&'static str, &'static str); 2];

/// The metric handles (cheap clones of shared atomics).
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    requests: Family<Outcome, Counter>,
    bytes: Family<Part, Counter>,
    targets: Family<[(&'static str, &'static str); 1], Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("servicebus");
        r.register(
            "requests",
            "Requests handled, by direction and the status code answered",
            m.requests.clone(),
        );
        r.register(
            "body_bytes",
            "Body bytes carried, by direction and part (request, response)",
            m.bytes.clone(),
        );
        r.register(
            "target_changes",
            "Allowed target URLs added or removed by the cloud (op start, stop)",
            m.targets.clone(),
        );
        m
    }

    /// One request in `direction` ended with `code`.
    pub(crate) fn request(&self, direction: &'static str, code: u16) {
        self.requests
            .get_or_create(&[
                ("direction", direction.to_owned()),
                ("code", code.to_string()),
            ])
            .inc();
    }

    /// `n` body bytes of `part` went in `direction`.
    pub(crate) fn bytes(&self, direction: &'static str, part: &'static str, n: usize) {
        self.bytes
            .get_or_create(&[("direction", direction), ("part", part)])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// `n` target URLs were added (`start`) or removed (`stop`).
    pub(crate) fn targets(&self, op: &'static str, n: usize) {
        self.targets
            .get_or_create(&[("operation", op)])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    #[test]
    fn metrics_are_exposed() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.request(CLOUD_TO_EDGE, 404);
        m.bytes(EDGE_TO_CLOUD, "request", 12);
        m.targets("start", 2);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"servicebus_requests_total{direction="cloud_to_edge",code="404"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"servicebus_body_bytes_total{direction="edge_to_cloud",part="request"} 12"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"servicebus_target_changes_total{operation="start"} 2"#));
    }
}
