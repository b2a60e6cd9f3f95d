//! One connection of one node: a writer task owning the [`LinkSender`]
//! (fed through a bounded channel by the node task and the reader) and a
//! reader task owning the [`LinkReceiver`]. The reader enforces the read
//! deadline (`keepaliveInterval`, reset by anything received), the node's
//! upstream rate limit (waiting, never dropping), and dispatches upstream.
//! Either task ending ends both; the reader then detaches the session from
//! its node and releases its `nodeLimit` permit.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use beehive::{Bus, BusError};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use link::{Connection, Incoming, LinkError, LinkReceiver, LinkSender};
use proto::modules::content;
use proto::Message;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::DropReason;
use super::metrics::{Direction, Metrics};
use super::node::{NodeHandle, SessionLink};
use super::upstream::{
    classify, into_cloud, refusal, target_module, upstream_ack, wants_upstream_ack, Upstream,
};
use super::Authorizer;

/// Commands queued for a writer task.
const WRITER_CAPACITY: usize = 64;

/// How long a closing writer may take to say goodbye.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a writer task is told.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    /// Write this message.
    Send(Box<Message>),
    /// Close the connection after what came before.
    Close,
}

/// Per-session settings, from `modules.cloudHub`.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    /// Read deadline (`keepaliveInterval`).
    pub(crate) keepalive: Duration,
    /// Longest a single write may take (`writeTimeout`).
    pub(crate) write_timeout: Duration,
    /// Upstream rate limit (`nodeMessageQPS`, `nodeMessageBurst`).
    pub(crate) quota: Quota,
}

impl SessionConfig {
    /// The quota for `qps` messages per second with bursts of `burst`.
    pub(crate) fn quota(qps: f64, burst: u32) -> Quota {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let period = if qps.is_finite() && qps > 0.0 {
            Duration::try_from_secs_f64(1.0 / qps).unwrap_or(Duration::MAX)
        } else {
            Duration::MAX
        };
        Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst)
    }
}

/// What a new session needs from the hub.
pub(crate) struct SessionDeps {
    /// Unique per CloudHub run.
    pub(crate) id: u64,
    /// The node's task.
    pub(crate) node: NodeHandle,
    /// For upstream dispatch.
    pub(crate) bus: Bus,
    /// Shared metrics.
    pub(crate) metrics: Metrics,
    /// Settings.
    pub(crate) config: Arc<SessionConfig>,
    /// Node authorization.
    pub(crate) authorizer: Arc<dyn Authorizer>,
    /// Held for the session's life (`nodeLimit`).
    pub(crate) permit: OwnedSemaphorePermit,
}

/// Attaches `conn` to its node and spawns its reader and writer on
/// `tracker`, under a child of `parent`.
pub(crate) async fn start(
    conn: Connection,
    deps: SessionDeps,
    tracker: &TaskTracker,
    parent: &CancellationToken,
) {
    let Connection {
        peer,
        sender,
        receiver,
    } = conn;
    let cancel = parent.child_token();
    let (writer_tx, writer_rx) = mpsc::channel(WRITER_CAPACITY);
    let link = SessionLink {
        id: deps.id,
        writer: writer_tx.clone(),
        cancel: cancel.clone(),
        remote: peer.remote,
        transport: peer.transport.as_str(),
    };
    if !deps.node.attach(link).await {
        return;
    }
    let writer = Writer {
        node_id: peer.node_id.clone(),
        node: deps.node.clone(),
        metrics: deps.metrics.clone(),
        write_timeout: deps.config.write_timeout,
        cancel: cancel.clone(),
    };
    tracker.spawn(writer.run(sender, writer_rx));
    let reader = Reader {
        node_id: peer.node_id,
        acks_upstream: peer.acks_upstream,
        session: deps.id,
        node: deps.node,
        bus: deps.bus,
        writer: writer_tx,
        metrics: deps.metrics,
        keepalive: deps.config.keepalive,
        limiter: RateLimiter::direct(deps.config.quota),
        authorizer: deps.authorizer,
        cancel,
    };
    tracker.spawn(reader.run(receiver, deps.permit));
}

struct Writer {
    node_id: String,
    node: NodeHandle,
    metrics: Metrics,
    write_timeout: Duration,
    cancel: CancellationToken,
}

impl Writer {
    async fn run(self, mut sender: LinkSender, mut rx: mpsc::Receiver<WriterCmd>) {
        let node = &self.node_id;
        loop {
            let cmd = tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                cmd = rx.recv() => cmd,
            };
            let Some(WriterCmd::Send(msg)) = cmd else {
                break;
            };
            match tokio::time::timeout(self.write_timeout, sender.send(&msg)).await {
                Ok(Ok(())) => self.metrics.message(Direction::Down),
                Ok(Err(LinkError::Frame(error))) => {
                    // Nothing was written; the link is fine, the message can never pass.
                    tracing::warn!(%node, msg_id = msg.id(), resource = msg.resource(), %error,
                        "downstream message over the frame cap; dropped");
                    self.metrics.dropped(DropReason::TooLarge, 1);
                    self.node.discard(msg.header.msg_id.clone()).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%node, error = %error_chain(&error), "write to edge failed");
                    break;
                }
                Err(_) => {
                    tracing::warn!(%node, write_timeout = ?self.write_timeout,
                        "write to edge timed out; closing");
                    break;
                }
            }
        }
        self.cancel.cancel();
        let _ = tokio::time::timeout(CLOSE_GRACE, sender.close()).await;
    }
}

struct Reader {
    node_id: String,
    acks_upstream: bool,
    session: u64,
    node: NodeHandle,
    bus: Bus,
    writer: mpsc::Sender<WriterCmd>,
    metrics: Metrics,
    keepalive: Duration,
    limiter: DefaultDirectRateLimiter,
    authorizer: Arc<dyn Authorizer>,
    cancel: CancellationToken,
}

impl Reader {
    async fn run(self, mut rx: LinkReceiver, permit: OwnedSemaphorePermit) {
        let reason = self.read_loop(&mut rx).await;
        self.cancel.cancel();
        self.node.detach(self.session).await;
        drop(permit);
        tracing::info!(node = %self.node_id, session = self.session, reason, "session closed");
    }

    /// Reads until the link ends; returns why.
    async fn read_loop(&self, rx: &mut LinkReceiver) -> &'static str {
        loop {
            let next = tokio::select! {
                () = self.cancel.cancelled() => return "closed by cloudhub",
                next = tokio::time::timeout(self.keepalive, rx.recv()) => next,
            };
            let msg = match next {
                Err(_) => return "keepalive expired",
                Ok(Ok(None)) => return "closed by the edge",
                Ok(Ok(Some(Incoming::Alive))) => continue,
                Ok(Ok(Some(Incoming::Message(msg)))) => msg,
                Ok(Err(LinkError::Frame(error))) => {
                    tracing::warn!(node = %self.node_id, %error,
                        "malformed or oversized frame; closing this connection");
                    return "bad frame";
                }
                Ok(Err(error)) => {
                    tracing::debug!(node = %self.node_id, error = %error_chain(&error), "read failed");
                    return "read error";
                }
            };
            self.metrics.message(Direction::Up);
            let handled = self.dispatch(msg);
            tokio::select! {
                () = self.cancel.cancelled() => return "closed by cloudhub",
                () = handled => {}
            }
        }
    }

    /// Acks of downstream messages are taken at once; everything else an
    /// edge sends waits for the node's rate limit (`nodeMessageQPS`), which
    /// would otherwise cap downstream throughput at the same rate.
    async fn dispatch(&self, msg: Message) {
        match classify(&msg) {
            Upstream::Empty | Upstream::Keepalive => {}
            Upstream::Response { parent } => {
                if self.node.ack(parent).await {
                    return;
                }
                self.limiter.until_ready().await;
                if msg.content.as_str() == Some(content::OK) {
                    // A bare "OK" tells a controller nothing.
                    tracing::debug!(node = %self.node_id, parent, "ack for nothing queued");
                    self.metrics.dropped(DropReason::UnknownAck, 1);
                    return;
                }
                let module = target_module(&msg);
                self.forward(msg, module).await;
            }
            Upstream::Forward { module } => {
                self.limiter.until_ready().await;
                self.forward(msg, module).await;
            }
        }
    }

    /// Hands `msg` to `module`, then acks it when the edge asked for acks.
    /// A message node authorization refuses gets an error reply instead
    /// (and the ack: it is final, resending will not help).
    async fn forward(&self, msg: Message, module: &'static str) {
        let ack = (self.acks_upstream && wants_upstream_ack(&msg)).then(|| upstream_ack(&msg));
        if let Err(reason) = self.authorizer.authorize(&self.node_id, &msg) {
            tracing::warn!(node = %self.node_id, msg_id = msg.id(), resource = msg.resource(),
                operation = msg.operation().as_str(), %reason, "upstream message refused");
            self.metrics.dropped(DropReason::Unauthorized, 1);
            self.send(refusal(&msg, &reason)).await;
            if let Some(ack) = ack {
                self.send(ack).await;
            }
            return;
        }
        if let Some(ack) = &ack {
            if self.node.is_duplicate(msg.id()).await {
                tracing::debug!(node = %self.node_id, msg_id = msg.id(), "duplicate upstream message");
                self.metrics.dropped(DropReason::Duplicate, 1);
                self.send(ack.clone()).await;
                return;
            }
        }
        let msg_id = msg.id().to_owned();
        match self.bus.send(module, into_cloud(&self.node_id, msg)).await {
            Ok(()) => {}
            Err(BusError::UnknownModule { .. }) => {
                tracing::debug!(node = %self.node_id, module, %msg_id, "no module for an upstream message");
                self.metrics.dropped(DropReason::NoModule, 1);
            }
            Err(error) => {
                // Not acked: the edge keeps it and sends it again.
                tracing::warn!(node = %self.node_id, module, %msg_id, %error,
                    "cannot hand an upstream message over");
                return;
            }
        }
        if let Some(ack) = ack {
            self.node.seen(msg_id).await;
            self.send(ack).await;
        }
    }

    async fn send(&self, msg: Message) {
        let _ = self.writer.send(WriterCmd::Send(Box::new(msg))).await;
    }
}

/// An error and its sources, `: `-separated, for one log field.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
