//! Device attributes, as pure functions: which Device fields become
//! DeviceTwin attributes, and the `device/<id>/updated` message that
//! changes them at the edge (reference §5: the edge's `device_attr` table).
//!
//! The mapping: every label of the Device (`metadata.labels`) is an
//! attribute of the same name, its value the label's value, type `string`,
//! optional. Labels are what KubeEdge's device instances carry as static
//! facts (`description`, `manufacturer`, `model`); the `description` label
//! is also the device's description, as KubeEdge's DeviceController sets
//! it. Spec fields stay out: desired values are twins, and the protocol,
//! visitors and model reach the edge as the Device and DeviceModel objects.
//!
//! Attributes go down in the membership (`added_devices` and the detail
//! answer the edge asks for after each reconnect, from which the edge
//! also drops attributes no longer listed) and, when the labels change,
//! in `device/<id>/updated`: every current attribute plus `null` for every
//! name sent before and gone now. That message needs an ack (KubeEdge's
//! rule: only `membership` and `twin/cloud_updated` device messages go
//! without), so it carries the Device's resourceVersion, waits in
//! CloudHub's queue while the link is down, and a newer one replaces an
//! older one there — which is why it is whole rather than a difference.
//! The edge's description changes with the next membership detail.

use std::collections::BTreeMap;

use crds::Device;
use kube::ResourceExt;
use proto::resource::DEVICE_UPDATED;
use proto::twin::{AttributeUpdate, BaseMessage, MsgAttr, TypeMetadata};
use proto::Operation;

use super::downstream::{to_value, twin_msg, Out, Seen};

/// The label that is also the device's description.
pub(crate) const DESCRIPTION_LABEL: &str = "description";

/// The attribute type sent for labels.
const STRING: &str = "string";

/// The device's attributes: its labels.
pub(crate) fn of(device: &Device) -> BTreeMap<String, MsgAttr> {
    device
        .labels()
        .iter()
        .map(|(name, value)| {
            let attr = MsgAttr {
                value: value.clone(),
                optional: Some(true),
                metadata: Some(TypeMetadata {
                    kind: STRING.into(),
                }),
            };
            (name.clone(), attr)
        })
        .collect()
}

/// The device's description: its `description` label, else empty.
pub(crate) fn description(device: &Device) -> String {
    device
        .labels()
        .get(DESCRIPTION_LABEL)
        .cloned()
        .unwrap_or_default()
}

/// `node/<node>/device/<id>/updated` setting `now`'s attributes and
/// removing every name sent before and absent now.
pub(crate) fn update(node: &str, id: &str, now: &Seen, base: BaseMessage) -> Out {
    let mut attributes: BTreeMap<String, Option<MsgAttr>> = now
        .attribute_names
        .iter()
        .map(|name| (name.clone(), None))
        .collect();
    for (name, attr) in &now.attributes {
        attributes.insert(name.clone(), Some(attr.clone()));
    }
    let content = AttributeUpdate { base, attributes };
    Out {
        kind: "attributes",
        msg: twin_msg(
            node,
            &format!("device/{id}/{DEVICE_UPDATED}"),
            Operation::Update,
            to_value(&content),
        )
        .with_resource_version(now.resource_version.clone()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;
    use crate::devicecontroller::downstream::{plan, seen, EdgeVersions};
    use serde_json::json;

    fn dev(labels: &[(&str, &str)], rv: &str) -> Device {
        let mut d = Device::new(
            "dev1",
            serde_json::from_value(json!({"nodeName": "edge-1"})).unwrap(),
        );
        d.metadata.namespace = Some("default".into());
        d.metadata.resource_version = Some(rv.into());
        d.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        d
    }

    #[test]
    fn labels_are_attributes() {
        let d = dev(&[("manufacturer", "acme"), ("description", "a lamp")], "1");
        let attrs = of(&d);
        assert_eq!(
            serde_json::to_value(&attrs["manufacturer"]).unwrap(),
            json!({"value": "acme", "optional": true, "metadata": {"type": "string"}})
        );
        assert_eq!(description(&d), "a lamp");
        assert_eq!(description(&dev(&[], "1")), "");
    }

    #[test]
    fn label_changes_are_whole_updates_with_removals() {
        let first = dev(&[("manufacturer", "acme"), ("model", "x1")], "1");
        let s1 = seen(None, &first);
        let second = dev(&[("manufacturer", "acme"), ("colour", "red")], "2");
        let s2 = seen(Some(&s1), &second);
        let out = plan(Some(&s1), &s2, &second, false, &EdgeVersions::new(), 3);
        let kinds: Vec<_> = out.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, ["attributes", "device"]);
        let m = &out[0].msg;
        assert_eq!(m.resource(), "node/edge-1/device/default/dev1/updated");
        assert_eq!(
            (m.route.group.as_str(), m.route.source.as_str()),
            ("twin", "devicecontroller")
        );
        assert_eq!(m.header.resource_version, "2");
        assert!(proto::needs_ack(m), "it needs an ack, so it carries the RV");
        assert_eq!(
            m.content["attributes"],
            json!({"colour": {"value": "red", "optional": true, "metadata": {"type": "string"}},
                   "manufacturer": {"value": "acme", "optional": true, "metadata": {"type": "string"}},
                   "model": null})
        );
        // A third change still removes `model`: the second may never have
        // reached the edge.
        let third = dev(&[], "3");
        let s3 = seen(Some(&s2), &third);
        let out = plan(Some(&s2), &s3, &third, false, &EdgeVersions::new(), 4);
        assert_eq!(
            out[0].msg.content["attributes"],
            json!({"colour": null, "manufacturer": null, "model": null})
        );
        // The edge reads it as its AttributeUpdate.
        let update: AttributeUpdate = serde_json::from_value(out[0].msg.content.clone()).unwrap();
        assert!(update.attributes.values().all(Option::is_none));
        // Unchanged labels: nothing.
        let again = seen(Some(&s3), &dev(&[], "4"));
        let out = plan(
            Some(&s3),
            &again,
            &dev(&[], "4"),
            false,
            &EdgeVersions::new(),
            5,
        );
        assert_eq!(out.iter().map(|o| o.kind).collect::<Vec<_>>(), ["device"]);
    }
}
