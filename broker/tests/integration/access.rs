//! Who may connect and which topics they may use: passwords, anonymous
//! clients, and the ACL with `${clientid}` rules.

#![allow(clippy::unwrap_used, reason = "test")]

use crate::support;

use broker::{AclAction, AclPermission, AclRule, Broker, BrokerSettings};
use rumqttc::{ConnectReturnCode, QoS, SubscribeReasonCode};
use support::{options, settings, start, superuser, text, Client};

/// Users dev1, dev2 and dev3 (password `<id>-secret`), and an ACL that
/// gives each client its own device topics only.
fn device_acl(dir: &std::path::Path) -> BrokerSettings {
    let mut config = Broker::default();
    for id in ["dev1", "dev2", "dev3"] {
        config.users.insert(id.into(), format!("{id}-secret"));
    }
    config.acl.deny_by_default = true;
    config.acl.rules.push(AclRule {
        permission: AclPermission::Allow,
        username: None,
        client_id: None,
        action: AclAction::All,
        topics: vec!["$hw/events/device/default/${clientid}/#".into()],
    });
    let mut settings = settings(dir, config);
    settings.bus_username = "edgecore-bus".into();
    settings.bus_password = "bus-secret".into();
    settings
}

fn device(addr: std::net::SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut options = options(addr, id);
    options.set_credentials(id, format!("{id}-secret"));
    options
}

#[tokio::test]
async fn passwords_are_checked_and_anonymous_clients_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(device_acl(dir.path())).await;
    let addr = broker.tcp_addr();

    Client::connected(device(addr, "dev1"))
        .await
        .disconnect()
        .await;
    let mut bus = options(addr, "bus");
    bus.set_credentials("edgecore-bus", "bus-secret");
    Client::connected(bus).await.disconnect().await;

    let mut wrong = options(addr, "dev1");
    wrong.set_credentials("dev1", "not-the-secret");
    assert_eq!(
        Client::connect(wrong).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    let mut unknown = options(addr, "who");
    unknown.set_credentials("who", "whatever");
    assert_eq!(
        Client::connect(unknown).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    let anonymous = options(addr, "anon");
    assert_eq!(
        Client::connect(anonymous).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    broker.stop();
}

#[tokio::test]
async fn acl_keeps_devices_to_their_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(device_acl(dir.path())).await;
    let addr = broker.tcp_addr();
    let own = "$hw/events/device/default/dev1/twin/update";
    let others = "$hw/events/device/default/dev2/twin/update";

    let mut dev1 = Client::connected(device(addr, "dev1")).await;
    let mut dev2 = Client::connected(device(addr, "dev2")).await;
    dev2.subscribed("$hw/events/device/default/dev2/#", QoS::AtLeastOnce)
        .await;
    let mut edge = Client::connected(superuser(&broker, "edgecore")).await;
    edge.subscribed("$hw/events/device/+/+/twin/+", QoS::AtLeastOnce)
        .await;

    // Its own topics, both ways.
    dev1.subscribed("$hw/events/device/default/dev1/twin/+", QoS::AtLeastOnce)
        .await;
    dev1.publish(own, QoS::AtLeastOnce, false, "mine").await;
    assert_eq!(text(&edge.next_publish().await), "mine");
    assert_eq!(text(&dev1.next_publish().await), "mine");

    // Not dev2's: SUBACK failure, alone or through a wildcard.
    for filter in [
        "$hw/events/device/default/dev2/twin/+",
        "$hw/events/device/default/+/twin/update",
        "$hw/#",
    ] {
        assert_eq!(
            dev1.subscribe(filter, QoS::AtLeastOnce).await,
            SubscribeReasonCode::Failure,
            "{filter}"
        );
    }
    // A refused PUBLISH is acknowledged and dropped: dev2 next sees what
    // edgecore sent after it.
    dev1.publish(others, QoS::AtLeastOnce, false, "forged")
        .await;
    edge.publish(others, QoS::AtLeastOnce, false, "from edgecore")
        .await;
    assert_eq!(text(&dev2.next_publish().await), "from edgecore");
    broker.stop();
}

/// rmqtt-acl's per-client topic tables lost a reconnecting device's rights
/// now and then (the old connection's clean-up after the new one's set-up);
/// the topic ACL here keeps no such state.
#[tokio::test]
async fn a_device_that_reconnects_keeps_its_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(device_acl(dir.path())).await;
    let addr = broker.tcp_addr();
    let mut current = Client::connected(device(addr, "dev3")).await;
    for round in 0..30 {
        // Take the session over while the old connection is still up.
        let mut next = Client::connected(device(addr, "dev3")).await;
        let filter = format!("$hw/events/device/default/dev3/round/{round}");
        assert!(
            matches!(
                next.subscribe(&filter, QoS::AtLeastOnce).await,
                SubscribeReasonCode::Success(_)
            ),
            "round {round}"
        );
        current.kill();
        current = next;
    }
    broker.stop();
}
