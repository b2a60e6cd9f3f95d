//! The `cloudcore` binary: flags, then [`cloudcore::run`] or a subcommand.

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cloudcore::config::CloudCoreConfig;

/// Apiary's cloud daemon (KubeEdge-compatible cloudcore).
#[derive(Debug, Parser)]
#[command(name = "cloudcore", version, about)]
struct Cli {
    #[command(flatten)]
    config: daemonkit::ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a valid join token for `edgecore join` (creates the CA if needed).
    Gettoken,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = Path::new(cloudcore::DEFAULT_CONFIG_PATH);
    match cli.command {
        None => daemonkit::launch::<CloudCoreConfig, _, _, _>(
            "cloudcore",
            &cli.config,
            path,
            cloudcore::run,
        ),
        Some(Command::Gettoken) => daemonkit::launch::<CloudCoreConfig, _, _, _>(
            "cloudcore",
            &cli.config,
            path,
            cloudcore::gettoken,
        ),
    }
}
