//! cloudcore keeps its CA, server certificate and join token in the
//! Kubernetes Secrets KubeEdge uses (`kubeedge/casecret`,
//! `kubeedge/cloudcoresecret`, `kubeedge/tokensecret`): a cloudcore
//! creates them with what it serves (and the namespace `kubeedge` when it
//! is missing); a second cloudcore on the same API (own data directory)
//! uses the same CA and token, so an edge that joined through the first
//! connects to the second; a restart keeps the CA.
//!
//! Both on cloudcore's embedded API and on Kubernetes' kube-apiserver
//! 1.20.2 (when `scripts/kube-apiserver.sh` built it; else that test
//! prints a note and passes).

#![allow(clippy::unwrap_used, reason = "test")]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tests::cluster;
use tests::config::{self, Via};
use tokio_util::sync::CancellationToken;

/// Data of `kubeedge/<name>`, as bytes by key.
async fn secret(client: &kube::Client, name: &str) -> BTreeMap<String, Vec<u8>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), "kubeedge");
    let found = api.get(name).await.unwrap();
    found
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

async fn start(config: cloudcore::CloudCoreConfig) -> (cloudcore::Started, CancellationToken) {
    let shutdown = CancellationToken::new();
    let started = cloudcore::start(config, shutdown.clone(), |_| {})
        .await
        .expect("cloudcore starts");
    (started, shutdown)
}

async fn stop(started: cloudcore::Started, shutdown: CancellationToken) {
    shutdown.cancel();
    started.wait().await.unwrap();
}

/// casecret's `cadata` is `ca` (DER); returns the whole Secret.
async fn ca_secret_holds(client: &kube::Client, ca: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let secret = secret(client, "casecret").await;
    assert_eq!(secret.get("cadata").map(Vec::as_slice), Some(ca));
    secret
}

/// cloudcoresecret's `cloudcoredata` is the server certificate `cloudcore`
/// serves; returns the whole Secret.
async fn server_secret_holds(
    client: &kube::Client,
    cloudcore: &cloudcore::Started,
) -> BTreeMap<String, Vec<u8>> {
    let secret = secret(client, "cloudcoresecret").await;
    assert_eq!(
        secret.get("cloudcoredata"),
        cloudcore
            .pki()
            .server_chain()
            .first()
            .map(|c| c.to_vec())
            .as_ref()
    );
    secret
}

/// The three Secrets hold what `cloudcore` serves: its CA (with a key),
/// its server certificate (with a key) and its whole join token.
async fn secrets_hold(client: &kube::Client, cloudcore: &cloudcore::Started) {
    let pki = cloudcore.pki();
    let ca = ca_secret_holds(client, pki.ca_der()).await;
    assert!(ca.get("cakeydata").is_some_and(|k| !k.is_empty()));
    let server = server_secret_holds(client, cloudcore).await;
    assert!(server
        .get("cloudcorekeydata")
        .is_some_and(|k| !k.is_empty()));
    let token = secret(client, "tokensecret").await;
    assert_eq!(
        token.get("tokendata"),
        Some(&pki.token().into_bytes()),
        "tokensecret holds the whole <caHash>.<jwt> token"
    );
}

/// An edge joins through `a` and connects; the CA `a`'s certificate server
/// handed out is the one in casecret. Returns the edge's configuration,
/// its certificate files in `edge_dir`.
async fn edge_joins(
    client: &kube::Client,
    a: &cloudcore::Started,
    edge_dir: &std::path::Path,
) -> edgecore::EdgeCoreConfig {
    // Link only: the MQTT broker's stores open once per process, and this
    // edge starts twice.
    let edge_config = config::link_only(config::edge(
        edge_dir,
        "edge-1",
        &a.pki().token(),
        a.addrs.https.unwrap(),
        a.addrs.websocket.unwrap(),
        Via::WebSocket,
        1,
    ));
    let (edge, edge_stop) = tests::link::start_connected_edge(edge_config.clone()).await;
    let served_ca = CertificateDer::from_pem_file(edge_dir.join("ca/rootCA.crt")).unwrap();
    ca_secret_holds(client, &served_ca).await;
    edge_stop.cancel();
    edge.wait().await.unwrap();
    edge_config
}

/// A second cloudcore on `config_b` (the same API as `a`, a data directory
/// of its own) shares `a`'s CA, token and server certificate, and accepts
/// the edge that joined through `a` (configured by `edge_config`) with the
/// certificate `a` signed.
async fn second_replica_accepts(
    a: &cloudcore::Started,
    config_b: cloudcore::CloudCoreConfig,
    edge_config: edgecore::EdgeCoreConfig,
) {
    let (b, b_stop) = start(config_b).await;
    assert_eq!(b.pki().ca_der(), a.pki().ca_der());
    assert_eq!(b.pki().token(), a.pki().token());
    assert_eq!(b.pki().server_chain(), a.pki().server_chain());
    let mut to_b = edge_config;
    to_b.modules.edge_hub.websocket.server = b.addrs.websocket.unwrap().to_string();
    let (edge, edge_stop) = tests::link::start_connected_edge(to_b).await;
    edge_stop.cancel();
    edge.wait().await.unwrap();
    stop(b, b_stop).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_the_ca_server_certificate_and_token_through_secrets() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let edge_dir = tempfile::tempdir().unwrap();

    // (1) cloudcore A on its embedded API creates the three Secrets; an
    // edge joins through A.
    let (a, a_stop) = start(config::cloud(dir_a.path(), 2)).await;
    let client = a.kube_client();
    secrets_hold(&client, &a).await;
    let edge_config = edge_joins(&client, &a, edge_dir.path()).await;

    // (2) cloudcore B on A's API with its own data directory shares them
    // and accepts the edge.
    let mut config_b = config::cloud(dir_b.path(), 2);
    config_b.kube_api_config.kube_config = a.kubeconfig().unwrap().display().to_string();
    second_replica_accepts(&a, config_b, edge_config).await;

    // (3) A restarts: the same CA and token, loaded from the Secrets (the
    // embedded API keeps them in A's data directory).
    let before = (a.pki().ca_der().clone(), a.pki().token());
    stop(a, a_stop).await;
    let (a, a_stop) = start(config::cloud(dir_a.path(), 2)).await;
    assert_eq!(a.pki().ca_der(), &before.0);
    assert_eq!(a.pki().token(), before.1);
    let served = a.pki().server_chain();
    stop(a, a_stop).await;

    // A now-configured advertise address the stored server certificate
    // lacks: the certificate is reissued (same CA) and the Secret updated.
    let mut config_a = config::cloud(dir_a.path(), 2);
    config_a.modules.cloud_hub.advertise_address = vec!["10.11.12.13".to_owned()];
    let (a, a_stop) = start(config_a).await;
    assert_eq!(a.pki().ca_der(), &before.0);
    assert_ne!(a.pki().server_chain(), served);
    server_secret_holds(&a.kube_client(), &a).await;
    stop(a, a_stop).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pki_files_of_an_older_data_directory_are_migrated_into_the_secrets() {
    let dir = tempfile::tempdir().unwrap();
    // The pre-Secret layout: the PKI in <dataDir>/pki only.
    let files = cloudcore::pki::FileStore::in_data_dir(dir.path());
    let old = cloudcore::pki::Pki::load_or_create(
        std::sync::Arc::new(files),
        &cloudcore::CloudCoreConfig::default().modules.cloud_hub,
    )
    .await
    .unwrap();

    let (a, a_stop) = start(config::cloud(dir.path(), 2)).await;
    assert_eq!(a.pki().ca_der(), old.ca_der());
    ca_secret_holds(&a.kube_client(), old.ca_der()).await;
    // The migrated server certificate is kept (its names still match) and
    // the Secret holds what is served.
    assert_eq!(a.pki().server_chain(), old.server_chain());
    server_secret_holds(&a.kube_client(), &a).await;
    stop(a, a_stop).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_the_secrets_on_kube_apiserver() {
    let Some(target) = cluster::real().await else {
        eprintln!("note: no kube-apiserver built (bash scripts/kube-apiserver.sh); skipping");
        return;
    };
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let edge_dir = tempfile::tempdir().unwrap();
    let on_target = |dir: &std::path::Path| {
        let mut config = config::cloud(dir, 2);
        config.kube_api_config.kube_config = target.kubeconfig.display().to_string();
        config
    };
    // The operator's part: cloudcore applies CRDs only to its embedded API.
    cluster::install_crds(&target.client).await;
    let namespaces: Api<Namespace> = Api::all(target.client.clone());
    let existed = namespaces.get_opt("kubeedge").await.unwrap().is_some();
    assert!(
        !existed || target.name != "kube-apiserver",
        "a fresh kube-apiserver has no namespace kubeedge"
    );

    // (1) cloudcore A creates the namespace and the three Secrets; an edge
    // joins through A.
    let (a, a_stop) = start(on_target(dir_a.path())).await;
    assert_eq!(
        a.addrs.kube_api, None,
        "A uses the kube-apiserver, no embedded API"
    );
    assert!(namespaces.get_opt("kubeedge").await.unwrap().is_some());
    secrets_hold(&target.client, &a).await;
    let edge_config = edge_joins(&target.client, &a, edge_dir.path()).await;

    // (2) cloudcore B on the same kube-apiserver shares them and accepts
    // the edge.
    second_replica_accepts(&a, on_target(dir_b.path()), edge_config).await;
    stop(a, a_stop).await;
}
