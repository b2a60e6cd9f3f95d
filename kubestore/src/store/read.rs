//! Reads on a pool of read-only connections, run on tokio's blocking
//! threads. A list reads the revision and the rows in one transaction, so
//! the two agree.

use std::path::Path;
use std::sync::Arc;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::error::{StoreError, StoreResult};
use super::object::{prefix, Object, ObjectKey};
use super::schema;
use crate::resource::Gvr;

/// The read pool.
#[derive(Clone)]
pub(crate) struct Readers {
    pool: r2d2::Pool<SqliteConnectionManager>,
}

impl Readers {
    /// Opens up to `size` read-only connections to `path`.
    pub(crate) fn open(path: &Path, size: u32) -> StoreResult<Readers> {
        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(schema::init_reader);
        let pool = r2d2::Pool::builder()
            .max_size(size.max(1))
            .min_idle(Some(1))
            .build(manager)?;
        Ok(Readers { pool })
    }

    /// Runs `f` on a pooled connection on a blocking thread.
    pub(crate) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

fn object_from(
    key: ObjectKey,
    revision: i64,
    text: &str,
    storage_key: &str,
) -> StoreResult<Object> {
    let value = serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
        key: storage_key.to_owned(),
        source,
    })?;
    Ok(Object::new(
        key,
        u64::try_from(revision).unwrap_or(0),
        value,
    ))
}

/// One object.
pub(crate) fn get(conn: &mut Connection, key: &ObjectKey) -> StoreResult<Option<Arc<Object>>> {
    let storage_key = key.storage_key();
    let row = conn
        .prepare_cached("SELECT resource_version, value FROM meta_v2 WHERE key = ?1")?
        .query_row([&storage_key], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    row.map(|(rev, text)| object_from(key.clone(), rev, &text, &storage_key).map(Arc::new))
        .transpose()
}

/// The objects of `gvr` (in `namespace`) and the revision they are at.
pub(crate) fn list(
    conn: &mut Connection,
    gvr: &Gvr,
    namespace: Option<&str>,
) -> StoreResult<(Vec<Arc<Object>>, u64)> {
    let tx = conn.transaction()?;
    let revision = schema::revision(&tx)?;
    let start = prefix(gvr, namespace);
    // Every key with the prefix sorts before the prefix with its final '/'
    // replaced by the next character, '0'.
    let end = format!("{}0", &start[..start.len() - 1]);
    let mut items = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT key, namespace, name, resource_version, value FROM meta_v2
             WHERE key >= ?1 AND key < ?2 ORDER BY key",
        )?;
        let mut rows = stmt.query([&start, &end])?;
        while let Some(row) = rows.next()? {
            let storage_key: String = row.get(0)?;
            let ns: String = row.get(1)?;
            let name: String = row.get(2)?;
            let key = ObjectKey {
                gvr: gvr.clone(),
                namespace: (!ns.is_empty()).then_some(ns),
                name,
            };
            let text: String = row.get(4)?;
            items.push(Arc::new(object_from(
                key,
                row.get(3)?,
                &text,
                &storage_key,
            )?));
        }
    }
    tx.finish()?;
    Ok((items, revision))
}

/// A `meta` row: `(type, value)`.
pub(crate) fn get_meta(conn: &mut Connection, key: &str) -> StoreResult<Option<(String, String)>> {
    Ok(conn
        .prepare_cached("SELECT type, value FROM meta WHERE key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// `meta` rows of one type under a key prefix: `(key, value)`.
pub(crate) fn list_meta(
    conn: &mut Connection,
    kind: &str,
    key_prefix: &str,
) -> StoreResult<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, value FROM meta WHERE type = ?1 AND substr(key, 1, length(?2)) = ?2 ORDER BY key",
    )?;
    let rows = stmt.query_map([kind, key_prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
