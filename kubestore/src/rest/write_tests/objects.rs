//! create, update and patch, with the status subresource, optimistic
//! concurrency and every patch type.

use actix_web::test::TestRequest;
use serde_json::json;

use super::*;

#[actix_web::test]
async fn create_sets_server_metadata() {
    let f = fixture();
    let svc = app!(f.rest);
    let (code, v) = call!(svc, post(PODS, pod("web")));
    assert_eq!((code, v["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(v["message"], "namespaces \"team\" not found");
    let (code, ns) = call!(
        svc,
        post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
    );
    assert_eq!(code, 201);
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["status"]["phase"], "Active");

    let mut sent = pod("web");
    sent["metadata"]["resourceVersion"] = json!("999");
    sent["metadata"]["uid"] = json!("client-uid");
    let (code, v) = call!(svc, post(PODS, sent));
    assert_eq!(code, 201);
    assert_eq!(v["metadata"]["namespace"], "team");
    assert_eq!(v["metadata"]["generation"], 1);
    assert_ne!(v["metadata"]["uid"], "client-uid");
    assert_eq!(v["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert_eq!(rv(&v), f.rest.store.revision());
    let created = v["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(created.parse::<jiff::Timestamp>().is_ok() && created.ends_with('Z'));
    assert_eq!(v["status"]["phase"], "Pending", "create keeps the status");

    let (code, v) = call!(svc, post(PODS, pod("web")));
    assert_eq!(
        (code, v["reason"].as_str(), v["message"].as_str()),
        (
            409,
            Some("AlreadyExists"),
            Some("pods \"web\" already exists")
        )
    );
    let (code, v) = call!(
        svc,
        post(
            PODS,
            json!({"metadata": {"generateName": "web-"}, "spec": {}})
        )
    );
    assert_eq!(code, 201);
    let name = v["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    let (code, v) = call!(svc, post(PODS, json!({"metadata": {}})));
    assert_eq!((code, v["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(v["details"]["causes"][0]["field"], "metadata.name", "{v}");
    for bad in [
        json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
        json!({"apiVersion": "v2", "metadata": {"name": "x"}}),
        json!({"metadata": {"name": "x", "namespace": "other"}}),
        json!(["not", "an", "object"]),
    ] {
        let (code, v) = call!(svc, post(PODS, bad.clone()));
        assert_eq!(
            (code, v["reason"].as_str()),
            (400, Some("BadRequest")),
            "{bad}"
        );
    }
    let yaml = TestRequest::post()
        .uri(PODS)
        .insert_header(("Content-Type", "application/yaml"))
        .set_payload("metadata: {name: y}");
    assert_eq!(call!(svc, yaml).0, 415);
    let (code, _) = call!(svc, post(&format!("{PODS}?dryRun=All"), pod("dry")));
    assert_eq!(code, 400, "a dry run is refused, not written");
    assert_eq!(call!(svc, get(&format!("{PODS}/dry"))).0, 404);
    let (code, _) = call!(svc, post("/api/v1/pods", pod("x")));
    assert_eq!(
        code, 405,
        "namespaced objects are created in their namespace"
    );
}

#[actix_web::test]
async fn update_with_optimistic_concurrency_and_status() {
    let f = fixture();
    let svc = app!(f.rest);
    call!(
        svc,
        post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
    );
    let (_, created) = call!(svc, post(PODS, pod("web")));
    let uri = format!("{PODS}/web");

    let mut next = created.clone();
    next["spec"]["nodeName"] = json!("edge-2");
    next["status"]["phase"] = json!("Running");
    next["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    let (code, updated) = call!(svc, put(&uri, next.clone()));
    assert_eq!(code, 200);
    assert_eq!(updated["spec"]["nodeName"], "edge-2");
    assert_eq!(
        updated["status"]["phase"], "Pending",
        "PUT ignores the status"
    );
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        updated["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );
    assert!(rv(&updated) > rv(&created));

    // The same body again carries a stale resourceVersion.
    let (code, v) = call!(svc, put(&uri, next));
    assert_eq!((code, v["reason"].as_str()), (409, Some("Conflict")));
    assert_eq!(
        v["message"],
        "Operation cannot be fulfilled on pods \"web\": the object has been modified; \
         please apply your changes to the latest version and try again"
    );
    // Without one the update is unconditional; unchanged content keeps it.
    let mut same = updated.clone();
    same["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (code, v) = call!(svc, put(&uri, same));
    assert_eq!((code, rv(&v)), (200, rv(&updated)));

    let mut status = updated.clone();
    status["status"]["phase"] = json!("Running");
    status["spec"]["nodeName"] = json!("ignored");
    let (code, v) = call!(svc, put(&format!("{uri}/status"), status));
    assert_eq!(code, 200);
    assert_eq!(
        (
            v["status"]["phase"].as_str(),
            v["spec"]["nodeName"].as_str()
        ),
        (Some("Running"), Some("edge-2"))
    );
    assert_eq!(v["metadata"]["generation"], 2);

    let (code, _) = call!(svc, put(&format!("{PODS}/other"), pod("web")));
    assert_eq!(code, 400, "the name must match the URL");
    let (code, v) = call!(svc, put(&format!("{PODS}/nope"), pod("nope")));
    assert_eq!(
        (code, v["message"].as_str()),
        (404, Some("pods \"nope\" not found"))
    );
}

#[actix_web::test]
async fn patches_of_every_kind() {
    let f = fixture();
    let svc = app!(f.rest);
    call!(
        svc,
        post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
    );
    let (_, created) = call!(svc, post(PODS, pod("web")));
    let uri = format!("{PODS}/web");

    let (code, v) = call!(
        svc,
        patch(
            &uri,
            MERGE,
            json!({"metadata": {"labels": {"tier": "front", "app": null}}})
        )
    );
    assert_eq!(code, 200);
    assert_eq!(v["metadata"]["labels"], json!({"tier": "front"}));
    let (_, v) = call!(
        svc,
        patch(
            &uri,
            JSON_PATCH,
            json!([{"op": "add", "path": "/metadata/labels/j", "value": "1"}])
        )
    );
    assert_eq!(v["metadata"]["labels"]["j"], "1");
    let (code, v) = call!(
        svc,
        patch(
            &uri,
            STRATEGIC,
            json!({"spec": {"containers": [
            {"name": "main", "image": "nginx:2"}, {"name": "side", "$patch": "delete"}]}})
        )
    );
    assert_eq!(code, 200);
    assert_eq!(
        v["spec"]["containers"],
        json!([{"name": "main", "image": "nginx:2"}])
    );
    assert_eq!(v["metadata"]["generation"], 2);
    assert_eq!(v["metadata"]["uid"], created["metadata"]["uid"]);

    // A patch that changes nothing keeps the resourceVersion.
    let before = rv(&v);
    let (code, v) = call!(
        svc,
        patch(&uri, STRATEGIC, json!({"metadata": {"labels": {"j": "1"}}}))
    );
    assert_eq!((code, rv(&v)), (200, before));
    // Identity and status (through the main resource) do not change.
    let (_, v) = call!(
        svc,
        patch(
            &uri,
            MERGE,
            json!({"metadata": {"uid": "x", "name": "y"}, "status": {"phase": "Failed"}})
        )
    );
    assert_eq!(rv(&v), before);
    assert_eq!(v["metadata"]["name"], "web");
    let (_, v) = call!(
        svc,
        patch(
            &format!("{uri}/status"),
            STRATEGIC,
            json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}]}})
        )
    );
    assert_eq!(v["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(v["status"]["phase"], "Pending");
    // A stale resourceVersion in the patch is a precondition.
    let (code, v) = call!(
        svc,
        patch(
            &uri,
            MERGE,
            json!({"metadata": {"resourceVersion": "1", "labels": {"z": "1"}}})
        )
    );
    assert_eq!((code, v["reason"].as_str()), (409, Some("Conflict")));

    let (code, _) = call!(
        svc,
        patch(
            &uri,
            JSON_PATCH,
            json!([{"op": "test", "path": "/kind", "value": "Node"}])
        )
    );
    assert_eq!(code, 422);
    let (code, v) = call!(svc, patch(&uri, "application/apply-patch+yaml", json!({})));
    assert_eq!(
        (code, v["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let (code, _) = call!(svc, patch(&format!("{PODS}/nope"), MERGE, json!({})));
    assert_eq!(code, 404);

    let devices = "/apis/devices.kubeedge.io/v1beta1/namespaces/team/devices";
    let (code, _) = call!(
        svc,
        post(
            devices,
            json!({"metadata": {"name": "d"}, "spec": {"a": 1}})
        )
    );
    assert_eq!(code, 201);
    let (code, _) = call!(
        svc,
        patch(
            &format!("{devices}/d"),
            STRATEGIC,
            json!({"spec": {"a": 2}})
        )
    );
    assert_eq!(code, 415, "no strategic merge for custom resources");
    let (code, v) = call!(
        svc,
        patch(&format!("{devices}/d"), MERGE, json!({"spec": {"a": 2}}))
    );
    assert_eq!((code, v["spec"]["a"].as_i64()), (200, Some(2)));
}
