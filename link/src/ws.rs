//! The WebSocket transport, KubeEdge's default: TLS over TCP, then an HTTP
//! upgrade to `wss://<server>/<projectID>/<nodeID>/events`.
//!
//! The client sends headers `node_id`, `project_id`, `ConnectionUse: msg`
//! and `x-apiary-acks: v1`. The server ignores the path (as KubeEdge),
//! requires `node_id` and `project_id`, refuses a `node_id` that is not the
//! client certificate's node (403), and echoes `x-apiary-acks: v1` when the
//! client sent it. Each message is one JSON text frame (binary frames with
//! JSON are accepted too); both directions are capped at
//! [`Limits::max_frame`], which tungstenite enforces on the frame header
//! before buffering the payload.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use crate::conn::{
    within, Connection, Incoming, Limits, LinkReceiver, LinkSender, Peer, ReceiverInner,
    SenderInner, Transport,
};
use crate::error::{AcceptError, LinkError, TlsError};
use crate::tls::node_of;

/// The header naming the node (KubeEdge spelling, with an underscore).
const NODE_ID: &str = "node_id";
/// The header naming the project.
const PROJECT_ID: &str = "project_id";
/// KubeEdge's connection-use header; `msg` for the message link.
const CONNECTION_USE: &str = "connectionuse";
/// Apiary's upstream-ack extension header, and the version we speak.
const ACKS: &str = "x-apiary-acks";
const ACKS_VERSION: &str = "v1";

type WsStream = WebSocketStream<TlsStream<TcpStream>>;

/// Where and as whom an edge dials the cloud (both transports).
#[derive(Debug, Clone)]
pub struct Dial {
    /// The cloud's `host:port`.
    pub server: String,
    /// The name the server certificate must carry (DNS name or IP).
    pub server_name: String,
    /// The KubeEdge project id (`project_id` header, URL path).
    pub project_id: String,
    /// This node's name; must match the CN of the certificate in `tls`.
    pub node_id: String,
    /// From [`crate::client_config`].
    pub tls: Arc<rustls::ClientConfig>,
    /// Frame cap and handshake timeout.
    pub limits: Limits,
}

/// The server side of the WebSocket transport: turns an accepted TCP
/// stream into a [`Connection`] with a verified [`Peer`].
#[derive(Clone)]
pub struct WsAcceptor {
    tls: TlsAcceptor,
    limits: Limits,
}

impl std::fmt::Debug for WsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsAcceptor")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What the upgrade request established.
struct Upgrade {
    project_id: String,
    acks_upstream: bool,
}

impl WsAcceptor {
    /// An acceptor using a config from [`crate::server_config`].
    pub fn new(tls: Arc<rustls::ServerConfig>, limits: Limits) -> Self {
        WsAcceptor {
            tls: TlsAcceptor::from(tls),
            limits,
        }
    }

    /// TLS handshake, client identity, WebSocket upgrade; all within
    /// `limits.handshake_timeout`. A refused upgrade is answered with 400
    /// (missing header) or 403 (node mismatch) before this returns.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        remote: SocketAddr,
    ) -> Result<Connection, AcceptError> {
        let deadline = Instant::now() + self.limits.handshake_timeout;
        // Best effort: the link carries small messages that should not wait.
        let _ = tcp.set_nodelay(true);
        let tls = timeout_at(deadline, self.tls.accept(tcp))
            .await
            .map_err(|_| AcceptError::Timeout)?
            .map_err(tls_error)?;
        let cert_node = {
            let (_, session) = tls.get_ref();
            let cert = session
                .peer_certificates()
                .and_then(|certs| certs.first())
                .ok_or(AcceptError::NoClientCert)?;
            node_of(cert).map_err(AcceptError::BadIdentity)?
        };

        let mut verdict: Option<Result<Upgrade, AcceptError>> = None;
        #[allow(
            clippy::result_large_err,
            reason = "tungstenite's Callback fixes the error type"
        )]
        let callback = |req: &Request, resp: Response| {
            let (outcome, reply) = check_upgrade(req, resp, &cert_node);
            verdict = Some(outcome);
            reply
        };
        let upgraded = timeout_at(
            deadline,
            tokio_tungstenite::accept_hdr_async_with_config(
                TlsStream::Server(tls),
                callback,
                Some(ws_config(self.limits.max_frame)),
            ),
        )
        .await
        .map_err(|_| AcceptError::Timeout)?;
        let (ws, upgrade) = match (upgraded, verdict) {
            (Ok(ws), Some(Ok(upgrade))) => (ws, upgrade),
            (_, Some(Err(refusal))) => return Err(refusal),
            (Err(e), _) => return Err(AcceptError::Handshake(e.into())),
            (Ok(_), None) => {
                let e = LinkError::Protocol("upgraded without a request");
                return Err(AcceptError::Handshake(e));
            }
        };
        let peer = Peer {
            node_id: cert_node,
            project_id: upgrade.project_id,
            remote,
            transport: Transport::WebSocket,
            acks_upstream: upgrade.acks_upstream,
        };
        Ok(split(ws, peer, self.limits))
    }
}

/// A TLS accept failure, telling a missing client certificate apart.
fn tls_error(e: std::io::Error) -> AcceptError {
    let no_cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::NoCertificatesPresented));
    if no_cert {
        AcceptError::NoClientCert
    } else {
        AcceptError::Tls(LinkError::Io(e))
    }
}

/// Checks an upgrade request against the certificate's node: the outcome
/// for `accept`, and the reply for tungstenite.
fn check_upgrade(
    req: &Request,
    mut resp: Response,
    cert_node: &str,
) -> (
    Result<Upgrade, AcceptError>,
    Result<Response, ErrorResponse>,
) {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let Some(node_id) = header(NODE_ID) else {
        let e = AcceptError::MissingHeader { name: NODE_ID };
        return (
            Err(e),
            Err(refuse(StatusCode::BAD_REQUEST, "missing node_id")),
        );
    };
    let Some(project_id) = header(PROJECT_ID) else {
        let e = AcceptError::MissingHeader { name: PROJECT_ID };
        return (
            Err(e),
            Err(refuse(StatusCode::BAD_REQUEST, "missing project_id")),
        );
    };
    if node_id != cert_node {
        let e = AcceptError::NodeMismatch {
            claimed: node_id.to_owned(),
            cert: cert_node.to_owned(),
        };
        return (
            Err(e),
            Err(refuse(
                StatusCode::FORBIDDEN,
                "node_id does not match certificate",
            )),
        );
    }
    let acks_upstream = header(ACKS) == Some(ACKS_VERSION);
    if acks_upstream {
        resp.headers_mut()
            .insert(ACKS, HeaderValue::from_static(ACKS_VERSION));
    }
    let upgrade = Upgrade {
        project_id: project_id.to_owned(),
        acks_upstream,
    };
    (Ok(upgrade), Ok(resp))
}

fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(why.to_owned()));
    *resp.status_mut() = status;
    resp
}

/// Initial read buffer of a connection. tungstenite's default (128 KiB) is
/// allocated per connection up front, which would dominate a cloudcore
/// holding thousands of mostly idle nodes; the buffer still grows to the
/// frame cap when a large message arrives.
const READ_BUFFER: usize = 8 * 1024;

/// Outgoing bytes gathered before a write reaches the socket.
const WRITE_BUFFER: usize = 8 * 1024;

fn ws_config(max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
}

/// Dials the cloud over WebSocket: TCP, TLS (verifying `server_name`),
/// upgrade; all within `dial.limits.handshake_timeout`. A refused upgrade
/// is [`LinkError::Refused`] with the HTTP status.
pub async fn ws_connect(dial: &Dial) -> Result<Connection, LinkError> {
    let deadline = Instant::now() + dial.limits.handshake_timeout;
    let server_name =
        ServerName::try_from(dial.server_name.clone()).map_err(|_| TlsError::ServerName {
            name: dial.server_name.clone(),
        })?;
    let request = upgrade_request(dial)?;
    let tcp = within(deadline, TcpStream::connect(&dial.server)).await??;
    let _ = tcp.set_nodelay(true);
    let remote = tcp.peer_addr()?;
    let connector = TlsConnector::from(dial.tls.clone());
    let tls = within(deadline, connector.connect(server_name, tcp)).await??;
    let (ws, resp) = within(
        deadline,
        tokio_tungstenite::client_async_with_config(
            request,
            TlsStream::Client(tls),
            Some(ws_config(dial.limits.max_frame)),
        ),
    )
    .await??;
    let acks_upstream = resp
        .headers()
        .get(ACKS)
        .is_some_and(|v| v.as_bytes() == ACKS_VERSION.as_bytes());
    let peer = Peer {
        node_id: dial.node_id.clone(),
        project_id: dial.project_id.clone(),
        remote,
        transport: Transport::WebSocket,
        acks_upstream,
    };
    Ok(split(ws, peer, dial.limits))
}

/// The upgrade request KubeEdge's edgehub sends, plus the ack extension.
fn upgrade_request(
    dial: &Dial,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, LinkError> {
    let url = format!(
        "wss://{}/{}/{}/events",
        dial.server, dial.project_id, dial.node_id
    );
    let mut request = url.into_client_request()?;
    let headers = request.headers_mut();
    for (name, value) in [
        (NODE_ID, dial.node_id.as_str()),
        (PROJECT_ID, dial.project_id.as_str()),
        (CONNECTION_USE, "msg"),
        (ACKS, ACKS_VERSION),
    ] {
        let value = HeaderValue::from_str(value).map_err(|_| LinkError::BadHeader {
            name,
            value: value.to_owned(),
        })?;
        headers.insert(HeaderName::from_static(name), value);
    }
    Ok(request)
}

fn split(ws: WsStream, peer: Peer, limits: Limits) -> Connection {
    let (sink, stream) = ws.split();
    Connection {
        peer,
        sender: LinkSender {
            inner: SenderInner::Ws(WsSender { sink, limits }),
        },
        receiver: LinkReceiver {
            inner: ReceiverInner::Ws(WsReceiver {
                stream,
                max_frame: limits.max_frame,
            }),
        },
    }
}

/// The writing half of a WebSocket link.
pub(crate) struct WsSender {
    sink: SplitSink<WsStream, WsMessage>,
    limits: Limits,
}

impl WsSender {
    pub(crate) async fn send(&mut self, msg: &proto::Message) -> Result<(), LinkError> {
        let text = proto::encode_text(msg)?;
        if text.len() > self.limits.max_frame {
            return Err(LinkError::Frame(proto::CodecError::FrameTooLarge {
                len: text.len(),
                max: self.limits.max_frame,
            }));
        }
        self.sink.send(WsMessage::text(text)).await?;
        Ok(())
    }

    pub(crate) async fn ping(&mut self) -> Result<(), LinkError> {
        self.sink.send(WsMessage::Ping(Bytes::new())).await?;
        Ok(())
    }

    pub(crate) async fn close(&mut self) {
        let _ = timeout(self.limits.handshake_timeout, self.sink.close()).await;
    }
}

/// The reading half of a WebSocket link.
pub(crate) struct WsReceiver {
    stream: SplitStream<WsStream>,
    max_frame: usize,
}

impl WsReceiver {
    /// Cancel-safe: `StreamExt::next` keeps partial frames in tungstenite.
    pub(crate) async fn recv(&mut self) -> Result<Option<Incoming>, LinkError> {
        loop {
            let Some(item) = self.stream.next().await else {
                return Ok(None);
            };
            let msg = match item {
                Ok(WsMessage::Text(text)) => proto::decode_text(text.as_str(), self.max_frame)?,
                Ok(WsMessage::Binary(bytes)) => proto::decode_bytes(&bytes, self.max_frame)?,
                // tungstenite queues the pong to a ping and writes it on the
                // next read or flush.
                Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => return Ok(Some(Incoming::Alive)),
                Ok(WsMessage::Close(_)) => return Ok(None),
                // Raw frames are never produced when reading.
                Ok(WsMessage::Frame(_)) => continue,
                Err(e) => {
                    return match LinkError::from(e) {
                        LinkError::Closed => Ok(None),
                        other => Err(other),
                    }
                }
            };
            return Ok(Some(Incoming::Message(msg)));
        }
    }
}
