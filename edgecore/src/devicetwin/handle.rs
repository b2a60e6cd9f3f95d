//! What one message does to DeviceTwin's devices, as [`Effects`]: rows to
//! write, MQTT answers to publish once they are committed, messages for the
//! cloud, and the answers to publish instead if the commit fails.
//!
//! [`Twins`] holds every device in memory; its methods change it and say
//! what must follow. Nothing here does I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use proto::modules::{edge, group};
use proto::resource::{MEMBERSHIP, MEMBERSHIP_DETAIL, STATE_UPDATE, TWIN_EDGE_UPDATED};
use proto::{Message, Operation};
use serde::Serialize;
use serde_json::Value;

use super::rules::{self, RuleError, Side, TwinChange};
use super::store::DbOp;
use super::topics::{self, Request};
use proto::twin::{
    AttributeUpdate, BaseMessage, Device, DeviceState, ErrorResult, MembershipDetail,
    MembershipDetailRequest, MembershipUpdate, MsgTwin, StateResult, StateUpdate, TwinDelta,
    TwinDoc, TwinDocument, TwinResult, TwinUpdate, TypeMetadata,
};

/// Start of a device event's resource: `device/<id>/...`.
const DEVICE_RESOURCE: &str = "device/";
/// The cloud's twin update resource suffix: `device/<id>/twin/cloud_updated`.
const CLOUD_UPDATED_SUFFIX: &str = "/twin/cloud_updated";
/// The cloud's attribute update resource suffix: `device/<id>/updated`.
const ATTRS_UPDATED_SUFFIX: &str = "/updated";

/// What a message leads to.
#[derive(Debug, Default)]
pub struct Effects {
    /// Rows to write, in one transaction with the rest of the batch.
    pub ops: Vec<DbOp>,
    /// `(topic, payload)` to publish once committed.
    pub publish: Vec<(String, Value)>,
    /// Messages for the cloud (through EdgeHub) once committed.
    pub upstream: Vec<Message>,
    /// `(topic, payload)` to publish instead if the commit fails.
    pub on_failure: Vec<(String, Value)>,
    /// How it went, for metrics: `ok`, `unchanged`, `invalid`, `not_found`,
    /// `ignored`.
    pub outcome: &'static str,
}

impl Effects {
    fn new(outcome: &'static str) -> Effects {
        Effects {
            outcome,
            ..Effects::default()
        }
    }

    fn publish(&mut self, topic: String, payload: &impl Serialize) {
        self.publish.push((topic, to_value(payload)));
    }

    /// An error answer on `topic`, now and (for a failed commit) instead.
    fn error(topic: String, base: BaseMessage, err: &RuleError) -> Effects {
        let mut fx = Effects::new(match err {
            RuleError::BadRequest(_) => "invalid",
            RuleError::NotFound(_) => "not_found",
        });
        fx.publish(topic, &error_result(base, err.code(), err.to_string()));
        fx
    }

    fn fail_with(&mut self, topic: String, base: &BaseMessage) {
        let payload = error_result(
            base.clone(),
            500,
            "the device store could not be written".into(),
        );
        self.on_failure.push((topic, to_value(&payload)));
    }
}

fn error_result(base: BaseMessage, code: u16, reason: String) -> ErrorResult {
    ErrorResult { base, code, reason }
}

fn to_value(payload: &impl Serialize) -> Value {
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

/// Every device of the node, in memory.
#[derive(Debug)]
pub struct Twins {
    node: String,
    devices: HashMap<String, Device>,
}

impl Twins {
    /// The devices of `node`, as loaded from the tables.
    pub fn new(node: &str, devices: HashMap<String, Device>) -> Twins {
        Twins {
            node: node.to_owned(),
            devices,
        }
    }

    /// Replaces every device (after a failed write, with what is stored).
    pub fn replace(&mut self, devices: HashMap<String, Device>) {
        self.devices = devices;
    }

    /// How many devices there are.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// A message published by a device or mapper on `topic`.
    pub fn on_mqtt(&mut self, topic: &str, payload: &str, now: jiff::Timestamp) -> Effects {
        match topics::parse(topic) {
            Some(Request::TwinUpdate(id)) => self.twin_update(&id, payload, now),
            Some(Request::TwinGet(id)) => self.twin_get(&id, payload, now),
            Some(Request::StateUpdate(id)) => self.state_update(&id, payload, now),
            Some(Request::MembershipGet(node)) => self.membership_get(&node, payload, now),
            None => Effects::new("ignored"),
        }
    }

    fn twin_update(&mut self, id: &str, payload: &str, now: jiff::Timestamp) -> Effects {
        let topic = topics::update_result(id);
        let update = match serde_json::from_str::<TwinUpdate>(payload) {
            Ok(u) => u,
            Err(e) => return Effects::error(topic, base_of(payload, now), &bad_json(&e)),
        };
        let base = answer_base(&update.base, now);
        let Some(device) = self.devices.get_mut(id) else {
            return Effects::error(topic, base, &RuleError::NotFound(id.to_owned()));
        };
        let change = match rules::apply(&mut device.twin, &update.twin, Side::Edge, millis(now)) {
            Ok(c) => c,
            Err(e) => return Effects::error(topic, base, &e),
        };
        let mut fx = Effects::new(if change.is_visible() {
            "ok"
        } else {
            "unchanged"
        });
        let result = TwinResult {
            base: base.clone(),
            twin: update
                .twin
                .keys()
                .filter_map(|k| {
                    device
                        .twin
                        .get(k)
                        .map(|t| (k.clone(), t.without_versions()))
                })
                .collect(),
        };
        fx.publish(topic.clone(), &result);
        fx.fail_with(topic, &base);
        announce(device, &change, &base, &mut fx);
        if change.is_visible() {
            fx.upstream
                .push(edge_updated(id, sync_payload(&change), now));
        }
        fx
    }

    fn twin_get(&self, id: &str, payload: &str, now: jiff::Timestamp) -> Effects {
        let topic = topics::get_result(id);
        let base = answer_base(&base_of(payload, now), now);
        let Some(device) = self.devices.get(id) else {
            return Effects::error(topic, base, &RuleError::NotFound(id.to_owned()));
        };
        let mut fx = Effects::new("ok");
        fx.publish(
            topic,
            &TwinResult {
                base,
                twin: device.twin.clone(),
            },
        );
        fx
    }

    fn state_update(&mut self, id: &str, payload: &str, now: jiff::Timestamp) -> Effects {
        let topic = topics::state_result(id);
        let update = match serde_json::from_str::<StateUpdate>(payload) {
            Ok(u) => u,
            Err(e) => return Effects::error(topic, base_of(payload, now), &bad_json(&e)),
        };
        let base = answer_base(&update.base, now);
        if let Err(e) = rules::check_state(&update.state) {
            return Effects::error(topic, base, &e);
        }
        let Some(device) = self.devices.get_mut(id) else {
            return Effects::error(topic, base, &RuleError::NotFound(id.to_owned()));
        };
        device.state = update.state;
        device.last_online = now.strftime("%Y-%m-%d %H:%M:%S").to_string();
        let mut fx = Effects::new("ok");
        fx.ops.push(DbOp::PutDevice(row_of(device)));
        let result = StateResult {
            base: base.clone(),
            device: DeviceState {
                name: device.name.clone(),
                state: device.state.clone(),
                last_online_time: device.last_online.clone(),
            },
        };
        fx.publish(topic.clone(), &result);
        fx.fail_with(topic, &base);
        let resource = format!("{DEVICE_RESOURCE}{id}/{STATE_UPDATE}");
        fx.upstream
            .push(to_cloud(&resource, Operation::Update, &result));
        fx
    }

    fn membership_get(&self, node: &str, payload: &str, now: jiff::Timestamp) -> Effects {
        if node != self.node {
            return Effects::new("ignored");
        }
        let mut devices: Vec<Device> = self.devices.values().cloned().collect();
        devices.sort_by(|a, b| a.id.cmp(&b.id));
        let mut fx = Effects::new("ok");
        fx.publish(
            topics::membership_get_result(node),
            &MembershipDetail {
                base: answer_base(&base_of(payload, now), now),
                devices,
            },
        );
        fx
    }

    /// A message from the cloud for the twin group.
    pub fn on_cloud(&mut self, msg: &Message, now: jiff::Timestamp) -> Effects {
        let resource = msg.resource();
        if msg.route.operation == Operation::Response && msg.content.as_str() == Some("OK") {
            return Effects::new("ignored");
        }
        let content = msg.content_json();
        if resource == MEMBERSHIP {
            return match serde_json::from_value::<MembershipUpdate>(content) {
                Ok(update) => self.membership_update(update, now),
                Err(e) => invalid_cloud(msg, &e),
            };
        }
        if resource == MEMBERSHIP_DETAIL {
            return match serde_json::from_value::<MembershipDetail>(content) {
                Ok(detail) => self.membership_detail(detail, now),
                Err(e) => invalid_cloud(msg, &e),
            };
        }
        let Some(rest) = resource.strip_prefix(DEVICE_RESOURCE) else {
            return Effects::new("ignored");
        };
        if let Some(id) = rest.strip_suffix(CLOUD_UPDATED_SUFFIX) {
            return match serde_json::from_value::<TwinUpdate>(content) {
                Ok(update) => self.cloud_twin_update(id, update, now),
                Err(e) => invalid_cloud(msg, &e),
            };
        }
        if let Some(id) = rest.strip_suffix(ATTRS_UPDATED_SUFFIX) {
            return match serde_json::from_value::<AttributeUpdate>(content) {
                Ok(update) => self.attribute_update(id, update),
                Err(e) => invalid_cloud(msg, &e),
            };
        }
        Effects::new("ignored")
    }

    fn cloud_twin_update(&mut self, id: &str, update: TwinUpdate, now: jiff::Timestamp) -> Effects {
        let Some(device) = self.devices.get_mut(id) else {
            tracing::warn!(
                device = id,
                "the cloud updated the twins of a device this node does not have"
            );
            return Effects::new("not_found");
        };
        let change = match rules::apply(&mut device.twin, &update.twin, Side::Cloud, millis(now)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(device = id, error = %e, "refusing a twin update from the cloud");
                return Effects::new("invalid");
            }
        };
        let mut fx = Effects::new(if change.is_visible() {
            "ok"
        } else {
            "unchanged"
        });
        let base = answer_base(&update.base, now);
        announce(device, &change, &base, &mut fx);
        send_back_conflicts(id, change, now, &mut fx);
        fx
    }

    fn attribute_update(&mut self, id: &str, update: AttributeUpdate) -> Effects {
        let Some(device) = self.devices.get_mut(id) else {
            return Effects::new("not_found");
        };
        let mut fx = Effects::new("ok");
        for (name, attr) in update.attributes {
            if !rules::valid_key(&name) {
                tracing::warn!(
                    device = id,
                    attribute = name,
                    "skipping an attribute with an invalid name"
                );
                continue;
            }
            match attr {
                Some(a) => {
                    fx.ops
                        .push(DbOp::PutAttr(id.to_owned(), name.clone(), a.clone()));
                    device.attributes.insert(name, a);
                }
                None => {
                    if device.attributes.remove(&name).is_some() {
                        fx.ops.push(DbOp::DeleteAttr(id.to_owned(), name));
                    }
                }
            }
        }
        fx
    }

    fn membership_update(&mut self, update: MembershipUpdate, now: jiff::Timestamp) -> Effects {
        let mut fx = Effects::new("ok");
        let mut announced = MembershipUpdate {
            base: answer_base(&update.base, now),
            ..MembershipUpdate::default()
        };
        for device in update.added_devices {
            if let Some(added) = self.add_device(device, now, &mut fx) {
                announced.added_devices.push(added);
            }
        }
        for device in update.removed_devices {
            let id = device_id(&device);
            if let Some(gone) = self.remove_device(&id, &mut fx) {
                announced.removed_devices.push(gone);
            }
        }
        // The membership is announced before the devices' own deltas.
        let topic = topics::membership_updated(&self.node);
        fx.publish.insert(0, (topic, to_value(&announced)));
        fx
    }

    /// Reconciles with the cloud's full list: adds and updates what it
    /// lists, removes what it does not.
    fn membership_detail(&mut self, detail: MembershipDetail, now: jiff::Timestamp) -> Effects {
        let listed: HashSet<String> = detail.devices.iter().map(device_id).collect();
        let stale: Vec<String> = self
            .devices
            .keys()
            .filter(|id| !listed.contains(*id))
            .cloned()
            .collect();
        let update = MembershipUpdate {
            base: detail.base,
            added_devices: detail.devices,
            removed_devices: stale
                .into_iter()
                .map(|id| Device {
                    id,
                    ..Device::default()
                })
                .collect(),
        };
        tracing::info!(
            listed = listed.len(),
            removed = update.removed_devices.len(),
            "reconciling devices with the cloud's membership detail"
        );
        self.membership_update(update, now)
    }

    /// Adds `incoming` or, if present, takes its description, attributes
    /// and new twins; twins it carries with versions follow the cloud rule.
    fn add_device(
        &mut self,
        incoming: Device,
        now: jiff::Timestamp,
        fx: &mut Effects,
    ) -> Option<Device> {
        let id = device_id(&incoming);
        if id.is_empty() {
            tracing::warn!("skipping a membership device without an id or name");
            return None;
        }
        let name = if incoming.name.is_empty() {
            id.rsplit('/').next().unwrap_or(&id).to_owned()
        } else {
            incoming.name.clone()
        };
        let device = self.devices.entry(id.clone()).or_insert_with(|| Device {
            id: id.clone(),
            ..Device::default()
        });
        device.name = name;
        device.description.clone_from(&incoming.description);
        if !incoming.state.is_empty() && device.state.is_empty() {
            device.state.clone_from(&incoming.state);
        }
        fx.ops.push(DbOp::PutDevice(row_of(device)));
        let gone: Vec<String> = device
            .attributes
            .keys()
            .filter(|k| !incoming.attributes.contains_key(*k))
            .cloned()
            .collect();
        for name in gone {
            device.attributes.remove(&name);
            fx.ops.push(DbOp::DeleteAttr(id.clone(), name));
        }
        for (name, attr) in &incoming.attributes {
            if rules::valid_key(name) && device.attributes.get(name) != Some(attr) {
                device.attributes.insert(name.clone(), attr.clone());
                fx.ops
                    .push(DbOp::PutAttr(id.clone(), name.clone(), attr.clone()));
            }
        }
        let mut fresh = BTreeMap::new();
        let mut versioned = BTreeMap::new();
        for (name, twin) in &incoming.twin {
            if !rules::valid_key(name) {
                tracing::warn!(
                    device = id,
                    twin = name,
                    "skipping a twin with an invalid name"
                );
            } else if !device.twin.contains_key(name) {
                fresh.insert(name.clone(), twin.clone());
            } else if twin.expected_version.is_some() || twin.actual_version.is_some() {
                versioned.insert(name.clone(), Some(twin.clone()));
            }
        }
        let mut change = TwinChange::default();
        for (name, twin) in fresh {
            change.document.insert(
                name.clone(),
                TwinDoc {
                    last: None,
                    current: Some(twin.clone()),
                },
            );
            change.changed.insert(name.clone(), twin.clone());
            device.twin.insert(name, twin);
        }
        if !versioned.is_empty() {
            match rules::apply(&mut device.twin, &versioned, Side::Cloud, millis(now)) {
                Ok(synced) => change.absorb(synced),
                Err(e) => {
                    tracing::warn!(device = id, error = %e, "skipping the versioned twins of a membership device");
                }
            }
        }
        announce(device, &change, &fresh_base(now), fx);
        send_back_conflicts(&id, change, now, fx);
        Some(device.clone())
    }

    fn remove_device(&mut self, id: &str, fx: &mut Effects) -> Option<Device> {
        let gone = self.devices.remove(id)?;
        fx.ops.push(DbOp::DeleteDevice(id.to_owned()));
        Some(gone)
    }

    /// The request for the cloud's full device list, sent after a reconnect.
    pub fn detail_request(&self, now: jiff::Timestamp) -> Message {
        let request = MembershipDetailRequest {
            event_type: "group_membership_event".into(),
            event_id: proto::new_msg_id(),
            operation: "detail".into(),
            group_id: self.node.clone(),
            timestamp: millis(now),
        };
        // KubeEdge sends this content as a JSON string.
        let text = serde_json::to_string(&request).unwrap_or_default();
        Message::new(
            edge::DEVICETWIN,
            group::TWIN,
            Operation::Get,
            MEMBERSHIP_DETAIL,
        )
        .with_content(text)
    }
}

/// Writes a change's rows and publishes its document and delta.
fn announce(device: &Device, change: &TwinChange, base: &BaseMessage, fx: &mut Effects) {
    for (name, twin) in change.to_store() {
        fx.ops
            .push(DbOp::PutTwin(device.id.clone(), name.clone(), twin.clone()));
    }
    for name in &change.deleted {
        fx.ops
            .push(DbOp::DeleteTwin(device.id.clone(), name.clone()));
    }
    if !change.is_visible() {
        return;
    }
    fx.publish(
        topics::update_document(&device.id),
        &TwinDocument {
            base: base.clone(),
            twin: change.document.clone(),
        },
    );
    let delta = rules::delta(&device.twin);
    if !delta.is_empty() {
        fx.publish(
            topics::update_delta(&device.id),
            &TwinDelta {
                base: base.clone(),
                twin: device
                    .twin
                    .iter()
                    .map(|(k, t)| (k.clone(), t.without_versions()))
                    .collect(),
                delta,
            },
        );
    }
}

/// The twins an edge change sends to the cloud: changed ones with their
/// versions, removed ones marked `deleted`.
fn sync_payload(change: &TwinChange) -> BTreeMap<String, MsgTwin> {
    let mut twin = change.changed.clone();
    for name in &change.deleted {
        twin.insert(
            name.clone(),
            MsgTwin {
                metadata: Some(TypeMetadata {
                    kind: "deleted".into(),
                }),
                ..MsgTwin::default()
            },
        );
    }
    twin
}

/// Sends the twins the cloud's update conflicted with back to the cloud,
/// as the edge holds them (the edge wins).
fn send_back_conflicts(id: &str, change: TwinChange, now: jiff::Timestamp, fx: &mut Effects) {
    if !change.conflicts.is_empty() {
        tracing::info!(device = id, twins = ?change.conflicts.keys().collect::<Vec<_>>(), "the edge's twin values are newer than the cloud's; sending them back");
        fx.upstream.push(edge_updated(id, change.conflicts, now));
    }
}

/// `device/<id>/twin/edge_updated` for the cloud.
fn edge_updated(id: &str, twin: BTreeMap<String, MsgTwin>, now: jiff::Timestamp) -> Message {
    let payload = TwinResult {
        base: fresh_base(now),
        twin,
    };
    let resource = format!("{DEVICE_RESOURCE}{id}/{TWIN_EDGE_UPDATED}");
    to_cloud(&resource, Operation::Update, &payload)
}

fn to_cloud(resource: &str, op: Operation, payload: &impl Serialize) -> Message {
    Message::new(edge::DEVICETWIN, group::TWIN, op, resource).with_content(to_value(payload))
}

/// The device's own row (without attributes and twins, which are not
/// cloned).
fn row_of(device: &Device) -> Device {
    Device {
        id: device.id.clone(),
        name: device.name.clone(),
        description: device.description.clone(),
        state: device.state.clone(),
        last_online: device.last_online.clone(),
        ..Device::default()
    }
}

/// A device's id: `id`, else `default/<name>` (or the name if it has a `/`).
fn device_id(device: &Device) -> String {
    if !device.id.is_empty() {
        device.id.clone()
    } else if device.name.contains('/') || device.name.is_empty() {
        device.name.clone()
    } else {
        format!("default/{}", device.name)
    }
}

fn millis(now: jiff::Timestamp) -> i64 {
    now.as_millisecond()
}

/// The caller's event id with the answer's time.
fn answer_base(request: &BaseMessage, now: jiff::Timestamp) -> BaseMessage {
    BaseMessage {
        event_id: request.event_id.clone(),
        timestamp: millis(now),
    }
}

fn fresh_base(now: jiff::Timestamp) -> BaseMessage {
    BaseMessage {
        event_id: proto::new_msg_id(),
        timestamp: millis(now),
    }
}

/// The event id of a payload that may not parse as its full type.
fn base_of(payload: &str, now: jiff::Timestamp) -> BaseMessage {
    serde_json::from_str::<BaseMessage>(payload).unwrap_or(BaseMessage {
        event_id: String::new(),
        timestamp: millis(now),
    })
}

fn bad_json(e: &serde_json::Error) -> RuleError {
    RuleError::BadRequest(format!("the payload is not a valid message: {e}"))
}

fn invalid_cloud(msg: &Message, e: &serde_json::Error) -> Effects {
    tracing::warn!(msg_id = msg.id(), resource = msg.resource(), error = %e, "refusing a malformed twin message from the cloud");
    Effects::new("invalid")
}
