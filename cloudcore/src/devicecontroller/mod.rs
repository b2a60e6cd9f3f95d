//! DeviceController: Devices in the Kubernetes API ⇄ DeviceTwin on edge
//! nodes (reference §5, §7).
//!
//! One task owns the state: a kube-rs reflector over Devices (all
//! namespaces), what was last sent per device, and the twins' edge
//! versions. Watch events become membership, `twin/cloud_updated` and
//! Device object messages to CloudHub (`downstream.rs`); `edge_updated`
//! and `state/update` from the edges become merge patches of
//! `Device.status` through the status subresource (`upstream.rs`); the
//! edges' `membership/detail` requests are answered from the reflector.
//!
//! # Layout
//!
//! - `downstream.rs`: Device → messages (pure).
//! - `upstream.rs`: reports → status patches (pure).
//! - `metrics.rs`: `devicecontroller_*`.
//! - `error.rs`: [`DeviceControllerError`].

mod downstream;
mod error;
mod metrics;
mod upstream;

use std::collections::{HashMap, HashSet};
use std::pin::pin;

use async_trait::async_trait;
use beehive::{Bus, Module, ModuleContext, ModuleError};
use crds::Device;
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use prometheus_client::registry::Registry;
use proto::modules::cloud;
use proto::twin::{StateResult, TwinResult};
use proto::Message;

use downstream::{EdgeVersions, Out, Seen};
pub use error::{DeviceControllerError, Result};
use metrics::Metrics;
use upstream::Report;

/// The DeviceController beehive module.
pub struct DeviceController {
    client: kube::Client,
    metrics: Metrics,
}

impl std::fmt::Debug for DeviceController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceController").finish_non_exhaustive()
    }
}

impl DeviceController {
    /// A controller using `client`, its metrics registered in `registry`.
    pub fn new(client: kube::Client, registry: &mut Registry) -> Self {
        DeviceController {
            client,
            metrics: Metrics::register(registry),
        }
    }
}

/// The state the module's task owns.
struct State {
    client: kube::Client,
    bus: Bus,
    metrics: Metrics,
    store: Store<Device>,
    seen: HashMap<String, Seen>,
    edge: EdgeVersions,
    /// Devices listed since the last `Init` (to find deletions missed while
    /// the watch was down).
    relisted: HashSet<String>,
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
        let (store, writer) = reflector::store();
        let api: Api<Device> = Api::all(self.client.clone());
        let mut events = pin!(watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer));
        let mut state = State {
            client: self.client.clone(),
            bus: ctx.bus().clone(),
            metrics: self.metrics.clone(),
            store,
            seen: HashMap::new(),
            edge: EdgeVersions::new(),
            relisted: HashSet::new(),
        };
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                event = events.next() => match event {
                    Some(Ok(event)) => state.on_event(event).await,
                    Some(Err(err)) => {
                        state.metrics.error("watch");
                        tracing::warn!(error = %err, "device watch failed; retrying");
                    }
                    None => return Ok(()),
                },
                msg = ctx.mailbox().recv() => match msg {
                    Some(msg) => state.on_upstream(msg).await,
                    None => return Ok(()),
                },
            }
        }
    }
}

fn watcher(
    api: Api<Device>,
    config: watcher::Config,
) -> impl futures::Stream<Item = std::result::Result<Event<Device>, watcher::Error>> {
    kube::runtime::watcher(api, config)
}

impl State {
    async fn on_event(&mut self, event: Event<Device>) {
        match event {
            Event::Init => self.relisted.clear(),
            Event::InitApply(device) => {
                self.relisted.insert(downstream::device_id(&device));
                self.changed(&device, false).await;
            }
            Event::InitDone => {
                let gone: Vec<String> = self
                    .seen
                    .keys()
                    .filter(|id| !self.relisted.contains(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    let (namespace, name) = id.split_once('/').unwrap_or(("default", &id));
                    let mut device = Device::new(name, crds::DeviceSpec::default());
                    device.metadata.namespace = Some(namespace.to_owned());
                    self.changed(&device, true).await;
                }
            }
            Event::Apply(device) => self.changed(&device, false).await,
            Event::Delete(device) => self.changed(&device, true).await,
        }
    }

    async fn changed(&mut self, device: &Device, deleted: bool) {
        let id = downstream::device_id(device);
        let out = downstream::plan(
            self.seen.get(&id),
            device,
            deleted,
            &self.edge,
            proto::now_millis(),
        );
        if deleted {
            self.seen.remove(&id);
            self.edge.retain(|(d, _), _| *d != id);
        } else {
            self.seen.insert(id.clone(), downstream::seen(device));
        }
        for o in out {
            tracing::debug!(device = %id, resource = %o.msg.resource(), kind = o.kind, "to the edge");
            self.send(o).await;
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
            .store
            .state()
            .iter()
            .filter(|d| downstream::node_of(d).as_deref() == Some(node))
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
