//! Start-up and shutdown: builds the beehive from the enabled modules,
//! starts it, waits for the shutdown token, and stops it with a grace period.

use std::time::Duration;

use beehive::{BeehiveBuilder, BuildError, ShutdownError};
use tokio_util::sync::CancellationToken;

use crate::config::CloudCoreConfig;

/// Where KubeEdge keeps cloudcore's configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/kubeedge/config/cloudcore.yaml";

/// How long modules get to stop after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The module set is inconsistent (e.g. a name registered twice).
    #[error("cannot assemble modules")]
    Build(#[source] BuildError),
    /// Some modules did not stop within the grace period.
    #[error("shutdown incomplete")]
    Shutdown(#[source] ShutdownError),
}

/// Runs cloudcore until `shutdown` is cancelled.
pub async fn run(config: CloudCoreConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    let builder = BeehiveBuilder::new();
    let mut hive = builder.build().map_err(RunError::Build)?;
    let modules = hive.bus().modules().join(", ");
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %config.common_config.data_dir,
        modules = %if modules.is_empty() { "none" } else { modules.as_str() },
        "cloudcore started"
    );
    hive.start(&shutdown);
    shutdown.cancelled().await;
    hive.shutdown(SHUTDOWN_GRACE)
        .await
        .map_err(RunError::Shutdown)
}
