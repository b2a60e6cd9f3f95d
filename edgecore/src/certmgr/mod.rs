//! The node's certificate: joining the cloud with a token and rotating the
//! certificate before it expires (reference §2 "Join token and certificates").
//!
//! Join ([`CertManager::ensure`], when the files are missing or unusable):
//! 1. `GET <httpServer>/ca.crt` without verifying the server;
//! 2. check hex SHA-256 of that CA against the token's prefix, and refuse
//!    before sending anything else if it differs;
//! 3. generate an ECDSA P-256 key and a CSR with `CN=system:node:<node>,
//!    O=system:nodes`;
//! 4. `GET /edge.crt` (server verified against the CA) with the CSR,
//!    `NodeName` and `Authorization: Bearer <jwt>`;
//! 5. check the certificate and write CA, key (0600) and certificate as PEM.
//!
//! Rotation ([`CertManager::rotate`]) repeats 3–5 over mutual TLS with the
//! current certificate instead of the token, at 80 % of its lifetime
//! ([`CertManager::run_rotation`]).
//!
//! - `client.rs`: the HTTPS client and its three trust levels.
//! - `files.rs`: reading, checking and atomically writing the files.

mod client;
mod files;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::EdgeHub;
use client::Trust;

pub use files::CertFiles;

/// Prefix of a node certificate's CN.
pub const NODE_CN_PREFIX: &str = "system:node:";
/// Organization of node certificates.
pub const NODES_ORGANIZATION: &str = "system:nodes";
/// Share of the certificate's lifetime after which it is renewed.
const RENEW_AT_PERCENT: u32 = 80;
/// Longest single sleep while waiting to renew, so wall-clock jumps and
/// suspends are noticed.
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// Retry delays after a failed rotation.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Why the node could not get or renew its certificate; each variant names
/// the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum CertMgrError {
    /// No usable certificate files and no join token to get new ones.
    #[error("no usable certificate ({reason}) and modules.edgeHub.token is empty; get one with `keadm gettoken` on the cloud")]
    NoToken {
        /// Why the existing files could not be used.
        reason: String,
    },
    /// The join token is not `<64 hex digits>.<jwt>`.
    #[error("malformed join token (modules.edgeHub.token): {0}")]
    BadToken(String),
    /// `modules.edgeHub.httpServer` is not an `https://host:port` URL.
    #[error("modules.edgeHub.httpServer {url:?} is not an https:// URL")]
    BadServer {
        /// The configured value.
        url: String,
    },
    /// The HTTPS client could not be built.
    #[error("cannot build the HTTPS client")]
    Client {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The TLS configuration could not be built.
    #[error("TLS configuration")]
    Tls(#[source] rustls::Error),
    /// Downloading the CA failed.
    #[error("cannot fetch the CA from {url}")]
    FetchCa {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The downloaded CA is not a certificate.
    #[error("the cloud's CA is not a DER certificate: {0}")]
    BadCa(String),
    /// The CA's hash differs from the token's prefix: wrong cloud, wrong
    /// token or someone in between. Nothing else was sent.
    #[error("the cloud's CA (sha256 {actual}) does not match the join token's CA hash {expected}: wrong token or wrong cloud, refusing to continue")]
    CaHashMismatch {
        /// The token's prefix.
        expected: String,
        /// The hash of the CA the server sent.
        actual: String,
    },
    /// Generating the key or the CSR failed.
    #[error("cannot generate the key or certificate request")]
    Key(#[source] rcgen::Error),
    /// The certificate request did not reach the server or its answer was lost.
    #[error("certificate request to {url} failed")]
    Request {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("the cloud refused the certificate request: HTTP {status}: {body}{}", refusal_hint(*status))]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's explanation.
        body: String,
    },
    /// The certificate the server sent is unusable.
    #[error("the issued certificate is unusable: {0}")]
    BadCert(String),
    /// A certificate file is malformed.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn refusal_hint(status: u16) -> &'static str {
    match status {
        401 => " (the join token is wrong or expired; get a fresh one with `keadm gettoken`)",
        403 => " (the certificate request does not match this node's name)",
        _ => "",
    }
}

/// A completed step of a join, for progress lines.
#[derive(Debug, Clone, Copy)]
pub enum JoinStep<'a> {
    /// The CA was fetched and its hash matches the token.
    CaChecked {
        /// The certificate server.
        server: &'a str,
        /// The CA's hex SHA-256.
        sha256: &'a str,
    },
    /// The cloud issued a certificate for the node, and it checks out.
    CertIssued {
        /// The node it names.
        node: &'a str,
    },
    /// CA, certificate and key are on disk.
    FilesWritten {
        /// Where.
        files: &'a CertFiles,
    },
}

impl std::fmt::Display for JoinStep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinStep::CaChecked { server, sha256 } => {
                write!(
                    f,
                    "fetched the CA from {server}; its sha256 {sha256} matches the token"
                )
            }
            JoinStep::CertIssued { node } => {
                write!(f, "the cloud issued a certificate for node {node}")
            }
            JoinStep::FilesWritten { files } => write!(
                f,
                "wrote the CA {}, the certificate {} and the key {} (0600)",
                files.ca.display(),
                files.cert.display(),
                files.key.display()
            ),
        }
    }
}

/// Result of the certificate manager.
pub type Result<T, E = CertMgrError> = std::result::Result<T, E>;

/// Gets and renews this node's certificate from the cloud's certificate server.
#[derive(Debug, Clone)]
pub struct CertManager {
    server: String,
    token: String,
    node: String,
    files: CertFiles,
}

impl CertManager {
    /// A manager for `node_name` using `modules.edgeHub` (`httpServer`,
    /// `token`, `tlsCaFile`, `tlsCertFile`, `tlsPrivateKeyFile`).
    pub fn new(hub: &EdgeHub, node_name: &str) -> Self {
        CertManager {
            server: hub.http_server.trim().trim_end_matches('/').to_owned(),
            token: hub.token.trim().to_owned(),
            node: node_name.to_owned(),
            files: CertFiles {
                ca: PathBuf::from(&hub.tls_ca_file),
                cert: PathBuf::from(&hub.tls_cert_file),
                key: PathBuf::from(&hub.tls_private_key_file),
            },
        }
    }

    /// The files this manager reads and writes.
    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    /// Makes sure the files hold a valid certificate for this node signed by
    /// the CA beside it, joining with the token when they do not.
    pub async fn ensure(&self) -> Result<CertFiles> {
        let reason = match self.usable_files() {
            Ok(()) => {
                tracing::debug!(node = %self.node, "using the existing certificate");
                return Ok(self.files.clone());
            }
            Err(reason) => reason,
        };
        if self.token.is_empty() {
            return Err(CertMgrError::NoToken { reason });
        }
        tracing::info!(node = %self.node, %reason, server = %self.server, "joining the cloud with the token");
        self.join(&mut |step| tracing::info!(node = %self.node, "join: {step}"))
            .await?;
        Ok(self.files.clone())
    }

    /// Joins now, whatever files exist, telling `progress` as each step
    /// completes (`edgecore join` prints them).
    pub async fn join_reporting(
        &self,
        progress: &mut (dyn FnMut(JoinStep<'_>) + Send),
    ) -> Result<CertFiles> {
        if self.token.is_empty() {
            return Err(CertMgrError::NoToken {
                reason: "joining".to_owned(),
            });
        }
        self.join(progress).await?;
        Ok(self.files.clone())
    }

    fn usable_files(&self) -> std::result::Result<(), String> {
        let loaded = self.files.load().map_err(|e| error_chain(&e))?;
        let leaf = loaded.chain.first().ok_or("no certificate")?;
        files::check_identity(&loaded.ca, leaf, &loaded.key, &self.node, SystemTime::now())
    }

    async fn join(&self, progress: &mut (dyn FnMut(JoinStep<'_>) + Send)) -> Result<()> {
        let server = self.server()?;
        let (ca_hash, jwt) = parse_token(&self.token)?;
        let ca = client::fetch_ca(server).await?;
        x509_parser::parse_x509_certificate(&ca).map_err(|e| CertMgrError::BadCa(e.to_string()))?;
        let actual = hex::encode(Sha256::digest(&ca));
        if !actual.eq_ignore_ascii_case(ca_hash) {
            return Err(CertMgrError::CaHashMismatch {
                expected: ca_hash.to_owned(),
                actual,
            });
        }
        progress(JoinStep::CaChecked {
            server,
            sha256: &actual,
        });
        let (key, csr) = self.new_key_and_csr()?;
        let trust = Trust::Ca(ca.clone().into());
        let cert = client::request_cert(server, trust, csr, &self.node, Some(jwt)).await?;
        self.check_issued(&ca, &cert, &key)?;
        progress(JoinStep::CertIssued { node: &self.node });
        self.files.write_all(&ca, &cert, &key.serialize_pem())?;
        progress(JoinStep::FilesWritten { files: &self.files });
        Ok(())
    }

    /// Requests a new certificate over mutual TLS with the current one and
    /// replaces the key and certificate files.
    pub async fn rotate(&self) -> Result<()> {
        let server = self.server()?;
        let current = self.files.load()?;
        let ca = current.ca.to_vec();
        let (key, csr) = self.new_key_and_csr()?;
        let trust = Trust::Mutual {
            ca: current.ca,
            chain: current.chain,
            key: current.key,
        };
        let cert = client::request_cert(server, trust, csr, &self.node, None).await?;
        self.check_issued(&ca, &cert, &key)?;
        self.files.write_identity(&cert, &key.serialize_pem())?;
        tracing::info!(node = %self.node, "certificate rotated");
        Ok(())
    }

    /// When the current certificate should be renewed: notBefore plus 80 %
    /// of its lifetime. Now, if the certificate cannot be read.
    pub fn renew_at(&self) -> SystemTime {
        let validity = self
            .files
            .load()
            .ok()
            .and_then(|l| l.chain.first().and_then(|c| files::cert_validity(c)));
        match validity {
            Some((not_before, not_after)) => {
                let life = not_after.duration_since(not_before).unwrap_or_default();
                not_before + life / 100 * RENEW_AT_PERCENT
            }
            None => SystemTime::now(),
        }
    }

    /// Sleeps until [`renew_at`](Self::renew_at), rotates, calls
    /// `on_rotated` (the edgehub reconnects with the new certificate), and
    /// again, until `cancel` fires. Failed rotations are logged and retried
    /// with growing delays (1 s to 5 min).
    pub async fn run_rotation(self, cancel: CancellationToken, on_rotated: impl Fn() + Send) {
        let mut retry = RETRY_FIRST;
        loop {
            let wait = until(self.renew_at(), SystemTime::now()).min(MAX_SLEEP);
            if !wait.is_zero() {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                continue; // re-read: the wait may have been cut at MAX_SLEEP
            }
            let result = tokio::select! {
                () = cancel.cancelled() => return,
                result = self.rotate() => result,
            };
            match result {
                Ok(()) => {
                    retry = RETRY_FIRST;
                    on_rotated();
                }
                Err(err) => {
                    tracing::warn!(node = %self.node, error = %err, retry_in = ?retry, "certificate rotation failed");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn server(&self) -> Result<&str> {
        let ok = self
            .server
            .strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty());
        if ok {
            Ok(&self.server)
        } else {
            Err(CertMgrError::BadServer {
                url: self.server.clone(),
            })
        }
    }

    /// A fresh ECDSA P-256 key and a DER CSR for `CN=system:node:<node>, O=system:nodes`.
    fn new_key_and_csr(&self) -> Result<(KeyPair, Vec<u8>)> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CertMgrError::Key)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{NODE_CN_PREFIX}{}", self.node));
        dn.push(DnType::OrganizationName, NODES_ORGANIZATION);
        params.distinguished_name = dn;
        let csr = params.serialize_request(&key).map_err(CertMgrError::Key)?;
        Ok((key, csr.der().to_vec()))
    }

    fn check_issued(&self, ca: &[u8], cert: &[u8], key: &KeyPair) -> Result<()> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        files::check_identity(ca, cert, &key, &self.node, SystemTime::now())
            .map_err(CertMgrError::BadCert)
    }
}

/// Splits `<hex sha256>.<jwt>`.
pub(crate) fn parse_token(token: &str) -> Result<(&str, &str)> {
    let Some((hash, jwt)) = token.split_once('.') else {
        return Err(CertMgrError::BadToken(
            "expected <CA hash>.<JWT>".to_owned(),
        ));
    };
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CertMgrError::BadToken(
            "the CA hash before the first '.' is not 64 hex digits".to_owned(),
        ));
    }
    if jwt.split('.').count() != 3 {
        return Err(CertMgrError::BadToken(
            "the part after the CA hash is not a JWT".to_owned(),
        ));
    }
    Ok((hash, jwt))
}

/// An error and its sources, `a: b: c`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Time from `now` until `at` (zero if past).
fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(dir: &std::path::Path, token: &str) -> CertManager {
        let hub = EdgeHub {
            token: token.to_owned(),
            http_server: "https://127.0.0.1:1/".to_owned(),
            tls_ca_file: dir.join("ca/rootCA.crt").display().to_string(),
            tls_cert_file: dir.join("certs/server.crt").display().to_string(),
            tls_private_key_file: dir.join("certs/server.key").display().to_string(),
            ..EdgeHub::default()
        };
        CertManager::new(&hub, "edge-1")
    }

    #[test]
    fn tokens_are_checked_for_shape() {
        let hash = "ab".repeat(32);
        assert!(parse_token(&format!("{hash}.a.b.c")).is_ok());
        for bad in ["", "abc", "abc.a.b.c", &format!("{hash}.jwt"), &hash] {
            assert!(
                matches!(parse_token(bad), Err(CertMgrError::BadToken(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn without_files_or_token_the_error_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = manager(dir.path(), "").ensure().await.unwrap_err();
        assert!(matches!(err, CertMgrError::NoToken { .. }), "{err}");
        assert!(err.to_string().contains("modules.edgeHub.token"), "{err}");
        assert!(err.to_string().contains("No such file"), "{err}");
    }

    #[tokio::test]
    async fn key_and_csr_name_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let (_, csr) = manager(dir.path(), "").new_key_and_csr().unwrap();
        let (_, parsed) =
            <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<'_, _>>::from_der(&csr)
                .unwrap();
        assert_eq!(
            parsed.certification_request_info.subject.to_string(),
            "CN=system:node:edge-1, O=system:nodes"
        );
    }

    #[test]
    fn renewal_is_due_at_eighty_percent() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path(), "");
        // No certificate: due now.
        let before = SystemTime::now();
        assert!(m.renew_at() >= before && m.renew_at() <= SystemTime::now());
        assert_eq!(
            until(before, before + Duration::from_secs(5)),
            Duration::ZERO
        );
        assert_eq!(
            until(before + Duration::from_secs(5), before),
            Duration::from_secs(5)
        );
    }
}
