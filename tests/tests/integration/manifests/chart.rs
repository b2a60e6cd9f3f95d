//! The Helm chart: `helm lint`, `helm template` with the default values
//! (checked against the plain manifests) and with [`OVERRIDE_VALUES`], each
//! render checked as one install, NOTES.txt, and the chart's CRDs as
//! copies of `deploy/crds/`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::install::{check_install, rbac, Install};
use super::{deploy, docs_in, identities, name, one, parse_docs, read, str_at, yaml_files};

pub(super) fn helm_available() -> bool {
    Command::new("helm")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `helm <args>` with its caches in `home`; stdout, failing the test
/// if helm fails.
fn helm(home: &Path, args: &[&str]) -> String {
    let out = Command::new("helm")
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("helm runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helm {} failed:\n{stdout}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Values beside the defaults: a load balancer (QUIC on a Service of its
/// own), two replicas, a fixed node port, an advertised address, and
/// cloudcore.yaml keys, one of them a port the Deployment and Service must
/// follow.
pub(super) const OVERRIDE_VALUES: &str = r#"
replicaCount: 2
service:
  type: LoadBalancer
  nodePorts: {websocket: 30100}
cloudHub:
  advertiseAddress: [192.0.2.20]
config:
  modules:
    cloudHub:
      nodeLimit: 1000
      https: {port: 10012}
"#;

/// `helm template <release> <chart> -n <namespace> <extra>`, with `values`
/// (YAML) when given; helm's output.
fn template(
    home: &Path,
    (release, namespace): (&str, &str),
    chart: &Path,
    values: Option<&str>,
    extra: &[&str],
) -> String {
    let chart = chart.display().to_string();
    let mut args = vec!["template", release, chart.as_str(), "-n", namespace];
    args.extend(extra);
    let file = home.join(format!("{release}-{}.yaml", extra.len()));
    let file = file.display().to_string();
    if let Some(values) = values {
        std::fs::write(&file, values).unwrap();
        args.extend(["-f", file.as_str()]);
    }
    helm(home, &args)
}

/// The objects of deploy/helm/cloudcore rendered as `release` in
/// `namespace`, with `values` (YAML) when given.
pub(super) fn render(
    home: &Path,
    release: &str,
    namespace: &str,
    values: Option<&str>,
) -> Vec<Value> {
    let chart = deploy("helm/cloudcore");
    let text = template(home, (release, namespace), &chart, values, &[]);
    parse_docs(&format!("helm template {release}"), &text)
}

/// NOTES.txt as `helm install` would print it: `helm template` leaves it
/// out, so a copy of the chart renders it through `tpl` as a value.
fn render_notes(home: &Path, release: &str, namespace: &str, values: Option<&str>) -> String {
    let chart = home.join(format!("notes-{release}"));
    copy_dir(&deploy("helm/cloudcore"), &chart);
    std::fs::rename(chart.join("templates/NOTES.txt"), chart.join("notes.txt")).unwrap();
    let template_text = r#"notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}"#;
    std::fs::write(chart.join("templates/notes.yaml"), template_text).unwrap();
    let only = ["--show-only", "templates/notes.yaml"];
    let text = template(home, (release, namespace), &chart, values, &only);
    let out: Value = serde_norway::from_str(&text).unwrap();
    str_at(&out, "/notes").to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A home for helm's caches, or `None` (with a note) without helm.
fn helm_home() -> Option<tempfile::TempDir> {
    if !helm_available() {
        eprintln!("note: no helm on the PATH (scripts/install-deps.sh installs it); skipping");
        return None;
    }
    Some(tempfile::tempdir().unwrap())
}

#[test]
fn the_chart_lints_and_carries_this_version() {
    let Some(home) = helm_home() else { return };
    let chart = deploy("helm/cloudcore").display().to_string();
    helm(home.path(), &["lint", "--strict", &chart]);
    let chart_yaml = read(&deploy("helm/cloudcore/Chart.yaml"));
    let chart_yaml: Value = serde_norway::from_str(&chart_yaml).unwrap();
    assert_eq!(chart_yaml["appVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart_yaml["version"], env!("CARGO_PKG_VERSION"));
}

/// The defaults, installed as release cloudcore in kubeedge, are the plain
/// manifests: the same objects, pod spec, Service, rules and configuration
/// (bar the advertised address, a placeholder in the plain ConfigMap).
#[test]
fn the_charts_defaults_are_the_plain_manifests() {
    let Some(home) = helm_home() else { return };
    let plain = docs_in(&deploy("cloudcore"));
    let rendered = render(home.path(), "cloudcore", "kubeedge", None);
    let chart_install = check_install("chart defaults", &rendered);
    let plain_install = check_install("deploy/cloudcore", &plain);
    let without_ns: BTreeSet<_> = identities(&plain)
        .into_iter()
        .filter(|(k, ..)| k != "Namespace")
        .collect();
    assert_eq!(identities(&rendered), without_ns);
    assert_eq!(rbac(&rendered), rbac(&plain));
    let pod_spec = |i: &Install| i.deployment["spec"]["template"]["spec"].clone();
    assert_eq!(pod_spec(&chart_install), pod_spec(&plain_install));
    let service_spec = |i: &Install| i.services[0]["spec"].clone();
    assert_eq!(service_spec(&chart_install), service_spec(&plain_install));
    let mut plain_config = plain_install.config.clone();
    plain_config.modules.cloud_hub.advertise_address.clear();
    assert_eq!(chart_install.config, plain_config);

    // NOTES.txt: how to get a token and join, and a warning: no address
    // is advertised.
    let notes = render_notes(home.path(), "cloudcore", "kubeedge", None);
    let token = "kubectl -n kubeedge exec deploy/cloudcore -- cloudcore gettoken";
    assert!(notes.contains(token), "{notes}");
    let join = notes.contains("edgecore join --cloudcore-ipport");
    assert!(join && notes.contains("WARNING"), "{notes}");
}

/// [`OVERRIDE_VALUES`]: what they ask for, and the install still fits
/// together (the Deployment and Services follow the changed port).
#[test]
fn the_charts_override_is_followed() {
    let Some(home) = helm_home() else { return };
    let rendered = render(home.path(), "apiary", "apiary-helm", Some(OVERRIDE_VALUES));
    let install = check_install("chart override", &rendered);
    assert_eq!(install.deployment["spec"]["replicas"], 2);
    let hub = &install.config.modules.cloud_hub;
    assert_eq!((hub.node_limit, hub.https.port), (1000, 10012));
    assert_eq!(hub.advertise_address, ["192.0.2.20"]);
    assert_eq!(hub.dns_names, ["apiary-cloudcore.apiary-helm.svc"]);
    let types: Vec<(&str, &str)> = install
        .services
        .iter()
        .map(|s| (name(s), str_at(s, "/spec/type")))
        .collect();
    let want = [
        ("apiary-cloudcore", "LoadBalancer"),
        ("apiary-cloudcore-quic", "LoadBalancer"),
    ];
    assert_eq!(types, want, "QUIC's UDP on a load balancer of its own");
    assert_eq!(install.services[0]["spec"]["ports"][0]["nodePort"], 30100);
    // The PKI Role is where cloudcore writes its Secrets, whatever the
    // release's namespace.
    let pki = one(&rendered, "Role", "apiary-cloudcore-pki");
    assert_eq!(str_at(pki, "/metadata/namespace"), "kubeedge");

    let notes = render_notes(home.path(), "apiary", "apiary-helm", Some(OVERRIDE_VALUES));
    let services = notes.contains("get svc apiary-cloudcore apiary-cloudcore-quic");
    assert!(services, "{notes}");
    let ports = notes.contains("10012 (certificates)");
    assert!(ports && !notes.contains("WARNING"), "{notes}");
}

#[test]
fn the_charts_crds_are_copies_of_deploy_crds() {
    let names = |dir: &Path| -> Vec<String> {
        yaml_files(dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let (source, copies) = (deploy("crds"), deploy("helm/cloudcore/crds"));
    assert_eq!(
        names(&copies),
        names(&source),
        "deploy/helm/cloudcore/crds/ holds other files than deploy/crds/"
    );
    assert_eq!(names(&source).len(), crds::all().len());
    for file in names(&source) {
        assert!(
            read(&source.join(&file)) == read(&copies.join(&file)),
            "deploy/helm/cloudcore/crds/{file} differs from deploy/crds/{file}: cp deploy/crds/*.yaml deploy/helm/cloudcore/crds/"
        );
    }
}
