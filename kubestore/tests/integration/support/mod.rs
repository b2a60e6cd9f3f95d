//! What `rest.rs` and `rest_write.rs` run on: the API (read-only or
//! writable) on a real store and a real actix `HttpServer` on `127.0.0.1:0`
//! ([`Server`]), reqwest helpers, and
//! kubectl with its own empty kubeconfig and cache ([`Kubectl`]), one-shot
//! or watching in the background ([`Watching`]).

#![allow(
    dead_code,
    reason = "shared by two test binaries, each using part of it"
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};
use kubestore::rest::{configure, RestConfig};
use kubestore::{edge_resources, Resources, Store, StoreOptions};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub const DEADLINE: Duration = Duration::from_secs(20);

/// A store and the writable API serving it; `dir` holds the database and
/// whatever a test writes beside it.
pub struct Server {
    pub dir: tempfile::TempDir,
    addr: SocketAddr,
    rest: RestConfig,
    handle: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// A writable API (the cloud's embedded API).
    pub async fn start() -> Server {
        Server::start_with(false).await
    }

    /// A read-only API (the edge MetaServer).
    pub async fn start_read_only() -> Server {
        Server::start_with(true).await
    }

    async fn start_with(read_only: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloudcore.db");
        let store = tokio::task::spawn_blocking(move || Store::open(path, StoreOptions::default()))
            .await
            .unwrap()
            .unwrap();
        let mut rest = RestConfig::new(
            store,
            Resources::new(edge_resources()),
            "v1.33.0-apiary-0.1.0",
        );
        rest.read_only = read_only;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let app_rest = rest.clone();
        let server = HttpServer::new(move || {
            let rest = app_rest.clone();
            App::new().configure(move |c| configure(c, rest))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Server {
            dir,
            addr,
            rest,
            handle,
            task,
        }
    }

    /// The store behind the API.
    pub fn store(&self) -> &Store {
        &self.rest.store
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(self) {
        self.rest.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.handle.stop(true))
            .await
            .expect("graceful stop with open watches within 5 s");
        self.task.await.unwrap().unwrap();
    }
}

pub fn http() -> reqwest::Client {
    // reqwest builds a TLS config even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// `req` with `body` as its JSON body.
pub fn with_json(req: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    req.header("Content-Type", "application/json")
        .body(body.to_string())
}

pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (
        code,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
    )
}

/// The kubectl binaries to test with.
pub fn kubectls() -> Vec<PathBuf> {
    let named = std::env::var("APIARY_KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    named
        .split(':')
        .filter(|k| !k.is_empty())
        .filter(|k| {
            Command::new(k)
                .args(["version", "--client"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(PathBuf::from)
        .collect()
}

/// kubectl against the server, with an empty kubeconfig and its own cache.
pub struct Kubectl {
    binary: PathBuf,
    server: String,
    home: PathBuf,
}

impl Kubectl {
    pub fn new(binary: &Path, server: &Server, home: PathBuf) -> Kubectl {
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join("kubeconfig"), "").unwrap();
        Kubectl {
            binary: binary.to_owned(),
            server: server.url(""),
            home,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--server")
            .arg(&self.server)
            .arg("--kubeconfig")
            .arg(self.home.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.home.join("cache"))
            .args(args)
            .env("HOME", &self.home)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs to completion: success, stdout, stderr.
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = self.command(args);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// Runs and expects success; stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }

    /// The object as JSON.
    pub async fn json(&self, args: &[&str]) -> Value {
        let args = [args, &["-o", "json"]].concat();
        serde_json::from_str(&self.ok(&args).await).unwrap()
    }
}

/// A running `kubectl get ... -w`, its lines on a channel.
pub struct Watching {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Watching {
    pub fn start(kubectl: &Kubectl, args: &[&str]) -> Watching {
        let mut child = kubectl
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watching {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line whose first words are `words`.
    pub async fn wait_for(&mut self, words: &[&str]) {
        let deadline = Instant::now() + DEADLINE;
        while !self.seen.iter().any(|l| {
            let got: Vec<&str> = l.split_whitespace().collect();
            got.starts_with(words)
        }) {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.seen.push(line),
                _ => panic!("the watch never printed {words:?}: {:#?}", self.seen),
            }
        }
    }

    pub fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}
