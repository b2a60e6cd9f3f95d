//! The [`Bus`] handle: KubeEdge beehive's `Send`, `SendToGroup`, `SendSync`
//! and `SendResp`, over bounded per-module mailboxes.
//!
//! Differences from KubeEdge, on purpose: sending to an unknown module is an
//! error the caller sees rather than a log line, and `send_to_group` says
//! how many members it reached.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use proto::Message;
use tokio::sync::mpsc::error::TrySendError;
use tracing::Instrument;

use crate::error::{BusError, Result};
use crate::pending::Pending;
use crate::registry::{Mailbox, Registry};

/// How long [`Bus::request`] waits when given `Duration::ZERO`, as
/// KubeEdge's `SendSync` does for a timeout ≤ 0.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A cheap, cloneable handle to the module bus.
///
/// Every module gets one in its [`ModuleContext`](crate::ModuleContext);
/// [`Beehive::bus`](crate::Beehive::bus) hands out more.
#[derive(Debug, Clone)]
pub struct Bus {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    registry: Registry,
    pending: Pending,
}

impl Bus {
    pub(crate) fn new(registry: Registry) -> Self {
        Bus {
            shared: Arc::new(Shared {
                registry,
                pending: Pending::default(),
            }),
        }
    }

    fn mailbox(&self, module: &str) -> Result<&Mailbox> {
        self.shared
            .registry
            .mailbox(module)
            .ok_or_else(|| BusError::UnknownModule {
                module: module.to_owned(),
            })
    }

    /// Delivers `msg` to `module`'s mailbox, waiting for room when it is full.
    ///
    /// Fails with [`BusError::UnknownModule`] for a name nobody registered and
    /// [`BusError::Closed`] when that module has stopped for good.
    pub async fn send(&self, module: &str, msg: Message) -> Result<()> {
        let mailbox = self.mailbox(module)?;
        tracing::trace!(module, msg_id = msg.id(), "send");
        mailbox.tx.send(msg).await.map_err(|_| BusError::Closed {
            module: module.to_owned(),
        })
    }

    /// Delivers `msg` to `module` only if its mailbox has room right now;
    /// on [`BusError::Full`] the message is dropped.
    pub fn try_send(&self, module: &str, msg: Message) -> Result<()> {
        let mailbox = self.mailbox(module)?;
        tracing::trace!(module, msg_id = msg.id(), "try_send");
        mailbox.tx.try_send(msg).map_err(|e| match e {
            TrySendError::Full(_) => BusError::Full {
                module: module.to_owned(),
            },
            TrySendError::Closed(_) => BusError::Closed {
                module: module.to_owned(),
            },
        })
    }

    /// Delivers a copy of `msg` to every member of `group` and returns how
    /// many took it.
    ///
    /// Members are served concurrently, so one full mailbox does not hold up
    /// the others; the call returns once every member has its copy. A member
    /// that has stopped for good is skipped with a warning.
    pub async fn send_to_group(&self, group: &str, msg: Message) -> Result<usize> {
        let members = self
            .shared
            .registry
            .group(group)
            .ok_or_else(|| BusError::UnknownGroup {
                group: group.to_owned(),
            })?;
        tracing::trace!(
            group,
            msg_id = msg.id(),
            members = members.len(),
            "send_to_group"
        );
        let mut copies = vec![msg; members.len()];
        let deliveries = members
            .iter()
            .zip(copies.drain(..))
            .map(|(member, msg)| async move {
                let msg = match member.tx.try_send(msg) {
                    Ok(()) => return true,
                    Err(TrySendError::Full(msg)) => msg,
                    Err(TrySendError::Closed(_)) => return false,
                };
                member.tx.send(msg).await.is_ok()
            });
        let results = join_all(deliveries).await;
        let mut delivered = 0;
        for (member, ok) in members.iter().zip(results) {
            if ok {
                delivered += 1;
            } else {
                tracing::warn!(group, module = %member.name, "group member's mailbox is closed");
            }
        }
        Ok(delivered)
    }

    /// Sends `msg` to `module` and waits for the reply whose `parent_msg_id`
    /// is `msg`'s id (KubeEdge's `SendSync`).
    ///
    /// Sets `header.sync`, and gives the message a fresh id if it has none.
    /// `timeout` covers both waiting for mailbox room and waiting for the
    /// reply; `Duration::ZERO` means [`DEFAULT_REQUEST_TIMEOUT`]. The
    /// request's entry in the pending table is removed however this ends,
    /// including when the returned future is dropped.
    pub async fn request(
        &self,
        module: &str,
        mut msg: Message,
        timeout: Duration,
    ) -> Result<Message> {
        let timeout = if timeout.is_zero() {
            DEFAULT_REQUEST_TIMEOUT
        } else {
            timeout
        };
        msg.header.sync = true;
        if msg.header.msg_id.is_empty() {
            msg.header.msg_id = proto::new_msg_id();
        }
        let msg_id = msg.header.msg_id.clone();
        let span = tracing::debug_span!("request", module, msg_id = %msg_id);
        async {
            let mailbox = self.mailbox(module)?;
            let (_guard, reply) = self.shared.pending.register(&msg_id)?;
            let exchange = async {
                mailbox.tx.send(msg).await.map_err(|_| BusError::Closed {
                    module: module.to_owned(),
                })?;
                // The sender lives in the pending table until a reply comes or
                // our guard removes it, and the guard outlives this await.
                reply.await.map_err(|_| BusError::Closed {
                    module: module.to_owned(),
                })
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_elapsed) => {
                    tracing::debug!(?timeout, "request timed out");
                    Err(BusError::Timeout {
                        module: module.to_owned(),
                        msg_id: msg_id.clone(),
                        timeout,
                    })
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Hands `reply` to the [`request`](Bus::request) whose id is the reply's
    /// `parent_msg_id` (KubeEdge's `SendResp`). Never blocks.
    ///
    /// Returns `false` when nobody waits for it (the request timed out, was
    /// dropped, or was sent without waiting — the cloud answers a Node
    /// registration the edge only sent); the reply is dropped, logged at
    /// debug as KubeEdge drops it silently (a timed-out requester has
    /// logged its timeout already).
    pub fn respond(&self, reply: Message) -> bool {
        match self.shared.pending.resolve(reply) {
            None => true,
            Some(reply) => {
                tracing::debug!(
                    msg_id = reply.id(),
                    parent_msg_id = reply.header.parent_msg_id,
                    "dropping a reply nobody waits for"
                );
                false
            }
        }
    }

    /// Every registered module and endpoint name, sorted.
    pub fn modules(&self) -> Vec<&str> {
        self.shared
            .registry
            .names()
            .iter()
            .map(String::as_str)
            .collect()
    }

    /// The members of `group` in registration order; empty for an unknown
    /// group.
    pub fn group_members(&self, group: &str) -> Vec<&str> {
        self.shared
            .registry
            .group(group)
            .unwrap_or_default()
            .iter()
            .map(|m| m.name.as_str())
            .collect()
    }

    /// The group `module` belongs to, if it is registered.
    pub fn group_of(&self, module: &str) -> Option<&str> {
        self.shared
            .registry
            .mailbox(module)
            .map(|m| m.group.as_str())
    }

    /// How many requests are waiting for a reply right now.
    pub fn pending_requests(&self) -> usize {
        self.shared.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use proto::Operation;

    use super::*;
    use crate::registry::RegistryBuilder;

    fn msg(resource: &str) -> Message {
        Message::new("test", "test", Operation::Insert, resource)
    }

    #[tokio::test]
    async fn send_reaches_the_mailbox() {
        let mut b = RegistryBuilder::new(8);
        let mut rx = b.add("metamanager", "meta");
        let bus = Bus::new(b.build().unwrap());
        let m = msg("default/pod/a");
        bus.send("metamanager", m.clone()).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), m);
        assert_eq!(bus.modules(), ["metamanager"]);
        assert_eq!(bus.group_of("metamanager"), Some("meta"));
    }

    #[tokio::test]
    async fn closed_mailbox_is_reported() {
        let mut b = RegistryBuilder::new(8);
        drop(b.add("gone", "g"));
        let bus = Bus::new(b.build().unwrap());
        assert_eq!(
            bus.send("gone", msg("x")).await,
            Err(BusError::Closed {
                module: "gone".into()
            })
        );
        assert!(matches!(
            bus.try_send("gone", msg("x")),
            Err(BusError::Closed { .. })
        ));
        assert_eq!(bus.send_to_group("g", msg("x")).await, Ok(0));
    }

    #[tokio::test(start_paused = true)]
    async fn request_to_unknown_module_leaves_nothing_pending() {
        let bus = Bus::new(RegistryBuilder::new(8).build().unwrap());
        let err = bus
            .request("nobody", msg("x"), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, BusError::UnknownModule { .. }));
        assert_eq!(bus.pending_requests(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_timeout_means_thirty_seconds() {
        let mut b = RegistryBuilder::new(8);
        let _rx = b.add("silent", "g");
        let bus = Bus::new(b.build().unwrap());
        let start = tokio::time::Instant::now();
        let err = bus
            .request("silent", msg("x"), Duration::ZERO)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BusError::Timeout { timeout, .. } if timeout == DEFAULT_REQUEST_TIMEOUT)
        );
        assert_eq!(start.elapsed(), DEFAULT_REQUEST_TIMEOUT);
    }
}
