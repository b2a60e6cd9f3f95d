//! The Kubernetes side of EdgeController: what an edge's [`Request`] does
//! to the API (kube-rs), and the node conditions set to `Unknown` when a
//! node's link is gone.
//!
//! Status writes are read-modify-write through the status subresource
//! with the object's resourceVersion, retried on conflict, so a report and
//! a readiness change never overwrite each other; whether the node is
//! connected is read inside each attempt. The first attempt starts from
//! the reflector's copy ([`Scope`]) instead of a GET; a stale copy costs a
//! conflict and a fresh read, and "nothing to write" is only ever decided
//! on a fresh read.

use std::fmt::Debug;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, NodeStatus, Pod, Secret, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::error::{EdgeControllerError, Result};
use super::status;
use super::upstream::{PodStatusReport, Queried, Request, Upstream};
use crate::cloudhub::NodeLinks;
use crate::scope::{Scope, EDGE_NODE_LABEL};

/// Attempts of a read-modify-write before giving up on conflicts.
const ATTEMPTS: u32 = 5;

/// What a request came to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Done {
    /// Done; this is the object as the API has it now.
    Object(Value),
    /// Nothing to do (a reply from the edge, a report about another
    /// incarnation of a pod).
    Ignored,
}

/// The kube-rs client and what the requests need besides.
#[derive(Clone)]
pub(crate) struct KubeSide {
    pub(crate) client: kube::Client,
    pub(crate) links: NodeLinks,
    /// The reflectors: the first read of a status read-modify-write.
    pub(crate) scope: Scope,
    /// Told of a node whose store is new (see [`NewEdgeStore`]).
    pub(crate) new_store: Option<NewEdgeStore>,
}

/// What to do when a node registers with a new store (its Node carries
/// [`proto::modules::EDGE_STORE_ANNOTATION`]): the daemon makes
/// SyncController forget what it recorded as delivered to that node.
pub type NewEdgeStore = Arc<dyn Fn(&str) + Send + Sync>;

impl KubeSide {
    /// Carries out `up` (from `node`'s session).
    pub(crate) async fn apply(&self, up: &Upstream) -> Result<Done> {
        let name = up.name.as_deref().unwrap_or_default();
        let ns = up.namespace.as_str();
        let object = |v: Result<Value>| v.map(Done::Object);
        match &up.request {
            Request::RegisterNode(node) => {
                object(self.register(&up.node, name, (**node).clone()).await)
            }
            Request::UpdateNode(node) => object(self.update_node(name, node).await),
            Request::QueryNode => {
                object(get(&Api::<Node>::all(self.client.clone()), name, "get node").await)
            }
            Request::NodeStatus(reported) => {
                object(self.node_status(&up.node, name, (**reported).clone()).await)
            }
            Request::NodePatch(patch) => {
                let api: Api<Node> = Api::all(self.client.clone());
                let patched = api
                    .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
                    .await
                    .map_err(kube("patch node status", name))?;
                Ok(Done::Object(to_json(&patched)))
            }
            Request::Lease(lease) => object(self.lease(ns, name, lease).await),
            Request::QueryLease => object(self.get_in::<Lease>(ns, name, "get lease").await),
            Request::PodStatus(reports) => self.pod_statuses(ns, reports).await,
            Request::PodPatch(patch) => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
                let patched = api
                    .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
                    .await
                    .map_err(kube("patch pod status", format!("{ns}/{name}")))?;
                Ok(Done::Object(to_json(&patched)))
            }
            Request::Event { operation, event } => object(self.event(ns, operation, event).await),
            Request::Query(Queried::ConfigMap) => {
                object(self.get_in::<ConfigMap>(ns, name, "get configmap").await)
            }
            Request::Query(Queried::Secret) => {
                object(self.get_in::<Secret>(ns, name, "get secret").await)
            }
            Request::ServiceAccountToken(request) => object(self.token(ns, name, request).await),
            Request::Reply => Ok(Done::Ignored),
        }
    }

    /// `ns/name` of kind `K`, as JSON.
    async fn get_in<K>(&self, ns: &str, name: &str, call: &'static str) -> Result<Value>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
        K::DynamicType: Default,
    {
        get(&Api::<K>::namespaced(self.client.clone(), ns), name, call).await
    }

    /// Creates the Node `name` with the edge label; an existing Node is
    /// answered as it is.
    async fn register(&self, sender: &str, name: &str, mut node: Node) -> Result<Value> {
        let api: Api<Node> = Api::all(self.client.clone());
        let meta = &mut node.metadata;
        let store = meta
            .annotations
            .as_mut()
            .and_then(|a| a.remove(proto::modules::EDGE_STORE_ANNOTATION));
        if store.as_deref() == Some(proto::modules::NEW_EDGE_STORE) {
            tracing::info!(
                node = name,
                "the edge's store is new: everything is sent again"
            );
            if let Some(forget) = &self.new_store {
                forget(name);
            }
        }
        meta.name = Some(name.to_owned());
        meta.resource_version = None;
        meta.uid = None;
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(EDGE_NODE_LABEL.to_owned(), String::new());
        let reported = node.status.clone();
        match api.create(&PostParams::default(), &node).await {
            Ok(created) => {
                tracing::info!(node = name, uid = ?created.metadata.uid, "edge node registered");
                let kept = status::condition(created.status.as_ref(), status::READY).is_some();
                match reported.filter(|_| !kept) {
                    // The API dropped the status a create carried.
                    Some(reported) => self.node_status(sender, name, reported).await,
                    None => Ok(to_json(&created)),
                }
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::debug!(node = name, "node exists; answering with it");
                get(&api, name, "get node").await
            }
            Err(err) => Err(kube("create node", name)(err)),
        }
    }

    /// Merges the edge's labels and annotations into the Node.
    async fn update_node(&self, name: &str, node: &Node) -> Result<Value> {
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"metadata": {
            "labels": node.metadata.labels,
            "annotations": node.metadata.annotations,
        }});
        let patched = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube("patch node", name))?;
        Ok(to_json(&patched))
    }

    /// Writes a status report of `name` that came over `sender`'s session.
    async fn node_status(&self, sender: &str, name: &str, reported: NodeStatus) -> Result<Value> {
        let api: Api<Node> = Api::all(self.client.clone());
        let cached = self.scope.node(name);
        let written = replace_status(&api, name, "replace node status", cached, |node| {
            let connected = self.links.is_connected(sender);
            node.status = Some(status::merged(
                node.status.as_ref(),
                reported.clone(),
                connected,
                Timestamp::now(),
            ));
            true
        })
        .await?;
        Ok(to_json(&written))
    }

    /// Sets the edge's conditions of Node `name` to `Unknown` unless it is
    /// connected (again) or already so; true if it wrote.
    pub(crate) async fn mark_unknown(&self, name: &str) -> Result<bool> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut wrote = false;
        let cached = self.scope.node(name);
        replace_status(&api, name, "mark node unknown", cached, |node| {
            wrote = !self.links.is_connected(name)
                && status::mark_unknown(
                    node.status.get_or_insert_with(Default::default),
                    Timestamp::now(),
                );
            wrote
        })
        .await?;
        Ok(wrote)
    }

    /// Creates the Lease, or replaces the spec (and owner) of the one there.
    async fn lease(&self, ns: &str, name: &str, lease: &Lease) -> Result<Value> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), ns);
        let target = format!("{ns}/{name}");
        for _ in 0..ATTEMPTS {
            let existing = api
                .get_opt(name)
                .await
                .map_err(kube("get lease", target.clone()))?;
            let written = match existing {
                None => {
                    let mut fresh = lease.clone();
                    fresh.metadata.name = Some(name.to_owned());
                    fresh.metadata.namespace = Some(ns.to_owned());
                    fresh.metadata.resource_version = None;
                    fresh.metadata.uid = None;
                    api.create(&PostParams::default(), &fresh).await
                }
                Some(mut current) => {
                    current.spec.clone_from(&lease.spec);
                    if lease.metadata.owner_references.is_some() {
                        current
                            .metadata
                            .owner_references
                            .clone_from(&lease.metadata.owner_references);
                    }
                    api.replace(name, &PostParams::default(), &current).await
                }
            };
            match written {
                Ok(lease) => return Ok(to_json(&lease)),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(err) => return Err(kube("write lease", target)(err)),
            }
        }
        Err(conflict("write lease", target))
    }

    /// Replaces each reported pod status, skipping pods whose UID is not
    /// the reported one.
    async fn pod_statuses(&self, ns: &str, reports: &[PodStatusReport]) -> Result<Done> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut last = Done::Ignored;
        for report in reports {
            let mut other = false;
            let cached = self.scope.pod(ns, &report.name);
            let written = replace_status(&api, &report.name, "replace pod status", cached, |pod| {
                other = report
                    .uid
                    .as_ref()
                    .is_some_and(|uid| pod.metadata.uid.as_ref() != Some(uid));
                if !other {
                    pod.status = Some((*report.status).clone());
                }
                !other
            })
            .await?;
            if other {
                tracing::debug!(pod = %report.name, namespace = ns, "status for another incarnation; ignored");
            } else {
                last = Done::Object(to_json(&written));
            }
        }
        Ok(last)
    }

    /// Creates the Event (patches it if it exists, or for `patch`).
    async fn event(&self, ns: &str, operation: &proto::Operation, event: &Value) -> Result<Value> {
        let mut event: Event = serde_json::from_value(event.clone()).map_err(|err| {
            EdgeControllerError::Malformed {
                resource: format!("{ns}/event"),
                reason: err.to_string(),
            }
        })?;
        let ns = event
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| ns.to_owned());
        let name = event.metadata.name.clone().unwrap_or_default();
        event.metadata.resource_version = None;
        event.metadata.uid = None;
        event.metadata.namespace = Some(ns.clone());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let target = format!("{ns}/{name}");
        let created = if *operation == proto::Operation::Patch {
            None
        } else {
            match api.create(&PostParams::default(), &event).await {
                Ok(created) => Some(created),
                Err(kube::Error::Api(s)) if s.code == 409 => None,
                Err(err) => return Err(kube("create event", target)(err)),
            }
        };
        let written = match created {
            Some(created) => created,
            None => api
                .patch(&name, &PatchParams::default(), &Patch::Strategic(&event))
                .await
                .map_err(kube("patch event", target))?,
        };
        Ok(to_json(&written))
    }

    /// A service account token through the TokenRequest API.
    async fn token(&self, ns: &str, name: &str, request: &Value) -> Result<Value> {
        let target = format!("{ns}/{name}");
        let request: TokenRequest = serde_json::from_value(request.clone()).map_err(|err| {
            EdgeControllerError::Malformed {
                resource: format!("{ns}/serviceaccounttoken/{name}"),
                reason: err.to_string(),
            }
        })?;
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let token: TokenRequest = api
            .create_subresource("token", name, &PostParams::default(), &request)
            .await
            .map_err(kube("create token", target))?;
        Ok(to_json(&token))
    }
}

/// Applies `change` to `name` and writes the status back with the
/// resourceVersion it was read at; again on a conflict. The first attempt
/// starts from `cached` (the reflector's copy), the others from a GET.
/// `change` returning false means nothing to write, trusted only of a
/// fresh read (a stale copy may say so wrongly).
async fn replace_status<K>(
    api: &Api<K>,
    name: &str,
    call: &'static str,
    mut cached: Option<Arc<K>>,
    mut change: impl FnMut(&mut K) -> bool,
) -> Result<K>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let mut reads = 0;
    loop {
        let (mut object, fresh) = match cached.take() {
            Some(copy) => (K::clone(&copy), false),
            None if reads == ATTEMPTS => return Err(conflict(call, name.to_owned())),
            None => {
                reads += 1;
                (api.get(name).await.map_err(kube(call, name))?, true)
            }
        };
        if !change(&mut object) {
            if fresh {
                return Ok(object);
            }
            continue;
        }
        match api
            .replace_status(name, &PostParams::default(), &object)
            .await
        {
            Ok(written) => return Ok(written),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(err) => return Err(kube(call, name)(err)),
        }
    }
}

/// `name` from `api`, as JSON.
async fn get<K>(api: &Api<K>, name: &str, call: &'static str) -> Result<Value>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let object = api.get(name).await.map_err(kube(call, name))?;
    Ok(to_json(&object))
}

fn to_json<K: Serialize>(object: &K) -> Value {
    serde_json::to_value(object).unwrap_or_default()
}

fn kube(
    call: &'static str,
    target: impl Into<String>,
) -> impl FnOnce(kube::Error) -> EdgeControllerError {
    let target = target.into();
    move |source| EdgeControllerError::Kube {
        call,
        target,
        source,
    }
}

fn conflict(call: &'static str, target: String) -> EdgeControllerError {
    EdgeControllerError::Conflict {
        call,
        target,
        attempts: ATTEMPTS,
    }
}
