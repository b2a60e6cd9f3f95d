//! Apiary's edge daemon, as a library: [`run`] takes a validated
//! [`EdgeCoreConfig`] and a shutdown token, so tests embed it the same way
//! `main.rs` runs it.
//!
//! # Layout
//!
//! - [`config`]: `edgecore.yaml` in KubeEdge's shape, with validation.
//! - [`certmgr`]: joining with a token and rotating the node certificate.
//! - [`edgehub`]: the link to the cloud, with the SQLite outbox.
//! - [`metamanager`]: the SQLite store of what the cloud sent, acked after
//!   commit, and queries.
//! - [`metaserver`]: the local Kubernetes-style API over that store.
//! - [`nodestatus`]: the Node, its status and its Lease.
//! - `daemon.rs`: start-up (certificate, EdgeHub, MetaManager, MetaServer,
//!   node status, monitor, beehive) and shutdown.
//!
//! The other modules (eventbus, devicetwin, servicebus) are added by the
//! issues that build them; each registers in `daemon.rs`.

pub mod certmgr;
pub mod config;
mod daemon;
pub mod db;
pub mod devicetwin;
pub mod edgehub;
pub mod eventbus;
pub mod metamanager;
pub mod metaserver;
pub mod nodestatus;
pub mod servicebus;

pub use config::EdgeCoreConfig;
pub use daemon::{node_name, run, start, RunError, Started, DEFAULT_CONFIG_PATH, SHUTDOWN_GRACE};
