//! `reliablesyncs.kubeedge.io/v1alpha1`: the last resourceVersion of an
//! object a node acked. `ObjectSync` is namespaced (namespaced objects),
//! `ClusterObjectSync` cluster-scoped; both are named `<node>.<object uid>`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which object a sync record is about.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "reliablesyncs.kubeedge.io",
    version = "v1alpha1",
    kind = "ObjectSync",
    namespaced,
    status = "ObjectSyncStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSyncSpec {
    /// The object's `apiVersion` (KubeEdge spells the key
    /// `objectAPIVersion`).
    #[serde(
        default,
        rename = "objectAPIVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub object_api_version: Option<String>,
    /// The object's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_kind: Option<String>,
    /// The object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_name: Option<String>,
}

/// The same record for cluster-scoped objects.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "reliablesyncs.kubeedge.io",
    version = "v1alpha1",
    kind = "ClusterObjectSync",
    status = "ObjectSyncStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterObjectSyncSpec {
    /// The object's `apiVersion` (KubeEdge spells the key
    /// `objectAPIVersion`).
    #[serde(
        default,
        rename = "objectAPIVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub object_api_version: Option<String>,
    /// The object's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_kind: Option<String>,
    /// The object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_name: Option<String>,
}

/// What the node last acked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSyncStatus {
    /// The acked resourceVersion (compared as an unsigned integer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_resource_version: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures are known to parse")]

    use super::*;

    #[test]
    fn specs_use_kubeedges_keys() {
        let spec = ObjectSyncSpec {
            object_api_version: Some("v1".into()),
            object_kind: Some("Pod".into()),
            object_name: Some("p".into()),
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"objectAPIVersion": "v1", "objectKind": "Pod", "objectName": "p"})
        );
        let cluster: ClusterObjectSyncSpec = serde_json::from_value(json).unwrap();
        assert_eq!(cluster.object_api_version.as_deref(), Some("v1"));
    }
}
