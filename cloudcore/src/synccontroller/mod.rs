//! SyncController: KubeEdge's reliable sync (reference §2 "Per-node queues
//! and acks", "Reliable sync"), as a beehive module (name and group
//! `synccontroller`).
//!
//! CloudHub's queues live in memory: a cloudcore restart loses them, and a
//! change made while a node's link is cut can be missed (KubeEdge issue
//! #3243). SyncController keeps, per node and object, the resourceVersion
//! the node acked — KubeEdge's `reliablesyncs.kubeedge.io/v1alpha1`
//! ObjectSync (namespaced objects) and ClusterObjectSync (the Node), named
//! `<node>.<objUID>` — and catches nodes up from it:
//!
//! - **the index** ([`SyncIndex`], `index.rs`): loaded from the API before
//!   CloudHub starts, so its admission drops what a node already has after
//!   a restart; updated in memory by every ack (CloudHub's [`AckHook`]);
//!   written back to the API by the module's writer task (`writer.rs`),
//!   one write per dirty record however many acks made it dirty.
//! - **resync** (`compare.rs`, pure): when a node connects, and every
//!   `resync_interval` for connected nodes, the node's entries are compared
//!   with [`Scope::objects_for`]: newer objects are sent as `update`, new
//!   ones as `insert`, gone, replaced or out-of-scope ones as `delete`, all
//!   through CloudHub with [`EdgeObject::message`](crate::scope::EdgeObject::message)
//!   (source by kind: Devices and DeviceModels as `devicecontroller`; the
//!   node's own Node only ever as `update`). CloudHub keeps the newest
//!   message per object (a delete is not replaced by another) and drops
//!   versions a node acked, so a repeat costs nothing but a dropped
//!   message; the same catch-up is not even offered again for
//!   `resend_hold` unless the node reconnects.
//! - **GC** (`gc.rs`): after the scope's first list and every
//!   `gc_interval`, the records of nodes that are gone are deleted; names
//!   that never were Nodes (Devices only) wait for a grace period, see
//!   `gc.rs` for the policy.
//!
//! Resync and GC start once the scope has listed every kind (Devices
//! included: a Device not yet listed must not look deleted); on a cluster
//! without the device CRDs they wait, and say so.
//!
//! Invariant: an entry says what the node holds; it changes only on an ack
//! from that node (or when the node's records are collected).
//!
//! # Metrics
//!
//! Registered under `synccontroller_`: `acks_recorded_total`,
//! `tracked_objects`, `api_writes_total{op=create|status|delete}`,
//! `api_errors_total{op=list|create|status|delete}`,
//! `resync_sends_total{op=insert|update|delete}`, `gc_deletions_total`.
//!
//! # Layout
//!
//! - `mod.rs`: [`SyncController`] (the module: resync and GC loop),
//!   [`SyncSettings`].
//! - `index.rs`: [`SyncIndex`], what an ack says.
//! - `records.rs`: the ObjectSync/ClusterObjectSync records: names,
//!   entries, listing.
//! - `writer.rs`: the task writing the records.
//! - `compare.rs`: entries + objects → catch-up messages (pure).
//! - `gc.rs`: which nodes' records to collect (pure).
//! - `metrics.rs`, `error.rs`: [`SyncControllerError`].

mod compare;
mod error;
mod gc;
mod index;
mod metrics;
mod records;
mod writer;

use std::time::Duration;

use beehive::{async_trait, Bus, Module, ModuleContext, ModuleError};
use proto::modules::cloud;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub use error::{Result, SyncControllerError};
pub use index::SyncIndex;

use crate::cloudhub::{AckHook, LinkEvent, NodeLinks};
use crate::scope::{EdgeKind, Scope};
use compare::SentMemo;
use gc::{GcClock, NodeFacts};
use writer::Writer;

/// When to say that the scope's first list is late.
const READY_WARNING: Duration = Duration::from_secs(60);

/// SyncController's timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    /// How often connected nodes are compared with the scope (KubeEdge:
    /// 5 s).
    pub resync_interval: Duration,
    /// How often nodes' records are considered for collection.
    pub gc_interval: Duration,
    /// How long a device-only node name stays unbound and disconnected
    /// before its records are collected.
    pub gc_grace: Duration,
    /// How long the same catch-up message is not handed to CloudHub again
    /// (it keeps messages until they are acked).
    pub resend_hold: Duration,
    /// API writes in flight at most.
    pub write_concurrency: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            resync_interval: Duration::from_secs(5),
            gc_interval: Duration::from_secs(60),
            gc_grace: Duration::from_secs(3600),
            resend_hold: Duration::from_secs(60),
            write_concurrency: 8,
        }
    }
}

/// The SyncController beehive module.
pub struct SyncController {
    client: kube::Client,
    index: SyncIndex,
    scope: Scope,
    links: NodeLinks,
    settings: SyncSettings,
}

impl std::fmt::Debug for SyncController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncController")
            .field("index", &self.index)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SyncController {
    /// A controller keeping `index` (loaded with [`SyncIndex::load`] and
    /// given to CloudHub as its [`AckHook`]) written through `client`, and
    /// catching up the nodes of `links` from `scope`.
    pub fn new(client: kube::Client, index: SyncIndex, scope: Scope, links: NodeLinks) -> Self {
        SyncController {
            client,
            index,
            scope,
            links,
            settings: SyncSettings::default(),
        }
    }

    /// Replaces the timing.
    pub fn with_settings(mut self, settings: SyncSettings) -> Self {
        self.settings = settings;
        self
    }
}

#[async_trait]
impl Module for SyncController {
    fn name(&self) -> &str {
        cloud::SYNCCONTROLLER
    }

    fn group(&self) -> &str {
        cloud::SYNCCONTROLLER
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> std::result::Result<(), ModuleError> {
        let cancel = ctx.cancellation_token().clone();
        let writer = Writer::new(
            self.client.clone(),
            self.index.clone(),
            self.settings.write_concurrency,
        );
        let mut resync = Resyncer {
            index: self.index.clone(),
            scope: self.scope.clone(),
            links: self.links.clone(),
            bus: ctx.bus().clone(),
            memo: SentMemo::new(self.settings.resend_hold),
            gc: GcClock::new(self.settings.gc_grace),
            settings: self.settings.clone(),
        };
        let mailbox = ctx.mailbox();
        tokio::join!(writer.run(cancel.clone()), resync.run(&cancel, mailbox));
        Ok(())
    }
}

/// The resync and GC loop's state.
struct Resyncer {
    index: SyncIndex,
    scope: Scope,
    links: NodeLinks,
    bus: Bus,
    memo: SentMemo,
    gc: GcClock,
    settings: SyncSettings,
}

impl Resyncer {
    async fn run(
        &mut self,
        cancel: &CancellationToken,
        mailbox: &mut tokio::sync::mpsc::Receiver<proto::Message>,
    ) {
        let mut events = Some(self.links.subscribe());
        if !listed(&self.scope, cancel).await {
            return;
        }
        tracing::info!(
            records = self.index.len(),
            "synccontroller: scope listed; collecting and resyncing"
        );
        self.collect();
        self.resync_connected().await;
        let mut resync = tokio::time::interval_at(
            Instant::now() + self.settings.resync_interval,
            self.settings.resync_interval,
        );
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut gc = tokio::time::interval_at(
            Instant::now() + self.settings.gc_interval,
            self.settings.gc_interval,
        );
        gc.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                event = recv(events.as_mut()) => match event {
                    Ok(LinkEvent::Connected(node)) => {
                        self.memo.forget(&node);
                        self.resync(&node).await;
                    }
                    Ok(LinkEvent::Disconnected(_)) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "link events lagged; resyncing every connected node");
                        self.resync_connected().await;
                    }
                    Err(RecvError::Closed) => events = None,
                },
                _ = resync.tick() => self.resync_connected().await,
                _ = gc.tick() => self.collect(),
                msg = mailbox.recv() => match msg {
                    Some(msg) => tracing::debug!(msg_id = msg.id(), resource = msg.resource(),
                        "synccontroller takes no messages; ignored"),
                    None => return,
                },
            }
        }
    }

    async fn resync_connected(&mut self) {
        for node in self.links.connected() {
            self.resync(&node).await;
        }
    }

    /// Compares `node`'s entries with its scope and sends the difference.
    async fn resync(&mut self, node: &str) {
        let wanted = compare::compare(&self.index.entries(node), &self.scope.objects_for(node));
        let out = self.memo.filter(node, wanted, Instant::now().into_std());
        for resync in out {
            let msg = resync.message(node);
            tracing::info!(node, msg_id = msg.id(), resource = msg.resource(), op = resync.label(),
                rv = %msg.header.resource_version, "resync");
            match self.bus.send(cloud::CLOUDHUB, msg).await {
                Ok(()) => self.index.metrics().resync(resync.label()),
                Err(err) => {
                    let err = SyncControllerError::from(err);
                    tracing::warn!(node, error = %daemonkit::launch::error_chain(&err), "resync message not taken");
                    return;
                }
            }
        }
    }

    /// Deletes the records of nodes that are gone (see `gc.rs`).
    fn collect(&mut self) {
        let nodes = self.index.nodes();
        self.gc.retain(&nodes);
        let now = Instant::now().into_std();
        for node in &nodes {
            let was_node = self
                .index
                .entries(node)
                .values()
                .any(|e| e.edge_kind() == Some(EdgeKind::Node) && e.name == *node);
            let facts = NodeFacts {
                is_node: self.scope.node(node).is_some(),
                connected: self.links.is_connected(node),
                was_node,
                bound: !self.scope.objects_for(node).is_empty(),
            };
            let verdict = gc::verdict(facts);
            if self.gc.due(node, verdict, now) {
                let n = self.index.forget_node(node);
                self.memo.forget(node);
                self.index.metrics().collected(n);
                tracing::info!(
                    node,
                    records = n,
                    ?facts,
                    "node gone; sync records collected"
                );
            }
        }
    }
}

/// Waits until every kind has been listed once (a Device not yet listed
/// is not a deleted one), warning when that takes long; false when
/// cancelled first.
async fn listed(scope: &Scope, cancel: &CancellationToken) -> bool {
    let ready = scope.ready();
    tokio::pin!(ready);
    let slow = tokio::time::sleep(READY_WARNING);
    tokio::pin!(slow);
    let mut warned = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = &mut ready => return true,
            () = &mut slow, if !warned => {
                warned = true;
                tracing::warn!(after = ?READY_WARNING, "synccontroller still waits for the first \
                    list of every kind (are the devices.kubeedge.io CRDs installed?)");
            }
        }
    }
}

async fn recv(
    events: Option<&mut tokio::sync::broadcast::Receiver<LinkEvent>>,
) -> std::result::Result<LinkEvent, RecvError> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// `index` combined with `extra` (tests' hooks), as CloudHub's hook.
pub fn ack_hook(
    index: &SyncIndex,
    extra: std::sync::Arc<dyn AckHook>,
) -> std::sync::Arc<dyn AckHook> {
    std::sync::Arc::new(crate::cloudhub::AckHooks(vec![
        std::sync::Arc::new(index.clone()),
        extra,
    ]))
}
