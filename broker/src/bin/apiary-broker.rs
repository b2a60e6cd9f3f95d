//! `apiary-broker`: edgecore's embedded MQTT broker on its own, to try
//! mappers against it and for the tests that restart it (a process can
//! open a data directory only once, see `BrokerError::DataDirOpen`).
//!
//! Prints `listening tcp=ADDR ws=ADDR` (`ws=-` without WebSocket) on stdout
//! once it accepts clients; stops on SIGINT or SIGTERM, or, with
//! `--stop-on-stdin-eof`, when its standard input closes. A bad config
//! file exits with 64 before any port opens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use broker::{Broker, BrokerSettings, RunningBroker};
use clap::Parser;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

/// Exit status for a bad command line or config file (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// edgecore's embedded MQTT broker, standalone.
#[derive(Debug, Parser)]
#[command(name = "apiary-broker")]
struct Args {
    /// MQTT listener address (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:1884")]
    listen: SocketAddr,
    /// Directory of persistent sessions and retained messages.
    #[arg(long)]
    data_dir: PathBuf,
    /// YAML file holding a `modules.eventBus.broker` section (its content,
    /// not the whole edgecore.yaml); absent: the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// An extra user, as edgecore's `mqttUsername`.
    #[arg(long, default_value = "")]
    bus_username: String,
    /// Its password (`mqttPassword`).
    #[arg(long, default_value = "")]
    bus_password: String,
    /// Unacknowledged messages in flight per session (`mqttSessionQueueSize`).
    #[arg(long, default_value_t = 100)]
    session_queue: u32,
    /// Stop when standard input reaches its end.
    #[arg(long)]
    stop_on_stdin_eof: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = match read_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("apiary-broker: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("apiary-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apiary-broker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_config(path: Option<&std::path::Path>) -> anyhow::Result<Broker> {
    let Some(path) = path else {
        return Ok(Broker::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_norway::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

async fn run(args: Args, config: Broker) -> anyhow::Result<()> {
    let broker = RunningBroker::start(BrokerSettings {
        listen: args.listen,
        config,
        data_dir: args.data_dir,
        bus_username: args.bus_username,
        bus_password: args.bus_password,
        session_queue: args.session_queue,
    })
    .await?;
    let ws = broker
        .ws_addr()
        .map_or_else(|| "-".to_owned(), |a| a.to_string());
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening tcp={} ws={ws}", broker.tcp_addr())?;
    stdout.flush()?;
    drop(stdout);

    let mut terminate = signal(SignalKind::terminate())?;
    let stdin_closed = async {
        if !args.stop_on_stdin_eof {
            return std::future::pending().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = [0_u8; 256];
        // Bounded by the input: each read consumes some or ends at EOF.
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        () = stdin_closed => {}
    }
    broker.stop();
    Ok(())
}
