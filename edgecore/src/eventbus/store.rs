//! The topics the cloud asked EventBus to subscribe to, in KubeEdge's
//! `sub_topics(topic)` table of `database.dataSource`, so they survive a
//! restart.

use std::collections::BTreeSet;

use crate::db::{self, DbError};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sub_topics (topic TEXT PRIMARY KEY);";

/// The `sub_topics` table, on a connection of its own.
#[derive(Debug, Clone)]
pub(crate) struct TopicStore {
    conn: tokio_rusqlite::Connection,
}

impl TopicStore {
    /// Opens `path`, creating the table if needed.
    pub(crate) async fn open(path: &str) -> Result<TopicStore, DbError> {
        Ok(TopicStore {
            conn: db::open(path, SCHEMA).await?,
        })
    }

    /// Every stored topic.
    pub(crate) async fn load(&self) -> Result<BTreeSet<String>, DbError> {
        db::read(&self.conn, |c| {
            let mut stmt = c.prepare("SELECT topic FROM sub_topics")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .await
    }

    /// Adds `topics` (present ones are kept).
    pub(crate) async fn add(&self, topics: Vec<String>) -> Result<(), DbError> {
        self.each(
            "INSERT OR IGNORE INTO sub_topics (topic) VALUES (?1)",
            topics,
        )
        .await
    }

    /// Removes `topics` (absent ones are ignored).
    pub(crate) async fn remove(&self, topics: Vec<String>) -> Result<(), DbError> {
        self.each("DELETE FROM sub_topics WHERE topic = ?1", topics)
            .await
    }

    /// Runs `sql` once per topic, in one transaction.
    async fn each(&self, sql: &'static str, topics: Vec<String>) -> Result<(), DbError> {
        db::write(&self.conn, move |tx| {
            let mut stmt = tx.prepare(sql)?;
            for topic in &topics {
                stmt.execute([topic])?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    #[tokio::test]
    async fn topics_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgecore.db").display().to_string();
        let store = TopicStore::open(&path).await.unwrap();
        store
            .add(vec!["a/b".into(), "c/#".into(), "a/b".into()])
            .await
            .unwrap();
        store.remove(vec!["c/#".into(), "x".into()]).await.unwrap();
        drop(store);
        let store = TopicStore::open(&path).await.unwrap();
        let topics: Vec<_> = store.load().await.unwrap().into_iter().collect();
        assert_eq!(topics, ["a/b"]);
    }
}
