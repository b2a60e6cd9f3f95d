//! cloudcore with no cluster configured serves its embedded API and writes
//! an admin kubeconfig; real kubectl with that kubeconfig applies the CRDs
//! from `deploy/crds/`, creates and reads a namespace, a pod bound to a
//! node, a configmap, a secret and a Device, watches pods, re-applies a file
//! as a no-op, and gets 409 for a stale update. Also run against Kubernetes'
//! own kube-apiserver when it is built.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use std::path::Path;
use std::time::Duration;

use tests::cluster::{self, Target};
use tests::kubectl::{self, Kubectl};

const PATIENCE: Duration = Duration::from_secs(30);

const OBJECTS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: edge-apps, labels: {app: web}}
spec:
  nodeName: edge-1
  containers: [{name: web, image: "nginx:1.27"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: edge-apps}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: web-secret, namespace: edge-apps}
stringData: {password: s3cret}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo, namespace: edge-apps}
spec:
  nodeName: edge-1
  deviceModelRef: {name: thermo-model}
  protocol: {protocolName: modbus, configData: {slaveID: 1}}
  properties:
  - name: temperature
    desired: {value: "20"}
"#;

fn crds_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/crds")
        .display()
        .to_string()
}

async fn kubectl_flow(t: &Target, home: &Path) {
    let k = Kubectl::with_kubeconfig(&t.kubeconfig, home);
    let name = t.name;
    k.ok(&["apply", "-f", &crds_dir()]).await;
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=30s",
        "crd/devices.devices.kubeedge.io",
    ])
    .await;
    k.ok(&["create", "namespace", "edge-apps"]).await;
    assert!(
        k.ok(&["get", "namespace", "edge-apps"])
            .await
            .contains("edge-apps"),
        "{name}"
    );

    let file = home.join("objects.yaml");
    std::fs::write(&file, OBJECTS).unwrap();
    let file = file.display().to_string();
    // Watch pods from before the apply.
    let mut watch = k.stream(&[
        "get",
        "pods",
        "-n",
        "edge-apps",
        "-w",
        "--output-watch-events",
        "-o",
        "json",
    ]);
    k.ok(&["apply", "-f", &file]).await;
    watch.line_with("ADDED", PATIENCE).await;

    // What each object holds, as kubectl reads it back (the secret's
    // stringData stored as base64 data).
    for (kind, object, path, want) in [
        ("pod", "web", "{.spec.nodeName}", "edge-1"),
        ("configmap", "web-config", "{.data.greeting}", "hello"),
        ("secret", "web-secret", "{.data.password}", "czNjcmV0"),
        ("device", "thermo", "{.spec.nodeName}", "edge-1"),
    ] {
        let jsonpath = format!("jsonpath={path}");
        let got = k
            .ok(&["get", kind, object, "-n", "edge-apps", "-o", &jsonpath])
            .await;
        assert_eq!(got, want, "{name}: {kind}/{object} {path}");
    }

    // Applying the same file again changes nothing.
    let rv = |kind: &'static str, obj: &'static str| {
        let k = k.clone();
        async move {
            k.ok(&[
                "get",
                kind,
                obj,
                "-n",
                "edge-apps",
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ])
            .await
        }
    };
    let before = (
        rv("pod", "web").await,
        rv("configmap", "web-config").await,
        rv("device", "thermo").await,
    );
    k.ok(&["apply", "-f", &file]).await;
    let after = (
        rv("pod", "web").await,
        rv("configmap", "web-config").await,
        rv("device", "thermo").await,
    );
    assert_eq!(before, after, "{name}: a second apply is a no-op");

    // A change, then a stale update.
    k.ok(&["label", "pod", "web", "-n", "edge-apps", "tier=front"])
        .await;
    watch.line_with("MODIFIED", PATIENCE).await;
    let stale = k
        .ok(&[
            "get",
            "configmap",
            "web-config",
            "-n",
            "edge-apps",
            "-o",
            "json",
        ])
        .await;
    k.ok(&[
        "patch",
        "configmap",
        "web-config",
        "-n",
        "edge-apps",
        "--type=merge",
        "-p",
        r#"{"data":{"greeting":"hi"}}"#,
    ])
    .await;
    let stale_file = home.join("stale.json");
    std::fs::write(&stale_file, stale).unwrap();
    let conflict = k
        .run(&["replace", "-f", &stale_file.display().to_string()])
        .await;
    assert!(!conflict.ok, "{name}: a stale update is refused");
    assert!(
        conflict.stderr.contains("Conflict") || conflict.stderr.contains("modified"),
        "{name}: {}",
        conflict.stderr
    );

    // No kubelet runs: delete at once rather than waiting for one.
    k.ok(&[
        "delete",
        "pod",
        "web",
        "-n",
        "edge-apps",
        "--grace-period=0",
        "--force",
    ])
    .await;
    watch.line_with("DELETED", PATIENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_against_the_embedded_api() {
    if !kubectl::available() {
        eprintln!("kubectl not installed (scripts/install-deps.sh installs it); skipping");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let target = cluster::embedded().await;
    assert!(target.kubeconfig.exists(), "cloudcore wrote its kubeconfig");
    kubectl_flow(&target, home.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_against_kube_apiserver() {
    if !kubectl::available() {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let Some(target) = cluster::real().await else {
        eprintln!("kube-apiserver not built (scripts/kube-apiserver.sh); skipping");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    kubectl_flow(&target, home.path()).await;
}
