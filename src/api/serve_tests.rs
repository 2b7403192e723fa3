//! The connection limits, on a paused clock: the runtime moves time on to
//! the next deadline whenever every task waits.

use std::sync::Arc;

use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex as AsyncMutex;

use super::*;

const LIMITS: ServeLimits = ServeLimits {
    header_read: Duration::from_secs(5),
    idle: Duration::from_secs(60),
    drain: Duration::from_secs(1),
};

/// A chunk of the large response.
const CHUNK: usize = 64 * 1024;
/// Chunks of the large response: more than loopback buffers hold.
const CHUNKS: usize = 1024;

struct Server {
    addr: SocketAddr,
    /// Held by the test to keep `/slow` from answering.
    gate: Arc<AsyncMutex<()>>,
}

async fn start() -> Server {
    let gate = Arc::new(AsyncMutex::new(()));
    let slow_gate = gate.clone();
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/slow",
            get(move || async move {
                let _open = slow_gate.lock().await;
                "finally"
            }),
        )
        .route(
            "/large",
            get(|| async {
                let chunks = futures_util::stream::iter(
                    (0..CHUNKS).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'x'; CHUNK]))),
                );
                axum::body::Body::from_stream(chunks)
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app, LIMITS, CancellationToken::new()));
    Server { addr, gate }
}

/// Reads until the server closes the connection; returns what came.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_header_not_finished_in_time_is_cut_off() {
    let server = start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /ok HT").await.unwrap();
    let started = Instant::now();
    assert!(until_closed(&mut tcp).await.is_empty());
    // Closed by the header limit, not the idle one.
    assert!(started.elapsed() < LIMITS.idle);
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(until_closed(&mut tcp).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_takes_long_is_not_cut() {
    let server = start().await;
    let closed = server.gate.lock().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(LIMITS.idle * 10).await;
    drop(closed);
    let answer = String::from_utf8(until_closed(&mut tcp).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("finally"), "{answer}");
}

#[tokio::test(start_paused = true)]
async fn a_response_the_client_does_not_read_is_cut_off() {
    let server = start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /large HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(LIMITS.idle * 10).await;
    let got = until_closed(&mut tcp).await;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(got.len() < CHUNK * CHUNKS, "the whole response came");
}

#[tokio::test(start_paused = true)]
async fn a_response_read_slowly_but_steadily_is_not_cut() {
    let server = start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /large HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; CHUNK];
    loop {
        // 640 KB/s: the gateway can write more well within the limit,
        // whatever the socket buffers hold.
        tokio::time::sleep(Duration::from_millis(100)).await;
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        if got > CHUNK * CHUNKS {
            break;
        }
    }
    assert!(got > CHUNK * CHUNKS, "cut off after {got} bytes");
}
