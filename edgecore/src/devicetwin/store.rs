//! KubeEdge's device tables in `database.dataSource`: `device`,
//! `device_attr` and `device_twin` (reference §5), with KubeEdge's columns;
//! values' metadata and versions are JSON strings as KubeEdge stores them.
//! Apiary adds unique indexes on `(deviceid, name)` so a write is an
//! upsert.
//!
//! All devices are loaded into memory at start ([`load`]); changes are
//! written as a list of [`DbOp`] in one transaction ([`commit`]).

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Transaction};

use crate::db::{self, DbError};
use proto::twin::{Device, MsgAttr, MsgTwin, TwinValue, TypeMetadata};

/// The tables, created if missing (an existing KubeEdge file keeps its rows).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS device (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    description TEXT,
    state TEXT,
    last_online TEXT
);
CREATE TABLE IF NOT EXISTS device_attr (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deviceid TEXT,
    name TEXT,
    description TEXT,
    value TEXT,
    optional INTEGER,
    attr_type TEXT,
    metadata TEXT
);
CREATE TABLE IF NOT EXISTS device_twin (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deviceid TEXT,
    name TEXT,
    description TEXT,
    expected TEXT,
    actual TEXT,
    expected_meta TEXT,
    actual_meta TEXT,
    expected_version TEXT,
    actual_version TEXT,
    optional INTEGER,
    attr_type TEXT,
    metadata TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS device_attr_device_name ON device_attr (deviceid, name);
CREATE UNIQUE INDEX IF NOT EXISTS device_twin_device_name ON device_twin (deviceid, name);
";

/// One change to the tables.
#[derive(Debug, Clone, PartialEq)]
pub enum DbOp {
    /// Insert or replace a device's own row (not its attributes or twins).
    PutDevice(Device),
    /// Remove a device with its attributes and twins.
    DeleteDevice(String),
    /// Insert or replace an attribute.
    PutAttr(String, String, MsgAttr),
    /// Remove an attribute.
    DeleteAttr(String, String),
    /// Insert or replace a twin.
    PutTwin(String, String, MsgTwin),
    /// Remove a twin.
    DeleteTwin(String, String),
}

/// Writes `ops` in one transaction.
pub async fn commit(conn: &tokio_rusqlite::Connection, ops: Vec<DbOp>) -> Result<(), DbError> {
    if ops.is_empty() {
        return Ok(());
    }
    db::write(conn, move |tx| {
        for op in &ops {
            apply(tx, op)?;
        }
        Ok(())
    })
    .await
}

fn apply(tx: &Transaction<'_>, op: &DbOp) -> rusqlite::Result<()> {
    match op {
        DbOp::PutDevice(d) => {
            tx.execute(
                "INSERT INTO device (id, name, description, state, last_online) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET name = ?2, description = ?3, state = ?4, last_online = ?5",
                params![d.id, d.name, d.description, d.state, d.last_online],
            )?;
        }
        DbOp::DeleteDevice(id) => {
            tx.execute("DELETE FROM device_twin WHERE deviceid = ?1", [id])?;
            tx.execute("DELETE FROM device_attr WHERE deviceid = ?1", [id])?;
            tx.execute("DELETE FROM device WHERE id = ?1", [id])?;
        }
        DbOp::PutAttr(id, name, a) => {
            tx.execute(
                "INSERT INTO device_attr (deviceid, name, value, optional, attr_type, metadata)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(deviceid, name) DO UPDATE SET
                   value = ?3, optional = ?4, attr_type = ?5, metadata = ?6",
                params![
                    id,
                    name,
                    a.value,
                    a.optional.unwrap_or(false),
                    a.metadata.as_ref().map(|m| m.kind.clone()),
                    json(&a.metadata),
                ],
            )?;
        }
        DbOp::DeleteAttr(id, name) => {
            tx.execute(
                "DELETE FROM device_attr WHERE deviceid = ?1 AND name = ?2",
                [id, name],
            )?;
        }
        DbOp::PutTwin(id, name, t) => {
            let value = |v: &Option<TwinValue>| v.as_ref().and_then(|v| v.value.clone());
            let meta = |v: &Option<TwinValue>| json(&v.as_ref().and_then(|v| v.metadata));
            tx.execute(
                "INSERT INTO device_twin (deviceid, name, expected, actual, expected_meta, actual_meta,
                   expected_version, actual_version, optional, attr_type, metadata)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(deviceid, name) DO UPDATE SET
                   expected = ?3, actual = ?4, expected_meta = ?5, actual_meta = ?6,
                   expected_version = ?7, actual_version = ?8, optional = ?9, attr_type = ?10,
                   metadata = ?11",
                params![
                    id,
                    name,
                    value(&t.expected),
                    value(&t.actual),
                    meta(&t.expected),
                    meta(&t.actual),
                    json(&t.expected_version),
                    json(&t.actual_version),
                    t.optional.unwrap_or(true),
                    t.metadata.as_ref().map(|m| m.kind.clone()),
                    json(&t.metadata),
                ],
            )?;
        }
        DbOp::DeleteTwin(id, name) => {
            tx.execute(
                "DELETE FROM device_twin WHERE deviceid = ?1 AND name = ?2",
                [id, name],
            )?;
        }
    }
    Ok(())
}

fn json<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref().and_then(|v| serde_json::to_string(v).ok())
}

fn from_json<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.filter(|t| !t.is_empty())
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Reads every device with its attributes and twins.
pub async fn load(conn: &tokio_rusqlite::Connection) -> Result<HashMap<String, Device>, DbError> {
    db::read(conn, |c| {
        let mut devices = HashMap::new();
        let mut stmt = c.prepare("SELECT id, name, description, state, last_online FROM device")?;
        let rows = stmt.query_map([], |r| {
            Ok(Device {
                id: r.get(0)?,
                name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                description: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                state: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                last_online: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                attributes: BTreeMap::new(),
                twin: BTreeMap::new(),
            })
        })?;
        for d in rows {
            let d = d?;
            devices.insert(d.id.clone(), d);
        }
        let mut stmt = c.prepare(
            "SELECT deviceid, name, value, optional, attr_type, metadata FROM device_attr",
        )?;
        let rows = stmt.query_map([], |r| {
            let kind: Option<String> = r.get(4)?;
            let metadata = from_json::<TypeMetadata>(r.get(5)?)
                .or_else(|| kind.map(|kind| TypeMetadata { kind }));
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                MsgAttr {
                    value: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    optional: r.get(3)?,
                    metadata,
                },
            ))
        })?;
        for row in rows {
            let (id, name, attr) = row?;
            if let Some(d) = devices.get_mut(&id) {
                d.attributes.insert(name, attr);
            }
        }
        let mut stmt = c.prepare(
            "SELECT deviceid, name, expected, actual, expected_meta, actual_meta,
                    expected_version, actual_version, optional, attr_type, metadata
             FROM device_twin",
        )?;
        let rows = stmt.query_map([], |r| {
            let value = |v: Option<String>, meta: Option<String>| {
                v.map(|value| TwinValue {
                    value: Some(value),
                    metadata: from_json(meta),
                })
            };
            let kind: Option<String> = r.get(9)?;
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                MsgTwin {
                    expected: value(r.get(2)?, r.get(4)?),
                    actual: value(r.get(3)?, r.get(5)?),
                    expected_version: from_json(r.get(6)?),
                    actual_version: from_json(r.get(7)?),
                    optional: r.get(8)?,
                    metadata: from_json::<TypeMetadata>(r.get(10)?)
                        .or_else(|| kind.map(|kind| TypeMetadata { kind })),
                },
            ))
        })?;
        for row in rows {
            let (id, name, twin) = row?;
            if let Some(d) = devices.get_mut(&id) {
                d.twin.insert(name, twin);
            }
        }
        Ok(devices)
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;
    use proto::twin::{TwinVersion, ValueMetadata};

    #[tokio::test]
    async fn devices_round_trip_through_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgecore.db").display().to_string();
        let conn = db::open(&path, SCHEMA).await.unwrap();
        let twin = MsgTwin {
            expected: Some(TwinValue {
                value: Some("on".into()),
                metadata: Some(ValueMetadata { timestamp: 3 }),
            }),
            actual: None,
            optional: Some(false),
            metadata: Some(TypeMetadata {
                kind: "string".into(),
            }),
            expected_version: Some(TwinVersion { cloud: 2, edge: 1 }),
            actual_version: None,
        };
        let attr = MsgAttr {
            value: "acme".into(),
            optional: Some(true),
            metadata: Some(TypeMetadata {
                kind: "string".into(),
            }),
        };
        let device = Device {
            id: "default/dev1".into(),
            name: "dev1".into(),
            state: "online".into(),
            ..Device::default()
        };
        commit(
            &conn,
            vec![
                DbOp::PutDevice(device.clone()),
                DbOp::PutTwin("default/dev1".into(), "power".into(), twin.clone()),
                DbOp::PutTwin("default/dev1".into(), "power".into(), twin.clone()),
                DbOp::PutAttr("default/dev1".into(), "vendor".into(), attr.clone()),
            ],
        )
        .await
        .unwrap();
        let loaded = load(&conn).await.unwrap();
        let d = &loaded["default/dev1"];
        assert_eq!(d.state, "online");
        assert_eq!(d.twin["power"], twin);
        assert_eq!(d.attributes["vendor"], attr);

        commit(&conn, vec![DbOp::DeleteDevice("default/dev1".into())])
            .await
            .unwrap();
        assert!(load(&conn).await.unwrap().is_empty());
        let twins: i64 = db::read(&conn, |c| {
            c.query_row("SELECT count(*) FROM device_twin", [], |r| r.get(0))
        })
        .await
        .unwrap();
        assert_eq!(twins, 0);
    }
}
