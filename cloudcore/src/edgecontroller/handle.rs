//! One upstream message from start to reply, and the readiness marks:
//! read it ([`upstream::parse`]), carry it out ([`KubeSide::apply`]),
//! answer through CloudHub, log and count; set a node's conditions to
//! `Unknown` when its link goes, and sweep the nodes left Ready without a
//! link.

use beehive::Bus;
use proto::modules::cloud;
use proto::{split_node_prefix, Message};

use super::api::{Done, KubeSide};
use super::error::EdgeControllerError;
use super::metrics::{Metrics, Outcome};
use super::status;
use super::upstream::{self, Request};
use crate::cloudhub::NodeLinks;
use crate::scope::Scope;

/// What the upstream and readiness tasks share; cheap to clone.
#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) kube: KubeSide,
    pub(crate) scope: Scope,
    pub(crate) links: NodeLinks,
    pub(crate) bus: Bus,
    pub(crate) metrics: Metrics,
}

impl Handler {
    /// Handles one upstream message: applied, answered when an answer is
    /// due, an `error` reply when it failed.
    pub(crate) async fn upstream(&self, msg: Message) {
        let kind = upstream::type_label(&msg);
        let node = split_node_prefix(msg.resource()).map_or("", |(node, _)| node);
        let result = match upstream::parse(&msg) {
            Ok(up) => self.kube.apply(&up).await.map(|done| (up.request, done)),
            Err(err) => Err(err),
        };
        let (msg_id, resource, op) = (msg.id(), msg.resource(), msg.operation().as_str());
        match result {
            Ok((_, Done::Ignored)) => {
                if *msg.operation() == proto::Operation::Error {
                    // The edge could not apply something sent to it.
                    let parent = msg.header.parent_msg_id.as_str();
                    tracing::warn!(node, msg_id, parent, resource, reason = %msg.content,
                        "the edge refused a message");
                } else {
                    tracing::debug!(node, msg_id, resource, op, "nothing to do");
                }
                self.metrics.upstream(kind, Outcome::Ignored);
            }
            Ok((request, done)) => {
                tracing::debug!(node, msg_id, resource, op, "applied");
                self.metrics.upstream(kind, Outcome::Ok);
                if let Done::Object(object) = done {
                    if answer_due(&msg, &request) {
                        self.send(upstream::response(&msg, object)).await;
                    }
                }
            }
            Err(err) => {
                self.failed(&err);
                self.metrics.upstream(kind, Outcome::Error);
                let reason = err.reason();
                tracing::warn!(node, msg_id, resource, op, error = %reason, "upstream message failed");
                if !upstream::is_reply(&msg) {
                    self.send(upstream::error(&msg, reason)).await;
                }
            }
        }
    }

    /// `node`'s link went: its conditions become `Unknown` (unless it is
    /// back already).
    pub(crate) async fn link_lost(&self, node: &str) {
        match self.kube.mark_unknown(node).await {
            Ok(true) => {
                self.metrics.marked_unknown();
                tracing::info!(node, "link down: node conditions set to Unknown");
            }
            Ok(false) => {
                tracing::debug!(node, "link down: node connected again or already Unknown")
            }
            Err(err) if err.is_not_found() => tracing::debug!(node, "link down: no such Node"),
            Err(err) => {
                self.failed(&err);
                tracing::warn!(node, error = %err.reason(), "cannot set the node's conditions to Unknown");
            }
        }
    }

    /// Every edge node that says Ready but has no link is marked
    /// `Unknown` (after start-up's grace, or when link events were lost).
    pub(crate) async fn sweep(&self) {
        for node in self.scope.edge_nodes() {
            let ready = self.scope.node(&node).is_some_and(|n| {
                status::condition(n.status.as_ref(), status::READY) == Some("True")
            });
            if ready && !self.links.is_connected(&node) {
                self.link_lost(&node).await;
            }
        }
    }

    fn failed(&self, err: &EdgeControllerError) {
        self.metrics.error(err.kind());
        if let EdgeControllerError::Kube { call, .. } | EdgeControllerError::Conflict { call, .. } =
            err
        {
            self.metrics.api_error(call);
        }
    }

    async fn send(&self, reply: Message) {
        let (msg_id, parent) = (reply.id().to_owned(), reply.header.parent_msg_id.clone());
        if let Err(err) = self.bus.send(cloud::CLOUDHUB, reply).await {
            let err = EdgeControllerError::from(err);
            self.metrics.error(err.kind());
            tracing::warn!(msg_id, parent, error = %beehive::error_chain(&err), "cloudhub did not take a reply");
        }
    }
}

/// Whether the edge waits for the answer to `msg`: registrations and
/// queries always, anything else when it was sent synchronously (KubeEdge's
/// edged waits for its lease and patch answers; edgecore's reports go
/// through its outbox and wait for nobody).
fn answer_due(msg: &Message, request: &Request) -> bool {
    msg.header.sync
        || matches!(
            request,
            Request::RegisterNode(_)
                | Request::QueryNode
                | Request::QueryLease
                | Request::Query(_)
                | Request::ServiceAccountToken(_)
        )
}
