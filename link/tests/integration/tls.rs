//! Credentials, configs and node identity, without sockets.
#![allow(
    clippy::unwrap_used,
    reason = "harness helpers: a failure fails the test"
)]

use crate::support;

use link::{Credentials, TlsError};
use rustls::pki_types::CertificateDer;
use support::Pki;

fn cert_der(pki: &Pki, cn: &str) -> CertificateDer<'static> {
    let (cert, key) = pki.leaf_pem(cn, &[]);
    let creds =
        Credentials::from_pem(pki.ca_pem().as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
    creds.chain[0].clone()
}

#[test]
fn node_is_the_cn_after_the_prefix() {
    let pki = Pki::new();
    assert_eq!(
        link::node_of(&cert_der(&pki, "system:node:edge-1")).unwrap(),
        "edge-1"
    );
}

#[test]
fn certificates_that_name_no_node_are_refused() {
    let pki = Pki::new();
    // KubeEdge v1.15's edge certificate.
    match link::node_of(&cert_der(&pki, "kubeedge.io")) {
        Err(TlsError::NotANode { cn }) => assert_eq!(cn.as_deref(), Some("kubeedge.io")),
        other => panic!("{other:?}"),
    }
    for cn in ["system:node:", "system:node:a/b", "System:Node:edge-1"] {
        assert!(
            matches!(
                link::node_of(&cert_der(&pki, cn)),
                Err(TlsError::NotANode { .. })
            ),
            "{cn}"
        );
    }
    // The CA has a CN, but not a node's.
    assert!(matches!(
        link::node_of(&pki.ca_der()),
        Err(TlsError::NotANode { .. })
    ));
}

#[test]
fn garbage_is_not_a_certificate() {
    let junk = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x02]);
    assert!(matches!(
        link::node_of(&junk),
        Err(TlsError::Certificate(_))
    ));
    assert!(matches!(
        link::node_of(&CertificateDer::from(Vec::new())),
        Err(TlsError::Certificate(_))
    ));
}

#[test]
fn pem_inputs_are_checked() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf_pem("system:node:edge-1", &[]);
    let ca = pki.ca_pem();

    let err = Credentials::from_pem(b"", cert.as_bytes(), key.as_bytes()).unwrap_err();
    assert!(
        matches!(err, TlsError::NoCertificate { what: "CA" }),
        "{err:?}"
    );
    let err = Credentials::from_pem(ca.as_bytes(), key.as_bytes(), key.as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::NoCertificate {
                what: "certificate"
            }
        ),
        "{err:?}"
    );
    let err = Credentials::from_pem(ca.as_bytes(), cert.as_bytes(), cert.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::Pem { what: "key", .. }), "{err:?}");

    let creds = Credentials::from_pem(ca.as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
    assert_eq!(creds.ca, pki.ca_der());
    assert_eq!(creds.chain.len(), 1);
    link::server_config(&creds).unwrap();
    link::client_config(&creds).unwrap();
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let pki = Pki::new();
    let (cert, _) = pki.leaf_pem("system:node:edge-1", &[]);
    let (_, other_key) = pki.leaf_pem("system:node:edge-2", &[]);
    let creds = Credentials::from_pem(
        pki.ca_pem().as_bytes(),
        cert.as_bytes(),
        other_key.as_bytes(),
    )
    .unwrap();
    assert!(matches!(
        link::server_config(&creds),
        Err(TlsError::Rustls(_))
    ));
    assert!(matches!(
        link::client_config(&creds),
        Err(TlsError::Rustls(_))
    ));
}

#[test]
fn credentials_load_from_files() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf_pem("system:node:edge-1", &[]);
    let dir = tempfile::tempdir().unwrap();
    let (ca_path, cert_path, key_path) = (
        dir.path().join("rootCA.crt"),
        dir.path().join("server.crt"),
        dir.path().join("server.key"),
    );
    std::fs::write(&ca_path, pki.ca_pem()).unwrap();
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();

    let creds = Credentials::from_pem_files(&ca_path, &cert_path, &key_path).unwrap();
    assert_eq!(link::node_of(&creds.chain[0]).unwrap(), "edge-1");

    let missing = dir.path().join("nope.key");
    match Credentials::from_pem_files(&ca_path, &cert_path, &missing) {
        Err(TlsError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
}
