//! `modules.eventBus.broker` (Apiary): the embedded MQTT broker that serves
//! `mqttServerInternal` when `mqttMode` is 0 or 1.
//!
//! KubeEdge's internal broker had no settings beyond the queue size; these
//! keys are Apiary's. Defaults favour keeping messages: sessions and
//! offline messages do not expire, queues are long, and once any user is
//! configured anonymous clients are refused.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `modules.eventBus.broker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct Broker {
    /// `host:port` of an MQTT-over-WebSocket listener; empty: none.
    pub websocket: String,
    /// Let clients connect without credentials. Unset: allowed only while
    /// no user is configured (in `users` or `mqttUsername`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_anonymous: Option<bool>,
    /// Username → password of the clients the broker accepts.
    pub users: BTreeMap<String, String>,
    /// Topic access rules.
    pub acl: BrokerAcl,
    /// Client sessions at once, at most: connected clients and the
    /// persistent sessions kept for clients that are away. A client
    /// resuming its own session is always let in; others are refused
    /// (CONNACK "server unavailable").
    pub max_connections: u32,
    /// Largest accepted PUBLISH payload, bytes. A larger payload is
    /// acknowledged and dropped; a packet larger than this plus 65 KiB (room
    /// for the topic) closes the connection.
    pub max_payload_bytes: u32,
    /// Messages a session queues for its client, at most (KubeEdge's
    /// `mqttSessionQueueSize` is the in-flight window; this is the backlog).
    pub max_queued_messages: u32,
    /// Seconds a disconnected persistent session is kept; 0: for ever.
    pub session_expiry_seconds: u32,
    /// Seconds a queued message waits for its client; 0: for ever.
    pub message_expiry_seconds: u32,
    /// Directory of the broker's persistent sessions and retained messages;
    /// empty: `broker/` beside `database.dataSource`.
    pub data_dir: String,
    /// Publish broker statistics on `$SYS/...`.
    pub sys_topics: bool,
}

impl Default for Broker {
    fn default() -> Self {
        Broker {
            websocket: String::new(),
            allow_anonymous: None,
            users: BTreeMap::new(),
            acl: BrokerAcl::default(),
            max_connections: 1024,
            max_payload_bytes: 1024 * 1024,
            max_queued_messages: 100_000,
            session_expiry_seconds: 0,
            message_expiry_seconds: 0,
            data_dir: String::new(),
            sys_topics: true,
        }
    }
}

/// `modules.eventBus.broker.acl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct BrokerAcl {
    /// Refuse what no rule allows (otherwise allow it).
    pub deny_by_default: bool,
    /// Rules, first match wins. Topics may use `${clientid}` and
    /// `${username}`, replaced by the client's own.
    pub rules: Vec<AclRule>,
}

/// One ACL rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AclRule {
    /// Whether a request the rule applies to is allowed or refused.
    pub permission: AclPermission,
    /// Whom it applies to; absent: everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Whom it applies to, by client id; absent: everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Which requests the rule applies to.
    pub action: AclAction,
    /// Topic filters the rule matches (MQTT wildcards `+` and `#`;
    /// `${clientid}` and `${username}` stand for the client's own).
    pub topics: Vec<String>,
}

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclPermission {
    /// The rule lets the action happen.
    Allow,
    /// The rule refuses the action.
    Deny,
}

/// `publish`, `subscribe` or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    /// The rule governs publishing (MQTT PUBLISH) to the topics.
    Publish,
    /// The rule governs subscribing (MQTT SUBSCRIBE) to the topics.
    Subscribe,
    /// The rule governs both publishing and subscribing.
    All,
}

impl Broker {
    /// Whether anonymous clients are let in, given the eventbus's own
    /// username (`mqttUsername`).
    pub fn anonymous_allowed(&self, bus_username: &str) -> bool {
        self.allow_anonymous
            .unwrap_or(self.users.is_empty() && bus_username.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_follows_the_users_unless_set() {
        let mut b = Broker::default();
        assert!(b.anonymous_allowed(""));
        assert!(!b.anonymous_allowed("bus"));
        b.users.insert("mapper".into(), "secret".into());
        assert!(!b.anonymous_allowed(""));
        b.allow_anonymous = Some(true);
        assert!(b.anonymous_allowed("bus"));
    }

    #[test]
    fn rules_parse_from_yaml() {
        let acl: BrokerAcl = serde_norway::from_str(
            "denyByDefault: true\nrules:\n- {permission: allow, action: all, topics: ['$hw/events/device/${clientid}/#']}\n",
        )
        .expect("parses");
        assert!(acl.deny_by_default);
        assert_eq!(acl.rules[0].action, AclAction::All);
        assert_eq!(acl.rules[0].username, None);
    }
}
