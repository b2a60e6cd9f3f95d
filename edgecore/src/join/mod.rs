//! `edgecore join` and `edgecore reset`: keadm's edge commands, built into
//! the daemon's own binary.
//!
//! `join` checks the flags, fetches the cloud's CA and checks it against
//! the token, gets the node certificate ([`crate::certmgr`]), writes
//! `edgecore.yaml`, and with `--with-systemd` installs and starts the
//! unit. Each completed step prints one progress line; each failure names
//! the step and what to do.
//!
//! - `flags.rs`: `HOST:PORT`, node names and labels.
//! - `reset.rs`: stopping edgecore and removing what `join` wrote.
//! - `systemd.rs`: the unit file and `systemctl`.

mod flags;
mod reset;
mod systemd;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::certmgr::{CertManager, CertMgrError};
use crate::config::EdgeCoreConfig;

pub use flags::{parse_labels, FlagError};
pub use reset::{reset, ResetError, ResetOptions};
pub use systemd::{Systemd, SystemdError, UNIT_NAME};

/// KubeEdge's default directory for configuration and certificates.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/kubeedge";
/// KubeEdge's default directory for the database.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/kubeedge";
/// CloudHub's default certificate port.
pub const DEFAULT_CERT_PORT: u16 = 10002;
/// CloudHub's default QUIC port.
pub const DEFAULT_QUIC_PORT: u16 = 10001;

/// What `edgecore join` was asked to do.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// CloudHub's WebSocket address, `HOST:PORT`.
    pub cloudcore_ipport: String,
    /// The join token (`cloudcore gettoken`).
    pub token: String,
    /// The node's name.
    pub node_name: String,
    /// The certificate server's port on the same host.
    pub cert_port: u16,
    /// Dial QUIC instead of WebSocket.
    pub quic: bool,
    /// CloudHub's QUIC port on the same host.
    pub quic_port: u16,
    /// Labels for the Node.
    pub labels: BTreeMap<String, String>,
    /// Where `config/edgecore.yaml`, `ca/` and `certs/` go.
    pub config_dir: PathBuf,
    /// Where the database goes.
    pub data_dir: PathBuf,
    /// Install and start the systemd unit.
    pub with_systemd: Option<Systemd>,
}

/// Why `edgecore join` stopped.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// A flag is malformed.
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// A configuration already exists there.
    #[error("{} exists: this node has joined already; run `edgecore reset` first", .0.display())]
    AlreadyJoined(PathBuf),
    /// Fetching the CA or the certificate failed.
    #[error("getting the node certificate")]
    Cert(#[from] CertMgrError),
    /// The generated configuration does not validate (a bug, or a flag
    /// value the checks above let through).
    #[error("the generated edgecore.yaml is invalid: {0}")]
    Config(String),
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Installing or starting the unit failed.
    #[error("installing the systemd unit")]
    Systemd(#[from] SystemdError),
}

/// The configuration file `join` writes under `config_dir`.
pub fn config_path(config_dir: &Path) -> PathBuf {
    config_dir.join("config").join("edgecore.yaml")
}

/// The edge configuration `join` writes for `options`: KubeEdge's defaults
/// with the cloud's addresses, the token, the node's name and labels, and
/// every file under the two directories.
pub fn config_for(options: &JoinOptions) -> Result<EdgeCoreConfig, FlagError> {
    let cloud = flags::HostPort::parse("--cloudcore-ipport", &options.cloudcore_ipport)?;
    flags::check_node_name(&options.node_name)?;
    crate::certmgr::parse_token(&options.token).map_err(|err| FlagError::Invalid {
        flag: "--token",
        reason: err.to_string(),
    })?;
    let mut config = EdgeCoreConfig::default();
    let under = |dir: &Path, rel: &str| dir.join(rel).display().to_string();
    config.database.data_source = under(&options.data_dir, "edgecore.db");
    config.modules.node_status.hostname_override = options.node_name.clone();
    config.modules.node_status.node_labels = options.labels.clone();
    let hub = &mut config.modules.edge_hub;
    hub.token = options.token.clone();
    hub.http_server = format!("https://{}", cloud.with_port(options.cert_port));
    hub.tls_ca_file = under(&options.config_dir, "ca/rootCA.crt");
    hub.tls_cert_file = under(&options.config_dir, "certs/server.crt");
    hub.tls_private_key_file = under(&options.config_dir, "certs/server.key");
    hub.websocket.enable = !options.quic;
    hub.websocket.server = cloud.to_string();
    hub.quic.enable = options.quic;
    hub.quic.server = cloud.with_port(options.quic_port);
    let meta = &mut config.modules.meta_manager.meta_server;
    meta.tls_ca_file.clone_from(&hub.tls_ca_file);
    meta.tls_cert_file.clone_from(&hub.tls_cert_file);
    meta.tls_private_key_file
        .clone_from(&hub.tls_private_key_file);
    Ok(config)
}

/// Runs `edgecore join`, printing a line to `out` per completed step.
/// Returns the path of the written configuration.
pub async fn join(
    options: &JoinOptions,
    out: &mut (dyn Write + Send),
) -> Result<PathBuf, JoinError> {
    let path = config_path(&options.config_dir);
    let config = config_for(options)?;
    if path.exists() {
        return Err(JoinError::AlreadyJoined(path));
    }
    let problems = daemonkit::DaemonConfig::validate(&config);
    if !problems.is_empty() {
        let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(JoinError::Config(listed.join("; ")));
    }
    // The flags line, the three certificate steps, the file, the unit.
    let total = if options.with_systemd.is_some() { 6 } else { 5 };
    let mut step = 0;
    let mut say = |line: &str| {
        step += 1;
        // Progress lines are best effort: a closed stdout must not undo a join.
        let _ = writeln!(out, "[{step}/{total}] {line}");
    };
    let transport = if options.quic { "QUIC" } else { "WebSocket" };
    let server = if options.quic {
        &config.modules.edge_hub.quic.server
    } else {
        &config.modules.edge_hub.websocket.server
    };
    say(&format!(
        "node {} will dial cloudcore at {server} over {transport}",
        options.node_name
    ));
    let certs = CertManager::new(&config.modules.edge_hub, &options.node_name);
    certs
        .join_reporting(&mut |done| say(&done.to_string()))
        .await?;
    let yaml =
        serde_norway::to_string(&config).map_err(|err| JoinError::Config(err.to_string()))?;
    daemonkit::files::write_atomic(&path, yaml.as_bytes(), daemonkit::files::Access::Private)
        .map_err(|source| JoinError::Write {
            path: path.clone(),
            source,
        })?;
    say(&format!(
        "wrote {} (0600: it holds the token)",
        path.display()
    ));
    if let Some(systemd) = &options.with_systemd {
        systemd.install(&path, &[&options.config_dir, &options.data_dir])?;
        say(&format!(
            "installed {} and started it (systemctl enable --now {UNIT_NAME})",
            systemd.unit_path().display()
        ));
    }
    Ok(path)
}
