//! Everything in `deploy/` applied with kubectl: to a real kube-apiserver
//! 1.20.2 (server-side dry run first, then for real, then read back), and
//! the kinds cloudcore's embedded API serves to it.

use std::collections::BTreeSet;
use std::path::Path;

use cloudcore::config::CloudCoreConfig;
use serde_json::{json, Value};
use tests::kube::{self, RealApiServer};
use tests::kubectl::{self, Kubectl};

use super::chart::{helm_available, render, OVERRIDE_VALUES};
use super::{deploy, docs_in, file_docs, kind, name, one, str_at, write_docs};

/// The namespace of the chart's releases applied next to the plain
/// manifests (which use kubeedge).
const HELM_NS: &str = "apiary-helm";

/// What the embedded API serves of the manifests' kinds (besides the
/// CRDs, which [`prepare`] applies); the rest (Deployments, RBAC) is only
/// parsed there.
const EMBEDDED_KINDS: [&str; 6] = [
    "Namespace",
    "ServiceAccount",
    "Service",
    "ConfigMap",
    "DeviceModel",
    "Device",
];

/// Every object to apply, as files in apply order: the plain manifests,
/// the chart rendered twice into [`HELM_NS`] (defaults as release
/// `apiary`, the override as `apiary-lb`; without helm, none), the
/// example DeviceModel and Device.
struct Manifests {
    files: Vec<(String, Vec<Value>)>,
    charts: bool,
}

impl Manifests {
    fn collect(home: &Path) -> Manifests {
        let plain = deploy("cloudcore");
        let mut files = vec![(plain.display().to_string(), docs_in(&plain))];
        let charts = helm_available();
        if charts {
            for (release, values) in [("apiary", None), ("apiary-lb", Some(OVERRIDE_VALUES))] {
                let docs = render(home, release, HELM_NS, values);
                let file = write_docs(
                    home,
                    &format!("{release}.yaml"),
                    &docs.iter().collect::<Vec<_>>(),
                );
                files.push((file, docs));
            }
        } else {
            eprintln!("note: no helm on the PATH; the chart is not applied");
        }
        for example in ["devicemodel.yaml", "device.yaml"] {
            let path = deploy("examples").join(example);
            files.push((path.display().to_string(), file_docs(&path)));
        }
        Manifests { files, charts }
    }

    fn docs(&self) -> impl Iterator<Item = &Value> {
        self.files.iter().flat_map(|(_, docs)| docs)
    }
}

/// Applies the CRDs (deploy/crds/; the chart's crds/ are byte-for-byte
/// copies, which `the_charts_crds_are_copies_of_deploy_crds` checks) and
/// waits until they are Established, then the namespaces the rest goes
/// into.
async fn prepare(k: &Kubectl) {
    k.ok(&["apply", "-f", &deploy("crds").display().to_string()])
        .await;
    let crds: Vec<String> = crds::all()
        .into_iter()
        .map(|(_, crd)| format!("crd/{}", crd.metadata.name.unwrap_or_default()))
        .collect();
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    wait.extend(crds.iter().map(String::as_str));
    k.ok(&wait).await;
    k.ok(&[
        "apply",
        "-f",
        &deploy("cloudcore/00-namespace.yaml").display().to_string(),
    ])
    .await;
    k.ok(&["create", "namespace", HELM_NS]).await;
}

/// `kubectl apply <extra> -f <file>`, again (for
/// [`tests::DEFAULT_PATIENCE`]) while kubectl's discovery does not know a
/// just-established custom resource yet; each failure's stderr is printed.
async fn apply(k: &Kubectl, file: &str, extra: &[&str]) {
    let mut args = vec!["apply"];
    args.extend(extra);
    args.extend(["-f", file]);
    let what = format!("kubectl {}", args.join(" "));
    let out = tests::eventually(&what, tests::DEFAULT_PATIENCE, || async {
        let out = k.run(&args).await;
        if !out.ok {
            eprintln!("{what} failed: {}", out.stderr);
        }
        out.ok.then_some(out)
    })
    .await;
    assert!(!out.stdout.trim().is_empty(), "{what} said nothing");
}

/// `kubectl get <what> <name> [-n <ns>] -o json`.
async fn get(k: &Kubectl, what: &str, name: &str, ns: Option<&str>) -> Value {
    let mut args = vec!["get", what, name, "-o", "json"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let out = k.ok(&args).await;
    serde_json::from_str(&out).unwrap_or_else(|err| panic!("{what}/{name}: {err}"))
}

/// Reads back what both servers store: the Services' ports (QUIC on UDP),
/// cloudcore.yaml, and the example Device and DeviceModel as written;
/// returns the plain manifests' Service as stored.
async fn read_back(k: &Kubectl, set: &Manifests, server: &str) -> Value {
    let service = get(k, "service", "cloudcore", Some("kubeedge")).await;
    let quic: Vec<&Value> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["port"] == 10001)
        .collect();
    assert_eq!(quic.len(), 1, "{server}: {service}");
    assert_eq!(quic[0]["protocol"], "UDP", "{server}");
    let map = get(k, "configmap", "cloudcore", Some("kubeedge")).await;
    daemonkit::config::parse::<CloudCoreConfig>(str_at(&map, "/data/cloudcore.yaml")).unwrap();
    for (what, name) in [("devicemodel", "temperature-model"), ("device", "sensor-1")] {
        let stored = get(k, what, name, Some("default")).await;
        let written = set
            .docs()
            .find(|d| kind(d).eq_ignore_ascii_case(what))
            .unwrap();
        assert_eq!(
            stored["spec"], written["spec"],
            "{server}: {what}/{name} is not stored as written"
        );
        if what == "device" {
            assert_eq!(stored["spec"]["nodeName"], "edge-1", "{server}");
        }
    }
    if set.charts {
        let quic = get(k, "service", "apiary-lb-cloudcore-quic", Some(HELM_NS)).await;
        let ports = quic["spec"]["ports"].as_array().unwrap();
        let found: Vec<(&Value, &Value)> =
            ports.iter().map(|p| (&p["port"], &p["protocol"])).collect();
        assert_eq!(found, [(&json!(10001), &json!("UDP"))], "{server}");
    }
    service
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_applies_to_a_real_kube_apiserver() {
    if !kubectl::available() {
        eprintln!("note: no kubectl on the PATH; skipping");
        return;
    }
    let Some(binary) = kube::binary() else {
        eprintln!(
            "note: no kube-apiserver {} built (bash scripts/kube-apiserver.sh) or no /usr/bin/etcd; \
             only the embedded API's kinds are applied (see the embedded test)",
            kube::VERSION
        );
        return;
    };
    let mut server = RealApiServer::start_with(&binary).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let k = Kubectl::with_kubeconfig(server.kubeconfig_path(), home.path());
    let set = Manifests::collect(home.path());
    prepare(&k).await;

    // A server-side dry run of everything first: validated and admitted,
    // nothing stored.
    for (file, _) in &set.files {
        apply(&k, file, &["--dry-run=server"]).await;
    }
    let none = k
        .run(&["get", "deployment", "cloudcore", "-n", "kubeedge"])
        .await;
    assert!(
        !none.ok && none.stderr.contains("NotFound"),
        "the dry run stored something: {}",
        none.stdout
    );

    for (file, _) in &set.files {
        apply(&k, file, &[]).await;
    }
    let service = read_back(&k, &set, "kube-apiserver").await;

    // What only the real server stores: the Deployment's ports, allocated
    // node ports, the RBAC rules, the override's replicas.
    let written = one(&set.files[0].1, "Deployment", "cloudcore");
    let stored = get(&k, "deployment", "cloudcore", Some("kubeedge")).await;
    let ports = "/spec/template/spec/containers/0/ports";
    assert_eq!(stored.pointer(ports), written.pointer(ports));
    for port in service["spec"]["ports"].as_array().unwrap() {
        let node_port = port["nodePort"].as_u64().unwrap_or(0);
        assert!((30000..=32767).contains(&node_port), "{port}");
    }
    let role = get(&k, "clusterrole", "cloudcore", None).await;
    assert_eq!(
        role["rules"],
        one(&set.files[0].1, "ClusterRole", "cloudcore")["rules"]
    );
    if set.charts {
        let lb = get(&k, "deployment", "apiary-lb-cloudcore", Some(HELM_NS)).await;
        assert_eq!(lb["spec"]["replicas"], 2);
        let pki = get(&k, "role", "apiary-cloudcore-pki", Some("kubeedge")).await;
        assert_eq!(pki["rules"][0]["verbs"], json!(["create"]));
    }
    assert!(
        server.is_running(),
        "kube-apiserver died:\n{}",
        server.log_excerpt()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_api_takes_the_kinds_it_serves() {
    if !kubectl::available() {
        eprintln!("note: no kubectl on the PATH; skipping");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let target = tests::cluster::embedded().await;
    let k = Kubectl::with_kubeconfig(&target.kubeconfig, home.path());
    let set = Manifests::collect(home.path());
    prepare(&k).await;
    // The embedded API does no server-side dry runs: applied for real.
    // Everything else was parsed (apiVersion, kind, metadata.name) when
    // collected.
    let served: Vec<&Value> = set
        .docs()
        .filter(|d| EMBEDDED_KINDS.contains(&kind(d)))
        .collect();
    let kinds: BTreeSet<&str> = served.iter().map(|d| kind(d)).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(EMBEDDED_KINDS),
        "the manifests hold each served kind"
    );
    let file = write_docs(home.path(), "served.yaml", &served);
    apply(&k, &file, &[]).await;
    read_back(&k, &set, "embedded").await;
    let account = get(&k, "serviceaccount", "cloudcore", Some("kubeedge")).await;
    assert_eq!(name(&account), "cloudcore");
}
