//! A loopback TCP proxy that the test can cut and restore: a network
//! partition between a client (a gateway node) and a server (its database).
//!
//! ```ignore
//! let proxy = CuttableProxy::start(pg.addr()).await;
//! // point the node at 127.0.0.1:proxy.port() ...
//! proxy.cut();     // silence both ways; connections stay open
//! proxy.restore(); // the held connections close; new ones flow again
//! ```
//!
//! While cut, bytes read on either side of a connection are dropped, not
//! forwarded (counted in [`Counts::lost_bytes`]), and connections are still
//! accepted but never reach the server. Nothing is closed, so the client
//! learns of the partition only from its own timeouts. The proxy's kernel
//! still acknowledges what the client sends, so TCP keepalive and
//! `TCP_USER_TIMEOUT` do not fire either: only timeouts above TCP do.
//! [`CuttableProxy::restore`] closes every connection that lived through the
//! cut (a real partition breaks them too) and relays new ones again.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connections accepted, relayed or not.
    pub accepted: usize,
    /// Bytes read while cut and so never forwarded.
    pub lost_bytes: u64,
}

/// Whether bytes flow, and how many cuts were restored: a connection
/// accepted before the latest restore never flows again.
#[derive(Debug, Clone, Copy, Default)]
struct Link {
    cut: bool,
    restores: u64,
}

/// What the accept loop and the connections share.
struct Shared {
    link: watch::Sender<Link>,
    counts: watch::Sender<Counts>,
    /// Ends every task when the proxy is dropped.
    stop: CancellationToken,
}

impl Shared {
    /// Whether a connection accepted in `epoch` may forward bytes now.
    fn flowing(&self, epoch: u64) -> bool {
        let link = *self.link.borrow();
        !link.cut && link.restores == epoch
    }
}

/// A running proxy; its connections close when it is dropped.
pub struct CuttableProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl CuttableProxy {
    /// Listens on a free loopback port and relays each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            link: watch::Sender::new(Link::default()),
            counts: watch::Sender::new(Counts::default()),
            stop: CancellationToken::new(),
        });
        tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        CuttableProxy { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Stops every byte both ways; when this returns, nothing read from
    /// either side is forwarded any more.
    pub fn cut(&self) {
        self.shared.link.send_modify(|link| link.cut = true);
    }

    /// Closes the connections that lived through the cut and relays new
    /// ones again. Does nothing unless cut.
    pub fn restore(&self) {
        self.shared.link.send_if_modified(|link| {
            let was_cut = link.cut;
            if was_cut {
                link.cut = false;
                link.restores += 1;
            }
            was_cut
        });
    }

    pub fn counts(&self) -> Counts {
        *self.shared.counts.borrow()
    }

    /// Waits until the counts satisfy `done` (e.g. the proxy has dropped
    /// the bytes a test sent while cut) and returns them.
    pub async fn until(&self, done: impl Fn(&Counts) -> bool) -> Counts {
        let mut counts = self.shared.counts.subscribe();
        let seen = *counts.wait_for(|c| done(c)).await.expect("proxy alive");
        seen
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let client = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
            _ = shared.stop.cancelled() => return,
        };
        shared.counts.send_modify(|c| c.accepted += 1);
        tokio::spawn(connection(client, upstream, shared.clone()));
    }
}

/// One client connection, from accept until it ends, the proxy is
/// dropped, or a restore closes it.
async fn connection(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let at_accept = *shared.link.borrow();
    let mut link = shared.link.subscribe();
    let restored = link.wait_for(|now| now.restores > at_accept.restores);
    tokio::select! {
        _ = relay(client, upstream, &shared, at_accept) => {}
        _ = restored => {}
        _ = shared.stop.cancelled() => {}
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, shared: &Shared, at_accept: Link) {
    if at_accept.cut {
        // Accepted during a partition: held open, never relayed.
        let _held = client;
        return std::future::pending().await;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let epoch = at_accept.restores;
    tokio::join!(
        pump(client_read, server_write, shared, epoch),
        pump(server_read, client_write, shared, epoch),
    );
}

/// Copies one direction until end of file or an error, dropping what it
/// reads while cut. An end met while cut is not passed on either: the
/// other side keeps waiting until a restore closes the connection.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: &Shared, epoch: u64) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !shared.flowing(epoch) {
            shared.counts.send_modify(|c| c.lost_bytes += n as u64);
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if shared.flowing(epoch) {
        let _ = to.shutdown().await;
    } else {
        std::future::pending::<()>().await;
    }
}
