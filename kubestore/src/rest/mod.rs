//! A Kubernetes-style HTTP API on actix-web over a [`Store`] and the
//! [`Resources`] it serves: discovery, get, list and watch (with label and
//! field selectors, Tables for kubectl, PartialObjectMetadata), create,
//! update, patch (merge, JSON and strategic merge), delete and
//! deletecollection, and Status errors as kube-apiserver sends them. The
//! edge MetaServer mounts it read-only; the cloud's embedded API mounts it
//! writable.
//!
//! ```no_run
//! # fn demo(store: kubestore::Store) -> std::io::Result<()> {
//! use actix_web::{App, HttpServer};
//! use kubestore::rest::{configure, RestConfig};
//! use kubestore::{edge_resources, Resources};
//!
//! let rest = RestConfig::new(store, Resources::new(edge_resources()), "v1.33.0-apiary-0.1.0");
//! let server = HttpServer::new(move || {
//!     let rest = rest.clone();
//!     App::new().configure(move |c| configure(c, rest))
//! })
//! .bind("127.0.0.1:10550")?
//! .run();
//! # drop(server); Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `path.rs`: request paths to routes and resource targets (pure).
//! - `params.rs`: query parameters and `Accept` negotiation (pure).
//! - `discovery.rs`: `/version`, `/api`, `/apis`, resource lists, health.
//! - `read.rs`: get and list.
//! - `watch.rs`: the streaming watch.
//! - `write.rs`: the write verbs (refused when read-only), body cap, what
//!   they share; `create.rs`, `update.rs`, `patch.rs` (with
//!   `strategic.rs` and `merge_keys.rs`), `delete.rs`: one verb each.
//! - `openapi.rs`: type-less OpenAPI documents, for kubectl's validation.
//! - `protobuf.rs`, `protobuf_kinds.rs`: protobuf request bodies of the
//!   kinds kubectl's typed commands create, read as JSON.
//! - `render.rs`: bodies in the negotiated representation.
//! - `table.rs`, `printers.rs`: Tables and their per-kind columns.
//! - `error.rs`: [`RestError`], rendered as a Status.

mod create;
mod delete;
mod discovery;
mod error;
mod merge_keys;
mod openapi;
mod params;
mod patch;
mod path;
mod printers;
mod protobuf;
mod protobuf_kinds;
mod read;
mod render;
mod strategic;
mod table;
mod update;
mod watch;
mod write;

use std::time::Duration;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use k8s_openapi::apimachinery::pkg::version::Info;
use tokio_util::sync::CancellationToken;

pub use discovery::version_info;
pub use error::{RestError, Result};
pub use write::MAX_BODY_BYTES;

use crate::resource::Resources;
use crate::store::Store;
use params::{Output, Params};
use path::Route;
use render::Render;

/// Watch timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// How long a watch without `timeoutSeconds` lasts (kube-apiserver:
    /// 30 to 60 minutes); clients then watch again.
    pub timeout: Duration,
    /// With `allowWatchBookmarks=true`, a BOOKMARK is sent after this long
    /// without an event.
    pub bookmark_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            timeout: Duration::from_secs(30 * 60),
            bookmark_interval: Duration::from_secs(30),
        }
    }
}

/// What the API serves, and how.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// The objects.
    pub store: Store,
    /// The resources served.
    pub resources: Resources,
    /// Refuse writes with 405 (the edge MetaServer).
    pub read_only: bool,
    /// `/version`.
    pub version: Info,
    /// Ends every watch stream when cancelled (server shutdown).
    pub shutdown: CancellationToken,
    /// Watch timing.
    pub watch: WatchOptions,
}

impl RestConfig {
    /// A read-only API over `store` and `resources` whose `/version`
    /// reports `git_version` (e.g. `v1.33.0-apiary-0.1.0`).
    pub fn new(store: Store, resources: Resources, git_version: &str) -> RestConfig {
        RestConfig {
            store,
            resources,
            read_only: true,
            version: version_info(git_version),
            shutdown: CancellationToken::new(),
            watch: WatchOptions::default(),
        }
    }
}

/// Mounts the API on an actix-web app: `/version`, `/healthz`, `/readyz`,
/// `/livez`, `/openapi/v2` and `/openapi/v3` (type-less when writable, 404
/// when read-only), and everything under `/api` and `/apis`.
pub fn configure(cfg: &mut web::ServiceConfig, rest: RestConfig) {
    cfg.app_data(web::Data::new(rest))
        .route("/version", web::get().to(discovery::version))
        .route("/healthz", web::get().to(discovery::health))
        .route("/readyz", web::get().to(discovery::health))
        .route("/livez", web::get().to(discovery::health))
        .route("/openapi/v2", web::get().to(openapi::v2))
        .service(web::resource(["/openapi/v3", "/openapi/v3/{rest:.*}"]).to(openapi::v3))
        .service(
            web::resource(["/api", "/api/{rest:.*}", "/apis", "/apis/{rest:.*}"])
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .to(dispatch),
        );
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// Every request under `/api` and `/apis`.
async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    rest: web::Data<RestConfig>,
) -> Result<HttpResponse> {
    let route = path::parse(req.path())?;
    let Route::Resource(path) = route else {
        if !is_read(req.method()) {
            return Err(RestError::MethodNotAllowed(
                "the server does not allow this method on the requested resource".to_owned(),
            ));
        }
        return discovery::serve(&req, &rest, route);
    };
    let target = path.resolve(&rest.resources)?;
    if !is_read(req.method()) {
        return write::serve(&rest, &req, payload, &target).await;
    }
    let params = Params::parse(req.query_string())?;
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let render = Render {
        info: target.info.clone(),
        output: Output::negotiate(accept)?,
        include: params.include_object,
    };
    if target.watch || params.watch {
        if target.status {
            return Err(RestError::NoRoute);
        }
        watch::serve(&rest, &target, &params, render).await
    } else if target.name.is_some() {
        read::get(&rest, &target, &render).await
    } else {
        read::list(&rest, &target, &params, &render).await
    }
}

#[cfg(test)]
#[macro_use]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod write_tests;
