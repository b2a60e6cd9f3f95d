//! `cloudcore.yaml`: KubeEdge's `CloudCore` configuration
//! (`cloudcore.config.kubeedge.io/v1alpha1`), with its key names and
//! defaults, plus the keys Apiary adds.
//!
//! Apiary's additions, marked `x-apiary-addition` for the generated
//! reference (docs/configuration.md, see `daemonkit::reference`):
//! `commonConfig.dataDir` (CA, token and the embedded API's database),
//! `kubeAPIConfig.embedded` (the built-in API server used when there is no
//! cluster) and the per-node limits under `modules.cloudHub`. Keys of
//! KubeEdge modules Apiary does not have are accepted and named in one
//! warning (marked `x-kubeedge-unsupported`); any other unknown key is an
//! error.

mod modules;

use daemonkit::{Checks, DaemonConfig, Invalid};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use modules::{
    Authorization, CloudHub, CloudModules, DeviceController, EdgeController, Listener,
    QuicListener, SyncController, UnixSocket,
};

/// The `apiVersion` written by `--defaultconfig`.
pub const API_VERSION: &str = "cloudcore.config.kubeedge.io/v1alpha1";
const ACCEPTED_API_VERSIONS: &[&str] = &[API_VERSION, "cloudcore.config.kubeedge.io/v1alpha2"];

/// The whole `cloudcore.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CloudCoreConfig {
    /// Schema version of the file: `cloudcore.config.kubeedge.io/v1alpha1`
    /// (`v1alpha2` is accepted too).
    pub api_version: String,
    /// Kind of the file; must be `CloudCore`.
    pub kind: String,
    /// Daemon-wide settings: data directory and the metrics endpoint.
    pub common_config: CommonConfig,
    /// How to reach Kubernetes: a kubeconfig, the API server URL, or the
    /// embedded API.
    #[serde(rename = "kubeAPIConfig")]
    pub kube_api_config: KubeApiConfig,
    /// One section per cloudcore module.
    pub modules: CloudModules,
    /// KubeEdge's feature gates by name; Apiary has none, so every gate set
    /// here has no effect and is named in the start-up warning.
    pub feature_gates: std::collections::BTreeMap<String, bool>,
}

impl Default for CloudCoreConfig {
    fn default() -> Self {
        CloudCoreConfig {
            api_version: API_VERSION.to_owned(),
            kind: "CloudCore".to_owned(),
            common_config: CommonConfig::default(),
            kube_api_config: KubeApiConfig::default(),
            modules: CloudModules::default(),
            feature_gates: Default::default(),
        }
    }
}

/// `commonConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CommonConfig {
    /// Port of KubeEdge's stream tunnel for `kubectl logs`/`exec`
    /// (accepted; Apiary does not serve streams yet, so nothing listens).
    pub tunnel_port: u16,
    /// Prometheus metrics and health endpoints.
    pub monitor_server: MonitorServer,
    /// Directory for the CA, server certificate and join token files (kept
    /// in step with the `kubeedge` Secrets when there is a cluster, read by
    /// `cloudcore gettoken`) and the embedded API's database.
    #[schemars(extend("x-apiary-addition" = true))]
    pub data_dir: String,
}

impl Default for CommonConfig {
    fn default() -> Self {
        CommonConfig {
            tunnel_port: 10350,
            monitor_server: MonitorServer::default(),
            data_dir: "/var/lib/apiary".to_owned(),
        }
    }
}

/// `commonConfig.monitorServer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct MonitorServer {
    /// `ip:port` serving `/metrics`, `/healthz` and `/readyz` (port 0 picks
    /// a free one).
    pub bind_address: String,
    /// KubeEdge's switch for Go pprof profiles (accepted; Apiary serves no
    /// profiles).
    pub enable_profiling: bool,
}

impl Default for MonitorServer {
    fn default() -> Self {
        MonitorServer {
            bind_address: "127.0.0.1:9091".to_owned(),
            enable_profiling: false,
        }
    }
}

/// `kubeAPIConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct KubeApiConfig {
    /// URL of the Kubernetes API server. With a kubeconfig (`kubeConfig`
    /// or `KUBECONFIG`) it replaces the kubeconfig's server; alone it is
    /// used without credentials. Empty: the kubeconfig's server.
    pub master: String,
    /// Path of a kubeconfig. Empty: `master` and `KUBECONFIG`, else the
    /// in-cluster service account, else the embedded API.
    pub kube_config: String,
    /// Content type KubeEdge's client asks for (accepted; Apiary's client
    /// always speaks JSON).
    pub content_type: String,
    /// KubeEdge's client rate limit, requests per second (accepted; Apiary's
    /// client does not limit its rate).
    pub qps: f64,
    /// KubeEdge's client burst above `qps` (accepted; not used by Apiary).
    pub burst: u32,
    /// The embedded Kubernetes-style API, served when no cluster is
    /// configured.
    #[schemars(extend("x-apiary-addition" = true))]
    pub embedded: EmbeddedApi,
}

impl Default for KubeApiConfig {
    fn default() -> Self {
        KubeApiConfig {
            master: String::new(),
            kube_config: String::new(),
            content_type: "application/vnd.kubernetes.protobuf".to_owned(),
            qps: 100.0,
            burst: 200,
            embedded: EmbeddedApi::default(),
        }
    }
}

/// `kubeAPIConfig.embedded` (Apiary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EmbeddedApi {
    /// `ip:port` the embedded API listens on (HTTPS) when no cluster is
    /// configured; port 0 picks a free one.
    pub bind_address: String,
    /// Serve the embedded API even when `KUBECONFIG` or a pod's
    /// service-account environment names a cluster (only an explicit
    /// `kubeConfig` or `master` still wins). Tests set it so that they never
    /// touch the developer's cluster.
    pub ignore_environment: bool,
}

impl Default for EmbeddedApi {
    fn default() -> Self {
        EmbeddedApi {
            bind_address: "127.0.0.1:6443".to_owned(),
            ignore_environment: false,
        }
    }
}

impl CloudCoreConfig {
    fn check_hub(&self, c: &mut Checks) {
        let hub = &self.modules.cloud_hub;
        if !hub.enable {
            return;
        }
        let key = "modules.cloudHub";
        c.positive(hub.keepalive_interval, &format!("{key}.keepaliveInterval"));
        c.positive(hub.node_limit, &format!("{key}.nodeLimit"));
        c.positive(hub.write_timeout, &format!("{key}.writeTimeout"));
        c.positive(
            hub.edge_cert_signing_duration,
            &format!("{key}.edgeCertSigningDuration"),
        );
        c.positive(
            hub.token_refresh_duration,
            &format!("{key}.tokenRefreshDuration"),
        );
        c.check(
            hub.node_message_qps.is_finite() && hub.node_message_qps > 0.0,
            &format!("{key}.nodeMessageQPS"),
            "must be a number greater than 0",
        );
        c.positive(hub.node_message_burst, &format!("{key}.nodeMessageBurst"));
        c.check(
            (1024..=256 * 1024 * 1024).contains(&hub.max_frame_bytes),
            &format!("{key}.maxFrameBytes"),
            "must be between 1 KiB and 256 MiB",
        );
        c.check(
            !hub.unixsocket.enable,
            &format!("{key}.unixsocket.enable"),
            "the unix socket is not supported by Apiary",
        );
        c.check(
            hub.websocket.enable || hub.quic.enable,
            &format!("{key}.websocket.enable"),
            "at least one of websocket and quic must be enabled",
        );
        for (name, address) in [
            ("websocket", &hub.websocket.address),
            ("quic", &hub.quic.address),
            ("https", &hub.https.address),
        ] {
            c.check(
                address.parse::<std::net::IpAddr>().is_ok(),
                &format!("{key}.{name}.address"),
                format!("{address:?} is not an IP address"),
            );
        }
        for (i, addr) in hub.advertise_address.iter().enumerate() {
            c.check(
                addr.parse::<std::net::IpAddr>().is_ok(),
                &format!("{key}.advertiseAddress[{i}]"),
                format!("{addr:?} is not an IP address"),
            );
        }
    }
}

impl DaemonConfig for CloudCoreConfig {
    fn validate(&self) -> Vec<Invalid> {
        let mut c = Checks::default();
        c.check(self.kind == "CloudCore", "kind", "must be CloudCore");
        c.check(
            ACCEPTED_API_VERSIONS.contains(&self.api_version.as_str()),
            "apiVersion",
            format!("must be one of {}", ACCEPTED_API_VERSIONS.join(", ")),
        );
        c.check(
            !self.common_config.data_dir.is_empty(),
            "commonConfig.dataDir",
            "must name a directory",
        );
        c.socket_addr(
            &self.common_config.monitor_server.bind_address,
            "commonConfig.monitorServer.bindAddress",
        );
        c.socket_addr(
            &self.kube_api_config.embedded.bind_address,
            "kubeAPIConfig.embedded.bindAddress",
        );
        c.check(
            self.kube_api_config.qps.is_finite() && self.kube_api_config.qps > 0.0,
            "kubeAPIConfig.qps",
            "must be a number greater than 0",
        );
        c.positive(self.kube_api_config.burst, "kubeAPIConfig.burst");
        self.check_hub(&mut c);
        c.positive(
            self.modules.edge_controller.node_update_frequency,
            "modules.edgeController.nodeUpdateFrequency",
        );
        c.finish()
    }

    fn unsupported_keys(&self) -> Vec<String> {
        let mut keys = self.modules.unsupported_keys();
        keys.extend(
            self.feature_gates
                .keys()
                .map(|k| format!("featureGates.{k}")),
        );
        keys
    }

    fn minimal_keys() -> &'static [&'static str] {
        &[
            "apiVersion",
            "kind",
            "commonConfig.dataDir",
            "kubeAPIConfig.kubeConfig",
            "modules.cloudHub.advertiseAddress",
            "modules.cloudHub.websocket",
            "modules.cloudHub.https",
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daemonkit::config::{default_yaml, minimal_yaml, parse};

    #[test]
    fn default_and_minimal_configs_round_trip() {
        let text = default_yaml::<CloudCoreConfig>().unwrap();
        assert_eq!(
            parse::<CloudCoreConfig>(&text).unwrap(),
            CloudCoreConfig::default()
        );
        assert!(text.contains("keepaliveInterval: 30"), "{text}");
        let text = minimal_yaml::<CloudCoreConfig>().unwrap();
        assert_eq!(
            parse::<CloudCoreConfig>(&text).unwrap(),
            CloudCoreConfig::default()
        );
    }

    #[test]
    fn kubeedge_tuning_maps_and_absent_modules_are_accepted() {
        let text = "modules:\n  edgeController: {buffer: {updatePodStatus: 1024}, load: {updateNodeStatusWorkers: 1}}\n  router: {enable: false}\n  cloudStream: {enable: false}";
        let cfg = parse::<CloudCoreConfig>(text).unwrap();
        assert_eq!(
            cfg.unsupported_keys(),
            ["modules.cloudStream", "modules.router"]
        );
        assert_eq!(cfg.modules.edge_controller.buffer["updatePodStatus"], 1024);
    }

    #[test]
    fn node_authorization_is_on_unless_switched_off() {
        let hub = |text: &str| parse::<CloudCoreConfig>(text).unwrap().modules.cloud_hub;
        let on = Authorization {
            enable: true,
            debug: false,
        };
        assert_eq!(
            CloudCoreConfig::default().modules.cloud_hub.authorization,
            on
        );
        assert_eq!(
            hub("modules: {cloudHub: {authorization: {}}}").authorization,
            on
        );
        let debug = hub("modules: {cloudHub: {authorization: {debug: true}}}").authorization;
        assert!(debug.enable && debug.debug);
        let off = hub("modules: {cloudHub: {authorization: {enable: false}}}").authorization;
        assert!(!off.enable);
    }

    #[test]
    fn bad_values_are_named() {
        let err = parse::<CloudCoreConfig>(
            "modules: {cloudHub: {nodeLimit: 0, websocket: {address: nope}}}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("modules.cloudHub.nodeLimit"), "{err}");
        assert!(err.contains("modules.cloudHub.websocket.address"), "{err}");
        let err = parse::<CloudCoreConfig>("modules: {cloudHub: {websocket: {port: 70000}}}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("modules.cloudHub.websocket.port"), "{err}");
    }
}
