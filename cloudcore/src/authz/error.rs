//! Why node authorization refuses a message: [`Refusal`], whose text is
//! the reason sent back to the edge (after CloudHub's `forbidden: `).

use thiserror::Error;

/// Why a node may not send a message. "This node" is the node of the
/// client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The resource string does not parse.
    #[error("resource {resource:?} is malformed: {reason}")]
    Malformed {
        /// The resource as sent.
        resource: String,
        /// The parser's complaint.
        reason: String,
    },
    /// An edge sent a cloud-form resource (`node/<id>/...`): the node is
    /// never taken from a message.
    #[error("resource {resource:?} names a node; edges send resources without the node prefix")]
    CloudForm {
        /// The resource as sent.
        resource: String,
    },
    /// The operation is not one a node performs on this kind of resource.
    #[error("operation {operation} on {resource} is not allowed to nodes")]
    Operation {
        /// The operation.
        operation: String,
        /// The resource type (or fixed resource).
        resource: String,
    },
    /// A list (a resource without a name) of a kind only readable by name.
    #[error("listing {resource} is not allowed to nodes")]
    List {
        /// The resource type.
        resource: String,
    },
    /// A Node (or its status, patch or Lease) that is not this node's.
    #[error("{resource} {name} is not this node's own")]
    NotOwn {
        /// The resource type.
        resource: String,
        /// The object's name (`<namespace>/<name>` for Leases).
        name: String,
    },
    /// A pod not bound to this node.
    #[error("pod {namespace}/{name} is not bound to this node")]
    PodNotBound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A configmap, secret or service account no pod on this node uses.
    #[error("{resource} {namespace}/{name} is not used by a pod bound to this node")]
    NotReferenced {
        /// The resource type.
        resource: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A Device not bound to this node.
    #[error("device {id} is not bound to this node")]
    DeviceNotBound {
        /// `<namespace>/<name>` (or the bare name an old edge sends).
        id: String,
    },
    /// An event about something other than this node or its pods.
    #[error("event about {about} is neither about this node nor about a pod bound to it")]
    EventNotAbout {
        /// `<kind> <namespace>/<name>` of the involved object.
        about: String,
    },
    /// A pod this node may not create: only mirror pods of its own static
    /// pods, bound to it and referencing nothing.
    #[error("a node may create only mirror pods bound to itself that use no configmap, secret or service account: {reason}")]
    NotMirrorPod {
        /// What is wrong with it.
        reason: String,
    },
    /// The content names a different object than the resource, or cannot
    /// be read where the decision depends on it.
    #[error("{resource} content: {reason}")]
    Content {
        /// The resource type.
        resource: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Membership of another node.
    #[error("membership of node {group} is not this node's")]
    Membership {
        /// The `group_id` asked for.
        group: String,
    },
    /// A resource outside everything nodes may touch.
    #[error("{resource} is outside what nodes may access")]
    Outside {
        /// The resource type (or the whole resource when it has none).
        resource: String,
    },
}

/// A check's result.
pub type Result<T = (), E = Refusal> = std::result::Result<T, E>;
