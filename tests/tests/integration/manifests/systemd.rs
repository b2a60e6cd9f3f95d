//! `deploy/systemd/edgecore.service`: its sections and settings, what the
//! hardening leaves writable, the real edgecore binary taking its command
//! line, and `systemd-analyze verify` where systemd is installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use edgecore::EdgeCoreConfig;

use super::{deploy, read};

/// A unit file's `key=value` lines by section, in order.
type Sections = BTreeMap<String, Vec<(String, String)>>;

/// The sections of a unit file.
fn unit_sections(text: &str) -> Sections {
    let mut sections = Sections::new();
    let mut current = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(section.to_owned());
            sections.entry(section.to_owned()).or_default();
            continue;
        }
        let section = current
            .clone()
            .unwrap_or_else(|| panic!("a line outside any section: {line}"));
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        sections
            .entry(section)
            .or_default()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    sections
}

/// The values of `key` in `section`.
fn values<'a>(sections: &'a Sections, section: &str, key: &str) -> Vec<&'a str> {
    let lines = sections.get(section).map(Vec::as_slice).unwrap_or_default();
    lines
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The settings edgecore needs: a simple service (edgecore does not call
/// sd_notify) restarted always, started at boot; returns ExecStart's words.
fn check_settings(sections: &Sections) -> Vec<String> {
    let names: Vec<&str> = sections.keys().map(String::as_str).collect();
    assert_eq!(names, ["Install", "Service", "Unit"]);
    let service = |key| values(sections, "Service", key);
    assert_eq!(service("Type"), ["simple"]);
    assert_eq!(service("Restart"), ["always"]);
    assert_eq!(service("RestartSec").len(), 1);
    assert_eq!(service("KillMode").len(), 1);
    assert_eq!(
        values(sections, "Install", "WantedBy"),
        ["multi-user.target"]
    );
    let exec = service("ExecStart").concat();
    let exec: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
    let want = [
        "/usr/local/bin/edgecore",
        "--config",
        edgecore::DEFAULT_CONFIG_PATH,
    ];
    assert_eq!(exec, want);
    exec
}

/// Everything edgecore writes with its defaults (the database, the
/// certificates it rotates, the CA) is writable under the hardening.
fn check_writable(sections: &Sections) {
    let writable: Vec<PathBuf> = values(sections, "Service", "ReadWritePaths")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|p| PathBuf::from(p.trim_start_matches('-')))
        .collect();
    let defaults = EdgeCoreConfig::default();
    let hub = &defaults.modules.edge_hub;
    let database = &defaults.database.data_source;
    for written in [
        database,
        &hub.tls_cert_file,
        &hub.tls_private_key_file,
        &hub.tls_ca_file,
    ] {
        let inside = writable
            .iter()
            .any(|dir| Path::new(written).starts_with(dir));
        assert!(
            inside,
            "edgecore writes {written}, outside ReadWritePaths {writable:?}"
        );
    }
}

/// The real binary takes the command line: with `--defaultconfig` added it
/// prints a loadable config; with the file missing it names the file and
/// exits 64 (so `--config` is what it reads).
fn check_command_line(edgecore: &Path, exec: &[String], dir: &Path) {
    let out = Command::new(edgecore)
        .args(&exec[1..])
        .arg("--defaultconfig")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    daemonkit::config::parse::<EdgeCoreConfig>(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let missing = dir.join("edgecore.yaml");
    let out = Command::new(edgecore)
        .arg(&exec[1])
        .arg(&missing)
        .output()
        .unwrap();
    let code = Some(i32::from(daemonkit::config::EXIT_CONFIG));
    assert_eq!(out.status.code(), code);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}

#[test]
fn the_systemd_unit_runs_edgecore_with_what_it_needs() {
    let text = read(&deploy("systemd/edgecore.service"));
    let sections = unit_sections(&text);
    let exec = check_settings(&sections);
    check_writable(&sections);
    let edgecore = tests::binaries::path("edgecore");
    let dir = tempfile::tempdir().unwrap();
    check_command_line(&edgecore, &exec, dir.path());

    // systemd's own check, on a copy that runs the binary just built
    // (verify needs ExecStart to exist). It exits 0 on unknown keys and
    // bad values too, so any output is a failure.
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_err() {
        eprintln!("note: no systemd-analyze (Debian package systemd); the unit was only parsed");
        return;
    }
    let copy = dir.path().join("edgecore.service");
    let text = text.replace(&exec[0], &edgecore.display().to_string());
    std::fs::write(&copy, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let said = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}
