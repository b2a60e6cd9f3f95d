//! EdgeHub's errors: [`OutboxError`] for the SQLite outbox and
//! [`EdgeHubError`] for settings, TLS, dialling and the link.
//!
//! `OutboxError` is `Clone` (its sources sit behind `Arc`), because one
//! failed transaction answers every caller whose append it carried.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use beehive::BoxError;
use thiserror::Error;

/// The result of an outbox operation.
pub type OutboxResult<T> = std::result::Result<T, OutboxError>;

/// The result of an EdgeHub operation.
pub type Result<T, E = EdgeHubError> = std::result::Result<T, E>;

/// Why the outbox could not do what was asked.
#[derive(Debug, Clone, Error)]
pub enum OutboxError {
    /// The database file could not be opened or prepared.
    #[error("cannot open the outbox at {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// The directory or the writer thread could not be created.
    #[error("cannot start the outbox at {}", path.display())]
    Io {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The outbox holds its maximum number of rows; the message was not
    /// stored.
    #[error("the outbox is full ({max_rows} messages waiting for the cloud)")]
    Full {
        /// The configured cap.
        max_rows: u64,
    },
    /// SQLite reported `SQLITE_FULL`: the disk (or the database's page
    /// cap) is full. The transaction was rolled back.
    #[error("the disk holding the outbox is full")]
    DiskFull(#[source] Arc<rusqlite::Error>),
    /// Any other SQLite failure. The transaction was rolled back.
    #[error("outbox database error")]
    Sqlite(#[source] Arc<rusqlite::Error>),
    /// A message could not be turned into JSON.
    #[error("cannot encode message {msg_id} for the outbox")]
    Encode {
        /// The message's id.
        msg_id: String,
        /// The cause.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// The outbox's writer thread has stopped.
    #[error("the outbox is closed")]
    Closed,
}

impl OutboxError {
    /// Classifies a SQLite error, singling out `SQLITE_FULL`.
    pub(crate) fn from_sqlite(err: rusqlite::Error) -> Self {
        let disk_full = matches!(
            &err,
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull
        );
        if disk_full {
            OutboxError::DiskFull(Arc::new(err))
        } else {
            OutboxError::Sqlite(Arc::new(err))
        }
    }
}

impl From<rusqlite::Error> for OutboxError {
    fn from(err: rusqlite::Error) -> Self {
        OutboxError::from_sqlite(err)
    }
}

/// Why EdgeHub could not start, connect or keep a connection.
#[derive(Debug, Error)]
pub enum EdgeHubError {
    /// The `modules.edgeHub` section cannot be used.
    #[error("invalid edgeHub setting {key}: {reason}")]
    Settings {
        /// The key, e.g. `modules.edgeHub.websocket.server`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS client configuration could not be produced.
    #[error("no TLS client configuration for the cloud link")]
    Tls(#[source] BoxError),
    /// Connecting to the cloud failed.
    #[error("cannot connect to the cloud at {server}")]
    Dial {
        /// `host:port` dialled.
        server: String,
        /// The cause.
        #[source]
        source: link::LinkError,
    },
    /// The connection attempt took longer than the handshake timeout.
    #[error("connecting to the cloud at {server} took longer than {timeout:?}")]
    DialTimeout {
        /// `host:port` dialled.
        server: String,
        /// The handshake timeout.
        timeout: Duration,
    },
    /// Sending or receiving on an established connection failed.
    #[error("the cloud link failed")]
    Link(#[source] link::LinkError),
    /// A write did not complete within the write deadline.
    #[error("a write to the cloud took longer than {0:?}")]
    WriteTimeout(Duration),
    /// Nothing arrived from the cloud within the read deadline.
    #[error("nothing heard from the cloud for {0:?}")]
    ReadDeadline(Duration),
    /// The cloud closed the connection.
    #[error("the cloud closed the connection")]
    Closed,
    /// The outbox failed.
    #[error("outbox failure")]
    Outbox(#[from] OutboxError),
}
