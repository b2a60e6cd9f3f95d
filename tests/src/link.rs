//! A cloudcore and edgecores started in-process for link tests, with
//! beehive endpoints standing in for the modules on either side: the cloud's
//! `edgecontroller` (receives upstream) and the edge's `metamanager`
//! (applies downstream by resourceVersion and acks after "committing").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use beehive::Bus;
use proto::{Message, Operation};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running cloudcore with an `edgecontroller` endpoint (unless the real
/// EdgeController runs).
pub struct Cloud {
    /// Listener addresses.
    pub addrs: cloudcore::Addrs,
    /// The cloud's bus.
    pub bus: Bus,
    /// A valid join token.
    pub token: String,
    /// Upstream messages received by the `edgecontroller` stand-in; never
    /// fed when the config enables the real EdgeController.
    pub upstream: mpsc::Receiver<Message>,
    /// Upstream messages received by the `devicecontroller` stand-in (twin
    /// reports, device states, membership detail requests); never fed when
    /// the config enables the real DeviceController.
    pub twin_upstream: mpsc::Receiver<Message>,
    /// A kube-rs client of cloudcore's API (embedded or configured).
    pub kube: kube::Client,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), cloudcore::RunError>>,
}

impl Cloud {
    /// Starts a cloudcore on `config`.
    pub async fn start(config: cloudcore::CloudCoreConfig) -> Cloud {
        Cloud::start_with_ack_hook(config, Arc::new(cloudcore::cloudhub::NoAckHook)).await
    }

    /// Starts a cloudcore on `config` whose CloudHub tells `hook` of acks.
    pub async fn start_with_ack_hook(
        config: cloudcore::CloudCoreConfig,
        hook: Arc<dyn cloudcore::cloudhub::AckHook>,
    ) -> Cloud {
        let shutdown = CancellationToken::new();
        let mut upstream = None;
        let mut twin_upstream = None;
        let device_stand_in = !config.modules.device_controller.enable;
        let edge_stand_in = !config.modules.edge_controller.enable;
        let started = cloudcore::start_with_ack_hook(config, shutdown.clone(), hook, |b| {
            if edge_stand_in {
                upstream = Some(b.endpoint("edgecontroller", "edgecontroller"));
            }
            if device_stand_in {
                twin_upstream = Some(b.endpoint("devicecontroller", "devicecontroller"));
            }
        })
        .await
        .expect("cloudcore starts");
        let (addrs, bus, token) = (started.addrs, started.bus(), started.pki().token());
        let kube = started.kube_client();
        let task = tokio::spawn(started.wait());
        Cloud {
            addrs,
            bus,
            token,
            upstream: upstream.unwrap_or_else(|| mpsc::channel(1).1),
            twin_upstream: twin_upstream.unwrap_or_else(|| mpsc::channel(1).1),
            kube,
            shutdown,
            task,
        }
    }

    /// Queues `count` configmap inserts for `node`, resourceVersions from
    /// `first_rv`, through CloudHub.
    pub async fn send_configmaps(&self, node: &str, first_rv: u64, count: u64) {
        for rv in first_rv..first_rv + count {
            let msg = Message::new(
                "edgecontroller",
                "resource",
                Operation::Insert,
                format!("node/{node}/default/configmap/cm-{rv}"),
            )
            .with_resource_version(rv.to_string())
            .with_content(serde_json::json!({
                "kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"name": format!("cm-{rv}"), "namespace": "default",
                             "uid": format!("uid-{rv}"), "resourceVersion": rv.to_string()},
                "data": {"n": rv.to_string()}
            }));
            self.bus
                .send("cloudhub", msg)
                .await
                .expect("cloudhub takes it");
        }
    }

    /// Sends one object to `node` through CloudHub, as EdgeController
    /// would: `operation` on `<namespace>/<type>/<name>`, the object's
    /// resourceVersion in the header.
    pub async fn send_object(
        &self,
        node: &str,
        operation: Operation,
        kind: &str,
        object: serde_json::Value,
    ) {
        let meta = &object["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or("default");
        let name = meta["name"].as_str().expect("metadata.name");
        let rv = meta["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let msg = Message::new(
            "edgecontroller",
            "resource",
            operation,
            format!("node/{node}/{namespace}/{kind}/{name}"),
        )
        .with_resource_version(rv)
        .with_content(object);
        self.bus
            .send("cloudhub", msg)
            .await
            .expect("cloudhub takes it");
    }

    /// An edgecore config for node `edge-1` that joins this cloud and dials
    /// `server` (CloudHub's WebSocket, or a proxy in front of it) with a
    /// one-second heartbeat, its files in `dir`.
    pub fn edge_config(
        &self,
        dir: &std::path::Path,
        server: SocketAddr,
    ) -> edgecore::EdgeCoreConfig {
        crate::config::edge(
            dir,
            "edge-1",
            &self.token,
            self.addrs.https.expect("the certificate server listens"),
            server,
            crate::config::Via::WebSocket,
            1,
        )
    }

    /// The cloud's Prometheus text.
    pub async fn metrics(&self) -> String {
        http_get(self.addrs.monitor, "/metrics").await
    }

    /// Stops the cloud.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(20), self.task).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "cloudcore stops cleanly: {stopped:?}"
        );
    }
}

/// What the edge's stand-in MetaManager applied.
#[derive(Debug, Default)]
pub struct Applied {
    /// How many times each (resource, resourceVersion) was applied.
    pub applies: HashMap<(String, String), u32>,
    /// Downstream deliveries seen, duplicates included.
    pub received: u64,
}

/// A running edgecore with a `metamanager` endpoint.
pub struct Edge {
    /// The edge's bus.
    pub bus: Bus,
    /// Link state.
    pub hub: edgecore::edgehub::EdgeHubStatus,
    /// What was applied.
    pub applied: Arc<Mutex<Applied>>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), edgecore::RunError>>,
}

impl Edge {
    /// Starts an edgecore on `config`, with a stand-in MetaManager (the
    /// real one, the MetaServer and node status are switched off).
    pub async fn start(config: edgecore::EdgeCoreConfig) -> Edge {
        let config = crate::config::link_only(config);
        let shutdown = CancellationToken::new();
        let mut meta = None;
        let started = edgecore::start(config, shutdown.clone(), |b| {
            meta = Some(b.endpoint("metamanager", "meta"));
        })
        .await
        .expect("edgecore starts");
        let bus = started.bus();
        let hub = started.hub().expect("edgehub enabled").clone();
        let applied = Arc::new(Mutex::new(Applied::default()));
        tokio::spawn(apply_and_ack(
            meta.expect("endpoint registered"),
            bus.clone(),
            applied.clone(),
        ));
        let task = tokio::spawn(started.wait());
        Edge {
            bus,
            hub,
            applied,
            shutdown,
            task,
        }
    }

    /// Distinct objects applied so far.
    pub fn applied_count(&self) -> usize {
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .applies
            .len()
    }

    /// Waits until the link is up (or down).
    pub async fn wait_connected(&self, up: bool, patience: Duration) {
        let mut connected = self.hub.connected();
        let reached = tokio::time::timeout(patience, connected.wait_for(|c| *c == up)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "edge link never became {}",
            if up { "up" } else { "down" }
        );
    }

    /// Stops the edge.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(20), self.task).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "edgecore stops cleanly: {stopped:?}"
        );
    }
}

/// Applies downstream messages by resourceVersion (an older or equal one is
/// not applied again) and acks each after applying, as MetaManager does.
async fn apply_and_ack(mut inbox: mpsc::Receiver<Message>, bus: Bus, applied: Arc<Mutex<Applied>>) {
    let mut newest: HashMap<String, u64> = HashMap::new();
    while let Some(msg) = inbox.recv().await {
        if msg.resource() == proto::resource::NODE_CONNECTION {
            continue;
        }
        let rv: u64 = msg.header.resource_version.parse().unwrap_or(0);
        {
            let mut applied = applied.lock().unwrap_or_else(PoisonError::into_inner);
            applied.received += 1;
            let seen = newest.entry(msg.resource().to_owned()).or_insert(0);
            if rv > *seen {
                *seen = rv;
                *applied
                    .applies
                    .entry((
                        msg.resource().to_owned(),
                        msg.header.resource_version.clone(),
                    ))
                    .or_insert(0) += 1;
            }
        }
        if bus.send("websocket", msg.reply("OK")).await.is_err() {
            return;
        }
    }
}

/// A plain HTTP GET on loopback; returns the whole response.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    try_http_get(addr, path)
        .await
        .expect("HTTP GET on loopback")
}

/// [`http_get`], or None when the server is not there (yet).
pub async fn try_http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

/// The value of the first sample of `metric` whose line contains `labels`.
pub fn metric(text: &str, metric: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Starts a real edgecore (all its modules) on `config` and waits until its
/// link is up; cancel the token to stop it.
pub async fn start_connected_edge(
    config: edgecore::EdgeCoreConfig,
) -> (edgecore::Started, CancellationToken) {
    start_connected_edge_with(config, |_| {}).await
}

/// [`start_connected_edge`], with `customize` adding endpoints or modules
/// to the edge's beehive (as `edgecore::start` takes it).
pub async fn start_connected_edge_with(
    config: edgecore::EdgeCoreConfig,
    customize: impl FnOnce(&mut beehive::BeehiveBuilder),
) -> (edgecore::Started, CancellationToken) {
    let shutdown = CancellationToken::new();
    let edge = edgecore::start(config, shutdown.clone(), customize)
        .await
        .expect("edgecore starts");
    let mut connected = edge.hub().expect("edgehub enabled").connected();
    let up = tokio::time::timeout(Duration::from_secs(30), connected.wait_for(|up| *up)).await;
    assert!(matches!(up, Ok(Ok(_))), "the edge connects");
    (edge, shutdown)
}
