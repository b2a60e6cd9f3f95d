//! [`CloudHubError`]: why CloudHub could not start. Once running, CloudHub
//! does not fail: a bad connection or message is logged, counted and
//! dropped.

use std::net::SocketAddr;

use thiserror::Error;

/// The result of CloudHub's fallible calls.
pub type Result<T, E = CloudHubError> = std::result::Result<T, E>;

/// Why CloudHub could not bind its listeners.
#[derive(Debug, Error)]
pub enum CloudHubError {
    /// A listen address in the configuration is not an IP address.
    #[error("modules.cloudHub.{transport}.address {address:?} is not an IP address")]
    Address {
        /// `websocket` or `quic`.
        transport: &'static str,
        /// The configured text.
        address: String,
        /// The parse error.
        #[source]
        source: std::net::AddrParseError,
    },
    /// Neither WebSocket nor QUIC is enabled.
    #[error("neither modules.cloudHub.websocket nor modules.cloudHub.quic is enabled")]
    NoListener,
    /// The WebSocket listener could not be bound.
    #[error("cannot listen for WebSocket on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The QUIC endpoint could not be started.
    #[error("cannot listen for QUIC on {addr}")]
    Quic {
        /// The address asked for.
        addr: SocketAddr,
        /// The link error.
        #[source]
        source: link::LinkError,
    },
    /// A bound listener's local address could not be read.
    #[error("cannot read the local address of the {transport} listener")]
    LocalAddr {
        /// `websocket` or `quic`.
        transport: &'static str,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
}
