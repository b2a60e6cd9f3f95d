//! A real MQTT client for tests (rumqttc), standing in for a device or a
//! KubeEdge mapper: connect, subscribe and wait for the SUBACK, publish,
//! and take received messages by topic. Also `mosquitto_sub` as a second,
//! independent client (`mosquitto_pub` is in
//! `edgecore/tests/support/mosquitto.rs`, with the broker).

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS, SubscribeReasonCode,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a client waits for the broker's answers.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the client's event loop reports.
#[derive(Debug)]
enum Seen {
    Connected(ConnectReturnCode),
    SubAck(Vec<SubscribeReasonCode>),
    PubAck,
    Publish(String, Vec<u8>),
    Error(String),
}

/// A connected MQTT client.
pub struct Client {
    client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// Messages that arrived while waiting for an ack.
    pending: VecDeque<(String, Vec<u8>)>,
    task: JoinHandle<()>,
}

/// Connection settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The client id.
    pub client_id: String,
    /// Username and password.
    pub credentials: Option<(String, String)>,
    /// Start a fresh session (false: resume a persistent one).
    pub clean_session: bool,
}

impl Options {
    /// A clean-session client without credentials.
    pub fn new(client_id: &str) -> Options {
        Options {
            client_id: client_id.to_owned(),
            credentials: None,
            clean_session: true,
        }
    }
}

impl Client {
    /// Connects to `127.0.0.1:port`; the CONNACK's code is returned as the
    /// error when the broker refuses.
    pub async fn connect(port: u16, options: Options) -> Result<Client, String> {
        let mut mqtt = MqttOptions::new(options.client_id, "127.0.0.1", port);
        mqtt.set_keep_alive(Duration::from_secs(5));
        mqtt.set_clean_session(options.clean_session);
        if let Some((user, password)) = options.credentials {
            mqtt.set_credentials(user, password);
        }
        let (client, mut events) = AsyncClient::new(mqtt, 256);
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let report = match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => Seen::Connected(ack.code),
                    Ok(Event::Incoming(Packet::SubAck(ack))) => Seen::SubAck(ack.return_codes),
                    Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        Seen::Publish(p.topic.clone(), p.payload.to_vec())
                    }
                    Ok(_) => continue,
                    Err(e) => Seen::Error(e.to_string()),
                };
                let stop = matches!(report, Seen::Error(_));
                if tx.send(report).is_err() || stop {
                    return;
                }
            }
        });
        let mut c = Client {
            client,
            seen,
            pending: VecDeque::new(),
            task,
        };
        match c.next().await {
            Seen::Connected(ConnectReturnCode::Success) => Ok(c),
            Seen::Connected(code) => Err(format!("{code:?}")),
            other => Err(format!("{other:?}")),
        }
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(PATIENCE, self.seen.recv())
            .await
            .expect("the broker answers in time")
            .unwrap_or(Seen::Error("event loop ended".into()))
    }

    /// The next event that is not a message; messages are kept for
    /// [`Client::received_raw`].
    async fn next_other(&mut self) -> Seen {
        loop {
            match self.next().await {
                Seen::Publish(topic, payload) => self.pending.push_back((topic, payload)),
                other => return other,
            }
        }
    }

    /// Subscribes to `filter` at QoS 1; `Err` with the reason if refused.
    pub async fn subscribe(&mut self, filter: &str) -> Result<(), String> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match self.next_other().await {
                Seen::SubAck(codes) => {
                    return match codes.first() {
                        Some(SubscribeReasonCode::Success(_)) => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                }
                Seen::Error(e) => return Err(e),
                _ => {}
            }
        }
    }

    /// Publishes `payload` on `topic` at QoS 1 and waits for the broker's
    /// PUBACK (the broker has taken the message).
    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("the client takes the publish");
        loop {
            match self.next_other().await {
                Seen::PubAck => return,
                Seen::Error(e) => panic!("the client lost its broker publishing on {topic}: {e}"),
                _ => {}
            }
        }
    }

    /// The next message received on `topic` (others are skipped), as JSON.
    pub async fn received_on(&mut self, topic: &str) -> serde_json::Value {
        let payload = self.received_raw(topic).await;
        serde_json::from_slice(&payload).expect("a JSON payload")
    }

    /// The next message received on `topic` (others are skipped).
    pub async fn received_raw(&mut self, topic: &str) -> Vec<u8> {
        while let Some((t, payload)) = self.pending.pop_front() {
            if t == topic {
                return payload;
            }
        }
        loop {
            match self.next().await {
                Seen::Publish(t, payload) if t == topic => return payload,
                Seen::Error(e) => panic!("the client lost its broker waiting for {topic}: {e}"),
                _ => {}
            }
        }
    }

    /// Disconnects cleanly.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// `mosquitto_sub -C 1` on `topic`: resolves to the first payload, once its
/// subscription is acknowledged (read from `-d` output) — so the caller may
/// publish only after [`MosquittoSub::start`] returns.
pub struct MosquittoSub {
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    child: tokio::process::Child,
}

impl MosquittoSub {
    /// Subscribes on `127.0.0.1:port` at QoS 1 and waits for the SUBACK.
    pub async fn start(port: u16, topic: &str) -> MosquittoSub {
        // mosquitto_sub buffers a piped stdout; stdbuf makes it line by line.
        let mut cmd = tokio::process::Command::new("stdbuf");
        cmd.args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-C",
            "1",
            "-d",
        ])
        .args(["-t", topic])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .expect("run mosquitto_sub (scripts/install-deps.sh installs mosquitto-clients)");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut sub = MosquittoSub {
            lines: BufReader::new(stdout).lines(),
            child,
        };
        loop {
            let line = sub.line().await.expect("mosquitto_sub reports its SUBACK");
            if line.contains("SUBACK") {
                return sub;
            }
        }
    }

    async fn line(&mut self) -> Option<String> {
        tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .expect("mosquitto_sub prints in time")
            .expect("read mosquitto_sub's output")
    }

    /// The first payload received (debug lines skipped).
    pub async fn payload(mut self) -> String {
        while let Some(line) = self.line().await {
            if !line.starts_with("Client ") && !line.starts_with("Subscribed (") {
                let _ = self.child.wait().await;
                return line;
            }
        }
        panic!("mosquitto_sub ended without a message");
    }
}
