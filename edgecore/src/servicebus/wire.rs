//! The JSON ServiceBus exchanges, in KubeEdge's shapes (pure, no IO).
//!
//! - From the cloud, a request to a local app: `{header, body, method, url}`
//!   ([`CloudRequest`]). `header` is Go's `http.Header`, a map of name to a
//!   list of values (a single string value is accepted too). `body` is Go's
//!   `[]byte`, which Go's JSON writes as **standard base64** (padding
//!   optional here); `null` or absent is an empty body. `url` is not used:
//!   the target is the message's resource, as in KubeEdge.
//! - To the cloud, the app's answer: `{header, status_code, body}`
//!   ([`CloudResponse`]), with header names in Go's canonical form
//!   (`Content-Type`) and the body base64, so a Go reader gets its bytes.
//! - From a local app, a request for the cloud: `{method, targetURL,
//!   payload}` ([`AppRequest`]); `payload` is any JSON value and is not
//!   decoded: the whole body goes to the cloud as KubeEdge sends it.
//! - To the local app: `{code, msg, body}` ([`AppResponse`]).

use std::collections::BTreeMap;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Standard base64 as Go writes `[]byte`, read with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Go's `http.Header`: each name with its values, in order.
pub(crate) type Headers = BTreeMap<String, Vec<String>>;

/// Standard base64 of `bytes`, padded, as Go's JSON writes `[]byte`.
pub(crate) fn encode_bytes(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// The bytes of a base64 string as Go's JSON writes `[]byte`.
pub(crate) fn decode_bytes(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    BASE64.decode(text)
}

/// A header value as sent: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The request content as it is on the wire.
#[derive(Debug, Deserialize)]
struct RawCloudRequest {
    #[serde(default)]
    header: Option<BTreeMap<String, OneOrMany>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// A cloud request to a local app, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloudRequest {
    /// Request headers.
    pub(crate) header: Headers,
    /// The body, base64-decoded.
    pub(crate) body: Vec<u8>,
    /// The HTTP method; empty if not given.
    pub(crate) method: String,
    /// The URL the cloud was called on (informational only).
    pub(crate) url: String,
}

impl CloudRequest {
    /// Decodes a message content. The error says what is wrong.
    pub(crate) fn from_content(content: Value) -> Result<CloudRequest, String> {
        if !content.is_object() {
            return Err(format!("expected a JSON object, got {}", kind(&content)));
        }
        let raw: RawCloudRequest = serde_json::from_value(content).map_err(|e| e.to_string())?;
        let body = match raw.body.as_deref() {
            None | Some("") => Vec::new(),
            Some(text) => {
                decode_bytes(text).map_err(|e| format!("body is not standard base64: {e}"))?
            }
        };
        let header = raw
            .header
            .unwrap_or_default()
            .into_iter()
            .map(|(name, values)| match values {
                OneOrMany::One(v) => (name, vec![v]),
                OneOrMany::Many(vs) => (name, vs),
            })
            .collect();
        Ok(CloudRequest {
            header,
            body,
            method: raw.method.unwrap_or_default(),
            url: raw.url.unwrap_or_default(),
        })
    }
}

/// A local app's answer (or ServiceBus's error in its place) for the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloudResponse {
    /// Response headers, names in Go's canonical form.
    pub(crate) header: Headers,
    /// The HTTP status code.
    pub(crate) status_code: u16,
    /// The body.
    pub(crate) body: Vec<u8>,
}

impl CloudResponse {
    /// The content of the reply: `{header, status_code, body}` with the
    /// body base64.
    pub(crate) fn to_content(&self) -> Value {
        serde_json::json!({
            "header": self.header,
            "status_code": self.status_code,
            "body": encode_bytes(&self.body),
        })
    }
}

/// Adds `value` under `name` in Go's canonical form (`content-type` →
/// `Content-Type`), so Go's `Header.Get` finds it.
pub(crate) fn add_header(headers: &mut Headers, name: &str, value: String) {
    headers
        .entry(canonical_header_key(name))
        .or_default()
        .push(value);
}

/// Go's `CanonicalMIMEHeaderKey`: the first letter and every letter after a
/// hyphen upper case, the rest lower case. Names with characters outside
/// letters, digits and `-` are kept as they are, as Go does.
pub(crate) fn canonical_header_key(name: &str) -> String {
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// What a local app POSTs to have a request sent to the cloud.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct AppRequest {
    /// The method for the cloud's target (informational at the edge).
    #[serde(default)]
    pub(crate) method: Option<String>,
    /// The URL the cloud should call; must be in `target_urls`.
    #[serde(rename = "targetURL")]
    pub(crate) target_url: String,
    /// Anything; forwarded as part of the body, not decoded here.
    #[serde(default)]
    pub(crate) payload: Option<Value>,
}

/// What the local app gets back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppResponse {
    /// The outcome, an HTTP status code (also the response's status).
    pub(crate) code: u16,
    /// A short explanation.
    pub(crate) msg: String,
    /// The cloud's answer (empty on error).
    pub(crate) body: String,
}

impl AppResponse {
    /// An error answer.
    pub(crate) fn error(code: u16, msg: impl Into<String>) -> AppResponse {
        AppResponse {
            code,
            msg: msg.into(),
            body: String::new(),
        }
    }
}

/// The JSON type of `v`, for error messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;
    use serde_json::json;

    #[test]
    fn cloud_request_as_go_writes_it() {
        let content = json!({
            "header": {"Content-Type": ["text/plain"], "X-Many": ["a", "b"], "X-One": "c"},
            "body": "aGVsbG8=",
            "method": "POST",
            "url": "/rest/a"
        });
        let req = CloudRequest::from_content(content).unwrap();
        assert_eq!(req.body, b"hello");
        assert_eq!(req.method, "POST");
        assert_eq!(req.header["X-Many"], ["a", "b"]);
        assert_eq!(req.header["X-One"], ["c"]);
        assert_eq!(req.url, "/rest/a");
    }

    #[test]
    fn nulls_and_missing_fields_are_empty() {
        let req = CloudRequest::from_content(json!({"header": null, "body": null})).unwrap();
        assert!(req.body.is_empty() && req.header.is_empty() && req.method.is_empty());
        // Unpadded base64 is read too.
        let req = CloudRequest::from_content(json!({"body": "aGk"})).unwrap();
        assert_eq!(req.body, b"hi");
    }

    #[test]
    fn bad_contents_say_what_is_wrong() {
        let err = CloudRequest::from_content(json!("GET /")).unwrap_err();
        assert!(err.contains("a string"), "{err}");
        let err = CloudRequest::from_content(json!({"body": "not base64!"})).unwrap_err();
        assert!(err.contains("base64"), "{err}");
        let err = CloudRequest::from_content(json!({"method": 7})).unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn response_content_is_go_shaped() {
        let mut header = Headers::new();
        add_header(&mut header, "content-type", "text/plain".into());
        add_header(&mut header, "x-a-b", "1".into());
        add_header(&mut header, "X-A-B", "2".into());
        let resp = CloudResponse {
            header,
            status_code: 201,
            body: b"ok".to_vec(),
        };
        assert_eq!(
            resp.to_content(),
            json!({"header": {"Content-Type": ["text/plain"], "X-A-B": ["1", "2"]},
                   "status_code": 201, "body": "b2s="})
        );
    }

    #[test]
    fn canonical_keys_follow_go() {
        assert_eq!(canonical_header_key("content-TYPE"), "Content-Type");
        assert_eq!(canonical_header_key("x-request-id"), "X-Request-Id");
        assert_eq!(canonical_header_key("a_b"), "a_b");
    }

    #[test]
    fn app_request_fields() {
        let req: AppRequest = serde_json::from_str(
            r#"{"method":"POST","targetURL":"http://cloud/x","payload":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(req.target_url, "http://cloud/x");
        assert_eq!(req.payload, Some(json!({"a": 1})));
        let err = serde_json::from_str::<AppRequest>(r#"{"method":"POST"}"#).unwrap_err();
        assert!(err.to_string().contains("targetURL"), "{err}");
    }
}
