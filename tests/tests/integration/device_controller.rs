//! DeviceController end to end: a real cloudcore with DeviceController on,
//! on its embedded API and on Kubernetes' kube-apiserver 1.20.2 (when
//! `scripts/kube-apiserver.sh` built it; else that test prints a note and
//! passes), a real edgecore with the embedded broker, a real MQTT client
//! as the mapper, and kube-rs and kubectl as the user.
//!
//! - a DeviceModel and a Device bound to `edge-1` that references it, with
//!   labels and a desired value: the model is in the edge's MetaServer,
//!   the labels are rows of the edge's `device_attr` table, the mapper
//!   gets the delta;
//! - the mapper reports a value and `online`: `Device.status` shows both,
//!   read back with kube-rs and with kubectl;
//! - the labels change: the attributes follow (changed, added, removed);
//! - the desired value changes: a new delta; it is removed: the edge's
//!   twin has no desired value left but keeps the reported one; the
//!   property is removed: the edge's twin is gone, and so is its entry in
//!   `Device.status.twins`;
//! - the model changes: the edge has the new version; it is deleted: the
//!   edge's copy is deleted.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crds::{Device, DeviceModel};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use tests::kubectl::{self, Kubectl};
use tests::link::{start_connected_edge, Cloud};
use tests::mqtt::{Client, Options};
use tests::{cluster, config, eventually};

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

/// Asks DeviceTwin for dev1's twins over MQTT until `check` holds.
async fn twins_until(m: &mut Client, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        m.publish(&format!("{DEV1}/twin/get"), r#"{"event_id":"get"}"#)
            .await;
        let result = next(m, &format!("{DEV1}/twin/get/result")).await;
        if check(&result["twin"]) {
            return result["twin"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}; last {result}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// dev1's rows in the edge's `device_attr` table: name → value.
fn attributes(db: &Path) -> BTreeMap<String, String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare("SELECT name, value FROM device_attr WHERE deviceid = 'default/dev1'")
        .unwrap();
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn attributes_until(db: &Path, want: &[(&str, &str)]) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let db = db.to_path_buf();
    eventually(&format!("device_attr holds {want:?}"), PATIENCE, || {
        let (db, want) = (db.clone(), want.clone());
        async move {
            let have = tokio::task::spawn_blocking(move || attributes(&db))
                .await
                .ok()?;
            (have == want).then_some(())
        }
    })
    .await;
}

/// A kube-rs client of the edge's MetaServer (plain HTTP on loopback).
fn metaserver(addr: SocketAddr) -> kube::Client {
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

/// Waits until the edge's copy of model m1 satisfies `check` (None: absent).
async fn edge_model_until(
    edge: &Api<DeviceModel>,
    what: &str,
    check: impl Fn(Option<&DeviceModel>) -> bool,
) {
    eventually(what, PATIENCE, || async {
        let model = match edge.get_opt("m1").await {
            Ok(model) => model,
            Err(_) => return None,
        };
        check(model.as_ref()).then_some(())
    })
    .await;
}

/// Reads one field of dev1 with kubectl until it is `want`.
async fn kubectl_until(k: &Kubectl, jsonpath: &str, want: &str) {
    let arg = format!("jsonpath={jsonpath}");
    let args = ["get", "devices", "dev1", "-n", "default", "-o", &arg];
    eventually(
        &format!("kubectl reads {jsonpath} = {want}"),
        PATIENCE,
        || async {
            let out = k.run(&args).await;
            (out.ok && out.stdout.trim() == want).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_flow_between_the_api_and_the_mapper() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded API writes its admin kubeconfig into the data directory.
    let kubeconfig = dir.path().join("cloud/kubeconfig");
    scenario(dir.path(), &kubeconfig, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_flow_on_kube_apiserver() {
    let Some(target) = cluster::real().await else {
        eprintln!("note: no kube-apiserver built (bash scripts/kube-apiserver.sh); skipping");
        return;
    };
    // The operator's part: cloudcore applies CRDs only to its embedded API.
    cluster::install_crds(&target.client).await;
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), &target.kubeconfig, true).await;
}

/// The whole flow with a cloudcore in `dir` on the API of `kubeconfig`:
/// a cluster's (`configured`) or, written there at start, its embedded one.
async fn scenario(dir: &Path, kubeconfig: &Path, configured: bool) {
    let mut cloud_cfg = config::cloud(&dir.join("cloud"), 30);
    cloud_cfg.modules.device_controller.enable = true;
    if configured {
        cloud_cfg.kube_api_config.kube_config = kubeconfig.display().to_string();
    }
    let cloud = Cloud::start(cloud_cfg).await;
    let cfg = cloud.edge_config(&dir.join("edge"), cloud.addrs.websocket.unwrap());
    let db = PathBuf::from(&cfg.database.data_source);
    let (edge, shutdown) = start_connected_edge(cfg).await;
    let port = edge.mqtt.expect("the embedded broker runs").port();
    let edge_models: Api<DeviceModel> = Api::namespaced(
        metaserver(edge.metaserver.expect("the metaserver runs")),
        "default",
    );

    let mut m = Client::connect(port, Options::new("dev1-mapper"))
        .await
        .expect("the mapper connects");
    for filter in [
        format!("{DEV1}/twin/update/delta"),
        format!("{DEV1}/twin/update/result"),
        format!("{DEV1}/twin/get/result"),
        format!("{DEV1}/state/update/result"),
    ] {
        m.subscribe(&filter).await.expect("subscribed");
    }

    // The user creates a model and a device on edge-1 that uses it, with
    // labels and a desired value.
    let models: Api<DeviceModel> = Api::namespaced(cloud.kube.clone(), "default");
    let model: DeviceModel = serde_json::from_value(json!({
        "apiVersion": "devices.kubeedge.io/v1beta1", "kind": "DeviceModel",
        "metadata": {"name": "m1", "namespace": "default"},
        "spec": {"properties": [{"name": "power", "type": "STRING", "accessMode": "ReadWrite"}]}
    }))
    .unwrap();
    let model = models.create(&PostParams::default(), &model).await.unwrap();
    let api: Api<Device> = Api::namespaced(cloud.kube.clone(), "default");
    let device: Device = serde_json::from_value(json!({
        "apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
        "metadata": {"name": "dev1", "namespace": "default",
                     "labels": {"manufacturer": "acme", "description": "lamp"}},
        "spec": {"nodeName": "edge-1", "deviceModelRef": {"name": "m1"}, "properties": [
            {"name": "power", "desired": {"value": "on", "metadata": {"type": "string"}}},
            {"name": "temp"}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &device).await.unwrap();
    let delta = next(&mut m, &format!("{DEV1}/twin/update/delta")).await;
    assert_eq!(delta["delta"]["power"], "on", "{delta}");
    edge_model_until(&edge_models, "the model reaches the MetaServer", |m| {
        m.is_some_and(|m| m.uid() == model.uid() && m.spec.properties.len() == 1)
    })
    .await;
    attributes_until(&db, &[("description", "lamp"), ("manufacturer", "acme")]).await;

    // The mapper reports a value and says the device is online.
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
    // kubectl reads the same status back from the cloud's API.
    if kubectl::available() {
        let k = Kubectl::with_kubeconfig(kubeconfig, &dir.join("kubectl"));
        kubectl_until(&k, "{.status.twins[0].reported.value}", "on").await;
        kubectl_until(&k, "{.status.state}", "online").await;
    } else {
        eprintln!("note: no kubectl on the PATH; the kubectl read-back is skipped");
    }

    // The labels change: the attributes follow.
    let labels = json!({"metadata": {"labels": {
        "manufacturer": "acme2", "colour": "red", "description": null}}});
    api.patch("dev1", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    attributes_until(&db, &[("colour", "red"), ("manufacturer", "acme2")]).await;

    // The user changes the desired value: a new delta.
    let change = json!({"spec": {"properties": [
        {"name": "power", "desired": {"value": "off", "metadata": {"type": "string"}}},
        {"name": "temp"}]}});
    api.patch("dev1", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    let delta = next(&mut m, &format!("{DEV1}/twin/update/delta")).await;
    assert_eq!(delta["delta"]["power"], "off", "{delta}");

    // The desired value is removed: cleared at the edge, the reported
    // value kept.
    let cleared = json!({"spec": {"properties": [{"name": "power"}, {"name": "temp"}]}});
    api.patch("dev1", &PatchParams::default(), &Patch::Merge(&cleared))
        .await
        .unwrap();
    let twins = twins_until(&mut m, "power has no desired value", |t| {
        t["power"].is_object() && t["power"]["expected"]["value"].is_null()
    })
    .await;
    assert_eq!(twins["power"]["actual"]["value"], "on", "{twins}");

    // The property is removed: the edge's twin and the status entry go.
    let removed = json!({"spec": {"properties": [{"name": "temp"}]}});
    api.patch("dev1", &PatchParams::default(), &Patch::Merge(&removed))
        .await
        .unwrap();
    twins_until(&mut m, "the power twin is deleted", |t| {
        t.get("power").is_none()
    })
    .await;
    status_until(&api, "status.twins drops power", |s| {
        s["twins"]
            .as_array()
            .is_none_or(|t| t.iter().all(|t| t["propertyName"] != "power"))
    })
    .await;

    // The model changes: the edge gets the new version; it is deleted: the
    // edge's copy goes.
    let unit = json!({"spec": {"properties": [
        {"name": "power", "type": "STRING", "accessMode": "ReadWrite", "unit": "W"}]}});
    models
        .patch("m1", &PatchParams::default(), &Patch::Merge(&unit))
        .await
        .unwrap();
    edge_model_until(&edge_models, "the changed model reaches the edge", |m| {
        m.is_some_and(|m| m.spec.properties[0].unit.as_deref() == Some("W"))
    })
    .await;
    models.delete("m1", &DeleteParams::default()).await.unwrap();
    edge_model_until(&edge_models, "the deleted model leaves the edge", |m| {
        m.is_none()
    })
    .await;

    let metrics = cloud.metrics().await;
    for (kind, label) in [
        ("devicecontroller_status_patches_total", "twins"),
        ("devicecontroller_status_patches_total", "pruned"),
        ("devicecontroller_messages_down_total", "devicemodel"),
        ("devicecontroller_messages_down_total", "attributes"),
    ] {
        assert!(
            tests::link::metric(&metrics, kind, label).is_some_and(|n| n >= 1.0),
            "{kind}{{{label}}}: {metrics}"
        );
    }

    m.disconnect().await;
    shutdown.cancel();
    edge.wait().await.unwrap();
    cloud.stop().await;
}
