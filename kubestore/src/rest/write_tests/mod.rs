//! The write verbs in process (actix's test service over a writable API on
//! a store in a temporary directory): this file has the fixture, write
//! errors as Status, discovery and OpenAPI; `objects.rs` create, update
//! and patch (with status subresources); `removal.rs` delete,
//! deletecollection, namespaces and CRDs.

use actix_web::test::{self, TestRequest};

use super::test_support::{get, Fixture};
use serde_json::{json, Value};

use super::*;
use crate::resource::{edge_resources, Gvr, ResourceInfo};
use crate::store::StoreOptions;

const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("cloud.db"), StoreOptions::default()).unwrap();
    let resources = Resources::new(edge_resources());
    resources.upsert(
        ResourceInfo::new(
            Gvr::new("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
            "CustomResourceDefinition",
            false,
        )
        .short(&["crd"]),
    );
    let mut rest = RestConfig::new(store, resources, "v1.33.0-apiary-0.1.0");
    rest.read_only = false;
    Fixture { _dir: dir, rest }
}

fn post(uri: &str, body: Value) -> TestRequest {
    TestRequest::post().uri(uri).set_json(body)
}

fn put(uri: &str, body: Value) -> TestRequest {
    TestRequest::put().uri(uri).set_json(body)
}

fn patch(uri: &str, media: &str, body: Value) -> TestRequest {
    TestRequest::patch()
        .uri(uri)
        .insert_header(("Content-Type", media))
        .set_payload(body.to_string())
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

const PODS: &str = "/api/v1/namespaces/team/pods";

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": {"app": "web"}},
           "spec": {"nodeName": "edge-1",
                    "containers": [{"name": "main", "image": "nginx:1"},
                                   {"name": "side", "image": "busybox"}]},
           "status": {"phase": "Pending"}})
}

mod objects;
mod removal;

#[actix_web::test]
async fn discovery_and_openapi_when_writable() {
    let mut f = fixture();
    let svc = app!(f.rest);
    let (_, list) = call!(svc, get("/api/v1"));
    let entries = list["resources"].as_array().unwrap();
    let pods = entries.iter().find(|e| e["name"] == "pods").unwrap();
    assert_eq!(
        pods["verbs"],
        json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ])
    );
    let status = entries.iter().find(|e| e["name"] == "pods/status").unwrap();
    assert_eq!(status["verbs"], json!(["get", "patch", "update"]));
    let (code, v2) = call!(svc, get("/openapi/v2"));
    assert_eq!((code, v2["swagger"].as_str()), (200, Some("2.0")));
    assert_eq!(v2["definitions"], json!({}));
    let proto = test::call_service(
        &svc,
        get("/openapi/v2")
            .insert_header((
                "Accept",
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            ))
            .to_request(),
    )
    .await;
    assert_eq!(
        proto.headers().get("content-type").unwrap(),
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    assert!(test::read_body(proto).await.starts_with(b"\x0a\x032.0"));
    assert_eq!(call!(svc, get("/openapi/v3")), (200, json!({"paths": {}})));
    assert_eq!(call!(svc, get("/openapi/v3/api/v1")).0, 404);
    f.rest.read_only = true;
    let svc = app!(f.rest);
    assert_eq!(call!(svc, get("/openapi/v2")).0, 404);
}

#[test]
fn write_errors_as_kube_apiserver_says_them() {
    use crate::store::{ObjectKey, WriteError};
    let status = |err: &RestError| -> Value { serde_json::from_slice(&err.status_json()).unwrap() };
    let key = || Box::new(ObjectKey::new(Gvr::core("pods"), Some("ns"), "x"));
    let exists = status(&RestError::from(WriteError::AlreadyExists(key())));
    assert_eq!(
        exists,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
               "status": "Failure", "message": "pods \"x\" already exists",
               "reason": "AlreadyExists", "details": {"name": "x", "kind": "pods"},
               "code": 409})
    );
    let conflict = status(&RestError::from(WriteError::Conflict {
        key: key(),
        reason: "stale".into(),
    }));
    assert_eq!(
        (conflict["code"].as_i64(), conflict["reason"].as_str()),
        (Some(409), Some("Conflict"))
    );
    assert_eq!(
        conflict["message"],
        "Operation cannot be fulfilled on pods \"x\": the object has been modified; \
         please apply your changes to the latest version and try again"
    );
    let missing = status(&RestError::from(WriteError::NotFound(key())));
    assert_eq!(missing["code"], 404);
    let invalid = status(&RestError::Invalid {
        group: String::new(),
        kind: "Pod".into(),
        name: String::new(),
        field: "metadata.name".into(),
        detail: "Required value: name or generateName is required".into(),
    });
    assert_eq!(
        (invalid["code"].as_i64(), invalid["reason"].as_str()),
        (Some(422), Some("Invalid"))
    );
    assert_eq!(
        invalid["message"],
        "Pod \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
    assert_eq!(
        invalid["details"]["causes"][0]["reason"],
        "FieldValueRequired"
    );
    assert_eq!(
        status(&RestError::UnsupportedMediaType("no".into()))["code"],
        415
    );
    assert_eq!(
        status(&RestError::Forbidden("no".into()))["reason"],
        "Forbidden"
    );
}
