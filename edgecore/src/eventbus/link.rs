//! One broker connection: the [`Link`] handle the module publishes and
//! subscribes through, a driver task that owns rumqttc's event loop, and a
//! router task that hands what the broker sends to the bus, then acks it.
//!
//! Invariant: the driver never waits on anything but the network and its
//! reconnect delay, so it always drains the request queue while connected.
//! Everything else (the module's publishes, the router's acks) may wait
//! for room in that queue without a cycle: the bus → DeviceTwin →
//! EventBus loop cannot lock up through MQTT.
//!
//! **Sessions.** The session is persistent (clean session off) under a
//! stable client id, and acks are manual: a QoS 1/2 message is acked only
//! once it is in the receiving module's mailbox, so what devices publish
//! while edgecore is down or busy waits in the broker. Acks belong to one
//! connection; one for a message that came on an older connection is not
//! sent (the broker sends that message again).
//!
//! **Outgoing messages while the broker is away.** They wait in rumqttc's
//! request queue ([`EventBusSettings::outgoing_queue`]); once that is full,
//! further publishes are dropped and counted as `broker_unreachable`. When
//! the connection breaks, rumqttc keeps the publishes not yet acked and
//! sends them again if the broker kept the session; if it did not (a
//! broker without persistence was restarted), the driver publishes them
//! again itself. Either way QoS 1 publishes are delivered at least once
//! across broker restarts. Publishes still queued when edgecore stops are
//! lost: the queue is in memory.
//!
//! **Too large to read.** A PUBLISH larger than the incoming limit (twice
//! the payload cap, plus room for the topic) cannot be read, so it cannot
//! be acked either, and a persistent session would offer it again after
//! every reconnect. The driver then connects once with a clean session,
//! which discards the broker's copy of the session (with anything queued
//! in it), and goes back to a persistent session from the next connection.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use beehive::Bus;
use bytes::Bytes;
use proto::modules::edge;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Outgoing, Packet, Publish, QoS, Request,
    StateError, SubAck, Subscribe, SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::convert::{self, Inbound};
use super::metrics::{reason, Metrics};
use super::settings::{EventBusSettings, MqttEndpoint};
use super::topics::{self, Route};

/// Messages received and waiting for the router, at most.
const INBOX: usize = 1024;

/// Inbox room kept for QoS 1/2 messages: QoS 0 ones are dropped once less
/// than this is free. The broker's in-flight window (20 in mosquitto)
/// bounds the QoS 1/2 messages waiting, since they are acked only once
/// handed on.
const ACKED_RESERVE: usize = 256;

/// Filters per SUBSCRIBE packet.
const SUBSCRIBE_BATCH: usize = 32;

/// The topic filters the cloud asked for, shared with every driver.
pub(crate) type Wanted = Arc<BTreeSet<String>>;

/// A message from the broker and the connection it came on.
#[derive(Debug)]
struct Received {
    connection: u64,
    publish: Publish,
}

/// The handle to one broker connection.
#[derive(Debug)]
pub(crate) struct Link {
    address: String,
    client: AsyncClient,
    /// `Some(n)` while the `n`th connection is up.
    state: watch::Receiver<Option<u64>>,
    qos: QoS,
    retain: bool,
}

/// What every link of the module shares.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) bus: Bus,
    pub(crate) metrics: Metrics,
    pub(crate) wanted: watch::Receiver<Wanted>,
    pub(crate) client_id: String,
}

/// Connects to `endpoint` on tasks spawned on `tasks`, which stop when
/// `cancel` is.
pub(crate) fn start(
    endpoint: &MqttEndpoint,
    settings: &EventBusSettings,
    shared: &Shared,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) -> Link {
    let options = settings.mqtt_options(endpoint, &shared.client_id);
    let (client, mut eventloop) = AsyncClient::new(options, settings.outgoing_queue.max(1));
    // Without TCP_NODELAY small packets wait for the peer's delayed ACK:
    // about 40 ms per device answer.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let (state_tx, state) = watch::channel(None);
    let (inbox_tx, inbox) = mpsc::channel(INBOX);
    let address = endpoint.address();
    let driver = Driver {
        eventloop,
        address: address.clone(),
        qos: settings.qos,
        wanted: shared.wanted.clone(),
        state: state_tx,
        inbox: inbox_tx,
        metrics: shared.metrics.clone(),
        backoff: (settings.backoff_base, settings.backoff_max),
        payload_limit: settings.max_payload,
    };
    let router = Router {
        address: address.clone(),
        client: client.clone(),
        state: state.clone(),
        bus: shared.bus.clone(),
        metrics: shared.metrics.clone(),
        max_payload: settings.max_payload,
    };
    tasks.spawn(driver.run(cancel.clone()));
    tasks.spawn(router.run(inbox, cancel.clone()));
    Link {
        address,
        client,
        state,
        qos: settings.qos,
        retain: settings.retain,
    }
}

impl Link {
    /// The broker's `host:port`.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Queues a publish. Waits for room while connected; `false` if it was
    /// not queued (the queue is full and the broker away, or shutdown).
    pub(crate) async fn publish(
        &self,
        topic: &str,
        payload: Bytes,
        cancel: &CancellationToken,
    ) -> bool {
        let send = self
            .client
            .publish_bytes(topic, self.qos, self.retain, payload);
        self.queue(send, cancel).await
    }

    /// Queues a subscription. `false` if it was not queued; the driver
    /// subscribes again on the next connection anyway.
    pub(crate) async fn subscribe(&self, filters: &[String], cancel: &CancellationToken) -> bool {
        let filters = filters
            .iter()
            .map(|f| SubscribeFilter::new(f.clone(), self.qos));
        let send = self.client.subscribe_many(filters);
        self.queue(send, cancel).await
    }

    /// Queues unsubscriptions; `false` if one was not queued.
    pub(crate) async fn unsubscribe(&self, filters: &[String], cancel: &CancellationToken) -> bool {
        let mut all = true;
        for filter in filters {
            all &= self
                .queue(self.client.unsubscribe(filter.clone()), cancel)
                .await;
        }
        all
    }

    /// Runs `send` (a push onto rumqttc's queue) unless the queue is full
    /// while the broker is away.
    async fn queue(
        &self,
        send: impl std::future::Future<Output = Result<(), rumqttc::ClientError>>,
        cancel: &CancellationToken,
    ) -> bool {
        let mut state = self.state.clone();
        // A send with room completes on its first poll, before the state
        // is looked at; a full queue waits only while connected.
        tokio::select! {
            biased;
            sent = send => sent.is_ok(),
            _ = state.wait_for(Option::is_none) => false,
            () = cancel.cancelled() => false,
        }
    }
}

/// Owns the event loop: connects, reconnects, subscribes, hands messages
/// to the router. Never waits on the bus.
struct Driver {
    eventloop: EventLoop,
    address: String,
    qos: QoS,
    wanted: watch::Receiver<Wanted>,
    state: watch::Sender<Option<u64>>,
    inbox: mpsc::Sender<Received>,
    metrics: Metrics,
    backoff: (Duration, Duration),
    payload_limit: usize,
}

impl Driver {
    async fn run(mut self, cancel: CancellationToken) {
        let mut connection = 0_u64;
        let mut delays = self.delays();
        let mut failures = 0_u32;
        let mut unacked = Vec::new();
        loop {
            let event = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                event = self.eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    connection += 1;
                    failures = 0;
                    delays = self.delays();
                    self.on_connect(ack.session_present, std::mem::take(&mut unacked));
                    self.state.send_replace(Some(connection));
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    self.hand_off(connection, publish);
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => self.check(&ack),
                Ok(Event::Outgoing(Outgoing::Publish(_))) => self.metrics.published(),
                Ok(_) => {}
                Err(err) => {
                    self.on_error(&err, failures);
                    failures = failures.saturating_add(1);
                    unacked = self.unacked();
                    let delay = delays.next().unwrap_or(self.backoff.1);
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        if self.state.send_replace(None).is_some() {
            self.metrics.connected(false);
        }
        tracing::debug!(broker = %self.address, "MQTT connection stopped");
    }

    /// Reconnect delays: doubling from the base to the max, jittered.
    fn delays(&self) -> impl Iterator<Item = Duration> + Send {
        ExponentialBuilder::default()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(self.backoff.0)
            .with_max_delay(self.backoff.1)
            .without_max_times()
            .build()
    }

    fn on_connect(&mut self, session_present: bool, unacked: Vec<Publish>) {
        self.metrics.connected(true);
        tracing::info!(broker = %self.address, session_present, "connected to the MQTT broker");
        let options = &mut self.eventloop.mqtt_options;
        if options.clean_session() {
            options.set_clean_session(false);
        }
        if !session_present && !unacked.is_empty() {
            tracing::info!(
                broker = %self.address,
                count = unacked.len(),
                "the broker did not keep the session; publishing again what it had not acked"
            );
            for mut publish in unacked {
                publish.pkid = 0;
                publish.dup = false;
                self.eventloop.pending.push_back(Request::Publish(publish));
            }
        }
        let wanted = self.wanted.borrow().clone();
        let filters: Vec<SubscribeFilter> = topics::DEFAULT_SUBSCRIPTIONS
            .iter()
            .map(|f| (*f).to_owned())
            .chain(wanted.iter().cloned())
            .map(|f| SubscribeFilter::new(f, self.qos))
            .collect();
        for batch in filters.chunks(SUBSCRIBE_BATCH) {
            let subscribe = Subscribe::new_many(batch.iter().cloned());
            self.eventloop
                .pending
                .push_back(Request::Subscribe(subscribe));
        }
    }

    fn on_error(&mut self, err: &ConnectionError, failures: u32) {
        if self.state.send_replace(None).is_some() {
            self.metrics.connected(false);
            tracing::warn!(broker = %self.address, error = %err, "disconnected from the MQTT broker; reconnecting");
        } else if failures.is_multiple_of(30) {
            tracing::warn!(broker = %self.address, error = %err, attempts = failures + 1, "cannot connect to the MQTT broker; retrying");
        } else {
            tracing::debug!(broker = %self.address, error = %err, "cannot connect to the MQTT broker");
        }
        if let ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::Error::PayloadSizeLimitExceeded(size),
        )) = err
        {
            self.metrics.dropped(reason::OVERSIZED);
            tracing::error!(
                broker = %self.address,
                size,
                limit = self.payload_limit,
                "the broker sent a message too large to read; starting a new MQTT session to be rid of it, which loses what the broker had queued for EventBus"
            );
            self.eventloop.mqtt_options.set_clean_session(true);
        }
    }

    /// The publishes rumqttc keeps for the next connection.
    fn unacked(&self) -> Vec<Publish> {
        self.eventloop
            .pending
            .iter()
            .filter_map(|request| match request {
                Request::Publish(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    fn hand_off(&self, connection: u64, publish: Publish) {
        if publish.qos == QoS::AtMostOnce && self.inbox.capacity() < ACKED_RESERVE {
            self.metrics.dropped(reason::BACKLOG);
            tracing::warn!(broker = %self.address, topic = publish.topic, "EventBus is behind; dropping a QoS 0 message");
            return;
        }
        match self.inbox.try_send(Received {
            connection,
            publish,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(r)) => {
                // Not acked: the broker sends it again after a reconnect.
                self.metrics.dropped(reason::BACKLOG);
                tracing::warn!(broker = %self.address, topic = r.publish.topic, "EventBus is behind; leaving a message to the broker");
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }

    fn check(&self, ack: &SubAck) {
        let refused = ack
            .return_codes
            .iter()
            .filter(|c| matches!(c, SubscribeReasonCode::Failure))
            .count();
        if refused > 0 {
            tracing::warn!(broker = %self.address, pkid = ack.pkid, refused, "the broker refused subscriptions");
        }
    }
}

/// Hands received messages to the bus, then acks them.
struct Router {
    address: String,
    client: AsyncClient,
    state: watch::Receiver<Option<u64>>,
    bus: Bus,
    metrics: Metrics,
    max_payload: usize,
}

impl Router {
    async fn run(self, mut inbox: mpsc::Receiver<Received>, cancel: CancellationToken) {
        loop {
            let received = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                r = inbox.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            // Cancelled before the ack: the broker keeps the message for
            // the next run.
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = self.deliver(&received.publish) => {}
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = self.ack(&received) => {}
            }
        }
    }

    async fn deliver(&self, publish: &Publish) {
        let topic = publish.topic.as_str();
        let (route, msg) = match convert::inbound(topic, &publish.payload, self.max_payload) {
            Inbound::Deliver { route, msg } => (route, *msg),
            Inbound::Drop { reason, detail } => {
                self.metrics.dropped(reason);
                tracing::warn!(broker = %self.address, topic, detail, "dropping a message from the broker");
                return;
            }
        };
        self.metrics.received(route.label());
        let taken = match route {
            Route::Twin => self.bus.send_to_group(edge::TWIN, msg).await,
            Route::Cloud => self.bus.send(edge::EDGEHUB, msg).await.map(|()| 1),
        };
        match taken {
            Ok(n) if n > 0 => {}
            Ok(_) => {
                self.metrics.dropped(reason::NO_RECEIVER);
                tracing::warn!(
                    topic,
                    route = route.label(),
                    "nobody took a message from the broker"
                );
            }
            Err(err) => {
                self.metrics.dropped(reason::NO_RECEIVER);
                tracing::warn!(topic, route = route.label(), %err, "nobody took a message from the broker");
            }
        }
    }

    /// Acks a QoS 1/2 message on the connection it came on, if that is
    /// still up.
    async fn ack(&self, received: &Received) {
        let connection = Some(received.connection);
        if received.publish.qos == QoS::AtMostOnce || *self.state.borrow() != connection {
            return;
        }
        let mut state = self.state.clone();
        tokio::select! {
            biased;
            sent = self.client.ack(&received.publish) => {
                if let Err(err) = sent {
                    tracing::debug!(broker = %self.address, %err, "ack not queued");
                }
            }
            _ = state.wait_for(|s| *s != connection) => {}
        }
    }
}
