//! What EdgeHub runs with: [`EdgeHubSettings`] (from `modules.edgeHub`, plus
//! the knobs tests turn: heartbeat, backoff, ack window) and [`ClientTls`],
//! the source of the TLS client configuration, asked again at every dial
//! so rotated certificates are picked up on the next connection.

use std::sync::Arc;
use std::time::Duration;

use beehive::BoxError;

use super::error::{EdgeHubError, Result};
use crate::config::EdgeHub;

/// Largest frame accepted from the cloud (KubeEdge's QUIC cap).
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

/// First redial delay before jitter.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);

/// Longest redial delay before jitter.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Unacked upstream messages allowed in flight.
pub const DEFAULT_ACK_WINDOW: usize = 64;

/// How long the oldest unacked message may wait before the window is sent
/// again.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Which transport carries the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubTransportKind {
    /// WebSocket over TLS (`modules.edgeHub.websocket`).
    WebSocket,
    /// IETF QUIC (`modules.edgeHub.quic`).
    Quic,
}

/// EdgeHub's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeHubSettings {
    /// This node's name (the certificate's `system:node:<name>`).
    pub node_id: String,
    /// The project id in the WebSocket URL.
    pub project_id: String,
    /// The cloud's `host:port`.
    pub server: String,
    /// The TLS server name to verify (the host part of `server`).
    pub server_name: String,
    /// WebSocket or QUIC.
    pub transport: HubTransportKind,
    /// Keepalive period; the read deadline is twice this.
    pub heartbeat: Duration,
    /// Limit on connecting (TCP/UDP, TLS and protocol handshake).
    pub handshake_timeout: Duration,
    /// Limit on one write.
    pub write_deadline: Duration,
    /// Upstream messages per second.
    pub message_qps: f64,
    /// Upstream burst.
    pub message_burst: u32,
    /// First redial delay (doubling, jittered).
    pub backoff_base: Duration,
    /// Cap on the redial delay.
    pub backoff_max: Duration,
    /// Unacked upstream messages allowed in flight.
    pub ack_window: usize,
    /// Resend the window when the oldest message waited this long.
    pub ack_timeout: Duration,
    /// Largest frame accepted.
    pub max_frame: usize,
}

impl EdgeHubSettings {
    /// Settings from `modules.edgeHub` for node `node_id`, with Apiary's
    /// defaults for what the file does not say.
    pub fn from_config(hub: &EdgeHub, node_id: &str) -> Result<Self> {
        let (transport, t, key) = match (hub.websocket.enable, hub.quic.enable) {
            (true, false) => (
                HubTransportKind::WebSocket,
                &hub.websocket,
                "modules.edgeHub.websocket.server",
            ),
            (false, true) => (
                HubTransportKind::Quic,
                &hub.quic,
                "modules.edgeHub.quic.server",
            ),
            _ => {
                return Err(EdgeHubError::Settings {
                    key: "modules.edgeHub.websocket.enable",
                    reason: "exactly one of websocket and quic must be enabled".into(),
                })
            }
        };
        if node_id.is_empty() {
            return Err(EdgeHubError::Settings {
                key: "node name",
                reason: "must not be empty".into(),
            });
        }
        let server_name = host_of(&t.server).ok_or_else(|| EdgeHubError::Settings {
            key,
            reason: format!("{:?} is not host:port", t.server),
        })?;
        if !(hub.message_qps.is_finite() && hub.message_qps > 0.0) {
            return Err(EdgeHubError::Settings {
                key: "modules.edgeHub.messageQPS",
                reason: "must be a number greater than 0".into(),
            });
        }
        let secs = |s: u32| Duration::from_secs(u64::from(s.max(1)));
        Ok(EdgeHubSettings {
            node_id: node_id.to_owned(),
            project_id: hub.project_id.clone(),
            server: t.server.clone(),
            server_name,
            transport,
            heartbeat: secs(hub.heartbeat),
            handshake_timeout: secs(t.handshake_timeout),
            write_deadline: secs(t.write_deadline),
            message_qps: hub.message_qps,
            message_burst: hub.message_burst.max(1),
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            ack_window: DEFAULT_ACK_WINDOW,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            max_frame: MAX_FRAME,
        })
    }

    /// Overrides the heartbeat (tests use milliseconds).
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat.max(Duration::from_millis(1));
        self
    }

    /// Overrides the redial backoff.
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    /// The read deadline: two heartbeats.
    pub fn read_deadline(&self) -> Duration {
        self.heartbeat * 2
    }
}

/// The host part of `host:port` (`[v6]:port` too), if there is a port.
fn host_of(server: &str) -> Option<String> {
    let (host, port) = server.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| host.to_owned())
}

type TlsFn = dyn Fn() -> std::result::Result<Arc<rustls::ClientConfig>, BoxError> + Send + Sync;

/// Where the TLS client configuration comes from: fixed, or produced anew
/// for every dial (certificates rotate).
#[derive(Clone)]
pub struct ClientTls(Arc<TlsFn>);

impl ClientTls {
    /// Always the same configuration.
    pub fn fixed(config: Arc<rustls::ClientConfig>) -> Self {
        ClientTls(Arc::new(move || Ok(config.clone())))
    }

    /// Asks `make` at every dial; an error counts as a failed dial.
    pub fn from_fn(
        make: impl Fn() -> std::result::Result<Arc<rustls::ClientConfig>, BoxError>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        ClientTls(Arc::new(make))
    }

    /// The configuration for the next dial.
    pub(crate) fn current(&self) -> Result<Arc<rustls::ClientConfig>> {
        (self.0)().map_err(EdgeHubError::Tls)
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_config() {
        let mut hub = EdgeHub::default();
        let s = EdgeHubSettings::from_config(&hub, "edge-1").unwrap();
        assert_eq!(s.transport, HubTransportKind::WebSocket);
        assert_eq!(s.server, "127.0.0.1:10000");
        assert_eq!(s.server_name, "127.0.0.1");
        assert_eq!(s.heartbeat, Duration::from_secs(15));
        assert_eq!(s.read_deadline(), Duration::from_secs(30));
        assert_eq!(s.message_burst, 60);

        hub.websocket.enable = false;
        hub.quic.enable = true;
        hub.quic.server = "[::1]:10001".into();
        let s = EdgeHubSettings::from_config(&hub, "edge-1").unwrap();
        assert_eq!(
            (s.transport, s.server_name.as_str()),
            (HubTransportKind::Quic, "::1")
        );
        let s = s.with_heartbeat(Duration::from_millis(200));
        assert_eq!(s.read_deadline(), Duration::from_millis(400));
    }

    #[test]
    fn unusable_settings_name_the_key() {
        let mut hub = EdgeHub::default();
        hub.websocket.server = "nohost".into();
        let err = EdgeHubSettings::from_config(&hub, "edge-1").unwrap_err();
        assert!(
            err.to_string().contains("modules.edgeHub.websocket.server"),
            "{err}"
        );
        hub.quic.enable = true;
        assert!(EdgeHubSettings::from_config(&hub, "edge-1").is_err());
        assert!(EdgeHubSettings::from_config(&EdgeHub::default(), "").is_err());
    }
}
