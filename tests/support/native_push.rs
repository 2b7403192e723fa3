//! Local impersonations of the native push services, for the gateway's
//! APNs and FCM transports: [`FakeApns`] (Apple Push Notification service)
//! and [`FakeFcm`] (Google's OAuth2 token endpoint for service accounts
//! and the FCM HTTP v1 API). This module owns what both share: the TLS
//! server on `127.0.0.1:0` speaking HTTP/2 by ALPN (with a certificate from
//! `certs::make_certificates`), JWT parsing and the change notification
//! the waits sleep on. `client` plays the provider's side for tests that
//! talk to the fakes directly. Each fake checks what the real service checks
//! (token signatures against the keys it made, headers, payload limits),
//! records every request and answers from scripted sequences per device.
//!
//! ```ignore
//! let apns = FakeApns::start(certs.path()).await;
//! let (p8, key_id, team_id) = apns.make_key(dir.path());
//! apns.respond_with(&device, [(410, "Unregistered")]);
//! // … point the gateway at apns.base_url(), trusting certs/ca.pem …
//! apns.wait_deliveries(1).await;
//! ```
//!
//! The waits have no bound of their own: wrap them in
//! `tokio::time::timeout` (not with a paused clock).

mod apns;
pub mod client;
mod fcm;
mod fcm_routes;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::sync::Notify;

// Each test file uses only part of the harness.
#[allow(unused_imports)]
pub use apns::{ApnsDelivery, FakeApns};
#[allow(unused_imports)]
pub use fcm::{FakeFcm, FcmDelivery};

/// A TLS server on `127.0.0.1` at a free port; stops when dropped.
struct TlsServer {
    addr: SocketAddr,
    /// TLS connections accepted so far.
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    /// Serves the router `app` makes (given the base URL) over TLS with
    /// the certificate in `certs`. With `http1_too` it offers ALPN `h2`
    /// and `http/1.1` and speaks the one agreed; without, only `h2`, and
    /// it speaks nothing but HTTP/2.
    async fn start(
        certs: &Path,
        http1_too: bool,
        app: impl FnOnce(String) -> axum::Router,
    ) -> TlsServer {
        let alpn: &[&[u8]] = if http1_too {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"h2"]
        };
        let acceptor = super::certs::tls_acceptor(certs, alpn);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a native push fake");
        let addr = listener.local_addr().expect("fake address");
        let connections = Arc::new(AtomicUsize::new(0));
        let mut http = auto::Builder::new(TokioExecutor::new());
        if !http1_too {
            http = http.http2_only();
        }
        let service = TowerToHyperService::new(app(format!("https://{addr}")));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let (acceptor, http, service) = (acceptor.clone(), http.clone(), service.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = http.serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        TlsServer {
            addr,
            connections,
            task,
        }
    }

    /// `https://127.0.0.1:PORT`.
    fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Returns once `done` holds, re-checking after every `notify_waiters`.
async fn wait_until(changed: &Notify, done: impl Fn() -> bool) {
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        // Registered before the check, so no change slips between.
        notified.as_mut().enable();
        if done() {
            return;
        }
        notified.await;
    }
}

/// A compact JWS taken apart; nothing verified yet.
struct Jwt {
    header: Value,
    claims: Value,
    /// `BASE64URL(header) "." BASE64URL(claims)`: what the signature covers.
    signed: String,
    signature: Vec<u8>,
}

impl Jwt {
    /// `None` unless three base64url parts, the first two JSON objects.
    fn parse(token: &str) -> Option<Jwt> {
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let json = |part: &str| -> Option<Value> {
            let value: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()?;
            value.is_object().then_some(value)
        };
        Some(Jwt {
            header: json(header)?,
            claims: json(claims)?,
            signed: format!("{header}.{claims}"),
            signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
        })
    }

    fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    fn claim_i64(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }
}

/// `n` random characters from `alphabet`.
fn random_chars(alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| alphabet[rand::random::<usize>() % alphabet.len()] as char)
        .collect()
}

/// A random identifier in UUID form (8-4-4-4-12 hex digits, version 4).
fn random_uuid() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..]
    )
}
