//! Which resources a store serves: group, version, plural name, kind,
//! scope and short names ([`ResourceInfo`]), looked up by API path or by
//! KubeEdge's singular resource type (`pod`, `configmap`, `device`, ...).
//!
//! [`Resources`] is shared and can grow at run time (the cloud's embedded
//! API adds custom resources when their definitions are applied).

use std::sync::{Arc, PoisonError, RwLock};

/// Group, version and plural resource name, e.g. `("", "v1", "pods")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvr {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `pods`.
    pub resource: String,
}

impl Gvr {
    /// A resource of the core group (`/api/v1`).
    pub fn core(resource: &str) -> Gvr {
        Gvr::new("", "v1", resource)
    }

    /// Any resource.
    pub fn new(group: &str, version: &str, resource: &str) -> Gvr {
        Gvr {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: resource.to_owned(),
        }
    }

    /// `apiVersion` of its objects: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group as KubeEdge writes it in `meta_v2` keys (`core` for "").
    pub fn group_or_core(&self) -> &str {
        if self.group.is_empty() {
            "core"
        } else {
            &self.group
        }
    }
}

impl std::fmt::Display for Gvr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.resource)
    }
}

/// One servable resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// Where it lives.
    pub gvr: Gvr,
    /// Kind of its objects, e.g. `Pod`.
    pub kind: String,
    /// Lower-case singular name, e.g. `pod` (KubeEdge's resource type).
    pub singular: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names, e.g. `po`.
    pub short_names: Vec<String>,
    /// Has a `status` subresource.
    pub status: bool,
}

impl ResourceInfo {
    /// A resource with no short names and a status subresource.
    pub fn new(gvr: Gvr, kind: &str, namespaced: bool) -> ResourceInfo {
        ResourceInfo {
            singular: kind.to_lowercase(),
            gvr,
            kind: kind.to_owned(),
            namespaced,
            short_names: Vec::new(),
            status: true,
        }
    }

    /// With kubectl short names.
    pub fn short(mut self, names: &[&str]) -> ResourceInfo {
        self.short_names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// Without a status subresource.
    pub fn no_status(mut self) -> ResourceInfo {
        self.status = false;
        self
    }

    /// Kind of a list of its objects, e.g. `PodList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// The edge resource named `resource` (e.g. `pods`), for tests.
#[cfg(test)]
pub(crate) fn edge_info(resource: &str) -> ResourceInfo {
    edge_resources()
        .into_iter()
        .find(|r| r.gvr.resource == resource)
        .unwrap_or_else(|| panic!("no edge resource {resource}"))
}

/// The resources the edge caches and its MetaServer serves: what KubeEdge's
/// cloud sends down, plus namespaces, events and the device CRDs.
pub fn edge_resources() -> Vec<ResourceInfo> {
    vec![
        ResourceInfo::new(Gvr::core("pods"), "Pod", true).short(&["po"]),
        ResourceInfo::new(Gvr::core("configmaps"), "ConfigMap", true)
            .short(&["cm"])
            .no_status(),
        ResourceInfo::new(Gvr::core("secrets"), "Secret", true).no_status(),
        ResourceInfo::new(Gvr::core("services"), "Service", true).short(&["svc"]),
        ResourceInfo::new(Gvr::core("endpoints"), "Endpoints", true)
            .short(&["ep"])
            .no_status(),
        ResourceInfo::new(Gvr::core("nodes"), "Node", false).short(&["no"]),
        ResourceInfo::new(Gvr::core("namespaces"), "Namespace", false).short(&["ns"]),
        ResourceInfo::new(Gvr::core("events"), "Event", true)
            .short(&["ev"])
            .no_status(),
        ResourceInfo::new(Gvr::core("serviceaccounts"), "ServiceAccount", true)
            .short(&["sa"])
            .no_status(),
        ResourceInfo::new(
            Gvr::new("coordination.k8s.io", "v1", "leases"),
            "Lease",
            true,
        )
        .no_status(),
        ResourceInfo::new(
            Gvr::new("devices.kubeedge.io", "v1beta1", "devices"),
            "Device",
            true,
        ),
        ResourceInfo::new(
            Gvr::new("devices.kubeedge.io", "v1beta1", "devicemodels"),
            "DeviceModel",
            true,
        )
        .no_status(),
    ]
}

/// A shared, growable table of [`ResourceInfo`].
#[derive(Debug, Clone, Default)]
pub struct Resources {
    inner: Arc<RwLock<Vec<ResourceInfo>>>,
}

impl Resources {
    /// A table holding `infos`.
    pub fn new(infos: Vec<ResourceInfo>) -> Resources {
        Resources {
            inner: Arc::new(RwLock::new(infos)),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&[ResourceInfo]) -> T) -> T {
        f(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every resource, in registration order.
    pub fn all(&self) -> Vec<ResourceInfo> {
        self.read(<[ResourceInfo]>::to_vec)
    }

    /// The resource at `group`/`version`/`resource`.
    pub fn get(&self, group: &str, version: &str, resource: &str) -> Option<ResourceInfo> {
        self.read(|all| {
            all.iter()
                .find(|r| {
                    r.gvr.group == group && r.gvr.version == version && r.gvr.resource == resource
                })
                .cloned()
        })
    }

    /// The resource whose singular name is `singular` (KubeEdge's type), in
    /// any group; the first registered wins.
    pub fn by_singular(&self, singular: &str) -> Option<ResourceInfo> {
        self.read(|all| all.iter().find(|r| r.singular == singular).cloned())
    }

    /// The resource whose kind is `kind` in `api_version` (`v1`, `g/v`).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<ResourceInfo> {
        self.read(|all| {
            all.iter()
                .find(|r| r.kind == kind && r.gvr.api_version() == api_version)
                .cloned()
        })
    }

    /// Adds `info`, replacing a resource at the same group/version/resource.
    pub fn upsert(&self, info: ResourceInfo) {
        let mut all = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        match all.iter_mut().find(|r| r.gvr == info.gvr) {
            Some(slot) => *slot = info,
            None => all.push(info),
        }
    }

    /// Removes the resource at `gvr`; true if it was there.
    pub fn remove(&self, gvr: &Gvr) -> bool {
        let mut all = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let before = all.len();
        all.retain(|r| &r.gvr != gvr);
        all.len() != before
    }

    /// The API groups other than core with their versions, in
    /// registration order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        self.read(|all| {
            let mut groups: Vec<(String, Vec<String>)> = Vec::new();
            for r in all.iter().filter(|r| !r.gvr.group.is_empty()) {
                match groups.iter_mut().find(|(g, _)| *g == r.gvr.group) {
                    Some((_, versions)) if !versions.contains(&r.gvr.version) => {
                        versions.push(r.gvr.version.clone());
                    }
                    Some(_) => {}
                    None => groups.push((r.gvr.group.clone(), vec![r.gvr.version.clone()])),
                }
            }
            groups
        })
    }

    /// The resources served at `group`/`version`.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<ResourceInfo> {
        self.read(|all| {
            all.iter()
                .filter(|r| r.gvr.group == group && r.gvr.version == version)
                .cloned()
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let r = Resources::new(edge_resources());
        let pods = r.get("", "v1", "pods").unwrap();
        assert_eq!(pods.kind, "Pod");
        assert_eq!(pods.list_kind(), "PodList");
        assert_eq!(
            r.by_singular("configmap").unwrap().gvr,
            Gvr::core("configmaps")
        );
        assert_eq!(
            r.by_singular("devicemodel").unwrap().gvr.api_version(),
            "devices.kubeedge.io/v1beta1"
        );
        assert_eq!(
            r.by_kind("coordination.k8s.io/v1", "Lease")
                .unwrap()
                .singular,
            "lease"
        );
        assert!(!r.by_singular("node").unwrap().namespaced);
        assert!(r.get("", "v1", "nope").is_none());
    }

    #[test]
    fn groups_and_growth() {
        let r = Resources::new(edge_resources());
        assert_eq!(
            r.groups(),
            vec![
                ("coordination.k8s.io".to_owned(), vec!["v1".to_owned()]),
                ("devices.kubeedge.io".to_owned(), vec!["v1beta1".to_owned()]),
            ]
        );
        r.upsert(ResourceInfo::new(
            Gvr::new("example.io", "v1", "widgets"),
            "Widget",
            true,
        ));
        assert_eq!(r.in_group_version("example.io", "v1").len(), 1);
        assert!(r.remove(&Gvr::new("example.io", "v1", "widgets")));
        assert!(!r.remove(&Gvr::new("example.io", "v1", "widgets")));
        assert_eq!(Gvr::core("pods").group_or_core(), "core");
    }
}
