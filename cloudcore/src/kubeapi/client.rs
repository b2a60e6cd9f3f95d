//! The one way cloudcore gets a `kube::Client`. Where it points is decided
//! by [`Source::choose`], in KubeEdge's order plus Apiary's embedded API:
//!
//! 1. `kubeAPIConfig.kubeConfig` names a kubeconfig file: that file, with
//!    `kubeAPIConfig.master` (when set) replacing its server URL;
//! 2. `master` alone: the kubeconfigs in `KUBECONFIG` with that server URL
//!    when the variable is set, else that URL without credentials;
//! 3. `KUBECONFIG` is set: the kubeconfigs it lists (merged);
//! 4. running in a pod (`KUBERNETES_SERVICE_HOST`): the in-cluster
//!    configuration (service account token and CA);
//! 5. otherwise the embedded API, through the admin kubeconfig it writes.
//!
//! Every path but in-cluster goes through a kubeconfig, so the embedded
//! API's kubeconfig is exercised by cloudcore itself exactly as kubectl
//! uses it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use kube::config::{Cluster, KubeConfigOptions, Kubeconfig, NamedCluster};

use super::embedded::Embedded;
use super::{KubeApiError, Result};
use crate::config::KubeApiConfig;

/// The environment variables the choice depends on; read once, passed in
/// (tests build it by hand).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `KUBECONFIG`: kubeconfig paths, separated as `PATH` is.
    pub kubeconfig: Option<OsString>,
    /// `KUBERNETES_SERVICE_HOST` is set (cloudcore runs in a pod).
    pub in_cluster: bool,
}

impl Env {
    /// The process environment.
    pub fn from_process() -> Env {
        Env {
            kubeconfig: std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()),
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty()),
        }
    }
}

/// Where the client points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Kubeconfig files (merged, first wins), the server URL replaced by
    /// `master` when given.
    Kubeconfig {
        /// The files.
        paths: Vec<PathBuf>,
        /// `kubeAPIConfig.master`.
        master: Option<String>,
    },
    /// A server URL without credentials (`master` alone).
    Master(String),
    /// The pod's service account.
    InCluster,
    /// cloudcore's own embedded API.
    Embedded,
}

impl Source {
    /// The source `config` and `env` select (see the module docs).
    pub fn choose(config: &KubeApiConfig, env: &Env) -> Source {
        let master = Some(config.master.trim())
            .filter(|m| !m.is_empty())
            .map(str::to_owned);
        let env_paths = || {
            env.kubeconfig
                .as_ref()
                .map(|v| {
                    std::env::split_paths(v)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect::<Vec<_>>()
                })
                .filter(|p| !p.is_empty())
        };
        if !config.kube_config.trim().is_empty() {
            return Source::Kubeconfig {
                paths: vec![PathBuf::from(config.kube_config.trim())],
                master,
            };
        }
        let env_paths = || {
            if config.embedded.ignore_environment {
                None
            } else {
                env_paths()
            }
        };
        let in_cluster = env.in_cluster && !config.embedded.ignore_environment;
        match (master, env_paths()) {
            (master, Some(paths)) => Source::Kubeconfig { paths, master },
            (Some(master), None) => Source::Master(master),
            (None, None) if in_cluster => Source::InCluster,
            (None, None) => Source::Embedded,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Kubeconfig { paths, master } => {
                let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "kubeconfig {}", paths.join(":"))?;
                if let Some(master) = master {
                    write!(f, " (server {master})")?;
                }
                Ok(())
            }
            Source::Master(master) => write!(f, "server {master}"),
            Source::InCluster => f.write_str("in-cluster service account"),
            Source::Embedded => f.write_str("embedded API"),
        }
    }
}

/// A client for `config`: the embedded API's when `embedded` is given,
/// otherwise per [`Source::choose`] on the process environment. Fails with
/// [`KubeApiError::NoCluster`] when that choice is the embedded API and
/// none is given.
pub async fn connect(config: &KubeApiConfig, embedded: Option<&Embedded>) -> Result<kube::Client> {
    let source = match embedded {
        Some(api) => Source::Kubeconfig {
            paths: vec![api.kubeconfig_path().to_path_buf()],
            master: None,
        },
        None => Source::choose(config, &Env::from_process()),
    };
    connect_to(&source).await
}

/// A client for `source`.
pub async fn connect_to(source: &Source) -> Result<kube::Client> {
    let config = match source {
        Source::Kubeconfig { paths, master } => {
            let mut kubeconfig = read_kubeconfigs(paths)?;
            if let Some(master) = master {
                set_server(&mut kubeconfig, master);
            }
            from_kubeconfig(kubeconfig, source).await?
        }
        Source::Master(master) => {
            let mut kubeconfig = Kubeconfig::default();
            set_server(&mut kubeconfig, master);
            from_kubeconfig(kubeconfig, source).await?
        }
        Source::InCluster => kube::Config::incluster().map_err(KubeApiError::InCluster)?,
        Source::Embedded => return Err(KubeApiError::NoCluster),
    };
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| KubeApiError::Client {
        origin: source.to_string(),
        source: e,
    })?;
    tracing::info!(%source, server = %url, "Kubernetes client ready");
    Ok(client)
}

fn read_kubeconfigs(paths: &[PathBuf]) -> Result<Kubeconfig> {
    let read = |path: &Path| {
        Kubeconfig::read_from(path).map_err(|source| KubeApiError::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in paths {
        let next = read(path)?;
        merged = Some(match merged {
            None => next,
            Some(m) => m.merge(next).map_err(|source| KubeApiError::Kubeconfig {
                path: path.clone(),
                source,
            })?,
        });
    }
    Ok(merged.unwrap_or_default())
}

/// Points every cluster of `kubeconfig` at `server`; a kubeconfig without
/// a context gets one, to a cluster at `server` with no user.
fn set_server(kubeconfig: &mut Kubeconfig, server: &str) {
    if kubeconfig.current_context.is_none() {
        kubeconfig.clusters = vec![NamedCluster {
            name: "master".to_owned(),
            cluster: Some(Cluster::default()),
            ..Default::default()
        }];
        kubeconfig.contexts = vec![kube::config::NamedContext {
            name: "master".to_owned(),
            context: Some(kube::config::Context {
                cluster: "master".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }];
        kubeconfig.current_context = Some("master".to_owned());
    }
    for named in &mut kubeconfig.clusters {
        named.cluster.get_or_insert_with(Cluster::default).server = Some(server.to_owned());
    }
}

async fn from_kubeconfig(kubeconfig: Kubeconfig, source: &Source) -> Result<kube::Config> {
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| KubeApiError::Config {
            origin: source.to_string(),
            source: e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(master: &str, kube_config: &str) -> KubeApiConfig {
        KubeApiConfig {
            master: master.to_owned(),
            kube_config: kube_config.to_owned(),
            ..KubeApiConfig::default()
        }
    }

    #[test]
    fn the_choice_follows_kubeedge_then_embedded() {
        let none = Env::default();
        let env = Env {
            kubeconfig: Some("/a:/b".into()),
            in_cluster: true,
        };
        let pod = Env {
            kubeconfig: None,
            in_cluster: true,
        };
        assert_eq!(
            Source::choose(&config("https://m:6443", "/etc/kube.conf"), &env),
            Source::Kubeconfig {
                paths: vec!["/etc/kube.conf".into()],
                master: Some("https://m:6443".into())
            }
        );
        assert_eq!(
            Source::choose(&config("", ""), &env),
            Source::Kubeconfig {
                paths: vec!["/a".into(), "/b".into()],
                master: None
            }
        );
        assert_eq!(
            Source::choose(&config("https://m", ""), &pod),
            Source::Master("https://m".into())
        );
        assert_eq!(Source::choose(&config("", ""), &pod), Source::InCluster);
        assert_eq!(Source::choose(&config(" ", ""), &none), Source::Embedded);
        // Told to ignore the environment: KUBECONFIG and the pod's
        // service account are passed over, explicit settings still win.
        let mut ignoring = config("", "");
        ignoring.embedded.ignore_environment = true;
        assert_eq!(Source::choose(&ignoring, &env), Source::Embedded);
        assert_eq!(Source::choose(&ignoring, &pod), Source::Embedded);
        ignoring.master = "https://m".into();
        assert_eq!(
            Source::choose(&ignoring, &env),
            Source::Master("https://m".into())
        );
        assert_eq!(
            Source::Kubeconfig {
                paths: vec!["/a".into()],
                master: Some("https://m".into())
            }
            .to_string(),
            "kubeconfig /a (server https://m)"
        );
    }

    #[tokio::test]
    async fn master_overrides_the_kubeconfig_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let text = super::super::kubeconfig::render(
            "https://127.0.0.1:6443",
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "tok",
        )
        .unwrap();
        std::fs::write(&path, text).unwrap();
        let mut kubeconfig = read_kubeconfigs(std::slice::from_ref(&path)).unwrap();
        set_server(&mut kubeconfig, "https://10.1.2.3:443");
        let cluster = kubeconfig.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.1.2.3:443"));

        let source = Source::Master("http://127.0.0.1:8080".into());
        connect_to(&source).await.unwrap();
        let err = connect_to(&Source::Kubeconfig {
            paths: vec![dir.path().join("missing")],
            master: None,
        })
        .await
        .err()
        .expect("a missing kubeconfig is an error");
        assert!(matches!(err, KubeApiError::Kubeconfig { .. }), "{err}");
        assert!(matches!(
            connect_to(&Source::Embedded).await,
            Err(KubeApiError::NoCluster)
        ));
    }
}
