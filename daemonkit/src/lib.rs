//! Start-up plumbing both Apiary daemons share, so that `cloudcore` and
//! `edgecore` behave the same way before their first port opens.
//!
//! # Layout
//!
//! - [`cli`]: the `--config` / `--defaultconfig` / `--minconfig` flags.
//! - [`config`]: YAML config loading with errors that name the key, the
//!   [`DaemonConfig`] trait (validation, unsupported KubeEdge modules,
//!   `--minconfig` keys) and the exit status for a bad file.
//! - [`files`]: atomic writes of keys, certificates and configuration;
//!   private directories.
//! - [`http`]: running an actix-web server until cancelled.
//! - [`launch`]: the common `main`: config, runtime, signals, exit status.
//! - [`logging`]: the tracing subscriber.
//! - [`monitor`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`reference`](mod@reference): the configuration reference (docs/configuration.md),
//!   generated from the config types.
//! - [`signal`]: SIGINT/SIGTERM → cancellation.

pub mod cli;
pub mod config;
pub mod files;
pub mod http;
pub mod launch;
pub mod logging;
pub mod monitor;
pub mod reference;
pub mod signal;

pub use cli::{ConfigArgs, Resolved};
pub use config::{Checks, ConfigError, DaemonConfig, Invalid, EXIT_CONFIG};
pub use launch::launch;
