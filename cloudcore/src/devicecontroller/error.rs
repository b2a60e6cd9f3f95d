//! DeviceController's errors.

use thiserror::Error;

/// Why a DeviceController step failed.
#[derive(Debug, Error)]
pub enum DeviceControllerError {
    /// An upstream message could not be read.
    #[error("malformed {resource:?} message: {reason}")]
    Malformed {
        /// The message's resource.
        resource: String,
        /// What was wrong.
        reason: String,
    },
    /// The Kubernetes API refused or failed a request.
    #[error("Kubernetes API request for device {device}")]
    Kube {
        /// `<namespace>/<name>`.
        device: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// CloudHub could not take a message.
    #[error("sending to cloudhub")]
    Bus(#[from] beehive::BusError),
}

impl DeviceControllerError {
    /// A short label for the `devicecontroller_errors` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceControllerError::Malformed { .. } => "malformed",
            DeviceControllerError::Kube { .. } => "kube",
            DeviceControllerError::Bus(_) => "bus",
        }
    }
}

/// A DeviceController result.
pub type Result<T, E = DeviceControllerError> = std::result::Result<T, E>;
