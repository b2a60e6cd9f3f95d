//! Configurations for daemons under test: every listener on 127.0.0.1 port
//! 0, every file in a temporary directory, short timers.

use std::net::SocketAddr;
use std::path::Path;

use cloudcore::CloudCoreConfig;
use edgecore::EdgeCoreConfig;

/// A cloudcore with WebSocket, QUIC and HTTPS on loopback port 0, its data
/// in `dir`, and a keepalive interval of `keepalive` seconds.
pub fn cloud(dir: &Path, keepalive: u32) -> CloudCoreConfig {
    let mut config = CloudCoreConfig::default();
    config.common_config.data_dir = dir.display().to_string();
    config.common_config.monitor_server.bind_address = "127.0.0.1:0".into();
    config.kube_api_config.embedded.bind_address = "127.0.0.1:0".into();
    config.kube_api_config.embedded.ignore_environment = true;
    let hub = &mut config.modules.cloud_hub;
    hub.keepalive_interval = keepalive;
    for listener in [&mut hub.websocket, &mut hub.https] {
        listener.address = "127.0.0.1".into();
        listener.port = 0;
    }
    hub.quic.enable = true;
    hub.quic.address = "127.0.0.1".into();
    hub.quic.port = 0;
    // Tests put stand-ins on the bus; `device_controller.rs` and
    // `edge_controller.rs` turn the real ones on.
    config.modules.device_controller.enable = false;
    config.modules.edge_controller.enable = false;
    // Objects sent through the bus exist in no API: SyncController would
    // delete them at the edge. `converge.rs` turns it on.
    config.modules.sync_controller.enable = false;
    config
}

/// Which transport an edge dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// WebSocket.
    WebSocket,
    /// QUIC.
    Quic,
}

/// An edgecore named `node` that joins with `token` at `https` and dials
/// `server` over `via`, its files in `dir`, heartbeat `heartbeat` seconds.
pub fn edge(
    dir: &Path,
    node: &str,
    token: &str,
    https: SocketAddr,
    server: SocketAddr,
    via: Via,
    heartbeat: u32,
) -> EdgeCoreConfig {
    let mut config = EdgeCoreConfig::default();
    let file = |name: &str| dir.join(name).display().to_string();
    config.database.data_source = file("edgecore.db");
    config.common_config.monitor_server.bind_address = "127.0.0.1:0".into();
    config.modules.node_status.hostname_override = node.into();
    config.modules.meta_manager.meta_server.server = "127.0.0.1:0".into();
    config.modules.event_bus.mqtt_server_internal = "tcp://127.0.0.1:0".into();
    config.modules.service_bus.port = 0;
    let hub = &mut config.modules.edge_hub;
    hub.token = token.into();
    hub.http_server = format!("https://{https}");
    hub.tls_ca_file = file("ca/rootCA.crt");
    hub.tls_cert_file = file("certs/server.crt");
    hub.tls_private_key_file = file("certs/server.key");
    hub.heartbeat = heartbeat;
    hub.websocket.enable = via == Via::WebSocket;
    hub.quic.enable = via == Via::Quic;
    hub.websocket.server = server.to_string();
    hub.quic.server = server.to_string();
    config
}

/// `config` with only EdgeHub among the edge's own modules: link tests put
/// stand-ins on the bus and count every upstream message themselves.
pub fn link_only(mut config: EdgeCoreConfig) -> EdgeCoreConfig {
    config.modules.meta_manager.enable = false;
    config.modules.meta_manager.meta_server.enable = false;
    config.modules.node_status.enable = false;
    config.modules.event_bus.enable = false;
    config.modules.device_twin.enable = false;
    config.modules.service_bus.enable = false;
    config
}
