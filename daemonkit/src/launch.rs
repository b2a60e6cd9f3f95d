//! The common shape of a daemon's `main`: resolve the configuration (or
//! print one and stop), set up logging and signals, run the daemon on a
//! multi-threaded tokio runtime, and map the outcome to an exit status.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::cli::{ConfigArgs, Resolved};
use crate::config::{DaemonConfig, EXIT_CONFIG};
use crate::{logging, signal};

/// Exit status when the daemon fails after start-up.
pub const EXIT_FAILURE: u8 = 1;

/// Runs a daemon: `run(config, shutdown)` is awaited until it returns; the
/// shutdown token is cancelled on SIGINT or SIGTERM. A configuration error
/// exits [`EXIT_CONFIG`] before `run` is called, so before any port opens.
pub fn launch<T, F, Fut, E>(name: &str, args: &ConfigArgs, default_path: &Path, run: F) -> ExitCode
where
    T: DaemonConfig,
    F: FnOnce(T, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    logging::init();
    let config = match args.resolve::<T>(default_path) {
        Ok(Resolved::Printed) => return ExitCode::SUCCESS,
        Ok(Resolved::Run(config)) => config,
        Err(err) => {
            eprintln!("{name}: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("{name}: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let outcome = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        signal::cancel_on_signal(shutdown.clone());
        let result = run(config, shutdown.clone()).await;
        shutdown.cancel();
        result
    });
    match outcome {
        Ok(()) => {
            tracing::info!("{name} stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "{name} failed");
            eprintln!("{name}: {}", error_chain(&err));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

pub use beehive::error_chain;

/// Stops a daemon: closes `tasks` (servers and background loops already
/// cancelled through the shutdown token) and shuts the beehive down, both
/// within `grace`. Tasks still running after the grace are logged; modules
/// that did not stop are the error.
pub async fn stop(
    hive: beehive::Beehive,
    tasks: &tokio_util::task::TaskTracker,
    grace: std::time::Duration,
) -> Result<(), beehive::ShutdownError> {
    tasks.close();
    let (modules, waited) = tokio::join!(
        hive.shutdown(grace),
        tokio::time::timeout(grace, tasks.wait())
    );
    if waited.is_err() {
        tracing::warn!(
            ?grace,
            "background tasks did not stop within the grace period"
        );
    }
    modules
}
