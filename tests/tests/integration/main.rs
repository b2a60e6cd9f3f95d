//! The end-to-end tests (real cloudcore and edgecore daemons), one module per area, linked into one test
//! binary: each binary links every dependency again, and one per file
//! filled CI's build disk. nextest still runs every test in its own process.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed set-up step should panic"
)]

mod config_reference;
mod converge;
mod device_controller;
mod devices;
mod edge_controller;
mod join;
mod kube_api;
mod kube_restart;
mod kubectl_cloud;
mod link;
mod manifests;
mod meta_kill;
mod meta_query;
mod metaserver;
#[path = "../../../edgecore/tests/integration/support/mosquitto.rs"]
mod mosquitto;
mod node_authz;
mod outbox_kill;
mod pki_secrets;
mod real_apiserver;
mod shutdown;
mod tidy;
