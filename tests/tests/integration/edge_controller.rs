//! EdgeController end to end: a real cloudcore (EdgeController on) and two
//! real edgecores, `edge-1` behind a loopback proxy and `edge-2` direct,
//! with kube-rs as the user; on cloudcore's embedded API and, when it is
//! built (or `APIARY_TEST_KUBECONFIG` names a cluster), on Kubernetes' own
//! kube-apiserver, which cloudcore then uses through `kubeAPIConfig`.
//!
//! - both edges register: their Nodes appear with the edge label;
//! - a pod bound to edge-1 with a configmap and a secret: all three are
//!   served by edge-1's MetaServer and not by edge-2's (which has its own
//!   Node); an unreferenced configmap reaches nobody; edge-1's remote
//!   queries for its pod's configmaps are answered by EdgeController;
//! - the configmap and secret are deleted: gone at edge-1; the configmap
//!   comes back: at edge-1 again; the pod is deleted: the pod and the
//!   configmap (still in the API, referenced by nobody) are gone at edge-1;
//! - edge-1 is Ready while connected, `Unknown` within two heartbeats of a
//!   blackholed link (heartbeat 1 s, keepalive 2 s; edge-2 stays Ready),
//!   Ready again once the link returns.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use proto::{Message, Operation};
use serde_json::json;
use tests::config::{self, Via};
use tests::link::{start_connected_edge, try_http_get, Cloud};
use tests::proxy::{Mode, TcpProxy};
use tests::{cluster, eventually};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(30);
/// The edges' heartbeat, seconds; CloudHub's keepalive is two of them.
const HEARTBEAT: u32 = 1;
/// What marking a node takes beyond the keepalive: a read and a write of
/// the Node, and this test's polling.
const MARK_SLACK: Duration = Duration::from_secs(1);
const EDGE_LABEL: &str = "node-role.kubernetes.io/edge";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edge_controller_on_the_embedded_api() {
    let dir = tempfile::tempdir().unwrap();
    scenario("embedded", dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edge_controller_on_kube_apiserver() {
    let Some(target) = cluster::real().await else {
        eprintln!("note: no kube-apiserver built (bash scripts/kube-apiserver.sh); skipping");
        return;
    };
    // The operator's part on a real cluster: KubeEdge's CRDs.
    cluster::install_crds(&target.client).await;
    let dir = tempfile::tempdir().unwrap();
    scenario(target.name, dir.path(), Some(&target.kubeconfig)).await;
}

/// A started edgecore and the token that stops it.
struct Edge {
    started: edgecore::Started,
    shutdown: CancellationToken,
}

impl Edge {
    async fn start(cloud: &Cloud, dir: &Path, node: &str, server: SocketAddr) -> Edge {
        let https = cloud.addrs.https.unwrap();
        let mut cfg = config::edge(
            dir,
            node,
            &cloud.token,
            https,
            server,
            Via::WebSocket,
            HEARTBEAT,
        );
        cfg.modules.node_status.node_status_update_frequency = 1;
        cfg.modules.meta_manager.remote_query_timeout = 10;
        let (started, shutdown) = start_connected_edge(cfg).await;
        Edge { started, shutdown }
    }

    /// The whole answer to a GET on the edge's MetaServer, if it answered.
    async fn body(&self, path: &str) -> Option<String> {
        try_http_get(self.started.metaserver.unwrap(), path).await
    }

    /// The HTTP status of a GET on the edge's MetaServer, if it answered.
    async fn status(&self, path: &str) -> Option<u16> {
        let reply = self.body(path).await?;
        reply.split_whitespace().nth(1)?.parse().ok()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.started.wait().await.unwrap();
    }
}

/// Waits until each of `paths` answers `code` on `edge`'s MetaServer.
async fn served(edge: &Edge, paths: &[&str], code: u16, what: &str) {
    for path in paths {
        eventually(&format!("{what}: {path} is {code}"), PATIENCE, || async {
            (edge.status(path).await? == code).then_some(())
        })
        .await;
    }
}

/// The status of `node`'s Ready condition.
async fn ready(nodes: &Api<Node>, node: &str) -> Option<String> {
    let node = nodes.get(node).await.ok()?;
    node.status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status)
}

async fn ready_is(nodes: &Api<Node>, node: &str, want: &str, patience: Duration) {
    eventually(&format!("{node} Ready={want}"), patience, || async {
        (ready(nodes, node).await? == want).then_some(())
    })
    .await;
}

const POD: &str = "/api/v1/namespaces/default/pods/web";
const CM: &str = "/api/v1/namespaces/default/configmaps/cm-1";
const SECRET: &str = "/api/v1/namespaces/default/secrets/sec-1";

async fn scenario(target: &str, dir: &Path, kubeconfig: Option<&Path>) {
    let mut cloud_cfg = config::cloud(&dir.join("cloud"), 2 * HEARTBEAT);
    cloud_cfg.modules.edge_controller.enable = true;
    if let Some(path) = kubeconfig {
        cloud_cfg.kube_api_config.kube_config = path.display().to_string();
    }
    let cloud = Cloud::start(cloud_cfg).await;
    let ws = cloud.addrs.websocket.unwrap();
    let proxy = TcpProxy::start(ws).await.unwrap();
    let edge1 = Edge::start(&cloud, &dir.join("edge-1"), "edge-1", proxy.addr()).await;
    let edge2 = Edge::start(&cloud, &dir.join("edge-2"), "edge-2", ws).await;
    let kube = cloud.kube.clone();
    let nodes: Api<Node> = Api::all(kube.clone());

    // Both register; the Nodes carry the edge label and edge-1 is Ready.
    for name in ["edge-1", "edge-2"] {
        let node = eventually(
            &format!("{target}: Node {name} registered"),
            PATIENCE,
            || async { nodes.get(name).await.ok() },
        )
        .await;
        let labels = node.metadata.labels.unwrap_or_default();
        assert!(
            labels.contains_key(EDGE_LABEL),
            "{target}: {name}: {labels:?}"
        );
    }
    ready_is(&nodes, "edge-1", "True", PATIENCE).await;
    // Each edge gets the cloud's copy of its Node (the UID says so: the
    // edge's own registration has none).
    for (edge, name) in [(&edge1, "edge-1"), (&edge2, "edge-2")] {
        let uid = nodes.get(name).await.unwrap().metadata.uid.unwrap();
        let path = format!("/api/v1/nodes/{name}");
        eventually(
            &format!("{target}: the cloud's {name} at the edge"),
            PATIENCE,
            || async { edge.body(&path).await?.contains(&uid).then_some(()) },
        )
        .await;
    }

    objects_follow_the_pod(target, &kube, &edge1, &edge2).await;
    readiness_follows_the_link(target, &nodes, &proxy).await;

    let metrics = cloud.metrics().await;
    for (name, labels) in [
        ("edgecontroller_messages_down_total", "op=\"insert\""),
        ("edgecontroller_messages_down_total", "op=\"delete\""),
        (
            "edgecontroller_upstream_total",
            "type=\"nodestatus\",outcome=\"ok\"",
        ),
        (
            "edgecontroller_upstream_total",
            "type=\"configmap\",outcome=\"ok\"",
        ),
        (
            "edgecontroller_upstream_total",
            "type=\"configmap\",outcome=\"error\"",
        ),
        ("edgecontroller_nodes_marked_unknown_total", ""),
    ] {
        assert!(
            tests::link::metric(&metrics, name, labels).is_some_and(|n| n >= 1.0),
            "{target}: {name}{{{labels}}} counted:\n{metrics}"
        );
    }

    edge1.stop().await;
    edge2.stop().await;
    cloud.stop().await;
}

async fn objects_follow_the_pod(target: &str, kube: &Client, edge1: &Edge, edge2: &Edge) {
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "default");
    let pp = PostParams::default();
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": name}})).unwrap()
    };
    cms.create(&pp, &cm("cm-1")).await.unwrap();
    cms.create(&pp, &cm("cm-other")).await.unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "sec-1"}, "stringData": {"password": "s3cret"}
    }))
    .unwrap();
    secrets.create(&pp, &secret).await.unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "nodeName": "edge-1",
            "containers": [{"name": "c", "image": "nginx:1.27"}],
            "volumes": [
                {"name": "config", "configMap": {"name": "cm-1"}},
                {"name": "secret", "secret": {"secretName": "sec-1"}},
                {"name": "later", "configMap": {"name": "cm-missing", "optional": true}}
            ]
        }
    }))
    .unwrap();
    pods.create(&pp, &pod).await.unwrap();

    served(
        edge1,
        &[POD, CM, SECRET],
        200,
        &format!("{target}: at edge-1"),
    )
    .await;
    let body = edge1.body(SECRET).await.unwrap();
    assert!(
        body.contains("password"),
        "{target}: the secret's data: {body}"
    );
    // edge-2 is synced (it has the cloud's Node) but has none of them.
    for path in [
        POD,
        CM,
        SECRET,
        "/api/v1/namespaces/default/configmaps/cm-other",
    ] {
        assert_eq!(
            edge2.status(path).await,
            Some(404),
            "{target}: edge-2 {path}"
        );
    }
    assert_eq!(
        edge1
            .status("/api/v1/namespaces/default/configmaps/cm-other")
            .await,
        Some(404),
        "{target}: nobody references cm-other"
    );
    remote_query(target, edge1).await;

    // Deleted in the API: gone at the edge.
    let now = DeleteParams::default().grace_period(0);
    cms.delete("cm-1", &now).await.unwrap();
    secrets.delete("sec-1", &now).await.unwrap();
    served(edge1, &[CM, SECRET], 404, &format!("{target}: deleted")).await;
    // Back again (a new object): at the edge again.
    cms.create(&pp, &cm("cm-1")).await.unwrap();
    served(edge1, &[CM], 200, &format!("{target}: recreated")).await;
    // The pod goes: so does the configmap only it referenced.
    pods.delete("web", &now).await.unwrap();
    served(edge1, &[POD, CM], 404, &format!("{target}: pod deleted")).await;
    assert!(
        cms.get_opt("cm-1").await.unwrap().is_some(),
        "{target}: still in the API"
    );
}

/// edge-1's MetaManager asks the cloud for its pod's configmaps (remote
/// queries while connected): EdgeController answers with the API's copy,
/// and a missing one with an error (MetaManager then answers from its
/// store: not found either); the metrics show both answers.
async fn remote_query(target: &str, edge1: &Edge) {
    let bus = edge1.started.bus();
    let ask = |name: &str| {
        let query = Message::new(
            "twin",
            "meta",
            Operation::Query,
            format!("default/configmap/{name}"),
        );
        bus.request("metamanager", query, PATIENCE)
    };
    let answer = ask("cm-1").await.unwrap();
    assert_eq!(
        answer.operation(),
        &Operation::Response,
        "{target}: {answer:?}"
    );
    assert_eq!(answer.content["data"]["k"], "cm-1", "{target}: {answer:?}");
    let missing = ask("cm-missing").await.unwrap();
    assert_eq!(
        missing.operation(),
        &Operation::Error,
        "{target}: {missing:?}"
    );
}

async fn readiness_follows_the_link(target: &str, nodes: &Api<Node>, proxy: &TcpProxy) {
    ready_is(nodes, "edge-1", "True", PATIENCE).await;
    let cut = tokio::time::Instant::now();
    proxy.set(Mode::Blackhole);
    ready_is(nodes, "edge-1", "Unknown", PATIENCE).await;
    let took = cut.elapsed();
    let bound = Duration::from_secs((2 * HEARTBEAT).into()) + MARK_SLACK;
    assert!(
        took <= bound,
        "{target}: Unknown after {took:?}, more than two heartbeats (+{MARK_SLACK:?})"
    );
    eprintln!("{target}: edge-1 Unknown {took:?} after the link was blackholed");
    assert_eq!(
        ready(nodes, "edge-2").await.as_deref(),
        Some("True"),
        "{target}: edge-2 is not affected"
    );
    proxy.set(Mode::Pass);
    ready_is(nodes, "edge-1", "True", PATIENCE).await;
}
