//! Tables and pragmas. Objects live in KubeEdge's `meta_v2` layout (key
//! `/<group|core>/<version>/<resource>/<namespace|null>/<name>`, with
//! `resource_version` holding the store revision) plus `origin_version`,
//! the resourceVersion the object had where it came from; KubeEdge's
//! `meta` table (`key`, `type`, `value`) sits beside it; `store_revision`
//! keeps the global revision and `store_events` the last changes (the watch
//! history, so a watch resumes across restarts).

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::error::{StoreError, StoreResult};
use super::object::{Event, EventKind, Object, ObjectKey};
use crate::resource::Gvr;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY NOT NULL,
    type  TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS meta_type ON meta (type);
CREATE TABLE IF NOT EXISTS meta_v2 (
    key                    TEXT PRIMARY KEY NOT NULL,
    group_version_resource TEXT NOT NULL,
    namespace              TEXT NOT NULL,
    name                   TEXT NOT NULL,
    resource_version       INTEGER NOT NULL,
    origin_version         TEXT,
    value                  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS store_events (
    revision  INTEGER PRIMARY KEY NOT NULL,
    type      TEXT NOT NULL,
    grp       TEXT NOT NULL,
    version   TEXT NOT NULL,
    resource  TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    value     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS store_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT OR IGNORE INTO store_revision (id, revision) VALUES (1, 0);
";

/// How long a connection waits for a lock before failing (only the
/// checkpointer and readers contend; writes are serialised by the writer).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the writer's connection: WAL, full sync, schema in place.
pub(crate) fn open_writer(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Prepares a read-only connection.
pub(crate) fn init_reader(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", "ON")
}

/// The stored global revision.
pub(crate) fn revision(conn: &Connection) -> StoreResult<u64> {
    let rev: Option<i64> = conn
        .query_row(
            "SELECT revision FROM store_revision WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(rev.and_then(|r| u64::try_from(r).ok()).unwrap_or(0))
}

/// Appends `events` to `store_events` and forgets those more than
/// `history` revisions behind `revision`.
pub(crate) fn record_events(
    conn: &Connection,
    events: impl Iterator<Item = Event>,
    revision: u64,
    history: usize,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO store_events
         (revision, type, grp, version, resource, namespace, name, value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for event in events {
        let object = &event.object;
        let key = &object.key;
        let json = object.json();
        insert.execute(params![
            i64::try_from(object.revision).unwrap_or(i64::MAX),
            event.kind.as_str(),
            key.gvr.group,
            key.gvr.version,
            key.gvr.resource,
            key.namespace.as_deref().unwrap_or(""),
            key.name,
            std::str::from_utf8(&json).unwrap_or_default(),
        ])?;
    }
    let keep_from = revision.saturating_sub(u64::try_from(history).unwrap_or(u64::MAX));
    conn.prepare_cached("DELETE FROM store_events WHERE revision <= ?1")?
        .execute([i64::try_from(keep_from).unwrap_or(i64::MAX)])?;
    Ok(())
}

/// The recorded history, oldest first, at most `history` changes.
pub(crate) fn load_events(conn: &Connection, history: usize) -> StoreResult<Vec<Event>> {
    let mut stmt = conn.prepare(
        "SELECT revision, type, grp, version, resource, namespace, name, value
         FROM store_events ORDER BY revision DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(history).unwrap_or(i64::MAX)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            Gvr::new(
                &r.get::<_, String>(2)?,
                &r.get::<_, String>(3)?,
                &r.get::<_, String>(4)?,
            ),
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
        ))
    })?;
    let mut events = Vec::new();
    for row in rows {
        let (revision, kind, gvr, namespace, name, text) = row?;
        let kind = match kind.as_str() {
            "ADDED" => EventKind::Added,
            "DELETED" => EventKind::Deleted,
            _ => EventKind::Modified,
        };
        let key = ObjectKey {
            gvr,
            namespace: (!namespace.is_empty()).then_some(namespace),
            name,
        };
        let value = serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
            key: format!("store_events/{revision}"),
            source,
        })?;
        let revision = u64::try_from(revision).unwrap_or(0);
        events.push(Event {
            kind,
            object: Arc::new(Object::new(key, revision, value)),
        });
    }
    events.reverse();
    Ok(events)
}
