//! [`EventBusError`]: what can stop EventBus from starting.
//!
//! Once running, EventBus has no fatal errors: a lost broker is redialled,
//! and a message it cannot carry is dropped, logged and counted.

use std::path::PathBuf;

/// Why EventBus cannot be set up or started.
#[derive(Debug, thiserror::Error)]
pub enum EventBusError {
    /// A `modules.eventBus` setting is unusable.
    #[error("modules.eventBus.{key}: {reason}")]
    Config {
        /// The key, below `modules.eventBus`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A TLS file could not be read.
    #[error("modules.eventBus.eventBusTLS: cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file is not the PEM expected.
    #[error("modules.eventBus.eventBusTLS: bad PEM in {}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the certificates or key.
    #[error("modules.eventBus.eventBusTLS")]
    Tls(#[from] rustls::Error),
    /// The `sub_topics` table could not be opened or read.
    #[error("the eventbus topic store")]
    Store(#[from] crate::db::DbError),
}

/// EventBus's result.
pub type Result<T, E = EventBusError> = std::result::Result<T, E>;
