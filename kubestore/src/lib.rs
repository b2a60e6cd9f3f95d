//! Kubernetes objects kept in SQLite, with list and watch, and a
//! Kubernetes-style REST surface over them. The edge serves its MetaServer
//! from it (the cloud's objects, read-only, online or offline); the cloud's
//! embedded API is built on the same store.
//!
//! # Layout
//!
//! - [`resource`]: which resources are served ([`Resources`]).
//! - [`crd`]: CustomResourceDefinitions: the cloud's built-in resources and
//!   what a stored CRD adds to them.
//! - [`store`]: the SQLite store: one writer thread, group commit, a global
//!   revision, watches with replayable history.
//! - [`selector`]: label and field selectors.
//! - [`rest`]: the HTTP API on actix-web: discovery, get, list, watch.

pub mod crd;
pub mod resource;
pub mod rest;
pub mod selector;
pub mod store;

pub use resource::{edge_resources, Gvr, ResourceInfo, Resources};
pub use store::{
    Event, EventKind, Expect, Object, ObjectKey, Outcome, Store, StoreError, StoreOptions, Watch,
    WatchError, WriteError, WriteOp, WriteResult,
};
