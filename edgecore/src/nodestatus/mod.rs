//! Node status: the part of KubeEdge's edged that Apiary keeps, as the
//! beehive module `nodestatus` (group `nodestatus`).
//!
//! At start it reads the host once ([`HostFacts`]: CPU, memory, the disk of
//! the data directory, addresses, machine and boot IDs, kernel and OS) and,
//! if `registerNode`, registers the Node (`insert` on `default/node/<name>`,
//! content the Node). Then it reports the status every
//! `nodeStatusUpdateFrequency` (`update` on `default/nodestatus/<name>`,
//! content KubeEdge's `NodeStatusRequest` `{"UID", "Status"}`) and renews
//! the node's Lease every `leaseDurationSeconds / 4`, as the kubelet does
//! (`update` on `kube-node-lease/lease/<name>`, content a
//! `coordination.k8s.io/v1` Lease).
//!
//! Every message has source `edged` and group `meta` and goes to
//! MetaManager, which stores it and forwards it to the cloud through
//! EdgeHub's outbox, so reports made offline queue rather than fail. A
//! daemon without MetaManager gets them sent to EdgeHub (`websocket`)
//! directly. A failed send is logged and the module carries on. The Node's
//! UID, once a message naming this Node with a UID reaches the module's
//! mailbox (a reply to the registration, or the cloud's copy of the Node),
//! goes into the status reports and makes the Node the Lease's owner.
//!
//! ```no_run
//! # fn demo(config: &edgecore::EdgeCoreConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use edgecore::nodestatus::{NodeStatus, NodeStatusSettings};
//!
//! let settings = NodeStatusSettings::from_config(config, "edge-1")?;
//! let mut builder = beehive::BeehiveBuilder::new();
//! builder.module(NodeStatus::new(settings));
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `mod.rs`: the [`NodeStatus`] module: start-up, timers, the Node's UID.
//! - `settings.rs`: [`NodeStatusSettings`] from `modules.nodeStatus`,
//!   [`NodeStatusError`].
//! - `objects.rs`: the Node, status report and Lease, built purely from
//!   settings, [`HostFacts`] and the time.
//! - `outbound.rs`: routes and resource strings, delivery to MetaManager
//!   (or EdgeHub), the Node's UID read from incoming messages.
//! - `host.rs`: reading [`HostFacts`] from the host.

mod host;
mod objects;
mod outbound;
mod settings;

use beehive::{async_trait, Module, ModuleContext, ModuleError, RestartPolicy};
use jiff::Timestamp;
use proto::{Message, Operation};
use tokio::time::{interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub use host::HostFacts;
pub use objects::{kubelet_version, KUBELET_PORT};
pub use outbound::{lease_resource, node_resource, node_status_resource, LEASE_NAMESPACE};
pub use settings::{NodeStatusError, NodeStatusSettings, Result};

use host::HostProbe;
use outbound::{message, Outbound};

/// The module's name on the bus.
pub const MODULE_NAME: &str = "nodestatus";

/// The module's group.
pub const GROUP: &str = "nodestatus";

/// The node-status module; see the [module documentation](self).
#[derive(Debug)]
pub struct NodeStatus {
    settings: NodeStatusSettings,
    /// Read on the first run, kept across restarts.
    host: Option<(HostProbe, HostFacts)>,
    /// The Node's UID once the cloud's copy has been seen; empty before.
    uid: String,
    outbound: Outbound,
    /// When the module first started: the conditions' transition time.
    since: Timestamp,
}

impl NodeStatus {
    /// A module reporting as `settings` say; nothing is read until it runs.
    pub fn new(settings: NodeStatusSettings) -> Self {
        NodeStatus {
            outbound: Outbound::new(&settings.node_name),
            settings,
            host: None,
            uid: String::new(),
            since: Timestamp::now(),
        }
    }

    /// Reads the host on the first run (off the runtime's threads); false
    /// if cancelled meanwhile.
    async fn read_host(&mut self, cancel: &CancellationToken) -> Result<bool, ModuleError> {
        if self.host.is_some() {
            return Ok(true);
        }
        let data_dir = self.settings.data_dir.clone();
        let read = tokio::task::spawn_blocking(move || HostProbe::read(&data_dir));
        let (probe, facts) = tokio::select! {
            () = cancel.cancelled() => return Ok(false),
            read = read => read.map_err(ModuleError::new)?,
        };
        let addresses = [
            objects::internal_ip(&self.settings, &facts).to_string(),
            self.settings.node_name.clone(),
        ];
        tracing::info!(
            node = %self.settings.node_name,
            frequency = ?self.settings.status_update_frequency,
            lease_interval = ?self.settings.lease_renew_interval(),
            ?addresses,
            register = self.settings.register_node,
            "node status started"
        );
        self.host = Some((probe, facts));
        Ok(true)
    }

    /// The Node registration, if `registerNode`.
    fn registration(&self) -> Option<Result<Message>> {
        let (_, facts) = self.host.as_ref()?;
        if !self.settings.register_node {
            return None;
        }
        let node = objects::node(&self.settings, facts, self.since, Timestamp::now());
        Some(message(
            Operation::Insert,
            node_resource(&self.settings.node_name),
            objects::to_json("Node", &node),
        ))
    }

    /// A status report with fresh memory figures and heartbeat.
    fn status_report(&mut self) -> Option<Result<Message>> {
        let (probe, facts) = self.host.as_mut()?;
        probe.refresh(facts);
        let status = objects::node_status(&self.settings, facts, self.since, Timestamp::now());
        Some(message(
            Operation::Update,
            node_status_resource(&self.settings.node_name),
            objects::status_request(&self.uid, &status),
        ))
    }

    /// The Lease, renewed now.
    fn lease_renewal(&self) -> Result<Message> {
        let lease = objects::lease(&self.settings, &self.uid, Timestamp::now());
        message(
            Operation::Update,
            lease_resource(&self.settings.node_name),
            objects::to_json("Lease", &lease),
        )
    }

    /// Takes the Node's UID from a message carrying this Node.
    fn observe(&mut self, msg: &Message) {
        match outbound::node_uid(msg, &self.settings.node_name) {
            Some(uid) if uid != self.uid => {
                tracing::info!(node = %self.settings.node_name, uid, "node UID learned");
                self.uid = uid;
            }
            _ => {}
        }
    }
}

#[async_trait]
impl Module for NodeStatus {
    fn name(&self) -> &str {
        MODULE_NAME
    }

    fn group(&self) -> &str {
        GROUP
    }

    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::OnFailure { max_retries: 0 }
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError> {
        let cancel = ctx.cancellation_token().clone();
        let bus = ctx.bus().clone();
        if !self.read_host(&cancel).await? {
            return Ok(());
        }
        if let Some(registration) = self.registration() {
            self.outbound.deliver(&bus, &cancel, registration).await;
        }
        let mut status_tick = interval(self.settings.status_update_frequency);
        status_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut lease_tick = interval(self.settings.lease_renew_interval());
        lease_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                _ = status_tick.tick() => {
                    if let Some(report) = self.status_report() {
                        self.outbound.deliver(&bus, &cancel, report).await;
                    }
                }
                _ = lease_tick.tick() => {
                    let renewal = self.lease_renewal();
                    self.outbound.deliver(&bus, &cancel, renewal).await;
                }
                msg = ctx.recv() => match msg {
                    Some(msg) => self.observe(&msg),
                    None => return Ok(()),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use beehive::{Beehive, BeehiveBuilder};
    use serde_json::{json, Value};
    use tokio::sync::mpsc;

    use super::*;

    const GRACE: Duration = Duration::from_secs(5);

    fn settings(register_node: bool) -> NodeStatusSettings {
        NodeStatusSettings {
            node_name: "edge-1".into(),
            node_ip: Some("10.0.0.7".parse().unwrap()),
            node_labels: BTreeMap::from([("zone".into(), "north".into())]),
            register_node,
            status_update_frequency: Duration::from_secs(1),
            lease_duration_seconds: 2,
            data_dir: PathBuf::from("/nonexistent/apiary"),
        }
    }

    /// A hive with the module and an endpoint named `endpoint` in its place.
    fn hive(
        settings: NodeStatusSettings,
        endpoint: (&str, &str),
    ) -> (Beehive, mpsc::Receiver<Message>, CancellationToken) {
        let mut builder = BeehiveBuilder::new();
        builder.module(NodeStatus::new(settings));
        let rx = builder.endpoint(endpoint.0, endpoint.1);
        let mut hive = builder.build().unwrap();
        let cancel = CancellationToken::new();
        hive.start(&cancel);
        (hive, rx, cancel)
    }

    async fn next(rx: &mut mpsc::Receiver<Message>) -> Message {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("a message within 30 s")
            .expect("the bus is open")
    }

    fn assert_route(msg: &Message, op: Operation, resource: &str) {
        assert_eq!(msg.route.source, "edged");
        assert_eq!(msg.route.group, "meta");
        assert_eq!(msg.operation(), &op);
        assert_eq!(msg.resource(), resource);
    }

    /// Reads until `want_status` status reports and `want_leases` lease
    /// renewals arrived; returns them.
    async fn collect(
        rx: &mut mpsc::Receiver<Message>,
        want_status: usize,
        want_leases: usize,
    ) -> (Vec<Value>, Vec<Value>) {
        let (mut statuses, mut leases) = (Vec::new(), Vec::new());
        while statuses.len() < want_status || leases.len() < want_leases {
            let msg = next(rx).await;
            match msg.resource() {
                "default/nodestatus/edge-1" => {
                    assert_route(&msg, Operation::Update, "default/nodestatus/edge-1");
                    statuses.push(msg.content_json());
                }
                "kube-node-lease/lease/edge-1" => {
                    assert_route(&msg, Operation::Update, "kube-node-lease/lease/edge-1");
                    leases.push(msg.content_json());
                }
                other => panic!("unexpected resource {other}"),
            }
        }
        (statuses, leases)
    }

    #[tokio::test(start_paused = true)]
    async fn registers_then_reports_and_renews_to_metamanager() {
        let (hive, mut rx, _cancel) = hive(settings(true), ("metamanager", "meta"));

        let insert = next(&mut rx).await;
        assert_route(&insert, Operation::Insert, "default/node/edge-1");
        let node = insert.content_json();
        assert_eq!(
            (node["apiVersion"].clone(), node["kind"].clone()),
            (json!("v1"), json!("Node"))
        );
        assert_eq!(node["metadata"]["name"], "edge-1");
        assert_eq!(
            node["metadata"]["labels"]["node-role.kubernetes.io/edge"],
            ""
        );
        assert_eq!(node["metadata"]["labels"]["zone"], "north");
        assert_eq!(
            node["status"]["addresses"][0],
            json!({"type": "InternalIP", "address": "10.0.0.7"})
        );
        assert_eq!(node["status"]["nodeInfo"]["operatingSystem"], "linux");
        assert_eq!(node["status"]["capacity"]["pods"], "110");

        let (statuses, leases) = collect(&mut rx, 3, 2).await;
        for status in &statuses {
            assert_eq!(status.as_object().unwrap().len(), 2);
            assert_eq!(status["UID"], "");
            let ready = &status["Status"]["conditions"][3];
            assert_eq!(
                (ready["type"].clone(), ready["status"].clone()),
                (json!("Ready"), json!("True"))
            );
            assert!(status["Status"]["capacity"]["memory"]
                .as_str()
                .unwrap()
                .ends_with("Ki"));
        }
        for lease in &leases {
            assert_eq!(lease["apiVersion"], "coordination.k8s.io/v1");
            assert_eq!(
                lease["metadata"],
                json!({"name": "edge-1", "namespace": "kube-node-lease"})
            );
            assert_eq!(lease["spec"]["holderIdentity"], "edge-1");
            assert_eq!(lease["spec"]["leaseDurationSeconds"], 2);
            let renew = lease["spec"]["renewTime"].as_str().unwrap();
            assert_eq!(renew.len(), "2025-01-02T03:04:05.123456Z".len(), "{renew}");
        }
        hive.shutdown(GRACE).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn without_metamanager_goes_to_edgehub_and_skips_registration_if_told() {
        let (hive, mut rx, _cancel) = hive(settings(false), ("websocket", "hub"));
        let first = next(&mut rx).await;
        assert_route(&first, Operation::Update, "default/nodestatus/edge-1");
        collect(&mut rx, 2, 1).await;
        hive.shutdown(GRACE).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn learns_the_node_uid_from_the_cloud_copy() {
        let (hive, mut rx, _cancel) = hive(settings(true), ("metamanager", "meta"));
        let insert = next(&mut rx).await;
        let mut node = insert.content_json();
        node["metadata"]["uid"] = json!("uid-7");
        let reply = insert.reply(node);
        hive.bus().send(MODULE_NAME, reply).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (mut status_uid, mut lease_owner) = (false, false);
        while !(status_uid && lease_owner) {
            assert!(tokio::time::Instant::now() < deadline, "UID never used");
            let msg = next(&mut rx).await.content_json();
            status_uid |= msg["UID"] == "uid-7";
            lease_owner |= msg["metadata"]["ownerReferences"][0]["uid"] == "uid-7";
        }
        hive.shutdown(GRACE).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn send_failures_do_not_stop_the_module() {
        let (hive, _rx, _cancel) = hive(settings(true), ("someone-else", "x"));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!hive.is_finished());
        hive.shutdown(GRACE).await.unwrap();
    }
}
