//! Apiary's cloud daemon, as a library: [`run`] takes a validated
//! [`CloudCoreConfig`] and a shutdown token, so tests embed it the same way
//! `main.rs` runs it.
//!
//! # Layout
//!
//! - [`config`]: `cloudcore.yaml` in KubeEdge's shape, with validation.
//! - `daemon.rs`: start-up and shutdown of the beehive modules.
//!
//! The modules (cloudhub, edgecontroller, devicecontroller, synccontroller) are added by the issues that build them; each registers in
//! `daemon.rs`.

pub mod config;
mod daemon;

pub use config::CloudCoreConfig;
pub use daemon::{run, RunError, DEFAULT_CONFIG_PATH, SHUTDOWN_GRACE};
