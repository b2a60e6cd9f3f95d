//! The `modules` section of `edgecore.yaml`, one struct per KubeEdge module
//! Apiary has, with KubeEdge's key names and defaults (reference §8).
//!
//! Where Apiary's default differs from KubeEdge's it says so on the field.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_norway::Value;

use super::Broker;

/// KubeEdge's default project id, part of the WebSocket URL.
pub const DEFAULT_PROJECT_ID: &str = "e632aba927ea4ac2b575ec1603d56f10";

/// Every module section. Unknown keys are refused, except the KubeEdge
/// modules Apiary does not have, which are accepted and reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeModules {
    /// The link to the cloud.
    pub edge_hub: EdgeHub,
    /// MQTT.
    pub event_bus: EventBus,
    /// The SQLite cache and the MetaServer.
    pub meta_manager: MetaManager,
    /// HTTP between cloud and local apps.
    pub service_bus: ServiceBus,
    /// Device twins.
    pub device_twin: DeviceTwin,
    /// Node registration, status and lease (Apiary; KubeEdge does this in edged).
    pub node_status: NodeStatus,
    /// KubeEdge's kubelet: not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edged: Option<Value>,
    /// KubeEdge's stream tunnel: not in Apiary yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_stream: Option<Value>,
    /// KubeEdge's task manager: not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_manager: Option<Value>,
    /// KubeEdge's test module: not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_test: Option<Value>,
}

impl EdgeModules {
    /// Keys of KubeEdge modules present in the file that Apiary lacks.
    pub fn unsupported_keys(&self) -> Vec<String> {
        [
            ("edged", &self.edged),
            ("edgeStream", &self.edge_stream),
            ("taskManager", &self.task_manager),
            ("dbTest", &self.db_test),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| format!("modules.{k}"))
        .collect()
    }
}

/// `modules.edgeHub`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeHub {
    /// Run the module.
    pub enable: bool,
    /// Seconds between keepalives; the read deadline is two heartbeats.
    pub heartbeat: u32,
    /// Upstream messages per second.
    #[serde(rename = "messageQPS")]
    pub message_qps: f64,
    /// Upstream burst.
    pub message_burst: u32,
    /// Project id in the WebSocket URL.
    #[serde(rename = "projectID")]
    pub project_id: String,
    /// CA certificate that signed the cloud (written by join).
    pub tls_ca_file: String,
    /// This node's client certificate.
    pub tls_cert_file: String,
    /// This node's private key.
    pub tls_private_key_file: String,
    /// Join token; used once to fetch a certificate.
    pub token: String,
    /// The cloud's certificate server, `https://host:10002`.
    pub http_server: String,
    /// Renew the certificate before it expires.
    pub rotate_certificates: bool,
    /// WebSocket transport.
    pub websocket: HubTransport,
    /// QUIC transport.
    pub quic: HubTransport,
}

impl Default for EdgeHub {
    fn default() -> Self {
        EdgeHub {
            enable: true,
            heartbeat: 15,
            message_qps: 30.0,
            message_burst: 60,
            project_id: DEFAULT_PROJECT_ID.to_owned(),
            tls_ca_file: "/etc/kubeedge/ca/rootCA.crt".to_owned(),
            tls_cert_file: "/etc/kubeedge/certs/server.crt".to_owned(),
            tls_private_key_file: "/etc/kubeedge/certs/server.key".to_owned(),
            token: String::new(),
            http_server: "https://127.0.0.1:10002".to_owned(),
            rotate_certificates: true,
            websocket: HubTransport::new(true, "127.0.0.1:10000"),
            quic: HubTransport::new(false, "127.0.0.1:10001"),
        }
    }
}

/// `modules.edgeHub.websocket` / `modules.edgeHub.quic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct HubTransport {
    /// Use this transport.
    pub enable: bool,
    /// The cloud's `host:port`.
    pub server: String,
    /// Seconds allowed for the TLS and protocol handshake.
    pub handshake_timeout: u32,
    /// Seconds a read may wait (Apiary also drops the link after two silent heartbeats).
    pub read_deadline: u32,
    /// Seconds a write may wait.
    pub write_deadline: u32,
}

impl HubTransport {
    fn new(enable: bool, server: &str) -> Self {
        HubTransport {
            enable,
            server: server.to_owned(),
            handshake_timeout: 30,
            read_deadline: 15,
            write_deadline: 15,
        }
    }
}

impl Default for HubTransport {
    fn default() -> Self {
        HubTransport::new(false, "")
    }
}

/// `modules.eventBus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EventBus {
    /// Run the module.
    pub enable: bool,
    /// QoS for device topics. Apiary's default is 1 (KubeEdge's is 0 and loses messages).
    #[serde(rename = "mqttQOS")]
    pub mqtt_qos: u8,
    /// Retain flag on published messages.
    pub mqtt_retain: bool,
    /// Per-session queue length of the embedded broker.
    pub mqtt_session_queue_size: u32,
    /// Address of the embedded broker.
    pub mqtt_server_internal: String,
    /// Address of an external broker.
    pub mqtt_server_external: String,
    /// Client id of the subscribing client (empty: generated).
    #[serde(rename = "mqttSubClientID")]
    pub mqtt_sub_client_id: String,
    /// Client id of the publishing client (empty: generated).
    #[serde(rename = "mqttPubClientID")]
    pub mqtt_pub_client_id: String,
    /// Username for the broker.
    pub mqtt_username: String,
    /// Password for the broker.
    pub mqtt_password: String,
    /// 0 internal broker, 1 both, 2 external. Apiary's default is 0 (KubeEdge's is 2).
    pub mqtt_mode: u8,
    /// TLS to the broker.
    #[serde(rename = "eventBusTLS")]
    pub event_bus_tls: EventBusTls,
    /// The embedded broker (Apiary).
    pub broker: Broker,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            enable: true,
            mqtt_qos: 1,
            mqtt_retain: false,
            mqtt_session_queue_size: 100,
            mqtt_server_internal: "tcp://127.0.0.1:1884".to_owned(),
            mqtt_server_external: "tcp://127.0.0.1:1883".to_owned(),
            mqtt_sub_client_id: String::new(),
            mqtt_pub_client_id: String::new(),
            mqtt_username: String::new(),
            mqtt_password: String::new(),
            mqtt_mode: 0,
            event_bus_tls: EventBusTls::default(),
            broker: Broker::default(),
        }
    }
}

impl EventBus {
    /// Where the embedded broker listens: `mqttServerInternal` without its
    /// scheme, which must be `<ip>:<port>`; `None` if it is not.
    pub fn internal_listen_addr(&self) -> Option<SocketAddr> {
        let address = &self.mqtt_server_internal;
        address
            .split_once("://")
            .map_or(address.as_str(), |(_, rest)| rest)
            .parse()
            .ok()
    }
}

/// `modules.eventBus.eventBusTLS`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventBusTls {
    /// Use TLS to the broker.
    pub enable: bool,
    /// CA file.
    #[serde(rename = "tlsMqttCAFile")]
    pub tls_mqtt_ca_file: String,
    /// Client certificate file.
    #[serde(rename = "tlsMqttCertFile")]
    pub tls_mqtt_cert_file: String,
    /// Client key file.
    #[serde(rename = "tlsMqttPrivateKeyFile")]
    pub tls_mqtt_private_key_file: String,
}

/// `modules.metaManager`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct MetaManager {
    /// Run the module.
    pub enable: bool,
    /// Group that carries remote queries.
    pub context_send_group: String,
    /// Module that carries remote queries.
    pub context_send_module: String,
    /// Seconds a remote query may take.
    pub remote_query_timeout: u32,
    /// The local Kubernetes-style API.
    pub meta_server: MetaServer,
}

impl Default for MetaManager {
    fn default() -> Self {
        MetaManager {
            enable: true,
            context_send_group: "hub".to_owned(),
            context_send_module: "websocket".to_owned(),
            remote_query_timeout: 60,
            meta_server: MetaServer::default(),
        }
    }
}

/// `modules.metaManager.metaServer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct MetaServer {
    /// Serve it. Apiary's default is on (loopback only); KubeEdge's is off.
    pub enable: bool,
    /// `host:port` to listen on.
    pub server: String,
    /// TLS CA (with `RequireAuthorization`).
    pub tls_ca_file: String,
    /// TLS certificate.
    pub tls_cert_file: String,
    /// TLS key.
    pub tls_private_key_file: String,
    /// Accepted token audiences.
    pub api_audiences: Vec<String>,
    /// Accepted token issuers.
    pub service_account_issuers: Vec<String>,
    /// Keys that verify tokens.
    pub service_account_key_files: Vec<String>,
    /// In-cluster address (KubeEdge's dummy interface).
    pub dummy_server: String,
}

impl Default for MetaServer {
    fn default() -> Self {
        MetaServer {
            enable: true,
            server: "127.0.0.1:10550".to_owned(),
            tls_ca_file: "/etc/kubeedge/ca/rootCA.crt".to_owned(),
            tls_cert_file: "/etc/kubeedge/certs/server.crt".to_owned(),
            tls_private_key_file: "/etc/kubeedge/certs/server.key".to_owned(),
            api_audiences: Vec::new(),
            service_account_issuers: Vec::new(),
            service_account_key_files: Vec::new(),
            dummy_server: "169.254.30.10:10550".to_owned(),
        }
    }
}

/// `modules.serviceBus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct ServiceBus {
    /// Run the module.
    pub enable: bool,
    /// Address to listen on.
    pub server: String,
    /// Port to listen on.
    pub port: u16,
    /// Seconds a forwarded request may take.
    pub timeout: u32,
}

impl Default for ServiceBus {
    fn default() -> Self {
        ServiceBus {
            enable: false,
            server: "127.0.0.1".to_owned(),
            port: 9060,
            timeout: 60,
        }
    }
}

/// `modules.deviceTwin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct DeviceTwin {
    /// Run the module.
    pub enable: bool,
    /// Directory of the DMI socket for mappers.
    pub dmi_sock_path: String,
}

impl Default for DeviceTwin {
    fn default() -> Self {
        DeviceTwin {
            enable: true,
            dmi_sock_path: "/etc/kubeedge/dmi.sock".to_owned(),
        }
    }
}

/// `modules.nodeStatus` (Apiary): what KubeEdge's edged did for the Node
/// object. Key names follow edged's where they mean the same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct NodeStatus {
    /// Register and report the Node.
    pub enable: bool,
    /// The node name (empty: the host name).
    pub hostname_override: String,
    /// The node's address (empty: detected from the host).
    #[serde(rename = "nodeIP")]
    pub node_ip: String,
    /// Extra labels on the Node (`node-role.kubernetes.io/edge` is always set).
    pub node_labels: BTreeMap<String, String>,
    /// Create the Node if it does not exist.
    pub register_node: bool,
    /// Seconds between node status reports.
    pub node_status_update_frequency: u32,
    /// Seconds a Lease is valid; it is renewed at a quarter of this.
    pub lease_duration_seconds: u32,
}

impl Default for NodeStatus {
    fn default() -> Self {
        NodeStatus {
            enable: true,
            hostname_override: String::new(),
            node_ip: String::new(),
            node_labels: BTreeMap::new(),
            register_node: true,
            node_status_update_frequency: 10,
            lease_duration_seconds: 40,
        }
    }
}
