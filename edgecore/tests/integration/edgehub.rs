//! EdgeHub against a real cloud end built from `link` (WebSocket and QUIC,
//! mTLS with test certificates from rcgen) on 127.0.0.1: downstream
//! dispatch and the MetaManager ack going up, the outbox across cloud
//! outages and edge restarts, acks deleting rows and resends after a
//! reconnect, the read deadline against a silent cloud, the connect and
//! disconnect broadcast, and requests online and offline.
//!
//! No fixed sleeps: every wait is for an event or a state, with a deadline.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beehive::{Beehive, BeehiveBuilder, Bus};
use edgecore::config::EdgeHub as EdgeHubConfig;
use edgecore::edgehub::{
    ClientTls, EdgeHub, EdgeHubSettings, EdgeHubStatus, Outbox, OutboxOptions,
};
use link::{Connection, Incoming, Limits};
use proto::{Message, Operation};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const NODE: &str = "edge-1";
const PATIENCE: Duration = Duration::from_secs(15);
const HEARTBEAT: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------- certificates

/// A CA, a server certificate for 127.0.0.1 and a client certificate for
/// `system:node:edge-1`, as PEM.
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().expect("a key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("certificate parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "apiary test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca, &ca_key);
        let leaf = |sans: Vec<String>, cn: &str, usage| {
            let key = KeyPair::generate().expect("a key");
            let mut params = CertificateParams::new(sans).expect("certificate parameters");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).expect("a leaf certificate");
            (cert.pem(), key.serialize_pem())
        };
        Pki {
            ca: ca_cert.pem(),
            server: leaf(
                vec!["127.0.0.1".into()],
                "cloudcore",
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            client: leaf(
                Vec::new(),
                "system:node:edge-1",
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        }
    }

    fn creds(&self, (cert, key): &(String, String)) -> link::Credentials {
        link::Credentials::from_pem(self.ca.as_bytes(), cert.as_bytes(), key.as_bytes())
            .expect("PEM credentials")
    }

    fn server_tls(&self) -> Arc<rustls::ServerConfig> {
        link::server_config(&self.creds(&self.server)).expect("server TLS")
    }

    fn client_tls(&self) -> Arc<rustls::ClientConfig> {
        link::client_config(&self.creds(&self.client)).expect("client TLS")
    }
}

// ---------------------------------------------------------------- fake cloud

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Ws,
    Quic,
}

/// How the cloud treats the connections it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Behaviour {
    /// Ack upstream messages as an Apiary cloudhub does.
    ack: bool,
    /// Accept, then neither read nor write: a half-open link.
    silent: bool,
}

const NORMAL: Behaviour = Behaviour {
    ack: true,
    silent: false,
};

/// What the cloud saw; `conn` numbers the connections.
#[derive(Debug)]
enum CloudEvent {
    Connected {
        conn: u64,
        acks_upstream: bool,
        silent: bool,
    },
    Up(Box<Message>),
    Keepalive {
        conn: u64,
    },
    Closed {
        conn: u64,
    },
}

/// A cloud end on a fixed address, built from `link`'s server side.
struct FakeCloud {
    behaviour: watch::Sender<Behaviour>,
    kick: watch::Sender<u64>,
    down: broadcast::Sender<Message>,
    events: mpsc::UnboundedReceiver<CloudEvent>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// A free loopback address for `transport` (bound, then released).
fn reserve(transport: Transport) -> SocketAddr {
    match transport {
        Transport::Ws => std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a loopback port")
            .local_addr()
            .expect("the bound address"),
        Transport::Quic => std::net::UdpSocket::bind("127.0.0.1:0")
            .expect("a loopback port")
            .local_addr()
            .expect("the bound address"),
    }
}

fn limits() -> Limits {
    Limits {
        max_frame: 32 * 1024 * 1024,
        handshake_timeout: Duration::from_secs(5),
    }
}

impl FakeCloud {
    async fn start(
        transport: Transport,
        addr: SocketAddr,
        pki: &Pki,
        behaviour: Behaviour,
    ) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let cloud = FakeCloud {
            behaviour: watch::channel(behaviour).0,
            kick: watch::channel(0).0,
            down: broadcast::channel(64).0,
            events,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        let conns = Handler {
            next_conn: Arc::new(AtomicU64::new(0)),
            behaviour: cloud.behaviour.subscribe(),
            kick: cloud.kick.subscribe(),
            down: cloud.down.clone(),
            events: events_tx,
            stop: cloud.stop.clone(),
        };
        let (stop, tasks) = (cloud.stop.clone(), cloud.tasks.clone());
        match transport {
            Transport::Ws => {
                let listener = TcpListener::bind(addr).await.expect("a loopback port");
                let acceptor = link::WsAcceptor::new(pki.server_tls(), limits());
                cloud.tasks.spawn(async move {
                    loop {
                        let (tcp, remote) = tokio::select! {
                            () = stop.cancelled() => return,
                            accepted = listener.accept() => accepted.expect("accepts"),
                        };
                        let (acceptor, conns) = (acceptor.clone(), conns.clone());
                        tasks.spawn(async move {
                            if let Ok(conn) = acceptor.accept(tcp, remote).await {
                                conns.serve(conn).await;
                            }
                        });
                    }
                });
            }
            Transport::Quic => {
                let endpoint = link::quic_server(addr, pki.server_tls(), Duration::from_secs(5))
                    .expect("the QUIC endpoint");
                cloud.tasks.spawn(async move {
                    loop {
                        let incoming = tokio::select! {
                            () = stop.cancelled() => break,
                            incoming = endpoint.accept() => incoming,
                        };
                        let Some(incoming) = incoming else { break };
                        let conns = conns.clone();
                        tasks.spawn(async move {
                            if let Ok(conn) = link::quic_accept(incoming, &limits()).await {
                                conns.serve(conn).await;
                            }
                        });
                    }
                    endpoint.close(0u32.into(), b"bye");
                    endpoint.wait_idle().await;
                });
            }
        }
        cloud
    }

    async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(PATIENCE, self.tasks.wait())
            .await
            .expect("the cloud stops in time");
    }

    fn set(&self, behaviour: Behaviour) {
        self.behaviour.send_replace(behaviour);
    }

    /// Closes every live connection from the cloud's side.
    fn kick(&self) {
        self.kick.send_modify(|n| *n += 1);
    }

    fn send_down(&self, msg: Message) {
        self.down
            .send(msg)
            .expect("a live connection takes the message");
    }

    /// The first event `pick` accepts, skipping others.
    async fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(CloudEvent) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                Ok(None) => panic!("cloud stopped while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Waits for a new connection; returns whether the edge asked for acks.
    async fn connected(&mut self) -> bool {
        self.wait_for("a connection", |e| match e {
            CloudEvent::Connected { acks_upstream, .. } => Some(acks_upstream),
            _ => None,
        })
        .await
    }

    /// Waits for a new connection served normally; returns its number.
    async fn connected_normally(&mut self) -> u64 {
        self.wait_for("a normal connection", |e| match e {
            CloudEvent::Connected {
                conn,
                silent: false,
                ..
            } => Some(conn),
            _ => None,
        })
        .await
    }

    async fn next_up(&mut self) -> Message {
        self.wait_for("an upstream message", |e| match e {
            CloudEvent::Up(m) => Some(*m),
            _ => None,
        })
        .await
    }
}

/// What every connection handler shares.
#[derive(Clone)]
struct Handler {
    next_conn: Arc<AtomicU64>,
    behaviour: watch::Receiver<Behaviour>,
    kick: watch::Receiver<u64>,
    down: broadcast::Sender<Message>,
    events: mpsc::UnboundedSender<CloudEvent>,
    stop: CancellationToken,
}

impl Handler {
    async fn serve(mut self, conn: Connection) {
        let Connection {
            peer,
            mut sender,
            mut receiver,
        } = conn;
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut down = self.down.subscribe();
        self.kick.mark_unchanged();
        let silent = self.behaviour.borrow().silent;
        let _ = self.events.send(CloudEvent::Connected {
            conn,
            acks_upstream: peer.acks_upstream,
            silent,
        });
        if silent {
            tokio::select! {
                () = self.stop.cancelled() => {}
                _ = self.kick.changed() => {}
            }
            let _ = self.events.send(CloudEvent::Closed { conn });
            return;
        }
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                _ = self.kick.changed() => break,
                msg = down.recv() => {
                    let Ok(msg) = msg else { break };
                    if sender.send(&msg).await.is_err() { break }
                }
                incoming = receiver.recv() => {
                    let msg = match incoming {
                        Ok(Some(Incoming::Message(msg))) => msg,
                        Ok(Some(Incoming::Alive)) => continue,
                        Ok(None) | Err(_) => break,
                    };
                    if msg.route.operation == Operation::Keepalive {
                        let _ = self.events.send(CloudEvent::Keepalive { conn });
                        continue;
                    }
                    let ack = self.behaviour.borrow().ack
                        && peer.acks_upstream
                        && msg.route.operation != Operation::Response;
                    let _ = self.events.send(CloudEvent::Up(Box::new(msg.clone())));
                    if ack {
                        let mut reply = msg.reply("OK");
                        reply.route.source = "cloudhub".into();
                        reply.route.group = "resource".into();
                        if sender.send(&reply).await.is_err() { break }
                    }
                }
            }
        }
        sender.close().await;
        let _ = self.events.send(CloudEvent::Closed { conn });
    }
}

// ---------------------------------------------------------------- UDP relay

/// A UDP relay in front of the cloud's QUIC port that can swallow every
/// datagram both ways: a blackholed link, with no close to notice.
struct UdpRelay {
    addr: SocketAddr,
    blackhole: watch::Sender<bool>,
    stop: CancellationToken,
}

impl UdpRelay {
    async fn start(upstream: SocketAddr) -> UdpRelay {
        let outer = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let inner = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        inner.connect(upstream).await.expect("the cloud's address");
        let addr = outer.local_addr().expect("the bound address");
        let (blackhole, cut) = watch::channel(false);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let (mut from_edge, mut from_cloud) = (vec![0u8; 65536], vec![0u8; 65536]);
            let mut edge: Option<SocketAddr> = None;
            loop {
                tokio::select! {
                    () = stopped.cancelled() => return,
                    got = outer.recv_from(&mut from_edge) => {
                        let Ok((n, from)) = got else { return };
                        edge = Some(from);
                        let pass = !*cut.borrow();
                        if pass {
                            let _ = inner.send(&from_edge[..n]).await;
                        }
                    }
                    got = inner.recv(&mut from_cloud) => {
                        let Ok(n) = got else { continue };
                        let pass = !*cut.borrow();
                        if let (Some(to), true) = (edge, pass) {
                            let _ = outer.send_to(&from_cloud[..n], to).await;
                        }
                    }
                }
            }
        });
        UdpRelay {
            addr,
            blackhole,
            stop,
        }
    }

    fn blackhole(&self, on: bool) {
        self.blackhole.send_replace(on);
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// ---------------------------------------------------------------- edge

/// An edge hive: EdgeHub plus test endpoints `metamanager` (group meta) and
/// `twin` (group twin).
struct Edge {
    hive: Beehive,
    bus: Bus,
    status: EdgeHubStatus,
    meta: mpsc::Receiver<Message>,
    _twin: mpsc::Receiver<Message>,
    closed: Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl Edge {
    fn start(outbox_file: &Path, transport: Transport, server: SocketAddr, pki: &Pki) -> Edge {
        let mut config = EdgeHubConfig::default();
        config.websocket.enable = transport == Transport::Ws;
        config.quic.enable = transport == Transport::Quic;
        config.websocket.server = server.to_string();
        config.quic.server = server.to_string();
        config.message_qps = 1000.0;
        config.message_burst = 100;
        let settings = EdgeHubSettings::from_config(&config, NODE)
            .expect("valid settings")
            .with_heartbeat(HEARTBEAT)
            .with_backoff(Duration::from_millis(20), Duration::from_millis(200));
        let outbox = Outbox::open(outbox_file, OutboxOptions::default()).expect("the outbox opens");
        let closed = Box::pin(outbox.closed());
        let mut registry = prometheus_client::registry::Registry::default();
        let hub = EdgeHub::new(
            settings,
            ClientTls::fixed(pki.client_tls()),
            outbox,
            &mut registry,
        );
        let status = hub.status();
        let mut builder = BeehiveBuilder::new();
        builder.module(hub);
        let meta = builder.endpoint("metamanager", "meta");
        let twin = builder.endpoint("twin", "twin");
        let mut hive = builder.build().expect("the hive builds");
        hive.start(&CancellationToken::new());
        Edge {
            bus: hive.bus(),
            hive,
            status,
            meta,
            _twin: twin,
            closed,
        }
    }

    /// Stops the hive and waits until the outbox file is closed.
    async fn stop(self) {
        self.hive
            .shutdown(PATIENCE)
            .await
            .expect("the hive stops in time");
        tokio::time::timeout(PATIENCE, self.closed)
            .await
            .expect("the outbox closes in time");
    }

    async fn next_meta(&mut self) -> Message {
        tokio::time::timeout(PATIENCE, self.meta.recv())
            .await
            .expect("a message for meta in time")
            .expect("meta mailbox open")
    }

    /// The next `node/connection` broadcast seen by meta: connected or not.
    async fn next_connection_state(&mut self) -> bool {
        loop {
            let msg = self.next_meta().await;
            if msg.resource() == "node/connection" {
                assert_eq!(msg.route.operation, Operation::Connect);
                return msg.content == "cloud_connected";
            }
        }
    }

    async fn wait_connected(&self, want: bool) {
        let mut connected = self.status.connected();
        tokio::time::timeout(PATIENCE, connected.wait_for(|c| *c == want))
            .await
            .expect("connection state in time")
            .expect("the status is kept");
    }

    async fn wait_outbox(&self, len: u64) {
        let deadline = Instant::now() + PATIENCE;
        while self.status.outbox_len() != len {
            assert!(
                Instant::now() < deadline,
                "outbox holds {} not {len}",
                self.status.outbox_len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn send_up(&self, msg: Message) {
        self.bus
            .send("websocket", msg)
            .await
            .expect("edgehub takes the message");
    }
}

fn upstream(n: usize) -> Message {
    Message::new(
        "metamanager",
        "resource",
        Operation::Update,
        format!("default/podstatus/p{n}"),
    )
    .with_content(serde_json::json!({ "n": n }))
}

// ---------------------------------------------------------------- tests

async fn downstream_reaches_meta_and_its_ack_goes_up(transport: Transport) {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("a temp dir");
    let addr = reserve(transport);
    let mut cloud = FakeCloud::start(transport, addr, &pki, NORMAL).await;
    let mut edge = Edge::start(&dir.path().join("outbox.db"), transport, addr, &pki);
    assert!(cloud.connected().await, "the edge asks for upstream acks");
    assert!(edge.next_connection_state().await);
    assert!(edge.status.peer().is_some_and(|p| p.acks_upstream));

    let insert = Message::new(
        "edgecontroller",
        "resource",
        Operation::Insert,
        "default/configmap/cm2",
    )
    .with_resource_version("476")
    .with_content(serde_json::json!({"kind": "ConfigMap", "data": {"greeting": "hi"}}));
    cloud.send_down(insert.clone());
    let got = edge.next_meta().await;
    assert_eq!(got, insert);
    edge.send_up(got.reply("OK")).await;
    let ack = cloud.next_up().await;
    assert_eq!(ack.route.operation, Operation::Response);
    assert_eq!(ack.parent_id(), Some(insert.id()));
    assert_eq!(ack.content, "OK");
    // A reply is not acked by the cloud, so the row goes once written.
    edge.wait_outbox(0).await;

    edge.stop().await;
    cloud.stop().await;
}

#[tokio::test]
async fn edgehub_websocket_downstream_and_ack() {
    downstream_reaches_meta_and_its_ack_goes_up(Transport::Ws).await;
}

#[tokio::test]
async fn edgehub_quic_downstream_and_ack() {
    downstream_reaches_meta_and_its_ack_goes_up(Transport::Quic).await;
}

#[tokio::test]
async fn edgehub_offline_messages_survive_a_restart_and_arrive_in_order() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecore.outbox.db");
    let addr = reserve(Transport::Ws);
    let sent: Vec<Message> = (0..20).map(upstream).collect();

    let edge = Edge::start(&file, Transport::Ws, addr, &pki);
    for msg in &sent {
        edge.send_up(msg.clone()).await;
    }
    edge.wait_outbox(20).await;
    assert!(!edge.status.is_connected());
    edge.stop().await;

    let edge = Edge::start(&file, Transport::Ws, addr, &pki);
    assert_eq!(edge.status.outbox_len(), 20);
    let mut cloud = FakeCloud::start(Transport::Ws, addr, &pki, NORMAL).await;
    cloud.connected().await;
    for msg in &sent {
        assert_eq!(&cloud.next_up().await, msg);
    }
    edge.wait_outbox(0).await;
    edge.stop().await;
    cloud.stop().await;
}

#[tokio::test]
async fn edgehub_rows_stay_until_acked_and_are_resent_after_a_reconnect() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let addr = reserve(Transport::Ws);
    let quiet = Behaviour {
        ack: false,
        ..NORMAL
    };
    let mut cloud = FakeCloud::start(Transport::Ws, addr, &pki, quiet).await;
    let edge = Edge::start(&dir.path().join("outbox.db"), Transport::Ws, addr, &pki);
    cloud.connected().await;
    let sent: Vec<Message> = (0..5).map(upstream).collect();
    for msg in &sent {
        edge.send_up(msg.clone()).await;
    }
    for msg in &sent {
        assert_eq!(&cloud.next_up().await, msg);
    }
    assert_eq!(
        edge.status.outbox_len(),
        5,
        "nothing acked, nothing deleted"
    );

    cloud.set(NORMAL);
    cloud.kick();
    cloud.connected().await;
    for msg in &sent {
        assert_eq!(
            &cloud.next_up().await,
            msg,
            "resent from the oldest unacked row"
        );
    }
    edge.wait_outbox(0).await;
    edge.stop().await;
    cloud.stop().await;
}

#[tokio::test]
async fn edgehub_drops_a_silent_cloud_within_two_heartbeats() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let addr = reserve(Transport::Ws);
    let silent = Behaviour {
        silent: true,
        ..NORMAL
    };
    let mut cloud = FakeCloud::start(Transport::Ws, addr, &pki, silent).await;
    let edge = Edge::start(&dir.path().join("outbox.db"), Transport::Ws, addr, &pki);
    cloud.connected().await;
    edge.wait_connected(true).await;
    let up = Instant::now();
    edge.wait_connected(false).await;
    let lived = up.elapsed();
    assert!(lived >= HEARTBEAT, "dropped early: {lived:?}");
    assert!(
        lived < HEARTBEAT * 2 + Duration::from_secs(1),
        "dropped late: {lived:?}"
    );
    cloud.connected().await; // redialled

    // A live but idle cloud is kept: pongs and keepalives hold the deadline off.
    cloud.set(NORMAL);
    cloud.kick();
    let healthy = cloud.connected_normally().await;
    let mut keepalives = 0;
    while keepalives < 6 {
        cloud
            .wait_for("keepalives on one connection", |e| match e {
                CloudEvent::Keepalive { conn } if conn == healthy => Some(()),
                CloudEvent::Closed { conn } if conn == healthy => {
                    panic!("a healthy link was dropped")
                }
                _ => None,
            })
            .await;
        keepalives += 1;
    }
    assert!(edge.status.is_connected());
    edge.stop().await;
    cloud.stop().await;
}

#[tokio::test]
async fn edgehub_broadcasts_connection_state_and_answers_requests() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let addr = reserve(Transport::Ws);
    let mut edge = Edge::start(&dir.path().join("outbox.db"), Transport::Ws, addr, &pki);

    // Offline, a request fails at once and is not stored.
    let query = Message::new(
        "metamanager",
        "resource",
        Operation::Query,
        "default/configmap/cm",
    );
    let asked = Instant::now();
    let reply = edge
        .bus
        .request("websocket", query, PATIENCE)
        .await
        .unwrap();
    assert_eq!(reply.route.operation, Operation::Error);
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert_eq!(edge.status.outbox_len(), 0);

    let mut cloud = FakeCloud::start(Transport::Ws, addr, &pki, NORMAL).await;
    cloud.connected().await;
    assert!(edge.next_connection_state().await);

    // Online, it goes straight to the cloud and the answer comes back.
    let query = Message::new(
        "metamanager",
        "resource",
        Operation::Query,
        "default/secret/s",
    );
    let bus = edge.bus.clone();
    let asking = tokio::spawn(async move { bus.request("websocket", query, PATIENCE).await });
    let seen = cloud.next_up().await;
    assert!(seen.header.sync);
    let mut answer = seen.reply(serde_json::json!({"Object": {"kind": "Secret"}, "Err": null}));
    answer.route.source = "edgecontroller".into();
    cloud.send_down(answer.clone());
    assert_eq!(asking.await.unwrap().unwrap(), answer);

    cloud.kick();
    assert!(!edge.next_connection_state().await);
    assert!(edge.next_connection_state().await);
    // Asked to reconnect (a renewed certificate), it drops and redials.
    edge.status.reconnect();
    assert!(!edge.next_connection_state().await);
    assert!(edge.next_connection_state().await);
    cloud.stop().await;
    assert!(!edge.next_connection_state().await);
    edge.stop().await;
}

#[tokio::test]
async fn edgehub_quic_notices_a_blackholed_link_within_two_heartbeats() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let addr = reserve(Transport::Quic);
    let mut cloud = FakeCloud::start(Transport::Quic, addr, &pki, NORMAL).await;
    let relay = UdpRelay::start(addr).await;
    let edge = Edge::start(
        &dir.path().join("outbox.db"),
        Transport::Quic,
        relay.addr,
        &pki,
    );
    cloud.connected().await;
    edge.wait_connected(true).await;

    relay.blackhole(true);
    let cut = Instant::now();
    edge.wait_connected(false).await;
    let noticed = cut.elapsed();
    assert!(
        noticed < HEARTBEAT * 2 + Duration::from_secs(1),
        "noticed late: {noticed:?}"
    );

    relay.blackhole(false);
    cloud.connected().await;
    edge.wait_connected(true).await;
    edge.stop().await;
    cloud.stop().await;
}
