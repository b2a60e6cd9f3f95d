//! update (`PUT` on an object or its `status`), and the read-modify-write
//! loop it shares with patch ([`modify`]): read the object, compute the
//! new one, write it on condition that the object is still at the revision
//! read, and start again when it is not (kube-apiserver's
//! `GuaranteedUpdate`). A client's own `resourceVersion` is checked against
//! the object read, so a stale one is a 409 Conflict and is not retried.
//!
//! What the client may change ([`updated`]): through the main resource
//! everything but the identity (`name`, `namespace`, `uid`,
//! `creationTimestamp`) and, where there is a status subresource, the
//! status; through `status` only the status. `metadata.generation` goes up
//! when the spec changes. Content equal to the stored object is no change:
//! the store leaves it (and its resourceVersion) alone.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::Value;

use super::error::{RestError, Result, MODIFIED};
use super::path::Target;
use super::write::{
    admit, at_revision, committed, key_of, meta_str, metadata_mut, object_body, respond, set_field,
};
use super::RestConfig;
use crate::resource::ResourceInfo;
use crate::store::{Expect, Object, Outcome, WriteOp};

/// Metadata only the server sets, kept from the stored object.
const IDENTITY: [&str; 6] = [
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// `PUT .../{resource}/{name}[/status]`.
pub(crate) async fn update(
    rest: &RestConfig,
    target: &Target,
    media: &str,
    body: &[u8],
) -> Result<HttpResponse> {
    let info = &target.info;
    let name = target.name.as_deref().ok_or(RestError::NoRoute)?;
    let incoming = object_body(info, media, body)?;
    match meta_str(&incoming, "name") {
        Some(given) if given != name => {
            return Err(RestError::BadRequest(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )))
        }
        _ => {}
    }
    if let (Some(url), Some(given)) = (&target.namespace, meta_str(&incoming, "namespace")) {
        if !given.is_empty() && given != url {
            return Err(RestError::BadRequest(format!(
                "the namespace of the object ({given}) does not match the namespace on the URL ({url})"
            )));
        }
    }
    let precondition = client_revision(&incoming)?;
    let uid = meta_str(&incoming, "uid").map(str::to_owned);
    let object = modify(rest, target, |stored| {
        if let Some(rv) = precondition {
            check_revision(target, name, rv, stored.revision)?;
        }
        if uid.as_deref().is_some_and(|u| Some(u) != stored.uid()) {
            return Err(RestError::conflict(
                &info.gvr.group,
                &info.gvr.resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                    uid.as_deref().unwrap_or_default(),
                    stored.uid().unwrap_or_default()
                ),
            ));
        }
        Ok(updated(
            info,
            target.status,
            &stored.value,
            incoming.clone(),
        ))
    })
    .await?;
    Ok(respond(StatusCode::OK, info, &object))
}

/// `metadata.resourceVersion` of a client's object, if it set one.
pub(crate) fn client_revision(value: &Value) -> Result<Option<u64>> {
    match meta_str(value, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(rv) => rv
            .parse()
            .map(Some)
            .map_err(|_| RestError::BadRequest(format!("invalid resource version \"{rv}\""))),
    }
}

/// A 409 unless the client's revision `rv` is the stored one.
pub(crate) fn check_revision(target: &Target, name: &str, rv: u64, stored: u64) -> Result<()> {
    if rv == stored {
        Ok(())
    } else {
        let gvr = &target.info.gvr;
        Err(RestError::conflict(
            &gvr.group,
            &gvr.resource,
            name,
            MODIFIED,
        ))
    }
}

/// Reads `target`'s object, computes its next state with `next` and writes
/// it at the revision read, again while the object changes in between.
/// The stored object when nothing changed.
pub(crate) async fn modify<F>(
    rest: &RestConfig,
    target: &Target,
    mut next: F,
) -> Result<Arc<Object>>
where
    F: FnMut(&Object) -> Result<Value>,
{
    let info = &target.info;
    let name = target.name.as_deref().ok_or(RestError::NoRoute)?;
    let key = key_of(target, name);
    let (stored, outcome) = at_revision(rest, info, &key, |stored| {
        Ok(WriteOp::Put {
            key: key.clone(),
            value: admit(info, next(stored)?)?,
            origin: None,
            expect: Expect::Revision(stored.revision),
        })
    })
    .await?;
    Ok(match outcome {
        Some(Outcome::Updated(object) | Outcome::Created(object)) => {
            committed(rest, info, &object, false);
            object
        }
        _ => stored,
    })
}

/// The object to store when a client sends `incoming` for `stored`
/// (through `status` when `status_only`).
pub(crate) fn updated(
    info: &ResourceInfo,
    status_only: bool,
    stored: &Value,
    mut incoming: Value,
) -> Value {
    if status_only {
        let mut out = stored.clone();
        set_field(&mut out, "status", incoming.get("status").cloned());
        return out;
    }
    if info.status {
        set_field(&mut incoming, "status", stored.get("status").cloned());
    }
    for field in ["apiVersion", "kind"] {
        set_field(&mut incoming, field, stored.get(field).cloned());
    }
    let stored_meta = stored.get("metadata");
    let generation = stored_meta
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_u64);
    let generation = if stored.get("spec") != incoming.get("spec") {
        Some(generation.unwrap_or(1) + 1)
    } else {
        generation
    };
    if let Some(meta) = metadata_mut(&mut incoming) {
        for field in IDENTITY {
            match stored_meta.and_then(|m| m.get(field)) {
                Some(kept) => meta.insert(field.to_owned(), kept.clone()),
                None => meta.remove(field),
            };
        }
        match generation {
            Some(g) => meta.insert("generation".to_owned(), Value::from(g)),
            None => meta.remove("generation"),
        };
    }
    incoming
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{edge_info as info, Gvr};
    use serde_json::json;

    fn stored() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "generation": 3,
                            "creationTimestamp": "2024-01-01T00:00:00Z", "resourceVersion": "7"},
               "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn main_resource_keeps_identity_and_status() {
        let incoming = json!({"metadata": {"name": "p", "uid": "other", "labels": {"a": "b"}},
                              "spec": {"nodeName": "n2"}, "status": {"phase": "Failed"}});
        let out = updated(&info("pods"), false, &stored(), incoming);
        assert_eq!(out["metadata"]["uid"], "u1");
        assert_eq!(out["metadata"]["namespace"], "ns");
        assert_eq!(out["metadata"]["creationTimestamp"], "2024-01-01T00:00:00Z");
        assert_eq!(out["metadata"]["labels"]["a"], "b");
        assert_eq!(out["metadata"]["generation"], 4);
        assert_eq!(out["spec"]["nodeName"], "n2");
        assert_eq!(out["status"]["phase"], "Running");
        assert_eq!(out["kind"], "Pod");
        // Same spec: same generation.
        let same = updated(&info("pods"), false, &stored(), stored());
        assert_eq!(same, stored());
    }

    #[test]
    fn status_changes_only_status() {
        let incoming = json!({"metadata": {"name": "p", "labels": {"a": "b"}},
                              "spec": {"nodeName": "n2"}, "status": {"phase": "Failed"}});
        let out = updated(&info("pods"), true, &stored(), incoming);
        let mut want = stored();
        want["status"]["phase"] = json!("Failed");
        assert_eq!(out, want);
    }

    #[test]
    fn without_status_subresource_everything_changes() {
        let cm = json!({"metadata": {"name": "c", "uid": "u"}, "data": {"a": "1"}});
        let out = updated(
            &info("configmaps"),
            false,
            &cm,
            json!({"metadata": {"name": "c"}, "data": {"a": "2"}, "status": {"x": 1}}),
        );
        assert_eq!(out["data"]["a"], "2");
        assert_eq!(out["status"]["x"], 1);
        assert_eq!(out["metadata"]["uid"], "u");
        assert!(out["metadata"].get("generation").is_none());
        assert_eq!(info("configmaps").gvr, Gvr::core("configmaps"));
    }

    #[test]
    fn client_revisions() {
        assert_eq!(client_revision(&json!({})).unwrap(), None);
        assert_eq!(
            client_revision(&json!({"metadata": {"resourceVersion": "12"}})).unwrap(),
            Some(12)
        );
        assert!(client_revision(&json!({"metadata": {"resourceVersion": "x"}})).is_err());
    }
}
