//! `edgecore.yaml`: KubeEdge's `EdgeCore` configuration (`edgecore.config.kubeedge.io/v1alpha2`),
//! with its key names and defaults, plus the few keys Apiary adds.
//!
//! Apiary's additions, marked `x-apiary-addition` for the generated
//! reference (docs/configuration.md, see `daemonkit::reference`):
//! `commonConfig` (the metrics address), `modules.nodeStatus` (Node
//! registration, which KubeEdge does inside edged) and
//! `modules.eventBus.broker` (the embedded MQTT broker). Keys of KubeEdge
//! modules Apiary does not have (`edged`, `edgeStream`, `taskManager`,
//! `dbTest`) are accepted and named in one warning (marked
//! `x-kubeedge-unsupported`); any other unknown key is an error.

mod modules;

use std::collections::BTreeMap;

use daemonkit::{Checks, DaemonConfig, Invalid};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use broker::{AclAction, AclPermission, AclRule, Broker, BrokerAcl};
pub use modules::{
    DeviceTwin, EdgeHub, EdgeModules, EventBus, EventBusTls, HubTransport, MetaManager, MetaServer,
    NodeStatus, ServiceBus, DEFAULT_PROJECT_ID,
};

/// The `apiVersion` written by `--defaultconfig`.
pub const API_VERSION: &str = "edgecore.config.kubeedge.io/v1alpha2";
const ACCEPTED_API_VERSIONS: &[&str] = &[API_VERSION, "edgecore.config.kubeedge.io/v1alpha1"];

/// The whole `edgecore.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeCoreConfig {
    /// Schema version of the file: `edgecore.config.kubeedge.io/v1alpha2`
    /// (`v1alpha1` is accepted too).
    pub api_version: String,
    /// Kind of the file; must be `EdgeCore`.
    pub kind: String,
    /// The SQLite database of the edge's copy of its objects and devices.
    pub database: Database,
    /// Daemon-wide settings: the metrics endpoint.
    #[schemars(extend("x-apiary-addition" = true))]
    pub common_config: CommonConfig,
    /// One section per edgecore module.
    pub modules: EdgeModules,
    /// KubeEdge's feature gates by name; Apiary has none, so every gate set
    /// here has no effect and is named in the start-up warning.
    pub feature_gates: BTreeMap<String, bool>,
    /// The KubeEdge version keadm wrote the file for (accepted, not used).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub edgecore_version: String,
}

impl Default for EdgeCoreConfig {
    fn default() -> Self {
        EdgeCoreConfig {
            api_version: API_VERSION.to_owned(),
            kind: "EdgeCore".to_owned(),
            database: Database::default(),
            common_config: CommonConfig::default(),
            modules: EdgeModules::default(),
            feature_gates: BTreeMap::new(),
            edgecore_version: String::new(),
        }
    }
}

/// `database`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct Database {
    /// Database driver; must be `sqlite3`.
    pub driver_name: String,
    /// KubeEdge's ORM alias of the database (accepted, not used).
    pub alias_name: String,
    /// Path of the SQLite file (its directory is created if missing).
    /// EdgeHub's outbox is kept beside it (`.outbox.db` instead of the
    /// extension), and so is the embedded broker's `broker/` directory
    /// unless `modules.eventBus.broker.dataDir` says otherwise.
    pub data_source: String,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            driver_name: "sqlite3".to_owned(),
            alias_name: "default".to_owned(),
            data_source: "/var/lib/kubeedge/edgecore.db".to_owned(),
        }
    }
}

/// `commonConfig` (Apiary).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CommonConfig {
    /// Prometheus metrics and health endpoints.
    pub monitor_server: MonitorServer,
}

/// `commonConfig.monitorServer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct MonitorServer {
    /// `ip:port` serving `/metrics`, `/healthz` and `/readyz` (port 0 picks
    /// a free one).
    pub bind_address: String,
}

impl Default for MonitorServer {
    fn default() -> Self {
        MonitorServer {
            bind_address: "127.0.0.1:9092".to_owned(),
        }
    }
}

impl EdgeCoreConfig {
    fn check_hub(&self, c: &mut Checks) {
        let hub = &self.modules.edge_hub;
        if !hub.enable {
            return;
        }
        let key = "modules.edgeHub";
        c.positive(hub.heartbeat, &format!("{key}.heartbeat"));
        c.check(
            hub.message_qps.is_finite() && hub.message_qps > 0.0,
            &format!("{key}.messageQPS"),
            "must be a number greater than 0",
        );
        c.positive(hub.message_burst, &format!("{key}.messageBurst"));
        c.url(&hub.http_server, &format!("{key}.httpServer"), &["https"]);
        c.check(
            hub.websocket.enable != hub.quic.enable,
            &format!("{key}.websocket.enable"),
            "exactly one of websocket and quic must be enabled",
        );
        for (name, t) in [("websocket", &hub.websocket), ("quic", &hub.quic)] {
            if t.enable {
                let key = format!("{key}.{name}");
                c.host_port(&t.server, &format!("{key}.server"));
                c.positive(t.handshake_timeout, &format!("{key}.handshakeTimeout"));
                c.positive(t.read_deadline, &format!("{key}.readDeadline"));
                c.positive(t.write_deadline, &format!("{key}.writeDeadline"));
            }
        }
    }

    fn check_bus(&self, c: &mut Checks) {
        let bus = &self.modules.event_bus;
        if !bus.enable {
            return;
        }
        c.check(
            bus.mqtt_qos <= 2,
            "modules.eventBus.mqttQOS",
            "must be 0, 1 or 2",
        );
        c.check(
            bus.mqtt_mode <= 2,
            "modules.eventBus.mqttMode",
            "must be 0 (internal), 1 (both) or 2 (external)",
        );
        c.positive(
            bus.mqtt_session_queue_size,
            "modules.eventBus.mqttSessionQueueSize",
        );
        let schemes = ["tcp", "ssl", "mqtt", "mqtts"];
        c.url(
            &bus.mqtt_server_internal,
            "modules.eventBus.mqttServerInternal",
            &schemes,
        );
        c.url(
            &bus.mqtt_server_external,
            "modules.eventBus.mqttServerExternal",
            &schemes,
        );
        let broker = &bus.broker;
        if bus.mqtt_mode != 2 {
            c.check(
                bus.internal_listen_addr().is_some(),
                "modules.eventBus.mqttServerInternal",
                format!(
                    "{:?} must be tcp://<ip>:<port> for the embedded broker",
                    bus.mqtt_server_internal
                ),
            );
            if !broker.websocket.is_empty() {
                c.socket_addr(&broker.websocket, "modules.eventBus.broker.websocket");
            }
            c.positive(
                broker.max_connections,
                "modules.eventBus.broker.maxConnections",
            );
            c.positive(
                broker.max_payload_bytes,
                "modules.eventBus.broker.maxPayloadBytes",
            );
            c.positive(
                broker.max_queued_messages,
                "modules.eventBus.broker.maxQueuedMessages",
            );
            for (i, rule) in broker.acl.rules.iter().enumerate() {
                c.check(
                    !rule.topics.is_empty() && rule.topics.iter().all(|t| !t.is_empty()),
                    &format!("modules.eventBus.broker.acl.rules[{i}].topics"),
                    "must name at least one non-empty topic filter",
                );
            }
        }
    }
}

impl DaemonConfig for EdgeCoreConfig {
    fn validate(&self) -> Vec<Invalid> {
        let mut c = Checks::default();
        c.check(self.kind == "EdgeCore", "kind", "must be EdgeCore");
        c.check(
            ACCEPTED_API_VERSIONS.contains(&self.api_version.as_str()),
            "apiVersion",
            format!("must be one of {}", ACCEPTED_API_VERSIONS.join(", ")),
        );
        c.check(
            self.database.driver_name == "sqlite3",
            "database.driverName",
            "must be sqlite3",
        );
        c.check(
            !self.database.data_source.is_empty(),
            "database.dataSource",
            "must name a file",
        );
        c.socket_addr(
            &self.common_config.monitor_server.bind_address,
            "commonConfig.monitorServer.bindAddress",
        );
        self.check_hub(&mut c);
        self.check_bus(&mut c);
        let meta = &self.modules.meta_manager;
        if meta.enable {
            c.positive(
                meta.remote_query_timeout,
                "modules.metaManager.remoteQueryTimeout",
            );
            if meta.meta_server.enable {
                c.socket_addr(
                    &meta.meta_server.server,
                    "modules.metaManager.metaServer.server",
                );
            }
        }
        let sb = &self.modules.service_bus;
        if sb.enable {
            c.check(
                sb.server.parse::<std::net::IpAddr>().is_ok(),
                "modules.serviceBus.server",
                "must be an IP address",
            );
            c.positive(sb.timeout, "modules.serviceBus.timeout");
        }
        let ns = &self.modules.node_status;
        if ns.enable {
            c.positive(
                ns.node_status_update_frequency,
                "modules.nodeStatus.nodeStatusUpdateFrequency",
            );
            c.positive(
                ns.lease_duration_seconds,
                "modules.nodeStatus.leaseDurationSeconds",
            );
            c.check(
                ns.hostname_override.is_empty() || is_dns_subdomain(&ns.hostname_override),
                "modules.nodeStatus.hostnameOverride",
                "must be a lower-case DNS name (RFC 1123)",
            );
        }
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
            "database.dataSource",
            "modules.edgeHub.httpServer",
            "modules.edgeHub.token",
            "modules.edgeHub.websocket.enable",
            "modules.edgeHub.websocket.server",
            "modules.eventBus.mqttMode",
            "modules.metaManager.metaServer.server",
            "modules.nodeStatus.hostnameOverride",
        ]
    }
}

/// True for an RFC 1123 DNS subdomain, the rule for Kubernetes node names.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use daemonkit::config::{default_yaml, minimal_yaml, parse};
    use daemonkit::ConfigError;

    #[test]
    fn default_config_round_trips() {
        let text = default_yaml::<EdgeCoreConfig>().unwrap();
        assert_eq!(
            parse::<EdgeCoreConfig>(&text).unwrap(),
            EdgeCoreConfig::default()
        );
        assert!(text.contains("heartbeat: 15"), "{text}");
        assert!(
            text.contains("projectID: e632aba927ea4ac2b575ec1603d56f10"),
            "{text}"
        );
    }

    #[test]
    fn minimal_config_round_trips() {
        let text = minimal_yaml::<EdgeCoreConfig>().unwrap();
        assert_eq!(
            parse::<EdgeCoreConfig>(&text).unwrap(),
            EdgeCoreConfig::default()
        );
    }

    #[test]
    fn heartbeat_of_wrong_type_is_named() {
        let err =
            parse::<EdgeCoreConfig>(r#"{modules: {edgeHub: {heartbeat: "abc"}}}"#).unwrap_err();
        assert!(
            err.to_string().contains("modules.edgeHub.heartbeat"),
            "{err}"
        );
    }

    #[test]
    fn both_transports_on_is_refused() {
        let err =
            parse::<EdgeCoreConfig>("modules: {edgeHub: {quic: {enable: true, server: 'c:1'}}}")
                .unwrap_err();
        let ConfigError::Invalid(items) = err else {
            panic!("{err}")
        };
        assert_eq!(items[0].key, "modules.edgeHub.websocket.enable");
    }

    #[test]
    fn kubeedge_modules_apiary_lacks_are_accepted_and_listed() {
        let text = "modules: {edged: {hostnameOverride: x}, edgeStream: {enable: false}}\nfeatureGates: {ModuleRestart: true}";
        let cfg = parse::<EdgeCoreConfig>(text).unwrap();
        assert_eq!(
            cfg.unsupported_keys(),
            [
                "modules.edged",
                "modules.edgeStream",
                "featureGates.ModuleRestart"
            ]
        );
    }

    #[test]
    fn unknown_key_in_a_supported_module_is_refused() {
        let err = parse::<EdgeCoreConfig>("modules: {eventBus: {mqttFoo: 1}}").unwrap_err();
        assert!(err.to_string().contains("mqttFoo"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        let err = parse::<EdgeCoreConfig>(
            "modules: {eventBus: {mqttQOS: 3}, nodeStatus: {hostnameOverride: Bad_Name}}",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("modules.eventBus.mqttQOS"), "{text}");
        assert!(
            text.contains("modules.nodeStatus.hostnameOverride"),
            "{text}"
        );
    }

    #[test]
    fn the_embedded_broker_needs_an_ip_and_port() {
        let err = parse::<EdgeCoreConfig>(
            "modules: {eventBus: {mqttServerInternal: 'tcp://localhost:1884'}}",
        )
        .unwrap_err();
        let ConfigError::Invalid(items) = err else {
            panic!("{err}")
        };
        assert_eq!(items[0].key, "modules.eventBus.mqttServerInternal");
        // With an external broker only, the address is not used.
        parse::<EdgeCoreConfig>(
            "modules: {eventBus: {mqttMode: 2, mqttServerInternal: 'tcp://localhost:1884'}}",
        )
        .unwrap();
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_subdomain("edge-1.example"));
        assert!(!is_dns_subdomain("-edge"));
        assert!(!is_dns_subdomain("Edge"));
        assert!(!is_dns_subdomain(""));
    }
}
