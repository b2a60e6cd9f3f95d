//! EventBus on a real beehive against a real mosquitto on 127.0.0.1, with
//! endpoints standing in for DeviceTwin (`twin`) and EdgeHub (`websocket`),
//! `mosquitto_pub` and a rumqttc client as the devices: routing both ways,
//! the cloud's subscriptions across module restarts, broker restarts (hard
//! and graceful), device messages kept while edgecore is down, and bad or
//! oversized input; also the embedded (rmqtt) broker as daemon.rs wires it.
//!
//! No fixed sleeps: every wait is for a message or a metric, with a
//! deadline.

#![allow(clippy::unwrap_used, reason = "test")]

use crate::mosquitto;

use std::time::{Duration, Instant};

use beehive::{Beehive, BeehiveBuilder, Bus};
use edgecore::config::EventBus as EventBusConfig;
use edgecore::eventbus::{EventBus, EventBusSettings, MqttEndpoint};
use mosquitto::{free_port, publish, Mosquitto};
use prometheus_client::registry::Registry;
use proto::{Message, Operation};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(15);
const NODE: &str = "edge-1";
const TWIN_TOPIC: &str = "$hw/events/device/default/dev1/twin/update";
const PROBE_TOPIC: &str = "$hw/events/device/default/probe/twin/update";

// ---------------------------------------------------------------- harness

/// EventBus on a beehive, with `twin` and `websocket` endpoints.
struct Edge {
    hive: Beehive,
    cancel: CancellationToken,
    bus: Bus,
    twin: mpsc::Receiver<Message>,
    cloud: mpsc::Receiver<Message>,
    registry: Registry,
}

/// Settings for the broker on `port`, as for the embedded one (mqttMode 0).
fn settings(port: u16) -> EventBusSettings {
    let config = EventBusConfig::default();
    fast(EventBusSettings::with_endpoint(&config, MqttEndpoint::new("127.0.0.1", port)).unwrap())
}

/// Quick redials and keepalives, for tests.
fn fast(mut s: EventBusSettings) -> EventBusSettings {
    s.backoff_base = Duration::from_millis(50);
    s.backoff_max = Duration::from_millis(300);
    s.keep_alive = Duration::from_secs(5);
    s
}

impl Edge {
    fn start(settings: EventBusSettings, db: &str) -> Edge {
        let mut registry = Registry::default();
        let mut builder = BeehiveBuilder::new();
        builder.module(EventBus::new(settings, db, NODE, &mut registry));
        let twin = builder.endpoint("twin", "twin");
        let cloud = builder.endpoint("websocket", "hub");
        let mut hive = builder.build().unwrap();
        let cancel = CancellationToken::new();
        hive.start(&cancel);
        Edge {
            bus: hive.bus(),
            hive,
            cancel,
            twin,
            cloud,
            registry,
        }
    }

    /// Starts as [`start`](Self::start) and returns once EventBus's own
    /// subscriptions are in place on the broker at `port`.
    async fn ready(settings: EventBusSettings, db: &str, port: u16) -> Edge {
        let mut edge = Edge::start(settings, db);
        edge.until_subscribed(port, PROBE_TOPIC, Side::Twin).await;
        edge
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.hive.shutdown(Duration::from_secs(5)).await.unwrap();
    }

    /// A metric's value (0 when absent), e.g.
    /// `eventbus_dropped_total{reason="oversized"}`.
    fn metric(&self, series: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    async fn until_metric(&self, series: &str, want: f64) {
        let deadline = Instant::now() + PATIENCE;
        while self.metric(series) != want {
            assert!(
                Instant::now() < deadline,
                "{series} stayed at {}, not {want}",
                self.metric(series)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Publishes probes on `topic` until one reaches `which` (so the
    /// subscription is in place); later copies of probes are skipped by
    /// [`next`].
    async fn until_subscribed(&mut self, port: u16, topic: &str, which: Side) {
        let deadline = Instant::now() + PATIENCE;
        for n in 0.. {
            assert!(Instant::now() < deadline, "{topic} never arrived");
            publish(port, topic, format!("probe-{n}").as_bytes(), 0).await;
            let rx = self.side(which);
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
                return;
            }
        }
    }

    fn side(&mut self, which: Side) -> &mut mpsc::Receiver<Message> {
        match which {
            Side::Twin => &mut self.twin,
            Side::Cloud => &mut self.cloud,
        }
    }

    /// The next message on `which` that is not a probe.
    async fn next(&mut self, which: Side) -> Message {
        let rx = self.side(which);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let msg = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("a message on the bus")
                .unwrap();
            if !is_probe(&msg) {
                return msg;
            }
        }
    }

    async fn request(&self, msg: Message) -> Message {
        self.bus
            .request("eventbus", msg, Duration::from_secs(10))
            .await
            .unwrap()
    }
}

#[derive(Clone, Copy)]
enum Side {
    Twin,
    Cloud,
}

fn is_probe(msg: &Message) -> bool {
    msg.content
        .as_str()
        .is_some_and(|c| c.starts_with("probe-"))
}

fn from_cloud(op: Operation, resource: &str, content: Value) -> Message {
    Message::new("router_eventbus", "user", op, resource).with_content(content)
}

/// An MQTT client standing for a device that listens.
struct Device {
    _client: AsyncClient,
    rx: mpsc::Receiver<rumqttc::Publish>,
    task: tokio::task::JoinHandle<()>,
}

impl Device {
    /// Connects as `id` (`persistent`: clean session off) and subscribes to
    /// `filter` at QoS 1, returning once the broker acked the subscription.
    async fn listen(port: u16, id: &str, persistent: bool, filter: &str) -> Device {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_clean_session(!persistent);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let (tx, rx) = mpsc::channel(64);
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(s) = subscribed_tx.take() {
                            let _ = s.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send(p).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // The broker is restarting: redial.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(PATIENCE, subscribed)
            .await
            .expect("subscribed in time")
            .unwrap();
        Device {
            _client: client,
            rx,
            task,
        }
    }

    async fn next(&mut self) -> rumqttc::Publish {
        tokio::time::timeout(PATIENCE, self.rx.recv())
            .await
            .expect("a message for the device")
            .unwrap()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn temp_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgecore.db").display().to_string();
    (dir, path)
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn device_messages_reach_the_twin_and_the_cloud() {
    let broker = Mosquitto::start().await;
    let (_dir, db) = temp_db();
    // mqttMode 2: the broker from mqttServerExternal.
    let config = EventBusConfig {
        mqtt_mode: 2,
        mqtt_server_external: format!("tcp://127.0.0.1:{}", broker.port()),
        ..EventBusConfig::default()
    };
    let mut edge = Edge::ready(
        fast(EventBusSettings::external(&config).unwrap()),
        &db,
        broker.port(),
    )
    .await;
    edge.until_metric("eventbus_connected", 1.0).await;

    publish(
        broker.port(),
        TWIN_TOPIC,
        br#"{"event_id":"e1","twin":{}}"#,
        1,
    )
    .await;
    let msg = edge.next(Side::Twin).await;
    assert_eq!(msg.route.source, "bus");
    assert_eq!(msg.route.group, "user");
    assert_eq!(msg.route.operation, Operation::Response);
    assert_eq!(msg.route.resource, TWIN_TOPIC);
    assert_eq!(msg.content, json!(r#"{"event_id":"e1","twin":{}}"#));

    let state = "$hw/events/device/default/dev1/state/update";
    publish(broker.port(), state, br#"{"state":"online"}"#, 1).await;
    assert_eq!(edge.next(Side::Twin).await.route.resource, state);
    let membership = "$hw/events/node/edge-1/membership/get";
    publish(broker.port(), membership, b"{}", 1).await;
    assert_eq!(edge.next(Side::Twin).await.route.resource, membership);

    publish(broker.port(), "foo/user/bar", b"hello", 1).await;
    let up = edge.next(Side::Cloud).await;
    assert_eq!(up.route.operation, Operation::Upload);
    assert_eq!(up.route.resource, "foo/user/bar");
    assert_eq!(
        (up.route.source.as_str(), up.route.group.as_str()),
        ("bus", "user")
    );
    assert_eq!(up.content, json!("hello"));

    // Binary goes up as base64; uploads and records too.
    publish(broker.port(), "foo/user/bin", &[0xff, 0x00, 0x01], 1).await;
    assert_eq!(edge.next(Side::Cloud).await.content, json!("/wAB"));
    publish(broker.port(), "$hw/events/upload/x", b"u", 1).await;
    assert_eq!(
        edge.next(Side::Cloud).await.route.resource,
        "$hw/events/upload/x"
    );
    publish(broker.port(), "SYS/dis/upload_records", b"r", 1).await;
    assert_eq!(
        edge.next(Side::Cloud).await.route.resource,
        "SYS/dis/upload_records"
    );

    assert!(edge.metric("eventbus_messages_received_total{route=\"twin\"}") >= 4.0);
    assert_eq!(
        edge.metric("eventbus_messages_received_total{route=\"cloud\"}"),
        4.0
    );
    edge.stop().await;
}

#[tokio::test]
async fn bus_messages_are_published_and_results_do_not_loop_back() {
    let broker = Mosquitto::start().await;
    let (_dir, db) = temp_db();
    let mut edge = Edge::ready(settings(broker.port()), &db, broker.port()).await;
    let mut device = Device::listen(broker.port(), "device", false, "#").await;
    let mut auth = Device::listen(broker.port(), "auth", false, "$hw/events/node/#").await;
    let mut results = Device::listen(broker.port(), "results", false, "$hw/events/device/#").await;

    // DeviceTwin's publish of a twin result.
    let result_topic = "$hw/events/device/default/dev1/twin/update/result";
    let twin_publish = Message::new("twin", "twin", Operation::Publish, result_topic)
        .with_content(json!({"event_id": "e1", "twin": {}}));
    assert_eq!(edge.request(twin_publish).await.content, json!("OK"));
    let got = results.next().await;
    assert_eq!(got.topic, result_topic);
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert_eq!(
        serde_json::from_slice::<Value>(&got.payload).unwrap(),
        json!({"event_id": "e1", "twin": {}})
    );

    // The cloud's publish with a string content: published as is.
    edge.bus
        .send(
            "eventbus",
            from_cloud(Operation::Publish, "app/data", json!("plain text")),
        )
        .await
        .unwrap();
    let got = device.next().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("app/data", &b"plain text"[..])
    );

    // `message`: the message part on its topic.
    let content = json!({"message": {"topic": "app/msg", "data": 7}});
    edge.request(from_cloud(Operation::Message, "", content.clone()))
        .await;
    let got = device.next().await;
    assert_eq!(got.topic, "app/msg");
    assert_eq!(
        serde_json::from_slice::<Value>(&got.payload).unwrap(),
        content["message"]
    );

    // `get_result` on auth_info.
    edge.request(from_cloud(
        Operation::GetResult,
        "auth_info",
        json!({"token": "t"}),
    ))
    .await;
    let got = auth.next().await;
    assert_eq!(got.topic, "$hw/events/node/edge-1/authInfo/get/result");

    // The result published above did not come back to DeviceTwin: the next
    // twin message is the device's own update.
    publish(broker.port(), TWIN_TOPIC, b"{}", 1).await;
    assert_eq!(edge.next(Side::Twin).await.route.resource, TWIN_TOPIC);
    assert!(edge.metric("eventbus_messages_published_total") >= 4.0);
    edge.stop().await;
}

#[tokio::test]
async fn cloud_subscriptions_survive_a_module_restart() {
    let broker = Mosquitto::start().await;
    let (_dir, db) = temp_db();
    let mut edge = Edge::start(settings(broker.port()), &db);
    edge.until_metric("eventbus_connected", 1.0).await;
    let reply = edge
        .request(from_cloud(
            Operation::Subscribe,
            "custom/+/data",
            Value::Null,
        ))
        .await;
    assert_eq!(reply.content, json!("OK"));
    edge.until_subscribed(broker.port(), "custom/a/data", Side::Cloud)
        .await;
    edge.stop().await;

    // Another client id: the broker has no session for it, so only the
    // stored topic can bring the subscription back.
    let mut second = settings(broker.port());
    second.client_id = "second-run".into();
    let mut edge = Edge::start(second, &db);
    edge.until_subscribed(broker.port(), "custom/b/data", Side::Cloud)
        .await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: String = conn
        .query_row("SELECT topic FROM sub_topics", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, "custom/+/data");

    // Unsubscribed: forgotten, and the broker stops sending it.
    let reply = edge
        .request(from_cloud(
            Operation::Unsubscribe,
            "custom/+/data",
            Value::Null,
        ))
        .await;
    assert_eq!(reply.content, json!("OK"));
    let left: i64 = conn
        .query_row("SELECT count(*) FROM sub_topics", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    // The unsubscribe is queued before the probe's subscription check, so
    // once a later message arrives the earlier one would have too.
    edge.until_subscribed(broker.port(), PROBE_TOPIC, Side::Twin)
        .await;
    publish(broker.port(), "custom/c/data", b"late", 1).await;
    publish(broker.port(), "foo/user/marker", b"marker", 1).await;
    let next = edge.next(Side::Cloud).await;
    assert_eq!(next.route.resource, "foo/user/marker", "{next:?}");
    edge.stop().await;
}

#[tokio::test]
async fn a_hard_broker_restart_is_survived_with_subscriptions_and_publishes() {
    let mut broker = Mosquitto::start().await;
    let (_dir, db) = temp_db();
    let mut edge = Edge::start(settings(broker.port()), &db);
    edge.until_metric("eventbus_connected", 1.0).await;
    edge.request(from_cloud(Operation::Subscribe, "custom/#", Value::Null))
        .await;
    edge.until_subscribed(broker.port(), "custom/x", Side::Cloud)
        .await;

    // SIGKILL: the broker forgets every session and subscription.
    broker.kill();
    edge.until_metric("eventbus_connected", 0.0).await;
    broker.restart().await;
    edge.until_metric("eventbus_connected", 1.0).await;
    edge.until_subscribed(broker.port(), PROBE_TOPIC, Side::Twin)
        .await;
    edge.until_subscribed(broker.port(), "custom/y", Side::Cloud)
        .await;
    publish(broker.port(), TWIN_TOPIC, b"{}", 1).await;
    assert_eq!(edge.next(Side::Twin).await.route.resource, TWIN_TOPIC);
    edge.stop().await;
}

#[tokio::test]
async fn bus_publishes_wait_for_a_broker_that_restarts() {
    let mut broker = Mosquitto::start().await;
    let (_dir, db) = temp_db();
    let edge = Edge::start(settings(broker.port()), &db);
    edge.until_metric("eventbus_connected", 1.0).await;
    // A device with a persistent session: the broker keeps what it misses.
    let mut device = Device::listen(broker.port(), "lamp", true, "lamp/#").await;

    // SIGTERM: mosquitto saves sessions and subscriptions.
    broker.stop().await;
    edge.until_metric("eventbus_connected", 0.0).await;
    let offline = from_cloud(Operation::Publish, "lamp/set", json!("on"));
    assert_eq!(edge.request(offline).await.content, json!("OK"));
    broker.restart().await;
    edge.until_metric("eventbus_connected", 1.0).await;
    let got = device.next().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("lamp/set", &b"on"[..])
    );
    edge.stop().await;
}

#[tokio::test]
async fn publishes_a_restarted_broker_lost_are_sent_again() {
    let mut broker = Mosquitto::start().await;
    let (_dir, db) = temp_db();
    let mut s = settings(broker.port());
    // Retained, so a device subscribing later still sees it.
    s.retain = true;
    let edge = Edge::start(s, &db);
    edge.until_metric("eventbus_connected", 1.0).await;

    // Frozen, the broker never acks the publish; killed, it forgets the
    // session, so rumqttc alone would drop the publish on reconnecting.
    broker.pause();
    let publish = from_cloud(Operation::Publish, "lamp/state", json!("on"));
    assert_eq!(edge.request(publish).await.content, json!("OK"));
    broker.kill();
    edge.until_metric("eventbus_connected", 0.0).await;
    broker.restart().await;
    edge.until_metric("eventbus_connected", 1.0).await;
    let mut device = Device::listen(broker.port(), "lamp", false, "lamp/#").await;
    let got = device.next().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("lamp/state", &b"on"[..])
    );
    edge.stop().await;
}

#[tokio::test]
async fn device_messages_wait_in_the_broker_while_edgecore_is_down() {
    let broker = Mosquitto::start().await;
    let (_dir, db) = temp_db();
    let edge = Edge::ready(settings(broker.port()), &db, broker.port()).await;
    edge.stop().await;

    // QoS 1 while EventBus is stopped: the broker keeps it for the session.
    publish(broker.port(), TWIN_TOPIC, br#"{"while":"down"}"#, 1).await;
    let mut edge = Edge::start(settings(broker.port()), &db);
    let msg = edge.next(Side::Twin).await;
    assert_eq!(msg.route.resource, TWIN_TOPIC);
    assert_eq!(msg.content, json!(r#"{"while":"down"}"#));
    edge.stop().await;
}

#[tokio::test]
async fn bad_and_oversized_input_is_dropped_and_counted() {
    let broker = Mosquitto::start().await;
    let (_dir, db) = temp_db();
    let mut s = settings(broker.port());
    s.max_payload = 1024;
    let mut edge = Edge::ready(s, &db, broker.port()).await;

    // From devices: binary on a twin topic, a payload over the cap (read,
    // dropped, acked) and one too large to read (the session is reset).
    publish(broker.port(), TWIN_TOPIC, &[0xc3, 0x28], 1).await;
    edge.until_metric("eventbus_dropped_total{reason=\"not_utf8\"}", 1.0)
        .await;
    publish(broker.port(), "foo/user/big", &[b'x'; 2000], 1).await;
    edge.until_metric("eventbus_dropped_total{reason=\"oversized\"}", 1.0)
        .await;
    publish(broker.port(), "foo/user/huge", &vec![b'x'; 200_000], 1).await;
    edge.until_metric("eventbus_dropped_total{reason=\"oversized\"}", 2.0)
        .await;
    edge.until_metric("eventbus_connected", 1.0).await;
    // The broker saw EventBus come back once with a clean session (c1).
    let log = broker.log();
    assert_eq!(
        log.matches("as apiary-eventbus-edge-1 (p2, c1").count(),
        1,
        "{log}"
    );
    publish(broker.port(), "foo/user/after", b"fine", 1).await;
    let next = edge.next(Side::Cloud).await;
    assert_eq!(next.route.resource, "foo/user/after", "{next:?}");
    publish(broker.port(), TWIN_TOPIC, b"{}", 1).await;
    assert_eq!(edge.next(Side::Twin).await.content, json!("{}"));

    // From the bus: refused with a reason when asked, counted either way.
    for bad in [
        from_cloud(Operation::Publish, "a/+/b", json!("x")),
        from_cloud(Operation::Publish, "", json!("x")),
        from_cloud(Operation::Publish, "a/b", json!("x".repeat(2000))),
        from_cloud(Operation::Message, "", json!({"nope": 1})),
        from_cloud(Operation::Subscribe, "a/#/b", Value::Null),
        from_cloud(Operation::Unsubscribe, "+/user/#", Value::Null),
        from_cloud(Operation::Insert, "a/b", Value::Null),
    ] {
        let reply = edge.request(bad.clone()).await;
        assert_eq!(reply.route.operation, Operation::Error, "{bad:?}");
        assert!(reply.content.as_str().is_some_and(|r| !r.is_empty()));
    }
    edge.bus
        .send(
            "eventbus",
            from_cloud(Operation::Delete, "a/b", Value::Null),
        )
        .await
        .unwrap();
    edge.until_metric("eventbus_dropped_total{reason=\"refused\"}", 8.0)
        .await;
    edge.stop().await;
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as
/// PEM files in `dir`: ca, server cert, server key, client cert, client key.
fn pki(dir: &std::path::Path) -> [String; 5] {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "eventbus test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let leaf = |sans: Vec<String>, cn: &str, usage| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let server = leaf(
        vec!["127.0.0.1".into()],
        "mosquitto",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = leaf(Vec::new(), "edgecore", ExtendedKeyUsagePurpose::ClientAuth);
    let files = [
        ("ca.crt", ca_cert.pem()),
        ("server.crt", server.0),
        ("server.key", server.1),
        ("client.crt", client.0),
        ("client.key", client.1),
    ];
    files.map(|(name, pem)| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    })
}

#[tokio::test]
async fn eventbus_tls_with_a_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let [ca, server_cert, server_key, client_cert, client_key] = pki(certs.path());
    // Devices on the plain listener, EventBus on a mutual-TLS one.
    let tls_port = free_port();
    let broker = Mosquitto::start_with(&format!(
        "listener {tls_port} 127.0.0.1\n\
         cafile {ca}\ncertfile {server_cert}\nkeyfile {server_key}\n\
         require_certificate true\n"
    ))
    .await;
    let (_dir, db) = temp_db();
    let mut config = EventBusConfig {
        mqtt_mode: 2,
        mqtt_server_external: format!("ssl://127.0.0.1:{tls_port}"),
        ..EventBusConfig::default()
    };
    config.event_bus_tls.enable = true;
    config.event_bus_tls.tls_mqtt_ca_file = ca;
    config.event_bus_tls.tls_mqtt_cert_file = client_cert;
    config.event_bus_tls.tls_mqtt_private_key_file = client_key;
    let mut edge = Edge::ready(
        fast(EventBusSettings::external(&config).unwrap()),
        &db,
        broker.port(),
    )
    .await;
    publish(broker.port(), TWIN_TOPIC, b"{}", 1).await;
    assert_eq!(edge.next(Side::Twin).await.route.resource, TWIN_TOPIC);
    edge.stop().await;

    // Without the client certificate the broker refuses EventBus, which
    // keeps trying.
    config.event_bus_tls.tls_mqtt_cert_file.clear();
    config.event_bus_tls.tls_mqtt_private_key_file.clear();
    let (_dir2, db2) = temp_db();
    let edge = Edge::start(fast(EventBusSettings::external(&config).unwrap()), &db2);
    let refused = "peer did not return a certificate.";
    let deadline = Instant::now() + PATIENCE;
    while broker.log().matches(refused).count() < 2 {
        assert!(Instant::now() < deadline, "{}", broker.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(edge.metric("eventbus_connected"), 0.0);
    edge.stop().await;
}

#[tokio::test]
async fn the_embedded_broker_serves_eventbus_and_keeps_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let running = broker::RunningBroker::start(broker::BrokerSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        config: edgecore::config::Broker::default(),
        data_dir: dir.path().join("broker"),
        bus_username: String::new(),
        bus_password: String::new(),
        session_queue: 100,
    })
    .await
    .unwrap();
    let port = running.tcp_addr().port();
    // As daemon.rs does for mqttMode 0: the broker's address and its
    // per-start superuser.
    let (user, password) = running.internal_credentials();
    let endpoint = MqttEndpoint::new("127.0.0.1", port).with_credentials(user, password);
    let config = EventBusConfig::default();
    let with = |endpoint| fast(EventBusSettings::with_endpoint(&config, endpoint).unwrap());
    let (_db_dir, db) = temp_db();

    let edge = Edge::ready(with(endpoint.clone()), &db, port).await;
    let mut device = Device::listen(port, "lamp", false, "lamp/#").await;
    edge.request(from_cloud(Operation::Publish, "lamp/set", json!("on")))
        .await;
    assert_eq!(&device.next().await.payload[..], b"on");
    edge.stop().await;

    // Published while EventBus is stopped: kept in its persistent session.
    publish(port, TWIN_TOPIC, br#"{"while":"down"}"#, 1).await;
    let mut edge = Edge::start(with(endpoint), &db);
    assert_eq!(
        edge.next(Side::Twin).await.content,
        json!(r#"{"while":"down"}"#)
    );
    edge.stop().await;
    tokio::task::spawn_blocking(move || running.stop())
        .await
        .unwrap();
}
