//! Pure answers about single objects: is a Node an edge node, which node a
//! pod is bound to, which configmaps and secrets a pod references.
//!
//! A pod references a configmap or secret through volumes (also projected
//! ones), container and init-container `env[].valueFrom` and `envFrom`,
//! and (secrets) `imagePullSecrets`: everything the kubelet would fetch to
//! run it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};

/// The label that marks a Node as an edge node (its value is ignored).
pub const EDGE_NODE_LABEL: &str = "node-role.kubernetes.io/edge";

/// Whether `node` carries [`EDGE_NODE_LABEL`].
pub fn is_edge_node(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .is_some_and(|labels| labels.contains_key(EDGE_NODE_LABEL))
}

/// The node `pod` is bound to (`spec.nodeName`), if any.
pub fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.node_name.as_deref())
        .filter(|name| !name.is_empty())
}

/// The names of the configmaps `pod` references (in its namespace).
pub fn pod_configmaps(pod: &Pod) -> BTreeSet<String> {
    pod_refs(pod).configmaps
}

/// The names of the secrets `pod` references (in its namespace).
pub fn pod_secrets(pod: &Pod) -> BTreeSet<String> {
    pod_refs(pod).secrets
}

/// What one pod references, by name.
#[derive(Debug, Default)]
pub(crate) struct PodRefs {
    /// Configmap names.
    pub(crate) configmaps: BTreeSet<String>,
    /// Secret names.
    pub(crate) secrets: BTreeSet<String>,
}

/// Walks `pod`'s volumes, containers and pull secrets once.
pub(crate) fn pod_refs(pod: &Pod) -> PodRefs {
    let mut refs = PodRefs::default();
    let Some(spec) = &pod.spec else {
        return refs;
    };
    for volume in spec.volumes.iter().flatten() {
        refs.configmaps
            .extend(volume.config_map.as_ref().map(|cm| cm.name.clone()));
        refs.secrets
            .extend(volume.secret.as_ref().and_then(|s| s.secret_name.clone()));
        let projected = volume.projected.as_ref().and_then(|p| p.sources.as_ref());
        for source in projected.into_iter().flatten() {
            refs.configmaps
                .extend(source.config_map.as_ref().map(|cm| cm.name.clone()));
            refs.secrets
                .extend(source.secret.as_ref().map(|s| s.name.clone()));
        }
    }
    for container in containers(spec) {
        for from in container
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref())
        {
            refs.configmaps
                .extend(from.config_map_key_ref.as_ref().map(|k| k.name.clone()));
            refs.secrets
                .extend(from.secret_key_ref.as_ref().map(|k| k.name.clone()));
        }
        for from in container.env_from.iter().flatten() {
            refs.configmaps
                .extend(from.config_map_ref.as_ref().map(|cm| cm.name.clone()));
            refs.secrets
                .extend(from.secret_ref.as_ref().map(|s| s.name.clone()));
        }
    }
    refs.secrets.extend(
        spec.image_pull_secrets
            .iter()
            .flatten()
            .map(|p| p.name.clone()),
    );
    refs.configmaps.retain(|name| !name.is_empty());
    refs.secrets.retain(|name| !name.is_empty());
    refs
}

fn containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures are known to parse")]

    use serde_json::json;

    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn edge_nodes_carry_the_label() {
        let node = |labels: serde_json::Value| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}})).unwrap()
        };
        assert!(is_edge_node(&node(json!({EDGE_NODE_LABEL: ""}))));
        assert!(!is_edge_node(&node(json!({"other": "x"}))));
        assert!(!is_edge_node(&node(json!(null))));
    }

    #[test]
    fn binding_is_the_node_name() {
        let bound = pod(json!({"nodeName": "edge-1", "containers": []}));
        assert_eq!(pod_node(&bound), Some("edge-1"));
        let unbound = pod(json!({"nodeName": "", "containers": []}));
        assert_eq!(pod_node(&unbound), None);
    }

    #[test]
    fn every_kind_of_reference_counts() {
        let p = pod(json!({
            "containers": [{
                "name": "c",
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "k"}}},
                    {"name": "C", "value": "plain"}
                ],
                "envFrom": [{"configMapRef": {"name": "cm-from"}}, {"secretRef": {"name": "s-from"}}]
            }],
            "initContainers": [{
                "name": "i",
                "envFrom": [{"configMapRef": {"name": "cm-init"}}]
            }],
            "volumes": [
                {"name": "v1", "configMap": {"name": "cm-vol"}},
                {"name": "v2", "secret": {"secretName": "s-vol"}},
                {"name": "v3", "projected": {"sources": [
                    {"configMap": {"name": "cm-proj"}},
                    {"secret": {"name": "s-proj"}}
                ]}}
            ],
            "imagePullSecrets": [{"name": "s-pull"}]
        }));
        let cms: Vec<_> = pod_configmaps(&p).into_iter().collect();
        assert_eq!(cms, ["cm-env", "cm-from", "cm-init", "cm-proj", "cm-vol"]);
        let secrets: Vec<_> = pod_secrets(&p).into_iter().collect();
        assert_eq!(secrets, ["s-env", "s-from", "s-proj", "s-pull", "s-vol"]);
    }

    #[test]
    fn a_pod_without_spec_references_nothing() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert!(pod_configmaps(&p).is_empty());
        assert!(pod_secrets(&p).is_empty());
    }
}
