//! What goes down to which node, decided without I/O: the [`Ledger`] of
//! which version of which object this process sent to each node, and the
//! messages that bring a node (or an object) from what it was sent to what
//! it should have now.
//!
//! The caller asks [`Scope`](crate::scope::Scope) what should be where and
//! feeds the answer in; the ledger answers with [`Send`]s: `insert` the
//! first time an object goes to a node, `update` when its resourceVersion
//! changed, `delete` when it left the node's scope or was deleted (content:
//! the last version seen), and `delete` + `insert` when it was replaced by
//! a new object of the same name (another UID).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use proto::Operation;

use crate::scope::{EdgeKind, EdgeObject};

/// The kinds EdgeController sends (Devices and DeviceModels are
/// DeviceController's).
pub(crate) const KINDS: [EdgeKind; 4] = [
    EdgeKind::Node,
    EdgeKind::Pod,
    EdgeKind::ConfigMap,
    EdgeKind::Secret,
];

/// Whether EdgeController sends objects of `kind`.
pub(crate) fn handles(kind: EdgeKind) -> bool {
    KINDS.contains(&kind)
}

/// An object's identity across versions and incarnations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjectId {
    /// Its kind.
    pub(crate) kind: EdgeKind,
    /// Its namespace (empty for a Node).
    pub(crate) namespace: String,
    /// Its name.
    pub(crate) name: String,
}

impl ObjectId {
    /// The identity of `object`.
    pub(crate) fn of(object: &EdgeObject) -> ObjectId {
        ObjectId {
            kind: object.kind,
            namespace: object.namespace.clone().unwrap_or_default(),
            name: object.name.clone(),
        }
    }
}

/// One message to send: `op` of `object` to `node`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Send {
    /// The node.
    pub(crate) node: String,
    /// `insert`, `update` or `delete`.
    pub(crate) op: Operation,
    /// The object (for a delete, the last version seen).
    pub(crate) object: Arc<EdgeObject>,
}

impl Send {
    /// The downstream message, as CloudHub takes it.
    pub(crate) fn message(&self) -> proto::Message {
        self.object.message(&self.node, self.op.clone())
    }
}

/// What should be at one node now, by identity.
pub(crate) type Desired = BTreeMap<ObjectId, Arc<EdgeObject>>;

/// `objects` (what a node should have) as [`Desired`], keeping only the
/// kinds EdgeController sends.
pub(crate) fn desired(objects: impl IntoIterator<Item = EdgeObject>) -> Desired {
    objects
        .into_iter()
        .filter(|o| handles(o.kind))
        .map(|o| (ObjectId::of(&o), Arc::new(o)))
        .collect()
}

#[derive(Debug, Default)]
struct Entry {
    /// The version each node was sent last.
    nodes: BTreeMap<String, Arc<EdgeObject>>,
    /// The object as last seen when it was deleted: the delete's content.
    last: Option<Arc<EdgeObject>>,
}

/// Which version of which object went to which node, in this process.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    sent: HashMap<ObjectId, Entry>,
    by_node: HashMap<String, BTreeSet<ObjectId>>,
    /// (object, node) pairs in `sent`, kept as they come and go (read
    /// after every change for the `sent_objects` gauge).
    pairs: usize,
}

impl Ledger {
    /// An empty ledger: nothing sent yet.
    pub(crate) fn new() -> Self {
        Ledger::default()
    }

    /// Every node something was sent to (and not deleted since).
    pub(crate) fn nodes(&self) -> BTreeSet<String> {
        self.by_node.keys().cloned().collect()
    }

    /// The nodes `id` was sent to (and not deleted since).
    pub(crate) fn nodes_of(&self, id: &ObjectId) -> BTreeSet<String> {
        self.sent
            .get(id)
            .map(|e| e.nodes.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// How many (object, node) pairs are recorded.
    pub(crate) fn len(&self) -> usize {
        self.pairs
    }

    /// Remembers `object` as it was deleted, so the deletes it causes carry
    /// it rather than the version last sent. Objects never sent are not
    /// remembered.
    pub(crate) fn deleted(&mut self, object: &EdgeObject) {
        if let Some(entry) = self.sent.get_mut(&ObjectId::of(object)) {
            entry.last = Some(Arc::new(object.clone()));
        }
    }

    /// Brings one object to `nodes`: it should be at exactly those nodes,
    /// as `current` (`None`: it should be nowhere).
    pub(crate) fn sync_object(
        &mut self,
        id: &ObjectId,
        current: Option<&Arc<EdgeObject>>,
        nodes: &BTreeSet<String>,
    ) -> Vec<Send> {
        let mut all: BTreeSet<String> = self.nodes_of(id);
        all.extend(nodes.iter().cloned());
        let mut out = Vec::new();
        for node in all {
            let want = current.filter(|_| nodes.contains(&node));
            out.extend(self.step(&node, id, want));
        }
        out
    }

    /// Brings `node` to `desired`: everything in it goes (or is updated)
    /// there, everything else sent there before is deleted. The Node
    /// itself comes last, so that its delete (which ends the node's
    /// session) follows the others.
    pub(crate) fn sync_node(&mut self, node: &str, desired: &Desired) -> Vec<Send> {
        let mut ids: BTreeSet<ObjectId> = self.by_node.get(node).cloned().unwrap_or_default();
        ids.extend(desired.keys().cloned());
        let (nodes, others): (Vec<_>, Vec<_>) =
            ids.into_iter().partition(|id| id.kind == EdgeKind::Node);
        let mut out = Vec::new();
        for id in others.into_iter().chain(nodes) {
            out.extend(self.step(node, &id, desired.get(&id)));
        }
        out
    }

    /// Brings the configmaps and secrets at `node` to `wanted` (their
    /// identities) without looking at the ones already there: those sent
    /// before and still wanted stay as they are (their own changes come
    /// through [`sync_object`](Self::sync_object)), those no longer wanted
    /// are deleted, and `fetch` is asked only for the new ones.
    pub(crate) fn sync_refs(
        &mut self,
        node: &str,
        wanted: &BTreeSet<ObjectId>,
        mut fetch: impl FnMut(&ObjectId) -> Option<Arc<EdgeObject>>,
    ) -> Vec<Send> {
        let is_ref = |id: &ObjectId| matches!(id.kind, EdgeKind::ConfigMap | EdgeKind::Secret);
        let have: BTreeSet<ObjectId> = self
            .by_node
            .get(node)
            .map(|ids| ids.iter().filter(|id| is_ref(id)).cloned().collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for id in have.difference(wanted) {
            out.extend(self.step(node, id, None));
        }
        for id in wanted.difference(&have).filter(|id| is_ref(id)) {
            if let Some(object) = fetch(id) {
                out.extend(self.step(node, id, Some(&object)));
            }
        }
        out
    }

    /// One object at one node: what to send so that the node has
    /// `current` (or nothing), and the ledger updated to match.
    fn step(&mut self, node: &str, id: &ObjectId, current: Option<&Arc<EdgeObject>>) -> Vec<Send> {
        let entry = self.sent.get(id);
        let sent = entry.and_then(|e| e.nodes.get(node)).cloned();
        let send = |op: Operation, object: &Arc<EdgeObject>| Send {
            node: node.to_owned(),
            op,
            object: object.clone(),
        };
        // KubeEdge sends a node its own Node as `update` even the first
        // time; an `insert` of a Node needs no ack, so it would be neither
        // deduplicated nor recorded as synced.
        let first = if id.kind == EdgeKind::Node {
            Operation::Update
        } else {
            Operation::Insert
        };
        match (sent, current) {
            (None, None) => Vec::new(),
            (None, Some(now)) => {
                self.record(node, id, now);
                vec![send(first, now)]
            }
            (Some(before), None) => {
                let content = self.delete_content(id, &before);
                self.forget(node, id);
                vec![send(Operation::Delete, &content)]
            }
            (Some(before), Some(now)) if before.uid != now.uid => {
                let content = self.delete_content(id, &before);
                self.record(node, id, now);
                vec![
                    send(Operation::Delete, &content),
                    send(Operation::Insert, now),
                ]
            }
            (Some(before), Some(now)) if before.resource_version == now.resource_version => {
                Vec::new()
            }
            (Some(_), Some(now)) => {
                self.record(node, id, now);
                vec![send(Operation::Update, now)]
            }
        }
    }

    /// The content of a delete of `before`: the version seen at deletion
    /// when it is the same incarnation, else `before`.
    fn delete_content(&self, id: &ObjectId, before: &Arc<EdgeObject>) -> Arc<EdgeObject> {
        self.sent
            .get(id)
            .and_then(|e| e.last.clone())
            .filter(|last| last.uid == before.uid)
            .unwrap_or_else(|| before.clone())
    }

    fn record(&mut self, node: &str, id: &ObjectId, object: &Arc<EdgeObject>) {
        let entry = self.sent.entry(id.clone()).or_default();
        if entry
            .nodes
            .insert(node.to_owned(), object.clone())
            .is_none()
        {
            self.pairs += 1;
        }
        if entry.last.as_ref().is_some_and(|l| l.uid != object.uid) {
            entry.last = None;
        }
        self.by_node
            .entry(node.to_owned())
            .or_default()
            .insert(id.clone());
    }

    fn forget(&mut self, node: &str, id: &ObjectId) {
        if let Some(entry) = self.sent.get_mut(id) {
            if entry.nodes.remove(node).is_some() {
                self.pairs -= 1;
            }
            if entry.nodes.is_empty() {
                self.sent.remove(id);
            }
        }
        if let Some(ids) = self.by_node.get_mut(node) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_node.remove(node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures are known to parse")]

    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    use super::*;

    fn object(kind: EdgeKind, name: &str, uid: &str, rv: &str) -> Arc<EdgeObject> {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": rv}
        }))
        .unwrap();
        Arc::new(EdgeObject::new(kind, &cm.metadata, &cm).unwrap())
    }

    fn cm(name: &str, uid: &str, rv: &str) -> Arc<EdgeObject> {
        object(EdgeKind::ConfigMap, name, uid, rv)
    }

    fn nodes(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    /// `(node, op, name, resourceVersion)` of each send.
    fn brief(sends: &[Send]) -> Vec<(String, &str, String, String)> {
        sends
            .iter()
            .map(|s| {
                (
                    s.node.clone(),
                    s.op.as_str(),
                    s.object.name.clone(),
                    s.object.resource_version.clone(),
                )
            })
            .collect()
    }

    fn row(
        node: &str,
        op: &'static str,
        name: &str,
        rv: &str,
    ) -> (String, &'static str, String, String) {
        (node.to_owned(), op, name.to_owned(), rv.to_owned())
    }

    #[test]
    fn first_insert_then_update_then_nothing_for_the_same_version() {
        let mut ledger = Ledger::new();
        let v1 = cm("c", "u", "1");
        let id = ObjectId::of(&v1);
        let sent = ledger.sync_object(&id, Some(&v1), &nodes(&["a", "b"]));
        assert_eq!(
            brief(&sent),
            [row("a", "insert", "c", "1"), row("b", "insert", "c", "1")]
        );
        let v2 = cm("c", "u", "2");
        let sent = ledger.sync_object(&id, Some(&v2), &nodes(&["a", "b"]));
        assert_eq!(
            brief(&sent),
            [row("a", "update", "c", "2"), row("b", "update", "c", "2")]
        );
        assert!(ledger
            .sync_object(&id, Some(&v2), &nodes(&["a", "b"]))
            .is_empty());
        assert_eq!(ledger.len(), 2);
        assert_eq!(sent[0].message().resource(), "node/a/ns/configmap/c");
    }

    #[test]
    fn leaving_a_node_deletes_it_there_only() {
        let mut ledger = Ledger::new();
        let v1 = cm("c", "u", "1");
        let id = ObjectId::of(&v1);
        ledger.sync_object(&id, Some(&v1), &nodes(&["a", "b"]));
        let sent = ledger.sync_object(&id, Some(&v1), &nodes(&["b"]));
        assert_eq!(brief(&sent), [row("a", "delete", "c", "1")]);
        assert_eq!(ledger.nodes_of(&id), nodes(&["b"]));
        assert_eq!(ledger.nodes(), nodes(&["b"]));
    }

    #[test]
    fn deletion_carries_the_last_seen_version() {
        let mut ledger = Ledger::new();
        let v1 = cm("c", "u", "1");
        let id = ObjectId::of(&v1);
        ledger.sync_object(&id, Some(&v1), &nodes(&["a"]));
        ledger.deleted(&cm("c", "u", "7"));
        let sent = ledger.sync_object(&id, None, &BTreeSet::new());
        assert_eq!(brief(&sent), [row("a", "delete", "c", "7")]);
        assert_eq!(ledger.len(), 0);
        assert!(ledger.nodes().is_empty());
        // Never sent: nothing to delete, nothing remembered.
        ledger.deleted(&cm("other", "x", "1"));
        assert_eq!(ledger.len(), 0);
    }

    #[test]
    fn a_new_incarnation_replaces_the_old_one() {
        let mut ledger = Ledger::new();
        let old = cm("c", "u1", "1");
        let id = ObjectId::of(&old);
        ledger.sync_object(&id, Some(&old), &nodes(&["a"]));
        let new = cm("c", "u2", "5");
        let sent = ledger.sync_object(&id, Some(&new), &nodes(&["a"]));
        assert_eq!(
            brief(&sent),
            [row("a", "delete", "c", "1"), row("a", "insert", "c", "5")]
        );
        assert_eq!(sent[0].object.uid, "u1");
        assert_eq!(sent[1].object.uid, "u2");
    }

    #[test]
    fn references_come_and_go_without_refetching_the_others() {
        let mut ledger = Ledger::new();
        let (c1, c2) = (cm("c1", "c1", "3"), cm("c2", "c2", "4"));
        let ids = |objs: &[&Arc<EdgeObject>]| objs.iter().map(|o| ObjectId::of(o)).collect();
        let all = [c1.clone(), c2.clone()];
        let mut fetched = Vec::new();
        let mut fetch = |id: &ObjectId| {
            fetched.push(id.name.clone());
            all.iter().find(|o| o.name == id.name).cloned()
        };
        let sent = ledger.sync_refs("a", &ids(&[&c1]), &mut fetch);
        assert_eq!(brief(&sent), [row("a", "insert", "c1", "3")]);
        let sent = ledger.sync_refs("a", &ids(&[&c1, &c2]), &mut fetch);
        assert_eq!(brief(&sent), [row("a", "insert", "c2", "4")]);
        let sent = ledger.sync_refs("a", &ids(&[&c2]), &mut fetch);
        assert_eq!(brief(&sent), [row("a", "delete", "c1", "3")]);
        assert_eq!(fetched, ["c1", "c2"], "only new references are fetched");
        // A referenced object that does not exist is not sent.
        let ghost = ObjectId {
            kind: EdgeKind::Secret,
            namespace: "ns".into(),
            name: "ghost".into(),
        };
        let wanted: BTreeSet<ObjectId> = [ObjectId::of(&c2), ghost].into_iter().collect();
        assert!(ledger.sync_refs("a", &wanted, |_| None).is_empty());
        assert_eq!(ledger.len(), 1);
    }

    #[test]
    fn a_node_is_brought_to_what_it_should_have() {
        let mut ledger = Ledger::new();
        let node = object(EdgeKind::Node, "a", "n", "1");
        let pod = object(EdgeKind::Pod, "p", "p", "2");
        let (c1, c2) = (cm("c1", "c1", "3"), cm("c2", "c2", "4"));
        let want = desired(
            [
                &node,
                &pod,
                &c1,
                &c2,
                &object(EdgeKind::Device, "d", "d", "1"),
            ]
            .into_iter()
            .map(|o| (**o).clone()),
        );
        assert_eq!(want.len(), 4, "devices are DeviceController's");
        let sent = ledger.sync_node("a", &want);
        assert_eq!(
            brief(&sent),
            [
                row("a", "insert", "p", "2"),
                row("a", "insert", "c1", "3"),
                row("a", "insert", "c2", "4"),
                row("a", "update", "a", "1"),
            ],
            "the node's own Node goes as update, as KubeEdge sends it"
        );
        // The pod no longer uses c2, and the pod changed.
        let pod2 = object(EdgeKind::Pod, "p", "p", "9");
        let want = desired([&node, &pod2, &c1].into_iter().map(|o| (**o).clone()));
        let sent = ledger.sync_node("a", &want);
        assert_eq!(
            brief(&sent),
            [row("a", "update", "p", "9"), row("a", "delete", "c2", "4")]
        );
        // The node is no longer an edge node: everything goes, the Node last.
        let sent = ledger.sync_node("a", &Desired::new());
        assert_eq!(
            brief(&sent),
            [
                row("a", "delete", "p", "9"),
                row("a", "delete", "c1", "3"),
                row("a", "delete", "a", "1"),
            ]
        );
        assert_eq!(ledger.len(), 0);
    }
}
