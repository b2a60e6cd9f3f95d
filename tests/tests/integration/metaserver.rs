//! The edge MetaServer with real kubectl: objects the cloud sends reach
//! edgecore's SQLite store and are served to `kubectl get` (all
//! namespaces, one object as YAML, label and field selectors, `-w` seeing
//! later changes) while the cloud is connected, and still after the link
//! is cut. Writes are refused.

use std::time::Duration;

use proto::Operation;
use serde_json::json;
use tests::config;
use tests::eventually;
use tests::kubectl::{self, Kubectl};
use tests::link::{start_connected_edge, Cloud};
use tests::proxy::{Mode, TcpProxy};

const PATIENCE: Duration = Duration::from_secs(30);

fn pod(ns: &str, name: &str, node: &str, rv: u64) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                     "resourceVersion": rv.to_string(), "labels": {"app": name},
                     "creationTimestamp": "2026-11-21T10:00:00Z"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1.27"}]},
        "status": {"phase": "Running"}
    })
}

fn configmap(name: &str, app: &str, rv: u64) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "resourceVersion": rv.to_string(), "labels": {"app": app}},
        "data": {"k": "v"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_the_edge_cache_online_and_offline() {
    if !kubectl::available() {
        eprintln!("kubectl not installed (scripts/install-deps.sh installs it); skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(config::cloud(&dir.path().join("cloud"), 30)).await;
    let proxy = TcpProxy::start(cloud.addrs.websocket.unwrap())
        .await
        .unwrap();
    let mut cfg = cloud.edge_config(&dir.path().join("edge"), proxy.addr());
    cfg.modules.node_status.node_status_update_frequency = 1;
    let (edge, shutdown) = start_connected_edge(cfg).await;
    let hub = edge.hub().unwrap().clone();
    let k = Kubectl::http(
        edge.metaserver.expect("metaserver on"),
        &dir.path().join("kubectl"),
    );

    cloud
        .send_object(
            "edge-1",
            Operation::Insert,
            "pod",
            pod("default", "web", "edge-1", 10),
        )
        .await;
    cloud
        .send_object(
            "edge-1",
            Operation::Insert,
            "pod",
            pod("tools", "probe", "edge-2", 11),
        )
        .await;
    cloud
        .send_object(
            "edge-1",
            Operation::Insert,
            "configmap",
            configmap("cm-x", "x", 12),
        )
        .await;
    cloud
        .send_object(
            "edge-1",
            Operation::Insert,
            "configmap",
            configmap("cm-y", "y", 13),
        )
        .await;
    eventually("the objects reach the edge", PATIENCE, || async {
        let out = k.run(&["get", "configmaps", "-A"]).await;
        (out.ok && out.stdout.contains("cm-y")).then_some(())
    })
    .await;

    for phase in ["online", "offline"] {
        let all = k.ok(&["get", "pods", "-A"]).await;
        assert!(
            all.contains("web") && all.contains("probe") && all.contains("tools"),
            "{phase}: {all}"
        );
        let yaml = k
            .ok(&["get", "pod", "web", "-n", "default", "-o", "yaml"])
            .await;
        assert!(
            yaml.contains("name: web") && yaml.contains("nodeName: edge-1"),
            "{phase}: {yaml}"
        );
        let x = k.ok(&["get", "configmaps", "-l", "app=x"]).await;
        assert!(x.contains("cm-x") && !x.contains("cm-y"), "{phase}: {x}");
        let mine = k
            .ok(&[
                "get",
                "pods",
                "-A",
                "--field-selector",
                "spec.nodeName=edge-1",
            ])
            .await;
        assert!(
            mine.contains("web") && !mine.contains("probe"),
            "{phase}: {mine}"
        );
        let nodes = k.ok(&["get", "nodes"]).await;
        assert!(
            nodes.contains("edge-1"),
            "{phase}: the edge's own node is listed: {nodes}"
        );
        let refused = k.run(&["delete", "pod", "web", "-n", "default"]).await;
        assert!(
            !refused.ok && refused.stderr.contains("read-only"),
            "{phase}: {refused:?}"
        );

        if phase == "online" {
            // A watch sees a change made after it started.
            let mut watch = k.stream(&["get", "pods", "-n", "default", "-w"]);
            watch.line_with("web", PATIENCE).await;
            cloud
                .send_object(
                    "edge-1",
                    Operation::Insert,
                    "pod",
                    pod("default", "late", "edge-1", 20),
                )
                .await;
            watch.line_with("late", PATIENCE).await;
            drop(watch);

            proxy.set(Mode::Blackhole);
            hub.connected().wait_for(|up| !*up).await.unwrap();
        }
    }
    let offline = k
        .ok(&["get", "pod", "late", "-n", "default", "-o", "name"])
        .await;
    assert_eq!(offline.trim(), "pod/late");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), edge.wait())
        .await
        .unwrap()
        .unwrap();
    cloud.stop().await;
}
