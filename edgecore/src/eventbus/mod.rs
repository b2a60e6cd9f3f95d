//! EventBus: the bridge between MQTT devices and the bus, as KubeEdge's
//! beehive module `eventbus` in group `bus` (reference §4).
//!
//! EventBus connects to one MQTT broker, or two in `mqttMode` 1 (see
//! [`settings`](EventBusSettings)), subscribes to KubeEdge's device and
//! application topics plus those the cloud asked for, and:
//!
//! - sends what devices publish on DeviceTwin's topics to the `twin` group,
//!   and everything else to the cloud through EdgeHub (`convert.rs`);
//! - carries out the bus's `publish`, `message`, `subscribe`,
//!   `unsubscribe` and `get_result` operations; the cloud's subscriptions
//!   are kept in the `sub_topics` table and restored at start.
//!
//! A message that was a request (`header.sync`, from [`Bus::request`]) is
//! answered: "OK" once done (for a publish: once queued for the broker), or
//! an error reply saying why not. Others are logged when refused.
//!
//! Device messages are acked to the broker only once they are in a
//! mailbox, over a persistent session, so none are lost while edgecore
//! restarts; see `link.rs` for the sessions, reconnects and what happens
//! to publishes while a broker is away.
//!
//! # Layout
//!
//! - `mod.rs`: the [`EventBus`] module and its handling of bus messages.
//! - `settings.rs`: [`EventBusSettings`], [`MqttEndpoint`], TLS.
//! - `link.rs`: one broker connection (driver and router tasks).
//! - `convert.rs`: MQTT ⇄ bus message conversion (pure).
//! - `topics.rs`: the subscribed topics, routing and topic checks (pure).
//! - `store.rs`: the `sub_topics` table.
//! - `metrics.rs`: `eventbus_*` metrics.
//! - `error.rs`: [`EventBusError`].

mod convert;
mod error;
mod link;
mod metrics;
mod settings;
mod store;
mod topics;

use std::collections::BTreeSet;
use std::sync::Arc;

use beehive::{async_trait, Bus, Module, ModuleContext, ModuleError, RestartPolicy};
use bytes::Bytes;
use proto::modules::edge;
use proto::Message;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::{EventBusError, Result};
pub use settings::{EventBusSettings, MqttEndpoint, DEFAULT_MAX_PAYLOAD, DEFAULT_OUTGOING_QUEUE};

use convert::Plan;
use link::{Link, Shared, Wanted};
use metrics::{reason, Metrics};
use store::TopicStore;

/// The EventBus beehive module.
#[derive(Debug)]
pub struct EventBus {
    settings: EventBusSettings,
    db_path: String,
    node: String,
    metrics: Metrics,
}

impl EventBus {
    /// A module connecting as `settings` says, keeping the cloud's
    /// subscriptions in `db_path` (`database.dataSource`), for node
    /// `node_name`, with its metrics in `registry`. Nothing connects before
    /// the beehive runs it.
    pub fn new(
        settings: EventBusSettings,
        db_path: &str,
        node_name: &str,
        registry: &mut prometheus_client::registry::Registry,
    ) -> EventBus {
        EventBus {
            settings,
            db_path: db_path.to_owned(),
            node: node_name.to_owned(),
            metrics: Metrics::register(registry),
        }
    }
}

#[async_trait]
impl Module for EventBus {
    fn name(&self) -> &str {
        edge::EVENTBUS
    }

    fn group(&self) -> &str {
        edge::BUS
    }

    fn restart_policy(&self) -> RestartPolicy {
        // Only opening the database can fail; keep trying.
        RestartPolicy::OnFailure { max_retries: 0 }
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError> {
        let store = TopicStore::open(&self.db_path)
            .await
            .map_err(|e| ModuleError::new(EventBusError::from(e)))?;
        let stored = store
            .load()
            .await
            .map_err(|e| ModuleError::new(EventBusError::from(e)))?;
        let wanted: BTreeSet<String> = stored
            .into_iter()
            .filter(|f| match topics::check_filter(f) {
                Ok(()) => true,
                Err(err) => {
                    tracing::warn!(topic = f, %err, "ignoring a stored subscription");
                    false
                }
            })
            .collect();
        let (wanted_tx, wanted_rx) = watch::channel(Arc::new(wanted));
        let shared = Shared {
            bus: ctx.bus().clone(),
            metrics: self.metrics.clone(),
            wanted: wanted_rx,
            client_id: self.settings.client_id_for(&self.node),
        };
        let tasks = TaskTracker::new();
        let cancel = ctx.cancellation_token().child_token();
        let _stop_links = cancel.clone().drop_guard();
        let links = self
            .settings
            .brokers
            .iter()
            .map(|endpoint| link::start(endpoint, &self.settings, &shared, &tasks, &cancel))
            .collect();
        tasks.close();
        let worker = Worker {
            links,
            store,
            wanted: wanted_tx,
            bus: ctx.bus().clone(),
            node: self.node.clone(),
            max_payload: self.settings.max_payload,
            metrics: self.metrics.clone(),
            cancel: cancel.clone(),
        };
        while let Some(msg) = ctx.recv().await {
            worker.handle(msg).await;
        }
        cancel.cancel();
        tasks.wait().await;
        Ok(())
    }
}

/// The module at work.
struct Worker {
    links: Vec<Link>,
    store: TopicStore,
    wanted: watch::Sender<Wanted>,
    bus: Bus,
    node: String,
    max_payload: usize,
    metrics: Metrics,
    cancel: CancellationToken,
}

impl Worker {
    async fn handle(&self, msg: Message) {
        let outcome = match convert::plan(&msg, &self.node, self.max_payload) {
            Plan::Publish { topic, payload } => self.publish(&topic, payload).await,
            Plan::Subscribe(filters) => self.subscribe(filters).await,
            Plan::Unsubscribe(filters) => self.unsubscribe(filters).await,
            Plan::Ignore(why) => {
                tracing::debug!(msg_id = msg.id(), resource = msg.resource(), why, "ignored");
                Ok(())
            }
            Plan::Refuse(why) => {
                self.metrics.dropped(reason::REFUSED);
                Err(why)
            }
        };
        match outcome {
            Ok(()) if msg.header.sync => {
                self.bus.respond(msg.reply(proto::modules::content::OK));
            }
            Ok(()) => {}
            Err(why) => {
                tracing::warn!(
                    msg_id = msg.id(),
                    source = msg.route.source,
                    operation = msg.operation().as_str(),
                    resource = msg.resource(),
                    why,
                    "eventbus cannot carry out a message"
                );
                if msg.header.sync {
                    self.bus.respond(msg.error_reply(why));
                }
            }
        }
    }

    /// Publishes on every broker.
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> std::result::Result<(), String> {
        let payload = Bytes::from(payload);
        let mut missed = Vec::new();
        for link in &self.links {
            if !link.publish(topic, payload.clone(), &self.cancel).await {
                self.metrics.dropped(reason::BROKER_UNREACHABLE);
                missed.push(link.address());
            }
        }
        if missed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "not published on {topic}: the broker is unreachable and the outgoing queue is full ({})",
                missed.join(", ")
            ))
        }
    }

    async fn subscribe(&self, filters: Vec<String>) -> std::result::Result<(), String> {
        // Stored first: a restart between the two still subscribes.
        let stored = self.store.add(filters.clone()).await;
        self.wanted.send_modify(|wanted| {
            Arc::make_mut(wanted).extend(filters.iter().cloned());
        });
        for link in &self.links {
            // If not queued, the driver subscribes on the next connection.
            link.subscribe(&filters, &self.cancel).await;
        }
        tracing::info!(?filters, "subscribed for the cloud");
        stored.map_err(|err| {
            format!(
                "subscribed, but not stored for the next start: {}",
                beehive::error_chain(&err)
            )
        })
    }

    async fn unsubscribe(&self, filters: Vec<String>) -> std::result::Result<(), String> {
        let stored = self.store.remove(filters.clone()).await;
        self.wanted.send_modify(|wanted| {
            let wanted = Arc::make_mut(wanted);
            for filter in &filters {
                wanted.remove(filter);
            }
        });
        let mut missed = Vec::new();
        for link in &self.links {
            if !link.unsubscribe(&filters, &self.cancel).await {
                missed.push(link.address());
            }
        }
        tracing::info!(?filters, "unsubscribed for the cloud");
        if !missed.is_empty() {
            return Err(format!(
                "unsubscribe not queued: the broker is unreachable and the outgoing queue is full ({})",
                missed.join(", ")
            ));
        }
        stored.map_err(|err| {
            format!(
                "unsubscribed, but still stored for the next start: {}",
                beehive::error_chain(&err)
            )
        })
    }
}
