//! ServiceBus's errors: [`ServiceBusError`] for the module itself (listener,
//! database, HTTP client) and [`CallError`] for one cloud request to a local
//! app, which becomes an HTTP-style error reply rather than a failure of the
//! module.

use std::time::Duration;

use crate::db::DbError;

/// Why the module could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum ServiceBusError {
    /// The local apps' listener could not be bound.
    #[error("cannot listen on {addr} for ServiceBus (modules.serviceBus.server and port)")]
    Bind {
        /// The configured address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The `target_urls` table could not be opened, read or written.
    #[error("ServiceBus target URLs")]
    Db(#[from] DbError),
    /// The HTTP client for local apps could not be built.
    #[error("cannot build the HTTP client for local apps")]
    Client(#[source] reqwest::Error),
    /// The TLS settings of that client were refused (no TLS is used for the
    /// loopback calls, but the client needs a configuration).
    #[error("cannot configure the HTTP client for local apps")]
    Tls(#[source] rustls::Error),
}

/// The result of module-level operations.
pub type Result<T, E = ServiceBusError> = std::result::Result<T, E>;

/// Why a cloud request to a local app got no answer from the app. Each has
/// the status code of the error reply ([`CallError::status`]).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The resource is not `<port>:<path>` with a port in 1..=65535.
    #[error("the resource {resource:?} is not <port>:<path>: {reason}")]
    BadResource {
        /// The resource as received.
        resource: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The content is not a request `{header, body, method, url}`.
    #[error("the content is not an HTTP request {{header, body, method, url}}: {0}")]
    BadContent(String),
    /// The request names an invalid method, header or body.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// No connection could be made (nothing listens on the port).
    #[error("cannot reach the service at {url}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The app did not answer in time.
    #[error("the service at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The URL called.
        url: String,
        /// `modules.serviceBus.timeout`.
        timeout: Duration,
    },
    /// The app's answer body is over the limit.
    #[error("the response of {url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL called.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The exchange failed after connecting (reset, bad HTTP).
    #[error("error calling the service at {url}")]
    Failed {
        /// The URL called.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
}

impl CallError {
    /// The status code of the error reply: 400 for a bad request, 404 when
    /// the app cannot be reached (as KubeEdge answers), 504 on timeout, 500
    /// otherwise.
    pub fn status(&self) -> u16 {
        match self {
            CallError::BadResource { .. } | CallError::BadContent(_) | CallError::BadRequest(_) => {
                400
            }
            CallError::Unreachable { .. } => 404,
            CallError::Timeout { .. } => 504,
            CallError::TooLarge { .. } | CallError::Failed { .. } => 500,
        }
    }
}
