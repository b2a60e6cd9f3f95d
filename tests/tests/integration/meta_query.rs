//! MetaManager queries and node status across the link: a configmap query
//! goes to the cloud while connected (the answer is stored), and is
//! answered from the store once the link is cut; node status and the Lease
//! keep being produced offline, wait in EdgeHub's outbox (only the latest of
//! each), and reach the cloud when the link returns.

use std::time::Duration;

use proto::{Message, Operation};
use serde_json::json;
use tests::config;
use tests::eventually;
use tests::link::{start_connected_edge, Cloud};
use tests::proxy::{Mode, TcpProxy};

const PATIENCE: Duration = Duration::from_secs(30);

/// Takes upstream messages until one satisfies `want`.
async fn upstream_until(cloud: &mut Cloud, want: impl Fn(&Message) -> bool) -> Message {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let msg = tokio::time::timeout_at(deadline, cloud.upstream.recv())
            .await
            .expect("the awaited upstream message arrives")
            .expect("cloud running");
        if want(&msg) {
            return msg;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_go_remote_online_and_local_offline_and_status_waits_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut cloud_cfg = config::cloud(&dir.path().join("cloud"), 30);
    // The test answers for a configmap no pod in the API uses, which node
    // authorization would refuse to ask about.
    cloud_cfg.modules.cloud_hub.authorization.enable = false;
    let mut cloud = Cloud::start(cloud_cfg).await;
    let proxy = TcpProxy::start(cloud.addrs.websocket.unwrap())
        .await
        .unwrap();
    let mut cfg = cloud.edge_config(&dir.path().join("edge"), proxy.addr());
    cfg.modules.node_status.node_status_update_frequency = 1;
    cfg.modules.node_status.lease_duration_seconds = 4;
    cfg.modules.meta_manager.remote_query_timeout = 10;
    let (edge, shutdown) = start_connected_edge(cfg).await;
    let hub = edge.hub().unwrap().clone();

    // Registration, status and lease arrive, from edged, via MetaManager.
    let reg = upstream_until(&mut cloud, |m| {
        m.resource() == "node/edge-1/default/node/edge-1"
    })
    .await;
    assert_eq!(*reg.operation(), Operation::Insert);
    assert!(reg.content["metadata"]["labels"]
        .get("node-role.kubernetes.io/edge")
        .is_some());
    upstream_until(&mut cloud, |m| {
        m.resource() == "node/edge-1/default/nodestatus/edge-1"
    })
    .await;
    upstream_until(&mut cloud, |m| {
        m.resource() == "node/edge-1/kube-node-lease/lease/edge-1"
    })
    .await;

    // Online: the query goes to the cloud, which answers; the answer is stored.
    let bus = edge.bus();
    let query = Message::new(
        "twin",
        "meta",
        Operation::Query,
        "default/configmap/settings",
    );
    let asking = tokio::spawn({
        let bus = bus.clone();
        async move {
            bus.request("metamanager", query, Duration::from_secs(20))
                .await
        }
    });
    let remote = upstream_until(&mut cloud, |m| *m.operation() == Operation::Query).await;
    assert_eq!(remote.resource(), "node/edge-1/default/configmap/settings");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default", "resourceVersion": "77", "uid": "u-settings"},
        "data": {"mode": "fast"}});
    cloud
        .bus
        .send("cloudhub", remote.reply(json!({"Object": cm, "Err": null})))
        .await
        .unwrap();
    let answer = asking.await.unwrap().expect("the query is answered");
    assert_eq!(answer.content["data"]["mode"], "fast");
    let key = kubestore::ObjectKey::new(
        kubestore::Gvr::core("configmaps"),
        Some("default"),
        "settings",
    );
    let stored = edge
        .store()
        .expect("metamanager runs")
        .get(&key)
        .await
        .unwrap()
        .expect("the answer is stored");
    assert_eq!(stored.value["data"]["mode"], "fast");

    // Offline: answered from the store at once; status piles up in the outbox.
    proxy.set(Mode::Blackhole);
    hub.connected().wait_for(|up| !*up).await.unwrap();
    let again = Message::new(
        "twin",
        "meta",
        Operation::Query,
        "default/configmap/settings",
    );
    let local = bus
        .request("metamanager", again, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(local.content["data"]["mode"], "fast");
    eventually(
        "node status and lease wait in the outbox",
        PATIENCE,
        || async { (hub.outbox_len() >= 2).then_some(()) },
    )
    .await;
    // Reports keep coming (each one updates the stored Node) but only the
    // latest status and lease wait: the outbox does not grow.
    let node_key = kubestore::ObjectKey::new(kubestore::Gvr::core("nodes"), None, "edge-1");
    let node_revision = || async {
        edge.store()
            .expect("metamanager runs")
            .get(&node_key)
            .await
            .unwrap()
            .map_or(0, |n| n.revision)
    };
    let before = node_revision().await;
    eventually("three more status reports", PATIENCE, || async {
        (node_revision().await >= before + 3).then_some(())
    })
    .await;
    assert!(
        hub.outbox_len() <= 2,
        "only the latest status and lease are queued: {}",
        hub.outbox_len()
    );

    // Back online: the queued status reaches the cloud and the outbox drains.
    while cloud.upstream.try_recv().is_ok() {}
    proxy.set(Mode::Pass);
    upstream_until(&mut cloud, |m| {
        m.resource() == "node/edge-1/default/nodestatus/edge-1"
    })
    .await;
    eventually("the outbox drains", PATIENCE, || async {
        (hub.outbox_len() < 3).then_some(())
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), edge.wait())
        .await
        .unwrap()
        .unwrap();
    cloud.stop().await;
}
