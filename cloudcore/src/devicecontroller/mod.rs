//! DeviceController: Devices and DeviceModels in the Kubernetes API ⇄
//! DeviceTwin and MetaManager on edge nodes (reference §5, §7).
//!
//! One task owns the state: what was last sent per device, the twins'
//! edge versions, and the DeviceModels each node was sent. It reads the
//! shared [`Scope`]'s Device and DeviceModel reflectors and follows their
//! change broadcast (no watch of its own). Device changes become
//! membership, `twin/cloud_updated` (new, changed, cleared and deleted
//! desired values), attribute (`device/<id>/updated`) and Device object
//! messages to CloudHub (`downstream.rs`, `attributes.rs`); the models the
//! devices reference follow (`models.rs`). A relist, a lagging receiver
//! and the start compare every Device in the store with what was sent
//! (devices sent but gone count as deleted). `edge_updated` and
//! `state/update` from the edges become merge patches of `Device.status`
//! through the status subresource (`upstream.rs`); a property removed from
//! the spec leaves `status.twins` too. The edges' `membership/detail`
//! requests are answered from the Device reflector.
//!
//! # Layout
//!
//! - `downstream.rs`: Device → membership, twin and object messages (pure).
//! - `attributes.rs`: labels → attributes and their updates (pure).
//! - `models.rs`: which DeviceModels a node is sent (pure).
//! - `upstream.rs`: reports → status patches (pure).
//! - `metrics.rs`: `devicecontroller_*`.
//! - `error.rs`: [`DeviceControllerError`].

mod attributes;
mod downstream;
mod error;
mod metrics;
mod models;
mod upstream;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use beehive::{Bus, Module, ModuleContext, ModuleError};
use crds::Device;
use kube::api::{Patch, PatchParams};
use kube::Api;
use prometheus_client::registry::Registry;
use proto::modules::cloud;
use proto::twin::{StateResult, TwinResult};
use proto::Message;
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::scope::{Change, ChangeKind, EdgeKind, EdgeObject, Scope};
use downstream::{EdgeVersions, Out, Seen};
pub use error::{DeviceControllerError, Result};
use metrics::Metrics;
use models::ModelKey;
use upstream::Report;

/// The DeviceController beehive module.
pub struct DeviceController {
    client: kube::Client,
    scope: Scope,
    metrics: Metrics,
}

impl std::fmt::Debug for DeviceController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceController").finish_non_exhaustive()
    }
}

impl DeviceController {
    /// A controller using `client` and the shared reflectors of `scope`
    /// (for Devices and DeviceModels), its metrics registered in `registry`.
    pub fn new(client: kube::Client, scope: Scope, registry: &mut Registry) -> Self {
        DeviceController {
            client,
            scope,
            metrics: Metrics::register(registry),
        }
    }
}

/// The state the module's task owns.
struct State {
    client: kube::Client,
    bus: Bus,
    metrics: Metrics,
    scope: Scope,
    seen: HashMap<String, Seen>,
    /// Per node, the DeviceModels sent to it, as sent.
    models: HashMap<String, BTreeMap<ModelKey, EdgeObject>>,
    edge: EdgeVersions,
}

#[async_trait]
impl Module for DeviceController {
    fn name(&self) -> &str {
        cloud::DEVICECONTROLLER
    }

    fn group(&self) -> &str {
        cloud::DEVICECONTROLLER
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> std::result::Result<(), ModuleError> {
        let cancel = ctx.cancellation_token().clone();
        // Subscribed before the stores are first read: what changed before
        // is in them (or a relist still to come reports it), what changes
        // after arrives as a change.
        let mut changes = Some(self.scope.subscribe());
        let mut state = State {
            client: self.client.clone(),
            bus: ctx.bus().clone(),
            metrics: self.metrics.clone(),
            scope: self.scope.clone(),
            seen: HashMap::new(),
            models: HashMap::new(),
            edge: EdgeVersions::new(),
        };
        state.reconcile().await;
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                msg = ctx.mailbox().recv() => match msg {
                    Some(msg) => state.on_upstream(msg).await,
                    None => return Ok(()),
                },
                change = next_change(&mut changes) => state.on_scope(change).await,
            }
        }
    }
}

/// The next change of the shared reflectors; never completes once the
/// broadcast is closed. After `Lagged` the changes still queued are
/// skipped: each is in the stores already (or a relist still to come
/// reports it), and the caller reconciles from the stores, so replaying
/// them would only send older states again.
async fn next_change(
    changes: &mut Option<broadcast::Receiver<Change>>,
) -> std::result::Result<Change, broadcast::error::RecvError> {
    let Some(rx) = changes.as_mut() else {
        return std::future::pending().await;
    };
    let change = rx.recv().await;
    match change {
        Err(broadcast::error::RecvError::Closed) => *changes = None,
        Err(broadcast::error::RecvError::Lagged(_)) => *rx = rx.resubscribe(),
        Ok(_) => {}
    }
    change
}

impl State {
    /// Every Device in the store as it is now, every device sent before and
    /// gone from the store as deleted (its deletion was missed), and every
    /// node's DeviceModels.
    async fn reconcile(&mut self) {
        let devices = self.scope.devices();
        let listed: HashSet<String> = devices.iter().map(|d| downstream::device_id(d)).collect();
        for device in &devices {
            self.changed(device, false).await;
        }
        let gone: Vec<String> = self
            .seen
            .keys()
            .filter(|id| !listed.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            let (namespace, name) = id.split_once('/').unwrap_or(("default", &id));
            let mut device = Device::new(name, crds::DeviceSpec::default());
            device.metadata.namespace = Some(namespace.to_owned());
            self.changed(&device, true).await;
        }
        for node in self.model_nodes(None) {
            self.sync_models(&node).await;
        }
    }

    /// A Device change of the shared reflectors.
    async fn on_device(&mut self, what: ChangeKind) {
        let (object, deleted) = match what {
            ChangeKind::Applied { object, .. } => (object, false),
            ChangeKind::Deleted { object, .. } => (object, true),
            ChangeKind::Relisted => return self.reconcile().await,
        };
        match Device::deserialize(object.json.as_ref()) {
            Ok(device) => self.changed(&device, deleted).await,
            Err(err) => {
                self.metrics.error("malformed");
                tracing::warn!(name = object.name, error = %err, "a Device change that is not a Device");
            }
        }
    }

    async fn changed(&mut self, device: &Device, deleted: bool) {
        let id = downstream::device_id(device);
        let prev = self.seen.get(&id);
        let now = downstream::seen(prev, device);
        let out = downstream::plan(prev, &now, device, deleted, &self.edge, proto::now_millis());
        let removed: BTreeSet<String> = prev
            .filter(|_| !deleted)
            .map(|p| p.properties.difference(&now.properties).cloned().collect())
            .unwrap_or_default();
        let mut nodes: BTreeSet<String> = prev.and_then(|p| p.node.clone()).into_iter().collect();
        if deleted {
            self.seen.remove(&id);
            self.edge.retain(|(d, _), _| *d != id);
        } else {
            nodes.extend(now.node.clone());
            self.seen.insert(id.clone(), now);
        }
        for o in out {
            tracing::debug!(device = %id, resource = %o.msg.resource(), msg_id = o.msg.id(), kind = o.kind, "to the edge");
            self.send(o).await;
        }
        for node in nodes {
            self.sync_models(&node).await;
        }
        if !removed.is_empty() {
            let result = self
                .patch(&id, "pruned", |s| Ok(upstream::prune_patch(s, &removed)))
                .await;
            if let Err(err) = result {
                self.metrics.error(err.kind());
                tracing::warn!(device = %id, error = %daemonkit::launch::error_chain(&err), "status twins of removed properties not pruned");
            }
        }
    }

    /// Brings `node`'s DeviceModels in line with its devices' references.
    async fn sync_models(&mut self, node: &str) {
        let wanted: BTreeSet<ModelKey> = self
            .seen
            .values()
            .filter(|s| s.node.as_deref() == Some(node))
            .filter_map(|s| s.model.clone())
            .collect();
        let sent = self.models.entry(node.to_owned()).or_default();
        let scope = &self.scope;
        let out = models::sync(
            node,
            &wanted,
            |(ns, name)| scope.get(EdgeKind::DeviceModel, ns, name),
            sent,
        );
        if sent.is_empty() {
            self.models.remove(node);
        }
        for o in out {
            tracing::debug!(node, resource = %o.msg.resource(), msg_id = o.msg.id(), op = %o.msg.operation().as_str(), "devicemodel to the edge");
            self.send(o).await;
        }
    }

    /// The nodes that have or want the model `key`; every node with a
    /// device or a model when `key` is None.
    fn model_nodes(&self, key: Option<&ModelKey>) -> BTreeSet<String> {
        let wants = |s: &&Seen| key.is_none() || s.model.as_ref() == key;
        let has = |m: &BTreeMap<ModelKey, EdgeObject>| key.is_none_or(|k| m.contains_key(k));
        self.seen
            .values()
            .filter(wants)
            .filter_map(|s| s.node.clone())
            .chain(
                self.models
                    .iter()
                    .filter(|(_, m)| has(m))
                    .map(|(node, _)| node.clone()),
            )
            .collect()
    }

    /// A change of the shared reflectors: Devices as [`Self::on_device`];
    /// DeviceModels are sent again to the nodes concerned (all of them
    /// after a relist); a lagging receiver reconciles everything.
    async fn on_scope(&mut self, change: std::result::Result<Change, broadcast::error::RecvError>) {
        let nodes = match change {
            Ok(Change {
                kind: EdgeKind::Device,
                what,
            }) => return self.on_device(what).await,
            Ok(Change {
                kind: EdgeKind::DeviceModel,
                what: ChangeKind::Applied { object, .. } | ChangeKind::Deleted { object, .. },
            }) => {
                let key = (
                    object.namespace.clone().unwrap_or_default(),
                    object.name.clone(),
                );
                self.model_nodes(Some(&key))
            }
            Ok(Change {
                kind: EdgeKind::DeviceModel,
                what: ChangeKind::Relisted,
            }) => self.model_nodes(None),
            Ok(_) | Err(broadcast::error::RecvError::Closed) => return,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::info!(
                    missed,
                    "device controller lagged behind the shared reflectors; reconciling"
                );
                return self.reconcile().await;
            }
        };
        for node in nodes {
            self.sync_models(&node).await;
        }
    }

    async fn send(&self, out: Out) {
        match self.bus.send(cloud::CLOUDHUB, out.msg).await {
            Ok(()) => self.metrics.down(out.kind),
            Err(err) => {
                let err = DeviceControllerError::from(err);
                self.metrics.error(err.kind());
                tracing::warn!(error = %err, "cloudhub did not take a device message");
            }
        }
    }

    async fn on_upstream(&mut self, msg: Message) {
        let resource = msg.resource().to_owned();
        let result = match upstream::classify(&resource) {
            Report::Detail { node } => {
                self.detail(&node, &msg).await;
                Ok(())
            }
            Report::Twins { node, id } => self.twins(&node, &id, &msg).await,
            Report::State { node, id } => self.state(&node, &id, &msg).await,
            Report::Other => {
                tracing::debug!(resource, "ignoring a device message");
                Ok(())
            }
        };
        if let Err(err) = result {
            self.metrics.error(err.kind());
            tracing::warn!(resource, error = %daemonkit::launch::error_chain(&err), "device report not applied");
        }
    }

    async fn detail(&self, node: &str, request: &Message) {
        let devices = self
            .scope
            .devices_on(node)
            .iter()
            .map(|d| downstream::edge_device(d, &self.edge))
            .collect();
        tracing::info!(node, "answering the membership detail");
        let out = downstream::membership_detail(node, request, devices, proto::now_millis());
        self.send(out).await;
    }

    fn api(&self, id: &str) -> (Api<Device>, String) {
        let (namespace, name) = id.split_once('/').unwrap_or(("default", id));
        (
            Api::namespaced(self.client.clone(), namespace),
            name.to_owned(),
        )
    }

    /// Merge-patches `id`'s status with what `patch` makes of the status
    /// as the API has it now (nothing when `patch` says None). The status is
    /// read with a GET, not from the Device reflector: `status.twins` is a
    /// list, which a merge patch replaces whole, and the reflector may not
    /// yet show this controller's previous patch (two reports in a row
    /// would then lose the first one's twin).
    async fn patch(
        &self,
        id: &str,
        cause: &'static str,
        patch: impl FnOnce(&crds::DeviceStatus) -> Result<Option<serde_json::Value>>,
    ) -> Result<()> {
        let (api, name) = self.api(id);
        let kube = |source| DeviceControllerError::Kube {
            device: id.to_owned(),
            source,
        };
        let current = api.get_status(&name).await.map_err(kube)?;
        let Some(body) = patch(&current.status.unwrap_or_default())? else {
            tracing::debug!(device = id, cause, "status already up to date");
            return Ok(());
        };
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(kube)?;
        self.metrics.patched(cause);
        tracing::debug!(device = id, cause, "status patched");
        Ok(())
    }

    async fn twins(&mut self, node: &str, id: &str, msg: &Message) -> Result<()> {
        let report: TwinResult = upstream::parse(msg.resource(), msg.content_json())?;
        for (property, edge) in upstream::edge_versions(&report) {
            self.edge.insert((id.to_owned(), property), edge);
        }
        tracing::debug!(node, device = id, "twin report");
        self.patch(id, "twins", |s| Ok(upstream::twins_patch(s, &report)))
            .await
    }

    async fn state(&self, node: &str, id: &str, msg: &Message) -> Result<()> {
        let report: StateResult = upstream::parse(msg.resource(), msg.content_json())?;
        tracing::debug!(node, device = id, "state report");
        let resource = msg.resource();
        self.patch(id, "state", |s| upstream::state_patch(resource, s, &report))
            .await
    }
}
