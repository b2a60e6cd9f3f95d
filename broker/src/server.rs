//! [`BrokerSettings`] and [`RunningBroker`]: rmqtt on a Tokio runtime of
//! its own, started and stopped.
//!
//! rmqtt has no stop call and its context is kept alive by reference
//! cycles (plugins and hook handlers hold it), so the broker is never torn
//! down piecemeal: it runs on its own multi-thread runtime, and
//! [`RunningBroker::stop`] closes the listeners, disconnects the clients
//! (so persistent sessions store their unacknowledged messages), lets the
//! stores write what is pending, then abandons the runtime with
//! [`Runtime::shutdown_background`] (dropping it would wait for sled's
//! blocking worker, which never ends).
//!
//! Invariant: every wait in [`RunningBroker::stop`] has a deadline; the
//! whole stop takes at most `LISTENER_GRACE + STOP_LIMIT + STORE_FLUSH`
//! (5.7 s).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::types::{Message, Reason};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Broker;
use crate::error::{BrokerError, Result};
use crate::setup::setup;

/// How long start-up (opening the stores, restoring sessions) may take.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long [`RunningBroker::stop`] waits for the listeners to close.
const LISTENER_GRACE: Duration = Duration::from_secs(2);
/// How long [`RunningBroker::stop`] gives clients to be disconnected and
/// the stores to take what is pending (then it stops regardless).
const STOP_LIMIT: Duration = Duration::from_secs(3);
/// sled writes to disk every 500 ms; this is one such period and a margin.
const STORE_FLUSH: Duration = Duration::from_millis(700);
/// Polling period while waiting for the broker to become idle.
const POLL: Duration = Duration::from_millis(10);
/// Worker threads of the broker's runtime, at most.
const MAX_WORKERS: usize = 4;
/// The per-start superuser's name.
const INTERNAL_USER: &str = "apiary-edgecore";

/// What the broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// The MQTT (TCP) listener, e.g. `127.0.0.1:1884` (`mqttServerInternal`);
    /// port 0 picks a free port, see [`RunningBroker::tcp_addr`].
    pub listen: SocketAddr,
    /// `modules.eventBus.broker`.
    pub config: Broker,
    /// Where persistent sessions (`sessions/`) and retained messages
    /// (`retained/`) are kept; created if missing. A process can open a
    /// given directory once (see [`BrokerError::DataDirOpen`]).
    pub data_dir: PathBuf,
    /// edgecore's `mqttUsername`, accepted like a configured user (empty:
    /// none). A name also in `users` has the password given there.
    pub bus_username: String,
    /// edgecore's `mqttPassword`. Empty with a username: that username is
    /// accepted with any password.
    pub bus_password: String,
    /// `mqttSessionQueueSize`: unacknowledged QoS 1/2 messages in flight per
    /// session (1 to 65,535).
    pub session_queue: u32,
}

/// A started broker. Dropping it stops it, as [`stop`](Self::stop) does
/// (and blocks as long).
#[derive(Debug)]
pub struct RunningBroker {
    tcp_addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    internal_username: String,
    internal_password: String,
    running: Option<Running>,
}

/// What [`RunningBroker::stop`] takes apart.
struct Running {
    runtime: Runtime,
    scx: ServerContext,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl RunningBroker {
    /// Starts the broker: binds its listeners, opens its stores under
    /// `data_dir` (restoring persistent sessions and retained messages) and
    /// starts accepting clients. Must be called from within a Tokio runtime
    /// (the broker itself runs on its own).
    ///
    /// # Errors
    ///
    /// [`BrokerError::Bind`] naming the address if a listener cannot bind,
    /// [`BrokerError::DataDirOpen`] if a broker of this process has opened
    /// `data_dir` before, [`BrokerError::Plugin`] if a store cannot be
    /// opened (for instance because another process holds it), and the
    /// configuration errors of [`BrokerError`].
    pub async fn start(settings: BrokerSettings) -> Result<RunningBroker> {
        let ws_listen = match settings.config.websocket.trim() {
            "" => None,
            value => Some(value.parse::<SocketAddr>().map_err(|source| {
                BrokerError::WebsocketAddress {
                    value: value.to_owned(),
                    source,
                }
            })?),
        };
        let internal = (
            INTERNAL_USER.to_owned(),
            uuid::Uuid::new_v4().simple().to_string(),
        );
        let workers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_WORKERS);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("mqtt-broker")
            .enable_all()
            .build()
            .map_err(BrokerError::Runtime)?;

        let setup = runtime.spawn(setup(settings, ws_listen, internal.clone()));
        let started = match tokio::time::timeout(START_LIMIT, setup).await {
            Ok(Ok(started)) => started,
            Ok(Err(join)) => Err(BrokerError::StartTask(join)),
            Err(_) => Err(BrokerError::StartTimeout(START_LIMIT)),
        };
        let started = match started {
            Ok(started) => started,
            Err(e) => {
                runtime.shutdown_background();
                return Err(e);
            }
        };
        Ok(RunningBroker {
            tcp_addr: started.tcp_addr,
            ws_addr: started.ws_addr,
            internal_username: internal.0,
            internal_password: internal.1,
            running: Some(Running {
                runtime,
                scx: started.scx,
                server: started.server,
            }),
        })
    }

    /// The address the MQTT listener is bound to (port 0 resolved).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The address of the MQTT-over-WebSocket listener, if configured.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// Username and password of a superuser made for this start (random
    /// password), allowed every topic: for edgecore's own clients.
    pub fn internal_credentials(&self) -> (&str, &str) {
        (&self.internal_username, &self.internal_password)
    }

    /// Stops the broker, blocking the calling thread for about a second
    /// and at most six: closes the listeners, disconnects the clients
    /// (persistent sessions keep their subscriptions and unacknowledged
    /// messages; last wills are published), waits for the stores to write
    /// what is pending, then abandons the broker's runtime.
    ///
    /// What the broker acknowledged before `stop` is on disk when it
    /// returns, with one exception: the stores stay open (rmqtt cannot
    /// close them) and sled writes to disk every 500 ms, so a process that
    /// is killed right after may lose the last moment's writes.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(Running {
            runtime,
            scx,
            server,
        }) = self.running.take()
        else {
            return;
        };
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            server.abort();
            if tokio::time::timeout(LISTENER_GRACE, server).await.is_err() {
                tracing::warn!("MQTT broker listeners did not close within {LISTENER_GRACE:?}");
            }
            quiesce(&scx).await;
            let _ = done_tx.send(());
        });
        if done_rx
            .recv_timeout(LISTENER_GRACE + STOP_LIMIT + STORE_FLUSH)
            .is_err()
        {
            tracing::warn!("MQTT broker did not quiesce in time; stopping it regardless");
        }
        runtime.shutdown_background();
        tracing::info!(tcp = %self.tcp_addr, "MQTT broker stopped");
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Disconnects every client and waits, within [`STOP_LIMIT`], for the
/// connections to end and rmqtt's task queues (where the session store's
/// writes go) to empty; then gives sled one flush period.
async fn quiesce(scx: &ServerContext) {
    let deadline = Instant::now() + STOP_LIMIT;
    let clients: Vec<_> = scx.extends.shared().await.iter().collect();
    for client in clients {
        if let Some(tx) = client.tx().filter(|_| client.session().is_some()) {
            if client.is_connected().await {
                let _ = tx.unbounded_send(Message::Closed(Reason::from_static("broker stopping")));
            }
        }
    }
    let mut idle_polls = 0;
    while idle_polls < 3 && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        let idle = scx.connections.count() == 0
            && scx
                .execs()
                .values()
                .all(|exec| exec.active_count() == 0 && exec.waiting_count() == 0);
        idle_polls = if idle { idle_polls + 1 } else { 0 };
    }
    tokio::time::sleep(STORE_FLUSH).await;
}
