//! Request paths, as kube-apiserver reads them (`RequestInfoResolver`):
//! discovery documents under `/api` and `/apis`, and resource paths
//! `[/watch]/[namespaces/{ns}/]{resource}[/{name}[/{subresource}]]` under
//! `/api/v1` and `/apis/{group}/{version}`. Pure: [`parse`] reads the path,
//! [`ResourcePath::resolve`] checks it against the served [`Resources`].

use super::error::{RestError, Result};
use crate::resource::{ResourceInfo, Resources};

/// What a path under `/api` or `/apis` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/api`: APIVersions.
    CoreVersions,
    /// `/apis`: APIGroupList.
    Groups,
    /// `/apis/{group}`: APIGroup.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`: APIResourceList.
    Resources {
        /// Empty for the core group.
        group: String,
        /// The version.
        version: String,
    },
    /// A collection, an object or a subresource.
    Resource(ResourcePath),
}

/// A resource path, before it is checked against the served resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// Under the legacy `/watch/` prefix.
    pub watch: bool,
}

/// A resource path checked against the served resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub info: ResourceInfo,
    /// `None` for cluster-scoped resources and cluster-wide collections.
    pub namespace: Option<String>,
    /// `None` for the collection.
    pub name: Option<String>,
    /// The `status` subresource.
    pub status: bool,
    /// Under the legacy `/watch/` prefix.
    pub watch: bool,
}

/// Subresources of a namespace object itself (`namespaces/{n}/status`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Reads a request path (still percent-encoded).
pub(crate) fn parse(path: &str) -> Result<Route> {
    let segments = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(decode)
        .collect::<Result<Vec<_>>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["api"] => Ok(Route::CoreVersions),
        ["api", "v1"] => Ok(Route::Resources {
            group: String::new(),
            version: "v1".to_owned(),
        }),
        ["api", "v1", rest @ ..] => resource_path("", "v1", rest),
        ["apis"] => Ok(Route::Groups),
        ["apis", group] => Ok(Route::Group((*group).to_owned())),
        ["apis", group, version] => Ok(Route::Resources {
            group: (*group).to_owned(),
            version: (*version).to_owned(),
        }),
        ["apis", group, version, rest @ ..] => resource_path(group, version, rest),
        _ => Err(RestError::NoRoute),
    }
}

fn resource_path(group: &str, version: &str, parts: &[&str]) -> Result<Route> {
    let (watch, mut parts) = match parts {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, parts),
    };
    let mut namespace = None;
    if let ["namespaces", ns, rest @ ..] = parts {
        // `namespaces/{n}` and `namespaces/{n}/status` are the namespace
        // object itself; anything else is a resource in that namespace.
        if !rest.is_empty() && !NAMESPACE_SUBRESOURCES.contains(&rest[0]) {
            namespace = Some((*ns).to_owned());
            parts = rest;
        }
    }
    let (resource, name, subresource) = match parts {
        [resource] => (resource, None, None),
        [resource, name] => (resource, Some(*name), None),
        [resource, name, sub] => (resource, Some(*name), Some(*sub)),
        _ => return Err(RestError::NoRoute),
    };
    if [Some(*resource), name, subresource, namespace.as_deref()]
        .iter()
        .flatten()
        .any(|s| s.is_empty())
    {
        return Err(RestError::NoRoute);
    }
    Ok(Route::Resource(ResourcePath {
        group: group.to_owned(),
        version: version.to_owned(),
        resource: (*resource).to_owned(),
        namespace,
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
        watch,
    }))
}

impl ResourcePath {
    /// Checks the path against the served resources: the resource exists,
    /// its scope fits the path, and the subresource is `status` where the
    /// resource has one.
    pub(crate) fn resolve(self, resources: &Resources) -> Result<Target> {
        let info = resources
            .get(&self.group, &self.version, &self.resource)
            .ok_or(RestError::NoRoute)?;
        let scope_fits = match (&self.namespace, &self.name) {
            (Some(_), _) => info.namespaced,
            (None, Some(_)) => !info.namespaced,
            (None, None) => true,
        };
        let status = match self.subresource.as_deref() {
            None => false,
            Some("status") if info.status && !self.watch => true,
            Some(_) => return Err(RestError::NoRoute),
        };
        if !scope_fits {
            return Err(RestError::NoRoute);
        }
        Ok(Target {
            info,
            namespace: self.namespace,
            name: self.name,
            status,
            watch: self.watch,
        })
    }
}

/// Percent-decodes one path segment.
fn decode(segment: &str) -> Result<String> {
    let bad = || RestError::BadRequest(format!("invalid path segment {segment:?}"));
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::edge_resources;

    fn resource(path: &str) -> ResourcePath {
        match parse(path).unwrap() {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    fn target(path: &str) -> Result<Target> {
        resource(path).resolve(&Resources::new(edge_resources()))
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(parse("/api").unwrap(), Route::CoreVersions);
        assert_eq!(parse("/api/").unwrap(), Route::CoreVersions);
        assert_eq!(parse("/apis").unwrap(), Route::Groups);
        assert_eq!(
            parse("/apis/devices.kubeedge.io").unwrap(),
            Route::Group("devices.kubeedge.io".into())
        );
        assert_eq!(
            parse("/api/v1").unwrap(),
            Route::Resources {
                group: String::new(),
                version: "v1".into()
            }
        );
        assert_eq!(
            parse("/apis/coordination.k8s.io/v1").unwrap(),
            Route::Resources {
                group: "coordination.k8s.io".into(),
                version: "v1".into()
            }
        );
        assert!(matches!(parse("/api/v2"), Err(RestError::NoRoute)));
        assert!(matches!(parse("/api/v2/pods"), Err(RestError::NoRoute)));
        assert!(matches!(parse("/foo"), Err(RestError::NoRoute)));
    }

    #[test]
    fn resource_paths() {
        let t = target("/api/v1/pods").unwrap();
        assert_eq!(
            (t.info.kind.as_str(), t.namespace, t.name),
            ("Pod", None, None)
        );
        let t = target("/api/v1/namespaces/default/pods/web/status").unwrap();
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert!(t.status && !t.watch);
        let t = target("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(t.info.kind, "Namespace");
        assert_eq!(
            (t.namespace, t.name.as_deref()),
            (None, Some("kube-system"))
        );
        let t = target("/api/v1/namespaces/kube-system/status").unwrap();
        assert!(t.status && t.namespace.is_none());
        let t = target("/api/v1/namespaces").unwrap();
        assert!(t.name.is_none());
        let t = target("/api/v1/nodes/edge-1").unwrap();
        assert_eq!(t.name.as_deref(), Some("edge-1"));
        let t = target("/api/v1/watch/namespaces/ns/pods/p").unwrap();
        assert!(t.watch);
        assert_eq!(t.name.as_deref(), Some("p"));
        let t = target("/apis/devices.kubeedge.io/v1beta1/namespaces/ns/devices/d").unwrap();
        assert_eq!(t.info.kind, "Device");
        let t = target("/apis/coordination.k8s.io/v1/watch/leases").unwrap();
        assert!(t.watch && t.namespace.is_none());
        let t = target("/api/v1/namespaces/ns/configmaps/a%3Ab").unwrap();
        assert_eq!(t.name.as_deref(), Some("a:b"));
    }

    #[test]
    fn paths_that_do_not_resolve() {
        for path in [
            "/api/v1/widgets",
            "/api/v1/pods/web",            // namespaced, no namespace
            "/api/v1/namespaces/ns/nodes", // cluster-scoped in a namespace
            "/api/v1/namespaces/ns/configmaps/c/status", // no status subresource
            "/api/v1/namespaces/ns/pods/p/log",
            "/api/v1/watch/namespaces/ns/pods/p/status",
            "/apis/devices.kubeedge.io/v1alpha1/devices",
        ] {
            assert!(matches!(target(path), Err(RestError::NoRoute)), "{path}");
        }
        for path in [
            "/api/v1/namespaces/ns/pods/p/status/x",
            "/api/v1/namespaces//pods",
        ] {
            assert!(matches!(parse(path), Err(RestError::NoRoute)), "{path}");
        }
        assert!(matches!(
            parse("/api/v1/namespaces/ns/pods/%zz"),
            Err(RestError::BadRequest(_))
        ));
        assert!(matches!(
            parse("/api/v1/pods/%ff"),
            Err(RestError::BadRequest(_))
        ));
    }
}
