//! The writable REST API end to end (the cloud's embedded API): a real store
//! in a temporary directory, a real actix `HttpServer` on `127.0.0.1:0`,
//! driven over HTTP by reqwest (generateName, server metadata, the status
//! subresource, preconditions) and by real kubectl: `create namespace`,
//! `apply -f` twice (the second a no-op), `get -w --output-watch-events`,
//! a stale `replace`, `patch` of each type, `delete namespace`.
//!
//! kubectl is `kubectl` on the `PATH`, or every binary named in
//! `APIARY_KUBECTL` (colon-separated, e.g. to test 1.20 and 1.32 in one
//! run); the kubectl part is skipped, with a note, when none is found.

#![allow(clippy::unwrap_used, reason = "tests")]

use crate::support;

use std::path::Path;

use serde_json::json;
use support::{http, kubectls, send, with_json, Kubectl, Server, Watching};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_writes() {
    let server = Server::start().await;
    let client = http();
    let (code, _) = send(with_json(
        client.post(server.url("/api/v1/namespaces")),
        &json!({"metadata": {"name": "apps"}}),
    ))
    .await;
    assert_eq!(code, 201);
    let pods = server.url("/api/v1/namespaces/apps/pods");
    let (code, pod) = send(with_json(
        client.post(&pods),
        &json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "worker-"},
        "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Pending"}}),
    ))
    .await;
    assert_eq!(code, 201, "{pod}");
    let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("worker-") && name.len() == "worker-".len() + 5);
    assert_eq!(pod["metadata"]["uid"].as_str().unwrap().len(), 36);
    let created: jiff::Timestamp = pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(jiff::Timestamp::now().duration_since(created).as_secs() < 60);
    assert_eq!(pod["metadata"]["generation"], 1);

    let one = format!("{pods}/{name}");
    let mut running = pod.clone();
    running["status"]["phase"] = json!("Running");
    running["spec"]["nodeName"] = json!("edge-2");
    let (code, after) = send(with_json(client.put(format!("{one}/status")), &running)).await;
    assert_eq!(code, 200);
    assert_eq!(after["status"]["phase"], "Running");
    assert_eq!(
        after["spec"]["nodeName"], "edge-1",
        "/status changes only the status"
    );
    let (code, stale) = send(with_json(client.put(&one), &running)).await;
    assert_eq!((code, stale["reason"].as_str()), (409, Some("Conflict")));
    let (code, patched) = send(
        client
            .patch(&one)
            .header("Content-Type", "application/strategic-merge-patch+json")
            .body(r#"{"spec":{"containers":[{"name":"c","image":"busybox:2"}]},"status":{"phase":"x"}}"#),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(patched["spec"]["containers"][0]["image"], "busybox:2");
    assert_eq!(
        patched["status"]["phase"], "Running",
        "the main resource keeps the status"
    );
    assert_eq!(patched["metadata"]["generation"], 2);

    let (code, gone) = send(with_json(
        client.delete(&one),
        &json!({
        "preconditions": {"uid": pod["metadata"]["uid"]}}),
    ))
    .await;
    assert_eq!(
        (code, gone["metadata"]["name"].as_str()),
        (200, Some(name.as_str()))
    );
    let (code, _) = send(client.get(&one)).await;
    assert_eq!(code, 404);
    server.stop().await;
}

fn manifests(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  nodeName: edge-1
  containers:
  - name: main
    image: nginx:1.25
    ports: [{{containerPort: 80}}]
  - name: side
    image: busybox
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{a: "1"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {ns}}}
stringData: {{password: hunter2}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_writes() {
    let binaries = kubectls();
    if binaries.is_empty() {
        println!("note: kubectl not found, skipping the kubectl checks (set APIARY_KUBECTL)");
        return;
    }
    let server = Server::start().await;
    for (i, binary) in binaries.iter().enumerate() {
        let home = server.dir.path().join(format!("kubectl-{i}"));
        let kubectl = Kubectl::new(binary, &server, home.clone());
        let ns = format!("team-{i}");
        kubectl_session(&kubectl, &ns, &home).await;
        println!("kubectl {} ok", binary.display());
    }
    server.stop().await;
}

/// Everything one kubectl does, in namespace `ns`.
async fn kubectl_session(kubectl: &Kubectl, ns: &str, home: &Path) {
    let out = kubectl.ok(&["create", "namespace", ns]).await;
    assert!(out.contains(&format!("namespace/{ns} created")), "{out}");
    let mut watch = Watching::start(
        kubectl,
        &["get", "pods", "-n", ns, "-w", "--output-watch-events"],
    );

    let file = home.join("objects.yaml");
    std::fs::write(&file, manifests(ns)).unwrap();
    let file = file.to_str().unwrap();
    let out = kubectl.ok(&["apply", "-f", file]).await;
    assert!(
        out.contains("pod/web created") && out.contains("secret/creds created"),
        "{out}"
    );
    let first = kubectl.json(&["get", "pod", "web", "-n", ns]).await;
    let revisions = [
        "get",
        "pods,cm,secrets",
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].metadata.resourceVersion}",
    ];
    let revision = kubectl.ok(&revisions).await;
    // A Secret's stringData is stored as data, so kubectl always sends it
    // again and says "configured", as with kube-apiserver; nothing changes.
    let out = kubectl.ok(&["apply", "-f", file]).await;
    assert!(
        out.contains("pod/web unchanged") && out.contains("configmap/settings unchanged"),
        "{out}"
    );
    let again = kubectl.ok(&revisions).await;
    assert_eq!(
        again, revision,
        "a second apply of the same file changes nothing"
    );
    let secret = kubectl.json(&["get", "secret", "creds", "-n", ns]).await;
    assert_eq!(secret["data"], json!({"password": "aHVudGVyMg=="}));
    assert_eq!(secret["type"], "Opaque");
    watch.wait_for(&["ADDED", "web"]).await;

    // A replace with a stale resourceVersion is refused.
    let stale = home.join("stale.json");
    std::fs::write(&stale, first.to_string()).unwrap();
    kubectl
        .ok(&["label", "pod", "web", "-n", ns, "tier=front"])
        .await;
    watch.wait_for(&["MODIFIED", "web"]).await;
    let (ok, _, err) = kubectl
        .run(&["replace", "-f", stale.to_str().unwrap()])
        .await;
    assert!(
        !ok && err.contains("Conflict") && err.contains("the object has been modified"),
        "{err}"
    );

    for (kind, body) in [
        ("merge", r#"{"metadata":{"labels":{"m":"1","tier":null}}}"#),
        (
            "json",
            r#"[{"op":"add","path":"/metadata/labels/j","value":"2"}]"#,
        ),
        (
            "strategic",
            r#"{"spec":{"containers":[{"name":"main","image":"nginx:1.26"}]}}"#,
        ),
    ] {
        let args = ["patch", "pod", "web", "-n", ns, "--type", kind, "-p", body];
        kubectl.ok(&args).await;
    }
    let patched = kubectl.json(&["get", "pod", "web", "-n", ns]).await;
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"app": "web", "m": "1", "j": "2"})
    );
    let images: Vec<&str> = patched["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["image"].as_str().unwrap())
        .collect();
    assert_eq!(
        images,
        ["nginx:1.26", "busybox"],
        "containers merged by name"
    );
    assert_eq!(patched["metadata"]["generation"], 2);
    assert_eq!(patched["metadata"]["uid"], first["metadata"]["uid"]);

    kubectl.ok(&["delete", "pod", "web", "-n", ns]).await;
    watch.wait_for(&["DELETED", "web"]).await;
    watch.stop();

    kubectl.ok(&["apply", "-f", file]).await;
    let out = kubectl.ok(&["delete", "namespace", ns]).await;
    assert!(
        out.contains(&format!("namespace \"{ns}\" deleted")),
        "{out}"
    );
    for resource in ["pods", "configmaps", "secrets"] {
        let list = kubectl.json(&["get", resource, "-n", ns]).await;
        assert_eq!(
            list["items"],
            json!([]),
            "{resource} of a deleted namespace"
        );
    }
    let (ok, _, err) = kubectl.run(&["get", "namespace", ns]).await;
    assert!(!ok && err.contains("not found"), "{err}");
}
