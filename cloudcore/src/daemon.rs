//! Start-up and shutdown of cloudcore: the PKI (CA, server certificate,
//! join token), the HTTPS certificate server, CloudHub and the monitor
//! endpoints, then the beehive; on shutdown everything is cancelled and
//! awaited with a grace period.
//!
//! [`start`] returns once every listener is bound, with their addresses, so
//! tests and the quickstart can use port 0; [`run`] is `start` + wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beehive::{Beehive, BeehiveBuilder, BuildError, Bus, ShutdownError};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::authz::NodeAuthorizer;
use crate::certserver::{CertServer, CertServerError};
use crate::cloudhub::{AckHook, CloudHub, CloudHubError, NoAckHook};
use crate::config::CloudCoreConfig;
use crate::devicecontroller::DeviceController;
use crate::edgecontroller::EdgeController;
use crate::kubeapi::{self, KubeApi};
use crate::pki::{FileStore, KubeStore, Pki, PkiError, SecretStore};
use crate::scope::Scope;
use crate::synccontroller::{self, SyncController, SyncIndex};

/// Where KubeEdge keeps cloudcore's configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/kubeedge/config/cloudcore.yaml";

/// How long modules and servers get to stop after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why cloudcore could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No Kubernetes client: the configured cluster is unreachable or the
    /// embedded API could not start.
    #[error("Kubernetes API")]
    KubeApi(#[from] crate::kubeapi::KubeApiError),
    /// The CA, server certificate or token could not be loaded or made.
    #[error("certificates")]
    Pki(#[from] PkiError),
    /// The TLS configuration could not be built from the certificates.
    #[error("TLS configuration")]
    Tls(#[from] link::TlsError),
    /// The certificate server could not start.
    #[error("certificate server")]
    CertServer(#[from] CertServerError),
    /// CloudHub could not bind its listeners.
    #[error("cloudhub")]
    CloudHub(#[from] CloudHubError),
    /// The monitor endpoints could not start.
    #[error("monitor server")]
    Monitor(#[from] daemonkit::monitor::MonitorError),
    /// The sync records (what each node acked) could not be loaded.
    #[error("sync records")]
    SyncController(#[from] crate::synccontroller::SyncControllerError),
    /// The module set is inconsistent (e.g. a name registered twice).
    #[error("cannot assemble modules")]
    Build(#[from] BuildError),
    /// Some modules did not stop within the grace period.
    #[error("shutdown incomplete")]
    Shutdown(#[from] ShutdownError),
}

/// Where cloudcore's listeners ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    /// CloudHub's WebSocket listener.
    pub websocket: Option<SocketAddr>,
    /// CloudHub's QUIC endpoint.
    pub quic: Option<SocketAddr>,
    /// The HTTPS certificate server.
    pub https: Option<SocketAddr>,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub monitor: SocketAddr,
    /// The embedded Kubernetes API, when cloudcore serves its own.
    pub kube_api: Option<SocketAddr>,
}

/// A started cloudcore: listeners bound, modules running.
pub struct Started {
    /// Where it listens.
    pub addrs: Addrs,
    pki: Arc<Pki>,
    kube: KubeApi,
    hive: Beehive,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Started {
    /// The kube-rs client cloudcore uses (its cluster or the embedded API).
    pub fn kube_client(&self) -> kube::Client {
        self.kube.client.clone()
    }

    /// The admin kubeconfig of the embedded API (or the configured one).
    pub fn kubeconfig(&self) -> Option<&std::path::Path> {
        self.kube.kubeconfig_path()
    }

    /// The certificate authority (for the join token and the CA).
    pub fn pki(&self) -> &Arc<Pki> {
        &self.pki
    }

    /// The beehive bus (tests put messages on it).
    pub fn bus(&self) -> Bus {
        self.hive.bus()
    }

    /// Waits for the shutdown token, then stops everything with
    /// [`SHUTDOWN_GRACE`].
    pub async fn wait(self) -> Result<(), RunError> {
        self.shutdown.cancelled().await;
        daemonkit::launch::stop(self.hive, &self.tasks, SHUTDOWN_GRACE)
            .await
            .map_err(RunError::from)
    }
}

/// Loads (or creates) the PKI: from the Kubernetes Secrets in `kubeedge`
/// when `client` is given (shared by replicas; the files in `dataDir` are
/// migrated and kept as a mirror), else from the files alone.
async fn load_pki(
    config: &CloudCoreConfig,
    client: Option<kube::Client>,
) -> Result<Arc<Pki>, RunError> {
    let files = FileStore::in_data_dir(&config.common_config.data_dir);
    let store: Arc<dyn SecretStore> = match client {
        Some(client) => Arc::new(KubeStore::new(client, files)),
        None => Arc::new(files),
    };
    Ok(Arc::new(
        Pki::load_or_create(store, &config.modules.cloud_hub).await?,
    ))
}

/// Starts cloudcore; `customize` may add modules or endpoints to the beehive
/// (tests use it to stand in for controllers).
pub async fn start(
    config: CloudCoreConfig,
    shutdown: CancellationToken,
    customize: impl FnOnce(&mut BeehiveBuilder),
) -> Result<Started, RunError> {
    start_with_ack_hook(config, shutdown, Arc::new(NoAckHook), customize).await
}

/// [`start`], with `ack_hook` told of every downstream message an edge
/// acks.
pub async fn start_with_ack_hook(
    config: CloudCoreConfig,
    shutdown: CancellationToken,
    ack_hook: Arc<dyn AckHook>,
    customize: impl FnOnce(&mut BeehiveBuilder),
) -> Result<Started, RunError> {
    let mut registry = Registry::default();
    let hub_config = &config.modules.cloud_hub;
    let tasks = TaskTracker::new();

    let mut builder = BeehiveBuilder::new();
    let mut addrs = Addrs {
        websocket: None,
        quic: None,
        https: None,
        monitor: SocketAddr::from(([127, 0, 0, 1], 0)),
        kube_api: None,
    };
    let mut kube = kubeapi::start(&config, shutdown.child_token()).await?;
    let crds: Vec<serde_json::Value> = crds::all()
        .into_iter()
        .filter_map(|(_, crd)| serde_json::to_value(crd).ok())
        .collect();
    kube.apply_crds(&crds).await?;
    let pki = load_pki(&config, Some(kube.client.clone())).await?;
    if let Some(server) = kube.take_server_task() {
        tasks.spawn(async move {
            let _ = server.await;
        });
    }
    addrs.kube_api = kube.addr();
    // The shared reflectors every controller reads (started here, so that
    // they stop with the daemon's tasks).
    let scope = Scope::start(&kube.client, &tasks, &shutdown);
    // What every node acked, loaded before CloudHub's admission asks.
    let sync_index = if config.modules.sync_controller.enable && hub_config.enable {
        Some(SyncIndex::load(&kube.client, &mut registry).await?)
    } else {
        None
    };
    let ack_hook = match &sync_index {
        Some(index) => synccontroller::ack_hook(index, ack_hook),
        None => ack_hook,
    };
    let mut links = None;
    let mut cert_server = None;
    if hub_config.enable {
        let creds = link::Credentials {
            ca: pki.ca_der().clone(),
            chain: pki.server_chain(),
            key: pki.server_key(),
        };
        let tls = link::server_config(&creds)?;
        let mut hub = CloudHub::new(hub_config, tls, &mut registry, ack_hook);
        let authorization = &hub_config.authorization;
        if authorization.enable {
            let authz = NodeAuthorizer::new(scope.clone(), authorization.debug, &mut registry);
            hub = hub.with_authorizer(Arc::new(authz));
        }
        let bound = hub.bind().await?;
        addrs.websocket = bound.ws;
        addrs.quic = bound.quic;
        links = Some(hub.links());
        builder.module(hub);
        if hub_config.https.enable {
            let server = CertServer::bind(&hub_config.https)?;
            addrs.https = Some(server.local_addr());
            cert_server = Some(server);
        }
    }
    if config.modules.device_controller.enable {
        let controller = DeviceController::new(kube.client.clone(), scope.clone(), &mut registry);
        builder.module(controller);
    }
    if config.modules.edge_controller.enable {
        // Without CloudHub no node ever connects: nobody to mark.
        let links = links.clone().unwrap_or_default();
        let grace = Duration::from_secs(hub_config.keepalive_interval.into());
        let mut controller = EdgeController::new(
            kube.client.clone(),
            scope.clone(),
            links,
            grace,
            &mut registry,
        );
        if let Some(index) = sync_index.clone() {
            // A node that lost its store holds none of what it acked.
            controller = controller.on_new_edge_store(Arc::new(move |node: &str| {
                let forgotten = index.forget_node(node);
                tracing::info!(
                    node,
                    records = forgotten,
                    "sync records of a new edge store dropped"
                );
            }));
        }
        builder.module(controller);
    }
    if let (Some(index), Some(links)) = (sync_index, links) {
        let controller = SyncController::new(kube.client.clone(), index, scope.clone(), links);
        builder.module(controller);
    }
    customize(&mut builder);

    let (ready_tx, ready) = watch::channel(false);
    let monitor = daemonkit::monitor::serve(
        &config.common_config.monitor_server.bind_address,
        Arc::new(registry),
        ready,
        shutdown.child_token(),
    )?;
    addrs.monitor = monitor.addr;
    tasks.spawn(async move {
        let _ = monitor.task.await;
    });
    if let Some(server) = cert_server {
        let (pki, cancel) = (pki.clone(), shutdown.child_token());
        tasks.spawn(async move {
            if let Err(err) = server.serve(pki, cancel).await {
                tracing::error!(error = %daemonkit::launch::error_chain(&err), "certificate server stopped");
            }
        });
    }
    let (refresher, cancel) = (pki.clone(), shutdown.child_token());
    tasks.spawn(async move { refresher.run_token_refresh(cancel).await });

    let mut hive = builder.build()?;
    hive.start(&shutdown);
    ready_tx.send_replace(true);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %config.common_config.data_dir,
        websocket = ?addrs.websocket,
        quic = ?addrs.quic,
        https = ?addrs.https,
        monitor = %addrs.monitor,
        kubernetes = %kube.source,
        kubeconfig = ?kube.kubeconfig_path(),
        modules = %hive.bus().modules().join(", "),
        "cloudcore started"
    );
    Ok(Started {
        addrs,
        pki,
        kube,
        hive,
        tasks,
        shutdown,
    })
}

/// Runs cloudcore until `shutdown` is cancelled.
///
/// A shutdown requested while it is still starting ends the start-up
/// (its listeners stop with the token) and is not an error.
pub async fn run(config: CloudCoreConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    let started = tokio::select! {
        started = start(config, shutdown.clone(), |_| {}) => started?,
        () = shutdown.cancelled() => return Ok(()),
    };
    started.wait().await
}

/// `cloudcore gettoken`: prints a valid join token (creating the CA on first
/// use, as KubeEdge's cloudcore does at start).
pub async fn gettoken(
    config: CloudCoreConfig,
    _shutdown: CancellationToken,
) -> Result<(), RunError> {
    // The data directory's files: a mirror of the Secrets once cloudcore
    // has run (any token signed by the shared CA key is accepted).
    let pki = load_pki(&config, None).await?;
    println!("{}", pki.token());
    Ok(())
}
