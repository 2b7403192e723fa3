//! Checks of the harness's own parts (the private PostgreSQL, the cuttable
//! proxy) and of what `deploy/` ships. Only `api_races.rs` includes this
//! file, with `#[path]`, so the checks run once per test run rather than
//! once per binary, without a test binary of their own.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::postgres;
use crate::support::tcp_proxy::{Counts, CuttableProxy};

/// Two fresh databases are distinct, empty and reachable over TCP.
#[tokio::test]
async fn fresh_databases_are_distinct_and_reachable() {
    let pg = postgres::server().await;
    let first = pg.fresh_database().await;
    let second = pg.fresh_database().await;
    assert_ne!(first, second);
    let prefix = format!("postgres://postgres@127.0.0.1:{}/", pg.port());
    assert!(first.starts_with(&prefix), "{first}");
    let first_name = pg.psql(&first, "SELECT current_database()").await;
    let second_name = pg.psql(&second, "SELECT current_database()").await;
    assert_eq!(first, format!("{prefix}{first_name}"));
    assert_eq!(second, format!("{prefix}{second_name}"));
    pg.psql(
        &first,
        "CREATE TABLE marker (n int); INSERT INTO marker VALUES (7)",
    )
    .await;
    assert_eq!(pg.psql(&first, "SELECT n FROM marker").await, "7");
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    assert_eq!(pg.psql(&second, tables).await, "0", "the second is empty");
    let max = pg.psql(&second, "SHOW max_connections").await;
    assert_eq!(max, "300");
}

/// Reads until the peer closes (or resets) the connection; returns what came.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        got.extend_from_slice(&buf[..n]);
    }
    got
}

async fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).await.expect("read");
    buf
}

/// A cut stops bytes both ways without closing anything, holds new
/// connections without relaying them, and a restore closes the held
/// connections and relays new ones. The test plays both the client and
/// the server, so it sees exactly what crossed the proxy. The bound is only
/// there so that a broken proxy fails the test instead of hanging it.
#[tokio::test]
async fn a_cut_proxy_holds_connections_silent_until_restored() {
    tokio::time::timeout(Duration::from_secs(60), cut_and_restore())
        .await
        .expect("the proxy test hung: a step that should happen did not");
}

async fn cut_and_restore() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = CuttableProxy::start(upstream.local_addr().unwrap()).await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut server, _) = upstream.accept().await.unwrap();
    client.write_all(b"before").await.unwrap();
    assert_eq!(read_exactly(&mut server, 6).await, b"before");
    server.write_all(b"reply").await.unwrap();
    assert_eq!(read_exactly(&mut client, 5).await, b"reply");

    proxy.cut();
    client.write_all(b"lost-up").await.unwrap();
    server.write_all(b"lost-down").await.unwrap();
    let mut during = TcpStream::connect(proxy.addr()).await.unwrap();
    during.write_all(b"never").await.unwrap();
    let seen = proxy.until(|c| c.accepted >= 2 && c.lost_bytes >= 16).await;
    let expected = Counts {
        accepted: 2,
        lost_bytes: 16,
    };
    assert_eq!(seen, expected, "both writes dropped, nothing else");
    // The client's side is still open (no end of file), with nothing to read.
    let mut buf = [0u8; 16];
    let pending = client.try_read(&mut buf).unwrap_err();
    assert_eq!(pending.kind(), std::io::ErrorKind::WouldBlock);

    proxy.restore();
    for (name, side) in [
        ("client", &mut client),
        ("server", &mut server),
        ("connection made during the cut", &mut during),
    ] {
        let got = read_until_closed(side).await;
        assert_eq!(got, b"", "the {name} got bytes sent during the cut");
    }
    // The connection made during the cut never reached the server: the
    // next one it accepts is the one made after the restore.
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    after.write_all(b"after").await.unwrap();
    let (mut server, _) = upstream.accept().await.unwrap();
    assert_eq!(read_exactly(&mut server, 5).await, b"after");
    server.write_all(b"flows").await.unwrap();
    assert_eq!(read_exactly(&mut after, 5).await, b"flows");
    assert_eq!(
        proxy.counts(),
        Counts {
            accepted: 3,
            ..expected
        }
    );
}
