//! keadm's flow with Apiary's own commands, end to end: a cloudcore
//! (EdgeController on, embedded API), the real `cloudcore gettoken`, the
//! real `edgecore join` into temp directories, the real `edgecore` daemon
//! started as systemd would, `kubectl get nodes` until the node is Ready
//! with its labels, then `edgecore reset`: a "no" changes nothing, `--force`
//! stops the daemon and leaves nothing behind. Joining again with the same
//! name, the node gets what the cloud had sent its first store (a pod's
//! configmap, unchanged since) — the cloud's sync records of the old store
//! are dropped when the new one registers. Also: joining twice, a token for
//! another CA and a bad flag are refused before anything is written.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::PostParams;
use kube::Api;
use serde_json::json;
use tests::config;
use tests::kubectl::{self, Kubectl};
use tests::link::{try_http_get, Cloud};
use tests::{binaries, eventually};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const PATIENCE: Duration = Duration::from_secs(30);
const NODE: &str = "edge-joined";

async fn run<S: AsRef<OsStr>>(bin: &Path, args: &[S], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("the command finishes")
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every entry under `dir`, recursively.
fn entries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(list) = std::fs::read_dir(dir) {
        for entry in list.flatten() {
            out.push(entry.path().display().to_string());
            out.extend(entries(&entry.path()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_gives_a_ready_node_and_reset_leaves_nothing() {
    if !kubectl::available() {
        eprintln!("note: kubectl is not installed (scripts/install-deps.sh); skipping");
        return;
    }
    let (cloudcore, edgecore) = (binaries::path("cloudcore"), binaries::path("edgecore"));
    let dir = tempfile::tempdir().unwrap();
    let mut cloud_cfg = config::cloud(&dir.path().join("cloud"), 30);
    cloud_cfg.modules.edge_controller.enable = true;
    cloud_cfg.modules.sync_controller.enable = true;
    let cloud_yaml = dir.path().join("cloudcore.yaml");
    std::fs::write(&cloud_yaml, serde_norway::to_string(&cloud_cfg).unwrap()).unwrap();
    let cloud = Cloud::start(cloud_cfg).await;
    let ws = cloud.addrs.websocket.unwrap().to_string();
    let certport = cloud.addrs.https.unwrap().port().to_string();

    // The operator's token, from the cloud's data directory.
    let out = run(
        &cloudcore,
        &["gettoken", "--config", cloud_yaml.to_str().unwrap()],
        b"",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (hash, jwt) = token.split_once('.').unwrap();
    assert_eq!(hash, cloud.token.split_once('.').unwrap().0, "same CA");
    assert!(hash.len() == 64 && jwt.split('.').count() == 3, "{token}");

    let node_root = dir.path().join("node");
    let (etc, var) = (
        node_root.join("etc/kubeedge"),
        node_root.join("var/lib/kubeedge"),
    );
    let join_args = |token: &str, etc: &Path| {
        vec![
            "join".to_owned(),
            "--cloudcore-ipport".to_owned(),
            ws.clone(),
            "--certport".to_owned(),
            certport.clone(),
            "--token".to_owned(),
            token.to_owned(),
            "--edgenode-name".to_owned(),
            NODE.to_owned(),
            "--labels".to_owned(),
            "zone=lab,apiary.io/test=join".to_owned(),
            "--config-dir".to_owned(),
            etc.display().to_string(),
            "--data-dir".to_owned(),
            var.display().to_string(),
        ]
    };

    // Refusals first: nothing may be written by any of them.
    let other_ca = format!("{}.{jwt}", "0".repeat(64));
    let bad = join_args(&other_ca, &etc);
    let out = run(&edgecore, &bad, b"").await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("does not match the join token"),
        "{}",
        text(&out)
    );
    let mut bad = join_args(&token, &etc);
    bad[8] = "Not_A_Name".to_owned();
    let out = run(&edgecore, &bad, b"").await;
    assert!(text(&out).contains("--edgenode-name"), "{}", text(&out));
    assert!(
        entries(dir.path()).iter().all(|e| !e.contains("/node")),
        "refusals wrote nothing"
    );

    // The join: a progress line per step, then the files.
    let good = join_args(&token, &etc);
    let out = run(&edgecore, &good, b"").await;
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    for step in [
        "[1/5]",
        "[2/5] fetched the CA",
        "[3/5]",
        "[4/5]",
        "[5/5] wrote",
    ] {
        assert!(said.contains(step), "{step}: {said}");
    }
    let config_path = etc.join("config/edgecore.yaml");
    for file in [
        "config/edgecore.yaml",
        "ca/rootCA.crt",
        "certs/server.crt",
        "certs/server.key",
    ] {
        assert!(
            etc.join(file).is_file(),
            "{file}: {:?}",
            entries(&node_root)
        );
    }
    // Joining again is refused: reset first.
    let out = run(&edgecore, &good, b"").await;
    assert!(
        text(&out).contains("run `edgecore reset` first"),
        "{}",
        text(&out)
    );

    let config_arg = config_path.to_str().unwrap();
    let (mut daemon, metaserver) = start_edge(&edgecore, &config_path);
    let home = dir.path().join("kubectl-home");
    std::fs::create_dir_all(&home).unwrap();
    let kubectl = Kubectl::with_kubeconfig(&dir.path().join("cloud/kubeconfig"), &home);
    let ready =
        r#"jsonpath={.status.conditions[?(@.type=="Ready")].status} {.metadata.labels.zone}"#;
    eventually(
        &format!("{NODE} Ready in kubectl get nodes"),
        PATIENCE,
        || async {
            let out = kubectl.run(&["get", "node", NODE, "-o", ready]).await;
            (out.stdout.trim() == "True lab").then_some(())
        },
    )
    .await;
    let listed = kubectl.ok(&["get", "nodes"]).await;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(NODE) && l.contains(" Ready ")),
        "{listed}"
    );
    // The new store's mark reaches the cloud, which keeps it off the Node.
    let annotations = kubectl
        .ok(&[
            "get",
            "node",
            NODE,
            "-o",
            "jsonpath={.metadata.annotations}",
        ])
        .await;
    assert!(
        !annotations.contains(proto::modules::EDGE_STORE_ANNOTATION),
        "{annotations}"
    );
    // A pod bound to the node, and the configmap it mounts: at the edge.
    bind_pod_with_configmap(&cloud.kube).await;
    served(metaserver, "before the reset").await;

    // A "no" changes nothing.
    let reset = ["reset", "--config", config_arg];
    let out = run(&edgecore, &reset, b"n\n").await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not confirmed"), "{}", text(&out));
    assert!(config_path.is_file());
    assert!(daemon.try_wait().unwrap().is_none(), "still running");

    // --force stops the daemon and removes everything join and it wrote.
    let out = run(
        &edgecore,
        &["reset", "--force", "--config", config_arg],
        b"",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("stopped edgecore (pid"), "{said}");
    let status = tokio::time::timeout(PATIENCE, daemon.wait())
        .await
        .expect("edgecore exits after reset")
        .unwrap();
    assert!(
        status.success(),
        "edgecore stopped cleanly on SIGTERM: {status}"
    );
    let mut left = entries(&node_root);
    left.sort();
    assert_eq!(
        left,
        ["etc", "var", "var/lib"].map(|d| node_root.join(d).display().to_string()),
        "only the directories above the ones join created remain:\n{said}"
    );

    // Once more: nothing to reset.
    let out = run(
        &edgecore,
        &["reset", "--force", "--config", config_arg],
        b"",
    )
    .await;
    assert!(
        out.status.success() && text(&out).contains("nothing to reset"),
        "{}",
        text(&out)
    );

    // The same name joins again: the new store gets the configmap, which
    // has not changed since the old store acked it.
    let out = run(&edgecore, &good, b"").await;
    assert!(out.status.success(), "{}", text(&out));
    let (daemon, metaserver) = start_edge(&edgecore, &config_path);
    served(metaserver, "after joining again").await;
    drop(daemon);
    cloud.stop().await;
}

/// Moves the joined edge's own listeners to free ports (so that this test
/// runs beside others; the rest is join's), and starts the daemon as
/// systemd would. Returns it and its MetaServer's address.
fn start_edge(edgecore: &Path, config_path: &Path) -> (tokio::process::Child, SocketAddr) {
    let metaserver = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut edge_cfg: edgecore::EdgeCoreConfig = daemonkit::config::load(config_path).unwrap();
    edge_cfg.common_config.monitor_server.bind_address = "127.0.0.1:0".into();
    edge_cfg.modules.meta_manager.meta_server.server = metaserver.to_string();
    edge_cfg.modules.event_bus.mqtt_server_internal = "tcp://127.0.0.1:0".into();
    edge_cfg.modules.node_status.node_status_update_frequency = 1;
    std::fs::write(config_path, serde_norway::to_string(&edge_cfg).unwrap()).unwrap();
    let daemon = Command::new(edgecore)
        .arg("--config")
        .arg(config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (daemon, metaserver)
}

const CONFIGMAP: &str = "/api/v1/namespaces/default/configmaps/cm-join";

/// Creates a pod bound to [`NODE`] that mounts configmap `cm-join`, and the
/// configmap.
async fn bind_pod_with_configmap(kube: &kube::Client) {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cm-join", "namespace": "default"},
        "data": {"greeting": "hello"}
    }))
    .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "joined-web", "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "web", "image": "nginx"}],
            "volumes": [{"name": "cfg", "configMap": {"name": "cm-join"}}]
        }
    }))
    .unwrap();
    let pp = PostParams::default();
    Api::<ConfigMap>::namespaced(kube.clone(), "default")
        .create(&pp, &cm)
        .await
        .unwrap();
    Api::<Pod>::namespaced(kube.clone(), "default")
        .create(&pp, &pod)
        .await
        .unwrap();
}

/// Waits until the edge's MetaServer serves the configmap.
async fn served(metaserver: SocketAddr, when: &str) {
    eventually(
        &format!("{when}: {CONFIGMAP} at the edge"),
        PATIENCE,
        || async {
            let reply = try_http_get(metaserver, CONFIGMAP).await?;
            (reply.starts_with("HTTP/1.1 200") && reply.contains("hello")).then_some(())
        },
    )
    .await;
}
