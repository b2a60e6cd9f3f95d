//! The MQTT topics DeviceTwin answers and publishes on (reference §4, §5),
//! in the v1.17+ form where a device is `<namespace>/<name>`.

/// Prefix of every device topic.
pub const DEVICE_PREFIX: &str = "$hw/events/device/";
/// Prefix of every node topic.
pub const NODE_PREFIX: &str = "$hw/events/node/";

/// A request a device or mapper published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `$hw/events/device/<ns>/<name>/twin/update`.
    TwinUpdate(String),
    /// `$hw/events/device/<ns>/<name>/twin/get`.
    TwinGet(String),
    /// `$hw/events/device/<ns>/<name>/state/update`.
    StateUpdate(String),
    /// `$hw/events/node/<node>/membership/get`.
    MembershipGet(String),
}

/// Reads a request topic; `None` for topics DeviceTwin does not answer
/// (including the result topics it publishes itself).
pub fn parse(topic: &str) -> Option<Request> {
    if let Some(rest) = topic.strip_prefix(DEVICE_PREFIX) {
        let parts: Vec<&str> = rest.split('/').collect();
        let [ns, name, area, verb] = parts.as_slice() else {
            return None;
        };
        if ns.is_empty() || name.is_empty() {
            return None;
        }
        let id = format!("{ns}/{name}");
        return match (*area, *verb) {
            ("twin", "update") => Some(Request::TwinUpdate(id)),
            ("twin", "get") => Some(Request::TwinGet(id)),
            ("state", "update") => Some(Request::StateUpdate(id)),
            _ => None,
        };
    }
    let rest = topic.strip_prefix(NODE_PREFIX)?;
    let (node, what) = rest.split_once('/')?;
    (!node.is_empty() && what == "membership/get").then(|| Request::MembershipGet(node.to_owned()))
}

/// `$hw/events/device/<id>/twin/update/result`.
pub fn update_result(id: &str) -> String {
    format!("{DEVICE_PREFIX}{id}/twin/update/result")
}

/// `$hw/events/device/<id>/twin/update/delta`.
pub fn update_delta(id: &str) -> String {
    format!("{DEVICE_PREFIX}{id}/twin/update/delta")
}

/// `$hw/events/device/<id>/twin/update/document`.
pub fn update_document(id: &str) -> String {
    format!("{DEVICE_PREFIX}{id}/twin/update/document")
}

/// `$hw/events/device/<id>/twin/get/result`.
pub fn get_result(id: &str) -> String {
    format!("{DEVICE_PREFIX}{id}/twin/get/result")
}

/// `$hw/events/device/<id>/state/update/result`.
pub fn state_result(id: &str) -> String {
    format!("{DEVICE_PREFIX}{id}/state/update/result")
}

/// `$hw/events/node/<node>/membership/updated`.
pub fn membership_updated(node: &str) -> String {
    format!("{NODE_PREFIX}{node}/membership/updated")
}

/// `$hw/events/node/<node>/membership/get/result`.
pub fn membership_get_result(node: &str) -> String {
    format!("{NODE_PREFIX}{node}/membership/get/result")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_recognised_and_results_are_not() {
        assert_eq!(
            parse("$hw/events/device/default/dev1/twin/update"),
            Some(Request::TwinUpdate("default/dev1".into()))
        );
        assert_eq!(
            parse("$hw/events/device/ns/d/twin/get"),
            Some(Request::TwinGet("ns/d".into()))
        );
        assert_eq!(
            parse("$hw/events/device/ns/d/state/update"),
            Some(Request::StateUpdate("ns/d".into()))
        );
        assert_eq!(
            parse("$hw/events/node/edge-1/membership/get"),
            Some(Request::MembershipGet("edge-1".into()))
        );
        for ours in [
            update_result("ns/d"),
            update_delta("ns/d"),
            update_document("ns/d"),
            get_result("ns/d"),
            state_result("ns/d"),
            membership_updated("n"),
            membership_get_result("n"),
            "$hw/events/device/d/twin/update".to_owned(),
            "$hw/events/device//d/twin/update".to_owned(),
            "other/topic".to_owned(),
        ] {
            assert_eq!(parse(&ours), None, "{ours}");
        }
    }
}
