//! The edgecore systemd unit: `join --with-systemd` installs the binary and
//! `deploy/systemd/edgecore.service` (with the paths of this join) and runs
//! `systemctl enable --now`; `reset` disables it and removes the unit.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use daemonkit::files::{write_atomic, Access};

/// The unit's name.
pub const UNIT_NAME: &str = "edgecore.service";

/// The unit as shipped in `deploy/systemd/`, for the default paths.
const UNIT_TEMPLATE: &str = include_str!("../../../deploy/systemd/edgecore.service");
/// The binary path the template names.
const TEMPLATE_BIN: &str = "/usr/local/bin/edgecore";
/// The configuration path the template names.
const TEMPLATE_CONFIG: &str = "/etc/kubeedge/config/edgecore.yaml";

/// Why the unit could not be installed, started, stopped or removed.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// `systemctl` did not run.
    #[error("cannot run {command:?} (is this a systemd host? without systemd, start `edgecore --config <file>` yourself)")]
    NoSystemctl {
        /// The command.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `systemctl` ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A file could not be written or removed.
    #[error("{}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where the unit and the binary go, and which `systemctl` runs.
#[derive(Debug, Clone)]
pub struct Systemd {
    /// The directory of system units.
    pub unit_dir: PathBuf,
    /// Where the binary is installed for the unit to start.
    pub bin: PathBuf,
    /// The `systemctl` command.
    pub systemctl: OsString,
}

impl Default for Systemd {
    fn default() -> Self {
        Systemd {
            unit_dir: PathBuf::from("/etc/systemd/system"),
            bin: PathBuf::from(TEMPLATE_BIN),
            systemctl: OsString::from("systemctl"),
        }
    }
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> SystemdError + '_ {
    move |source| SystemdError::File {
        path: path.to_owned(),
        source,
    }
}

impl Systemd {
    /// The unit file's path.
    pub fn unit_path(&self) -> PathBuf {
        self.unit_dir.join(UNIT_NAME)
    }

    /// Whether the unit file exists.
    pub fn installed(&self) -> bool {
        self.unit_path().exists()
    }

    /// The unit text starting this binary with `config`, allowed to write
    /// to `writable` (the node's configuration and data directories).
    pub fn unit_text(&self, config: &Path, writable: &[&Path]) -> String {
        let paths: Vec<String> = writable
            .iter()
            .map(|p| format!("-{}", p.display()))
            .collect();
        UNIT_TEMPLATE
            .lines()
            .map(|line| {
                if line.starts_with("ReadWritePaths=") {
                    format!("ReadWritePaths={}", paths.join(" "))
                } else {
                    line.replace(TEMPLATE_CONFIG, &config.display().to_string())
                        .replace(TEMPLATE_BIN, &self.bin.display().to_string())
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    /// Installs the running binary at [`Systemd::bin`] (unless it runs from
    /// there), writes the unit for `config` and `writable` directories, and
    /// enables and starts it.
    pub fn install(&self, config: &Path, writable: &[&Path]) -> Result<(), SystemdError> {
        // Fail before writing anything on a host without systemd.
        self.systemctl(&["--version"])?;
        let exe = std::env::current_exe().map_err(file_error(&self.bin))?;
        let same = match (exe.canonicalize(), self.bin.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same {
            let bytes = std::fs::read(&exe).map_err(file_error(&exe))?;
            write_atomic(&self.bin, &bytes, Access::Executable).map_err(file_error(&self.bin))?;
        }
        let unit = self.unit_path();
        write_atomic(
            &unit,
            self.unit_text(config, writable).as_bytes(),
            Access::Public,
        )
        .map_err(file_error(&unit))?;
        self.systemctl(&["daemon-reload"])?;
        self.systemctl(&["enable", "--now", UNIT_NAME])
    }

    /// Stops and disables the unit and removes its file.
    pub fn remove(&self) -> Result<(), SystemdError> {
        self.systemctl(&["disable", "--now", UNIT_NAME])?;
        let unit = self.unit_path();
        std::fs::remove_file(&unit).map_err(file_error(&unit))?;
        self.systemctl(&["daemon-reload"])
    }

    fn systemctl(&self, args: &[&str]) -> Result<(), SystemdError> {
        let line = format!("{} {}", self.systemctl.to_string_lossy(), args.join(" "));
        let output = Command::new(&self.systemctl)
            .args(args)
            .output()
            .map_err(|source| SystemdError::NoSystemctl {
                command: line.clone(),
                source,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(SystemdError::Failed {
                command: line,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `systemctl` stand-in that appends its arguments to `log` and
    /// fails when asked to.
    fn fake_systemctl(dir: &Path, fail_on: &str) -> (OsString, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let log = dir.join("systemctl.log");
        let script = dir.join("systemctl");
        let text = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$*\" in *'{fail_on}'*) echo 'Unit not found.' >&2; exit 5;; esac\n",
            log.display()
        );
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (script.into_os_string(), log)
    }

    #[test]
    fn the_template_names_the_default_paths() {
        assert!(UNIT_TEMPLATE.contains(TEMPLATE_BIN));
        assert!(UNIT_TEMPLATE.contains(TEMPLATE_CONFIG));
        assert!(UNIT_TEMPLATE.contains("\nReadWritePaths=-/etc/kubeedge -/var/lib/kubeedge\n"));
        let systemd = Systemd {
            bin: PathBuf::from("/opt/apiary/edgecore"),
            ..Systemd::default()
        };
        let dirs = [Path::new("/srv/edge"), Path::new("/data/edge")];
        let text = systemd.unit_text(Path::new("/srv/edge/config/edgecore.yaml"), &dirs);
        let exec = "\nExecStart=/opt/apiary/edgecore --config /srv/edge/config/edgecore.yaml\n";
        assert!(text.contains(exec), "{text}");
        assert!(
            text.contains("\nReadWritePaths=-/srv/edge -/data/edge\n"),
            "{text}"
        );
        assert!(!text.contains(TEMPLATE_BIN), "{text}");
        assert!(
            !text
                .lines()
                .any(|l| !l.starts_with('#') && l.contains("/etc/kubeedge")),
            "{text}"
        );
    }

    #[test]
    fn install_and_remove_drive_systemctl() {
        let dir = tempfile::tempdir().unwrap();
        let (systemctl, log) = fake_systemctl(dir.path(), "never");
        let systemd = Systemd {
            unit_dir: dir.path().join("units"),
            bin: dir.path().join("bin/edgecore"),
            systemctl,
        };
        let config = dir.path().join("edgecore.yaml");
        systemd.install(&config, &[dir.path()]).unwrap();
        assert!(systemd.installed());
        let unit = std::fs::read_to_string(systemd.unit_path()).unwrap();
        assert!(unit.contains(&format!(
            "{} --config {}",
            systemd.bin.display(),
            config.display()
        )));
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            std::fs::read(&systemd.bin).unwrap(),
            exe,
            "the binary is installed"
        );
        systemd.remove().unwrap();
        assert!(!systemd.installed());
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls.lines().collect::<Vec<_>>(),
            [
                "--version",
                "daemon-reload",
                "enable --now edgecore.service",
                "disable --now edgecore.service",
                "daemon-reload"
            ]
        );
    }

    #[test]
    fn failures_name_the_command_and_write_nothing_without_systemctl() {
        let dir = tempfile::tempdir().unwrap();
        let (systemctl, _) = fake_systemctl(dir.path(), "enable");
        let systemd = Systemd {
            unit_dir: dir.path().join("units"),
            bin: dir.path().join("bin/edgecore"),
            systemctl,
        };
        let err = systemd.install(Path::new("/x.yaml"), &[]).unwrap_err();
        assert!(
            err.to_string().contains("enable --now edgecore.service")
                && err.to_string().contains("Unit not found"),
            "{err}"
        );
        let missing = Systemd {
            unit_dir: dir.path().join("units2"),
            systemctl: dir.path().join("no-such-systemctl").into_os_string(),
            ..systemd
        };
        let err = missing.install(Path::new("/x.yaml"), &[]).unwrap_err();
        assert!(matches!(err, SystemdError::NoSystemctl { .. }), "{err}");
        assert!(
            !missing.unit_dir.exists(),
            "nothing written without systemctl"
        );
    }
}
