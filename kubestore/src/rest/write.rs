//! create, update, patch, delete and deletecollection. A read-only server
//! (the edge MetaServer) refuses them with 405 and a Status saying where
//! to make the change; a writable one reads the body under
//! [`MAX_BODY_BYTES`] and, until the write path lands, refuses too.
//! Each verb has its own function for that path to fill in.

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::error::{RestError, Result};
use super::path::Target;
use super::RestConfig;

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
            Method::DELETE if named => Some(Verb::Delete),
            Method::DELETE if !target.status => Some(Verb::DeleteCollection),
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
    let body = read_body(req, payload, MAX_BODY_BYTES).await?;
    match verb {
        Verb::Create => create(rest, target, body).await,
        Verb::Update => update(rest, target, body).await,
        Verb::Patch => patch(rest, target, body).await,
        Verb::Delete | Verb::DeleteCollection => delete(rest, target, verb, body).await,
    }
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

fn not_served(verb: &str) -> RestError {
    RestError::MethodNotAllowed(format!(
        "the server does not allow this method on the requested resource: {verb} is not served yet"
    ))
}

async fn create(_rest: &RestConfig, _target: &Target, _body: Bytes) -> Result<HttpResponse> {
    Err(not_served("create"))
}

async fn update(_rest: &RestConfig, _target: &Target, _body: Bytes) -> Result<HttpResponse> {
    Err(not_served("update"))
}

async fn patch(_rest: &RestConfig, _target: &Target, _body: Bytes) -> Result<HttpResponse> {
    Err(not_served("patch"))
}

async fn delete(
    _rest: &RestConfig,
    _target: &Target,
    verb: Verb,
    _body: Bytes,
) -> Result<HttpResponse> {
    Err(not_served(if verb == Verb::Delete {
        "delete"
    } else {
        "deletecollection"
    }))
}
