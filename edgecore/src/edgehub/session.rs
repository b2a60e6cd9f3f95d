//! One connection's life: a reader (read deadline, downstream dispatch,
//! upstream acks) and a writer (keepalive and ping every heartbeat, direct
//! requests, outbox rows in `seq` order through the rate limiter and the
//! ack [`Window`]), joined so that either ending ends both.
//!
//! The read deadline (two heartbeats without a message or a pong) applies to
//! WebSocket; on QUIC the same deadline is quinn's idle timeout, since QUIC
//! pings are transport frames the link does not surface.

use std::time::{Duration, Instant};

use beehive::Bus;
use governor::DefaultDirectRateLimiter;
use link::{Connection, Incoming, LinkReceiver, LinkSender};
use proto::{Message, Operation};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::dispatch::{classify, deliver, Target};
use super::error::{EdgeHubError, Result};
use super::metrics::{Metrics, DOWN, UP};
use super::outbox::Outbox;
use super::settings::{EdgeHubSettings, HubTransportKind};
use super::window::Window;

/// Acks read but not yet applied by the writer.
const ACK_QUEUE: usize = 1024;

/// How long a clean close may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a session needs besides the connection.
#[derive(Debug)]
pub(crate) struct SessionParts<'a> {
    pub(crate) settings: &'a EdgeHubSettings,
    pub(crate) outbox: &'a Outbox,
    pub(crate) bus: &'a Bus,
    pub(crate) metrics: &'a Metrics,
    pub(crate) limiter: &'a DefaultDirectRateLimiter,
}

/// Runs the connection until it fails (the error says why) or `cancel`
/// fires (`Ok`). Direct requests are taken from `direct` while it runs.
pub(crate) async fn run(
    parts: &SessionParts<'_>,
    conn: Connection,
    direct: &mut mpsc::Receiver<Message>,
    cancel: &CancellationToken,
) -> Result<()> {
    let Connection {
        peer,
        mut sender,
        mut receiver,
    } = conn;
    let session = cancel.child_token();
    let (acks_tx, acks_rx) = mpsc::channel(ACK_QUEUE);
    let deadline = match parts.settings.transport {
        HubTransportKind::WebSocket => Some(parts.settings.read_deadline()),
        HubTransportKind::Quic => None,
    };
    let reader = async {
        let result = read_loop(parts, &mut receiver, deadline, acks_tx, &session).await;
        session.cancel();
        result
    };
    let writer = async {
        let mut writer = Writer {
            parts,
            sender: &mut sender,
            acks_upstream: peer.acks_upstream,
            window: Window::new(parts.settings.ack_window, parts.settings.ack_timeout),
        };
        let result = writer.run(acks_rx, direct, &session).await;
        session.cancel();
        result
    };
    let (read, write) = tokio::join!(reader, writer);
    let ended = read.and(write);
    if ended.is_ok() {
        // Asked to stop: say goodbye. A failed link is just dropped.
        let _ = tokio::time::timeout(CLOSE_GRACE, sender.close()).await;
    }
    ended
}

/// Reads until the link fails, the deadline passes or `cancel` fires.
async fn read_loop(
    parts: &SessionParts<'_>,
    receiver: &mut LinkReceiver,
    deadline: Option<Duration>,
    acks: mpsc::Sender<String>,
    cancel: &CancellationToken,
) -> Result<()> {
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(()),
            next = recv(receiver, deadline) => next?,
        };
        let msg = match next {
            None => return Err(EdgeHubError::Closed),
            Some(Incoming::Alive) => continue,
            Some(Incoming::Message(msg)) => msg,
        };
        parts.metrics.message(DOWN);
        tracing::trace!(
            msg_id = msg.id(),
            resource = msg.resource(),
            "from the cloud"
        );
        match classify(&msg) {
            Target::UpstreamAck(msg_id) => {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Ok(()),
                    sent = acks.send(msg_id) => if sent.is_err() { return Ok(()) },
                }
            }
            target => {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Ok(()),
                    () = deliver(parts.bus, target, msg) => {}
                }
            }
        }
    }
}

/// The next frame, or [`EdgeHubError::ReadDeadline`] if none comes in time.
async fn recv(receiver: &mut LinkReceiver, deadline: Option<Duration>) -> Result<Option<Incoming>> {
    let Some(deadline) = deadline else {
        return receiver.recv().await.map_err(EdgeHubError::Link);
    };
    match tokio::time::timeout(deadline, receiver.recv()).await {
        Ok(next) => next.map_err(EdgeHubError::Link),
        Err(_elapsed) => Err(EdgeHubError::ReadDeadline(deadline)),
    }
}

/// The sending half of a session.
struct Writer<'a, 'p> {
    parts: &'a SessionParts<'p>,
    sender: &'a mut LinkSender,
    acks_upstream: bool,
    window: Window,
}

impl Writer<'_, '_> {
    async fn run(
        &mut self,
        mut acks: mpsc::Receiver<String>,
        direct: &mut mpsc::Receiver<Message>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let parts = self.parts;
        let mut stats = parts.outbox.subscribe();
        let mut keepalive = tokio::time::interval(parts.settings.heartbeat);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let last_seq = stats.borrow_and_update().last_seq;
            if let Some((after, limit)) = self.window.wants_fetch(last_seq) {
                let rows = parts.outbox.pending_from(after, limit).await?;
                self.window.on_fetched(rows, last_seq);
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                _ = keepalive.tick() => self.keepalive().await?,
                Some(msg_id) = acks.recv() => {
                    self.window.on_ack(&msg_id);
                    parts.outbox.remove(&msg_id).await?;
                }
                Some(msg) = direct.recv() => {
                    // Requests are rate limited; replies (acks) are not.
                    if msg.header.sync {
                        parts.limiter.until_ready().await;
                    }
                    self.write(&msg).await?;
                }
                () = parts.limiter.until_ready(), if self.window.has_queued() => {
                    self.send_next().await?;
                }
                changed = stats.changed() => {
                    changed.map_err(|_| super::error::OutboxError::Closed)?;
                }
            }
        }
    }

    /// Sends the heartbeat and a ping; resends the window if the cloud is
    /// overdue with an ack.
    async fn keepalive(&mut self) -> Result<()> {
        self.write(&proto::modules::keepalive()).await?;
        let deadline = self.parts.settings.write_deadline;
        tokio::time::timeout(deadline, self.sender.ping())
            .await
            .map_err(|_| EdgeHubError::WriteTimeout(deadline))?
            .map_err(EdgeHubError::Link)?;
        if self.acks_upstream && self.window.ack_overdue(Instant::now()) {
            tracing::warn!(
                in_flight = self.window.in_flight(),
                "the cloud is overdue with acks; sending the window again"
            );
            self.window.rewind();
        }
        Ok(())
    }

    /// Sends the next queued outbox row; deletes it at once unless the
    /// cloud will ack it.
    async fn send_next(&mut self) -> Result<()> {
        let Some((seq, msg)) = self.window.next_to_send() else {
            return Ok(());
        };
        self.write(&msg).await?;
        if self.acks_upstream && cloud_acks(&msg) {
            self.window.on_sent(seq, msg.id(), Instant::now());
        } else {
            self.parts.outbox.remove(msg.id()).await?;
        }
        Ok(())
    }

    async fn write(&mut self, msg: &Message) -> Result<()> {
        let deadline = self.parts.settings.write_deadline;
        tokio::time::timeout(deadline, self.sender.send(msg))
            .await
            .map_err(|_| EdgeHubError::WriteTimeout(deadline))?
            .map_err(EdgeHubError::Link)?;
        if msg.route.operation != Operation::Keepalive {
            self.parts.metrics.message(UP);
            tracing::trace!(msg_id = msg.id(), resource = msg.resource(), "to the cloud");
        }
        Ok(())
    }
}

/// Whether an acking cloud acks this message: everything but replies and
/// keepalives (docs/link-design.md, "Apiary's upstream-ack extension").
fn cloud_acks(msg: &Message) -> bool {
    !matches!(
        msg.route.operation,
        Operation::Response | Operation::Keepalive
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_not_acked_by_the_cloud() {
        let up = Message::new(
            "twin",
            "twin",
            Operation::Update,
            "device/d/twin/edge_updated",
        );
        assert!(cloud_acks(&up));
        assert!(!cloud_acks(&up.reply("OK")));
        assert!(!cloud_acks(&proto::modules::keepalive()));
        assert!(cloud_acks(&up.error_reply("no")));
    }
}
