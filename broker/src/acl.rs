//! The topic ACL (`modules.eventBus.broker.acl`), checked at every
//! SUBSCRIBE and PUBLISH by an rmqtt hook handler.
//!
//! Not rmqtt-acl (see also `auth`): it expands `%c`/`%u` topics into a
//! table shared by all clients when a client connects (in a spawned task,
//! so a SUBSCRIBE right after CONNACK can be refused) and removes them when
//! a connection ends, so when a device reconnects with its client id, the
//! old connection's removal can follow the new one's insertion and the
//! device loses its own topics (seen here: 6 of 40 sequential takeovers).
//! [`TopicAcl`] keeps no per-client state: it expands `${clientid}` /
//! `${username}` at each check.
//!
//! Rules are evaluated in order; the first rule that applies to the client
//! and the action and has a matching topic decides; otherwise
//! `denyByDefault` does. rmqtt lets the internal superuser through without
//! asking.
//!
//! The same PUBLISH check enforces `maxPayloadBytes`, which rmqtt knows
//! only as a packet size (set with room for the topic, see `setup`): a
//! larger payload is acknowledged and dropped, as a refused topic is.

use std::borrow::Cow;

use rmqtt::codec::v5::{PublishAckReason, SubscribeAckReason};
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::types::{PublishAclResult, PublishResult, SubscribeAclResult};

use crate::config::{AclAction, AclPermission, AclRule, BrokerAcl};

/// Hook priority of our handlers: above any plugin's default, so they
/// decide first (each ends its chain).
pub(crate) const PRIORITY: rmqtt::hook::Priority = 100;

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// PUBLISH to a topic name.
    Publish,
    /// SUBSCRIBE to a topic filter.
    Subscribe,
}

/// The configured rules.
#[derive(Debug, Clone)]
pub(crate) struct TopicAcl {
    rules: Vec<AclRule>,
    deny_by_default: bool,
}

impl TopicAcl {
    /// The rules of `acl`.
    pub(crate) fn new(acl: &BrokerAcl) -> TopicAcl {
        TopicAcl {
            rules: acl.rules.clone(),
            deny_by_default: acl.deny_by_default,
        }
    }

    /// Whether `client_id` (logged in as `username`) may `access` `topic`
    /// (a topic name to publish, a filter to subscribe).
    pub(crate) fn allows(
        &self,
        client_id: &str,
        username: Option<&str>,
        access: Access,
        topic: &str,
    ) -> bool {
        for rule in &self.rules {
            if !applies(rule, client_id, username, access) {
                continue;
            }
            let hit = rule.topics.iter().any(|filter| {
                expand(filter, client_id, username).is_some_and(|filter| covers(&filter, topic))
            });
            if hit {
                return rule.permission == AclPermission::Allow;
            }
        }
        !self.deny_by_default
    }
}

/// Whether `rule` is about this client and this action.
fn applies(rule: &AclRule, client_id: &str, username: Option<&str>, access: Access) -> bool {
    let action = matches!(
        (rule.action, access),
        (AclAction::All, _)
            | (AclAction::Publish, Access::Publish)
            | (AclAction::Subscribe, Access::Subscribe)
    );
    action
        && rule.client_id.as_deref().is_none_or(|id| id == client_id)
        && rule
            .username
            .as_deref()
            .is_none_or(|name| Some(name) == username)
}

/// The rule topic with this client's id and username in it; `None` (the
/// topic matches nothing) if it needs a value the client does not have,
/// or one that would widen it (empty, or with `/`, `+` or `#`).
fn expand<'a>(filter: &'a str, client_id: &str, username: Option<&str>) -> Option<Cow<'a, str>> {
    fn usable(value: &str) -> bool {
        !value.is_empty() && !value.contains(['/', '+', '#'])
    }
    let mut out = Cow::Borrowed(filter);
    if out.contains("${clientid}") {
        if !usable(client_id) {
            return None;
        }
        out = Cow::Owned(out.replace("${clientid}", client_id));
    }
    if out.contains("${username}") {
        let name = username.filter(|name| usable(name))?;
        out = Cow::Owned(out.replace("${username}", name));
    }
    Some(out)
}

/// Whether the filter `rule` covers `topic`: a topic name it matches, or
/// a filter whose every match it matches. `+` and `#` in `topic` are
/// covered only by `+`/`#` (and `#`) in `rule`; a rule starting with a
/// wildcard does not cover `$` topics (MQTT 4.7.2).
pub(crate) fn covers(rule: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (rule.starts_with('+') || rule.starts_with('#')) {
        return false;
    }
    let mut rule_levels = rule.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (rule_levels.next(), topic_levels.next()) {
            // `a/#` also matches `a`.
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(want), Some(level)) if want == level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The rmqtt hook handler for `ClientSubscribeCheckAcl` and
/// `MessagePublishCheckAcl`.
pub(crate) struct AclHandler {
    acl: TopicAcl,
    max_payload: usize,
}

impl AclHandler {
    /// A handler checking `acl`, and payloads against `max_payload` bytes.
    pub(crate) fn new(acl: TopicAcl, max_payload: usize) -> AclHandler {
        AclHandler { acl, max_payload }
    }
}

#[async_trait::async_trait]
impl Handler for AclHandler {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let allowed = self.acl.allows(
                    &session.id.client_id,
                    session.id.username.as_deref(),
                    Access::Subscribe,
                    &subscribe.topic_filter,
                );
                let verdict = if allowed {
                    SubscribeAclResult::new_success(subscribe.opts.qos(), None)
                } else {
                    SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                };
                (false, Some(HookResult::SubscribeAclResult(verdict)))
            }
            Parameter::MessagePublishCheckAcl(_, publish)
                if publish.payload.len() > self.max_payload =>
            {
                let verdict = PublishAclResult(PublishResult::reason_code(
                    PublishAckReason::QuotaExceeded,
                    Some("payload larger than maxPayloadBytes".into()),
                    false,
                ));
                (false, Some(HookResult::PublishAclResult(verdict)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let allowed = self.acl.allows(
                    &session.id.client_id,
                    session.id.username.as_deref(),
                    Access::Publish,
                    &publish.topic,
                );
                let verdict = if allowed {
                    PublishAclResult::allow()
                } else {
                    // Dropped, acknowledged, and the client stays connected.
                    PublishAclResult::rejected(false, None)
                };
                (false, Some(HookResult::PublishAclResult(verdict)))
            }
            _ => (true, acc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(permission: AclPermission, action: AclAction, topics: &[&str]) -> AclRule {
        AclRule {
            permission,
            username: None,
            client_id: None,
            action,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn covers_follows_mqtt_matching_and_filter_inclusion() {
        assert!(covers("a/+/c", "a/b/c"));
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/b/c"));
        assert!(covers("a/#", "a/+/c"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("a/b", "a/b/c"));
        assert!(!covers("a/b/c", "a/b"));
        assert!(!covers("#", "$hw/events"));
        assert!(!covers("+/events", "$hw/events"));
        assert!(covers(
            "$hw/#",
            "$hw/events/device/default/dev1/twin/update"
        ));
    }

    #[test]
    fn own_topics_only_with_the_client_id_placeholder() {
        let acl = TopicAcl::new(&BrokerAcl {
            deny_by_default: true,
            rules: vec![rule(
                AclPermission::Allow,
                AclAction::All,
                &["$hw/events/device/default/${clientid}/#"],
            )],
        });
        let own = "$hw/events/device/default/dev1/twin/update";
        let other = "$hw/events/device/default/dev2/twin/update";
        assert!(acl.allows("dev1", None, Access::Publish, own));
        assert!(acl.allows(
            "dev1",
            None,
            Access::Subscribe,
            "$hw/events/device/default/dev1/#"
        ));
        assert!(!acl.allows("dev1", None, Access::Publish, other));
        assert!(!acl.allows(
            "dev1",
            None,
            Access::Subscribe,
            "$hw/events/device/default/+/#"
        ));
        // A client id that would widen the rule matches nothing.
        assert!(!acl.allows("#", None, Access::Subscribe, "$hw/events/device/default/#"));
        assert!(!acl.allows("+", None, Access::Publish, "$hw/events/device/default/+/x"));
    }

    #[test]
    fn first_matching_rule_wins_then_the_default() {
        let mut deny = rule(AclPermission::Deny, AclAction::Publish, &["cmd/#"]);
        deny.username = Some("mapper".into());
        let acl = TopicAcl::new(&BrokerAcl {
            deny_by_default: false,
            rules: vec![
                deny,
                rule(
                    AclPermission::Allow,
                    AclAction::Publish,
                    &["cmd/${username}"],
                ),
                rule(AclPermission::Deny, AclAction::All, &["cmd/#"]),
            ],
        });
        assert!(!acl.allows("c", Some("mapper"), Access::Publish, "cmd/mapper"));
        assert!(acl.allows("c", Some("other"), Access::Publish, "cmd/other"));
        assert!(!acl.allows("c", None, Access::Publish, "cmd/other"));
        assert!(!acl.allows("c", Some("other"), Access::Subscribe, "cmd/other"));
        assert!(acl.allows("c", None, Access::Subscribe, "anything/else"));
    }
}
