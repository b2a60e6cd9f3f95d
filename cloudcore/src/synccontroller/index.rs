//! The sync index: what each node acked, object by object — KubeEdge's
//! ObjectSync/ClusterObjectSync records held in memory.
//!
//! [`SyncIndex`] is loaded from the API before CloudHub starts, then kept
//! current by CloudHub's acks through [`AckHook`]: an ack changes memory at
//! once and marks the record dirty; the module's writer task (`writer.rs`)
//! takes the dirty set and brings the API records in line. Marking the same
//! record dirty again before the writer gets to it costs nothing, so a
//! burst of acks for one object makes one write.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use proto::resource::{ResourcePath, Target, NULL_NAMESPACE};
use proto::{Message, Operation};
use serde_json::Value;
use tokio::sync::Notify;

use super::error::Result;
use super::metrics::Metrics;
use super::records::{self, Entry, SyncKey, Written};
use crate::cloudhub::{is_newer, AckHook};
use crate::scope::EdgeKind;

/// What an ack says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Acked {
    /// The node holds the object at `entry.resource_version`.
    Applied {
        /// The object's UID.
        uid: String,
        /// The record.
        entry: Entry,
    },
    /// The node deleted the object.
    Deleted {
        /// The object's UID, when the message carried it.
        uid: Option<String>,
        /// Its kind.
        kind: EdgeKind,
        /// Its namespace (`None`: cluster-scoped).
        namespace: Option<String>,
        /// Its name.
        name: String,
    },
}

/// What an acked message (resource in edge form) says, if it is an
/// object message: `insert`/`update`/`delete` in group `resource` on
/// `<ns>/<type>/<name>` of a kind sent to edges. Replies, membership,
/// twin and other messages say nothing.
pub(crate) fn acked_object(msg: &Message) -> Option<Acked> {
    if msg.route.group != proto::modules::group::RESOURCE {
        return None;
    }
    let op = msg.operation();
    if !matches!(
        op,
        Operation::Insert | Operation::Update | Operation::Delete
    ) {
        return None;
    }
    let path = ResourcePath::parse(msg.resource()).ok()?;
    let Target::Object {
        namespace,
        kind,
        name: Some(name),
    } = path.target()
    else {
        return None;
    };
    let edge_kind = EdgeKind::ALL
        .into_iter()
        .find(|k| k.resource_kind() == *kind)?;
    let namespace = Some(namespace.clone())
        .filter(|ns| edge_kind.namespaced() && ns != NULL_NAMESPACE && !ns.is_empty());
    let content = msg.content_view();
    let meta = |field: &str| {
        content
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let uid = meta("uid");
    if *op == Operation::Delete {
        return Some(Acked::Deleted {
            uid,
            kind: edge_kind,
            namespace,
            name: name.clone(),
        });
    }
    let resource_version = Some(msg.header.resource_version.clone())
        .filter(|rv| !rv.is_empty())
        .or_else(|| meta("resourceVersion"))?;
    Some(Acked::Applied {
        uid: uid?,
        entry: Entry {
            api_version: edge_kind.api_version().to_owned(),
            kind: edge_kind.kind().to_owned(),
            namespace,
            name: name.clone(),
            resource_version,
        },
    })
}

#[derive(Debug, Default)]
struct Inner {
    /// node → object UID → entry.
    nodes: HashMap<String, BTreeMap<String, Entry>>,
    /// Records to bring in line, with the namespace each lives in.
    dirty: HashMap<SyncKey, Option<String>>,
    /// The records as loaded, for the writer (taken once).
    loaded: Option<HashMap<SyncKey, Written>>,
    len: usize,
}

/// The in-memory index of what every node acked; cheap to clone. See the
/// module docs.
#[derive(Clone)]
pub struct SyncIndex {
    inner: Arc<Mutex<Inner>>,
    wake: Arc<Notify>,
    metrics: Metrics,
}

impl std::fmt::Debug for SyncIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncIndex")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl SyncIndex {
    /// An empty index counting into `metrics`.
    pub(crate) fn new(metrics: Metrics) -> Self {
        SyncIndex {
            inner: Arc::default(),
            wake: Arc::new(Notify::new()),
            metrics,
        }
    }

    /// Lists every ObjectSync and ClusterObjectSync through `client` into
    /// a new index whose metrics go to `registry` (under
    /// `synccontroller_`). Run it before CloudHub starts, so that its
    /// admission knows what every node already has. Without the CRDs
    /// (a cluster whose operator did not install them) it starts empty
    /// and says so.
    pub async fn load(
        client: &kube::Client,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<SyncIndex> {
        let index = SyncIndex::new(Metrics::register(registry));
        let mut loaded = HashMap::new();
        for (key, entry) in records::list_all(client, &index.metrics).await? {
            let written = Written {
                namespace: entry.namespace.clone(),
                resource_version: entry.resource_version.clone(),
            };
            loaded.insert(key.clone(), written);
            index.insert(key, entry);
        }
        let n = index.len();
        index.lock().loaded = Some(loaded);
        index.metrics.tracked(n);
        tracing::info!(records = n, "sync records loaded");
        Ok(index)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many (node, object) entries it holds.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The metric handles it counts into.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Puts `entry` under `key` without marking it dirty (loading).
    fn insert(&self, key: SyncKey, entry: Entry) {
        let mut inner = self.lock();
        let added = inner
            .nodes
            .entry(key.node)
            .or_default()
            .insert(key.uid, entry)
            .is_none();
        inner.len += usize::from(added);
    }

    /// Records what `node` acked; true when the index changed.
    pub(crate) fn record(&self, node: &str, acked: Acked) -> bool {
        let mut inner = self.lock();
        let changed = match acked {
            Acked::Applied { uid, entry } => {
                let entries = inner.nodes.entry(node.to_owned()).or_default();
                if entries
                    .get(&uid)
                    .is_some_and(|old| !is_newer(&entry.resource_version, &old.resource_version))
                {
                    return false;
                }
                let namespace = entry.namespace.clone();
                let added = entries.insert(uid.clone(), entry).is_none();
                inner.len += usize::from(added);
                let key = SyncKey {
                    node: node.to_owned(),
                    uid,
                };
                inner.dirty.insert(key, namespace);
                true
            }
            Acked::Deleted {
                uid,
                kind,
                namespace,
                name,
            } => {
                let Some(entries) = inner.nodes.get_mut(node) else {
                    return false;
                };
                let uid = uid.filter(|u| entries.contains_key(u)).or_else(|| {
                    entries
                        .iter()
                        .find(|(_, e)| {
                            e.edge_kind() == Some(kind)
                                && e.namespace == namespace
                                && e.name == name
                        })
                        .map(|(uid, _)| uid.clone())
                });
                let Some(uid) = uid else {
                    return false;
                };
                let Some(entry) = entries.remove(&uid) else {
                    return false;
                };
                if entries.is_empty() {
                    inner.nodes.remove(node);
                }
                inner.len -= 1;
                let key = SyncKey {
                    node: node.to_owned(),
                    uid,
                };
                inner.dirty.insert(key, entry.namespace);
                true
            }
        };
        let len = inner.len;
        drop(inner);
        self.metrics.tracked(len);
        self.wake.notify_one();
        changed
    }

    /// The entry under `key`.
    pub(crate) fn get(&self, key: &SyncKey) -> Option<Entry> {
        self.lock().nodes.get(&key.node)?.get(&key.uid).cloned()
    }

    /// `node`'s entries by object UID.
    pub(crate) fn entries(&self, node: &str) -> BTreeMap<String, Entry> {
        self.lock().nodes.get(node).cloned().unwrap_or_default()
    }

    /// Every node with an entry.
    pub(crate) fn nodes(&self) -> BTreeSet<String> {
        self.lock().nodes.keys().cloned().collect()
    }

    /// Drops every entry of `node` (their records are deleted by the
    /// writer); how many there were.
    pub(crate) fn forget_node(&self, node: &str) -> usize {
        let mut inner = self.lock();
        let Some(entries) = inner.nodes.remove(node) else {
            return 0;
        };
        let n = entries.len();
        inner.len -= n;
        for (uid, entry) in entries {
            let key = SyncKey {
                node: node.to_owned(),
                uid,
            };
            inner.dirty.insert(key, entry.namespace);
        }
        let len = inner.len;
        drop(inner);
        self.metrics.tracked(len);
        self.wake.notify_one();
        n
    }

    /// Marks `key` (living in `namespace`) for the writer again.
    pub(crate) fn mark_dirty(&self, key: SyncKey, namespace: Option<String>) {
        self.lock().dirty.entry(key).or_insert(namespace);
        self.wake.notify_one();
    }

    /// Takes the dirty set.
    pub(crate) fn take_dirty(&self) -> Vec<(SyncKey, Option<String>)> {
        self.lock().dirty.drain().collect()
    }

    /// The records as loaded (once; later calls get an empty map).
    pub(crate) fn take_loaded(&self) -> HashMap<SyncKey, Written> {
        self.lock().loaded.take().unwrap_or_default()
    }

    /// Resolves once something was marked dirty since the last call.
    pub(crate) async fn dirtied(&self) {
        self.wake.notified().await;
    }
}

impl AckHook for SyncIndex {
    fn acked(&self, node: &str, msg: &Message) {
        let Some(acked) = acked_object(msg) else {
            return;
        };
        if self.record(node, acked) {
            self.metrics.ack();
            tracing::debug!(node, msg_id = msg.id(), resource = msg.resource(),
                rv = %msg.header.resource_version, "ack recorded");
        }
    }

    fn last_acked(&self, node: &str, uid: &str) -> Option<String> {
        let inner = self.lock();
        Some(inner.nodes.get(node)?.get(uid)?.resource_version.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures are known to parse")]

    use serde_json::json;

    use super::*;

    fn cm_msg(op: Operation, rv: &str, uid: &str) -> Message {
        Message::new("edgecontroller", "resource", op, "ns/configmap/c")
            .with_resource_version(rv)
            .with_content(json!({"kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"name": "c", "namespace": "ns", "uid": uid, "resourceVersion": rv}}))
    }

    fn index() -> SyncIndex {
        SyncIndex::new(Metrics::default())
    }

    #[test]
    fn object_messages_are_understood_others_ignored() {
        let acked = acked_object(&cm_msg(Operation::Update, "7", "u1")).unwrap();
        let Acked::Applied { uid, entry } = acked else {
            panic!("an update is applied")
        };
        assert_eq!(uid, "u1");
        assert_eq!(entry.namespace.as_deref(), Some("ns"));
        assert_eq!(entry.resource_version, "7");
        assert_eq!(entry.edge_kind(), Some(EdgeKind::ConfigMap));

        let node = Message::new(
            "edgecontroller",
            "resource",
            Operation::Update,
            "null/node/e1",
        )
        .with_resource_version("3")
        .with_content(json!({"metadata": {"name": "e1", "uid": "n1"}}));
        let Some(Acked::Applied { entry, .. }) = acked_object(&node) else {
            panic!("a node update is applied")
        };
        assert_eq!(entry.namespace, None);
        assert_eq!(entry.kind, "Node");

        let twin = Message::new(
            "devicecontroller",
            "twin",
            Operation::Update,
            "device/default/d/twin/cloud_updated",
        );
        assert_eq!(acked_object(&twin), None);
        let membership = Message::new("devicecontroller", "twin", Operation::Update, "membership");
        assert_eq!(acked_object(&membership), None);
        let reply = cm_msg(Operation::Response, "7", "u1");
        assert_eq!(acked_object(&reply), None);
        let lease = Message::new(
            "edgecontroller",
            "resource",
            Operation::Update,
            "ns/lease/l",
        )
        .with_resource_version("1")
        .with_content(json!({"metadata": {"uid": "l1"}}));
        assert_eq!(acked_object(&lease), None);
        let no_uid = Message::new("edgecontroller", "resource", Operation::Update, "ns/pod/p")
            .with_resource_version("1")
            .with_content(json!({"metadata": {"name": "p"}}));
        assert_eq!(acked_object(&no_uid), None);
    }

    #[test]
    fn acks_keep_the_newest_version_and_deletes_remove() {
        let idx = index();
        idx.acked("e1", &cm_msg(Operation::Insert, "5", "u1"));
        assert_eq!(idx.last_acked("e1", "u1").as_deref(), Some("5"));
        idx.acked("e1", &cm_msg(Operation::Update, "4", "u1"));
        assert_eq!(idx.last_acked("e1", "u1").as_deref(), Some("5"));
        idx.acked("e1", &cm_msg(Operation::Update, "9", "u1"));
        assert_eq!(idx.last_acked("e1", "u1").as_deref(), Some("9"));
        assert_eq!(idx.last_acked("e2", "u1"), None);
        assert_eq!(idx.len(), 1);
        let dirty = idx.take_dirty();
        assert_eq!(dirty.len(), 1, "three acks of one object, one write");
        assert_eq!(dirty[0].1.as_deref(), Some("ns"));

        idx.acked("e1", &cm_msg(Operation::Delete, "", "u1"));
        assert_eq!(idx.last_acked("e1", "u1"), None);
        assert!(idx.is_empty());
        assert!(idx.nodes().is_empty());
        assert_eq!(idx.take_dirty().len(), 1);
    }

    #[test]
    fn a_delete_without_uid_finds_the_entry_by_name() {
        let idx = index();
        idx.acked("e1", &cm_msg(Operation::Insert, "5", "u1"));
        let del = Message::new(
            "edgecontroller",
            "resource",
            Operation::Delete,
            "ns/configmap/c",
        );
        idx.acked("e1", &del);
        assert!(idx.is_empty());
    }

    #[test]
    fn forgetting_a_node_dirties_its_records() {
        let idx = index();
        idx.acked("e1", &cm_msg(Operation::Insert, "5", "u1"));
        idx.acked("e2", &cm_msg(Operation::Insert, "5", "u1"));
        let _ = idx.take_dirty();
        assert_eq!(idx.forget_node("e1"), 1);
        assert_eq!(idx.forget_node("e1"), 0);
        let dirty = idx.take_dirty();
        assert_eq!(dirty[0].0.node, "e1");
        assert_eq!(idx.len(), 1);
    }
}
