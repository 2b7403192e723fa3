//! A push service that never answers, for the fault a real push service
//! cannot be made to show: delivery slots held until the request times out.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;

use super::push::bind;

/// A push service that accepts connections, reads the requests and never
/// answers: each request holds a delivery slot until the gateway's request
/// timeout. Stops (closing every connection) when dropped.
pub struct HangingService {
    addr: SocketAddr,
    /// Requests read so far (each on a connection of its own, still open).
    requests: watch::Sender<usize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for HangingService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl HangingService {
    pub async fn start() -> Self {
        let (listener, addr) = bind().await;
        let requests = watch::channel(0).0;
        let counter = requests.clone();
        let server = tokio::spawn(async move {
            let mut held = tokio::task::JoinSet::new();
            while let Ok((mut tcp, _)) = listener.accept().await {
                let counter = counter.clone();
                held.spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                        head.extend_from_slice(&buf[..n]);
                        if head.windows(4).any(|w| w == b"\r\n\r\n") {
                            counter.send_modify(|n| *n += 1);
                            break;
                        }
                    }
                    // Hold the connection open, never answering.
                    std::future::pending::<()>().await;
                });
            }
        });
        Self {
            addr,
            requests,
            server,
        }
    }

    /// An endpoint URL on this service.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests received so far, none of them answered.
    pub fn requests(&self) -> usize {
        *self.requests.borrow()
    }

    /// Waits until at least `count` requests are held; fails after `timeout`.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) {
        let mut seen = self.requests.subscribe();
        let reached = tokio::time::timeout(timeout, seen.wait_for(|n| *n >= count)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "{} requests held, expected {count} within {timeout:?}",
            self.requests()
        );
    }
}
