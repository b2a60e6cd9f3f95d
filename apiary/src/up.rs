//! `apiary up`: cloudcore on its embedded API and one edgecore joined to it
//! with a fresh token, both in this process, data under one directory.
//!
//! 1. cloudcore's configuration is written on the first run and read on
//!    later ones; cloudcore starts (embedded API, CloudHub, controllers).
//! 2. The edge joins through the real flow (`edgecore join`: CA checked
//!    against the token, certificate over HTTPS) on the first run, or when
//!    the cloud's CA changed; later runs reuse its configuration and
//!    certificate. Its cloud addresses and listeners are set for this run.
//! 3. edgecore starts; once the Node is Ready in the cloud's API (or after
//!    [`READY_PATIENCE`]) the summary is printed.
//! 4. On the shutdown token (Ctrl-C) the edge stops, then the cloud.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio_util::sync::CancellationToken;

use crate::layout::{self, Layout, Ports};
use crate::summary::Summary;

/// How long the summary waits for the Node to be Ready.
pub const READY_PATIENCE: Duration = Duration::from_secs(60);
/// How often the Node is read while waiting.
const READY_POLL: Duration = Duration::from_millis(250);

/// What `apiary up` was asked to do.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The edge node's name.
    pub node_name: String,
    /// KubeEdge's ports or free ones.
    pub ports: Ports,
    /// `deploy/examples/`, named in the follow-up commands.
    pub examples: PathBuf,
}

/// Why `apiary up` stopped.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// A file or directory could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file in the data directory is unusable.
    #[error("{}: fix it, or remove it to start over", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: daemonkit::ConfigError,
    },
    /// A configuration could not be written as YAML.
    #[error("cannot write the configuration as YAML: {0}")]
    Yaml(String),
    /// cloudcore failed to start or to stop.
    #[error("cloudcore")]
    Cloud(#[from] cloudcore::RunError),
    /// The edge could not join.
    #[error("edgecore join")]
    Join(#[from] edgecore::join::JoinError),
    /// The edge's old state could not be removed before joining again.
    #[error("edgecore reset (before joining a new cloud CA)")]
    Reset(#[from] edgecore::join::ResetError),
    /// edgecore failed to start or to stop.
    #[error("edgecore")]
    Edge(#[from] edgecore::RunError),
    /// Another `apiary up` holds the data directory.
    #[error("{} is in use by another `apiary up` (or choose another --data-dir)", .0.display())]
    InUse(PathBuf),
    /// cloudcore started without a listener the edge needs.
    #[error("cloudcore has no {0} listener")]
    NoListener(&'static str),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UpError + '_ {
    move |source| UpError::Io {
        path: path.to_owned(),
        source,
    }
}

fn load<T: daemonkit::DaemonConfig>(path: &Path) -> Result<T, UpError> {
    daemonkit::config::load(path).map_err(|source| UpError::Config {
        path: path.to_owned(),
        source,
    })
}

/// Writes `config` to `path` as YAML, readable by the owner only (the
/// edge's holds the join token).
fn save<T: serde::Serialize>(path: &Path, config: &T) -> Result<(), UpError> {
    let yaml = serde_norway::to_string(config).map_err(|err| UpError::Yaml(err.to_string()))?;
    daemonkit::files::write_atomic(path, yaml.as_bytes(), daemonkit::files::Access::Private)
        .map_err(io(path))
}

/// The CA hash a join token starts with.
fn ca_hash(token: &str) -> &str {
    token.split_once('.').map_or("", |(hash, _)| hash)
}

/// Runs the quickstart until `shutdown` is cancelled, printing progress and
/// the summary to `out`.
pub async fn up(
    options: &UpOptions,
    shutdown: CancellationToken,
    out: &mut (dyn Write + Send),
) -> Result<(), UpError> {
    // Absolute, so that every path printed works from any directory.
    let root = std::path::absolute(&options.data_dir).map_err(io(&options.data_dir))?;
    let layout = Layout::new(root);
    std::fs::create_dir_all(layout.root()).map_err(io(layout.root()))?;
    // One instance per data directory: the lock lasts as long as the file
    // stays open, and the OS drops it when the process dies.
    let lock_path = layout.root().join(".lock");
    let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(UpError::InUse(layout.root().to_owned()))
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(UpError::Io {
                path: lock_path,
                source,
            })
        }
    }
    // Terminal output is best effort: a closed stdout must not stop the system.
    let cloud_path = layout.cloud_config();
    let cloud_config: cloudcore::CloudCoreConfig = if cloud_path.exists() {
        let _ = writeln!(out, "cloud: reusing {}", cloud_path.display());
        let mut config: cloudcore::CloudCoreConfig = load(&cloud_path)?;
        if options.ports == Ports::Any {
            // Free ports again: the ones of the last run may be taken.
            layout::cloud_listeners(&mut config, Ports::Any);
        }
        config
    } else {
        let config = layout::cloud_config(&layout, options.ports);
        save(&cloud_path, &config)?;
        let _ = writeln!(out, "cloud: wrote {}", cloud_path.display());
        config
    };
    let cloud = cloudcore::start(cloud_config, shutdown.child_token(), |_| {}).await?;
    let addrs = cloud.addrs;
    // A Ready condition from an earlier run does not count: heartbeats
    // have whole seconds, hence the second of slack.
    let edge_started =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(1);
    let edge = match start_edge(options, &layout, &cloud, &shutdown, out).await {
        Ok(edge) => edge,
        Err(err) => {
            shutdown.cancel();
            let _ = cloud.wait().await;
            return Err(err);
        }
    };
    let kubeconfig = cloud
        .kubeconfig()
        .map_or_else(|| layout.cloud_dir().join("kubeconfig"), Path::to_path_buf);
    let nodes: Api<Node> = Api::all(cloud.kube_client());
    let ready = tokio::select! {
        ready = wait_ready(&nodes, &options.node_name, edge_started) => ready,
        () = shutdown.cancelled() => false,
    };
    if !ready && !shutdown.is_cancelled() {
        tracing::warn!(node = %options.node_name, "the node is not Ready after {READY_PATIENCE:?}; the logs above say why");
    }
    let summary = Summary {
        data_dir: layout.root().to_owned(),
        kubeconfig,
        kube_api: addrs.kube_api,
        websocket: addrs.websocket,
        quic: addrs.quic,
        https: addrs.https,
        cloud_monitor: addrs.monitor,
        node: options.node_name.clone(),
        metaserver: edge.metaserver,
        mqtt: edge.mqtt,
        edge_monitor: edge.monitor,
        examples: options.examples.clone(),
        ready,
    };
    if !shutdown.is_cancelled() {
        let _ = write!(out, "{}", summary.render());
        let _ = out.flush();
    }
    shutdown.cancelled().await;
    let _ = writeln!(out, "stopping edgecore, then cloudcore");
    let edge_result = edge.wait().await;
    let cloud_result = cloud.wait().await;
    edge_result?;
    cloud_result?;
    let _ = writeln!(
        out,
        "stopped; the data stays in {}",
        layout.root().display()
    );
    Ok(())
}

/// Joins the edge (first run, or a new cloud CA) or reuses its
/// configuration, points it at this run's cloud, and starts it.
async fn start_edge(
    options: &UpOptions,
    layout: &Layout,
    cloud: &cloudcore::Started,
    shutdown: &CancellationToken,
    out: &mut (dyn Write + Send),
) -> Result<edgecore::Started, UpError> {
    let websocket = cloud
        .addrs
        .websocket
        .ok_or(UpError::NoListener("WebSocket"))?;
    let https = cloud.addrs.https.ok_or(UpError::NoListener("HTTPS"))?;
    let token = cloud.pki().token();
    let path = layout.edge_config();
    if path.exists() {
        let joined: edgecore::EdgeCoreConfig = load(&path)?;
        if ca_hash(&joined.modules.edge_hub.token) == ca_hash(&token) {
            let _ = writeln!(out, "edge: reusing {}", path.display());
        } else {
            let _ = writeln!(out, "edge: the cloud's CA changed; joining again");
            let reset = edgecore::join::ResetOptions {
                config: path.clone(),
                force: true,
                systemd: None,
            };
            edgecore::join::reset(&reset, &mut std::io::empty(), out).await?;
        }
    }
    if !path.exists() {
        let _ = writeln!(out, "edge: joining {} as {}", websocket, options.node_name);
        let join = edgecore::join::JoinOptions {
            cloudcore_ipport: websocket.to_string(),
            token,
            node_name: options.node_name.clone(),
            cert_port: https.port(),
            quic: false,
            quic_port: edgecore::join::DEFAULT_QUIC_PORT,
            labels: Default::default(),
            config_dir: layout.edge_dir(),
            data_dir: layout.edge_data_dir(),
            with_systemd: None,
        };
        edgecore::join::join(&join, out).await?;
    }
    let mut config: edgecore::EdgeCoreConfig = load(&path)?;
    layout::edge_listeners(&mut config, options.ports);
    layout::edge_cloud_addrs(&mut config, &websocket.to_string(), &https.to_string());
    save(&path, &config)?;
    Ok(edgecore::start(config, shutdown.child_token(), |_| {}).await?)
}

/// Whether `node`'s Ready condition turned True, with a heartbeat from
/// `since` on, within [`READY_PATIENCE`].
async fn wait_ready(nodes: &Api<Node>, node: &str, since: k8s_openapi::jiff::Timestamp) -> bool {
    let deadline = tokio::time::Instant::now() + READY_PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let ready = nodes.get_opt(node).await.ok().flatten().is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| {
                    c.type_ == "Ready"
                        && c.status == "True"
                        && c.last_heartbeat_time.as_ref().is_some_and(|t| t.0 >= since)
                })
        });
        if ready {
            return true;
        }
        tokio::time::sleep(READY_POLL).await;
    }
    false
}
