//! Node status as the cloud writes it, decided without I/O: a status report
//! from an edge merged into the Node's current status, and the conditions
//! set to `Unknown` when the node's link is gone. Callers pass `now`.
//!
//! A report replaces the status, as KubeEdge's `UpdateStatus` does, except
//! that nothing the report leaves out is lost (addresses, capacity,
//! allocatable, node info, daemon endpoints, images, conditions of other
//! types), `volumesAttached` stays the cloud's (controllers own it), and a
//! condition whose status did not change keeps its transition time.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The condition that says whether a node is Ready.
pub(crate) const READY: &str = "Ready";

/// The status of a condition nobody can vouch for.
pub(crate) const UNKNOWN: &str = "Unknown";

/// The reason of conditions set to `Unknown` (Kubernetes' node lifecycle
/// controller uses the same).
pub(crate) const UNKNOWN_REASON: &str = "NodeStatusUnknown";

/// The message of conditions set to `Unknown`.
pub(crate) const UNKNOWN_MESSAGE: &str =
    "the edge node's link to cloudcore is down; its status is unknown";

/// The conditions a kubelet (edgecore) reports and that become `Unknown`
/// without it. Others (`NetworkUnavailable`, ...) belong to someone else.
const EDGE_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The status to write for a report: `reported` merged into `current`.
/// When the node is not `connected` (its session ended while the report
/// was on its way), its conditions are `Unknown` all the same.
pub(crate) fn merged(
    current: Option<&NodeStatus>,
    mut reported: NodeStatus,
    connected: bool,
    now: Timestamp,
) -> NodeStatus {
    let empty = NodeStatus::default();
    let current = current.unwrap_or(&empty);
    keep_if_missing(&mut reported.addresses, &current.addresses);
    keep_if_missing(&mut reported.capacity, &current.capacity);
    keep_if_missing(&mut reported.allocatable, &current.allocatable);
    keep_if_missing(&mut reported.images, &current.images);
    keep_if_missing(&mut reported.volumes_in_use, &current.volumes_in_use);
    if reported.node_info.is_none() {
        reported.node_info.clone_from(&current.node_info);
    }
    if reported.daemon_endpoints.is_none() {
        reported
            .daemon_endpoints
            .clone_from(&current.daemon_endpoints);
    }
    if reported.config.is_none() {
        reported.config.clone_from(&current.config);
    }
    reported
        .volumes_attached
        .clone_from(&current.volumes_attached);
    let conditions = merge_conditions(
        current.conditions.as_deref().unwrap_or_default(),
        reported.conditions.take().unwrap_or_default(),
        now,
    );
    reported.conditions = Some(conditions);
    if !connected {
        mark_unknown(&mut reported, now);
    }
    reported
}

/// Sets the edge's conditions to `Unknown` (adding `Ready` if missing);
/// false when they already were.
pub(crate) fn mark_unknown(status: &mut NodeStatus, now: Timestamp) -> bool {
    let unknown = |condition: &mut NodeCondition| {
        condition.status = UNKNOWN.to_owned();
        condition.reason = Some(UNKNOWN_REASON.to_owned());
        condition.message = Some(UNKNOWN_MESSAGE.to_owned());
        condition.last_transition_time = Some(Time(now));
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let mut changed = false;
    if !conditions.iter().any(|c| c.type_ == READY) {
        let mut ready = NodeCondition {
            type_: READY.to_owned(),
            ..NodeCondition::default()
        };
        unknown(&mut ready);
        conditions.push(ready);
        changed = true;
    }
    for condition in conditions
        .iter_mut()
        .filter(|c| EDGE_CONDITIONS.contains(&c.type_.as_str()) && c.status != UNKNOWN)
    {
        unknown(condition);
        changed = true;
    }
    changed
}

/// The status of condition `type_`, if the status has it.
pub(crate) fn condition<'a>(status: Option<&'a NodeStatus>, type_: &str) -> Option<&'a str> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The reported conditions, each keeping the current transition time when
/// its status is unchanged and taking `now` when it changed; current
/// conditions of types the report lacks are kept.
fn merge_conditions(
    current: &[NodeCondition],
    reported: Vec<NodeCondition>,
    now: Timestamp,
) -> Vec<NodeCondition> {
    let mut out: Vec<NodeCondition> = current
        .iter()
        .filter(|c| !reported.iter().any(|r| r.type_ == c.type_))
        .cloned()
        .collect();
    for mut condition in reported {
        match current.iter().find(|c| c.type_ == condition.type_) {
            Some(before) if before.status == condition.status => {
                if before.last_transition_time.is_some() {
                    condition
                        .last_transition_time
                        .clone_from(&before.last_transition_time);
                }
            }
            Some(_) => condition.last_transition_time = Some(Time(now)),
            None => {
                if condition.last_transition_time.is_none() {
                    condition.last_transition_time = Some(Time(now));
                }
            }
        }
        out.push(condition);
    }
    out
}

/// `reported` is `current` when the report has none (or an empty one).
fn keep_if_missing<T: Clone + IsEmpty>(reported: &mut Option<T>, current: &Option<T>) {
    if reported.as_ref().is_none_or(IsEmpty::is_empty) {
        reported.clone_from(current);
    }
}

/// Collections a report may leave empty.
trait IsEmpty {
    fn is_empty(&self) -> bool;
}

impl<T> IsEmpty for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl<K, V> IsEmpty for std::collections::BTreeMap<K, V> {
    fn is_empty(&self) -> bool {
        std::collections::BTreeMap::is_empty(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures are known to parse")]

    use serde_json::{json, Value};

    use super::*;

    fn status(v: Value) -> NodeStatus {
        serde_json::from_value(v).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cond<'a>(s: &'a NodeStatus, type_: &str) -> &'a NodeCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    fn current() -> NodeStatus {
        status(json!({
            "addresses": [{"type": "InternalIP", "address": "10.0.0.7"}],
            "capacity": {"cpu": "4"},
            "volumesAttached": [{"name": "v", "devicePath": "/dev/x"}],
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "NetworkUnavailable", "status": "False"}
            ]
        }))
    }

    #[test]
    fn a_report_keeps_what_it_leaves_out() {
        let reported = status(json!({
            "capacity": {},
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-02-02T00:00:00Z"},
                {"type": "MemoryPressure", "status": "False"}
            ]
        }));
        let now = at("2026-03-03T00:00:00Z");
        let out = merged(Some(&current()), reported, true, now);
        assert_eq!(out.addresses.as_ref().unwrap()[0].address, "10.0.0.7");
        assert_eq!(out.capacity.as_ref().unwrap()["cpu"].0, "4");
        assert_eq!(out.volumes_attached.as_ref().unwrap().len(), 1);
        let ready = cond(&out, "Ready");
        assert_eq!(ready.status, "True");
        assert_eq!(
            ready.last_transition_time,
            Some(Time(at("2026-01-01T00:00:00Z"))),
            "unchanged status keeps its transition time"
        );
        assert_eq!(
            cond(&out, "MemoryPressure").last_transition_time,
            Some(Time(now))
        );
        assert_eq!(cond(&out, "NetworkUnavailable").status, "False");
    }

    #[test]
    fn ready_again_after_unknown_is_a_transition() {
        let mut before = current();
        let lost = at("2026-03-03T00:00:00Z");
        assert!(mark_unknown(&mut before, lost));
        assert_eq!(condition(Some(&before), READY), Some("Unknown"));
        let reported = status(json!({"conditions": [{"type": "Ready", "status": "True",
            "lastTransitionTime": "2026-02-02T00:00:00Z"}]}));
        let back = at("2026-03-03T00:01:00Z");
        let out = merged(Some(&before), reported, true, back);
        assert_eq!(cond(&out, "Ready").status, "True");
        assert_eq!(cond(&out, "Ready").last_transition_time, Some(Time(back)));
    }

    #[test]
    fn unknown_marks_only_the_edges_conditions_once() {
        let mut s = current();
        let now = at("2026-03-03T00:00:00Z");
        assert!(mark_unknown(&mut s, now));
        let ready = cond(&s, "Ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some(UNKNOWN_REASON));
        assert_eq!(ready.last_transition_time, Some(Time(now)));
        assert_eq!(cond(&s, "NetworkUnavailable").status, "False");
        assert!(!mark_unknown(&mut s, now), "already unknown");

        let mut bare = NodeStatus::default();
        assert!(mark_unknown(&mut bare, now));
        assert_eq!(condition(Some(&bare), READY), Some("Unknown"));
        assert_eq!(condition(None, READY), None);
    }

    #[test]
    fn a_report_from_a_gone_session_does_not_say_ready() {
        let reported = status(json!({"conditions": [{"type": "Ready", "status": "True"}]}));
        let out = merged(None, reported, false, at("2026-03-03T00:00:00Z"));
        assert_eq!(condition(Some(&out), READY), Some("Unknown"));
    }
}
