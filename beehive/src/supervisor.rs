//! The task that runs one module: call `run`, catch errors and panics, and
//! run it again per its [`RestartPolicy`] after a jittered exponential
//! backoff (KubeEdge's `ModuleRestart`: 1 s, ×2, capped at 30 s).
//!
//! Invariant: the module and its context (so its mailbox) live on this one
//! task from the first run to the last.

use std::any::Any;
use std::error::Error;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::FutureExt;

use crate::context::ModuleContext;
use crate::module::{Module, RestartPolicy};

/// The restart delays: `initial`, doubling up to `max`, each with up to as
/// much again of random jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The delays before each restart a policy allows; the iterator ends
    /// when the retries are used up.
    pub(crate) fn delays(&self, policy: RestartPolicy) -> impl Iterator<Item = Duration> + Send {
        let builder = ExponentialBuilder::default()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(self.initial)
            .with_max_delay(self.max.max(self.initial));
        let builder = match policy.max_retries() {
            Some(n) => builder.with_max_times(usize::try_from(n).unwrap_or(usize::MAX)),
            None => builder.without_max_times(),
        };
        builder.build()
    }
}

/// How one run of a module ended.
#[derive(Debug)]
enum Outcome {
    Finished,
    Failed(String),
}

/// Runs `module` until it stops for good: it was cancelled, its policy asks
/// for no restart, or its retries are used up.
pub(crate) async fn supervise(
    mut module: Box<dyn Module>,
    mut ctx: ModuleContext,
    backoff: Backoff,
) {
    let policy = module.restart_policy();
    let mut delays = backoff.delays(policy);
    let mut runs: u64 = 0;
    loop {
        runs += 1;
        tracing::debug!(run = runs, "module starting");
        let outcome = match AssertUnwindSafe(module.run(&mut ctx)).catch_unwind().await {
            Ok(Ok(())) => Outcome::Finished,
            Ok(Err(err)) => Outcome::Failed(error_chain(&err)),
            Err(panic) => Outcome::Failed(format!("panicked: {}", panic_message(&*panic))),
        };
        if ctx.is_cancelled() {
            match outcome {
                Outcome::Finished => tracing::debug!("module stopped"),
                Outcome::Failed(error) => tracing::warn!(%error, "module failed while stopping"),
            }
            return;
        }
        let failed = matches!(outcome, Outcome::Failed(_));
        match &outcome {
            Outcome::Finished => tracing::info!("module returned"),
            Outcome::Failed(error) => tracing::error!(%error, "module failed"),
        }
        if !policy.restarts_after(failed) {
            return;
        }
        let Some(delay) = delays.next() else {
            tracing::error!(?policy, "module will not be restarted: retries used up");
            return;
        };
        tracing::info!(?delay, "restarting module");
        tokio::select! {
            () = ctx.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// The error and its sources, joined with `: ` (for one-line logs).
pub fn error_chain(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The text of a panic, when it was a string.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_stop_at_the_limit() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        };
        let delays: Vec<_> = backoff
            .delays(RestartPolicy::OnFailure { max_retries: 7 })
            .collect();
        assert_eq!(delays.len(), 7);
        let bases = [1, 2, 4, 8, 16, 30, 30];
        for (delay, base) in delays.iter().zip(bases) {
            let base = Duration::from_secs(base);
            assert!(*delay >= base && *delay < base * 2, "{delay:?} vs {base:?}");
        }
        assert!(backoff
            .delays(RestartPolicy::Always { max_retries: 0 })
            .nth(1000)
            .is_some());
        assert_eq!(backoff.delays(RestartPolicy::Never).count(), 0);
    }

    #[test]
    fn chain_and_panic_text() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&err), "outer: inner");
        let payload: Box<dyn Any + Send> = Box::new(String::from("boom"));
        assert_eq!(panic_message(&*payload), "boom");
        let payload: Box<dyn Any + Send> = Box::new(7_u8);
        assert_eq!(panic_message(&*payload), "non-string panic payload");
    }
}
