//! The SQLite outbox: every cloud-bound message is committed here before it
//! is sent, and deleted once the cloud has it (acked, or written to a
//! KubeEdge cloud's socket). A crash, a kill -9 or a week offline loses
//! nothing.
//!
//! Handle/driver split: [`Outbox`] is a cheap, cloneable handle that feeds a
//! bounded channel; one dedicated thread (`edgehub-outbox`) owns the
//! `rusqlite::Connection` and is the file's only writer. Appends that are
//! queued together are committed in one transaction, so bursts share one
//! fsync. The thread ends when the last handle is dropped
//! ([`Outbox::closed`] waits for that).
//!
//! Durability: WAL with `synchronous=FULL`. NORMAL+WAL would survive a
//! process crash (kill -9) but may lose the last commits on power loss or an
//! OS crash, which is the usual way an edge device goes down; FULL syncs the
//! WAL at each commit, and batching keeps that to one fsync per burst.
//! `append` returns only after `COMMIT`.
//!
//! Table: `outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT UNIQUE,
//! message TEXT, created_at INTEGER)`; `seq` never repeats, so it orders the
//! messages and marks how far a sender has read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proto::Message;
use tokio::sync::{mpsc, oneshot, watch};

use super::error::{OutboxError, OutboxResult};
use super::outbox_store::Store;

/// The default cap on waiting messages.
pub const DEFAULT_MAX_ROWS: u64 = 1_000_000;

/// Commands queued for the writer thread before callers wait.
const COMMAND_QUEUE: usize = 256;

/// Options for [`Outbox::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxOptions {
    /// The most messages the outbox holds; appends beyond fail with
    /// [`OutboxError::Full`].
    pub max_rows: u64,
    /// A cap on the database size in pages (SQLite `max_page_count`);
    /// `None` leaves SQLite's default. Reaching it fails like a full disk.
    pub max_pages: Option<u32>,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            max_rows: DEFAULT_MAX_ROWS,
            max_pages: None,
        }
    }
}

/// What the outbox holds, published after every change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Messages waiting.
    pub len: u64,
    /// The highest `seq` ever assigned (0 before the first append).
    pub last_seq: u64,
}

/// One request to the writer thread.
pub(crate) enum Command {
    Append {
        msgs: Vec<Message>,
        reply: oneshot::Sender<OutboxResult<Vec<OutboxResult<u64>>>>,
    },
    PendingFrom {
        after: u64,
        limit: usize,
        reply: oneshot::Sender<OutboxResult<Vec<(u64, Message)>>>,
    },
    Remove {
        msg_id: String,
        reply: oneshot::Sender<OutboxResult<bool>>,
    },
    RemoveThrough {
        seq: u64,
        reply: oneshot::Sender<OutboxResult<u64>>,
    },
}

/// A handle to the outbox; clones share the one writer thread.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Command>,
    stats: watch::Receiver<OutboxStats>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Append { msgs, .. } => write!(f, "Append({})", msgs.len()),
            Command::PendingFrom { after, limit, .. } => write!(f, "PendingFrom({after}, {limit})"),
            Command::Remove { msg_id, .. } => write!(f, "Remove({msg_id})"),
            Command::RemoveThrough { seq, .. } => write!(f, "RemoveThrough({seq})"),
        }
    }
}

impl Outbox {
    /// Opens (creating if needed) the outbox at `path` and starts its writer
    /// thread. Blocking: call it at start-up or inside `spawn_blocking`.
    /// Only one `Outbox` should be open per file.
    pub fn open(path: impl AsRef<Path>, options: OutboxOptions) -> OutboxResult<Outbox> {
        let path = path.as_ref().to_path_buf();
        let store = Store::open(&path, &options)?;
        let (stats_tx, stats) = watch::channel(store.stats());
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        std::thread::Builder::new()
            .name("edgehub-outbox".to_owned())
            .spawn(move || {
                // Close the database before `closed()` can complete.
                drop(store.drive(rx, &stats_tx));
                drop(stats_tx);
            })
            .map_err(|source| OutboxError::Io {
                path: path.clone(),
                source: Arc::new(source),
            })?;
        Ok(Outbox {
            tx,
            stats,
            path: Arc::new(path),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<OutboxResult<T>>) -> Command,
    ) -> OutboxResult<T> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| OutboxError::Closed)?;
        answer.await.map_err(|_| OutboxError::Closed)?
    }

    /// Stores `msg` and returns its `seq` once committed. A message whose
    /// `msg_id` is already stored is not stored twice: its existing `seq` is
    /// returned. A message without an id is given one.
    pub async fn append(&self, msg: Message) -> OutboxResult<u64> {
        let mut results = self.append_all(vec![msg]).await?;
        results.pop().unwrap_or(Err(OutboxError::Closed))
    }

    /// Stores `msgs` in order, in one transaction with whatever else is
    /// queued, and returns once committed: one result per message (a
    /// message beyond the row cap gets [`OutboxError::Full`]). The outer
    /// error is a failure of the whole transaction, which stored nothing.
    pub async fn append_all(&self, msgs: Vec<Message>) -> OutboxResult<Vec<OutboxResult<u64>>> {
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        self.call(|reply| Command::Append { msgs, reply }).await
    }

    /// Up to `limit` stored messages with `seq > after`, in `seq` order.
    pub async fn pending_from(
        &self,
        after: u64,
        limit: usize,
    ) -> OutboxResult<Vec<(u64, Message)>> {
        self.call(|reply| Command::PendingFrom {
            after,
            limit,
            reply,
        })
        .await
    }

    /// Deletes the message with this id; `false` if it was not stored.
    pub async fn remove(&self, msg_id: &str) -> OutboxResult<bool> {
        let msg_id = msg_id.to_owned();
        self.call(|reply| Command::Remove { msg_id, reply }).await
    }

    /// Deletes every message with `seq <= seq`; returns how many.
    pub async fn remove_through(&self, seq: u64) -> OutboxResult<u64> {
        self.call(|reply| Command::RemoveThrough { seq, reply })
            .await
    }

    /// How many messages are waiting, as of the last change.
    pub fn len(&self) -> u64 {
        self.stats.borrow().len
    }

    /// Whether no message is waiting, as of the last change.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The latest [`OutboxStats`].
    pub fn stats(&self) -> OutboxStats {
        *self.stats.borrow()
    }

    /// A receiver that sees every published [`OutboxStats`]; its `changed`
    /// fails once the writer thread has stopped.
    pub fn subscribe(&self) -> watch::Receiver<OutboxStats> {
        self.stats.clone()
    }

    /// Completes when the writer thread has stopped and closed the file,
    /// which happens once every `Outbox` handle is dropped. Holds no handle
    /// itself.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stats = self.stats.clone();
        async move { while stats.changed().await.is_ok() {} }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proto::Operation;

    use super::*;

    fn msg(n: u32) -> Message {
        Message::new(
            "metamanager",
            "resource",
            Operation::Update,
            format!("default/pod/p{n}"),
        )
        .with_content(format!("body {n}"))
    }

    fn open(dir: &tempfile::TempDir, options: OutboxOptions) -> Outbox {
        Outbox::open(dir.path().join("edgecore.outbox.db"), options).unwrap()
    }

    async fn close(outbox: Outbox) {
        let closed = outbox.closed();
        drop(outbox);
        tokio::time::timeout(Duration::from_secs(10), closed)
            .await
            .expect("outbox thread stops when the last handle is dropped");
    }

    #[tokio::test]
    async fn appends_come_back_in_order_and_removes_delete() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(&dir, OutboxOptions::default());
        let msgs: Vec<_> = (0..5).map(msg).collect();
        let mut seqs = Vec::new();
        for m in &msgs {
            seqs.push(outbox.append(m.clone()).await.unwrap());
        }
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(outbox.len(), 5);
        let all = outbox.pending_from(0, 100).await.unwrap();
        assert_eq!(all.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(), msgs);
        let tail = outbox.pending_from(seqs[2], 100).await.unwrap();
        assert_eq!(tail.iter().map(|(s, _)| *s).collect::<Vec<_>>(), seqs[3..]);
        assert_eq!(outbox.pending_from(0, 2).await.unwrap().len(), 2);

        assert!(outbox.remove(msgs[1].id()).await.unwrap());
        assert!(!outbox.remove(msgs[1].id()).await.unwrap());
        assert_eq!(outbox.remove_through(seqs[2]).await.unwrap(), 2);
        let left = outbox.pending_from(0, 100).await.unwrap();
        assert_eq!(left.iter().map(|(s, _)| *s).collect::<Vec<_>>(), seqs[3..]);
        assert_eq!(
            outbox.stats(),
            OutboxStats {
                len: 2,
                last_seq: seqs[4]
            }
        );
        close(outbox).await;
    }

    #[tokio::test]
    async fn duplicate_ids_are_stored_once_and_missing_ids_are_filled() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(&dir, OutboxOptions::default());
        let m = msg(1);
        let first = outbox.append(m.clone()).await.unwrap();
        assert_eq!(outbox.append(m).await.unwrap(), first);
        let mut anonymous = msg(2);
        anonymous.header.msg_id.clear();
        outbox.append(anonymous).await.unwrap();
        let rows = outbox.pending_from(0, 10).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(!rows[1].1.id().is_empty());
        close(outbox).await;
    }

    #[tokio::test]
    async fn rows_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(&dir, OutboxOptions::default());
        let msgs: Vec<_> = (0..3).map(msg).collect();
        let seqs: Vec<_> = outbox
            .append_all(msgs.clone())
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        outbox.remove(msgs[0].id()).await.unwrap();
        close(outbox).await;

        let outbox = open(&dir, OutboxOptions::default());
        assert_eq!(
            outbox.stats(),
            OutboxStats {
                len: 2,
                last_seq: seqs[2]
            }
        );
        let rows = outbox.pending_from(0, 10).await.unwrap();
        assert_eq!(
            rows,
            vec![(seqs[1], msgs[1].clone()), (seqs[2], msgs[2].clone())]
        );
        // seq never goes back, even after deleting the newest row.
        outbox.remove_through(seqs[2]).await.unwrap();
        close(outbox).await;
        let outbox = open(&dir, OutboxOptions::default());
        assert!(outbox.append(msg(9)).await.unwrap() > seqs[2]);
        close(outbox).await;
    }

    #[tokio::test]
    async fn concurrent_appends_are_batched_and_ordered_per_caller() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(&dir, OutboxOptions::default());
        let mut tasks = Vec::new();
        for caller in 0..8u32 {
            let outbox = outbox.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for n in 0..25 {
                    seqs.push(outbox.append(msg(caller * 100 + n)).await.unwrap());
                }
                seqs
            }));
        }
        for task in tasks {
            let seqs = task.await.unwrap();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        }
        assert_eq!(outbox.len(), 200);
        assert_eq!(outbox.pending_from(0, 1000).await.unwrap().len(), 200);
        close(outbox).await;
    }

    #[tokio::test]
    async fn the_row_cap_refuses_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let options = OutboxOptions {
            max_rows: 3,
            ..OutboxOptions::default()
        };
        let outbox = open(&dir, options.clone());
        let results = outbox.append_all((0..5).map(msg).collect()).await.unwrap();
        assert!(results[..3].iter().all(Result::is_ok));
        for r in &results[3..] {
            assert!(matches!(r, Err(OutboxError::Full { max_rows: 3 })), "{r:?}");
        }
        let err = outbox.append(msg(7)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the outbox is full (3 messages waiting for the cloud)"
        );
        outbox.remove_through(1).await.unwrap();
        outbox.append(msg(8)).await.unwrap();
        close(outbox).await;
        // The count is read back on open.
        let outbox = open(&dir, options);
        assert!(matches!(
            outbox.append(msg(9)).await,
            Err(OutboxError::Full { .. })
        ));
        close(outbox).await;
    }

    #[tokio::test]
    async fn a_full_disk_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(
            &dir,
            OutboxOptions {
                max_pages: Some(8),
                ..OutboxOptions::default()
            },
        );
        let big = "x".repeat(64 * 1024);
        let mut disk_full = None;
        for n in 0..64 {
            match outbox.append(msg(n).with_content(big.clone())).await {
                Ok(_) => {}
                Err(e) => {
                    disk_full = Some(e);
                    break;
                }
            }
        }
        assert!(
            matches!(disk_full, Some(OutboxError::DiskFull(_))),
            "{disk_full:?}"
        );
        // Still usable: reads and deletes work, and the count is right.
        let rows = outbox.pending_from(0, 100).await.unwrap();
        assert_eq!(rows.len() as u64, outbox.len());
        close(outbox).await;
    }
}
