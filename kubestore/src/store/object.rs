//! The objects a store holds: [`ObjectKey`] (resource, namespace, name),
//! [`Object`] (the JSON with its revision) and the watch [`Event`].

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;

use crate::resource::Gvr;

/// Where an object lives: its resource, namespace (none for
/// cluster-scoped objects) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The resource.
    pub gvr: Gvr,
    /// The namespace; `None` for cluster-scoped resources.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// A key.
    pub fn new(gvr: Gvr, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            gvr,
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The `meta_v2` primary key, as KubeEdge writes it:
    /// `/<group|core>/<version>/<resource>/<namespace|null>/<name>`.
    pub fn storage_key(&self) -> String {
        format!(
            "{}{}",
            prefix(&self.gvr, Some(self.namespace.as_deref().unwrap_or("null"))),
            self.name
        )
    }
}

/// The `meta_v2` key prefix of `gvr`'s objects, narrowed to `namespace`
/// when given (`null` for cluster-scoped objects).
pub(crate) fn prefix(gvr: &Gvr, namespace: Option<&str>) -> String {
    let mut p = format!("/{}/{}/{}/", gvr.group_or_core(), gvr.version, gvr.resource);
    if let Some(ns) = namespace {
        p.push_str(ns);
        p.push('/');
    }
    p
}

/// An object as stored: its JSON, whose `metadata.resourceVersion` is the
/// store's revision of its last change.
#[derive(Debug)]
pub struct Object {
    /// Where it lives.
    pub key: ObjectKey,
    /// The store revision of its last change.
    pub revision: u64,
    /// The object.
    pub value: Value,
    json: OnceLock<Bytes>,
}

impl Object {
    /// An object at `revision`; `metadata.resourceVersion` is set to it.
    pub fn new(key: ObjectKey, revision: u64, mut value: Value) -> Object {
        set_resource_version(&mut value, revision);
        Object {
            key,
            revision,
            value,
            json: OnceLock::new(),
        }
    }

    /// The object serialised, computed once and shared by every reader.
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&self.value).unwrap_or_default()))
            .clone()
    }

    /// `metadata.labels` (empty when absent).
    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        labels_of(&self.value)
    }

    /// `metadata.uid`, if any.
    pub fn uid(&self) -> Option<&str> {
        self.value.pointer("/metadata/uid").and_then(Value::as_str)
    }
}

/// Sets `metadata.resourceVersion` of `value` (an object) to `revision`.
pub(crate) fn set_resource_version(value: &mut Value, revision: u64) {
    if let Some(obj) = value.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(
                "resourceVersion".to_owned(),
                Value::String(revision.to_string()),
            );
        }
    }
}

/// The string labels of an object's `metadata.labels`.
pub fn labels_of(value: &Value) -> std::collections::BTreeMap<String, String> {
    value
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed; the object is its last state at the deletion's revision.
    Deleted,
}

impl EventKind {
    /// The watch event `type`: `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The object after the change (for deletions: before it, with the
    /// deletion's revision).
    pub object: Arc<Object>,
}

impl Event {
    /// The revision of the change.
    pub fn revision(&self) -> u64 {
        self.object.revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_as_kubeedge_writes_them() {
        let pod = ObjectKey::new(Gvr::core("pods"), Some("default"), "nginx");
        assert_eq!(pod.storage_key(), "/core/v1/pods/default/nginx");
        let node = ObjectKey::new(Gvr::core("nodes"), None, "edge-1");
        assert_eq!(node.storage_key(), "/core/v1/nodes/null/edge-1");
        let dev = ObjectKey::new(
            Gvr::new("devices.kubeedge.io", "v1beta1", "devices"),
            Some("ns"),
            "d",
        );
        assert_eq!(
            dev.storage_key(),
            "/devices.kubeedge.io/v1beta1/devices/ns/d"
        );
        assert_eq!(prefix(&Gvr::core("pods"), None), "/core/v1/pods/");
    }

    #[test]
    fn object_carries_its_revision() {
        let key = ObjectKey::new(Gvr::core("configmaps"), Some("default"), "a");
        let o = Object::new(
            key,
            7,
            json!({"metadata": {"name": "a", "labels": {"app": "x", "n": 1}, "uid": "u"}}),
        );
        assert_eq!(o.value["metadata"]["resourceVersion"], "7");
        assert_eq!(o.labels().get("app").map(String::as_str), Some("x"));
        assert_eq!(o.labels().len(), 1);
        assert_eq!(o.uid(), Some("u"));
        let bare = Object::new(o.key.clone(), 3, json!({}));
        assert_eq!(bare.value["metadata"]["resourceVersion"], "3");
        assert!(bare.json().starts_with(b"{"));
    }
}
