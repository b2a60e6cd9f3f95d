//! CloudHub end to end on loopback: a real beehive with CloudHub and
//! endpoints standing in for the controllers, real WebSocket and QUIC
//! listeners on `127.0.0.1:0`, and edges simulated with `link`'s clients
//! (or raw tokio-tungstenite for malformed frames), all with test
//! certificates from a throwaway CA.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use beehive::{Beehive, BeehiveBuilder, Bus};
use cloudcore::cloudhub::{AckHook, BoundAddrs, CloudHub, QueueConfig};
use cloudcore::config::CloudHub as CloudHubConfig;
use futures::{SinkExt, StreamExt};
use link::{Connection, Credentials, Dial, Incoming, Limits};
use prometheus_client::registry::Registry;
use proto::{Message, Operation};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

const PROJECT: &str = "e632aba927ea4ac2b575ec1603d56f10";
const PATIENCE: Duration = Duration::from_secs(10);

/// A throwaway CA issuing the server and node certificates.
struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "apiary test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&key)?;
        Ok(Pki {
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    fn credentials(&self, cn: &str, sans: &[&str]) -> Result<Credentials> {
        let key = KeyPair::generate()?;
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer)?;
        let creds = Credentials::from_pem(
            self.ca_pem.as_bytes(),
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
        )?;
        Ok(creds)
    }

    fn server_tls(&self) -> Result<Arc<rustls::ServerConfig>> {
        Ok(link::server_config(
            &self.credentials("cloudcore", &["127.0.0.1"])?,
        )?)
    }

    fn client_tls(&self, node: &str) -> Result<Arc<rustls::ClientConfig>> {
        let cn = format!("{}{node}", link::NODE_CN_PREFIX);
        Ok(link::client_config(&self.credentials(&cn, &[])?)?)
    }
}

/// Records every ack as `(node, resourceVersion)`.
#[derive(Default)]
struct Acks(Mutex<Vec<(String, String)>>);

impl AckHook for Acks {
    fn acked(&self, node: &str, msg: &Message) {
        if let Ok(mut acks) = self.0.lock() {
            acks.push((node.to_owned(), msg.header.resource_version.clone()));
        }
    }
}

impl Acks {
    fn all(&self) -> Vec<(String, String)> {
        self.0.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Ws,
    Quic,
}

/// A beehive with CloudHub, `edgecontroller`, `devicecontroller` and
/// `router` endpoints.
struct Cloud {
    pki: Pki,
    addrs: BoundAddrs,
    registry: Registry,
    bus: Bus,
    hive: Beehive,
    shutdown: CancellationToken,
    edgecontroller: mpsc::Receiver<Message>,
    devicecontroller: mpsc::Receiver<Message>,
    router: mpsc::Receiver<Message>,
    acks: Arc<Acks>,
}

impl Cloud {
    async fn start(tune: impl FnOnce(&mut CloudHubConfig), queue: QueueConfig) -> Result<Cloud> {
        let pki = Pki::new()?;
        let mut config = CloudHubConfig::default();
        config.websocket.address = "127.0.0.1".into();
        config.websocket.port = 0;
        config.quic.enable = true;
        config.quic.address = "127.0.0.1".into();
        config.quic.port = 0;
        tune(&mut config);
        let mut registry = Registry::default();
        let acks = Arc::new(Acks::default());
        let mut hub = CloudHub::new(&config, pki.server_tls()?, &mut registry, acks.clone())
            .with_queue_config(queue);
        let addrs = hub.bind().await?;
        let mut builder = BeehiveBuilder::new();
        builder.module(hub);
        let edgecontroller = builder.endpoint("edgecontroller", "edgecontroller");
        let devicecontroller = builder.endpoint("devicecontroller", "devicecontroller");
        let router = builder.endpoint("router", "router");
        let mut hive = builder.build()?;
        let shutdown = CancellationToken::new();
        hive.start(&shutdown);
        Ok(Cloud {
            pki,
            addrs,
            registry,
            bus: hive.bus(),
            hive,
            shutdown,
            edgecontroller,
            devicecontroller,
            router,
            acks,
        })
    }

    fn dial(&self, node: &str, addr: Option<std::net::SocketAddr>) -> Result<Dial> {
        Ok(Dial {
            server: addr.context("listener not enabled")?.to_string(),
            server_name: "127.0.0.1".into(),
            project_id: PROJECT.into(),
            node_id: node.into(),
            tls: self.pki.client_tls(node)?,
            limits: Limits::default(),
        })
    }

    async fn connect(&self, node: &str, transport: Transport) -> Result<Connection> {
        Ok(match transport {
            Transport::Ws => link::ws_connect(&self.dial(node, self.addrs.ws)?).await?,
            Transport::Quic => {
                let dial = self.dial(node, self.addrs.quic)?;
                link::quic_connect(&dial, Duration::from_secs(1), Duration::from_secs(10)).await?
            }
        })
    }

    /// What a controller does: send to cloudhub.
    async fn down(&self, msg: Message) -> Result<()> {
        Ok(self.bus.send("cloudhub", msg).await?)
    }

    /// The value of one series (`name{labels}`), 0 when absent.
    fn metric(&self, series: &str) -> f64 {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return f64::NAN;
        }
        text.lines()
            .filter_map(|line| line.split_once(' '))
            .find(|(name, _)| *name == series)
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn wait_metric(&self, series: &str, want: f64) {
        eventually(&format!("{series} == {want}"), || {
            let got = self.metric(series);
            async move { (got == want).then_some(()) }
        })
        .await;
    }

    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.hive.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    }
}

/// Polls `check` until it yields `Some`; panics after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next message the edge receives (control frames skipped).
async fn recv(edge: &mut Connection) -> Result<Message> {
    let next = async {
        loop {
            match edge.receiver.recv().await? {
                Some(Incoming::Message(msg)) => return Ok(msg),
                Some(Incoming::Alive) => continue,
                None => bail!("connection closed"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, next)
        .await
        .context("no message in time")?
}

/// Waits until the cloud closes the edge's connection.
async fn closed(edge: &mut Connection) -> Result<()> {
    let wait = async {
        loop {
            match edge.receiver.recv().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .context("connection still open")
}

/// The next message a controller endpoint gets.
async fn controller_gets(rx: &mut mpsc::Receiver<Message>) -> Result<Message> {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .context("no message for the controller")?
        .context("endpoint closed")
}

/// A configmap insert as edgecontroller sends it down.
fn configmap(node: &str, name: &str, rv: &str) -> Message {
    Message::new(
        "edgecontroller",
        "resource",
        Operation::Insert,
        format!("node/{node}/default/configmap/{name}"),
    )
    .with_resource_version(rv)
    .with_content(json!({
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "resourceVersion": rv},
        "data": {"greeting": "hi"},
    }))
}

async fn delivery_and_ack(transport: Transport) -> Result<()> {
    let cloud = Cloud::start(|_| {}, QueueConfig::default()).await?;
    let mut edge = cloud.connect("edge-1", transport).await?;
    assert!(edge.peer.acks_upstream, "cloudhub echoes the ack extension");
    cloud.wait_metric("cloudhub_connected_nodes", 1.0).await;

    cloud.down(configmap("edge-1", "cm2", "476")).await?;
    let got = recv(&mut edge).await?;
    assert_eq!(got.resource(), "default/configmap/cm2");
    assert_eq!(got.header.resource_version, "476");
    assert_eq!(got.route.source, "edgecontroller");
    edge.sender.send(&got.reply("OK")).await?;

    cloud.wait_metric("cloudhub_acks_total", 1.0).await;
    assert_eq!(cloud.acks.all(), [("edge-1".to_owned(), "476".to_owned())]);
    cloud.wait_metric("cloudhub_queue_depth", 0.0).await;
    cloud
        .wait_metric("cloudhub_messages_total{direction=\"down\"}", 1.0)
        .await;
    // The ack is consumed by cloudhub, not forwarded.
    assert!(cloud.router.is_empty() && cloud.edgecontroller.is_empty());

    cloud.stop().await?;
    closed(&mut edge).await
}

#[tokio::test]
async fn downstream_delivery_and_ack_over_websocket() -> Result<()> {
    delivery_and_ack(Transport::Ws).await
}

#[tokio::test]
async fn downstream_delivery_and_ack_over_quic() -> Result<()> {
    delivery_and_ack(Transport::Quic).await
}

#[tokio::test]
async fn resends_until_the_edge_acks() -> Result<()> {
    let queue = QueueConfig {
        resend_interval: Duration::from_millis(200),
        ..QueueConfig::default()
    };
    let cloud = Cloud::start(|_| {}, queue).await?;
    let mut edge = cloud.connect("edge-1", Transport::Ws).await?;
    cloud.down(configmap("edge-1", "cm", "5")).await?;
    let first = recv(&mut edge).await?;
    let again = recv(&mut edge).await?;
    assert_eq!(again.id(), first.id(), "the same message, sent again");
    assert!(cloud.metric("cloudhub_resends_total") >= 1.0);
    edge.sender.send(&again.reply("OK")).await?;
    cloud.wait_metric("cloudhub_acks_total", 1.0).await;
    cloud.wait_metric("cloudhub_queue_depth", 0.0).await;
    cloud.stop().await
}

#[tokio::test]
async fn queue_survives_a_reconnect() -> Result<()> {
    let cloud = Cloud::start(|_| {}, QueueConfig::default()).await?;
    let mut edge = cloud.connect("edge-1", Transport::Ws).await?;
    cloud.down(configmap("edge-1", "one", "1")).await?;
    let unacked = recv(&mut edge).await?;
    edge.sender.close().await;
    drop(edge);
    cloud.wait_metric("cloudhub_connected_nodes", 0.0).await;

    // Sent while the node is away: it waits.
    cloud.down(configmap("edge-1", "two", "2")).await?;
    cloud.wait_metric("cloudhub_queue_depth", 2.0).await;

    let mut edge = cloud.connect("edge-1", Transport::Ws).await?;
    let first = recv(&mut edge).await?;
    let second = recv(&mut edge).await?;
    assert_eq!(first.id(), unacked.id(), "the unacked message comes first");
    assert_eq!(second.resource(), "default/configmap/two");
    for msg in [&first, &second] {
        edge.sender.send(&msg.reply("OK")).await?;
    }
    cloud.wait_metric("cloudhub_acks_total", 2.0).await;
    assert_eq!(cloud.metric("cloudhub_reconnects_total"), 1.0);
    cloud.stop().await
}

#[tokio::test]
async fn a_new_connection_replaces_the_old() -> Result<()> {
    let cloud = Cloud::start(|_| {}, QueueConfig::default()).await?;
    let mut old = cloud.connect("edge-1", Transport::Ws).await?;
    cloud.wait_metric("cloudhub_connected_nodes", 1.0).await;
    let mut new = cloud.connect("edge-1", Transport::Quic).await?;
    closed(&mut old).await?;
    cloud.wait_metric("cloudhub_reconnects_total", 1.0).await;
    assert_eq!(cloud.metric("cloudhub_connected_nodes"), 1.0);

    cloud.down(configmap("edge-1", "cm", "3")).await?;
    let got = recv(&mut new).await?;
    assert_eq!(got.resource(), "default/configmap/cm");
    cloud.stop().await
}

#[tokio::test]
async fn upstream_is_routed_by_source_prefixed_and_acked() -> Result<()> {
    let mut cloud = Cloud::start(|_| {}, QueueConfig::default()).await?;
    let mut edge = cloud.connect("edge-1", Transport::Ws).await?;

    let status = Message::new(
        "edged",
        "resource",
        Operation::Update,
        "default/podstatus/p",
    )
    .with_content(json!({"phase": "Running"}));
    edge.sender.send(&status).await?;
    let got = controller_gets(&mut cloud.edgecontroller).await?;
    assert_eq!(got.resource(), "node/edge-1/default/podstatus/p");
    assert_eq!(got.id(), status.id());
    let ack = recv(&mut edge).await?;
    assert_eq!(ack.parent_id(), Some(status.id()));
    assert_eq!(ack.route.operation, Operation::Response);
    assert_eq!(ack.route.source, "cloudhub");
    assert_eq!(ack.route.group, "resource");
    assert_eq!(ack.resource(), "default/podstatus/p");
    assert_eq!(ack.content, json!("OK"));

    let twin = Message::new(
        "twin",
        "twin",
        Operation::Update,
        "device/default/d1/twin/edge_updated",
    );
    edge.sender.send(&twin).await?;
    let got = controller_gets(&mut cloud.devicecontroller).await?;
    assert_eq!(
        got.resource(),
        "node/edge-1/device/default/d1/twin/edge_updated"
    );
    assert_eq!(recv(&mut edge).await?.parent_id(), Some(twin.id()));

    let upload = Message::new("eventbus", "user", Operation::Upload, "sensors/temp");
    edge.sender.send(&upload).await?;
    let got = controller_gets(&mut cloud.router).await?;
    assert_eq!(got.resource(), "node/edge-1/sensors/temp");
    assert_eq!(recv(&mut edge).await?.parent_id(), Some(upload.id()));

    // Heartbeats and the empty shutdown message are neither routed nor acked;
    // a duplicate is acked again but not handed over twice.
    edge.sender.send(&proto::modules::keepalive()).await?;
    edge.sender.send(&Message::default()).await?;
    edge.sender.send(&status).await?;
    assert_eq!(recv(&mut edge).await?.parent_id(), Some(status.id()));
    cloud
        .wait_metric("cloudhub_dropped_messages_total{reason=\"duplicate\"}", 1.0)
        .await;

    // No dynamiccontroller on this bus: counted, still acked.
    let query = Message::new("metaserver", "resource", Operation::Query, "default/pod");
    edge.sender.send(&query).await?;
    assert_eq!(recv(&mut edge).await?.parent_id(), Some(query.id()));
    assert_eq!(
        cloud.metric("cloudhub_dropped_messages_total{reason=\"no_module\"}"),
        1.0
    );
    // Replies to nothing cloudhub sent: a bare "OK" is dropped, an answer
    // is handed to the controller. Neither is acked.
    let mut orphan =
        Message::new("edged", "resource", Operation::Response, "default/pod/p").with_content("OK");
    orphan.header.parent_msg_id = "never-sent".into();
    edge.sender.send(&orphan).await?;
    let mut answer = Message::new("edged", "resource", Operation::Response, "default/pod/p")
        .with_content(json!({"Object": {}, "Err": null}));
    answer.header.parent_msg_id = "never-sent".into();
    edge.sender.send(&answer).await?;
    let got = controller_gets(&mut cloud.edgecontroller).await?;
    assert_eq!(
        (got.id(), got.resource()),
        (answer.id(), "node/edge-1/default/pod/p")
    );
    assert_eq!(
        cloud.metric("cloudhub_dropped_messages_total{reason=\"unknown_ack\"}"),
        1.0
    );
    assert!(
        cloud.edgecontroller.is_empty(),
        "nothing else reached edgecontroller"
    );
    assert_eq!(
        cloud.metric("cloudhub_messages_total{direction=\"up\"}"),
        9.0
    );
    cloud.stop().await
}

/// A WebSocket client connection made by hand.
type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// An edge connection made by hand, to send what `link` never would.
async fn raw_ws(cloud: &Cloud, node: &str) -> Result<RawWs> {
    let addr = cloud.addrs.ws.context("no websocket")?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let tls = tokio_rustls::TlsConnector::from(cloud.pki.client_tls(node)?)
        .connect(name, tcp)
        .await?;
    let mut request = format!("wss://{addr}/{PROJECT}/{node}/events").into_client_request()?;
    let headers = request.headers_mut();
    headers.insert("node_id", node.parse()?);
    headers.insert("project_id", PROJECT.parse()?);
    headers.insert("ConnectionUse", "msg".parse()?);
    let (ws, _) = tokio_tungstenite::client_async(request, tls).await?;
    Ok(ws)
}

#[tokio::test]
async fn a_malformed_frame_closes_only_that_connection() -> Result<()> {
    let cloud = Cloud::start(|_| {}, QueueConfig::default()).await?;
    let mut good = cloud.connect("edge-1", Transport::Ws).await?;
    let mut bad = raw_ws(&cloud, "edge-2").await?;
    cloud.wait_metric("cloudhub_connected_nodes", 2.0).await;

    if bad.send(WsMessage::Text("{not json".into())).await.is_err() {
        bail!("could not send the garbage frame");
    }
    let ended = tokio::time::timeout(PATIENCE, async {
        while let Some(frame) = bad.next().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the bad connection was not closed");
    cloud.wait_metric("cloudhub_connected_nodes", 1.0).await;

    cloud.down(configmap("edge-1", "still", "9")).await?;
    let got = recv(&mut good).await?;
    good.sender.send(&got.reply("OK")).await?;
    cloud.wait_metric("cloudhub_acks_total", 1.0).await;
    cloud.stop().await
}

#[tokio::test]
async fn keepalive_expiry_closes_a_silent_session() -> Result<()> {
    let cloud = Cloud::start(|c| c.keepalive_interval = 1, QueueConfig::default()).await?;
    let mut silent = cloud.connect("silent", Transport::Ws).await?;
    let mut chatty = cloud.connect("chatty", Transport::Ws).await?;
    cloud.wait_metric("cloudhub_connected_nodes", 2.0).await;

    // The chatty edge heartbeats (as edgehub does) until the silent one is cut.
    let mut heartbeat = tokio::time::interval(Duration::from_millis(250));
    let cut = tokio::time::timeout(PATIENCE, async {
        loop {
            tokio::select! {
                _ = heartbeat.tick() => {
                    if chatty.sender.send(&proto::modules::keepalive()).await.is_err() {
                        return false;
                    }
                }
                next = silent.receiver.recv() => match next {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return true,
                },
            }
        }
    })
    .await;
    assert_eq!(cut.ok(), Some(true), "the silent session was closed");
    cloud.wait_metric("cloudhub_connected_nodes", 1.0).await;

    cloud.down(configmap("chatty", "cm", "1")).await?;
    assert_eq!(recv(&mut chatty).await?.resource(), "default/configmap/cm");
    cloud.stop().await
}

#[tokio::test]
async fn node_limit_refuses_extra_sessions() -> Result<()> {
    let cloud = Cloud::start(|c| c.node_limit = 1, QueueConfig::default()).await?;
    let _first = cloud.connect("edge-1", Transport::Ws).await?;
    assert!(cloud.connect("edge-2", Transport::Ws).await.is_err());
    cloud
        .wait_metric(
            "cloudhub_refused_connections_total{reason=\"node_limit\"}",
            1.0,
        )
        .await;
    cloud.stop().await
}

#[tokio::test]
async fn deleting_the_node_ends_its_session() -> Result<()> {
    let cloud = Cloud::start(|_| {}, QueueConfig::default()).await?;
    let mut edge = cloud.connect("edge-1", Transport::Ws).await?;
    cloud.wait_metric("cloudhub_connected_nodes", 1.0).await;
    let delete = Message::new(
        "edgecontroller",
        "resource",
        Operation::Delete,
        "node/edge-1/null/node/edge-1",
    )
    .with_content(json!({"metadata": {"name": "edge-1", "uid": "node-uid"}}));
    cloud.down(delete).await?;
    let got = recv(&mut edge).await?;
    assert_eq!(got.route.operation, Operation::Delete);
    assert_eq!(got.resource(), "null/node/edge-1");
    closed(&mut edge).await?;
    cloud.wait_metric("cloudhub_connected_nodes", 0.0).await;
    cloud.stop().await
}

#[tokio::test]
async fn a_message_over_the_frame_cap_is_dropped_not_the_session() -> Result<()> {
    let cloud = Cloud::start(|c| c.max_frame_bytes = 2048, QueueConfig::default()).await?;
    let mut edge = cloud.connect("edge-1", Transport::Ws).await?;
    let mut big = configmap("edge-1", "big", "1");
    big.content["data"]["blob"] = json!("x".repeat(4096));
    cloud.down(big).await?;
    cloud.down(configmap("edge-1", "small", "2")).await?;
    let got = recv(&mut edge).await?;
    assert_eq!(got.resource(), "default/configmap/small");
    edge.sender.send(&got.reply("OK")).await?;
    cloud.wait_metric("cloudhub_acks_total", 1.0).await;
    cloud
        .wait_metric("cloudhub_dropped_messages_total{reason=\"too_large\"}", 1.0)
        .await;
    cloud.wait_metric("cloudhub_queue_depth", 0.0).await;
    assert_eq!(cloud.metric("cloudhub_connected_nodes"), 1.0);
    cloud.stop().await
}

#[tokio::test]
async fn upstream_over_the_rate_limit_waits_and_is_not_dropped() -> Result<()> {
    let tune = |c: &mut CloudHubConfig| {
        c.node_message_qps = 10.0;
        c.node_message_burst = 1;
    };
    let mut cloud = Cloud::start(tune, QueueConfig::default()).await?;
    let mut edge = cloud.connect("edge-1", Transport::Ws).await?;
    let started = tokio::time::Instant::now();
    let sent: Vec<Message> = (0..6)
        .map(|i| {
            Message::new(
                "edged",
                "resource",
                Operation::Update,
                format!("default/podstatus/p{i}"),
            )
        })
        .collect();
    for msg in &sent {
        edge.sender.send(msg).await?;
    }
    for msg in &sent {
        assert_eq!(
            controller_gets(&mut cloud.edgecontroller).await?.id(),
            msg.id()
        );
        assert_eq!(recv(&mut edge).await?.parent_id(), Some(msg.id()));
    }
    // A burst of one at 10/s: five waits of 100 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        cloud.metric("cloudhub_dropped_messages_total{reason=\"duplicate\"}"),
        0.0
    );
    cloud.stop().await
}
