//! The real kube-apiserver (1.20.2, built from Debian's source by
//! `scripts/kube-apiserver.sh`) with Debian's etcd takes the objects
//! Apiary's kube-facing tests use: with real kubectl, a namespace, a
//! configmap, a CRD (waited for until Established) and a custom resource
//! read back; over the raw API, a pod bound to a node (it stays Pending: no
//! scheduler or kubelet runs), a secret, and a status-subresource patch.
//! The server must still be running afterwards: the vendored reflect2 1.0.1
//! crashed it on the first custom resource under Go >= 1.18.
//!
//! Without a built server the test prints a note and passes.

#![allow(clippy::unwrap_used, reason = "a test: failing loudly is the point")]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use tests::kube::{self, RealApiServer};

const NS: &str = "apiary-test";
const PATIENCE: Duration = Duration::from_secs(60);

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.apiary.io
spec:
  group: example.apiary.io
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    listKind: WidgetList
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
          status:
            type: object
            properties:
              ready:
                type: boolean
"#;

const WIDGET: &str = r#"apiVersion: example.apiary.io/v1
kind: Widget
metadata:
  name: w1
  namespace: apiary-test
spec:
  size: 3
"#;

/// Real kubectl with the server's kubeconfig and its own HOME (so its
/// discovery cache is its own).
#[derive(Clone)]
struct Kubectl {
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    /// Runs `kubectl <args>` (split at whitespace): stdout, or stderr as
    /// the error.
    async fn run(&self, args: &str) -> Result<String, String> {
        let mut cmd = Command::new("kubectl");
        cmd.env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=30s")
            .args(args.split_whitespace())
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap_or_else(|err| panic!("kubectl {args}: {err}"));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `kubectl <args>`, failing the test if it fails.
    async fn ok(&self, args: &str) -> String {
        self.run(args)
            .await
            .unwrap_or_else(|err| panic!("kubectl {args} failed: {err}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apiserver_stores_what_apiary_uses() {
    let Some(binary) = kube::binary() else {
        eprintln!(
            "note: no kube-apiserver {} built (bash scripts/kube-apiserver.sh) or no /usr/bin/etcd; skipping",
            kube::VERSION
        );
        return;
    };
    if !tests::kubectl::available() {
        eprintln!("note: no kubectl on the PATH; skipping");
        return;
    }
    let mut server = RealApiServer::start_with(&binary).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let kubectl = Kubectl {
        kubeconfig: server.kubeconfig_path().to_path_buf(),
        home: home.path().to_path_buf(),
    };

    // kubectl: namespace, configmap.
    kubectl.ok(&format!("create namespace {NS}")).await;
    kubectl
        .ok(&format!("create configmap cm1 -n {NS} --from-literal=k=v"))
        .await;
    let value = kubectl
        .ok(&format!(
            "get configmap cm1 -n {NS} -o jsonpath={{.data.k}}"
        ))
        .await;
    assert_eq!(value, "v");

    // kubectl: a CRD, Established, then a custom resource read back.
    let crd = home.path().join("crd.yaml");
    std::fs::write(&crd, CRD).unwrap();
    kubectl.ok(&format!("apply -f {}", crd.display())).await;
    kubectl
        .ok("wait --for=condition=Established crd/widgets.example.apiary.io --timeout=60s")
        .await;
    let widget = home.path().join("widget.yaml");
    std::fs::write(&widget, WIDGET).unwrap();
    let apply = format!("apply -f {}", widget.display());
    // kubectl's discovery cache may not know the new kind on the first try;
    // a server that died (reflect2 1.0.1 under Go >= 1.18) fails at once.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while let Err(err) = kubectl.run(&apply).await {
        assert!(
            server.is_running(),
            "kube-apiserver died creating a custom resource:\n{}",
            server.log_excerpt()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "custom resource not created in {PATIENCE:?}: {err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let size = kubectl
        .ok(&format!(
            "get widgets.example.apiary.io w1 -n {NS} -o jsonpath={{.spec.size}}"
        ))
        .await;
    assert_eq!(size, "3");

    // Raw API: a pod bound to a node stays Pending.
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p1", "namespace": NS, "labels": {"app": "p1"}},
        "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": "nginx:1.27"}]}
    });
    let created = server
        .request("POST", &format!("/api/v1/namespaces/{NS}/pods"), Some(&pod))
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    let read = server
        .request("GET", &format!("/api/v1/namespaces/{NS}/pods/p1"), None)
        .await
        .unwrap()
        .json();
    assert_eq!(read["spec"]["nodeName"], "edge-1");
    assert_eq!(read["status"]["phase"], "Pending");

    // Raw API: a secret.
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s1", "namespace": NS},
        "type": "Opaque", "data": {"password": "aHVudGVyMg=="}
    });
    let created = server
        .request(
            "POST",
            &format!("/api/v1/namespaces/{NS}/secrets"),
            Some(&secret),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    let read = server
        .request("GET", &format!("/api/v1/namespaces/{NS}/secrets/s1"), None)
        .await
        .unwrap()
        .json();
    assert_eq!(read["data"]["password"], "aHVudGVyMg==");

    // Raw API: the status subresource takes status and leaves spec alone.
    let widgets = format!("/apis/example.apiary.io/v1/namespaces/{NS}/widgets");
    let patched = server
        .request(
            "PATCH",
            &format!("{widgets}/w1/status"),
            Some(&json!({"spec": {"size": 9}, "status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status, 200, "{}", patched.body);
    let read = server
        .request("GET", &format!("{widgets}/w1"), None)
        .await
        .unwrap()
        .json();
    assert_eq!(read["status"]["ready"], true);
    assert_eq!(read["spec"]["size"], 3);

    // Still alive after storing custom resources, and kubectl lists them.
    let listed = kubectl.ok("get widgets -A -o name").await;
    assert!(listed.contains("widget.example.apiary.io/w1"), "{listed}");
    let ready = server.request("GET", "/readyz", None).await.unwrap();
    assert_eq!((ready.status, ready.body.trim()), (200, "ok"));
    assert!(
        server.is_running(),
        "kube-apiserver died:\n{}",
        server.log_excerpt()
    );
}
