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
//! - [`eventbus`]: MQTT to and from the bus (the embedded broker, from the
//!   `broker` crate, or an external one).
//! - [`devicetwin`]: devices, twins and states, answered on MQTT and synced
//!   with the cloud.
//! - [`servicebus`]: HTTP between the cloud and local apps.
//! - [`join`]: `edgecore join` and `edgecore reset` (keadm's edge commands).
//! - [`db`]: the SQLite connection of the small-table modules.
//! - `daemon.rs`: start-up (certificate, EdgeHub, MetaManager, MetaServer,
//!   node status, the broker, EventBus, DeviceTwin, ServiceBus, monitor,
//!   beehive) and shutdown.

pub mod certmgr;
pub mod config;
mod daemon;
pub mod db;
pub mod devicetwin;
pub mod edgehub;
pub mod eventbus;
pub mod join;
pub mod metamanager;
pub mod metaserver;
pub mod nodestatus;
pub mod servicebus;

pub use config::EdgeCoreConfig;
pub use daemon::{
    broker_data_dir, node_name, run, start, RunError, Started, DEFAULT_CONFIG_PATH, SHUTDOWN_GRACE,
};
