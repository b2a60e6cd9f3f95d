//! The TOML of the rmqtt plugins that carry out part of our configuration
//! (pure: no I/O, unit-tested below).
//!
//! - `rmqtt-retainer` and `rmqtt-session-storage` keep retained messages
//!   and persistent sessions in sled stores under the data directory.
//! - `rmqtt-sys-topic` publishes `$SYS/brokers/...`.
//!
//! rmqtt also reads `rmqtt_plugin_<plugin>_*` environment variables over
//! these; edgecore does not set any.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{BrokerError, Result};

/// rmqtt-retainer's name.
pub(crate) const RETAINER: &str = "rmqtt-retainer";
/// rmqtt-session-storage's name.
pub(crate) const SESSION_STORAGE: &str = "rmqtt-session-storage";
/// rmqtt-sys-topic's name.
pub(crate) const SYS_TOPIC: &str = "rmqtt-sys-topic";

/// Memory sled may use as cache, per store.
const SLED_CACHE: &str = "64M";

/// rmqtt-retainer's configuration: a sled store under `dir`, no expiry
/// unless the publisher set one.
pub(crate) fn retainer_toml(dir: &Path, max_payload_bytes: u32) -> Result<String> {
    to_toml(
        RETAINER,
        &json!({
            "storage": {
                "type": "sled",
                "sled": {"path": dir.to_string_lossy(), "cache_capacity": SLED_CACHE},
            },
            "max_retained_messages": 0,
            "max_payload_size": format!("{max_payload_bytes}B"),
            // 0: no TTL of its own (not even the listener's message expiry).
            "retained_message_ttl": "0s",
        }),
    )
}

/// rmqtt-session-storage's configuration: a sled store under `dir`.
pub(crate) fn session_storage_toml(dir: &Path) -> Result<String> {
    to_toml(
        SESSION_STORAGE,
        &json!({
            "storage": {
                "type": "sled",
                "sled": {"path": dir.to_string_lossy(), "cache_capacity": SLED_CACHE},
            },
        }),
    )
}

/// rmqtt-sys-topic's configuration: statistics every minute at QoS 0
/// (nobody's backlog fills with them).
pub(crate) fn sys_topic_toml() -> Result<String> {
    to_toml(
        SYS_TOPIC,
        &json!({
            "publish_qos": 0,
            "publish_interval": "1m",
            "message_expiry_interval": "5m",
        }),
    )
}

fn to_toml(plugin: &'static str, value: &Value) -> Result<String> {
    toml::to_string(value).map_err(|source| BrokerError::PluginConfig { plugin, source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use super::*;

    #[test]
    fn tomls_are_written() {
        let retainer = retainer_toml(Path::new("/d/retained"), 1024).unwrap();
        assert!(retainer.contains("1024B"), "{retainer}");
        assert!(retainer.contains("path = \"/d/retained\""), "{retainer}");
        let sessions = session_storage_toml(Path::new("/d/sessions")).unwrap();
        assert!(sessions.contains("type = \"sled\""), "{sessions}");
        assert!(sys_topic_toml().unwrap().contains("publish_qos = 0"));
    }
}
