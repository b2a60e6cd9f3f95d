//! How strategic merge patch merges each list of the built-in types: the
//! `patchStrategy` and `patchMergeKey` struct tags of `k8s.io/api`, for the
//! fields of the resources the embedded API serves (and the pod template
//! of the workload types). Pure; [`strategy`] answers for one field, given
//! the kind of the object and the field names leading to it.
//!
//! Lists without a tag are atomic: a patch replaces them whole (pod
//! tolerations, container statuses, node taints, endpoint subsets, ...).

/// How a patch merges a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    /// The patch's list replaces the object's.
    Replace,
    /// Lists of objects merged element by element, matched by this key.
    MergeByKey(&'static str),
    /// Lists of scalars merged as a set (the object's order, then new
    /// values), e.g. `metadata.finalizers`.
    MergeSet,
}

/// Container lists: their elements are containers.
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The strategy of the list `field` inside the map at `path` (the field
/// names from the object's root, list elements adding nothing) of an
/// object of `kind`.
pub(crate) fn strategy(kind: &str, path: &[String], field: &str) -> ListStrategy {
    use ListStrategy::{MergeByKey, MergeSet, Replace};
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let parent = path.last().copied().unwrap_or("");
    // A container, wherever a pod spec is (pods, templates of workloads).
    if CONTAINER_LISTS.contains(&parent) {
        return match field {
            "ports" => MergeByKey("containerPort"),
            "env" => MergeByKey("name"),
            "volumeMounts" => MergeByKey("mountPath"),
            "volumeDevices" => MergeByKey("devicePath"),
            _ => Replace,
        };
    }
    match (path.as_slice(), field) {
        (["metadata"] | [.., "template", "metadata"], "finalizers") => MergeSet,
        (["metadata"] | [.., "template", "metadata"], "ownerReferences") => MergeByKey("uid"),
        // Service ports; a pod spec has no `ports`.
        (["spec"], "ports") if kind == "Service" => MergeByKey("port"),
        (["spec"], "podCIDRs") if kind == "Node" => MergeSet,
        // ServiceAccount.secrets.
        ([], "secrets") if kind == "ServiceAccount" => MergeByKey("name"),
        // A pod spec: the pod's, or a template's.
        ([.., "spec"], f) if pod_spec(kind, &path) => match f {
            "containers" | "initContainers" | "ephemeralContainers" => MergeByKey("name"),
            "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates" => {
                MergeByKey("name")
            }
            "hostAliases" => MergeByKey("ip"),
            "topologySpreadConstraints" => MergeByKey("topologyKey"),
            _ => Replace,
        },
        (["status"], "conditions") => MergeByKey("type"),
        (["status"], "addresses") if kind == "Node" => MergeByKey("type"),
        (["status"], "podIPs" | "hostIPs") if kind == "Pod" => MergeByKey("ip"),
        _ => Replace,
    }
}

/// Whether the map at `path` (ending in `spec`) of a `kind` is a pod spec.
fn pod_spec(kind: &str, path: &[&str]) -> bool {
    match path {
        ["spec"] => kind == "Pod",
        [.., "template", "spec"] => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ListStrategy::{MergeByKey, MergeSet, Replace};

    fn at(kind: &str, path: &str, field: &str) -> ListStrategy {
        let path: Vec<String> = path
            .split('.')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        strategy(kind, &path, field)
    }

    #[test]
    fn pod_lists() {
        assert_eq!(at("Pod", "spec", "containers"), MergeByKey("name"));
        assert_eq!(at("Pod", "spec", "initContainers"), MergeByKey("name"));
        assert_eq!(at("Pod", "spec", "volumes"), MergeByKey("name"));
        assert_eq!(at("Pod", "spec", "imagePullSecrets"), MergeByKey("name"));
        assert_eq!(at("Pod", "spec", "tolerations"), Replace);
        assert_eq!(at("Pod", "spec.containers", "env"), MergeByKey("name"));
        assert_eq!(
            at("Pod", "spec.containers", "ports"),
            MergeByKey("containerPort")
        );
        assert_eq!(
            at("Pod", "spec.initContainers", "volumeMounts"),
            MergeByKey("mountPath")
        );
        assert_eq!(at("Pod", "spec.containers", "args"), Replace);
        assert_eq!(at("Pod", "status", "conditions"), MergeByKey("type"));
        assert_eq!(at("Pod", "status", "podIPs"), MergeByKey("ip"));
        assert_eq!(at("Pod", "status", "containerStatuses"), Replace);
    }

    #[test]
    fn other_kinds() {
        assert_eq!(at("Service", "spec", "ports"), MergeByKey("port"));
        assert_eq!(at("Endpoints", "subsets", "ports"), Replace);
        assert_eq!(at("Node", "status", "addresses"), MergeByKey("type"));
        assert_eq!(at("Node", "spec", "taints"), Replace);
        assert_eq!(at("Node", "spec", "podCIDRs"), MergeSet);
        assert_eq!(at("ConfigMap", "metadata", "finalizers"), MergeSet);
        assert_eq!(
            at("Secret", "metadata", "ownerReferences"),
            MergeByKey("uid")
        );
        assert_eq!(at("ServiceAccount", "", "secrets"), MergeByKey("name"));
        assert_eq!(
            at("Deployment", "spec.template.spec", "containers"),
            MergeByKey("name")
        );
        assert_eq!(
            at("Deployment", "spec.template.spec.containers", "env"),
            MergeByKey("name")
        );
        assert_eq!(at("Namespace", "spec", "finalizers"), Replace);
    }
}
