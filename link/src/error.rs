//! The link's error types.
//!
//! - [`TlsError`]: loading credentials, building rustls configs, reading a
//!   node identity out of a certificate.
//! - [`LinkError`]: dialling, sending and receiving on an established
//!   connection (both transports).
//! - [`AcceptError`]: a server refusing or failing an incoming connection;
//!   [`AcceptError::reason`] names it for the "refused connections" metric.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use proto::CodecError;
use thiserror::Error;

/// A result whose error defaults to [`LinkError`].
pub type Result<T, E = LinkError> = std::result::Result<T, E>;

/// Credentials, rustls configs or a certificate's identity went wrong.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A credentials file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A PEM input is not valid PEM.
    #[error("invalid PEM in the {what}")]
    Pem {
        /// Which input: `CA`, `certificate` or `key`.
        what: &'static str,
        /// What the PEM parser said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM input holds no certificate.
    #[error("no certificate in the {what}")]
    NoCertificate {
        /// Which input: `CA` or `certificate`.
        what: &'static str,
    },
    /// rustls refused the configuration (bad key, key not matching the
    /// certificate, unusable CA, ...).
    #[error("TLS configuration refused")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the CA.
    #[error("cannot build the client certificate verifier")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The server name to verify is neither a DNS name nor an IP address.
    #[error("invalid server name {name:?}")]
    ServerName {
        /// The name given.
        name: String,
    },
    /// The config has no TLS 1.3 suite QUIC can start with.
    #[error("TLS config unusable for QUIC")]
    Quic(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
    /// A certificate is not valid X.509 DER.
    #[error("malformed certificate")]
    Certificate(#[source] x509_parser::error::X509Error),
    /// The certificate's subject CN is not `system:node:<name>`.
    #[error("certificate CN {cn:?} does not name a node (system:node:<name>)")]
    NotANode {
        /// The CN found, if any.
        cn: Option<String>,
    },
}

/// An established link (or one being dialled) failed.
#[derive(Debug, Error)]
pub enum LinkError {
    /// A socket operation failed (TCP connect, TLS, UDP bind, DNS).
    #[error("I/O error")]
    Io(#[from] io::Error),
    /// Credentials or TLS configuration are unusable.
    #[error("TLS setup failed")]
    Tls(#[from] TlsError),
    /// The WebSocket layer failed (handshake or protocol).
    #[error("WebSocket error")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The QUIC connection failed or was closed abnormally.
    #[error("QUIC connection error")]
    Quic(#[from] quinn::ConnectionError),
    /// A QUIC connection could not be started (bad address or config).
    #[error("cannot start a QUIC connection")]
    QuicConnect(#[from] quinn::ConnectError),
    /// A frame is malformed or over the size cap. The connection should be
    /// closed.
    #[error("bad frame")]
    Frame(#[from] CodecError),
    /// The connection (or its stream) is already closed.
    #[error("connection closed")]
    Closed,
    /// A handshake step or the connection's idle timer ran out.
    #[error("timed out")]
    Timeout,
    /// The server refused the connection: the HTTP status of the upgrade
    /// response, or for QUIC the close code after a `nack`.
    #[error("refused by the server with status {status}")]
    Refused {
        /// HTTP-like status: 400 bad header, 403 identity mismatch, ...
        status: u16,
    },
    /// A value cannot be sent as an HTTP header.
    #[error("invalid {name} header value {value:?}")]
    BadHeader {
        /// The header.
        name: &'static str,
        /// The value refused.
        value: String,
    },
    /// The server address resolved to nothing.
    #[error("{server:?} resolves to no address")]
    Resolve {
        /// The `host:port` given.
        server: String,
    },
    /// A timeout is out of the range QUIC can express.
    #[error("{what} of {value:?} is out of range")]
    BadTimeout {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: Duration,
    },
    /// The peer broke the link protocol (e.g. an unexpected QUIC reply).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

impl From<tokio_tungstenite::tungstenite::Error> for LinkError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
        match e {
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                LinkError::Frame(CodecError::FrameTooLarge {
                    len: size,
                    max: max_size,
                })
            }
            WsError::ConnectionClosed | WsError::AlreadyClosed => LinkError::Closed,
            WsError::Http(resp) => LinkError::Refused {
                status: resp.status().as_u16(),
            },
            other => LinkError::WebSocket(Box::new(other)),
        }
    }
}

impl From<quinn::ReadError> for LinkError {
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::ConnectionLost(c) => LinkError::from_quic(c),
            _ => LinkError::Closed,
        }
    }
}

impl From<quinn::WriteError> for LinkError {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(c) => LinkError::from_quic(c),
            _ => LinkError::Closed,
        }
    }
}

impl LinkError {
    /// A QUIC connection error, with the idle timeout as [`LinkError::Timeout`]
    /// and a local close as [`LinkError::Closed`].
    pub(crate) fn from_quic(e: quinn::ConnectionError) -> Self {
        match e {
            quinn::ConnectionError::TimedOut => LinkError::Timeout,
            quinn::ConnectionError::LocallyClosed => LinkError::Closed,
            other => LinkError::Quic(other),
        }
    }
}

/// Why a server did not accept an incoming connection.
#[derive(Debug, Error)]
pub enum AcceptError {
    /// The TLS handshake failed (bad or untrusted certificate, protocol).
    #[error("TLS handshake failed")]
    Tls(#[source] LinkError),
    /// The client presented no certificate.
    #[error("client presented no certificate")]
    NoClientCert,
    /// The client certificate does not name a node.
    #[error("client certificate carries no node identity")]
    BadIdentity(#[source] TlsError),
    /// The `node_id` the client claims is not the one in its certificate.
    #[error("node_id {claimed:?} does not match certificate node {cert:?}")]
    NodeMismatch {
        /// The node in the `node_id` header (QUIC: header message).
        claimed: String,
        /// The node in the certificate's CN.
        cert: String,
    },
    /// A required header is absent or empty.
    #[error("missing {name} header")]
    MissingHeader {
        /// The header (`node_id`, `project_id`, or `header` for a QUIC
        /// first message that is not a header message).
        name: &'static str,
    },
    /// The WebSocket upgrade or QUIC stream setup failed after TLS.
    #[error("link handshake failed")]
    Handshake(#[source] LinkError),
    /// The handshake did not finish within `Limits::handshake_timeout`.
    #[error("handshake timed out")]
    Timeout,
    /// The QUIC header frame is malformed or over the cap.
    #[error("bad header frame")]
    Frame(#[source] CodecError),
}

impl AcceptError {
    /// A short, fixed label for metrics: `tls`, `no_client_cert`,
    /// `bad_identity`, `node_mismatch`, `missing_header`, `handshake`,
    /// `timeout` or `frame`.
    pub fn reason(&self) -> &'static str {
        match self {
            AcceptError::Tls(_) => "tls",
            AcceptError::NoClientCert => "no_client_cert",
            AcceptError::BadIdentity(_) => "bad_identity",
            AcceptError::NodeMismatch { .. } => "node_mismatch",
            AcceptError::MissingHeader { .. } => "missing_header",
            AcceptError::Handshake(_) => "handshake",
            AcceptError::Timeout => "timeout",
            AcceptError::Frame(_) => "frame",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_the_metric_labels() {
        let all = [
            AcceptError::Tls(LinkError::Closed),
            AcceptError::NoClientCert,
            AcceptError::BadIdentity(TlsError::NotANode { cn: None }),
            AcceptError::NodeMismatch {
                claimed: "a".into(),
                cert: "b".into(),
            },
            AcceptError::MissingHeader { name: "node_id" },
            AcceptError::Handshake(LinkError::Closed),
            AcceptError::Timeout,
            AcceptError::Frame(CodecError::FrameTooLarge { len: 2, max: 1 }),
        ];
        let reasons: Vec<_> = all.iter().map(AcceptError::reason).collect();
        assert_eq!(
            reasons,
            [
                "tls",
                "no_client_cert",
                "bad_identity",
                "node_mismatch",
                "missing_header",
                "handshake",
                "timeout",
                "frame"
            ]
        );
    }

    #[test]
    fn oversized_ws_message_is_a_frame_error() {
        use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
        let e = LinkError::from(WsError::Capacity(CapacityError::MessageTooLong {
            size: 10,
            max_size: 5,
        }));
        assert!(matches!(
            e,
            LinkError::Frame(CodecError::FrameTooLarge { len: 10, max: 5 })
        ));
    }
}
