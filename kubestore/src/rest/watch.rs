//! watch: a chunked `application/json` response of one event per line,
//! `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}`,
//! driven by a store [`Watch`] inside a `futures::stream::unfold`, so it
//! lives exactly as long as the response: it ends when the client goes
//! away (actix drops the stream), at `timeoutSeconds`, on shutdown, or when
//! the store closes. No task is spawned.
//!
//! Where it starts: with `resourceVersion` absent or `0` (or
//! `sendInitialEvents=true`) the current objects come first as ADDED, from
//! a list, then the changes after the list; with `resourceVersion=N` the
//! changes after N. A revision the store's history no longer reaches, one
//! from the future, or a watcher that fell behind gets one ERROR event with
//! a 410 `Expired` Status, as kube-apiserver sends inside the stream:
//! client-go and kube-rs both answer it by listing again.
//!
//! Selectors filter events; an object that stops matching is sent as
//! DELETED (with its new content, since the store keeps no previous one)
//! and one that starts matching as ADDED. A watch resumed at N learns which
//! objects the client holds from a list at the current revision, so an
//! object that stopped matching between N and now is not retracted.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use jiff::Timestamp;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{RestError, Result};
use super::params::{Params, Since};
use super::path::Target;
use super::render::Render;
use super::RestConfig;
use crate::resource::Gvr;
use crate::selector::{FieldOp, FieldRequirement, Selectors};
use crate::store::{Event, EventKind, Object, ObjectKey, Store, StoreError, Watch, WatchError};

/// The longest watch, whatever `timeoutSeconds` says.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Initial events sent per chunk.
const BATCH: usize = 128;

/// Starts a watch of `target` (one object if it names one).
pub(crate) async fn serve(
    rest: &RestConfig,
    target: &Target,
    params: &Params,
    render: Render,
) -> Result<HttpResponse> {
    let mut selectors = params.selectors.clone();
    if let Some(name) = &target.name {
        selectors.fields.push(FieldRequirement {
            field: "metadata.name".to_owned(),
            op: FieldOp::Equals,
            value: name.clone(),
        });
    }
    let timeout = params
        .timeout
        .filter(|t| !t.is_zero())
        .unwrap_or(rest.watch.timeout)
        .min(MAX_TIMEOUT);
    let mut stream = WatchStream {
        watch: None,
        queue: VecDeque::new(),
        initial: VecDeque::new(),
        initial_end: None,
        filter: Filter::new(selectors),
        render,
        store: rest.store.clone(),
        deadline: Instant::now() + timeout,
        bookmarks: params.bookmarks.then_some(rest.watch.bookmark_interval),
        last_sent: Instant::now(),
        shutdown: rest.shutdown.clone(),
    };
    stream.start(target, params).await?;
    let body = futures::stream::unfold(stream, |mut s| async move {
        s.step()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), s))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache, private"))
        .streaming(body))
}

/// Which events a watcher sees, and as what.
struct Filter {
    selectors: Selectors,
    /// The objects the client holds, when the selectors can change their
    /// verdict on an object (anything but its name or namespace).
    visible: Option<HashSet<ObjectKey>>,
    /// The client got the full state from this watch's initial list.
    listed: bool,
}

impl Filter {
    fn new(selectors: Selectors) -> Filter {
        let fixed =
            |r: &FieldRequirement| r.field == "metadata.name" || r.field == "metadata.namespace";
        let tracks =
            !selectors.labels.is_empty() || !selectors.fields.requirements().iter().all(fixed);
        Filter {
            selectors,
            visible: tracks.then(HashSet::new),
            listed: false,
        }
    }

    /// Notes that the client holds `object` if it matches; true if so.
    fn seed(&mut self, object: &Object) -> bool {
        let matches = self.selectors.matches_object(object);
        if let (true, Some(visible)) = (matches, &mut self.visible) {
            visible.insert(object.key.clone());
        }
        matches
    }

    /// The event type to send for `event`, if any.
    fn event_type(&mut self, event: &Event) -> Option<&'static str> {
        let matches = self.selectors.matches_object(&event.object);
        let Some(visible) = &mut self.visible else {
            return matches.then(|| event.kind.as_str());
        };
        let key = &event.object.key;
        match (event.kind, matches, visible.contains(key)) {
            (EventKind::Deleted, _, _) => (visible.remove(key) || matches).then_some("DELETED"),
            (_, true, true) => Some("MODIFIED"),
            (kind, true, false) => {
                visible.insert(key.clone());
                // Resumed watches cannot tell whether the client has it.
                Some(if self.listed || kind == EventKind::Added {
                    "ADDED"
                } else {
                    "MODIFIED"
                })
            }
            (_, false, true) => {
                visible.remove(key);
                Some("DELETED")
            }
            (_, false, false) => None,
        }
    }
}

/// The state of one watch response.
struct WatchStream {
    /// `None` once the stream is to end after `queue`.
    watch: Option<Watch>,
    /// Lines to send before anything else.
    queue: VecDeque<Bytes>,
    /// Objects to send as ADDED first.
    initial: VecDeque<Arc<Object>>,
    /// Send the initial-events-end bookmark at this revision after them.
    initial_end: Option<u64>,
    filter: Filter,
    render: Render,
    store: Store,
    deadline: Instant,
    /// Send a BOOKMARK after this long without sending anything.
    bookmarks: Option<Duration>,
    last_sent: Instant,
    shutdown: CancellationToken,
}

/// What woke the stream up.
enum Wake {
    Stop,
    Idle,
    Next(Result<Event, WatchError>),
}

impl WatchStream {
    /// Lists (when the client needs the state) and opens the store watch.
    async fn start(&mut self, target: &Target, params: &Params) -> Result<()> {
        let (gvr, namespace) = (&target.info.gvr, target.namespace.as_deref());
        let initial = params
            .send_initial_events
            .unwrap_or(params.since == Since::Start);
        if initial {
            let (items, revision) = self.store.list(gvr, namespace).await?;
            self.filter.listed = true;
            self.initial = items.into_iter().filter(|o| self.filter.seed(o)).collect();
            if params.send_initial_events == Some(true) {
                self.initial_end = Some(revision);
            }
            return self.open(gvr, namespace, Some(revision));
        }
        let from = match params.since {
            Since::Start => None,
            Since::Revision(requested) if requested > self.store.revision() => {
                let current = self.store.revision();
                let err = RestError::FutureRevision { requested, current };
                self.queue.push_back(self.render.error(&err));
                return Ok(());
            }
            Since::Revision(n) => Some(n),
        };
        self.open(gvr, namespace, from)?;
        if self.watch.is_some() && self.filter.visible.is_some() {
            let (items, _) = self.store.list(gvr, namespace).await?;
            for object in &items {
                self.filter.seed(object);
            }
        }
        Ok(())
    }

    fn open(&mut self, gvr: &Gvr, namespace: Option<&str>, from: Option<u64>) -> Result<()> {
        match self.store.watch(gvr, namespace, from) {
            Ok(watch) => self.watch = Some(watch),
            Err(WatchError::Closed) => return Err(RestError::Store(StoreError::Closed)),
            Err(err) => self
                .queue
                .push_back(self.render.error(&RestError::Expired(err))),
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end.
    async fn step(&mut self) -> Option<Bytes> {
        if let Some(line) = self.queue.pop_front() {
            return Some(line);
        }
        if !self.initial.is_empty() {
            return Some(self.initial_chunk());
        }
        loop {
            let watch = self.watch.as_mut()?;
            let idle = self.bookmarks.map(|every| self.last_sent + every);
            let wake = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => Wake::Stop,
                () = tokio::time::sleep_until(self.deadline) => Wake::Stop,
                next = watch.next() => Wake::Next(next),
                () = tokio::time::sleep_until(idle.unwrap_or(self.deadline)), if idle.is_some() => Wake::Idle,
            };
            let next = match wake {
                Wake::Stop => return None,
                Wake::Next(next) => next,
                Wake::Idle => {
                    // Every change up to `revision` is already in this
                    // watch's buffer; if none is waiting, all were seen.
                    let revision = self.store.revision();
                    match watch.next().now_or_never() {
                        Some(next) => next,
                        None => {
                            let revision = revision.max(watch.revision());
                            self.last_sent = Instant::now();
                            return Some(self.render.bookmark(revision, false));
                        }
                    }
                }
            };
            match next {
                Ok(event) => {
                    if let Some(kind) = self.filter.event_type(&event) {
                        self.last_sent = Instant::now();
                        return Some(self.render.event(kind, &event.object, Timestamp::now()));
                    }
                }
                Err(WatchError::Closed) => return None,
                Err(err) => {
                    self.watch = None;
                    return Some(self.render.error(&RestError::Expired(err)));
                }
            }
        }
    }

    /// Up to [`BATCH`] initial ADDED events, and the end-of-initial-events
    /// bookmark after the last.
    fn initial_chunk(&mut self) -> Bytes {
        let now = Timestamp::now();
        let mut chunk = BytesMut::new();
        let count = self.initial.len().min(BATCH);
        for object in self.initial.drain(..count) {
            chunk.extend_from_slice(&self.render.event("ADDED", &object, now));
        }
        if self.initial.is_empty() {
            if let Some(revision) = self.initial_end.take() {
                chunk.extend_from_slice(&self.render.bookmark(revision, true));
            }
        }
        self.last_sent = Instant::now();
        chunk.freeze()
    }
}
