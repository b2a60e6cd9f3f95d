//! The `route.operation` of a message.
//!
//! KubeEdge spells operations as lower-case strings. [`Operation`] names the
//! ones Apiary acts on and keeps any other string it receives in
//! [`Operation::Other`], so a message with an operation this version does not
//! know still round-trips unchanged.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! operations {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, )*) => {
        /// A message operation, as KubeEdge spells it on the wire.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Operation {
            $( $(#[$doc])* $variant, )*
            /// Any operation this version does not name; kept verbatim.
            Other(String),
        }

        impl Operation {
            /// Every named operation, in declaration order.
            pub const KNOWN: &'static [Operation] = &[$( Operation::$variant, )*];

            /// The wire spelling of this operation.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Operation::$variant => $text, )*
                    Operation::Other(s) => s.as_str(),
                }
            }

            /// Parses a wire spelling; unknown strings become [`Operation::Other`].
            pub fn parse(s: &str) -> Self {
                match s {
                    $( $text => Operation::$variant, )*
                    other => Operation::Other(other.to_owned()),
                }
            }
        }
    };
}

operations! {
    /// Create an object.
    Insert => "insert",
    /// Replace an object.
    Update => "update",
    /// Patch an object.
    Patch => "patch",
    /// Delete an object.
    Delete => "delete",
    /// Read an object or a list.
    Query => "query",
    /// A reply to an earlier message (`parent_msg_id` names it).
    Response => "response",
    /// An error reply; the content is a string.
    Error => "error",
    /// Edge → cloud upload (router, servicebus, eventbus).
    Upload => "upload",
    /// The edge heartbeat.
    Keepalive => "keepalive",
    /// Connection state broadcast (`node/connection`).
    Connect => "connect",
    /// EventBus: subscribe to a topic.
    Subscribe => "subscribe",
    /// EventBus: unsubscribe from a topic.
    Unsubscribe => "unsubscribe",
    /// EventBus: publish to `content.message.topic`.
    Message => "message",
    /// EventBus: publish to the resource topic.
    Publish => "publish",
    /// Fetch the result of an earlier request.
    GetResult => "get_result",
    /// ServiceBus: allow a target URL.
    Start => "start",
    /// ServiceBus: disallow a target URL.
    Stop => "stop",
    /// Task manager: release an upgrade hold.
    UnholdUpgrade => "unhold-upgrade",
    /// DeviceTwin / CloudHub: get.
    Get => "get",
    /// DeviceTwin / CloudHub: list.
    List => "list",
    /// Membership detail.
    Detail => "detail",
    /// Twin delta.
    Delta => "delta",
    /// Twin document.
    Document => "document",
    /// Twin updated.
    Updated => "updated",
    /// Object deleted (twin).
    Deleted => "deleted",
    /// A node connected (cloud internal).
    Connected => "connected",
    /// A node disconnected (cloud internal).
    Disconnected => "disconnected",
    /// MetaServer application reply.
    ApplicationResponse => "applicationResponse",
}

impl Default for Operation {
    fn default() -> Self {
        Operation::Other(String::new())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Operation {
    fn from(s: &str) -> Self {
        Operation::parse(s)
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Operation::parse(&s))
    }
}

impl Operation {
    /// True when no operation was set (an empty string on the wire).
    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_operations_round_trip_through_their_spelling() {
        for op in Operation::KNOWN {
            assert_eq!(&Operation::parse(op.as_str()), op);
        }
    }

    #[test]
    fn unknown_operation_is_kept_verbatim() {
        let op: Operation = serde_json::from_str("\"frobnicate\"").unwrap();
        assert_eq!(op, Operation::Other("frobnicate".into()));
        assert_eq!(serde_json::to_string(&op).unwrap(), "\"frobnicate\"");
    }
}
