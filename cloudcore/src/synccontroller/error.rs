//! SyncController's errors.

use thiserror::Error;

/// Why a SyncController step failed.
#[derive(Debug, Error)]
pub enum SyncControllerError {
    /// The sync records could not be listed at start.
    #[error("listing {kind}s")]
    List {
        /// `ObjectSync` or `ClusterObjectSync`.
        kind: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A sync record could not be written.
    #[error("{op} of sync record {name}")]
    Write {
        /// `create`, `status` or `delete`.
        op: &'static str,
        /// `<node>.<uid>`, with its namespace when it has one.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// CloudHub could not take a catch-up message.
    #[error("sending to cloudhub")]
    Bus(#[from] beehive::BusError),
}

/// A SyncController result.
pub type Result<T, E = SyncControllerError> = std::result::Result<T, E>;
