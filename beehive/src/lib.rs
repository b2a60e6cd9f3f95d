//! Apiary's in-process module bus, after KubeEdge's beehive.
//!
//! Each component of a daemon (EdgeHub, MetaManager, DeviceTwin, ...) is a
//! [`Module`] with a name, a group and a bounded mailbox. Modules talk only
//! through the [`Bus`]: point-to-point [`send`](Bus::send), fan-out
//! [`send_to_group`](Bus::send_to_group), and [`request`](Bus::request) /
//! [`respond`](Bus::respond) correlated by `parent_msg_id` (KubeEdge's
//! `SendSync` / `SendResp`). A [`Beehive`] runs the modules on a task
//! tracker, restarts failed ones per their [`RestartPolicy`], and shuts them
//! down with a grace period.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use beehive::{async_trait, BeehiveBuilder, Module, ModuleContext, ModuleError};
//! use tokio_util::sync::CancellationToken;
//!
//! struct Echo;
//!
//! #[async_trait]
//! impl Module for Echo {
//!     fn name(&self) -> &str { "echo" }
//!     fn group(&self) -> &str { "echo" }
//!     async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError> {
//!         while let Some(msg) = ctx.recv().await {
//!             ctx.bus().respond(msg.reply(msg.content.clone()));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut builder = BeehiveBuilder::new();
//! builder.module(Echo);
//! let mut hive = builder.build()?;
//! let shutdown = CancellationToken::new();
//! hive.start(&shutdown);
//! let ask = proto::Message::new("me", "echo", proto::Operation::Query, "x");
//! let answer = hive.bus().request("echo", ask, Duration::ZERO).await?;
//! hive.shutdown(Duration::from_secs(5)).await?;
//! # drop(answer);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `module.rs`: the [`Module`] trait and [`RestartPolicy`].
//! - `context.rs`: [`ModuleContext`], what a running module holds.
//! - `bus.rs`: the [`Bus`] handle (send, group send, request, respond).
//! - `registry.rs`: the name/group → mailbox table, frozen at build.
//! - `pending.rs`: `msg_id` → one-shot table for requests awaiting replies.
//! - `supervisor.rs`: one module's task: run, catch failures, back off, restart.
//! - `runtime.rs`: [`BeehiveBuilder`] and [`Beehive`] (start, wait, shutdown).
//! - `error.rs`: [`BusError`], [`ModuleError`], [`BuildError`], [`ShutdownError`].

mod bus;
mod context;
mod error;
mod module;
mod pending;
mod registry;
mod runtime;
mod supervisor;

pub use async_trait::async_trait;
pub use bus::{Bus, DEFAULT_REQUEST_TIMEOUT};
pub use context::ModuleContext;
pub use error::{BoxError, BuildError, BusError, ModuleError, Result, ShutdownError};
pub use module::{Module, RestartPolicy};
pub use runtime::{
    Beehive, BeehiveBuilder, DEFAULT_MAILBOX_CAPACITY, DEFAULT_RESTART_BACKOFF,
    DEFAULT_RESTART_BACKOFF_MAX,
};
pub use supervisor::error_chain;
