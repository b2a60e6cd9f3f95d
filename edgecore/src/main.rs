//! The `edgecore` binary: flags, then [`edgecore::run`], or `join`/`reset`
//! (keadm's edge commands, [`edgecore::join`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edgecore::config::EdgeCoreConfig;
use edgecore::join::{self, JoinOptions, ResetOptions, Systemd};

/// Apiary's edge daemon (KubeEdge-compatible edgecore).
#[derive(Debug, Parser)]
#[command(name = "edgecore", version, about)]
struct Cli {
    #[command(flatten)]
    config: daemonkit::ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Join this node to a cloudcore: check the CA against the token, get
    /// the node certificate, write edgecore.yaml (and with --with-systemd
    /// install and start the unit).
    Join(JoinArgs),
    /// Stop edgecore and remove its configuration, certificates and
    /// database (asks first unless --force).
    Reset(ResetArgs),
}

#[derive(Debug, clap::Args)]
struct JoinArgs {
    /// CloudHub's WebSocket address (port 10000 by default).
    #[arg(long, value_name = "HOST:PORT")]
    cloudcore_ipport: String,
    /// The join token, from `cloudcore gettoken` (or `keadm gettoken`).
    #[arg(long)]
    token: String,
    /// This node's name in Kubernetes.
    #[arg(long, value_name = "NAME")]
    edgenode_name: String,
    /// The certificate server's port on the cloudcore host.
    #[arg(long, default_value_t = join::DEFAULT_CERT_PORT)]
    certport: u16,
    /// Labels for the Node: `k=v,k2=v2`.
    #[arg(long, value_name = "K=V,...", default_value = "")]
    labels: String,
    /// Dial CloudHub over QUIC instead of WebSocket.
    #[arg(long)]
    quic: bool,
    /// CloudHub's QUIC port on the cloudcore host (with --quic).
    #[arg(long, default_value_t = join::DEFAULT_QUIC_PORT)]
    quicport: u16,
    /// Install the systemd unit and start edgecore with it.
    #[arg(long)]
    with_systemd: bool,
    /// Directory for config/edgecore.yaml, ca/ and certs/.
    #[arg(long, value_name = "DIR", default_value = join::DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Directory for the database.
    #[arg(long, value_name = "DIR", default_value = join::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

/// `reset` reads the configuration `join` wrote from `--config` (the
/// daemon's flag), the default path without it.
#[derive(Debug, clap::Args)]
struct ResetArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => daemonkit::launch::<EdgeCoreConfig, _, _, _>(
            "edgecore",
            &cli.config,
            Path::new(edgecore::DEFAULT_CONFIG_PATH),
            edgecore::run,
        ),
        Some(Command::Join(args)) => {
            daemonkit::launch::run_command("edgecore join", join_command(args))
        }
        Some(Command::Reset(args)) => {
            let config = cli
                .config
                .config
                .unwrap_or_else(|| edgecore::DEFAULT_CONFIG_PATH.into());
            daemonkit::launch::run_command("edgecore reset", reset_command(args, config))
        }
    }
}

async fn join_command(args: JoinArgs) -> Result<(), join::JoinError> {
    let options = JoinOptions {
        labels: join::parse_labels(&args.labels)?,
        cloudcore_ipport: args.cloudcore_ipport,
        token: args.token,
        node_name: args.edgenode_name,
        cert_port: args.certport,
        quic: args.quic,
        quic_port: args.quicport,
        config_dir: args.config_dir,
        data_dir: args.data_dir,
        with_systemd: args.with_systemd.then(Systemd::default),
    };
    let path = join::join(&options, &mut std::io::stdout()).await?;
    if !args.with_systemd {
        println!(
            "joined; start the node with: edgecore --config {}",
            path.display()
        );
    }
    Ok(())
}

async fn reset_command(args: ResetArgs, config: PathBuf) -> Result<(), join::ResetError> {
    let options = ResetOptions {
        config,
        force: args.force,
        systemd: Some(Systemd::default()),
    };
    let mut input = std::io::BufReader::new(std::io::stdin());
    join::reset(&options, &mut input, &mut std::io::stdout()).await
}
