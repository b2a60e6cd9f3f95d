//! `sync-bench`: how long an object written to the Kubernetes API takes to
//! be committed at the edge, across 100 edge nodes.
//!
//! ```text
//! cargo build --release -p cloudcore -p tests --bin sync-bench
//! target/release/sync-bench [--nodes 100] [--rates 1,10,100] [--seconds 20]
//! ```
//!
//! One process runs cloudcore (embedded API, EdgeController,
//! SyncController, DeviceController, node authorization — the defaults)
//! and N real edgecores
//! (EdgeHub, MetaManager on their own SQLite files, node status; no MQTT,
//! DeviceTwin, ServiceBus or MetaServer), each joined with a token and
//! registered as an edge Node. Pods bound round-robin to the nodes are then
//! created at each rate for `--seconds` (at least 20 pods). A pod counts as
//! committed when its node's ack reaches CloudHub: MetaManager acks only
//! after the SQLite commit, so this is write → edge commit, plus the ack's
//! trip back over loopback.
//!
//! The baseline, measured in the same run on the same pods: write → the
//! pod's first event on a kube-rs watcher of the same API, listed before
//! the first write (the floor any controller built on a watch has).
//! Figures are reported as ratios to it, since the machine is noisy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use proto::Message;
use tests::config::{self, Via};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a pod may take before the run gives up on it.
const PATIENCE: Duration = Duration::from_secs(60);

/// The namespace the pods go in.
const NAMESPACE: &str = "default";

struct Args {
    nodes: usize,
    rates: Vec<u32>,
    seconds: u32,
}

fn args() -> Result<Args, BoxError> {
    let mut out = Args {
        nodes: 100,
        rates: vec![1, 10, 100],
        seconds: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nodes" => out.nodes = value.parse()?,
            "--rates" => out.rates = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--seconds" => out.seconds = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(out)
}

/// When each pod was written, committed at its edge, and seen by the
/// baseline watcher.
#[derive(Default)]
struct Clock {
    written: HashMap<String, Instant>,
    committed: HashMap<String, Instant>,
    watched: HashMap<String, Instant>,
}

type SharedClock = Arc<Mutex<Clock>>;

fn lock(clock: &SharedClock) -> std::sync::MutexGuard<'_, Clock> {
    clock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records the first ack of each benchmark pod.
struct CommitHook(SharedClock);

impl cloudcore::cloudhub::AckHook for CommitHook {
    fn acked(&self, _node: &str, msg: &Message) {
        let Some(name) = msg.resource().strip_prefix("default/pod/") else {
            return;
        };
        if name.starts_with("bench-") {
            let now = Instant::now();
            lock(&self.0)
                .committed
                .entry(name.to_owned())
                .or_insert(now);
        }
    }
}

fn pod(name: &str, node: &str) -> Result<Pod, BoxError> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}
    }))?)
}

/// p50 and p99 of `samples`, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| tests::quantile(&samples, q).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    (at(0.50), at(0.99))
}

/// Creates pods at `rate` per second for `seconds` (at least 20), bound
/// round-robin to `nodes`, and waits until every one is committed.
async fn run_rate(
    pods: &Api<Pod>,
    clock: &SharedClock,
    nodes: usize,
    rate: u32,
    seconds: u32,
    first: usize,
) -> Result<usize, BoxError> {
    let count = (rate * seconds).max(20) as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // Each create runs on its own task, so a slow one never delays the
    // next write.
    let mut creates = Vec::with_capacity(count);
    for k in first..first + count {
        tick.tick().await;
        let name = format!("bench-{k}");
        let object = pod(&name, &format!("sim-{}", k % nodes))?;
        lock(clock).written.insert(name, Instant::now());
        let pods = pods.clone();
        creates.push(tokio::spawn(async move {
            pods.create(&PostParams::default(), &object).await
        }));
    }
    for create in creates {
        create.await??;
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let committed = {
            let c = lock(clock);
            (first..first + count)
                .filter(|k| c.committed.contains_key(&format!("bench-{k}")))
                .count()
        };
        if committed == count {
            return Ok(count);
        }
        if Instant::now() > deadline {
            return Err(format!("only {committed} of {count} pods committed at {rate}/s").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `n` edgecores named `sim-<i>` against `cloud`; returns them once
/// every one is connected.
async fn start_edges(
    dir: &std::path::Path,
    n: usize,
    token: &str,
    addrs: cloudcore::Addrs,
) -> Result<Vec<(edgecore::Started, CancellationToken)>, BoxError> {
    let https = addrs.https.ok_or("no certificate server")?;
    let server = addrs.websocket.ok_or("no websocket listener")?;
    let mut shutdowns = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("sim-{i}");
        let mut cfg = config::edge(
            &dir.join(&name),
            &name,
            token,
            https,
            server,
            Via::WebSocket,
            15,
        );
        let m = &mut cfg.modules;
        m.meta_manager.meta_server.enable = false;
        m.event_bus.enable = false;
        m.device_twin.enable = false;
        m.service_bus.enable = false;
        shutdowns.push(tests::link::start_connected_edge(cfg).await);
    }
    Ok(shutdowns)
}

/// Waits until `n` edge Nodes are registered.
async fn wait_for_nodes(client: &kube::Client, n: usize) -> Result<(), BoxError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let list = nodes.list(&Default::default()).await?;
        let edge = list
            .items
            .iter()
            .filter(|node| cloudcore::scope::is_edge_node(node))
            .count();
        if edge >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("only {edge} of {n} edge nodes registered").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    let dir = tempfile::tempdir()?;
    let clock = SharedClock::default();
    let mut cfg = config::cloud(&dir.path().join("cloud"), 60);
    let modules = &mut cfg.modules;
    modules.edge_controller.enable = true;
    modules.sync_controller.enable = true;
    modules.device_controller.enable = true;
    modules.cloud_hub.node_limit = u32::try_from(args.nodes + 10)?;
    let shutdown = CancellationToken::new();
    let hook = Arc::new(CommitHook(clock.clone()));
    let started = cloudcore::start_with_ack_hook(cfg, shutdown.clone(), hook, |_| {}).await?;
    let client = started.kube_client();
    let (addrs, token) = (started.addrs, started.pki().token());
    let cloud = tokio::spawn(started.wait());

    let edges = start_edges(dir.path(), args.nodes, &token, addrs).await?;
    wait_for_nodes(&client, args.nodes).await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let watch_clock = clock.clone();
    let (listed, watching) = tokio::sync::oneshot::channel();
    let mut listed = Some(listed);
    let baseline = tokio::spawn(watcher(pods.clone(), watcher::Config::default()).for_each(
        move |event| {
            match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                    let name = pod.metadata.name.unwrap_or_default();
                    let now = Instant::now();
                    lock(&watch_clock).watched.entry(name).or_insert(now);
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(listed) = listed.take() {
                        let _ = listed.send(());
                    }
                }
                _ => {}
            }
            futures::future::ready(())
        },
    ));
    // Writing starts once the watch does: a pod written before would be
    // seen only in the watcher's initial list, later than a watch event.
    tokio::time::timeout(PATIENCE, watching).await??;

    println!(
        "| rate | pods | API write → edge commit p50 / p99 | API write → watch event p50 / p99 (baseline) | ratio p50 / p99 |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let mut first = 0;
    for &rate in &args.rates {
        let count = run_rate(&pods, &clock, args.nodes, rate, args.seconds, first).await?;
        let (commit, watch): (Vec<_>, Vec<_>) = {
            let c = lock(&clock);
            (first..first + count)
                .filter_map(|k| {
                    let name = format!("bench-{k}");
                    let written = c.written.get(&name)?;
                    Some((
                        c.committed.get(&name)?.duration_since(*written),
                        c.watched.get(&name)?.duration_since(*written),
                    ))
                })
                .unzip()
        };
        let (c50, c99) = percentiles(commit);
        let (w50, w99) = percentiles(watch);
        println!(
            "| {rate}/s | {count} | {c50:.2} / {c99:.2} ms | {w50:.2} / {w99:.2} ms | {:.2}× / {:.2}× |",
            c50 / w50,
            c99 / w99
        );
        first += count;
    }

    baseline.abort();
    for (edge, shutdown) in edges {
        shutdown.cancel();
        edge.wait().await?;
    }
    shutdown.cancel();
    cloud.await??;
    Ok(())
}
