//! One cloudcore install's objects checked as a whole ([`check_install`]):
//! the config file mounted where cloudcore reads it, ports, probes, the
//! data directory and the service account; and the plain manifests in
//! `deploy/cloudcore/` as such an install of this version.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use cloudcore::config::CloudCoreConfig;
use serde_json::Value;

use super::{deploy, docs_in, kind, name, of_kind, one, str_at};

/// What [`check_install`] found in one install's objects.
pub(super) struct Install {
    pub(super) config: CloudCoreConfig,
    pub(super) deployment: Value,
    pub(super) services: Vec<Value>,
}

/// Checks that the objects of one cloudcore install fit together: the
/// configuration is mounted where cloudcore reads it and loads, the ports
/// it opens are the container's and the Services', the probes hit the
/// monitor server, the data directory is writable on a read-only root, and
/// the bindings name the pod's service account.
pub(super) fn check_install(what: &str, docs: &[Value]) -> Install {
    let deployments = of_kind(docs, "Deployment");
    assert_eq!(deployments.len(), 1, "{what}: one Deployment");
    let deployment = deployments[0].clone();
    let pod = Pod::of(what, docs, &deployment);
    assert!(
        pod.selects(&deployment["spec"]["selector"]["matchLabels"]),
        "{what}: Deployment selector"
    );
    // Non-root, read-only root file system, no privilege escalation.
    let c = pod.container;
    assert_eq!(pod.spec["securityContext"]["runAsNonRoot"], true, "{what}");
    let security = &c["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true, "{what}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{what}");
    assert!(
        c["args"].is_null() && c["command"].is_null(),
        "{what}: cloudcore runs with its default config path"
    );
    let config = pod.mounted_config();
    pod.check_monitor_and_data(&config);
    let services = pod.check_ports(&config);
    pod.check_account(str_at(&deployment, "/metadata/namespace"));
    Install {
        config,
        deployment,
        services,
    }
}

/// The pod template of an install, with the objects around it.
struct Pod<'a> {
    what: &'a str,
    docs: &'a [Value],
    labels: serde_json::Map<String, Value>,
    spec: &'a Value,
    container: &'a Value,
}

impl<'a> Pod<'a> {
    fn of(what: &'a str, docs: &'a [Value], deployment: &'a Value) -> Pod<'a> {
        let template = &deployment["spec"]["template"];
        let spec = &template["spec"];
        let container = spec["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "cloudcore"))
            .unwrap_or_else(|| panic!("{what}: no container cloudcore"));
        let labels = template["metadata"]["labels"].as_object().cloned();
        Pod {
            what,
            docs,
            labels: labels.unwrap_or_default(),
            spec,
            container,
        }
    }

    /// `selector` is not empty and matches the pod's labels.
    fn selects(&self, selector: &Value) -> bool {
        let selector = selector.as_object().cloned().unwrap_or_default();
        !selector.is_empty() && selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }

    fn volume(&self, name: &str) -> &'a Value {
        self.spec["volumes"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == name))
            .unwrap_or_else(|| panic!("{}: no volume {name}", self.what))
    }

    /// The container's volume mount at `path`.
    fn mount_at(&self, path: &Path) -> &'a Value {
        self.container["volumeMounts"]
            .as_array()
            .and_then(|ms| {
                ms.iter()
                    .find(|m| Path::new(str_at(m, "/mountPath")) == path)
            })
            .unwrap_or_else(|| panic!("{}: nothing mounted at {}", self.what, path.display()))
    }

    /// `(containerPort, protocol)` of the container's port `name`.
    fn port(&self, name: &str) -> Option<(u64, String)> {
        let ports = self.container["ports"].as_array()?;
        let port = ports.iter().find(|p| p["name"] == name)?;
        let number = port["containerPort"].as_u64().unwrap_or(0);
        Some((number, str_at(port, "/protocol").to_owned()))
    }

    /// cloudcore.yaml from the ConfigMap item mounted at
    /// [`cloudcore::DEFAULT_CONFIG_PATH`], loaded; it names no cluster, so
    /// cloudcore uses its service account.
    fn mounted_config(&self) -> CloudCoreConfig {
        let what = self.what;
        let path = Path::new(cloudcore::DEFAULT_CONFIG_PATH);
        let (dir, file) = (path.parent().unwrap(), path.file_name().unwrap());
        let volume = self.volume(str_at(self.mount_at(dir), "/name"));
        let items = volume["configMap"]["items"].as_array();
        let key = items
            .and_then(|items| items.iter().find(|i| i["path"] == file.to_str().unwrap()))
            .map(|i| str_at(i, "/key"))
            .unwrap_or_else(|| panic!("{what}: the config volume has no item {file:?}"));
        let map = one(self.docs, "ConfigMap", str_at(volume, "/configMap/name"));
        let text = str_at(map, &format!("/data/{key}"));
        let config: CloudCoreConfig = daemonkit::config::parse(text)
            .unwrap_or_else(|err| panic!("{what}: cloudcore.yaml in the ConfigMap: {err}"));
        let kube_api = &config.kube_api_config;
        assert!(
            kube_api.kube_config.is_empty() && kube_api.master.is_empty(),
            "{what}: in-cluster config"
        );
        config
    }

    /// The monitor server listens on all addresses, at the port the probes
    /// use; the data directory is a writable emptyDir.
    fn check_monitor_and_data(&self, config: &CloudCoreConfig) {
        let (what, c) = (self.what, self.container);
        let monitor = &config.common_config.monitor_server.bind_address;
        let monitor: SocketAddr = monitor.parse().unwrap();
        assert!(
            monitor.ip().is_unspecified(),
            "{what}: monitor on {monitor} is unreachable for probes"
        );
        let want = Some((u64::from(monitor.port()), "TCP".to_owned()));
        assert_eq!(self.port("monitor"), want, "{what}");
        for (probe, path) in [
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ] {
            assert_eq!(c[probe]["httpGet"]["path"], path, "{what}: {probe}");
            assert_eq!(c[probe]["httpGet"]["port"], "monitor", "{what}: {probe}");
        }
        let data = self.mount_at(Path::new(&config.common_config.data_dir));
        assert_ne!(data["readOnly"], true, "{what}: dataDir is writable");
        let volume = self.volume(str_at(data, "/name"));
        assert!(
            volume["emptyDir"].is_object(),
            "{what}: dataDir on an emptyDir"
        );
    }

    /// CloudHub's ports: the config's, the container's, the Services'
    /// (those selecting the pod, returned).
    fn check_ports(&self, config: &CloudCoreConfig) -> Vec<Value> {
        let services: Vec<Value> = of_kind(self.docs, "Service")
            .into_iter()
            .filter(|s| self.selects(&s["spec"]["selector"]))
            .cloned()
            .collect();
        let exposed: Vec<(String, u64, String)> = services
            .iter()
            .flat_map(|s| s["spec"]["ports"].as_array().cloned().unwrap_or_default())
            .map(|p| {
                let target = str_at(&p, "/targetPort").to_owned();
                let protocol = str_at(&p, "/protocol").to_owned();
                (target, p["port"].as_u64().unwrap_or(0), protocol)
            })
            .collect();
        let hub = &config.modules.cloud_hub;
        for (name, enabled, port, protocol) in [
            ("websocket", hub.websocket.enable, hub.websocket.port, "TCP"),
            ("quic", hub.quic.enable, hub.quic.port, "UDP"),
            ("https", hub.https.enable, hub.https.port, "TCP"),
        ] {
            let want = enabled.then(|| (u64::from(port), protocol.to_owned()));
            assert_eq!(
                self.port(name),
                want,
                "{}: container port {name}",
                self.what
            );
            let found = exposed.iter().find(|(target, ..)| target == name).cloned();
            let want = want.map(|(port, protocol)| (name.to_owned(), port, protocol));
            assert_eq!(found, want, "{}: Service port {name}", self.what);
        }
        services
    }

    /// The pod's service account exists, and every binding names it (in
    /// `namespace`) as its only subject and a role of its own namespace.
    fn check_account(&self, namespace: &str) {
        let what = self.what;
        let account = str_at(self.spec, "/serviceAccountName");
        one(self.docs, "ServiceAccount", account);
        for binding in ["ClusterRoleBinding", "RoleBinding"] {
            let bindings = of_kind(self.docs, binding);
            assert!(!bindings.is_empty(), "{what}: no {binding}");
            for b in bindings {
                // Its one subject: a second would grant the rules to
                // someone else too.
                let subjects: Vec<(&str, &str, &str)> = b["subjects"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|s| {
                        (
                            str_at(s, "/kind"),
                            str_at(s, "/name"),
                            str_at(s, "/namespace"),
                        )
                    })
                    .collect();
                let want = [("ServiceAccount", account, namespace)];
                assert_eq!(subjects, want, "{what}: {binding} {}", name(b));
                let role_ref = (str_at(b, "/roleRef/kind"), str_at(b, "/roleRef/name"));
                let role = one(self.docs, role_ref.0, role_ref.1);
                let ns = |o: &Value| str_at(o, "/metadata/namespace").to_owned();
                assert_eq!(ns(role), ns(b), "{what}: {}", name(b));
            }
        }
    }
}

/// Every RBAC rule, by role.
pub(super) fn rbac(docs: &[Value]) -> BTreeMap<(String, String, String), Value> {
    docs.iter()
        .filter(|d| matches!(kind(d), "ClusterRole" | "Role"))
        .map(|d| {
            let key = (
                kind(d).to_owned(),
                str_at(d, "/metadata/namespace").to_owned(),
                name(d).to_owned(),
            );
            (key, d["rules"].clone())
        })
        .collect()
}

#[test]
fn the_plain_manifests_fit_together_and_use_this_version() {
    let docs = docs_in(&deploy("cloudcore"));
    let install = check_install("deploy/cloudcore", &docs);
    let image = format!("apiary/cloudcore:{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        install.deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        image.as_str()
    );
    assert_eq!(install.services.len(), 1);
    assert_eq!(
        install.services[0]["spec"]["type"], "NodePort",
        "mixed TCP/UDP needs NodePort on 1.20"
    );
    // The first file is the namespace the others go into.
    assert_eq!((kind(&docs[0]), name(&docs[0])), ("Namespace", "kubeedge"));
    // The example cloudcore.yaml is the ConfigMap's, commented.
    let example: CloudCoreConfig =
        daemonkit::config::load(&deploy("examples/cloudcore.yaml")).unwrap();
    assert_eq!(
        example, install.config,
        "examples/cloudcore.yaml and cloudcore/30-configmap.yaml differ"
    );
    assert!(!install
        .config
        .modules
        .cloud_hub
        .advertise_address
        .is_empty());
}
