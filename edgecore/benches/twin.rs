//! Twin updates from an MQTT publish to the SQLite commit, against the
//! broker alone, in one run on one edgecore (embedded broker, EventBus,
//! DeviceTwin; no cloud):
//!
//! - `twin`: a mapper (rumqttc) publishes `$hw/events/device/default/dev1/twin/update`
//!   with a new reported value each time and waits for
//!   `.../twin/update/result`, which DeviceTwin publishes only after the
//!   change is committed (WAL, `synchronous=FULL`). Latency: one at a time,
//!   p50/p99 of 2,000. Throughput: 20,000 updates with up to 200 in flight.
//! - `broker`: the same client publishing on a plain topic it is itself
//!   subscribed to, through the same embedded broker: the round trip
//!   without EventBus, DeviceTwin and SQLite. Same counts.
//!
//! The machine is noisy; read the ratios, measured in the same run.
//!
//! Run: `cargo bench -p edgecore --bench twin`.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const LATENCY_SAMPLES: usize = 2_000;
const THROUGHPUT: usize = 20_000;
const IN_FLIGHT: usize = 200;
const DEV1: &str = "$hw/events/device/default/dev1";

/// A client with its event loop, polled inline.
struct Mqtt {
    client: AsyncClient,
    events: EventLoop,
}

impl Mqtt {
    async fn connect(port: u16, id: &str) -> Mqtt {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_inflight(u16::try_from(IN_FLIGHT * 2).unwrap_or(u16::MAX));
        let (client, mut events) = AsyncClient::new(options, IN_FLIGHT * 4);
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        let mut m = Mqtt { client, events };
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = m.poll().await {
                return m;
            }
        }
    }

    async fn poll(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(30), self.events.poll())
            .await
            .expect("the broker answers")
            .expect("the connection holds")
    }

    async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queued");
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = self.poll().await {
                return;
            }
        }
    }

    /// Waits for the next publish on `topic` (at most 30 s); its payload,
    /// which must not be an error answer (DeviceTwin's carry a `code`).
    async fn received(&mut self, topic: &str) -> bytes::Bytes {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "nothing on {topic}");
            if let Event::Incoming(Packet::Publish(p)) = self.poll().await {
                if p.topic == topic {
                    assert!(
                        !p.payload.windows(7).any(|w| w == b"\"code\":"),
                        "an error answer on {topic}: {}",
                        String::from_utf8_lossy(&p.payload)
                    );
                    return p.payload;
                }
            }
        }
    }

    /// Publishes `payload` on `trip.publish` and waits for the answer.
    async fn round_trip(&mut self, trip: &Trip, payload: Vec<u8>) -> bytes::Bytes {
        self.client
            .publish(trip.publish, QoS::AtLeastOnce, false, payload)
            .await
            .expect("queued");
        self.received(trip.answer).await
    }
}

/// What one round trip publishes and waits for.
struct Trip {
    publish: &'static str,
    answer: &'static str,
}

const TWIN: Trip = Trip {
    publish: "$hw/events/device/default/dev1/twin/update",
    answer: "$hw/events/device/default/dev1/twin/update/result",
};

const BROKER: Trip = Trip {
    publish: "bench/echo",
    answer: "bench/echo",
};

fn payload(i: usize) -> Vec<u8> {
    json!({"event_id": format!("e{i}"), "twin": {"temp": {"actual": {"value": i.to_string()}}}})
        .to_string()
        .into_bytes()
}

/// p50 and p99 of one-at-a-time round trips.
async fn latency(m: &mut Mqtt, trip: &Trip, offset: usize) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES {
        let began = Instant::now();
        m.round_trip(trip, payload(offset + i)).await;
        samples.push(began.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

/// Round trips per second with up to `IN_FLIGHT` outstanding.
async fn throughput(m: &mut Mqtt, trip: &Trip, offset: usize) -> f64 {
    let began = Instant::now();
    let mut sent = 0;
    let mut answered = 0;
    while answered < THROUGHPUT {
        while sent < THROUGHPUT && sent - answered < IN_FLIGHT {
            m.client
                .publish(
                    trip.publish,
                    QoS::AtLeastOnce,
                    false,
                    payload(offset + sent),
                )
                .await
                .expect("queued");
            sent += 1;
        }
        m.received(trip.answer).await;
        answered += 1;
    }
    THROUGHPUT as f64 / began.elapsed().as_secs_f64()
}

fn edge_config(dir: &std::path::Path) -> edgecore::EdgeCoreConfig {
    let mut config = edgecore::EdgeCoreConfig::default();
    config.database.data_source = dir.join("edgecore.db").display().to_string();
    config.common_config.monitor_server.bind_address = "127.0.0.1:0".into();
    config.modules.node_status.hostname_override = "bench-node".into();
    config.modules.edge_hub.enable = false;
    config.modules.node_status.enable = false;
    config.modules.meta_manager.enable = false;
    config.modules.event_bus.mqtt_server_internal = "tcp://127.0.0.1:0".into();
    config
}

fn main() {
    // `cargo bench` passes `--bench`; this binary takes no options.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let shutdown = CancellationToken::new();
    let edge = edgecore::start(edge_config(dir.path()), shutdown.clone(), |_| {})
        .await
        .expect("edgecore starts");
    let port = edge.mqtt.expect("the embedded broker runs").port();

    let mut mapper = Mqtt::connect(port, "bench-mapper").await;
    mapper
        .subscribe(&format!("{DEV1}/twin/update/result"))
        .await;
    mapper.subscribe(BROKER.publish).await;
    // Bind dev1 to the node as the cloud would; DeviceTwin takes its
    // mailbox in order, so the membership is applied before any update.
    let membership = proto::Message::new(
        "devicecontroller",
        "twin",
        proto::Operation::Update,
        "membership",
    )
    .with_content(
        json!({"added_devices": [{"id": "default/dev1", "name": "dev1",
        "twin": {"temp": {"metadata": {"type": "int"}}}}]}),
    );
    edge.bus()
        .send("twin", membership)
        .await
        .expect("twin runs");
    let get = Trip {
        publish: "$hw/events/device/default/dev1/twin/get",
        answer: "$hw/events/device/default/dev1/twin/get/result",
    };
    mapper.subscribe(get.answer).await;
    // Until EventBus has subscribed, nobody hears the mapper: ask until
    // DeviceTwin answers.
    let mut answered = false;
    for _ in 0..30 {
        if tokio::time::timeout(
            Duration::from_secs(1),
            mapper.round_trip(&get, b"{}".to_vec()),
        )
        .await
        .is_ok()
        {
            answered = true;
            break;
        }
    }
    assert!(answered, "DeviceTwin answers within 30 tries");

    let (broker_p50, broker_p99) = latency(&mut mapper, &BROKER, 0).await;
    let (twin_p50, twin_p99) = latency(&mut mapper, &TWIN, 0).await;
    let broker_rate = throughput(&mut mapper, &BROKER, 0).await;
    let twin_rate = throughput(&mut mapper, &TWIN, LATENCY_SAMPLES).await;
    // No update was answered with an error (`received` checks each
    // answer), and the stored value is the last one sent.
    let twin: serde_json::Value =
        serde_json::from_slice(&mapper.round_trip(&get, b"{}".to_vec()).await)
            .expect("a JSON answer");
    assert_eq!(
        twin["twin"]["temp"]["actual"]["value"],
        (LATENCY_SAMPLES + THROUGHPUT - 1).to_string(),
        "the last update is stored: {twin}"
    );

    println!(
        "twin updates, MQTT publish -> SQLite commit -> update/result (same run, same broker):"
    );
    println!(
        "  latency one at a time ({LATENCY_SAMPLES}): twin p50 {twin_p50:?} p99 {twin_p99:?}; broker round trip p50 {broker_p50:?} p99 {broker_p99:?}"
    );
    println!(
        "  throughput ({THROUGHPUT}, {IN_FLIGHT} in flight): twin {twin_rate:.0} updates/s; broker round trip {broker_rate:.0} msg/s; ratio {:.2}x",
        twin_rate / broker_rate
    );
    shutdown.cancel();
    edge.wait().await.expect("edgecore stops");
}
