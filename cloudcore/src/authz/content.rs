//! Pure readers of the message contents the rules look into: the pod names
//! of a pod status report, an event's involved object, a token request's
//! bound object, a membership request's node, an object's own name, and
//! whether a pod is an acceptable mirror pod.
//!
//! KubeEdge's payload structs without JSON tags (`PodStatusRequest`) are
//! written with Go field names and read case-insensitively by Go, so keys
//! are matched without regard to case where that applies.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::scope::{pod_configmaps, pod_node, pod_secrets};

/// The annotation the kubelet puts on the mirror pod of a static pod.
pub(crate) const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// `obj[key]`, the key matched without regard to ASCII case.
fn field_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn text<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The pod names a pod status report is about: the `Name` of one
/// `PodStatusRequest` or of each in a list (KubeEdge's EdgeController acts
/// on these names, not on the resource's).
pub(crate) fn pod_status_names(content: &Value) -> Vec<String> {
    let name = |entry: &Value| {
        field_ci(entry, "name")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match content {
        Value::Array(entries) => entries.iter().filter_map(name).collect(),
        other => name(other).into_iter().collect(),
    }
}

/// An event's `involvedObject` (also inside KubeEdge's patch payload
/// `{event, patchData}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Involved {
    /// `kind`.
    pub(crate) kind: String,
    /// `namespace` (empty when absent).
    pub(crate) namespace: String,
    /// `name`.
    pub(crate) name: String,
}

impl std::fmt::Display for Involved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The involved object of the event in `content`, if it names one.
pub(crate) fn involved_object(content: &Value) -> Option<Involved> {
    let obj = content
        .get("involvedObject")
        .or_else(|| content.pointer("/event/involvedObject"))?;
    Some(Involved {
        kind: text(obj, "/kind")?.to_owned(),
        namespace: text(obj, "/namespace").unwrap_or_default().to_owned(),
        name: text(obj, "/name")?.to_owned(),
    })
}

/// A token request's `spec.boundObjectRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoundRef {
    /// `kind`.
    pub(crate) kind: String,
    /// `name`.
    pub(crate) name: String,
    /// `uid`, when given.
    pub(crate) uid: Option<String>,
}

/// The object a TokenRequest in `content` binds its token to, if any.
pub(crate) fn bound_object(content: &Value) -> Option<BoundRef> {
    let obj = content.pointer("/spec/boundObjectRef")?;
    Some(BoundRef {
        kind: text(obj, "/kind").unwrap_or_default().to_owned(),
        name: text(obj, "/name").unwrap_or_default().to_owned(),
        uid: text(obj, "/uid").map(str::to_owned),
    })
}

/// The node a membership request names (`group_id`), if it names one.
pub(crate) fn membership_group(content: &Value) -> Option<&str> {
    text(content, "/group_id")
}

/// `metadata.namespace` and `metadata.name` of the object in `content`
/// (each `None` when absent).
pub(crate) fn object_identity(content: &Value) -> (Option<&str>, Option<&str>) {
    (
        text(content, "/metadata/namespace"),
        text(content, "/metadata/name"),
    )
}

/// Why `content` is not a mirror pod `node` may create as
/// `namespace/name`, or `None` when it is one: it must carry the mirror
/// annotation, be bound to `node`, be named as the resource says, be owned
/// by nothing but `node`'s Node, and reference no configmap, secret or
/// service account (creating it would otherwise grant the node access to
/// them).
pub(crate) fn mirror_pod_problem(
    content: &Value,
    node: &str,
    namespace: &str,
    name: &str,
) -> Option<String> {
    let pod: Pod = match serde_json::from_value(content.clone()) {
        Ok(pod) => pod,
        Err(err) => return Some(format!("not a pod: {err}")),
    };
    let meta = &pod.metadata;
    let annotated = meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION));
    if !annotated {
        return Some(format!("no {MIRROR_ANNOTATION} annotation"));
    }
    if pod_node(&pod) != Some(node) {
        return Some("spec.nodeName is not this node".to_owned());
    }
    if meta.name.as_deref() != Some(name)
        || meta.namespace.as_deref().unwrap_or(namespace) != namespace
    {
        return Some(format!("metadata does not name {namespace}/{name}"));
    }
    let foreign_owner = meta
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind != "Node" || o.name != node);
    if foreign_owner {
        return Some("owned by something other than this node".to_owned());
    }
    if !pod_configmaps(&pod).is_empty() || !pod_secrets(&pod).is_empty() {
        return Some("it references configmaps or secrets".to_owned());
    }
    let spec = pod.spec.as_ref();
    let account = spec
        .and_then(|s| s.service_account_name.as_deref())
        .or_else(|| spec.and_then(|s| s.service_account.as_deref()));
    if account.is_some_and(|a| !a.is_empty()) {
        return Some("it names a service account".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pod_status_names_single_and_list_any_case() {
        assert_eq!(
            pod_status_names(&json!({"UID": "u", "Name": "a", "Status": {}})),
            ["a"]
        );
        assert_eq!(
            pod_status_names(&json!([{"Name": "a"}, {"name": "b"}, {"Status": {}}])),
            ["a", "b"]
        );
        assert!(pod_status_names(&json!("text")).is_empty());
    }

    #[test]
    fn involved_object_of_events_and_event_patches() {
        let ev = json!({"involvedObject": {"kind": "Pod", "namespace": "ns", "name": "p"}});
        let want = Involved {
            kind: "Pod".into(),
            namespace: "ns".into(),
            name: "p".into(),
        };
        assert_eq!(involved_object(&ev), Some(want.clone()));
        assert_eq!(
            involved_object(&json!({"event": ev, "patchData": "{}"})),
            Some(want)
        );
        assert_eq!(involved_object(&json!({"reason": "x"})), None);
    }

    #[test]
    fn token_request_bound_object() {
        let tr = json!({"spec": {"boundObjectRef": {"kind": "Pod", "name": "p", "uid": "u"}}});
        assert_eq!(
            bound_object(&tr),
            Some(BoundRef {
                kind: "Pod".into(),
                name: "p".into(),
                uid: Some("u".into())
            })
        );
        assert_eq!(bound_object(&json!({"spec": {}})), None);
    }

    #[test]
    fn mirror_pods_are_recognised() {
        let pod = |annotations: Value, spec: Value| {
            json!({"metadata": {"name": "m", "namespace": "ns", "annotations": annotations},
                   "spec": spec})
        };
        let mirror = json!({MIRROR_ANNOTATION: "hash"});
        let ok = pod(mirror.clone(), json!({"nodeName": "n1", "containers": []}));
        assert_eq!(mirror_pod_problem(&ok, "n1", "ns", "m"), None);
        assert!(mirror_pod_problem(&ok, "n2", "ns", "m").is_some());
        assert!(mirror_pod_problem(&ok, "n1", "ns", "other").is_some());
        let plain = pod(json!({}), json!({"nodeName": "n1", "containers": []}));
        assert!(mirror_pod_problem(&plain, "n1", "ns", "m").is_some());
        let secret = pod(
            mirror.clone(),
            json!({"nodeName": "n1", "containers": [],
                   "volumes": [{"name": "v", "secret": {"secretName": "s"}}]}),
        );
        assert!(mirror_pod_problem(&secret, "n1", "ns", "m").is_some());
        let account = pod(
            mirror,
            json!({"nodeName": "n1", "containers": [], "serviceAccountName": "sa"}),
        );
        assert!(mirror_pod_problem(&account, "n1", "ns", "m").is_some());
        assert!(mirror_pod_problem(&json!("x"), "n1", "ns", "m").is_some());
    }
}
