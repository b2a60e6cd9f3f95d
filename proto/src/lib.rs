//! Apiary's shared vocabulary: the KubeEdge message model and everything
//! both daemons must agree on. Types and pure functions only: no I/O, no
//! async runtime.
//!
//! # Layout
//!
//! - [`message`]: `Message`, `Header`, `Route` — KubeEdge's JSON shape.
//! - [`operation`]: the `Operation` enum, keeping unknown values.

pub mod message;
pub mod operation;

pub use message::{new_msg_id, now_millis, Header, Message, Route};
pub use operation::Operation;
