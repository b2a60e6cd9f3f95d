//! Apiary's shared vocabulary: the KubeEdge message model and everything
//! both daemons must agree on. Types and pure functions only: no I/O, no
//! async runtime.
//!
//! # Layout
//!
//! - [`message`]: `Message`, `Header`, `Route` — KubeEdge's JSON shape.
//! - [`operation`]: the `Operation` enum, keeping unknown values.
//! - [`resource`]: `ResourcePath` — the `route.resource` string forms
//!   (cloud `node/<id>/...`, edge `<ns>/<type>[/<name>]`, device events,
//!   fixed resources), `ResourceKind`, node-prefix helpers.
//! - [`modules`]: module, group, source and content names; [`needs_ack`].
//! - [`twin`]: devices, twins and the DeviceTwin payloads (reference §5).
//! - [`codec`]: WebSocket text frames and length-prefixed stream frames,
//!   both capped ([`DEFAULT_MAX_FRAME`]).
//! - [`error`]: `ResourceError`, `CodecError`, `ProtoError`.
//!
//! `docs/protocol.md` describes the protocol these types implement.
//!
//! # Example
//!
//! ```no_run
//! use proto::{needs_ack, FrameCodec, Message, Operation, ResourceKind, ResourcePath};
//!
//! let msg = Message::new("edgecontroller", "resource", Operation::Insert,
//!     "node/edge-1/default/configmap/cm2").with_resource_version("476");
//! assert!(needs_ack(&msg));
//! let path = ResourcePath::parse(msg.resource())?;
//! assert_eq!(path.kind(), Some(&ResourceKind::ConfigMap));
//! assert_eq!(path.edge_string(), "default/configmap/cm2");
//!
//! let codec = FrameCodec::default();
//! let mut wire = bytes::BytesMut::new();
//! codec.encode(&msg, &mut wire)?;
//! assert_eq!(codec.decode(&mut wire)?, Some(msg));
//! # Ok::<(), proto::ProtoError>(())
//! ```

pub mod codec;
pub mod error;
pub mod message;
pub mod modules;
pub mod operation;
pub mod resource;
pub mod twin;

pub use codec::{
    decode_bytes, decode_text, encode_text, FrameCodec, DEFAULT_MAX_FRAME, LENGTH_PREFIX,
};
pub use error::{CodecError, ProtoError, ResourceError, Result};
pub use message::{new_msg_id, now_millis, Header, Message, Route};
pub use modules::needs_ack;
pub use operation::Operation;
pub use resource::{
    add_node_prefix, split_node_prefix, strip_node_prefix, DeviceEvent, ResourceKind, ResourcePath,
    Special, Target,
};
