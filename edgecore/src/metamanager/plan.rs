//! What MetaManager does with one message, decided without I/O: which
//! rows to write (KubeEdge's `meta` row, and the servable object in
//! `meta_v2`), and whether to ack the cloud, forward to the cloud, answer
//! a query or ignore it. Reference §3 "Writes" and "Routing by source".

use kubestore::{Expect, ObjectKey, ResourceInfo, Resources, WriteOp};
use proto::modules::cloud;
use proto::resource::{ResourceKind, ResourcePath, Target, NULL_NAMESPACE};
use proto::{Message, Operation};
use serde_json::Value;

/// What happens after a write commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// A cloud message: ack it ("OK") through EdgeHub.
    Ack,
    /// A local message: send it on to the cloud.
    Forward,
    /// The node's own registration: send it on, marked as coming from a
    /// new store when the write created the Node row (no copy of the
    /// cloud's, nor an earlier draft: the database is new).
    Register,
}

/// The decision for one message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plan {
    /// Write `ops` atomically, then do `after`.
    Write { ops: Vec<WriteOp>, after: After },
    /// Merge a reported node status into the stored Node, then forward.
    NodeStatus {
        key: ObjectKey,
        meta_key: String,
        status: Value,
    },
    /// Answer a query (remote or local).
    Query(Query),
    /// Send on to the cloud without storing (events).
    Forward,
    /// A cloud message that cannot be applied: answer with this error so
    /// the cloud stops resending it.
    Refuse(String),
    /// Nothing to do; the reason is logged at debug level.
    Ignore(&'static str),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// KubeEdge's key (`ns/type/name`) or, for a list, `ns/type`.
    pub meta_key: String,
    /// The type.
    pub kind: ResourceKind,
    /// The namespace as written (`null` for cluster-scoped).
    pub namespace: String,
    /// The name; `None` for a list.
    pub name: Option<String>,
    /// The object's key when the type is servable (and a name is given).
    pub object: Option<ObjectKey>,
    /// The type's resource when servable.
    pub info: Option<ResourceInfo>,
}

impl Query {
    /// KubeEdge asks the cloud for these while connected (reference §3
    /// "Queries").
    pub(crate) fn goes_remote(&self) -> bool {
        matches!(
            self.kind,
            ResourceKind::ConfigMap
                | ResourceKind::Secret
                | ResourceKind::ServiceAccountToken
                | ResourceKind::Lease
                | ResourceKind::CertificateSigningRequest
                | ResourceKind::K8sCa
        ) || matches!(
            self.kind.as_str(),
            "persistentvolume" | "persistentvolumeclaim" | "volumeattachment"
        )
    }
}

/// True when `source` is a cloud module (the message came down the link).
pub(crate) fn from_cloud(msg: &Message) -> bool {
    cloud::group_of(&msg.route.source).is_some()
}

/// The object a message carries: replies wrap it as `{"Object": ..,
/// "Err": ..}`, some payloads are JSON text in a string.
pub(crate) fn payload(msg: &Message) -> Value {
    let content = msg.content_json();
    match content {
        Value::Object(mut map) if map.contains_key("Object") => {
            map.remove("Object").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// Decides what to do with `msg`.
pub(crate) fn plan(msg: &Message, resources: &Resources) -> Plan {
    if msg.resource() == proto::resource::NODE_CONNECTION {
        return Plan::Ignore("connection state");
    }
    let path = match ResourcePath::parse(msg.resource()) {
        Ok(path) => path,
        Err(err) if from_cloud(msg) => return Plan::Refuse(format!("bad resource: {err}")),
        Err(_) => return Plan::Ignore("unparsable resource"),
    };
    let Target::Object {
        namespace,
        kind,
        name,
    } = path.target()
    else {
        return Plan::Ignore("not an object resource");
    };
    let info = resources.by_singular(kind.as_str());
    let object_key = |name: &str| {
        info.as_ref().map(|info| {
            let ns = (info.namespaced && namespace != NULL_NAMESPACE).then_some(namespace.as_str());
            ObjectKey::new(info.gvr.clone(), ns, name)
        })
    };
    let meta_key = match name {
        Some(name) => format!("{namespace}/{kind}/{name}"),
        None => format!("{namespace}/{kind}"),
    };
    let op = msg.operation();
    if *op == Operation::Query {
        return Plan::Query(Query {
            object: name.as_deref().and_then(object_key),
            info: info.clone(),
            meta_key,
            kind: kind.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
        });
    }
    let cloud = from_cloud(msg);
    if *kind == ResourceKind::Event {
        // Events are never stored, only sent up (reference §3 "Writes").
        return if cloud {
            Plan::Ignore("event from the cloud")
        } else {
            Plan::Forward
        };
    }
    let Some(name) = name else {
        return if cloud {
            Plan::Ignore("list resource from the cloud")
        } else {
            Plan::Forward
        };
    };
    let after = if cloud { After::Ack } else { After::Forward };
    match op {
        Operation::Insert | Operation::Update | Operation::Patch | Operation::Response => {}
        Operation::Delete => {
            let content = payload(msg);
            let mut ops = vec![WriteOp::DeleteMeta { key: meta_key }];
            if let Some(key) = object_key(name) {
                let expect = match content.pointer("/metadata/uid").and_then(Value::as_str) {
                    Some(uid) if !uid.is_empty() => Expect::Uid(uid.to_owned()),
                    _ => Expect::Any,
                };
                ops.insert(0, WriteOp::Delete { key, expect });
            }
            return Plan::Write { ops, after };
        }
        _ if cloud => return Plan::Refuse(format!("metamanager: unsupported operation {op}")),
        _ => return Plan::Ignore("unsupported operation"),
    }
    let content = payload(msg);
    if *kind == ResourceKind::NodeStatus && !cloud {
        let Some(key) = resources
            .by_singular("node")
            .map(|info| ObjectKey::new(info.gvr, None, name))
        else {
            return Plan::Forward;
        };
        let status = content.get("Status").cloned().unwrap_or(Value::Null);
        return Plan::NodeStatus {
            key,
            meta_key: format!("{namespace}/node/{name}"),
            status,
        };
    }
    if !content.is_object() {
        return if cloud {
            Plan::Refuse("metamanager: the content is not a JSON object".to_owned())
        } else {
            Plan::Forward
        };
    }
    let registering = !cloud && *op == Operation::Insert && *kind == ResourceKind::Node;
    let after = if registering { After::Register } else { after };
    let expect = if registering {
        // The cloud's Node, if stored, is better than our first draft.
        Expect::Absent
    } else if cloud {
        Expect::NewerOrigin
    } else {
        Expect::Any
    };
    let origin = Some(msg.header.resource_version.as_str()).filter(|rv| !rv.is_empty());
    let object = object_key(name).zip(info.as_ref());
    let ops = store_ops(meta_key, kind, object, content, origin, expect);
    Plan::Write { ops, after }
}

/// The rows for one object: the servable object in `meta_v2` (when
/// `object` names its resource), written under `expect`, then KubeEdge's
/// `meta` row. The origin version is `origin`, else the object's own
/// `metadata.resourceVersion`.
pub(crate) fn store_ops(
    meta_key: String,
    kind: &ResourceKind,
    object: Option<(ObjectKey, &ResourceInfo)>,
    content: Value,
    origin: Option<&str>,
    expect: Expect,
) -> Vec<WriteOp> {
    let meta = WriteOp::PutMeta {
        key: meta_key,
        kind: kind.as_str().to_owned(),
        value: content.to_string(),
    };
    let Some((key, info)) = object else {
        return vec![meta];
    };
    let origin = origin
        .or_else(|| {
            content
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
        })
        .map(str::to_owned);
    let put = WriteOp::Put {
        value: complete(content, info, &key),
        key,
        origin,
        expect,
    };
    vec![put, meta]
}

/// Fills in `apiVersion`, `kind`, `metadata.name` and `metadata.namespace`
/// where the sender left them out, so the MetaServer serves whole objects.
pub(crate) fn complete(mut value: Value, info: &ResourceInfo, key: &ObjectKey) -> Value {
    if let Some(obj) = value.as_object_mut() {
        obj.entry("apiVersion")
            .or_insert_with(|| Value::String(info.gvr.api_version()));
        obj.entry("kind")
            .or_insert_with(|| Value::String(info.kind.clone()));
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.entry("name")
                .or_insert_with(|| Value::String(key.name.clone()));
            if let Some(ns) = &key.namespace {
                meta.entry("namespace")
                    .or_insert_with(|| Value::String(ns.clone()));
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubestore::{edge_resources, Gvr};
    use serde_json::json;

    fn resources() -> Resources {
        Resources::new(edge_resources())
    }

    fn cloud_msg(op: Operation, resource: &str, content: Value) -> Message {
        Message::new("edgecontroller", "resource", op, resource)
            .with_resource_version("42")
            .with_content(content)
    }

    #[test]
    fn cloud_configmap_insert_writes_both_tables_and_acks() {
        let msg = cloud_msg(
            Operation::Insert,
            "default/configmap/cm",
            json!({"metadata": {"name": "cm", "namespace": "default", "resourceVersion": "42"}, "data": {}}),
        );
        let Plan::Write { ops, after } = plan(&msg, &resources()) else {
            panic!("expected a write")
        };
        assert_eq!(after, After::Ack);
        let WriteOp::Put {
            key,
            value,
            origin,
            expect,
        } = &ops[0]
        else {
            panic!("put first")
        };
        assert_eq!(
            key,
            &ObjectKey::new(Gvr::core("configmaps"), Some("default"), "cm")
        );
        assert_eq!(value["kind"], "ConfigMap");
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(origin.as_deref(), Some("42"));
        assert_eq!(expect, &Expect::NewerOrigin);
        assert!(
            matches!(&ops[1], WriteOp::PutMeta { key, kind, .. } if key == "default/configmap/cm" && kind == "configmap")
        );
    }

    #[test]
    fn replies_are_unwrapped_and_unknown_types_go_to_meta_only() {
        let msg = cloud_msg(
            Operation::Update,
            "default/rule/r1",
            json!({"Object": {"spec": {}}, "Err": null}),
        );
        let Plan::Write { ops, .. } = plan(&msg, &resources()) else {
            panic!()
        };
        assert_eq!(ops.len(), 1);
        assert!(matches!(&ops[0], WriteOp::PutMeta { value, .. } if value == "{\"spec\":{}}"));
    }

    #[test]
    fn deletes_check_the_uid() {
        let msg = cloud_msg(
            Operation::Delete,
            "default/pod/p",
            json!({"metadata": {"uid": "u1"}}),
        );
        let Plan::Write { ops, after } = plan(&msg, &resources()) else {
            panic!()
        };
        assert_eq!(after, After::Ack);
        assert!(matches!(&ops[0], WriteOp::Delete { expect: Expect::Uid(u), .. } if u == "u1"));
        assert!(matches!(&ops[1], WriteOp::DeleteMeta { key } if key == "default/pod/p"));
    }

    #[test]
    fn cluster_scoped_nodes_and_local_registration() {
        let node = json!({"metadata": {"name": "edge-1"}});
        let msg = Message::new("edged", "meta", Operation::Insert, "default/node/edge-1")
            .with_content(node);
        let Plan::Write { ops, after } = plan(&msg, &resources()) else {
            panic!()
        };
        assert_eq!(after, After::Register);
        let WriteOp::Put {
            key, expect, value, ..
        } = &ops[0]
        else {
            panic!()
        };
        assert_eq!(key, &ObjectKey::new(Gvr::core("nodes"), None, "edge-1"));
        assert_eq!(expect, &Expect::Absent);
        assert!(value["metadata"].get("namespace").is_none());
    }

    #[test]
    fn node_status_events_queries_and_oddities() {
        let status = Message::new(
            "edged",
            "meta",
            Operation::Update,
            "default/nodestatus/edge-1",
        )
        .with_content(json!({"UID": "", "Status": {"phase": "Running"}}));
        assert!(matches!(
            plan(&status, &resources()),
            Plan::NodeStatus { status, meta_key, .. } if status["phase"] == "Running" && meta_key == "default/node/edge-1"
        ));
        let event = Message::new("edged", "meta", Operation::Insert, "default/event/e1")
            .with_content(json!({}));
        assert_eq!(plan(&event, &resources()), Plan::Forward);
        let query = Message::new("twin", "meta", Operation::Query, "default/configmap/cm");
        let Plan::Query(q) = plan(&query, &resources()) else {
            panic!()
        };
        assert!(q.goes_remote());
        assert!(q.object.is_some());
        let list = Message::new("twin", "meta", Operation::Query, "default/pod");
        let Plan::Query(q) = plan(&list, &resources()) else {
            panic!()
        };
        assert!(!q.goes_remote());
        assert_eq!((q.name, q.meta_key.as_str()), (None, "default/pod"));
        let weird = cloud_msg(Operation::parse("frobnicate"), "default/pod/p", json!({}));
        assert!(matches!(plan(&weird, &resources()), Plan::Refuse(_)));
        let not_object = cloud_msg(Operation::Update, "default/pod/p", json!("text"));
        assert!(matches!(plan(&not_object, &resources()), Plan::Refuse(_)));
        let bad = cloud_msg(Operation::Update, "", json!({}));
        assert!(matches!(plan(&bad, &resources()), Plan::Refuse(_)));
        let conn = Message::new("websocket", "meta", Operation::Connect, "node/connection");
        assert!(matches!(plan(&conn, &resources()), Plan::Ignore(_)));
    }
}
