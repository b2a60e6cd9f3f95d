//! [`KubeStore`]: the PKI's secrets as the Kubernetes Secrets KubeEdge uses,
//! so that several cloudcore replicas share one CA, server certificate and
//! join token.
//!
//! | store name | Secret               | fields (store → Secret data)                       |
//! |------------|----------------------|----------------------------------------------------|
//! | [`CA`]     | `kubeedge/casecret`  | [`CERT`] → `cadata`, [`KEY`] → `cakeydata`         |
//! | [`SERVER`] | `kubeedge/cloudcoresecret` | [`CERT`] → `cloudcoredata`, [`KEY`] → `cloudcorekeydata` |
//! | [`TOKEN`]  | `kubeedge/tokensecret` | [`VALUE`] → `tokendata` (the whole `<caHash>.<jwt>`) |
//!
//! All DER. The table lives in [`SECRETS`] only.
//!
//! - Load: the Secret if it exists; otherwise the file of the data directory
//!   ([`FileStore`], the pre-Secret layout) is migrated into a new Secret.
//! - Create: create-if-absent; on 409 AlreadyExists another replica won the
//!   race and its Secret is read back and used.
//! - Save: create, or replace the existing Secret (retried on a
//!   resourceVersion conflict).
//!
//! Whatever is loaded or written is mirrored to the files, so that
//! `cloudcore gettoken`, which reads the data directory, prints a token
//! signed by the shared CA. The namespace `kubeedge` is created when
//! missing. An unreachable API is an error naming the Secret: cloudcore does
//! not start without its CA rather than invent one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret as KubeSecret};
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;

use super::store::{FileStore, Result, Secret, SecretStore, StoreError, CA, CERT, KEY, SERVER};
use super::store::{TOKEN, VALUE};

/// The namespace of cloudcore's Secrets (KubeEdge's).
const NAMESPACE: &str = "kubeedge";

/// How one store name maps onto a Kubernetes Secret.
#[derive(Debug, Clone, Copy)]
struct SecretMapping {
    /// The store name ([`CA`], [`SERVER`], [`TOKEN`]).
    name: &'static str,
    /// The Secret's name in [`NAMESPACE`].
    secret: &'static str,
    /// Store field → Secret data key.
    fields: &'static [(&'static str, &'static str)],
}

/// KubeEdge's Secret names and data keys, in one place.
const SECRETS: [SecretMapping; 3] = [
    SecretMapping {
        name: CA,
        secret: "casecret",
        fields: &[(CERT, "cadata"), (KEY, "cakeydata")],
    },
    SecretMapping {
        name: SERVER,
        secret: "cloudcoresecret",
        fields: &[(CERT, "cloudcoredata"), (KEY, "cloudcorekeydata")],
    },
    SecretMapping {
        name: TOKEN,
        secret: "tokensecret",
        fields: &[(VALUE, "tokendata")],
    },
];

/// How often a replace is retried when another writer got there first.
const REPLACE_ATTEMPTS: usize = 5;

/// The PKI's secrets in Kubernetes Secrets, mirrored to a [`FileStore`].
#[derive(Clone)]
pub struct KubeStore {
    client: kube::Client,
    files: FileStore,
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStore")
            .field("namespace", &NAMESPACE)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl KubeStore {
    /// A store using `client`, migrating from and mirroring to `files`.
    pub fn new(client: kube::Client, files: FileStore) -> Self {
        KubeStore { client, files }
    }

    fn api(&self) -> Api<KubeSecret> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    async fn get(&self, map: &SecretMapping) -> Result<Option<Secret>> {
        let found = self
            .api()
            .get_opt(map.secret)
            .await
            .map_err(|source| kube_error(map, "read", source))?;
        Ok(found.map(|s| from_kube(map, &s)))
    }

    async fn ensure_namespace(&self, map: &SecretMapping) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let found = api
            .get_opt(NAMESPACE)
            .await
            .map_err(|source| kube_error(map, "read the namespace of", source))?;
        if found.is_some() {
            return Ok(());
        }
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(NAMESPACE.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(err) if status(&err) == Some(409) => Ok(()),
            Err(source) => Err(kube_error(map, "create the namespace of", source)),
        }
    }

    /// Creates the Secret unless it exists; returns what is stored (ours,
    /// or the one another replica created first).
    async fn create_secret(&self, map: &SecretMapping, secret: &Secret) -> Result<Secret> {
        self.ensure_namespace(map).await?;
        match self
            .api()
            .create(&PostParams::default(), &to_kube(map, secret, None))
            .await
        {
            Ok(_) => {
                tracing::info!(secret = %qualified(map), "created Secret");
                Ok(secret.clone())
            }
            Err(err) if status(&err) == Some(409) => {
                tracing::info!(
                    secret = %qualified(map),
                    "Secret created meanwhile by another cloudcore; using it"
                );
                self.get(map).await?.ok_or_else(|| StoreError::Vanished {
                    secret: qualified(map),
                })
            }
            Err(source) => Err(kube_error(map, "create", source)),
        }
    }

    async fn replace_secret(&self, map: &SecretMapping, secret: &Secret) -> Result<()> {
        self.ensure_namespace(map).await?;
        let api = self.api();
        for _ in 0..REPLACE_ATTEMPTS {
            let existing = api
                .get_opt(map.secret)
                .await
                .map_err(|source| kube_error(map, "read", source))?;
            let result = match existing {
                None => api
                    .create(&PostParams::default(), &to_kube(map, secret, None))
                    .await
                    .map(drop),
                Some(old) => {
                    let version = old.metadata.resource_version.clone();
                    let mut new = to_kube(map, secret, version);
                    new.metadata.labels = old.metadata.labels;
                    new.metadata.annotations = old.metadata.annotations;
                    api.replace(map.secret, &PostParams::default(), &new)
                        .await
                        .map(drop)
                }
            };
            match result {
                Ok(()) => return Ok(()),
                // Created or changed by someone else meanwhile: read again.
                Err(err) if status(&err) == Some(409) => continue,
                Err(source) => return Err(kube_error(map, "write", source)),
            }
        }
        Err(StoreError::Contended {
            secret: qualified(map),
        })
    }

    async fn mirror(&self, name: &str, secret: &Secret) {
        if let Err(err) = self.files.save(name, secret).await {
            tracing::warn!(error = %err, name, "cannot mirror a PKI Secret to the data directory");
        }
    }
}

#[async_trait::async_trait]
impl SecretStore for KubeStore {
    async fn load(&self, name: &str) -> Result<Option<Secret>> {
        let map = mapping(name)?;
        if let Some(secret) = self.get(map).await? {
            self.mirror(name, &secret).await;
            return Ok(Some(secret));
        }
        let Some(file) = self.files.load(name).await? else {
            return Ok(None);
        };
        tracing::info!(
            secret = %qualified(map),
            files = %self.files.root().display(),
            "migrating a PKI secret from the data directory to Kubernetes"
        );
        let stored = self.create_secret(map, &file).await?;
        if stored != file {
            self.mirror(name, &stored).await;
        }
        Ok(Some(stored))
    }

    async fn save(&self, name: &str, secret: &Secret) -> Result<()> {
        let map = mapping(name)?;
        self.replace_secret(map, secret).await?;
        self.mirror(name, secret).await;
        Ok(())
    }

    async fn create(&self, name: &str, secret: &Secret) -> Result<Secret> {
        let map = mapping(name)?;
        let stored = self.create_secret(map, secret).await?;
        self.mirror(name, &stored).await;
        Ok(stored)
    }
}

fn mapping(name: &str) -> Result<&'static SecretMapping> {
    SECRETS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| StoreError::BadName(name.to_owned()))
}

fn qualified(map: &SecretMapping) -> String {
    format!("{NAMESPACE}/{}", map.secret)
}

fn status(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn kube_error(map: &SecretMapping, op: &'static str, source: kube::Error) -> StoreError {
    StoreError::Kube {
        op,
        secret: qualified(map),
        source: Box::new(source),
    }
}

/// The store fields of a Kubernetes Secret (unknown data keys ignored).
fn from_kube(map: &SecretMapping, secret: &KubeSecret) -> Secret {
    let data = secret.data.as_ref();
    map.fields
        .iter()
        .filter_map(|(field, key)| {
            let value = data?.get(*key)?;
            Some(((*field).to_owned(), value.0.clone()))
        })
        .collect()
}

fn to_kube(map: &SecretMapping, secret: &Secret, resource_version: Option<String>) -> KubeSecret {
    let data: BTreeMap<String, ByteString> = map
        .fields
        .iter()
        .filter_map(|(field, key)| {
            let value = secret.get(*field)?;
            Some(((*key).to_owned(), ByteString(value.clone())))
        })
        .collect();
    KubeSecret {
        metadata: ObjectMeta {
            name: Some(map.secret.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            resource_version,
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("Opaque".to_owned()),
        ..KubeSecret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_through_the_kubeedge_keys() {
        for map in &SECRETS {
            let secret: Secret = map
                .fields
                .iter()
                .map(|(f, _)| ((*f).to_owned(), f.as_bytes().to_vec()))
                .collect();
            let kube = to_kube(map, &secret, None);
            let keys: Vec<&str> = kube
                .data
                .as_ref()
                .map(|d| d.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let expected: Vec<&str> = {
                let mut k: Vec<&str> = map.fields.iter().map(|(_, k)| *k).collect();
                k.sort_unstable();
                k
            };
            assert_eq!(keys, expected);
            assert_eq!(from_kube(map, &kube), secret);
        }
        assert_eq!(mapping(TOKEN).map(|m| m.secret).ok(), Some("tokensecret"));
        assert!(mapping("other").is_err());
    }
}
