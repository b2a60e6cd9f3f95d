//! [`EventBusSettings`]: which brokers EventBus connects to and how, built
//! from `modules.eventBus` and, for the embedded broker, an endpoint the
//! daemon passes in.
//!
//! `mqttMode` decides the brokers (reference §4):
//!
//! - 0 (internal): the embedded broker only; the daemon passes its address
//!   and a credential ([`EventBusSettings::with_endpoint`]).
//! - 1 (both): the embedded broker *and* `mqttServerExternal`. KubeEdge runs
//!   its internal broker and connects its clients to the external one;
//!   Apiary connects one client to each, so devices on either broker reach
//!   DeviceTwin and the cloud, and everything EventBus publishes goes to
//!   both brokers.
//! - 2 (external): `mqttServerExternal` only ([`EventBusSettings::external`]),
//!   with `mqttUsername`/`mqttPassword` and, if `eventBusTLS.enable`, TLS
//!   (rustls with ring; the CA file is required, the client certificate and
//!   key are optional but go together).
//!
//! KubeEdge uses two MQTT clients (`mqttSubClientID`, `mqttPubClientID`);
//! Apiary uses one connection per broker with a persistent session whose
//! id is `mqttSubClientID`, or `apiary-eventbus-<node>` when empty.
//! `mqttPubClientID` is not used.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::{EventBusError, Result};
use crate::config::{EventBus as EventBusConfig, EventBusTls};

/// The largest payload EventBus carries either way when the broker's own
/// limit is not known (an external broker).
pub const DEFAULT_MAX_PAYLOAD: usize = 5 * 1024 * 1024;

/// MQTT requests (publishes, subscriptions, acks) queued for one broker,
/// at most. While the broker is unreachable, publishes from the bus wait
/// here; once it is full they are dropped and counted.
pub const DEFAULT_OUTGOING_QUEUE: usize = 1024;

/// Room for the topic and headers on top of the payload, in a packet.
const PACKET_OVERHEAD: usize = 65_535 + 16;

/// One broker to connect to.
#[derive(Clone)]
pub struct MqttEndpoint {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// MQTT username; empty: connect without credentials.
    pub username: String,
    /// MQTT password.
    pub password: String,
    /// TLS to the broker, verifying it as `host`; `None`: plain TCP.
    pub tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for MqttEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttEndpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl MqttEndpoint {
    /// A plain-TCP broker without credentials.
    pub fn new(host: impl Into<String>, port: u16) -> MqttEndpoint {
        MqttEndpoint {
            host: host.into(),
            port,
            username: String::new(),
            password: String::new(),
            tls: None,
        }
    }

    /// Sets the username and password.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> MqttEndpoint {
        self.username = username.into();
        self.password = password.into();
        self
    }

    /// `host:port` (`[v6]:port`), for logs.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Everything EventBus needs to talk MQTT.
#[derive(Debug, Clone)]
pub struct EventBusSettings {
    /// The brokers, each with a connection of its own.
    pub brokers: Vec<MqttEndpoint>,
    /// QoS of subscriptions and publishes (`mqttQOS`).
    pub qos: QoS,
    /// Retain flag of publishes (`mqttRetain`).
    pub retain: bool,
    /// The persistent session's client id; empty: `apiary-eventbus-<node>`.
    pub client_id: String,
    /// Payloads over this many bytes are dropped, both ways.
    pub max_payload: usize,
    /// See [`DEFAULT_OUTGOING_QUEUE`].
    pub outgoing_queue: usize,
    /// MQTT keepalive.
    pub keep_alive: Duration,
    /// First reconnect delay; it doubles, jittered, up to `backoff_max`.
    pub backoff_base: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
}

impl EventBusSettings {
    /// Settings for `mqttServerExternal` alone (`mqttMode` 2).
    pub fn external(config: &EventBusConfig) -> Result<EventBusSettings> {
        let mut settings = EventBusSettings::common(config)?;
        settings.brokers.push(external_endpoint(config)?);
        Ok(settings)
    }

    /// Settings for `endpoint` (the embedded broker), plus
    /// `mqttServerExternal` when `mqttMode` is 1. Payloads are capped at the
    /// embedded broker's `maxPayloadBytes` when it is below
    /// [`DEFAULT_MAX_PAYLOAD`].
    pub fn with_endpoint(
        config: &EventBusConfig,
        endpoint: MqttEndpoint,
    ) -> Result<EventBusSettings> {
        let mut settings = EventBusSettings::common(config)?;
        settings.brokers.push(endpoint);
        let broker_limit = usize::try_from(config.broker.max_payload_bytes).unwrap_or(usize::MAX);
        if broker_limit > 0 {
            settings.max_payload = settings.max_payload.min(broker_limit);
        }
        if config.mqtt_mode == 1 {
            settings.brokers.push(external_endpoint(config)?);
        }
        Ok(settings)
    }

    fn common(config: &EventBusConfig) -> Result<EventBusSettings> {
        let qos = match config.mqtt_qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            other => {
                return Err(EventBusError::Config {
                    key: "mqttQOS",
                    reason: format!("{other} is not 0, 1 or 2"),
                })
            }
        };
        if config.mqtt_sub_client_id.starts_with(' ') {
            return Err(EventBusError::Config {
                key: "mqttSubClientID",
                reason: "must not start with a space".to_owned(),
            });
        }
        Ok(EventBusSettings {
            brokers: Vec::new(),
            qos,
            retain: config.mqtt_retain,
            client_id: config.mqtt_sub_client_id.clone(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            outgoing_queue: DEFAULT_OUTGOING_QUEUE,
            keep_alive: Duration::from_secs(30),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
        })
    }

    /// The client id for `node`.
    pub(crate) fn client_id_for(&self, node: &str) -> String {
        if self.client_id.is_empty() {
            format!("apiary-eventbus-{node}")
        } else {
            self.client_id.clone()
        }
    }

    /// Incoming packets up to this size are read, and dropped by EventBus
    /// if their payload is over `max_payload`; a larger one breaks the
    /// connection (see the driver).
    pub(crate) fn incoming_packet_limit(&self) -> usize {
        self.max_payload
            .saturating_mul(2)
            .saturating_add(PACKET_OVERHEAD)
    }

    /// rumqttc's options for one broker: persistent session, manual acks.
    pub(crate) fn mqtt_options(&self, endpoint: &MqttEndpoint, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, endpoint.host.clone(), endpoint.port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(self.keep_alive.max(Duration::from_secs(1)))
            .set_max_packet_size(
                self.incoming_packet_limit(),
                self.max_payload.saturating_add(PACKET_OVERHEAD),
            );
        if !endpoint.username.is_empty() {
            options.set_credentials(endpoint.username.clone(), endpoint.password.clone());
        }
        if let Some(tls) = &endpoint.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        options
    }
}

/// `mqttServerExternal` with `mqttUsername`/`mqttPassword` and `eventBusTLS`.
fn external_endpoint(config: &EventBusConfig) -> Result<MqttEndpoint> {
    let url = parse_url(&config.mqtt_server_external)?;
    let tls_wanted = config.event_bus_tls.enable;
    if url.tls != tls_wanted {
        return Err(EventBusError::Config {
            key: "mqttServerExternal",
            reason: if url.tls {
                format!(
                    "{} asks for TLS; set eventBusTLS.enable and its CA file",
                    config.mqtt_server_external
                )
            } else {
                format!(
                    "eventBusTLS.enable is set but {} is plain TCP; use ssl:// or mqtts://",
                    config.mqtt_server_external
                )
            },
        });
    }
    let tls = if tls_wanted {
        Some(client_tls(&config.event_bus_tls)?)
    } else {
        None
    };
    Ok(MqttEndpoint {
        host: url.host,
        port: url.port,
        username: config.mqtt_username.clone(),
        password: config.mqtt_password.clone(),
        tls,
    })
}

/// A broker URL: `tcp://` or `mqtt://` (plain), `ssl://` or `mqtts://`.
#[derive(Debug, PartialEq, Eq)]
struct BrokerUrl {
    tls: bool,
    host: String,
    port: u16,
}

fn parse_url(url: &str) -> Result<BrokerUrl> {
    let bad = |reason: &str| EventBusError::Config {
        key: "mqttServerExternal",
        reason: format!("{url:?}: {reason}"),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("not scheme://host:port"))?;
    let tls = match scheme {
        "tcp" | "mqtt" => false,
        "ssl" | "mqtts" => true,
        _ => return Err(bad("the scheme must be tcp, mqtt, ssl or mqtts")),
    };
    let authority = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        (addr.to_owned(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?']) {
        return Err(bad("bad host"));
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
        None if tls => 8883,
        None => 1883,
    };
    Ok(BrokerUrl { tls, host, port })
}

/// rustls (ring) trusting `tlsMqttCAFile`, presenting the client
/// certificate if one is configured.
fn client_tls(tls: &EventBusTls) -> Result<Arc<ClientConfig>> {
    if tls.tls_mqtt_ca_file.is_empty() {
        return Err(EventBusError::Config {
            key: "eventBusTLS.tlsMqttCAFile",
            reason: "is required when eventBusTLS.enable is set".to_owned(),
        });
    }
    let mut roots = RootCertStore::empty();
    for ca in certificates(Path::new(&tls.tls_mqtt_ca_file))? {
        roots.add(ca)?;
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
    let config = match (
        tls.tls_mqtt_cert_file.as_str(),
        tls.tls_mqtt_private_key_file.as_str(),
    ) {
        ("", "") => builder.with_no_client_auth(),
        ("", _) | (_, "") => {
            return Err(EventBusError::Config {
                key: "eventBusTLS",
                reason: "tlsMqttCertFile and tlsMqttPrivateKeyFile go together".to_owned(),
            })
        }
        (cert, key) => {
            let chain = certificates(Path::new(cert))?;
            let key_path = Path::new(key);
            let key = PrivateKeyDer::from_pem_slice(&read(key_path)?).map_err(|source| {
                EventBusError::Pem {
                    path: key_path.to_owned(),
                    source,
                }
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| EventBusError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|source| EventBusError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(EventBusError::Config {
            key: "eventBusTLS",
            reason: format!("no certificate in {}", path.display()),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    fn url(tls: bool, host: &str, port: u16) -> BrokerUrl {
        BrokerUrl {
            tls,
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("tcp://127.0.0.1:1883").unwrap(),
            url(false, "127.0.0.1", 1883)
        );
        assert_eq!(
            parse_url("ssl://broker.local").unwrap(),
            url(true, "broker.local", 8883)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1884/").unwrap(),
            url(false, "::1", 1884)
        );
        for bad in [
            "127.0.0.1:1883",
            "http://x:1",
            "tcp://:1883",
            "tcp://x:port",
            "tcp://x:70000",
            "tcp://[::1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn external_mode_uses_the_config() {
        let config = EventBusConfig {
            mqtt_mode: 2,
            mqtt_qos: 2,
            mqtt_retain: true,
            mqtt_username: "u".into(),
            mqtt_password: "p".into(),
            ..EventBusConfig::default()
        };
        let s = EventBusSettings::external(&config).unwrap();
        assert_eq!(s.brokers.len(), 1);
        assert_eq!(s.brokers[0].address(), "127.0.0.1:1883");
        assert_eq!(MqttEndpoint::new("::1", 1).address(), "[::1]:1");
        assert_eq!(s.brokers[0].username, "u");
        assert!(s.brokers[0].tls.is_none());
        assert_eq!((s.qos, s.retain), (QoS::ExactlyOnce, true));
        assert_eq!(s.client_id_for("edge-1"), "apiary-eventbus-edge-1");
    }

    #[test]
    fn the_password_stays_out_of_debug_output() {
        let ep = MqttEndpoint::new("h", 1).with_credentials("user", "s3cret");
        assert!(!format!("{ep:?}").contains("s3cret"));
    }

    #[test]
    fn both_mode_adds_the_external_broker() {
        let config = EventBusConfig {
            mqtt_mode: 1,
            mqtt_sub_client_id: "sub".into(),
            ..EventBusConfig::default()
        };
        let internal = MqttEndpoint::new("127.0.0.1", 41883).with_credentials("edgecore", "x");
        let s = EventBusSettings::with_endpoint(&config, internal).unwrap();
        let addrs: Vec<_> = s.brokers.iter().map(MqttEndpoint::address).collect();
        assert_eq!(addrs, ["127.0.0.1:41883", "127.0.0.1:1883"]);
        assert_eq!(s.client_id_for("edge-1"), "sub");
        // The embedded broker's limit (1 MiB by default) caps payloads.
        assert_eq!(s.max_payload, 1024 * 1024);
        let internal_only = EventBusConfig {
            mqtt_mode: 0,
            ..config
        };
        let s = EventBusSettings::with_endpoint(&internal_only, MqttEndpoint::new("h", 1)).unwrap();
        assert_eq!(s.brokers.len(), 1);
    }

    #[test]
    fn tls_settings_must_agree_with_the_url() {
        let mut config = EventBusConfig {
            mqtt_server_external: "ssl://127.0.0.1:8883".into(),
            ..EventBusConfig::default()
        };
        let err = EventBusSettings::external(&config).unwrap_err();
        assert!(err.to_string().contains("eventBusTLS.enable"), "{err}");
        config.event_bus_tls.enable = true;
        let err = EventBusSettings::external(&config).unwrap_err();
        assert!(err.to_string().contains("tlsMqttCAFile"), "{err}");
        config.event_bus_tls.tls_mqtt_ca_file = "/nonexistent/ca.crt".into();
        let err = EventBusSettings::external(&config).unwrap_err();
        assert!(matches!(err, EventBusError::Read { .. }), "{err}");
        config.mqtt_server_external = "tcp://127.0.0.1:1883".into();
        assert!(EventBusSettings::external(&config).is_err());
        config.mqtt_qos = 3;
        assert!(EventBusSettings::external(&config).is_err());
    }

    #[test]
    fn tls_from_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let ca = dir.path().join("ca.crt");
        let key_file = dir.path().join("client.key");
        std::fs::write(&ca, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let mut tls = EventBusTls {
            enable: true,
            tls_mqtt_ca_file: ca.display().to_string(),
            ..EventBusTls::default()
        };
        assert!(client_tls(&tls).is_ok());
        tls.tls_mqtt_cert_file = ca.display().to_string();
        assert!(client_tls(&tls).is_err(), "a certificate without its key");
        tls.tls_mqtt_private_key_file = key_file.display().to_string();
        assert!(client_tls(&tls).is_ok());
    }
}
