//! MQTT topics: the ones EventBus always subscribes to, which of them go to
//! DeviceTwin, topic-filter matching, and the checks a topic or filter must
//! pass before it is handed to the MQTT client (reference §4). Pure.
//!
//! The checks are stricter than rumqttc's: a topic a broker refuses makes
//! it close the connection, and with a persistent session the client would
//! send the same PUBLISH again after every reconnect. So a topic with a
//! wildcard, a NUL or another control character, or over 65535 bytes
//! never reaches the client.

/// Device twin operations: `$hw/events/device/<ns>/<name>/twin/<op>`.
pub(crate) const DEVICE_TWIN: &str = "$hw/events/device/+/+/twin/+";
/// Device state reports: `$hw/events/device/<ns>/<name>/state/update`.
pub(crate) const DEVICE_STATE: &str = "$hw/events/device/+/+/state/update";
/// Membership queries: `$hw/events/node/<node>/membership/get`.
pub(crate) const NODE_MEMBERSHIP_GET: &str = "$hw/events/node/+/membership/get";
/// Device uploads for the cloud.
pub(crate) const UPLOAD: &str = "$hw/events/upload/#";
/// Upload records for the cloud.
pub(crate) const UPLOAD_RECORDS: &str = "SYS/dis/upload_records";
/// Application topics for the cloud (`<anything>/user/...`).
pub(crate) const USER: &str = "+/user/#";

/// What EventBus subscribes to on every connection, besides the topics the
/// cloud asked for.
pub(crate) const DEFAULT_SUBSCRIPTIONS: [&str; 6] = [
    UPLOAD,
    DEVICE_STATE,
    DEVICE_TWIN,
    NODE_MEMBERSHIP_GET,
    UPLOAD_RECORDS,
    USER,
];

/// Topics whose messages go to DeviceTwin. DeviceTwin's own results
/// (`.../twin/update/result`, `.../state/update/result`,
/// `.../membership/get/result`, ...) have one level more than these match,
/// so what edgecore publishes never comes back to it.
const TWIN_FILTERS: [&str; 3] = [DEVICE_TWIN, DEVICE_STATE, NODE_MEMBERSHIP_GET];

/// The longest topic MQTT can encode.
const MAX_TOPIC_BYTES: usize = 65_535;

/// Where a message received from the broker goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The `twin` group.
    Twin,
    /// The cloud, through EdgeHub.
    Cloud,
}

impl Route {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Route::Twin => "twin",
            Route::Cloud => "cloud",
        }
    }
}

/// Where a message on `topic` goes.
pub(crate) fn route(topic: &str) -> Route {
    if TWIN_FILTERS.iter().any(|f| matches(f, topic)) {
        Route::Twin
    } else {
        Route::Cloud
    }
}

/// The topic DeviceTwin's auth info answer is published on.
pub(crate) fn auth_info_result(node: &str) -> String {
    format!("$hw/events/node/{node}/authInfo/get/result")
}

/// Whether `topic` matches the MQTT topic filter `filter` (`+` one level,
/// `#` the rest; a wildcard first level does not match a `$` topic).
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for want in filter.split('/') {
        match (want, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (want, Some(level)) if want == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// Why a topic or filter is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TopicError {
    /// The empty string.
    #[error("the topic is empty")]
    Empty,
    /// Over 65535 bytes.
    #[error("the topic is {0} bytes long, over MQTT's 65535")]
    TooLong(usize),
    /// NUL or another control character.
    #[error("the topic contains a control character")]
    ControlCharacter,
    /// `+` or `#` in a topic to publish on.
    #[error("a topic to publish on cannot contain + or #")]
    Wildcard,
    /// `#` not alone as the last level, or `+` not alone in its level.
    #[error("misplaced wildcard: + and # must fill a level, # only the last")]
    MisplacedWildcard,
}

fn check_text(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong(topic.len()));
    }
    if topic.chars().any(char::is_control) {
        return Err(TopicError::ControlCharacter);
    }
    Ok(())
}

/// Checks a topic to publish on.
pub(crate) fn check_topic(topic: &str) -> Result<(), TopicError> {
    check_text(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::Wildcard);
    }
    Ok(())
}

/// Checks a topic filter to subscribe to.
pub(crate) fn check_filter(filter: &str) -> Result<(), TopicError> {
    check_text(filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    for (i, level) in levels.iter().enumerate() {
        let misplaced = match *level {
            "#" => i != last,
            "+" => false,
            other => other.contains(['+', '#']),
        };
        if misplaced {
            return Err(TopicError::MisplacedWildcard);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_and_node_topics_go_to_the_twin() {
        for topic in [
            "$hw/events/device/default/dev1/twin/update",
            "$hw/events/device/default/dev1/twin/get",
            "$hw/events/device/default/dev1/twin/cloud_updated",
            "$hw/events/device/default/dev1/state/update",
            "$hw/events/node/edge-1/membership/get",
        ] {
            assert_eq!(route(topic), Route::Twin, "{topic}");
        }
    }

    #[test]
    fn what_devicetwin_publishes_does_not_come_back_to_it() {
        for topic in [
            "$hw/events/device/default/dev1/twin/update/result",
            "$hw/events/device/default/dev1/twin/update/delta",
            "$hw/events/device/default/dev1/twin/update/document",
            "$hw/events/device/default/dev1/twin/get/result",
            "$hw/events/device/default/dev1/state/update/result",
            "$hw/events/node/edge-1/membership/updated",
            "$hw/events/node/edge-1/membership/get/result",
            "$hw/events/node/edge-1/authInfo/get/result",
        ] {
            assert_eq!(route(topic), Route::Cloud, "{topic}");
            // Nor does EventBus subscribe to them by default.
            assert!(
                !DEFAULT_SUBSCRIPTIONS.iter().any(|f| matches(f, topic)),
                "{topic}"
            );
        }
        // v1.16's single-id device topics are not twin topics any more.
        assert_eq!(route("$hw/events/device/dev1/twin/update"), Route::Cloud);
    }

    #[test]
    fn everything_else_goes_to_the_cloud() {
        for topic in [
            "$hw/events/upload/x",
            "SYS/dis/upload_records",
            "foo/user/bar",
            "a/b",
        ] {
            assert_eq!(route(topic), Route::Cloud, "{topic}");
        }
    }

    #[test]
    fn filter_matching_follows_mqtt() {
        assert!(matches("+/user/#", "foo/user/bar"));
        assert!(matches("+/user/#", "foo/user"));
        assert!(matches("+/user/#", "/user/x"));
        assert!(!matches("+/user/#", "$foo/user/bar"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("$hw/events/upload/#", "$hw/events/upload/a/b/c"));
        assert!(matches("a/+/c", "a//c"));
        assert!(!matches("a/+/c", "a/b/c/d"));
        assert!(!matches("a/+/c", "a/b"));
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/"));
    }

    #[test]
    fn topics_and_filters_are_checked() {
        assert_eq!(check_topic("a/b"), Ok(()));
        assert_eq!(check_topic(""), Err(TopicError::Empty));
        assert_eq!(check_topic("a/+"), Err(TopicError::Wildcard));
        assert_eq!(check_topic("a/#"), Err(TopicError::Wildcard));
        assert_eq!(check_topic("a\0b"), Err(TopicError::ControlCharacter));
        assert_eq!(check_topic("a\u{85}b"), Err(TopicError::ControlCharacter));
        let long = "a".repeat(65_536);
        assert_eq!(check_topic(&long), Err(TopicError::TooLong(65_536)));
        for filter in DEFAULT_SUBSCRIPTIONS {
            assert_eq!(check_filter(filter), Ok(()), "{filter}");
        }
        assert_eq!(check_filter("#"), Ok(()));
        assert_eq!(check_filter("a/#/b"), Err(TopicError::MisplacedWildcard));
        assert_eq!(check_filter("a/b#"), Err(TopicError::MisplacedWildcard));
        assert_eq!(check_filter("a+/b"), Err(TopicError::MisplacedWildcard));
        assert_eq!(check_filter(""), Err(TopicError::Empty));
    }

    #[test]
    fn auth_info_topic() {
        assert_eq!(
            auth_info_result("edge-1"),
            "$hw/events/node/edge-1/authInfo/get/result"
        );
    }
}
