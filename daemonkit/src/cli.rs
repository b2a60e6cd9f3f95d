//! The configuration flags both daemons take, and what they do before the
//! daemon proper starts: `--defaultconfig`, `--minconfig`, `--config FILE`.

use std::path::{Path, PathBuf};

use crate::config::{self, ConfigError, DaemonConfig};

/// `--config`, `--defaultconfig`, `--minconfig`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (YAML). Without it the default path is read if it
    /// exists, and built-in defaults are used otherwise. Also accepted
    /// after a subcommand (`cloudcore gettoken --config FILE`).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Print the full default configuration and exit.
    #[arg(long, conflicts_with = "minconfig")]
    pub defaultconfig: bool,
    /// Print a minimal configuration and exit.
    #[arg(long)]
    pub minconfig: bool,
}

/// What the flags asked for.
#[derive(Debug)]
pub enum Resolved<T> {
    /// Text was printed (`--defaultconfig` / `--minconfig`); exit 0.
    Printed,
    /// Run with this configuration.
    Run(T),
}

impl ConfigArgs {
    /// Prints a configuration if asked, otherwise loads and validates one.
    /// Unsupported KubeEdge keys are named in one warning.
    pub fn resolve<T: DaemonConfig>(
        &self,
        default_path: &Path,
    ) -> Result<Resolved<T>, ConfigError> {
        if self.defaultconfig || self.minconfig {
            let text = if self.defaultconfig {
                config::default_yaml::<T>()?
            } else {
                config::minimal_yaml::<T>()?
            };
            print!("{text}");
            return Ok(Resolved::Printed);
        }
        let config: T = match &self.config {
            Some(path) => config::load(path)?,
            None if default_path.exists() => config::load(default_path)?,
            None => {
                tracing::info!(
                    path = %default_path.display(),
                    "no config file; using built-in defaults"
                );
                T::default()
            }
        };
        let unsupported = config.unsupported_keys();
        if !unsupported.is_empty() {
            tracing::warn!(
                keys = %unsupported.join(", "),
                "config: these KubeEdge settings have no effect in Apiary and are ignored"
            );
        }
        Ok(Resolved::Run(config))
    }
}
