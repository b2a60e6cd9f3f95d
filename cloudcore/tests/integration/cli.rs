//! The `cloudcore` binary's flags: printed configs parse back, and a bad
//! file exits 64 naming the key before anything starts.

use std::process::{Command, Output};

fn cloudcore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudcore"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cloudcore")
}

#[test]
fn printed_configs_are_accepted_back() {
    for flag in ["--defaultconfig", "--minconfig"] {
        let out = cloudcore(&[flag]);
        assert!(out.status.success(), "{flag}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("kind: CloudCore"), "{text}");
        let parsed: cloudcore::CloudCoreConfig = daemonkit::config::parse(&text).unwrap();
        assert_eq!(parsed, cloudcore::CloudCoreConfig::default());
    }
}

#[test]
fn bad_port_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "modules: {cloudHub: {websocket: {port: -1}}}").unwrap();
    let out = cloudcore(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("modules.cloudHub.websocket.port"),
        "{stderr}"
    );
}

#[test]
fn version_names_the_binary_and_release() {
    let out = cloudcore(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("cloudcore {}", env!("CARGO_PKG_VERSION"))
    );
}
