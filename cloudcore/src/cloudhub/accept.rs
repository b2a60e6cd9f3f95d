//! The accept loops, one per transport. Each takes a bound listener, caps
//! sessions with a `nodeLimit` semaphore (a connection over the cap is
//! refused before its handshake), runs every handshake on its own task, and
//! hands established connections to the hub loop. Refusals and failed
//! handshakes are logged with the remote address and counted by reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use link::{AcceptError, Connection, Limits, WsAcceptor};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::metrics::Metrics;

/// Pause after a failed `accept` (e.g. out of file descriptors), so the
/// loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// An established connection and the session slot it holds.
pub(crate) struct Accepted {
    /// The connection.
    pub(crate) conn: Connection,
    /// Released when the session ends.
    pub(crate) permit: OwnedSemaphorePermit,
}

/// What both accept loops share.
#[derive(Clone)]
pub(crate) struct AcceptShared {
    /// The `nodeLimit` cap.
    pub(crate) limit: Arc<Semaphore>,
    /// To the hub loop.
    pub(crate) out: mpsc::Sender<Accepted>,
    /// Refusals are counted here.
    pub(crate) metrics: Metrics,
    /// Handshake tasks are spawned here.
    pub(crate) tracker: TaskTracker,
    /// Stops the loop and pending handshakes.
    pub(crate) cancel: CancellationToken,
}

impl AcceptShared {
    /// A session slot, or `None` (counted and logged) when `nodeLimit`
    /// sessions are open.
    fn permit(&self, remote: SocketAddr, transport: &'static str) -> Option<OwnedSemaphorePermit> {
        match self.limit.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::warn!(%remote, transport, "refusing a connection: nodeLimit reached");
                self.metrics.refused("node_limit");
                None
            }
        }
    }

    /// Runs `handshake` on its own task and passes its connection on.
    fn spawn_handshake<F>(
        &self,
        remote: SocketAddr,
        transport: &'static str,
        permit: OwnedSemaphorePermit,
        handshake: F,
    ) where
        F: std::future::Future<Output = Result<Connection, AcceptError>> + Send + 'static,
    {
        let shared = self.clone();
        self.tracker.spawn(async move {
            let result = tokio::select! {
                () = shared.cancel.cancelled() => return,
                result = handshake => result,
            };
            match result {
                Ok(conn) => {
                    let _ = shared.out.send(Accepted { conn, permit }).await;
                }
                Err(error) => {
                    tracing::warn!(%remote, transport, reason = error.reason(), %error,
                        "refused a connection");
                    shared.metrics.refused(error.reason());
                }
            }
        });
    }
}

/// Accepts WebSocket connections on `listener` until cancelled.
pub(crate) async fn ws_loop(listener: TcpListener, acceptor: WsAcceptor, shared: AcceptShared) {
    let acceptor = Arc::new(acceptor);
    loop {
        let accepted = tokio::select! {
            () = shared.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "accepting a TCP connection failed");
                tokio::select! {
                    () = shared.cancel.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let Some(permit) = shared.permit(remote, "websocket") else {
            drop(tcp);
            continue;
        };
        let acceptor = acceptor.clone();
        shared.spawn_handshake(remote, "websocket", permit, async move {
            acceptor.accept(tcp, remote).await
        });
    }
}

/// Accepts QUIC connections on `endpoint` until cancelled or closed.
pub(crate) async fn quic_loop(endpoint: quinn::Endpoint, limits: Limits, shared: AcceptShared) {
    loop {
        let incoming = tokio::select! {
            () = shared.cancel.cancelled() => return,
            incoming = endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else {
            return;
        };
        let remote = incoming.remote_address();
        let Some(permit) = shared.permit(remote, "quic") else {
            incoming.refuse();
            continue;
        };
        shared.spawn_handshake(remote, "quic", permit, async move {
            link::quic_accept(incoming, &limits).await
        });
    }
}
