//! Where the PKI keeps its secrets: a narrow [`SecretStore`] interface of
//! named secrets, each a small map of fields to bytes (the shape of a
//! Kubernetes Secret), and [`FileStore`], its on-disk implementation under
//! `<dataDir>/pki/`.
//!
//! The names and fields in use are [`CA`], [`SERVER`] (fields [`CERT`] and
//! [`KEY`], DER) and [`TOKEN`] (field [`VALUE`], the join token text).
//! KubeEdge keeps the same things in the Secrets `kubeedge/casecret`,
//! `kubeedge/cloudcoresecret` and `kubeedge/tokensecret`; `secrets.rs`
//! ([`super::KubeStore`]) maps names and fields onto those.

use std::collections::BTreeMap;
use std::fs;

use std::path::{Path, PathBuf};

use daemonkit::files::{create_private_dir, write_atomic, Access};

/// The CA: certificate and private key.
pub const CA: &str = "ca";
/// The server certificate of cloudhub and the certificate server, and its key.
pub const SERVER: &str = "server";
/// The current join token.
pub const TOKEN: &str = "token";
/// Field: a DER certificate.
pub const CERT: &str = "crt";
/// Field: a PKCS#8 DER private key (stored owner-only).
pub const KEY: &str = "key";
/// Field: a text value (the token).
pub const VALUE: &str = "value";

/// One named secret: field name to bytes.
pub type Secret = BTreeMap<String, Vec<u8>>;

/// Why a secret could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read, written or renamed.
    #[error("secret store: {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A name or field that cannot be a file name.
    #[error("secret store: invalid name {0:?}")]
    BadName(String),
    /// The Kubernetes API refused or could not be reached.
    #[error("Secret {secret}: cannot {op} it")]
    Kube {
        /// What was being done.
        op: &'static str,
        /// The Secret, `namespace/name`.
        secret: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// The Secret existed at create time (409) but was gone when read back.
    #[error("Secret {secret}: reported as existing, then not found")]
    Vanished {
        /// The Secret, `namespace/name`.
        secret: String,
    },
    /// Others kept changing the Secret while it was being replaced.
    #[error("Secret {secret}: cannot replace it, it keeps changing")]
    Contended {
        /// The Secret, `namespace/name`.
        secret: String,
    },
}

/// Result of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Loads and saves named secrets. Implementations write each secret so that
/// a reader never sees half a field; fields named [`KEY`] are private.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    /// The secret called `name`, or `None` if it was never saved.
    async fn load(&self, name: &str) -> Result<Option<Secret>>;
    /// Saves (replaces) the secret called `name`.
    async fn save(&self, name: &str, secret: &Secret) -> Result<()>;
    /// Saves `secret` as `name` unless one exists already, and returns what
    /// is stored: `secret`, or the one another writer stored first (the
    /// default, for a store with one writer, saves and returns `secret`).
    async fn create(&self, name: &str, secret: &Secret) -> Result<Secret> {
        self.save(name, secret).await?;
        Ok(secret.clone())
    }
}

/// Secrets as files `<root>/<name>.<field>`, e.g. `ca.crt`, `ca.key`,
/// `token.value`. Each file is written to a temporary name and renamed;
/// key files are mode 0600 and the directory 0700.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// A store in `root` (created on first save).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileStore { root: root.into() }
    }

    /// The store for a cloudcore data directory: `<data_dir>/pki`.
    pub fn in_data_dir(data_dir: impl AsRef<Path>) -> Self {
        FileStore::new(data_dir.as_ref().join("pki"))
    }

    /// The directory holding the files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str, field: &str) -> Result<PathBuf> {
        for part in [name, field] {
            let ok = !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(StoreError::BadName(part.to_owned()));
            }
        }
        Ok(self.root.join(format!("{name}.{field}")))
    }

    fn load_sync(&self, name: &str) -> Result<Option<Secret>> {
        let prefix = format!("{name}.");
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io("list", &self.root, source)),
        };
        let mut secret = Secret::new();
        for entry in entries {
            let entry = entry.map_err(|source| io("list", &self.root, source))?;
            let file_name = entry.file_name();
            let Some(field) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if field.contains('.') || field.is_empty() {
                continue; // a temporary file, or another secret's
            }
            let path = entry.path();
            let bytes = fs::read(&path).map_err(|source| io("read", &path, source))?;
            secret.insert(field.to_owned(), bytes);
        }
        Ok((!secret.is_empty()).then_some(secret))
    }

    fn save_sync(&self, name: &str, secret: &Secret) -> Result<()> {
        create_private_dir(&self.root)
            .map_err(|source| io("create directory", &self.root, source))?;
        for (field, bytes) in secret {
            let path = self.path(name, field)?;
            let access = if field == KEY {
                Access::Private
            } else {
                Access::Public
            };
            write_atomic(&path, bytes, access).map_err(|source| io("write", &path, source))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl SecretStore for FileStore {
    async fn load(&self, name: &str) -> Result<Option<Secret>> {
        self.path(name, VALUE)?; // validates the name
        let this = self.clone();
        let name = name.to_owned();
        blocking(move || this.load_sync(&name)).await
    }

    async fn save(&self, name: &str, secret: &Secret) -> Result<()> {
        let this = self.clone();
        let name = name.to_owned();
        let secret = secret.clone();
        blocking(move || this.save_sync(&name, &secret)).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(StoreError::Io {
            op: "run",
            path: PathBuf::new(),
            source: std::io::Error::other(join),
        }),
    }
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_and_keeps_keys_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::in_data_dir(dir.path());
        assert!(store.load(CA).await.unwrap().is_none());

        let secret = Secret::from([
            (CERT.to_owned(), b"cert".to_vec()),
            (KEY.to_owned(), b"key".to_vec()),
        ]);
        store.save(CA, &secret).await.unwrap();
        store
            .save(TOKEN, &Secret::from([(VALUE.to_owned(), b"t".to_vec())]))
            .await
            .unwrap();
        assert_eq!(store.load(CA).await.unwrap(), Some(secret));
        assert!(store.load(SERVER).await.unwrap().is_none());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&store.root().join("ca.key")), 0o600);
            assert_eq!(mode(store.root()), 0o700);
        }
    }

    #[tokio::test]
    async fn refuses_names_that_escape_the_directory() {
        let store = FileStore::new("/nonexistent");
        assert!(matches!(
            store.load("../etc").await,
            Err(StoreError::BadName(_))
        ));
    }
}
