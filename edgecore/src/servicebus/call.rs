//! Cloud → local app: a message from KubeEdge's Router (source
//! `router_servicebus`, group `user`) names `<port>:<path>` as its resource
//! and carries `{header, body, method, url}`; ServiceBus calls
//! `http://127.0.0.1:<port><path>` and answers the cloud with `{header,
//! status_code, body}` (see `wire.rs` for the encodings).
//!
//! Only the loopback address is ever called: the host is fixed, the port is
//! checked to be 1..=65535 and redirects are not followed. A path without a
//! leading `/` gets one (older KubeEdge clouds sent it so). The whole call,
//! body included, must end within `modules.serviceBus.timeout`, and an
//! answer body over [`MAX_BODY`] is refused. `Host`, `Content-Length`,
//! `Connection` and `Transfer-Encoding` from the cloud are not passed on
//! (the client sets its own, as Go's does).
//!
//! The reply is built as KubeEdge's: op `upload`, source `servicebus`,
//! group `user`, `parent_msg_id` = the request's id (here the resource of
//! the request is kept). An error reply has the same shape, a 4xx/5xx
//! `status_code`, the header `Server: kubeedge-edgecore` and the reason as
//! its body.

use std::sync::Arc;
use std::time::Duration;

use proto::modules::{edge, group};
use proto::{Message, Operation};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::error::{CallError, ServiceBusError};
use super::wire::{self, CloudRequest, CloudResponse, Headers};

/// The largest body accepted either way (KubeEdge: 5 MB).
pub(crate) const MAX_BODY: usize = 5 * 1024 * 1024;

/// The `Server` header of ServiceBus's own error replies, as KubeEdge's.
pub(crate) const SERVER_HEADER: &str = "kubeedge-edgecore";

/// Request headers the client sets itself.
const NOT_FORWARDED: &[&str] = &["host", "content-length", "connection", "transfer-encoding"];

/// The port and path of a `<port>:<path>` resource.
pub(crate) fn parse_resource(resource: &str) -> Result<(u16, String), CallError> {
    let bad = |reason| CallError::BadResource {
        resource: resource.chars().take(200).collect(),
        reason,
    };
    let (port, path) = resource.split_once(':').ok_or_else(|| bad("no ':'"))?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the port is not a number"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("the port is not in 1..=65535"))?;
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok((port, path))
}

/// `http://127.0.0.1:<port><path>`, checked to still point there.
pub(crate) fn target_url(port: u16, path: &str) -> Result<Url, CallError> {
    let text = format!("http://127.0.0.1:{port}{path}");
    let url =
        Url::parse(&text).map_err(|e| CallError::BadRequest(format!("bad URL {text}: {e}")))?;
    if url.host_str() != Some("127.0.0.1") || url.port() != Some(port) {
        return Err(CallError::BadRequest(format!("{text} is not a local URL")));
    }
    Ok(url)
}

/// The method to use: the content's, else the operation's when it is one
/// (KubeEdge's Router sets the operation to the method), else GET.
pub(crate) fn method_of(req: &CloudRequest, operation: &Operation) -> Result<Method, CallError> {
    let name = if !req.method.is_empty() {
        req.method.to_ascii_uppercase()
    } else if is_http_method(operation.as_str()) {
        operation.as_str().to_ascii_uppercase()
    } else {
        "GET".to_owned()
    };
    Method::from_bytes(name.as_bytes())
        .map_err(|_| CallError::BadRequest(format!("bad method {:?}", req.method)))
}

/// Whether `op` is an HTTP method name (any case).
pub(crate) fn is_http_method(op: &str) -> bool {
    const METHODS: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
    ];
    METHODS.iter().any(|m| m.eq_ignore_ascii_case(op))
}

/// The forwarded headers.
pub(crate) fn header_map(headers: &Headers) -> Result<HeaderMap, CallError> {
    let mut map = HeaderMap::new();
    for (name, values) in headers {
        if NOT_FORWARDED.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        let key = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| CallError::BadRequest(format!("bad header name {name:?}")))?;
        for value in values {
            let value = HeaderValue::from_str(value)
                .map_err(|_| CallError::BadRequest(format!("bad value of header {name}")))?;
            map.append(key.clone(), value);
        }
    }
    Ok(map)
}

/// A client for plain HTTP that follows no redirects and uses no proxy.
pub(crate) fn plain_http_client(
    connect_timeout: Duration,
) -> Result<reqwest::Client, ServiceBusError> {
    // No TLS is used, but the client wants a configuration (and no
    // process-wide crypto provider is installed).
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(ServiceBusError::Tls)?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .build()
        .map_err(ServiceBusError::Client)
}

/// Makes the calls to local apps.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    client: reqwest::Client,
    timeout: Duration,
}

impl Caller {
    /// A caller giving each call `timeout`.
    pub(crate) fn new(timeout: Duration) -> Result<Caller, ServiceBusError> {
        Ok(Caller {
            client: plain_http_client(timeout)?,
            timeout,
        })
    }

    /// Calls the app and returns its answer.
    pub(crate) async fn call(&self, call: Call) -> Result<CloudResponse, CallError> {
        let shown = call.url.to_string();
        let exchange = async {
            let response = self
                .client
                .request(call.method, call.url)
                .headers(call.headers)
                .body(call.body)
                .send()
                .await
                .map_err(|source| {
                    if source.is_connect() {
                        CallError::Unreachable {
                            url: shown.clone(),
                            source,
                        }
                    } else {
                        CallError::Failed {
                            url: shown.clone(),
                            source,
                        }
                    }
                })?;
            read_response(response, &shown).await
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(CallError::Timeout {
                    url: shown.clone(),
                    timeout: self.timeout,
                })
            })
    }
}

/// One call to make, checked.
#[derive(Debug)]
pub(crate) struct Call {
    /// `http://127.0.0.1:<port><path>`.
    pub(crate) url: Url,
    /// The method.
    pub(crate) method: Method,
    /// The headers passed on.
    pub(crate) headers: HeaderMap,
    /// The body, decoded.
    pub(crate) body: Vec<u8>,
}

impl Call {
    /// The call a cloud message asks for (pure).
    pub(crate) fn from_message(msg: &Message) -> Result<Call, CallError> {
        let (port, path) = parse_resource(msg.resource())?;
        let req = CloudRequest::from_content(msg.content_json()).map_err(CallError::BadContent)?;
        Ok(Call {
            url: target_url(port, &path)?,
            method: method_of(&req, msg.operation())?,
            headers: header_map(&req.header)?,
            body: req.body,
        })
    }
}

/// Status, headers and body (at most [`MAX_BODY`]) of the app's answer.
async fn read_response(
    mut response: reqwest::Response,
    url: &str,
) -> Result<CloudResponse, CallError> {
    let status_code = response.status().as_u16();
    let mut header = Headers::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        wire::add_header(&mut header, name.as_str(), value);
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(too_large(url));
    }
    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|source| CallError::Failed {
            url: url.to_owned(),
            source,
        })?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large(url));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(CloudResponse {
        header,
        status_code,
        body,
    })
}

fn too_large(url: &str) -> CallError {
    CallError::TooLarge {
        url: url.to_owned(),
        limit: MAX_BODY,
    }
}

/// The reply to the cloud for `request`: the app's answer, or an error in
/// the same shape.
pub(crate) fn reply(request: &Message, outcome: &Result<CloudResponse, CallError>) -> Message {
    let content = match outcome {
        Ok(response) => response.to_content(),
        Err(err) => error_response(err).to_content(),
    };
    let mut reply = request.reply(content);
    reply.route.source = edge::SERVICEBUS.to_owned();
    reply.route.group = group::USER.to_owned();
    reply.route.operation = Operation::Upload;
    reply
}

/// ServiceBus's own answer in place of the app's.
pub(crate) fn error_response(err: &CallError) -> CloudResponse {
    let mut header = Headers::new();
    wire::add_header(&mut header, "Server", SERVER_HEADER.to_owned());
    wire::add_header(
        &mut header,
        "Content-Type",
        "text/plain; charset=utf-8".to_owned(),
    );
    CloudResponse {
        header,
        status_code: err.status(),
        body: beehive::error_chain(err).into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;
    use serde_json::json;

    #[test]
    fn resources() {
        assert_eq!(parse_resource("8080:/a/b").unwrap(), (8080, "/a/b".into()));
        assert_eq!(parse_resource("80:a").unwrap(), (80, "/a".into()));
        assert_eq!(parse_resource("80:").unwrap(), (80, "/".into()));
        assert_eq!(
            parse_resource("80:/x?q=1:2").unwrap(),
            (80, "/x?q=1:2".into())
        );
        for bad in ["8080", ":/a", "0:/a", "65536:/a", "-1:/a", "x:/a", "+80:/a"] {
            let err = parse_resource(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
        }
    }

    #[test]
    fn urls_stay_on_loopback() {
        let url = target_url(8080, "/a?b=c").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/a?b=c");
        let url = target_url(8080, "/@evil.example/x").unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
    }

    #[test]
    fn methods() {
        let req = |m: &str| CloudRequest::from_content(json!({ "method": m })).unwrap();
        assert_eq!(
            method_of(&req("post"), &Operation::Upload).unwrap(),
            Method::POST
        );
        assert_eq!(
            method_of(&req(""), &Operation::parse("DELETE")).unwrap(),
            Method::DELETE
        );
        assert_eq!(
            method_of(&req(""), &Operation::Upload).unwrap(),
            Method::GET
        );
        assert_eq!(
            method_of(&req("BAD METHOD"), &Operation::Upload)
                .unwrap_err()
                .status(),
            400
        );
        assert!(is_http_method("get") && is_http_method("PATCH") && !is_http_method("upload"));
    }

    #[test]
    fn headers_are_checked_and_hop_headers_dropped() {
        let mut h = Headers::new();
        h.insert("X-A".into(), vec!["1".into(), "2".into()]);
        h.insert("Host".into(), vec!["cloud".into()]);
        h.insert("content-length".into(), vec!["9".into()]);
        let map = header_map(&h).unwrap();
        assert_eq!(map.get_all("x-a").iter().count(), 2);
        assert!(map.get("host").is_none() && map.get("content-length").is_none());
        h.insert("Bad Name".into(), vec!["x".into()]);
        assert_eq!(header_map(&h).unwrap_err().status(), 400);
    }

    #[test]
    fn replies_follow_kubeedge() {
        let req = Message::new(
            "router_servicebus",
            "user",
            Operation::parse("POST"),
            "80:/a",
        );
        let ok = CloudResponse {
            header: Headers::new(),
            status_code: 200,
            body: b"hi".to_vec(),
        };
        let r = reply(&req, &Ok(ok));
        assert_eq!(r.parent_id(), Some(req.id()));
        assert_eq!(*r.operation(), Operation::Upload);
        assert_eq!(
            (r.route.source.as_str(), r.route.group.as_str()),
            ("servicebus", "user")
        );
        assert_eq!(r.content["body"], "aGk=");
        let err = parse_resource("nope").unwrap_err();
        let r = reply(&req, &Err(err));
        assert_eq!(r.content["status_code"], 400);
        assert_eq!(r.content["header"]["Server"], json!(["kubeedge-edgecore"]));
        let body = wire::decode_bytes(r.content["body"].as_str().unwrap()).unwrap();
        assert!(String::from_utf8(body).unwrap().contains("nope"));
    }
}
