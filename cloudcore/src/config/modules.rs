//! The `modules` section of `cloudcore.yaml`, with KubeEdge's key names and
//! defaults (reference §8). Where Apiary's default differs it says so.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_norway::Value;

/// Every module section. Unknown keys are refused, except the KubeEdge
/// modules Apiary does not have, which are accepted and reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CloudModules {
    /// The edge-facing hub: WebSocket and QUIC listeners for edge nodes,
    /// the HTTPS certificate server, join tokens.
    pub cloud_hub: CloudHub,
    /// Pods, configmaps, secrets and nodes to and from edge nodes.
    pub edge_controller: EdgeController,
    /// Devices and device models down to their nodes; twin reports up into
    /// `Device.status`.
    pub device_controller: DeviceController,
    /// Reliable sync: records of what each node acknowledged (ObjectSync),
    /// and resending what a node missed when it reconnects.
    pub sync_controller: SyncController,
    /// KubeEdge's DynamicController, which relays list/watch requests of
    /// edge applications; not in Apiary (the edge answers them locally).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    pub dynamic_controller: Option<Value>,
    /// KubeEdge's CloudStream, the cloud end of the `kubectl logs`/`exec`
    /// tunnel; not in Apiary yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    pub cloud_stream: Option<Value>,
    /// KubeEdge's Router, rule-based message routing (`Rule`,
    /// `RuleEndpoint`); not in Apiary yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    pub router: Option<Value>,
    /// KubeEdge's TaskManager (node upgrade and image pre-pull tasks); not
    /// in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    pub task_manager: Option<Value>,
    /// KubeEdge's IptablesManager, the iptables rules of the stream
    /// tunnel; not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    pub iptables_manager: Option<Value>,
    /// KubeEdge's PolicyController (access policies for edge applications'
    /// service accounts); not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    pub policy_controller: Option<Value>,
    /// KubeEdge's NodeUpgradeJob controller (upgrading edge nodes); not in
    /// Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    pub node_upgrade_job_controller: Option<Value>,
    /// KubeEdge's ImagePrePullJob controller (pulling images onto edge
    /// nodes ahead of time); not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CloudHub {
    /// Run CloudHub: the edge listeners and the certificate server. Without
    /// it no edge node can connect.
    pub enable: bool,
    /// Seconds a node's link may stay silent before its session is closed;
    /// also how long EdgeController waits after start-up before it sets the
    /// conditions of nodes left Ready without a link to `Unknown`.
    pub keepalive_interval: u32,
    /// Most edge nodes connected at once; further connections are refused.
    pub node_limit: u32,
    /// KubeEdge's CA certificate file (accepted, not read: Apiary keeps its
    /// CA in the Secret `kubeedge/casecret`, mirrored in
    /// `commonConfig.dataDir`).
    #[serde(rename = "tlsCAFile")]
    pub tls_ca_file: String,
    /// KubeEdge's CA key file (accepted, not read; see `tlsCAFile`).
    #[serde(rename = "tlsCAKeyFile")]
    pub tls_ca_key_file: String,
    /// KubeEdge's server certificate file (accepted, not read: Apiary keeps
    /// it in the Secret `kubeedge/cloudcoresecret`, mirrored in
    /// `commonConfig.dataDir`).
    pub tls_cert_file: String,
    /// KubeEdge's server key file (accepted, not read; see `tlsCertFile`).
    pub tls_private_key_file: String,
    /// Seconds one write to an edge node may take before its link is closed.
    pub write_timeout: u32,
    /// IP addresses edge nodes reach this cloudcore at; they go into the
    /// server certificate (and the embedded API's) as subject alternative
    /// names.
    pub advertise_address: Vec<String>,
    /// DNS names edge nodes reach this cloudcore at, added to the server
    /// certificate (and the embedded API's) as subject alternative names.
    pub dns_names: Vec<String>,
    /// Days an edge node's client certificate is valid.
    pub edge_cert_signing_duration: u32,
    /// Hours between join-token refreshes (a token lives twice as long).
    pub token_refresh_duration: u32,
    /// Per-message node authorization. Apiary's default is on; KubeEdge's
    /// is off.
    pub authorization: Authorization,
    /// KubeEdge's local socket for CSI; not supported by Apiary.
    pub unixsocket: UnixSocket,
    /// The WebSocket listener for edge nodes.
    pub websocket: Listener,
    /// The QUIC listener for edge nodes.
    pub quic: QuicListener,
    /// The HTTPS certificate server edge nodes join through (`/ca.crt`,
    /// `/edge.crt`).
    pub https: Listener,
    /// Upstream messages per second each node may send; more wait, none is
    /// dropped.
    #[serde(rename = "nodeMessageQPS")]
    #[schemars(extend("x-apiary-addition" = true))]
    pub node_message_qps: f64,
    /// Upstream messages a node may send at once above `nodeMessageQPS`.
    #[schemars(extend("x-apiary-addition" = true))]
    pub node_message_burst: u32,
    /// Largest frame accepted from an edge node, in bytes; a larger one
    /// closes that node's link.
    #[schemars(extend("x-apiary-addition" = true))]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    /// Check every message from an edge node against what that node may
    /// touch (its own Node, Lease, pods and what they use, its devices).
    pub enable: bool,
    /// Log refusals but let the messages through (KubeEdge's debug mode).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UnixSocket {
    /// Serve the socket; Apiary does not support it, so it must stay
    /// false.
    pub enable: bool,
    /// The socket's address (accepted, not used).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Listener {
    /// Serve this listener.
    pub enable: bool,
    /// IP address to listen on (`0.0.0.0`: every interface).
    pub address: String,
    /// TCP port to listen on (0 picks a free one; the bound address is
    /// logged).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct QuicListener {
    /// Serve QUIC.
    pub enable: bool,
    /// IP address to listen on (`0.0.0.0`: every interface).
    pub address: String,
    /// UDP port to listen on (0 picks a free one).
    pub port: u16,
    /// Streams a connection may open (accepted; Apiary's link uses one
    /// stream per connection).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeController {
    /// Run EdgeController: Nodes, pods, configmaps and secrets down to
    /// edge nodes, their status up into the API.
    pub enable: bool,
    /// KubeEdge's seconds between node status checks (accepted, not used:
    /// Apiary sets a node's conditions to `Unknown` as soon as its link
    /// drops).
    pub node_update_frequency: u32,
    /// KubeEdge's buffer sizes by name, e.g. `updatePodStatus` (accepted;
    /// not used by Apiary).
    pub buffer: BTreeMap<String, u32>,
    /// KubeEdge's worker counts by name, e.g. `updateNodeStatusWorkers`
    /// (accepted; not used by Apiary).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceController {
    /// Run DeviceController: Devices and DeviceModels down to their nodes,
    /// twin reports up into `Device.status`.
    pub enable: bool,
    /// KubeEdge's buffer sizes by name, e.g. `updateDeviceStatus`
    /// (accepted; not used by Apiary).
    pub buffer: BTreeMap<String, u32>,
    /// KubeEdge's worker counts by name (accepted; not used by Apiary).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SyncController {
    /// Run SyncController: keep ObjectSync records of what each node
    /// acknowledged and resend what a reconnecting node missed (needs
    /// CloudHub).
    pub enable: bool,
}

impl Default for SyncController {
    fn default() -> Self {
        SyncController { enable: true }
    }
}
