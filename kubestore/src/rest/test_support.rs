//! What the in-process API tests (`tests.rs`, `write_tests/`) share: a
//! store in a temporary directory behind a `RestConfig`, actix's test
//! service over it (`app!`), and requests whose answers are read as the
//! status and the body as JSON (`call!`).

use actix_web::dev::ServiceResponse;
use actix_web::test::{self, TestRequest};
use serde_json::Value;

use super::RestConfig;

/// The API over a store in a directory removed on drop.
pub(crate) struct Fixture {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) rest: RestConfig,
}

/// The app over `rest`, as actix's test service.
macro_rules! app {
    ($rest:expr) => {{
        let rest = $rest.clone();
        actix_web::test::init_service(
            actix_web::App::new().configure(move |c| crate::rest::configure(c, rest)),
        )
        .await
    }};
}

/// Sends a request; the status and the body as JSON (or a JSON string).
macro_rules! call {
    ($svc:expr, $req:expr) => {
        crate::rest::test_support::read(
            actix_web::test::call_service(&$svc, $req.to_request()).await,
        )
        .await
    };
}

/// The status and the body as JSON, or as a JSON string if it is not JSON.
pub(crate) async fn read(resp: ServiceResponse) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = test::read_body(resp).await;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (status, value)
}

/// `GET uri`.
pub(crate) fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}
