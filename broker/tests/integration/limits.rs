//! The broker's limits: payload size and sessions at once.

#![allow(clippy::unwrap_used, reason = "test")]

use crate::support;

use std::time::{Duration, Instant};

use broker::Broker;
use rumqttc::{ConnectReturnCode, QoS};
use support::{options, persistent, settings, start, superuser, text, Client, PATIENCE};

const TOPIC: &str = "$hw/events/device/default/dev1/twin/update";

#[tokio::test]
async fn oversized_payloads_are_dropped_and_huge_packets_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let config = Broker {
        max_payload_bytes: 100,
        ..Broker::default()
    };
    let broker = start(settings(dir.path(), config)).await;
    let mut edge = Client::connected(superuser(&broker, "edgecore")).await;
    edge.subscribed(TOPIC, QoS::AtLeastOnce).await;
    let mut big = options(broker.tcp_addr(), "dev1");
    big.set_max_packet_size(1 << 20, 1 << 20);
    let mut device = Client::connected(big).await;

    let at_limit = "x".repeat(100);
    device
        .publish(TOPIC, QoS::AtLeastOnce, false, &at_limit)
        .await;
    assert_eq!(text(&edge.next_publish().await), at_limit);
    // Over the payload limit: acknowledged, not delivered (the next
    // message edgecore sees is the one after it).
    device
        .publish(TOPIC, QoS::AtLeastOnce, false, &"y".repeat(101))
        .await;
    device
        .publish(TOPIC, QoS::AtLeastOnce, false, "small")
        .await;
    assert_eq!(text(&edge.next_publish().await), "small");
    // Over the packet limit: the connection goes.
    device
        .client
        .publish(TOPIC, QoS::AtLeastOnce, false, vec![b'z'; 100 * 1024])
        .await
        .unwrap();
    device.closed().await;
    broker.stop();
}

#[tokio::test]
async fn sessions_are_capped_but_a_client_may_resume_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let config = Broker {
        max_connections: 2,
        ..Broker::default()
    };
    let broker = start(settings(dir.path(), config)).await;
    let addr = broker.tcp_addr();
    let away = persistent(addr, "away");
    Client::connected(away.clone()).await.disconnect().await;
    let first = Client::connected(options(addr, "first")).await;
    assert_eq!(
        Client::connect(options(addr, "third")).await.err(),
        Some(ConnectReturnCode::ServiceUnavailable),
        "the persistent session of `away` counts"
    );
    Client::connected(away).await;

    // A clean session ends with its connection, and frees its place.
    first.disconnect().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Client::connect(options(addr, "third")).await {
            Ok(_) => break,
            Err(code) => assert!(Instant::now() < deadline, "still refused: {code:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.stop();
}
