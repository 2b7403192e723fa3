//! A TCP proxy in front of Dovecot that plays a server which mishandles
//! pipelining: of a read from the client that holds `DONE` and more, it
//! passes on `DONE` and drops the rest, as a server that discards its input
//! buffer when IDLE ends would. Dovecot itself cannot be made to do this.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DONE: &[u8] = b"DONE\r\n";

pub struct DropAfterDone {
    port: u16,
    dropped: Arc<AtomicUsize>,
}

impl DropAfterDone {
    /// Listens on a loopback port and forwards each connection to `upstream_port`.
    pub async fn start(upstream_port: u16) -> DropAfterDone {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let dropped = Arc::new(AtomicUsize::new(0));
        let counter = dropped.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, counter.clone()));
            }
        });
        DropAfterDone { port, dropped }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many reads lost what followed their `DONE`.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

async fn relay(client: TcpStream, server: TcpStream, dropped: Arc<AtomicUsize>) {
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
                dropped.fetch_add(1, Ordering::SeqCst);
                &chunk[..at + DONE.len()]
            }
            _ => chunk,
        };
        if server_write.write_all(pass).await.is_err() {
            return;
        }
    }
}
