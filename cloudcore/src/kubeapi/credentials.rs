//! The embedded API's credentials, under `<dataDir>/apiserver/`:
//!
//! - `ca.crt`, `ca.key`: its own certificate authority (ECDSA P-256, PEM),
//!   made once and kept, so kubeconfigs handed out stay valid across
//!   restarts. It is separate from cloudcore's edge CA: a certificate for
//!   the API is no credential on the cloud–edge link, and the reverse.
//! - `admin.token`: the bearer token every API request must carry (random,
//!   256 bits, hex), made once and kept.
//!
//! The serving certificate is issued afresh at every start, for the names
//! the API is reached by (`127.0.0.1`, `localhost`, the bind address and
//! CloudHub's advertised addresses and DNS names); it is kept in memory
//! only. Secret files are written `0600` in a `0700` directory.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{KubeApiError, Result};
use crate::pki::issue;

/// Common name of the embedded API's CA.
const CA_COMMON_NAME: &str = "Apiary embedded API CA";
/// Common name of its serving certificate.
const SERVER_COMMON_NAME: &str = "kube-apiserver";
/// The serving certificate lives a year (it is issued at every start); the
/// CA as long as cloudcore's.
const SERVER_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The files of `<dataDir>/apiserver/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paths {
    pub(crate) dir: PathBuf,
    pub(crate) ca_cert: PathBuf,
    pub(crate) ca_key: PathBuf,
    pub(crate) token: PathBuf,
}

impl Paths {
    pub(crate) fn in_data_dir(data_dir: &Path) -> Paths {
        let dir = data_dir.join("apiserver");
        Paths {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            token: dir.join("admin.token"),
            dir,
        }
    }
}

/// What the server and its kubeconfig need.
pub(crate) struct Credentials {
    /// The CA certificate, PEM (the kubeconfig's certificate authority).
    pub(crate) ca_pem: String,
    /// The serving certificate.
    pub(crate) server_cert: CertificateDer<'static>,
    /// Its key.
    pub(crate) server_key: PrivateKeyDer<'static>,
    /// The admin bearer token.
    pub(crate) token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KubeApiError + '_ {
    move |source| KubeApiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Loads (or makes) the CA and token in `paths` and issues a serving
/// certificate for `names` (IP addresses or DNS names).
pub(crate) fn load_or_create(paths: &Paths, names: &BTreeSet<String>) -> Result<Credentials> {
    create_private_dir(&paths.dir)?;
    let (ca_pem, issuer) = load_or_create_ca(paths)?;
    let token = load_or_create_token(&paths.token)?;
    let (server_cert, key) = issue::new_server_cert(
        &issuer,
        SERVER_COMMON_NAME,
        names,
        SERVER_LIFETIME,
        SystemTime::now(),
    )?;
    let server_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok(Credentials {
        ca_pem,
        server_cert,
        server_key,
        token,
    })
}

fn corrupt(path: &Path, reason: String) -> KubeApiError {
    KubeApiError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

/// The stored CA (PEM) with its issuer, or a new one written to `paths`.
/// A stored CA that cannot be used is an error, never silently replaced.
fn load_or_create_ca(paths: &Paths) -> Result<(String, Issuer<'static, KeyPair>)> {
    if paths.ca_cert.exists() || paths.ca_key.exists() {
        let cert = std::fs::read_to_string(&paths.ca_cert).map_err(io_error(&paths.ca_cert))?;
        let key = std::fs::read_to_string(&paths.ca_key).map_err(io_error(&paths.ca_key))?;
        let key = KeyPair::from_pem(&key).map_err(|e| corrupt(&paths.ca_key, e.to_string()))?;
        let der = ::pem::parse(&cert)
            .map(|p| CertificateDer::from(p.into_contents()))
            .map_err(|e| corrupt(&paths.ca_cert, e.to_string()))?;
        issue::check_ca(&der, SystemTime::now())
            .map_err(|reason| corrupt(&paths.ca_cert, reason))?;
        let issuer =
            issue::ca_issuer(&der, key).map_err(|e| corrupt(&paths.ca_cert, e.to_string()))?;
        return Ok((cert, issuer));
    }
    let (der, key) = issue::new_ca(CA_COMMON_NAME, SystemTime::now())?;
    let pem_config = ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF);
    let cert = ::pem::encode_config(&::pem::Pem::new("CERTIFICATE", der.to_vec()), pem_config);
    write_private(&paths.ca_key, key.serialize_pem().as_bytes())?;
    write_private(&paths.ca_cert, cert.as_bytes())?;
    tracing::info!(path = %paths.ca_cert.display(), "created the embedded API's CA");
    let issuer = issue::ca_issuer(&der, key)?;
    Ok((cert, issuer))
}

/// The names of the serving certificate, spelled as cloudcore's server
/// certificate's (`IP:...`, `DNS:...`): `127.0.0.1`, `localhost`, the bind
/// address unless it is unspecified (`0.0.0.0`), and `extra`.
pub(crate) fn server_names(bind: IpAddr, extra: &[String]) -> BTreeSet<String> {
    let bind: Vec<String> = (!bind.is_unspecified())
        .then(|| bind.to_string())
        .into_iter()
        .collect();
    issue::server_sans(&bind, extra)
}

/// The stored token, or a new one.
fn load_or_create_token(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim();
            if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(corrupt(
                    path,
                    "the token must be at least 32 printable characters".to_owned(),
                ));
            }
            Ok(token.to_owned())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let token = new_token();
            write_private(path, format!("{token}\n").as_bytes())?;
            tracing::info!(path = %path.display(), "created the embedded API's admin token");
            Ok(token)
        }
        Err(err) => Err(io_error(path)(err)),
    }
}

/// 32 bytes from three v4 UUIDs (about 250 random bits), hex.
fn new_token() -> String {
    let mut bytes = Vec::with_capacity(48);
    for _ in 0..3 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    hex::encode(&bytes[..32])
}

/// Creates `dir` (and missing parents) readable by the owner only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    daemonkit::files::create_private_dir(dir).map_err(io_error(dir))
}

/// Writes `data` to `path`, readable by the owner only, atomically.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    daemonkit::files::write_atomic(path, data, daemonkit::files::Access::Private)
        .map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_and_token_are_kept_and_the_serving_cert_names_its_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_data_dir(dir.path());
        let names = server_names("10.0.0.5".parse().unwrap(), &["Cloud.Example".to_owned()]);
        assert_eq!(
            names.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "DNS:cloud.example",
                "DNS:localhost",
                "IP:10.0.0.5",
                "IP:127.0.0.1"
            ]
        );
        let first = load_or_create(&paths, &names).unwrap();
        let second = load_or_create(&paths, &names).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.token, second.token);
        assert_eq!(first.token.len(), 64);
        assert_ne!(first.server_cert, second.server_cert);

        let (_, cert) = x509_parser::parse_x509_certificate(&first.server_cert).unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(sans.value.general_names.len(), 4);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for file in [&paths.token, &paths.ca_key] {
                let mode = std::fs::metadata(file).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", file.display());
            }
        }
        let unspecified = server_names("0.0.0.0".parse().unwrap(), &[]);
        assert_eq!(unspecified.len(), 2);
    }

    #[test]
    fn a_damaged_ca_or_token_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_data_dir(dir.path());
        let names = server_names("127.0.0.1".parse().unwrap(), &[]);
        load_or_create(&paths, &names).unwrap();
        std::fs::write(&paths.token, "short").unwrap();
        let err = load_or_create(&paths, &names).unwrap_err();
        assert!(matches!(err, KubeApiError::Corrupt { .. }), "{err}");
        std::fs::remove_file(&paths.token).unwrap();
        std::fs::remove_file(&paths.ca_key).unwrap();
        let err = load_or_create(&paths, &names).unwrap_err();
        assert!(matches!(err, KubeApiError::Io { .. }), "{err}");
    }
}
