//! The crate's error types.
//!
//! Each fallible part of `proto` has its own enum: [`ResourceError`] for
//! resource strings, [`CodecError`] for the wire codecs. [`ProtoError`] wraps
//! both for callers that handle them together, and [`Result`] defaults to it.

use thiserror::Error;

/// A resource string that is not one of KubeEdge's forms.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResourceError {
    /// The resource string is empty.
    #[error("empty resource string")]
    Empty,
    /// A segment that must not be empty is (e.g. `default//cm`).
    #[error("resource {resource:?}: empty {part}")]
    EmptySegment {
        /// The whole resource string.
        resource: String,
        /// Which part is empty: `namespace`, `type`, `name`, `node id`, ...
        part: &'static str,
    },
    /// The string has a namespace but no type (`default`), or is otherwise
    /// too short to name anything.
    #[error("resource {resource:?}: expected <namespace>/<type>[/<name>]")]
    MissingType {
        /// The whole resource string.
        resource: String,
    },
    /// A cloud-form resource was required but there is no `node/<id>/`
    /// prefix.
    #[error("resource {resource:?}: expected a node/<id>/ prefix")]
    MissingNode {
        /// The whole resource string.
        resource: String,
    },
    /// A part that becomes one segment of the string contains a `/`.
    #[error("{part} {value:?} must not contain '/'")]
    SlashInSegment {
        /// Which part: `namespace`, `type`, `node id`.
        part: &'static str,
        /// The offending value.
        value: String,
    },
    /// The parts would format to a string that reads back as a different
    /// path (e.g. namespace `node` in edge form looks like a cloud prefix,
    /// or a kind spelled as `Other("pod")`).
    #[error("resource {resource:?} would read back as a different path")]
    Ambiguous {
        /// The formatted string.
        resource: String,
    },
}

/// A message that cannot be encoded or decoded on the wire.
#[derive(Debug, Error)]
pub enum CodecError {
    /// A frame, or the length a frame header announces, is over the cap.
    /// On a stream this is fatal: the connection must be closed.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// The frame's (announced) length in bytes.
        len: usize,
        /// The configured cap.
        max: usize,
    },
    /// The payload is not a KubeEdge message in JSON.
    #[error("malformed message")]
    Malformed {
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
    /// The message could not be turned into JSON.
    #[error("cannot encode message")]
    Encode {
        /// What the JSON serializer said.
        #[source]
        source: serde_json::Error,
    },
}

/// Any error from this crate.
#[derive(Debug, Error)]
pub enum ProtoError {
    /// A bad resource string.
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// A wire codec failure.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// `Result` with this crate's error, [`ProtoError`] unless told otherwise.
pub type Result<T, E = ProtoError> = std::result::Result<T, E>;
