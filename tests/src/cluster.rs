//! Kubernetes API servers for the kube-facing tests, each with a kube-rs
//! client and a kubeconfig: cloudcore's embedded API (always), Kubernetes'
//! own kube-apiserver built by `scripts/kube-apiserver.sh` (when built), and
//! any cluster a developer names with `APIARY_TEST_KUBECONFIG`.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{conditions, wait::await_condition};

use crate::kube::RealApiServer;

/// One API server under test.
pub struct Target {
    /// `embedded`, `kube-apiserver` or `external`.
    pub name: &'static str,
    /// A client with admin rights.
    pub client: kube::Client,
    /// Its kubeconfig file.
    pub kubeconfig: PathBuf,
    _keep: Keep,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What keeps a target's server running until the target is dropped.
enum Keep {
    Embedded {
        shutdown: tokio_util::sync::CancellationToken,
        task: tokio::task::JoinHandle<Result<(), cloudcore::RunError>>,
        _dir: tempfile::TempDir,
    },
    Real(
        #[allow(
            dead_code,
            reason = "held so that the server stops when the target is dropped"
        )]
        Box<RealApiServer>,
    ),
    External,
}

impl Drop for Keep {
    fn drop(&mut self) {
        if let Keep::Embedded { shutdown, task, .. } = self {
            shutdown.cancel();
            task.abort();
        }
    }
}

/// A kube-rs client from the kubeconfig at `path`.
pub async fn client_from(path: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("a readable kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a usable kubeconfig");
    kube::Client::try_from(config).expect("a kube client")
}

/// Installs Apiary's CRDs (`crds::all()`, what `deploy/crds/` holds) on the
/// cluster of `client`, as an operator does before running cloudcore on a
/// real cluster (cloudcore applies them itself only to its embedded API),
/// and waits until each is Established. CRDs already there are kept.
pub async fn install_crds(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in crds::all() {
        let name = crd.metadata.name.clone().expect("CRDs are named");
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => panic!("create CRD {name}: {err}"),
        }
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(crate::DEFAULT_PATIENCE, established)
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not Established"))
            .unwrap_or_else(|err| panic!("watching CRD {name}: {err}"));
    }
}

/// cloudcore (CloudHub and the embedded API, on loopback port 0) in a temp
/// data directory.
pub async fn embedded() -> Target {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = crate::config::cloud(dir.path(), 30);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = cloudcore::start(config, shutdown.clone(), |_| {})
        .await
        .expect("cloudcore starts");
    let kubeconfig = started
        .kubeconfig()
        .expect("no cluster configured, so the embedded API runs")
        .to_path_buf();
    let task = tokio::spawn(started.wait());
    let client = client_from(&kubeconfig).await;
    Target {
        name: "embedded",
        client,
        kubeconfig,
        _keep: Keep::Embedded {
            shutdown,
            task,
            _dir: dir,
        },
    }
}

/// Kubernetes' kube-apiserver with etcd, if `scripts/kube-apiserver.sh`
/// built it; else an external cluster named by `APIARY_TEST_KUBECONFIG`.
pub async fn real() -> Option<Target> {
    if let Some(path) = crate::kube::external_kubeconfig() {
        let client = client_from(&path).await;
        return Some(Target {
            name: "external",
            client,
            kubeconfig: path,
            _keep: Keep::External,
        });
    }
    crate::kube::binary()?;
    let server = tokio::task::spawn_blocking(RealApiServer::start)
        .await
        .expect("start task")
        .expect("kube-apiserver starts");
    let kubeconfig = server.kubeconfig_path().to_path_buf();
    let client = client_from(&kubeconfig).await;
    Some(Target {
        name: "kube-apiserver",
        client,
        kubeconfig,
        _keep: Keep::Real(Box::new(server)),
    })
}
