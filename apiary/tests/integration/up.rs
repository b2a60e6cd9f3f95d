//! README's first command, as a user runs it: `apiary up` (on free ports,
//! in a temp directory) prints its listeners and follow-up commands; every
//! printed command succeeds when pasted into a shell (kubectl against the
//! cloud and against the edge's MetaServer, `kubectl apply` of the example
//! DeviceModel and Device, mosquitto_pub of a twin report), and the report
//! reaches the Device's status; both daemons' printed monitor addresses
//! answer /metrics, /healthz and /readyz; SIGINT stops both with status 0;
//! a second run reuses the data (no new join, the Device is still there).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use apiary::summary::PROMPT;
use tests::eventually;
use tests::link::http_get;
use tokio::process::Command;

use crate::driver::Up;

const PATIENCE: Duration = Duration::from_secs(60);

fn prompted(summary: &[String]) -> Vec<String> {
    summary
        .iter()
        .filter_map(|l| l.strip_prefix(PROMPT))
        .map(str::to_owned)
        .collect()
}

/// Runs `command` in a shell as a user would paste it; its stdout if it
/// succeeded.
async fn shell(command: &str, home: &Path) -> Result<String, String> {
    let out = Command::new("sh")
        .args(["-c", command])
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{command}: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The monitor addresses the summary prints, cloud's first.
fn monitors(summary: &[String]) -> Vec<SocketAddr> {
    summary
        .iter()
        .filter(|l| l.trim_start().starts_with("metrics, health"))
        .filter_map(|l| {
            let url = l.split_whitespace().find(|w| w.starts_with("http://"))?;
            url.strip_prefix("http://")?
                .strip_suffix("/metrics")?
                .parse()
                .ok()
        })
        .collect()
}

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_and_its_printed_commands_work() {
    if !(have("kubectl") && have("mosquitto_pub")) {
        eprintln!("note: kubectl or mosquitto_pub missing (scripts/install-deps.sh installs them); skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    let mut up = Up::start(&data);
    let summary = up.summary().await;
    let text = summary.join("\n");
    assert!(text.contains("[5/5] wrote"), "a fresh join:\n{text}");
    assert!(text.contains("(edge-1, Ready)"), "{text}");
    let commands = prompted(&summary);
    assert_eq!(commands.len(), 6, "{text}");
    let (check, steps) = commands.split_last().unwrap();
    for command in steps {
        let out = shell(command, &home)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        if command.ends_with(" get nodes") {
            assert!(
                out.lines()
                    .any(|l| l.starts_with("edge-1 ") && l.contains(" Ready ")),
                "{out}"
            );
        }
        if command.contains("--server http://") {
            assert!(
                out.contains("sensor-1"),
                "the edge's MetaServer has the Device: {out}"
            );
        }
    }
    eventually(
        "the twin report in the Device's status",
        PATIENCE,
        || async { (shell(check, &home).await.ok()?.trim() == "21").then_some(()) },
    )
    .await;
    let monitors = monitors(&summary);
    assert_eq!(monitors.len(), 2, "{text}");
    for (addr, family) in monitors.into_iter().zip(["cloudhub_", "edgehub_"]) {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let reply = http_get(addr, path).await;
            assert!(reply.starts_with("HTTP/1.1 200"), "{addr}{path}: {reply}");
        }
        let metrics = http_get(addr, "/metrics").await;
        assert!(
            metrics.contains(&format!("# TYPE {family}")),
            "{addr}: {metrics}"
        );
    }
    let a_second = Command::new(env!("CARGO_BIN_EXE_apiary"))
        .args(["up", "--any-port", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "off")
        .output()
        .await
        .unwrap();
    assert!(!a_second.status.success());
    assert!(
        String::from_utf8_lossy(&a_second.stderr).contains("in use by another `apiary up`"),
        "{a_second:?}"
    );
    let rest = up.interrupt().await;
    assert!(rest.contains("stopped; the data stays in"), "{rest}");

    // Again: the same data, no new join, the Device still there.
    let mut up = Up::start(&data);
    let summary = up.summary().await;
    let text = summary.join("\n");
    assert!(
        text.contains("cloud: reusing") && text.contains("edge: reusing"),
        "{text}"
    );
    assert!(!text.contains("[5/5]"), "no second join:\n{text}");
    assert!(text.contains("(edge-1, Ready)"), "{text}");
    let check = prompted(&summary).pop().unwrap();
    assert_eq!(
        shell(&check, &home).await.unwrap().trim(),
        "21",
        "kept across runs"
    );
    up.interrupt().await;
}
