//! Structured logging set-up shared by the daemons.
//!
//! Logs go to stderr through `tracing-subscriber`; the filter comes from
//! `RUST_LOG` and defaults to [`DEFAULT_FILTER`]: `info` for Apiary's own
//! crates, `warn` for the libraries under them (whose start-up chatter —
//! worker counts, storage plugins — says nothing an operator acts on).
//! `APIARY_LOG_FORMAT=json` switches to one JSON object per line for log
//! collectors.

use tracing_subscriber::EnvFilter;

/// The filter without `RUST_LOG`.
pub const DEFAULT_FILTER: &str = "warn,apiary=info,beehive=info,broker=info,cloudcore=info,\
                                  daemonkit=info,edgecore=info,kubestore=info,link=info,proto=info";

/// Installs the global tracing subscriber. Calling it twice is harmless
/// (the second call keeps the first subscriber).
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
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
