//! get and list: one object, or a collection filtered by the label and
//! field selectors, rendered as the client negotiated.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use jiff::Timestamp;

use super::error::{RestError, Result};
use super::params::Params;
use super::path::Target;
use super::render::Render;
use super::RestConfig;
use crate::store::{Object, ObjectKey};

/// A JSON body with the API server's headers.
pub(crate) fn respond(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache, private"))
        .body(body)
}

/// `GET .../{resource}/{name}[/status]`.
pub(crate) async fn get(
    rest: &RestConfig,
    target: &Target,
    render: &Render,
) -> Result<HttpResponse> {
    let name = target.name.as_deref().ok_or(RestError::NoRoute)?;
    let info = &target.info;
    // Every change to this object after the read below is after `before`,
    // so a watch of it may start there (kubectl get NAME -w).
    let before = rest.store.revision();
    let key = ObjectKey::new(info.gvr.clone(), target.namespace.as_deref(), name);
    let object = rest
        .store
        .get(&key)
        .await?
        .ok_or_else(|| RestError::not_found(&info.gvr.group, &info.gvr.resource, name))?;
    let body = render.object(&object, before.max(object.revision), Timestamp::now());
    Ok(respond(body))
}

/// `GET .../{resource}` (namespaced, or across namespaces).
pub(crate) async fn list(
    rest: &RestConfig,
    target: &Target,
    params: &Params,
    render: &Render,
) -> Result<HttpResponse> {
    let (items, revision) = rest
        .store
        .list(&target.info.gvr, target.namespace.as_deref())
        .await?;
    let selected: Vec<&Object> = items
        .iter()
        .map(Arc::as_ref)
        .filter(|o| params.selectors.matches_object(o))
        .collect();
    Ok(respond(render.list(&selected, revision, Timestamp::now())))
}
