//! The `modules` section of `edgecore.yaml`, one struct per KubeEdge module
//! Apiary has, with KubeEdge's key names and defaults (reference §8).
//!
//! Where Apiary's default differs from KubeEdge's it says so on the field.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_norway::Value;

use super::Broker;

/// KubeEdge's default project id, part of the WebSocket URL.
pub const DEFAULT_PROJECT_ID: &str = "e632aba927ea4ac2b575ec1603d56f10";

/// Every module section. Unknown keys are refused, except the KubeEdge
/// modules Apiary does not have, which are accepted and reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeModules {
    /// The link to the cloud: WebSocket or QUIC to CloudHub, joining with a
    /// token, certificate rotation, the outbox.
    pub edge_hub: EdgeHub,
    /// MQTT: the embedded broker and the bridge between device topics and
    /// the other modules.
    pub event_bus: EventBus,
    /// The edge's store of what the cloud sent (SQLite) and the MetaServer.
    pub meta_manager: MetaManager,
    /// HTTP between the cloud and applications on the node.
    pub service_bus: ServiceBus,
    /// Device twins: devices, their attributes and twin values, and the
    /// MQTT topics mappers use.
    pub device_twin: DeviceTwin,
    /// Node registration, status and lease (KubeEdge does this in edged).
    #[schemars(extend("x-apiary-addition" = true))]
    pub node_status: NodeStatus,
    /// KubeEdge's edged, the kubelet that runs pods; not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    pub edged: Option<Value>,
    /// KubeEdge's EdgeStream, the edge end of the `kubectl logs`/`exec`
    /// tunnel; not in Apiary yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    pub edge_stream: Option<Value>,
    /// KubeEdge's TaskManager (node upgrade and image pre-pull tasks); not
    /// in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
    pub task_manager: Option<Value>,
    /// KubeEdge's DBTest, a module for testing the database; not in Apiary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>", extend("x-kubeedge-unsupported" = true))]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeHub {
    /// Run EdgeHub, the link to the cloud; without it the node works from
    /// its local store only.
    pub enable: bool,
    /// Seconds between keepalives to the cloud; the link is dropped after
    /// two heartbeats without anything received.
    pub heartbeat: u32,
    /// Messages per second sent up to the cloud; more wait their turn in
    /// the outbox.
    #[serde(rename = "messageQPS")]
    pub message_qps: f64,
    /// Messages sent at once above `messageQPS`.
    pub message_burst: u32,
    /// Project id in the WebSocket URL path (`/<projectID>/<node>/events`).
    #[serde(rename = "projectID")]
    pub project_id: String,
    /// The cloud's CA certificate (PEM); fetched from `httpServer` and
    /// checked against the token's hash when joining.
    pub tls_ca_file: String,
    /// This node's client certificate (PEM), issued by the cloud when
    /// joining and renewed by rotation.
    pub tls_cert_file: String,
    /// This node's private key (PEM), made when joining.
    pub tls_private_key_file: String,
    /// Join token from `cloudcore gettoken`; used to get a certificate
    /// when there is no usable one.
    pub token: String,
    /// The cloud's certificate server, `https://host:10002`, where the node
    /// gets and renews its certificate.
    pub http_server: String,
    /// Renew the client certificate at 80 % of its lifetime.
    pub rotate_certificates: bool,
    /// Connect over WebSocket (exactly one of `websocket` and `quic` is
    /// enabled).
    pub websocket: HubTransport,
    /// Connect over QUIC (exactly one of `websocket` and `quic` is
    /// enabled).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct HubTransport {
    /// Use this transport.
    pub enable: bool,
    /// The cloud's `host:port` for this transport.
    pub server: String,
    /// Seconds a connection attempt (connect, TLS and the protocol
    /// handshake) may take.
    pub handshake_timeout: u32,
    /// KubeEdge's read deadline in seconds (accepted, not used: Apiary
    /// drops the link after two heartbeats without anything received).
    pub read_deadline: u32,
    /// Seconds a write to the cloud may take before the link is dropped.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EventBus {
    /// Run EventBus (and, with `mqttMode` 0 or 1, the embedded broker).
    pub enable: bool,
    /// MQTT QoS (0, 1 or 2) of EventBus's subscriptions and publishes.
    /// Apiary's default is 1 (KubeEdge's is 0, which loses messages).
    #[serde(rename = "mqttQOS")]
    pub mqtt_qos: u8,
    /// Set the retain flag on the messages EventBus publishes.
    pub mqtt_retain: bool,
    /// Messages in flight per client session of the embedded broker (at
    /// most 65535).
    pub mqtt_session_queue_size: u32,
    /// Where the embedded broker listens, `tcp://<ip>:<port>`.
    pub mqtt_server_internal: String,
    /// URL of an external broker (`tcp://`, `mqtt://`, or `ssl://`/`mqtts://`
    /// with `eventBusTLS`), used with `mqttMode` 1 or 2.
    pub mqtt_server_external: String,
    /// Client id of EventBus's persistent MQTT session (empty:
    /// `apiary-eventbus-<node>`).
    #[serde(rename = "mqttSubClientID")]
    pub mqtt_sub_client_id: String,
    /// KubeEdge's id of its separate publishing client (accepted, not
    /// used: Apiary publishes over the `mqttSubClientID` session).
    #[serde(rename = "mqttPubClientID")]
    pub mqtt_pub_client_id: String,
    /// Username EventBus logs in with; the embedded broker accepts it for
    /// EventBus too.
    pub mqtt_username: String,
    /// Password that goes with `mqttUsername` (empty: the embedded broker
    /// accepts any password for that user).
    pub mqtt_password: String,
    /// Which brokers EventBus uses: 0 the embedded one, 1 both the embedded
    /// and `mqttServerExternal`, 2 `mqttServerExternal` only. Apiary's
    /// default is 0 (KubeEdge's is 2).
    pub mqtt_mode: u8,
    /// TLS to the external broker.
    #[serde(rename = "eventBusTLS")]
    pub event_bus_tls: EventBusTls,
    /// The embedded MQTT broker, run when `mqttMode` is 0 or 1.
    #[schemars(extend("x-apiary-addition" = true))]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EventBusTls {
    /// Connect to the external broker over TLS (`mqttServerExternal`
    /// must then be `ssl://` or `mqtts://`).
    pub enable: bool,
    /// CA certificate (PEM) the broker's certificate must chain to;
    /// required with TLS.
    #[serde(rename = "tlsMqttCAFile")]
    pub tls_mqtt_ca_file: String,
    /// Client certificate (PEM) to present; optional, but goes with
    /// `tlsMqttPrivateKeyFile`.
    #[serde(rename = "tlsMqttCertFile")]
    pub tls_mqtt_cert_file: String,
    /// Private key (PEM) of `tlsMqttCertFile`.
    #[serde(rename = "tlsMqttPrivateKeyFile")]
    pub tls_mqtt_private_key_file: String,
}

/// `modules.metaManager`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct MetaManager {
    /// Run MetaManager: store what the cloud sends (acknowledged once
    /// committed) and answer the other modules' queries.
    pub enable: bool,
    /// KubeEdge's group for queries to the cloud (accepted, not used:
    /// queries go to `contextSendModule`).
    pub context_send_group: String,
    /// Module that carries queries to the cloud (EdgeHub is `websocket`).
    pub context_send_module: String,
    /// Seconds a query to the cloud may take; after that, or while
    /// offline, the local store answers.
    pub remote_query_timeout: u32,
    /// The local, read-only Kubernetes-style API over the store.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct MetaServer {
    /// Serve the MetaServer. Apiary's default is on (loopback only);
    /// KubeEdge's is off.
    pub enable: bool,
    /// `ip:port` to listen on (plain HTTP, read-only).
    pub server: String,
    /// KubeEdge's CA for the MetaServer's TLS (accepted, not used: Apiary
    /// serves plain HTTP).
    pub tls_ca_file: String,
    /// KubeEdge's MetaServer certificate (accepted, not used).
    pub tls_cert_file: String,
    /// KubeEdge's MetaServer key (accepted, not used).
    pub tls_private_key_file: String,
    /// KubeEdge's accepted service-account token audiences (accepted, not
    /// used: Apiary checks no tokens).
    pub api_audiences: Vec<String>,
    /// KubeEdge's accepted service-account token issuers (accepted, not
    /// used).
    pub service_account_issuers: Vec<String>,
    /// KubeEdge's keys that verify service-account tokens (accepted, not
    /// used).
    pub service_account_key_files: Vec<String>,
    /// KubeEdge's in-cluster address on a dummy interface (accepted, not
    /// used).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct ServiceBus {
    /// Run ServiceBus: calls from the cloud to local applications, and
    /// an HTTP listener for local applications' requests to the cloud.
    pub enable: bool,
    /// IP address the listener binds.
    pub server: String,
    /// TCP port the listener binds.
    pub port: u16,
    /// Seconds a request may wait for its answer.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct DeviceTwin {
    /// Run DeviceTwin: keep devices and their twins in SQLite and answer
    /// mappers on the `$hw/events/device/...` topics.
    pub enable: bool,
    /// KubeEdge's socket for mappers speaking DMI (accepted, not used:
    /// Apiary's mappers use MQTT).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct NodeStatus {
    /// Run NodeStatus: register the Node (with `registerNode`), report its
    /// status and renew its Lease.
    pub enable: bool,
    /// The node name, also the name edgecore joins and connects as (empty:
    /// the host name, in lower case).
    pub hostname_override: String,
    /// The node's address (empty: detected from the host).
    #[serde(rename = "nodeIP")]
    pub node_ip: String,
    /// Extra labels on the Node (`node-role.kubernetes.io/edge` is always
    /// set).
    pub node_labels: BTreeMap<String, String>,
    /// Register the Node with the cloud at start.
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
