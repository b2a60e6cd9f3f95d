//! DeviceModels down to edge nodes, as a pure reconciliation: a node has
//! the models its Devices reference (`spec.deviceModelRef`, in the
//! device's namespace), each at the API's current resourceVersion.
//!
//! [`sync`] compares what one node should have (the models wanted and the
//! objects as the shared [`Scope`](crate::scope::Scope) holds them) with
//! what was sent to it, and says what to send: `insert` for a model the
//! node lacks, `update` for a newer version, `delete` for a model deleted
//! from the API or no longer referenced by any device of the node. The
//! messages are [`EdgeObject::message`]s (`node/<n>/<ns>/devicemodel/<m>`,
//! source `devicecontroller`, group `resource`, the resourceVersion in
//! the header), so MetaManager stores them and acks like any object.

use std::collections::{BTreeMap, BTreeSet};

use proto::Operation;

use super::downstream::Out;
use crate::scope::EdgeObject;

/// A model: the namespace and name.
pub(crate) type ModelKey = (String, String);

/// What `node` needs to go from `sent` to `wanted`, where `lookup` gives a
/// model as it is now (None if it does not exist); `sent` is updated to
/// what the messages leave the node with.
pub(crate) fn sync(
    node: &str,
    wanted: &BTreeSet<ModelKey>,
    lookup: impl Fn(&ModelKey) -> Option<EdgeObject>,
    sent: &mut BTreeMap<ModelKey, EdgeObject>,
) -> Vec<Out> {
    let mut out = Vec::new();
    let mut send = |object: &EdgeObject, op| {
        out.push(Out {
            kind: "devicemodel",
            msg: object.message(node, op),
        });
    };
    let keys: BTreeSet<ModelKey> = sent.keys().chain(wanted).cloned().collect();
    for key in keys {
        // Not wanted any more, or deleted from the API: None.
        let now = wanted.contains(&key).then(|| lookup(&key)).flatten();
        match (now, sent.get(&key)) {
            (Some(now), None) => {
                send(&now, Operation::Insert);
                sent.insert(key, now);
            }
            (Some(now), Some(last)) if now.resource_version != last.resource_version => {
                send(&now, Operation::Update);
                sent.insert(key, now);
            }
            (Some(_), Some(_)) | (None, None) => {}
            (None, Some(_)) => {
                if let Some(last) = sent.remove(&key) {
                    send(&last, Operation::Delete);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;
    use crate::scope::EdgeKind;
    use crds::DeviceModel;
    use serde_json::json;

    fn model(name: &str, rv: &str) -> EdgeObject {
        let m: DeviceModel = serde_json::from_value(json!({
            "apiVersion": "devices.kubeedge.io/v1beta1", "kind": "DeviceModel",
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"),
                         "resourceVersion": rv},
            "spec": {"properties": [{"name": "power", "type": "STRING"}]}
        }))
        .unwrap();
        EdgeObject::new(EdgeKind::DeviceModel, &m.metadata, &m).unwrap()
    }

    fn key(name: &str) -> ModelKey {
        ("default".into(), name.into())
    }

    fn ops(out: &[Out]) -> Vec<(String, String, String)> {
        out.iter()
            .map(|o| {
                (
                    o.msg.operation().as_str().to_owned(),
                    o.msg.resource().to_owned(),
                    o.msg.header.resource_version.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_referenced_model_is_inserted_then_updated_then_deleted() {
        let mut sent = BTreeMap::new();
        let wanted = BTreeSet::from([key("m1")]);
        let out = sync("edge-1", &wanted, |_| Some(model("m1", "5")), &mut sent);
        assert_eq!(
            ops(&out),
            [(
                "insert".into(),
                "node/edge-1/default/devicemodel/m1".into(),
                "5".into()
            )]
        );
        let msg = &out[0].msg;
        assert_eq!(
            (msg.route.source.as_str(), msg.route.group.as_str()),
            ("devicecontroller", "resource")
        );
        assert_eq!(msg.content["kind"], "DeviceModel");
        // The same version again: nothing.
        assert!(sync("edge-1", &wanted, |_| Some(model("m1", "5")), &mut sent).is_empty());
        // A newer version: an update.
        let out = sync("edge-1", &wanted, |_| Some(model("m1", "6")), &mut sent);
        assert_eq!(ops(&out)[0].0, "update");
        // Deleted from the API: a delete at the last version sent.
        let out = sync("edge-1", &wanted, |_| None, &mut sent);
        assert_eq!(
            ops(&out),
            [(
                "delete".into(),
                "node/edge-1/default/devicemodel/m1".into(),
                "6".into()
            )]
        );
        assert_eq!(out[0].msg.content["metadata"]["uid"], "u-m1");
        assert!(sent.is_empty());
        // Still gone: nothing more. Created again: inserted again.
        assert!(sync("edge-1", &wanted, |_| None, &mut sent).is_empty());
        let out = sync("edge-1", &wanted, |_| Some(model("m1", "9")), &mut sent);
        assert_eq!(ops(&out)[0].0, "insert");
    }

    #[test]
    fn a_model_no_device_references_is_deleted() {
        let mut sent = BTreeMap::new();
        let both = BTreeSet::from([key("m1"), key("m2")]);
        let lookup = |k: &ModelKey| Some(model(&k.1, "3"));
        assert_eq!(sync("edge-1", &both, lookup, &mut sent).len(), 2);
        let out = sync("edge-1", &BTreeSet::from([key("m2")]), lookup, &mut sent);
        assert_eq!(
            ops(&out),
            [(
                "delete".into(),
                "node/edge-1/default/devicemodel/m1".into(),
                "3".into()
            )]
        );
        assert_eq!(sent.keys().cloned().collect::<Vec<_>>(), [key("m2")]);
        // A wanted model that does not exist yet: nothing to send.
        let mut none = BTreeMap::new();
        assert!(sync("edge-1", &both, |_| None, &mut none).is_empty());
    }
}
