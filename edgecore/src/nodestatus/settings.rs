//! What the node-status module runs with: [`NodeStatusSettings`], checked
//! from `modules.nodeStatus` (plus the node name and the data directory),
//! and [`NodeStatusError`], the typed reasons a setting is refused or an
//! object cannot be encoded.

use std::collections::BTreeMap;
use std::net::{AddrParseError, IpAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::config::{is_dns_subdomain, EdgeCoreConfig, NodeStatus as NodeStatusConfig};

/// The result of a node-status operation.
pub type Result<T, E = NodeStatusError> = std::result::Result<T, E>;

/// Where the data directory is when the database path has no parent.
const DEFAULT_DATA_DIR: &str = "/var/lib/kubeedge";

/// Why the node-status settings were refused or an object could not be
/// encoded.
#[derive(Debug, Error)]
pub enum NodeStatusError {
    /// `modules.nodeStatus.nodeIP` is not an IP address.
    #[error("modules.nodeStatus.nodeIP: {value:?} is not an IP address")]
    NodeIp {
        /// The configured text.
        value: String,
        /// The parse failure.
        #[source]
        source: AddrParseError,
    },
    /// A setting is out of range or malformed.
    #[error("{key}: {reason}")]
    Setting {
        /// The configuration key (or "node name").
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Node, NodeStatus or Lease could not be turned into JSON.
    #[error("cannot encode the {what} as JSON")]
    Encode {
        /// Which object.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl NodeStatusError {
    fn setting(key: impl Into<String>, reason: impl Into<String>) -> Self {
        NodeStatusError::Setting {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The node-status module's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatusSettings {
    /// The Node's name (`hostnameOverride`, or the host name).
    pub node_name: String,
    /// The configured InternalIP (`nodeIP`); `None` means detect it.
    pub node_ip: Option<IpAddr>,
    /// Extra labels (`nodeLabels`); Apiary's own labels win on conflict.
    pub node_labels: BTreeMap<String, String>,
    /// Send the Node (`insert`) at start (`registerNode`).
    pub register_node: bool,
    /// Period of the status reports (`nodeStatusUpdateFrequency`).
    pub status_update_frequency: Duration,
    /// The Lease's `leaseDurationSeconds`.
    pub lease_duration_seconds: i32,
    /// The directory holding edgecore's data; its disk is the node's
    /// ephemeral storage.
    pub data_dir: PathBuf,
}

impl NodeStatusSettings {
    /// Settings from `modules.nodeStatus` of `config` for node `node_name`;
    /// the data directory is the one holding `database.dataSource`.
    pub fn from_config(config: &EdgeCoreConfig, node_name: &str) -> Result<Self> {
        let data_dir = Path::new(&config.database.data_source)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(DEFAULT_DATA_DIR));
        Self::from_section(&config.modules.node_status, node_name, data_dir)
    }

    /// Settings from the `modules.nodeStatus` section alone, with the data
    /// directory given.
    pub fn from_section(
        section: &NodeStatusConfig,
        node_name: &str,
        data_dir: &Path,
    ) -> Result<Self> {
        if !is_dns_subdomain(node_name) {
            return Err(NodeStatusError::setting(
                "node name",
                format!("{node_name:?} is not a lower-case DNS name (RFC 1123)"),
            ));
        }
        let node_ip = match section.node_ip.trim() {
            "" => None,
            text => Some(parse_node_ip(text)?),
        };
        for (key, value) in &section.node_labels {
            check_label(key, value)?;
        }
        if section.node_status_update_frequency == 0 {
            return Err(NodeStatusError::setting(
                "modules.nodeStatus.nodeStatusUpdateFrequency",
                "must be greater than 0",
            ));
        }
        let lease_duration_seconds = i32::try_from(section.lease_duration_seconds)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                NodeStatusError::setting(
                    "modules.nodeStatus.leaseDurationSeconds",
                    format!("must be between 1 and {}", i32::MAX),
                )
            })?;
        Ok(NodeStatusSettings {
            node_name: node_name.to_owned(),
            node_ip,
            node_labels: section.node_labels.clone(),
            register_node: section.register_node,
            status_update_frequency: Duration::from_secs(u64::from(
                section.node_status_update_frequency,
            )),
            lease_duration_seconds,
            data_dir: data_dir.to_owned(),
        })
    }

    /// How often the Lease is renewed: a quarter of its duration, as the
    /// kubelet does (10 s for the default 40 s).
    pub fn lease_renew_interval(&self) -> Duration {
        let millis = u64::try_from(self.lease_duration_seconds).unwrap_or(1) * 250;
        Duration::from_millis(millis.max(1))
    }
}

fn parse_node_ip(text: &str) -> Result<IpAddr> {
    let ip: IpAddr = text.parse().map_err(|source| NodeStatusError::NodeIp {
        value: text.to_owned(),
        source,
    })?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(NodeStatusError::setting(
            "modules.nodeStatus.nodeIP",
            format!("{ip} cannot be a node's address"),
        ));
    }
    Ok(ip)
}

/// Checks a label as Kubernetes does: an optional DNS-subdomain prefix and
/// `/`, then a name of at most 63 characters; the value is empty or a name.
fn check_label(key: &str, value: &str) -> Result<()> {
    let refuse = |reason: String| {
        Err(NodeStatusError::setting(
            format!("modules.nodeStatus.nodeLabels.{key}"),
            reason,
        ))
    };
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|p| !is_dns_subdomain(p)) {
        return refuse("the key's prefix must be a lower-case DNS name".to_owned());
    }
    if !is_label_name(name) {
        return refuse("the key must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".to_owned());
    }
    if !value.is_empty() && !is_label_name(value) {
        return refuse(format!("the value {value:?} must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"));
    }
    Ok(())
}

fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    s.len() <= 63
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> NodeStatusConfig {
        NodeStatusConfig::default()
    }

    #[test]
    fn defaults_give_ten_second_reports_and_lease_renewals() {
        let mut config = EdgeCoreConfig::default();
        config.database.data_source = "/data/edge/edgecore.db".into();
        let s = NodeStatusSettings::from_config(&config, "edge-1").unwrap();
        assert_eq!(s.node_name, "edge-1");
        assert_eq!(s.node_ip, None);
        assert!(s.register_node);
        assert_eq!(s.status_update_frequency, Duration::from_secs(10));
        assert_eq!(s.lease_duration_seconds, 40);
        assert_eq!(s.lease_renew_interval(), Duration::from_secs(10));
        assert_eq!(s.data_dir, Path::new("/data/edge"));
    }

    #[test]
    fn bare_database_name_uses_kubeedge_data_dir() {
        let mut config = EdgeCoreConfig::default();
        config.database.data_source = "edgecore.db".into();
        let s = NodeStatusSettings::from_config(&config, "edge-1").unwrap();
        assert_eq!(s.data_dir, Path::new(DEFAULT_DATA_DIR));
    }

    #[test]
    fn short_leases_renew_at_a_quarter() {
        let mut ns = section();
        ns.lease_duration_seconds = 2;
        let s = NodeStatusSettings::from_section(&ns, "n", Path::new("/d")).unwrap();
        assert_eq!(s.lease_renew_interval(), Duration::from_millis(500));
    }

    #[test]
    fn node_ip_is_parsed_and_checked() {
        let mut ns = section();
        ns.node_ip = " 192.168.1.20 ".into();
        let s = NodeStatusSettings::from_section(&ns, "n", Path::new("/d")).unwrap();
        assert_eq!(s.node_ip, Some("192.168.1.20".parse().unwrap()));

        ns.node_ip = "fd00::7".into();
        let s = NodeStatusSettings::from_section(&ns, "n", Path::new("/d")).unwrap();
        assert_eq!(s.node_ip, Some("fd00::7".parse().unwrap()));

        ns.node_ip = "192.168.1".into();
        let err = NodeStatusSettings::from_section(&ns, "n", Path::new("/d")).unwrap_err();
        assert!(matches!(err, NodeStatusError::NodeIp { ref value, .. } if value == "192.168.1"));
        assert!(err.to_string().contains("modules.nodeStatus.nodeIP"));

        ns.node_ip = "0.0.0.0".into();
        let err = NodeStatusSettings::from_section(&ns, "n", Path::new("/d")).unwrap_err();
        assert!(
            matches!(err, NodeStatusError::Setting { ref key, .. } if key == "modules.nodeStatus.nodeIP")
        );
    }

    #[test]
    fn bad_names_periods_and_labels_are_refused_by_key() {
        let refused_key = |ns: &NodeStatusConfig, name: &str| match NodeStatusSettings::from_section(
            ns,
            name,
            Path::new("/d"),
        ) {
            Err(NodeStatusError::Setting { key, .. }) => key,
            other => panic!("expected a setting error, got {other:?}"),
        };
        assert_eq!(refused_key(&section(), "Edge_1"), "node name");
        assert_eq!(refused_key(&section(), ""), "node name");

        let mut ns = section();
        ns.node_status_update_frequency = 0;
        assert_eq!(
            refused_key(&ns, "n"),
            "modules.nodeStatus.nodeStatusUpdateFrequency"
        );

        let mut ns = section();
        ns.lease_duration_seconds = u32::MAX;
        assert_eq!(
            refused_key(&ns, "n"),
            "modules.nodeStatus.leaseDurationSeconds"
        );

        for (k, v) in [("-bad", ""), ("Bad.Prefix/x", "v"), ("ok", "bad value")] {
            let mut ns = section();
            ns.node_labels.insert(k.into(), v.into());
            assert_eq!(
                refused_key(&ns, "n"),
                format!("modules.nodeStatus.nodeLabels.{k}")
            );
        }
    }

    #[test]
    fn good_labels_pass() {
        let mut ns = section();
        for (k, v) in [
            ("zone", "factory-3"),
            ("example.com/tier", ""),
            ("a_b.c", "X.y_z"),
        ] {
            ns.node_labels.insert(k.into(), v.into());
        }
        let s = NodeStatusSettings::from_section(&ns, "n", Path::new("/d")).unwrap();
        assert_eq!(s.node_labels.len(), 3);
    }
}
