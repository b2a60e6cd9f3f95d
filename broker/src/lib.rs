//! edgecore's embedded MQTT broker: [rmqtt] on a runtime of its own.
//!
//! KubeEdge devices and mappers talk to edgecore over MQTT on `$hw/...`
//! topics; when `mqttMode` is 0 or 1 edgecore serves them itself. This crate
//! starts that broker from the `modules.eventBus.broker` section of
//! edgecore.yaml ([`Broker`]) and stops it again ([`RunningBroker`]).
//!
//! What rmqtt's plugins carry out for us: retained messages
//! (`rmqtt-retainer`), persistent sessions (`rmqtt-session-storage`) and
//! `$SYS` topics (`rmqtt-sys-topic`); `plugins` writes their configuration
//! from ours. Users and the topic ACL are two small hook handlers of ours
//! (`auth`, `acl`), not rmqtt-acl: it logs passwords, and its per-client
//! topic rules race with reconnects.
//!
//! # Layout
//!
//! - `config`: the YAML section ([`Broker`] and its ACL types).
//! - `plugins`: that section as rmqtt plugin configuration (pure).
//! - `auth`: who may connect, and the rmqtt hook handler.
//! - `acl`: the topic ACL and payload limit, and the rmqtt hook handler.
//! - `closer`: closes connections left open after DISCONNECT.
//! - `server`: [`BrokerSettings`], [`RunningBroker`]: the runtime, start
//!   and stop.
//! - `setup`: what start does on the broker's runtime: listeners, context,
//!   plugins, server.
//! - `error`: [`BrokerError`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), broker::BrokerError> {
//! let broker = broker::RunningBroker::start(broker::BrokerSettings {
//!     listen: "127.0.0.1:1884".parse().expect("an address"),
//!     config: broker::Broker::default(),
//!     data_dir: "/var/lib/kubeedge/broker".into(),
//!     bus_username: String::new(),
//!     bus_password: String::new(),
//!     session_queue: 100,
//! })
//! .await?;
//! let (user, password) = broker.internal_credentials();
//! # let _ = (user, password);
//! broker.stop();
//! # Ok(())
//! # }
//! ```
//!
//! [rmqtt]: https://crates.io/crates/rmqtt

mod acl;
mod auth;
mod closer;
mod config;
mod error;
mod plugins;
mod server;
mod setup;

pub use config::{AclAction, AclPermission, AclRule, Broker, BrokerAcl};
pub use error::{BoxError, BrokerError, Result};
pub use server::{BrokerSettings, RunningBroker};
