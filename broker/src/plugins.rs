//! Our broker configuration, written as the TOML of the rmqtt plugins that
//! carry it out (pure: no I/O, unit-tested below).
//!
//! - `rmqtt-acl` authenticates. Its rules are first-match quadruples
//!   `[allow|deny, who, action, topics]`; ours are CONNECT rules only:
//!   the internal superuser, users by name and password, the same names
//!   with any other password refused, then everyone else (clients with an
//!   unknown username), allowed only when anonymous clients are. Topics are
//!   checked by `acl` (see there for why not by this plugin).
//! - `rmqtt-retainer` and `rmqtt-session-storage` keep retained messages
//!   and persistent sessions in sled stores under the data directory.
//! - `rmqtt-sys-topic` publishes `$SYS/brokers/...`.
//!
//! rmqtt also reads `rmqtt_plugin_<plugin>_*` environment variables over
//! these; edgecore does not set any.

use std::path::Path;

use serde_json::{json, Value};

use crate::config::Broker;
use crate::error::{BrokerError, Result};

/// rmqtt-acl's name.
pub(crate) const ACL: &str = "rmqtt-acl";
/// rmqtt-retainer's name.
pub(crate) const RETAINER: &str = "rmqtt-retainer";
/// rmqtt-session-storage's name.
pub(crate) const SESSION_STORAGE: &str = "rmqtt-session-storage";
/// rmqtt-sys-topic's name.
pub(crate) const SYS_TOPIC: &str = "rmqtt-sys-topic";

/// Memory sled may use as cache, per store.
const SLED_CACHE: &str = "64M";

/// Who may connect, as the ACL plugin needs it.
pub(crate) struct Identities<'a> {
    /// The broker section.
    pub config: &'a Broker,
    /// edgecore's own `mqttUsername` / `mqttPassword` (empty: none).
    pub bus: (&'a str, &'a str),
    /// The per-start superuser.
    pub internal: (&'a str, &'a str),
    /// Whether clients without a username are let in.
    pub anonymous: bool,
}

/// The rmqtt-acl (CONNECT) rules for `ids`, in evaluation order.
pub(crate) fn acl_rules(ids: &Identities<'_>) -> Vec<Value> {
    let (su_name, su_password) = ids.internal;
    let mut users: Vec<(&str, &str)> = ids
        .config
        .users
        .iter()
        .map(|(name, password)| (name.as_str(), password.as_str()))
        .collect();
    // edgecore's own user, unless `users` names it (then that password).
    let (bus_name, bus_password) = ids.bus;
    let bus_is_extra = !bus_name.is_empty() && !ids.config.users.contains_key(bus_name);
    if bus_is_extra {
        users.push((bus_name, bus_password));
    }

    let mut rules = vec![json!([
        "allow",
        {"user": su_name, "password": su_password, "superuser": true},
        "connect"
    ])];
    for &(name, password) in &users {
        // The bus user with no password is known by name alone.
        if bus_is_extra && name == bus_name && password.is_empty() {
            rules.push(json!(["allow", {"user": name}, "connect"]));
        } else {
            rules.push(json!(["allow", {"user": name, "password": password}, "connect"]));
        }
    }
    // A known name with another password is refused, even when anonymous
    // clients are allowed.
    rules.push(json!(["deny", {"user": su_name}, "connect"]));
    for &(name, _) in &users {
        rules.push(json!(["deny", {"user": name}, "connect"]));
    }
    // Clients without a username never reach the plugin (rmqtt decides by
    // `allow_anonymous`); these are clients with an unknown username.
    let others = if ids.anonymous { "allow" } else { "deny" };
    rules.push(json!([others, "all", "connect"]));

    // Never reached: `acl::AclHandler` decides topics before this plugin.
    rules.push(json!(["allow", "all", "pubsub"]));
    rules
}

/// rmqtt-acl's configuration.
pub(crate) fn acl_toml(ids: &Identities<'_>) -> Result<String> {
    to_toml(
        ACL,
        &json!({
            "disconnect_if_pub_rejected": false,
            "rules": acl_rules(ids),
        }),
    )
}

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

    fn ids(config: &Broker) -> Identities<'_> {
        Identities {
            config,
            bus: ("bus", "buspw"),
            internal: ("su", "supw"),
            anonymous: config.anonymous_allowed("bus"),
        }
    }

    #[test]
    fn connect_rules_come_first_and_refuse_wrong_passwords() {
        let mut config = Broker::default();
        config.users.insert("mapper".into(), "secret".into());
        let rules = acl_rules(&ids(&config));
        assert_eq!(
            rules[0],
            json!(["allow", {"user": "su", "password": "supw", "superuser": true}, "connect"])
        );
        assert_eq!(
            rules[1],
            json!(["allow", {"user": "mapper", "password": "secret"}, "connect"])
        );
        assert_eq!(
            rules[2],
            json!(["allow", {"user": "bus", "password": "buspw"}, "connect"])
        );
        assert!(rules.contains(&json!(["deny", {"user": "mapper"}, "connect"])));
        assert!(rules.contains(&json!(["deny", "all", "connect"])));
        assert_eq!(rules.last(), Some(&json!(["allow", "all", "pubsub"])));
    }

    #[test]
    fn anonymous_brokers_let_unknown_names_in() {
        let config = Broker::default();
        let ids = Identities {
            config: &config,
            bus: ("", ""),
            internal: ("su", "supw"),
            anonymous: true,
        };
        assert!(acl_rules(&ids).contains(&json!(["allow", "all", "connect"])));
    }

    #[test]
    fn tomls_are_written() {
        let config = Broker::default();
        let acl = acl_toml(&ids(&config)).unwrap();
        assert!(acl.contains("disconnect_if_pub_rejected = false"), "{acl}");
        let retainer = retainer_toml(Path::new("/d/retained"), 1024).unwrap();
        assert!(retainer.contains("1024B"), "{retainer}");
        assert!(session_storage_toml(Path::new("/d/s"))
            .unwrap()
            .contains("sled"));
        assert!(sys_topic_toml().unwrap().contains("publish_qos = 0"));
    }
}
