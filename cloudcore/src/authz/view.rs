//! What the rules need to know about the cluster, as a trait: the shared
//! reflectors ([`Scope`]) answer in the daemon, a table answers in the
//! unit tests.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::scope::{pod_configmaps, pod_node, pod_secrets, Scope};

/// The service account a pod runs as when its spec names none.
pub(crate) const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// A pod, as far as authorization cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodFacts {
    /// The edge node it is bound to (`None` when unbound or the node is not
    /// an edge node).
    pub(crate) node: Option<String>,
    /// Its UID.
    pub(crate) uid: String,
    /// The service account it runs as.
    pub(crate) service_account: String,
}

/// Questions about the cluster's current state. Answers come from caches:
/// they must be quick and never block.
pub(crate) trait View: Send + Sync {
    /// The pod `namespace/name`, if it exists.
    fn pod(&self, namespace: &str, name: &str) -> Option<PodFacts>;
    /// Whether a pod bound to `node` references configmap `namespace/name`.
    fn configmap_used(&self, node: &str, namespace: &str, name: &str) -> bool;
    /// Whether a pod bound to `node` references secret `namespace/name`.
    fn secret_used(&self, node: &str, namespace: &str, name: &str) -> bool;
    /// Whether a pod bound to `node` runs as service account
    /// `namespace/name`.
    fn service_account_used(&self, node: &str, namespace: &str, name: &str) -> bool;
    /// The node the Device `namespace/name` is bound to, if it exists.
    fn device_node(&self, namespace: &str, name: &str) -> Option<String>;
}

/// The service account `pod` runs as: `spec.serviceAccountName`, else the
/// deprecated `spec.serviceAccount`, else `default`.
pub(crate) fn service_account(pod: &Pod) -> &str {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.service_account_name.as_deref())
        .or_else(|| spec.and_then(|s| s.service_account.as_deref()))
        .filter(|name| !name.is_empty())
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
}

impl View for Scope {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodFacts> {
        let pod = Scope::pod(self, namespace, name)?;
        let node = pod_node(&pod)
            .filter(|node| self.is_edge_node(node))
            .map(str::to_owned);
        Some(PodFacts {
            node,
            uid: pod.uid().unwrap_or_default(),
            service_account: service_account(&pod).to_owned(),
        })
    }

    fn configmap_used(&self, node: &str, namespace: &str, name: &str) -> bool {
        a_pod_on(self, node, namespace, |pod| {
            pod_configmaps(pod).contains(name)
        })
    }

    fn secret_used(&self, node: &str, namespace: &str, name: &str) -> bool {
        a_pod_on(self, node, namespace, |pod| pod_secrets(pod).contains(name))
    }

    fn service_account_used(&self, node: &str, namespace: &str, name: &str) -> bool {
        a_pod_on(self, node, namespace, |pod| service_account(pod) == name)
    }

    fn device_node(&self, namespace: &str, name: &str) -> Option<String> {
        self.nodes_for(crate::scope::EdgeKind::Device, namespace, name)
            .into_iter()
            .next()
    }
}

/// Whether a pod bound to `node` in `namespace` satisfies `test`: one pass
/// over the node's pods, nothing collected (asked per upstream query).
fn a_pod_on(scope: &Scope, node: &str, namespace: &str, test: impl Fn(&Pod) -> bool) -> bool {
    scope
        .pods_on(node)
        .iter()
        .any(|pod| pod.metadata.namespace.as_deref().unwrap_or_default() == namespace && test(pod))
}
