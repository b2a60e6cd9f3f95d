//! MetaManager: the edge's store of what the cloud sent, as KubeEdge's
//! beehive module `metamanager` in group `meta` (reference §3).
//!
//! Messages from the cloud (insert, update, patch, delete, response) are
//! written to SQLite — KubeEdge's `meta` row and, for the resources the
//! MetaServer serves, the object in `meta_v2` — and acked with "OK" only
//! after the commit. The mailbox is drained in batches and every batch is
//! one commit ([`kubestore::Store::write_groups`]), so a burst costs one
//! fsync per batch rather than per message. A write that could not be
//! committed (disk full, I/O error) is not acked: the cloud sends it again.
//! A message whose resourceVersion is not newer than the stored one is
//! acked without being applied again.
//!
//! Messages from edge modules (node registration, node status, lease) are
//! stored and sent on to the cloud through EdgeHub, whose outbox keeps them
//! while offline. Queries are answered by [`query`]: remote first for the
//! types KubeEdge fetches from the cloud, else from the store.
//!
//! # Layout
//!
//! - `mod.rs`: the [`MetaManager`] module and its batch loop.
//! - `plan.rs`: what to do with one message (pure).
//! - `query.rs`: remote and local queries.
//! - `metrics.rs`: `metamanager_*` metrics.
//! - `tests.rs`: the module on a real beehive and SQLite file.

mod metrics;
mod plan;
mod query;

use std::sync::Arc;
use std::time::Duration;

use beehive::{async_trait, Bus, Module, ModuleContext, ModuleError, RestartPolicy};
use kubestore::{Outcome, Resources, Store, WriteError, WriteOp, WriteResult};
use proto::modules::edge;
use proto::Message;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::config::MetaManager as MetaManagerConfig;
use crate::edgehub::EdgeHubStatus;
use metrics::Metrics;
use plan::{After, Plan};
use query::Querier;

/// Messages taken from the mailbox and committed together, at most.
const MAX_BATCH: usize = 512;

/// Queries answered at the same time, at most; more wait.
const MAX_QUERIES: usize = 64;

/// The MetaManager beehive module.
pub struct MetaManager {
    store: Store,
    resources: Resources,
    hub: Option<EdgeHubStatus>,
    send_module: String,
    timeout: Duration,
    metrics: Metrics,
}

impl std::fmt::Debug for MetaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaManager")
            .field("store", &self.store)
            .field("send_module", &self.send_module)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The module at work: everything it needs, the bus included.
struct Worker {
    querier: Querier,
}

impl MetaManager {
    /// A module writing to `store`, keeping `resources` as objects, asking
    /// the cloud while `hub` says it is connected, with its metrics in
    /// `registry`.
    pub fn new(
        config: &MetaManagerConfig,
        store: Store,
        resources: Resources,
        hub: Option<EdgeHubStatus>,
        registry: &mut prometheus_client::registry::Registry,
    ) -> MetaManager {
        MetaManager {
            store,
            resources,
            hub,
            send_module: config.context_send_module.clone(),
            timeout: Duration::from_secs(u64::from(config.remote_query_timeout.max(1))),
            metrics: Metrics::register(registry),
        }
    }

    fn worker(&self, bus: Bus) -> Worker {
        Worker {
            querier: Querier {
                store: self.store.clone(),
                bus,
                hub: self.hub.clone(),
                send_module: self.send_module.clone(),
                timeout: self.timeout,
                resources: self.resources.clone(),
                metrics: self.metrics.clone(),
            },
        }
    }
}

#[async_trait]
impl Module for MetaManager {
    fn name(&self) -> &str {
        edge::METAMANAGER
    }

    fn group(&self) -> &str {
        edge::META
    }

    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::OnFailure { max_retries: 3 }
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError> {
        self.worker(ctx.bus().clone()).run(ctx).await;
        Ok(())
    }
}

impl Worker {
    async fn run(&self, ctx: &mut ModuleContext) {
        let queries = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(MAX_QUERIES));
        let cancel = ctx.cancellation_token().clone();
        while let Some(first) = ctx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match ctx.try_recv() {
                    Some(msg) => batch.push(msg),
                    None => break,
                }
            }
            let mut writes = Vec::new();
            for msg in batch {
                match plan::plan(&msg, &self.querier.resources) {
                    Plan::Query(q) => {
                        let Ok(slot) = slots.clone().acquire_owned().await else {
                            break;
                        };
                        let querier = self.querier.clone();
                        let cancel = cancel.child_token();
                        queries.spawn(async move {
                            let _slot = slot;
                            tokio::select! {
                                () = cancel.cancelled() => {}
                                () = querier.answer(msg, q) => {}
                            }
                        });
                    }
                    Plan::NodeStatus {
                        key,
                        meta_key,
                        status,
                    } => {
                        let ops = self.node_status_ops(key, meta_key, status).await;
                        writes.push((msg, ops, After::Forward));
                    }
                    Plan::Write { ops, after } => writes.push((msg, ops, after)),
                    Plan::Forward => self.forward(msg).await,
                    Plan::Refuse(reason) => {
                        tracing::warn!(
                            msg_id = msg.id(),
                            resource = msg.resource(),
                            reason,
                            "refusing a cloud message"
                        );
                        self.send_up(msg.error_reply(reason)).await;
                    }
                    Plan::Ignore(reason) => {
                        tracing::debug!(
                            msg_id = msg.id(),
                            resource = msg.resource(),
                            reason,
                            "ignored"
                        );
                    }
                }
            }
            self.commit(writes).await;
        }
        queries.close();
        queries.wait().await;
    }

    /// The reported status merged into the stored Node (if there is one).
    async fn node_status_ops(
        &self,
        key: kubestore::ObjectKey,
        meta_key: String,
        status: serde_json::Value,
    ) -> Vec<WriteOp> {
        let stored = match self.querier.store.get(&key).await {
            Ok(Some(node)) => node,
            Ok(None) => return Vec::new(),
            Err(err) => {
                tracing::warn!(node = key.name, error = %beehive::error_chain(&err), "cannot read the node to update its status");
                return Vec::new();
            }
        };
        let mut node = stored.value.clone();
        if let Some(obj) = node.as_object_mut() {
            obj.insert("status".to_owned(), status);
        }
        vec![
            WriteOp::Put {
                key,
                value: node.clone(),
                origin: None,
                expect: kubestore::Expect::Revision(stored.revision),
            },
            WriteOp::PutMeta {
                key: meta_key,
                kind: "node".to_owned(),
                value: node.to_string(),
            },
        ]
    }

    /// Commits every write of a batch at once, then acks or forwards.
    async fn commit(&self, writes: Vec<(Message, Vec<WriteOp>, After)>) {
        if writes.is_empty() {
            return;
        }
        let (heads, groups): (Vec<_>, Vec<_>) = writes
            .into_iter()
            .map(|(msg, ops, after)| ((msg, after, touches_node(&ops)), ops))
            .unzip();
        let results = self.querier.store.write_groups(groups).await;
        for ((msg, after, node), result) in heads.into_iter().zip(results) {
            self.count(&result);
            match (after, result) {
                (After::Ack, Ok(_)) => {
                    self.ack(&msg, "OK").await;
                    if node {
                        self.tell_node_status(&msg);
                    }
                }
                (After::Ack, Err(WriteError::Conflict { .. })) => {
                    // A delete for another incarnation (uid) of the object:
                    // nothing to do, and nothing to resend.
                    self.ack(&msg, "OK").await;
                }
                (After::Ack, Err(WriteError::Store(err))) => {
                    self.querier.metrics.write_failed();
                    tracing::error!(msg_id = msg.id(), resource = msg.resource(), error = %beehive::error_chain(&err), "cannot commit; not acked, the cloud will resend");
                }
                (After::Ack, Err(err)) => {
                    tracing::warn!(msg_id = msg.id(), resource = msg.resource(), error = %err, "cannot apply a cloud message");
                    self.send_up(msg.error_reply(err.to_string())).await;
                }
                (After::Register, result) => {
                    let created = result.as_ref().is_ok_and(|outcomes| {
                        outcomes.iter().any(|o| matches!(o, Outcome::Created(_)))
                    });
                    let msg = if created { mark_new_store(msg) } else { msg };
                    self.forward(msg).await;
                }
                (After::Forward, result) => {
                    if let Err(err) = result {
                        // The cloud is the authority; our copy can lag.
                        tracing::debug!(msg_id = msg.id(), resource = msg.resource(), error = %err, "local copy not updated");
                    }
                    self.forward(msg).await;
                }
            }
        }
    }

    fn count(&self, result: &WriteResult) {
        let Ok(outcomes) = result else { return };
        for outcome in outcomes {
            let label = match outcome {
                Outcome::Created(_) => "created",
                Outcome::Updated(_) => "updated",
                Outcome::Deleted(_) => "deleted",
                Outcome::Unchanged => "unchanged",
                Outcome::Meta => continue,
            };
            self.querier.metrics.applied(label);
        }
    }

    /// Hands the cloud's copy of a Node to the node status module, which
    /// learns the Node's uid from it.
    fn tell_node_status(&self, msg: &Message) {
        // Absent or busy: the next copy will do.
        let _ = self
            .querier
            .bus
            .try_send(crate::nodestatus::MODULE_NAME, msg.clone());
    }

    async fn ack(&self, msg: &Message, content: &str) {
        self.querier.metrics.acked();
        self.send_up(msg.reply(content)).await;
    }

    async fn forward(&self, msg: Message) {
        self.querier.metrics.forwarded();
        self.send_up(msg).await;
    }

    /// Hands `msg` to EdgeHub (its outbox); logged if EdgeHub is absent.
    async fn send_up(&self, msg: Message) {
        let msg_id = msg.id().to_owned();
        if let Err(err) = self.querier.bus.send(&self.querier.send_module, msg).await {
            tracing::warn!(msg_id, %err, "cannot hand a message to edgehub");
        }
    }
}

/// The registration `msg` with its Node annotated as coming from a new
/// store ([`proto::modules::EDGE_STORE_ANNOTATION`]): the cloud then sends
/// everything again instead of trusting what the old store acked.
fn mark_new_store(mut msg: Message) -> Message {
    tracing::info!(
        msg_id = msg.id(),
        "the store is new: the cloud is asked for everything"
    );
    let mut node = msg.content_json();
    if let Some(meta) = node
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
    {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(
                proto::modules::EDGE_STORE_ANNOTATION.to_owned(),
                serde_json::Value::from(proto::modules::NEW_EDGE_STORE),
            );
        }
    }
    msg.content = node;
    msg
}

/// Whether a write group is about a Node (its object row is a `nodes` one).
fn touches_node(ops: &[WriteOp]) -> bool {
    ops.iter().any(|op| match op {
        WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } => {
            key.gvr.group.is_empty() && key.gvr.resource == "nodes"
        }
        WriteOp::Check { .. } | WriteOp::PutMeta { .. } | WriteOp::DeleteMeta { .. } => false,
    })
}

#[cfg(test)]
mod tests;
