//! Node authorization (`modules.cloudHub.authorization`, on by default):
//! [`NodeAuthorizer`] is CloudHub's [`Authorizer`], deciding for every
//! upstream message whether the node that sent it may touch what it names.
//! The node is the one its client certificate names, never a field of the
//! message; the decision reads the shared reflectors ([`Scope`]).
//!
//! # Rules
//!
//! Resources are in edge form (`<ns>/<type>[/<name>]`). A node may:
//!
//! - **its Node**: `node` (insert = registration, query, update, patch),
//!   `nodestatus` (insert, update), `nodepatch` (patch, update) named
//!   after itself, in any namespace; a Node in the content must be itself;
//! - **its Lease**: `kube-node-lease/lease/<node>` (insert, update, query),
//!   the Lease in the content the same one (EdgeController writes the
//!   content's Lease);
//! - **pods bound to it** (`spec.nodeName`, on an edge node): `pod` query
//!   and delete, `podpatch` patch/update, `podstatus` update — with or
//!   without a name, every pod the resource or the content's
//!   `PodStatusRequest`s name (EdgeController acts on the content's names)
//!   must be bound to it;
//! - **mirror pods**: `pod` insert only of a mirror pod (annotation
//!   `kubernetes.io/config.mirror`) bound to itself, named as the resource,
//!   owned by nothing but its Node, and using no configmap, secret or
//!   service account — as Kubernetes' NodeRestriction allows a kubelet:
//!   any other pod would let a node grant itself another node's objects;
//! - **what its pods use**: `configmap` and `secret` queries of objects a
//!   pod bound to it references; `serviceaccounttoken` (query, insert) of
//!   a service account such a pod runs as, a `boundObjectRef` in the token
//!   request naming such a pod;
//! - **events** (insert, update, patch) whose `involvedObject` is its Node
//!   or a pod bound to it;
//! - **its devices** (`spec.nodeName`): `device` queries,
//!   `device/<ns>/<name>/twin/edge_updated` and `.../state/update` reports
//!   (update; a bare `<name>` of older edges means namespace `default`);
//! - **its membership**: `membership`, `membership/detail` (get, query,
//!   detail) whose `group_id`, when given, is itself;
//! - without object checks: `k8s/ca.crt`, `upload`s in group `user`
//!   (Router), and replies (`response`/`error` with a `parent_msg_id`: the
//!   answers to the cloud's own requests).
//!
//! Everything else is refused: lists (but pod statuses), other nodes'
//! objects, resources in cloud form, fixed resources such as
//! `node/connection`, and kinds outside the list (`rulestatus`, CSRs,
//! volumes, `podlist`, `devicemodel`, ...). Nodes and pods are looked up in
//! the reflectors, so a pod bound a moment ago may be refused until the
//! watch event arrives; the edge retries what it needs.
//!
//! A refusal is CloudHub's to act on: an `error` reply `forbidden: <why>`
//! and `cloudhub_dropped_messages_total{reason="unauthorized"}`. With
//! `authorization.debug` (KubeEdge's debug mode) refusals are logged and
//! counted here but the message goes through.
//!
//! # Metrics
//!
//! `authz_refusals_total{resource, mode}`: refusals by resource type
//! (`configmap`, `pod`, ..., `device_report`, `membership/detail`, `other`,
//! `malformed`) and `mode` (`enforced`, or `logged` in debug mode).
//!
//! # Layout
//!
//! - `mod.rs`: [`NodeAuthorizer`] and its metric.
//! - `rules.rs`: the rules as one pure function.
//! - `content.rs`: pure readers of message contents.
//! - `view.rs`: the questions the rules ask of the cluster, answered by
//!   [`Scope`].
//! - `error.rs`: the refusal reasons.

mod content;
mod error;
mod rules;
mod view;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use proto::{Message, ResourceKind, ResourcePath, Target};

use crate::cloudhub::Authorizer;
use crate::scope::Scope;
use view::View;

/// `[("resource", ...), ("mode", ...)]`.
type Labels = [(&'static str, &'static str); 2];

/// CloudHub's node authorization over the shared reflectors.
#[derive(Clone)]
pub struct NodeAuthorizer {
    view: Arc<dyn View>,
    debug: bool,
    refusals: Family<Labels, Counter>,
}

impl std::fmt::Debug for NodeAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAuthorizer")
            .field("debug", &self.debug)
            .finish_non_exhaustive()
    }
}

impl NodeAuthorizer {
    /// An authorizer reading `scope`; with `debug` it only logs refusals.
    /// Registers `authz_refusals_total` in `registry`.
    pub fn new(scope: Scope, debug: bool, registry: &mut Registry) -> Self {
        Self::with_view(Arc::new(scope), debug, registry)
    }

    fn with_view(view: Arc<dyn View>, debug: bool, registry: &mut Registry) -> Self {
        let refusals = Family::<Labels, Counter>::default();
        registry.sub_registry_with_prefix("authz").register(
            "refusals",
            "Upstream messages node authorization refused, by resource type and mode (enforced, or logged in debug mode)",
            refusals.clone(),
        );
        NodeAuthorizer {
            view,
            debug,
            refusals,
        }
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, node: &str, msg: &Message) -> Result<(), String> {
        let Err(refusal) = rules::check(&*self.view, node, msg) else {
            return Ok(());
        };
        let mode = if self.debug { "logged" } else { "enforced" };
        self.refusals
            .get_or_create(&[("resource", resource_label(msg)), ("mode", mode)])
            .inc();
        if self.debug {
            tracing::warn!(node, msg_id = msg.id(), resource = msg.resource(),
                operation = msg.operation().as_str(), reason = %refusal,
                "node authorization would refuse this message (debug mode: let through)");
            return Ok(());
        }
        Err(refusal.to_string())
    }
}

/// The metric's `resource` label: one of a fixed set of values.
fn resource_label(msg: &Message) -> &'static str {
    let Ok(path) = ResourcePath::parse(msg.resource()) else {
        return "malformed";
    };
    match path.target() {
        Target::Object { kind, .. } => ResourceKind::KNOWN
            .iter()
            .find(|known| *known == kind)
            .map_or("other", ResourceKind::as_str),
        Target::Device { .. } => "device_report",
        Target::Special(special) => special.as_str(),
    }
}
