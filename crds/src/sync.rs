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
    /// The object's `apiVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// The object's `apiVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
