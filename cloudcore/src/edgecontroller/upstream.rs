//! What an edge asks of EdgeController, decided without I/O: an upstream
//! message (resource `node/<id>/<ns>/<type>[/<name>]`, as CloudHub hands it
//! over) read into a typed [`Request`], and the replies that go back.
//!
//! What the edges send (edgecore's `nodestatus` and `metamanager`, or
//! KubeEdge's edged): `insert` of `default/node/<n>` with the Node
//! (registration), `update` of `default/nodestatus/<n>` with
//! `{"UID", "Status"}`, `update` of `kube-node-lease/lease/<n>` with the
//! Lease, pod status reports and patches, events, and `query` of
//! configmaps, secrets, service account tokens, nodes and leases.
//!
//! Replies go back as KubeEdge's EdgeController sends them: source
//! `edgecontroller`, group `resource`, the request's resource (CloudHub
//! strips the node prefix again), `parent_msg_id` = the request's id;
//! op `response` with the object, or op `error` with the reason.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeStatus, PodStatus};
use proto::modules::{cloud, group};
use proto::{split_node_prefix, Message, Operation, ResourceKind, ResourcePath, Target};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{EdgeControllerError, Result};

/// One upstream message, read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Upstream {
    /// The node whose session it came over.
    pub(crate) node: String,
    /// The namespace of its resource (`null` or `default` for nodes).
    pub(crate) namespace: String,
    /// The name in its resource, if any.
    pub(crate) name: Option<String>,
    /// What it asks.
    pub(crate) request: Request,
}

/// Something an edge asks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    /// `insert` node: create the Node (labelled as an edge node).
    RegisterNode(Box<Node>),
    /// `update` node: merge the edge's labels and annotations in.
    UpdateNode(Box<Node>),
    /// `query` node.
    QueryNode,
    /// `insert`/`update` nodestatus: replace the Node's status.
    NodeStatus(Box<NodeStatus>),
    /// `patch`/`update` nodepatch: a strategic merge patch of the Node's
    /// status.
    NodePatch(Value),
    /// `insert`/`update` lease: create or replace the Lease.
    Lease(Box<Lease>),
    /// `query` lease.
    QueryLease,
    /// `insert`/`update` podstatus: replace pod statuses.
    PodStatus(Vec<PodStatusReport>),
    /// `patch`/`update` podpatch: a strategic merge patch of the pod's
    /// status.
    PodPatch(Value),
    /// `insert`/`update`/`patch` event: create (or patch) the Event.
    Event {
        /// The operation (`patch` patches an existing Event).
        operation: Operation,
        /// The Event as sent.
        event: Value,
    },
    /// `query` of a configmap or secret.
    Query(Queried),
    /// `query` serviceaccounttoken: a TokenRequest for the named service
    /// account.
    ServiceAccountToken(Value),
    /// A `response` or `error` from the edge (an answer to nothing
    /// EdgeController asked): logged, never answered.
    Reply,
}

/// What a `query` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queried {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

/// One pod's status from an edge (KubeEdge's `PodStatusRequest`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodStatusReport {
    /// The pod's name.
    pub(crate) name: String,
    /// The UID the edge knows it by; a different pod of the same name is
    /// left alone.
    pub(crate) uid: Option<String>,
    /// The status.
    pub(crate) status: Box<PodStatus>,
}

/// The metrics label of a message's type: its KubeEdge resource type, or
/// `other`.
pub(crate) fn type_label(msg: &Message) -> &'static str {
    let kind = split_node_prefix(msg.resource())
        .and_then(|(_, rest)| ResourcePath::parse(rest).ok())
        .and_then(|path| path.kind().cloned());
    ResourceKind::KNOWN
        .iter()
        .find(|known| Some(*known) == kind.as_ref())
        .map_or("other", ResourceKind::as_str)
}

/// True for a `response` or `error`: never answered, so that two sides
/// cannot bounce errors at each other.
pub(crate) fn is_reply(msg: &Message) -> bool {
    matches!(msg.operation(), Operation::Response | Operation::Error)
}

/// Reads an upstream message.
pub(crate) fn parse(msg: &Message) -> Result<Upstream> {
    let resource = msg.resource();
    let malformed = |reason: String| EdgeControllerError::Malformed {
        resource: resource.to_owned(),
        reason,
    };
    let (node, rest) =
        split_node_prefix(resource).ok_or_else(|| malformed("no node/<id>/ prefix".to_owned()))?;
    let path = ResourcePath::parse(rest).map_err(|err| malformed(err.to_string()))?;
    let Target::Object {
        namespace,
        kind,
        name,
    } = path.target()
    else {
        return Err(unsupported(msg));
    };
    let op = msg.operation().clone();
    let request = if is_reply(msg) {
        Request::Reply
    } else {
        request(msg, kind, &op, name.as_deref())?
    };
    Ok(Upstream {
        node: node.to_owned(),
        namespace: namespace.clone(),
        name: name.clone(),
        request,
    })
}

fn request(
    msg: &Message,
    kind: &ResourceKind,
    op: &Operation,
    name: Option<&str>,
) -> Result<Request> {
    use Operation::{Insert, Patch, Query, Update};
    let named = |request: fn(&Message) -> Result<Request>| match name {
        Some(_) => request(msg),
        None => Err(malformed(msg, "the resource names no object")),
    };
    match (kind, op) {
        (ResourceKind::Node, Insert) => named(|m| Ok(Request::RegisterNode(content(m)?))),
        (ResourceKind::Node, Update) => named(|m| Ok(Request::UpdateNode(content(m)?))),
        (ResourceKind::Node, Query) => named(|_| Ok(Request::QueryNode)),
        (ResourceKind::NodeStatus, Insert | Update) => named(node_status),
        (ResourceKind::NodePatch, Patch | Update) => named(|m| Ok(Request::NodePatch(object(m)?))),
        (ResourceKind::Lease, Insert | Update) => named(|m| Ok(Request::Lease(content(m)?))),
        (ResourceKind::Lease, Query) => named(|_| Ok(Request::QueryLease)),
        (ResourceKind::PodStatus, Insert | Update) => pod_statuses(msg, name),
        (ResourceKind::PodPatch, Patch | Update) => named(|m| Ok(Request::PodPatch(object(m)?))),
        (ResourceKind::Event, Insert | Update | Patch) => Ok(Request::Event {
            operation: op.clone(),
            event: object(msg)?,
        }),
        (ResourceKind::ConfigMap, Query) => named(|_| Ok(Request::Query(Queried::ConfigMap))),
        (ResourceKind::Secret, Query) => named(|_| Ok(Request::Query(Queried::Secret))),
        (ResourceKind::ServiceAccountToken, Query) => {
            named(|m| Ok(Request::ServiceAccountToken(object(m)?)))
        }
        _ => Err(unsupported(msg)),
    }
}

/// `{"UID", "Status"}` (KubeEdge's `NodeStatusRequest`), or a bare status.
fn node_status(msg: &Message) -> Result<Request> {
    let content = object(msg)?;
    let status = content.get("Status").unwrap_or(&content);
    Ok(Request::NodeStatus(decode(msg, status)?))
}

/// One `PodStatusRequest` `{"UID", "Name", "Status"}` (the resource names
/// the pod), or a list of them (older KubeEdge, resource without a name).
fn pod_statuses(msg: &Message, name: Option<&str>) -> Result<Request> {
    let report = |item: &Value| -> Result<PodStatusReport> {
        let name = item
            .get("Name")
            .and_then(Value::as_str)
            .or(name)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| malformed(msg, "a pod status names no pod"))?;
        let status = item.get("Status").unwrap_or(item);
        Ok(PodStatusReport {
            name: name.to_owned(),
            uid: item
                .get("UID")
                .and_then(Value::as_str)
                .filter(|uid| !uid.is_empty())
                .map(str::to_owned),
            status: decode(msg, status)?,
        })
    };
    let content = msg.content_json();
    let reports = match &content {
        Value::Array(items) => items.iter().map(report).collect::<Result<_>>()?,
        Value::Object(_) => vec![report(&content)?],
        _ => return Err(malformed(msg, "the content is not a JSON object or list")),
    };
    Ok(Request::PodStatus(reports))
}

/// The content as a JSON object (decoding JSON text, as KubeEdge sends
/// patches).
fn object(msg: &Message) -> Result<Value> {
    let content = msg.content_json();
    if content.is_object() {
        Ok(content)
    } else {
        Err(malformed(msg, "the content is not a JSON object"))
    }
}

fn content<T: DeserializeOwned>(msg: &Message) -> Result<Box<T>> {
    decode(msg, &object(msg)?)
}

/// `value` read as a `T`, without copying it first.
fn decode<T: DeserializeOwned>(msg: &Message, value: &Value) -> Result<Box<T>> {
    T::deserialize(value)
        .map(Box::new)
        .map_err(|err| malformed(msg, &err.to_string()))
}

fn malformed(msg: &Message, reason: &str) -> EdgeControllerError {
    EdgeControllerError::Malformed {
        resource: msg.resource().to_owned(),
        reason: reason.to_owned(),
    }
}

fn unsupported(msg: &Message) -> EdgeControllerError {
    EdgeControllerError::Unsupported {
        operation: msg.operation().as_str().to_owned(),
        resource: msg.resource().to_owned(),
    }
}

/// The answer to `request`: op `response`, content `object`, its
/// resourceVersion in the header when it has one.
pub(crate) fn response(request: &Message, object: Value) -> Message {
    let rv = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut reply = from_edgecontroller(request.reply(object));
    if let Some(rv) = rv {
        reply.header.resource_version = rv;
    }
    reply
}

/// The error reply to `request`: op `error`, content the reason.
pub(crate) fn error(request: &Message, reason: impl Into<String>) -> Message {
    from_edgecontroller(request.error_reply(reason))
}

fn from_edgecontroller(mut reply: Message) -> Message {
    reply.route.source = cloud::EDGECONTROLLER.to_owned();
    reply.route.group = group::RESOURCE.to_owned();
    reply
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures are known to parse")]

    use serde_json::json;

    use super::*;

    fn up(op: Operation, resource: &str, content: Value) -> Message {
        Message::new("edged", "meta", op, resource).with_content(content)
    }

    fn parsed(op: Operation, resource: &str, content: Value) -> Upstream {
        parse(&up(op, resource, content)).unwrap()
    }

    #[test]
    fn reads_what_edgecore_sends() {
        let node = json!({"metadata": {"name": "edge-1", "labels": {"a": "b"}}});
        let reg = parsed(Operation::Insert, "node/edge-1/default/node/edge-1", node);
        assert_eq!(reg.node, "edge-1");
        assert_eq!(reg.name.as_deref(), Some("edge-1"));
        let Request::RegisterNode(n) = reg.request else {
            panic!("{reg:?}")
        };
        assert_eq!(n.metadata.labels.unwrap()["a"], "b");

        let status =
            json!({"UID": "u", "Status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let st = parsed(
            Operation::Update,
            "node/edge-1/default/nodestatus/edge-1",
            status,
        );
        let Request::NodeStatus(s) = st.request else {
            panic!("{st:?}")
        };
        assert_eq!(s.conditions.unwrap()[0].status, "True");

        let lease = json!({"metadata": {"name": "edge-1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "edge-1", "leaseDurationSeconds": 40}});
        let l = parsed(
            Operation::Update,
            "node/edge-1/kube-node-lease/lease/edge-1",
            lease,
        );
        assert_eq!(l.namespace, "kube-node-lease");
        assert!(
            matches!(l.request, Request::Lease(l) if l.spec.as_ref().unwrap().lease_duration_seconds == Some(40))
        );
    }

    #[test]
    fn reads_queries_patches_and_pod_statuses() {
        let q = parsed(Operation::Query, "node/e/ns/configmap/c", Value::Null);
        assert_eq!(q.request, Request::Query(Queried::ConfigMap));
        let q = parsed(Operation::Query, "node/e/ns/secret/s", Value::Null);
        assert_eq!(q.request, Request::Query(Queried::Secret));
        let patch_text = Value::String(r#"{"status":{"phase":"Running"}}"#.to_owned());
        let p = parsed(Operation::Patch, "node/e/ns/podpatch/p", patch_text);
        assert_eq!(
            p.request,
            Request::PodPatch(json!({"status": {"phase": "Running"}}))
        );

        let one = json!({"UID": "u1", "Name": "p", "Status": {"phase": "Running"}});
        let s = parsed(Operation::Update, "node/e/ns/podstatus/p", one);
        let Request::PodStatus(reports) = s.request else {
            panic!("{s:?}")
        };
        assert_eq!(reports[0].name, "p");
        assert_eq!(reports[0].uid.as_deref(), Some("u1"));
        assert_eq!(reports[0].status.phase.as_deref(), Some("Running"));
        let list = json!([{"Name": "a", "Status": {}}, {"Name": "b", "UID": "", "Status": {}}]);
        let s = parsed(Operation::Update, "node/e/ns/podstatus", list);
        let Request::PodStatus(reports) = s.request else {
            panic!("{s:?}")
        };
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[1].uid, None);
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let err = |op, resource: &str, content| parse(&up(op, resource, content)).unwrap_err();
        assert_eq!(
            err(Operation::Delete, "node/e/ns/configmap/c", Value::Null).kind(),
            "unsupported"
        );
        assert_eq!(
            err(Operation::Insert, "default/node/e", json!({})).kind(),
            "malformed",
            "no node prefix"
        );
        assert_eq!(
            err(
                Operation::Insert,
                "node/e/default/node/e",
                json!("not json")
            )
            .kind(),
            "malformed"
        );
        assert_eq!(
            err(Operation::Query, "node/e/ns/configmap", Value::Null).kind(),
            "malformed",
            "no name"
        );
        assert_eq!(
            err(Operation::Update, "node/e/membership/detail", Value::Null).kind(),
            "unsupported"
        );
        let reply = up(Operation::Error, "node/e/ns/pod/p", json!("boom"));
        assert_eq!(parse(&reply).unwrap().request, Request::Reply);
        assert!(is_reply(&reply));
    }

    #[test]
    fn labels_types_with_bounded_values() {
        let m = |r: &str| up(Operation::Update, r, Value::Null);
        assert_eq!(type_label(&m("node/e/default/nodestatus/e")), "nodestatus");
        assert_eq!(type_label(&m("node/e/ns/whatever/x")), "other");
        assert_eq!(type_label(&m("garbage")), "other");
    }

    #[test]
    fn replies_come_from_edgecontroller() {
        let req = up(Operation::Query, "node/e/ns/configmap/c", Value::Null);
        let ok = response(
            &req,
            json!({"metadata": {"name": "c", "resourceVersion": "9"}}),
        );
        assert_eq!(ok.parent_id(), Some(req.id()));
        assert_eq!(ok.route.source, "edgecontroller");
        assert_eq!(ok.route.group, "resource");
        assert_eq!(ok.resource(), "node/e/ns/configmap/c");
        assert_eq!(ok.operation(), &Operation::Response);
        assert_eq!(ok.header.resource_version, "9");
        let bad = error(&req, "configmaps \"c\" not found");
        assert_eq!(bad.operation(), &Operation::Error);
        assert_eq!(bad.parent_id(), Some(req.id()));
        assert_eq!(bad.content, json!("configmaps \"c\" not found"));
    }
}
