//! DeviceTwin driven through a real beehive, on a real SQLite file, with
//! endpoints standing in for EdgeHub (`websocket`) and EventBus
//! (`eventbus`).

use std::path::Path;
use std::time::Duration;

use beehive::{Beehive, BeehiveBuilder, Bus};
use proto::{Message, Operation};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::DeviceTwin;

struct Harness {
    bus: Bus,
    up: mpsc::Receiver<Message>,
    published: mpsc::Receiver<Message>,
    hive: Beehive,
    cancel: CancellationToken,
}

impl Harness {
    fn start(dir: &Path) -> Harness {
        let db = dir.join("edgecore.db").display().to_string();
        let mut registry = prometheus_client::registry::Registry::default();
        let mut builder = BeehiveBuilder::new();
        builder.module(DeviceTwin::new(&db, "edge-1", None, &mut registry));
        let up = builder.endpoint("websocket", "hub");
        let published = builder.endpoint("eventbus", "bus");
        let mut hive = builder.build().unwrap();
        let cancel = CancellationToken::new();
        hive.start(&cancel);
        Harness {
            bus: hive.bus(),
            up,
            published,
            hive,
            cancel,
        }
    }

    /// A device or mapper publishing on `topic`, as EventBus hands it over.
    async fn mqtt(&self, topic: &str, payload: Value) {
        let msg = Message::new("bus", "user", Operation::Response, topic)
            .with_content(payload.to_string());
        self.bus.send("twin", msg).await.unwrap();
    }

    /// A request on `topic` and DeviceTwin's answer on `<topic>/result`.
    async fn ask(&mut self, topic: &str, payload: Value) -> Value {
        self.mqtt(topic, payload).await;
        self.published_on(&format!("{topic}/result")).await
    }

    async fn cloud(&self, resource: &str, content: Value) {
        let msg = Message::new("devicecontroller", "twin", Operation::Update, resource)
            .with_content(content);
        self.bus.send("twin", msg).await.unwrap();
    }

    /// The next publish on `topic` (others are skipped).
    async fn published_on(&mut self, topic: &str) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.published.recv())
                .await
                .unwrap_or_else(|_| panic!("a publish on {topic}"))
                .unwrap();
            assert_eq!(msg.route.operation, Operation::Publish);
            if msg.resource() == topic {
                return msg.content;
            }
        }
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

const DEV1: &str = "$hw/events/device/default/dev1";

async fn add_dev1(h: &mut Harness) {
    h.cloud(
        "membership",
        json!({"event_id": "m1", "timestamp": 1, "added_devices": [{
            "id": "default/dev1", "name": "dev1",
            "attributes": {"vendor": {"value": "acme", "metadata": {"type": "string"}}},
            "twin": {"power": {"expected": {"value": "on"}, "optional": false,
                               "metadata": {"type": "string"},
                               "expected_version": {"cloud": 1, "edge": 0}}}}]}),
    )
    .await;
    let updated = h
        .published_on("$hw/events/node/edge-1/membership/updated")
        .await;
    assert_eq!(updated["added_devices"][0]["id"], "default/dev1");
}

#[tokio::test]
async fn a_new_device_gets_its_delta_and_reports_go_up_with_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path());
    add_dev1(&mut h).await;
    let delta = h.published_on(&format!("{DEV1}/twin/update/delta")).await;
    assert_eq!(delta["delta"]["power"], "on");

    let result = h
        .ask(
            &format!("{DEV1}/twin/update"),
            json!({"event_id": "e1", "timestamp": 5,
                   "twin": {"power": {"actual": {"value": "on"}}, "temp": {"actual": {"value": "21"}}}}),
        )
        .await;
    assert_eq!(result["event_id"], "e1");
    assert_eq!(result["twin"]["power"]["actual"]["value"], "on");
    assert!(
        result["twin"]["power"].get("actual_version").is_none(),
        "results carry no versions: {result}"
    );
    let doc = h
        .published_on(&format!("{DEV1}/twin/update/document"))
        .await;
    assert_eq!(doc["twin"]["temp"]["last"], Value::Null);
    assert_eq!(doc["twin"]["power"]["current"]["actual"]["value"], "on");

    let up = h.next_up().await;
    assert_eq!(up.resource(), "device/default/dev1/twin/edge_updated");
    assert_eq!(up.route.operation, Operation::Update);
    assert_eq!(up.route.group, "twin");
    assert_eq!(
        up.content["twin"]["power"]["actual_version"],
        json!({"cloud": 0, "edge": 1})
    );
    assert_eq!(
        up.content["twin"]["power"]["expected_version"],
        json!({"cloud": 1, "edge": 0})
    );

    // The same report again: answered, but nothing goes up.
    let again = h
        .ask(
            &format!("{DEV1}/twin/update"),
            json!({"event_id": "e2", "twin": {"power": {"actual": {"value": "on"}}}}),
        )
        .await;
    assert_eq!(again["event_id"], "e2");
    h.mqtt(
        &format!("{DEV1}/state/update"),
        json!({"event_id": "s1", "state": "online"}),
    )
    .await;
    let up = h.next_up().await;
    assert_eq!(
        up.resource(),
        "device/default/dev1/state/update",
        "no second edge_updated before it"
    );
    assert_eq!(up.content["device"]["state"], "online");
    h.stop().await;
}

#[tokio::test]
async fn cloud_desired_values_follow_the_version_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path());
    add_dev1(&mut h).await;
    h.cloud(
        "device/default/dev1/twin/cloud_updated",
        json!({"event_id": "c1", "twin": {"power": {"expected": {"value": "off"},
                                                    "expected_version": {"cloud": 2, "edge": 0}}}}),
    )
    .await;
    loop {
        let delta = h.published_on(&format!("{DEV1}/twin/update/delta")).await;
        if delta["delta"]["power"] == "off" {
            break;
        }
    }
    // A stale cloud version: refused, and the edge's value goes back up.
    h.cloud(
        "device/default/dev1/twin/cloud_updated",
        json!({"event_id": "c2", "twin": {"power": {"expected": {"value": "dim"},
                                                    "expected_version": {"cloud": 1, "edge": 0}}}}),
    )
    .await;
    let back = h.next_up().await;
    assert_eq!(back.resource(), "device/default/dev1/twin/edge_updated");
    assert_eq!(back.content["twin"]["power"]["expected"]["value"], "off");
    assert_eq!(
        back.content["twin"]["power"]["expected_version"],
        json!({"cloud": 2, "edge": 0})
    );
    let got = h
        .ask(&format!("{DEV1}/twin/get"), json!({"event_id": "g1"}))
        .await;
    assert_eq!(got["twin"]["power"]["expected"]["value"], "off");
    assert_eq!(got["twin"]["power"]["expected_version"]["cloud"], 2);
    h.stop().await;
}

#[tokio::test]
async fn errors_are_answered_with_kubeedge_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path());
    let r = h
        .ask(
            "$hw/events/device/default/ghost/twin/update",
            json!({"event_id": "x", "twin": {"a": {"actual": {"value": "1"}}}}),
        )
        .await;
    assert_eq!(
        (r["code"].as_u64(), r["event_id"].as_str()),
        (Some(404), Some("x"))
    );

    add_dev1(&mut h).await;
    let r = h
        .ask(&format!("{DEV1}/twin/update"), json!("not an update"))
        .await;
    assert_eq!(r["code"], 400);
    let r = h
        .ask(
            &format!("{DEV1}/twin/update"),
            json!({"event_id": "k", "twin": {"bad key": {"actual": {"value": "1"}}}}),
        )
        .await;
    assert_eq!(r["code"], 400);
    assert!(r["reason"].as_str().unwrap().contains("bad key"), "{r}");
    let r = h
        .ask(
            &format!("{DEV1}/twin/update"),
            json!({"event_id": "d", "twin": {"power": null}}),
        )
        .await;
    assert!(
        r["reason"].as_str().unwrap().contains("not optional"),
        "{r}"
    );
    let r = h
        .ask(
            &format!("{DEV1}/state/update"),
            json!({"event_id": "s", "state": "asleep"}),
        )
        .await;
    assert_eq!(r["code"], 400);
    h.stop().await;
}

#[tokio::test]
async fn devices_survive_a_restart_and_the_detail_reconciles_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path());
    add_dev1(&mut h).await;
    h.cloud(
        "membership",
        json!({"added_devices": [{"id": "default/dev2", "name": "dev2"}]}),
    )
    .await;
    h.published_on("$hw/events/node/edge-1/membership/updated")
        .await;
    h.ask(
        &format!("{DEV1}/twin/update"),
        json!({"event_id": "e", "twin": {"temp": {"actual": {"value": "30"}}}}),
    )
    .await;
    h.stop().await;

    let mut h = Harness::start(dir.path());
    let r = h
        .ask(
            "$hw/events/node/edge-1/membership/get",
            json!({"event_id": "mg"}),
        )
        .await;
    let ids: Vec<&str> = r["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["default/dev1", "default/dev2"]);
    assert_eq!(r["devices"][0]["twin"]["temp"]["actual"]["value"], "30");
    assert_eq!(r["devices"][0]["attributes"]["vendor"]["value"], "acme");

    // The cloud's full list no longer has dev2.
    let detail = Message::new(
        "devicecontroller",
        "twin",
        Operation::Response,
        "membership/detail",
    )
    .with_content(
        json!({"event_id": "d", "devices": [{"id": "default/dev1", "name": "dev1"}]}).to_string(),
    );
    h.bus.send("twin", detail).await.unwrap();
    let upd = h
        .published_on("$hw/events/node/edge-1/membership/updated")
        .await;
    assert_eq!(upd["removed_devices"][0]["id"], "default/dev2");
    let r = h
        .ask(
            "$hw/events/device/default/dev2/twin/get",
            json!({"event_id": "g"}),
        )
        .await;
    assert_eq!(r["code"], 404);
    h.stop().await;
}
