//! The node authorization rules as one pure function, [`check`]: given
//! what the cluster looks like ([`View`]), may `node` send `msg`?
//!
//! The module docs (`mod.rs`) list the rules; each `allow_*` function
//! below is one row of that list.

use proto::modules::group;
use proto::resource::NULL_NAMESPACE;
use proto::ResourceKind as K;
use proto::{DeviceEvent, Message, Operation, ResourceKind, ResourcePath, Special, Target};
use serde_json::Value;

use super::content::{self, involved_object, mirror_pod_problem, pod_status_names};
use super::error::{Refusal, Result};
use super::view::View;

/// The namespace of node Leases.
pub(crate) const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Whether `node` may send `msg` (resource in edge form).
pub(crate) fn check(view: &dyn View, node: &str, msg: &Message) -> Result {
    let op = msg.operation();
    // Replies to the cloud's own requests and user-group uploads (Router)
    // carry nothing a node could use to reach another node's objects.
    let reply = matches!(op, Operation::Response | Operation::Error) && msg.parent_id().is_some();
    if reply || (msg.route.group == group::USER && *op == Operation::Upload) {
        return Ok(());
    }
    let resource = msg.resource();
    let path = ResourcePath::parse(resource).map_err(|err| Refusal::Malformed {
        resource: resource.to_owned(),
        reason: err.to_string(),
    })?;
    if path.node().is_some() {
        return Err(Refusal::CloudForm {
            resource: resource.to_owned(),
        });
    }
    match path.target() {
        Target::Special(Special::K8sCa) => Ok(()),
        Target::Special(special @ (Special::Membership | Special::MembershipDetail)) => {
            allow_membership(node, special.as_str(), msg)
        }
        Target::Special(special) => Err(Refusal::Outside {
            resource: special.as_str().to_owned(),
        }),
        Target::Device { id, event } => allow_device_report(view, node, id, event, op),
        Target::Object {
            namespace,
            kind,
            name,
        } => allow_object(view, node, msg, namespace, kind, name.as_deref()),
    }
}

/// One `<ns>/<type>[/<name>]` message.
fn allow_object(
    view: &dyn View,
    node: &str,
    msg: &Message,
    namespace: &str,
    kind: &ResourceKind,
    name: Option<&str>,
) -> Result {
    let op = msg.operation();
    if *kind == K::K8sCa {
        return Ok(());
    }
    if *kind == K::PodStatus {
        // The only kind a node may send as a list: statuses of several pods.
        only(op, kind, &[Operation::Update])?;
        return allow_pod_status(view, node, msg, namespace, name);
    }
    if *kind == K::Event {
        only(
            op,
            kind,
            &[Operation::Insert, Operation::Update, Operation::Patch],
        )?;
        return allow_event(view, node, msg, namespace);
    }
    if !is_node_resource(kind) {
        return Err(Refusal::Outside {
            resource: kind.as_str().to_owned(),
        });
    }
    let Some(name) = name else {
        return Err(Refusal::List {
            resource: kind.as_str().to_owned(),
        });
    };
    match kind {
        K::Node => {
            only(
                op,
                kind,
                &[
                    Operation::Insert,
                    Operation::Query,
                    Operation::Update,
                    Operation::Patch,
                ],
            )?;
            own_node(kind, name, node)?;
            content_names(kind, &msg.content_view(), None, node)
        }
        K::NodeStatus => {
            only(op, kind, &[Operation::Insert, Operation::Update])?;
            own_node(kind, name, node)
        }
        K::NodePatch => {
            only(op, kind, &[Operation::Patch, Operation::Update])?;
            own_node(kind, name, node)
        }
        K::Lease => {
            only(
                op,
                kind,
                &[Operation::Insert, Operation::Update, Operation::Query],
            )?;
            allow_lease(node, msg, namespace, name)
        }
        K::Pod => allow_pod(view, node, msg, namespace, name),
        K::PodPatch => {
            only(op, kind, &[Operation::Patch, Operation::Update])?;
            bound_pod(view, node, namespace, name)
        }
        K::ConfigMap | K::Secret => {
            only(op, kind, &[Operation::Query])?;
            let used = if *kind == K::ConfigMap {
                view.configmap_used(node, namespace, name)
            } else {
                view.secret_used(node, namespace, name)
            };
            referenced(kind, used, namespace, name)
        }
        K::ServiceAccountToken => {
            only(op, kind, &[Operation::Query, Operation::Insert])?;
            allow_token(view, node, msg, namespace, name)
        }
        K::Device => {
            only(op, kind, &[Operation::Query])?;
            own_device(view, node, namespace, name)
        }
        _ => Err(Refusal::Outside {
            resource: kind.as_str().to_owned(),
        }),
    }
}

/// The kinds a node may name one object of (besides pod statuses, events
/// and the CA).
fn is_node_resource(kind: &ResourceKind) -> bool {
    matches!(
        kind,
        K::Node
            | K::NodeStatus
            | K::NodePatch
            | K::Lease
            | K::Pod
            | K::PodPatch
            | K::ConfigMap
            | K::Secret
            | K::ServiceAccountToken
            | K::Device
    )
}

/// Refuses `op` unless it is one of `allowed`.
fn only(op: &Operation, kind: &ResourceKind, allowed: &[Operation]) -> Result {
    if allowed.contains(op) {
        Ok(())
    } else {
        Err(Refusal::Operation {
            operation: op.as_str().to_owned(),
            resource: kind.as_str().to_owned(),
        })
    }
}

/// The node's own Node, status or patch (cluster-scoped: the namespace an
/// edge puts in front, `default` or `null`, does not matter).
fn own_node(kind: &ResourceKind, name: &str, node: &str) -> Result {
    if name == node {
        Ok(())
    } else {
        Err(Refusal::NotOwn {
            resource: kind.as_str().to_owned(),
            name: name.to_owned(),
        })
    }
}

/// The object in `content`, when it names itself, must be the one the
/// resource names (`namespace` `None`: cluster-scoped): EdgeController
/// creates and updates Nodes and Leases from the content.
fn content_names(
    kind: &ResourceKind,
    content: &Value,
    namespace: Option<&str>,
    name: &str,
) -> Result {
    let (ns, n) = content::object_identity(content);
    let ns_ok = match (namespace, ns) {
        (Some(want), Some(got)) => want == got,
        _ => true,
    };
    if ns_ok && n.is_none_or(|n| n == name) {
        return Ok(());
    }
    Err(Refusal::Content {
        resource: kind.as_str().to_owned(),
        reason: format!(
            "names {}/{}, not the resource's {}/{name}",
            ns.unwrap_or(""),
            n.unwrap_or(""),
            namespace.unwrap_or(NULL_NAMESPACE)
        ),
    })
}

/// `kube-node-lease/lease/<node>`, with content naming the same Lease.
fn allow_lease(node: &str, msg: &Message, namespace: &str, name: &str) -> Result {
    if namespace != LEASE_NAMESPACE || name != node {
        return Err(Refusal::NotOwn {
            resource: K::Lease.as_str().to_owned(),
            name: format!("{namespace}/{name}"),
        });
    }
    content_names(&K::Lease, &msg.content_view(), Some(LEASE_NAMESPACE), node)
}

/// A pod bound to `node`.
fn bound_pod(view: &dyn View, node: &str, namespace: &str, name: &str) -> Result {
    match view.pod(namespace, name) {
        Some(pod) if pod.node.as_deref() == Some(node) => Ok(()),
        _ => Err(Refusal::PodNotBound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
    }
}

/// Pods: read or delete one bound to the node; create only a mirror pod.
fn allow_pod(view: &dyn View, node: &str, msg: &Message, namespace: &str, name: &str) -> Result {
    let op = msg.operation();
    match op {
        Operation::Query | Operation::Delete => bound_pod(view, node, namespace, name),
        Operation::Insert => match mirror_pod_problem(&msg.content_view(), node, namespace, name) {
            None => Ok(()),
            Some(reason) => Err(Refusal::NotMirrorPod { reason }),
        },
        _ => only(
            op,
            &K::Pod,
            &[Operation::Query, Operation::Delete, Operation::Insert],
        ),
    }
}

/// Pod statuses: the resource's pod (if named) and every pod the content
/// names must be bound to the node, and there must be at least one.
fn allow_pod_status(
    view: &dyn View,
    node: &str,
    msg: &Message,
    namespace: &str,
    name: Option<&str>,
) -> Result {
    let mut names = pod_status_names(&msg.content_view());
    names.extend(name.map(str::to_owned));
    if names.is_empty() {
        return Err(Refusal::Content {
            resource: K::PodStatus.as_str().to_owned(),
            reason: "names no pod".to_owned(),
        });
    }
    names
        .iter()
        .try_for_each(|pod| bound_pod(view, node, namespace, pod))
}

fn referenced(kind: &ResourceKind, used: bool, namespace: &str, name: &str) -> Result {
    if used {
        Ok(())
    } else {
        Err(Refusal::NotReferenced {
            resource: kind.as_str().to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Service account tokens: for an account a pod on the node runs as; a
/// token bound to an object must be bound to such a pod.
fn allow_token(view: &dyn View, node: &str, msg: &Message, namespace: &str, name: &str) -> Result {
    let kind = K::ServiceAccountToken;
    referenced(
        &kind,
        view.service_account_used(node, namespace, name),
        namespace,
        name,
    )?;
    let Some(bound) = content::bound_object(&msg.content_view()) else {
        return Ok(());
    };
    if bound.kind != "Pod" {
        return Err(Refusal::Content {
            resource: kind.as_str().to_owned(),
            reason: format!("binds the token to a {:?}, not to a pod", bound.kind),
        });
    }
    let pod = view.pod(namespace, &bound.name);
    let fits = pod.as_ref().is_some_and(|pod| {
        pod.node.as_deref() == Some(node)
            && pod.service_account == name
            && bound.uid.as_ref().is_none_or(|uid| *uid == pod.uid)
    });
    if fits {
        Ok(())
    } else {
        Err(Refusal::Content {
            resource: kind.as_str().to_owned(),
            reason: format!(
                "binds the token to pod {namespace}/{}, which is not a pod of this node running as {name}",
                bound.name
            ),
        })
    }
}

/// Events about the node itself or about a pod bound to it.
fn allow_event(view: &dyn View, node: &str, msg: &Message, namespace: &str) -> Result {
    let content = msg.content_view();
    let Some(about) = involved_object(&content) else {
        return Err(Refusal::Content {
            resource: K::Event.as_str().to_owned(),
            reason: "no involvedObject".to_owned(),
        });
    };
    let allowed = match about.kind.as_str() {
        "Node" => about.name == node,
        "Pod" => {
            let ns = if about.namespace.is_empty() {
                namespace
            } else {
                &about.namespace
            };
            bound_pod(view, node, ns, &about.name).is_ok()
        }
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Refusal::EventNotAbout {
            about: about.to_string(),
        })
    }
}

/// A Device bound to the node.
fn own_device(view: &dyn View, node: &str, namespace: &str, name: &str) -> Result {
    if view.device_node(namespace, name).as_deref() == Some(node) {
        Ok(())
    } else {
        Err(Refusal::DeviceNotBound {
            id: format!("{namespace}/{name}"),
        })
    }
}

/// Twin and state reports (`update`) of a Device bound to the node. A bare
/// id (KubeEdge before v1.17) names a device in `default`.
fn allow_device_report(
    view: &dyn View,
    node: &str,
    id: &str,
    event: &DeviceEvent,
    op: &Operation,
) -> Result {
    if !matches!(
        event,
        DeviceEvent::TwinEdgeUpdated | DeviceEvent::StateUpdate
    ) {
        return Err(Refusal::Outside {
            resource: format!("device event {}", event.as_str()),
        });
    }
    if *op != Operation::Update {
        return Err(Refusal::Operation {
            operation: op.as_str().to_owned(),
            resource: format!("device {}", event.as_str()),
        });
    }
    let (namespace, name) = id.split_once('/').unwrap_or(("default", id));
    own_device(view, node, namespace, name)
        .map_err(|_| Refusal::DeviceNotBound { id: id.to_owned() })
}

/// The node's own device membership (`group_id`, when given, is the node).
fn allow_membership(node: &str, resource: &str, msg: &Message) -> Result {
    let op = msg.operation();
    if !matches!(op, Operation::Get | Operation::Query | Operation::Detail) {
        return Err(Refusal::Operation {
            operation: op.as_str().to_owned(),
            resource: resource.to_owned(),
        });
    }
    match content::membership_group(&msg.content_view()) {
        Some(group) if group != node => Err(Refusal::Membership {
            group: group.to_owned(),
        }),
        _ => Ok(()),
    }
}
