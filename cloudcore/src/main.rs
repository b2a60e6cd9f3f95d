//! The `cloudcore` binary: flags, then [`cloudcore::run`].

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use cloudcore::config::CloudCoreConfig;

/// Apiary's cloud daemon (KubeEdge-compatible cloudcore).
#[derive(Debug, Parser)]
#[command(name = "cloudcore", version, about)]
struct Cli {
    #[command(flatten)]
    config: daemonkit::ConfigArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    daemonkit::launch::<CloudCoreConfig, _, _, _>(
        "cloudcore",
        &cli.config,
        Path::new(cloudcore::DEFAULT_CONFIG_PATH),
        cloudcore::run,
    )
}
