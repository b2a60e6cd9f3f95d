//! Messages through the embedded broker: `$hw` topics at QoS 1 both ways,
//! retained messages, last wills, `$SYS`, MQTT over WebSocket, Debian's
//! mosquitto clients, and a prompt stop.

#![allow(clippy::unwrap_used, reason = "test")]

use crate::support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use broker::Broker;
use futures::{SinkExt, StreamExt};
use rumqttc::{LastWill, QoS};
use support::{options, persistent, settings, start, superuser, text, Client, PATIENCE};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const TWIN_UPDATE: &str = "$hw/events/device/default/dev1/twin/update";
const ALL_TWINS: &str = "$hw/events/device/+/+/twin/+";

#[tokio::test]
async fn hw_topics_carry_qos1_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(settings(dir.path(), Broker::default())).await;
    let mut edge = Client::connected(superuser(&broker, "edgecore")).await;
    edge.subscribed(ALL_TWINS, QoS::AtLeastOnce).await;
    let mut device = Client::connected(options(broker.tcp_addr(), "dev1")).await;
    device
        .publish(TWIN_UPDATE, QoS::AtLeastOnce, false, "{\"twin\":{}}")
        .await;
    let got = edge.next_publish().await;
    assert_eq!(got.topic, TWIN_UPDATE);
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert_eq!(text(&got), "{\"twin\":{}}");

    // And back: edgecore answers on the device's own topic.
    let result = "$hw/events/device/default/dev1/twin/update/result";
    device.subscribed(result, QoS::AtLeastOnce).await;
    edge.publish(result, QoS::AtLeastOnce, false, "ok").await;
    let got = device.next_publish().await;
    assert_eq!((got.topic.as_str(), got.qos), (result, QoS::AtLeastOnce));
    broker.stop();
}

#[tokio::test]
async fn retained_message_reaches_a_late_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(settings(dir.path(), Broker::default())).await;
    let state = "$hw/events/device/default/dev1/state";
    let mut device = Client::connected(options(broker.tcp_addr(), "dev1")).await;
    device
        .publish(state, QoS::AtLeastOnce, true, "online")
        .await;
    // rmqtt-retainer stores in batches, so the message is there for new
    // subscribers a moment after the PUBACK: try until one gets it.
    let deadline = Instant::now() + PATIENCE;
    let mut attempt = 0;
    let got = loop {
        attempt += 1;
        let id = format!("late-{attempt}");
        let mut late = Client::connected(options(broker.tcp_addr(), &id)).await;
        late.subscribed("$hw/events/device/+/+/state", QoS::AtLeastOnce)
            .await;
        if let Some(got) = late.publish_within(Duration::from_millis(200)).await {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "no retained message in {PATIENCE:?}"
        );
        late.disconnect().await;
    };
    assert!(got.retain, "delivered as retained");
    assert_eq!((got.topic.as_str(), text(&got).as_str()), (state, "online"));
    broker.stop();
}

#[tokio::test]
async fn last_will_is_published_when_a_client_dies() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(settings(dir.path(), Broker::default())).await;
    let will_topic = "$hw/events/device/default/dev1/state";
    let mut watcher = Client::connected(options(broker.tcp_addr(), "watcher")).await;
    watcher.subscribed(will_topic, QoS::AtLeastOnce).await;
    let mut dying = options(broker.tcp_addr(), "dev1");
    dying.set_last_will(LastWill::new(
        will_topic,
        "offline",
        QoS::AtLeastOnce,
        false,
    ));
    let dying = Client::connected(dying).await;
    dying.kill();
    let got = watcher.next_publish().await;
    assert_eq!(
        (got.topic.as_str(), text(&got).as_str()),
        (will_topic, "offline")
    );
    broker.stop();
}

#[tokio::test]
async fn sys_topics_report_connections() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(settings(dir.path(), Broker::default())).await;
    let mut watcher = Client::connected(superuser(&broker, "watcher")).await;
    watcher
        .subscribed("$SYS/brokers/+/clients/+/connected", QoS::AtMostOnce)
        .await;
    let _probe = Client::connected(options(broker.tcp_addr(), "sys-probe")).await;
    let got = watcher
        .expect("$SYS connected event of sys-probe", |p| match p {
            rumqttc::Packet::Publish(p) if p.topic.contains("/clients/sys-probe/") => Some(p),
            _ => None,
        })
        .await;
    assert!(text(&got).contains("sys-probe"), "{}", text(&got));
    broker.stop();
}

/// MQTT 3.1.1 packets, written out (the client is a bare WebSocket).
mod raw {
    pub fn connect(client_id: &str) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
        string(&mut body, client_id);
        packet(0x10, body)
    }

    pub fn subscribe(packet_id: u16, filter: &str) -> Vec<u8> {
        let mut body = packet_id.to_be_bytes().to_vec();
        string(&mut body, filter);
        body.push(0);
        packet(0x82, body)
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u16).to_be_bytes());
        out.extend(s.as_bytes());
    }

    fn packet(first: u8, body: Vec<u8>) -> Vec<u8> {
        assert!(body.len() < 128, "one-byte remaining length");
        let mut out = vec![first, body.len() as u8];
        out.extend(body);
        out
    }

    /// Splits off the first whole packet of `buf`: (first byte, body).
    pub fn take(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
        let (mut len, mut shift, mut at) = (0_usize, 0, 1);
        loop {
            let byte = *buf.get(at)?;
            len |= usize::from(byte & 0x7f) << shift;
            at += 1;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        if buf.len() < at + len {
            return None;
        }
        let first = buf[0];
        let body = buf[at..at + len].to_vec();
        buf.drain(..at + len);
        Some((first, body))
    }
}

type WebSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// The next MQTT packet from the WebSocket (frames may split or join them).
async fn next_packet(ws: &mut WebSocket, buf: &mut Vec<u8>) -> (u8, Vec<u8>) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(packet) = raw::take(buf) {
                return packet;
            }
            match ws.next().await {
                Some(Ok(Message::Binary(data))) => buf.extend_from_slice(&data),
                Some(Ok(_)) => {}
                other => panic!("websocket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("an MQTT packet over the WebSocket in time")
}

#[tokio::test]
async fn websocket_listener_speaks_mqtt() {
    let dir = tempfile::tempdir().unwrap();
    let config = Broker {
        websocket: "127.0.0.1:0".into(),
        ..Broker::default()
    };
    let broker = start(settings(dir.path(), config)).await;
    let ws_addr = broker.ws_addr().unwrap();

    let mut request = format!("ws://{ws_addr}/mqtt")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(ws_addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    let mut buf = Vec::new();
    ws.send(Message::Binary(raw::connect("ws-client").into()))
        .await
        .unwrap();
    assert_eq!(
        next_packet(&mut ws, &mut buf).await,
        (0x20, vec![0, 0]),
        "CONNACK accepted"
    );
    ws.send(Message::Binary(raw::subscribe(1, "$hw/events/ws").into()))
        .await
        .unwrap();
    assert_eq!(
        next_packet(&mut ws, &mut buf).await,
        (0x90, vec![0, 1, 0]),
        "SUBACK QoS 0"
    );

    let mut tcp_client = Client::connected(options(broker.tcp_addr(), "tcp-client")).await;
    tcp_client
        .publish("$hw/events/ws", QoS::AtLeastOnce, false, "over ws")
        .await;
    let (first, body) = next_packet(&mut ws, &mut buf).await;
    assert_eq!(first & 0xf0, 0x30, "a PUBLISH");
    assert!(body.ends_with(b"over ws"), "{body:?}");
    broker.stop();
}

/// Where Debian's mosquitto client `name` is, if installed.
fn mosquitto_tool(name: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new("/usr/bin").join(name);
    if path.exists() {
        Some(path)
    } else {
        println!("skipped: {} is not installed", path.display());
        None
    }
}

#[tokio::test]
async fn mosquitto_clients_use_hw_topics() {
    let (Some(sub), Some(publish)) = (
        mosquitto_tool("mosquitto_sub"),
        mosquitto_tool("mosquitto_pub"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = start(settings(dir.path(), Broker::default())).await;
    let port = broker.tcp_addr().port().to_string();
    let (user, password) = broker.internal_credentials();

    // mosquitto_sub buffers its output in a pipe: learn that it has
    // subscribed from the broker's $SYS event instead.
    let mut watcher = Client::connected(superuser(&broker, "watcher")).await;
    watcher
        .subscribed(
            "$SYS/brokers/+/session/mosq-sub/subscribed",
            QoS::AtMostOnce,
        )
        .await;
    let subscriber = tokio::process::Command::new(sub)
        .args(["-h", "127.0.0.1", "-p", &port, "-u", user, "-P", password])
        .args(["-i", "mosq-sub", "-q", "1", "-t", ALL_TWINS, "-C", "1"])
        .args(["-F", "%t %p"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    watcher.next_publish().await;

    let status = tokio::process::Command::new(publish)
        .args(["-h", "127.0.0.1", "-p", &port, "-i", "dev1", "-q", "1"])
        .args(["-t", TWIN_UPDATE, "-m", "from mosquitto_pub"])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "mosquitto_pub: {status}");
    let output = tokio::time::timeout(PATIENCE, subscriber.wait_with_output())
        .await
        .expect("mosquitto_sub exits after its message")
        .unwrap();
    assert!(output.status.success(), "mosquitto_sub: {}", output.status);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim_end(),
        format!("{TWIN_UPDATE} from mosquitto_pub")
    );
    broker.stop();
}

#[tokio::test]
async fn stop_returns_promptly_and_closes_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let config = Broker {
        websocket: "127.0.0.1:0".into(),
        ..Broker::default()
    };
    let broker = start(settings(dir.path(), config)).await;
    let addr = broker.tcp_addr();
    let mut keeper = Client::connected(persistent(addr, "keeper")).await;
    keeper.subscribed("$hw/events/#", QoS::AtLeastOnce).await;
    let _plain = Client::connected(options(addr, "plain")).await;

    let began = Instant::now();
    broker.stop();
    let took = began.elapsed();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens on {addr} after stop"
    );
}

#[tokio::test]
async fn start_names_the_address_it_cannot_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path(), Broker::default());
    settings.listen = addr;
    let error = broker::RunningBroker::start(settings).await.unwrap_err();
    assert!(
        matches!(error, broker::BrokerError::Bind { addr: a, .. } if a == addr),
        "{error:?}"
    );
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}
