//! Running an actix-web server until a cancellation token fires, then
//! stopping it gracefully. Every HTTP listener of both daemons (monitor,
//! certificate server, MetaServer, embedded API) goes through [`serve_until`].

use actix_web::dev::Server;
use tokio_util::sync::CancellationToken;

/// Drives `server` until it ends on its own or `cancel` fires; then stops it
/// gracefully (within the server's `shutdown_timeout`) and returns how it
/// ended.
pub async fn serve_until(server: Server, cancel: CancellationToken) -> std::io::Result<()> {
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = cancel.cancelled() => {
            // The server future carries out the stop command itself, so it
            // must keep being polled while the stop completes.
            let (result, ()) = tokio::join!(server, handle.stop(true));
            result
        }
    }
}
