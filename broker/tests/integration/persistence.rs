//! Persistent sessions and retained messages: kept for a client that is
//! away, and across a restart of the broker on the same data directory.
//!
//! rmqtt keeps its stores open until the process exits, so the restart
//! runs the broker as a process (`apiary-broker`), twice.

#![allow(clippy::unwrap_used, reason = "test")]

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use broker::{Broker, BrokerError, RunningBroker};
use rumqttc::QoS;
use support::{options, persistent, settings, start, text, Client, PATIENCE};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

const TWIN_UPDATE: &str = "$hw/events/device/default/dev1/twin/update";
const TWIN_UPDATES: &str = "$hw/events/device/+/+/twin/update";
const STATE: &str = "$hw/events/device/default/dev1/state";

/// Leaves behind the persistent session of a `mapper` subscribed to every
/// device's twin updates at QoS 1.
async fn mapper_away(addr: SocketAddr) {
    let mut mapper = Client::connected(persistent(addr, "mapper")).await;
    mapper.subscribed(TWIN_UPDATES, QoS::AtLeastOnce).await;
    mapper.disconnect().await;
}

#[tokio::test]
async fn an_absent_persistent_client_gets_its_messages_on_return() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(settings(dir.path(), Broker::default())).await;
    let addr = broker.tcp_addr();
    mapper_away(addr).await;

    let mut device = Client::connected(options(addr, "dev1")).await;
    device
        .publish(TWIN_UPDATE, QoS::AtLeastOnce, false, "while away")
        .await;

    let mut mapper = Client::connected(persistent(addr, "mapper")).await;
    assert!(mapper.session_present, "the session was kept");
    let got = mapper.next_publish().await;
    assert_eq!(
        (text(&got).as_str(), got.qos),
        ("while away", QoS::AtLeastOnce)
    );
    broker.stop();
}

#[tokio::test]
async fn a_data_dir_opens_once_per_process() {
    let dir = tempfile::tempdir().unwrap();
    start(settings(dir.path(), Broker::default())).await.stop();
    let again = RunningBroker::start(settings(dir.path(), Broker::default())).await;
    assert!(
        matches!(again, Err(BrokerError::DataDirOpen { .. })),
        "{again:?}"
    );
    let other = tempfile::tempdir().unwrap();
    start(settings(other.path(), Broker::default()))
        .await
        .stop();
}

/// `apiary-broker` running over a data directory.
struct BrokerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl BrokerProcess {
    async fn start(dir: &Path) -> BrokerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_apiary-broker"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--stop-on-stdin-eof",
                "--data-dir",
            ])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("apiary-broker reports its address in time")
            .unwrap()
            .expect("apiary-broker prints a line");
        let addr = line
            .strip_prefix("listening tcp=")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        BrokerProcess { child, stdin, addr }
    }

    /// Closes its input, which stops it, and waits for a clean exit.
    async fn stop(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("apiary-broker exits in time")
            .unwrap();
        assert!(status.success(), "apiary-broker: {status}");
    }
}

#[tokio::test]
async fn sessions_and_retained_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = BrokerProcess::start(dir.path()).await;
    mapper_away(first.addr).await;
    let mut device = Client::connected(options(first.addr, "dev1")).await;
    device
        .publish(TWIN_UPDATE, QoS::AtLeastOnce, false, "before the restart")
        .await;
    device
        .publish(STATE, QoS::AtLeastOnce, true, "online")
        .await;
    device.disconnect().await;
    first.stop().await;

    let second = BrokerProcess::start(dir.path()).await;
    let mut mapper = Client::connected(persistent(second.addr, "mapper")).await;
    assert!(mapper.session_present, "the session came back");
    let got = mapper.next_publish().await;
    assert_eq!(
        (text(&got).as_str(), got.qos),
        ("before the restart", QoS::AtLeastOnce)
    );
    // Its subscription came back too.
    let mut device = Client::connected(options(second.addr, "dev1")).await;
    device
        .publish(TWIN_UPDATE, QoS::AtLeastOnce, false, "after the restart")
        .await;
    assert_eq!(text(&mapper.next_publish().await), "after the restart");

    let mut late = Client::connected(options(second.addr, "late")).await;
    late.subscribed(STATE, QoS::AtLeastOnce).await;
    let got = late.next_publish().await;
    assert!(got.retain, "delivered as retained");
    assert_eq!(text(&got), "online");
    second.stop().await;
}

/// rmqtt leaves closing after DISCONNECT to the client; the broker closes a
/// connection its client keeps, so the session goes offline and keeps what
/// comes next instead of sending it down that connection.
#[tokio::test]
async fn a_connection_kept_after_disconnect_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let broker = start(settings(dir.path(), Broker::default())).await;
    let addr = broker.tcp_addr();
    mapper_away(addr).await;

    // The same client by hand: CONNECT (clean session off), then
    // DISCONNECT, and the socket kept open.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut connect = vec![0x10, 18, 0, 4, b'M', b'Q', b'T', b'T', 4, 0, 0, 60, 0, 6];
    connect.extend_from_slice(b"mapper");
    raw.write_all(&connect).await.unwrap();
    let mut connack = [0_u8; 4];
    raw.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 1, 0], "CONNACK, session present");
    raw.write_all(&[0xe0, 0]).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, raw.read_to_end(&mut rest))
        .await
        .expect("the broker closes the connection in time")
        .unwrap();

    let mut device = Client::connected(options(addr, "dev1")).await;
    device
        .publish(TWIN_UPDATE, QoS::AtLeastOnce, false, "kept")
        .await;
    let mut mapper = Client::connected(persistent(addr, "mapper")).await;
    assert_eq!(text(&mapper.next_publish().await), "kept");
    broker.stop();
}
