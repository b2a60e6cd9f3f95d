//! Structured logging set-up shared by the daemons.
//!
//! Logs go to stderr through `tracing-subscriber`; the filter comes from
//! `RUST_LOG` and defaults to `info`. `APIARY_LOG_FORMAT=json` switches to
//! one JSON object per line for log collectors.

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber. Calling it twice is harmless
/// (the second call keeps the first subscriber).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("APIARY_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already initialised (tests, embedding): keep the existing subscriber.
    drop(result);
}
