//! Upstream messages in order per node: each node with messages waiting
//! has a worker task fed through a bounded queue, so a node's registration
//! is carried out before its first status report, and its reports in the
//! order it sent them, while nodes proceed side by side (at most
//! [`MAX_IN_FLIGHT`](super::MAX_IN_FLIGHT) API requests at once). A
//! worker left idle ends; the next message starts another.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use proto::{split_node_prefix, Message};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handle::Handler;

/// Messages waiting per node before its sender waits.
const PER_NODE: usize = 32;

/// How long a worker waits for its node's next message before it ends.
const IDLE: Duration = Duration::from_secs(60);

/// The module's tracked tasks, each stopped by its cancellation.
pub(crate) struct Tasks {
    pub(crate) tracker: TaskTracker,
    pub(crate) cancel: CancellationToken,
}

impl Tasks {
    /// Runs `work` until it ends or the module is cancelled.
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = work => {}
            }
        });
    }

    /// Waits for every task (after cancellation, they end promptly).
    pub(crate) async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// The per-node queues and their workers.
pub(crate) struct NodeQueues {
    handler: Handler,
    slots: Arc<Semaphore>,
    workers: HashMap<String, mpsc::Sender<Message>>,
}

impl NodeQueues {
    /// No worker yet; each handles messages with `handler`, at most
    /// `in_flight` at once over all nodes.
    pub(crate) fn new(handler: Handler, in_flight: usize) -> Self {
        NodeQueues {
            handler,
            slots: Arc::new(Semaphore::new(in_flight)),
            workers: HashMap::new(),
        }
    }

    /// Queues `msg` for its node's worker (waiting while that queue is
    /// full), starting the worker on `tasks` if there is none.
    pub(crate) async fn push(&mut self, tasks: &Tasks, mut msg: Message) {
        let node = split_node_prefix(msg.resource()).map_or("", |(node, _)| node);
        let node = node.to_owned();
        loop {
            if let Some(queue) = self.workers.get(&node) {
                match queue.send(msg).await {
                    Ok(()) => return,
                    // The worker ended (idle): start another.
                    Err(mpsc::error::SendError(back)) => msg = back,
                }
            }
            self.workers.retain(|_, queue| !queue.is_closed());
            let (queue, inbox) = mpsc::channel(PER_NODE);
            tasks.spawn(work(inbox, self.handler.clone(), self.slots.clone()));
            self.workers.insert(node.clone(), queue);
        }
    }
}

/// One node's worker: its messages one after the other.
async fn work(mut inbox: mpsc::Receiver<Message>, handler: Handler, slots: Arc<Semaphore>) {
    loop {
        let msg = match tokio::time::timeout(IDLE, inbox.recv()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => return,
            Err(_) => {
                // No more messages from here on; finish what slipped in.
                inbox.close();
                while let Ok(msg) = inbox.try_recv() {
                    handle(&handler, &slots, msg).await;
                }
                return;
            }
        };
        handle(&handler, &slots, msg).await;
    }
}

async fn handle(handler: &Handler, slots: &Semaphore, msg: Message) {
    let Ok(_slot) = slots.acquire().await else {
        return;
    };
    handler.upstream(msg).await;
}
