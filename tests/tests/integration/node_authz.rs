//! Node authorization end to end: a real cloudcore (authorization on, its
//! default) on its embedded API with stand-ins for EdgeController and
//! DeviceController, objects made with kube-rs, and a real edgecore that
//! joined as `edge-b`, whose bus the test drives.
//!
//! Node B asks for node A's configmap, secret and pod, reports a twin of
//! A's device, and writes A's node status and Lease: each gets an `error`
//! reply saying "forbidden", none reaches a stand-in, and
//! `cloudhub_dropped_messages_total{reason="unauthorized"}` counts them.
//! B's own node status, a configmap B's pod uses and a report of B's device
//! do reach the stand-ins.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use beehive::Bus;
use crds::Device;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::PostParams;
use kube::Api;
use proto::{Message, Operation};
use serde_json::{json, Value};
use tests::config::{self, Via};
use tests::eventually;
use tests::link::{metric, start_connected_edge_with, Cloud};
use tokio::sync::{mpsc, Mutex};

const PATIENCE: Duration = Duration::from_secs(30);
/// How long one message may take to be refused or delivered.
const ONE_MESSAGE: Duration = Duration::from_secs(10);
const UNAUTHORIZED: &str = "reason=\"unauthorized\"";

/// Creates `object` (JSON) through `api`.
async fn create<K>(api: &Api<K>, object: Value)
where
    K: kube::Resource + Clone + std::fmt::Debug + k8s_openapi::serde::de::DeserializeOwned,
    K: k8s_openapi::serde::Serialize,
{
    let object: K = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

/// Edge nodes `edge-a` and `edge-b`; on each a pod using a configmap (and
/// on A a secret), and a Device. A's objects are created first, so once the
/// cloud's reflectors hold B's, they hold A's.
async fn create_objects(client: &kube::Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    for name in ["edge-a", "edge-b"] {
        create(
            &nodes,
            json!({"metadata": {"name": name, "labels": {"node-role.kubernetes.io/edge": ""}}}),
        )
        .await;
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let devices: Api<Device> = Api::namespaced(client.clone(), "default");
    create(
        &configmaps,
        json!({"metadata": {"name": "cm-a"}, "data": {"k": "a"}}),
    )
    .await;
    create(
        &secrets,
        json!({"metadata": {"name": "secret-a"}, "stringData": {"k": "a"}}),
    )
    .await;
    create(
        &configmaps,
        json!({"metadata": {"name": "cm-b"}, "data": {"k": "b"}}),
    )
    .await;
    for (pod, node, volumes) in [
        (
            "pod-a",
            "edge-a",
            json!([{"name": "c", "configMap": {"name": "cm-a"}},
                   {"name": "s", "secret": {"secretName": "secret-a"}}]),
        ),
        (
            "pod-b",
            "edge-b",
            json!([{"name": "c", "configMap": {"name": "cm-b"}}]),
        ),
    ] {
        create(
            &pods,
            json!({"metadata": {"name": pod}, "spec": {"nodeName": node, "volumes": volumes,
                   "containers": [{"name": "app", "image": "busybox"}]}}),
        )
        .await;
    }
    for (device, node) in [("dev-a", "edge-a"), ("dev-b", "edge-b")] {
        create(
            &devices,
            json!({"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
                   "metadata": {"name": device}, "spec": {"nodeName": node}}),
        )
        .await;
    }
}

/// What became of one upstream message.
#[derive(Debug)]
enum Fate {
    /// The cloud answered with this `error` reply.
    Refused(Box<Message>),
    /// A stand-in module got it.
    Delivered,
}

/// Edge B's bus and what can come back: twin-group replies at the edge,
/// and what the cloud's stand-ins receive (every id they ever saw).
struct Probe {
    bus: Bus,
    twin_replies: Mutex<mpsc::Receiver<Message>>,
    edgecontroller: Mutex<mpsc::Receiver<Message>>,
    devicecontroller: Mutex<mpsc::Receiver<Message>>,
    seen: Mutex<BTreeSet<String>>,
}

impl Probe {
    /// Sends `msg` up from the edge and waits until it is refused or a
    /// stand-in gets it; `None` if neither happens within [`ONE_MESSAGE`].
    async fn fate(&self, msg: Message) -> Option<Fate> {
        let id = msg.id().to_owned();
        let twin = msg.route.group == "twin";
        let refused = async {
            if twin {
                // Twin-group replies go to the edge's twin group.
                self.bus.send("websocket", msg).await.unwrap();
                let mut replies = self.twin_replies.lock().await;
                loop {
                    let reply = replies.recv().await?;
                    if reply.parent_id() == Some(id.as_str()) {
                        return Some(reply);
                    }
                }
            } else {
                self.bus.request("websocket", msg, ONE_MESSAGE).await.ok()
            }
        };
        let delivered = async {
            let mut inbox = if twin {
                self.devicecontroller.lock().await
            } else {
                self.edgecontroller.lock().await
            };
            loop {
                let got = inbox.recv().await?;
                let hit = got.id() == id;
                self.seen.lock().await.insert(got.id().to_owned());
                if hit {
                    return Some(got);
                }
            }
        };
        let fate = tokio::time::timeout(ONE_MESSAGE, async {
            tokio::select! {
                reply = refused => reply.map(|r| Fate::Refused(Box::new(r))),
                got = delivered => got.map(|_| Fate::Delivered),
            }
        });
        fate.await.ok().flatten()
    }

    /// Sends `msg` until a stand-in gets it (the reflectors may not have
    /// caught up with the objects yet).
    async fn delivered_eventually(self: &Arc<Self>, what: &str, msg: impl Fn() -> Message) {
        eventually(what, PATIENCE, || {
            let (probe, msg) = (self.clone(), msg());
            async move { matches!(probe.fate(msg).await, Some(Fate::Delivered)).then_some(()) }
        })
        .await;
    }
}

fn query(resource: &str) -> Message {
    Message::new("metamanager", "resource", Operation::Query, resource)
}

fn edged(op: Operation, resource: &str, content: Value) -> Message {
    // Group `resource`: the refusal copies the group, and an edge routes
    // replies of groups `resource`/`func`/`user` only.
    Message::new("edged", "resource", op, resource).with_content(content)
}

fn node_status(node: &str) -> Message {
    edged(
        Operation::Update,
        &format!("default/nodestatus/{node}"),
        json!({"Status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
}

fn twin_report(device: &str) -> Message {
    Message::new(
        "twin",
        "twin",
        Operation::Update,
        format!("device/default/{device}/twin/edge_updated"),
    )
    .with_content(json!({"event_id": "e", "timestamp": 1,
        "twin": {"power": {"actual": {"value": "on"}, "metadata": {"type": "string"}}}}))
}

async fn unauthorized_drops(cloud: &Cloud) -> f64 {
    let text = cloud.metrics().await;
    metric(&text, "cloudhub_dropped_messages_total", UNAUTHORIZED).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_reads_and_writes_only_its_own_objects() {
    let dir = tempfile::tempdir().unwrap();
    let mut cloud_cfg = config::cloud(&dir.path().join("cloud"), 30);
    // Explicitly what this test is about (and the stand-ins it counts on).
    cloud_cfg.modules.cloud_hub.authorization.enable = true;
    cloud_cfg.modules.cloud_hub.authorization.debug = false;
    cloud_cfg.modules.edge_controller.enable = false;
    cloud_cfg.modules.device_controller.enable = false;
    let mut cloud = Cloud::start(cloud_cfg).await;
    create_objects(&cloud.kube).await;

    // An edgecore that joined as edge-b, only its EdgeHub running; the
    // test's endpoint takes what comes down to the twin group.
    let edge_cfg = config::link_only(config::edge(
        &dir.path().join("edge-b"),
        "edge-b",
        &cloud.token,
        cloud.addrs.https.unwrap(),
        cloud.addrs.websocket.unwrap(),
        Via::WebSocket,
        1,
    ));
    let mut twin_replies = None;
    let (edge, shutdown) = start_connected_edge_with(edge_cfg, |b| {
        twin_replies = Some(b.endpoint("twin", "twin"));
    })
    .await;
    let probe = Arc::new(Probe {
        bus: edge.bus(),
        twin_replies: Mutex::new(twin_replies.unwrap()),
        edgecontroller: Mutex::new(std::mem::replace(&mut cloud.upstream, mpsc::channel(1).1)),
        devicecontroller: Mutex::new(std::mem::replace(
            &mut cloud.twin_upstream,
            mpsc::channel(1).1,
        )),
        seen: Mutex::new(BTreeSet::new()),
    });

    // Positive controls, also the sign that the reflectors hold B's pod
    // and device (and so A's, created before them).
    probe
        .delivered_eventually("B's pod's configmap reaches edgecontroller", || {
            query("default/configmap/cm-b")
        })
        .await;
    probe
        .delivered_eventually("B's device report reaches devicecontroller", || {
            twin_report("dev-b")
        })
        .await;

    let before = unauthorized_drops(&cloud).await;
    let forbidden = [
        query("default/configmap/cm-a"),
        query("default/secret/secret-a"),
        query("default/pod/pod-a"),
        twin_report("dev-a"),
        node_status("edge-a"),
        edged(
            Operation::Update,
            "kube-node-lease/lease/edge-a",
            json!({"metadata": {"name": "edge-a", "namespace": "kube-node-lease"},
                   "spec": {"holderIdentity": "edge-a", "leaseDurationSeconds": 40}}),
        ),
    ];
    let forbidden_ids: BTreeSet<String> = forbidden.iter().map(|m| m.id().to_owned()).collect();
    for msg in forbidden {
        let resource = msg.resource().to_owned();
        match probe.fate(msg).await {
            Some(Fate::Refused(reply)) => {
                assert_eq!(
                    reply.route.operation,
                    Operation::Error,
                    "{resource}: {reply:?}"
                );
                let reason = reply.content.as_str().unwrap_or_default();
                assert!(reason.contains("forbidden"), "{resource}: {reason}");
            }
            other => panic!("{resource} was not refused: {other:?}"),
        }
    }

    // Sent after the refused ones on the same link: once these arrive,
    // anything refused would have arrived before them.
    for msg in [
        node_status("edge-b"),
        query("default/configmap/cm-b"),
        twin_report("dev-b"),
    ] {
        let resource = msg.resource().to_owned();
        let fate = probe.fate(msg).await;
        assert!(
            matches!(fate, Some(Fate::Delivered)),
            "{resource}: {fate:?}"
        );
    }
    let seen = probe.seen.lock().await.clone();
    assert!(
        seen.is_disjoint(&forbidden_ids),
        "a refused message reached a controller"
    );

    let after = eventually("the refusals are counted", PATIENCE, || async {
        let now = unauthorized_drops(&cloud).await;
        (now >= before + 6.0).then_some(now)
    })
    .await;
    assert_eq!(after, before + 6.0, "exactly the six refusals are counted");
    let text = cloud.metrics().await;
    for resource in [
        "configmap",
        "secret",
        "pod",
        "device_report",
        "nodestatus",
        "lease",
    ] {
        let labels = format!("resource=\"{resource}\",mode=\"enforced\"");
        assert!(
            metric(&text, "authz_refusals_total", &labels) >= Some(1.0),
            "authz_refusals_total{{{labels}}}: {text}"
        );
    }

    shutdown.cancel();
    tokio::time::timeout(PATIENCE, edge.wait())
        .await
        .unwrap()
        .unwrap();
    cloud.stop().await;
}
