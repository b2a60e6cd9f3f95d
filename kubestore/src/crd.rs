//! CustomResourceDefinitions for the cloud's embedded API: the resources it
//! serves built in ([`cloud_resources`]), the CRD resource itself
//! ([`crd_resource`]), and what a stored CRD adds to the served
//! [`Resources`] ([`on_change`], [`load`]).
//!
//! A CRD registers one [`ResourceInfo`] per served version (group
//! `spec.group`, plural `spec.names.plural`, kind `spec.names.kind`, scope
//! `spec.scope`, a status subresource when the version declares one). The
//! write path calls [`on_change`] after committing a CRD and merges
//! [`established_status`] into the object before writing it, so that
//! `kubectl wait --for condition=established` and kube-rs'
//! `conditions::is_crd_established()` see it accepted at once.
//!
//! Objects of different versions of one CRD are kept apart (there is no
//! conversion): each served version is its own resource in the store.

use serde_json::{json, Map, Value};

use crate::resource::{edge_resources, Gvr, ResourceInfo, Resources};
use crate::store::{Store, StoreError};

/// The API group of CustomResourceDefinitions.
pub const CRD_GROUP: &str = "apiextensions.k8s.io";

/// Why a CRD cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrdError {
    /// A required field is missing or not a string.
    #[error("CustomResourceDefinition: {field} is required")]
    Missing {
        /// The field, e.g. `spec.names.plural`.
        field: &'static str,
    },
    /// `spec.scope` is neither `Namespaced` nor `Cluster`.
    #[error("CustomResourceDefinition: spec.scope {0:?} must be Namespaced or Cluster")]
    Scope(String),
    /// `spec.group` is empty or belongs to a built-in resource group.
    #[error("CustomResourceDefinition: spec.group {0:?} is reserved for built-in resources")]
    ReservedGroup(String),
}

/// The `customresourcedefinitions` resource of `apiextensions.k8s.io/v1`.
pub fn crd_resource() -> ResourceInfo {
    ResourceInfo::new(
        Gvr::new(CRD_GROUP, "v1", "customresourcedefinitions"),
        "CustomResourceDefinition",
        false,
    )
    .short(&["crd", "crds"])
}

/// The resources the embedded API serves before any CRD is applied: core
/// `v1` namespaces, nodes, pods, configmaps, secrets, services, endpoints,
/// events and serviceaccounts, `coordination.k8s.io/v1` leases, and
/// CustomResourceDefinitions. The device CRDs are applied at start, as in a
/// real cluster.
pub fn cloud_resources() -> Vec<ResourceInfo> {
    let edge = edge_resources();
    let pick = |group: &str, resource: &str| {
        edge.iter()
            .find(|r| r.gvr.group == group && r.gvr.resource == resource)
            .cloned()
    };
    [
        ("", "namespaces"),
        ("", "nodes"),
        ("", "pods"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "services"),
        ("", "endpoints"),
        ("", "events"),
        ("", "serviceaccounts"),
        ("coordination.k8s.io", "leases"),
    ]
    .into_iter()
    .filter_map(|(group, resource)| pick(group, resource))
    .chain([crd_resource()])
    .collect()
}

/// Groups a CRD may not claim: those of the built-in resources.
fn reserved(group: &str) -> bool {
    group.is_empty() || group == CRD_GROUP || cloud_resources().iter().any(|r| r.gvr.group == group)
}

fn text<'a>(crd: &'a Value, pointer: &str, field: &'static str) -> Result<&'a str, CrdError> {
    crd.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(CrdError::Missing { field })
}

/// The resources `crd` serves: one per version with `served: true`.
pub fn resource_infos(crd: &Value) -> Result<Vec<ResourceInfo>, CrdError> {
    let group = text(crd, "/spec/group", "spec.group")?;
    if reserved(group) {
        return Err(CrdError::ReservedGroup(group.to_owned()));
    }
    let plural = text(crd, "/spec/names/plural", "spec.names.plural")?;
    let kind = text(crd, "/spec/names/kind", "spec.names.kind")?;
    let namespaced = match text(crd, "/spec/scope", "spec.scope")? {
        "Namespaced" => true,
        "Cluster" => false,
        other => return Err(CrdError::Scope(other.to_owned())),
    };
    let singular = crd
        .pointer("/spec/names/singular")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(|| kind.to_lowercase(), str::to_owned);
    let short_names: Vec<String> = crd
        .pointer("/spec/names/shortNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or(CrdError::Missing {
            field: "spec.versions",
        })?;
    let mut infos = Vec::new();
    for version in versions {
        let Some(name) = version.get("name").and_then(Value::as_str) else {
            return Err(CrdError::Missing {
                field: "spec.versions[].name",
            });
        };
        if version.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        infos.push(ResourceInfo {
            gvr: Gvr::new(group, name, plural),
            kind: kind.to_owned(),
            singular: singular.clone(),
            namespaced,
            short_names: short_names.clone(),
            status: version.pointer("/subresources/status").is_some(),
        });
    }
    Ok(infos)
}

/// Registers the served versions of `crd` in `resources`, dropping versions
/// it no longer serves; with `deleted`, removes all of them. A CRD that
/// cannot be served (see [`CrdError`]) changes nothing and is logged.
pub fn on_change(resources: &Resources, crd: &Value, deleted: bool) {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (Some(group), Some(plural)) = (
        crd.pointer("/spec/group").and_then(Value::as_str),
        crd.pointer("/spec/names/plural").and_then(Value::as_str),
    ) else {
        tracing::warn!(
            crd = name,
            "CustomResourceDefinition without group or plural ignored"
        );
        return;
    };
    if reserved(group) {
        tracing::warn!(
            crd = name,
            group,
            "CustomResourceDefinition in a built-in group ignored"
        );
        return;
    }
    let infos = if deleted {
        Vec::new()
    } else {
        match resource_infos(crd) {
            Ok(infos) => infos,
            Err(err) => {
                tracing::warn!(crd = name, error = %err, "CustomResourceDefinition not served");
                return;
            }
        }
    };
    for old in resources.all() {
        let same = old.gvr.group == group && old.gvr.resource == plural;
        if same && !infos.iter().any(|i| i.gvr == old.gvr) {
            resources.remove(&old.gvr);
            tracing::info!(resource = %old.gvr, "custom resource no longer served");
        }
    }
    for info in infos {
        tracing::info!(resource = %info.gvr, kind = %info.kind, "serving custom resource");
        resources.upsert(info);
    }
}

/// The `status` of `crd` once accepted: its other fields kept, conditions
/// `NamesAccepted` and `Established` true (their transition times kept when
/// they already were), `acceptedNames` = `spec.names` (with `singular` and
/// `listKind` defaulted) and `storedVersions` including the storage version.
pub fn established_status(crd: &Value) -> Value {
    let mut status = crd
        .get("status")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut names = crd
        .pointer("/spec/names")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(kind) = names.get("kind").and_then(Value::as_str).map(str::to_owned) {
        names
            .entry("singular")
            .or_insert_with(|| Value::String(kind.to_lowercase()));
        names
            .entry("listKind")
            .or_insert_with(|| Value::String(format!("{kind}List")));
    }
    let old: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut conditions: Vec<Value> = old
        .iter()
        .filter(|c| {
            !matches!(
                c.get("type").and_then(Value::as_str),
                Some("NamesAccepted" | "Established")
            )
        })
        .cloned()
        .collect();
    for (kind, reason, message) in [
        ("NamesAccepted", "NoConflicts", "no conflicts found"),
        (
            "Established",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        ),
    ] {
        let since = old
            .iter()
            .find(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| Value::String(now.clone()));
        conditions.push(json!({
            "type": kind,
            "status": "True",
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }));
    }
    let mut stored: Vec<Value> = status
        .get("storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned());
    for version in storage {
        if !stored.contains(&version) {
            stored.push(version);
        }
    }
    status.insert("conditions".to_owned(), Value::Array(conditions));
    status.insert("acceptedNames".to_owned(), Value::Object(names));
    status.insert("storedVersions".to_owned(), Value::Array(stored));
    Value::Object(status)
}

/// `crd` with its `status` replaced by [`established_status`].
pub fn with_established_status(mut crd: Value) -> Value {
    let status = established_status(&crd);
    if let Some(obj) = crd.as_object_mut() {
        obj.insert("status".to_owned(), status);
    } else {
        let mut obj = Map::new();
        obj.insert("status".to_owned(), status);
        crd = Value::Object(obj);
    }
    crd
}

/// Registers every stored CRD in `resources` (at start); returns how many
/// CRDs were read.
pub async fn load(store: &Store, resources: &Resources) -> Result<usize, StoreError> {
    let (crds, revision) = store.list(&crd_resource().gvr, None).await?;
    for crd in &crds {
        on_change(resources, &crd.value, false);
    }
    tracing::debug!(
        count = crds.len(),
        revision,
        "stored CustomResourceDefinitions loaded"
    );
    Ok(crds.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ObjectKey, StoreOptions, WriteOp};

    fn device_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "devices.devices.kubeedge.io"},
            "spec": {
                "group": "devices.kubeedge.io",
                "names": {"kind": "Device", "plural": "devices", "shortNames": ["dev"]},
                "scope": "Namespaced",
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": true,
                     "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}}},
                    {"name": "v1alpha2", "served": false, "storage": false},
                ],
            },
        })
    }

    #[test]
    fn built_in_resources() {
        let all = cloud_resources();
        let names: Vec<String> = all.iter().map(|r| r.gvr.to_string()).collect();
        assert_eq!(names.len(), 11, "{names:?}");
        assert_eq!(names[0], "v1/namespaces");
        assert!(names.contains(&"coordination.k8s.io/v1/leases".to_owned()));
        assert!(!names.iter().any(|n| n.contains("kubeedge")), "{names:?}");
        let crd = all.last().unwrap();
        assert_eq!(crd, &crd_resource());
        assert!(!crd.namespaced && crd.status);
        assert_eq!(crd.short_names, ["crd", "crds"]);
        assert_eq!(crd.singular, "customresourcedefinition");
    }

    #[test]
    fn served_versions_become_resources() {
        let infos = resource_infos(&device_crd()).unwrap();
        assert_eq!(infos.len(), 1);
        let dev = &infos[0];
        assert_eq!(
            dev.gvr,
            Gvr::new("devices.kubeedge.io", "v1beta1", "devices")
        );
        assert_eq!(
            (dev.kind.as_str(), dev.singular.as_str()),
            ("Device", "device")
        );
        assert!(dev.namespaced && dev.status);
        assert_eq!(dev.short_names, ["dev"]);

        let mut bad = device_crd();
        bad["spec"]["scope"] = json!("Global");
        assert_eq!(resource_infos(&bad), Err(CrdError::Scope("Global".into())));
        bad["spec"]["group"] = json!("coordination.k8s.io");
        assert!(matches!(
            resource_infos(&bad),
            Err(CrdError::ReservedGroup(_))
        ));
        let mut bad = device_crd();
        bad["spec"]["names"].as_object_mut().unwrap().remove("kind");
        assert_eq!(
            resource_infos(&bad),
            Err(CrdError::Missing {
                field: "spec.names.kind"
            })
        );
    }

    #[test]
    fn changes_register_update_and_remove() {
        let r = Resources::new(cloud_resources());
        let v1beta1 = Gvr::new("devices.kubeedge.io", "v1beta1", "devices");
        let v1 = Gvr::new("devices.kubeedge.io", "v1", "devices");
        on_change(&r, &device_crd(), false);
        assert!(r.get("devices.kubeedge.io", "v1beta1", "devices").is_some());
        assert_eq!(r.by_singular("device").unwrap().gvr, v1beta1);

        // v1 added and served, v1beta1 no longer served, cluster-scoped now.
        let mut crd = device_crd();
        crd["spec"]["scope"] = json!("Cluster");
        crd["spec"]["versions"] = json!([
            {"name": "v1beta1", "served": false, "storage": false},
            {"name": "v1", "served": true, "storage": true},
        ]);
        on_change(&r, &crd, false);
        assert!(r.get("devices.kubeedge.io", "v1beta1", "devices").is_none());
        let info = r.get("devices.kubeedge.io", "v1", "devices").unwrap();
        assert!(!info.namespaced && !info.status);

        on_change(&r, &crd, true);
        assert!(r.get(&v1.group, &v1.version, &v1.resource).is_none());
        assert_eq!(r.all(), cloud_resources());

        // A CRD may not shadow a built-in resource.
        let mut evil = device_crd();
        evil["spec"]["group"] = json!("");
        evil["spec"]["names"]["plural"] = json!("pods");
        on_change(&r, &evil, false);
        on_change(&r, &evil, true);
        assert_eq!(r.all(), cloud_resources());
    }

    #[test]
    fn established_status_accepts_the_names() {
        let status = established_status(&device_crd());
        let conditions = status["conditions"].as_array().unwrap();
        let established = conditions
            .iter()
            .find(|c| c["type"] == "Established")
            .unwrap();
        assert_eq!(established["status"], "True");
        assert!(conditions
            .iter()
            .any(|c| c["type"] == "NamesAccepted" && c["status"] == "True"));
        assert_eq!(status["acceptedNames"]["plural"], "devices");
        assert_eq!(status["acceptedNames"]["listKind"], "DeviceList");
        assert_eq!(status["acceptedNames"]["singular"], "device");
        assert_eq!(status["storedVersions"], json!(["v1beta1"]));

        // Stable: re-establishing keeps the transition times.
        let mut crd = device_crd();
        crd["status"] = json!({
            "conditions": [{"type": "Established", "status": "True",
                            "lastTransitionTime": "2020-01-01T00:00:00Z"},
                           {"type": "Other", "status": "False"}],
            "storedVersions": ["v1alpha2"],
        });
        let crd = with_established_status(crd);
        let again = &crd["status"];
        assert_eq!(again["conditions"].as_array().unwrap().len(), 3);
        assert!(again["conditions"].as_array().unwrap().iter().any(
            |c| c["type"] == "Established" && c["lastTransitionTime"] == "2020-01-01T00:00:00Z"
        ));
        assert_eq!(again["storedVersions"], json!(["v1alpha2", "v1beta1"]));
        let parsed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionStatus =
            serde_json::from_value(again.clone()).unwrap();
        assert_eq!(parsed.accepted_names.map(|n| n.kind), Some("Device".into()));
    }

    #[tokio::test]
    async fn load_registers_stored_crds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("api.db"), StoreOptions::default()).unwrap();
        let key = ObjectKey::new(crd_resource().gvr, None, "devices.devices.kubeedge.io");
        store
            .write(vec![WriteOp::put(key, device_crd())])
            .await
            .unwrap();
        let resources = Resources::new(cloud_resources());
        assert_eq!(load(&store, &resources).await.unwrap(), 1);
        assert!(resources
            .get("devices.kubeedge.io", "v1beta1", "devices")
            .is_some());
    }
}
