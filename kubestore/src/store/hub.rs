//! Watch fan-out: the last `history` changes kept in memory for watches
//! that resume from a revision, and a broadcast channel for live changes.
//! Both sit behind one lock, so a new watch's replay and its live stream
//! meet without a gap or a duplicate.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast::{self, error::RecvError};

use super::error::WatchError;
use super::object::Event;
use crate::resource::Gvr;

/// Live changes buffered per watcher before it counts as lagging.
const MIN_LIVE_BUFFER: usize = 1024;

/// The shared history and broadcast.
#[derive(Clone)]
pub(crate) struct Hub {
    state: Arc<Mutex<State>>,
    revision: Arc<AtomicU64>,
}

struct State {
    history: VecDeque<Event>,
    capacity: usize,
    /// The oldest revision a watch may resume from: every change after it
    /// is in `history`.
    oldest: u64,
    live: broadcast::Sender<Event>,
}

impl Hub {
    /// A hub at `revision` whose history holds `recorded` (the changes up
    /// to `revision`, oldest first; they must be contiguous).
    pub(crate) fn new(revision: u64, capacity: usize, recorded: Vec<Event>) -> Hub {
        let (live, _) = broadcast::channel(capacity.max(MIN_LIVE_BUFFER));
        // Contiguous up to `revision`: a watch may resume from just before
        // the first recorded change.
        let contiguous = recorded
            .last()
            .is_some_and(|last| last.revision() == revision)
            && recorded
                .windows(2)
                .all(|w| w[1].revision() == w[0].revision() + 1);
        let (history, oldest) = match recorded.first() {
            Some(first) if contiguous => (VecDeque::from(recorded.clone()), first.revision() - 1),
            _ => (VecDeque::new(), revision),
        };
        let mut history = history;
        while history.len() > capacity {
            history.pop_front();
        }
        let oldest = history.front().map_or(oldest, |e| e.revision() - 1);
        Hub {
            state: Arc::new(Mutex::new(State {
                history,
                capacity,
                oldest,
                live,
            })),
            revision: Arc::new(AtomicU64::new(revision)),
        }
    }

    /// The revision of the last published change.
    pub(crate) fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Publishes committed changes, in revision order, and the revision
    /// they bring the store to.
    pub(crate) fn publish(&self, events: Vec<Event>, revision: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            if state.capacity > 0 {
                if state.history.len() == state.capacity {
                    if let Some(old) = state.history.pop_front() {
                        state.oldest = old.revision();
                    }
                }
                state.history.push_back(event.clone());
            } else {
                state.oldest = event.revision();
            }
            // No receivers is not an error: nobody watches.
            let _ = state.live.send(event);
        }
        self.revision.store(revision, Ordering::Release);
    }

    /// A watch of `gvr` (in `namespace`) after `from`, or from now.
    pub(crate) fn watch(
        &self,
        gvr: Gvr,
        namespace: Option<String>,
        from: Option<u64>,
    ) -> Result<Watch, WatchError> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let filter = Filter { gvr, namespace };
        let current = self.revision();
        let (after, backlog) = match from {
            None => (current, VecDeque::new()),
            Some(from) if from < state.oldest => {
                return Err(WatchError::Gone {
                    requested: from,
                    oldest: state.oldest,
                })
            }
            Some(from) => {
                let backlog = state
                    .history
                    .iter()
                    .filter(|e| e.revision() > from && filter.matches(e))
                    .cloned()
                    .collect();
                (from, backlog)
            }
        };
        Ok(Watch {
            filter,
            backlog,
            live: state.live.subscribe(),
            after,
        })
    }
}

struct Filter {
    gvr: Gvr,
    namespace: Option<String>,
}

impl Filter {
    fn matches(&self, event: &Event) -> bool {
        let key = &event.object.key;
        key.gvr == self.gvr
            && match &self.namespace {
                Some(ns) => key.namespace.as_deref() == Some(ns.as_str()),
                None => true,
            }
    }
}

/// A stream of changes to one resource (optionally one namespace), in
/// revision order, each after the watch's starting revision.
pub struct Watch {
    filter: Filter,
    backlog: VecDeque<Event>,
    live: broadcast::Receiver<Event>,
    after: u64,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("gvr", &self.filter.gvr)
            .field("namespace", &self.filter.namespace)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// The revision of the last change this watch delivered (or started
    /// after).
    pub fn revision(&self) -> u64 {
        self.after
    }

    /// The next change. Cancel-safe.
    pub async fn next(&mut self) -> Result<Event, WatchError> {
        if let Some(event) = self.backlog.pop_front() {
            self.after = event.revision();
            return Ok(event);
        }
        loop {
            match self.live.recv().await {
                Ok(event) if event.revision() > self.after && self.filter.matches(&event) => {
                    self.after = event.revision();
                    return Ok(event);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => return Err(WatchError::Lagged(n)),
                Err(RecvError::Closed) => return Err(WatchError::Closed),
            }
        }
    }
}
