//! Bearer-token authentication of the embedded API: an actix-web middleware
//! that lets a request through only with `Authorization: Bearer <admin
//! token>`, and otherwise answers 401 with the `Status` kube-apiserver
//! sends. The health endpoints (`/healthz`, `/livez`, `/readyz`) and
//! `/version` are open, as kube-apiserver serves them to anonymous users.
//! The token is compared in constant time.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, Status};

/// Paths served without a token.
const OPEN_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

/// The token requests must carry (app data of the embedded API).
#[derive(Clone)]
pub(crate) struct AdminToken(pub(crate) String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Whether an `Authorization` header value carries this token.
    fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some((scheme, token)) = split_scheme(value) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer") && constant_time_eq(token, self.0.as_bytes())
    }
}

fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some((scheme, token))
}

/// Equal bytes, taking the same time wherever they first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The 401 kube-apiserver answers.
fn unauthorized() -> HttpResponse {
    let status = Status {
        code: Some(401),
        message: Some("Unauthorized".to_owned()),
        metadata: ListMeta::default(),
        reason: Some("Unauthorized".to_owned()),
        status: Some("Failure".to_owned()),
        details: None,
    };
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("kind".to_owned(), "Status".into());
        obj.insert("apiVersion".to_owned(), "v1".into());
    }
    HttpResponse::Unauthorized().json(body)
}

/// The middleware: `App::new().app_data(web::Data::new(token)).wrap(from_fn(require_token))`.
pub(crate) async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let open = OPEN_PATHS.contains(&req.path());
    let allowed = open
        || req
            .app_data::<web::Data<AdminToken>>()
            .is_some_and(|token| {
                token.accepts(
                    req.headers()
                        .get(header::AUTHORIZATION)
                        .map(|v| v.as_bytes()),
                )
            });
    if allowed {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    tracing::debug!(
        method = %req.method(),
        path = req.path(),
        peer = ?req.peer_addr(),
        "embedded API: request without a valid token refused"
    );
    Ok(req.into_response(unauthorized()).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::{test as http, App};

    #[test]
    fn token_checks() {
        let token = AdminToken("s3cret".to_owned());
        assert!(token.accepts(Some(b"Bearer s3cret")));
        assert!(token.accepts(Some(b"bearer  s3cret ")));
        assert!(!token.accepts(Some(b"Bearer s3cre")));
        assert!(!token.accepts(Some(b"Bearer s3cretX")));
        assert!(!token.accepts(Some(b"Basic s3cret")));
        assert!(!token.accepts(Some(b"s3cret")));
        assert!(!token.accepts(Some(b"Bearer ")));
        assert!(!token.accepts(None));
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
    }

    #[actix_web::test]
    async fn requests_without_the_token_get_a_401_status() {
        let app = http::init_service(
            App::new()
                .app_data(web::Data::new(AdminToken("t0ken".to_owned())))
                .wrap(from_fn(require_token))
                .route("/api", web::get().to(|| async { "api" }))
                .route("/healthz", web::get().to(|| async { "ok" })),
        )
        .await;
        let req = http::TestRequest::get().uri("/api").to_request();
        let resp = http::call_service(&app, req).await;
        assert_eq!(resp.status(), 401);
        let body: serde_json::Value = http::read_body_json(resp).await;
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "Unauthorized");
        assert_eq!(body["code"], 401);

        let req = http::TestRequest::get()
            .uri("/api")
            .insert_header((header::AUTHORIZATION, "Bearer wrong"))
            .to_request();
        assert_eq!(http::call_service(&app, req).await.status(), 401);

        let req = http::TestRequest::get()
            .uri("/api")
            .insert_header((header::AUTHORIZATION, "Bearer t0ken"))
            .to_request();
        assert_eq!(http::call_service(&app, req).await.status(), 200);

        let req = http::TestRequest::get().uri("/healthz").to_request();
        assert_eq!(http::call_service(&app, req).await.status(), 200);
    }
}
