//! The errors beehive reports: [`BusError`] for sending, [`ModuleError`] for
//! a module's `run`, [`BuildError`] for registration and [`ShutdownError`]
//! for a shutdown that overran its grace period.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

/// Any error a module may fail with, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of a bus operation.
pub type Result<T, E = BusError> = std::result::Result<T, E>;

/// Why the bus could not deliver a message or a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BusError {
    /// No module or endpoint of that name is registered.
    #[error("no module named {module:?} on the bus")]
    UnknownModule {
        /// The name asked for.
        module: String,
    },
    /// No module or endpoint belongs to that group.
    #[error("no group named {group:?} on the bus")]
    UnknownGroup {
        /// The group asked for.
        group: String,
    },
    /// The mailbox had no room (only from [`Bus::try_send`](crate::Bus::try_send)).
    /// The message was dropped.
    #[error("mailbox of {module:?} is full")]
    Full {
        /// The receiving module.
        module: String,
    },
    /// The receiving module has stopped for good (its mailbox was dropped).
    #[error("mailbox of {module:?} is closed")]
    Closed {
        /// The receiving module.
        module: String,
    },
    /// A request was not enqueued and answered within its timeout.
    #[error("request {msg_id} to {module:?} got no reply within {timeout:?}")]
    Timeout {
        /// The module asked.
        module: String,
        /// The request's `msg_id`.
        msg_id: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// Another request with the same `msg_id` is still waiting for its reply.
    #[error("a request with msg_id {msg_id} is already waiting for a reply")]
    DuplicateRequest {
        /// The clashing `msg_id`.
        msg_id: String,
    },
}

/// Why a module's `run` failed. Build one from any error with
/// [`ModuleError::new`] (or `?` on a [`BusError`], an `std::io::Error`, a
/// `String` or a `&str`); `Display` and `source` are the wrapped error's.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct ModuleError(BoxError);

impl ModuleError {
    /// Wraps any error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        ModuleError(error.into())
    }

    /// An error that is only a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        ModuleError(message.to_string().into())
    }

    /// The wrapped error.
    pub fn into_inner(self) -> BoxError {
        self.0
    }
}

impl From<BoxError> for ModuleError {
    fn from(error: BoxError) -> Self {
        ModuleError(error)
    }
}

impl From<BusError> for ModuleError {
    fn from(error: BusError) -> Self {
        ModuleError(Box::new(error))
    }
}

impl From<std::io::Error> for ModuleError {
    fn from(error: std::io::Error) -> Self {
        ModuleError(Box::new(error))
    }
}

impl From<String> for ModuleError {
    fn from(message: String) -> Self {
        ModuleError(message.into())
    }
}

impl From<&str> for ModuleError {
    fn from(message: &str) -> Self {
        ModuleError(message.into())
    }
}

/// Why [`BeehiveBuilder::build`](crate::BeehiveBuilder::build) refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    /// Two modules or endpoints share a name.
    #[error("module name {name:?} is registered twice")]
    DuplicateName {
        /// The name registered twice.
        name: String,
    },
    /// A module or endpoint has an empty name or group.
    #[error("module {name:?} has an empty name or group")]
    EmptyName {
        /// The offending name (may be empty).
        name: String,
    },
}

/// Why [`Beehive::shutdown`](crate::Beehive::shutdown) did not end cleanly.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShutdownError {
    /// Some modules ignored cancellation past the grace period; they were
    /// aborted.
    #[error("modules still running after {grace:?}: {}", modules.join(", "))]
    GraceExceeded {
        /// The grace period given.
        grace: Duration,
        /// The modules still running, sorted by name.
        modules: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_error_is_transparent() {
        let io = std::io::Error::other("disk gone");
        let err = ModuleError::from(io);
        assert_eq!(err.to_string(), "disk gone");
        let err = ModuleError::from(BusError::UnknownModule {
            module: "twin".into(),
        });
        assert_eq!(err.to_string(), r#"no module named "twin" on the bus"#);
        assert_eq!(ModuleError::msg(42).to_string(), "42");
    }

    #[test]
    fn shutdown_error_names_modules() {
        let err = ShutdownError::GraceExceeded {
            grace: Duration::from_secs(1),
            modules: vec!["a".into(), "b".into()],
        };
        assert_eq!(err.to_string(), "modules still running after 1s: a, b");
    }
}
