//! Real kubectl against a server on loopback: one-shot commands and a
//! background `get -w` whose output lines arrive on a channel. Each
//! [`Kubectl`] has its own empty kubeconfig and discovery cache in a temp
//! dir, so nothing of the user's is read or written.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tokio::sync::mpsc;

/// The outcome of one kubectl command.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status was zero.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// kubectl pointed at one server.
#[derive(Debug, Clone)]
pub struct Kubectl {
    server: Option<String>,
    kubeconfig: Option<PathBuf>,
    home: PathBuf,
    extra: Vec<String>,
}

/// True when a `kubectl` binary is on the PATH (`scripts/install-deps.sh`
/// installs Debian's `kubernetes-client`).
pub fn available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Kubectl {
    /// kubectl for `http://<addr>`, its files under `home`.
    pub fn http(addr: SocketAddr, home: &Path) -> Kubectl {
        Kubectl {
            server: Some(format!("http://{addr}")),
            kubeconfig: None,
            home: home.to_path_buf(),
            extra: Vec::new(),
        }
    }

    /// kubectl using the kubeconfig at `path` (server, CA and token from
    /// it), its other files under `home`.
    pub fn with_kubeconfig(path: &Path, home: &Path) -> Kubectl {
        Kubectl {
            server: None,
            kubeconfig: Some(path.to_path_buf()),
            home: home.to_path_buf(),
            extra: Vec::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        let kubeconfig = self
            .kubeconfig
            .clone()
            .unwrap_or_else(|| self.home.join("kubeconfig"));
        cmd.env("KUBECONFIG", kubeconfig).env("HOME", &self.home);
        if let Some(server) = &self.server {
            cmd.arg("--server").arg(server);
        }
        cmd.arg("--cache-dir")
            .arg(self.home.join("cache"))
            .arg("--request-timeout=20s")
            .args(&self.extra)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `kubectl <args>` to completion (on a blocking thread).
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        let shown = args.join(" ");
        tokio::task::spawn_blocking(move || {
            let out = cmd.output().expect("kubectl runs");
            Output {
                ok: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .await
        .unwrap_or_else(|err| panic!("kubectl {shown}: {err}"))
    }

    /// Runs `kubectl <args>` and returns its stdout, failing the test if it
    /// fails.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.ok, "kubectl {} failed: {}", args.join(" "), out.stderr);
        out.stdout
    }

    /// Starts `kubectl <args>` (e.g. `get pods -w`); its stdout lines come
    /// on the returned channel until the process is killed.
    pub fn stream(&self, args: &[&str]) -> Streaming {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kubectl starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming { child, lines }
    }
}

/// A running kubectl; killed when dropped.
#[derive(Debug)]
pub struct Streaming {
    child: Child,
    /// Its output, line by line.
    pub lines: mpsc::UnboundedReceiver<String>,
}

impl Streaming {
    /// Waits (up to `patience`) for a line containing `needle`.
    pub async fn line_with(&mut self, needle: &str, patience: std::time::Duration) -> String {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!("kubectl ended before printing {needle:?}"),
                Err(_) => panic!("kubectl printed nothing with {needle:?} in {patience:?}"),
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
