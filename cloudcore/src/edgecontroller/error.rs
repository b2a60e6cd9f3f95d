//! EdgeController's errors.

use thiserror::Error;

/// Why an EdgeController step failed. Upstream failures become the `error`
/// reply the edge gets, so their text names what failed.
#[derive(Debug, Error)]
pub enum EdgeControllerError {
    /// An upstream message could not be read.
    #[error("edgecontroller: malformed {resource:?} message: {reason}")]
    Malformed {
        /// The message's resource.
        resource: String,
        /// What was wrong.
        reason: String,
    },
    /// An upstream message asks for something EdgeController does not do.
    #[error("edgecontroller: unsupported operation {operation:?} on {resource:?}")]
    Unsupported {
        /// The message's operation.
        operation: String,
        /// The message's resource.
        resource: String,
    },
    /// The Kubernetes API refused or failed a request.
    #[error("edgecontroller: {call} {target}")]
    Kube {
        /// What was asked (`create node`, `replace node status`, ...).
        call: &'static str,
        /// The object, `<namespace>/<name>` or a Node's name.
        target: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object kept changing under a read-modify-write.
    #[error("edgecontroller: {call} {target}: still conflicting after {attempts} attempts")]
    Conflict {
        /// What was asked.
        call: &'static str,
        /// The object.
        target: String,
        /// How many times it was tried.
        attempts: u32,
    },
    /// CloudHub could not take a message.
    #[error("edgecontroller: sending to cloudhub")]
    Bus(#[from] beehive::BusError),
}

impl EdgeControllerError {
    /// A short label for the metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            EdgeControllerError::Malformed { .. } => "malformed",
            EdgeControllerError::Unsupported { .. } => "unsupported",
            EdgeControllerError::Kube { .. } => "kube",
            EdgeControllerError::Conflict { .. } => "conflict",
            EdgeControllerError::Bus(_) => "bus",
        }
    }

    /// The text an edge gets in the `error` reply: this error and its
    /// causes, with the API's own message rather than its whole status.
    pub fn reason(&self) -> String {
        match self {
            EdgeControllerError::Kube {
                source: kube::Error::Api(status),
                ..
            } => format!("{self}: {}", status.message),
            other => beehive::error_chain(other),
        }
    }

    /// True for a Kubernetes "not found" answer.
    pub fn is_not_found(&self) -> bool {
        matches!(self, EdgeControllerError::Kube { source: kube::Error::Api(status), .. } if status.code == 404)
    }
}

/// An EdgeController result.
pub type Result<T, E = EdgeControllerError> = std::result::Result<T, E>;
