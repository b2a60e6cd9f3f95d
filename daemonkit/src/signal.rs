//! Turning SIGINT / SIGTERM into a cancellation.

use tokio_util::sync::CancellationToken;

/// Spawns a task that cancels `token` on the first SIGINT or SIGTERM.
/// The task ends when the token is cancelled by anyone.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        tokio::select! {
            () = token.cancelled() => {}
            name = wait_for_signal() => {
                tracing::info!(signal = name, "shutting down");
                token.cancel();
            }
        }
    });
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(err) => {
            tracing::warn!(%err, "cannot listen for SIGTERM; only Ctrl-C stops the daemon");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}
