//! create, update, patch, delete and deletecollection. A read-only server
//! (the edge MetaServer) refuses them with 405 and a Status saying where
//! to make the change; a writable one (the cloud's embedded API) reads the
//! body under [`MAX_BODY_BYTES`] and hands it to the verb's module:
//! `create.rs`, `update.rs` (PUT, and the read-modify-write loop patches
//! share), `patch.rs`, `delete.rs`. This file holds what they share: the
//! body as a JSON object of the right kind, object metadata, responses and
//! the CustomResourceDefinition hook. Dry runs (`dryRun=All`, e.g.
//! `kubectl apply --dry-run=server`, `kubectl diff`) are refused with 400
//! rather than written.

use std::sync::Arc;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Map, Value};

use super::error::{RestError, Result};
use super::path::Target;
use super::table::typed;
use super::{create, delete, patch, protobuf, update, RestConfig};
use crate::resource::{Gvr, ResourceInfo};
use crate::store::{Object, ObjectKey, Outcome, WriteError, WriteOp};

/// The largest request body read (kube-apiserver's limit, 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What the read-only server answers to every write.
const READ_ONLY: &str = "the server does not allow this method on the requested resource: \
                         the edge MetaServer serves the cloud's objects read-only; \
                         change them through the cloud";

/// A write verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    /// The verb of `method` on `target`, if it has one.
    fn of(method: &Method, target: &Target) -> Option<Verb> {
        let named = target.name.is_some();
        match *method {
            Method::POST if !named => Some(Verb::Create),
            Method::PUT if named => Some(Verb::Update),
            Method::PATCH if named => Some(Verb::Patch),
            Method::DELETE if named && !target.status => Some(Verb::Delete),
            Method::DELETE if !named => Some(Verb::DeleteCollection),
            _ => None,
        }
    }
}

/// A request that is not a read.
pub(crate) async fn serve(
    rest: &RestConfig,
    req: &HttpRequest,
    payload: web::Payload,
    target: &Target,
) -> Result<HttpResponse> {
    if rest.read_only {
        return Err(RestError::MethodNotAllowed(READ_ONLY.to_owned()));
    }
    let verb = Verb::of(req.method(), target).ok_or_else(|| {
        RestError::MethodNotAllowed(
            "the server does not allow this method on the requested resource".to_owned(),
        )
    })?;
    if dry_run(req.query_string()) {
        // Refused rather than ignored: ignoring it would write.
        return Err(RestError::BadRequest(
            "dryRun is not supported by this server".to_owned(),
        ));
    }
    let body = read_body(req, payload, MAX_BODY_BYTES).await?;
    let media = media_type(req);
    match verb {
        Verb::Create => create::create(rest, target, &media, &body).await,
        Verb::Update => update::update(rest, target, &media, &body).await,
        Verb::Patch => patch::patch(rest, target, &media, &body).await,
        Verb::Delete => delete::delete(rest, target, &media, &body).await,
        Verb::DeleteCollection => delete::delete_collection(rest, target, req.query_string()).await,
    }
}

/// Whether the query asks for a dry run (`dryRun=All`).
fn dry_run(query: &str) -> bool {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .any(|(key, value)| key == "dryRun" && !value.is_empty())
}

/// The request body, refused past `limit` bytes.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes> {
    let too_large = || RestError::TooLarge { limit };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|err| RestError::BadRequest(format!("reading the body: {err}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The media type of the body, lower case, without parameters; empty when
/// the request has no `Content-Type`.
fn media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A JSON or protobuf body as JSON.
pub(crate) fn decode_body(media: &str, body: &[u8]) -> Result<Value> {
    match media {
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|err| RestError::BadRequest(format!("the body is not valid JSON: {err}"))),
        protobuf::MEDIA => protobuf::decode(body),
        other => Err(RestError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json, {} (not {other})",
            protobuf::MEDIA
        ))),
    }
}

/// The body of a create or update: a JSON object of `info`'s kind and
/// apiVersion (filled in when absent, as kube-apiserver defaults them from
/// the path).
pub(crate) fn object_body(info: &ResourceInfo, media: &str, body: &[u8]) -> Result<Value> {
    let value = decode_body(media, body)?;
    let Value::Object(mut object) = value else {
        return Err(RestError::BadRequest(
            "the body must be a JSON object".to_owned(),
        ));
    };
    let expect = [
        ("apiVersion", info.gvr.api_version()),
        ("kind", info.kind.clone()),
    ];
    for (field, want) in expect {
        match object.get(field) {
            None => {
                object.insert(field.to_owned(), Value::String(want));
            }
            Some(Value::String(got)) if *got == want || got.is_empty() => {
                object.insert(field.to_owned(), Value::String(want));
            }
            Some(got) => {
                return Err(RestError::BadRequest(format!(
                    "the {field} in the data ({}) does not match the expected {field} ({want})",
                    got.as_str().unwrap_or_default()
                )))
            }
        }
    }
    Ok(Value::Object(object))
}

/// `metadata` of `value`, created when missing; `None` when `value` is
/// not an object.
pub(crate) fn metadata_mut(value: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = value
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// `metadata.<field>` of `value` as a string.
pub(crate) fn meta_str<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

/// Sets `field` of `value` (an object) to `new`, or removes it for `None`.
pub(crate) fn set_field(value: &mut Value, field: &str, new: Option<Value>) {
    if let Some(object) = value.as_object_mut() {
        match new {
            Some(new) => object.insert(field.to_owned(), new),
            None => object.remove(field),
        };
    }
}

/// The key of `name` of `target`'s resource in its namespace.
pub(crate) fn key_of(target: &Target, name: &str) -> ObjectKey {
    ObjectKey::new(target.info.gvr.clone(), target.namespace.as_deref(), name)
}

/// The current time as Kubernetes writes timestamps: RFC 3339, seconds, UTC.
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A written object as the response body, with `code`.
pub(crate) fn respond(code: StatusCode, info: &ResourceInfo, object: &Object) -> HttpResponse {
    let typed_json = |o: &Object| {
        let has = |f| o.value.get(f).is_some_and(Value::is_string);
        if has("apiVersion") && has("kind") {
            o.json()
        } else {
            Bytes::from(serde_json::to_vec(&typed(info, &o.value)).unwrap_or_default())
        }
    };
    HttpResponse::build(code)
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache, private"))
        .body(typed_json(object))
}

/// Whether `info` is `apiextensions.k8s.io/v1` CustomResourceDefinitions.
pub(crate) fn is_crd(info: &ResourceInfo) -> bool {
    info.gvr.group == crate::crd::CRD_GROUP && info.gvr.resource == "customresourcedefinitions"
}

/// What every committed create, update or delete of `object` does next:
/// a CustomResourceDefinition changes the served resources.
pub(crate) fn committed(
    rest: &RestConfig,
    info: &ResourceInfo,
    object: &Arc<Object>,
    deleted: bool,
) {
    if is_crd(info) {
        crate::crd::on_change(&rest.resources, &object.value, deleted);
    }
}

/// The label kube-apiserver keeps on every namespace: its name.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// An object about to be stored, as kube-apiserver stores it: a Secret's
/// write-only `stringData` moved into `data` (base64) and its `type`
/// defaulted to `Opaque`; a namespace labelled with its name; a
/// CustomResourceDefinition checked and its status set to accepted and
/// established. Other objects pass unchanged.
pub(crate) fn admit(info: &ResourceInfo, mut value: Value) -> Result<Value> {
    if info.gvr == Gvr::core("secrets") {
        secret_data(&mut value);
    }
    if info.gvr == Gvr::core("namespaces") {
        let name = meta_str(&value, "name").unwrap_or_default().to_owned();
        if let Some(meta) = metadata_mut(&mut value) {
            let labels = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(NAME_LABEL.to_owned(), Value::String(name));
            }
        }
    }
    if !is_crd(info) {
        return Ok(value);
    }
    crate::crd::resource_infos(&value).map_err(|err| RestError::Invalid {
        group: info.gvr.group.clone(),
        kind: info.kind.clone(),
        name: meta_str(&value, "name").unwrap_or_default().to_owned(),
        field: "spec".to_owned(),
        detail: format!("Invalid value: {err}"),
    })?;
    Ok(crate::crd::with_established_status(value))
}

/// Moves a Secret's `stringData` into `data` and defaults its `type`.
fn secret_data(secret: &mut Value) {
    let Some(object) = secret.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(strings)) = object.remove("stringData") {
        let data = object
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if !data.is_object() {
            *data = Value::Object(Map::new());
        }
        if let Some(data) = data.as_object_mut() {
            for (key, text) in strings {
                let text = text.as_str().unwrap_or_default().as_bytes();
                data.insert(key, Value::String(protobuf::base64(text)));
            }
        }
    }
    object
        .entry("type")
        .or_insert_with(|| Value::String("Opaque".to_owned()));
}

/// How often a read-modify-write is tried when the object keeps changing
/// under it (kube-apiserver's `GuaranteedUpdate` retries too).
pub(crate) const ATTEMPTS: usize = 8;

/// Reads `key`, makes a write from the stored object with `write` (which
/// should expect the revision read) and commits it; again, up to
/// [`ATTEMPTS`] times, while the object changes in between. Returns the
/// object read and the write's outcome. 404 if the object is missing, 409
/// if it keeps changing.
pub(crate) async fn at_revision<F>(
    rest: &RestConfig,
    info: &ResourceInfo,
    key: &ObjectKey,
    mut write: F,
) -> Result<(Arc<Object>, Option<Outcome>)>
where
    F: FnMut(&Object) -> Result<WriteOp>,
{
    let gvr = &info.gvr;
    for attempt in 1..=ATTEMPTS {
        let stored = rest
            .store
            .get(key)
            .await?
            .ok_or_else(|| RestError::not_found(&gvr.group, &gvr.resource, &key.name))?;
        let op = write(&stored)?;
        match rest.store.write(vec![op]).await {
            Ok(outcomes) => return Ok((stored, outcomes.into_iter().next())),
            Err(WriteError::Conflict { .. }) if attempt < ATTEMPTS => {
                tracing::debug!(attempt, key = %key.storage_key(), "object changed under the write; again");
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(RestError::conflict(
        &gvr.group,
        &gvr.resource,
        &key.name,
        super::error::MODIFIED,
    ))
}
