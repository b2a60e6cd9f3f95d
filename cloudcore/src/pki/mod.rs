//! The cloud's certificate authority (reference §2 "TLS", "Join token and
//! certificates"; §13): the CA, the server certificate that cloudhub and the
//! certificate server present, edge client certificates signed from CSRs,
//! and the join tokens edges use to get their first certificate.
//!
//! - `store.rs`: [`SecretStore`] and its file backend [`FileStore`].
//! - `secrets.rs`: [`KubeStore`], the Kubernetes Secrets backend cloudcore
//!   runs on (`kubeedge/casecret`, `cloudcoresecret`, `tokensecret`), shared
//!   by replicas; it migrates the files of older data directories.
//! - `issue.rs`: certificate making and checking (pure).
//! - `token.rs`: join tokens (pure).
//!
//! Invariant: the CA is created once and never replaced by this code; a
//! stored CA that cannot be used is an error, not a reason to make a new one
//! (every edge would lose trust in the cloud).

pub(crate) mod issue;
mod secrets;
mod store;
mod token;

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::{Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::CloudHub;

pub use issue::{CA_COMMON_NAME, NODES_ORGANIZATION, NODE_CN_PREFIX, SERVER_COMMON_NAME};
pub use secrets::KubeStore;
pub use store::{FileStore, Secret, SecretStore, StoreError, CA, CERT, KEY, SERVER, TOKEN, VALUE};

/// Why the PKI could not load, sign or verify.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The secret store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key or certificate could not be generated.
    #[error("cannot generate the {what}")]
    Generate {
        /// What was being made.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// A stored secret is unusable and must not be silently replaced.
    #[error("stored secret {name:?} is unusable: {reason}")]
    Corrupt {
        /// The secret's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration names something a certificate cannot hold.
    #[error("invalid certificate configuration: {0}")]
    BadConfig(String),
    /// The certificate signing request is malformed or its signature is wrong.
    #[error("bad certificate request: {0}")]
    BadCsr(String),
    /// The node name is not a valid Kubernetes node name.
    #[error("invalid node name {0:?}")]
    BadNodeName(String),
    /// The CSR's subject is not `CN=system:node:<node>, O=system:nodes`.
    #[error("the certificate request's subject {subject:?} is not CN={prefix}{node}, O={org}", prefix = NODE_CN_PREFIX, org = NODES_ORGANIZATION)]
    IdentityMismatch {
        /// The node named by the request.
        node: String,
        /// The subject of the CSR.
        subject: String,
    },
    /// A join token is malformed, wrongly signed or expired.
    #[error("join token refused: {0}")]
    BadToken(String),
}

/// Result of the PKI.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;

#[derive(Debug)]
struct Tokens {
    current: token::Token,
    previous: Option<token::Token>,
}

/// The loaded CA, server certificate and join tokens. Shared as `Arc<Pki>`
/// by cloudhub (TLS), the certificate server and the token refresher.
pub struct Pki {
    store: Arc<dyn SecretStore>,
    ca_der: CertificateDer<'static>,
    ca_key_der: Vec<u8>,
    ca_hash: String,
    issuer: Issuer<'static, KeyPair>,
    server_cert: CertificateDer<'static>,
    server_key: PrivatePkcs8KeyDer<'static>,
    edge_cert_days: u32,
    token_refresh: Duration,
    tokens: RwLock<Tokens>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("store", &self.store)
            .field("ca_hash", &self.ca_hash)
            .field("edge_cert_days", &self.edge_cert_days)
            .field("token_refresh", &self.token_refresh)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Loads the CA, server certificate and token from `store`, creating what
    /// is missing: the CA once (ECDSA P-256, about 100 years), the server
    /// certificate whenever its names (`advertiseAddress`, `dnsNames`,
    /// `127.0.0.1`, `localhost`) or CA no longer match, the token when the
    /// stored one is older than `tokenRefreshDuration`.
    pub async fn load_or_create(store: Arc<dyn SecretStore>, hub: &CloudHub) -> Result<Pki> {
        let now = SystemTime::now();
        let (ca_der, ca_key_der) = load_or_create_ca(store.as_ref(), now).await?;
        let ca_key =
            key_from_der(&ca_key_der).map_err(|reason| PkiError::Corrupt { name: CA, reason })?;
        let issuer = issue::ca_issuer(&ca_der, ca_key)?;
        let ca_hash = hex::encode(Sha256::digest(&ca_der));

        let sans = issue::server_sans(&hub.advertise_address, &hub.dns_names);
        let (server_cert, server_key) =
            load_or_create_server(store.as_ref(), &issuer, &ca_der, &sans, now).await?;

        let token_refresh =
            Duration::from_secs(u64::from(hub.token_refresh_duration.max(1)) * 3600);
        let mut pki = Pki {
            store,
            ca_der,
            ca_key_der,
            ca_hash,
            issuer,
            server_cert,
            server_key: PrivatePkcs8KeyDer::from(server_key),
            edge_cert_days: hub.edge_cert_signing_duration.max(1),
            token_refresh,
            tokens: RwLock::new(Tokens {
                current: token::Token {
                    text: String::new(),
                    expires: now,
                },
                previous: None,
            }),
        };
        pki.load_token(now).await?;
        tracing::info!(ca_sha256 = %pki.ca_hash, sans = ?sans, "PKI loaded");
        Ok(pki)
    }

    async fn load_token(&mut self, now: SystemTime) -> Result<()> {
        let loaded = self.store.load(TOKEN).await?;
        let had_token = loaded.is_some();
        let stored = loaded.and_then(|s| self.token_in(&s, now));
        match stored {
            // Issued less than one refresh period ago: keep it.
            Some(t) if t.expires > now + self.token_refresh => self.set_tokens(t, None),
            None if !had_token => {
                // None stored: create it, unless another replica just did.
                let fresh = self.new_token(now)?;
                let stored = self.store.create(TOKEN, &token_secret(&fresh)).await?;
                match self.token_in(&stored, now) {
                    Some(t) => self.set_tokens(t, None),
                    None => {
                        self.save_token(&fresh).await?;
                        self.set_tokens(fresh, None);
                    }
                }
            }
            other => {
                let fresh = self.new_token(now)?;
                self.save_token(&fresh).await?;
                self.set_tokens(fresh, other);
            }
        }
        Ok(())
    }

    fn set_tokens(&self, current: token::Token, previous: Option<token::Token>) {
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        *tokens = Tokens { current, previous };
    }

    fn new_token(&self, now: SystemTime) -> Result<token::Token> {
        token::issue(
            &self.ca_hash,
            &self.ca_key_der,
            now + 2 * self.token_refresh,
        )
    }

    /// The token `secret` holds, if it verifies under the CA at `now`.
    fn token_in(&self, secret: &Secret, now: SystemTime) -> Option<token::Token> {
        let text = String::from_utf8(secret.get(VALUE)?.clone()).ok()?;
        let expires = token::verify(&self.ca_hash, &self.ca_key_der, &text, now).ok()?;
        Some(token::Token { text, expires })
    }

    async fn save_token(&self, token: &token::Token) -> Result<()> {
        Ok(self.store.save(TOKEN, &token_secret(token)).await?)
    }

    /// The CA certificate (DER), what `GET /ca.crt` serves.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The CA certificate as PEM.
    pub fn ca_pem(&self) -> String {
        pem("CERTIFICATE", &self.ca_der)
    }

    /// Hex SHA-256 of the CA DER: the prefix of every join token.
    pub fn ca_hash(&self) -> &str {
        &self.ca_hash
    }

    /// The server certificate chain (leaf only; edges trust the CA).
    pub fn server_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.server_cert.clone()]
    }

    /// The server certificate's private key.
    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.server_key.clone_key())
    }

    /// Days an edge certificate is valid (`edgeCertSigningDuration`).
    pub fn edge_cert_days(&self) -> u32 {
        self.edge_cert_days
    }

    /// The current join token, `<hex sha256(CA DER)>.<jwt>`.
    pub fn token(&self) -> String {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        tokens.current.text.clone()
    }

    /// Checks a join token's JWT (or the whole token): HS256 under the CA
    /// key and not expired. Tokens are issued once per refresh period and
    /// live two, so the ones that pass are the current and the previous
    /// token; checking the signature rather than comparing strings also
    /// accepts a token another cloudcore sharing the CA secret issued.
    pub fn verify_jwt(&self, jwt: &str) -> Result<()> {
        token::verify(&self.ca_hash, &self.ca_key_der, jwt, SystemTime::now()).map(|_| ())
    }

    /// Issues a client certificate (DER) for `node_name` from a DER CSR whose
    /// subject must be `CN=system:node:<node_name>` (`O=system:nodes`),
    /// valid `validity_days` days.
    pub fn sign_csr(&self, csr_der: &[u8], node_name: &str, validity_days: u32) -> Result<Vec<u8>> {
        issue::check_node_name(node_name)?;
        let cert = issue::sign_client(
            &self.issuer,
            csr_der,
            node_name,
            validity_days,
            SystemTime::now(),
        )?;
        Ok(cert.to_vec())
    }

    /// Makes a new current token (the current one becomes the previous),
    /// persisting it first.
    pub async fn refresh_token(&self) -> Result<()> {
        self.refresh_token_at(SystemTime::now()).await
    }

    async fn refresh_token_at(&self, now: SystemTime) -> Result<()> {
        let fresh = self.new_token(now)?;
        self.save_token(&fresh).await?;
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut tokens.current, fresh);
        tokens.previous = Some(old);
        Ok(())
    }

    /// When the current token is due for replacement: one refresh period
    /// after it was issued.
    fn next_refresh(&self) -> SystemTime {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        tokens
            .current
            .expires
            .checked_sub(self.token_refresh)
            .unwrap_or_else(SystemTime::now)
    }

    /// Refreshes the token every `tokenRefreshDuration` until `cancel` fires.
    /// A failed refresh (the store is down) is logged and retried in a minute.
    pub async fn run_token_refresh(&self, cancel: CancellationToken) {
        loop {
            let wait = self
                .next_refresh()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            match self.refresh_token().await {
                Ok(()) => tracing::info!("join token refreshed"),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot refresh the join token; retrying in a minute");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(60)) => {}
                    }
                }
            }
        }
    }
}

async fn load_or_create_ca(
    store: &dyn SecretStore,
    now: SystemTime,
) -> Result<(CertificateDer<'static>, Vec<u8>)> {
    let secret = match store.load(CA).await? {
        Some(secret) => secret,
        None => {
            let (der, key) = issue::new_ca(CA_COMMON_NAME, now)?;
            let secret = Secret::from([
                (CERT.to_owned(), der.to_vec()),
                (KEY.to_owned(), key.serialize_der()),
            ]);
            // Another replica may have created one meanwhile: theirs wins.
            let stored = store.create(CA, &secret).await?;
            if stored == secret {
                tracing::info!("created a new CA");
            }
            stored
        }
    };
    let (Some(cert), Some(key)) = (secret.get(CERT), secret.get(KEY)) else {
        return Err(PkiError::Corrupt {
            name: CA,
            reason: format!("it lacks the {CERT:?} or {KEY:?} field"),
        });
    };
    let der = CertificateDer::from(cert.clone());
    issue::check_ca(&der, now).map_err(|reason| PkiError::Corrupt { name: CA, reason })?;
    Ok((der, key.clone()))
}

async fn load_or_create_server(
    store: &dyn SecretStore,
    issuer: &Issuer<'static, KeyPair>,
    ca: &CertificateDer<'static>,
    sans: &BTreeSet<String>,
    now: SystemTime,
) -> Result<(CertificateDer<'static>, Vec<u8>)> {
    let usable = |secret: &Secret| match (secret.get(CERT), secret.get(KEY)) {
        (Some(cert), Some(key)) => key_from_der(key).and_then(|k| {
            let cert = CertificateDer::from(cert.clone());
            issue::server_cert_usable(&cert, &k, ca, sans, now)?;
            Ok((cert, key.clone()))
        }),
        _ => Err("incomplete".to_owned()),
    };
    let loaded = store.load(SERVER).await?;
    if let Some(secret) = &loaded {
        match usable(secret) {
            Ok(kept) => return Ok(kept),
            Err(reason) => tracing::info!(%reason, "replacing the server certificate"),
        }
    }
    let (cert, key) =
        issue::new_server_cert(issuer, SERVER_COMMON_NAME, sans, issue::LONG_LIFETIME, now)?;
    let key_der = key.serialize_der();
    let secret = Secret::from([
        (CERT.to_owned(), cert.to_vec()),
        (KEY.to_owned(), key_der.clone()),
    ]);
    if loaded.is_none() {
        // Another replica may have created one meanwhile: use it if it
        // carries our names, else replace it with ours.
        let stored = store.create(SERVER, &secret).await?;
        if stored == secret {
            return Ok((cert, key_der));
        }
        match usable(&stored) {
            Ok(theirs) => return Ok(theirs),
            Err(reason) => tracing::info!(%reason, "replacing the server certificate"),
        }
    }
    store.save(SERVER, &secret).await?;
    Ok((cert, key_der))
}

fn key_from_der(der: &[u8]) -> std::result::Result<KeyPair, String> {
    let der = PrivatePkcs8KeyDer::from(der);
    KeyPair::try_from(&der).map_err(|e| format!("not a PKCS#8 key: {e}"))
}

/// The [`TOKEN`] secret holding `token`.
fn token_secret(token: &token::Token) -> Secret {
    Secret::from([(VALUE.to_owned(), token.text.clone().into_bytes())])
}

/// PEM text for one DER block.
fn pem(label: &str, der: &[u8]) -> String {
    ::pem::encode(&::pem::Pem::new(label, der.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refresh_keeps_the_previous_token_valid_and_persists_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::new(dir.path()));
        let hub = CloudHub::default();
        let pki = Pki::load_or_create(store.clone(), &hub).await.unwrap();
        let first = pki.token();

        let later = SystemTime::now() + Duration::from_secs(3600);
        pki.refresh_token_at(later).await.unwrap();
        let second = pki.token();
        assert_ne!(first, second);
        pki.verify_jwt(&first).unwrap();
        pki.verify_jwt(&second).unwrap();
        {
            let tokens = pki.tokens.read().unwrap();
            assert_eq!(tokens.previous.as_ref().map(|t| &t.text), Some(&first));
            assert_eq!(
                tokens.current.expires,
                tokens.previous.as_ref().unwrap().expires + Duration::from_secs(3600)
            );
        }
        // The next refresh is due one period after the current token was issued.
        let due = pki.next_refresh();
        assert!(due <= later + pki.token_refresh);
        assert!(due + Duration::from_secs(1) > later + pki.token_refresh);

        let stored = store.load(TOKEN).await.unwrap().unwrap();
        assert_eq!(stored.get(VALUE), Some(&second.clone().into_bytes()));
        // A reload keeps the stored token while it is fresh.
        let reloaded = Pki::load_or_create(store, &hub).await.unwrap();
        assert_eq!(reloaded.token(), second);
    }

    #[tokio::test]
    async fn a_stored_ca_without_its_key_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::new(dir.path()));
        store
            .save(CA, &Secret::from([(CERT.to_owned(), b"x".to_vec())]))
            .await
            .unwrap();
        let err = Pki::load_or_create(store, &CloudHub::default())
            .await
            .unwrap_err();
        assert!(matches!(err, PkiError::Corrupt { name: "ca", .. }), "{err}");
    }
}
