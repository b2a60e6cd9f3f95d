//! Making certificates: the CA, the server certificate and edge client
//! certificates from CSRs, and the checks that decide whether a stored
//! certificate can be kept. Pure functions of their inputs and `now`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SubjectPublicKeyInfo,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::{PkiError, Result};

/// Prefix of an edge node's certificate CN (`system:node:<name>`).
pub const NODE_CN_PREFIX: &str = "system:node:";
/// Organization of edge node certificates.
pub const NODES_ORGANIZATION: &str = "system:nodes";
/// Common name of the CA Apiary creates.
pub const CA_COMMON_NAME: &str = "KubeEdge CA (Apiary)";
/// Common name of the server certificate.
pub const SERVER_COMMON_NAME: &str = "cloudcore";

/// Lifetime of the CA and of the server certificate (about 100 years, as KubeEdge).
pub(crate) const LONG_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Certificates start this long before `now`, for clocks a little behind.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn generate(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

fn base_params(cn: &str, now: SystemTime, lifetime: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + lifetime).into();
    params.serial_number = Some(random_serial());
    params
}

/// A random positive 128-bit serial number.
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // keep 16 bytes: no leading zero to strip
    SerialNumber::from_slice(&bytes)
}

/// A new self-signed ECDSA P-256 CA named `cn`, valid about 100 years.
pub(crate) fn new_ca(cn: &str, now: SystemTime) -> Result<(CertificateDer<'static>, KeyPair)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate("CA key"))?;
    let mut params = base_params(cn, now, LONG_LIFETIME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(generate("CA certificate"))?;
    Ok((cert.der().clone(), key))
}

/// The issuer for a stored CA, checking that the key belongs to the certificate.
pub(crate) fn ca_issuer(ca: &CertificateDer<'_>, key: KeyPair) -> Result<Issuer<'static, KeyPair>> {
    let cert = parse_cert(ca).map_err(|reason| PkiError::Corrupt { name: "ca", reason })?;
    if cert.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
        return Err(PkiError::Corrupt {
            name: "ca",
            reason: "the key does not belong to the certificate".to_owned(),
        });
    }
    Issuer::from_ca_cert_der(ca, key).map_err(generate("CA issuer"))
}

/// The server certificate's subject alternative names: `advertise` and
/// `dns_names` plus `127.0.0.1` and `localhost`, each as an IP or DNS name.
pub(crate) fn server_sans(advertise: &[String], dns_names: &[String]) -> BTreeSet<String> {
    advertise
        .iter()
        .chain(dns_names)
        .map(String::as_str)
        .chain(["127.0.0.1", "localhost"])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => format!("IP:{ip}"),
            Err(_) => format!("DNS:{}", s.to_ascii_lowercase()),
        })
        .collect()
}

/// A new server certificate (serverAuth) named `cn` for `sans` (as
/// [`server_sans`] spells them), signed by the CA, valid `lifetime`.
pub(crate) fn new_server_cert(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    sans: &BTreeSet<String>,
    lifetime: Duration,
    now: SystemTime,
) -> Result<(CertificateDer<'static>, KeyPair)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate("server key"))?;
    let mut params = base_params(cn, now, lifetime);
    for san in sans {
        let san = if let Some(ip) = san.strip_prefix("IP:") {
            ip.parse().map(SanType::IpAddress).ok()
        } else if let Some(dns) = san.strip_prefix("DNS:") {
            dns.to_owned().try_into().map(SanType::DnsName).ok()
        } else {
            None
        };
        let Some(san) = san else {
            return Err(PkiError::BadConfig(format!(
                "{san:?} is not an IP address or DNS name (modules.cloudHub.advertiseAddress / dnsNames)"
            )));
        };
        params.subject_alt_names.push(san);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(generate("server certificate"))?;
    Ok((cert.der().clone(), key))
}

/// Whether a stored server certificate can be kept: it parses, belongs to
/// `key`, was signed by `ca`, is valid at `now` and has exactly `sans`.
pub(crate) fn server_cert_usable(
    cert: &CertificateDer<'_>,
    key: &KeyPair,
    ca: &CertificateDer<'_>,
    sans: &BTreeSet<String>,
    now: SystemTime,
) -> std::result::Result<(), String> {
    let parsed = parse_cert(cert)?;
    let ca = parse_cert(ca)?;
    if parsed.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
        return Err("the key does not belong to the certificate".to_owned());
    }
    parsed
        .verify_signature(Some(&ca.tbs_certificate.subject_pki))
        .map_err(|_| "not signed by the current CA".to_owned())?;
    if !valid_at(&parsed, now) {
        return Err("expired or not yet valid".to_owned());
    }
    let have = cert_sans(&parsed);
    if &have != sans {
        return Err(format!(
            "names {have:?} differ from the configured {sans:?}"
        ));
    }
    Ok(())
}

/// Issues an edge client certificate (clientAuth, CN `system:node:<node>`,
/// O `system:nodes`) for the key in a DER CSR, valid `days` days from `now`.
///
/// The CSR's signature must verify and its subject must be exactly
/// `CN=system:node:<node>` (with `O=system:nodes` if it names an
/// organization). Requested extensions are ignored: the CA decides them.
pub(crate) fn sign_client(
    issuer: &Issuer<'_, KeyPair>,
    csr_der: &[u8],
    node: &str,
    days: u32,
    now: SystemTime,
) -> Result<CertificateDer<'static>> {
    let bad = |reason: &str| PkiError::BadCsr(reason.to_owned());
    let (rest, csr) = X509CertificationRequest::from_der(csr_der)
        .map_err(|_| bad("not a DER PKCS#10 certificate request"))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the certificate request"));
    }
    csr.verify_signature()
        .map_err(|_| bad("the request's signature does not verify"))?;
    let subject = &csr.certification_request_info.subject;
    let common_names: Vec<&str> = subject
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .collect();
    let organizations: Vec<&str> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .collect();
    let want_cn = format!("{NODE_CN_PREFIX}{node}");
    if common_names != [want_cn.as_str()]
        || !(organizations.is_empty() || organizations == [NODES_ORGANIZATION])
    {
        return Err(PkiError::IdentityMismatch {
            node: node.to_owned(),
            subject: subject.to_string(),
        });
    }
    let public_key = SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
        .map_err(|_| bad("unsupported public key algorithm"))?;

    let lifetime = DAY * days.max(1);
    let mut params = base_params(&want_cn, now, lifetime);
    params
        .distinguished_name
        .push(DnType::OrganizationName, NODES_ORGANIZATION);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&public_key, issuer)
        .map_err(generate("client certificate"))?;
    Ok(cert.der().clone())
}

/// Checks the node name from a request: a Kubernetes node name (DNS
/// subdomain: lowercase letters, digits, `-` and `.`, at most 253 bytes).
pub(crate) fn check_node_name(node: &str) -> Result<()> {
    let ok = !node.is_empty()
        && node.len() <= 253
        && node
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && node
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if ok {
        Ok(())
    } else {
        Err(PkiError::BadNodeName(node.to_owned()))
    }
}

/// Why the CA certificate `der` cannot be used at `now`: it does not parse
/// or is not valid then.
pub(crate) fn check_ca(der: &[u8], now: SystemTime) -> std::result::Result<(), String> {
    if valid_at(&parse_cert(der)?, now) {
        Ok(())
    } else {
        Err("the CA certificate has expired or is not yet valid".to_owned())
    }
}

fn parse_cert<'a>(der: &'a [u8]) -> std::result::Result<X509Certificate<'a>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing bytes after the certificate".to_owned()),
        Err(e) => Err(format!("not a DER certificate: {e}")),
    }
}

fn valid_at(cert: &X509Certificate<'_>, now: SystemTime) -> bool {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let validity = cert.validity();
    validity.not_before.timestamp() <= now && now <= validity.not_after.timestamp()
}

fn cert_sans(cert: &X509Certificate<'_>) -> BTreeSet<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return BTreeSet::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(format!("DNS:{}", dns.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(|ip| format!("IP:{ip}")),
            _ => None,
        })
        .collect()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(cn: &str, org: Option<&str>) -> Vec<u8> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        if let Some(org) = org {
            dn.push(DnType::OrganizationName, org);
        }
        params.distinguished_name = dn;
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    #[test]
    fn issues_client_certificates_for_the_named_node_only() {
        let now = SystemTime::now();
        let (ca, key) = new_ca(CA_COMMON_NAME, now).unwrap();
        let issuer = ca_issuer(&ca, key).unwrap();
        let der = sign_client(
            &issuer,
            &csr("system:node:edge-1", Some("system:nodes")),
            "edge-1",
            365,
            now,
        )
        .unwrap();
        let cert = parse_cert(&der).unwrap();
        let ca_cert = parse_cert(&ca).unwrap();
        cert.verify_signature(Some(&ca_cert.tbs_certificate.subject_pki))
            .unwrap();
        assert_eq!(
            cert.subject().to_string(),
            "CN=system:node:edge-1, O=system:nodes"
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let life = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(life, 365 * 86400 + 300);

        let wrong = sign_client(&issuer, &csr("system:node:edge-1", None), "edge-2", 1, now);
        assert!(matches!(wrong, Err(PkiError::IdentityMismatch { .. })));
        let legacy = sign_client(
            &issuer,
            &csr("kubeedge.io", Some("kubeEdge")),
            "edge-1",
            1,
            now,
        );
        assert!(matches!(legacy, Err(PkiError::IdentityMismatch { .. })));
        let garbage = sign_client(&issuer, b"not a csr", "edge-1", 1, now);
        assert!(matches!(garbage, Err(PkiError::BadCsr(_))));
    }

    #[test]
    fn server_certificate_is_kept_only_while_it_matches() {
        let now = SystemTime::now();
        let (ca, ca_key) = new_ca(CA_COMMON_NAME, now).unwrap();
        let issuer = ca_issuer(&ca, ca_key).unwrap();
        let sans = server_sans(&["10.0.0.1".to_owned()], &["Cloud.Example".to_owned()]);
        assert_eq!(
            sans,
            BTreeSet::from(
                [
                    "IP:10.0.0.1",
                    "IP:127.0.0.1",
                    "DNS:cloud.example",
                    "DNS:localhost"
                ]
                .map(String::from)
            )
        );
        let (cert, key) =
            new_server_cert(&issuer, SERVER_COMMON_NAME, &sans, LONG_LIFETIME, now).unwrap();
        assert_eq!(server_cert_usable(&cert, &key, &ca, &sans, now), Ok(()));
        let other = server_sans(&["10.0.0.2".to_owned()], &[]);
        assert!(server_cert_usable(&cert, &key, &ca, &other, now).is_err());
        let (other_ca, _) = new_ca(CA_COMMON_NAME, now).unwrap();
        assert!(server_cert_usable(&cert, &key, &other_ca, &sans, now).is_err());
    }

    #[test]
    fn node_names_follow_kubernetes_rules() {
        assert!(check_node_name("edge-1.site").is_ok());
        for bad in ["", "Edge", "-a", "a..b", "a/b", "a b"] {
            assert!(check_node_name(bad).is_err(), "{bad}");
        }
    }
}
