//! The connection each of the small-table modules (DeviceTwin's devices,
//! EventBus's `sub_topics`, ServiceBus's `target_urls`) opens on
//! `database.dataSource`, the file MetaManager's store also writes.
//!
//! Each connection runs on its own thread (`tokio_rusqlite`), so a module's
//! statements are serialised; between modules SQLite's locks do it, which
//! is why every write transaction must be `BEGIN IMMEDIATE` ([`write`]):
//! a deferred one that reads first can fail with "database is locked"
//! instead of waiting for the busy timeout.

use std::time::Duration;

use rusqlite::{Transaction, TransactionBehavior};

/// How long a statement waits for another connection's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens `path` with WAL and full sync, then runs `schema` (statements that
/// must be idempotent, e.g. `CREATE TABLE IF NOT EXISTS`).
pub async fn open(path: &str, schema: &'static str) -> Result<tokio_rusqlite::Connection, DbError> {
    let conn = tokio_rusqlite::Connection::open(path)
        .await
        .map_err(|e| DbError::open(path, tokio_rusqlite::Error::Error(e)))?;
    // Switching a new file to WAL takes an exclusive lock that SQLite does
    // not wait for, so modules opening the same new file at once can see
    // "database is locked": retry for a while.
    let mut attempt = 0;
    loop {
        let setup = conn
            .call(move |c| {
                c.busy_timeout(BUSY_TIMEOUT)?;
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "FULL")?;
                c.execute_batch(schema)
            })
            .await;
        match setup {
            Ok(()) => return Ok(conn),
            Err(tokio_rusqlite::Error::Error(e)) if is_busy(&e) && attempt < OPEN_RETRIES => {
                attempt += 1;
                tokio::time::sleep(OPEN_RETRY_WAIT).await;
            }
            Err(e) => return Err(DbError::open(path, e)),
        }
    }
}

/// How often [`open`] retries a locked new file, and how long it waits.
const OPEN_RETRIES: u32 = 100;
const OPEN_RETRY_WAIT: Duration = Duration::from_millis(50);

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Runs `f` in one `BEGIN IMMEDIATE` transaction on the connection's
/// thread and commits it if `f` succeeds.
pub async fn write<T, F>(conn: &tokio_rusqlite::Connection, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
{
    conn.call(move |c| {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    })
    .await
    .map_err(DbError::from)
}

/// Runs `f` (reads) on the connection's thread.
pub async fn read<T, F>(conn: &tokio_rusqlite::Connection, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
{
    conn.call(move |c| f(c)).await.map_err(DbError::from)
}

/// A failure of the module's database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file could not be opened or prepared.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// `database.dataSource`.
        path: String,
        /// Why.
        source: tokio_rusqlite::Error<rusqlite::Error>,
    },
    /// A statement failed (disk full, I/O error, a closed connection).
    #[error("database: {0}")]
    Sql(#[from] tokio_rusqlite::Error<rusqlite::Error>),
}

impl DbError {
    fn open(path: &str, source: tokio_rusqlite::Error<rusqlite::Error>) -> DbError {
        DbError::Open {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn modules_opening_a_new_file_at_once_all_succeed() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("edgecore.db").display().to_string();
            let opens = (0..4).map(|i| {
                let path = path.clone();
                let schema: &'static str = match i {
                    0 => "CREATE TABLE IF NOT EXISTS a (k TEXT);",
                    1 => "CREATE TABLE IF NOT EXISTS b (k TEXT);",
                    2 => "CREATE TABLE IF NOT EXISTS c (k TEXT);",
                    _ => "CREATE TABLE IF NOT EXISTS d (k TEXT);",
                };
                tokio::spawn(async move { open(&path, schema).await.map(drop) })
            });
            for r in futures::future::join_all(opens).await {
                r.unwrap().unwrap();
            }
        }
    }

    #[tokio::test]
    async fn two_connections_write_one_file_without_locking_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgecore.db").display().to_string();
        let schema = "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT);";
        let a = open(&path, schema).await.unwrap();
        let b = open(&path, schema).await.unwrap();
        let writes = (0..200).map(|i| {
            let conn = if i % 2 == 0 { a.clone() } else { b.clone() };
            async move {
                write(&conn, move |tx| {
                    let n: i64 = tx.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
                    tx.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (i, n.to_string()))
                })
                .await
            }
        });
        for r in futures::future::join_all(writes).await {
            r.unwrap();
        }
        let n: i64 = read(&a, |c| {
            c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        })
        .await
        .unwrap();
        assert_eq!(n, 200);
    }
}
