//! `edgecore reset`: stops edgecore (its systemd unit, or processes running
//! with this configuration) and removes what `join` and the daemon wrote:
//! the configuration, CA, certificate and key, the database with its
//! journal files, the broker's data directory, the unit, and the
//! directories left empty. Asks first unless `--force`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sysinfo::{
    Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, Signal, System, UpdateKind,
};

use super::systemd::{Systemd, SystemdError};
use crate::config::EdgeCoreConfig;

/// How long a stopped edgecore gets to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How long a killed edgecore gets to disappear.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How often the process table is read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// What `edgecore reset` was asked to do.
#[derive(Debug, Clone)]
pub struct ResetOptions {
    /// The configuration `join` wrote.
    pub config: PathBuf,
    /// Skip the confirmation.
    pub force: bool,
    /// Where the unit would be; `None` leaves systemd alone (a node that
    /// was never joined with `--with-systemd`, like the quickstart's).
    pub systemd: Option<Systemd>,
}

/// Why `edgecore reset` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// The configuration exists but cannot be read; it names the files.
    #[error("cannot read {}: fix or remove it by hand", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: daemonkit::ConfigError,
    },
    /// The answer to the confirmation was not yes.
    #[error("not confirmed; nothing was changed (--force skips the question)")]
    NotConfirmed,
    /// Stopping or removing the unit failed.
    #[error("removing the systemd unit")]
    Systemd(#[from] SystemdError),
    /// The process table could not be read.
    #[error("cannot read the process table: {0}")]
    Processes(String),
    /// An edgecore process did not exit, even after SIGKILL.
    #[error("edgecore (pid {0}) did not exit")]
    StillRunning(u32),
    /// A file could not be removed.
    #[error("cannot remove {}", path.display())]
    Remove {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What a reset would stop and remove.
#[derive(Debug, Default)]
struct Plan {
    unit: bool,
    pids: Vec<Pid>,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    /// Directories removed when they end up empty, deepest first.
    parents: Vec<PathBuf>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        !self.unit && self.pids.is_empty() && self.files.is_empty() && self.dirs.is_empty()
    }
}

/// Runs `edgecore reset`: asks on `input` (unless forced) and prints a line
/// per step to `out`.
pub async fn reset(
    options: &ResetOptions,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), ResetError> {
    let plan = plan(options)?;
    // Terminal output is best effort: a closed stdout must not stop a reset.
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "nothing to reset: no {}, no {} unit, no edgecore running with it",
            options.config.display(),
            super::UNIT_NAME
        );
        return Ok(());
    }
    if !options.force {
        describe(&plan, options, out);
        let _ = write!(out, "Proceed? [y/N] ");
        let _ = out.flush();
        let mut answer = String::new();
        // An unreadable or closed input is a "no".
        let _ = input.read_line(&mut answer);
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(ResetError::NotConfirmed);
        }
    }
    let mut stopped = Vec::new();
    if let Some(systemd) = options.systemd.as_ref().filter(|_| plan.unit) {
        systemd.remove()?;
        stopped.push(format!(
            "stopped and removed {}",
            systemd.unit_path().display()
        ));
    }
    stop(&plan.pids).await?;
    if !plan.pids.is_empty() {
        let pids: Vec<String> = plan.pids.iter().map(ToString::to_string).collect();
        stopped.push(format!("stopped edgecore (pid {})", pids.join(", ")));
    }
    if stopped.is_empty() {
        stopped.push("edgecore was not running".to_owned());
    }
    let _ = writeln!(out, "[1/3] {}", stopped.join("; "));
    for file in &plan.files {
        remove(file, |p| std::fs::remove_file(p))?;
    }
    for dir in &plan.dirs {
        remove(dir, |p| std::fs::remove_dir_all(p))?;
    }
    let _ = writeln!(
        out,
        "[2/3] removed {} files and {} directories",
        plan.files.len(),
        plan.dirs.len()
    );
    // Only directories left empty go; anything else in them stays.
    let emptied: Vec<String> = plan
        .parents
        .iter()
        .filter(|dir| std::fs::remove_dir(dir).is_ok())
        .map(|dir| dir.display().to_string())
        .collect();
    let _ = writeln!(
        out,
        "[3/3] removed empty directories: {}",
        if emptied.is_empty() {
            "none".to_owned()
        } else {
            emptied.join(", ")
        }
    );
    Ok(())
}

fn remove(path: &Path, op: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<(), ResetError> {
    match op(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ResetError::Remove {
            path: path.to_owned(),
            source,
        }),
    }
}

fn describe(plan: &Plan, options: &ResetOptions, out: &mut (dyn Write + Send)) {
    let _ = writeln!(out, "edgecore reset will:");
    if let Some(systemd) = options.systemd.as_ref().filter(|_| plan.unit) {
        let _ = writeln!(
            out,
            "  stop, disable and remove {}",
            systemd.unit_path().display()
        );
    }
    for pid in &plan.pids {
        let _ = writeln!(out, "  stop edgecore (pid {pid})");
    }
    for path in plan.files.iter().chain(&plan.dirs) {
        let _ = writeln!(out, "  remove {}", path.display());
    }
}

/// Reads the configuration (when it exists) for the files to remove and
/// the process table for edgecores running with it.
fn plan(options: &ResetOptions) -> Result<Plan, ResetError> {
    let mut plan = Plan {
        unit: options.systemd.as_ref().is_some_and(Systemd::installed),
        pids: running_with(&options.config)?,
        ..Plan::default()
    };
    if !options.config.exists() {
        return Ok(plan);
    }
    let config: EdgeCoreConfig =
        daemonkit::config::load(&options.config).map_err(|source| ResetError::Config {
            path: options.config.clone(),
            source,
        })?;
    let hub = &config.modules.edge_hub;
    let mut files = vec![
        options.config.clone(),
        PathBuf::from(&hub.tls_ca_file),
        PathBuf::from(&hub.tls_cert_file),
        PathBuf::from(&hub.tls_private_key_file),
    ];
    // Both SQLite databases, with the journal files SQLite keeps beside them.
    for db in [
        PathBuf::from(&config.database.data_source),
        crate::edgehub::outbox_path(&config.database.data_source),
    ] {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            files.push(PathBuf::from(name));
        }
    }
    files.retain(|f| !f.as_os_str().is_empty() && f.exists());
    files.sort();
    files.dedup();
    plan.files = files;
    let broker = crate::broker_data_dir(&config);
    if broker.is_dir() {
        plan.dirs.push(broker);
    }
    // The directories the files were in, and the configuration directory
    // above `config/edgecore.yaml` (join's layout), deepest first.
    let mut parents: Vec<PathBuf> = plan
        .files
        .iter()
        .chain(&plan.dirs)
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    if let Some(dir) = options.config.parent().and_then(Path::parent) {
        parents.push(dir.to_path_buf());
    }
    parents.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    parents.dedup();
    plan.parents = parents;
    Ok(plan)
}

/// Whether `args` (an edgecore command line) names `config`.
fn names_config(args: &[std::ffi::OsString], config: &Path) -> bool {
    let same = |arg: &str| {
        let path = Path::new(arg);
        path == config
            || matches!((path.canonicalize(), config.canonicalize()), (Ok(a), Ok(b)) if a == b)
    };
    let mut args = args.iter().map(|a| a.to_string_lossy());
    let mut named = false;
    while let Some(arg) = args.next() {
        if arg == "--config" {
            named = true;
            if args.next().is_some_and(|value| same(&value)) {
                return true;
            }
        } else if let Some(value) = arg.strip_prefix("--config=") {
            named = true;
            if same(value) {
                return true;
            }
        }
    }
    // Without --config, edgecore reads the default path.
    !named && config == Path::new(crate::DEFAULT_CONFIG_PATH)
}

/// The edgecore daemons (not this process, nor its subcommands) running
/// with `config`.
fn running_with(config: &Path) -> Result<Vec<Pid>, ResetError> {
    let me = sysinfo::get_current_pid().ok();
    let mut system = process_table()?;
    system.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_cmd(UpdateKind::Always),
    );
    let mut pids: Vec<Pid> = system
        .processes()
        .iter()
        .filter(|(pid, process)| {
            let args = process.cmd();
            let is_edgecore = args.first().is_some_and(|arg0| {
                Path::new(arg0)
                    .file_name()
                    .is_some_and(|name| name == "edgecore")
            });
            // `edgecore join`/`reset` are not the daemon.
            let subcommand = args
                .get(1)
                .is_some_and(|arg| matches!(arg.to_str(), Some("join" | "reset")));
            Some(**pid) != me
                && process.thread_kind().is_none()
                && is_edgecore
                && !subcommand
                && process.status() != ProcessStatus::Zombie
                && names_config(args.get(1..).unwrap_or_default(), config)
        })
        .map(|(pid, _)| *pid)
        .collect();
    pids.sort();
    Ok(pids)
}

fn process_table() -> Result<System, ResetError> {
    System::new().map_err(|err| ResetError::Processes(err.to_string()))
}

/// Whether `pid` still runs (a zombie has exited).
fn alive(system: &mut System, pid: Pid) -> bool {
    system.refresh_processes(ProcessesToUpdate::Some(&[pid]), true);
    system
        .process(pid)
        .is_some_and(|p| p.status() != ProcessStatus::Zombie)
}

/// Sends SIGTERM, waits [`STOP_GRACE`], then SIGKILL and waits
/// [`KILL_GRACE`].
async fn stop(pids: &[Pid]) -> Result<(), ResetError> {
    let mut system = process_table()?;
    for &pid in pids {
        if signal_and_wait(&mut system, pid, Signal::Term, STOP_GRACE).await {
            continue;
        }
        tracing::warn!(%pid, "edgecore did not stop within {STOP_GRACE:?}; killing it");
        if !signal_and_wait(&mut system, pid, Signal::Kill, KILL_GRACE).await {
            return Err(ResetError::StillRunning(pid.as_u32()));
        }
    }
    Ok(())
}

/// Sends `signal` to `pid` (if it still runs) and waits up to `grace` for
/// it to exit; whether it did.
async fn signal_and_wait(system: &mut System, pid: Pid, signal: Signal, grace: Duration) -> bool {
    if !alive(system, pid) {
        return true;
    }
    if let Some(process) = system.process(pid) {
        process.kill_with(signal);
    }
    let deadline = tokio::time::Instant::now() + grace;
    while alive(system, pid) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(Into::into).collect()
    }

    #[test]
    fn command_lines_naming_the_config() {
        let config = Path::new("/srv/edge/config/edgecore.yaml");
        assert!(names_config(
            &args(&["--config", "/srv/edge/config/edgecore.yaml"]),
            config
        ));
        assert!(names_config(
            &args(&["--config=/srv/edge/config/edgecore.yaml"]),
            config
        ));
        assert!(!names_config(&args(&["--config", "/other.yaml"]), config));
        assert!(!names_config(&args(&[]), config));
        let default = Path::new(crate::DEFAULT_CONFIG_PATH);
        assert!(names_config(&args(&[]), default));
        assert!(!names_config(&args(&["--config", "/other.yaml"]), default));
    }

    #[tokio::test]
    async fn nothing_to_reset_is_said_and_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let options = ResetOptions {
            config: dir.path().join("config/edgecore.yaml"),
            force: false,
            systemd: Some(Systemd {
                unit_dir: dir.path().join("units"),
                ..Systemd::default()
            }),
        };
        let mut out = Vec::new();
        reset(&options, &mut std::io::empty(), &mut out)
            .await
            .unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("nothing to reset"));
    }

    #[tokio::test]
    async fn removes_only_after_a_yes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("kubeedge");
        let config_path = root.join("config/edgecore.yaml");
        let mut config = EdgeCoreConfig::default();
        let hub = &mut config.modules.edge_hub;
        hub.tls_ca_file = root.join("ca/rootCA.crt").display().to_string();
        hub.tls_cert_file = root.join("certs/server.crt").display().to_string();
        hub.tls_private_key_file = root.join("certs/server.key").display().to_string();
        config.database.data_source = dir.path().join("data/edgecore.db").display().to_string();
        let keep = root.join("certs/unrelated.txt");
        for file in [
            &hub.tls_ca_file,
            &hub.tls_cert_file,
            &hub.tls_private_key_file,
            &config.database.data_source,
            &format!("{}-wal", config.database.data_source),
        ] {
            std::fs::create_dir_all(Path::new(file).parent().unwrap()).unwrap();
            std::fs::write(file, "x").unwrap();
        }
        std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
        std::fs::write(&config_path, serde_norway::to_string(&config).unwrap()).unwrap();
        std::fs::write(&keep, "not ours").unwrap();
        let options = ResetOptions {
            config: config_path.clone(),
            force: false,
            systemd: Some(Systemd {
                unit_dir: dir.path().join("units"),
                ..Systemd::default()
            }),
        };

        let mut out = Vec::new();
        let err = reset(&options, &mut &b"n\n"[..], &mut out)
            .await
            .unwrap_err();
        assert!(matches!(err, ResetError::NotConfirmed), "{err}");
        let asked = String::from_utf8(out).unwrap();
        assert!(
            asked.contains(&format!("remove {}", config_path.display())),
            "{asked}"
        );
        assert!(config_path.exists(), "a no changes nothing");

        let mut out = Vec::new();
        reset(&options, &mut &b"yes\n"[..], &mut out).await.unwrap();
        assert!(!config_path.exists());
        assert!(
            !dir.path().join("data").exists(),
            "the emptied data directory goes"
        );
        assert!(!root.join("ca").exists() && !root.join("config").exists());
        assert_eq!(
            std::fs::read_to_string(&keep).unwrap(),
            "not ours",
            "other files stay"
        );
        let said = String::from_utf8(out).unwrap();
        assert!(said.contains("removed 6 files"), "{said}");
    }
}
