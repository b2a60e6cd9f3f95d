//! Who may connect: the internal superuser, the configured users and
//! edgecore's own user, and anonymous clients when allowed; checked at
//! CONNECT by an rmqtt hook handler.
//!
//! Not rmqtt-acl: it logs its whole configuration, passwords included, at
//! info level when it starts.
//!
//! rmqtt lets a client without a username in when anonymous clients are
//! allowed and asks [`AuthHandler`] otherwise. A known username needs its
//! password (a wrong or missing one is refused, CONNACK "not authorized");
//! an unknown one is let in as anonymous when anonymous clients are
//! allowed. The superuser skips every topic check (rmqtt's rule for
//! superusers).

use std::collections::HashMap;

use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::types::AuthResult;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Broker;

/// What a CONNECT is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Let in with every right.
    Superuser,
    /// Let in, topics checked.
    User,
    /// Refused.
    Refused,
}

/// The credentials the broker accepts.
#[derive(Debug, Clone)]
pub(crate) struct Users {
    superuser: (String, [u8; 32]),
    /// Name → password digest; `None`: any password.
    users: HashMap<String, Option<[u8; 32]>>,
    anonymous: bool,
}

impl Users {
    /// The users of `config`, edgecore's own (`bus`, unless `users` names
    /// it; with an empty password: any password) and the `superuser`.
    pub(crate) fn new(config: &Broker, bus: (&str, &str), superuser: (&str, &str)) -> Users {
        let mut users: HashMap<String, Option<[u8; 32]>> = config
            .users
            .iter()
            .map(|(name, password)| (name.clone(), Some(digest(password.as_bytes()))))
            .collect();
        let (bus_name, bus_password) = bus;
        if !bus_name.is_empty() && !users.contains_key(bus_name) {
            let password = (!bus_password.is_empty()).then(|| digest(bus_password.as_bytes()));
            users.insert(bus_name.to_owned(), password);
        }
        Users {
            superuser: (superuser.0.to_owned(), digest(superuser.1.as_bytes())),
            users,
            anonymous: config.anonymous_allowed(bus_name),
        }
    }

    /// The answer to a CONNECT with `username` and `password`.
    pub(crate) fn check(&self, username: Option<&str>, password: Option<&[u8]>) -> Verdict {
        let Some(name) = username else {
            return if self.anonymous {
                Verdict::User
            } else {
                Verdict::Refused
            };
        };
        let given = password.map(digest);
        if name == self.superuser.0 {
            return if given.is_some_and(|given| same(&given, &self.superuser.1)) {
                Verdict::Superuser
            } else {
                Verdict::Refused
            };
        }
        match self.users.get(name) {
            Some(None) => Verdict::User,
            Some(Some(want)) if given.is_some_and(|given| same(&given, want)) => Verdict::User,
            Some(Some(_)) => Verdict::Refused,
            None if self.anonymous => Verdict::User,
            None => Verdict::Refused,
        }
    }
}

/// Passwords are compared as digests, in constant time.
fn digest(password: &[u8]) -> [u8; 32] {
    Sha256::digest(password).into()
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

/// The rmqtt hook handler for `ClientAuthenticate`.
pub(crate) struct AuthHandler {
    users: Users,
}

impl AuthHandler {
    /// A handler admitting `users`.
    pub(crate) fn new(users: Users) -> AuthHandler {
        AuthHandler { users }
    }
}

#[async_trait::async_trait]
impl Handler for AuthHandler {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let Parameter::ClientAuthenticate(connect) = param else {
            return (true, acc);
        };
        let verdict = self.users.check(
            connect.username().map(|name| name.as_ref()),
            connect.password().map(|password| password.as_ref()),
        );
        let result = match verdict {
            Verdict::Superuser => AuthResult::Allow(true, None),
            Verdict::User => AuthResult::Allow(false, None),
            Verdict::Refused => AuthResult::NotAuthorized,
        };
        (false, Some(HookResult::AuthResult(result)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(config: &Broker, bus: (&str, &str)) -> Users {
        Users::new(config, bus, ("su", "su-secret"))
    }

    #[test]
    fn known_names_need_their_password() {
        let mut config = Broker::default();
        config.users.insert("mapper".into(), "secret".into());
        let users = users(&config, ("bus", "bus-secret"));
        assert_eq!(
            users.check(Some("su"), Some(b"su-secret")),
            Verdict::Superuser
        );
        assert_eq!(users.check(Some("su"), Some(b"guess")), Verdict::Refused);
        assert_eq!(users.check(Some("mapper"), Some(b"secret")), Verdict::User);
        assert_eq!(
            users.check(Some("mapper"), Some(b"secret!")),
            Verdict::Refused
        );
        assert_eq!(users.check(Some("mapper"), None), Verdict::Refused);
        assert_eq!(users.check(Some("bus"), Some(b"bus-secret")), Verdict::User);
        // Users are configured: no anonymous clients, no unknown names.
        assert_eq!(users.check(None, None), Verdict::Refused);
        assert_eq!(users.check(Some("who"), Some(b"x")), Verdict::Refused);
    }

    #[test]
    fn anonymous_brokers_take_unknown_names_as_anonymous() {
        let config = Broker::default();
        let users = users(&config, ("", ""));
        assert_eq!(users.check(None, None), Verdict::User);
        assert_eq!(users.check(Some("who"), Some(b"x")), Verdict::User);
        assert_eq!(users.check(Some("su"), Some(b"x")), Verdict::Refused);
    }

    #[test]
    fn the_bus_user_without_password_takes_any_and_users_override_it() {
        let mut config = Broker::default();
        let open = users(&config, ("bus", ""));
        assert_eq!(open.check(Some("bus"), None), Verdict::User);
        assert_eq!(open.check(Some("bus"), Some(b"x")), Verdict::User);
        config.users.insert("bus".into(), "set".into());
        let overridden = users(&config, ("bus", ""));
        assert_eq!(overridden.check(Some("bus"), Some(b"x")), Verdict::Refused);
        assert_eq!(overridden.check(Some("bus"), Some(b"set")), Verdict::User);
    }
}
