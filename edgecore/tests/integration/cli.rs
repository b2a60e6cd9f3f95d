//! The `edgecore` binary's flags: printed configs parse back, and a bad file
//! exits 64 naming the key before anything starts.

use std::process::{Command, Output};

fn edgecore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgecore"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run edgecore")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

#[test]
fn printed_configs_are_accepted_back() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--defaultconfig", "--minconfig"] {
        let out = edgecore(&[flag]);
        assert!(out.status.success(), "{flag}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("kind: EdgeCore"), "{text}");
        let parsed: edgecore::EdgeCoreConfig = daemonkit::config::parse(&text).unwrap();
        assert_eq!(parsed, edgecore::EdgeCoreConfig::default());
        write(&dir, "printed.yaml", text.as_bytes());
    }
}

#[test]
fn wrong_type_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "bad.yaml",
        br#"{modules: {edgeHub: {heartbeat: "abc"}}}"#,
    );
    let out = edgecore(&["--config", &path]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("modules.edgeHub.heartbeat"), "{stderr}");
}

#[test]
fn unknown_key_and_bad_range_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = write(
        &dir,
        "unknown.yaml",
        b"modules: {metaManager: {nonsense: 1}}",
    );
    let out = edgecore(&["--config", &unknown]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));

    let range = write(&dir, "range.yaml", b"modules: {edgeHub: {heartbeat: 0}}");
    let out = edgecore(&["--config", &range]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("modules.edgeHub.heartbeat"));
}

#[test]
fn missing_file_exits_64() {
    let out = edgecore(&["--config", "/nonexistent/apiary/edgecore.yaml"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}

#[test]
fn version_names_the_binary_and_release() {
    let out = edgecore(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("edgecore {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn join_refuses_bad_flags_before_contacting_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let token = format!("{}.a.b.c", "0".repeat(64));
    let good = [
        ("--cloudcore-ipport", "127.0.0.1:10000"),
        ("--token", token.as_str()),
        ("--edgenode-name", "edge-1"),
        ("--labels", "zone=lab"),
        ("--config-dir", etc.to_str().unwrap()),
    ];
    let cases = [
        ("--labels", "zone", "--labels: \"zone\" is not key=value"),
        (
            "--edgenode-name",
            "Edge_1",
            "--edgenode-name: \"Edge_1\" is not a valid node name",
        ),
        (
            "--cloudcore-ipport",
            "cloud",
            "--cloudcore-ipport: \"cloud\" is not HOST:PORT",
        ),
        ("--token", "not-a-token", "--token: "),
    ];
    for (flag, bad, expected) in cases {
        let mut args = vec!["join"];
        for (name, value) in good {
            args.extend([name, if name == flag { bad } else { value }]);
        }
        let out = edgecore(&args);
        assert_eq!(out.status.code(), Some(1), "{flag} {bad}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{flag} {bad}: {stderr}");
        assert!(!etc.exists(), "{flag} {bad}: nothing written");
    }
}
