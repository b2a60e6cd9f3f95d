//! The MetaServer: a Kubernetes-style, read-only HTTP API at
//! `modules.metaManager.metaServer.server` (default `127.0.0.1:10550`)
//! over MetaManager's store, so that `kubectl --server
//! http://127.0.0.1:10550 get pods` works at the edge whether or not the
//! cloud is reachable. The routes are [`kubestore::rest`]'s; writes are
//! refused (the cloud owns the objects).
//!
//! KubeEdge's MetaServer first asks the cloud's DynamicController for
//! get/list; Apiary answers from the local store, which the cloud keeps
//! current, so answers do not depend on the link.

use std::net::SocketAddr;

use actix_web::{App, HttpServer};
use kubestore::rest::{self, RestConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Watch streams get this long to end when the server stops.
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;

/// The MetaServer could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetaServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr} for the MetaServer (modules.metaManager.metaServer.server)")]
    Bind {
        /// The configured address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A running MetaServer.
#[derive(Debug)]
pub struct MetaServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Ends once the server has stopped.
    pub task: JoinHandle<()>,
}

/// Binds `addr` and serves `rest` until `cancel` fires (which also ends
/// every watch stream).
pub fn serve(
    addr: &str,
    mut rest: RestConfig,
    cancel: CancellationToken,
) -> Result<MetaServer, MetaServerError> {
    rest.shutdown = cancel.clone();
    let bind_error = |source| MetaServerError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let server = HttpServer::new(move || {
        let rest = rest.clone();
        App::new().configure(move |cfg| rest::configure(cfg, rest))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)
    .map_err(bind_error)?
    .run();
    let task = tokio::spawn(async move {
        if let Err(err) = daemonkit::http::serve_until(server, cancel).await {
            tracing::error!(%err, "MetaServer failed");
        }
    });
    tracing::info!(addr = %bound, "MetaServer listening (read-only Kubernetes API over the edge store)");
    Ok(MetaServer { addr: bound, task })
}
