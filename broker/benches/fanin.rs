//! Fan-in throughput of the embedded broker, against mosquitto and rumqttd
//! in the same run: [`PUBLISHERS`] clients each publish [`MESSAGES`] QoS 1
//! messages on `bench/device/<i>/twin/update` while one QoS 1 subscriber on
//! `bench/device/+/twin/update` takes them all; msg/s is messages over the
//! time from the first publish to the last delivery, median of [`ROUNDS`]
//! rounds after a warm-up. (A plain topic: rumqttd does not route `$`
//! topics.)
//!
//! All clients are rumqttc on one runtime of this process, with the same
//! in-flight window (100) as the brokers' per-session window. mosquitto
//! (`/usr/sbin/mosquitto`, skipped with a note if absent) runs as a process
//! on a free loopback port; rumqttd runs in this process on its own
//! threads, which it never stops (they end with the process).
//!
//! `cargo bench -p broker --bench fanin`

#![allow(clippy::unwrap_used, reason = "benchmark")]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::task::JoinSet;

/// Publishing clients.
const PUBLISHERS: usize = 10;
/// QoS 1 messages per publisher per round.
const MESSAGES: usize = 2_000;
/// Measured rounds per broker (after one warm-up round).
const ROUNDS: usize = 3;
/// Longest a round may take before it counts as failed.
const ROUND_LIMIT: Duration = Duration::from_secs(30);
/// In-flight window of every client and every broker session.
const IN_FLIGHT: u16 = 100;
const FILTER: &str = "bench/device/+/twin/update";
const PAYLOAD: &[u8] =
    br#"{"event_id":"","timestamp":0,"twin":{"temperature":{"actual":{"value":"21.5"}}}}"#;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    println!(
        "fan-in: {PUBLISHERS} publishers x {MESSAGES} QoS 1 messages -> 1 QoS 1 subscriber \
         on {FILTER}; median of {ROUNDS} rounds"
    );
    let dir = tempfile::tempdir()?;

    let embedded = {
        let broker = broker::RunningBroker::start(broker::BrokerSettings {
            listen: "127.0.0.1:0".parse()?,
            config: broker::Broker::default(),
            data_dir: dir.path().join("embedded"),
            bus_username: String::new(),
            bus_password: String::new(),
            session_queue: IN_FLIGHT.into(),
        })
        .await?;
        let rate = measure("embedded (rmqtt)", broker.tcp_addr()).await;
        broker.stop();
        rate?
    };

    let mosquitto = match Path::new("/usr/sbin/mosquitto").exists() {
        true => {
            let (mut child, addr) = start_mosquitto(dir.path()).await?;
            let rate = measure("mosquitto", addr).await;
            child.kill().await?;
            Some(rate?)
        }
        false => {
            println!("mosquitto: skipped, /usr/sbin/mosquitto is not installed");
            None
        }
    };

    let rumqttd = {
        let addr = start_rumqttd().await?;
        measure("rumqttd", addr).await?
    };

    if let Some(mosquitto) = mosquitto {
        println!("embedded/mosquitto: {:.2}", embedded / mosquitto);
    }
    println!("embedded/rumqttd:   {:.2}", embedded / rumqttd);
    Ok(())
}

/// Warm-up plus [`ROUNDS`] rounds against `addr`; prints and returns the
/// median msg/s.
async fn measure(name: &str, addr: SocketAddr) -> anyhow::Result<f64> {
    round(addr, 0)
        .await
        .with_context(|| format!("{name}: warm-up"))?;
    let mut rates = Vec::with_capacity(ROUNDS);
    for r in 1..=ROUNDS {
        rates.push(
            round(addr, r)
                .await
                .with_context(|| format!("{name}: round {r}"))?,
        );
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[ROUNDS / 2];
    let all: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "{name:<18} {median:>9.0} msg/s  (rounds: {})",
        all.join(", ")
    );
    Ok(median)
}

fn options(addr: SocketAddr, id: String) -> MqttOptions {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(IN_FLIGHT);
    options.set_max_packet_size(64 * 1024, 64 * 1024);
    options
}

/// One round: subscriber ready, then all publishers at once; msg/s.
async fn round(addr: SocketAddr, round: usize) -> anyhow::Result<f64> {
    let total = PUBLISHERS * MESSAGES;
    let (subscriber, mut sub_events) = AsyncClient::new(options(addr, format!("sub-{round}")), 16);
    subscriber.subscribe(FILTER, QoS::AtLeastOnce).await?;
    // Until the SUBACK.
    tokio::time::timeout(ROUND_LIMIT, async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = sub_events.poll().await? {
                return anyhow::Ok(());
            }
        }
    })
    .await
    .context("no SUBACK")??;

    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(PUBLISHERS);
    let mut publishers = JoinSet::new();
    for p in 0..PUBLISHERS {
        let mut go = go_rx.clone();
        let ready = ready_tx.clone();
        let (client, mut events) =
            AsyncClient::new(options(addr, format!("pub-{round}-{p}")), 1_000);
        publishers.spawn(async move {
            // Connected before the clock starts.
            loop {
                if let Event::Incoming(Packet::ConnAck(_)) = events.poll().await? {
                    break;
                }
            }
            ready.send(()).await?;
            let topic = format!("bench/device/{p}/twin/update");
            let sender = tokio::spawn(async move {
                go.wait_for(|go| *go).await?;
                for _ in 0..MESSAGES {
                    client
                        .publish(&topic, QoS::AtLeastOnce, false, PAYLOAD)
                        .await?;
                }
                anyhow::Ok(client)
            });
            let mut acked = 0;
            while acked < MESSAGES {
                if let Event::Incoming(Packet::PubAck(_)) = events.poll().await? {
                    acked += 1;
                }
            }
            let client = sender.await??;
            client.disconnect().await?;
            anyhow::Ok(())
        });
    }
    // Every publisher has its CONNACK before the clock starts.
    for _ in 0..PUBLISHERS {
        tokio::time::timeout(ROUND_LIMIT, ready_rx.recv())
            .await
            .context("a publisher did not connect")?
            .context("a publisher failed to connect")?;
    }

    let received = tokio::time::timeout(ROUND_LIMIT, async {
        let started = Instant::now();
        go_tx.send(true)?;
        let mut received = 0;
        while received < total {
            if let Event::Incoming(Packet::Publish(_)) = sub_events.poll().await? {
                received += 1;
            }
        }
        anyhow::Ok(started.elapsed())
    })
    .await;
    let elapsed = match received {
        Ok(elapsed) => elapsed?,
        Err(_) => bail!("not all {total} messages arrived within {ROUND_LIMIT:?}"),
    };
    while let Some(done) = publishers.join_next().await {
        done??;
    }
    subscriber.disconnect().await?;
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// A free loopback port: bind port 0, read it, let it go.
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits until something accepts connections on `addr`.
async fn accepting(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing accepts on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn start_mosquitto(dir: &Path) -> anyhow::Result<(tokio::process::Child, SocketAddr)> {
    let addr = free_addr()?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {} {}\nallow_anonymous true\npersistence false\n\
             max_inflight_messages {IN_FLIGHT}\nmax_queued_messages 0\nlog_dest none\n",
            addr.port(),
            addr.ip()
        ),
    )?;
    let child = tokio::process::Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .kill_on_drop(true)
        .spawn()?;
    accepting(addr).await?;
    Ok((child, addr))
}

async fn start_rumqttd() -> anyhow::Result<SocketAddr> {
    use std::collections::HashMap;

    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

    let addr = free_addr()?;
    let server = ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 64 * 1024,
            max_inflight_count: IN_FLIGHT.into(),
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            if let Err(e) = rumqttd::Broker::new(config).start() {
                eprintln!("rumqttd: {e}");
            }
        })?;
    accepting(addr).await?;
    Ok(addr)
}
