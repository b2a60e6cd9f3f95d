//! CloudHub: the cloud end of the cloud–edge link, as a beehive module
//! (name and group `cloudhub`).
//!
//! It listens for edges over WebSocket and QUIC (mutual TLS; the node is
//! the client certificate's `system:node:<n>`), keeps one session per node
//! (a new connection replaces the old), and
//!
//! - **downstream**: takes messages for `node/<id>/...` from its mailbox,
//!   strips the prefix and queues them per node as KubeEdge does (newest
//!   resourceVersion per object wins, deletes supersede), sends them with a
//!   window of unacked messages, resends every 5 s and backs off; queues
//!   outlive connections, so a reconnecting node gets what it missed;
//! - **upstream**: reads with a deadline of `keepaliveInterval`, treats a
//!   `response` to something it sent the node as an ack (taken at once:
//!   rate limiting acks would cap downstream throughput), limits everything
//!   else to `nodeMessageQPS`/`nodeMessageBurst` per node (by waiting),
//!   drops a bare `"OK"` for anything else, forwards other replies, and hands
//!   everything else, prefixed with `node/<id>/`, to DeviceController
//!   (source `twin`), DynamicController (source `metaserver`), Router
//!   (group `user`, op `upload`) or EdgeController; with Apiary's
//!   upstream-ack extension it acks each such message once handed over and
//!   drops recent duplicates (acking them again).
//!
//! Invariant: a node has at most one session. Invariant: a node's queue
//! lives as long as CloudHub, whatever happens to its connections.
//! Deleting a node (`delete` of `node/<id>/null/node/<id>`) closes its
//! session once what is already on its way (normally the delete) is written.
//!
//! # Metrics
//!
//! Registered under `cloudhub_`: `connected_nodes`, `queue_depth` (all
//! nodes), `messages_total{direction=up|down}` (down counts every frame
//! written, upstream acks included), `resends_total`, `acks_total`,
//! `reconnects_total`, `refused_connections_total{reason}` (`node_limit`
//! or the link's handshake reasons) and `dropped_messages_total{reason}`
//! (`no_resource_version`, `stale`, `superseded`, `queue_full`,
//! `duplicate`, `no_module`, `no_node`, `unknown_ack`, `too_large`,
//! `unauthorized`).
//!
//! ```no_run
//! # async fn demo(
//! #     config: &cloudcore::config::CloudHub,
//! #     tls: std::sync::Arc<rustls::ServerConfig>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use cloudcore::cloudhub::{CloudHub, NoAckHook};
//!
//! let mut registry = prometheus_client::registry::Registry::default();
//! let mut hub = CloudHub::new(config, tls, &mut registry, Arc::new(NoAckHook));
//! let addrs = hub.bind().await?; // before start, so the addresses are known
//! let mut builder = beehive::BeehiveBuilder::new();
//! builder.module(hub);
//! # drop(addrs);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `mod.rs`: [`CloudHub`] (configuration, binding, the `Module` impl),
//!   [`AckHook`], [`Authorizer`], [`BoundAddrs`].
//! - `links.rs`: [`NodeLinks`], which nodes are connected, for controllers.
//! - `hub.rs`: the module task: node map, downstream routing, sessions.
//! - `accept.rs`: accept loops with the `nodeLimit` cap.
//! - `session.rs`: one connection's reader and writer tasks, upstream
//!   dispatch.
//! - `node.rs`: the per-node task owning the queue and current session.
//! - `queue.rs` (+ `queue_tests.rs`): the sans-IO per-node queue;
//!   `admission.rs`: its KubeEdge keying and replacement rules.
//! - `upstream.rs`: pure upstream classification, routing and acks.
//! - `recent.rs`: bounded set of recent message ids.
//! - `metrics.rs`: the `cloudhub_*` metrics.
//! - `error.rs`: [`CloudHubError`].

mod accept;
mod admission;
mod error;
mod hub;
mod links;
mod metrics;
mod node;
mod queue;
mod recent;
mod session;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use beehive::{async_trait, Module, ModuleContext, ModuleError};
use link::Limits;
use prometheus_client::registry::Registry;
use proto::Message;

pub(crate) use admission::is_newer;
pub use error::{CloudHubError, Result};
pub use links::{LinkEvent, NodeLinks};
pub use queue::QueueConfig;

use crate::config::CloudHub as CloudHubConfig;
use hub::{HubParts, Listeners};
use metrics::Metrics;
use session::SessionConfig;

/// How long a TLS + WebSocket/QUIC handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Told whenever an edge acks a downstream message; the sync controller
/// records the node's last acked resourceVersion per object through it, and
/// answers [`last_acked`](Self::last_acked) so that CloudHub does not send
/// a node an object version it already has.
///
/// Called on the node's task: keep it quick and never block.
pub trait AckHook: Send + Sync {
    /// `node` acked `msg`. The message is as it was sent: resource in edge
    /// form (no `node/<id>/` prefix), header resourceVersion as queued.
    fn acked(&self, node: &str, msg: &Message);

    /// The resourceVersion `node` last acked for the object with UID `uid`
    /// (KubeEdge's ObjectSync), if known. Consulted when nothing is queued
    /// for the object: a message not newer than it is dropped as stale.
    fn last_acked(&self, node: &str, uid: &str) -> Option<String> {
        let _ = (node, uid);
        None
    }
}

/// An [`AckHook`] that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAckHook;

impl AckHook for NoAckHook {
    fn acked(&self, _node: &str, _msg: &Message) {}
}

/// Several hooks as one: each is told of every ack; the first that knows
/// an object's last acked version answers.
#[derive(Clone, Default)]
pub struct AckHooks(pub Vec<Arc<dyn AckHook>>);

impl std::fmt::Debug for AckHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AckHooks").field(&self.0.len()).finish()
    }
}

impl AckHook for AckHooks {
    fn acked(&self, node: &str, msg: &Message) {
        for hook in &self.0 {
            hook.acked(node, msg);
        }
    }

    fn last_acked(&self, node: &str, uid: &str) -> Option<String> {
        self.0.iter().find_map(|hook| hook.last_acked(node, uid))
    }
}

/// Decides whether a node may send a message: node authorization. The
/// node is the one its client certificate names, never a field of the
/// message.
///
/// Called on the session's reader for every message but acks and
/// heartbeats: keep it quick and never block.
pub trait Authorizer: Send + Sync {
    /// `Ok` when `node` may send `msg` (resource in edge form, without the
    /// `node/<id>/` prefix), else why not. A refused message gets an
    /// `error` reply with the reason and is counted in
    /// `cloudhub_dropped_messages_total{reason="unauthorized"}`.
    fn authorize(&self, node: &str, msg: &Message) -> std::result::Result<(), String>;
}

/// An [`Authorizer`] that allows everything (authorization off).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _node: &str, _msg: &Message) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Where CloudHub's listeners ended up (useful with port 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoundAddrs {
    /// The WebSocket listener, if enabled.
    pub ws: Option<SocketAddr>,
    /// The QUIC endpoint, if enabled.
    pub quic: Option<SocketAddr>,
}

/// The CloudHub module. Build it with [`new`](Self::new), optionally
/// [`bind`](Self::bind) it to learn the addresses, then register it on the
/// beehive; `run` binds whatever is not bound yet.
pub struct CloudHub {
    config: CloudHubConfig,
    parts: HubParts,
    bound: Option<(Listeners, BoundAddrs)>,
}

impl std::fmt::Debug for CloudHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudHub")
            .field("bound", &self.bound.as_ref().map(|(_, a)| a))
            .finish_non_exhaustive()
    }
}

impl CloudHub {
    /// A CloudHub for `config` (`modules.cloudHub`, validated), serving
    /// `tls` (which must require client certificates), registering its
    /// metrics in `metrics` under `cloudhub_`, and telling `ack_hook` about
    /// every ack.
    pub fn new(
        config: &CloudHubConfig,
        tls: Arc<rustls::ServerConfig>,
        metrics: &mut Registry,
        ack_hook: Arc<dyn AckHook>,
    ) -> Self {
        let session = SessionConfig {
            keepalive: Duration::from_secs(config.keepalive_interval.max(1).into()),
            write_timeout: Duration::from_secs(config.write_timeout.max(1).into()),
            quota: SessionConfig::quota(config.node_message_qps, config.node_message_burst),
        };
        let parts = HubParts {
            tls,
            limits: Limits {
                max_frame: usize::try_from(config.max_frame_bytes).unwrap_or(usize::MAX),
                handshake_timeout: HANDSHAKE_TIMEOUT,
            },
            node_limit: usize::try_from(config.node_limit).unwrap_or(usize::MAX),
            session: Arc::new(session),
            queue: QueueConfig::default(),
            metrics: Metrics::register(metrics),
            ack_hook,
            links: NodeLinks::new(),
            authorizer: Arc::new(AllowAll),
        };
        CloudHub {
            config: config.clone(),
            parts,
            bound: None,
        }
    }

    /// Checks every upstream message with `authorizer` (the default allows
    /// everything).
    pub fn with_authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.parts.authorizer = authorizer;
        self
    }

    /// Which nodes are connected, and a broadcast of every change: for the
    /// controllers.
    pub fn links(&self) -> NodeLinks {
        self.parts.links.clone()
    }

    /// Replaces the per-node queue settings (window, resend interval, ...).
    pub fn with_queue_config(mut self, queue: QueueConfig) -> Self {
        self.parts.queue = queue;
        self
    }

    /// Binds the enabled listeners (once; later calls return the same
    /// addresses) and logs them.
    pub async fn bind(&mut self) -> Result<BoundAddrs> {
        if let Some((_, addrs)) = &self.bound {
            return Ok(*addrs);
        }
        let hub = &self.config;
        if !hub.websocket.enable && !hub.quic.enable {
            return Err(CloudHubError::NoListener);
        }
        let mut listeners = Listeners::default();
        let mut addrs = BoundAddrs::default();
        if hub.websocket.enable {
            let addr = socket_addr("websocket", &hub.websocket.address, hub.websocket.port)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| CloudHubError::Bind { addr, source })?;
            addrs.ws = Some(
                listener
                    .local_addr()
                    .map_err(|source| CloudHubError::LocalAddr {
                        transport: "websocket",
                        source,
                    })?,
            );
            listeners.ws = Some(listener);
        }
        if hub.quic.enable {
            let addr = socket_addr("quic", &hub.quic.address, hub.quic.port)?;
            let endpoint =
                link::quic_server(addr, self.parts.tls.clone(), self.parts.session.keepalive)
                    .map_err(|source| CloudHubError::Quic { addr, source })?;
            addrs.quic =
                Some(
                    endpoint
                        .local_addr()
                        .map_err(|source| CloudHubError::LocalAddr {
                            transport: "quic",
                            source,
                        })?,
                );
            listeners.quic = Some(endpoint);
        }
        tracing::info!(websocket = ?addrs.ws, quic = ?addrs.quic,
            node_limit = self.parts.node_limit, "cloudhub listening");
        self.bound = Some((listeners, addrs));
        Ok(addrs)
    }
}

fn socket_addr(transport: &'static str, address: &str, port: u16) -> Result<SocketAddr> {
    let ip: IpAddr = address.parse().map_err(|source| CloudHubError::Address {
        transport,
        address: address.to_owned(),
        source,
    })?;
    Ok(SocketAddr::new(ip, port))
}

#[async_trait]
impl Module for CloudHub {
    fn name(&self) -> &str {
        proto::modules::cloud::CLOUDHUB
    }

    fn group(&self) -> &str {
        proto::modules::cloud::CLOUDHUB
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError> {
        self.bind().await.map_err(ModuleError::new)?;
        let Some((listeners, _)) = self.bound.take() else {
            return Err(ModuleError::msg("cloudhub listeners vanished"));
        };
        hub::run(self.parts.clone(), listeners, ctx).await;
        Ok(())
    }
}
