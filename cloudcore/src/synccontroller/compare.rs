//! The catch-up decision for one node, pure: what the node acked (its
//! index entries) against what it should have now (the scope's objects)
//! gives the messages that bring it up to date.
//!
//! - an object newer than the node's acked version → `update`;
//! - an object the node never acked (created while the link was cut, or
//!   while cloudcore was down) → `insert`;
//! - an entry whose object is gone, whose UID changed (a new object of the
//!   same name has another UID) or that left the node's scope → `delete`,
//!   carrying a minimal object (apiVersion, kind, name, namespace, uid)
//!   built from the entry, so the edge deletes that incarnation only.
//!
//! Deletes come first, so a same-name replacement is never removed by the
//! delete of its predecessor. Entries of kinds Apiary does not send are
//! left alone.
//!
//! A node's own Node goes as KubeEdge's EdgeController sends it: always
//! `update` (only a Node `update` is acked, so only it is recorded), and
//! never `delete` (a Node delete closes the node's session; the records of
//! a deleted Node are collected instead, see `gc.rs`). [`SentMemo`] keeps the controller from handing CloudHub the
//! same catch-up again while the first is still on its way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::{Message, Operation};
use serde_json::{json, Value};

use super::records::Entry;
use crate::cloudhub::is_newer;
use crate::scope::{EdgeKind, EdgeObject};

/// One catch-up message for a node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resync {
    /// `insert`, `update` or `delete`.
    pub(crate) op: Operation,
    /// The object sent (a minimal one for deletes).
    pub(crate) object: EdgeObject,
}

impl Resync {
    /// The message to `node`, as the object's controller sends it.
    pub(crate) fn message(&self, node: &str) -> Message {
        self.object.message(node, self.op.clone())
    }

    /// The metric label of its operation.
    pub(crate) fn label(&self) -> &'static str {
        match self.op {
            Operation::Insert => "insert",
            Operation::Update => "update",
            _ => "delete",
        }
    }
}

/// The catch-up for a node that acked `acked` (object UID → entry) and
/// should have `objects`.
pub(crate) fn compare(acked: &BTreeMap<String, Entry>, objects: &[EdgeObject]) -> Vec<Resync> {
    let present: HashSet<&str> = objects.iter().map(|o| o.uid.as_str()).collect();
    let mut out: Vec<Resync> = acked
        .iter()
        .filter(|(uid, _)| !present.contains(uid.as_str()))
        .filter(|(_, entry)| entry.edge_kind() != Some(EdgeKind::Node))
        .filter_map(|(uid, entry)| {
            Some(Resync {
                op: Operation::Delete,
                object: tombstone(uid, entry)?,
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for object in objects {
        if object.uid.is_empty() || !seen.insert(object.uid.as_str()) {
            continue;
        }
        let op = match acked.get(&object.uid) {
            None if object.kind == EdgeKind::Node => Operation::Update,
            None => Operation::Insert,
            Some(entry) if is_newer(&object.resource_version, &entry.resource_version) => {
                Operation::Update
            }
            Some(_) => continue,
        };
        out.push(Resync {
            op,
            object: object.clone(),
        });
    }
    out
}

/// The minimal object a delete of `entry` (UID `uid`) carries; `None` for
/// kinds Apiary does not send.
pub(crate) fn tombstone(uid: &str, entry: &Entry) -> Option<EdgeObject> {
    let kind = entry.edge_kind()?;
    let namespace = entry.namespace.clone().filter(|_| kind.namespaced());
    let mut metadata = json!({"name": entry.name, "uid": uid});
    if let (Some(ns), Value::Object(map)) = (&namespace, &mut metadata) {
        map.insert("namespace".to_owned(), Value::from(ns.as_str()));
    }
    let object = json!({
        "apiVersion": kind.api_version(),
        "kind": kind.kind(),
        "metadata": metadata,
    });
    Some(EdgeObject {
        kind,
        namespace,
        name: entry.name.clone(),
        uid: uid.to_owned(),
        resource_version: String::new(),
        json: Arc::new(object),
    })
}

/// What the controller handed CloudHub recently, per (node, object UID):
/// CloudHub keeps a message until the edge acks it, so the same catch-up
/// is not handed over again until `hold` has passed (in case CloudHub
/// dropped it) or the link came back.
#[derive(Debug)]
pub(crate) struct SentMemo {
    hold: Duration,
    sent: HashMap<(String, String), (Operation, String, Instant)>,
}

impl SentMemo {
    /// An empty memo that holds catch-ups back for `hold`.
    pub(crate) fn new(hold: Duration) -> Self {
        SentMemo {
            hold,
            sent: HashMap::new(),
        }
    }

    /// Of `wanted` for `node`, what to send now; remembers it, and forgets
    /// what `node` no longer needs.
    pub(crate) fn filter(&mut self, node: &str, wanted: Vec<Resync>, now: Instant) -> Vec<Resync> {
        let uids: HashSet<&str> = wanted.iter().map(|r| r.object.uid.as_str()).collect();
        self.sent
            .retain(|(n, uid), _| n != node || uids.contains(uid.as_str()));
        let mut out = Vec::new();
        for resync in wanted {
            let key = (node.to_owned(), resync.object.uid.clone());
            let rv = resync.object.resource_version.clone();
            let fresh = self.sent.get(&key).is_some_and(|(op, sent_rv, at)| {
                *op == resync.op && *sent_rv == rv && now.duration_since(*at) < self.hold
            });
            if !fresh {
                self.sent.insert(key, (resync.op.clone(), rv, now));
                out.push(resync);
            }
        }
        out
    }

    /// `node`'s link came back: send what it needs again at once (CloudHub
    /// drops what it still holds as stale; anything it dropped meanwhile,
    /// e.g. from a full queue, goes out again).
    pub(crate) fn forget(&mut self, node: &str) {
        self.sent.retain(|(n, _), _| n != node);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures are known to parse")]

    use k8s_openapi::api::core::v1::{ConfigMap, Pod};

    use super::*;

    fn cm(name: &str, uid: &str, rv: &str) -> EdgeObject {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {
            "name": name, "namespace": "ns", "uid": uid, "resourceVersion": rv}}))
        .unwrap();
        EdgeObject::new(EdgeKind::ConfigMap, &cm.metadata, &cm).unwrap()
    }

    fn pod(name: &str, uid: &str, rv: &str) -> EdgeObject {
        let p: Pod = serde_json::from_value(json!({"metadata": {
            "name": name, "namespace": "ns", "uid": uid, "resourceVersion": rv}}))
        .unwrap();
        EdgeObject::new(EdgeKind::Pod, &p.metadata, &p).unwrap()
    }

    fn entry(kind: EdgeKind, name: &str, rv: &str) -> Entry {
        Entry {
            api_version: kind.api_version().into(),
            kind: kind.kind().into(),
            namespace: kind.namespaced().then(|| "ns".to_owned()),
            name: name.into(),
            resource_version: rv.into(),
        }
    }

    fn acked(entries: &[(&str, Entry)]) -> BTreeMap<String, Entry> {
        entries
            .iter()
            .map(|(uid, e)| ((*uid).to_owned(), e.clone()))
            .collect()
    }

    fn summary(out: &[Resync]) -> Vec<(String, String, String)> {
        out.iter()
            .map(|r| {
                (
                    r.label().to_owned(),
                    r.object.key(),
                    r.object.resource_version.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn an_up_to_date_node_gets_nothing() {
        let objects = [cm("a", "u1", "5"), pod("p", "u2", "7")];
        let have = acked(&[
            ("u1", entry(EdgeKind::ConfigMap, "a", "5")),
            ("u2", entry(EdgeKind::Pod, "p", "9")),
        ]);
        assert!(compare(&have, &objects).is_empty());
    }

    #[test]
    fn newer_objects_update_unknown_ones_insert() {
        let objects = [cm("a", "u1", "6"), cm("b", "u3", "4"), cm("b", "u3", "4")];
        let have = acked(&[("u1", entry(EdgeKind::ConfigMap, "a", "5"))]);
        let out = compare(&have, &objects);
        assert_eq!(
            summary(&out),
            [
                ("update".into(), "ns/a".into(), "6".into()),
                ("insert".into(), "ns/b".into(), "4".into()),
            ]
        );
        let msg = out[1].message("edge-1");
        assert_eq!(msg.resource(), "node/edge-1/ns/configmap/b");
        assert_eq!(*msg.operation(), Operation::Insert);
        assert_eq!(msg.header.resource_version, "4");
    }

    #[test]
    fn gone_replaced_and_out_of_scope_objects_are_deleted_first() {
        // "a" was deleted and re-created (new UID); "p" left the node.
        let objects = [cm("a", "u9", "20")];
        let have = acked(&[
            ("u1", entry(EdgeKind::ConfigMap, "a", "5")),
            ("u2", entry(EdgeKind::Pod, "p", "7")),
        ]);
        let out = compare(&have, &objects);
        assert_eq!(
            summary(&out),
            [
                ("delete".into(), "ns/a".into(), String::new()),
                ("delete".into(), "ns/p".into(), String::new()),
                ("insert".into(), "ns/a".into(), "20".into()),
            ]
        );
        let del = out[0].message("edge-1");
        assert_eq!(del.resource(), "node/edge-1/ns/configmap/a");
        assert_eq!(
            del.content,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "a", "namespace": "ns", "uid": "u1"}})
        );
        assert_eq!(del.route.source, "edgecontroller");
    }

    #[test]
    fn device_deletes_come_from_devicecontroller() {
        let have = acked(&[
            ("d1", entry(EdgeKind::Device, "dev", "3")),
            ("m1", entry(EdgeKind::DeviceModel, "model", "3")),
        ]);
        let msgs: Vec<Message> = compare(&have, &[])
            .iter()
            .map(|r| r.message("edge-1"))
            .collect();
        assert_eq!(msgs[0].route.source, "devicecontroller");
        assert_eq!(msgs[0].resource(), "node/edge-1/ns/device/dev");
        assert_eq!(msgs[0].content["apiVersion"], "devices.kubeedge.io/v1beta1");
        assert_eq!(msgs[1].resource(), "node/edge-1/ns/devicemodel/model");
        assert!(msgs.iter().all(proto::needs_ack));
        let mut node = entry(EdgeKind::Node, "edge-1", "3");
        node.kind = "Node".into();
        let bare = tombstone("n1", &node).unwrap();
        assert_eq!(bare.edge_resource(), "null/node/edge-1");
        assert!(bare.json["metadata"].get("namespace").is_none());
    }

    #[test]
    fn the_node_itself_is_only_ever_updated() {
        let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(
            json!({"metadata": {"name": "edge-1", "uid": "n1", "resourceVersion": "4"}}),
        )
        .unwrap();
        let obj = EdgeObject::new(EdgeKind::Node, &node.metadata, &node).unwrap();
        let out = compare(&BTreeMap::new(), &[obj]);
        assert_eq!(out[0].op, Operation::Update);
        assert!(proto::needs_ack(&out[0].message("edge-1")));
        let gone = acked(&[("n0", entry(EdgeKind::Node, "edge-1", "3"))]);
        assert!(compare(&gone, &[]).is_empty(), "no Node delete");
    }

    #[test]
    fn foreign_kinds_are_left_alone() {
        let mut service = entry(EdgeKind::Pod, "s", "3");
        service.kind = "Service".into();
        assert!(compare(&acked(&[("s1", service)]), &[]).is_empty());
    }

    #[test]
    fn the_memo_holds_repeats_back_until_the_hold_passes_or_the_link_returns() {
        let t0 = Instant::now();
        let hold = Duration::from_secs(60);
        let mut memo = SentMemo::new(hold);
        let wanted = || compare(&BTreeMap::new(), &[cm("a", "u1", "5")]);
        assert_eq!(memo.filter("e1", wanted(), t0).len(), 1);
        assert!(memo.filter("e1", wanted(), t0 + hold / 2).is_empty());
        assert_eq!(memo.filter("e2", wanted(), t0).len(), 1, "per node");
        // A newer version is another message.
        let newer = compare(&BTreeMap::new(), &[cm("a", "u1", "6")]);
        assert_eq!(memo.filter("e1", newer, t0 + hold / 2).len(), 1);
        assert!(memo
            .filter(
                "e1",
                compare(&BTreeMap::new(), &[cm("a", "u1", "6")]),
                t0 + hold
            )
            .is_empty());
        assert_eq!(
            memo.filter(
                "e1",
                compare(&BTreeMap::new(), &[cm("a", "u1", "6")]),
                t0 + hold * 2
            )
            .len(),
            1
        );
        memo.forget("e1");
        assert_eq!(memo.filter("e1", wanted(), t0 + hold * 2).len(), 1);
        // Once nothing is needed, the memo forgets the node's object.
        assert!(memo.filter("e1", Vec::new(), t0).is_empty());
        assert_eq!(memo.filter("e1", wanted(), t0).len(), 1);
    }
}
