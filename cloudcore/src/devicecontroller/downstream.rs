//! Devices → messages for edge nodes, as pure functions: what changed
//! between the last Device seen and the new one, and the membership, twin,
//! attribute and object messages that follow (reference §5, §7).
//!
//! Twin versions: `cloud` is the Device's `metadata.generation`; `edge` is
//! the last `expected_version.edge` the edge reported for that twin.
//!
//! A desired value that goes away is sent in `twin/cloud_updated` as:
//!
//! - the property removed from `spec.properties`: the twin with
//!   `metadata.type: deleted` (as KubeEdge marks removed twins), so the
//!   edge deletes it, reported value included;
//! - the property kept, only its `desired` removed: the twin with an empty
//!   `expected` (`{}`) and its version, so the edge clears the desired
//!   value and keeps the reported one (no delta is published for it).

use std::collections::{BTreeMap, BTreeSet};

use crds::Device;
use kube::ResourceExt;
use proto::modules::{cloud, group};
use proto::resource::{MEMBERSHIP, MEMBERSHIP_DETAIL, TWIN_CLOUD_UPDATED};
use proto::twin::{
    self, BaseMessage, MembershipDetail, MembershipUpdate, MsgAttr, MsgTwin, TwinUpdate, TwinValue,
    TwinVersion, TypeMetadata,
};
use proto::{Message, Operation};
use serde_json::Value;

use super::attributes;
use super::models::ModelKey;
use crate::scope::{EdgeKind, EdgeObject};

/// `(device id, property)` → the edge's `expected_version.edge`.
pub(crate) type EdgeVersions = std::collections::HashMap<(String, String), i64>;

/// The twin type KubeEdge uses to mark a removed twin.
const DELETED: &str = "deleted";

/// A desired value and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Desired {
    /// The value.
    pub(crate) value: String,
    /// Its type (`string` when the Device says none).
    pub(crate) kind: String,
}

/// What the controller last sent about one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Seen {
    /// The node it was bound to.
    pub(crate) node: Option<String>,
    /// The DeviceModel it references (its namespace, the model's name).
    pub(crate) model: Option<ModelKey>,
    /// The names of its properties.
    pub(crate) properties: BTreeSet<String>,
    /// Its desired values by property.
    pub(crate) desired: BTreeMap<String, Desired>,
    /// Its attributes (from its labels).
    pub(crate) attributes: BTreeMap<String, MsgAttr>,
    /// Every attribute name sent to the node since the device was bound
    /// to it: an update names each one absent now as removed, so an update
    /// that replaces an unacked one in CloudHub's queue loses no removal.
    pub(crate) attribute_names: BTreeSet<String>,
    /// The object's resourceVersion.
    pub(crate) resource_version: String,
}

/// A message for CloudHub and its kind for the metrics.
#[derive(Debug, Clone)]
pub(crate) struct Out {
    /// `membership`, `membership_detail`, `twin`, `attributes`, `device`
    /// or `devicemodel`.
    pub(crate) kind: &'static str,
    /// The message.
    pub(crate) msg: Message,
}

/// `<namespace>/<name>`.
pub(crate) fn device_id(device: &Device) -> String {
    format!(
        "{}/{}",
        device.namespace().unwrap_or_else(|| "default".into()),
        device.name_any()
    )
}

/// The node a device is bound to, if any.
pub(crate) fn node_of(device: &Device) -> Option<String> {
    device
        .spec
        .node_name
        .clone()
        .filter(|node| !node.is_empty())
}

/// The DeviceModel a device references, in its own namespace.
pub(crate) fn model_of(device: &Device) -> Option<ModelKey> {
    let model = device.spec.device_model_ref.as_ref()?;
    (!model.name.is_empty()).then(|| {
        (
            device.namespace().unwrap_or_else(|| "default".into()),
            model.name.clone(),
        )
    })
}

/// The properties with a desired value.
pub(crate) fn desired(device: &Device) -> BTreeMap<String, Desired> {
    device
        .spec
        .properties
        .iter()
        .filter_map(|p| {
            let d = p.desired.as_ref()?;
            Some((
                p.name.clone(),
                Desired {
                    value: d.value.clone(),
                    kind: d
                        .metadata
                        .get("type")
                        .cloned()
                        .unwrap_or_else(|| "string".into()),
                },
            ))
        })
        .collect()
}

fn properties(device: &Device) -> BTreeSet<String> {
    device
        .spec
        .properties
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

/// What is sent about `device` now; `prev` is what was sent before (its
/// attribute names carry over while the node stays the same).
pub(crate) fn seen(prev: Option<&Seen>, device: &Device) -> Seen {
    let node = node_of(device);
    let attributes = attributes::of(device);
    let mut attribute_names: BTreeSet<String> = attributes.keys().cloned().collect();
    if let Some(prev) = prev.filter(|p| p.node == node) {
        attribute_names.extend(prev.attribute_names.iter().cloned());
    }
    Seen {
        node,
        model: model_of(device),
        properties: properties(device),
        desired: desired(device),
        attributes,
        attribute_names,
        resource_version: device.resource_version().unwrap_or_default(),
    }
}

fn generation(device: &Device) -> i64 {
    device.metadata.generation.unwrap_or(0)
}

fn version(id: &str, property: &str, cloud: i64, edge: &EdgeVersions) -> TwinVersion {
    let edge = edge
        .get(&(id.to_owned(), property.to_owned()))
        .copied()
        .unwrap_or(0);
    TwinVersion { cloud, edge }
}

/// The twin DeviceTwin is sent for desired value `d` of `property`.
fn desired_twin(id: &str, property: &str, d: &Desired, cloud: i64, edge: &EdgeVersions) -> MsgTwin {
    MsgTwin {
        expected: Some(TwinValue {
            value: Some(d.value.clone()),
            metadata: None,
        }),
        expected_version: Some(version(id, property, cloud, edge)),
        metadata: Some(TypeMetadata {
            kind: d.kind.clone(),
        }),
        ..MsgTwin::default()
    }
}

/// The twin that clears `property`'s desired value (empty `expected`).
fn cleared_twin(id: &str, property: &str, cloud: i64, edge: &EdgeVersions) -> MsgTwin {
    MsgTwin {
        expected: Some(TwinValue::default()),
        expected_version: Some(version(id, property, cloud, edge)),
        ..MsgTwin::default()
    }
}

/// The twin that deletes `property` at the edge.
fn deleted_twin(id: &str, property: &str, cloud: i64, edge: &EdgeVersions) -> MsgTwin {
    MsgTwin {
        expected_version: Some(version(id, property, cloud, edge)),
        metadata: Some(TypeMetadata {
            kind: DELETED.into(),
        }),
        ..MsgTwin::default()
    }
}

/// The device as DeviceTwin takes it in `added_devices` and the membership
/// detail: id, name, description, attributes and a twin per desired value.
pub(crate) fn edge_device(device: &Device, edge: &EdgeVersions) -> twin::Device {
    let id = device_id(device);
    let cloud = generation(device);
    let twin = desired(device)
        .iter()
        .map(|(name, d)| (name.clone(), desired_twin(&id, name, d, cloud, edge)))
        .collect();
    twin::Device {
        name: device.name_any(),
        description: attributes::description(device),
        attributes: attributes::of(device),
        twin,
        id,
        ..twin::Device::default()
    }
}

fn base(now: i64) -> BaseMessage {
    BaseMessage {
        event_id: proto::new_msg_id(),
        timestamp: now,
    }
}

pub(crate) fn to_value(payload: &impl serde::Serialize) -> Value {
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

pub(crate) fn twin_msg(node: &str, resource: &str, op: Operation, content: Value) -> Message {
    Message::new(
        cloud::DEVICECONTROLLER,
        group::TWIN,
        op,
        format!("node/{node}/{resource}"),
    )
    .with_content(content)
}

/// `node/<n>/membership` adding or removing devices.
pub(crate) fn membership(
    node: &str,
    added_devices: Vec<twin::Device>,
    removed_devices: Vec<twin::Device>,
    now: i64,
) -> Out {
    let content = MembershipUpdate {
        base: base(now),
        added_devices,
        removed_devices,
    };
    Out {
        kind: "membership",
        msg: twin_msg(node, MEMBERSHIP, Operation::Update, to_value(&content)),
    }
}

/// The answer to the edge's `membership/detail` request `request`.
pub(crate) fn membership_detail(
    node: &str,
    request: &Message,
    devices: Vec<twin::Device>,
    now: i64,
) -> Out {
    let content = MembershipDetail {
        base: base(now),
        devices,
    };
    let mut msg = twin_msg(
        node,
        MEMBERSHIP_DETAIL,
        Operation::Response,
        to_value(&content),
    );
    msg.header.parent_msg_id = request.id().to_owned();
    Out {
        kind: "membership_detail",
        msg,
    }
}

/// The Device object itself, for MetaManager (as every object goes down).
fn object(node: &str, device: &Device, op: Operation) -> Option<Out> {
    let object = EdgeObject::new(EdgeKind::Device, &device.metadata, device)?;
    Some(Out {
        kind: "device",
        msg: object.message(node, op),
    })
}

/// The `twin/cloud_updated` twins for a device that stayed on its node:
/// new and changed desired values, cleared ones and removed properties.
fn twin_changes(
    id: &str,
    prev: &Seen,
    now: &Seen,
    cloud: i64,
    edge: &EdgeVersions,
) -> BTreeMap<String, Option<MsgTwin>> {
    let mut twins: BTreeMap<String, Option<MsgTwin>> = now
        .desired
        .iter()
        .filter(|(name, d)| prev.desired.get(*name) != Some(*d))
        .map(|(name, d)| (name.clone(), Some(desired_twin(id, name, d, cloud, edge))))
        .collect();
    for name in prev
        .desired
        .keys()
        .filter(|n| !now.desired.contains_key(*n))
    {
        if now.properties.contains(name) {
            twins.insert(name.clone(), Some(cleared_twin(id, name, cloud, edge)));
        }
    }
    for name in prev.properties.difference(&now.properties) {
        twins.insert(name.clone(), Some(deleted_twin(id, name, cloud, edge)));
    }
    twins
}

/// What to send when `device` appears or changes, or (`deleted`) is
/// deleted; `prev` is what was sent before, `now` what is sent now
/// ([`seen`] of the device).
pub(crate) fn plan(
    prev: Option<&Seen>,
    now: &Seen,
    device: &Device,
    deleted: bool,
    edge: &EdgeVersions,
    at: i64,
) -> Vec<Out> {
    let id = device_id(device);
    let old_node = prev.and_then(|p| p.node.clone());
    let new_node = if deleted { None } else { now.node.clone() };
    let mut out = Vec::new();
    if old_node != new_node {
        if let Some(old) = &old_node {
            let removed = twin::Device {
                id: id.clone(),
                name: device.name_any(),
                ..twin::Device::default()
            };
            out.push(membership(old, Vec::new(), vec![removed], at));
            out.extend(object(old, device, Operation::Delete));
        }
        if let Some(new) = &new_node {
            out.push(membership(
                new,
                vec![edge_device(device, edge)],
                Vec::new(),
                at,
            ));
            out.extend(object(new, device, Operation::Insert));
        }
        return out;
    }
    let (Some(node), Some(prev)) = (new_node, prev) else {
        return out;
    };
    let twins = twin_changes(&id, prev, now, generation(device), edge);
    if !twins.is_empty() {
        let content = TwinUpdate {
            base: base(at),
            twin: twins,
        };
        out.push(Out {
            kind: "twin",
            msg: twin_msg(
                &node,
                &format!("device/{id}/{TWIN_CLOUD_UPDATED}"),
                Operation::Update,
                to_value(&content),
            ),
        });
    }
    if now.attributes != prev.attributes {
        out.push(attributes::update(&node, &id, now, base(at)));
    }
    if now.resource_version != prev.resource_version {
        out.extend(object(&node, device, Operation::Update));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;
    use serde_json::json;

    fn dev(node: Option<&str>, power: Option<&str>, generation: i64, rv: &str) -> Device {
        let mut spec: crds::DeviceSpec = serde_json::from_value(json!({
            "properties": [{"name": "power"}, {"name": "temp"}],
        }))
        .unwrap();
        spec.node_name = node.map(str::to_owned);
        if let Some(v) = power {
            spec.properties[0].desired = Some(crds::TwinProperty {
                value: v.into(),
                metadata: [("type".to_owned(), "string".to_owned())].into(),
            });
        }
        let mut d = Device::new("dev1", spec);
        d.metadata.namespace = Some("default".into());
        d.metadata.generation = Some(generation);
        d.metadata.resource_version = Some(rv.into());
        d
    }

    /// `plan` from `before` (as sent) to `after`.
    fn step(
        before: Option<&Device>,
        after: &Device,
        deleted: bool,
        edge: &EdgeVersions,
    ) -> Vec<Out> {
        let prev = before.map(|b| seen(None, b));
        let now = seen(prev.as_ref(), after);
        plan(prev.as_ref(), &now, after, deleted, edge, 7)
    }

    #[test]
    fn a_bound_device_is_announced_with_its_desired_values() {
        let mut d = dev(Some("edge-1"), Some("on"), 1, "5");
        d.metadata.labels = Some([("description".into(), "a lamp".into())].into());
        let out = step(None, &d, false, &EdgeVersions::new());
        let kinds: Vec<_> = out.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, ["membership", "device"]);
        let m = &out[0].msg;
        assert_eq!(m.resource(), "node/edge-1/membership");
        assert_eq!(m.route.group, "twin");
        assert_eq!(*m.operation(), Operation::Update);
        let added = &m.content["added_devices"][0];
        assert_eq!(added["id"], "default/dev1");
        assert_eq!(added["name"], "dev1");
        assert_eq!(added["description"], "a lamp");
        assert_eq!(added["attributes"]["description"]["value"], "a lamp");
        assert_eq!(
            added["twin"],
            json!({"power": {"expected": {"value": "on"},
                "expected_version": {"cloud": 1, "edge": 0}, "metadata": {"type": "string"}}})
        );
        assert_eq!(m.content["timestamp"], 7);
        let o = &out[1].msg;
        assert_eq!(o.resource(), "node/edge-1/default/device/dev1");
        assert_eq!(
            (o.route.group.as_str(), o.header.resource_version.as_str()),
            ("resource", "5")
        );
        assert_eq!(o.route.source, "devicecontroller");
        assert_eq!(o.content["kind"], "Device");
        assert_eq!(*o.operation(), Operation::Insert);
    }

    #[test]
    fn a_new_desired_value_is_a_cloud_update_with_versions() {
        let before = dev(Some("edge-1"), Some("on"), 1, "5");
        let after = dev(Some("edge-1"), Some("off"), 2, "6");
        let edge = EdgeVersions::from([(("default/dev1".into(), "power".into()), 3)]);
        let out = step(Some(&before), &after, false, &edge);
        assert_eq!(
            out.iter().map(|o| o.kind).collect::<Vec<_>>(),
            ["twin", "device"]
        );
        let m = &out[0].msg;
        assert_eq!(
            m.resource(),
            "node/edge-1/device/default/dev1/twin/cloud_updated"
        );
        assert_eq!(
            m.content["twin"]["power"]["expected_version"],
            json!({"cloud": 2, "edge": 3})
        );
        assert_eq!(m.content["twin"]["power"]["expected"]["value"], "off");
        // Nothing changed: nothing sent.
        assert!(step(Some(&after), &after, false, &edge).is_empty());
    }

    #[test]
    fn removed_desired_values_are_cleared_and_removed_properties_deleted() {
        let before = dev(Some("edge-1"), Some("on"), 1, "5");
        // The desired value goes; the property stays.
        let cleared = dev(Some("edge-1"), None, 2, "6");
        let out = step(Some(&before), &cleared, false, &EdgeVersions::new());
        assert_eq!(out[0].kind, "twin");
        assert_eq!(
            out[0].msg.content["twin"],
            json!({"power": {"expected": {}, "expected_version": {"cloud": 2, "edge": 0}}})
        );
        // The property goes too (and temp, which never had a value).
        let mut gone = dev(Some("edge-1"), None, 3, "7");
        gone.spec.properties.clear();
        let out = step(Some(&before), &gone, false, &EdgeVersions::new());
        assert_eq!(
            out[0].msg.content["twin"],
            json!({
                "power": {"metadata": {"type": "deleted"}, "expected_version": {"cloud": 3, "edge": 0}},
                "temp": {"metadata": {"type": "deleted"}, "expected_version": {"cloud": 3, "edge": 0}}
            })
        );
        // The edge reads it back as removals.
        let update: TwinUpdate = serde_json::from_value(out[0].msg.content.clone()).unwrap();
        assert!(update
            .twin
            .values()
            .flatten()
            .all(MsgTwin::is_delete_request));
    }

    #[test]
    fn moving_or_deleting_removes_from_the_old_node() {
        let before = dev(Some("edge-1"), None, 1, "5");
        let moved = dev(Some("edge-2"), None, 2, "6");
        let out = step(Some(&before), &moved, false, &EdgeVersions::new());
        let res: Vec<_> = out.iter().map(|o| o.msg.resource().to_owned()).collect();
        assert_eq!(
            res,
            [
                "node/edge-1/membership",
                "node/edge-1/default/device/dev1",
                "node/edge-2/membership",
                "node/edge-2/default/device/dev1"
            ]
        );
        assert_eq!(
            out[0].msg.content["removed_devices"][0]["id"],
            "default/dev1"
        );
        assert_eq!(*out[1].msg.operation(), Operation::Delete);
        let gone = step(Some(&moved), &moved, true, &EdgeVersions::new());
        assert_eq!(gone.len(), 2);
        assert_eq!(gone[0].msg.resource(), "node/edge-2/membership");
        // Never bound: nothing.
        let free = dev(None, Some("on"), 1, "1");
        assert!(step(None, &free, false, &EdgeVersions::new()).is_empty());
    }

    #[test]
    fn the_model_reference_is_in_the_same_namespace() {
        let mut d = dev(Some("edge-1"), None, 1, "5");
        assert_eq!(model_of(&d), None);
        d.spec.device_model_ref = Some(crds::DeviceModelRef { name: "m1".into() });
        assert_eq!(model_of(&d), Some(("default".into(), "m1".into())));
        assert_eq!(seen(None, &d).model, model_of(&d));
    }

    #[test]
    fn the_detail_answers_the_request() {
        let req = Message::new(
            "twin",
            "twin",
            Operation::Get,
            "node/edge-1/membership/detail",
        );
        let d = dev(Some("edge-1"), Some("on"), 1, "5");
        let out = membership_detail(
            "edge-1",
            &req,
            vec![edge_device(&d, &EdgeVersions::new())],
            1,
        );
        assert_eq!(out.msg.parent_id(), Some(req.id()));
        assert_eq!(*out.msg.operation(), Operation::Response);
        assert_eq!(out.msg.resource(), "node/edge-1/membership/detail");
        assert_eq!(out.msg.content["devices"][0]["id"], "default/dev1");
    }
}
