//! EdgeController's Prometheus metrics, under the `edgecontroller_` prefix.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `N` labels, e.g. `[("op", "insert"), ("kind", "Pod")]`.
type Labels<const N: usize> = [(&'static str, &'static str); N];

/// How an upstream message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done (and answered when an answer was due).
    Ok,
    /// Failed; the edge got an `error` reply.
    Error,
    /// A reply from the edge, or a pod report for another incarnation:
    /// nothing to do.
    Ignored,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Ignored => "ignored",
        }
    }
}

/// The handles.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    messages_down: Family<Labels<2>, Counter>,
    upstream: Family<Labels<2>, Counter>,
    api_errors: Family<Labels<1>, Counter>,
    errors: Family<Labels<1>, Counter>,
    resyncs: Family<Labels<1>, Counter>,
    marked_unknown: Counter,
    sent_objects: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("edgecontroller");
        r.register(
            "messages_down",
            "Messages sent towards edge nodes, by operation and kind",
            m.messages_down.clone(),
        );
        r.register(
            "upstream",
            "Messages from edge nodes, by KubeEdge resource type and outcome (ok, error, ignored)",
            m.upstream.clone(),
        );
        r.register(
            "api_errors",
            "Failed Kubernetes API calls, by call",
            m.api_errors.clone(),
        );
        r.register(
            "errors",
            "Failures, by kind (malformed, unsupported, kube, conflict, bus)",
            m.errors.clone(),
        );
        r.register(
            "resyncs",
            "Full comparisons of every node's objects, by cause (start, relist, lagged)",
            m.resyncs.clone(),
        );
        r.register(
            "nodes_marked_unknown",
            "Times a node's conditions were set to Unknown because its link was down",
            m.marked_unknown.clone(),
        );
        r.register(
            "sent_objects",
            "Objects (per node) this process has sent to edge nodes and not deleted",
            m.sent_objects.clone(),
        );
        m
    }

    /// One message sent down.
    pub(crate) fn down(&self, op: &'static str, kind: &'static str) {
        self.messages_down
            .get_or_create(&[("op", op), ("kind", kind)])
            .inc();
    }

    /// One upstream message handled.
    pub(crate) fn upstream(&self, kind: &'static str, outcome: Outcome) {
        self.upstream
            .get_or_create(&[("type", kind), ("outcome", outcome.as_str())])
            .inc();
    }

    /// One failed API call.
    pub(crate) fn api_error(&self, call: &'static str) {
        self.api_errors.get_or_create(&[("call", call)]).inc();
    }

    /// One failure.
    pub(crate) fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&[("kind", kind)]).inc();
    }

    /// One full comparison.
    pub(crate) fn resync(&self, cause: &'static str) {
        self.resyncs.get_or_create(&[("cause", cause)]).inc();
    }

    /// One node marked Unknown.
    pub(crate) fn marked_unknown(&self) {
        self.marked_unknown.inc();
    }

    /// The ledger's size now.
    pub(crate) fn sent_objects(&self, n: usize) {
        self.sent_objects.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
