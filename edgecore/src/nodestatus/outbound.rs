//! The bus side of node status: the messages' route (source `edged`, group
//! `meta`, KubeEdge's resource strings), delivery to MetaManager with the
//! fall-back to EdgeHub when a daemon has no MetaManager, and reading the
//! Node's UID back from messages that reach the module.

use beehive::{Bus, BusError};
use proto::modules::edge;
use proto::{Message, Operation, ResourceKind, ResourcePath};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::settings::Result;

/// The namespace KubeEdge puts the Node and node status resources in.
const NODE_NAMESPACE: &str = "default";

/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// `default/node/<name>`: where the Node is registered.
pub fn node_resource(node: &str) -> String {
    format!("{NODE_NAMESPACE}/{}/{node}", ResourceKind::Node.as_str())
}

/// `default/nodestatus/<name>`: where status reports go.
pub fn node_status_resource(node: &str) -> String {
    format!(
        "{NODE_NAMESPACE}/{}/{node}",
        ResourceKind::NodeStatus.as_str()
    )
}

/// `kube-node-lease/lease/<name>`: where the Lease is renewed.
pub fn lease_resource(node: &str) -> String {
    format!("{LEASE_NAMESPACE}/{}/{node}", ResourceKind::Lease.as_str())
}

/// A message as KubeEdge's edged sends it: source `edged`, group `meta`.
pub(crate) fn message(op: Operation, resource: String, content: Result<Value>) -> Result<Message> {
    content.map(|json| Message::new(edge::EDGED, edge::META, op, resource).with_content(json))
}

/// The UID of node `node` if `msg` carries that Node (by its resource's
/// type or the content's `kind`) with a non-empty `metadata.uid`.
pub(crate) fn node_uid(msg: &Message, node: &str) -> Option<String> {
    let content = msg.content_json();
    let names_node =
        ResourcePath::parse(msg.resource()).is_ok_and(|p| p.kind() == Some(&ResourceKind::Node));
    let meta = &content["metadata"];
    if meta["name"].as_str() != Some(node) || !(names_node || content["kind"] == "Node") {
        return None;
    }
    meta["uid"]
        .as_str()
        .filter(|uid| !uid.is_empty())
        .map(str::to_owned)
}

/// Sends the module's messages; remembers whether MetaManager is there.
#[derive(Debug)]
pub(crate) struct Outbound {
    node: String,
    target: &'static str,
}

impl Outbound {
    /// Delivery for node `node`, to MetaManager until the bus says there
    /// is none.
    pub(crate) fn new(node: &str) -> Self {
        Outbound {
            node: node.to_owned(),
            target: edge::METAMANAGER,
        }
    }

    /// Sends `built` to MetaManager (to EdgeHub if the bus has no
    /// MetaManager). A build or send failure is logged and dropped; the
    /// next report replaces it. Returns early if `cancel` fires.
    pub(crate) async fn deliver(
        &mut self,
        bus: &Bus,
        cancel: &CancellationToken,
        built: Result<Message>,
    ) {
        let node = self.node.as_str();
        let msg = match built {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(node, error = %e, "cannot build node status message");
                return;
            }
        };
        let (msg_id, resource) = (msg.id(), msg.resource());
        loop {
            let sent = tokio::select! {
                () = cancel.cancelled() => return,
                sent = bus.send(self.target, msg.clone()) => sent,
            };
            match sent {
                Ok(()) => tracing::debug!(node, msg_id, resource, to = self.target, "sent"),
                Err(BusError::UnknownModule { .. }) if self.target == edge::METAMANAGER => {
                    tracing::info!(node, "no metamanager on the bus; sending to edgehub");
                    self.target = edge::EDGEHUB;
                    continue;
                }
                Err(e) => tracing::warn!(
                    node,
                    msg_id,
                    resource,
                    error = %e,
                    "cannot send node status message"
                ),
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn resources_follow_kubeedge() {
        assert_eq!(node_resource("edge-1"), "default/node/edge-1");
        assert_eq!(node_status_resource("edge-1"), "default/nodestatus/edge-1");
        assert_eq!(lease_resource("edge-1"), "kube-node-lease/lease/edge-1");
    }

    #[test]
    fn messages_come_from_edged_to_meta() {
        let msg = message(Operation::Update, "r".into(), Ok(json!({"a": 1}))).unwrap();
        assert_eq!(
            (msg.route.source.as_str(), msg.route.group.as_str()),
            ("edged", "meta")
        );
        assert_eq!(msg.operation(), &Operation::Update);
        assert_eq!(msg.content, json!({"a": 1}));
    }

    #[test]
    fn uid_is_read_only_from_this_node() {
        let node = |name: &str, uid: &str| json!({"metadata": {"name": name, "uid": uid}});
        let on = |resource: &str, content: Value| {
            Message::new("metamanager", "meta", Operation::Response, resource).with_content(content)
        };
        let msg = on("default/node/edge-1", node("edge-1", "u-1"));
        assert_eq!(node_uid(&msg, "edge-1").as_deref(), Some("u-1"));
        assert_eq!(node_uid(&msg, "edge-2"), None);
        let msg = on("default/node/edge-1", node("edge-1", ""));
        assert_eq!(node_uid(&msg, "edge-1"), None);
        let msg = on("default/pod/edge-1", node("edge-1", "u-1"));
        assert_eq!(node_uid(&msg, "edge-1"), None, "not a Node");
        let mut content = node("edge-1", "u-2");
        content["kind"] = json!("Node");
        let as_text = on("anything", Value::String(content.to_string()));
        assert_eq!(node_uid(&as_text, "edge-1").as_deref(), Some("u-2"));
    }
}
