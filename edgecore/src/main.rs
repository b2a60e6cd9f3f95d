//! The `edgecore` binary: flags, then [`edgecore::run`].

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use edgecore::config::EdgeCoreConfig;

/// Apiary's edge daemon (KubeEdge-compatible edgecore).
#[derive(Debug, Parser)]
#[command(name = "edgecore", version, about)]
struct Cli {
    #[command(flatten)]
    config: daemonkit::ConfigArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    daemonkit::launch::<EdgeCoreConfig, _, _, _>(
        "edgecore",
        &cli.config,
        Path::new(edgecore::DEFAULT_CONFIG_PATH),
        edgecore::run,
    )
}
