//! The KubeEdge message: `{header, route, content}`.
//!
//! Field names and omission rules follow KubeEdge's JSON exactly: `msg_id`
//! and `timestamp` are always written, every other header field and every
//! route field is left out when empty, and `content` is any JSON value. A
//! message with everything empty (KubeEdge's edge sends one at shutdown) is
//! accepted.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::operation::Operation;

/// Message metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Header {
    /// Unique id of this message (a UUID when Apiary makes it).
    pub msg_id: String,
    /// For a reply: the `msg_id` of the message it answers.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parent_msg_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The resourceVersion of the object carried, if any.
    #[serde(rename = "resourceversion", skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Set on requests that wait for a reply (beehive `request`).
    #[serde(skip_serializing_if = "is_false")]
    pub sync: bool,
    /// Message type (KubeEdge uses it for task messages); usually empty.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub message_type: String,
}

/// Where a message comes from and where it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Route {
    /// The sending module (e.g. `edgecontroller`, `websocket`, `twin`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The receiving module, where one is named.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub destination: String,
    /// The receiving group (e.g. `resource`, `twin`, `user`, `meta`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// What to do.
    #[serde(skip_serializing_if = "Operation::is_empty")]
    pub operation: Operation,
    /// What it is done to: a resource string or an MQTT topic.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
}

/// A message as KubeEdge's beehive and viaduct carry it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// Metadata.
    pub header: Header,
    /// Routing.
    pub route: Route,
    /// The payload: any JSON value (`null` when absent).
    pub content: Value,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Milliseconds since the Unix epoch, as KubeEdge stamps messages.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A fresh message id (a random UUID, as KubeEdge uses).
pub fn new_msg_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Message {
    /// A new message with a fresh id and the current time.
    pub fn new(
        source: impl Into<String>,
        group: impl Into<String>,
        operation: Operation,
        resource: impl Into<String>,
    ) -> Self {
        Message {
            header: Header {
                msg_id: new_msg_id(),
                timestamp: now_millis(),
                ..Header::default()
            },
            route: Route {
                source: source.into(),
                group: group.into(),
                operation,
                resource: resource.into(),
                ..Route::default()
            },
            content: Value::Null,
        }
    }

    /// Sets the content.
    pub fn with_content(mut self, content: impl Into<Value>) -> Self {
        self.content = content.into();
        self
    }

    /// Sets the header's resourceVersion.
    pub fn with_resource_version(mut self, rv: impl Into<String>) -> Self {
        self.header.resource_version = rv.into();
        self
    }

    /// Sets the route's destination module.
    pub fn with_destination(mut self, destination: impl Into<String>) -> Self {
        self.route.destination = destination.into();
        self
    }

    /// This message's id.
    pub fn id(&self) -> &str {
        &self.header.msg_id
    }

    /// The id of the message this one answers, if it is a reply.
    pub fn parent_id(&self) -> Option<&str> {
        Some(self.header.parent_msg_id.as_str()).filter(|s| !s.is_empty())
    }

    /// The operation.
    pub fn operation(&self) -> &Operation {
        &self.route.operation
    }

    /// The resource string.
    pub fn resource(&self) -> &str {
        &self.route.resource
    }

    /// A reply as KubeEdge builds one: same source, group and resource, op
    /// `response`, `parent_msg_id` = this message's id, a fresh id and time.
    pub fn reply(&self, content: impl Into<Value>) -> Message {
        self.reply_with(Operation::Response, content.into())
    }

    /// An error reply: op `error` with the reason as a string content.
    pub fn error_reply(&self, reason: impl Into<String>) -> Message {
        self.reply_with(Operation::Error, Value::String(reason.into()))
    }

    fn reply_with(&self, operation: Operation, content: Value) -> Message {
        Message {
            header: Header {
                msg_id: new_msg_id(),
                parent_msg_id: self.header.msg_id.clone(),
                timestamp: now_millis(),
                resource_version: self.header.resource_version.clone(),
                ..Header::default()
            },
            route: Route {
                source: self.route.source.clone(),
                group: self.route.group.clone(),
                operation,
                resource: self.route.resource.clone(),
                destination: String::new(),
            },
            content,
        }
    }

    /// The content as bytes, the way KubeEdge readers see it: a string is
    /// its own bytes, `null` is empty, anything else is its JSON text.
    pub fn content_bytes(&self) -> Vec<u8> {
        match &self.content {
            Value::Null => Vec::new(),
            Value::String(s) => s.as_bytes().to_vec(),
            other => serde_json::to_vec(other).unwrap_or_default(),
        }
    }

    /// The content as a JSON value, decoding a string content that holds
    /// JSON text (KubeEdge sends some payloads, e.g. membership detail and
    /// node patches, as a JSON string). Other strings are returned as is.
    pub fn content_json(&self) -> Value {
        self.content_view().into_owned()
    }

    /// [`content_json`](Self::content_json) without copying a content that
    /// is already JSON: for readers that only look into it.
    pub fn content_view(&self) -> std::borrow::Cow<'_, Value> {
        use std::borrow::Cow;
        match &self.content {
            Value::String(s) => {
                serde_json::from_str(s).map_or(Cow::Borrowed(&self.content), Cow::Owned)
            }
            other => Cow::Borrowed(other),
        }
    }

    /// True for KubeEdge's all-empty message (sent by an edge at shutdown).
    pub fn is_empty(&self) -> bool {
        self.header.msg_id.is_empty() && self.route == Route::default() && self.content.is_null()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_correlates_and_keeps_route() {
        let req = Message::new(
            "edgecontroller",
            "resource",
            Operation::Insert,
            "default/pod/a",
        )
        .with_resource_version("7");
        let resp = req.reply("OK");
        assert_eq!(resp.parent_id(), Some(req.id()));
        assert_ne!(resp.id(), req.id());
        assert_eq!(resp.route.operation, Operation::Response);
        assert_eq!(resp.route.source, "edgecontroller");
        assert_eq!(resp.route.resource, "default/pod/a");
        assert_eq!(resp.content_bytes(), b"OK");
    }

    #[test]
    fn content_bytes_follow_kubeedge() {
        let m = Message::default().with_content(serde_json::json!({"a": 1}));
        assert_eq!(m.content_bytes(), br#"{"a":1}"#);
        assert!(Message::default().content_bytes().is_empty());
    }

    #[test]
    fn string_content_holding_json_is_decoded() {
        let m = Message::default().with_content(r#"{"x":true}"#);
        assert_eq!(m.content_json(), serde_json::json!({"x": true}));
        let m = Message::default().with_content("ping");
        assert_eq!(m.content_json(), Value::String("ping".into()));
        assert!(matches!(m.content_view(), std::borrow::Cow::Borrowed(_)));
        let m = Message::default().with_content(serde_json::json!({"y": 1}));
        assert!(matches!(m.content_view(), std::borrow::Cow::Borrowed(v) if v["y"] == 1));
    }

    #[test]
    fn empty_shutdown_message_is_accepted() {
        let raw = r#"{"header":{"msg_id":"","timestamp":0},"route":{},"content":null}"#;
        let m: Message = serde_json::from_str(raw).unwrap();
        assert!(m.is_empty());
        assert_eq!(serde_json::to_string(&m).unwrap(), raw);
    }
}
