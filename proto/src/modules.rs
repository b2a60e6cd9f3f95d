//! Names both daemons must spell as KubeEdge does: modules and their groups,
//! message groups, special sources and contents, and which messages CloudHub
//! waits for an ack on ([`needs_ack`]).

use serde_json::Value;

use crate::message::Message;
use crate::operation::Operation;
use crate::resource::{self, ResourceKind, ResourcePath};

/// Edge modules and the beehive groups they join.
pub mod edge {
    /// EdgeHub (KubeEdge kept the module's old name); group [`HUB`].
    pub const EDGEHUB: &str = "websocket";
    /// MetaManager; group [`META`].
    pub const METAMANAGER: &str = "metamanager";
    /// DeviceTwin; group [`TWIN`].
    pub const DEVICETWIN: &str = "twin";
    /// EventBus; group [`BUS`].
    pub const EVENTBUS: &str = "eventbus";
    /// ServiceBus; group [`BUS`].
    pub const SERVICEBUS: &str = "servicebus";
    /// KubeEdge's kubelet (not built by Apiary, but messages name it).
    pub const EDGED: &str = "edged";
    /// EdgeStream.
    pub const EDGESTREAM: &str = "edgestream";
    /// The edge task manager.
    pub const TASKMANAGER: &str = "taskmanager";

    /// EdgeHub's group.
    pub const HUB: &str = "hub";
    /// MetaManager's group.
    pub const META: &str = "meta";
    /// DeviceTwin's group.
    pub const TWIN: &str = "twin";
    /// EventBus and ServiceBus's group.
    pub const BUS: &str = "bus";

    /// `(module, group)` for every edge module.
    pub const MODULES: &[(&str, &str)] = &[
        (EDGEHUB, HUB),
        (METAMANAGER, META),
        (DEVICETWIN, TWIN),
        (EVENTBUS, BUS),
        (SERVICEBUS, BUS),
        (EDGED, EDGED),
        (EDGESTREAM, EDGESTREAM),
        (TASKMANAGER, TASKMANAGER),
    ];

    /// The group of an edge module, if KubeEdge has one by that name.
    pub fn group_of(module: &str) -> Option<&'static str> {
        MODULES.iter().find(|(m, _)| *m == module).map(|(_, g)| *g)
    }
}

/// Cloud modules; each is alone in a group of its own name.
pub mod cloud {
    /// CloudHub.
    pub const CLOUDHUB: &str = "cloudhub";
    /// EdgeController.
    pub const EDGECONTROLLER: &str = "edgecontroller";
    /// DeviceController.
    pub const DEVICECONTROLLER: &str = "devicecontroller";
    /// SyncController.
    pub const SYNCCONTROLLER: &str = "synccontroller";
    /// DynamicController (answers MetaServer requests).
    pub const DYNAMICCONTROLLER: &str = "dynamiccontroller";
    /// CloudStream (note the capital S, as KubeEdge spells it).
    pub const CLOUDSTREAM: &str = "cloudStream";
    /// Router.
    pub const ROUTER: &str = "router";
    /// The cloud task manager.
    pub const TASKMANAGER: &str = "taskmanager";
    /// PolicyController.
    pub const POLICYCONTROLLER: &str = "policycontroller";
    /// The node upgrade job controller (older task source).
    pub const NODEUPGRADEJOBCONTROLLER: &str = "nodeupgradejobcontroller";

    /// Every cloud module.
    pub const MODULES: &[&str] = &[
        CLOUDHUB,
        EDGECONTROLLER,
        DEVICECONTROLLER,
        SYNCCONTROLLER,
        DYNAMICCONTROLLER,
        CLOUDSTREAM,
        ROUTER,
        TASKMANAGER,
        POLICYCONTROLLER,
        NODEUPGRADEJOBCONTROLLER,
    ];

    /// The group of a cloud module: its own name, if it is one.
    pub fn group_of(module: &str) -> Option<&'static str> {
        MODULES.iter().find(|m| **m == module).copied()
    }
}

/// Values of `route.group` seen on the wire.
pub mod group {
    /// Kubernetes objects and their status (most cloud ⇄ edge traffic).
    pub const RESOURCE: &str = "resource";
    /// Device twin and membership.
    pub const TWIN: &str = "twin";
    /// Functions (handled like `resource` at the edge).
    pub const FUNC: &str = "func";
    /// Router traffic: EventBus and ServiceBus messages.
    pub const USER: &str = "user";
    /// MetaManager.
    pub const META: &str = "meta";
    /// EventBus / ServiceBus.
    pub const BUS: &str = "bus";
    /// EdgeHub.
    pub const HUB: &str = "hub";
    /// Task manager.
    pub const TASKMANAGER: &str = "taskmanager";
}

/// Values of `route.source` that change how a message is routed.
pub mod source {
    /// Router → edge EventBus.
    pub const ROUTER_EVENTBUS: &str = "router_eventbus";
    /// Router → edge ServiceBus.
    pub const ROUTER_SERVICEBUS: &str = "router_servicebus";
    /// The edge MetaServer (answered by DynamicController).
    pub const METASERVER: &str = "metaserver";
    /// EventBus messages to DeviceTwin.
    pub const BUS: &str = "bus";
    /// DeviceTwin reports (routed to DeviceController in the cloud).
    pub const TWIN: &str = "twin";
    /// The edge's connect/disconnect broadcast.
    pub const NODE_CONNECTION: &str = "edgehub";
}

/// Well-known string contents.
pub mod content {
    /// The ack content (MetaManager sends it after the SQLite commit).
    pub const OK: &str = "OK";
    /// The keepalive content.
    pub const PING: &str = "ping";
    /// `node/connection` content once the edge is connected.
    pub const CLOUD_CONNECTED: &str = "cloud_connected";
    /// `node/connection` content once the edge lost the cloud.
    pub const CLOUD_DISCONNECTED: &str = "cloud_disconnected";
}

/// Annotation on the Node an edge registers when its store was created by
/// that registration (a first start, or a start after its database was
/// lost, reset or restored from before): value [`NEW_EDGE_STORE`]. An
/// Apiary cloud strips it and forgets what it recorded as delivered to the
/// node, so that everything is sent again; a KubeEdge cloud keeps it on the
/// Node, where it does no harm.
pub const EDGE_STORE_ANNOTATION: &str = "apiary.io/edge-store";
/// The value of [`EDGE_STORE_ANNOTATION`].
pub const NEW_EDGE_STORE: &str = "new";

/// CSI volume operations (never acked).
pub const VOLUME_OPERATIONS: &[&str] = &[
    "createvolume",
    "deletevolume",
    "controllerpublishvolume",
    "controllerunpublishvolume",
];

/// Sources of task messages (never acked).
pub const TASK_SOURCES: &[&str] = &[cloud::TASKMANAGER, cloud::NODEUPGRADEJOBCONTROLLER];

/// Resource substrings that mark a message as not acked.
const NO_ACK_RESOURCE_PARTS: &[&str] = &[
    "podlist",
    "membership",
    resource::TWIN_CLOUD_UPDATED,
    "serviceaccounttoken",
    resource::K8S_CA,
];

/// Whether CloudHub sends `msg` down on its ACK path (waits for the edge's
/// `response`, resends, records the acked resourceVersion), as KubeEdge
/// decides it. Everything not on KubeEdge's no-ack list needs an ack.
pub fn needs_ack(msg: &Message) -> bool {
    let route = &msg.route;
    let op = &route.operation;
    let no_ack = NO_ACK_RESOURCE_PARTS
        .iter()
        .any(|part| route.resource.contains(part))
        || VOLUME_OPERATIONS.contains(&op.as_str())
        || *op == Operation::ApplicationResponse
        || route.group == group::USER
        || TASK_SOURCES.contains(&route.source.as_str())
        || *op == Operation::Error
        || (*op == Operation::Response && msg.content.as_str() == Some(content::OK))
        || (route.source == cloud::EDGECONTROLLER && edgecontroller_no_ack(msg));
    !no_ack
}

/// EdgeController's own exceptions: node (except update), lease, node and
/// pod patches, pod status, CSRs, and pod responses.
fn edgecontroller_no_ack(msg: &Message) -> bool {
    let Ok(path) = ResourcePath::parse(&msg.route.resource) else {
        return false;
    };
    let op = &msg.route.operation;
    match path.kind() {
        Some(ResourceKind::Node) => *op != Operation::Update,
        Some(ResourceKind::Pod) => *op == Operation::Response,
        Some(
            ResourceKind::Lease
            | ResourceKind::NodePatch
            | ResourceKind::PodPatch
            | ResourceKind::PodStatus
            | ResourceKind::CertificateSigningRequest,
        ) => true,
        _ => false,
    }
}

/// The edge heartbeat: source `websocket`, group `resource`, resource
/// `node`, op `keepalive`, content `"ping"`.
pub fn keepalive() -> Message {
    Message::new(
        edge::EDGEHUB,
        group::RESOURCE,
        Operation::Keepalive,
        resource::NODE,
    )
    .with_content(content::PING)
}

/// The broadcast EdgeHub sends to `group` when the link comes up or goes
/// down: resource `node/connection`, op `connect`.
pub fn connection_message(group: &str, connected: bool) -> Message {
    let state = if connected {
        content::CLOUD_CONNECTED
    } else {
        content::CLOUD_DISCONNECTED
    };
    Message::new(
        source::NODE_CONNECTION,
        group,
        Operation::Connect,
        resource::NODE_CONNECTION,
    )
    .with_content(Value::from(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(source: &str, group: &str, op: &str, resource: &str) -> Message {
        Message::new(source, group, Operation::parse(op), resource)
    }

    #[test]
    fn groups_follow_kubeedge() {
        assert_eq!(edge::group_of("websocket"), Some("hub"));
        assert_eq!(edge::group_of("servicebus"), Some("bus"));
        assert_eq!(edge::group_of("twin"), Some("twin"));
        assert_eq!(cloud::group_of("cloudStream"), Some("cloudStream"));
        assert_eq!(cloud::group_of("nope"), None);
    }

    #[test]
    fn ordinary_object_changes_need_an_ack() {
        let ec = cloud::EDGECONTROLLER;
        for (op, res) in [
            ("insert", "node/e1/default/configmap/cm"),
            ("update", "node/e1/default/pod/p"),
            ("delete", "node/e1/default/secret/s"),
            ("update", "node/e1/null/node/e1"),
            ("update", "node/e1/default/rule/r"),
        ] {
            assert!(needs_ack(&msg(ec, "resource", op, res)), "{op} {res}");
        }
        let device = msg(
            cloud::DEVICECONTROLLER,
            "resource",
            "insert",
            "node/e1/default/device/d",
        );
        assert!(needs_ack(&device));
    }

    #[test]
    fn resource_markers_need_no_ack() {
        for res in [
            "node/e1/default/podlist",
            "node/e1/membership",
            "node/e1/membership/detail",
            "node/e1/device/ns/d/twin/cloud_updated",
            "node/e1/default/serviceaccounttoken/t",
            "node/e1/k8s/ca.crt",
        ] {
            assert!(
                !needs_ack(&msg("devicecontroller", "twin", "update", res)),
                "{res}"
            );
        }
    }

    #[test]
    fn operations_groups_and_sources_that_need_no_ack() {
        let r = "node/e1/default/configmap/cm";
        assert!(!needs_ack(&msg("x", "resource", "createvolume", r)));
        assert!(!needs_ack(&msg("x", "resource", "applicationResponse", r)));
        assert!(!needs_ack(&msg("router", "user", "upload", r)));
        assert!(!needs_ack(&msg("taskmanager", "taskmanager", "upgrade", r)));
        assert!(!needs_ack(&msg("x", "resource", "error", r)));
        let ok = msg("x", "resource", "response", r).with_content("OK");
        assert!(!needs_ack(&ok));
        let answer = msg("x", "resource", "response", r)
            .with_content(serde_json::json!({"Object": {}, "Err": null}));
        assert!(needs_ack(&answer));
    }

    #[test]
    fn edgecontroller_exceptions() {
        let ec = cloud::EDGECONTROLLER;
        let no = |op: &str, res: &str| !needs_ack(&msg(ec, "resource", op, res));
        assert!(no("response", "node/e1/null/node/e1"));
        assert!(no("insert", "node/e1/null/node/e1"));
        assert!(no("response", "node/e1/kube-node-lease/lease/e1"));
        assert!(no("response", "node/e1/default/nodepatch/e1"));
        assert!(no("response", "node/e1/default/podpatch/p"));
        assert!(no("response", "node/e1/default/podstatus"));
        assert!(no("response", "node/e1/null/certificatesigningrequest/c"));
        assert!(no("response", "node/e1/default/pod/p"));
        // The same types from another source keep their ack.
        let other = msg(
            "dynamiccontroller",
            "resource",
            "response",
            "node/e1/default/pod/p",
        );
        assert!(needs_ack(&other));
    }

    #[test]
    fn keepalive_matches_the_wire() {
        let k = keepalive();
        assert_eq!(k.route.source, "websocket");
        assert_eq!(k.route.group, "resource");
        assert_eq!(k.route.resource, "node");
        assert_eq!(k.route.operation, Operation::Keepalive);
        assert_eq!(k.content, Value::from("ping"));
    }

    #[test]
    fn connection_broadcast() {
        let m = connection_message(edge::TWIN, false);
        assert_eq!(m.route.resource, "node/connection");
        assert_eq!(m.route.group, "twin");
        assert_eq!(m.content, Value::from("cloud_disconnected"));
    }
}
