//! delete with preconditions, deletecollection with selectors, namespace
//! deletion (terminating, emptied, then gone) and CustomResourceDefinitions
//! adding and removing what is served.

use actix_web::test::TestRequest;
use serde_json::json;

use super::*;

#[actix_web::test]
async fn delete_namespace_and_collections() {
    let f = fixture();
    let svc = app!(f.rest);
    for ns in ["team", "keep"] {
        call!(
            svc,
            post("/api/v1/namespaces", json!({"metadata": {"name": ns}}))
        );
        for name in ["a", "b"] {
            let (code, _) = call!(
                svc,
                post(
                    &format!("/api/v1/namespaces/{ns}/configmaps"),
                    json!({"metadata": {"name": name, "labels": {"n": name}}})
                )
            );
            assert_eq!(code, 201);
        }
    }
    let (_, web) = call!(svc, post(PODS, pod("web")));
    let uri = format!("{PODS}/web");
    let wrong_uid = json!({"kind": "DeleteOptions", "apiVersion": "v1",
                           "preconditions": {"uid": "nope"}});
    let (code, v) = call!(svc, TestRequest::delete().uri(&uri).set_json(wrong_uid));
    assert_eq!((code, v["reason"].as_str()), (409, Some("Conflict")));
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("Precondition failed: UID"));
    let right = json!({"preconditions": {"uid": web["metadata"]["uid"],
                                         "resourceVersion": web["metadata"]["resourceVersion"]}});
    let (code, v) = call!(svc, TestRequest::delete().uri(&uri).set_json(right));
    assert_eq!((code, v["metadata"]["name"].as_str()), (200, Some("web")));
    assert_eq!(call!(svc, TestRequest::delete().uri(&uri)).0, 404);

    let (code, list) = call!(
        svc,
        TestRequest::delete().uri("/api/v1/namespaces/keep/configmaps?labelSelector=n%3Da")
    );
    assert_eq!((code, list["kind"].as_str()), (200, Some("ConfigMapList")));
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, left) = call!(svc, get("/api/v1/namespaces/keep/configmaps"));
    assert_eq!(left["items"][0]["metadata"]["name"], "b");

    call!(svc, post(PODS, pod("web")));
    let (code, ns) = call!(svc, TestRequest::delete().uri("/api/v1/namespaces/team"));
    assert_eq!(code, 200);
    assert_eq!(ns["status"]["phase"], "Terminating");
    for path in ["/api/v1/namespaces/team/configmaps", PODS] {
        let (_, list) = call!(svc, get(path));
        assert_eq!(list["items"], json!([]), "{path}");
    }
    assert_eq!(call!(svc, get("/api/v1/namespaces/team")).0, 404);
    let (_, left) = call!(svc, get("/api/v1/configmaps"));
    assert_eq!(
        left["items"].as_array().unwrap().len(),
        1,
        "other namespaces stay"
    );
    assert_eq!(
        call!(svc, TestRequest::delete().uri("/api/v1/namespaces")).0,
        405
    );

    // A terminating namespace takes nothing new.
    let (_, keep) = call!(svc, get("/api/v1/namespaces/keep"));
    let mut ending = keep.clone();
    ending["status"]["phase"] = json!("Terminating");
    call!(svc, put("/api/v1/namespaces/keep/status", ending));
    let (code, v) = call!(
        svc,
        post(
            "/api/v1/namespaces/keep/configmaps",
            json!({"metadata": {"name": "late"}})
        )
    );
    assert_eq!((code, v["reason"].as_str()), (403, Some("Forbidden")));
}

#[actix_web::test]
async fn custom_resource_definitions_change_what_is_served() {
    let f = fixture();
    let svc = app!(f.rest);
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.io"},
        "spec": {"group": "example.io", "scope": "Cluster",
                 "names": {"kind": "Widget", "plural": "widgets"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}});
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let (code, v) = call!(svc, post(crds, crd));
    assert_eq!(code, 201, "{v}");
    let established = v["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{v}");
    let widgets = "/apis/example.io/v1/widgets";
    let (code, _) = call!(svc, post(widgets, json!({"metadata": {"name": "w"}})));
    assert_eq!(code, 201);
    let (code, v) = call!(svc, get(&format!("{widgets}/w")));
    assert_eq!((code, v["metadata"]["generation"].as_i64()), (200, Some(1)));

    let (code, _) = call!(
        svc,
        TestRequest::delete().uri(&format!("{crds}/widgets.example.io"))
    );
    assert_eq!(code, 200);
    assert_eq!(call!(svc, get(widgets)).0, 404, "no longer served");
    let (items, _) = f
        .rest
        .store
        .list(&Gvr::new("example.io", "v1", "widgets"), None)
        .await
        .unwrap();
    assert!(items.is_empty(), "its objects are deleted");
    let bad = json!({"metadata": {"name": "x"}, "spec": {"group": "", "scope": "Cluster"}});
    assert_eq!(call!(svc, post(crds, bad)).0, 422);
}
