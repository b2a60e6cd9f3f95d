//! Discovery, built from the served [`Resources`]: `/version`, `/api`
//! (APIVersions), `/api/v1` and `/apis/{group}/{version}`
//! (APIResourceList, with `{resource}/status` entries), `/apis`
//! (APIGroupList), `/apis/{group}` (APIGroup) and the health endpoints.
//!
//! Aggregated discovery (`as=APIGroupDiscoveryList`) is not served: the
//! documents go out as plain `application/json`, from which kubectl and
//! client-go fall back to these legacy documents.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use k8s_openapi::apimachinery::pkg::version::Info;
use serde::Serialize;

use super::error::{RestError, Result};
use super::path::Route;
use super::RestConfig;
use crate::resource::{ResourceInfo, Resources};

/// Verbs of every resource.
const READ_VERBS: [&str; 3] = ["get", "list", "watch"];
/// Verbs of a writable resource.
const WRITE_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Version information for `/version` from a `gitVersion` such as
/// `v1.33.0-apiary-0.1.0`: major and minor are read from it.
pub fn version_info(git_version: &str) -> Info {
    let mut numbers = git_version.trim_start_matches('v').split(['.', '-', '+']);
    let mut next = || numbers.next().unwrap_or_default().to_owned();
    let (major, minor) = (next(), next());
    Info {
        major,
        minor,
        git_version: git_version.to_owned(),
        git_commit: String::new(),
        git_tree_state: "clean".to_owned(),
        build_date: String::new(),
        go_version: "rust".to_owned(),
        compiler: "rustc".to_owned(),
        platform: format!("{}/{}", std::env::consts::OS, go_arch()),
        ..Info::default()
    }
}

/// The architecture as Go names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// JSON with the API server's headers.
pub(crate) fn json<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache, private"))
        .json(value)
}

/// `GET /version`.
pub(crate) async fn version(rest: web::Data<RestConfig>) -> HttpResponse {
    json(&rest.version)
}

/// `/healthz`, `/readyz`, `/livez`.
pub(crate) async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

/// A discovery document.
pub(crate) fn serve(req: &HttpRequest, rest: &RestConfig, route: Route) -> Result<HttpResponse> {
    match route {
        Route::CoreVersions => Ok(json(&APIVersions {
            versions: vec!["v1".to_owned()],
            server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
                client_cidr: "0.0.0.0/0".to_owned(),
                server_address: req.connection_info().host().to_owned(),
            }],
        })),
        Route::Groups => Ok(json(&group_list(&rest.resources))),
        Route::Group(name) => group_list(&rest.resources)
            .groups
            .into_iter()
            .find(|g| g.name == name)
            .map(|g| json(&g))
            .ok_or(RestError::NoRoute),
        Route::Resources { group, version } => {
            resource_list(&rest.resources, &group, &version, rest.read_only).map(|l| json(&l))
        }
        Route::Resource(_) => Err(RestError::NoRoute),
    }
}

/// The groups other than core.
fn group_list(resources: &Resources) -> APIGroupList {
    let groups = resources
        .groups()
        .into_iter()
        .map(|(name, versions)| {
            let versions: Vec<GroupVersionForDiscovery> = versions
                .into_iter()
                .map(|version| GroupVersionForDiscovery {
                    group_version: format!("{name}/{version}"),
                    version,
                })
                .collect();
            APIGroup {
                preferred_version: versions.first().cloned(),
                name,
                versions,
                server_address_by_client_cidrs: None,
            }
        })
        .collect();
    APIGroupList { groups }
}

/// The resources of a group version; the core `v1` always exists.
fn resource_list(
    resources: &Resources,
    group: &str,
    version: &str,
    read_only: bool,
) -> Result<APIResourceList> {
    let infos = resources.in_group_version(group, version);
    if infos.is_empty() && !(group.is_empty() && version == "v1") {
        return Err(RestError::NoRoute);
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(APIResourceList {
        group_version,
        resources: infos
            .iter()
            .flat_map(|info| api_resources(info, read_only))
            .collect(),
    })
}

/// The discovery entries of one resource: itself and its status.
fn api_resources(info: &ResourceInfo, read_only: bool) -> Vec<APIResource> {
    let verbs = |all: &[&str]| all.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    let mut entries = vec![APIResource {
        name: info.gvr.resource.clone(),
        singular_name: info.singular.clone(),
        namespaced: info.namespaced,
        kind: info.kind.clone(),
        verbs: verbs(if read_only { &READ_VERBS } else { &WRITE_VERBS }),
        short_names: (!info.short_names.is_empty()).then(|| info.short_names.clone()),
        ..APIResource::default()
    }];
    if info.status {
        entries.push(APIResource {
            name: format!("{}/status", info.gvr.resource),
            singular_name: String::new(),
            namespaced: info.namespaced,
            kind: info.kind.clone(),
            verbs: verbs(if read_only {
                &["get"]
            } else {
                &["get", "patch", "update"]
            }),
            ..APIResource::default()
        });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::edge_resources;
    use serde_json::{json, Value};

    fn to_json<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn version_from_git_version() {
        let info = version_info("v1.33.0-apiary-0.1.0");
        assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "33"));
        let v = to_json(&info);
        assert_eq!(v["gitVersion"], "v1.33.0-apiary-0.1.0");
        assert!(v["platform"].as_str().unwrap().contains('/'));
    }

    #[test]
    fn core_resources() {
        let r = Resources::new(edge_resources());
        let list = to_json(&resource_list(&r, "", "v1", true).unwrap());
        assert_eq!(list["kind"], "APIResourceList");
        assert_eq!(list["groupVersion"], "v1");
        let entries = list["resources"].as_array().unwrap();
        let pods = entries.iter().find(|e| e["name"] == "pods").unwrap();
        assert_eq!(
            pods,
            &json!({"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                    "verbs": ["get", "list", "watch"], "shortNames": ["po"]})
        );
        let status = entries.iter().find(|e| e["name"] == "pods/status").unwrap();
        assert_eq!(status["verbs"], json!(["get"]));
        assert!(entries.iter().all(|e| e["name"] != "configmaps/status"));
        let nodes = entries.iter().find(|e| e["name"] == "nodes").unwrap();
        assert_eq!(nodes["namespaced"], false);

        let writable = to_json(&resource_list(&r, "", "v1", false).unwrap());
        assert_eq!(
            writable["resources"][0]["verbs"].as_array().unwrap().len(),
            8
        );
        assert!(resource_list(&r, "nope.io", "v1", true).is_err());
        assert!(resource_list(&Resources::default(), "", "v1", true).is_ok());
    }

    #[test]
    fn groups() {
        let r = Resources::new(edge_resources());
        let list = to_json(&group_list(&r));
        assert_eq!(list["kind"], "APIGroupList");
        let devices = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "devices.kubeedge.io")
            .unwrap();
        assert_eq!(
            devices["preferredVersion"],
            json!({"groupVersion": "devices.kubeedge.io/v1beta1", "version": "v1beta1"})
        );
        let list = to_json(&resource_list(&r, "devices.kubeedge.io", "v1beta1", true).unwrap());
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["devices", "devices/status", "devicemodels"]);
    }
}
