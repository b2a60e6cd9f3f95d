//! Test harness: a broker on `127.0.0.1:0` over a temporary data directory,
//! rumqttc clients driven by a task of their own, and waits with deadlines.

#![allow(dead_code, reason = "each test binary uses part of the harness")]
#![allow(clippy::unwrap_used, reason = "test")]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use broker::{Broker, BrokerSettings, RunningBroker};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Outgoing, Packet, Publish,
    QoS, SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long any one expected event may take.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Settings for a broker on a free loopback port over `dir`.
pub fn settings(dir: &Path, config: Broker) -> BrokerSettings {
    BrokerSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        config,
        data_dir: dir.to_path_buf(),
        bus_username: String::new(),
        bus_password: String::new(),
        session_queue: 100,
    }
}

/// Starts a broker, failing the test if it cannot.
pub async fn start(settings: BrokerSettings) -> RunningBroker {
    RunningBroker::start(settings).await.unwrap()
}

/// Options for client `id` of the broker at `addr`.
pub fn options(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options
}

/// Options for client `id` with a persistent session (clean session off).
pub fn persistent(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut options = options(addr, id);
    options.set_clean_session(false);
    options
}

/// The internal superuser's options.
pub fn superuser(broker: &RunningBroker, id: &str) -> MqttOptions {
    let mut options = options(broker.tcp_addr(), id);
    let (user, password) = broker.internal_credentials();
    options.set_credentials(user, password);
    options
}

/// A connected rumqttc client; its event loop runs on a task that forwards
/// incoming packets (bounded) and ends at the first connection error.
pub struct Client {
    /// The request handle.
    pub client: AsyncClient,
    /// The CONNACK's session-present flag.
    pub session_present: bool,
    incoming: mpsc::Receiver<Packet>,
    driver: JoinHandle<()>,
}

impl Client {
    /// Connects, returning the refusal if the broker refuses.
    pub async fn connect(options: MqttOptions) -> Result<Client, ConnectReturnCode> {
        let (client, mut events) = AsyncClient::new(options, 64);
        let session_present = tokio::time::timeout(PATIENCE, async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => return Ok(ack.session_present),
                    Ok(_) => {}
                    Err(ConnectionError::ConnectionRefused(code)) => return Err(code),
                    Err(e) => panic!("connecting: {e}"),
                }
            }
        })
        .await
        .expect("a CONNACK in time")?;
        let (tx, incoming) = mpsc::channel(1024);
        let driver = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        if tx.send(packet).await.is_err() {
                            return;
                        }
                    }
                    // rmqtt leaves closing the connection after DISCONNECT
                    // to the client (MQTT says it should close it).
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                    Ok(Event::Outgoing(_)) => {}
                }
            }
        });
        Ok(Client {
            client,
            session_present,
            incoming,
            driver,
        })
    }

    /// Connects, failing the test if refused.
    pub async fn connected(options: MqttOptions) -> Client {
        match Client::connect(options).await {
            Ok(client) => client,
            Err(code) => panic!("connection refused: {code:?}"),
        }
    }

    /// Waits for the first incoming packet `pick` accepts, skipping others.
    pub async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(Packet) -> Option<T>) -> T {
        let wait = async {
            while let Some(packet) = self.incoming.recv().await {
                if let Some(found) = pick(packet) {
                    return Some(found);
                }
            }
            None
        };
        match tokio::time::timeout(PATIENCE, wait).await {
            Ok(Some(found)) => found,
            Ok(None) => panic!("connection closed while waiting for {what}"),
            Err(_) => panic!("no {what} within {PATIENCE:?}"),
        }
    }

    /// Subscribes and returns the SUBACK's verdict.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubscribeReasonCode {
        self.client.subscribe(filter, qos).await.unwrap();
        self.expect("a SUBACK", |p| match p {
            Packet::SubAck(ack) => ack.return_codes.first().copied(),
            _ => None,
        })
        .await
    }

    /// Subscribes, failing the test unless the broker grants it.
    pub async fn subscribed(&mut self, filter: &str, qos: QoS) {
        let code = self.subscribe(filter, qos).await;
        assert!(
            matches!(code, SubscribeReasonCode::Success(_)),
            "subscribing to {filter}: {code:?}"
        );
    }

    /// Publishes; at QoS 1 waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: &str) {
        self.client
            .publish(topic, qos, retain, payload.as_bytes().to_vec())
            .await
            .unwrap();
        if qos == QoS::AtLeastOnce {
            self.expect("a PUBACK", |p| matches!(p, Packet::PubAck(_)).then_some(()))
                .await;
        }
    }

    /// The next PUBLISH the broker delivers.
    pub async fn next_publish(&mut self) -> Publish {
        self.expect("a PUBLISH", |p| match p {
            Packet::Publish(publish) => Some(publish),
            _ => None,
        })
        .await
    }

    /// The next PUBLISH if one comes within `within`.
    pub async fn publish_within(&mut self, within: Duration) -> Option<Publish> {
        let wait = async {
            while let Some(packet) = self.incoming.recv().await {
                if let Packet::Publish(publish) = packet {
                    return Some(publish);
                }
            }
            None
        };
        tokio::time::timeout(within, wait).await.ok().flatten()
    }

    /// Waits until the broker closes the connection.
    pub async fn closed(mut self) {
        let wait = async { while self.incoming.recv().await.is_some() {} };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .expect("the broker closes the connection in time");
    }

    /// Disconnects cleanly and waits for the event loop to end.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(PATIENCE, self.driver).await;
    }

    /// Drops the connection without DISCONNECT (as a dying client would).
    pub fn kill(self) {
        self.driver.abort();
    }
}

/// Payload as text.
pub fn text(publish: &Publish) -> String {
    String::from_utf8_lossy(&publish.payload).into_owned()
}
