//! The connect loop: dial the cloud (WebSocket or QUIC, per the settings)
//! with jittered exponential backoff, announce `cloud_connected` to the
//! twin, meta and bus groups, run the session, announce
//! `cloud_disconnected`, and dial again. While there is no connection,
//! direct requests fail at once with an error reply.
//!
//! The backoff starts again from its base after a connection that lived at
//! least one heartbeat, so a cloud that accepts and drops at once is still
//! dialled ever more slowly.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use beehive::{Bus, BusError};
use governor::DefaultDirectRateLimiter;
use proto::modules::edge;
use proto::Message;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{EdgeHubError, Result};
use super::metrics::Metrics;
use super::outbox::Outbox;
use super::outbox_store::error_chain;
use super::session::{self, SessionParts};
use super::settings::{ClientTls, EdgeHubSettings, HubTransportKind};
use super::status::{PeerInfo, StatusPublisher};

/// The groups told when the link comes up or goes down.
const CONNECTION_GROUPS: &[&str] = &[edge::TWIN, edge::META, edge::BUS];

/// The error content of a direct request made while offline.
pub(crate) const NOT_CONNECTED: &str = "edgehub: not connected to the cloud";

/// Everything the connect loop owns.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    pub(crate) settings: Arc<EdgeHubSettings>,
    pub(crate) tls: ClientTls,
    pub(crate) outbox: Outbox,
    pub(crate) metrics: Metrics,
    pub(crate) status: StatusPublisher,
    pub(crate) limiter: Arc<DefaultDirectRateLimiter>,
}

/// Dials, runs sessions and redials until `cancel` fires.
pub(crate) async fn connect_loop(
    hub: Hub,
    bus: Bus,
    mut direct: mpsc::Receiver<Message>,
    cancel: CancellationToken,
) {
    let settings = &*hub.settings;
    let mut reconnects = hub.status.reconnect_requests();
    let mut delays = backoff(settings);
    loop {
        let dialled = while_offline(&bus, &mut direct, &cancel, dial(settings, &hub.tls)).await;
        let Some(dialled) = dialled else { return };
        let mut asked = false;
        match dialled {
            Err(err) => {
                hub.metrics.dial_failure();
                tracing::warn!(server = %settings.server, error = %error_chain(&err), "cannot reach the cloud");
            }
            Ok(conn) => {
                let started = Instant::now();
                let peer = peer_info(&conn.peer);
                tracing::info!(
                    server = %settings.server, remote = %peer.remote, transport = ?peer.transport,
                    acks_upstream = peer.acks_upstream, "connected to the cloud"
                );
                hub.status.set_peer(Some(peer));
                hub.metrics.set_connected(true);
                broadcast(&bus, true).await;
                reconnects.mark_unchanged();
                let parts = SessionParts {
                    settings,
                    outbox: &hub.outbox,
                    bus: &bus,
                    metrics: &hub.metrics,
                    limiter: &hub.limiter,
                };
                let session_cancel = cancel.child_token();
                let run = session::run(&parts, conn, &mut direct, &session_cancel);
                tokio::pin!(run);
                let ended = loop {
                    tokio::select! {
                        ended = &mut run => break ended,
                        changed = reconnects.changed(), if !asked => {
                            asked = changed.is_ok();
                            session_cancel.cancel();
                        }
                    }
                };
                hub.status.set_peer(None);
                hub.metrics.set_connected(false);
                if cancel.is_cancelled() {
                    return;
                }
                match ended {
                    Ok(()) => tracing::info!("reconnecting to the cloud as asked"),
                    Err(err) => tracing::warn!(error = %error_chain(&err), "lost the cloud"),
                }
                hub.metrics.reconnect();
                broadcast(&bus, false).await;
                if started.elapsed() >= settings.heartbeat {
                    delays = backoff(settings);
                }
            }
        }
        if asked {
            continue;
        }
        let delay = delays.next().unwrap_or(settings.backoff_max);
        tracing::debug!(?delay, "waiting before dialling the cloud");
        let slept = while_offline(&bus, &mut direct, &cancel, tokio::time::sleep(delay)).await;
        if slept.is_none() {
            return;
        }
    }
}

/// Runs `work` while answering direct requests with an error; `None` if
/// `cancel` fired first.
async fn while_offline<T>(
    bus: &Bus,
    direct: &mut mpsc::Receiver<Message>,
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return None,
            done = &mut work => return Some(done),
            Some(msg) = direct.recv() => {
                if msg.header.sync {
                    fail_request(bus, &msg);
                } else {
                    tracing::debug!(msg_id = msg.id(), "reply dropped while offline; the cloud will resend");
                }
            }
        }
    }
}

/// Answers a request that cannot reach the cloud.
pub(crate) fn fail_request(bus: &Bus, request: &Message) {
    tracing::debug!(
        msg_id = request.id(),
        resource = request.resource(),
        "request while offline"
    );
    bus.respond(request.error_reply(NOT_CONNECTED));
}

/// Redial delays: `backoff_base` doubling to `backoff_max`, jittered, forever.
fn backoff(settings: &EdgeHubSettings) -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::default()
        .with_jitter()
        .with_factor(2.0)
        .with_min_delay(settings.backoff_base)
        .with_max_delay(settings.backoff_max)
        .without_max_times()
        .build()
}

/// One connection attempt within the handshake timeout.
async fn dial(settings: &EdgeHubSettings, tls: &ClientTls) -> Result<link::Connection> {
    let dial = link::Dial {
        server: settings.server.clone(),
        server_name: settings.server_name.clone(),
        project_id: settings.project_id.clone(),
        node_id: settings.node_id.clone(),
        tls: tls.current()?,
        limits: link::Limits {
            max_frame: settings.max_frame,
            handshake_timeout: settings.handshake_timeout,
        },
    };
    let attempt = async {
        match settings.transport {
            HubTransportKind::WebSocket => link::ws_connect(&dial).await,
            HubTransportKind::Quic => {
                link::quic_connect(&dial, settings.heartbeat, settings.read_deadline()).await
            }
        }
    };
    match tokio::time::timeout(settings.handshake_timeout, attempt).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(EdgeHubError::Dial {
            server: settings.server.clone(),
            source,
        }),
        Err(_elapsed) => Err(EdgeHubError::DialTimeout {
            server: settings.server.clone(),
            timeout: settings.handshake_timeout,
        }),
    }
}

fn peer_info(peer: &link::Peer) -> PeerInfo {
    PeerInfo {
        node_id: peer.node_id.clone(),
        project_id: peer.project_id.clone(),
        remote: peer.remote,
        transport: match peer.transport {
            link::Transport::WebSocket => HubTransportKind::WebSocket,
            link::Transport::Quic => HubTransportKind::Quic,
        },
        acks_upstream: peer.acks_upstream,
    }
}

/// Tells the twin, meta and bus groups that the link is up or down; groups
/// with no member here are skipped.
async fn broadcast(bus: &Bus, connected: bool) {
    for group in CONNECTION_GROUPS {
        let msg = proto::modules::connection_message(group, connected);
        match bus.send_to_group(group, msg).await {
            Ok(_) | Err(BusError::UnknownGroup { .. }) => {}
            Err(err) => tracing::warn!(group, %err, "cannot announce the connection state"),
        }
    }
}
