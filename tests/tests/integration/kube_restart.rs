//! cloudcore's embedded API across a restart: every object is still there,
//! the resourceVersion sequence continues, and a watch resumed from a
//! version before the restart replays what it missed.

#![allow(clippy::unwrap_used, reason = "test set-up: a failure should panic")]

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::ResourceExt;
use tests::cluster::client_from;

async fn start(dir: &Path) -> (cloudcore::Started, tokio_util::sync::CancellationToken) {
    let config = tests::config::cloud(dir, 30);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = cloudcore::start(config, shutdown.clone(), |_| {})
        .await
        .unwrap();
    (started, shutdown)
}

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

fn rv(o: &ConfigMap) -> u64 {
    o.resource_version().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_versions_and_watch_history_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (started, shutdown) = start(dir.path()).await;
    let client = client_from(started.kubeconfig().unwrap()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let a = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let b = api.create(&PostParams::default(), &cm("b")).await.unwrap();
    let c = api.create(&PostParams::default(), &cm("c")).await.unwrap();
    assert!(rv(&a) < rv(&b) && rv(&b) < rv(&c));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), started.wait())
        .await
        .unwrap()
        .unwrap();

    let (started, shutdown) = start(dir.path()).await;
    let client = client_from(started.kubeconfig().unwrap()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    assert!(
        ["a", "b", "c"].iter().all(|n| names.iter().any(|m| m == n)),
        "{names:?}"
    );

    // A watch resumed from a's version replays b and c, then goes on live.
    let mut events = api
        .watch(&WatchParams::default(), &rv(&a).to_string())
        .await
        .unwrap()
        .boxed();
    let d = api.create(&PostParams::default(), &cm("d")).await.unwrap();
    assert!(rv(&d) > rv(&c), "the sequence continues after the restart");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let WatchEvent::Added(o) = event {
            seen.push((o.name_any(), rv(&o)));
        }
    }
    assert_eq!(
        seen,
        [
            ("b".to_owned(), rv(&b)),
            ("c".to_owned(), rv(&c)),
            ("d".to_owned(), rv(&d))
        ]
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), started.wait())
        .await
        .unwrap()
        .unwrap();
}
