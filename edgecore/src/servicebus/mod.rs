//! ServiceBus: HTTP between the cloud and apps on the edge host, as
//! KubeEdge's beehive module `servicebus` in group `bus` (reference §6).
//!
//! - **Cloud → local app** (`call.rs`): a message from the Router (source
//!   `router_servicebus`, group `user`, resource `<port>:<path>`, content
//!   `{header, body, method, url}`) becomes a call to
//!   `http://127.0.0.1:<port><path>`; the answer goes back to the cloud
//!   through EdgeHub as op `upload` with `parent_msg_id` = the request's id.
//!   Operations: the HTTP method names (what KubeEdge's Router sets) and
//!   `upload`; the method used is the content's.
//! - **Allowed targets** (`targets.rs`): ops `start` / `stop` add and
//!   remove URLs in KubeEdge's `target_urls` table in `database.dataSource`.
//! - **Local app → cloud** (`server.rs`): an HTTP listener at
//!   `modules.serviceBus.server:port`; an app POSTs `{method, targetURL,
//!   payload}` and gets the cloud's answer as `{code, msg, body}`.
//!
//! Any other operation from the Router gets an error reply. Messages from
//! other sources (EdgeHub's `node/connection` broadcasts to the group) are
//! ignored, as KubeEdge does.
//!
//! KubeEdge starts its listener only while `target_urls` has a row; Apiary
//! listens whenever the module runs, so the address is known up front
//! ([`ServiceBus::bind`]).
//!
//! Encodings, as a KubeEdge cloud reads and writes them (details in
//! `wire.rs` and `server.rs`): HTTP bodies in messages are Go `[]byte`,
//! i.e. standard base64 strings; an app's request goes up with resource =
//! its `targetURL` and content = its whole body (base64), as KubeEdge's
//! edge sends it.
//!
//! ```no_run
//! # fn demo(config: &edgecore::EdgeCoreConfig) -> Result<(), edgecore::servicebus::ServiceBusError> {
//! use edgecore::servicebus::ServiceBus;
//!
//! let mut registry = prometheus_client::registry::Registry::default();
//! let mut servicebus = ServiceBus::new(
//!     &config.modules.service_bus,
//!     &config.database.data_source,
//!     None,
//!     &mut registry,
//! );
//! let addr = servicebus.bind()?;
//! let mut builder = beehive::BeehiveBuilder::new();
//! builder.module(servicebus);
//! # drop(addr);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `mod.rs`: the [`ServiceBus`] module and its mailbox loop.
//! - `call.rs`: calls to local apps and the replies (resource parsing pure).
//! - `targets.rs`: the `target_urls` table, and what `start` / `stop` name.
//! - `server.rs`: the listener for local apps.
//! - `wire.rs`: the JSON shapes and encodings (pure).
//! - `metrics.rs`: `servicebus_*` metrics; `error.rs`: the errors.
//! - `tests.rs`: the module on a real beehive, SQLite file and local app.

mod call;
mod error;
mod metrics;
mod server;
mod targets;
mod wire;

#[cfg(test)]
mod tests;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use beehive::{async_trait, Bus, Module, ModuleContext, ModuleError, RestartPolicy};
use proto::modules::{edge, source};
use proto::{Message, Operation};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServiceBus as ServiceBusConfig;
use crate::edgehub::EdgeHubStatus;
use call::{Call, Caller};
use metrics::{Metrics, CLOUD_TO_EDGE};
use server::AppState;

pub use error::{CallError, Result, ServiceBusError};

/// Calls to local apps in flight at the same time, at most; more wait in
/// the mailbox.
const MAX_CALLS: usize = 64;

/// The ServiceBus beehive module (`servicebus`, group `bus`).
pub struct ServiceBus {
    host: String,
    port: u16,
    db_path: String,
    timeout: Duration,
    connected: Option<watch::Receiver<bool>>,
    listener: Option<TcpListener>,
    db: Option<tokio_rusqlite::Connection>,
    metrics: Metrics,
}

impl std::fmt::Debug for ServiceBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBus")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("local_addr", &self.local_addr())
            .field("db_path", &self.db_path)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a message from the cloud asks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Call a local app.
    Call,
    /// Allow target URLs.
    Start,
    /// Disallow target URLs.
    Stop,
    /// Not for us (e.g. EdgeHub's connection broadcast); logged at debug.
    Ignore(&'static str),
    /// An operation ServiceBus does not have.
    Unknown,
}

/// Decides what to do with `msg` (pure).
fn classify(msg: &Message) -> Action {
    if msg.route.source != source::ROUTER_SERVICEBUS {
        return Action::Ignore("not from the cloud's router");
    }
    match msg.operation() {
        Operation::Start => Action::Start,
        Operation::Stop => Action::Stop,
        Operation::Upload => Action::Call,
        op if call::is_http_method(op.as_str()) => Action::Call,
        _ => Action::Unknown,
    }
}

impl ServiceBus {
    /// A module listening on `config.server:config.port`, keeping allowed
    /// targets in the SQLite file `db_path`, sending app requests only while
    /// `hub` says the cloud is connected (always tried when `None`), with
    /// its metrics in `registry`.
    pub fn new(
        config: &ServiceBusConfig,
        db_path: &str,
        hub: Option<EdgeHubStatus>,
        registry: &mut prometheus_client::registry::Registry,
    ) -> ServiceBus {
        ServiceBus {
            host: config.server.clone(),
            port: config.port,
            db_path: db_path.to_owned(),
            timeout: Duration::from_secs(u64::from(config.timeout.max(1))),
            connected: hub.map(|h| h.connected()),
            listener: None,
            db: None,
            metrics: Metrics::register(registry),
        }
    }

    /// Binds the local apps' listener now (before the beehive starts) and
    /// returns its address, e.g. to learn the port when configured as 0.
    /// Calling it again returns the same address. Without it the module
    /// binds when it starts.
    pub fn bind(&mut self) -> Result<SocketAddr> {
        let addr = self.listener()?.local_addr();
        addr.map_err(|source| self.bind_error(source))
    }

    /// The listener, bound on first use.
    fn listener(&mut self) -> Result<&TcpListener> {
        let listener = match self.listener.take() {
            Some(listener) => listener,
            None => {
                let listener = TcpListener::bind((self.host.as_str(), self.port))
                    .map_err(|source| self.bind_error(source))?;
                if let Ok(addr) = listener.local_addr() {
                    tracing::info!(%addr, "ServiceBus listening for local apps");
                }
                listener
            }
        };
        Ok(self.listener.insert(listener))
    }

    fn bind_error(&self, source: std::io::Error) -> ServiceBusError {
        let addr = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        ServiceBusError::Bind { addr, source }
    }

    /// The listener's address, once bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The listener for this run (the same socket on every run).
    fn run_listener(&mut self) -> Result<TcpListener> {
        let listener = self.listener()?.try_clone();
        listener.map_err(|source| self.bind_error(source))
    }

    async fn database(&mut self) -> Result<tokio_rusqlite::Connection> {
        if let Some(db) = &self.db {
            return Ok(db.clone());
        }
        let db = targets::open(&self.db_path).await?;
        self.db = Some(db.clone());
        Ok(db)
    }
}

#[async_trait]
impl Module for ServiceBus {
    fn name(&self) -> &str {
        edge::SERVICEBUS
    }

    fn group(&self) -> &str {
        edge::BUS
    }

    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::OnFailure { max_retries: 3 }
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError> {
        let db = self.database().await.map_err(ModuleError::new)?;
        let allowed = targets::list(&db).await.map_err(ModuleError::new)?;
        tracing::info!(
            targets = allowed.len(),
            "ServiceBus started; cloud targets allowed for local apps"
        );
        let listener = self.run_listener().map_err(ModuleError::new)?;
        let caller = Caller::new(self.timeout).map_err(ModuleError::new)?;
        // Stops the server and the calls however this run ends.
        let cancel = ctx.cancellation_token().child_token();
        let _stop = cancel.clone().drop_guard();
        let tasks = TaskTracker::new();
        let server = server::serve(
            listener,
            AppState {
                db: db.clone(),
                bus: ctx.bus().clone(),
                connected: self.connected.clone(),
                timeout: self.timeout,
                metrics: self.metrics.clone(),
                cancel: cancel.child_token(),
            },
        )
        .map_err(ModuleError::new)?;
        let server_cancel = cancel.child_token();
        tasks.spawn(async move {
            if let Err(err) = daemonkit::http::serve_until(server, server_cancel).await {
                tracing::error!(%err, "ServiceBus listener failed");
            }
        });
        let worker = Worker {
            bus: ctx.bus().clone(),
            db,
            caller,
            metrics: self.metrics.clone(),
        };
        worker.mailbox_loop(ctx, &tasks, &cancel).await;
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
        Ok(())
    }
}

/// One run's view: what message handling needs.
#[derive(Clone)]
struct Worker {
    bus: Bus,
    db: tokio_rusqlite::Connection,
    caller: Caller,
    metrics: Metrics,
}

impl Worker {
    /// Handles messages until the module is cancelled. `start` and `stop`
    /// are applied in order here; calls run on `tasks`, [`MAX_CALLS`] at a
    /// time.
    async fn mailbox_loop(
        &self,
        ctx: &mut ModuleContext,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
    ) {
        let slots = Arc::new(Semaphore::new(MAX_CALLS));
        while let Some(msg) = ctx.recv().await {
            match classify(&msg) {
                Action::Call => {
                    let slot = tokio::select! {
                        slot = slots.clone().acquire_owned() => slot,
                        () = cancel.cancelled() => break,
                    };
                    let Ok(slot) = slot else { break };
                    let worker = self.clone();
                    let cancel = cancel.child_token();
                    let msg_id = msg.id().to_owned();
                    tasks.spawn(async move {
                        let _slot = slot;
                        tokio::select! {
                            () = cancel.cancelled() => {
                                tracing::debug!(msg_id, "call abandoned: stopping");
                            }
                            () = worker.call(msg) => {}
                        }
                    });
                }
                Action::Start | Action::Stop => self.change_targets(msg).await,
                Action::Ignore(reason) => {
                    tracing::debug!(
                        msg_id = msg.id(),
                        source = msg.route.source,
                        reason,
                        "ignored"
                    );
                }
                Action::Unknown => {
                    let op = msg.operation().as_str().to_owned();
                    tracing::warn!(
                        msg_id = msg.id(),
                        operation = op,
                        "unknown ServiceBus operation"
                    );
                    self.send_up(msg.error_reply(format!(
                        "servicebus: unknown operation {op:?} (expected start, stop, upload or an HTTP method)"
                    )))
                    .await;
                }
            }
        }
    }

    /// Calls the local app and sends the answer up.
    async fn call(&self, msg: Message) {
        let outcome = match Call::from_message(&msg) {
            Ok(call) => {
                self.metrics
                    .bytes(CLOUD_TO_EDGE, "request", call.body.len());
                self.caller.call(call).await
            }
            Err(err) => Err(err),
        };
        let reply = call::reply(&msg, &outcome);
        let code = outcome
            .as_ref()
            .map_or_else(CallError::status, |response| response.status_code);
        match &outcome {
            Ok(response) => {
                self.metrics
                    .bytes(CLOUD_TO_EDGE, "response", response.body.len());
                tracing::debug!(
                    msg_id = msg.id(),
                    resource = msg.resource(),
                    code,
                    "local app answered"
                );
            }
            Err(err) => tracing::info!(
                msg_id = msg.id(),
                resource = msg.resource(),
                code,
                error = %beehive::error_chain(err),
                "cloud request to a local app failed"
            ),
        }
        self.metrics.request(CLOUD_TO_EDGE, code);
        self.send_up(reply).await;
    }

    /// Applies a `start` or `stop`; an unusable one gets an error reply.
    async fn change_targets(&self, msg: Message) {
        let urls = match targets::urls_of(&msg) {
            Ok(urls) => urls,
            Err(reason) => {
                tracing::warn!(msg_id = msg.id(), reason, "bad target URL change");
                self.send_up(msg.error_reply(format!("servicebus: {reason}")))
                    .await;
                return;
            }
        };
        let (op, result) = if *msg.operation() == Operation::Start {
            ("start", targets::add(&self.db, urls.clone()).await)
        } else {
            ("stop", targets::remove(&self.db, urls.clone()).await)
        };
        match result {
            Ok(n) => {
                self.metrics.targets(op, n);
                tracing::info!(
                    msg_id = msg.id(),
                    op,
                    ?urls,
                    changed = n,
                    "target URLs changed"
                );
            }
            Err(err) => {
                let reason = beehive::error_chain(&err);
                tracing::error!(
                    msg_id = msg.id(),
                    op,
                    error = reason,
                    "cannot change target URLs"
                );
                self.send_up(msg.error_reply(format!("servicebus: {reason}")))
                    .await;
            }
        }
    }

    /// Sends `msg` to the cloud through EdgeHub.
    async fn send_up(&self, msg: Message) {
        let msg_id = msg.id().to_owned();
        if let Err(err) = self.bus.send(edge::EDGEHUB, msg).await {
            tracing::warn!(msg_id, %err, "cannot hand a ServiceBus reply to EdgeHub");
        }
    }
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    fn msg(source: &str, op: &str) -> Message {
        Message::new(source, "user", Operation::parse(op), "80:/a")
    }

    #[test]
    fn operations() {
        assert_eq!(classify(&msg("router_servicebus", "start")), Action::Start);
        assert_eq!(classify(&msg("router_servicebus", "stop")), Action::Stop);
        assert_eq!(classify(&msg("router_servicebus", "upload")), Action::Call);
        assert_eq!(classify(&msg("router_servicebus", "POST")), Action::Call);
        assert_eq!(classify(&msg("router_servicebus", "get")), Action::Call);
        assert_eq!(
            classify(&msg("router_servicebus", "insert")),
            Action::Unknown
        );
        assert!(matches!(
            classify(&msg("edgehub", "connect")),
            Action::Ignore(_)
        ));
    }
}
