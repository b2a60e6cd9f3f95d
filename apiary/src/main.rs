//! The `apiary` binary: `apiary up` starts the whole system locally (see
//! [`apiary::up`]).

use std::path::PathBuf;
use std::process::ExitCode;

use apiary::layout::Ports;
use apiary::up::{self, UpOptions};
use clap::{Parser, Subcommand};

/// Apiary: KubeEdge-compatible edge–cloud sync.
#[derive(Debug, Parser)]
#[command(name = "apiary", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start cloudcore (embedded Kubernetes API) and one edgecore joined
    /// to it, in this process, until Ctrl-C; a second run reuses the data.
    Up(UpArgs),
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Where everything is kept (configurations, databases, certificates).
    #[arg(long, value_name = "DIR", default_value = "apiary-data")]
    data_dir: PathBuf,
    /// The edge node's name.
    #[arg(long, value_name = "NAME", default_value = "edge-1")]
    edgenode_name: String,
    /// Listen on free ports chosen by the OS instead of KubeEdge's
    /// (10000-10002, 10550, 1884, 6443, 9091, 9092).
    #[arg(long)]
    any_port: bool,
}

/// `deploy/examples/` of the checkout this binary was built from, when it
/// is still there; the relative path otherwise.
fn examples() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    built
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("deploy/examples"))
}

fn main() -> ExitCode {
    let Command::Up(args) = Cli::parse().command;
    let options = UpOptions {
        data_dir: args.data_dir,
        node_name: args.edgenode_name,
        ports: if args.any_port {
            Ports::Any
        } else {
            Ports::Default
        },
        examples: examples(),
    };
    daemonkit::launch::run_daemon("apiary up", |shutdown| async move {
        up::up(&options, shutdown, &mut std::io::stdout()).await
    })
}
