//! The cloud–edge link, shared by cloudcore's cloudhub and edgecore's
//! edgehub: mutual TLS, node identity from certificates, and WebSocket or
//! QUIC connections as streams of [`proto::Message`]s.
//!
//! `docs/link-design.md` is the contract this crate implements.
//!
//! # Layout
//!
//! - [`tls`]: [`Credentials`] from PEM, rustls [`server_config`] (client
//!   certificate required) and [`client_config`], [`node_of`] a certificate.
//! - [`conn`]: [`Connection`] = [`Peer`] + [`LinkSender`] + [`LinkReceiver`];
//!   [`Incoming`], [`Limits`], [`Transport`].
//! - [`ws`]: KubeEdge's WebSocket transport: [`WsAcceptor`], [`ws_connect`],
//!   [`Dial`] (used by both transports).
//! - [`quic`]: Apiary's QUIC transport over quinn: [`quic_server`],
//!   [`quic_accept`], [`quic_connect`].
//! - [`error`]: [`TlsError`], [`LinkError`], [`AcceptError`] (with a metric
//!   label per refusal).
//!
//! Only rustls with ring is used; configs carry their provider, so no
//! process-wide default provider is installed.
//!
//! # Example
//!
//! ```no_run
//! # async fn edge() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! let creds = link::Credentials::from_pem_files(
//!     Path::new("/etc/kubeedge/ca/rootCA.crt"),
//!     Path::new("/etc/kubeedge/certs/server.crt"),
//!     Path::new("/etc/kubeedge/certs/server.key"),
//! )?;
//! let dial = link::Dial {
//!     server: "cloud.example:10000".into(),
//!     server_name: "cloud.example".into(),
//!     project_id: "e632aba927ea4ac2b575ec1603d56f10".into(),
//!     node_id: "edge-1".into(),
//!     tls: link::client_config(&creds)?,
//!     limits: link::Limits::default(),
//! };
//! let mut conn = link::ws_connect(&dial).await?;
//! while let Some(item) = conn.receiver.recv().await? {
//!     if let link::Incoming::Message(msg) = item {
//!         println!("{}", msg.resource());
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod conn;
pub mod error;
pub mod quic;
pub mod tls;
pub mod ws;

pub use conn::{Connection, Incoming, Limits, LinkReceiver, LinkSender, Peer, Transport};
pub use error::{AcceptError, LinkError, Result, TlsError};
pub use quic::{quic_accept, quic_connect, quic_server};
pub use tls::{client_config, node_of, server_config, Credentials, NODE_CN_PREFIX};
pub use ws::{ws_connect, Dial, WsAcceptor};
