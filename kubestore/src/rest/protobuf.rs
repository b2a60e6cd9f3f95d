//! Request bodies in Kubernetes' protobuf encoding
//! (`application/vnd.kubernetes.protobuf`), decoded to JSON.
//!
//! client-go's typed clientsets send protobuf for built-in types (kubectl
//! 1.32's `create namespace`, `create configmap`, `create secret`, `create
//! serviceaccount`, `create service`) and there is no fallback to JSON, so
//! the embedded API reads those bodies. The envelope is the magic `k8s\0`
//! and a `runtime.Unknown` (type meta, raw message); the message is read
//! with the field tables of `protobuf_kinds.rs`. Other kinds are refused
//! with 415, naming JSON.
//!
//! Go's encoder writes plain (non-pointer) fields even when empty, so empty
//! strings, zeros and `false` of those fields are dropped, as Go's JSON
//! `omitempty` drops them; pointer fields ([`Card::Opt`]) keep their value.

use serde_json::{Map, Value};

use super::error::{RestError, Result};

/// The media type.
pub(crate) const MEDIA: &str = "application/vnd.kubernetes.protobuf";
/// What every body starts with.
const MAGIC: &[u8] = b"k8s\0";

use super::protobuf_kinds::{Card, Ty, F, KINDS};
use Card::{Many, One, Opt};
use Ty::{Bool, Bytes, BytesMap, Int, IntOrString, Msg, Str, StrMap, Time};

fn bad(what: &str) -> RestError {
    RestError::BadRequest(format!("invalid protobuf body: {what}"))
}

/// A protobuf body as the JSON object it encodes.
pub(crate) fn decode(body: &[u8]) -> Result<Value> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("no k8s protobuf magic"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for field in Reader(unknown) {
        match field? {
            (1, Wire::Len(type_meta)) => {
                for field in Reader(type_meta) {
                    match field? {
                        (1, Wire::Len(v)) => api_version = text(v)?,
                        (2, Wire::Len(v)) => kind = text(v)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Len(v)) => raw = v,
            (3 | 4, Wire::Len(v)) if !v.is_empty() => {
                return Err(bad("encoded or nested content is not supported"))
            }
            _ => {}
        }
    }
    let fields = KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, fields)| *fields)
        .ok_or_else(|| {
            RestError::UnsupportedMediaType(format!(
                "{MEDIA} is read for core/v1 Namespace, ConfigMap, Secret, ServiceAccount, \
                 Service and DeleteOptions only, not {api_version} {kind}; send application/json"
            ))
        })?;
    let mut object = message(raw, fields)?;
    object.insert("apiVersion".to_owned(), Value::String(api_version));
    object.insert("kind".to_owned(), Value::String(kind));
    Ok(Value::Object(object))
}

/// One field's wire value.
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

/// The fields of a message, in order.
struct Reader<'a>(&'a [u8]);

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u32, Wire<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        Some(self.field())
    }
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first().ok_or_else(|| bad("truncated"))?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(bad("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(bad("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u32, Wire<'a>)> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| bad("field number"))?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => self.take(8).map(|_| Wire::Fixed)?,
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
                Wire::Len(self.take(len)?)
            }
            5 => self.take(4).map(|_| Wire::Fixed)?,
            _ => return Err(bad("unsupported wire type")),
        };
        Ok((number, wire))
    }
}

fn text(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| bad("a string is not UTF-8"))
}

/// A message of `fields`; unknown fields are skipped.
fn message(bytes: &[u8], fields: &[F]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for field in Reader(bytes) {
        let (number, wire) = field?;
        let Some(&(_, name, ty, card)) = fields.iter().find(|f| f.0 == number) else {
            continue;
        };
        let Some(value) = scalar(ty, wire)? else {
            continue;
        };
        match (ty, card) {
            (StrMap | BytesMap, _) => {
                let entry = out.entry(name).or_insert_with(|| Value::Object(Map::new()));
                if let (Some(map), Value::Array(kv)) = (entry.as_object_mut(), value) {
                    if let [Value::String(k), v] = kv.as_slice() {
                        map.insert(k.clone(), v.clone());
                    }
                }
            }
            (_, Many) => {
                let entry = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
                if let Some(list) = entry.as_array_mut() {
                    list.push(value);
                }
            }
            (_, One) if is_zero(&value) => {}
            _ => {
                out.insert(name.to_owned(), value);
            }
        }
    }
    Ok(out)
}

/// Go's zero value of a plain field (dropped, as `omitempty` would).
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// One value of type `ty`; map entries come back as `[key, value]`.
fn scalar(ty: Ty, wire: Wire<'_>) -> Result<Option<Value>> {
    Ok(Some(match (ty, wire) {
        (Str, Wire::Len(v)) => Value::String(text(v)?),
        (Bytes, Wire::Len(v)) => Value::String(base64(v)),
        (Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        // int32 and int64 are two's complement in ten bytes when negative.
        (Int, Wire::Varint(v)) => Value::from(v as i64),
        (Msg(fields), Wire::Len(v)) => Value::Object(message(v, fields)?),
        (Time, Wire::Len(v)) => {
            let time = message(v, &[(1, "seconds", Int, One)])?;
            let Some(seconds) = time.get("seconds").and_then(Value::as_i64) else {
                return Ok(None);
            };
            let ts = jiff::Timestamp::from_second(seconds).map_err(|_| bad("time"))?;
            Value::String(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        }
        (IntOrString, Wire::Len(v)) => {
            let fields: &[F] = &[(1, "t", Int, One), (2, "i", Int, One), (3, "s", Str, One)];
            let v = message(v, fields)?;
            if v.get("t").and_then(Value::as_i64) == Some(1) {
                v.get("s")
                    .cloned()
                    .unwrap_or_else(|| Value::String(String::new()))
            } else {
                v.get("i").cloned().unwrap_or_else(|| Value::from(0))
            }
        }
        (StrMap | BytesMap, Wire::Len(v)) => {
            let value_ty = if matches!(ty, StrMap) { Str } else { Bytes };
            let fields: &[F] = &[(1, "k", Str, Opt), (2, "v", value_ty, Opt)];
            let entry = message(v, fields)?;
            let empty = || Value::String(String::new());
            Value::Array(vec![
                entry.get("k").cloned().unwrap_or_else(empty),
                entry.get("v").cloned().unwrap_or_else(empty),
            ])
        }
        _ => return Err(bad("a field has the wrong wire type")),
    }))
}

/// Standard base64 with padding, as Go's JSON encodes `[]byte`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn varint(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn len(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(&mut out, number << 3 | 2);
        varint(&mut out, bytes.len() as u64);
        out.extend_from_slice(bytes);
        out
    }

    fn int(number: u64, value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(&mut out, number << 3);
        varint(&mut out, value);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [len(1, api_version.as_bytes()), len(2, kind.as_bytes())].concat();
        [
            MAGIC.to_vec(),
            len(1, &type_meta),
            len(2, raw),
            len(3, b""),
            len(4, b""),
        ]
        .concat()
    }

    fn meta(name: &str) -> Vec<u8> {
        [
            len(1, name.as_bytes()),
            len(2, b""),
            len(3, b""),
            int(7, 0),
            len(8, b""),
            len(11, &[len(1, b"app"), len(2, b"web")].concat()),
        ]
        .concat()
    }

    #[test]
    fn namespace_as_kubectl_sends_it() {
        let raw = [len(1, &meta("team")), len(2, b""), len(3, &len(1, b""))].concat();
        let ns = decode(&envelope("v1", "Namespace", &raw)).unwrap();
        assert_eq!(
            ns,
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "team", "labels": {"app": "web"}},
                   "spec": {}, "status": {}})
        );
    }

    #[test]
    fn maps_bytes_times_and_pointers() {
        let data = [len(1, b"k"), len(2, b"\x00\xffhi")].concat();
        let raw = [
            len(1, &meta("s")),
            len(2, &data),
            len(3, b"Opaque"),
            len(4, &[len(1, b"plain"), len(2, b"text")].concat()),
            int(5, 0),
        ]
        .concat();
        let secret = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(secret["data"], json!({"k": "AP9oaQ=="}));
        assert_eq!(secret["stringData"], json!({"plain": "text"}));
        assert_eq!(secret["type"], "Opaque");
        assert_eq!(secret["immutable"], false, "a pointer keeps its zero");
        let port = [
            len(2, b"TCP"),
            int(3, 80),
            len(4, &[int(1, 0), int(2, 8080)].concat()),
        ]
        .concat();
        let named = len(4, &[int(1, 1), len(3, b"http")].concat());
        let spec = [len(1, &port), len(1, &named), len(4, b"ClusterIP")].concat();
        let svc = decode(&envelope(
            "v1",
            "Service",
            &[len(1, &meta("web")), len(2, &spec)].concat(),
        ))
        .unwrap();
        assert_eq!(
            svc["spec"],
            json!({"ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080},
                             {"targetPort": "http"}],
                   "type": "ClusterIP"})
        );
        let stamped = [len(1, b"x"), len(8, &int(1, 1_700_000_000))].concat();
        let cm = decode(&envelope("v1", "ConfigMap", &len(1, &stamped))).unwrap();
        assert_eq!(cm["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        let options = len(2, &len(1, b"uid-1"));
        let delete = decode(&envelope("meta.k8s.io/v1", "DeleteOptions", &options)).unwrap();
        assert_eq!(delete["preconditions"], json!({"uid": "uid-1"}));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
        let err = decode(&envelope("v1", "Pod", &[])).unwrap_err();
        assert_eq!(err.reason(), "UnsupportedMediaType");
        for body in [
            &b"{}"[..],
            b"k8s\0\x0a",
            b"k8s\0\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"k8s\0\x0b",
        ] {
            assert_eq!(decode(body).unwrap_err().reason(), "BadRequest", "{body:?}");
        }
        let wrong_wire = [len(1, &int(1, 5))].concat();
        assert!(decode(&envelope("v1", "ConfigMap", &wrong_wire)).is_err());
    }
}
