//! The bus against raw tokio channels, in one run:
//!
//! - `p2p`: a batch of 10,000 messages sent and received through
//!   [`Bus::send`] versus a bare `mpsc` channel of the same capacity;
//! - `request`: 1,000 sequential round trips through [`Bus::request`] /
//!   [`Bus::respond`] versus `mpsc` + `oneshot`.
//!
//! Messages are built before the clock starts; each reply is built with
//! `Message::reply` on both sides. Timings are recorded by `iter_custom` and
//! summed into messages per second at the end, with the beehive/raw ratio.
//!
//! Run: `cargo bench -p beehive --bench bus`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use beehive::{BeehiveBuilder, Bus};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use proto::{Message, Operation};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

const BATCH: usize = 10_000;
const ROUND_TRIPS: usize = 1_000;
const CAPACITY: usize = beehive::DEFAULT_MAILBOX_CAPACITY;

/// Total time and messages per benchmark, across every iteration criterion ran.
static TIMINGS: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(name: &'static str, elapsed: Duration, messages: usize) {
    let mut timings = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    let entry = timings.entry(name).or_default();
    entry.0 += elapsed;
    entry.1 += messages as u64;
}

fn batch(n: usize) -> Vec<Message> {
    let template = Message::new("bench", "meta", Operation::Update, "default/pod/nginx")
        .with_content(serde_json::json!({"metadata": {"name": "nginx"}, "spec": {}}));
    vec![template; n]
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn p2p_beehive(iters: u64) -> Duration {
    let mut builder = BeehiveBuilder::new().mailbox_capacity(CAPACITY);
    let mut rx = builder.endpoint("sink", "sink");
    let bus = builder.build().expect("build").bus();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let msgs = batch(BATCH);
        let start = Instant::now();
        let send = async {
            for m in msgs {
                bus.send("sink", m).await.expect("send");
            }
        };
        let recv = async {
            for _ in 0..BATCH {
                black_box(rx.recv().await.expect("recv"));
            }
        };
        tokio::join!(send, recv);
        let elapsed = start.elapsed();
        record("p2p/beehive", elapsed, BATCH);
        total += elapsed;
    }
    total
}

async fn p2p_raw(iters: u64) -> Duration {
    let (tx, mut rx) = mpsc::channel::<Message>(CAPACITY);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let msgs = batch(BATCH);
        let start = Instant::now();
        let send = async {
            for m in msgs {
                tx.send(m).await.expect("send");
            }
        };
        let recv = async {
            for _ in 0..BATCH {
                black_box(rx.recv().await.expect("recv"));
            }
        };
        tokio::join!(send, recv);
        let elapsed = start.elapsed();
        record("p2p/raw_mpsc", elapsed, BATCH);
        total += elapsed;
    }
    total
}

async fn request_beehive(iters: u64) -> Duration {
    let mut builder = BeehiveBuilder::new().mailbox_capacity(CAPACITY);
    let mut rx = builder.endpoint("responder", "meta");
    let bus: Bus = builder.build().expect("build").bus();
    let responder_bus = bus.clone();
    let responder = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            responder_bus.respond(m.reply(serde_json::Value::Null));
        }
    });
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let msgs = batch(ROUND_TRIPS);
        let start = Instant::now();
        for m in msgs {
            let reply = bus.request("responder", m, Duration::ZERO).await;
            black_box(reply.expect("reply"));
        }
        let elapsed = start.elapsed();
        record("request/beehive", elapsed, ROUND_TRIPS);
        total += elapsed;
    }
    responder.abort();
    total
}

async fn request_raw(iters: u64) -> Duration {
    let (tx, mut rx) = mpsc::channel::<(Message, oneshot::Sender<Message>)>(CAPACITY);
    let responder = tokio::spawn(async move {
        while let Some((m, reply_to)) = rx.recv().await {
            let _ = reply_to.send(m.reply(serde_json::Value::Null));
        }
    });
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let msgs = batch(ROUND_TRIPS);
        let start = Instant::now();
        for m in msgs {
            let (reply_tx, reply_rx) = oneshot::channel();
            tx.send((m, reply_tx)).await.expect("send");
            black_box(reply_rx.await.expect("reply"));
        }
        let elapsed = start.elapsed();
        record("request/raw_mpsc_oneshot", elapsed, ROUND_TRIPS);
        total += elapsed;
    }
    drop(tx);
    responder.await.expect("responder");
    total
}

fn p2p(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("p2p");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::new("beehive", BATCH), |b| {
        b.iter_custom(|iters| rt.block_on(p2p_beehive(iters)))
    });
    group.bench_function(BenchmarkId::new("raw_mpsc", BATCH), |b| {
        b.iter_custom(|iters| rt.block_on(p2p_raw(iters)))
    });
    group.finish();
}

fn request(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(ROUND_TRIPS as u64));
    group.bench_function(BenchmarkId::new("beehive", ROUND_TRIPS), |b| {
        b.iter_custom(|iters| rt.block_on(request_beehive(iters)))
    });
    group.bench_function(BenchmarkId::new("raw_mpsc_oneshot", ROUND_TRIPS), |b| {
        b.iter_custom(|iters| rt.block_on(request_raw(iters)))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = p2p, request
}

/// Messages (or round trips) per second for one recorded benchmark.
fn rate(timings: &BTreeMap<&'static str, (Duration, u64)>, name: &str) -> Option<f64> {
    let (elapsed, messages) = timings.get(name)?;
    let secs = elapsed.as_secs_f64();
    (secs > 0.0).then(|| *messages as f64 / secs)
}

fn summary() {
    let timings = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    println!();
    println!("== beehive bus vs raw tokio channels (all timed iterations, incl. warm-up) ==");
    for (name, (elapsed, messages)) in timings.iter() {
        let per_sec = *messages as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        println!("{name:<28} {messages:>10} msgs in {elapsed:>10.3?}  {per_sec:>14.0} msgs/s");
    }
    for (what, bus, raw) in [
        ("p2p send+recv", "p2p/beehive", "p2p/raw_mpsc"),
        (
            "request round trip",
            "request/beehive",
            "request/raw_mpsc_oneshot",
        ),
    ] {
        if let (Some(bus), Some(raw)) = (rate(&timings, bus), rate(&timings, raw)) {
            println!(
                "{what:<20} beehive/raw throughput ratio = {:.3} (beehive {:.0} msgs/s, raw {:.0} msgs/s)",
                bus / raw,
                bus,
                raw
            );
        }
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
