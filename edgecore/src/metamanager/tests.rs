//! MetaManager driven through a real beehive, on a real SQLite file, with
//! an endpoint standing in for EdgeHub (`websocket`).

use std::time::Duration;

use beehive::{Beehive, BeehiveBuilder, Bus};
use kubestore::{edge_resources, Gvr, ObjectKey, Resources, Store, StoreOptions};
use proto::{Message, Operation};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::MetaManager;
use crate::config::MetaManager as MetaManagerConfig;

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    bus: Bus,
    up: mpsc::Receiver<Message>,
    hive: Beehive,
    cancel: CancellationToken,
}

impl Harness {
    fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("edgecore.db"), StoreOptions::default()).unwrap();
        let mut registry = prometheus_client::registry::Registry::default();
        let mut builder = BeehiveBuilder::new();
        builder.module(MetaManager::new(
            &MetaManagerConfig::default(),
            store.clone(),
            Resources::new(edge_resources()),
            None,
            &mut registry,
        ));
        let up = builder.endpoint("websocket", "hub");
        let mut hive = builder.build().unwrap();
        let cancel = CancellationToken::new();
        hive.start(&cancel);
        Harness {
            bus: hive.bus(),
            _dir: dir,
            store,
            up,
            hive,
            cancel,
        }
    }

    async fn send(&self, msg: Message) {
        self.bus.send("metamanager", msg).await.unwrap();
    }

    async fn next_up(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(10), self.up.recv())
            .await
            .expect("a message for edgehub")
            .unwrap()
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.hive.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}

fn configmap(name: &str, rv: &str, data: &str) -> Message {
    Message::new(
        "edgecontroller",
        "resource",
        Operation::Insert,
        format!("default/configmap/{name}"),
    )
    .with_resource_version(rv)
    .with_content(json!({"kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "resourceVersion": rv},
        "data": {"v": data}}))
}

fn cm_key(name: &str) -> ObjectKey {
    ObjectKey::new(Gvr::core("configmaps"), Some("default"), name)
}

#[tokio::test]
async fn cloud_writes_are_stored_then_acked_and_not_applied_twice() {
    let mut h = Harness::start();
    let insert = configmap("cm", "5", "one");
    h.send(insert.clone()).await;
    let ack = h.next_up().await;
    assert_eq!(ack.parent_id(), Some(insert.id()));
    assert_eq!(ack.content, "OK");
    assert_eq!(*ack.operation(), Operation::Response);
    // Acked means committed.
    let stored = h.store.get(&cm_key("cm")).await.unwrap().unwrap();
    assert_eq!(stored.value["data"]["v"], "one");
    let first_revision = stored.revision;
    let meta = h
        .store
        .get_meta("default/configmap/cm")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.0, "configmap");

    // The same write again (a resend), and an older one: acked, not applied.
    h.send(insert.clone()).await;
    h.send(configmap("cm", "4", "older")).await;
    for _ in 0..2 {
        assert_eq!(h.next_up().await.content, "OK");
    }
    let stored = h.store.get(&cm_key("cm")).await.unwrap().unwrap();
    assert_eq!(
        (stored.revision, stored.value["data"]["v"].as_str()),
        (first_revision, Some("one"))
    );

    // A delete for another incarnation leaves the object; the right one removes it.
    let delete = |uid: &str| {
        Message::new(
            "edgecontroller",
            "resource",
            Operation::Delete,
            "default/configmap/cm",
        )
        .with_content(json!({"metadata": {"uid": uid}}))
    };
    h.send(delete("someone-else")).await;
    assert_eq!(h.next_up().await.content, "OK");
    assert!(h.store.get(&cm_key("cm")).await.unwrap().is_some());
    h.send(delete("uid-cm")).await;
    assert_eq!(h.next_up().await.content, "OK");
    assert!(h.store.get(&cm_key("cm")).await.unwrap().is_none());
    assert!(h
        .store
        .get_meta("default/configmap/cm")
        .await
        .unwrap()
        .is_none());
    h.stop().await;
}

#[tokio::test]
async fn bad_cloud_messages_get_an_error_reply() {
    let mut h = Harness::start();
    let bad = Message::new(
        "edgecontroller",
        "resource",
        Operation::Update,
        "default/pod/p",
    )
    .with_content(json!("not an object"));
    h.send(bad.clone()).await;
    let reply = h.next_up().await;
    assert_eq!(*reply.operation(), Operation::Error);
    assert_eq!(reply.parent_id(), Some(bad.id()));
    let unknown = Message::new(
        "edgecontroller",
        "resource",
        Operation::parse("explode"),
        "default/pod/p",
    );
    h.send(unknown).await;
    assert_eq!(*h.next_up().await.operation(), Operation::Error);
    h.stop().await;
}

#[tokio::test]
async fn local_node_messages_are_stored_and_forwarded() {
    let mut h = Harness::start();
    let register = Message::new("edged", "meta", Operation::Insert, "default/node/edge-1")
        .with_content(
            json!({"metadata": {"name": "edge-1", "labels": {"node-role.kubernetes.io/edge": ""}}}),
        );
    h.send(register.clone()).await;
    let up = h.next_up().await;
    assert_eq!(up.id(), register.id(), "forwarded as is");
    let node_key = ObjectKey::new(Gvr::core("nodes"), None, "edge-1");
    let node = h.store.get(&node_key).await.unwrap().unwrap();
    assert_eq!(node.value["kind"], "Node");

    let status = Message::new(
        "edged",
        "meta",
        Operation::Update,
        "default/nodestatus/edge-1",
    )
    .with_content(
        json!({"UID": "", "Status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    h.send(status.clone()).await;
    assert_eq!(h.next_up().await.id(), status.id());
    let node = h.store.get(&node_key).await.unwrap().unwrap();
    assert_eq!(node.value["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(
        node.value["metadata"]["labels"]["node-role.kubernetes.io/edge"],
        ""
    );

    let lease = Message::new(
        "edged",
        "meta",
        Operation::Update,
        "kube-node-lease/lease/edge-1",
    )
    .with_content(
        json!({"metadata": {"name": "edge-1", "namespace": "kube-node-lease"}, "spec": {}}),
    );
    h.send(lease).await;
    h.next_up().await;
    let lease_key = ObjectKey::new(
        Gvr::new("coordination.k8s.io", "v1", "leases"),
        Some("kube-node-lease"),
        "edge-1",
    );
    assert!(h.store.get(&lease_key).await.unwrap().is_some());

    let event =
        Message::new("edged", "meta", Operation::Insert, "default/event/e").with_content(json!({}));
    h.send(event.clone()).await;
    assert_eq!(
        h.next_up().await.id(),
        event.id(),
        "events are forwarded, never stored"
    );
    h.stop().await;
}

#[tokio::test]
async fn offline_queries_are_answered_from_the_store() {
    let mut h = Harness::start();
    h.send(configmap("a", "1", "x")).await;
    h.send(configmap("b", "2", "y")).await;
    h.next_up().await;
    h.next_up().await;
    let one = Message::new("twin", "meta", Operation::Query, "default/configmap/a");
    let reply = h
        .bus
        .request("metamanager", one, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.content["data"]["v"], "x");
    let list = Message::new("twin", "meta", Operation::Query, "default/configmap");
    let reply = h
        .bus
        .request("metamanager", list, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.content.as_array().map(Vec::len), Some(2));
    let missing = Message::new("twin", "meta", Operation::Query, "default/configmap/zz");
    let reply = h
        .bus
        .request("metamanager", missing, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(*reply.operation(), Operation::Error);
    // Types the MetaServer does not serve live in the meta table only.
    let rule = Message::new(
        "edgecontroller",
        "resource",
        Operation::Insert,
        "default/rule/r",
    )
    .with_content(json!({"spec": {"source": "s"}}));
    h.send(rule).await;
    h.next_up().await;
    let q = Message::new("twin", "meta", Operation::Query, "default/rule/r");
    let reply = h
        .bus
        .request("metamanager", q, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.content["spec"]["source"], "s");
    h.stop().await;
}
