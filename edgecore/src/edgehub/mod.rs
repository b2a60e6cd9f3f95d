//! EdgeHub: the edge end of the cloud link, as KubeEdge's beehive module
//! `websocket` in group `hub`.
//!
//! Upstream, every message other modules send here (MetaManager acks, twin
//! reports, node status, ...) is committed to a SQLite [`Outbox`] first; a
//! session sends the rows in order, rate limited (`messageQPS` /
//! `messageBurst`), and deletes each when the cloud acks it (or, against a
//! KubeEdge cloud that acks nothing, once written). A request (`sync`, e.g. a
//! MetaManager remote query) is not stored: it goes straight out while
//! connected and fails at once otherwise. Downstream, messages are
//! dispatched by group as KubeEdge does. The link is dialled with jittered
//! backoff, kept alive every heartbeat and dropped when nothing is heard for
//! two heartbeats (KubeEdge #6965).
//!
//! ```no_run
//! # fn demo(config: &edgecore::EdgeCoreConfig, tls: std::sync::Arc<rustls::ClientConfig>)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use edgecore::edgehub::{self, ClientTls, EdgeHub, EdgeHubSettings, Outbox, OutboxOptions};
//!
//! let settings = EdgeHubSettings::from_config(&config.modules.edge_hub, "edge-1")?;
//! let path = edgehub::outbox_path(&config.database.data_source);
//! let outbox = Outbox::open(&path, OutboxOptions::default())?;
//! let mut registry = prometheus_client::registry::Registry::default();
//! let hub = EdgeHub::new(settings, ClientTls::fixed(tls), outbox, &mut registry);
//! let status = hub.status();
//! let mut builder = beehive::BeehiveBuilder::new();
//! builder.module(hub);
//! # drop(status);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `mod.rs`: the [`EdgeHub`] module and its mailbox loop (store or forward).
//! - `settings.rs`: [`EdgeHubSettings`] from `modules.edgeHub`, [`ClientTls`].
//! - `outbox.rs`: the [`Outbox`] handle; `outbox_store.rs`: its writer thread.
//! - `window.rs`: the sans-IO send window (order, acks, resend).
//! - `connect.rs`: dial loop, backoff, connect/disconnect broadcast.
//! - `session.rs`: one connection: reader, writer, keepalive, deadlines.
//! - `dispatch.rs`: downstream routing by group, as KubeEdge.
//! - `status.rs`: [`EdgeHubStatus`]; `metrics.rs`: `edgehub_*` metrics.
//! - `error.rs`: [`EdgeHubError`], [`OutboxError`].

mod connect;
mod dispatch;
mod error;
mod metrics;
mod outbox;
mod outbox_store;
mod session;
mod settings;
mod status;
mod window;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use beehive::{async_trait, Bus, Module, ModuleContext, ModuleError, RestartPolicy};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use proto::modules::edge;
use proto::Message;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::task::TaskTracker;

pub use error::{EdgeHubError, OutboxError, OutboxResult, Result};
pub use outbox::{Outbox, OutboxOptions, OutboxStats, DEFAULT_MAX_ROWS};
pub use settings::{
    ClientTls, EdgeHubSettings, HubTransportKind, DEFAULT_ACK_TIMEOUT, DEFAULT_ACK_WINDOW,
    DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, MAX_FRAME,
};
pub use status::{EdgeHubStatus, PeerInfo};

use connect::{fail_request, Hub};
use metrics::Metrics;
use status::StatusPublisher;

/// Messages taken from the mailbox and committed together.
const MAX_BATCH: usize = 256;

/// Direct requests and replies waiting for the connection.
const DIRECT_QUEUE: usize = 1024;

/// The outbox file next to the MetaManager database: `<dataSource>` with its
/// extension replaced, e.g. `/var/lib/kubeedge/edgecore.db` →
/// `/var/lib/kubeedge/edgecore.outbox.db`.
pub fn outbox_path(data_source: &str) -> PathBuf {
    PathBuf::from(data_source).with_extension("outbox.db")
}

/// The EdgeHub beehive module (`websocket`, group `hub`).
#[derive(Debug)]
pub struct EdgeHub {
    hub: Hub,
}

impl EdgeHub {
    /// A module that dials per `settings`, with TLS from `tls`, keeping
    /// cloud-bound messages in `outbox` and its metrics in `registry`.
    pub fn new(
        settings: EdgeHubSettings,
        tls: ClientTls,
        outbox: Outbox,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Self {
        let limiter = rate_limiter(settings.message_qps, settings.message_burst);
        let status = StatusPublisher::new(outbox.subscribe());
        EdgeHub {
            hub: Hub {
                settings: Arc::new(settings),
                tls,
                outbox,
                metrics: Metrics::register(registry),
                status,
                limiter: Arc::new(limiter),
            },
        }
    }

    /// A handle on the connection state and the outbox depth.
    pub fn status(&self) -> EdgeHubStatus {
        self.hub.status.status()
    }
}

/// A token bucket of `burst` refilled at `qps` per second.
fn rate_limiter(qps: f64, burst: u32) -> DefaultDirectRateLimiter {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let quota = Duration::try_from_secs_f64(1.0 / qps)
        .ok()
        .and_then(Quota::with_period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX));
    RateLimiter::direct(quota.allow_burst(burst))
}

#[async_trait]
impl Module for EdgeHub {
    fn name(&self) -> &str {
        edge::EDGEHUB
    }

    fn group(&self) -> &str {
        edge::HUB
    }

    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::OnFailure { max_retries: 0 }
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError> {
        let cancel = ctx.cancellation_token().child_token();
        // Stops the tasks below however this run ends, a panic included.
        let _stop_tasks = cancel.clone().drop_guard();
        let tracker = TaskTracker::new();
        let (direct_tx, direct_rx) = mpsc::channel(DIRECT_QUEUE);
        tracker.spawn(connect::connect_loop(
            self.hub.clone(),
            ctx.bus().clone(),
            direct_rx,
            cancel.child_token(),
        ));
        tracker.spawn(mirror_depth(
            self.hub.outbox.subscribe(),
            self.hub.metrics.clone(),
            cancel.child_token(),
        ));
        tracker.close();
        let result = mailbox_loop(ctx, &self.hub, &direct_tx).await;
        cancel.cancel();
        tracker.wait().await;
        result
    }
}

/// Takes messages from the mailbox until cancelled: requests go to the
/// connection, everything else into the outbox, in batches.
async fn mailbox_loop(
    ctx: &mut ModuleContext,
    hub: &Hub,
    direct: &mpsc::Sender<Message>,
) -> Result<(), ModuleError> {
    while let Some(first) = ctx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match ctx.try_recv() {
                Some(msg) => batch.push(msg),
                None => break,
            }
        }
        let mut store = Vec::with_capacity(batch.len());
        for msg in batch {
            if msg.is_empty() {
                tracing::debug!("ignoring an empty message");
            } else if msg.header.sync {
                forward_request(ctx.bus(), direct, msg);
            } else if is_reply(&msg) {
                if direct.send(msg).await.is_err() {
                    tracing::debug!("edgehub stopping; reply dropped");
                }
            } else {
                store.push(msg);
            }
        }
        store_all(hub, store).await?;
    }
    Ok(())
}

/// A reply to a cloud message (an ack or an answer), sent without storing.
pub(crate) fn is_reply(msg: &Message) -> bool {
    msg.parent_id().is_some()
        && matches!(
            msg.operation(),
            proto::Operation::Response | proto::Operation::Error
        )
}

/// Hands a request to the connection, or answers it with an error.
fn forward_request(bus: &Bus, direct: &mpsc::Sender<Message>, request: Message) {
    match direct.try_send(request) {
        Ok(()) => {}
        Err(TrySendError::Full(request)) => {
            tracing::warn!(
                msg_id = request.id(),
                "too many requests waiting for the cloud"
            );
            bus.respond(request.error_reply("edgehub: too many requests waiting for the cloud"));
        }
        Err(TrySendError::Closed(request)) => fail_request(bus, &request),
    }
}

/// Commits `msgs` to the outbox. A message the outbox refuses (full, disk
/// full, database error) is logged, counted and dropped; only a stopped
/// outbox fails the module.
async fn store_all(hub: &Hub, msgs: Vec<Message>) -> Result<(), ModuleError> {
    if msgs.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = msgs.iter().map(|m| m.id().to_owned()).collect();
    match hub.outbox.append_all(msgs).await {
        Ok(results) => {
            for (msg_id, result) in ids.iter().zip(results) {
                if let Err(err) = result {
                    hub.metrics.outbox_rejected();
                    tracing::error!(msg_id, %err, "cloud-bound message dropped");
                }
            }
            Ok(())
        }
        Err(OutboxError::Closed) => Err(ModuleError::new(OutboxError::Closed)),
        Err(err) => {
            for msg_id in &ids {
                hub.metrics.outbox_rejected();
                tracing::error!(msg_id, error = %outbox_store::error_chain(&err), "cloud-bound message dropped");
            }
            Ok(())
        }
    }
}

/// Keeps `edgehub_outbox_depth` equal to the outbox's length.
async fn mirror_depth(
    mut stats: tokio::sync::watch::Receiver<OutboxStats>,
    metrics: Metrics,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        metrics.set_outbox_depth(stats.borrow_and_update().len);
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = stats.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_sits_next_to_the_database() {
        assert_eq!(
            outbox_path("/var/lib/kubeedge/edgecore.db"),
            PathBuf::from("/var/lib/kubeedge/edgecore.outbox.db")
        );
        assert_eq!(outbox_path("edge.sqlite"), PathBuf::from("edge.outbox.db"));
    }

    #[test]
    fn rate_limiter_allows_the_burst_then_waits() {
        let limiter = rate_limiter(1.0, 3);
        assert!((0..3).all(|_| limiter.check().is_ok()));
        assert!(limiter.check().is_err());
        let _odd = rate_limiter(0.0, 0);
        let _huge = rate_limiter(1e12, 1);
    }
}
