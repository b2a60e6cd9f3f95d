//! An object as the edge gets it: which KubeEdge resource type it is, its
//! identity (namespace, name, UID, resourceVersion), the JSON sent, and the
//! downstream message carrying it to a node.

use std::sync::Arc;

use kube::api::ObjectMeta;
use proto::modules::{cloud, group};
use proto::resource::NULL_NAMESPACE;
use proto::{add_node_prefix, Message, Operation, ResourceKind};
use serde::Serialize;
use serde_json::Value;

/// The kinds of object that go down to edge nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// `v1` Node (the node's own).
    Node,
    /// `v1` Pod.
    Pod,
    /// `v1` ConfigMap.
    ConfigMap,
    /// `v1` Secret.
    Secret,
    /// `devices.kubeedge.io/v1beta1` Device.
    Device,
    /// `devices.kubeedge.io/v1beta1` DeviceModel.
    DeviceModel,
}

impl EdgeKind {
    /// Every kind.
    pub const ALL: [EdgeKind; 6] = [
        EdgeKind::Node,
        EdgeKind::Pod,
        EdgeKind::ConfigMap,
        EdgeKind::Secret,
        EdgeKind::Device,
        EdgeKind::DeviceModel,
    ];

    /// The KubeEdge resource type (`pod`, `configmap`, ...).
    pub fn resource_kind(self) -> ResourceKind {
        match self {
            EdgeKind::Node => ResourceKind::Node,
            EdgeKind::Pod => ResourceKind::Pod,
            EdgeKind::ConfigMap => ResourceKind::ConfigMap,
            EdgeKind::Secret => ResourceKind::Secret,
            EdgeKind::Device => ResourceKind::Device,
            EdgeKind::DeviceModel => ResourceKind::DeviceModel,
        }
    }

    /// The Kubernetes kind (`Pod`, `ConfigMap`, ...), as ObjectSync's
    /// `spec.objectKind` records it.
    pub fn kind(self) -> &'static str {
        match self {
            EdgeKind::Node => "Node",
            EdgeKind::Pod => "Pod",
            EdgeKind::ConfigMap => "ConfigMap",
            EdgeKind::Secret => "Secret",
            EdgeKind::Device => "Device",
            EdgeKind::DeviceModel => "DeviceModel",
        }
    }

    /// The API version (`v1`, `devices.kubeedge.io/v1beta1`).
    pub fn api_version(self) -> &'static str {
        match self {
            EdgeKind::Device | EdgeKind::DeviceModel => "devices.kubeedge.io/v1beta1",
            _ => "v1",
        }
    }

    /// The kind whose Kubernetes `kind` is `kind`.
    pub fn from_kind(kind: &str) -> Option<EdgeKind> {
        EdgeKind::ALL.into_iter().find(|k| k.kind() == kind)
    }

    /// The cloud module whose messages carry this kind (the edge routes
    /// device objects to DeviceTwin by it).
    pub fn source(self) -> &'static str {
        match self {
            EdgeKind::Device | EdgeKind::DeviceModel => cloud::DEVICECONTROLLER,
            _ => cloud::EDGECONTROLLER,
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self != EdgeKind::Node
    }
}

/// One object bound for edge nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeObject {
    /// Its kind.
    pub kind: EdgeKind,
    /// Its namespace (`None` for a Node).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// The object as JSON, `apiVersion` and `kind` included.
    pub json: Arc<Value>,
}

impl EdgeObject {
    /// The object `obj` of `kind`; `None` if it cannot be serialized.
    pub fn new<K: Serialize>(kind: EdgeKind, meta: &ObjectMeta, obj: &K) -> Option<EdgeObject> {
        let mut json = serde_json::to_value(obj).ok()?;
        if let Some(map) = json.as_object_mut() {
            map.entry("apiVersion")
                .or_insert_with(|| Value::from(kind.api_version()));
            map.entry("kind")
                .or_insert_with(|| Value::from(kind.kind()));
        }
        Some(EdgeObject {
            kind,
            namespace: meta.namespace.clone().filter(|_| kind.namespaced()),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            json: Arc::new(json),
        })
    }

    /// `<ns>/<type>/<name>` as the edge stores it (`null` for no
    /// namespace).
    pub fn edge_resource(&self) -> String {
        format!(
            "{}/{}/{}",
            self.namespace.as_deref().unwrap_or(NULL_NAMESPACE),
            self.kind.resource_kind().as_str(),
            self.name
        )
    }

    /// `<ns>/<name>`, or the name alone without a namespace: a key for
    /// logs and maps.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The downstream message `op` of this object to `node`, as KubeEdge's
    /// controllers send it: source per kind, group `resource`, resource
    /// `node/<node>/<ns>/<type>/<name>`, the object's resourceVersion in the
    /// header, the object as content.
    pub fn message(&self, node: &str, op: Operation) -> Message {
        Message::new(
            self.kind.source(),
            group::RESOURCE,
            op,
            add_node_prefix(node, &self.edge_resource()),
        )
        .with_resource_version(self.resource_version.clone())
        .with_content((*self.json).clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures are known to parse")]

    use k8s_openapi::api::core::v1::{ConfigMap, Node};
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_follow_kubeedge_resources() {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "ns", "uid": "u", "resourceVersion": "7"},
            "data": {"k": "v"}
        }))
        .unwrap();
        let obj = EdgeObject::new(EdgeKind::ConfigMap, &cm.metadata, &cm).unwrap();
        assert_eq!(obj.json["kind"], "ConfigMap");
        assert_eq!(obj.json["apiVersion"], "v1");
        let msg = obj.message("edge-1", Operation::Update);
        assert_eq!(msg.resource(), "node/edge-1/ns/configmap/c");
        assert_eq!(msg.route.source, "edgecontroller");
        assert_eq!(msg.route.group, "resource");
        assert_eq!(msg.header.resource_version, "7");
        assert_eq!(msg.content["data"]["k"], "v");
        assert_eq!(obj.key(), "ns/c");
    }

    #[test]
    fn nodes_have_no_namespace() {
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": "edge-1", "uid": "n"}})).unwrap();
        let obj = EdgeObject::new(EdgeKind::Node, &node.metadata, &node).unwrap();
        assert_eq!(obj.edge_resource(), "null/node/edge-1");
        assert_eq!(obj.key(), "edge-1");
        assert_eq!(
            EdgeKind::from_kind("DeviceModel"),
            Some(EdgeKind::DeviceModel)
        );
        assert_eq!(EdgeKind::Device.source(), "devicecontroller");
    }
}
