//! `kubeapi-bench [--writes N] [--watchers W] [--events E]`: cloudcore's
//! embedded API against Kubernetes' own kube-apiserver (with etcd, built by
//! `scripts/kube-apiserver.sh`) on this machine, in one run, both through
//! kube-rs:
//!
//! - writes/s: N configmap creates, 16 at a time;
//! - watch latency: W watchers on one namespace, then E configmaps created
//!   one after another; the time from each create's start until each
//!   watcher sees it (p50, p99, max over W × E deliveries).
//!
//! Prints both and the embedded/real ratios. Without a built kube-apiserver
//! it measures the embedded API alone and says so.
//!
//! Run: `cargo build --release -p cloudcore -p tests && target/release/kubeapi-bench`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::ResourceExt;
use tests::cluster::{self, Target};

struct Args {
    writes: usize,
    watchers: usize,
    events: usize,
}

fn args() -> Option<Args> {
    let mut a = Args {
        writes: 2000,
        watchers: 100,
        events: 200,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--writes", Some(v)) => a.writes = v,
            ("--watchers", Some(v)) => a.watchers = v,
            ("--events", Some(v)) => a.events = v,
            _ => {
                eprintln!("usage: kubeapi-bench [--writes N] [--watchers W] [--events E]");
                return None;
            }
        }
    }
    Some(a)
}

fn configmap(name: String) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some([("bench".to_owned(), "yes".to_owned())].into()),
            ..ObjectMeta::default()
        },
        data: Some([("greeting".to_owned(), "hello from the bench".to_owned())].into()),
        ..ConfigMap::default()
    }
}

async fn namespace(t: &Target, name: &str) -> Api<ConfigMap> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(t.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    Api::namespaced(t.client.clone(), name)
}

async fn writes(t: &Target, n: usize) -> f64 {
    let api = namespace(t, "bench-writes").await;
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &configmap(format!("cm-{i}")))
                    .await
                    .map(drop)
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("creates");
    n as f64 / start.elapsed().as_secs_f64()
}

/// Latencies (p50, p99, max) of `events` creates seen by `watchers`.
async fn watch_latency(
    t: &Target,
    watchers: usize,
    events: usize,
) -> (Duration, Duration, Duration) {
    let api = namespace(t, "bench-watch").await;
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let stream = api
            .watch(&WatchParams::default().timeout(290), &rv)
            .await
            .expect("watch");
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut seen = Vec::with_capacity(events);
            while seen.len() < events {
                match stream.next().await {
                    Some(Ok(WatchEvent::Added(cm))) => {
                        let now = Instant::now();
                        let at = sent
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get(&cm.name_any())
                            .copied();
                        if let Some(at) = at {
                            seen.push(now.duration_since(at));
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => panic!("watch failed: {err}"),
                    None => panic!("watch ended early"),
                }
            }
            seen
        }));
    }
    for i in 0..events {
        let name = format!("ev-{i}");
        sent.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.clone(), Instant::now());
        api.create(&PostParams::default(), &configmap(name))
            .await
            .expect("create");
    }
    let mut all = Vec::with_capacity(watchers * events);
    for task in tasks {
        all.extend(task.await.expect("watcher"));
    }
    all.sort();
    let at = |q: f64| tests::quantile(&all, q).expect("watchers saw the events");
    (at(0.5), at(0.99), at(1.0))
}

async fn measure(t: &Target, a: &Args) -> (f64, (Duration, Duration, Duration)) {
    let w = writes(t, a.writes).await;
    let l = watch_latency(t, a.watchers, a.events).await;
    println!(
        "{:<15} writes {:>8.0}/s   watch latency to {} watchers: p50 {:>9.2?} p99 {:>9.2?} max {:>9.2?}",
        t.name, w, a.watchers, l.0, l.1, l.2
    );
    (w, l)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Some(a) = args() else {
        return std::process::ExitCode::from(64);
    };
    let embedded = cluster::embedded().await;
    let (ew, el) = measure(&embedded, &a).await;
    drop(embedded);
    let Some(real) = cluster::real().await else {
        println!("kube-apiserver not built (scripts/kube-apiserver.sh): no baseline this run");
        return std::process::ExitCode::SUCCESS;
    };
    let (rw, rl) = measure(&real, &a).await;
    println!(
        "embedded/kube-apiserver: writes {:.2}x, watch p50 latency {:.2}x, p99 {:.2}x (latency: lower is better)",
        ew / rw,
        el.0.as_secs_f64() / rl.0.as_secs_f64(),
        el.1.as_secs_f64() / rl.1.as_secs_f64()
    );
    std::process::ExitCode::SUCCESS
}
