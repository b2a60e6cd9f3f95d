//! The certificate server's handlers: `/ca.crt` and `/edge.crt`, each
//! refusal a status with a one-line text body saying why.

use std::sync::Arc;

use actix_web::http::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt as _;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{PeerCert, MAX_CSR_BYTES};
use crate::pki::{Pki, PkiError, NODE_CN_PREFIX};

/// Content type of a DER certificate.
const PKIX_CERT: &str = "application/pkix-cert";
/// The header naming the requesting node (KubeEdge's spelling).
const NODE_NAME: &str = "NodeName";

/// Shared by every worker.
pub(super) struct State {
    pub(super) pki: Arc<Pki>,
}

/// A refused request: status and the text body.
struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, body: impl Into<String>) -> Self {
        Refusal(status, body.into())
    }

    fn response(self) -> HttpResponse {
        HttpResponse::build(self.0)
            .content_type("text/plain; charset=utf-8")
            .body(self.1 + "\n")
    }
}

/// `GET /ca.crt`: the CA certificate, DER.
pub(super) async fn ca_crt(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(PKIX_CERT)
        .body(state.pki.ca_der().to_vec())
}

/// Anything else.
pub(super) async fn not_found() -> HttpResponse {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "no such route; try /ca.crt or /edge.crt",
    )
    .response()
}

/// `GET /edge.crt`: a client certificate for the CSR in the body.
pub(super) async fn edge_crt(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    let remote = req
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let node = header(req.headers(), NODE_NAME).unwrap_or_default();
    let peer = req.conn_data::<PeerCert>().cloned();
    match issue(&state.pki, &req, payload, &node, peer.as_ref()).await {
        Ok((der, how)) => {
            tracing::info!(node = %node, %remote, via = how, "issued an edge certificate");
            HttpResponse::Ok().content_type(PKIX_CERT).body(der)
        }
        Err(refusal) => {
            tracing::warn!(node = %node, %remote, status = refusal.0.as_u16(), reason = %refusal.1, "refused an edge certificate request");
            refusal.response()
        }
    }
}

async fn issue(
    pki: &Pki,
    req: &HttpRequest,
    payload: web::Payload,
    node: &str,
    peer: Option<&PeerCert>,
) -> Result<(Vec<u8>, &'static str), Refusal> {
    if node.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "missing NodeName header",
        ));
    }
    let how = authorize(pki, req.headers(), node, peer)?;
    let csr = read_body(req.headers(), payload).await?;
    let der = pki
        .sign_csr(&csr, node, pki.edge_cert_days())
        .map_err(|err| match err {
            PkiError::BadCsr(_) | PkiError::BadNodeName(_) => {
                Refusal::new(StatusCode::BAD_REQUEST, err.to_string())
            }
            PkiError::IdentityMismatch { .. } => {
                Refusal::new(StatusCode::FORBIDDEN, err.to_string())
            }
            other => {
                tracing::error!(error = %other, "cannot sign an edge certificate");
                Refusal::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot sign the certificate",
                )
            }
        })?;
    Ok((der, how))
}

/// A bearer token, checked first when present; otherwise a client
/// certificate of the same node.
fn authorize(
    pki: &Pki,
    headers: &HeaderMap,
    node: &str,
    peer: Option<&PeerCert>,
) -> Result<&'static str, Refusal> {
    if let Some(auth) = header(headers, AUTHORIZATION.as_str()) {
        let Some(jwt) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
        else {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "the Authorization header is not \"Bearer <token>\"",
            ));
        };
        pki.verify_jwt(jwt)
            .map_err(|err| Refusal::new(StatusCode::UNAUTHORIZED, err.to_string()))?;
        return Ok("token");
    }
    let Some(PeerCert(cert)) = peer else {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "no join token (Authorization: Bearer) and no client certificate",
        ));
    };
    match node_of(cert) {
        Some(owner) if owner == node => Ok("client certificate"),
        Some(owner) => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("the client certificate belongs to node {owner:?}, not {node:?}"),
        )),
        None => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("the client certificate's subject is not {NODE_CN_PREFIX}<node>"),
        )),
    }
}

/// The node named by a certificate's CN `system:node:<name>`.
fn node_of(cert: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert).ok()?;
    let mut names = cert.subject().iter_common_name();
    let cn = names.next()?.as_str().ok()?;
    if names.next().is_some() {
        return None;
    }
    cn.strip_prefix(NODE_CN_PREFIX)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// The body, refusing more than [`MAX_CSR_BYTES`] (by length header or count).
async fn read_body(headers: &HeaderMap, mut payload: web::Payload) -> Result<Vec<u8>, Refusal> {
    let too_big = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the certificate request is larger than {MAX_CSR_BYTES} bytes"),
        )
    };
    let declared = header(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_CSR_BYTES as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {err}"),
            )
        })?;
        if body.len() + chunk.len() > MAX_CSR_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad certificate request: the body is empty (send a DER CSR)",
        ));
    }
    Ok(body)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}
