//! DeviceTwin: devices, their attributes, twins and states at the edge, as
//! KubeEdge's beehive module `twin` in group `twin` (reference §5).
//!
//! Two kinds of message arrive:
//!
//! - from EventBus (group `user`, resource = the MQTT topic): a mapper's
//!   twin update, twin get, state update or membership get. The answer is
//!   published on the matching result topic through EventBus; changes go
//!   to the cloud as `device/<id>/twin/edge_updated` and
//!   `device/<id>/state/update` through EdgeHub, whose outbox keeps them
//!   in order while the link is down.
//! - from the cloud (group `twin`): `membership` (devices bound to or
//!   unbound from the node), the `membership/detail` answer (every device;
//!   the edge reconciles), `device/<id>/twin/cloud_updated` (desired values,
//!   under the version rule) and `device/<id>/updated` (attributes).
//!
//! The mailbox is drained in batches; each batch's rows are written in one
//! transaction, and only then are answers published and the cloud told. If
//! the write fails, devices are reloaded from SQLite and each request is
//! answered with code 500. After every reconnect the module asks the cloud
//! for the membership detail.
//!
//! # Layout
//!
//! - `topics.rs`: the MQTT topics.
//! - `rules.rs`: the twin rules (pure).
//! - `handle.rs`: what one message does ([`Twins`], `Effects`; pure).
//! - `store.rs`: the `device`, `device_attr` and `device_twin` tables.
//! - `metrics.rs`: `devicetwin_*` metrics.
//! - `tests.rs`: the module on a real beehive and SQLite file.

mod handle;
mod metrics;
mod rules;
mod store;
#[cfg(test)]
mod tests;
mod topics;

use std::borrow::Cow;

use beehive::{async_trait, Bus, Module, ModuleContext, ModuleError, RestartPolicy};
use proto::modules::{edge, group};
use proto::{Message, Operation};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::edgehub::EdgeHubStatus;
use handle::Twins;
use metrics::Metrics;

/// Messages taken from the mailbox and committed together, at most.
const MAX_BATCH: usize = 256;

/// Answers waiting to be handed to EventBus, at most. They are handed over
/// by a task of their own so that DeviceTwin never waits on EventBus while
/// EventBus waits on DeviceTwin.
const PUBLISH_QUEUE: usize = 8192;

/// The DeviceTwin beehive module.
#[derive(Debug)]
pub struct DeviceTwin {
    db_path: String,
    node: String,
    hub: Option<EdgeHubStatus>,
    metrics: Metrics,
}

impl DeviceTwin {
    /// A module keeping devices in `db_path` (`database.dataSource`) for
    /// `node`, asking the cloud for the membership each time `hub`
    /// connects, with its metrics in `registry`.
    pub fn new(
        db_path: &str,
        node: &str,
        hub: Option<EdgeHubStatus>,
        registry: &mut prometheus_client::registry::Registry,
    ) -> DeviceTwin {
        DeviceTwin {
            db_path: db_path.to_owned(),
            node: node.to_owned(),
            hub,
            metrics: Metrics::register(registry),
        }
    }
}

#[async_trait]
impl Module for DeviceTwin {
    fn name(&self) -> &str {
        edge::DEVICETWIN
    }

    fn group(&self) -> &str {
        edge::TWIN
    }

    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::OnFailure { max_retries: 3 }
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError> {
        let conn = crate::db::open(&self.db_path, store::SCHEMA)
            .await
            .map_err(ModuleError::new)?;
        let devices = store::load(&conn).await.map_err(ModuleError::new)?;
        tracing::info!(devices = devices.len(), node = %self.node, "devicetwin loaded its devices");
        let mut worker = Worker {
            twins: Twins::new(&self.node, devices),
            conn,
            bus: ctx.bus().clone(),
            publish: spawn_publisher(ctx.bus().clone(), ctx.cancellation_token().clone()),
            metrics: self.metrics.clone(),
        };
        worker.metrics.set_devices(worker.twins.len());
        let mut connected = self.hub.as_ref().map(EdgeHubStatus::connected);
        if connected.as_mut().is_some_and(|c| *c.borrow_and_update()) {
            worker.request_detail().await;
        }
        loop {
            tokio::select! {
                msg = ctx.recv() => {
                    let Some(first) = msg else { break };
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match ctx.try_recv() {
                            Some(m) => batch.push(m),
                            None => break,
                        }
                    }
                    worker.process(batch).await;
                }
                up = link_up(&mut connected) => {
                    if up {
                        worker.request_detail().await;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Waits for the link's next change and says whether it is now up; never
/// completes without EdgeHub (or once it is gone).
async fn link_up(connected: &mut Option<watch::Receiver<bool>>) -> bool {
    let Some(rx) = connected.as_mut() else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        *connected = None;
        return false;
    }
    *rx.borrow_and_update()
}

/// Hands answers to EventBus in order, on a task of its own.
fn spawn_publisher(bus: Bus, cancel: tokio_util::sync::CancellationToken) -> mpsc::Sender<Message> {
    let (tx, mut rx) = mpsc::channel::<Message>(PUBLISH_QUEUE);
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                () = cancel.cancelled() => break,
                msg = rx.recv() => match msg {
                    Some(m) => m,
                    None => break,
                },
            };
            let topic = msg.resource().to_owned();
            if let Err(err) = bus.send(edge::EVENTBUS, msg).await {
                tracing::debug!(topic, %err, "no eventbus to publish a device answer");
            }
        }
    });
    tx
}

/// The running module's state.
struct Worker {
    twins: Twins,
    conn: tokio_rusqlite::Connection,
    bus: Bus,
    publish: mpsc::Sender<Message>,
    metrics: Metrics,
}

impl Worker {
    /// Applies a batch, writes it, then answers and tells the cloud.
    async fn process(&mut self, batch: Vec<Message>) {
        let now = jiff::Timestamp::now();
        let mut ops = Vec::new();
        let mut done = Vec::with_capacity(batch.len());
        for msg in batch {
            let from_mqtt = msg.route.group == group::USER;
            let mut fx = if from_mqtt {
                self.twins.on_mqtt(msg.resource(), &payload_text(&msg), now)
            } else {
                self.twins.on_cloud(&msg, now)
            };
            self.metrics
                .handled(if from_mqtt { "mqtt" } else { "cloud" }, fx.outcome);
            ops.append(&mut fx.ops);
            done.push((msg, from_mqtt, fx));
        }
        match store::commit(&self.conn, ops).await {
            Ok(()) => {
                for (msg, from_mqtt, fx) in done {
                    for (topic, payload) in fx.publish {
                        self.publish_on(topic, payload).await;
                    }
                    for up in fx.upstream {
                        self.send_up(up).await;
                    }
                    if !from_mqtt && proto::needs_ack(&msg) {
                        let ack = if fx.outcome == "invalid" {
                            msg.error_reply("the twin message could not be applied")
                        } else {
                            msg.reply(proto::modules::content::OK)
                        };
                        self.send_up(ack).await;
                    }
                }
            }
            Err(err) => {
                self.metrics.commit_failed();
                tracing::error!(error = %err, "cannot write device changes; reloading devices and answering 500");
                match store::load(&self.conn).await {
                    Ok(devices) => self.twins.replace(devices),
                    Err(err) => tracing::error!(error = %err, "cannot reload devices"),
                }
                for (_, _, fx) in done {
                    for (topic, payload) in fx.on_failure {
                        self.publish_on(topic, payload).await;
                    }
                }
            }
        }
        self.metrics.set_devices(self.twins.len());
    }

    async fn publish_on(&self, topic: String, payload: Value) {
        let msg = Message::new(edge::DEVICETWIN, group::USER, Operation::Publish, topic)
            .with_content(payload);
        if self.publish.send(msg).await.is_err() {
            tracing::debug!("the publisher has stopped");
        }
    }

    async fn send_up(&self, msg: Message) {
        let msg_id = msg.id().to_owned();
        if let Err(err) = self.bus.send(edge::EDGEHUB, msg).await {
            tracing::warn!(msg_id, %err, "cannot hand a device message to edgehub");
        }
    }

    async fn request_detail(&self) {
        let msg = self.twins.detail_request(jiff::Timestamp::now());
        tracing::info!(
            msg_id = msg.id(),
            "asking the cloud for this node's devices"
        );
        self.send_up(msg).await;
    }
}

/// A bus message's content as the MQTT payload text it came from.
fn payload_text(msg: &Message) -> Cow<'_, str> {
    match &msg.content {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}
