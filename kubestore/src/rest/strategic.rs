//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`)
//! for the built-in types, as `k8s.io/apimachinery`'s `strategicpatch`
//! applies it: maps merge key by key, `null` deletes a key, lists merge as
//! their field's `patchStrategy` says ([`merge_keys`](super::merge_keys):
//! by a merge key, as a set, or replaced whole), and the directives
//! `$patch: replace | delete | merge`, `$retainKeys`,
//! `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` are
//! honoured (the last one is accepted and ignored: new list elements are
//! appended after the existing ones). Pure.

use serde_json::{Map, Value};

use super::merge_keys::{strategy, ListStrategy};

/// A patch that cannot be applied (kube-apiserver answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StrategicError(String);

type Result<T> = std::result::Result<T, StrategicError>;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";
const SET_ORDER: &str = "$setElementOrder/";

/// Applies `patch` to `original`, an object of `kind`.
pub(crate) fn apply(original: &Value, patch: &Value, kind: &str) -> Result<Value> {
    let (Some(original), Some(patch)) = (original.as_object(), patch.as_object()) else {
        return Err(StrategicError(
            "a strategic merge patch and the object it patches must be JSON objects".to_owned(),
        ));
    };
    let merger = Merger { kind };
    let merged = merger.map(original.clone(), patch, &mut Vec::new())?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

struct Merger<'a> {
    kind: &'a str,
}

impl Merger<'_> {
    /// Merges `patch` into `original`, the map at `path`; `None` when the
    /// patch deletes the map.
    fn map(
        &self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Option<Map<String, Value>>> {
        match patch.get(PATCH) {
            None => {}
            Some(Value::String(d)) if d == "merge" => {}
            Some(Value::String(d)) if d == "delete" => return Ok(None),
            Some(Value::String(d)) if d == "replace" => {
                original = Map::new();
            }
            Some(other) => {
                return Err(StrategicError(format!(
                    "unknown patch type: {other} in map: {}",
                    Value::Object(patch.clone())
                )))
            }
        }
        if let Some(retain) = patch.get(RETAIN_KEYS) {
            let keys = retain
                .as_array()
                .filter(|keys| keys.iter().all(Value::is_string))
                .ok_or_else(|| {
                    StrategicError(format!(
                        "invalid patch: {RETAIN_KEYS} must be a list of strings"
                    ))
                })?;
            original.retain(|k, _| keys.iter().any(|key| key.as_str() == Some(k)));
        }
        for (key, values) in patch {
            let Some(field) = key.strip_prefix(DELETE_FROM) else {
                continue;
            };
            let values = values
                .as_array()
                .ok_or_else(|| StrategicError(format!("invalid patch: {key} must be a list")))?;
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|v| !values.contains(v));
            }
        }
        for (key, value) in patch {
            if key == PATCH
                || key == RETAIN_KEYS
                || key.starts_with(DELETE_FROM)
                || key.starts_with(SET_ORDER)
            {
                continue;
            }
            if value.is_null() {
                original.remove(key);
                continue;
            }
            let merged = match (original.remove(key), value) {
                (Some(Value::Object(o)), Value::Object(p)) => {
                    path.push(key.clone());
                    let merged = self.map(o, p, path);
                    path.pop();
                    merged?.map(Value::Object)
                }
                (Some(Value::Array(o)), Value::Array(p)) => {
                    Some(Value::Array(self.list(o, p, path, key)?))
                }
                _ => self.fresh(value, path, key)?,
            };
            if let Some(merged) = merged {
                original.insert(key.clone(), merged);
            }
        }
        Ok(Some(original))
    }

    /// Merges the list `field` of the map at `path`.
    fn list(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        path: &mut Vec<String>,
        field: &str,
    ) -> Result<Vec<Value>> {
        let directive = |v: &Value| v.get(PATCH).and_then(Value::as_str).map(str::to_owned);
        let replace = patch
            .iter()
            .any(|v| directive(v).as_deref() == Some("replace"));
        let strategy = strategy(self.kind, path, field);
        if replace || strategy == ListStrategy::Replace {
            let mut out = Vec::with_capacity(patch.len());
            for value in patch.iter().filter(|v| directive(v).is_none()) {
                out.extend(self.element(value, path, field)?);
            }
            return Ok(out);
        }
        let ListStrategy::MergeByKey(key) = strategy else {
            let mut out = original;
            for value in patch {
                if value.is_object() {
                    return Err(StrategicError(format!(
                        "invalid patch: {field} is a list of values, not of maps"
                    )));
                }
                if !out.contains(value) {
                    out.push(value.clone());
                }
            }
            return Ok(out);
        };
        let mut out = original;
        for value in patch {
            let Some(element) = value.as_object() else {
                return Err(StrategicError(format!(
                    "invalid patch: {field} is a list of maps merged by {key}, found {value}"
                )));
            };
            let id = element.get(key).ok_or_else(|| {
                StrategicError(format!(
                    "map: {value} does not contain declared merge key: {key}"
                ))
            })?;
            let at = out.iter().position(|o| o.get(key) == Some(id));
            match (directive(value).as_deref(), at) {
                (Some("delete"), _) => out.retain(|o| o.get(key) != Some(id)),
                (_, Some(i)) => {
                    let current = match out.remove(i) {
                        Value::Object(current) => current,
                        _ => Map::new(),
                    };
                    path.push(field.to_owned());
                    let merged = self.map(current, element, path);
                    path.pop();
                    if let Some(merged) = merged? {
                        out.insert(i, Value::Object(merged));
                    }
                }
                (_, None) => out.extend(self.element(value, path, field)?),
            }
        }
        Ok(out)
    }

    /// A new element of the list `field`, its directives applied.
    fn element(&self, value: &Value, path: &mut Vec<String>, field: &str) -> Result<Option<Value>> {
        match value {
            Value::Object(p) => {
                path.push(field.to_owned());
                let merged = self.map(Map::new(), p, path);
                path.pop();
                Ok(merged?.map(Value::Object))
            }
            other => Ok(Some(other.clone())),
        }
    }

    /// A value the object did not have (or had with another type): its
    /// directives applied and its nulls dropped.
    fn fresh(&self, value: &Value, path: &mut Vec<String>, field: &str) -> Result<Option<Value>> {
        match value {
            Value::Null => Ok(None),
            Value::Array(p) => Ok(Some(Value::Array(self.list(Vec::new(), p, path, field)?))),
            other => self.element(other, path, field),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1", "b": "2"},
                         "finalizers": ["x"]},
            "spec": {
                "containers": [
                    {"name": "main", "image": "nginx:1", "env": [{"name": "A", "value": "1"}],
                     "ports": [{"containerPort": 80}]},
                    {"name": "side", "image": "busybox"},
                ],
                "tolerations": [{"key": "k", "operator": "Exists"}],
            },
            "status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "Initialized", "status": "True"},
            ]},
        })
    }

    fn patched(patch: Value) -> Value {
        apply(&pod(), &patch, "Pod").unwrap()
    }

    #[test]
    fn containers_merge_by_name() {
        let out = patched(json!({"spec": {"containers": [
            {"name": "main", "image": "nginx:2", "env": [{"name": "B", "value": "2"}]},
            {"name": "new", "image": "redis"},
        ]}}));
        let containers = out["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 3);
        assert_eq!(containers[0]["image"], "nginx:2");
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(containers[1]["name"], "side");
        assert_eq!(containers[2]["name"], "new");
        // Tolerations have no patch strategy: replaced.
        let out = patched(json!({"spec": {"tolerations": [{"key": "other"}]}}));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "other"}]));
    }

    #[test]
    fn delete_and_replace_directives() {
        let out = patched(json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}));
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["main"]);
        let out = patched(json!({"spec": {"containers": [
            {"$patch": "replace"}, {"name": "only", "image": "x"}]}}));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "only", "image": "x"}])
        );
        let out = patched(json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}));
        assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
        let out = patched(json!({"status": {"$patch": "delete"}}));
        assert!(out.get("status").is_none());
        let bad = apply(&pod(), &json!({"spec": {"$patch": "explode"}}), "Pod");
        assert!(bad.is_err());
        let keyless = apply(
            &pod(),
            &json!({"spec": {"containers": [{"image": "x"}]}}),
            "Pod",
        );
        assert!(keyless
            .unwrap_err()
            .to_string()
            .contains("does not contain declared merge key: name"));
    }

    #[test]
    fn null_removes_a_key() {
        let out = patched(json!({"metadata": {"labels": {"a": null, "c": "3"}},
                                 "spec": {"tolerations": null}}));
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert!(out["spec"].get("tolerations").is_none());
        let out = patched(json!({"metadata": {"annotations": {"x": "1", "gone": null}}}));
        assert_eq!(out["metadata"]["annotations"], json!({"x": "1"}));
    }

    #[test]
    fn conditions_merge_by_type() {
        let out = patched(json!({
        "$setElementOrder/conditions": [{"type": "Ready"}, {"type": "Initialized"}],
        "status": {"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "PodScheduled", "status": "True"},
        ]}}));
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"},
                   {"type": "Initialized", "status": "True"},
                   {"type": "PodScheduled", "status": "True"}])
        );
    }

    #[test]
    fn primitive_lists_and_retain_keys() {
        let out = patched(json!({"metadata": {"finalizers": ["y", "x"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        let out = patched(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!([]));
        let out =
            patched(json!({"metadata": {"$retainKeys": ["name", "labels"], "labels": {"z": "9"}}}));
        assert_eq!(
            out["metadata"],
            json!({"name": "p", "labels": {"a": "1", "b": "2", "z": "9"}})
        );
        let out = apply(
            &json!({"spec": {"ports": [{"port": 80, "name": "http"}]}}),
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
            "Service",
        )
        .unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443}])
        );
    }

    #[test]
    fn new_subtrees_lose_their_directives_and_nulls() {
        let out = apply(
            &json!({"metadata": {"name": "n"}}),
            &json!({"spec": {"containers": [{"name": "c", "args": null, "$patch": "merge"}]}}),
            "Pod",
        )
        .unwrap();
        assert_eq!(out["spec"], json!({"containers": [{"name": "c"}]}));
        assert!(apply(&json!({}), &json!([1]), "Pod").is_err());
    }
}
