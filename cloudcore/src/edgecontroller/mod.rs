//! EdgeController: Kubernetes objects down to edge nodes, their reports up
//! into the API, and node readiness from the links (reference §2, §7), as
//! the beehive module `edgecontroller` (group `edgecontroller`).
//!
//! - **Downstream.** Once [`Scope`]'s reflectors have listed Nodes, Pods,
//!   ConfigMaps and Secrets (Devices are DeviceController's, and a cluster
//!   may lack their CRDs), every edge node gets what it should have: its Node, the pods bound to
//!   it, the configmaps and secrets those pods reference. Then each change
//!   goes to the nodes concerned: `insert` the first time this process
//!   sends an object to a node, `update` after, `delete` when the object is
//!   deleted or leaves the node's scope (pod deleted or moved, configmap no
//!   longer referenced there, edge label removed). A relist or a lagged
//!   broadcast compares everything again. Messages go to CloudHub, which
//!   queues them per node and drops what the node already acked; a restart
//!   sends everything again for CloudHub to sort out.
//! - **Upstream.** What CloudHub forwards from the edges: node
//!   registration (the Node is created with the edge label), node status
//!   (through the status subresource, keeping what the report leaves out),
//!   node and pod status patches, leases, pod statuses, events, and queries
//!   of configmaps, secrets, service account tokens (TokenRequest), nodes
//!   and leases. Answers and `error` replies go back to the node through
//!   CloudHub; a failure is logged and counted.
//! - **Readiness.** When a node's link goes (CloudHub's [`NodeLinks`]), its
//!   `Ready` condition (and the edge's other conditions) become `Unknown`
//!   at once; the edge's next status report after it reconnects says
//!   `Ready` again. A keepalive interval after start-up, edge nodes still
//!   saying Ready without a link are marked too. With CloudHub's
//!   `keepaliveInterval` at two heartbeats, a blackholed node is `Unknown`
//!   within two heartbeats.
//!
//! Invariant: the module's task alone owns the ledger of what was sent
//! where. Invariant: a node's upstream messages are carried out one after
//! the other, in the order they arrived (nodes side by side, at most
//! [`MAX_IN_FLIGHT`] at once); API calls run on tracked tasks, each stopped
//! by the module's cancellation.
//!
//! # Metrics
//!
//! Under `edgecontroller_`: `messages_down_total{op,kind}`,
//! `upstream_total{type,outcome}`, `api_errors_total{call}`,
//! `errors_total{kind}`, `resyncs_total{cause}`,
//! `nodes_marked_unknown_total`, `sent_objects`.
//!
//! # Layout
//!
//! - `mod.rs`: [`EdgeController`], the module's loop.
//! - `downstream.rs`: the ledger of what went where, and the sends that
//!   bring a node or an object up to date (pure).
//! - `sync.rs`: the ledger fed from [`Scope`]'s changes, sends to CloudHub.
//! - `upstream.rs`: upstream messages read into requests, replies (pure).
//! - `status.rs`: node status merged and marked `Unknown` (pure).
//! - `api.rs`: requests carried out with kube-rs.
//! - `handle.rs`: one upstream message end to end; readiness marks.
//! - `queues.rs`: per-node upstream queues and their workers.
//! - `metrics.rs`, `error.rs`: [`EdgeControllerError`].

mod api;
mod downstream;
mod error;
mod handle;
mod metrics;
mod queues;
mod status;
mod sync;
mod upstream;

use std::time::Duration;

use async_trait::async_trait;
use beehive::{Module, ModuleContext, ModuleError};
use prometheus_client::registry::Registry;
use proto::modules::cloud;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio_util::task::TaskTracker;

pub use api::NewEdgeStore;
pub use error::{EdgeControllerError, Result};

use crate::cloudhub::{LinkEvent, NodeLinks};
use crate::scope::{Change, Scope};
use api::KubeSide;
use handle::Handler;
use metrics::Metrics;
use queues::{NodeQueues, Tasks};
use sync::Downstream;

/// Upstream messages carried out at the same time, at most; more wait in
/// the mailbox.
pub const MAX_IN_FLIGHT: usize = 64;

/// The EdgeController beehive module.
pub struct EdgeController {
    client: kube::Client,
    scope: Scope,
    links: NodeLinks,
    grace: Duration,
    metrics: Metrics,
    new_store: Option<NewEdgeStore>,
}

impl std::fmt::Debug for EdgeController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeController")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl EdgeController {
    /// A controller writing through `client`, reading `scope`, following
    /// `links` (CloudHub's; `NodeLinks::new()` without CloudHub), marking
    /// nodes left Ready without a link `grace` after start-up (CloudHub's
    /// `keepaliveInterval`), its metrics registered in `registry`.
    pub fn new(
        client: kube::Client,
        scope: Scope,
        links: NodeLinks,
        grace: Duration,
        registry: &mut Registry,
    ) -> Self {
        EdgeController {
            client,
            scope,
            links,
            grace,
            metrics: Metrics::register(registry),
            new_store: None,
        }
    }

    /// Calls `hook` with the name of a node that registers with a new
    /// store (a first start, or a lost or reset database).
    pub fn on_new_edge_store(mut self, hook: NewEdgeStore) -> Self {
        self.new_store = Some(hook);
        self
    }
}

#[async_trait]
impl Module for EdgeController {
    fn name(&self) -> &str {
        cloud::EDGECONTROLLER
    }

    fn group(&self) -> &str {
        cloud::EDGECONTROLLER
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> std::result::Result<(), ModuleError> {
        let cancel = ctx.cancellation_token().clone();
        let scope = self.scope.clone();
        // Subscribed before the first comparison, so nothing falls between.
        let mut changes = scope.subscribe();
        let mut link_events = self.links.subscribe();
        let handler = Handler {
            kube: KubeSide {
                client: self.client.clone(),
                links: self.links.clone(),
                scope: scope.clone(),
                new_store: self.new_store.clone(),
            },
            scope: scope.clone(),
            links: self.links.clone(),
            bus: ctx.bus().clone(),
            metrics: self.metrics.clone(),
        };
        let mut down = Downstream::new(scope.clone(), ctx.bus().clone(), self.metrics.clone());
        let tasks = Tasks {
            tracker: TaskTracker::new(),
            cancel: cancel.clone(),
        };
        let mut upstream = NodeQueues::new(handler.clone(), MAX_IN_FLIGHT);
        let listed = scope.ready_for(&downstream::KINDS);
        tokio::pin!(listed);
        let grace = tokio::time::sleep(self.grace);
        tokio::pin!(grace);
        let (mut ready, mut swept, mut links_open) = (false, false, true);
        tracing::info!(grace = ?self.grace, "edgecontroller started");
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = &mut listed, if !ready => {
                    ready = true;
                    // The stores are complete: what was broadcast while
                    // they filled is in them, the comparison covers it.
                    drain(&mut changes);
                    down.resync("start").await;
                }
                () = &mut grace, if ready && !swept => {
                    swept = true;
                    let h = handler.clone();
                    tasks.spawn(async move { h.sweep().await });
                }
                event = link_events.recv(), if links_open => match event {
                    Ok(LinkEvent::Disconnected(node)) => {
                        let h = handler.clone();
                        tasks.spawn(async move { h.link_lost(&node).await });
                    }
                    Ok(LinkEvent::Connected(node)) => {
                        tracing::debug!(node, "link up; the node's next report says Ready");
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "link events lost; sweeping the nodes");
                        let h = handler.clone();
                        tasks.spawn(async move { h.sweep().await });
                    }
                    Err(RecvError::Closed) => links_open = false,
                },
                change = changes.recv(), if ready => match change {
                    Ok(change) => down.on_change(change).await,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "changes lost; comparing everything");
                        down.resync("lagged").await;
                    }
                    Err(RecvError::Closed) => break,
                },
                msg = ctx.recv() => match msg {
                    Some(msg) => upstream.push(&tasks, msg).await,
                    None => break,
                },
            }
        }
        tasks.wait().await;
        tracing::info!("edgecontroller stopped");
        Ok(())
    }
}

/// Discards every change waiting in `changes` (lost ones included).
fn drain(changes: &mut broadcast::Receiver<Change>) {
    while !matches!(
        changes.try_recv(),
        Err(TryRecvError::Empty | TryRecvError::Closed)
    ) {}
}
