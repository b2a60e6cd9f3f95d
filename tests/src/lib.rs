//! The end-to-end harness: helpers that start real daemons on loopback
//! ports with temporary data directories, and [`eventually`] to wait for a
//! condition instead of sleeping.
//!
//! # Layout
//!
//! - [`eventually`]: poll a condition until it holds or a deadline passes.
//! - [`binaries`]: the real `cloudcore` and `edgecore` binaries, for
//!   tests of their command lines.
//! - [`cluster`]: Kubernetes API servers (embedded, kube-apiserver) with
//!   kube-rs clients, for the kube-facing suite.
//! - [`config`]: daemon configurations on loopback port 0 in temp dirs.
//! - [`link`]: a cloud and edges in-process with stand-in modules.
//! - [`kubectl`]: real kubectl against a loopback server.
//! - [`mqtt`]: a real MQTT client (rumqttc) and mosquitto_sub, as
//!   devices and mappers.
//! - [`kube`]: a real kube-apiserver 1.20 with etcd on loopback (built by
//!   `scripts/kube-apiserver.sh`), or a developer's cluster.
//! - [`proxy`]: loopback TCP/UDP proxies that drop or blackhole the link.
//! - [`Daemon`]: an in-process daemon (`cloudcore::run` / `edgecore::run`)
//!   with its shutdown token and join handle.
//! - [`quantile`]: a latency percentile, for the benchmark binaries.

pub mod binaries;
pub mod cluster;
pub mod config;
pub mod kube;
pub mod kubectl;
pub mod link;
pub mod mqtt;
pub mod proxy;

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long [`eventually`] waits by default.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(20);

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what`
/// once `patience` has passed.
pub async fn eventually<T, F, Fut>(what: &str, patience: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {patience:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `q` quantile (0.0 to 1.0) of `sorted` (ascending), by nearest rank;
/// `None` when there are no samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    let rank = (last as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted.get(rank).copied()
}

/// A daemon running in this process.
pub struct Daemon<E> {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), E>>,
}

impl<E: Send + 'static> Daemon<E> {
    /// Spawns `run(shutdown)` on the current runtime.
    pub fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shutdown.clone()));
        Daemon { shutdown, task }
    }

    /// True once the daemon's task has returned.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Cancels the daemon and waits (at most `grace`) for its result.
    pub async fn stop(self, grace: Duration) -> Result<(), E> {
        self.shutdown.cancel();
        match tokio::time::timeout(grace, self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => panic!("daemon task failed: {join}"),
            Err(_) => panic!("daemon did not stop within {grace:?}"),
        }
    }
}

#[cfg(test)]
mod quantile_tests {
    use super::quantile;
    use std::time::Duration;

    #[test]
    fn nearest_rank_of_sorted_samples() {
        let ms: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        let at = |q| quantile(&ms, q).map(|d| d.as_millis());
        assert_eq!(at(0.0), Some(1));
        assert_eq!(at(0.5), Some(6), "rank 4.5 rounds up");
        assert_eq!(at(0.99), Some(10));
        assert_eq!(at(1.0), Some(10));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
