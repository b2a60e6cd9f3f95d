//! Apiary's cloud daemon, as a library: [`run`] takes a validated
//! [`CloudCoreConfig`] and a shutdown token, so tests embed it the same way
//! `main.rs` runs it.
//!
//! # Layout
//!
//! - [`config`]: `cloudcore.yaml` in KubeEdge's shape, with validation.
//! - [`authz`]: node authorization of upstream messages (CloudHub's
//!   `Authorizer` over the shared reflectors).
//! - [`pki`]: the CA, server certificate and join tokens.
//! - [`certserver`]: the HTTPS certificate server edges join through.
//! - [`cloudhub`]: the edge-facing module: sessions, per-node queues, acks.
//! - [`devicecontroller`]: Devices ⇄ DeviceTwin on the edges.
//! - [`edgecontroller`]: nodes, pods, configmaps and secrets to the edges;
//!   node and pod status, leases, events and queries from them; node
//!   readiness from the links.
//! - [`synccontroller`]: what each node acked (ObjectSync records) and
//!   catching nodes up after cut links and restarts.
//! - [`kubeapi`]: the Kubernetes client, to a cluster or to the embedded
//!   API cloudcore serves when there is none.
//! - `daemon.rs`: start-up (PKI, certificate server, CloudHub, monitor,
//!   beehive) and shutdown; `gettoken`.
//!
//! Every controller is a beehive module registered in `daemon.rs`.

pub mod authz;
pub mod certserver;
pub mod cloudhub;
pub mod config;
mod daemon;
pub mod devicecontroller;
pub mod edgecontroller;
pub mod kubeapi;
pub mod pki;
pub mod scope;
pub mod synccontroller;

pub use config::CloudCoreConfig;
pub use daemon::{
    gettoken, run, start, start_with_ack_hook, Addrs, RunError, Started, DEFAULT_CONFIG_PATH,
    SHUTDOWN_GRACE,
};
