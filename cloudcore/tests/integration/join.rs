//! Joining an edge to the cloud end to end: the certificate server with a
//! file-backed PKI on 127.0.0.1:0, driven by the real edgecore
//! `CertManager` (and by raw HTTPS requests for the refusals an honest edge
//! never provokes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudcore::certserver::{CertServer, MAX_CSR_BYTES};
use cloudcore::config::CloudHub;
use cloudcore::pki::{FileStore, Pki};
use edgecore::certmgr::{CertManager, CertMgrError};
use edgecore::config::EdgeHub;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A running certificate server over a PKI stored in a temp dir.
struct Cloud {
    pki: Arc<Pki>,
    addr: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<cloudcore::certserver::Result<()>>,
}

fn hub_config() -> CloudHub {
    let mut hub = CloudHub::default();
    hub.https.address = "127.0.0.1".to_owned();
    hub.https.port = 0;
    hub.dns_names = vec!["cloud.example".to_owned()];
    hub
}

async fn load_pki(store_dir: &Path, hub: &CloudHub) -> Pki {
    let store = Arc::new(FileStore::in_data_dir(store_dir));
    Pki::load_or_create(store, hub).await.expect("PKI loads")
}

async fn start_cloud(store_dir: &Path) -> Cloud {
    let hub = hub_config();
    let pki = Arc::new(load_pki(store_dir, &hub).await);
    let server = CertServer::bind(&hub.https).expect("binds");
    let addr = server.local_addr();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(server.serve(pki.clone(), cancel.clone()));
    Cloud {
        pki,
        addr,
        cancel,
        task,
    }
}

impl Cloud {
    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops on cancel")
            .expect("task")
            .expect("server ends cleanly");
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

fn edge_hub(url: &str, edge_dir: &Path, token: &str) -> EdgeHub {
    EdgeHub {
        http_server: url.to_owned(),
        token: token.to_owned(),
        tls_ca_file: path_str(&edge_dir.join("ca/rootCA.crt")),
        tls_cert_file: path_str(&edge_dir.join("certs/server.crt")),
        tls_private_key_file: path_str(&edge_dir.join("certs/server.key")),
        ..EdgeHub::default()
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn read_cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("a PEM certificate")
}

fn subject(der: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(der).expect("DER certificate");
    cert.subject().to_string()
}

fn assert_signed_by(cert: &[u8], ca: &[u8]) {
    let (_, cert) = X509Certificate::from_der(cert).expect("DER certificate");
    let (_, ca) = X509Certificate::from_der(ca).expect("DER CA");
    cert.verify_signature(Some(&ca.tbs_certificate.subject_pki))
        .expect("signed by the CA");
}

/// A DER CSR for `cn` with a fresh key.
fn csr_for(cn: &str) -> Vec<u8> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "system:nodes");
    params.distinguished_name = dn;
    params.serialize_request(&key).expect("CSR").der().to_vec()
}

/// An HTTPS client trusting `ca`, optionally presenting a client identity.
fn https_client(
    ca: &CertificateDer<'static>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("CA root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .no_proxy()
        .build()
        .expect("HTTPS client")
}

/// `GET /edge.crt`; returns the status and the body as text.
async fn edge_crt(
    client: &reqwest::Client,
    cloud: &Cloud,
    node: Option<&str>,
    jwt: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = client.get(format!("{}/edge.crt", cloud.url())).body(body);
    if let Some(node) = node {
        req = req.header("NodeName", node);
    }
    if let Some(jwt) = jwt {
        req = req.bearer_auth(jwt);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn jwt_of(token: &str) -> &str {
    token.split_once('.').expect("hash.jwt").1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_with_a_good_token_writes_a_node_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = start_cloud(&dir.path().join("cloud")).await;
    let edge_dir = dir.path().join("edge");
    let hub = edge_hub(&cloud.url(), &edge_dir, &cloud.pki.token());
    let mgr = CertManager::new(&hub, "edge-1");

    let files = mgr.ensure().await.expect("joins");
    assert_eq!(read_cert(&files.ca).as_ref(), cloud.pki.ca_der().as_ref());
    let cert = read_cert(&files.cert);
    assert_eq!(subject(&cert), "CN=system:node:edge-1, O=system:nodes");
    assert_signed_by(&cert, cloud.pki.ca_der());
    PrivateKeyDer::from_pem_file(&files.key).expect("a PEM key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Renewal is due at 80 % of the 365-day lifetime.
    let (_, parsed) = X509Certificate::from_der(&cert).unwrap();
    let not_before = parsed.validity().not_before.timestamp();
    let not_after = parsed.validity().not_after.timestamp();
    let renew = mgr
        .renew_at()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((renew - (not_before + (not_after - not_before) * 8 / 10)).abs() <= 1);

    // With the server gone, the files alone satisfy the next start.
    cloud.stop().await;
    assert_eq!(mgr.ensure().await.expect("uses the files"), files);
    // They are not another node's, though.
    let other = CertManager::new(&edge_hub("https://127.0.0.1:1", &edge_dir, ""), "edge-2");
    let err = other.ensure().await.unwrap_err();
    assert!(matches!(err, CertMgrError::NoToken { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrongly_signed_token_is_refused_with_401() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = start_cloud(&dir.path().join("cloud")).await;
    let edge_dir = dir.path().join("edge");
    // The right CA hash, a JWT signed with some other key.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims_expiring_in_an_hour(),
        &jsonwebtoken::EncodingKey::from_secret(b"not the CA key"),
    )
    .unwrap();
    let token = format!("{}.{forged}", cloud.pki.ca_hash());
    let mgr = CertManager::new(&edge_hub(&cloud.url(), &edge_dir, &token), "edge-1");

    let err = mgr.ensure().await.unwrap_err();
    match &err {
        CertMgrError::Refused { status: 401, body } => {
            assert!(body.contains("token"), "{body}")
        }
        other => panic!("expected a 401 refusal, got {other:?}"),
    }
    assert!(err.to_string().contains("join token"), "{err}");
    assert!(!mgr.files().cert.exists() && !mgr.files().key.exists());
    cloud.stop().await;
}

fn claims_expiring_in_an_hour() -> std::collections::BTreeMap<&'static str, u64> {
    let exp = SystemTime::now() + Duration::from_secs(3600);
    let exp = exp
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("system clock")
        .as_secs();
    std::collections::BTreeMap::from([("exp", exp)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_ca_stops_the_edge_before_the_csr() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = start_cloud(&dir.path().join("cloud")).await;
    let edge_dir = dir.path().join("edge");
    let token = format!("{}.{}", "0".repeat(64), jwt_of(&cloud.pki.token()));
    let mgr = CertManager::new(&edge_hub(&cloud.url(), &edge_dir, &token), "edge-1");

    let err = mgr.ensure().await.unwrap_err();
    match &err {
        CertMgrError::CaHashMismatch { expected, actual } => {
            assert_eq!(expected, &"0".repeat(64));
            assert_eq!(actual, cloud.pki.ca_hash());
        }
        other => panic!("expected a CA hash mismatch, got {other:?}"),
    }
    // Nothing was generated or written: the CSR step was never reached.
    assert!(!edge_dir.exists(), "{}", edge_dir.display());
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_status_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = start_cloud(&dir.path().join("cloud")).await;
    let client = https_client(cloud.pki.ca_der(), None);
    let token = cloud.pki.token();
    let jwt = Some(jwt_of(&token));

    // A CSR for node A sent as node B.
    let (status, body) = edge_crt(
        &client,
        &cloud,
        Some("edge-b"),
        jwt,
        csr_for("system:node:edge-a"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("system:node:edge-b"), "{body}");

    let csr = csr_for("system:node:edge-a");
    let (status, body) = edge_crt(&client, &cloud, None, jwt, csr.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("NodeName"), "{body}");

    let (status, body) = edge_crt(&client, &cloud, Some("edge-a"), jwt, b"junk".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("certificate request"), "{body}");

    let (status, body) = edge_crt(&client, &cloud, Some("edge-a"), None, csr.clone()).await;
    assert_eq!(status, 401, "{body}");

    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &std::collections::BTreeMap::from([("exp", 1_u64)]),
        &jsonwebtoken::EncodingKey::from_secret(b"x"),
    )
    .unwrap();
    let (status, _) = edge_crt(&client, &cloud, Some("edge-a"), Some(&expired), csr.clone()).await;
    assert_eq!(status, 401);

    let huge = vec![0_u8; MAX_CSR_BYTES + 1];
    let (status, body) = edge_crt(&client, &cloud, Some("edge-a"), jwt, huge).await;
    assert_eq!(status, 413, "{body}");

    let (status, _) = edge_crt(&client, &cloud, Some("edge-a"), jwt, csr).await;
    assert_eq!(status, 200);
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_over_mutual_tls_replaces_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = start_cloud(&dir.path().join("cloud")).await;
    let edge_dir = dir.path().join("edge");
    let hub = edge_hub(&cloud.url(), &edge_dir, &cloud.pki.token());
    let files = CertManager::new(&hub, "edge-1").ensure().await.unwrap();
    let first_cert = read_cert(&files.cert);
    let first_key = std::fs::read(&files.key).unwrap();

    // No token this time: the current certificate is the credential.
    let mgr = CertManager::new(&edge_hub(&cloud.url(), &edge_dir, ""), "edge-1");
    mgr.rotate().await.expect("rotates");
    let second_cert = read_cert(&files.cert);
    assert_ne!(first_cert, second_cert);
    assert_ne!(first_key, std::fs::read(&files.key).unwrap());
    assert_eq!(
        subject(&second_cert),
        "CN=system:node:edge-1, O=system:nodes"
    );
    assert_signed_by(&second_cert, cloud.pki.ca_der());
    mgr.ensure().await.expect("the rotated files are usable");

    // A node's certificate cannot renew another node.
    let identity = (
        vec![second_cert],
        PrivateKeyDer::from_pem_file(&files.key).unwrap(),
    );
    let client = https_client(cloud.pki.ca_der(), Some(identity));
    let (status, body) = edge_crt(
        &client,
        &cloud,
        Some("edge-2"),
        None,
        csr_for("system:node:edge-2"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("edge-1"), "{body}");
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_and_token_survive_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let store: PathBuf = dir.path().join("cloud");
    let hub = hub_config();
    let first = load_pki(&store, &hub).await;
    let token = first.token();
    let ca = first.ca_der().clone();
    let server = first.server_chain();
    drop(first);

    let second = load_pki(&store, &hub).await;
    assert_eq!(second.ca_der(), &ca);
    assert_eq!(second.server_chain(), server);
    assert_eq!(second.token(), token);
    second
        .verify_jwt(jwt_of(&token))
        .expect("the token verifies");
    second
        .verify_jwt(&token)
        .expect("the whole token verifies too");

    // After a refresh both the new and the previous token verify.
    second.refresh_token().await.unwrap();
    second.verify_jwt(jwt_of(&second.token())).unwrap();
    second.verify_jwt(jwt_of(&token)).unwrap();

    // New names: a new server certificate from the same CA.
    let mut renamed = hub.clone();
    renamed.advertise_address = vec!["10.1.2.3".to_owned()];
    let third = load_pki(&store, &renamed).await;
    assert_eq!(third.ca_der(), &ca);
    assert_ne!(third.server_chain(), server);
    assert_signed_by(&third.server_chain()[0], &ca);
    assert_eq!(third.token(), second.token());
}

/// Writes an edge-1 certificate signed by the stored CA whose lifetime is
/// mostly over (issued 10 days ago, expiring tomorrow).
fn write_aged_certificate(store_dir: &Path, edge: &edgecore::certmgr::CertFiles) {
    let pki_dir = store_dir.join("pki");
    let ca = CertificateDer::from(std::fs::read(pki_dir.join("ca.crt")).expect("stored CA"));
    let ca_key = std::fs::read(pki_dir.join("ca.key")).expect("stored CA key");
    let ca_key = PrivateKeyDer::Pkcs8(ca_key.into());
    let ca_key = KeyPair::try_from(&ca_key).expect("CA key");
    let issuer = rcgen::Issuer::from_ca_cert_der(&ca, ca_key).expect("issuer");

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "system:node:edge-1");
    params.distinguished_name = dn;
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(10 * 86400)).into();
    params.not_after = (now + Duration::from_secs(86400)).into();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).expect("aged certificate");

    for dir in [&edge.ca, &edge.cert] {
        std::fs::create_dir_all(dir.parent().expect("parent")).expect("mkdir");
    }
    let pem = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
    std::fs::write(&edge.ca, pem(&ca)).expect("write CA");
    std::fs::write(&edge.cert, pem(cert.der())).expect("write cert");
    std::fs::write(&edge.key, key.serialize_pem()).expect("write key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_past_eighty_percent_is_rotated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("cloud");
    let cloud = start_cloud(&store_dir).await;
    let mgr = CertManager::new(
        &edge_hub(&cloud.url(), &dir.path().join("edge"), ""),
        "edge-1",
    );
    write_aged_certificate(&store_dir, mgr.files());
    let files = mgr
        .ensure()
        .await
        .expect("the aged certificate is still valid");
    assert!(mgr.renew_at() < SystemTime::now());
    let aged = read_cert(&files.cert);

    let (rotated_tx, mut rotated) = tokio::sync::mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(mgr.clone().run_rotation(cancel.clone(), move || {
        let _ = rotated_tx.send(());
    }));
    tokio::time::timeout(Duration::from_secs(10), rotated.recv())
        .await
        .expect("rotated in time")
        .expect("callback");

    let fresh = read_cert(&files.cert);
    assert_ne!(fresh, aged);
    assert_signed_by(&fresh, cloud.pki.ca_der());
    // The new certificate is not due for months: the loop waits.
    assert!(mgr.renew_at() > SystemTime::now() + Duration::from_secs(200 * 86400));
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("rotation loop stops on cancel")
        .unwrap();
    assert!(rotated.try_recv().is_err(), "rotated only once");
    cloud.stop().await;
}
