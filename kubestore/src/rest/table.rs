//! The `meta.k8s.io` Table that `kubectl get` asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): column
//! definitions from the resource's printer (`printers.rs`), one row of
//! cells per object, and each row's object as PartialObjectMetadata, the
//! whole object, or nothing (`includeObject`). Pure: the caller passes
//! `now`, from which ages are computed.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::params::{IncludeObject, MetaVersion};
use super::printers;
use crate::resource::ResourceInfo;
use crate::store::Object;

/// A column of a Table (`TableColumnDefinition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Column {
    /// Header, e.g. `Name`; kubectl prints it upper-cased.
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `name` for the name column, else empty.
    pub format: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// 0: always shown; 1: with `-o wide`.
    pub priority: i32,
}

impl Column {
    /// An always-shown string column.
    pub(crate) const fn text(name: &'static str, description: &'static str) -> Column {
        Column {
            name,
            kind: "string",
            format: "",
            description,
            priority: 0,
        }
    }

    /// An always-shown integer column.
    pub(crate) const fn integer(name: &'static str, description: &'static str) -> Column {
        Column {
            kind: "integer",
            ..Column::text(name, description)
        }
    }

    /// Shown with `-o wide` only.
    pub(crate) const fn wide(self) -> Column {
        Column {
            priority: 1,
            ..self
        }
    }
}

/// The name column every table starts with.
pub(crate) const NAME: Column = Column {
    format: "name",
    ..Column::text(
        "Name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    )
};

/// The age column.
pub(crate) const AGE: Column = Column::text(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
);

/// Builds Tables of one resource.
#[derive(Debug, Clone)]
pub(crate) struct TableBuilder<'a> {
    pub info: &'a ResourceInfo,
    pub version: MetaVersion,
    pub include: IncludeObject,
    pub now: Timestamp,
}

impl TableBuilder<'_> {
    /// A Table of `objects` at `resource_version`.
    pub(crate) fn table<'o>(
        &self,
        objects: impl IntoIterator<Item = &'o Object>,
        resource_version: u64,
    ) -> Value {
        let printer = printers::printer(self.info);
        let rows: Vec<Value> = objects
            .into_iter()
            .map(|object| {
                let mut row = Map::new();
                row.insert(
                    "cells".to_owned(),
                    Value::Array((printer.cells)(&object.value, self.now)),
                );
                match self.include {
                    IncludeObject::None => {}
                    IncludeObject::Metadata => {
                        row.insert(
                            "object".to_owned(),
                            partial_metadata(&object.value, self.version),
                        );
                    }
                    IncludeObject::Object => {
                        row.insert("object".to_owned(), typed(self.info, &object.value));
                    }
                }
                Value::Object(row)
            })
            .collect();
        json!({
            "kind": "Table",
            "apiVersion": self.version.api_version(),
            "metadata": {"resourceVersion": resource_version.to_string()},
            "columnDefinitions": printer.columns,
            "rows": rows,
        })
    }
}

/// `value` with `apiVersion` and `kind` filled in from `info` if missing.
pub(crate) fn typed(info: &ResourceInfo, value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(obj) = value.as_object_mut() {
        obj.entry("apiVersion")
            .or_insert_with(|| Value::String(info.gvr.api_version()));
        obj.entry("kind")
            .or_insert_with(|| Value::String(info.kind.clone()));
    }
    value
}

/// The object's `metadata` as a PartialObjectMetadata.
pub(crate) fn partial_metadata(value: &Value, version: MetaVersion) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": version.api_version(),
        "metadata": value.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The age of the RFC 3339 timestamp at `path` of `value`, as kubectl
/// prints it; `<unknown>` when missing or unreadable.
pub(crate) fn age(value: &Value, pointer: &str, now: Timestamp) -> String {
    match value
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok())
    {
        Some(then) => human_duration(now.as_second() - then.as_second()),
        None => "<unknown>".to_owned(),
    }
}

/// Kubernetes' `duration.HumanDuration` of a span in seconds: `42s`,
/// `3m20s`, `15m`, `5h3m`, `20h`, `3d4h`, `45d`, `2y30d`, `9y`.
pub(crate) fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{edge_resources, Gvr, Resources};
    use crate::store::ObjectKey;

    #[test]
    fn ages_as_kubectl_prints_them() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (900, "15m"),
            (3 * 3600 + 60, "3h1m"),
            (5 * 3600, "5h"),
            (20 * 3600 + 59, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (3 * 86400, "3d"),
            (45 * 86400, "45d"),
            (2 * 365 * 86400 + 30 * 86400, "2y30d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, text) in cases {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
        let now: Timestamp = "2025-01-01T00:10:00Z".parse().unwrap();
        let cm = json!({"metadata": {"creationTimestamp": "2025-01-01T00:00:00Z"}});
        assert_eq!(age(&cm, "/metadata/creationTimestamp", now), "10m");
        assert_eq!(
            age(&json!({}), "/metadata/creationTimestamp", now),
            "<unknown>"
        );
    }

    #[test]
    fn a_table_of_configmaps() {
        let info = Resources::new(edge_resources())
            .get("", "v1", "configmaps")
            .unwrap();
        let now: Timestamp = "2025-01-01T00:01:00Z".parse().unwrap();
        let cm = Object::new(
            ObjectKey::new(Gvr::core("configmaps"), Some("ns"), "cm"),
            7,
            json!({"metadata": {"name": "cm", "namespace": "ns",
                                "creationTimestamp": "2025-01-01T00:00:00Z"},
                   "data": {"a": "1", "b": "2"}}),
        );
        let mut builder = TableBuilder {
            info: &info,
            version: MetaVersion::V1,
            include: IncludeObject::Metadata,
            now,
        };
        let table = builder.table([&cm], 9);
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["metadata"]["resourceVersion"], "9");
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Data", "Age"]);
        assert_eq!(table["columnDefinitions"][0]["format"], "name");
        assert_eq!(table["rows"][0]["cells"], json!(["cm", 2, "60s"]));
        let object = &table["rows"][0]["object"];
        assert_eq!(object["kind"], "PartialObjectMetadata");
        assert_eq!(object["metadata"]["namespace"], "ns");
        assert_eq!(object["metadata"]["resourceVersion"], "7");
        assert!(object.get("data").is_none());

        builder.include = IncludeObject::Object;
        let table = builder.table([&cm], 9);
        let object = &table["rows"][0]["object"];
        assert_eq!(
            (object["kind"].as_str(), object["apiVersion"].as_str()),
            (Some("ConfigMap"), Some("v1"))
        );
        assert_eq!(object["data"]["a"], "1");
        builder.include = IncludeObject::None;
        assert!(builder.table([&cm], 9)["rows"][0].get("object").is_none());
        assert_eq!(builder.table([], 3)["rows"], json!([]));
    }
}
