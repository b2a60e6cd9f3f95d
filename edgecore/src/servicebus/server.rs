//! Local app → cloud: the HTTP listener at `modules.serviceBus.server:port`
//! (default `127.0.0.1:9060`).
//!
//! An app sends `{method, targetURL, payload}` (any method, any path, e.g.
//! `POST /`). ServiceBus checks `targetURL` against `target_urls`, then
//! sends the cloud a request as KubeEdge's does — op `upload`, source
//! `servicebus`, group `user`, **resource = the target URL**, content = the
//! whole request body as Go sends a `[]byte` (a base64 string) — and waits
//! for the answer up to `modules.serviceBus.timeout`.
//!
//! The app gets `{code, msg, body}` as JSON, `body` being the cloud's
//! answer as text. Unlike KubeEdge, which always answers HTTP 200 and puts
//! the code only in the JSON, the HTTP status here is the same as `code`:
//!
//! | code | when |
//! |------|------|
//! | 200 | the cloud answered |
//! | 400 | the body is not `{method, targetURL, payload}` JSON (the reason is in `msg`) |
//! | 403 | `targetURL` is not allowed (KubeEdge: 400) |
//! | 408 | the body did not arrive within the timeout |
//! | 413 | the body is over 5 MiB |
//! | 502 | the cloud answered with an error |
//! | 503 | EdgeHub is not connected (answered at once), or edgecore is stopping |
//! | 504 | no answer within the timeout |
//! | 500 | the `target_urls` table could not be read |

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use beehive::{Bus, BusError};
use proto::modules::{edge, group};
use proto::{Message, Operation};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::call::MAX_BODY;
use super::error::{Result, ServiceBusError};
use super::metrics::{Metrics, EDGE_TO_CLOUD};
use super::targets;
use super::wire::{self, AppRequest, AppResponse};

/// Open connections from local apps, at most.
const MAX_CONNECTIONS: usize = 256;

/// In-flight requests get this long to finish when the server stops.
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;

/// What every request handler needs.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) db: tokio_rusqlite::Connection,
    pub(crate) bus: Bus,
    /// EdgeHub's connected flag; `None` when there is no EdgeHub status
    /// (requests are then tried and fail or time out).
    pub(crate) connected: Option<watch::Receiver<bool>>,
    pub(crate) timeout: Duration,
    pub(crate) metrics: Metrics,
    pub(crate) cancel: CancellationToken,
}

impl AppState {
    fn is_connected(&self) -> bool {
        self.connected.as_ref().is_none_or(|rx| *rx.borrow())
    }
}

/// An actix server on `listener` answering local apps until stopped.
pub(crate) fn serve(listener: TcpListener, state: AppState) -> Result<Server> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(handle))
    })
    .workers(1)
    .disable_signals()
    .max_connections(MAX_CONNECTIONS)
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)
    .map_err(|source| ServiceBusError::Bind { addr, source })?
    .run();
    Ok(server)
}

async fn handle(state: web::Data<AppState>, body: web::Payload) -> HttpResponse {
    let answer = tokio::select! {
        answer = forward(&state, body) => answer,
        () = state.cancel.cancelled() => AppResponse::error(503, "edgecore is stopping"),
    };
    state.metrics.request(EDGE_TO_CLOUD, answer.code);
    state
        .metrics
        .bytes(EDGE_TO_CLOUD, "response", answer.body.len());
    let status = StatusCode::from_u16(answer.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(answer)
}

/// Reads, checks and forwards one app request; the answer for the app.
async fn forward(state: &AppState, body: web::Payload) -> AppResponse {
    let raw = match tokio::time::timeout(state.timeout, body.to_bytes_limited(MAX_BODY)).await {
        Err(_elapsed) => {
            return AppResponse::error(408, "the request body was not received in time")
        }
        Ok(Err(_limit)) => {
            return AppResponse::error(413, format!("the request body is over {MAX_BODY} bytes"))
        }
        Ok(Ok(Err(err))) => {
            return AppResponse::error(400, format!("cannot read the request body: {err}"))
        }
        Ok(Ok(Ok(raw))) => raw,
    };
    state.metrics.bytes(EDGE_TO_CLOUD, "request", raw.len());
    let request: AppRequest = match serde_json::from_slice(&raw) {
        Ok(request) => request,
        Err(err) => {
            return AppResponse::error(
                400,
                format!("the body is not {{\"method\", \"targetURL\", \"payload\"}} JSON: {err}"),
            )
        }
    };
    if request.target_url.is_empty() {
        return AppResponse::error(400, "targetURL is empty");
    }
    match targets::contains(&state.db, &request.target_url).await {
        Ok(true) => {}
        Ok(false) => {
            return AppResponse::error(
                403,
                format!(
                    "targetURL {} is not allowed: make a rule for it in the cloud",
                    request.target_url
                ),
            )
        }
        Err(err) => {
            tracing::error!(error = %beehive::error_chain(&err), "cannot read target_urls");
            return AppResponse::error(500, "cannot read the allowed target URLs");
        }
    }
    if !state.is_connected() {
        return AppResponse::error(503, "edgecore is not connected to the cloud");
    }
    let msg = Message::new(
        edge::SERVICEBUS,
        group::USER,
        Operation::Upload,
        request.target_url.as_str(),
    )
    .with_content(Value::String(wire::encode_bytes(&raw)));
    let msg_id = msg.id().to_owned();
    tracing::debug!(msg_id, target_url = request.target_url, method = ?request.method, "app request to the cloud");
    match state.bus.request(edge::EDGEHUB, msg, state.timeout).await {
        Ok(reply) if *reply.operation() == Operation::Error => {
            let reason = String::from_utf8_lossy(&reply.content_bytes()).into_owned();
            tracing::info!(msg_id, reason, "the cloud refused an app request");
            let code = if state.is_connected() { 502 } else { 503 };
            AppResponse::error(code, format!("the cloud answered with an error: {reason}"))
        }
        Ok(reply) => AppResponse {
            code: 200,
            msg: "the cloud answered".to_owned(),
            body: String::from_utf8_lossy(&reply.content_bytes()).into_owned(),
        },
        Err(BusError::Timeout { timeout, .. }) => {
            tracing::info!(msg_id, ?timeout, "no answer from the cloud");
            AppResponse::error(504, format!("no answer from the cloud within {timeout:?}"))
        }
        Err(err) => {
            tracing::warn!(msg_id, %err, "cannot send an app request to the cloud");
            AppResponse::error(503, format!("cannot reach EdgeHub: {err}"))
        }
    }
}
