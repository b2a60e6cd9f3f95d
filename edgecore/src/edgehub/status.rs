//! What EdgeHub tells the rest of the daemon: [`EdgeHubStatus`], a cheap
//! handle over `watch` channels (connected or not, who the peer is, how
//! many messages wait in the outbox), for node status, readiness and tests.
//! It also carries one command, [`EdgeHubStatus::reconnect`], for the
//! certificate manager after a rotation.

use std::net::SocketAddr;

use tokio::sync::watch;

use super::outbox::OutboxStats;
use super::settings::HubTransportKind;

/// The cloud end of the current connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// This node's name as the cloud accepted it.
    pub node_id: String,
    /// The project id sent.
    pub project_id: String,
    /// The cloud's address.
    pub remote: SocketAddr,
    /// WebSocket or QUIC.
    pub transport: HubTransportKind,
    /// Whether the cloud acks upstream messages (an Apiary cloud); if not,
    /// outbox rows are deleted once written to the socket.
    pub acks_upstream: bool,
}

/// A read-only view of EdgeHub (plus [`reconnect`](Self::reconnect)).
#[derive(Debug, Clone)]
pub struct EdgeHubStatus {
    connected: watch::Receiver<bool>,
    peer: watch::Receiver<Option<PeerInfo>>,
    outbox: watch::Receiver<OutboxStats>,
    reconnect: watch::Sender<u64>,
}

impl EdgeHubStatus {
    /// Whether the link to the cloud is up now.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// A receiver of the connected flag, to wait for a change.
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    /// The current peer, while connected.
    pub fn peer(&self) -> Option<PeerInfo> {
        self.peer.borrow().clone()
    }

    /// Messages waiting in the outbox.
    pub fn outbox_len(&self) -> u64 {
        self.outbox.borrow().len
    }

    /// Drops the current connection (if any) and dials again at once, e.g.
    /// after the client certificate was renewed.
    pub fn reconnect(&self) {
        self.reconnect.send_modify(|generation| *generation += 1);
    }
}

/// The writing side, owned by the module.
#[derive(Debug, Clone)]
pub(crate) struct StatusPublisher {
    connected: watch::Sender<bool>,
    peer: watch::Sender<Option<PeerInfo>>,
    outbox: watch::Receiver<OutboxStats>,
    reconnect: watch::Sender<u64>,
}

impl StatusPublisher {
    pub(crate) fn new(outbox: watch::Receiver<OutboxStats>) -> Self {
        StatusPublisher {
            connected: watch::channel(false).0,
            peer: watch::channel(None).0,
            outbox,
            reconnect: watch::channel(0).0,
        }
    }

    /// A new read handle.
    pub(crate) fn status(&self) -> EdgeHubStatus {
        EdgeHubStatus {
            connected: self.connected.subscribe(),
            peer: self.peer.subscribe(),
            outbox: self.outbox.clone(),
            reconnect: self.reconnect.clone(),
        }
    }

    /// Publishes a new connection, or none.
    pub(crate) fn set_peer(&self, peer: Option<PeerInfo>) {
        self.connected.send_replace(peer.is_some());
        self.peer.send_replace(peer);
    }

    /// A receiver that changes whenever a reconnect is asked for.
    pub(crate) fn reconnect_requests(&self) -> watch::Receiver<u64> {
        self.reconnect.subscribe()
    }
}
