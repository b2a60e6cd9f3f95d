//! Applying CustomResourceDefinitions to the embedded API at start (the
//! device CRDs of `deploy/crds/`), straight through its store: each is
//! created or replaced as `kubectl apply` would leave it (uid and creation
//! time kept, `generation` bumped when the spec changed), marked
//! Established, and its resources served at once.

use kubestore::{crd, Expect, ObjectKey, Outcome, Resources, Store, WriteError, WriteOp};
use serde_json::Value;

use super::{KubeApiError, Result};

/// Attempts at one CRD when others write it at the same time.
const ATTEMPTS: usize = 5;

/// Now, as Kubernetes writes timestamps (`2024-05-01T12:00:00Z`).
pub(crate) fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Creates or updates each of `crds` in `store` and registers its served
/// versions in `resources`; returns how many were created or changed.
/// Stops at the first CRD that cannot be served.
pub async fn apply_crds(store: &Store, resources: &Resources, crds: &[Value]) -> Result<usize> {
    let mut changed = 0;
    for crd in crds {
        let name = check(crd)?;
        let (stored, was_changed) = apply_one(store, &name, crd).await?;
        crd::on_change(resources, &stored, false);
        if was_changed {
            tracing::info!(crd = %name, "CustomResourceDefinition applied");
            changed += 1;
        }
    }
    Ok(changed)
}

/// The CRD's name, once it is known to be servable and named
/// `<plural>.<group>` as Kubernetes requires.
fn check(crd: &Value) -> Result<String> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let bad = |source| KubeApiError::Crd {
        name: name.clone(),
        source,
    };
    crd::resource_infos(crd).map_err(bad)?;
    let text = |pointer| {
        crd.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let expected = format!("{}.{}", text("/spec/names/plural"), text("/spec/group"));
    if expected != name {
        return Err(KubeApiError::CrdName { name, expected });
    }
    Ok(name)
}

/// Writes one CRD, retrying when it changed underneath; returns the stored
/// object and whether it changed.
async fn apply_one(store: &Store, name: &str, crd: &Value) -> Result<(Value, bool)> {
    let key = ObjectKey::new(crd::crd_resource().gvr, None, name);
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let existing = store.get(&key).await?;
        let value = prepare(crd, existing.as_ref().map(|o| &o.value))?;
        let expect = existing
            .as_ref()
            .map_or(Expect::Absent, |o| Expect::Revision(o.revision));
        let op = WriteOp::Put {
            key: key.clone(),
            value: value.clone(),
            origin: None,
            expect,
        };
        match store.write(vec![op]).await {
            Ok(outcomes) => {
                return Ok(match outcomes.into_iter().next() {
                    Some(Outcome::Created(o) | Outcome::Updated(o)) => (o.value.clone(), true),
                    _ => (value, false),
                });
            }
            Err(err @ (WriteError::AlreadyExists(_) | WriteError::Conflict { .. })) => {
                last = Some(err);
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(last.map_or(KubeApiError::Conflict(name.to_owned()), KubeApiError::from))
}

/// `crd` as it is to be stored over `existing`.
fn prepare(crd: &Value, existing: Option<&Value>) -> Result<Value> {
    let mut value = crd.clone();
    let Some(obj) = value.as_object_mut() else {
        return Err(KubeApiError::Crd {
            name: String::new(),
            source: crd::CrdError::Missing { field: "metadata" },
        });
    };
    obj.insert("apiVersion".to_owned(), "apiextensions.k8s.io/v1".into());
    obj.insert("kind".to_owned(), "CustomResourceDefinition".into());
    let old_meta = existing.and_then(|e| e.get("metadata"));
    let kept = |field: &str| old_meta.and_then(|m| m.get(field)).cloned();
    let same_spec = existing.is_some_and(|e| e.get("spec") == crd.get("spec"));
    let generation = match kept("generation").and_then(|g| g.as_i64()) {
        Some(g) if same_spec => g,
        Some(g) => g + 1,
        None => 1,
    };
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(meta) = meta.as_object_mut() {
        meta.remove("resourceVersion");
        let uid = kept("uid").unwrap_or_else(|| uuid::Uuid::new_v4().to_string().into());
        meta.insert("uid".to_owned(), uid);
        let created = kept("creationTimestamp").unwrap_or_else(|| now().into());
        meta.insert("creationTimestamp".to_owned(), created);
        meta.insert("generation".to_owned(), generation.into());
    }
    match existing.and_then(|e| e.get("status")) {
        Some(status) => obj.insert("status".to_owned(), status.clone()),
        None => obj.remove("status"),
    };
    Ok(crd::with_established_status(value))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use kubestore::StoreOptions;

    /// KubeEdge's Device CRD, as `deploy/crds/` has it.
    pub(crate) fn device_crd() -> Value {
        serde_json::to_value(crds::Device::crd()).unwrap()
    }

    #[tokio::test]
    async fn crds_are_applied_once_and_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db"), StoreOptions::default()).unwrap();
        let resources = Resources::new(crd::cloud_resources());
        let crds = vec![device_crd()];

        assert_eq!(apply_crds(&store, &resources, &crds).await.unwrap(), 1);
        assert!(resources
            .get("devices.kubeedge.io", "v1beta1", "devices")
            .is_some());
        let key = ObjectKey::new(crd::crd_resource().gvr, None, "devices.devices.kubeedge.io");
        let first = store.get(&key).await.unwrap().unwrap();
        assert_eq!(first.value["metadata"]["generation"], 1);
        assert!(first.value["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True"));

        // Again: nothing changes, not even the revision.
        assert_eq!(apply_crds(&store, &resources, &crds).await.unwrap(), 0);
        let again = store.get(&key).await.unwrap().unwrap();
        assert_eq!(again.revision, first.revision);

        // A changed spec bumps the generation and keeps the uid.
        let mut changed = crds[0].clone();
        changed["spec"]["names"]["shortNames"] = serde_json::json!(["dv"]);
        assert_eq!(apply_crds(&store, &resources, &[changed]).await.unwrap(), 1);
        let third = store.get(&key).await.unwrap().unwrap();
        assert_eq!(third.value["metadata"]["generation"], 2);
        assert_eq!(
            third.value["metadata"]["uid"],
            first.value["metadata"]["uid"]
        );
        let info = resources
            .get("devices.kubeedge.io", "v1beta1", "devices")
            .unwrap();
        assert_eq!(info.short_names, ["dv"]);
    }

    #[tokio::test]
    async fn bad_crds_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db"), StoreOptions::default()).unwrap();
        let resources = Resources::new(crd::cloud_resources());
        let mut crd = device_crd();
        crd["metadata"]["name"] = "gadgets.devices.kubeedge.io".into();
        let err = apply_crds(&store, &resources, &[crd.clone()])
            .await
            .unwrap_err();
        assert!(matches!(err, KubeApiError::CrdName { .. }), "{err}");
        crd["metadata"]["name"] = "devices.devices.kubeedge.io".into();
        crd["spec"]["scope"] = "Everywhere".into();
        let err = apply_crds(&store, &resources, &[crd]).await.unwrap_err();
        assert!(matches!(err, KubeApiError::Crd { .. }), "{err}");
    }
}
