//! The hub loop: CloudHub's module task. It owns the node map (node id →
//! node task), starts the accept loops, turns established connections into
//! sessions, and routes downstream messages from its mailbox to the node
//! they name. On cancellation it closes every session and waits for all
//! its tasks before returning.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use beehive::{Bus, ModuleContext};
use link::{Limits, WsAcceptor};
use proto::{split_node_prefix, Message, Operation};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::accept::{self, AcceptShared, Accepted};
use super::admission::DropReason;
use super::links::NodeLinks;
use super::metrics::Metrics;
use super::node::{NodeHandle, NodeTask};
use super::queue::QueueConfig;
use super::session::{self, SessionConfig, SessionDeps};
use super::{AckHook, Authorizer};

/// Established connections waiting for the hub loop.
const ACCEPTED_CAPACITY: usize = 64;

/// How long the QUIC endpoint may take to close its connections.
const QUIC_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The bound listeners, ready to serve.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    /// WebSocket.
    pub(crate) ws: Option<TcpListener>,
    /// QUIC.
    pub(crate) quic: Option<quinn::Endpoint>,
}

/// Everything the hub loop needs besides its listeners and context.
#[derive(Clone)]
pub(crate) struct HubParts {
    /// Server TLS (client certificates required).
    pub(crate) tls: Arc<rustls::ServerConfig>,
    /// Frame and handshake limits.
    pub(crate) limits: Limits,
    /// Sessions at most (`nodeLimit`).
    pub(crate) node_limit: usize,
    /// Per-session settings.
    pub(crate) session: Arc<SessionConfig>,
    /// Per-node queue settings.
    pub(crate) queue: QueueConfig,
    /// Shared metrics.
    pub(crate) metrics: Metrics,
    /// Told about every ack.
    pub(crate) ack_hook: Arc<dyn AckHook>,
    /// Told about every link change.
    pub(crate) links: NodeLinks,
    /// Node authorization of upstream messages.
    pub(crate) authorizer: Arc<dyn Authorizer>,
}

struct Hub {
    parts: HubParts,
    bus: Bus,
    nodes: HashMap<String, NodeHandle>,
    next_session: u64,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// Serves `listeners` until `ctx` is cancelled.
pub(crate) async fn run(parts: HubParts, listeners: Listeners, ctx: &mut ModuleContext) {
    let cancel = ctx.cancellation_token().child_token();
    let tracker = TaskTracker::new();
    let (out, mut accepted) = mpsc::channel(ACCEPTED_CAPACITY);
    let shared = AcceptShared {
        limit: Arc::new(Semaphore::new(parts.node_limit.min(Semaphore::MAX_PERMITS))),
        out,
        metrics: parts.metrics.clone(),
        tracker: tracker.clone(),
        cancel: cancel.child_token(),
    };
    if let Some(listener) = listeners.ws {
        let acceptor = WsAcceptor::new(parts.tls.clone(), parts.limits);
        tracker.spawn(accept::ws_loop(listener, acceptor, shared.clone()));
    }
    let endpoint = listeners.quic.clone();
    if let Some(quic) = listeners.quic {
        tracker.spawn(accept::quic_loop(quic, parts.limits, shared.clone()));
    }
    drop(shared);

    let mut hub = Hub {
        parts,
        bus: ctx.bus().clone(),
        nodes: HashMap::new(),
        next_session: 0,
        tracker: tracker.clone(),
        cancel: cancel.clone(),
    };
    loop {
        tokio::select! {
            msg = ctx.recv() => match msg {
                Some(msg) => hub.downstream(msg).await,
                None => break,
            },
            Some(accepted) = accepted.recv() => hub.connected(accepted).await,
        }
    }

    tracing::info!(nodes = hub.nodes.len(), "cloudhub stopping");
    cancel.cancel();
    drop(hub);
    tracker.close();
    tracker.wait().await;
    if let Some(endpoint) = endpoint {
        endpoint.close(0u32.into(), b"cloudhub stopping");
        let _ = tokio::time::timeout(QUIC_CLOSE_GRACE, endpoint.wait_idle()).await;
    }
    tracing::info!("cloudhub stopped");
}

impl Hub {
    /// The node's task, started on first use.
    fn node(&mut self, node: &str) -> NodeHandle {
        if let Some(handle) = self.nodes.get(node) {
            return handle.clone();
        }
        let (task, handle) = NodeTask::new(
            node.to_owned(),
            self.parts.queue.clone(),
            self.parts.metrics.clone(),
            self.parts.ack_hook.clone(),
            self.parts.links.clone(),
        );
        self.tracker.spawn(task.run(self.cancel.child_token()));
        self.nodes.insert(node.to_owned(), handle.clone());
        handle
    }

    /// A message from a controller for `node/<id>/...`: into that node's
    /// queue, resource stripped. Deleting the node itself
    /// (`null/node/<id>`) also ends its session.
    async fn downstream(&mut self, mut msg: Message) {
        let Some((node, rest)) = split_node_prefix(msg.resource()) else {
            tracing::debug!(
                msg_id = msg.id(),
                resource = msg.resource(),
                "downstream message names no node; dropped"
            );
            self.parts.metrics.dropped(DropReason::NoNode, 1);
            return;
        };
        let (node, rest) = (node.to_owned(), rest.to_owned());
        let deletes_node = *msg.operation() == Operation::Delete
            && rest
                .strip_prefix("null/node/")
                .is_some_and(|name| name == node);
        msg.route.resource = rest;
        let handle = self.node(&node);
        handle.downstream(msg).await;
        if deletes_node {
            handle.terminate().await;
        }
    }

    /// A connection passed its handshake: make it the node's session.
    async fn connected(&mut self, accepted: Accepted) {
        let Accepted { conn, permit } = accepted;
        let node = self.node(&conn.peer.node_id);
        self.next_session += 1;
        let deps = SessionDeps {
            id: self.next_session,
            node,
            bus: self.bus.clone(),
            metrics: self.parts.metrics.clone(),
            config: self.parts.session.clone(),
            authorizer: self.parts.authorizer.clone(),
            permit,
        };
        session::start(conn, deps, &self.tracker, &self.cancel).await;
    }
}
