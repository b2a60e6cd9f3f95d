//! Devices end to end: a real cloudcore (with a stand-in DeviceController
//! endpoint) and a real edgecore, the embedded broker or a real mosquitto,
//! and real MQTT clients as the mapper (rumqttc, mosquitto_sub and
//! mosquitto_pub).
//!
//! - the cloud binds a device and sets a desired value: the mapper gets
//!   the delta; its reported value is answered on `update/result` and
//!   reaches the cloud as `edge_updated` with the right versions; `get`
//!   answers with the whole twin;
//! - reports made while the link is cut reach the cloud after it returns,
//!   in order, and the edge asks for the membership detail again;
//! - the same in external mode against mosquitto;
//! - the embedded broker's credentials and ACL from edgecore.yaml, and a
//!   persistent session's QoS 1 message kept across an edgecore restart.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use crate::mosquitto;

use std::collections::BTreeMap;
use std::time::Duration;

use proto::{Message, Operation};
use serde_json::{json, Value};
use tests::config;
use tests::link::{start_connected_edge, Cloud};
use tests::mqtt::{Client, MosquittoSub, Options};
use tests::proxy::{Mode, TcpProxy};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(30);
const DEV1: &str = "$hw/events/device/default/dev1";

/// Takes messages DeviceController receives until one satisfies `want`.
async fn twin_until(cloud: &mut Cloud, want: impl Fn(&Message) -> bool) -> Message {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let msg = tokio::time::timeout_at(deadline, cloud.twin_upstream.recv())
            .await
            .expect("the awaited device message reaches the cloud")
            .expect("cloud running");
        if want(&msg) {
            return msg;
        }
    }
}

/// Sends `content` to edge-1's twin module as DeviceController would.
async fn to_twin(cloud: &Cloud, resource: &str, content: Value) {
    let msg = Message::new(
        "devicecontroller",
        "twin",
        Operation::Update,
        format!("node/edge-1/{resource}"),
    )
    .with_content(content);
    cloud
        .bus
        .send("cloudhub", msg)
        .await
        .expect("cloudhub takes it");
}

struct Setup {
    _dir: tempfile::TempDir,
    cloud: Cloud,
    proxy: TcpProxy,
    edge: edgecore::Started,
    shutdown: CancellationToken,
    /// The broker the mapper talks to.
    port: u16,
}

impl Setup {
    /// Cloud, a proxy for the link, and edge-1 with the embedded broker, or
    /// with the external one on `external`.
    async fn start(external: Option<u16>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut cloud_cfg = config::cloud(&dir.path().join("cloud"), 30);
        // The devices exist only on the bus (no Device objects in the API),
        // so node authorization, which reads the API, would refuse reports.
        cloud_cfg.modules.cloud_hub.authorization.enable = false;
        let cloud = Cloud::start(cloud_cfg).await;
        let proxy = TcpProxy::start(cloud.addrs.websocket.unwrap())
            .await
            .unwrap();
        let mut cfg = cloud.edge_config(&dir.path().join("edge"), proxy.addr());
        if let Some(port) = external {
            cfg.modules.event_bus.mqtt_mode = 2;
            cfg.modules.event_bus.mqtt_server_external = format!("tcp://127.0.0.1:{port}");
        }
        let (edge, shutdown) = start_connected_edge(cfg).await;
        let port = match external {
            Some(port) => port,
            None => edge.mqtt.expect("the embedded broker runs").port(),
        };
        Setup {
            _dir: dir,
            cloud,
            proxy,
            edge,
            shutdown,
            port,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.edge.wait().await.unwrap();
        self.cloud.stop().await;
    }
}

/// The mapper's session: subscribed to dev1's answers and the node's
/// membership news.
async fn mapper(port: u16) -> Client {
    let mut m = Client::connect(port, Options::new("dev1-mapper"))
        .await
        .expect("the mapper connects");
    for filter in [
        format!("{DEV1}/twin/update/+"),
        format!("{DEV1}/twin/get/result"),
        format!("{DEV1}/state/update/result"),
        "$hw/events/node/edge-1/membership/updated".to_owned(),
    ] {
        m.subscribe(&filter).await.expect("subscribed");
    }
    m
}

async fn device_round_trip(external: Option<u16>) {
    let mut s = Setup::start(external).await;
    // On connecting, the edge asks for its devices.
    let ask = twin_until(&mut s.cloud, |m| {
        m.resource() == "node/edge-1/membership/detail"
    })
    .await;
    assert_eq!(*ask.operation(), Operation::Get);
    assert_eq!(ask.content_json()["group_id"], "edge-1");

    // The mapper listens first; answers published before EventBus reaches
    // the broker wait in its queue.
    let mut m = mapper(s.port).await;
    to_twin(
        &s.cloud,
        "membership",
        json!({"event_id": "m1", "added_devices": [{"id": "default/dev1", "name": "dev1",
            "twin": {"power": {"optional": false, "metadata": {"type": "string"}},
                     "temp": {"metadata": {"type": "int"}}}}]}),
    )
    .await;
    let bound = m
        .received_on("$hw/events/node/edge-1/membership/updated")
        .await;
    assert_eq!(bound["added_devices"][0]["id"], "default/dev1");

    // The cloud sets a desired value: the mapper gets the delta (both clients).
    let sub = MosquittoSub::start(s.port, &format!("{DEV1}/twin/update/delta")).await;
    to_twin(
        &s.cloud,
        "device/default/dev1/twin/cloud_updated",
        json!({"event_id": "c1", "twin": {"power": {"expected": {"value": "on"},
                                                    "expected_version": {"cloud": 1, "edge": 0}}}}),
    )
    .await;
    let delta = m.received_on(&format!("{DEV1}/twin/update/delta")).await;
    assert_eq!(delta["delta"]["power"], "on");
    let seen: Value = serde_json::from_str(&sub.payload().await).unwrap();
    assert_eq!(seen["delta"]["power"], "on");

    // The mapper reports: answered, and the cloud gets edge_updated.
    mosquitto::publish(
        s.port,
        &format!("{DEV1}/twin/update"),
        br#"{"event_id":"r1","timestamp":1,"twin":{"power":{"actual":{"value":"on"}}}}"#,
        1,
    )
    .await;
    let result = m.received_on(&format!("{DEV1}/twin/update/result")).await;
    assert_eq!(result["event_id"], "r1");
    assert_eq!(result["twin"]["power"]["actual"]["value"], "on");
    let up = twin_until(&mut s.cloud, |m| {
        m.resource() == "node/edge-1/device/default/dev1/twin/edge_updated"
    })
    .await;
    let power = &up.content["twin"]["power"];
    assert_eq!(power["actual"]["value"], "on");
    assert_eq!(power["actual_version"], json!({"cloud": 0, "edge": 1}));
    assert_eq!(power["expected_version"], json!({"cloud": 1, "edge": 0}));

    // get answers with the whole twin.
    m.publish(&format!("{DEV1}/twin/get"), r#"{"event_id":"g1"}"#)
        .await;
    let got = m.received_on(&format!("{DEV1}/twin/get/result")).await;
    assert_eq!(got["event_id"], "g1");
    assert_eq!(got["twin"]["power"]["expected"]["value"], "on");
    assert_eq!(got["twin"]["power"]["actual"]["value"], "on");
    assert!(got["twin"].get("temp").is_some(), "{got}");

    // The link goes: reports are answered locally and kept for the cloud.
    s.proxy.set(Mode::Blackhole);
    let hub = s.edge.hub().unwrap().clone();
    let mut connected = hub.connected();
    tokio::time::timeout(PATIENCE, connected.wait_for(|up| !*up))
        .await
        .expect("the edge notices")
        .unwrap();
    for v in 1..=3 {
        m.publish(
            &format!("{DEV1}/twin/update"),
            format!(r#"{{"event_id":"off{v}","twin":{{"temp":{{"actual":{{"value":"{v}"}}}}}}}}"#),
        )
        .await;
        let r = m.received_on(&format!("{DEV1}/twin/update/result")).await;
        assert_eq!(r["event_id"], format!("off{v}"));
    }
    m.publish(
        &format!("{DEV1}/state/update"),
        r#"{"event_id":"s1","state":"online"}"#,
    )
    .await;
    m.received_on(&format!("{DEV1}/state/update/result")).await;
    s.proxy.set(Mode::Pass);

    // After the reconnect: the three reports in order with growing edge
    // versions, then the state; and the edge asks for its devices again.
    let mut temps = Vec::new();
    let mut asked_again = false;
    let state = loop {
        let up = twin_until(&mut s.cloud, |_| true).await;
        if up.resource() == "node/edge-1/membership/detail" {
            asked_again = true;
            continue;
        }
        if up.resource().ends_with("dev1/twin/edge_updated") {
            let t = &up.content["twin"]["temp"];
            temps.push((
                t["actual"]["value"].as_str().unwrap().to_owned(),
                t["actual_version"]["edge"].as_i64().unwrap(),
            ));
            continue;
        }
        break up;
    };
    assert_eq!(
        temps,
        [("1".into(), 1), ("2".into(), 2), ("3".into(), 3)],
        "in order, each once, before the later state"
    );
    assert_eq!(
        state.resource(),
        "node/edge-1/device/default/dev1/state/update"
    );
    assert_eq!(state.content["device"]["state"], "online");
    if !asked_again {
        twin_until(&mut s.cloud, |m| {
            m.resource() == "node/edge-1/membership/detail"
        })
        .await;
    }
    m.disconnect().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_round_trip_through_the_embedded_broker() {
    device_round_trip(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_round_trip_through_an_external_mosquitto() {
    let broker = mosquitto::Mosquitto::start().await;
    device_round_trip(Some(broker.port())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_credentials_and_acl_come_from_edgecore_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(config::cloud(&dir.path().join("cloud"), 30)).await;
    let mut cfg = cloud.edge_config(&dir.path().join("edge"), cloud.addrs.websocket.unwrap());
    let broker = &mut cfg.modules.event_bus.broker;
    broker.users = BTreeMap::from([
        ("dev1".to_owned(), "secret1".to_owned()),
        ("dev2".to_owned(), "secret2".to_owned()),
    ]);
    broker.acl = serde_norway::from_str(
        "denyByDefault: true\n\
         rules:\n\
         - {permission: allow, action: all, topics: ['$hw/events/device/default/${username}/#']}\n",
    )
    .unwrap();
    let (edge, shutdown) = start_connected_edge(cfg).await;
    let port = edge.mqtt.unwrap().port();
    let login = |user: &str, password: &str| {
        let mut o = Options::new(user);
        o.credentials = Some((user.to_owned(), password.to_owned()));
        o
    };

    let refused = Client::connect(port, login("dev1", "wrong")).await;
    assert!(refused.is_err(), "a wrong password is refused");
    assert!(
        Client::connect(port, Options::new("anonymous"))
            .await
            .is_err(),
        "anonymous clients are refused once users are configured"
    );

    let mut dev1 = Client::connect(port, login("dev1", "secret1"))
        .await
        .unwrap();
    let mut dev2 = Client::connect(port, login("dev2", "secret2"))
        .await
        .unwrap();
    dev1.subscribe("$hw/events/device/default/dev1/twin/update/result")
        .await
        .expect("its own topics");
    assert!(
        dev1.subscribe("$hw/events/device/default/dev2/#")
            .await
            .is_err(),
        "not dev2's"
    );
    dev2.subscribe("$hw/events/device/default/dev2/custom")
        .await
        .unwrap();
    dev1.publish("$hw/events/device/default/dev2/custom", "from dev1")
        .await;
    dev2.publish("$hw/events/device/default/dev2/custom", "from dev2")
        .await;
    let first = dev2
        .received_raw("$hw/events/device/default/dev2/custom")
        .await;
    assert_eq!(
        first, b"from dev2",
        "dev1's publish on dev2's topic was dropped"
    );
    dev1.disconnect().await;
    dev2.disconnect().await;
    shutdown.cancel();
    edge.wait().await.unwrap();
    cloud.stop().await;
}

/// edgecore as a process (`edge-probe`, the library wired as the binary
/// wires it): the embedded broker's stores are opened once per process.
struct EdgeProcess(std::process::Child);

impl EdgeProcess {
    fn start(config: &std::path::Path) -> EdgeProcess {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_edge-probe"))
            .arg(config)
            .arg("0")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start edge-probe");
        EdgeProcess(child)
    }

    /// SIGTERM, then waits for a clean exit.
    async fn stop(mut self) {
        let pid = self.0.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(killed.success());
        let status = tests::eventually("edgecore exits", PATIENCE, || {
            let exited = self.0.try_wait().expect("wait");
            async move { exited }
        })
        .await;
        assert!(status.success(), "edgecore stopped cleanly: {status}");
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects as soon as the broker on `port` takes clients.
async fn connect_when_up(port: u16, options: Options) -> Client {
    tests::eventually("the embedded broker takes clients", PATIENCE, || {
        let options = options.clone();
        async move { Client::connect(port, options).await.ok() }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_session_keeps_qos1_messages_across_an_edgecore_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(config::cloud(&dir.path().join("cloud"), 30)).await;
    let mut cfg = cloud.edge_config(&dir.path().join("edge"), cloud.addrs.websocket.unwrap());
    let port = mosquitto::free_port();
    cfg.modules.event_bus.mqtt_server_internal = format!("tcp://127.0.0.1:{port}");
    let config_path = dir.path().join("edgecore.yaml");
    std::fs::write(&config_path, serde_norway::to_string(&cfg).unwrap()).unwrap();
    let persistent = Options {
        clean_session: false,
        ..Options::new("sensor-1")
    };

    let edge = EdgeProcess::start(&config_path);
    let mut sensor = connect_when_up(port, persistent.clone()).await;
    sensor.subscribe("app/alerts").await.unwrap();
    sensor.disconnect().await;
    let mut publisher = Client::connect(port, Options::new("publisher"))
        .await
        .unwrap();
    publisher.publish("app/alerts", "while away").await;
    let mut sensor = Client::connect(port, persistent.clone()).await.unwrap();
    assert_eq!(sensor.received_raw("app/alerts").await, b"while away");
    sensor.disconnect().await;
    publisher.publish("app/alerts", "across a restart").await;
    publisher.disconnect().await;
    edge.stop().await;

    let edge = EdgeProcess::start(&config_path);
    let mut sensor = connect_when_up(port, persistent).await;
    assert_eq!(sensor.received_raw("app/alerts").await, b"across a restart");
    sensor.disconnect().await;
    edge.stop().await;
    cloud.stop().await;
}
