//! DeviceController end to end: a real cloudcore on its embedded API with
//! DeviceController on, a real edgecore with the embedded broker, a real
//! MQTT client as the mapper, and kube-rs as the user.
//!
//! - a Device bound to `edge-1` with a desired value: the mapper gets the
//!   delta;
//! - the mapper reports a value: `Device.status.twins` shows it;
//! - the mapper reports `online`: `Device.status.state` says so;
//! - the desired value changes in the API: a new delta.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use std::time::Duration;

use crds::Device;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Value};
use tests::link::{start_connected_edge, Cloud};
use tests::mqtt::{Client, Options};
use tests::{config, eventually};

const PATIENCE: Duration = Duration::from_secs(30);
const DEV1: &str = "$hw/events/device/default/dev1";

async fn next(m: &mut Client, topic: &str) -> Value {
    tokio::time::timeout(PATIENCE, m.received_on(topic))
        .await
        .unwrap_or_else(|_| panic!("a message on {topic}"))
}

/// Reads dev1's status until `check` holds.
async fn status_until(api: &Api<Device>, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(what, PATIENCE, || async {
        let dev = api.get_status("dev1").await.ok()?;
        let status = serde_json::to_value(dev.status?).ok()?;
        check(&status).then_some(status)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_flow_between_the_api_and_the_mapper() {
    let dir = tempfile::tempdir().unwrap();
    let mut cloud_cfg = config::cloud(&dir.path().join("cloud"), 30);
    cloud_cfg.modules.device_controller.enable = true;
    let cloud = Cloud::start(cloud_cfg).await;
    let cfg = cloud.edge_config(&dir.path().join("edge"), cloud.addrs.websocket.unwrap());
    let (edge, shutdown) = start_connected_edge(cfg).await;
    let port = edge.mqtt.expect("the embedded broker runs").port();

    let mut m = Client::connect(port, Options::new("dev1-mapper"))
        .await
        .expect("the mapper connects");
    for filter in [
        format!("{DEV1}/twin/update/delta"),
        format!("{DEV1}/twin/update/result"),
        format!("{DEV1}/state/update/result"),
    ] {
        m.subscribe(&filter).await.expect("subscribed");
    }

    // The user creates a device on edge-1 with a desired value.
    let api: Api<Device> = Api::namespaced(cloud.kube.clone(), "default");
    let device: Device = serde_json::from_value(json!({
        "apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
        "metadata": {"name": "dev1", "namespace": "default"},
        "spec": {"nodeName": "edge-1", "properties": [
            {"name": "power", "desired": {"value": "on", "metadata": {"type": "string"}}}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &device).await.unwrap();
    let delta = next(&mut m, &format!("{DEV1}/twin/update/delta")).await;
    assert_eq!(delta["delta"]["power"], "on", "{delta}");

    // The mapper reports: the status shows it.
    m.publish(
        &format!("{DEV1}/twin/update"),
        r#"{"event_id":"r1","timestamp":1,"twin":{"power":{"actual":{"value":"on"},"metadata":{"type":"string"}}}}"#,
    )
    .await;
    let result = next(&mut m, &format!("{DEV1}/twin/update/result")).await;
    assert_eq!(result["twin"]["power"]["actual"]["value"], "on", "{result}");
    let status = status_until(&api, "status.twins shows power=on", |s| {
        s["twins"][0]["reported"]["value"] == "on"
    })
    .await;
    assert_eq!(status["twins"][0]["propertyName"], "power");
    assert_eq!(status["twins"][0]["observedDesired"]["value"], "on");

    // The mapper says the device is online.
    m.publish(
        &format!("{DEV1}/state/update"),
        r#"{"event_id":"s1","state":"online"}"#,
    )
    .await;
    let status = status_until(&api, "status.state online", |s| s["state"] == "online").await;
    assert!(
        status["lastOnlineTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{status}"
    );

    // The user changes the desired value: a new delta.
    let change = json!({"spec": {"properties": [
        {"name": "power", "desired": {"value": "off", "metadata": {"type": "string"}}}]}});
    api.patch("dev1", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    let delta = next(&mut m, &format!("{DEV1}/twin/update/delta")).await;
    assert_eq!(delta["delta"]["power"], "off", "{delta}");

    let metrics = cloud.metrics().await;
    assert!(
        tests::link::metric(&metrics, "devicecontroller_status_patches_total", "twins")
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );

    m.disconnect().await;
    shutdown.cancel();
    edge.wait().await.unwrap();
    cloud.stop().await;
}
