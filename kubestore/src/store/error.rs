//! Errors of the object store: opening and reading ([`StoreError`]),
//! writing ([`WriteError`], including failed preconditions) and watching
//! ([`WatchError`]).

use crate::store::ObjectKey;

/// The store could not open, read or commit.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite")]
    Sqlite(#[from] rusqlite::Error),
    /// The read pool failed.
    #[error("read pool")]
    Pool(#[from] r2d2::Error),
    /// A stored row is not valid JSON.
    #[error("stored object {key} is not valid JSON")]
    Corrupt {
        /// The row's key.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A batch could not be committed (disk full, I/O error); every write
    /// in it failed and may be retried.
    #[error("commit failed")]
    Commit(#[source] std::sync::Arc<rusqlite::Error>),
    /// The writer thread could not start.
    #[error("cannot start the writer thread")]
    Thread(#[source] std::io::Error),
    /// The store is shut down.
    #[error("the store is closed")]
    Closed,
}

/// `Result` with [`StoreError`].
pub type StoreResult<T> = Result<T, StoreError>;

/// A write was refused or failed; nothing of it was applied.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// [`Expect::Absent`](crate::Expect::Absent) but the object exists.
    #[error("{0:?} already exists")]
    AlreadyExists(Box<ObjectKey>),
    /// The object must exist but does not.
    #[error("{0:?} not found")]
    NotFound(Box<ObjectKey>),
    /// The object is at another revision (or has another uid) than
    /// expected.
    #[error("{key:?} has changed: {reason}")]
    Conflict {
        /// The object.
        key: Box<ObjectKey>,
        /// What differed.
        reason: String,
    },
    /// The value is not an object.
    #[error("{0:?}: the value is not a JSON object")]
    Invalid(Box<ObjectKey>),
    /// The store failed (disk full, I/O error, closed); retry later.
    #[error("store")]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for WriteError {
    fn from(err: rusqlite::Error) -> Self {
        WriteError::Store(StoreError::Sqlite(err))
    }
}

/// A watch could not start or cannot go on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WatchError {
    /// The history no longer reaches back to the requested revision
    /// (HTTP 410 Gone): list again and watch from the list's revision.
    #[error("too old resource version: {requested} ({oldest})")]
    Gone {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision a watch can start from now.
        oldest: u64,
    },
    /// The watcher fell too far behind the changes and was dropped; list
    /// again.
    #[error("the watcher fell behind by {0} changes")]
    Lagged(u64),
    /// The store is shut down.
    #[error("the store is closed")]
    Closed,
}
