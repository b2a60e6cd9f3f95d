//! patch (`PATCH` on an object or its `status`), by `Content-Type`:
//! `application/merge-patch+json` (RFC 7386), `application/json-patch+json`
//! (RFC 6902), both with the `json-patch` crate, and
//! `application/strategic-merge-patch+json` for the built-in types
//! (`strategic.rs`; custom resources refuse it with 415 as kube-apiserver
//! does). Server-side apply (`application/apply-patch+yaml`) is not served:
//! 415, so `kubectl apply --server-side` says so and plain `kubectl apply`
//! (client-side, strategic or merge patches) works.
//!
//! The patch is applied to the stored object inside the read-modify-write
//! loop of `update.rs` (so a concurrent change makes it start again), then
//! the result goes through the same rules as an update: the identity never
//! changes, the status only through `status`. A `resourceVersion` the patch
//! sets is a precondition (409 when stale); a result equal to the stored
//! object changes nothing and keeps its resourceVersion, which is what
//! makes `kubectl apply` of an unchanged file a no-op.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::Value;

use super::error::{RestError, Result};
use super::path::Target;
use super::strategic;
use super::table::typed;
use super::update::{check_revision, client_revision, modify, updated};
use super::write::respond;
use super::RestConfig;
use crate::resource::ResourceInfo;

/// The patch media types this server applies, as kube-apiserver lists
/// them for custom resources.
const ACCEPTED: &str = "application/json-patch+json, application/merge-patch+json";

/// Groups of kube-apiserver's own resources (strategic merge patch works
/// for them only); every other group is a custom resource's.
const BUILT_IN_GROUPS: [&str; 5] = ["apps", "autoscaling", "batch", "extensions", "policy"];
/// Built-in groups under `k8s.io`.
const BUILT_IN_K8S_IO: [&str; 18] = [
    "admissionregistration",
    "apiextensions",
    "apiregistration",
    "authentication",
    "authorization",
    "certificates",
    "coordination",
    "discovery",
    "events",
    "flowcontrol.apiserver",
    "internal.apiserver",
    "networking",
    "node",
    "rbac.authorization",
    "resource",
    "scheduling",
    "storage",
    "storagemigration",
];

/// Whether `info` is one of kube-apiserver's own resources rather than a
/// custom resource.
pub(crate) fn built_in(info: &ResourceInfo) -> bool {
    let group = info.gvr.group.as_str();
    group.is_empty()
        || BUILT_IN_GROUPS.contains(&group)
        || group
            .strip_suffix(".k8s.io")
            .is_some_and(|g| BUILT_IN_K8S_IO.contains(&g))
}

/// A kind of patch.
#[derive(Debug, Clone, PartialEq)]
enum Patch {
    /// RFC 7386.
    Merge(Value),
    /// RFC 6902.
    Json(json_patch::Patch),
    /// Kubernetes strategic merge patch.
    Strategic(Value),
}

impl Patch {
    /// Reads a `body` of media type `media` for `info`.
    fn parse(info: &ResourceInfo, media: &str, body: &[u8]) -> Result<Patch> {
        let json = || -> Result<Value> {
            serde_json::from_slice(body)
                .map_err(|err| RestError::BadRequest(format!("the patch is not valid JSON: {err}")))
        };
        match media {
            "application/merge-patch+json" => Ok(Patch::Merge(json()?)),
            "application/json-patch+json" => serde_json::from_value(json()?)
                .map(Patch::Json)
                .map_err(|err| RestError::BadRequest(format!("invalid JSON patch: {err}"))),
            "application/strategic-merge-patch+json" if built_in(info) => {
                let patch = json()?;
                if !patch.is_object() {
                    return Err(RestError::BadRequest(
                        "a strategic merge patch must be a JSON object".to_owned(),
                    ));
                }
                Ok(Patch::Strategic(patch))
            }
            "application/strategic-merge-patch+json" => Err(unsupported(&format!(
                "strategic merge patch is not supported for custom resources \
                 ({}); accepted media types include: {ACCEPTED}",
                info.gvr
            ))),
            "application/apply-patch+yaml" => Err(unsupported(&format!(
                "server-side apply is not supported by this server; use client-side \
                 `kubectl apply`. Accepted media types include: {ACCEPTED}, \
                 application/strategic-merge-patch+json"
            ))),
            other => Err(unsupported(&format!(
                "the body of the request was in an unknown format ({other}) - accepted media \
                 types include: {ACCEPTED}, application/strategic-merge-patch+json"
            ))),
        }
    }

    /// `object` patched.
    fn apply(&self, info: &ResourceInfo, mut object: Value) -> Result<Value> {
        match self {
            Patch::Merge(patch) => json_patch::merge(&mut object, patch),
            Patch::Json(patch) => json_patch::patch(&mut object, &patch.0)
                .map_err(|err| RestError::PatchFailed(err.to_string()))?,
            Patch::Strategic(patch) => {
                object = strategic::apply(&object, patch, &info.kind)
                    .map_err(|err| RestError::BadRequest(err.to_string()))?;
            }
        }
        if !object.is_object() {
            return Err(RestError::PatchFailed(
                "the patched object is not a JSON object".to_owned(),
            ));
        }
        Ok(object)
    }
}

fn unsupported(message: &str) -> RestError {
    RestError::UnsupportedMediaType(message.to_owned())
}

/// `PATCH .../{resource}/{name}[/status]`.
pub(crate) async fn patch(
    rest: &RestConfig,
    target: &Target,
    media: &str,
    body: &[u8],
) -> Result<HttpResponse> {
    let info = &target.info;
    let name = target.name.as_deref().ok_or(RestError::NoRoute)?;
    let patch = Patch::parse(info, media, body)?;
    let object = modify(rest, target, |stored| {
        let patched = patch.apply(info, typed(info, &stored.value))?;
        let same_rv = patched.pointer("/metadata/resourceVersion")
            == stored.value.pointer("/metadata/resourceVersion");
        if !same_rv {
            if let Some(rv) = client_revision(&patched)? {
                check_revision(target, name, rv, stored.revision)?;
            }
        }
        Ok(updated(info, target.status, &stored.value, patched))
    })
    .await?;
    Ok(respond(StatusCode::OK, info, &object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{edge_info as info, Gvr};
    use serde_json::json;

    #[test]
    fn built_in_groups() {
        assert!(built_in(&info("pods")));
        assert!(built_in(&info("leases")));
        assert!(!built_in(&info("devices")));
        let mut crd = info("pods");
        crd.gvr = Gvr::new("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        assert!(built_in(&crd));
        crd.gvr = Gvr::new("snapshot.storage.k8s.io", "v1", "volumesnapshots");
        assert!(!built_in(&crd));
    }

    #[test]
    fn media_types() {
        let body = br#"{"metadata": {"labels": {"a": "b"}}}"#;
        let pods = info("pods");
        assert!(matches!(
            Patch::parse(&pods, "application/merge-patch+json", body),
            Ok(Patch::Merge(_))
        ));
        assert!(matches!(
            Patch::parse(&pods, "application/strategic-merge-patch+json", body),
            Ok(Patch::Strategic(_))
        ));
        for (resource, media) in [
            ("devices", "application/strategic-merge-patch+json"),
            ("pods", "application/apply-patch+yaml"),
            ("pods", "application/json"),
        ] {
            let err = Patch::parse(&info(resource), media, body).unwrap_err();
            assert_eq!(err.code(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{media}");
        }
        let err = Patch::parse(&pods, "application/json-patch+json", body).unwrap_err();
        assert_eq!(err.code(), StatusCode::BAD_REQUEST);
        let err = Patch::parse(&pods, "application/merge-patch+json", b"{").unwrap_err();
        assert_eq!(err.code(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn applies() {
        let pods = info("pods");
        let pod = json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"x": 1}});
        let json = Patch::parse(
            &pods,
            "application/json-patch+json",
            br#"[{"op": "replace", "path": "/spec/x", "value": 2}]"#,
        )
        .unwrap();
        assert_eq!(json.apply(&pods, pod.clone()).unwrap()["spec"]["x"], 2);
        let failing = Patch::parse(
            &pods,
            "application/json-patch+json",
            br#"[{"op": "test", "path": "/spec/x", "value": 5}]"#,
        )
        .unwrap();
        let err = failing.apply(&pods, pod.clone()).unwrap_err();
        assert_eq!(err.code(), StatusCode::UNPROCESSABLE_ENTITY);
        let merge = Patch::Merge(json!({"metadata": {"labels": {"a": null}}}));
        assert_eq!(
            merge.apply(&pods, pod.clone()).unwrap()["metadata"]["labels"],
            json!({})
        );
        let whole = Patch::Merge(json!([1]));
        assert!(whole.apply(&pods, pod).is_err());
    }
}
