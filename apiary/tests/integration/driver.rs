//! `apiary up` as a child process: started on free ports in a data
//! directory, read up to the end of its summary, stopped with SIGINT.
//! Shared by the integration test and the `up` bench (`#[path]`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use apiary::summary::CLOSING;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long a start or a stop may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `apiary up` and its stdout.
pub struct Up {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Up {
    /// Starts `apiary up --any-port --data-dir <data>`.
    pub fn start(data: &Path) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_apiary"))
            .args(["up", "--any-port", "--data-dir"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Up { child, lines }
    }

    /// Everything printed up to and including the summary's last line.
    pub async fn summary(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        tokio::time::timeout(PATIENCE, async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                let last = line.starts_with(CLOSING);
                seen.push(line);
                if last {
                    return;
                }
            }
            panic!("apiary up ended before its summary:\n{}", seen.join("\n"));
        })
        .await
        .unwrap_or_else(|_| panic!("no summary within {PATIENCE:?}"));
        seen
    }

    /// Sends SIGINT (Ctrl-C) and returns what was printed until the exit.
    pub async fn interrupt(mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        let sent = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let mut rest = Vec::new();
        while let Some(line) = self.lines.next_line().await.unwrap() {
            rest.push(line);
        }
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("apiary up exits after Ctrl-C")
            .unwrap();
        assert!(status.success(), "exit status {status}: {rest:?}");
        rest.join("\n")
    }
}
