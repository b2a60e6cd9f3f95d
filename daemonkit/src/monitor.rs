//! The operator endpoints both daemons serve on their monitor address:
//! `/metrics` (Prometheus text, from a `prometheus-client` registry),
//! `/healthz` (the process is up) and `/readyz` (the daemon says it is ready).
//!
//! Served by actix-web with one worker; the server stops when the
//! cancellation token fires.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the monitor server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The address could not be bound.
    #[error("cannot listen on {addr} for metrics")]
    Bind {
        /// The configured address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

struct State {
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
}

/// A running monitor server.
pub struct Monitor {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The server task; ends after cancellation.
    pub task: JoinHandle<()>,
}

/// Binds `addr` and serves the monitor endpoints until `cancel` fires.
pub fn serve(
    addr: &str,
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
    cancel: CancellationToken,
) -> Result<Monitor, MonitorError> {
    let bind_error = |source| MonitorError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let state = web::Data::new(State { registry, ready });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(bind_error)?
    .run();
    let task = tokio::spawn(async move {
        if let Err(err) = crate::http::serve_until(server, cancel).await {
            tracing::error!(%err, "monitor server failed");
        }
    });
    tracing::info!(addr = %bound, "monitor listening (/metrics, /healthz, /readyz)");
    Ok(Monitor { addr: bound, task })
}

async fn metrics(state: web::Data<State>) -> HttpResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => HttpResponse::Ok()
            .content_type(METRICS_CONTENT_TYPE)
            .body(text),
        Err(err) => HttpResponse::InternalServerError().body(format!("encoding metrics: {err}")),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    if *state.ready.borrow() {
        HttpResponse::Ok().body("ok")
    } else {
        HttpResponse::ServiceUnavailable().body("not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_metrics_health_and_readiness() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("demo_events", "Events seen", counter.clone());
        counter.inc();
        let (ready_tx, ready) = watch::channel(false);
        let cancel = CancellationToken::new();
        let monitor = serve("127.0.0.1:0", Arc::new(registry), ready, cancel.clone()).unwrap();

        let metrics = get(monitor.addr, "/metrics").await;
        assert!(metrics.contains("demo_events_total 1"), "{metrics}");
        assert!(get(monitor.addr, "/healthz")
            .await
            .starts_with("HTTP/1.1 200"));
        assert!(get(monitor.addr, "/readyz")
            .await
            .starts_with("HTTP/1.1 503"));
        ready_tx.send_replace(true);
        assert!(get(monitor.addr, "/readyz")
            .await
            .starts_with("HTTP/1.1 200"));

        cancel.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), monitor.task)
            .await
            .expect("monitor stops on cancel")
            .unwrap();
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let (_tx, ready) = watch::channel(true);
        let err = serve(&addr, Arc::default(), ready, CancellationToken::new())
            .err()
            .expect("port in use");
        assert!(err.to_string().contains(&addr), "{err}");
    }
}
