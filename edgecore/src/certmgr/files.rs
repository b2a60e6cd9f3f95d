//! The node's certificate files: reading and checking them, and writing new
//! ones atomically (temporary file in the same directory, then rename; the
//! key owner-only). The files are a few hundred bytes, read with `std::fs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use daemonkit::files::{write_atomic, Access};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{CertMgrError, Result, NODE_CN_PREFIX};

/// The three files the node's identity lives in (all PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The cloud's CA certificate (`tlsCaFile`).
    pub ca: PathBuf,
    /// This node's certificate (`tlsCertFile`).
    pub cert: PathBuf,
    /// This node's private key (`tlsPrivateKeyFile`), mode 0600.
    pub key: PathBuf,
}

/// The parsed contents of [`CertFiles`].
pub(super) struct Loaded {
    pub(super) ca: CertificateDer<'static>,
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) key: PrivateKeyDer<'static>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertMgrError + '_ {
    move |source| CertMgrError::Io {
        path: path.to_owned(),
        source,
    }
}

fn bad_file(path: &Path, reason: impl std::fmt::Display) -> CertMgrError {
    CertMgrError::BadFile {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl CertFiles {
    /// Reads the three files.
    pub(super) fn load(&self) -> Result<Loaded> {
        let ca_pem = fs::read(&self.ca).map_err(io(&self.ca))?;
        let ca = CertificateDer::from_pem_slice(&ca_pem).map_err(|e| bad_file(&self.ca, e))?;
        let cert_pem = fs::read(&self.cert).map_err(io(&self.cert))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad_file(&self.cert, e))?;
        if chain.is_empty() {
            return Err(bad_file(&self.cert, "no certificate in the file"));
        }
        let key_pem = fs::read(&self.key).map_err(io(&self.key))?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad_file(&self.key, e))?;
        Ok(Loaded { ca, chain, key })
    }

    /// Writes the CA, key and certificate (in that order).
    pub(super) fn write_all(&self, ca: &[u8], cert: &[u8], key_pem: &str) -> Result<()> {
        write_atomic(&self.ca, pem("CERTIFICATE", ca).as_bytes(), Access::Public)
            .map_err(io(&self.ca))?;
        self.write_identity(cert, key_pem)
    }

    /// Replaces the key and the certificate (key first).
    pub(super) fn write_identity(&self, cert: &[u8], key_pem: &str) -> Result<()> {
        write_atomic(&self.key, key_pem.as_bytes(), Access::Private).map_err(io(&self.key))?;
        write_atomic(
            &self.cert,
            pem("CERTIFICATE", cert).as_bytes(),
            Access::Public,
        )
        .map_err(io(&self.cert))
    }
}

/// Checks that `cert` is a certificate of `node`, signed by `ca`, valid at
/// `now` and (when the key's public half can be derived) belonging to `key`.
pub(super) fn check_identity(
    ca: &[u8],
    cert: &[u8],
    key: &PrivateKeyDer<'_>,
    node: &str,
    now: SystemTime,
) -> std::result::Result<(), String> {
    let (_, ca) = X509Certificate::from_der(ca).map_err(|e| format!("CA: {e}"))?;
    let (_, parsed) = X509Certificate::from_der(cert).map_err(|e| format!("certificate: {e}"))?;
    let cn: Vec<_> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .collect();
    let want = format!("{NODE_CN_PREFIX}{node}");
    if cn != [want.as_str()] {
        return Err(format!("the certificate is for {cn:?}, not {want:?}"));
    }
    parsed
        .verify_signature(Some(&ca.tbs_certificate.subject_pki))
        .map_err(|_| "the certificate is not signed by the CA".to_owned())?;
    let (not_before, not_after) = validity(&parsed);
    if now < not_before || not_after <= now {
        return Err("the certificate has expired or is not yet valid".to_owned());
    }
    let provider = rustls::crypto::ring::default_provider();
    let signer = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| format!("private key: {e}"))?;
    if let Some(spki) = signer.public_key() {
        if spki.as_ref() != parsed.tbs_certificate.subject_pki.raw {
            return Err("the private key does not belong to the certificate".to_owned());
        }
    }
    Ok(())
}

/// The certificate's notBefore and notAfter.
pub(super) fn cert_validity(cert: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (_, parsed) = X509Certificate::from_der(cert).ok()?;
    Some(validity(&parsed))
}

fn validity(cert: &X509Certificate<'_>) -> (SystemTime, SystemTime) {
    let at = |secs: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    let v = cert.validity();
    (at(v.not_before.timestamp()), at(v.not_after.timestamp()))
}

fn pem(label: &str, der: &[u8]) -> String {
    ::pem::encode(&::pem::Pem::new(label, der.to_vec()))
}
