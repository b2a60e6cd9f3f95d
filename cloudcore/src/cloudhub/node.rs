//! The node task: one per node CloudHub has heard of, owning that node's
//! [`NodeQueue`], its current session's writer handle and its recent
//! upstream ids. It outlives connections, so messages for a disconnected
//! node wait and a reconnecting node gets them.
//!
//! [`NodeHandle`] is the cloneable front: the hub loop feeds it downstream
//! messages and new sessions, the session's reader asks it about acks and
//! duplicates. Invariant: a node has at most one session; attaching a new
//! one closes the old.

use std::net::SocketAddr;
use std::sync::Arc;

use proto::Message;
use tokio::sync::mpsc::{self, error::SendError, Permit};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::admission::DropReason;
use super::links::NodeLinks;
use super::metrics::Metrics;
use super::queue::{AckOutcome, Admission, NodeQueue, QueueConfig};
use super::recent::RecentIds;
use super::session::WriterCmd;
use super::AckHook;

/// Upstream message ids remembered per node for duplicate detection: 16
/// times edgehub's default ack window of 64, so everything an edge may
/// resend after a lost ack is still known.
const RECENT_UPSTREAM_IDS: usize = 1024;

/// Events a node task handles.
const EVENT_CAPACITY: usize = 256;

/// A session as the node task sees it.
#[derive(Debug)]
pub(crate) struct SessionLink {
    /// Unique per CloudHub run.
    pub(crate) id: u64,
    /// Feeds the session's writer task.
    pub(crate) writer: mpsc::Sender<WriterCmd>,
    /// Closes the session.
    pub(crate) cancel: CancellationToken,
    /// For logs.
    pub(crate) remote: SocketAddr,
    /// For logs: `websocket` or `quic`.
    pub(crate) transport: &'static str,
}

#[derive(Debug)]
enum NodeEvent {
    Downstream(Message),
    Attach(SessionLink),
    Detach(u64),
    Ack {
        parent: String,
        reply: oneshot::Sender<bool>,
    },
    IsDuplicate {
        msg_id: String,
        reply: oneshot::Sender<bool>,
    },
    Seen(String),
    Discard(String),
    Terminate,
}

/// The cloneable front of a node task. Every call returns quietly once the
/// task has stopped (CloudHub shutting down).
#[derive(Debug, Clone)]
pub(crate) struct NodeHandle {
    tx: mpsc::Sender<NodeEvent>,
}

impl NodeHandle {
    /// Queues a downstream message (resource in edge form).
    pub(crate) async fn downstream(&self, msg: Message) {
        let _ = self.tx.send(NodeEvent::Downstream(msg)).await;
    }

    /// Makes `link` the node's session, closing any other; false when the
    /// task has stopped.
    pub(crate) async fn attach(&self, link: SessionLink) -> bool {
        self.tx.send(NodeEvent::Attach(link)).await.is_ok()
    }

    /// Session `id` ended.
    pub(crate) async fn detach(&self, id: u64) {
        let _ = self.tx.send(NodeEvent::Detach(id)).await;
    }

    /// Applies an edge `response` to message `parent`; true when it was an
    /// ack of something this node was sent (now or before).
    pub(crate) async fn ack(&self, parent: &str) -> bool {
        let (reply, answer) = oneshot::channel();
        let parent = parent.to_owned();
        let asked = self.tx.send(NodeEvent::Ack { parent, reply }).await;
        asked.is_ok() && answer.await.unwrap_or(false)
    }

    /// Whether upstream message `msg_id` was handed over recently.
    pub(crate) async fn is_duplicate(&self, msg_id: &str) -> bool {
        let (reply, answer) = oneshot::channel();
        let msg_id = msg_id.to_owned();
        let asked = self.tx.send(NodeEvent::IsDuplicate { msg_id, reply }).await;
        asked.is_ok() && answer.await.unwrap_or(false)
    }

    /// Upstream message `msg_id` was handed over.
    pub(crate) async fn seen(&self, msg_id: String) {
        let _ = self.tx.send(NodeEvent::Seen(msg_id)).await;
    }

    /// Message `msg_id` cannot be carried (over the frame cap): forget it.
    pub(crate) async fn discard(&self, msg_id: String) {
        let _ = self.tx.send(NodeEvent::Discard(msg_id)).await;
    }

    /// The node was deleted: close its session after what is already on
    /// its way.
    pub(crate) async fn terminate(&self) {
        let _ = self.tx.send(NodeEvent::Terminate).await;
    }
}

/// One node's state; see the module docs.
pub(crate) struct NodeTask {
    node: String,
    queue: NodeQueue,
    session: Option<SessionLink>,
    upstream_ids: RecentIds,
    ever_connected: bool,
    depth: usize,
    metrics: Metrics,
    ack_hook: Arc<dyn AckHook>,
    links: NodeLinks,
    rx: mpsc::Receiver<NodeEvent>,
}

impl NodeTask {
    /// A task for `node` and its handle; run the task with [`run`](Self::run).
    pub(crate) fn new(
        node: String,
        queue: QueueConfig,
        metrics: Metrics,
        ack_hook: Arc<dyn AckHook>,
        links: NodeLinks,
    ) -> (Self, NodeHandle) {
        let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
        let task = NodeTask {
            node,
            queue: NodeQueue::new(queue),
            session: None,
            upstream_ids: RecentIds::new(RECENT_UPSTREAM_IDS),
            ever_connected: false,
            depth: 0,
            metrics,
            ack_hook,
            links,
            rx,
        };
        (task, NodeHandle { tx })
    }

    /// Runs until `cancel` fires or every handle is gone.
    pub(crate) async fn run(mut self, cancel: CancellationToken) {
        loop {
            let writer = self
                .session
                .as_ref()
                .filter(|_| self.queue.wants_transmit())
                .map(|s| s.writer.clone());
            let deadline = self.queue.poll_timeout().map(Instant::from_std);
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                permit = reserve(writer.as_ref()), if writer.is_some() => match permit {
                    Ok(permit) => self.transmit(permit),
                    Err(SendError(())) => self.lost_session(),
                },
                event = self.rx.recv() => match event {
                    Some(event) => self.handle(event),
                    None => break,
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.queue.handle_timeout(now());
                }
            }
            self.update_depth();
        }
        if self.session.take().is_some() {
            self.mark_connected(false);
        }
        self.metrics.queue_depth_changed(-signed(self.depth));
    }

    fn transmit(&mut self, permit: Permit<'_, WriterCmd>) {
        if let Some(t) = self.queue.poll_transmit(now()) {
            if t.resend {
                self.metrics.resend();
            }
            permit.send(WriterCmd::Send(Box::new(t.msg)));
        }
    }

    fn handle(&mut self, event: NodeEvent) {
        match event {
            NodeEvent::Downstream(msg) => self.enqueue(msg),
            NodeEvent::Attach(link) => self.attach(link),
            NodeEvent::Detach(id) => {
                if self.session.as_ref().is_some_and(|s| s.id == id) {
                    self.lost_session();
                }
            }
            NodeEvent::Ack { parent, reply } => {
                let consumed = match self.queue.ack(&parent) {
                    AckOutcome::Acked(msg) => {
                        self.metrics.ack();
                        self.ack_hook.acked(&self.node, &msg);
                        true
                    }
                    AckOutcome::Duplicate => true,
                    AckOutcome::Unknown => false,
                };
                let _ = reply.send(consumed);
            }
            NodeEvent::IsDuplicate { msg_id, reply } => {
                let _ = reply.send(self.upstream_ids.contains(&msg_id));
            }
            NodeEvent::Seen(msg_id) => {
                self.upstream_ids.insert(&msg_id);
            }
            NodeEvent::Discard(msg_id) => {
                self.queue.discard(&msg_id);
            }
            NodeEvent::Terminate => self.terminate(),
        }
    }

    fn enqueue(&mut self, msg: Message) {
        let (id, resource) = (msg.id().to_owned(), msg.resource().to_owned());
        let (hook, node) = (&self.ack_hook, self.node.as_str());
        match self
            .queue
            .push_synced(msg, &|key| hook.last_acked(node, key))
        {
            Admission::Queued { evicted } => {
                self.metrics.dropped(DropReason::QueueFull, evicted as u64);
            }
            Admission::Replaced => self.metrics.dropped(DropReason::Superseded, 1),
            Admission::Dropped(reason) => {
                tracing::debug!(node = %self.node, msg_id = %id, %resource,
                    reason = reason.as_str(), "downstream message dropped");
                self.metrics.dropped(reason, 1);
            }
        }
    }

    fn attach(&mut self, link: SessionLink) {
        tracing::info!(node = %self.node, remote = %link.remote, transport = link.transport,
            session = link.id, "node connected");
        match self.session.take() {
            Some(old) => {
                tracing::info!(node = %self.node, old_remote = %old.remote,
                    "a new connection replaces the node's session");
                old.cancel.cancel();
            }
            None => self.mark_connected(true),
        }
        if self.ever_connected {
            self.metrics.reconnect();
        }
        self.ever_connected = true;
        self.queue.disconnected();
        self.session = Some(link);
    }

    /// The node gained its session or lost its only one: the gauge and the
    /// controllers' [`NodeLinks`] follow.
    fn mark_connected(&self, up: bool) {
        self.metrics.node_connected(up);
        self.links.set(&self.node, up);
    }

    /// The current session is gone: what was in flight is pending again.
    fn lost_session(&mut self) {
        if let Some(old) = self.session.take() {
            old.cancel.cancel();
            self.mark_connected(false);
        }
        self.queue.disconnected();
    }

    fn terminate(&mut self) {
        let Some(session) = self.session.as_ref() else {
            return;
        };
        tracing::info!(node = %self.node, "node deleted; closing its session");
        if session.writer.try_send(WriterCmd::Close).is_err() {
            session.cancel.cancel();
        }
        // The writer closes after what it holds; the session counts as gone.
        if let Some(old) = self.session.take() {
            drop(old.writer);
            self.mark_connected(false);
        }
        self.queue.disconnected();
    }

    fn update_depth(&mut self) {
        let depth = self.queue.len();
        if depth != self.depth {
            self.metrics
                .queue_depth_changed(signed(depth) - signed(self.depth));
            self.depth = depth;
        }
    }
}

async fn reserve(
    writer: Option<&mpsc::Sender<WriterCmd>>,
) -> Result<Permit<'_, WriterCmd>, SendError<()>> {
    match writer {
        Some(w) => w.reserve().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The queue's clock: tokio's, so paused-time tests drive it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

fn signed(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
