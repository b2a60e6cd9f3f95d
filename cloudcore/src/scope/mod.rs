//! What each edge node may have: shared kube-rs reflectors over the kinds
//! that go down to edges (Nodes, Pods, ConfigMaps, Secrets, Devices,
//! DeviceModels) and the questions the controllers ask of them.
//!
//! One watcher per kind feeds a reflector [`Store`]; every event is also
//! broadcast as a [`Change`] so that controllers react without watching
//! again. A controller that lags behind the broadcast (or sees
//! [`ChangeKind::Relisted`]) reconciles from the stores, which are the
//! truth. EdgeController sends objects as they change, SyncController
//! compares each node's [`objects_for`](Scope::objects_for) with what the
//! node acked, node authorization asks [`nodes_for`](Scope::nodes_for).
//!
//! A node's scope, as KubeEdge defines it: for an edge node (label
//! [`EDGE_NODE_LABEL`]) its own Node, the pods bound to it
//! (`spec.nodeName`) and the configmaps and secrets those pods reference;
//! for any node the Devices whose `spec.nodeName` names it and their
//! DeviceModels.
//!
//! # Layout
//!
//! - `mod.rs`: [`Scope`]: the reflectors, the broadcast, the queries.
//! - `object.rs`: [`EdgeObject`], [`EdgeKind`]: an object as sent down.
//! - `refs.rs`: pure answers about one object (edge label, binding,
//!   references).

mod object;
mod refs;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;

use crds::{Device, DeviceModel};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use object::{EdgeKind, EdgeObject};
pub use refs::{is_edge_node, pod_configmaps, pod_node, pod_secrets, EDGE_NODE_LABEL};

/// Changes buffered for slow subscribers before they lag.
const CHANGE_CAPACITY: usize = 4096;

/// One watch event, as the controllers see it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The kind it is about.
    pub kind: EdgeKind,
    /// What happened.
    pub what: ChangeKind,
}

/// What happened to an object.
#[derive(Debug, Clone)]
pub enum ChangeKind {
    /// Created or changed (also each object of a relist).
    Applied {
        /// The object now.
        object: EdgeObject,
        /// The node it is bound to: a pod's or device's `spec.nodeName`, a
        /// Node's own name; `None` for configmaps, secrets and models.
        bound_to: Option<String>,
    },
    /// Deleted.
    Deleted {
        /// The object as last seen.
        object: EdgeObject,
        /// As for `Applied`.
        bound_to: Option<String>,
    },
    /// A relist of the kind finished: the store is complete again and
    /// deletions during a watch outage are visible only by comparing.
    Relisted,
}

/// The shared reflectors; cheap to clone.
#[derive(Clone)]
pub struct Scope {
    nodes: Store<Node>,
    pods: Store<Pod>,
    configmaps: Store<ConfigMap>,
    secrets: Store<Secret>,
    devices: Store<Device>,
    models: Store<DeviceModel>,
    changes: broadcast::Sender<Change>,
}

impl Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("nodes", &self.nodes.state().len())
            .field("pods", &self.pods.state().len())
            .finish_non_exhaustive()
    }
}

impl Scope {
    /// Starts one watcher per kind on `client` (all namespaces), tracked by
    /// `tracker` and stopped by `cancel`.
    pub fn start(client: &kube::Client, tracker: &TaskTracker, cancel: &CancellationToken) -> Self {
        let (changes, _) = broadcast::channel(CHANGE_CAPACITY);
        Scope {
            nodes: reflect(
                client,
                tracker,
                cancel,
                &changes,
                EdgeKind::Node,
                |n: &Node| Some(n.name_any()),
            ),
            pods: reflect(
                client,
                tracker,
                cancel,
                &changes,
                EdgeKind::Pod,
                |p: &Pod| pod_node(p).map(str::to_owned),
            ),
            configmaps: reflect(
                client,
                tracker,
                cancel,
                &changes,
                EdgeKind::ConfigMap,
                |_| None,
            ),
            secrets: reflect(client, tracker, cancel, &changes, EdgeKind::Secret, |_| {
                None
            }),
            devices: reflect(
                client,
                tracker,
                cancel,
                &changes,
                EdgeKind::Device,
                |d: &Device| d.spec.node_name.clone().filter(|n| !n.is_empty()),
            ),
            models: reflect(
                client,
                tracker,
                cancel,
                &changes,
                EdgeKind::DeviceModel,
                |_| None,
            ),
            changes,
        }
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Waits until every kind has been listed once.
    pub async fn ready(&self) {
        self.ready_for(&EdgeKind::ALL).await;
    }

    /// Waits until each of `kinds` has been listed once: a controller that
    /// reads only those need not wait for the others (on a cluster without
    /// KubeEdge's device CRDs, Devices are never listed).
    pub async fn ready_for(&self, kinds: &[EdgeKind]) {
        let waits = kinds.iter().map(|kind| async move {
            let _ = match kind {
                EdgeKind::Node => self.nodes.wait_until_ready().await,
                EdgeKind::Pod => self.pods.wait_until_ready().await,
                EdgeKind::ConfigMap => self.configmaps.wait_until_ready().await,
                EdgeKind::Secret => self.secrets.wait_until_ready().await,
                EdgeKind::Device => self.devices.wait_until_ready().await,
                EdgeKind::DeviceModel => self.models.wait_until_ready().await,
            };
        });
        futures::future::join_all(waits).await;
    }

    /// The Node `name`.
    pub fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.nodes.get(&ObjectRef::new(name))
    }

    /// Whether `name` is a Node labelled as an edge node.
    pub fn is_edge_node(&self, name: &str) -> bool {
        self.node(name).is_some_and(|n| is_edge_node(&n))
    }

    /// The names of all edge nodes.
    pub fn edge_nodes(&self) -> BTreeSet<String> {
        self.nodes
            .state()
            .iter()
            .filter(|n| is_edge_node(n))
            .map(|n| n.name_any())
            .collect()
    }

    /// The pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        lookup(&self.pods, namespace, name)
    }

    /// The pods bound to `node`, if it is an edge node.
    pub fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        if !self.is_edge_node(node) {
            return Vec::new();
        }
        self.pods
            .state()
            .into_iter()
            .filter(|p| pod_node(p) == Some(node))
            .collect()
    }

    /// The configmaps and secrets the pods on `node` reference (each pod
    /// walked once).
    pub fn references_of(&self, node: &str) -> Referenced {
        referenced(&self.pods_on(node))
    }

    /// Every Device (DeviceController compares them all with what it sent
    /// after a relist or a lag).
    pub fn devices(&self) -> Vec<Arc<Device>> {
        self.devices.state()
    }

    /// The Devices whose `spec.nodeName` is `node`.
    pub fn devices_on(&self, node: &str) -> Vec<Arc<Device>> {
        self.devices
            .state()
            .into_iter()
            .filter(|d| d.spec.node_name.as_deref() == Some(node))
            .collect()
    }

    /// `(namespace, name)` of the DeviceModels of the devices on `node`.
    pub fn models_for(&self, node: &str) -> BTreeSet<(String, String)> {
        models_of(&self.devices_on(node))
    }

    /// The object of `kind` named `namespace/name` (namespace ignored for
    /// Nodes), as sent to edges.
    pub fn get(&self, kind: EdgeKind, namespace: &str, name: &str) -> Option<EdgeObject> {
        match kind {
            EdgeKind::Node => edge_object(kind, self.node(name)),
            EdgeKind::Pod => edge_object(kind, self.pod(namespace, name)),
            EdgeKind::ConfigMap => edge_object(kind, lookup(&self.configmaps, namespace, name)),
            EdgeKind::Secret => edge_object(kind, lookup(&self.secrets, namespace, name)),
            EdgeKind::Device => edge_object(kind, lookup(&self.devices, namespace, name)),
            EdgeKind::DeviceModel => edge_object(kind, lookup(&self.models, namespace, name)),
        }
    }

    /// Every object `node` should have now (one pass over the pods and
    /// one over the devices).
    pub fn objects_for(&self, node: &str) -> Vec<EdgeObject> {
        let mut out = Vec::new();
        if self.is_edge_node(node) {
            out.extend(edge_object(EdgeKind::Node, self.node(node)));
            let pods = self.pods_on(node);
            let refs = referenced(&pods);
            out.extend(
                pods.into_iter()
                    .filter_map(|p| edge_object(EdgeKind::Pod, Some(p))),
            );
            for (ns, name) in &refs.configmaps {
                out.extend(self.get(EdgeKind::ConfigMap, ns, name));
            }
            for (ns, name) in &refs.secrets {
                out.extend(self.get(EdgeKind::Secret, ns, name));
            }
        }
        let devices = self.devices_on(node);
        for (ns, name) in models_of(&devices) {
            out.extend(self.get(EdgeKind::DeviceModel, &ns, &name));
        }
        out.extend(
            devices
                .into_iter()
                .filter_map(|d| edge_object(EdgeKind::Device, Some(d))),
        );
        out
    }

    /// The nodes that should have the object of `kind` named
    /// `namespace/name` (whether or not it exists now).
    pub fn nodes_for(&self, kind: EdgeKind, namespace: &str, name: &str) -> BTreeSet<String> {
        match kind {
            EdgeKind::Node => BTreeSet::from_iter(self.is_edge_node(name).then(|| name.to_owned())),
            EdgeKind::Pod => self
                .pod(namespace, name)
                .and_then(|p| pod_node(&p).map(str::to_owned))
                .filter(|node| self.is_edge_node(node))
                .into_iter()
                .collect(),
            EdgeKind::ConfigMap => self.nodes_referencing(namespace, name, pod_configmaps),
            EdgeKind::Secret => self.nodes_referencing(namespace, name, pod_secrets),
            EdgeKind::Device => lookup(&self.devices, namespace, name)
                .and_then(|d| d.spec.node_name.clone())
                .into_iter()
                .collect(),
            EdgeKind::DeviceModel => self
                .devices
                .state()
                .iter()
                .filter(|d| {
                    d.namespace().as_deref() == Some(namespace)
                        && d.spec
                            .device_model_ref
                            .as_ref()
                            .is_some_and(|m| m.name == name)
                })
                .filter_map(|d| d.spec.node_name.clone())
                .collect(),
        }
    }

    fn nodes_referencing(
        &self,
        namespace: &str,
        name: &str,
        refs: fn(&Pod) -> BTreeSet<String>,
    ) -> BTreeSet<String> {
        let edge = self.edge_nodes();
        self.pods
            .state()
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace))
            .filter(|p| refs(p).contains(name))
            .filter_map(|p| pod_node(p).map(str::to_owned))
            .filter(|node| edge.contains(node))
            .collect()
    }
}

/// `(namespace, name)` of the configmaps and secrets `pods` reference,
/// each pod walked once.
fn referenced(pods: &[Arc<Pod>]) -> Referenced {
    let mut out = Referenced::default();
    for pod in pods {
        let ns = pod.namespace().unwrap_or_default();
        let refs = refs::pod_refs(pod);
        let within = |name| (ns.clone(), name);
        out.configmaps
            .extend(refs.configmaps.into_iter().map(within));
        out.secrets.extend(refs.secrets.into_iter().map(within));
    }
    out
}

/// What a set of pods references, as `(namespace, name)`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Referenced {
    /// The configmaps.
    pub configmaps: BTreeSet<(String, String)>,
    /// The secrets.
    pub secrets: BTreeSet<(String, String)>,
}

/// `(namespace, name)` of the DeviceModels `devices` reference.
fn models_of(devices: &[Arc<Device>]) -> BTreeSet<(String, String)> {
    devices
        .iter()
        .filter_map(|d| {
            let model = d.spec.device_model_ref.as_ref()?;
            Some((d.namespace().unwrap_or_default(), model.name.clone()))
        })
        .collect()
}

/// The namespaced object `namespace/name` in `store`.
fn lookup<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

fn edge_object<K>(kind: EdgeKind, obj: Option<Arc<K>>) -> Option<EdgeObject>
where
    K: Resource + Serialize,
{
    let obj = obj?;
    EdgeObject::new(kind, obj.meta(), &*obj)
}

/// Starts the watcher + reflector of one kind and broadcasts its events;
/// `bound` says which node an object is bound to.
fn reflect<K>(
    client: &kube::Client,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
    changes: &broadcast::Sender<Change>,
    kind: EdgeKind,
    bound: fn(&K) -> Option<String>,
) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Serialize + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (store, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let (cancel, changes) = (cancel.clone(), changes.clone());
    tracker.spawn(async move {
        let mut events = pin!(kube::runtime::watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer));
        loop {
            let event = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                event = events.next() => event,
            };
            let what = match event {
                None => return,
                Some(Err(err)) => {
                    tracing::warn!(kind = kind.kind(), error = %err, "watch failed; retrying");
                    continue;
                }
                Some(Ok(Event::Init)) => continue,
                Some(Ok(Event::InitDone)) => ChangeKind::Relisted,
                Some(Ok(Event::Apply(obj) | Event::InitApply(obj))) => {
                    let Some(object) = EdgeObject::new(kind, obj.meta(), &obj) else {
                        continue;
                    };
                    ChangeKind::Applied {
                        object,
                        bound_to: bound(&obj),
                    }
                }
                Some(Ok(Event::Delete(obj))) => {
                    let Some(object) = EdgeObject::new(kind, obj.meta(), &obj) else {
                        continue;
                    };
                    ChangeKind::Deleted {
                        object,
                        bound_to: bound(&obj),
                    }
                }
            };
            // Nobody listening yet is fine: the stores hold the state.
            let _ = changes.send(Change { kind, what });
        }
    });
    store
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures are known to parse")]

    use serde_json::json;

    use super::*;

    /// A store holding `objects` (as a finished list).
    fn store_of<K>(objects: Vec<serde_json::Value>) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + 'static,
        K::DynamicType: Default + Eq + Hash + Clone,
    {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for object in objects {
            writer.apply_watcher_event(&Event::InitApply(serde_json::from_value(object).unwrap()));
        }
        writer.apply_watcher_event(&Event::InitDone);
        store
    }

    fn meta(name: &str, rv: &str) -> serde_json::Value {
        json!({"name": name, "namespace": "ns", "uid": format!("u-{name}"), "resourceVersion": rv})
    }

    fn scope() -> Scope {
        let edge = json!({EDGE_NODE_LABEL: ""});
        Scope {
            nodes: store_of(vec![
                json!({"metadata": {"name": "a", "labels": edge, "uid": "n-a", "resourceVersion": "1"}}),
                json!({"metadata": {"name": "b", "labels": edge, "uid": "n-b", "resourceVersion": "1"}}),
                json!({"metadata": {"name": "cloud", "uid": "n-c", "resourceVersion": "1"}}),
            ]),
            pods: store_of(vec![
                json!({"metadata": meta("p1", "2"), "spec": {"nodeName": "a", "containers": [{
                    "name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "s"}}]
                }]}}),
                json!({"metadata": meta("p2", "3"), "spec": {"nodeName": "a", "containers": [],
                    "volumes": [{"name": "v", "configMap": {"name": "cm"}}]}}),
                json!({"metadata": meta("p3", "4"), "spec": {"nodeName": "cloud", "containers": [],
                    "volumes": [{"name": "v", "secret": {"secretName": "s-cloud"}}]}}),
            ]),
            configmaps: store_of(vec![json!({"metadata": meta("cm", "5")})]),
            secrets: store_of(vec![
                json!({"metadata": meta("s", "6")}),
                json!({"metadata": meta("s-cloud", "7")}),
            ]),
            devices: store_of(vec![json!({"metadata": meta("d", "8"),
                "spec": {"nodeName": "b", "deviceModelRef": {"name": "m"}}})]),
            models: store_of(vec![json!({"metadata": meta("m", "9"), "spec": {}})]),
            changes: broadcast::channel(1).0,
        }
    }

    fn names(objects: &[EdgeObject]) -> Vec<(EdgeKind, String)> {
        let mut out: Vec<_> = objects.iter().map(|o| (o.kind, o.name.clone())).collect();
        out.sort();
        out
    }

    #[test]
    fn a_node_gets_its_node_pods_and_what_they_use() {
        let scope = scope();
        assert_eq!(
            names(&scope.objects_for("a")),
            [
                (EdgeKind::Node, "a".to_owned()),
                (EdgeKind::Pod, "p1".to_owned()),
                (EdgeKind::Pod, "p2".to_owned()),
                (EdgeKind::ConfigMap, "cm".to_owned()),
                (EdgeKind::Secret, "s".to_owned()),
            ]
        );
        assert_eq!(
            names(&scope.objects_for("b")),
            [
                (EdgeKind::Node, "b".to_owned()),
                (EdgeKind::Device, "d".to_owned()),
                (EdgeKind::DeviceModel, "m".to_owned()),
            ]
        );
        // Not an edge node: its pods and their secrets stay in the cloud.
        assert!(scope.objects_for("cloud").is_empty());
        let refs = scope.references_of("a");
        assert_eq!(refs.secrets, BTreeSet::from([("ns".into(), "s".into())]));
        assert_eq!(
            refs.configmaps,
            BTreeSet::from([("ns".into(), "cm".into())])
        );
        assert_eq!(scope.references_of("cloud"), Referenced::default());
    }

    #[test]
    fn objects_know_their_nodes() {
        let scope = scope();
        let nodes = |kind, name| {
            scope
                .nodes_for(kind, "ns", name)
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(nodes(EdgeKind::ConfigMap, "cm"), ["a"]);
        assert_eq!(nodes(EdgeKind::Secret, "s"), ["a"]);
        assert!(nodes(EdgeKind::Secret, "s-cloud").is_empty());
        assert!(nodes(EdgeKind::Pod, "p3").is_empty());
        assert_eq!(nodes(EdgeKind::DeviceModel, "m"), ["b"]);
        assert_eq!(nodes(EdgeKind::Device, "d"), ["b"]);
        assert_eq!(nodes(EdgeKind::Node, "a"), ["a"]);
        assert!(nodes(EdgeKind::Node, "cloud").is_empty());
        assert_eq!(
            scope
                .get(EdgeKind::Secret, "ns", "s")
                .unwrap()
                .resource_version,
            "6"
        );
    }
}
