//! Response bodies in the representation the client negotiated
//! ([`Output`]): an object or its list as stored (with `apiVersion` and
//! `kind` filled in when the stored JSON lacks them), a Table, or
//! PartialObjectMetadata; and watch events, one JSON object per line.
//!
//! Lists of stored objects are spliced from each object's cached
//! serialisation, so a list costs no re-encoding.

use bytes::{BufMut, Bytes, BytesMut};
use jiff::Timestamp;
use serde_json::{json, Value};

use super::error::RestError;
use super::params::{IncludeObject, Output};
use super::table::{partial_metadata, typed, TableBuilder};
use crate::resource::ResourceInfo;
use crate::store::Object;

/// The annotation on the bookmark that ends a watch's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Renders one resource's objects.
#[derive(Debug, Clone)]
pub(crate) struct Render {
    pub info: ResourceInfo,
    pub output: Output,
    pub include: IncludeObject,
}

impl Render {
    /// The body of a get: the object, or a Table of it whose
    /// `resourceVersion` is `resource_version` (where a watch of it may
    /// start).
    pub(crate) fn object(&self, object: &Object, resource_version: u64, now: Timestamp) -> Bytes {
        match self.output {
            Output::Json => self.object_json(object),
            Output::Metadata(version) => to_bytes(&partial_metadata(&object.value, version)),
            Output::Table(_) => to_bytes(&self.table(now).table([object], resource_version)),
        }
    }

    /// The body of a list at `revision`.
    pub(crate) fn list(&self, objects: &[&Object], revision: u64, now: Timestamp) -> Bytes {
        let (kind, api_version) = match self.output {
            Output::Table(_) => {
                return to_bytes(&self.table(now).table(objects.iter().copied(), revision))
            }
            Output::Json => (self.info.list_kind(), self.info.gvr.api_version()),
            Output::Metadata(v) => (
                "PartialObjectMetadataList".to_owned(),
                v.api_version().to_owned(),
            ),
        };
        let mut out = BytesMut::with_capacity(128 + objects.len() * 512);
        out.put_slice(
            format!(
                r#"{{"kind":"{kind}","apiVersion":"{api_version}","metadata":{{"resourceVersion":"{revision}"}},"items":["#
            )
            .as_bytes(),
        );
        for (i, object) in objects.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            match self.output {
                Output::Metadata(v) => {
                    out.put_slice(&to_bytes(&partial_metadata(&object.value, v)))
                }
                _ => out.put_slice(&self.object_json(object)),
            }
        }
        out.put_slice(b"]}");
        out.freeze()
    }

    /// A watch event line: `{"type":"ADDED","object":{...}}\n`.
    pub(crate) fn event(&self, kind: &str, object: &Object, now: Timestamp) -> Bytes {
        let body = match self.output {
            Output::Table(_) => to_bytes(&self.table(now).table([object], object.revision)),
            _ => self.object(object, object.revision, now),
        };
        line(kind, &body)
    }

    /// A BOOKMARK event at `revision`; `initial_end` marks the end of the
    /// initial events of a `sendInitialEvents` watch.
    pub(crate) fn bookmark(&self, revision: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        let object = match self.output {
            Output::Json => json!({
                "kind": self.info.kind,
                "apiVersion": self.info.gvr.api_version(),
                "metadata": metadata,
            }),
            Output::Metadata(v) => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": v.api_version(),
                "metadata": metadata,
            }),
            Output::Table(v) => json!({
                "kind": "Table",
                "apiVersion": v.api_version(),
                "metadata": metadata,
                "columnDefinitions": [],
                "rows": [],
            }),
        };
        line("BOOKMARK", &to_bytes(&object))
    }

    /// An ERROR event carrying `err` as a Status.
    pub(crate) fn error(&self, err: &RestError) -> Bytes {
        line("ERROR", &err.status_json())
    }

    /// The stored object, typed.
    fn object_json(&self, object: &Object) -> Bytes {
        let has = |field| object.value.get(field).is_some_and(Value::is_string);
        if has("apiVersion") && has("kind") {
            object.json()
        } else {
            to_bytes(&typed(&self.info, &object.value))
        }
    }

    fn table(&self, now: Timestamp) -> TableBuilder<'_> {
        let version = match self.output {
            Output::Table(v) | Output::Metadata(v) => v,
            Output::Json => super::params::MetaVersion::V1,
        };
        TableBuilder {
            info: &self.info,
            version,
            include: self.include,
            now,
        }
    }
}

fn line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(object.len() + 32);
    out.put_slice(br#"{"type":""#);
    out.put_slice(kind.as_bytes());
    out.put_slice(br#"","object":"#);
    out.put_slice(object);
    out.put_slice(b"}\n");
    out.freeze()
}

/// A JSON value as bytes; values built from JSON always serialise.
fn to_bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{Gvr, ResourceInfo};
    use crate::rest::params::MetaVersion;
    use crate::store::{ObjectKey, WatchError};

    fn render(output: Output) -> Render {
        Render {
            info: ResourceInfo::new(Gvr::core("pods"), "Pod", true),
            output,
            include: IncludeObject::Metadata,
        }
    }

    fn pod(name: &str, rev: u64, typed: bool) -> Object {
        let mut value = json!({"metadata": {"name": name, "namespace": "ns"}});
        if typed {
            value["kind"] = json!("Pod");
            value["apiVersion"] = json!("v1");
        }
        Object::new(
            ObjectKey::new(Gvr::core("pods"), Some("ns"), name),
            rev,
            value,
        )
    }

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn lists_splice_objects_and_fill_type_meta() {
        let (a, b) = (pod("a", 3, true), pod("b", 4, false));
        let now = Timestamp::UNIX_EPOCH;
        let list = parse(&render(Output::Json).list(&[&a, &b], 9, now));
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["apiVersion"], "v1");
        assert_eq!(list["metadata"]["resourceVersion"], "9");
        assert_eq!(list["items"][1]["kind"], "Pod");
        assert_eq!(list["items"][1]["metadata"]["resourceVersion"], "4");
        assert_eq!(
            parse(&render(Output::Json).list(&[], 1, now))["items"],
            json!([])
        );
        let meta = parse(&render(Output::Metadata(MetaVersion::V1)).list(&[&a], 9, now));
        assert_eq!(meta["kind"], "PartialObjectMetadataList");
        assert_eq!(meta["items"][0]["kind"], "PartialObjectMetadata");
        let table = parse(&render(Output::Table(MetaVersion::V1beta1)).list(&[&a, &b], 9, now));
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(table["rows"].as_array().unwrap().len(), 2);
        let one = parse(&render(Output::Json).object(&b, 4, now));
        assert_eq!(
            (one["kind"].as_str(), one["apiVersion"].as_str()),
            (Some("Pod"), Some("v1"))
        );
    }

    #[test]
    fn watch_lines() {
        let now = Timestamp::UNIX_EPOCH;
        let line = render(Output::Json).event("ADDED", &pod("a", 3, false), now);
        assert!(line.ends_with(b"}\n"));
        let event = parse(&line);
        assert_eq!(event["type"], "ADDED");
        assert_eq!(event["object"]["kind"], "Pod");
        let table = parse(&render(Output::Table(MetaVersion::V1)).event(
            "DELETED",
            &pod("a", 3, true),
            now,
        ));
        assert_eq!(table["object"]["kind"], "Table");
        assert_eq!(table["object"]["metadata"]["resourceVersion"], "3");
        let bookmark = parse(&render(Output::Json).bookmark(12, true));
        assert_eq!(
            bookmark,
            json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
                   "metadata": {"resourceVersion": "12",
                                "annotations": {"k8s.io/initial-events-end": "true"}}}})
        );
        let error = parse(
            &render(Output::Json).error(&RestError::Expired(WatchError::Gone {
                requested: 1,
                oldest: 4,
            })),
        );
        assert_eq!(error["type"], "ERROR");
        assert_eq!(error["object"]["code"], 410);
    }
}
