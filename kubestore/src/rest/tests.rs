//! The API in process (actix's test service over a store in a temporary
//! directory): routing, discovery, Status errors, selectors, Tables,
//! refused writes and watch streams (writes: `write_tests/`).

use std::pin::Pin;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::test::{self, TestRequest};

use super::test_support::{get, Fixture};
use serde_json::{json, Value};

use super::*;
use crate::resource::{edge_resources, Gvr};
use crate::store::{ObjectKey, StoreOptions, WriteOp};

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn fixture(options: StoreOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("edge.db"), options).unwrap();
    let mut rest = RestConfig::new(
        store,
        Resources::new(edge_resources()),
        "v1.33.0-apiary-0.1.0",
    );
    rest.watch.bookmark_interval = Duration::from_millis(100);
    Fixture { _dir: dir, rest }
}

fn pod(name: &str, app: &str, node: &str) -> WriteOp {
    WriteOp::put(
        ObjectKey::new(Gvr::core("pods"), Some("default"), name),
        json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
               "spec": {"nodeName": node, "containers": [{"name": "c"}]},
               "status": {"phase": "Running"}}),
    )
}

#[actix_web::test]
async fn discovery_and_health() {
    let f = fixture(StoreOptions::default());
    let svc = app!(f.rest);
    let (code, v) = call!(svc, get("/version"));
    assert_eq!(
        (code, v["gitVersion"].as_str()),
        (200, Some("v1.33.0-apiary-0.1.0"))
    );
    let (_, v) = call!(svc, get("/api"));
    assert_eq!(v["versions"], json!(["v1"]));
    let (_, v) = call!(svc, get("/api/v1"));
    assert!(v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "pods/status"));
    let (_, v) = call!(svc, get("/apis"));
    assert_eq!(v["groups"].as_array().unwrap().len(), 2);
    let (code, v) = call!(svc, get("/apis/coordination.k8s.io"));
    assert_eq!((code, v["kind"].as_str()), (200, Some("APIGroup")));
    let (code, _) = call!(svc, get("/apis/coordination.k8s.io/v1"));
    assert_eq!(code, 200);
    for missing in [
        "/apis/nope.io",
        "/apis/nope.io/v1",
        "/openapi/v2",
        "/openapi/v3",
        "/api/v1/widgets",
    ] {
        let (code, v) = call!(svc, get(missing));
        assert_eq!(
            (code, v["reason"].as_str()),
            (404, Some("NotFound")),
            "{missing}"
        );
    }
    for health in ["/healthz", "/readyz", "/livez"] {
        assert_eq!(call!(svc, get(health)), (200, json!("ok")));
    }
}

#[actix_web::test]
async fn get_and_list_with_selectors() {
    let f = fixture(StoreOptions::default());
    f.rest
        .store
        .write(vec![pod("a", "web", "n1"), pod("b", "db", "n2")])
        .await
        .unwrap();
    let svc = app!(f.rest);

    let (code, v) = call!(svc, get("/api/v1/namespaces/default/pods/a"));
    assert_eq!(
        (code, v["kind"].as_str(), v["apiVersion"].as_str()),
        (200, Some("Pod"), Some("v1"))
    );
    let (_, status) = call!(svc, get("/api/v1/namespaces/default/pods/a/status"));
    assert_eq!(status["metadata"]["name"], "a");
    let (code, v) = call!(svc, get("/api/v1/namespaces/default/pods/x"));
    assert_eq!(code, 404);
    assert_eq!(v["message"], "pods \"x\" not found");
    assert_eq!(v["details"], json!({"name": "x", "kind": "pods"}));

    let (_, list) = call!(svc, get("/api/v1/pods"));
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        list["metadata"]["resourceVersion"],
        f.rest.store.revision().to_string()
    );
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, list) = call!(
        svc,
        get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
    );
    assert_eq!(names(&list), ["a"]);
    let (_, list) = call!(
        svc,
        get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn2&limit=1")
    );
    assert_eq!(names(&list), ["b"]);
    let (_, list) = call!(svc, get("/api/v1/namespaces/other/pods"));
    assert_eq!(names(&list), Vec::<String>::new());
    let (code, v) = call!(svc, get("/api/v1/pods?labelSelector=app%20in%20web"));
    assert_eq!((code, v["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = call!(
        svc,
        get("/api/v1/pods").insert_header(("Accept", "application/yaml"))
    );
    assert_eq!(code, 406);
}

#[actix_web::test]
async fn tables_for_kubectl() {
    let f = fixture(StoreOptions::default());
    f.rest
        .store
        .write(vec![pod("a", "web", "n1")])
        .await
        .unwrap();
    let svc = app!(f.rest);
    let (_, table) = call!(
        svc,
        get("/api/v1/namespaces/default/pods").insert_header(("Accept", TABLE))
    );
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["columnDefinitions"][1]["name"], "Ready");
    assert_eq!(table["rows"][0]["cells"][0], "a");
    assert_eq!(table["rows"][0]["cells"][2], "Running");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let (_, one) = call!(
        svc,
        get("/api/v1/namespaces/default/pods/a?includeObject=Object")
            .insert_header(("Accept", TABLE))
    );
    assert_eq!(one["rows"][0]["object"]["kind"], "Pod");
    assert_eq!(
        one["metadata"]["resourceVersion"],
        f.rest.store.revision().to_string()
    );
}

#[actix_web::test]
async fn writes_are_refused() {
    let mut f = fixture(StoreOptions::default());
    let svc = app!(f.rest);
    let create = || {
        TestRequest::post()
            .uri("/api/v1/namespaces/default/pods")
            .set_json(json!({}))
    };
    let (code, v) = call!(svc, create());
    assert_eq!(
        (code, v["reason"].as_str(), v["code"].as_i64()),
        (405, Some("MethodNotAllowed"), Some(405))
    );
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("change them through the cloud"));
    let (code, _) = call!(
        svc,
        TestRequest::delete().uri("/api/v1/namespaces/default/pods/a")
    );
    assert_eq!(code, 405);
    let (code, _) = call!(svc, TestRequest::post().uri("/api"));
    assert_eq!(code, 405);

    f.rest.read_only = false;
    let svc = app!(f.rest);
    let (code, v) = call!(svc, create());
    assert_eq!(
        (code, v["reason"].as_str()),
        (422, Some("Invalid")),
        "writable: a create without a name is invalid"
    );
    let big = TestRequest::put()
        .uri("/api/v1/namespaces/default/pods/a")
        .set_payload(vec![b' '; MAX_BODY_BYTES + 1]);
    let (code, v) = call!(svc, big);
    assert_eq!(
        (code, v["reason"].as_str()),
        (413, Some("RequestEntityTooLarge"))
    );
}

/// Reads a watch response line by line.
struct Lines {
    body: Pin<Box<dyn MessageBody<Error = Box<dyn std::error::Error>>>>,
    buffer: Vec<u8>,
}

impl Lines {
    fn new(resp: ServiceResponse) -> Lines {
        assert_eq!(resp.status(), 200);
        Lines {
            body: Box::pin(resp.into_body().boxed()),
            buffer: Vec::new(),
        }
    }

    /// The next event, or `None` at the end of the stream.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let chunk = tokio::time::timeout(
                Duration::from_secs(10),
                futures::future::poll_fn(|cx| self.body.as_mut().poll_next(cx)),
            )
            .await
            .expect("a watch event within 10 s");
            match chunk {
                Some(chunk) => self.buffer.extend_from_slice(&chunk.unwrap()),
                None => return None,
            }
        }
    }
}

fn event(v: &Value) -> (String, String) {
    let name = v["object"]["metadata"]["name"].as_str().unwrap_or_default();
    (v["type"].as_str().unwrap().to_owned(), name.to_owned())
}

#[actix_web::test]
async fn watch_with_selector_transitions() {
    let f = fixture(StoreOptions::default());
    let store = &f.rest.store;
    store
        .write(vec![pod("a", "web", "n1"), pod("b", "db", "n1")])
        .await
        .unwrap();
    let svc = app!(f.rest);
    let resp = test::call_service(
        &svc,
        get("/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dweb").to_request(),
    )
    .await;
    let mut lines = Lines::new(resp);
    assert_eq!(
        event(&lines.next().await.unwrap()),
        ("ADDED".into(), "a".into())
    );
    store.write(vec![pod("a", "other", "n1")]).await.unwrap();
    assert_eq!(
        event(&lines.next().await.unwrap()),
        ("DELETED".into(), "a".into())
    );
    store.write(vec![pod("b", "web", "n1")]).await.unwrap();
    assert_eq!(
        event(&lines.next().await.unwrap()),
        ("ADDED".into(), "b".into())
    );
    store.write(vec![pod("b", "web", "n2")]).await.unwrap();
    assert_eq!(
        event(&lines.next().await.unwrap()),
        ("MODIFIED".into(), "b".into())
    );
    store
        .write(vec![WriteOp::delete(ObjectKey::new(
            Gvr::core("pods"),
            Some("default"),
            "b",
        ))])
        .await
        .unwrap();
    assert_eq!(
        event(&lines.next().await.unwrap()),
        ("DELETED".into(), "b".into())
    );
    f.rest.shutdown.cancel();
    assert_eq!(lines.next().await, None);
}

#[actix_web::test]
async fn watch_resumes_expires_and_bookmarks() {
    let f = fixture(StoreOptions {
        history: 2,
        ..StoreOptions::default()
    });
    let store = &f.rest.store;
    for i in 0..5 {
        store
            .write(vec![pod(&format!("p{i}"), "web", "n1")])
            .await
            .unwrap();
    }
    let svc = app!(f.rest);
    let watch = |q: &str| get(&format!("/api/v1/watch/namespaces/default/pods?{q}")).to_request();

    let mut lines = Lines::new(test::call_service(&svc, watch("resourceVersion=1")).await);
    let error = lines.next().await.unwrap();
    assert_eq!(
        (error["type"].as_str(), error["object"]["code"].as_i64()),
        (Some("ERROR"), Some(410))
    );
    assert_eq!(error["object"]["reason"], "Expired");
    assert_eq!(lines.next().await, None);
    let mut lines = Lines::new(test::call_service(&svc, watch("resourceVersion=999")).await);
    assert_eq!(lines.next().await.unwrap()["object"]["code"], 410);

    let rv = store.revision();
    let mut lines = Lines::new(
        test::call_service(
            &svc,
            watch(&format!(
                "resourceVersion={}&allowWatchBookmarks=true",
                rv - 1
            )),
        )
        .await,
    );
    assert_eq!(
        event(&lines.next().await.unwrap()),
        ("ADDED".into(), "p4".into())
    );
    let cm = ObjectKey::new(Gvr::core("configmaps"), Some("default"), "cm");
    store
        .write(vec![WriteOp::put(cm, json!({"metadata": {"name": "cm"}}))])
        .await
        .unwrap();
    let bookmark = lines.next().await.unwrap();
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(bookmark["object"]["kind"], "Pod");
    assert_eq!(
        bookmark["object"]["metadata"]["resourceVersion"],
        store.revision().to_string()
    );

    let mut lines = Lines::new(
        test::call_service(
            &svc,
            watch("timeoutSeconds=1&fieldSelector=metadata.name%3Dp3"),
        )
        .await,
    );
    assert_eq!(
        event(&lines.next().await.unwrap()),
        ("ADDED".into(), "p3".into())
    );
    assert_eq!(lines.next().await, None, "ends at timeoutSeconds");

    let single = get("/api/v1/namespaces/default/pods/p2?watch=true&sendInitialEvents=true&allowWatchBookmarks=true").to_request();
    let mut lines = Lines::new(test::call_service(&svc, single).await);
    assert_eq!(
        event(&lines.next().await.unwrap()),
        ("ADDED".into(), "p2".into())
    );
    let end = lines.next().await.unwrap();
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}
