//! A real Kubernetes API server for tests: Debian's etcd 3.4 and a
//! kube-apiserver 1.20.2 built from Debian's source by
//! `scripts/kube-apiserver.sh`, both on 127.0.0.1 ports with their data,
//! certificates and logs in a temp dir.
//!
//! [`binary`] finds the built server (tests skip with a note when it is
//! missing), [`RealApiServer::start`] runs one and writes a kubeconfig for
//! it, and [`external_kubeconfig`] names another cluster a developer wants
//! to test against instead. No scheduler, controller manager or kubelet
//! runs: objects are stored and served, pods stay Pending, and nothing
//! creates service accounts (the ServiceAccount admission plugin is off,
//! so pods need none).

use base64::Engine as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};

/// The version `scripts/kube-apiserver.sh` builds.
pub const VERSION: &str = "1.20.2";

/// The bearer token of the admin user (group `system:masters`; the server
/// runs with `--authorization-mode=AlwaysAllow` anyway). Requests without
/// it get 401: anonymous access is off.
pub const ADMIN_TOKEN: &str = "apiary-test-admin-token";

/// How long [`RealApiServer::start`] waits for etcd and then for the API
/// server's `/readyz`.
pub const START_PATIENCE: Duration = Duration::from_secs(120);

/// Debian's etcd (package `etcd-server`).
pub const ETCD: &str = "/usr/bin/etcd";

/// The kube-apiserver built by `scripts/kube-apiserver.sh`, at
/// `${APIARY_CACHE:-$HOME/.cache/apiary}/kube-apiserver-1.20.2/kube-apiserver`;
/// `None` when it is not built or etcd is not installed, so tests skip.
///
/// `APIARY_KUBE_APISERVER` names the binary instead, and then it must
/// exist (as must etcd): CI sets it so that a failed build cannot turn
/// into skipped tests. Panics if it names a file that does not exist.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("APIARY_KUBE_APISERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "APIARY_KUBE_APISERVER={} does not exist",
            path.display()
        );
        assert!(
            Path::new(ETCD).is_file(),
            "APIARY_KUBE_APISERVER is set but {ETCD} (etcd-server) is not installed"
        );
        return Some(path);
    }
    let cache = match std::env::var_os("APIARY_CACHE").filter(|c| !c.is_empty()) {
        Some(cache) => PathBuf::from(cache),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/apiary"),
    };
    let path = cache
        .join(format!("kube-apiserver-{VERSION}"))
        .join("kube-apiserver");
    (path.is_file() && Path::new(ETCD).is_file()).then_some(path)
}

/// A kubeconfig for some other cluster, named by `APIARY_TEST_KUBECONFIG`,
/// for tests a developer wants to run against it too.
pub fn external_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("APIARY_TEST_KUBECONFIG")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// An HTTP response from [`RealApiServer::request`].
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body (chunked encoding undone).
    pub body: String,
}

impl Response {
    /// The body as JSON, failing the test if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }
}

/// etcd and kube-apiserver running on loopback; both are killed (and
/// waited for) on drop.
pub struct RealApiServer {
    apiserver: Child,
    etcd: Child,
    port: u16,
    ca_pem: String,
    tls: Arc<rustls::ClientConfig>,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for RealApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealApiServer")
            .field("url", &self.url())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Why [`RealApiServer::start`] failed; the message ends with the tail of
/// the failing process's log.
#[derive(Debug, Clone)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "real kube-apiserver: {}", self.0)
    }
}

impl std::error::Error for StartError {}

/// Why one attempt to start failed.
enum Failed {
    /// A port was taken between choosing and binding it: try again.
    PortTaken,
    /// Anything else.
    Fatal(String),
}

impl RealApiServer {
    /// Blocking [`RealApiServer::start_async`], for `spawn_blocking` or a
    /// test without a runtime (it must not run on a runtime's worker
    /// thread).
    pub fn start() -> Result<RealApiServer, StartError> {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(Self::start_async()),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map_err(|err| StartError(format!("runtime: {err}")))?
                .block_on(Self::start_async()),
        }
    }

    /// Starts the server [`binary`] finds (an error if it finds none) with
    /// [`RealApiServer::start_with`].
    pub async fn start_async() -> Result<RealApiServer, StartError> {
        let apiserver = binary().ok_or_else(|| {
            StartError(format!(
                "no kube-apiserver {VERSION} (run scripts/kube-apiserver.sh) or no {ETCD}"
            ))
        })?;
        Self::start_with(&apiserver).await
    }

    /// Starts etcd and `apiserver` on free loopback ports and waits until
    /// etcd is healthy and `/readyz` answers `ok`, at most
    /// [`START_PATIENCE`]. A port taken by someone else in the meantime
    /// means another try with new ports.
    pub async fn start_with(apiserver: &Path) -> Result<RealApiServer, StartError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(apiserver).await {
                Ok(server) => return Ok(server),
                Err(Failed::PortTaken) if attempt < 5 => {}
                Err(Failed::PortTaken) => {
                    return Err(StartError("ports kept being taken; gave up".into()));
                }
                Err(Failed::Fatal(why)) => return Err(StartError(why)),
            }
        }
    }

    async fn try_start(apiserver: &Path) -> Result<RealApiServer, Failed> {
        let dir = tempfile::Builder::new()
            .prefix("apiary-kube-")
            .tempdir()
            .map_err(|err| Failed::Fatal(format!("temp dir: {err}")))?;
        let files = Files::write(dir.path()).map_err(Failed::Fatal)?;
        let [client, peer, port] = free_ports();

        let mut etcd = spawn(
            Command::new(ETCD)
                .args(["--name", "apiary"])
                .arg("--data-dir")
                .arg(dir.path().join("etcd"))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
                ))
                .arg(format!("--initial-cluster=apiary=http://127.0.0.1:{peer}"))
                .args(["--logger=zap", "--log-outputs=stderr"]),
            &dir.path().join("etcd.log"),
        )?;
        let deadline = tokio::time::Instant::now() + START_PATIENCE;
        let etcd_log = dir.path().join("etcd.log");
        loop {
            if let Some(status) = etcd.try_wait().ok().flatten() {
                return Err(exited("etcd", status, &etcd_log));
            }
            if blocking(move || etcd_healthy(client)).await {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                kill(&mut etcd);
                return Err(Failed::Fatal(format!(
                    "etcd not healthy in {START_PATIENCE:?}\n{}",
                    tail(&etcd_log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let log = dir.path().join("kube-apiserver.log");
        let spawned = spawn(
            Command::new(apiserver)
                .arg(format!("--etcd-servers=http://127.0.0.1:{client}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg(format!("--secure-port={port}"))
                .arg("--insecure-port=0")
                .arg("--endpoint-reconciler-type=none")
                .arg("--service-cluster-ip-range=10.0.0.0/24")
                .arg("--authorization-mode=AlwaysAllow")
                .arg("--anonymous-auth=false")
                .arg("--disable-admission-plugins=ServiceAccount")
                .arg("--allow-privileged=true")
                .arg("--profiling=false")
                .arg(arg("--cert-dir", dir.path()))
                .arg(arg("--token-auth-file", &files.tokens))
                .arg(arg("--tls-cert-file", &files.cert))
                .arg(arg("--tls-private-key-file", &files.key))
                .arg(arg("--service-account-key-file", &files.sa_public))
                .arg(arg("--service-account-signing-key-file", &files.sa_private))
                .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local"),
            &log,
        );
        let apiserver = match spawned {
            Ok(child) => child,
            Err(err) => {
                kill(&mut etcd);
                return Err(err);
            }
        };
        // From here on, an early return kills both processes through Drop.
        let mut server = RealApiServer {
            apiserver,
            etcd,
            port,
            tls: files.tls,
            ca_pem: files.ca_pem,
            kubeconfig: dir.path().join("kubeconfig"),
            dir,
        };
        loop {
            if let Some(status) = server.apiserver.try_wait().ok().flatten() {
                return Err(exited("kube-apiserver", status, &log));
            }
            if let Ok(ready) = server.request("GET", "/readyz", None).await {
                if ready.status == 200 && ready.body.trim() == "ok" {
                    break;
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Failed::Fatal(format!(
                    "/readyz not ok within {START_PATIENCE:?}\n{}",
                    tail(&log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::fs::write(&server.kubeconfig, server.kubeconfig_yaml())
            .map_err(|err| Failed::Fatal(format!("kubeconfig: {err}")))?;
        Ok(server)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The admin bearer token ([`ADMIN_TOKEN`]).
    pub fn token(&self) -> &str {
        ADMIN_TOKEN
    }

    /// The PEM of the CA that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A kubeconfig (server, CA data, admin token, namespace `default`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The temp dir holding the kubeconfig, certificates, etcd's data and
    /// both logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What kube-apiserver has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kube-apiserver.log")).unwrap_or_default()
    }

    /// The part of kube-apiserver's log worth showing in a failure: from
    /// the first Go `panic:` or `fatal error:` on (60 lines), else the last
    /// 40 lines.
    pub fn log_excerpt(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let crash = lines.iter().position(|line| {
            line.starts_with("panic: ")
                || line.starts_with("fatal error: ")
                || line.starts_with("unexpected fault address")
        });
        let shown = match crash {
            Some(at) => &lines[at..lines.len().min(at + 60)],
            None => &lines[lines.len().saturating_sub(40)..],
        };
        shown.join("\n")
    }

    /// True while the kube-apiserver process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.apiserver.try_wait(), Ok(None))
    }

    /// One HTTPS request as the admin (`body` is sent as JSON, or as a
    /// merge patch for `PATCH`). Errors are transport errors; any HTTP
    /// status is a response.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, String> {
        let tls = self.tls.clone();
        let port = self.port;
        let method = method.to_string();
        let path = path.to_string();
        let body = body.map(serde_json::Value::to_string);
        blocking(move || https(&tls, port, &method, &path, body.as_deref())).await
    }

    fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: apiary-real\n  cluster:\n    \
             server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  \
             user:\n    token: {token}\ncontexts:\n- name: apiary-real\n  context:\n    \
             cluster: apiary-real\n    user: admin\n    namespace: default\n\
             current-context: apiary-real\n",
            url = self.url(),
            ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem),
            token = ADMIN_TOKEN,
        )
    }
}

impl Drop for RealApiServer {
    fn drop(&mut self) {
        kill(&mut self.apiserver);
        kill(&mut self.etcd);
    }
}

/// The files the server is started with.
struct Files {
    tokens: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    sa_public: PathBuf,
    sa_private: PathBuf,
    ca_pem: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Files {
    fn write(dir: &Path) -> Result<Files, String> {
        let err = |what: &str, err: &dyn std::fmt::Display| format!("{what}: {err}");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| err("CA params", &e))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "apiary-test-ca");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate().map_err(|e| err("CA key", &e))?;
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)
            .map_err(|e| err("CA cert", &e))?;

        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .map_err(|e| err("serving params", &e))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().map_err(|e| err("serving key", &e))?;
        let cert = params
            .signed_by(&key, &ca)
            .map_err(|e| err("serving cert", &e))?;

        // Service-account tokens are signed with ES256 (P-256), which 1.20
        // accepts next to RSA.
        let sa = rcgen::KeyPair::generate().map_err(|e| err("SA key", &e))?;

        let files = Files {
            tokens: dir.join("tokens.csv"),
            cert: dir.join("serving.crt"),
            key: dir.join("serving.key"),
            sa_public: dir.join("sa.pub"),
            sa_private: dir.join("sa.key"),
            ca_pem: ca.pem(),
            tls: client_config(ca.der()).map_err(|e| err("rustls", &e))?,
        };
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).map_err(|e| err(&path.display().to_string(), &e))
        };
        write(
            &files.tokens,
            &format!("{ADMIN_TOKEN},admin,admin-uid,\"system:masters\"\n"),
        )?;
        write(&files.cert, &format!("{}{}", cert.pem(), ca.pem()))?;
        write(&files.key, &key.serialize_pem())?;
        write(&files.sa_public, &sa.public_key_pem())?;
        write(&files.sa_private, &sa.serialize_pem())?;
        write(&dir.join("ca.crt"), &files.ca_pem)?;
        Ok(files)
    }
}

fn client_config(ca: &CertificateDer<'_>) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone().into_owned())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Three distinct loopback ports that were free a moment ago.
fn free_ports() -> [u16; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    let port = |i: usize| listeners[i].local_addr().expect("local addr").port();
    [port(0), port(1), port(2)]
}

fn arg(flag: &str, path: &Path) -> String {
    format!("{flag}={}", path.display())
}

/// Starts `cmd` with stdout and stderr appended to `log`, and without any
/// `ETCD_*` variables of the caller's (etcd reads them as flags).
fn spawn(cmd: &mut Command, log: &Path) -> Result<Child, Failed> {
    let file = std::fs::File::create(log)
        .map_err(|err| Failed::Fatal(format!("{}: {err}", log.display())))?;
    let stderr = file
        .try_clone()
        .map_err(|err| Failed::Fatal(format!("{}: {err}", log.display())))?;
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCD_") {
            cmd.env_remove(name);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .spawn()
        .map_err(|err| Failed::Fatal(format!("{:?}: {err}", cmd.get_program())))
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn exited(what: &str, status: std::process::ExitStatus, log: &Path) -> Failed {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    if text.contains("address already in use") {
        Failed::PortTaken
    } else {
        Failed::Fatal(format!("{what} exited ({status})\n{}", tail(log)))
    }
}

/// The last 40 lines of `log`.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!("--- {} ---\n{}", log.display(), lines[from..].join("\n"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

fn etcd_healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200") && reply.contains("\"health\":\"true\"")
}

/// A blocking HTTP/1.1 request over TLS with `Connection: close`.
fn https(
    tls: &Arc<rustls::ClientConfig>,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Response, String> {
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let content_type = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer \
         {ADMIN_TOKEN}\r\nAccept: application/json\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
                chunked = true;
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader
                .read_exact(&mut body[start..])
                .map_err(|e| e.to_string())?;
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else {
        // Read to close; a peer that skips close_notify is fine here.
        let _ = reader.read_to_end(&mut body);
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
