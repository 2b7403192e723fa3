//! TCP proxies in front of Dovecot, for what Dovecot itself cannot be made
//! to do:
//! - [`DropAfterDone`] plays a server which mishandles pipelining: of a read
//!   from the client that holds `DONE` and more, it passes on `DONE` and
//!   drops the rest, as a server that discards its input buffer when IDLE
//!   ends would (until the test fixes it);
//! - [`HoldFetchAnswer`] holds the answer to one `UID FETCH` until the test
//!   lets it go, which keeps a watcher's check open at a chosen moment.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Accepts loopback connections and hands each, with a connection to
/// Dovecot at `upstream_port`, to `relay`; returns the proxy's port.
async fn listen<F, R>(upstream_port: u16, relay: F) -> u16
where
    F: Fn(TcpStream, TcpStream) -> R + Send + 'static,
    R: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let port = listener.local_addr().expect("proxy address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                continue;
            };
            tokio::spawn(relay(client, server));
        }
    });
    port
}

const DONE: &[u8] = b"DONE\r\n";

pub struct DropAfterDone {
    port: u16,
    counts: Arc<PipelinedReads>,
}

/// What [`DropAfterDone`] did with reads that hold `DONE` and more.
#[derive(Default)]
struct PipelinedReads {
    /// Passes them whole instead (the server was fixed).
    fixed: AtomicBool,
    dropped: AtomicUsize,
    passed: AtomicUsize,
}

impl DropAfterDone {
    /// Listens on a loopback port and forwards each connection to `upstream_port`.
    pub async fn start(upstream_port: u16) -> DropAfterDone {
        let counts = Arc::new(PipelinedReads::default());
        let shared = counts.clone();
        let port = listen(upstream_port, move |client, server| {
            drop_after_done(client, server, shared.clone())
        })
        .await;
        DropAfterDone { port, counts }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many reads lost what followed their `DONE`.
    pub fn dropped(&self) -> usize {
        self.counts.dropped.load(Ordering::SeqCst)
    }

    /// From now on, passes what follows `DONE` as a sound server would.
    pub fn fix(&self) {
        self.counts.fixed.store(true, Ordering::SeqCst);
    }

    /// How many reads with `DONE` and more were passed whole after [`Self::fix`].
    pub fn passed_pipelined(&self) -> usize {
        self.counts.passed.load(Ordering::SeqCst)
    }
}

async fn drop_after_done(client: TcpStream, server: TcpStream, counts: Arc<PipelinedReads>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let pass = match chunk.windows(DONE.len()).position(|w| w == DONE) {
            Some(at) if at + DONE.len() < n => {
                if counts.fixed.load(Ordering::SeqCst) {
                    counts.passed.fetch_add(1, Ordering::SeqCst);
                    chunk
                } else {
                    counts.dropped.fetch_add(1, Ordering::SeqCst);
                    &chunk[..at + DONE.len()]
                }
            }
            _ => chunk,
        };
        if server_write.write_all(pass).await.is_err() {
            return;
        }
    }
}

/// Where [`HoldFetchAnswer`] is with the one answer it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Passing everything on.
    Off,
    /// Waiting for a client to send `UID FETCH`.
    Armed,
    /// A `UID FETCH` went to Dovecot; what Dovecot answers waits.
    Holding,
}

pub struct HoldFetchAnswer {
    port: u16,
    hold: Arc<watch::Sender<Hold>>,
}

impl HoldFetchAnswer {
    /// Listens on a loopback port and forwards each connection to `upstream_port`.
    pub async fn start(upstream_port: u16) -> HoldFetchAnswer {
        let hold = Arc::new(watch::Sender::new(Hold::Off));
        let shared = hold.clone();
        let port = listen(upstream_port, move |client, server| {
            hold_fetch_answer(client, server, shared.clone())
        })
        .await;
        HoldFetchAnswer { port, hold }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Holds what Dovecot sends after the next `UID FETCH` from a client.
    pub fn arm(&self) {
        self.hold.send_replace(Hold::Armed);
    }

    /// Waits (at most `limit`) until a `UID FETCH` went through and its answer is held.
    pub async fn wait_holding(&self, limit: Duration) {
        let mut state = self.hold.subscribe();
        tokio::time::timeout(limit, state.wait_for(|h| *h == Hold::Holding))
            .await
            .expect("no UID FETCH went through the proxy")
            .expect("proxy gone");
    }

    /// Lets the held answer (and everything after it) through.
    pub fn release(&self) {
        self.hold.send_replace(Hold::Off);
    }
}

async fn hold_fetch_answer(client: TcpStream, server: TcpStream, hold: Arc<watch::Sender<Hold>>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let answers = hold.subscribe();
    tokio::spawn(pass_answers(server_read, client_write, answers));
    pass_commands(client_read, server_write, hold).await;
}

/// Client to Dovecot: a `UID FETCH` while armed starts the hold, before
/// Dovecot sees it (so its answer cannot slip through).
async fn pass_commands(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    hold: Arc<watch::Sender<Hold>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let fetch = buf[..n]
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"UID FETCH"));
        if fetch {
            hold.send_if_modified(|h| {
                let armed = *h == Hold::Armed;
                if armed {
                    *h = Hold::Holding;
                }
                armed
            });
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Dovecot to client: nothing passes while an answer is held.
async fn pass_answers(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut hold: watch::Receiver<Hold>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if hold.wait_for(|h| *h != Hold::Holding).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
