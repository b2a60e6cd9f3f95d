//! The WebSocket transport end to end on loopback: handshake, identity
//! checks, both directions, frame caps, liveness, the ack extension.
#![allow(
    clippy::unwrap_used,
    reason = "harness helpers: a failure fails the test"
)]

use crate::support;

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use link::{
    AcceptError, Connection, Credentials, Dial, Incoming, LinkError, Transport, WsAcceptor,
};
use proto::CodecError;
use support::{anonymous_client, big, configmap, dial, guard, limits, raw_ws, Pki};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A WebSocket server on 127.0.0.1:0 accepting one connection.
struct Server {
    listener: TcpListener,
    acceptor: WsAcceptor,
    addr: SocketAddr,
}

impl Server {
    async fn start(creds: &Credentials, max_frame: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = link::server_config(creds).unwrap();
        let acceptor = WsAcceptor::new(tls, limits(max_frame));
        Server {
            listener,
            acceptor,
            addr,
        }
    }

    async fn accept(&self) -> Result<Connection, AcceptError> {
        let (tcp, remote) = self.listener.accept().await.unwrap();
        self.acceptor.accept(tcp, remote).await
    }

    /// Accepts while `dial` connects.
    async fn link(
        &self,
        dial: &Dial,
    ) -> (
        Result<Connection, AcceptError>,
        Result<Connection, LinkError>,
    ) {
        tokio::join!(self.accept(), link::ws_connect(dial))
    }
}

async fn established(pki: &Pki, max_frame: usize) -> (Connection, Connection) {
    let server = Server::start(&pki.server(), max_frame).await;
    let dial = dial(server.addr, &pki.node("edge-1"), "edge-1");
    let (cloud, edge) = server.link(&dial).await;
    (cloud.unwrap(), edge.unwrap())
}

async fn next_message(conn: &mut Connection) -> proto::Message {
    loop {
        match conn.receiver.recv().await.unwrap() {
            Some(Incoming::Message(msg)) => return msg,
            Some(Incoming::Alive) => continue,
            None => panic!("closed before a message"),
        }
    }
}

#[tokio::test]
async fn messages_flow_both_ways() {
    guard(async {
        let pki = Pki::new();
        let (mut cloud, mut edge) = established(&pki, proto::DEFAULT_MAX_FRAME).await;

        assert_eq!(cloud.peer.node_id, "edge-1");
        assert_eq!(cloud.peer.project_id, "e632aba927ea4ac2b575ec1603d56f10");
        assert_eq!(cloud.peer.transport, Transport::WebSocket);
        assert_eq!(edge.peer.node_id, "edge-1");
        assert_eq!(edge.peer.remote.port(), server_port(&cloud, &edge));

        let down = configmap("cm2");
        cloud.sender.send(&down).await.unwrap();
        assert_eq!(next_message(&mut edge).await, down);

        let up = down.reply("OK");
        edge.sender.send(&up).await.unwrap();
        assert_eq!(next_message(&mut cloud).await, up);

        edge.sender.close().await;
        assert_eq!(cloud.receiver.recv().await.unwrap(), None);
    })
    .await;
}

/// The edge dialled the cloud's port; the cloud sees the edge's.
fn server_port(cloud: &Connection, edge: &Connection) -> u16 {
    assert_ne!(cloud.peer.remote.port(), edge.peer.remote.port());
    edge.peer.remote.port()
}

#[tokio::test]
async fn acks_extension_is_negotiated_between_apiary_ends() {
    guard(async {
        let pki = Pki::new();
        let (cloud, edge) = established(&pki, proto::DEFAULT_MAX_FRAME).await;
        assert!(cloud.peer.acks_upstream);
        assert!(edge.peer.acks_upstream);
    })
    .await;
}

#[tokio::test]
async fn kubeedge_client_gets_no_ack_extension_and_may_send_binary() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME).await;
        let tls = link::client_config(&pki.node("edge-1")).unwrap();
        let headers = [
            ("node_id", "edge-1"),
            ("project_id", "p"),
            ("connectionuse", "msg"),
        ];
        let (cloud, raw) = tokio::join!(server.accept(), raw_ws(server.addr, tls, &headers));
        let (mut cloud, (mut raw, resp)) = (cloud.unwrap(), raw.unwrap());
        assert!(!cloud.peer.acks_upstream);
        assert!(resp.headers().get("x-apiary-acks").is_none());
        assert_eq!(cloud.peer.project_id, "p");

        let msg = configmap("bin");
        let json = proto::encode_text(&msg).unwrap();
        raw.send(WsMessage::binary(json.into_bytes()))
            .await
            .unwrap();
        assert_eq!(next_message(&mut cloud).await, msg);

        // KubeEdge's shutdown message: everything empty.
        let empty = r#"{"header":{"msg_id":"","timestamp":0},"route":{},"content":null}"#;
        raw.send(WsMessage::text(empty)).await.unwrap();
        assert_eq!(next_message(&mut cloud).await, proto::Message::default());
    })
    .await;
}

#[tokio::test]
async fn malformed_text_frame_is_a_frame_error() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME).await;
        let tls = link::client_config(&pki.node("edge-1")).unwrap();
        let headers = [("node_id", "edge-1"), ("project_id", "p")];
        let (cloud, raw) = tokio::join!(server.accept(), raw_ws(server.addr, tls, &headers));
        let (mut cloud, (mut raw, _)) = (cloud.unwrap(), raw.unwrap());
        raw.send(WsMessage::text("{not json")).await.unwrap();
        let err = cloud.receiver.recv().await.unwrap_err();
        assert!(
            matches!(err, LinkError::Frame(CodecError::Malformed { .. })),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn node_id_must_match_the_certificate() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME).await;
        let dial = dial(server.addr, &pki.node("edge-1"), "edge-2");
        let (cloud, edge) = server.link(&dial).await;
        match cloud.unwrap_err() {
            AcceptError::NodeMismatch { claimed, cert } => {
                assert_eq!((claimed.as_str(), cert.as_str()), ("edge-2", "edge-1"));
            }
            other => panic!("expected a node mismatch, got {other:?}"),
        }
        assert!(matches!(
            edge.unwrap_err(),
            LinkError::Refused { status: 403 }
        ));
    })
    .await;
}

#[tokio::test]
async fn missing_headers_are_refused_with_400() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME).await;

        let mut no_project = dial(server.addr, &pki.node("edge-1"), "edge-1");
        no_project.project_id = String::new();
        let (cloud, edge) = server.link(&no_project).await;
        let cloud = cloud.unwrap_err();
        assert!(matches!(
            cloud,
            AcceptError::MissingHeader { name: "project_id" }
        ));
        assert_eq!(cloud.reason(), "missing_header");
        assert!(matches!(
            edge.unwrap_err(),
            LinkError::Refused { status: 400 }
        ));

        let tls = link::client_config(&pki.node("edge-1")).unwrap();
        let headers = [("project_id", "p")];
        let (cloud, raw) = tokio::join!(server.accept(), raw_ws(server.addr, tls, &headers));
        assert!(matches!(
            cloud.unwrap_err(),
            AcceptError::MissingHeader { name: "node_id" }
        ));
        assert!(raw.is_err());
    })
    .await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME).await;
        let rogue = Pki::new();
        let (cert, key) = rogue.leaf_pem("system:node:edge-1", &[]);
        // Trusts the real CA (so the server passes) but presents a rogue cert.
        let creds = Credentials::from_pem(pki.ca_pem().as_bytes(), cert.as_bytes(), key.as_bytes())
            .unwrap();
        let dial = dial(server.addr, &creds, "edge-1");
        let (cloud, edge) = server.link(&dial).await;
        let cloud = cloud.unwrap_err();
        assert!(matches!(cloud, AcceptError::Tls(_)), "{cloud:?}");
        assert_eq!(cloud.reason(), "tls");
        assert!(edge.is_err());
    })
    .await;
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME).await;
        let mut dial = dial(server.addr, &pki.node("edge-1"), "edge-1");
        dial.tls = anonymous_client(pki.ca_der());
        let (cloud, edge) = server.link(&dial).await;
        let cloud = cloud.unwrap_err();
        assert!(matches!(cloud, AcceptError::NoClientCert), "{cloud:?}");
        assert_eq!(cloud.reason(), "no_client_cert");
        assert!(edge.is_err());
    })
    .await;
}

#[tokio::test]
async fn server_from_another_ca_is_refused_by_the_client() {
    guard(async {
        let pki = Pki::new();
        let rogue = Pki::new();
        let server = Server::start(&rogue.server(), proto::DEFAULT_MAX_FRAME).await;
        let dial = dial(server.addr, &pki.node("edge-1"), "edge-1");
        let (cloud, edge) = server.link(&dial).await;
        assert!(cloud.is_err());
        assert!(matches!(edge.unwrap_err(), LinkError::Io(_)));
    })
    .await;
}

#[tokio::test]
async fn oversized_frame_is_a_frame_error_on_the_server() {
    guard(async {
        let pki = Pki::new();
        let (mut cloud, mut edge) = established(&pki, 1024).await;
        // The edge's own cap is the default, so it sends what the cloud refuses.
        edge.sender.send(&big(4096)).await.unwrap();
        let err = cloud.receiver.recv().await.unwrap_err();
        assert!(
            matches!(
                err,
                LinkError::Frame(CodecError::FrameTooLarge { max: 1024, .. })
            ),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn sender_refuses_a_message_over_its_own_cap() {
    guard(async {
        let pki = Pki::new();
        let (mut cloud, mut edge) = established(&pki, 1024).await;
        let err = cloud.sender.send(&big(4096)).await.unwrap_err();
        assert!(matches!(
            err,
            LinkError::Frame(CodecError::FrameTooLarge { max: 1024, .. })
        ));
        // Nothing went out: the next message is the small one.
        let small = configmap("small");
        cloud.sender.send(&small).await.unwrap();
        assert_eq!(next_message(&mut edge).await, small);
    })
    .await;
}

#[tokio::test]
async fn ping_is_answered_and_both_ends_see_alive() {
    guard(async {
        let pki = Pki::new();
        let (mut cloud, mut edge) = established(&pki, proto::DEFAULT_MAX_FRAME).await;
        // The cloud keeps reading, which also flushes the automatic pong.
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(item) = cloud.receiver.recv().await.unwrap() {
                let done = matches!(item, Incoming::Message(_));
                seen.push(item);
                if done {
                    break;
                }
            }
            seen
        });
        edge.sender.ping().await.unwrap();
        assert_eq!(edge.receiver.recv().await.unwrap(), Some(Incoming::Alive));
        let last = configmap("after-ping");
        edge.sender.send(&last).await.unwrap();
        let seen = reader.await.unwrap();
        assert_eq!(seen, vec![Incoming::Alive, Incoming::Message(last)]);
    })
    .await;
}

#[tokio::test]
async fn handshake_times_out_on_a_silent_client() {
    guard(async {
        let pki = Pki::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut short = limits(1024);
        short.handshake_timeout = std::time::Duration::from_millis(200);
        let acceptor = WsAcceptor::new(link::server_config(&pki.server()).unwrap(), short);
        let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (tcp, remote) = listener.accept().await.unwrap();
        let err = acceptor.accept(tcp, remote).await.unwrap_err();
        assert!(matches!(err, AcceptError::Timeout), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn polite_close_from_a_raw_client_is_a_clean_end() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME).await;
        let tls = link::client_config(&pki.node("edge-1")).unwrap();
        let headers = [("node_id", "edge-1"), ("project_id", "p")];
        let (cloud, raw) = tokio::join!(server.accept(), raw_ws(server.addr, tls, &headers));
        let (mut cloud, (raw, _)) = (cloud.unwrap(), raw.unwrap());
        let (mut sink, _stream) = raw.split();
        sink.close().await.unwrap();
        assert_eq!(cloud.receiver.recv().await.unwrap(), None);
    })
    .await;
}
