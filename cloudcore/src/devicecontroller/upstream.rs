//! Edge reports → Device status, as pure functions: which device an
//! upstream message is about, and the merge patch of `status` it leads to
//! (None when the status already says it).

use std::collections::{BTreeMap, BTreeSet};

use crds::{DeviceStatus, Twin, TwinProperty};
use proto::resource::{split_node_prefix, STATE_UPDATE, TWIN_EDGE_UPDATED};
use proto::twin::{StateResult, TwinResult};
use serde_json::{json, Value};

use super::error::{DeviceControllerError, Result};

/// What an upstream message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// `device/<ns>/<name>/twin/edge_updated`.
    Twins {
        /// The node.
        node: String,
        /// `<namespace>/<name>`.
        id: String,
    },
    /// `device/<ns>/<name>/state/update`.
    State {
        /// The node.
        node: String,
        /// `<namespace>/<name>`.
        id: String,
    },
    /// `membership/detail`.
    Detail {
        /// The node.
        node: String,
    },
    /// Anything else.
    Other,
}

/// Classifies `node/<n>/...` resources from DeviceTwin.
pub(crate) fn classify(resource: &str) -> Report {
    let Some((node, rest)) = split_node_prefix(resource) else {
        return Report::Other;
    };
    let node = node.to_owned();
    if rest == proto::resource::MEMBERSHIP_DETAIL {
        return Report::Detail { node };
    }
    let Some(rest) = rest.strip_prefix("device/") else {
        return Report::Other;
    };
    let id = |s: &str| (s.split('/').count() == 2).then(|| s.to_owned());
    if let Some(id) = rest
        .strip_suffix(TWIN_EDGE_UPDATED)
        .and_then(|s| s.strip_suffix('/'))
        .and_then(id)
    {
        return Report::Twins { node, id };
    }
    if let Some(id) = rest
        .strip_suffix(STATE_UPDATE)
        .and_then(|s| s.strip_suffix('/'))
        .and_then(id)
    {
        return Report::State { node, id };
    }
    Report::Other
}

fn malformed(resource: &str, reason: impl Into<String>) -> DeviceControllerError {
    DeviceControllerError::Malformed {
        resource: resource.to_owned(),
        reason: reason.into(),
    }
}

/// Reads a report's content as its payload type.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(resource: &str, content: Value) -> Result<T> {
    serde_json::from_value(content).map_err(|e| malformed(resource, e.to_string()))
}

/// The `expected_version.edge` of each twin in an `edge_updated`.
pub(crate) fn edge_versions(report: &TwinResult) -> BTreeMap<String, i64> {
    report
        .twin
        .iter()
        .filter_map(|(name, t)| Some((name.clone(), t.expected_version?.edge)))
        .collect()
}

/// The status twins after `report` (an `edge_updated`): each twin with a
/// reported value replaces the entry of its property.
pub(crate) fn twins_after(status: &DeviceStatus, report: &TwinResult) -> Vec<Twin> {
    let mut out = status.twins.clone();
    for (name, t) in &report.twin {
        let Some(value) = t.actual_value() else {
            continue;
        };
        let mut metadata = BTreeMap::new();
        if let Some(ts) = t.actual.as_ref().and_then(|a| a.metadata) {
            metadata.insert("timestamp".to_owned(), ts.timestamp.to_string());
        }
        if let Some(kind) = t.metadata.as_ref().filter(|m| !m.kind.is_empty()) {
            metadata.insert("type".to_owned(), kind.kind.clone());
        }
        let twin = Twin {
            property_name: name.clone(),
            reported: Some(TwinProperty {
                value: value.to_owned(),
                metadata,
            }),
            observed_desired: t.expected_value().map(|v| TwinProperty {
                value: v.to_owned(),
                metadata: BTreeMap::new(),
            }),
        };
        match out.iter_mut().find(|e| e.property_name == *name) {
            Some(entry) => *entry = twin,
            None => out.push(twin),
        }
    }
    out
}

/// The merge patch for an `edge_updated`, or None when nothing changes.
pub(crate) fn twins_patch(status: &DeviceStatus, report: &TwinResult) -> Option<Value> {
    let twins = twins_after(status, report);
    (twins != status.twins).then(|| json!({"status": {"twins": twins}}))
}

/// The merge patch dropping the status twins of `removed` properties (gone
/// from the spec), or None when the status has none of them.
pub(crate) fn prune_patch(status: &DeviceStatus, removed: &BTreeSet<String>) -> Option<Value> {
    let twins: Vec<&Twin> = status
        .twins
        .iter()
        .filter(|t| !removed.contains(&t.property_name))
        .collect();
    (twins.len() != status.twins.len()).then(|| json!({"status": {"twins": twins}}))
}

/// `YYYY-MM-DD HH:MM:SS` (UTC, as DeviceTwin writes it) as RFC 3339;
/// anything else as it is.
pub(crate) fn rfc3339(time: &str) -> String {
    jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", time)
        .and_then(|t| t.to_zoned(jiff::tz::TimeZone::UTC))
        .map_or_else(|_| time.to_owned(), |t| t.timestamp().to_string())
}

/// The merge patch for a `state/update`, or None when nothing changes.
pub(crate) fn state_patch(
    resource: &str,
    status: &DeviceStatus,
    report: &StateResult,
) -> Result<Option<Value>> {
    let device = &report.device;
    if device.state.is_empty() {
        return Err(malformed(resource, "no device.state"));
    }
    let last = Some(device.last_online_time.as_str())
        .filter(|s| !s.is_empty())
        .map(rfc3339);
    let same_state = status.state.as_deref() == Some(device.state.as_str());
    let same_time = last.is_none() || status.last_online_time == last;
    if same_state && same_time {
        return Ok(None);
    }
    let mut patch = json!({"state": device.state});
    if let Some(last) = last {
        patch["lastOnlineTime"] = json!(last);
    }
    Ok(Some(json!({"status": patch})))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    const R: &str = "node/edge-1/device/default/dev1/twin/edge_updated";

    #[test]
    fn resources_are_classified() {
        let twins = Report::Twins {
            node: "edge-1".into(),
            id: "default/dev1".into(),
        };
        assert_eq!(classify(R), twins);
        assert_eq!(
            classify("node/edge-1/device/default/dev1/state/update"),
            Report::State {
                node: "edge-1".into(),
                id: "default/dev1".into()
            }
        );
        assert_eq!(
            classify("node/edge-1/membership/detail"),
            Report::Detail {
                node: "edge-1".into()
            }
        );
        assert_eq!(
            classify("node/edge-1/device/dev1/twin/edge_updated"),
            Report::Other
        );
        assert_eq!(classify("device/default/dev1/state/update"), Report::Other);
    }

    #[test]
    fn reported_values_become_status_twins() {
        let content = json!({"event_id": "e", "twin": {
            "power": {"actual": {"value": "on", "metadata": {"timestamp": 12}},
                      "expected": {"value": "on"}, "metadata": {"type": "string"},
                      "expected_version": {"cloud": 1, "edge": 2}},
            "temp": {"expected": {"value": "3"}}}});
        let report: TwinResult = parse(R, content).unwrap();
        let patch = twins_patch(&DeviceStatus::default(), &report).unwrap();
        assert_eq!(
            patch,
            json!({"status": {"twins": [{"propertyName": "power",
                "reported": {"value": "on", "metadata": {"timestamp": "12", "type": "string"}},
                "observedDesired": {"value": "on"}}]}})
        );
        assert_eq!(
            edge_versions(&report),
            BTreeMap::from([("power".into(), 2)])
        );
        // The same report again changes nothing.
        let status: DeviceStatus = serde_json::from_value(patch["status"].clone()).unwrap();
        assert_eq!(twins_patch(&status, &report), None);
        // Malformed: an error, not a panic.
        assert!(parse::<TwinResult>(R, json!("x")).is_err());
        assert!(parse::<TwinResult>(R, json!({"event_id": "e"})).is_err());
    }

    #[test]
    fn removed_properties_leave_the_status() {
        let status: DeviceStatus = serde_json::from_value(json!({"twins": [
            {"propertyName": "power", "reported": {"value": "on"}},
            {"propertyName": "temp", "reported": {"value": "3"}}]}))
        .unwrap();
        let patch = prune_patch(&status, &BTreeSet::from(["power".to_owned()])).unwrap();
        assert_eq!(
            patch,
            json!({"status": {"twins": [{"propertyName": "temp", "reported": {"value": "3"}}]}})
        );
        assert_eq!(
            prune_patch(&status, &BTreeSet::from(["x".to_owned()])),
            None
        );
    }

    #[test]
    fn states_become_status_fields() {
        let content = json!({"device": {"name": "dev1", "state": "online",
                                         "lastOnlineTime": "2026-01-02 03:04:05"}});
        let report: StateResult = parse(R, content).unwrap();
        let patch = state_patch(R, &DeviceStatus::default(), &report)
            .unwrap()
            .unwrap();
        assert_eq!(
            patch,
            json!({"status": {"state": "online", "lastOnlineTime": "2026-01-02T03:04:05Z"}})
        );
        let status: DeviceStatus = serde_json::from_value(patch["status"].clone()).unwrap();
        assert_eq!(state_patch(R, &status, &report).unwrap(), None);
        assert!(parse::<StateResult>(R, json!({})).is_err());
        let no_state: StateResult =
            parse(R, json!({"device": {"name": "dev1", "state": ""}})).unwrap();
        assert!(state_patch(R, &status, &no_state).is_err());
        assert_eq!(rfc3339("yesterday"), "yesterday");
    }
}
