//! Start-up and shutdown of edgecore: the certificate (joined with the token
//! when there is none, rotated before expiry), EdgeHub with its SQLite
//! outbox, the monitor endpoints, then the beehive; on shutdown everything is
//! cancelled and awaited with a grace period.
//!
//! [`start`] returns once the monitor is bound and the modules run; the link
//! comes up in the background (an edge must start, and serve its cache,
//! while the cloud is unreachable).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use beehive::{Beehive, BeehiveBuilder, BoxError, BuildError, Bus, ShutdownError};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::certmgr::{CertFiles, CertManager};
use crate::config::EdgeCoreConfig;
use crate::devicetwin::DeviceTwin;
use crate::edgehub::{
    outbox_path, ClientTls, EdgeHub, EdgeHubError, EdgeHubSettings, EdgeHubStatus, Outbox,
    OutboxError, OutboxOptions,
};
use crate::eventbus::{EventBus, EventBusError, EventBusSettings, MqttEndpoint};
use crate::metamanager::MetaManager;
use crate::nodestatus::{NodeStatus, NodeStatusError, NodeStatusSettings};
use crate::servicebus::{ServiceBus, ServiceBusError};

/// Where KubeEdge keeps edgecore's configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/kubeedge/config/edgecore.yaml";

/// How long modules get to stop after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// First wait before retrying a failed join; doubles up to a minute.
const JOIN_RETRY: Duration = Duration::from_secs(1);

/// Why edgecore could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The node name could not be determined.
    #[error("cannot determine the node name; set modules.nodeStatus.hostnameOverride")]
    NodeName(#[source] std::io::Error),
    /// A directory for the database could not be made.
    #[error("cannot create {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// EdgeHub's settings are inconsistent.
    #[error("edgehub")]
    EdgeHub(#[from] EdgeHubError),
    /// The outbox database could not be opened.
    #[error("outbox")]
    Outbox(#[from] OutboxError),
    /// `modules.nodeStatus` is invalid.
    #[error("node status")]
    NodeStatus(#[from] NodeStatusError),
    /// The metadata database could not be opened.
    #[error("database {path}")]
    Store {
        /// The database file.
        path: String,
        /// The cause.
        #[source]
        source: kubestore::StoreError,
    },
    /// A start-up task panicked.
    #[error("start-up task failed: {0}")]
    Join(String),
    /// `modules.eventBus.mqttServerInternal` is not `tcp://<ip>:<port>`.
    #[error("modules.eventBus.mqttServerInternal {0:?} must be tcp://<ip>:<port>")]
    BrokerAddress(String),
    /// The embedded MQTT broker could not start.
    #[error("embedded MQTT broker")]
    Broker(#[from] broker::BrokerError),
    /// EventBus's settings are inconsistent.
    #[error("eventbus")]
    EventBus(#[from] EventBusError),
    /// ServiceBus could not bind its listener.
    #[error("servicebus")]
    ServiceBus(#[from] ServiceBusError),
    /// The MetaServer could not start.
    #[error("metaserver")]
    MetaServer(#[from] crate::metaserver::MetaServerError),
    /// The monitor endpoints could not start.
    #[error("monitor server")]
    Monitor(#[from] daemonkit::monitor::MonitorError),
    /// The module set is inconsistent (e.g. a name registered twice).
    #[error("cannot assemble modules")]
    Build(#[from] BuildError),
    /// Some modules did not stop within the grace period.
    #[error("shutdown incomplete")]
    Shutdown(#[from] ShutdownError),
}

/// A started edgecore.
pub struct Started {
    /// Where `/metrics`, `/healthz`, `/readyz` are served.
    pub monitor: SocketAddr,
    /// Where the MetaServer listens, if enabled.
    pub metaserver: Option<SocketAddr>,
    /// Where the embedded MQTT broker listens, if it runs.
    pub mqtt: Option<SocketAddr>,
    /// Its MQTT-over-WebSocket listener, if configured.
    pub mqtt_ws: Option<SocketAddr>,
    /// Where ServiceBus listens for local apps, if enabled.
    pub servicebus: Option<SocketAddr>,
    /// The node's name.
    pub node_name: String,
    hub: Option<EdgeHubStatus>,
    store: Option<kubestore::Store>,
    broker: Option<broker::RunningBroker>,
    hive: Beehive,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("monitor", &self.monitor)
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl Started {
    /// The link's state and the outbox depth (None when EdgeHub is off).
    pub fn hub(&self) -> Option<&EdgeHubStatus> {
        self.hub.as_ref()
    }

    /// The metadata store (`database.dataSource`); none without
    /// MetaManager.
    pub fn store(&self) -> Option<&kubestore::Store> {
        self.store.as_ref()
    }

    /// The beehive bus.
    pub fn bus(&self) -> Bus {
        self.hive.bus()
    }

    /// Waits for the shutdown token, then stops everything.
    /// The broker stops last, after EventBus has let go of it.
    pub async fn wait(self) -> Result<(), RunError> {
        self.shutdown.cancelled().await;
        let stopped = daemonkit::launch::stop(self.hive, &self.tasks, SHUTDOWN_GRACE).await;
        if let Some(broker) = self.broker {
            // Bounded: the broker drains and flushes for six seconds at most.
            let _ = tokio::task::spawn_blocking(move || broker.stop()).await;
        }
        stopped.map_err(RunError::from)
    }
}

/// The node name: `modules.nodeStatus.hostnameOverride`, else the host name.
pub fn node_name(config: &EdgeCoreConfig) -> Result<String, RunError> {
    let configured = &config.modules.node_status.hostname_override;
    if !configured.is_empty() {
        return Ok(configured.clone());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map_err(RunError::NodeName)?;
    Ok(host.trim().to_lowercase())
}

/// TLS for each dial, read from the certificate files (they rotate).
fn client_tls(files: CertFiles) -> ClientTls {
    ClientTls::from_fn(move || {
        let creds = link::Credentials::from_pem_files(&files.ca, &files.cert, &files.key)?;
        link::client_config(&creds).map_err(BoxError::from)
    })
}

/// Gets the certificate (joining with the token if needed, retrying while
/// the cloud is unreachable), then keeps it rotated.
async fn keep_certificate(
    certs: CertManager,
    rotate: bool,
    hub: EdgeHubStatus,
    cancel: CancellationToken,
) {
    let mut wait = JOIN_RETRY;
    loop {
        let attempt = tokio::select! {
            () = cancel.cancelled() => return,
            attempt = certs.ensure() => attempt,
        };
        match attempt {
            Ok(_) => break,
            Err(err) => {
                tracing::warn!(error = %daemonkit::launch::error_chain(&err), retry_in = ?wait, "cannot get the node certificate");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
    }
    hub.reconnect();
    if rotate {
        certs.run_rotation(cancel, move || hub.reconnect()).await;
    }
}

fn ensure_parent(path: &str) -> Result<(), RunError> {
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| RunError::DataDir {
                path: dir.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Opens the metadata store on a blocking thread.
async fn open_store(path: &str) -> Result<kubestore::Store, RunError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || {
        kubestore::Store::open(&owned, kubestore::StoreOptions::default())
    })
    .await
    .map_err(|join| RunError::Join(join.to_string()))?
    .map_err(|source| RunError::Store {
        path: path.to_owned(),
        source,
    })
}

/// Where the embedded broker keeps sessions and retained messages:
/// `modules.eventBus.broker.dataDir`, else `broker/` beside the database.
pub fn broker_data_dir(config: &EdgeCoreConfig) -> PathBuf {
    let configured = &config.modules.event_bus.broker.data_dir;
    if configured.is_empty() {
        Path::new(&config.database.data_source)
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("broker")
    } else {
        PathBuf::from(configured)
    }
}

/// Starts the embedded MQTT broker when EventBus runs with `mqttMode` 0
/// (internal) or 1 (both), on `mqttServerInternal`.
async fn start_broker(config: &EdgeCoreConfig) -> Result<Option<broker::RunningBroker>, RunError> {
    let bus = &config.modules.event_bus;
    if !bus.enable || bus.mqtt_mode == 2 {
        return Ok(None);
    }
    let listen = bus
        .internal_listen_addr()
        .ok_or_else(|| RunError::BrokerAddress(bus.mqtt_server_internal.clone()))?;
    let settings = broker::BrokerSettings {
        listen,
        config: bus.broker.clone(),
        data_dir: broker_data_dir(config),
        bus_username: bus.mqtt_username.clone(),
        bus_password: bus.mqtt_password.clone(),
        session_queue: bus.mqtt_session_queue_size,
    };
    Ok(Some(broker::RunningBroker::start(settings).await?))
}

/// Starts edgecore; `customize` may add modules or endpoints to the beehive.
pub async fn start(
    config: EdgeCoreConfig,
    shutdown: CancellationToken,
    customize: impl FnOnce(&mut BeehiveBuilder),
) -> Result<Started, RunError> {
    let node_name = node_name(&config)?;
    ensure_parent(&config.database.data_source)?;
    let mut registry = Registry::default();
    let tasks = TaskTracker::new();
    let mut builder = BeehiveBuilder::new();

    let hub_config = &config.modules.edge_hub;
    let hub_status = if hub_config.enable {
        let settings = EdgeHubSettings::from_config(hub_config, &node_name)?;
        let certs = CertManager::new(hub_config, &node_name);
        let outbox_file = outbox_path(&config.database.data_source);
        let outbox = tokio::task::spawn_blocking(move || {
            Outbox::open(outbox_file, OutboxOptions::default())
        })
        .await
        .map_err(|join| RunError::Join(join.to_string()))??;
        let hub = EdgeHub::new(
            settings,
            client_tls(certs.files().clone()),
            outbox,
            &mut registry,
        );
        let status = hub.status();
        builder.module(hub);
        tasks.spawn(keep_certificate(
            certs,
            hub_config.rotate_certificates,
            status.clone(),
            shutdown.child_token(),
        ));
        Some(status)
    } else {
        None
    };
    let resources = kubestore::Resources::new(kubestore::edge_resources());
    let meta_config = &config.modules.meta_manager;
    let store = if meta_config.enable {
        let store = open_store(&config.database.data_source).await?;
        builder.module(MetaManager::new(
            meta_config,
            store.clone(),
            resources.clone(),
            hub_status.clone(),
            &mut registry,
        ));
        Some(store)
    } else {
        None
    };
    if config.modules.node_status.enable {
        let settings = NodeStatusSettings::from_config(&config, &node_name)?;
        builder.module(NodeStatus::new(settings));
    }
    let broker = start_broker(&config).await?;
    let bus_config = &config.modules.event_bus;
    if bus_config.enable {
        let settings = match &broker {
            Some(running) => {
                let addr = running.tcp_addr();
                let (user, password) = running.internal_credentials();
                let endpoint = MqttEndpoint::new(addr.ip().to_string(), addr.port())
                    .with_credentials(user, password);
                EventBusSettings::with_endpoint(bus_config, endpoint)?
            }
            None => EventBusSettings::external(bus_config)?,
        };
        builder.module(EventBus::new(
            settings,
            &config.database.data_source,
            &node_name,
            &mut registry,
        ));
    }
    if config.modules.device_twin.enable {
        builder.module(DeviceTwin::new(
            &config.database.data_source,
            &node_name,
            hub_status.clone(),
            &mut registry,
        ));
    }
    let servicebus = if config.modules.service_bus.enable {
        let mut module = ServiceBus::new(
            &config.modules.service_bus,
            &config.database.data_source,
            hub_status.clone(),
            &mut registry,
        );
        let addr = module.bind()?;
        builder.module(module);
        Some(addr)
    } else {
        None
    };
    customize(&mut builder);

    let metaserver = if let Some(store) = store.as_ref().filter(|_| meta_config.meta_server.enable)
    {
        let rest = kubestore::rest::RestConfig::new(
            store.clone(),
            resources.clone(),
            &crate::nodestatus::kubelet_version(),
        );
        let server = crate::metaserver::serve(
            &meta_config.meta_server.server,
            rest,
            shutdown.child_token(),
        )?;
        tasks.spawn(async move {
            let _ = server.task.await;
        });
        Some(server.addr)
    } else {
        None
    };

    let (ready_tx, ready) = watch::channel(false);
    let monitor = daemonkit::monitor::serve(
        &config.common_config.monitor_server.bind_address,
        Arc::new(registry),
        ready,
        shutdown.child_token(),
    )?;
    let monitor_addr = monitor.addr;
    tasks.spawn(async move {
        let _ = monitor.task.await;
    });

    let mut hive = builder.build()?;
    hive.start(&shutdown);
    ready_tx.send_replace(true);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        node = %node_name,
        database = %config.database.data_source,
        monitor = %monitor_addr,
        metaserver = %metaserver.map_or_else(|| "off".to_owned(), |a| format!("http://{a}")),
        mqtt = %broker.as_ref().map_or_else(
            || format!("external {}", config.modules.event_bus.mqtt_server_external),
            |b| format!("tcp://{}", b.tcp_addr()),
        ),
        servicebus = %servicebus.map_or_else(|| "off".to_owned(), |a| format!("http://{a}")),
        mqtt_ws = %broker.as_ref().and_then(broker::RunningBroker::ws_addr).map_or_else(|| "off".to_owned(), |a| format!("ws://{a}")),
        modules = %hive.bus().modules().join(", "),
        "edgecore started"
    );
    Ok(Started {
        monitor: monitor_addr,
        metaserver,
        mqtt: broker.as_ref().map(broker::RunningBroker::tcp_addr),
        mqtt_ws: broker.as_ref().and_then(broker::RunningBroker::ws_addr),
        servicebus,
        node_name,
        hub: hub_status,
        store,
        broker,
        hive,
        tasks,
        shutdown,
    })
}

/// Runs edgecore until `shutdown` is cancelled.
pub async fn run(config: EdgeCoreConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    start(config, shutdown, |_| {}).await?.wait().await
}
