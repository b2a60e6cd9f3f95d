//! The runtime through the public API: supervision and restarts, mailboxes
//! that survive restarts, cancellation and shutdown with a grace period.
//! Timers run on paused time; restart backoff is in milliseconds.

use std::time::Duration;

use beehive::{
    async_trait, Beehive, BeehiveBuilder, BuildError, Module, ModuleContext, ModuleError,
    RestartPolicy, ShutdownError,
};
use proto::{Message, Operation};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What one run of a [`Scripted`] module does.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Return an error at once.
    Fail,
    /// Panic at once.
    Panic,
    /// Return `Ok` at once.
    Return,
    /// Forward one message to the probe, then return an error.
    ServeOneThenFail,
    /// Forward messages to the probe until cancelled, then report `stopped`.
    Serve,
    /// Ignore cancellation and never return.
    Hang,
}

/// A module that reports `run/<n>` to the `probe` endpoint at each start and
/// then follows its script (the last step repeats).
struct Scripted {
    name: &'static str,
    policy: RestartPolicy,
    script: Vec<Step>,
    runs: usize,
}

impl Scripted {
    fn new(name: &'static str, policy: RestartPolicy, script: &[Step]) -> Self {
        Scripted {
            name,
            policy,
            script: script.to_vec(),
            runs: 0,
        }
    }
}

fn note(resource: impl Into<String>) -> Message {
    Message::new("test", "probe", Operation::Message, resource)
}

#[async_trait]
impl Module for Scripted {
    fn name(&self) -> &str {
        self.name
    }

    fn group(&self) -> &str {
        "scripted"
    }

    fn restart_policy(&self) -> RestartPolicy {
        self.policy
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError> {
        self.runs += 1;
        ctx.bus()
            .send("probe", note(format!("{}/run/{}", self.name, self.runs)))
            .await?;
        let step = self.script[(self.runs - 1).min(self.script.len() - 1)];
        match step {
            Step::Fail => Err(ModuleError::msg("scripted failure")),
            Step::Panic => panic!("scripted panic"),
            Step::Return => Ok(()),
            Step::ServeOneThenFail => {
                let m = ctx.recv().await.ok_or("mailbox ended")?;
                ctx.bus()
                    .send("probe", note(format!("got/{}", m.resource())))
                    .await?;
                Err("served one".into())
            }
            Step::Serve => {
                while let Some(m) = ctx.recv().await {
                    ctx.bus()
                        .send("probe", note(format!("got/{}", m.resource())))
                        .await?;
                }
                ctx.bus().send("probe", note("stopped")).await?;
                Ok(())
            }
            Step::Hang => {
                std::future::pending::<()>().await;
                Ok(())
            }
        }
    }
}

/// Starts a hive with the given modules and a `probe` endpoint.
fn start(modules: Vec<Scripted>) -> (Beehive, mpsc::Receiver<Message>, CancellationToken) {
    let mut builder = BeehiveBuilder::new()
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(100));
    let probe = builder.endpoint("probe", "probe");
    for m in modules {
        builder.module(m);
    }
    let mut hive = builder.build().expect("build");
    let parent = CancellationToken::new();
    hive.start(&parent);
    (hive, probe, parent)
}

async fn next_note(probe: &mut mpsc::Receiver<Message>) -> String {
    probe
        .recv()
        .await
        .expect("probe open")
        .resource()
        .to_owned()
}

const FOREVER: RestartPolicy = RestartPolicy::OnFailure { max_retries: 0 };

#[tokio::test(start_paused = true)]
async fn failed_module_is_restarted_with_backoff() {
    let script = [Step::Fail, Step::Fail, Step::Serve];
    let (hive, mut probe, _parent) = start(vec![Scripted::new("flaky", FOREVER, &script)]);
    let started = tokio::time::Instant::now();
    for run in 1..=3 {
        assert_eq!(next_note(&mut probe).await, format!("flaky/run/{run}"));
    }
    // Two backoffs: [10, 20) ms then [20, 40) ms.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(30) && waited < Duration::from_millis(60),
        "{waited:?}"
    );
    hive.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(next_note(&mut probe).await, "stopped");
}

#[tokio::test(start_paused = true)]
async fn panicking_module_is_restarted() {
    let script = [Step::Panic, Step::Serve];
    let (hive, mut probe, _parent) = start(vec![Scripted::new("crashy", FOREVER, &script)]);
    assert_eq!(next_note(&mut probe).await, "crashy/run/1");
    assert_eq!(next_note(&mut probe).await, "crashy/run/2");
    hive.bus()
        .send("crashy", note("after-panic"))
        .await
        .unwrap();
    assert_eq!(next_note(&mut probe).await, "got/after-panic");
    hive.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn mailbox_survives_restarts() {
    let script = [Step::ServeOneThenFail, Step::Serve];
    let (hive, mut probe, _parent) = start(vec![Scripted::new("keeper", FOREVER, &script)]);
    let bus = hive.bus();
    bus.send("keeper", note("one")).await.unwrap();
    bus.send("keeper", note("two")).await.unwrap();
    let notes = ["keeper/run/1", "got/one", "keeper/run/2", "got/two"];
    for expected in notes {
        assert_eq!(next_note(&mut probe).await, expected);
    }
    hive.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn policies_decide_and_retries_run_out() {
    let modules = vec![
        Scripted::new("never", RestartPolicy::Never, &[Step::Fail]),
        Scripted::new(
            "limited",
            RestartPolicy::OnFailure { max_retries: 2 },
            &[Step::Fail],
        ),
        Scripted::new(
            "clean",
            RestartPolicy::OnFailure { max_retries: 0 },
            &[Step::Return],
        ),
        Scripted::new(
            "always",
            RestartPolicy::Always { max_retries: 3 },
            &[Step::Return],
        ),
    ];
    let (hive, mut probe, _parent) = start(modules);
    hive.wait().await;
    assert!(hive.is_finished());
    let mut notes = Vec::new();
    while let Ok(m) = probe.try_recv() {
        notes.push(m.resource().to_owned());
    }
    let runs = |name: &str| {
        notes
            .iter()
            .filter(|n| n.starts_with(&format!("{name}/run/")))
            .count()
    };
    assert_eq!(runs("never"), 1);
    assert_eq!(runs("limited"), 3);
    assert_eq!(runs("clean"), 1);
    assert_eq!(runs("always"), 4);
    hive.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_modules() {
    let modules = vec![
        Scripted::new("a", RestartPolicy::Never, &[Step::Serve]),
        Scripted::new(
            "b",
            RestartPolicy::Always { max_retries: 0 },
            &[Step::Serve],
        ),
    ];
    let (hive, mut probe, _parent) = start(modules);
    let mut seen = vec![next_note(&mut probe).await, next_note(&mut probe).await];
    seen.sort();
    assert_eq!(seen, ["a/run/1", "b/run/1"]);
    hive.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(next_note(&mut probe).await, "stopped");
    assert_eq!(next_note(&mut probe).await, "stopped");
    assert!(
        probe.try_recv().is_err(),
        "a cancelled module is not restarted"
    );
}

#[tokio::test(start_paused = true)]
async fn parent_cancellation_stops_everything() {
    let modules = vec![Scripted::new("a", FOREVER, &[Step::Serve])];
    let (hive, mut probe, parent) = start(modules);
    assert_eq!(next_note(&mut probe).await, "a/run/1");
    parent.cancel();
    hive.wait().await;
    assert_eq!(next_note(&mut probe).await, "stopped");
}

#[tokio::test(start_paused = true)]
async fn shutdown_names_a_module_that_ignores_cancellation() {
    let modules = vec![
        Scripted::new("polite", RestartPolicy::Never, &[Step::Serve]),
        Scripted::new("stubborn", RestartPolicy::Never, &[Step::Hang]),
    ];
    let (hive, mut probe, _parent) = start(modules);
    next_note(&mut probe).await;
    next_note(&mut probe).await;
    let started = tokio::time::Instant::now();
    let err = hive.shutdown(Duration::from_secs(3)).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(
        err,
        ShutdownError::GraceExceeded {
            grace: Duration::from_secs(3),
            modules: vec!["stubborn".into()],
        }
    );
}

#[tokio::test]
async fn unstarted_hive_is_finished_and_builds_check_names() {
    let hive = BeehiveBuilder::new().build().unwrap();
    hive.wait().await;
    hive.shutdown(Duration::from_secs(1)).await.unwrap();

    let mut builder = BeehiveBuilder::new();
    builder.module(Scripted::new("twin", RestartPolicy::Never, &[Step::Return]));
    let _rx = builder.endpoint("twin", "twin");
    assert_eq!(
        builder.build().unwrap_err(),
        BuildError::DuplicateName {
            name: "twin".into()
        }
    );
}
