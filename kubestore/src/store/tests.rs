//! Store tests on real SQLite files in temp dirs.

use std::time::Duration;

use serde_json::json;

use super::*;

fn cm_key(name: &str) -> ObjectKey {
    ObjectKey::new(Gvr::core("configmaps"), Some("default"), name)
}

fn cm(name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
           "data": {"v": data}})
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path().join("store.db"), StoreOptions::default()).unwrap()
}

async fn put(store: &Store, name: &str, data: &str) -> Outcome {
    let mut out = store
        .write(vec![WriteOp::put(cm_key(name), cm(name, data))])
        .await
        .unwrap();
    out.remove(0)
}

#[tokio::test]
async fn create_update_noop_delete_advance_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.revision(), 0);
    assert!(matches!(put(&store, "a", "1").await, Outcome::Created(o) if o.revision == 1));
    assert!(matches!(put(&store, "a", "2").await, Outcome::Updated(o) if o.revision == 2));
    // Same content: no new revision.
    assert!(matches!(put(&store, "a", "2").await, Outcome::Unchanged));
    let got = store.get(&cm_key("a")).await.unwrap().unwrap();
    assert_eq!(got.revision, 2);
    assert_eq!(got.value["metadata"]["resourceVersion"], "2");
    assert_eq!(got.value["data"]["v"], "2");
    let out = store
        .write(vec![WriteOp::delete(cm_key("a"))])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], Outcome::Deleted(o) if o.revision == 3 && o.value["data"]["v"] == "2")
    );
    assert!(store.get(&cm_key("a")).await.unwrap().is_none());
    let out = store
        .write(vec![WriteOp::delete(cm_key("a"))])
        .await
        .unwrap();
    assert!(matches!(out[0], Outcome::Unchanged));
    assert_eq!(store.revision(), 3);
}

#[tokio::test]
async fn preconditions_fail_alone_and_roll_back_their_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    put(&store, "a", "1").await;
    let create = WriteOp::Put {
        key: cm_key("a"),
        value: cm("a", "x"),
        origin: None,
        expect: Expect::Absent,
    };
    // The first op of the request succeeds, the second fails: neither stays.
    let err = store
        .write(vec![WriteOp::put(cm_key("b"), cm("b", "1")), create])
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::AlreadyExists(_)), "{err:?}");
    assert!(store.get(&cm_key("b")).await.unwrap().is_none());
    assert_eq!(store.revision(), 1);

    let stale = WriteOp::Put {
        key: cm_key("a"),
        value: cm("a", "y"),
        origin: None,
        expect: Expect::Revision(0),
    };
    assert!(matches!(
        store.write(vec![stale]).await,
        Err(WriteError::Conflict { .. })
    ));
    let fresh = WriteOp::Put {
        key: cm_key("a"),
        value: cm("a", "y"),
        origin: None,
        expect: Expect::Revision(1),
    };
    assert!(store.write(vec![fresh]).await.is_ok());
    let wrong_uid = WriteOp::Delete {
        key: cm_key("a"),
        expect: Expect::Uid("other".into()),
    };
    assert!(matches!(
        store.write(vec![wrong_uid]).await,
        Err(WriteError::Conflict { .. })
    ));
    let missing = WriteOp::Delete {
        key: cm_key("zz"),
        expect: Expect::Exists,
    };
    assert!(matches!(
        store.write(vec![missing]).await,
        Err(WriteError::NotFound(_))
    ));
    let not_object = WriteOp::put(cm_key("n"), json!([1]));
    assert!(matches!(
        store.write(vec![not_object]).await,
        Err(WriteError::Invalid(_))
    ));
}

#[tokio::test]
async fn older_origin_versions_are_not_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let at = |origin: &str, data: &str| WriteOp::Put {
        key: cm_key("a"),
        value: cm("a", data),
        origin: Some(origin.to_owned()),
        expect: Expect::NewerOrigin,
    };
    let out = store.write(vec![at("10", "ten")]).await.unwrap();
    assert!(matches!(out[0], Outcome::Created(_)));
    let out = store.write(vec![at("10", "ten again")]).await.unwrap();
    assert!(matches!(out[0], Outcome::Unchanged));
    let out = store.write(vec![at("9", "nine")]).await.unwrap();
    assert!(matches!(out[0], Outcome::Unchanged));
    let out = store.write(vec![at("11", "eleven")]).await.unwrap();
    assert!(matches!(out[0], Outcome::Updated(_)));
    let got = store.get(&cm_key("a")).await.unwrap().unwrap();
    assert_eq!(got.value["data"]["v"], "eleven");
    assert_eq!(store.revision(), 2);
}

#[tokio::test]
async fn list_is_scoped_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    put(&store, "b", "1").await;
    put(&store, "a", "1").await;
    let other = ObjectKey::new(Gvr::core("configmaps"), Some("kube-system"), "c");
    store
        .write(vec![WriteOp::put(other, cm("c", "1"))])
        .await
        .unwrap();
    let pod = ObjectKey::new(Gvr::core("pods"), Some("default"), "p");
    store
        .write(vec![WriteOp::put(pod, json!({}))])
        .await
        .unwrap();
    // A resource whose name extends "configmaps" must not leak in.
    let lookalike = ObjectKey::new(Gvr::core("configmaps0"), Some("default"), "x");
    store
        .write(vec![WriteOp::put(lookalike, json!({}))])
        .await
        .unwrap();

    let (all, rev) = store.list(&Gvr::core("configmaps"), None).await.unwrap();
    assert_eq!(rev, 5);
    let names: Vec<_> = all.iter().map(|o| o.key.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let (default, _) = store
        .list(&Gvr::core("configmaps"), Some("default"))
        .await
        .unwrap();
    assert_eq!(default.len(), 2);
    assert_eq!(default[0].key.namespace.as_deref(), Some("default"));

    let node = ObjectKey::new(Gvr::core("nodes"), None, "edge-1");
    store
        .write(vec![WriteOp::put(node.clone(), json!({}))])
        .await
        .unwrap();
    let (nodes, _) = store.list(&Gvr::core("nodes"), None).await.unwrap();
    assert_eq!(nodes[0].key, node);
}

#[tokio::test]
async fn meta_rows_are_kept_beside_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .write(vec![
            WriteOp::PutMeta {
                key: "default/configmap/a".into(),
                kind: "configmap".into(),
                value: "{}".into(),
            },
            WriteOp::PutMeta {
                key: "default/secret/s".into(),
                kind: "secret".into(),
                value: "{\"x\":1}".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get_meta("default/secret/s").await.unwrap(),
        Some(("secret".into(), "{\"x\":1}".into()))
    );
    assert_eq!(
        store
            .list_meta("configmap", "default/")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .list_meta("configmap", "other/")
        .await
        .unwrap()
        .is_empty());
    store
        .write(vec![WriteOp::DeleteMeta {
            key: "default/secret/s".into(),
        }])
        .await
        .unwrap();
    assert_eq!(store.get_meta("default/secret/s").await.unwrap(), None);
    // Meta rows take no revision.
    assert_eq!(store.revision(), 0);
}

#[tokio::test]
async fn watch_replays_history_then_streams_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    put(&store, "a", "1").await;
    put(&store, "b", "1").await;
    let pod = ObjectKey::new(Gvr::core("pods"), Some("default"), "p");
    store
        .write(vec![WriteOp::put(pod, json!({}))])
        .await
        .unwrap();

    let mut from_one = store
        .watch(&Gvr::core("configmaps"), None, Some(1))
        .unwrap();
    let mut from_now = store.watch(&Gvr::core("configmaps"), None, None).unwrap();
    let mut other_ns = store
        .watch(&Gvr::core("configmaps"), Some("kube-system"), Some(0))
        .unwrap();
    put(&store, "a", "2").await;
    store
        .write(vec![WriteOp::delete(cm_key("b"))])
        .await
        .unwrap();

    let e = from_one.next().await.unwrap();
    assert_eq!(
        (e.kind, e.object.key.name.as_str(), e.revision()),
        (EventKind::Added, "b", 2)
    );
    let e = from_one.next().await.unwrap();
    assert_eq!((e.kind, e.revision()), (EventKind::Modified, 4));
    let e = from_one.next().await.unwrap();
    assert_eq!((e.kind, e.revision()), (EventKind::Deleted, 5));
    assert_eq!(from_one.revision(), 5);

    let e = from_now.next().await.unwrap();
    assert_eq!((e.kind, e.revision()), (EventKind::Modified, 4));

    let nothing = tokio::time::timeout(Duration::from_millis(50), other_ns.next()).await;
    assert!(nothing.is_err(), "no kube-system changes");
}

#[tokio::test]
async fn watch_from_before_the_history_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        history: 2,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path().join("s.db"), options).unwrap();
    for n in 0..4 {
        put(&store, "a", &n.to_string()).await;
    }
    // History holds revisions 3 and 4; a watch may resume from 2 onwards.
    assert!(store.watch(&Gvr::core("configmaps"), None, Some(2)).is_ok());
    assert_eq!(
        store
            .watch(&Gvr::core("configmaps"), None, Some(1))
            .unwrap_err(),
        WatchError::Gone {
            requested: 1,
            oldest: 2
        }
    );
    drop(store);
    // The history is on disk: after a restart a watch still resumes from 2
    // and replays what it missed.
    let store = Store::open(dir.path().join("s.db"), StoreOptions::default()).unwrap();
    assert_eq!(store.revision(), 4);
    let mut resumed = store
        .watch(&Gvr::core("configmaps"), None, Some(2))
        .unwrap();
    for want in [3, 4] {
        let e = resumed.next().await.unwrap();
        assert_eq!((e.kind, e.revision()), (EventKind::Modified, want));
        assert_eq!(e.object.value["data"]["v"], (want - 1).to_string());
    }
    assert!(matches!(
        store.watch(&Gvr::core("configmaps"), None, Some(1)),
        Err(WatchError::Gone { .. })
    ));
    // New changes continue the sequence and reach the resumed watch.
    put(&store, "a", "next").await;
    assert_eq!(resumed.next().await.unwrap().revision(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_get_distinct_revisions_and_everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut watch = store.watch(&Gvr::core("configmaps"), None, None).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..50 {
                    let name = format!("cm-{t}-{n}");
                    store
                        .write(vec![WriteOp::put(cm_key(&name), cm(&name, "x"))])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.revision(), 400);
    let mut last = 0;
    for _ in 0..400 {
        let e = watch.next().await.unwrap();
        assert_eq!(e.revision(), last + 1, "in order, no gaps");
        last = e.revision();
    }
    let path = store.path().to_path_buf();
    drop(store);
    drop(watch);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let (items, rev) = store.list(&Gvr::core("configmaps"), None).await.unwrap();
    assert_eq!((items.len(), rev), (400, 400));
    let distinct: std::collections::HashSet<u64> = items.iter().map(|o| o.revision).collect();
    assert_eq!(distinct.len(), 400);
}

#[tokio::test]
async fn a_dropped_store_closes_its_watches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut watch = store.watch(&Gvr::core("configmaps"), None, None).unwrap();
    drop(store);
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
    assert_eq!(end.unwrap().unwrap_err(), WatchError::Closed);
}

#[tokio::test]
async fn groups_in_one_request_stand_or_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    put(&store, "a", "1").await;
    let results = store
        .write_groups(vec![
            vec![WriteOp::put(cm_key("b"), cm("b", "1"))],
            vec![WriteOp::Put {
                key: cm_key("a"),
                value: cm("a", "2"),
                origin: None,
                expect: Expect::Absent,
            }],
            vec![WriteOp::put(cm_key("c"), cm("c", "1"))],
        ])
        .await;
    assert!(
        matches!(&results[0], Ok(o) if matches!(o[0], Outcome::Created(ref x) if x.revision == 2))
    );
    assert!(matches!(results[1], Err(WriteError::AlreadyExists(_))));
    assert!(
        matches!(&results[2], Ok(o) if matches!(o[0], Outcome::Created(ref x) if x.revision == 3))
    );
    assert_eq!(store.revision(), 3);
}

#[tokio::test]
async fn checks_hold_a_group_to_a_precondition_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    put(&store, "a", "1").await;
    let check = |rev| WriteOp::Check {
        key: cm_key("a"),
        expect: Expect::Revision(rev),
    };
    let out = store
        .write(vec![check(1), WriteOp::put(cm_key("b"), cm("b", "1"))])
        .await
        .unwrap();
    assert!(matches!(out[0], Outcome::Unchanged));
    assert_eq!(store.revision(), 2, "the check took no revision");
    // Once `a` has moved on, the same check fails its whole group.
    put(&store, "a", "2").await;
    let err = store
        .write(vec![check(1), WriteOp::put(cm_key("c"), cm("c", "1"))])
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Conflict { .. }), "{err:?}");
    assert!(store.get(&cm_key("c")).await.unwrap().is_none());
    let missing = WriteOp::Check {
        key: cm_key("zz"),
        expect: Expect::Exists,
    };
    assert!(matches!(
        store.write(vec![missing]).await,
        Err(WriteError::NotFound(_))
    ));
}
