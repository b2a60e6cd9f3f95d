//! Tables and pragmas. Objects live in KubeEdge's `meta_v2` layout (key
//! `/<group|core>/<version>/<resource>/<namespace|null>/<name>`, with
//! `resource_version` holding the store revision) plus `origin_version`,
//! the resourceVersion the object had where it came from; KubeEdge's
//! `meta` table (`key`, `type`, `value`) sits beside it; `store_revision`
//! keeps the global revision.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use super::error::StoreResult;

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
