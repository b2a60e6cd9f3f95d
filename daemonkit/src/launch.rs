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
    run_daemon(name, |shutdown| run(config, shutdown))
}

/// Runs `run(shutdown)` on a multi-threaded tokio runtime until it returns;
/// the token is cancelled on SIGINT or SIGTERM. Logs the stop or the
/// failure and maps it to an exit status. [`launch`] without the
/// configuration, for a process that runs daemons it configures itself.
pub fn run_daemon<F, Fut, E>(name: &str, run: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    logging::init();
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
        let result = run(shutdown.clone()).await;
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

/// Runs a one-shot command (`edgecore join`) on a single-threaded runtime
/// and maps its outcome to an exit status, printing the error chain. No
/// signal handler: Ctrl-C ends it at once, as users expect of a command.
pub fn run_command<Fut, E>(name: &str, work: Fut) -> ExitCode
where
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    logging::init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("{name}: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
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
