//! The REST API end to end: a real store in a temporary directory, a real
//! actix `HttpServer` on `127.0.0.1:0`, driven over HTTP by reqwest and by
//! real kubectl (`get`, `-o yaml`, `-o wide`, `-l`, `--field-selector`,
//! `-w`, a refused `delete`).
//!
//! kubectl is `kubectl` on the `PATH`, or every binary named in
//! `APIARY_KUBECTL` (colon-separated, e.g. to test 1.20 and 1.32 in one
//! run); the kubectl part is skipped, with a note, when none is found.

#![allow(clippy::unwrap_used, reason = "tests")]

use crate::support;

use support::{http, kubectls, Kubectl, Server, DEADLINE};

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use kubestore::{Gvr, ObjectKey, Store, WriteOp};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A store and the API serving it.
fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn pod(name: &str, app: &str, node: &str) -> WriteOp {
    WriteOp::put(
        ObjectKey::new(Gvr::core("pods"), Some("default"), name),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                            "labels": {"app": app}, "creationTimestamp": now()},
               "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nginx"}]},
               "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.9"}],
                          "conditions": [{"type": "Ready", "status": "True"}],
                          "containerStatuses": [{"name": "main", "ready": true, "restartCount": 0,
                                                 "state": {"running": {}}}]}}),
    )
}

async fn seed(store: &Store) {
    let key = |resource, ns: Option<&str>, name| ObjectKey::new(Gvr::core(resource), ns, name);
    store
        .write(vec![
            pod("web-1", "web", "edge-1"),
            pod("db-1", "db", "edge-2"),
            WriteOp::put(
                key("nodes", None, "edge-1"),
                json!({"metadata": {"name": "edge-1", "creationTimestamp": now(),
                                    "labels": {"node-role.kubernetes.io/edge": ""}},
                       "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                  "nodeInfo": {"kubeletVersion": "v1.33.0-kubeedge"}}}),
            ),
            WriteOp::put(
                key("configmaps", Some("default"), "settings"),
                json!({"metadata": {"name": "settings", "namespace": "default", "creationTimestamp": now()},
                       "data": {"a": "1", "b": "2"}}),
            ),
            WriteOp::put(
                key("namespaces", None, "default"),
                json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}}),
            ),
        ])
        .await
        .unwrap();
}

async fn json_of(resp: reqwest::Response) -> Value {
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_get_list_and_watch() {
    let server = Server::start_read_only().await;
    seed(server.store()).await;
    let client = http();
    let get = |path: &str| client.get(server.url(path)).send();

    let version = json_of(get("/version").await.unwrap()).await;
    assert_eq!(version["gitVersion"], "v1.33.0-apiary-0.1.0");
    let list = json_of(get("/api/v1/pods?labelSelector=app%3Dweb").await.unwrap()).await;
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let missing = get("/api/v1/namespaces/default/pods/nope").await.unwrap();
    assert_eq!(missing.status(), 404);
    let status = json_of(missing).await;
    assert_eq!(status["message"], "pods \"nope\" not found");

    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut watch = get(&format!(
        "/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}"
    ))
    .await
    .unwrap();
    assert_eq!(watch.status(), 200);
    assert_eq!(watch.headers().get("transfer-encoding").unwrap(), "chunked");
    assert_eq!(
        watch.headers().get("content-type").unwrap(),
        "application/json"
    );
    server
        .store()
        .write(vec![pod("web-2", "web", "edge-1")])
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let event = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                break serde_json::from_slice::<Value>(&line).unwrap();
            }
            buffer.extend_from_slice(&watch.chunk().await.unwrap().unwrap());
        }
    })
    .await
    .unwrap();
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "web-2");

    // An open watch does not hold up shutdown.
    server.stop().await;
    let rest = tokio::time::timeout(DEADLINE, watch.chunk()).await.unwrap();
    assert!(
        matches!(rest, Ok(None) | Err(_)),
        "the watch ended: {rest:?}"
    );
}

/// The words of the line of `table` that starts with `name`.
fn row<'a>(table: &'a str, name: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.contains(&name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_and_watch() {
    let binaries = kubectls();
    if binaries.is_empty() {
        println!("note: kubectl not found, skipping the kubectl checks (set APIARY_KUBECTL)");
        return;
    }
    let server = Server::start_read_only().await;
    seed(server.store()).await;
    for (i, binary) in binaries.iter().enumerate() {
        let home = server
            .dir
            .path()
            .join(binary.to_string_lossy().replace('/', "_"));
        let kubectl = Kubectl::new(binary, &server, home);
        let version = kubectl.ok(&["version"]).await;
        assert!(version.contains("v1.33.0-apiary-0.1.0"), "{version}");

        let all = kubectl.ok(&["get", "pods", "-A"]).await;
        assert_eq!(
            row(&all, "NAMESPACE").unwrap(),
            ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        );
        assert_eq!(
            row(&all, "web-1").unwrap()[..5],
            ["default", "web-1", "1/1", "Running", "0"]
        );
        assert!(row(&all, "db-1").is_some(), "{all}");

        let wide = kubectl.ok(&["get", "pod", "web-1", "-o", "wide"]).await;
        let cells = row(&wide, "web-1").unwrap();
        assert!(
            cells.contains(&"edge-1") && cells.contains(&"10.0.0.9"),
            "{wide}"
        );

        let yaml = kubectl.ok(&["get", "pods", "-o", "yaml"]).await;
        assert!(
            yaml.contains("kind: Pod") && yaml.contains("name: db-1"),
            "{yaml}"
        );
        let json: Value =
            serde_json::from_str(&kubectl.ok(&["get", "pod", "web-1", "-o", "json"]).await)
                .unwrap();
        assert_eq!(json["spec"]["nodeName"], "edge-1");

        let web = kubectl.ok(&["get", "pods", "-l", "app=web"]).await;
        assert!(
            row(&web, "web-1").is_some() && row(&web, "db-1").is_none(),
            "{web}"
        );
        let on_edge2 = kubectl
            .ok(&[
                "get",
                "pods",
                "-A",
                "--field-selector",
                "spec.nodeName=edge-2",
            ])
            .await;
        assert!(
            row(&on_edge2, "db-1").is_some() && row(&on_edge2, "web-1").is_none(),
            "{on_edge2}"
        );

        let nodes = kubectl.ok(&["get", "nodes"]).await;
        assert_eq!(row(&nodes, "edge-1").unwrap()[1..3], ["Ready", "edge"]);
        let cms = kubectl.ok(&["get", "cm"]).await;
        assert_eq!(row(&cms, "settings").unwrap()[1], "2");
        let namespaces = kubectl.ok(&["get", "ns"]).await;
        assert_eq!(row(&namespaces, "default").unwrap()[1], "Active");

        let (ok, _, err) = kubectl.run(&["get", "pod", "nope"]).await;
        assert!(!ok && err.contains("pods \"nope\" not found"), "{err}");
        let (ok, _, err) = kubectl.run(&["delete", "pod", "web-1"]).await;
        assert!(!ok && err.contains("read-only"), "{err}");
        let (ok, _, err) = kubectl.run(&["get", "widgets"]).await;
        assert!(!ok && err.contains("widgets"), "{err}");

        watch_sees_a_new_pod(&kubectl, server.store(), &format!("later-{i}")).await;
        println!("kubectl {} ok", binary.display());
    }
    server.stop().await;
}

/// `kubectl get pods -w` prints a pod written after it started.
async fn watch_sees_a_new_pod(kubectl: &Kubectl, store: &Store, name: &str) {
    let mut child = kubectl
        .command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut lines) = mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    let mut wait_for = async |word: &str, seen: &mut Vec<String>| {
        while !seen
            .iter()
            .any(|l| l.split_whitespace().next() == Some(word))
        {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => seen.push(line),
                _ => panic!("kubectl get pods -w never printed {word}: {seen:#?}"),
            }
        }
    };
    wait_for("web-1", &mut seen).await;
    store.write(vec![pod(name, "web", "edge-1")]).await.unwrap();
    wait_for(name, &mut seen).await;
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
}
