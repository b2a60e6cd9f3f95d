//! cloudcore's Kubernetes side end to end: the embedded API started on
//! 127.0.0.1:0 in a temp data directory, reached by kube-rs through the
//! client `kubeapi::start` builds from the admin kubeconfig (TLS under the
//! API's own CA, bearer token), and by raw HTTPS for the refusals kube-rs
//! never provokes. Restarts on the same directory keep the objects and the
//! resourceVersion sequence.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cloudcore::kubeapi::{self, Env, KubeApi, Source};
use cloudcore::CloudCoreConfig;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, PostParams};
use kube::runtime::{conditions, wait::await_condition};
use kube::{discovery, ResourceExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(20);

/// KubeEdge's Device CRD, as `deploy/crds/` has it.
fn device_crd() -> CustomResourceDefinition {
    use kube::CustomResourceExt;
    crds::Device::crd()
}

fn config(dir: &Path) -> CloudCoreConfig {
    let mut config = CloudCoreConfig::default();
    config.common_config.data_dir = dir.display().to_string();
    config.kube_api_config.embedded.bind_address = "127.0.0.1:0".to_owned();
    config
}

/// The embedded API on `dir`, whatever the developer's environment says.
async fn start(dir: &Path) -> (KubeApi, CancellationToken) {
    let shutdown = CancellationToken::new();
    let api = kubeapi::start_with_env(&config(dir), &Env::default(), shutdown.clone())
        .await
        .unwrap();
    assert_eq!(api.source, Source::Embedded);
    (api, shutdown)
}

/// An HTTPS client trusting the embedded API's CA.
fn https_client(dir: &Path) -> reqwest::Client {
    let ca = CertificateDer::from_pem_file(dir.join("apiserver/ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .unwrap()
}

fn device_gvk() -> GroupVersionKind {
    GroupVersionKind::gvk("devices.kubeedge.io", "v1beta1", "Device")
}

/// Waits until the Device CRD is Established, then finds it by discovery.
async fn established_devices(
    client: &kube::Client,
) -> (kube::api::ApiResource, discovery::ApiCapabilities) {
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let established = await_condition(
        crd_api,
        "devices.devices.kubeedge.io",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(PATIENCE, established)
        .await
        .unwrap()
        .unwrap();
    discovery::pinned_kind(client, &device_gvk()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_reads_with_tls_and_token_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (api, _shutdown) = start(dir.path()).await;
    let addr = api.addr().unwrap();
    let kubeconfig = api.kubeconfig_path().unwrap().to_path_buf();
    assert_eq!(kubeconfig, dir.path().join("kubeconfig"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let client = api.client.clone();
    let version = client.apiserver_version().await.unwrap();
    assert!(version.git_version.contains("apiary"), "{version:?}");

    // The system namespaces exist.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    for ns in kubeapi::SYSTEM_NAMESPACES {
        assert!(names.contains(&ns.to_owned()), "{names:?}");
    }
    let default_uid = namespaces.get("default").await.unwrap().uid();

    // CRDs applied at start are Established and served.
    let crds = vec![serde_json::to_value(device_crd()).unwrap()];
    assert_eq!(api.apply_crds(&crds).await.unwrap(), 1);
    let (resource, caps) = established_devices(&client).await;
    assert_eq!(resource.plural, "devices");
    assert_eq!(caps.scope, discovery::Scope::Namespaced);
    let devices: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    assert!(devices
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());

    // Without the token: 401 with a Status; health stays open.
    let http = https_client(dir.path());
    let url = format!("https://127.0.0.1:{}", addr.port());
    let refused = http
        .get(format!("{url}/api/v1/namespaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let status: serde_json::Value =
        serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["code"].as_i64()),
        (Some("Status"), Some(401))
    );
    let wrong = http
        .get(format!("{url}/api/v1/namespaces"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let token = std::fs::read_to_string(dir.path().join("apiserver/admin.token")).unwrap();
    let allowed = http
        .get(format!("{url}/api/v1/namespaces"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let health = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let revision = api.embedded.as_ref().unwrap().store().revision();

    // Restart on the same directory: same CA, token, objects and CRDs.
    api.stop().await;
    let (api, _shutdown) = start(dir.path()).await;
    let client = api.client.clone();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert_eq!(namespaces.get("default").await.unwrap().uid(), default_uid);
    assert!(discovery::pinned_kind(&client, &device_gvk()).await.is_ok());
    assert_eq!(api.embedded.as_ref().unwrap().store().revision(), revision);
    assert_eq!(api.apply_crds(&crds).await.unwrap(), 0);
    let again = http
        .get(format!(
            "https://127.0.0.1:{}/api/v1/namespaces",
            api.addr().unwrap().port()
        ))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "the CA and token are kept");
    api.stop().await;
}

fn configmap(name: &str, app: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([("app".to_owned(), app.to_owned())])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..ConfigMap::default()
    }
}

fn resource_version(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap()
}

/// Needs the REST write path (create through the API).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_writes_objects_and_custom_resources_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (api, _shutdown) = start(dir.path()).await;
    let client = api.client.clone();
    let pp = PostParams::default();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("apps".to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces.create(&pp, &ns).await.unwrap();

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "apps");
    cms.create(&pp, &configmap("web-1", "web")).await.unwrap();
    cms.create(&pp, &configmap("web-2", "web")).await.unwrap();
    let db = cms.create(&pp, &configmap("db", "db")).await.unwrap();
    let web = cms
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let mut names: Vec<String> = web.iter().map(ResourceExt::name_any).collect();
    names.sort();
    assert_eq!(names, ["web-1", "web-2"]);

    // A CRD created through the API is established and served at once.
    let crd = device_crd();
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    crd_api.create(&pp, &crd).await.unwrap();
    let (resource, _) = established_devices(&client).await;
    let devices: Api<DynamicObject> = Api::namespaced_with(client.clone(), "apps", &resource);
    let mut device = DynamicObject::new("thermometer", &resource);
    device.data = json!({"spec": {"deviceModelRef": {"name": "thermo-model"}}});
    let created = devices.create(&pp, &device).await.unwrap();
    assert_eq!(
        created.data["spec"]["deviceModelRef"]["name"],
        "thermo-model"
    );
    let last = resource_version(&created.metadata);
    assert!(last > resource_version(&db.metadata));

    // Restart: the objects are kept and resourceVersions go on rising.
    api.stop().await;
    let (api, _shutdown) = start(dir.path()).await;
    let client = api.client.clone();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "apps");
    assert_eq!(cms.get("db").await.unwrap().uid(), db.uid());
    let (resource, _) = discovery::pinned_kind(&client, &device_gvk())
        .await
        .unwrap();
    let devices: Api<DynamicObject> = Api::namespaced_with(client.clone(), "apps", &resource);
    assert_eq!(
        devices.get("thermometer").await.unwrap().uid(),
        created.uid()
    );
    let after = cms.create(&pp, &configmap("later", "web")).await.unwrap();
    assert!(resource_version(&after.metadata) > last);
    api.stop().await;
}
