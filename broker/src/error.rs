//! [`BrokerError`]: why the embedded broker could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A boxed error from rmqtt (which reports `anyhow` errors) or a plugin.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`RunningBroker::start`](crate::RunningBroker::start) failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// `modules.eventBus.broker.websocket` is not `host:port`.
    #[error("broker websocket address {value:?} is not host:port")]
    WebsocketAddress {
        /// The configured value.
        value: String,
        /// The parse failure.
        #[source]
        source: std::net::AddrParseError,
    },
    /// The broker's data directory could not be created.
    #[error("cannot create the broker data directory {}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// A broker of this process has already opened the stores under this
    /// directory; rmqtt cannot close them, so they stay locked until the
    /// process exits. Restart in a new process, or use another directory.
    #[error(
        "the broker stores under {} are still open in this process (rmqtt cannot close them)",
        path.display()
    )]
    DataDirOpen {
        /// The data directory.
        path: PathBuf,
    },
    /// A listener could not bind its address.
    #[error("the MQTT broker cannot listen on {addr} ({listener})")]
    Bind {
        /// `tcp` or `websocket`.
        listener: &'static str,
        /// The address it was asked to bind.
        addr: SocketAddr,
        /// The bind failure.
        #[source]
        source: BoxError,
    },
    /// A plugin's configuration could not be written.
    #[error("cannot write the configuration of broker plugin {plugin}")]
    PluginConfig {
        /// The rmqtt plugin.
        plugin: &'static str,
        /// The serialisation failure.
        #[source]
        source: toml::ser::Error,
    },
    /// A plugin failed to start (for the storage plugins: the store under
    /// the data directory could not be opened, e.g. because another broker
    /// holds it).
    #[error("broker plugin {plugin} failed to start")]
    Plugin {
        /// The rmqtt plugin.
        plugin: &'static str,
        /// rmqtt's error.
        #[source]
        source: BoxError,
    },
    /// The broker's runtime could not be created.
    #[error("cannot create the broker's runtime")]
    Runtime(#[source] std::io::Error),
    /// Start-up did not finish within its time limit.
    #[error("the MQTT broker did not start within {0:?}")]
    StartTimeout(std::time::Duration),
    /// The start-up task panicked or was cancelled.
    #[error("the MQTT broker's start-up task failed")]
    StartTask(#[source] tokio::task::JoinError),
}

/// Result of broker operations.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
