//! Reliable sync end to end: objects created, changed and deleted while
//! the link is cut and cloudcore is SIGKILLed and restarted converge on
//! the edge.
//!
//! A cloudcore process (`cloud-probe`, its data directory keeping the
//! embedded API's SQLite, or pointed at a real kube-apiserver), a real
//! edgecore in-process (MetaManager's SQLite), a TCP proxy between them.
//! edge-1 gets a pod with its configmap and secret; the link is cut;
//! objects are created, changed and deleted; cloudcore is killed and
//! started again on the same data directory; more changes, among them a
//! configmap deleted and re-created under the same name (a new UID); the
//! link returns. Then every edge copy in `meta_v2` has exactly the API's
//! resourceVersion, nothing deleted lingers, nothing is missing, and the
//! ObjectSync records say the same. Deliveries the edge already had
//! (MetaManager's `unchanged` writes) are printed as duplicates. Last,
//! edge-1's Node is deleted and a restarted cloudcore collects its records.
//!
//! The real kube-apiserver run needs `scripts/kube-apiserver.sh` to have
//! built it; without it the test prints a note and passes.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use tests::cluster::client_from;
use tests::link::{http_get, metric, start_connected_edge};
use tests::proxy::{Mode, TcpProxy};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const NS: &str = "default";
const NODE: &str = "edge-1";
const PATIENCE: Duration = Duration::from_secs(90);

/// What a `cloud-probe` process printed about itself.
struct CloudInfo {
    websocket: SocketAddr,
    https: SocketAddr,
    monitor: SocketAddr,
    kubeconfig: PathBuf,
    token: String,
}

/// A running `cloud-probe`.
struct CloudProc {
    child: Child,
    info: CloudInfo,
    client: kube::Client,
}

impl CloudProc {
    /// Starts `cloud-probe` on the config file at `config` and reads its
    /// addresses.
    async fn start(config: &Path) -> CloudProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cloud-probe"))
            .arg(config)
            .env(
                "RUST_LOG",
                "warn,cloudcore::synccontroller=info,cloudcore::daemon=info",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start cloud-probe");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("cloudcore starts in time")
            .unwrap()
            .expect("cloudcore prints its addresses");
        // Keep reading (and discarding) so the process never writes into a
        // closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let v: Value = serde_json::from_str(&line).unwrap();
        let addr = |k: &str| v[k].as_str().unwrap().parse().unwrap();
        let info = CloudInfo {
            websocket: addr("websocket"),
            https: addr("https"),
            monitor: addr("monitor"),
            kubeconfig: PathBuf::from(v["kubeconfig"].as_str().unwrap()),
            token: v["token"].as_str().unwrap().to_owned(),
        };
        let client = client_from(&info.kubeconfig).await;
        CloudProc {
            child,
            info,
            client,
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// The cloud's configuration file: CloudHub on loopback, its data in
/// `dir`, WebSocket on `ws_port` (0 the first time, the same port after a
/// restart), the API `kubeconfig` or the embedded one.
fn write_cloud_config(dir: &Path, ws_port: u16, kubeconfig: Option<&Path>) -> PathBuf {
    let mut config = tests::config::cloud(&dir.join("data"), 30);
    config.modules.cloud_hub.quic.enable = false;
    config.modules.cloud_hub.websocket.port = ws_port;
    config.modules.device_controller.enable = true;
    config.modules.edge_controller.enable = true;
    config.modules.sync_controller.enable = true;
    if let Some(path) = kubeconfig {
        config.kube_api_config.kube_config = path.display().to_string();
    }
    let path = dir.join("cloudcore.yaml");
    std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
    path
}

/// `(resource, namespace, name)`; namespace empty when cluster-scoped.
type Key = (String, String, String);

/// What the edge stores: key → origin resourceVersion, from MetaManager's
/// `meta_v2` table (pods, configmaps, secrets, nodes).
fn edge_copies(db: &Path) -> BTreeMap<Key, String> {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return BTreeMap::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT key, origin_version FROM meta_v2") else {
        return BTreeMap::new();
    };
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
        })
        .unwrap();
    let mut out = BTreeMap::new();
    for (key, origin) in rows.flatten() {
        // /<group|core>/<version>/<resource>/<namespace|null>/<name>
        let parts: Vec<&str> = key.split('/').collect();
        let [_, _, _, resource, ns, name] = parts[..] else {
            continue;
        };
        if !["pods", "configmaps", "secrets", "nodes"].contains(&resource) {
            continue;
        }
        let ns = if ns == "null" { "" } else { ns };
        out.insert(
            (resource.to_owned(), ns.to_owned(), name.to_owned()),
            origin.unwrap_or_default(),
        );
    }
    out
}

/// What the API says edge-1 should have: its Node, the pods bound to it,
/// the configmaps and secrets they reference that exist. Key → (uid, rv).
async fn expected(client: &kube::Client) -> BTreeMap<Key, (String, String)> {
    let mut out = BTreeMap::new();
    let mut put = |resource: &str, ns: &str, meta: &kube::api::ObjectMeta| {
        out.insert(
            (
                resource.to_owned(),
                ns.to_owned(),
                meta.name.clone().unwrap(),
            ),
            (
                meta.uid.clone().unwrap(),
                meta.resource_version.clone().unwrap(),
            ),
        );
    };
    let node = Api::<Node>::all(client.clone()).get(NODE).await.unwrap();
    put("nodes", "", &node.metadata);
    let pods = Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    let (mut cms, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    for pod in pods
        .items
        .iter()
        .filter(|p| cloudcore::scope::pod_node(p) == Some(NODE))
    {
        put("pods", NS, &pod.metadata);
        cms.extend(cloudcore::scope::pod_configmaps(pod));
        secrets.extend(cloudcore::scope::pod_secrets(pod));
    }
    let cm_api = Api::<ConfigMap>::namespaced(client.clone(), NS);
    for name in cms {
        if let Some(cm) = cm_api.get_opt(&name).await.unwrap() {
            put("configmaps", NS, &cm.metadata);
        }
    }
    let secret_api = Api::<Secret>::namespaced(client.clone(), NS);
    for name in secrets {
        if let Some(s) = secret_api.get_opt(&name).await.unwrap() {
            put("secrets", NS, &s.metadata);
        }
    }
    out
}

/// The records for edge-1: object UID → acked resourceVersion.
async fn sync_records(client: &kube::Client) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let namespaced = Api::<crds::ObjectSync>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let cluster = Api::<crds::ClusterObjectSync>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let records = namespaced
        .items
        .iter()
        .map(|r| (r.name_any(), r.status.clone()))
        .chain(
            cluster
                .items
                .iter()
                .map(|r| (r.name_any(), r.status.clone())),
        );
    for (name, status) in records {
        if let Some(uid) = name.strip_prefix(&format!("{NODE}.")) {
            let rv = status
                .and_then(|s| s.object_resource_version)
                .unwrap_or_default();
            out.insert(uid.to_owned(), rv);
        }
    }
    out
}

/// Waits until the edge's copies are exactly what the API says edge-1
/// should have, at the API's versions, and the sync records agree. Each
/// new difference seen on the way is printed, for a failure's diagnosis.
async fn converged(what: &str, client: &kube::Client, db: &Path) {
    let last = std::sync::Mutex::new(String::new());
    tests::eventually(what, PATIENCE, || async {
        let want = expected(client).await;
        let have = edge_copies(db);
        let want_rv: BTreeMap<Key, String> = want
            .iter()
            .map(|(k, (_, rv))| (k.clone(), rv.clone()))
            .collect();
        let want_records: BTreeMap<String, String> = want.values().cloned().collect();
        let records = sync_records(client).await;
        if have == want_rv && records == want_records {
            return Some(());
        }
        let diff = format!(
            "{what}: edge has {have:?}\nAPI wants {want_rv:?}\nrecords {records:?}\nwant records {want_records:?}"
        );
        let mut last = last.lock().unwrap();
        if *last != diff {
            eprintln!("{diff}");
            *last = diff;
        }
        None
    })
    .await;
}

fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "data": {"value": value}
    }))
    .unwrap()
}

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "stringData": {"token": name}
    }))
    .unwrap()
}

/// A pod bound to edge-1 that mounts configmap `cm` and, if given, secret
/// `secret`.
fn pod(name: &str, cm: &str, secret: Option<&str>) -> Pod {
    let mut volumes = vec![json!({"name": "cm", "configMap": {"name": cm}})];
    if let Some(s) = secret {
        volumes.push(json!({"name": "secret", "secret": {"secretName": s}}));
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "app", "image": "busybox"}],
            "volumes": volumes,
        }
    }))
    .unwrap()
}

/// The API handles of one phase (a new client after a restart).
struct Objects {
    cms: Api<ConfigMap>,
    secrets: Api<Secret>,
    pods: Api<Pod>,
}

impl Objects {
    fn new(client: &kube::Client) -> Objects {
        Objects {
            cms: Api::namespaced(client.clone(), NS),
            secrets: Api::namespaced(client.clone(), NS),
            pods: Api::namespaced(client.clone(), NS),
        }
    }

    async fn create_cm(&self, name: &str, value: &str) {
        self.cms
            .create(&PostParams::default(), &configmap(name, value))
            .await
            .unwrap();
    }

    async fn update_cm(&self, name: &str, value: &str) {
        let patch = json!({"data": {"value": value}});
        self.cms
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn create_secret(&self, name: &str) {
        self.secrets
            .create(&PostParams::default(), &secret(name))
            .await
            .unwrap();
    }

    async fn create_pod(&self, name: &str, cm: &str, secret: Option<&str>) {
        self.pods
            .create(&PostParams::default(), &pod(name, cm, secret))
            .await
            .unwrap();
    }
}

/// The edge's metric `name{outcome=...}`, 0 when not yet reported.
fn outcome(text: &str, name: &str, outcome: &str) -> f64 {
    metric(text, name, &format!("outcome=\"{outcome}\"")).unwrap_or(0.0)
}

async fn converge_through_cut_link_and_restart(kubeconfig: Option<&Path>, target: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_cloud_config(dir.path(), 0, kubeconfig);
    let cloud = CloudProc::start(&config).await;
    let ws_port = cloud.info.websocket.port();

    // edge-1 is a Node (made here: edgecore's node status is off, so the
    // Node and its resourceVersion stay still) with a pod, its configmap
    // and its secret.
    let node: Node = serde_json::from_value(json!({"metadata": {"name": NODE,
        "labels": {cloudcore::scope::EDGE_NODE_LABEL: ""}}}))
    .unwrap();
    Api::<Node>::all(cloud.client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let o = Objects::new(&cloud.client);
    o.create_cm("cm-a", "1").await;
    o.create_secret("secret-a").await;
    o.create_pod("pod-a", "cm-a", Some("secret-a")).await;
    o.create_cm("cm-b", "1").await;
    o.create_secret("secret-b").await;
    o.create_pod("pod-b", "cm-b", Some("secret-b")).await;

    let proxy = TcpProxy::start(cloud.info.websocket).await.unwrap();
    let edge_dir = dir.path().join("edge");
    let mut edge_config = tests::config::edge(
        &edge_dir,
        NODE,
        &cloud.info.token,
        cloud.info.https,
        proxy.addr(),
        tests::config::Via::WebSocket,
        1,
    );
    edge_config.modules.node_status.enable = false;
    let db = PathBuf::from(&edge_config.database.data_source);
    let (edge, edge_shutdown) = start_connected_edge(edge_config).await;
    converged("after joining", &cloud.client, &db).await;
    let joined = http_get(edge.monitor, "/metrics").await;

    // The link goes.
    proxy.set(Mode::Drop);
    let mut link = edge.hub().unwrap().connected();
    tokio::time::timeout(PATIENCE, link.wait_for(|up| !*up))
        .await
        .expect("the edge notices the cut")
        .unwrap();

    // Changes while it is cut: a new pod with a new configmap, a changed
    // configmap, a deleted secret (still named by pod-a), a deleted pod
    // (its configmap and secret leave edge-1's scope).
    o.create_cm("cm-c", "1").await;
    o.create_pod("pod-c", "cm-c", None).await;
    o.update_cm("cm-a", "2").await;
    o.secrets
        .delete("secret-a", &DeleteParams::default())
        .await
        .unwrap();
    // At once: no kubelet finishes a graceful deletion on kube-apiserver.
    o.pods
        .delete("pod-b", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();

    // cloudcore dies and comes back on the same data directory.
    cloud.kill().await;
    let config = write_cloud_config(dir.path(), ws_port, kubeconfig);
    let cloud = CloudProc::start(&config).await;
    let o = Objects::new(&cloud.client);

    // More changes, still cut: cm-c changes, a new pod with a new secret,
    // pod-a's labels change, and cm-a is deleted and made again (new UID).
    o.update_cm("cm-c", "2").await;
    o.create_secret("secret-d").await;
    o.create_pod("pod-d", "cm-c", Some("secret-d")).await;
    let labels = json!({"metadata": {"labels": {"phase": "two"}}});
    o.pods
        .patch("pod-a", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    o.cms
        .delete("cm-a", &DeleteParams::default())
        .await
        .unwrap();
    o.create_cm("cm-a", "3").await;

    // The link returns: everything converges.
    proxy.set(Mode::Pass);
    converged("after the restart and reconnect", &cloud.client, &db).await;
    let copies = edge_copies(&db);
    for gone in [
        ("pods", "pod-b"),
        ("configmaps", "cm-b"),
        ("secrets", "secret-a"),
        ("secrets", "secret-b"),
    ] {
        let key = (gone.0.to_owned(), NS.to_owned(), gone.1.to_owned());
        assert!(!copies.contains_key(&key), "{gone:?} lingers at the edge");
    }
    let edge_cm_a: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT value FROM meta_v2 WHERE key = '/core/v1/configmaps/default/cm-a'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let edge_cm_a: Value = serde_json::from_str(&edge_cm_a).unwrap();
    let api_cm_a = o.cms.get("cm-a").await.unwrap();
    assert_eq!(edge_cm_a["data"]["value"], "3");
    assert_eq!(
        edge_cm_a["metadata"]["uid"].as_str(),
        api_cm_a.uid().as_deref(),
        "the re-created configmap replaced the old one"
    );

    // Duplicates: deliveries MetaManager did not apply because it had
    // that version already (or, for a delete, did not have the object).
    let done = http_get(edge.monitor, "/metrics").await;
    let cloud_metrics = http_get(cloud.info.monitor, "/metrics").await;
    let unchanged = outcome(&done, "metamanager_applied_total", "unchanged")
        - outcome(&joined, "metamanager_applied_total", "unchanged");
    let applied: f64 = ["created", "updated", "deleted"]
        .iter()
        .map(|o| {
            outcome(&done, "metamanager_applied_total", o)
                - outcome(&joined, "metamanager_applied_total", o)
        })
        .sum();
    let acks = metric(&done, "metamanager_acks_total", "").unwrap_or(0.0)
        - metric(&joined, "metamanager_acks_total", "").unwrap_or(0.0);
    let resync = |op: &str| {
        metric(
            &cloud_metrics,
            "synccontroller_resync_sends_total",
            &format!("op=\"{op}\""),
        )
        .unwrap_or(0.0)
    };
    eprintln!(
        "converge[{target}]: after the cut the edge acked {acks} messages: {applied} applied, \
         {unchanged} duplicates (version already held, or delete of an absent object); \
         restarted cloudcore resynced insert={} update={} delete={}, dropped as already acked: {}",
        resync("insert"),
        resync("update"),
        resync("delete"),
        metric(
            &cloud_metrics,
            "cloudhub_dropped_messages_total",
            "reason=\"stale\""
        )
        .unwrap_or(0.0),
    );

    // edge-1 goes away for good: once its Node is deleted, a restarted
    // cloudcore collects its records at start.
    edge_shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), edge.wait())
        .await
        .expect("edgecore stops")
        .unwrap();
    Api::<Node>::all(cloud.client.clone())
        .delete(NODE, &DeleteParams::default())
        .await
        .unwrap();
    cloud.kill().await;
    let cloud = CloudProc::start(&config).await;
    tests::eventually("edge-1's records collected", PATIENCE, || async {
        sync_records(&cloud.client).await.is_empty().then_some(())
    })
    .await;
    cloud.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_on_the_embedded_api() {
    converge_through_cut_link_and_restart(None, "embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_on_kube_apiserver() {
    let Some(binary) = tests::kube::binary() else {
        eprintln!(
            "note: no kube-apiserver {} built (bash scripts/kube-apiserver.sh) or no /usr/bin/etcd; skipping",
            tests::kube::VERSION
        );
        return;
    };
    let server = tests::kube::RealApiServer::start_with(&binary)
        .await
        .unwrap();
    // On a cluster the CRDs are the operator's to install.
    tests::cluster::install_crds(&client_from(server.kubeconfig_path()).await).await;
    converge_through_cut_link_and_restart(Some(server.kubeconfig_path()), "kube-apiserver").await;
}
