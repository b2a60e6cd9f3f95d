//! Both daemons, embedded as libraries, run until their shutdown token is
//! cancelled and then stop cleanly within the grace period.

use std::time::Duration;

use tests::{eventually, Daemon};

#[tokio::test]
async fn edgecore_runs_until_cancelled_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = edgecore::EdgeCoreConfig::default();
    config.database.data_source = dir.path().join("edgecore.db").display().to_string();
    config.common_config.monitor_server.bind_address = "127.0.0.1:0".into();
    config.modules.node_status.hostname_override = "edge-shutdown".into();
    config.modules.meta_manager.meta_server.server = "127.0.0.1:0".into();
    config.modules.edge_hub.tls_ca_file = dir.path().join("ca.crt").display().to_string();
    config.modules.edge_hub.tls_cert_file = dir.path().join("node.crt").display().to_string();
    config.modules.edge_hub.tls_private_key_file =
        dir.path().join("node.key").display().to_string();
    let daemon = Daemon::spawn(|token| edgecore::run(config, token));
    // Still running a moment later: it waits for the token, not a timer.
    tokio::task::yield_now().await;
    assert!(!daemon.is_finished());
    daemon.stop(Duration::from_secs(15)).await.unwrap();
}

#[tokio::test]
async fn cloudcore_runs_until_cancelled_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = cloudcore::CloudCoreConfig::default();
    config.common_config.data_dir = dir.path().display().to_string();
    config.common_config.monitor_server.bind_address = "127.0.0.1:0".into();
    config.kube_api_config.embedded.bind_address = "127.0.0.1:0".into();
    config.kube_api_config.embedded.ignore_environment = true;
    let hub = &mut config.modules.cloud_hub;
    for listener in [&mut hub.websocket, &mut hub.https] {
        listener.address = "127.0.0.1".into();
        listener.port = 0;
    }
    let daemon = Daemon::spawn(|token| cloudcore::run(config, token));
    tokio::task::yield_now().await;
    assert!(!daemon.is_finished());
    daemon.stop(Duration::from_secs(15)).await.unwrap();
}

#[tokio::test]
async fn eventually_returns_the_first_value() {
    let mut calls = 0;
    let got = eventually("third call", Duration::from_secs(5), || {
        calls += 1;
        let ready = calls >= 3;
        async move { ready.then_some(calls) }
    })
    .await;
    assert_eq!(got, 3);
}
