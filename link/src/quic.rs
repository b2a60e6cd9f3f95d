//! The QUIC transport: IETF QUIC v1 via quinn, ALPN `apiary-msg`.
//!
//! KubeEdge's QUIC is gQUIC, which no Rust stack speaks, so this is an
//! Apiary-only protocol with KubeEdge's shape: one bidirectional stream per
//! connection carrying proto's length-prefixed JSON frames
//! ([`proto::FrameCodec`]). The client's first frame is a header message,
//! `{route:{resource:"header",operation:"header"},
//! content:{node_id,project_id,acks_upstream}}`. The server answers with
//! content `"ack"`, or `{"status":"ack","acks_upstream":true}` when it takes
//! the upstream-ack extension; or with `"nack"`, then closes the connection
//! with an HTTP-like code (400 bad header, 403 node mismatch).
//!
//! Liveness is quinn's: keep-alive packets and an idle timeout, which
//! surfaces on a receiver as [`LinkError::Timeout`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use proto::{FrameCodec, Message, Operation};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, IdleTimeout, RecvStream, SendStream, TransportConfig, VarInt};
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};
use tokio::time::{timeout, timeout_at, Instant};

use crate::conn::{
    within, Connection, Incoming, Limits, LinkReceiver, LinkSender, Peer, ReceiverInner,
    SenderInner, Transport,
};
use crate::error::{AcceptError, LinkError, TlsError};
use crate::tls::node_of;
use crate::ws::Dial;

/// The ALPN protocol both ends require.
const ALPN: &[u8] = b"apiary-msg";
/// `route.resource` and `route.operation` of the header message and reply.
const HEADER: &str = "header";
/// Close codes: a clean close, and refusals in HTTP's spelling.
const CLOSE_OK: u32 = 0;
const CLOSE_BAD_REQUEST: u32 = 400;
const CLOSE_FORBIDDEN: u32 = 403;

/// A QUIC server endpoint bound to `addr`, requiring client certificates
/// as `tls` does, with `idle_timeout` as its idle timeout. Must be called
/// inside a tokio runtime. Feed `endpoint.accept()` results to
/// [`quic_accept`].
pub fn quic_server(
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    idle_timeout: Duration,
) -> Result<Endpoint, LinkError> {
    let mut crypto = (*tls).clone();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(crypto).map_err(TlsError::Quic)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = TransportConfig::default();
    transport
        .max_idle_timeout(Some(idle(idle_timeout)?))
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0));
    config.transport_config(Arc::new(transport));
    Ok(Endpoint::server(config, addr)?)
}

fn idle(value: Duration) -> Result<IdleTimeout, LinkError> {
    IdleTimeout::try_from(value).map_err(|_| LinkError::BadTimeout {
        what: "idle timeout",
        value,
    })
}

/// Completes an incoming QUIC connection: TLS handshake, client identity,
/// the header exchange; all within `limits.handshake_timeout`.
pub async fn quic_accept(
    incoming: quinn::Incoming,
    limits: &Limits,
) -> Result<Connection, AcceptError> {
    let deadline = Instant::now() + limits.handshake_timeout;
    let connecting = incoming
        .accept()
        .map_err(|e| AcceptError::Tls(LinkError::from_quic(e)))?;
    let conn = timeout_at(deadline, connecting)
        .await
        .map_err(|_| AcceptError::Timeout)?
        .map_err(handshake_error)?;
    match accept_header(&conn, limits, deadline).await {
        Ok(established) => Ok(established),
        Err(e) => {
            let code = match e {
                AcceptError::MissingHeader { .. } | AcceptError::Frame(_) => CLOSE_BAD_REQUEST,
                _ => CLOSE_FORBIDDEN,
            };
            conn.close(VarInt::from_u32(code), e.reason().as_bytes());
            Err(e)
        }
    }
}

/// A failed QUIC handshake, telling a missing client certificate apart.
fn handshake_error(e: quinn::ConnectionError) -> AcceptError {
    let no_cert =
        quinn::TransportErrorCode::crypto(rustls::AlertDescription::CertificateRequired.into());
    match e {
        quinn::ConnectionError::TransportError(t) if t.code == no_cert => AcceptError::NoClientCert,
        quinn::ConnectionError::ConnectionClosed(c) if c.error_code == no_cert => {
            AcceptError::NoClientCert
        }
        other => AcceptError::Tls(LinkError::from_quic(other)),
    }
}

/// Everything after the QUIC handshake; on error the caller closes `conn`.
async fn accept_header(
    conn: &quinn::Connection,
    limits: &Limits,
    deadline: Instant,
) -> Result<Connection, AcceptError> {
    let cert_node = peer_node(conn)?;
    let (mut send, mut recv) = timeout_at(deadline, conn.accept_bi())
        .await
        .map_err(|_| AcceptError::Timeout)?
        .map_err(|e| AcceptError::Handshake(LinkError::from_quic(e)))?;
    let codec = FrameCodec::new(limits.max_frame);
    let mut buf = BytesMut::new();
    let header = timeout_at(deadline, read_frame(&mut recv, &codec, &mut buf))
        .await
        .map_err(|_| AcceptError::Timeout)?
        .map_err(|e| match e {
            LinkError::Frame(e) => AcceptError::Frame(e),
            other => AcceptError::Handshake(other),
        })?
        .ok_or(AcceptError::Handshake(LinkError::Closed))?;
    let claims = match Claims::parse(&header) {
        Ok(claims) if claims.node_id != cert_node => Err(AcceptError::NodeMismatch {
            claimed: claims.node_id,
            cert: cert_node.clone(),
        }),
        other => other,
    };
    let claims = match claims {
        Ok(claims) => claims,
        Err(refusal) => {
            let nack = reply(Value::from("nack"));
            // Best effort: the client learns the reason from the close code
            // if the nack does not make it.
            if let Ok(frame) = codec.encode_to_vec(&nack) {
                let _ = timeout_at(deadline, async {
                    send.write_all(&frame).await.ok()?;
                    send.finish().ok()?;
                    send.stopped().await.ok()
                })
                .await;
            }
            return Err(refusal);
        }
    };
    let answer = if claims.acks_upstream {
        json!({"status": "ack", "acks_upstream": true})
    } else {
        Value::from("ack")
    };
    let frame = codec
        .encode_to_vec(&reply(answer))
        .map_err(AcceptError::Frame)?;
    timeout_at(deadline, send.write_all(&frame))
        .await
        .map_err(|_| AcceptError::Timeout)?
        .map_err(|e| AcceptError::Handshake(e.into()))?;
    let peer = Peer {
        node_id: cert_node,
        project_id: claims.project_id,
        remote: conn.remote_address(),
        transport: Transport::Quic,
        acks_upstream: claims.acks_upstream,
    };
    Ok(halves(conn.clone(), None, send, recv, buf, peer, *limits))
}

/// The node named by the client certificate of `conn`.
fn peer_node(conn: &quinn::Connection) -> Result<String, AcceptError> {
    let identity = conn.peer_identity().ok_or(AcceptError::NoClientCert)?;
    let certs = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| AcceptError::NoClientCert)?;
    let cert = certs.first().ok_or(AcceptError::NoClientCert)?;
    node_of(cert).map_err(AcceptError::BadIdentity)
}

/// What the client's header message claims.
#[derive(Debug, PartialEq)]
struct Claims {
    node_id: String,
    project_id: String,
    acks_upstream: bool,
}

impl Claims {
    fn message(&self) -> Message {
        let mut msg = Message::new("", "", Operation::parse(HEADER), HEADER);
        msg.content = json!({
            "node_id": self.node_id,
            "project_id": self.project_id,
            "acks_upstream": self.acks_upstream,
        });
        msg
    }

    fn parse(msg: &Message) -> Result<Claims, AcceptError> {
        if msg.route.resource != HEADER || msg.route.operation.as_str() != HEADER {
            return Err(AcceptError::MissingHeader { name: HEADER });
        }
        let field = |name: &'static str| {
            msg.content
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or(AcceptError::MissingHeader { name })
        };
        Ok(Claims {
            node_id: field("node_id")?,
            project_id: field("project_id")?,
            acks_upstream: msg
                .content
                .get("acks_upstream")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// The server's answer to the header message.
fn reply(content: Value) -> Message {
    let mut msg = Message::new("", "", Operation::parse(HEADER), HEADER);
    msg.content = content;
    msg
}

/// Reads the server's answer: `Ok(acks_upstream)` on an ack.
fn parse_answer(msg: &Message) -> Result<bool, Option<LinkError>> {
    match &msg.content {
        Value::String(s) if s == "ack" => Ok(false),
        Value::Object(o) if o.get("status").and_then(Value::as_str) == Some("ack") => Ok(o
            .get("acks_upstream")
            .and_then(Value::as_bool)
            .unwrap_or(false)),
        Value::String(s) if s == "nack" => Err(None),
        Value::Object(o) if o.get("status").and_then(Value::as_str) == Some("nack") => Err(None),
        _ => Err(Some(LinkError::Protocol("unexpected answer to the header"))),
    }
}

/// Dials the cloud over QUIC from an ephemeral UDP port, with quinn
/// keep-alive every `keepalive` (zero: none) and the given idle timeout.
/// Handshake and header exchange finish within
/// `dial.limits.handshake_timeout`. A nack is [`LinkError::Refused`] with
/// the server's close code (400 or 403).
pub async fn quic_connect(
    dial: &Dial,
    keepalive: Duration,
    idle_timeout: Duration,
) -> Result<Connection, LinkError> {
    let deadline = Instant::now() + dial.limits.handshake_timeout;
    let server = within(deadline, tokio::net::lookup_host(&dial.server))
        .await??
        .next()
        .ok_or_else(|| LinkError::Resolve {
            server: dial.server.clone(),
        })?;
    let mut crypto = (*dial.tls).clone();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(crypto).map_err(TlsError::Quic)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = TransportConfig::default();
    transport
        .keep_alive_interval((!keepalive.is_zero()).then_some(keepalive))
        .max_idle_timeout(Some(idle(idle_timeout)?))
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(0));
    config.transport_config(Arc::new(transport));

    let endpoint = Endpoint::client(ephemeral(server.ip()))?;
    let connecting = endpoint.connect_with(config, server, &dial.server_name)?;
    let conn = within(deadline, connecting)
        .await?
        .map_err(LinkError::from_quic)?;
    let codec = FrameCodec::new(dial.limits.max_frame);
    let claims = Claims {
        node_id: dial.node_id.clone(),
        project_id: dial.project_id.clone(),
        acks_upstream: true,
    };
    let (mut send, mut recv) = conn.open_bi().await.map_err(LinkError::from_quic)?;
    let header = codec.encode_to_vec(&claims.message())?;
    within(deadline, send.write_all(&header)).await??;
    let mut buf = BytesMut::new();
    let answer = match within(deadline, read_frame(&mut recv, &codec, &mut buf)).await? {
        Ok(Some(answer)) => answer,
        Ok(None) => return Err(refused(&conn, deadline).await),
        Err(LinkError::Quic(quinn::ConnectionError::ApplicationClosed(c))) => {
            return Err(LinkError::Refused {
                status: status_of(c.error_code),
            })
        }
        Err(e) => return Err(e),
    };
    let acks_upstream = match parse_answer(&answer) {
        Ok(acks) => acks,
        Err(None) => return Err(refused(&conn, deadline).await),
        Err(Some(e)) => {
            conn.close(VarInt::from_u32(CLOSE_BAD_REQUEST), b"protocol");
            return Err(e);
        }
    };
    let peer = Peer {
        node_id: dial.node_id.clone(),
        project_id: dial.project_id.clone(),
        remote: conn.remote_address(),
        transport: Transport::Quic,
        acks_upstream,
    };
    Ok(halves(
        conn,
        Some(endpoint),
        send,
        recv,
        buf,
        peer,
        dial.limits,
    ))
}

/// The refusal after a nack: the server's close code, or 403 if it does
/// not close in time.
async fn refused(conn: &quinn::Connection, deadline: Instant) -> LinkError {
    let status = match timeout_at(deadline, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) => status_of(c.error_code),
        _ => CLOSE_FORBIDDEN as u16,
    };
    conn.close(VarInt::from_u32(CLOSE_OK), b"refused");
    LinkError::Refused { status }
}

fn status_of(code: VarInt) -> u16 {
    u16::try_from(code.into_inner()).unwrap_or(CLOSE_FORBIDDEN as u16)
}

/// The unspecified (or, for a loopback server, loopback) address of the
/// server's family, port 0.
fn ephemeral(server: IpAddr) -> SocketAddr {
    let ip = match server {
        IpAddr::V4(v4) if v4.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// The next frame on `recv`, buffering in `buf`. `Ok(None)`: the stream
/// finished on a frame boundary. Cancel-safe: bytes read stay in `buf`.
async fn read_frame(
    recv: &mut RecvStream,
    codec: &FrameCodec,
    buf: &mut BytesMut,
) -> Result<Option<Message>, LinkError> {
    loop {
        if let Some(msg) = codec.decode(buf)? {
            return Ok(Some(msg));
        }
        match recv.read_chunk(usize::MAX, true).await? {
            Some(chunk) => buf.extend_from_slice(&chunk.bytes),
            None if buf.is_empty() => return Ok(None),
            None => return Err(LinkError::Protocol("stream ended inside a frame")),
        }
    }
}

fn halves(
    conn: quinn::Connection,
    endpoint: Option<Endpoint>,
    send: SendStream,
    recv: RecvStream,
    buf: BytesMut,
    peer: Peer,
    limits: Limits,
) -> Connection {
    let codec = FrameCodec::new(limits.max_frame);
    Connection {
        peer,
        sender: LinkSender {
            inner: SenderInner::Quic(QuicSender {
                conn: conn.clone(),
                _endpoint: endpoint.clone(),
                send,
                codec,
                close_wait: limits.handshake_timeout,
            }),
        },
        receiver: LinkReceiver {
            inner: ReceiverInner::Quic(QuicReceiver {
                _conn: conn,
                _endpoint: endpoint,
                recv,
                buf,
                codec,
            }),
        },
    }
}

/// The writing half of a QUIC link.
pub(crate) struct QuicSender {
    conn: quinn::Connection,
    /// A client keeps its endpoint (and so its UDP socket) alive.
    _endpoint: Option<Endpoint>,
    send: SendStream,
    codec: FrameCodec,
    close_wait: Duration,
}

impl QuicSender {
    pub(crate) async fn send(&mut self, msg: &Message) -> Result<(), LinkError> {
        let frame = self.codec.encode_to_vec(msg)?;
        self.send.write_all(&frame).await?;
        Ok(())
    }

    /// Finishes the stream, waits (bounded) until the peer has it all,
    /// then closes the connection.
    pub(crate) async fn close(&mut self) {
        if self.send.finish().is_ok() {
            let _ = timeout(self.close_wait, self.send.stopped()).await;
        }
        self.conn.close(VarInt::from_u32(CLOSE_OK), b"closed");
    }
}

/// The reading half of a QUIC link.
pub(crate) struct QuicReceiver {
    _conn: quinn::Connection,
    _endpoint: Option<Endpoint>,
    recv: RecvStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl QuicReceiver {
    pub(crate) async fn recv(&mut self) -> Result<Option<Incoming>, LinkError> {
        match read_frame(&mut self.recv, &self.codec, &mut self.buf).await {
            Ok(msg) => Ok(msg.map(Incoming::Message)),
            Err(LinkError::Quic(quinn::ConnectionError::ApplicationClosed(c)))
                if c.error_code == VarInt::from_u32(CLOSE_OK) && self.buf.is_empty() =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let claims = Claims {
            node_id: "edge-1".into(),
            project_id: "p".into(),
            acks_upstream: true,
        };
        assert_eq!(Claims::parse(&claims.message()).unwrap(), claims);
    }

    #[test]
    fn header_needs_node_and_project() {
        let mut msg = reply(json!({"project_id": "p"}));
        assert!(matches!(
            Claims::parse(&msg),
            Err(AcceptError::MissingHeader { name: "node_id" })
        ));
        msg.content = json!({"node_id": "n", "project_id": ""});
        assert!(matches!(
            Claims::parse(&msg),
            Err(AcceptError::MissingHeader { name: "project_id" })
        ));
        let other = Message::new("", "", Operation::Insert, "default/pod/a");
        assert!(matches!(
            Claims::parse(&other),
            Err(AcceptError::MissingHeader { name: "header" })
        ));
    }

    #[test]
    fn answers() {
        assert_eq!(parse_answer(&reply("ack".into())).ok(), Some(false));
        let ext = reply(json!({"status": "ack", "acks_upstream": true}));
        assert_eq!(parse_answer(&ext).ok(), Some(true));
        assert!(matches!(parse_answer(&reply("nack".into())), Err(None)));
        assert!(matches!(parse_answer(&reply(7.into())), Err(Some(_))));
    }

    #[test]
    fn ephemeral_matches_family() {
        assert_eq!(
            ephemeral("127.0.0.1".parse().unwrap()),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            ephemeral("10.0.0.1".parse().unwrap()),
            "0.0.0.0:0".parse().unwrap()
        );
        assert_eq!(
            ephemeral("::1".parse().unwrap()),
            "[::1]:0".parse().unwrap()
        );
    }
}
