//! Building the rmqtt broker on its runtime: listeners, context, plugins,
//! our hook handlers, the DISCONNECT closer, and the spawned server.
//!
//! Invariant: rmqtt's `MqttServer::start` is never called (it exits the
//! process on error); the server's `run` future is spawned here instead.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::hook::Type;
use rmqtt::net::{Builder, Listener};
use rmqtt::server::MqttServer;
use tokio::task::JoinHandle;

use crate::acl::{self, AclHandler, TopicAcl};
use crate::auth::{AuthHandler, Users};
use crate::closer;
use crate::error::{BrokerError, Result};
use crate::plugins;
use crate::server::BrokerSettings;

/// "Never" for rmqtt's session expiry, which has no such value: MQTT 5's
/// largest expiry interval (`0xFFFFFFFF` seconds, about 136 years).
const NEVER: Duration = Duration::from_secs(u32::MAX as u64);
/// Room in a PUBLISH packet beside its payload: fixed header, topic (at
/// most 65,535 bytes and its length), packet id and MQTT 5 properties. A
/// larger packet closes the connection; a payload over the limit in a
/// packet under it is dropped by `acl::AclHandler`.
const PUBLISH_OVERHEAD: u32 = 64 * 1024 + 1024;
/// rmqtt listener ids. Persistent sessions are stored with the id of the
/// listener they came through and restored only onto a listener with the
/// same id, so these stay fixed whatever the ports.
const TCP_LISTENER_ID: u16 = 1;
const WS_LISTENER_ID: u16 = 2;

/// Data directories whose stores a broker of this process has opened.
/// rmqtt's context never drops (its plugins and hook handlers hold it), so
/// its sled stores stay open, and locked, until the process exits.
static OPENED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// What [`setup`] hands back.
pub(crate) struct Started {
    pub tcp_addr: SocketAddr,
    pub ws_addr: Option<SocketAddr>,
    pub scx: ServerContext,
    pub server: JoinHandle<()>,
}

/// Runs on the broker's runtime: listeners, context, plugins, server.
pub(crate) async fn setup(
    settings: BrokerSettings,
    ws_listen: Option<SocketAddr>,
    internal: (String, String),
) -> Result<Started> {
    let config = &settings.config;
    let data_dir_error = |source| BrokerError::DataDir {
        path: settings.data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&settings.data_dir).map_err(data_dir_error)?;
    let data_dir = settings.data_dir.canonicalize().map_err(data_dir_error)?;
    if OPENED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&data_dir)
    {
        return Err(BrokerError::DataDirOpen { path: data_dir });
    }

    let anonymous = config.anonymous_allowed(&settings.bus_username);
    let users = Users::new(
        config,
        (&settings.bus_username, &settings.bus_password),
        (&internal.0, &internal.1),
    );
    let mut context = ServerContext::new()
        // Refusing clients when the host is loaded is not for an edge node.
        .busy_check_enable(false)
        // rmqtt caps sessions (a listener's `max_connections` only bounds
        // its queue of handshakes): connected clients and the persistent
        // sessions of clients that are away.
        .mqtt_max_sessions(config.max_connections.max(1) as isize)
        .plugins_config_map_add(
            plugins::RETAINER,
            plugins::retainer_toml(&data_dir.join("retained"), config.max_payload_bytes)?,
        )
        .plugins_config_map_add(
            plugins::SESSION_STORAGE,
            plugins::session_storage_toml(&data_dir.join("sessions"))?,
        );
    if config.sys_topics {
        context = context.plugins_config_map_add(plugins::SYS_TOPIC, plugins::sys_topic_toml()?);
    }

    let tcp = bind("tcp", settings.listen, &settings, anonymous, Listener::tcp)?;
    let tcp_addr = local_addr("tcp", settings.listen, &tcp)?;
    let ws = match ws_listen {
        Some(addr) => {
            let ws = bind("websocket", addr, &settings, anonymous, Listener::ws)?;
            Some((local_addr("websocket", addr, &ws)?, ws))
        }
        None => None,
    };

    let scx = context.build().await;
    register_plugins(&scx, &data_dir, config.sys_topics).await?;
    let register = scx.extends.hook_mgr().register();
    register
        .add_priority(
            Type::ClientAuthenticate,
            acl::PRIORITY,
            Box::new(AuthHandler::new(users)),
        )
        .await;
    for typ in [Type::ClientSubscribeCheckAcl, Type::MessagePublishCheckAcl] {
        let handler = AclHandler::new(
            TopicAcl::new(&config.acl),
            config.max_payload_bytes as usize,
        );
        register
            .add_priority(typ, acl::PRIORITY, Box::new(handler))
            .await;
    }
    register.start().await;

    let server = MqttServer::new(scx.clone()).listener_by_id(tcp, TCP_LISTENER_ID);
    let (server, ws_addr) = match ws {
        Some((addr, ws)) => (server.listener_by_id(ws, WS_LISTENER_ID), Some(addr)),
        None => (server, None),
    };
    let server = server.build();
    tokio::spawn(closer::close_after_disconnect(scx.clone()));
    let server = tokio::spawn(async move {
        if let Err(e) = server.run().await {
            tracing::error!(error = %e, "MQTT broker stopped accepting clients");
        }
    });

    tracing::info!(
        tcp = %tcp_addr,
        websocket = ?ws_addr,
        anonymous,
        users = config.users.len() + usize::from(!settings.bus_username.is_empty()),
        acl_rules = config.acl.rules.len(),
        deny_by_default = config.acl.deny_by_default,
        sys_topics = config.sys_topics,
        data_dir = %data_dir.display(),
        "MQTT broker listening"
    );
    Ok(Started {
        tcp_addr,
        ws_addr,
        scx,
        server,
    })
}

/// Starts the plugins; `data_dir` counts as opened from the first store on.
async fn register_plugins(scx: &ServerContext, data_dir: &Path, sys_topics: bool) -> Result<()> {
    let failed = |plugin: &'static str| {
        move |e: rmqtt::Error| BrokerError::Plugin {
            plugin,
            source: e.into(),
        }
    };
    // Opens `retained/`: if that fails (another process holds it) nothing
    // stays open.
    rmqtt_retainer::register(scx, true, false)
        .await
        .map_err(failed(plugins::RETAINER))?;
    OPENED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(data_dir.to_path_buf());
    rmqtt_session_storage::register(scx, true, false)
        .await
        .map_err(failed(plugins::SESSION_STORAGE))?;
    if sys_topics {
        rmqtt_sys_topic::register(scx, true, false)
            .await
            .map_err(failed(plugins::SYS_TOPIC))?;
    }
    Ok(())
}

/// Binds one listener with our limits and expiry settings.
fn bind(
    name: &'static str,
    addr: SocketAddr,
    settings: &BrokerSettings,
    anonymous: bool,
    kind: fn(Listener) -> rmqtt::Result<Listener>,
) -> Result<Listener> {
    let config = &settings.config;
    let in_flight = u16::try_from(settings.session_queue.clamp(1, u16::MAX.into()))
        .ok()
        .and_then(NonZeroU16::new)
        .unwrap_or(NonZeroU16::MIN);
    let seconds = |s: u32, zero: Duration| {
        if s == 0 {
            zero
        } else {
            Duration::from_secs(s.into())
        }
    };
    let builder = Builder::new()
        .name(format!("apiary/{name}"))
        .laddr(addr)
        .reuseaddr(Some(true))
        .nodelay(true)
        .max_connections(config.max_connections.max(1) as usize)
        .max_packet_size(config.max_payload_bytes.saturating_add(PUBLISH_OVERHEAD))
        .allow_anonymous(anonymous)
        .max_inflight(in_flight)
        .max_mqueue_len(config.max_queued_messages.max(1) as usize)
        .session_expiry_interval(seconds(config.session_expiry_seconds, NEVER))
        // rmqtt reads a zero message expiry as "never".
        .message_expiry_interval(seconds(config.message_expiry_seconds, Duration::ZERO));
    let failed = |source: rmqtt::Error| BrokerError::Bind {
        listener: name,
        addr,
        source: source.into(),
    };
    builder.bind().and_then(kind).map_err(failed)
}

fn local_addr(name: &'static str, addr: SocketAddr, listener: &Listener) -> Result<SocketAddr> {
    listener.local_addr().map_err(|source| BrokerError::Bind {
        listener: name,
        addr,
        source: source.into(),
    })
}
