//! The `modules` section of `cloudcore.yaml`, with KubeEdge's key names and
//! defaults (reference §8). Where Apiary's default differs it says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_norway::Value;

/// Every module section. Unknown keys are refused, except the KubeEdge
/// modules Apiary does not have, which are accepted and reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CloudModules {
    /// The edge-facing hub.
    pub cloud_hub: CloudHub,
    /// Pods, configmaps, secrets and nodes to and from edge nodes.
    pub edge_controller: EdgeController,
    /// Devices and twins.
    pub device_controller: DeviceController,
    /// ObjectSync bookkeeping and catch-up.
    pub sync_controller: SyncController,
    /// Not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_controller: Option<Value>,
    /// Not in Apiary yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_stream: Option<Value>,
    /// Not in Apiary yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<Value>,
    /// Not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_manager: Option<Value>,
    /// Not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iptables_manager: Option<Value>,
    /// Not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_controller: Option<Value>,
    /// Not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_upgrade_job_controller: Option<Value>,
    /// Not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pre_pull_controller: Option<Value>,
}

impl CloudModules {
    /// Keys of KubeEdge modules present in the file that Apiary lacks.
    pub fn unsupported_keys(&self) -> Vec<String> {
        [
            ("dynamicController", &self.dynamic_controller),
            ("cloudStream", &self.cloud_stream),
            ("router", &self.router),
            ("taskManager", &self.task_manager),
            ("iptablesManager", &self.iptables_manager),
            ("policyController", &self.policy_controller),
            (
                "nodeUpgradeJobController",
                &self.node_upgrade_job_controller,
            ),
            ("imagePrePullController", &self.image_pre_pull_controller),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| format!("modules.{k}"))
        .collect()
    }
}

/// `modules.cloudHub`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CloudHub {
    /// Run the module.
    pub enable: bool,
    /// Seconds without a keepalive before a session is closed.
    pub keepalive_interval: u32,
    /// Most sessions this cloudcore holds.
    pub node_limit: u32,
    /// CA certificate (PEM).
    #[serde(rename = "tlsCAFile")]
    pub tls_ca_file: String,
    /// CA key (PEM).
    #[serde(rename = "tlsCAKeyFile")]
    pub tls_ca_key_file: String,
    /// Server certificate (PEM).
    pub tls_cert_file: String,
    /// Server key (PEM).
    pub tls_private_key_file: String,
    /// Seconds a write to an edge may take.
    pub write_timeout: u32,
    /// Addresses edges reach this cloudcore at; they go into the server certificate's SANs.
    pub advertise_address: Vec<String>,
    /// DNS names for the server certificate's SANs.
    pub dns_names: Vec<String>,
    /// Days an edge certificate is valid.
    pub edge_cert_signing_duration: u32,
    /// Hours between join-token refreshes (a token lives twice as long).
    pub token_refresh_duration: u32,
    /// Per-message node authorization. Apiary's default is on; KubeEdge's is off.
    pub authorization: Authorization,
    /// Local socket for CSI (KubeEdge); accepted, not served.
    pub unixsocket: UnixSocket,
    /// WebSocket listener.
    pub websocket: Listener,
    /// QUIC listener.
    pub quic: QuicListener,
    /// HTTPS certificate server.
    pub https: Listener,
    /// Upstream messages per second allowed per node (Apiary).
    #[serde(rename = "nodeMessageQPS")]
    pub node_message_qps: f64,
    /// Upstream burst per node (Apiary).
    pub node_message_burst: u32,
    /// Largest frame accepted from an edge, in bytes (Apiary).
    pub max_frame_bytes: u32,
}

impl Default for CloudHub {
    fn default() -> Self {
        CloudHub {
            enable: true,
            keepalive_interval: 30,
            node_limit: 500,
            tls_ca_file: "/etc/kubeedge/ca/rootCA.crt".to_owned(),
            tls_ca_key_file: "/etc/kubeedge/ca/rootCA.key".to_owned(),
            tls_cert_file: "/etc/kubeedge/certs/server.crt".to_owned(),
            tls_private_key_file: "/etc/kubeedge/certs/server.key".to_owned(),
            write_timeout: 30,
            advertise_address: Vec::new(),
            dns_names: Vec::new(),
            edge_cert_signing_duration: 365,
            token_refresh_duration: 12,
            authorization: Authorization::default(),
            unixsocket: UnixSocket::default(),
            websocket: Listener::new(true, 10000),
            quic: QuicListener::default(),
            https: Listener::new(true, 10002),
            node_message_qps: 100.0,
            node_message_burst: 200,
            max_frame_bytes: 32 * 1024 * 1024,
        }
    }
}

/// `modules.cloudHub.authorization`: node authorization (see
/// `cloudcore::authz`). On by default in Apiary (KubeEdge: off), also when
/// the section is given without `enable`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    /// Check every message against the node's rights.
    pub enable: bool,
    /// Log refusals but let them through (KubeEdge's debug mode).
    pub debug: bool,
}

impl Default for Authorization {
    fn default() -> Self {
        Authorization {
            enable: true,
            debug: false,
        }
    }
}

/// `modules.cloudHub.unixsocket`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnixSocket {
    /// Serve the socket (not supported by Apiary; must stay false).
    pub enable: bool,
    /// Socket address.
    pub address: String,
}

impl Default for UnixSocket {
    fn default() -> Self {
        UnixSocket {
            enable: false,
            address: "unix:///var/lib/kubeedge/kubeedge.sock".to_owned(),
        }
    }
}

/// A TCP listener: `modules.cloudHub.websocket` / `.https`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listener {
    /// Serve it.
    pub enable: bool,
    /// IP to bind.
    pub address: String,
    /// Port to bind (0 picks a free one; the bound address is logged).
    pub port: u16,
}

impl Listener {
    fn new(enable: bool, port: u16) -> Self {
        Listener {
            enable,
            address: "0.0.0.0".to_owned(),
            port,
        }
    }
}

impl Default for Listener {
    fn default() -> Self {
        Listener::new(false, 0)
    }
}

/// `modules.cloudHub.quic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct QuicListener {
    /// Serve it.
    pub enable: bool,
    /// IP to bind.
    pub address: String,
    /// UDP port to bind.
    pub port: u16,
    /// Streams a connection may open.
    pub max_incoming_streams: u32,
}

impl Default for QuicListener {
    fn default() -> Self {
        QuicListener {
            enable: false,
            address: "0.0.0.0".to_owned(),
            port: 10001,
            max_incoming_streams: 10000,
        }
    }
}

/// `modules.edgeController`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeController {
    /// Run the module.
    pub enable: bool,
    /// Seconds between node status checks.
    pub node_update_frequency: u32,
    /// KubeEdge's per-stream buffer sizes (tuning knobs, by name).
    pub buffer: BTreeMap<String, u32>,
    /// KubeEdge's per-stream worker counts (tuning knobs, by name).
    pub load: BTreeMap<String, u32>,
}

impl Default for EdgeController {
    fn default() -> Self {
        EdgeController {
            enable: true,
            node_update_frequency: 10,
            buffer: BTreeMap::new(),
            load: BTreeMap::new(),
        }
    }
}

/// `modules.deviceController`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceController {
    /// Run the module.
    pub enable: bool,
    /// KubeEdge's buffer sizes (tuning knobs, by name).
    pub buffer: BTreeMap<String, u32>,
    /// KubeEdge's worker counts (tuning knobs, by name).
    pub load: BTreeMap<String, u32>,
}

impl Default for DeviceController {
    fn default() -> Self {
        DeviceController {
            enable: true,
            buffer: BTreeMap::new(),
            load: BTreeMap::new(),
        }
    }
}

/// `modules.syncController`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncController {
    /// Run the module.
    pub enable: bool,
}

impl Default for SyncController {
    fn default() -> Self {
        SyncController { enable: true }
    }
}
