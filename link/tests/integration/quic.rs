//! The QUIC transport end to end on loopback: handshake, header exchange,
//! identity checks, both directions, frame caps, idle timeout.
#![allow(
    clippy::unwrap_used,
    reason = "harness helpers: a failure fails the test"
)]

use crate::support;

use std::time::Duration;

use link::{AcceptError, Connection, Credentials, Dial, Incoming, LinkError, Transport};
use proto::CodecError;
use support::{anonymous_client, big, configmap, dial, guard, limits, Pki};

const KEEPALIVE: Duration = Duration::from_secs(1);
const IDLE: Duration = Duration::from_secs(10);

/// A QUIC server on 127.0.0.1:0.
struct Server {
    endpoint: quinn::Endpoint,
    max_frame: usize,
}

impl Server {
    fn start(creds: &Credentials, max_frame: usize, idle: Duration) -> Server {
        let tls = link::server_config(creds).unwrap();
        let endpoint = link::quic_server("127.0.0.1:0".parse().unwrap(), tls, idle).unwrap();
        Server {
            endpoint,
            max_frame,
        }
    }

    fn dial(&self, creds: &Credentials, node_id: &str) -> Dial {
        dial(self.endpoint.local_addr().unwrap(), creds, node_id)
    }

    async fn accept(&self) -> Result<Connection, AcceptError> {
        let incoming = self.endpoint.accept().await.unwrap();
        link::quic_accept(incoming, &limits(self.max_frame)).await
    }

    /// Accepts while `dial` connects.
    async fn link(
        &self,
        dial: &Dial,
    ) -> (
        Result<Connection, AcceptError>,
        Result<Connection, LinkError>,
    ) {
        tokio::join!(self.accept(), link::quic_connect(dial, KEEPALIVE, IDLE))
    }
}

async fn established(pki: &Pki, max_frame: usize) -> (Server, Connection, Connection) {
    let server = Server::start(&pki.server(), max_frame, IDLE);
    let dial = server.dial(&pki.node("edge-1"), "edge-1");
    let (cloud, edge) = server.link(&dial).await;
    (server, cloud.unwrap(), edge.unwrap())
}

async fn next_message(conn: &mut Connection) -> proto::Message {
    match conn.receiver.recv().await.unwrap() {
        Some(Incoming::Message(msg)) => msg,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn messages_flow_both_ways() {
    guard(async {
        let pki = Pki::new();
        let (server, mut cloud, mut edge) = established(&pki, proto::DEFAULT_MAX_FRAME).await;

        assert_eq!(cloud.peer.node_id, "edge-1");
        assert_eq!(cloud.peer.project_id, "e632aba927ea4ac2b575ec1603d56f10");
        assert_eq!(cloud.peer.transport, Transport::Quic);
        assert_eq!(edge.peer.remote, server.endpoint.local_addr().unwrap());
        assert_eq!(edge.peer.transport, Transport::Quic);

        // Several messages in a row: frames are split and joined by QUIC at will.
        let down: Vec<_> = (0..20).map(|i| configmap(&format!("cm{i}"))).collect();
        for msg in &down {
            cloud.sender.send(msg).await.unwrap();
        }
        for msg in &down {
            assert_eq!(&next_message(&mut edge).await, msg);
        }

        let up = down[0].reply("OK");
        edge.sender.send(&up).await.unwrap();
        assert_eq!(next_message(&mut cloud).await, up);

        // Ping is quinn's business: a no-op that succeeds.
        edge.sender.ping().await.unwrap();

        edge.sender.close().await;
        assert_eq!(cloud.receiver.recv().await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn large_message_crosses_intact() {
    guard(async {
        let pki = Pki::new();
        let (_server, mut cloud, mut edge) = established(&pki, proto::DEFAULT_MAX_FRAME).await;
        // Larger than quinn's stream window: the sender waits for the reader.
        let msg = big(3 * 1024 * 1024);
        let (sent, got) = tokio::join!(cloud.sender.send(&msg), next_message(&mut edge));
        sent.unwrap();
        assert_eq!(got, msg);
    })
    .await;
}

#[tokio::test]
async fn acks_extension_is_negotiated_between_apiary_ends() {
    guard(async {
        let pki = Pki::new();
        let (_server, cloud, edge) = established(&pki, proto::DEFAULT_MAX_FRAME).await;
        assert!(cloud.peer.acks_upstream);
        assert!(edge.peer.acks_upstream);
    })
    .await;
}

#[tokio::test]
async fn node_id_must_match_the_certificate() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME, IDLE);
        let dial = server.dial(&pki.node("edge-1"), "edge-2");
        let (cloud, edge) = server.link(&dial).await;
        let cloud = cloud.unwrap_err();
        assert!(
            matches!(&cloud, AcceptError::NodeMismatch { claimed, cert } if claimed == "edge-2" && cert == "edge-1"),
            "{cloud:?}"
        );
        assert_eq!(cloud.reason(), "node_mismatch");
        let edge = edge.unwrap_err();
        assert!(
            matches!(edge, LinkError::Refused { status: 403 }),
            "{edge:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn empty_project_id_is_refused_with_400() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME, IDLE);
        let mut dial = server.dial(&pki.node("edge-1"), "edge-1");
        dial.project_id = String::new();
        let (cloud, edge) = server.link(&dial).await;
        let cloud = cloud.unwrap_err();
        assert!(
            matches!(cloud, AcceptError::MissingHeader { name: "project_id" }),
            "{cloud:?}"
        );
        let edge = edge.unwrap_err();
        assert!(
            matches!(edge, LinkError::Refused { status: 400 }),
            "{edge:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME, IDLE);
        let rogue = Pki::new();
        let (cert, key) = rogue.leaf_pem("system:node:edge-1", &[]);
        let creds = Credentials::from_pem(pki.ca_pem().as_bytes(), cert.as_bytes(), key.as_bytes())
            .unwrap();
        let dial = server.dial(&creds, "edge-1");
        let (cloud, edge) = server.link(&dial).await;
        let cloud = cloud.unwrap_err();
        assert!(matches!(cloud, AcceptError::Tls(_)), "{cloud:?}");
        assert!(edge.is_err());
    })
    .await;
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    guard(async {
        let pki = Pki::new();
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME, IDLE);
        let mut dial = server.dial(&pki.node("edge-1"), "edge-1");
        dial.tls = anonymous_client(pki.ca_der());
        let (cloud, edge) = server.link(&dial).await;
        let cloud = cloud.unwrap_err();
        assert!(matches!(cloud, AcceptError::NoClientCert), "{cloud:?}");
        assert!(edge.is_err());
    })
    .await;
}

#[tokio::test]
async fn server_from_another_ca_is_refused_by_the_client() {
    guard(async {
        let pki = Pki::new();
        let rogue = Pki::new();
        let server = Server::start(&rogue.server(), proto::DEFAULT_MAX_FRAME, IDLE);
        let dial = server.dial(&pki.node("edge-1"), "edge-1");
        let (cloud, edge) = server.link(&dial).await;
        assert!(cloud.is_err());
        assert!(edge.is_err());
    })
    .await;
}

#[tokio::test]
async fn oversized_frame_is_a_frame_error_on_the_server() {
    guard(async {
        let pki = Pki::new();
        let (_server, mut cloud, mut edge) = established(&pki, 1024).await;
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
async fn idle_timeout_surfaces_as_an_error() {
    guard(async {
        let pki = Pki::new();
        let idle = Duration::from_millis(300);
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME, idle);
        let dial = server.dial(&pki.node("edge-1"), "edge-1");
        // No keep-alive from the edge: the link goes quiet and times out.
        let (cloud, edge) = tokio::join!(
            server.accept(),
            link::quic_connect(&dial, Duration::ZERO, idle)
        );
        let (mut cloud, mut edge) = (cloud.unwrap(), edge.unwrap());
        let err = edge.receiver.recv().await.unwrap_err();
        assert!(matches!(err, LinkError::Timeout), "{err:?}");
        let err = cloud.receiver.recv().await.unwrap_err();
        assert!(matches!(err, LinkError::Timeout), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn keepalive_holds_an_idle_link_open() {
    guard(async {
        let pki = Pki::new();
        let idle = Duration::from_millis(600);
        let server = Server::start(&pki.server(), proto::DEFAULT_MAX_FRAME, idle);
        let dial = server.dial(&pki.node("edge-1"), "edge-1");
        let (cloud, edge) = tokio::join!(
            server.accept(),
            link::quic_connect(&dial, Duration::from_millis(100), idle)
        );
        let (mut cloud, mut edge) = (cloud.unwrap(), edge.unwrap());
        // Quiet for several idle periods, yet the link lives: the receiver
        // is still waiting when the window ends.
        let quiet = tokio::time::timeout(idle * 2, cloud.receiver.recv()).await;
        assert!(quiet.is_err(), "link ended while quiet: {quiet:?}");
        let msg = configmap("still-here");
        edge.sender.send(&msg).await.unwrap();
        assert_eq!(next_message(&mut cloud).await, msg);
    })
    .await;
}

#[test]
fn bad_idle_timeout_is_refused() {
    let pki = Pki::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let tls = link::server_config(&pki.server()).unwrap();
    let err = link::quic_server(
        "127.0.0.1:0".parse().unwrap(),
        tls,
        Duration::from_secs(u64::MAX),
    )
    .unwrap_err();
    assert!(matches!(err, LinkError::BadTimeout { .. }), "{err:?}");
}
