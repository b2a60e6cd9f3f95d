//! Upstream messages written while the cloud is unreachable survive a
//! SIGKILL of edgecore (the `edge-probe` process: edgecore plus a module
//! that sends numbered messages up) and reach the cloud, in order, once the
//! link returns.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tests::config;
use tests::eventually;
use tests::link::Cloud;
use tests::proxy::{Mode, TcpProxy};

const COUNT: u64 = 300;

fn probe(config: &Path, count: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_edge-probe"))
        .arg(config)
        .arg(count.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("start edge-probe")
}

fn outbox_rows(db: &Path) -> Option<u64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row("SELECT count(*) FROM outbox", [], |row| {
        row.get::<_, i64>(0)
    })
    .ok()
    .and_then(|n| u64::try_from(n).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_upstream_survives_sigkill_and_arrives_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut cloud_cfg = config::cloud(&dir.path().join("cloud"), 30);
    // The probe's numbered events are about no object, which node
    // authorization refuses; this test is about the outbox.
    cloud_cfg.modules.cloud_hub.authorization.enable = false;
    let mut cloud = Cloud::start(cloud_cfg).await;
    let proxy = TcpProxy::start(cloud.addrs.websocket.unwrap())
        .await
        .unwrap();

    // Join first (the certificate server is reachable), then cut the link.
    let edge_dir = dir.path().join("edge");
    let edge = config::link_only(cloud.edge_config(&edge_dir, proxy.addr()));
    let config_path = dir.path().join("edgecore.yaml");
    std::fs::write(&config_path, serde_norway::to_string(&edge).unwrap()).unwrap();
    proxy.set(Mode::Drop);

    let mut first = probe(&config_path, COUNT);
    let outbox = edge_dir.join("edgecore.outbox.db");
    eventually(
        "all messages committed to the outbox",
        Duration::from_secs(60),
        || async { (outbox_rows(&outbox) == Some(COUNT)).then_some(()) },
    )
    .await;
    first.kill().expect("SIGKILL edge-probe");
    first.wait().unwrap();

    // Restarted, producing nothing new; the link comes back.
    let mut second = probe(&config_path, 0);
    proxy.set(Mode::Pass);
    let mut seen = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while seen.len() < COUNT as usize {
        let msg = tokio::time::timeout_at(deadline, cloud.upstream.recv())
            .await
            .expect("all upstream messages arrive")
            .expect("cloud running");
        if ids.insert(msg.id().to_owned()) {
            seen.push(msg.content["seq"].as_u64().expect("seq"));
        }
    }
    let expected: Vec<u64> = (0..COUNT).collect();
    assert_eq!(
        seen, expected,
        "upstream messages arrive in order, none lost"
    );
    eventually(
        "outbox drained by acks",
        Duration::from_secs(30),
        || async { (outbox_rows(&outbox) == Some(0)).then_some(()) },
    )
    .await;

    second.kill().unwrap();
    second.wait().unwrap();
    cloud.stop().await;
}
