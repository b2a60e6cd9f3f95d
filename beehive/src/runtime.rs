//! [`BeehiveBuilder`] and [`Beehive`]: register modules and endpoints, start
//! every module on a [`TaskTracker`] under a child cancellation token, and
//! shut down with a grace period.

use std::time::Duration;

use proto::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::bus::Bus;
use crate::context::ModuleContext;
use crate::error::{BuildError, ShutdownError};
use crate::module::Module;
use crate::registry::RegistryBuilder;
use crate::supervisor::{supervise, Backoff};

/// Messages a mailbox holds before senders wait, as KubeEdge's 1024.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 1024;

/// The first restart delay (KubeEdge: 1 s).
pub const DEFAULT_RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// The longest restart delay before jitter (KubeEdge: 30 s).
pub const DEFAULT_RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A module waiting for [`Beehive::start`].
struct Idle {
    name: String,
    group: String,
    module: Box<dyn Module>,
    mailbox: mpsc::Receiver<Message>,
}

/// Registers modules and endpoints, then [`build`](Self::build)s the
/// [`Beehive`]. Nothing is global: a daemon registers what it runs.
pub struct BeehiveBuilder {
    registry: RegistryBuilder,
    modules: Vec<Idle>,
    backoff: Backoff,
}

impl Default for BeehiveBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for BeehiveBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeehiveBuilder")
            .field("registry", &self.registry)
            .field("modules", &self.modules.len())
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl BeehiveBuilder {
    /// A builder with [`DEFAULT_MAILBOX_CAPACITY`] and the default backoff.
    pub fn new() -> Self {
        BeehiveBuilder {
            registry: RegistryBuilder::new(DEFAULT_MAILBOX_CAPACITY),
            modules: Vec::new(),
            backoff: Backoff {
                initial: DEFAULT_RESTART_BACKOFF,
                max: DEFAULT_RESTART_BACKOFF_MAX,
            },
        }
    }

    /// Sets the capacity of mailboxes registered after this call (0 counts
    /// as 1). Call it first.
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.registry.set_capacity(capacity);
        self
    }

    /// Sets the restart backoff: the first delay and the cap it doubles up
    /// to (defaults 1 s and 30 s). Tests use milliseconds.
    pub fn restart_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff { initial, max };
        self
    }

    /// Registers a module under its [`name`](Module::name) and
    /// [`group`](Module::group).
    pub fn module(&mut self, module: impl Module) -> &mut Self {
        self.boxed_module(Box::new(module))
    }

    /// Registers an already boxed module.
    pub fn boxed_module(&mut self, module: Box<dyn Module>) -> &mut Self {
        let name = module.name().to_owned();
        let group = module.group().to_owned();
        let mailbox = self.registry.add(&name, &group);
        self.modules.push(Idle {
            name,
            group,
            module,
            mailbox,
        });
        self
    }

    /// Registers a plain named mailbox with no module behind it, for
    /// adapters and tests that sit on the bus; the caller reads the
    /// returned receiver.
    pub fn endpoint(&mut self, name: &str, group: &str) -> mpsc::Receiver<Message> {
        self.registry.add(name, group)
    }

    /// Checks the registrations (names non-empty and unique) and builds the
    /// runtime. Nothing runs until [`Beehive::start`].
    pub fn build(self) -> Result<Beehive, BuildError> {
        let bus = Bus::new(self.registry.build()?);
        let tracker = TaskTracker::new();
        // Closed from the start, so `wait` completes once every spawned
        // module has stopped (or at once if none was).
        tracker.close();
        Ok(Beehive {
            bus,
            idle: self.modules,
            backoff: self.backoff,
            tracker,
            cancel: CancellationToken::new(),
            tasks: Vec::new(),
        })
    }
}

/// The running set of modules and the bus between them.
///
/// Dropping a `Beehive` does not stop its modules; cancel the parent token
/// given to [`start`](Self::start) or call [`shutdown`](Self::shutdown).
pub struct Beehive {
    bus: Bus,
    idle: Vec<Idle>,
    backoff: Backoff,
    tracker: TaskTracker,
    cancel: CancellationToken,
    tasks: Vec<(String, JoinHandle<()>)>,
}

impl std::fmt::Debug for Beehive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beehive")
            .field("modules", &self.bus.modules())
            .field("started", &self.tasks.len())
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

impl Beehive {
    /// A handle to the bus.
    pub fn bus(&self) -> Bus {
        self.bus.clone()
    }

    /// Spawns every registered module on its own task, each with a child of
    /// a child of `parent`; cancelling `parent` stops them all. Must be
    /// called inside a tokio runtime. A second call does nothing.
    pub fn start(&mut self, parent: &CancellationToken) {
        if self.idle.is_empty() {
            if !self.tasks.is_empty() {
                tracing::warn!("beehive already started");
            }
            return;
        }
        self.cancel = parent.child_token();
        for idle in self.idle.drain(..) {
            let span = tracing::info_span!("module", module = %idle.name, group = %idle.group);
            let ctx = ModuleContext::new(
                idle.name.clone(),
                idle.group,
                idle.mailbox,
                self.bus.clone(),
                self.cancel.child_token(),
            );
            let task = supervise(idle.module, ctx, self.backoff).instrument(span);
            self.tasks.push((idle.name, self.tracker.spawn(task)));
        }
    }

    /// Completes when every started module has stopped for good (at once if
    /// none was started).
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }

    /// Whether every started module has stopped for good.
    pub fn is_finished(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Cancels every module and waits up to `grace` for them to stop.
    /// Modules still running after that are aborted and named in the error.
    pub async fn shutdown(self, grace: Duration) -> Result<(), ShutdownError> {
        self.cancel.cancel();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return Ok(());
        }
        let mut modules: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, task)| !task.is_finished())
            .map(|(name, task)| {
                task.abort();
                name.clone()
            })
            .collect();
        if modules.is_empty() {
            // They all stopped just as the grace period ran out.
            return Ok(());
        }
        modules.sort();
        tracing::error!(?grace, ?modules, "modules ignored cancellation; aborted");
        Err(ShutdownError::GraceExceeded { grace, modules })
    }
}
