//! What EventBus does with one message, either way (reference §4). Pure.
//!
//! **From MQTT** ([`inbound`]): DeviceTwin's topics become
//! `{source bus, group user, op response, resource <topic>}` for the `twin`
//! group, with the payload as a string content; a payload that is not
//! UTF-8 cannot be a twin request and is dropped. KubeEdge base64url-encodes
//! the topic in the resource because its resource strings travel in
//! routing keys; Apiary's bus does not need that, so the topic is plain.
//! Every other topic goes to the cloud as `{..., op upload, resource
//! <topic>}`. Its content is the payload as a string when it is UTF-8, and
//! otherwise the payload in standard base64 (with padding), which is how Go
//! writes a `[]byte` in JSON. KubeEdge converts such a payload to a Go
//! string, so its invalid bytes become U+FFFD; base64 keeps them, but the
//! reader cannot tell it from a text payload that happens to look like
//! base64.
//!
//! **From the bus** ([`plan`]): `publish` publishes the content on the
//! resource topic; `message` publishes the JSON of `content.message` on
//! `content.message.topic`; `subscribe`/`unsubscribe` take the resource
//! and, if the content is a string or a list of strings, those too;
//! `get_result` on `auth_info` publishes the JSON of the content on
//! `$hw/events/node/<node>/authInfo/get/result`. Payloads over the limit,
//! bad topics and other operations are refused.

use base64::Engine;
use proto::modules::{group, source};
use proto::{Message, Operation};
use serde_json::Value;

use super::metrics::reason;
use super::topics::{self, Route};

/// What to do with a message received from a broker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Inbound {
    /// Hand `msg` on to `route`.
    Deliver {
        /// Twin group or EdgeHub.
        route: Route,
        /// The bus message.
        msg: Box<Message>,
    },
    /// Drop it (acked all the same: sending it again would not help).
    Drop {
        /// The metric label.
        reason: &'static str,
        /// For the log.
        detail: String,
    },
}

/// The bus message for a PUBLISH received on `topic`.
pub(crate) fn inbound(topic: &str, payload: &[u8], max_payload: usize) -> Inbound {
    if payload.len() > max_payload {
        return Inbound::Drop {
            reason: reason::OVERSIZED,
            detail: format!(
                "payload of {} bytes, over the limit of {max_payload}",
                payload.len()
            ),
        };
    }
    let route = topics::route(topic);
    let (operation, content) = match (route, std::str::from_utf8(payload)) {
        (Route::Twin, Ok(text)) => (Operation::Response, text.to_owned()),
        (Route::Twin, Err(_)) => {
            return Inbound::Drop {
                reason: reason::NOT_UTF8,
                detail: "a DeviceTwin topic with a payload that is not UTF-8".to_owned(),
            }
        }
        (Route::Cloud, Ok(text)) => (Operation::Upload, text.to_owned()),
        (Route::Cloud, Err(_)) => (
            Operation::Upload,
            base64::engine::general_purpose::STANDARD.encode(payload),
        ),
    };
    let msg = Message::new(source::BUS, group::USER, operation, topic).with_content(content);
    Inbound::Deliver {
        route,
        msg: Box::new(msg),
    }
}

/// What to do with a message from the bus.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plan {
    /// Publish `payload` on `topic`.
    Publish {
        /// Where.
        topic: String,
        /// What.
        payload: Vec<u8>,
    },
    /// Subscribe to these filters and remember them.
    Subscribe(Vec<String>),
    /// Unsubscribe from these filters and forget them.
    Unsubscribe(Vec<String>),
    /// Nothing to do, on purpose.
    Ignore(&'static str),
    /// Cannot be done; the reason goes back to a waiting requester.
    Refuse(String),
}

/// The plan for `msg`, on node `node`, with payloads capped at `max_payload`.
pub(crate) fn plan(msg: &Message, node: &str, max_payload: usize) -> Plan {
    match msg.operation() {
        Operation::Publish => publish(msg.resource(), msg.content_bytes(), max_payload),
        Operation::Message => {
            let content = msg.content_json();
            let Some(message) = content.get("message").filter(|m| m.is_object()) else {
                return Plan::Refuse("a message operation needs content.message".to_owned());
            };
            let Some(topic) = message.get("topic").and_then(Value::as_str) else {
                return Plan::Refuse("content.message.topic is not a string".to_owned());
            };
            publish(topic, message.to_string().into_bytes(), max_payload)
        }
        Operation::GetResult if msg.resource() == "auth_info" => publish(
            &topics::auth_info_result(node),
            msg.content.to_string().into_bytes(),
            max_payload,
        ),
        Operation::GetResult => Plan::Ignore("get_result for something other than auth_info"),
        Operation::Subscribe => match filters(msg) {
            Ok(filters) => Plan::Subscribe(filters),
            Err(reason) => Plan::Refuse(reason),
        },
        Operation::Unsubscribe => match filters(msg) {
            Ok(filters) => match filters
                .iter()
                .find(|f| topics::DEFAULT_SUBSCRIPTIONS.contains(&f.as_str()))
            {
                Some(own) => Plan::Refuse(format!(
                    "{own} is one of EventBus's own subscriptions and stays"
                )),
                None => Plan::Unsubscribe(filters),
            },
            Err(reason) => Plan::Refuse(reason),
        },
        // EdgeHub tells every group when the link comes or goes; devices
        // hear nothing of it on MQTT.
        Operation::Connect => Plan::Ignore("the cloud link's state (node/connection)"),
        other => Plan::Refuse(format!(
            "eventbus does not handle operation {other:?}",
            other = other.as_str()
        )),
    }
}

fn publish(topic: &str, payload: Vec<u8>, max_payload: usize) -> Plan {
    if let Err(err) = topics::check_topic(topic) {
        return Plan::Refuse(format!("cannot publish on {topic:?}: {err}"));
    }
    if payload.len() > max_payload {
        return Plan::Refuse(format!(
            "payload of {} bytes, over the limit of {max_payload}",
            payload.len()
        ));
    }
    Plan::Publish {
        topic: topic.to_owned(),
        payload,
    }
}

/// The filters of a subscribe or unsubscribe: the resource, and the content
/// if it is a string or a list of strings.
fn filters(msg: &Message) -> Result<Vec<String>, String> {
    let mut filters = Vec::new();
    if !msg.resource().is_empty() {
        filters.push(msg.resource().to_owned());
    }
    match msg.content_json() {
        Value::String(s) if !s.is_empty() => filters.push(s),
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => filters.push(s),
                    other => return Err(format!("{other} is not a topic")),
                }
            }
        }
        _ => {}
    }
    if filters.is_empty() {
        return Err("no topic in the resource or content".to_owned());
    }
    for filter in &filters {
        topics::check_filter(filter).map_err(|e| format!("bad topic filter {filter:?}: {e}"))?;
    }
    filters.sort();
    filters.dedup();
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MAX: usize = 1024;

    fn bus(op: Operation, resource: &str, content: Value) -> Message {
        Message::new(source::ROUTER_EVENTBUS, group::USER, op, resource).with_content(content)
    }

    #[test]
    fn twin_topics_become_responses_with_a_string_content() {
        let topic = "$hw/events/device/default/dev1/twin/update";
        let Inbound::Deliver { route, msg } = inbound(topic, br#"{"twin":{}}"#, MAX) else {
            panic!("delivered");
        };
        assert_eq!(route, Route::Twin);
        assert_eq!(msg.route.source, "bus");
        assert_eq!(msg.route.group, "user");
        assert_eq!(msg.route.operation, Operation::Response);
        assert_eq!(msg.route.resource, topic);
        assert_eq!(msg.content, json!(r#"{"twin":{}}"#));
    }

    #[test]
    fn other_topics_are_uploads_and_binary_is_base64() {
        let Inbound::Deliver { route, msg } = inbound("foo/user/bar", b"hello", MAX) else {
            panic!("delivered");
        };
        assert_eq!(route, Route::Cloud);
        assert_eq!(msg.route.operation, Operation::Upload);
        assert_eq!(msg.content, json!("hello"));
        let Inbound::Deliver { msg, .. } = inbound("foo/user/bar", &[0xff, 0x00, 0x01], MAX) else {
            panic!("delivered");
        };
        assert_eq!(msg.content, json!("/wAB"));
    }

    #[test]
    fn bad_payloads_are_dropped() {
        let twin = "$hw/events/device/default/dev1/twin/update";
        assert!(matches!(
            inbound(twin, &[0xff], MAX),
            Inbound::Drop {
                reason: "not_utf8",
                ..
            }
        ));
        assert!(matches!(
            inbound("a/user/b", &[b'x'; MAX + 1], MAX),
            Inbound::Drop {
                reason: "oversized",
                ..
            }
        ));
    }

    #[test]
    fn publish_takes_the_resource_topic_and_content_bytes() {
        let p = plan(&bus(Operation::Publish, "a/b", json!("hi")), "n", MAX);
        assert_eq!(
            p,
            Plan::Publish {
                topic: "a/b".into(),
                payload: b"hi".to_vec()
            }
        );
        let p = plan(&bus(Operation::Publish, "a/b", json!({"k": 1})), "n", MAX);
        assert_eq!(
            p,
            Plan::Publish {
                topic: "a/b".into(),
                payload: br#"{"k":1}"#.to_vec()
            }
        );
        for bad in ["", "a/+", "a/#"] {
            assert!(matches!(
                plan(&bus(Operation::Publish, bad, json!("x")), "n", MAX),
                Plan::Refuse(_)
            ));
        }
        let big = bus(Operation::Publish, "a/b", json!("x".repeat(MAX + 1)));
        assert!(matches!(plan(&big, "n", MAX), Plan::Refuse(_)));
    }

    #[test]
    fn message_publishes_its_message_part() {
        let content = json!({"message": {"topic": "t/1", "data": "d"}});
        let Plan::Publish { topic, payload } =
            plan(&bus(Operation::Message, "", content.clone()), "n", MAX)
        else {
            panic!("a publish");
        };
        assert_eq!(topic, "t/1");
        let sent: Value = serde_json::from_slice(&payload).unwrap_or_default();
        assert_eq!(sent, content["message"]);
        // Also when the content arrives as JSON text.
        let text = bus(Operation::Message, "", json!(content.to_string()));
        assert!(matches!(plan(&text, "n", MAX), Plan::Publish { .. }));
        for bad in [json!({}), json!({"message": {"topic": 1}}), json!("x")] {
            assert!(matches!(
                plan(&bus(Operation::Message, "", bad), "n", MAX),
                Plan::Refuse(_)
            ));
        }
    }

    #[test]
    fn subscriptions() {
        let p = plan(&bus(Operation::Subscribe, "a/+", Value::Null), "n", MAX);
        assert_eq!(p, Plan::Subscribe(vec!["a/+".into()]));
        let p = plan(
            &bus(Operation::Subscribe, "", json!(["x/#", "a/b", "x/#"])),
            "n",
            MAX,
        );
        assert_eq!(p, Plan::Subscribe(vec!["a/b".into(), "x/#".into()]));
        let p = plan(&bus(Operation::Unsubscribe, "a/b", Value::Null), "n", MAX);
        assert_eq!(p, Plan::Unsubscribe(vec!["a/b".into()]));
        for bad in [
            bus(Operation::Subscribe, "", Value::Null),
            bus(Operation::Subscribe, "a/#/b", Value::Null),
            bus(Operation::Subscribe, "", json!([1])),
            bus(Operation::Unsubscribe, "+/user/#", Value::Null),
        ] {
            assert!(matches!(plan(&bad, "n", MAX), Plan::Refuse(_)), "{bad:?}");
        }
    }

    #[test]
    fn auth_info_and_unknown_operations() {
        let p = plan(
            &bus(Operation::GetResult, "auth_info", json!({"a": 1})),
            "edge-1",
            MAX,
        );
        assert_eq!(
            p,
            Plan::Publish {
                topic: "$hw/events/node/edge-1/authInfo/get/result".into(),
                payload: br#"{"a":1}"#.to_vec()
            }
        );
        assert!(matches!(
            plan(&bus(Operation::GetResult, "other", Value::Null), "n", MAX),
            Plan::Ignore(_)
        ));
        assert!(matches!(
            plan(&bus(Operation::Insert, "a/b", Value::Null), "n", MAX),
            Plan::Refuse(_)
        ));
        let link_state = proto::modules::connection_message(proto::modules::group::BUS, true);
        assert!(matches!(plan(&link_state, "n", MAX), Plan::Ignore(_)));
    }
}
