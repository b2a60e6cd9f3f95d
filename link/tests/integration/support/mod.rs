//! Shared test harness: a throwaway PKI made with rcgen, loopback servers
//! on port 0, and a raw WebSocket client for what `ws_connect` never sends.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use link::{Credentials, Dial, Limits};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;

/// A safety net around a whole test: no test should come near it.
pub async fn guard<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("test exceeded its safety timeout")
}

/// A CA that issues a server certificate and node certificates.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "apiary test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// PEM certificate and key for a leaf with `cn` and the given SANs.
    pub fn leaf_pem(&self, cn: &str, sans: &[&str]) -> (String, String) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn creds(&self, cn: &str, sans: &[&str]) -> Credentials {
        let (cert, key) = self.leaf_pem(cn, sans);
        Credentials::from_pem(self.ca_pem().as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap()
    }

    /// The cloud's credentials: SANs 127.0.0.1 and localhost.
    pub fn server(&self) -> Credentials {
        self.creds("cloudcore", &["127.0.0.1", "localhost"])
    }

    /// A node's credentials: CN `system:node:<name>`.
    pub fn node(&self, name: &str) -> Credentials {
        self.creds(&format!("system:node:{name}"), &[])
    }
}

/// A client config that trusts `ca` but presents no certificate.
pub fn anonymous_client(ca: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// Short handshakes and a small frame cap, so refusals come fast.
pub fn limits(max_frame: usize) -> Limits {
    Limits {
        max_frame,
        handshake_timeout: Duration::from_secs(5),
    }
}

/// How `node_id` dials `server` with `creds`.
pub fn dial(server: SocketAddr, creds: &Credentials, node_id: &str) -> Dial {
    Dial {
        server: server.to_string(),
        server_name: "127.0.0.1".into(),
        project_id: "e632aba927ea4ac2b575ec1603d56f10".into(),
        node_id: node_id.into(),
        tls: link::client_config(creds).unwrap(),
        limits: limits(proto::DEFAULT_MAX_FRAME),
    }
}

pub type RawWs = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// A WebSocket client that sends exactly `headers`, as KubeEdge's edgehub
/// (or a broken client) would.
pub async fn raw_ws(
    server: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    headers: &[(&'static str, &str)],
) -> Result<
    (
        RawWs,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    let tcp = TcpStream::connect(server).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let mut request = format!("wss://{server}/project/node/events")
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    tokio_tungstenite::client_async(request, tls).await
}

/// A sample downstream message.
pub fn configmap(name: &str) -> proto::Message {
    proto::Message::new(
        "edgecontroller",
        "resource",
        proto::Operation::Insert,
        format!("default/configmap/{name}"),
    )
    .with_resource_version("476")
    .with_content(serde_json::json!({"kind": "ConfigMap", "data": {"greeting": "hi"}}))
}

/// A message whose JSON is at least `len` bytes.
pub fn big(len: usize) -> proto::Message {
    configmap("big").with_content("x".repeat(len))
}
