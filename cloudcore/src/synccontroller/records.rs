//! The sync records in the API: KubeEdge's ObjectSync (namespaced
//! objects) and ClusterObjectSync (cluster-scoped ones, the Node), named
//! `<node>.<objUID>`, with `spec.objectAPIVersion/objectKind/objectName`
//! and `status.objectResourceVersion`; what an entry of the index holds,
//! and listing them all at start.
//!
//! An object's UID has no dots, so in a record's name the node is
//! everything before the last one.

use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::Api;
use serde_json::Value;

use super::error::{Result, SyncControllerError};
use super::metrics::Metrics;
use crate::scope::EdgeKind;

/// Records listed per request.
const LIST_PAGE: u32 = 500;

/// One sync record's identity: the node and the object's UID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SyncKey {
    /// The node.
    pub(crate) node: String,
    /// The object's UID.
    pub(crate) uid: String,
}

impl SyncKey {
    /// `<node>.<uid>`, the record's name.
    pub(crate) fn record_name(&self) -> String {
        format!("{}.{}", self.node, self.uid)
    }

    /// The key a record named `name` stands for.
    pub(crate) fn from_record_name(name: &str) -> Option<SyncKey> {
        let (node, uid) = name.rsplit_once('.')?;
        (!node.is_empty() && !uid.is_empty()).then(|| SyncKey {
            node: node.to_owned(),
            uid: uid.to_owned(),
        })
    }
}

/// What a node acked of one object: a record's spec and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// `spec.objectAPIVersion`.
    pub(crate) api_version: String,
    /// `spec.objectKind`.
    pub(crate) kind: String,
    /// The object's namespace (and the ObjectSync's); `None` for a
    /// cluster-scoped object (a ClusterObjectSync).
    pub(crate) namespace: Option<String>,
    /// `spec.objectName`.
    pub(crate) name: String,
    /// `status.objectResourceVersion`.
    pub(crate) resource_version: String,
}

impl Entry {
    /// The object's kind among those sent to edges; `None` for kinds
    /// Apiary does not send (records left by other software). A record
    /// without `objectAPIVersion` is judged by its kind alone.
    pub(crate) fn edge_kind(&self) -> Option<EdgeKind> {
        EdgeKind::from_kind(&self.kind)
            .filter(|k| self.api_version.is_empty() || k.api_version() == self.api_version)
    }
}

/// What the API holds for one record, as far as this process knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    /// The record's namespace (`None`: a ClusterObjectSync).
    pub(crate) namespace: Option<String>,
    /// Its `status.objectResourceVersion`.
    pub(crate) resource_version: String,
}

/// Every ObjectSync and ClusterObjectSync as (key, entry). Without the
/// CRDs (a cluster whose operator did not install them) there are none,
/// and a warning says so; records not named `<node>.<uid>` are skipped.
pub(crate) async fn list_all(
    client: &kube::Client,
    metrics: &Metrics,
) -> Result<Vec<(SyncKey, Entry)>> {
    let mut out = Vec::new();
    for (namespaced, kind) in [(true, "ObjectSync"), (false, "ClusterObjectSync")] {
        let records = match list(client, namespaced, kind).await {
            Ok(records) => records,
            Err(SyncControllerError::List {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 404 => {
                // On a cluster the CRDs are the operator's to install.
                metrics.error("list");
                tracing::warn!(
                    kind,
                    "the reliablesyncs.kubeedge.io CRDs are not installed; \
                    acked versions will not survive a restart (see deploy/crds)"
                );
                continue;
            }
            Err(err) => {
                metrics.error("list");
                return Err(err);
            }
        };
        for record in records {
            match from_record(&record) {
                Some(pair) => out.push(pair),
                None => tracing::warn!(kind, name = ?record.metadata.name,
                    "ignoring a sync record with a name not <node>.<uid>"),
            }
        }
    }
    Ok(out)
}

/// The API resource of ObjectSync (`namespaced`) or ClusterObjectSync.
pub(crate) fn record_resource(namespaced: bool) -> ApiResource {
    if namespaced {
        ApiResource::erase::<crds::ObjectSync>(&())
    } else {
        ApiResource::erase::<crds::ClusterObjectSync>(&())
    }
}

/// Every record of one kind, page by page.
async fn list(
    client: &kube::Client,
    namespaced: bool,
    kind: &'static str,
) -> Result<Vec<DynamicObject>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &record_resource(namespaced));
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(LIST_PAGE);
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        let page = api
            .list(&params)
            .await
            .map_err(|source| SyncControllerError::List { kind, source })?;
        out.extend(page.items);
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The key and entry a listed record stands for. A record without a
/// status counts as acked at "0" (KubeEdge creates records so before the
/// first ack).
pub(crate) fn from_record(record: &DynamicObject) -> Option<(SyncKey, Entry)> {
    let key = SyncKey::from_record_name(record.metadata.name.as_deref()?)?;
    let field = |pointer: &str| {
        record
            .data
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let resource_version = Some(field("/status/objectResourceVersion"))
        .filter(|rv| !rv.is_empty())
        .unwrap_or_else(|| "0".to_owned());
    let entry = Entry {
        api_version: field("/spec/objectAPIVersion"),
        kind: field("/spec/objectKind"),
        namespace: record.metadata.namespace.clone(),
        name: field("/spec/objectName"),
        resource_version,
    };
    Some((key, entry))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures are known to parse")]

    use serde_json::json;

    use super::*;

    #[test]
    fn record_names_split_at_the_last_dot() {
        let key = SyncKey::from_record_name("edge.example.com.1234-abcd").unwrap();
        assert_eq!(key.node, "edge.example.com");
        assert_eq!(key.uid, "1234-abcd");
        assert_eq!(key.record_name(), "edge.example.com.1234-abcd");
        assert_eq!(SyncKey::from_record_name("nodot"), None);
        assert_eq!(SyncKey::from_record_name("trailing."), None);
    }

    #[test]
    fn records_read_back() {
        let record: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "reliablesyncs.kubeedge.io/v1alpha1", "kind": "ObjectSync",
            "metadata": {"name": "e1.u1", "namespace": "ns"},
            "spec": {"objectAPIVersion": "v1", "objectKind": "Pod", "objectName": "p"},
            "status": {"objectResourceVersion": "12"}
        }))
        .unwrap();
        let (key, entry) = from_record(&record).unwrap();
        assert_eq!((key.node.as_str(), key.uid.as_str()), ("e1", "u1"));
        assert_eq!(entry.edge_kind(), Some(EdgeKind::Pod));
        assert_eq!(entry.resource_version, "12");
        let fresh: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "reliablesyncs.kubeedge.io/v1alpha1", "kind": "ClusterObjectSync",
            "metadata": {"name": "e1.n1"},
            "spec": {"objectAPIVersion": "v1", "objectKind": "Service", "objectName": "s"}
        }))
        .unwrap();
        let (_, entry) = from_record(&fresh).unwrap();
        assert_eq!(entry.resource_version, "0");
        assert_eq!(entry.edge_kind(), None, "not a kind Apiary sends");
    }
}
