//! Mutual TLS for the link: credentials, rustls configs, node identity.
//!
//! Both sides hold the same kind of [`Credentials`]: the CA that signs every
//! certificate of the cluster, their own chain and key. The server requires a
//! client certificate signed by the CA; the client verifies the server
//! against the same CA. Only TLS 1.2 and 1.3 are offered, and only with
//! ring's crypto provider, passed explicitly so no process-wide default is
//! needed.
//!
//! A node is known by its client certificate's subject CN,
//! `system:node:<name>` ([`node_of`]).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::TlsError;

/// The CN prefix of a node's client certificate.
pub const NODE_CN_PREFIX: &str = "system:node:";

/// The TLS versions the link speaks.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A CA to trust, and the chain and key to present.
#[derive(Debug)]
pub struct Credentials {
    /// The cluster CA: peers must present certificates it signed.
    pub ca: CertificateDer<'static>,
    /// Our certificate first, then any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key of `chain[0]`.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Credentials {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Credentials {
    /// Credentials from PEM text: the CA certificate (the first one in
    /// `ca_pem` is used), our chain, and our key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let ca = certs(ca_pem, "CA")?
            .into_iter()
            .next()
            .ok_or(TlsError::NoCertificate { what: "CA" })?;
        let chain = certs(cert_pem, "certificate")?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                what: "certificate",
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Pem {
            what: "key",
            source,
        })?;
        Ok(Credentials { ca, chain, key })
    }

    /// Credentials from PEM files (e.g. KubeEdge's `rootCA.crt`,
    /// `server.crt`, `server.key`).
    pub fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        Credentials::from_pem(&read(ca)?, &read(cert)?, &read(key)?)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        Ok(Arc::new(roots))
    }
}

/// Every certificate in a PEM input.
fn certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what, source })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: presents `creds.chain`, requires a client certificate
/// signed by `creds.ca`, TLS 1.2 or 1.3.
pub fn server_config(creds: &Credentials) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        creds.roots()?,
        provider.clone(),
    )
    .build()?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(creds.chain.clone(), creds.key.clone_key())?;
    Ok(Arc::new(config))
}

/// The client side: verifies the server against `creds.ca` and presents
/// `creds.chain`, TLS 1.2 or 1.3.
pub fn client_config(creds: &Credentials) -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(creds.roots()?)
        .with_client_auth_cert(creds.chain.clone(), creds.key.clone_key())?;
    Ok(Arc::new(config))
}

/// The node a certificate belongs to: its subject CN without the
/// [`NODE_CN_PREFIX`]. The name must be non-empty and free of `/`, so it
/// can stand in a resource path.
pub fn node_of(cert: &CertificateDer<'_>) -> Result<String, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| {
        TlsError::Certificate(match e {
            x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
            x509_parser::nom::Err::Incomplete(_) => {
                x509_parser::error::X509Error::InvalidCertificate
            }
        })
    })?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    match cn.as_deref().and_then(|cn| cn.strip_prefix(NODE_CN_PREFIX)) {
        Some(node) if !node.is_empty() && !node.contains('/') => Ok(node.to_owned()),
        _ => Err(TlsError::NotANode { cn }),
    }
}
