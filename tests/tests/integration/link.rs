//! The cloud–edge link end to end: real cloudcore and edgecore (in-process,
//! all sockets on 127.0.0.1 port 0), joined with a token, over WebSocket and
//! QUIC, through proxies that drop or blackhole the link.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use std::time::{Duration, Instant};

use proto::{Message, Operation};
use tests::config::{self, Via};
use tests::link::{metric, Cloud, Edge};
use tests::proxy::{Mode, TcpProxy, UdpProxy};
use tests::{eventually, DEFAULT_PATIENCE};

const PATIENCE: Duration = Duration::from_secs(30);

async fn join_connect_and_exchange(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let mut cloud = Cloud::start(config::cloud(&dir.path().join("cloud"), 30)).await;
    let server = match via {
        Via::WebSocket => cloud.addrs.websocket.unwrap(),
        Via::Quic => cloud.addrs.quic.unwrap(),
    };
    let edge_dir = dir.path().join("edge");
    let cfg = config::edge(
        &edge_dir,
        "edge-1",
        &cloud.token,
        cloud.addrs.https.unwrap(),
        server,
        via,
        15,
    );
    let edge = Edge::start(cfg).await;
    edge.wait_connected(true, PATIENCE).await;
    assert!(
        edge_dir.join("certs/server.crt").exists(),
        "joined: certificate written"
    );

    // Down: a configmap reaches the edge's MetaManager stand-in, which acks it.
    cloud.send_configmaps("edge-1", 1, 1).await;
    eventually(
        "configmap applied at the edge",
        DEFAULT_PATIENCE,
        || async { (edge.applied_count() == 1).then_some(()) },
    )
    .await;
    eventually("ack counted by the cloud", DEFAULT_PATIENCE, || async {
        let text = cloud.metrics().await;
        (metric(&text, "cloudhub_acks_total", "") >= Some(1.0)).then_some(())
    })
    .await;

    // Up: a node status update reaches the cloud's edgecontroller with the node prefix.
    let up = Message::new(
        "edged",
        "resource",
        Operation::Update,
        "default/nodestatus/edge-1",
    )
    .with_content(serde_json::json!({"status": "ok"}));
    edge.bus.send("websocket", up.clone()).await.unwrap();
    let got = tokio::time::timeout(PATIENCE, cloud.upstream.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.resource(), "node/edge-1/default/nodestatus/edge-1");
    assert_eq!(got.id(), up.id());
    eventually(
        "upstream acked and removed from the outbox",
        DEFAULT_PATIENCE,
        || async { (edge.hub.outbox_len() == 0).then_some(()) },
    )
    .await;

    edge.stop().await;
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_joins_with_a_token_and_exchanges_messages_over_websocket() {
    join_connect_and_exchange(Via::WebSocket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_joins_with_a_token_and_exchanges_messages_over_quic() {
    join_connect_and_exchange(Via::Quic).await;
}

/// Sends 1,000 configmaps in rounds while the link is cut and restored;
/// every one is applied exactly once at the edge.
async fn thousand_messages_across_cuts(via: Via, cuts: &[Mode]) {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(config::cloud(&dir.path().join("cloud"), 2)).await;
    let tcp = TcpProxy::start(cloud.addrs.websocket.unwrap())
        .await
        .unwrap();
    let udp = UdpProxy::start(cloud.addrs.quic.unwrap()).await.unwrap();
    let server = match via {
        Via::WebSocket => tcp.addr(),
        Via::Quic => udp.addr(),
    };
    let set = |mode| match via {
        Via::WebSocket => tcp.set(mode),
        Via::Quic => udp.set(mode),
    };
    let cfg = config::edge(
        &dir.path().join("edge"),
        "edge-1",
        &cloud.token,
        cloud.addrs.https.unwrap(),
        server,
        via,
        1,
    );
    let edge = Edge::start(cfg).await;
    edge.wait_connected(true, PATIENCE).await;

    let rounds = cuts.len() as u64 + 1;
    let per_round = 1000 / rounds;
    let mut next_rv = 1;
    for (i, cut) in cuts.iter().enumerate() {
        cloud.send_configmaps("edge-1", next_rv, per_round).await;
        next_rv += per_round;
        set(*cut);
        edge.wait_connected(false, PATIENCE).await;
        set(Mode::Pass);
        edge.wait_connected(true, PATIENCE).await;
        eprintln!(
            "round {i}: cut with {cut:?} and restored; {} applied so far",
            edge.applied_count()
        );
    }
    cloud
        .send_configmaps("edge-1", next_rv, 1000 - (next_rv - 1))
        .await;

    eventually(
        "all 1,000 configmaps applied",
        Duration::from_secs(120),
        || async { (edge.applied_count() == 1000).then_some(()) },
    )
    .await;
    {
        let applied = edge.applied.lock().unwrap();
        assert!(
            applied.applies.values().all(|n| *n == 1),
            "an object was applied twice"
        );
        eprintln!(
            "{via:?}: 1000 objects applied once each; {} deliveries in all ({} duplicates re-acked)",
            applied.received,
            applied.received - 1000
        );
    }
    edge.stop().await;
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_messages_survive_dropped_and_blackholed_websocket_links() {
    thousand_messages_across_cuts(
        Via::WebSocket,
        &[Mode::Drop, Mode::Blackhole, Mode::Drop, Mode::Blackhole],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_messages_survive_blackholed_quic_links() {
    thousand_messages_across_cuts(
        Via::Quic,
        &[Mode::Blackhole, Mode::Blackhole, Mode::Blackhole],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_link_is_noticed_within_two_heartbeats_and_redialled() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(config::cloud(&dir.path().join("cloud"), 30)).await;
    let proxy = TcpProxy::start(cloud.addrs.websocket.unwrap())
        .await
        .unwrap();
    let heartbeat = Duration::from_secs(1);
    let cfg = cloud.edge_config(&dir.path().join("edge"), proxy.addr());
    let edge = Edge::start(cfg).await;
    edge.wait_connected(true, PATIENCE).await;

    proxy.set(Mode::Blackhole);
    let cut = Instant::now();
    edge.wait_connected(false, PATIENCE).await;
    let noticed = cut.elapsed();
    eprintln!("blackhole noticed after {noticed:?} (heartbeat {heartbeat:?})");
    // Two heartbeats, plus scheduling slack for a loaded 2-core machine.
    assert!(
        noticed <= heartbeat * 2 + Duration::from_millis(1500),
        "noticed only after {noticed:?}"
    );

    proxy.set(Mode::Pass);
    edge.wait_connected(true, PATIENCE).await;
    edge.stop().await;
    cloud.stop().await;
}
