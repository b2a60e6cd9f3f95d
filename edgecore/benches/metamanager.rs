//! MetaManager throughput against raw SQLite, in one run:
//!
//! - `apply/metamanager`: 10,000 configmap inserts from the cloud handed to
//!   MetaManager on the bus, until all 10,000 acks reach the stand-in
//!   EdgeHub (each ack leaves only after its commit; every batch is one
//!   fsync, `synchronous=FULL`, WAL);
//! - `apply/raw_sqlite`: the same 10,000 JSON objects inserted with rusqlite
//!   into one table, 512 rows per transaction, same pragmas;
//! - `watch/store_100_watchers`: 1,000 writes to the object store with 100
//!   watchers, until every watcher has seen every change (100,000 events);
//! - `watch/raw_sqlite`: the same 1,000 rows as raw batched inserts.
//!
//! Each iteration uses a fresh database in a temp dir. Throughput is summed
//! over every timed iteration and printed at the end with the ratios.
//!
//! Run: `cargo bench -p edgecore --bench metamanager`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use beehive::BeehiveBuilder;
use criterion::{criterion_group, Criterion, Throughput};
use edgecore::config::MetaManager as MetaManagerConfig;
use edgecore::metamanager::MetaManager;
use kubestore::{edge_resources, Gvr, ObjectKey, Resources, Store, StoreOptions, WriteOp};
use proto::{Message, Operation};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const APPLY: usize = 10_000;
const WATCHED: usize = 1_000;
const WATCHERS: usize = 100;
const RAW_BATCH: usize = 512;

static TIMINGS: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(name: &'static str, elapsed: Duration, items: usize) {
    let mut timings = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    let entry = timings.entry(name).or_default();
    entry.0 += elapsed;
    entry.1 += items as u64;
}

fn configmap(n: usize) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{n}"), "namespace": "default",
                     "uid": format!("uid-{n}"), "resourceVersion": (n + 1).to_string(),
                     "labels": {"app": "bench"}},
        "data": {"greeting": "hello from the cloud", "n": n.to_string()}
    })
}

fn messages(count: usize) -> Vec<Message> {
    (0..count)
        .map(|n| {
            Message::new(
                "edgecontroller",
                "resource",
                Operation::Insert,
                format!("default/configmap/cm-{n}"),
            )
            .with_resource_version((n + 1).to_string())
            .with_content(configmap(n))
        })
        .collect()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn apply_metamanager(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::open(dir.path().join("edgecore.db"), StoreOptions::default()).expect("store");
        let mut registry = prometheus_client::registry::Registry::default();
        let mut builder = BeehiveBuilder::new();
        builder.module(MetaManager::new(
            &MetaManagerConfig::default(),
            store,
            Resources::new(edge_resources()),
            None,
            &mut registry,
        ));
        let mut acks = builder.endpoint("websocket", "hub");
        let mut hive = builder.build().expect("beehive");
        let cancel = CancellationToken::new();
        hive.start(&cancel);
        let bus = hive.bus();
        let msgs = messages(APPLY);
        let start = Instant::now();
        let send = async {
            for m in msgs {
                bus.send("metamanager", m).await.expect("send");
            }
        };
        let receive = async {
            let mut n = 0;
            while n < APPLY {
                let ack = acks.recv().await.expect("ack");
                assert_eq!(ack.content, "OK");
                n += 1;
            }
        };
        tokio::join!(send, receive);
        total += start.elapsed();
        cancel.cancel();
        hive.shutdown(Duration::from_secs(5)).await.expect("stops");
    }
    record("apply/metamanager", total, APPLY * iters as usize);
    total
}

fn raw_inserts(path: &std::path::Path, rows: &[(String, String)]) {
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("sync");
    conn.execute_batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .expect("table");
    for chunk in rows.chunks(RAW_BATCH) {
        let tx = conn.transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2)")
                .expect("prepare");
            for (k, v) in chunk {
                stmt.execute([k, v]).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
}

fn raw_sqlite(name: &'static str, count: usize, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir().expect("temp dir");
        let rows: Vec<(String, String)> = (0..count)
            .map(|n| {
                (
                    format!("default/configmap/cm-{n}"),
                    configmap(n).to_string(),
                )
            })
            .collect();
        let start = Instant::now();
        raw_inserts(&dir.path().join("raw.db"), &rows);
        total += start.elapsed();
    }
    record(name, total, count * iters as usize);
    total
}

async fn watch_fanout(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::open(dir.path().join("edgecore.db"), StoreOptions::default()).expect("store");
        let gvr = Gvr::core("configmaps");
        let watchers: Vec<_> = (0..WATCHERS)
            .map(|_| {
                let mut watch = store.watch(&gvr, None, None).expect("watch");
                tokio::spawn(async move {
                    for _ in 0..WATCHED {
                        watch.next().await.expect("event");
                    }
                })
            })
            .collect();
        let groups: Vec<Vec<WriteOp>> = (0..WATCHED)
            .map(|n| {
                let key = ObjectKey::new(gvr.clone(), Some("default"), &format!("cm-{n}"));
                vec![WriteOp::put(key, configmap(n))]
            })
            .collect();
        let start = Instant::now();
        for chunk in groups.chunks(RAW_BATCH) {
            for result in store.write_groups(chunk.to_vec()).await {
                result.expect("write");
            }
        }
        for w in watchers {
            w.await.expect("watcher");
        }
        total += start.elapsed();
    }
    record("watch/store_100_watchers", total, WATCHED * iters as usize);
    total
}

fn benches() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    let rt = runtime();
    let mut apply = c.benchmark_group("apply");
    apply.throughput(Throughput::Elements(APPLY as u64));
    apply.bench_function("metamanager", |b| {
        b.iter_custom(|iters| rt.block_on(apply_metamanager(iters)))
    });
    apply.bench_function("raw_sqlite", |b| {
        b.iter_custom(|iters| raw_sqlite("apply/raw_sqlite", APPLY, iters))
    });
    apply.finish();
    let mut watch = c.benchmark_group("watch");
    watch.throughput(Throughput::Elements(WATCHED as u64));
    watch.bench_function("store_100_watchers", |b| {
        b.iter_custom(|iters| rt.block_on(watch_fanout(iters)))
    });
    watch.bench_function("raw_sqlite", |b| {
        b.iter_custom(|iters| raw_sqlite("watch/raw_sqlite", WATCHED, iters))
    });
    watch.finish();
}

criterion_group!(unused, benches_unused);
fn benches_unused(_: &mut Criterion) {}

fn rate(timings: &BTreeMap<&'static str, (Duration, u64)>, name: &str) -> Option<f64> {
    let (elapsed, items) = timings.get(name)?;
    let secs = elapsed.as_secs_f64();
    (secs > 0.0).then(|| *items as f64 / secs)
}

fn summary() {
    let timings = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    println!();
    println!(
        "== metamanager vs raw batched SQLite inserts (all timed iterations, incl. warm-up) =="
    );
    for (name, (elapsed, items)) in timings.iter() {
        let per_sec = *items as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        println!("{name:<28} {items:>10} writes in {elapsed:>10.3?}  {per_sec:>12.0} writes/s");
    }
    for (what, ours, raw) in [
        ("apply + ack", "apply/metamanager", "apply/raw_sqlite"),
        (
            "write + 100-watcher fan-out",
            "watch/store_100_watchers",
            "watch/raw_sqlite",
        ),
    ] {
        if let (Some(ours), Some(raw)) = (rate(&timings, ours), rate(&timings, raw)) {
            println!(
                "{what:<28} apiary/raw throughput ratio = {:.3} (apiary {:.0}/s, raw {:.0}/s)",
                ours / raw,
                ours,
                raw
            );
        }
    }
    if let Some(watch) = rate(&timings, "watch/store_100_watchers") {
        println!(
            "watch fan-out: {:.0} events/s delivered ({WATCHERS} watchers)",
            watch * WATCHERS as f64
        );
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
