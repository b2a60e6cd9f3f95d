//! The writer thread: the only connection that writes. It takes every
//! request waiting (up to `max_batch` groups), applies each group inside a
//! savepoint of one transaction (a group whose precondition fails is rolled
//! back alone), commits once, publishes the changes to watchers and then
//! answers. A failed commit (disk full, I/O error) fails every request of
//! the batch, and nothing is published.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::{StoreError, StoreResult, WriteError};
use super::hub::Hub;
use super::object::{set_resource_version, Event, EventKind, Object, ObjectKey};
use super::{schema, Expect, Outcome, Request, WriteOp, WriteResult};

/// Starts the writer thread on `conn`.
pub(crate) fn spawn(
    conn: Connection,
    requests: mpsc::Receiver<Request>,
    hub: Hub,
    limits: Limits,
) -> StoreResult<()> {
    std::thread::Builder::new()
        .name("kubestore-writer".to_owned())
        .spawn(move || run(conn, requests, hub, limits))
        .map(drop)
        .map_err(StoreError::Thread)
}

/// The writer's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Groups committed together, at most.
    pub(crate) max_batch: usize,
    /// Changes kept in `store_events`.
    pub(crate) history: usize,
}

fn run(mut conn: Connection, mut requests: mpsc::Receiver<Request>, hub: Hub, limits: Limits) {
    let mut revision = schema::revision(&conn).unwrap_or_else(|_| hub.revision());
    while let Some(first) = requests.blocking_recv() {
        let mut groups = first.groups.len();
        let mut batch = vec![first];
        while groups < limits.max_batch {
            match requests.try_recv() {
                Ok(request) => {
                    groups += request.groups.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut revision, batch, &hub, limits.history);
    }
    tracing::debug!(revision, "object store writer stopped");
}

/// Applies, commits, publishes and answers one batch.
fn commit_batch(
    conn: &mut Connection,
    revision: &mut u64,
    batch: Vec<Request>,
    hub: &Hub,
    history: usize,
) {
    let mut next = *revision;
    let applied = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(Arc::new)
        .and_then(|mut tx| {
            let results: Vec<Vec<WriteResult>> = batch
                .iter()
                .map(|request| {
                    request
                        .groups
                        .iter()
                        .map(|ops| apply_request(&mut tx, ops, &mut next))
                        .collect()
                })
                .collect();
            if next != *revision {
                let changes = results
                    .iter()
                    .flatten()
                    .filter_map(|r| r.as_ref().ok())
                    .flatten()
                    .filter_map(event_of);
                schema::record_events(&tx, changes, next, history).map_err(Arc::new)?;
                tx.execute(
                    "UPDATE store_revision SET revision = ?1 WHERE id = 1",
                    [to_sql_int(next)],
                )
                .map_err(Arc::new)?;
            }
            tx.commit().map_err(Arc::new)?;
            Ok(results)
        });
    match applied {
        Ok(results) => {
            *revision = next;
            let events = results
                .iter()
                .flatten()
                .filter_map(|r| r.as_ref().ok())
                .flatten()
                .filter_map(event_of)
                .collect();
            hub.publish(events, next);
            for (request, result) in batch.into_iter().zip(results) {
                // The caller may have gone; its write stands regardless.
                let _ = request.reply.send(result);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, writes = batch.len(), "object store commit failed");
            for request in batch {
                let failed = request
                    .groups
                    .iter()
                    .map(|_| Err(WriteError::Store(StoreError::Commit(err.clone()))))
                    .collect();
                let _ = request.reply.send(failed);
            }
        }
    }
}

fn event_of(outcome: &Outcome) -> Option<Event> {
    let (kind, object) = match outcome {
        Outcome::Created(o) => (EventKind::Added, o),
        Outcome::Updated(o) => (EventKind::Modified, o),
        Outcome::Deleted(o) => (EventKind::Deleted, o),
        Outcome::Unchanged | Outcome::Meta => return None,
    };
    Some(Event {
        kind,
        object: object.clone(),
    })
}

/// Applies one request's operations in a savepoint; on failure the
/// savepoint is rolled back and `revision` restored.
fn apply_request(
    tx: &mut Transaction<'_>,
    ops: &[WriteOp],
    revision: &mut u64,
) -> Result<Vec<Outcome>, WriteError> {
    let before = *revision;
    let sp = tx.savepoint()?;
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        match apply(&sp, op, revision) {
            Ok(outcome) => outcomes.push(outcome),
            Err(err) => {
                *revision = before;
                // Dropping the savepoint rolls it back.
                return Err(err);
            }
        }
    }
    sp.commit()?;
    Ok(outcomes)
}

/// A stored row of `meta_v2`.
struct Row {
    revision: u64,
    origin: Option<String>,
    value: Value,
}

fn load(conn: &Connection, key: &ObjectKey) -> Result<Option<Row>, WriteError> {
    let storage_key = key.storage_key();
    let row = conn
        .prepare_cached(
            "SELECT resource_version, origin_version, value FROM meta_v2 WHERE key = ?1",
        )?
        .query_row([&storage_key], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .optional()?;
    let Some((revision, origin, text)) = row else {
        return Ok(None);
    };
    let value = serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
        key: storage_key,
        source,
    })?;
    Ok(Some(Row {
        revision: u64::try_from(revision).unwrap_or(0),
        origin,
        value,
    }))
}

fn apply(conn: &Connection, op: &WriteOp, revision: &mut u64) -> Result<Outcome, WriteError> {
    match op {
        WriteOp::Put {
            key,
            value,
            origin,
            expect,
        } => put(conn, key, value, origin.as_deref(), expect, revision),
        WriteOp::Delete { key, expect } => delete(conn, key, expect, revision),
        WriteOp::Check { key, expect } => {
            check(key, expect, load(conn, key)?.as_ref(), None)?;
            Ok(Outcome::Unchanged)
        }
        WriteOp::PutMeta { key, kind, value } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO meta (key, type, value) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key, kind, value])?;
            Ok(Outcome::Meta)
        }
        WriteOp::DeleteMeta { key } => {
            conn.prepare_cached("DELETE FROM meta WHERE key = ?1")?
                .execute([key])?;
            Ok(Outcome::Meta)
        }
    }
}

/// Checks `expect` against the stored row; `Ok(false)` means "leave it".
fn check(
    key: &ObjectKey,
    expect: &Expect,
    row: Option<&Row>,
    origin: Option<&str>,
) -> Result<bool, WriteError> {
    match (expect, row) {
        (Expect::Any, _) => Ok(true),
        (Expect::Absent, Some(_)) => Err(WriteError::AlreadyExists(Box::new(key.clone()))),
        (Expect::Absent, None) => Ok(true),
        (Expect::Exists | Expect::Revision(_) | Expect::Uid(_), None) => {
            Err(WriteError::NotFound(Box::new(key.clone())))
        }
        (Expect::Exists, Some(_)) => Ok(true),
        (Expect::Revision(want), Some(row)) if row.revision != *want => Err(WriteError::Conflict {
            key: Box::new(key.clone()),
            reason: format!(
                "the object has been modified: resourceVersion {} is not the latest ({})",
                want, row.revision
            ),
        }),
        (Expect::Revision(_), Some(_)) => Ok(true),
        (Expect::Uid(want), Some(row)) => {
            let uid = row.value.pointer("/metadata/uid").and_then(Value::as_str);
            if uid == Some(want.as_str()) {
                Ok(true)
            } else {
                Err(WriteError::Conflict {
                    key: Box::new(key.clone()),
                    reason: format!("uid {want} does not match the stored object's {uid:?}"),
                })
            }
        }
        (Expect::NewerOrigin, None) => Ok(true),
        (Expect::NewerOrigin, Some(row)) => {
            let stored = row.origin.as_deref().and_then(|o| o.parse::<u64>().ok());
            let new = origin.and_then(|o| o.parse::<u64>().ok());
            Ok(match (stored, new) {
                (Some(stored), Some(new)) => new > stored,
                _ => true,
            })
        }
    }
}

fn put(
    conn: &Connection,
    key: &ObjectKey,
    value: &Value,
    origin: Option<&str>,
    expect: &Expect,
    revision: &mut u64,
) -> Result<Outcome, WriteError> {
    if !value.is_object() {
        return Err(WriteError::Invalid(Box::new(key.clone())));
    }
    let row = load(conn, key)?;
    if !check(key, expect, row.as_ref(), origin)? {
        return Ok(Outcome::Unchanged);
    }
    let storage_key = key.storage_key();
    if let Some(row) = &row {
        let mut same = value.clone();
        set_resource_version(&mut same, row.revision);
        if same == row.value {
            if origin.is_some() && origin != row.origin.as_deref() {
                conn.prepare_cached("UPDATE meta_v2 SET origin_version = ?1 WHERE key = ?2")?
                    .execute(params![origin, storage_key])?;
            }
            return Ok(Outcome::Unchanged);
        }
    }
    *revision += 1;
    let object = Arc::new(Object::new(key.clone(), *revision, value.clone()));
    let json = object.json();
    let text = std::str::from_utf8(&json).unwrap_or_default();
    conn.prepare_cached(
        "INSERT OR REPLACE INTO meta_v2
         (key, group_version_resource, namespace, name, resource_version, origin_version, value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        storage_key,
        key.gvr.to_string(),
        key.namespace.as_deref().unwrap_or(""),
        key.name,
        to_sql_int(*revision),
        origin,
        text,
    ])?;
    Ok(if row.is_some() {
        Outcome::Updated(object)
    } else {
        Outcome::Created(object)
    })
}

fn delete(
    conn: &Connection,
    key: &ObjectKey,
    expect: &Expect,
    revision: &mut u64,
) -> Result<Outcome, WriteError> {
    let row = load(conn, key)?;
    let expect = if *expect == Expect::Absent || *expect == Expect::NewerOrigin {
        &Expect::Any
    } else {
        expect
    };
    check(key, expect, row.as_ref(), None)?;
    let Some(row) = row else {
        return Ok(Outcome::Unchanged);
    };
    conn.prepare_cached("DELETE FROM meta_v2 WHERE key = ?1")?
        .execute([key.storage_key()])?;
    *revision += 1;
    Ok(Outcome::Deleted(Arc::new(Object::new(
        key.clone(),
        *revision,
        row.value,
    ))))
}

/// Revisions are stored as SQLite integers (i64); they never get near the
/// limit, and saturate if they did.
fn to_sql_int(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}
