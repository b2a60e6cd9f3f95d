//! How long `apiary up` takes, start to "Ready", on a fresh data directory
//! (the edge joins) and on one reused from the run before; and from Ctrl-C
//! to exit. Baseline, measured in the same run: mosquitto from spawn to
//! accepting its first TCP connection (a daemon with nothing to set up), so
//! that the figures read as ratios on a noisy machine.
//!
//! `cargo bench -p apiary --bench up` (release build; needs mosquitto,
//! `scripts/install-deps.sh` installs it). `APIARY_BENCH_RUNS` sets the
//! number of rounds (default 7).

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark: failing loudly is the point"
)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const PATIENCE: Duration = Duration::from_secs(60);

/// One `apiary up`: (start → Ready summary, SIGINT → exit).
async fn up(data: &std::path::Path) -> (Duration, Duration) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_apiary"))
        .args(["up", "--any-port", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ready = None;
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("Apiary is up") {
                assert!(line.contains("Ready)"), "not Ready: {line}");
                ready = Some(start.elapsed());
            }
            if line.starts_with("Ctrl-C stops both") {
                return;
            }
        }
    })
    .await
    .expect("a summary");
    let stop = Instant::now();
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap()
        .success());
    while lines.next_line().await.unwrap().is_some() {}
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    (ready.unwrap(), stop.elapsed())
}

/// mosquitto from spawn to its first accepted connection.
async fn mosquitto() -> Duration {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let _child = Command::new("mosquitto")
        .args(["-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto (scripts/install-deps.sh installs it)");
    let deadline = start + PATIENCE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "mosquitto never listened");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("APIARY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
        .max(1);
    let (mut fresh, mut reuse, mut stops, mut base) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (ready, stop) = up(&data).await;
        fresh.push(ready);
        stops.push(stop);
        let (ready, stop) = up(&data).await;
        reuse.push(ready);
        stops.push(stop);
        base.push(mosquitto().await);
    }
    let base = median(base);
    let ratio = |d: Duration| d.as_secs_f64() / base.as_secs_f64();
    println!(
        "apiary up, {runs} rounds, medians (baseline: mosquitto spawn → first connection, {}):",
        ms(base)
    );
    for (what, d) in [
        ("fresh data dir: start → joined, Ready", median(fresh)),
        ("reused data dir: start → Ready", median(reuse)),
        ("Ctrl-C → exit", median(stops)),
    ] {
        println!("  {what:<40} {:>8}  {:>6.1}× baseline", ms(d), ratio(d));
    }
}
