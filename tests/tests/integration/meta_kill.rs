//! MetaManager's guarantee under SIGKILL: edgecore (the `edge-probe`
//! process) is killed in the middle of a burst of 10,000 cloud writes.
//! Every write the cloud saw acked is in the database after the kill, the
//! database opens cleanly, and the writes not acked are sent again by the
//! cloud and applied exactly once (their store revision is not bumped by
//! the resend).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proto::Message;
use tests::config;
use tests::eventually;
use tests::link::Cloud;

const COUNT: u64 = 10_000;

/// Records which configmaps the edge acked.
#[derive(Default)]
struct Acks(Mutex<HashSet<String>>);

impl Acks {
    fn snapshot(&self) -> HashSet<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl cloudcore::cloudhub::AckHook for Acks {
    fn acked(&self, _node: &str, msg: &Message) {
        if let Some(name) = msg.resource().strip_prefix("default/configmap/") {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.to_owned());
        }
    }
}

fn edge_process(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_edge-probe"))
        .arg(config)
        .arg("0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("start edge-probe")
}

/// `name → (store revision, data.n)` of every configmap in `meta_v2`,
/// after checking the file's integrity and that `meta` agrees.
fn configmaps(db: &Path) -> HashMap<String, (i64, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("database opens");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check runs");
    assert_eq!(check, "ok");
    let mut stmt = conn
        .prepare("SELECT name, resource_version, value FROM meta_v2 WHERE group_version_resource = 'v1/configmaps'")
        .expect("query");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .expect("rows");
    let mut out = HashMap::new();
    for row in rows {
        let (name, rev, value) = row.expect("row");
        let value: serde_json::Value = serde_json::from_str(&value).expect("stored JSON");
        let n = value["data"]["n"].as_str().expect("data.n").to_owned();
        out.insert(name, (rev, n));
    }
    let meta_rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM meta WHERE type = 'configmap'",
            [],
            |r| r.get(0),
        )
        .expect("meta count");
    assert_eq!(
        usize::try_from(meta_rows).expect("a count"),
        out.len(),
        "meta and meta_v2 agree"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_writes_survive_sigkill_and_the_rest_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let acks = Arc::new(Acks::default());
    let cloud =
        Cloud::start_with_ack_hook(config::cloud(&dir.path().join("cloud"), 30), acks.clone())
            .await;
    let edge_dir = dir.path().join("edge");
    let mut edge = cloud.edge_config(&edge_dir, cloud.addrs.websocket.unwrap());
    edge.modules.node_status.enable = false;
    let config_path = dir.path().join("edgecore.yaml");
    std::fs::write(&config_path, serde_norway::to_string(&edge).unwrap()).unwrap();

    let mut first = edge_process(&config_path);
    cloud.send_configmaps("edge-1", 1, COUNT).await;
    // Kill it mid-burst.
    eventually(
        "a third of the burst acked",
        Duration::from_secs(120),
        || async { (acks.snapshot().len() as u64 >= COUNT / 3).then_some(()) },
    )
    .await;
    first.kill().expect("SIGKILL the edge");
    first.wait().unwrap();
    let acked = acks.snapshot();
    assert!(
        (acked.len() as u64) < COUNT,
        "killed before the burst ended"
    );

    let db = edge_dir.join("edgecore.db");
    let before = configmaps(&db);
    for name in &acked {
        assert!(
            before.contains_key(name),
            "{name} was acked but is not stored"
        );
    }
    let revision_at_kill = before.values().map(|(rev, _)| *rev).max().unwrap_or(0);

    // Restarted: the cloud resends what was not acked.
    let mut second = edge_process(&config_path);
    eventually(
        "the whole burst acked",
        Duration::from_secs(180),
        || async { (acks.snapshot().len() as u64 == COUNT).then_some(()) },
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();

    let after = configmaps(&db);
    assert_eq!(after.len() as u64, COUNT, "every write is stored");
    for (name, (rev, n)) in &after {
        assert_eq!(format!("cm-{n}"), *name, "content matches the write");
        match before.get(name) {
            // Stored before the kill: the resend did not apply it again.
            Some((old_rev, _)) => assert_eq!(rev, old_rev, "{name} applied twice"),
            None => assert!(*rev > revision_at_kill, "{name} applied after the restart"),
        }
    }
    let distinct: HashSet<i64> = after.values().map(|(rev, _)| *rev).collect();
    assert_eq!(distinct.len() as u64, COUNT, "one revision per write");
    cloud.stop().await;
}
