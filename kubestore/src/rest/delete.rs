//! delete (`DELETE` on an object) and deletecollection (`DELETE` on a
//! collection, with label and field selectors). Deletion is immediate:
//! there are no finalizers to wait for and no graceful pod termination;
//! the answer is the deleted object (kubectl takes it as well as a
//! Status). `DeleteOptions.preconditions` (uid, resourceVersion) are
//! checked against the object read, and the delete is conditional on that
//! revision, so they hold at the moment of deletion.
//!
//! A namespace goes as in kube-apiserver, in the open: it is first marked
//! terminating (`deletionTimestamp`, phase `Terminating`, which refuses
//! new objects in it), then every namespaced object in it, of every served
//! resource, is deleted, then the namespace itself. Deleting a
//! CustomResourceDefinition deletes its custom resources.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};

use super::create::terminating;
use super::error::{RestError, Result};
use super::params::{IncludeObject, Output, Params};
use super::path::Target;
use super::read::respond as respond_body;
use super::render::Render;
use super::update::modify;
use super::write::{
    at_revision, committed, decode_body, is_crd, key_of, metadata_mut, now, respond, set_field,
    ATTEMPTS,
};
use super::RestConfig;
use crate::resource::{Gvr, ResourceInfo};
use crate::store::{Expect, Object, ObjectKey, Outcome, WriteError, WriteOp};

/// Objects deleted per store request when emptying a namespace.
const CHUNK: usize = 256;

/// The part of `DeleteOptions` this server reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    #[serde(default)]
    preconditions: Option<Preconditions>,
}

/// `DeleteOptions.preconditions`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    uid: Option<String>,
    resource_version: Option<String>,
}

impl Preconditions {
    /// A 409 unless `object` meets them.
    fn check(&self, info: &ResourceInfo, object: &Object) -> Result<()> {
        let conflict = |what: &str, want: &str, have: &str| {
            Err(RestError::conflict(
                &info.gvr.group,
                &info.gvr.resource,
                &object.key.name,
                &format!(
                    "Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
                ),
            ))
        };
        if let Some(uid) = self.uid.as_deref().filter(|u| !u.is_empty()) {
            let have = object.uid().unwrap_or_default();
            if uid != have {
                return conflict("UID", uid, have);
            }
        }
        if let Some(rv) = self.resource_version.as_deref().filter(|r| !r.is_empty()) {
            let have = object.revision.to_string();
            if rv != have {
                return conflict("ResourceVersion", rv, &have);
            }
        }
        Ok(())
    }
}

/// `DELETE .../{resource}/{name}`.
pub(crate) async fn delete(
    rest: &RestConfig,
    target: &Target,
    media: &str,
    body: &[u8],
) -> Result<HttpResponse> {
    let info = &target.info;
    let name = target.name.as_deref().ok_or(RestError::NoRoute)?;
    let options: DeleteOptions = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_value(decode_body(media, body)?)
            .map_err(|err| RestError::BadRequest(format!("invalid DeleteOptions: {err}")))?
    };
    let preconditions = options.preconditions.unwrap_or_default();
    let object = if info.gvr == Gvr::core("namespaces") {
        delete_namespace(rest, target, &preconditions).await?
    } else {
        delete_one(rest, info, key_of(target, name), &preconditions).await?
    };
    Ok(respond(StatusCode::OK, info, &object))
}

/// Deletes one object once it meets `preconditions`.
async fn delete_one(
    rest: &RestConfig,
    info: &ResourceInfo,
    key: ObjectKey,
    preconditions: &Preconditions,
) -> Result<Arc<Object>> {
    let (_, outcome) = at_revision(rest, info, &key, |stored| {
        preconditions.check(info, stored)?;
        Ok(WriteOp::Delete {
            key: key.clone(),
            expect: Expect::Revision(stored.revision),
        })
    })
    .await?;
    let Some(Outcome::Deleted(object)) = outcome else {
        return Err(RestError::not_found(
            &info.gvr.group,
            &info.gvr.resource,
            &key.name,
        ));
    };
    if is_crd(info) {
        delete_custom_resources(rest, &object.value).await?;
    }
    committed(rest, info, &object, true);
    Ok(object)
}

/// Marks the namespace terminating, deletes what is in it, then it.
async fn delete_namespace(
    rest: &RestConfig,
    target: &Target,
    preconditions: &Preconditions,
) -> Result<Arc<Object>> {
    let info = &target.info;
    let name = target.name.as_deref().ok_or(RestError::NoRoute)?;
    let key = key_of(target, name);
    for attempt in 1..=ATTEMPTS {
        let marked = modify(rest, target, |stored| {
            preconditions.check(info, stored)?;
            let mut value = stored.value.clone();
            if !terminating(&value) {
                if let Some(meta) = metadata_mut(&mut value) {
                    meta.insert("deletionTimestamp".to_owned(), Value::String(now()));
                }
                let mut status = value.get("status").cloned().unwrap_or_else(|| json!({}));
                status["phase"] = json!("Terminating");
                set_field(&mut value, "status", Some(status));
            }
            Ok(value)
        })
        .await?;
        empty_namespace(rest, name).await?;
        let op = WriteOp::Delete {
            key: key.clone(),
            expect: Expect::Revision(marked.revision),
        };
        match rest.store.write(vec![op]).await {
            Ok(outcomes) => {
                if let Some(Outcome::Deleted(object)) = outcomes.into_iter().next() {
                    tracing::info!(namespace = name, "namespace deleted");
                    return Ok(object);
                }
                return Err(RestError::not_found("", "namespaces", name));
            }
            Err(WriteError::Conflict { .. }) if attempt < ATTEMPTS => {}
            Err(err) => return Err(err.into()),
        }
    }
    Err(RestError::conflict(
        "",
        "namespaces",
        name,
        super::error::MODIFIED,
    ))
}

/// Deletes every object in namespace `ns`, of every namespaced resource.
async fn empty_namespace(rest: &RestConfig, ns: &str) -> Result<()> {
    for info in rest.resources.all().iter().filter(|r| r.namespaced) {
        let (items, _) = rest.store.list(&info.gvr, Some(ns)).await?;
        delete_all(rest, info, &items).await?;
    }
    Ok(())
}

/// Deletes `items` of `info`, each on its own (one may already be gone);
/// the deleted objects.
async fn delete_all(
    rest: &RestConfig,
    info: &ResourceInfo,
    items: &[Arc<Object>],
) -> Result<Vec<Arc<Object>>> {
    let mut deleted = Vec::with_capacity(items.len());
    for chunk in items.chunks(CHUNK) {
        let groups = chunk
            .iter()
            .map(|o| vec![WriteOp::delete(o.key.clone())])
            .collect();
        for result in rest.store.write_groups(groups).await {
            if let Some(Outcome::Deleted(object)) = result?.into_iter().next() {
                if is_crd(info) {
                    Box::pin(delete_custom_resources(rest, &object.value)).await?;
                }
                committed(rest, info, &object, true);
                deleted.push(object);
            }
        }
    }
    Ok(deleted)
}

/// Deletes the objects of every version of the CustomResourceDefinition
/// `crd`.
async fn delete_custom_resources(rest: &RestConfig, crd: &Value) -> Result<()> {
    let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (group, plural, kind) = (
        text("/spec/group"),
        text("/spec/names/plural"),
        text("/spec/names/kind"),
    );
    if group.is_empty() || plural.is_empty() {
        return Ok(());
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str));
    for version in versions {
        let info = ResourceInfo::new(Gvr::new(group, version, plural), kind, true);
        let (items, _) = rest.store.list(&info.gvr, None).await?;
        let deleted = delete_all(rest, &info, &items).await?;
        tracing::info!(resource = %info.gvr, count = deleted.len(), "custom resources deleted");
    }
    Ok(())
}

/// `DELETE .../{resource}` with selectors: the deleted objects, as a list.
pub(crate) async fn delete_collection(
    rest: &RestConfig,
    target: &Target,
    query: &str,
) -> Result<HttpResponse> {
    let info = &target.info;
    if info.gvr == Gvr::core("namespaces") {
        return Err(RestError::MethodNotAllowed(
            "the server does not allow this method on the requested resource: \
             delete namespaces one by one"
                .to_owned(),
        ));
    }
    let params = Params::parse(query)?;
    let (items, _) = rest
        .store
        .list(&info.gvr, target.namespace.as_deref())
        .await?;
    let selected: Vec<Arc<Object>> = items
        .into_iter()
        .filter(|o| params.selectors.matches_object(o))
        .collect();
    let deleted = delete_all(rest, info, &selected).await?;
    let render = Render {
        info: info.clone(),
        output: Output::Json,
        include: IncludeObject::default(),
    };
    let refs: Vec<&Object> = deleted.iter().map(Arc::as_ref).collect();
    Ok(respond_body(render.list(
        &refs,
        rest.store.revision(),
        Timestamp::now(),
    )))
}
