//! create (`POST` on a collection), as kube-apiserver does it: the body is
//! an object of the resource's kind; the name is given, or generated from
//! `metadata.generateName` (five random characters, retried when taken);
//! the server sets `uid`, `creationTimestamp`, `generation` (objects with a
//! spec, custom resources) and drops a client's `resourceVersion`.
//!
//! A namespaced object needs its namespace (404 `namespaces "x" not
//! found` otherwise, 403 while it terminates: kube-apiserver's
//! NamespaceLifecycle). The check is part of the write: the group that
//! creates the object also checks the namespace is still at the revision
//! read, so a namespace deleted in between fails the create
//! instead of leaving an orphan.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::error::{RestError, Result};
use super::path::Target;
use super::write::{
    admit, committed, key_of, meta_str, metadata_mut, now, object_body, respond, ATTEMPTS,
};
use super::RestConfig;
use crate::resource::{Gvr, ResourceInfo};
use crate::store::{Expect, ObjectKey, Outcome, WriteError, WriteOp};

/// kube-apiserver's alphabet for generated names (no vowels, no 0/1/3).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Random characters after a `generateName` prefix.
const SUFFIX: usize = 5;
/// The longest generated name.
const MAX_GENERATED: usize = 63;

/// `POST .../{resource}`.
pub(crate) async fn create(
    rest: &RestConfig,
    target: &Target,
    media: &str,
    body: &[u8],
) -> Result<HttpResponse> {
    let info = &target.info;
    if info.namespaced && target.namespace.is_none() {
        return Err(RestError::MethodNotAllowed(
            "the server does not allow this method on the requested resource: \
             create namespaced objects in their namespace"
                .to_owned(),
        ));
    }
    let mut value = object_body(info, media, body)?;
    let namespace = target.namespace.as_deref();
    if let (Some(url), Some(given)) = (namespace, meta_str(&value, "namespace")) {
        if !given.is_empty() && given != url {
            return Err(RestError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
                    .to_owned(),
            ));
        }
    }
    let prefix = meta_str(&value, "generateName")
        .unwrap_or_default()
        .to_owned();
    let given = meta_str(&value, "name").unwrap_or_default().to_owned();
    if given.is_empty() && prefix.is_empty() {
        return Err(invalid(
            info,
            "",
            "Required value: name or generateName is required",
        ));
    }
    if !given.is_empty() {
        check_name(info, &given)?;
    }
    initialise(info, namespace, &mut value);
    let mut guard = match namespace {
        Some(ns) => Some(namespace_guard(rest, info, ns, &given).await?),
        None => None,
    };
    for attempt in 1..=ATTEMPTS {
        let name = if given.is_empty() {
            generated(&prefix)
        } else {
            given.clone()
        };
        let mut object = value.clone();
        name_object(info, &mut object, &name);
        let object = admit(info, object)?;
        let key = key_of(target, &name);
        let mut ops: Vec<WriteOp> = guard.iter().cloned().collect();
        ops.push(WriteOp::Put {
            key: key.clone(),
            value: object,
            origin: None,
            expect: Expect::Absent,
        });
        match rest.store.write(ops).await {
            Ok(outcomes) => match outcomes.last() {
                Some(Outcome::Created(object)) => {
                    committed(rest, info, object, false);
                    return Ok(respond(StatusCode::CREATED, info, object));
                }
                _ => return Err(RestError::from(WriteError::AlreadyExists(Box::new(key)))),
            },
            Err(WriteError::AlreadyExists(k)) if given.is_empty() && *k == key => {}
            Err(WriteError::Conflict { key: k, .. }) if k.gvr == namespaces() => {
                // The namespace changed since it was read: look again.
                if let Some(ns) = namespace {
                    guard = Some(namespace_guard(rest, info, ns, &name).await?);
                }
            }
            Err(err) => return Err(err.into()),
        }
        tracing::debug!(attempt, key = %key.storage_key(), "create retried");
    }
    Err(RestError::conflict(
        &info.gvr.group,
        &info.gvr.resource,
        &given,
        "the object kept changing; try again",
    ))
}

fn namespaces() -> Gvr {
    Gvr::core("namespaces")
}

/// A 422 about `metadata.name` of a `name` of `info`.
fn invalid(info: &ResourceInfo, name: &str, detail: &str) -> RestError {
    RestError::Invalid {
        group: info.gvr.group.clone(),
        kind: info.kind.clone(),
        name: name.to_owned(),
        field: "metadata.name".to_owned(),
        detail: detail.to_owned(),
    }
}

/// The server's metadata on a new object (all but its name).
fn initialise(info: &ResourceInfo, namespace: Option<&str>, value: &mut Value) {
    let generation = value.get("spec").is_some() || !super::patch::built_in(info);
    let Some(meta) = metadata_mut(value) else {
        return;
    };
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(field);
    }
    meta.insert(
        "uid".to_owned(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert("creationTimestamp".to_owned(), Value::String(now()));
    if generation {
        meta.insert("generation".to_owned(), json!(1));
    } else {
        meta.remove("generation");
    }
    match namespace {
        Some(ns) => meta.insert("namespace".to_owned(), Value::String(ns.to_owned())),
        None => meta.remove("namespace"),
    };
}

/// Sets the name; a namespace also gets what kube-apiserver gives it: the
/// `kubernetes` finalizer and phase `Active` (and, from `admit`, the
/// `kubernetes.io/metadata.name` label).
fn name_object(info: &ResourceInfo, value: &mut Value, name: &str) {
    if let Some(meta) = metadata_mut(value) {
        meta.insert("name".to_owned(), Value::String(name.to_owned()));
    }
    if info.gvr != namespaces() {
        return;
    }
    if let Some(object) = value.as_object_mut() {
        let spec = object.entry("spec").or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            spec.entry("finalizers")
                .or_insert_with(|| json!(["kubernetes"]));
        }
        object.insert("status".to_owned(), json!({"phase": "Active"}));
    }
}

/// `prefix` and five random characters, at most 63 in all.
fn generated(prefix: &str) -> String {
    let mut name: String = prefix
        .chars()
        .take(MAX_GENERATED - SUFFIX)
        .collect::<String>();
    let random = uuid::Uuid::new_v4();
    for byte in random.as_bytes().iter().take(SUFFIX) {
        name.push(char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]));
    }
    name
}

/// The write that pins namespace `ns` as read (it must exist and not be
/// terminating) for the create of `name` of `info`.
async fn namespace_guard(
    rest: &RestConfig,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
) -> Result<WriteOp> {
    let key = ObjectKey::new(namespaces(), None, ns);
    let object = rest
        .store
        .get(&key)
        .await?
        .ok_or_else(|| RestError::not_found("", "namespaces", ns))?;
    if terminating(&object.value) {
        return Err(RestError::Forbidden(format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} \
             because it is being terminated",
            info.gvr.resource
        )));
    }
    Ok(WriteOp::Check {
        key,
        expect: Expect::Revision(object.revision),
    })
}

/// A namespace being deleted.
pub(crate) fn terminating(namespace: &Value) -> bool {
    meta_str(namespace, "deletionTimestamp").is_some()
        || namespace.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
}

/// Checks a name: a path segment for every resource, an RFC 1123 label for
/// namespaces and an RFC 1123 subdomain for the other built-in resources.
pub(crate) fn check_name(info: &ResourceInfo, name: &str) -> Result<()> {
    if name == "." || name == ".." || name.contains(['/', '%']) {
        return Err(invalid(
            info,
            name,
            &format!("Invalid value: \"{name}\": may not be '.' or '..' or contain '/' or '%'"),
        ));
    }
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    if info.gvr == namespaces() {
        if !label(name) {
            return Err(invalid(
                info,
                name,
                &format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower \
                     case alphanumeric characters or '-', and must start and end with an \
                     alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for \
                     validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                ),
            ));
        }
    } else if super::patch::built_in(info) && (name.len() > 253 || !name.split('.').all(label)) {
        return Err(invalid(
            info,
            name,
            &format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower \
                 case alphanumeric characters, '-' or '.', and must start and end with an \
                 alphanumeric character (e.g. 'example.com', regex used for validation is \
                 '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::edge_info as info;

    #[test]
    fn generated_names() {
        let name = generated("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
        assert!(name[4..].bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(generated("web-"), generated("web-"));
        assert_eq!(generated(&"x".repeat(100)).len(), 63);
    }

    #[test]
    fn names() {
        assert!(check_name(&info("pods"), "web-1.a").is_ok());
        assert!(check_name(&info("pods"), "Web").is_err());
        assert!(check_name(&info("pods"), "a..b").is_err());
        assert!(check_name(&info("namespaces"), "a.b").is_err());
        assert!(check_name(&info("namespaces"), "kube-system").is_ok());
        // Custom resources: only what a path segment forbids.
        assert!(check_name(&info("devices"), "Dev_1").is_ok());
        assert!(check_name(&info("devices"), "a/b").is_err());
        let err = check_name(&info("configmaps"), "-x").unwrap_err();
        assert_eq!(err.code(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn server_metadata() {
        let mut pod = json!({"metadata": {"name": "p", "resourceVersion": "9", "uid": "mine"},
                             "spec": {}});
        initialise(&info("pods"), Some("ns"), &mut pod);
        let meta = &pod["metadata"];
        assert!(meta.get("resourceVersion").is_none());
        assert_ne!(meta["uid"], "mine");
        assert_eq!(meta["generation"], 1);
        assert_eq!(meta["namespace"], "ns");
        assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
        let mut cm = json!({"metadata": {"name": "c", "namespace": "x"}, "data": {}});
        initialise(&info("configmaps"), None, &mut cm);
        assert!(cm["metadata"].get("generation").is_none());
        assert!(cm["metadata"].get("namespace").is_none());
        let mut ns = json!({"metadata": {}});
        name_object(&info("namespaces"), &mut ns, "team");
        let ns = crate::rest::write::admit(&info("namespaces"), ns).unwrap();
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
        assert_eq!(ns["status"]["phase"], "Active");
        assert!(terminating(&json!({"status": {"phase": "Terminating"}})));
    }
}
