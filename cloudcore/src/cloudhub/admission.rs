//! KubeEdge's admission rules for a node's downstream queue, as pure
//! functions: which key a message is stored under, whether a newer message
//! replaces a stored one, and why a message is refused.
//!
//! Ack-needing messages ([`proto::needs_ack`]) are keyed per object: the
//! object's UID (`content.metadata.uid`), else the resource string. Replies
//! on the ack path are keyed by their own id, so they never supersede one
//! another. Messages that need no ack are keyed by `msg_id` and sent once.

use proto::{Message, Operation};
use serde_json::Value;

/// What a queued message is stored under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// An object: its UID, else its resource string.
    Object(String),
    /// One message: its `msg_id`.
    Msg(String),
}

/// Why a message was not queued (the `reason` label of
/// `cloudhub_dropped_messages_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// An ack-needing message without a resourceVersion that is not a delete.
    NoResourceVersion,
    /// Not newer than the message stored for the same object, or the stored
    /// message is a delete.
    Stale,
    /// A stored message was replaced by a newer one for the same object.
    Superseded,
    /// The node's queue was full.
    QueueFull,
    /// A message id already queued, or an upstream id seen recently.
    Duplicate,
    /// The upstream target module is not on the bus.
    NoModule,
    /// A downstream resource without a `node/<id>/` prefix.
    NoNode,
    /// A downstream message over the link's frame cap.
    TooLarge,
    /// An edge ack (`response`, content `"OK"`) for nothing CloudHub
    /// remembers sending.
    UnknownAck,
    /// An upstream message node authorization refused.
    Unauthorized,
}

impl DropReason {
    /// The metric label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DropReason::NoResourceVersion => "no_resource_version",
            DropReason::Stale => "stale",
            DropReason::Superseded => "superseded",
            DropReason::QueueFull => "queue_full",
            DropReason::Duplicate => "duplicate",
            DropReason::NoModule => "no_module",
            DropReason::NoNode => "no_node",
            DropReason::UnknownAck => "unknown_ack",
            DropReason::TooLarge => "too_large",
            DropReason::Unauthorized => "unauthorized",
        }
    }
}

/// The key of an ack-needing message: its own id for replies, else the
/// object's UID, else the resource string.
pub(crate) fn ack_key(msg: &Message) -> Key {
    if *msg.operation() == Operation::Response {
        return Key::Msg(msg.id().to_owned());
    }
    match object_uid(&msg.content) {
        Some(uid) => Key::Object(uid),
        None => Key::Object(msg.resource().to_owned()),
    }
}

/// `metadata.uid` of the object in `content`, also when the object arrives
/// as a JSON string.
fn object_uid(content: &Value) -> Option<String> {
    let uid = |v: &Value| {
        v.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match content {
        Value::String(s) if s.trim_start().starts_with('{') => {
            serde_json::from_str::<Value>(s).ok().as_ref().and_then(uid)
        }
        other => uid(other),
    }
}

/// Whether resourceVersion `new` is newer than `old`: compared as numbers
/// when both are (KubeEdge compares as uint64), else any different string
/// counts as newer.
pub(crate) fn is_newer(new: &str, old: &str) -> bool {
    match (new.parse::<u64>(), old.parse::<u64>()) {
        (Ok(n), Ok(o)) => n > o,
        _ => new != old,
    }
}

/// Why an ack-needing message cannot be queued at all, before looking at
/// what is stored: no resourceVersion on something that is neither a delete
/// nor a reply.
pub(crate) fn refuse_ack_message(msg: &Message) -> Option<DropReason> {
    let op = msg.operation();
    let exempt = *op == Operation::Delete || *op == Operation::Response;
    (!exempt && msg.header.resource_version.is_empty()).then_some(DropReason::NoResourceVersion)
}

/// Whether `new` may replace `stored` (both for the same object): a
/// delete replaces anything but a delete; nothing replaces a stored
/// delete (a second delete of the same object is the same message, and
/// replacing it would send it again at once); otherwise the newest
/// resourceVersion wins.
pub(crate) fn replaces(new: &Message, stored: &Message) -> Result<(), DropReason> {
    if *stored.operation() == Operation::Delete {
        return Err(DropReason::Stale);
    }
    if *new.operation() == Operation::Delete {
        return Ok(());
    }
    if is_newer(
        &new.header.resource_version,
        &stored.header.resource_version,
    ) {
        Ok(())
    } else {
        Err(DropReason::Stale)
    }
}

/// With nothing queued for the object: whether the node already acked
/// this resourceVersion or a newer one (`acked` looks up the node's last
/// acked version by object key). Deletes and replies always pass.
pub(crate) fn already_synced(
    msg: &Message,
    key: &Key,
    acked: &dyn Fn(&str) -> Option<String>,
) -> Result<(), DropReason> {
    let op = msg.operation();
    if *op == Operation::Delete || *op == Operation::Response {
        return Ok(());
    }
    let Key::Object(key) = key else {
        return Ok(());
    };
    match acked(key) {
        Some(synced) if !is_newer(&msg.header.resource_version, &synced) => Err(DropReason::Stale),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn m(op: Operation, rv: &str) -> Message {
        Message::new("edgecontroller", "resource", op, "default/pod/p").with_resource_version(rv)
    }

    #[test]
    fn resource_versions_compare_as_numbers() {
        assert!(is_newer("10", "9"));
        assert!(!is_newer("9", "10"));
        assert!(!is_newer("7", "7"));
        assert!(is_newer("abc", "7"));
        assert!(!is_newer("abc", "abc"));
    }

    #[test]
    fn acked_versions_are_not_sent_again() {
        let acked = |key: &str| (key == "u-1").then(|| "5".to_owned());
        let key = Key::Object("u-1".into());
        let at = |op, rv| m(op, rv).with_content(json!({"metadata": {"uid": "u-1"}}));
        assert_eq!(
            already_synced(&at(Operation::Update, "5"), &key, &acked),
            Err(DropReason::Stale)
        );
        assert_eq!(
            already_synced(&at(Operation::Insert, "4"), &key, &acked),
            Err(DropReason::Stale)
        );
        assert_eq!(
            already_synced(&at(Operation::Update, "6"), &key, &acked),
            Ok(())
        );
        assert_eq!(
            already_synced(&at(Operation::Delete, "5"), &key, &acked),
            Ok(())
        );
        let other = Key::Object("u-2".into());
        assert_eq!(
            already_synced(&at(Operation::Update, "1"), &other, &acked),
            Ok(())
        );
    }

    #[test]
    fn keys_prefer_the_uid() {
        let with_uid = m(Operation::Update, "1").with_content(json!({"metadata": {"uid": "u-1"}}));
        assert_eq!(ack_key(&with_uid), Key::Object("u-1".into()));
        let as_text = m(Operation::Update, "1").with_content(r#"{"metadata":{"uid":"u-2"}}"#);
        assert_eq!(ack_key(&as_text), Key::Object("u-2".into()));
        let bare = m(Operation::Update, "1");
        assert_eq!(ack_key(&bare), Key::Object("default/pod/p".into()));
        let reply = m(Operation::Response, "");
        assert_eq!(ack_key(&reply), Key::Msg(reply.id().to_owned()));
    }

    #[test]
    fn no_resource_version_is_refused_unless_delete_or_reply() {
        assert_eq!(
            refuse_ack_message(&m(Operation::Update, "")),
            Some(DropReason::NoResourceVersion)
        );
        assert_eq!(refuse_ack_message(&m(Operation::Delete, "")), None);
        assert_eq!(refuse_ack_message(&m(Operation::Response, "")), None);
        assert_eq!(refuse_ack_message(&m(Operation::Insert, "3")), None);
    }

    #[test]
    fn deletes_supersede_and_are_never_superseded() {
        let del = m(Operation::Delete, "5");
        assert_eq!(replaces(&del, &m(Operation::Update, "9")), Ok(()));
        assert_eq!(
            replaces(&m(Operation::Update, "10"), &del),
            Err(DropReason::Stale)
        );
        assert_eq!(
            replaces(&m(Operation::Delete, "6"), &del),
            Err(DropReason::Stale),
            "a repeated delete is not sent again"
        );
        assert_eq!(
            replaces(&m(Operation::Update, "4"), &m(Operation::Update, "5")),
            Err(DropReason::Stale)
        );
        assert_eq!(
            replaces(&m(Operation::Update, "6"), &m(Operation::Update, "5")),
            Ok(())
        );
    }
}
