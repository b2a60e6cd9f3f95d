//! The HTTPS certificate server (`modules.cloudHub.https`, KubeEdge's port
//! 10002): edges download the CA and exchange a join token, or their current
//! certificate, for a client certificate (reference §2 "Join token and
//! certificates").
//!
//! - `GET /ca.crt`: the CA certificate, DER. No client certificate needed.
//! - `GET /edge.crt`: body a DER CSR (at most [`MAX_CSR_BYTES`]), header
//!   `NodeName`, and either `Authorization: Bearer <jwt>` or a client
//!   certificate of that same node (rotation over mTLS); answers a DER
//!   client certificate valid `edgeCertSigningDuration` days. Refusals are
//!   plain text: 400 bad CSR or node name, 401 bad or missing token,
//!   403 identity mismatch, 413 body too large.
//!
//! Served by actix-web (the project's HTTP framework) over rustls with the
//! ring provider. actix-web runs its workers on their own threads while the
//! server future lives in the caller's tokio runtime, so [`CertServer::serve`]
//! is an ordinary cancellable task: on cancellation it stops the workers
//! gracefully and returns. Client certificates are optional at the TLS level
//! (verified against the CA when presented) and checked per route.

mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use crate::config::Listener;
use crate::pki::Pki;

/// The largest CSR body accepted on `/edge.crt`.
pub const MAX_CSR_BYTES: usize = 64 * 1024;
/// Concurrent connections per worker.
const MAX_CONNECTIONS: usize = 256;
/// Time allowed for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds in-flight requests get after cancellation.
const SHUTDOWN_GRACE_SECS: u64 = 5;

/// Why the certificate server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CertServerError {
    /// The address could not be bound.
    #[error("certificate server: cannot listen on {addr}")]
    Bind {
        /// The configured address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration could not be built from the PKI.
    #[error("certificate server: TLS configuration")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("certificate server: client certificate verifier")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The HTTP server failed.
    #[error("certificate server failed")]
    Serve(#[source] std::io::Error),
}

/// Result of the certificate server.
pub type Result<T, E = CertServerError> = std::result::Result<T, E>;

/// A bound, not yet serving certificate server.
#[derive(Debug)]
pub struct CertServer {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

/// A client certificate presented during the TLS handshake (already
/// verified against the CA by rustls), stored as connection data.
#[derive(Debug, Clone)]
struct PeerCert(CertificateDer<'static>);

impl CertServer {
    /// Binds `modules.cloudHub.https` (`address:port`; port 0 picks one).
    pub fn bind(https: &Listener) -> Result<CertServer> {
        let addr = if https.address.contains(':') {
            format!("[{}]:{}", https.address, https.port)
        } else {
            format!("{}:{}", https.address, https.port)
        };
        let bind_error = |source| CertServerError::Bind {
            addr: addr.clone(),
            source,
        };
        let listener = std::net::TcpListener::bind(&addr).map_err(bind_error)?;
        CertServer::from_listener(listener).map_err(|e| match e {
            CertServerError::Bind { source, .. } => bind_error(source),
            other => other,
        })
    }

    /// Serves on an already bound listener.
    pub fn from_listener(listener: std::net::TcpListener) -> Result<CertServer> {
        let addr = listener
            .local_addr()
            .map_err(|source| CertServerError::Bind {
                addr: "listener".to_owned(),
                source,
            })?;
        Ok(CertServer { listener, addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the routes until `cancel` fires, then lets in-flight requests
    /// finish (a few seconds at most) and returns.
    pub async fn serve(self, pki: Arc<Pki>, cancel: CancellationToken) -> Result<()> {
        let tls = tls_config(&pki)?;
        let state = web::Data::new(routes::State { pki });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/ca.crt", web::get().to(routes::ca_crt))
                .route("/edge.crt", web::get().to(routes::edge_crt))
                .default_service(web::to(routes::not_found))
        })
        .workers(2)
        .max_connections(MAX_CONNECTIONS)
        .tls_handshake_timeout(HANDSHAKE_TIMEOUT)
        .shutdown_timeout(SHUTDOWN_GRACE_SECS)
        .disable_signals()
        .on_connect(remember_peer_cert)
        .listen_rustls_0_23(self.listener, tls)
        .map_err(|source| CertServerError::Bind {
            addr: self.addr.to_string(),
            source,
        })?
        .run();
        tracing::info!(addr = %self.addr, "certificate server listening (/ca.crt, /edge.crt)");
        daemonkit::http::serve_until(server, cancel)
            .await
            .map_err(CertServerError::Serve)?;
        tracing::info!("certificate server stopped");
        Ok(())
    }
}

/// Serves `pki` on `listener` until `cancel` fires: [`CertServer::from_listener`]
/// then [`CertServer::serve`].
pub async fn serve(
    listener: std::net::TcpListener,
    pki: Arc<Pki>,
    cancel: CancellationToken,
) -> Result<()> {
    CertServer::from_listener(listener)?
        .serve(pki, cancel)
        .await
}

/// TLS 1.2+ with the server certificate; client certificates optional but,
/// when presented, they must chain to the CA and allow client auth.
fn tls_config(pki: &Pki) -> Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der().clone())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server_chain(), pki.server_key())?;
    Ok(config)
}

fn remember_peer_cert(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(tls) = conn.downcast_ref::<Tls>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    if let Some(leaf) = session.peer_certificates().and_then(<[_]>::first) {
        ext.insert(PeerCert(leaf.clone().into_owned()));
    }
}
