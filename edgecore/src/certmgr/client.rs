//! HTTPS to the cloud's certificate server: rustls (ring provider) client
//! configurations for the three stages of trust, and the two requests.
//!
//! - [`Trust::Any`]: the CA download. The server is not verified (the edge
//!   has no CA yet); the caller checks the CA's hash against the token.
//! - [`Trust::Ca`]: the token exchange, verifying the server against the CA.
//! - [`Trust::Mutual`]: rotation, presenting the current certificate too.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::{CertMgrError, Result};

/// The largest response body read from the certificate server.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Time allowed for one request, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the server (and the edge) are authenticated.
pub(super) enum Trust {
    /// No server verification.
    Any,
    /// Server verified against this CA.
    Ca(CertificateDer<'static>),
    /// Server verified against the CA; the edge presents a chain and key.
    Mutual {
        /// The CA.
        ca: CertificateDer<'static>,
        /// The edge's certificate chain.
        chain: Vec<CertificateDer<'static>>,
        /// The edge's key.
        key: PrivateKeyDer<'static>,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(trust: Trust) -> Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(CertMgrError::Tls)?;
    let roots = |ca: CertificateDer<'static>| -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(ca).map_err(CertMgrError::Tls)?;
        Ok(roots)
    };
    Ok(match trust {
        Trust::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
            .with_no_client_auth(),
        Trust::Ca(ca) => builder
            .with_root_certificates(roots(ca)?)
            .with_no_client_auth(),
        Trust::Mutual { ca, chain, key } => builder
            .with_root_certificates(roots(ca)?)
            .with_client_auth_cert(chain, key)
            .map_err(CertMgrError::Tls)?,
    })
}

fn http_client(trust: Trust) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(trust)?)
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|source| CertMgrError::Client { source })
}

/// `GET <server>/ca.crt` without verifying the server: the CA, DER.
pub(super) async fn fetch_ca(server: &str) -> Result<Vec<u8>> {
    let url = format!("{server}/ca.crt");
    let fetch = |source| CertMgrError::FetchCa {
        url: url.clone(),
        source,
    };
    let response = http_client(Trust::Any)?
        .get(&url)
        .send()
        .await
        .map_err(fetch)?;
    let status = response.status();
    let body = read_capped(response).await.map_err(fetch)?;
    if status != StatusCode::OK {
        return Err(refused(status, &body));
    }
    Ok(body)
}

/// `GET <server>/edge.crt` with a DER CSR, the node name and, when given,
/// the join token's JWT: the issued certificate, DER.
pub(super) async fn request_cert(
    server: &str,
    trust: Trust,
    csr_der: Vec<u8>,
    node: &str,
    jwt: Option<&str>,
) -> Result<Vec<u8>> {
    let url = format!("{server}/edge.crt");
    let failed = |source| CertMgrError::Request {
        url: url.clone(),
        source,
    };
    let mut request = http_client(trust)?
        .get(&url)
        .header("NodeName", node)
        .header(reqwest::header::CONTENT_TYPE, "application/pkcs10")
        .body(csr_der);
    if let Some(jwt) = jwt {
        request = request.bearer_auth(jwt);
    }
    let response = request.send().await.map_err(failed)?;
    let status = response.status();
    let body = read_capped(response).await.map_err(failed)?;
    if status != StatusCode::OK {
        return Err(refused(status, &body));
    }
    Ok(body)
}

fn refused(status: StatusCode, body: &[u8]) -> CertMgrError {
    CertMgrError::Refused {
        status: status.as_u16(),
        body: String::from_utf8_lossy(body).trim().to_owned(),
    }
}

/// The body, cut at [`MAX_RESPONSE_BYTES`] (a certificate is far smaller).
async fn read_capped(mut response: reqwest::Response) -> reqwest::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(body)
}

/// Accepts any server certificate but still checks the handshake
/// signatures, so the connection is at least to the holder of that key.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
