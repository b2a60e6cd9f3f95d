//! Downstream dispatch: where a message from the cloud goes on the edge's
//! bus, as KubeEdge's EdgeHub decides it (reference §2 "Downstream dispatch
//! (edge)"), plus Apiary's upstream acks, which end at the outbox.
//!
//! [`classify`] is pure; [`deliver`] does the sending with backpressure
//! (`send`, never `try_send`): a slow module slows the reading of the link
//! rather than losing messages. EdgeHub itself never acks downstream
//! messages: the receiving module (MetaManager) acks after its commit, and
//! that ack goes up through the outbox like any other message.

use beehive::{Bus, BusError};
use proto::modules::{cloud, edge, group, source};
use proto::{Message, Operation};

/// Where one message from the cloud goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The cloud acks the upstream message with this id: delete its row.
    UpstreamAck(String),
    /// A reply to a request made on the bus: `Bus::respond`.
    Respond,
    /// Every member of a group.
    Group(&'static str),
    /// One module.
    Module(&'static str),
    /// Nowhere; the reason is logged.
    Drop(&'static str),
}

/// Decides where `msg` goes.
pub(crate) fn classify(msg: &Message) -> Target {
    let route = &msg.route;
    let reply = msg.parent_id().is_some();
    if msg.is_empty() {
        return Target::Drop("empty message");
    }
    if route.source == cloud::CLOUDHUB && route.operation == Operation::Response {
        if let Some(parent) = msg.parent_id() {
            return Target::UpstreamAck(parent.to_owned());
        }
    }
    match route.group.as_str() {
        group::RESOURCE | group::FUNC if reply => Target::Respond,
        group::RESOURCE | group::FUNC => Target::Group(edge::META),
        group::TWIN => Target::Group(edge::TWIN),
        group::USER if reply => Target::Respond,
        group::USER => match route.source.as_str() {
            source::ROUTER_EVENTBUS => Target::Module(edge::EVENTBUS),
            source::ROUTER_SERVICEBUS => Target::Module(edge::SERVICEBUS),
            _ => Target::Drop("group user from an unknown source"),
        },
        group::TASKMANAGER => Target::Group(edge::TASKMANAGER),
        _ => Target::Drop("unknown group"),
    }
}

/// Hands `msg` to `target` on the bus, waiting for mailbox room. Failures
/// (no such module or group here, a stopped module) are logged; the message
/// is dropped, as KubeEdge does.
pub(crate) async fn deliver(bus: &Bus, target: Target, msg: Message) {
    let msg_id = msg.id().to_owned();
    let result = match target {
        Target::Respond => {
            // A reply the cloud queued as needing an ack (KubeEdge's rules
            // ask one for e.g. a configmap query's answer) is acked here,
            // since no module acks what it receives through `respond`.
            let ack = proto::needs_ack(&msg).then(|| msg.reply(proto::modules::content::OK));
            bus.respond(msg);
            if let Some(ack) = ack {
                // Our own mailbox; if it is full the cloud resends.
                let _ = bus.try_send(edge::EDGEHUB, ack);
            }
            Ok(())
        }
        Target::Group(name) => bus.send_to_group(name, msg).await.map(|n| {
            if n == 0 {
                tracing::warn!(
                    group = name,
                    msg_id,
                    "no member of the group took the message"
                );
            }
        }),
        Target::Module(name) => bus.send(name, msg).await,
        Target::Drop(reason) => {
            tracing::warn!(
                msg_id,
                group = msg.route.group,
                source = msg.route.source,
                operation = %msg.route.operation.as_str(),
                resource = msg.route.resource,
                reason,
                "dropping a message from the cloud"
            );
            Ok(())
        }
        Target::UpstreamAck(_) => Ok(()),
    };
    match result {
        Ok(()) => {}
        Err(err @ (BusError::UnknownGroup { .. } | BusError::UnknownModule { .. })) => {
            tracing::warn!(msg_id, %err, "dropping a message from the cloud: nobody here takes it");
        }
        Err(err) => tracing::warn!(msg_id, %err, "dropping a message from the cloud"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(source: &str, group: &str, op: Operation) -> Message {
        Message::new(source, group, op, "default/configmap/cm")
    }

    fn reply(mut m: Message) -> Message {
        m.header.parent_msg_id = "request-id".into();
        m
    }

    #[test]
    fn resources_go_to_meta_and_replies_to_respond() {
        let m = msg("edgecontroller", "resource", Operation::Insert);
        assert_eq!(classify(&m), Target::Group("meta"));
        assert_eq!(
            classify(&msg("x", "func", Operation::Query)),
            Target::Group("meta")
        );
        let answer = reply(msg("edgecontroller", "resource", Operation::Response));
        assert_eq!(classify(&answer), Target::Respond);
    }

    #[test]
    fn twin_user_and_task_messages() {
        assert_eq!(
            classify(&msg("devicecontroller", "twin", Operation::Update)),
            Target::Group("twin")
        );
        assert_eq!(
            classify(&msg("router_eventbus", "user", Operation::Publish)),
            Target::Module("eventbus")
        );
        assert_eq!(
            classify(&msg("router_servicebus", "user", Operation::Upload)),
            Target::Module("servicebus")
        );
        assert!(matches!(
            classify(&msg("router", "user", Operation::Upload)),
            Target::Drop(_)
        ));
        assert_eq!(
            classify(&reply(msg("router", "user", Operation::Upload))),
            Target::Respond
        );
        assert_eq!(
            classify(&msg(
                "taskmanager",
                "taskmanager",
                Operation::parse("upgrade")
            )),
            Target::Group("taskmanager")
        );
        assert!(matches!(
            classify(&msg("x", "nope", Operation::Insert)),
            Target::Drop(_)
        ));
        assert!(matches!(classify(&Message::default()), Target::Drop(_)));
    }

    #[test]
    fn cloudhub_responses_are_upstream_acks() {
        let up = msg("metamanager", "resource", Operation::Update);
        let mut ack = up.reply("OK");
        ack.route.source = "cloudhub".into();
        assert_eq!(classify(&ack), Target::UpstreamAck(up.id().to_owned()));
        // Without a parent it is not an ack.
        ack.header.parent_msg_id.clear();
        assert_ne!(classify(&ack), Target::UpstreamAck(String::new()));
    }
}
