//! Loopback proxies that break the link on command, for fault tests.
//!
//! [`TcpProxy`] sits between an edge and the cloud's WebSocket port;
//! [`UdpProxy`] between an edge and the QUIC port. Each has three modes:
//! [`Mode::Pass`] forwards, [`Mode::Drop`] closes every connection (TCP) and
//! refuses new ones, [`Mode::Blackhole`] keeps connections open but forwards
//! nothing — the half-open link that a peer can only notice by a deadline.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Mutex};
use tokio_util::sync::CancellationToken;

/// What a proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Close connections and refuse new ones (UDP: discard datagrams).
    Drop,
    /// Keep connections open, forward nothing.
    Blackhole,
}

/// A TCP proxy on 127.0.0.1 with a switchable [`Mode`].
pub struct TcpProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    stop: CancellationToken,
}

impl TcpProxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::Pass);
        let stop = CancellationToken::new();
        let modes = mode.subscribe();
        tokio::spawn(accept_loop(listener, upstream, modes, stop.clone()));
        Ok(TcpProxy { addr, mode, stop })
    }

    /// The address edges should dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode; takes effect on live connections at once.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    modes: watch::Receiver<Mode>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else { continue };
        if *modes.borrow() == Mode::Drop {
            drop(client);
            continue;
        }
        let modes = modes.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Ok(server) = TcpStream::connect(upstream).await {
                pipe(client, server, modes, stop).await;
            }
        });
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    mut modes: watch::Receiver<Mode>,
    stop: CancellationToken,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        let mode = *modes.borrow_and_update();
        match mode {
            Mode::Drop => return,
            Mode::Blackhole => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    changed = modes.changed() => if changed.is_err() { return },
                }
            }
            Mode::Pass => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    changed = modes.changed() => if changed.is_err() { return },
                    n = cr.read(&mut up) => match n {
                        Ok(0) | Err(_) => return,
                        Ok(n) => if sw.write_all(&up[..n]).await.is_err() { return },
                    },
                    n = sr.read(&mut down) => match n {
                        Ok(0) | Err(_) => return,
                        Ok(n) => if cw.write_all(&down[..n]).await.is_err() { return },
                    },
                }
            }
        }
    }
}

/// A UDP relay on 127.0.0.1 with a switchable [`Mode`] (for QUIC).
pub struct UdpProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    stop: CancellationToken,
}

impl UdpProxy {
    /// Binds 127.0.0.1:0 and relays datagrams to `upstream`, one upstream
    /// socket per client address.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = socket.local_addr()?;
        let (mode, _) = watch::channel(Mode::Pass);
        let stop = CancellationToken::new();
        tokio::spawn(relay(socket, upstream, mode.subscribe(), stop.clone()));
        Ok(UdpProxy { addr, mode, stop })
    }

    /// The address edges should dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Peers = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

async fn relay(
    front: Arc<UdpSocket>,
    upstream: SocketAddr,
    modes: watch::Receiver<Mode>,
    stop: CancellationToken,
) {
    let peers: Peers = Arc::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            r = front.recv_from(&mut buf) => r,
        };
        let Ok((n, client)) = received else { continue };
        if *modes.borrow() != Mode::Pass {
            continue;
        }
        let back = {
            let mut peers = peers.lock().await;
            match peers.get(&client) {
                Some(sock) => sock.clone(),
                None => {
                    let Ok(sock) = UdpSocket::bind("127.0.0.1:0").await else {
                        continue;
                    };
                    if sock.connect(upstream).await.is_err() {
                        continue;
                    }
                    let sock = Arc::new(sock);
                    peers.insert(client, sock.clone());
                    tokio::spawn(reverse(
                        sock.clone(),
                        front.clone(),
                        client,
                        modes.clone(),
                        stop.clone(),
                    ));
                    sock
                }
            }
        };
        let _ = back.send(&buf[..n]).await;
    }
}

async fn reverse(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    modes: watch::Receiver<Mode>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            r = back.recv(&mut buf) => r,
        };
        let Ok(n) = received else { return };
        if *modes.borrow() == Mode::Pass {
            let _ = front.send_to(&buf[..n], client).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn tcp_proxy_passes_drops_and_blackholes() {
        let proxy = TcpProxy::start(echo_server().await).await.unwrap();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");

        proxy.set(Mode::Blackhole);
        c.write_all(b"lost").await.unwrap();
        let silent =
            tokio::time::timeout(std::time::Duration::from_millis(200), c.read(&mut buf)).await;
        assert!(silent.is_err(), "blackhole forwarded data");

        proxy.set(Mode::Drop);
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("drop closes the connection");
        assert!(matches!(n, Ok(0) | Err(_)));
    }
}
