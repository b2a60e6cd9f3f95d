//! Devices → messages for edge nodes, as pure functions: what changed
//! between the last Device seen and the new one, and the membership, twin
//! and object messages that follow (reference §5, §7).
//!
//! Twin versions: `cloud` is the Device's `metadata.generation`; `edge` is
//! the last `expected_version.edge` the edge reported for that twin.

use std::collections::{BTreeMap, HashMap};

use crds::Device;
use kube::ResourceExt;
use proto::modules::{cloud, group};
use proto::resource::{MEMBERSHIP, MEMBERSHIP_DETAIL, TWIN_CLOUD_UPDATED};
use proto::twin::{
    self, BaseMessage, MembershipDetail, MembershipUpdate, MsgTwin, TwinUpdate, TwinValue,
    TwinVersion, TypeMetadata,
};
use proto::{Message, Operation};
use serde_json::Value;

/// `(device id, property)` → the edge's `expected_version.edge`.
pub(crate) type EdgeVersions = HashMap<(String, String), i64>;

/// A desired value and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Desired {
    /// The value.
    pub(crate) value: String,
    /// Its type (`string` when the Device says none).
    pub(crate) kind: String,
}

/// What the controller last sent about one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The node it was bound to.
    pub(crate) node: Option<String>,
    /// Its desired values by property.
    pub(crate) desired: BTreeMap<String, Desired>,
    /// The object's resourceVersion.
    pub(crate) resource_version: String,
}

/// A message for CloudHub and its kind for the metrics.
#[derive(Debug, Clone)]
pub(crate) struct Out {
    /// `membership`, `membership_detail`, `twin` or `device`.
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

/// What was sent about `device`.
pub(crate) fn seen(device: &Device) -> Seen {
    Seen {
        node: node_of(device),
        desired: desired(device),
        resource_version: device.resource_version().unwrap_or_default(),
    }
}

fn generation(device: &Device) -> i64 {
    device.metadata.generation.unwrap_or(0)
}

/// The twin DeviceTwin is sent for desired value `d` of `property`.
fn desired_twin(id: &str, property: &str, d: &Desired, cloud: i64, edge: &EdgeVersions) -> MsgTwin {
    let edge = edge
        .get(&(id.to_owned(), property.to_owned()))
        .copied()
        .unwrap_or(0);
    MsgTwin {
        expected: Some(TwinValue {
            value: Some(d.value.clone()),
            metadata: None,
        }),
        expected_version: Some(TwinVersion { cloud, edge }),
        metadata: Some(TypeMetadata {
            kind: d.kind.clone(),
        }),
        ..MsgTwin::default()
    }
}

/// The device as DeviceTwin takes it in `added_devices` and the membership
/// detail: id, name and a twin per desired value.
pub(crate) fn edge_device(device: &Device, edge: &EdgeVersions) -> twin::Device {
    let id = device_id(device);
    let cloud = generation(device);
    let twin = desired(device)
        .iter()
        .map(|(name, d)| (name.clone(), desired_twin(&id, name, d, cloud, edge)))
        .collect();
    twin::Device {
        name: device.name_any(),
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

fn to_value(payload: &impl serde::Serialize) -> Value {
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

fn twin_msg(node: &str, resource: &str, op: Operation, content: Value) -> Message {
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

/// The Device object itself, for MetaManager.
fn object(node: &str, device: &Device, op: Operation) -> Out {
    let id = device_id(device);
    let (namespace, name) = id.split_once('/').unwrap_or(("default", &id));
    let content = serde_json::to_value(device).unwrap_or(Value::Null);
    Out {
        kind: "device",
        msg: Message::new(
            cloud::DEVICECONTROLLER,
            group::RESOURCE,
            op,
            format!("node/{node}/{namespace}/device/{name}"),
        )
        .with_resource_version(device.resource_version().unwrap_or_default())
        .with_content(content),
    }
}

/// What to send when `device` (Some) appears or changes, or (None, with
/// the last object `gone`) is deleted; `prev` is what was sent before.
pub(crate) fn plan(
    prev: Option<&Seen>,
    device: &Device,
    deleted: bool,
    edge: &EdgeVersions,
    now: i64,
) -> Vec<Out> {
    let id = device_id(device);
    let old_node = prev.and_then(|p| p.node.clone());
    let new_node = if deleted { None } else { node_of(device) };
    let mut out = Vec::new();
    if old_node != new_node {
        if let Some(old) = &old_node {
            let removed = twin::Device {
                id: id.clone(),
                name: device.name_any(),
                ..twin::Device::default()
            };
            out.push(membership(old, Vec::new(), vec![removed], now));
            out.push(object(old, device, Operation::Delete));
        }
        if let Some(new) = &new_node {
            out.push(membership(
                new,
                vec![edge_device(device, edge)],
                Vec::new(),
                now,
            ));
            out.push(object(new, device, Operation::Insert));
        }
        return out;
    }
    let (Some(node), Some(prev)) = (new_node, prev) else {
        return out;
    };
    let now_desired = desired(device);
    let cloud = generation(device);
    let changed: BTreeMap<String, Option<MsgTwin>> = now_desired
        .iter()
        .filter(|(name, d)| prev.desired.get(*name) != Some(*d))
        .map(|(name, d)| (name.clone(), Some(desired_twin(&id, name, d, cloud, edge))))
        .collect();
    if !changed.is_empty() {
        let content = TwinUpdate {
            base: base(now),
            twin: changed,
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
    if device.resource_version().unwrap_or_default() != prev.resource_version {
        out.push(object(&node, device, Operation::Update));
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

    #[test]
    fn a_bound_device_is_announced_with_its_desired_values() {
        let d = dev(Some("edge-1"), Some("on"), 1, "5");
        let out = plan(None, &d, false, &EdgeVersions::new(), 7);
        let kinds: Vec<_> = out.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, ["membership", "device"]);
        let m = &out[0].msg;
        assert_eq!(m.resource(), "node/edge-1/membership");
        assert_eq!(m.route.group, "twin");
        assert_eq!(*m.operation(), Operation::Update);
        let added = &m.content["added_devices"][0];
        assert_eq!(added["id"], "default/dev1");
        assert_eq!(added["name"], "dev1");
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
        assert_eq!(*o.operation(), Operation::Insert);
    }

    #[test]
    fn a_new_desired_value_is_a_cloud_update_with_versions() {
        let before = seen(&dev(Some("edge-1"), Some("on"), 1, "5"));
        let after = dev(Some("edge-1"), Some("off"), 2, "6");
        let edge = EdgeVersions::from([(("default/dev1".into(), "power".into()), 3)]);
        let out = plan(Some(&before), &after, false, &edge, 7);
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
        assert!(plan(Some(&seen(&after)), &after, false, &edge, 8).is_empty());
    }

    #[test]
    fn moving_or_deleting_removes_from_the_old_node() {
        let before = seen(&dev(Some("edge-1"), None, 1, "5"));
        let moved = dev(Some("edge-2"), None, 2, "6");
        let out = plan(Some(&before), &moved, false, &EdgeVersions::new(), 1);
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
        let gone = plan(Some(&seen(&moved)), &moved, true, &EdgeVersions::new(), 1);
        assert_eq!(gone.len(), 2);
        assert_eq!(gone[0].msg.resource(), "node/edge-2/membership");
        // Never bound: nothing.
        let free = dev(None, Some("on"), 1, "1");
        assert!(plan(None, &free, false, &EdgeVersions::new(), 1).is_empty());
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
