//! Queries from edge modules: for the types KubeEdge fetches from the
//! cloud (configmaps, secrets, tokens, ...), ask the cloud through EdgeHub
//! while connected, store the answer and return it; otherwise, and when the
//! cloud fails to answer, answer from the store.

use std::time::Duration;

use beehive::Bus;
use kubestore::{Expect, Store};
use proto::{Message, Operation};
use serde_json::Value;

use super::metrics::Metrics;
use super::plan::{self, Query};
use crate::edgehub::EdgeHubStatus;

/// What a query needs.
#[derive(Clone)]
pub(crate) struct Querier {
    pub(crate) store: Store,
    pub(crate) bus: Bus,
    pub(crate) hub: Option<EdgeHubStatus>,
    pub(crate) send_module: String,
    pub(crate) timeout: Duration,
    pub(crate) resources: kubestore::Resources,
    pub(crate) metrics: Metrics,
}

impl Querier {
    /// Answers `msg` (a query) on the bus.
    pub(crate) async fn answer(&self, msg: Message, query: Query) {
        let connected = self.hub.as_ref().is_some_and(EdgeHubStatus::is_connected);
        let reply = if connected && query.goes_remote() {
            match self.remote(&msg, &query).await {
                Ok(object) => {
                    self.metrics.query("remote");
                    msg.reply(object)
                }
                Err(reason) => {
                    tracing::warn!(
                        msg_id = msg.id(),
                        resource = msg.resource(),
                        reason,
                        "remote query failed; answering from the store"
                    );
                    self.local(&msg, &query).await
                }
            }
        } else {
            self.local(&msg, &query).await
        };
        self.bus.respond(reply);
    }

    /// Asks the cloud and stores what it says.
    async fn remote(&self, msg: &Message, query: &Query) -> Result<Value, String> {
        let request = Message::new(
            proto::modules::edge::METAMANAGER,
            proto::modules::group::RESOURCE,
            Operation::Query,
            msg.resource(),
        )
        .with_content(msg.content.clone());
        let reply = self
            .bus
            .request(&self.send_module, request, self.timeout)
            .await
            .map_err(|err| err.to_string())?;
        if *reply.operation() == Operation::Error {
            return Err(reply.content_json().to_string());
        }
        let wrapped = reply.content_json();
        if let Some(err) = wrapped.get("Err").filter(|e| !e.is_null()) {
            return Err(err.to_string());
        }
        let object = plan::payload(&reply);
        if object.is_object() {
            self.store_answer(query, &object).await;
        }
        Ok(object)
    }

    async fn store_answer(&self, query: &Query, object: &Value) {
        let ops = plan::store_ops(
            query.meta_key.clone(),
            &query.kind,
            query.object.clone().zip(query.info.as_ref()),
            object.clone(),
            None,
            Expect::NewerOrigin,
        );
        if let Err(err) = self.store.write(ops).await {
            tracing::warn!(key = query.meta_key, error = %beehive::error_chain(&err), "cannot store a query answer");
        }
    }

    /// Answers from the store: the object, or a JSON array for a list.
    async fn local(&self, msg: &Message, query: &Query) -> Message {
        self.metrics.query("local");
        let found = match (&query.object, &query.info, &query.name) {
            (Some(key), _, _) => self
                .store
                .get(key)
                .await
                .map(|o| o.map(|o| o.value.clone())),
            (None, Some(info), None) => {
                let ns = (query.namespace != proto::resource::NULL_NAMESPACE)
                    .then_some(query.namespace.as_str());
                self.store
                    .list(&info.gvr, ns)
                    .await
                    .map(|(items, _)| Some(items.iter().map(|o| o.value.clone()).collect()))
            }
            (None, _, Some(_)) => self.store.get_meta(&query.meta_key).await.map(|row| {
                row.map(|(_, text)| serde_json::from_str(&text).unwrap_or(Value::String(text)))
            }),
            (None, None, None) => self
                .store
                .list_meta(query.kind.as_str(), &format!("{}/", query.meta_key))
                .await
                .map(|rows| {
                    Some(
                        rows.into_iter()
                            .map(|(_, text)| {
                                serde_json::from_str(&text).unwrap_or(Value::String(text))
                            })
                            .collect(),
                    )
                }),
        };
        match found {
            Ok(Some(value)) => msg.reply(value),
            Ok(None) => msg.error_reply(format!("{} not found", query.meta_key)),
            Err(err) => msg.error_reply(format!(
                "metamanager: cannot read the store: {}",
                beehive::error_chain(&err)
            )),
        }
    }
}
