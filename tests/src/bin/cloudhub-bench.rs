//! `cloudhub-bench`: connects N simulated edge nodes to a real cloudcore
//! and reports what they cost it, then measures downstream throughput.
//!
//! ```text
//! cargo build --release -p cloudcore -p tests
//! target/release/cloudhub-bench [--transports ws,quic] [--nodes 100,1000,5000] [--idle-secs 20] [--messages 20000]
//! ```
//!
//! Phase 1, per transport (WebSocket, QUIC) and N: cloudcore runs as its own
//! process (the `cloudcore` binary next to this one); N nodes connect with
//! client certificates signed by its CA (read from its data directory, as
//! `edgecore join` would obtain them) and send KubeEdge's keepalive every
//! 15 s. Reported: cloudcore's RSS growth per node and its CPU while the
//! nodes idle. Phase 2, in-process: 100 nodes ack downstream messages sent
//! through CloudHub; the baseline is the same messages and acks over 100 bare
//! `link` connections (no queues, no session logic) in the same run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use link::{Connection, Credentials, Dial, Incoming, Limits};
use proto::{Message, Operation};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tests::config::{self, Via};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    transports: Vec<Via>,
    nodes: Vec<usize>,
    idle: Duration,
    messages: u64,
}

fn args() -> Result<Args, BoxError> {
    let mut out = Args {
        transports: vec![Via::WebSocket, Via::Quic],
        nodes: vec![100, 1000, 5000],
        idle: Duration::from_secs(20),
        messages: 20_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nodes" => out.nodes = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--idle-secs" => out.idle = Duration::from_secs(value.parse()?),
            "--messages" => out.messages = value.parse()?,
            "--transports" => {
                out.transports = value
                    .split(',')
                    .map(|t| match t {
                        "ws" => Ok(Via::WebSocket),
                        "quic" => Ok(Via::Quic),
                        other => Err(format!("unknown transport {other} (ws, quic)")),
                    })
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(out)
}

fn free_port(udp: bool) -> Result<u16, BoxError> {
    Ok(if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    })
}

/// Signs client certificates for `system:node:<name>` with the CA in `pki`.
struct Signer {
    ca: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    node_key: rcgen::KeyPair,
}

impl Signer {
    fn load(pki: &Path) -> Result<Signer, BoxError> {
        let ca = CertificateDer::from(std::fs::read(pki.join("ca.crt"))?);
        let ca_key = PrivatePkcs8KeyDer::from(std::fs::read(pki.join("ca.key"))?);
        let key = rcgen::KeyPair::try_from(&ca_key)?;
        let issuer = rcgen::Issuer::from_ca_cert_der(&ca, key)?;
        Ok(Signer {
            ca,
            issuer,
            node_key: rcgen::KeyPair::generate()?,
        })
    }

    fn credentials(&self, node: &str) -> Result<Credentials, BoxError> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&self.node_key, &self.issuer)?;
        Ok(Credentials {
            ca: self.ca.clone(),
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.node_key.serialize_der())),
        })
    }
}

/// A simulated node: acks what needs acking, sends a keepalive every 15 s.
async fn node_loop(mut conn: Connection, received: Arc<AtomicU64>) {
    let mut keepalive = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = keepalive.tick() => {
                if conn.sender.send(&proto::modules::keepalive()).await.is_err() { return }
            }
            item = conn.receiver.recv() => match item {
                Ok(Some(Incoming::Message(msg))) => {
                    received.fetch_add(1, Ordering::Relaxed);
                    if proto::modules::needs_ack(&msg) && conn.sender.send(&msg.reply("OK")).await.is_err() {
                        return;
                    }
                }
                Ok(Some(Incoming::Alive)) => {}
                _ => return,
            }
        }
    }
}

async fn connect(
    via: Via,
    server: SocketAddr,
    node: String,
    creds: Credentials,
) -> Result<Connection, BoxError> {
    let dial = Dial {
        server: server.to_string(),
        server_name: "127.0.0.1".into(),
        project_id: edgecore::config::DEFAULT_PROJECT_ID.into(),
        node_id: node,
        tls: link::client_config(&creds)?,
        limits: Limits::default(),
    };
    Ok(match via {
        Via::WebSocket => link::ws_connect(&dial).await?,
        Via::Quic => {
            link::quic_connect(&dial, Duration::from_secs(15), Duration::from_secs(60)).await?
        }
    })
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

struct CloudProcess {
    child: Child,
    monitor: SocketAddr,
    server: SocketAddr,
    pki: PathBuf,
}

impl Drop for CloudProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_cloud(dir: &Path, via: Via, nodes: usize) -> Result<CloudProcess, BoxError> {
    let mut cfg = config::cloud(dir, 60);
    let hub = &mut cfg.modules.cloud_hub;
    hub.node_limit = u32::try_from(nodes + 10)?;
    hub.websocket.port = free_port(false)?;
    hub.quic.port = free_port(true)?;
    hub.https.port = free_port(false)?;
    let monitor = SocketAddr::from(([127, 0, 0, 1], free_port(false)?));
    cfg.common_config.monitor_server.bind_address = monitor.to_string();
    let server = SocketAddr::from((
        [127, 0, 0, 1],
        if via == Via::WebSocket {
            hub.websocket.port
        } else {
            hub.quic.port
        },
    ));
    let path = dir.join("cloudcore.yaml");
    std::fs::write(&path, serde_norway::to_string(&cfg)?)?;
    let exe = std::env::current_exe()?.with_file_name("cloudcore");
    let child = Command::new(&exe)
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {}: {e} (build it: cargo build --release -p cloudcore)",
                exe.display()
            )
        })?;
    let cloud = CloudProcess {
        child,
        monitor,
        server,
        pki: dir.join("pki"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tests::link::try_http_get(monitor, "/readyz")
        .await
        .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    {
        if Instant::now() > deadline {
            return Err("cloudcore did not become ready".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(cloud)
}

async fn scale(via: Via, nodes: usize, idle: Duration) -> Result<(f64, f64), BoxError> {
    let dir = tempfile::tempdir()?;
    let cloud = start_cloud(dir.path(), via, nodes).await?;
    let pid = cloud.child.id();
    let signer = Signer::load(&cloud.pki)?;
    let before = proc_field(pid, "status", "VmRSS:").ok_or("no VmRSS")?;
    let received = Arc::new(AtomicU64::new(0));
    let mut creds = Vec::with_capacity(nodes);
    for i in 0..nodes {
        creds.push((
            format!("bench-{i}"),
            signer.credentials(&format!("bench-{i}"))?,
        ));
    }
    let conns: Vec<_> = futures::stream::iter(creds)
        .map(|(node, c)| connect(via, cloud.server, node, c))
        .buffer_unordered(32)
        .collect()
        .await;
    let mut tasks = Vec::new();
    for conn in conns {
        tasks.push(tokio::spawn(node_loop(conn?, received.clone())));
    }
    // Let sessions settle, then measure RSS and idle CPU.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = tests::link::http_get(cloud.monitor, "/metrics").await;
        if tests::link::metric(&text, "cloudhub_connected_nodes", "") == Some(nodes as f64)
            || Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = proc_field(pid, "status", "VmRSS:").ok_or("no VmRSS")?;
    let ticks0 = cpu_ticks(pid).ok_or("no stat")?;
    let t0 = Instant::now();
    tokio::time::sleep(idle).await;
    let ticks = cpu_ticks(pid).ok_or("no stat")? - ticks0;
    let cpu_pct = ticks as f64 / 100.0 / t0.elapsed().as_secs_f64() * 100.0;
    let per_node_kb = after.saturating_sub(before) as f64 / nodes as f64;
    for t in tasks {
        t.abort();
    }
    Ok((per_node_kb, cpu_pct))
}

/// Downstream through CloudHub to `nodes` acking nodes, in-process.
async fn throughput_cloudhub(via: Via, nodes: usize, messages: u64) -> Result<f64, BoxError> {
    let dir = tempfile::tempdir()?;
    let cloud = tests::link::Cloud::start(config::cloud(dir.path(), 60)).await;
    let signer = Signer::load(&dir.path().join("pki"))?;
    let server = if via == Via::WebSocket {
        cloud.addrs.websocket
    } else {
        cloud.addrs.quic
    }
    .ok_or("no listener")?;
    let received = Arc::new(AtomicU64::new(0));
    for i in 0..nodes {
        let conn = connect(
            via,
            server,
            format!("tp-{i}"),
            signer.credentials(&format!("tp-{i}"))?,
        )
        .await?;
        tokio::spawn(node_loop(conn, received.clone()));
    }
    let start = Instant::now();
    for rv in 1..=messages {
        let node = rv % nodes as u64;
        let msg = Message::new("edgecontroller", "resource", Operation::Insert, format!("node/tp-{node}/default/configmap/cm-{rv}"))
            .with_resource_version(rv.to_string())
            .with_content(serde_json::json!({"metadata": {"name": format!("cm-{rv}"), "uid": format!("u-{rv}")}, "data": {"k": "v"}}));
        cloud.bus.send("cloudhub", msg).await?;
    }
    while received.load(Ordering::Relaxed) < messages {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = messages as f64 / start.elapsed().as_secs_f64();
    cloud.stop().await;
    Ok(rate)
}

/// The baseline: the same messages and acks over bare link connections.
async fn throughput_raw(via: Via, nodes: usize, messages: u64) -> Result<f64, BoxError> {
    let dir = tempfile::tempdir()?;
    let cloud = tests::link::Cloud::start(config::cloud(dir.path(), 60)).await;
    // Only for its CA and server certificate: stop it before measuring.
    cloud.stop().await;
    let signer = Signer::load(&dir.path().join("pki"))?;
    let tls = raw_server_tls(&dir.path().join("pki"))?;
    let acceptor = link::WsAcceptor::new(tls.clone(), Limits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let quic = link::quic_server("127.0.0.1:0".parse()?, tls, Duration::from_secs(60))?;
    let addr = if via == Via::WebSocket {
        listener.local_addr()?
    } else {
        quic.local_addr()?
    };
    let received = Arc::new(AtomicU64::new(0));
    let per_node = messages / nodes as u64;
    let mut servers = Vec::new();
    for i in 0..nodes {
        let conn = connect(
            via,
            addr,
            format!("raw-{i}"),
            signer.credentials(&format!("raw-{i}"))?,
        );
        let accept = async {
            Ok::<_, BoxError>(match via {
                Via::WebSocket => {
                    let (tcp, peer) = listener.accept().await?;
                    acceptor.accept(tcp, peer).await?
                }
                Via::Quic => {
                    link::quic_accept(
                        quic.accept().await.ok_or("endpoint closed")?,
                        &Limits::default(),
                    )
                    .await?
                }
            })
        };
        let (client, server) = tokio::join!(conn, accept);
        tokio::spawn(node_loop(client?, received.clone()));
        servers.push(server?);
    }
    let start = Instant::now();
    let mut pushers = Vec::new();
    for (i, server) in servers.into_iter().enumerate() {
        pushers.push(tokio::spawn(async move {
            let (mut tx, mut rx) = (server.sender, server.receiver);
            let reader = tokio::spawn(async move {
                let mut acks = 0;
                while acks < per_node {
                    match rx.recv().await {
                        Ok(Some(Incoming::Message(m))) if m.operation() == &Operation::Response => acks += 1,
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
            });
            for rv in 1..=per_node {
                let msg = Message::new("edgecontroller", "resource", Operation::Insert, format!("default/configmap/cm-{i}-{rv}"))
                    .with_resource_version(rv.to_string())
                    .with_content(serde_json::json!({"metadata": {"name": format!("cm-{rv}"), "uid": format!("u-{i}-{rv}")}, "data": {"k": "v"}}));
                if tx.send(&msg).await.is_err() {
                    break;
                }
            }
            let _ = reader.await;
        }));
    }
    for p in pushers {
        p.await?;
    }
    Ok((per_node * nodes as u64) as f64 / start.elapsed().as_secs_f64())
}

fn raw_server_tls(pki: &Path) -> Result<Arc<rustls::ServerConfig>, BoxError> {
    let ca = CertificateDer::from(std::fs::read(pki.join("ca.crt"))?);
    let chain = vec![CertificateDer::from(std::fs::read(pki.join("server.crt"))?)];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(std::fs::read(
        pki.join("server.key"),
    )?));
    Ok(link::server_config(&Credentials { ca, chain, key })?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    println!("| transport | nodes | cloudcore RSS per node | cloudcore CPU at idle heartbeat |");
    println!("| --- | --- | --- | --- |");
    for &via in &args.transports {
        for &n in &args.nodes {
            let (kb, cpu) = scale(via, n, args.idle).await?;
            println!("| {via:?} | {n} | {kb:.1} KiB | {cpu:.2} % of one core |");
        }
    }
    println!();
    println!("| transport | downstream msgs/s through CloudHub (100 nodes, acked) | bare link baseline | ratio |");
    println!("| --- | --- | --- | --- |");
    for &via in &args.transports {
        let hub = throughput_cloudhub(via, 100, args.messages).await?;
        let raw = throughput_raw(via, 100, args.messages).await?;
        println!("| {via:?} | {hub:.0} | {raw:.0} | {:.2}× |", hub / raw);
    }
    Ok(())
}
