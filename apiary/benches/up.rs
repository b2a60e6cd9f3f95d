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

use tokio::process::Command;

#[path = "../tests/integration/driver.rs"]
mod driver;

use driver::Up;

/// How long mosquitto may take to listen.
const PATIENCE: Duration = Duration::from_secs(60);

/// One `apiary up`: (start → summary printed, Ready; SIGINT → exit).
async fn up(data: &std::path::Path) -> (Duration, Duration) {
    let start = Instant::now();
    let mut up = Up::start(data);
    let summary = up.summary().await;
    let ready = start.elapsed();
    assert!(
        summary
            .iter()
            .any(|l| l.starts_with("Apiary is up") && l.contains("Ready)")),
        "not Ready: {summary:?}"
    );
    let stop = Instant::now();
    up.interrupt().await;
    (ready, stop.elapsed())
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
