//! The object store: Kubernetes objects in SQLite (KubeEdge's `meta_v2`
//! layout, plus its `meta` key/value table), a global revision that every
//! change advances, and watches that replay recent history.
//!
//! One writer thread owns the only writable connection (so there is never a
//! "database is locked"); it takes whatever write requests are waiting,
//! applies each in its own savepoint and commits them together (group
//! commit, `synchronous=FULL` in WAL mode), then publishes the changes to
//! watchers and only then answers the writers. A caller that got an answer
//! knows its change is on disk. Reads run on a small pool of read-only
//! connections beside it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kubestore::{Gvr, ObjectKey, Store, StoreOptions, WriteOp};
//!
//! let store = Store::open("/var/lib/kubeedge/edgecore.db", StoreOptions::default())?;
//! let key = ObjectKey::new(Gvr::core("configmaps"), Some("default"), "cm");
//! let value = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "cm", "namespace": "default"}});
//! store.write(vec![WriteOp::put(key.clone(), value)]).await?;
//! let (items, revision) = store.list(&key.gvr, Some("default")).await?;
//! let mut watch = store.watch(&key.gvr, None, Some(revision))?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `object.rs`: [`ObjectKey`], [`Object`], [`Event`].
//! - `schema.rs`: tables and pragmas.
//! - `writer.rs`: the writer thread: batching, savepoints, preconditions.
//! - `hub.rs`: the watch history and fan-out ([`Watch`]).
//! - `read.rs`: get and list on the read pool.
//! - `error.rs`: [`StoreError`], [`WriteError`], [`WatchError`].

mod error;
mod hub;
mod object;
mod read;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use error::{StoreError, StoreResult, WatchError, WriteError};
pub use hub::Watch;
pub use object::{labels_of, Event, EventKind, Object, ObjectKey};

use crate::resource::Gvr;

/// Tuning of a [`Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Changes kept (in memory, and on disk so that they survive a
    /// restart) for watches that resume from an older revision; older ones
    /// get 410 Gone.
    pub history: usize,
    /// Groups of writes committed together, at most.
    pub max_batch: usize,
    /// Read-only connections.
    pub readers: u32,
    /// Write requests waiting for the writer, at most (callers wait).
    pub queue: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            history: 10_000,
            max_batch: 512,
            readers: 4,
            queue: 4096,
        }
    }
}

/// A condition a write must meet, checked inside its transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Expect {
    /// None.
    #[default]
    Any,
    /// The object must not exist (create).
    Absent,
    /// The object must exist (update, delete).
    Exists,
    /// The object must exist at this revision (optimistic concurrency).
    Revision(u64),
    /// The object must exist with this `metadata.uid`.
    Uid(String),
    /// Apply only if `origin` is newer than the stored object's origin
    /// version (the cloud's resourceVersion at the edge); otherwise the
    /// write is [`Outcome::Unchanged`]. Objects without an origin version,
    /// or with one that is not a number, are always replaced.
    NewerOrigin,
}

/// One change.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Create or replace an object. An object whose content equals the
    /// stored one is left alone ([`Outcome::Unchanged`], no new revision).
    Put {
        /// Where.
        key: ObjectKey,
        /// The object; its `metadata.resourceVersion` is overwritten.
        value: Value,
        /// The resourceVersion the object had where it came from (the
        /// cloud), kept beside it.
        origin: Option<String>,
        /// Precondition.
        expect: Expect,
    },
    /// Remove an object; absent objects are [`Outcome::Unchanged`] unless
    /// `expect` says otherwise.
    Delete {
        /// Where.
        key: ObjectKey,
        /// Precondition.
        expect: Expect,
    },
    /// Write nothing, but hold the group to `expect` on `key` (e.g. "the
    /// namespace still exists at the revision read"): the group fails as a
    /// write under that precondition would. Outcome: [`Outcome::Unchanged`].
    Check {
        /// Where.
        key: ObjectKey,
        /// The precondition.
        expect: Expect,
    },
    /// Set a row of KubeEdge's `meta` table (`key`, `type`, `value`).
    PutMeta {
        /// KubeEdge's resource key, e.g. `default/pod/nginx`.
        key: String,
        /// KubeEdge's resource type, e.g. `pod`.
        kind: String,
        /// The stored JSON.
        value: String,
    },
    /// Remove a row of the `meta` table.
    DeleteMeta {
        /// The row's key.
        key: String,
    },
}

impl WriteOp {
    /// Create or replace, unconditionally.
    pub fn put(key: ObjectKey, value: Value) -> WriteOp {
        WriteOp::Put {
            key,
            value,
            origin: None,
            expect: Expect::Any,
        }
    }

    /// Remove, if present.
    pub fn delete(key: ObjectKey) -> WriteOp {
        WriteOp::Delete {
            key,
            expect: Expect::Any,
        }
    }
}

/// What one [`WriteOp`] did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A new object.
    Created(Arc<Object>),
    /// A changed object.
    Updated(Arc<Object>),
    /// A removed object (its last state, at the deletion's revision).
    Deleted(Arc<Object>),
    /// Nothing changed (same content, older origin, absent on delete).
    Unchanged,
    /// A `meta` table row was written or removed.
    Meta,
}

impl Outcome {
    /// The object written or removed, if any.
    pub fn object(&self) -> Option<&Arc<Object>> {
        match self {
            Outcome::Created(o) | Outcome::Updated(o) | Outcome::Deleted(o) => Some(o),
            Outcome::Unchanged | Outcome::Meta => None,
        }
    }
}

/// The result of one group of operations.
pub type WriteResult = Result<Vec<Outcome>, WriteError>;

/// A write request: groups of operations, each group applied together or
/// not at all, independently of the others.
struct Request {
    groups: Vec<Vec<WriteOp>>,
    reply: oneshot::Sender<Vec<WriteResult>>,
}

/// A handle on the store; cheap to clone. The writer thread stops when the
/// last handle is dropped, after finishing what it was given.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: mpsc::Sender<Request>,
    readers: read::Readers,
    hub: hub::Hub,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and starts its
    /// writer thread. Blocking: call it from `spawn_blocking` in async code
    /// that cannot wait a few milliseconds.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> StoreResult<Store> {
        let path = path.as_ref().to_path_buf();
        let conn = schema::open_writer(&path)?;
        let revision = schema::revision(&conn)?;
        let recorded = schema::load_events(&conn, options.history)?;
        let hub = hub::Hub::new(revision, options.history, recorded);
        let readers = read::Readers::open(&path, options.readers)?;
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let limits = writer::Limits {
            max_batch: options.max_batch.max(1),
            history: options.history,
        };
        writer::spawn(conn, rx, hub.clone(), limits)?;
        tracing::debug!(path = %path.display(), revision, "object store open");
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                writer: tx,
                readers,
                hub,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The revision of the last published change.
    pub fn revision(&self) -> u64 {
        self.inner.hub.revision()
    }

    /// Applies `ops` atomically: all of them, or (on the first failed
    /// precondition or error) none. Returns once committed and published.
    pub async fn write(&self, ops: Vec<WriteOp>) -> WriteResult {
        self.write_groups(vec![ops])
            .await
            .pop()
            .unwrap_or(Err(WriteError::Store(StoreError::Closed)))
    }

    /// Applies each group of `groups` atomically and independently (a
    /// failed group leaves the others applied), in order, in one commit.
    /// Returns one result per group once committed and published.
    pub async fn write_groups(&self, groups: Vec<Vec<WriteOp>>) -> Vec<WriteResult> {
        let count = groups.len();
        let closed = || {
            (0..count)
                .map(|_| Err(WriteError::Store(StoreError::Closed)))
                .collect()
        };
        let (reply, answer) = oneshot::channel();
        if self
            .inner
            .writer
            .send(Request { groups, reply })
            .await
            .is_err()
        {
            return closed();
        }
        answer.await.unwrap_or_else(|_| closed())
    }

    /// One object, if present.
    pub async fn get(&self, key: &ObjectKey) -> StoreResult<Option<Arc<Object>>> {
        let key = key.clone();
        self.inner
            .readers
            .run(move |conn| read::get(conn, &key))
            .await
    }

    /// Every object of `gvr` (in `namespace` when given), ordered by
    /// namespace and name, with the revision they are consistent at.
    pub async fn list(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
    ) -> StoreResult<(Vec<Arc<Object>>, u64)> {
        let gvr = gvr.clone();
        let namespace = namespace.map(str::to_owned);
        self.inner
            .readers
            .run(move |conn| read::list(conn, &gvr, namespace.as_deref()))
            .await
    }

    /// The `meta` table row at `key`: `(type, value)`.
    pub async fn get_meta(&self, key: &str) -> StoreResult<Option<(String, String)>> {
        let key = key.to_owned();
        self.inner
            .readers
            .run(move |conn| read::get_meta(conn, &key))
            .await
    }

    /// The `meta` table rows of type `kind` whose key starts with
    /// `key_prefix`: `(key, value)`.
    pub async fn list_meta(
        &self,
        kind: &str,
        key_prefix: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        let (kind, key_prefix) = (kind.to_owned(), key_prefix.to_owned());
        self.inner
            .readers
            .run(move |conn| read::list_meta(conn, &kind, &key_prefix))
            .await
    }

    /// Changes to `gvr` (in `namespace` when given) after revision `from`;
    /// from now when `from` is `None`. Fails with [`WatchError::Gone`] when
    /// the history no longer reaches back to `from`.
    pub fn watch(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        from: Option<u64>,
    ) -> Result<Watch, WatchError> {
        self.inner
            .hub
            .watch(gvr.clone(), namespace.map(str::to_owned), from)
    }
}

#[cfg(test)]
mod tests;
