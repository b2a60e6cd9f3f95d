//! cloudcore's Kubernetes side: the one `kube::Client` the controllers use,
//! pointed at a real cluster or at cloudcore's own embedded API.
//!
//! ```no_run
//! # async fn demo(config: cloudcore::CloudCoreConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use tokio_util::sync::CancellationToken;
//!
//! let shutdown = CancellationToken::new();
//! let mut api = cloudcore::kubeapi::start(&config, shutdown.clone()).await?;
//! let crds: Vec<serde_json::Value> = crds::all()
//!     .into_iter()
//!     .map(|(_, crd)| serde_json::to_value(crd))
//!     .collect::<Result<_, _>>()?;
//! api.apply_crds(&crds).await?;
//! let client: kube::Client = api.client.clone();
//! if let Some(server) = api.take_server_task() {
//!     tokio::spawn(server); // ends after `shutdown` is cancelled
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `client.rs`: which cluster ([`Source`]) and the client for it.
//! - `embedded.rs`: the embedded API server ([`Embedded`]).
//! - `crds.rs`: applying CRDs to the embedded API at start.
//! - `credentials.rs`: the embedded API's CA, serving certificate and
//!   admin token (`<dataDir>/apiserver/`).
//! - `auth.rs`: the bearer-token middleware.
//! - `kubeconfig.rs`: the admin kubeconfig (`<dataDir>/kubeconfig`).

mod auth;
mod client;
mod crds;
mod credentials;
mod embedded;
mod kubeconfig;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use client::{connect, connect_to, Env, Source};
pub use crds::apply_crds;
pub use embedded::{Embedded, EmbeddedOptions, SYSTEM_NAMESPACES};

use crate::config::CloudCoreConfig;

/// Why the Kubernetes client or the embedded API could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KubeApiError {
    /// `kubeAPIConfig.embedded.bindAddress` is not `ip:port`.
    #[error("kubeAPIConfig.embedded.bindAddress {addr:?} is not ip:port")]
    BadAddress {
        /// The configured address.
        addr: String,
    },
    /// The embedded API could not listen.
    #[error("cannot listen on {addr} for the embedded Kubernetes API (kubeAPIConfig.embedded.bindAddress)")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file of the embedded API could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored credential is unusable; it is not replaced on its own
    /// (kubeconfigs handed out rely on it). Remove it to make a new one.
    #[error("{} is unusable: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key or certificate could not be made.
    #[error("cannot make the embedded API's certificates")]
    Certificate(#[from] crate::pki::PkiError),
    /// The TLS configuration could not be built.
    #[error("embedded API TLS configuration")]
    Tls(#[from] rustls::Error),
    /// The object store could not open or read.
    #[error("embedded API store")]
    Store(#[from] kubestore::StoreError),
    /// A write to the object store failed.
    #[error("embedded API store write")]
    Write(#[from] kubestore::WriteError),
    /// The kubeconfig could not be written as YAML.
    #[error("YAML")]
    Yaml(#[from] serde_norway::Error),
    /// A CRD cannot be served.
    #[error("CustomResourceDefinition {name:?}")]
    Crd {
        /// Its name.
        name: String,
        /// Why.
        #[source]
        source: kubestore::crd::CrdError,
    },
    /// A CRD is not named `<plural>.<group>`.
    #[error("CustomResourceDefinition {name:?} must be named {expected:?}")]
    CrdName {
        /// Its name.
        name: String,
        /// The name it must have.
        expected: String,
    },
    /// A CRD kept changing while it was applied.
    #[error("CustomResourceDefinition {0:?} kept changing while it was applied")]
    Conflict(String),
    /// A kubeconfig file could not be read.
    #[error("kubeconfig {}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A kubeconfig does not make a client configuration.
    #[error("Kubernetes client configuration from {origin}")]
    Config {
        /// Where it came from.
        origin: String,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The in-cluster configuration could not be read.
    #[error("in-cluster Kubernetes configuration")]
    InCluster(#[source] kube::config::InClusterError),
    /// The client could not be built.
    #[error("Kubernetes client for {origin}")]
    Client {
        /// Where it points.
        origin: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// No cluster is configured and no embedded API was given.
    #[error(
        "no Kubernetes API: set kubeAPIConfig.kubeConfig, KUBECONFIG, or start the embedded API"
    )]
    NoCluster,
}

/// Result of this module.
pub type Result<T, E = KubeApiError> = std::result::Result<T, E>;

/// cloudcore's connection to Kubernetes.
pub struct KubeApi {
    /// The client the controllers use.
    pub client: kube::Client,
    /// The embedded API, when cloudcore serves its own.
    pub embedded: Option<Embedded>,
    /// The kubeconfig the client was built from (the embedded API's admin
    /// kubeconfig, or the first configured file); none in a cluster.
    pub kubeconfig_path: Option<PathBuf>,
    /// Where the client points.
    pub source: Source,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi")
            .field("source", &self.source)
            .field("embedded", &self.embedded)
            .field("kubeconfig_path", &self.kubeconfig_path)
            .finish_non_exhaustive()
    }
}

impl KubeApi {
    /// Where the embedded API listens, if it runs.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.embedded.as_ref().map(Embedded::addr)
    }

    /// The kubeconfig the client was built from, if any.
    pub fn kubeconfig_path(&self) -> Option<&Path> {
        self.kubeconfig_path.as_deref()
    }

    /// Applies `crds` to the embedded API (see [`apply_crds`]); returns how
    /// many were created or changed. On a real cluster CRDs are the
    /// operator's to install (as with KubeEdge), so nothing is done.
    pub async fn apply_crds(&self, crds: &[Value]) -> Result<usize> {
        match &self.embedded {
            Some(api) => api.apply_crds(crds).await,
            None => {
                tracing::debug!(source = %self.source, "CRDs are left to the cluster's operator");
                Ok(0)
            }
        }
    }

    /// The embedded API's server task (once), to be awaited at shutdown;
    /// `None` without an embedded API.
    pub fn take_server_task(&mut self) -> Option<JoinHandle<()>> {
        self.embedded.as_mut().and_then(Embedded::take_task)
    }

    /// Stops the embedded API, if any, and waits for it.
    pub async fn stop(self) {
        if let Some(api) = self.embedded {
            api.stop().await;
        }
    }
}

/// Connects cloudcore to Kubernetes per `config.kubeAPIConfig` and the
/// process environment ([`Source::choose`]), starting the embedded API when
/// no cluster is configured; it stops when `shutdown` is cancelled.
pub async fn start(config: &CloudCoreConfig, shutdown: CancellationToken) -> Result<KubeApi> {
    start_with_env(config, &Env::from_process(), shutdown).await
}

/// [`start`] with the environment given (tests).
pub async fn start_with_env(
    config: &CloudCoreConfig,
    env: &Env,
    shutdown: CancellationToken,
) -> Result<KubeApi> {
    let source = Source::choose(&config.kube_api_config, env);
    if source != Source::Embedded {
        let client = connect_to(&source).await?;
        let kubeconfig_path = match &source {
            Source::Kubeconfig { paths, .. } => paths.first().cloned(),
            _ => None,
        };
        return Ok(KubeApi {
            client,
            embedded: None,
            kubeconfig_path,
            source,
        });
    }
    let embedded = Embedded::start(
        &EmbeddedOptions::from_config(config),
        shutdown.child_token(),
    )
    .await?;
    let client = match connect(&config.kube_api_config, Some(&embedded)).await {
        Ok(client) => client,
        Err(err) => {
            embedded.stop().await;
            return Err(err);
        }
    };
    Ok(KubeApi {
        client,
        kubeconfig_path: Some(embedded.kubeconfig_path().to_path_buf()),
        embedded: Some(embedded),
        source,
    })
}
