//! Upstream dispatch as KubeEdge's CloudHub does it, as pure functions:
//! what a message from an edge is, which cloud module gets it (with the
//! `node/<id>/` prefix added), and the ack of Apiary's upstream-ack
//! extension.

use proto::modules::{cloud, group, source};
use proto::{add_node_prefix, Message, Operation};

/// What a message read from an edge asks of CloudHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Upstream<'a> {
    /// KubeEdge's all-empty shutdown message: ignored.
    Empty,
    /// A heartbeat: proof of life only.
    Keepalive,
    /// A reply: an ack if it answers a queued message, else forwarded.
    Response {
        /// The id of the message it answers.
        parent: &'a str,
    },
    /// Anything else: forwarded to `module`, acked when the edge asked.
    Forward {
        /// The cloud module that handles it.
        module: &'static str,
    },
}

/// Classifies a message from an edge.
pub(crate) fn classify(msg: &Message) -> Upstream<'_> {
    if msg.is_empty() {
        return Upstream::Empty;
    }
    match (msg.operation(), msg.parent_id()) {
        (Operation::Keepalive, _) => Upstream::Keepalive,
        (Operation::Response, Some(parent)) => Upstream::Response { parent },
        _ => Upstream::Forward {
            module: target_module(msg),
        },
    }
}

/// The cloud module an upstream message goes to: DeviceController for
/// twin reports, DynamicController for the MetaServer, Router for user
/// uploads, EdgeController for everything else.
pub(crate) fn target_module(msg: &Message) -> &'static str {
    let route = &msg.route;
    if route.source == source::TWIN {
        cloud::DEVICECONTROLLER
    } else if route.source == source::METASERVER {
        cloud::DYNAMICCONTROLLER
    } else if route.group == group::USER && route.operation == Operation::Upload {
        cloud::ROUTER
    } else {
        cloud::EDGECONTROLLER
    }
}

/// The message as cloud modules see it: resource `node/<node>/<resource>`.
pub(crate) fn into_cloud(node: &str, mut msg: Message) -> Message {
    msg.route.resource = add_node_prefix(node, &msg.route.resource);
    msg
}

/// Whether the upstream-ack extension acks this message: everything but
/// replies, heartbeats and the empty message.
pub(crate) fn wants_upstream_ack(msg: &Message) -> bool {
    !msg.is_empty() && !matches!(msg.operation(), Operation::Response | Operation::Keepalive)
}

/// The extension's ack of `msg` (as the edge sent it): op `response`,
/// parent = its id, content `"OK"`, source `cloudhub`, group `resource`,
/// the same resource.
pub(crate) fn upstream_ack(msg: &Message) -> Message {
    let mut ack = Message::new(
        cloud::CLOUDHUB,
        group::RESOURCE,
        Operation::Response,
        msg.resource(),
    )
    .with_content(proto::modules::content::OK);
    ack.header.parent_msg_id = msg.id().to_owned();
    ack
}

/// The error reply to a message node authorization refused: op `error`,
/// parent = its id, the same source and resource, content the reason. The
/// edge routes replies by group: edged's `meta` group has no reply path
/// there, so such a reply goes in group `resource`, as EdgeController's
/// own replies do.
pub(crate) fn refusal(msg: &Message, reason: &str) -> Message {
    let route = &msg.route;
    let reply_group = if route.group == group::META {
        group::RESOURCE
    } else {
        route.group.as_str()
    };
    let mut reply = Message::new(
        route.source.as_str(),
        reply_group,
        Operation::Error,
        msg.resource(),
    )
    .with_content(format!("forbidden: {reason}"));
    reply.header.parent_msg_id = msg.id().to_owned();
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(source: &str, group: &str, op: Operation, resource: &str) -> Message {
        Message::new(source, group, op, resource)
    }

    #[test]
    fn refusals_reply_where_the_edge_listens() {
        let status = up("edged", "meta", Operation::Update, "default/nodestatus/a");
        let reply = refusal(&status, "not yours");
        assert_eq!(reply.route.group, "resource");
        assert_eq!(reply.operation(), &Operation::Error);
        assert_eq!(reply.parent_id(), Some(status.id()));
        assert_eq!(reply.content.as_str(), Some("forbidden: not yours"));
        let twin = up(
            "twin",
            "twin",
            Operation::Update,
            "device/ns/d/twin/edge_updated",
        );
        assert_eq!(refusal(&twin, "x").route.group, "twin");
    }

    #[test]
    fn routes_by_source_and_group() {
        let r = |m: &Message| target_module(m);
        assert_eq!(
            r(&up(
                "twin",
                "twin",
                Operation::Update,
                "device/d/twin/edge_updated"
            )),
            "devicecontroller"
        );
        assert_eq!(
            r(&up(
                "metaserver",
                "resource",
                Operation::Query,
                "default/pod"
            )),
            "dynamiccontroller"
        );
        assert_eq!(
            r(&up("eventbus", "user", Operation::Upload, "a/topic")),
            "router"
        );
        assert_eq!(
            r(&up("eventbus", "user", Operation::Update, "a/topic")),
            "edgecontroller"
        );
        assert_eq!(
            r(&up(
                "edged",
                "resource",
                Operation::Update,
                "default/podstatus/p"
            )),
            "edgecontroller"
        );
    }

    #[test]
    fn classifies_heartbeats_replies_and_the_empty_message() {
        assert_eq!(classify(&Message::default()), Upstream::Empty);
        assert_eq!(classify(&proto::modules::keepalive()), Upstream::Keepalive);
        let req = up(
            "edgecontroller",
            "resource",
            Operation::Insert,
            "default/pod/p",
        );
        let ack = req.reply("OK");
        assert_eq!(classify(&ack), Upstream::Response { parent: req.id() });
        // A response without a parent is forwarded like any message.
        let orphan = up("edged", "resource", Operation::Response, "default/pod/p");
        assert_eq!(
            classify(&orphan),
            Upstream::Forward {
                module: "edgecontroller"
            }
        );
    }

    #[test]
    fn adds_the_node_prefix() {
        let m = into_cloud(
            "edge-1",
            up("edged", "resource", Operation::Update, "default/pod/p"),
        );
        assert_eq!(m.resource(), "node/edge-1/default/pod/p");
    }

    #[test]
    fn upstream_ack_follows_the_contract() {
        let m = up(
            "edged",
            "resource",
            Operation::Update,
            "default/podstatus/p",
        );
        assert!(wants_upstream_ack(&m));
        assert!(!wants_upstream_ack(&proto::modules::keepalive()));
        assert!(!wants_upstream_ack(&m.reply("OK")));
        let ack = upstream_ack(&m);
        assert_eq!(ack.parent_id(), Some(m.id()));
        assert_eq!(ack.route.operation, Operation::Response);
        assert_eq!(ack.route.source, "cloudhub");
        assert_eq!(ack.route.group, "resource");
        assert_eq!(ack.resource(), "default/podstatus/p");
        assert_eq!(ack.content, serde_json::Value::from("OK"));
    }
}
