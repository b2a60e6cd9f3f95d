//! The quickstart's data directory and the two configurations in it.
//!
//! ```text
//! <data>/cloudcore.yaml            cloudcore's configuration (written once, then read)
//! <data>/cloud/                    cloudcore's dataDir: embedded API database,
//!                                  PKI, admin kubeconfig
//! <data>/edge/config/edgecore.yaml written by `edgecore join`
//! <data>/edge/{ca,certs}/          the edge's CA, certificate and key
//! <data>/edge/data/                edgecore.db, its outbox, the broker's store
//! ```
//!
//! Everything listens on 127.0.0.1: on KubeEdge's ports by default, on
//! ports the OS picks with `--any-port` (for a second instance beside the
//! first, and for tests).

use std::path::{Path, PathBuf};

use cloudcore::CloudCoreConfig;
use edgecore::EdgeCoreConfig;

/// Which ports the listeners use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// KubeEdge's: CloudHub 10000/10001/10002, MetaServer 10550, the broker
    /// 1884, the embedded API 6443, metrics 9091 (cloud) and 9092 (edge).
    Default,
    /// Free ports chosen by the OS at every start.
    Any,
}

/// The paths under the data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// cloudcore's configuration file.
    pub fn cloud_config(&self) -> PathBuf {
        self.root.join("cloudcore.yaml")
    }

    /// cloudcore's `dataDir`.
    pub fn cloud_dir(&self) -> PathBuf {
        self.root.join("cloud")
    }

    /// The edge's configuration directory (`edgecore join --config-dir`).
    pub fn edge_dir(&self) -> PathBuf {
        self.root.join("edge")
    }

    /// The edge's data directory (`edgecore join --data-dir`).
    pub fn edge_data_dir(&self) -> PathBuf {
        self.edge_dir().join("data")
    }

    /// The edge's configuration file.
    pub fn edge_config(&self) -> PathBuf {
        edgecore::join::config_path(&self.edge_dir())
    }
}

/// cloudcore on its embedded API (never a cluster from `KUBECONFIG`), all
/// listeners on 127.0.0.1, QUIC on as well as WebSocket, its data under
/// the layout.
pub fn cloud_config(layout: &Layout, ports: Ports) -> CloudCoreConfig {
    let mut config = CloudCoreConfig::default();
    config.common_config.data_dir = layout.cloud_dir().display().to_string();
    config.kube_api_config.embedded.ignore_environment = true;
    config.modules.cloud_hub.quic.enable = true;
    cloud_listeners(&mut config, ports);
    config
}

/// Puts cloudcore's listeners (metrics, embedded API, CloudHub's
/// WebSocket, QUIC and certificate server) on 127.0.0.1 and `ports`.
pub fn cloud_listeners(config: &mut CloudCoreConfig, ports: Ports) {
    let any = ports == Ports::Any;
    let port = |default: u16| if any { 0 } else { default };
    config.common_config.monitor_server.bind_address = format!("127.0.0.1:{}", port(9091));
    config.kube_api_config.embedded.bind_address = format!("127.0.0.1:{}", port(6443));
    let hub = &mut config.modules.cloud_hub;
    for (listener, default) in [(&mut hub.websocket, 10000), (&mut hub.https, 10002)] {
        listener.address = "127.0.0.1".to_owned();
        listener.port = port(default);
    }
    hub.quic.address = "127.0.0.1".to_owned();
    hub.quic.port = port(10001);
}

/// Sets the edge's own listeners (metrics, MetaServer, broker) for `ports`
/// and its heartbeat and status period short enough for a demo to react.
pub fn edge_listeners(config: &mut EdgeCoreConfig, ports: Ports) {
    let any = ports == Ports::Any;
    let port = |default: u16| if any { 0 } else { default };
    config.common_config.monitor_server.bind_address = format!("127.0.0.1:{}", port(9092));
    config.modules.meta_manager.meta_server.server = format!("127.0.0.1:{}", port(10550));
    config.modules.event_bus.mqtt_server_internal = format!("tcp://127.0.0.1:{}", port(1884));
    config.modules.node_status.node_status_update_frequency = 5;
}

/// Points the edge at the cloud's current WebSocket and certificate
/// addresses (they move between runs with [`Ports::Any`]).
pub fn edge_cloud_addrs(config: &mut EdgeCoreConfig, websocket: &str, https: &str) {
    let hub = &mut config.modules.edge_hub;
    hub.websocket.server = websocket.to_owned();
    hub.http_server = format!("https://{https}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use daemonkit::DaemonConfig;

    #[test]
    fn both_configurations_validate_with_either_ports() {
        let layout = Layout::new("/data/apiary");
        for ports in [Ports::Default, Ports::Any] {
            let cloud = cloud_config(&layout, ports);
            assert!(cloud.validate().is_empty(), "{:?}", cloud.validate());
            assert_eq!(cloud.common_config.data_dir, "/data/apiary/cloud");
            let mut edge = EdgeCoreConfig::default();
            edge_listeners(&mut edge, ports);
            edge_cloud_addrs(&mut edge, "127.0.0.1:10000", "127.0.0.1:10002");
            assert!(edge.validate().is_empty(), "{:?}", edge.validate());
        }
        let cloud = cloud_config(&layout, Ports::Default);
        assert_eq!(cloud.modules.cloud_hub.websocket.port, 10000);
        assert_eq!(
            cloud.kube_api_config.embedded.bind_address,
            "127.0.0.1:6443"
        );
        assert_eq!(
            layout.edge_config(),
            Path::new("/data/apiary/edge/config/edgecore.yaml")
        );
    }
}
