//! Closing connections whose client has sent DISCONNECT.
//!
//! rmqtt leaves a connection open after the client's DISCONNECT, for the
//! client to close (MQTT says the server should close it), and goes on
//! delivering to it: a client that keeps the connection (rumqttc does until
//! its event loop is dropped) receives, and acknowledges, messages its
//! persistent session should have kept for its return. Every [`PERIOD`]
//! [`close_after_disconnect`] tells such connections to close, once each;
//! their sessions then go offline as after any disconnection.
//!
//! It runs on the broker's runtime and ends with it.

use std::collections::HashSet;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::types::{ClientId, Message, Reason, TimestampMillis};
use tokio::time::MissedTickBehavior;

/// How often sessions are looked at.
const PERIOD: Duration = Duration::from_millis(50);

/// Closes, once each, the connections of sessions that have received a
/// DISCONNECT. Each round looks at every session once.
pub(crate) async fn close_after_disconnect(scx: ServerContext) {
    // Connections told to close, by client id and connection time.
    let mut told: HashSet<(ClientId, TimestampMillis)> = HashSet::new();
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let clients: Vec<_> = scx.extends.shared().await.iter().collect();
        let mut still = HashSet::with_capacity(told.len());
        for client in clients {
            let (Some(session), Some(tx)) = (client.session(), client.tx()) else {
                continue;
            };
            let Ok(Some(disconnect)) = session.disconnect().await else {
                continue;
            };
            let key = (
                session.id.client_id.clone(),
                session.connected_at().await.unwrap_or_default(),
            );
            if !told.contains(&key) {
                // A session already offline ignores this.
                let closed = Message::Closed(Reason::ConnectDisconnect(Some(disconnect)));
                let _ = tx.unbounded_send(closed);
            }
            still.insert(key);
        }
        told = still;
    }
}
