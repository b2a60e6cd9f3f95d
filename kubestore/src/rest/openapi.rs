//! `/openapi/v2` and `/openapi/v3` of the writable API: documents that
//! describe no types, which is what lets `kubectl apply` and `kubectl
//! create` validate without `--validate=false`.
//!
//! Why: kubectl validates objects before sending them, and fails without
//! OpenAPI (tried against this server):
//!
//! - kubectl 1.20 reads `/openapi/v2` (as protobuf); on a 404 `apply` and
//!   `create -f` fail with "Error from server (NotFound): the server could
//!   not find the requested resource". Given a document without the
//!   object's type it skips validating it ("resource is not present, let's
//!   just skip validation") and `apply` computes its strategic merge patches
//!   from its compiled-in types.
//! - kubectl 1.32 first asks `/openapi/v3` whether the server validates
//!   fields itself (`fieldValidation`); when the v3 discovery lacks the
//!   group version (or is a 404) it checks whether the kind is a CRD and
//!   then falls back to `/openapi/v2`: a 404 there fails with "error
//!   validating data: the server could not find the requested resource";
//!   the type-less document makes it skip client-side validation.
//!
//! So the v2 document is what matters; v3 is the empty discovery
//! `{"paths":{}}` (a 404 works as well). The read-only MetaServer keeps
//! answering 404 (it takes no writes).
//!
//! The v2 document is served as JSON, or as the protobuf of gnostic's
//! `openapi.v2.Document` when asked for protobuf, which is what client-go
//! asks for.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::error::{RestError, Result};
use super::RestConfig;

/// The protobuf media type of OpenAPI v2 documents as kube-apiserver
/// labels them (clients ask for `...spec.v2@v1.0+protobuf`, but Go's
/// media type parser refuses an `@` in a response's `Content-Type`).
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// The document's title.
const TITLE: &str = "Apiary";

/// `GET /openapi/v2`.
pub(crate) async fn v2(req: HttpRequest, rest: web::Data<RestConfig>) -> Result<HttpResponse> {
    if rest.read_only {
        return Err(RestError::NoRoute);
    }
    let version = &rest.version.git_version;
    let wants_protobuf = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("protobuf"));
    let response = if wants_protobuf {
        HttpResponse::Ok()
            .content_type(V2_PROTOBUF)
            .body(v2_protobuf(TITLE, version))
    } else {
        HttpResponse::Ok().json(json!({
            "swagger": "2.0",
            "info": {"title": TITLE, "version": version},
            "paths": {},
            "definitions": {},
        }))
    };
    Ok(response)
}

/// `GET /openapi/v3`: a discovery listing no group versions;
/// `/openapi/v3/...`: 404.
pub(crate) async fn v3(req: HttpRequest, rest: web::Data<RestConfig>) -> Result<HttpResponse> {
    if rest.read_only || req.path().trim_end_matches('/') != "/openapi/v3" {
        return Err(RestError::NoRoute);
    }
    Ok(HttpResponse::Ok().json(json!({"paths": {}})))
}

/// gnostic's `openapi.v2.Document{swagger: "2.0", info: {title, version},
/// paths: {}, definitions: {}}` in protobuf.
fn v2_protobuf(title: &str, version: &str) -> Vec<u8> {
    let mut info = Vec::new();
    field(&mut info, 1, title.as_bytes()); // Info.title
    field(&mut info, 2, version.as_bytes()); // Info.version
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0"); // Document.swagger
    field(&mut doc, 2, &info); // Document.info
    field(&mut doc, 8, &[]); // Document.paths
    field(&mut doc, 9, &[]); // Document.definitions
    doc
}

/// Appends a length-delimited protobuf field.
fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a protobuf varint.
fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_document() {
        let doc = v2_protobuf("T", "v1");
        assert_eq!(
            doc,
            [
                0x0a, 3, b'2', b'.', b'0', // swagger
                0x12, 7, 0x0a, 1, b'T', 0x12, 2, b'v', b'1', // info
                0x42, 0, // paths
                0x4a, 0, // definitions
            ]
        );
        let mut long = Vec::new();
        varint(&mut long, 300);
        assert_eq!(long, [0xac, 0x02]);
    }
}
