//! The embedded Kubernetes API: [`kubestore::rest`], writable, over a
//! [`kubestore::Store`] at `<dataDir>/apiserver.db`, served by actix-web
//! over TLS at `kubeAPIConfig.embedded.bindAddress` (default
//! `127.0.0.1:6443`). Every request but the health endpoints needs the
//! admin bearer token (`auth.rs`); the serving certificate and token come
//! from `credentials.rs`, and the admin kubeconfig is written to
//! `<dataDir>/kubeconfig` (`kubeconfig.rs`).
//!
//! At start it serves the built-in resources of [`kubestore::crd`], the CRDs
//! stored earlier, and makes the namespaces every cluster has (`default`,
//! `kube-system`, `kube-public`, `kube-node-lease`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use kubestore::rest::{self, RestConfig};
use kubestore::{crd, Expect, ObjectKey, Resources, Store, StoreOptions, WriteError, WriteOp};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::auth::{require_token, AdminToken};
use super::credentials::{self, Credentials, Paths};
use super::{crds, kubeconfig, KubeApiError, Result};
use crate::config::CloudCoreConfig;

/// Watch streams and requests get this long to end when the server stops.
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;
/// actix-web worker threads (watches are streams; a worker holds many).
const WORKERS: usize = 2;
/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// What the embedded API needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// `commonConfig.dataDir`: the database, credentials and kubeconfig.
    pub data_dir: PathBuf,
    /// `kubeAPIConfig.embedded.bindAddress` (`ip:port`; port 0 picks one).
    pub bind_address: String,
    /// More names for the serving certificate (CloudHub's advertised
    /// addresses and DNS names) besides `127.0.0.1`, `localhost` and the
    /// bind address.
    pub extra_names: Vec<String>,
}

impl EmbeddedOptions {
    /// The options `config` sets.
    pub fn from_config(config: &CloudCoreConfig) -> EmbeddedOptions {
        let hub = &config.modules.cloud_hub;
        EmbeddedOptions {
            data_dir: PathBuf::from(&config.common_config.data_dir),
            bind_address: config.kube_api_config.embedded.bind_address.clone(),
            extra_names: hub
                .advertise_address
                .iter()
                .chain(&hub.dns_names)
                .cloned()
                .collect(),
        }
    }
}

/// A running embedded API. It stops when the token given to
/// [`Embedded::start`] is cancelled (or on [`Embedded::stop`]).
#[derive(Debug)]
pub struct Embedded {
    addr: SocketAddr,
    url: String,
    kubeconfig: PathBuf,
    store: Store,
    resources: Resources,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Embedded {
    /// Opens the store, loads the CRDs, makes the system namespaces, binds
    /// and serves until `cancel` fires; writes the admin kubeconfig.
    pub async fn start(options: &EmbeddedOptions, cancel: CancellationToken) -> Result<Embedded> {
        let bind: SocketAddr =
            options
                .bind_address
                .parse()
                .map_err(|_| KubeApiError::BadAddress {
                    addr: options.bind_address.clone(),
                })?;
        let bind_error = |source| KubeApiError::Bind {
            addr: options.bind_address.clone(),
            source,
        };
        let listener = std::net::TcpListener::bind(bind).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;

        let (store, creds) = open(options, bind.ip()).await?;
        let resources = Resources::new(crd::cloud_resources());
        let crds = crd::load(&store, &resources).await?;
        ensure_namespaces(&store).await?;

        let url = format!("https://{}", client_addr(addr));
        let kubeconfig = options.data_dir.join("kubeconfig");
        kubeconfig::write(&kubeconfig, &url, &creds.ca_pem, &creds.token)?;

        let mut rest = RestConfig::new(store.clone(), resources.clone(), &git_version());
        rest.read_only = false;
        rest.shutdown = cancel.child_token();
        let task = serve(listener, rest, creds, cancel.clone())?;
        tracing::info!(
            custom_resources = crds,
            revision = store.revision(),
            "embedded Kubernetes API listening on {url}; kubeconfig: {}",
            kubeconfig.display()
        );
        Ok(Embedded {
            addr,
            url,
            kubeconfig,
            store,
            resources,
            cancel,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL clients use, `https://127.0.0.1:6443`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin kubeconfig, `<dataDir>/kubeconfig`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The object store behind the API.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The resources served (grows with CRDs).
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// Creates or updates `crds` (CustomResourceDefinition objects) and
    /// serves their resources; see [`apply_crds`](super::apply_crds).
    pub async fn apply_crds(&self, crds: &[Value]) -> Result<usize> {
        crds::apply_crds(&self.store, &self.resources, crds).await
    }

    /// The server task, to be awaited on the caller's task tracker; it
    /// ends once the server stopped after cancellation.
    pub fn take_task(&mut self) -> Option<JoinHandle<()>> {
        self.task.take()
    }

    /// Stops the server and waits for it (unless its task was taken).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// `v1.33.0-apiary-<version>`, as `/version` reports.
fn git_version() -> String {
    format!("v1.33.0-apiary-{}", env!("CARGO_PKG_VERSION"))
}

/// Where clients reach `addr`: loopback for an unspecified address.
fn client_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// The store and credentials, made on a blocking thread (SQLite, files,
/// key generation).
async fn open(options: &EmbeddedOptions, bind: IpAddr) -> Result<(Store, Credentials)> {
    let data_dir = options.data_dir.clone();
    let names = credentials::server_names(bind, &options.extra_names);
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&data_dir).map_err(|source| KubeApiError::Io {
            path: data_dir.clone(),
            source,
        })?;
        let creds = credentials::load_or_create(&Paths::in_data_dir(&data_dir), &names)?;
        let store = Store::open(data_dir.join("apiserver.db"), StoreOptions::default())?;
        Ok((store, creds))
    })
    .await
    .map_err(|e| KubeApiError::Io {
        path: options.data_dir.clone(),
        source: std::io::Error::other(e),
    })?
}

/// Creates the system namespaces that are missing.
async fn ensure_namespaces(store: &Store) -> Result<()> {
    let gvr = kubestore::Gvr::core("namespaces");
    let groups = SYSTEM_NAMESPACES
        .iter()
        .map(|name| {
            vec![WriteOp::Put {
                key: ObjectKey::new(gvr.clone(), None, name),
                value: namespace(name),
                origin: None,
                expect: Expect::Absent,
            }]
        })
        .collect();
    for (name, result) in SYSTEM_NAMESPACES
        .iter()
        .zip(store.write_groups(groups).await)
    {
        match result {
            Ok(_) => tracing::debug!(namespace = name, "namespace created"),
            Err(WriteError::AlreadyExists(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// A new Namespace object.
fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": crds::now(),
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// TLS 1.2+ with the serving certificate; no client certificates.
fn tls_config(creds: &Credentials) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![creds.server_cert.clone()],
            creds.server_key.clone_key(),
        )?)
}

/// Serves `rest` on `listener` until `cancel` fires.
fn serve(
    listener: std::net::TcpListener,
    rest: RestConfig,
    creds: Credentials,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>> {
    let tls = tls_config(&creds)?;
    let addr = listener
        .local_addr()
        .map_or_else(|_| "listener".to_owned(), |a| a.to_string());
    let token = web::Data::new(AdminToken(creds.token));
    let server = HttpServer::new(move || {
        let rest = rest.clone();
        App::new()
            .app_data(token.clone())
            .wrap(from_fn(require_token))
            .configure(move |cfg| rest::configure(cfg, rest))
    })
    .workers(WORKERS)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen_rustls_0_23(listener, tls)
    .map_err(|source| KubeApiError::Bind { addr, source })?
    .run();
    Ok(tokio::spawn(async move {
        match daemonkit::http::serve_until(server, cancel).await {
            Ok(()) => tracing::info!("embedded Kubernetes API stopped"),
            Err(err) => tracing::error!(%err, "embedded Kubernetes API failed"),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_reach_unspecified_addresses_on_loopback() {
        let any: SocketAddr = "0.0.0.0:6443".parse().unwrap();
        assert_eq!(client_addr(any).to_string(), "127.0.0.1:6443");
        let any6: SocketAddr = "[::]:6443".parse().unwrap();
        assert_eq!(client_addr(any6).to_string(), "[::1]:6443");
        let ip: SocketAddr = "10.0.0.1:6443".parse().unwrap();
        assert_eq!(client_addr(ip), ip);
    }

    #[test]
    fn options_come_from_the_config() {
        let mut config = CloudCoreConfig::default();
        config.common_config.data_dir = "/d".to_owned();
        config.modules.cloud_hub.advertise_address = vec!["10.0.0.9".to_owned()];
        let options = EmbeddedOptions::from_config(&config);
        assert_eq!(options.data_dir, PathBuf::from("/d"));
        assert_eq!(options.bind_address, "127.0.0.1:6443");
        assert!(options.extra_names.contains(&"10.0.0.9".to_owned()));
    }

    #[test]
    fn system_namespaces_look_like_kube_apiserver_s() {
        let ns = namespace("kube-system");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "kube-system"
        );
        assert_eq!(ns["status"]["phase"], "Active");
        assert!(ns["metadata"]["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
    }
}
