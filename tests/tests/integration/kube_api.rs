//! One kube-rs suite, run against cloudcore's embedded API and against
//! Kubernetes' own kube-apiserver (when `scripts/kube-apiserver.sh` built it,
//! as `.ci/run` does; or any cluster named by `APIARY_TEST_KUBECONFIG`):
//! CRUD with optimistic concurrency, generateName, status patches,
//! selectors, watches and reflectors, CRDs and a Device.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tests::cluster::{self, Target};

const PATIENCE: Duration = Duration::from_secs(30);

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..ConfigMap::default()
    }
}

fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1.27"}]}
    }))
    .unwrap()
}

async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &ns).await.unwrap();
}

fn is_code(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == code)
}

async fn crud(t: &Target) {
    let ns = "suite-crud";
    namespace(&t.client, ns).await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), ns);
    let created = api
        .create(&PostParams::default(), &cm("one", &[("app", "x")]))
        .await
        .unwrap();
    assert!(created.uid().is_some(), "{}: uid set", t.name);
    assert!(
        created.metadata.creation_timestamp.is_some(),
        "{}: creationTimestamp set",
        t.name
    );
    let rv1 = created.resource_version().unwrap();
    let err = api
        .create(&PostParams::default(), &cm("one", &[]))
        .await
        .unwrap_err();
    assert!(is_code(&err, 409), "{}: create twice is 409: {err}", t.name);

    // Update with the current resourceVersion works; with the old one, 409.
    let mut fresh = created.clone();
    fresh.data = Some(BTreeMap::from([("k".to_owned(), "w".to_owned())]));
    let updated = api
        .replace("one", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(updated.resource_version().unwrap(), rv1);
    let err = api
        .replace("one", &PostParams::default(), &created)
        .await
        .unwrap_err();
    assert!(is_code(&err, 409), "{}: stale update is 409: {err}", t.name);

    // generateName.
    let mut gen = cm("", &[("app", "y")]);
    gen.metadata.name = None;
    gen.metadata.generate_name = Some("gen-".to_owned());
    let generated = api.create(&PostParams::default(), &gen).await.unwrap();
    assert!(generated.name_any().starts_with("gen-") && generated.name_any().len() > 4);

    // Merge, JSON and strategic patches.
    let merged = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"m": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.unwrap().get("m").map(String::as_str), Some("1"));
    let json_patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "2"}])).unwrap();
    let patched = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::<()>::Json(json_patch),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap().get("j").map(String::as_str),
        Some("2")
    );

    // Label selectors.
    let x = api
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(
        x.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
        ["one"]
    );
    let not_x = api
        .list(&ListParams::default().labels("app!=x"))
        .await
        .unwrap();
    assert!(not_x.items.iter().all(|c| c.name_any() != "one"));
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=one"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    api.delete("one", &DeleteParams::default()).await.unwrap();
    let err = api.get("one").await.unwrap_err();
    assert!(is_code(&err, 404), "{}: deleted is 404: {err}", t.name);
}

async fn pods_and_status(t: &Target) {
    let ns = "suite-pods";
    namespace(&t.client, ns).await;
    let api: Api<Pod> = Api::namespaced(t.client.clone(), ns);
    api.create(&PostParams::default(), &pod("a", "edge-1"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &pod("b", "edge-2"))
        .await
        .unwrap();
    let on_edge1 = api
        .list(&ListParams::default().fields("spec.nodeName=edge-1"))
        .await
        .unwrap();
    assert_eq!(
        on_edge1
            .items
            .iter()
            .map(|p| p.name_any())
            .collect::<Vec<_>>(),
        ["a"],
        "{}",
        t.name
    );
    let all: Api<Pod> = Api::all(t.client.clone());
    let in_ns = all
        .list(&ListParams::default().fields(&format!("metadata.namespace={ns}")))
        .await
        .unwrap();
    assert_eq!(in_ns.items.len(), 2, "{}", t.name);

    let status = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    let patched = api
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        patched.status.unwrap().phase.as_deref(),
        Some("Running"),
        "{}",
        t.name
    );
    let read = api.get_status("a").await.unwrap();
    assert_eq!(read.spec.unwrap().node_name.as_deref(), Some("edge-1"));
}

async fn watch_and_reflector(t: &Target) {
    let ns = "suite-watch";
    namespace(&t.client, ns).await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), ns);
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .applied_objects()
        .boxed();
    let driver = tokio::spawn(stream.try_for_each(|_| async { Ok(()) }));
    tokio::time::timeout(PATIENCE, reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();

    api.create(&PostParams::default(), &cm("w1", &[("app", "w")]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("w2", &[]))
        .await
        .unwrap();
    tests::eventually("the reflector sees both", PATIENCE, || async {
        (reader.state().len() == 2).then_some(())
    })
    .await;
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await
    .unwrap();
    api.delete("w2", &DeleteParams::default()).await.unwrap();
    tests::eventually(
        "the reflector follows a change and a delete",
        PATIENCE,
        || async {
            let state = reader.state();
            (state.len() == 1
                && state[0]
                    .data
                    .as_ref()
                    .and_then(|d| d.get("k"))
                    .map(String::as_str)
                    == Some("changed"))
            .then_some(())
        },
    )
    .await;
    driver.abort();

    // A raw watch from a list's resourceVersion sees later events in order.
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut events = api
        .watch(&kube::api::WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("w3", &[]))
        .await
        .unwrap();
    api.delete("w3", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = tokio::time::timeout(PATIENCE, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            kube::api::WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.name_any())),
            kube::api::WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.name_any())),
            _ => {}
        }
    }
    assert_eq!(seen, ["ADDED w3", "DELETED w3"], "{}", t.name);
}

async fn crds_and_devices(t: &Target) {
    cluster::install_crds(&t.client).await;
    let ns = "suite-devices";
    namespace(&t.client, ns).await;
    let devices: Api<crds::Device> = Api::namespaced(t.client.clone(), ns);
    let device: crds::Device = serde_json::from_value(json!({
        "apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
        "metadata": {"name": "thermo"},
        "spec": {"nodeName": "edge-1", "deviceModelRef": {"name": "thermo-model"},
                 "protocol": {"protocolName": "modbus", "configData": {"slaveID": 1}},
                 "properties": [{"name": "temperature", "desired": {"value": "20"}}]}
    }))
    .unwrap();
    devices
        .create(&PostParams::default(), &device)
        .await
        .unwrap();
    let status = json!({"status": {"twins": [{"propertyName": "temperature",
        "reported": {"value": "21"}}], "state": "online"}});
    devices
        .patch_status("thermo", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let read = devices.get("thermo").await.unwrap();
    assert_eq!(read.spec.node_name.as_deref(), Some("edge-1"));
    assert_eq!(
        read.status.unwrap().twins[0]
            .reported
            .as_ref()
            .unwrap()
            .value,
        "21",
        "{}",
        t.name
    );
    let on_node = devices.list(&ListParams::default()).await.unwrap();
    assert_eq!(on_node.items.len(), 1);
}

async fn suite(t: Target) {
    crud(&t).await;
    pods_and_status(&t).await;
    watch_and_reflector(&t).await;
    crds_and_devices(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_against_the_embedded_api() {
    suite(cluster::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_against_kube_apiserver() {
    let Some(target) = cluster::real().await else {
        eprintln!("kube-apiserver not built (scripts/kube-apiserver.sh) and APIARY_TEST_KUBECONFIG unset; skipping");
        return;
    };
    suite(target).await;
}
