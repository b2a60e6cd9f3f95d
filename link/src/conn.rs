//! An established link, whichever transport carries it.
//!
//! A [`Connection`] is who is on the other end ([`Peer`]) plus two halves
//! that can move to different tasks: [`LinkSender`] writes messages,
//! [`LinkReceiver`] yields [`Incoming`] items. Both halves are enums over
//! the WebSocket and QUIC implementations in [`crate::ws`] and
//! [`crate::quic`].

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::{timeout_at, Instant};

use crate::error::LinkError;
use crate::{quic, ws};

/// Which transport carries a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// WebSocket over TLS over TCP (KubeEdge's default, port 10000).
    WebSocket,
    /// IETF QUIC v1 (port 10001).
    Quic,
}

impl Transport {
    /// A short label for logs and metrics: `websocket` or `quic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Quic => "quic",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The other end of a link, as established by the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The edge node: on the server, from the client certificate (and equal
    /// to the `node_id` header); on the client, the node we dialled as.
    pub node_id: String,
    /// The `project_id` header.
    pub project_id: String,
    /// The peer's socket address.
    pub remote: SocketAddr,
    /// The transport.
    pub transport: Transport,
    /// Both ends speak Apiary's upstream-ack extension (`x-apiary-acks: v1`).
    pub acks_upstream: bool,
}

/// Bounds applied to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest message accepted or sent, in bytes of JSON.
    pub max_frame: usize,
    /// The longest a handshake (TLS plus WebSocket upgrade or QUIC header
    /// exchange) may take.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    /// 32 MiB frames ([`proto::DEFAULT_MAX_FRAME`]), 10 s handshakes.
    fn default() -> Self {
        Limits {
            max_frame: proto::DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// An established link.
#[derive(Debug)]
pub struct Connection {
    /// Who is on the other end.
    pub peer: Peer,
    /// The writing half.
    pub sender: LinkSender,
    /// The reading half.
    pub receiver: LinkReceiver,
}

/// One item read from a link.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "the contract's shape; Alive is rare and a Message is moved on at once"
)]
pub enum Incoming {
    /// A message.
    Message(proto::Message),
    /// A ping, pong or other control frame: proof that the peer lives.
    Alive,
}

/// The writing half of a link.
pub struct LinkSender {
    pub(crate) inner: SenderInner,
}

pub(crate) enum SenderInner {
    Ws(ws::WsSender),
    Quic(quic::QuicSender),
}

impl fmt::Debug for LinkSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.inner {
            SenderInner::Ws(_) => Transport::WebSocket,
            SenderInner::Quic(_) => Transport::Quic,
        };
        f.debug_struct("LinkSender")
            .field("transport", &transport)
            .finish_non_exhaustive()
    }
}

impl LinkSender {
    /// Sends one message. A message whose JSON is over the link's
    /// `max_frame` is refused with [`LinkError::Frame`] and nothing is sent.
    ///
    /// Not cancel-safe: dropping the future may leave part of the message
    /// written, so drop the connection instead.
    pub async fn send(&mut self, msg: &proto::Message) -> Result<(), LinkError> {
        match &mut self.inner {
            SenderInner::Ws(s) => s.send(msg).await,
            SenderInner::Quic(s) => s.send(msg).await,
        }
    }

    /// Sends a WebSocket ping frame; the peer's pong comes back as
    /// [`Incoming::Alive`]. On QUIC this does nothing: quinn's keep-alive
    /// does the job.
    pub async fn ping(&mut self) -> Result<(), LinkError> {
        match &mut self.inner {
            SenderInner::Ws(s) => s.ping().await,
            SenderInner::Quic(_) => Ok(()),
        }
    }

    /// Closes the link politely (WebSocket close frame; QUIC stream finish,
    /// then connection close), waiting at most the handshake timeout.
    /// Errors are ignored: the link is gone either way.
    pub async fn close(&mut self) {
        match &mut self.inner {
            SenderInner::Ws(s) => s.close().await,
            SenderInner::Quic(s) => s.close().await,
        }
    }
}

/// The reading half of a link.
pub struct LinkReceiver {
    pub(crate) inner: ReceiverInner,
}

pub(crate) enum ReceiverInner {
    Ws(ws::WsReceiver),
    Quic(quic::QuicReceiver),
}

impl fmt::Debug for LinkReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.inner {
            ReceiverInner::Ws(_) => Transport::WebSocket,
            ReceiverInner::Quic(_) => Transport::Quic,
        };
        f.debug_struct("LinkReceiver")
            .field("transport", &transport)
            .finish_non_exhaustive()
    }
}

impl LinkReceiver {
    /// The next item. `Ok(None)`: the peer closed the link cleanly.
    /// `Err(LinkError::Frame(..))`: a malformed or oversized frame; close
    /// this connection. A QUIC idle timeout is `Err(LinkError::Timeout)`.
    ///
    /// Cancel-safe: it may be raced against a deadline in `select!`
    /// without losing data.
    pub async fn recv(&mut self) -> Result<Option<Incoming>, LinkError> {
        match &mut self.inner {
            ReceiverInner::Ws(r) => r.recv().await,
            ReceiverInner::Quic(r) => r.recv().await,
        }
    }
}

/// Runs `fut` until `deadline`; running out is [`LinkError::Timeout`].
pub(crate) async fn within<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, LinkError> {
    timeout_at(deadline, fut)
        .await
        .map_err(|_| LinkError::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_static<T: Send + 'static>() {}

    #[test]
    fn halves_move_between_tasks() {
        assert_send_static::<LinkSender>();
        assert_send_static::<LinkReceiver>();
        assert_send_static::<Connection>();
    }

    #[test]
    fn transport_labels() {
        assert_eq!(Transport::WebSocket.to_string(), "websocket");
        assert_eq!(Transport::Quic.as_str(), "quic");
    }
}
