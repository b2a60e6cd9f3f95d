//! The outbox's writer thread: the one `rusqlite::Connection` of the outbox
//! file and the loop that serves [`Outbox`](super::outbox::Outbox) commands,
//! merging queued appends into one transaction. Blocking code only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proto::Message;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot, watch};

use super::error::{OutboxError, OutboxResult};
use super::outbox::{Command, OutboxOptions, OutboxStats};

/// The most messages committed in one transaction.
const MAX_BATCH: usize = 1024;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT UNIQUE,
    message TEXT,
    created_at INTEGER,
    latest_key TEXT
)";

/// Added after the first release of the table: older files get the column.
const ADD_LATEST_KEY: &str = "ALTER TABLE outbox ADD COLUMN latest_key TEXT";

const LATEST_KEY_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS outbox_latest_key ON outbox (latest_key) WHERE latest_key IS NOT NULL";

/// The "latest wins" key of a message: a node status report or a lease
/// renewal replaces any older one still waiting (a day offline would
/// otherwise queue some 17,000 of them, to be replayed in order). Other
/// messages have none and are all kept.
pub(crate) fn latest_key(msg: &Message) -> Option<String> {
    use proto::resource::{ResourceKind, ResourcePath};
    if *msg.operation() != proto::Operation::Update {
        return None;
    }
    let path = ResourcePath::parse(msg.resource()).ok()?;
    matches!(
        path.kind(),
        Some(ResourceKind::NodeStatus | ResourceKind::Lease)
    )
    .then(|| format!("{}:{}", msg.route.source, msg.resource()))
}

/// One caller's answer to an append: a `seq` or an error per message, or
/// the error of the whole transaction.
type AppendAnswer = OutboxResult<Vec<OutboxResult<u64>>>;

/// Where an append's answer goes.
type AppendReply = oneshot::Sender<AppendAnswer>;

/// Appends waiting for one commit.
type AppendBatch = Vec<(Vec<Message>, AppendReply)>;

/// The open database and what the thread knows about it.
pub(crate) struct Store {
    conn: Connection,
    max_rows: u64,
    stats: OutboxStats,
    /// Transactions committed by appends (for tests of batching).
    commits: u64,
}

impl Store {
    /// Opens the file, sets WAL + `synchronous=FULL`, creates the table and
    /// reads the row count and the last `seq`.
    pub(crate) fn open(path: &Path, options: &OutboxOptions) -> OutboxResult<Store> {
        let open_error = |source: rusqlite::Error| OutboxError::Open {
            path: path.to_path_buf(),
            source: Arc::new(source),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OutboxError::Io {
                path: PathBuf::from(path),
                source: Arc::new(source),
            })?;
        }
        let conn = Connection::open(path).map_err(open_error)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_error)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), %mode, "outbox is not in WAL mode");
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_error)?;
        if let Some(pages) = options.max_pages {
            conn.pragma_update(None, "max_page_count", pages)
                .map_err(open_error)?;
        }
        conn.execute(SCHEMA, []).map_err(open_error)?;
        let has_latest_key = conn
            .prepare("SELECT latest_key FROM outbox LIMIT 0")
            .is_ok();
        if !has_latest_key {
            conn.execute(ADD_LATEST_KEY, []).map_err(open_error)?;
        }
        conn.execute(LATEST_KEY_INDEX, []).map_err(open_error)?;
        let len: i64 = conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))
            .map_err(open_error)?;
        let last_seq: Option<i64> = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(open_error)?;
        let stats = OutboxStats {
            len: u64::try_from(len).unwrap_or(0),
            last_seq: last_seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        };
        tracing::debug!(path = %path.display(), ?stats, "outbox open");
        Ok(Store {
            conn,
            max_rows: options.max_rows,
            stats,
            commits: 0,
        })
    }

    pub(crate) fn stats(&self) -> OutboxStats {
        self.stats
    }

    /// Serves commands until every handle is gone, publishing the stats
    /// after each change; returns the store when done. Runs on the outbox
    /// thread.
    pub(crate) fn drive(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        stats: &watch::Sender<OutboxStats>,
    ) -> Store {
        let mut held: Option<Command> = None;
        loop {
            let Some(command) = held.take().or_else(|| rx.blocking_recv()) else {
                break;
            };
            // Publish the new stats before answering, so a caller that
            // got its answer sees them.
            match command {
                Command::Append { msgs, reply } => {
                    let mut rows = msgs.len();
                    let mut batch: AppendBatch = vec![(msgs, reply)];
                    while rows < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(Command::Append { msgs, reply }) => {
                                rows += msgs.len();
                                batch.push((msgs, reply));
                            }
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let answers = self.append_batch(batch);
                    self.publish(stats);
                    for (reply, answer) in answers {
                        let _ = reply.send(answer);
                    }
                }
                Command::PendingFrom {
                    after,
                    limit,
                    reply,
                } => {
                    let answer = self.pending_from(after, limit);
                    self.publish(stats);
                    let _ = reply.send(answer);
                }
                Command::Remove { msg_id, reply } => {
                    let answer = self.remove(&msg_id);
                    self.publish(stats);
                    let _ = reply.send(answer);
                }
                Command::RemoveThrough { seq, reply } => {
                    let answer = self.remove_through(seq);
                    self.publish(stats);
                    let _ = reply.send(answer);
                }
            }
        }
        tracing::debug!("outbox closed");
        self
    }

    fn publish(&self, stats: &watch::Sender<OutboxStats>) {
        stats.send_if_modified(|s| std::mem::replace(s, self.stats) != self.stats);
    }

    /// Commits every message of `batch` in one transaction; returns each
    /// caller's answer. On a failed transaction every caller gets the error.
    fn append_batch(&mut self, batch: AppendBatch) -> Vec<(AppendReply, AppendAnswer)> {
        let (groups, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        match self.insert_all(groups) {
            Ok(results) => replies
                .into_iter()
                .zip(results.into_iter().map(Ok))
                .collect(),
            Err(err) => {
                tracing::error!(error = %error_chain(&err), "outbox append failed; nothing stored");
                replies.into_iter().map(|r| (r, Err(err.clone()))).collect()
            }
        }
    }

    fn insert_all(
        &mut self,
        groups: Vec<Vec<Message>>,
    ) -> OutboxResult<Vec<Vec<OutboxResult<u64>>>> {
        let mut len = self.stats.len;
        let mut last_seq = self.stats.last_seq;
        let now = proto::now_millis();
        let tx = self.conn.transaction()?;
        let mut results = Vec::with_capacity(groups.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO outbox (msg_id, message, created_at, latest_key) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(msg_id) DO NOTHING",
            )?;
            let mut supersede = tx.prepare_cached("DELETE FROM outbox WHERE latest_key = ?1")?;
            let mut existing = tx.prepare_cached("SELECT seq FROM outbox WHERE msg_id = ?1")?;
            for group in groups {
                let mut answers = Vec::with_capacity(group.len());
                for mut msg in group {
                    if msg.header.msg_id.is_empty() {
                        msg.header.msg_id = proto::new_msg_id();
                    }
                    if let Some(seq) = existing
                        .query_row([msg.id()], |row| row.get::<_, i64>(0))
                        .optional()?
                    {
                        answers.push(Ok(to_seq(seq)));
                        continue;
                    }
                    let key = latest_key(&msg);
                    if let Some(key) = &key {
                        let gone = supersede.execute([key])?;
                        len = len.saturating_sub(u64::try_from(gone).unwrap_or(0));
                    }
                    if len >= self.max_rows {
                        answers.push(Err(OutboxError::Full {
                            max_rows: self.max_rows,
                        }));
                        continue;
                    }
                    let json =
                        serde_json::to_string(&msg).map_err(|source| OutboxError::Encode {
                            msg_id: msg.id().to_owned(),
                            source: Arc::new(source),
                        })?;
                    insert.execute(params![msg.id(), json, now, key])?;
                    let seq = to_seq(tx.last_insert_rowid());
                    len += 1;
                    last_seq = last_seq.max(seq);
                    answers.push(Ok(seq));
                }
                results.push(answers);
            }
        }
        tx.commit()?;
        self.commits += 1;
        self.stats = OutboxStats { len, last_seq };
        Ok(results)
    }

    fn pending_from(&mut self, after: u64, limit: usize) -> OutboxResult<Vec<(u64, Message)>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut corrupt = Vec::new();
        let mut rows = Vec::new();
        {
            let mut query = self.conn.prepare_cached(
                "SELECT seq, message FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let mut cursor = query.query(params![after, limit])?;
            while let Some(row) = cursor.next()? {
                let seq = to_seq(row.get(0)?);
                let text: String = row.get(1)?;
                match serde_json::from_str::<Message>(&text) {
                    Ok(msg) => rows.push((seq, msg)),
                    Err(err) => {
                        tracing::error!(seq, %err, "dropping an outbox row that is not a message");
                        corrupt.push(seq);
                    }
                }
            }
        }
        for seq in corrupt {
            let seq = i64::try_from(seq).unwrap_or(i64::MAX);
            let gone = self
                .conn
                .execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
            self.stats.len = self.stats.len.saturating_sub(gone as u64);
        }
        Ok(rows)
    }

    fn remove(&mut self, msg_id: &str) -> OutboxResult<bool> {
        let gone = self
            .conn
            .prepare_cached("DELETE FROM outbox WHERE msg_id = ?1")?
            .execute([msg_id])?;
        self.stats.len = self.stats.len.saturating_sub(gone as u64);
        Ok(gone > 0)
    }

    fn remove_through(&mut self, seq: u64) -> OutboxResult<u64> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let gone = self
            .conn
            .prepare_cached("DELETE FROM outbox WHERE seq <= ?1")?
            .execute([seq])? as u64;
        self.stats.len = self.stats.len.saturating_sub(gone);
        Ok(gone)
    }
}

fn to_seq(rowid: i64) -> u64 {
    u64::try_from(rowid).unwrap_or(0)
}

/// The error and its sources, joined with `: `.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use proto::Operation;

    use super::*;

    #[test]
    fn node_status_and_leases_keep_only_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("o.db"), &OutboxOptions::default()).unwrap();
        let status = |n: u64| {
            Message::new(
                "edged",
                "meta",
                Operation::Update,
                "default/nodestatus/edge-1",
            )
            .with_content(serde_json::json!({ "n": n }))
        };
        let lease = || {
            Message::new(
                "edged",
                "meta",
                Operation::Update,
                "kube-node-lease/lease/edge-1",
            )
        };
        let event = Message::new("edged", "meta", Operation::Insert, "default/event/e1");
        let twin = Message::new(
            "twin",
            "twin",
            Operation::Update,
            "device/d1/twin/edge_updated",
        );
        let batch = vec![
            status(1),
            lease(),
            event,
            status(2),
            twin,
            lease(),
            status(3),
        ];
        store.insert_all(vec![batch]).unwrap();
        let rows = store.pending_from(0, 100).unwrap();
        let kept: Vec<String> = rows
            .iter()
            .map(|(_, m)| format!("{} {}", m.resource(), m.content))
            .collect();
        assert_eq!(
            kept,
            [
                "default/event/e1 null",
                "device/d1/twin/edge_updated null",
                "kube-node-lease/lease/edge-1 null",
                "default/nodestatus/edge-1 {\"n\":3}",
            ]
        );
        assert_eq!(store.stats().len, 4);
        // Registration (an insert) is never replaced.
        let reg = Message::new("edged", "meta", Operation::Insert, "default/node/edge-1");
        assert_eq!(latest_key(&reg), None);
    }

    #[test]
    fn appends_queued_together_share_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.db"), &OutboxOptions::default()).unwrap();
        let (tx, rx) = mpsc::channel(64);
        let mut answers = Vec::new();
        for n in 0..10 {
            let (reply, answer) = oneshot::channel();
            let msg = Message::new("twin", "twin", Operation::Update, format!("device/d{n}"));
            tx.try_send(Command::Append {
                msgs: vec![msg],
                reply,
            })
            .unwrap();
            answers.push(answer);
        }
        drop(tx);
        let (stats, _) = watch::channel(store.stats());
        let store = store.drive(rx, &stats);
        assert_eq!(store.commits, 1);
        let seqs: Vec<u64> = answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap().unwrap()[0].clone().unwrap())
            .collect();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
        assert_eq!(
            store.stats(),
            OutboxStats {
                len: 10,
                last_seq: 10
            }
        );
    }
}
