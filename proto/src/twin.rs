//! The device twin model and the JSON payloads of reference §5, with
//! KubeEdge's field names: devices with attributes and twins, twin values
//! with their metadata and versions, and the messages on the device topics
//! (update, result, delta, document, get, state, membership) and between
//! DeviceTwin and the cloud's DeviceController (membership, membership
//! detail, `cloud_updated`, `edge_updated`, `state/update`).
//!
//! Absent optional fields are omitted when written, as KubeEdge's Go
//! structs do (`omitempty`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A device as DeviceTwin keeps it (id `<namespace>/<name>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// `<namespace>/<name>` (a bare name from KubeEdge before v1.17).
    #[serde(default)]
    pub id: String,
    /// The device's name.
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// online, offline, ok, unknown or unhealthy; empty before any report.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// When the device last reported a state (`YYYY-MM-DD HH:MM:SS`, UTC).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_online: String,
    /// Attributes by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, MsgAttr>,
    /// Twins by property name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub twin: BTreeMap<String, MsgTwin>,
}

/// A device attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MsgAttr {
    /// The value.
    #[serde(default)]
    pub value: String,
    /// Whether the attribute may be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// Its type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TypeMetadata>,
}

/// One twin: the desired (`expected`) and reported (`actual`) values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MsgTwin {
    /// The desired value, set by the cloud (or an edge app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<TwinValue>,
    /// The reported value, set by the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<TwinValue>,
    /// Whether the twin may be deleted from the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// The value's type; `{"type": "deleted"}` in a request deletes the twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TypeMetadata>,
    /// Versions of the expected value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<TwinVersion>,
    /// Versions of the actual value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_version: Option<TwinVersion>,
}

/// A value and when it was set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TwinValue {
    /// The value; absent clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When it was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ValueMetadata>,
}

/// `{"timestamp": <ms>}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueMetadata {
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: i64,
}

/// `{"type": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeMetadata {
    /// int, float, double, boolean, string, bytes, or `deleted` in requests.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// `{"cloud": n, "edge": n}`: how many times each side changed a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinVersion {
    /// Changes made by the cloud.
    #[serde(default)]
    pub cloud: i64,
    /// Changes made at the edge.
    #[serde(default)]
    pub edge: i64,
}

/// `event_id` and `timestamp`, on every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseMessage {
    /// The caller's id, echoed in the answer.
    #[serde(default)]
    pub event_id: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: i64,
}

/// `.../twin/update` and the cloud's `twin/cloud_updated`: twins to change
/// (`null` or type `deleted` removes one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TwinUpdate {
    /// Ids.
    #[serde(flatten)]
    pub base: BaseMessage,
    /// The twins.
    #[serde(default)]
    pub twin: BTreeMap<String, Option<MsgTwin>>,
}

/// `.../twin/update/result`, `.../twin/get/result` and `edge_updated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TwinResult {
    /// Ids.
    #[serde(flatten)]
    pub base: BaseMessage,
    /// The twins.
    pub twin: BTreeMap<String, MsgTwin>,
}

/// `.../twin/update/delta`: the twins and where desired differs from reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TwinDelta {
    /// Ids.
    #[serde(flatten)]
    pub base: BaseMessage,
    /// Every twin of the device.
    pub twin: BTreeMap<String, MsgTwin>,
    /// Property → desired value, for each twin whose desired value is set and
    /// differs from the reported one.
    pub delta: BTreeMap<String, String>,
}

/// `.../twin/update/document`: each changed twin before and after.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TwinDocument {
    /// Ids.
    #[serde(flatten)]
    pub base: BaseMessage,
    /// Property → states.
    pub twin: BTreeMap<String, TwinDoc>,
}

/// One twin before (`last`, absent if new) and after (`current`, absent if
/// deleted) a change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TwinDoc {
    /// Before.
    pub last: Option<MsgTwin>,
    /// After.
    pub current: Option<MsgTwin>,
}

/// An error answer on a result topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResult {
    /// Ids.
    #[serde(flatten)]
    pub base: BaseMessage,
    /// 400, 404, 409 or 500.
    pub code: u16,
    /// Why.
    pub reason: String,
}

/// `.../state/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateUpdate {
    /// Ids.
    #[serde(flatten)]
    pub base: BaseMessage,
    /// The new state.
    #[serde(default)]
    pub state: String,
}

/// `.../state/update/result` and the cloud's `state/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateResult {
    /// Ids.
    #[serde(flatten)]
    pub base: BaseMessage,
    /// The device's new state.
    pub device: DeviceState,
}

/// The state part of [`StateResult`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceState {
    /// The device's name.
    pub name: String,
    /// The state.
    pub state: String,
    /// When it was reported.
    pub last_online_time: String,
}

/// The cloud's `membership` update and the edge's `membership/updated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MembershipUpdate {
    /// Ids.
    #[serde(flatten)]
    pub base: BaseMessage,
    /// Devices now bound to the node.
    #[serde(default)]
    pub added_devices: Vec<Device>,
    /// Devices no longer bound to it.
    #[serde(default)]
    pub removed_devices: Vec<Device>,
}

/// The cloud's answer to `membership/detail`, and the edge's
/// `$hw/events/node/<node>/membership/get/result`: every device of the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MembershipDetail {
    /// Ids.
    #[serde(flatten)]
    pub base: BaseMessage,
    /// All the node's devices.
    #[serde(default)]
    pub devices: Vec<Device>,
}

/// The edge's request for [`MembershipDetail`] after a reconnect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipDetailRequest {
    /// Always `group_membership_event`.
    pub event_type: String,
    /// A fresh id.
    pub event_id: String,
    /// Always `detail`.
    pub operation: String,
    /// The node's name.
    pub group_id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// The cloud's `device/<id>/updated`: attributes to change (`null` removes
/// one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttributeUpdate {
    /// Ids.
    #[serde(flatten)]
    pub base: BaseMessage,
    /// The attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, Option<MsgAttr>>,
}

impl MsgTwin {
    /// The twin without its versions (as update results show it).
    pub fn without_versions(&self) -> MsgTwin {
        MsgTwin {
            expected_version: None,
            actual_version: None,
            ..self.clone()
        }
    }

    /// The desired value, if set.
    pub fn expected_value(&self) -> Option<&str> {
        self.expected.as_ref().and_then(|v| v.value.as_deref())
    }

    /// The reported value, if set.
    pub fn actual_value(&self) -> Option<&str> {
        self.actual.as_ref().and_then(|v| v.value.as_deref())
    }

    /// Whether a request asks for this twin's removal.
    pub fn is_delete_request(&self) -> bool {
        self.metadata
            .as_ref()
            .is_some_and(|m| m.kind.eq_ignore_ascii_case("deleted"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    #[test]
    fn update_payload_reads_as_mappers_write_it() {
        let text = r#"{"event_id":"e1","timestamp":1700000000000,
            "twin":{"temperature":{"actual":{"value":"21.5"},"metadata":{"type":"float"}},"gone":null}}"#;
        let update: TwinUpdate = serde_json::from_str(text).unwrap();
        assert_eq!(update.base.event_id, "e1");
        let t = update.twin["temperature"].as_ref().unwrap();
        assert_eq!(t.actual_value(), Some("21.5"));
        assert_eq!(t.metadata.as_ref().unwrap().kind, "float");
        assert!(update.twin["gone"].is_none());
    }

    #[test]
    fn absent_fields_are_omitted() {
        let twin = MsgTwin {
            actual: Some(TwinValue {
                value: Some("1".into()),
                metadata: Some(ValueMetadata { timestamp: 5 }),
            }),
            actual_version: Some(TwinVersion { cloud: 0, edge: 1 }),
            ..MsgTwin::default()
        };
        assert_eq!(
            serde_json::to_string(&twin).unwrap(),
            r#"{"actual":{"value":"1","metadata":{"timestamp":5}},"actual_version":{"cloud":0,"edge":1}}"#
        );
        let state = StateResult {
            base: BaseMessage {
                event_id: "x".into(),
                timestamp: 1,
            },
            device: DeviceState {
                name: "dev1".into(),
                state: "online".into(),
                last_online_time: "2026-01-01 00:00:00".into(),
            },
        };
        let v = serde_json::to_value(&state).unwrap();
        assert_eq!(v["device"]["lastOnlineTime"], "2026-01-01 00:00:00");
        assert_eq!(v["event_id"], "x");
    }
}
