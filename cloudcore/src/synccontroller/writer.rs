//! The writer task: brings the ObjectSync/ClusterObjectSync records in the
//! API in line with the sync index.
//!
//! It wakes when the index marks records dirty, takes the whole dirty set
//! and, a few requests at a time, for each record:
//!
//! - an entry the API does not hold → create the record (spec and status;
//!   the status is written again through its subresource if the server
//!   dropped it, and an existing record is updated instead);
//! - an entry at another version than written → merge-patch
//!   `status.objectResourceVersion` (a vanished record is created again);
//! - no entry but a record → delete it (already gone is fine).
//!
//! A failed write is retried with jittered exponential backoff (1 s …
//! 5 min, backon); a change of the record meanwhile is written at once. What the API holds is remembered from
//! the load on, so an unchanged record costs no request. On shutdown the
//! writer makes one last, bounded pass.

use std::collections::HashMap;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::StreamExt;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{Result, SyncControllerError};
use super::index::SyncIndex;
use super::metrics::Metrics;
use super::records::{record_resource, Entry, SyncKey, Written};

/// The first retry delay after a failed write.
const RETRY_BASE: Duration = Duration::from_secs(1);
/// The longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// How long the last pass at shutdown may take.
const FLUSH_ON_STOP: Duration = Duration::from_secs(3);

/// A record whose write failed.
#[derive(Debug)]
struct Retry {
    namespace: Option<String>,
    due: Instant,
    attempts: u32,
    delays: ExponentialBackoff,
}

/// The writer; see the module docs.
pub(crate) struct Writer {
    client: kube::Client,
    index: SyncIndex,
    metrics: Metrics,
    concurrency: usize,
    written: HashMap<SyncKey, Written>,
    retries: HashMap<SyncKey, Retry>,
}

impl Writer {
    /// A writer for `index` through `client`, with at most `concurrency`
    /// requests at a time.
    pub(crate) fn new(client: kube::Client, index: SyncIndex, concurrency: usize) -> Self {
        let written = index.take_loaded();
        Writer {
            client,
            metrics: index.metrics().clone(),
            index,
            concurrency: concurrency.max(1),
            written,
            retries: HashMap::new(),
        }
    }

    /// Runs until `cancel` fires, then makes one last bounded pass.
    pub(crate) async fn run(mut self, cancel: CancellationToken) {
        loop {
            let next_retry = self.retries.values().map(|r| r.due).min();
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = self.index.dirtied() => {}
                () = sleep_until(next_retry), if next_retry.is_some() => self.requeue_due(),
            }
            self.flush().await;
        }
        if tokio::time::timeout(FLUSH_ON_STOP, self.flush())
            .await
            .is_err()
        {
            tracing::warn!("sync records not all written before shutdown");
        }
    }

    /// Hands retries whose time has come back to the dirty set.
    fn requeue_due(&mut self) {
        let now = Instant::now();
        let due: Vec<SyncKey> = self
            .retries
            .iter()
            .filter(|(_, r)| r.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(retry) = self.retries.get(&key) {
                self.index.mark_dirty(key.clone(), retry.namespace.clone());
            }
        }
    }

    /// Writes every dirty record, until none is left.
    pub(crate) async fn flush(&mut self) {
        loop {
            let batch = self.index.take_dirty();
            if batch.is_empty() {
                return;
            }
            let jobs = batch.into_iter().map(|(key, namespace)| {
                let desired = self.index.get(&key);
                let written = self.written.get(&key).cloned();
                let (client, metrics) = (self.client.clone(), self.metrics.clone());
                async move {
                    let result = apply(&client, &metrics, &key, desired, written).await;
                    (key, namespace, result)
                }
            });
            let results: Vec<_> = futures::stream::iter(jobs)
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            for (key, namespace, result) in results {
                self.settle(key, namespace, result);
            }
        }
    }

    fn settle(&mut self, key: SyncKey, namespace: Option<String>, result: Result<Option<Written>>) {
        match result {
            Ok(state) => {
                self.retries.remove(&key);
                match state {
                    Some(state) => self.written.insert(key, state),
                    None => self.written.remove(&key),
                };
            }
            Err(err) => {
                let retry = self.retries.entry(key.clone()).or_insert_with(|| Retry {
                    namespace: namespace.clone(),
                    due: Instant::now(),
                    attempts: 0,
                    delays: backoff(),
                });
                let delay = retry.delays.next().unwrap_or(RETRY_MAX);
                retry.namespace = namespace;
                retry.attempts += 1;
                retry.due = Instant::now() + delay;
                tracing::warn!(node = %key.node, uid = %key.uid, attempts = retry.attempts,
                    retry_in = ?delay, error = %daemonkit::launch::error_chain(&err),
                    "sync record not written");
            }
        }
    }
}

/// Retry delays: `RETRY_BASE` doubling to `RETRY_MAX`, jittered, forever.
fn backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_jitter()
        .with_factor(2.0)
        .with_min_delay(RETRY_BASE)
        .with_max_delay(RETRY_MAX)
        .without_max_times()
        .build()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The API of the record kind for `namespace` (`None`: cluster-scoped).
fn records(client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &record_resource(true)),
        None => Api::all_with(client.clone(), &record_resource(false)),
    }
}

/// Brings the record `key` from `written` to `desired`; what the API holds
/// afterwards.
async fn apply(
    client: &kube::Client,
    metrics: &Metrics,
    key: &SyncKey,
    desired: Option<Entry>,
    written: Option<Written>,
) -> Result<Option<Written>> {
    let name = key.record_name();
    let failed = |op: &'static str, ns: Option<&str>| {
        let name = match ns {
            Some(ns) => format!("{ns}/{name}"),
            None => name.clone(),
        };
        move |source| {
            metrics.error(op);
            SyncControllerError::Write { op, name, source }
        }
    };
    let Some(entry) = desired else {
        let Some(written) = written else {
            return Ok(None);
        };
        let ns = written.namespace.as_deref();
        match records(client, ns)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => metrics.write("delete"),
            Err(err) if status(&err) == Some(404) => {}
            Err(err) => return Err(failed("delete", ns)(err)),
        }
        return Ok(None);
    };
    let ns = entry.namespace.as_deref();
    let api = records(client, ns);
    let state = Written {
        namespace: entry.namespace.clone(),
        resource_version: entry.resource_version.clone(),
    };
    let patch_status = || async {
        let body = json!({"status": {"objectResourceVersion": entry.resource_version}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
    };
    if let Some(written) = written {
        if written == state {
            return Ok(Some(state));
        }
        match patch_status().await {
            Ok(_) => {
                metrics.write("status");
                return Ok(Some(state));
            }
            Err(err) if status(&err) == Some(404) => {}
            Err(err) => return Err(failed("status", ns)(err)),
        }
    }
    let mut record = DynamicObject::new(&name, &record_resource(ns.is_some()));
    record.metadata.namespace = entry.namespace.clone();
    record.data = json!({
        "spec": {
            "objectAPIVersion": entry.api_version,
            "objectKind": entry.kind,
            "objectName": entry.name,
        },
        "status": {"objectResourceVersion": entry.resource_version},
    });
    let status_kept = match api.create(&PostParams::default(), &record).await {
        Ok(created) => {
            metrics.write("create");
            created
                .data
                .pointer("/status/objectResourceVersion")
                .and_then(|v| v.as_str())
                == Some(entry.resource_version.as_str())
        }
        Err(err) if status(&err) == Some(409) => false,
        Err(err) => return Err(failed("create", ns)(err)),
    };
    if !status_kept {
        patch_status().await.map_err(failed("status", ns))?;
        metrics.write("status");
    }
    Ok(Some(state))
}

/// The HTTP status of an API error.
fn status(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_cap_and_never_stop() {
        let delays: Vec<Duration> = backoff().take(40).collect();
        assert_eq!(delays.len(), 40);
        assert!(delays[0] >= RETRY_BASE && delays[0] < RETRY_BASE * 3);
        assert!(delays[3] >= RETRY_BASE * 8, "{delays:?}");
        assert!(delays.iter().all(|d| *d <= RETRY_MAX * 2), "{delays:?}");
        assert!(delays[39] >= RETRY_MAX);
    }
}
