//! A real mosquitto broker for tests, on 127.0.0.1 and a free port, with
//! its persistence file in a temporary directory; killed when dropped.
//!
//! Declared once in the integration binary's `main.rs` (with `#[path]` from the `tests` crate).
//! Needs `/usr/sbin/mosquitto` (`scripts/install-deps.sh` installs it).

#![allow(dead_code, reason = "each test file uses part of it")]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian and Ubuntu install the broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// How long the broker gets to start or stop.
const PATIENCE: Duration = Duration::from_secs(10);

/// A running mosquitto.
pub struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts a broker allowing anonymous clients, with persistence on, and
    /// waits until it accepts connections.
    pub async fn start() -> Mosquitto {
        Mosquitto::start_with("").await
    }

    /// As [`start`](Self::start), with `extra` appended to the
    /// configuration (e.g. a TLS listener on another [`free_port`]).
    pub async fn start_with(extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let conf = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence true\n\
             persistence_location {}/\n\
             log_dest file {}\n\
             log_type all\n\
             # Run as root, mosquitto switches to this user; without root\n\
             # the setting has no effect.\n\
             user root\n\
             {extra}\n",
            dir.path().display(),
            dir.path().join("mosquitto.log").display(),
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write mosquitto.conf");
        let mut broker = Mosquitto {
            child: None,
            port,
            dir,
        };
        broker.spawn().await;
        broker
    }

    /// The broker's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker with SIGTERM, so it saves its sessions and queued
    /// messages, and waits until it has exited.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM mosquitto");
        let deadline = Instant::now() + PATIENCE;
        while child.try_wait().expect("wait for mosquitto").is_none() {
            assert!(Instant::now() < deadline, "mosquitto did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is
    /// answered. [`kill`](Self::kill) still works.
    pub fn pause(&self) {
        let child = self.child.as_ref().expect("a running broker");
        let status = Command::new("kill")
            .args(["-STOP", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -STOP mosquitto");
    }

    /// Kills the broker with SIGKILL: it saves nothing, so it comes back
    /// without sessions or subscriptions.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and persistence file.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill it first");
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.conf())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/sbin/mosquitto (scripts/install-deps.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("mosquitto exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto is not listening:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("its address").port()
}

/// Publishes `payload` on `topic` with `mosquitto_pub` (a separate client,
/// as a device would be), at QoS `qos`.
pub async fn publish(port: u16, topic: &str, payload: &[u8], qos: u8) {
    use std::io::Write;
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-q", &qos.to_string(), "-s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mosquitto_pub (scripts/install-deps.sh installs it)");
    let mut stdin = child.stdin.take().expect("mosquitto_pub's stdin");
    let payload = payload.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        stdin.write_all(&payload).expect("write the payload");
        drop(stdin);
        child.wait_with_output().expect("mosquitto_pub ran")
    })
    .await
    .expect("mosquitto_pub task");
    assert!(
        out.status.success(),
        "mosquitto_pub {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
