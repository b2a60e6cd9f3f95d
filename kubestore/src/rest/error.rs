//! [`RestError`]: everything a request can fail with, rendered as the
//! Kubernetes `Status` object kube-apiserver would send (reason, code,
//! message and, for a missing object, its name, group and resource).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ListMeta, Status, StatusCause, StatusDetails,
};

use crate::selector::SelectorError;
use crate::store::{StoreError, WatchError, WriteError};

/// What kube-apiserver says when an object changed since the client read
/// it (optimistic concurrency).
pub(crate) const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// No such path or resource (kube-apiserver's catch-all 404).
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// The object does not exist.
    #[error("{} \"{name}\" not found", qualified(resource, group))]
    NotFound {
        /// API group; empty for the core group.
        group: String,
        /// Plural resource name, e.g. `pods`.
        resource: String,
        /// The object's name.
        name: String,
    },
    /// A bad query parameter or path.
    #[error("{0}")]
    BadRequest(String),
    /// A bad `labelSelector` or `fieldSelector`.
    #[error("{0}")]
    Selector(#[from] SelectorError),
    /// The method is refused (writes to a read-only server, or writes not
    /// served yet).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// No media type in `Accept` can be served.
    #[error("only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")]
    NotAcceptable,
    /// The request body is over the cap.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// A watch asked for a revision older than the store's history, or
    /// fell behind (HTTP 410 Gone, reason `Expired`): list again.
    #[error("{0}")]
    Expired(#[source] WatchError),
    /// A watch asked for a revision the store has not reached (its
    /// database was replaced, or the client watched another server): 410
    /// `Expired` too, so that clients list again.
    #[error("too large resource version: {requested}, current: {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: u64,
        /// The store's revision.
        current: u64,
    },
    /// The object to create exists already (409).
    #[error("{} \"{name}\" already exists", qualified(resource, group))]
    AlreadyExists {
        /// API group; empty for the core group.
        group: String,
        /// Plural resource name.
        resource: String,
        /// The object's name.
        name: String,
    },
    /// The object changed since the client read it, or a precondition
    /// (uid, resourceVersion) failed (409).
    #[error(
        "Operation cannot be fulfilled on {} \"{name}\": {reason}",
        qualified(resource, group)
    )]
    Conflict {
        /// API group; empty for the core group.
        group: String,
        /// Plural resource name.
        resource: String,
        /// The object's name.
        name: String,
        /// What failed, e.g. [`MODIFIED`].
        reason: String,
    },
    /// The object is not valid (422): `field` of it, and why.
    #[error("{kind} \"{name}\" is invalid: {field}: {detail}")]
    Invalid {
        /// API group; empty for the core group.
        group: String,
        /// The kind, e.g. `Pod`.
        kind: String,
        /// The object's name (may be empty).
        name: String,
        /// The field, e.g. `metadata.name`.
        field: String,
        /// Why, e.g. `Required value: name or generateName is required`.
        detail: String,
    },
    /// A patch could not be applied to the object (422).
    #[error("{0}")]
    PatchFailed(String),
    /// The request is refused (e.g. creating in a terminating namespace).
    #[error("{0}")]
    Forbidden(String),
    /// The body's media type is not served (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The store failed.
    #[error("Internal error occurred: {}", chain(.0))]
    Store(#[from] StoreError),
}

impl From<WriteError> for RestError {
    /// A failed write of the object at the error's key; conflicts are
    /// reported as [`MODIFIED`].
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::AlreadyExists(key) => RestError::AlreadyExists {
                group: key.gvr.group,
                resource: key.gvr.resource,
                name: key.name,
            },
            WriteError::NotFound(key) => {
                RestError::not_found(&key.gvr.group, &key.gvr.resource, &key.name)
            }
            WriteError::Conflict { key, .. } => RestError::Conflict {
                group: key.gvr.group,
                resource: key.gvr.resource,
                name: key.name,
                reason: MODIFIED.to_owned(),
            },
            WriteError::Invalid(_) => {
                RestError::BadRequest("the object is not a JSON object".to_owned())
            }
            WriteError::Store(err) => RestError::Store(err),
        }
    }
}

/// `Result` with [`RestError`].
pub type Result<T, E = RestError> = std::result::Result<T, E>;

/// `pods` or `devices.devices.kubeedge.io`, as Kubernetes names a resource
/// in messages.
fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

/// The `details` of a Status about one object.
fn object_details(group: &str, kind: &str, name: &str) -> StatusDetails {
    StatusDetails {
        name: Some(name.to_owned()),
        group: (!group.is_empty()).then(|| group.to_owned()),
        kind: Some(kind.to_owned()),
        ..StatusDetails::default()
    }
}

/// The `StatusCause` reason of an [`RestError::Invalid`] detail, from the
/// words it starts with, as kube-apiserver's field errors read.
fn cause_reason(detail: &str) -> &'static str {
    if detail.starts_with("Required value") {
        "FieldValueRequired"
    } else if detail.starts_with("Forbidden") {
        "FieldValueForbidden"
    } else {
        "FieldValueInvalid"
    }
}

/// An error and its sources, joined by `: `.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl RestError {
    /// The object `name` of `resource` in `group` is missing.
    pub fn not_found(group: &str, resource: &str, name: &str) -> RestError {
        RestError::NotFound {
            group: group.to_owned(),
            resource: resource.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A [`RestError::Conflict`] on `name` of `resource` in `group`.
    pub fn conflict(group: &str, resource: &str, name: &str, reason: &str) -> RestError {
        RestError::Conflict {
            group: group.to_owned(),
            resource: resource.to_owned(),
            name: name.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// The HTTP status.
    pub fn code(&self) -> StatusCode {
        match self {
            RestError::AlreadyExists { .. } | RestError::Conflict { .. } => StatusCode::CONFLICT,
            RestError::Invalid { .. } | RestError::PatchFailed(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RestError::Forbidden(_) => StatusCode::FORBIDDEN,
            RestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RestError::NoRoute | RestError::NotFound { .. } => StatusCode::NOT_FOUND,
            RestError::BadRequest(_) | RestError::Selector(_) => StatusCode::BAD_REQUEST,
            RestError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            RestError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            RestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RestError::Expired(_) | RestError::FutureRevision { .. } => StatusCode::GONE,
            RestError::Store(StoreError::Closed) => StatusCode::SERVICE_UNAVAILABLE,
            RestError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Kubernetes `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            RestError::AlreadyExists { .. } => "AlreadyExists",
            RestError::Conflict { .. } => "Conflict",
            RestError::Invalid { .. } | RestError::PatchFailed(_) => "Invalid",
            RestError::Forbidden(_) => "Forbidden",
            RestError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            RestError::NoRoute | RestError::NotFound { .. } => "NotFound",
            RestError::BadRequest(_) | RestError::Selector(_) => "BadRequest",
            RestError::MethodNotAllowed(_) => "MethodNotAllowed",
            RestError::NotAcceptable => "NotAcceptable",
            RestError::TooLarge { .. } => "RequestEntityTooLarge",
            RestError::Expired(_) | RestError::FutureRevision { .. } => "Expired",
            RestError::Store(StoreError::Closed) => "ServiceUnavailable",
            RestError::Store(_) => "InternalError",
        }
    }

    /// The `Status` object kube-apiserver would answer with.
    pub fn status(&self) -> Status {
        let details = match self {
            RestError::NotFound {
                group,
                resource,
                name,
            }
            | RestError::AlreadyExists {
                group,
                resource,
                name,
            }
            | RestError::Conflict {
                group,
                resource,
                name,
                ..
            } => Some(object_details(group, resource, name)),
            RestError::Invalid {
                group,
                kind,
                name,
                field,
                detail,
            } => Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    field: Some(field.clone()),
                    message: Some(detail.clone()),
                    reason: Some(cause_reason(detail).to_owned()),
                }]),
                ..object_details(group, kind, name)
            }),
            RestError::NoRoute => Some(StatusDetails::default()),
            _ => None,
        };
        Status {
            code: Some(i32::from(self.code().as_u16())),
            details,
            message: Some(self.to_string()),
            metadata: ListMeta::default(),
            reason: Some(self.reason().to_owned()),
            status: Some("Failure".to_owned()),
        }
    }

    /// The `Status` as JSON.
    pub fn status_json(&self) -> Vec<u8> {
        // A Status of strings and numbers always serialises.
        serde_json::to_vec(&self.status()).unwrap_or_default()
    }
}

impl ResponseError for RestError {
    fn status_code(&self) -> StatusCode {
        self.code()
    }

    fn error_response(&self) -> HttpResponse {
        if self.code().is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        HttpResponse::build(self.code())
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::CACHE_CONTROL, "no-cache, private"))
            .body(self.status_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn status(err: &RestError) -> Value {
        serde_json::from_slice(&err.status_json()).unwrap()
    }

    #[test]
    fn missing_object_as_kube_apiserver_says_it() {
        let err = RestError::not_found("", "pods", "x");
        assert_eq!(
            status(&err),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                   "status": "Failure", "message": "pods \"x\" not found",
                   "reason": "NotFound", "details": {"name": "x", "kind": "pods"},
                   "code": 404})
        );
        let err = RestError::not_found("devices.kubeedge.io", "devices", "d");
        assert_eq!(
            status(&err)["message"],
            "devices.devices.kubeedge.io \"d\" not found"
        );
        assert_eq!(status(&err)["details"]["group"], "devices.kubeedge.io");
    }

    #[test]
    fn codes_and_reasons() {
        let no_route = status(&RestError::NoRoute);
        assert_eq!(
            no_route["message"],
            "the server could not find the requested resource"
        );
        assert_eq!(no_route["details"], json!({}));
        assert_eq!(no_route["code"], 404);
        let bad = RestError::from(SelectorError::Unsupported(">".into()));
        assert_eq!(bad.code(), StatusCode::BAD_REQUEST);
        assert_eq!(status(&bad)["reason"], "BadRequest");
        let gone = RestError::Expired(WatchError::Gone {
            requested: 1,
            oldest: 5,
        });
        assert_eq!(status(&gone)["code"], 410);
        assert_eq!(status(&gone)["reason"], "Expired");
        assert_eq!(status(&gone)["message"], "too old resource version: 1 (5)");
        let closed = RestError::Store(StoreError::Closed);
        assert_eq!(closed.code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            closed.to_string(),
            "Internal error occurred: the store is closed"
        );
        let refused = RestError::MethodNotAllowed("read-only".into());
        assert_eq!(refused.error_response().status(), 405);
    }
}
