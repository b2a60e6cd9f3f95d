//! The name → mailbox and group → members table behind the [`Bus`](crate::Bus).
//!
//! Invariant: the table is built once, before anything runs, and never
//! changes afterwards, so lookups need no lock.

use std::collections::HashMap;

use proto::Message;
use tokio::sync::mpsc;

use crate::error::BuildError;

/// One registered mailbox: the sending half of a module's bounded channel.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    pub(crate) name: String,
    pub(crate) group: String,
    pub(crate) tx: mpsc::Sender<Message>,
}

/// The frozen table of mailboxes and groups.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_name: HashMap<String, Mailbox>,
    /// Members in registration order.
    by_group: HashMap<String, Vec<Mailbox>>,
    /// All names, sorted.
    names: Vec<String>,
}

impl Registry {
    /// The mailbox registered under `name`.
    pub(crate) fn mailbox(&self, name: &str) -> Option<&Mailbox> {
        self.by_name.get(name)
    }

    /// The members of `group`, in registration order.
    pub(crate) fn group(&self, group: &str) -> Option<&[Mailbox]> {
        self.by_group.get(group).map(Vec::as_slice)
    }

    /// Every registered name, sorted.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }
}

/// Collects registrations; [`RegistryBuilder::build`] checks and freezes them.
#[derive(Debug)]
pub(crate) struct RegistryBuilder {
    capacity: usize,
    entries: Vec<Mailbox>,
}

impl RegistryBuilder {
    /// A builder whose mailboxes hold `capacity` messages (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        RegistryBuilder {
            capacity: capacity.clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            entries: Vec::new(),
        }
    }

    /// Sets the capacity of mailboxes added from now on.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
    }

    /// Adds a mailbox and returns its receiving half.
    pub(crate) fn add(&mut self, name: &str, group: &str) -> mpsc::Receiver<Message> {
        let (tx, rx) = mpsc::channel(self.capacity);
        self.entries.push(Mailbox {
            name: name.to_owned(),
            group: group.to_owned(),
            tx,
        });
        rx
    }

    /// Checks names are non-empty and unique, then freezes the table.
    pub(crate) fn build(self) -> Result<Registry, BuildError> {
        let mut registry = Registry::default();
        for mailbox in self.entries {
            if mailbox.name.is_empty() || mailbox.group.is_empty() {
                return Err(BuildError::EmptyName { name: mailbox.name });
            }
            if registry.by_name.contains_key(&mailbox.name) {
                return Err(BuildError::DuplicateName { name: mailbox.name });
            }
            registry
                .by_group
                .entry(mailbox.group.clone())
                .or_default()
                .push(mailbox.clone());
            registry.names.push(mailbox.name.clone());
            registry.by_name.insert(mailbox.name.clone(), mailbox);
        }
        registry.names.sort();
        Ok(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_registration_order() {
        let mut b = RegistryBuilder::new(4);
        let _rx1 = b.add("websocket", "hub");
        let _rx2 = b.add("metamanager", "meta");
        let _rx3 = b.add("eventbus", "bus");
        let _rx4 = b.add("servicebus", "bus");
        let reg = b.build().unwrap();
        let members: Vec<_> = reg.group("bus").unwrap().iter().map(|m| &m.name).collect();
        assert_eq!(members, ["eventbus", "servicebus"]);
        assert_eq!(
            reg.names(),
            ["eventbus", "metamanager", "servicebus", "websocket"]
        );
        assert_eq!(reg.mailbox("metamanager").unwrap().group, "meta");
        assert!(reg.mailbox("twin").is_none());
        assert!(reg.group("twin").is_none());
    }

    #[test]
    fn duplicate_and_empty_names_are_refused() {
        let mut b = RegistryBuilder::new(4);
        let _a = b.add("twin", "twin");
        let _b = b.add("twin", "other");
        assert_eq!(
            b.build().unwrap_err(),
            BuildError::DuplicateName {
                name: "twin".into()
            }
        );
        let mut b = RegistryBuilder::new(4);
        let _a = b.add("", "twin");
        assert!(matches!(b.build(), Err(BuildError::EmptyName { .. })));
    }

    #[test]
    fn zero_capacity_is_raised_to_one() {
        let mut b = RegistryBuilder::new(0);
        let _rx = b.add("a", "g");
        let reg = b.build().unwrap();
        assert_eq!(reg.mailbox("a").unwrap().tx.max_capacity(), 1);
    }
}
