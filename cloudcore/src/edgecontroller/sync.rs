//! The downstream driver: [`Scope`]'s changes in, the [`Ledger`]'s sends
//! out to CloudHub.
//!
//! A ConfigMap or Secret change concerns that object at the nodes whose
//! pods reference it. A Pod change concerns the pod at the node it is
//! bound to and the nodes it was sent to before, and the configmaps and
//! secrets those nodes' pods reference (only new references are read from
//! the stores). A Node change sends the Node, or, when it joined or left
//! the edge (label, creation, deletion), compares that node whole, as a
//! relist, a lagged broadcast and the start compare every node.

use std::collections::BTreeSet;
use std::sync::Arc;

use beehive::Bus;
use proto::modules::cloud;

use super::downstream::{self, Desired, Ledger, ObjectId, Send};
use super::error::EdgeControllerError;
use super::metrics::Metrics;
use crate::scope::{Change, ChangeKind, EdgeKind, Scope};

/// The ledger, what it reads and where it sends.
pub(crate) struct Downstream {
    scope: Scope,
    ledger: Ledger,
    bus: Bus,
    metrics: Metrics,
}

impl Downstream {
    /// Nothing sent yet.
    pub(crate) fn new(scope: Scope, bus: Bus, metrics: Metrics) -> Self {
        Downstream {
            scope,
            ledger: Ledger::new(),
            bus,
            metrics,
        }
    }

    /// Compares every edge node (and every node sent something before)
    /// with what it should have.
    pub(crate) async fn resync(&mut self, cause: &'static str) {
        self.metrics.resync(cause);
        let mut nodes = self.scope.edge_nodes();
        nodes.extend(self.ledger.nodes());
        tracing::debug!(cause, nodes = nodes.len(), "comparing every node");
        for node in nodes {
            self.sync_node(&node).await;
        }
    }

    /// Follows one change.
    pub(crate) async fn on_change(&mut self, change: Change) {
        if !downstream::handles(change.kind) {
            return;
        }
        let (object, bound_to, deleted) = match change.what {
            ChangeKind::Relisted => return self.resync("relist").await,
            ChangeKind::Applied { object, bound_to } => (object, bound_to, false),
            ChangeKind::Deleted { object, bound_to } => (object, bound_to, true),
        };
        let id = ObjectId::of(&object);
        if deleted {
            self.ledger.deleted(&object);
        }
        let current = (!deleted).then(|| Arc::new(object));
        match change.kind {
            EdgeKind::Node => {
                let had = self.ledger.nodes_of(&id).contains(&id.name);
                let is = !deleted && self.scope.is_edge_node(&id.name);
                if had && is {
                    // A status or label change: the Node alone.
                    let nodes = BTreeSet::from([id.name.clone()]);
                    let sends = self.ledger.sync_object(&id, current.as_ref(), &nodes);
                    self.send(sends).await;
                } else {
                    // Joined or left the edge: everything it should have.
                    self.sync_node(&id.name).await;
                }
            }
            EdgeKind::Pod => {
                let mut nodes = self.ledger.nodes_of(&id);
                nodes.extend(bound_to);
                let wanted = self.scope.nodes_for(change.kind, &id.namespace, &id.name);
                let sends = self.ledger.sync_object(&id, current.as_ref(), &wanted);
                self.send(sends).await;
                // Its configmaps and secrets may come or go with it.
                for node in nodes {
                    self.sync_refs(&node).await;
                }
            }
            _ => {
                let nodes = match deleted {
                    true => BTreeSet::new(),
                    false => self.scope.nodes_for(change.kind, &id.namespace, &id.name),
                };
                let sends = self.ledger.sync_object(&id, current.as_ref(), &nodes);
                self.send(sends).await;
            }
        }
    }

    /// Brings `node` to what the scope says it should have.
    async fn sync_node(&mut self, node: &str) {
        let desired: Desired = downstream::desired(self.scope.objects_for(node));
        let sends = self.ledger.sync_node(node, &desired);
        self.send(sends).await;
    }

    /// Brings the configmaps and secrets at `node` to those its pods
    /// reference now.
    async fn sync_refs(&mut self, node: &str) {
        let refs = |kind: EdgeKind, names: BTreeSet<(String, String)>| {
            names.into_iter().map(move |(namespace, name)| ObjectId {
                kind,
                namespace,
                name,
            })
        };
        let referenced = self.scope.references_of(node);
        let wanted: BTreeSet<ObjectId> = refs(EdgeKind::ConfigMap, referenced.configmaps)
            .chain(refs(EdgeKind::Secret, referenced.secrets))
            .collect();
        let scope = &self.scope;
        let sends = self.ledger.sync_refs(node, &wanted, |id| {
            scope.get(id.kind, &id.namespace, &id.name).map(Arc::new)
        });
        self.send(sends).await;
    }

    async fn send(&self, sends: Vec<Send>) {
        for send in sends {
            let msg = send.message();
            let (node, op, kind) = (&send.node, send.op.as_str(), send.object.kind.kind());
            tracing::debug!(
                node,
                msg_id = msg.id(),
                op,
                resource = msg.resource(),
                resource_version = msg.header.resource_version,
                "to the edge"
            );
            match self.bus.send(cloud::CLOUDHUB, msg).await {
                Ok(()) => self.metrics.down(static_op(&send), kind),
                Err(err) => {
                    let err = EdgeControllerError::from(err);
                    self.metrics.error(err.kind());
                    tracing::warn!(node, op, object = send.object.key(),
                        error = %beehive::error_chain(&err), "cloudhub did not take a message");
                }
            }
        }
        self.metrics.sent_objects(self.ledger.len());
    }
}

/// The operation as a metrics label.
fn static_op(send: &Send) -> &'static str {
    match send.op {
        proto::Operation::Insert => "insert",
        proto::Operation::Update => "update",
        proto::Operation::Delete => "delete",
        _ => "other",
    }
}
