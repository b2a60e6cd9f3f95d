//! The [`Module`] trait every component on the bus implements, and its
//! [`RestartPolicy`].
//!
//! KubeEdge's `Enable()` has no counterpart: a daemon simply does not
//! register a disabled module.

use async_trait::async_trait;

use crate::context::ModuleContext;
use crate::error::ModuleError;

/// A component on the bus (`metamanager`, `twin`, `cloudhub`, ...).
///
/// The runtime calls [`run`](Module::run) on its own task, and again after a
/// failure if [`restart_policy`](Module::restart_policy) says so; the same
/// `self` and the same [`ModuleContext`] (so the same mailbox) are used for
/// every run. `run` should return soon after the context is cancelled.
#[async_trait]
pub trait Module: Send + 'static {
    /// The module's name on the bus, unique within a daemon.
    fn name(&self) -> &str;

    /// The group it belongs to (KubeEdge: `hub`, `meta`, `twin`, `bus`, ...).
    fn group(&self) -> &str;

    /// What to do when `run` returns; [`RestartPolicy::Never`] unless
    /// overridden.
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Never
    }

    /// The module's work: usually a loop over [`ModuleContext::recv`] until
    /// it returns `None`.
    async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError>;
}

/// When the runtime runs a module again after `run` returned (or panicked)
/// without the module having been cancelled, as KubeEdge's `ModuleRestart`
/// feature does. Restarts wait a jittered exponential backoff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never run again.
    #[default]
    Never,
    /// Run again after an error or a panic, but not after `Ok(())`.
    OnFailure {
        /// How many restarts in the module's lifetime; 0 means no limit.
        max_retries: u32,
    },
    /// Run again whatever `run` returned.
    Always {
        /// How many restarts in the module's lifetime; 0 means no limit.
        max_retries: u32,
    },
}

impl RestartPolicy {
    /// Whether a run that ended this way (`failed`: error or panic) calls for
    /// another run, retries permitting.
    pub fn restarts_after(&self, failed: bool) -> bool {
        match self {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure { .. } => failed,
            RestartPolicy::Always { .. } => true,
        }
    }

    /// The restart limit: `None` for no limit, `Some(0)` for [`Never`](RestartPolicy::Never).
    pub fn max_retries(&self) -> Option<u32> {
        match self {
            RestartPolicy::Never => Some(0),
            RestartPolicy::OnFailure { max_retries } | RestartPolicy::Always { max_retries } => {
                Some(*max_retries).filter(|n| *n > 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_follow_kubeedge() {
        assert!(!RestartPolicy::Never.restarts_after(true));
        let on_failure = RestartPolicy::OnFailure { max_retries: 3 };
        assert!(on_failure.restarts_after(true));
        assert!(!on_failure.restarts_after(false));
        assert_eq!(on_failure.max_retries(), Some(3));
        let always = RestartPolicy::Always { max_retries: 0 };
        assert!(always.restarts_after(false));
        assert_eq!(always.max_retries(), None);
        assert_eq!(RestartPolicy::default(), RestartPolicy::Never);
    }
}
