//! Start-up plumbing both Apiary daemons share, so that `cloudcore` and
//! `edgecore` behave the same way before their first port opens.
//!
//! # Layout
//!
//! - [`config`]: YAML config loading with errors that name the key, the
//!   [`DaemonConfig`] trait (validation, unsupported KubeEdge modules,
//!   `--minconfig` keys) and the exit status for a bad file.
//! - [`logging`]: the tracing subscriber.
//! - [`signal`]: SIGINT/SIGTERM → cancellation.

pub mod config;
pub mod logging;
pub mod signal;

pub use config::{Checks, ConfigError, DaemonConfig, Invalid, EXIT_CONFIG};
